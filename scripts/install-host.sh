#!/usr/bin/env bash
# Install and start everything the tests and the demo need on a Debian or
# Ubuntu machine, as root: zfs-fuse (started), nginx, the decompressors, the
# controller's virtual environment, and the npm compatibility oracles.
# Safe to run again: every step skips what is already in place.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-host: run as root; zfs-fuse, nginx and zpool create need it" >&2
    exit 1
fi

packages=(zfs-fuse nginx-light gzip bzip2 xz-utils curl python3-venv nodejs npm shellcheck)
# The image_server role's molecule scenario boots Debian machines with
# systemd-nspawn and reaches them over SSH.
packages+=(debootstrap debian-archive-keyring systemd-container openssh-client)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("${package}")
    fi
done
# The machine may already have Node.js from elsewhere; only install Debian's
# when no node and npm commands exist.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}")
    missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
    echo "install-host: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# zfs-fuse forks into the background; nothing else starts it on a machine
# without systemd as process 1.
# Check that the daemon responds, not that a process of that name exists,
# because a killed daemon can linger as a zombie.
if ! zpool list >/dev/null 2>&1; then
    # A daemon that does not respond, or one still shutting down, keeps the
    # new one from starting.
    if pgrep -x zfs-fuse >/dev/null; then
        echo "install-host: stopping a zfs-fuse daemon that does not respond" >&2
        pkill -x zfs-fuse || true
        for _ in $(seq 1 50); do
            pgrep -x zfs-fuse >/dev/null || break
            sleep 0.2
        done
        pkill -KILL -x zfs-fuse || true
    fi
    # A zfs-fuse that was killed leaves its FUSE mounts behind, and every
    # access to them fails with "Transport endpoint is not connected".
    awk '$3 == "fuse" {print $2}' /proc/mounts | sort -r | while read -r mountpoint; do
        if ! stat "${mountpoint}" >/dev/null 2>&1; then
            umount -l "${mountpoint}" || true
        fi
    done
    echo "install-host: starting zfs-fuse" >&2
    zfs-fuse
    for _ in $(seq 1 50); do
        zpool list >/dev/null 2>&1 && break
        sleep 0.2
    done
fi
zpool list >/dev/null

bash "${root}/scripts/bootstrap-venv.sh"

oracles="${root}/tests/oracles"
if [[ -f "${oracles}/package-lock.json" ]]; then
    stamp="${oracles}/node_modules/.package-lock.sha256"
    wanted="$(sha256sum "${oracles}/package-lock.json" | cut -d ' ' -f 1)"
    if [[ ! -f "${stamp}" || "$(cat "${stamp}")" != "${wanted}" ]]; then
        echo "install-host: installing the npm compatibility oracles" >&2
        (cd "${oracles}" && npm ci --no-audit --no-fund --loglevel=error)
        printf '%s\n' "${wanted}" >"${stamp}"
    fi
fi

# Ansible finds the collection through ANSIBLE_COLLECTIONS_PATH=build/collections.
link="${root}/build/collections/ansible_collections/smartos/images"
if [[ ! -e "${link}" ]]; then
    mkdir -p "$(dirname "${link}")"
    ln -sfn "${root}" "${link}"
fi
