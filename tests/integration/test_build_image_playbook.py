"""playbooks/build_image.yml through real ansible-playbook: a dataset on a real pool, built and published.

The write API is the image server as deployed (gunicorn behind nginx, on
loopback); the repository is a plain directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid as uuidlib

import pytest
import requests

from tests.support import imagebuilder, playbooks
from tests.support.image_server_stack import ImageServerStack, write_credentials
from tests.support.playbooks import recap

PLAYBOOK = playbooks.playbook_path("build_image.yml")
USER = "publisher"
PASSWORD = "build-playbook-test-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("build-server")
    repository = str(work / "repo")
    os.makedirs(repository)
    credentials = write_credentials(str(work / "credentials"), USER, PASSWORD)
    with ImageServerStack(repository, work_dir=str(work / "stack"), credentials=credentials) as stack:
        yield stack


@pytest.fixture()
def source_dataset(target):
    return imagebuilder.make_dataset(target.pool.name + "/src", {
        "etc/motd": b"built by build_image.yml\n",
        "opt/payload.bin": imagebuilder.random_payload(64 * 1024, "build-playbook"),
    })


def build_vars(target, dataset, tmp_path, **extra):
    variables = {
        "build_host": "builder",
        "build_dataset": dataset,
        "build_pool": target.pool.name,
        "build_compression": "gzip",
        "build_manifest": {
            "uuid": str(uuidlib.uuid4()),
            "name": "playbook-built",
            "version": "1.0.0",
            "type": "zone-dataset",
            "os": "other",
            "public": True,
        },
        "build_module_defaults": {"cache_dir": target.cache_dir},
        "build_output_dir": str(tmp_path / "output"),
        "build_fetch_dir": str(tmp_path / "fetched"),
    }
    variables.update(extra)
    return variables


def run_build(tmp_path, variables, *options):
    inventory = playbooks.write_inventory(tmp_path, {"image_builder": {"hosts": {"builder": {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
    }}}})
    vars_file = tmp_path / "build-vars.json"
    vars_file.write_text(json.dumps(variables))
    return playbooks.run_playbook(PLAYBOOK, inventory, "-e", "@%s" % vars_file, *options)


def api_vars(server):
    return {"build_api_url": server.url, "build_api_user": USER, "build_api_password": PASSWORD}


def sha1_of(data):
    return hashlib.sha1(data).hexdigest()


def test_api_publish_then_no_change(target, source_dataset, server, tmp_path):
    variables = build_vars(target, source_dataset, tmp_path, **api_vars(server))
    uuid = variables["build_manifest"]["uuid"]

    first = run_build(tmp_path, variables)

    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(first.stdout)["builder"]["changed"] >= 4, first.stdout[-3000:]
    published = requests.get("%s/images/%s" % (server.url, uuid), timeout=30)
    assert published.status_code == 200, published.text
    manifest = published.json()
    assert manifest["state"] == "active"
    assert manifest["name"] == "playbook-built"
    served = requests.get("%s/images/%s/file" % (server.url, uuid), timeout=30)
    assert served.status_code == 200
    assert sha1_of(served.content) == manifest["files"][0]["sha1"]
    with open(os.path.join(variables["build_fetch_dir"], uuid, "file"), "rb") as handle:
        assert sha1_of(handle.read()) == manifest["files"][0]["sha1"]

    second = run_build(tmp_path, variables)

    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    assert recap(second.stdout)["builder"]["changed"] == 0, second.stdout[-3000:]


def test_api_rejects_uuid_with_other_file(target, source_dataset, server, tmp_path):
    variables = build_vars(target, source_dataset, tmp_path, **api_vars(server))
    uuid = variables["build_manifest"]["uuid"]
    first = run_build(tmp_path, variables)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    first_sha1 = requests.get("%s/images/%s" % (server.url, uuid), timeout=30).json()["files"][0]["sha1"]
    mountpoint = imagebuilder.get_property(source_dataset, "mountpoint")
    with open(os.path.join(mountpoint, "etc", "motd"), "wb") as handle:
        handle.write(b"changed after publishing\n")

    second = run_build(tmp_path, variables)

    assert second.returncode != 0
    assert "The image server already has image %s with another file (sha1 %s" % (uuid, first_sha1) in second.stdout
    assert requests.get("%s/images/%s" % (server.url, uuid), timeout=30).json()["files"][0]["sha1"] == first_sha1


def test_api_names_public_mismatch(target, source_dataset, server, tmp_path):
    variables = build_vars(target, source_dataset, tmp_path, **api_vars(server))
    del variables["build_manifest"]["public"]
    uuid = variables["build_manifest"]["uuid"]

    proc = run_build(tmp_path, variables)

    assert proc.returncode != 0
    assert 'failed at "Import the manifest into the image server"' in proc.stdout
    assert "private images (public: false) are not allowed on a public IMGAPI" in proc.stdout
    assert "so set build_manifest.public to match the server" in proc.stdout
    assert requests.get("%s/images/%s" % (server.url, uuid), timeout=30).status_code == 404


def test_repository_quartet(target, source_dataset, tmp_path):
    repository = tmp_path / "repository"
    variables = build_vars(target, source_dataset, tmp_path, build_repository=str(repository))
    uuid = variables["build_manifest"]["uuid"]
    image_dir = repository / "images" / uuid
    results = []

    for options in (["--check"], [], ["--check"], []):
        proc = run_build(tmp_path, variables, *options)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        results.append(recap(proc.stdout)["builder"]["changed"])
        if not results[1:]:
            assert not image_dir.exists()

    assert results == [1, 1, 0, 0]
    manifest = json.loads((image_dir / "manifest.json").read_text())
    assert manifest["uuid"] == uuid
    assert sha1_of((image_dir / "file").read_bytes()) == manifest["files"][0]["sha1"]


def test_variables_checked_before_build(target, source_dataset, tmp_path):
    variables = build_vars(target, source_dataset, tmp_path)
    del variables["build_manifest"]["version"]

    proc = run_build(tmp_path, variables)

    assert proc.returncode != 0
    assert "build_manifest with at least name and version" in proc.stdout
    assert not (tmp_path / "output").exists()
