# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``requirements.min_platform`` and ``max_platform`` checks of imgadm.

A platform is the pair (``SDC Version``, ``Live Image``) that SmartOS's
``sysinfo`` reports, for example ("7.0", "20240104T000814Z").  Both values
are compared as strings, as imgadm compares them.
"""

from __future__ import annotations

import json
from typing import Any, Dict, NamedTuple, Optional

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError

DEFAULT_SDC_VERSION = "6.5"


class Platform(NamedTuple):
    version: str
    stamp: str


def parse_sysinfo(text: str) -> Platform:
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise ImageError("sysinfo printed no JSON (%s); check that sysinfo works on this host" % exc) from exc
    return Platform(str(info.get("SDC Version") or DEFAULT_SDC_VERSION), str(info.get("Live Image") or ""))


def platform_problem(manifest: Dict[str, Any], platform: Platform) -> Optional[str]:
    """Return why ``platform`` does not satisfy the manifest's platform requirements, or None."""
    requirements = manifest.get("requirements") or {}
    minimum = requirements.get("min_platform")
    if isinstance(minimum, dict) and minimum:
        if platform.version in minimum:
            if platform.stamp < str(minimum[platform.version]):
                return "min_platform %s" % json.dumps(minimum, sort_keys=True)
        elif platform.version < min(minimum):
            return "min_platform %s" % json.dumps(minimum, sort_keys=True)
    maximum = requirements.get("max_platform")
    if isinstance(maximum, dict) and maximum:
        if platform.version in maximum:
            if platform.stamp > str(maximum[platform.version]):
                return "max_platform %s" % json.dumps(maximum, sort_keys=True)
        elif platform.version > max(maximum):
            return "max_platform %s" % json.dumps(maximum, sort_keys=True)
    return None
