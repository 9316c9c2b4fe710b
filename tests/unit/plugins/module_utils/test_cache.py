"""The manifest cache files and ``atomic_write``."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _cache
from ansible_collections.smartos.images.plugins.module_utils._cache import ManifestCache, atomic_write

UUID = "2b683a82-a066-11e3-97ab-2faa44701c5a"
OTHER_UUID = "3c4b7d54-a066-11e3-8ef9-57ff0e3d0d0c"
MANIFEST = {"v": 2, "uuid": UUID, "name": "base", "version": "1.0.0"}
SOURCE = "https://images.example.com"


@pytest.fixture
def cache(tmp_path):
    return ManifestCache(str(tmp_path / "images"))


def test_cache_path(cache, tmp_path):
    assert cache.path("zones", UUID) == str(tmp_path / "images" / ("zones-%s.json" % UUID))


def test_cache_round_trip(cache):
    cache.save("zones", UUID, MANIFEST, SOURCE)

    info, warning = cache.load("zones", UUID)

    assert info == {"manifest": MANIFEST, "zpool": "zones", "source": SOURCE}
    assert warning is None


def test_cache_file_format(cache):
    cache.save("zones", UUID, {"uuid": UUID, "name": "base"}, SOURCE)

    with open(cache.path("zones", UUID)) as handle:
        text = handle.read()

    assert text == (
        "{\n"
        '  "manifest": {\n'
        '    "uuid": "%s",\n'
        '    "name": "base"\n'
        "  },\n"
        '  "zpool": "zones",\n'
        '  "source": "%s"\n'
        "}\n"
    ) % (UUID, SOURCE)


def test_cache_file_mode(cache):
    cache.save("zones", UUID, MANIFEST, SOURCE)

    assert stat.S_IMODE(os.stat(cache.path("zones", UUID)).st_mode) == 0o644


@pytest.mark.parametrize("source", [pytest.param(None, id="none"), pytest.param("", id="empty")])
def test_cache_without_source(cache, source):
    cache.save("zones", UUID, MANIFEST, source)

    with open(cache.path("zones", UUID)) as handle:
        saved = json.load(handle)

    assert saved == {"manifest": MANIFEST, "zpool": "zones"}


def test_cache_save_replaces(cache):
    cache.save("zones", UUID, MANIFEST, SOURCE)
    newer = dict(MANIFEST, description="updated")

    cache.save("zones", UUID, newer, None)

    info, _warning = cache.load("zones", UUID)
    assert info == {"manifest": newer, "zpool": "zones"}
    assert os.listdir(cache.cache_dir) == [os.path.basename(cache.path("zones", UUID))]


def test_cache_pools_separate(cache):
    cache.save("zones", UUID, MANIFEST, SOURCE)

    assert cache.load("data", UUID) == (None, None)


def test_cache_missing(cache):
    assert cache.load("zones", UUID) == (None, None)


@pytest.mark.parametrize(
    "text, fragment",
    [
        pytest.param("{\"manifest\": ", "is unreadable", id="truncated-json"),
        pytest.param("not json at all", "is unreadable", id="not-json"),
        pytest.param(b"\xff\xfe{}", "is unreadable", id="not-utf8"),
        pytest.param(json.dumps({"manifest": dict(MANIFEST, uuid=OTHER_UUID), "zpool": "zones"}),
                     "does not hold the manifest of image %s" % UUID, id="other-uuid"),
        pytest.param(json.dumps({"zpool": "zones"}), "does not hold the manifest", id="no-manifest"),
        pytest.param(json.dumps({"manifest": [MANIFEST]}), "does not hold the manifest", id="manifest-list"),
        pytest.param(json.dumps([MANIFEST]), "does not hold the manifest", id="top-level-list"),
        pytest.param("null", "does not hold the manifest", id="null"),
    ],
)
def test_cache_unusable(cache, text, fragment):
    path = cache.path("zones", UUID)
    os.makedirs(cache.cache_dir)
    with open(path, "wb") as handle:
        handle.write(text if isinstance(text, bytes) else text.encode())

    info, warning = cache.load("zones", UUID)

    assert info is None
    assert path in warning
    assert fragment in warning


def test_cache_remove(cache):
    cache.save("zones", UUID, MANIFEST, SOURCE)

    assert cache.remove("zones", UUID) is True
    assert cache.remove("zones", UUID) is False
    assert not os.path.exists(cache.path("zones", UUID))


def test_cache_remove_without_directory(cache):
    assert cache.remove("zones", UUID) is False


# atomic_write

def test_atomic_write_new_file(tmp_path):
    path = tmp_path / "file.json"

    atomic_write(str(path), "new\n", mode=0o600)

    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["file.json"]


def test_atomic_write_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "file.json"
    path.write_text("old\n")

    def fail_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_cache.os, "replace", fail_replace)

    with pytest.raises(OSError):
        atomic_write(str(path), "new\n")

    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["file.json"]


def test_atomic_write_write_fails(tmp_path):
    path = tmp_path / "file.json"
    path.write_text("old\n")

    with pytest.raises(TypeError):
        atomic_write(str(path), b"bytes are not text")

    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["file.json"]


def test_atomic_write_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "file.json"
    path.write_text("old\n")

    def interrupt(fd, mode):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cache.os, "chmod", interrupt)

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(path), "new\n")

    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["file.json"]
