"""imgadm-style filters, as a table of (filter, manifest, expected match)."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._filters import image_row, matches, parse_filters, select

MANIFEST = {
    "uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271",
    "name": "base-64-lts",
    "version": "24.4.1",
    "public": True,
    "disabled": False,
    "image_size": 10240,
    "published_at": "2025-01-08T10:11:12.123Z",
    "tags": {"role": "os", "kernel_version": "4.3.0"},
    "requirements": {"brand": "bhyve", "networks": [{"name": "net0", "description": "public"}]},
    "users": [{"name": "root"}],
    "billing_tags": ["small", "fast"],
    "files": [{"sha1": "ab", "size": 4096, "compression": "gzip"}],
    "nothing": None,
}

CASES = [
    ("exact string", "name=base-64-lts", True),
    ("exact string differs", "name=base-64", False),
    ("substring", "name=~64", True),
    ("substring absent", "name=~32", False),
    ("boolean true", "public=true", True),
    ("boolean false matches false only", "disabled=false", True),
    ("boolean against string", "name=true", False),
    ("number as string", "image_size=10240", True),
    ("dotted tag", "tags.role=os", True),
    ("dotted tag differs", "tags.role=db", False),
    ("dotted requirement", "requirements.brand=bhyve", True),
    ("missing field excludes", "origin=x", False),
    ("missing dotted field excludes", "tags.nope=x", False),
    ("array membership", "billing_tags=~fast", True),
    ("array membership absent", "billing_tags=~slow", False),
    ("array as joined string", "billing_tags=small,fast", True),
    ("object as string", "tags=[object Object]", True),
    ("null as string", "nothing=null", True),
    ("substring on number excludes", "image_size=~102", False),
    ("computed pub", "pub=2025-01-08", True),
    ("computed published", "published=2025-01-08T10:11:12Z", True),
    ("computed size", "size=4096", True),
    ("empty value", "name=", False),
]


@pytest.mark.parametrize("spec, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter_matches(spec, expected):
    assert matches(image_row(MANIFEST), parse_filters([spec])) is expected


def test_filters_are_anded():
    assert matches(image_row(MANIFEST), parse_filters(["name=~base", "tags.role=db"])) is False


def test_filter_value_may_contain_equals():
    assert parse_filters(["tags.x=a=b"])[0].value == "a=b"


@pytest.mark.parametrize("spec", ["name", "=value", ""])
def test_invalid_filter_rejected(spec):
    with pytest.raises(ImageError, match="must be of the form"):
        parse_filters([spec])


def test_dict_filters():
    assert parse_filters({"public": True, "name": "x"}) == parse_filters(["public=true", "name=x"])


def test_select_uses_installed_fields():
    infos = {MANIFEST["uuid"]: {"zpool": "zones", "clones": 2}}

    assert select([MANIFEST], parse_filters(["zpool=zones", "clones=2"]), infos) == [MANIFEST]
    assert select([MANIFEST], parse_filters(["zpool=other"]), infos) == []
