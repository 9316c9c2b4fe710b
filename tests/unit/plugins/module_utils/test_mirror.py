"""``Mirror`` planning and copying against the fault server on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid as uuidlib

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ChecksumError,
    DownloadError,
    ImageError,
    ImageNotFoundError,
)
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._mirror import (
    DOWNLOAD_DIR_NAME,
    Mirror,
    MirrorRequest,
    parse_requests,
    source_free_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._repository import (
    image_dir,
    read_file_record,
    read_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._sources import Source, client_for
from tests.support.fault_server import FaultServer
from tests.support.imagebuilder import random_payload

OWNER = "11111111-1111-4111-8111-111111111111"


class Catalog:
    """Images with real files, served by one fault server."""

    def __init__(self, server, directory):
        self.server = server
        self.directory = directory
        self.data = {}

    def add(self, name, version="1.0.0", origin=None, size=64 * 1024, published_at="2024-05-01T12:00:00.000Z",
            state="active", seed=None):
        data = random_payload(size, seed=seed if seed is not None else len(self.data) + 1)
        manifest = {
            "v": 2,
            "uuid": str(uuidlib.uuid4()),
            "owner": OWNER,
            "name": name,
            "version": version,
            "state": state,
            "disabled": state == "disabled",
            "public": True,
            "published_at": published_at,
            "type": "zone-dataset",
            "os": "smartos",
            "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "gzip"}],
        }
        if origin:
            manifest["origin"] = origin["uuid"]
        path = os.path.join(self.directory, manifest["uuid"] + ".file")
        with open(path, "wb") as handle:
            handle.write(data)
        self.server.add(manifest, path)
        self.data[manifest["uuid"]] = data
        return manifest


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


@pytest.fixture
def catalog(server, tmp_path):
    directory = tmp_path / "served"
    directory.mkdir()
    return Catalog(server, str(directory))


@pytest.fixture
def repository(tmp_path):
    return str(tmp_path / "repository")


def make_mirror(server, repository, source_type="imgapi", **extra):
    url = server.url + ("/datasets" if source_type == "dsapi" else "")
    http = HttpClient(connect_timeout=5, read_timeout=5, retries=2, backoff=0.01)
    client = client_for(Source(url=url, type=source_type), http)
    return Mirror(repository=repository, client=client, http=http, **extra)


def mirror_uuids(server, repository, *uuids, **extra):
    mirror = make_mirror(server, repository, **extra)
    plan = mirror.plan([MirrorRequest(uuid=uuid) for uuid in uuids])
    return plan, mirror.apply(plan)


def stored_file(repository, uuid):
    with open(os.path.join(image_dir(repository, uuid), "file"), "rb") as handle:
        return handle.read()


def test_copies_image_with_origin_chain(server, catalog, repository):
    base = catalog.add("base")
    middle = catalog.add("middle", origin=base)
    top = catalog.add("top", origin=middle)

    plan, copied = mirror_uuids(server, repository, top["uuid"])

    assert [remote.manifest["uuid"] for remote in plan.steps] == [base["uuid"], middle["uuid"], top["uuid"]]
    assert [remote.manifest["uuid"] for remote in copied] == [base["uuid"], middle["uuid"], top["uuid"]]
    for manifest in (base, middle, top):
        assert read_manifest(repository, manifest["uuid"]) == manifest
        assert stored_file(repository, manifest["uuid"]) == catalog.data[manifest["uuid"]]


def test_checksum_record_is_current(server, catalog, repository):
    image = catalog.add("base")

    mirror_uuids(server, repository, image["uuid"])

    record = read_file_record(image_dir(repository, image["uuid"]))
    data = catalog.data[image["uuid"]]
    assert record is not None
    assert record["sha1"] == hashlib.sha1(data).hexdigest()
    assert record["md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert record["size"] == len(data)


def test_second_run_copies_nothing(server, catalog, repository):
    base = catalog.add("base")
    child = catalog.add("child", origin=base)
    mirror_uuids(server, repository, child["uuid"])
    server.clear_requests()

    plan, copied = mirror_uuids(server, repository, child["uuid"])

    assert plan.steps == []
    assert copied == []
    assert not any(path.endswith("/file") for method, path, headers in server.requests)


def test_chain_stops_at_mirrored_origin(server, catalog, repository):
    base = catalog.add("base")
    child = catalog.add("child", origin=base)
    mirror_uuids(server, repository, base["uuid"])

    plan = mirror_uuids(server, repository, child["uuid"])[0]

    assert [remote.manifest["uuid"] for remote in plan.steps] == [child["uuid"]]


def test_shared_origin_planned_once(server, catalog, repository):
    base = catalog.add("base")
    one = catalog.add("one", origin=base)
    two = catalog.add("two", origin=base)

    plan = mirror_uuids(server, repository, one["uuid"], two["uuid"])[0]

    assert [remote.manifest["uuid"] for remote in plan.steps] == [base["uuid"], one["uuid"], two["uuid"]]


def test_filters_select_newest_active(server, catalog, repository):
    catalog.add("web", "1.0.0", published_at="2024-01-01T00:00:00.000Z")
    middle = catalog.add("web", "2.0.0", published_at="2024-02-01T00:00:00.000Z")
    newest = catalog.add("web", "3.0.0", published_at="2024-03-01T00:00:00.000Z")
    catalog.add("web", "4.0.0", published_at="2024-04-01T00:00:00.000Z", state="disabled")
    catalog.add("db", "9.0.0", published_at="2024-05-01T00:00:00.000Z")
    mirror = make_mirror(server, repository)

    plan = mirror.plan(parse_requests([{"filters": ["name=web"], "newest": 2}]))

    assert [manifest["uuid"] for manifest in plan.selected] == [middle["uuid"], newest["uuid"]]
    assert [remote.manifest["uuid"] for remote in plan.steps] == [middle["uuid"], newest["uuid"]]


def test_state_filter_lists_every_state(server, catalog, repository):
    catalog.add("web", "1.0.0")
    disabled = catalog.add("web", "2.0.0", state="disabled")
    mirror = make_mirror(server, repository)

    plan = mirror.plan(parse_requests([{"filters": {"name": "web", "state": "disabled"}}]))

    assert [manifest["uuid"] for manifest in plan.selected] == [disabled["uuid"]]


def test_filter_without_match_fails(server, catalog, repository):
    catalog.add("web")
    mirror = make_mirror(server, repository)

    with pytest.raises(ImageNotFoundError, match=r'no image in source .* matches filters \["name=nothing"\]'):
        mirror.plan(parse_requests([{"filters": ["name=nothing"]}]))


def test_unknown_uuid_fails(server, catalog, repository):
    missing = str(uuidlib.uuid4())

    with pytest.raises(ImageNotFoundError, match="image %s was not found in source" % missing):
        mirror_uuids(server, repository, missing)


def test_origin_missing_on_source_fails(server, catalog, repository):
    orphan = catalog.add("orphan", origin={"uuid": str(uuidlib.uuid4())})

    with pytest.raises(ImageNotFoundError, match="the source is incomplete"):
        mirror_uuids(server, repository, orphan["uuid"])


def test_corrupt_file_is_not_published(server, catalog, repository):
    image = catalog.add("base")
    server.set_fault(image["uuid"], "corrupt", offset=100)

    with pytest.raises(ChecksumError, match="sha1 mismatch"):
        mirror_uuids(server, repository, image["uuid"])

    assert read_manifest(repository, image["uuid"]) is None
    assert os.listdir(os.path.join(repository, DOWNLOAD_DIR_NAME)) == ["img.%s.import.lock" % image["uuid"]]


def test_wrong_size_is_not_published(server, catalog, repository):
    image = catalog.add("base")
    server.set_fault(image["uuid"], "wrong_length", delta=5)

    with pytest.raises(DownloadError):
        mirror_uuids(server, repository, image["uuid"])

    assert read_manifest(repository, image["uuid"]) is None


def test_interrupted_download_resumes(server, catalog, repository):
    image = catalog.add("base", size=512 * 1024)
    server.set_fault(image["uuid"], "fail_times", times=1, after=100 * 1024)

    copied = mirror_uuids(server, repository, image["uuid"])[1]

    assert [remote.manifest["uuid"] for remote in copied] == [image["uuid"]]
    assert stored_file(repository, image["uuid"]) == catalog.data[image["uuid"]]
    ranges = [headers.get("range") for method, path, headers in server.requests if path.endswith("/file")]
    assert ranges == [None, "bytes=102400-"]


def test_partial_kept_when_retries_run_out(server, catalog, repository):
    image = catalog.add("base", size=256 * 1024)
    server.set_fault(image["uuid"], "fail_times", times=10, after=64 * 1024)

    with pytest.raises(DownloadError, match="the next run resumes it"):
        mirror_uuids(server, repository, image["uuid"])
    server.clear_faults()
    copied = mirror_uuids(server, repository, image["uuid"])[1]

    assert [remote.manifest["uuid"] for remote in copied] == [image["uuid"]]
    assert stored_file(repository, image["uuid"]) == catalog.data[image["uuid"]]


def test_file_of_wrong_size_is_copied_again(server, catalog, repository):
    image = catalog.add("base")
    mirror_uuids(server, repository, image["uuid"])
    with open(os.path.join(image_dir(repository, image["uuid"]), "file"), "ab") as handle:
        handle.write(b"extra")

    plan, copied = mirror_uuids(server, repository, image["uuid"])

    assert [remote.manifest["uuid"] for remote in copied] == [image["uuid"]]
    assert stored_file(repository, image["uuid"]) == catalog.data[image["uuid"]]


def test_dsapi_source_stores_plain_manifest(server, catalog, repository):
    base = catalog.add("base")
    child = catalog.add("child", origin=base)

    copied = mirror_uuids(server, repository, child["uuid"], source_type="dsapi")[1]

    assert [remote.manifest["uuid"] for remote in copied] == [base["uuid"], child["uuid"]]
    stored = read_manifest(repository, child["uuid"])
    assert stored == child
    assert "url" not in stored["files"][0]
    assert stored_file(repository, child["uuid"]) == catalog.data[child["uuid"]]


def test_dsapi_filters(server, catalog, repository):
    catalog.add("web", "1.0.0", published_at="2024-01-01T00:00:00.000Z")
    newest = catalog.add("web", "2.0.0", published_at="2024-02-01T00:00:00.000Z")
    mirror = make_mirror(server, repository, source_type="dsapi")

    plan = mirror.plan(parse_requests([{"filters": ["name=web"], "newest": 1}]))
    mirror.apply(plan)

    assert [manifest["uuid"] for manifest in plan.selected] == [newest["uuid"]]
    assert read_manifest(repository, newest["uuid"]) == newest


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_ownership_is_set(server, catalog, repository):
    image = catalog.add("base")

    mirror_uuids(server, repository, image["uuid"], owner=65534, group=65534)

    directory = image_dir(repository, image["uuid"])
    for path in [directory] + [os.path.join(directory, name) for name in ("file", "manifest.json", "file.json")]:
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (65534, 65534)


def test_source_free_manifest_drops_dsapi_fields():
    manifest = {"uuid": "x", "files": [{"sha1": "a", "size": 1, "compression": "gzip", "url": "http://h/f",
                                        "path": "f.zfs.gz"}]}

    cleaned = source_free_manifest(manifest)

    assert cleaned["files"] == [{"sha1": "a", "size": 1, "compression": "gzip"}]
    assert manifest["files"][0]["url"] == "http://h/f"


UUID = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"


def test_parse_requests_accepts_uuids_and_filters():
    requests = parse_requests([UUID, {"uuid": UUID}, {"filters": ["name=web"], "newest": 3},
                               {"filters": {"name": "db", "version": "1.0"}}])

    assert [request.uuid for request in requests] == [UUID, UUID, None, None]
    assert [str(flt) for flt in requests[2].filters] == ["name=web"]
    assert requests[2].newest == 3
    assert [str(flt) for flt in requests[3].filters] == ["name=db", "version=1.0"]


@pytest.mark.parametrize("item, message", [
    ("not-a-uuid", "is not a lower-case image UUID"),
    (UUID.upper(), "is not a lower-case image UUID"),
    (42, "give an image UUID or a dict"),
    ({}, "exactly one of uuid and filters, it has neither"),
    ({"uuid": UUID, "filters": ["name=x"]}, "exactly one of uuid and filters, it has both"),
    ({"uuid": UUID, "newest": 1}, "newest applies to filters only"),
    ({"filters": []}, "give a non-empty list"),
    ({"filters": ["name=x"], "newest": 0}, "newest is 0"),
    ({"filters": ["name=x"], "newest": True}, "newest is True"),
    ({"filters": ["noequals"]}, "invalid filter"),
    ({"uuid": UUID, "name": "x"}, "unknown keys name"),
], ids=["text", "upper", "number", "empty", "both", "newest-uuid", "no-filters", "newest-zero", "newest-bool",
        "bad-filter", "unknown-key"])
def test_parse_requests_rejects(item, message):
    with pytest.raises(ImageError, match=message):
        parse_requests([item])


def test_parse_requests_names_the_item():
    with pytest.raises(ImageError, match=r"images\[1\]"):
        parse_requests([UUID, "bad"])


def test_manifest_file_is_json_with_newline(server, catalog, repository):
    image = catalog.add("base")

    mirror_uuids(server, repository, image["uuid"])

    with open(os.path.join(image_dir(repository, image["uuid"]), "manifest.json"), encoding="utf-8") as handle:
        text = handle.read()
    assert text.endswith("\n")
    assert json.loads(text) == image
