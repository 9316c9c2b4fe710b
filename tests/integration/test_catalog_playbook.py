"""The image_catalog lookup through real ansible-playbook, resolving an image once for several hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse

from tests.support.fault_server import FaultServer
from tests.support.module_runner import COLLECTIONS, ROOT

NAME = "base-64-lts"


def make_manifest(number, name, version, published_at):
    return {
        "v": 2,
        "uuid": "00000000-0000-4000-8000-%012d" % number,
        "owner": "00000000-0000-0000-0000-000000000000",
        "name": name,
        "version": version,
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": published_at,
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": "0" * 40, "size": 1024, "compression": "gzip"}],
    }


CATALOG = [
    make_manifest(1, NAME, "24.4.0", "2025-01-08T00:00:00Z"),
    make_manifest(2, NAME, "24.4.1", "2025-03-01T00:00:00Z"),
    make_manifest(3, NAME, "23.4.0", "2024-01-10T00:00:00Z"),
    make_manifest(4, "minimal-64-lts", "24.4.2", "2025-04-01T00:00:00Z"),
]
NEWEST_UUID = CATALOG[1]["uuid"]


def test_catalog_resolved_once(tmp_path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[fleet]\nnode1 ansible_connection=local\nnode2 ansible_connection=local\n"
                         "node3 ansible_connection=local\n")
    env = {name: value for name, value in os.environ.items() if name.lower() not in ("http_proxy", "https_proxy")}
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    playbook = os.path.join(ROOT, "tests", "integration", "playbooks", "catalog_resolve_once.yml")
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

    with FaultServer() as server:
        for manifest in CATALOG:
            server.add(manifest)
        extra = {"test_source": server.url, "test_name": NAME, "test_expected_uuid": NEWEST_UUID}
        vars_file = tmp_path / "vars.json"
        vars_file.write_text(json.dumps(extra))
        proc = subprocess.run([ansible_playbook, "-i", str(inventory), playbook, "-e", "@%s" % vars_file],
                              env=env, capture_output=True, text=True, check=False)
        listings = [path for _method, path, _headers in server.requests
                    if urllib.parse.urlsplit(path).path == "/images"]

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout
    # Two assert tasks on each of the three hosts.
    assert proc.stdout.count("All assertions passed") == 6, proc.stdout[-4000:]
    # One listing for the run_once task and one for the localhost play.
    assert len(listings) == 2
