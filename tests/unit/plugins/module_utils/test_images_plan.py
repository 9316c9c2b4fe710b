"""``ImageManager.plan_present`` and ``plan_absent`` with an in-memory ZFS and loopback sources."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ImageError,
    ImageNotFoundError,
    InUseError,
)
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._images import ImageManager, ImageRequest, Paths
from ansible_collections.smartos.images.plugins.module_utils._sources import Source
from ansible_collections.smartos.images.plugins.module_utils._zfs import Dataset
from tests.support.fault_server import FaultServer

POOL = "zones"
DOWN_URL = "http://127.0.0.1:9"


class FakeZfs:
    """The reading part of ``Zfs`` over a dictionary of dataset name to origin snapshot."""

    def __init__(self, origins=None):
        self.origins = dict(origins or {})

    def exists(self, name):
        return name in self.origins

    def existing(self, names):
        return [name for name in names if name in self.origins]

    def pool_exists(self, pool):
        return pool in self.origins

    def datasets(self, pool):
        return [Dataset(name, origin) for name, origin in sorted(self.origins.items())
                if name == pool or name.startswith(pool + "/")]

    def clones_of(self, pool, dataset):
        prefix = dataset + "@"
        return [d.name for d in self.datasets(pool) if d.origin and d.origin.startswith(prefix)]


def make_manifest(name="base", version="1.0.0", published_at="2024-05-01T12:00:00.000Z", **fields):
    manifest = {
        "v": 2,
        "uuid": str(uuidlib.uuid4()),
        "owner": "11111111-1111-4111-8111-111111111111",
        "name": name,
        "version": version,
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": published_at,
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": "0" * 40, "size": 1024, "compression": "gzip"}],
    }
    manifest.update(fields)
    return manifest


def dataset(manifest):
    return "%s/%s" % (POOL, manifest["uuid"])


@pytest.fixture
def servers():
    started = []

    def start():
        server = FaultServer()
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def server(servers):
    return servers()


@pytest.fixture
def warnings():
    return []


@pytest.fixture
def make_manager(tmp_path, warnings):
    def make(urls, installed=None):
        return ImageManager(
            zfs=FakeZfs(installed),
            pool=POOL,
            paths=Paths(
                config_file=str(tmp_path / "imgadm.conf"),
                cache_dir=str(tmp_path / "images"),
                download_dir=str(tmp_path / "downloads"),
                lock_dir=str(tmp_path / "run"),
            ),
            http=HttpClient(connect_timeout=2, read_timeout=2, retries=1, backoff=0.01),
            sources=[Source(url) for url in urls],
            warn=warnings.append,
        )

    return make


# plan_present by UUID

def test_plan_installed(server, make_manager):
    manifest = make_manifest()
    server.add(manifest)
    manager = make_manager([server.url], {POOL: None, dataset(manifest): None})

    plan = manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert plan.steps == []
    assert plan.changed is False
    assert plan.manifest == {"uuid": manifest["uuid"]}
    assert server.requests == []


def test_plan_installed_cached_manifest(server, make_manager):
    manifest = make_manifest()
    manager = make_manager([server.url], {POOL: None, dataset(manifest): None})
    manager.cache.save(POOL, manifest["uuid"], manifest, server.url)

    plan = manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert plan.manifest == manifest
    assert plan.steps == []


def test_plan_one_step(server, make_manager):
    manifest = make_manifest()
    server.add(manifest)
    manager = make_manager([server.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert plan.changed is True
    assert [step.uuid for step in plan.steps] == [manifest["uuid"]]
    assert plan.steps[0].manifest == manifest
    assert plan.steps[0].source_url == server.url
    assert plan.steps[0].file_url == "%s/images/%s/file" % (server.url, manifest["uuid"])
    assert plan.steps[0].file_path is None
    assert plan.manifest == manifest


def test_plan_origin_first(server, make_manager):
    base = make_manifest(name="base")
    child = make_manifest(name="child", origin=base["uuid"])
    server.add(base)
    server.add(child)
    manager = make_manager([server.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(uuid=child["uuid"]))

    assert [step.uuid for step in plan.steps] == [base["uuid"], child["uuid"]]
    assert plan.manifest == child


def test_plan_origin_chain(server, make_manager):
    base = make_manifest(name="base")
    middle = make_manifest(name="middle", origin=base["uuid"])
    top = make_manifest(name="top", origin=middle["uuid"])
    for manifest in (base, middle, top):
        server.add(manifest)
    manager = make_manager([server.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(uuid=top["uuid"]))

    assert [step.uuid for step in plan.steps] == [base["uuid"], middle["uuid"], top["uuid"]]


def test_plan_origin_installed(server, make_manager):
    base = make_manifest(name="base")
    child = make_manifest(name="child", origin=base["uuid"])
    server.add(child)
    manager = make_manager([server.url], {POOL: None, dataset(base): None})

    plan = manager.plan_present(ImageRequest(uuid=child["uuid"]))

    assert [step.uuid for step in plan.steps] == [child["uuid"]]


def test_plan_origin_missing(server, make_manager):
    base_uuid = str(uuidlib.uuid4())
    child = make_manifest(name="child", origin=base_uuid)
    server.add(child)
    manager = make_manager([server.url], {POOL: None})

    with pytest.raises(ImageNotFoundError) as caught:
        manager.plan_present(ImageRequest(uuid=child["uuid"]))

    assert base_uuid in str(caught.value)
    assert server.url in str(caught.value)


def test_plan_origin_loop(server, make_manager):
    first = make_manifest(name="first")
    second = make_manifest(name="second", origin=first["uuid"])
    first["origin"] = second["uuid"]
    server.add(first)
    server.add(second)
    manager = make_manager([server.url], {POOL: None})

    with pytest.raises(ImageError) as caught:
        manager.plan_present(ImageRequest(uuid=second["uuid"]))

    assert "loops" in str(caught.value)
    assert second["uuid"] in str(caught.value)


def test_plan_first_source_down(servers, make_manager, warnings):
    second = servers()
    manifest = make_manifest()
    second.add(manifest)
    manager = make_manager([DOWN_URL, second.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert [step.source_url for step in plan.steps] == [second.url]
    assert len(warnings) == 1
    assert DOWN_URL in warnings[0]
    assert manifest["uuid"] in warnings[0]


def test_plan_first_source_lacks_image(servers, make_manager, warnings):
    first, second = servers(), servers()
    manifest = make_manifest()
    second.add(manifest)
    manager = make_manager([first.url, second.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert [step.source_url for step in plan.steps] == [second.url]
    assert len(warnings) == 1
    assert "%s: not found" % first.url in warnings[0]


def test_plan_found_in_first_source(servers, make_manager, warnings):
    first, second = servers(), servers()
    manifest = make_manifest()
    first.add(manifest)
    second.add(manifest)
    manager = make_manager([first.url, second.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert [step.source_url for step in plan.steps] == [first.url]
    assert second.requests == []
    assert warnings == []


def test_plan_not_found_anywhere(servers, make_manager):
    first, second = servers(), servers()
    image_uuid = str(uuidlib.uuid4())
    manager = make_manager([DOWN_URL, first.url, second.url], {POOL: None})

    with pytest.raises(ImageNotFoundError) as caught:
        manager.plan_present(ImageRequest(uuid=image_uuid))

    assert image_uuid in str(caught.value)
    assert DOWN_URL in str(caught.value)
    assert "%s: not found" % first.url in str(caught.value)
    assert "%s: not found" % second.url in str(caught.value)


def test_plan_no_sources(make_manager):
    manager = make_manager([], {POOL: None})

    with pytest.raises(ImageNotFoundError) as caught:
        manager.plan_present(ImageRequest(uuid=str(uuidlib.uuid4())))

    assert "no sources are configured" in str(caught.value)


@pytest.mark.parametrize("state", ["disabled", "unactivated", "failed", "creating"])
def test_plan_inactive_skipped(servers, make_manager, warnings, state):
    first, second = servers(), servers()
    manifest = make_manifest()
    first.add(dict(manifest, state=state))
    second.add(manifest)
    manager = make_manager([first.url, second.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert [step.source_url for step in plan.steps] == [second.url]
    assert len(warnings) == 1
    assert "state is %s" % state in warnings[0]


def test_plan_inactive_only(server, make_manager):
    manifest = make_manifest(state="disabled", disabled=True)
    server.add(manifest)
    manager = make_manager([server.url], {POOL: None})

    with pytest.raises(ImageNotFoundError) as caught:
        manager.plan_present(ImageRequest(uuid=manifest["uuid"]))

    assert "state is disabled, not active" in str(caught.value)


# plan_present by name and version

NAMED = [
    make_manifest(name="base", version="1.0.0", published_at="2024-01-01T00:00:00.000Z"),
    make_manifest(name="base", version="1.0.0", published_at="2024-03-01T00:00:00.000Z"),
    make_manifest(name="base", version="1.0.0", published_at="2024-02-01T00:00:00.000Z"),
    make_manifest(name="base", version="2.0.0", published_at="2024-04-01T00:00:00.000Z"),
    make_manifest(name="base", version="3.0.0", published_at="2024-06-01T00:00:00.000Z", state="disabled"),
    make_manifest(name="other", version="1.0.0", published_at="2024-09-01T00:00:00.000Z"),
]


@pytest.mark.parametrize(
    "name, version, expected",
    [
        pytest.param("base", "1.0.0", NAMED[1], id="name-version"),
        pytest.param("base", None, NAMED[3], id="name-newest"),
        pytest.param("other", None, NAMED[5], id="other-name"),
    ],
)
def test_plan_by_name(server, make_manager, name, version, expected):
    for manifest in NAMED:
        server.add(manifest)
    manager = make_manager([server.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(name=name, version=version))

    assert plan.manifest == expected
    assert [step.uuid for step in plan.steps] == [expected["uuid"]]


@pytest.mark.parametrize(
    "name, version",
    [
        pytest.param("base", "3.0.0", id="only-disabled"),
        pytest.param("base", "9.9.9", id="no-version"),
        pytest.param("missing", None, id="no-name"),
    ],
)
def test_plan_by_name_not_found(server, make_manager, name, version):
    for manifest in NAMED:
        server.add(manifest)
    manager = make_manager([server.url], {POOL: None})

    with pytest.raises(ImageNotFoundError) as caught:
        manager.plan_present(ImageRequest(name=name, version=version))

    assert name in str(caught.value)
    assert "%s: no active image" % server.url in str(caught.value)


def test_plan_by_name_installed(server, make_manager):
    for manifest in NAMED:
        server.add(manifest)
    manager = make_manager([server.url], {POOL: None, dataset(NAMED[3]): None})

    plan = manager.plan_present(ImageRequest(name="base"))

    assert plan.steps == []
    assert plan.manifest == {"uuid": NAMED[3]["uuid"]}


def test_plan_by_version_installed(server, make_manager):
    installed = NAMED[0]
    manager = make_manager([server.url], {POOL: None, dataset(installed): None})
    manager.cache.save(POOL, installed["uuid"], installed, server.url)

    plan = manager.plan_present(ImageRequest(name="base", version="1.0.0"))

    assert plan.steps == []
    assert plan.manifest == installed
    assert server.requests == []


def test_plan_by_name_first_source_down(servers, make_manager, warnings):
    second = servers()
    manifest = make_manifest(name="base")
    second.add(manifest)
    manager = make_manager([DOWN_URL, second.url], {POOL: None})

    plan = manager.plan_present(ImageRequest(name="base"))

    assert [step.source_url for step in plan.steps] == [second.url]
    assert any(DOWN_URL in warning for warning in warnings)


# plan_absent

def test_absent_not_installed(make_manager):
    manager = make_manager([], {POOL: None})

    plan = manager.plan_absent(ImageRequest(uuid=str(uuidlib.uuid4())))

    assert plan.uuid is None
    assert plan.manifest is None


def test_absent_installed(make_manager):
    manifest = make_manifest()
    manager = make_manager([], {POOL: None, dataset(manifest): None, "zones/vm1": "zones/other@final"})

    plan = manager.plan_absent(ImageRequest(uuid=manifest["uuid"]))

    assert plan.uuid == manifest["uuid"]
    assert plan.manifest == {"uuid": manifest["uuid"]}


def test_absent_in_use(make_manager):
    manifest = make_manifest()
    base = dataset(manifest)
    manager = make_manager([], {
        POOL: None,
        base: None,
        "zones/vm2": base + "@final",
        "zones/vm1": base + "@final",
        "zones/vm3": base + "-partial@final",
    })

    with pytest.raises(InUseError) as caught:
        manager.plan_absent(ImageRequest(uuid=manifest["uuid"]))

    assert caught.value.clones == ["zones/vm1", "zones/vm2"]
    assert "zones/vm1, zones/vm2" in str(caught.value)
    assert "2 dataset(s)" in str(caught.value)
    assert "zones/vm3" not in str(caught.value)


def test_absent_by_name(make_manager):
    older = make_manifest(name="base", published_at="2024-01-01T00:00:00.000Z")
    newer = make_manifest(name="base", published_at="2024-02-01T00:00:00.000Z")
    manager = make_manager([], {POOL: None, dataset(older): None, dataset(newer): None})
    manager.cache.save(POOL, older["uuid"], older, None)
    manager.cache.save(POOL, newer["uuid"], newer, None)

    plan = manager.plan_absent(ImageRequest(name="base"))

    assert plan.uuid == newer["uuid"]
    assert plan.manifest == newer
