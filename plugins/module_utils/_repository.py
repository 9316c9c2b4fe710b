# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The on-disk layout of an image server's repository directory.

Each image is one directory, ``<repository>/images/<uuid>/``, holding
``manifest.json`` (the manifest as 2-space JSON with a trailing newline)
and ``file`` (the image file). Other files in it, such as a build record,
belong to the program that wrote them.

An image is published by writing a new directory under a name starting
with ``.`` inside ``images/`` and renaming it to ``<uuid>``, so a reader
that lists ``images/`` sees a whole image or none. Directories whose names
are not lower-case UUIDs, such as those temporary ones, are not images.
Replacing an image renames the old directory aside first, so for a moment
neither version is there; a reader then gets "not found", never a mix.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe, is_uuid, parse_manifest

IMAGES_DIR = "images"
MANIFEST_NAME = "manifest.json"
FILE_NAME = "file"
# The checksums of ``file``, written when the file is published so that an
# image server never hashes a file while serving a request. See ``file_record``.
FILE_RECORD_NAME = "file.json"
HASH_CHUNK_SIZE = 1024 * 1024


def images_dir(repository: str) -> str:
    return os.path.join(repository, IMAGES_DIR)


def image_dir(repository: str, uuid: str) -> str:
    """Return the directory of image ``uuid``; raise ImageError unless ``uuid`` is a lower-case UUID."""
    if not is_uuid(uuid):
        # The UUID becomes a path component, so anything else could name a path outside the repository.
        raise ImageError("image UUID %r is not a lower-case UUID such as 2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
                         % (uuid,))
    return os.path.join(images_dir(repository), uuid)


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """Return ``manifest`` as it is stored: 2-space JSON with a trailing newline."""
    return json.dumps(manifest, indent=2) + "\n"


def read_manifest(repository: str, uuid: str) -> Optional[Dict[str, Any]]:
    """Return the manifest of image ``uuid``, or None when the repository has no such image.

    Raises ImageError (ManifestError) when the manifest exists but is not a JSON object.
    """
    path = os.path.join(image_dir(repository, uuid), MANIFEST_NAME)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ImageError("cannot read manifest %s: %s; check its permissions" % (path, exc.strerror)) from exc
    return parse_manifest(data, path)


def list_manifests(repository: str, warn: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Return the manifests of every image in the repository, ordered by UUID.

    A missing ``images`` directory is an empty repository. An image whose
    manifest cannot be read, is not JSON, or names another UUID than its
    directory is skipped, and ``warn`` is called with the reason.
    """
    try:
        names = sorted(os.listdir(images_dir(repository)))
    except FileNotFoundError:
        return []
    manifests = []
    for name in names:
        if not is_uuid(name) or not os.path.isdir(os.path.join(images_dir(repository), name)):
            continue
        try:
            manifest = read_manifest(repository, name)
        except ImageError as exc:
            if warn:
                warn("image %s in repository %s is skipped: %s" % (name, repository, exc))
            continue
        if manifest is None:
            continue
        if manifest.get("uuid") != name:
            if warn:
                warn("image %s in repository %s is skipped: its manifest has uuid %r; move it to the directory of "
                     "that UUID or correct the manifest" % (name, repository, manifest.get("uuid")))
            continue
        manifests.append(manifest)
    return manifests


def publish_image(repository: str, manifest: Mapping[str, Any], file_path: str, move: bool = False,
                  extra_files: Optional[Mapping[str, str]] = None) -> str:
    """Publish the image ``manifest`` describes, with ``file_path`` as its file, and return its directory.

    The file is copied, or renamed into place with ``move=True`` when it is
    on the repository's file system. ``extra_files`` maps further file
    names in the image directory to their text. An image already published
    under the same UUID is replaced. Raises ImageError when the manifest
    has no valid UUID or its ``files[0].size`` does not match the file.
    """
    uuid = manifest.get("uuid")
    final_dir = image_dir(repository, uuid)
    _check_file_size(manifest, file_path)
    parent = images_dir(repository)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".publish-%s-" % uuid)
    try:
        os.chmod(staging, 0o755)
        _place_file(file_path, os.path.join(staging, FILE_NAME), move)
        files = {MANIFEST_NAME: manifest_text(manifest)}
        files.update(extra_files or {})
        for name, text in files.items():
            _write_synced(os.path.join(staging, name), text)
        _swap_into_place(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync_directory(parent)
    return final_dir


def remove_image(repository: str, uuid: str) -> bool:
    """Remove image ``uuid`` from the repository; return whether it was there.

    The directory is renamed aside first, so readers never see an image
    with some of its files gone.
    """
    final_dir = image_dir(repository, uuid)
    if not os.path.isdir(final_dir):
        return False
    aside = tempfile.mkdtemp(dir=images_dir(repository), prefix=".remove-%s-" % uuid)
    try:
        os.rename(final_dir, os.path.join(aside, uuid))
    except FileNotFoundError:
        # Another process removed it first.
        os.rmdir(aside)
        return False
    shutil.rmtree(aside)
    _sync_directory(images_dir(repository))
    return True


def dependents(repository: str, uuid: str, warn: Optional[Callable[[str], None]] = None) -> List[str]:
    """Return the UUIDs of the images in the repository whose origin is ``uuid``."""
    return [manifest["uuid"] for manifest in list_manifests(repository, warn) if manifest.get("origin") == uuid]


def _check_file_size(manifest: Mapping[str, Any], file_path: str) -> None:
    files = manifest.get("files")
    expected = files[0].get("size") if isinstance(files, list) and files and isinstance(files[0], dict) else None
    if expected is None:
        raise ImageError("image %s: manifest has no files[0].size; build or correct the manifest before publishing"
                         % describe(dict(manifest)))
    actual = os.path.getsize(file_path)
    if actual != expected:
        raise ImageError("image %s: file %s has %d bytes but the manifest's files[0].size is %s; publish the file "
                         "the manifest was made for" % (describe(dict(manifest)), file_path, actual, expected))


def _place_file(source: str, destination: str, move: bool) -> None:
    if move:
        try:
            os.rename(source, destination)
            return
        except OSError as exc:
            # A file on another file system cannot be renamed there, only copied.
            if exc.errno != errno.EXDEV:
                raise
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        shutil.copyfileobj(reader, writer, 1024 * 1024)
        writer.flush()
        os.fsync(writer.fileno())
    os.chmod(destination, 0o644)
    if move:
        os.unlink(source)


def _write_synced(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o644)


def _swap_into_place(staging: str, final_dir: str) -> None:
    if not os.path.isdir(final_dir):
        os.rename(staging, final_dir)
        return
    parent = os.path.dirname(final_dir)
    aside = tempfile.mkdtemp(dir=parent, prefix=".replaced-%s-" % os.path.basename(final_dir))
    old = os.path.join(aside, "old")
    os.rename(final_dir, old)
    try:
        os.rename(staging, final_dir)
    except BaseException:
        os.rename(old, final_dir)
        os.rmdir(aside)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _sync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_record(file_path: str) -> Dict[str, Any]:
    """Hash ``file_path`` once and return its record for ``FILE_RECORD_NAME``.

    The record contains ``size`` in bytes, ``sha1`` as hex, ``md5`` as base64
    (the form of the HTTP ``Content-MD5`` header), and ``mtime_ns`` and
    ``size`` of the file when it was hashed, so that a reader can tell a
    stale record from a current one with one ``stat``.
    """
    sha1 = hashlib.sha1()
    md5 = hashlib.md5()
    with open(file_path, "rb") as handle:
        before = os.fstat(handle.fileno())
        for chunk in iter(lambda: handle.read(HASH_CHUNK_SIZE), b""):
            sha1.update(chunk)
            md5.update(chunk)
    return {
        "size": before.st_size,
        "sha1": sha1.hexdigest(),
        "md5": base64.b64encode(md5.digest()).decode("ascii"),
        "mtime_ns": before.st_mtime_ns,
    }


def read_file_record(directory: str) -> Optional[Dict[str, Any]]:
    """Return the checksum record beside ``directory``'s ``file``, or None if it is missing or stale.

    A record is stale when the file's size or modification time differ from
    those it was made for, because the file was replaced after hashing.
    """
    try:
        with open(os.path.join(directory, FILE_RECORD_NAME), "rb") as handle:
            record = json.loads(handle.read().decode("utf-8"))
        current = os.stat(os.path.join(directory, FILE_NAME))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("size") != current.st_size or record.get("mtime_ns") != current.st_mtime_ns:
        return None
    if not isinstance(record.get("sha1"), str) or not isinstance(record.get("md5"), str):
        return None
    return record
