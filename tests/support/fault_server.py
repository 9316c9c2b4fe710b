"""An IMGAPI and DSAPI image server on loopback that injects faults on request.

From pytest::

    with FaultServer() as server:
        server.add(manifest, file_path)
        server.set_fault(manifest["uuid"], "truncate", after=1024)
        ...  # point the client at server.url

By hand::

    python tests/support/fault_server.py --port 8080 --catalog DIR \\
        --fault truncate:after=1024,uuid=<uuid>

Images come from ``add(manifest, file_path)`` or from a directory of
``<uuid>.json`` manifests next to ``<uuid>.file`` image files. Files are
streamed in 64 KiB chunks and never read whole into memory.

Routes (GET and HEAD):

- ``/ping``: IMGAPI ping with ``"imgapi": true``.
- ``/images``: filters ``name``, ``version`` (exact, ``~`` prefix for a
  substring), ``os``, ``type`` (``!`` prefix excludes), ``state`` (default
  ``active``, ``all`` for any), ``limit`` (default 1000) and ``marker``.
  Results are sorted by ``(published_at, uuid)`` and start strictly after the
  marker image, so paging never skips or repeats images that share a
  ``published_at``. The reference IMGAPI server's marker is inclusive instead.
- ``/images/:uuid`` and ``/images/:uuid/file`` (``Range: bytes=...`` gives 206).
- ``/datasets``, ``/datasets/:uuid``, ``/datasets/:uuid/file``: DSAPI, newest
  first, manifests with ``files[0].url`` and ``files[0].path`` added.

Fault kinds for ``set_fault(uuid_or_None, kind, route=..., **params)``, with
parameter defaults. A fault with a UUID applies only to the routes that name
that image; a fault with ``None`` applies to every request on its route.

- ``corrupt`` (offset=0, count=1): XOR 0xFF over ``count`` bytes at file
  offset ``offset``; the length is unchanged.
- ``truncate`` (after=0): announce the full length, send ``after`` body
  bytes, close the connection.
- ``wrong_length`` (delta=1): announce ``Content-Length`` plus ``delta``, send
  the real body, close the connection.
- ``stall`` (after=0, seconds=30): send ``after`` body bytes, wait
  ``seconds`` with the connection open, then send the rest. With ``after``
  at or past the body length, the response is not stalled.
- ``status`` (code=500, message=None): respond with HTTP ``code`` and a JSON
  error body.
- ``down``: close the connection without sending a response.
- ``no_content_length``: omit ``Content-Length`` and end the body by closing.
- ``no_range``: ignore ``Range`` and respond 200 with the whole body.
- ``fail_times`` (times=1, after=0): the first ``times`` GET requests are
  truncated after ``after`` bytes, later ones succeed.
- ``no_md5``: omit ``Content-MD5``.

``route`` is ``"file"``, ``"manifest"``, ``"list"``, ``"ping"`` or ``"any"``.
It defaults to ``"any"`` for ``status`` and ``down`` and to ``"file"`` for the
kinds that change a body or its headers, because a fault meant for the image
file would otherwise break the manifest request first.
"""

from __future__ import annotations

import argparse
import base64
import copy
import email.utils
import hashlib
import http.server
import json
import logging
import os
import re
import signal
import socket
import socketserver
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"
CHUNK_SIZE = 64 * 1024
DEFAULT_LIST_LIMIT = 1000
IMGAPI_VERSION = "4.0.0"

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IMAGE_STATES = ("active", "disabled", "unactivated", "creating", "failed", "all")
ROUTES = ("file", "manifest", "list", "ping", "any")

FAULT_DEFAULTS = {
    "corrupt": {"offset": 0, "count": 1},
    "truncate": {"after": 0},
    "wrong_length": {"delta": 1},
    "stall": {"after": 0, "seconds": 30.0},
    "status": {"code": 500, "message": None},
    "down": {},
    "no_content_length": {},
    "no_range": {},
    "fail_times": {"times": 1, "after": 0},
    "no_md5": {},
}
ANY_ROUTE_KINDS = ("status", "down")

# restify error codes that IMGAPI sends for these statuses.
ERROR_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "ResourceNotFound",
    409: "Conflict",
    416: "RequestedRangeNotSatisfiable",
    422: "InvalidParameter",
    500: "InternalError",
    501: "NotAvailable",
    503: "ServiceUnavailable",
}

COMPRESSION_EXTENSIONS = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "none": ""}

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class CatalogImage:
    """A served image: its manifest and, when it has one, its file with digests."""

    manifest: dict
    file_path: str | None = None
    size: int = 0
    md5_base64: str = ""
    sha1: str = ""
    mtime: float = 0.0

    @property
    def uuid(self):
        return self.manifest["uuid"]


@dataclass
class Fault:
    """An injected fault; ``remaining`` counts down the ``fail_times`` failures."""

    kind: str
    uuid: str | None
    route: str
    params: dict
    remaining: int = 0


@dataclass
class Response:
    """A response before faults are applied: a JSON body or a range of a file."""

    status: int
    headers: list = field(default_factory=list)
    body: bytes = b""
    file_path: str | None = None
    file_start: int = 0
    file_length: int = 0

    @property
    def length(self):
        return self.file_length if self.file_path else len(self.body)


class FaultServer:
    """A threaded HTTP/1.1 image server on 127.0.0.1 with fault injection.

    Use it as a context manager, or call ``start()`` and ``close()``.
    ``close()`` returns promptly even while a ``stall`` fault is waiting.
    """

    def __init__(self, catalog_dir=None, port=0):
        self.port = port
        self._lock = threading.Lock()
        self._images = {}
        self._faults = {}
        self._requests = []
        self._connections = set()
        self._stopping = threading.Event()
        self._httpd = None
        self._thread = None
        self._url = None
        if catalog_dir is not None:
            self.add_directory(catalog_dir)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def url(self):
        """Base URL, ``http://127.0.0.1:<port>``, without a trailing slash."""
        if self._url is None:
            raise RuntimeError("FaultServer is not running: call start() first")
        return self._url

    def start(self):
        """Bind the port and serve requests in a daemon thread."""
        self._stopping.clear()
        self._httpd = _HTTPServer((HOST, self.port), _Handler, self)
        self._url = f"http://{HOST}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fault-server",
            daemon=True,
        )
        self._thread.start()
        LOG.info("fault server listening on %s", self.url)

    def close(self):
        """Stop serving, end stalled responses and close every open connection."""
        if self._httpd is None:
            return
        url = self.url
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _shutdown_socket(connection)
        self._thread.join(timeout=5)
        self._httpd = None
        LOG.info("fault server on %s stopped", url)

    # Catalog

    def add(self, manifest, file_path=None):
        """Serve ``manifest``, with ``file_path`` as its image file if given.

        The manifest is copied, so later changes by the caller have no effect.
        An image added again under the same UUID replaces the earlier one.
        """
        image = CatalogImage(manifest=copy.deepcopy(manifest))
        if "uuid" not in image.manifest:
            raise ValueError("invalid manifest: missing 'uuid'")
        if file_path is not None:
            image.file_path = os.fspath(file_path)
            image.size, image.md5_base64, image.sha1 = _digest_file(image.file_path)
            image.mtime = os.stat(image.file_path).st_mtime
        with self._lock:
            self._images[image.uuid] = image
        return image

    def add_directory(self, directory):
        """Serve every ``<uuid>.json`` in ``directory`` with its ``<uuid>.file``.

        Returns the UUIDs added. A manifest without a file is served without one.
        """
        added = []
        for entry in sorted(os.listdir(directory)):
            if not entry.endswith(".json"):
                continue
            with open(os.path.join(directory, entry), encoding="utf-8") as handle:
                manifest = json.load(handle)
            file_path = os.path.join(directory, entry[: -len(".json")] + ".file")
            image = self.add(manifest, file_path if os.path.exists(file_path) else None)
            added.append(image.uuid)
        return added

    def get_image(self, uuid):
        with self._lock:
            return self._images.get(uuid)

    def list_images(self):
        with self._lock:
            return list(self._images.values())

    # Faults

    def set_fault(self, uuid, kind, route=None, **params):
        """Inject fault ``kind`` for image ``uuid``, or for every image when ``None``.

        A later fault of the same kind, UUID and route replaces the earlier one.
        """
        if kind not in FAULT_DEFAULTS:
            raise ValueError(
                f"invalid fault kind {kind!r}: expected one of {', '.join(FAULT_DEFAULTS)}"
            )
        unknown = set(params) - set(FAULT_DEFAULTS[kind])
        if unknown:
            raise ValueError(
                f"invalid parameters {sorted(unknown)} for fault {kind!r}: "
                f"expected {sorted(FAULT_DEFAULTS[kind]) or 'none'}"
            )
        if route is None:
            route = "any" if kind in ANY_ROUTE_KINDS else "file"
        if route not in ROUTES:
            raise ValueError(f"invalid route {route!r}: expected one of {', '.join(ROUTES)}")

        fault = Fault(kind=kind, uuid=uuid, route=route, params={**FAULT_DEFAULTS[kind], **params})
        if kind == "fail_times":
            fault.remaining = int(fault.params["times"])
        with self._lock:
            self._faults[(uuid, kind, route)] = fault
        return fault

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def active_faults(self, route, uuid):
        """Return the faults for one request, keyed by kind.

        A fault for this UUID wins over a server-wide one, and a fault for this
        route wins over one for ``"any"``.
        """
        chosen = {}
        with self._lock:
            faults = list(self._faults.values())
        for fault in faults:
            if fault.uuid is not None and fault.uuid != uuid:
                continue
            if fault.route not in ("any", route):
                continue
            rank = (fault.uuid is not None, fault.route != "any")
            current = chosen.get(fault.kind)
            if current is None or rank > current[0]:
                chosen[fault.kind] = (rank, fault)
        return {kind: fault for kind, (_unused, fault) in chosen.items()}

    def take_failure(self, fault):
        """Use up one of the failures of a ``fail_times`` fault; return whether one was left."""
        with self._lock:
            if fault.remaining <= 0:
                return False
            fault.remaining -= 1
            return True

    # Request log

    @property
    def requests(self):
        """A copy of the ``(method, path, headers)`` log; header names are lower case.

        ``path`` is the request target as sent, query string included.
        """
        with self._lock:
            return list(self._requests)

    def clear_requests(self):
        with self._lock:
            self._requests.clear()

    def record_request(self, method, path, headers):
        with self._lock:
            self._requests.append((method, path, headers))

    def register_connection(self, connection):
        with self._lock:
            self._connections.add(connection)

    def unregister_connection(self, connection):
        with self._lock:
            self._connections.discard(connection)

    def wait_or_stop(self, seconds):
        """Sleep up to ``seconds``; return True when the server is closing."""
        return self._stopping.wait(seconds)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, handler_class, app):
        self.app = app
        super().__init__(address, handler_class)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name, which can wait on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        LOG.exception("fault server: unhandled error serving %s", client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-server/1.0"

    def setup(self):
        super().setup()
        self.server.app.register_connection(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.app.unregister_connection(self.connection)

    def log_message(self, format, *args):
        LOG.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    def _serve(self, head):
        app = self.server.app
        headers = {name.lower(): value for name, value in self.headers.items()}
        app.record_request(self.command, self.path, headers)

        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        api, route, uuid, rest = _parse_route(url.path)
        faults = app.active_faults(route, uuid)
        if faults:
            LOG.info("injecting %s into %s %s", sorted(faults), self.command, self.path)

        try:
            if "down" in faults:
                self._drop_connection()
                return
            if "status" in faults:
                params = faults["status"].params
                code = int(params["code"])
                message = params["message"] or f"injected fault: HTTP {code}"
                self._send(_error(api, code, message), faults, head)
                return
            response = self._route(api, route, uuid, rest, query, faults)
            self._send(response, faults, head)
        except ConnectionError as error:
            LOG.debug("client disconnected during %s %s: %s", self.command, self.path, error)
            self.close_connection = True

    def _route(self, api, route, uuid, rest, query, faults):
        app = self.server.app
        if route == "ping":
            return _json_response(
                200, {"ping": "pong", "imgapi": True, "version": IMGAPI_VERSION, "pid": os.getpid()}
            )
        if route == "list" and api == "imgapi":
            return _list_images(app.list_images(), query)
        if route == "list":
            return _list_datasets(app.list_images(), query, app.url)

        image = app.get_image(uuid) if uuid else None
        if route is None:
            return _error(api, 404, f"{self.path} does not exist")
        if image is None:
            return _error(api, 404, f'image "{uuid}" not found')
        if route == "manifest" and api == "imgapi":
            return _manifest_response(image.manifest)
        if route == "manifest":
            return _json_response(200, _to_dataset_manifest(image.manifest, app.url))
        if api == "dsapi" and rest not in ("file", _dataset_file_name(image.manifest)):
            return _error(api, 404, f"{self.path} does not exist")
        if image.file_path is None or query.get("index", "0") != "0":
            return _error(api, 404, f'image "{uuid}" has no file')
        return self._file_response(api, image, faults)

    def _file_response(self, api, image, faults):
        response = Response(status=200, file_path=image.file_path, file_length=image.size)
        range_header = self.headers.get("Range")
        byte_range = None
        if range_header and "no_range" not in faults:
            byte_range = _parse_range(range_header, image.size)
        if byte_range == "unsatisfiable":
            response = _error(api, 416, f"range {range_header!r} is not satisfiable")
            response.headers.append(("Content-Range", f"bytes */{image.size}"))
            return response

        response.headers += [
            ("Content-Type", "application/octet-stream"),
            ("ETag", f'"{image.sha1}"'),
            ("Last-Modified", email.utils.formatdate(image.mtime, usegmt=True)),
        ]
        if "no_range" not in faults:
            response.headers.append(("Accept-Ranges", "bytes"))
        if byte_range is None:
            response.headers.append(("Content-MD5", image.md5_base64))
            return response

        # Content-MD5 covers the whole file, so a partial body goes without it.
        start, end = byte_range
        response.status = 206
        response.file_start = start
        response.file_length = end - start + 1
        response.headers.append(("Content-Range", f"bytes {start}-{end}/{image.size}"))
        return response

    def _send(self, response, faults, head):
        close_after = False
        self.send_response(response.status)
        for name, value in response.headers:
            if name == "Content-MD5" and "no_md5" in faults:
                continue
            self.send_header(name, value)

        if "no_content_length" in faults:
            self.send_header("Connection", "close")
            close_after = True
        elif "wrong_length" in faults:
            announced = max(0, response.length + int(faults["wrong_length"].params["delta"]))
            self.send_header("Content-Length", str(announced))
            self.send_header("Connection", "close")
            close_after = True
        else:
            self.send_header("Content-Length", str(response.length))
        self.end_headers()

        if not head:
            finished = self._stream(self._body_chunks(response), faults)
            if not finished:
                return
        self.wfile.flush()
        if close_after:
            self._drop_connection()

    def _body_chunks(self, response):
        """Yield ``(file offset, bytes)`` pairs of the body."""
        if response.file_path is None:
            yield 0, response.body
            return
        position = response.file_start
        end = response.file_start + response.file_length
        with open(response.file_path, "rb") as handle:
            handle.seek(position)
            while position < end:
                chunk = handle.read(min(CHUNK_SIZE, end - position))
                if not chunk:
                    break
                yield position, chunk
                position += len(chunk)

    def _stream(self, chunks, faults):
        """Write the body with the faults applied; return False if the connection was cut."""
        corrupt = faults.get("corrupt")
        stall = faults.get("stall")
        stall_at = int(stall.params["after"]) if stall else None
        cut_after = self._cut_after(faults)
        sent = 0

        for position, chunk in chunks:
            if corrupt:
                chunk = _flip_bytes(chunk, position, corrupt.params)
            while True:
                if stall_at is not None and sent >= stall_at:
                    self.wfile.flush()
                    seconds = float(stall.params["seconds"])
                    LOG.info("stalling %s for %.1f s after %d bytes", self.path, seconds, sent)
                    if self.server.app.wait_or_stop(seconds):
                        self._drop_connection()
                        return False
                    stall_at = None
                if cut_after is not None and sent >= cut_after:
                    self._drop_connection()
                    return False
                if not chunk:
                    break
                piece_size = len(chunk)
                for limit in (stall_at, cut_after):
                    if limit is not None:
                        piece_size = min(piece_size, limit - sent)
                self.wfile.write(chunk[:piece_size])
                sent += piece_size
                chunk = chunk[piece_size:]

        if cut_after is not None:
            self._drop_connection()
            return False
        return True

    def _cut_after(self, faults):
        """Return the byte count after which to cut the body, or None to send it all."""
        if "truncate" in faults:
            return int(faults["truncate"].params["after"])
        fail_times = faults.get("fail_times")
        if fail_times and self.command == "GET" and self.server.app.take_failure(fail_times):
            return int(fail_times.params["after"])
        return None

    def _drop_connection(self):
        """Close the connection at once, without finishing any response."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        _shutdown_socket(self.connection)


# Routing and responses


def _parse_route(path):
    """Return ``(api, route, uuid, rest)`` for a URL path; route is None if unknown."""
    parts = [part for part in path.split("/") if part]
    if parts == ["ping"]:
        return "imgapi", "ping", None, None
    if not parts or parts[0] not in ("images", "datasets"):
        return "imgapi", None, None, None

    api = "imgapi" if parts[0] == "images" else "dsapi"
    if len(parts) == 1:
        return api, "list", None, None
    uuid = parts[1] if UUID_PATTERN.match(parts[1]) else None
    if uuid is None:
        return api, None, None, None
    if len(parts) == 2:
        return api, "manifest", uuid, None
    if len(parts) == 3 and (api == "dsapi" or parts[2] == "file"):
        return api, "file", uuid, parts[2]
    return api, None, uuid, None


def _json_response(status, payload, headers=()):
    body = json.dumps(payload, indent=2).encode()
    return Response(
        status=status,
        headers=[("Content-Type", "application/json"), *headers],
        body=body,
    )


def _error(api, status, message, errors=None):
    """Build an error in the API's shape: IMGAPI ``{code, message}``, DSAPI ``{error: {...}}``."""
    if api == "dsapi":
        return _json_response(status, {"error": {"message": message, "code": status}})
    payload = {"code": ERROR_CODES.get(status, "Error"), "message": message}
    if errors is not None:
        payload["errors"] = errors
    return _json_response(status, payload)


def _invalid_parameter(name, message):
    return _error(
        "imgapi", 422, message, errors=[{"field": name, "code": "Invalid", "message": message}]
    )


def _manifest_response(manifest):
    body = json.dumps(manifest, indent=2).encode()
    etag = hashlib.sha1(body).hexdigest()
    return Response(
        status=200,
        headers=[("Content-Type", "application/json"), ("ETag", f'"{etag}"')],
        body=body,
    )


def _list_images(images, query):
    state = query.get("state", "active")
    if state not in IMAGE_STATES:
        return _invalid_parameter(
            "state", f"invalid state {state!r}: expected one of {', '.join(IMAGE_STATES)}"
        )
    try:
        limit = int(query.get("limit", DEFAULT_LIST_LIMIT))
    except ValueError:
        limit = 0
    if limit < 1:
        return _invalid_parameter(
            "limit", f"invalid limit {query['limit']!r}: expected a positive integer"
        )

    ordered = sorted(images, key=_sort_key)
    marker = query.get("marker")
    if marker:
        marker_image = next((image for image in images if image.uuid == marker), None)
        if marker_image is None:
            return _invalid_parameter(
                "marker", f"invalid marker {marker!r}: no image has that UUID"
            )
        marker_key = _sort_key(marker_image)
        ordered = [image for image in ordered if _sort_key(image) > marker_key]

    matches = [
        image.manifest
        for image in ordered
        if _matches_filters(image.manifest, query)
        and (state == "all" or image.manifest.get("state", "active") == state)
    ]
    return _json_response(200, matches[:limit])


def _list_datasets(images, query, base_url):
    ordered = sorted(images, key=_sort_key, reverse=True)
    matches = [
        _to_dataset_manifest(image.manifest, base_url)
        for image in ordered
        if all(
            image.manifest.get(name) == query[name]
            for name in ("name", "version", "type", "os")
            if name in query
        )
    ]
    return _json_response(200, matches)


def _matches_filters(manifest, query):
    for name in ("name", "version"):
        expected = query.get(name)
        if expected is None:
            continue
        value = str(manifest.get(name, ""))
        if expected.startswith("~"):
            if expected[1:] not in value:
                return False
        elif value != expected:
            return False
    if "os" in query and manifest.get("os") != query["os"]:
        return False
    expected_type = query.get("type")
    if expected_type is not None:
        if expected_type.startswith("!"):
            if manifest.get("type") == expected_type[1:]:
                return False
        elif manifest.get("type") != expected_type:
            return False
    return True


def _sort_key(image):
    value = image.manifest.get("published_at")
    try:
        published = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        published = EPOCH
    if published.tzinfo is None:
        published = published.replace(tzinfo=timezone.utc)
    return published, image.uuid


def _to_dataset_manifest(manifest, base_url):
    """Add the DSAPI ``files[0].url`` and ``files[0].path`` to a copy of a v2 manifest."""
    converted = copy.deepcopy(manifest)
    files = converted.get("files") or []
    if files:
        files[0]["path"] = _dataset_file_name(manifest)
        files[0]["url"] = f"{base_url}/datasets/{manifest['uuid']}/file"
    return converted


def _dataset_file_name(manifest):
    files = manifest.get("files") or [{}]
    extension = COMPRESSION_EXTENSIONS.get(files[0].get("compression"), "")
    kind = "zvol" if manifest.get("type") == "zvol" else "zfs"
    return f"{manifest.get('name')}-{manifest.get('version')}.{kind}{extension}"


def _parse_range(header, size):
    """Parse a single ``bytes=`` range into ``(start, end)`` inclusive.

    Returns None for a header to ignore (malformed or several ranges), as
    RFC 9110 allows, and ``"unsatisfiable"`` when no byte of the range exists.
    """
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        return "unsatisfiable"
    return start, end


def _flip_bytes(chunk, position, params):
    """XOR 0xFF over the corrupted file offsets that fall inside this chunk."""
    first = int(params["offset"])
    last = first + int(params["count"])
    start = max(first, position)
    end = min(last, position + len(chunk))
    if start >= end:
        return chunk
    flipped = bytearray(chunk)
    for index in range(start - position, end - position):
        flipped[index] ^= 0xFF
    return bytes(flipped)


def _digest_file(path):
    """Return ``(size, base64 MD5, hex SHA-1)`` of a file, read in chunks."""
    md5 = hashlib.md5()
    sha1 = hashlib.sha1()
    size = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK_SIZE)
            if not chunk:
                break
            md5.update(chunk)
            sha1.update(chunk)
            size += len(chunk)
    return size, base64.b64encode(md5.digest()).decode(), sha1.hexdigest()


def _shutdown_socket(connection):
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# Command line


def parse_fault_spec(spec):
    """Parse ``KIND[:KEY=VALUE,...]`` into ``(uuid, kind, route, params)``.

    The keys ``uuid`` and ``route`` pick the target, and every other key is a
    fault parameter. Values that look like numbers become numbers.
    """
    kind, _unused, options = spec.partition(":")
    params = {}
    for option in filter(None, options.split(",")):
        key, separator, value = option.partition("=")
        if not separator:
            raise ValueError(f"invalid fault option {option!r} in {spec!r}: expected KEY=VALUE")
        params[key] = _parse_number(value)
    uuid = params.pop("uuid", None)
    route = params.pop("route", None)
    return uuid, kind, route, params


def _parse_number(value):
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Serve SmartOS images over IMGAPI and DSAPI on 127.0.0.1, "
        "with optional injected faults."
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port to listen on (default: a free port)"
    )
    parser.add_argument(
        "--catalog",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of <uuid>.json manifests and <uuid>.file image files; repeatable",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault to inject, as KIND[:KEY=VALUE,...] with optional uuid= and route= "
        "keys, for example truncate:after=1024,route=file; repeatable",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    arguments = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    server = FaultServer(port=arguments.port)
    for directory in arguments.catalog:
        added = server.add_directory(directory)
        LOG.info("serving %d images from %s", len(added), directory)
    for spec in arguments.fault:
        uuid, kind, route, params = parse_fault_spec(spec)
        fault = server.set_fault(uuid, kind, route=route, **params)
        LOG.info(
            "fault %s on route %s for %s: %s", kind, fault.route, uuid or "all images", fault.params
        )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_unused: stop.set())
    server.start()
    print(server.url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
