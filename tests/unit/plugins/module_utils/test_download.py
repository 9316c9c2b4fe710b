"""Digest checks, file feeding and ``FileDownload`` against the fault server."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid as uuidlib

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _download
from ansible_collections.smartos.images.plugins.module_utils._download import (
    Digests,
    FileDownload,
    feed_file,
    verify_file,
)
from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ChecksumError,
    DownloadError,
    SizeError,
)
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._manifest import ImageFile
from tests.support.fault_server import FaultServer
from tests.support.imagebuilder import random_payload

FILE_SIZE = 300 * 1024
DATA = b"0123456789"
DATA_SHA1 = hashlib.sha1(DATA).hexdigest()
DATA_MD5 = base64.b64encode(hashlib.md5(DATA).digest()).decode()
OTHER_SHA1 = "f" * 40
OTHER_MD5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()


def expected_file(size, sha1):
    return ImageFile(size=size, sha1=sha1, compression="gzip", dataset_guid=None)


class MemorySink:
    """A sink that keeps every byte written to it."""

    def __init__(self):
        self.data = bytearray()
        self.aborted = False

    def write(self, chunk):
        assert not self.aborted, "write after abort"
        self.data += chunk

    def abort(self):
        self.aborted = True


class SinkFactory:
    """The ``start_sink`` callable: starts a new ``MemorySink`` and keeps them all."""

    def __init__(self):
        self.sinks = []

    def __call__(self):
        sink = MemorySink()
        self.sinks.append(sink)
        return sink


# Digests.verify

@pytest.mark.parametrize(
    "size, sha1, fed, content_md5, error, fragments",
    [
        pytest.param(10, DATA_SHA1, DATA, None, None, [], id="sha1-match"),
        pytest.param(10, DATA_SHA1.upper(), DATA, None, None, [], id="sha1-upper-case"),
        pytest.param(10, DATA_SHA1, DATA[:9], None, SizeError, ["10 bytes", "9 bytes"], id="size-short"),
        pytest.param(10, DATA_SHA1, DATA + b"x", None, SizeError, ["10 bytes", "11 bytes"], id="size-long"),
        pytest.param(10, OTHER_SHA1, DATA, None, ChecksumError, [OTHER_SHA1, DATA_SHA1], id="sha1-mismatch"),
        pytest.param(10, DATA_SHA1, DATA, OTHER_MD5, None, [], id="md5-ignored-with-sha1"),
        pytest.param(10, None, DATA, DATA_MD5, None, [], id="md5-match"),
        pytest.param(10, None, DATA, OTHER_MD5, ChecksumError, [OTHER_MD5, DATA_MD5], id="md5-mismatch"),
        pytest.param(10, None, DATA, None, None, [], id="no-digest"),
        pytest.param(0, DATA_SHA1, DATA, None, None, [], id="size-unknown"),
    ],
)
def test_digests_verify(size, sha1, fed, content_md5, error, fragments):
    digests = Digests(expected_file(size, sha1))
    digests.update(fed[:4])
    digests.update(fed[4:])

    if error is None:
        digests.verify("base@1.0", content_md5)
    else:
        with pytest.raises(error) as caught:
            digests.verify("base@1.0", content_md5)
        assert type(caught.value) is error  # pylint: disable=unidiomatic-typecheck
        assert "base@1.0" in str(caught.value)
        for fragment in fragments:
            assert fragment in str(caught.value)


def test_digests_md5_only_without_sha1():
    assert Digests(expected_file(10, DATA_SHA1)).md5 is None
    assert Digests(expected_file(10, None)).md5 is not None


# verify_file

@pytest.mark.parametrize(
    "size, sha1, expected",
    [
        pytest.param(10, DATA_SHA1, None, id="match"),
        pytest.param(10, DATA_SHA1.upper(), None, id="sha1-upper-case"),
        pytest.param(11, DATA_SHA1, "size 10, manifest says 11", id="size-mismatch"),
        pytest.param(10, OTHER_SHA1, "sha1 %s, manifest says %s" % (DATA_SHA1, OTHER_SHA1), id="sha1-mismatch"),
        pytest.param(10, None, None, id="no-sha1"),
        pytest.param(0, DATA_SHA1, None, id="size-unknown"),
    ],
)
def test_verify_file(tmp_path, size, sha1, expected):
    path = tmp_path / "image.file"
    path.write_bytes(DATA)

    assert verify_file(str(path), expected_file(size, sha1)) == expected


# feed_file

@pytest.mark.parametrize(
    "limit, expected",
    [
        pytest.param(None, DATA, id="whole"),
        pytest.param(6, DATA[:6], id="limit"),
        pytest.param(4, DATA[:4], id="limit-one-chunk"),
        pytest.param(0, b"", id="limit-zero"),
        pytest.param(10, DATA, id="limit-exact"),
        pytest.param(25, DATA, id="limit-past-end"),
    ],
)
def test_feed_file(tmp_path, monkeypatch, limit, expected):
    monkeypatch.setattr(_download, "CHUNK_SIZE", 4)
    path = tmp_path / "image.file"
    path.write_bytes(DATA)
    sink = MemorySink()
    digests = Digests(expected_file(10, DATA_SHA1))

    sent = feed_file(str(path), sink, digests, limit=limit)

    assert sent == len(expected)
    assert bytes(sink.data) == expected
    assert digests.size == len(expected)
    assert digests.sha1.hexdigest() == hashlib.sha1(expected).hexdigest()


# FileDownload against the fault server

@pytest.fixture
def payload():
    return random_payload(FILE_SIZE, "download-unit-tests")


@pytest.fixture
def image(tmp_path, payload):
    path = tmp_path / "served.file"
    path.write_bytes(payload)
    return {"uuid": str(uuidlib.uuid4()), "path": str(path), "sha1": hashlib.sha1(payload).hexdigest()}


@pytest.fixture
def server(image):
    with FaultServer() as running:
        running.add({"v": 2, "uuid": image["uuid"], "name": "base", "version": "1.0.0"}, image["path"])
        yield running


@pytest.fixture
def download_dir(tmp_path):
    return str(tmp_path / "downloads")


def make_download(download_dir, image, size=FILE_SIZE, sha1="same"):
    return FileDownload(
        http=HttpClient(connect_timeout=2, read_timeout=2, retries=1, backoff=0.01),
        download_dir=download_dir,
        uuid=image["uuid"],
        label="%s (base@1.0.0)" % image["uuid"],
        expected=expected_file(size, image["sha1"] if sha1 == "same" else sha1),
    )


def file_url(server, image):
    return "%s/images/%s/file" % (server.url, image["uuid"])


def file_requests(server):
    return [headers for method, path, headers in server.requests if path.endswith("/file")]


def test_download_complete(server, image, payload, download_dir):
    download = make_download(download_dir, image)
    start_sink = SinkFactory()

    sink, path = download.run(file_url(server, image), start_sink)

    assert sink is start_sink.sinks[0]
    assert len(start_sink.sinks) == 1
    assert bytes(sink.data) == payload
    assert sink.aborted is False
    assert path == download.final_path
    assert path == os.path.join(download_dir, image["uuid"] + ".file")
    with open(path, "rb") as handle:
        assert handle.read() == payload
    assert not os.path.exists(download.partial_path)
    assert "range" not in file_requests(server)[0]


def test_download_without_sha1(server, image, payload, download_dir):
    download = make_download(download_dir, image, sha1=None)
    start_sink = SinkFactory()

    sink, path = download.run(file_url(server, image), start_sink)

    assert bytes(sink.data) == payload
    assert os.path.exists(path)


def test_download_resumes_with_range(server, image, payload, download_dir):
    server.set_fault(image["uuid"], "fail_times", times=1, after=100_000)
    download = make_download(download_dir, image)
    start_sink = SinkFactory()

    sink, path = download.run(file_url(server, image), start_sink)

    requests = file_requests(server)
    assert len(start_sink.sinks) == 1
    assert bytes(sink.data) == payload
    assert sink.aborted is False
    assert len(requests) == 2
    assert "range" not in requests[0]
    assert requests[1]["range"] == "bytes=100000-"
    with open(path, "rb") as handle:
        assert handle.read() == payload


def test_download_resumes_twice(server, image, payload, download_dir):
    download = FileDownload(
        http=HttpClient(connect_timeout=2, read_timeout=2, retries=2, backoff=0.01),
        download_dir=download_dir,
        uuid=image["uuid"],
        label=image["uuid"],
        expected=expected_file(FILE_SIZE, image["sha1"]),
    )
    server.set_fault(image["uuid"], "fail_times", times=2, after=70_000)
    start_sink = SinkFactory()

    sink, _path = download.run(file_url(server, image), start_sink)

    requests = file_requests(server)
    assert len(start_sink.sinks) == 1
    assert bytes(sink.data) == payload
    assert [headers.get("range") for headers in requests] == [None, "bytes=70000-", "bytes=140000-"]


def test_download_restarts_without_range(server, image, payload, download_dir):
    server.set_fault(image["uuid"], "fail_times", times=1, after=100_000)
    server.set_fault(image["uuid"], "no_range")
    download = make_download(download_dir, image)
    start_sink = SinkFactory()

    sink, path = download.run(file_url(server, image), start_sink)

    first, second = start_sink.sinks
    assert len(start_sink.sinks) == 2
    assert first.aborted is True
    assert bytes(first.data) == payload[:100_000]
    assert sink is second
    assert second.aborted is False
    assert bytes(second.data) == payload
    with open(path, "rb") as handle:
        assert handle.read() == payload


@pytest.mark.parametrize(
    "sha1, fragments",
    [
        pytest.param("same", ["sha1 mismatch"], id="sha1"),
        pytest.param(None, ["Content-MD5 mismatch"], id="content-md5"),
    ],
)
def test_download_corrupt(server, image, download_dir, sha1, fragments):
    server.set_fault(image["uuid"], "corrupt", offset=5000, count=3)
    download = make_download(download_dir, image, sha1=sha1)
    start_sink = SinkFactory()

    with pytest.raises(ChecksumError) as caught:
        download.run(file_url(server, image), start_sink)

    for fragment in fragments:
        assert fragment in str(caught.value)
    assert start_sink.sinks[0].aborted is True
    assert not os.path.exists(download.partial_path)
    assert not os.path.exists(download.final_path)


def test_download_corrupt_names_digests(server, image, payload, download_dir):
    server.set_fault(image["uuid"], "corrupt", offset=0, count=1)
    download = make_download(download_dir, image)
    corrupted = bytes([payload[0] ^ 0xFF]) + payload[1:]

    with pytest.raises(ChecksumError) as caught:
        download.run(file_url(server, image), SinkFactory())

    assert image["sha1"] in str(caught.value)
    assert hashlib.sha1(corrupted).hexdigest() in str(caught.value)


def test_download_truncated_keeps_partial(server, image, payload, download_dir):
    server.set_fault(image["uuid"], "truncate", after=50_000)
    download = make_download(download_dir, image)
    start_sink = SinkFactory()
    url = file_url(server, image)

    with pytest.raises(DownloadError) as caught:
        download.run(url, start_sink)

    assert type(caught.value) is DownloadError  # pylint: disable=unidiomatic-typecheck
    assert url in str(caught.value)
    assert download.partial_path in str(caught.value)
    assert "after 2 attempts" in str(caught.value)
    assert len(file_requests(server)) == 2
    assert start_sink.sinks[0].aborted is True
    with open(download.partial_path, "rb") as handle:
        assert handle.read() == payload[:100_000]
    assert not os.path.exists(download.final_path)


def test_download_next_run_resumes(server, image, payload, download_dir):
    server.set_fault(image["uuid"], "truncate", after=50_000)
    url = file_url(server, image)
    with pytest.raises(DownloadError):
        make_download(download_dir, image).run(url, SinkFactory())
    server.clear_faults()
    server.clear_requests()
    start_sink = SinkFactory()

    sink, path = make_download(download_dir, image).run(url, start_sink)

    assert len(start_sink.sinks) == 1
    assert bytes(sink.data) == payload
    assert file_requests(server)[0]["range"] == "bytes=100000-"
    with open(path, "rb") as handle:
        assert handle.read() == payload


def test_download_oversized_partial_restarts(server, image, payload, download_dir):
    download = make_download(download_dir, image)
    os.makedirs(download_dir)
    with open(download.partial_path, "wb") as handle:
        handle.write(b"x" * (FILE_SIZE + 1))
    start_sink = SinkFactory()

    sink, _path = download.run(file_url(server, image), start_sink)

    assert bytes(sink.data) == payload
    assert "range" not in file_requests(server)[0]


def test_download_size_mismatch(server, image, download_dir):
    download = make_download(download_dir, image, size=FILE_SIZE + 1)
    start_sink = SinkFactory()

    with pytest.raises(SizeError) as caught:
        download.run(file_url(server, image), start_sink)

    assert "Content-Length %d" % FILE_SIZE in str(caught.value)
    assert "%d bytes" % (FILE_SIZE + 1) in str(caught.value)
    assert start_sink.sinks == []
    assert not os.path.exists(download.partial_path)


def test_download_not_found(server, image, download_dir):
    image = dict(image, uuid=str(uuidlib.uuid4()))
    download = make_download(download_dir, image)
    url = file_url(server, image)

    with pytest.raises(DownloadError) as caught:
        download.run(url, SinkFactory())

    assert caught.value.details["status"] == 404
    assert url in str(caught.value)
    assert len(file_requests(server)) == 1


# complete_file and discard

def test_complete_file_reused(image, payload, download_dir):
    download = make_download(download_dir, image)
    os.makedirs(download_dir)
    with open(download.final_path, "wb") as handle:
        handle.write(payload)

    assert download.complete_file() == download.final_path
    assert download.warnings == []
    assert os.path.exists(download.final_path)


def test_complete_file_missing(image, download_dir):
    download = make_download(download_dir, image)

    assert download.complete_file() is None
    assert download.warnings == []


@pytest.mark.parametrize(
    "content, reason",
    [
        pytest.param(b"short", "size 5, manifest says %d" % FILE_SIZE, id="size"),
        pytest.param(b"\0" * FILE_SIZE, "sha1 %s" % hashlib.sha1(b"\0" * FILE_SIZE).hexdigest(), id="sha1"),
    ],
)
def test_complete_file_discarded(image, download_dir, content, reason):
    download = make_download(download_dir, image)
    os.makedirs(download_dir)
    with open(download.final_path, "wb") as handle:
        handle.write(content)

    assert download.complete_file() is None
    assert len(download.warnings) == 1
    assert download.final_path in download.warnings[0]
    assert reason in download.warnings[0]
    assert not os.path.exists(download.final_path)


def test_discard_removes_files(image, download_dir):
    download = make_download(download_dir, image)
    os.makedirs(download_dir)
    for path in (download.partial_path, download.final_path):
        with open(path, "wb") as handle:
            handle.write(DATA)

    download.discard()
    download.discard()

    assert os.listdir(download_dir) == []


def test_download_complete_partial(server, image, payload, download_dir):
    # A run killed after the last byte reached the partial file, but before
    # the rename, leaves a complete partial file behind.
    download = make_download(download_dir, image)
    os.makedirs(download_dir)
    with open(download.partial_path, "wb") as handle:
        handle.write(payload)
    start_sink = SinkFactory()

    sink, path = download.run(file_url(server, image), start_sink)

    assert bytes(sink.data) == payload
    with open(path, "rb") as handle:
        assert handle.read() == payload
