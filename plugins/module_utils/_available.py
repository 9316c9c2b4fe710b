# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Images available from the sources, as ``imgadm avail`` lists them.

Every source is asked for its whole listing, all pages, at the same time.
A source that fails is reported and the others' images are kept. When
several sources list one UUID, the first source in configuration order wins.
imgadm keeps the source that responded first instead, so its result can
change from one run to the next.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.smartos.images.plugins.module_utils._errors import ConfigError, ManifestError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._filters import Filter, image_row, matches
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._installed import sort_key
from ansible_collections.smartos.images.plugins.module_utils._sources import Source, client_for

# Sources asked at once; more sources than this wait for a free thread.
MAX_PARALLEL_SOURCES = 8


class SourceListing(NamedTuple):
    """The listing of one source: its manifests, or the error that stopped it."""

    source: Source
    manifests: List[Dict[str, Any]]
    error: Optional[str]


def fetch_listing(source: Source, http: HttpClient) -> SourceListing:
    try:
        return SourceListing(source, client_for(source, http).list_images(), None)
    except (SourceError, ManifestError, ConfigError) as exc:
        return SourceListing(source, [], str(exc))


def merge_listings(listings: Sequence[SourceListing], filters: Sequence[Filter] = (),
                   warn: Callable[[str], None] = lambda message: None
                   ) -> Tuple[List[Dict[str, Any]], List[Dict[str, str]]]:
    """Return ``(images, source_errors)`` from listings given in configuration order.

    ``images`` contains ``{"manifest", "source"}`` entries, one a UUID, from the
    first listing that has it, matching ``filters``, sorted as
    ``imgadm avail`` sorts them. ``source_errors`` contains ``{"url",
    "message"}``, one for each source that failed.
    """
    images = []
    errors = []
    seen = set()
    for listing in listings:
        url = listing.source.url
        if listing.error is not None:
            errors.append({"url": url, "message": listing.error})
            warn("source %s was skipped because listing its images failed: %s; the other sources' images are "
                 "listed" % (url, listing.error))
            continue
        without_uuid = 0
        for manifest in listing.manifests:
            uuid = manifest.get("uuid")
            if not isinstance(uuid, str):
                without_uuid += 1
                continue
            if uuid in seen:
                continue
            seen.add(uuid)
            if matches(image_row(manifest, {"source": url}), filters):
                images.append({"manifest": manifest, "source": url})
        if without_uuid:
            warn("source %s listed %d image(s) without a uuid; they are left out" % (url, without_uuid))
    images.sort(key=sort_key)
    return images, errors


def list_available(sources: Sequence[Source], http: HttpClient, filters: Sequence[Filter] = (),
                   warn: Callable[[str], None] = lambda message: None
                   ) -> Tuple[List[Dict[str, Any]], List[Dict[str, str]]]:
    """Ask every source for its images, in parallel, and merge them with ``merge_listings``."""
    if not sources:
        warn("no image sources are configured, so no available images are listed; add one with "
             "smartos.images.image_source or give sources on the task")
        return [], []
    with ThreadPoolExecutor(max_workers=min(len(sources), MAX_PARALLEL_SOURCES)) as pool:
        listings = list(pool.map(lambda source: fetch_listing(source, http), sources))
    return merge_listings(listings, filters, warn)
