#!/usr/bin/python
# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_build
short_description: Build a SmartOS image from a ZFS dataset or a stopped VM
version_added: 1.0.0
description:
  - Creates an image, a manifest and a file, from a ZFS filesystem or volume, or from a stopped VM, the way SmartOS
    C(imgadm create) does, and writes it to a directory or publishes it into an image server repository.
  - The manifest inherits from the origin image the fields C(imgadm create) inherits, and follows its brand rules
    for a VM. It is validated before any ZFS command that changes something runs.
  - The dataset is left exactly as it was. The module sends a temporary snapshot, named
    C(@image-build-<random UUID>) and destroyed again on success and on every failure, and never renames an
    existing C(@final) snapshot or sets a property, unlike C(imgadm create).
  - The image file is written under a temporary name and takes its final name only after C(zfs send) and the
    compressor exited 0, so a failed build leaves no partial output.
  - Repeatable. A run whose inputs and dataset content match the build record of the previous build, and whose
    outputs still verify, changes nothing. See the notes for the exact rule.
author:
  - smartos.images developers (@smartos-images)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smartos.images.host_state
attributes:
  check_mode:
    support: full
    details:
      - Check mode resolves the source, validates the manifest and compares the build record, then reports the
        manifest (without C(files)), the output paths and whether a build would run, without snapshotting or
        writing anything.
      - A UUID the build would generate is shown, but the real run generates its own.
  diff_mode:
    support: partial
    details:
      - The diff shows the build record's summary (UUID, fingerprint, output paths, size and sha1 of the file)
        before and after, not the content of the image.
  platform:
    platforms: posix
options:
  dataset:
    description:
      - Name of the ZFS filesystem or volume to build the image from, such as V(zones/build).
      - Mutually exclusive with O(vm).
    type: str
  vm:
    description:
      - UUID of a stopped VM to build the image from, read with C(vmadm get), so only on SmartOS.
      - For the brands V(kvm) and V(bhyve) the image is the VM's first disk, C(disks[0].zfs_filesystem), and its
        origin C(disks[0].image_uuid). For other brands it is C(zfs_filesystem), with origin C(image_uuid).
      - A VM in any state other than C(stopped) fails the task; stop it first.
      - Mutually exclusive with O(dataset) and O(origin).
    type: str
  origin:
    description:
      - UUID of the origin image, installed in O(pool), for a O(dataset).
      - Omitted means the image the dataset is cloned from, when its C(origin) property is
        C(<pool>/<uuid>@final), and no origin otherwise.
      - The origin's manifest, read from the manifest cache in O(cache_dir), supplies the inherited manifest fields.
    type: str
  manifest:
    description:
      - Manifest fields of the image. C(name) and C(version) are required; any other field of a v2 manifest may be
        set, and overrides what is inherited or derived.
      - C(uuid) omitted means a random UUID, which the next builds of the same inputs keep (see the notes).
      - C(files) and C(origin) must not be set; the build fills them in.
      - Defaults set unless given are C(v=2), C(state=active), C(disabled=false) and C(published_at) (the time of
        the build).
      - Unless set, C(type), C(os), C(requirements), C(users), C(billing_tags), C(traits), C(generate_passwords),
        C(inherited_directories), C(nic_driver), C(disk_driver), C(cpu_type) and C(image_size) are copied from the
        origin image's manifest, except empty arrays, as C(imgadm create) copies them.
      - For a O(vm) of brand V(joyent) or V(joyent-minimal), C(requirements.min_platform) is set to the running
        platform from C(sysinfo) unless given. For brands V(bhyve), V(lx) and V(kvm), C(requirements.brand) is set
        to the brand unless the task's C(requirements) has a C(brand) key. For V(bhyve), the VM's C(bootrom) is
        copied to C(requirements.bootrom) unless given.
      - Without an origin image, C(type) and C(os) must be given. The manifest is checked with the rules of
        C(imgadm)'s minimal validation.
    type: dict
    required: true
  incremental:
    description:
      - V(true) builds an incremental image, sent with C(zfs send -i <pool>/<origin>@final), and sets the
        manifest's C(origin).
      - The dataset must be a clone of the origin image's C(@final) snapshot in O(pool).
    type: bool
    default: false
  compression:
    description:
      - Compression of the image file, with the host's C(gzip), C(bzip2) or C(xz).
    type: str
    choices: [none, gzip, bzip2, xz]
    default: none
  output_dir:
    description:
      - Directory to write the image to, created when missing. The files are named as C(imgadm create -o DIR)
        names them, C(<name slug>-<version slug>.imgmanifest) and C(.zfs) (or C(.zvol) for a C(zvol) image)
        plus C(.gz), C(.bz2) or C(.xz) for the compression. The build record is C(<prefix>.build.json).
      - The slug of a text drops the characters other than letters, digits, C(_), whitespace, C(.) and C(-),
        trims, lower-cases, and turns each run of whitespace and hyphens into one C(-).
      - Exactly one of O(output_dir) and O(repository) is required.
    type: path
  repository:
    description:
      - Image server repository directory to publish the image into, as C(images/<uuid>/manifest.json) and
        C(images/<uuid>/file), with the build record in C(images/<uuid>/build.json).
      - The image directory is written under a temporary name inside C(images/) and renamed into place, so a
        reader never sees half an image.
      - When a changed build gets a new UUID, the previous build of the same name and version is removed from
        the repository, unless another image there has it as origin.
      - An image already in the repository under the requested C(uuid) that this module did not build for the
        same name and version fails the task instead of being replaced.
    type: path
  force:
    description:
      - V(true) builds the image again even when the build record says nothing changed. The recorded UUID is kept
        when the inputs and the content are the same.
    type: bool
    default: false
notes:
  - "Idempotence rule: each build writes a build record beside its outputs with a fingerprint of its inputs
    (the derived manifest without generated values, O(compression), O(incremental), the origin, the dataset and
    the VM) and of the dataset's content. A run changes nothing when its fingerprint equals the record's, the
    manifest on disk equals the recorded one, and the image file has the recorded size and sha1. O(force=true)
    rebuilds anyway."
  - "The content fingerprint of a filesystem is a walk of its mounted tree that records each entry's relative
    path, type, permission bits, owner, group, size, modification and change times in nanoseconds, and symlink
    target, plus the dataset's C(guid). Child datasets mounted below it are not walked, as C(zfs send) does not
    send them. The walk runs before the snapshot, so a change during the build makes the next run build again."
  - A volume has no content fingerprint, so an image of a volume (a C(kvm) or C(bhyve) VM) is built on every run.
    A filesystem that is not mounted is built on every run too, with a warning.
  - Time stamps have a granularity (whole seconds on zfs-fuse), so a same-size write in the same second would not
    show. A build that finds an entry changed within the second before its walk, or with a time stamp in the
    future, walks the dataset again for up to 3 seconds until no entry is that recent. When one still is, the
    build warns, and the next run builds again instead of trusting that record.
  - A rebuild keeps the recorded UUID when the fingerprint is the same (outputs missing or altered, or
    O(force=true)). When the fingerprint changed, the rebuild gets a new random UUID, unless the manifest sets one.
  - Two tasks must not build the same name and version into the same O(output_dir) or O(repository) at once.
  - O(config_file), O(download_dir) and O(lock_dir) are not used by this module.
  - The module needs C(zfs), and C(gzip), C(bzip2) or C(xz) for a compressed image, on the host.
seealso:
  - module: smartos.images.image
    description: Installs the built image from its manifest and file, or from an image server.
  - name: imgadm(8)
    description: The SmartOS image administration tool, whose C(create) command this module follows.
    link: https://smartos.org/man/8/imgadm
"""

EXAMPLES = r"""
- name: Build a full image from a dataset
  smartos.images.image_build:
    dataset: zones/build/web
    manifest:
      name: web
      version: 1.2.0
      type: zone-dataset
      os: smartos
      description: Our web server
    compression: gzip
    output_dir: /var/tmp/images

- name: Build an incremental image of a stopped VM on top of the image it was created from
  smartos.images.image_build:
    vm: 5fd2c4a2-4d24-4f4d-9a80-1c1b7c2b9e10
    manifest:
      name: web
      version: 1.2.1
    incremental: true
    compression: xz
    output_dir: /var/tmp/images
  register: web_image

- name: Install the image just built
  smartos.images.image:
    manifest: "{{ web_image.manifest_path }}"
    file: "{{ web_image.file_path }}"

- name: Publish an image with a fixed UUID into an image server repository
  smartos.images.image_build:
    dataset: zones/build/base
    manifest:
      uuid: 0b2b1c7e-8c66-4c1e-9d8f-3c0e2f5a4b71
      name: base
      version: 2024.1.0
      type: zone-dataset
      os: smartos
    compression: gzip
    repository: /data/imgapi
"""

RETURN = r"""
manifest:
  description:
    - The image's manifest, with C(files), as written.
    - In check mode, when a build would run, the manifest it would write without C(files).
  returned: always
  type: dict
  sample: {"v": 2, "uuid": "0b2b1c7e-8c66-4c1e-9d8f-3c0e2f5a4b71", "name": "web", "version": "1.2.0",
           "type": "zone-dataset", "os": "smartos", "state": "active", "disabled": false,
           "published_at": "2024-05-01T10:00:00.000Z",
           "files": [{"sha1": "4a2b3c8e2f0d1e9a7b6c5d4e3f2a1b0c9d8e7f6a", "size": 1048576, "compression": "gzip"}]}
manifest_path:
  description: Path of the image's manifest file.
  returned: always
  type: str
  sample: /var/tmp/images/web-1.2.0.imgmanifest
file_path:
  description: Path of the image file.
  returned: always
  type: str
  sample: /var/tmp/images/web-1.2.0.zfs.gz
reason:
  description: Why the image was (or would be) built, or why not.
  returned: always
  type: str
  sample: the dataset or the inputs changed since the recorded build
actions:
  description: What was done, or in check mode what would be done, one sentence an action.
  returned: always
  type: list
  elements: str
  sample: ["Built image 0b2b1c7e-8c66-4c1e-9d8f-3c0e2f5a4b71 (web@1.2.0) from zones/build/web, sent in full with
           compression gzip: 1048576 bytes"]
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._builder import (
    BuildRequest,
    BuildZfs,
    ImageBuilder,
    record_summary,
)
from ansible_collections.smartos.images.plugins.module_utils._common import HOST_STATE_SPEC, host_platform
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe
from ansible_collections.smartos.images.plugins.module_utils._zfs import C_LOCALE


class ImageBuildModule:
    """Runs one task: plans the build, then builds unless in check mode or nothing changed."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        zfs_bin = module.get_bin_path("zfs", required=True)
        zpool_bin = module.get_bin_path("zpool", required=True)
        self.builder = ImageBuilder(
            zfs=BuildZfs(self.run_command, zfs_bin=zfs_bin, zpool_bin=zpool_bin),
            read_vm=self.read_vm,
            read_platform=lambda: host_platform(module),
            find_command=module.get_bin_path,
            warn=module.warn,
        )

    def run_command(self, argv):
        return self.module.run_command(list(argv), environ_update=C_LOCALE)

    def read_vm(self, vm_uuid):
        vmadm = self.module.get_bin_path("vmadm")
        if not vmadm:
            raise ImageError("vmadm is not installed on this host, so vm %s cannot be read; vm works on SmartOS only, "
                             "give the VM's dataset instead" % vm_uuid)
        rc, out, err = self.run_command([vmadm, "get", vm_uuid])
        if rc != 0:
            raise ImageError("vmadm get %s failed (exit %d): %s; check the VM UUID with vmadm list"
                             % (vm_uuid, rc, err.strip() or out.strip()))
        try:
            return json.loads(out)
        except ValueError as exc:
            raise ImageError("vmadm get %s printed no JSON (%s); check that vmadm works on this host"
                             % (vm_uuid, exc)) from exc

    def run(self):
        params = self.params
        request = BuildRequest(
            manifest=params["manifest"],
            dataset=params["dataset"],
            vm=params["vm"],
            origin=params["origin"],
            incremental=params["incremental"],
            compression=params["compression"],
            output_dir=params["output_dir"],
            repository=params["repository"],
            force=params["force"],
            pool=params["pool"],
            cache_dir=params["cache_dir"],
        )
        plan = self.builder.plan(request)
        before = record_summary(plan.record)
        if not plan.changed:
            actions, after = [], before
        elif self.module.check_mode:
            actions = ["Would build image %s from %s into %s and %s, because %s"
                       % (describe(plan.manifest), plan.source.dataset, plan.manifest_path, plan.file_path,
                          plan.reason)]
            after = dict(uuid=plan.uuid, fingerprint=plan.fingerprint, manifest_path=plan.manifest_path,
                         file_path=plan.file_path)
        else:
            actions = self.builder.apply(plan)
            files = plan.manifest["files"][0]
            after = dict(uuid=plan.uuid, fingerprint=plan.fingerprint, manifest_path=plan.manifest_path,
                         file_path=plan.file_path, size=files["size"], sha1=files["sha1"])
        return dict(
            changed=plan.changed,
            manifest=plan.manifest,
            manifest_path=plan.manifest_path,
            file_path=plan.file_path,
            reason=plan.reason,
            actions=actions,
            diff=dict(before=before, after=after),
        )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dataset=dict(type="str"),
            vm=dict(type="str"),
            origin=dict(type="str"),
            manifest=dict(type="dict", required=True),
            incremental=dict(type="bool", default=False),
            compression=dict(type="str", default="none", choices=["none", "gzip", "bzip2", "xz"]),
            output_dir=dict(type="path"),
            repository=dict(type="path"),
            force=dict(type="bool", default=False),
            **HOST_STATE_SPEC,
        ),
        mutually_exclusive=[("dataset", "vm"), ("vm", "origin"), ("output_dir", "repository")],
        required_one_of=[("dataset", "vm"), ("output_dir", "repository")],
        supports_check_mode=True,
    )
    try:
        result = ImageBuildModule(module).run()
    except ImageError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
