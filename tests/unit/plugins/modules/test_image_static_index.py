"""The image_static_index module, run as Ansible runs it."""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.smartos.images.plugins.module_utils._repository import publish_image
from tests.support.module_runner import run_module

UUID = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
DATA = b"zfs stream bytes"


def publish(repository, tmp_path):
    manifest = {"v": 2, "uuid": UUID, "owner": "11111111-1111-4111-8111-111111111111", "name": "base",
                "version": "1.0.0", "state": "active", "disabled": False, "public": True,
                "published_at": "2024-05-01T12:00:00.000Z", "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": hashlib.sha1(DATA).hexdigest(), "size": len(DATA), "compression": "gzip"}]}
    path = tmp_path / "image.file"
    path.write_bytes(DATA)
    publish_image(repository, manifest, str(path))


def index(repository, check=False, **extra):
    return run_module("image_static_index", dict(repository=repository, url="http://127.0.0.1:8080", **extra),
                      check=check)


def test_writes_index_then_reports_no_change(tmp_path):
    repository = str(tmp_path / "repository")
    publish(repository, tmp_path)

    check = index(repository, check=True)
    first = index(repository)
    second = index(repository)

    assert check["changed"] is True
    assert check["written"] == ["datasets.json", "datasets/%s.json" % UUID, "images.json"]
    assert first["changed"] is True
    assert first["dest"] == os.path.join(repository, "index")
    assert first["images"] == [UUID]
    assert first["diff"] == {"before": {"dest": first["dest"], "images": []},
                             "after": {"dest": first["dest"], "images": [UUID]}}
    assert second["changed"] is False
    assert second["written"] == []
    with open(os.path.join(repository, "index", "datasets.json"), encoding="utf-8") as handle:
        listed = json.load(handle)
    assert listed[0]["files"][0]["url"] == "http://127.0.0.1:8080/datasets/%s/base-1.0.0.zfs.gz" % UUID


def test_dest_option(tmp_path):
    repository = str(tmp_path / "repository")
    publish(repository, tmp_path)
    dest = str(tmp_path / "web")

    result = index(repository, dest=dest)

    assert result["dest"] == dest
    assert os.path.isfile(os.path.join(dest, "images.json"))


def test_invalid_url_fails(tmp_path):
    result = run_module("image_static_index", dict(repository=str(tmp_path), url="images.example.com"))

    assert result["failed"] is True
    assert "url 'images.example.com' is not an http or https URL" in result["msg"]


def test_missing_repository_fails(tmp_path):
    result = index(str(tmp_path / "missing"))

    assert result["failed"] is True
    assert "is not a directory" in result["msg"]
