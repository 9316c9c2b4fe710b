#!/usr/bin/python
# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Ensure SmartOS images are present on or absent from a ZFS pool
version_added: 1.0.0
description:
  - Imports images from image sources (IMGAPI or DSAPI) into a ZFS pool the way SmartOS C(imgadm import) does,
    leaving the same on-disk state, so C(imgadm) and C(vmadm) keep working on the host.
  - Imports the whole origin chain of an incremental image, base first.
  - Every image file is verified (size, and sha1 or C(Content-MD5)) while it streams into C(zfs receive). The
    received dataset only takes its final name after the checks pass, so a failed import leaves no partial
    dataset and no manifest cache entry behind.
  - Sources that are unreachable or fail are skipped when a later source has the image.
  - Removes images with O(state=absent), unless VMs or other images are cloned from them.
author:
  - smartos.images developers (@smartos-images)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smartos.images.host_state
  - smartos.images.host_state.network
  - smartos.images.host_state.sources
attributes:
  check_mode:
    support: full
    details:
      - Sources are queried, so check mode reports exactly which images would be imported, with their sizes,
        without downloading anything.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  state:
    description:
      - V(present) imports the image and its origins when missing.
      - V(absent) destroys the image dataset and its manifest cache entry.
    type: str
    choices: [present, absent]
    default: present
  uuid:
    description:
      - UUID of the image.
      - Mutually exclusive with O(name), O(images) and O(manifest).
    type: str
  name:
    description:
      - Name of the image, as in its manifest.
      - With O(version), that exact version. Without it, the newest active version the first source with
        such an image offers, by C(published_at).
      - With O(state=absent), the installed image of that name (and version) is removed.
    type: str
  version:
    description:
      - Version of the image named by O(name).
    type: str
  images:
    description:
      - Several images in one task, each given by O(images[].uuid) or by O(images[].name) and
        O(images[].version). They are imported one after the other, in the order given.
    type: list
    elements: dict
    suboptions:
      uuid:
        description: UUID of the image.
        type: str
      name:
        description: Name of the image.
        type: str
      version:
        description: Version of the image named by O(images[].name); omitted means the newest active one.
        type: str
  manifest:
    description:
      - Path on the managed host of a manifest file (v2, or v1 which is upgraded) to install from, with O(file),
        instead of a source, like C(imgadm install).
      - The manifest is validated and the file's size and sha1 are checked against it before any ZFS change.
      - When the image has an origin that is not installed, the origin chain is imported from the sources.
    type: path
  file:
    description:
      - Path on the managed host of the image file that O(manifest) describes.
    type: path
  exclusive:
    description:
      - With O(state=present), V(true) also removes every other image of O(pool) that nothing depends on, so the
        pool keeps only the requested images and what they need.
      - The origin chains of the requested images stay, including an installed origin of an image that is only
        about to be imported.
      - An image stays when any dataset is cloned from it (a VM, a VM's disk, or an image built on it), or when
        it has no manifest cache entry or no C(@final) snapshot, the marks of an imported image. RV(kept) lists
        each such image with the reason.
      - Images are removed after the imports, each after the images cloned from it. Just before each removal
        its clones are checked again, so a VM created from it in the meantime stops the task with an error.
      - Check mode reports the removals in RV(removed) and RV(actions).
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for the import lock of an image that another process (this module or C(imgadm)) is
        importing.
    type: float
    default: 1800
  receive_timeout:
    description:
      - Seconds that C(zfs receive) may take to read the data of one downloaded piece of the image file (up to
        1 MiB, several times that once decompressed), or to exit after the last byte, before the import is
        stopped as hung and fails. The C(-partial) dataset is then destroyed, and the bytes downloaded so far are
        kept, so the next run resumes the download.
      - Destroying the C(-partial) dataset needs ZFS to answer, so on a ZFS that hangs for good that step can
        hang too.
      - A stalled server is covered by O(read_timeout) instead.
    type: float
    default: 300
notes:
  - Image files are downloaded to O(download_dir) and removed once the image is installed. A download that was
    interrupted is resumed by the next run; a complete file that fails to install is kept and reused after its
    checksum is verified again.
  - Where C(sysinfo) exists (SmartOS), C(requirements.min_platform) and C(requirements.max_platform) are checked
    as C(imgadm) checks them, before anything is downloaded. Elsewhere they are not checked.
  - The module needs C(zfs) and C(zpool) on the host. Image files are decompressed by Python's standard library
    (C(zlib), C(bz2), C(lzma)), so no decompression tools have to be installed.
seealso:
  - name: imgadm(8)
    description: The SmartOS image administration tool whose on-disk state this module keeps.
    link: https://smartos.org/man/8/imgadm
"""

EXAMPLES = r"""
- name: Ensure an image is present
  smartos.images.image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271

- name: Ensure the newest base-64-lts is present, from the team's image server only
  smartos.images.image:
    name: base-64-lts
    sources:
      - url: https://images.example.com

- name: Ensure several images in one task
  smartos.images.image:
    images:
      - uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
      - name: minimal-64-lts
        version: 24.4.1

- name: Install an image from files already on the host
  smartos.images.image:
    manifest: /var/tmp/custom-1.0.0.imgmanifest
    file: /var/tmp/custom-1.0.0.zfs.gz

- name: Remove an image no VM uses any more
  smartos.images.image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    state: absent
"""

RETURN = r"""
image:
  description:
    - Manifest of the requested image, from its source, its local manifest file, or the manifest cache.
    - Only C(uuid) is known for an installed image without a cache entry.
  returned: when one image is requested and it is, or would be, present or was removed
  type: dict
  sample: {"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base-64-lts", "version": "24.4.1"}
images:
  description: Manifests of the requested images, in the order of O(images).
  returned: when O(images) is given
  type: list
  elements: dict
imported:
  description: UUIDs of the images imported (or, in check mode, that would be), base first.
  returned: always
  type: list
  elements: str
  sample: ["c2c31b00-1d60-11e9-9a77-ff9f06554b0f", "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"]
import_plan:
  description: The images to import, base first, with where each comes from and its file size in bytes.
  returned: always
  type: list
  elements: dict
  contains:
    uuid:
      description: Image UUID.
      type: str
    name:
      description: Image name.
      type: str
    version:
      description: Image version.
      type: str
    size:
      description: Size in bytes of the image file to download.
      type: int
    source:
      description: URL of the source, or path of the local file.
      type: str
removed:
  description:
    - UUIDs of the images removed (or, in check mode, that would be), by O(state=absent) or by O(exclusive).
  returned: always
  type: list
  elements: str
kept:
  description: The images other than the requested ones that O(exclusive=true) keeps, each with the reason.
  returned: when O(exclusive=true)
  type: list
  elements: dict
  contains:
    uuid:
      description: Image UUID.
      type: str
    reason:
      description: Why the image stays.
      type: str
  sample: [{"uuid": "c2c31b00-1d60-11e9-9a77-ff9f06554b0f", "reason": "datasets are cloned from it: zones/web-1"}]
actions:
  description: What was done, or in check mode what would be done, one sentence an action.
  returned: always
  type: list
  elements: str
  sample: ["Imported image 2f1dc911-6401-4fa4-8e9d-67ea2e39c271 (base-64-lts@24.4.1) from https://images.example.com"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._common import (
    HOST_STATE_SPEC,
    host_platform,
    NETWORK_SPEC,
    SOURCE_SPEC,
    http_from_params,
    paths_from_params,
    sources_from_params,
    zfs_for_module,
    zone_paths_for_module,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._images import ImageManager, ImageRequest
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe, is_uuid


def build_requests(params):
    if params["images"]:
        entries = params["images"]
    else:
        entries = [dict(uuid=params["uuid"], name=params["name"], version=params["version"])]
    if params["manifest"] and params["state"] == "absent":
        raise ImageError("manifest and file only apply to state=present; give the uuid to remove the image")
    if params["exclusive"] and params["state"] == "absent":
        raise ImageError("exclusive only applies to state=present; remove it, or list the images to keep with "
                         "state=present")
    requests = []
    for index, entry in enumerate(entries):
        where = "images[%d]" % index if params["images"] else "the task"
        if entry.get("uuid") and entry.get("name"):
            raise ImageError("%s gives both uuid and name; give one of them" % where)
        if entry.get("uuid") and not is_uuid(entry["uuid"]):
            raise ImageError("%s: uuid %r is not a lower-case UUID such as 2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
                             % (where, entry["uuid"]))
        if entry.get("version") and not entry.get("name"):
            raise ImageError("%s gives a version without a name; add the name" % where)
        requests.append(ImageRequest(uuid=entry.get("uuid"), name=entry.get("name"), version=entry.get("version"),
                                     manifest_path=params["manifest"], file_path=params["file"]))
    if not any(r.uuid or r.name or r.manifest_path for r in requests):
        raise ImageError("no image given; set uuid, name, images, or manifest and file")
    return requests


class ImageModule:
    """Runs one task: decides, then acts unless in check mode."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = dict(changed=False, actions=[], imported=[], import_plan=[], removed=[])
        if self.params["receive_timeout"] <= 0:
            raise ImageError("receive_timeout is %s; give a number of seconds above 0" % self.params["receive_timeout"])
        self.manager = ImageManager(
            zfs=zfs_for_module(module),
            pool=self.params["pool"],
            paths=paths_from_params(self.params),
            http=http_from_params(self.params),
            sources=sources_from_params(self.params) if self.params["state"] == "present" else [],
            lock_timeout=self.params["lock_timeout"],
            receive_timeout=self.params["receive_timeout"],
            warn=module.warn,
            platform=host_platform(module) if self.params["state"] == "present" else None,
        )

    def run(self):
        requests = build_requests(self.params)
        if self.params["state"] == "present":
            manifests = self.ensure_present(requests)
        else:
            manifests = self.ensure_absent(requests)
        if self.params["images"]:
            self.result["images"] = manifests
        elif manifests[0] is not None:
            self.result["image"] = manifests[0]
        return self.result

    def ensure_present(self, requests):
        plans = [self.manager.plan_present(request) for request in requests]
        steps, seen = [], set()
        for plan in plans:
            for step in plan.steps:
                if step.uuid not in seen:
                    seen.add(step.uuid)
                    steps.append(step)
        exclusive = None
        if self.params["exclusive"]:
            keep = seen | {plan.manifest["uuid"] for plan in plans}
            known = [plan.manifest for plan in plans] + [step.manifest for step in steps]
            origins = {manifest["uuid"]: manifest.get("origin") for manifest in known}
            exclusive = self.manager.plan_exclusive(keep, zone_paths_for_module(self.module), origins)
            self.result["kept"] = exclusive.kept
        doomed = exclusive.remove if exclusive else []
        self.result["import_plan"] = [step.summary() for step in steps]
        self.result["changed"] = bool(steps or doomed)
        self.set_diff(before=[entry["manifest"] for entry in doomed], after=[step.manifest for step in steps])
        if self.module.check_mode:
            done, verb = steps, "Would import"
            removed = [entry["manifest"]["uuid"] for entry in doomed]
        else:
            imported = set(self.manager.apply_present(steps))
            done, verb = [step for step in steps if step.uuid in imported], "Imported"
            removed = self.manager.apply_exclusive(exclusive) if exclusive else []
        self.result["imported"] = [step.uuid for step in done]
        self.result["removed"] = removed
        self.result["changed"] = bool(done or removed)
        self.result["actions"] = ["%s image %s from %s" % (verb, describe(step.manifest), step.source_url or step.file_path)
                                  for step in done]
        self.result["actions"] += ["%s image %s, which was not requested" % (
            "Would remove" if self.module.check_mode else "Removed", describe(entry["manifest"]))
            for entry in doomed if entry["manifest"]["uuid"] in removed]
        return [plan.manifest for plan in plans]

    def ensure_absent(self, requests):
        plans = [self.manager.plan_absent(request) for request in requests]
        doomed = [plan for plan in plans if plan.uuid]
        self.result["removed"] = [plan.uuid for plan in doomed]
        self.result["changed"] = bool(doomed)
        self.set_diff(before=[plan.manifest for plan in doomed], after=[])
        verb = "Would remove" if self.module.check_mode else "Removed"
        self.result["actions"] = ["%s image %s" % (verb, describe(plan.manifest)) for plan in doomed]
        if not self.module.check_mode:
            for plan in doomed:
                self.manager.apply_absent(plan)
        return [plan.manifest for plan in plans]

    def set_diff(self, before, after):
        # The pool's images that the task removes are on the before side only,
        # those it imports on the after side only, as "uuid (name@version)".
        self.result["diff"] = dict(
            before=dict(pool=self.params["pool"], images=[describe(m) for m in before]),
            after=dict(pool=self.params["pool"], images=[describe(m) for m in after]),
        )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            uuid=dict(type="str"),
            name=dict(type="str"),
            version=dict(type="str"),
            images=dict(type="list", elements="dict", options=dict(
                uuid=dict(type="str"),
                name=dict(type="str"),
                version=dict(type="str"),
            )),
            manifest=dict(type="path"),
            file=dict(type="path"),
            sources=dict(type="list", elements="dict", options=SOURCE_SPEC),
            lock_timeout=dict(type="float", default=1800.0),
            receive_timeout=dict(type="float", default=300.0),
            exclusive=dict(type="bool", default=False),
            **HOST_STATE_SPEC,
            **NETWORK_SPEC,
        ),
        mutually_exclusive=[("uuid", "name", "images"), ("images", "manifest"), ("name", "manifest")],
        required_one_of=[("uuid", "name", "images", "manifest")],
        required_together=[("manifest", "file")],
        required_by={"version": "name"},
        supports_check_mode=True,
    )
    try:
        result = ImageModule(module).run()
    except ImageError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
