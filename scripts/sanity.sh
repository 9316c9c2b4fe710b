#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection.
#
# ansible-test only runs inside a tree laid out as
# .../ansible_collections/NAMESPACE/NAME, so this script copies the
# collection's files (tracked by git, plus untracked files that .gitignore does
# not exclude) to build/sanity/ansible_collections/smartos/images and runs
# there.
# Extra arguments go to ansible-test, for example:
#   scripts/sanity.sh --test validate-modules
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/.venv"
copy="${root}/build/sanity/ansible_collections/smartos/images"

"${root}/scripts/bootstrap-venv.sh"
export VIRTUAL_ENV="${venv}"
export PATH="${venv}/bin:${PATH}"

# With --local, ansible-test runs the controller-side tests on the Python that
# runs ansible-test itself, so ask for the version of the venv's Python
# (3.11 with the python3 of the project's machines).
python_version="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# Two runs in one work tree would delete each other's copy, so they take
# turns.
mkdir -p "${root}/build"
exec 9>"${root}/build/sanity.lock"
if ! flock --nonblock 9; then
    echo "sanity: waiting for another scripts/sanity.sh run in ${root} to finish" >&2
    flock 9
fi

# Copy the collection. A file that is tracked but deleted in the work tree is
# listed by git and skipped here, as ansible-test itself skips it.
file_list="$(mktemp)"
trap 'rm -f "${file_list}"' EXIT
git -C "${root}" ls-files -z --cached --others --exclude-standard >"${file_list}"
rm -rf "${copy}"
mkdir -p "${copy}"
(
    cd "${root}"
    while IFS= read -r -d '' path; do
        if [[ -e "${path}" || -L "${path}" ]]; then
            printf '%s\0' "${path}"
        fi
    done <"${file_list}" | xargs -0 --no-run-if-empty cp --parents --no-dereference --target-directory="${copy}"
)

# Without a repository of its own, ansible-test would find the enclosing
# checkout's .git, ask it for the files under build/ (which .gitignore
# excludes) and test nothing. An empty repository makes it list the copy.
git -C "${copy}" init --quiet

# ansible-test creates one virtual environment per sanity test and installs
# pip into it with a get-pip script that it downloads from Ansible's CI file
# server, not from the package index, so the download fails on a machine that
# reaches only the package index. ansible-test uses a script already saved at
# the cache path below instead, so save one that installs the same pip
# version with ensurepip and pip from the package index. A real get-pip
# script that a user saved there is left alone, and an older stand-in is
# replaced.
pip_version="$(python - "${python_version}" <<'PY'
import sys

from ansible_test._internal.host_configs import NativePythonConfig
from ansible_test._internal.python_requirements import get_venv_packages

python = NativePythonConfig(version=sys.argv[1], path=sys.executable)
print(get_venv_packages(python)["pip"])
PY
)"
get_pip="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
stand_in_marker="saved by smartos.images' scripts/sanity.sh"
if [[ ! -s "${get_pip}" ]] || grep --quiet --fixed-strings "${stand_in_marker}" "${get_pip}"; then
    mkdir -p "$(dirname "${get_pip}")"
    # Write and rename, so that a concurrent ansible-test run never reads a
    # half-written script.
    cat >"${get_pip}.$$" <<'PY'
"""Stand-in for get-pip.py, saved by smartos.images' scripts/sanity.sh.

ansible-test runs it as `python get_pip_X_Y.py [pip options] pip==X.Y
--no-setuptools --no-wheel` in an empty virtual environment. It installs the
bundled pip with ensurepip and then the requested pip from the package index.
"""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def run(*arguments):
    """Run python with the arguments, and print its output only if it fails."""
    command = [sys.executable, *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit("pip bootstrap failed with exit status %d: %s" % (result.returncode, " ".join(command)))


arguments = sys.argv[1:]
pip_arguments = [argument for argument in arguments if argument not in GET_PIP_ONLY]

run("-m", "ensurepip", "--default-pip")
run("-m", "pip", "install", *pip_arguments)

# ensurepip on Python 3.11 and older also installs setuptools.
if "--no-setuptools" in arguments:
    run("-m", "pip", "uninstall", "--yes", "setuptools")
PY
    mv "${get_pip}.$$" "${get_pip}"
fi

skip_tests=(
    # pslint needs PowerShell (pwsh), which the project's machines do not have
    # and Debian does not package. The collection ships no PowerShell code.
    --skip-test pslint
)
if ! command -v shellcheck >/dev/null; then
    # ansible-test itself would skip it with only a warning, so say why here.
    echo "sanity: skipping the shellcheck test because shellcheck is not installed. Install it with: apt-get install shellcheck" >&2
    skip_tests+=(--skip-test shellcheck)
fi

cd "${copy}"
status=0
ansible-test sanity --python "${python_version}" --local "${skip_tests[@]}" "$@" || status=$?

if [[ "${status}" -ne 0 ]]; then
    echo "sanity: FAILED with ansible-test exit status ${status}. ansible-test lists the failed tests above." >&2
    exit "${status}"
fi
echo "sanity: passed"
