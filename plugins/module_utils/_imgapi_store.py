# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The write side of the image server: the publishing flow of ``imgadm publish``, and changes to images.

1. ``POST /images/:uuid?action=import`` (AdminImportImage) creates an
   unactivated image in ``.imgapi/unactivated/<uuid>/`` from a manifest.
2. ``PUT /images/:uuid/file`` (AddImageFile) streams the file into
   ``.imgapi/tmp/`` while hashing it, and renames it into the image.
3. ``POST /images/:uuid?action=activate`` renames the whole image
   directory to ``images/<uuid>``, which publishes it atomically.

``?action=disable``, ``?action=enable`` and ``?action=update`` change an
image's manifest in place, and ``DELETE /images/:uuid`` removes it.

Changes take an exclusive ``flock`` on ``.imgapi/write.lock``, so several
worker processes never interleave them. Manifests are validated with
``_manifest.validate_manifest`` in the server's mode, the rules of the
reference server (imgmanifest's ``validatePublicManifest`` or
``validatePrivateManifest``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.smartos.images.plugins.module_utils._errors import ManifestError
from ansible_collections.smartos.images.plugins.module_utils._imgapi_catalog import (
    AREA_PUBLISHED,
    AREA_UNACTIVATED,
    ICON_NAME,
    ICON_RECORD_NAME,
    Catalog,
    CatalogImage,
    Layout,
    json_text,
    write_atomic,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi_http import (
    ApiError,
    Request,
    bad_request,
    invalid_parameter,
    not_found,
    read_body,
    validation_failed,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    COMPRESSIONS,
    upgrade_manifest,
    validate_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._repository import (
    FILE_NAME,
    FILE_RECORD_NAME,
    MANIFEST_NAME,
    manifest_text,
    remove_image,
)

LOG = logging.getLogger("smartos.images.imgapi")

# Images imported in a mode without a user database are owned by the nil
# UUID, as on the reference server in public and private mode.
UNSET_OWNER = "00000000-0000-0000-0000-000000000000"
UPLOAD_CHUNK_SIZE = 1024 * 1024
MAX_ICON_SIZE = 128 * 1024
ICON_CONTENT_TYPES = ("image/jpeg", "image/gif", "image/png")
# A temporary upload not written to for this long belongs to a process
# that died; the next server start removes it.
STALE_UPLOAD_SECONDS = 3600

# The fields AdminImportImage takes from the request body, in the order of
# the stored manifest. "files", "state" and "icon" in the body are dropped:
# the file and the icon come from their own requests, and the state from
# activation.
IMPORT_FIELDS = (
    "v", "uuid", "owner", "name", "version", "state", "disabled", "public", "published_at", "type", "os",
    "files", "acl", "description", "homepage", "eula", "urn", "requirements", "users", "generate_passwords",
    "inherited_directories", "origin", "nic_driver", "disk_driver", "cpu_type", "image_size", "tags",
    "billing_tags", "traits", "error", "channels",
)
DROPPED_IMPORT_FIELDS = ("files", "state", "icon")
# The fields UpdateImage may change: the reference server's mutable fields,
# less owner (this server sets the nil owner on every image) and channels
# (set once, on import).
UPDATE_FIELDS = (
    "name", "version", "description", "homepage", "eula", "public", "os", "acl", "requirements", "users",
    "billing_tags", "traits", "tags", "generate_passwords", "inherited_directories", "nic_driver", "disk_driver",
    "cpu_type", "image_size",
)
ZVOL_FIELDS = ("nic_driver", "disk_driver", "cpu_type", "image_size")


def _now_published_at() -> str:
    moment = datetime.datetime.now(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def validation_view(manifest: Dict[str, Any], activated: bool) -> Dict[str, Any]:
    """Return the stored form of a manifest that the reference server validates, with ``activated``."""
    view = dict(manifest)
    view["activated"] = activated
    return view


class Store:
    """Changes to a repository through the write API."""

    def __init__(self, layout: Layout, catalog: Catalog, mode: str, channels: List[str], max_upload: int):
        self.layout = layout
        self.catalog = catalog
        self.mode = mode
        self.channels = list(channels)
        self.max_upload = max_upload
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the repository's write lock, between threads and between processes."""
        with self._thread_lock:
            with open(self.layout.lock_path, "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def remove_stale_uploads(self) -> None:
        """Remove temporary uploads left by a process that was killed."""
        now = time.time()
        try:
            names = os.listdir(self.layout.tmp_dir)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(self.layout.tmp_dir, name)
            try:
                if now - os.lstat(path).st_mtime < STALE_UPLOAD_SECONDS:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                LOG.warning("removed %s, left behind by an interrupted upload", path)
            except OSError as exc:
                LOG.error("cannot remove stale upload %s: %s", path, exc.strerror)

    def _current(self, uuid: str) -> Optional[CatalogImage]:
        return self.catalog.snapshot(force=True).by_uuid.get(uuid)

    def _changed(self) -> None:
        self.layout.bump_generation()
        self.catalog.snapshot(force=True)

    # ---- AdminImportImage

    def import_image(self, uuid: str, body: Any, channel: Optional[str]) -> CatalogImage:
        if not isinstance(body, dict):
            message = "the request body is a JSON %s, not a manifest object" % type(body).__name__
            raise validation_failed(message, [{"field": "body", "code": "Invalid", "message": message}], uuid=uuid)
        if body.get("uuid") != uuid:
            raise ApiError(422, "InvalidParameter",
                           "URL UUID %s and body UUID %r do not match; send the manifest of image %s"
                           % (uuid, body.get("uuid"), uuid),
                           errors=[{"field": "uuid", "code": "Invalid"}], uuid=uuid)
        manifest = self._import_manifest(uuid, body, channel)

        with self.locked():
            snapshot = self.catalog.snapshot(force=True)
            if uuid in snapshot.by_uuid or os.path.exists(self.layout.image_dir(AREA_PUBLISHED, uuid)):
                raise ApiError(409, "ImageUuidAlreadyExists",
                               "image %s already exists; delete it first or import under another UUID" % uuid,
                               uuid=uuid)
            origin = manifest.get("origin")
            if origin is not None and origin not in snapshot.by_uuid:
                raise ApiError(422, "OriginDoesNotExist",
                               "origin image %s of image %s does not exist on this server; publish the origin first"
                               % (origin, uuid), uuid=uuid)
            staging = tempfile.mkdtemp(dir=self.layout.tmp_dir, prefix="import-%s-" % uuid)
            try:
                os.chmod(staging, 0o755)
                write_atomic(os.path.join(staging, MANIFEST_NAME), manifest_text(manifest).encode("utf-8"))
                os.rename(staging, self.layout.image_dir(AREA_UNACTIVATED, uuid))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._changed()
        LOG.info("image %s imported (%s@%s), waiting for its file and activation", uuid, manifest.get("name"),
                 manifest.get("version"))
        return self._current(uuid)

    def _import_manifest(self, uuid: str, body: Dict[str, Any], channel: Optional[str]) -> Dict[str, Any]:
        try:
            data = dict(upgrade_manifest(body))
        except ManifestError:
            # The validation below reports what is wrong with it.
            data = dict(body)
        for field in DROPPED_IMPORT_FIELDS + ("channels",):
            data.pop(field, None)
        if data.get("type") != "zvol":
            extra = [field for field in ZVOL_FIELDS if field in data]
        else:
            extra = []
        extra += [field for field in data if field not in IMPORT_FIELDS]
        if extra:
            raise ApiError(422, "InvalidParameter",
                           "invalid extra parameters in the manifest of image %s: %s; remove them"
                           % (uuid, ", ".join(extra)),
                           errors=[{"field": field, "code": "Invalid"} for field in extra], uuid=uuid)
        if "published_at" in data and not isinstance(data["published_at"], str):
            raise ApiError(422, "InvalidParameter", "invalid published_at %r; give a string such as "
                           "2024-01-31T12:00:00Z" % (data["published_at"],),
                           errors=[{"field": "published_at", "code": "Invalid"}], uuid=uuid)

        data["owner"] = UNSET_OWNER
        data["state"] = "unactivated"
        data["public"] = data.get("public") if data.get("public") not in (None, False, 0, "") else False
        data["disabled"] = data.get("disabled") if data.get("disabled") not in (None, False, 0, "") else False
        data["files"] = []
        if channel is not None:
            data["channels"] = [channel]
        elif self.channels:
            data["channels"] = [self.channels[0]]

        manifest = {field: data[field] for field in IMPORT_FIELDS if field in data}
        self._validate(uuid, manifest, activated=False)
        return manifest

    def _validate(self, uuid: str, manifest: Dict[str, Any], activated: bool) -> None:
        errors = validate_manifest(validation_view(manifest, activated), mode=self.mode,
                                   has_channels=bool(self.channels))
        if errors:
            raise validation_failed(
                "invalid manifest of image %s (%s mode): %s; correct these fields"
                % (uuid, self.mode, "; ".join("%s: %s" % (error["field"], error["message"]) for error in errors)),
                errors, uuid=uuid)

    # ---- AddImageFile

    def _unactivated(self, uuid: str, action: str) -> CatalogImage:
        image = self._current(uuid)
        if image is None:
            raise not_found("image %s not found; import its manifest first with POST /images/%s?action=import"
                            % (uuid, uuid), uuid=uuid)
        if image.area != AREA_UNACTIVATED:
            raise ApiError(422, "ImageFilesImmutable" if action == "file" else "ImageAlreadyActivated",
                           "image %s is already activated, so its %s cannot change; import a new image instead"
                           % (uuid, "file" if action == "file" else "state"), uuid=uuid)
        return image

    def add_file(self, uuid: str, request: Request) -> CatalogImage:
        self._unactivated(uuid, "file")
        compression = request.query.get("compression")
        if not compression:
            raise invalid_parameter("compression", "missing compression; add ?compression= with one of %s"
                                    % ", ".join(COMPRESSIONS), code="Missing")
        if compression not in COMPRESSIONS:
            raise invalid_parameter("compression", "invalid compression %r; use one of %s"
                                    % (compression, ", ".join(COMPRESSIONS)))
        expected_sha1 = request.query.get("sha1") or None
        dataset_guid = request.query.get("dataset_guid") or None
        length = request.content_length()
        if length is not None and length > self.max_upload:
            raise bad_request("Upload", "image file of %d bytes (from Content-Length) is larger than the maximum %d "
                                        "bytes of this server" % (length, self.max_upload), uuid=uuid)

        temporary, size, sha1, md5 = self._receive(uuid, request, length)
        try:
            if size == 0:
                raise bad_request("Download", "image file size is 0 bytes; empty files are not allowed", uuid=uuid)
            if length is not None and size != length:
                raise bad_request("Download", "Content-Length %d does not match the %d bytes received; upload the "
                                              "whole file again" % (length, size), uuid=uuid)
            if expected_sha1 and expected_sha1 != sha1:
                raise bad_request("Download", "sha1 %s does not match the uploaded file's sha1 %s; upload the file "
                                              "the sha1 was computed for" % (expected_sha1, sha1), uuid=uuid)
            return self._install_file(uuid, temporary, compression, size, sha1, md5, dataset_guid)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def _receive(self, uuid: str, request: Request, length: Optional[int]):
        """Stream the request body to a temporary file while hashing it; return its path, size and digests."""
        stream = request.environ.get("wsgi.input")
        handle, temporary = tempfile.mkstemp(dir=self.layout.tmp_dir, prefix="upload-%s-" % uuid)
        sha1 = hashlib.sha1()
        md5 = hashlib.md5()
        size = 0
        try:
            with os.fdopen(handle, "wb") as output:
                remaining = length
                while stream is not None and (remaining is None or remaining > 0):
                    wanted = UPLOAD_CHUNK_SIZE if remaining is None else min(UPLOAD_CHUNK_SIZE, remaining)
                    try:
                        chunk = stream.read(wanted)
                    except Exception as exc:  # pylint: disable=broad-except
                        # WSGI servers raise their own exception types for a
                        # broken or truncated body, which cannot be imported here.
                        raise bad_request("Download", "reading the uploaded file failed after %d bytes: %s; upload "
                                                      "it again" % (size, exc or type(exc).__name__),
                                          uuid=uuid) from exc
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_upload:
                        raise bad_request("Upload", "image file is larger than the maximum %d bytes of this server"
                                          % self.max_upload, uuid=uuid)
                    sha1.update(chunk)
                    md5.update(chunk)
                    output.write(chunk)
                    if remaining is not None:
                        remaining -= len(chunk)
                output.flush()
                os.fsync(output.fileno())
            os.chmod(temporary, 0o644)
        except BaseException:
            os.unlink(temporary)
            raise
        return temporary, size, sha1.hexdigest(), base64.b64encode(md5.digest()).decode("ascii")

    def _install_file(self, uuid: str, temporary: str, compression: str, size: int, sha1: str, md5: str,
                      dataset_guid: Optional[str]) -> CatalogImage:
        with self.locked():
            image = self._unactivated(uuid, "file")
            directory = image.directory
            file_path = os.path.join(directory, FILE_NAME)
            record_path = os.path.join(directory, FILE_RECORD_NAME)
            old_manifest = dict(image.manifest)
            os.rename(temporary, file_path)
            try:
                stat = os.stat(file_path)
                record = {"size": size, "sha1": sha1, "md5": md5, "mtime_ns": stat.st_mtime_ns}
                write_atomic(record_path, json_text(record))
                entry: Dict[str, Any] = {"sha1": sha1, "size": size, "compression": compression}
                if dataset_guid:
                    entry["dataset_guid"] = dataset_guid
                manifest = dict(old_manifest)
                manifest["files"] = [entry]
                write_atomic(os.path.join(directory, MANIFEST_NAME), manifest_text(manifest).encode("utf-8"))
            except BaseException:
                for path in (file_path, record_path):
                    if os.path.exists(path):
                        os.unlink(path)
                raise
            self._changed()
        LOG.info("image %s: received its %s file of %d bytes, sha1 %s", uuid, compression, size, sha1)
        return self._current(uuid)

    # ---- ActivateImage

    def activate(self, uuid: str) -> CatalogImage:
        with self.locked():
            image = self._unactivated(uuid, "activate")
            if not image.has_file:
                raise ApiError(422, "NoActivationNoFile", "image %s has no file yet; upload it with PUT "
                                                          "/images/%s/file before activating" % (uuid, uuid),
                               uuid=uuid)
            if os.path.exists(self.layout.image_dir(AREA_PUBLISHED, uuid)):
                raise ApiError(409, "ImageUuidAlreadyExists", "image %s was published by other means meanwhile; "
                                                              "delete one of the two" % uuid, uuid=uuid)
            manifest = dict(image.manifest)
            # An image disabled before its activation stays disabled.
            manifest["state"] = "disabled" if manifest.get("disabled") is True else "active"
            manifest.setdefault("published_at", _now_published_at())
            self._validate(uuid, manifest, activated=True)
            manifest_path = os.path.join(image.directory, MANIFEST_NAME)
            previous = manifest_text(image.manifest).encode("utf-8")
            write_atomic(manifest_path, manifest_text(manifest).encode("utf-8"))
            try:
                os.rename(image.directory, self.layout.image_dir(AREA_PUBLISHED, uuid))
            except BaseException:
                write_atomic(manifest_path, previous)
                raise
            _sync_directory(self.layout.images_dir)
            self._changed()
        LOG.info("image %s activated and published", uuid)
        return self._current(uuid)

    # ---- DisableImage, EnableImage

    def set_disabled(self, uuid: str, disabled: bool) -> CatalogImage:
        """Disable or enable an image. A disabled image is listed only with state=disabled or state=all."""
        with self.locked():
            image = self._current(uuid)
            if image is None:
                raise not_found("image %s not found" % uuid, uuid=uuid)
            manifest = dict(image.manifest)
            manifest["disabled"] = disabled
            if image.area == AREA_PUBLISHED:
                manifest["state"] = "disabled" if disabled else "active"
            write_atomic(os.path.join(image.directory, MANIFEST_NAME), manifest_text(manifest).encode("utf-8"))
            self._changed()
        LOG.info("image %s %s", uuid, "disabled" if disabled else "enabled")
        return self._current(uuid)

    # ---- UpdateImage

    def update(self, uuid: str, body: Any) -> CatalogImage:
        """Change the fields of ``UPDATE_FIELDS`` that ``body`` gives; a null value removes the field."""
        if not isinstance(body, dict) or not body:
            raise bad_request("InvalidParameter", "the body must be a JSON object of the fields to change, such as "
                                                  '{"description": "..."}', uuid=uuid)
        rejected = sorted(field for field in body if field not in UPDATE_FIELDS)
        if rejected:
            raise validation_failed(
                "fields %s of image %s cannot be updated; the fields that can are %s"
                % (", ".join(rejected), uuid, ", ".join(UPDATE_FIELDS)),
                [{"field": field, "code": "NotAllowed", "message": "cannot be updated"} for field in rejected],
                uuid=uuid)
        with self.locked():
            image = self._current(uuid)
            if image is None:
                raise not_found("image %s not found" % uuid, uuid=uuid)
            manifest = dict(image.manifest)
            for field, value in body.items():
                if value is None:
                    manifest.pop(field, None)
                else:
                    manifest[field] = value
            if manifest.get("type") != "zvol":
                extra = [field for field in ZVOL_FIELDS if field in manifest]
                if extra:
                    raise validation_failed(
                        "fields %s apply to zvol images only, and image %s is of type %s; remove them"
                        % (", ".join(extra), uuid, manifest.get("type")),
                        [{"field": field, "code": "Invalid", "message": "zvol images only"} for field in extra],
                        uuid=uuid)
            self._validate(uuid, manifest, activated=image.area == AREA_PUBLISHED)
            write_atomic(os.path.join(image.directory, MANIFEST_NAME), manifest_text(manifest).encode("utf-8"))
            self._changed()
        LOG.info("image %s updated: %s", uuid, ", ".join(sorted(body)))
        return self._current(uuid)

    # ---- DeleteImage

    def delete(self, uuid: str) -> None:
        with self.locked():
            snapshot = self.catalog.snapshot(force=True)
            image = snapshot.by_uuid.get(uuid)
            if image is None:
                raise not_found("image %s not found" % uuid, uuid=uuid)
            dependents = sorted(snapshot.dependents.get(uuid, []))
            if dependents:
                raise ApiError(422, "ImageHasDependentImages",
                               "image %s is the origin of %s; delete those images first"
                               % (uuid, ", ".join(dependents)), uuid=uuid)
            if image.area == AREA_PUBLISHED:
                remove_image(self.layout.repository, uuid)
            else:
                aside = tempfile.mkdtemp(dir=self.layout.tmp_dir, prefix="delete-%s-" % uuid)
                os.rename(image.directory, os.path.join(aside, uuid))
                shutil.rmtree(aside)
            self._changed()
        LOG.info("image %s deleted", uuid)

    # ---- icons

    def put_icon(self, uuid: str, request: Request) -> CatalogImage:
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in ICON_CONTENT_TYPES:
            raise invalid_parameter("Content-Type", "invalid icon Content-Type %r; use one of %s"
                                    % (content_type, ", ".join(ICON_CONTENT_TYPES)))
        length = request.content_length()
        if length is not None and length > MAX_ICON_SIZE:
            raise bad_request("Upload", "icon of %d bytes is larger than the maximum %d bytes" % (length, MAX_ICON_SIZE),
                              uuid=uuid)
        data = read_body(request.environ, MAX_ICON_SIZE + 1 if length is None else length)
        if len(data) > MAX_ICON_SIZE:
            raise bad_request("Upload", "icon is larger than the maximum %d bytes" % MAX_ICON_SIZE, uuid=uuid)
        if not data:
            raise bad_request("Upload", "icon is empty; send the image bytes as the request body", uuid=uuid)
        if length is not None and len(data) != length:
            raise bad_request("Upload", "Content-Length %d does not match the %d icon bytes received"
                              % (length, len(data)), uuid=uuid)
        with self.locked():
            image = self._current(uuid)
            if image is None:
                raise not_found("image %s not found" % uuid, uuid=uuid)
            write_atomic(os.path.join(image.directory, ICON_NAME), data)
            record = {
                "content_type": content_type,
                "size": len(data),
                "sha1": hashlib.sha1(data).hexdigest(),
                "md5": base64.b64encode(hashlib.md5(data).digest()).decode("ascii"),
            }
            write_atomic(os.path.join(image.directory, ICON_RECORD_NAME), json_text(record))
            if image.manifest.get("icon") is not True:
                manifest = dict(image.manifest)
                manifest["icon"] = True
                write_atomic(os.path.join(image.directory, MANIFEST_NAME), manifest_text(manifest).encode("utf-8"))
            self._changed()
        LOG.info("image %s: icon of %d bytes stored", uuid, len(data))
        return self._current(uuid)

    def delete_icon(self, uuid: str) -> CatalogImage:
        with self.locked():
            image = self._current(uuid)
            if image is None:
                raise not_found("image %s not found" % uuid, uuid=uuid)
            if "icon" in image.manifest:
                manifest = dict(image.manifest)
                del manifest["icon"]
                write_atomic(os.path.join(image.directory, MANIFEST_NAME), manifest_text(manifest).encode("utf-8"))
            for name in (ICON_RECORD_NAME, ICON_NAME):
                path = os.path.join(image.directory, name)
                if os.path.exists(path):
                    os.unlink(path)
            self._changed()
        LOG.info("image %s: icon deleted", uuid)
        return self._current(uuid)


def _sync_directory(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
