#!/usr/bin/python
# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_facts
short_description: Gather facts about the SmartOS images installed on a host and available from its sources
version_added: 1.0.0
description:
  - Sets the fact C(smartos_images) to the images installed on the host's ZFS pools, as C(imgadm list -j) lists
    them, with their manifests from the manifest cache, their pool, source and clones.
  - With O(available=true), also sets C(smartos_images_available) to the images the sources offer, as
    C(imgadm avail) lists them, and C(smartos_images_source_errors) to the sources that failed.
  - Decides which datasets are images by the rules of C(imgadm list). A dataset is an image when its name is
    C(<pool>/<uuid>), it is not a zone root, it is not a VM cloned from an image's C(@final) snapshot, and its
    C(imgadm:ignore) property is not V(true) or V(yes). Unlike C(imgadm), pools whose names contain digits are
    included.
  - Runs one C(zfs list) for all pools and reads one manifest cache file an image, so the time it takes grows
    little with the number of images.
author:
  - smartos.images developers (@smartos-images)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
  - smartos.images.host_state.network
  - smartos.images.host_state.sources
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so check mode gathers the same facts.
  diff_mode:
    support: N/A
  facts:
    support: full
  platform:
    platforms: posix
options:
  pools:
    description:
      - Names of the ZFS pools whose images are listed.
      - Omitted means every pool of the host.
      - A pool that does not exist fails the task.
    type: list
    elements: str
  filters:
    description:
      - Only images matching every filter are listed, in both facts. The filters have the semantics of
        C(imgadm list) and C(imgadm avail).
      - A list of C(field=value) strings, or a dictionary of field to value.
      - V(field=true) and V(field=false) match that boolean. V(field=~text) matches a string containing C(text) or a
        list with an element equal to C(text). Any other value matches when the field, as a string, equals it.
      - Fields may be dotted, as in V(tags.role=os) or V(requirements.brand=bhyve). An image without the field is
        not listed.
      - Besides manifest fields, C(pub) and C(published_date) (the date of C(published_at)), C(published)
        (C(published_at) without milliseconds), C(size) (the image file's size) and C(source) can be filtered on,
        and for installed images C(zpool) and C(clones), the number of clones.
    type: raw
  available:
    description:
      - V(true) also lists the images available from the sources, every page of every source.
    type: bool
    default: false
  config_file:
    description:
      - Path of the C(imgadm) configuration file that lists the sources, read with O(available=true) when
        O(sources) is not given.
      - Change it only for tests or hosts that are not SmartOS.
    type: path
    default: /var/imgadm/imgadm.conf
  cache_dir:
    description:
      - Directory of the manifest cache, one C(<pool>-<uuid>.json) file an image, shared with C(imgadm).
    type: path
    default: /var/imgadm/images
notes:
  - With O(available=true), an image that several sources list is named with the first of them, in the order of
    O(sources) or of the configuration, as its source.
  - An installed image without a manifest cache file is listed with a manifest holding only its C(uuid), as
    C(imgadm list) does. A cache file that cannot be read or parsed is reported as a warning, and the image is
    listed the same way.
  - C(zoneadm list -pc) is run where C(zoneadm) exists (SmartOS) to tell zone roots from images. Elsewhere no
    dataset counts as a zone root.
  - C(zfs list) is run with C(-p) where the platform's C(zfs) accepts it, and without it elsewhere (zfs-fuse).
seealso:
  - module: smartos.images.image
  - name: imgadm(8)
    description: The SmartOS image administration tool whose C(list) and C(avail) commands this module follows.
    link: https://smartos.org/man/8/imgadm
"""

EXAMPLES = r"""
- name: Gather the installed images
  smartos.images.image_facts:

- name: Show the name and version of every installed image
  ansible.builtin.debug:
    msg: "{{ ansible_facts.smartos_images | map(attribute='manifest') | map(attribute='name', default='?') }}"

- name: Gather the installed bhyve images of pool zones and the ones the team's server offers
  smartos.images.image_facts:
    pools:
      - zones
    filters:
      requirements.brand: bhyve
    available: true
    sources:
      - url: https://images.example.com

- name: Fail when a source could not be listed
  ansible.builtin.assert:
    that: ansible_facts.smartos_images_source_errors | length == 0
    fail_msg: "{{ ansible_facts.smartos_images_source_errors }}"

- name: List the installed images no VM or other image uses
  ansible.builtin.debug:
    msg: "{{ ansible_facts.smartos_images | selectattr('clone_count', 'equalto', 0) | map(attribute='manifest.uuid') }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts about the images of the host.
  returned: always
  type: dict
  contains:
    smartos_images:
      description:
        - The installed images of the pools of O(pools), or of every pool, that match O(filters).
        - Sorted by C(published_at), then name, then UUID and pool. Images without C(published_at) come first.
      returned: always
      type: list
      elements: dict
      contains:
        manifest:
          description:
            - The image manifest from the manifest cache.
            - Only C(uuid) is known when the image has no usable cache file.
          type: dict
          sample: {"uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base-64-lts", "version": "24.4.1"}
        zpool:
          description: The pool that holds the image's dataset C(<zpool>/<uuid>).
          type: str
          sample: zones
        source:
          description:
            - URL of the source the image was imported from, as the manifest cache records it.
            - V(null) for an image installed from a file or without a cache file.
          type: str
          sample: https://images.smartos.org
        clones:
          description:
            - Names of the datasets cloned from a snapshot of the image, sorted. These are VMs, KVM and bhyve disks,
              and child images.
          type: list
          elements: str
          sample: ["zones/7970c690-1738-4e58-a04f-8ce4ea8ebfca", "zones/7970c690-1738-4e58-a04f-8ce4ea8ebfca-disk0"]
        clone_count:
          description: The number of entries in RV(ansible_facts.smartos_images[].clones).
          type: int
          sample: 2
    smartos_images_available:
      description:
        - The images the sources offer that match O(filters), one entry an image UUID, sorted as
          RV(ansible_facts.smartos_images).
        - Each source's default listing is used, which for IMGAPI servers holds the active images.
      returned: when O(available=true)
      type: list
      elements: dict
      contains:
        manifest:
          description: The image manifest as the source lists it, upgraded to version 2.
          type: dict
        source:
          description: URL of the first source, in configuration order, that lists the image.
          type: str
          sample: https://images.smartos.org
    smartos_images_source_errors:
      description:
        - The sources whose images could not be listed, in configuration order. Their images are missing from
          RV(ansible_facts.smartos_images_available); the other sources' images are there.
        - Empty when every source was listed.
      returned: when O(available=true)
      type: list
      elements: dict
      contains:
        url:
          description: URL of the source.
          type: str
          sample: https://images.example.com
        message:
          description: What failed.
          type: str
          sample: "https://images.example.com/images?limit=1000: HTTP 503 Service Unavailable"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._available import list_available
from ansible_collections.smartos.images.plugins.module_utils._cache import ManifestCache
from ansible_collections.smartos.images.plugins.module_utils._common import (
    HOST_STATE_SPEC,
    NETWORK_SPEC,
    SOURCE_SPEC,
    http_from_params,
    sources_from_params,
    zfs_for_module,
    zone_paths_for_module,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._filters import parse_filters
from ansible_collections.smartos.images.plugins.module_utils._installed import (
    InstalledImageLister,
    check_pool_names,
)


def filters_from_params(value):
    """Parse the filters option, a list of ``field=value`` strings or a dictionary."""
    if value is None:
        return []
    if isinstance(value, (list, dict)):
        return parse_filters(value)
    raise ImageError("filters is a %s (%r); give a list of field=value strings, such as [name=base-64-lts], "
                     "or a dictionary such as {name: base-64-lts}" % (type(value).__name__, value))


class ImageFactsModule:
    """Gathers the facts of one task; nothing on the host changes."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self):
        filters = filters_from_params(self.params["filters"])
        pools = None if self.params["pools"] is None else check_pool_names(self.params["pools"])
        lister = InstalledImageLister(
            zfs=zfs_for_module(self.module),
            cache=ManifestCache(self.params["cache_dir"]),
            zone_paths=zone_paths_for_module(self.module),
            warn=self.module.warn,
        )
        facts = dict(smartos_images=lister.list(pools, filters))
        if self.params["available"]:
            available, source_errors = list_available(
                sources_from_params(self.params), http_from_params(self.params), filters, warn=self.module.warn,
            )
            facts["smartos_images_available"] = available
            facts["smartos_images_source_errors"] = source_errors
        return dict(changed=False, ansible_facts=facts)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pools=dict(type="list", elements="str"),
            filters=dict(type="raw"),
            available=dict(type="bool", default=False),
            sources=dict(type="list", elements="dict", options=SOURCE_SPEC),
            config_file=HOST_STATE_SPEC["config_file"],
            cache_dir=HOST_STATE_SPEC["cache_dir"],
            **NETWORK_SPEC,
        ),
        supports_check_mode=True,
    )
    try:
        result = ImageFactsModule(module).run()
    except ImageError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
