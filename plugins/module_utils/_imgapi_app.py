# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An IMGAPI and DSAPI image server for a repository directory, as a WSGI application.

Stock SmartOS ``imgadm`` (``imgapi`` and ``dsapi`` sources), the Triton
``sdc-clients`` library and this collection's ``image`` module use it as
a source unchanged. ``imgadm publish`` and sdc-clients publish into it
through the write API. See ``docs/server.md`` for the protocol coverage.

Run it under a WSGI server behind nginx::

    SMARTOS_IMAGES_REPOSITORY=/data/images gunicorn --bind 127.0.0.1:8081 \\
        'ansible_collections.smartos.images.plugins.module_utils._imgapi_app:application'

``application`` reads its configuration from these environment variables:

- ``SMARTOS_IMAGES_REPOSITORY``: the repository directory (required).
- ``SMARTOS_IMAGES_ACCEL_PREFIX``: nginx's internal location for image
  files, default ``/_repository/``; empty to stream files from the
  application itself, without nginx.
- ``SMARTOS_IMAGES_CREDENTIALS``: the credentials file of the write API;
  missing or empty closes the write API.
- ``SMARTOS_IMAGES_MAX_UPLOAD``: the largest image file accepted, in bytes
  (default 20 GiB).
- ``SMARTOS_IMAGES_CHANNELS``: comma-separated channel names, the first
  being the default channel; empty for a server without channels.
- ``SMARTOS_IMAGES_MODE``: ``public`` (default) or ``private``, the
  manifest validation rules of the reference server's modes.

``python -m ansible_collections.smartos.images.plugins.module_utils._imgapi_app
hash-password`` reads a password on standard input and prints the hash for
a credentials file line.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import threading
import time
import uuid as uuidlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ansible_collections.smartos.images.plugins.module_utils._imgapi_auth import (
    DEFAULT_ITERATIONS,
    Credentials,
    hash_password,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi_catalog import (
    AREA_PUBLISHED,
    AREA_UNACTIVATED,
    Catalog,
    CatalogImage,
    Layout,
    Snapshot,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi_http import (
    ApiError,
    Request,
    Response,
    bad_request,
    bytes_response,
    check_preconditions,
    error_response,
    http_date,
    invalid_parameter,
    iter_file,
    json_response,
    negotiate_version,
    not_found,
    quoted_etag,
    requested_range,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi_listing import (
    dataset_file_name,
    dataset_view,
    list_body,
    manifest_bytes,
    parse_list_query,
    resolve_channel,
    select_datasets,
    select_images,
)
from ansible_collections.smartos.images.plugins.module_utils._imgapi_store import Store
from ansible_collections.smartos.images.plugins.module_utils._manifest import is_uuid

LOG = logging.getLogger("smartos.images.imgapi")

VERSION = "1.0.0"
DEFAULT_ACCEL_PREFIX = "/_repository/"
DEFAULT_MAX_UPLOAD = 20 * 1024 ** 3
MODES = ("public", "private")
CHANNEL_NAME_RE = re.compile(r"\A[a-z][a-z0-9_-]*\Z")
FILE_CHUNK_SIZE = 1024 * 1024
# A request body the application did not read, because it rejected the
# request early, is read and discarded up to this many bytes before the
# response. A WSGI server that closes a connection with unread data makes
# the kernel reset it, and nginx then returns 502 instead of the error.
DRAIN_LIMIT = 64 * 1024 * 1024
IMAGE_ACTIONS_TEXT = "import, activate, disable, enable or update"


class ServerConfigError(ValueError):
    """A configuration value the server cannot start with."""


class ServerConfig:
    """The settings of one image server."""

    def __init__(self, repository: str, accel_prefix: str = DEFAULT_ACCEL_PREFIX, credentials: Optional[str] = None,
                 max_upload: int = DEFAULT_MAX_UPLOAD, channels: Sequence[str] = (), mode: str = "public",
                 rescan_interval: float = 10.0):
        if not repository:
            raise ServerConfigError("the repository directory is not set; set SMARTOS_IMAGES_REPOSITORY")
        if accel_prefix and not (accel_prefix.startswith("/") and accel_prefix.endswith("/")):
            raise ServerConfigError("accel prefix %r must start and end with /, such as /_repository/, or be empty"
                                    % accel_prefix)
        if not isinstance(max_upload, int) or max_upload < 1:
            raise ServerConfigError("max upload %r is not a positive number of bytes" % (max_upload,))
        for channel in channels:
            if not CHANNEL_NAME_RE.match(channel):
                raise ServerConfigError("channel name %r is invalid; use lower-case letters, digits, - and _, "
                                        "starting with a letter" % channel)
        if mode not in MODES:
            raise ServerConfigError("mode %r is not one of %s" % (mode, ", ".join(MODES)))
        self.repository = os.path.abspath(repository)
        self.accel_prefix = accel_prefix
        self.credentials = credentials or None
        self.max_upload = max_upload
        self.channels = list(channels)
        self.mode = mode
        self.rescan_interval = rescan_interval


def config_from_environment(environ: Optional[Mapping[str, str]] = None) -> ServerConfig:
    """Build the configuration from the ``SMARTOS_IMAGES_*`` environment variables."""
    env = os.environ if environ is None else environ
    max_upload_text = env.get("SMARTOS_IMAGES_MAX_UPLOAD", "").strip()
    if max_upload_text and not max_upload_text.isdigit():
        raise ServerConfigError("SMARTOS_IMAGES_MAX_UPLOAD %r is not a number of bytes" % max_upload_text)
    channels = [name.strip() for name in env.get("SMARTOS_IMAGES_CHANNELS", "").split(",") if name.strip()]
    return ServerConfig(
        repository=env.get("SMARTOS_IMAGES_REPOSITORY", ""),
        accel_prefix=env.get("SMARTOS_IMAGES_ACCEL_PREFIX", DEFAULT_ACCEL_PREFIX),
        credentials=env.get("SMARTOS_IMAGES_CREDENTIALS") or None,
        max_upload=int(max_upload_text) if max_upload_text else DEFAULT_MAX_UPLOAD,
        channels=channels,
        mode=env.get("SMARTOS_IMAGES_MODE", "public") or "public",
    )


Handler = Callable[[Request, Snapshot, Tuple[str, ...]], Response]


class ImageServer:
    """The WSGI application: routes requests to the catalog (reads) and the store (writes)."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.layout = Layout(config.repository)
        if not os.path.isdir(config.repository):
            raise ServerConfigError("repository %s is not a directory; create it or correct "
                                    "SMARTOS_IMAGES_REPOSITORY" % config.repository)
        try:
            self.layout.ensure()
        except OSError as exc:
            LOG.warning("cannot create %s (%s); the write API fails until the server may write there",
                        self.layout.state_dir, exc.strerror)
        self.catalog = Catalog(self.layout, rescan_interval=config.rescan_interval)
        self.credentials = Credentials(config.credentials)
        self.store = Store(self.layout, self.catalog, config.mode, config.channels, config.max_upload)
        self.store.remove_stale_uploads()
        self.default_channel = config.channels[0] if config.channels else None
        if config.credentials and not self.credentials.users():
            LOG.warning("credentials file %s is missing or has no valid user; the write API is closed",
                        config.credentials)

    # ---- WSGI

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Any:
        started = time.monotonic()
        request: Optional[Request] = None
        try:
            request = Request(environ)
            response = self.handle(request)
        except ApiError as error:
            response = error_response(error)
            self._log_error(environ, error, request)
        except Exception:  # pylint: disable=broad-except
            # Any other failure is a bug or an I/O error. It is logged in full,
            # and the client gets a 500 without internals, as from the reference server.
            LOG.exception("%s %s failed with an internal error", environ.get("REQUEST_METHOD"),
                          environ.get("PATH_INFO"))
            response = error_response(ApiError(500, "InternalError",
                                               "internal error; the image server's log has the details"))
        response.headers.append(("X-Request-Id", str(uuidlib.uuid4())))
        if response.status >= 400:
            _drain(environ)
        body = response.body
        if environ.get("REQUEST_METHOD") == "HEAD" or response.status in (204, 304):
            if hasattr(body, "close"):
                body.close()
            body = b""
        LOG.info("%s %s %d %.1f ms%s%s", environ.get("REQUEST_METHOD"), _logged_path(environ), response.status,
                 (time.monotonic() - started) * 1000,
                 " image=%s" % request.uuid if request is not None and request.uuid else "",
                 " user=%s" % request.user if request is not None and request.user else "")
        start_response(response.status_line(), response.headers)
        if isinstance(body, bytes):
            return [body]
        return body

    def _log_error(self, environ: Dict[str, Any], error: ApiError, request: Optional[Request]) -> None:
        uuid = error.uuid or (request.uuid if request is not None else None)
        LOG.warning("%s %s: %d %s%s: %s", environ.get("REQUEST_METHOD"), _logged_path(environ), error.status,
                    error.code, " for image %s" % uuid if uuid else "", error.message)

    # ---- routing

    def handle(self, request: Request) -> Response:
        request.version = negotiate_version(request.header("Accept-Version"))
        request.user = self.credentials.authenticate(request)
        routes, parts = self._route(request.path)
        method = "GET" if request.method == "HEAD" else request.method
        handler = routes.get(method)
        if handler is None:
            allowed = sorted(set(routes) | ({"HEAD"} if "GET" in routes else set()))
            raise ApiError(405, "MethodNotAllowed", "%s is not allowed on %s; use %s"
                           % (request.method, _shown_path(request.path), ", ".join(allowed)),
                           headers=[("Allow", ", ".join(allowed))])
        if method != "GET" and request.user is None:
            # Raises 401: a write needs credentials, and a valid header was
            # already accepted above, without paying for the hash twice.
            request.user = self.credentials.require(request)
        return handler(request, self.catalog.snapshot(), parts)

    def _route(self, path: str) -> Tuple[Dict[str, Handler], Tuple[str, ...]]:
        if "\x00" in path:
            raise bad_request("BadRequest", "the request path contains a NUL byte")
        if not path.startswith("/"):
            raise not_found("%s does not exist" % _shown_path(path))
        parts = path[1:].split("/")
        if len(parts) == 2 and parts[1] == "" and parts[0] in ("images", "datasets"):
            parts = parts[:1]
        routes: Optional[Dict[str, Handler]] = None
        if parts == ["ping"]:
            routes = {"GET": self.ping}
        elif parts == ["images"]:
            routes = {"GET": self.list_images}
        elif parts == ["datasets"]:
            routes = {"GET": self.list_datasets}
        elif parts == ["channels"] and self.config.channels:
            routes = {"GET": self.list_channels}
        elif len(parts) >= 2 and parts[0] in ("images", "datasets") and is_uuid(parts[1]):
            routes = self._image_routes(parts)
        if routes is None:
            raise not_found("%s does not exist" % _shown_path(path))
        return routes, tuple(parts)

    def _image_routes(self, parts: List[str]) -> Optional[Dict[str, Handler]]:
        if parts[0] == "images":
            if len(parts) == 2:
                return {"GET": self.get_image, "POST": self.image_action, "DELETE": self.delete_image}
            if len(parts) == 3 and parts[2] == "file":
                return {"GET": self.get_image_file, "PUT": self.put_image_file}
            if len(parts) == 3 and parts[2] == "icon":
                return {"GET": self.get_icon, "PUT": self.put_icon, "DELETE": self.delete_icon}
            return None
        if len(parts) == 2:
            return {"GET": self.get_dataset}
        # DSAPI clients download files[0].url, /datasets/:uuid/file, and
        # older ones the path under the dataset, /datasets/:uuid/<files[0].path>.
        if len(parts) == 3 and parts[2]:
            return {"GET": self.get_dataset_file}
        return None

    def _visible(self, request: Request, snapshot: Snapshot, uuid: str) -> CatalogImage:
        request.uuid = uuid
        image = snapshot.by_uuid.get(uuid)
        if image is None or (image.area == AREA_UNACTIVATED and request.user is None):
            raise not_found("image %s not found" % uuid, uuid=uuid)
        channel = resolve_channel(request, self.config.channels)
        if channel is not None and channel not in image.channels(self.default_channel):
            raise not_found("image %s not found in channel %s" % (uuid, channel), uuid=uuid)
        return image

    # ---- IMGAPI read side

    def ping(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        body: Dict[str, Any] = {"ping": "pong", "version": VERSION, "imgapi": True, "pid": os.getpid()}
        if request.user:
            body["user"] = request.user
        return json_response(body)

    def list_images(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        key = ("images", request.query_string, request.version, request.user is not None)
        body = snapshot.cached(key)
        if body is None:
            query = parse_list_query(request, self.config.channels, request.user is not None)
            images = select_images(snapshot, query, self.default_channel)
            body = list_body(images, request.version, self.config.mode)
            snapshot.remember(key, body)
        return bytes_response(body)

    def get_image(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        image = self._visible(request, snapshot, parts[1])
        body = manifest_bytes(image, request.version, self.config.mode, pretty=True)
        etag = quoted_etag(hashlib.sha1(body).hexdigest())
        if request.header("If-None-Match") is not None and check_preconditions(request, etag, 0) == 304:
            return Response(304, [("ETag", etag)])
        return bytes_response(body, headers=[("ETag", etag)])

    def get_image_file(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        image = self._visible(request, snapshot, parts[1])
        if request.query.get("index", "0") != "0":
            raise not_found('image "%s" has no file of index %s' % (image.uuid, request.query["index"]),
                            uuid=image.uuid)
        return self._file_response(request, image)

    def _file_response(self, request: Request, image: CatalogImage) -> Response:
        if not image.has_file:
            raise not_found('image "%s" has no file' % image.uuid, uuid=image.uuid)
        record = self.catalog.file_record(image)
        etag = quoted_etag(record["sha1"])
        last_modified = record["mtime_ns"] // 10 ** 9
        headers = [("ETag", etag), ("Last-Modified", http_date(last_modified))]
        condition = check_preconditions(request, etag, last_modified)
        if condition == 304:
            return Response(304, headers)
        if condition == 412:
            raise ApiError(412, "PreconditionFailed", "the If-Match or If-Unmodified-Since condition does not hold "
                                                      "for the file of image %s" % image.uuid, headers=headers)
        headers.append(("Content-MD5", record["md5"]))
        if self.config.accel_prefix and image.area == AREA_PUBLISHED:
            # nginx sends the bytes, with Content-Length and Range, from its
            # internal location; the template copies these headers there.
            headers += [("Content-Type", "application/octet-stream"), ("Content-Length", "0"),
                        ("X-Accel-Redirect", "%s%s/file" % (self.config.accel_prefix, image.uuid))]
            return Response(200, headers)
        return self._stream_file(request, image.file_path, record["size"], headers, etag, last_modified)

    def _stream_file(self, request: Request, path: str, size: int, headers: List[Tuple[str, str]], etag: str,
                     last_modified: int) -> Response:
        headers = headers + [("Accept-Ranges", "bytes")]
        span = requested_range(request, size, etag, last_modified)
        if span == "unsatisfiable":
            error = ApiError(416, "RequestedRangeNotSatisfiable", "the requested range starts at or after the end "
                                                                  "of the %d-byte file" % size,
                             headers=[("Content-Range", "bytes */%d" % size)])
            return error_response(error)
        if span is None:
            headers += [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
            if request.method == "HEAD":
                return Response(200, headers)
            wrapper = request.environ.get("wsgi.file_wrapper")
            if wrapper is not None:
                return Response(200, headers, wrapper(open(path, "rb"), FILE_CHUNK_SIZE))  # pylint: disable=consider-using-with
            return Response(200, headers, iter_file(path, 0, size))
        start, end = span
        headers += [("Content-Type", "application/octet-stream"), ("Content-Length", str(end - start + 1)),
                    ("Content-Range", "bytes %d-%d/%d" % (start, end, size))]
        return Response(206, headers, iter_file(path, start, end - start + 1))

    def get_icon(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        image = self._visible(request, snapshot, parts[1])
        record = image.icon
        if record is None:
            raise not_found('image "%s" has no icon' % image.uuid, uuid=image.uuid)
        try:
            stat = os.stat(image.icon_path)
        except FileNotFoundError:
            raise not_found('image "%s" has no icon' % image.uuid, uuid=image.uuid) from None
        etag = quoted_etag(record["sha1"])
        last_modified = int(stat.st_mtime)
        headers = [("ETag", etag), ("Last-Modified", http_date(last_modified))]
        if check_preconditions(request, etag, last_modified) == 304:
            return Response(304, headers)
        headers.append(("Content-MD5", record["md5"]))
        with open(image.icon_path, "rb") as handle:
            data = handle.read()
        return bytes_response(data, headers=headers, content_type=record.get("content_type", "image/png"))

    def list_channels(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        channels = []
        for index, name in enumerate(self.config.channels):
            channel: Dict[str, Any] = {"name": name, "description": "%s channel" % name}
            if index == 0:
                channel["default"] = True
            channels.append(channel)
        return json_response(channels)

    # ---- DSAPI read side

    def list_datasets(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        base_url = request.base_url()
        key = ("datasets", request.query_string, base_url)
        body = snapshot.cached(key)
        if body is None:
            images = select_datasets(snapshot, request, self.default_channel)
            views = [dataset_view(image, base_url, self.config.mode) for image in images]
            body = json_response(views).body
            snapshot.remember(key, body)
        return bytes_response(body)

    def _dataset(self, request: Request, snapshot: Snapshot, uuid: str) -> CatalogImage:
        image = self._visible(request, snapshot, uuid)
        if image.area != AREA_PUBLISHED:
            raise not_found("dataset %s not found" % uuid, uuid=uuid)
        return image

    def get_dataset(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        image = self._dataset(request, snapshot, parts[1])
        return json_response(dataset_view(image, request.base_url(), self.config.mode))

    def get_dataset_file(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        image = self._dataset(request, snapshot, parts[1])
        if parts[2] not in ("file", dataset_file_name(image)):
            raise not_found("dataset %s has no file %s; its file is /datasets/%s/file"
                            % (image.uuid, _shown_path(parts[2]), image.uuid), uuid=image.uuid)
        return self._file_response(request, image)

    # ---- write API

    def image_action(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        uuid = parts[1]
        request.uuid = uuid
        action = request.query.get("action")
        if action == "import":
            if "source" in request.query:
                raise invalid_parameter("source", "importing from a source is not supported; send the manifest as "
                                                  "the request body and upload the file")
            channel = resolve_channel(request, self.config.channels) or self.default_channel
            body = request.read_json()
            image = self.store.import_image(uuid, body, channel)
        elif action == "activate":
            image = self.store.activate(uuid)
        elif action in ("disable", "enable"):
            image = self.store.set_disabled(uuid, action == "disable")
        elif action == "update":
            image = self.store.update(uuid, request.read_json())
        elif action is None:
            raise invalid_parameter("action", "missing action; use ?action=%s" % IMAGE_ACTIONS_TEXT,
                                    code="MissingParameter")
        else:
            raise invalid_parameter("action", "action %r is not supported by this server; use %s"
                                    % (action, IMAGE_ACTIONS_TEXT))
        return bytes_response(manifest_bytes(image, request.version, self.config.mode, pretty=True))

    def put_image_file(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        request.uuid = parts[1]
        image = self.store.add_file(parts[1], request)
        return bytes_response(manifest_bytes(image, request.version, self.config.mode, pretty=True))

    def delete_image(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        request.uuid = parts[1]
        self.store.delete(parts[1])
        return Response(204)

    def put_icon(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        request.uuid = parts[1]
        image = self.store.put_icon(parts[1], request)
        return bytes_response(manifest_bytes(image, request.version, self.config.mode, pretty=True))

    def delete_icon(self, request: Request, snapshot: Snapshot, parts: Tuple[str, ...]) -> Response:
        request.uuid = parts[1]
        image = self.store.delete_icon(parts[1])
        return bytes_response(manifest_bytes(image, request.version, self.config.mode, pretty=True))


def _drain(environ: Dict[str, Any]) -> None:
    """Read and discard what is left of the request body, up to ``DRAIN_LIMIT`` bytes.

    NOTE: a rejected upload with more than ``DRAIN_LIMIT`` bytes left may
    still reach the client as a reset connection (a 502 from nginx).
    """
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    drained = 0
    try:
        while drained < DRAIN_LIMIT:
            chunk = stream.read(min(FILE_CHUNK_SIZE, DRAIN_LIMIT - drained))
            if not chunk:
                return
            drained += len(chunk)
    except Exception as exc:  # pylint: disable=broad-except
        # The WSGI server's own exception types for a broken body cannot be
        # imported here; the connection is lost either way.
        LOG.debug("discarding the rest of the request body failed after %d bytes: %s", drained, exc)


def _shown_path(path: str) -> str:
    """Return a request path for a message: escaped, and cut to 200 characters."""
    text = path.encode("latin-1", "replace").decode("utf-8", "replace").encode("unicode_escape").decode("ascii")
    return text if len(text) <= 200 else text[:200] + "..."


def _logged_path(environ: Dict[str, Any]) -> str:
    path = _shown_path(environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING", "")
    return path + ("?" + _shown_path(query) if query else "")


def make_app(config: Union[ServerConfig, Mapping[str, Any]]) -> ImageServer:
    """Return the WSGI application for ``config``, a ServerConfig or a mapping of its arguments."""
    if not isinstance(config, ServerConfig):
        config = ServerConfig(**dict(config))
    return ImageServer(config)


def configure_logging() -> None:
    """Send the server's log to standard error unless the WSGI server configured logging already."""
    if LOG.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(os.environ.get("SMARTOS_IMAGES_LOG_LEVEL", "INFO").upper())


class _EnvironmentApplication:
    """The WSGI entry point ``application``, configured from the environment.

    When ``SMARTOS_IMAGES_REPOSITORY`` is set at import, as under a WSGI
    server, the server is built at once, so a configuration error stops the
    WSGI server's start. Otherwise it is built on the first request, so that
    importing this module for other uses never fails.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._server: Optional[ImageServer] = None

    def server(self) -> ImageServer:
        with self._lock:
            if self._server is None:
                configure_logging()
                self._server = make_app(config_from_environment())
                LOG.info("image server %s serving %s (mode %s, channels %s, files %s)", VERSION,
                         self._server.config.repository, self._server.config.mode,
                         ",".join(self._server.config.channels) or "none",
                         "through nginx at " + self._server.config.accel_prefix
                         if self._server.config.accel_prefix else "streamed by the application")
            return self._server

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Any:
        return self.server()(environ, start_response)


application = _EnvironmentApplication()
if os.environ.get("SMARTOS_IMAGES_REPOSITORY"):
    application.server()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ansible_collections.smartos.images.plugins.module_utils._imgapi_app",
        description="Tools for the smartos.images image server.")
    commands = parser.add_subparsers(dest="command", required=True)
    hashing = commands.add_parser("hash-password", help="read a password on standard input and print its hash "
                                                        "for a credentials file line, user:<hash>")
    hashing.add_argument("--user", help="print the whole line, USER:<hash>")
    hashing.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                         help="PBKDF2 iterations (default %(default)s)")
    arguments = parser.parse_args(argv)

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        parser.error("the password on standard input is empty; pipe a password, for example with: "
                     "printf '%%s\\n' \"$PASSWORD\" | ... hash-password")
    if arguments.user is not None and (not arguments.user or ":" in arguments.user):
        parser.error("user name %r must be non-empty and contain no colon" % arguments.user)
    encoded = hash_password(password, iterations=arguments.iterations)
    sys.stdout.write(("%s:%s" % (arguments.user, encoded) if arguments.user is not None else encoded) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
