"""The image server's write API through its WSGI interface: authentication, publishing, failures, deletion."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import subprocess
import sys

import pytest

from ansible_collections.smartos.images.plugins.module_utils._imgapi_app import (
    ServerConfigError,
    config_from_environment,
    make_app,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi_auth import (
    hash_password,
    parse_hash,
    verify_password,
)

from tests.support.wsgi_client import TruncatedInput, basic_auth, call

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
IMAGE = "7e3f2a10-5555-4666-8777-888899990000"
CHILD = "8f403b21-6666-4777-8888-999900001111"
PASSWORD = "correct horse"
DATA = b"image file contents\n" * 512
AUTH = {"Authorization": basic_auth("admin", PASSWORD)}
JSON_AUTH = dict(AUTH, **{"Content-Type": "application/json", "Accept-Version": "~2"})


def manifest(uuid=IMAGE, **extra):
    result = {
        "v": 2,
        "uuid": uuid,
        "owner": "11111111-1111-4111-8111-111111111111",
        "name": "published",
        "version": "1.0.0",
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": "2024-05-01T10:00:00.000Z",
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": hashlib.sha1(DATA).hexdigest(), "size": len(DATA), "compression": "gzip"}],
        "description": "published through the write API",
    }
    result.update(extra)
    return result


@pytest.fixture()
def repository(tmp_path):
    repo = str(tmp_path / "repo")
    os.makedirs(repo)
    return repo


@pytest.fixture()
def credentials(tmp_path):
    path = str(tmp_path / "credentials")
    with open(path, "w") as handle:
        handle.write("# image publishers\n\nadmin:%s\n" % hash_password(PASSWORD, iterations=1000))
    return path


@pytest.fixture()
def app(repository, credentials):
    return make_app({"repository": repository, "accel_prefix": "", "credentials": credentials,
                     "max_upload": 64 * 1024})


def import_image(app, body, uuid=IMAGE, headers=None, query="action=import"):
    return call(app, "POST", "/images/" + uuid, query=query, headers=JSON_AUTH if headers is None else headers,
                body=json.dumps(body).encode())


def upload(app, data=DATA, uuid=IMAGE, query="compression=gzip", **options):
    return call(app, "PUT", "/images/%s/file" % uuid, query=query, headers=options.pop("headers", AUTH), body=data,
                **options)


def activate(app, uuid=IMAGE):
    return call(app, "POST", "/images/" + uuid, query="action=activate", headers=AUTH)


def publish(app, body=None, uuid=IMAGE):
    assert import_image(app, body or manifest(uuid), uuid=uuid).status == 200
    assert upload(app, uuid=uuid).status == 200
    assert activate(app, uuid=uuid).status == 200


def leftovers(repository):
    tmp = os.path.join(repository, ".imgapi", "tmp")
    return sorted(os.listdir(tmp))


def unactivated(repository):
    return sorted(os.listdir(os.path.join(repository, ".imgapi", "unactivated")))


def published(repository):
    return sorted(name for name in os.listdir(os.path.join(repository, "images")) if not name.startswith("."))


# ---- the publishing flow

def test_import_creates_unactivated_image(app, repository):
    response = import_image(app, manifest())

    assert response.status == 200
    assert response.json()["state"] == "unactivated"
    assert response.json()["owner"] == "00000000-0000-0000-0000-000000000000"
    assert response.json()["files"] == []
    assert unactivated(repository) == [IMAGE]
    assert published(repository) == []


def test_unactivated_image_is_not_listed(app):
    import_image(app, manifest())

    assert call(app, "GET", "/images").json() == []
    assert call(app, "GET", "/images", query="state=all", headers=AUTH).json()[0]["uuid"] == IMAGE
    assert call(app, "GET", "/images", query="state=unactivated").json() == []
    assert call(app, "GET", "/images/" + IMAGE).status == 404
    assert call(app, "GET", "/images/" + IMAGE, headers=AUTH).status == 200


def test_upload_records_file_checksums(app, repository):
    import_image(app, manifest())

    response = upload(app, query="compression=gzip&sha1=%s&dataset_guid=123" % hashlib.sha1(DATA).hexdigest())

    assert response.status == 200
    assert response.json()["files"] == [{"sha1": hashlib.sha1(DATA).hexdigest(), "size": len(DATA),
                                         "compression": "gzip", "dataset_guid": "123"}]
    with open(os.path.join(repository, ".imgapi", "unactivated", IMAGE, "file.json")) as handle:
        record = json.load(handle)
    assert record["md5"] == base64.b64encode(hashlib.md5(DATA).digest()).decode()
    assert leftovers(repository) == []


def test_activate_publishes_into_images(app, repository):
    import_image(app, manifest())
    upload(app)

    response = activate(app)

    assert response.status == 200
    assert response.json()["state"] == "active"
    assert published(repository) == [IMAGE]
    assert unactivated(repository) == []
    assert sorted(os.listdir(os.path.join(repository, "images", IMAGE))) == ["file", "file.json", "manifest.json"]


def test_published_image_is_served(app):
    publish(app)

    listed = call(app, "GET", "/images").json()
    downloaded = call(app, "GET", "/images/%s/file" % IMAGE)

    assert [image["uuid"] for image in listed] == [IMAGE]
    assert listed[0]["published_at"] == "2024-05-01T10:00:00.000Z"
    assert downloaded.body == DATA
    assert downloaded.headers["content-md5"] == base64.b64encode(hashlib.md5(DATA).digest()).decode()


def test_activation_sets_published_at_when_missing(app):
    body = manifest()
    del body["published_at"]
    import_image(app, body)
    upload(app)

    response = activate(app)

    assert response.json()["published_at"].endswith("Z")


def test_stored_manifest_validates_in_private_mode(repository, credentials):
    app = make_app({"repository": repository, "accel_prefix": "", "credentials": credentials, "mode": "private"})

    response = import_image(app, manifest(public=False))

    assert response.status == 200


def test_import_with_channels_sets_the_channel(repository, credentials):
    app = make_app({"repository": repository, "accel_prefix": "", "credentials": credentials,
                    "channels": ["release", "dev"]})

    response = import_image(app, manifest(channels=["other"]), query="action=import&channel=dev")

    assert response.json()["channels"] == ["dev"]


def test_v1_manifest_is_upgraded_on_import(app):
    body = {"uuid": IMAGE, "name": "old", "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
            "creator_uuid": "11111111-1111-4111-8111-111111111111", "created_at": "2012-01-01T00:00Z",
            "files": [{"path": "old.zfs.bz2", "sha1": "x", "size": 3}]}

    response = import_image(app, body)

    assert response.status == 200
    assert response.json()["v"] == 2
    assert response.json()["published_at"] == "2012-01-01T00:00:00Z"


# ---- authentication

@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": basic_auth("admin", "wrong")},
    {"Authorization": basic_auth("nobody", PASSWORD)},
    {"Authorization": "Basic !!!"},
    {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    {"Authorization": "Bearer token"},
    {"Authorization": 'Signature keyId="admin",algorithm="rsa-sha256",signature="x"'},
])
@pytest.mark.parametrize("method, path, query", [
    ("POST", "/images/" + IMAGE, "action=import"),
    ("PUT", "/images/%s/file" % IMAGE, "compression=gzip"),
    ("POST", "/images/" + IMAGE, "action=activate"),
    ("DELETE", "/images/" + IMAGE, ""),
    ("PUT", "/images/%s/icon" % IMAGE, ""),
])
def test_writes_need_valid_credentials(app, repository, headers, method, path, query):
    response = call(app, method, path, query=query, headers=headers, body=json.dumps(manifest()).encode())

    assert response.status == 401
    assert response.json()["code"] == "Unauthorized"
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert unactivated(repository) == []


def test_bad_credentials_on_read_are_rejected(app):
    response = call(app, "GET", "/images", headers={"Authorization": basic_auth("admin", "wrong")})

    assert response.status == 401


def test_ping_names_authenticated_user(app):
    assert call(app, "GET", "/ping", headers=AUTH).json()["user"] == "admin"


@pytest.mark.parametrize("content", [None, "", "# nobody\n", "admin:plaintext\n", "admin\n"])
def test_writes_closed_without_usable_credentials(repository, tmp_path, content):
    path = str(tmp_path / "credentials")
    if content is not None:
        with open(path, "w") as handle:
            handle.write(content)
    app = make_app({"repository": repository, "accel_prefix": "", "credentials": path})

    response = import_image(app, manifest(), headers=dict(JSON_AUTH, Authorization=basic_auth("admin", "plaintext")))

    assert response.status == 401


def test_writes_closed_without_credentials_file_setting(repository):
    app = make_app({"repository": repository, "accel_prefix": ""})

    response = import_image(app, manifest(), headers={"Content-Type": "application/json"})

    assert response.status == 401
    assert "no credentials" in response.json()["message"]


def test_credentials_file_change_is_picked_up(app, credentials):
    with open(credentials, "a") as handle:
        handle.write("second:%s\n" % hash_password("other", iterations=1000))

    response = call(app, "GET", "/ping", headers={"Authorization": basic_auth("second", "other")})

    assert response.json()["user"] == "second"


def test_credentials_never_logged(app, caplog):
    caplog.set_level(logging.DEBUG, logger="smartos.images.imgapi")

    import_image(app, manifest())
    call(app, "GET", "/ping", headers={"Authorization": basic_auth("admin", "wrong-secret")})

    assert PASSWORD not in caplog.text
    assert "wrong-secret" not in caplog.text
    assert basic_auth("admin", PASSWORD).split()[1] not in caplog.text


def test_password_hash_round_trip():
    encoded = hash_password("secret", iterations=1000)

    assert encoded.startswith("pbkdf2_sha256$1000$")
    assert verify_password("secret", encoded) is True
    assert verify_password("Secret", encoded) is False


@pytest.mark.parametrize("encoded", ["md5$1$a$b", "pbkdf2_sha256$x$YQ==$YQ==", "pbkdf2_sha256$10$!$YQ==",
                                     "pbkdf2_sha256$10$YQ==", "pbkdf2_sha256$0$YQ==$YQ=="])
def test_parse_hash_rejects_malformed(encoded):
    with pytest.raises(ValueError):
        parse_hash(encoded)


def test_hash_password_command(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "build", "collections"))
    command = [sys.executable, "-m", "ansible_collections.smartos.images.plugins.module_utils._imgapi_app",
               "hash-password", "--iterations", "1000", "--user", "admin"]

    completed = subprocess.run(command, input="s3cret\n", capture_output=True, text=True, env=env, check=False)

    assert completed.returncode == 0
    user, encoded = completed.stdout.strip().split(":", 1)
    assert user == "admin"
    assert verify_password("s3cret", encoded) is True


def test_hash_password_command_rejects_empty_password():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "build", "collections"))
    command = [sys.executable, "-m", "ansible_collections.smartos.images.plugins.module_utils._imgapi_app",
               "hash-password"]

    completed = subprocess.run(command, input="\n", capture_output=True, text=True, env=env, check=False)

    assert completed.returncode == 2
    assert "empty" in completed.stderr


# ---- import failures

def test_import_twice_conflicts(app):
    import_image(app, manifest())

    response = import_image(app, manifest())

    assert response.status == 409
    assert response.json()["code"] == "ImageUuidAlreadyExists"


def test_import_of_published_uuid_conflicts(app):
    publish(app)

    response = import_image(app, manifest())

    assert response.status == 409


def test_import_body_uuid_must_match_path(app, repository):
    response = import_image(app, manifest(uuid=CHILD), uuid=IMAGE)

    assert response.status == 422
    assert response.json()["code"] == "InvalidParameter"
    assert response.json()["errors"][0]["field"] == "uuid"
    assert unactivated(repository) == []


@pytest.mark.parametrize("body, status, code", [
    (b"not json", 400, "InvalidContent"),
    (b"", 400, "InvalidContent"),
    (b"[1, 2]", 422, "ValidationFailed"),
    (b'"text"', 422, "ValidationFailed"),
    (b"null", 422, "ValidationFailed"),
    (b'{"uuid": NaN}', 400, "InvalidContent"),
    (b"\xff\xfe", 400, "InvalidContent"),
])
def test_import_malformed_bodies(app, repository, body, status, code):
    response = call(app, "POST", "/images/" + IMAGE, query="action=import", headers=JSON_AUTH, body=body)

    assert response.status == status
    assert response.json()["code"] == code
    assert unactivated(repository) == []


def test_import_body_over_one_mib_is_rejected(app, repository):
    body = json.dumps(manifest(description="x" * (1024 * 1024))).encode()

    response = call(app, "POST", "/images/" + IMAGE, query="action=import", headers=JSON_AUTH, body=body)

    assert response.status == 413
    assert response.json()["code"] == "RequestEntityTooLarge"


def test_import_chunked_body_over_one_mib_is_rejected(app):
    body = json.dumps(manifest(description="x" * (1024 * 1024))).encode()
    headers = dict(JSON_AUTH, **{"Transfer-Encoding": "chunked"})

    response = call(app, "POST", "/images/" + IMAGE, query="action=import", headers=headers, body=body,
                    content_length="")

    assert response.status == 413


@pytest.mark.parametrize("changes, field", [
    ({"name": "bad name!"}, "name"),
    ({"type": "vm"}, "type"),
    ({"os": "plan9"}, "os"),
    ({"public": False}, "public"),
    ({"requirements": {"brand": 1}}, "requirements.brand"),
    ({"homepage": "ftp://x"}, "homepage"),
])
def test_import_invalid_manifest_fails_validation(app, repository, changes, field):
    response = import_image(app, manifest(**changes))

    assert response.status == 422
    assert response.json()["code"] == "ValidationFailed"
    assert field in [error["field"] for error in response.json()["errors"]]
    assert unactivated(repository) == []


@pytest.mark.parametrize("changes, field", [
    ({"activated": True}, "activated"),
    ({"bogus": 1}, "bogus"),
    ({"image_size": 10}, "image_size"),
])
def test_import_extra_fields_are_invalid_parameters(app, changes, field):
    response = import_image(app, manifest(**changes))

    assert response.status == 422
    assert response.json()["code"] == "InvalidParameter"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_import_needs_existing_origin(app, repository):
    response = import_image(app, manifest(uuid=CHILD, origin=IMAGE), uuid=CHILD)

    assert response.status == 422
    assert response.json()["code"] == "OriginDoesNotExist"
    assert unactivated(repository) == []


@pytest.mark.parametrize("query, code", [
    ("", "InvalidParameter"),
    ("action=rename", "InvalidParameter"),
    ("action=import&source=https://images.example", "InvalidParameter"),
])
def test_unsupported_actions(app, query, code):
    response = import_image(app, manifest(), query=query)

    assert response.status == 422
    assert response.json()["code"] == code


# ---- upload failures: each leaves nothing behind

def test_upload_to_unknown_image_is_not_found(app, repository):
    response = upload(app)

    assert response.status == 404
    assert leftovers(repository) == []


@pytest.mark.parametrize("query, code", [("", "InvalidParameter"), ("compression=zstd", "InvalidParameter")])
def test_upload_needs_valid_compression(app, repository, query, code):
    import_image(app, manifest())

    response = upload(app, query=query)

    assert response.status == 422
    assert response.json()["code"] == code
    assert response.json()["errors"][0]["field"] == "compression"


def test_upload_empty_body_is_rejected(app, repository):
    import_image(app, manifest())

    response = upload(app, data=b"")

    assert response.status == 400
    assert response.json()["code"] == "Download"
    assert leftovers(repository) == []
    assert "file" not in os.listdir(os.path.join(repository, ".imgapi", "unactivated", IMAGE))


def test_upload_over_max_by_content_length_is_rejected(app, repository):
    import_image(app, manifest())
    stream = io.BytesIO(b"x" * 10)

    response = upload(app, data=b"", content_length=str(64 * 1024 + 1), input_stream=stream)

    assert response.status == 400
    assert response.json()["code"] == "Upload"
    assert "from Content-Length" in response.json()["message"]
    assert leftovers(repository) == []


def test_rejected_request_body_is_drained(app):
    stream = io.BytesIO(b"x" * 1000)

    response = upload(app, data=b"", content_length="1000", input_stream=stream, headers={})

    assert response.status == 401
    assert stream.tell() == 1000


def test_upload_over_max_while_streaming_is_rejected(app, repository):
    import_image(app, manifest())

    response = upload(app, data=b"x" * (64 * 1024 + 1), content_length="",
                      headers=dict(AUTH, **{"Transfer-Encoding": "chunked"}))

    assert response.status == 400
    assert response.json()["code"] == "Upload"
    assert leftovers(repository) == []


def test_upload_shorter_than_content_length_is_rejected(app, repository):
    import_image(app, manifest())

    response = upload(app, data=b"x" * 100, content_length="200")

    assert response.status == 400
    assert response.json()["code"] == "Download"
    assert "Content-Length" in response.json()["message"]
    assert leftovers(repository) == []


def test_upload_interrupted_connection_is_rejected(app, repository):
    import_image(app, manifest())

    response = upload(app, data=b"", content_length="", input_stream=TruncatedInput(b"partial"),
                      headers=dict(AUTH, **{"Transfer-Encoding": "chunked"}))

    assert response.status == 400
    assert response.json()["code"] == "Download"
    assert leftovers(repository) == []


def test_upload_sha1_mismatch_is_rejected(app, repository):
    import_image(app, manifest())

    response = upload(app, query="compression=gzip&sha1=" + "0" * 40)

    assert response.status == 400
    assert response.json()["code"] == "Download"
    assert leftovers(repository) == []
    assert "file" not in os.listdir(os.path.join(repository, ".imgapi", "unactivated", IMAGE))


def test_upload_non_numeric_content_length_is_rejected(app):
    import_image(app, manifest())

    response = upload(app, content_length="12abc")

    assert response.status == 400
    assert response.json()["code"] == "InvalidHeader"


def test_upload_to_activated_image_is_immutable(app):
    publish(app)

    response = upload(app)

    assert response.status == 422
    assert response.json()["code"] == "ImageFilesImmutable"


def test_upload_again_replaces_the_file(app, repository):
    import_image(app, manifest())
    upload(app, data=b"first")

    response = upload(app, data=b"second")

    assert response.json()["files"][0]["size"] == len(b"second")


def test_chunked_upload_is_accepted(app):
    import_image(app, manifest())

    response = upload(app, content_length="", headers=dict(AUTH, **{"Transfer-Encoding": "chunked"}))

    assert response.status == 200
    assert response.json()["files"][0]["size"] == len(DATA)


# ---- activation failures

def test_activate_without_file_is_rejected(app):
    import_image(app, manifest())

    response = activate(app)

    assert response.status == 422
    assert response.json()["code"] == "NoActivationNoFile"


def test_activate_twice_is_rejected(app):
    publish(app)

    response = activate(app)

    assert response.status == 422
    assert response.json()["code"] == "ImageAlreadyActivated"


def test_activate_unknown_is_not_found(app):
    assert activate(app).status == 404


# ---- deletion

def test_delete_published_image(app, repository):
    publish(app)

    response = call(app, "DELETE", "/images/" + IMAGE, headers=AUTH)

    assert response.status == 204
    assert response.body == b""
    assert published(repository) == []
    assert call(app, "GET", "/images/" + IMAGE).status == 404


def test_delete_unactivated_image(app, repository):
    import_image(app, manifest())

    response = call(app, "DELETE", "/images/" + IMAGE, headers=AUTH)

    assert response.status == 204
    assert unactivated(repository) == []
    assert leftovers(repository) == []


def test_delete_origin_with_dependents_is_refused(app, repository):
    publish(app)
    publish(app, manifest(uuid=CHILD, origin=IMAGE), uuid=CHILD)

    response = call(app, "DELETE", "/images/" + IMAGE, headers=AUTH)

    assert response.status == 422
    assert response.json()["code"] == "ImageHasDependentImages"
    assert CHILD in response.json()["message"]
    assert published(repository) == sorted([IMAGE, CHILD])


def test_delete_child_then_origin(app, repository):
    publish(app)
    publish(app, manifest(uuid=CHILD, origin=IMAGE), uuid=CHILD)

    child = call(app, "DELETE", "/images/" + CHILD, headers=AUTH)
    origin = call(app, "DELETE", "/images/" + IMAGE, headers=AUTH)

    assert child.status == 204
    assert origin.status == 204
    assert published(repository) == []


def test_delete_unknown_is_not_found(app):
    assert call(app, "DELETE", "/images/" + IMAGE, headers=AUTH).status == 404


# ---- icons

def test_icon_put_get_delete(app):
    publish(app)
    icon = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100

    stored = call(app, "PUT", "/images/%s/icon" % IMAGE, headers=dict(AUTH, **{"Content-Type": "image/png"}),
                  body=icon)
    served = call(app, "GET", "/images/%s/icon" % IMAGE)
    deleted = call(app, "DELETE", "/images/%s/icon" % IMAGE, headers=AUTH)
    missing = call(app, "GET", "/images/%s/icon" % IMAGE)

    assert stored.status == 200
    assert stored.json()["icon"] is True
    assert served.body == icon
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-md5"] == base64.b64encode(hashlib.md5(icon).digest()).decode()
    assert deleted.status == 200
    assert "icon" not in deleted.json()
    assert missing.status == 404


@pytest.mark.parametrize("content_type, body, status", [
    ("text/plain", b"icon", 422),
    ("image/png", b"", 400),
    ("image/png", b"x" * (128 * 1024 + 1), 400),
])
def test_icon_rejections(app, content_type, body, status):
    publish(app)

    response = call(app, "PUT", "/images/%s/icon" % IMAGE, headers=dict(AUTH, **{"Content-Type": content_type}),
                    body=body)

    assert response.status == status


# ---- configuration

def test_config_from_environment_defaults(repository):
    config = config_from_environment({"SMARTOS_IMAGES_REPOSITORY": repository})

    assert config.accel_prefix == "/_repository/"
    assert config.max_upload == 20 * 1024 ** 3
    assert config.channels == []
    assert config.credentials is None
    assert config.mode == "public"


def test_config_from_environment_values(repository):
    config = config_from_environment({
        "SMARTOS_IMAGES_REPOSITORY": repository, "SMARTOS_IMAGES_ACCEL_PREFIX": "",
        "SMARTOS_IMAGES_MAX_UPLOAD": "1000", "SMARTOS_IMAGES_CHANNELS": "release, dev",
        "SMARTOS_IMAGES_CREDENTIALS": "/etc/creds", "SMARTOS_IMAGES_MODE": "private"})

    assert config.accel_prefix == ""
    assert config.max_upload == 1000
    assert config.channels == ["release", "dev"]
    assert config.credentials == "/etc/creds"
    assert config.mode == "private"


@pytest.mark.parametrize("environment", [
    {},
    {"SMARTOS_IMAGES_MAX_UPLOAD": "lots"},
    {"SMARTOS_IMAGES_MAX_UPLOAD": "0"},
    {"SMARTOS_IMAGES_ACCEL_PREFIX": "_repository"},
    {"SMARTOS_IMAGES_CHANNELS": "Release"},
    {"SMARTOS_IMAGES_MODE": "dc"},
])
def test_config_errors(repository, environment):
    full = dict(environment)
    if environment:
        full["SMARTOS_IMAGES_REPOSITORY"] = repository

    with pytest.raises(ServerConfigError):
        config_from_environment(full)


def test_missing_repository_directory_is_config_error(tmp_path):
    with pytest.raises(ServerConfigError):
        make_app({"repository": str(tmp_path / "missing")})


def test_stale_uploads_removed_at_start(repository, credentials):
    make_app({"repository": repository, "credentials": credentials})
    stale = os.path.join(repository, ".imgapi", "tmp", "upload-x")
    fresh = os.path.join(repository, ".imgapi", "tmp", "upload-y")
    for path in (stale, fresh):
        with open(path, "w") as handle:
            handle.write("partial")
    os.utime(stale, (0, 0))

    make_app({"repository": repository, "credentials": credentials})

    assert leftovers(repository) == ["upload-y"]


# ---- disable, enable, update

def listed_uuids(app, query="", headers=None):
    response = call(app, "GET", "/images", query=query, headers=headers)
    assert response.status == 200
    return [image["uuid"] for image in response.json()]


def image_action(app, action, body=None, uuid=IMAGE, headers=None):
    if headers is None:
        headers = AUTH if body is None else JSON_AUTH
    data = b"" if body is None else json.dumps(body).encode()
    return call(app, "POST", "/images/" + uuid, query="action=" + action, headers=headers, body=data)


def stored_manifest(repository, uuid=IMAGE):
    with open(os.path.join(repository, "images", uuid, "manifest.json")) as handle:
        return json.load(handle)


def test_disable_hides_image_from_default_listing(app, repository):
    publish(app)

    response = image_action(app, "disable")

    assert response.status == 200
    assert response.json()["state"] == "disabled"
    assert response.json()["disabled"] is True
    assert listed_uuids(app) == []
    # Anonymous callers see active images only, as on the reference server.
    assert listed_uuids(app, "state=disabled") == []
    assert listed_uuids(app, "state=disabled", headers=AUTH) == [IMAGE]
    assert call(app, "GET", "/images/" + IMAGE).json()["state"] == "disabled"
    assert stored_manifest(repository)["disabled"] is True


def test_enable_lists_image_again(app, repository):
    publish(app)
    assert image_action(app, "disable").status == 200

    response = image_action(app, "enable")

    assert response.status == 200
    assert response.json()["state"] == "active"
    assert response.json()["disabled"] is False
    assert listed_uuids(app) == [IMAGE]
    assert listed_uuids(app, "state=disabled", headers=AUTH) == []


def test_disable_unactivated_image_keeps_its_state(app, repository):
    assert import_image(app, manifest()).status == 200

    response = image_action(app, "disable")

    assert response.status == 200
    assert response.json()["state"] == "unactivated"
    assert response.json()["disabled"] is True


def test_image_disabled_before_activation_stays_disabled(app, repository):
    assert import_image(app, manifest()).status == 200
    assert image_action(app, "disable").status == 200
    assert upload(app).status == 200

    response = activate(app)

    assert response.status == 200
    assert response.json()["state"] == "disabled"
    assert stored_manifest(repository)["state"] == "disabled"
    assert listed_uuids(app) == []


@pytest.mark.parametrize("action, body", [("disable", None), ("enable", None), ("update", {"description": "x"})])
def test_change_of_unknown_image_is_not_found(app, action, body):
    response = image_action(app, action, body)

    assert response.status == 404
    assert response.json()["code"] == "ResourceNotFound"


@pytest.mark.parametrize("action, body", [("disable", None), ("update", {"description": "x"})])
def test_changes_need_credentials(app, repository, action, body):
    publish(app)
    before = stored_manifest(repository)

    response = image_action(app, action, body, headers={"Content-Type": "application/json"})

    assert response.status == 401
    assert stored_manifest(repository) == before


def test_update_changes_and_removes_fields(app, repository):
    publish(app, manifest(homepage="https://example.com/old"))
    changes = {"description": "updated in place", "homepage": None, "tags": {"role": "web"}}

    response = image_action(app, "update", changes)

    assert response.status == 200
    stored = stored_manifest(repository)
    assert stored["description"] == "updated in place"
    assert "homepage" not in stored
    assert stored["tags"] == {"role": "web"}
    assert stored["files"] == manifest()["files"]
    assert call(app, "GET", "/images/" + IMAGE).json()["description"] == "updated in place"


@pytest.mark.parametrize("body, field", [
    ({"uuid": CHILD}, "uuid"),
    ({"files": []}, "files"),
    ({"state": "active"}, "state"),
    ({"owner": "11111111-1111-4111-8111-111111111111"}, "owner"),
])
def test_update_rejects_fixed_fields(app, repository, body, field):
    publish(app)
    before = stored_manifest(repository)

    response = image_action(app, "update", body)

    assert response.status == 422
    assert response.json()["code"] == "ValidationFailed"
    assert response.json()["errors"] == [{"field": field, "code": "NotAllowed", "message": "cannot be updated"}]
    assert stored_manifest(repository) == before


@pytest.mark.parametrize("body, status, code", [
    ({"name": "no good!"}, 422, "ValidationFailed"),
    ({"name": None}, 422, "ValidationFailed"),
    ({"cpu_type": "host"}, 422, "ValidationFailed"),
    ({}, 400, "InvalidParameter"),
    (["description"], 400, "InvalidParameter"),
])
def test_update_rejects_invalid_manifest(app, repository, body, status, code):
    publish(app)
    before = stored_manifest(repository)

    response = image_action(app, "update", body)

    assert response.status == status
    assert response.json()["code"] == code
    assert stored_manifest(repository) == before
