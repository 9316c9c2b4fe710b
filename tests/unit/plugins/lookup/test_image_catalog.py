"""The image_catalog lookup, run through Ansible's plugin loader against image servers on loopback."""

from __future__ import annotations

import http.server
import importlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
from ansible.errors import AnsibleError
from ansible.plugins.loader import init_plugin_loader, lookup_loader

from tests.support.fault_server import FaultServer
from tests.support.module_runner import COLLECTIONS, ROOT

LOOKUP = "smartos.images.image_catalog"
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "manifests")


def image_uuid(number):
    return "00000000-0000-4000-8000-%012d" % number


def make_manifest(number, name, version, published_at, **extra):
    manifest = {
        "v": 2,
        "uuid": image_uuid(number),
        "owner": "00000000-0000-0000-0000-000000000000",
        "name": name,
        "version": version,
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": published_at,
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": "0" * 40, "size": 1000 + number, "compression": "gzip"}],
        "tags": {"role": "os"},
    }
    manifest.update(extra)
    return manifest


BASE_2023 = make_manifest(1, "base-64-lts", "23.4.0", "2024-01-10T00:00:00Z")
BASE_2024 = make_manifest(2, "base-64-lts", "24.4.0", "2025-01-08T10:11:12.123Z")
BASE_2025 = make_manifest(3, "base-64-lts", "24.4.1", "2025-03-01T00:00:00Z")
MINIMAL = make_manifest(4, "minimal-64-lts", "24.4.1", "2025-03-01T00:00:00Z", tags={"role": "minimal"})
UBUNTU = make_manifest(5, "ubuntu-24.04", "20250201", "2025-02-01T00:00:00Z", type="zvol", os="linux",
                       requirements={"brand": "bhyve"}, tags={"role": "os", "kernel": "6.8"})
DISABLED = make_manifest(6, "base-64-lts", "22.4.0", "2023-01-01T00:00:00Z", state="disabled", disabled=True)
CATALOG = [BASE_2023, BASE_2024, BASE_2025, MINIMAL, UBUNTU, DISABLED]


@pytest.fixture(scope="session", autouse=True)
def plugin_loader():
    init_plugin_loader([COLLECTIONS])
    # Other test modules may have imported the collection through sys.path
    # already, which leaves its package without the metadata the plugin
    # loader reads. Reloading it through Ansible's collection finder adds
    # the metadata and keeps the same module objects.
    package = sys.modules.get("ansible_collections.smartos.images")
    if package is not None and getattr(package, "_collection_meta", None) is None:
        importlib.reload(package)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # requests would send loopback requests through a proxy set in the environment.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def run_lookup(terms, **options):
    lookup = lookup_loader.get(LOOKUP)
    assert lookup is not None, "the plugin loader did not find %s" % LOOKUP
    return lookup.run(terms, variables={}, **options)


def lookup_module():
    return sys.modules[type(lookup_loader.get(LOOKUP)).__module__]


def list_requests(server):
    return [path for method, path, headers in server.requests if urllib.parse.urlsplit(path).path == "/images"]


def query_of(path):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))


@pytest.fixture()
def server():
    with FaultServer() as fault_server:
        for manifest in CATALOG:
            fault_server.add(manifest)
        yield fault_server


# ---- a server with scripted responses, for responses FaultServer cannot send


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that sends ``respond(path, request number)``: ``(status, JSON body or bytes)``."""

    def __init__(self, respond, tls_files=None):
        self.respond = respond
        self.paths = []
        self.lock = threading.Lock()
        scripted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def do_GET(self):
                with scripted.lock:
                    scripted.paths.append(self.path)
                    number = len(scripted.paths)
                status, body = scripted.respond(self.path, number)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# ---- selecting

# FaultServer lists images oldest first: 1, 2, 5, 3, 4.
FILTER_CASES = [
    ("no filters lists active images", [], [1, 2, 5, 3, 4]),
    ("exact name", ["name=base-64-lts"], [1, 2, 3]),
    ("substring name", ["name=~64-lts"], [1, 2, 3, 4]),
    ("two filters are anded", ["name=base-64-lts", "version=24.4.1"], [3]),
    ("dotted field", ["requirements.brand=bhyve"], [5]),
    ("dotted tag", ["tags.role=minimal"], [4]),
    ("boolean", ["disabled=false"], [1, 2, 5, 3, 4]),
    ("computed pub", ["pub=2025-01-08"], [2]),
    ("computed published drops milliseconds", ["published=2025-01-08T10:11:12Z"], [2]),
    ("computed size", ["size=1003"], [3]),
    ("missing field excludes", ["origin=x"], []),
    ("dict form", {"name": "base-64-lts", "version": "24.4.0"}, [2]),
    ("single string", "os=linux", [5]),
]


@pytest.mark.parametrize("filters, expected", [case[1:] for case in FILTER_CASES],
                         ids=[case[0] for case in FILTER_CASES])
def test_filters_select(server, filters, expected):
    assert run_lookup([server.url], filters=filters, field="uuid") == [image_uuid(n) for n in expected]


def test_filter_invalid_names_spec(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], filters=["name"])
    assert 'invalid filter: "name"' in str(caught.value)


def test_filters_wrong_type(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], filters=5)
    assert "filters must be a list" in str(caught.value)


def test_returns_whole_manifests(server):
    result = run_lookup([server.url], filters=["name=minimal-64-lts"])
    assert result == [MINIMAL]


STATE_CASES = [
    ("default active", {}, [1, 2, 3, 4, 5]),
    ("all", {"state": "all"}, [1, 2, 3, 4, 5, 6]),
    ("disabled", {"state": "disabled"}, [6]),
]


@pytest.mark.parametrize("options, expected", [case[1:] for case in STATE_CASES],
                         ids=[case[0] for case in STATE_CASES])
def test_state_selects(server, options, expected):
    assert sorted(run_lookup([server.url], field="uuid", **options)) == [image_uuid(n) for n in expected]


def test_state_sent_to_server(server):
    run_lookup([server.url], state="all")
    assert query_of(list_requests(server)[0])["state"] == "all"


def test_state_checked_on_client():
    # A server that ignores the state parameter must not let disabled images through.
    with ScriptedServer(lambda path, number: (200, CATALOG)) as scripted:
        result = run_lookup([scripted.url], field="uuid")
    assert image_uuid(6) not in result


NEWEST_CASES = [
    ("newest per name", [BASE_2023, BASE_2024, BASE_2025, MINIMAL], [3, 4]),
    ("order of the catalog is kept", [MINIMAL, BASE_2025, BASE_2023], [4, 3]),
    ("milliseconds compare as time", [
        make_manifest(10, "app", "1", "2025-01-01T00:00:00.500Z"),
        make_manifest(11, "app", "2", "2025-01-01T00:00:00Z"),
    ], [10]),
    ("version breaks a published_at tie numerically", [
        make_manifest(12, "app", "24.4.10", "2025-01-01T00:00:00Z"),
        make_manifest(13, "app", "24.4.9", "2025-01-01T00:00:00Z"),
    ], [12]),
    ("missing published_at is oldest", [
        make_manifest(14, "app", "9", None),
        make_manifest(15, "app", "1", "2020-01-01T00:00:00Z"),
    ], [15]),
]


@pytest.mark.parametrize("catalog, expected", [case[1:] for case in NEWEST_CASES],
                         ids=[case[0] for case in NEWEST_CASES])
def test_newest_selects(catalog, expected):
    # ScriptedServer keeps the catalog order, which FaultServer sorts.
    with ScriptedServer(lambda path, number: (200, catalog)) as scripted:
        result = run_lookup([scripted.url], newest=True, field="uuid")
    assert result == [image_uuid(n) for n in expected]


def test_newest_after_filters(server):
    result = run_lookup([server.url], filters=["name=base-64-lts"], newest=True, field="uuid")
    assert result == [image_uuid(3)]


FIELD_CASES = [
    ("uuid", "uuid", [image_uuid(4)]),
    ("version", "version", ["24.4.1"]),
    ("dotted", "tags.role", ["minimal"]),
    ("computed", "pub", ["2025-03-01"]),
    ("missing is null", "origin", [None]),
]


@pytest.mark.parametrize("field, expected", [case[1:] for case in FIELD_CASES],
                         ids=[case[0] for case in FIELD_CASES])
def test_field_projects(server, field, expected):
    assert run_lookup([server.url], filters=["name=minimal-64-lts"], field=field) == expected


JMESPATH_CASES = [
    ("filter expression", [], "[?requirements.brand=='bhyve'].uuid", [image_uuid(5)]),
    ("applied after filters", ["name=base-64-lts"], "[].version", ["23.4.0", "24.4.0", "24.4.1"]),
    ("scalar becomes a list", ["name=base-64-lts"], "length(@)", [3]),
    ("null becomes empty", ["name=base-64-lts"], "[0].origin", []),
]


@pytest.mark.parametrize("filters, expression, expected", [case[1:] for case in JMESPATH_CASES],
                         ids=[case[0] for case in JMESPATH_CASES])
def test_jmespath_selects(server, filters, expression, expected):
    assert run_lookup([server.url], filters=filters, jmespath=expression) == expected


def test_jmespath_then_newest(server):
    result = run_lookup([server.url], jmespath="[?tags.role=='os']", newest=True, field="uuid")
    assert result == [image_uuid(5), image_uuid(3)]


def test_jmespath_invalid_names_expression(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], jmespath="[?name==")
    assert "invalid jmespath expression '[?name=='" in str(caught.value)


def test_jmespath_non_manifests_with_field(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], jmespath="[].name", field="uuid")
    assert "returned a JSON string at index 0" in str(caught.value)


def test_required_empty_names_filters(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], filters=["name=nonexistent"], required=True)
    message = str(caught.value)
    assert '["name=nonexistent"]' in message
    assert server.url in message


def test_not_required_empty_is_list(server):
    assert run_lookup([server.url], filters=["name=nonexistent"]) == []


# ---- fetching once


def test_selections_share_one_listing(server):
    result = run_lookup([server.url], newest=True, field="uuid", selections=[
        {"filters": ["name=base-64-lts"]},
        {"filters": ["name=minimal-64-lts"]},
        {"filters": {"os": "linux"}, "field": "version"},
    ])
    assert result == [image_uuid(3), image_uuid(4), "20250201"]
    assert len(list_requests(server)) == 1


def test_selection_required_names_its_filters(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], selections=[{"filters": ["name=base-64-lts"]},
                                             {"filters": ["name=nope"], "required": True}])
    assert '["name=nope"]' in str(caught.value)


def test_selection_unknown_key(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], selections=[{"filter": ["name=x"]}])
    assert "selections[0] has unsupported keys filter" in str(caught.value)


def test_repeated_term_listed_once(server):
    result = run_lookup([server.url, server.url + "/"], field="uuid")
    assert len(result) == 5
    assert len(list_requests(server)) == 1


# ---- several sources


def test_sources_first_wins_on_duplicate():
    from_first = dict(BASE_2025, description="from the first source")
    from_second = dict(BASE_2025, description="from the second source")
    with FaultServer() as first, FaultServer() as second:
        first.add(from_first)
        second.add(from_second)
        second.add(MINIMAL)
        result = run_lookup([first.url, second.url])
    assert [manifest["uuid"] for manifest in result] == [image_uuid(3), image_uuid(4)]
    assert result[0]["description"] == "from the first source"


def test_sources_newest_across_sources():
    with FaultServer() as first, FaultServer() as second:
        first.add(BASE_2024)
        second.add(BASE_2025)
        result = run_lookup([first.url, second.url], newest=True, field="uuid")
    assert result == [image_uuid(3)]


# ---- the IMGAPI request


def test_request_headers_and_parameters(server):
    run_lookup([server.url])
    method, path, headers = server.requests[0]
    assert headers["accept-version"] == "~2"
    assert query_of(path) == {"state": "active", "limit": "1000"}


CHANNEL_CASES = [
    ("channel in the URL", "?channel=staging", {}, "staging"),
    ("channel option", "", {"channel": "dev"}, "dev"),
    ("option overrides the URL", "?channel=staging", {"channel": "dev"}, "dev"),
]


@pytest.mark.parametrize("suffix, options, expected", [case[1:] for case in CHANNEL_CASES],
                         ids=[case[0] for case in CHANNEL_CASES])
def test_channel_sent(server, suffix, options, expected):
    run_lookup([server.url + suffix], **options)
    assert query_of(list_requests(server)[0])["channel"] == expected


# ---- paging


def test_paging_over_1200_images():
    # All share one published_at, so a marker by time alone would skip or repeat.
    added = [make_manifest(1000 + n, "bulk-%d" % (n % 7), "1.%d" % n, "2025-01-01T00:00:00Z") for n in range(1200)]
    with FaultServer() as fault_server:
        for manifest in added:
            fault_server.add(manifest)
        result = run_lookup([fault_server.url], field="uuid")
        pages = [query_of(path) for path in list_requests(fault_server)]
    assert len(result) == 1200
    assert len(set(result)) == 1200
    assert set(result) == {manifest["uuid"] for manifest in added}
    assert len(pages) == 2
    assert pages[1]["marker"] == result[999]
    assert pages[1]["limit"] == "1000"


def test_paging_exactly_one_full_page():
    added = [make_manifest(3000 + n, "bulk", "1.%d" % n, "2025-01-01T00:00:00Z") for n in range(1000)]
    with FaultServer() as fault_server:
        for manifest in added:
            fault_server.add(manifest)
        result = run_lookup([fault_server.url], field="uuid")
        pages = len(list_requests(fault_server))
    assert len(set(result)) == 1000
    assert pages == 2


def test_paging_inclusive_marker():
    # The reference IMGAPI server starts each later page with the marker image itself.
    catalog = [make_manifest(5000 + n, "bulk", "1.%d" % n, "2025-01-01T00:00:00Z") for n in range(2500)]
    order = [manifest["uuid"] for manifest in catalog]

    def respond(path, number):
        query = query_of(path)
        start = order.index(query["marker"]) if "marker" in query else 0
        return 200, catalog[start:start + int(query["limit"])]

    with ScriptedServer(respond) as scripted:
        result = run_lookup([scripted.url], field="uuid")
        pages = len(scripted.paths)
    assert result == order
    assert pages == 3


def test_paging_marker_ignored_stops(monkeypatch):
    catalog = [make_manifest(8000 + n, "bulk", "1.%d" % n, "2025-01-01T00:00:00Z") for n in range(1000)]
    warnings = []
    monkeypatch.setattr(lookup_module().display, "warning", warnings.append)
    with ScriptedServer(lambda path, number: (200, catalog)) as scripted:
        result = run_lookup([scripted.url], field="uuid")
        pages = len(scripted.paths)
    assert len(result) == 1000
    assert pages == 2
    assert "does not page by marker" in warnings[0]


# ---- failures


@pytest.mark.parametrize("status", [503, 429, 500])
def test_retry_then_success(status):
    def respond(path, number):
        if number <= 2:
            return status, {"code": "ServiceUnavailable", "message": "try again"}
        return 200, [BASE_2025]

    with ScriptedServer(respond) as scripted:
        result = run_lookup([scripted.url], field="uuid", retries=3)
        attempts = len(scripted.paths)
    assert result == [image_uuid(3)]
    assert attempts == 3


def test_retry_fault_cleared_midway(server):
    server.set_fault(None, "status", code=503, route="list")

    def clear_after_first_request():
        while not list_requests(server):
            time.sleep(0.01)
        server.clear_faults()

    clearer = threading.Thread(target=clear_after_first_request, daemon=True)
    clearer.start()
    result = run_lookup([server.url], field="uuid", retries=3)
    clearer.join(timeout=5)
    assert len(result) == 5
    assert len(list_requests(server)) >= 2


def test_retries_exhausted_names_status(server):
    server.set_fault(None, "status", code=503, route="list")
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], retries=1)
    message = str(caught.value)
    assert "HTTP 503" in message
    assert server.url + "/images" in message
    assert "2 attempts" in message
    assert len(list_requests(server)) == 2


def test_not_found_not_retried(server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url + "/v1"], retries=3)
    message = str(caught.value)
    assert "HTTP 404" in message
    assert "without /images" in message
    assert len(server.requests) == 1


def test_non_list_response():
    with ScriptedServer(lambda path, number: (200, {"code": "Surprise", "message": "an object"})) as scripted:
        with pytest.raises(AnsibleError) as caught:
            run_lookup([scripted.url])
    message = str(caught.value)
    assert "returned a JSON object, not a list of images" in message
    assert scripted.url in message


def test_non_json_response():
    with ScriptedServer(lambda path, number: (200, b"<html>hello</html>")) as scripted:
        with pytest.raises(AnsibleError) as caught:
            run_lookup([scripted.url])
    message = str(caught.value)
    assert "not JSON" in message
    assert "<html>" in message


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(AnsibleError) as caught:
        run_lookup(["http://127.0.0.1:%d" % port], retries=0)
    message = str(caught.value)
    assert "127.0.0.1:%d" % port in message
    assert "refused" in message.lower()


def test_read_timeout(server):
    server.set_fault(None, "stall", route="list", after=0, seconds=10)
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], retries=0, read_timeout=0.5)
    message = str(caught.value)
    assert "timed out" in message
    assert "read_timeout" in message


def test_read_timeout_before_headers():
    def respond(path, number):
        time.sleep(2)
        return 200, []

    with ScriptedServer(respond) as scripted:
        with pytest.raises(AnsibleError) as caught:
            run_lookup([scripted.url], retries=1, read_timeout=0.3)
        attempts = len(scripted.paths)
    assert "timed out (read_timeout 0.3 seconds, 2 attempts)" in str(caught.value)
    assert attempts == 2


def test_stalled_body_retried(server):
    server.set_fault(None, "stall", route="list", after=0, seconds=10)
    with pytest.raises(AnsibleError) as caught:
        run_lookup([server.url], retries=1, read_timeout=0.5)
    assert "failed (2 attempts)" in str(caught.value)
    assert len(list_requests(server)) == 2


def test_truncated_body_retried(server):
    server.set_fault(None, "fail_times", route="list", times=2, after=10)
    result = run_lookup([server.url], field="uuid", retries=2)
    assert len(result) == 5
    assert len(list_requests(server)) == 3


def test_unusable_entries_skipped_with_warning(monkeypatch):
    catalog = [BASE_2025, {"uuid": image_uuid(20), "name": "no-version-field"}, "not an object"]
    warnings = []
    monkeypatch.setattr(lookup_module().display, "warning", warnings.append)
    with ScriptedServer(lambda path, number: (200, catalog)) as scripted:
        result = run_lookup([scripted.url], field="uuid")
    assert result == [image_uuid(3)]
    assert len(warnings) == 1
    assert "skipped 2 catalog entries" in warnings[0]
    assert image_uuid(20) in warnings[0]


def test_password_masked_in_errors():
    with ScriptedServer(lambda path, number: (404, {"code": "ResourceNotFound", "message": "gone"})) as scripted:
        with pytest.raises(AnsibleError) as caught:
            run_lookup([scripted.url.replace("://", "://reader:s3cret@")])
    message = str(caught.value)
    assert "s3cret" not in message
    assert "127.0.0.1" in message


def test_invalid_term():
    with pytest.raises(AnsibleError) as caught:
        run_lookup([""])
    assert "invalid source URL ''" in str(caught.value)


# ---- DSAPI


def read_fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture()
def dsapi_server():
    with FaultServer() as fault_server:
        for name in ("base64-1.8.1-60a3b1fa.json", "base64-1.8.4-fdea06b0.json", "smartos-1.3.12-febaa412.json"):
            fault_server.add(read_fixture(name))
        yield fault_server


def test_dsapi_upgrades_manifests(dsapi_server):
    result = run_lookup([dsapi_server.url + "/datasets"], type="dsapi")
    assert len(result) == 3
    assert {manifest["v"] for manifest in result} == {2}
    assert not any("creator_uuid" in manifest for manifest in result)


def test_dsapi_newest(dsapi_server):
    result = run_lookup([dsapi_server.url + "/datasets"], type="dsapi", filters=["name=base64"], newest=True,
                        field="version")
    assert result == ["1.8.4"]


def test_dsapi_needs_datasets_url(dsapi_server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([dsapi_server.url], type="dsapi")
    assert "does not end in /datasets" in str(caught.value)


def test_dsapi_rejects_channel(dsapi_server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([dsapi_server.url + "/datasets?channel=dev"], type="dsapi")
    assert "DSAPI has no channels" in str(caught.value)


# ---- TLS


def make_certificate(directory):
    """Create a self-signed certificate for 127.0.0.1 with openssl; return ``(cert path, key path)``."""
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("other-tls"))


@pytest.fixture()
def https_server(certificate):
    with ScriptedServer(lambda path, number: (200, [BASE_2025]), tls_files=certificate) as scripted:
        yield scripted


def test_tls_verifies_by_default(https_server):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([https_server.url])
    message = str(caught.value)
    assert "certificate verify failed" in message
    assert "ca_path" in message
    assert https_server.url in message


def test_tls_ca_path(https_server, certificate):
    assert run_lookup([https_server.url], ca_path=certificate[0], field="uuid") == [image_uuid(3)]


def test_tls_ca_path_of_other_ca(https_server, other_certificate):
    with pytest.raises(AnsibleError) as caught:
        run_lookup([https_server.url], ca_path=other_certificate[0])
    assert "certificate verify failed" in str(caught.value)


def test_tls_validate_certs_false(https_server):
    assert run_lookup([https_server.url], validate_certs=False, field="uuid") == [image_uuid(3)]


def test_tls_failure_not_retried(https_server):
    with pytest.raises(AnsibleError):
        run_lookup([https_server.url], retries=3)
    assert https_server.paths == []
