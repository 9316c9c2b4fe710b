# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Build an image from a ZFS dataset or a stopped VM, without changing the dataset.

``ImageBuilder.plan`` only reads: it resolves the source, derives and
validates the manifest, fingerprints the dataset and compares it with the
build record, so check mode, diff and the real run share one decision.
``apply`` snapshots the dataset under a name unique to the run, sends the
snapshot into the output, and destroys the snapshot in a ``finally``. A
snapshot that cannot be destroyed fails the task, or is named in a warning
when the build already failed for another reason.
Unlike ``imgadm create``, it never renames an existing ``@final`` snapshot
or sets a property, so the dataset keeps exactly the snapshots it had.
"""

from __future__ import annotations

import datetime
import os
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.smartos.images.plugins.module_utils._build import (
    VmSource,
    check_requested_manifest,
    combined_fingerprint,
    derive_manifest,
    finish_manifest,
    format_published_at,
    inputs_fingerprint,
    needs_platform,
    origin_from_property,
    vm_source,
)
from ansible_collections.smartos.images.plugins.module_utils._cache import ManifestCache
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ZfsError
from ansible_collections.smartos.images.plugins.module_utils._fingerprint import tree_fingerprint
from ansible_collections.smartos.images.plugins.module_utils._manifest import COMPRESSIONS, check_manifest, describe, is_uuid
from ansible_collections.smartos.images.plugins.module_utils._outputs import (
    RECORD_FORMAT,
    DirectoryOutputs,
    RepositoryOutputs,
    verify_outputs,
)
from ansible_collections.smartos.images.plugins.module_utils._platform import Platform
from ansible_collections.smartos.images.plugins.module_utils._send import COMPRESSOR_ARGUMENTS, write_stream
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs

SNAPSHOT_PREFIX = "image-build-"

# Placeholders that let the derived manifest be validated before a UUID is chosen.
_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"
_PLACEHOLDER_PUBLISHED_AT = "2000-01-01T00:00:00.000Z"


# How long a build waits for files changed within the last second to age,
# so that its record can prove a later run unchanged (see _fingerprint).
SETTLE_LIMIT_S = 3.0
SETTLE_STEP_S = 0.25


class BuildZfs(Zfs):
    """The ``zfs`` commands a build needs besides those of ``Zfs``."""

    def properties(self, name: str, names: List[str]) -> Dict[str, str]:
        out = self._check([self.zfs_bin, "get", "-H", "-p", "-o", "property,value", ",".join(names), name],
                          "get properties")
        values = {}
        for line in out.splitlines():
            prop, _tab, value = line.partition("\t")
            values[prop] = value
        return values

    def snapshot(self, name: str) -> None:
        self._check([self.zfs_bin, "snapshot", name], "snapshot")

    def snapshot_exists(self, name: str) -> bool:
        rc, out, err = self._run([self.zfs_bin, "list", "-H", "-o", "name", "-t", "snapshot", name])
        return rc == 0 and out.strip() == name

    def send_argv(self, snapshot: str, incremental_from: Optional[str] = None) -> List[str]:
        # No -p, -R, -c or -w: imgadm create sends plain streams, which every
        # zfs receive accepts.
        argv = [self.zfs_bin, "send"]
        if incremental_from:
            argv += ["-i", incremental_from]
        return argv + [snapshot]


@dataclass
class BuildRequest:
    """The inputs of one build, as the task gives them."""

    manifest: Dict[str, Any]
    dataset: Optional[str] = None
    vm: Optional[str] = None
    origin: Optional[str] = None
    incremental: bool = False
    compression: str = "none"
    output_dir: Optional[str] = None
    repository: Optional[str] = None
    force: bool = False
    pool: str = "zones"
    cache_dir: str = "/var/imgadm/images"


@dataclass
class Source:
    """The dataset to image, with the ZFS properties the build reads."""

    dataset: str
    kind: str
    origin_property: str
    mounted: bool
    mountpoint: str
    guid: str
    vm: Optional[VmSource] = None


@dataclass
class BuildPlan:
    """The decision for one build: what to send, the manifest, the outputs, and whether anything changes."""

    request: BuildRequest
    source: Source
    origin: Optional[str]
    manifest: Dict[str, Any]
    manifest_path: str
    file_path: str
    outputs: Any
    inputs: Dict[str, Any]
    content: Optional[Dict[str, Any]]
    fingerprint: Optional[str]
    record: Optional[Dict[str, Any]]
    changed: bool
    reason: str
    compressor_argv: Optional[List[str]] = None
    incremental_from: Optional[str] = None

    @property
    def uuid(self) -> str:
        return self.manifest["uuid"]


def record_summary(record: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Return the part of a build record that a diff shows; empty for no record."""
    if not record:
        return {}
    files = record.get("manifest", {}).get("files") or [{}]
    summary = {
        "uuid": record.get("uuid"),
        "fingerprint": record.get("fingerprint"),
        "manifest_path": record.get("manifest_path"),
        "file_path": record.get("file_path"),
    }
    for key in ("size", "sha1"):
        if files[0].get(key) is not None:
            summary[key] = files[0][key]
    return summary


class ImageBuilder:
    """Plans and applies image builds.

    The callables keep the engine free of Ansible: ``read_vm(uuid)`` returns
    the parsed ``vmadm get`` output, ``read_platform()`` the host's Platform
    or None where there is no ``sysinfo``, and ``find_command(name)`` the
    path of a command or None.
    """

    def __init__(self, *, zfs: BuildZfs, read_vm: Callable[[str], Any],
                 read_platform: Callable[[], Optional[Platform]], find_command: Callable[[str], Optional[str]],
                 warn: Callable[[str], None]):
        self.zfs = zfs
        self.read_vm = read_vm
        self.read_platform = read_platform
        self.find_command = find_command
        self.warn = warn

    # Deciding

    def plan(self, request: BuildRequest) -> BuildPlan:
        check_requested_manifest(request.manifest)
        if request.compression not in COMPRESSIONS:
            raise ImageError("compression %r is not supported; use one of %s"
                             % (request.compression, ", ".join(COMPRESSIONS)))
        source = self._resolve_source(request)
        origin, origin_manifest = self._resolve_origin(request, source)
        incremental_from = self._incremental_from(request, source, origin)
        template = self._derive(request, source, origin_manifest, origin if request.incremental else None)
        compressor_argv = self._compressor_argv(request.compression)

        name, version = request.manifest["name"], request.manifest["version"]
        if request.repository:
            outputs = RepositoryOutputs(request.repository, name, version, self.warn)
        else:
            outputs = DirectoryOutputs(request.output_dir, name, version, self.warn)
        outputs.check()

        content = self._content_fingerprint(source)
        inputs = inputs_fingerprint(template, request.compression, request.incremental, origin, source.dataset,
                                    source.vm.uuid if source.vm else None)
        fingerprint = combined_fingerprint(inputs, content) if content else None
        record = outputs.find_record(template.get("uuid"))
        plan = BuildPlan(request=request, source=source, origin=origin, manifest={}, manifest_path="", file_path="",
                         outputs=outputs, inputs=inputs, content=content, fingerprint=fingerprint, record=record,
                         changed=True, reason="", compressor_argv=compressor_argv, incremental_from=incremental_from)
        self._decide(plan, template)
        return plan

    def _decide(self, plan: BuildPlan, template: Dict[str, Any]) -> None:
        record = plan.record
        same_inputs = bool(record and plan.fingerprint and record.get("fingerprint") == plan.fingerprint
                           and not (record.get("content") or {}).get("racy"))
        problem = None
        if same_inputs:
            expected_paths = plan.outputs.locate(record["manifest"], plan.request.compression)
            if expected_paths != (record["manifest_path"], record["file_path"]):
                problem = "the recorded outputs %s and %s are not where this task writes them" % (
                    record["manifest_path"], record["file_path"])
            else:
                problem = verify_outputs(record, record["manifest_path"], record["file_path"])
        if same_inputs and problem is None and not plan.request.force:
            plan.manifest = record["manifest"]
            plan.manifest_path, plan.file_path = record["manifest_path"], record["file_path"]
            plan.changed = False
            plan.reason = "the dataset and the inputs match the build record and its outputs verify"
            return

        if plan.content is None:
            plan.reason = "the dataset's content cannot be fingerprinted"
        elif not record:
            plan.reason = "there is no build record"
        elif (record.get("content") or {}).get("racy") and record.get("fingerprint") == plan.fingerprint:
            plan.reason = ("the previous build's record is not trusted, because files changed within the second before "
                           "that build")
        elif not same_inputs:
            plan.reason = "the dataset or the inputs changed since the recorded build"
        elif problem:
            plan.reason = problem
        else:
            plan.reason = "force is set"
        # The same inputs keep their UUID; anything else is a new image.
        uuid = template.get("uuid") or (record["uuid"] if same_inputs else str(uuidlib.uuid4()))
        now = format_published_at(datetime.datetime.now(datetime.timezone.utc))
        plan.manifest = finish_manifest(template, uuid, now)
        plan.outputs.check_target(plan.manifest["uuid"])
        plan.manifest_path, plan.file_path = plan.outputs.locate(plan.manifest, plan.request.compression)

    def _resolve_source(self, request: BuildRequest) -> Source:
        vm = None
        dataset = request.dataset
        if request.vm:
            if not is_uuid(request.vm):
                raise ImageError("vm %r is not a lower-case VM UUID; give the UUID vmadm list shows" % request.vm)
            vm = vm_source(request.vm, self.read_vm(request.vm))
            dataset = vm.dataset
        if not dataset or "@" in dataset:
            raise ImageError("dataset %r is not a ZFS filesystem or volume name such as zones/build; give one, not a "
                             "snapshot" % (dataset,))
        if not self.zfs.exists(dataset):
            raise ImageError("dataset %s does not exist; check the name with zfs list" % dataset)
        props = self.zfs.properties(dataset, ["type", "origin", "mounted", "mountpoint", "guid"])
        kind = props.get("type")
        if kind not in ("filesystem", "volume"):
            raise ImageError("dataset %s is a %s; an image is built from a filesystem or a volume" % (dataset, kind))
        return Source(dataset=dataset, kind=kind, origin_property=props.get("origin", "-"),
                      mounted=props.get("mounted") == "yes", mountpoint=props.get("mountpoint", "-"),
                      guid=props.get("guid", ""), vm=vm)

    def _resolve_origin(self, request: BuildRequest, source: Source):
        """Return ``(origin uuid, origin manifest)``; either may be None."""
        cloned_from = origin_from_property(source.origin_property)
        if cloned_from and cloned_from[0] != request.pool:
            raise ImageError("dataset %s is cloned from %s, an image in pool %s, but pool is %s; set pool to %s"
                             % (source.dataset, source.origin_property, cloned_from[0], request.pool, cloned_from[0]))
        if source.vm is not None:
            origin = source.vm.image_uuid
        elif request.origin:
            if not is_uuid(request.origin):
                raise ImageError("origin %r is not a lower-case image UUID such as "
                                 "2f1dc911-6401-4fa4-8e9d-67ea2e39c271" % request.origin)
            origin = request.origin
        else:
            origin = cloned_from[1] if cloned_from else None
        if origin is None:
            return None, None
        if cloned_from and cloned_from[1] != origin and not request.incremental:
            self.warn("dataset %s is cloned from image %s, but the origin to inherit from is %s; check origin"
                      % (source.dataset, cloned_from[1], origin))
        info, warning = ManifestCache(request.cache_dir).load(request.pool, origin)
        if warning:
            self.warn(warning)
        if info is None:
            self.warn("origin image %s has no manifest cache entry in %s for pool %s, so no field is inherited from "
                      "it; import it with smartos.images.image or set cache_dir"
                      % (origin, request.cache_dir, request.pool))
            return origin, None
        return origin, info["manifest"]

    def _incremental_from(self, request: BuildRequest, source: Source, origin: Optional[str]) -> Optional[str]:
        """Return the origin snapshot an incremental build sends from; raise unless it can."""
        if not request.incremental:
            return None
        if origin is None:
            raise ImageError("dataset %s has no origin image, so no incremental image can be built from it; set "
                             "origin, or build a full image with incremental: false" % source.dataset)
        snapshot = "%s/%s@final" % (request.pool, origin)
        if not self.zfs.snapshot_exists(snapshot):
            raise ImageError("origin image %s has no snapshot %s, so no incremental image can be sent from it; "
                             "import the origin image into pool %s, or build a full image"
                             % (origin, snapshot, request.pool))
        if source.origin_property != snapshot:
            raise ImageError("dataset %s is not a clone of %s (its origin is %s), so zfs send cannot send it "
                             "incrementally from there; build a full image or give the right origin"
                             % (source.dataset, snapshot, source.origin_property))
        return snapshot

    def _derive(self, request: BuildRequest, source: Source, origin_manifest: Optional[Dict[str, Any]],
                incremental_origin: Optional[str]) -> Dict[str, Any]:
        """Return the validated manifest template: the derived manifest without generated values."""
        platform = None
        vm = source.vm
        if vm is not None and needs_platform(request.manifest, vm.brand):
            platform = self.read_platform()
            if platform is None:
                self.warn("%s VM %s: there is no sysinfo on this host, so requirements.min_platform is not set; set "
                          "it in manifest.requirements" % (vm.brand, vm.uuid))
        template = derive_manifest(request.manifest, origin_manifest, vm=vm, platform=platform,
                                   origin=incremental_origin)
        check_manifest(finish_manifest(template, _PLACEHOLDER_UUID, _PLACEHOLDER_PUBLISHED_AT))
        image_type = template.get("type")
        if (source.kind == "volume") != (image_type == "zvol"):
            raise ImageError("dataset %s is a %s but the image type is %s; set manifest.type to %s"
                             % (source.dataset, source.kind, image_type,
                                "zvol" if source.kind == "volume" else "zone-dataset, lx-dataset or another "
                                                                       "filesystem type"))
        return template

    def _compressor_argv(self, compression: str) -> Optional[List[str]]:
        if compression == "none":
            return None
        path = self.find_command(compression)
        if path is None:
            raise ImageError("%s is not installed on this host; install it or choose another compression" % compression)
        return [path] + COMPRESSOR_ARGUMENTS[compression]

    def _content_fingerprint(self, source: Source) -> Optional[Dict[str, Any]]:
        """Return the dataset's content fingerprint, or None when it has none and must always be built."""
        if source.kind == "volume":
            return None
        if not source.mounted or not os.path.isdir(source.mountpoint):
            self.warn("dataset %s is not mounted, so its content cannot be compared with the last build and the "
                      "image is built again; mount it with zfs mount %s" % (source.dataset, source.dataset))
            return None
        try:
            content = tree_fingerprint(source.mountpoint)
        except OSError as exc:
            self.warn("dataset %s: cannot read %s (%s), so its content cannot be compared with the last build and "
                      "the image is built again" % (source.dataset, exc.filename, exc.strerror))
            return None
        content["guid"] = source.guid
        return content

    # Acting

    def apply(self, plan: BuildPlan) -> List[str]:
        """Build the image the plan describes and return what was done; set ``plan.manifest["files"]``."""
        if not plan.changed:
            return []
        if plan.content and plan.content.get("racy"):
            self._settle_content(plan)
        label = describe(plan.manifest)
        staged = plan.outputs.staging_path(plan.file_path)
        plan.outputs.prepare(staged)
        snapshot = "%s@%s%s" % (plan.source.dataset, SNAPSHOT_PREFIX, uuidlib.uuid4())
        written = self._send(plan, snapshot, staged, label)
        plan.manifest["files"] = [{"sha1": written.sha1, "size": written.size,
                                   "compression": plan.request.compression}]
        record = self._record(plan)
        if plan.content and plan.content.get("racy"):
            self.warn("dataset %s: files changed within the second before this build, or have time stamps in the "
                      "future, so the build record cannot prove a later run unchanged and the next run builds the "
                      "image again" % plan.source.dataset)
        try:
            actions = plan.outputs.publish(staged, plan.manifest, record, plan.record)
        except BaseException:
            if os.path.exists(staged):
                os.unlink(staged)
            raise
        stream_kind = "incrementally from %s" % plan.incremental_from if plan.incremental_from else "in full"
        built = "Built image %s from %s, sent %s with compression %s: %d bytes" % (
            label, plan.source.dataset, stream_kind, plan.request.compression, written.size)
        return [built] + actions

    def _settle_content(self, plan: BuildPlan) -> None:
        """Walk the dataset again until its newest time stamp is out of the racy window, for up to a few seconds.

        A record with a racy fingerprint makes the next run build again, and a
        rebuild sends a new stream with another sha1 under the same UUID,
        which an image server that already has the image rejects. The walk
        comes before the snapshot, so the snapshot contains at least what the
        recorded fingerprint describes.
        """
        deadline = time.monotonic() + SETTLE_LIMIT_S
        while plan.content and plan.content.get("racy") and time.monotonic() < deadline:
            time.sleep(SETTLE_STEP_S)
            plan.content = self._content_fingerprint(plan.source)
        plan.fingerprint = combined_fingerprint(plan.inputs, plan.content) if plan.content else None

    def _send(self, plan: BuildPlan, snapshot: str, staged: str, label: str):
        """Snapshot the dataset, write the stream to ``staged``, and destroy the snapshot after success or failure."""
        self.zfs.snapshot(snapshot)
        failed = True
        try:
            written = write_stream(self.zfs.send_argv(snapshot, plan.incremental_from), plan.compressor_argv,
                                   staged, label)
            failed = False
        finally:
            self._destroy_snapshot(snapshot, staged, failed)
        return written

    def _destroy_snapshot(self, snapshot: str, staged: str, failed: bool) -> None:
        try:
            self.zfs.destroy(snapshot)
            return
        except ZfsError as exc:
            problem = exc
        if failed:
            # The build's own error is on its way up; this one must not replace it.
            self.warn("the temporary snapshot %s could not be destroyed: %s; destroy it with zfs destroy %s"
                      % (snapshot, problem, snapshot))
            return
        if os.path.exists(staged):
            os.unlink(staged)
        raise ImageError("the temporary snapshot %s could not be destroyed after the image was sent: %s; destroy it "
                         "with zfs destroy %s and run the task again" % (snapshot, problem, snapshot))

    def _record(self, plan: BuildPlan) -> Dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "uuid": plan.manifest["uuid"],
            "slot": {"name": plan.manifest["name"], "version": plan.manifest["version"]},
            "fingerprint": plan.fingerprint,
            "inputs": plan.inputs,
            "content": plan.content,
            "manifest_path": plan.manifest_path,
            "file_path": plan.file_path,
            "manifest": plan.manifest,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
