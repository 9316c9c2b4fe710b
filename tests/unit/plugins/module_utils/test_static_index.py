"""The static DSAPI and IMGAPI index of a repository."""

from __future__ import annotations

import copy
import hashlib
import json
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._manifest import upgrade_manifest
from ansible_collections.smartos.images.plugins.module_utils._repository import publish_image
from ansible_collections.smartos.images.plugins.module_utils._static_index import (
    NIL_UUID,
    dataset_manifest,
    file_name,
    index_files,
    update_index,
)

URL = "https://images.example.com"
OWNER = "930896af-bf8c-48d4-885c-6573a94b1853"
BASE = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
CHILD = "0b2b1c7e-8c66-4c1e-9d8f-3c0e2f5a4b71"
OTHER = "c2c31b00-1d60-11e9-9a77-ff9f06554b0f"
DATA = b"zfs stream bytes"


def manifest_for(uuid, published_at="2024-05-01T12:00:00.000Z", **fields):
    manifest = {
        "v": 2,
        "uuid": uuid,
        "owner": OWNER,
        "name": "base-64-lts",
        "version": "24.4.1",
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": published_at,
        "type": "zone-dataset",
        "os": "smartos",
        "description": "A base image",
        "requirements": {"min_platform": {"7.0": "20141030T081701Z"}},
        "tags": {"role": "os"},
        "files": [{"sha1": hashlib.sha1(DATA).hexdigest(), "size": len(DATA), "compression": "gzip"}],
    }
    manifest.update(fields)
    return manifest


@pytest.fixture
def repository(tmp_path):
    path = tmp_path / "repository"
    path.mkdir()
    return str(path)


def publish(repository, tmp_path, manifest):
    path = tmp_path / ("%s.file" % manifest["uuid"])
    path.write_bytes(DATA)
    publish_image(repository, manifest, str(path))


def test_dataset_manifest_upgrades_back():
    manifest = manifest_for(BASE, origin=CHILD)

    assert upgrade_manifest(dataset_manifest(manifest, URL)) == manifest


def test_dataset_manifest_fields():
    dataset = dataset_manifest(manifest_for(BASE), URL + "/")

    assert "v" not in dataset
    assert "owner" not in dataset
    assert "state" not in dataset
    assert dataset["creator_uuid"] == OWNER
    assert dataset["created_at"] == "2024-05-01T12:00:00.000Z"
    assert dataset["files"] == [{
        "sha1": hashlib.sha1(DATA).hexdigest(),
        "size": len(DATA),
        "compression": "gzip",
        "path": "base-64-lts-24.4.1.zfs.gz",
        "url": "%s/datasets/%s/base-64-lts-24.4.1.zfs.gz" % (URL, BASE),
    }]


def test_dataset_manifest_without_owner():
    manifest = manifest_for(BASE)
    del manifest["owner"]

    dataset = dataset_manifest(manifest, URL)

    assert dataset["creator_uuid"] == NIL_UUID
    assert upgrade_manifest(dataset)["owner"] == NIL_UUID


def test_dataset_manifest_leaves_input_alone():
    manifest = manifest_for(BASE)
    original = copy.deepcopy(manifest)

    dataset_manifest(manifest, URL)

    assert manifest == original


@pytest.mark.parametrize("fields, expected", [
    ({}, "base-64-lts-24.4.1.zfs.gz"),
    ({"type": "zvol"}, "base-64-lts-24.4.1.zvol.gz"),
    ({"name": "my image/x", "version": "1.0+b"}, "my_image_x-1.0_b.zfs.gz"),
], ids=["zone", "zvol", "unsafe-characters"])
def test_file_name(fields, expected):
    assert file_name(manifest_for(BASE, **fields)) == expected


@pytest.mark.parametrize("compression, suffix", [("bzip2", ".bz2"), ("xz", ".xz"), ("none", "")])
def test_file_name_suffix(compression, suffix):
    manifest = manifest_for(BASE)
    manifest["files"][0]["compression"] = compression

    assert file_name(manifest) == "base-64-lts-24.4.1.zfs" + suffix


def test_index_lists_active_images_in_order(repository, tmp_path):
    publish(repository, tmp_path, manifest_for(BASE, published_at="2024-01-01T00:00:00.000Z"))
    publish(repository, tmp_path, manifest_for(CHILD, published_at="2024-03-01T00:00:00.000Z", origin=BASE))
    publish(repository, tmp_path, manifest_for(OTHER, published_at="2024-02-01T00:00:00.000Z", state="disabled",
                                               disabled=True))

    files = index_files(repository, URL)

    assert sorted(files) == ["datasets.json", "datasets/%s.json" % CHILD, "datasets/%s.json" % BASE, "images.json"]
    assert [m["uuid"] for m in json.loads(files["images.json"])] == [BASE, CHILD]
    assert [m["uuid"] for m in json.loads(files["datasets.json"])] == [CHILD, BASE]
    assert json.loads(files["datasets/%s.json" % CHILD]) == dataset_manifest(manifest_for(
        CHILD, published_at="2024-03-01T00:00:00.000Z", origin=BASE), URL)


def test_index_of_empty_repository(repository):
    files = index_files(repository, URL)

    assert json.loads(files["images.json"]) == []
    assert json.loads(files["datasets.json"]) == []


def test_image_without_files_is_left_out(repository):
    directory = os.path.join(repository, "images", BASE)
    os.makedirs(directory)
    manifest = manifest_for(BASE)
    del manifest["files"]
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    warnings = []

    files = index_files(repository, URL, warn=warnings.append)

    assert json.loads(files["images.json"]) == []
    assert len(warnings) == 1
    assert "is left out of the index" in warnings[0]


def test_update_writes_then_changes_nothing(repository, tmp_path):
    publish(repository, tmp_path, manifest_for(BASE))
    dest = os.path.join(repository, "index")
    files = index_files(repository, URL)

    first = update_index(dest, files)
    second = update_index(dest, files)

    assert first.written == sorted(files)
    assert first.changed
    assert not second.changed
    for name, text in files.items():
        with open(os.path.join(dest, name), encoding="utf-8") as handle:
            assert handle.read() == text


def test_update_removes_stale_manifests(repository, tmp_path):
    publish(repository, tmp_path, manifest_for(BASE))
    publish(repository, tmp_path, manifest_for(CHILD))
    dest = os.path.join(repository, "index")
    update_index(dest, index_files(repository, URL))
    unrelated = os.path.join(dest, "datasets", "README")
    with open(unrelated, "w", encoding="utf-8") as handle:
        handle.write("not an index file\n")
    os.unlink(os.path.join(repository, "images", CHILD, "manifest.json"))

    change = update_index(dest, index_files(repository, URL))

    assert change.removed == ["datasets/%s.json" % CHILD]
    assert change.written == ["datasets.json", "images.json"]
    assert not os.path.exists(os.path.join(dest, "datasets", "%s.json" % CHILD))
    assert os.path.exists(unrelated)


def test_update_in_check_mode_writes_nothing(repository, tmp_path):
    publish(repository, tmp_path, manifest_for(BASE))
    dest = os.path.join(repository, "index")

    change = update_index(dest, index_files(repository, URL), check_mode=True)

    assert change.changed
    assert not os.path.exists(dest)


def test_update_leaves_no_temporary_files(repository, tmp_path):
    publish(repository, tmp_path, manifest_for(BASE))
    dest = os.path.join(repository, "index")

    update_index(dest, index_files(repository, URL))

    assert sorted(os.listdir(dest)) == ["datasets", "datasets.json", "images.json"]
    assert os.listdir(os.path.join(dest, "datasets")) == ["%s.json" % BASE]
    assert oct(os.stat(os.path.join(dest, "images.json")).st_mode & 0o777) == "0o644"
