"""Where image_build writes, and how it checks what an earlier build wrote."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._outputs import (
    DirectoryOutputs,
    RepositoryOutputs,
    read_record,
    record_text,
    verify_outputs,
)
from ansible_collections.smartos.images.plugins.module_utils._repository import image_dir, publish_image

UUID = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
NEW_UUID = "0b2b1c7e-8c66-4c1e-9d8f-3c0e2f5a4b71"
CHILD = "7d9e4b0e-3c3f-4a4c-b3f1-9a1f0e1d2c3b"
DATA = b"zfs stream"


def manifest_for(uuid, compression="gzip", data=DATA, **extra):
    manifest = {"v": 2, "uuid": uuid, "name": "My Web", "version": "1.0", "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": compression}]}
    manifest.update(extra)
    return manifest


def record_for(manifest, manifest_path, file_path, slot=None):
    return {"format": 1, "uuid": manifest["uuid"], "slot": slot or {"name": "My Web", "version": "1.0"},
            "fingerprint": "f", "manifest_path": manifest_path, "file_path": file_path, "manifest": manifest}


def stage(tmp_path, data=DATA, name="staged"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture()
def directory(tmp_path):
    return DirectoryOutputs(str(tmp_path / "out"), "My Web", "1.0", warn=lambda message: None)


# ---- DirectoryOutputs

def test_directory_locate_uses_imgadm_names(directory, tmp_path):
    manifest_path, file_path = directory.locate(manifest_for(UUID), "gzip")

    assert manifest_path == str(tmp_path / "out" / "my-web-1.0.imgmanifest")
    assert file_path == str(tmp_path / "out" / "my-web-1.0.zfs.gz")


def test_directory_locate_zvol(directory, tmp_path):
    manifest_path, file_path = directory.locate(manifest_for(UUID, type="zvol"), "none")

    assert file_path == str(tmp_path / "out" / "my-web-1.0.zvol")


def test_directory_record_path(directory, tmp_path):
    assert directory.record_path == str(tmp_path / "out" / "my-web-1.0.build.json")


def test_directory_publish_writes_all_three(directory, tmp_path):
    manifest = manifest_for(UUID)
    manifest_path, file_path = directory.locate(manifest, "gzip")
    directory.prepare(file_path + ".partial")
    staged = stage(tmp_path / "out", name="my-web-1.0.zfs.gz.partial")

    directory.publish(staged, manifest, record_for(manifest, manifest_path, file_path), None)

    expected = ["my-web-1.0.build.json", "my-web-1.0.imgmanifest", "my-web-1.0.zfs.gz"]
    assert sorted(os.listdir(tmp_path / "out")) == expected
    assert verify_outputs(read_record(directory.record_path, print), manifest_path, file_path) is None


def test_directory_publish_removes_previous_file_of_other_compression(directory, tmp_path):
    old = manifest_for(UUID, "xz")
    old_manifest_path, old_file_path = directory.locate(old, "xz")
    directory.prepare(old_file_path + ".partial")
    directory.publish(stage(tmp_path / "out", name="a.partial"), old, record_for(old, old_manifest_path, old_file_path),
                      None)
    previous = read_record(directory.record_path, print)
    new = manifest_for(NEW_UUID, "gzip")
    manifest_path, file_path = directory.locate(new, "gzip")

    actions = directory.publish(stage(tmp_path / "out", name="b.partial"), new,
                                record_for(new, manifest_path, file_path), previous)

    assert not os.path.exists(old_file_path)
    assert any("Removed" in action for action in actions)


def test_directory_prepare_removes_stale_partial(directory, tmp_path):
    os.makedirs(tmp_path / "out")
    stale = stage(tmp_path / "out", name="my-web-1.0.zfs.gz.partial")

    directory.prepare(stale)

    assert not os.path.exists(stale)


def test_directory_check_rejects_file(tmp_path):
    (tmp_path / "out").write_text("")
    outputs = DirectoryOutputs(str(tmp_path / "out"), "web", "1", warn=print)

    with pytest.raises(ImageError, match="is not a directory"):
        outputs.check()


# ---- verify_outputs

def written_outputs(tmp_path):
    manifest = manifest_for(UUID)
    manifest_path, file_path = str(tmp_path / "m.imgmanifest"), str(tmp_path / "f.zfs.gz")
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle, indent=2)
    with open(file_path, "wb") as handle:
        handle.write(DATA)
    return record_for(manifest, manifest_path, file_path), manifest_path, file_path


def test_verify_intact_outputs(tmp_path):
    record, manifest_path, file_path = written_outputs(tmp_path)

    assert verify_outputs(record, manifest_path, file_path) is None


def overwrite(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


BREAKAGES = [
    ("manifest missing", lambda m, f: os.unlink(m), "manifest .* is missing"),
    ("manifest not JSON", lambda m, f: overwrite(m, b"{"), "is unreadable"),
    ("manifest edited", lambda m, f: overwrite(m, json.dumps(manifest_for(UUID, name="x")).encode()),
     "differs from the one the build wrote"),
    ("file missing", lambda m, f: os.unlink(f), "image file .* is missing"),
    ("file truncated", lambda m, f: overwrite(f, DATA[:-1]), "no longer matches its manifest"),
    ("file altered, same size", lambda m, f: overwrite(f, DATA.upper()), "no longer matches its manifest"),
]


@pytest.mark.parametrize("breakage, fragment", [c[1:] for c in BREAKAGES], ids=[c[0] for c in BREAKAGES])
def test_verify_reports(tmp_path, breakage, fragment):
    record, manifest_path, file_path = written_outputs(tmp_path)

    breakage(manifest_path, file_path)
    reason = verify_outputs(record, manifest_path, file_path)

    assert reason is not None
    assert re.search(fragment, reason)


# ---- build records

RECORDS = [
    ("not JSON", "{", "unreadable"),
    ("other format", json.dumps({"format": 2, "manifest": {}}), "not a format 1 build record"),
    ("no manifest", json.dumps({"format": 1}), "not a format 1 build record"),
    ("manifest without uuid", json.dumps({"format": 1, "manifest": {}, "uuid": UUID, "manifest_path": "m",
                                          "file_path": "f"}), "not a format 1 build record"),
    ("no paths", json.dumps({"format": 1, "manifest": {"uuid": UUID}, "uuid": UUID}), "not a format 1 build record"),
]


@pytest.mark.parametrize("text, fragment", [c[1:] for c in RECORDS], ids=[c[0] for c in RECORDS])
def test_unusable_record_is_a_warning(tmp_path, text, fragment):
    path = tmp_path / "x.build.json"
    path.write_text(text)
    warnings = []

    assert read_record(str(path), warnings.append) is None
    assert fragment in warnings[0]


def test_missing_record_is_none_without_warning(tmp_path):
    warnings = []

    assert read_record(str(tmp_path / "x.build.json"), warnings.append) is None
    assert warnings == []


# ---- RepositoryOutputs

def published(repository, tmp_path, uuid, slot=None, name="staged", **extra):
    manifest = manifest_for(uuid, **extra)
    directory = image_dir(repository, uuid)
    record = record_for(manifest, os.path.join(directory, "manifest.json"), os.path.join(directory, "file"), slot)
    publish_image(repository, manifest, stage(tmp_path, name=name), extra_files={"build.json": record_text(record)})
    return record


@pytest.fixture()
def repository(tmp_path):
    return str(tmp_path / "repo")


def test_repository_finds_record_of_slot(repository, tmp_path):
    published(repository, tmp_path, UUID)
    published(repository, tmp_path, NEW_UUID, slot={"name": "other", "version": "1.0"})
    outputs = RepositoryOutputs(repository, "My Web", "1.0", warn=print)

    assert outputs.find_record(None)["uuid"] == UUID


def test_repository_finds_no_record_of_other_slot(repository, tmp_path):
    published(repository, tmp_path, UUID, slot={"name": "other", "version": "1.0"})
    outputs = RepositoryOutputs(repository, "My Web", "1.0", warn=print)

    assert outputs.find_record(None) is None


def test_repository_rejects_foreign_image_under_requested_uuid(repository, tmp_path):
    publish_image(repository, manifest_for(UUID), stage(tmp_path))
    outputs = RepositoryOutputs(repository, "My Web", "1.0", warn=print)

    with pytest.raises(ImageError, match="which this task did not build"):
        outputs.check_target(UUID)


def test_repository_accepts_own_image_under_requested_uuid(repository, tmp_path):
    published(repository, tmp_path, UUID)
    outputs = RepositoryOutputs(repository, "My Web", "1.0", warn=print)

    outputs.check_target(UUID)


def test_repository_publish_removes_previous_build(repository, tmp_path):
    previous = published(repository, tmp_path, UUID)
    outputs = RepositoryOutputs(repository, "My Web", "1.0", warn=print)
    manifest = manifest_for(NEW_UUID)
    staged = outputs.staging_path("")
    outputs.prepare(staged)
    with open(staged, "wb") as handle:
        handle.write(DATA)

    outputs.publish(staged, manifest, record_for(manifest, "m", "f"), previous)

    assert os.listdir(os.path.join(repository, "images")) == [NEW_UUID]


def test_repository_publish_keeps_previous_build_with_children(repository, tmp_path):
    previous = published(repository, tmp_path, UUID)
    published(repository, tmp_path, CHILD, slot={"name": "child", "version": "1"}, origin=UUID)
    warnings = []
    outputs = RepositoryOutputs(repository, "My Web", "1.0", warn=warnings.append)
    manifest = manifest_for(NEW_UUID)
    staged = outputs.staging_path("")
    with open(staged, "wb") as handle:
        handle.write(DATA)

    outputs.publish(staged, manifest, record_for(manifest, "m", "f"), previous)

    assert sorted(os.listdir(os.path.join(repository, "images"))) == sorted([UUID, NEW_UUID, CHILD])
    assert CHILD in warnings[0]
