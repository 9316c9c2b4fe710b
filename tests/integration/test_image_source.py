"""The image_source module run as Ansible runs it, on config files in tmp_path and image servers on loopback.

No test contacts the implicit default source: a task that would add or
change it sets ping=false.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.support.fault_server import FaultServer
from tests.support.module_runner import run_module

DEFAULT = {"url": "https://images.smartos.org", "type": "imgapi"}
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture()
def server():
    with FaultServer() as running:
        yield running


@pytest.fixture()
def other_server():
    with FaultServer() as running:
        yield running


@pytest.fixture()
def conf(tmp_path):
    return str(tmp_path / "imgadm.conf")


def write_config(path, data):
    text = data if isinstance(data, str) else json.dumps(data, indent=2) + "\n"
    with open(path, "w") as handle:
        handle.write(text)


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def read_config(path):
    with open(path) as handle:
        return json.load(handle)


def ensure(path, check=False, **args):
    args = dict(args, config_file=path, retries=0, connect_timeout=5, read_timeout=5)
    return run_module("image_source", args, check=check)


def pings(server):
    return [request for request in server.requests if request[1] == "/ping"]


def run_quartet(path, **args):
    """Run the task in check mode, for real, in check mode and for real again; return the results and file bytes."""
    results, contents = [], []
    for check in (True, False, True, False):
        results.append(ensure(path, check=check, **args))
        contents.append(read_bytes(path) if os.path.exists(path) else None)
    return results, contents


def test_add_source_quartet(conf, server):
    write_config(conf, {"sources": [{"url": UNREACHABLE, "type": "imgapi"}]})
    before = read_bytes(conf)

    results, contents = run_quartet(conf, url=server.url)

    assert [result["_rc"] for result in results] == [0, 0, 0, 0]
    assert results[0]["changed"] is True
    assert results[1]["changed"] is True
    assert results[2]["changed"] is False
    assert results[3]["changed"] is False
    assert contents[0] == before
    assert contents[2] == contents[1]
    assert contents[3] == contents[1]
    assert read_config(conf) == {"sources": [{"url": UNREACHABLE, "type": "imgapi"},
                                             {"url": server.url, "type": "imgapi"}]}
    assert results[0]["actions"] == ["Added source %s (imgapi)" % server.url]
    assert results[2]["actions"] == []
    assert len(pings(server)) == 2


def test_remove_source_quartet(conf, server):
    write_config(conf, {"sources": [{"url": UNREACHABLE + "/"}, {"url": server.url, "type": "imgapi"}]})
    before = read_bytes(conf)

    results, contents = run_quartet(conf, url=UNREACHABLE, state="absent")

    assert results[0]["changed"] is True
    assert results[1]["changed"] is True
    assert results[2]["changed"] is False
    assert results[3]["changed"] is False
    assert contents[0] == before
    assert contents[3] == contents[1]
    assert read_config(conf) == {"sources": [{"url": server.url, "type": "imgapi"}]}
    assert results[1]["actions"] == ["Removed source %s/ (imgapi)" % UNREACHABLE]
    assert server.requests == []


def test_set_list_quartet(conf, server, other_server):
    write_config(conf, {"sources": [DEFAULT, {"url": UNREACHABLE}]})
    before = read_bytes(conf)
    requested = [{"url": other_server.url}, {"url": server.url, "channel": "dev"}]

    results, contents = run_quartet(conf, sources=requested)

    assert results[0]["changed"] is True
    assert results[1]["changed"] is True
    assert results[2]["changed"] is False
    assert results[3]["changed"] is False
    assert contents[0] == before
    assert contents[3] == contents[1]
    assert read_config(conf) == {"sources": [{"url": other_server.url, "type": "imgapi"},
                                             {"url": server.url, "type": "imgapi", "channel": "dev"}]}
    assert results[1]["actions"] == [
        "Removed source https://images.smartos.org (imgapi)",
        "Removed source %s (imgapi)" % UNREACHABLE,
        "Added source %s (imgapi)" % other_server.url,
        "Added source %s (imgapi)" % server.url,
    ]
    assert [request[1] for request in server.requests] == ["/ping?channel=dev"] * 2
    assert [request[1] for request in other_server.requests] == ["/ping"] * 2


def test_set_list_pings_with_channel(conf, server):
    write_config(conf, {"sources": []})

    result = ensure(conf, sources=[{"url": server.url, "channel": "dev"}])

    assert result["changed"] is True
    assert [request[1] for request in server.requests] == ["/ping?channel=dev"]


def test_reorder_quartet(conf, server, other_server):
    first = {"url": server.url + "/", "type": "imgapi", "comment": "kept"}
    second = {"url": other_server.url, "type": "imgapi"}
    write_config(conf, {"sources": [first, second]})
    before = read_bytes(conf)
    port = server.url.rsplit(":", 1)[1]

    results, contents = run_quartet(conf, sources=[{"url": other_server.url}, {"url": "127.0.0.1:%s" % port}])

    assert results[0]["changed"] is True
    assert results[1]["changed"] is True
    assert results[2]["changed"] is False
    assert results[3]["changed"] is False
    assert contents[0] == before
    assert contents[3] == contents[1]
    assert read_config(conf) == {"sources": [second, first]}
    assert results[1]["actions"] == ["Reordered sources"]
    assert server.requests == []
    assert other_server.requests == []


@pytest.mark.parametrize("text, fragments", [
    pytest.param('{"sources": [', ["is not valid JSON", "fix the file"], id="invalid-json"),
    pytest.param('{"sources": "https://images.example.com"}\n', ['"sources" must be a list', "fix the file"],
                 id="sources-not-list"),
    pytest.param('["https://images.example.com"]\n', ["must hold a JSON object, not list"], id="not-object"),
    pytest.param('{"sources": [{"type": "imgapi"}]}\n', ["has no url"], id="entry-without-url"),
])
def test_corrupt_config(conf, text, fragments):
    write_config(conf, text)

    result = ensure(conf, url=UNREACHABLE, ping=False)

    assert result["failed"] is True
    assert conf in result["msg"]
    for fragment in fragments:
        assert fragment in result["msg"]
    assert read_bytes(conf) == text.encode()


def test_corrupt_config_whole_list(conf):
    write_config(conf, "{not json")

    result = ensure(conf, sources=[], ping=False)

    assert result["failed"] is True
    assert read_bytes(conf) == b"{not json"


def test_other_keys_kept(conf, server):
    data = {
        "upgradedToVer": "3.0.0",
        "userAgentExtra": "site/1",
        "sources": [{"url": UNREACHABLE, "type": "imgapi", "note": "lab"}],
        "dockerImportSkipUuids": True,
    }
    write_config(conf, data)

    result = ensure(conf, url=server.url, insecure=True)

    written = read_config(conf)
    assert result["changed"] is True
    assert list(written) == ["upgradedToVer", "userAgentExtra", "sources", "dockerImportSkipUuids"]
    assert {key: value for key, value in written.items() if key != "sources"} == {
        "upgradedToVer": "3.0.0", "userAgentExtra": "site/1", "dockerImportSkipUuids": True}
    assert written["sources"] == [{"url": UNREACHABLE, "type": "imgapi", "note": "lab"},
                                  {"url": server.url, "type": "imgapi", "insecure": True}]


def test_written_format(conf, server):
    write_config(conf, '{"sources":[]}')

    ensure(conf, url=server.url)

    assert read_bytes(conf) == (json.dumps({"sources": [{"url": server.url, "type": "imgapi"}]}, indent=2)
                                + "\n").encode()


def test_file_mode_kept(conf, server):
    write_config(conf, {"sources": []})
    os.chmod(conf, 0o600)

    ensure(conf, url=server.url)

    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600


def test_missing_file_materialises_default(tmp_path, server):
    path = str(tmp_path / "var" / "imgadm" / "imgadm.conf")

    result = ensure(path, url=server.url)

    assert result["changed"] is True
    assert read_config(path) == {"sources": [DEFAULT, {"url": server.url, "type": "imgapi"}]}
    assert result["diff"]["before"] == {"sources": [dict(DEFAULT, insecure=False, channel=None)]}


def test_missing_file_check_mode_writes_nothing(tmp_path, server):
    path = str(tmp_path / "var" / "imgadm" / "imgadm.conf")

    result = ensure(path, check=True, url=server.url)

    assert result["changed"] is True
    assert result["sources"][0] == dict(DEFAULT, insecure=False, channel=None)
    assert not os.path.exists(os.path.dirname(path))


def test_missing_file_remove_default(conf):
    result = ensure(conf, url="https://images.smartos.org/", state="absent")

    assert result["changed"] is True
    assert read_config(conf) == {"sources": []}
    assert result["sources"] == []


def test_missing_file_default_unchanged(conf):
    result = ensure(conf, url="https://images.smartos.org", ping=False)

    assert result["changed"] is False
    assert not os.path.exists(conf)
    assert result["sources"] == [dict(DEFAULT, insecure=False, channel=None)]


def test_file_without_sources_key_remove_other(conf):
    write_config(conf, {"upgradedToVer": "3.0.0"})
    before = read_bytes(conf)

    result = ensure(conf, url=UNREACHABLE, state="absent")

    assert result["changed"] is False
    assert read_bytes(conf) == before


@pytest.mark.parametrize("check", [True, False], ids=["check", "real"])
def test_ping_failure(conf, server, check):
    write_config(conf, {"sources": [{"url": UNREACHABLE, "type": "imgapi"}]})
    before = read_bytes(conf)
    server.set_fault(None, "status", code=500, route="ping")

    result = ensure(conf, check=check, url=server.url)

    assert result["failed"] is True
    assert "imgapi source %s failed the ping check" % server.url in result["msg"]
    assert "HTTP 500" in result["msg"]
    assert "%s was left unchanged" % conf in result["msg"]
    assert "ping=false" in result["msg"]
    assert result["status"] == 500
    assert read_bytes(conf) == before


def test_ping_not_imgapi(conf, server):
    write_config(conf, {"sources": []})
    server.set_fault(None, "status", code=200, route="ping")

    result = ensure(conf, url=server.url)

    assert result["failed"] is True
    assert "not an IMGAPI server" in result["msg"]
    assert read_config(conf) == {"sources": []}


def test_ping_failure_names_every_source(conf, server, other_server):
    write_config(conf, {"sources": []})
    server.set_fault(None, "status", code=503, route="ping")

    result = ensure(conf, sources=[{"url": other_server.url}, {"url": server.url}, {"url": UNREACHABLE}])

    assert result["failed"] is True
    assert "imgapi source %s failed the ping check" % server.url in result["msg"]
    assert "imgapi source %s failed the ping check" % UNREACHABLE in result["msg"]
    assert "source %s failed" % other_server.url not in result["msg"]
    assert read_config(conf) == {"sources": []}


def test_ping_update_failure(conf, server):
    write_config(conf, {"sources": [{"url": server.url, "type": "imgapi"}]})
    before = read_bytes(conf)
    server.set_fault(None, "down", route="ping")

    result = ensure(conf, url=server.url, channel="dev")

    assert result["failed"] is True
    assert server.url in result["msg"]
    assert read_bytes(conf) == before


def test_no_ping_adds_unreachable(conf):
    write_config(conf, {"sources": []})

    result = ensure(conf, url=UNREACHABLE, ping=False)

    assert result["changed"] is True
    assert read_config(conf) == {"sources": [{"url": UNREACHABLE, "type": "imgapi"}]}


def test_unreachable_fails_ping(conf):
    write_config(conf, {"sources": []})

    result = ensure(conf, url=UNREACHABLE)

    assert result["failed"] is True
    assert "cannot connect" in result["msg"]
    assert read_config(conf) == {"sources": []}


@pytest.mark.parametrize("ping", [True, False], ids=["ping", "no-ping"])
def test_dsapi_url_without_datasets(conf, server, ping):
    write_config(conf, {"sources": []})

    result = ensure(conf, url=server.url, type="dsapi", ping=ping)

    assert result["failed"] is True
    assert "dsapi source %s must end in /datasets" % server.url in result["msg"]
    assert read_config(conf) == {"sources": []}
    assert server.requests == []


def test_dsapi_source_added(conf, server):
    write_config(conf, {"sources": []})

    result = ensure(conf, url=server.url + "/datasets", type="dsapi")

    assert result["changed"] is True
    assert read_config(conf) == {"sources": [{"url": server.url + "/datasets", "type": "dsapi"}]}
    assert [request[1] for request in server.requests] == ["/datasets"]


def test_dsapi_not_found_fails_ping(conf, server):
    write_config(conf, {"sources": []})

    result = ensure(conf, url=server.url + "/missing/datasets", type="dsapi")

    assert result["failed"] is True
    assert "HTTP 404" in result["msg"]
    assert read_config(conf) == {"sources": []}


def test_update_in_place(conf, server):
    write_config(conf, {"sources": [{"url": server.url + "/", "type": "imgapi"}, DEFAULT]})

    result = ensure(conf, url=server.url, insecure=True, channel="dev")

    assert result["changed"] is True
    assert result["actions"] == ["Updated source %s/ (insecure, channel)" % server.url]
    assert read_config(conf) == {"sources": [
        {"url": server.url + "/", "type": "imgapi", "insecure": True, "channel": "dev"}, DEFAULT]}


def test_diff_shape(conf, server):
    write_config(conf, {"sources": [{"url": UNREACHABLE}]})

    result = ensure(conf, check=True, url=server.url)

    assert result["diff"]["before"] == {"sources": [
        {"url": UNREACHABLE, "type": "imgapi", "insecure": False, "channel": None}]}
    assert result["diff"]["after"] == {"sources": [
        {"url": UNREACHABLE, "type": "imgapi", "insecure": False, "channel": None},
        {"url": server.url, "type": "imgapi", "insecure": False, "channel": None}]}
    assert result["diff"]["before_header"] == conf
    assert result["sources"] == result["diff"]["after"]["sources"]


def test_absent_with_list_rejected(conf):
    write_config(conf, {"sources": []})

    result = ensure(conf, sources=[], state="absent")

    assert result["failed"] is True
    assert "state=absent applies to url only" in result["msg"]


def test_insecure_without_url_rejected(conf):
    result = ensure(conf, sources=[], insecure=True)

    assert result["failed"] is True
    assert "required by 'insecure': url" in result["msg"]
