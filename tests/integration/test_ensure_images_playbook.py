"""playbooks/ensure_images.yml through real ansible-playbook, on local hosts with real pools and nginx."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from tests.support import playbooks
from tests.support.playbooks import recap, task_messages
from tests.support.pools import Pool, letters

PLAYBOOK = playbooks.playbook_path("ensure_images.yml")

_extra_pool_numbers = itertools.count()


class ExtraHost:
    """A second pool and state directories, for tests with two hosts."""

    def __init__(self, pool, root):
        self.pool = pool
        self.root = root
        self.config_file = os.path.join(root, "imgadm.conf")
        self.download_dir = os.path.join(root, "downloads")

    def args(self):
        return dict(
            pool=self.pool.name,
            config_file=self.config_file,
            cache_dir=os.path.join(self.root, "cache"),
            download_dir=self.download_dir,
            lock_dir=os.path.join(self.root, "locks"),
            connect_timeout=5,
            read_timeout=5,
            retries=1,
        )


@pytest.fixture()
def second_target(zfs_ready, tmp_path):
    root = tmp_path / "second"
    root.mkdir()
    name = "imgfleet%sx%s" % (letters(os.getpid()), letters(next(_extra_pool_numbers)))
    pool = Pool(name, str(root), size="1G").create()
    yield ExtraHost(pool, str(root))
    pool.destroy()


def host_entry(target_args):
    """Return the inventory variables that point one local host at a test pool and its state directories."""
    args = dict(target_args)
    pool = args.pop("pool")
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "images_pool": pool,
        "images_module_defaults": args,
    }


def write_inventory(tmp_path, hosts, group_vars):
    return playbooks.write_inventory(tmp_path, {"smartos_hosts": {"hosts": hosts, "vars": group_vars}})


def run_playbook(inventory, *options):
    return playbooks.run_playbook(PLAYBOOK, inventory, *options)


def table_rows(stdout):
    """Return the rows of the final table of images, split into columns, without the header."""
    tables = task_messages(stdout, "Show the images each host has, and in check mode what each would import")
    assert tables, "no table of images in the output:\n" + stdout[-4000:]
    header, *rows = tables[0]
    assert header.split() == ["HOST", "UUID", "NAME", "VERSION", "ORIGIN", "CLONES"]
    return [row.split() for row in rows]


def image_datasets(pool_name):
    out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "filesystem", "-r", pool_name],
                         capture_output=True, text=True, check=True).stdout.split()
    return sorted(name.split("/", 1)[1] for name in out if "/" in name)


def catalog_listings(static_repo, offset):
    """Return the image listings (GET /images?...) that nginx logged after byte ``offset`` of its access log."""
    with open(os.path.join(static_repo.prefix, "access.log")) as handle:
        handle.seek(offset)
        return [line for line in handle if '"GET /images?' in line]


def access_log_size(static_repo):
    path = os.path.join(static_repo.prefix, "access.log")
    return os.path.getsize(path) if os.path.exists(path) else 0


def test_imports_then_changes_nothing(target, images, static_repo, tmp_path):
    child, base = images["child"], images["gzip"]
    inventory = write_inventory(tmp_path, {"node": host_entry(target.args())}, {
        "images_sources": [{"url": static_repo.url}],
        "images_manage_sources": True,
        "images_ensure": [{"uuid": child.uuid}, {"name": "base-bzip2", "version": "1.0.0"}],
    })

    first = run_playbook(inventory)

    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(first.stdout)["node"]["changed"] == 2, first.stdout[-3000:]
    assert image_datasets(target.pool.name) == sorted([base.uuid, child.uuid, images["bzip2"].uuid])
    with open(target.config_file) as handle:
        assert [source["url"] for source in json.load(handle)["sources"]] == [static_repo.url]
    rows = table_rows(first.stdout)
    assert ["node", child.uuid, "child", "2.0.0", "base-gzip@1.0.0", "0"] in rows
    assert ["node", base.uuid, "base-gzip", "1.0.0", "-", "1"] in rows
    assert len(rows) == 3

    second = run_playbook(inventory)

    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    assert recap(second.stdout)["node"]["changed"] == 0, second.stdout[-3000:]
    assert task_messages(second.stdout, "Report what the host imported, or in check mode would import") == [
        ["all declared images are present"]]
    assert table_rows(second.stdout) == rows

    check = run_playbook(inventory, "--check")

    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    tables = task_messages(check.stdout, "Show the images each host has, and in check mode what each would import")
    assert len(tables) == 2
    assert tables[1] == ["no host would import an image"]
    assert table_rows(check.stdout) == rows


def test_check_mode_shows_plan_only(target, images, static_repo, tmp_path):
    child, base = images["child"], images["gzip"]
    inventory = write_inventory(tmp_path, {"node": host_entry(target.args())}, {
        "images_sources": [{"url": static_repo.url}],
        "images_manage_sources": True,
        "images_ensure": [{"name": "child", "version": "2.0.0"}],
    })

    proc = run_playbook(inventory, "--check")

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    reports = task_messages(proc.stdout, "Report what the host imported, or in check mode would import")
    assert reports == [[
        "Would import %s (base-gzip 1.0.0), %d bytes, from %s" % (base.uuid, base.manifest["files"][0]["size"],
                                                                  static_repo.url),
        "Would import %s (child 2.0.0), %d bytes, from %s" % (child.uuid, child.manifest["files"][0]["size"],
                                                              static_repo.url),
    ]]
    tables = task_messages(proc.stdout, "Show the images each host has, and in check mode what each would import")
    assert len(tables) == 2
    assert [row.split()[:4] for row in tables[1][1:]] == [
        ["node", base.uuid, "base-gzip", "1.0.0"],
        ["node", child.uuid, "child", "2.0.0"],
    ]
    assert table_rows(proc.stdout) == [["node", "-", "-", "-", "-", "-"]]
    assert image_datasets(target.pool.name) == []
    assert not os.path.exists(target.config_file)
    assert target.download_files() == []


def test_name_resolved_once_for_all_hosts(target, second_target, images, static_repo, tmp_path):
    sibling = images["sibling"]
    inventory = write_inventory(tmp_path, {
        "first": host_entry(target.args()),
        "second": host_entry(second_target.args()),
    }, {
        "images_sources": [{"url": static_repo.url}],
        "images_ensure": [{"name": "sibling"}],
    })
    log_offset = access_log_size(static_repo)

    proc = run_playbook(inventory)

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # One catalog listing for the whole run: the hosts import by UUID.
    assert len(catalog_listings(static_repo, log_offset)) == 1
    assert task_messages(proc.stdout, "Show the image each name resolved to") == [
        ["sibling (newest) is %s (sibling 1.0.0) from %s" % (sibling.uuid, static_repo.url)]]
    assert sibling.uuid in image_datasets(target.pool.name)
    assert sibling.uuid in image_datasets(second_target.pool.name)
    rows = table_rows(proc.stdout)
    assert ["first", sibling.uuid, "sibling", "1.0.0", "base-gzip@1.0.0", "0"] in rows
    assert ["second", sibling.uuid, "sibling", "1.0.0", "base-gzip@1.0.0", "0"] in rows


def test_failed_host_named_in_report(target, images, static_repo, tmp_path):
    missing_pool = "imgmissing" + letters(os.getpid())
    bad_args = dict(target.args(), pool=missing_pool)
    inventory = write_inventory(tmp_path, {
        "bad": host_entry(bad_args),
        "good": host_entry(target.args()),
    }, {
        "images_sources": [{"url": static_repo.url}],
        "images_ensure": [{"uuid": images["none"].uuid}],
    })

    proc = run_playbook(inventory)

    assert proc.returncode == 2, proc.stdout[-4000:] + proc.stderr[-2000:]
    counters = recap(proc.stdout)
    assert counters["bad"]["failed"] == 1
    assert counters["good"]["failed"] == 0
    assert image_datasets(target.pool.name) == [images["none"].uuid]
    failed = task_messages(proc.stdout, "List the hosts that failed")
    assert len(failed) == 1
    assert len(failed[0]) == 1
    assert failed[0][0].startswith("bad: Import the missing images, at most images_parallel_imports hosts at a time: ")
    assert "pool %s does not exist" % missing_pool in failed[0][0]
    assert [row[0] for row in table_rows(proc.stdout)] == ["good"]


def test_exclusive_removes_undeclared(target, images, static_repo, tmp_path):
    child, base, bzip2 = images["child"], images["gzip"], images["bzip2"]
    inventory = write_inventory(tmp_path, {"node": host_entry(target.args())}, {
        "images_sources": [{"url": static_repo.url}],
        "images_ensure": [{"uuid": child.uuid}, {"uuid": bzip2.uuid}],
    })
    assert run_playbook(inventory).returncode == 0
    inventory = write_inventory(tmp_path, {"node": host_entry(target.args())}, {
        "images_sources": [{"url": static_repo.url}],
        "images_ensure": [{"uuid": child.uuid}],
        "images_exclusive": True,
    })

    check = run_playbook(inventory, "--check")
    real = run_playbook(inventory)

    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    assert task_messages(check.stdout, "Report what the host imported, or in check mode would import") == [
        ["Would remove image %s (base-bzip2@1.0.0), which was not requested" % bzip2.uuid]]
    assert real.returncode == 0, real.stdout[-4000:] + real.stderr[-2000:]
    assert recap(real.stdout)["node"]["changed"] == 1
    assert image_datasets(target.pool.name) == sorted([base.uuid, child.uuid])
    assert sorted(row[1] for row in table_rows(real.stdout)) == sorted([base.uuid, child.uuid])
