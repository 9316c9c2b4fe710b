# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Render the image server's credentials file; run on the host by tasks/credentials.yml.

Reads ``{"path", "iterations", "users": [{"name", "password"}]}`` as JSON
on standard input and prints ``{"content": TEXT}``, the text the file
should have, or ``{"error": MESSAGE}``. It only reads ``path``.

Each line is ``user:pbkdf2_sha256$<iterations>$<salt base64>$<hash base64>``:
PBKDF2-HMAC-SHA256 with a 16-byte random salt and a 32-byte hash, the
format of the image server application's ``hash_password``. A fresh salt
on every run would change the file on every run, so a user's current line
is kept while it still verifies the password with the wanted iteration
count. Collection roles cannot ship filter plugins, and the host's Python
has everything this needs, so this runs there with the standard library
only.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import sys

SCHEME = "pbkdf2_sha256"
SALT_BYTES = 16
# Characters that would break the file's user:hash lines or HTTP Basic's user:password pairs.
INVALID_NAME_CHARACTERS = ":\r\n\t "


def hash_password(password, iterations):
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "%s$%d$%s$%s" % (SCHEME, iterations, base64.b64encode(salt).decode("ascii"),
                            base64.b64encode(digest).decode("ascii"))


def verifies(encoded, password, iterations):
    """Return whether ``encoded`` is a hash of ``password`` with exactly ``iterations``."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != SCHEME or parts[1] != str(iterations):
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
        expected = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return False
    if not expected:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=len(expected))
    return hmac.compare_digest(actual, expected)


def current_hashes(path):
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    hashes = {}
    for line in lines:
        user, sep, encoded = line.strip().partition(":")
        if sep and user and not user.startswith("#"):
            hashes[user] = encoded
    return hashes


def render(users, iterations, current):
    """Return the file's text for ``users``; raise ValueError on an invalid user list."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError("image_server_password_iterations is %r; give a whole number, 1 or more" % (iterations,))
    lines = []
    seen = set()
    for index, user in enumerate(users):
        if not isinstance(user, dict) or not isinstance(user.get("name"), str) \
                or not isinstance(user.get("password"), str):
            # The item itself is not shown, because it may contain a password.
            raise ValueError("image_server_users[%d] is not a dictionary with a string name and a string password"
                             % index)
        name, password = user["name"], user["password"]
        if not name or any(character in name for character in INVALID_NAME_CHARACTERS):
            raise ValueError("image_server_users[%d]: user name %r is empty or contains a colon or whitespace; "
                             "choose another name" % (index, name))
        if not password:
            raise ValueError("image_server_users[%d]: user %s has an empty password; set one" % (index, name))
        if name in seen:
            raise ValueError("image_server_users[%d]: user %s is listed twice; list each user once" % (index, name))
        seen.add(name)
        encoded = current.get(name)
        if encoded is None or not verifies(encoded, password, iterations):
            encoded = hash_password(password, iterations)
        lines.append("%s:%s\n" % (name, encoded))
    return "".join(lines)


def main():
    request = json.load(sys.stdin)
    try:
        content = render(request["users"], request["iterations"], current_hashes(request["path"]))
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps({"content": content}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
