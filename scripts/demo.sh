#!/usr/bin/env bash
# Set this machine up as a demo SmartOS image host and run the main job:
#   1. install zfs-fuse, nginx, the controller's virtual environment;
#   2. create the file-backed pool "zones" (unless it exists);
#   3. build two images from real ZFS datasets (a base image and an
#      incremental image on top of it) and publish them to an image server
#      on 127.0.0.1:8086, served by nginx;
#   4. run playbooks/ensure_images.yml against this machine, twice: the
#      first run imports both images, the second finds nothing to do.
# Run as root on Debian or Ubuntu. State lives in /var/lib/smartos-images.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${SMARTOS_IMAGES_DEMO_DIR:-/var/lib/smartos-images}"
cd "${root}"

bash scripts/install-host.sh
mkdir -p "${state}"

"${root}/.venv/bin/python" -m tests.support.demo --state-dir "${state}" --port 8086

export ANSIBLE_COLLECTIONS_PATH="${root}/build/collections"
export ANSIBLE_PYTHON_INTERPRETER="${root}/.venv/bin/python"
export ANSIBLE_LOCALHOST_WARNING=false
for run in first second; do
    echo "=== ensure_images.yml, ${run} run" >&2
    "${root}/.venv/bin/ansible-playbook" -i demo/inventory.yml playbooks/ensure_images.yml
done
echo "=== images in pool zones" >&2
zfs list -H -o name,origin -t filesystem,volume -r zones
