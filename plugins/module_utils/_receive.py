# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decompress-and-receive pipeline an image file is written into.

Decompression runs in this process with the standard library's ``zlib``,
``bz2`` and ``lzma``, on a worker thread that feeds ``zfs receive``.  Those
libraries and the pipe writes release the GIL, so the download loop (socket
read, partial file write, sha1) and the decompression overlap on two cores,
and no external decompressor has to be installed on the host.
"""

from __future__ import annotations

import bz2
import fcntl
import lzma
import os
import queue
import subprocess
import tempfile
import threading
import zlib
from typing import Iterator, Optional, Sequence

from ansible_collections.smartos.images.plugins.module_utils._errors import StreamError
from ansible_collections.smartos.images.plugins.module_utils._zfs import C_LOCALE

# Decompressed bytes produced for one input chunk at most, so a stream of
# zeros (which compresses a thousandfold) cannot exhaust memory.
OUTPUT_LIMIT = 4 * 1024 * 1024
# Chunks waiting for the worker; with 1 MiB downloads, about 8 MiB of memory.
QUEUE_CHUNKS = 8
PIPE_SIZE = 1024 * 1024
# Seconds zfs receive may take to read the data of one queued chunk, or to
# exit after the last byte, before the import is stopped as hung.
DEFAULT_STALL_TIMEOUT = 300.0
# Seconds to wait for a killed zfs receive, and for the worker thread.
ABORT_WAIT = 5.0
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class Decompressor:
    """Streaming decompression of one compression format, with concatenated members."""

    def __init__(self, compression: str):
        self.compression = compression
        self._new()

    def _new(self) -> None:
        if self.compression == "gzip":
            self._engine = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.compression == "bzip2":
            self._engine = bz2.BZ2Decompressor()
        else:
            self._engine = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        self.started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the decompressed bytes of ``data``, at most ``OUTPUT_LIMIT`` at a time."""
        while data:
            if not self.started and self._is_padding(data):
                return
            self.started = True
            if self.compression == "gzip":
                out = self._engine.decompress(data, OUTPUT_LIMIT)
                data = self._engine.unconsumed_tail
            else:
                out = self._engine.decompress(data, OUTPUT_LIMIT)
                data = b""
                while not self._engine.eof and not self._engine.needs_input:
                    if out:
                        yield out
                    out = self._engine.decompress(b"", OUTPUT_LIMIT)
            if out:
                yield out
            if self._engine.eof:
                data = self._engine.unused_data + data
                self._new()

    def check_complete(self) -> None:
        """Raise ``ValueError`` when the input ended inside a compressed member."""
        if self.started and not self._engine.eof:
            raise ValueError("the compressed data ends before its end-of-stream marker")

    @staticmethod
    def _is_padding(data: bytes) -> bool:
        # gzip tolerates trailing zero bytes and xz allows stream padding of
        # zeros, so zeros after a complete member end the input.
        return not data.strip(b"\0")


def _enlarge_pipe(handle) -> None:
    # A larger pipe lets the writer run ahead of zfs receive instead of the
    # two taking turns on 64 KiB (the Linux default).
    try:
        fcntl.fcntl(handle.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


class ReceivePipeline:
    """``zfs receive`` fed through ``write`` with compressed bytes of ``compression``."""

    def __init__(self, compression: str, receive_argv: Sequence[str], label: str,
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT):
        self.label = label
        self.receive_argv = list(receive_argv)
        self.stall_timeout = stall_timeout
        self._decompressor = None if compression == "none" else Decompressor(compression)
        self._receive_err = tempfile.TemporaryFile()
        self.receive = subprocess.Popen(self.receive_argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=self._receive_err, env=dict(os.environ, **C_LOCALE))
        _enlarge_pipe(self.receive.stdin)
        self._queue: "queue.Queue[Optional[bytes]]" = queue.Queue(QUEUE_CHUNKS)
        self._failure: Optional[StreamError] = None
        # Set when the pipeline stops early: the worker then drops what is
        # queued and records no error of its own.
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._pump, name="zfs-receive-feeder", daemon=True)
        self._worker.start()

    def write(self, chunk: bytes) -> None:
        if self._failure is not None:
            self.abort()
            raise self._failure
        try:
            self._queue.put(chunk, timeout=self.stall_timeout)
        except queue.Full:
            # The worker has been blocked on the pipe for the whole time,
            # so zfs receive has read nothing.
            raise self._stop_stalled() from None

    def finish(self) -> None:
        """Wait for the worker and ``zfs receive``; raise ``StreamError`` unless all went well."""
        try:
            self._queue.put(None, timeout=self.stall_timeout)
        except queue.Full:
            raise self._stop_stalled() from None
        self._worker.join(timeout=self.stall_timeout)
        if self._worker.is_alive():
            # The rest of the stream fitted in the queue, and the worker is
            # still blocked writing it into the pipe.
            raise self._stop_stalled()
        if self._failure is None and self._decompressor is not None:
            try:
                self._decompressor.check_complete()
            except ValueError as exc:
                self._failure = self._decompress_failure(exc)
        if self._failure is not None:
            self.abort()
            raise self._failure
        try:
            self.receive.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.receive.wait(timeout=self.stall_timeout)
        except subprocess.TimeoutExpired:
            self.abort()
            raise self._hung_failure("did not exit within %g s of the last data" % self.stall_timeout) from None
        if self.receive.returncode != 0:
            raise self._receive_failure("failed")

    def abort(self) -> None:
        """Kill ``zfs receive`` and stop the worker, waiting a few seconds for each at most.

        A worker that stays blocked on the pipe, because a process that cannot
        be killed yet still holds its other end, is left behind. It is a
        daemon thread, so it does not keep the module from exiting, and the
        pipe is then not closed here: closing it would wait for the worker's
        write.
        """
        self._stopping.set()
        if self.receive.poll() is None:
            self.receive.kill()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            # The worker checks _stopping before each queued chunk.
            pass
        self._worker.join(timeout=ABORT_WAIT)
        try:
            self.receive.wait(timeout=ABORT_WAIT)
        except subprocess.TimeoutExpired:
            # A process in uninterruptible sleep, such as a zfs command
            # waiting on a hung ZFS, ends only when that wait does.
            pass
        if not self._worker.is_alive():
            try:
                self.receive.stdin.close()
            except (BrokenPipeError, OSError):
                pass

    def _pump(self) -> None:
        """Decompress queued chunks into ``zfs receive`` until the end marker (None) or a stop."""
        while True:
            chunk = self._queue.get()
            if chunk is None or self._stopping.is_set():
                return
            if self._failure is not None:
                continue
            try:
                if self._decompressor is None:
                    self.receive.stdin.write(chunk)
                    continue
                for data in self._decompressor.feed(chunk):
                    self.receive.stdin.write(data)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # Any error is recorded instead of ending the thread, because
                # the download loop would block forever on an undrained queue.
                # After a stop, the error is the stop's own doing.
                if not self._stopping.is_set() and self._failure is None:
                    self._failure = self._classify(exc)

    def _classify(self, exc: BaseException) -> StreamError:
        if isinstance(exc, BrokenPipeError):
            try:
                self.receive.wait(timeout=ABORT_WAIT)
            except subprocess.TimeoutExpired:
                pass
            return self._receive_failure("stopped reading its input")
        return self._decompress_failure(exc)

    def _decompress_failure(self, exc: BaseException) -> StreamError:
        return StreamError(
            "image %s: the file is not valid %s data (%s); it does not match the manifest's compression, "
            "check the image on the server" % (self.label, self._decompressor.compression, exc)
        )

    def _stop_stalled(self) -> StreamError:
        """Abort the pipeline after the worker was blocked on the pipe for the stall timeout; return the error."""
        self.abort()
        return self._hung_failure("read no data for %g s" % self.stall_timeout)

    def _hung_failure(self, problem: str) -> StreamError:
        return StreamError(
            "image %s: %s %s (receive_timeout), so it was stopped; check that ZFS answers, for example with "
            "zpool status, then run the task again, or raise receive_timeout for a pool that is this slow"
            % (self.label, " ".join(self.receive_argv), problem)
        )

    def _receive_failure(self, what: str) -> StreamError:
        self._receive_err.seek(0)
        stderr = self._receive_err.read().decode("utf-8", "replace").strip()
        hint = "; free space in the pool or use another pool" if "space" in stderr else ""
        return StreamError(
            "image %s: %s %s (exit %s): %s%s"
            % (self.label, " ".join(self.receive_argv), what, self.receive.returncode, stderr or "no output", hint),
            stderr=stderr,
        )
