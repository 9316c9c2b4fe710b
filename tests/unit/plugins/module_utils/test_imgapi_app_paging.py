"""Paging through 2,100 images, many sharing a published_at, as the sdc-clients library pages."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.smartos.images.plugins.module_utils._imgapi_app import make_app

from tests.support.image_server_stack import populate
from tests.support.wsgi_client import call

COUNT = 2100


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    repository = str(tmp_path_factory.mktemp("paging") / "repo")
    os.makedirs(repository)
    manifests = populate(repository, COUNT, shared_timestamps=7)
    return repository, manifests


@pytest.fixture(scope="module")
def app(catalog):
    return make_app({"repository": catalog[0], "accel_prefix": ""})


def list_all_like_sdc_clients(app, query=""):
    """Page as node-sdc-clients 13 ``listImages`` does without a limit.

    The first request has no limit, and a page shorter than 1000 ends the
    listing. Later requests send ``marker=<last uuid>&limit=1000`` and drop
    the first element when it is the marker. The loop also stops when the
    marker does not advance.
    """
    images = []
    marker = None
    requests = 0
    while True:
        params = [query] if query else []
        if marker:
            params.append("marker=" + marker)
            params.append("limit=1000")
        response = call(app, "GET", "/images", query="&".join(params))
        requests += 1
        assert response.status == 200, response.body
        page = response.json()
        stop = len(page) < 1000
        if marker and page and page[0]["uuid"] == marker:
            page.pop(0)
        if not page:
            break
        new_marker = page[-1]["uuid"]
        if marker and marker == new_marker:
            break
        marker = new_marker
        images.extend(page)
        if stop:
            break
    return images, requests


def expected_order(manifests):
    return [manifest["uuid"] for manifest in sorted(manifests, key=lambda m: (m["published_at"], m["uuid"]))]


def test_sdc_clients_loop_gets_every_image_once(app, catalog):
    images, requests = list_all_like_sdc_clients(app)

    listed = [image["uuid"] for image in images]
    assert len(listed) == COUNT
    assert len(set(listed)) == COUNT
    assert listed == expected_order(catalog[1])
    assert requests == 3


def test_page_boundaries_fall_inside_shared_timestamps(app, catalog):
    first = call(app, "GET", "/images").json()
    second = call(app, "GET", "/images", query="marker=%s&limit=1000" % first[-1]["uuid"]).json()

    assert len(first) == 1000
    assert second[0]["uuid"] == first[-1]["uuid"]
    assert second[1]["published_at"] == first[-1]["published_at"]


def test_descending_pages_cover_everything(app, catalog):
    listed = []
    marker = None
    while True:
        query = "sort=published_at.desc&limit=500" + ("&marker=" + marker if marker else "")
        page = call(app, "GET", "/images", query=query).json()
        if marker:
            assert page[0]["uuid"] == marker
            page = page[1:]
        listed.extend(image["uuid"] for image in page)
        if len(page) < 499:
            break
        marker = page[-1]["uuid"]

    assert listed == list(reversed(expected_order(catalog[1])))


def test_filtered_paging(app, catalog):
    images, _requests = list_all_like_sdc_clients(app, query="name=synthetic-3")

    expected = [m for m in catalog[1] if m["name"] == "synthetic-3"]
    assert [image["uuid"] for image in images] == expected_order(expected)


def test_limit_is_capped_at_one_thousand(app):
    response = call(app, "GET", "/images", query="limit=1000")

    assert len(response.json()) == 1000


def test_listing_is_fast_once_loaded(app):
    call(app, "GET", "/images")
    started = time.perf_counter()
    for index in range(20):
        call(app, "GET", "/images", query="limit=1000&name=~synthetic&i=%d" % index)
    elapsed = time.perf_counter() - started

    # Twenty uncached filtered listings of 2,100 images. The bound is
    # generous for a loaded shared machine, but far below what re-reading
    # 2,100 manifests for every request would take.
    assert elapsed < 10
