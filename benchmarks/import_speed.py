"""Compare one image import by the image module with a plain shell pipeline.

Both variants import the same gzip image, served by nginx on 127.0.0.1, into
the same zfs-fuse pool:

- ``module``: ``plugins/modules/image.py`` run the way Ansible runs it on a
  host, as its own Python process with an ``ANSIBLE_MODULE_ARGS`` file.
- ``pipeline``: ``curl -sf URL | gzip -dc | zfs receive -u POOL/NAME``.

The runs alternate (module, pipeline, module, ...) in one process, so load
from other work on the machine affects both variants. The first round is a
warm-up and does not count. Run as root from the repository root:

    .venv/bin/python -m benchmarks.import_speed

Everything (pools' backing files, the image, the nginx root, the module's
state directories) lives in one directory under /var/tmp that is removed at
the end, together with the two pools.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from tests.support import imagebuilder
from tests.support.module_runner import COLLECTIONS, module_path, parse_result
from tests.support.pools import Pool, ensure_daemon, letters, zfs_available
from tests.support.static_repo import StaticRepository

TIME_BIN = "/usr/bin/time"
MIB = 1024 * 1024
TARGET_RATIO = 1.10
TARGET_MODULE_RSS_MB = 100

# Small files next to the payload, so the stream contains directories and
# several files, not only one large file.
SMALL_FILES = {
    "etc/motd": b"import benchmark image\n",
    "etc/release": b"smartos.images benchmark 1.0.0\n",
    "root/README": b"root/payload.bin is random data so gzip cannot shrink it\n",
}


class PeakMemorySampler(threading.Thread):
    """A thread that records VmHWM (peak RSS, KiB) of every process under ``root_pid``.

    The kernel keeps VmHWM as a running maximum, so the last sample before a
    process exits is its peak unless it grew in the final polling interval.
    """

    def __init__(self, root_pid, interval=0.02):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval = interval
        self.peaks = {}
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self._sample_tree(self.root_pid)
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()

    def _sample_tree(self, pid):
        peak_kib = _read_vm_hwm(pid)
        if peak_kib is None:
            return
        entry = self.peaks.get(pid)
        if entry is None:
            entry = self.peaks[pid] = {"argv": _read_cmdline(pid), "peak_kib": 0}
        entry["peak_kib"] = max(entry["peak_kib"], peak_kib)
        for child in _read_children(pid):
            self._sample_tree(child)

    def peak_by_program(self, program):
        """Return the highest VmHWM in KiB among processes whose argv[0] has the base name ``program``."""
        peaks = [e["peak_kib"] for e in self.peaks.values() if e["argv"] and os.path.basename(e["argv"][0]) == program]
        return max(peaks) if peaks else None

    def peak_of(self, argv_match):
        """Return the highest VmHWM in KiB among processes for which ``argv_match(argv)`` is true."""
        peaks = [e["peak_kib"] for e in self.peaks.values() if e["argv"] and argv_match(e["argv"])]
        return max(peaks) if peaks else None


def _read_vm_hwm(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    # A zombie or a process that just exited has no VmHWM line.
    return None


def _read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _read_children(pid):
    children = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as handle:
                children.extend(int(child) for child in handle.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return children


def run_timed(argv, env, time_output):
    """Run ``argv`` under GNU time; return ``(wall seconds, completed process, sampler)``.

    GNU time's ``%M`` comes from wait4(), which reports the maximum RSS of the
    process and of every descendant that was waited for, so it covers the
    whole tree: the module's gzip and zfs children as well as Python.
    """
    command = [TIME_BIN, "-f", "%M", "-o", time_output, *argv]
    started = time.perf_counter()
    # A session of its own lets an interrupted benchmark kill the whole tree
    # (time, the module or bash, gzip, zfs receive) before it destroys the pools.
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    sampler = PeakMemorySampler(process.pid)
    sampler.start()
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        sampler.stop()
    wall = time.perf_counter() - started
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    return wall, completed, sampler


def read_tree_max_rss_kib(time_output):
    with open(time_output) as handle:
        # GNU time writes "Command exited with non-zero status N" first when
        # the command fails, and the %M value on the last line.
        return int(handle.read().split()[-1])


def destroy_dataset(name, timeout=10.0):
    """Destroy ``name`` and its snapshots; do nothing when it does not exist.

    ``-f`` unmounts the dataset the module mounted, which a plain destroy
    rejects as busy. A dataset still reported busy is retried every 0.25 s
    until ``timeout`` seconds, as ``Pool.destroy`` does for pools on zfs-fuse.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(["zfs", "destroy", "-r", "-f", name], capture_output=True, text=True, check=False)
        if result.returncode == 0 or "does not exist" in result.stderr:
            return
        if "busy" not in result.stderr or time.monotonic() > deadline:
            raise RuntimeError("zfs destroy -r -f %s failed: %s" % (name, result.stderr.strip()))
        time.sleep(0.25)


def dataset_snapshots(name):
    result = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", name],
                            capture_output=True, text=True, check=False)
    return result.stdout.split() if result.returncode == 0 else []


def check_pool_name_free(name):
    # Pool.create destroys an existing pool of the same name, which might be
    # someone else's, so stop instead.
    if subprocess.run(["zpool", "list", name], capture_output=True, check=False).returncode == 0:
        raise RuntimeError("pool %s already exists and this run did not create it; destroy it if it is "
                           "left from an earlier run, or run the benchmark again (the name comes from the "
                           "process id)" % name)


class Bench:
    """The pools, the image, nginx and the module's state directories of one benchmark run."""

    def __init__(self, work_dir, size_mib):
        self.work_dir = work_dir
        self.size_mib = size_mib
        suffix = letters(os.getpid())
        pool_size = "%dM" % max(2048, 4 * size_mib)
        self.source_pool = Pool("benchsrc" + suffix, work_dir, size=pool_size)
        self.target_pool = Pool("benchdst" + suffix, work_dir, size=pool_size)
        self.pools = []
        self.repo = None
        self.image = None
        self.state_dir = os.path.join(work_dir, "module-state")
        self.pipeline_dataset = self.target_pool.name + "/pipeline"

    def set_up(self):
        ensure_daemon()
        for pool in (self.source_pool, self.target_pool):
            check_pool_name_free(pool.name)
            pool.create()
            self.pools.append(pool)

        files = dict(SMALL_FILES)
        files["root/payload.bin"] = imagebuilder.random_payload(self.size_mib * MIB, seed="import-speed")
        dataset = imagebuilder.make_dataset(self.source_pool.name + "/image", files)
        del files
        self.image = imagebuilder.build_image(
            dataset=dataset, out_dir=os.path.join(self.work_dir, "built"), name="import-speed",
            version="1.0.0", compression="gzip",
        )
        self.repo = StaticRepository(os.path.join(self.work_dir, "repo"))
        self.repo.add(self.image.manifest, self.image.file_path)
        # build_image's copy is not needed once nginx's root has the file.
        os.unlink(self.image.file_path)
        self.repo.start()

    def tear_down(self):
        if self.repo is not None:
            self.repo.stop()
        for pool in reversed(self.pools):
            pool.destroy()

    @property
    def file_url(self):
        return "%s/images/%s/file" % (self.repo.url, self.image.uuid)

    @property
    def file_size(self):
        return self.image.manifest["files"][0]["size"]

    def module_args(self):
        return {
            "uuid": self.image.uuid,
            "pool": self.target_pool.name,
            "sources": [{"url": self.repo.url}],
            "config_file": os.path.join(self.state_dir, "imgadm.conf"),
            "cache_dir": os.path.join(self.state_dir, "cache"),
            "download_dir": os.path.join(self.state_dir, "downloads"),
            "lock_dir": os.path.join(self.state_dir, "locks"),
        }

    def reset_target(self):
        """Remove what the previous run left, so every run starts from an empty pool and state."""
        destroy_dataset("%s/%s" % (self.target_pool.name, self.image.uuid))
        destroy_dataset(self.pipeline_dataset)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        os.makedirs(os.path.join(self.state_dir, "locks"))

    def run_module(self):
        self.reset_target()
        args_path = os.path.join(self.work_dir, "module-args.json")
        with open(args_path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": self.module_args()}, handle)
        env = dict(os.environ, PYTHONPATH=COLLECTIONS)
        time_output = os.path.join(self.work_dir, "time-module.txt")
        wall, completed, sampler = run_timed([sys.executable, module_path("image"), args_path], env, time_output)
        result = parse_result(completed.stdout, completed.stderr, completed.returncode)
        if completed.returncode != 0 or result.get("imported") != [self.image.uuid]:
            raise RuntimeError("image module run failed (rc=%s): %s" % (completed.returncode, result.get("msg", result)))
        dataset = "%s/%s" % (self.target_pool.name, self.image.uuid)
        if dataset_snapshots(dataset) != [dataset + "@final"]:
            raise RuntimeError("image module reported success but %s@final is missing" % dataset)
        module_script = module_path("image")
        return {
            "wall_s": wall,
            "tree_max_rss_kib": read_tree_max_rss_kib(time_output),
            "python_hwm_kib": sampler.peak_of(lambda argv: module_script in argv),
            "gzip_hwm_kib": sampler.peak_by_program("gzip"),
            "zfs_receive_hwm_kib": sampler.peak_of(lambda argv: os.path.basename(argv[0]) == "zfs" and "receive" in argv),
        }

    def run_pipeline(self):
        self.reset_target()
        script = "set -o pipefail; curl -sf %s | gzip -dc | zfs receive -u %s" % (
            shlex.quote(self.file_url), shlex.quote(self.pipeline_dataset))
        time_output = os.path.join(self.work_dir, "time-pipeline.txt")
        wall, completed, sampler = run_timed(["bash", "-c", script], dict(os.environ), time_output)
        if completed.returncode != 0:
            raise RuntimeError("pipeline failed (rc=%s): %s" % (completed.returncode, completed.stderr.strip()))
        if dataset_snapshots(self.pipeline_dataset) != [self.pipeline_dataset + "@final"]:
            raise RuntimeError("pipeline exited 0 but %s@final is missing" % self.pipeline_dataset)
        return {
            "wall_s": wall,
            "tree_max_rss_kib": read_tree_max_rss_kib(time_output),
            "curl_hwm_kib": sampler.peak_by_program("curl"),
            "gzip_hwm_kib": sampler.peak_by_program("gzip"),
            "zfs_receive_hwm_kib": sampler.peak_of(lambda argv: os.path.basename(argv[0]) == "zfs" and "receive" in argv),
        }


STAGE_REPEATS = 3


def time_shell(script):
    started = time.perf_counter()
    subprocess.run(["bash", "-c", "set -o pipefail; " + script], check=True, capture_output=True)
    return time.perf_counter() - started


def time_stages(bench):
    """Time each stage of the import alone, on the file nginx serves; return ``[(stage, [seconds])]``.

    The file was just written, so it is read from the page cache, as nginx
    reads it during the timed runs.
    """
    served = os.path.join(bench.repo.root, "files", bench.image.uuid + ".file")
    stream = os.path.join(bench.work_dir, "stream.zfs")
    subprocess.run(["bash", "-c", "gzip -dc < %s > %s" % (shlex.quote(served), shlex.quote(stream))], check=True)
    target = shlex.quote(bench.pipeline_dataset)
    stages = [
        ("curl URL > /dev/null", "curl -sf %s > /dev/null" % shlex.quote(bench.file_url)),
        ("gzip -dc < file > /dev/null", "gzip -dc < %s > /dev/null" % shlex.quote(served)),
        ("zfs receive -u < uncompressed stream", "zfs receive -u %s < %s" % (target, shlex.quote(stream))),
        ("gzip -dc < file | zfs receive -u", "gzip -dc < %s | zfs receive -u %s" % (shlex.quote(served), target)),
        ("sha1sum file", "sha1sum %s > /dev/null" % shlex.quote(served)),
    ]
    results = []
    for stage, script in stages:
        walls = []
        for _repeat in range(STAGE_REPEATS):
            bench.reset_target()
            walls.append(time_shell(script))
        results.append((stage, walls))
    bench.reset_target()
    os.unlink(stream)
    return results


def profile_module(bench, stats_path):
    """Run one more module import under cProfile, write the stats to ``stats_path`` and print the top entries."""
    bench.reset_target()
    args_path = os.path.join(bench.work_dir, "module-args.json")
    with open(args_path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": bench.module_args()}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    command = [sys.executable, "-m", "cProfile", "-o", stats_path, module_path("image"), args_path]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError("profiled module run failed (rc=%s): %s" % (completed.returncode, completed.stderr[-2000:]))
    bench.reset_target()
    print()
    print("cProfile of one more module import (not counted), stats in %s:" % stats_path)
    pstats.Stats(stats_path, stream=sys.stdout).sort_stats("cumulative").print_stats(25)


def mib(kib):
    return "-" if kib is None else "%.1f" % (kib / 1024.0)


def summarize(runs, warmup_rounds):
    counted = [run for run in runs if run["round"] > warmup_rounds]
    module_walls = [run["wall_s"] for run in counted if run["variant"] == "module"]
    pipeline_walls = [run["wall_s"] for run in counted if run["variant"] == "pipeline"]
    module_median = statistics.median(module_walls)
    pipeline_median = statistics.median(pipeline_walls)
    module_rss = [run["tree_max_rss_kib"] for run in counted if run["variant"] == "module"]
    return {
        "module_median_s": module_median,
        "pipeline_median_s": pipeline_median,
        "ratio": module_median / pipeline_median,
        "module_max_rss_kib": max(module_rss),
    }


def describe_revision():
    """Return the commit the module ran from, marked when plugins/ has uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "plugins"],
                            capture_output=True, text=True, check=False)
    dirty = " with uncommitted changes in plugins/" if status.stdout.strip() else ""
    return head.stdout.strip() + dirty


def print_report(bench, runs, summary, warmup_rounds, load_before, load_after):
    size_mb = bench.file_size / 1e6
    print()
    print("collection: %s" % describe_revision())
    print("image %s: gzip file of %d bytes (%.1f MB), %d MiB random payload"
          % (bench.image.uuid, bench.file_size, size_mb, bench.size_mib))
    print()
    print("| run | round | variant  | counted | wall s | MB/s  | tree max RSS MiB | python MiB | gzip MiB | zfs recv MiB | curl MiB | load 1m |")
    print("|----:|------:|----------|---------|-------:|------:|-----------------:|-----------:|---------:|-------------:|---------:|--------:|")
    for index, run in enumerate(runs, 1):
        print("| %3d | %5d | %-8s | %-7s | %6.2f | %5.1f | %16s | %10s | %8s | %12s | %8s | %7.2f |" % (
            index, run["round"], run["variant"], "no" if run["round"] <= warmup_rounds else "yes",
            run["wall_s"], size_mb / run["wall_s"], mib(run["tree_max_rss_kib"]), mib(run.get("python_hwm_kib")),
            mib(run.get("gzip_hwm_kib")), mib(run.get("zfs_receive_hwm_kib")), mib(run.get("curl_hwm_kib")),
            run["load_1m"]))
    print()
    ratio_verdict = "met" if summary["ratio"] <= TARGET_RATIO else "missed"
    rss_mb = summary["module_max_rss_kib"] * 1024 / 1e6
    rss_verdict = "met" if rss_mb < TARGET_MODULE_RSS_MB else "missed"
    print("median wall time, counted runs: module %.2f s, pipeline %.2f s"
          % (summary["module_median_s"], summary["pipeline_median_s"]))
    print("ratio median(module) / median(pipeline): %.3f (target <= %.2f: %s)"
          % (summary["ratio"], TARGET_RATIO, ratio_verdict))
    print("module peak RSS, max over counted runs: %.1f MiB = %.1f MB (target < %d MB: %s)"
          % (summary["module_max_rss_kib"] / 1024.0, rss_mb, TARGET_MODULE_RSS_MB, rss_verdict))
    print("load average (1, 5, 15 min): before %.2f %.2f %.2f, after %.2f %.2f %.2f"
          % (load_before + load_after))


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="Compare an image import by the image module with "
                                                 "curl | gzip -dc | zfs receive on the same image.")
    parser.add_argument("--size-mib", type=int, default=200,
                        help="size of the random payload in the image, in MiB (default: 200)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="counted rounds, each one module run and one pipeline run (default: 5)")
    parser.add_argument("--warmup-rounds", type=int, default=1,
                        help="rounds run first and left out of the medians (default: 1)")
    parser.add_argument("--json", metavar="PATH", help="also write every run and the summary to PATH as JSON")
    parser.add_argument("--stages", action="store_true",
                        help="after the timed rounds, time curl, gzip -dc, zfs receive and sha1sum alone")
    parser.add_argument("--profile", metavar="PATH",
                        help="after the timed rounds, run the module once more under cProfile and write the "
                             "stats to PATH (outside the temporary directory, which is removed)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup_rounds < 0 or args.size_mib < 1:
        parser.error("--rounds and --size-mib must be at least 1, --warmup-rounds at least 0")
    return args


def check_requirements():
    reason = zfs_available()
    if reason:
        raise SystemExit("import_speed: ZFS is not usable: %s" % reason)
    if not os.path.exists(TIME_BIN):
        raise SystemExit("import_speed: %s is missing; install GNU time (apt-get install -y time)" % TIME_BIN)
    for program in ("curl", "gzip", "nginx"):
        if shutil.which(program) is None and not os.path.exists("/usr/sbin/" + program):
            raise SystemExit("import_speed: %s is not installed" % program)


def exit_on_sigterm(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse_arguments(argv)
    check_requirements()
    # SIGTERM raises SystemExit, so the finally block below still stops nginx
    # and destroys the pools.
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    work_dir = tempfile.mkdtemp(prefix="import-speed-", dir="/var/tmp")
    bench = Bench(work_dir, args.size_mib)
    runs = []
    try:
        print("import_speed: building a %d MiB image in %s" % (args.size_mib, work_dir), flush=True)
        bench.set_up()
        load_before = os.getloadavg()
        total_rounds = args.warmup_rounds + args.rounds
        for round_number in range(1, total_rounds + 1):
            for variant, run in (("module", bench.run_module), ("pipeline", bench.run_pipeline)):
                load_1m = os.getloadavg()[0]
                record = run()
                record.update(variant=variant, round=round_number, load_1m=load_1m)
                runs.append(record)
                print("import_speed: round %d/%d %s %.2f s" % (round_number, total_rounds, variant, record["wall_s"]),
                      flush=True)
        bench.reset_target()
        load_after = os.getloadavg()
        summary = summarize(runs, args.warmup_rounds)
        print_report(bench, runs, summary, args.warmup_rounds, load_before, load_after)
        stages = []
        if args.stages:
            stages = time_stages(bench)
            print()
            print("stages alone, %d runs each (seconds):" % STAGE_REPEATS)
            for stage, walls in stages:
                runs_text = " ".join("%.2f" % wall for wall in walls)
                print("  %-40s median %.2f  runs %s" % (stage, statistics.median(walls), runs_text))
        if args.profile:
            profile_module(bench, os.path.abspath(args.profile))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"image_uuid": bench.image.uuid, "file_size": bench.file_size, "size_mib": args.size_mib,
                           "warmup_rounds": args.warmup_rounds, "load_before": load_before, "load_after": load_after,
                           "runs": runs, "summary": summary, "stages": stages}, handle, indent=2)
    finally:
        bench.tear_down()
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
