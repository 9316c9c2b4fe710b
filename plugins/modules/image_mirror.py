#!/usr/bin/python
# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_mirror
short_description: Copy images and their origin chains from an image source into an image server repository
version_added: 1.0.0
description:
  - Copies the requested images from an IMGAPI or DSAPI source into an image server repository, as
    C(images/<uuid>/manifest.json) and C(images/<uuid>/file), the layout the collection's image server serves.
  - Each image's origin chain is copied too, base first, down to the first origin the repository already has, so
    every incremental image in the repository can be imported from it.
  - Every file is verified while it downloads, its size against C(files[0].size) and its sha1 against
    C(files[0].sha1), or against the server's C(Content-MD5) when the manifest has no sha1. It is published only
    after the checks pass, by renaming a complete image directory into place, so the repository never serves a
    partial or corrupt image.
  - An interrupted download is resumed by the next run from the bytes already on disk.
  - Idempotent. An image that the repository already has, with a file of the manifest's size, is skipped and
    reports no change. Its manifest is not updated from the source.
author:
  - smartos.images developers (@smartos-images)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smartos.images.host_state.network
attributes:
  check_mode:
    support: full
    details:
      - Check mode asks the source for the images and their origins and reports what would be copied, with sizes,
        without downloading or writing anything.
  diff_mode:
    support: partial
    details:
      - The diff lists the images, as C(uuid (name@version)), that the repository gains.
  platform:
    platforms: posix
options:
  repository:
    description:
      - Image server repository directory to copy the images into. It is created when missing.
    type: path
    required: true
  source:
    description:
      - URL of the image source to copy from, such as V(https://images.smartos.org).
      - A DSAPI source URL ends in C(/datasets).
    type: str
    required: true
  source_type:
    description:
      - API of the source.
    type: str
    choices: [imgapi, dsapi]
    default: imgapi
  channel:
    description:
      - IMGAPI channel to list and fetch images from, for a source with channels.
    type: str
  insecure:
    description:
      - V(true) accepts a source's TLS certificate without verifying it.
    type: bool
    default: false
  images:
    description:
      - The images to copy. Each item is an image UUID, or a dictionary with one of the keys C(uuid) and
        C(filters).
      - C(filters) selects every image of the source's listing that matches all filters, which have the semantics
        of C(imgadm avail) (see M(smartos.images.image_facts)), such as V([name=base-64-lts]). Unless a filter
        names C(state), only active images match. A filter that matches no image fails the task.
      - C(newest), with C(filters), keeps only that many of the matching images, the most recently published.
    type: list
    elements: raw
    required: true
  download_dir:
    description:
      - Directory where files are downloaded to before they are published. It must be on the repository's file
        system, so that publishing renames the file instead of copying it.
      - Omitted means C(<repository>/.mirror-downloads).
    type: path
  owner:
    description:
      - User that owns the copied image directories and files, such as the image server's user.
      - Omitted means the user the module runs as.
    type: str
  group:
    description:
      - Group of the copied image directories and files.
      - Omitted means the primary group of the user the module runs as.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another run that copies the same image into the same repository.
    type: float
    default: 1800
notes:
  - Images are copied one after another; the task's time grows with the total size of the images to copy.
  - The files of an image the repository already has are checked by size only on later runs. Remove an image
    directory to have the next run copy it again.
seealso:
  - module: smartos.images.image_static_index
    description: Writes the static DSAPI index of a repository that nginx serves without the application.
  - module: smartos.images.image_facts
    description: Lists the images a source offers, with the same filters.
"""

EXAMPLES = r"""
- name: Mirror two base images by UUID from the public image server
  smartos.images.image_mirror:
    repository: /var/lib/smartos-images/repository
    source: https://images.smartos.org
    images:
      - 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
      - c2c31b00-1d60-11e9-9a77-ff9f06554b0f
    owner: smartos-images
    group: smartos-images

- name: Mirror the two newest base-64-lts images and every image of our team's DSAPI server
  smartos.images.image_mirror:
    repository: /var/lib/smartos-images/repository
    source: https://images.example.com/datasets
    source_type: dsapi
    images:
      - filters: [name=base-64-lts]
        newest: 2
      - filters: [owner=930896af-bf8c-48d4-885c-6573a94b1853]
"""

RETURN = r"""
images:
  description: Summaries of the requested images, in the order of O(images), a filter item adding every match.
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
    origin:
      description: UUID of the origin image, or null for a full image.
      type: str
    size:
      description: Size of the image file in bytes.
      type: int
  sample: [{"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base-64-lts", "version": "24.4.1",
            "origin": null, "size": 283452162}]
mirrored:
  description:
    - Summaries of the images copied (in check mode, that would be copied), base first, with the same keys as
      RV(images).
  returned: always
  type: list
  elements: dict
actions:
  description: What was done, or in check mode what would be done, one sentence an action.
  returned: always
  type: list
  elements: str
  sample: ["Copied image 2f1dc911-6401-4fa4-8e9d-67ea2e39c271 (base-64-lts@24.4.1), 283452162 bytes, from
           https://images.smartos.org"]
"""

import grp
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._common import NETWORK_SPEC, http_from_params
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe
from ansible_collections.smartos.images.plugins.module_utils._mirror import Mirror, parse_requests, summary
from ansible_collections.smartos.images.plugins.module_utils._sources import Source, client_for


def resolve_owner(name):
    if name is None:
        return None
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise ImageError("owner %s is not a user on this host; create the user first or give another owner" % name)


def resolve_group(name):
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ImageError("group %s is not a group on this host; create the group first or give another group" % name)


def run(module):
    params = module.params
    requests = parse_requests(params["images"])
    source = Source.from_config(dict(url=params["source"], type=params["source_type"], insecure=params["insecure"],
                                     channel=params["channel"]), "source")
    http = http_from_params(params)
    if params["lock_timeout"] <= 0:
        raise ImageError("lock_timeout is %s; give a number of seconds above 0" % params["lock_timeout"])
    mirror = Mirror(
        repository=params["repository"],
        client=client_for(source, http),
        http=http,
        download_dir=params["download_dir"],
        owner=resolve_owner(params["owner"]),
        group=resolve_group(params["group"]),
        lock_timeout=params["lock_timeout"],
        warn=module.warn,
    )
    plan = mirror.plan(requests)
    if module.check_mode:
        done, verb = plan.steps, "Would copy"
    else:
        done, verb = mirror.apply(plan), "Copied"
    touched = [describe(remote.manifest) for remote in done]
    return dict(
        changed=bool(done),
        images=[summary(manifest) for manifest in plan.selected],
        mirrored=[summary(remote.manifest) for remote in done],
        actions=["%s image %s, %d bytes, from %s" % (verb, describe(remote.manifest), summary(remote.manifest)["size"],
                                                     source.url)
                 for remote in done],
        diff=dict(before=dict(repository=params["repository"], images=[]),
                  after=dict(repository=params["repository"], images=touched)),
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository=dict(type="path", required=True),
            source=dict(type="str", required=True),
            source_type=dict(type="str", default="imgapi", choices=["imgapi", "dsapi"]),
            channel=dict(type="str"),
            insecure=dict(type="bool", default=False),
            images=dict(type="list", elements="raw", required=True),
            download_dir=dict(type="path"),
            owner=dict(type="str"),
            group=dict(type="str"),
            lock_timeout=dict(type="float", default=1800.0),
            **NETWORK_SPEC,
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except ImageError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
