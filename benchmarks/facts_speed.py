"""Time the image_facts module on a pool with many installed images.

The benchmark creates a zfs-fuse pool and, in it, ``N`` small image
datasets ``<pool>/<uuid>``, each with a ``@final`` snapshot and a manifest
cache file, and one VM clone (``zfs clone <image>@final <pool>/<uuid>``)
for every tenth image. It then runs ``plugins/modules/image_facts.py`` the
way Ansible runs a module on a host, as its own Python process with an
``ANSIBLE_MODULE_ARGS`` file, with ``pools: [<pool>]`` and the cache
directory.

The datasets are created with ``canmount=noauto``. With about 1,000 mounted
datasets, zfs-fuse failed to mount some new ones (``Input/output error``)
and then reported them busy, so they could not be destroyed. The listing
reads the ``mountpoint`` property, which is set either way.

``zfs`` and ``zpool`` wrapper scripts first on the module's ``PATH`` log
every command and exec the real programs, so the report shows how many
processes one run starts. The listing is meant to run a constant number of
them, not one an image.

Each size in ``--counts`` (default 100 and 1000) gets ``--runs`` timed runs
(default 5). The datasets of a smaller size are kept, and the next size adds
to them. After each module run, the module's ``zfs list`` runs alone, to
show how much of the time it takes, and then once more without snapshots
(``-t filesystem,volume``), to show what listing the snapshots costs. Run as root from the repository root:

    .venv/bin/python -m benchmarks.facts_speed

Everything lives in one directory under /var/tmp that is removed at the end,
together with the pool. When zfs-fuse keeps reporting the pool busy, the
directory and the pool's backing file are kept and the benchmark prints
what to remove by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

from tests.support.module_runner import COLLECTIONS, module_path, parse_result
from tests.support.pools import Pool, ensure_daemon, letters, zfs_available

TARGET_SECONDS = 1.0
CLONE_EVERY = 10
DESTROY_TIMEOUT = 30.0

WRAPPER = """#!/bin/sh
# Logs each command line, then runs the real program.
echo "$*" >> {log}
exec {real} "$@"
"""


def check_pool_name_free(name):
    # Pool.create destroys an existing pool of the same name, which might be
    # someone else's, so stop instead.
    if subprocess.run(["zpool", "list", name], capture_output=True, check=False).returncode == 0:
        raise RuntimeError("pool %s already exists and this run did not create it; destroy it if it is left from "
                           "an earlier run, or run the benchmark again (the name comes from the process id)" % name)


def run_zfs(*arguments):
    result = subprocess.run(["zfs"] + list(arguments), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError("zfs %s failed: %s" % (" ".join(arguments), result.stderr.strip()))


class FactsBench:
    """The pool, its image datasets, their cache files and the wrapped commands of one benchmark run."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.pool = Pool("factsbench" + letters(os.getpid()), work_dir, size="2G")
        self.cache_dir = os.path.join(work_dir, "cache")
        self.bin_dir = os.path.join(work_dir, "bin")
        self.logs = {}
        self.images = []
        self.clones = []
        self.created = False

    def set_up(self):
        ensure_daemon()
        check_pool_name_free(self.pool.name)
        self.pool.create()
        self.created = True
        os.makedirs(self.cache_dir)
        os.makedirs(self.bin_dir)
        for program in ("zfs", "zpool"):
            real = shutil.which(program)
            log = os.path.join(self.work_dir, program + ".log")
            path = os.path.join(self.bin_dir, program)
            with open(path, "w") as handle:
                handle.write(WRAPPER.format(log=log, real=real))
            os.chmod(path, 0o755)
            self.logs[program] = log

    def tear_down(self):
        """Destroy the pool; return False when zfs-fuse still reports it busy after ``DESTROY_TIMEOUT`` seconds."""
        if not self.created:
            return True
        # Pool.destroy would delete the backing file even when the pool
        # stays, so destroy here and let it only remove the file.
        deadline = time.monotonic() + DESTROY_TIMEOUT
        while True:
            result = subprocess.run(["zpool", "destroy", "-f", self.pool.name], capture_output=True, text=True,
                                    check=False)
            gone = subprocess.run(["zpool", "list", self.pool.name], capture_output=True, check=False).returncode != 0
            if result.returncode == 0 or gone:
                self.pool.destroy()
                return True
            if time.monotonic() > deadline:
                print("facts_speed: zpool destroy -f %s keeps failing (%s); destroy it by hand, then remove %s"
                      % (self.pool.name, result.stderr.strip(), self.work_dir), file=sys.stderr)
                return False
            time.sleep(0.5)

    def add_image(self, number):
        image_uuid = str(uuidlib.uuid4())
        dataset = "%s/%s" % (self.pool.name, image_uuid)
        run_zfs("create", "-o", "canmount=noauto", dataset)
        run_zfs("snapshot", dataset + "@final")
        manifest = {
            "v": 2,
            "uuid": image_uuid,
            "owner": "11111111-1111-4111-8111-111111111111",
            "name": "bench-%04d" % number,
            "version": "1.0.0",
            "state": "active",
            "disabled": False,
            "public": True,
            "published_at": "2024-01-01T00:%02d:%02d.000Z" % (number // 60 % 60, number % 60),
            "type": "zone-dataset",
            "os": "smartos",
            "files": [{"sha1": "0" * 40, "size": 1024, "compression": "gzip"}],
            "description": "image %d of the image_facts benchmark" % number,
        }
        info = {"manifest": manifest, "zpool": self.pool.name, "source": "http://127.0.0.1:8086"}
        with open(os.path.join(self.cache_dir, "%s-%s.json" % (self.pool.name, image_uuid)), "w") as handle:
            json.dump(info, handle, indent=2)
            handle.write("\n")
        clone = None
        if number % CLONE_EVERY == 0:
            clone = "%s/%s" % (self.pool.name, uuidlib.uuid4())
            run_zfs("clone", "-o", "canmount=noauto", dataset + "@final", clone)
        return image_uuid, clone

    def grow_to(self, count):
        """Add images until the pool contains ``count`` of them."""
        for number in range(len(self.images), count):
            image_uuid, clone = self.add_image(number)
            self.images.append(image_uuid)
            if clone:
                self.clones.append(clone)

    def run_module(self):
        """Run image_facts once; return ``(wall seconds, {program: [command lines]})``."""
        for log in self.logs.values():
            open(log, "w").close()
        args_path = os.path.join(self.work_dir, "module-args.json")
        with open(args_path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": {"pools": [self.pool.name], "cache_dir": self.cache_dir}}, handle)
        env = dict(os.environ, PYTHONPATH=COLLECTIONS, PATH=self.bin_dir + os.pathsep + os.environ["PATH"])
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, module_path("image_facts"), args_path], env=env,
                                   capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        result = parse_result(completed.stdout, completed.stderr, completed.returncode)
        if completed.returncode != 0:
            raise RuntimeError("image_facts failed (rc=%s): %s" % (completed.returncode, result.get("msg", result)))
        self.check_result(result)
        commands = {}
        for program, log in self.logs.items():
            with open(log) as handle:
                commands[program] = handle.read().splitlines()
        return wall, commands

    def time_listing(self, types="filesystem,volume,snapshot"):
        """Time the module's ``zfs list`` alone, without ``-p``, which zfs-fuse rejects; ``types`` replaces its -t."""
        argv = [shutil.which("zfs"), "list", "-H", "-o", "name,origin,mountpoint,imgadm:ignore",
                "-t", types, "-r", self.pool.name]
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        return time.perf_counter() - started

    def check_result(self, result):
        entries = result["ansible_facts"]["smartos_images"]
        listed = sorted(entry["manifest"]["uuid"] for entry in entries)
        if listed != sorted(self.images):
            raise RuntimeError("image_facts listed %d images, but the pool contains %d" % (len(listed), len(self.images)))
        if any("name" not in entry["manifest"] for entry in entries):
            raise RuntimeError("image_facts listed an image without the manifest from its cache file")
        clone_count = sum(entry["clone_count"] for entry in entries)
        if clone_count != len(self.clones):
            raise RuntimeError("image_facts counted %d clones, but the pool contains %d" % (clone_count, len(self.clones)))
        if result["warnings"]:
            raise RuntimeError("image_facts warned: %s" % result["warnings"])


def machine_details():
    details = []
    with open("/proc/cpuinfo") as handle:
        models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
    details.append(("CPU", "%d cores (nproc), %s" % (os.cpu_count(), models[0] if models else "unknown model")))
    with open("/proc/meminfo") as handle:
        details.append(("Memory", handle.readline().split(":", 1)[1].strip() + " (MemTotal)"))
    details.append(("Kernel", platform.release()))
    try:
        with open("/etc/os-release") as handle:
            fields = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
        details.append(("OS", fields.get("PRETTY_NAME", "unknown").strip('"')))
    except OSError:
        details.append(("OS", "unknown"))
    dpkg = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "zfs-fuse"], capture_output=True, text=True,
                          check=False)
    details.append(("zfs-fuse", dpkg.stdout.strip() if dpkg.returncode == 0 else "not installed as a package"))
    from ansible.release import __version__ as ansible_version
    details.append(("Python", "%s, ansible-core %s" % (platform.python_version(), ansible_version)))
    details.append(("Load average before", "%.2f, %.2f, %.2f" % os.getloadavg()))
    return details


def print_machine(details):
    print("| Item | Value |")
    print("| --- | --- |")
    for name, value in details:
        print("| %s | %s |" % (name, value))
    print("| Load average after | %.2f, %.2f, %.2f |" % os.getloadavg())


def print_runs(results):
    print("| images | clones | run | module wall s | zfs list alone s | without snapshots s | zfs processes "
          "| zpool processes |")
    print("|-------:|-------:|----:|--------------:|-----------------:|--------------------:|--------------:"
          "|----------------:|")
    for result in results:
        for number, (wall, commands) in enumerate(result["runs"], start=1):
            values = (result["images"], result["clones"], number, wall, result["listing"][number - 1],
                      result["without_snapshots"][number - 1], len(commands["zfs"]), len(commands["zpool"]))
            print("| %d | %d | %d | %.3f | %.3f | %.3f | %d | %d |" % values)


def print_summary(results):
    print("| images | module median s | min | max | zfs list alone, median s | without snapshots, median s "
          "| zfs processes a run | target |")
    print("|-------:|----------------:|----:|----:|-------------------------:|----------------------------:"
          "|--------------------:|--------|")
    for result in results:
        walls = [wall for wall, commands in result["runs"]]
        counts = sorted({len(commands["zfs"]) for wall, commands in result["runs"]})
        median = statistics.median(walls)
        verdict = "met" if median < TARGET_SECONDS else "missed"
        print("| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %s | under %.1f s: %s |" % (
            result["images"], median, min(walls), max(walls), statistics.median(result["listing"]),
            statistics.median(result["without_snapshots"]), ", ".join(str(c) for c in counts), TARGET_SECONDS,
            verdict))


def print_report(results, details):
    print()
    print_machine(details)
    print()
    print_runs(results)
    print()
    print_summary(results)
    print()
    print("zfs and zpool commands of the last run:")
    for program in ("zfs", "zpool"):
        for line in results[-1]["runs"][-1][1][program]:
            print("  %s %s" % (program, line))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time image_facts on a zfs-fuse pool with many installed images.")
    parser.add_argument("--counts", default="100,1000",
                        help="comma-separated image counts to measure, ascending (default: 100,1000)")
    parser.add_argument("--runs", type=int, default=5, help="timed module runs for each count (default: 5)")
    arguments = parser.parse_args(argv)
    counts = [int(text) for text in arguments.counts.split(",")]
    if counts != sorted(counts) or counts[0] < 1:
        parser.error("--counts must be positive and ascending, for example 100,1000")

    reason = zfs_available()
    if reason:
        sys.exit("facts_speed: ZFS is not usable here: %s" % reason)
    work_dir = tempfile.mkdtemp(prefix="facts-speed-", dir="/var/tmp")
    bench = FactsBench(work_dir)
    results = []
    try:
        details = machine_details()
        bench.set_up()
        for count in counts:
            started = time.perf_counter()
            bench.grow_to(count)
            print("facts_speed: %d images and %d clones ready in %.1f s"
                  % (count, len(bench.clones), time.perf_counter() - started), file=sys.stderr)
            runs = []
            listing = []
            without_snapshots = []
            # Alternating puts the same load from other work on zfs-fuse
            # on every measurement.
            for _number in range(arguments.runs):
                runs.append(bench.run_module())
                listing.append(bench.time_listing())
                without_snapshots.append(bench.time_listing("filesystem,volume"))
            results.append({"images": count, "clones": len(bench.clones), "runs": runs, "listing": listing,
                            "without_snapshots": without_snapshots})
        print_report(results, details)
    finally:
        if bench.tear_down():
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
