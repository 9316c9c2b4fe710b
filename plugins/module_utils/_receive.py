# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decompress-and-receive pipeline an image file is written into.

The decompressor's output goes straight into ``zfs receive`` through an OS
pipe, so Python only writes the compressed bytes once and both tools run on
their own cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import List, Optional, Sequence

from ansible_collections.smartos.images.plugins.module_utils._errors import StreamError
from ansible_collections.smartos.images.plugins.module_utils._zfs import C_LOCALE

# No -f: with it gzip and xz copy input that is not in their format through
# unchanged, which would hide a file that does not match its manifest.
DECOMPRESSORS = {
    "gzip": ["gzip", "-cdq"],
    "bzip2": ["bzip2", "-cdq"],
    "xz": ["xz", "-cdq"],
    "none": None,
}


def decompressor_argv(compression: str) -> Optional[List[str]]:
    """Return the command that decompresses ``compression``, or None for ``none``."""
    argv = DECOMPRESSORS[compression]
    if argv is None:
        return None
    path = shutil.which(argv[0]) or shutil.which(argv[0], path="/usr/bin:/bin:/opt/local/bin:/opt/tools/bin")
    if path is None:
        raise StreamError("%s is not installed; it is needed to decompress %s image files" % (argv[0], compression))
    return [path] + argv[1:]


class ReceivePipeline:
    """``[decompressor |] zfs receive`` fed through ``write``."""

    def __init__(self, compression: str, receive_argv: Sequence[str], label: str):
        self.label = label
        self.receive_argv = list(receive_argv)
        env = dict(os.environ, **C_LOCALE)
        argv = decompressor_argv(compression)
        self._receive_err = tempfile.TemporaryFile()
        self._decompress_err = tempfile.TemporaryFile()
        self.decompressor: Optional[subprocess.Popen] = None
        if argv is None:
            self.receive = subprocess.Popen(self.receive_argv, stdin=subprocess.PIPE,
                                            stdout=subprocess.DEVNULL, stderr=self._receive_err, env=env)
            self._stdin = self.receive.stdin
            return
        self.decompressor = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=self._decompress_err, env=env)
        try:
            self.receive = subprocess.Popen(self.receive_argv, stdin=self.decompressor.stdout,
                                            stdout=subprocess.DEVNULL, stderr=self._receive_err, env=env)
        except BaseException:
            self.decompressor.kill()
            self.decompressor.wait()
            raise
        # Only zfs receive may hold the read end, so a receive that exits
        # makes the decompressor's next write fail instead of blocking.
        self.decompressor.stdout.close()
        self._stdin = self.decompressor.stdin

    def write(self, chunk: bytes) -> None:
        try:
            self._stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            self.abort()
            raise self._failure("stopped reading its input")

    def finish(self) -> None:
        """Close the input and wait; raise ``StreamError`` unless every process exited 0."""
        try:
            self._stdin.close()
        except BrokenPipeError:
            pass
        if self.decompressor is not None:
            self.decompressor.wait()
        self.receive.wait()
        if self._exit_codes_ok():
            return
        raise self._failure("failed")

    def abort(self) -> None:
        for proc in (self.decompressor, self.receive):
            if proc is not None and proc.poll() is None:
                proc.kill()
        for proc in (self.decompressor, self.receive):
            if proc is not None:
                proc.wait()
        try:
            self._stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def _exit_codes_ok(self) -> bool:
        if self.decompressor is not None and self.decompressor.returncode != 0:
            return False
        return self.receive.returncode == 0

    def _failure(self, what: str) -> StreamError:
        receive_err = _read(self._receive_err)
        decompress_err = _read(self._decompress_err)
        parts = []
        if self.receive.poll() not in (None, 0) or receive_err:
            parts.append("%s exited %s: %s" % (" ".join(self.receive_argv), self.receive.returncode, receive_err or "no output"))
        if self.decompressor is not None and (self.decompressor.poll() not in (None, 0) or decompress_err):
            parts.append("decompressor exited %s: %s" % (self.decompressor.returncode, decompress_err or "no output"))
        hint = ""
        if "space" in receive_err:
            hint = "; free space in the pool or use another pool"
        elif self.decompressor is not None and self.decompressor.returncode not in (None, 0):
            hint = "; the file does not match the manifest's compression, check the image on the server"
        return StreamError("image %s: receive pipeline %s: %s%s" % (self.label, what, "; ".join(parts) or "no output", hint),
                           stderr=receive_err)


def _read(handle) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace").strip()
