"""The source-list decider, as tables of (current entries, request, expected entries, actions, sources to ping)."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ConfigError, ImageError
from ansible_collections.smartos.images.plugins.module_utils._source_config import (
    SourceRequest,
    configured_entries,
    describe_entry,
    normalized,
    plan_sources,
)
from ansible_collections.smartos.images.plugins.module_utils._sources import Source

DEFAULT = {"url": "https://images.smartos.org", "type": "imgapi"}
A = {"url": "https://a.example.com", "type": "imgapi"}
B = {"url": "https://b.example.com", "type": "imgapi"}
C = {"url": "https://c.example.com", "type": "imgapi"}
DATASETS = "https://d.example.com/datasets"
DOCKER = {"url": "https://docker.io", "type": "docker"}


def requested(url, **fields):
    return Source(url=url, **fields)


# (id, current entries, requested source, expected entries, expected actions, URLs to ping)
PRESENT_CASES = [
    ("add to empty list", [], requested(A["url"]),
     [A], ["Added source https://a.example.com (imgapi)"], [A["url"]]),
    ("add after implicit default", configured_entries({}), requested(A["url"]),
     [DEFAULT, A], ["Added source https://a.example.com (imgapi)"], [A["url"]]),
    ("add implicit default itself", configured_entries({}), requested("https://images.smartos.org/"),
     [DEFAULT], [], []),
    ("add existing written differently", [{"url": "http://host", "type": "imgapi"}], requested("HTTP://host:80/"),
     [{"url": "http://host", "type": "imgapi"}], [], []),
    ("add existing without scheme", ["host.example.com"], requested("http://host.example.com/"),
     ["host.example.com"], [], []),
    ("add existing without type key", [{"url": "https://a.example.com/"}], requested(A["url"]),
     [{"url": "https://a.example.com/"}], [], []),
    ("add same URL of other type", [{"url": DATASETS, "type": "imgapi"}], requested(DATASETS, type="dsapi"),
     [{"url": DATASETS, "type": "imgapi"}, {"url": DATASETS, "type": "dsapi"}],
     ["Added source https://d.example.com/datasets (dsapi)"], [DATASETS]),
    ("add with insecure and channel", [A], requested(B["url"], insecure=True, channel="dev"),
     [A, dict(B, insecure=True, channel="dev")], ["Added source https://b.example.com (imgapi)"], [B["url"]]),
    ("add writes no insecure false", [], requested(A["url"], insecure=False),
     [A], ["Added source https://a.example.com (imgapi)"], [A["url"]]),
    ("add keeps docker entry", [DOCKER], requested(A["url"]),
     [DOCKER, A], ["Added source https://a.example.com (imgapi)"], [A["url"]]),
    ("update insecure", [A, B], requested(A["url"], insecure=True),
     [dict(A, insecure=True), B], ["Updated source https://a.example.com (insecure)"], [A["url"]]),
    ("update channel", [A], requested(A["url"], channel="experimental"),
     [dict(A, channel="experimental")], ["Updated source https://a.example.com (channel)"], [A["url"]]),
    ("update insecure and channel", [A], requested(A["url"], insecure=True, channel="dev"),
     [dict(A, insecure=True, channel="dev")], ["Updated source https://a.example.com (insecure, channel)"],
     [A["url"]]),
    ("update turns insecure off", [dict(A, insecure=True, comment="lab")], requested(A["url"]),
     [dict(A, comment="lab")], ["Updated source https://a.example.com (insecure)"], [A["url"]]),
    ("update removes channel", [dict(A, channel="dev")], requested(A["url"]),
     [A], ["Updated source https://a.example.com (channel)"], [A["url"]]),
    ("update keeps URL as written", [{"url": "https://a.example.com:443/", "type": "imgapi", "comment": "lab"}],
     requested("https://A.example.com", channel="dev"),
     [{"url": "https://a.example.com:443/", "type": "imgapi", "comment": "lab", "channel": "dev"}],
     ["Updated source https://a.example.com:443/ (channel)"], ["https://a.example.com:443/"]),
    ("update string entry", ["https://a.example.com"], requested(A["url"], insecure=True),
     [dict(A, insecure=True)], ["Updated source https://a.example.com (insecure)"], [A["url"]]),
    ("explicit insecure false equals false", [dict(A, insecure=False)], requested(A["url"]),
     [dict(A, insecure=False)], [], []),
    ("empty channel equals none", [dict(A, channel="")], requested(A["url"]),
     [dict(A, channel="")], [], []),
    ("unchanged source", [A, B], requested(B["url"]),
     [A, B], [], []),
]


@pytest.mark.parametrize("current, request_source, entries, actions, pinged",
                         [case[1:] for case in PRESENT_CASES], ids=[case[0] for case in PRESENT_CASES])
def test_present(current, request_source, entries, actions, pinged):
    plan = plan_sources(current, SourceRequest(source=request_source))

    assert plan.entries == entries
    assert plan.actions == actions
    assert [source.url for source in plan.to_check] == pinged
    assert plan.changed is bool(actions)


def test_present_pings_updated_settings():
    plan = plan_sources([dict(A, channel="dev")], SourceRequest(source=requested(A["url"], insecure=True, channel="rc")))

    assert plan.to_check[0].insecure is True
    assert plan.to_check[0].channel == "rc"


def test_present_leaves_current_unchanged():
    current = [dict(A, insecure=True)]

    plan_sources(current, SourceRequest(source=requested(A["url"])))

    assert current == [dict(A, insecure=True)]


# (id, current entries, URL to remove, expected entries, expected actions)
ABSENT_CASES = [
    ("remove existing", [A, B], A["url"], [B], ["Removed source https://a.example.com (imgapi)"]),
    ("remove missing", [A, B], C["url"], [A, B], []),
    ("remove from empty list", [], A["url"], [], []),
    ("remove implicit default", configured_entries({}), "https://images.smartos.org",
     [], ["Removed source https://images.smartos.org (imgapi)"]),
    ("remove written differently", [{"url": "http://host:80/"}, A], "HOST",
     [A], ["Removed source http://host:80/ (imgapi)"]),
    ("remove every type", [{"url": DATASETS, "type": "dsapi"}, A, {"url": DATASETS + "/", "type": "imgapi"}],
     DATASETS, [A],
     ["Removed source https://d.example.com/datasets (dsapi)", "Removed source https://d.example.com/datasets/ (imgapi)"]),
    ("remove docker entry", [DOCKER, A], "https://docker.io/", [A], ["Removed source https://docker.io (docker)"]),
    ("remove string entry", ["https://a.example.com", B], A["url"],
     [B], ["Removed source https://a.example.com (imgapi)"]),
    ("query is part of the URL", [{"url": "https://a.example.com/?channel=dev"}], A["url"],
     [{"url": "https://a.example.com/?channel=dev"}], []),
    ("remove URL other checks reject", [{"url": "ftp://old.example.com"}], "ftp://old.example.com",
     [], ["Removed source ftp://old.example.com (imgapi)"]),
]


@pytest.mark.parametrize("current, url, entries, actions",
                         [case[1:] for case in ABSENT_CASES], ids=[case[0] for case in ABSENT_CASES])
def test_absent(current, url, entries, actions):
    plan = plan_sources(current, SourceRequest(source=requested(url), state="absent"))

    assert plan.entries == entries
    assert plan.actions == actions
    assert plan.to_check == []


# (id, current entries, requested list, expected entries, expected actions, URLs to ping)
LIST_CASES = [
    ("set replaces implicit default", configured_entries({}), [requested(A["url"])],
     [A], ["Removed source https://images.smartos.org (imgapi)", "Added source https://a.example.com (imgapi)"],
     [A["url"]]),
    ("set keeps implicit default", configured_entries({}), [requested("https://images.smartos.org"), requested(A["url"])],
     [DEFAULT, A], ["Added source https://a.example.com (imgapi)"], [A["url"]]),
    ("set same list", [A, B], [requested(A["url"]), requested(B["url"])],
     [A, B], [], []),
    ("set same list written differently", [{"url": "https://a.example.com:443/"}, "b.example.com"],
     [requested("HTTPS://a.example.com"), requested("http://b.example.com:80")],
     [{"url": "https://a.example.com:443/"}, "b.example.com"], [], []),
    ("set empty list", [A, B], [],
     [], ["Removed source https://a.example.com (imgapi)", "Removed source https://b.example.com (imgapi)"], []),
    ("set empty list on empty list", [], [], [], [], []),
    ("reorder", [A, B, C], [requested(C["url"]), requested(A["url"]), requested(B["url"])],
     [C, A, B], ["Reordered sources"], []),
    ("reorder keeps URLs as written", [{"url": "https://a.example.com/"}, B],
     [requested(B["url"]), requested("https://a.example.com:443")],
     [B, {"url": "https://a.example.com/"}], ["Reordered sources"], []),
    ("add in the middle is no reorder", [A, B], [requested(A["url"]), requested(C["url"]), requested(B["url"])],
     [A, C, B], ["Added source https://c.example.com (imgapi)"], [C["url"]]),
    ("remove in the middle is no reorder", [A, B, C], [requested(A["url"]), requested(C["url"])],
     [A, C], ["Removed source https://b.example.com (imgapi)"], []),
    ("remove and reorder", [A, B, C], [requested(C["url"]), requested(A["url"])],
     [C, A], ["Removed source https://b.example.com (imgapi)", "Reordered sources"], []),
    ("dedupe request", [A], [requested(A["url"]), requested("https://a.example.com/")],
     [A], [], []),
    ("dedupe file", [A, {"url": "https://a.example.com/", "type": "imgapi"}, B], [requested(A["url"]), requested(B["url"])],
     [A, B], ["Removed source https://a.example.com/ (imgapi)"], []),
    ("same URL of two types", [{"url": DATASETS, "type": "dsapi"}],
     [requested(DATASETS), requested(DATASETS, type="dsapi")],
     [{"url": DATASETS, "type": "imgapi"}, {"url": DATASETS, "type": "dsapi"}],
     ["Added source https://d.example.com/datasets (imgapi)"], [DATASETS]),
    ("update in list", [A, B], [requested(A["url"]), requested(B["url"], insecure=True, channel="dev")],
     [A, dict(B, insecure=True, channel="dev")], ["Updated source https://b.example.com (insecure, channel)"],
     [B["url"]]),
    ("update keeps other keys", [dict(A, comment="lab", insecure=True)], [requested(A["url"])],
     [dict(A, comment="lab")], ["Updated source https://a.example.com (insecure)"], [A["url"]]),
    ("docker entry not listed is removed", [DOCKER, A], [requested(A["url"])],
     [A], ["Removed source https://docker.io (docker)"], []),
    ("all kinds of change", [A, B, C], [requested(C["url"]), requested("https://e.example.com"), requested(A["url"], insecure=True)],
     [C, {"url": "https://e.example.com", "type": "imgapi"}, dict(A, insecure=True)],
     ["Removed source https://b.example.com (imgapi)", "Updated source https://a.example.com (insecure)",
      "Added source https://e.example.com (imgapi)", "Reordered sources"],
     ["https://e.example.com", A["url"]]),
]


@pytest.mark.parametrize("current, request_list, entries, actions, pinged",
                         [case[1:] for case in LIST_CASES], ids=[case[0] for case in LIST_CASES])
def test_list(current, request_list, entries, actions, pinged):
    plan = plan_sources(current, SourceRequest(sources=request_list))

    assert plan.entries == entries
    assert plan.actions == actions
    assert [source.url for source in plan.to_check] == pinged
    assert plan.changed is bool(actions)


# (id, URL, normalised URL)
NORMALIZE_CASES = [
    ("upper-case scheme and default http port", "HTTP://host:80/", "http://host"),
    ("no scheme", "host", "http://host"),
    ("default https port and trailing slash", "https://h.example.com:443/path/", "https://h.example.com/path"),
    ("other port kept", "https://h.example.com:8443", "https://h.example.com:8443"),
    ("https port on http kept", "http://h.example.com:443", "http://h.example.com:443"),
    ("query kept", "http://h.example.com/?channel=dev", "http://h.example.com?channel=dev"),
    ("host lower-cased", "https://Images.Example.COM", "https://images.example.com"),
    ("surrounding blanks", "  https://h.example.com/  ", "https://h.example.com"),
    ("several trailing slashes", "https://h.example.com/datasets//", "https://h.example.com/datasets"),
]


@pytest.mark.parametrize("url, expected", [case[1:] for case in NORMALIZE_CASES],
                         ids=[case[0] for case in NORMALIZE_CASES])
def test_normalized(url, expected):
    assert normalized(url, "url") == expected


# (id, requested source, fragments of the error)
INVALID_SOURCE_CASES = [
    ("empty url", requested("  "), ["url: url is empty"]),
    ("ftp scheme", requested("ftp://h.example.com"), ["ftp://h.example.com", "'ftp'", "use http or https"]),
    ("no host", requested("http://"), ["has no host name"]),
    ("port not a number", requested("http://h.example.com:port"), ["'http://h.example.com:port' is not a valid URL"]),
    ("dsapi without datasets", requested("https://d.example.com", type="dsapi"),
     ["dsapi source https://d.example.com must end in /datasets", "type imgapi"]),
    ("dsapi with datasets inside", requested("https://d.example.com/datasets/x", type="dsapi"), ["must end in /datasets"]),
    ("unknown type", requested("https://h.example.com", type="docker"), ["type 'docker'", "imgapi, dsapi"]),
]


@pytest.mark.parametrize("source, fragments", [case[1:] for case in INVALID_SOURCE_CASES],
                         ids=[case[0] for case in INVALID_SOURCE_CASES])
def test_present_invalid_source(source, fragments):
    with pytest.raises(ImageError) as caught:
        plan_sources([A], SourceRequest(source=source))

    for fragment in fragments:
        assert fragment in str(caught.value)


def test_list_invalid_source_named_by_index():
    with pytest.raises(ImageError) as caught:
        plan_sources([], SourceRequest(sources=[requested(A["url"]), requested("https://d.example.com", type="dsapi")]))

    assert str(caught.value).startswith("sources[1]: ")


def test_dsapi_with_trailing_slash_is_valid():
    plan = plan_sources([], SourceRequest(source=requested(DATASETS + "/", type="dsapi")))

    assert plan.entries == [{"url": DATASETS + "/", "type": "dsapi"}]


def test_list_conflicting_duplicates():
    with pytest.raises(ImageError) as caught:
        plan_sources([], SourceRequest(sources=[requested(A["url"]), requested(B["url"]), requested(A["url"] + "/", insecure=True)]))

    assert "sources[0] (https://a.example.com) and sources[2] (https://a.example.com/)" in str(caught.value)
    assert "list it once" in str(caught.value)


def test_absent_empty_url():
    with pytest.raises(ImageError) as caught:
        plan_sources([A], SourceRequest(source=requested(""), state="absent"))

    assert "url is empty" in str(caught.value)


def test_absent_with_list_rejected():
    with pytest.raises(ImageError) as caught:
        plan_sources([A], SourceRequest(sources=[requested(A["url"])], state="absent"))

    assert "state=absent applies to url only" in str(caught.value)


def test_no_source_rejected():
    with pytest.raises(ImageError) as caught:
        plan_sources([A], SourceRequest())

    assert "no source given" in str(caught.value)


# (id, file entry, fragment of the error)
INVALID_ENTRY_CASES = [
    ("no url", {"type": "imgapi"}, "has no url"),
    ("number", 42, "source 42 has no url"),
    ("blank url", {"url": " "}, "has no url"),
    ("port not a number", {"url": "http://h.example.com:port"}, "is not a valid URL"),
]


@pytest.mark.parametrize("entry, fragment", [case[1:] for case in INVALID_ENTRY_CASES],
                         ids=[case[0] for case in INVALID_ENTRY_CASES])
def test_invalid_file_entry(entry, fragment):
    with pytest.raises(ConfigError) as caught:
        plan_sources([A, entry], SourceRequest(source=requested(B["url"])), where="/etc/imgadm.conf")

    assert "/etc/imgadm.conf: sources[1]" in str(caught.value)
    assert fragment in str(caught.value)


def test_configured_entries_implicit_default():
    assert configured_entries({"upgradedToVer": "3.0.0"}) == [DEFAULT]


def test_configured_entries_empty_list():
    assert configured_entries({"sources": []}) == []


def test_configured_entries_copies_list():
    data = {"sources": [A]}

    configured_entries(data).append(B)

    assert data == {"sources": [A]}


# (id, file entry, entry as the result and diff show it)
DESCRIBE_CASES = [
    ("string", "https://a.example.com", {"url": A["url"], "type": "imgapi", "insecure": False, "channel": None}),
    ("no type", {"url": A["url"]}, {"url": A["url"], "type": "imgapi", "insecure": False, "channel": None}),
    ("full", dict(B, insecure=True, channel="dev", comment="lab"),
     {"url": B["url"], "type": "imgapi", "insecure": True, "channel": "dev"}),
    ("docker", DOCKER, {"url": DOCKER["url"], "type": "docker", "insecure": False, "channel": None}),
]


@pytest.mark.parametrize("entry, expected", [case[1:] for case in DESCRIBE_CASES],
                         ids=[case[0] for case in DESCRIBE_CASES])
def test_describe_entry(entry, expected):
    assert describe_entry(entry) == expected
