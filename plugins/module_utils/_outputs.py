# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The output locations of a build, and the build record kept beside the image.

``DirectoryOutputs`` writes the files ``imgadm create -o DIR`` writes,
``<prefix>.imgmanifest`` and ``<prefix>.zfs[.gz|.bz2|.xz]`` (``.zvol`` for a
zvol image), with the record in ``<prefix>.build.json``.
``RepositoryOutputs`` publishes into an image server repository as
``images/<uuid>/manifest.json`` and ``file``, with the record in
``images/<uuid>/build.json``.

A build record names the build's slot (the image name and version), its
UUID, the fingerprint of its inputs and of the dataset's content, the
output paths, and the whole manifest written. A later run compares its own
fingerprint with the record to decide whether anything changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid as uuidlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.smartos.images.plugins.module_utils._build import file_prefix, file_suffix
from ansible_collections.smartos.images.plugins.module_utils._cache import atomic_write
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe, is_uuid
from ansible_collections.smartos.images.plugins.module_utils._repository import (
    FILE_NAME,
    MANIFEST_NAME,
    dependents,
    image_dir,
    images_dir,
    list_manifests,
    manifest_text,
    publish_image,
    remove_image,
)

RECORD_FORMAT = 1
# The fields a usable record has as strings; "fingerprint" is null for a dataset without a content fingerprint.
RECORD_STRINGS = ("uuid", "manifest_path", "file_path")
RECORD_NAME = "build.json"
RECORD_SUFFIX = ".build.json"
MANIFEST_SUFFIX = ".imgmanifest"

Warn = Callable[[str], None]


def record_text(record: Dict[str, Any]) -> str:
    return json.dumps(record, indent=2) + "\n"


def read_record(path: str, warn: Warn) -> Optional[Dict[str, Any]]:
    """Return the build record at ``path``, or None when there is none or it is unusable (with a warning)."""
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        warn("build record %s is unreadable (%s); it is ignored and the image is built again" % (path, exc))
        return None
    usable = (isinstance(record, dict) and record.get("format") == RECORD_FORMAT
              and isinstance(record.get("manifest"), dict) and is_uuid(record["manifest"].get("uuid"))
              and all(isinstance(record.get(key), str) for key in RECORD_STRINGS))
    if not usable:
        warn("build record %s is not a format %d build record; it is ignored and the image is built again"
             % (path, RECORD_FORMAT))
        return None
    return record


def file_digest(path: str) -> Tuple[int, str]:
    """Return the size and sha1 hex digest of the file at ``path``."""
    digest = hashlib.sha1()
    size = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(1024 * 1024)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def verify_outputs(record: Dict[str, Any], manifest_path: str, file_path: str) -> Optional[str]:
    """Return why the recorded outputs are not intact, or None when the manifest and the file match the record."""
    try:
        with open(manifest_path, "rb") as handle:
            on_disk = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return "manifest %s is missing" % manifest_path
    except (OSError, ValueError) as exc:
        return "manifest %s is unreadable (%s)" % (manifest_path, exc)
    if on_disk != record["manifest"]:
        return "manifest %s differs from the one the build wrote" % manifest_path
    files = record["manifest"].get("files") or [{}]
    try:
        size, sha1 = file_digest(file_path)
    except FileNotFoundError:
        return "image file %s is missing" % file_path
    except OSError as exc:
        return "image file %s is unreadable (%s)" % (file_path, exc.strerror)
    if size != files[0].get("size") or sha1 != files[0].get("sha1"):
        return "image file %s no longer matches its manifest (size %d, sha1 %s)" % (file_path, size, sha1)
    return None


class DirectoryOutputs:
    """The files of ``imgadm create -o DIR``, plus the build record, in one directory."""

    def __init__(self, output_dir: str, name: str, version: str, warn: Warn):
        self.output_dir = output_dir
        self.prefix = os.path.join(output_dir, file_prefix(name, version))
        self.record_path = self.prefix + RECORD_SUFFIX
        self.warn = warn

    def check(self) -> None:
        if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
            raise ImageError("output_dir %s is not a directory; give a directory path" % self.output_dir)

    def locate(self, manifest: Dict[str, Any], compression: str) -> Tuple[str, str]:
        """Return ``(manifest_path, file_path)`` of an image with ``manifest``."""
        return self.prefix + MANIFEST_SUFFIX, self.prefix + file_suffix(manifest.get("type"), compression)

    def find_record(self, uuid: Optional[str]) -> Optional[Dict[str, Any]]:
        return read_record(self.record_path, self.warn)

    def check_target(self, uuid: str) -> None:
        """Accept any image already there: the names come from the name and version alone, and imgadm create
        overwrites them too."""

    def staging_path(self, file_path: str) -> str:
        return file_path + ".partial"

    def prepare(self, staging_path: str) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        # Only a run killed while writing leaves this name behind.
        if os.path.exists(staging_path):
            os.unlink(staging_path)

    def publish(self, staged: str, manifest: Dict[str, Any], record: Dict[str, Any],
                previous: Optional[Dict[str, Any]]) -> List[str]:
        """Move the staged file into place, write the manifest and the record; return what was done."""
        manifest_path, file_path = record["manifest_path"], record["file_path"]
        os.replace(staged, file_path)
        atomic_write(manifest_path, manifest_text(manifest))
        atomic_write(self.record_path, record_text(record))
        actions = ["Wrote %s and %s" % (manifest_path, file_path)]
        old_file = (previous or {}).get("file_path")
        # A build with another compression or type leaves its old file under
        # another name. The previous record names that file, so it is ours to remove.
        if old_file and old_file != file_path and os.path.dirname(old_file) == self.output_dir:
            try:
                os.unlink(old_file)
                actions.append("Removed %s, the file of the previous build" % old_file)
            except FileNotFoundError:
                pass
        return actions


class RepositoryOutputs:
    """An image server repository: ``images/<uuid>/manifest.json``, ``file`` and the build record."""

    def __init__(self, repository: str, name: str, version: str, warn: Warn):
        self.repository = repository
        self.slot = {"name": name, "version": version}
        self.warn = warn

    def check(self) -> None:
        for path in (self.repository, images_dir(self.repository)):
            if os.path.exists(path) and not os.path.isdir(path):
                raise ImageError("repository path %s is not a directory; give the repository's directory" % path)

    def locate(self, manifest: Dict[str, Any], compression: str) -> Tuple[str, str]:
        directory = image_dir(self.repository, manifest["uuid"])
        return os.path.join(directory, MANIFEST_NAME), os.path.join(directory, FILE_NAME)

    def find_record(self, uuid: Optional[str]) -> Optional[Dict[str, Any]]:
        """Return the record of the latest build of this name and version, or of ``uuid`` when given."""
        if uuid:
            record = read_record(os.path.join(image_dir(self.repository, uuid), RECORD_NAME), self.warn)
            return record if record and record.get("slot") == self.slot else None
        found = []
        for manifest in list_manifests(self.repository, self.warn):
            path = os.path.join(image_dir(self.repository, manifest["uuid"]), RECORD_NAME)
            if not os.path.exists(path):
                continue
            record = read_record(path, self.warn)
            if record and record.get("slot") == self.slot:
                found.append(record)
        if not found:
            return None
        return max(found, key=lambda record: (str(record["manifest"].get("published_at")), record.get("uuid", "")))

    def check_target(self, uuid: str) -> None:
        """Raise ImageError when image ``uuid`` exists in the repository but is not a build of this slot."""
        directory = image_dir(self.repository, uuid)
        if not os.path.isdir(directory):
            return
        record = read_record(os.path.join(directory, RECORD_NAME), self.warn)
        if record and record.get("slot") == self.slot:
            return
        raise ImageError("repository %s already has image %s, which this task did not build (no build record for "
                         "%s@%s); choose another uuid or remove that image first"
                         % (self.repository, uuid, self.slot["name"], self.slot["version"]))

    def staging_path(self, file_path: str) -> str:
        # A dot name inside images/ is on the repository's file system, so the
        # file can be renamed into the image directory, and is no image to readers.
        return os.path.join(images_dir(self.repository), ".build-%s.file.partial" % uuidlib.uuid4())

    def prepare(self, staging_path: str) -> None:
        os.makedirs(images_dir(self.repository), exist_ok=True)

    def publish(self, staged: str, manifest: Dict[str, Any], record: Dict[str, Any],
                previous: Optional[Dict[str, Any]]) -> List[str]:
        """Publish the image with its record, then remove the previous build of the slot; return what was done."""
        directory = publish_image(self.repository, manifest, staged, move=True,
                                  extra_files={RECORD_NAME: record_text(record)})
        actions = ["Published image %s as %s" % (describe(manifest), directory)]
        old_uuid = (previous or {}).get("uuid")
        if not old_uuid or old_uuid == manifest["uuid"]:
            return actions
        children = dependents(self.repository, old_uuid, self.warn)
        if children:
            self.warn("repository %s keeps image %s, the previous build of %s@%s, because images %s have it as "
                      "origin; remove them and it when no longer needed"
                      % (self.repository, old_uuid, self.slot["name"], self.slot["version"], ", ".join(children)))
        elif remove_image(self.repository, old_uuid):
            actions.append("Removed image %s, the previous build of %s@%s"
                           % (old_uuid, self.slot["name"], self.slot["version"]))
        return actions
