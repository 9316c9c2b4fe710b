# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Validation rules of the manifest engine, one table row per rule and edge case.

Each row is (case id, manifest, mode, expected errors as (field, code) pairs).
The expected lists follow imgmanifest 3.1.0, including its order, except
where a row's id ends in "-differs", which marks a documented difference.
"""

from __future__ import annotations

import copy

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ManifestError
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    COMPRESSIONS,
    UUID_RE,
    check_manifest,
    describe,
    is_uuid,
    parse_manifest,
    validate_manifest,
)

UUID = "9d91e334-3bcf-11e8-bb0b-e7b49eb01e38"
OWNER = "9dce1460-0c4c-4417-ab8b-25ca478c5a78"
OTHER_UUID = "ed481150-ddcb-11e0-85f7-4704fd6a9c7f"
SHA1 = "5efaf95b7f226eb09c7d5e6c3734f8aa654b811d"
STAMP = "20130308T102805Z"
MAX_TAGS_LENGTH = 100 * 1024

MINIMAL = {
    "v": 2,
    "uuid": UUID,
    "name": "pkgbuild",
    "version": "18.1.0",
    "type": "zone-dataset",
    "os": "smartos",
}

FILE = {"sha1": SHA1, "size": 465411979, "compression": "gzip"}

# Every field the dc, public and private modes require, for a zone image.
FULL = dict(
    MINIMAL,
    owner=OWNER,
    disabled=False,
    activated=True,
    published_at="2018-04-09T16:43:54.522Z",
    public=True,
    state="active",
    files=[FILE],
)

FULL_ZVOL = dict(
    FULL,
    type="zvol",
    os="linux",
    nic_driver="virtio",
    disk_driver="virtio",
    cpu_type="host",
    image_size=10240,
)


def with_fields(base, **changes):
    manifest = copy.deepcopy(base)
    manifest.update(copy.deepcopy(changes))
    return manifest


def without_fields(base, *fields):
    manifest = copy.deepcopy(base)
    for field in fields:
        del manifest[field]
    return manifest


def with_requirements(**requirements):
    return with_fields(MINIMAL, requirements=requirements)


def with_file(**changes):
    return with_fields(MINIMAL, files=[dict(FILE, **changes)])


def tags_of_json_length(length):
    # JSON.stringify({"k": "x" * n}) is n + 8 characters long.
    return {"k": "x" * (length - 8)}


INVALID = "Invalid"
MISSING = "MissingParameter"

CASES = [
    # -- the base manifests
    ("minimal-valid", MINIMAL, "minimal", []),
    ("full-valid-in-dc", FULL, "dc", []),
    ("full-valid-in-public", FULL, "public", []),
    ("full-private-valid-in-private", with_fields(FULL, public=False), "private", []),
    ("full-zvol-valid-in-dc", FULL_ZVOL, "dc", []),
    ("empty-minimal", {}, "minimal", [
        ("v", MISSING), ("uuid", MISSING), ("name", MISSING), ("version", MISSING),
        ("type", MISSING), ("os", MISSING),
    ]),
    ("minimal-in-dc", MINIMAL, "dc", [
        ("owner", MISSING), ("disabled", MISSING), ("activated", MISSING), ("public", MISSING),
        ("state", MISSING),
    ]),
    ("minimal-zvol-in-dc", with_fields(MINIMAL, type="zvol"), "dc", [
        ("owner", MISSING), ("disabled", MISSING), ("activated", MISSING), ("public", MISSING),
        ("state", MISSING), ("nic_driver", MISSING), ("disk_driver", MISSING), ("cpu_type", MISSING),
        ("image_size", MISSING),
    ]),
    ("minimal-in-public", MINIMAL, "public", [
        ("owner", MISSING), ("disabled", MISSING), ("activated", MISSING), ("public", MISSING),
        ("state", MISSING),
    ]),

    # -- v: Number(v) must be a number of 0 or more
    ("v-missing", without_fields(MINIMAL, "v"), "minimal", [("v", MISSING)]),
    ("v-string-2", with_fields(MINIMAL, v="2"), "minimal", []),
    ("v-fraction", with_fields(MINIMAL, v=2.5), "minimal", []),
    ("v-zero", with_fields(MINIMAL, v=0), "minimal", []),
    ("v-null-is-zero", with_fields(MINIMAL, v=None), "minimal", []),
    ("v-hex-string", with_fields(MINIMAL, v="0x10"), "minimal", []),
    ("v-negative", with_fields(MINIMAL, v=-1), "minimal", [("v", INVALID)]),
    ("v-word", with_fields(MINIMAL, v="two"), "minimal", [("v", INVALID)]),
    ("v-object", with_fields(MINIMAL, v={}), "minimal", [("v", INVALID)]),

    # -- uuid, owner, origin: lower-case UUID
    ("uuid-missing", without_fields(MINIMAL, "uuid"), "minimal", [("uuid", MISSING)]),
    ("uuid-upper-case", with_fields(MINIMAL, uuid=UUID.upper()), "minimal", [("uuid", INVALID)]),
    ("uuid-trailing-newline", with_fields(MINIMAL, uuid=UUID + "\n"), "minimal", [("uuid", INVALID)]),
    ("uuid-no-dashes", with_fields(MINIMAL, uuid=UUID.replace("-", "")), "minimal", [("uuid", INVALID)]),
    ("uuid-array-of-one-converts", with_fields(MINIMAL, uuid=[UUID]), "minimal", []),
    ("owner-valid", with_fields(MINIMAL, owner=OWNER), "minimal", []),
    ("owner-invalid", with_fields(MINIMAL, owner="admin"), "minimal", [("owner", INVALID)]),
    ("owner-missing-in-dc", without_fields(FULL, "owner"), "dc", [("owner", MISSING)]),
    ("origin-valid", with_fields(MINIMAL, origin=OTHER_UUID), "minimal", []),
    ("origin-invalid", with_fields(MINIMAL, origin="base-64"), "minimal", [("origin", INVALID)]),
    ("origin-null", with_fields(MINIMAL, origin=None), "minimal", [("origin", INVALID)]),

    # -- urn: any string
    ("urn-string", with_fields(MINIMAL, urn="sdc:sdc:pkgbuild:18.1.0"), "minimal", []),
    ("urn-number", with_fields(MINIMAL, urn=5), "minimal", [("urn", INVALID)]),

    # -- name: at most 1024 characters of [A-Za-z0-9._/ -]
    ("name-missing", without_fields(MINIMAL, "name"), "minimal", [("name", MISSING)]),
    ("name-max-length", with_fields(MINIMAL, name="n" * 1024), "minimal", []),
    ("name-over-max-length", with_fields(MINIMAL, name="n" * 1025), "minimal", [("name", INVALID)]),
    ("name-space-slash-dash", with_fields(MINIMAL, name="sdc/base 64-lts_x"), "minimal", []),
    ("name-plus", with_fields(MINIMAL, name="base+64"), "minimal", [("name", INVALID)]),
    ("name-non-ascii", with_fields(MINIMAL, name="bäse"), "minimal", [("name", INVALID)]),
    ("name-trailing-newline", with_fields(MINIMAL, name="base\n"), "minimal", [("name", INVALID)]),
    ("name-empty", with_fields(MINIMAL, name=""), "minimal", [("name", INVALID)]),
    ("name-astral-counts-twice", with_fields(MINIMAL, name="\U0001f600" * 513), "minimal", [("name", INVALID)]),
    ("name-number-converts", with_fields(MINIMAL, name=123), "minimal", []),
    ("name-null-differs", with_fields(MINIMAL, name=None), "minimal", [("name", INVALID)]),

    # -- version: at most 512 characters of [A-Za-z0-9._/+-]
    ("version-missing", without_fields(MINIMAL, "version"), "minimal", [("version", MISSING)]),
    ("version-max-length", with_fields(MINIMAL, version="1" * 512), "minimal", []),
    ("version-over-max-length", with_fields(MINIMAL, version="1" * 513), "minimal", [("version", INVALID)]),
    ("version-plus", with_fields(MINIMAL, version="1.0.0+build.5"), "minimal", []),
    ("version-space", with_fields(MINIMAL, version="1.0 beta"), "minimal", [("version", INVALID)]),
    ("version-colon", with_fields(MINIMAL, version="1:0"), "minimal", [("version", INVALID)]),

    # -- description: at most 10240 characters
    ("description-max-length", with_fields(MINIMAL, description="d" * 10240), "minimal", []),
    ("description-over-max-length", with_fields(MINIMAL, description="d" * 10241), "minimal", [("description", INVALID)]),

    # -- homepage, eula: http or https, at most 1024 characters
    ("homepage-https", with_fields(MINIMAL, homepage="https://docs.example.com/pkgbuild"), "minimal", []),
    ("homepage-upper-case-scheme", with_fields(MINIMAL, homepage="HTTP://example.com/"), "minimal", []),
    ("homepage-leading-whitespace", with_fields(MINIMAL, homepage=" \thttp://example.com/"), "minimal", []),
    ("homepage-ftp", with_fields(MINIMAL, homepage="ftp://example.com/"), "minimal", [("homepage", INVALID)]),
    ("homepage-no-scheme", with_fields(MINIMAL, homepage="example.com"), "minimal", [("homepage", INVALID)]),
    ("homepage-max-length", with_fields(MINIMAL, homepage="http://" + "a" * 1017), "minimal", []),
    ("homepage-over-max-length", with_fields(MINIMAL, homepage="http://" + "a" * 1018), "minimal", [("homepage", INVALID)]),
    ("homepage-number-differs", with_fields(MINIMAL, homepage=5), "minimal", [("homepage", INVALID)]),
    ("eula-https", with_fields(MINIMAL, eula="https://example.com/eula"), "minimal", []),
    ("eula-mailto", with_fields(MINIMAL, eula="mailto:legal@example.com"), "minimal", [("eula", INVALID)]),

    # -- disabled, activated, icon, generate_passwords: true, false, "true" or "false"
    ("disabled-string-true", with_fields(MINIMAL, disabled="true"), "minimal", []),
    ("disabled-yes-differs", with_fields(MINIMAL, disabled="yes"), "minimal", [("disabled", INVALID)]),
    ("disabled-missing-in-dc", without_fields(FULL, "disabled"), "dc", [("disabled", MISSING)]),
    ("activated-string-false", with_fields(MINIMAL, activated="false"), "minimal", []),
    ("activated-one-differs", with_fields(MINIMAL, activated=1), "minimal", [("activated", INVALID)]),
    ("icon-true", with_fields(MINIMAL, icon=True), "minimal", []),
    ("icon-null-differs", with_fields(MINIMAL, icon=None), "minimal", [("icon", INVALID)]),
    ("generate-passwords-false", with_fields(MINIMAL, generate_passwords=False), "minimal", []),
    ("generate-passwords-word-differs", with_fields(MINIMAL, generate_passwords="no"), "minimal", [("generate_passwords", INVALID)]),

    # -- published_at: YYYY-MM-DDTHH:MM:SS(.SSS)Z, required only when activated
    ("published-at-seconds", with_fields(MINIMAL, published_at="2018-04-09T16:43:54Z"), "minimal", []),
    ("published-at-milliseconds", with_fields(MINIMAL, published_at="2018-04-09T16:43:54.522Z"), "minimal", []),
    ("published-at-two-fraction-digits", with_fields(MINIMAL, published_at="2018-04-09T16:43:54.52Z"), "minimal", [("published_at", INVALID)]),
    ("published-at-four-fraction-digits", with_fields(MINIMAL, published_at="2018-04-09T16:43:54.5221Z"), "minimal", [("published_at", INVALID)]),
    ("published-at-no-seconds", with_fields(MINIMAL, published_at="2018-04-09T16:43Z"), "minimal", [("published_at", INVALID)]),
    ("published-at-no-zone", with_fields(MINIMAL, published_at="2018-04-09T16:43:54"), "minimal", [("published_at", INVALID)]),
    ("published-at-offset", with_fields(MINIMAL, published_at="2018-04-09T16:43:54+00:00"), "minimal", [("published_at", INVALID)]),
    ("published-at-space", with_fields(MINIMAL, published_at="2018-04-09 16:43:54Z"), "minimal", [("published_at", INVALID)]),
    ("published-at-trailing-newline", with_fields(MINIMAL, published_at="2018-04-09T16:43:54Z\n"), "minimal", [("published_at", INVALID)]),
    ("published-at-arabic-digits", with_fields(MINIMAL, published_at="\u0662\u0660\u0661\u0668-04-09T16:43:54Z"), "minimal", [("published_at", INVALID)]),
    ("published-at-empty-is-unset", with_fields(MINIMAL, published_at=""), "minimal", []),
    ("published-at-missing-when-activated", without_fields(FULL, "published_at"), "dc", [("published_at", MISSING)]),
    ("published-at-missing-when-activated-string", without_fields(with_fields(FULL, activated="true"), "published_at"), "dc", [("published_at", MISSING)]),
    ("published-at-missing-when-not-activated", without_fields(with_fields(FULL, activated=False), "published_at"), "dc", []),
    ("published-at-missing-minimal-activated", with_fields(MINIMAL, activated=True), "minimal", []),

    # -- state
    ("state-active", with_fields(MINIMAL, state="active"), "minimal", []),
    ("state-unactivated", with_fields(MINIMAL, state="unactivated"), "minimal", []),
    ("state-disabled", with_fields(MINIMAL, state="disabled"), "minimal", []),
    ("state-failed", with_fields(MINIMAL, state="failed"), "minimal", []),
    ("state-creating", with_fields(MINIMAL, state="creating"), "minimal", []),
    ("state-deleted", with_fields(MINIMAL, state="deleted"), "minimal", [("state", INVALID)]),
    ("state-upper-case", with_fields(MINIMAL, state="ACTIVE"), "minimal", [("state", INVALID)]),
    ("state-missing-in-dc", without_fields(FULL, "state"), "dc", [("state", MISSING)]),

    # -- public, and the public and private modes
    ("public-string-false", with_fields(MINIMAL, public="false"), "minimal", []),
    ("public-yes", with_fields(MINIMAL, public="yes"), "minimal", [("public", INVALID)]),
    ("public-number", with_fields(MINIMAL, public=1), "minimal", [("public", INVALID)]),
    ("public-false-in-dc", with_fields(FULL, public=False), "dc", []),
    ("public-false-in-public", with_fields(FULL, public=False), "public", [("public", INVALID)]),
    ("public-string-false-in-public", with_fields(FULL, public="false"), "public", [("public", INVALID)]),
    ("public-true-in-private", FULL, "private", [("public", INVALID)]),
    ("public-string-true-in-private", with_fields(FULL, public="true"), "private", [("public", INVALID)]),
    ("public-missing-in-private", without_fields(FULL, "public"), "private", [("public", MISSING)]),

    # -- type and os
    ("type-zvol", with_fields(MINIMAL, type="zvol"), "minimal", []),
    ("type-lx-dataset", with_fields(MINIMAL, type="lx-dataset"), "minimal", []),
    ("type-docker", with_fields(MINIMAL, type="docker"), "minimal", []),
    ("type-other", with_fields(MINIMAL, type="other"), "minimal", []),
    ("type-lxd-not-in-3.1.0", with_fields(MINIMAL, type="lxd"), "minimal", [("type", INVALID)]),
    ("type-upper-case", with_fields(MINIMAL, type="ZVOL"), "minimal", [("type", INVALID)]),
    ("type-null-string-creating", with_fields(MINIMAL, type="null", state="creating"), "minimal", []),
    ("type-null-string-failed", with_fields(MINIMAL, type="null", state="failed"), "minimal", []),
    ("type-null-string-active", with_fields(MINIMAL, type="null", state="active"), "minimal", [("type", INVALID)]),
    ("type-null-string-no-state", with_fields(MINIMAL, type="null"), "minimal", [("type", INVALID)]),
    ("type-json-null", with_fields(MINIMAL, type=None, state="creating"), "minimal", [("type", INVALID)]),
    ("type-prototype-name-differs", with_fields(MINIMAL, type="constructor"), "minimal", [("type", INVALID)]),
    ("os-linux", with_fields(MINIMAL, os="linux"), "minimal", []),
    ("os-windows", with_fields(MINIMAL, os="windows"), "minimal", []),
    ("os-bsd", with_fields(MINIMAL, os="bsd"), "minimal", []),
    ("os-illumos", with_fields(MINIMAL, os="illumos"), "minimal", []),
    ("os-other", with_fields(MINIMAL, os="other"), "minimal", []),
    ("os-macos", with_fields(MINIMAL, os="macos"), "minimal", [("os", INVALID)]),
    ("os-null-string-creating", with_fields(MINIMAL, os="null", state="creating"), "minimal", []),
    ("os-null-string-active", with_fields(MINIMAL, os="null", state="active"), "minimal", [("os", INVALID)]),
    ("os-prototype-name-differs", with_fields(MINIMAL, os="toString"), "minimal", [("os", INVALID)]),

    # -- error: any object
    ("error-object", with_fields(MINIMAL, error={"message": "zfs send failed"}), "minimal", []),
    ("error-null", with_fields(MINIMAL, error=None), "minimal", []),
    ("error-string", with_fields(MINIMAL, error="failed"), "minimal", [("error", INVALID)]),

    # -- files: at most one, with truthy sha1 and size and a known compression
    ("files-valid", with_fields(MINIMAL, files=[FILE]), "minimal", []),
    ("files-empty-array", with_fields(MINIMAL, files=[]), "minimal", []),
    ("files-dataset-guid-allowed", with_file(dataset_guid="8470734214926536430"), "minimal", []),
    ("files-two", with_fields(MINIMAL, files=[FILE, FILE]), "minimal", [("files", INVALID)]),
    ("files-object", with_fields(MINIMAL, files=FILE), "minimal", [("files", INVALID)]),
    ("files-sha1-missing", with_fields(MINIMAL, files=[without_fields(FILE, "sha1")]), "minimal", [("files", INVALID)]),
    ("files-sha1-format-unchecked", with_file(sha1="not-hex"), "minimal", []),
    ("files-size-zero", with_file(size=0), "minimal", [("files", INVALID)]),
    ("files-size-negative-passes", with_file(size=-1), "minimal", []),
    ("files-compression-missing", with_fields(MINIMAL, files=[without_fields(FILE, "compression")]), "minimal", [("files", INVALID)]),
    ("files-compression-zstd", with_file(compression="zstd"), "minimal", [("files", INVALID)]),
    ("files-empty-entry", with_fields(MINIMAL, files=[{}]), "minimal", [("files", INVALID), ("files", INVALID), ("files", INVALID)]),
    ("files-null-entry-differs", with_fields(MINIMAL, files=[None]), "minimal", [("files", INVALID)]),
    ("files-missing-when-activated", without_fields(FULL, "files"), "dc", [("files", MISSING)]),
    ("files-missing-when-not-activated", without_fields(with_fields(FULL, activated=False), "files"), "dc", []),
    ("files-missing-minimal-activated", with_fields(MINIMAL, activated=True), "minimal", []),
] + [
    ("files-compression-%s" % compression, with_file(compression=compression), "minimal", [])
    for compression in COMPRESSIONS
] + [
    # -- acl: array of UUIDs, first bad entry reported
    ("acl-valid", with_fields(MINIMAL, acl=[OWNER, OTHER_UUID]), "minimal", []),
    ("acl-empty", with_fields(MINIMAL, acl=[]), "minimal", []),
    ("acl-two-bad-one-error", with_fields(MINIMAL, acl=["admin", "root"]), "minimal", [("acl", INVALID)]),
    ("acl-string", with_fields(MINIMAL, acl=OWNER), "minimal", [("acl", INVALID)]),

    # -- requirements
    ("requirements-empty", with_requirements(), "minimal", []),
    ("requirements-networks-valid", with_requirements(networks=[{"name": "net0", "description": "public"}]), "minimal", []),
    ("requirements-networks-extra-key",
     with_requirements(networks=[{"name": "net0", "description": "public", "vlan": 5}]), "minimal",
     [("requirements.networks", INVALID)]),
    ("requirements-networks-no-description", with_requirements(networks=[{"name": "net0"}]), "minimal", [("requirements.networks", INVALID)]),
    ("requirements-networks-two-bad", with_requirements(networks=["net0", {}]), "minimal",
     [("requirements.networks", INVALID), ("requirements.networks", INVALID)]),
    ("requirements-networks-object", with_requirements(networks={"name": "net0", "description": "public"}), "minimal", [("requirements.networks", INVALID)]),
    ("requirements-networks-null-entry-differs", with_requirements(networks=[None]), "minimal", [("requirements.networks", INVALID)]),
    ("requirements-brand-string", with_requirements(brand="lx"), "minimal", []),
    ("requirements-brand-number", with_requirements(brand=5), "minimal", [("requirements.brand", INVALID)]),
    ("requirements-ssh-key-true", with_requirements(ssh_key=True), "minimal", []),
    ("requirements-ssh-key-string", with_requirements(ssh_key="true"), "minimal", [("requirements.ssh_key", INVALID)]),
    ("requirements-ram-valid", with_requirements(min_ram=512, max_ram=2048), "minimal", []),
    ("requirements-ram-equal", with_requirements(min_ram=512, max_ram=512), "minimal", []),
    ("requirements-ram-inverted", with_requirements(min_ram=2048, max_ram=512), "minimal", [("requirements.max_ram", INVALID)]),
    ("requirements-min-ram-string", with_requirements(min_ram="512"), "minimal", [("requirements.min_ram", INVALID)]),
    ("requirements-max-ram-fraction", with_requirements(max_ram=512.5), "minimal", [("requirements.max_ram", INVALID)]),
    ("requirements-min-ram-negative-passes", with_requirements(min_ram=-512), "minimal", []),
    ("requirements-min-platform-valid", with_requirements(min_platform={"7.0": STAMP}), "minimal", []),
    ("requirements-max-platform-valid", with_requirements(max_platform={"6.5": STAMP, "7.0": "20121210T203034Z"}), "minimal", []),
    ("requirements-min-platform-year-2011", with_requirements(min_platform={"7.0": "20111231T235959Z"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-year-2012", with_requirements(min_platform={"7.0": "20120101T000000Z"}), "minimal", []),
    ("requirements-min-platform-month-13", with_requirements(min_platform={"7.0": "20131308T102805Z"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-month-00", with_requirements(min_platform={"7.0": "20130008T102805Z"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-day-32", with_requirements(min_platform={"7.0": "20130332T102805Z"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-hour-24", with_requirements(min_platform={"7.0": "20130308T242805Z"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-minute-60", with_requirements(min_platform={"7.0": "20130308T106005Z"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-second-60", with_requirements(min_platform={"7.0": "20130308T102860Z"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-no-z", with_requirements(min_platform={"7.0": "20130308T102805"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-iso-date", with_requirements(min_platform={"7.0": "2013-03-08"}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-letters-pass", with_requirements(min_platform={"7.0": "XXXXXXXXTXXXXXXZ"}), "minimal", []),
    ("requirements-min-platform-one-error-per-entry",
     with_requirements(min_platform={"6.5": "bad", "7.0": "worse"}), "minimal",
     [("requirements.min_platform", INVALID), ("requirements.min_platform", INVALID)]),
    ("requirements-min-platform-empty", with_requirements(min_platform={}), "minimal", [("requirements.min_platform", INVALID)]),
    ("requirements-max-platform-string", with_requirements(max_platform=STAMP), "minimal", [("requirements.max_platform", INVALID)]),
    ("requirements-max-platform-null-value-differs", with_requirements(max_platform={"7.0": None}), "minimal", [("requirements.max_platform", INVALID)]),
    ("requirements-bootrom-bhyve-bios", with_requirements(brand="bhyve", bootrom="bios"), "minimal", []),
    ("requirements-bootrom-bhyve-uefi", with_requirements(brand="bhyve", bootrom="uefi"), "minimal", []),
    ("requirements-bootrom-no-brand", with_requirements(bootrom="uefi"), "minimal", [("requirements.bootrom", MISSING)]),
    ("requirements-bootrom-kvm", with_requirements(brand="kvm", bootrom="bios"), "minimal", [("requirements.bootrom", INVALID)]),
    ("requirements-bootrom-unknown", with_requirements(brand="bhyve", bootrom="coreboot"), "minimal", [("requirements.bootrom", INVALID)]),
    ("requirements-unknown-key", with_requirements(cpu_cap=100), "minimal", [("cpu_cap", INVALID)]),
    ("requirements-unknown-keys-integer-first", with_requirements(b=1, **{"3": 2, "1": 3}), "minimal", [("1", INVALID), ("3", INVALID), ("b", INVALID)]),
    ("requirements-string-reports-indices", with_fields(MINIMAL, requirements="ab"), "minimal", [("0", INVALID), ("1", INVALID)]),
    ("requirements-number-passes", with_fields(MINIMAL, requirements=5), "minimal", []),
    ("requirements-null-differs", with_fields(MINIMAL, requirements=None), "minimal", [("requirements", INVALID)]),
    ("requirements-error-order", with_requirements(bootrom="bios", ssh_key=1, networks=5, brand=7, zzz=0), "minimal", [
        ("requirements.networks", INVALID), ("requirements.brand", INVALID), ("requirements.ssh_key", INVALID),
        ("requirements.bootrom", INVALID), ("zzz", INVALID),
    ]),

    # -- users: objects with exactly one key, name
    ("users-valid", with_fields(MINIMAL, users=[{"name": "root"}, {"name": "admin"}]), "minimal", []),
    ("users-extra-key", with_fields(MINIMAL, users=[{"name": "root", "uid": 0}]), "minimal", [("users", INVALID)]),
    ("users-string-entry", with_fields(MINIMAL, users=["root"]), "minimal", [("users", INVALID)]),
    ("users-string", with_fields(MINIMAL, users="root"), "minimal", [("users", INVALID)]),
    ("users-null-entry-differs", with_fields(MINIMAL, users=[None]), "minimal", [("users", INVALID)]),

    # -- billing_tags: strings of at most 128 characters
    ("billing-tags-max-length", with_fields(MINIMAL, billing_tags=["t" * 128]), "minimal", []),
    ("billing-tags-over-max-length", with_fields(MINIMAL, billing_tags=["t" * 129]), "minimal", [("billing_tags", INVALID)]),
    ("billing-tags-number", with_fields(MINIMAL, billing_tags=[1, "ok", 2]), "minimal", [("billing_tags", INVALID), ("billing_tags", INVALID)]),
    ("billing-tags-string", with_fields(MINIMAL, billing_tags="t"), "minimal", [("billing_tags", INVALID)]),

    # -- traits: values are strings, booleans or arrays
    ("traits-valid", with_fields(MINIMAL, traits={"ssd": True, "group": "db", "hosts": ["a"]}), "minimal", []),
    ("traits-number-value", with_fields(MINIMAL, traits={"ssd": 1}), "minimal", [("traits", INVALID)]),
    ("traits-object-value", with_fields(MINIMAL, traits={"ssd": {}}), "minimal", [("traits", INVALID)]),
    ("traits-string", with_fields(MINIMAL, traits="ssd"), "minimal", [("traits", INVALID)]),

    # -- tags: an object of at most 100 KiB as JSON
    ("tags-nested", with_fields(MINIMAL, tags={"role": "db", "docker:config": {"Env": None}}), "minimal", []),
    ("tags-max-size", with_fields(MINIMAL, tags=tags_of_json_length(MAX_TAGS_LENGTH)), "minimal", []),
    ("tags-over-max-size", with_fields(MINIMAL, tags=tags_of_json_length(MAX_TAGS_LENGTH + 1)), "minimal", [("tags", INVALID)]),
    ("tags-escapes-count-twice", with_fields(MINIMAL, tags={"k": "\n" * (MAX_TAGS_LENGTH // 2)}), "minimal", [("tags", INVALID)]),
    ("tags-array", with_fields(MINIMAL, tags=["role"]), "minimal", [("tags", INVALID)]),
    ("tags-string", with_fields(MINIMAL, tags="role"), "minimal", [("tags", INVALID)]),
    ("tags-null-differs", with_fields(MINIMAL, tags=None), "minimal", [("tags", INVALID)]),

    # -- inherited_directories: only for zone-dataset, array of strings
    ("inherited-directories-zone", with_fields(MINIMAL, inherited_directories=["/usr", "/opt"]), "minimal", []),
    ("inherited-directories-zvol", with_fields(MINIMAL, type="zvol", inherited_directories=["/usr"]), "minimal", [("inherited_directories", INVALID)]),
    ("inherited-directories-lx", with_fields(MINIMAL, type="lx-dataset", inherited_directories=[]), "minimal", [("inherited_directories", INVALID)]),
    ("inherited-directories-string", with_fields(MINIMAL, inherited_directories="/usr"), "minimal", [("inherited_directories", INVALID)]),
    ("inherited-directories-number-entry", with_fields(MINIMAL, inherited_directories=["/usr", 1]), "minimal", [("inherited_directories", INVALID)]),
] + [
    # -- nic_driver, disk_driver, cpu_type: zvol only, strings
    row
    for field in ("nic_driver", "disk_driver", "cpu_type")
    for row in (
        ("%s-missing-zvol-dc" % field, without_fields(FULL_ZVOL, field), "dc", [(field, MISSING)]),
        ("%s-missing-zvol-minimal" % field, without_fields(with_fields(FULL_ZVOL, v=2), field), "minimal", []),
        ("%s-on-zone" % field, with_fields(MINIMAL, **{field: "virtio"}), "minimal", [(field, INVALID)]),
        ("%s-empty-on-zone" % field, with_fields(MINIMAL, **{field: ""}), "minimal", []),
        ("%s-number-on-zvol" % field, with_fields(FULL_ZVOL, **{field: 5}), "dc", [(field, INVALID)]),
        ("%s-null-on-zone" % field, with_fields(MINIMAL, **{field: None}), "minimal", [(field, INVALID)]),
    )
] + [
    # -- image_size: zvol only, Number(image_size) an integer
    ("image-size-missing-zvol-dc", without_fields(FULL_ZVOL, "image_size"), "dc", [("image_size", MISSING)]),
    ("image-size-string-number", with_fields(FULL_ZVOL, image_size="10240"), "dc", []),
    ("image-size-negative-passes", with_fields(FULL_ZVOL, image_size=-1), "dc", []),
    ("image-size-fraction", with_fields(FULL_ZVOL, image_size=2.5), "dc", [("image_size", INVALID)]),
    ("image-size-word", with_fields(FULL_ZVOL, image_size="ten"), "dc", [("image_size", INVALID)]),
    ("image-size-on-zone", with_fields(MINIMAL, image_size=10240), "minimal", [("image_size", INVALID)]),
    ("image-size-zero-on-zone", with_fields(MINIMAL, image_size=0), "minimal", []),

    # -- channels: only with an IMGAPI that has channels
    ("channels-in-minimal-differs", with_fields(MINIMAL, channels=["dev"]), "minimal", [("channels", INVALID)]),
    ("channels-in-dc", with_fields(FULL, channels=["dev"]), "dc", [("channels", INVALID)]),
    ("channels-in-public-without-channels", with_fields(FULL, channels=["dev"]), "public", [("channels", INVALID)]),

    # -- unknown top-level keys, reported last, array indices first
    ("unknown-key", with_fields(MINIMAL, creator_uuid=OWNER), "minimal", [("creator_uuid", INVALID)]),
    ("unknown-key-case", with_fields(MINIMAL, Name="x"), "minimal", [("Name", INVALID)]),
    ("unknown-keys-integer-first", with_fields(MINIMAL, foo=1, **{"10": 1, "2": 1}), "minimal", [("2", INVALID), ("10", INVALID), ("foo", INVALID)]),
    ("unknown-key-has-own-property-differs", with_fields(MINIMAL, hasOwnProperty=1), "minimal", [("hasOwnProperty", INVALID)]),

    # -- order: required fields first, then the other known fields, then unknown keys
    ("error-order", with_fields(MINIMAL, extra=1, tags=[], uuid="x", v=-1, urn=1, os="dos"), "minimal", [
        ("v", INVALID), ("uuid", INVALID), ("os", INVALID), ("urn", INVALID), ("tags", INVALID), ("extra", INVALID),
    ]),
    ("error-order-dc", with_fields(FULL, extra=1, tags=[], uuid="x", v=-1, urn=1, state="gone"), "dc", [
        ("v", INVALID), ("uuid", INVALID), ("state", INVALID), ("urn", INVALID), ("tags", INVALID), ("extra", INVALID),
    ]),
]

CHANNEL_CASES = [
    ("public-channels-valid", with_fields(FULL, channels=["dev", "release"]), "public", []),
    ("public-channels-missing", FULL, "public", [("channels", MISSING)]),
    ("public-channels-number-entry", with_fields(FULL, channels=["dev", 1]), "public", [("channels", INVALID)]),
    ("public-channels-string", with_fields(FULL, channels="dev"), "public", [("channels", INVALID)]),
    ("private-channels-valid", with_fields(FULL, public=False, channels=[]), "private", []),
    ("private-channels-missing", with_fields(FULL, public=False), "private", [("channels", MISSING)]),
]


def field_codes(errors):
    return [(error["field"], error["code"]) for error in errors]


@pytest.mark.parametrize(
    "manifest, mode, expected",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_validate_manifest(manifest, mode, expected):
    assert field_codes(validate_manifest(manifest, mode=mode)) == expected


@pytest.mark.parametrize(
    "manifest, mode, expected",
    [case[1:] for case in CHANNEL_CASES],
    ids=[case[0] for case in CHANNEL_CASES],
)
def test_validate_manifest_with_channels(manifest, mode, expected):
    assert field_codes(validate_manifest(manifest, mode=mode, has_channels=True)) == expected


def test_case_ids_unique():
    ids = [case[0] for case in CASES + CHANNEL_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "manifest, mode",
    [case[1:3] for case in CASES if case[3]],
    ids=[case[0] for case in CASES if case[3]],
)
def test_every_error_has_message(manifest, mode):
    assert all(isinstance(error["message"], str) and error["message"] for error in validate_manifest(manifest, mode=mode))


def test_validate_leaves_manifest_unchanged():
    manifest = with_requirements(networks=[{"name": "net0", "description": "public"}], foo=1)
    before = copy.deepcopy(manifest)

    validate_manifest(manifest)

    assert manifest == before


def test_validate_unknown_mode():
    with pytest.raises(ValueError, match="unknown manifest validation mode 'strict'"):
        validate_manifest(MINIMAL, mode="strict")


@pytest.mark.parametrize("mode", ["minimal", "dc"])
def test_validate_channels_option_rejected(mode):
    with pytest.raises(ValueError, match="has_channels applies only to the public and private modes"):
        validate_manifest(MINIMAL, mode=mode, has_channels=True)


def test_validate_non_object():
    with pytest.raises(ManifestError, match="is a JSON array, not an object"):
        validate_manifest([MINIMAL])


def test_unknown_field_message_says_remove():
    errors = validate_manifest(with_fields(MINIMAL, creator_uuid=OWNER))
    assert errors[0]["message"] == "unknown field 'creator_uuid'; remove it from the manifest"


def test_too_long_name_message_names_limit():
    errors = validate_manifest(with_fields(MINIMAL, name="n" * 1025))
    assert "max 1024 characters" in errors[0]["message"]


def test_bad_compression_message_lists_accepted():
    errors = validate_manifest(with_file(compression="zstd"))
    assert errors[0]["message"] == 'files[0] compression "zstd" is not one of gzip, bzip2, xz, none'


# ---- check_manifest


def test_check_manifest_valid_returns_none():
    assert check_manifest(MINIMAL) is None


def check_error(manifest, mode="minimal"):
    with pytest.raises(ManifestError) as caught:
        check_manifest(manifest, mode=mode)
    return caught.value


def test_check_manifest_names_image():
    error = check_error(with_fields(MINIMAL, version="1 0"))
    assert str(error).startswith("image %s (pkgbuild@1 0) has an invalid manifest (minimal validation): " % UUID)


def test_check_manifest_lists_each_field():
    error = check_error(with_fields(MINIMAL, os="dos", tags=[]))
    assert 'os: image os "dos" is not one of smartos, linux, windows, bsd, illumos, other; tags: ' in str(error)


def test_check_manifest_says_what_to_fix():
    error = check_error(with_fields(MINIMAL, os="dos"))
    assert str(error).endswith("correct these fields or get a corrected manifest from the image's publisher")


def test_check_manifest_attaches_errors():
    manifest = with_fields(MINIMAL, os="dos", tags=[])
    error = check_error(manifest)
    assert error.errors == validate_manifest(manifest)


def test_check_manifest_uses_mode():
    error = check_error(MINIMAL, mode="dc")
    assert field_codes(error.errors)[0] == ("owner", MISSING)


def test_check_manifest_without_uuid():
    error = check_error(without_fields(MINIMAL, "uuid"))
    assert str(error).startswith("image <no uuid> (pkgbuild@18.1.0) has an invalid manifest")


# ---- is_uuid, describe, parse_manifest

UUID_CASES = [
    ("lower-case", UUID, True),
    ("upper-case", UUID.upper(), False),
    ("trailing-newline", UUID + "\n", False),
    ("leading-space", " " + UUID, False),
    ("no-dashes", UUID.replace("-", ""), False),
    ("braces", "{%s}" % UUID, False),
    ("not-a-string", 5, False),
    ("array", [UUID], False),
    ("none", None, False),
]


@pytest.mark.parametrize("value, expected", [case[1:] for case in UUID_CASES], ids=[case[0] for case in UUID_CASES])
def test_is_uuid(value, expected):
    assert is_uuid(value) is expected


def test_uuid_re_anchored_at_end():
    assert UUID_RE.match(UUID + "0") is None


DESCRIBE_CASES = [
    ("complete", MINIMAL, "%s (pkgbuild@18.1.0)" % UUID),
    ("no-version", without_fields(MINIMAL, "version"), "%s (pkgbuild@?)" % UUID),
    ("no-name", without_fields(MINIMAL, "name"), "%s (?@18.1.0)" % UUID),
    ("uuid-only", {"uuid": UUID}, UUID),
    ("empty", {}, "<no uuid>"),
    ("number-name", with_fields(MINIMAL, name=5), "%s (5@18.1.0)" % UUID),
    ("not-an-object", [], "<not a manifest object>"),
]


@pytest.mark.parametrize("manifest, expected", [case[1:] for case in DESCRIBE_CASES], ids=[case[0] for case in DESCRIBE_CASES])
def test_describe(manifest, expected):
    assert describe(manifest) == expected


def test_parse_manifest_text():
    assert parse_manifest('{"v": 2, "uuid": "%s"}' % UUID, "a.json") == {"v": 2, "uuid": UUID}


def test_parse_manifest_bytes():
    assert parse_manifest(b'{"name": "b\xc3\xa4se"}', "a.json") == {"name": "b\u00e4se"}


def parse_error(data, label="/var/tmp/image.json"):
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, label)
    return str(caught.value)


PARSE_ERROR_CASES = [
    ("truncated", '{"v": 2', "manifest /var/tmp/image.json is not valid JSON: Expecting"),
    ("empty", "", "manifest /var/tmp/image.json is not valid JSON: Expecting value"),
    ("nan", '{"v": NaN}', "manifest /var/tmp/image.json is not valid JSON: NaN is not a JSON value"),
    ("infinity", '{"v": -Infinity}', "manifest /var/tmp/image.json is not valid JSON: -Infinity is not a JSON value"),
    ("array", "[]", "manifest /var/tmp/image.json is a JSON array, not an object"),
    ("string", '"manifest"', "manifest /var/tmp/image.json is a JSON string, not an object"),
    ("null", "null", "manifest /var/tmp/image.json is a JSON null, not an object"),
    ("invalid-utf8", b'{"name": "\xff"}', "manifest /var/tmp/image.json is not valid UTF-8 text"),
    ("utf8-bom", b'\xef\xbb\xbf{"v": 2}', "manifest /var/tmp/image.json is not valid JSON: Unexpected UTF-8 BOM"),
]


@pytest.mark.parametrize("data, expected", [case[1:] for case in PARSE_ERROR_CASES], ids=[case[0] for case in PARSE_ERROR_CASES])
def test_parse_manifest_error(data, expected):
    assert parse_error(data).startswith(expected)


def test_parse_manifest_error_label_from_url():
    assert "manifest https://images.example.com/images/x/file is not valid JSON" in parse_error(
        "<html>", "https://images.example.com/images/x/file",
    )
