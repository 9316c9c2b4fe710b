"""Import locks between processes.

``fcntl`` record locks belong to a process, so a second ``ImportLocks`` in
the test process would always get the lock.  Every contender here is
therefore a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import LockError
from ansible_collections.smartos.images.plugins.module_utils._lock import ImportLocks, lock_path

UUID_A = "2b683a82-a066-11e3-97ab-2faa44701c5a"
UUID_B = "3c4b7d54-a066-11e3-8ef9-57ff0e3d0d0c"

# Takes the locks, prints "locked" (or "LockError: ..."), holds them until a
# line arrives on stdin, prints "released", then waits for stdin to close.
HOLDER = r"""
import sys
from ansible_collections.smartos.images.plugins.module_utils._errors import LockError
from ansible_collections.smartos.images.plugins.module_utils._lock import ImportLocks

lock_dir, timeout, uuids = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
try:
    with ImportLocks(lock_dir, uuids, timeout):
        print("locked", flush=True)
        sys.stdin.readline()
except LockError as exc:
    print("LockError: %s" % exc, flush=True)
    sys.exit(0)
print("released", flush=True)
sys.stdin.read()
"""


class Holder:
    """A child process running ``HOLDER``."""

    def __init__(self, lock_dir, uuids, timeout=5.0):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(lock_dir), str(timeout), *uuids],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )

    def read_line(self):
        return self.process.stdout.readline().strip()

    def release(self):
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def holders():
    started = []

    def start(lock_dir, uuids, timeout=5.0):
        holder = Holder(lock_dir, uuids, timeout)
        started.append(holder)
        return holder

    yield start
    for holder in started:
        holder.close()


@pytest.fixture
def lock_dir(tmp_path):
    return str(tmp_path / "run")


def test_lock_path(lock_dir):
    assert lock_path(lock_dir, UUID_A) == os.path.join(lock_dir, "img.%s.import.lock" % UUID_A)


def test_lock_uncontended(lock_dir):
    with ImportLocks(lock_dir, [UUID_A, UUID_B], timeout=1) as locks:
        assert locks.waited is False
        assert os.path.exists(lock_path(lock_dir, UUID_A))
        assert os.path.exists(lock_path(lock_dir, UUID_B))


def test_lock_contended_times_out(lock_dir, holders):
    holder = holders(lock_dir, [UUID_A])
    assert holder.read_line() == "locked"
    started = time.monotonic()

    with pytest.raises(LockError) as caught:
        with ImportLocks(lock_dir, [UUID_A], timeout=0.5):
            pass

    assert time.monotonic() - started >= 0.5
    assert lock_path(lock_dir, UUID_A) in str(caught.value)
    assert UUID_A in str(caught.value)
    assert caught.value.details["path"] == lock_path(lock_dir, UUID_A)


def test_lock_released_on_exit(lock_dir, holders):
    holder = holders(lock_dir, [UUID_A])
    assert holder.read_line() == "locked"
    holder.release()
    assert holder.read_line() == "released"

    with ImportLocks(lock_dir, [UUID_A], timeout=0.5) as locks:
        assert locks.waited is False


def test_lock_released_on_kill(lock_dir, holders):
    holder = holders(lock_dir, [UUID_A])
    assert holder.read_line() == "locked"
    holder.process.kill()
    holder.process.wait(timeout=10)

    with ImportLocks(lock_dir, [UUID_A], timeout=0.5) as locks:
        assert locks.waited is False


def test_lock_waits_for_holder(lock_dir, holders):
    holder = holders(lock_dir, [UUID_A])
    assert holder.read_line() == "locked"
    timer = threading.Timer(0.5, holder.release)
    timer.start()

    try:
        with ImportLocks(lock_dir, [UUID_A], timeout=10) as locks:
            assert locks.waited is True
    finally:
        timer.cancel()


def test_lock_released_in_process(lock_dir, holders):
    with ImportLocks(lock_dir, [UUID_A], timeout=1):
        pass
    holder = holders(lock_dir, [UUID_A], timeout=0.5)

    assert holder.read_line() == "locked"


def test_lock_held_in_process(lock_dir, holders):
    with ImportLocks(lock_dir, [UUID_A], timeout=1):
        holder = holders(lock_dir, [UUID_A], timeout=0.3)
        line = holder.read_line()

    assert line.startswith("LockError: ")
    assert lock_path(lock_dir, UUID_A) in line


def test_lock_failure_releases_earlier(lock_dir, holders):
    holder = holders(lock_dir, [UUID_B])
    assert holder.read_line() == "locked"

    with pytest.raises(LockError) as caught:
        with ImportLocks(lock_dir, [UUID_A, UUID_B], timeout=0.3):
            pass

    checker = holders(lock_dir, [UUID_A], timeout=0.3)
    assert lock_path(lock_dir, UUID_B) in str(caught.value)
    assert checker.read_line() == "locked"
