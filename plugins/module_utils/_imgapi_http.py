# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HTTP plumbing of the image server: requests, responses, errors and headers.

Everything here works on plain WSGI ``environ`` dictionaries and the
Python standard library, so the application runs under any WSGI server.
Error bodies have the shape IMGAPI clients parse, ``{"code", "message"}``
plus ``errors`` for validation failures, with the codes and HTTP statuses
of the reference IMGAPI server (sdc-imgapi ``lib/errors.js`` and restify's
generic errors).
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import urllib.parse
from typing import Any, Dict, Iterable, List, Optional, Tuple

JSON_TYPE = "application/json"
# Request bodies of the JSON routes (a manifest) are far smaller; a larger
# body is rejected before it is read.
MAX_JSON_BODY = 1024 * 1024

REASONS = {
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    416: "Requested Range Not Satisfiable",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# The API versions this server implements. A request without Accept-Version
# is served as "~1", which hides the manifest field "channels", as the
# reference server does.
API_VERSIONS = ((2, 0, 0), (1, 0, 0))
DEFAULT_VERSION_RANGE = "~1"


class ApiError(Exception):
    """An error response: HTTP ``status``, IMGAPI ``code``, a message and optional field errors."""

    def __init__(self, status: int, code: str, message: str, errors: Optional[List[Dict[str, str]]] = None,
                 headers: Optional[List[Tuple[str, str]]] = None, uuid: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = list(headers or [])
        self.uuid = uuid

    def body(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def not_found(message: str, uuid: Optional[str] = None) -> ApiError:
    return ApiError(404, "ResourceNotFound", message, uuid=uuid)


def invalid_parameter(field: str, message: str, code: str = "Invalid") -> ApiError:
    return ApiError(422, "InvalidParameter", message, errors=[{"field": field, "code": code, "message": message}])


def validation_failed(message: str, errors: List[Dict[str, str]], uuid: Optional[str] = None) -> ApiError:
    return ApiError(422, "ValidationFailed", message, errors=errors, uuid=uuid)


def bad_request(code: str, message: str, uuid: Optional[str] = None) -> ApiError:
    return ApiError(400, code, message, uuid=uuid)


class Request:
    """One request, read from a WSGI ``environ``."""

    def __init__(self, environ: Dict[str, Any]):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = environ.get("PATH_INFO", "") or "/"
        self.query_string = environ.get("QUERY_STRING", "")
        self.user: Optional[str] = None
        self.version = 1
        self.uuid: Optional[str] = None
        try:
            pairs = urllib.parse.parse_qsl(self.query_string, keep_blank_values=True, strict_parsing=False,
                                           errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise bad_request("BadRequest", "the query string is not valid percent-encoded UTF-8; encode it") from None
        self.query_pairs: List[Tuple[str, str]] = pairs
        self.query: Dict[str, str] = {}
        for key, value in pairs:
            # The first value of a repeated parameter wins, as in restify's
            # query parser for scalar parameters; list parameters use query_all.
            self.query.setdefault(key, value)

    def header(self, name: str) -> Optional[str]:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() == "content-type":
            key = "CONTENT_TYPE"
        elif name.lower() == "content-length":
            key = "CONTENT_LENGTH"
        value = self.environ.get(key)
        return value if value not in (None, "") else None

    def query_all(self, name: str) -> List[str]:
        return [value for key, value in self.query_pairs if key == name]

    def content_length(self) -> Optional[int]:
        """Return the declared body length, or None for a body without one (chunked or none)."""
        text = self.header("Content-Length")
        if text is None:
            return None
        if not text.isdigit():
            raise bad_request("InvalidHeader", "Content-Length %r is not a number of bytes" % text)
        return int(text)

    def has_body(self) -> bool:
        length = self.content_length()
        if length is not None:
            return length > 0
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()

    def read_json(self, max_size: int = MAX_JSON_BODY) -> Any:
        """Read and parse a JSON body of at most ``max_size`` bytes."""
        length = self.content_length()
        if length is not None and length > max_size:
            raise ApiError(413, "RequestEntityTooLarge",
                           "request body of %d bytes is larger than the maximum %d for a JSON body"
                           % (length, max_size))
        data = read_body(self.environ, max_size + 1 if length is None else length)
        if len(data) > max_size:
            raise ApiError(413, "RequestEntityTooLarge",
                           "request body is larger than the maximum %d bytes for a JSON body" % max_size)
        if not data.strip():
            raise bad_request("InvalidContent", "the request body is empty; send a JSON object")
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request("InvalidContent", "the request body is not valid JSON: %s" % exc) from None

    def base_url(self) -> str:
        """Return ``scheme://host[:port]`` as the client addressed this server."""
        scheme = (self.header("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
        if scheme not in ("http", "https"):
            scheme = self.environ.get("wsgi.url_scheme", "http")
        host = self.header("Host")
        if host is None or not HOST_RE.match(host):
            # A missing or malformed Host header could inject text into the
            # URLs built from it, so fall back to the server's own address.
            host = "%s:%s" % (self.environ.get("SERVER_NAME", "localhost"), self.environ.get("SERVER_PORT", "80"))
        return "%s://%s" % (scheme, host)


HOST_RE = re.compile(r"\A(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z")


def _reject_constant(name):
    raise ValueError("%s is not a JSON value" % name)


def read_body(environ: Dict[str, Any], limit: int) -> bytes:
    """Read at most ``limit`` bytes of the request body."""
    stream = environ.get("wsgi.input")
    if stream is None or limit <= 0:
        return b""
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# ---- responses

class Response:
    """A response: status, headers and a body of bytes or an iterable of bytes."""

    def __init__(self, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None,
                 body: Any = b"", length: Optional[int] = None):
        self.status = status
        self.headers = list(headers or [])
        self.body = body
        self.length = length
        self.close_connection = False

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def status_line(self) -> str:
        return "%d %s" % (self.status, REASONS.get(self.status, "Unknown"))


def json_bytes(value: Any, pretty: bool = True) -> bytes:
    if pretty:
        return (json.dumps(value, indent=2) + "\n").encode("utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def json_response(value: Any, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None) -> Response:
    return bytes_response(json_bytes(value), status=status, headers=headers)


def bytes_response(body: bytes, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None,
                   content_type: str = JSON_TYPE) -> Response:
    all_headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    all_headers.extend(headers or [])
    return Response(status, all_headers, body)


def error_response(error: ApiError) -> Response:
    response = json_response(error.body(), status=error.status, headers=error.headers)
    return response


# ---- Accept-Version

_VERSION_PART = r"(?:[0-9]+|[xX*])"
_PARTIAL_VERSION_RE = re.compile(r"\A(%s)(?:\.(%s)(?:\.(%s))?)?\Z" % (_VERSION_PART, _VERSION_PART, _VERSION_PART))
_COMPARATOR_RE = re.compile(r"\A(>=|<=|>|<|=|~>|~|\^)?v?(.+)\Z")


def negotiate_version(header: Optional[str]) -> int:
    """Return the major API version (1 or 2) that satisfies an ``Accept-Version`` range.

    A missing header means ``~1``. The range syntax is node-semver's:
    ``*``, ``2``, ``2.0.0``, ``~2``, ``^1.0``, ``>=1``, ``1.x``, space for
    "and", ``||`` for "or", ``A - B`` for an inclusive span. Raises
    ApiError 400 InvalidVersion when no supported version satisfies it.
    """
    text = DEFAULT_VERSION_RANGE if header is None else header.strip()
    for version in API_VERSIONS:
        if _satisfies(version, text):
            return version[0]
    raise ApiError(400, "InvalidVersion",
                   "Accept-Version %r matches none of the supported API versions %s; send for example ~2"
                   % (text, ", ".join("%d.%d.%d" % version for version in API_VERSIONS)))


def _satisfies(version: Tuple[int, int, int], text: str) -> bool:
    for alternative in text.split("||"):
        alternative = alternative.strip()
        if _satisfies_all(version, alternative):
            return True
    return False


def _satisfies_all(version, text: str) -> bool:
    if text in ("", "*", "x", "X", "latest"):
        return True
    span = re.match(r"\A(\S+)\s+-\s+(\S+)\Z", text)
    if span:
        low, high = _partial(span.group(1)), _partial(span.group(2))
        if low is None or high is None:
            return False
        return _compare_ge(version, low) and _compare_le_partial(version, high)
    for token in re.sub(r"(>=|<=|>|<|=|~>|~|\^)\s+", r"\1", text).split():
        if not _satisfies_one(version, token):
            return False
    return True


def _partial(text: str):
    """Parse ``1``, ``1.2``, ``1.2.3``, ``1.x`` into a tuple where None marks a wildcard part."""
    text = text[1:] if text[:1] in ("v", "=") else text
    text = text.split("-", 1)[0].split("+", 1)[0]
    match = _PARTIAL_VERSION_RE.match(text)
    if match is None:
        return None
    parts = []
    for part in match.groups():
        if part is None or part in ("x", "X", "*"):
            parts.append(None)
        else:
            parts.append(int(part))
    # A wildcard part makes every later part a wildcard too.
    for index in range(len(parts)):
        if parts[index] is None:
            parts[index + 1:] = [None] * (len(parts) - index - 1)
            break
    return tuple(parts)


def _lower_bound(parts) -> Tuple[int, int, int]:
    return tuple(0 if part is None else part for part in parts)  # type: ignore[return-value]


def _compare_ge(version, parts) -> bool:
    return version >= _lower_bound(parts)


def _compare_le_partial(version, parts) -> bool:
    major, minor, patch = parts
    if major is None:
        return True
    if minor is None:
        return version[0] <= major
    if patch is None:
        return version[:2] <= (major, minor)
    return version <= (major, minor, patch)


def _satisfies_one(version, token: str) -> bool:
    match = _COMPARATOR_RE.match(token)
    if match is None:
        return False
    operator, rest = match.group(1) or "", match.group(2)
    parts = _partial(rest)
    if parts is None:
        return False
    major, minor, patch = parts
    if operator in ("", "="):
        return all(part is None or part == actual for part, actual in zip(parts, version))
    if operator in ("~", "~>"):
        if major is None:
            return True
        if minor is None:
            return version[0] == major
        return version[:2] == (major, minor) and version >= _lower_bound(parts)
    if operator == "^":
        if major is None:
            return True
        if major != 0:
            return version[0] == major and version >= _lower_bound(parts)
        if minor is None or minor != 0:
            return version[0] == 0 and (minor is None or version[1] == minor) and version >= _lower_bound(parts)
        return version[:2] == (0, 0) and (patch is None or version[2] == patch)
    if operator == ">=":
        return version >= _lower_bound(parts)
    if operator == "<=":
        return _compare_le_partial(version, parts)
    if operator == ">":
        if major is None:
            return False
        if minor is None:
            return version[0] > major
        if patch is None:
            return version[:2] > (major, minor)
        return version > (major, minor, patch)
    # operator == "<"
    return version < _lower_bound(parts)


# ---- dates, entity tags and ranges

def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_http_date(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def quoted_etag(value: str) -> str:
    return '"%s"' % value


def _etag_list(header: str) -> List[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def etag_matches(header: Optional[str], etag: str, weak: bool = True) -> bool:
    """Return whether an ``If-None-Match``/``If-Match`` list names ``etag`` (a quoted tag) or is ``*``."""
    if header is None:
        return False
    for tag in _etag_list(header):
        if tag == "*":
            return True
        if weak and tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def check_preconditions(request: Request, etag: str, last_modified: int) -> Optional[int]:
    """Return 304 or 412 when the conditional headers require it (RFC 9110, section 13.2.2), else None.

    ``last_modified`` is in whole seconds, the precision of an HTTP date.
    """
    if_match = request.header("If-Match")
    if if_match is not None:
        if not etag_matches(if_match, etag, weak=False):
            return 412
    else:
        unmodified_since = parse_http_date(request.header("If-Unmodified-Since"))
        if unmodified_since is not None and last_modified > unmodified_since:
            return 412

    if request.method not in ("GET", "HEAD"):
        return None
    if_none_match = request.header("If-None-Match")
    if if_none_match is not None:
        return 304 if etag_matches(if_none_match, etag) else None
    modified_since = parse_http_date(request.header("If-Modified-Since"))
    if modified_since is not None and last_modified <= modified_since:
        return 304
    return None


_RANGE_RE = re.compile(r"\A\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*\Z", re.IGNORECASE)


def requested_range(request: Request, size: int, etag: str, last_modified: int):
    """Return the ``(start, end)`` byte range to send (end inclusive), None for the whole body, or "unsatisfiable".

    Only one range is served: a header with several ranges, or one that is
    not understood, is ignored and the whole body is sent, as RFC 9110
    allows. ``If-Range`` that names another version also sends the whole body.
    """
    header = request.header("Range")
    if header is None or request.method not in ("GET", "HEAD"):
        return None
    if_range = request.header("If-Range")
    if if_range is not None:
        if if_range.startswith('"') or if_range.startswith("W/"):
            if if_range != etag:
                return None
        else:
            date = parse_http_date(if_range)
            if date is None or int(date) != last_modified:
                return None
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return (max(size - suffix, 0), size - 1)
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = int(last) if last else size - 1
    if end < start:
        return None
    return (start, min(end, size - 1))


def iter_file(path: str, start: int, length: int, chunk_size: int = 256 * 1024) -> Iterable[bytes]:
    """Yield ``length`` bytes of ``path`` from offset ``start``."""
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(chunk_size, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
