# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The removals of an exclusive task: the decision, without side effects.

An exclusive task keeps the images it requests, and removes every other
image of the pool that nothing depends on. An image stays when any dataset
outside the removals is cloned from it (a VM, a VM's disk, or an image built
on it, such as a requested image's origin). It also stays when it lacks the
marks of an imported image, a manifest cache entry and a ``@final``
snapshot, because such a dataset may be something else named like an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple


@dataclass
class ExclusivePlan:
    """Images to remove, each after the images cloned from it, and the other images kept with the reason."""

    remove: List[Dict[str, Any]] = field(default_factory=list)
    kept: List[Dict[str, str]] = field(default_factory=list)


def plan_exclusive(installed: List[Dict[str, Any]], keep: Set[str], pool: str, with_final: Set[str],
                   origins: Optional[Dict[str, Optional[str]]] = None) -> ExclusivePlan:
    """Decide the removals of an exclusive task on ``pool``.

    ``installed`` is the list of the pool's image facts (``manifest``, ``zpool``,
    ``clones``), as ``InstalledImageLister`` lists them. ``keep`` names the
    requested images and everything the task imports. ``with_final`` names
    the image datasets that have a ``@final`` snapshot. ``origins`` maps the
    UUIDs of images whose manifests the task read elsewhere (sources,
    manifest files) to their origins. The origin chains of ``keep`` are kept too, including an
    installed origin of an image that is only about to be imported and so
    has no clone yet.
    """
    known = dict(origins or {})
    for entry in installed:
        known.setdefault(entry["manifest"]["uuid"], entry["manifest"].get("origin"))
    keep = set(keep)
    pending = list(keep)
    while pending:
        origin = known.get(pending.pop())
        if origin and origin not in keep:
            keep.add(origin)
            pending.append(origin)

    plan = ExclusivePlan()
    candidates: List[Tuple[str, Dict[str, Any]]] = []
    for entry in sorted(installed, key=lambda item: item["manifest"]["uuid"]):
        uuid = entry["manifest"]["uuid"]
        dataset = "%s/%s" % (pool, uuid)
        if entry["zpool"] != pool or uuid in keep:
            continue
        if set(entry["manifest"]) <= {"uuid"}:
            plan.kept.append({"uuid": uuid, "reason": "it has no manifest cache entry"})
        elif dataset not in with_final:
            plan.kept.append({"uuid": uuid, "reason": "it has no @final snapshot"})
        else:
            candidates.append((dataset, entry))

    # Children before their origins: an image goes once every dataset cloned
    # from it is going too.
    removed: Set[str] = set()
    progress = True
    while progress:
        progress = False
        for dataset, entry in candidates:
            if dataset not in removed and set(entry["clones"]) <= removed:
                plan.remove.append(entry)
                removed.add(dataset)
                progress = True
    for dataset, entry in candidates:
        if dataset not in removed:
            users = sorted(set(entry["clones"]) - removed)
            plan.kept.append({"uuid": entry["manifest"]["uuid"],
                              "reason": "datasets are cloned from it: %s" % ", ".join(users)})
    plan.kept.sort(key=lambda item: item["uuid"])
    return plan
