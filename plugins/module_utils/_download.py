# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Download an image file once, verifying it while it streams into a sink.

Bytes go to ``<download_dir>/<uuid>.file.partial`` and, in the same pass,
into the sink (the decompress-and-receive pipeline).  The sink's result only
becomes visible after the size and checksum have been verified, which the
caller enforces by renaming the received dataset into place last.  An
interrupted transfer resumes with ``Range`` from the bytes already on disk.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import Any, Callable, Optional, Tuple

from ansible_collections.smartos.images.plugins.module_utils._errors import (
    ChecksumError,
    DownloadError,
    SizeError,
)
from ansible_collections.smartos.images.plugins.module_utils._http import (
    TRANSIENT_ERRORS,
    HttpClient,
    describe_error,
)
from ansible_collections.smartos.images.plugins.module_utils._manifest import ImageFile

CHUNK_SIZE = 1024 * 1024
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class Digests:
    """The sha1 (or, without one, the Content-MD5) computed over the streamed bytes."""

    def __init__(self, expected: ImageFile):
        self.expected = expected
        self.sha1 = hashlib.sha1()
        self.md5 = None if expected.sha1 else hashlib.md5()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.sha1.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        self.size += len(chunk)

    def verify(self, label: str, content_md5: Optional[str]) -> None:
        if self.expected.size and self.size != self.expected.size:
            raise SizeError(
                "image %s: file size mismatch: manifest says %d bytes, downloaded %d bytes; "
                "the source is serving a different file, check the server" % (label, self.expected.size, self.size)
            )
        if self.expected.sha1:
            actual = self.sha1.hexdigest()
            if actual != self.expected.sha1.lower():
                raise ChecksumError(
                    "image %s: sha1 mismatch: manifest says %s, downloaded %s; the source is serving "
                    "a different file, re-run or check the server" % (label, self.expected.sha1, actual)
                )
        elif content_md5 and self.md5 is not None:
            actual = base64.b64encode(self.md5.digest()).decode("ascii")
            if actual != content_md5:
                raise ChecksumError(
                    "image %s: Content-MD5 mismatch: server says %s, downloaded %s; re-run or check the server"
                    % (label, content_md5, actual)
                )


def verify_file(path: str, expected: ImageFile) -> Optional[str]:
    """Return None when ``path`` has the expected size and sha1, else the reason it does not."""
    size = os.path.getsize(path)
    if expected.size and size != expected.size:
        return "size %d, manifest says %d" % (size, expected.size)
    if not expected.sha1:
        return None
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected.sha1.lower():
        return "sha1 %s, manifest says %s" % (digest.hexdigest(), expected.sha1)
    return None


def feed_file(path: str, sink: Any, digests: Optional[Digests] = None, limit: Optional[int] = None) -> int:
    """Write the first ``limit`` bytes of ``path`` (all without a limit) into ``sink``."""
    sent = 0
    with open(path, "rb") as handle:
        while limit is None or sent < limit:
            want = CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit - sent)
            chunk = handle.read(want)
            if not chunk:
                break
            if digests is not None:
                digests.update(chunk)
            sink.write(chunk)
            sent += len(chunk)
    return sent


class FileDownload:
    """One image file: its paths in the download directory and the transfer into a sink."""

    def __init__(self, *, http: HttpClient, download_dir: str, uuid: str, label: str,
                 expected: ImageFile, insecure: bool = False):
        self.http = http
        self.uuid = uuid
        self.label = label
        self.expected = expected
        self.insecure = insecure
        self.final_path = os.path.join(download_dir, "%s.file" % uuid)
        self.partial_path = self.final_path + ".partial"
        self.download_dir = download_dir
        self.warnings = []

    def complete_file(self) -> Optional[str]:
        """Return the path of a verified earlier download, deleting one that does not verify."""
        if not os.path.exists(self.final_path):
            return None
        reason = verify_file(self.final_path, self.expected)
        if reason is None:
            return self.final_path
        self.warnings.append("image %s: discarded the earlier download %s (%s)" % (self.label, self.final_path, reason))
        os.unlink(self.final_path)
        return None

    def discard(self) -> None:
        for path in (self.partial_path, self.final_path):
            if os.path.exists(path):
                os.unlink(path)

    def run(self, url: str, start_sink: Callable[[], Any]) -> Tuple[Any, str]:
        """Stream ``url`` into a sink from ``start_sink`` and return ``(sink, path)``.

        The returned sink has received every byte, verified; the caller still
        has to ``finish`` it.  On failure the sink is aborted, and the partial
        file is kept only when a later run can resume it.
        """
        os.makedirs(self.download_dir, exist_ok=True)
        sink = None
        digests = None
        content_md5 = None
        failures = 0
        while True:
            offset = self._partial_size()
            if offset and offset == self.expected.size:
                # A run killed between the last byte and the rename left a
                # complete partial file: check it instead of asking for nothing.
                sink, digests = self._feed_complete_partial(sink, start_sink)
                if sink is not None:
                    break
                continue
            try:
                response, resumed = self._open(url, offset)
                content_md5 = response.headers.get("Content-MD5") or content_md5
                if not resumed:
                    offset = 0
                if sink is None or not resumed:
                    if sink is not None:
                        sink.abort()
                    sink = start_sink()
                    digests = Digests(self.expected)
                    if offset:
                        feed_file(self.partial_path, sink, digests, limit=offset)
                self._stream(response, sink, digests, append=bool(offset))
                break
            except TRANSIENT_ERRORS as exc:
                failures += 1
                if failures > self.http.retries:
                    self._abort(sink, keep_partial=True)
                    raise DownloadError(
                        "image %s: download from %s failed after %d attempts: %s; the partial file %s is "
                        "kept and the next run resumes it" % (self.label, url, failures, describe_error(exc), self.partial_path),
                        url=url,
                    ) from exc
                self.http.sleep_before_retry(failures - 1)
            except BaseException:
                self._abort(sink, keep_partial=False)
                raise
        try:
            digests.verify(self.label, content_md5)
        except DownloadError:
            self._abort(sink, keep_partial=False)
            raise
        os.replace(self.partial_path, self.final_path)
        return sink, self.final_path

    def _feed_complete_partial(self, sink: Any, start_sink: Callable[[], Any]):
        """Feed a full-size partial file into a new sink; discard it when it does not verify."""
        if sink is not None:
            sink.abort()
        if verify_file(self.partial_path, self.expected) is not None:
            os.unlink(self.partial_path)
            return None, None
        sink = start_sink()
        digests = Digests(self.expected)
        feed_file(self.partial_path, sink, digests)
        return sink, digests

    def _partial_size(self) -> int:
        try:
            size = os.path.getsize(self.partial_path)
        except FileNotFoundError:
            return 0
        if self.expected.size and size > self.expected.size:
            os.unlink(self.partial_path)
            return 0
        return size

    def _abort(self, sink: Any, keep_partial: bool) -> None:
        if sink is not None:
            sink.abort()
        if not keep_partial and os.path.exists(self.partial_path):
            os.unlink(self.partial_path)

    def _open(self, url: str, offset: int):
        """Open the file at ``offset``; return ``(response, resumed)``."""
        headers = {"Range": "bytes=%d-" % offset} if offset else {}
        try:
            response = self.http.open(url, insecure=self.insecure, headers=headers)
        except TRANSIENT_ERRORS as exc:
            status = getattr(exc, "code", None)
            if status == 416 and offset:
                # The server cannot resume from here (the file on it may have
                # changed): start over from the first byte.
                os.unlink(self.partial_path)
                return self._open(url, 0)
            if status is not None and status < 500 and status not in (408, 429):
                raise DownloadError("image %s: %s returned %s; check that the source has this image's file"
                                    % (self.label, url, describe_error(exc)), url=url, status=status) from exc
            raise
        status = getattr(response, "status", None) or response.getcode()
        if status == 206 and offset:
            self._check_content_range(url, response, offset)
            return response, True
        self._check_content_length(url, response)
        return response, False

    def _check_content_length(self, url: str, response: Any) -> None:
        length = response.headers.get("Content-Length")
        if length is None or not self.expected.size:
            return
        if not length.isdigit() or int(length) != self.expected.size:
            raise SizeError(
                "image %s: %s announces Content-Length %s but the manifest says %d bytes; the source is "
                "serving a different file, check the server" % (self.label, url, length, self.expected.size),
                url=url,
            )

    def _check_content_range(self, url: str, response: Any, offset: int) -> None:
        match = CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
        total = match and match.group(3)
        if not match or int(match.group(1)) != offset or (self.expected.size and total != "*" and int(total) != self.expected.size):
            raise DownloadError(
                "image %s: %s returned Content-Range %r for a resume from byte %d; delete %s and re-run"
                % (self.label, url, response.headers.get("Content-Range"), offset, self.partial_path),
                url=url,
            )

    def _stream(self, response: Any, sink: Any, digests: Digests, append: bool) -> None:
        # read1 returns what has arrived instead of waiting for a whole chunk,
        # so the partial file keeps up with the network for a later resume.
        read = getattr(response, "read1", response.read)
        with open(self.partial_path, "ab" if append else "wb") as out:
            while True:
                chunk = read(CHUNK_SIZE)
                if not chunk:
                    break
                out.write(chunk)
                digests.update(chunk)
                sink.write(chunk)
                if self.expected.size and digests.size > self.expected.size:
                    return
        if self.expected.size and digests.size < self.expected.size:
            # A body cut short without a Content-Length ends like a complete
            # one; treat it as the dropped connection it is, so it is resumed.
            raise ConnectionError("connection closed after %d of %d bytes" % (digests.size, self.expected.size))
