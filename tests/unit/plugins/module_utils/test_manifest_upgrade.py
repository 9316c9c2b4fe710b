# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Upgrade of DSAPI (v1) manifests to IMGAPI (v2), and the image file of a manifest."""

from __future__ import annotations

import copy
import json
import math
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ManifestError
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    ImageFile,
    image_file,
    upgrade_manifest,
    validate_manifest,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "manifests")
LISTING = "listing-dsapi-datasets.joyent.com-2012-11-25.json"

UUID = "60a3b1fa-0674-11e2-abf5-cb82934a8e24"
CREATOR = "352971aa-31ba-496c-9ade-a379feaecd52"
CUSTOMER = "930896af-bf8c-48d4-885c-6573a94b1853"
SHA1 = "75f10c51683a22e65aeb2b25b085d6c3270f2b99"

# A DSAPI manifest as datasets.joyent.com served it in 2012.
V1 = {
    "uuid": UUID,
    "name": "base64",
    "version": "1.8.1",
    "urn": "sdc:sdc:base64:1.8.1",
    "type": "zone-dataset",
    "os": "smartos",
    "description": "Base image with core packages preinstalled",
    "creator_uuid": CREATOR,
    "vendor_uuid": CREATOR,
    "creator_name": "sdc",
    "cloud_name": "sdc",
    "platform_type": "smartos",
    "created_at": "2012-09-25T07:14:50.428Z",
    "updated_at": "2012-09-25T07:14:50.428Z",
    "published_at": "2012-09-25T07:14:50.428Z",
    "files": [
        {
            "path": "base64-1.8.1.zfs.bz2",
            "size": 81374762,
            "sha1": SHA1,
            "url": "https://datasets.joyent.com/datasets/%s/base64-1.8.1.zfs.bz2" % UUID,
        }
    ],
}


def v1_with(**changes):
    manifest = copy.deepcopy(V1)
    manifest.update(changes)
    return manifest


def v1_without(*fields):
    manifest = copy.deepcopy(V1)
    for field in fields:
        del manifest[field]
    return manifest


def v1_with_file(**changes):
    manifest = copy.deepcopy(V1)
    manifest["files"][0].update(changes)
    return manifest


def v1_without_file_keys(*keys):
    manifest = copy.deepcopy(V1)
    for key in keys:
        del manifest["files"][0][key]
    return manifest


def load_fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


def v1_fixture_names():
    names = sorted(name for name in os.listdir(FIXTURES) if name.endswith(".json") and name != LISTING)
    return [name for name in names if "v" not in load_fixture(name)]


# (case id, v1 manifest, field of the upgraded manifest, expected value)
FIELD_CASES = [
    ("v-set", V1, "v", 2),
    ("owner-from-creator-uuid", V1, "owner", CREATOR),
    ("public-by-default", V1, "public", True),
    ("public-true-overwrites-v1-public", v1_with(public=False), "public", True),
    ("restricted-to-uuid-makes-private", v1_with(restricted_to_uuid=CUSTOMER), "public", False),
    ("restricted-to-uuid-becomes-acl", v1_with(restricted_to_uuid=CUSTOMER), "acl", [CUSTOMER]),
    ("restricted-to-uuid-empty-is-public", v1_with(restricted_to_uuid=""), "public", True),
    ("disabled-default-false", V1, "disabled", False),
    ("disabled-true", v1_with(disabled=True), "disabled", True),
    ("disabled-string-false-is-truthy", v1_with(disabled="false"), "disabled", True),
    ("disabled-zero-is-false", v1_with(disabled=0), "disabled", False),
    ("disabled-null-is-false", v1_with(disabled=None), "disabled", False),
    ("state-active", V1, "state", "active"),
    ("state-disabled", v1_with(disabled=True), "state", "disabled"),
    ("state-overwritten", v1_with(state="failed"), "state", "active"),
    ("published-at-kept", V1, "published_at", "2012-09-25T07:14:50.428Z"),
    ("published-at-from-created-at", v1_without("published_at"), "published_at", "2012-09-25T07:14:50.428Z"),
    ("published-at-empty-from-created-at", v1_with(published_at=""), "published_at", "2012-09-25T07:14:50.428Z"),
    ("published-at-gains-seconds", v1_with(published_at="2011-04-11T14:14Z"), "published_at", "2011-04-11T14:14:00Z"),
    ("created-at-gains-seconds", v1_with(published_at=None, created_at="2011-04-11T14:14Z"), "published_at", "2011-04-11T14:14:00Z"),
    ("published-at-seconds-unchanged", v1_with(published_at="2011-04-11T14:14:01Z"), "published_at", "2011-04-11T14:14:01Z"),
    ("published-at-embedded-replaces-last-character", v1_with(published_at="x2011-04-11T14:14Zjunk"), "published_at", "x2011-04-11T14:14Zjun:00Z"),
    ("image-size-string-to-number", v1_with(image_size="5120"), "image_size", 5120),
    ("image-size-padded-string", v1_with(image_size=" 12 "), "image_size", 12),
    ("image-size-hex-string", v1_with(image_size="0x10"), "image_size", 16),
    ("image-size-fraction-string", v1_with(image_size="2.5"), "image_size", 2.5),
    ("image-size-number-unchanged", v1_with(image_size=10240), "image_size", 10240),
    ("image-size-empty-unchanged", v1_with(image_size=""), "image_size", ""),
    ("image-size-zero-unchanged", v1_with(image_size=0), "image_size", 0),
]


@pytest.mark.parametrize(
    "manifest, field, expected",
    [case[1:] for case in FIELD_CASES],
    ids=[case[0] for case in FIELD_CASES],
)
def test_upgrade_sets_field(manifest, field, expected):
    assert upgrade_manifest(manifest)[field] == expected


def test_upgrade_image_size_word_is_nan():
    assert math.isnan(upgrade_manifest(v1_with(image_size="ten"))["image_size"])


def test_upgrade_image_size_int_type():
    assert type(upgrade_manifest(v1_with(image_size="5120"))["image_size"]) is int  # pylint: disable=unidiomatic-typecheck


DROPPED = [
    "creator_uuid", "vendor_uuid", "creator_name", "cloud_name", "creator_admin",
    "restricted_to_uuid", "owner_uuid", "platform_type", "created_at", "updated_at", "_url",
]


@pytest.mark.parametrize("field", DROPPED)
def test_upgrade_drops_v1_field(field):
    manifest = v1_with(creator_admin=True, restricted_to_uuid=CUSTOMER, owner_uuid=CREATOR, _url="https://x/")
    assert field not in upgrade_manifest(manifest)


def test_upgrade_keeps_other_fields():
    upgraded = upgrade_manifest(v1_with(requirements={"ssh_key": True}, users=[{"name": "root"}]))
    unchanged_fields = {key: upgraded[key] for key in ("uuid", "name", "version", "urn", "type", "os", "description", "requirements", "users")}
    assert unchanged_fields == {
        "uuid": UUID, "name": "base64", "version": "1.8.1", "urn": "sdc:sdc:base64:1.8.1",
        "type": "zone-dataset", "os": "smartos", "description": "Base image with core packages preinstalled",
        "requirements": {"ssh_key": True}, "users": [{"name": "root"}],
    }


def test_upgrade_no_acl_when_public():
    assert "acl" not in upgrade_manifest(V1)


# (case id, v1 manifest, expected compression of the upgraded file)
COMPRESSION_CASES = [
    ("path-bz2", V1, "bzip2"),
    ("path-gz", v1_with_file(path="base64.zfs.gz"), "gzip"),
    ("path-xz-is-none", v1_with_file(path="base64.zfs.xz"), "none"),
    ("path-no-extension", v1_with_file(path="base64"), "none"),
    ("path-upper-case-extension", v1_with_file(path="base64.zfs.GZ"), "none"),
    ("path-dotfile", v1_with_file(path=".gz"), "none"),
    ("path-trailing-slash", v1_with_file(path="base64.gz/"), "gzip"),
    ("url-when-no-path", v1_without_file_keys("path"), "bzip2"),
    ("url-when-path-empty", v1_with_file(path="", url="https://x/base64.zfs.gz"), "gzip"),
    ("url-with-query", v1_with_file(path="", url="https://x/base64.zfs.gz?sig=1"), "none"),
    ("compression-kept", v1_with_file(compression="xz"), "xz"),
]


@pytest.mark.parametrize(
    "manifest, expected",
    [case[1:] for case in COMPRESSION_CASES],
    ids=[case[0] for case in COMPRESSION_CASES],
)
def test_upgrade_file_compression(manifest, expected):
    assert upgrade_manifest(manifest)["files"][0]["compression"] == expected


def test_upgrade_file_drops_path_and_url():
    assert upgrade_manifest(V1)["files"][0] == {"size": 81374762, "sha1": SHA1, "compression": "bzip2"}


def test_upgrade_works_on_copy():
    manifest = copy.deepcopy(V1)
    upgrade_manifest(manifest)
    assert manifest == V1


V2_AS_IS_CASES = [
    ("number-2", {"v": 2, "uuid": UUID}),
    ("string-2", {"v": "2", "uuid": UUID}),
    ("number-3", {"v": 3, "uuid": UUID, "creator_uuid": CREATOR}),
    ("fraction", {"v": 2.5, "uuid": UUID}),
]


@pytest.mark.parametrize("manifest", [case[1] for case in V2_AS_IS_CASES], ids=[case[0] for case in V2_AS_IS_CASES])
def test_upgrade_v2_returned_as_is(manifest):
    assert upgrade_manifest(manifest) is manifest


def test_upgrade_falsy_v_with_creator_uuid():
    assert upgrade_manifest(v1_with(v=0))["v"] == 2


# (case id, manifest, start of the expected ManifestError message)
UPGRADE_ERROR_CASES = [
    ("no-v-no-creator-uuid", v1_without("creator_uuid"),
     'image %s (base64@1.8.1): manifest does not have a "v" field, nor the "creator_uuid" of a v1 (DSAPI) '
     'manifest; add "v": 2 if it is an IMGAPI manifest' % UUID),
    ("empty-creator-uuid", v1_with(creator_uuid=""), 'image %s (base64@1.8.1): manifest does not have a "v" field' % UUID),
    ("v-1-no-creator-uuid", dict(v1_without("creator_uuid"), v=1),
     'image %s (base64@1.8.1): manifest "v" is 1, below 2, but there is no "creator_uuid"' % UUID),
    ("v-word", v1_with(v="two"), 'image %s (base64@1.8.1): manifest "v" is "two", which is not a number; set "v": 2' % UUID),
    ("owner-and-creator-uuid", v1_with(owner=CUSTOMER),
     'image %s (base64@1.8.1): v1 manifest has both "owner" and "creator_uuid"; remove one' % UUID),
    ("restricted-and-public", v1_with(restricted_to_uuid=CUSTOMER, public=True),
     'image %s (base64@1.8.1): v1 manifest has both "public" and "restricted_to_uuid"; remove one' % UUID),
    ("bad-uuid", v1_with(uuid=UUID.upper()),
     'image %s (base64@1.8.1): v1 manifest uuid "%s" is not a lower-case UUID, so it cannot be upgraded to v2'
     % (UUID.upper(), UUID.upper())),
    ("files-object", v1_with(files={"path": "a.gz"}), 'image %s (base64@1.8.1): v1 manifest "files" is {"path": "a.gz"}, not an array' % UUID),
    ("file-without-location", v1_without_file_keys("path", "url"),
     'image %s (base64@1.8.1): v1 manifest file 0 has no "compression" and no "path" or "url" to derive it from; '
     'add "compression" (one of gzip, bzip2, xz, none)' % UUID),
    ("file-null", v1_with(files=[None]), 'image %s (base64@1.8.1): v1 manifest file 0 has no "compression"' % UUID),
    ("not-an-object", [V1], "manifest is a JSON array, not an object"),
]


@pytest.mark.parametrize(
    "manifest, expected",
    [case[1:] for case in UPGRADE_ERROR_CASES],
    ids=[case[0] for case in UPGRADE_ERROR_CASES],
)
def test_upgrade_error(manifest, expected):
    with pytest.raises(ManifestError) as caught:
        upgrade_manifest(manifest)
    assert str(caught.value).startswith(expected)


@pytest.mark.parametrize("name", v1_fixture_names())
def test_real_v1_fixture_upgrades_valid(name):
    assert validate_manifest(upgrade_manifest(load_fixture(name))) == []


@pytest.mark.parametrize("index", range(len(load_fixture(LISTING))))
def test_listing_entry_upgrades_valid(index):
    assert validate_manifest(upgrade_manifest(load_fixture(LISTING)[index])) == []


def test_v1_fixtures_present():
    # The two tests above pass vacuously if the fixtures go missing.
    assert len(v1_fixture_names()) == 11


def test_listing_has_99_entries():
    assert len(load_fixture(LISTING)) == 99


# ---- image_file

V2 = {
    "v": 2,
    "uuid": "9d91e334-3bcf-11e8-bb0b-e7b49eb01e38",
    "name": "pkgbuild",
    "version": "18.1.0",
    "type": "zone-dataset",
    "os": "smartos",
    "files": [{"sha1": SHA1, "size": 465411979, "compression": "gzip"}],
}
V2_NAME = "9d91e334-3bcf-11e8-bb0b-e7b49eb01e38 (pkgbuild@18.1.0)"


def v2_with_file(**changes):
    manifest = copy.deepcopy(V2)
    manifest["files"][0].update(changes)
    return manifest


def v2_without_file_key(key):
    manifest = copy.deepcopy(V2)
    del manifest["files"][0][key]
    return manifest


IMAGE_FILE_CASES = [
    ("plain", V2, ImageFile(size=465411979, sha1=SHA1, compression="gzip", dataset_guid=None)),
    ("dataset-guid", v2_with_file(dataset_guid="8470734214926536430"),
     ImageFile(size=465411979, sha1=SHA1, compression="gzip", dataset_guid="8470734214926536430")),
    ("no-sha1", v2_without_file_key("sha1"), ImageFile(size=465411979, sha1=None, compression="gzip", dataset_guid=None)),
    ("integral-float-size", v2_with_file(size=1024.0), ImageFile(size=1024, sha1=SHA1, compression="gzip", dataset_guid=None)),
    ("upgraded-v1", upgrade_manifest(V1), ImageFile(size=81374762, sha1=SHA1, compression="bzip2", dataset_guid=None)),
]


@pytest.mark.parametrize(
    "manifest, expected",
    [case[1:] for case in IMAGE_FILE_CASES],
    ids=[case[0] for case in IMAGE_FILE_CASES],
)
def test_image_file(manifest, expected):
    assert image_file(manifest) == expected


def test_image_file_size_is_int():
    assert type(image_file(v2_with_file(size=1024.0)).size) is int  # pylint: disable=unidiomatic-typecheck


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "none"])
def test_image_file_accepts_compression(compression):
    assert image_file(v2_with_file(compression=compression)).compression == compression


NO_FILES = "image %s has no files: its manifest lists no image file, so it cannot be imported" % V2_NAME

IMAGE_FILE_ERROR_CASES = [
    ("files-missing", {key: value for key, value in V2.items() if key != "files"}, NO_FILES),
    ("files-empty", dict(V2, files=[]), NO_FILES),
    ("files-null", dict(V2, files=None), NO_FILES),
    ("docker-layer-without-files", {"uuid": "4a3db8cb-0e94-ae23-588c-ee7934088927", "name": "docker-layer"},
     "image 4a3db8cb-0e94-ae23-588c-ee7934088927 (docker-layer@?) has no files"),
    ("two-files", dict(V2, files=V2["files"] * 2), "image %s: manifest files [" % V2_NAME),
    ("file-not-object", dict(V2, files=["a.zfs.gz"]), "image %s: manifest files [\"a.zfs.gz\"] is not an array of exactly one file object" % V2_NAME),
    ("compression-zstd", v2_with_file(compression="zstd"),
     'image %s: file compression "zstd" is not supported; the accepted ones are gzip, bzip2, xz, none' % V2_NAME),
    ("compression-missing", v2_without_file_key("compression"),
     "image %s: file compression missing is not supported; the accepted ones are gzip, bzip2, xz, none" % V2_NAME),
    ("compression-upper-case", v2_with_file(compression="GZIP"), 'image %s: file compression "GZIP" is not supported' % V2_NAME),
    ("size-missing", v2_without_file_key("size"),
     "image %s: file size missing is not a positive whole number of bytes; correct files[0].size in the manifest" % V2_NAME),
    ("size-zero", v2_with_file(size=0), "image %s: file size 0 is not a positive whole number of bytes" % V2_NAME),
    ("size-negative", v2_with_file(size=-1), "image %s: file size -1 is not a positive whole number of bytes" % V2_NAME),
    ("size-string", v2_with_file(size="1024"), 'image %s: file size "1024" is not a positive whole number of bytes' % V2_NAME),
    ("size-fraction", v2_with_file(size=1.5), "image %s: file size 1.5 is not a positive whole number of bytes" % V2_NAME),
    ("size-true", v2_with_file(size=True), "image %s: file size true is not a positive whole number of bytes" % V2_NAME),
    ("sha1-number", v2_with_file(sha1=5), "image %s: file sha1 5 is not a string; correct files[0].sha1 in the manifest" % V2_NAME),
    ("dataset-guid-number", v2_with_file(dataset_guid=5), "image %s: file dataset_guid 5 is not a string" % V2_NAME),
]


@pytest.mark.parametrize(
    "manifest, expected",
    [case[1:] for case in IMAGE_FILE_ERROR_CASES],
    ids=[case[0] for case in IMAGE_FILE_ERROR_CASES],
)
def test_image_file_error(manifest, expected):
    with pytest.raises(ManifestError) as caught:
        image_file(manifest)
    assert str(caught.value).startswith(expected)
