"""The image_server role's credentials renderer, against the application's own password checks."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.smartos.images.plugins.module_utils._imgapi_auth import parse_hash, verify_password

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "image_server", "files",
                      "credentials.py")
ITERATIONS = 1000


def load_script():
    spec = importlib.util.spec_from_file_location("image_server_credentials", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


credentials = load_script()


def run_script(request):
    completed = subprocess.run([sys.executable, SCRIPT], input=json.dumps(request), capture_output=True, text=True,
                               check=False, timeout=60)
    return completed.returncode, json.loads(completed.stdout)


def lines_of(text):
    return dict(line.split(":", 1) for line in text.splitlines())


def test_hashes_verify_with_application():
    text = credentials.render([{"name": "alice", "password": "s3cret"}, {"name": "bob", "password": "other"}],
                              ITERATIONS, {})

    lines = lines_of(text)
    assert list(lines) == ["alice", "bob"]
    assert verify_password("s3cret", lines["alice"])
    assert verify_password("other", lines["bob"])
    assert not verify_password("wrong", lines["alice"])
    assert parse_hash(lines["alice"])[0] == ITERATIONS
    assert len(parse_hash(lines["alice"])[1]) == 16
    assert len(parse_hash(lines["alice"])[2]) == 32


def test_unchanged_password_keeps_line():
    first = credentials.render([{"name": "alice", "password": "s3cret"}], ITERATIONS, {})

    second = credentials.render([{"name": "alice", "password": "s3cret"}], ITERATIONS, lines_of(first))

    assert second == first


def test_changed_password_gets_new_hash():
    first = lines_of(credentials.render([{"name": "alice", "password": "s3cret"}], ITERATIONS, {}))

    second = lines_of(credentials.render([{"name": "alice", "password": "changed"}], ITERATIONS, first))

    assert second["alice"] != first["alice"]
    assert verify_password("changed", second["alice"])


def test_changed_iterations_rehash():
    first = lines_of(credentials.render([{"name": "alice", "password": "s3cret"}], ITERATIONS, {}))

    second = lines_of(credentials.render([{"name": "alice", "password": "s3cret"}], ITERATIONS + 1, first))

    assert parse_hash(second["alice"])[0] == ITERATIONS + 1


def test_removed_user_disappears():
    first = lines_of(credentials.render([{"name": "alice", "password": "a"}, {"name": "bob", "password": "b"}],
                                        ITERATIONS, {}))

    second = credentials.render([{"name": "bob", "password": "b"}], ITERATIONS, first)

    assert second == "bob:%s\n" % first["bob"]


def test_no_users_is_empty_file():
    assert credentials.render([], ITERATIONS, {}) == ""


@pytest.mark.parametrize("users, message", [
    ([{"name": "a:b", "password": "x"}], "contains a colon or whitespace"),
    ([{"name": "a b", "password": "x"}], "contains a colon or whitespace"),
    ([{"name": "", "password": "x"}], "is empty"),
    ([{"name": "a", "password": ""}], "user a has an empty password"),
    ([{"name": "a", "password": "x"}, {"name": "a", "password": "y"}], "user a is listed twice"),
    (["a"], r"image_server_users\[0\] is not a dictionary"),
    ([{"name": "a", "password": 5}], r"image_server_users\[0\] is not a dictionary"),
], ids=["colon", "space", "empty-name", "empty-password", "twice", "string", "number-password"])
def test_invalid_users_rejected(users, message):
    with pytest.raises(ValueError, match=message):
        credentials.render(users, ITERATIONS, {})


def test_script_reads_current_file(tmp_path):
    path = tmp_path / "credentials"
    first_rc, first = run_script({"path": str(path), "iterations": ITERATIONS,
                                  "users": [{"name": "alice", "password": "s3cret"}]})
    path.write_text(first["content"])

    second_rc, second = run_script({"path": str(path), "iterations": ITERATIONS,
                                    "users": [{"name": "alice", "password": "s3cret"}]})

    assert (first_rc, second_rc) == (0, 0)
    assert second["content"] == first["content"]


def test_script_reports_invalid_users_without_password(tmp_path):
    rc, result = run_script({"path": str(tmp_path / "missing"), "iterations": ITERATIONS,
                             "users": [{"name": "a", "password": "hunter2"}, {"name": "a", "password": "x"}]})

    assert rc == 1
    assert "listed twice" in result["error"]
    assert "hunter2" not in result["error"]
