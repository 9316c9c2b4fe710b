# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Check the static index's v1 manifests with imgmanifest 3.1.0, the library imgadm vendors.

imgadm upgrades every manifest a DSAPI source returns with imgmanifest's
``upgradeManifest``. Each v1 manifest the static index writes must upgrade
to the repository's v2 manifest and pass the minimal validation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.smartos.images.plugins.module_utils._static_index import dataset_manifest

pytestmark = pytest.mark.oracle

ORACLES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "oracles"))
VERDICTS_SCRIPT = os.path.join(ORACLES, "imgmanifest_verdicts.js")
URL = "http://images.example.com:8080"
OWNER = "930896af-bf8c-48d4-885c-6573a94b1853"


def v2_manifest(uuid, **fields):
    manifest = {
        "v": 2,
        "uuid": uuid,
        "owner": OWNER,
        "name": "base-64-lts",
        "version": "24.4.1",
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": "2024-05-01T12:00:00.000Z",
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": "75f10c51683a22e65aeb2b25b085d6c3270f2b99", "size": 81374762, "compression": "bzip2"}],
    }
    manifest.update(fields)
    return manifest


CASES = {
    "zone": v2_manifest("2f1dc911-6401-4fa4-8e9d-67ea2e39c271", description="A base image",
                        requirements={"min_platform": {"7.0": "20141030T081701Z"}}, tags={"role": "os"}),
    "incremental": v2_manifest("0b2b1c7e-8c66-4c1e-9d8f-3c0e2f5a4b71",
                               origin="2f1dc911-6401-4fa4-8e9d-67ea2e39c271"),
    "zvol": v2_manifest("c2c31b00-1d60-11e9-9a77-ff9f06554b0f", type="zvol", os="linux", image_size=10240,
                        files=[{"sha1": "75f10c51683a22e65aeb2b25b085d6c3270f2b99", "size": 1024,
                                "compression": "gzip"}]),
    "uncompressed": v2_manifest("60a3b1fa-0674-11e2-abf5-cb82934a8e24",
                                files=[{"sha1": "75f10c51683a22e65aeb2b25b085d6c3270f2b99", "size": 1024,
                                        "compression": "none"}]),
}


@pytest.fixture(scope="module")
def verdicts():
    if not os.path.isdir(os.path.join(ORACLES, "node_modules", "imgmanifest")):
        pytest.fail("the imgmanifest oracle is not installed in %s/node_modules; run `npm ci` in tests/oracles"
                    % ORACLES, pytrace=False)
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; install Node.js to run the imgmanifest oracle", pytrace=False)
    request = [{"id": case_id, "manifest": dataset_manifest(manifest, URL), "mode": "minimal", "has_channels": False}
               for case_id, manifest in CASES.items()]
    completed = subprocess.run([node, VERDICTS_SCRIPT], input=json.dumps(request), capture_output=True, text=True,
                               cwd=ORACLES, timeout=120, check=False)
    assert completed.returncode == 0, "imgmanifest_verdicts.js exited %d: %s" % (
        completed.returncode, completed.stderr)
    return {verdict["id"]: verdict for verdict in json.loads(completed.stdout)}


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_upgrade_gives_repository_manifest(verdicts, case_id):
    verdict = verdicts[case_id]

    assert "upgrade_error" not in verdict
    assert verdict["upgraded"] == CASES[case_id]


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_upgraded_manifest_is_valid(verdicts, case_id):
    verdict = verdicts[case_id]

    assert "threw" not in verdict
    assert verdict["errors"] == []
