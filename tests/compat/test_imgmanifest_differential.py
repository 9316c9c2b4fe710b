# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Compare the manifest engine with imgmanifest 3.1.0, the library imgadm vendors.

All cases go to one Node.js process running tests/oracles/imgmanifest_verdicts.js.
For each case the two must agree on whether the upgrade fails, on the
upgraded manifest, and on the list of (field, code) validation errors.

Documented differences, each asserted by ``check_known_difference``:

* imgmanifest throws (a TypeError, and imgadm prints a stack trace) on
  some invalid values. This module reports Invalid on the changed field instead.
* imgmanifest accepts Object.prototype names such as "constructor" as a type
  or os. This module reports them Invalid.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ManifestError
from ansible_collections.smartos.images.plugins.module_utils._manifest import (
    upgrade_manifest,
    validate_manifest,
)

from imgmanifest_cases import all_cases

pytestmark = pytest.mark.oracle

ORACLES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "oracles"))
VERDICTS_SCRIPT = os.path.join(ORACLES, "imgmanifest_verdicts.js")
ORACLE_TIMEOUT_SECONDS = 300

CASES = all_cases()
CASES_BY_ID = {case["id"]: case for case in CASES}


@pytest.fixture(scope="module")
def oracle_verdicts():
    """Run every case through imgmanifest in one node process and return the verdicts by case id."""
    if not os.path.isdir(os.path.join(ORACLES, "node_modules", "imgmanifest")):
        pytest.fail(
            "the imgmanifest oracle is not installed in %s/node_modules; run "
            "`npm install --no-audit --no-fund` in tests/oracles" % ORACLES,
            pytrace=False,
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; install Node.js to run the imgmanifest oracle", pytrace=False)

    request = [
        {key: case[key] for key in ("id", "manifest", "mode", "has_channels")}
        for case in CASES
    ]
    completed = subprocess.run(
        [node, VERDICTS_SCRIPT],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=ORACLES,
        timeout=ORACLE_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, "imgmanifest_verdicts.js exited %d: %s" % (
        completed.returncode, completed.stderr,
    )
    verdicts = json.loads(completed.stdout)
    return {verdict["id"]: verdict for verdict in verdicts}


def our_verdict(case: dict) -> dict:
    verdict = {"id": case["id"]}
    manifest = case["manifest"]
    try:
        manifest = upgrade_manifest(manifest)
        verdict["upgraded"] = manifest
    except ManifestError as exc:
        verdict["upgrade_error"] = str(exc)
    verdict["errors"] = validate_manifest(manifest, mode=case["mode"], has_channels=case["has_channels"])
    return verdict


def comparable(value):
    """Return ``value`` as it reads after JSON.stringify: every number a double, NaN and infinity null."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return {key: comparable(item) for key, item in value.items()}


def field_codes(errors) -> list:
    return [(error["field"], error["code"]) for error in errors]


def show(ours: dict, theirs: dict) -> str:
    def brief(verdict):
        printable = dict(verdict)
        if "upgraded" in printable:
            printable["upgraded"] = json.dumps(comparable(printable["upgraded"]), sort_keys=True)[:400]
        return printable

    return "case %s\n  ours:        %s\n  imgmanifest: %s" % (ours["id"], brief(ours), brief(theirs))


def check_known_difference(case: dict, ours: dict, theirs: dict) -> None:
    if "threw" in theirs:
        assert (case["culprit"], "Invalid") in field_codes(ours["errors"]), (
            "imgmanifest threw (%s); this module must report %s as Invalid\n%s"
            % (theirs["threw"], case["culprit"], show(ours, theirs))
        )
        return

    assert case["known_difference"] == "prototype-name", show(ours, theirs)
    extra = (case["culprit"], "Invalid")
    assert extra in field_codes(ours["errors"]), show(ours, theirs)
    remaining = field_codes(ours["errors"])
    remaining.remove(extra)
    assert remaining == field_codes(theirs["errors"]), show(ours, theirs)


@pytest.mark.parametrize("case_id", sorted(CASES_BY_ID))
def test_verdict_matches_imgmanifest(case_id, oracle_verdicts):
    case = CASES_BY_ID[case_id]
    theirs = oracle_verdicts[case_id]
    ours = our_verdict(case)

    assert ("upgrade_error" in ours) == ("upgrade_error" in theirs), show(ours, theirs)
    if "upgraded" in theirs:
        assert comparable(ours["upgraded"]) == comparable(theirs["upgraded"]), show(ours, theirs)

    if "threw" in theirs or case["known_difference"]:
        check_known_difference(case, ours, theirs)
        return
    assert field_codes(ours["errors"]) == field_codes(theirs["errors"]), show(ours, theirs)


def test_case_count_covers_mutations():
    # A generator change that silently drops most cases would still pass
    # every remaining case, so the total has a floor.
    assert len(CASES) >= 3000
