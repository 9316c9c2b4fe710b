"""Output file names of image_build, as imgadm create names them, as tables."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._build import file_prefix, file_suffix, slug

SLUGS = [
    ("plain", "base-64", "base-64"),
    ("upper case", "Base-64-LTS", "base-64-lts"),
    ("space to hyphen", "my image", "my-image"),
    ("space run", "my   image", "my-image"),
    ("spaces around hyphen", "a - b", "a-b"),
    ("hyphen run", "a--b", "a-b"),
    ("tab", "a\tb", "a-b"),
    ("dots and underscores kept", "web_1.2.3", "web_1.2.3"),
    ("slash dropped", "team/web", "teamweb"),
    ("plus dropped", "1.0+build5", "1.0build5"),
    ("other punctuation dropped", "a!b@c#d$e", "abcde"),
    ("trimmed", "  web  ", "web"),
    ("trim before collapsing", " - web", "-web"),
    ("leading hyphen kept", "-web-", "-web-"),
    ("dropping joins the neighbours", "a / b", "a-b"),
    ("non-ASCII letter dropped", "caf\u00e9", "caf"),
    ("empty", "", ""),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in SLUGS], ids=[c[0] for c in SLUGS])
def test_slug(text, expected):
    assert slug(text) == expected


PREFIXES = [
    ("name and version", "base-64-lts", "24.4.1", "base-64-lts-24.4.1"),
    ("spaces in name", "My Web Server", "1.0", "my-web-server-1.0"),
    ("version with plus", "web", "1.0.0+git.abc", "web-1.0.0git.abc"),
]


@pytest.mark.parametrize("name, version, expected", [c[1:] for c in PREFIXES], ids=[c[0] for c in PREFIXES])
def test_file_prefix(name, version, expected):
    assert file_prefix(name, version) == expected


SUFFIXES = [
    ("zone dataset, none", "zone-dataset", "none", ".zfs"),
    ("zone dataset, gzip", "zone-dataset", "gzip", ".zfs.gz"),
    ("zone dataset, bzip2", "zone-dataset", "bzip2", ".zfs.bz2"),
    ("zone dataset, xz", "zone-dataset", "xz", ".zfs.xz"),
    ("lx dataset, gzip", "lx-dataset", "gzip", ".zfs.gz"),
    ("zvol, none", "zvol", "none", ".zvol"),
    ("zvol, xz", "zvol", "xz", ".zvol.xz"),
    ("no type", None, "gzip", ".zfs.gz"),
]


@pytest.mark.parametrize("image_type, compression, expected", [c[1:] for c in SUFFIXES], ids=[c[0] for c in SUFFIXES])
def test_file_suffix(image_type, compression, expected):
    assert file_suffix(image_type, compression) == expected


def test_file_suffix_rejects_unknown_compression():
    with pytest.raises(ValueError, match="lz4"):
        file_suffix("zone-dataset", "lz4")
