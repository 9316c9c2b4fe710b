"""The image server's read side through its WSGI interface: routes, filters, versions, files and errors."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from ansible_collections.smartos.images.plugins.module_utils._imgapi_app import make_app
from ansible_collections.smartos.images.plugins.module_utils._imgapi_http import negotiate_version, ApiError

from tests.support.image_server_stack import synthetic_manifest, write_image
from tests.support.wsgi_client import call

BASE = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
CHILD = "3a9b8c7d-1111-4222-8333-444455556666"
ZVOL = "4b0c9d8e-2222-4333-8444-555566667777"
DISABLED = "5c1d0e9f-3333-4444-8555-666677778888"
UNKNOWN = "6d2e1f00-4444-4555-8666-777788889999"

BASE_DATA = b"base image file bytes\n" * 100
CHILD_DATA = b"child\n"


def manifest(uuid, name, version, published_at, data, **extra):
    result = synthetic_manifest(0, published_at, data, uuid=uuid, name=name)
    result["version"] = version
    result.update(extra)
    return result


@pytest.fixture()
def repository(tmp_path):
    repo = str(tmp_path / "repo")
    os.makedirs(repo)
    write_image(repo, manifest(BASE, "base-64", "1.0.0", "2024-01-01T00:00:00.000Z", BASE_DATA,
                               tags={"role": "os", "lts": True, "nested": {"a": 1}},
                               billing_tags=["small"], traits={"ssd": True}, channels=["release"]), BASE_DATA)
    write_image(repo, manifest(CHILD, "child", "2.0.0", "2024-02-01T00:00:00Z", CHILD_DATA, origin=BASE,
                               os="linux", tags={"role": "app"}, channels=["dev"]), CHILD_DATA)
    write_image(repo, manifest(ZVOL, "ubuntu-certified", "22.04", "2024-03-01T00:00:00Z", CHILD_DATA, type="zvol",
                               os="linux", nic_driver="virtio", disk_driver="virtio", cpu_type="host",
                               image_size=10240, public=False), CHILD_DATA)
    write_image(repo, manifest(DISABLED, "old", "0.1.0", "2023-01-01T00:00:00Z", CHILD_DATA, state="disabled",
                               disabled=True), CHILD_DATA)
    return repo


@pytest.fixture()
def app(repository):
    return make_app({"repository": repository, "accel_prefix": ""})


def uuids(response):
    return [image["uuid"] for image in response.json()]


# ---- ping and routing

def test_ping_identifies_imgapi(app):
    response = call(app, "GET", "/ping")

    assert response.status == 200
    assert response.json()["imgapi"] is True
    assert response.json()["ping"] == "pong"
    assert response.json()["pid"] == os.getpid()
    assert "version" in response.json()


@pytest.mark.parametrize("path", [
    "/", "/nothing", "/images/not-a-uuid", "/images/%s/other" % BASE, "/images/%s/file/extra" % BASE,
    "/images/" + BASE.upper(), "/images/../images/" + BASE, "/images/" + BASE + "/../file",
    "/images//" + BASE, "/images/..%2f" + BASE, "/datasets/not-a-uuid", "/channels", "images",
    "/images/%s/" % BASE, "/etc/passwd", "//etc/passwd", "/images/" + BASE + "/file/../../../../etc/passwd",
])
def test_unknown_paths_are_not_found(app, path):
    response = call(app, "GET", path)

    assert response.status == 404
    assert response.json()["code"] == "ResourceNotFound"


def test_nul_byte_in_path_is_bad_request(app):
    response = call(app, "GET", "/images/" + BASE + "\x00/file")

    assert response.status == 400
    assert response.json()["code"] == "BadRequest"


def test_unknown_uuid_is_not_found(app):
    response = call(app, "GET", "/images/" + UNKNOWN)

    assert response.status == 404
    assert response.json()["code"] == "ResourceNotFound"
    assert UNKNOWN in response.json()["message"]


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/images", "GET, HEAD"),
    ("PUT", "/images/" + BASE, "DELETE, GET, HEAD, POST"),
    ("POST", "/images/%s/file" % BASE, "GET, HEAD, PUT"),
    ("DELETE", "/ping", "GET, HEAD"),
    ("PUT", "/datasets/" + BASE, "GET, HEAD"),
])
def test_wrong_method_lists_allowed(app, method, path, allowed):
    response = call(app, method, path)

    assert response.status == 405
    assert response.json()["code"] == "MethodNotAllowed"
    assert response.headers["allow"] == allowed


def test_errors_are_json_with_code_and_message(app):
    response = call(app, "GET", "/images", query="state=bogus")

    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"code", "message", "errors"}
    assert response.json()["errors"][0]["field"] == "state"


def test_every_response_has_request_id(app):
    response = call(app, "GET", "/ping")

    assert len(response.headers["x-request-id"]) == 36


def test_malformed_query_string_is_bad_request(app):
    response = call(app, "GET", "/images", query="name=%ff%fe")

    assert response.status == 400
    assert response.json()["code"] == "BadRequest"


# ---- ListImages

def test_list_defaults_to_active_oldest_first(app):
    response = call(app, "GET", "/images")

    assert response.status == 200
    assert uuids(response) == [BASE, CHILD, ZVOL]


def test_list_trailing_slash_is_the_list(app):
    assert uuids(call(app, "GET", "/images/")) == [BASE, CHILD, ZVOL]


@pytest.mark.parametrize("query, expected", [
    ("name=child", [CHILD]),
    ("name=~base", [BASE]),
    ("name=~ub", [ZVOL]),
    ("name=base", []),
    ("version=2.0.0", [CHILD]),
    ("version=~.0.", [BASE, CHILD]),
    ("os=linux", [CHILD, ZVOL]),
    ("type=zvol", [ZVOL]),
    ("type=!zvol", [BASE, CHILD]),
    ("public=false", [ZVOL]),
    ("public=true", [BASE, CHILD]),
    ("owner=00000000-0000-0000-0000-000000000000", [BASE, CHILD, ZVOL]),
    ("owner=" + UNKNOWN, []),
    ("tag.role=os", [BASE]),
    ("tag.role=app", [CHILD]),
    ("tag.lts=true", [BASE]),
    ("tag.role=os&tag.lts=false", []),
    ("tag.nested=x", []),
    ("tag.missing=x", []),
    ("billing_tag=small", [BASE]),
    ("billing_tag=small&billing_tag=large", []),
    ("state=active", [BASE, CHILD, ZVOL]),
    ("state=disabled", []),
    ("state=all", [BASE, CHILD, ZVOL]),
    ("state=unactivated", []),
    ("name=child&os=smartos", []),
    ("unknown=ignored", [BASE, CHILD, ZVOL]),
    ("channel=release", [BASE, CHILD, ZVOL]),
])
def test_list_filters(app, query, expected):
    response = call(app, "GET", "/images", query=query)

    assert response.status == 200
    assert uuids(response) == expected


@pytest.mark.parametrize("query, field", [
    ("state=bogus", "state"),
    ("limit=abc", "limit"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=-1", "limit"),
    ("public=yes", "public"),
    ("sort=size", "sort"),
    ("sort=published_at.up", "sort"),
    ("marker=not-a-date", "marker"),
    ("marker=" + UNKNOWN, "marker"),
    ("sort=name&marker=2024-01-01", "marker"),
])
def test_list_invalid_parameters(app, query, field):
    response = call(app, "GET", "/images", query=query)

    assert response.status == 422
    assert response.json()["code"] == "InvalidParameter"
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("query, expected", [
    ("sort=published_at", [BASE, CHILD, ZVOL]),
    ("sort=published_at.asc", [BASE, CHILD, ZVOL]),
    ("sort=published_at.desc", [ZVOL, CHILD, BASE]),
    ("sort=published_at.DESC", [ZVOL, CHILD, BASE]),
    ("sort=name.asc", [BASE, CHILD, ZVOL]),
    ("sort=name.desc", [ZVOL, CHILD, BASE]),
    ("sort=version.desc", [ZVOL, CHILD, BASE]),
    ("sort=type.desc", [ZVOL, CHILD, BASE]),
    ("sort=published_at.desc&limit=1", [ZVOL]),
    ("limit=2", [BASE, CHILD]),
    ("marker=" + CHILD, [CHILD, ZVOL]),
    ("marker=%s&sort=published_at.desc" % CHILD, [CHILD, BASE]),
    ("marker=2024-02-01T00:00:00Z", [CHILD, ZVOL]),
    ("marker=2024-02-01", [CHILD, ZVOL]),
    ("marker=2024-01-15T00:00:00.000Z&sort=published_at.desc", [BASE]),
    ("marker=Thu, 01 Feb 2024 00:00:00 GMT", [CHILD, ZVOL]),
    ("marker=2024-02-01T01:00:00%2B01:00", [CHILD, ZVOL]),
    ("marker=%s&sort=name.asc" % CHILD, [CHILD, ZVOL]),
])
def test_list_sort_limit_marker(app, query, expected):
    response = call(app, "GET", "/images", query=query.replace(" ", "%20"))

    assert response.status == 200
    assert uuids(response) == expected


def test_list_public_mode_hides_billing_tags_and_traits(app):
    image = call(app, "GET", "/images", query="name=base-64").json()[0]

    assert "billing_tags" not in image
    assert "traits" not in image


def test_list_private_mode_shows_billing_tags(repository):
    app = make_app({"repository": repository, "accel_prefix": "", "mode": "private"})

    image = call(app, "GET", "/images", query="name=base-64").json()[0]

    assert image["billing_tags"] == ["small"]


def test_list_head_has_length_and_no_body(app):
    get = call(app, "GET", "/images")
    head = call(app, "HEAD", "/images")

    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))


def test_list_cached_response_is_identical(app):
    first = call(app, "GET", "/images", query="os=linux")
    second = call(app, "GET", "/images", query="os=linux")

    assert first.body == second.body


# ---- Accept-Version

@pytest.mark.parametrize("header, channels_shown", [
    (None, False),
    ("~1", False),
    ("1.0.0", False),
    ("~2", True),
    ("2.0.0", True),
    ("*", True),
    (">=1", True),
    ("^2.0", True),
    ("1.x", False),
    ("~1 || ~2", True),
    ("1.0.0 - 2.0.0", True),
    ("<2", False),
])
def test_accept_version_controls_channels(app, header, channels_shown):
    headers = {"Accept-Version": header} if header is not None else {}

    response = call(app, "GET", "/images/" + BASE, headers=headers)

    assert response.status == 200
    assert ("channels" in response.json()) is channels_shown


@pytest.mark.parametrize("header", ["~3", "3.0.0", "0.1.0", ">2.0.0", "<1", "banana", "2.1.0"])
def test_unsatisfiable_accept_version(app, header):
    response = call(app, "GET", "/images", headers={"Accept-Version": header})

    assert response.status == 400
    assert response.json()["code"] == "InvalidVersion"


@pytest.mark.parametrize("header, version", [(None, 1), ("~1", 1), ("~2", 2), ("*", 2), ("~1.0", 1)])
def test_negotiate_version(header, version):
    assert negotiate_version(header) == version


def test_negotiate_version_error_names_supported():
    with pytest.raises(ApiError) as raised:
        negotiate_version("~9")

    assert "2.0.0" in raised.value.message


# ---- GetImage

def test_get_image_returns_manifest_and_etag(app):
    response = call(app, "GET", "/images/" + BASE)

    assert response.status == 200
    assert response.json()["uuid"] == BASE
    assert response.headers["etag"] == '"%s"' % hashlib.sha1(response.body).hexdigest()


def test_get_image_if_none_match_is_not_modified(app):
    etag = call(app, "GET", "/images/" + BASE).headers["etag"]

    response = call(app, "GET", "/images/" + BASE, headers={"If-None-Match": etag})

    assert response.status == 304
    assert response.body == b""


def test_get_disabled_image_by_uuid(app):
    response = call(app, "GET", "/images/" + DISABLED)

    assert response.status == 200
    assert response.json()["state"] == "disabled"


def test_get_image_head(app):
    response = call(app, "HEAD", "/images/" + BASE)

    assert response.status == 200
    assert response.body == b""
    assert int(response.headers["content-length"]) > 0


# ---- GetImageFile, streamed by the application

def test_file_headers_and_bytes(app):
    response = call(app, "GET", "/images/%s/file" % BASE)

    assert response.status == 200
    assert response.body == BASE_DATA
    assert response.headers["content-length"] == str(len(BASE_DATA))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["etag"] == '"%s"' % hashlib.sha1(BASE_DATA).hexdigest()
    assert "content-md5" in response.headers
    assert "last-modified" in response.headers


def test_file_without_file_wrapper(app):
    response = call(app, "GET", "/images/%s/file" % BASE, file_wrapper=False)

    assert response.body == BASE_DATA


def test_file_head_has_length_and_no_body(app):
    response = call(app, "HEAD", "/images/%s/file" % BASE)

    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == str(len(BASE_DATA))


def test_file_index_other_than_zero_is_not_found(app):
    response = call(app, "GET", "/images/%s/file" % BASE, query="index=1")

    assert response.status == 404


@pytest.mark.parametrize("header, status, expected", [
    ("bytes=0-9", 206, BASE_DATA[:10]),
    ("bytes=10-", 206, BASE_DATA[10:]),
    ("bytes=-5", 206, BASE_DATA[-5:]),
    ("bytes=5-100000", 206, BASE_DATA[5:]),
    ("bytes=0-1,5-6", 200, BASE_DATA),
    ("items=0-1", 200, BASE_DATA),
    ("bytes=9-3", 200, BASE_DATA),
])
def test_file_range(app, header, status, expected):
    response = call(app, "GET", "/images/%s/file" % BASE, headers={"Range": header})

    assert response.status == status
    assert response.body == expected
    assert response.headers["content-length"] == str(len(expected))


def test_file_range_content_range_header(app):
    response = call(app, "GET", "/images/%s/file" % BASE, headers={"Range": "bytes=2-4"})

    assert response.headers["content-range"] == "bytes 2-4/%d" % len(BASE_DATA)


@pytest.mark.parametrize("header", ["bytes=%d-" % len(BASE_DATA), "bytes=-0"])
def test_file_range_unsatisfiable(app, header):
    response = call(app, "GET", "/images/%s/file" % BASE, headers={"Range": header})

    assert response.status == 416
    assert response.headers["content-range"] == "bytes */%d" % len(BASE_DATA)


def test_file_if_range_other_etag_sends_whole_file(app):
    response = call(app, "GET", "/images/%s/file" % BASE, headers={"Range": "bytes=0-1", "If-Range": '"other"'})

    assert response.status == 200
    assert response.body == BASE_DATA


def test_file_if_range_same_etag_sends_range(app):
    etag = call(app, "HEAD", "/images/%s/file" % BASE).headers["etag"]

    response = call(app, "GET", "/images/%s/file" % BASE, headers={"Range": "bytes=0-1", "If-Range": etag})

    assert response.status == 206


def test_file_if_none_match_is_not_modified(app):
    etag = call(app, "HEAD", "/images/%s/file" % BASE).headers["etag"]

    response = call(app, "GET", "/images/%s/file" % BASE, headers={"If-None-Match": 'W/"x", ' + etag})

    assert response.status == 304
    assert response.body == b""
    assert response.headers["etag"] == etag


def test_file_if_none_match_other_sends_file(app):
    response = call(app, "GET", "/images/%s/file" % BASE, headers={"If-None-Match": '"other"'})

    assert response.status == 200


def test_file_if_modified_since(app):
    last_modified = call(app, "HEAD", "/images/%s/file" % BASE).headers["last-modified"]

    same = call(app, "GET", "/images/%s/file" % BASE, headers={"If-Modified-Since": last_modified})
    older = call(app, "GET", "/images/%s/file" % BASE, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})

    assert same.status == 304
    assert older.status == 200


def test_file_if_match_mismatch_is_precondition_failed(app):
    response = call(app, "GET", "/images/%s/file" % BASE, headers={"If-Match": '"other"'})

    assert response.status == 412
    assert response.json()["code"] == "PreconditionFailed"


# ---- GetImageFile through nginx (X-Accel-Redirect)

def test_accel_file_response_redirects_to_internal_location(repository):
    app = make_app({"repository": repository, "accel_prefix": "/_repository/"})

    response = call(app, "GET", "/images/%s/file" % BASE)

    assert response.status == 200
    assert response.body == b""
    assert response.headers["x-accel-redirect"] == "/_repository/%s/file" % BASE
    assert response.headers["etag"] == '"%s"' % hashlib.sha1(BASE_DATA).hexdigest()
    assert "content-md5" in response.headers
    assert "last-modified" in response.headers


def test_accel_not_modified_is_answered_by_the_application(repository):
    app = make_app({"repository": repository, "accel_prefix": "/_repository/"})
    etag = '"%s"' % hashlib.sha1(BASE_DATA).hexdigest()

    response = call(app, "GET", "/images/%s/file" % BASE, headers={"If-None-Match": etag})

    assert response.status == 304
    assert "x-accel-redirect" not in response.headers


# ---- checksum records

def test_file_without_record_is_hashed_once_and_recorded(repository, app):
    os.unlink(os.path.join(repository, "images", CHILD, "file.json"))

    response = call(app, "GET", "/images/%s/file" % CHILD)

    assert response.status == 200
    assert response.headers["etag"] == '"%s"' % hashlib.sha1(CHILD_DATA).hexdigest()
    with open(os.path.join(repository, "images", CHILD, "file.json")) as handle:
        assert json.load(handle)["sha1"] == hashlib.sha1(CHILD_DATA).hexdigest()


def test_stale_record_is_replaced(repository, app):
    path = os.path.join(repository, "images", CHILD, "file")
    with open(path, "wb") as handle:
        handle.write(b"replaced bytes")

    response = call(app, "GET", "/images/%s/file" % CHILD)

    assert response.body == b"replaced bytes"
    assert response.headers["etag"] == '"%s"' % hashlib.sha1(b"replaced bytes").hexdigest()


# ---- icons

def test_icon_missing_is_not_found(app):
    response = call(app, "GET", "/images/%s/icon" % BASE)

    assert response.status == 404
    assert "has no icon" in response.json()["message"]


# ---- DSAPI

def test_datasets_newest_first_with_urls(app):
    response = call(app, "GET", "/datasets", headers={"Host": "images.example:8443", "X-Forwarded-Proto": "https"})

    datasets = response.json()
    assert [dataset["uuid"] for dataset in datasets] == [ZVOL, CHILD, BASE]
    assert datasets[2]["files"][0]["url"] == "https://images.example:8443/datasets/%s/file" % BASE
    assert datasets[2]["files"][0]["path"] == BASE + ".zfs"
    assert datasets[0]["files"][0]["path"] == ZVOL + ".zvol"
    assert "channels" not in datasets[2]


@pytest.mark.parametrize("host", ["evil.example/path", "a b", "x\r\nInjected: 1", ""])
def test_datasets_bad_host_header_falls_back(app, host):
    response = call(app, "GET", "/datasets/" + BASE, headers={"Host": host})

    assert response.json()["files"][0]["url"] == "http://127.0.0.1:8080/datasets/%s/file" % BASE


@pytest.mark.parametrize("query, expected", [("name=child", [CHILD]), ("os=linux", [ZVOL, CHILD]),
                                             ("type=zvol", [ZVOL]), ("version=1.0.0", [BASE])])
def test_datasets_filters(app, query, expected):
    response = call(app, "GET", "/datasets", query=query)

    assert uuids(response) == expected


def test_dataset_by_uuid(app):
    response = call(app, "GET", "/datasets/" + CHILD)

    assert response.status == 200
    assert response.json()["files"][0]["url"].endswith("/datasets/%s/file" % CHILD)


@pytest.mark.parametrize("name", ["file", BASE + ".zfs"])
def test_dataset_file_routes(app, name):
    response = call(app, "GET", "/datasets/%s/%s" % (BASE, name))

    assert response.status == 200
    assert response.body == BASE_DATA


@pytest.mark.parametrize("name", ["other.zfs", "..", "%2e%2e"])
def test_dataset_file_other_names_not_found(app, name):
    response = call(app, "GET", "/datasets/%s/%s" % (BASE, name))

    assert response.status == 404


# ---- channels

@pytest.fixture()
def channel_app(repository):
    return make_app({"repository": repository, "accel_prefix": "", "channels": ["release", "dev"]})


@pytest.mark.parametrize("query, expected", [
    ("", [BASE, ZVOL]),
    ("channel=release", [BASE, ZVOL]),
    ("channel=dev", [CHILD]),
    ("channel=*", [BASE, CHILD, ZVOL]),
])
def test_channel_filter(channel_app, query, expected):
    response = call(channel_app, "GET", "/images", query=query)

    assert uuids(response) == expected


def test_unknown_channel_fails_validation(channel_app):
    response = call(channel_app, "GET", "/images", query="channel=nightly")

    assert response.status == 422
    assert response.json()["code"] == "ValidationFailed"
    assert response.json()["errors"][0]["field"] == "channel"


def test_get_image_outside_channel_is_not_found(channel_app):
    response = call(channel_app, "GET", "/images/" + CHILD)

    assert response.status == 404


def test_get_image_in_named_channel(channel_app):
    response = call(channel_app, "GET", "/images/" + CHILD, query="channel=dev")

    assert response.status == 200


def test_channels_route_lists_default_first(channel_app):
    response = call(channel_app, "GET", "/channels")

    assert [channel["name"] for channel in response.json()] == ["release", "dev"]
    assert response.json()[0]["default"] is True


# ---- catalog reload

def test_new_image_is_listed_without_restart(repository, app):
    assert len(uuids(call(app, "GET", "/images"))) == 3
    write_image(repository, manifest(UNKNOWN, "new", "1.0.0", "2025-01-01T00:00:00Z", b"n"), b"n")

    response = call(app, "GET", "/images")

    assert uuids(response)[-1] == UNKNOWN


def test_manifest_edited_in_place_is_seen_after_rescan(repository):
    app = make_app({"repository": repository, "accel_prefix": "", "rescan_interval": 0.0})
    call(app, "GET", "/images")
    path = os.path.join(repository, "images", BASE, "manifest.json")
    with open(path) as handle:
        edited = json.load(handle)
    edited["description"] = "edited in place"
    time.sleep(0.01)
    with open(path, "w") as handle:
        json.dump(edited, handle)

    response = call(app, "GET", "/images/" + BASE)

    assert response.json()["description"] == "edited in place"


def test_removed_image_is_not_listed(repository, app):
    call(app, "GET", "/images")
    os.rename(os.path.join(repository, "images", CHILD), os.path.join(repository, "removed"))

    response = call(app, "GET", "/images")

    assert CHILD not in uuids(response)


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"uuid": "%s"}' % BASE.encode()])
def test_broken_manifest_is_skipped(repository, app, content):
    with open(os.path.join(repository, "images", CHILD, "manifest.json"), "wb") as handle:
        handle.write(content)

    response = call(app, "GET", "/images")

    assert response.status == 200
    assert CHILD not in uuids(response)


def test_non_uuid_directories_are_ignored(repository, app):
    os.makedirs(os.path.join(repository, "images", ".publish-tmp"))
    os.makedirs(os.path.join(repository, "images", "README"))

    response = call(app, "GET", "/images")

    assert uuids(response) == [BASE, CHILD, ZVOL]


def test_symlink_outside_repository_is_not_an_image(tmp_path, repository, app):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    os.symlink(str(outside), os.path.join(repository, "images", "..%2f..%2fetc"))

    response = call(app, "GET", "/images/..%2f..%2fetc")

    assert response.status == 404
