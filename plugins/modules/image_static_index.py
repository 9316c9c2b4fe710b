#!/usr/bin/python
# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_static_index
short_description: Write the index files that let a plain web server serve an image repository to imgadm
version_added: 1.0.0
description:
  - Writes, from the images of an image server repository, the JSON documents a web server without the image
    server application needs to serve the repository as a DSAPI source, which stock C(imgadm) accepts, and as a
    read-only IMGAPI source.
  - C(datasets.json) is the DSAPI listing, the v1 (DSAPI) manifests of the active images, newest first.
    C(datasets/<uuid>.json) is one image's v1 manifest. C(images.json) is the IMGAPI listing, the v2 manifests
    of the active images, oldest first.
  - Each v1 manifest's C(files[0].url) is the absolute URL C(<url>/datasets/<uuid>/<path>), where C(path) is
    C(files[0].path), C(<name>-<version>.zfs) or C(.zvol) with the compression's suffix. imgadm downloads the
    image file from that URL.
  - The v1 manifests are written so that imgadm's upgrade to v2 gives back the repository's manifest. C(owner)
    becomes C(creator_uuid), or the nil UUID for an image without an owner. C(v), C(public), C(state),
    C(disabled) and C(acl) are left out because the upgrade derives them again.
  - Idempotent. Each file is rewritten, by writing a new file and renaming it over the old one, only when its
    text changes. The manifest files of images no longer in the repository are removed.
author:
  - smartos.images developers (@smartos-images)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the repository and the index and reports the files that would be written or removed.
  diff_mode:
    support: partial
    details:
      - The diff lists the UUIDs of the images in the index before and after.
  platform:
    platforms: posix
options:
  repository:
    description:
      - Image server repository directory, with one C(images/<uuid>/) directory an image.
    type: path
    required: true
  url:
    description:
      - URL at which clients reach the web server that serves the repository, such as
        V(https://images.example.com), used in every C(files[0].url).
      - imgadm sends the path of C(files[0].url) to the source's own host, so the path must be right even where
        clients reach the server under another host name.
    type: str
    required: true
  dest:
    description:
      - Directory to write the index files into, created when missing.
      - Omitted means C(<repository>/index).
    type: path
notes:
  - Only images in state C(active) are listed. Images that are not public are listed like any other, because a
    static web server cannot authenticate clients.
  - Run the module again after every change to the repository; the web server serves the index as it was last
    written.
seealso:
  - module: smartos.images.image_mirror
    description: Copies images from another source into the repository.
  - name: The image server role
    description: The role C(smartos.images.image_server) with C(image_server_flavour=static) runs this module and
      configures nginx with the rewrite rules.
    link: https://github.com/smartos-images/smartos.images/blob/main/docs/server-role.md
"""

EXAMPLES = r"""
- name: Index the repository that nginx serves as images.example.com
  smartos.images.image_static_index:
    repository: /var/lib/smartos-images/repository
    url: https://images.example.com
"""

RETURN = r"""
dest:
  description: Directory of the index files.
  returned: always
  type: str
  sample: /var/lib/smartos-images/repository/index
images:
  description: UUIDs of the images in the index, oldest first.
  returned: always
  type: list
  elements: str
  sample: ["2f1dc911-6401-4fa4-8e9d-67ea2e39c271"]
written:
  description: Index files written (in check mode, that would be), relative to RV(dest).
  returned: always
  type: list
  elements: str
  sample: ["datasets/2f1dc911-6401-4fa4-8e9d-67ea2e39c271.json", "datasets.json", "images.json"]
removed:
  description: Manifest files of images no longer in the repository that were removed (in check mode, that would
    be), relative to RV(dest).
  returned: always
  type: list
  elements: str
"""

import json
import os
import urllib.parse

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._static_index import (
    IMAGES_LIST,
    index_files,
    update_index,
)

INDEX_DIR_NAME = "index"


def indexed_uuids(dest):
    """Return the UUIDs in the IMGAPI listing ``dest`` has now, or an empty list when it has none."""
    try:
        with open(os.path.join(dest, IMAGES_LIST), encoding="utf-8") as handle:
            return [manifest.get("uuid") for manifest in json.load(handle) if isinstance(manifest, dict)]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def check_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ImageError("url %r is not an http or https URL without query, such as https://images.example.com; "
                         "give the URL clients reach the web server at" % url)


def run(module):
    params = module.params
    check_url(params["url"])
    dest = params["dest"] or os.path.join(params["repository"], INDEX_DIR_NAME)
    if not os.path.isdir(params["repository"]):
        raise ImageError("repository %s is not a directory; create it, or give the repository's path"
                         % params["repository"])
    before = indexed_uuids(dest)
    files = index_files(params["repository"], params["url"], warn=module.warn)
    change = update_index(dest, files, check_mode=module.check_mode)
    after = [manifest["uuid"] for manifest in json.loads(files[IMAGES_LIST])]
    return dict(
        changed=change.changed,
        dest=dest,
        images=after,
        written=change.written,
        removed=change.removed,
        diff=dict(before=dict(dest=dest, images=before), after=dict(dest=dest, images=after)),
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository=dict(type="path", required=True),
            url=dict(type="str", required=True),
            dest=dict(type="path"),
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
