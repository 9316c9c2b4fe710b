# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HTTP Basic authentication of the image server's write API.

The credentials file has one ``user:<hash>`` line per user, where ``<hash>``
is ``pbkdf2_sha256$<iterations>$<salt base64>$<hash base64>`` as
``hash_password`` writes it. Empty lines and lines starting with ``#`` are
ignored. A missing or empty file closes the write API to everyone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
from typing import Dict, Optional, Tuple

from ansible_collections.smartos.images.plugins.module_utils._imgapi_http import ApiError, Request

LOG = logging.getLogger("smartos.images.imgapi")

SCHEME = "pbkdf2_sha256"
# OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256. Each authenticated
# request pays this once (about 0.3 s of one core on a 2020s server), which
# the write API's few requests can afford.
DEFAULT_ITERATIONS = 600000
SALT_BYTES = 16
REALM = "smartos.images image server"


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS, salt: Optional[bytes] = None) -> str:
    """Hash ``password`` with PBKDF2-HMAC-SHA256 and a random salt, for a credentials file line."""
    if iterations < 1:
        raise ValueError("iterations must be 1 or more, not %d" % iterations)
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "%s$%d$%s$%s" % (SCHEME, iterations, base64.b64encode(salt).decode("ascii"),
                            base64.b64encode(digest).decode("ascii"))


def parse_hash(encoded: str) -> Tuple[int, bytes, bytes]:
    """Split a hash into ``(iterations, salt, digest)``; raise ValueError if it is not one ``hash_password`` writes."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError("password hash is not of the form %s$<iterations>$<salt>$<hash>" % SCHEME)
    if not parts[1].isdigit() or int(parts[1]) < 1:
        raise ValueError("password hash iterations %r is not a positive number" % parts[1])
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("password hash salt or hash is not base64: %s" % exc) from exc
    if not digest:
        raise ValueError("password hash has an empty hash part")
    return int(parts[1]), salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """Return whether ``password`` matches ``encoded``, comparing in constant time."""
    iterations, salt, expected = parse_hash(encoded)
    actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=len(expected))
    return hmac.compare_digest(actual, expected)


class Credentials:
    """The users of a credentials file, re-read whenever the file changes."""

    def __init__(self, path: Optional[str]):
        self.path = path or None
        self._lock = threading.Lock()
        self._signature = None
        self._users: Dict[str, str] = {}
        # A password for an unknown user is checked against this hash, made
        # with the file's highest iteration count, so that the response time
        # does not reveal which user names exist.
        self._dummy = hash_password(secrets.token_hex(16), iterations=1)

    def users(self) -> Dict[str, str]:
        if self.path is None:
            return {}
        try:
            stat = os.stat(self.path)
            signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except OSError:
            signature = None
        with self._lock:
            if signature != self._signature:
                self._users = self._load() if signature is not None else {}
                self._signature = signature
                iterations = max([parse_hash(encoded)[0] for encoded in self._users.values()] or [1])
                self._dummy = hash_password(secrets.token_hex(16), iterations=iterations)
            return self._users

    def _load(self) -> Dict[str, str]:
        users = {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            LOG.error("cannot read credentials file %s: %s; the write API is closed until it is readable",
                      self.path, exc)
            return {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, encoded = line.partition(":")
            try:
                if not sep or not user:
                    raise ValueError("the line is not of the form user:<hash>")
                parse_hash(encoded)
            except ValueError as exc:
                # The line itself is not logged: it contains a password hash.
                LOG.error("credentials file %s line %d is skipped: %s; write it with the hash-password command",
                          self.path, number, exc)
                continue
            users[user] = encoded
        return users

    def authenticate(self, request: Request) -> Optional[str]:
        """Return the user of a valid ``Authorization: Basic`` header, None without one.

        Raises ApiError 401 for a header that is present but not valid, as
        the reference server does for a bad signature on any route.
        """
        header = request.header("Authorization")
        if header is None:
            return None
        scheme, _sep, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            raise unauthorized("the Authorization header is not HTTP Basic; send Basic credentials")
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise unauthorized("the Authorization header is not valid Basic credentials (base64 of user:password)") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise unauthorized("the Authorization header is not valid Basic credentials (base64 of user:password)")

        users = self.users()
        encoded = users.get(user)
        matched = verify_password(password, encoded if encoded is not None else self._dummy)
        if encoded is None or not matched:
            LOG.warning("rejected credentials for user %r", user)
            raise unauthorized("invalid user name or password")
        return user

    def require(self, request: Request) -> str:
        """Return the authenticated user of a write request, or raise ApiError 401."""
        user = self.authenticate(request)
        if user is not None:
            return user
        if not self.users():
            raise unauthorized("this server accepts no writes because it has no credentials configured; "
                               "set SMARTOS_IMAGES_CREDENTIALS to a credentials file")
        raise unauthorized("this request changes the repository and needs credentials; send HTTP Basic credentials")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, headers=[("WWW-Authenticate", 'Basic realm="%s"' % REALM)])
