"""image_build on real ZFS: round trips through the image module, failures, idempotence, check mode."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
import uuid as uuidlib

import pytest

from tests.support import imagebuilder
from tests.support.module_runner import run_module, stand_in

# Time stamps on zfs-fuse are whole seconds. The next run does not trust a
# build whose dataset changed less than a second before it, so tests wait
# this long after writing files when they expect the next run to report no
# change.
SETTLE_SECONDS = 1.1

PLATFORM = {"SDC Version": "7.0", "Live Image": "20240104T000814Z"}
FILES = {
    "etc/motd": b"built by image_build\n",
    "root/payload.bin": imagebuilder.random_payload(256 * 1024, seed=7),
    "opt/app/config.json": b'{"port": 8080}\n',
}


# ---- helpers

def unique(prefix):
    return "%s-%s" % (prefix, uuidlib.uuid4().hex[:8])


def mountpoint(dataset):
    return imagebuilder.get_property(dataset, "mountpoint")


def make_source(pool, files=None, clone_of=None, name=None):
    """Create a dataset with ``files`` and return its name.

    Without ``files`` and ``clone_of``, it contains FILES, a symlink, a file with
    mode 0600 and another owner, and an empty directory. With ``clone_of`` (a
    snapshot), ``files`` are written over the clone, None deleting a file.
    """
    dataset = "%s/%s" % (pool, name or unique("src"))
    if clone_of:
        imagebuilder.run_zfs(["clone", clone_of, dataset])
    else:
        imagebuilder.run_zfs(["create", dataset])
    root = mountpoint(dataset)
    for relative, content in (FILES if files is None else files).items():
        path = os.path.join(root, relative)
        if content is None:
            os.unlink(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
    if files is None and not clone_of:
        os.symlink("etc/motd", os.path.join(root, "motd"))
        os.makedirs(os.path.join(root, "var", "empty"))
        os.chmod(os.path.join(root, "opt/app/config.json"), 0o600)
        os.chown(os.path.join(root, "opt/app/config.json"), 1001, 1002)
    return dataset


def change_file(dataset, relative, content):
    with open(os.path.join(mountpoint(dataset), relative), "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def destroy(dataset):
    """Destroy ``dataset``; zfs-fuse reports a just-used dataset busy for a moment, so retry then."""
    deadline = time.monotonic() + 10
    while True:
        proc = subprocess.run(["zfs", "destroy", dataset], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return
        if "busy" not in proc.stderr or time.monotonic() > deadline:
            raise AssertionError("zfs destroy %s failed: %s" % (dataset, proc.stderr.strip()))
        time.sleep(0.25)


def settle():
    time.sleep(SETTLE_SECONDS)


def tree(root):
    """Return every entry under ``root`` as relative path -> (type, mode, uid, gid, mtime, content or target)."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [name for name in dirnames if name != ".zfs"]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                kind, value = "link", os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                kind = "file"
                with open(path, "rb") as handle:
                    value = hashlib.sha256(handle.read()).hexdigest()
            else:
                kind, value = "dir", None
            entries[os.path.relpath(path, root)] = (kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                                    info.st_mtime_ns, value)
    return entries


def snapshots(dataset):
    out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", dataset],
                         capture_output=True, text=True, check=True).stdout
    return sorted(line.split("@", 1)[1] for line in out.split())


def snapshot_commands(pool):
    """Return the ``zfs snapshot`` commands in the pool's history."""
    out = subprocess.run(["zpool", "history", pool], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if " zfs snapshot " in line]


def build_snapshots_in(pool):
    """Return the temporary build snapshots left anywhere in the pool."""
    out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", pool],
                         capture_output=True, text=True, check=True).stdout
    return [name for name in out.split() if "@image-build-" in name]


def partial_files(directory):
    if not os.path.isdir(directory):
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        found += [os.path.join(dirpath, name) for name in filenames + dirnames
                  if name.endswith(".partial") or name.startswith(".")]
    return found


def output_files(directory):
    """Return the image and manifest files in ``directory``."""
    if not os.path.isdir(directory):
        return []
    return [name for name in os.listdir(directory) if name.endswith((".imgmanifest", ".zfs", ".gz", ".bz2", ".xz"))]


# Options of target.args that only the modules which download take.
NETWORK_OPTIONS = ("connect_timeout", "read_timeout", "retries")


def build(target, check=False, path_prefix=None, **args):
    """Run image_build with the target's pool and manifest cache, so origins installed there are found."""
    module_args = {key: value for key, value in target.args(**args).items() if key not in NETWORK_OPTIONS}
    return run_module("image_build", module_args, check=check, path_prefix=path_prefix)


def install(target, manifest_path, file_path):
    result = run_module("image", target.args(manifest=manifest_path, file=file_path))
    assert result["_rc"] == 0, result.get("msg")
    return result


def manifest_args(**extra):
    manifest = {"name": "web server", "version": "1.0.0", "type": "zone-dataset", "os": "smartos"}
    manifest.update(extra)
    return manifest


def file_digest(path):
    with open(path, "rb") as handle:
        data = handle.read()
    return len(data), hashlib.sha1(data).hexdigest()


# ---- round trips

@pytest.mark.parametrize("compression, suffix", [("none", ".zfs"), ("gzip", ".zfs.gz"), ("bzip2", ".zfs.bz2"),
                                                 ("xz", ".zfs.xz")])
def test_full_round_trip(target, build_pool, tmp_path, compression, suffix):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")

    result = build(target, dataset=dataset, manifest=manifest_args(), compression=compression, output_dir=out)

    assert result["_rc"] == 0, result.get("msg")
    assert result["changed"] is True
    assert result["file_path"] == os.path.join(out, "web-server-1.0.0" + suffix)
    assert result["manifest_path"] == os.path.join(out, "web-server-1.0.0.imgmanifest")
    assert snapshots(dataset) == []
    manifest = result["manifest"]
    assert manifest["files"][0]["compression"] == compression
    assert file_digest(result["file_path"]) == (manifest["files"][0]["size"], manifest["files"][0]["sha1"])
    with open(result["manifest_path"]) as handle:
        text = handle.read()
    assert text == json.dumps(manifest, indent=2) + "\n"

    install(target, result["manifest_path"], result["file_path"])

    assert tree(mountpoint(target.dataset(manifest["uuid"]))) == tree(mountpoint(dataset))
    assert target.snapshots(manifest["uuid"]) == ["final"]


def test_incremental_round_trip(target, build_pool, tmp_path):
    base_source = make_source(build_pool.name)
    out = str(tmp_path / "out")
    base = build(target, dataset=base_source, manifest=manifest_args(name="base", tags={"role": "os"}),
                 compression="gzip", output_dir=out)
    assert base["_rc"] == 0, base.get("msg")
    base_uuid = base["manifest"]["uuid"]
    install(target, base["manifest_path"], base["file_path"])
    work = make_source(target.pool.name, clone_of=target.dataset(base_uuid) + "@final", name="work", files={
        "etc/motd": b"changed in the child\n",
        "root/child.txt": b"only in the child\n",
        "root/payload.bin": None,
    })
    expected = tree(mountpoint(work))

    child = build(target, dataset=work, manifest={"name": "child", "version": "2.0.0"}, incremental=True,
                  compression="xz", output_dir=out)

    assert child["_rc"] == 0, child.get("msg")
    assert child["manifest"]["origin"] == base_uuid
    assert child["manifest"]["type"] == "zone-dataset"
    assert child["manifest"]["os"] == "smartos"
    assert "tags" not in child["manifest"]
    assert snapshots(work) == []
    assert child["file_path"].endswith("child-2.0.0.zfs.xz")
    assert child["manifest"]["files"][0]["size"] < base["manifest"]["files"][0]["size"]

    destroy(work)
    install(target, child["manifest_path"], child["file_path"])

    child_dataset = target.dataset(child["manifest"]["uuid"])
    assert target.origin(child["manifest"]["uuid"]) == target.dataset(base_uuid) + "@final"
    assert tree(mountpoint(child_dataset)) == expected


def test_origin_option_inherits_without_clone(target, images, build_pool, tmp_path):
    install(target, images["gzip"].manifest_path, images["gzip"].file_path)
    dataset = make_source(build_pool.name)

    result = build(target, dataset=dataset, origin=images["gzip"].uuid, manifest={"name": "x", "version": "1"},
                   output_dir=str(tmp_path / "out"), check=True)

    assert result["_rc"] == 0, result.get("msg")
    assert result["manifest"]["type"] == images["gzip"].manifest["type"]
    assert result["manifest"]["os"] == images["gzip"].manifest["os"]
    assert "origin" not in result["manifest"]


def test_repository_round_trip(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    repository = str(tmp_path / "repo")
    settle()

    first = build(target, dataset=dataset, manifest=manifest_args(), compression="gzip", repository=repository)

    assert first["_rc"] == 0, first.get("msg")
    uuid = first["manifest"]["uuid"]
    image_dir = os.path.join(repository, "images", uuid)
    assert first["manifest_path"] == os.path.join(image_dir, "manifest.json")
    assert first["file_path"] == os.path.join(image_dir, "file")
    assert sorted(os.listdir(image_dir)) == ["build.json", "file", "manifest.json"]
    assert os.listdir(os.path.join(repository, "images")) == [uuid]
    assert snapshots(dataset) == []

    second = build(target, dataset=dataset, manifest=manifest_args(), compression="gzip", repository=repository)

    assert second["changed"] is False
    assert second["manifest"] == first["manifest"]

    change_file(dataset, "etc/motd", b"new motd\n")
    settle()
    third = build(target, dataset=dataset, manifest=manifest_args(), compression="gzip", repository=repository)

    assert third["changed"] is True
    assert third["manifest"]["uuid"] != uuid
    assert os.listdir(os.path.join(repository, "images")) == [third["manifest"]["uuid"]]

    install(target, third["manifest_path"], third["file_path"])
    assert tree(mountpoint(target.dataset(third["manifest"]["uuid"]))) == tree(mountpoint(dataset))


# ---- VM input

def vm_bin(tmp_path, vm_json, platform=None):
    """Write stand-in vmadm (and sysinfo) that describe one VM; return the directory for path_prefix."""
    directory = str(tmp_path / "bin")
    info_path = str(tmp_path / "vm.json")
    with open(info_path, "w") as handle:
        json.dump(vm_json, handle)
    stand_in(directory, "vmadm", 'if [ "$1" = get ] && [ "$2" = "%s" ]; then cat %s; exit 0; fi\n'
                                 'echo "vmadm: VM $2 not found" >&2\nexit 1\n' % (vm_json["uuid"], info_path))
    if platform:
        stand_in(directory, "sysinfo", "cat <<'EOF'\n%s\nEOF\n" % json.dumps(platform))
    return directory


def vm_from_base(target, images, brand="joyent", state="stopped"):
    """Install the fixture base image and clone it as a VM's dataset; return the VM's vmadm JSON."""
    install(target, images["gzip"].manifest_path, images["gzip"].file_path)
    vm_uuid = str(uuidlib.uuid4())
    dataset = make_source(target.pool.name, clone_of=target.dataset(images["gzip"].uuid) + "@final", name=vm_uuid,
                          files={"etc/motd": b"prepared VM\n", "root/app.txt": b"application\n"})
    return {"uuid": vm_uuid, "brand": brand, "state": state, "zfs_filesystem": dataset,
            "image_uuid": images["gzip"].uuid, "zpool": target.pool.name}


def test_vm_joyent_round_trip(target, images, tmp_path):
    vm = vm_from_base(target, images)
    path_prefix = vm_bin(tmp_path, vm, PLATFORM)
    expected = tree(mountpoint(vm["zfs_filesystem"]))

    result = build(target, vm=vm["uuid"], manifest={"name": "app", "version": "1.0.0"}, incremental=True,
                   compression="gzip", output_dir=str(tmp_path / "out"), path_prefix=path_prefix)

    assert result["_rc"] == 0, result.get("msg")
    manifest = result["manifest"]
    assert manifest["origin"] == images["gzip"].uuid
    assert manifest["type"] == "zone-dataset"
    assert manifest["os"] == "smartos"
    assert manifest["requirements"] == {"min_platform": {"7.0": "20240104T000814Z"}}
    assert snapshots(vm["zfs_filesystem"]) == []

    destroy(vm["zfs_filesystem"])
    install(target, result["manifest_path"], result["file_path"])

    assert tree(mountpoint(target.dataset(manifest["uuid"]))) == expected


def test_vm_lx_sets_brand_requirement(target, images, tmp_path):
    vm = vm_from_base(target, images, brand="lx")
    path_prefix = vm_bin(tmp_path, vm)

    result = build(target, vm=vm["uuid"], manifest={"name": "app", "version": "1.0.0", "os": "linux"},
                   output_dir=str(tmp_path / "out"), path_prefix=path_prefix, check=True)

    assert result["_rc"] == 0, result.get("msg")
    assert result["manifest"]["requirements"] == {"brand": "lx"}
    assert result["manifest"]["os"] == "linux"


def test_vm_running_fails(target, images, tmp_path):
    vm = vm_from_base(target, images, state="running")
    path_prefix = vm_bin(tmp_path, vm, PLATFORM)
    out = str(tmp_path / "out")

    result = build(target, vm=vm["uuid"], manifest={"name": "app", "version": "1.0.0"}, output_dir=out,
                   path_prefix=path_prefix)

    assert result["_rc"] != 0
    assert "is running; stop it with vmadm stop %s" % vm["uuid"] in result["msg"]
    assert snapshots(vm["zfs_filesystem"]) == []
    assert not os.path.exists(out)


def test_vm_unknown_fails(target, images, tmp_path):
    vm = vm_from_base(target, images)
    path_prefix = vm_bin(tmp_path, vm)
    other = str(uuidlib.uuid4())

    result = build(target, vm=other, manifest={"name": "app", "version": "1.0.0"}, output_dir=str(tmp_path / "out"),
                   path_prefix=path_prefix)

    assert result["_rc"] != 0
    assert "vmadm get %s failed" % other in result["msg"]
    assert "not found" in result["msg"]


def test_vm_without_vmadm_fails(target, tmp_path):
    vm_uuid = str(uuidlib.uuid4())

    result = build(target, vm=vm_uuid, manifest={"name": "app", "version": "1.0.0"}, output_dir=str(tmp_path / "out"))

    assert result["_rc"] != 0
    assert "vmadm is not installed" in result["msg"]


# ---- failures leave the dataset as it was and no output

def assert_untouched(result, dataset, out, pool, history_before, *fragments):
    assert result["_rc"] != 0
    assert result["failed"] is True
    for fragment in fragments:
        assert fragment in result["msg"]
    assert snapshots(dataset) == []
    assert build_snapshots_in(pool) == []
    assert partial_files(out) == []
    assert output_files(out) == []
    assert len(snapshot_commands(pool)) == history_before


def test_invalid_manifest_touches_nothing(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    history = len(snapshot_commands(build_pool.name))

    result = build(target, dataset=dataset, manifest=manifest_args(name="web!server", homepage="not a url"),
                   output_dir=out)

    assert_untouched(result, dataset, out, build_pool.name, history, "invalid manifest", "name", "homepage")
    assert not os.path.exists(out)


def test_missing_type_without_origin_fails(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    history = len(snapshot_commands(build_pool.name))

    result = build(target, dataset=dataset, manifest={"name": "web", "version": "1"}, output_dir=out)

    assert_untouched(result, dataset, out, build_pool.name, history, '"type" is missing', '"os" is missing')


def test_incremental_without_origin_fails(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    history = len(snapshot_commands(build_pool.name))

    result = build(target, dataset=dataset, manifest=manifest_args(), incremental=True, output_dir=out)

    assert_untouched(result, dataset, out, build_pool.name, history, "has no origin image")


def test_incremental_from_origin_without_final_fails(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    missing = str(uuidlib.uuid4())
    history = len(snapshot_commands(build_pool.name))

    result = build(target, dataset=dataset, origin=missing, manifest=manifest_args(), incremental=True,
                   output_dir=out)

    assert_untouched(result, dataset, out, build_pool.name, history,
                     "has no snapshot %s/%s@final" % (target.pool.name, missing))


def test_zfs_send_failure(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    real_zfs = shutil.which("zfs")
    path_prefix = stand_in(str(tmp_path / "bin"), "zfs", (
        'if [ "$1" = send ]; then\n'
        '  %s "$@" | head -c 4096\n'
        '  echo "cannot send: simulated I/O error" >&2\n'
        '  exit 1\n'
        'fi\n'
        'exec %s "$@"\n') % (real_zfs, real_zfs))
    history = len(snapshot_commands(build_pool.name))

    result = build(target, dataset=dataset, manifest=manifest_args(), compression="gzip", output_dir=out,
                   path_prefix=path_prefix)

    # The temporary snapshot was taken and destroyed again, so the history has one more snapshot command.
    assert_untouched(result, dataset, out, build_pool.name, history + 1, "simulated I/O error", "exited 1")


def test_compressor_failure(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    path_prefix = stand_in(str(tmp_path / "bin"), "xz",
                           'head -c 1000 >/dev/null\necho "xz: simulated compressor crash" >&2\nexit 2\n')
    history = len(snapshot_commands(build_pool.name))

    result = build(target, dataset=dataset, manifest=manifest_args(), compression="xz", output_dir=out,
                   path_prefix=path_prefix)

    assert_untouched(result, dataset, out, build_pool.name, history + 1, "simulated compressor crash", "exited 2")


def test_full_output_dir(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name, files={"big.bin": imagebuilder.random_payload(6 * 1024 * 1024, seed=3)})
    full = "%s/%s" % (build_pool.name, unique("full"))
    imagebuilder.run_zfs(["create", "-o", "quota=1M", full])
    out = mountpoint(full)
    history = len(snapshot_commands(build_pool.name))

    result = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    assert_untouched(result, dataset, out, build_pool.name, history + 1, "cannot write the image file")
    assert os.listdir(out) == []


def test_missing_dataset_fails(target, build_pool, tmp_path):
    result = build(target, dataset="%s/%s" % (build_pool.name, unique("missing")), manifest=manifest_args(),
                   output_dir=str(tmp_path / "out"))

    assert result["_rc"] != 0
    assert "does not exist; check the name with zfs list" in result["msg"]


# ---- idempotence

def test_second_run_unchanged_then_changes_rebuild(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    settle()
    args = dict(dataset=dataset, manifest=manifest_args(), compression="gzip", output_dir=out)
    first = build(target, **args)
    assert first["_rc"] == 0, first.get("msg")
    history = len(snapshot_commands(build_pool.name))
    file_mtime = os.stat(first["file_path"]).st_mtime_ns

    second = build(target, **args)

    assert second["_rc"] == 0, second.get("msg")
    assert second["changed"] is False
    assert second["actions"] == []
    assert second["manifest"] == first["manifest"]
    assert second["diff"]["before"] == second["diff"]["after"]
    assert len(snapshot_commands(build_pool.name)) == history
    assert os.stat(first["file_path"]).st_mtime_ns == file_mtime

    change_file(dataset, "etc/motd", b"changed after the first build\n")
    settle()
    third = build(target, **args)

    assert third["changed"] is True
    assert third["manifest"]["uuid"] != first["manifest"]["uuid"]
    assert third["diff"]["before"]["uuid"] == first["manifest"]["uuid"]
    assert third["diff"]["after"]["uuid"] == third["manifest"]["uuid"]
    assert len(snapshot_commands(build_pool.name)) == history + 1

    forced = build(target, force=True, **args)

    assert forced["changed"] is True
    assert forced["manifest"]["uuid"] == third["manifest"]["uuid"]
    assert forced["reason"] == "force is set"
    assert snapshots(dataset) == []


def test_changed_manifest_field_rebuilds(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    settle()
    first = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    second = build(target, dataset=dataset, manifest=manifest_args(description="now described"), output_dir=out)

    assert first["changed"] is True
    assert second["changed"] is True
    assert second["manifest"]["description"] == "now described"


def test_altered_output_rebuilds_with_same_uuid(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    settle()
    args = dict(dataset=dataset, manifest=manifest_args(), compression="bzip2", output_dir=out)
    first = build(target, **args)
    with open(first["file_path"], "r+b") as handle:
        handle.seek(100)
        handle.write(b"\0corrupt\0")

    second = build(target, **args)

    assert second["changed"] is True
    assert "no longer matches its manifest" in second["reason"]
    assert second["manifest"]["uuid"] == first["manifest"]["uuid"]
    assert file_digest(second["file_path"]) == (second["manifest"]["files"][0]["size"],
                                                second["manifest"]["files"][0]["sha1"])


def test_explicit_uuid_is_kept_on_change(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    uuid = str(uuidlib.uuid4())
    settle()
    first = build(target, dataset=dataset, manifest=manifest_args(uuid=uuid), output_dir=out)
    change_file(dataset, "etc/motd", b"changed\n")
    settle()

    second = build(target, dataset=dataset, manifest=manifest_args(uuid=uuid), output_dir=out)

    assert first["manifest"]["uuid"] == uuid
    assert second["changed"] is True
    assert second["manifest"]["uuid"] == uuid
    assert second["manifest"]["files"][0]["sha1"] != first["manifest"]["files"][0]["sha1"]


def test_child_dataset_changes_are_not_the_image(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    child = dataset + "/data"
    imagebuilder.run_zfs(["create", child])
    out = str(tmp_path / "out")
    settle()
    first = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)
    change_file(child, "written-to-child", b"not part of the parent's stream\n")
    settle()

    second = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    assert first["changed"] is True
    assert second["changed"] is False


def test_racy_build_warns_and_next_run_rebuilds(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    # A time stamp after the walk is as racy as one in its last second, and
    # unlike a fresh write, does not depend on how fast the module starts.
    later = time.time_ns() + 60 * 1_000_000_000
    os.utime(os.path.join(mountpoint(dataset), "etc/motd"), ns=(later, later))
    first = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    second = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    assert any("within the second before this build" in warning for warning in first["warnings"])
    assert second["changed"] is True
    assert "previous build" in second["reason"]
    assert second["manifest"]["uuid"] != first["manifest"]["uuid"]


def test_recent_write_settles_before_build(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    # Racy for about 2.5 s from now: past the first walk, within the wait.
    soon = time.time_ns() + 1_500_000_000
    os.utime(os.path.join(mountpoint(dataset), "etc/motd"), ns=(soon, soon))
    first = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    second = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    assert first["changed"] is True
    assert not any("within the second before this build" in warning for warning in first["warnings"])
    assert second["changed"] is False
    assert second["manifest"]["uuid"] == first["manifest"]["uuid"]


def test_unmounted_dataset_always_rebuilds(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    imagebuilder.run_zfs(["unmount", dataset])
    first = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    second = build(target, dataset=dataset, manifest=manifest_args(), output_dir=out)

    assert first["_rc"] == 0, first.get("msg")
    assert second["changed"] is True
    assert any("is not mounted" in warning for warning in second["warnings"])
    assert snapshots(dataset) == []


# ---- check mode

def test_check_mode_quartet(target, build_pool, tmp_path):
    dataset = make_source(build_pool.name)
    out = str(tmp_path / "out")
    settle()
    args = dict(dataset=dataset, manifest=manifest_args(), compression="gzip", output_dir=out)
    history = len(snapshot_commands(build_pool.name))

    first_check = build(target, check=True, **args)

    assert first_check["changed"] is True
    assert "files" not in first_check["manifest"]
    assert first_check["file_path"] == os.path.join(out, "web-server-1.0.0.zfs.gz")
    assert first_check["actions"][0].startswith("Would build image")
    assert first_check["diff"]["before"] == {}
    assert not os.path.exists(out)
    assert len(snapshot_commands(build_pool.name)) == history

    first_real = build(target, **args)

    assert first_real["changed"] is True
    assert os.path.exists(first_real["file_path"])

    second_check = build(target, check=True, **args)

    assert second_check["changed"] is False
    assert second_check["manifest"] == first_real["manifest"]

    second_real = build(target, **args)

    assert second_real["changed"] is False
    assert len(snapshot_commands(build_pool.name)) == history + 1
    assert snapshots(dataset) == []
