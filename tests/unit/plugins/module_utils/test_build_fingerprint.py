"""The content fingerprint image_build records: each kind of change to a tree changes it."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _fingerprint
from ansible_collections.smartos.images.plugins.module_utils._fingerprint import tree_fingerprint

# A fixed time well before any test runs, so the entries it is set on are not racy.
OLD_NS = 1_600_000_000 * 1_000_000_000


def make_tree(root):
    os.makedirs(os.path.join(root, "etc", "conf.d"))
    os.makedirs(os.path.join(root, "var", "empty"))
    write(root, "etc/motd", b"hello\n")
    write(root, "etc/conf.d/app.conf", b"port=80\n")
    os.symlink("etc/motd", os.path.join(root, "motd"))
    return root


def write(root, relative, content):
    with open(os.path.join(root, relative), "wb") as handle:
        handle.write(content)


def set_mtime(root, relative, ns):
    os.utime(os.path.join(root, relative), ns=(ns, ns), follow_symlinks=False)


CHANGES = [
    ("content of same size", lambda root: write(root, "etc/motd", b"HELLO\n")),
    ("content of other size", lambda root: write(root, "etc/motd", b"hello again\n")),
    ("file added", lambda root: write(root, "etc/new", b"")),
    ("file removed", lambda root: os.unlink(os.path.join(root, "etc/conf.d/app.conf"))),
    ("file renamed", lambda root: os.rename(os.path.join(root, "etc/motd"), os.path.join(root, "etc/motd2"))),
    ("directory added", lambda root: os.mkdir(os.path.join(root, "var/new"))),
    ("mode changed", lambda root: os.chmod(os.path.join(root, "etc/motd"), 0o600)),
    ("mtime changed", lambda root: set_mtime(root, "etc/motd", OLD_NS)),
    ("symlink retargeted", lambda root: (os.unlink(os.path.join(root, "motd")),
                                         os.symlink("etc/conf.d", os.path.join(root, "motd")))),
]


@pytest.fixture(scope="module")
def fingerprinted_trees(tmp_path_factory):
    """One tree a case of CHANGES, with its fingerprint, taken more than a second ago."""
    trees = {}
    for name, _change in CHANGES:
        root = make_tree(str(tmp_path_factory.mktemp("tree")))
        trees[name] = (root, tree_fingerprint(root))
    # Whole-second time stamps must not hide a change made in the same second,
    # so the changes come one second after the fingerprints, as after a real build.
    time.sleep(1.05)
    return trees


@pytest.mark.parametrize("name, change", CHANGES, ids=[c[0] for c in CHANGES])
def test_fingerprint_changes(fingerprinted_trees, name, change):
    root, before = fingerprinted_trees[name]

    change(root)
    after = tree_fingerprint(root)

    assert after["sha256"] != before["sha256"]


def test_fingerprint_same_tree_same_digest(tmp_path):
    root = make_tree(str(tmp_path / "tree"))

    first = tree_fingerprint(root)
    second = tree_fingerprint(root)

    assert first == second


def test_fingerprint_counts_entries(tmp_path):
    root = make_tree(str(tmp_path / "tree"))

    fingerprint = tree_fingerprint(root)

    # The root, etc, etc/conf.d, var, var/empty, etc/motd, etc/conf.d/app.conf and motd.
    assert fingerprint["entries"] == 8


def test_fingerprint_ignores_reading(tmp_path):
    root = make_tree(str(tmp_path / "tree"))
    before = tree_fingerprint(root)

    with open(os.path.join(root, "etc/motd"), "rb") as handle:
        handle.read()

    assert tree_fingerprint(root)["sha256"] == before["sha256"]


def test_fingerprint_racy_when_just_written(tmp_path):
    root = make_tree(str(tmp_path / "tree"))

    assert tree_fingerprint(root)["racy"] is True


def test_fingerprint_not_racy_after_window(tmp_path):
    root = make_tree(str(tmp_path / "tree"))

    time.sleep(_fingerprint.RACY_WINDOW_NS / 1e9 + 0.05)

    assert tree_fingerprint(root)["racy"] is False


def test_fingerprint_skips_root_zfs_directory(tmp_path):
    root = make_tree(str(tmp_path / "tree"))
    before = tree_fingerprint(root)

    os.mkdir(os.path.join(root, ".zfs"))
    after = tree_fingerprint(root)

    assert after["entries"] == before["entries"]


def test_fingerprint_missing_root_raises(tmp_path):
    with pytest.raises(OSError):
        tree_fingerprint(str(tmp_path / "missing"))
