#!/usr/bin/env bash
# Create .venv if it is missing and install scripts/requirements-dev.txt
# into it. A second run with an unchanged requirements file returns at once,
# because the file's hash is stored in a stamp file inside the venv.
#
# Environment: PYTHON selects the interpreter that creates the venv
# (default python3). ansible-core 2.19 needs Python 3.11 to 3.13 on the
# controller.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/.venv"
requirements="${root}/scripts/requirements-dev.txt"
stamp="${venv}/.requirements-dev.sha256"
python="${PYTHON:-python3}"

# Another script of this repository may be bootstrapping the same venv at
# the same moment, and two concurrent pip runs can leave it half-installed.
mkdir -p "${root}/build"
exec 8>"${root}/build/bootstrap-venv.lock"
flock 8

wanted_hash="$(sha256sum "${requirements}" | cut -d ' ' -f 1)"
if [[ -x "${venv}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${wanted_hash}" ]]; then
    exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    if ! "${python}" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))'; then
        echo "bootstrap-venv: ${python} is not Python 3.11 to 3.13, which ansible-core 2.19 needs on the controller. Set PYTHON to such an interpreter." >&2
        exit 1
    fi
    echo "bootstrap-venv: creating ${venv}" >&2
    "${python}" -m venv "${venv}"
fi

echo "bootstrap-venv: installing ${requirements}" >&2
"${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --requirement "${requirements}"
printf '%s\n' "${wanted_hash}" >"${stamp}"
