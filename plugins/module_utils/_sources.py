# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image sources: the ``imgadm.conf`` list, and IMGAPI and DSAPI clients."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.smartos.images.plugins.module_utils._errors import ConfigError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._manifest import upgrade_manifest

DEFAULT_SOURCE_URL = "https://images.smartos.org"
SOURCE_TYPES = ("imgapi", "dsapi")
DEFAULT_PORTS = {"http": 80, "https": 443}
PAGE_SIZE = 1000


def normalize_url(url: str) -> str:
    """Normalise a source URL the way imgadm compares them.

    A missing scheme becomes ``http://``, a trailing ``/`` and the scheme's
    default port are dropped; the query is kept.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    netloc = host
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        netloc = "%s:%d" % (host, parts.port)
    if parts.username:
        userinfo = parts.username + (":" + parts.password if parts.password else "")
        netloc = userinfo + "@" + netloc
    path = parts.path.rstrip("/")
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))


@dataclass
class Source:
    url: str
    type: str = "imgapi"
    insecure: bool = False
    channel: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The normalised URL without its query, which only carries the channel."""
        parts = urllib.parse.urlsplit(normalize_url(self.url))
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    @property
    def effective_channel(self) -> Optional[str]:
        if self.channel:
            return self.channel
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)
        values = query.get("channel")
        return values[0] if values else None

    @classmethod
    def from_config(cls, entry: Any, where: str) -> "Source":
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"].strip():
            raise ConfigError("%s: source %r has no url; every source needs a string url" % (where, entry))
        source_type = entry.get("type", "imgapi")
        if source_type not in SOURCE_TYPES:
            raise ConfigError(
                "%s: source %s has type %r; supported types are %s"
                % (where, entry["url"], source_type, ", ".join(SOURCE_TYPES))
            )
        try:
            normalize_url(entry["url"])
        except ValueError as exc:
            raise ConfigError("%s: source %s has an invalid URL (%s); fix the url" % (where, entry["url"], exc)) from exc
        extra = {k: v for k, v in entry.items() if k not in ("url", "type", "insecure", "channel")}
        return cls(
            url=entry["url"],
            type=source_type,
            insecure=bool(entry.get("insecure", False)),
            channel=entry.get("channel") or None,
            extra=extra,
        )


@dataclass
class ImgadmConfig:
    """The parsed ``imgadm.conf``; ``data`` keeps every key, managed or not."""

    path: str
    data: Dict[str, Any]
    sources: List[Source]
    explicit_sources: bool


def load_config(path: str) -> ImgadmConfig:
    """Read ``imgadm.conf``; a missing file or ``sources`` key means the default source."""
    try:
        with open(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        return ImgadmConfig(path, {}, [Source(DEFAULT_SOURCE_URL)], False)
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc), path=path) from exc
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConfigError(
            "%s is not valid JSON (%s); fix the file or restore it from backup, it was left unchanged"
            % (path, exc), path=path,
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError("%s must hold a JSON object, not %s; fix the file" % (path, type(data).__name__), path=path)
    if "sources" not in data:
        return ImgadmConfig(path, data, [Source(DEFAULT_SOURCE_URL)], False)
    if not isinstance(data["sources"], list):
        raise ConfigError("%s: \"sources\" must be a list; fix the file" % path, path=path)
    sources = [Source.from_config(entry, path) for entry in data["sources"] if _is_supported(entry)]
    return ImgadmConfig(path, data, sources, True)


def _is_supported(entry: Any) -> bool:
    # Docker registry sources were deprecated by imgadm in 2023 and are out of
    # scope: they stay in the file but are never queried.
    return not (isinstance(entry, dict) and entry.get("type") == "docker")


@dataclass
class RemoteImage:
    """An image as one source describes it."""

    manifest: Dict[str, Any]
    source: Source
    file_url: str


class ImgapiClient:
    """Read side of an IMGAPI server: GetImage, ListImages, the file URL."""

    def __init__(self, source: Source, http: HttpClient):
        self.source = source
        self.http = http

    def _url(self, path: str, params: Optional[Dict[str, Any]] = None) -> str:
        query = dict(params or {})
        channel = self.source.effective_channel
        if channel:
            query["channel"] = channel
        url = self.source.base_url + path
        return url + ("?" + urllib.parse.urlencode(query) if query else "")

    def _get(self, path: str, params: Optional[Dict[str, Any]] = None) -> Any:
        return self.http.get_json(
            self._url(path, params), insecure=self.source.insecure, headers={"Accept-Version": "~2"}
        )

    def ping(self) -> Dict[str, Any]:
        body = self._get("/ping")
        if not isinstance(body, dict) or not body.get("imgapi"):
            raise SourceError("%s/ping: not an IMGAPI server, the response was %s"
                              % (self.source.base_url, json.dumps(body)[:1024]), url=self.source.url)
        return body

    def get_image(self, uuid: str) -> Optional[RemoteImage]:
        body = self._get("/images/" + uuid)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise SourceError("%s: GetImage %s returned %s, not a manifest"
                              % (self.source.base_url, uuid, type(body).__name__), url=self.source.url)
        manifest = upgrade_manifest(body)
        return RemoteImage(manifest, self.source, self._url("/images/%s/file" % uuid))

    def list_images(self, filters: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
        """Return every image matching ``filters``, following ``limit``/``marker`` pages."""
        images: List[Dict[str, Any]] = []
        seen = set()
        marker = None
        while True:
            params = dict(filters or {}, limit=str(PAGE_SIZE))
            if marker:
                params["marker"] = marker
            page = self._get("/images", params)
            if not isinstance(page, list):
                raise SourceError("%s/images: ListImages returned %s, not a list"
                                  % (self.source.base_url, type(page).__name__), url=self.source.url)
            # The reference IMGAPI server's marker is inclusive, so each page
            # may start with the last image of the previous one.
            fresh = [m for m in page if isinstance(m, dict) and m.get("uuid") not in seen]
            seen.update(m.get("uuid") for m in fresh)
            images.extend(upgrade_manifest(m) for m in fresh)
            if len(page) < PAGE_SIZE or not fresh:
                return images
            marker = page[-1].get("uuid")


class DsapiClient:
    """Read side of a legacy DSAPI server (``/datasets``)."""

    def __init__(self, source: Source, http: HttpClient):
        self.source = source
        self.http = http
        if not self.source.base_url.endswith("/datasets"):
            raise ConfigError("dsapi source %s must end in /datasets" % source.url)

    def ping(self) -> Dict[str, Any]:
        # get_json returns None for HTTP 404, which no DSAPI server sends for its /datasets list.
        if self.http.get_json(self.source.base_url, insecure=self.source.insecure) is None:
            raise SourceError("%s: HTTP 404 Not Found; not a DSAPI server" % self.source.base_url,
                              url=self.source.url, status=404)
        return {}

    def _remote(self, raw: Dict[str, Any]) -> RemoteImage:
        files = raw.get("files") or [{}]
        file_url = files[0].get("url") if isinstance(files[0], dict) else None
        if not file_url:
            file_url = "%s/%s/file" % (self.source.base_url, raw.get("uuid"))
        return RemoteImage(upgrade_manifest(raw), self.source, file_url)

    def get_image(self, uuid: str) -> Optional[RemoteImage]:
        body = self.http.get_json("%s/%s" % (self.source.base_url, uuid), insecure=self.source.insecure)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise SourceError("%s: dataset %s is not a manifest" % (self.source.base_url, uuid), url=self.source.url)
        return self._remote(body)

    def list_images(self, filters: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
        body = self.http.get_json(self.source.base_url, insecure=self.source.insecure)
        if not isinstance(body, list):
            raise SourceError("%s: ListDatasets returned %s, not a list"
                              % (self.source.base_url, type(body).__name__), url=self.source.url)
        return [upgrade_manifest(m) for m in body if isinstance(m, dict)]


def client_for(source: Source, http: HttpClient):
    if source.type == "dsapi":
        return DsapiClient(source, http)
    return ImgapiClient(source, http)
