# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``zfs send [| compressor]`` pipeline an image file is written from.

The compressor reads ``zfs send``'s output through an OS pipe, so both run
on their own cores. Python reads only the compressed bytes and writes them
to the file and into the sha1 digest in the same pass, because imgadm too
computes ``files[0].sha1`` over the bytes it writes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import tempfile
from typing import List, NamedTuple, Optional, Sequence

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, StreamError
from ansible_collections.smartos.images.plugins.module_utils._zfs import C_LOCALE

# The arguments after the compressor's path. imgadm passes -cfq; -f only
# matters when stdout is a terminal, which a pipe never is.
COMPRESSOR_ARGUMENTS = {
    "gzip": ["-c"],
    "bzip2": ["-c"],
    "xz": ["-c"],
}

CHUNK_SIZE = 1024 * 1024


class WrittenFile(NamedTuple):
    """Size in bytes and sha1 hex digest of a file, over exactly the bytes written."""

    size: int
    sha1: str


def write_stream(send_argv: Sequence[str], compressor_argv: Optional[Sequence[str]], path: str,
                 label: str) -> WrittenFile:
    """Run ``send_argv``, through ``compressor_argv`` when given, into a new file at ``path``.

    Returns the file's size and sha1 once every process exited 0. On any
    failure the processes are killed, the file is removed, and StreamError
    (a process failed) or ImageError (the file could not be written) is
    raised. ``label`` names the image in messages.
    """
    pipeline = _Pipeline(send_argv, compressor_argv)
    try:
        written = pipeline.copy_to(path, label)
        pipeline.check(label)
    except BaseException:
        pipeline.kill()
        if pipeline.created:
            _remove(path)
        raise
    finally:
        pipeline.close()
    return written


class _Pipeline:
    def __init__(self, send_argv: Sequence[str], compressor_argv: Optional[Sequence[str]]):
        env = dict(os.environ, **C_LOCALE)
        # Error output goes to files, because an unread pipe could fill up
        # and block the process writing to it.
        self.stages: List[tuple] = []
        self.created = False
        send_err = tempfile.TemporaryFile()
        send = subprocess.Popen(list(send_argv), stdout=subprocess.PIPE, stderr=send_err, env=env)
        self.stages.append((list(send_argv), send, send_err))
        self.output = send.stdout
        if compressor_argv is None:
            return
        compressor_err = tempfile.TemporaryFile()
        try:
            compressor = subprocess.Popen(list(compressor_argv), stdin=send.stdout, stdout=subprocess.PIPE,
                                          stderr=compressor_err, env=env)
        except BaseException:
            compressor_err.close()
            self.kill()
            self.close()
            raise
        # Only the compressor may hold the read end, so zfs send gets a broken
        # pipe instead of blocking when the compressor exits early.
        send.stdout.close()
        self.stages.append((list(compressor_argv), compressor, compressor_err))
        self.output = compressor.stdout

    def copy_to(self, path: str, label: str) -> WrittenFile:
        digest = hashlib.sha1()
        size = 0
        try:
            # "x": the caller picks a new name, and an existing file there is not ours to overwrite.
            with open(path, "xb") as handle:
                self.created = True
                while True:
                    chunk = self.output.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            hint = "free space there or choose another output location"
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                hint = "check that the directory exists and is writable"
            raise ImageError("image %s: cannot write the image file %s: %s; %s"
                             % (label, path, exc.strerror or exc, hint), path=path) from exc
        return WrittenFile(size=size, sha1=digest.hexdigest())

    def check(self, label: str) -> None:
        """Wait for every process and raise StreamError, with each failure's error output, unless all exited 0."""
        for _argv, process, _err in self.stages:
            process.wait()
        # Every failure goes in the message: when the compressor fails, zfs
        # send fails too with a broken pipe, which would hide the cause.
        failures = []
        for argv, process, err in self.stages:
            if process.returncode != 0:
                err.seek(0)
                text = err.read().decode("utf-8", "replace").strip()
                failures.append("%s exited %d: %s" % (" ".join(argv), process.returncode, text or "no error output"))
        if failures:
            raise StreamError("image %s: writing the image file failed: %s" % (label, "; ".join(failures)),
                              stderr=failures)

    def kill(self) -> None:
        for _argv, process, _err in self.stages:
            if process.poll() is None:
                process.kill()
        for _argv, process, _err in self.stages:
            process.wait()

    def close(self) -> None:
        self.output.close()
        for _argv, _process, err in self.stages:
            err.close()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
