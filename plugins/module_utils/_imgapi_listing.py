# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ListImages and the manifest views of the image server.

Listings are ordered by ``(published_at, uuid)``, so that images sharing a
``published_at`` keep one stable order. ``marker`` is inclusive, as on the
reference IMGAPI server: a page starts with the marker image itself, and
the sdc-clients library drops that first element of every page after the
first. An exclusive marker would make sdc-clients skip one image per page.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.smartos.images.plugins.module_utils._imgapi_catalog import (
    AREA_UNACTIVATED,
    CatalogImage,
    Snapshot,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi_http import (
    ApiError,
    Request,
    invalid_parameter,
    json_bytes,
    validation_failed,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest import is_uuid

DEFAULT_LIMIT = 1000
MAX_LIMIT = 1000
LIST_STATES = ("active", "disabled", "unactivated", "creating", "failed", "all")
SORT_ATTRIBUTES = ("published_at", "name", "version", "type", "os", "owner", "uuid")
# Fields a public-mode server does not show, as the reference server's serializer.
PUBLIC_MODE_HIDDEN = ("billing_tags", "traits")
FILE_EXTENSIONS = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "none": ""}

ISO_DATE_RE = re.compile(
    r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?\s*(Z|[+-][0-9]{2}:?[0-9]{2})?)?\Z")


class ListQuery:
    """The parsed query of one ListImages or DSAPI list request."""

    def __init__(self):
        self.states: Optional[Tuple[str, ...]] = ("active",)
        self.exact: Dict[str, str] = {}
        self.substring: Dict[str, str] = {}
        self.type_excluded: Optional[str] = None
        self.public: Optional[bool] = None
        self.tags: List[Tuple[str, str]] = []
        self.billing_tags: List[str] = []
        self.channel: Optional[str] = None
        self.limit = DEFAULT_LIMIT
        self.marker: Optional[str] = None
        self.sort_attribute = "published_at"
        self.descending = False


def resolve_channel(request: Request, channels: Sequence[str]) -> Optional[str]:
    """Return the channel a request selects: None for every channel, else its name.

    A server without channels ignores ``channel``. With channels, a request
    without ``channel`` selects the first configured one, the default, and
    ``*`` selects all of them.
    """
    if not channels:
        return None
    name = request.query.get("channel")
    if name is None or name == "":
        return channels[0]
    if name == "*":
        return None
    if name not in channels:
        message = "channel %r does not exist on this server; use one of %s, or * for all" % (name, ", ".join(channels))
        raise validation_failed(message, [{"field": "channel", "code": "Invalid", "message": message}])
    return name


def parse_list_query(request: Request, channels: Sequence[str], authenticated: bool) -> ListQuery:
    """Parse and check the ListImages parameters; raise ApiError 422 on an invalid one."""
    query = ListQuery()
    params = request.query

    state = params.get("state", "active") or "active"
    if state not in LIST_STATES:
        raise invalid_parameter("state", "invalid state %r; use one of %s" % (state, ", ".join(LIST_STATES)))
    if state == "all":
        # Anonymous callers only ever see active images, as on the reference server.
        query.states = None if authenticated else ("active",)
    elif state != "active" and not authenticated:
        query.states = ()
    else:
        query.states = (state,)

    if "limit" in params:
        text = params["limit"].strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise invalid_parameter("limit", "invalid limit %r; use a whole number from 1 to %d, and page with "
                                             "marker for more" % (params["limit"], MAX_LIMIT))
        query.limit = int(text)

    sort = params.get("sort")
    if sort:
        attribute, _sep, order = sort.partition(".")
        if attribute not in SORT_ATTRIBUTES:
            raise invalid_parameter("sort", "invalid sort %r: %r is not a sort attribute; use one of %s, with an "
                                            "optional .asc or .desc" % (sort, attribute, ", ".join(SORT_ATTRIBUTES)))
        if order.lower() not in ("", "asc", "desc"):
            raise invalid_parameter("sort", "invalid sort %r: the order %r is neither asc nor desc" % (sort, order))
        query.sort_attribute = attribute
        query.descending = order.lower() == "desc"

    marker = params.get("marker")
    if marker:
        query.marker = marker

    for field in ("name", "version"):
        value = params.get(field)
        if value is None:
            continue
        if value.startswith("~"):
            query.substring[field] = value[1:]
        else:
            query.exact[field] = value
    for field in ("owner", "os"):
        if field in params:
            query.exact[field] = params[field]
    if "type" in params:
        if params["type"].startswith("!"):
            query.type_excluded = params["type"][1:]
        else:
            query.exact["type"] = params["type"]
    if "public" in params:
        public = params["public"]
        if public not in ("true", "false"):
            raise invalid_parameter("public", "invalid public %r; use true or false" % public)
        query.public = public == "true"
    for key, value in request.query_pairs:
        if key.startswith("tag.") and len(key) > 4:
            query.tags.append((key[4:], value))
    query.billing_tags = request.query_all("billing_tag")
    query.channel = resolve_channel(request, channels)
    return query


def js_scalar_text(value: Any) -> Optional[str]:
    """Return ``String(value)`` of a JSON scalar as JavaScript writes it, None for objects and arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == math.floor(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if value is None:
        return "null"
    return None


def matches(image: CatalogImage, query: ListQuery, default_channel: Optional[str]) -> bool:
    manifest = image.manifest
    if query.states is not None and image.state not in query.states:
        return False
    for field, expected in query.exact.items():
        if js_scalar_text(manifest.get(field)) != expected or field not in manifest:
            return False
    for field, needle in query.substring.items():
        value = manifest.get(field)
        if not isinstance(value, str) or needle not in value:
            return False
    if query.type_excluded is not None and manifest.get("type") == query.type_excluded:
        return False
    if query.public is not None and (manifest.get("public") in (True, "true")) != query.public:
        return False
    if query.tags:
        tags = manifest.get("tags")
        if not isinstance(tags, dict):
            return False
        for key, expected in query.tags:
            if key not in tags or js_scalar_text(tags[key]) != expected:
                return False
    if query.billing_tags:
        billing_tags = manifest.get("billing_tags")
        if not isinstance(billing_tags, list) or any(tag not in billing_tags for tag in query.billing_tags):
            return False
    if query.channel is not None and query.channel not in image.channels(default_channel):
        return False
    return True


def _attribute_key(image: CatalogImage, attribute: str) -> Tuple:
    if attribute == "published_at":
        return image.sort_key
    value = js_scalar_text(image.manifest.get(attribute)) if attribute != "uuid" else image.uuid
    return (value or "", image.published_ms, image.uuid)


def marker_date_ms(text: str) -> Optional[int]:
    """Return a date marker in epoch milliseconds: ISO 8601 or an RFC 2822 date, None if it is neither."""
    match = ISO_DATE_RE.match(text.strip())
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        offset = datetime.timedelta(0)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            offset = sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        try:
            moment = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                                       int(second or 0), tzinfo=datetime.timezone.utc) - offset
        except ValueError:
            return None
        return int(moment.timestamp()) * 1000 + int((fraction or "0").ljust(3, "0")[:3])
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


def select_images(snapshot: Snapshot, query: ListQuery, default_channel: Optional[str]) -> List[CatalogImage]:
    """Return one page of the images that match ``query``, in its order, starting at its marker."""
    if query.states == ():
        return []
    candidates = [image for image in snapshot.images if matches(image, query, default_channel)]
    if query.sort_attribute != "published_at":
        candidates.sort(key=lambda image: _attribute_key(image, query.sort_attribute))
    if query.descending:
        candidates.reverse()

    if query.marker is not None:
        candidates = _from_marker(snapshot, candidates, query)
    return candidates[:query.limit]


def _from_marker(snapshot: Snapshot, candidates: List[CatalogImage], query: ListQuery) -> List[CatalogImage]:
    if is_uuid(query.marker):
        marker_image = snapshot.by_uuid.get(query.marker)
        if marker_image is None:
            raise invalid_parameter("marker", "invalid marker %r: no image has this UUID; start the listing again "
                                              "without marker" % query.marker)
        bound = _attribute_key(marker_image, query.sort_attribute)
        if query.descending:
            return [image for image in candidates if _attribute_key(image, query.sort_attribute) <= bound]
        return [image for image in candidates if _attribute_key(image, query.sort_attribute) >= bound]

    if query.sort_attribute != "published_at":
        raise invalid_parameter("marker", "invalid marker %r: with sort %s the marker must be an image UUID"
                                % (query.marker, query.sort_attribute))
    moment = marker_date_ms(query.marker)
    if moment is None:
        raise invalid_parameter("marker", "invalid marker %r: it is neither an image UUID nor a date such as "
                                          "2024-01-31T12:00:00Z" % query.marker)
    if query.descending:
        return [image for image in candidates if image.published_ms <= moment]
    return [image for image in candidates if image.published_ms >= moment]


# ---- views

def manifest_view(image: CatalogImage, version: int, mode: str) -> Dict[str, Any]:
    """Return the manifest as the API shows it to a client of API ``version``."""
    manifest = dict(image.manifest)
    if image.area == AREA_UNACTIVATED:
        manifest["state"] = "unactivated"
    if version < 2:
        manifest.pop("channels", None)
    if mode == "public":
        for field in PUBLIC_MODE_HIDDEN:
            manifest.pop(field, None)
    return manifest


def manifest_bytes(image: CatalogImage, version: int, mode: str, pretty: bool) -> bytes:
    """Return the JSON of ``manifest_view``, serialized once per image and view."""
    key = (version, mode, pretty)
    data = image.serialized.get(key)
    if data is None:
        data = json_bytes(manifest_view(image, version, mode), pretty=pretty)
        image.serialized[key] = data
    return data


def list_body(images: Sequence[CatalogImage], version: int, mode: str) -> bytes:
    if not images:
        return b"[]\n"
    return b"[\n" + b",\n".join(manifest_bytes(image, version, mode, pretty=False) for image in images) + b"\n]\n"


def dataset_file_name(image: CatalogImage) -> str:
    """Return the DSAPI ``files[0].path``: ``<uuid>.zfs`` (``.zvol`` for a zvol) and the compression's suffix."""
    files = image.manifest.get("files")
    compression = files[0].get("compression") if isinstance(files, list) and files and isinstance(files[0], dict) \
        else None
    kind = ".zvol" if image.manifest.get("type") == "zvol" else ".zfs"
    return image.uuid + kind + FILE_EXTENSIONS.get(compression, "")


def dataset_view(image: CatalogImage, base_url: str, mode: str) -> Dict[str, Any]:
    """Return the manifest as a DSAPI server shows it: ``files[0]`` gains an absolute ``url`` and a ``path``."""
    manifest = manifest_view(image, 1, mode)
    files = manifest.get("files")
    if isinstance(files, list) and files and isinstance(files[0], dict):
        first = dict(files[0])
        first["path"] = dataset_file_name(image)
        first["url"] = "%s/datasets/%s/file" % (base_url, image.uuid)
        manifest["files"] = [first] + list(files[1:])
    return manifest


def select_datasets(snapshot: Snapshot, request: Request, default_channel: Optional[str]) -> List[CatalogImage]:
    """Return the active images a DSAPI ``GET /datasets`` lists, newest first, with its exact filters."""
    query = ListQuery()
    # DSAPI clients know nothing of channels, so they see the default channel.
    query.channel = default_channel
    for field in ("name", "version", "type", "os"):
        if field in request.query:
            query.exact[field] = request.query[field]
    images = [image for image in snapshot.images if matches(image, query, default_channel)]
    images.reverse()
    return images


def raise_if_not_found(image: Optional[CatalogImage], uuid: str) -> CatalogImage:
    if image is None:
        raise ApiError(404, "ResourceNotFound", "image %s not found" % uuid, uuid=uuid)
    return image
