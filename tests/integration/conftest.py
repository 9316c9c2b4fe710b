"""Fixtures for tests on real ZFS: pools, real images, and servers on loopback."""

from __future__ import annotations

import itertools
import json
import os
import subprocess

import pytest

from tests.support import imagebuilder
from tests.support.fault_server import FaultServer
from tests.support.pools import Pool, letters, zfs_available
from tests.support.static_repo import StaticRepository

_pool_numbers = itertools.count()

BASE_FILES = {
    "etc/motd": b"built for smartos.images tests\n",
    "root/payload.bin": imagebuilder.random_payload(512 * 1024, seed=1),
}
CHILD_FILES = {
    "etc/motd": b"child image\n",
    "root/child.txt": b"only in the child\n",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.zfs)


@pytest.fixture(scope="session")
def zfs_ready():
    reason = zfs_available()
    if reason:
        pytest.fail("ZFS is not usable here: %s; run the tests as root through scripts/test.sh" % reason)


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zfs")


@pytest.fixture(scope="session")
def build_pool(zfs_ready, work_dir):
    pool = Pool("imgbuild" + letters(os.getpid()), str(work_dir), size="2G").create()
    yield pool
    pool.destroy()


class FixtureImages(dict):
    """Images built once for the session, keyed by a short name, with the files each holds."""

    files = {}


@pytest.fixture(scope="session")
def images(build_pool, work_dir):
    out_dir = str(work_dir / "images")
    built = FixtureImages()
    for compression in ("gzip", "bzip2", "xz", "none"):
        files = dict(BASE_FILES, **{"etc/compression": compression.encode()})
        dataset = imagebuilder.make_dataset("%s/base-%s" % (build_pool.name, compression), files)
        built[compression] = imagebuilder.build_image(
            dataset=dataset, out_dir=out_dir, name="base-" + compression, version="1.0.0", compression=compression,
        )
        built.files[compression] = files
    child_dataset = imagebuilder.make_dataset("%s/child" % build_pool.name, CHILD_FILES,
                                              clone_of=built["gzip"].dataset)
    built["child"] = imagebuilder.build_image(
        dataset=child_dataset, out_dir=out_dir, name="child", version="2.0.0", compression="xz",
        origin=built["gzip"],
    )
    built.files["child"] = dict(built.files["gzip"], **CHILD_FILES)
    sibling_files = {"root/sibling.txt": b"another child of base-gzip\n"}
    sibling_dataset = imagebuilder.make_dataset("%s/sibling" % build_pool.name, sibling_files,
                                                clone_of=built["gzip"].dataset)
    built["sibling"] = imagebuilder.build_image(
        dataset=sibling_dataset, out_dir=out_dir, name="sibling", version="1.0.0", compression="gzip",
        origin=built["gzip"],
    )
    built.files["sibling"] = dict(built.files["gzip"], **sibling_files)
    return built


@pytest.fixture(scope="session")
def static_repo(images, work_dir):
    repo = StaticRepository(str(work_dir / "repo"))
    for image in images.values():
        repo.add(image.manifest, image.file_path)
    with repo:
        yield repo


@pytest.fixture()
def fault_server(images):
    with FaultServer() as server:
        for image in images.values():
            server.add(image.manifest, image.file_path)
        yield server


class Target:
    """A fresh pool and state directories, and the module arguments that point at them."""

    def __init__(self, pool, root):
        self.pool = pool
        self.root = root
        self.cache_dir = os.path.join(root, "cache")
        self.download_dir = os.path.join(root, "downloads")
        self.lock_dir = os.path.join(root, "locks")
        self.config_file = os.path.join(root, "imgadm.conf")

    def args(self, **extra):
        args = dict(
            pool=self.pool.name,
            config_file=self.config_file,
            cache_dir=self.cache_dir,
            download_dir=self.download_dir,
            lock_dir=self.lock_dir,
            connect_timeout=5,
            read_timeout=5,
            retries=1,
        )
        args.update(extra)
        return args

    def write_config(self, sources):
        with open(self.config_file, "w") as handle:
            json.dump({"sources": sources}, handle)

    def dataset(self, uuid):
        return "%s/%s" % (self.pool.name, uuid)

    def partial_datasets(self):
        return [name for name in self.pool.datasets() if "-partial" in name]

    def download_files(self):
        if not os.path.isdir(self.download_dir):
            return []
        return sorted(os.listdir(self.download_dir))

    def leftovers(self):
        """Return everything an interrupted import could leave behind."""
        return self.partial_datasets() + self.download_files()

    def cache_files(self):
        if not os.path.isdir(self.cache_dir):
            return []
        return sorted(n for n in os.listdir(self.cache_dir) if n.endswith(".json"))

    def snapshots(self, uuid):
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", self.dataset(uuid)],
                             capture_output=True, text=True, check=True).stdout
        return [line.split("@", 1)[1] for line in out.split()]

    def origin(self, uuid):
        return subprocess.run(["zfs", "get", "-H", "-o", "value", "origin", self.dataset(uuid)],
                              capture_output=True, text=True, check=True).stdout.strip()

    def read_files(self, uuid, relative_paths):
        mountpoint = subprocess.run(["zfs", "get", "-H", "-o", "value", "mountpoint", self.dataset(uuid)],
                                    capture_output=True, text=True, check=True).stdout.strip()
        contents = {}
        for relative in relative_paths:
            with open(os.path.join(mountpoint, relative), "rb") as handle:
                contents[relative] = handle.read()
        return contents


@pytest.fixture()
def target(zfs_ready, tmp_path):
    name = "imgt%sx%s" % (letters(os.getpid()), letters(next(_pool_numbers)))
    pool = Pool(name, str(tmp_path), size="1G").create()
    yield Target(pool, str(tmp_path))
    pool.destroy()
