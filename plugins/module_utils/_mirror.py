# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Copy images and their origin chains from a source into a repository.

``Mirror.plan`` only reads: it resolves the requested images on the source,
walks each origin chain down to an image the repository already has, and
returns what must be copied, base first. ``Mirror.apply`` downloads each
file, verifies its size and sha1 while it streams (``_download``), and
publishes it with ``_repository.publish_image``, so a reader of the
repository never sees an image whose file is incomplete or unverified.

An image counts as mirrored when the repository has its manifest and a file
of the manifest's ``files[0].size``. Its sha1 is checked when it is copied,
not on every run, because hashing every mirrored image on every run would
read the whole repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.smartos.images.plugins.module_utils._download import FileDownload
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ImageNotFoundError
from ansible_collections.smartos.images.plugins.module_utils._filters import Filter, describe_filters, parse_filters, select
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._lock import ImportLocks
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe, image_file, is_uuid
from ansible_collections.smartos.images.plugins.module_utils._repository import (
    FILE_NAME,
    FILE_RECORD_NAME,
    file_record,
    image_dir,
    manifest_text,
    publish_image,
    read_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._sources import RemoteImage

MAX_ORIGIN_DEPTH = 100
DOWNLOAD_DIR_NAME = ".mirror-downloads"
# Fields a DSAPI server adds to files[0] that point at that server; the
# repository's own server serves the file from its own URL.
SOURCE_FILE_FIELDS = ("url", "path")


@dataclass
class MirrorRequest:
    """One item of the task's ``images``: a UUID, or filters with an optional count of newest matches."""

    uuid: Optional[str] = None
    filters: List[Filter] = field(default_factory=list)
    newest: Optional[int] = None

    def label(self) -> str:
        if self.uuid:
            return self.uuid
        text = "filters %s" % describe_filters(self.filters)
        if self.newest:
            text += " (newest %d)" % self.newest
        return text


@dataclass
class MirrorPlan:
    """The requested images, and the images to copy for them, base first."""

    selected: List[Dict[str, Any]]
    steps: List[RemoteImage]

    @property
    def changed(self) -> bool:
        return bool(self.steps)


def parse_requests(items: Sequence[Any]) -> List[MirrorRequest]:
    """Turn the task's ``images`` (UUID strings or dicts) into requests; raise ImageError on an invalid item."""
    requests = []
    for index, item in enumerate(items):
        where = "images[%d]" % index
        if isinstance(item, str):
            item = {"uuid": item}
        if not isinstance(item, dict):
            raise ImageError("%s is %r; give an image UUID or a dict with uuid or filters" % (where, item))
        unknown = sorted(set(item) - {"uuid", "filters", "newest"})
        if unknown:
            raise ImageError("%s has unknown keys %s; the keys are uuid, filters and newest" % (where, ", ".join(unknown)))
        uuid = item.get("uuid")
        filters = item.get("filters")
        if (uuid is None) == (filters is None):
            raise ImageError("%s must have exactly one of uuid and filters, it has %s"
                             % (where, "both" if uuid is not None else "neither"))
        if uuid is not None:
            if not is_uuid(uuid):
                raise ImageError("%s: %r is not a lower-case image UUID such as 2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
                                 % (where, uuid))
            if item.get("newest") is not None:
                raise ImageError("%s: newest applies to filters only; remove it or use filters" % where)
            requests.append(MirrorRequest(uuid=uuid))
            continue
        if not isinstance(filters, (list, dict)) or not filters:
            raise ImageError("%s: filters is %r; give a non-empty list of field=value strings, such as "
                             "[name=base-64-lts]" % (where, filters))
        newest = item.get("newest")
        if newest is not None and (isinstance(newest, bool) or not isinstance(newest, int) or newest < 1):
            raise ImageError("%s: newest is %r; give a whole number of images, 1 or more" % (where, newest))
        requests.append(MirrorRequest(filters=parse_filters(filters), newest=newest))
    return requests


def source_free_manifest(manifest: Dict[str, Any]) -> Dict[str, Any]:
    """Return a copy of ``manifest`` without the DSAPI ``files[].url`` and ``files[].path`` of its source."""
    copied = dict(manifest)
    files = manifest.get("files")
    if isinstance(files, list):
        copied["files"] = [
            {key: value for key, value in entry.items() if key not in SOURCE_FILE_FIELDS} if isinstance(entry, dict)
            else entry
            for entry in files
        ]
    return copied


def is_mirrored(repository: str, manifest: Dict[str, Any]) -> bool:
    """Return whether the repository has the image with a file of the manifest's size."""
    uuid = manifest["uuid"]
    try:
        if read_manifest(repository, uuid) is None:
            return False
    except ImageError:
        # An unreadable manifest is replaced by the copy from the source.
        return False
    try:
        size = os.path.getsize(os.path.join(image_dir(repository, uuid), FILE_NAME))
    except OSError:
        return False
    return size == image_file(manifest).size


class NullSink:
    """The sink ``FileDownload`` streams into: the download file itself is all the mirror keeps."""

    def write(self, chunk: bytes) -> None:
        pass

    def abort(self) -> None:
        pass


class Mirror:
    """Plans and applies the copy of images from one source's client into one repository."""

    def __init__(self, *, repository: str, client: Any, http: HttpClient, download_dir: Optional[str] = None,
                 owner: Optional[int] = None, group: Optional[int] = None, lock_timeout: float = 1800.0,
                 warn: Callable[[str], None] = lambda message: None):
        self.repository = repository
        self.client = client
        self.http = http
        self.download_dir = download_dir or os.path.join(repository, DOWNLOAD_DIR_NAME)
        self.owner = owner
        self.group = group
        self.lock_timeout = lock_timeout
        self.warn = warn
        self._listings: Dict[bool, List[Dict[str, Any]]] = {}

    @property
    def source_url(self) -> str:
        return self.client.source.url

    # Resolving the requested images

    def listing(self, all_states: bool) -> List[Dict[str, Any]]:
        """Return the source's listing, of every state or, like ListImages without a state, of active images."""
        if all_states not in self._listings:
            self._listings[all_states] = self.client.list_images({"state": "all"} if all_states else None)
        return self._listings[all_states]

    def resolve(self, request: MirrorRequest) -> List[Dict[str, Any]]:
        """Return the manifests ``request`` names on the source; raise ImageNotFoundError when there are none."""
        if request.uuid:
            remote = self.client.get_image(request.uuid)
            if remote is None:
                raise ImageNotFoundError("image %s was not found in source %s; check the UUID and the source"
                                         % (request.uuid, self.source_url), uuid=request.uuid)
            return [remote.manifest]
        filters = list(request.filters)
        all_states = any(flt.field == "state" for flt in filters)
        if not all_states:
            # ListImages of an IMGAPI server lists only active images unless
            # asked for a state, and a DSAPI server lists every image, so
            # filter here to give both source types the IMGAPI default.
            filters.append(Filter("state", "active"))
        chosen = [m for m in select(self.listing(all_states), filters) if is_uuid(m.get("uuid"))]
        if not chosen:
            raise ImageNotFoundError("no image in source %s matches %s; check the filters with "
                                     "smartos.images.image_facts or the source's /images listing"
                                     % (self.source_url, request.label()))
        chosen.sort(key=lambda m: (m.get("published_at") or "", m["uuid"]))
        if request.newest:
            chosen = chosen[-request.newest:]
        return chosen

    def chain(self, manifest: Dict[str, Any]) -> List[RemoteImage]:
        """Return ``manifest``'s image and its origins that the repository lacks, base first."""
        steps: List[RemoteImage] = []
        seen = set()
        uuid = manifest["uuid"]
        while uuid:
            if uuid in seen or len(seen) >= MAX_ORIGIN_DEPTH:
                raise ImageError("image %s: the origin chain loops or is deeper than %d images; check the source"
                                 % (describe(manifest), MAX_ORIGIN_DEPTH))
            seen.add(uuid)
            remote = self.client.get_image(uuid)
            if remote is None:
                raise ImageNotFoundError(
                    "origin %s of image %s was not found in source %s; the source is incomplete, add the origin "
                    "there or mirror it from another source first" % (uuid, describe(manifest), self.source_url),
                    uuid=uuid,
                )
            remote.manifest = source_free_manifest(remote.manifest)
            if remote.manifest.get("uuid") != uuid:
                raise ImageError("source %s returned image %s when asked for %s; check the server"
                                 % (self.source_url, remote.manifest.get("uuid"), uuid))
            image_file(remote.manifest)
            if is_mirrored(self.repository, remote.manifest):
                break
            steps.append(remote)
            uuid = remote.manifest.get("origin")
        steps.reverse()
        return steps

    def plan(self, requests: Sequence[MirrorRequest]) -> MirrorPlan:
        selected: List[Dict[str, Any]] = []
        steps: List[RemoteImage] = []
        planned = set()
        for request in requests:
            for manifest in self.resolve(request):
                selected.append(source_free_manifest(manifest))
                for remote in self.chain(manifest):
                    if remote.manifest["uuid"] not in planned:
                        planned.add(remote.manifest["uuid"])
                        steps.append(remote)
        return MirrorPlan(selected, steps)

    # Copying

    def apply(self, plan: MirrorPlan) -> List[RemoteImage]:
        """Copy the plan's images, base first; return the ones copied by this run."""
        copied = []
        os.makedirs(self.download_dir, exist_ok=True)
        for remote in plan.steps:
            # Another run may be copying the same image into the same
            # repository. The lock makes this run wait for it, and the
            # check below then skips the image that run copied.
            with ImportLocks(self.download_dir, [remote.manifest["uuid"]], self.lock_timeout):
                if is_mirrored(self.repository, remote.manifest):
                    continue
                self.copy(remote)
            copied.append(remote)
        return copied

    def copy(self, remote: RemoteImage) -> str:
        manifest = remote.manifest
        download = FileDownload(http=self.http, download_dir=self.download_dir, uuid=manifest["uuid"],
                                label=describe(manifest), expected=image_file(manifest),
                                insecure=remote.source.insecure)
        path = download.complete_file()
        if path is None:
            path = download.run(remote.file_url, NullSink)[1]
        for warning in download.warnings:
            self.warn(warning)
        # The checksum record spares the image server hashing the file on
        # its first request. Renaming keeps the file's modification time,
        # which the record names.
        record = file_record(path)
        directory = publish_image(self.repository, manifest, path, move=True,
                                  extra_files={FILE_RECORD_NAME: manifest_text(record)})
        self.set_ownership(directory)
        return directory

    def set_ownership(self, directory: str) -> None:
        if self.owner is None and self.group is None:
            return
        uid = -1 if self.owner is None else self.owner
        gid = -1 if self.group is None else self.group
        os.chown(directory, uid, gid)
        for name in os.listdir(directory):
            os.chown(os.path.join(directory, name), uid, gid)


def summary(manifest: Dict[str, Any]) -> Dict[str, Any]:
    """Return the ``uuid``, ``name``, ``version``, ``origin`` and file ``size`` of a manifest."""
    return {
        "uuid": manifest.get("uuid"),
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "origin": manifest.get("origin"),
        "size": image_file(manifest).size,
    }
