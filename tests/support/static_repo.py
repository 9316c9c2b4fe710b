"""A static IMGAPI layout served by a real nginx on loopback.

nginx maps the IMGAPI read routes onto plain files, so the tests and the demo
import through a real web server:

- ``GET /ping`` -> ``ping.json``
- ``GET /images`` -> ``images.json`` (every manifest; the server applies no
  filters, so clients must filter the listing themselves)
- ``GET /images/<uuid>`` -> ``manifests/<uuid>.json``
- ``GET /images/<uuid>/file`` -> ``files/<uuid>.file`` (nginx sends
  ``Content-Length``, ``ETag`` and honours ``Range``)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

NGINX_CONF = """\
{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    sendfile on;
    server {{
        listen {host}:{port};
        default_type application/octet-stream;
        location = /ping {{ default_type application/json; alias {root}/ping.json; }}
        location = /images {{ default_type application/json; alias {root}/images.json; }}
        location ~ "^/images/([0-9a-f-]{{36}})$" {{
            default_type application/json;
            alias {root}/manifests/$1.json;
        }}
        location ~ "^/images/([0-9a-f-]{{36}})/file$" {{ alias {root}/files/$1.file; }}
        location / {{ return 404 '{{"code":"ResourceNotFound","message":"not found"}}'; }}
    }}
}}
"""


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class StaticRepository:
    """A repository directory and the nginx process that serves it."""

    def __init__(self, root, host="127.0.0.1", port=None):
        self.root = os.path.abspath(root)
        self.host = host
        self.port = port or free_port(host)
        self.prefix = os.path.join(self.root, ".nginx")
        self.process = None
        for sub in ("manifests", "files", ".nginx/tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        with open(os.path.join(self.root, "ping.json"), "w") as handle:
            json.dump({"ping": "pong", "imgapi": True, "version": "4.0.0"}, handle)
        self._write_index()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def add(self, manifest, file_path):
        """Publish an image: copy its file and manifest into the layout and update the index."""
        uuid = manifest["uuid"]
        shutil.copyfile(file_path, os.path.join(self.root, "files", uuid + ".file"))
        with open(os.path.join(self.root, "manifests", uuid + ".json"), "w") as handle:
            json.dump(manifest, handle, indent=2)
        self._write_index()

    def _write_index(self):
        manifests = []
        directory = os.path.join(self.root, "manifests")
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name)) as handle:
                manifests.append(json.load(handle))
        manifests.sort(key=lambda m: (m.get("published_at", ""), m["uuid"]))
        with open(os.path.join(self.root, "images.json"), "w") as handle:
            json.dump(manifests, handle)

    def is_serving(self):
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=2) as response:
                return json.load(response).get("imgapi") is True
        except (OSError, ValueError):
            return False

    def start(self, detach=False):
        """Start nginx; with ``detach`` it outlives this process (stop it with ``nginx -s quit``)."""
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as handle:
            # Test repositories live under pytest's private temporary
            # directory, which nginx's unprivileged workers cannot read.
            user = "user root;" if os.geteuid() == 0 else ""
            handle.write(NGINX_CONF.format(user=user, prefix=self.prefix, root=self.root, host=self.host,
                                           port=self.port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if detach:
            with open(os.path.join(self.prefix, "stderr.log"), "ab") as log:
                self.process = subprocess.Popen([nginx, "-c", conf, "-p", self.prefix], stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=log, start_new_session=True)
        else:
            self.process = subprocess.Popen([nginx, "-c", conf, "-p", self.prefix], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nginx exited with %s; see %s" % (self.process.returncode, self.prefix))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start listening on %s" % self.url)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
