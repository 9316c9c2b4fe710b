# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: image_catalog
author: smartos.images developers (@smartos-images)
version_added: 1.0.0
short_description: Select images from an image source's catalog on the controller
description:
  - Reads the image catalog of one or more IMGAPI or DSAPI sources from the Ansible controller and returns the
    manifests of the images selected, so that a playbook can hand exact image UUIDs to every host instead of
    letting each host resolve "the newest base-64-lts" at a different moment.
  - IMGAPI catalogs are read with C(GET /images), page by page with C(limit=1000) and C(marker) set to the last
    UUID of the previous page, until a page has fewer than 1000 images. DSAPI catalogs are read with one
    C(GET) of the source URL.
  - DSAPI (v1) manifests are upgraded to IMGAPI (v2) manifests, as C(imgadm) does.
  - Images are selected with O(filters), then O(jmespath), then O(newest), and O(field) picks one value of each
    selected image. O(selections) makes several selections from the same catalogs in one call.
  - Within one lookup call, each source's catalog is requested once, however many terms name it and however many
    O(selections) are made.
options:
  _terms:
    description:
      - URLs of the image sources, in order of preference.
      - An IMGAPI URL is the server's base URL, for example V(https://images.example.com). A DSAPI URL ends in
        C(/datasets) and needs O(type=dsapi).
      - A query V(?channel=NAME) selects an IMGAPI channel, as in C(imgadm) source URLs.
      - The catalogs are merged into one list. When several sources have an image with the same UUID, the
        first source's manifest is kept.
    type: list
    elements: str
    required: true
  type:
    description:
      - API of every source in the terms. Use one lookup call per API to combine IMGAPI and DSAPI sources.
    type: str
    choices: [imgapi, dsapi]
    default: imgapi
  channel:
    description:
      - IMGAPI channel to read, sent as the C(channel) query parameter. Overrides a V(?channel=) in the URL.
      - V(*) reads all channels. Without a channel, the server returns its default channel.
      - DSAPI has no channels, so a channel with O(type=dsapi) is an error.
    type: str
  state:
    description:
      - Image state to list. IMGAPI servers filter by it (the C(state) query parameter), and images of any other
        state in the response, including from DSAPI sources, are dropped. V(all) lists images in every state.
      - A manifest without a C(state) field counts as V(active).
    type: str
    choices: [active, disabled, unactivated, creating, failed, all]
    default: active
  filters:
    description:
      - Filters in the form of C(imgadm list) and C(imgadm avail), as a list of V(field=value) strings or as a
        dictionary of field to value. All filters must match.
      - V(value) V(true) or V(false) matches that boolean, V(~text) matches a string containing V(text) or a list
        with an element equal to V(text), and anything else matches the field's value as a string. V(field) may
        be dotted, for example V(tags.role) or V(requirements.brand).
      - The computed fields C(pub), C(published_date), C(published) and C(size) of C(imgadm) can be filtered on.
    type: raw
  jmespath:
    description:
      - JMESPath expression applied to the list of manifests that O(filters) selected, for example
        V([?requirements.brand=='bhyve']).
      - A result that is not a list becomes a list of that one value, and a null result an empty list.
      - With O(newest) or O(field), the expression must return a list of manifests.
    type: str
  newest:
    description:
      - V(true) keeps only the newest image of each C(name), by C(published_at) and then by C(version).
      - Versions are compared part by part, with digit runs compared as numbers, so V(24.4.10) is newer than
        V(24.4.9).
      - Images with the same C(name), C(published_at) and C(version) keep the one listed first, which is the one
        from the earlier source.
    type: bool
    default: false
  field:
    description:
      - Return only this field of each selected image instead of the whole manifest, for example V(uuid).
      - The field may be dotted (V(tags.role)) or one of the computed fields of O(filters). An image without it
        gives V(null).
    type: str
  required:
    description:
      - V(true) makes a selection that selects no image an error. V(false) returns an empty list for it.
    type: bool
    default: false
  selections:
    description:
      - Several selections made from the same catalogs in one call. Each element is a dictionary with any of the
        keys V(filters), V(jmespath), V(newest), V(field) and V(required), which default to the options of the
        same name.
      - The result is the results of the selections, in order, in one list. An image that two selections select
        appears twice.
      - Without this option, the options O(filters), O(jmespath), O(newest), O(field) and O(required) make one
        selection.
    type: list
    elements: dict
  validate_certs:
    description:
      - V(false) turns TLS certificate verification off. Use it only for a test server that you control.
    type: bool
    default: true
  ca_path:
    description:
      - Path on the controller of a PEM file of CA certificates to verify the sources' TLS certificates with,
        instead of the CA bundle that C(requests) uses.
    type: path
  connect_timeout:
    description:
      - Seconds to wait for a connection to a source.
    type: float
    default: 15
  read_timeout:
    description:
      - Seconds to wait for the next bytes of a response from a source before the read fails.
    type: float
    default: 60
  retries:
    description:
      - How many times a request is retried after a connection error, a read timeout, or an HTTP status 429 or
        5xx. The first retry is sent at once, the next ones after 1, 2, 4 seconds and so on. A C(Retry-After)
        header of a 429 or 503 response is honored up to 60 seconds.
    type: int
    default: 3
requirements:
  - requests
  - jmespath
notes:
  - Ansible runs a lookup on the controller once for every host that templates it, and templates play and task
    C(vars) again at every use. A lookup in play C(vars) or in a task's arguments therefore reads the catalogs once
    for each host and each use, and hosts can get different results when the catalog changes in between.
    Resolve the images once with O(field=uuid) in a C(ansible.builtin.set_fact) task with C(run_once=true), and
    give the hosts the UUIDs. See the examples.
  - With C(serial), a C(run_once) task runs once for each batch. To resolve once for all batches, resolve in an
    earlier play without C(serial), and read the fact with C(hostvars) in the later play.
  - Requests go through C(requests), which honors the C(https_proxy), C(http_proxy) and C(no_proxy) environment
    variables of the controller, and C(REQUESTS_CA_BUNDLE) when O(ca_path) is not set.
  - Sources that need authentication are not supported; the lookup sends no credentials except those in the
    URL's user information, which C(requests) sends as HTTP basic authentication.
seealso:
  - module: smartos.images.image
    description: Imports the images whose UUIDs this lookup returns.
  - name: IMGAPI ListImages
    description: The IMGAPI call that this lookup pages through.
    link: https://github.com/TritonDataCenter/sdc-imgapi/blob/master/docs/index.md#listimages-get-images
"""

EXAMPLES = r"""
# Resolve once for the whole play, then import the same image on every host.
- name: Import the newest base-64-lts on all compute nodes
  hosts: compute_nodes
  tasks:
    - name: Resolve the newest base-64-lts once
      ansible.builtin.set_fact:
        base_image_uuid: >-
          {{ lookup('smartos.images.image_catalog', 'https://images.example.com',
                    filters={'name': 'base-64-lts'}, newest=true, field='uuid', required=true) }}
      run_once: true

    - name: Import it
      smartos.images.image:
        uuid: "{{ base_image_uuid }}"
        sources:
          - url: https://images.example.com

# Several images from one read of the catalog. query() always returns a list.
- name: Resolve the images of a release
  hosts: compute_nodes
  tasks:
    - name: Resolve the newest base and minimal images once
      ansible.builtin.set_fact:
        release_uuids: >-
          {{ query('smartos.images.image_catalog', 'https://images.example.com',
                   newest=true, field='uuid', required=true,
                   selections=[{'filters': ['name=base-64-lts']}, {'filters': ['name=minimal-64-lts']}]) }}
      run_once: true

# With serial, run_once runs once per batch, so resolve in a play of its own.
- name: Resolve the image for the rolling upgrade
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Resolve the newest bhyve image of the staging channel
      ansible.builtin.set_fact:
        app_image: >-
          {{ lookup('smartos.images.image_catalog', 'https://images.example.com?channel=staging',
                    filters=['name=app', 'requirements.brand=bhyve'], newest=true, required=true) }}

- name: Roll the image out two hosts at a time
  hosts: compute_nodes
  serial: 2
  tasks:
    - name: Import the image resolved above
      smartos.images.image:
        uuid: "{{ hostvars['localhost'].app_image.uuid }}"
        sources:
          - url: https://images.example.com?channel=staging

# JMESPath on the filtered manifests, a legacy DSAPI source, and a private CA.
- name: Show catalog details
  hosts: localhost
  gather_facts: false
  tasks:
    - name: List the versions of base-64-lts published in 2024
      ansible.builtin.debug:
        msg: >-
          {{ query('smartos.images.image_catalog', 'https://images.example.com',
                   filters={'name': 'base-64-lts', 'pub': '~2024-'}, jmespath='[].version') }}

    - name: List the UUIDs of a DSAPI source
      ansible.builtin.debug:
        msg: >-
          {{ query('smartos.images.image_catalog', 'https://datasets.example.com/datasets',
                   type='dsapi', field='uuid') }}

    - name: Read a source whose certificate a private CA signed
      ansible.builtin.debug:
        msg: >-
          {{ query('smartos.images.image_catalog', 'https://images.internal.example',
                   ca_path='/etc/pki/internal-ca.pem', field='uuid') }}
"""

RETURN = r"""
_raw:
  description:
    - The manifests of the selected images (IMGAPI v2, with DSAPI v1 manifests upgraded), in catalog order, or with
      O(field) the value of that field of each image, or with O(jmespath) what the expression returned.
    - IMGAPI servers list images oldest first, DSAPI servers newest first.
  type: list
  elements: raw
"""

import datetime
import json
import re
import time
import warnings

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.exceptions import InsecureRequestWarning, ReadTimeoutError
    from urllib3.util.retry import Retry
except ImportError as exc:
    REQUESTS_IMPORT_ERROR = exc
else:
    REQUESTS_IMPORT_ERROR = None

try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError as exc:
    JMESPATH_IMPORT_ERROR = exc
else:
    JMESPATH_IMPORT_ERROR = None

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils.urls import mask_url
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._filters import describe_filters, image_row, parse_filters, select
from ansible_collections.smartos.images.plugins.module_utils._http import USER_AGENT
from ansible_collections.smartos.images.plugins.module_utils._manifest import describe, upgrade_manifest
from ansible_collections.smartos.images.plugins.module_utils._sources import PAGE_SIZE, Source

display = Display()

SELECTION_KEYS = ("filters", "jmespath", "newest", "field", "required")
RETRY_STATUSES = frozenset([429] + list(range(500, 600)))
BACKOFF_FACTOR = 0.5
MAX_RETRY_AFTER = 60.0
MAX_LISTED_UUIDS = 5
EARLIEST = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
VERSION_PART_RE = re.compile(r"[0-9]+|[^0-9]+")

# Next steps for an HTTP error status, by status.
STATUS_HINTS = {
    401: "the source requires authentication, which this lookup does not support",
    403: "the source rejected the request; check that the controller may read it",
    404: ("check the URL: an IMGAPI source URL is the server's base URL without /images, "
          "and a DSAPI source URL ends in /datasets and needs type=dsapi"),
    422: "the server rejected a query parameter, for example an unknown channel; check channel and state",
    429: "the server is rate limiting; retry later or raise retries",
}


if REQUESTS_IMPORT_ERROR is None:
    class _CappedRetry(Retry):
        """A ``Retry`` that waits at most MAX_RETRY_AFTER seconds for a ``Retry-After`` header."""

        def parse_retry_after(self, retry_after):
            return min(super().parse_retry_after(retry_after), MAX_RETRY_AFTER)


def _shown(url, params=None):
    """Return the request URL for messages, with any password in it masked."""
    if params:
        url = requests.Request("GET", url, params=params).prepare().url
    return mask_url(url)


def _reason_object(exc):
    """Return the innermost exception of a requests exception."""
    reason = exc.args[0] if exc.args else exc
    # requests wraps urllib3's MaxRetryError, whose reason is the last failure.
    return getattr(reason, "reason", None) or reason


def _reason(exc):
    reason = _reason_object(exc)
    return str(reason) or type(reason).__name__


def _attempts(retries):
    return "1 attempt" if retries == 0 else "%d attempts" % (retries + 1)


def _backoff(failures):
    """Return the seconds to wait before retry number ``failures``, as urllib3's Retry waits."""
    return 0 if failures <= 1 else BACKOFF_FACTOR * 2 ** (failures - 1)


def _api_type(call):
    return "dsapi" if call == "ListDatasets" else "imgapi"


def _server_message(response):
    """Return the error message in an IMGAPI ``{code, message}`` or DSAPI ``{error: {message}}`` body, or ''."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    except requests.exceptions.RequestException:
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and body.get("message"):
        code = body.get("code")
        return "%s: %s" % (code, body["message"]) if isinstance(code, str) else str(body["message"])
    return ""


def _json_type(value):
    if isinstance(value, dict):
        return "JSON object"
    if isinstance(value, str):
        return "JSON string"
    if value is None:
        return "JSON null"
    if isinstance(value, bool):
        return "JSON boolean"
    if isinstance(value, (int, float)):
        return "JSON number"
    return "JSON array"


def _format_uuids(uuids):
    listed = ", ".join(str(uuid) for uuid in uuids[:MAX_LISTED_UUIDS])
    if len(uuids) > MAX_LISTED_UUIDS:
        listed += " and %d more" % (len(uuids) - MAX_LISTED_UUIDS)
    return listed


# ---- reading catalogs

class CatalogReader:
    """Read source catalogs through one ``requests`` session, each source once."""

    def __init__(self, session, timeout, retries, state):
        self.session = session
        self.timeout = timeout
        self.retries = retries
        self.state = state
        self._catalogs = {}

    def catalog(self, source):
        """Return the source's manifests in state ``self.state``, upgraded to v2, from the server or this call's cache."""
        key = (source.type, source.base_url, source.effective_channel)
        if key not in self._catalogs:
            if source.type == "dsapi":
                raw = self._list_dsapi(source)
            else:
                raw = self._list_imgapi(source)
            self._catalogs[key] = self._usable_manifests(source, raw)
        return self._catalogs[key]

    def _list_imgapi(self, source):
        url = source.base_url + "/images"
        params = {"state": self.state, "limit": str(PAGE_SIZE)}
        if source.effective_channel:
            params["channel"] = source.effective_channel

        entries = []
        seen = set()
        marker = None
        pages = 0
        while True:
            page_params = dict(params)
            if marker:
                page_params["marker"] = marker
            page = self._get_list(url, page_params, "ListImages", {"Accept-Version": "~2"})
            pages += 1

            new_count = 0
            for entry in page:
                uuid = entry.get("uuid") if isinstance(entry, dict) else None
                # The reference IMGAPI server's marker is inclusive, so each page
                # after the first can start with the previous page's last image.
                if isinstance(uuid, str) and uuid in seen:
                    continue
                if isinstance(uuid, str):
                    seen.add(uuid)
                entries.append(entry)
                new_count += 1

            # A page longer than the limit means the server ignored the limit
            # and sent its whole catalog.
            if len(page) != PAGE_SIZE:
                break
            last = page[-1]
            next_marker = last.get("uuid") if isinstance(last, dict) else None
            if not isinstance(next_marker, str):
                raise AnsibleError(
                    "image_catalog: %s returned a full page of %d images whose last entry has no string uuid, "
                    "so the next page cannot be requested with marker; check that the URL points at an IMGAPI server"
                    % (_shown(url, page_params), PAGE_SIZE)
                )
            if new_count == 0:
                display.warning(
                    "image_catalog: %s returned only images already listed for marker %s, so the server does not "
                    "page by marker and the catalog of %d images may be incomplete"
                    % (_shown(url, page_params), marker, len(entries))
                )
                break
            marker = next_marker

        display.vvv("image_catalog: listed %d images of %s in %d pages" % (len(entries), _shown(url), pages))
        return entries

    def _list_dsapi(self, source):
        url = source.base_url
        if source.effective_channel:
            raise AnsibleError(
                "image_catalog: channel %r was given for the DSAPI source %s, but DSAPI has no channels; "
                "remove the channel, or use an IMGAPI source" % (source.effective_channel, mask_url(source.url))
            )
        if not url.endswith("/datasets"):
            raise AnsibleError(
                "image_catalog: the DSAPI source URL %s does not end in /datasets; give the URL of the datasets "
                "list, or use type=imgapi for an IMGAPI server" % mask_url(source.url)
            )
        entries = self._get_list(url, None, "ListDatasets", {})
        display.vvv("image_catalog: listed %d datasets of %s" % (len(entries), _shown(url)))
        return entries

    def _get_list(self, url, params, call, headers):
        """GET one JSON list, with retries, or raise AnsibleError naming the request and the fix."""
        shown = _shown(url, params)
        body_failures = 0
        while True:
            response = self._send(url, params, call, headers, shown)
            with response:
                if response.status_code != 200:
                    raise AnsibleError(self._status_message(response, call, shown))
                # The session's Retry covers the request up to the response
                # headers. A body that breaks off or stalls is retried here.
                try:
                    content = response.content
                except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
                    body_failures += 1
                    if body_failures > self.retries:
                        raise AnsibleError(
                            "image_catalog: reading the response body of %s request %s failed (%s): %s; the server is "
                            "overloaded or stalled, so retry later, or raise read_timeout or retries"
                            % (call, shown, _attempts(self.retries), _reason(exc))
                        ) from exc
                    delay = _backoff(body_failures)
                    display.vvv("image_catalog: reading %s failed (%s), retrying in %s seconds"
                                % (shown, _reason(exc), delay))
                    time.sleep(delay)
                    continue

            try:
                body = json.loads(content)
            except ValueError as exc:
                raise AnsibleError(
                    "image_catalog: %s request %s returned a body that is not JSON (Content-Type %s, starting %r): "
                    "%s; check that the URL points at an image server of type %s"
                    % (call, shown, response.headers.get("Content-Type", "missing"),
                       content[:80].decode("utf-8", "replace"), exc, _api_type(call))
                ) from exc
            if not isinstance(body, list):
                raise AnsibleError(
                    "image_catalog: %s request %s returned a %s, not a list of images; check that the URL points at "
                    "an image server of type %s" % (call, shown, _json_type(body), _api_type(call))
                )
            return body

    def _send(self, url, params, call, headers, shown):
        """Send the GET and return the response once its headers arrived, or raise AnsibleError."""
        try:
            return self.session.get(url, params=params, headers=headers, timeout=self.timeout, stream=True)
        except requests.exceptions.SSLError as exc:
            raise AnsibleError(
                "image_catalog: TLS connection to %s failed: %s; if the certificate is signed by a private CA, set "
                "ca_path to that CA's PEM file; set validate_certs=false only for a test server you control"
                % (shown, _reason(exc))
            ) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise AnsibleError(
                "image_catalog: connecting to %s timed out (connect_timeout %s seconds, %s); check that the server "
                "is reachable from the controller, or raise connect_timeout"
                % (shown, self.timeout[0], _attempts(self.retries))
            ) from exc
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            # After the last retry, requests reports a read timeout as a
            # ConnectionError whose reason is urllib3's ReadTimeoutError.
            if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(_reason_object(exc), ReadTimeoutError):
                raise AnsibleError(
                    "image_catalog: %s request %s timed out (read_timeout %s seconds, %s); the server is "
                    "overloaded or stalled, so retry later or raise read_timeout"
                    % (call, shown, self.timeout[1], _attempts(self.retries))
                ) from exc
            raise AnsibleError(
                "image_catalog: %s request %s failed (%s): %s; check the URL, that the server is running and "
                "reachable from the controller, and the proxy environment variables"
                % (call, shown, _attempts(self.retries), _reason(exc))
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise AnsibleError(
                "image_catalog: %s request %s failed: %s; check the URL and that the server is an image server of "
                "type %s" % (call, shown, _reason(exc), _api_type(call))
            ) from exc

    def _status_message(self, response, call, shown):
        status = response.status_code
        hint = STATUS_HINTS.get(status)
        if hint is None and status >= 500:
            hint = "the server failed; retry later, or use another source"
        elif hint is None:
            hint = "check the URL and the options"
        attempts = " (%s)" % _attempts(self.retries) if status in RETRY_STATUSES else ""
        message = _server_message(response)
        return "image_catalog: %s request %s failed with HTTP %d %s%s%s; %s" % (
            call, shown, status, response.reason, attempts, ": %s" % message if message else "", hint)

    def _usable_manifests(self, source, entries):
        """Upgrade the listed manifests to v2 and keep those in the requested state, warning once about the rest."""
        manifests = []
        invalid = []
        for entry in entries:
            try:
                manifest = upgrade_manifest(entry)
            except ImageError as exc:
                invalid.append("%s (%s)" % (describe(entry), exc))
                continue
            if not isinstance(manifest.get("uuid"), str):
                invalid.append("%s (no string uuid)" % describe(entry))
                continue
            if self.state == "all" or manifest.get("state", "active") == self.state:
                manifests.append(manifest)

        if invalid:
            display.warning(
                "image_catalog: skipped %d catalog entries of %s that are not usable manifests: %s"
                % (len(invalid), mask_url(source.url), _format_uuids(invalid))
            )
        return manifests


def merge_catalogs(catalogs):
    """Join catalogs in order, keeping the first manifest of each UUID."""
    merged = []
    seen = set()
    for catalog in catalogs:
        for manifest in catalog:
            if manifest["uuid"] not in seen:
                seen.add(manifest["uuid"])
                merged.append(manifest)
    return merged


# ---- selecting images

def _published_key(manifest):
    value = manifest.get("published_at")
    if not isinstance(value, str):
        return EARLIEST
    try:
        published = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return EARLIEST
    if published.tzinfo is None:
        published = published.replace(tzinfo=datetime.timezone.utc)
    return published


def _version_key(manifest):
    version = manifest.get("version")
    text = "" if version is None else str(version)
    # Digit runs compare as numbers; the tag keeps ints and strs from being compared.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in VERSION_PART_RE.findall(text))


def newest_per_name(manifests):
    """Keep the newest manifest of each name, by ``published_at`` then version, in catalog order."""
    best = {}
    for index, manifest in enumerate(manifests):
        name = manifest.get("name")
        name_key = name if isinstance(name, str) else repr(name)
        key = (_published_key(manifest), _version_key(manifest))
        if name_key not in best or key > best[name_key][0]:
            best[name_key] = (key, index, manifest)
    winners = sorted(best.values(), key=lambda entry: entry[1])
    return [manifest for _key, _index, manifest in winners]


def field_value(manifest, field):
    """Return the dotted ``field`` of the manifest, computed imgadm fields included, or None."""
    current = image_row(manifest)
    for part in field.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _search(expression, manifests):
    if JMESPATH_IMPORT_ERROR is not None:
        raise AnsibleError(
            "image_catalog: the jmespath option needs the Python package jmespath on the controller (%s); install it "
            "into the Python that runs Ansible, for example with: pip install jmespath" % JMESPATH_IMPORT_ERROR
        )
    try:
        result = jmespath.search(expression, manifests)
    except JMESPathError as exc:
        raise AnsibleError("image_catalog: invalid jmespath expression %r: %s; fix the expression"
                           % (expression, exc)) from exc
    if result is None:
        return []
    if isinstance(result, list):
        return result
    return [result]


def select_images(catalog, selection, where):
    """Apply one selection (filters, jmespath, newest, field, required) to the merged catalog.

    ``where`` names the catalog in the error of a required selection that selects nothing.
    """
    filter_specs = selection["filters"]
    if filter_specs is None:
        filter_specs = []
    elif isinstance(filter_specs, str):
        filter_specs = [filter_specs]
    elif not isinstance(filter_specs, (list, dict)):
        raise AnsibleError("image_catalog: filters must be a list of field=value strings or a dictionary, not %r"
                           % (filter_specs,))
    try:
        filters = parse_filters(filter_specs)
    except ImageError as exc:
        raise AnsibleError("image_catalog: %s" % exc) from exc

    chosen = select(catalog, filters)
    expression = selection["jmespath"]
    if expression:
        chosen = _search(expression, chosen)

    if selection["newest"] or selection["field"]:
        for index, item in enumerate(chosen):
            if not isinstance(item, dict):
                raise AnsibleError(
                    "image_catalog: newest and field need manifests, but the jmespath expression %r returned a %s at "
                    "index %d; make the expression return manifests, or drop newest and field"
                    % (expression, _json_type(item), index)
                )
    if selection["newest"]:
        chosen = newest_per_name(chosen)
    if selection["field"]:
        chosen = [field_value(manifest, selection["field"]) for manifest in chosen]

    if selection["required"] and not chosen:
        expression_text = " and the jmespath expression %r" % expression if expression else ""
        raise AnsibleError(
            "image_catalog: no image matches the filters %s%s among %s; check the filters and state, or set "
            "required=false to accept an empty list" % (describe_filters(filters), expression_text, where)
        )
    return chosen


# ---- the lookup

class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if REQUESTS_IMPORT_ERROR is not None:
            raise AnsibleError(
                "image_catalog: this lookup needs the Python package requests on the controller (%s); install it "
                "into the Python that runs Ansible, for example with: pip install requests" % REQUESTS_IMPORT_ERROR
            )

        sources = self._sources(terms)
        selections = self._selections()
        retries = self.get_option("retries")
        if retries < 0:
            raise AnsibleError("image_catalog: retries is %d; it must be 0 or more" % retries)
        timeout = (self.get_option("connect_timeout"), self.get_option("read_timeout"))
        for name, seconds in zip(("connect_timeout", "read_timeout"), timeout):
            if not seconds > 0:
                raise AnsibleError("image_catalog: %s is %s; it must be a positive number of seconds" % (name, seconds))

        with requests.Session() as session, warnings.catch_warnings():
            session.mount("http://", HTTPAdapter(max_retries=self._retry(retries)))
            session.mount("https://", HTTPAdapter(max_retries=self._retry(retries)))
            session.headers["User-Agent"] = USER_AGENT
            if self.get_option("ca_path"):
                session.verify = self.get_option("ca_path")
            elif not self.get_option("validate_certs"):
                session.verify = False
                # The user turned verification off on purpose, so urllib3's
                # warning on every request would only be noise.
                warnings.simplefilter("ignore", InsecureRequestWarning)

            reader = CatalogReader(session, timeout, retries, self.get_option("state"))
            catalog = merge_catalogs(reader.catalog(source) for source in sources)

        where = "the %d images in state %s of %s" % (
            len(catalog), self.get_option("state"), ", ".join(mask_url(source.url) for source in sources))
        results = []
        for selection in selections:
            results.extend(select_images(catalog, selection, where))
        return results

    @staticmethod
    def _retry(retries):
        # other=0: errors that are neither connect nor read errors, such as a
        # failed certificate verification, do not go away on retry.
        return _CappedRetry(
            total=retries,
            other=0,
            backoff_factor=BACKOFF_FACTOR,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset(["GET"]),
            raise_on_status=False,
        )

    def _sources(self, terms):
        urls = []
        for term in terms:
            urls.extend(term if isinstance(term, list) else [term])
        if not urls:
            raise AnsibleError("image_catalog: no source URL was given; pass one or more source URLs as terms")

        sources = []
        for url in urls:
            if not isinstance(url, str) or not url.strip():
                raise AnsibleError("image_catalog: invalid source URL %r; each term must be a URL such as "
                                   "https://images.example.com" % (url,))
            sources.append(Source(url=url.strip(), type=self.get_option("type"), channel=self.get_option("channel")))
        return sources

    def _selections(self):
        defaults = {key: self.get_option(key) for key in SELECTION_KEYS}
        entries = self.get_option("selections")
        if entries is None:
            return [defaults]

        selections = []
        for index, entry in enumerate(entries):
            unknown = sorted(set(entry) - set(SELECTION_KEYS))
            if unknown:
                raise AnsibleError("image_catalog: selections[%d] has unsupported keys %s; use only %s"
                                   % (index, ", ".join(unknown), ", ".join(SELECTION_KEYS)))
            selection = dict(defaults, **entry)
            for key in ("newest", "required"):
                try:
                    selection[key] = boolean(selection[key], strict=True)
                except TypeError as exc:
                    raise AnsibleError("image_catalog: selections[%d].%s is %r, not a boolean; use true or false"
                                       % (index, key, selection[key])) from exc
            for key in ("jmespath", "field"):
                if selection[key] is not None and not isinstance(selection[key], str):
                    raise AnsibleError("image_catalog: selections[%d].%s is %r, not a string"
                                       % (index, key, selection[key]))
            selections.append(selection)
        return selections
