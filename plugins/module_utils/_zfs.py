# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ZFS commands the engine needs, run with the C locale and checked.

Only machine-readable output is parsed: ``zfs list -H`` prints one
tab-separated row a dataset.  ``-p`` is not used for listing because the
engine reads no numeric property there and zfs-fuse's ``zfs list`` lacks it.
``list_rows`` is the exception: it tries ``-p`` once, as imgadm's listing
passes it, and falls back where ``zfs list`` rejects it.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.smartos.images.plugins.module_utils._errors import ZfsError

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]

# Attempts and delays when zfs-fuse reports a dataset busy: 0.2 s doubling up
# to 2 s, about 10 s in all.
BUSY_RETRIES = 8
BUSY_DELAY = 0.2
BUSY_DELAY_MAX = 2.0

C_LOCALE = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"}


def run_command(argv: Sequence[str]) -> Tuple[int, str, str]:
    """Run ``argv`` with the C locale and return ``(rc, stdout, stderr)``."""
    env = dict(os.environ, **C_LOCALE)
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    return proc.returncode, proc.stdout, proc.stderr


class Dataset(NamedTuple):
    name: str
    origin: Optional[str]


class Zfs:
    """Thin wrapper over the ``zfs`` and ``zpool`` commands."""

    def __init__(self, run: Runner = run_command, zfs_bin: str = "zfs", zpool_bin: str = "zpool"):
        self._run = run
        self.zfs_bin = zfs_bin
        self.zpool_bin = zpool_bin
        # Whether ``zfs list`` accepts -p: None until list_rows has tried it.
        self.list_parsable: Optional[bool] = None

    def _check(self, argv: List[str], action: str) -> str:
        rc, out, err = self._run(argv)
        if rc != 0:
            raise ZfsError(
                "%s failed (exit %d): %s" % (" ".join(argv), rc, err.strip() or out.strip()),
                argv=argv, rc=rc, stderr=err, action=action,
            )
        return out

    def exists(self, name: str) -> bool:
        argv = [self.zfs_bin, "list", "-H", "-o", "name", name]
        rc, out, err = self._run(argv)
        if rc == 0:
            return True
        if "does not exist" in err:
            return False
        raise ZfsError(
            "%s failed (exit %d): %s" % (" ".join(argv), rc, err.strip()),
            argv=argv, rc=rc, stderr=err,
        )

    def existing(self, names: Sequence[str]) -> List[str]:
        """Return which of ``names`` exist, with one ``zfs list`` call for all of them."""
        argv = [self.zfs_bin, "list", "-H", "-o", "name"] + list(names)
        rc, out, err = self._run(argv)
        found = [line for line in out.splitlines() if line]
        missing = [line for line in err.splitlines() if "does not exist" in line]
        if rc != 0 and len(found) + len(missing) != len(names):
            raise ZfsError("%s failed (exit %d): %s" % (" ".join(argv), rc, err.strip()),
                           argv=argv, rc=rc, stderr=err)
        return found

    def pool_exists(self, pool: str) -> bool:
        rc, out, err = self._run([self.zpool_bin, "list", "-H", "-o", "name", pool])
        return rc == 0 and out.strip() == pool

    def datasets(self, pool: str) -> List[Dataset]:
        """List the filesystems and volumes of ``pool`` with their origins."""
        out = self._check(
            [self.zfs_bin, "list", "-H", "-o", "name,origin", "-t", "filesystem,volume", "-r", pool],
            "list datasets",
        )
        rows = []
        for line in out.splitlines():
            name, _unused, origin = line.partition("\t")
            rows.append(Dataset(name, None if origin in ("", "-") else origin))
        return rows

    def snapshots(self, dataset: str) -> List[str]:
        """Return the short names (after ``@``) of the snapshots of ``dataset`` itself."""
        out = self._check(
            [self.zfs_bin, "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", dataset],
            "list snapshots",
        )
        prefix = dataset + "@"
        return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]

    def clones_of(self, pool: str, dataset: str) -> List[str]:
        """Return the datasets of ``pool`` cloned from any snapshot of ``dataset``."""
        prefix = dataset + "@"
        return [d.name for d in self.datasets(pool) if d.origin and d.origin.startswith(prefix)]

    def get(self, name: str, prop: str) -> str:
        out = self._check([self.zfs_bin, "get", "-H", "-p", "-o", "value", prop, name], "get " + prop)
        return out.strip()

    def rename(self, old: str, new: str) -> None:
        self._check([self.zfs_bin, "rename", old, new], "rename")

    def mount(self, name: str) -> None:
        self._check([self.zfs_bin, "mount", name], "mount")

    def unmount(self, name: str) -> None:
        """Unmount ``name`` if it is mounted, retrying while it is busy."""
        argv = [self.zfs_bin, "unmount", name]
        for attempt in range(BUSY_RETRIES):
            rc, out, err = self._run(argv)
            # Volumes are never mounted ("not applicable to datasets of this type").
            if rc == 0 or "not currently mounted" in err or "does not exist" in err or "not applicable" in err:
                return
            if "busy" not in err or attempt == BUSY_RETRIES - 1:
                break
            time.sleep(min(BUSY_DELAY * 2 ** attempt, BUSY_DELAY_MAX))
        raise ZfsError("%s failed (exit %d): %s; stop what uses the dataset and re-run"
                       % (" ".join(argv), rc, err.strip() or out.strip()),
                       argv=argv, rc=rc, stderr=err, action="unmount")

    def destroy(self, name: str) -> None:
        """Destroy ``name`` and its snapshots; it must have no dependent clones.

        The dataset is unmounted first: ``zfs destroy -r`` removes the
        snapshots before the dataset, so a destroy that then fails on a busy
        mount would leave an image without its ``@final``.
        """
        self.unmount(name)
        argv = [self.zfs_bin, "destroy", "-r", name]
        for attempt in range(BUSY_RETRIES):
            rc, out, err = self._run(argv)
            # A -partial dataset can vanish on its own while an aborted
            # receive cleans up; either way it is gone, as requested.
            if rc == 0 or "does not exist" in err:
                return
            # zfs-fuse can report a dataset busy for a while after use.
            if "busy" not in err or attempt == BUSY_RETRIES - 1:
                break
            time.sleep(min(BUSY_DELAY * 2 ** attempt, BUSY_DELAY_MAX))
        raise ZfsError("%s failed (exit %d): %s" % (" ".join(argv), rc, err.strip() or out.strip()),
                       argv=argv, rc=rc, stderr=err, action="destroy")

    def list_rows(self, properties: Sequence[str], types: Sequence[str],
                  roots: Sequence[str] = ()) -> List[List[str]]:
        """Run one ``zfs list -H`` and return its rows, one list of ``properties`` values a dataset.

        ``roots`` are listed recursively; without them every pool is listed.
        ``-p`` is passed where ``zfs list`` accepts it, as imgadm does. zfs-fuse
        rejects it (exit 2, "invalid option"), so the list then runs again
        without it, and this object stores the result for later calls.
        """
        tail = ["-H", "-o", ",".join(properties), "-t", ",".join(types)]
        if roots:
            tail += ["-r"] + list(roots)
        out = None
        if self.list_parsable is not False:
            argv = [self.zfs_bin, "list", "-p"] + tail
            rc, out, err = self._run(argv)
            if rc == 2 and "invalid option" in err:
                self.list_parsable = False
                out = None
            elif rc != 0:
                raise ZfsError("%s failed (exit %d): %s" % (" ".join(argv), rc, err.strip() or out.strip()),
                               argv=argv, rc=rc, stderr=err, action="list datasets")
            else:
                self.list_parsable = True
        if out is None:
            argv = [self.zfs_bin, "list"] + tail
            out = self._check(argv, "list datasets")
        rows = []
        for line in out.splitlines():
            if not line:
                continue
            # Only the last property can hold a tab (a user property's value).
            values = line.split("\t", len(properties) - 1)
            if len(values) != len(properties):
                raise ZfsError("%s printed the row %r with %d values where %d (%s) were requested; check the zfs "
                               "command on this host" % (" ".join(argv), line, len(values), len(properties),
                                                         ",".join(properties)),
                               argv=argv, action="list datasets")
            rows.append(values)
        return rows

    def receive_argv(self, target: str) -> List[str]:
        # -u: a just-received mounted dataset cannot be renamed on every
        # platform ("dataset is busy"), so it is mounted after the rename.
        return [self.zfs_bin, "receive", "-u", target]
