"""Build the scenario's test images from real ZFS datasets into a repository.

Four images with fixed UUIDs, laid out as the image server's repository
(``<REPOSITORY>/images/<uuid>/manifest.json`` and ``file``):

- fleet-base 1.0.0, a full stream;
- fleet-child 1.0.0, an incremental stream whose origin is fleet-base;
- fleet-tools 1.0.0 and 2.0.0, full streams, so a request by name has an
  older version to pass over.

The datasets are made on POOL, which must exist and have no datasets of
these names. The repository appears only once every image is built, so a
failed run leaves no partial repository behind.

    python build_images.py POOL REPOSITORY
"""

import json
import os
import shutil
import sys

# tests/support is four directories up: extensions/molecule/fleet/files.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, ROOT)

from tests.support import imagebuilder  # noqa: E402

BASE_UUID = "6d7e4a52-3f1c-4b8e-9a10-2c5d8e7f0a01"
CHILD_UUID = "6d7e4a52-3f1c-4b8e-9a10-2c5d8e7f0a02"
TOOLS_OLD_UUID = "6d7e4a52-3f1c-4b8e-9a10-2c5d8e7f0a03"
TOOLS_NEW_UUID = "6d7e4a52-3f1c-4b8e-9a10-2c5d8e7f0a04"


def build(pool, out_dir):
    """Build the four images into ``out_dir`` and return their ``BuiltImage``s."""
    base_dataset = imagebuilder.make_dataset(f"{pool}/fleet-base", {
        "etc/motd": b"fleet-base 1.0.0\n",
        "opt/base.bin": imagebuilder.random_payload(256 * 1024, "fleet-base"),
    })
    base = imagebuilder.build_image(
        dataset=base_dataset, out_dir=out_dir, name="fleet-base", version="1.0.0", uuid=BASE_UUID,
        extra={"published_at": "2025-01-01T00:00:00.000Z"})

    child_dataset = imagebuilder.make_dataset(f"{pool}/fleet-child", {
        "etc/motd": b"fleet-child 1.0.0\n",
        "opt/child.bin": imagebuilder.random_payload(128 * 1024, "fleet-child"),
    }, clone_of=base_dataset)
    child = imagebuilder.build_image(
        dataset=child_dataset, out_dir=out_dir, name="fleet-child", version="1.0.0", uuid=CHILD_UUID,
        origin=base, extra={"published_at": "2025-02-01T00:00:00.000Z"})

    tools = []
    for version, image_uuid, published_at in [("1.0.0", TOOLS_OLD_UUID, "2025-03-01T00:00:00.000Z"),
                                              ("2.0.0", TOOLS_NEW_UUID, "2025-04-01T00:00:00.000Z")]:
        dataset = imagebuilder.make_dataset(f"{pool}/fleet-tools-{version.replace('.', '-')}", {
            "etc/motd": f"fleet-tools {version}\n".encode(),
            "opt/tools.bin": imagebuilder.random_payload(64 * 1024, f"fleet-tools-{version}"),
        })
        tools.append(imagebuilder.build_image(
            dataset=dataset, out_dir=out_dir, name="fleet-tools", version=version, uuid=image_uuid,
            compression="xz", extra={"published_at": published_at}))
    return [base, child, *tools]


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: build_images.py POOL REPOSITORY")
    pool, repository = argv
    staging = os.path.join(repository, ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    built = build(pool, os.path.join(staging, "built"))

    for image in built:
        image_dir = os.path.join(staging, "images", image.uuid)
        os.makedirs(image_dir)
        os.rename(image.file_path, os.path.join(image_dir, "file"))
        with open(os.path.join(image_dir, "manifest.json"), "w", encoding="utf-8") as handle:
            json.dump(image.manifest, handle, indent=2)
            handle.write("\n")

    os.rename(os.path.join(staging, "images"), os.path.join(repository, "images"))
    shutil.rmtree(staging)


if __name__ == "__main__":
    main(sys.argv[1:])
