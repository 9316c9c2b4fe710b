# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Deterministic manifest cases for the differential test against imgmanifest.

Every case is a dictionary with ``id``, ``manifest``, ``mode``,
``has_channels`` and ``culprit``. ``culprit`` is the error field that the
case's change targets. When imgmanifest throws instead of reporting an error,
this module must report that field as Invalid. ``known_difference`` names
a documented difference between this module and imgmanifest, or is None.

The cases start from the real manifests in tests/fixtures/manifests and
change one thing each: drop a field, give it a value of the wrong type, a
boundary value or a broken format, or add an unknown key.
"""

from __future__ import annotations

import copy
import json
import os

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "manifests")
LISTING = "listing-dsapi-datasets.joyent.com-2012-11-25.json"

UUID = "5c7d0d24-3475-11e5-8e67-27953a8b237e"
OTHER_UUID = "ed481150-ddcb-11e0-85f7-4704fd6a9c7f"
SHA1 = "80fd40bed4d97bb458abc04bdec60854b0a89c1d"

# Values of every JSON type, given to every field of every base manifest.
GENERIC_VALUES = (
    ("null", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("one", 1),
    ("minus-one", -1),
    ("fraction", 2.5),
    ("empty-string", ""),
    ("string", "x"),
    ("string-true", "true"),
    ("string-false", "false"),
    ("string-null", "null"),
    ("empty-array", []),
    ("array-of-string", ["x"]),
    ("empty-object", {}),
    ("object", {"a": 1}),
)

KNOWN_FIELDS = (
    "v", "uuid", "urn", "owner", "name", "version", "description", "homepage",
    "eula", "disabled", "activated", "published_at", "state", "public", "type",
    "os", "origin", "error", "files", "icon", "acl", "requirements", "users",
    "billing_tags", "traits", "tags", "generate_passwords",
    "inherited_directories", "nic_driver", "disk_driver", "cpu_type",
    "image_size", "channels",
)

# Names on JavaScript's Object.prototype, which imgmanifest accepts as a type
# or os because it looks the value up in a plain object.
PROTOTYPE_NAMES = ("constructor", "toString", "hasOwnProperty", "__proto__", "valueOf")


def load_fixture(name: str):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


def fixture_names() -> list:
    return sorted(name for name in os.listdir(FIXTURES) if name.endswith(".json") and name != LISTING)


def listing_entries() -> list:
    return load_fixture(LISTING)


def _case(case_id, manifest, mode="minimal", culprit=None, has_channels=False, known_difference=None):
    return {
        "id": case_id,
        "manifest": manifest,
        "mode": mode,
        "has_channels": has_channels,
        "culprit": culprit,
        "known_difference": known_difference,
    }


def _with(base: dict, **changes) -> dict:
    manifest = copy.deepcopy(base)
    manifest.update(copy.deepcopy(changes))
    return manifest


def _without(base: dict, *fields) -> dict:
    manifest = copy.deepcopy(base)
    for field in fields:
        manifest.pop(field, None)
    return manifest


def _with_requirements(base: dict, **requirements) -> dict:
    manifest = copy.deepcopy(base)
    manifest["requirements"] = copy.deepcopy(requirements)
    return manifest


def _with_file(base: dict, **changes) -> dict:
    manifest = copy.deepcopy(base)
    manifest["files"][0].update(copy.deepcopy(changes))
    return manifest


# ---- base manifests

def v2_bases() -> dict:
    """Return the v2 manifests that mutations start from, with the modes each is checked in."""
    zone = load_fixture("pkgbuild-18.1.0-9d91e334.json")
    lx = load_fixture("ubuntu-16.04-20160601-05140a7e.json")
    zvol = load_fixture("ubuntu-certified-18.04-20180808-ac99517a.json")
    docker = load_fixture("docker-layer-62487cf6a7f6-4a3db8cb.json")

    # A manifest as an IMGAPI server stores it: every field of the full modes.
    full_zvol = _with(zvol, activated=True, owner=UUID)
    full_zone = _with(zone, activated=True, disabled=False, owner=UUID)
    full_private = _with(full_zone, public=False)

    return {
        "zone": (zone, [("minimal", False)]),
        "lx": (lx, [("minimal", False)]),
        "zvol": (zvol, [("minimal", False)]),
        "docker": (docker, [("minimal", False)]),
        "full-zvol": (full_zvol, [("dc", False)]),
        "full-zone": (full_zone, [("dc", False), ("public", False), ("public", True)]),
        "full-private": (full_private, [("private", False), ("private", True)]),
    }


def _mode_label(mode: str, has_channels: bool) -> str:
    return mode + ("+channels" if has_channels else "")


# ---- case groups

def fixture_cases() -> list:
    cases = []
    for name in fixture_names():
        for mode in ("minimal", "dc", "public", "private"):
            cases.append(_case("fixture:%s:%s" % (name, mode), load_fixture(name), mode))
    for index, entry in enumerate(listing_entries()):
        for mode in ("minimal", "dc"):
            cases.append(_case("listing:%02d:%s:%s" % (index, entry.get("name"), mode), entry, mode))
    return cases


def generic_cases() -> list:
    """Drop each field, set each known field to a value of every type, add unknown keys."""
    cases = []
    for base_name, (base, modes) in v2_bases().items():
        for mode, has_channels in modes:
            prefix = "%s:%s" % (base_name, _mode_label(mode, has_channels))
            for field in base:
                cases.append(_case(
                    "%s:drop:%s" % (prefix, field), _without(base, field), mode, field, has_channels,
                ))
            for field in KNOWN_FIELDS:
                for label, value in GENERIC_VALUES:
                    cases.append(_case(
                        "%s:%s=json-%s" % (prefix, field, label),
                        _with(base, **{field: value}),
                        mode,
                        field,
                        has_channels,
                    ))
            for key in ("foo", "10", "2", "Name", "hasOwnProperty", "__proto__", "files "):
                cases.append(_case(
                    "%s:unknown-key:%s" % (prefix, key), _with(base, **{key: 1}), mode, key, has_channels,
                ))
    return cases


def _field_value_cases(prefix, base, mode, field, values, has_channels=False):
    return [
        _case("%s:%s=%s" % (prefix, field, label), _with(base, **{field: value}), mode, field, has_channels)
        for label, value in values
    ]


def boundary_cases() -> list:
    """Boundary values and broken formats, field by field."""
    bases = v2_bases()
    zone = bases["zone"][0]
    zvol = bases["zvol"][0]
    full_zone = bases["full-zone"][0]
    full_zvol = bases["full-zvol"][0]
    cases = []

    cases += _field_value_cases("zone:minimal", zone, "minimal", "v", [
        ("string-2", "2"), ("two-and-a-half", 2.5), ("hex", "0x10"), ("padded", " 2 "),
        ("string-minus-one", "-1"), ("minus-half", -0.5), ("minus-zero-string", "-0"),
        ("word", "abc"), ("array-of-two", [2]), ("array-of-pair", [1, 2]),
        ("beyond-double", 10 ** 400), ("exponent", "2e0"), ("octal", "0o7"), ("binary", "0b101"),
        ("bad-hex", "0x"), ("underscore", "1_000"), ("nbsp-padded", "\u00a02\u00a0"),
        ("infinity-word", "Infinity"), ("minus-infinity-word", "-Infinity"),
    ])

    for field in ("uuid", "owner", "origin"):
        cases += _field_value_cases("zone:minimal", zone, "minimal", field, [
            ("valid", UUID), ("upper-case", UUID.upper()), ("no-dashes", UUID.replace("-", "")),
            ("trailing-newline", UUID + "\n"), ("braces", "{%s}" % UUID), ("one-element-array", [UUID]),
            ("two-element-array", [UUID, UUID]), ("extra-digit", UUID + "0"), ("short", UUID[:-1]),
            ("non-hex", UUID[:-1] + "g"), ("nested-array", [[UUID]]),
        ])

    cases += _field_value_cases("zone:minimal", zone, "minimal", "name", [
        ("max-length", "a" * 1024), ("over-max-length", "a" * 1025), ("space", "base 64"),
        ("slash", "sdc/base"), ("plus", "base+64"), ("non-ascii", "bäse"),
        ("astral-max", "\U0001f600" * 512), ("astral-over", "\U0001f600" * 513),
        ("number", 123), ("number-with-exponent", 1e21), ("number-1e16", 1e16),
        ("object-with-length", {"length": 2000}), ("object-with-string-length", {"length": "2000"}),
        ("object-with-small-length", {"length": 3}), ("array-of-two", ["a", "b"]),
        ("nested-array", [["a"]]), ("array-with-null", [None]), ("trailing-newline", "base\n"),
        ("over-long-array", ["a"] * 1025), ("tab", "a\tb"),
    ])
    cases += _field_value_cases("zone:minimal", zone, "minimal", "version", [
        ("max-length", "1" * 512), ("over-max-length", "1" * 513), ("plus", "1.0+build.5"),
        ("space", "1.0 beta"), ("trailing-newline", "1.0\n"), ("number", 18.1), ("number-exponent", 1e21),
        ("colon", "1:0"), ("tilde", "1.0~rc1"),
    ])
    cases += _field_value_cases("zone:minimal", zone, "minimal", "description", [
        ("max-length", "d" * 10240), ("over-max-length", "d" * 10241),
        ("astral-over", "\U0001f600" * 5121), ("number", 5), ("object-with-length", {"length": 10241}),
    ])
    for field in ("homepage", "eula"):
        cases += _field_value_cases("zone:minimal", zone, "minimal", field, [
            ("http", "http://example.com/"), ("https-upper-case", "HTTPS://example.com/"),
            ("leading-whitespace", " \thttp://example.com/"), ("leading-nbsp", "\u00a0http://example.com/"),
            ("ftp", "ftp://example.com/"), ("no-scheme", "example.com"), ("path", "/docs"),
            ("mailto", "mailto:someone@example.com"), ("scheme-only", "http:"),
            ("max-length", "http://" + "a" * 1017), ("over-max-length", "http://" + "a" * 1018),
            ("long-ftp", "ftp://" + "a" * 1100), ("space-in-scheme", "ht tp://x"),
            ("backslashes", "http:\\\\example.com"), ("long-s", "\u017fhttp://x"),
        ])

    for field in ("disabled", "activated", "icon", "generate_passwords"):
        cases += _field_value_cases("zone:minimal", zone, "minimal", field, [
            ("yes", "yes"), ("upper-case-true", "TRUE"), ("bool-true", True), ("bool-false", False),
        ])

    published_at_values = [
        ("seconds", "2012-01-01T00:00:00Z"), ("milliseconds", "2012-01-01T00:00:00.123Z"),
        ("two-fraction-digits", "2012-01-01T00:00:00.12Z"), ("four-fraction-digits", "2012-01-01T00:00:00.1234Z"),
        ("no-seconds", "2012-01-01T00:00Z"), ("space-separator", "2012-01-01 00:00:00Z"),
        ("no-zone", "2012-01-01T00:00:00"), ("offset", "2012-01-01T00:00:00+00:00"),
        ("trailing-newline", "2012-01-01T00:00:00Z\n"), ("array", ["2012-01-01T00:00:00Z"]),
        ("arabic-digits", "\u0662\u0660\u0661\u0662-01-01T00:00:00Z"), ("lower-case-t", "2012-01-01t00:00:00Z"),
        ("number", 1356998400),
    ]
    cases += _field_value_cases("zone:minimal", zone, "minimal", "published_at", published_at_values)
    cases += _field_value_cases("full-zone:dc", full_zone, "dc", "published_at", published_at_values)
    for activated in (True, False, "true", "false"):
        label = json.dumps(activated).replace('"', "'")
        cases.append(_case(
            "full-zone:dc:activated=%s:drop:published_at" % label,
            _without(_with(full_zone, activated=activated), "published_at"), "dc", "published_at",
        ))
        cases.append(_case(
            "full-zone:dc:activated=%s:drop:files" % label,
            _without(_with(full_zone, activated=activated), "files"), "dc", "files",
        ))
        cases.append(_case(
            "zone:minimal:activated=%s:drop:published_at" % label,
            _without(_with(zone, activated=activated), "published_at"), "minimal", "published_at",
        ))
    cases.append(_case(
        "full-zone:dc:drop:activated+published_at", _without(full_zone, "activated", "published_at"), "dc", "activated",
    ))
    cases.append(_case(
        "full-zone:dc:activated=yes:drop:files", _without(_with(full_zone, activated="yes"), "files"), "dc", "activated",
    ))

    cases += _field_value_cases("zone:minimal", zone, "minimal", "state", [
        (state, state) for state in ("active", "unactivated", "disabled", "failed", "creating", "deleted", "ACTIVE")
    ])

    for mode, base in (("public", full_zone), ("private", bases["full-private"][0]), ("dc", full_zone)):
        cases += _field_value_cases("%s:%s" % (mode, mode), base, mode, "public", [
            ("bool-true", True), ("bool-false", False), ("string-true", "true"), ("string-false", "false"),
            ("yes", "yes"), ("upper-case-true", "TRUE"),
        ])

    for field, valid in (
        ("type", ("zone-dataset", "zvol", "lx-dataset", "docker", "other", "lxd", "ZVOL", ["zvol"], [["zvol"]])),
        ("os", ("smartos", "linux", "windows", "bsd", "illumos", "other", "Linux", ["linux"])),
    ):
        cases += _field_value_cases("zone:minimal", zone, "minimal", field, [
            (json.dumps(value).replace('"', "'"), value) for value in valid
        ])
        for state in ("creating", "failed", "active", None):
            manifest = _with(zone, **{field: "null"})
            if state is None:
                manifest.pop("state", None)
            else:
                manifest["state"] = state
            cases.append(_case("zone:minimal:%s='null':state=%s" % (field, state), manifest, "minimal", field))
        cases.append(_case(
            "zone:minimal:%s='null':state=['creating']" % field,
            _with(zone, **{field: "null", "state": ["creating"]}), "minimal", field,
        ))
        for name in PROTOTYPE_NAMES:
            cases.append(_case(
                "zone:minimal:%s=prototype-name:%s" % (field, name),
                _with(zone, **{field: name}), "minimal", field, known_difference="prototype-name",
            ))

    cases += _file_cases(zone, full_zone)
    cases += _requirements_cases(zone)
    cases += _collection_cases(zone, zvol)
    cases += _zvol_only_cases(zone, zvol, full_zone, full_zvol)
    cases += _channels_cases(zone, full_zone, bases["full-private"][0])
    return cases


def _file_cases(zone, full_zone):
    good = {"sha1": SHA1, "size": 1024, "compression": "gzip"}
    values = [
        ("no-files", []), ("empty-file", [{}]), ("two-files", [good, good]),
        ("null-file", [None]), ("number-file", [5]), ("string-file", ["x"]), ("array-file", [["x"]]),
        ("object", {"0": good}), ("string", "file.zfs.gz"),
        ("with-dataset-guid", [dict(good, dataset_guid="1234567890")]),
    ]
    for key in ("sha1", "size", "compression"):
        values.append(("without-%s" % key, [{k: v for k, v in good.items() if k != key}]))
    for label, value in (
        ("zero", 0), ("empty-string", ""), ("null", None), ("false", False), ("string", "x"),
        ("number", 7), ("array", []), ("object", {}),
    ):
        for key in ("sha1", "size", "compression"):
            values.append(("%s-%s" % (key, label), [dict(good, **{key: value})]))
    for compression in ("gzip", "bzip2", "xz", "none", "zstd", "GZIP", "lz4"):
        values.append(("compression-%s" % compression, [dict(good, compression=compression)]))
    values.append(("compression-wrapped-in-array", [dict(good, compression=["gzip"])]))
    values.append(("size-negative", [dict(good, size=-1)]))

    cases = _field_value_cases("zone:minimal", zone, "minimal", "files", values)
    cases += _field_value_cases("full-zone:dc", full_zone, "dc", "files", values[:12])
    return cases


def _requirements_cases(zone):
    network = {"name": "net0", "description": "public"}
    stamp = "20130308T102805Z"
    values = [
        ("empty", {}),
        ("string", "ab"),
        ("astral-string", "\U0001f600"),
        ("number", 5),
        ("array", [1, 2]),
        ("networks-valid", {"networks": [network]}),
        ("networks-empty", {"networks": []}),
        ("networks-object", {"networks": network}),
        ("networks-string", {"networks": "net0"}),
        ("networks-zero", {"networks": 0}),
        ("networks-null-entry", {"networks": [None]}),
        ("networks-string-entry", {"networks": ["net0"]}),
        ("networks-array-entry", {"networks": [["net0", "public"]]}),
        ("networks-name-only", {"networks": [{"name": "net0"}]}),
        ("networks-extra-key", {"networks": [dict(network, vlan=1)]}),
        ("networks-null-values", {"networks": [{"name": None, "description": None}]}),
        ("networks-two-bad", {"networks": [{}, {"name": 1}]}),
        ("networks-wrong-keys", {"networks": [{"name": "a", "desc": "b"}]}),
        ("brand-string", {"brand": "bhyve"}),
        ("brand-number", {"brand": 5}),
        ("brand-empty", {"brand": ""}),
        ("brand-array", {"brand": ["bhyve"]}),
        ("ssh-key-true", {"ssh_key": True}),
        ("ssh-key-string", {"ssh_key": "true"}),
        ("ssh-key-zero", {"ssh_key": 0}),
        ("ssh-key-one", {"ssh_key": 1}),
        ("ram-valid", {"min_ram": 512, "max_ram": 1024}),
        ("ram-equal", {"min_ram": 512, "max_ram": 512}),
        ("ram-inverted", {"min_ram": 1024, "max_ram": 512}),
        ("ram-string", {"min_ram": "512"}),
        ("ram-fraction", {"min_ram": 512.5}),
        ("ram-float-integral", {"max_ram": 512.0}),
        ("ram-negative", {"min_ram": -512}),
        ("ram-zero", {"min_ram": 0, "max_ram": 0}),
        ("ram-both-bad", {"min_ram": "a", "max_ram": True}),
        ("ram-inverted-one-bad", {"min_ram": 1024.5, "max_ram": 512}),
        ("ram-huge", {"max_ram": 10 ** 400}),
        ("bootrom-bhyve-bios", {"brand": "bhyve", "bootrom": "bios"}),
        ("bootrom-bhyve-uefi", {"brand": "bhyve", "bootrom": "uefi"}),
        ("bootrom-bhyve-other", {"brand": "bhyve", "bootrom": "coreboot"}),
        ("bootrom-no-brand", {"bootrom": "bios"}),
        ("bootrom-kvm", {"brand": "kvm", "bootrom": "bios"}),
        ("bootrom-empty", {"bootrom": ""}),
        ("bootrom-array", {"brand": "bhyve", "bootrom": ["bios"]}),
        ("bootrom-brand-number", {"brand": 1, "bootrom": "uefi"}),
        ("unknown", {"foo": 1}),
        ("unknown-order", {"b": 1, "3": 2, "a": 3, "1": 4}),
        ("unknown-and-known", {"zzz": 1, "networks": [network], "cpu": 2}),
    ]
    for key in ("min_platform", "max_platform"):
        for label, value in (
            ("valid", {"7.0": stamp}),
            ("two-valid", {"6.5": stamp, "7.0": "20121210T203034Z"}),
            ("empty-object", {}),
            ("string", stamp),
            ("array-of-stamp", [stamp]),
            ("empty-array", []),
            ("number", 5),
            ("year-2011", {"7.0": "20111231T235959Z"}),
            ("year-2012", {"7.0": "20120101T000000Z"}),
            ("month-13", {"7.0": "20131308T102805Z"}),
            ("month-00", {"7.0": "20130008T102805Z"}),
            ("day-32", {"7.0": "20130332T102805Z"}),
            ("day-00", {"7.0": "20130300T102805Z"}),
            ("hour-24", {"7.0": "20130308T242805Z"}),
            ("minute-60", {"7.0": "20130308T106005Z"}),
            ("second-60", {"7.0": "20130308T102860Z"}),
            ("max-values", {"7.0": "20131231T235959Z"}),
            ("no-t", {"7.0": "20130308 102805Z"}),
            ("no-z", {"7.0": "20130308T102805X"}),
            ("short", {"7.0": "20130308T10280Z"}),
            ("long", {"7.0": "20130308T1028050Z"}),
            ("iso-date", {"7.0": "2013-03-08"}),
            ("letters", {"7.0": "XXXXXXXXTXXXXXXZ"}),
            ("spaces-in-month", {"7.0": "2013  08T102805Z"}),
            ("signed-month", {"7.0": "2013+108T102805Z"}),
            ("minus-zero-day", {"7.0": "201303-0T102805Z"}),
            ("astral", {"7.0": "2013030\U0001f600102805Z"}),
            ("null-value", {"7.0": None}),
            ("number-value", {"7.0": 20130308}),
            ("array-value-16", {"7.0": ["x"] * 16}),
            ("array-value-2", {"7.0": ["x", "y"]}),
            ("object-value-length-16", {"7.0": {"length": 16}}),
            ("object-value", {"7.0": {}}),
            ("bool-value", {"7.0": True}),
            ("one-good-one-bad", {"6.5": stamp, "7.0": "bad"}),
            ("integer-keys", {"7": "bad", "6": "also bad"}),
        ):
            values.append(("%s-%s" % (key.replace("_", "-"), label), {key: value}))

    cases = []
    for label, value in values:
        culprit = "requirements"
        if isinstance(value, dict) and len(value) == 1:
            culprit = "requirements." + next(iter(value))
        if isinstance(value, dict) and "bootrom" in value:
            culprit = "requirements.bootrom"
        cases.append(_case("zone:minimal:requirements=%s" % label, _with(zone, requirements=value), "minimal", culprit))
    return cases


def _collection_cases(zone, zvol):
    cases = []
    cases += _field_value_cases("zone:minimal", zone, "minimal", "acl", [
        ("one-uuid", [UUID]), ("two-uuids", [UUID, OTHER_UUID]), ("second-bad", [UUID, "bad"]),
        ("two-bad", ["bad", "worse"]), ("string", UUID), ("null-entry", [None]), ("nested", [[UUID]]),
    ])
    cases += _field_value_cases("zone:minimal", zone, "minimal", "users", [
        ("valid", [{"name": "root"}, {"name": "admin"}]), ("extra-key", [{"name": "root", "uid": 0}]),
        ("empty-entry", [{}]), ("string-entry", ["root"]), ("null-entry", [None]), ("string", "root"),
        ("array-entry", [["root"]]), ("two-bad", [{}, "root"]), ("null-name", [{"name": None}]),
        ("wrong-key", [{"user": "root"}]),
    ])
    cases += _field_value_cases("zone:minimal", zone, "minimal", "billing_tags", [
        ("valid", ["a", "b"]), ("max-length", ["t" * 128]), ("over-max-length", ["t" * 129]),
        ("astral-over", ["\U0001f600" * 65]), ("number-entry", [1]), ("null-entry", [None]),
        ("two-bad", [1, "t" * 200]), ("string", "a"),
    ])
    cases += _field_value_cases("zone:minimal", zone, "minimal", "traits", [
        ("valid", {"a": "b", "c": True, "d": [1]}), ("number-value", {"a": 1}), ("null-value", {"a": None}),
        ("object-value", {"a": {}}), ("array-of-strings", ["x", True]), ("array-of-number", [1]),
        ("two-bad", {"a": 1, "b": None, "c": "ok"}), ("integer-keys", {"2": 1, "1": 2}),
    ])

    # JSON.stringify({"k": "x" * n}) is n + 8 characters long.
    max_tags = 100 * 1024
    cases += _field_value_cases("zone:minimal", zone, "minimal", "tags", [
        ("nested", {"a": {"b": [1, None]}}),
        ("max-size", {"k": "x" * (max_tags - 8)}),
        ("over-max-size", {"k": "x" * (max_tags - 7)}),
        ("escapes-max-size", {"k": "\n" * ((max_tags - 8) // 2)}),
        ("escapes-over-max-size", {"k": "\n" * ((max_tags - 8) // 2) + "x"}),
        ("control-over-max-size", {"k": "\u0001" * ((max_tags - 8) // 6 + 1)}),
        ("astral-max-size", {"k": "\U0001f600" * ((max_tags - 8) // 2)}),
        ("astral-over-max-size", {"k": "\U0001f600" * ((max_tags - 8) // 2) + "x"}),
        ("lone-surrogate-over-max-size", {"k": "\ud800" * ((max_tags - 8) // 6 + 1)}),
        ("numbers-max-size", {"k": [1e21] * ((max_tags - 7) // 6)}),
        ("numbers-over-max-size", {"k": [1e21] * ((max_tags - 7) // 6 + 1)}),
        ("floats-over-max-size", {"k": [1e16] * ((max_tags - 7) // 18 + 1)}),
        ("wide-numbers-under-max-size", {"k": [1.0] * ((max_tags - 7) // 2)}),
        ("many-keys-over-max-size", {"k%05d" % index: index for index in range(10000)}),
    ])

    cases += _field_value_cases("zone:minimal", zone, "minimal", "inherited_directories", [
        ("valid", ["/usr", "/opt"]), ("number-entry", ["/usr", 1]), ("string", "/usr"),
        ("two-bad", [1, None]),
    ])
    for label, value in (("valid", ["/usr"]), ("empty", []), ("null", None), ("string", "/usr")):
        cases.append(_case(
            "zvol:minimal:inherited_directories=%s" % label,
            _with(zvol, inherited_directories=value), "minimal", "inherited_directories",
        ))
    cases += _field_value_cases("zone:minimal", zone, "minimal", "urn", [("valid", "sdc:sdc:base:1.0"), ("number", 5)])
    cases += _field_value_cases("zone:minimal", zone, "minimal", "error", [
        ("object", {"message": "failed"}), ("array", []), ("string", "failed"), ("null", None),
    ])
    return cases


def _zvol_only_cases(zone, zvol, full_zone, full_zvol):
    cases = []
    values = [
        ("string", "virtio"), ("empty-string", ""), ("zero", 0), ("number", 5), ("null", None),
        ("true", True), ("false", False), ("array", ["virtio"]),
    ]
    for field in ("nic_driver", "disk_driver", "cpu_type"):
        cases += _field_value_cases("zone:minimal", zone, "minimal", field, values)
        cases += _field_value_cases("zvol:minimal", zvol, "minimal", field, values)
        cases += _field_value_cases("full-zone:dc", full_zone, "dc", field, values[:3])

    size_values = [
        ("number", 5120), ("string", "5120"), ("zero", 0), ("negative", -1), ("fraction", 2.5),
        ("word", "abc"), ("null", None), ("empty-string", ""), ("hex", "0x10"), ("padded", " 12 "),
        ("exponent", "1e3"), ("array", [10]), ("huge", 10 ** 400), ("float-integral", 5120.0),
    ]
    cases += _field_value_cases("zone:minimal", zone, "minimal", "image_size", size_values)
    cases += _field_value_cases("zvol:minimal", zvol, "minimal", "image_size", size_values)
    cases += _field_value_cases("full-zvol:dc", full_zvol, "dc", "image_size", size_values)
    cases.append(_case(
        "full-zvol:dc:type=['zvol']",
        _with(full_zvol, type=["zvol"]), "dc", "nic_driver",
    ))
    return cases


def _channels_cases(zone, full_zone, full_private):
    values = [("valid", ["dev", "release"]), ("number-entry", ["dev", 1]), ("string", "dev"), ("empty", [])]
    cases = []
    cases += _field_value_cases("zone:minimal", zone, "minimal", "channels", values)
    cases += _field_value_cases("full-zone:dc", full_zone, "dc", "channels", values)
    cases += _field_value_cases("full-zone:public", full_zone, "public", "channels", values)
    cases += _field_value_cases("full-zone:public+channels", full_zone, "public", "channels", values, True)
    cases += _field_value_cases("full-private:private+channels", full_private, "private", "channels", values, True)
    cases.append(_case("full-zone:public+channels:no-channels", full_zone, "public", "channels", True))
    cases.append(_case("full-private:private+channels:no-channels", full_private, "private", "channels", True))
    return cases


def upgrade_cases() -> list:
    """Change the v1 (DSAPI) fixtures in the ways upgradeManifest treats specially."""
    zone = load_fixture("base64-1.8.1-60a3b1fa.json")
    zvol = load_fixture("ubuntu-12.04-2.2.1-583287ae.json")
    cases = []

    def add(label, manifest, culprit=None, modes=("minimal", "dc")):
        for mode in modes:
            cases.append(_case("v1:%s:%s" % (label, mode), manifest, mode, culprit))

    add("zvol-as-is", zvol)
    add("drop-creator-uuid", _without(zone, "creator_uuid"), "v")
    add("empty-creator-uuid", _with(zone, creator_uuid=""), "v")
    add("owner-and-creator-uuid", _with(zone, owner=UUID), "owner")
    add("null-owner-and-creator-uuid", _with(zone, owner=None), "owner")
    for label, value in (
        ("zero", 0), ("empty-string", ""), ("one", 1), ("string-one", "1"), ("two", 2),
        ("string-two", "2"), ("word", "abc"), ("object", {}), ("empty-array", []), ("null", None),
        ("minus-one", -1), ("false", False), ("true", True),
    ):
        add("v=%s" % label, _with(zone, v=value), "v")
        add("no-creator:v=%s" % label, _without(_with(zone, v=value), "creator_uuid"), "v")
    for label, value in (("uuid", UUID), ("empty", ""), ("null", None), ("bad", "not-a-uuid")):
        add("restricted-to-uuid=%s" % label, _with(zone, restricted_to_uuid=value), "acl")
        add("restricted-to-uuid=%s+public" % label, _with(zone, restricted_to_uuid=value, public=True), "public")
    add("public-false", _with(zone, public=False), "public")
    for label, value in (
        ("true", True), ("false", False), ("string-false", "false"), ("string-true", "true"),
        ("zero", 0), ("one", 1), ("null", None), ("empty-string", ""), ("empty-array", []),
    ):
        add("disabled=%s" % label, _with(zone, disabled=value), "disabled")
    add("state-overwritten", _with(zone, state="failed", disabled=True), "state")
    for label, published_at, created_at in (
        ("created-only", None, "2012-09-25T07:14:50.428Z"),
        ("created-no-seconds", None, "2012-09-25T07:14Z"),
        ("published-no-seconds", "2011-04-11T14:14Z", "2012-09-25T07:14:50.428Z"),
        ("published-empty", "", "2012-09-25T07:14:50Z"),
        ("published-embedded-no-seconds", "x2012-09-25T07:14Zjunk", None),
        ("published-array-no-seconds", ["2012-09-25T07:14Z"], None),
        ("published-array-two", ["a", "2012-09-25T07:14Z"], None),
        ("published-number", 1348557290, None),
        ("published-astral", "2012-09-25T07:14Z\U0001f600", None),
        ("created-number", None, 5),
        ("neither", None, None),
    ):
        manifest = _without(zone, "published_at", "created_at")
        if published_at is not None:
            manifest["published_at"] = published_at
        if created_at is not None:
            manifest["created_at"] = created_at
        add("published-at:%s" % label, manifest, "published_at")
    for label, changes in (
        ("path-gz", {"path": "a.zfs.gz"}),
        ("path-bz2", {"path": "a.zfs.bz2"}),
        ("path-xz", {"path": "a.zfs.xz"}),
        ("path-upper-case", {"path": "a.zfs.GZ"}),
        ("path-no-extension", {"path": "image"}),
        ("path-dotfile", {"path": ".gz"}),
        ("path-double-dot", {"path": "a..gz"}),
        ("path-trailing-slash", {"path": "dir.gz/"}),
        ("path-in-directory", {"path": "x.bz2/image"}),
        ("path-dots-only", {"path": ".."}),
        ("path-empty-url-gz", {"path": "", "url": "http://x/a.gz"}),
        ("path-number", {"path": 5}),
        ("compression-preset", {"path": "a.gz", "compression": "xz"}),
        ("compression-empty", {"path": "a.gz", "compression": ""}),
        ("url-query", {"path": "", "url": "http://x/a.gz?sig=1"}),
    ):
        add("files:%s" % label, _with_file(zone, **changes), "files")
    no_location = copy.deepcopy(zone)
    del no_location["files"][0]["path"]
    del no_location["files"][0]["url"]
    add("files:no-path-no-url", no_location, "files")
    url_only = copy.deepcopy(zone)
    del url_only["files"][0]["path"]
    add("files:url-only", url_only, "files")
    for label, files in (
        ("empty", []), ("null-entry", [None]), ("number-entry", [5]), ("object", {}), ("string", "x"),
        ("zero", 0), ("with-compression-entries", [{"compression": "gzip"}, {"compression": "bzip2"}]),
    ):
        add("files=%s" % label, _with(zone, files=files), "files")
    for label, value in (
        ("string", "5120"), ("word", "abc"), ("hex", "0x10"), ("padded", " 12 "), ("empty", ""),
        ("zero", 0), ("empty-array", []), ("exponent", "1e3"), ("fraction", "2.5"), ("true", True),
    ):
        add("image-size=%s" % label, _with(zvol, image_size=value), "image_size")
    for label, value in (
        ("upper-case", zone["uuid"].upper()), ("missing", None), ("array", [zone["uuid"]]), ("number", 5),
    ):
        manifest = _with(zone, uuid=value) if value is not None else _without(zone, "uuid")
        add("uuid=%s" % label, manifest, "uuid")
    add("extra-v1-fields", _with(zone, owner_uuid=UUID, _url="http://x/", creator_admin=True), None)
    return cases


def all_cases() -> list:
    cases = fixture_cases() + generic_cases() + boundary_cases() + upgrade_cases()
    seen = set()
    for case in cases:
        if case["id"] in seen:
            raise ValueError("duplicate differential case id %r" % case["id"])
        seen.add(case["id"])
    return cases
