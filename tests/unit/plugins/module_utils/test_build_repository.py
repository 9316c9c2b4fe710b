"""The image server repository layout image_build publishes into."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._repository import (
    dependents,
    image_dir,
    list_manifests,
    publish_image,
    read_manifest,
    remove_image,
)

UUID = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
CHILD = "0b2b1c7e-8c66-4c1e-9d8f-3c0e2f5a4b71"
DATA = b"zfs stream bytes"


def manifest_for(uuid, data=DATA, **extra):
    manifest = {"v": 2, "uuid": uuid, "name": "web", "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]}
    manifest.update(extra)
    return manifest


@pytest.fixture()
def repository(tmp_path):
    return str(tmp_path / "repo")


@pytest.fixture()
def image_file(tmp_path):
    path = tmp_path / "image.zfs"
    path.write_bytes(DATA)
    return str(path)


def test_image_dir_layout(repository):
    assert image_dir(repository, UUID) == os.path.join(repository, "images", UUID)


@pytest.mark.parametrize("bad", ["../etc", UUID.upper(), "", "x/" + UUID], ids=["parent", "upper", "empty", "slash"])
def test_image_dir_rejects_non_uuid(repository, bad):
    with pytest.raises(ImageError, match="not a lower-case UUID"):
        image_dir(repository, bad)


def test_publish_writes_manifest_and_file(repository, image_file):
    directory = publish_image(repository, manifest_for(UUID), image_file)

    assert directory == image_dir(repository, UUID)
    assert sorted(os.listdir(directory)) == ["file", "manifest.json"]
    with open(os.path.join(directory, "file"), "rb") as handle:
        assert handle.read() == DATA


def test_publish_manifest_is_two_space_json_with_newline(repository, image_file):
    manifest = manifest_for(UUID)

    publish_image(repository, manifest, image_file)

    with open(os.path.join(image_dir(repository, UUID), "manifest.json")) as handle:
        text = handle.read()
    assert text == json.dumps(manifest, indent=2) + "\n"


def test_publish_copies_by_default(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)

    assert os.path.exists(image_file)


def test_publish_move_takes_the_file(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file, move=True)

    assert not os.path.exists(image_file)


def test_publish_writes_extra_files(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file, extra_files={"build.json": "{}\n"})

    with open(os.path.join(image_dir(repository, UUID), "build.json")) as handle:
        assert handle.read() == "{}\n"


def test_publish_leaves_no_temporary_directory(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)
    publish_image(repository, manifest_for(UUID, description="again"), image_file)

    assert os.listdir(os.path.join(repository, "images")) == [UUID]


def test_publish_replaces_same_uuid(repository, image_file, tmp_path):
    publish_image(repository, manifest_for(UUID), image_file, extra_files={"old.txt": "old"})
    other = tmp_path / "other.zfs"
    other.write_bytes(b"new bytes")

    publish_image(repository, manifest_for(UUID, data=b"new bytes"), str(other))

    assert read_manifest(repository, UUID)["files"][0]["size"] == len(b"new bytes")
    assert sorted(os.listdir(image_dir(repository, UUID))) == ["file", "manifest.json"]


def test_publish_rejects_size_mismatch(repository, image_file):
    manifest = manifest_for(UUID)
    manifest["files"][0]["size"] = 1

    with pytest.raises(ImageError, match="has 16 bytes but the manifest's files\\[0\\].size is 1"):
        publish_image(repository, manifest, image_file)

    assert not os.path.exists(image_dir(repository, UUID))


def test_publish_rejects_manifest_without_files(repository, image_file):
    manifest = manifest_for(UUID)
    del manifest["files"]

    with pytest.raises(ImageError, match="no files\\[0\\].size"):
        publish_image(repository, manifest, image_file)


def test_list_manifests_of_empty_repository(repository):
    assert list_manifests(repository) == []


def test_list_manifests_orders_by_uuid(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)
    publish_image(repository, manifest_for(CHILD), image_file)

    assert [m["uuid"] for m in list_manifests(repository)] == [CHILD, UUID]


def test_list_manifests_skips_temporary_directories(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)
    os.makedirs(os.path.join(repository, "images", ".publish-%s-abc" % CHILD))

    assert [m["uuid"] for m in list_manifests(repository)] == [UUID]


def test_list_manifests_warns_about_corrupt_manifest(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)
    os.makedirs(image_dir(repository, CHILD))
    with open(os.path.join(image_dir(repository, CHILD), "manifest.json"), "w") as handle:
        handle.write("{not json")
    warnings = []

    manifests = list_manifests(repository, warnings.append)

    assert [m["uuid"] for m in manifests] == [UUID]
    assert len(warnings) == 1
    assert CHILD in warnings[0]


def test_list_manifests_warns_about_uuid_mismatch(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)
    os.rename(image_dir(repository, UUID), image_dir(repository, CHILD))
    warnings = []

    assert list_manifests(repository, warnings.append) == []
    assert "has uuid" in warnings[0]


def test_read_manifest_of_missing_image(repository):
    assert read_manifest(repository, UUID) is None


def test_remove_image(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)

    assert remove_image(repository, UUID) is True
    assert os.listdir(os.path.join(repository, "images")) == []


def test_remove_missing_image(repository, image_file):
    publish_image(repository, manifest_for(CHILD), image_file)

    assert remove_image(repository, UUID) is False


def test_dependents(repository, image_file):
    publish_image(repository, manifest_for(UUID), image_file)
    publish_image(repository, manifest_for(CHILD, origin=UUID), image_file)

    assert dependents(repository, UUID) == [CHILD]
    assert dependents(repository, CHILD) == []
