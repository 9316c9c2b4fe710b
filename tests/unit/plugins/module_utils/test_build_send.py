"""The send-and-compress pipeline of image_build, with stand-in commands for zfs send."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, StreamError
from ansible_collections.smartos.images.plugins.module_utils._send import write_stream

PAYLOAD = bytes(range(256)) * 4096


def emitter(data_path, exit_code=0, message=""):
    """Return an argv that prints the file at ``data_path``, writes ``message`` to stderr and exits ``exit_code``."""
    code = ("import sys; sys.stdout.buffer.write(open(%r, 'rb').read()); sys.stdout.flush(); "
            "sys.stderr.write(%r); sys.exit(%d)" % (data_path, message, exit_code))
    return [sys.executable, "-c", code]


@pytest.fixture()
def payload_file(tmp_path):
    path = tmp_path / "stream"
    path.write_bytes(PAYLOAD)
    return str(path)


def test_uncompressed_file_is_the_stream(tmp_path, payload_file):
    out = str(tmp_path / "image.zfs")

    written = write_stream(emitter(payload_file), None, out, "test")

    with open(out, "rb") as handle:
        assert handle.read() == PAYLOAD
    assert written.size == len(PAYLOAD)
    assert written.sha1 == hashlib.sha1(PAYLOAD).hexdigest()


def test_compressed_digest_covers_written_bytes(tmp_path, payload_file):
    out = str(tmp_path / "image.zfs.gz")

    written = write_stream(emitter(payload_file), [shutil.which("gzip"), "-c"], out, "test")

    with open(out, "rb") as handle:
        data = handle.read()
    assert gzip.decompress(data) == PAYLOAD
    assert written.size == len(data)
    assert written.sha1 == hashlib.sha1(data).hexdigest()


def test_send_failure_raises_with_stderr(tmp_path, payload_file):
    out = str(tmp_path / "image.zfs.partial")

    with pytest.raises(StreamError, match="cannot send: no such snapshot") as caught:
        write_stream(emitter(payload_file, 1, "cannot send: no such snapshot"), None, out, "test")

    assert "exited 1" in str(caught.value)
    assert not os.path.exists(out)


def test_compressor_failure_raises_and_removes_file(tmp_path, payload_file):
    out = str(tmp_path / "image.zfs.gz.partial")
    failing = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(10); sys.stderr.write('gzip broke'); "
                                     "sys.exit(3)"]

    with pytest.raises(StreamError, match="gzip broke"):
        write_stream(emitter(payload_file), failing, out, "test")

    assert not os.path.exists(out)


def test_existing_file_is_not_overwritten_or_removed(tmp_path, payload_file):
    out = tmp_path / "image.zfs.partial"
    out.write_bytes(b"someone else's")

    with pytest.raises(ImageError, match="cannot write the image file"):
        write_stream(emitter(payload_file), None, str(out), "test")

    assert out.read_bytes() == b"someone else's"


def test_missing_directory_names_the_path(tmp_path, payload_file):
    out = str(tmp_path / "missing" / "image.zfs")

    with pytest.raises(ImageError, match="check that the directory exists"):
        write_stream(emitter(payload_file), None, out, "test")
