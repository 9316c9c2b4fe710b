"""Merging the listings of several sources into the available images."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._available import (
    SourceListing,
    list_available,
    merge_listings,
)
from ansible_collections.smartos.images.plugins.module_utils._filters import parse_filters
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._sources import Source
from tests.support.fault_server import FaultServer

FIRST = Source("http://127.0.0.1:8001")
SECOND = Source("http://127.0.0.1:8002")
BROKEN = Source("http://127.0.0.1:9")

BASE = {"v": 2, "uuid": "2f1dc911-6401-4fa4-8e9d-67ea2e39c271", "name": "base", "version": "1.0.0",
        "published_at": "2024-01-01T00:00:00Z", "os": "smartos"}
BASE_AGAIN = dict(BASE, description="the second source's copy")
LINUX = {"v": 2, "uuid": "c2c31b00-1d60-11e9-9a77-ff9f06554b0f", "name": "linux", "version": "3.0.0",
         "published_at": "2023-06-01T00:00:00Z", "os": "linux"}
APP = {"v": 2, "uuid": "7970c690-1738-4e58-a04f-8ce4ea8ebfca", "name": "app", "version": "1.0.0",
       "published_at": "2024-01-01T00:00:00Z", "os": "smartos"}


def merged(listings, filters=()):
    warnings = []
    images, errors = merge_listings(listings, parse_filters(filters), warnings.append)
    return images, errors, warnings


def test_first_source_in_order_wins():
    images, errors, warnings = merged([SourceListing(FIRST, [BASE], None), SourceListing(SECOND, [BASE_AGAIN], None)])

    assert images == [{"manifest": BASE, "source": FIRST.url}]


def test_first_source_wins_when_listed_second():
    images, errors, warnings = merged([SourceListing(SECOND, [BASE_AGAIN], None), SourceListing(FIRST, [BASE], None)])

    assert images == [{"manifest": BASE_AGAIN, "source": SECOND.url}]


def test_failed_source_is_reported_and_others_kept():
    images, errors, warnings = merged([
        SourceListing(BROKEN, [], "http://127.0.0.1:9/images?limit=1000: cannot connect: [Errno 111]"),
        SourceListing(FIRST, [BASE, LINUX], None),
    ])

    assert [image["manifest"]["uuid"] for image in images] == [LINUX["uuid"], BASE["uuid"]]
    assert errors == [{"url": BROKEN.url, "message": "http://127.0.0.1:9/images?limit=1000: cannot connect: [Errno 111]"}]
    assert len(warnings) == 1
    assert BROKEN.url in warnings[0]


def test_sorted_by_published_at_then_name():
    images, errors, warnings = merged([SourceListing(FIRST, [BASE, APP, LINUX], None)])

    assert [image["manifest"]["name"] for image in images] == ["linux", "app", "base"]


def test_duplicate_within_one_source_listed_once():
    images, errors, warnings = merged([SourceListing(FIRST, [BASE, BASE], None)])

    assert len(images) == 1


def test_manifest_without_uuid_left_out():
    images, errors, warnings = merged([SourceListing(FIRST, [BASE, {"name": "nameless"}], None)])

    assert [image["manifest"] for image in images] == [BASE]
    assert "1 image(s) without a uuid" in warnings[0]


FILTER_CASES = [
    ("os", ["os=linux"], [LINUX["uuid"]]),
    ("source", ["source=" + SECOND.url], [APP["uuid"]]),
    ("published date", ["pub=2024-01-01"], [APP["uuid"], BASE["uuid"]]),
    ("dictionary", {"name": "base", "version": "1.0.0"}, [BASE["uuid"]]),
    ("nothing", ["name=absent"], []),
]


@pytest.mark.parametrize("filters, expected", [case[1:] for case in FILTER_CASES], ids=[case[0] for case in FILTER_CASES])
def test_filters(filters, expected):
    listings = [SourceListing(FIRST, [BASE, LINUX], None), SourceListing(SECOND, [APP, BASE_AGAIN], None)]

    images, errors, warnings = merged(listings, filters)

    assert [image["manifest"]["uuid"] for image in images] == expected


def test_filter_sees_winning_source_only():
    listings = [SourceListing(FIRST, [BASE], None), SourceListing(SECOND, [BASE_AGAIN], None)]

    images, errors, warnings = merged(listings, ["source=" + SECOND.url])

    assert images == []


def test_no_sources_warns():
    warnings = []

    images, errors = list_available([], HttpClient(retries=0), warn=warnings.append)

    assert images == []
    assert errors == []
    assert "no image sources are configured" in warnings[0]


def test_list_available_from_servers_on_loopback():
    with FaultServer() as first, FaultServer() as second:
        first.add(BASE)
        second.add(BASE_AGAIN)
        second.add(LINUX)
        sources = [Source(first.url), Source("http://127.0.0.1:9"), Source(second.url)]
        warnings = []

        images, errors = list_available(sources, HttpClient(connect_timeout=2, read_timeout=2, retries=0),
                                        warn=warnings.append)

    assert [(image["manifest"]["uuid"], image["source"]) for image in images] == [
        (LINUX["uuid"], second.url), (BASE["uuid"], first.url)]
    assert [error["url"] for error in errors] == ["http://127.0.0.1:9"]
    assert "cannot connect" in errors[0]["message"]
