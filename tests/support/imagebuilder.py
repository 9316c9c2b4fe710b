"""Build real SmartOS images from ZFS datasets for the integration tests and the demo.

An image is a v2 manifest plus one file, the compressed ``zfs send`` stream of
``<dataset>@final``. An incremental image sends ``-i <origin dataset>@final``,
so its dataset must be a ``zfs clone`` of that snapshot.

Everything here runs the real ``zfs`` command, so callers need root and a
running ZFS (zfs-fuse on the test machines).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass
from datetime import datetime, timezone

# Owner of every test image; fixed so manifests differ only where a test sets them.
TEST_OWNER_UUID = "11111111-1111-4111-8111-111111111111"

SNAPSHOT_NAME = "final"
CHUNK_SIZE = 64 * 1024

COMPRESSOR_COMMANDS = {
    "gzip": ["gzip", "-c"],
    "bzip2": ["bzip2", "-c"],
    "xz": ["xz", "-c"],
    "none": None,
}


class ImageBuildError(Exception):
    """A ZFS command or compressor that failed while building a test image."""


@dataclass(frozen=True)
class BuiltImage:
    """An image written to disk: its manifest, its two files and its source dataset."""

    manifest: dict
    file_path: str
    manifest_path: str
    dataset: str
    uuid: str


def build_image(
    *,
    dataset,
    out_dir,
    name,
    version,
    compression="gzip",
    origin=None,
    uuid=None,
    image_type="zone-dataset",
    os_name="smartos",
    extra=None,
):
    """Snapshot ``dataset`` as ``@final`` and write ``<uuid>.file`` and ``<uuid>.json``.

    ``origin`` is ``None`` for a full stream, or the ``BuiltImage`` of the
    dataset that ``dataset`` was cloned from for an incremental stream.
    ``extra`` is merged into the manifest last, so it can override any field
    (for example ``published_at``). Raises ``ImageBuildError`` when a command
    fails; the snapshot and the partial file are then removed.
    """
    if compression not in COMPRESSOR_COMMANDS:
        raise ValueError(
            f"invalid compression {compression!r}: "
            f"expected one of {', '.join(COMPRESSOR_COMMANDS)}"
        )
    image_uuid = uuid or str(uuidlib.uuid4())
    snapshot = f"{dataset}@{SNAPSHOT_NAME}"

    if snapshot_exists(snapshot):
        raise ImageBuildError(
            f"snapshot {snapshot} already exists: destroy it or build from a new dataset"
        )
    send_command = ["zfs", "send"]
    if origin is not None:
        origin_snapshot = f"{origin.dataset}@{SNAPSHOT_NAME}"
        _check_clone_origin(dataset, origin_snapshot)
        send_command += ["-i", origin_snapshot]
    send_command.append(snapshot)

    os.makedirs(out_dir, exist_ok=True)
    file_path = os.path.join(out_dir, f"{image_uuid}.file")
    manifest_path = os.path.join(out_dir, f"{image_uuid}.json")

    run_zfs(["snapshot", snapshot])
    try:
        sha1, size = _write_stream(send_command, COMPRESSOR_COMMANDS[compression], file_path)
    except BaseException:
        _remove_quietly(file_path)
        subprocess.run(["zfs", "destroy", snapshot], capture_output=True, check=False)
        raise

    manifest = {
        "v": 2,
        "uuid": image_uuid,
        "owner": TEST_OWNER_UUID,
        "name": name,
        "version": version,
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": format_published_at(datetime.now(timezone.utc)),
        "type": image_type,
        "os": os_name,
        "files": [{"sha1": sha1, "size": size, "compression": compression}],
        "description": f"Test image {name} {version} built from {dataset}",
    }
    if origin is not None:
        manifest["origin"] = origin.uuid
    manifest.update(extra or {})

    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")

    return BuiltImage(
        manifest=manifest,
        file_path=file_path,
        manifest_path=manifest_path,
        dataset=dataset,
        uuid=image_uuid,
    )


def make_dataset(name, files, clone_of=None):
    """Create dataset ``name`` and write ``files`` into its mountpoint.

    ``files`` maps paths relative to the mountpoint to their content.
    A value of ``None`` deletes that path, which is how a clone drops a file
    it inherited. With ``clone_of``, the dataset is a ``zfs clone`` of
    ``<clone_of>@final``, ready for an incremental image. Returns ``name``.
    """
    for relative_path in files:
        _check_relative_path(relative_path)
    if clone_of is None:
        run_zfs(["create", name])
    else:
        run_zfs(["clone", f"{clone_of}@{SNAPSHOT_NAME}", name])

    if get_property(name, "mounted") != "yes":
        run_zfs(["mount", name])
    mountpoint = get_property(name, "mountpoint")

    for relative_path, content in files.items():
        path = os.path.join(mountpoint, relative_path)
        if content is None:
            os.remove(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
            handle.flush()
            # Flush to ZFS now, so a snapshot taken right after contains every byte.
            os.fsync(handle.fileno())
    return name


def create_pool(name, backing_file, size="512M"):
    """Create pool ``name`` on a sparse ``backing_file`` of ``size`` (a ``truncate -s`` size)."""
    _run_checked(["truncate", "-s", size, os.fspath(backing_file)])
    _run_checked(["zpool", "create", name, os.fspath(backing_file)])
    return name


def destroy_pool(name, timeout=10.0):
    """Destroy pool ``name``, retrying while ZFS reports it busy.

    zfs-fuse 0.7.0 sometimes reports "pool is busy" right after the pool was
    used. In runs on the test machine, a retry 0.25 s later succeeded.
    Raises ``ImageBuildError`` if the pool is still busy after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            ["zpool", "destroy", "-f", name], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            return
        if "busy" not in result.stderr or time.monotonic() > deadline:
            raise ImageBuildError(
                f"zpool destroy -f {name} failed with exit code {result.returncode}: "
                f"{result.stderr.strip()}"
            )
        time.sleep(0.25)


def random_payload(size, seed):
    """Return ``size`` deterministic, incompressible bytes derived from ``seed``.

    The bytes are SHAKE-128 output (FIPS 202) of ``str(seed)``, so they are the
    same on every Python version, unlike the output of ``random``.
    """
    return hashlib.shake_128(str(seed).encode()).digest(size)


def format_published_at(moment):
    """Format a UTC datetime as IMGAPI does: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def run_zfs(arguments):
    """Run ``zfs`` with ``arguments`` and return its stdout; raise on failure."""
    return _run_checked(["zfs", *arguments])


def _run_checked(command):
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageBuildError(
            f"{' '.join(command)} failed with exit code {result.returncode}: "
            f"{result.stderr.strip()}"
        )
    return result.stdout


def get_property(dataset, name):
    """Return the raw value of ZFS property ``name`` on ``dataset``."""
    return run_zfs(["get", "-H", "-p", "-o", "value", name, dataset]).strip()


def snapshot_exists(snapshot):
    """Return whether ``snapshot`` (``dataset@name``) exists."""
    result = subprocess.run(
        ["zfs", "list", "-H", "-o", "name", "-t", "snapshot", snapshot],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == snapshot


def _check_clone_origin(dataset, origin_snapshot):
    actual_origin = get_property(dataset, "origin")
    if actual_origin != origin_snapshot:
        raise ImageBuildError(
            f"dataset {dataset} has origin {actual_origin!r}, expected "
            f"{origin_snapshot}: create it with make_dataset(..., clone_of=...)"
        )


def _write_stream(send_command, compressor_command, file_path):
    """Pipe ``send_command`` through the compressor into ``file_path``.

    Returns ``(sha1 hex, size)`` of the bytes written, hashed in the same pass.
    """
    # stderr goes to temporary files because an unread pipe could fill up
    # and block zfs send.
    with tempfile.TemporaryFile() as send_errors, tempfile.TemporaryFile() as compress_errors:
        send = subprocess.Popen(send_command, stdout=subprocess.PIPE, stderr=send_errors)
        processes = [(send_command, send, send_errors)]
        output = send.stdout
        if compressor_command is not None:
            try:
                compressor = subprocess.Popen(
                    compressor_command,
                    stdin=send.stdout,
                    stdout=subprocess.PIPE,
                    stderr=compress_errors,
                )
            except OSError:
                send.kill()
                send.wait()
                raise
            # Only the compressor may hold the read end, so zfs send gets a
            # broken-pipe error if the compressor exits early.
            send.stdout.close()
            processes.append((compressor_command, compressor, compress_errors))
            output = compressor.stdout

        digest = hashlib.sha1()
        size = 0
        try:
            with open(file_path, "wb") as handle:
                while True:
                    chunk = output.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    digest.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
        finally:
            output.close()
            for _unused, process, _unused in processes:
                process.wait()

        # All failures go in the message: when the compressor fails, zfs send
        # fails too with a broken pipe that hides the first cause.
        failures = []
        for command, process, errors in processes:
            if process.returncode != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()
                failures.append(
                    f"{' '.join(command)} failed with exit code {process.returncode}: {message}"
                )
        if failures:
            raise ImageBuildError("; ".join(failures))
    return digest.hexdigest(), size


def _check_relative_path(relative_path):
    normalized = os.path.normpath(relative_path)
    if os.path.isabs(normalized) or normalized.split(os.sep)[0] in ("..", "."):
        raise ValueError(
            f"invalid file path {relative_path!r}: expected a path inside the dataset, "
            "relative to its mountpoint"
        )


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
