"""Create or destroy the scenario's ZFS pools on this host's zfs-fuse daemon.

Each pool lives on a sparse file ``<DIRECTORY>/<NAME>.img``. create
destroys a pool of the same name first, so a pool left by a run that was
interrupted before its destroy step is replaced. Pass only the scenario's
own pool names.

    python pools.py create DIRECTORY NAME...
    python pools.py destroy DIRECTORY NAME...
"""

import os
import subprocess
import sys

# tests/support is four directories up: extensions/molecule/fleet/files.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, ROOT)

from tests.support.pools import Pool, ensure_daemon  # noqa: E402


def main(argv):
    if len(argv) < 3 or argv[0] not in ("create", "destroy"):
        sys.exit("usage: pools.py create|destroy DIRECTORY NAME...")
    action, directory, names = argv[0], argv[1], argv[2:]
    ensure_daemon()
    os.makedirs(directory, exist_ok=True)
    for name in names:
        pool = Pool(name, directory, size="512M")
        if action == "create":
            pool.create()
            continue
        # Pool.destroy gives up quietly after 60 s of "pool is busy".
        pool.destroy()
        listed = subprocess.run(["zpool", "list", "-H", "-o", "name", name],
                                capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            # NOTE: under load zfs-fuse can call a pool busy long after its
            # last use, and only a restart of the daemon frees it. The
            # scenario's checks have passed by then, so a leftover pool is
            # reported rather than failed; create replaces it next time.
            print(f"pools.py: WARNING: zpool destroy -f {name} failed, and the pool is still imported. "
                  f"Destroy it by hand with zpool destroy -f {name}, restarting zfs-fuse if it stays busy",
                  file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
