"""File-backed ZFS pools on the zfs-fuse daemon, for tests and the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import time


def zfs_available():
    """Return None when ZFS commands work here, else the reason they do not."""
    if os.geteuid() != 0:
        return "ZFS tests need root"
    if shutil.which("zpool") is None:
        return "zpool is not installed (apt-get install zfs-fuse)"
    ensure_daemon()
    proc = subprocess.run(["zpool", "list", "-H"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return "zpool list failed: %s" % proc.stderr.strip()
    return None


def ensure_daemon():
    """Start zfs-fuse unless it runs; on SmartOS or with kernel ZFS there is nothing to start."""
    if shutil.which("zfs-fuse") is None:
        return
    if subprocess.run(["pgrep", "-x", "zfs-fuse"], capture_output=True, check=False).returncode == 0:
        return
    subprocess.run(["zfs-fuse"], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["zpool", "list"], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("zfs-fuse started but zpool list keeps failing")


def letters(number):
    """Spell ``number`` in letters: imgadm ignores pools whose names contain digits."""
    text = ""
    while True:
        number, digit = divmod(number, 26)
        text = chr(ord("a") + digit) + text
        if number == 0:
            return text


class Pool:
    """A pool on a sparse file; destroyed with the file on ``destroy``."""

    def __init__(self, name, directory, size="2G"):
        self.name = name
        self.image = os.path.join(directory, name + ".img")
        self.size = size

    def create(self):
        if subprocess.run(["zpool", "list", self.name], capture_output=True, check=False).returncode == 0:
            subprocess.run(["zpool", "destroy", "-f", self.name], capture_output=True, check=False)
        subprocess.run(["truncate", "-s", self.size, self.image], check=True)
        proc = subprocess.run(["zpool", "create", "-f", "-m", "/" + self.name, self.name, self.image],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("zpool create %s failed: %s" % (self.name, proc.stderr.strip()))
        return self

    def destroy(self, timeout=60.0):
        """Destroy the pool, retrying for up to ``timeout`` seconds while zfs-fuse reports it busy."""
        # zfs-fuse reports a pool busy for a while after heavy use, and longer
        # when other pools on the same daemon are busy too. It is not in use.
        deadline = time.monotonic() + timeout
        while True:
            if subprocess.run(["zpool", "destroy", "-f", self.name], capture_output=True, check=False).returncode == 0:
                break
            if subprocess.run(["zpool", "list", self.name], capture_output=True, check=False).returncode != 0:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if os.path.exists(self.image):
            os.unlink(self.image)

    def datasets(self):
        """Return every dataset and snapshot name in the pool."""
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", self.name],
                             capture_output=True, text=True, check=True).stdout
        return out.split()

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.destroy()
