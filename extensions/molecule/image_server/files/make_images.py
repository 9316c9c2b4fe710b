"""Write the scenario's test images into a repository directory.

Three images with fixed UUIDs and deterministic bytes: a full image "base",
an incremental image "child" whose origin is base, and a full image
"other". The files are random bytes, not ZFS streams: the server only
stores, indexes and serves them, and clients verify them by size and sha1.

    python3 make_images.py REPOSITORY
"""

import hashlib
import json
import os
import sys

OWNER = "930896af-bf8c-48d4-885c-6573a94b1853"
IMAGES = [
    # uuid, name, version, origin, size in bytes, published_at
    ("0a1cd3f0-4b0a-4c8e-9f42-3d7c2b6a1e01", "base", "1.0.0", None, 256 * 1024, "2024-01-01T00:00:00.000Z"),
    ("0a1cd3f0-4b0a-4c8e-9f42-3d7c2b6a1e02", "child", "1.0.0", "0a1cd3f0-4b0a-4c8e-9f42-3d7c2b6a1e01", 128 * 1024,
     "2024-02-01T00:00:00.000Z"),
    ("0a1cd3f0-4b0a-4c8e-9f42-3d7c2b6a1e03", "other", "2.0.0", None, 64 * 1024, "2024-03-01T00:00:00.000Z"),
]


def main(repository):
    for uuid, name, version, origin, size, published_at in IMAGES:
        data = hashlib.shake_128(uuid.encode()).digest(size)
        manifest = {
            "v": 2,
            "uuid": uuid,
            "owner": OWNER,
            "name": name,
            "version": version,
            "state": "active",
            "disabled": False,
            "public": True,
            "published_at": published_at,
            "type": "zone-dataset",
            "os": "smartos",
            "description": "smartos.images molecule test image %s" % name,
            "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": size, "compression": "none"}],
        }
        if origin:
            manifest["origin"] = origin
        directory = os.path.join(repository, "images", uuid)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "file"), "wb") as handle:
            handle.write(data)
        with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
