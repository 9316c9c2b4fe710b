#!/usr/bin/env bash
# Debian bookworm machines booted with systemd-nspawn, for the molecule
# scenarios and scripts/demo.sh. Each machine has a network namespace of
# its own, joined by a bridge in a "lab" namespace to one address on this
# host. A LAB name (a few letters, such as "smfleet") prefixes every
# namespace and interface that this script creates for that set of machines,
# so several sets can exist on one host; "down" removes them again.
#
# The root file system has the zfs-fuse package for its zfs and zpool
# commands only, and its daemon is masked. A machine started with a POOL
# gets this host's /run/zfs bind-mounted, so its commands talk to the
# host's zfs-fuse daemon over that socket. It also gets the pool's
# mountpoint /POOL, because zfs mount creates the mountpoint directory
# where the command runs while the daemon mounts the dataset on this host.
# Every pool of the daemon is visible in every such machine.
#
#   nspawn-machine.sh rootfs CACHE_DIR    print the cached root file system
#                                         tar, building it with debootstrap
#                                         first when it is missing
#   nspawn-machine.sh LAB up HOST_CIDR    create the lab network
#   nspawn-machine.sh LAB start NAME INDEX CIDR TAR WORK_DIR PUBLIC_KEY [POOL]
#                                         boot machine NAME at CIDR, with
#                                         ZFS pool POOL (default: none)
#   nspawn-machine.sh LAB running NAME WORK_DIR
#                                         exit 0 when machine NAME runs
#   nspawn-machine.sh LAB stop NAME WORK_DIR
#                                         shut machine NAME down, remove it
#   nspawn-machine.sh LAB down            remove the lab network
#
# SMARTOS_IMAGES_DEBIAN_MIRROR sets the Debian mirror; by default it is the
# first mirror of a Debian release in this host's apt sources.
set -euo pipefail

SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,python3-venv,nginx-light,zfs-fuse

log() {
    echo "nspawn-machine.sh: $*" >&2
}

debian_mirror() {
    if [[ -n "${SMARTOS_IMAGES_DEBIAN_MIRROR:-}" ]]; then
        echo "${SMARTOS_IMAGES_DEBIAN_MIRROR}"
        return
    fi
    python3 - <<'PY'
import glob
import sys

# One-line entries: "deb [options] URI SUITE COMPONENTS".
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = line.split("#", 1)[0].split()
        if words[:1] == ["deb"]:
            words = [word for word in words[1:] if not word.startswith("[") and not word.endswith("]")]
            if len(words) >= 2 and "-" not in words[1] and "/debian" in words[0]:
                print(words[0])
                sys.exit(0)
# deb822 entries: "URIs:" and "Suites:" fields, separated by blank lines.
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        continue
    for entry in text.split("\n\n"):
        fields = {}
        for line in entry.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith("#"):
                fields[key.strip().lower()] = value.split()
        suites = fields.get("suites", [])
        uris = [uri for uri in fields.get("uris", []) if "/debian" in uri]
        if uris and any("-" not in suite for suite in suites):
            print(uris[0])
            sys.exit(0)
sys.exit("no Debian release mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d; "
         "set SMARTOS_IMAGES_DEBIAN_MIRROR to the URL of a Debian mirror")
PY
}

build_rootfs() {
    local cache_dir="$1"
    local stamp tar
    stamp="$(printf '%s %s' "${SUITE}" "${PACKAGES}" | sha256sum | cut -c 1-12)"
    tar="${cache_dir}/rootfs-${SUITE}-${stamp}.tar"
    if [[ -f "${tar}" ]]; then
        echo "${tar}"
        return
    fi
    local mirror
    mirror="$(debian_mirror)"
    mkdir -p "${cache_dir}"
    # Global, not local: the EXIT trap runs after this function has
    # returned, when its local variables are gone.
    rootfs_staging="$(mktemp -d "${cache_dir}/.rootfs-XXXXXX")"
    rootfs_partial="${tar}.partial"
    # A failed build leaves nothing behind, so the next run starts over.
    trap 'rm -rf "${rootfs_staging}" "${rootfs_partial}"' EXIT
    log "building the ${SUITE} root file system from ${mirror} into ${tar}"
    debootstrap --variant=minbase --include="${PACKAGES}" "${SUITE}" "${rootfs_staging}/rootfs" "${mirror}" \
        >"${rootfs_staging}/debootstrap.log" 2>&1 || {
        tail -n 30 "${rootfs_staging}/debootstrap.log" >&2
        log "debootstrap failed; the lines above are the end of its log"
        exit 1
    }
    # The package lists are only needed to install more packages, which the
    # machines cannot do without a route to a mirror.
    rm -rf "${rootfs_staging}/rootfs/var/lib/apt/lists/"* "${rootfs_staging}/rootfs/var/cache/apt/archives/"*.deb
    tar --numeric-owner -C "${rootfs_staging}/rootfs" -cf "${rootfs_partial}" .
    mv "${rootfs_partial}" "${tar}"
    rm -rf "${rootfs_staging}"
    trap - EXIT
    echo "${tar}"
}

network_up() {
    local host_cidr="$1"
    if ! ip netns list | grep -qx "${lab_netns}\( .*\)\?"; then
        ip netns add "${lab_netns}"
    fi
    ip -n "${lab_netns}" link set lo up
    if ! ip -n "${lab_netns}" link show br0 >/dev/null 2>&1; then
        ip -n "${lab_netns}" link add br0 type bridge
    fi
    ip -n "${lab_netns}" link set br0 up
    if ! ip link show "${host_link}" >/dev/null 2>&1; then
        ip link add "${host_link}" type veth peer name host netns "${lab_netns}"
        ip -n "${lab_netns}" link set host master br0 up
        ip addr add "${host_cidr}" dev "${host_link}"
    fi
    ip link set "${host_link}" up
}

network_down() {
    # Removing one end of a veth pair removes both.
    ip link del "${host_link}" 2>/dev/null || true
    ip netns del "${lab_netns}" 2>/dev/null || true
}

start_machine() {
    local name="$1" index="$2" cidr="$3" tar="$4" work_dir="$5" public_key="$6" pool="${7:-none}"
    local netns="${lab}-${name}" dir="${work_dir}/${name}"
    local zfs_options=()
    stop_machine "${name}" "${work_dir}"

    mkdir -p "${dir}/rootfs"
    tar --numeric-owner -C "${dir}/rootfs" -xf "${tar}"
    echo "${name}" >"${dir}/rootfs/etc/hostname"
    # The cached root file system has the host keys that debootstrap made,
    # and every machine booted from it would share them.
    rm -f "${dir}/rootfs/etc/ssh/ssh_host_"*
    ssh-keygen -q -A -f "${dir}/rootfs" >/dev/null
    install -d -m 0700 "${dir}/rootfs/root/.ssh"
    install -m 0600 "${public_key}" "${dir}/rootfs/root/.ssh/authorized_keys"
    # The machines have no route to a mirror, so the timers would only fail.
    for timer in apt-daily.timer apt-daily-upgrade.timer; do
        ln -sfn /dev/null "${dir}/rootfs/etc/systemd/system/${timer}"
    done
    # A zfs-fuse daemon in the machine would put its own socket into the
    # bind-mounted /run/zfs, in place of the host daemon's socket.
    ln -sfn /dev/null "${dir}/rootfs/etc/systemd/system/zfs-fuse.service"
    if [[ "${pool}" != none ]]; then
        if [[ "$(zfs get -H -o value mountpoint "${pool}")" != "/${pool}" ]]; then
            log "pool ${pool} is not mounted at /${pool}; create it with that mountpoint first"
            exit 1
        fi
        zfs_options=(--bind=/run/zfs "--bind=/${pool}")
    fi

    ip netns add "${netns}"
    ip -n "${netns}" link set lo up
    ip link add eth0 netns "${netns}" type veth peer name "port${index}" netns "${lab_netns}"
    ip -n "${lab_netns}" link set "port${index}" master br0 up
    ip -n "${netns}" addr add "${cidr}" dev eth0
    ip -n "${netns}" link set eth0 up

    # --keep-unit and --register=no: this host's process 1 is not systemd, so
    # there is no system bus to register the machine or create a scope with.
    setsid systemd-nspawn --quiet --register=no --keep-unit --network-namespace-path="/run/netns/${netns}" \
        "${zfs_options[@]}" --machine="${name}" -D "${dir}/rootfs" -b </dev/null >"${dir}/console.log" 2>&1 &
    echo $! >"${dir}/nspawn.pid"
    log "booting ${name} at ${cidr}, process $(cat "${dir}/nspawn.pid"), console log ${dir}/console.log"
}

# Print the process ID of the machine's systemd-nspawn; fail when it does not run.
machine_pid() {
    local dir="$1"
    local pid
    [[ -f "${dir}/nspawn.pid" ]] || return 1
    pid="$(cat "${dir}/nspawn.pid")"
    kill -0 "${pid}" 2>/dev/null && grep -q systemd-nspawn "/proc/${pid}/cmdline" 2>/dev/null || return 1
    echo "${pid}"
}

stop_machine() {
    local name="$1" work_dir="$2"
    local netns="${lab}-${name}" dir="${work_dir}/${name}"
    local pid
    if pid="$(machine_pid "${dir}")"; then
        # systemd-nspawn turns SIGTERM into a clean shutdown of the machine.
        kill -TERM "${pid}"
        for _ in $(seq 1 60); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "${pid}" 2>/dev/null; then
            log "${name} did not shut down within 30 s; killing process ${pid}"
            kill -KILL "${pid}"
        fi
    fi
    rm -f "${dir}/nspawn.pid"
    ip netns del "${netns}" 2>/dev/null || true
    rm -rf "${dir}"
}

usage() {
    echo "usage: nspawn-machine.sh rootfs CACHE_DIR" \
        "| LAB up HOST_CIDR | LAB start NAME INDEX CIDR TAR WORK_DIR PUBLIC_KEY [POOL]" \
        "| LAB running NAME WORK_DIR | LAB stop NAME WORK_DIR | LAB down" >&2
    exit 2
}

if [[ "${1:-}" == rootfs ]]; then
    [[ $# -eq 2 ]] || usage
    build_rootfs "$2"
    exit 0
fi
[[ $# -ge 2 && "$1" =~ ^[a-z]{2,8}$ ]] || usage
lab="$1"
lab_netns="${lab}-lab"
host_link="${lab}-host"
command="$2"
shift 2
case "${command}" in
    up) [[ $# -eq 1 ]] || usage; network_up "$1" ;;
    start) [[ $# -eq 6 || $# -eq 7 ]] || usage; start_machine "$@" ;;
    running) [[ $# -eq 2 ]] || usage; machine_pid "$2/$1" >/dev/null ;;
    stop) [[ $# -eq 2 ]] || usage; stop_machine "$1" "$2" ;;
    down) [[ $# -eq 0 ]] || usage; network_down ;;
    *) usage ;;
esac
