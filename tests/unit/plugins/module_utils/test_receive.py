"""Streaming decompression and the receive pipeline, with ``cat`` standing in for zfs receive."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import sys
import time

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import StreamError
from ansible_collections.smartos.images.plugins.module_utils._receive import (
    OUTPUT_LIMIT,
    Decompressor,
    ReceivePipeline,
)

PAYLOAD = os.urandom(300 * 1024) + b"\0" * (2 * 1024 * 1024)
COMPRESSORS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}


def chunks(data, size=64 * 1024):
    return [data[i:i + size] for i in range(0, len(data), size)]


def decompress_all(compression, data, size=64 * 1024):
    decompressor = Decompressor(compression)
    out = b"".join(piece for chunk in chunks(data, size) for piece in decompressor.feed(chunk))
    decompressor.check_complete()
    return out


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompressor_round_trip(compression):
    assert decompress_all(compression, COMPRESSORS[compression](PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompressor_concatenated_members(compression):
    compress = COMPRESSORS[compression]

    assert decompress_all(compression, compress(b"first ") + compress(b"second")) == b"first second"


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompressor_trailing_zeros_ignored(compression):
    assert decompress_all(compression, COMPRESSORS[compression](b"data") + b"\0" * 512) == b"data"


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompressor_truncated_input(compression):
    data = COMPRESSORS[compression](PAYLOAD)

    with pytest.raises(ValueError, match="ends before"):
        decompress_all(compression, data[: len(data) // 2])


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompressor_garbage_rejected(compression):
    with pytest.raises(Exception):
        decompress_all(compression, b"this is not compressed" * 100)


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompressor_output_bounded(compression):
    zeros = COMPRESSORS[compression](b"\0" * (64 * 1024 * 1024))
    decompressor = Decompressor(compression)

    pieces = [len(piece) for piece in decompressor.feed(zeros)]

    assert max(pieces) <= OUTPUT_LIMIT
    assert sum(pieces) == 64 * 1024 * 1024


def cat_into(path):
    return ["sh", "-c", 'cat > "$0"', str(path)]


@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "xz"])
def test_pipeline_delivers_bytes(tmp_path, compression):
    data = PAYLOAD if compression == "none" else COMPRESSORS[compression](PAYLOAD)
    out = tmp_path / "received"
    pipeline = ReceivePipeline(compression, cat_into(out), "test-image")

    for chunk in chunks(data, 1024 * 1024):
        pipeline.write(chunk)
    pipeline.finish()

    assert out.read_bytes() == PAYLOAD


def test_pipeline_receiver_failure(tmp_path):
    pipeline = ReceivePipeline("none", ["sh", "-c", "echo 'out of space' >&2; exit 3"], "test-image")

    with pytest.raises(StreamError) as caught:
        for chunk in chunks(PAYLOAD * 4, 1024 * 1024):
            pipeline.write(chunk)
        pipeline.finish()

    assert "exit 3" in str(caught.value)
    assert "free space in the pool" in str(caught.value)


def test_pipeline_wrong_compression(tmp_path):
    pipeline = ReceivePipeline("xz", cat_into(tmp_path / "received"), "test-image")

    with pytest.raises(StreamError, match="not valid xz data"):
        pipeline.write(gzip.compress(PAYLOAD))
        pipeline.finish()


def test_pipeline_truncated_compressed_file(tmp_path):
    data = gzip.compress(PAYLOAD)
    pipeline = ReceivePipeline("gzip", cat_into(tmp_path / "received"), "test-image")
    pipeline.write(data[: len(data) // 2])

    with pytest.raises(StreamError, match="ends before its end-of-stream marker"):
        pipeline.finish()


def test_pipeline_abort_kills_receiver(tmp_path):
    pipeline = ReceivePipeline("none", ["sleep", "60"], "test-image")

    pipeline.abort()

    assert pipeline.receive.returncode is not None


def test_pipeline_receiver_reads_nothing():
    # sleep never reads its input, as a zfs receive waiting on a hung ZFS.
    pipeline = ReceivePipeline("none", ["sleep", "60"], "test-image", stall_timeout=0.5)
    started = time.monotonic()

    with pytest.raises(StreamError) as caught:
        for chunk in chunks(PAYLOAD * 16, 1024 * 1024):
            pipeline.write(chunk)

    assert "sleep 60 read no data for 0.5 s (receive_timeout)" in str(caught.value)
    assert time.monotonic() - started < 15
    assert pipeline.receive.returncode is not None


def test_pipeline_receiver_never_exits(tmp_path):
    reads_then_waits = [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(); time.sleep(60)"]
    pipeline = ReceivePipeline("none", reads_then_waits, "test-image", stall_timeout=0.5)
    pipeline.write(PAYLOAD)

    with pytest.raises(StreamError) as caught:
        pipeline.finish()

    assert "did not exit within 0.5 s of the last data" in str(caught.value)
    assert pipeline.receive.returncode is not None


def test_pipeline_stall_within_queue():
    # Three chunks fit in the queue and the pipe, so only finish can notice.
    pipeline = ReceivePipeline("none", ["sleep", "60"], "test-image", stall_timeout=0.5)
    for chunk in chunks(os.urandom(3 * 1024 * 1024), 1024 * 1024):
        pipeline.write(chunk)
    started = time.monotonic()

    with pytest.raises(StreamError) as caught:
        pipeline.finish()

    assert "sleep 60 read no data for 0.5 s (receive_timeout)" in str(caught.value)
    assert time.monotonic() - started < 15
    assert pipeline.receive.returncode is not None


def test_pipeline_compressed_stall_names_timeout():
    data = gzip.compress(os.urandom(3 * 1024 * 1024))
    pipeline = ReceivePipeline("gzip", ["sleep", "60"], "test-image", stall_timeout=0.5)

    with pytest.raises(StreamError) as caught:
        for chunk in chunks(data, 1024 * 1024):
            pipeline.write(chunk)
        pipeline.finish()

    assert "(receive_timeout)" in str(caught.value)
    assert "not valid gzip data" not in str(caught.value)


def test_pipeline_stops_when_kill_leaves_pipe_open():
    # The background sleep keeps the pipe open after its parent is killed,
    # as a zfs receive in uninterruptible sleep would.
    holds_pipe = ["sh", "-c", "exec 3<&0; sleep 30 <&3 & exec sleep 60 3<&-"]
    pipeline = ReceivePipeline("none", holds_pipe, "test-image", stall_timeout=0.5)
    started = time.monotonic()

    with pytest.raises(StreamError) as caught:
        for chunk in chunks(PAYLOAD * 16, 1024 * 1024):
            pipeline.write(chunk)
        pipeline.finish()

    assert "(receive_timeout)" in str(caught.value)
    assert time.monotonic() - started < 15
