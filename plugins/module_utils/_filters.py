# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image filters with the semantics of ``imgadm list`` and ``imgadm avail``.

A filter is ``field=value``.  ``value`` ``true`` or ``false`` matches that
boolean exactly; ``~sub`` matches a string containing ``sub`` or a list with
an element equal to ``sub``; anything else matches when the field, turned
into a string the way JavaScript's ``String()`` does, equals ``value``.
``field`` may be dotted (``tags.role``, ``requirements.brand``).  An image
without the field never matches, and all filters must match.

Besides manifest fields, these computed fields can be filtered on, as in
imgadm: ``pub`` and ``published_date`` (the date part of ``published_at``),
``published`` (``published_at`` without milliseconds), ``size`` (the file's
size), and, for installed images, ``zpool``, ``source`` and ``clones``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List, NamedTuple, Optional

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError

_MISSING = object()
MILLISECONDS_RE = re.compile(r"\.\d{3}Z$")


class Filter(NamedTuple):
    field: str
    value: str

    def __str__(self) -> str:
        return "%s=%s" % (self.field, self.value)


def parse_filters(specs: Iterable[Any]) -> List[Filter]:
    """Parse ``field=value`` strings (or a dict of field to value) into filters."""
    if isinstance(specs, dict):
        specs = ["%s=%s" % (key, _js_string(value)) for key, value in specs.items()]
    filters = []
    for spec in specs:
        text = spec if isinstance(spec, str) else str(spec)
        field, sep, value = text.partition("=")
        if not sep or not field:
            raise ImageError('invalid filter: "%s" (must be of the form "field=value", for example name=base-64-lts)' % text)
        filters.append(Filter(field, value))
    return filters


def _js_string(value: Any) -> str:
    """Return ``String(value)`` as JavaScript computes it for JSON values."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if item is None else _js_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def lookup_field(row: Dict[str, Any], field: str) -> Any:
    """Return the value at dotted ``field`` of ``row``, or a marker when it is missing."""
    current: Any = row
    for part in field.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def matches(row: Dict[str, Any], filters: Iterable[Filter]) -> bool:
    for flt in filters:
        actual = lookup_field(row, flt.field)
        if actual is _MISSING:
            return False
        if flt.value in ("true", "false"):
            if actual is not (flt.value == "true"):
                return False
        elif flt.value.startswith("~"):
            needle = flt.value[1:]
            if isinstance(actual, str):
                if needle not in actual:
                    return False
            elif isinstance(actual, list):
                if needle not in actual:
                    return False
            else:
                return False
        elif _js_string(actual) != flt.value:
            return False
    return True


def image_row(manifest: Dict[str, Any], info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Return the manifest with imgadm's computed fields added; ``info`` adds installed-image fields."""
    row = dict(manifest)
    published_at = manifest.get("published_at")
    if isinstance(published_at, str):
        row.setdefault("pub", published_at[:10])
        row.setdefault("published_date", published_at[:10])
        row.setdefault("published", MILLISECONDS_RE.sub("Z", published_at))
    files = manifest.get("files")
    if isinstance(files, list) and files and isinstance(files[0], dict) and "size" in files[0]:
        row.setdefault("size", files[0]["size"])
    for key in ("zpool", "source", "clones"):
        if info and key in info:
            row.setdefault(key, info[key])
    return row


def select(manifests: Iterable[Dict[str, Any]], filters: Iterable[Filter],
           infos: Optional[Dict[str, Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """Return the manifests that match every filter, in the order given."""
    filters = list(filters)
    chosen = []
    for manifest in manifests:
        info = (infos or {}).get(manifest.get("uuid"))
        if matches(image_row(manifest, info), filters):
            chosen.append(manifest)
    return chosen


def describe_filters(filters: Iterable[Filter]) -> str:
    return json.dumps([str(flt) for flt in filters])
