"""Run the collection's modules the way Ansible does on a managed host.

Ansible copies a module to the host and runs it with its arguments in a JSON
file of the form ``{"ANSIBLE_MODULE_ARGS": {...}}``; the module prints one
JSON result on stdout.  Running the module file directly does the same, in a
process of its own, so tests can also kill it or run several at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, "build", "collections")


def module_path(name):
    return os.path.join(ROOT, "plugins", "modules", name + ".py")


def module_command(name, args, check=False, diff=True, path_prefix=None):
    """Return ``(argv, env, args_path)`` to start module ``name`` with ``args``.

    ``path_prefix`` is put in front of ``PATH``, to give the module stand-in
    commands such as a fake ``sysinfo``.
    """
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    with handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    if path_prefix:
        env["PATH"] = path_prefix + os.pathsep + env["PATH"]
    return [sys.executable, module_path(name), handle.name], env, handle.name


def warning_text(warning):
    """Return the message of a warning; ansible-core 2.19 sends structured warnings."""
    if isinstance(warning, dict):
        return warning.get("event", {}).get("msg", json.dumps(warning))
    return warning


def parse_result(stdout, stderr, rc):
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("module printed no JSON result (rc=%s)\nstdout: %s\nstderr: %s" % (rc, stdout, stderr))
    result["warnings"] = [warning_text(w) for w in result.get("warnings", [])]
    return result


def run_module(name, args, check=False, diff=True, timeout=600, path_prefix=None):
    argv, env, args_path = module_command(name, args, check=check, diff=diff, path_prefix=path_prefix)
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        os.unlink(args_path)
    result = parse_result(proc.stdout, proc.stderr, proc.returncode)
    result["_rc"] = proc.returncode
    return result


def start_module(name, args, check=False):
    """Start module ``name`` in the background; finish it with ``finish_module``."""
    argv, env, args_path = module_command(name, args, check=check)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.args_path = args_path
    return proc


def finish_module(proc, timeout=600):
    stdout, stderr = proc.communicate(timeout=timeout)
    os.unlink(proc.args_path)
    result = parse_result(stdout, stderr, proc.returncode)
    result["_rc"] = proc.returncode
    return result


def stand_in(directory, name, script):
    """Write an executable shell script ``name`` into ``directory`` and return the directory, for path_prefix."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    return directory
