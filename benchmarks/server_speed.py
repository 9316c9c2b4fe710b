"""Measure the image server (gunicorn behind nginx) against nginx serving the same bytes as static files.

The benchmark builds a repository of ``--images`` manifests (default
2,100). They are the real manifests of ``tests/fixtures/manifests/``,
including the 99 of the saved DSAPI listing there, each upgraded to v2 as
imgadm upgrades them and repeated with new UUIDs and ``published_at``
values. One more image has a ``--file-mib`` file of random bytes (default
200 MiB). It
starts the stack of ``tests/support/image_server_stack.py``: gunicorn with
``--workers`` gthread workers of 4 threads, and nginx with the role's
server block template. A second nginx server block on another port serves
the same listing bytes as a static JSON file, and the same image file from
a plain location.

It then measures on 127.0.0.1:

- ``GET /images`` requests per second with ``wrk`` (``-t2 -c16``,
  ``--seconds`` per run): the application's listing, the same listing with a
  query parameter that changes on every request so that the application's
  response cache never answers, and the static file.
- the file download rate with ``curl -o /dev/null``: through the
  application (X-Accel-Redirect) and from the static location.

Each measurement runs ``--runs`` times (default 3) and the median is
reported. Run as root (nginx's workers read the repository as root) from
the repository root, with wrk installed (``apt-get install -y wrk``):

    .venv/bin/python -m benchmarks.server_speed

Everything lives in one ``/var/tmp/server-speed-*`` directory that is
removed at the end.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid as uuidlib

from ansible_collections.smartos.images.plugins.module_utils._errors import ManifestError
from ansible_collections.smartos.images.plugins.module_utils._manifest import upgrade_manifest

from tests.support.image_server_stack import ImageServerStack, free_port, write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "manifests")
WRK_THREADS = 2
WRK_CONNECTIONS = 16

STATIC_SERVER = """
    server {{
        listen 127.0.0.1:{port};
        location = /images.json {{ default_type application/json; alias {listing}; }}
        location = /image.file {{ default_type application/octet-stream; alias {file}; }}
    }}
"""

CACHE_BUSTING_SCRIPT = """
counter = 0
request = function()
    counter = counter + 1
    return wrk.format("GET", "/images?request=" .. counter)
end
"""


def fixture_manifests():
    """Return the real manifests of the fixtures directory, upgraded to v2; skip those imgadm cannot upgrade."""
    manifests = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        for manifest in data if isinstance(data, list) else [data]:
            try:
                manifests.append(dict(upgrade_manifest(manifest)))
            except ManifestError:
                continue
    return manifests


def build_repository(repository, count, file_mib):
    """Write ``count`` manifests and one large image; return the large image's UUID and file path."""
    sources = fixture_manifests()
    for index in range(count - 1):
        manifest = json.loads(json.dumps(sources[index % len(sources)]))
        manifest["uuid"] = str(uuidlib.uuid4())
        manifest["state"] = "active"
        manifest["disabled"] = False
        # Every fifth image shares its published_at with the one before it.
        minute = index - index // 5
        manifest["published_at"] = "2021-%02d-%02dT%02d:%02d:00.000Z" % (
            1 + minute // 40000 % 12, 1 + minute // 1440 % 28, minute // 60 % 24, minute % 60)
        directory = os.path.join(repository, "images", manifest["uuid"])
        os.makedirs(directory)
        with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)

    big_uuid = str(uuidlib.uuid4())
    data = os.urandom(file_mib * 1024 * 1024)
    manifest = {
        "v": 2, "uuid": big_uuid, "owner": "00000000-0000-0000-0000-000000000000", "name": "big",
        "version": "1.0.0", "state": "active", "disabled": False, "public": True,
        "published_at": "2030-01-01T00:00:00.000Z", "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": "", "size": len(data), "compression": "none"}],
    }
    record = write_image(repository, manifest, data)
    manifest["files"][0]["sha1"] = record["sha1"]
    with open(os.path.join(repository, "images", big_uuid, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    return big_uuid, os.path.join(repository, "images", big_uuid, "file")


def run_wrk(url, seconds, script=None):
    command = ["wrk", "-t%d" % WRK_THREADS, "-c%d" % WRK_CONNECTIONS, "-d%ds" % seconds, "--latency"]
    if script:
        command += ["-s", script]
    completed = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 60, check=True)
    output = completed.stdout
    requests_per_second = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", output)
    latency = re.search(r"\s99%\s+([0-9.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests_per_second": requests_per_second,
        "p99_ms": float(latency.group(1)) * scale[latency.group(2)] if latency else None,
        "errors": int(errors.group(1)) if errors else 0,
    }


def run_curl(url):
    completed = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} "
                                "%{time_total}", url], capture_output=True, text=True, timeout=600, check=True)
    status, size, seconds = completed.stdout.split()
    if status != "200":
        raise RuntimeError("%s returned HTTP %s" % (url, status))
    return {"bytes": int(size), "seconds": float(seconds), "mb_per_second": int(size) / float(seconds) / 1e6}


def median_of(runs, key):
    return statistics.median(run[key] for run in runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--images", type=int, default=2100, help="manifests in the catalog (default 2100)")
    parser.add_argument("--file-mib", type=int, default=200, help="size of the large image file in MiB")
    parser.add_argument("--seconds", type=int, default=10, help="duration of one wrk run in seconds")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; the median is reported")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--json", help="also write every run to this file")
    arguments = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed; install it with: apt-get install -y wrk")

    work = tempfile.mkdtemp(prefix="server-speed-", dir="/var/tmp")
    try:
        repository = os.path.join(work, "repo")
        os.makedirs(repository)
        started = time.monotonic()
        big_uuid, big_file = build_repository(repository, arguments.images, arguments.file_mib)
        print("repository of %d images built in %.1f s" % (arguments.images, time.monotonic() - started))

        static_port = free_port()
        listing_path = os.path.join(work, "images.json")
        extra = STATIC_SERVER.format(port=static_port, listing=listing_path, file=big_file)
        stack = ImageServerStack(repository, work_dir=os.path.join(work, "stack"), gunicorn_workers=arguments.workers,
                                 nginx_workers=2, extra_nginx=extra, log_level="WARNING")
        # The static server block must find the listing when nginx starts.
        with open(listing_path, "wb") as handle:
            handle.write(b"[]")
        with stack:
            with urllib.request.urlopen(stack.url + "/images", timeout=60) as response:
                listing = response.read()
            with open(listing_path, "wb") as handle:
                handle.write(listing)
            count = len(json.loads(listing))
            print("GET /images returns %d manifests, %d bytes" % (count, len(listing)))

            script = os.path.join(work, "cache-busting.lua")
            with open(script, "w", encoding="utf-8") as handle:
                handle.write(CACHE_BUSTING_SCRIPT)
            static_url = "http://127.0.0.1:%d" % static_port
            results = {"listing_bytes": len(listing), "listing_count": count, "runs": {}}
            variants = [
                ("app GET /images", lambda: run_wrk(stack.url + "/images", arguments.seconds)),
                ("app GET /images, uncached", lambda: run_wrk(stack.url + "/images", arguments.seconds, script)),
                ("static images.json", lambda: run_wrk(static_url + "/images.json", arguments.seconds)),
                ("app GET /images/:uuid/file", lambda: run_curl("%s/images/%s/file" % (stack.url, big_uuid))),
                ("static image file", lambda: run_curl(static_url + "/image.file")),
            ]
            for round_number in range(arguments.runs):
                for name, measure in variants:
                    result = measure()
                    results["runs"].setdefault(name, []).append(result)
                    print("round %d %-28s %s" % (round_number + 1, name, json.dumps(result)))

        print()
        print("| Variant | Median | Runs |")
        print("| --- | --- | --- |")
        for name, runs in results["runs"].items():
            if "requests_per_second" in runs[0]:
                print("| %s | %.0f requests/s (p99 %.1f ms) | %s |" % (
                    name, median_of(runs, "requests_per_second"), median_of(runs, "p99_ms"),
                    ", ".join("%.0f" % run["requests_per_second"] for run in runs)))
            else:
                print("| %s | %.0f MB/s | %s |" % (
                    name, median_of(runs, "mb_per_second"),
                    ", ".join("%.0f" % run["mb_per_second"] for run in runs)))
        results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "python": sys.version.split()[0]}
        if arguments.json:
            with open(arguments.json, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
