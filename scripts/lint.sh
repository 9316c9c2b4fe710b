#!/usr/bin/env bash
# Run ansible-lint with the production profile over the whole collection
# (playbooks, roles, galaxy.yml, meta/, tests/sanity ignore files) and check
# the changelog fragments and changelogs/changelog.yaml with
# antsibull-changelog. Every check runs even when an earlier one fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/.venv"

"${root}/scripts/bootstrap-venv.sh"
# ansible-lint warns about a broken setup when the venv's bin directory is
# not on PATH.
export VIRTUAL_ENV="${venv}"
export PATH="${venv}/bin:${PATH}"
cd "${root}"

failed=()
run_check() {
    local name="$1"
    shift
    echo "lint: running ${name}" >&2
    if ! "$@"; then
        failed+=("${name}")
    fi
}

run_check ansible-lint ansible-lint --profile production
run_check "antsibull-changelog lint" antsibull-changelog lint
run_check "antsibull-changelog lint-changelog-yaml" antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

if [[ "${#failed[@]}" -ne 0 ]]; then
    printf 'lint: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "lint: passed"
