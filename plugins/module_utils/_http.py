# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HTTP access to image servers through ``ansible.module_utils.urls``.

Going through Ansible's ``Request`` gives proxies (``https_proxy``,
``http_proxy`` and ``no_proxy``, upper or lower case), client certificates
and CA handling the same way every other Ansible module does.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
from typing import Any, Dict, Optional

from ansible.module_utils.urls import Request, make_context

from ansible_collections.smartos.images.plugins.module_utils._errors import SourceError

USER_AGENT = "smartos.images/1.0.0 (ansible-collection)"

# Failures of the connection itself, which are retried and reported as the
# source being unreachable. HTTP responses with an error status are handled
# separately.
TRANSIENT_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    socket.timeout,
    TimeoutError,
    ssl.SSLError,
)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return "HTTP %d %s" % (exc.code, exc.reason)
    if isinstance(exc, urllib.error.URLError):
        return "cannot connect: %s" % (exc.reason,)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed after %d bytes of the body" % len(exc.partial)
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def set_read_timeout(response: Any, seconds: float) -> None:
    """Apply ``seconds`` to every later read of ``response``'s socket.

    urllib uses one timeout for connecting and reading; this narrows or widens
    it once the connection is up.
    """
    # NOTE: reaches into http.client's buffered socket file; when the layout
    # differs, the connect timeout stays in force for reads as well.
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


class HttpClient:
    """Send GET requests with timeouts and bounded retries."""

    def __init__(
        self,
        *,
        connect_timeout: float = 15.0,
        read_timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        user_agent: str = USER_AGENT,
    ):
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.backoff = backoff
        self.user_agent = user_agent
        # Loading the CA certificates takes tens of milliseconds, and an
        # import makes several requests, so one context serves them all.
        self._contexts: Dict[bool, Any] = {}

    def sleep_before_retry(self, attempt: int) -> None:
        time.sleep(self.backoff * (2 ** attempt))

    def open(self, url: str, *, insecure: bool = False, headers: Optional[Dict[str, str]] = None) -> Any:
        """Open ``url`` once; raise urllib's errors unchanged."""
        if insecure not in self._contexts:
            self._contexts[insecure] = make_context(validate_certs=not insecure)
        request = Request(
            headers=dict(headers or {}),
            http_agent=self.user_agent,
            validate_certs=not insecure,
            timeout=self.connect_timeout,
            follow_redirects="safe",
            context=self._contexts[insecure],
        )
        response = request.open("GET", url)
        set_read_timeout(response, self.read_timeout)
        return response

    def get_json(self, url: str, *, insecure: bool = False, headers: Optional[Dict[str, str]] = None) -> Any:
        """Return the decoded JSON body of ``url``, or None for HTTP 404.

        Connection failures and 5xx responses are retried; anything else, or the
        last failure, raises ``SourceError``.
        """
        last: Optional[BaseException] = None
        body = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep_before_retry(attempt - 1)
            try:
                response = self.open(url, insecure=insecure, headers=headers)
                body = response.read()
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                last = exc
                if exc.code < 500:
                    break
            except TRANSIENT_ERRORS as exc:
                last = exc
        if body is None:
            raise SourceError("%s: %s" % (url, describe_error(last)), url=url,
                              status=getattr(last, "code", None))
        try:
            return json.loads(body)
        except ValueError as exc:
            raise SourceError(
                "%s: the response is not JSON (%s): %r" % (url, exc, body[:200]), url=url
            ) from exc
