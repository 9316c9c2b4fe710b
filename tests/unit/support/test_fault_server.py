"""Self-check of the fault server: every fault kind, ranges and paging, over real HTTP."""

import base64
import hashlib
import http.client
import json
import time
import urllib.error
import urllib.request
import uuid as uuidlib

import pytest

from tests.support.fault_server import FaultServer, parse_fault_spec
from tests.support.imagebuilder import random_payload

FILE_SIZE = 300 * 1024
PUBLISHED_AT = "2024-05-01T12:00:00.000Z"


def make_manifest(image_uuid=None, published_at=PUBLISHED_AT, **fields):
    manifest = {
        "v": 2,
        "uuid": image_uuid or str(uuidlib.uuid4()),
        "owner": "11111111-1111-4111-8111-111111111111",
        "name": "base",
        "version": "1.0.0",
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": published_at,
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": "0" * 40, "size": FILE_SIZE, "compression": "gzip"}],
    }
    manifest.update(fields)
    return manifest


def fetch(url, headers=None, method="GET", timeout=5):
    """Return ``(status, headers, body)``; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture
def payload():
    return random_payload(FILE_SIZE, "fault-server-selfcheck")


@pytest.fixture
def image_file(tmp_path, payload):
    path = tmp_path / "image.file"
    path.write_bytes(payload)
    return path


@pytest.fixture
def manifest():
    return make_manifest()


@pytest.fixture
def server(manifest, image_file):
    with FaultServer() as running:
        running.add(manifest, image_file)
        yield running


def file_url(server, manifest):
    return f"{server.url}/images/{manifest['uuid']}/file"


def test_ping_reports_imgapi(server):
    status, _unused, body = fetch(f"{server.url}/ping")

    pong = json.loads(body)
    assert status == 200
    assert pong["ping"] == "pong"
    assert pong["imgapi"] is True
    assert pong["version"] == "4.0.0"
    assert isinstance(pong["pid"], int)


def test_manifest_returned(server, manifest):
    status, headers, body = fetch(f"{server.url}/images/{manifest['uuid']}")

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == manifest


def test_unknown_manifest_is_404(server):
    status, _unused, body = fetch(f"{server.url}/images/{uuidlib.uuid4()}")

    assert status == 404
    assert json.loads(body)["code"] == "ResourceNotFound"


def test_unknown_path_is_404(server):
    status, _unused, body = fetch(f"{server.url}/images/not-a-uuid")

    assert status == 404
    assert json.loads(body)["code"] == "ResourceNotFound"


def test_file_served_whole(server, manifest, payload):
    status, headers, body = fetch(file_url(server, manifest))

    assert status == 200
    assert body == payload
    assert headers["Content-Length"] == str(FILE_SIZE)
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(payload).digest()).decode()
    assert headers["ETag"] == f'"{hashlib.sha1(payload).hexdigest()}"'
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "application/octet-stream"


def test_head_file_sends_headers_only(server, manifest):
    status, headers, body = fetch(file_url(server, manifest), method="HEAD")

    assert status == 200
    assert headers["Content-Length"] == str(FILE_SIZE)
    assert body == b""


def test_range_from_offset_is_206(server, manifest, payload):
    status, headers, body = fetch(file_url(server, manifest), {"Range": "bytes=100000-"})

    assert status == 206
    assert body == payload[100000:]
    assert headers["Content-Length"] == str(FILE_SIZE - 100000)
    assert headers["Content-Range"] == f"bytes 100000-{FILE_SIZE - 1}/{FILE_SIZE}"
    assert "Content-MD5" not in headers


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=-5", FILE_SIZE - 5, FILE_SIZE - 1),
        ("bytes=0-", 0, FILE_SIZE - 1),
    ],
)
def test_range_forms(server, manifest, payload, header, start, end):
    status, headers, body = fetch(file_url(server, manifest), {"Range": header})

    assert status == 206
    assert body == payload[start : end + 1]
    assert headers["Content-Range"] == f"bytes {start}-{end}/{FILE_SIZE}"


def test_range_past_end_is_416(server, manifest):
    status, headers, _unused = fetch(file_url(server, manifest), {"Range": f"bytes={FILE_SIZE}-"})

    assert status == 416
    assert headers["Content-Range"] == f"bytes */{FILE_SIZE}"


def test_corrupt_flips_bytes(server, manifest, payload):
    server.set_fault(manifest["uuid"], "corrupt", offset=70000, count=3)

    status, headers, body = fetch(file_url(server, manifest))

    assert status == 200
    assert len(body) == FILE_SIZE
    assert body != payload
    assert body[:70000] == payload[:70000]
    assert body[70003:] == payload[70003:]
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(payload).digest()).decode()


def test_corrupt_leaves_manifest_alone(server, manifest):
    server.set_fault(manifest["uuid"], "corrupt")

    status, _unused, body = fetch(f"{server.url}/images/{manifest['uuid']}")

    assert status == 200
    assert json.loads(body) == manifest


def test_truncate_cuts_body(server, manifest):
    server.set_fault(manifest["uuid"], "truncate", after=5000)
    request = urllib.request.Request(file_url(server, manifest))

    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Length"] == str(FILE_SIZE)
        with pytest.raises(http.client.IncompleteRead) as raised:
            response.read()

    assert len(raised.value.partial) == 5000


def test_wrong_length_longer_is_incomplete(server, manifest, payload):
    server.set_fault(manifest["uuid"], "wrong_length", delta=10)
    request = urllib.request.Request(file_url(server, manifest))

    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Length"] == str(FILE_SIZE + 10)
        with pytest.raises(http.client.IncompleteRead) as raised:
            response.read()

    assert raised.value.partial == payload


def test_wrong_length_shorter_is_short(server, manifest, payload):
    server.set_fault(manifest["uuid"], "wrong_length", delta=-10)

    status, headers, body = fetch(file_url(server, manifest))

    assert status == 200
    assert headers["Content-Length"] == str(FILE_SIZE - 10)
    assert body == payload[:-10]


def test_stall_hits_read_timeout(server, manifest):
    server.set_fault(manifest["uuid"], "stall", after=1000, seconds=30)
    request = urllib.request.Request(file_url(server, manifest))

    with urllib.request.urlopen(request, timeout=1) as response:
        with pytest.raises(TimeoutError):
            response.read()


def test_close_during_stall_is_prompt(manifest, image_file):
    server = FaultServer()
    server.start()
    server.add(manifest, image_file)
    server.set_fault(None, "stall", after=0, seconds=60)
    request = urllib.request.Request(file_url(server, manifest))
    response = urllib.request.urlopen(request, timeout=10)

    started = time.monotonic()
    server.close()
    elapsed = time.monotonic() - started

    assert elapsed < 3
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    response.close()


def test_stall_then_rest_arrives(server, manifest, payload):
    server.set_fault(manifest["uuid"], "stall", after=2000, seconds=0.2)

    status, _unused, body = fetch(file_url(server, manifest))

    assert status == 200
    assert body == payload


def test_status_fault_on_any_route(server, manifest):
    server.set_fault(None, "status", code=500)

    ping_status, _unused, ping_body = fetch(f"{server.url}/ping")
    file_status, _unused, _unused = fetch(file_url(server, manifest))

    assert ping_status == 500
    assert json.loads(ping_body)["code"] == "InternalError"
    assert file_status == 500


def test_status_fault_limited_to_file(server, manifest):
    server.set_fault(manifest["uuid"], "status", code=503, route="file", message="storage down")

    manifest_status, _unused, _unused = fetch(f"{server.url}/images/{manifest['uuid']}")
    file_status, _unused, file_body = fetch(file_url(server, manifest))

    assert manifest_status == 200
    assert file_status == 503
    assert json.loads(file_body) == {"code": "ServiceUnavailable", "message": "storage down"}


def test_down_closes_without_response(server):
    server.set_fault(None, "down", route="ping")

    with pytest.raises(http.client.RemoteDisconnected):
        fetch(f"{server.url}/ping")


def test_no_content_length(server, manifest, payload):
    server.set_fault(manifest["uuid"], "no_content_length")

    status, headers, body = fetch(file_url(server, manifest))

    assert status == 200
    assert "Content-Length" not in headers
    assert body == payload


def test_no_range_sends_whole_file(server, manifest, payload):
    server.set_fault(manifest["uuid"], "no_range")

    status, headers, body = fetch(file_url(server, manifest), {"Range": "bytes=1000-"})

    assert status == 200
    assert body == payload
    assert "Accept-Ranges" not in headers
    assert "Content-Range" not in headers


def test_no_md5_drops_header(server, manifest):
    server.set_fault(manifest["uuid"], "no_md5")

    status, headers, _unused = fetch(file_url(server, manifest))

    assert status == 200
    assert "Content-MD5" not in headers
    assert headers["ETag"]


def test_fail_times_then_resume(server, manifest, payload):
    server.set_fault(manifest["uuid"], "fail_times", times=2, after=40000)
    received = b""

    for _unused in range(2):
        request = urllib.request.Request(
            file_url(server, manifest), headers={"Range": f"bytes={len(received)}-"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            with pytest.raises(http.client.IncompleteRead) as raised:
                response.read()
        received += raised.value.partial
    status, _unused, rest = fetch(file_url(server, manifest), {"Range": f"bytes={len(received)}-"})

    assert len(received) == 80000
    assert status == 206
    assert received + rest == payload
    ranges = [headers.get("range") for method, path, headers in server.requests]
    assert ranges == ["bytes=0-", "bytes=40000-", "bytes=80000-"]


def test_uuid_fault_spares_other_images(server, manifest, image_file, payload):
    other = make_manifest(name="other")
    server.add(other, image_file)
    server.set_fault(manifest["uuid"], "truncate", after=10)

    status, _unused, body = fetch(file_url(server, other))

    assert status == 200
    assert body == payload


def test_clear_faults(server, manifest, payload):
    server.set_fault(None, "corrupt")
    server.clear_faults()

    _unused, _unused, body = fetch(file_url(server, manifest))

    assert body == payload


def test_requests_logged(server, manifest):
    fetch(f"{server.url}/images?name=base", {"X-Test": "yes"})

    method, path, headers = server.requests[-1]
    assert method == "GET"
    assert path == "/images?name=base"
    assert headers["x-test"] == "yes"


def test_invalid_fault_rejected(server):
    with pytest.raises(ValueError, match="invalid fault kind"):
        server.set_fault(None, "explode")
    with pytest.raises(ValueError, match="invalid parameters"):
        server.set_fault(None, "truncate", seconds=1)
    with pytest.raises(ValueError, match="invalid route"):
        server.set_fault(None, "down", route="icon")


def list_uuids(server, query):
    status, _unused, body = fetch(f"{server.url}/images?{query}")
    assert status == 200, body
    return [image["uuid"] for image in json.loads(body)]


def test_paging_with_shared_published_at(manifest, image_file):
    with FaultServer() as server:
        manifests = [make_manifest(published_at=PUBLISHED_AT) for _unused in range(7)]
        manifests.append(make_manifest(published_at="2024-04-01T00:00:00.000Z"))
        manifests.append(make_manifest(published_at="2024-06-01T00:00:00.000Z"))
        for item in manifests:
            server.add(item, image_file)
        expected = [
            item["uuid"] for item in sorted(manifests, key=lambda m: (m["published_at"], m["uuid"]))
        ]

        seen = list_uuids(server, "limit=2")
        while True:
            page = list_uuids(server, f"limit=2&marker={seen[-1]}")
            if not page:
                break
            seen += page

    assert seen == expected


def test_list_filters_and_state(image_file):
    with FaultServer() as server:
        active = make_manifest(name="base", version="1.0.0")
        newer = make_manifest(name="base", version="2.0.0")
        disabled = make_manifest(name="base", state="disabled", disabled=True)
        other_os = make_manifest(name="kvm", os="linux", type="zvol")
        for item in (active, newer, disabled, other_os):
            server.add(item, image_file)

        by_name = list_uuids(server, "name=base")
        by_version = list_uuids(server, "name=base&version=2.0.0")
        every_state = list_uuids(server, "name=base&state=all")
        by_os = list_uuids(server, "os=linux&type=zvol")
        ignored_channel = list_uuids(server, "channel=dev&os=linux")

    assert sorted(by_name) == sorted([active["uuid"], newer["uuid"]])
    assert by_version == [newer["uuid"]]
    assert sorted(every_state) == sorted([active["uuid"], newer["uuid"], disabled["uuid"]])
    assert by_os == [other_os["uuid"]]
    assert ignored_channel == [other_os["uuid"]]


@pytest.mark.parametrize(
    ("query", "field"), [("limit=abc", "limit"), ("state=gone", "state"), ("marker=nope", "marker")]
)
def test_list_invalid_parameter(server, query, field):
    status, _unused, body = fetch(f"{server.url}/images?{query}")

    error = json.loads(body)
    assert status == 422
    assert error["code"] == "InvalidParameter"
    assert error["errors"][0]["field"] == field


def test_datasets_have_file_url(server, manifest, payload):
    status, _unused, body = fetch(f"{server.url}/datasets")

    datasets = json.loads(body)
    file_entry = datasets[0]["files"][0]
    assert status == 200
    assert file_entry["url"] == f"{server.url}/datasets/{manifest['uuid']}/file"
    assert file_entry["path"] == "base-1.0.0.zfs.gz"
    assert file_entry["sha1"] == manifest["files"][0]["sha1"]
    assert fetch(file_entry["url"])[2] == payload


def test_datasets_newest_first(image_file):
    with FaultServer() as server:
        older = make_manifest(published_at="2020-01-01T00:00:00.000Z")
        newer = make_manifest(published_at="2021-01-01T00:00:00.000Z")
        server.add(older, image_file)
        server.add(newer, image_file)

        _unused, _unused, body = fetch(f"{server.url}/datasets")
        _unused, _unused, by_uuid = fetch(f"{server.url}/datasets/{older['uuid']}")

    assert [item["uuid"] for item in json.loads(body)] == [newer["uuid"], older["uuid"]]
    assert json.loads(by_uuid)["uuid"] == older["uuid"]


def test_absolute_request_target(server, manifest, payload):
    # The DSAPI client in imgadm sends files[0].url itself as the request target.
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", f"{server.url}/datasets/{manifest['uuid']}/file")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()

    assert response.status == 200
    assert body == payload


def test_dataset_file_fault(server, manifest):
    server.set_fault(manifest["uuid"], "status", code=500, route="file")

    status, _unused, body = fetch(f"{server.url}/datasets/{manifest['uuid']}/file")

    assert status == 500
    assert json.loads(body) == {"error": {"message": "injected fault: HTTP 500", "code": 500}}


def test_catalog_directory(tmp_path, payload):
    manifest = make_manifest()
    (tmp_path / f"{manifest['uuid']}.json").write_text(json.dumps(manifest))
    (tmp_path / f"{manifest['uuid']}.file").write_bytes(payload)

    with FaultServer(catalog_dir=tmp_path) as server:
        _unused, _unused, body = fetch(file_url(server, manifest))

    assert body == payload


def test_fault_spec_parsing():
    assert parse_fault_spec("truncate:after=1024,route=file") == (
        None,
        "truncate",
        "file",
        {"after": 1024},
    )
    assert parse_fault_spec("stall:seconds=0.5,uuid=abc") == (
        "abc",
        "stall",
        None,
        {"seconds": 0.5},
    )
    assert parse_fault_spec("down") == (None, "down", None, {})
