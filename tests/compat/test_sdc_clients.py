# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Use the Triton sdc-clients IMGAPI client against the image server behind gunicorn and nginx.

sdc-clients (tests/oracles/package.json pins the version) is the library
the Triton tools use. tests/oracles/sdc_clients_check.js lists every image
across pages, gets one, downloads its file (the client checks Content-MD5)
publishes a new image with HTTP Basic credentials, then disables, enables
and updates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.smartos.images.plugins.module_utils._imgapi_auth import hash_password

from tests.support.image_server_stack import ImageServerStack, populate, synthetic_manifest

pytestmark = pytest.mark.oracle

ORACLES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "oracles"))
SCRIPT = os.path.join(ORACLES, "sdc_clients_check.js")
IMAGE_COUNT = 1150
PASSWORD = "sdc-clients test password"
NEW_DESCRIPTION = "updated through sdc-clients"


@pytest.fixture(scope="module")
def oracle_result(tmp_path_factory):
    if not os.path.isdir(os.path.join(ORACLES, "node_modules", "sdc-clients")):
        pytest.fail("the sdc-clients oracle is not installed in %s/node_modules; run "
                    "`npm install --no-audit --no-fund` in tests/oracles" % ORACLES, pytrace=False)
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; install Node.js to run the sdc-clients oracle", pytrace=False)

    work = tmp_path_factory.mktemp("sdc-clients")
    repository = str(work / "repo")
    os.makedirs(repository)
    manifests = populate(repository, IMAGE_COUNT, shared_timestamps=9)
    credentials = str(work / "credentials")
    with open(credentials, "w") as handle:
        handle.write("publisher:%s\n" % hash_password(PASSWORD, iterations=1000))
    data = b"published by sdc-clients\n" * 1000
    upload_path = str(work / "upload.file")
    with open(upload_path, "wb") as handle:
        handle.write(data)
    published = synthetic_manifest(IMAGE_COUNT, "2030-01-01T00:00:00.000Z", data)

    with ImageServerStack(repository, work_dir=str(work / "stack"), credentials=credentials) as stack:
        request = {
            "url": stack.url,
            "image_uuid": manifests[17]["uuid"],
            "download_path": str(work / "download.file"),
            "publish": {"user": "publisher", "password": PASSWORD, "manifest": published,
                        "file_path": upload_path, "compression": "none", "new_description": NEW_DESCRIPTION},
        }
        completed = subprocess.run([node, SCRIPT], input=json.dumps(request), capture_output=True, text=True,
                                   cwd=ORACLES, timeout=300, check=False)
        assert completed.returncode == 0, "sdc_clients_check.js exited %d: %s" % (
            completed.returncode, completed.stderr)
        result = json.loads(completed.stdout)
    return {"result": result, "manifests": manifests, "published": published, "data": data}


def test_list_images_pages_through_everything(oracle_result):
    listing = oracle_result["result"]["list"]
    expected = sorted(oracle_result["manifests"], key=lambda m: (m["published_at"], m["uuid"]))

    assert "error" not in listing
    assert listing["count"] == IMAGE_COUNT
    assert listing["unique"] == IMAGE_COUNT
    assert listing["uuids"] == [manifest["uuid"] for manifest in expected]


def test_get_image(oracle_result):
    expected = oracle_result["manifests"][17]

    assert oracle_result["result"]["get"] == {"uuid": expected["uuid"], "name": expected["name"], "state": "active"}


def test_get_image_file_passes_content_md5_check(oracle_result):
    expected = ("image 17\n").encode("ascii")

    assert "error" not in oracle_result["result"]["file"]
    assert oracle_result["result"]["file"]["size"] == len(expected)


def test_publish_with_basic_credentials(oracle_result):
    publish = oracle_result["result"]["publish"]

    assert "error" not in publish, publish
    assert publish["imported"] == "unactivated"
    assert publish["file_sha1"] == hashlib.sha1(oracle_result["data"]).hexdigest()
    assert publish["file_size"] == len(oracle_result["data"])
    assert publish["activated_state"] == "active"
    assert publish["listed"] == "active"


def test_disable_enable_update(oracle_result):
    change = oracle_result["result"]["change"]

    assert "error" not in change, change
    assert change["disabled_state"] == "disabled"
    assert change["listed_when_disabled"] is False
    assert change["enabled_state"] == "active"
    assert change["description"] == NEW_DESCRIPTION
