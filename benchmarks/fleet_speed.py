"""Time playbooks/ensure_images.yml over SSH on three hosts.

The three hosts are three sshd processes on 127.0.0.2, 127.0.0.3 and
127.0.0.4 of this machine. Ansible reaches each one over SSH as root with a
key made for the run. Each host has its own zfs-fuse pool and its own
imgadm.conf, manifest cache, download and lock directories, set through the
playbook's host variables ``images_pool`` and ``images_module_defaults``.
nginx serves the images on 127.0.0.1 from an IMGAPI layout
(``tests.support.static_repo``). The images are built from real ZFS
datasets with ``tests.support.imagebuilder``, each holding ``--size-mib``
MiB of random bytes, gzip-compressed.

Every host declares the same ``--images`` images by name and version, so
the first play resolves them once on the controller. Each round then runs,
one after the other:

- **cold**: ensure_images.yml with no image present on any host (the
  round's first step destroys them, and removes the cache and download
  files);
- **warm**: ensure_images.yml again, with every image present;
- **stat**: a playbook of one play with one ``ansible.builtin.stat`` task
  an image, over the same SSH hosts, as a baseline of what Ansible itself
  costs for that many tasks.

Before the first round, the stat playbook runs once uncounted, so that every
round finds Ansible's SSH connections (ControlPersist) already open. Each
run's wall time is measured with ``time.perf_counter()`` around the
``ansible-playbook`` process. Ansible's pipelining is off, its default,
unless ``--pipelining`` turns it on. Run as root from the repository root:

    .venv/bin/python -m benchmarks.fleet_speed [--pipelining]

The pools, the keys, sshd's configuration and the hosts' state live in one
``/var/tmp/fleet-speed-*`` directory, which is removed at the end, after
the sshd processes are stopped and the pools destroyed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.facts_speed import machine_details, print_machine
from tests.support import imagebuilder
from tests.support.module_runner import COLLECTIONS, ROOT
from tests.support.pools import Pool, ensure_daemon, letters, zfs_available
from tests.support.static_repo import StaticRepository

HOST_ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
PLAYBOOK = os.path.join(ROOT, "playbooks", "ensure_images.yml")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
SSHD = "/usr/sbin/sshd"
REMOTE_PYTHON = "/usr/bin/python3"
# zfs-fuse can report a dataset or pool busy for a while after use. One
# benchmark run saw a pool stay busy for more than 30 s, and then go on the
# first try a minute later.
DESTROY_TIMEOUT = 120.0
# One playbook run takes seconds here. A run once hung for minutes because
# zfs-fuse left a `zfs rename` waiting for a FUSE request forever, so a run
# that takes longer than this fails the benchmark instead.
RUN_TIMEOUT = 600.0

SSHD_CONFIG = """\
ListenAddress {address}:22
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The keys live below /var/tmp, which is world-writable, so sshd's
# ownership checks of the path would reject them.
StrictModes no
MaxStartups 50
MaxSessions 50
Subsystem sftp internal-sftp
LogLevel ERROR
"""


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError("%s failed with exit status %d: %s"
                           % (" ".join(command), result.returncode, (result.stderr or result.stdout).strip()))
    return result.stdout


def check_pool_name_free(name):
    # Pool.create destroys an existing pool of the same name, which might be
    # someone else's, so stop instead.
    if subprocess.run(["zpool", "list", name], capture_output=True, check=False).returncode == 0:
        raise RuntimeError("pool %s already exists and this run did not create it; destroy it if it is left from "
                           "an earlier run, or run the benchmark again (the name comes from the process id)" % name)


def destroy_dataset(name):
    """Destroy ``name`` and everything cloned from it, retrying while zfs-fuse reports it busy."""
    deadline = time.monotonic() + DESTROY_TIMEOUT
    while True:
        result = subprocess.run(["zfs", "destroy", "-R", name], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        # An earlier destroy -R may have taken this dataset with it.
        if subprocess.run(["zfs", "list", name], capture_output=True, check=False).returncode != 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("zfs destroy -R %s kept failing for %.0f s: %s"
                               % (name, DESTROY_TIMEOUT, result.stderr.strip()))
        time.sleep(0.5)


def destroy_pool(pool):
    """Destroy ``pool`` and its file; return False when zfs-fuse still reports it busy after ``DESTROY_TIMEOUT`` s."""
    deadline = time.monotonic() + DESTROY_TIMEOUT
    while True:
        result = subprocess.run(["zpool", "destroy", "-f", pool.name], capture_output=True, check=False)
        pool_missing = subprocess.run(["zpool", "list", pool.name], capture_output=True, check=False).returncode != 0
        if result.returncode == 0 or pool_missing:
            pool.destroy()
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


class SshHost:
    """One sshd process on a loopback address, and the pool and state directories of that host."""

    def __init__(self, name, address, work_dir, pool_name):
        self.name = name
        self.address = address
        self.root = os.path.join(work_dir, "hosts", name)
        self.pool = Pool(pool_name, self.root, size="1G")
        self.pool_created = False
        self.process = None

    def state(self):
        """Return the module options that point this host's modules at its own state directories."""
        return {
            "config_file": os.path.join(self.root, "imgadm.conf"),
            "cache_dir": os.path.join(self.root, "cache"),
            "download_dir": os.path.join(self.root, "downloads"),
            "lock_dir": os.path.join(self.root, "locks"),
        }

    def start_sshd(self, keys):
        os.makedirs(self.root, exist_ok=True)
        config = os.path.join(self.root, "sshd_config")
        with open(config, "w") as handle:
            handle.write(SSHD_CONFIG.format(address=self.address, host_key=keys["host"],
                                            pid_file=os.path.join(self.root, "sshd.pid"),
                                            authorized_keys=keys["authorized"]))
        # sshd -D stays in the foreground, so the process started here is
        # the listener, and -e sends its log to the file below.
        log = open(os.path.join(self.root, "sshd.log"), "wb")
        with log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with open(os.path.join(self.root, "sshd.log")) as handle:
                    raise RuntimeError("sshd on %s exited with %s: %s"
                                       % (self.address, self.process.returncode, handle.read().strip()))
            try:
                with socket.create_connection((self.address, 22), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening on %s:22" % self.address)

    def stop_sshd(self):
        """Stop the listener and every process below it, which outlive it otherwise.

        The sessions' module processes and their ``zfs`` commands are below
        it. Whatever SIGTERM left a second later gets SIGKILL, which also
        ends a ``zfs`` command that waits for zfs-fuse.
        """
        if self.process is None:
            return
        for stop_signal in (signal.SIGTERM, signal.SIGKILL):
            for pid in descendant_pids(self.process.pid):
                try:
                    os.kill(pid, stop_signal)
                except ProcessLookupError:
                    pass
            time.sleep(1)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def create_pool(self):
        check_pool_name_free(self.pool.name)
        os.makedirs(self.root, exist_ok=True)
        self.pool.create()
        self.pool_created = True

    def reset(self):
        """Remove every image and the module state, so that the next run imports everything."""
        names = run(["zfs", "list", "-H", "-o", "name", "-d", "1", "-t", "filesystem,volume", self.pool.name]).split()
        for name in names:
            if name != self.pool.name:
                destroy_dataset(name)
        for directory in ("cache", "downloads", "locks"):
            shutil.rmtree(os.path.join(self.root, directory), ignore_errors=True)

    def image_uuids(self):
        names = run(["zfs", "list", "-H", "-o", "name", "-d", "1", "-t", "filesystem", self.pool.name]).split()
        return sorted(name.split("/", 1)[1] for name in names if "/" in name)


def descendant_pids(ancestor):
    """Return the pids of the processes below ``ancestor`` in the process tree, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    descendants = []
    frontier = [ancestor]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        descendants += children
        frontier += children
    return descendants


def make_keys(work_dir):
    keys = {"host": os.path.join(work_dir, "ssh_host_ed25519_key"),
            "client": os.path.join(work_dir, "client_ed25519_key"),
            "authorized": os.path.join(work_dir, "authorized_keys")}
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keys["host"]])
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keys["client"]])
    shutil.copyfile(keys["client"] + ".pub", keys["authorized"])
    return keys


def build_images(pool_name, out_dir, count, size_mib):
    """Build ``count`` full gzip images from datasets of ``size_mib`` MiB of random bytes each."""
    built = []
    for number in range(count):
        files = {"etc/motd": b"fleet benchmark image %d\n" % number,
                 "opt/payload.bin": imagebuilder.random_payload(size_mib * 1024 * 1024, seed=100 + number)}
        dataset = imagebuilder.make_dataset("%s/fleet-%s" % (pool_name, letters(number)), files)
        built.append(imagebuilder.build_image(dataset=dataset, out_dir=out_dir, name="fleet-" + letters(number),
                                              version="1.0.0", compression="gzip"))
    return built


def write_inventory(path, hosts, keys, repo_url, images):
    host_entries = {}
    for host in hosts:
        host_entries[host.name] = {
            "ansible_host": host.address,
            "images_pool": host.pool.name,
            "images_module_defaults": host.state(),
        }
    group_vars = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": keys["client"],
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_python_interpreter": REMOTE_PYTHON,
        "images_sources": [{"url": repo_url}],
        "images_ensure": [{"name": image.manifest["name"], "version": image.manifest["version"]} for image in images],
    }
    # JSON is valid YAML, and the YAML inventory plugin reads it.
    with open(path, "w") as handle:
        json.dump({"smartos_hosts": {"hosts": host_entries, "vars": group_vars}}, handle, indent=2)


def write_stat_playbook(path, task_count):
    tasks = [{"name": "Stat the root directory, task %d" % (number + 1), "ansible.builtin.stat": {"path": "/"}}
             for number in range(task_count)]
    with open(path, "w") as handle:
        json.dump([{"name": "Trivial tasks over SSH", "hosts": "smartos_hosts", "gather_facts": False,
                    "tasks": tasks}], handle, indent=2)


def recap(stdout):
    """Return the PLAY RECAP counters of each host."""
    counters = {}
    for line in stdout.split("PLAY RECAP", 1)[-1].splitlines()[1:]:
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match:
            counters[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return counters


class Runner:
    """Runs ansible-playbook over the benchmark's inventory and times it."""

    def __init__(self, work_dir, inventory, pipelining):
        self.inventory = inventory
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_HOST_KEY_CHECKING="false",
                        ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(work_dir, "cp"),
                        ANSIBLE_LOCAL_TEMP=os.path.join(work_dir, "ansible-local"),
                        ANSIBLE_NOCOLOR="true", ANSIBLE_RETRY_FILES_ENABLED="false",
                        ANSIBLE_PIPELINING="true" if pipelining else "false")
        self.control_dir = self.env["ANSIBLE_SSH_CONTROL_PATH_DIR"]
        self.log_dir = os.path.join(work_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)

    def run(self, playbook, label):
        """Run ``playbook``; return its wall time in seconds and its PLAY RECAP, or raise when it fails."""
        started = time.perf_counter()
        try:
            proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", self.inventory, playbook], env=self.env,
                                  capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError("%s did not finish within %.0f s; a zfs or zpool command on a host may be waiting "
                               "for zfs-fuse (see ps -ef --forest)" % (label, RUN_TIMEOUT)) from exc
        elapsed = time.perf_counter() - started
        log = os.path.join(self.log_dir, label + ".log")
        with open(log, "w") as handle:
            handle.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError("%s exited with %d; see %s:\n%s" % (label, proc.returncode, log, proc.stdout[-3000:]))
        return elapsed, recap(proc.stdout), proc.stdout

    def close_connections(self):
        """Close the SSH master connections that ControlPersist keeps open after the last run."""
        if not os.path.isdir(self.control_dir):
            return
        for name in os.listdir(self.control_dir):
            subprocess.run(["ssh", "-O", "exit", "-o", "ControlPath=" + os.path.join(self.control_dir, name), "x"],
                           capture_output=True, check=False, timeout=10)


def count_task_banners(stdout):
    return stdout.count("\nTASK [")


def check_round(hosts, images, cold_recap, warm_recap):
    expected = sorted(image.uuid for image in images)
    for host in hosts:
        if host.image_uuids() != expected:
            raise RuntimeError("%s has images %s after the runs, expected %s" % (host.name, host.image_uuids(), expected))
        if cold_recap[host.name]["changed"] != 1:
            raise RuntimeError("the cold run changed %d tasks on %s, expected 1 (the import)"
                               % (cold_recap[host.name]["changed"], host.name))
        if warm_recap[host.name]["changed"] != 0:
            raise RuntimeError("the warm run changed %d tasks on %s, expected none"
                               % (warm_recap[host.name]["changed"], host.name))


def print_report(rounds, host_count, image_count, size_mib, image_bytes, task_counts, pipelining, details):
    units = host_count * image_count
    print()
    print_machine(details)
    print()
    print("Hosts: %d, images a host: %d, payload %d MiB an image, %d bytes of gzip files in all; "
          "task banners in the warm run's output: %d; stat tasks a host: %d; Ansible pipelining: %s."
          % (host_count, image_count, size_mib, image_bytes, task_counts["warm"], image_count,
             "on" if pipelining else "off"))
    print()
    print("| round | cold s | warm s | stat s | load 1m before |")
    print("|------:|-------:|-------:|-------:|---------------:|")
    for number, result in enumerate(rounds, 1):
        values = (number, result["cold"], result["warm"], result["stat"], result["load"])
        print("| %d | %.2f | %.2f | %.2f | %.2f |" % values)
    print()
    medians = {kind: statistics.median(result[kind] for result in rounds) for kind in ("cold", "warm", "stat")}
    print("| Median over the rounds | Wall s | s a host and image |")
    print("|---|---:|---:|")
    print("| cold: ensure_images.yml, nothing present | %.2f | %.3f |" % (medians["cold"], medians["cold"] / units))
    print("| warm: ensure_images.yml, everything present | %.2f | %.3f |" % (medians["warm"], medians["warm"] / units))
    print("| stat: %d trivial stat tasks a host | %.2f | %.3f |" % (image_count, medians["stat"], medians["stat"] / units))
    difference = medians["warm"] - medians["stat"]
    print("| warm minus stat | %.2f | %.3f |" % (difference, difference / units))
    print("| warm / stat | %.2f | |" % (medians["warm"] / medians["stat"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time playbooks/ensure_images.yml over SSH on three local hosts.")
    parser.add_argument("--rounds", type=int, default=3, help="cold, warm and stat runs to time (default: 3)")
    parser.add_argument("--images", type=int, default=5, help="images every host ensures (default: 5)")
    parser.add_argument("--size-mib", type=int, default=8, help="random payload of each image in MiB (default: 8)")
    parser.add_argument("--pipelining", action="store_true",
                        help="turn Ansible's pipelining on (ANSIBLE_PIPELINING), which runs each module over one "
                             "SSH command instead of copying it first (default: off, Ansible's default)")
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1 or arguments.images < 1 or arguments.size_mib < 1:
        parser.error("--rounds, --images and --size-mib must be at least 1")

    reason = zfs_available()
    if reason:
        sys.exit("fleet_speed: ZFS is not usable here: %s" % reason)
    for program in (SSHD, REMOTE_PYTHON):
        if not os.path.exists(program):
            sys.exit("fleet_speed: %s is missing; install it (apt-get install -y openssh-server python3)" % program)
    # sshd stops at start when its privilege separation directory is missing.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    ensure_daemon()

    work_dir = tempfile.mkdtemp(prefix="fleet-speed-", dir="/var/tmp")
    suffix = letters(os.getpid())
    build_pool = Pool("fleetbuild" + suffix, work_dir, size="1G")
    build_pool_created = False
    hosts = [SshHost("node-" + letters(number), address, work_dir, "fleet" + suffix + "x" + letters(number))
             for number, address in enumerate(HOST_ADDRESSES)]
    repo = None
    runner = None
    pools_left = []
    failure = None
    try:
        details = machine_details()
        keys = make_keys(work_dir)
        check_pool_name_free(build_pool.name)
        build_pool.create()
        build_pool_created = True
        started = time.perf_counter()
        images = build_images(build_pool.name, os.path.join(work_dir, "images"), arguments.images,
                              arguments.size_mib)
        print("fleet_speed: built %d images in %.1f s" % (len(images), time.perf_counter() - started),
              file=sys.stderr)
        repo = StaticRepository(os.path.join(work_dir, "repo"))
        for image in images:
            repo.add(image.manifest, image.file_path)
        repo.start()
        for host in hosts:
            host.create_pool()
            host.start_sshd(keys)

        inventory = os.path.join(work_dir, "inventory.yml")
        write_inventory(inventory, hosts, keys, repo.url, images)
        stat_playbook = os.path.join(work_dir, "stat.yml")
        write_stat_playbook(stat_playbook, arguments.images)
        runner = Runner(work_dir, inventory, arguments.pipelining)
        runner.run(stat_playbook, "warm-up")

        rounds = []
        task_counts = {}
        for number in range(1, arguments.rounds + 1):
            try:
                for host in hosts:
                    host.reset()
                load = os.getloadavg()[0]
                cold, cold_recap, _output = runner.run(PLAYBOOK, "round%d-cold" % number)
                warm, warm_recap, warm_output = runner.run(PLAYBOOK, "round%d-warm" % number)
                stat, _recap, _output = runner.run(stat_playbook, "round%d-stat" % number)
                check_round(hosts, images, cold_recap, warm_recap)
            except RuntimeError as exc:
                # Report the rounds that completed, then fail.
                failure = "round %d failed: %s" % (number, exc)
                break
            task_counts["warm"] = count_task_banners(warm_output)
            rounds.append({"cold": cold, "warm": warm, "stat": stat, "load": load})
            print("fleet_speed: round %d: cold %.2f s, warm %.2f s, stat %.2f s" % (number, cold, warm, stat),
                  file=sys.stderr)
        image_bytes = sum(image.manifest["files"][0]["size"] for image in images)
        if rounds:
            print_report(rounds, len(hosts), len(images), arguments.size_mib, image_bytes, task_counts,
                         arguments.pipelining, details)
    finally:
        if runner is not None:
            runner.close_connections()
        for host in hosts:
            host.stop_sshd()
        if repo is not None:
            repo.stop()
        for host in hosts:
            if host.pool_created and not destroy_pool(host.pool):
                pools_left.append(host.pool.name)
        if build_pool_created and not destroy_pool(build_pool):
            pools_left.append(build_pool.name)
        if pools_left:
            print("fleet_speed: zfs-fuse keeps reporting pools %s busy; destroy them with zpool destroy -f, "
                  "then remove %s" % (", ".join(pools_left), work_dir), file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    if failure:
        print("fleet_speed: %s" % failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
