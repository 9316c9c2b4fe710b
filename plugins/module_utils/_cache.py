# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The manifest cache imgadm keeps beside each installed image.

One JSON file a pool and image, ``<cache_dir>/<pool>-<uuid>.json``, holding
``{"manifest": ..., "zpool": ..., "source": ...}``.  ZFS decides whether an
image is installed; the cache only supplies its manifest, so a corrupt file
is reported as a warning and read as "manifest unknown".
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Optional, Tuple


def atomic_write(path: str, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a part."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ManifestCache:
    def __init__(self, cache_dir: str):
        self.cache_dir = cache_dir

    def path(self, pool: str, uuid: str) -> str:
        return os.path.join(self.cache_dir, "%s-%s.json" % (pool, uuid))

    def load(self, pool: str, uuid: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        """Return ``(info, warning)``; ``info`` is None when the file is missing or unusable."""
        path = self.path(pool, uuid)
        try:
            with open(path) as handle:
                info = json.load(handle)
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as exc:
            return None, "manifest cache %s is unreadable (%s); it is ignored and rewritten by the next import of the image" % (path, exc)
        manifest = info.get("manifest") if isinstance(info, dict) else None
        if not isinstance(manifest, dict) or manifest.get("uuid") != uuid:
            return None, "manifest cache %s does not hold the manifest of image %s; it is ignored" % (path, uuid)
        return info, None

    def save(self, pool: str, uuid: str, manifest: Dict[str, Any], source: Optional[str]) -> None:
        info: Dict[str, Any] = {"manifest": manifest, "zpool": pool}
        if source:
            info["source"] = source
        os.makedirs(self.cache_dir, exist_ok=True)
        atomic_write(self.path(pool, uuid), json.dumps(info, indent=2) + "\n")

    def remove(self, pool: str, uuid: str) -> bool:
        try:
            os.unlink(self.path(pool, uuid))
            return True
        except FileNotFoundError:
            return False
