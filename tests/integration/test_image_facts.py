"""The image_facts module on real pools with real imported images."""

from __future__ import annotations

import os
import subprocess
import uuid as uuidlib

import pytest

from tests.support.module_runner import run_module
from tests.support.pools import Pool, letters

EXTRA_IMAGE_COUNT = 1200


def facts_args(target, **extra):
    args = dict(
        pools=[target.pool.name],
        config_file=target.config_file,
        cache_dir=target.cache_dir,
        connect_timeout=5,
        read_timeout=5,
        retries=1,
    )
    args.update(extra)
    return args


def gather(target, check=False, **extra):
    return run_module("image_facts", facts_args(target, **extra), check=check)


def gathered(target, **extra):
    """Run image_facts and return its facts; fail the test with the module's message when it fails."""
    result = gather(target, **extra)
    assert result["_rc"] == 0, result.get("msg")
    assert not result.get("failed"), result.get("msg")
    return result["ansible_facts"]


def install(target, static_repo, *images, pool=None):
    for image in images:
        args = target.args(uuid=image.uuid, sources=[{"url": static_repo.url}])
        if pool:
            args["pool"] = pool
        result = run_module("image", args)
        assert result["_rc"] == 0, result.get("msg")


def zfs(*arguments):
    subprocess.run(["zfs"] + list(arguments), capture_output=True, text=True, check=True)


def uuids(entries):
    return [entry["manifest"]["uuid"] for entry in entries]


def cache_path(target, uuid, pool=None):
    return os.path.join(target.cache_dir, "%s-%s.json" % (pool or target.pool.name, uuid))


def test_installed_images(target, images, static_repo):
    base, child = images["gzip"], images["child"]
    install(target, static_repo, child)

    facts = gathered(target)
    listed = {entry["manifest"]["uuid"]: entry for entry in facts["smartos_images"]}

    assert uuids(facts["smartos_images"]) == [base.uuid, child.uuid]
    assert listed[base.uuid]["manifest"] == base.manifest
    assert listed[child.uuid]["manifest"] == child.manifest
    assert listed[base.uuid]["zpool"] == target.pool.name
    assert listed[base.uuid]["source"] == static_repo.url
    assert listed[base.uuid]["clones"] == [target.dataset(child.uuid)]
    assert listed[base.uuid]["clone_count"] == 1
    assert listed[child.uuid]["clones"] == []
    assert listed[child.uuid]["clone_count"] == 0
    assert "smartos_images_available" not in facts
    assert "smartos_images_source_errors" not in facts


def test_empty_pool(target):
    facts = gathered(target)

    assert facts["smartos_images"] == []


def test_check_mode_gathers_the_same(target, images, static_repo):
    install(target, static_repo, images["xz"])

    result = gather(target, check=True)

    assert result["_rc"] == 0, result.get("msg")
    assert result["changed"] is False
    assert uuids(result["ansible_facts"]["smartos_images"]) == [images["xz"].uuid]


def test_vm_and_disks_are_clones_not_images(target, images, static_repo):
    base = images["gzip"]
    install(target, static_repo, base)
    vm = str(uuidlib.uuid4())
    kvm = str(uuidlib.uuid4())
    origin = target.dataset(base.uuid) + "@final"
    zfs("clone", origin, target.dataset(vm))
    zfs("clone", origin, target.dataset(vm) + "/disk0")
    zfs("clone", origin, target.dataset(kvm) + "-disk0")

    facts = gathered(target)
    entry = facts["smartos_images"][0]

    assert uuids(facts["smartos_images"]) == [base.uuid]
    assert entry["clones"] == sorted([target.dataset(vm), target.dataset(vm) + "/disk0", target.dataset(kvm) + "-disk0"])
    assert entry["clone_count"] == 3


def test_partial_leftover_not_listed(target, images, static_repo):
    install(target, static_repo, images["gzip"])
    leftover = target.dataset(str(uuidlib.uuid4())) + "-partial"
    zfs("create", leftover)
    zfs("snapshot", leftover + "@final")

    facts = gathered(target)

    assert uuids(facts["smartos_images"]) == [images["gzip"].uuid]


def test_ignore_true_hides_image(target, images, static_repo):
    install(target, static_repo, images["gzip"], images["bzip2"])
    zfs("set", "imgadm:ignore=true", target.dataset(images["bzip2"].uuid))

    facts = gathered(target)

    assert uuids(facts["smartos_images"]) == [images["gzip"].uuid]


def test_ignore_invalid_value_warns_and_lists(target, images, static_repo):
    install(target, static_repo, images["gzip"])
    zfs("set", "imgadm:ignore=sometimes", target.dataset(images["gzip"].uuid))

    result = gather(target)

    assert uuids(result["ansible_facts"]["smartos_images"]) == [images["gzip"].uuid]
    assert any("imgadm:ignore is 'sometimes'" in warning for warning in result["warnings"])


def test_missing_cache_file_still_listed(target, images, static_repo):
    install(target, static_repo, images["gzip"])
    os.unlink(cache_path(target, images["gzip"].uuid))

    result = gather(target)
    entry = result["ansible_facts"]["smartos_images"][0]

    assert entry["manifest"] == {"uuid": images["gzip"].uuid}
    assert entry["source"] is None
    assert entry["zpool"] == target.pool.name
    assert result["warnings"] == []


def test_corrupt_cache_file_warns(target, images, static_repo):
    install(target, static_repo, images["gzip"], images["bzip2"])
    path = cache_path(target, images["gzip"].uuid)
    with open(path, "w") as handle:
        handle.write('{"manifest": {"uuid": "')

    result = gather(target)
    listed = {entry["manifest"]["uuid"]: entry for entry in result["ansible_facts"]["smartos_images"]}

    assert result["_rc"] == 0, result.get("msg")
    assert listed[images["gzip"].uuid]["manifest"] == {"uuid": images["gzip"].uuid}
    assert listed[images["bzip2"].uuid]["manifest"] == images["bzip2"].manifest
    assert len(result["warnings"]) == 1
    assert path in result["warnings"][0]


def test_pool_name_with_digits(target, images, static_repo, tmp_path):
    install(target, static_repo, images["gzip"])
    with Pool("imgd%s2" % letters(os.getpid()), str(tmp_path), size="1G") as digits:
        install(target, static_repo, images["bzip2"], pool=digits.name)

        facts = gathered(target, pools=[target.pool.name, digits.name])

    assert [(entry["manifest"]["uuid"], entry["zpool"]) for entry in facts["smartos_images"]] == [
        (images["gzip"].uuid, target.pool.name), (images["bzip2"].uuid, digits.name)]


def test_every_pool_when_pools_omitted(target, images, static_repo):
    install(target, static_repo, images["none"])
    args = facts_args(target)
    del args["pools"]

    result = run_module("image_facts", args)
    ours = [entry for entry in result["ansible_facts"]["smartos_images"] if entry["zpool"] == target.pool.name]

    assert result["_rc"] == 0, result.get("msg")
    assert uuids(ours) == [images["none"].uuid]


FILTER_CASES = [
    ("exact name", ["name=base-gzip"], ["gzip"]),
    ("substring", ["name=~base"], ["gzip", "bzip2"]),
    ("dictionary", {"name": "child", "version": "2.0.0"}, ["child"]),
    ("boolean", ["public=true", "name=~i"], ["gzip", "bzip2", "child"]),
    ("clone count", ["clones=0"], ["bzip2", "child"]),
    ("nothing", ["name=absent"], []),
]


@pytest.mark.parametrize("filters, expected", [case[1:] for case in FILTER_CASES],
                         ids=[case[0] for case in FILTER_CASES])
def test_filters(target, images, static_repo, filters, expected):
    install(target, static_repo, images["child"], images["bzip2"])

    facts = gathered(target, filters=filters)

    assert uuids(facts["smartos_images"]) == [images[name].uuid for name in expected]


def test_zpool_filter(target, images, static_repo):
    install(target, static_repo, images["gzip"])

    matching = gathered(target, filters=["zpool=" + target.pool.name])
    other = gathered(target, filters=["zpool=zones"])

    assert uuids(matching["smartos_images"]) == [images["gzip"].uuid]
    assert other["smartos_images"] == []


def test_invalid_filter_fails(target):
    result = gather(target, filters=["name"])

    assert result.get("failed") is True
    assert 'invalid filter: "name"' in result["msg"]


def test_available_keeps_working_source_beside_failing_one(target, images, static_repo):
    broken = "http://127.0.0.1:9"

    result = gather(target, available=True, sources=[{"url": broken}, {"url": static_repo.url}])
    facts = result["ansible_facts"]

    assert result["_rc"] == 0, result.get("msg")
    assert sorted(uuids(facts["smartos_images_available"])) == sorted(image.uuid for image in images.values())
    assert {entry["source"] for entry in facts["smartos_images_available"]} == {static_repo.url}
    assert [error["url"] for error in facts["smartos_images_source_errors"]] == [broken]
    assert "cannot connect" in facts["smartos_images_source_errors"][0]["message"]
    assert any(broken in warning for warning in result["warnings"])


def test_available_first_configured_source_wins(target, images, static_repo, fault_server):
    # The first source responds last, so the order of the responses cannot decide.
    fault_server.set_fault(None, "stall", route="list", after=0, seconds=1)
    target.write_config([{"url": fault_server.url}, {"url": static_repo.url}])

    facts = gathered(target, available=True)

    assert {entry["source"] for entry in facts["smartos_images_available"]} == {fault_server.url}
    assert len(facts["smartos_images_available"]) == len(images)
    assert facts["smartos_images_source_errors"] == []


def test_available_filters(target, images, static_repo):
    facts = gathered(target, available=True, sources=[{"url": static_repo.url}], filters=["name=~base"])

    assert sorted(uuids(facts["smartos_images_available"])) == sorted(
        images[name].uuid for name in ("gzip", "bzip2", "xz", "none"))


def test_available_pages_through_every_image(target, images, fault_server):
    extra = []
    for number in range(EXTRA_IMAGE_COUNT):
        manifest = {
            "v": 2,
            "uuid": str(uuidlib.uuid4()),
            "name": "paged",
            "version": "1.0.%d" % number,
            "state": "active",
            # A few images share a published_at, so pages split between equal timestamps.
            "published_at": "2020-01-01T00:%02d:00.000Z" % (number // 50),
            "type": "zone-dataset",
            "os": "smartos",
            "files": [{"sha1": "0" * 40, "size": 1, "compression": "none"}],
        }
        fault_server.add(manifest)
        extra.append(manifest["uuid"])

    facts = gathered(target, available=True, sources=[{"url": fault_server.url}])
    listed = uuids(facts["smartos_images_available"])
    list_requests = [path for method, path, headers in fault_server.requests if path.startswith("/images?")]

    assert len(listed) == EXTRA_IMAGE_COUNT + len(images)
    assert len(set(listed)) == len(listed)
    assert set(listed) == set(extra) | {image.uuid for image in images.values()}
    assert len(list_requests) == 2
    assert "marker=" in list_requests[1]


def test_available_with_filter_pages_too(target, images, fault_server):
    for number in range(EXTRA_IMAGE_COUNT):
        fault_server.add({"v": 2, "uuid": str(uuidlib.uuid4()), "name": "paged", "version": "1.0.%d" % number,
                          "state": "active", "published_at": "2021-01-01T00:00:00.000Z", "os": "smartos",
                          "files": [{"sha1": "0" * 40, "size": 1, "compression": "none"}]})

    facts = gathered(target, available=True, sources=[{"url": fault_server.url}], filters=["name=paged"])

    assert len(facts["smartos_images_available"]) == EXTRA_IMAGE_COUNT


def test_missing_pool_fails(target):
    missing = "nosuch" + letters(os.getpid())

    result = gather(target, pools=[target.pool.name, missing])

    assert result.get("failed") is True
    assert "pool %s given in pools does not exist" % missing in result["msg"]
    assert "zfs list" in result["msg"]
    assert result["missing_pools"] == [missing]
    assert "ansible_facts" not in result


def test_dataset_instead_of_pool_fails(target):
    result = gather(target, pools=[target.pool.name + "/images"])

    assert result.get("failed") is True
    assert "is not a ZFS pool name" in result["msg"]


def test_failing_zfs_fails_task(target, tmp_path):
    # A zfs first on PATH that fails as a broken zfs would; get_bin_path picks it.
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "zfs"
    script.write_text("#!/bin/sh\necho 'internal error: failed to initialize ZFS library' >&2\nexit 1\n")
    script.chmod(0o755)

    result = run_module("image_facts", facts_args(target), path_prefix=str(fake))

    assert result.get("failed") is True
    assert "internal error: failed to initialize ZFS library" in result["msg"]
    assert str(script) in result["msg"]
    assert "ansible_facts" not in result
