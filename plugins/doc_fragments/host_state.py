# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options every module that reads or changes a host's images shares.
    DOCUMENTATION = r"""
options:
  pool:
    description:
      - The ZFS pool that holds the images.
    type: str
    default: zones
  config_file:
    description:
      - Path of the C(imgadm) configuration file that lists the sources.
      - Change it only for tests or hosts that are not SmartOS.
    type: path
    default: /var/imgadm/imgadm.conf
  cache_dir:
    description:
      - Directory of the manifest cache, one C(<pool>-<uuid>.json) file an image, shared with C(imgadm).
    type: path
    default: /var/imgadm/images
  download_dir:
    description:
      - Directory where image files are downloaded to before they are received.
    type: path
    default: /var/tmp/.imgadm-downloads
  lock_dir:
    description:
      - Directory of the per-image import lock files, the same locks C(imgadm) takes.
    type: path
    default: /var/run
"""

    NETWORK = r"""
options:
  connect_timeout:
    description:
      - Seconds to wait for a connection to a source.
    type: float
    default: 15
  read_timeout:
    description:
      - Seconds to wait for the next bytes of an answer from a source before the read fails.
      - A stalled download fails after this time, then is retried.
    type: float
    default: 60
  retries:
    description:
      - How many times a failed request or an interrupted download is retried, with exponential backoff
        starting at one second. Downloads resume where they stopped when the server supports C(Range).
    type: int
    default: 3
"""

    # The task's own sources, for modules that read images from sources.
    SOURCES = r"""
options:
  sources:
    description:
      - Sources to read images from for this task, in order, instead of the ones configured on the host.
    type: list
    elements: dict
    suboptions:
      url:
        description: URL of the image server.
        type: str
        required: true
      type:
        description: Protocol of the server.
        type: str
        choices: [imgapi, dsapi]
        default: imgapi
      insecure:
        description: V(true) turns TLS certificate verification off for this source.
        type: bool
        default: false
      channel:
        description: IMGAPI channel to read images from.
        type: str
"""
