# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Typed errors raised by the engine.

Engine code raises these with the values attached; each module turns them
into ``fail_json`` in exactly one place, so every message names the object,
the value and what to do next.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base class: a failure the user can act on, with a complete message."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self):
        return self.message


class ManifestError(ImageError):
    """A manifest that cannot be parsed, upgraded or validated.

    ``errors`` is a list of ``{"field", "code", "message"}`` dictionaries,
    one per invalid field, in the order the validator found them.
    """

    def __init__(self, message, errors=None, **details):
        super().__init__(message, **details)
        self.errors = list(errors or [])


class ConfigError(ImageError):
    """An ``imgadm.conf`` that cannot be read or parsed."""


class SourceError(ImageError):
    """A source that is unreachable or returned an unexpected response."""

    def __init__(self, message, url=None, status=None, **details):
        super().__init__(message, url=url, status=status, **details)
        self.url = url
        self.status = status


class ImageNotFoundError(ImageError):
    """No source has the requested image, or it is not installed."""


class DownloadError(ImageError):
    """An image file download that failed or did not verify."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the manifest's checksum."""


class SizeError(DownloadError):
    """The downloaded byte count does not match the manifest's size."""


class ZfsError(ImageError):
    """A ``zfs`` command that exited non-zero."""

    def __init__(self, message, argv=None, rc=None, stderr=None, **details):
        super().__init__(message, argv=argv, rc=rc, stderr=stderr, **details)
        self.argv = argv
        self.rc = rc
        self.stderr = stderr


class StreamError(ImageError):
    """A decompressor or ``zfs receive`` that failed while streaming."""


class LockError(ImageError):
    """An import lock that could not be taken in time."""


class InUseError(ImageError):
    """An image that cannot be removed because datasets are cloned from it."""

    def __init__(self, message, clones=None, **details):
        super().__init__(message, clones=clones, **details)
        self.clones = list(clones or [])
