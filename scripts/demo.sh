#!/usr/bin/env bash
# The README's walk-through: the whole chain of this collection on one
# machine, with the inventory demo/inventory.yml.
#
#   1. Install zfs-fuse, nginx and the controller's virtual environment
#      (scripts/install-host.sh), and create the file-backed pool "zones".
#   2. Boot a Debian machine, demo-image-server, with systemd-nspawn at
#      10.213.49.10, and make it the team's image server with
#      playbooks/provision_image_server.yml (the image_server role, with
#      its write API).
#   3. Fill the dataset zones/demo-build/base with files, build the image
#      demo-base from it with playbooks/build_image.yml, and publish it
#      through the server's write API.
#   4. Import demo-base into pool zones with playbooks/ensure_images.yml.
#   5. Clone demo-base into zones/demo-build/app, as a zone is a clone of
#      its image, add files, and build and publish demo-app, an incremental
#      image on top of demo-base.
#   6. Run playbooks/ensure_images.yml for both images, then once more; the
#      last run must change nothing. It ends with a table of the images of
#      every host.
#
# Every step keeps what an earlier run made, so the demo can run again.
#
#   bash scripts/demo.sh           run the walk-through
#   bash scripts/demo.sh remove    shut the image server machine down and
#                                  remove the demo: pool zones, its state
#                                  directory and its image cache entries
#
# Run as root on Debian or Ubuntu. State lives in /var/lib/smartos-images,
# or in SMARTOS_IMAGES_DEMO_DIR.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${SMARTOS_IMAGES_DEMO_DIR:-/var/lib/smartos-images}"
export SMARTOS_IMAGES_DEMO_DIR="${state}"
pool=zones
machine_script="${root}/scripts/nspawn-machine.sh"
machines="${state}/machines"
lab=smdemo
server=demo-image-server
server_address=10.213.49.10
host_cidr=10.213.49.1/24
rootfs_cache=/var/cache/smartos-images
wheel_dir="${rootfs_cache}/wheels"
# The demo's datasets record that they were filled completely in this
# property, so a run that stopped half-way fills them again.
filled_property=org.smartos-images.demo:filled
base_uuid=3f0c9d52-6b1e-4a7d-8c2f-5e4b7a9d1c01

cd "${root}"

step() {
    printf '\n=== %s\n' "$*" >&2
}

fail() {
    echo "demo: $*" >&2
    exit 1
}

playbook() {
    echo "+ ansible-playbook -i demo/inventory.yml $*" >&2
    "${root}/.venv/bin/ansible-playbook" -i demo/inventory.yml "$@"
}

dataset_filled() {
    [[ "$(zfs get -H -o value "${filled_property}" "$1" 2>/dev/null)" == yes ]]
}

# Remove a dataset that an interrupted run left without its property.
drop_unfilled() {
    if zfs list -H -o name "$1" >/dev/null 2>&1 && ! dataset_filled "$1"; then
        echo "demo: $1 was not filled completely by an earlier run; making it anew" >&2
        zfs destroy -r "$1"
    fi
}

remove_demo() {
    step "Removing the demo"
    "${machine_script}" "${lab}" stop "${server}" "${machines}"
    "${machine_script}" "${lab}" down
    if zpool list -H -o name "${pool}" >/dev/null 2>&1; then
        if ! zpool status "${pool}" | grep -qF "${state}/${pool}.img"; then
            fail "pool ${pool} is not the demo's (its device is not ${state}/${pool}.img); remove it yourself"
        fi
        # zfs-fuse can report the pool busy for a while after the machine
        # and the last zfs command that used it have stopped.
        local attempt
        for attempt in $(seq 1 15); do
            if zpool destroy -f "${pool}" 2>/dev/null; then
                break
            fi
            if ((attempt == 15)); then
                zpool destroy -f "${pool}" ||
                    fail "cannot destroy pool ${pool} after 30 s; run 'bash scripts/demo.sh remove' again in a minute"
            fi
            sleep 2
        done
        echo "demo: destroyed pool ${pool}" >&2
    fi
    rm -f /var/imgadm/images/"${pool}"-*.json
    rm -rf "${state}"
    echo "demo: removed ${state}; the root file system cache ${rootfs_cache} is kept for the next run" >&2
}

case "${1:-}" in
    "") ;;
    remove)
        remove_demo
        exit 0
        ;;
    *)
        echo "usage: bash scripts/demo.sh [remove]" >&2
        exit 2
        ;;
esac

step "1. Installing what is missing"
bash scripts/install-host.sh
mkdir -p "${state}"
chmod 0700 "${state}"
export ANSIBLE_COLLECTIONS_PATH="${root}/build/collections"
export ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_HOST_KEY_CHECKING=false

if zpool list -H -o name "${pool}" >/dev/null 2>&1; then
    echo "demo: pool ${pool} exists" >&2
elif [[ -f "${state}/${pool}.img" ]]; then
    echo "demo: importing pool ${pool} from ${state}/${pool}.img" >&2
    zpool import -d "${state}" "${pool}" ||
        fail "cannot import pool ${pool} from ${state}/${pool}.img; run 'bash scripts/demo.sh remove' to start over"
else
    echo "demo: creating pool ${pool} on ${state}/${pool}.img (8 GiB, sparse)" >&2
    truncate -s 8G "${state}/${pool}.img"
    if ! zpool create "${pool}" "${state}/${pool}.img"; then
        rm -f "${state}/${pool}.img"
        fail "cannot create pool ${pool}; the zpool message above names the cause"
    fi
fi

step "2. Booting and provisioning the image server ${server} at ${server_address}"
if "${machine_script}" "${lab}" running "${server}" "${machines}"; then
    echo "demo: ${server} is running; provisioning it again changes nothing" >&2
else
    rootfs="$("${machine_script}" rootfs "${rootfs_cache}")"
    if [[ ! -f "${state}/id_ed25519" ]]; then
        ssh-keygen -q -t ed25519 -N "" -C smartos-images-demo -f "${state}/id_ed25519"
    fi
    # The machine has no route to the package index, so the role installs
    # gunicorn from a wheel fetched here.
    gunicorn_version="$(sed -n 's/^image_server_gunicorn_version: *//p' roles/image_server/defaults/main.yml)"
    if ! compgen -G "${wheel_dir}/gunicorn-${gunicorn_version}-*.whl" >/dev/null; then
        "${root}/.venv/bin/python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
            --dest "${wheel_dir}" "gunicorn==${gunicorn_version}"
    fi
    "${machine_script}" "${lab}" up "${host_cidr}"
    "${machine_script}" "${lab}" start "${server}" 0 "${server_address}/24" "${rootfs}" "${machines}" \
        "${state}/id_ed25519.pub"
    install -d "${machines}/${server}/rootfs/var/cache/smartos-images-demo/wheels"
    cp "${wheel_dir}"/*.whl "${machines}/${server}/rootfs/var/cache/smartos-images-demo/wheels/"
    deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do
        if ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 \
            -i "${state}/id_ed25519" "root@${server_address}" true 2>/dev/null; then
            break
        fi
        sleep 1
    done
    ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 \
        -i "${state}/id_ed25519" "root@${server_address}" true ||
        fail "${server} does not answer SSH at ${server_address} after 2 minutes; its console log is" \
            "${machines}/${server}/console.log"
fi

# The write API's password, made once and kept in the state directory.
secrets="${state}/demo-secrets.yml"
if [[ ! -f "${secrets}" ]]; then
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    (
        umask 077
        printf -- '---\nimage_server_users:\n  - name: publisher\n    password: %s\nbuild_api_user: publisher\nbuild_api_password: %s\n' \
            "${password}" "${password}" >"${secrets}.partial"
    )
    mv "${secrets}.partial" "${secrets}"
fi
playbook playbooks/provision_image_server.yml -e "@${secrets}"

step "3. Building demo-base from the dataset ${pool}/demo-build/base and publishing it"
drop_unfilled "${pool}/demo-build/base"
if ! dataset_filled "${pool}/demo-build/base"; then
    zfs create -p "${pool}/demo-build/base"
    base_dir="$(zfs get -H -o value mountpoint "${pool}/demo-build/base")"
    mkdir -p "${base_dir}/etc" "${base_dir}/opt/demo"
    cp /etc/os-release "${base_dir}/etc/os-release"
    echo "demo-base 1.0.0, built by smartos.images" >"${base_dir}/etc/motd"
    cp -r /usr/share/common-licenses "${base_dir}/opt/demo/licenses"
    head -c 2M /dev/urandom >"${base_dir}/opt/demo/payload.bin"
    zfs set "${filled_property}=yes" "${pool}/demo-build/base"
fi
playbook playbooks/build_image.yml -e @demo/build-base.yml -e "@${secrets}"

step "4. Importing demo-base into pool ${pool}"
playbook playbooks/ensure_images.yml -e '{"images_ensure": [{"name": "demo-base"}]}'

step "5. Building demo-app on top of demo-base and publishing it"
drop_unfilled "${pool}/demo-build/app"
if ! dataset_filled "${pool}/demo-build/app"; then
    zfs clone "${pool}/${base_uuid}@final" "${pool}/demo-build/app"
    app_dir="$(zfs get -H -o value mountpoint "${pool}/demo-build/app")"
    mkdir -p "${app_dir}/opt/demo-app"
    echo "demo-app 1.0.0, built on demo-base by smartos.images" >"${app_dir}/etc/motd"
    printf '#!/bin/sh\necho "hello from demo-app"\n' >"${app_dir}/opt/demo-app/hello"
    chmod 0755 "${app_dir}/opt/demo-app/hello"
    zfs set "${filled_property}=yes" "${pool}/demo-build/app"
fi
playbook playbooks/build_image.yml -e @demo/build-app.yml -e "@${secrets}"

step "6. Ensuring demo-base and demo-app on every host of smartos_hosts"
playbook playbooks/ensure_images.yml

step "6. Ensuring them again: this run must change nothing"
log="${state}/last-run.log"
playbook playbooks/ensure_images.yml | tee "${log}"
if ! grep -Eq '^localhost +: ok=[0-9]+ +changed=0 ' "${log}"; then
    fail "the last run of playbooks/ensure_images.yml changed something; its output is in ${log}"
fi

cat >&2 <<EOF

=== Done
The image server:  ${server_address} (curl http://${server_address}/images)
Images in pool ${pool}: zfs list -r -t all -o name,origin ${pool}
Remove the demo:   bash scripts/demo.sh remove
EOF
