# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which datasets of a host are installed images, decided the way ``imgadm list`` decides.

The input is one ``zfs list -H -o name,origin,mountpoint,imgadm:ignore -t
filesystem,volume`` and the zone paths from ``zoneadm list -pc``.  Snapshots
are not listed: on zfs-fuse they make the listing two to three times slower,
and only clones named like images need their ``@final`` checked, which one
more ``zfs list`` of just those snapshot names does.
A dataset is an image when all of these hold:

- Its name is ``<pool>/<uuid>`` with a lower-case UUID. So ``-partial``
  leftovers of an import, KVM volumes such as ``<uuid>-disk0``, children such
  as ``<uuid>/disk0`` and snapshots never are. imgadm's pattern
  (``VMADM_IMG_NAME_RE`` in ``lib/imgadm.js``) only accepts pool names made
  of letters, ``.``, ``_`` and ``-``, so it misses pools whose names contain
  digits. Here they count.
- Its mountpoint is not the zone path of a zone, which would make it a zone
  root.
- It is not a clone of a ``@final`` snapshot that lacks a ``@final`` of its
  own. Such a dataset is a VM cloned from an image, since every image has
  exactly one snapshot, ``@final``.
- Its ``imgadm:ignore`` property is not ``true`` or ``yes``. ``false``,
  ``no`` and unset mean false; any other value is reported and also read as
  false, as imgadm does.

The clones of an image are every filesystem and volume whose origin is a
snapshot of it: VMs, KVM and bhyve disks, and child images.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from ansible_collections.smartos.images.plugins.module_utils._cache import ManifestCache
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ZfsError
from ansible_collections.smartos.images.plugins.module_utils._filters import Filter, image_row, matches
from ansible_collections.smartos.images.plugins.module_utils._zfs import Runner, Zfs

LIST_PROPERTIES = ("name", "origin", "mountpoint", "imgadm:ignore")
LIST_TYPES = ("filesystem", "volume")
# Snapshot names checked by one zfs list call, to keep its command line short.
FINAL_CHECK_BATCH = 500

IMAGE_NAME_RE = re.compile(r"\A([^/@\t]+)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\Z")

# ZFS pool names start with a letter; zpool(8) allows letters, digits, "_",
# "-", ".", ":" and " " after it. Checking this keeps a value such as "-r" or
# "zones/vm" from reaching the zfs command line.
POOL_NAME_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_.: -]*\Z")

FINAL_SUFFIX = "@final"
IGNORE_TRUE = ("true", "yes")
IGNORE_FALSE = ("false", "no", "-")
# zoneadm list -p prints zoneid:zonename:state:zonepath:uuid:brand:ip-type.
ZONEPATH_FIELD = 3


class DatasetRow(NamedTuple):
    """One row of the ``zfs list`` output; ``origin`` is None when the dataset is no clone."""

    name: str
    origin: Optional[str]
    mountpoint: str
    ignore: str


class InstalledImage(NamedTuple):
    """An image dataset and the names of the datasets cloned from it, sorted."""

    pool: str
    uuid: str
    clones: List[str]

    @property
    def dataset(self) -> str:
        return "%s/%s" % (self.pool, self.uuid)


def check_pool_names(pools: Sequence[str]) -> List[str]:
    """Return ``pools`` without repeats, or raise ``ImageError`` naming a value that is not a pool name."""
    if not pools:
        raise ImageError("pools is an empty list; omit it to list the images of every pool")
    chosen: List[str] = []
    for pool in pools:
        if not POOL_NAME_RE.match(pool):
            raise ImageError("pools: %r is not a ZFS pool name; give pool names such as zones, "
                             "without a dataset path or snapshot" % pool)
        if pool not in chosen:
            chosen.append(pool)
    return chosen


def split_parsable(line: str) -> List[str]:
    """Split one line of ``zoneadm list -p`` at its colons; ``\\:`` and ``\\\\`` stand for ``:`` and ``\\``."""
    fields = [""]
    escaped = False
    for char in line:
        if escaped:
            fields[-1] += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append("")
        else:
            fields[-1] += char
    return fields


def parse_zone_paths(text: str) -> Set[str]:
    """Return the zone paths (4th field) of ``zoneadm list -pc`` output."""
    paths = set()
    for line in text.splitlines():
        fields = split_parsable(line.strip())
        if len(fields) > ZONEPATH_FIELD and fields[ZONEPATH_FIELD]:
            paths.add(fields[ZONEPATH_FIELD])
    return paths


def dataset_rows(rows: Iterable[Sequence[str]]) -> List[DatasetRow]:
    """Turn ``zfs list`` rows of ``LIST_PROPERTIES`` into ``DatasetRow`` values."""
    result = []
    for name, origin, mountpoint, ignore in rows:
        result.append(DatasetRow(name, None if origin in ("", "-") else origin, mountpoint, ignore))
    return result


def clones_needing_final_check(rows: Sequence[DatasetRow]) -> List[str]:
    """Return the image-named datasets cloned from a ``@final``: VMs unless they have a ``@final`` too."""
    return [row.name for row in rows
            if IMAGE_NAME_RE.match(row.name) and row.origin is not None and row.origin.endswith(FINAL_SUFFIX)]


def find_images(rows: Sequence[DatasetRow], zone_paths: Set[str],
                has_final: Optional[Set[str]] = None) -> Tuple[List[InstalledImage], List[str]]:
    """Return the images among ``rows`` with their clones, and warnings about ``imgadm:ignore`` values.

    ``has_final`` names the datasets that have a ``@final`` snapshot; without
    it, the snapshot rows among ``rows`` tell.
    """
    if has_final is None:
        has_final = {row.name[:-len(FINAL_SUFFIX)] for row in rows if row.name.endswith(FINAL_SUFFIX)}
    clones: Dict[str, List[str]] = {}
    for row in rows:
        if row.origin is not None:
            clones.setdefault(row.origin.split("@", 1)[0], []).append(row.name)

    images = []
    warnings = []
    for row in rows:
        match = IMAGE_NAME_RE.match(row.name)
        if not match or row.mountpoint in zone_paths:
            continue
        if row.origin is not None and row.origin.endswith(FINAL_SUFFIX) and row.name not in has_final:
            continue
        if row.ignore in IGNORE_TRUE:
            continue
        if row.ignore not in IGNORE_FALSE:
            warnings.append("dataset %s: imgadm:ignore is %r, which is not true, yes, false or no; it is read as "
                            "false, so the image is listed. Set it to true or false, or clear it with zfs inherit "
                            "imgadm:ignore %s" % (row.name, row.ignore, row.name))
        images.append(InstalledImage(match.group(1), match.group(2), sorted(clones.get(row.name, []))))
    return images, warnings


def read_zone_paths(run: Runner, zoneadm_bin: str) -> Set[str]:
    """Run ``zoneadm list -pc`` and return the zone paths; raise ``ImageError`` when it fails."""
    argv = [zoneadm_bin, "list", "-pc"]
    rc, out, err = run(argv)
    if rc != 0:
        raise ImageError("%s failed (exit %d): %s; zone roots cannot be distinguished from images without it, "
                         "so check zoneadm on this host"
                         % (" ".join(argv), rc, err.strip() or out.strip()), argv=argv, rc=rc, stderr=err)
    return parse_zone_paths(out)


def sort_key(entry: Dict[str, Any]) -> Tuple[str, str, str, str]:
    """Order images by ``published_at``, then name, as ``imgadm list`` does; UUID and pool break ties."""
    manifest = entry["manifest"]

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return (text(manifest.get("published_at")), text(manifest.get("name")), text(manifest.get("uuid")),
            text(entry.get("zpool")))


class InstalledImageLister:
    """Lists the installed images of a host with one ``zfs list`` and one cache file read an image."""

    def __init__(self, *, zfs: Zfs, cache: ManifestCache, zone_paths: Set[str],
                 warn: Callable[[str], None] = lambda message: None):
        self.zfs = zfs
        self.cache = cache
        self.zone_paths = zone_paths
        self.warn = warn

    def datasets(self, pools: Optional[Sequence[str]]) -> List[DatasetRow]:
        roots = list(pools or [])
        try:
            rows = self.zfs.list_rows(LIST_PROPERTIES, LIST_TYPES, roots)
        except ZfsError as exc:
            # Tell a pool that does not exist from any other failure. Only
            # this failure path pays for the zpool list calls.
            missing = [pool for pool in roots if not self.zfs.pool_exists(pool)]
            if not missing:
                raise
            if len(missing) == 1:
                problem = "pool %s given in pools does not exist on this host" % missing[0]
                advice = "remove it from pools or create it"
            else:
                problem = "pools %s given in pools do not exist on this host" % ", ".join(missing)
                advice = "remove them from pools or create them"
            raise ImageError("%s (%s); %s" % (problem, exc, advice), missing_pools=missing,
                             argv=exc.argv, rc=exc.rc, stderr=exc.stderr) from exc
        return dataset_rows(rows)

    def datasets_with_final(self, rows: Sequence[DatasetRow]) -> Set[str]:
        """Return which clones named like images have their own ``@final``, with one zfs call a batch."""
        names = clones_needing_final_check(rows)
        found: Set[str] = set()
        for start in range(0, len(names), FINAL_CHECK_BATCH):
            snapshots = [name + FINAL_SUFFIX for name in names[start:start + FINAL_CHECK_BATCH]]
            found.update(snapshot[:-len(FINAL_SUFFIX)] for snapshot in self.zfs.existing(snapshots))
        return found

    def entry(self, image: InstalledImage) -> Dict[str, Any]:
        """Return the fact for ``image``: its cached manifest (or only its UUID), pool, source and clones."""
        info, warning = self.cache.load(image.pool, image.uuid)
        if warning:
            self.warn(warning)
        return {
            "manifest": info["manifest"] if info else {"uuid": image.uuid},
            "zpool": image.pool,
            "source": info.get("source") if info else None,
            "clones": image.clones,
            "clone_count": len(image.clones),
        }

    def list(self, pools: Optional[Sequence[str]] = None, filters: Sequence[Filter] = ()) -> List[Dict[str, Any]]:
        """Return the facts of the installed images of ``pools`` (every pool when None) that match ``filters``."""
        rows = self.datasets(pools)
        images, warnings = find_images(rows, self.zone_paths, self.datasets_with_final(rows))
        for warning in warnings:
            self.warn(warning)
        entries = [self.entry(image) for image in images]
        chosen = [entry for entry in entries if matches(image_row(entry["manifest"], filter_info(entry)), filters)]
        chosen.sort(key=sort_key)
        return chosen


def filter_info(entry: Dict[str, Any]) -> Dict[str, Any]:
    """Return the installed-image fields filters see; ``clones`` is the count there, as in imgadm."""
    info: Dict[str, Any] = {"zpool": entry["zpool"], "clones": entry["clone_count"]}
    if entry.get("source") is not None:
        info["source"] = entry["source"]
    return info
