"""Faults during import: each fails clearly and leaves nothing half-done."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import time
import uuid as uuidlib

import pytest

from tests.support import imagebuilder
from tests.support.module_runner import finish_module, run_module, stand_in, start_module


def ensure(target, server, check=False, **args):
    args.setdefault("sources", [{"url": server.url}])
    return run_module("image", target.args(**args), check=check)


def assert_clean_failure(target, result, uuid, *fragments):
    assert result["_rc"] != 0
    assert result["failed"] is True
    for fragment in fragments:
        assert fragment in result["msg"]
    assert target.partial_datasets() == []
    assert target.dataset(uuid) not in target.pool.datasets()
    assert target.cache_files() == []


def variant(server, image, **changes):
    """Serve a copy of ``image``'s manifest under a new UUID, with ``changes`` applied."""
    manifest = copy.deepcopy(image.manifest)
    manifest["uuid"] = str(uuidlib.uuid4())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    server.add(manifest, image.file_path)
    return manifest


def test_sha1_mismatch(target, images, fault_server):
    image = images["gzip"]
    fault_server.set_fault(image.uuid, "corrupt", offset=5000, count=5)

    result = ensure(target, fault_server, uuid=image.uuid)

    assert_clean_failure(target, result, image.uuid, "sha1 mismatch", image.manifest["files"][0]["sha1"])
    assert target.download_files() == []


def test_truncated_body_every_time(target, images, fault_server):
    image = images["gzip"]
    fault_server.set_fault(image.uuid, "truncate", after=100000)

    result = ensure(target, fault_server, uuid=image.uuid)

    assert_clean_failure(target, result, image.uuid, "failed after 2 attempts", "kept and the next run resumes it")


def test_truncated_once_resumes_with_range(target, images, fault_server):
    image = images["bzip2"]
    fault_server.set_fault(image.uuid, "fail_times", times=1, after=150000)

    result = ensure(target, fault_server, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert result["imported"] == [image.uuid]
    ranges = [h.get("range") for m, p, h in fault_server.requests if p.endswith("/file")]
    assert ranges == [None, "bytes=150000-"]
    assert target.read_files(image.uuid, images.files["bzip2"]) == images.files["bzip2"]
    assert target.download_files() == []


def test_server_without_range_restarts(target, images, fault_server):
    image = images["xz"]
    fault_server.set_fault(image.uuid, "fail_times", times=1, after=70000)
    fault_server.set_fault(image.uuid, "no_range")

    result = ensure(target, fault_server, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert target.read_files(image.uuid, images.files["xz"]) == images.files["xz"]


def test_wrong_content_length(target, images, fault_server):
    image = images["none"]
    fault_server.set_fault(image.uuid, "wrong_length", delta=7)

    result = ensure(target, fault_server, uuid=image.uuid)

    assert_clean_failure(target, result, image.uuid, "Content-Length %d" % (image.manifest["files"][0]["size"] + 7))


def test_stalled_server_times_out(target, images, fault_server):
    image = images["gzip"]
    fault_server.set_fault(image.uuid, "stall", after=20000, seconds=60)

    started = time.monotonic()
    result = ensure(target, fault_server, uuid=image.uuid, read_timeout=1, retries=1)
    elapsed = time.monotonic() - started

    assert_clean_failure(target, result, image.uuid, "timed out")
    assert elapsed < 30


def test_first_source_down_second_serves(target, images, fault_server, static_repo):
    image = images["xz"]
    sources = [{"url": "http://127.0.0.1:9"}, {"url": static_repo.url}]

    result = ensure(target, fault_server, uuid=image.uuid, sources=sources)

    assert result["_rc"] == 0, result.get("msg")
    assert result["imported"] == [image.uuid]
    assert any("127.0.0.1:9" in warning for warning in result.get("warnings", []))


def test_first_source_erroring_second_serves(target, images, fault_server, static_repo):
    image = images["none"]
    fault_server.set_fault(None, "status", code=503)

    result = ensure(target, fault_server, uuid=image.uuid,
                    sources=[{"url": fault_server.url}, {"url": static_repo.url}])

    assert result["_rc"] == 0, result.get("msg")
    assert result["imported"] == [image.uuid]


def test_no_source_has_image(target, images, fault_server):
    missing = str(uuidlib.uuid4())

    result = ensure(target, fault_server, uuid=missing,
                    sources=[{"url": "http://127.0.0.1:9"}, {"url": fault_server.url}])

    assert_clean_failure(target, result, missing, missing, "was not found in any source", "127.0.0.1:9", "not found")


def test_invalid_uuid(target, fault_server):
    result = ensure(target, fault_server, uuid="NOT-A-UUID")

    assert result["failed"] is True
    assert "'NOT-A-UUID' is not a lower-case UUID" in result["msg"]


def test_missing_pool(target, images, fault_server):
    result = ensure(target, fault_server, uuid=images["gzip"].uuid, pool="nosuchpool")

    assert result["failed"] is True
    assert "pool nosuchpool does not exist" in result["msg"]


def test_image_without_files(target, images, fault_server):
    manifest = variant(fault_server, images["gzip"], files=None)

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert_clean_failure(target, result, manifest["uuid"], "has no files")


def test_unknown_compression(target, images, fault_server):
    files = [dict(images["gzip"].manifest["files"][0], compression="zstd")]
    manifest = variant(fault_server, images["gzip"], files=files)

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert_clean_failure(target, result, manifest["uuid"], "zstd")


def test_file_with_wrong_compression(target, images, fault_server):
    files = [dict(images["none"].manifest["files"][0], compression="gzip")]
    manifest = variant(fault_server, images["none"], files=files)

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert_clean_failure(target, result, manifest["uuid"], "not valid gzip data", "does not match the manifest's compression")


def test_compressed_file_declared_uncompressed(target, images, fault_server):
    files = [dict(images["gzip"].manifest["files"][0], compression="none")]
    manifest = variant(fault_server, images["gzip"], files=files)

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert_clean_failure(target, result, manifest["uuid"], "zfs receive -u", "invalid stream")


def test_full_pool(target, images, fault_server):
    available = int(subprocess.run(["zfs", "get", "-H", "-p", "-o", "value", "available", target.pool.name],
                                   capture_output=True, text=True, check=True).stdout)
    subprocess.run(["zfs", "create", "-o", "reservation=%d" % (available - 256 * 1024),
                    target.pool.name + "/filler"], check=True)
    image = images["none"]

    result = ensure(target, fault_server, uuid=image.uuid)

    assert_clean_failure(target, result, image.uuid, "space")


@pytest.fixture(scope="module")
def large_image(build_pool, tmp_path_factory):
    """An uncompressed image of about 12 MiB: more than the pipe and the queue of the receive hold."""
    dataset = imagebuilder.make_dataset(build_pool.name + "/large", {
        "opt/large.bin": imagebuilder.random_payload(12 * 1024 * 1024, "large-image"),
    })
    return imagebuilder.build_image(dataset=dataset, out_dir=str(tmp_path_factory.mktemp("large")), name="large",
                                    version="1.0.0", compression="none")


@pytest.mark.parametrize("size, problem", [
    # A small file fits in the pipe and the queue, so only the exit is late.
    ("small", "did not exit within 1 s of the last data"),
    ("large", "read no data for 1 s"),
])
def test_hung_receive_is_stopped(target, images, large_image, fault_server, tmp_path, size, problem):
    image = images["gzip"] if size == "small" else large_image
    fault_server.add(image.manifest, image.file_path)
    # A zfs receive that never reads, as on a hung ZFS; the other zfs
    # commands are the real ones.
    hung_zfs = stand_in(str(tmp_path / "bin"), "zfs",
                        'if [ "$1" = receive ]; then exec sleep 600; fi\nexec %s "$@"\n' % shutil.which("zfs"))
    started = time.monotonic()

    result = run_module("image", target.args(uuid=image.uuid, sources=[{"url": fault_server.url}],
                                             receive_timeout=1), path_prefix=hung_zfs)

    assert_clean_failure(target, result, image.uuid, problem, "(receive_timeout), so it was stopped")
    assert time.monotonic() - started < 60
    assert "sleep 600" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert ensure(target, fault_server, uuid=image.uuid)["changed"] is True
    assert target.snapshots(image.uuid) == ["final"]


def test_receive_timeout_must_be_positive(target, images, fault_server):
    result = ensure(target, fault_server, uuid=images["gzip"].uuid, receive_timeout=0)

    assert result["_rc"] != 0
    assert "receive_timeout is 0.0; give a number of seconds above 0" in result["msg"]


def test_corrupt_cache_file_is_a_warning(target, images, fault_server):
    image = images["gzip"]
    assert ensure(target, fault_server, uuid=image.uuid)["_rc"] == 0
    cache_path = os.path.join(target.cache_dir, "%s-%s.json" % (target.pool.name, image.uuid))
    with open(cache_path, "w") as handle:
        handle.write('{"manifest": {"uuid": ')

    result = ensure(target, fault_server, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert result["changed"] is False
    assert result["image"] == {"uuid": image.uuid}
    assert any("unreadable" in warning and cache_path in warning for warning in result["warnings"])


def test_stale_cache_and_partial_dataset_are_cleaned(target, images, fault_server):
    image = images["gzip"]
    os.makedirs(target.cache_dir)
    cache_path = os.path.join(target.cache_dir, "%s-%s.json" % (target.pool.name, image.uuid))
    with open(cache_path, "w") as handle:
        handle.write("garbage")
    subprocess.run(["zfs", "create", target.dataset(image.uuid) + "-partial"], check=True)

    result = ensure(target, fault_server, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert target.partial_datasets() == []
    assert any("left over by an interrupted import" in warning for warning in result["warnings"])


def test_corrupt_earlier_download_is_replaced(target, images, fault_server):
    image = images["gzip"]
    os.makedirs(target.download_dir)
    with open(os.path.join(target.download_dir, image.uuid + ".file"), "wb") as handle:
        handle.write(b"x" * image.manifest["files"][0]["size"])

    result = ensure(target, fault_server, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert any("discarded the earlier download" in warning for warning in result["warnings"])
    assert target.download_files() == []


def test_verified_earlier_download_is_reused(target, images, fault_server):
    image = images["xz"]
    os.makedirs(target.download_dir)
    with open(image.file_path, "rb") as source, open(os.path.join(target.download_dir, image.uuid + ".file"), "wb") as out:
        out.write(source.read())
    fault_server.set_fault(image.uuid, "status", code=500, route="file")

    result = ensure(target, fault_server, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert not [p for m, p, h in fault_server.requests if p.endswith("/file")]


def test_corrupt_config_file(target, images):
    with open(target.config_file, "w") as handle:
        handle.write('{"sources": [')

    result = run_module("image", target.args(uuid=images["gzip"].uuid))

    assert result["failed"] is True
    assert target.config_file in result["msg"]
    assert "not valid JSON" in result["msg"]
    with open(target.config_file) as handle:
        assert handle.read() == '{"sources": ['


def test_killed_import_then_next_run_succeeds(target, images, fault_server):
    image = images["gzip"]
    fault_server.set_fault(image.uuid, "stall", after=200000, seconds=120)
    proc = start_module("image", target.args(uuid=image.uuid, sources=[{"url": fault_server.url}], read_timeout=120))
    partial_file = os.path.join(target.download_dir, image.uuid + ".file.partial")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (os.path.exists(partial_file) and os.path.getsize(partial_file) >= 200000):
        time.sleep(0.1)

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = os.path.getsize(partial_file)
    assert kept == 200000
    fault_server.clear_faults()
    fault_server.clear_requests()

    result = ensure(target, fault_server, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert result["imported"] == [image.uuid]
    assert [h.get("range") for m, p, h in fault_server.requests if p.endswith("/file")] == ["bytes=%d-" % kept]
    assert target.partial_datasets() == []
    assert target.download_files() == []
    assert target.read_files(image.uuid, images.files["gzip"]) == images.files["gzip"]


def test_three_concurrent_imports_of_one_image(target, images, fault_server):
    image = images["child"]
    fault_server.set_fault(images["gzip"].uuid, "stall", after=0, seconds=2)
    args = target.args(uuid=image.uuid, sources=[{"url": fault_server.url}])

    procs = [start_module("image", args) for _unused in range(3)]
    results = [finish_module(proc) for proc in procs]

    for result in results:
        assert result["_rc"] == 0, result.get("msg")
    assert sorted(len(r["imported"]) for r in results) == [0, 0, 2]
    assert target.snapshots(image.uuid) == ["final"]
    assert target.partial_datasets() == []


def test_concurrent_imports_sharing_an_origin(target, images, fault_server):
    base = images["gzip"]
    fault_server.set_fault(base.uuid, "stall", after=0, seconds=2)
    first = start_module("image", target.args(uuid=images["child"].uuid, sources=[{"url": fault_server.url}]))
    second = start_module("image", target.args(uuid=images["sibling"].uuid, sources=[{"url": fault_server.url}]))

    results = [finish_module(first), finish_module(second)]

    for result in results:
        assert result["_rc"] == 0, result.get("msg")
    assert sorted(u for r in results for u in r["imported"]).count(base.uuid) == 1
    assert target.origin(images["child"].uuid) == target.dataset(base.uuid) + "@final"
    assert target.origin(images["sibling"].uuid) == target.dataset(base.uuid) + "@final"
    assert target.read_files(base.uuid, images.files["gzip"]) == images.files["gzip"]


def test_check_mode_downloads_nothing(target, images, fault_server):
    image = images["child"]

    result = ensure(target, fault_server, check=True, uuid=image.uuid)

    assert result["_rc"] == 0, result.get("msg")
    assert [step["uuid"] for step in result["import_plan"]] == [images["gzip"].uuid, image.uuid]
    assert [step["size"] for step in result["import_plan"]] == [
        images["gzip"].manifest["files"][0]["size"], image.manifest["files"][0]["size"]]
    assert not [p for m, p, h in fault_server.requests if p.endswith("/file")]
    assert target.leftovers() == []


def test_import_from_dsapi_source(target, images, fault_server):
    image = images["child"]

    result = ensure(target, fault_server, uuid=image.uuid,
                    sources=[{"url": fault_server.url + "/datasets", "type": "dsapi"}])

    assert result["_rc"] == 0, result.get("msg")
    assert result["imported"] == [images["gzip"].uuid, image.uuid]
    assert [p for m, p, h in fault_server.requests if p.startswith("/images")] == []
    assert target.read_files(image.uuid, images.files["child"]) == images.files["child"]


def test_content_md5_checked_without_sha1(target, images, fault_server):
    files = [{k: v for k, v in images["none"].manifest["files"][0].items() if k != "sha1"}]
    manifest = variant(fault_server, images["none"], files=files)
    fault_server.set_fault(manifest["uuid"], "corrupt", offset=1000, count=3)

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert_clean_failure(target, result, manifest["uuid"], "Content-MD5 mismatch")


def test_content_md5_match_without_sha1(target, images, fault_server):
    files = [{k: v for k, v in images["xz"].manifest["files"][0].items() if k != "sha1"}]
    manifest = variant(fault_server, images["xz"], files=files)

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert result["_rc"] == 0, result.get("msg")
    assert result["imported"] == [manifest["uuid"]]


def test_origin_missing_from_source(target, images, fault_server):
    manifest = variant(fault_server, images["child"], origin=str(uuidlib.uuid4()))

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert_clean_failure(target, result, manifest["uuid"], "origin %s" % manifest["origin"], "was not found in source")


def test_inactive_image_not_imported(target, images, fault_server):
    manifest = variant(fault_server, images["gzip"], state="disabled", disabled=True)

    result = ensure(target, fault_server, uuid=manifest["uuid"])

    assert_clean_failure(target, result, manifest["uuid"], "state is disabled, not active")


def fake_sysinfo(tmp_path, version, stamp):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sysinfo"
    script.write_text('#!/bin/sh\necho \'{"SDC Version": "%s", "Live Image": "%s"}\'\n' % (version, stamp))
    script.chmod(0o755)
    return str(bin_dir)


def test_min_platform_not_met(target, images, fault_server, tmp_path):
    requirements = {"min_platform": {"7.0": "20250101T000000Z"}}
    manifest = variant(fault_server, images["gzip"], requirements=requirements)
    path_prefix = fake_sysinfo(tmp_path, "7.0", "20240104T000814Z")

    result = run_module("image", target.args(uuid=manifest["uuid"], sources=[{"url": fault_server.url}]),
                        path_prefix=path_prefix)

    assert_clean_failure(target, result, manifest["uuid"], "min_platform", "7.0/20240104T000814Z")
    assert not [p for m, p, h in fault_server.requests if p.endswith("/file")]


def test_min_platform_met(target, images, fault_server, tmp_path):
    requirements = {"min_platform": {"7.0": "20200101T000000Z"}, "max_platform": {"7.0": "20300101T000000Z"}}
    manifest = variant(fault_server, images["gzip"], requirements=requirements)
    path_prefix = fake_sysinfo(tmp_path, "7.0", "20240104T000814Z")

    result = run_module("image", target.args(uuid=manifest["uuid"], sources=[{"url": fault_server.url}]),
                        path_prefix=path_prefix)

    assert result["_rc"] == 0, result.get("msg")
