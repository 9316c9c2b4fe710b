#!/usr/bin/python
# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_source
short_description: Manage the image sources configured on a SmartOS host
version_added: 1.0.0
description:
  - Manages the ordered list of image sources (IMGAPI or DSAPI servers) in the C(imgadm) configuration file, which
    C(imgadm) and M(smartos.images.image) import from when a task gives no sources of its own.
  - With O(url), ensures one source is present or absent, like C(imgadm sources -a) and C(imgadm sources -d).
  - With O(sources), makes the configured list exactly that list, in that order.
  - Sources are compared as C(imgadm) compares them, by normalised URL and type. The URL is normalised by adding
    C(http://) when it has no scheme, and by dropping a trailing C(/) and the scheme's default port (C(:80) for
    http, C(:443) for https); the query, such as C(?channel=dev), is kept. So C(https://images.example.com:443/) and
    C(https://images.example.com) are the same source.
  - A source already in the file keeps its URL as written there. New sources are written as given.
  - Every other key of the file, and every other key of a kept source entry, is kept as it is.
author:
  - smartos.images developers (@smartos-images)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smartos.images.host_state.network
attributes:
  check_mode:
    support: full
    details:
      - New and changed sources are ping-checked in check mode too, so check mode reports a source that does not
        answer.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  url:
    description:
      - URL of one source to add, update or remove.
      - Mutually exclusive with O(sources).
    type: str
  type:
    description:
      - Protocol of the source given by O(url). When not given, V(imgapi).
      - The URL of a V(dsapi) source must end in C(/datasets).
      - Ignored with O(state=absent).
    type: str
    choices: [imgapi, dsapi]
  insecure:
    description:
      - V(true) turns TLS certificate verification off for the source given by O(url), V(false) keeps it on.
        When not given, V(false).
      - This collection honours the flag. SmartOS C(imgadm) reads it inverted; see the notes.
      - Ignored with O(state=absent).
    type: bool
  channel:
    description:
      - IMGAPI channel of the source given by O(url), such as C(dev) or C(experimental).
      - Ignored with O(state=absent).
    type: str
  state:
    description:
      - With O(url), V(present) adds the source at the end of the list when no source of the same normalised URL
        and type is configured, and otherwise updates its O(insecure) and O(channel) in place.
      - With O(url), V(absent) removes every source whose normalised URL matches, whatever its type.
      - O(sources) only takes V(present).
    type: str
    choices: [present, absent]
    default: present
  sources:
    description:
      - The whole list of sources, in order. Sources not listed are removed, and the configured sources are put in
        this order.
      - An empty list removes every source, so that nothing can be imported until a source is added.
      - A source listed twice is configured once. Listing it twice with a different O(sources[].insecure) or
        O(sources[].channel) is an error.
      - Mutually exclusive with O(url).
    type: list
    elements: dict
    suboptions:
      url:
        description: URL of the image server.
        type: str
        required: true
      type:
        description: Protocol of the server. The URL of a V(dsapi) source must end in C(/datasets).
        type: str
        choices: [imgapi, dsapi]
        default: imgapi
      insecure:
        description: V(true) turns TLS certificate verification off for this source.
        type: bool
        default: false
      channel:
        description: IMGAPI channel of this source.
        type: str
  ping:
    description:
      - Check that every source the task adds or changes answers before the file is written. An IMGAPI source must
        answer C(GET /ping) with a JSON object whose C(imgapi) key is true. A DSAPI source must answer C(GET) on its
        C(/datasets) URL with HTTP 200 and JSON.
      - When the check fails, the task fails with the URL and the answer, and the file is left unchanged.
      - V(false) configures sources without contacting them, like C(imgadm sources -f).
    type: bool
    default: true
  config_file:
    description:
      - Path of the C(imgadm) configuration file, JSON. Its directory is created when missing.
      - A missing file, or a file without a C(sources) key, means the one implicit source C(https://images.smartos.org)
        of type V(imgapi). The first change writes that source into the file, as C(imgadm) does, so adding a source
        keeps it and removing it writes an empty list.
      - Change it only for tests or hosts that are not SmartOS.
    type: path
    default: /var/imgadm/imgadm.conf
notes:
  - The file is replaced atomically, as JSON indented by two spaces. Only a task that changes the list writes it.
  - A file that is not valid JSON, or whose C(sources) is not a list, fails the task and is left unchanged.
  - SmartOS C(imgadm) reads the C(insecure) flag of a source inverted. It keeps TLS certificate verification on for a
    source whose C(insecure) key is C(true), and turns it off for a source whose C(insecure) key is C(false). So this
    module writes the C(insecure) key only when it is V(true), and C(imgadm) keeps verification on for every source
    it writes. To make C(imgadm) itself skip verification, set C(IMGADM_INSECURE=1) in its environment.
  - An C(insecure) key set to C(false) that is already in the file counts as V(false), and is left as it is unless the
    source is updated. C(imgadm) skips verification for such a source, so delete that key by hand.
  - Sources of type C(docker) in the file are kept, and removed only by O(state=absent) with their URL or when
    O(sources) does not list them.
seealso:
  - module: smartos.images.image
    description: Imports images from the sources this module configures, or from sources given in the task.
  - name: imgadm(8)
    description: The SmartOS image administration tool, whose C(imgadm sources) command edits the same file.
    link: https://smartos.org/man/8/imgadm
"""

EXAMPLES = r"""
- name: Add the team's image server after the configured sources
  smartos.images.image_source:
    url: https://images.example.com

- name: Add a DSAPI server without contacting it
  smartos.images.image_source:
    url: https://datasets.example.com/datasets
    type: dsapi
    ping: false

- name: Follow the experimental channel of the team's image server
  smartos.images.image_source:
    url: https://images.example.com
    channel: experimental

- name: Stop using the public image server
  smartos.images.image_source:
    url: https://images.smartos.org
    state: absent

- name: Use exactly these sources, in this order
  smartos.images.image_source:
    sources:
      - url: https://images.example.com
      - url: https://lab-images.example.com
        insecure: true
      - url: https://images.smartos.org
"""

RETURN = r"""
sources:
  description:
    - The configured sources after the task, or in check mode the sources the task would configure, in order.
    - Every source has the same four keys. The URL is as written in the file.
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: URL of the source.
      type: str
    type:
      description: Protocol of the source, C(imgapi), C(dsapi) or C(docker).
      type: str
    insecure:
      description: Whether TLS certificate verification is off for the source.
      type: bool
    channel:
      description: IMGAPI channel of the source, or null.
      type: str
  sample: [{"url": "https://images.example.com", "type": "imgapi", "insecure": false, "channel": null}]
actions:
  description: What was done, or in check mode what would be done, one sentence an action.
  returned: always
  type: list
  elements: str
  sample: ["Removed source https://images.smartos.org (imgapi)", "Added source https://images.example.com (imgapi)"]
"""

import json
import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.images.plugins.module_utils._cache import atomic_write
from ansible_collections.smartos.images.plugins.module_utils._common import (
    NETWORK_SPEC,
    SOURCE_SPEC,
    http_from_params,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import ConfigError, ImageError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._source_config import (
    SourceRequest,
    configured_entries,
    describe_entry,
    plan_sources,
)
from ansible_collections.smartos.images.plugins.module_utils._sources import Source, client_for, load_config


def build_request(params):
    if params["sources"] is not None:
        sources = [Source(url=entry["url"], type=entry["type"], insecure=entry["insecure"],
                          channel=entry["channel"] or None)
                   for entry in params["sources"]]
        return SourceRequest(state=params["state"], sources=sources)
    source = Source(url=params["url"], type=params["type"] or "imgapi", insecure=bool(params["insecure"]),
                    channel=params["channel"] or None)
    return SourceRequest(source=source, state=params["state"])


class ImageSourceModule:
    """Runs one task: decides, pings the new and changed sources, then writes unless in check mode."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.path = self.params["config_file"]

    def run(self):
        request = build_request(self.params)
        config = load_config(self.path)
        current = configured_entries(config.data)
        plan = plan_sources(current, request, where=self.path)

        if plan.to_check and self.params["ping"]:
            self.check_sources(plan.to_check)

        result = dict(
            changed=plan.changed,
            actions=plan.actions,
            sources=[describe_entry(entry) for entry in plan.entries],
            diff=dict(
                # The callback plugins render a diff side only when it is a
                # string or a mapping, so the list sits under one key.
                before=dict(sources=[describe_entry(entry) for entry in current]),
                after=dict(sources=[describe_entry(entry) for entry in plan.entries]),
                before_header=self.path,
                after_header=self.path,
            ),
        )
        if plan.changed and not self.module.check_mode:
            data = dict(config.data)
            data["sources"] = plan.entries
            self.write(data)
        return result

    def check_sources(self, sources):
        http = http_from_params(self.params)
        failures = []
        for source in sources:
            try:
                client_for(source, http).ping()
            except SourceError as exc:
                failures.append((source, exc))
        if failures:
            reasons = ". ".join("%s source %s failed the ping check: %s" % (source.type, source.url, exc)
                                for source, exc in failures)
            raise SourceError(
                "%s. %s was left unchanged; fix the URL or the server, or set ping=false to configure the source "
                "without the check" % (reasons, self.path),
                url=failures[0][0].url,
                status=failures[0][1].status,
            )

    def write(self, data):
        directory = os.path.dirname(self.path) or "."
        try:
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:
            mode = 0o644
        except OSError as exc:
            raise ConfigError("cannot read %s: %s" % (self.path, exc), path=self.path) from exc
        try:
            os.makedirs(directory, exist_ok=True)
            atomic_write(self.path, json.dumps(data, indent=2) + "\n", mode=mode)
        except OSError as exc:
            raise ConfigError("cannot write %s: %s; it was left unchanged" % (self.path, exc), path=self.path) from exc


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str"),
            type=dict(type="str", choices=["imgapi", "dsapi"]),
            insecure=dict(type="bool"),
            channel=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            sources=dict(type="list", elements="dict", options=SOURCE_SPEC),
            ping=dict(type="bool", default=True),
            config_file=dict(type="path", default="/var/imgadm/imgadm.conf"),
            **NETWORK_SPEC,
        ),
        mutually_exclusive=[("url", "sources")],
        required_one_of=[("url", "sources")],
        required_by={"type": "url", "insecure": "url", "channel": "url"},
        supports_check_mode=True,
    )
    try:
        result = ImageSourceModule(module).run()
    except ImageError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
