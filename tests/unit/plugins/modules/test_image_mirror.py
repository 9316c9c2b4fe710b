"""The image_mirror module, run as Ansible runs it, against the fault server on loopback."""

from __future__ import annotations

import hashlib
import os
import uuid as uuidlib

import pytest

from tests.support.fault_server import FaultServer
from tests.support.imagebuilder import random_payload
from tests.support.module_runner import run_module


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


def add_image(server, directory, name, origin=None, seed=1):
    data = random_payload(32 * 1024, seed=seed)
    manifest = {
        "v": 2, "uuid": str(uuidlib.uuid4()), "owner": "11111111-1111-4111-8111-111111111111", "name": name,
        "version": "1.0.0", "state": "active", "disabled": False, "public": True,
        "published_at": "2024-05-01T12:00:00.000Z", "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "gzip"}],
    }
    if origin:
        manifest["origin"] = origin["uuid"]
    path = os.path.join(directory, manifest["uuid"] + ".file")
    with open(path, "wb") as handle:
        handle.write(data)
    server.add(manifest, path)
    return manifest


@pytest.fixture
def images(server, tmp_path):
    base = add_image(server, str(tmp_path), "base", seed=1)
    child = add_image(server, str(tmp_path), "child", origin=base, seed=2)
    return base, child


def mirror(server, repository, check=False, **extra):
    args = dict(repository=repository, source=server.url, connect_timeout=5, read_timeout=5, retries=1)
    args.update(extra)
    return run_module("image_mirror", args, check=check)


def test_check_mode_reports_without_writing(server, images, tmp_path):
    base, child = images
    repository = str(tmp_path / "repository")

    result = mirror(server, repository, check=True, images=[child["uuid"]])

    assert result["_rc"] == 0, result.get("msg")
    assert result["changed"] is True
    assert [image["uuid"] for image in result["mirrored"]] == [base["uuid"], child["uuid"]]
    assert result["actions"][0].startswith("Would copy image %s (base@1.0.0), 32768 bytes, from " % base["uuid"])
    assert not os.path.exists(repository)


def test_copies_then_reports_no_change(server, images, tmp_path):
    base, child = images
    repository = str(tmp_path / "repository")

    first = mirror(server, repository, images=[{"filters": ["name=child"]}])
    second = mirror(server, repository, images=[{"filters": ["name=child"]}])

    assert first["_rc"] == 0, first.get("msg")
    assert first["changed"] is True
    assert [image["uuid"] for image in first["mirrored"]] == [base["uuid"], child["uuid"]]
    assert first["images"] == [{"uuid": child["uuid"], "name": "child", "version": "1.0.0", "origin": base["uuid"],
                                "size": 32768}]
    assert first["diff"]["after"]["images"] == ["%s (base@1.0.0)" % base["uuid"], "%s (child@1.0.0)" % child["uuid"]]
    assert second["changed"] is False
    assert second["mirrored"] == []
    assert second["actions"] == []
    assert os.path.isfile(os.path.join(repository, "images", child["uuid"], "file"))


def test_invalid_item_fails_with_message(server, images, tmp_path):
    result = mirror(server, str(tmp_path / "repository"), images=["latest"])

    assert result["failed"] is True
    assert "images[0]: 'latest' is not a lower-case image UUID" in result["msg"]


def test_unknown_owner_fails(server, images, tmp_path):
    result = mirror(server, str(tmp_path / "repository"), images=[images[0]["uuid"]], owner="no-such-user-here")

    assert result["failed"] is True
    assert "owner no-such-user-here is not a user on this host" in result["msg"]


def test_unreachable_source_fails(tmp_path):
    result = run_module("image_mirror", dict(repository=str(tmp_path / "repository"), source="http://127.0.0.1:9",
                                             images=[str(uuidlib.uuid4())], connect_timeout=2, retries=0))

    assert result["failed"] is True
    assert "http://127.0.0.1:9/images/" in result["msg"]
