"""The image module on a real pool, importing from nginx on loopback."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.module_runner import run_module


def ensure(target, check=False, **args):
    return run_module("image", target.args(**args), check=check)


def assert_ok(result):
    assert result["_rc"] == 0, result.get("msg")
    assert not result.get("failed"), result.get("msg")


@pytest.mark.parametrize("name", ["gzip", "bzip2", "xz", "none"])
def test_full_image_quartet(target, images, static_repo, name):
    image = images[name]
    sources = [{"url": static_repo.url}]

    first_check = ensure(target, check=True, uuid=image.uuid, sources=sources)
    assert_ok(first_check)
    assert first_check["changed"] is True
    assert first_check["imported"] == [image.uuid]
    assert first_check["import_plan"][0]["size"] == image.manifest["files"][0]["size"]
    assert target.dataset(image.uuid) not in target.pool.datasets()
    assert target.cache_files() == []

    real = ensure(target, uuid=image.uuid, sources=sources)
    assert_ok(real)
    assert real["changed"] is True
    assert real["imported"] == [image.uuid]
    assert real["image"]["uuid"] == image.uuid
    assert real["diff"]["after"]["images"] == ["%s (base-%s@1.0.0)" % (image.uuid, name)]

    second_check = ensure(target, check=True, uuid=image.uuid, sources=sources)
    assert_ok(second_check)
    assert second_check["changed"] is False
    assert second_check["imported"] == []

    second_real = ensure(target, uuid=image.uuid, sources=sources)
    assert_ok(second_real)
    assert second_real["changed"] is False
    assert second_real["image"]["name"] == "base-" + name

    assert target.snapshots(image.uuid) == ["final"]
    assert target.read_files(image.uuid, images.files[name]) == images.files[name]
    assert target.leftovers() == []
    cache_path = os.path.join(target.cache_dir, "%s-%s.json" % (target.pool.name, image.uuid))
    with open(cache_path) as handle:
        cached = json.load(handle)
    assert cached["manifest"]["uuid"] == image.uuid
    assert cached["zpool"] == target.pool.name
    assert cached["source"] == static_repo.url


def test_incremental_image_quartet(target, images, static_repo):
    child, base = images["child"], images["gzip"]
    sources = [{"url": static_repo.url}]

    first_check = ensure(target, check=True, uuid=child.uuid, sources=sources)
    assert_ok(first_check)
    assert first_check["changed"] is True
    assert first_check["imported"] == [base.uuid, child.uuid]

    real = ensure(target, uuid=child.uuid, sources=sources)
    assert_ok(real)
    assert real["changed"] is True
    assert real["imported"] == [base.uuid, child.uuid]

    second_check = ensure(target, check=True, uuid=child.uuid, sources=sources)
    assert second_check["changed"] is False

    second_real = ensure(target, uuid=child.uuid, sources=sources)
    assert second_real["changed"] is False

    assert target.snapshots(child.uuid) == ["final"]
    assert target.origin(child.uuid) == target.dataset(base.uuid) + "@final"
    assert target.read_files(child.uuid, images.files["child"]) == images.files["child"]
    assert target.read_files(base.uuid, images.files["gzip"]) == images.files["gzip"]


def test_origin_already_installed_imports_child_only(target, images, static_repo):
    sources = [{"url": static_repo.url}]
    assert_ok(ensure(target, uuid=images["gzip"].uuid, sources=sources))

    result = ensure(target, uuid=images["child"].uuid, sources=sources)

    assert_ok(result)
    assert result["imported"] == [images["child"].uuid]


def test_configured_sources_are_used(target, images, static_repo):
    target.write_config([{"url": static_repo.url + "/", "type": "imgapi"}])

    result = ensure(target, uuid=images["xz"].uuid)

    assert_ok(result)
    assert result["imported"] == [images["xz"].uuid]


def test_select_by_name_and_version(target, images, static_repo):
    sources = [{"url": static_repo.url}]

    result = ensure(target, name="base-bzip2", version="1.0.0", sources=sources)
    again = ensure(target, name="base-bzip2", version="1.0.0", sources=[{"url": "http://127.0.0.1:9"}])

    assert_ok(result)
    assert result["imported"] == [images["bzip2"].uuid]
    assert_ok(again)
    assert again["changed"] is False


def test_select_newest_by_name(target, images, static_repo):
    result = ensure(target, check=True, name="child", sources=[{"url": static_repo.url}])

    assert_ok(result)
    assert result["image"]["uuid"] == images["child"].uuid


def test_several_images_in_one_task(target, images, static_repo):
    wanted = [{"uuid": images["child"].uuid}, {"uuid": images["gzip"].uuid}, {"name": "base-none"}]

    result = ensure(target, images=wanted, sources=[{"url": static_repo.url}])

    assert_ok(result)
    assert result["imported"] == [images["gzip"].uuid, images["child"].uuid, images["none"].uuid]
    assert [m["uuid"] for m in result["images"]] == [images["child"].uuid, images["gzip"].uuid, images["none"].uuid]


def test_install_from_local_files(target, images):
    image = images["bzip2"]

    check = ensure(target, check=True, manifest=image.manifest_path, file=image.file_path)
    real = ensure(target, manifest=image.manifest_path, file=image.file_path)
    again = ensure(target, manifest=image.manifest_path, file=image.file_path)

    assert_ok(check)
    assert check["changed"] is True
    assert real["imported"] == [image.uuid]
    assert again["changed"] is False
    assert target.read_files(image.uuid, images.files["bzip2"]) == images.files["bzip2"]


def test_absent_quartet(target, images, static_repo):
    image = images["none"]
    assert_ok(ensure(target, uuid=image.uuid, sources=[{"url": static_repo.url}]))

    check = ensure(target, check=True, uuid=image.uuid, state="absent")
    real = ensure(target, uuid=image.uuid, state="absent")
    check_again = ensure(target, check=True, uuid=image.uuid, state="absent")
    real_again = ensure(target, uuid=image.uuid, state="absent")

    for result in (check, real, check_again, real_again):
        assert_ok(result)

    assert check["changed"] is True
    assert check["removed"] == [image.uuid]
    assert real["changed"] is True
    assert check_again["changed"] is False
    assert real_again["changed"] is False
    assert target.dataset(image.uuid) not in target.pool.datasets()
    assert target.cache_files() == []


def test_absent_refuses_image_with_clones(target, images, static_repo):
    assert_ok(ensure(target, uuid=images["child"].uuid, sources=[{"url": static_repo.url}]))

    result = ensure(target, uuid=images["gzip"].uuid, state="absent")

    assert result["failed"] is True
    assert target.dataset(images["child"].uuid) in result["msg"]
    assert target.dataset(images["gzip"].uuid) in target.pool.datasets()


def test_exclusive_quartet(target, images, static_repo):
    child, base, bzip2, xz, none = (images[name] for name in ("child", "gzip", "bzip2", "xz", "none"))
    sources = [{"url": static_repo.url}]
    for image in (child, bzip2, xz, none):
        assert_ok(ensure(target, uuid=image.uuid, sources=sources))
    # A VM made from the xz image keeps it on the pool.
    vm = target.pool.name + "/7d1a4ab6-7a8b-4c56-9e7f-0123456789ab"
    subprocess.run(["zfs", "clone", target.dataset(xz.uuid) + "@final", vm], check=True)
    args = dict(uuid=child.uuid, sources=sources, exclusive=True)

    check = ensure(target, check=True, **args)
    real = ensure(target, **args)
    check_again = ensure(target, check=True, **args)
    real_again = ensure(target, **args)

    for result in (check, real, check_again, real_again):
        assert_ok(result)
    assert check["changed"] is True
    assert sorted(check["removed"]) == sorted([bzip2.uuid, none.uuid])
    assert "Would remove image %s (base-none@1.0.0), which was not requested" % none.uuid in check["actions"]
    # base-gzip, child's origin, is needed, so it is not among the others kept.
    assert check["kept"] == [{"uuid": xz.uuid, "reason": "datasets are cloned from it: %s" % vm}]
    assert sorted(check["diff"]["before"]["images"]) == sorted([
        "%s (base-bzip2@1.0.0)" % bzip2.uuid, "%s (base-none@1.0.0)" % none.uuid])
    assert real["changed"] is True
    assert sorted(real["removed"]) == sorted([bzip2.uuid, none.uuid])
    assert check_again["changed"] is False
    assert real_again["changed"] is False
    assert real_again["removed"] == []
    datasets = target.pool.datasets()
    for image in (child, base, xz):
        assert target.dataset(image.uuid) in datasets
    for image in (bzip2, none):
        assert target.dataset(image.uuid) not in datasets
    assert target.cache_files() == sorted("%s-%s.json" % (target.pool.name, image.uuid) for image in (child, base, xz))


def test_exclusive_refuses_state_absent(target, images):
    result = ensure(target, uuid=images["none"].uuid, state="absent", exclusive=True)

    assert result["failed"] is True
    assert "exclusive only applies to state=present" in result["msg"]


def test_exclusive_keeps_origin_of_image_to_import(target, images, static_repo):
    child, base, bzip2 = images["child"], images["gzip"], images["bzip2"]
    sources = [{"url": static_repo.url}]
    for image in (base, bzip2):
        assert_ok(ensure(target, uuid=image.uuid, sources=sources))

    check = ensure(target, check=True, uuid=child.uuid, sources=sources, exclusive=True)
    real = ensure(target, uuid=child.uuid, sources=sources, exclusive=True)

    for result in (check, real):
        assert_ok(result)
        assert result["imported"] == [child.uuid]
        assert result["removed"] == [bzip2.uuid]
    datasets = target.pool.datasets()
    assert target.dataset(base.uuid) in datasets
    assert target.dataset(child.uuid) in datasets
    assert target.dataset(bzip2.uuid) not in datasets
