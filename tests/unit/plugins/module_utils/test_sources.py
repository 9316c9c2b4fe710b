"""Source URLs, ``imgadm.conf`` parsing and the IMGAPI client over loopback HTTP."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import threading
import urllib.parse
import uuid as uuidlib

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ConfigError, SourceError
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._sources import (
    ImgapiClient,
    Source,
    load_config,
    normalize_url,
)
from tests.support.fault_server import FaultServer

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "manifests")
V1_MANIFEST = os.path.join(FIXTURES, "ubuntu10.04-0.1.0-56108678.json")
V1_UUID = "56108678-1183-11e1-83c3-ff3185a5b47f"


def make_manifest(index=0, **fields):
    manifest = {
        "v": 2,
        "uuid": str(uuidlib.uuid4()),
        "owner": "11111111-1111-4111-8111-111111111111",
        "name": "base",
        "version": "1.0.%d" % index,
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": "2024-05-01T12:00:00.000Z",
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": "0" * 40, "size": 1024, "compression": "gzip"}],
    }
    manifest.update(fields)
    return manifest


def make_http():
    return HttpClient(connect_timeout=2, read_timeout=2, retries=1, backoff=0.01)


# normalize_url, Source.base_url and Source.effective_channel

@pytest.mark.parametrize(
    "url, expected",
    [
        pytest.param("images.example.com", "http://images.example.com", id="scheme-added"),
        pytest.param("images.example.com:8080/api", "http://images.example.com:8080/api", id="scheme-added-port"),
        pytest.param("https://images.example.com/", "https://images.example.com", id="trailing-slash"),
        pytest.param("https://images.example.com/api//", "https://images.example.com/api", id="trailing-slashes"),
        pytest.param("https://images.example.com", "https://images.example.com", id="already-normal"),
        pytest.param("  https://images.example.com/  ", "https://images.example.com", id="whitespace"),
        pytest.param("http://images.example.com:80/", "http://images.example.com", id="http-port-80"),
        pytest.param("https://images.example.com:443/", "https://images.example.com", id="https-port-443"),
        pytest.param("http://images.example.com:443", "http://images.example.com:443", id="http-port-443-kept"),
        pytest.param("https://images.example.com:80", "https://images.example.com:80", id="https-port-80-kept"),
        pytest.param("https://images.example.com:8443/", "https://images.example.com:8443", id="other-port"),
        pytest.param("images.example.com:443", "http://images.example.com:443", id="no-scheme-port-443-kept"),
        pytest.param("https://images.example.com/?channel=dev", "https://images.example.com?channel=dev",
                     id="query-kept"),
        pytest.param("https://images.example.com/api/?channel=dev&x=1", "https://images.example.com/api?channel=dev&x=1",
                     id="query-kept-path"),
        pytest.param("https://images.example.com/#top", "https://images.example.com", id="fragment-dropped"),
        pytest.param("http://[::1]:8080/", "http://[::1]:8080", id="ipv6-port"),
        pytest.param("http://[::1]:80/", "http://[::1]", id="ipv6-port-80"),
        pytest.param("https://[fd00::1]/images/", "https://[fd00::1]/images", id="ipv6-path"),
        pytest.param("[fd00::1]:9000", "http://[fd00::1]:9000", id="ipv6-no-scheme"),
        pytest.param("HTTPS://images.example.com:443/", "https://images.example.com", id="upper-case-scheme"),
        pytest.param("HTTP://images.example.com:80", "http://images.example.com", id="upper-case-scheme-http"),
        pytest.param("https://Images.Example.COM/", "https://images.example.com", id="upper-case-host"),
        pytest.param("https://user:secret@images.example.com:443/", "https://user:secret@images.example.com",
                     id="userinfo-kept"),
    ],
)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        pytest.param("https://images.example.com/?channel=dev", "https://images.example.com", id="channel-dropped"),
        pytest.param("images.example.com:80/api/", "http://images.example.com/api", id="normalized"),
        pytest.param("https://images.example.com:8443", "https://images.example.com:8443", id="port-kept"),
    ],
)
def test_source_base_url(url, expected):
    assert Source(url).base_url == expected


@pytest.mark.parametrize(
    "url, channel, expected",
    [
        pytest.param("https://images.example.com/?channel=dev", None, "dev", id="from-url"),
        pytest.param("https://images.example.com/?channel=dev", "release", "release", id="explicit-wins"),
        pytest.param("https://images.example.com/?channel=dev", "", "dev", id="empty-explicit"),
        pytest.param("https://images.example.com/", "release", "release", id="explicit-only"),
        pytest.param("https://images.example.com/?x=1", None, None, id="other-query"),
        pytest.param("https://images.example.com/", None, None, id="none"),
    ],
)
def test_source_effective_channel(url, channel, expected):
    assert Source(url, channel=channel).effective_channel == expected


# load_config

def write_config(tmp_path, text):
    path = tmp_path / "imgadm.conf"
    path.write_text(text)
    return str(path)


def test_load_config_missing_file(tmp_path):
    path = str(tmp_path / "imgadm.conf")

    config = load_config(path)

    assert [source.url for source in config.sources] == ["https://images.smartos.org"]
    assert config.sources[0].type == "imgapi"
    assert config.explicit_sources is False
    assert config.data == {}
    assert config.path == path


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"upgradedToVer": "3.0.0"}', id="no-sources-key"),
        pytest.param("", id="empty-file"),
        pytest.param("  \n", id="blank-file"),
    ],
)
def test_load_config_default_source(tmp_path, text):
    config = load_config(write_config(tmp_path, text))

    assert [source.url for source in config.sources] == ["https://images.smartos.org"]
    assert config.explicit_sources is False


def test_load_config_empty_sources(tmp_path):
    config = load_config(write_config(tmp_path, '{"sources": []}'))

    assert config.sources == []
    assert config.explicit_sources is True


def test_load_config_entries(tmp_path):
    data = {
        "upgradedToVer": "3.0.0",
        "userAgentExtra": "site/1",
        "sources": [
            {"url": "https://images.example.com", "type": "imgapi"},
            {"url": "https://docker.example.com", "type": "docker"},
            "http://plain.example.com/",
            {"url": "https://datasets.example.com/datasets", "type": "dsapi", "insecure": True},
            {"url": "https://images.example.com/?channel=dev", "channel": "experimental", "comment": "lab"},
        ],
    }
    path = write_config(tmp_path, json.dumps(data))

    config = load_config(path)

    assert [source.url for source in config.sources] == [
        "https://images.example.com",
        "http://plain.example.com/",
        "https://datasets.example.com/datasets",
        "https://images.example.com/?channel=dev",
    ]
    assert [source.type for source in config.sources] == ["imgapi", "imgapi", "dsapi", "imgapi"]
    assert [source.insecure for source in config.sources] == [False, False, True, False]
    assert config.sources[3].channel == "experimental"
    assert config.sources[3].extra == {"comment": "lab"}
    assert config.data == data
    assert config.explicit_sources is True


@pytest.mark.parametrize(
    "text, fragments",
    [
        pytest.param("{not json", ["is not valid JSON"], id="invalid-json"),
        pytest.param('["https://images.example.com"]', ["must hold a JSON object, not list"], id="list"),
        pytest.param('"https://images.example.com"', ["must hold a JSON object, not str"], id="string"),
        pytest.param('{"sources": "https://images.example.com"}', ['"sources" must be a list'], id="sources-string"),
        pytest.param('{"sources": [{"url": "https://images.example.com", "type": "bogus"}]}',
                     ["type 'bogus'", "imgapi, dsapi"], id="bad-type"),
        pytest.param('{"sources": [{"type": "imgapi"}]}', ["has no url"], id="no-url"),
        pytest.param('{"sources": [{"url": "  "}]}', ["has no url"], id="blank-url"),
        pytest.param('{"sources": [42]}', ["source 42 has no url"], id="number-entry"),
    ],
)
def test_load_config_invalid(tmp_path, text, fragments):
    path = write_config(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert path in str(caught.value)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://images.example.com:99999", id="port-out-of-range"),
        pytest.param("http://images.example.com:abc", id="port-not-number"),
        pytest.param("http://[::1", id="ipv6-unclosed"),
    ],
)
def test_load_config_invalid_url(tmp_path, url):
    path = write_config(tmp_path, json.dumps({"sources": [{"url": url}]}))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert url in str(caught.value)
    assert path in str(caught.value)


def test_load_config_unreadable(tmp_path):
    path = tmp_path / "imgadm.conf"
    path.mkdir()

    with pytest.raises(ConfigError) as caught:
        load_config(str(path))

    assert str(path) in str(caught.value)


# ImgapiClient against the fault server

@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


@pytest.fixture
def client(server):
    return ImgapiClient(Source(server.url), make_http())


def test_get_image_upgrades_v1(server, client):
    with open(V1_MANIFEST) as handle:
        server.add(json.load(handle))

    remote = client.get_image(V1_UUID)

    assert remote.manifest["v"] == 2
    assert remote.manifest["uuid"] == V1_UUID
    assert remote.manifest["owner"] == "352971aa-31ba-496c-9ade-a379feaecd52"
    assert remote.manifest["state"] == "active"
    assert remote.manifest["files"][0]["compression"] == "gzip"
    assert "creator_uuid" not in remote.manifest
    assert "url" not in remote.manifest["files"][0]
    assert remote.file_url == "%s/images/%s/file" % (server.url, V1_UUID)
    assert remote.source.url == server.url


def test_get_image_v2_unchanged(server, client):
    manifest = make_manifest()
    server.add(manifest)

    remote = client.get_image(manifest["uuid"])

    assert remote.manifest == manifest


def test_get_image_sends_accept_version(server, client):
    manifest = make_manifest()
    server.add(manifest)

    client.get_image(manifest["uuid"])

    method, path, headers = server.requests[-1]
    assert method == "GET"
    assert path == "/images/" + manifest["uuid"]
    assert headers["accept-version"] == "~2"


def test_get_image_channel(server):
    manifest = make_manifest()
    server.add(manifest)
    client = ImgapiClient(Source(server.url + "/?channel=dev"), make_http())

    remote = client.get_image(manifest["uuid"])

    assert server.requests[-1][1] == "/images/%s?channel=dev" % manifest["uuid"]
    assert remote.file_url == "%s/images/%s/file?channel=dev" % (server.url, manifest["uuid"])


def test_get_image_not_found(server, client):
    assert client.get_image(str(uuidlib.uuid4())) is None


def test_get_image_server_error(server, client):
    image_uuid = str(uuidlib.uuid4())
    server.set_fault(None, "status", route="manifest", code=500)

    with pytest.raises(SourceError) as caught:
        client.get_image(image_uuid)

    url = "%s/images/%s" % (server.url, image_uuid)
    assert url in str(caught.value)
    assert "HTTP 500" in str(caught.value)
    assert caught.value.status == 500
    assert caught.value.url == url
    assert len(server.requests) == 2


def test_get_image_client_error_not_retried(server, client):
    server.set_fault(None, "status", route="manifest", code=403)

    with pytest.raises(SourceError) as caught:
        client.get_image(str(uuidlib.uuid4()))

    assert caught.value.status == 403
    assert len(server.requests) == 1


def test_list_images_pages(server, client):
    uuids = set()
    for index in range(1201):
        # Groups of three share a published_at, so the order within a group
        # comes from the UUID alone.
        published = "2024-01-01T00:%02d:%02d.000Z" % (index // 3 // 60 % 60, index // 3 % 60)
        manifest = make_manifest(index, published_at=published)
        server.add(manifest)
        uuids.add(manifest["uuid"])

    images = client.list_images({"name": "base"})

    listed = [image["uuid"] for image in images]
    list_requests = [path for _method, path, _headers in server.requests if path.startswith("/images?")]
    second_query = urllib.parse.parse_qs(urllib.parse.urlsplit(list_requests[1]).query)
    assert len(listed) == 1201
    assert len(set(listed)) == 1201
    assert set(listed) == uuids
    assert len(list_requests) == 2
    assert second_query["marker"] == [listed[999]]
    assert second_query["limit"] == ["1000"]
    assert second_query["name"] == ["base"]


def test_list_images_exact_page(server, client):
    for index in range(1000):
        server.add(make_manifest(index, published_at="2024-01-01T00:00:%02d.000Z" % (index % 60)))

    images = client.list_images()

    list_requests = [path for _method, path, _headers in server.requests if path.startswith("/images?")]
    assert len(images) == 1000
    assert len(list_requests) == 2


def test_list_images_filters(server, client):
    expected = make_manifest(name="expected")
    server.add(expected)
    server.add(make_manifest(name="other"))

    images = client.list_images({"name": "expected"})

    assert [image["uuid"] for image in images] == [expected["uuid"]]


def test_list_images_error_object(server, client):
    server.set_fault(None, "status", route="list", code=200)

    with pytest.raises(SourceError) as caught:
        client.list_images()

    assert "%s/images" % server.url in str(caught.value)
    assert "not a list" in str(caught.value)


def test_list_images_server_error(server, client):
    server.set_fault(None, "status", route="list", code=503)

    with pytest.raises(SourceError) as caught:
        client.list_images()

    assert "%s/images?limit=1000" % server.url in str(caught.value)
    assert caught.value.status == 503
    assert len(server.requests) == 2


def test_ping(server, client):
    body = client.ping()

    assert body["imgapi"] is True
    assert server.requests[-1][1] == "/ping"


def test_ping_not_imgapi(server, client):
    server.set_fault(None, "status", route="ping", code=200)

    with pytest.raises(SourceError) as caught:
        client.ping()

    assert "not an IMGAPI server" in str(caught.value)
    assert server.url in str(caught.value)


def test_ping_unreachable():
    client = ImgapiClient(Source("http://127.0.0.1:9"), make_http())

    with pytest.raises(SourceError) as caught:
        client.ping()

    assert "http://127.0.0.1:9/ping" in str(caught.value)
    assert "cannot connect" in str(caught.value)


# A server of our own, for responses the fault server cannot send.

class FunctionHandler(http.server.BaseHTTPRequestHandler):
    """Respond to each GET with the ``(status, JSON value)`` that ``respond(path, query)`` returns."""

    respond = None

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        status, value = type(self).respond(url.path, dict(urllib.parse.parse_qsl(url.query)))
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind looks up the host name, which can wait on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


@pytest.fixture
def serve():
    """Start a loopback server for a ``respond`` function and return its URL."""
    servers = []

    def start(respond):
        handler = type("Handler", (FunctionHandler,), {"respond": staticmethod(respond)})
        httpd = LoopbackServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        servers.append(httpd)
        return "http://127.0.0.1:%d" % httpd.server_address[1]

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    "value, type_name",
    [
        pytest.param([], "list", id="list"),
        pytest.param("manifest", "str", id="string"),
        pytest.param(7, "int", id="number"),
    ],
)
def test_get_image_not_object(serve, value, type_name):
    url = serve(lambda path, query: (200, value))
    client = ImgapiClient(Source(url), make_http())
    image_uuid = str(uuidlib.uuid4())

    with pytest.raises(SourceError) as caught:
        client.get_image(image_uuid)

    assert url in str(caught.value)
    assert image_uuid in str(caught.value)
    assert "returned %s, not a manifest" % type_name in str(caught.value)


@pytest.mark.parametrize(
    "value, type_name",
    [
        pytest.param({"images": []}, "dict", id="object"),
        pytest.param(None, "NoneType", id="null"),
        pytest.param("[]", "str", id="string"),
    ],
)
def test_list_images_not_list_body(serve, value, type_name):
    url = serve(lambda path, query: (200, value))
    client = ImgapiClient(Source(url), make_http())

    with pytest.raises(SourceError) as caught:
        client.list_images()

    assert "%s/images" % url in str(caught.value)
    assert "returned %s, not a list" % type_name in str(caught.value)


def test_list_images_inclusive_marker(serve):
    # The IMGAPI documentation defines ``marker`` as "only return images with
    # a published_at >= that of the given image", so every page after the
    # first starts with the marker image again.  The fault server's marker is
    # exclusive, so this case needs a server of its own.
    served = [make_manifest(i, published_at="2024-01-01T%02d:%02d:00.000Z" % (i // 60, i % 60)) for i in range(1201)]

    def respond(path, query):
        ordered = sorted(served, key=lambda m: (m["published_at"], m["uuid"]))
        if "marker" in query:
            marker = next(m for m in ordered if m["uuid"] == query["marker"])
            ordered = [m for m in ordered if m["published_at"] >= marker["published_at"]]
        return 200, ordered[: int(query.get("limit", 1000))]

    client = ImgapiClient(Source(serve(respond)), make_http())

    listed = [image["uuid"] for image in client.list_images()]

    repeated = sorted({image_uuid for image_uuid in listed if listed.count(image_uuid) > 1})
    assert repeated == []
    assert set(listed) == {m["uuid"] for m in served}
