# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Decide changes to the ordered source list of ``imgadm.conf``, without acting.

``plan_sources`` takes the entries as they are written in the file and the
task's request, and returns the new entries, one sentence an action, and the
sources to ping before the file is written. It reads nothing and writes
nothing, so the module alone pings and writes.

Sources are compared as imgadm compares them: by normalised URL (see
``normalize_url``) and type. An entry that is kept keeps its URL as written
and every key the module does not manage.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.smartos.images.plugins.module_utils._errors import ConfigError, ImageError
from ansible_collections.smartos.images.plugins.module_utils._sources import (
    DEFAULT_SOURCE_URL,
    SOURCE_TYPES,
    Source,
    normalize_url,
)

SourceKey = Tuple[str, str]


@dataclass
class SourceRequest:
    """The task's request: one source present or absent, or the whole list when ``sources`` is not None."""

    source: Optional[Source] = None
    state: str = "present"
    sources: Optional[List[Source]] = None


@dataclass
class SourcePlan:
    """The decided source list, as entries to write, and what it changes."""

    entries: List[Any]
    actions: List[str] = field(default_factory=list)
    to_check: List[Source] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def configured_entries(data: Dict[str, Any]) -> List[Any]:
    """Return the source entries of the parsed file.

    Without a ``sources`` key the implicit default source is returned as an
    entry, as imgadm materialises it before it adds or deletes a source.
    """
    if "sources" not in data:
        return [{"url": DEFAULT_SOURCE_URL, "type": "imgapi"}]
    return list(data["sources"])


def entry_fields(entry: Any, where: str) -> Source:
    """Return the managed fields of one file entry. A plain string entry is a URL of type imgapi."""
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"].strip():
        raise ConfigError("%s: source %r has no url; give every source a string url or remove it" % (where, entry))
    return Source(
        url=entry["url"],
        type=entry.get("type", "imgapi"),
        insecure=bool(entry.get("insecure", False)),
        channel=entry.get("channel") or None,
    )


def describe_entry(entry: Any, where: str = "sources") -> Dict[str, Any]:
    """Return one entry with the same four keys for every source, as the diff and the result show it."""
    source = entry_fields(entry, where)
    return {"url": source.url, "type": source.type, "insecure": source.insecure, "channel": source.channel}


def normalized(url: str, where: str) -> str:
    try:
        return normalize_url(url)
    except ValueError as exc:
        # urllib raises ValueError for a port that is not a number or a bad IPv6 address.
        raise ConfigError("%s: url %r is not a valid URL (%s); fix it" % (where, url, exc)) from exc


def source_key(source: Source, where: str) -> SourceKey:
    return normalized(source.url, where), source.type


def validate_source(source: Source, where: str) -> None:
    """Raise ``ImageError`` for a requested source that imgadm or this collection could not use."""
    if not source.url.strip():
        raise ImageError("%s: url is empty; give the URL of an image server, such as https://images.example.com"
                         % where)
    if source.type not in SOURCE_TYPES:
        raise ImageError("%s: source %s has type %r; use one of %s"
                         % (where, source.url, source.type, ", ".join(SOURCE_TYPES)))
    parts = urllib.parse.urlsplit(normalized(source.url, where))
    if parts.scheme not in ("http", "https"):
        raise ImageError("%s: url %s has the scheme %r; use http or https" % (where, source.url, parts.scheme))
    if not parts.hostname:
        raise ImageError("%s: url %s has no host name; give the URL of an image server, such as "
                         "https://images.example.com" % (where, source.url))
    if source.type == "dsapi" and not source.base_url.endswith("/datasets"):
        raise ImageError("%s: dsapi source %s must end in /datasets, such as https://datasets.example.com/datasets; "
                         "fix the url, or set type imgapi for an IMGAPI server" % (where, source.url))


def written_entry(source: Source) -> Dict[str, Any]:
    """Return the file entry for a new source.

    ``insecure`` is written only when true, because SmartOS imgadm turns TLS
    verification off for an explicit ``"insecure": false``.
    """
    entry: Dict[str, Any] = {"url": source.url, "type": source.type}
    if source.insecure:
        entry["insecure"] = True
    if source.channel:
        entry["channel"] = source.channel
    return entry


def updated_entry(entry: Any, current: Source, requested: Source) -> Tuple[Any, List[str]]:
    """Return ``entry`` with the insecure flag and channel of ``requested``, and the names of the fields that changed.

    The entry keeps its URL as written, its key order and its other keys.
    """
    changed = [name for name in ("insecure", "channel") if getattr(current, name) != getattr(requested, name)]
    if not changed:
        return entry, []
    base = {"url": entry, "type": current.type} if isinstance(entry, str) else entry
    new: Dict[str, Any] = {}
    for key, value in base.items():
        if key == "insecure":
            if requested.insecure:
                new[key] = True
        elif key == "channel":
            if requested.channel:
                new[key] = requested.channel
        else:
            new[key] = value
    if requested.insecure:
        new["insecure"] = True
    if requested.channel:
        new["channel"] = requested.channel
    return new, changed


def _label(source: Source) -> str:
    return "%s (%s)" % (source.url, source.type)


def _configured(current: List[Any], where: str) -> List[Tuple[Any, Source, SourceKey]]:
    listed = []
    for index, entry in enumerate(current):
        entry_where = "%s: sources[%d]" % (where, index)
        source = entry_fields(entry, entry_where)
        listed.append((entry, source, source_key(source, entry_where)))
    return listed


def plan_present(current: List[Any], requested: Source, where: str = "imgadm.conf") -> SourcePlan:
    """Append ``requested`` unless a source of the same normalised URL and type exists, which is updated in place."""
    validate_source(requested, "url")
    key = source_key(requested, "url")
    plan = SourcePlan(entries=[])
    found = False
    for entry, source, entry_key in _configured(current, where):
        if entry_key != key:
            plan.entries.append(entry)
            continue
        found = True
        new, fields = updated_entry(entry, source, requested)
        plan.entries.append(new)
        if fields:
            plan.actions.append("Updated source %s (%s)" % (source.url, ", ".join(fields)))
            plan.to_check.append(Source(url=source.url, type=source.type, insecure=requested.insecure,
                                        channel=requested.channel))
    if not found:
        plan.entries.append(written_entry(requested))
        plan.actions.append("Added source %s" % _label(requested))
        plan.to_check.append(requested)
    return plan


def plan_absent(current: List[Any], target: Source, where: str = "imgadm.conf") -> SourcePlan:
    """Remove every source whose normalised URL is that of ``target``, whatever its type."""
    # Only an empty URL is rejected here, so that an entry with a URL the
    # other checks reject can still be removed.
    if not target.url.strip():
        raise ImageError("url is empty; give the URL of the source to remove")
    url = normalized(target.url, "url")
    plan = SourcePlan(entries=[])
    for entry, source, entry_key in _configured(current, where):
        if entry_key[0] == url:
            plan.actions.append("Removed source %s" % _label(source))
        else:
            plan.entries.append(entry)
    return plan


def deduplicated(requested: List[Source]) -> List[Source]:
    """Return ``requested`` without repeats of the same normalised URL and type, keeping the first.

    A repeat that differs in insecure or channel raises ``ImageError``: the
    task would ask for two settings of one source.
    """
    first: Dict[SourceKey, Tuple[int, Source]] = {}
    unique = []
    for index, source in enumerate(requested):
        where = "sources[%d]" % index
        validate_source(source, where)
        key = source_key(source, where)
        if key not in first:
            first[key] = (index, source)
            unique.append(source)
            continue
        earlier_index, earlier = first[key]
        if (earlier.insecure, earlier.channel) != (source.insecure, source.channel):
            raise ImageError(
                "sources[%d] (%s) and sources[%d] (%s) are the same %s source with a different insecure or channel; "
                "list it once with the settings it needs" % (earlier_index, earlier.url, index, source.url, source.type)
            )
    return unique


def plan_list(current: List[Any], requested: List[Source], where: str = "imgadm.conf") -> SourcePlan:
    """Make the configured list exactly ``requested``, in its order."""
    requested = deduplicated(requested)
    configured = _configured(current, where)
    plan = SourcePlan(entries=[])
    used = set()
    kept_order = []
    updates, additions = [], []

    for source in requested:
        key = source_key(source, "sources")
        match = next((index for index, item in enumerate(configured) if item[2] == key and index not in used), None)
        if match is None:
            plan.entries.append(written_entry(source))
            additions.append("Added source %s" % _label(source))
            plan.to_check.append(source)
            continue

        used.add(match)
        kept_order.append(match)
        entry, existing = configured[match][0], configured[match][1]
        new, fields = updated_entry(entry, existing, source)
        plan.entries.append(new)
        if fields:
            updates.append("Updated source %s (%s)" % (existing.url, ", ".join(fields)))
            plan.to_check.append(Source(url=existing.url, type=existing.type, insecure=source.insecure,
                                        channel=source.channel))

    plan.actions.extend("Removed source %s" % _label(item[1])
                        for index, item in enumerate(configured) if index not in used)
    plan.actions.extend(updates)
    plan.actions.extend(additions)

    # Adding or removing sources around the kept ones is not a reorder. Only a
    # change in the relative order of kept sources is.
    if kept_order != sorted(kept_order):
        plan.actions.append("Reordered sources")
    return plan


def plan_sources(current: List[Any], request: SourceRequest, where: str = "imgadm.conf") -> SourcePlan:
    """Return the new source entries, the actions and the sources to ping, for ``request`` applied to ``current``.

    ``current`` is the list as written in the file (see ``configured_entries``)
    and ``where`` names the file in error messages.
    """
    if request.sources is not None:
        if request.state != "present":
            raise ImageError("state=absent applies to url only; to remove sources with the sources option, "
                             "leave them out of the list")
        return plan_list(current, request.sources, where)
    if request.source is None:
        raise ImageError("no source given; set url, or sources for the whole list")
    if request.state == "absent":
        return plan_absent(current, request.source, where)
    return plan_present(current, request.source, where)
