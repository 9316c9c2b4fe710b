# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The index files that let a plain web server serve a repository to imgadm.

A web server without the image server application can serve the
repository's ``images/<uuid>/file`` files as they are, but imgadm also
needs listings and manifests in the shape of an API. These files provide
them, one JSON document a URL, for web server rewrite rules to map:

- ``datasets.json``: the DSAPI listing (``GET /datasets``), v1 (DSAPI)
  manifests, newest first, each with an absolute ``files[0].url``.
- ``datasets/<uuid>.json``: one DSAPI manifest (``GET /datasets/<uuid>``).
- ``images.json``: the IMGAPI listing (``GET /images``), the v2 manifests
  in the order IMGAPI lists them, oldest first.

Only active images are listed. The v1 manifests are written so that
imgadm's upgrade of a v1 manifest (imgmanifest's ``upgradeManifest``)
turns each back into the repository's v2 manifest, apart from the fields
listed in ``DROPPED_V2_FIELDS``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe, image_file, is_uuid
from ansible_collections.smartos.images.plugins.module_utils._repository import list_manifests

DATASETS_LIST = "datasets.json"
DATASETS_DIR = "datasets"
IMAGES_LIST = "images.json"
# A v1 manifest needs a creator_uuid, which imgadm copies into owner, so
# an image without an owner gets the nil UUID.
NIL_UUID = "00000000-0000-0000-0000-000000000000"
# v2 fields with no v1 equivalent: imgadm derives them again when it
# upgrades the v1 manifest (state and disabled from disabled, public
# from restricted_to_uuid, owner from creator_uuid).
DROPPED_V2_FIELDS = ("v", "owner", "public", "state", "disabled", "acl")
EXTENSIONS = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "none": ""}
UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


class IndexChange(NamedTuple):
    """The index files a run writes and removes, relative to the index directory."""

    written: List[str]
    removed: List[str]

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


def file_name(manifest: Dict[str, Any]) -> str:
    """Return the DSAPI ``files[0].path`` of an image, such as ``base-64-lts-24.4.1.zfs.gz``.

    imgadm version 1 chose the decompressor by this name's suffix, so it
    ends in the compression's usual suffix.
    """
    kind = "zvol" if manifest.get("type") == "zvol" else "zfs"
    stem = UNSAFE_FILE_CHARACTERS.sub("_", "%s-%s" % (manifest.get("name"), manifest.get("version")))
    return "%s.%s%s" % (stem, kind, EXTENSIONS.get(image_file(manifest).compression, ""))


def dataset_manifest(manifest: Dict[str, Any], url: str) -> Dict[str, Any]:
    """Return the v1 (DSAPI) manifest of a v2 manifest, with its file at ``<url>/datasets/<uuid>/<path>``."""
    dataset = {key: value for key, value in manifest.items() if key not in DROPPED_V2_FIELDS}
    dataset["creator_uuid"] = manifest.get("owner") or NIL_UUID
    if manifest.get("published_at"):
        dataset["created_at"] = manifest["published_at"]
    path = file_name(manifest)
    first = dict(manifest["files"][0])
    first["path"] = path
    first["url"] = "%s/datasets/%s/%s" % (url.rstrip("/"), manifest["uuid"], path)
    dataset["files"] = [first] + list(manifest["files"][1:])
    return dataset


def listed_manifests(repository: str, warn: Callable[[str], None]) -> List[Dict[str, Any]]:
    """Return the repository's active images that have a usable file, oldest first."""
    manifests = []
    for manifest in list_manifests(repository, warn):
        if manifest.get("state", "active") != "active":
            continue
        try:
            image_file(manifest)
        except ImageError as exc:
            warn("image %s is left out of the index: %s" % (describe(manifest), exc))
            continue
        manifests.append(manifest)
    manifests.sort(key=lambda m: (m.get("published_at") or "", m["uuid"]))
    return manifests


def index_files(repository: str, url: str, warn: Callable[[str], None] = lambda message: None) -> Dict[str, str]:
    """Return the index files of ``repository``, relative path to text."""
    manifests = listed_manifests(repository, warn)
    datasets = [dataset_manifest(manifest, url) for manifest in manifests]
    files = {
        IMAGES_LIST: _json_text(manifests),
        DATASETS_LIST: _json_text(list(reversed(datasets))),
    }
    for dataset in datasets:
        files["%s/%s.json" % (DATASETS_DIR, dataset["uuid"])] = _json_text(dataset)
    return files


def update_index(dest: str, files: Dict[str, str], check_mode: bool = False) -> IndexChange:
    """Make ``dest`` hold exactly ``files``: write those whose text differs, remove stale manifests."""
    written = [name for name in sorted(files) if _read_text(os.path.join(dest, name)) != files[name]]
    removed = []
    datasets_dir = os.path.join(dest, DATASETS_DIR)
    if os.path.isdir(datasets_dir):
        for name in sorted(os.listdir(datasets_dir)):
            relative = "%s/%s" % (DATASETS_DIR, name)
            if relative not in files and name.endswith(".json") and is_uuid(name[:-len(".json")]):
                removed.append(relative)
    if check_mode:
        return IndexChange(written, removed)
    os.makedirs(datasets_dir, mode=0o755, exist_ok=True)
    # Manifests first and listings last, so a client never finds an image in
    # a listing before its manifest is there.
    for name in sorted(written, key=lambda relative: not relative.startswith(DATASETS_DIR + "/")):
        _write_atomically(os.path.join(dest, name), files[name])
    for name in removed:
        os.unlink(os.path.join(dest, name))
    return IndexChange(written, removed)


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        # A file that cannot be read as UTF-8 text is rewritten.
        return None


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
