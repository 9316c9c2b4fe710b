"""The manifest rules of image_build (inheritance, brand rules, sources), as tables."""

from __future__ import annotations

import copy
import datetime

import pytest

from ansible_collections.smartos.images.plugins.module_utils._build import (
    INHERITED_FIELDS,
    VmSource,
    check_requested_manifest,
    derive_manifest,
    finish_manifest,
    format_published_at,
    inputs_fingerprint,
    combined_fingerprint,
    needs_platform,
    origin_from_property,
    vm_source,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ManifestError
from ansible_collections.smartos.images.plugins.module_utils._platform import Platform

VM_UUID = "5fd2c4a2-4d24-4f4d-9a80-1c1b7c2b9e10"
ORIGIN_UUID = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
HOST = Platform("7.0", "20240104T000814Z")
REQUESTED = {"name": "web", "version": "1.0.0"}

ORIGIN = {
    "v": 2,
    "uuid": ORIGIN_UUID,
    "name": "base-64-lts",
    "version": "24.4.1",
    "description": "not inherited",
    "homepage": "https://example.com/not-inherited",
    "tags": {"role": "os"},
    "type": "zone-dataset",
    "os": "smartos",
    "requirements": {"networks": [{"name": "net0", "description": "public"}], "min_platform": {"7.0": "20200101T000000Z"}},
    "users": [{"name": "root"}, {"name": "admin"}],
    "billing_tags": [],
    "traits": {"ssd": True},
    "generate_passwords": True,
    "inherited_directories": [],
    "nic_driver": "virtio",
    "disk_driver": "virtio",
    "cpu_type": "host",
    "image_size": 10240,
    "files": [{"sha1": "x", "size": 1, "compression": "gzip"}],
    "published_at": "2024-01-01T00:00:00.000Z",
}


def vm(brand, bootrom=None):
    return VmSource(uuid=VM_UUID, dataset="zones/" + VM_UUID, image_uuid=ORIGIN_UUID, brand=brand, bootrom=bootrom)


# ---- inheritance

INHERITANCE = [
    # (id, requested extra fields, field, expected value or "absent")
    ("type copied", {}, "type", "zone-dataset"),
    ("os copied", {}, "os", "smartos"),
    ("requirements copied whole", {}, "requirements", ORIGIN["requirements"]),
    ("users copied", {}, "users", ORIGIN["users"]),
    ("empty billing_tags not copied", {}, "billing_tags", "absent"),
    ("empty inherited_directories not copied", {}, "inherited_directories", "absent"),
    ("traits copied", {}, "traits", {"ssd": True}),
    ("generate_passwords copied", {}, "generate_passwords", True),
    ("nic_driver copied", {}, "nic_driver", "virtio"),
    ("disk_driver copied", {}, "disk_driver", "virtio"),
    ("cpu_type copied", {}, "cpu_type", "host"),
    ("image_size copied", {}, "image_size", 10240),
    ("description not inherited", {}, "description", "absent"),
    ("homepage not inherited", {}, "homepage", "absent"),
    ("tags not inherited", {}, "tags", "absent"),
    ("files not inherited", {}, "files", "absent"),
    ("origin's uuid not inherited", {}, "uuid", "absent"),
    ("origin's published_at not inherited", {}, "published_at", "absent"),
    ("task's type wins", {"type": "lx-dataset"}, "type", "lx-dataset"),
    ("task's os wins", {"os": "linux"}, "os", "linux"),
    ("task's requirements replace, not merge", {"requirements": {"min_ram": 512}}, "requirements", {"min_ram": 512}),
    ("task's empty users kept", {"users": []}, "users", []),
    ("task's name kept", {}, "name", "web"),
]


@pytest.mark.parametrize("extra, field, expected", [c[1:] for c in INHERITANCE], ids=[c[0] for c in INHERITANCE])
def test_inheritance(extra, field, expected):
    manifest = derive_manifest(dict(REQUESTED, **extra), ORIGIN)

    if expected == "absent":
        assert field not in manifest
    else:
        assert manifest[field] == expected


def test_inherited_fields_are_imgadms():
    assert INHERITED_FIELDS == ("type", "os", "requirements", "users", "billing_tags", "traits", "generate_passwords",
                                "inherited_directories", "nic_driver", "disk_driver", "cpu_type", "image_size")


def test_inheritance_copies_not_shares():
    origin = copy.deepcopy(ORIGIN)

    manifest = derive_manifest(dict(REQUESTED), origin)
    manifest["requirements"]["brand"] = "changed"

    assert origin == ORIGIN


def test_no_origin_inherits_nothing():
    manifest = derive_manifest(dict(REQUESTED))

    assert manifest == {"v": 2, "name": "web", "version": "1.0.0", "state": "active", "disabled": False}


# ---- brand rules

MIN_PLATFORM = {"7.0": "20240104T000814Z"}

BRAND_RULES = [
    # (id, brand, bootrom, requested requirements or None, inherit from ORIGIN, expected requirements or "absent")
    ("joyent sets min_platform", "joyent", None, None, False, {"min_platform": MIN_PLATFORM}),
    ("joyent-minimal sets min_platform", "joyent-minimal", None, None, False, {"min_platform": MIN_PLATFORM}),
    ("joyent keeps given min_platform", "joyent", None, {"min_platform": {"6.5": "20130101T000000Z"}}, False,
     {"min_platform": {"6.5": "20130101T000000Z"}}),
    ("joyent keeps given empty min_platform", "joyent", None, {"min_platform": {}}, False, {"min_platform": {}}),
    ("joyent replaces null min_platform", "joyent", None, {"min_platform": None}, False,
     {"min_platform": MIN_PLATFORM}),
    ("joyent adds to given requirements", "joyent", None, {"min_ram": 256}, False,
     {"min_ram": 256, "min_platform": MIN_PLATFORM}),
    ("joyent replaces inherited min_platform", "joyent", None, None, True,
     {"networks": ORIGIN["requirements"]["networks"], "min_platform": MIN_PLATFORM}),
    ("joyent sets no brand", "joyent", None, None, False, {"min_platform": MIN_PLATFORM}),
    ("lx sets brand", "lx", None, None, False, {"brand": "lx"}),
    ("kvm sets brand", "kvm", None, None, False, {"brand": "kvm"}),
    ("bhyve sets brand", "bhyve", None, None, False, {"brand": "bhyve"}),
    ("lx sets no min_platform", "lx", None, {"min_ram": 1}, False, {"min_ram": 1, "brand": "lx"}),
    ("lx keeps given brand", "lx", None, {"brand": "lx-custom"}, False, {"brand": "lx-custom"}),
    ("lx keeps given empty brand key", "lx", None, {"brand": ""}, False, {"brand": ""}),
    ("lx adds brand to inherited requirements", "lx", None, None, True,
     dict(ORIGIN["requirements"], brand="lx")),
    ("bhyve copies bootrom", "bhyve", "uefi", None, False, {"brand": "bhyve", "bootrom": "uefi"}),
    ("bhyve keeps given bootrom", "bhyve", "uefi", {"bootrom": "bios"}, False, {"bootrom": "bios", "brand": "bhyve"}),
    ("bhyve without bootrom", "bhyve", None, None, False, {"brand": "bhyve"}),
    ("kvm ignores bootrom", "kvm", "uefi", None, False, {"brand": "kvm"}),
    ("other brand changes nothing", "builder", None, None, False, "absent"),
]


@pytest.mark.parametrize("brand, bootrom, requirements, inherit, expected", [c[1:] for c in BRAND_RULES],
                         ids=[c[0] for c in BRAND_RULES])
def test_brand_rules(brand, bootrom, requirements, inherit, expected):
    requested = dict(REQUESTED)
    if requirements is not None:
        requested["requirements"] = requirements

    manifest = derive_manifest(requested, ORIGIN if inherit else None, vm=vm(brand, bootrom), platform=HOST)

    if expected == "absent":
        assert "requirements" not in manifest
    else:
        assert manifest["requirements"] == expected


def test_brand_rules_without_platform_set_no_min_platform():
    manifest = derive_manifest(dict(REQUESTED), vm=vm("joyent"), platform=None)

    assert "requirements" not in manifest


def test_brand_rules_leave_invalid_requirements_for_validation():
    manifest = derive_manifest(dict(REQUESTED, requirements="bhyve"), vm=vm("bhyve"), platform=HOST)

    assert manifest["requirements"] == "bhyve"


NEEDS_PLATFORM = [
    ("joyent", "joyent", None, True),
    ("joyent-minimal", "joyent-minimal", None, True),
    ("joyent with min_platform", "joyent", {"min_platform": {"7.0": "20240104T000814Z"}}, False),
    ("lx", "lx", None, False),
    ("no brand", None, None, False),
]


@pytest.mark.parametrize("brand, requirements, expected", [c[1:] for c in NEEDS_PLATFORM],
                         ids=[c[0] for c in NEEDS_PLATFORM])
def test_needs_platform(brand, requirements, expected):
    requested = dict(REQUESTED)
    if requirements is not None:
        requested["requirements"] = requirements

    assert needs_platform(requested, brand) is expected


# ---- the rest of the derived manifest

DERIVED = [
    # (id, requested extra, origin, field, expected or "absent")
    ("v defaults to 2", {}, None, "v", 2),
    ("state defaults to active", {}, None, "state", "active"),
    ("disabled defaults to false", {}, None, "disabled", False),
    ("state given", {"state": "disabled"}, None, "state", "disabled"),
    ("disabled given", {"disabled": True}, None, "disabled", True),
    ("no uuid generated here", {}, None, "uuid", "absent"),
    ("no published_at generated here", {}, None, "published_at", "absent"),
    ("uuid given", {"uuid": VM_UUID}, None, "uuid", VM_UUID),
    ("incremental sets origin", {}, ORIGIN_UUID, "origin", ORIGIN_UUID),
    ("full has no origin", {}, None, "origin", "absent"),
]


@pytest.mark.parametrize("extra, origin, field, expected", [c[1:] for c in DERIVED], ids=[c[0] for c in DERIVED])
def test_derived_fields(extra, origin, field, expected):
    manifest = derive_manifest(dict(REQUESTED, **extra), origin=origin)

    if expected == "absent":
        assert field not in manifest
    else:
        assert manifest[field] == expected


def test_finish_manifest_orders_v_and_uuid_first():
    manifest = finish_manifest({"name": "web", "v": 2, "version": "1"}, VM_UUID, "2024-01-01T00:00:00.000Z")

    assert list(manifest)[:2] == ["v", "uuid"]


def test_finish_manifest_keeps_given_uuid():
    manifest = finish_manifest({"v": 2, "uuid": ORIGIN_UUID}, VM_UUID, "2024-01-01T00:00:00.000Z")

    assert manifest["uuid"] == ORIGIN_UUID


def test_finish_manifest_keeps_given_published_at():
    manifest = finish_manifest({"v": 2, "published_at": "2020-02-02T02:02:02Z"}, VM_UUID, "2024-01-01T00:00:00.000Z")

    assert manifest["published_at"] == "2020-02-02T02:02:02Z"


def test_format_published_at():
    moment = datetime.datetime(2024, 5, 1, 10, 0, 3, 45678, tzinfo=datetime.timezone.utc)

    assert format_published_at(moment) == "2024-05-01T10:00:03.045Z"


# ---- the requested manifest

REQUEST_ERRORS = [
    ("not a dict", ["web"], "must be a dictionary"),
    ("no name", {"version": "1"}, "manifest.name is missing"),
    ("no version", {"name": "web"}, "manifest.version is missing"),
    ("number version", {"name": "web", "version": 1.0}, "quote it in YAML"),
    ("files set", {"name": "web", "version": "1", "files": []}, "manifest.files is set"),
    ("origin set", {"name": "web", "version": "1", "origin": ORIGIN_UUID}, "set the incremental option"),
]


@pytest.mark.parametrize("requested, fragment", [c[1:] for c in REQUEST_ERRORS], ids=[c[0] for c in REQUEST_ERRORS])
def test_check_requested_manifest_rejects(requested, fragment):
    with pytest.raises(ManifestError, match=fragment):
        check_requested_manifest(requested)


def test_check_requested_manifest_accepts_other_fields():
    check_requested_manifest({"name": "web", "version": "1", "tags": {"a": "b"}, "uuid": VM_UUID})


# ---- sources

def vm_info(**changes):
    info = {"uuid": VM_UUID, "brand": "joyent", "state": "stopped", "zfs_filesystem": "zones/" + VM_UUID,
            "image_uuid": ORIGIN_UUID}
    info.update(changes)
    return info


DISK = {"zfs_filesystem": "zones/%s-disk0" % VM_UUID, "image_uuid": ORIGIN_UUID}

VM_SOURCES = [
    ("joyent", vm_info(), ("zones/" + VM_UUID, ORIGIN_UUID, "joyent", None)),
    ("lx", vm_info(brand="lx"), ("zones/" + VM_UUID, ORIGIN_UUID, "lx", None)),
    ("not cloned from an image", vm_info(image_uuid=None), ("zones/" + VM_UUID, None, "joyent", None)),
    ("kvm uses disks[0]", vm_info(brand="kvm", disks=[DISK, {"zfs_filesystem": "zones/x-disk1"}]),
     (DISK["zfs_filesystem"], ORIGIN_UUID, "kvm", None)),
    ("bhyve uses disks[0] and bootrom", vm_info(brand="bhyve", bootrom="uefi", disks=[DISK]),
     (DISK["zfs_filesystem"], ORIGIN_UUID, "bhyve", "uefi")),
    ("bootrom ignored for joyent", vm_info(bootrom="uefi"), ("zones/" + VM_UUID, ORIGIN_UUID, "joyent", None)),
]


@pytest.mark.parametrize("info, expected", [c[1:] for c in VM_SOURCES], ids=[c[0] for c in VM_SOURCES])
def test_vm_source(info, expected):
    source = vm_source(VM_UUID, info)

    assert (source.dataset, source.image_uuid, source.brand, source.bootrom) == expected


VM_ERRORS = [
    ("running", vm_info(state="running"), "is running; stop it"),
    ("no state", vm_info(state=None), "in an unknown state"),
    ("kvm without disks", vm_info(brand="kvm"), "has no disks"),
    ("bhyve with empty disks", vm_info(brand="bhyve", disks=[]), "has no disks"),
    ("no zfs_filesystem", vm_info(zfs_filesystem=None), "has no zfs_filesystem"),
    ("not an object", ["vm"], "printed no VM object"),
]


@pytest.mark.parametrize("info, fragment", [c[1:] for c in VM_ERRORS], ids=[c[0] for c in VM_ERRORS])
def test_vm_source_rejects(info, fragment):
    with pytest.raises(ImageError, match=fragment):
        vm_source(VM_UUID, info)


ORIGIN_PROPERTIES = [
    ("installed image", "zones/%s@final" % ORIGIN_UUID, ("zones", ORIGIN_UUID)),
    ("other pool", "data/%s@final" % ORIGIN_UUID, ("data", ORIGIN_UUID)),
    ("not a clone", "-", None),
    ("other snapshot", "zones/%s@daily" % ORIGIN_UUID, None),
    ("nested dataset", "zones/images/%s@final" % ORIGIN_UUID, None),
    ("not a UUID", "zones/base@final", None),
    ("upper-case UUID", "zones/%s@final" % ORIGIN_UUID.upper(), None),
    ("empty", "", None),
]


@pytest.mark.parametrize("value, expected", [c[1:] for c in ORIGIN_PROPERTIES], ids=[c[0] for c in ORIGIN_PROPERTIES])
def test_origin_from_property(value, expected):
    assert origin_from_property(value) == expected


# ---- the input fingerprint

def test_combined_fingerprint_ignores_racy_flag():
    inputs = inputs_fingerprint({"name": "web"}, "gzip", False, None, "zones/web", None)
    content = {"kind": "tree", "entries": 3, "sha256": "ab", "guid": "1", "racy": False}

    assert combined_fingerprint(inputs, content) == combined_fingerprint(inputs, dict(content, racy=True))


FINGERPRINT_CHANGES = [
    ("compression", dict(compression="xz")),
    ("incremental", dict(incremental=True)),
    ("origin", dict(origin=ORIGIN_UUID)),
    ("dataset", dict(dataset="zones/other")),
    ("vm", dict(vm=VM_UUID)),
    ("manifest field", dict(template={"name": "web", "description": "new"})),
]


@pytest.mark.parametrize("change", [c[1] for c in FINGERPRINT_CHANGES], ids=[c[0] for c in FINGERPRINT_CHANGES])
def test_combined_fingerprint_changes_with_each_input(change):
    base = dict(template={"name": "web"}, compression="gzip", incremental=False, origin=None, dataset="zones/web",
                vm=None)
    content = {"kind": "tree", "entries": 3, "sha256": "ab", "guid": "1"}

    before = combined_fingerprint(inputs_fingerprint(**base), content)
    after = combined_fingerprint(inputs_fingerprint(**dict(base, **change)), content)

    assert before != after
