# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The image server's in-memory catalog of a repository directory.

The repository layout is that of ``_repository``: published images are
``images/<uuid>/`` with ``manifest.json``, ``file`` and the checksum record
``file.json``. The server adds, under ``.imgapi/``:

- ``unactivated/<uuid>/``: images imported through the write API and not
  yet activated, in the same layout; they are not published.
- ``tmp/``: uploads in progress, on the same file system so that a finished
  upload is renamed into place.
- ``generation``: rewritten after every change the server makes, so that
  every worker process reloads on its next request.
- ``write.lock``: the lock that serializes changes between processes.

The catalog is reloaded when the modification time of ``images/``, of
``.imgapi/unactivated/`` or of ``generation`` changes, and in any case
every ``rescan_interval`` seconds to notice a manifest edited in place.
A reload re-reads only the images whose files changed.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import re
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.smartos.images.plugins.module_utils._errors import ManifestError
from ansible_collections.smartos.images.plugins.module_utils._manifest import VALID_STATES, is_uuid, parse_manifest
from ansible_collections.smartos.images.plugins.module_utils._repository import (
    FILE_NAME,
    FILE_RECORD_NAME,
    IMAGES_DIR,
    MANIFEST_NAME,
    file_record,
    read_file_record,
)

LOG = logging.getLogger("smartos.images.imgapi")

STATE_DIR = ".imgapi"
ICON_NAME = "icon"
ICON_RECORD_NAME = "icon.json"
AREA_PUBLISHED = "published"
AREA_UNACTIVATED = "unactivated"
# Responses kept per catalog generation; a reload drops them all.
RESPONSE_CACHE_SIZE = 64

PUBLISHED_AT_RE = re.compile(
    r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?Z\Z")


class Layout:
    """The paths of one repository."""

    def __init__(self, repository: str):
        self.repository = os.path.abspath(repository)
        self.images_dir = os.path.join(self.repository, IMAGES_DIR)
        self.state_dir = os.path.join(self.repository, STATE_DIR)
        self.unactivated_dir = os.path.join(self.state_dir, "unactivated")
        self.tmp_dir = os.path.join(self.state_dir, "tmp")
        self.generation_path = os.path.join(self.state_dir, "generation")
        self.lock_path = os.path.join(self.state_dir, "write.lock")

    def area_dir(self, area: str) -> str:
        return self.images_dir if area == AREA_PUBLISHED else self.unactivated_dir

    def image_dir(self, area: str, uuid: str) -> str:
        if not is_uuid(uuid):
            # The UUID becomes a path component; anything else could name a path outside the repository.
            raise ValueError("image UUID %r is not a lower-case UUID" % (uuid,))
        return os.path.join(self.area_dir(area), uuid)

    def ensure(self) -> None:
        for path in (self.images_dir, self.unactivated_dir, self.tmp_dir):
            os.makedirs(path, exist_ok=True)

    def bump_generation(self) -> None:
        """Rewrite the generation file so that every worker reloads its catalog."""
        write_atomic(self.generation_path, ("%d\n" % time.time_ns()).encode("ascii"))


def published_ms(value: Any) -> int:
    """Return ``published_at`` as milliseconds since the epoch, 0 when it is missing or not a timestamp.

    Timestamps are compared as numbers because the same instant has several
    spellings (``...:00Z``, ``...:00.000Z``, and ``...T12:00Z`` in DSAPI
    manifests), which sort differently as text.
    """
    if not isinstance(value, str):
        return 0
    match = PUBLISHED_AT_RE.match(value)
    if match is None:
        return 0
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                                   tzinfo=datetime.timezone.utc)
    except ValueError:
        return 0
    millis = int((fraction or "0").ljust(3, "0")[:3])
    return int(moment.timestamp()) * 1000 + millis


def image_state(manifest: Dict[str, Any], area: str) -> str:
    if area == AREA_UNACTIVATED:
        return "unactivated"
    state = manifest.get("state")
    if isinstance(state, str) and state in VALID_STATES:
        return state
    return "disabled" if manifest.get("disabled") is True else "active"


class CatalogImage:
    """One image of the catalog: its manifest as stored, where it lives and its file's checksums."""

    def __init__(self, uuid: str, manifest: Dict[str, Any], area: str, directory: str, signature: Tuple,
                 record: Optional[Dict[str, Any]], icon: Optional[Dict[str, Any]]):
        self.uuid = uuid
        self.manifest = manifest
        self.area = area
        self.directory = directory
        self.signature = signature
        self.state = image_state(manifest, area)
        self.published_ms = published_ms(manifest.get("published_at"))
        self.sort_key = (self.published_ms, uuid)
        self.record = record
        self.icon = icon
        self.origin = manifest.get("origin") if is_uuid(manifest.get("origin")) else None
        self.serialized: Dict[Tuple, bytes] = {}

    @property
    def file_path(self) -> str:
        return os.path.join(self.directory, FILE_NAME)

    @property
    def icon_path(self) -> str:
        return os.path.join(self.directory, ICON_NAME)

    @property
    def has_file(self) -> bool:
        return self.signature[1] is not None

    def channels(self, default_channel: Optional[str]) -> List[str]:
        channels = self.manifest.get("channels")
        if isinstance(channels, list):
            return [channel for channel in channels if isinstance(channel, str)]
        # An image published without the write API, for example by
        # image_build, belongs to the default channel.
        return [default_channel] if default_channel else []


class Snapshot:
    """The catalog as loaded at one moment; never changed once built."""

    def __init__(self, images: Sequence[CatalogImage]):
        self.images = sorted(images, key=lambda image: image.sort_key)
        self.by_uuid = {image.uuid: image for image in self.images}
        self.dependents: Dict[str, List[str]] = {}
        for image in self.images:
            if image.origin:
                self.dependents.setdefault(image.origin, []).append(image.uuid)
        self._responses: Dict[Any, Any] = {}
        self._lock = threading.Lock()

    def cached(self, key: Any) -> Any:
        with self._lock:
            return self._responses.get(key)

    def remember(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._responses) >= RESPONSE_CACHE_SIZE:
                self._responses.clear()
            self._responses[key] = value


class Catalog:
    """The images of a repository, reloaded when the repository changes."""

    def __init__(self, layout: Layout, rescan_interval: float = 10.0):
        self.layout = layout
        self.rescan_interval = rescan_interval
        self._lock = threading.Lock()
        self._hash_lock = threading.Lock()
        self._snapshot = Snapshot([])
        self._marks: Optional[Tuple] = None
        self._scanned_at = float("-inf")
        self._entries: Dict[Tuple[str, str], CatalogImage] = {}
        self._warned: Dict[Tuple[str, str], Tuple] = {}
        # Checksums this process computed for files without a usable
        # file.json, when that file could not be written.
        self._computed: Dict[Tuple[str, int, int], Dict[str, Any]] = {}

    def _directory_marks(self) -> Tuple:
        marks = []
        for path in (self.layout.images_dir, self.layout.unactivated_dir, self.layout.generation_path):
            try:
                stat = os.stat(path)
                marks.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
            except OSError:
                marks.append(None)
        return tuple(marks)

    def snapshot(self, force: bool = False) -> Snapshot:
        """Return the current catalog, reloading it first when the repository changed."""
        marks = self._directory_marks()
        now = time.monotonic()
        if not force and marks == self._marks and now - self._scanned_at < self.rescan_interval:
            return self._snapshot
        with self._lock:
            marks = self._directory_marks()
            if force or marks != self._marks or now - self._scanned_at >= self.rescan_interval:
                self._rescan(marks)
            return self._snapshot

    def _rescan(self, marks: Tuple) -> None:
        started = time.monotonic()
        entries: Dict[Tuple[str, str], CatalogImage] = {}
        changed = False
        for area in (AREA_PUBLISHED, AREA_UNACTIVATED):
            for uuid in _image_names(self.layout.area_dir(area)):
                key = (area, uuid)
                directory = os.path.join(self.layout.area_dir(area), uuid)
                signature = _signature(directory)
                if signature is None:
                    continue
                previous = self._entries.get(key)
                if previous is not None and previous.signature == signature:
                    entries[key] = previous
                    continue
                changed = True
                image = self._load(area, uuid, directory, signature)
                if image is not None:
                    entries[key] = image
        if changed or set(entries) != set(self._entries):
            published = {uuid for area, uuid in entries if area == AREA_PUBLISHED}
            # An image being activated can be seen in both places for a
            # moment; the published copy wins.
            images = [image for (area, uuid), image in entries.items()
                      if area == AREA_PUBLISHED or uuid not in published]
            self._snapshot = Snapshot(images)
            LOG.info("catalog of %s loaded: %d images in %.0f ms", self.layout.repository, len(images),
                     (time.monotonic() - started) * 1000)
        self._entries = entries
        self._marks = marks
        self._scanned_at = time.monotonic()

    def _load(self, area: str, uuid: str, directory: str, signature: Tuple) -> Optional[CatalogImage]:
        path = os.path.join(directory, MANIFEST_NAME)
        try:
            with open(path, "rb") as handle:
                manifest = parse_manifest(handle.read(), path)
            if manifest.get("uuid") != uuid:
                raise ManifestError("its manifest has uuid %r; move the image to the directory of that UUID or "
                                    "correct the manifest" % (manifest.get("uuid"),))
        except (OSError, ManifestError) as exc:
            if self._warned.get((area, uuid)) != signature:
                self._warned[(area, uuid)] = signature
                LOG.error("image %s in %s is not served: %s", uuid, directory, exc)
            return None
        record = read_file_record(directory) if signature[1] is not None else None
        if record is None and signature[1] is not None:
            record = self._computed.get((directory, signature[1][0], signature[1][1]))
        icon = _read_icon_record(directory) if signature[3] is not None else None
        return CatalogImage(uuid, manifest, area, directory, signature, record, icon)

    def file_record(self, image: CatalogImage) -> Dict[str, Any]:
        """Return the checksums of the image's file, hashing it once if no current ``file.json`` exists.

        Images published by the write API always have one. An image
        published by other means, such as ``image_build``, gets its
        ``file.json`` here on the first request for its file.
        """
        if image.record is not None:
            return image.record
        with self._hash_lock:
            record = read_file_record(image.directory)
            if record is None:
                LOG.info("image %s has no current %s; hashing %s once", image.uuid, FILE_RECORD_NAME,
                         image.file_path)
                record = file_record(image.file_path)
                try:
                    write_atomic(os.path.join(image.directory, FILE_RECORD_NAME), json_text(record))
                    self.layout.bump_generation()
                except OSError as exc:
                    LOG.warning("image %s: cannot write %s (%s); this process keeps the checksums in memory and "
                                "every other process hashes the file once more", image.uuid,
                                os.path.join(image.directory, FILE_RECORD_NAME), exc.strerror)
                    self._computed[(image.directory, record["size"], record["mtime_ns"])] = record
            image.record = record
            _check_manifest_file(image, record)
            return record


def _check_manifest_file(image: CatalogImage, record: Dict[str, Any]) -> None:
    files = image.manifest.get("files")
    first = files[0] if isinstance(files, list) and files and isinstance(files[0], dict) else {}
    if first.get("size") != record["size"] or (first.get("sha1") and first.get("sha1") != record["sha1"]):
        LOG.error("image %s: file %s has size %d and sha1 %s but the manifest says size %s and sha1 %s; clients "
                  "will reject the download until the image is published again", image.uuid, image.file_path,
                  record["size"], record["sha1"], first.get("size"), first.get("sha1"))


def _image_names(directory: str) -> List[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [name for name in names if is_uuid(name)]


def _stat_mark(path: str, inode: bool = False) -> Optional[Tuple]:
    try:
        stat = os.stat(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            LOG.warning("cannot stat %s: %s", path, exc.strerror)
        return None
    if inode:
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    return (stat.st_size, stat.st_mtime_ns)


def _signature(directory: str) -> Optional[Tuple]:
    """Return what identifies the current version of an image directory, None when it has no manifest."""
    manifest = _stat_mark(os.path.join(directory, MANIFEST_NAME), inode=True)
    if manifest is None:
        return None
    return (
        manifest,
        _stat_mark(os.path.join(directory, FILE_NAME)),
        _stat_mark(os.path.join(directory, FILE_RECORD_NAME), inode=True),
        _stat_mark(os.path.join(directory, ICON_RECORD_NAME), inode=True),
    )


def _read_icon_record(directory: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(directory, ICON_RECORD_NAME), "rb") as handle:
            record = json.loads(handle.read().decode("utf-8"))
        current = os.stat(os.path.join(directory, ICON_NAME))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("size") != current.st_size:
        return None
    return record


def json_text(value: Any) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode("utf-8")


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers see the old or the new file."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
