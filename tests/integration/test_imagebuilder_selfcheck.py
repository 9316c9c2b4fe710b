"""Self-check of the image builder: build real images, receive them, compare the files."""

import hashlib
import os
import random
import re
import shutil
import string
import subprocess

import pytest

from tests.support import imagebuilder
from tests.support.imagebuilder import (
    TEST_OWNER_UUID,
    ImageBuildError,
    build_image,
    create_pool,
    destroy_pool,
    get_property,
    make_dataset,
    random_payload,
    snapshot_exists,
)

pytestmark = pytest.mark.zfs

POOL_SIZE = "512M"
DECOMPRESS_COMMANDS = {"gzip": ["gzip", "-dc"], "bzip2": ["bzip2", "-dc"], "xz": ["xz", "-dc"]}
PUBLISHED_AT_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

BASE_FILES = {
    "etc/motd": b"base image\n",
    "data/big.bin": random_payload(3 * 1024 * 1024, "selfcheck-base"),
    "data/removed.txt": b"only in the base image\n",
}
CHILD_CHANGES = {
    "etc/motd": b"child image\n",
    "data/added.bin": random_payload(1024 * 1024, "selfcheck-child"),
    "data/removed.txt": None,
}


def require_zfs():
    if shutil.which("zpool") is None or os.geteuid() != 0:
        pytest.skip("needs the zpool command and root")
    result = subprocess.run(["zpool", "list"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"ZFS is not running (start zfs-fuse): {result.stderr.strip()}")


@pytest.fixture
def pools(tmp_path):
    """Create a build pool and a receive pool, and destroy both afterwards."""
    require_zfs()
    # A random suffix keeps concurrent runs on this machine apart.
    suffix = "".join(random.choices(string.ascii_lowercase, k=8))
    created = []

    def new_pool(role):
        name = f"selfcheck{role}{suffix}"
        create_pool(name, tmp_path / f"{name}.img", POOL_SIZE)
        created.append(name)
        return name

    try:
        yield new_pool("build"), new_pool("receive")
    finally:
        for name in reversed(created):
            destroy_pool(name)


def receive_image(image, target):
    """Decompress the image file into ``zfs receive -u target`` and mount the result."""
    compression = image.manifest["files"][0]["compression"]
    with open(image.file_path, "rb") as source:
        if compression == "none":
            subprocess.run(["zfs", "receive", "-u", target], stdin=source, check=True)
        else:
            decompress = subprocess.Popen(
                DECOMPRESS_COMMANDS[compression], stdin=source, stdout=subprocess.PIPE
            )
            receive = subprocess.run(["zfs", "receive", "-u", target], stdin=decompress.stdout, check=False)
            decompress.stdout.close()
            assert decompress.wait() == 0, f"{compression} -dc failed on {image.file_path}"
            assert receive.returncode == 0, f"zfs receive into {target} failed"
    subprocess.run(["zfs", "mount", target], check=True)
    return get_property(target, "mountpoint")


def read_tree(root):
    """Return ``{relative path: bytes}`` for every regular file under ``root``."""
    tree = {}
    for directory, _unused, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                tree[os.path.relpath(path, root)] = handle.read()
    return tree


def check_file_digest(image):
    with open(image.file_path, "rb") as handle:
        content = handle.read()
    assert image.manifest["files"][0]["sha1"] == hashlib.sha1(content).hexdigest()
    assert image.manifest["files"][0]["size"] == len(content)


def test_full_and_incremental_round_trip(pools, tmp_path):
    build_pool, receive_pool = pools
    out_dir = tmp_path / "images"
    base = make_dataset(f"{build_pool}/base", BASE_FILES)

    full = build_image(dataset=base, out_dir=out_dir, name="selfcheck", version="1.0.0")
    child = make_dataset(f"{build_pool}/child", CHILD_CHANGES, clone_of=base)
    incremental = build_image(
        dataset=child,
        out_dir=out_dir,
        name="selfcheck",
        version="1.1.0",
        compression="xz",
        origin=full,
        extra={"tags": {"role": "child"}},
    )

    assert full.file_path == str(out_dir / f"{full.uuid}.file")
    assert full.manifest["files"][0]["compression"] == "gzip"
    assert full.manifest["owner"] == TEST_OWNER_UUID
    assert full.manifest["v"] == 2
    assert full.manifest["state"] == "active"
    assert PUBLISHED_AT_PATTERN.match(full.manifest["published_at"])
    assert "origin" not in full.manifest
    assert incremental.manifest["origin"] == full.uuid
    assert incremental.manifest["files"][0]["compression"] == "xz"
    assert incremental.manifest["tags"] == {"role": "child"}
    check_file_digest(full)
    check_file_digest(incremental)

    base_mount = receive_image(full, f"{receive_pool}/{full.uuid}")
    child_mount = receive_image(incremental, f"{receive_pool}/{incremental.uuid}")

    expected_child = {**BASE_FILES, **CHILD_CHANGES}
    del expected_child["data/removed.txt"]
    assert read_tree(base_mount) == BASE_FILES
    assert read_tree(child_mount) == expected_child
    received_origin = get_property(f"{receive_pool}/{incremental.uuid}", "origin")
    assert received_origin == f"{receive_pool}/{full.uuid}@final"


def test_existing_snapshot_rejected(pools, tmp_path):
    build_pool, _unused = pools
    dataset = make_dataset(f"{build_pool}/twice", {"file": b"x"})
    build_image(dataset=dataset, out_dir=tmp_path, name="twice", version="1")

    with pytest.raises(ImageBuildError, match="already exists"):
        build_image(dataset=dataset, out_dir=tmp_path, name="twice", version="2")


def test_origin_must_be_clone_source(pools, tmp_path):
    build_pool, _unused = pools
    first = make_dataset(f"{build_pool}/first", {"file": b"first"})
    unrelated = make_dataset(f"{build_pool}/unrelated", {"file": b"unrelated"})
    first_image = build_image(dataset=first, out_dir=tmp_path, name="first", version="1")

    with pytest.raises(ImageBuildError, match="expected .*first@final"):
        build_image(
            dataset=unrelated, out_dir=tmp_path, name="unrelated", version="1", origin=first_image
        )

    assert not snapshot_exists(f"{unrelated}@final")


def test_failed_compressor_cleans_up(pools, tmp_path, monkeypatch):
    build_pool, _unused = pools
    dataset = make_dataset(f"{build_pool}/broken", {"file": random_payload(200000, "broken")})
    monkeypatch.setitem(imagebuilder.COMPRESSOR_COMMANDS, "gzip", ["sh", "-c", "exit 3"])

    with pytest.raises(ImageBuildError, match="failed with exit code"):
        build_image(dataset=dataset, out_dir=tmp_path, name="broken", version="1")

    assert not snapshot_exists(f"{dataset}@final")
    assert not list(tmp_path.glob("*.file"))
