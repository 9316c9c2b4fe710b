# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Per-image import locks, compatible with SmartOS imgadm.

imgadm takes an ``fcntl`` write lock on ``/var/run/img.<uuid>.import.lock``
for every image it imports, top image first, down to the base.  Taking the
same locks in the same order makes our imports and imgadm's exclude each
other without deadlock.  The kernel drops the locks when a process dies, so
a killed import never leaves a lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Iterable, List

from ansible_collections.smartos.images.plugins.module_utils._errors import LockError

POLL_INTERVAL = 0.25


def lock_path(lock_dir: str, uuid: str) -> str:
    return os.path.join(lock_dir, "img.%s.import.lock" % uuid)


class ImportLocks:
    """Hold the import locks of several images, taken in the given order."""

    def __init__(self, lock_dir: str, uuids: Iterable[str], timeout: float):
        self.lock_dir = lock_dir
        self.uuids = list(uuids)
        self.timeout = timeout
        self._fds: List[int] = []
        self.waited = False

    def __enter__(self) -> "ImportLocks":
        os.makedirs(self.lock_dir, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        try:
            for uuid in self.uuids:
                self._fds.append(self._acquire(uuid, deadline))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def _acquire(self, uuid: str, deadline: float) -> int:
        path = lock_path(self.lock_dir, uuid)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                self.waited = True
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockError(
                        "image %s: timed out after %g s waiting for the import lock %s; another "
                        "import of this image is still running: wait for it to finish, or stop it "
                        "and re-run" % (uuid, self.timeout, path),
                        uuid=uuid, path=path,
                    )
                time.sleep(POLL_INTERVAL)

    def release(self) -> None:
        while self._fds:
            fd = self._fds.pop()
            try:
                fcntl.lockf(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
