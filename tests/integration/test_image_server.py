"""The image server as deployed (gunicorn behind nginx, on loopback) with real images and real pools.

The session's built images are published through the write API with
``requests``, then imported by the ``image`` module onto a zfs-fuse pool
from an IMGAPI source and a DSAPI source. ``curl`` checks the headers,
ranges, conditional requests and path tricks as nginx delivers them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess

import pytest
import requests

from tests.support.image_server_stack import ImageServerStack, synthetic_manifest, write_credentials
from tests.support.module_runner import run_module

USER = "publisher"
PASSWORD = "integration test password"
AUTH = (USER, PASSWORD)
MAX_UPLOAD = 8 * 1024 * 1024
# Origins before the images cloned from them.
PUBLISH_ORDER = ("gzip", "bzip2", "xz", "none", "child", "sibling")


def file_digests(path):
    with open(path, "rb") as handle:
        data = handle.read()
    return {
        "size": len(data),
        "sha1": hashlib.sha1(data).hexdigest(),
        "md5": base64.b64encode(hashlib.md5(data).digest()).decode("ascii"),
    }


def publish(url, manifest, file_path):
    uuid = manifest["uuid"]
    imported = requests.post("%s/images/%s" % (url, uuid), params={"action": "import"}, json=manifest, auth=AUTH,
                             timeout=30)
    assert imported.status_code == 200, imported.text
    with open(file_path, "rb") as handle:
        uploaded = requests.put("%s/images/%s/file" % (url, uuid),
                                params={"compression": manifest["files"][0]["compression"],
                                        "sha1": manifest["files"][0]["sha1"]},
                                data=handle, auth=AUTH, timeout=60,
                                headers={"Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 200, uploaded.text
    activated = requests.post("%s/images/%s" % (url, uuid), params={"action": "activate"}, auth=AUTH, timeout=30)
    assert activated.status_code == 200, activated.text
    return activated.json()


@pytest.fixture(scope="module")
def server(images, tmp_path_factory):
    work = tmp_path_factory.mktemp("image-server")
    repository = str(work / "repo")
    os.makedirs(repository)
    credentials = write_credentials(str(work / "credentials"), USER, PASSWORD)
    with ImageServerStack(repository, work_dir=str(work / "stack"), credentials=credentials,
                          max_upload=MAX_UPLOAD) as stack:
        stack.published = {name: publish(stack.url, images[name].manifest, images[name].file_path)
                           for name in PUBLISH_ORDER}
        yield stack


def ensure(target, **args):
    return run_module("image", target.args(**args))


def assert_ok(result):
    assert result["_rc"] == 0, result.get("msg")
    assert not result.get("failed"), result.get("msg")


def curl(*arguments):
    """Run curl and return ``(status, headers by lower-case name, body)`` of the final response."""
    completed = subprocess.run(["curl", "-sS", "--max-time", "30", "-D", "-", "-o", "-", *arguments],
                               capture_output=True, check=False)
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    raw = completed.stdout
    head, _separator, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _colon, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return status, headers, body


# ---- publishing

def test_published_images_are_listed(server, images):
    listed = requests.get(server.url + "/images", timeout=10).json()

    assert sorted(image["uuid"] for image in listed) == sorted(images[name].uuid for name in PUBLISH_ORDER)
    assert {image["state"] for image in listed} == {"active"}


def test_published_manifest_keeps_checksums(server, images):
    manifest = requests.get("%s/images/%s" % (server.url, images["xz"].uuid), timeout=10).json()

    assert manifest["files"][0]["sha1"] == images["xz"].manifest["files"][0]["sha1"]
    assert manifest["files"][0]["size"] == images["xz"].manifest["files"][0]["size"]
    assert manifest["published_at"] == images["xz"].manifest["published_at"]


# ---- the image module importing from the server

@pytest.mark.parametrize("name", ["gzip", "bzip2", "xz", "none"])
def test_module_imports_from_imgapi_source(target, images, server, name):
    image = images[name]

    result = ensure(target, uuid=image.uuid, sources=[{"url": server.url}])
    again = ensure(target, uuid=image.uuid, sources=[{"url": server.url}])

    assert_ok(result)
    assert result["imported"] == [image.uuid]
    assert target.snapshots(image.uuid) == ["final"]
    assert target.read_files(image.uuid, images.files[name]) == images.files[name]
    assert target.leftovers() == []
    assert_ok(again)
    assert again["changed"] is False


def test_module_imports_origin_chain_from_imgapi_source(target, images, server):
    child, base = images["child"], images["gzip"]

    result = ensure(target, uuid=child.uuid, sources=[{"url": server.url}])

    assert_ok(result)
    assert result["imported"] == [base.uuid, child.uuid]
    assert target.origin(child.uuid) == target.dataset(base.uuid) + "@final"
    assert target.read_files(child.uuid, images.files["child"]) == images.files["child"]


def test_module_selects_by_name_from_server(target, images, server):
    result = ensure(target, name="sibling", version="1.0.0", sources=[{"url": server.url}])

    assert_ok(result)
    assert result["imported"] == [images["gzip"].uuid, images["sibling"].uuid]


def test_module_imports_from_dsapi_source(target, images, server):
    child, base = images["child"], images["gzip"]
    sources = [{"url": server.url + "/datasets", "type": "dsapi"}]

    result = ensure(target, uuid=child.uuid, sources=sources)

    assert_ok(result)
    assert result["imported"] == [base.uuid, child.uuid]
    assert target.read_files(child.uuid, images.files["child"]) == images.files["child"]
    assert target.leftovers() == []


# ---- file delivery through nginx

def test_file_headers_through_nginx(server, images):
    image = images["bzip2"]
    expected = file_digests(image.file_path)

    status, headers, body = curl("%s/images/%s/file" % (server.url, image.uuid))

    assert status == 200
    assert headers["content-length"] == str(expected["size"])
    assert headers["content-md5"] == expected["md5"]
    assert headers["etag"] == '"%s"' % expected["sha1"]
    assert "last-modified" in headers
    assert headers["content-type"] == "application/octet-stream"
    assert hashlib.sha1(body).hexdigest() == expected["sha1"]


def test_file_head_through_nginx(server, images):
    image = images["gzip"]

    response = requests.head("%s/images/%s/file" % (server.url, image.uuid), timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(image.manifest["files"][0]["size"])
    assert response.headers["Content-MD5"] == file_digests(image.file_path)["md5"]
    assert response.content == b""


def test_file_range_through_nginx(server, images):
    image = images["gzip"]
    with open(image.file_path, "rb") as handle:
        data = handle.read()

    status, headers, body = curl("-H", "Range: bytes=100-199", "%s/images/%s/file" % (server.url, image.uuid))

    assert status == 206
    assert body == data[100:200]
    assert headers["content-range"] == "bytes 100-199/%d" % len(data)
    assert headers["content-length"] == "100"


def test_file_range_beyond_end_through_nginx(server, images):
    image = images["gzip"]
    size = image.manifest["files"][0]["size"]

    status, headers, _body = curl("-H", "Range: bytes=%d-" % size, "%s/images/%s/file" % (server.url, image.uuid))

    assert status == 416
    assert headers["content-range"] == "bytes */%d" % size


@pytest.mark.parametrize("header", ["If-None-Match", "If-Modified-Since"])
def test_file_not_modified_through_nginx(server, images, header):
    url = "%s/images/%s/file" % (server.url, images["xz"].uuid)
    _status, first, _body = curl("-I", url)
    value = first["etag"] if header == "If-None-Match" else first["last-modified"]

    status, headers, body = curl("-H", "%s: %s" % (header, value), url)

    assert status == 304
    assert body == b""
    assert headers["etag"] == first["etag"]


def test_if_range_with_current_etag_through_nginx(server, images):
    url = "%s/images/%s/file" % (server.url, images["xz"].uuid)
    _status, first, _body = curl("-I", url)

    current, _headers, _body = curl("-H", "Range: bytes=0-9", "-H", "If-Range: " + first["etag"], url)
    other, _headers, _body = curl("-H", "Range: bytes=0-9", "-H", 'If-Range: "other"', url)

    assert current == 206
    assert other == 200


def test_dsapi_listing_urls_use_host_header(server, images):
    _status, _headers, body = curl("-H", "Host: images.example:8443", server.url + "/datasets")

    urls = [dataset["files"][0]["url"] for dataset in json.loads(body)]
    assert "http://images.example:8443/datasets/%s/file" % images["gzip"].uuid in urls


def test_dsapi_file_url_serves_file(server, images):
    dataset = requests.get("%s/datasets/%s" % (server.url, images["none"].uuid), timeout=10).json()

    response = requests.get(dataset["files"][0]["url"], timeout=30)

    assert response.status_code == 200
    assert hashlib.sha1(response.content).hexdigest() == images["none"].manifest["files"][0]["sha1"]


@pytest.mark.parametrize("path", [
    "/images/../../../../etc/passwd",
    "/images/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/images/..%2f..%2f..%2fetc%2fpasswd",
    "/_repository/../../../../etc/passwd",
    "/datasets/..%2f..%2f..%2f..%2fetc/passwd",
    "/images/%00/file",
    "//etc/passwd",
    "/images/%2Fetc%2Fpasswd/file",
])
def test_path_tricks_never_escape(server, path):
    status, _headers, body = curl("--path-as-is", server.url + path)

    assert 400 <= status < 500
    assert b"root:" not in body


def test_internal_location_is_not_reachable(server, images):
    status, _headers, _body = curl("%s/_repository/%s/file" % (server.url, images["gzip"].uuid))

    assert status == 404


def test_huge_header_is_rejected(server):
    status, _headers, _body = curl("-H", "X-Filler: " + "a" * 20000, server.url + "/images")

    assert status in (400, 431)


# ---- uploads through nginx

def test_chunked_upload_streams_through_nginx(server):
    data = os.urandom(6 * 1024 * 1024)
    manifest = synthetic_manifest(1, "2031-01-01T00:00:00Z", data)

    def chunks():
        for start in range(0, len(data), 256 * 1024):
            yield data[start:start + 256 * 1024]

    imported = requests.post("%s/images/%s" % (server.url, manifest["uuid"]), params={"action": "import"},
                             json=manifest, auth=AUTH, timeout=30)
    uploaded = requests.put("%s/images/%s/file" % (server.url, manifest["uuid"]), params={"compression": "none"},
                            data=chunks(), auth=AUTH, timeout=60)
    deleted = requests.delete("%s/images/%s" % (server.url, manifest["uuid"]), auth=AUTH, timeout=30)

    assert imported.status_code == 200
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["files"][0]["sha1"] == hashlib.sha1(data).hexdigest()
    assert deleted.status_code == 204


def test_upload_over_server_maximum_is_rejected(server):
    data = b"x" * (MAX_UPLOAD + 1)
    manifest = synthetic_manifest(2, "2031-01-01T00:00:00Z", data)
    requests.post("%s/images/%s" % (server.url, manifest["uuid"]), params={"action": "import"}, json=manifest,
                  auth=AUTH, timeout=30)

    uploaded = requests.put("%s/images/%s/file" % (server.url, manifest["uuid"]), params={"compression": "none"},
                            data=data, auth=AUTH, timeout=60)
    requests.delete("%s/images/%s" % (server.url, manifest["uuid"]), auth=AUTH, timeout=30)

    assert uploaded.status_code == 400
    assert uploaded.json()["code"] == "Upload"
    assert os.listdir(os.path.join(server.repository, ".imgapi", "tmp")) == []


def test_write_without_credentials_through_nginx(server, images):
    response = requests.delete("%s/images/%s" % (server.url, images["sibling"].uuid), timeout=10)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_delete_origin_refused_through_nginx(server, images):
    response = requests.delete("%s/images/%s" % (server.url, images["gzip"].uuid), auth=AUTH, timeout=10)

    assert response.status_code == 422
    assert response.json()["code"] == "ImageHasDependentImages"


def test_request_log_names_method_path_status(server, images):
    requests.get("%s/images/%s" % (server.url, images["xz"].uuid), timeout=10)

    log = server.read_app_log()

    assert "GET /images/%s 200" % images["xz"].uuid in log
    assert PASSWORD not in log
