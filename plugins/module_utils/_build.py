# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure rules of building an image: names, the manifest, and the sources it comes from.

The manifest rules are those of SmartOS ``imgadm create``: the fields it
inherits from the origin image, its brand rules for a VM, and its output
file names. Nothing here runs a command or touches a file, so the module's
check mode and its real run share every decision, and the unit tests run
the rules as tables.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import re
from typing import Any, Dict, NamedTuple, Optional, Tuple

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ManifestError
from ansible_collections.smartos.images.plugins.module_utils._manifest import COMPRESSIONS, is_uuid
from ansible_collections.smartos.images.plugins.module_utils._platform import Platform

# The fields imgadm create copies from the origin image's manifest when the
# task does not set them, in imgadm's order.
INHERITED_FIELDS = (
    "type", "os", "requirements", "users", "billing_tags", "traits", "generate_passwords",
    "inherited_directories", "nic_driver", "disk_driver", "cpu_type", "image_size",
)

# Fields the build fills in; a task that sets them gets an error that names the option to use.
BUILD_FIELDS = {
    "files": "the build fills in files from the image file it writes",
    "origin": "set the incremental option (and origin, for a dataset) to build an incremental image",
}

# Brands whose image is the VM's first disk, a ZFS volume.
DISK_BRANDS = ("kvm", "bhyve")
# SmartOS zone brands, whose binaries need at least the platform they were built on.
PLATFORM_BRANDS = ("joyent", "joyent-minimal")
# Brands that imgadm records as requirements.brand.
RECORDED_BRANDS = ("bhyve", "lx", "kvm")

FILE_EXTENSIONS = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "none": ""}

# An installed image is the dataset <pool>/<uuid> with the snapshot @final, so
# this is the origin property of a dataset cloned from one.
ORIGIN_PROPERTY_RE = re.compile(r"\A([^/@]+)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@final\Z")

# imgadm's slug: characters other than word characters, whitespace, ".", "_"
# and "-" are dropped. \w is ASCII-only in JavaScript, hence the explicit class.
_SLUG_DROP_RE = re.compile(r"[^A-Za-z0-9_\s.-]")
_SLUG_DASH_RE = re.compile(r"[\s-]+")


class VmSource(NamedTuple):
    """The dataset a VM's image is built from, with the VM's origin image, brand and bootrom."""

    uuid: str
    dataset: str
    image_uuid: Optional[str]
    brand: Optional[str]
    bootrom: Optional[str]


def slug(text: str) -> str:
    """Return ``text`` as imgadm create spells it in file names."""
    text = _SLUG_DROP_RE.sub("", text).strip().lower()
    return _SLUG_DASH_RE.sub("-", text)


def file_prefix(name: str, version: str) -> str:
    """Return the ``<slug(name)>-<slug(version)>`` base name of an image's output files."""
    return "%s-%s" % (slug(name), slug(version))


def file_suffix(image_type: Any, compression: str) -> str:
    """Return the image file's suffix: ``.zvol`` for a zvol image, else ``.zfs``, plus the compression's."""
    if compression not in FILE_EXTENSIONS:
        raise ValueError("unknown compression %r; use one of %s" % (compression, ", ".join(COMPRESSIONS)))
    return (".zvol" if image_type == "zvol" else ".zfs") + FILE_EXTENSIONS[compression]


def format_published_at(moment: datetime.datetime) -> str:
    """Format ``moment`` in UTC as IMGAPI does: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


# ---- the requested manifest

def check_requested_manifest(requested: Any) -> None:
    """Raise ManifestError unless the task's ``manifest`` can start a build.

    Only what the build itself relies on is checked here: the full field
    rules run on the derived manifest with ``check_manifest``.
    """
    if not isinstance(requested, dict):
        raise ManifestError("manifest must be a dictionary of manifest fields such as {name: web, version: 1.0.0}")
    for field in ("name", "version"):
        value = requested.get(field)
        if value is None:
            raise ManifestError("manifest.%s is missing; add the image %s" % (field, field))
        if not isinstance(value, str):
            raise ManifestError("manifest.%s %s is a %s, not a string; quote it in YAML so that it stays text, as in "
                                "%s: '%s'" % (field, json.dumps(value), type(value).__name__, field, value))
    for field, reason in BUILD_FIELDS.items():
        if field in requested:
            raise ManifestError("manifest.%s is set; remove it, because %s" % (field, reason))


# ---- deriving the manifest

def derive_manifest(requested: Dict[str, Any], origin_manifest: Optional[Dict[str, Any]] = None,
                    vm: Optional[VmSource] = None, platform: Optional[Platform] = None,
                    origin: Optional[str] = None) -> Dict[str, Any]:
    """Return the manifest imgadm create would make, without ``files`` and without generated values.

    ``requested`` is the task's manifest. ``origin_manifest`` is the origin
    image's manifest, when known, to inherit from. ``vm`` gives the brand
    rules for a VM. ``platform`` supplies ``requirements.min_platform`` for
    a SmartOS zone brand. ``origin`` is set for an incremental image.
    ``uuid`` and ``published_at`` are only present when the task sets them;
    see ``finish_manifest``.
    """
    manifest: Dict[str, Any] = {"v": 2}
    manifest.update(copy.deepcopy(requested))
    if origin_manifest:
        inherit_fields(manifest, origin_manifest)
    if vm is not None and vm.brand:
        apply_brand_rules(manifest, requested, vm.brand, vm.bootrom, platform)
    if origin:
        manifest["origin"] = origin
    manifest.setdefault("state", "active")
    manifest.setdefault("disabled", False)
    return manifest


def inherit_fields(manifest: Dict[str, Any], origin_manifest: Dict[str, Any]) -> None:
    """Copy the inherited fields the manifest lacks from the origin's manifest, skipping empty arrays."""
    for field in INHERITED_FIELDS:
        if field in manifest or field not in origin_manifest:
            continue
        value = origin_manifest[field]
        if isinstance(value, list) and not value:
            continue
        manifest[field] = copy.deepcopy(value)


def apply_brand_rules(manifest: Dict[str, Any], requested: Dict[str, Any], brand: str,
                      bootrom: Optional[str], platform: Optional[Platform]) -> None:
    """Set the requirements imgadm create derives from a VM's brand.

    Each rule yields to the task: the test is on the task's own
    ``requirements``, not on those inherited from the origin, as in imgadm.
    A ``requirements`` that is not a dictionary is left for validation to
    report.
    """
    task_requirements = requested.get("requirements")
    task_requirements = task_requirements if isinstance(task_requirements, dict) else {}
    wants_platform = platform is not None and needs_platform(requested, brand)
    wants_brand = brand in RECORDED_BRANDS and "brand" not in task_requirements
    wants_bootrom = brand == "bhyve" and bool(bootrom) and not _is_set(task_requirements.get("bootrom"))
    if not (wants_platform or wants_brand or wants_bootrom):
        return
    requirements = manifest.setdefault("requirements", {})
    if not isinstance(requirements, dict):
        return
    if wants_platform:
        requirements["min_platform"] = {platform.version: platform.stamp}
    if wants_brand:
        requirements["brand"] = brand
    if wants_bootrom:
        requirements["bootrom"] = bootrom


def needs_platform(requested: Dict[str, Any], brand: Optional[str]) -> bool:
    """Return whether the brand rules set ``requirements.min_platform`` from the running platform."""
    task_requirements = requested.get("requirements")
    return brand in PLATFORM_BRANDS and not (isinstance(task_requirements, dict)
                                             and _is_set(task_requirements.get("min_platform")))


def _is_set(value: Any) -> bool:
    # imgadm tests these requirements for JavaScript truthiness, so an empty
    # object counts as given and an empty string or null does not.
    return value is not None and value is not False and value != "" and value != 0


def finish_manifest(template: Dict[str, Any], uuid: str, published_at: str) -> Dict[str, Any]:
    """Return ``template`` with ``uuid`` and ``published_at`` unless it sets them, ``v`` and ``uuid`` first."""
    manifest = {"v": template.get("v", 2), "uuid": template.get("uuid", uuid)}
    for key, value in template.items():
        if key not in manifest:
            manifest[key] = copy.deepcopy(value)
    manifest.setdefault("published_at", published_at)
    return manifest


# ---- sources

def vm_source(vm_uuid: str, info: Any) -> VmSource:
    """Return the dataset and origin of the stopped VM that ``vmadm get`` described as ``info``."""
    if not isinstance(info, dict):
        raise ImageError("vmadm get %s printed no VM object; check the VM UUID with vmadm list" % vm_uuid)
    state = info.get("state")
    if state != "stopped":
        raise ImageError("VM %s is %s; stop it with vmadm stop %s, because an image is only built from a stopped "
                         "VM" % (vm_uuid, state or "in an unknown state", vm_uuid))
    brand = info.get("brand")
    if brand in DISK_BRANDS:
        disks = info.get("disks")
        if not isinstance(disks, list) or not disks or not isinstance(disks[0], dict):
            raise ImageError("%s VM %s has no disks; an image of a %s VM is built from its first disk"
                             % (brand, vm_uuid, brand))
        holder, where = disks[0], "disks[0].zfs_filesystem"
    else:
        holder, where = info, "zfs_filesystem"
    dataset = holder.get("zfs_filesystem")
    if not isinstance(dataset, str) or not dataset:
        raise ImageError("vmadm get %s has no %s; check that the VM is fully created" % (vm_uuid, where))
    image_uuid = holder.get("image_uuid")
    bootrom = info.get("bootrom") if brand == "bhyve" else None
    return VmSource(uuid=vm_uuid, dataset=dataset, image_uuid=image_uuid if is_uuid(image_uuid) else None,
                    brand=brand if isinstance(brand, str) else None,
                    bootrom=bootrom if isinstance(bootrom, str) and bootrom else None)


def origin_from_property(value: str) -> Optional[Tuple[str, str]]:
    """Return ``(pool, uuid)`` when a dataset's ``origin`` property is an installed image's ``@final``."""
    match = ORIGIN_PROPERTY_RE.match(value or "")
    if match is None:
        return None
    return match.group(1), match.group(2)


# ---- the build fingerprint

def inputs_fingerprint(template: Dict[str, Any], compression: str, incremental: bool, origin: Optional[str],
                       dataset: str, vm: Optional[str]) -> Dict[str, Any]:
    """Return the inputs of a build that decide its image, as recorded beside its outputs.

    ``template`` is the derived manifest before a UUID or ``published_at``
    is generated, so it contains the task's fields, the inherited ones and
    those of the brand rules.
    """
    return {
        "manifest": template,
        "compression": compression,
        "incremental": incremental,
        "origin": origin,
        "dataset": dataset,
        "vm": vm,
    }


def combined_fingerprint(inputs: Dict[str, Any], content: Dict[str, Any]) -> str:
    """Return the SHA-256 hex digest of a build's inputs and the identifying part of its content fingerprint."""
    identity = {key: content.get(key) for key in ("kind", "entries", "sha256", "guid")}
    text = json.dumps({"inputs": inputs, "content": identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
