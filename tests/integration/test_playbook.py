"""The image module through real ansible-playbook, with module_defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.module_runner import COLLECTIONS, ROOT


def test_quartet_playbook(target, images, static_repo, tmp_path):
    extra = {
        "test_pool": target.pool.name,
        "test_root": target.root,
        "test_uuid": images["child"].uuid,
        "test_source": static_repo.url,
        "test_chain_length": 2,
    }
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    playbook = os.path.join(ROOT, "tests", "integration", "playbooks", "image_quartet.yml")
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

    proc = subprocess.run([ansible_playbook, playbook, "-e", "@%s" % vars_file],
                          env=env, capture_output=True, text=True, check=False)

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout
