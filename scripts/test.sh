#!/usr/bin/env bash
# Run every test of the collection: quality gates (ansible-lint, changelog
# lint, ansible-test sanity), unit tests, the differential tests against the
# npm oracles, and the integration tests on real ZFS pools with real servers
# on loopback. Needs root on Debian or Ubuntu; installs what is missing.
# The molecule suites boot Debian machines with systemd-nspawn
# (scripts/molecule.sh), and the last suite runs the README's walk-through,
# scripts/demo.sh, which leaves its demo in place.
# Exits non-zero when any suite fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

bash scripts/install-host.sh

failed=()
run_suite() {
    local name="$1"
    shift
    echo "=== ${name}: $*" >&2
    local started=${SECONDS}
    if "$@"; then
        echo "=== ${name}: passed in $((SECONDS - started)) s" >&2
    else
        echo "=== ${name}: FAILED in $((SECONDS - started)) s" >&2
        failed+=("${name}")
    fi
}

run_suite lint bash scripts/lint.sh
run_suite sanity bash scripts/sanity.sh
# zfs-fuse can stop responding under load. The time limits turn such a hang
# into a failed suite instead of a run that never ends.
run_suite pytest timeout 2400 .venv/bin/python -m pytest -p no:cacheprovider -n 2 --dist loadfile \
    --timeout 600 tests/unit tests/compat tests/integration
run_suite molecule timeout 1800 bash scripts/molecule.sh
run_suite molecule-fleet timeout 1800 bash scripts/molecule.sh fleet
run_suite demo timeout 1200 bash scripts/demo.sh

if ((${#failed[@]})); then
    echo "FAILED suites: ${failed[*]}" >&2
    exit 1
fi
echo "all suites passed" >&2
