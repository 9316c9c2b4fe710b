#!/usr/bin/env bash
# Run a molecule scenario, by default the one of the image_server role
# (extensions/molecule/image_server): two Debian bookworm machines booted
# with systemd-nspawn in network namespaces of their own, the role applied
# twice (the second run must change nothing), and the servers checked over
# HTTP. Needs root, debootstrap and systemd-nspawn (scripts/install-host.sh
# installs them). The first run builds the machines' root file system with
# debootstrap and caches it in /var/cache/smartos-images.
#
# scripts/molecule.sh fleet runs the fleet scenario instead
# (extensions/molecule/fleet): playbooks/ensure_images.yml on three compute
# nodes with ZFS pools of their own on this host's zfs-fuse daemon, from an
# image server that the role sets up. It also needs zfs-fuse.
#
# Extra arguments go to `molecule test`, for example --destroy=never to keep
# the machines for a look with `molecule login -s image_server -h server-app`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/.venv"

# An optional first argument that is not an option names the scenario.
scenario=image_server
if [[ $# -gt 0 && "$1" != -* ]]; then
    scenario="$1"
    shift
fi
if [[ ! -f "${root}/extensions/molecule/${scenario}/molecule.yml" ]]; then
    echo "molecule: scenario ${scenario} not found; expected a directory in extensions/molecule with a molecule.yml" >&2
    exit 1
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "molecule: run as root; systemd-nspawn and the network namespaces need it" >&2
    exit 1
fi
for command in debootstrap systemd-nspawn ip ssh ssh-keygen; do
    if ! command -v "${command}" >/dev/null; then
        echo "molecule: ${command} is not installed; run scripts/install-host.sh first" >&2
        exit 1
    fi
done
if [[ "${scenario}" == fleet ]] && ! command -v zpool >/dev/null; then
    echo "molecule: zpool is not installed; the fleet scenario needs zfs-fuse (apt-get install zfs-fuse)" >&2
    exit 1
fi

"${root}/scripts/bootstrap-venv.sh"
export VIRTUAL_ENV="${venv}"
export PATH="${venv}/bin:${PATH}"
# The scenario applies smartos.images.image_server from this checkout.
export ANSIBLE_COLLECTIONS_PATH="${root}/build/collections"
link="${ANSIBLE_COLLECTIONS_PATH}/ansible_collections/smartos/images"
if [[ ! -e "${link}" ]]; then
    mkdir -p "$(dirname "${link}")"
    ln -sfn "${root}" "${link}"
fi

# The machines' addresses and network namespace names are fixed, so two runs
# on one host take turns, whichever scenarios they run.
mkdir -p "${root}/build"
exec 7>"${root}/build/molecule.lock"
if ! flock --nonblock 7; then
    echo "molecule: waiting for another scripts/molecule.sh run to finish" >&2
    flock 7
fi

cd "${root}"
# molecule 26.10 logs "CRITICAL 'extensions/molecule/default/molecule.yml'
# glob failed. Exiting." because the collection has no default scenario,
# and then runs this one; the line is not a failure.
exec molecule test -s "${scenario}" "$@"
