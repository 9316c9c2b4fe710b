"""Prepare the demo host: pools, two real images, and an image server on loopback.

Used by scripts/demo.sh. Every step is skipped when its result is already in
place, so the demo can be run again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from tests.support import imagebuilder
from tests.support.pools import Pool, ensure_daemon
from tests.support.static_repo import StaticRepository

BASE_UUID = "0f6fbd6e-8a3c-4d6b-9c55-0b9d4e8f2a10"
CHILD_UUID = "6c1b5b4e-2d4f-4c35-9b0a-3f7e1d2c9a01"
BUILD_POOL = "imgdemobuild"
TARGET_POOL = "zones"


def pool_exists(name):
    return subprocess.run(["zpool", "list", name], capture_output=True, check=False).returncode == 0


def build_images(state_dir):
    """Build demo-base (full, gzip) and demo-app (incremental on demo-base, xz) from real datasets."""
    out_dir = os.path.join(state_dir, "built")
    if all(os.path.exists(os.path.join(out_dir, u + ".json")) for u in (BASE_UUID, CHILD_UUID)):
        return out_dir
    if pool_exists(BUILD_POOL):
        subprocess.run(["zpool", "destroy", "-f", BUILD_POOL], check=True)
    Pool(BUILD_POOL, state_dir, size="1G").create()
    base_files = {
        "etc/motd": b"demo-base 1.0.0, built by smartos.images\n",
        "opt/payload.bin": imagebuilder.random_payload(4 * 1024 * 1024, seed=7),
    }
    base_dataset = imagebuilder.make_dataset(BUILD_POOL + "/demo-base", base_files)
    base = imagebuilder.build_image(dataset=base_dataset, out_dir=out_dir, name="demo-base", version="1.0.0",
                                    compression="gzip", uuid=BASE_UUID)
    app_dataset = imagebuilder.make_dataset(BUILD_POOL + "/demo-app", {"opt/app/README": b"demo-app 1.0.0\n"},
                                            clone_of=base_dataset)
    imagebuilder.build_image(dataset=app_dataset, out_dir=out_dir, name="demo-app", version="1.0.0",
                             compression="xz", origin=base, uuid=CHILD_UUID)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, default=8086)
    args = parser.parse_args(argv)

    ensure_daemon()
    if not pool_exists(TARGET_POOL):
        print("demo: creating pool %s on %s" % (TARGET_POOL, os.path.join(args.state_dir, "zones.img")))
        Pool(TARGET_POOL, args.state_dir, size="8G").create()
    out_dir = build_images(args.state_dir)

    repo = StaticRepository(os.path.join(args.state_dir, "repo"), port=args.port)
    for uuid in (BASE_UUID, CHILD_UUID):
        with open(os.path.join(out_dir, uuid + ".json")) as handle:
            manifest = json.load(handle)
        repo.add(manifest, os.path.join(out_dir, uuid + ".file"))
    if repo.is_serving():
        print("demo: image server already running on %s" % repo.url)
    else:
        repo.start(detach=True)
        print("demo: image server started on %s" % repo.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
