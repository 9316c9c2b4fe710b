"""The image server as deployed: gunicorn running the WSGI application, behind nginx, on loopback.

nginx's server block is the image_server role's template,
``roles/image_server/templates/nginx-image-server.conf.j2``, rendered with
jinja2 and included in a minimal ``nginx.conf`` of this stack's own::

    with ImageServerStack(repository, credentials=path) as stack:
        requests.get(stack.url + "/images")

``populate`` fills a repository directly in its on-disk layout, for tests
and benchmarks that need many images.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid as uuidlib

import jinja2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
TEMPLATE = os.path.join(ROOT, "roles", "image_server", "templates", "nginx-image-server.conf.j2")
APPLICATION = "ansible_collections.smartos.images.plugins.module_utils._imgapi_app:application"
ACCEL_PREFIX = "/_repository/"

NGINX_CONF = """\
{user}
daemon off;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {access_log};
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    sendfile on;
    include {prefix}/image-server.conf;
{extra}
}}
"""


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def render_server_block(**variables):
    """Render the role's nginx template with plain jinja2, failing on any variable it does not get."""
    with open(TEMPLATE, encoding="utf-8") as handle:
        source = handle.read()
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.from_string(source).render(**variables)


class ImageServerStack:
    """gunicorn and nginx serving one repository on 127.0.0.1; stopped by ``stop`` or the context manager."""

    def __init__(self, repository, work_dir=None, credentials=None, channels=(), mode="public",
                 max_upload=None, gunicorn_workers=2, gunicorn_threads=4, nginx_workers=1, extra_nginx="",
                 access_log=False, log_level="INFO"):
        self.repository = os.path.abspath(repository)
        self.work_dir = os.path.abspath(work_dir or os.path.join(self.repository, "..", "stack-%d" % free_port()))
        self.credentials = credentials
        self.channels = list(channels)
        self.mode = mode
        self.max_upload = max_upload
        self.gunicorn_workers = gunicorn_workers
        self.gunicorn_threads = gunicorn_threads
        self.nginx_workers = nginx_workers
        self.extra_nginx = extra_nginx
        self.access_log = access_log
        self.log_level = log_level
        self.app_port = free_port()
        self.port = free_port()
        self.gunicorn = None
        self.nginx = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def app_url(self):
        return "http://127.0.0.1:%d" % self.app_port

    @property
    def app_log(self):
        return os.path.join(self.work_dir, "gunicorn.log")

    def read_app_log(self):
        with open(self.app_log, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def environment(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = COLLECTIONS
        env["SMARTOS_IMAGES_REPOSITORY"] = self.repository
        env["SMARTOS_IMAGES_ACCEL_PREFIX"] = ACCEL_PREFIX
        env["SMARTOS_IMAGES_MODE"] = self.mode
        env["SMARTOS_IMAGES_CHANNELS"] = ",".join(self.channels)
        env["SMARTOS_IMAGES_LOG_LEVEL"] = self.log_level
        if self.credentials:
            env["SMARTOS_IMAGES_CREDENTIALS"] = self.credentials
        else:
            env.pop("SMARTOS_IMAGES_CREDENTIALS", None)
        if self.max_upload is not None:
            env["SMARTOS_IMAGES_MAX_UPLOAD"] = str(self.max_upload)
        return env

    def start(self):
        os.makedirs(os.path.join(self.work_dir, "tmp"), exist_ok=True)
        block = render_server_block(
            image_server_listen="127.0.0.1:%d" % self.port,
            image_server_repository=self.repository,
            image_server_app_address="127.0.0.1:%d" % self.app_port,
            image_server_accel_prefix=ACCEL_PREFIX,
            image_server_client_max_body_size="21g",
        )
        with open(os.path.join(self.work_dir, "image-server.conf"), "w", encoding="utf-8") as handle:
            handle.write(block)
        conf = os.path.join(self.work_dir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            # Test repositories live under pytest's private temporary
            # directory, which nginx's unprivileged workers cannot read.
            handle.write(NGINX_CONF.format(
                user="user root;" if os.geteuid() == 0 else "", prefix=self.work_dir, workers=self.nginx_workers,
                access_log=os.path.join(self.work_dir, "access.log") if self.access_log else "off",
                extra=self.extra_nginx))

        with open(self.app_log, "ab") as log:
            self.gunicorn = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:%d" % self.app_port,
                 "--workers", str(self.gunicorn_workers), "--worker-class", "gthread",
                 "--threads", str(self.gunicorn_threads), "--timeout", "120", APPLICATION],
                env=self.environment(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with open(os.path.join(self.work_dir, "nginx.stderr"), "ab") as log:
            self.nginx = subprocess.Popen([nginx, "-c", conf, "-p", self.work_dir], stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=log, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + 30
        last_error = None
        while time.monotonic() < deadline:
            for name, process in (("gunicorn", self.gunicorn), ("nginx", self.nginx)):
                if process.poll() is not None:
                    raise RuntimeError("%s exited with status %s while starting; see %s"
                                       % (name, process.returncode, self.work_dir))
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=2) as response:
                    if json.load(response).get("imgapi") is True:
                        return
            except (OSError, ValueError) as exc:
                last_error = exc
            time.sleep(0.1)
        raise RuntimeError("the image server stack did not answer /ping within 30 s (%s); see %s"
                           % (last_error, self.work_dir))

    def stop(self):
        for process, stop_signal in ((self.nginx, signal.SIGQUIT), (self.gunicorn, signal.SIGTERM)):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(stop_signal)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def write_credentials(path, user, password):
    """Write a credentials file with one write API user, hashed with few iterations so tests start fast."""
    from ansible_collections.smartos.images.plugins.module_utils._imgapi_auth import hash_password

    with open(path, "w", encoding="utf-8") as handle:
        handle.write("%s:%s\n" % (user, hash_password(password, iterations=1000)))
    return path


def write_image(repository, manifest, data):
    """Write one published image straight into the repository layout, with its checksum record."""
    directory = os.path.join(repository, "images", manifest["uuid"])
    os.makedirs(directory, exist_ok=True)
    file_path = os.path.join(directory, "file")
    with open(file_path, "wb") as handle:
        handle.write(data)
    stat = os.stat(file_path)
    record = {
        "size": len(data),
        "sha1": hashlib.sha1(data).hexdigest(),
        "md5": base64.b64encode(hashlib.md5(data).digest()).decode("ascii"),
        "mtime_ns": stat.st_mtime_ns,
    }
    with open(os.path.join(directory, "file.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    return record


def synthetic_manifest(index, published_at, data, uuid=None, name=None):
    """Return a valid active manifest for a small synthetic image file ``data``."""
    return {
        "v": 2,
        "uuid": uuid or str(uuidlib.uuid4()),
        "owner": "00000000-0000-0000-0000-000000000000",
        "name": name or "synthetic-%d" % (index % 17),
        "version": "1.0.%d" % index,
        "state": "active",
        "disabled": False,
        "public": True,
        "published_at": published_at,
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}],
        "description": "synthetic image %d" % index,
    }


def populate(repository, count, shared_timestamps=7):
    """Publish ``count`` small synthetic images, many sharing a ``published_at``; return their manifests.

    Image ``i`` is published at one of ``count // shared_timestamps + 1``
    instants, so that runs of ``shared_timestamps`` images share a
    ``published_at`` and page boundaries fall inside such runs.
    """
    manifests = []
    for index in range(count):
        minute = index // shared_timestamps
        published_at = "2020-01-%02dT%02d:%02d:00.000Z" % (1 + minute // 1440, minute // 60 % 24, minute % 60)
        data = ("image %d\n" % index).encode("ascii")
        manifest = synthetic_manifest(index, published_at, data)
        write_image(repository, manifest, data)
        manifests.append(manifest)
    return manifests
