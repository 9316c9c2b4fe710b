"""Call a WSGI application in process, the way a WSGI server would, for unit tests.

``call(app, "GET", "/images", query="limit=2")`` builds a WSGI ``environ``
(``PATH_INFO`` as a WSGI server passes it: percent-decoded, one character
per byte), runs the application, reads its whole body and returns a
``WsgiResponse``.
"""

from __future__ import annotations

import base64
import io
import json
import wsgiref.util


class WsgiResponse:
    """A finished response: integer status, headers by lower-case name, and the body."""

    def __init__(self, status, header_list, body):
        self.status = status
        self.header_list = header_list
        self.headers = {}
        for name, value in header_list:
            self.headers.setdefault(name.lower(), value)
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header_names(self):
        return [name.lower() for name, _value in self.header_list]

    def __repr__(self):
        return "<WsgiResponse %d %r>" % (self.status, self.body[:300])


def basic_auth(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")


class TruncatedInput(io.BytesIO):
    """A request body whose reads fail after the data, as a dropped connection does in a WSGI server."""

    def read(self, size=-1):
        data = super().read(size)
        if not data:
            raise OSError("client disconnected")
        return data


def call(app, method, path, query="", headers=None, body=b"", content_length=None, input_stream=None,
         file_wrapper=True):
    """Run ``app`` on one request and return its response.

    ``content_length`` overrides the ``CONTENT_LENGTH`` derived from
    ``body`` (give a string, or ``""`` for none); ``input_stream``
    replaces the body stream.
    """
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["REQUEST_METHOD"] = method
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    environ["SERVER_NAME"] = "127.0.0.1"
    environ["SERVER_PORT"] = "8080"
    environ["HTTP_HOST"] = "127.0.0.1:8080"
    environ["wsgi.input"] = input_stream if input_stream is not None else io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body)) if content_length is None else content_length
    if not file_wrapper:
        environ.pop("wsgi.file_wrapper", None)
    else:
        environ["wsgi.file_wrapper"] = wsgiref.util.FileWrapper
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif key == "CONTENT_LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            environ["HTTP_" + key] = value

    captured = {}

    def start_response(status, header_list, exc_info=None):
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = header_list

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return WsgiResponse(captured["status"], captured["headers"], data)
