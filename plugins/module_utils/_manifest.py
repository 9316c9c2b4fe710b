# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Parse, upgrade and validate SmartOS image manifests.

This is a port of the rules of the Node.js ``imgmanifest`` library, version
3.1.0, which SmartOS ``imgadm`` vendors: ``upgradeManifest`` and the
``validate{Minimal,Dc,Public,Private}Manifest`` functions. A manifest that
imgadm accepts passes here, and an invalid one gets the same list of
``(field, code)`` errors in the same order. ``tests/compat`` runs both on
the same inputs to keep it that way.

imgmanifest applies JavaScript semantics to whatever JSON it is given, so a
value of the wrong type can still pass. For example, ``name: 123`` passes
because the name pattern is tested against ``String(123)``, and
``uuid: ["<uuid>"]`` passes because an array of one string converts to that
string. The ``_js_*`` helpers reproduce those conversions. A manifest that
validates is therefore not guaranteed to hold Python ``str`` values. Callers
that need one check the type themselves, as ``image_file`` does.

Deliberate differences from imgmanifest 3.1.0:

* Where imgmanifest throws a ``TypeError`` instead of reporting an error,
  this module reports ``Invalid`` on that field (see ``_thrown``).
* ``type`` and ``os`` are looked up in a plain object there, so names
  inherited from ``Object.prototype`` such as ``"constructor"`` pass. Here
  they are ``Invalid``.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass

from ansible_collections.smartos.images.plugins.module_utils._errors import ManifestError


# \Z, unlike $, does not match before a trailing newline.
UUID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

COMPRESSIONS = ("gzip", "bzip2", "xz", "none")

MODES = ("minimal", "dc", "public", "private")

# The patterns below are used with fullmatch(). They spell out [0-9]
# because Python's \d also matches non-ASCII digits.
NAME_RE = re.compile(r"[A-Za-z0-9._/ -]+")
VERSION_RE = re.compile(r"[A-Za-z0-9._/+-]+")
PUBLISHED_AT_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3})?Z")
# upgradeTo2 searches for this anywhere in the value: the pattern is not anchored.
PUBLISHED_AT_WITHOUT_SECONDS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}Z")

# Maximum lengths, counted in UTF-16 code units as JavaScript counts them.
MAX_URL_LENGTH = 1024
MAX_NAME_LENGTH = 1024
MAX_VERSION_LENGTH = 512
MAX_DESCRIPTION_LENGTH = 10 * 1024
MAX_BILLING_TAG_LENGTH = 128
MAX_TAGS_LENGTH = 100 * 1024

VALID_STATES = ("active", "unactivated", "disabled", "failed", "creating")
VALID_TYPES = ("zone-dataset", "zvol", "lx-dataset", "docker", "other")
VALID_OSES = ("smartos", "linux", "windows", "bsd", "illumos", "other")
VALID_BOOTROMS = ("bios", "uefi")
PLATFORM_STAMP_MIN_YEAR = 2012

# Every top-level field of the imgmanifest schema, in the order it validates them.
FIELDS = (
    "v", "uuid", "urn", "owner", "name", "version", "description", "homepage",
    "eula", "disabled", "activated", "published_at", "state", "public", "type",
    "os", "origin", "error", "files", "icon", "acl", "requirements", "users",
    "billing_tags", "traits", "tags", "generate_passwords",
    "inherited_directories", "nic_driver", "disk_driver", "cpu_type",
    "image_size", "channels",
)
MINIMAL_REQUIRED = ("v", "uuid", "name", "version", "type", "os")
FULL_REQUIRED = (
    "v", "uuid", "owner", "name", "version", "disabled", "activated",
    "published_at", "public", "state", "type", "os", "files", "nic_driver",
    "disk_driver", "cpu_type", "image_size",
)
REQUIREMENTS = (
    "networks", "brand", "ssh_key", "min_ram", "max_ram", "min_platform",
    "max_platform", "bootrom",
)

# DSAPI (v1) fields that upgradeTo2 drops.
V1_DROPPED_FIELDS = (
    "creator_uuid", "vendor_uuid", "creator_name", "cloud_name", "creator_admin",
    "restricted_to_uuid", "owner_uuid", "platform_type", "created_at",
    "updated_at", "_url",
)


class _Absent:
    """The JavaScript ``undefined`` of a key that the object does not have."""

    def __repr__(self):
        return "<absent>"


_ABSENT = _Absent()


def is_uuid(value) -> bool:
    """Return whether ``value`` is a str holding a lower-case UUID."""
    return isinstance(value, str) and UUID_RE.match(value) is not None


def describe(manifest) -> str:
    """Return ``"<uuid> (<name>@<version>)"`` for messages, with ``?`` for missing parts."""
    if not isinstance(manifest, dict):
        return "<not a manifest object>"

    uuid = _text(manifest.get("uuid", "<no uuid>"))
    name = manifest.get("name")
    version = manifest.get("version")
    if name is None and version is None:
        return uuid
    return "%s (%s@%s)" % (
        uuid,
        "?" if name is None else _text(name),
        "?" if version is None else _text(version),
    )


# ---- parsing

def parse_manifest(data, label) -> dict:
    """Parse ``data`` (JSON as str or bytes) into a manifest object.

    ``label`` names where the data came from, a path or URL, for messages.
    Raises ManifestError if the data is not JSON or not a JSON object.
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                "manifest %s is not valid UTF-8 text: %s; save it as UTF-8 JSON" % (label, exc),
                label=label,
            ) from exc

    try:
        manifest = json.loads(data, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ManifestError(
            "manifest %s is not valid JSON: %s; check that the file or URL serves "
            "an image manifest" % (label, exc),
            label=label,
        ) from exc

    if not isinstance(manifest, dict):
        raise ManifestError(
            "manifest %s is a JSON %s, not an object; an image manifest is one "
            "JSON object such as {\"v\": 2, \"uuid\": ...}" % (label, _json_type_name(manifest)),
            label=label,
        )
    return manifest


def _reject_constant(name):
    # Python's json accepts NaN and Infinity, which are not JSON and which
    # JSON.parse in imgadm rejects.
    raise ValueError("%s is not a JSON value" % name)


def _json_type_name(value) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


# ---- JavaScript value semantics

# Characters that String-to-Number conversion trims: ECMAScript WhiteSpace
# and LineTerminator.
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_DECIMAL_RE = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_JS_NON_DECIMAL_RE = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
_JS_NON_DECIMAL_BASES = {"x": 16, "o": 8, "b": 2}
_JS_ARRAY_INDEX_RE = re.compile(r"0|[1-9][0-9]*")
_JS_MAX_ARRAY_INDEX = 2 ** 32 - 2


def _js_truthy(value) -> bool:
    if value is None or value is _ABSENT:
        return False
    if isinstance(value, float):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, (bool, int, str)):
        return bool(value)
    return True


def _js_typeof(value) -> str:
    if value is _ABSENT:
        return "undefined"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _is_js_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_double(number) -> float:
    """Convert a Python int or float to the IEEE double JavaScript would hold."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def _js_number(value) -> float:
    """Convert a JSON value as JavaScript ``Number(value)`` does."""
    if value is _ABSENT:
        return math.nan
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if _is_js_number(value):
        return _to_double(value)
    if isinstance(value, str):
        return _js_string_to_number(value)
    return _js_string_to_number(_js_string(value))


def _js_string_to_number(text: str) -> float:
    text = text.strip(_JS_WHITESPACE)
    if not text:
        return 0.0
    if _JS_DECIMAL_RE.fullmatch(text):
        return float(text)
    if _JS_NON_DECIMAL_RE.fullmatch(text):
        return _to_double(int(text[2:], _JS_NON_DECIMAL_BASES[text[1].lower()]))
    return math.nan


def _is_js_integer(value) -> bool:
    """Return what imgmanifest's ``isPositiveInteger`` returns: any integral number, negatives too."""
    if not _is_js_number(value):
        return False
    number = _to_double(value)
    return math.isfinite(number) and number == math.floor(number)


def _js_number_to_string(number: float) -> str:
    """Format a double as JavaScript ``String(number)`` does."""
    if math.isnan(number):
        return "NaN"
    if number == 0:
        return "0"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number < 0:
        return "-" + _js_number_to_string(-number)

    # Python's repr() and JavaScript both produce the shortest digit string
    # that reads back as the same double. Only the layout differs.
    text = repr(number)
    mantissa, exponent = text.split("e") if "e" in text else (text, "0")
    integer_part, fraction = mantissa.split(".") if "." in mantissa else (mantissa, "")
    digits = integer_part + fraction
    point = len(integer_part) + int(exponent)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    count = len(digits)

    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent_text = "e%s%d" % ("+" if point - 1 >= 0 else "-", abs(point - 1))
    if count == 1:
        return digits + exponent_text
    return digits[0] + "." + digits[1:] + exponent_text


def _js_string(value) -> str:
    """Convert a JSON value as JavaScript ``String(value)`` does."""
    if value is _ABSENT:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_js_number(value):
        return _js_number_to_string(_to_double(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join("" if item is None else _js_string(item) for item in value)
    return "[object Object]"


def _js_length(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, as ``String.length``."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _js_substr(text: str, start: int, length: int) -> str:
    units = text.encode("utf-16-le", "surrogatepass")
    return units[2 * start:2 * (start + length)].decode("utf-16-le", "surrogatepass")


def _js_length_property(value):
    """Return ``value.length`` as JavaScript reads it, or _ABSENT."""
    if isinstance(value, str):
        return _js_length(value)
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        return value.get("length", _ABSENT)
    return _ABSENT


def _js_length_exceeds(value, limit: int) -> bool:
    """Return ``value.length > limit`` with JavaScript's comparison rules."""
    return _js_number(_js_length_property(value)) > limit


def _js_property(value, name: str):
    """Return ``value[name]`` for the property names imgmanifest reads on entries.

    None of those names (sha1, size, compression, name, path, url, ...) exist
    on JavaScript's built-in prototypes, so only a JSON object can have them.
    """
    if isinstance(value, dict):
        return value.get(name, _ABSENT)
    return _ABSENT


def _is_js_array_index(key: str) -> bool:
    return _JS_ARRAY_INDEX_RE.fullmatch(key) is not None and int(key) <= _JS_MAX_ARRAY_INDEX


def _js_keys(value) -> list:
    """Return ``Object.keys(value)``: array indices in numeric order first, then the rest in insertion order."""
    if isinstance(value, list):
        return [str(index) for index in range(len(value))]
    if isinstance(value, str):
        return [str(index) for index in range(_js_length(value))]
    if not isinstance(value, dict):
        return []

    index_keys = sorted((key for key in value if _is_js_array_index(key)), key=int)
    other_keys = [key for key in value if not _is_js_array_index(key)]
    return index_keys + other_keys


def _js_entries(value) -> list:
    """Return the ``[key, value]`` pairs of a JSON object or array in ``Object.keys`` order."""
    if isinstance(value, list):
        return [(str(index), item) for index, item in enumerate(value)]
    return [(key, value[key]) for key in _js_keys(value)]


def _js_object_copy(value) -> dict:
    """Copy own enumerable properties into a new object, as imgmanifest's ``objCopy`` does."""
    if isinstance(value, dict):
        return {key: value[key] for key in _js_keys(value)}
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    if isinstance(value, str):
        units = value.encode("utf-16-le", "surrogatepass")
        return {
            str(index): units[2 * index:2 * index + 2].decode("utf-16-le", "surrogatepass")
            for index in range(len(units) // 2)
        }
    return {}


def _js_bool(value):
    """Return True or False as imgmanifest's ``boolFromString`` would, or None where it throws."""
    if isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def _js_json_length(value) -> int:
    """Return ``JSON.stringify(value).length`` for a JSON value."""
    if value is None:
        return 4
    if isinstance(value, bool):
        return 4 if value else 5
    if _is_js_number(value):
        number = _to_double(value)
        return len(_js_number_to_string(number)) if math.isfinite(number) else 4
    if isinstance(value, str):
        return _js_json_string_length(value)
    if isinstance(value, list):
        return 2 + max(len(value) - 1, 0) + sum(_js_json_length(item) for item in value)
    keys = _js_keys(value)
    return (
        2 + max(len(keys) - 1, 0)
        + sum(_js_json_string_length(key) + 1 + _js_json_length(value[key]) for key in keys)
    )


def _js_json_string_length(text: str) -> int:
    length = 2
    for char in text:
        code = ord(char)
        if char in "\"\\\b\f\n\r\t":
            length += 2
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            # Control characters and unpaired surrogates become \uXXXX.
            length += 6
        elif code > 0xFFFF:
            length += 2
        else:
            length += 1
    return length


# URL parsing in Node.js skips leading characters below code 33 and these two.
_URL_LEADING_WHITESPACE = "".join(chr(code) for code in range(33)) + "\u00a0\ufeff"
# Spelled out without re.IGNORECASE, which would also match "\u017f" and "\u212a".
_URL_PROTOCOL_RE = re.compile(r"[A-Za-z0-9.+-]+:")


def _url_protocol(url: str):
    """Return the lower-cased protocol that Node.js ``url.parse`` finds, or None.

    NOTE: Node.js 20's ``url.parse`` also throws on a malformed percent-escape
    in the user-info part and on some internationalized host names. This
    port does not reproduce those throws, so such URLs pass here.
    """
    match = _URL_PROTOCOL_RE.match(url.lstrip(_URL_LEADING_WHITESPACE))
    if match is None:
        return None
    return match.group(0).lower()


def _node_extname(path: str) -> str:
    """Return the extension as Node.js ``path.posix.extname`` does."""
    start_dot = -1
    start_part = 0
    end = -1
    matched_slash = True
    # 0: no non-dot character seen before the last dot, 1: a dot before it,
    # -1: a non-dot character before it.
    pre_dot_state = 0
    for index in range(len(path) - 1, -1, -1):
        char = path[index]
        if char == "/":
            if not matched_slash:
                start_part = index + 1
                break
            continue
        if end == -1:
            matched_slash = False
            end = index + 1
        if char == ".":
            if start_dot == -1:
                start_dot = index
            elif pre_dot_state != 1:
                pre_dot_state = 1
        elif start_dot != -1:
            pre_dot_state = -1

    if start_dot == -1 or end == -1 or pre_dot_state == 0:
        return ""
    if pre_dot_state == 1 and start_dot == end - 1 and start_dot == start_part + 1:
        return ""
    return path[start_dot:end]


# ---- upgrade

def upgrade_manifest(manifest: dict) -> dict:
    """Upgrade a DSAPI (v1) manifest to an IMGAPI (v2) one, as imgmanifest's ``upgradeManifest`` does.

    A manifest whose ``v`` is 2 or more is returned as is: the same object,
    not a copy. Otherwise the upgrade works on a deep copy. Raises
    ManifestError when the manifest is neither v2 nor a v1 manifest that
    imgmanifest can upgrade.
    """
    if not isinstance(manifest, dict):
        raise ManifestError(
            "manifest is a JSON %s, not an object; an image manifest is one JSON object"
            % _json_type_name(manifest)
        )

    version = manifest.get("v", _ABSENT)
    if not _js_truthy(version) and _js_truthy(manifest.get("creator_uuid", _ABSENT)):
        # creator_uuid exists only in v1 manifests, which have no "v".
        current = 1.0
    elif not _js_truthy(version):
        raise ManifestError(
            'image %s: manifest does not have a "v" field, nor the "creator_uuid" '
            'of a v1 (DSAPI) manifest; add "v": 2 if it is an IMGAPI manifest'
            % describe(manifest)
        )
    else:
        current = _js_number(version)

    if current >= 2:
        return manifest
    if math.isnan(current):
        raise ManifestError(
            'image %s: manifest "v" is %s, which is not a number; set "v": 2 for an '
            'IMGAPI manifest' % (describe(manifest), _show(version))
        )
    return _upgrade_v1_to_v2(manifest)


def _upgrade_v1_to_v2(old: dict) -> dict:
    _check_upgradable_v1(old)
    manifest = copy.deepcopy(old)

    manifest["owner"] = manifest["creator_uuid"]

    restricted_to = manifest.get("restricted_to_uuid", _ABSENT)
    if _js_truthy(restricted_to):
        manifest["public"] = False
        manifest["acl"] = [restricted_to]
    else:
        # NOTE: this overwrites a "public" of the v1 manifest, as imgmanifest does.
        manifest["public"] = True

    disabled = manifest.get("disabled", _ABSENT)
    manifest["disabled"] = False if disabled is _ABSENT else _js_truthy(disabled)
    manifest["state"] = "disabled" if manifest["disabled"] else "active"

    _upgrade_published_at(manifest)
    if _js_truthy(manifest.get("files", _ABSENT)):
        for file in manifest["files"]:
            _upgrade_file(file)

    if _js_truthy(manifest.get("image_size", _ABSENT)):
        manifest["image_size"] = _number_value(_js_number(manifest["image_size"]))

    for field in V1_DROPPED_FIELDS:
        manifest.pop(field, None)
    manifest["v"] = 2
    return manifest


def _check_upgradable_v1(old: dict) -> None:
    """Raise ManifestError where imgmanifest's ``upgradeTo2`` fails an assertion."""
    name = describe(old)
    if UUID_RE.match(_js_string(old.get("uuid", _ABSENT))) is None:
        raise ManifestError(
            "image %s: v1 manifest uuid %s is not a lower-case UUID, so it cannot be "
            "upgraded to v2; correct the uuid" % (name, _show(old.get("uuid", _ABSENT)))
        )
    if not _js_truthy(old.get("creator_uuid", _ABSENT)):
        raise ManifestError(
            'image %s: manifest "v" is %s, below 2, but there is no "creator_uuid", so '
            'it is not a v1 (DSAPI) manifest that can be upgraded; set "v": 2 for an '
            'IMGAPI manifest' % (name, _show(old.get("v", _ABSENT)))
        )
    if "owner" in old:
        raise ManifestError(
            'image %s: v1 manifest has both "owner" and "creator_uuid"; remove one, '
            "since the upgrade to v2 sets owner from creator_uuid" % name
        )
    if _js_truthy(old.get("restricted_to_uuid", _ABSENT)) and "public" in old:
        raise ManifestError(
            'image %s: v1 manifest has both "public" and "restricted_to_uuid"; remove '
            "one, since the upgrade to v2 derives public from restricted_to_uuid" % name
        )

    files = old.get("files", _ABSENT)
    if not _js_truthy(files):
        return
    if not isinstance(files, list):
        raise ManifestError(
            'image %s: v1 manifest "files" is %s, not an array; list the image file '
            "as files: [{...}]" % (name, _show(files))
        )
    for index, file in enumerate(files):
        if _js_truthy(_js_property(file, "compression")):
            continue
        path = _js_property(file, "path")
        if not _js_truthy(path):
            path = _js_property(file, "url")
        if not isinstance(path, str):
            raise ManifestError(
                'image %s: v1 manifest file %d has no "compression" and no "path" or '
                '"url" to derive it from; add "compression" (one of %s)'
                % (name, index, ", ".join(COMPRESSIONS))
            )


def _upgrade_published_at(manifest: dict) -> None:
    if not _js_truthy(manifest.get("published_at", _ABSENT)) and _js_truthy(manifest.get("created_at", _ABSENT)):
        manifest["published_at"] = manifest["created_at"]

    published_at = manifest.get("published_at", _ABSENT)
    if not _js_truthy(published_at):
        return
    if PUBLISHED_AT_WITHOUT_SECONDS_RE.search(_js_string(published_at)) is None:
        return

    # "YYYY-MM-DDTHH:MMZ" gains ":00" seconds. Like imgmanifest, this drops
    # the last character and appends ":00Z" whatever that character was.
    if isinstance(published_at, str):
        trimmed = _js_substr(published_at, 0, _js_length(published_at) - 1)
    else:
        trimmed = _js_string(published_at[:-1])
    manifest["published_at"] = trimmed + ":00Z"


def _upgrade_file(file: dict) -> None:
    if not _js_truthy(file.get("compression", _ABSENT)):
        path = file.get("path", _ABSENT)
        if not _js_truthy(path):
            path = file.get("url")
        file["compression"] = {".gz": "gzip", ".bz2": "bzip2"}.get(_node_extname(path), "none")
    file.pop("path", None)
    file.pop("url", None)


def _number_value(number: float):
    """Return an integral double as int, so the upgraded manifest reads as written."""
    if math.isfinite(number) and number == math.floor(number):
        return int(number)
    return number


# ---- validation

class _Context:
    """The options one validation run was given."""

    def __init__(self, mode: str, has_channels: bool):
        self.mode = mode
        self.has_channels = has_channels


def validate_manifest(manifest: dict, mode: str = "minimal", has_channels: bool = False) -> list:
    """Validate a v2 manifest as imgmanifest 3.1.0 does and return its errors.

    ``mode`` selects the function: "minimal" (validateMinimalManifest, what
    imgadm checks before installing), "dc", "public" or "private" (the
    IMGAPI server checks). ``has_channels=True`` means the server has
    channels, which makes ``channels`` required in the public and private
    modes. As in imgmanifest, the other modes take no such option.

    Returns a list of ``{"field", "code", "message"}`` dictionaries in
    imgmanifest's order, empty when the manifest is valid.
    """
    if mode not in MODES:
        raise ValueError("unknown manifest validation mode %r; use one of %s" % (mode, ", ".join(MODES)))
    if has_channels and mode not in ("public", "private"):
        raise ValueError("has_channels applies only to the public and private modes, not %r" % mode)
    if not isinstance(manifest, dict):
        raise ManifestError(
            "manifest is a JSON %s, not an object; an image manifest is one JSON object"
            % _json_type_name(manifest)
        )

    context = _Context(mode, has_channels)
    required = list(MINIMAL_REQUIRED if mode == "minimal" else FULL_REQUIRED)
    if has_channels:
        required.append("channels")

    errors = []
    for field in required:
        errors.extend(_VALIDATORS[field](manifest, context))
    for field in FIELDS:
        if field not in required and field in manifest:
            errors.extend(_VALIDATORS[field](manifest, context))
    for field in _js_keys(manifest):
        if field not in FIELDS:
            errors.append(_invalid(field, "unknown field %r; remove it from the manifest" % field))
    return errors


def check_manifest(manifest, mode: str = "minimal", has_channels: bool = False) -> None:
    """Raise ManifestError listing every invalid field unless ``manifest`` validates in ``mode``."""
    errors = validate_manifest(manifest, mode=mode, has_channels=has_channels)
    if not errors:
        return

    problems = "; ".join("%s: %s" % (error["field"], error["message"]) for error in errors)
    raise ManifestError(
        "image %s has an invalid manifest (%s validation): %s; correct these fields "
        "or get a corrected manifest from the image's publisher"
        % (describe(manifest), mode, problems),
        errors=errors,
    )


def _error(field: str, code: str, message: str) -> dict:
    return {"field": field, "code": code, "message": message}


def _missing(field: str, message: str = "") -> dict:
    return _error(field, "MissingParameter", message or '"%s" is missing; add it to the manifest' % field)


def _invalid(field: str, message: str) -> dict:
    return _error(field, "Invalid", message)


def _thrown(field: str, message: str) -> dict:
    """Return the error for a value on which imgmanifest 3.1.0 throws a TypeError.

    There, the whole validation stops with an internal error (imgadm prints
    a stack trace). This module reports the value as Invalid instead and
    goes on to validate the other fields.
    """
    return _invalid(field, message)


def _show(value, limit: int = 80) -> str:
    """Return a short JSON rendering of ``value`` for messages."""
    if value is _ABSENT:
        return "missing"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except ValueError:
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "... (%d characters)" % len(text)
    return text


def _text(value) -> str:
    return value if isinstance(value, str) else _show(value, limit=40)


def _check_v(manifest, context):
    value = manifest.get("v", _ABSENT)
    if value is _ABSENT:
        return [_missing("v", '"v" is missing; add "v": 2')]

    number = _js_number(value)
    if math.isnan(number) or number < 0:
        return [_invalid("v", '"v" is %s; it must be a number of 0 or more, normally 2' % _show(value))]
    return []


def _uuid_checker(field: str):
    def check(manifest, context):
        value = manifest.get(field, _ABSENT)
        if value is _ABSENT:
            return [_missing(field)]
        if UUID_RE.match(_js_string(value)) is None:
            return [_invalid(field, "%s %s is not a lower-case UUID (8-4-4-4-12 hex digits)" % (field, _show(value)))]
        return []

    return check


def _check_urn(manifest, context):
    value = manifest["urn"]
    if not isinstance(value, str):
        return [_invalid("urn", "urn %s is not a string" % _show(value))]
    return []


def _text_checker(field: str, max_length: int, pattern=None, allowed: str = ""):
    def check(manifest, context):
        value = manifest.get(field, _ABSENT)
        if value is _ABSENT:
            return [_missing(field)]
        if value is None:
            return [_thrown(field, "%s is null; it must be a string" % field)]
        if _js_length_exceeds(value, max_length):
            return [_invalid(field, "image %s %s is too long, max %d characters" % (field, _show(value), max_length))]
        if pattern is not None and pattern.fullmatch(_js_string(value)) is None:
            return [_invalid(
                field,
                "image %s %s has invalid characters; only letters, digits and %s are allowed"
                % (field, _show(value), allowed),
            )]
        return []

    return check


def _url_checker(field: str):
    def check(manifest, context):
        value = manifest.get(field, _ABSENT)
        if value is _ABSENT:
            return [_missing(field)]
        if not isinstance(value, str):
            return [_thrown(field, "%s %s is not a string; give an http or https URL" % (field, _show(value)))]
        if _url_protocol(value) not in ("http:", "https:"):
            return [_invalid(field, "%s %s is not an http or https URL" % (field, _show(value)))]
        if _js_length(value) > MAX_URL_LENGTH:
            return [_invalid(field, "%s URL is too long, max %d characters" % (field, MAX_URL_LENGTH))]
        return []

    return check


def _boolean_checker(field: str):
    def check(manifest, context):
        value = manifest.get(field, _ABSENT)
        if value is _ABSENT:
            return [_missing(field)]
        if _js_bool(value) is None:
            return [_thrown(field, '%s is %s; it must be true or false (or "true" or "false")' % (field, _show(value)))]
        return []

    return check


def _check_published_at(manifest, context):
    # An invalid "activated" is reported by its own check. imgmanifest throws
    # here too, so treating it as not activated changes no shared verdict.
    activated = _js_bool(manifest.get("activated", _ABSENT))
    value = manifest.get("published_at", _ABSENT)
    if activated is True and value is _ABSENT:
        return [_missing("published_at", "published_at is required when activated is true; add it")]
    if _js_truthy(value) and PUBLISHED_AT_RE.fullmatch(_js_string(value)) is None:
        return [_invalid(
            "published_at",
            "published_at %s is not in YYYY-MM-DDTHH:MM:SSZ format (optionally with "
            "exactly 3 fraction digits, .SSS, before the Z)" % _show(value),
        )]
    return []


def _check_state(manifest, context):
    value = manifest.get("state", _ABSENT)
    if value is _ABSENT:
        return [_missing("state")]
    if value not in VALID_STATES:
        return [_invalid("state", "state %s is not one of %s" % (_show(value), ", ".join(VALID_STATES)))]
    return []


def _check_public(manifest, context):
    value = manifest.get("public", _ABSENT)
    if value is _ABSENT:
        return [_missing("public")]

    public = _js_bool(value)
    if public is None:
        return [_invalid("public", 'public is %s; it must be true or false (or "true" or "false")' % _show(value))]
    if context.mode == "public" and not public:
        return [_invalid("public", "private images (public: false) are not allowed on a public IMGAPI")]
    if context.mode == "private" and public:
        return [_invalid("public", "public images (public: true) are not allowed on a private IMGAPI")]
    return []


def _enum_checker(field: str, valid: tuple):
    def check(manifest, context):
        value = manifest.get(field, _ABSENT)
        if value is _ABSENT:
            return [_missing(field)]
        # The string "null" means "not known yet" while an image is created.
        if value == "null":
            if manifest.get("state") not in ("creating", "failed"):
                return [_invalid(field, '%s "null" is allowed only while state is creating or failed' % field)]
            return []
        # imgmanifest looks the value up as a property name, which converts it
        # with String(); ["zvol"] becomes "zvol" and passes there and here.
        if _js_string(value) not in valid:
            return [_invalid(field, "image %s %s is not one of %s" % (field, _show(value), ", ".join(valid)))]
        return []

    return check


def _zvol_string_checker(field: str):
    def check(manifest, context):
        value = manifest.get(field, _ABSENT)
        is_zvol = manifest.get("type") == "zvol"
        if value is _ABSENT:
            return [_missing(field, "%s is required for a zvol image; add it" % field)] if is_zvol else []
        if _js_truthy(value) and not is_zvol:
            return [_invalid(field, "%s %s is set, but only zvol images may set it; remove it" % (field, _show(value)))]
        if not isinstance(value, str):
            return [_invalid(field, "%s %s is not a string" % (field, _show(value)))]
        return []

    return check


def _check_image_size(manifest, context):
    value = manifest.get("image_size", _ABSENT)
    is_zvol = manifest.get("type") == "zvol"
    if value is _ABSENT:
        return [_missing("image_size", "image_size is required for a zvol image; add it (in MiB)")] if is_zvol else []
    if _js_truthy(value) and not is_zvol:
        return [_invalid("image_size", "image_size %s is set, but only zvol images may set it; remove it" % _show(value))]
    if not _is_js_integer(_js_number(value)):
        return [_invalid("image_size", "image_size %s is not an integer number of MiB" % _show(value))]
    return []


def _check_channels(manifest, context):
    value = manifest.get("channels", _ABSENT)
    if value is _ABSENT:
        return [_missing("channels", "channels is required on an IMGAPI configured for channels; add it")]
    if context.mode == "minimal":
        # imgmanifest reads options.channelFromName without options here.
        return [_thrown("channels", "channels is only valid on an IMGAPI configured for channels; remove it")]
    if not context.has_channels:
        return [_invalid("channels", "channels is only valid on an IMGAPI configured for channels; remove it")]
    if not isinstance(value, list):
        return [_invalid("channels", "channels %s is not an array of strings" % _show(value))]
    return [
        _invalid("channels", "channels entry %s is not a string" % _show(channel))
        for channel in value
        if not isinstance(channel, str)
    ]


def _check_error(manifest, context):
    value = manifest["error"]
    if _js_typeof(value) != "object":
        return [_invalid("error", "error %s is not an object" % _show(value))]
    return []


def _check_files(manifest, context):
    # As in _check_published_at, an invalid "activated" counts as not activated.
    activated = _js_bool(manifest.get("activated", _ABSENT))
    files = manifest.get("files", _ABSENT)
    if files is _ABSENT:
        return [_missing("files", "files is required when activated is true; add it")] if activated is True else []
    if not isinstance(files, list):
        return [_invalid("files", "files %s is not an array" % _show(files))]
    if len(files) > 1:
        return [_invalid("files", "files lists %d files; an image has at most one" % len(files))]
    if not files:
        return []

    file = files[0]
    if file is None:
        return [_thrown("files", "files[0] is null; it must be an object with sha1, size and compression")]

    errors = []
    if not _js_truthy(_js_property(file, "sha1")):
        errors.append(_invalid("files", "files[0] has no sha1; add the SHA-1 hex digest of the image file"))
    if not _js_truthy(_js_property(file, "size")):
        errors.append(_invalid("files", "files[0] has no size (or size 0); add the image file's size in bytes"))
    compression = _js_property(file, "compression")
    if not _js_truthy(compression):
        errors.append(_invalid("files", "files[0] has no compression; add one of %s" % ", ".join(COMPRESSIONS)))
    elif compression not in COMPRESSIONS:
        errors.append(_invalid(
            "files",
            "files[0] compression %s is not one of %s" % (_show(compression), ", ".join(COMPRESSIONS)),
        ))
    return errors


def _check_acl(manifest, context):
    value = manifest["acl"]
    if not isinstance(value, list):
        return [_invalid("acl", "acl %s is not an array of UUIDs" % _show(value))]
    for index, item in enumerate(value):
        if UUID_RE.match(_js_string(item)) is None:
            # imgmanifest reports the first bad entry only.
            return [_invalid("acl", "acl entry %d, %s, is not a lower-case UUID" % (index, _show(item)))]
    return []


def _check_requirements(manifest, context):
    value = manifest["requirements"]
    if value is None:
        return [_thrown("requirements", "requirements is null; it must be an object")]

    # imgmanifest validates a shallow copy, deleting each known key as it goes
    # and reporting whatever remains. A string or array "requirements" thus
    # reports its indices as unsupported requirements, and a number or boolean
    # passes.
    requirements = _js_object_copy(value)
    errors = []
    errors.extend(_check_networks(requirements.pop("networks", _ABSENT)))

    brand = requirements.pop("brand", _ABSENT)
    if _js_truthy(brand) and not isinstance(brand, str):
        errors.append(_invalid("requirements.brand", "requirements.brand %s is not a string" % _show(brand)))

    ssh_key = requirements.pop("ssh_key", _ABSENT)
    if _js_truthy(ssh_key) and not isinstance(ssh_key, bool):
        errors.append(_invalid("requirements.ssh_key", "requirements.ssh_key %s is not a boolean" % _show(ssh_key)))

    errors.extend(_check_ram(requirements.pop("min_ram", _ABSENT), requirements.pop("max_ram", _ABSENT)))
    for key in ("min_platform", "max_platform"):
        errors.extend(_check_platform_map("requirements." + key, requirements.pop(key, _ABSENT)))
    errors.extend(_check_bootrom(requirements.pop("bootrom", _ABSENT), value))

    # imgmanifest names the field by the bare key, without "requirements.".
    for key in _js_keys(requirements):
        errors.append(_invalid(
            key,
            "requirements.%s is not a supported requirement; use only %s" % (key, ", ".join(REQUIREMENTS)),
        ))
    return errors


def _check_networks(networks):
    field = "requirements.networks"
    if not _js_truthy(networks):
        return []
    if not isinstance(networks, list):
        return [_invalid(field, "%s %s is not an array" % (field, _show(networks)))]

    errors = []
    for network in networks:
        if network is None:
            errors.append(_thrown(field, "%s entry is null; it must be {\"name\": ..., \"description\": ...}" % field))
        elif not isinstance(network, dict) or set(network) != {"name", "description"}:
            errors.append(_invalid(
                field,
                "%s entry %s must have exactly the keys name and description" % (field, _show(network)),
            ))
    return errors


def _check_ram(min_ram, max_ram):
    errors = []
    valid = {}
    for key, value in (("min_ram", min_ram), ("max_ram", max_ram)):
        if not _js_truthy(value):
            continue
        if _is_js_integer(value):
            valid[key] = _to_double(value)
        else:
            errors.append(_invalid(
                "requirements." + key,
                "requirements.%s %s is not an integer number of MiB" % (key, _show(value)),
            ))

    if "min_ram" in valid and "max_ram" in valid and valid["max_ram"] < valid["min_ram"]:
        errors.append(_invalid(
            "requirements.max_ram",
            "requirements.max_ram %s is below min_ram %s" % (_show(max_ram), _show(min_ram)),
        ))
    return errors


def _check_platform_map(field: str, platforms):
    if not _js_truthy(platforms):
        return []
    if _js_typeof(platforms) != "object" or not _js_keys(platforms):
        return [_invalid(
            field,
            '%s %s is not a non-empty object such as {"7.0": "20130308T102805Z"}' % (field, _show(platforms)),
        )]

    errors = []
    for key, stamp in _js_entries(platforms):
        verdict = _platform_stamp_verdict(stamp)
        if verdict is None:
            errors.append(_thrown(field, "%s entry %r is %s; it must be a string" % (field, key, _show(stamp))))
        elif not verdict:
            errors.append(_invalid(
                field,
                "%s entry %r: %s is not a platform stamp YYYYMMDDTHHMMSSZ from %d or later"
                % (field, key, _show(stamp), PLATFORM_STAMP_MIN_YEAR),
            ))
    return errors


def _platform_stamp_verdict(stamp):
    """Return what imgmanifest's ``validPlatformVersion`` returns, or None where it throws.

    Like imgmanifest, this compares Number() of each part, so a part that is
    not a number at all (NaN) passes every range check.
    """
    if not isinstance(stamp, str):
        length = _js_length_property(stamp) if stamp is not None else _ABSENT
        # null has no length, and a length of 16 leads to calling substr(),
        # which only strings have.
        if stamp is None or (_is_js_number(length) and length == 16):
            return None
        return False
    if _js_length(stamp) != 16:
        return False

    def part(start, length):
        return _js_number(_js_substr(stamp, start, length))

    if part(0, 4) < PLATFORM_STAMP_MIN_YEAR:
        return False
    if part(4, 2) > 12 or part(4, 2) == 0:
        return False
    if part(6, 2) > 31 or part(6, 2) == 0:
        return False
    if _js_substr(stamp, 8, 1) != "T":
        return False
    if part(9, 2) > 23 or part(11, 2) > 59 or part(13, 2) > 59:
        return False
    return _js_substr(stamp, 15, 1) == "Z"


def _check_bootrom(bootrom, requirements):
    field = "requirements.bootrom"
    if not _js_truthy(bootrom):
        return []

    brand = requirements.get("brand", _ABSENT)
    if not _js_truthy(brand):
        return [_missing(field, 'requirements.bootrom needs requirements.brand set to "bhyve"; add it')]
    if brand != "bhyve":
        return [_invalid(field, 'requirements.bootrom is only supported with brand "bhyve", not %s' % _show(brand))]
    if bootrom not in VALID_BOOTROMS:
        return [_invalid(field, "requirements.bootrom %s is not one of %s" % (_show(bootrom), ", ".join(VALID_BOOTROMS)))]
    return []


def _check_users(manifest, context):
    value = manifest["users"]
    if not isinstance(value, list):
        return [_invalid("users", "users %s is not an array" % _show(value))]

    errors = []
    for user in value:
        if user is None:
            errors.append(_thrown("users", 'users entry is null; it must be {"name": ...}'))
        elif not isinstance(user, dict) or list(user) != ["name"]:
            errors.append(_invalid("users", 'users entry %s must have exactly one key, name' % _show(user)))
    return errors


def _check_billing_tags(manifest, context):
    value = manifest["billing_tags"]
    if not isinstance(value, list):
        return [_invalid("billing_tags", "billing_tags %s is not an array of strings" % _show(value))]
    return [
        _invalid(
            "billing_tags",
            "billing_tags entry %s is not a string of at most %d characters" % (_show(tag), MAX_BILLING_TAG_LENGTH),
        )
        for tag in value
        if not isinstance(tag, str) or _js_length(tag) > MAX_BILLING_TAG_LENGTH
    ]


def _check_traits(manifest, context):
    value = manifest["traits"]
    if _js_typeof(value) != "object":
        return [_invalid("traits", "traits %s is not an object" % _show(value))]
    if value is None:
        return [_thrown("traits", "traits is null; it must be an object")]
    return [
        _invalid("traits", "traits entry %r is %s; it must be a string, boolean or array" % (key, _show(trait)))
        for key, trait in _js_entries(value)
        if not isinstance(trait, (str, bool, list))
    ]


def _check_tags(manifest, context):
    value = manifest["tags"]
    if isinstance(value, list) or _js_typeof(value) != "object":
        return [_invalid("tags", "tags %s is not an object" % _show(value))]
    if value is None:
        return [_thrown("tags", "tags is null; it must be an object")]

    length = _js_json_length(value)
    if length > MAX_TAGS_LENGTH:
        return [_invalid("tags", "tags is %d characters as JSON, max %d" % (length, MAX_TAGS_LENGTH))]
    return []


def _check_inherited_directories(manifest, context):
    field = "inherited_directories"
    value = manifest[field]
    if manifest.get("type") != "zone-dataset":
        return [_invalid(field, "%s is only valid for a zone-dataset image; remove it" % field)]
    if not isinstance(value, list):
        return [_invalid(field, "%s %s is not an array of strings" % (field, _show(value)))]
    return [
        _invalid(field, "%s entry %s is not a string" % (field, _show(directory)))
        for directory in value
        if not isinstance(directory, str)
    ]


_VALIDATORS = {
    "v": _check_v,
    "uuid": _uuid_checker("uuid"),
    "urn": _check_urn,
    "owner": _uuid_checker("owner"),
    "name": _text_checker("name", MAX_NAME_LENGTH, NAME_RE, 'space, ".", "-", "_" and "/"'),
    "version": _text_checker("version", MAX_VERSION_LENGTH, VERSION_RE, '".", "-", "_", "/" and "+"'),
    "description": _text_checker("description", MAX_DESCRIPTION_LENGTH),
    "homepage": _url_checker("homepage"),
    "eula": _url_checker("eula"),
    "disabled": _boolean_checker("disabled"),
    "activated": _boolean_checker("activated"),
    "published_at": _check_published_at,
    "state": _check_state,
    "public": _check_public,
    "type": _enum_checker("type", VALID_TYPES),
    "os": _enum_checker("os", VALID_OSES),
    "origin": _uuid_checker("origin"),
    "error": _check_error,
    "files": _check_files,
    "icon": _boolean_checker("icon"),
    "acl": _check_acl,
    "requirements": _check_requirements,
    "users": _check_users,
    "billing_tags": _check_billing_tags,
    "traits": _check_traits,
    "tags": _check_tags,
    "generate_passwords": _boolean_checker("generate_passwords"),
    "inherited_directories": _check_inherited_directories,
    "nic_driver": _zvol_string_checker("nic_driver"),
    "disk_driver": _zvol_string_checker("disk_driver"),
    "cpu_type": _zvol_string_checker("cpu_type"),
    "image_size": _check_image_size,
    "channels": _check_channels,
}


# ---- the image file

@dataclass(frozen=True)
class ImageFile:
    """The one file of an image, as its manifest describes it."""

    size: int
    sha1: str | None
    compression: str
    dataset_guid: str | None


def image_file(manifest: dict) -> ImageFile:
    """Return the manifest's one image file, or raise ManifestError if it cannot be imported."""
    name = describe(manifest)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not files:
        raise ManifestError(
            "image %s has no files: its manifest lists no image file, so it cannot be "
            "imported; use an image that has been activated on its source" % name
        )
    if not isinstance(files, list) or len(files) != 1 or not isinstance(files[0], dict):
        raise ManifestError(
            "image %s: manifest files %s is not an array of exactly one file object, so "
            "the image cannot be imported; correct the manifest" % (name, _show(files))
        )

    file = files[0]
    compression = file.get("compression")
    if compression not in COMPRESSIONS:
        raise ManifestError(
            "image %s: file compression %s is not supported; the accepted ones are %s"
            % (name, _show(file.get("compression", _ABSENT)), ", ".join(COMPRESSIONS))
        )

    size = file.get("size")
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ManifestError(
            "image %s: file size %s is not a positive whole number of bytes; correct "
            "files[0].size in the manifest" % (name, _show(file.get("size", _ABSENT)))
        )

    sha1 = file.get("sha1")
    dataset_guid = file.get("dataset_guid")
    for key, value in (("sha1", sha1), ("dataset_guid", dataset_guid)):
        if value is not None and not isinstance(value, str):
            raise ManifestError(
                "image %s: file %s %s is not a string; correct files[0].%s in the manifest"
                % (name, key, _show(value), key)
            )

    return ImageFile(size=size, sha1=sha1, compression=compression, dataset_guid=dataset_guid)
