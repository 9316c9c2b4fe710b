# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fingerprint of a mounted file system tree, to tell whether a dataset changed since a build.

The walk records each entry's metadata, not its bytes: relative path, type,
permission bits, owner, group, size, modification and change times in
nanoseconds, device number and symlink target. A write changes the size or
the times of the file, and creating, removing or renaming an entry changes
its directory. The change time (ctime) cannot be set back from user space,
so restoring a file's old modification time does not hide a change either.

Time stamps have a granularity: zfs-fuse reports whole seconds. A write in
the same second as an entry's recorded time, and of the same size, leaves
the same metadata. Like git's "racily clean" index entries, a walk that
finds an entry changed less than ``RACY_WINDOW_NS`` before the walk started
is marked ``racy``. Callers must not trust a racy fingerprint to prove a
later tree unchanged.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from typing import Any, Dict, Iterator, Tuple

# A stamp in whole seconds, t, hides writes up to t + 1 s, so an entry whose
# stamp is later than one second before the walk may hide a write after it.
RACY_WINDOW_NS = 1_000_000_000

# The root's .zfs is ZFS's snapshot directory, not part of the dataset.
SKIPPED_ROOT_NAMES = (".zfs",)

_TYPES = (
    (stat.S_ISDIR, "d"),
    (stat.S_ISREG, "f"),
    (stat.S_ISLNK, "l"),
    (stat.S_ISFIFO, "p"),
    (stat.S_ISSOCK, "s"),
    (stat.S_ISCHR, "c"),
    (stat.S_ISBLK, "b"),
)


def tree_fingerprint(root: str) -> Dict[str, Any]:
    """Walk the tree at ``root`` and return ``{"kind", "entries", "sha256", "racy"}``.

    Entries on another file system, such as a child dataset mounted below
    ``root``, are recorded by path only and not descended into, because
    ``zfs send`` of a dataset does not include its children. Raises
    OSError when an entry cannot be read or vanishes during the walk.
    """
    started_ns = time.time_ns()
    digest = hashlib.sha256()
    entries = 0
    newest_ns = 0
    for line, changed_ns in _entries(root):
        digest.update(line.encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
        entries += 1
        newest_ns = max(newest_ns, changed_ns)
    return {
        "kind": "tree",
        "entries": entries,
        "sha256": digest.hexdigest(),
        "racy": newest_ns > started_ns - RACY_WINDOW_NS,
    }


def _entries(root: str) -> Iterator[Tuple[str, int]]:
    """Yield one line for each entry under ``root``, in the same order for the same tree, with its latest time stamp."""
    root_stat = os.lstat(root)
    yield _describe(".", root_stat, None), max(root_stat.st_mtime_ns, root_stat.st_ctime_ns)
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        directory = os.path.join(root, relative_dir) if relative_dir else root
        with os.scandir(directory) as listing:
            names = sorted(entry.name for entry in listing)
        subdirectories = []
        for name in names:
            if not relative_dir and name in SKIPPED_ROOT_NAMES:
                continue
            relative = os.path.join(relative_dir, name) if relative_dir else name
            path = os.path.join(root, relative)
            info = os.lstat(path)
            if info.st_dev != root_stat.st_dev:
                yield "%s\tmount" % _path_text(relative), 0
                continue
            target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            yield _describe(relative, info, target), max(info.st_mtime_ns, info.st_ctime_ns)
            if stat.S_ISDIR(info.st_mode):
                subdirectories.append(relative)
        # Popped from the end, so reversed to walk the subdirectories in sorted order.
        pending.extend(reversed(subdirectories))


def _describe(relative: str, info: os.stat_result, target: Any) -> str:
    kind = next((letter for test, letter in _TYPES if test(info.st_mode)), "?")
    fields = [
        _path_text(relative),
        kind,
        "%o" % stat.S_IMODE(info.st_mode),
        str(info.st_uid),
        str(info.st_gid),
        str(info.st_size),
        str(info.st_mtime_ns),
        str(info.st_ctime_ns),
    ]
    if kind in ("c", "b"):
        fields.append("%d" % info.st_rdev)
    if target is not None:
        fields.append(_path_text(target))
    return "\t".join(fields)


def _path_text(path: str) -> str:
    # repr() keeps tabs, newlines and undecodable bytes in names from
    # making two different trees produce the same lines.
    return repr(path)
