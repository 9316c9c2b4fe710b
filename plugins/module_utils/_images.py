# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ensure images are present on or absent from a pool.

``ImageManager.plan_present`` and ``plan_absent`` only read: they decide
what must change and why, so check mode, diff and the real run share one
decision.  ``apply_present`` and ``apply_absent`` act on a plan.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set

from ansible_collections.smartos.images.plugins.module_utils._cache import ManifestCache
from ansible_collections.smartos.images.plugins.module_utils._download import FileDownload, feed_file, verify_file
from ansible_collections.smartos.images.plugins.module_utils._exclusive import ExclusivePlan, plan_exclusive
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ImageError,
    ImageNotFoundError,
    InUseError,
    ManifestError,
    SourceError,
    ZfsError,
)
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._installed import FINAL_SUFFIX, InstalledImageLister
from ansible_collections.smartos.images.plugins.module_utils._lock import ImportLocks
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    check_manifest,
    describe,
    image_file,
    is_uuid,
    parse_manifest,
    upgrade_manifest,
)
from ansible_collections.smartos.images.plugins.module_utils._platform import Platform, platform_problem
from ansible_collections.smartos.images.plugins.module_utils._receive import DEFAULT_STALL_TIMEOUT, ReceivePipeline
from ansible_collections.smartos.images.plugins.module_utils._sources import (
    RemoteImage,
    Source,
    client_for,
)
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs

MAX_ORIGIN_DEPTH = 100


@dataclass
class Paths:
    """Locations of imgadm's state, each movable for tests or hosts that are not SmartOS."""

    config_file: str = "/var/imgadm/imgadm.conf"
    cache_dir: str = "/var/imgadm/images"
    download_dir: str = "/var/tmp/.imgadm-downloads"
    lock_dir: str = "/var/run"


@dataclass
class ImageRequest:
    """One image a task requests: by UUID, by name and version, or as local files."""

    uuid: Optional[str] = None
    name: Optional[str] = None
    version: Optional[str] = None
    manifest_path: Optional[str] = None
    file_path: Optional[str] = None

    def label(self) -> str:
        if self.uuid:
            return self.uuid
        if self.manifest_path:
            return self.manifest_path
        return "%s@%s" % (self.name, self.version or "newest")


@dataclass
class Step:
    """One image to import: its manifest and where its file comes from."""

    manifest: Dict[str, Any]
    source_url: Optional[str]
    file_url: Optional[str] = None
    file_path: Optional[str] = None
    insecure: bool = False

    @property
    def uuid(self) -> str:
        return self.manifest["uuid"]

    def summary(self) -> Dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name": self.manifest.get("name"),
            "version": self.manifest.get("version"),
            "size": image_file(self.manifest).size,
            "source": self.source_url or self.file_path,
        }


@dataclass
class PresentPlan:
    """The decision for ``state=present``: the wanted image and what to import, base first."""

    request: ImageRequest
    manifest: Dict[str, Any]
    steps: List[Step] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)


@dataclass
class AbsentPlan:
    request: ImageRequest
    uuid: Optional[str]
    manifest: Optional[Dict[str, Any]]


def now_iso() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


class ImageManager:
    """Plans and applies image changes on one pool."""

    def __init__(self, *, zfs: Zfs, pool: str, paths: Paths, http: HttpClient, sources: List[Source],
                 lock_timeout: float = 1800.0, warn: Callable[[str], None] = lambda message: None,
                 platform: Optional[Platform] = None, receive_timeout: float = DEFAULT_STALL_TIMEOUT):
        self.zfs = zfs
        self.pool = pool
        self.paths = paths
        self.http = http
        self.sources = sources
        self.lock_timeout = lock_timeout
        self.receive_timeout = receive_timeout
        self.warn = warn
        self.cache = ManifestCache(paths.cache_dir)
        self.platform = platform
        self._clients = None
        self._pool_checked = False

    # Reading state

    def dataset(self, uuid: str) -> str:
        return "%s/%s" % (self.pool, uuid)

    def is_installed(self, uuid: str) -> bool:
        if self._pool_checked:
            return self.zfs.exists(self.dataset(uuid))
        # The first check also lists the pool, so one call shows whether it exists.
        found = self.zfs.existing([self.pool, self.dataset(uuid)])
        if self.pool not in found:
            raise ImageError("pool %s does not exist on this host; create it or set pool" % self.pool, pool=self.pool)
        self._pool_checked = True
        return self.dataset(uuid) in found

    def installed_manifest(self, uuid: str) -> Dict[str, Any]:
        info, warning = self.cache.load(self.pool, uuid)
        if warning:
            self.warn(warning)
        return info["manifest"] if info else {"uuid": uuid}

    def find_installed(self, name: str, version: Optional[str]) -> Optional[Dict[str, Any]]:
        """Return the newest installed image called ``name`` (at ``version`` when given)."""
        if not self._pool_checked:
            if not self.zfs.pool_exists(self.pool):
                raise ImageError("pool %s does not exist on this host; create it or set pool" % self.pool,
                                 pool=self.pool)
            self._pool_checked = True
        matches = []
        prefix = self.pool + "/"
        for dataset in self.zfs.datasets(self.pool):
            uuid = dataset.name[len(prefix):]
            if not dataset.name.startswith(prefix) or not is_uuid(uuid):
                continue
            manifest = self.installed_manifest(uuid)
            if manifest.get("name") == name and (version is None or manifest.get("version") == version):
                matches.append(manifest)
        matches.sort(key=lambda m: m.get("published_at") or "")
        return matches[-1] if matches else None

    def clients(self):
        if self._clients is None:
            self._clients = [client_for(source, self.http) for source in self.sources]
        return self._clients

    # Resolving images in sources

    def find_remote(self, uuid: str, active_only: bool = True) -> RemoteImage:
        """Return the image from the first source that has it, skipping sources that fail."""
        if not self.sources:
            raise ImageNotFoundError("image %s: no sources are configured; add one with "
                                     "smartos.images.image_source or give sources on the task" % uuid)
        problems = []
        for client in self.clients():
            try:
                remote = client.get_image(uuid)
            except (SourceError, ManifestError) as exc:
                problems.append(str(exc))
                continue
            if remote is None:
                problems.append("%s: not found" % client.source.url)
            elif active_only and remote.manifest.get("state", "active") != "active":
                problems.append("%s: state is %s, not active" % (client.source.url, remote.manifest.get("state")))
            else:
                for problem in problems:
                    self.warn("image %s: skipped a source: %s" % (uuid, problem))
                return remote
        raise ImageNotFoundError("image %s was not found in any source (%s); check the UUID and the sources"
                                 % (uuid, "; ".join(problems)), uuid=uuid)

    def find_remote_by_name(self, name: str, version: Optional[str]) -> RemoteImage:
        """Return the newest active image called ``name`` from the first source that has one."""
        filters = {"name": name, "state": "active"}
        if version:
            filters["version"] = version
        problems = []
        for client in self.clients():
            try:
                listed = client.list_images(filters)
            except (SourceError, ManifestError) as exc:
                problems.append(str(exc))
                continue
            matches = [m for m in listed if m.get("name") == name and m.get("state", "active") == "active"
                       and (version is None or m.get("version") == version) and is_uuid(m.get("uuid"))]
            if matches:
                for problem in problems:
                    self.warn("image %s: skipped a source: %s" % (name, problem))
                newest = max(matches, key=lambda m: (m.get("published_at") or "", m["uuid"]))
                return self.find_remote(newest["uuid"])
            problems.append("%s: no active image" % client.source.url)
        wanted = "%s@%s" % (name, version) if version else name
        raise ImageNotFoundError("no active image %s was found in any source (%s); check the name, version and sources"
                                 % (wanted, "; ".join(problems)), name=name, version=version)

    def ancestry_steps(self, remote: RemoteImage) -> List[Step]:
        """Return the steps for ``remote`` and its origins not yet installed, base first."""
        steps = []
        current = remote
        seen = set()
        while True:
            manifest = current.manifest
            uuid = manifest.get("uuid")
            if uuid in seen or len(seen) >= MAX_ORIGIN_DEPTH:
                raise ImageError("image %s: the origin chain loops or is deeper than %d images; check the source"
                                 % (describe(remote.manifest), MAX_ORIGIN_DEPTH))
            seen.add(uuid)
            image_file(manifest)
            self.check_platform(manifest)
            steps.append(Step(manifest, current.source.url, file_url=current.file_url, insecure=current.source.insecure))
            origin = manifest.get("origin")
            if not origin or self.is_installed(origin):
                break
            current = self._fetch_origin(current, origin)
        steps.reverse()
        return steps

    def _fetch_origin(self, child: RemoteImage, origin: str) -> RemoteImage:
        client = client_for(child.source, self.http)
        remote = client.get_image(origin)
        if remote is None:
            raise ImageNotFoundError(
                "origin %s of image %s was not found in source %s, which serves the image; the source is "
                "incomplete, add the origin there or import it first" % (origin, describe(child.manifest), child.source.url),
                uuid=origin,
            )
        return remote

    def check_platform(self, manifest: Dict[str, Any]) -> None:
        """Raise unless this host's platform meets the image's platform requirements."""
        if self.platform is None:
            return
        problem = platform_problem(manifest, self.platform)
        if problem:
            raise ImageError(
                "image %s requires %s but this host runs platform %s/%s; upgrade the platform or choose another image"
                % (describe(manifest), problem, self.platform.version, self.platform.stamp)
            )

    # Deciding

    def plan_present(self, request: ImageRequest) -> PresentPlan:
        if request.manifest_path:
            return self._plan_local(request)
        if request.uuid:
            if self.is_installed(request.uuid):
                return PresentPlan(request, self.installed_manifest(request.uuid))
            remote = self.find_remote(request.uuid)
        else:
            if request.version:
                installed = self.find_installed(request.name, request.version)
                if installed:
                    return PresentPlan(request, installed)
            remote = self.find_remote_by_name(request.name, request.version)
            if self.is_installed(remote.manifest["uuid"]):
                return PresentPlan(request, self.installed_manifest(remote.manifest["uuid"]))
        if remote.manifest.get("uuid") != (request.uuid or remote.manifest.get("uuid")):
            raise SourceError("source %s returned image %s when asked for %s; check the server"
                              % (remote.source.url, remote.manifest.get("uuid"), request.uuid), url=remote.source.url)
        return PresentPlan(request, remote.manifest, self.ancestry_steps(remote))

    def _plan_local(self, request: ImageRequest) -> PresentPlan:
        try:
            with open(request.manifest_path, "rb") as handle:
                manifest = upgrade_manifest(parse_manifest(handle.read(), request.manifest_path))
        except OSError as exc:
            raise ManifestError("cannot read manifest %s: %s" % (request.manifest_path, exc.strerror)) from exc
        check_manifest(manifest)
        self.check_platform(manifest)
        manifest.setdefault("published_at", now_iso())
        expected = image_file(manifest)
        if request.uuid and request.uuid != manifest["uuid"]:
            raise ManifestError("manifest %s describes image %s, not %s; fix uuid or manifest"
                                % (request.manifest_path, manifest["uuid"], request.uuid))
        if self.is_installed(manifest["uuid"]):
            return PresentPlan(request, self.installed_manifest(manifest["uuid"]))
        if not os.path.isfile(request.file_path):
            raise ImageError("image %s: file %s does not exist on the host; copy it there first"
                             % (describe(manifest), request.file_path))
        reason = verify_file(request.file_path, expected)
        if reason:
            raise ImageError("image %s: file %s does not match the manifest (%s); use the file the manifest was made for"
                             % (describe(manifest), request.file_path, reason))
        steps = [Step(manifest, None, file_path=request.file_path)]
        origin = manifest.get("origin")
        if origin and not self.is_installed(origin):
            steps[:0] = self.ancestry_steps(self.find_remote(origin, active_only=False))
        return PresentPlan(request, manifest, steps)

    def plan_absent(self, request: ImageRequest) -> AbsentPlan:
        uuid = request.uuid
        if not uuid and request.name:
            installed = self.find_installed(request.name, request.version)
            uuid = installed["uuid"] if installed else None
        if not uuid or not self.is_installed(uuid):
            return AbsentPlan(request, None, None)
        clones = self.zfs.clones_of(self.pool, self.dataset(uuid))
        if clones:
            raise InUseError(
                "image %s cannot be removed: %d dataset(s) are cloned from it: %s; remove those VMs or images first"
                % (uuid, len(clones), ", ".join(sorted(clones))), clones=clones,
            )
        return AbsentPlan(request, uuid, self.installed_manifest(uuid))

    def plan_exclusive(self, keep: Set[str], zone_paths: Set[str],
                       origins: Optional[Dict[str, Optional[str]]] = None) -> ExclusivePlan:
        """Return which images of the pool other than ``keep`` and their origins an exclusive task removes."""
        lister = InstalledImageLister(zfs=self.zfs, cache=self.cache, zone_paths=zone_paths, warn=self.warn)
        installed = lister.list([self.pool])
        finals = [self.dataset(entry["manifest"]["uuid"]) + FINAL_SUFFIX for entry in installed
                  if entry["manifest"]["uuid"] not in keep]
        with_final = {name[:-len(FINAL_SUFFIX)] for name in self.zfs.existing(finals)} if finals else set()
        return plan_exclusive(installed, keep, self.pool, with_final, origins)

    # Acting

    def apply_exclusive(self, plan: ExclusivePlan) -> List[str]:
        """Remove the plan's images in its order; return their UUIDs.

        Each image's clones are checked again just before it is destroyed,
        so a VM created from it since the plan stops the removal with an
        error that names the VM.
        """
        removed = []
        for entry in plan.remove:
            absent = self.plan_absent(ImageRequest(uuid=entry["manifest"]["uuid"]))
            if self.apply_absent(absent):
                removed.append(entry["manifest"]["uuid"])
        return removed

    def apply_present(self, steps: List[Step]) -> List[str]:
        """Import ``steps`` (base first) under the import locks; return the UUIDs imported."""
        if not steps:
            return []
        imported = []
        order = [step.uuid for step in reversed(steps)]
        with ImportLocks(self.paths.lock_dir, order, self.lock_timeout):
            for step in steps:
                if self._clean_before_install(step.uuid):
                    continue
                self._install(step)
                imported.append(step.uuid)
        return imported

    def apply_absent(self, plan: AbsentPlan) -> bool:
        if plan.uuid is None:
            return False
        self.zfs.destroy(self.dataset(plan.uuid))
        self.cache.remove(self.pool, plan.uuid)
        return True

    def _clean_before_install(self, uuid: str) -> bool:
        """Remove what a killed import of ``uuid`` left and return whether the image is installed.

        Only safe while holding the image's import lock.
        """
        target = self.dataset(uuid)
        partial = target + "-partial"
        found = self.zfs.existing([target, partial])
        if partial in found:
            self.warn("image %s: destroyed %s left over by an interrupted import" % (uuid, partial))
            self.zfs.destroy(partial)
        if target in found:
            return True
        if self.cache.remove(self.pool, uuid):
            self.warn("image %s: removed a stale manifest cache entry" % uuid)
        return False

    def _install(self, step: Step) -> None:
        partial = self.dataset(step.uuid) + "-partial"
        expected = image_file(step.manifest)
        label = describe(step.manifest)
        download = None
        starts = []

        def start_sink() -> ReceivePipeline:
            # A restarted download aborted the previous receive, which may
            # have left the -partial dataset behind.
            if starts and self.zfs.exists(partial):
                self.zfs.destroy(partial)
            starts.append(partial)
            return ReceivePipeline(expected.compression, self.zfs.receive_argv(partial), label,
                                   stall_timeout=self.receive_timeout)

        try:
            if step.file_path:
                sink = start_sink()
                feed_file(step.file_path, sink)
            else:
                download = FileDownload(http=self.http, download_dir=self.paths.download_dir, uuid=step.uuid,
                                        label=label, expected=expected, insecure=step.insecure)
                path = download.complete_file()
                if path:
                    sink = start_sink()
                    feed_file(path, sink)
                else:
                    sink, path = download.run(step.file_url, start_sink)
                for warning in download.warnings:
                    self.warn(warning)
            sink.finish()
            self._move_into_place(step, partial)
        except BaseException:
            self._destroy_quietly(partial)
            raise
        if download is not None:
            download.discard()

    def _move_into_place(self, step: Step, partial: str) -> None:
        snapshots = self.zfs.snapshots(partial)
        if len(snapshots) != 1:
            raise ImageError("image %s: the received stream holds %d snapshots (%s), an image must have exactly one; "
                             "the image file is not a single zfs send stream"
                             % (describe(step.manifest), len(snapshots), ", ".join(snapshots)))
        if snapshots[0] != "final":
            self.zfs.rename("%s@%s" % (partial, snapshots[0]), partial + "@final")
        self.cache.save(self.pool, step.uuid, step.manifest, step.source_url)
        try:
            self.zfs.rename(partial, self.dataset(step.uuid))
        except BaseException:
            self.cache.remove(self.pool, step.uuid)
            raise
        if step.manifest.get("type") != "zvol":
            try:
                self.zfs.mount(self.dataset(step.uuid))
            except ZfsError as exc:
                self.warn("image %s is installed but could not be mounted: %s" % (step.uuid, exc))

    def _destroy_quietly(self, dataset: str) -> None:
        try:
            if self.zfs.exists(dataset):
                self.zfs.destroy(dataset)
        except ZfsError as exc:
            self.warn("could not destroy %s after a failed import, destroy it by hand: %s" % (dataset, exc))
