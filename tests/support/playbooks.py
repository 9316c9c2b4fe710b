"""Run the collection's playbooks with real ansible-playbook and read their output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.support.module_runner import COLLECTIONS, ROOT

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def playbook_path(name):
    """Return the path of ``playbooks/<name>`` in this checkout."""
    return os.path.join(ROOT, "playbooks", name)


def write_inventory(tmp_path, groups):
    """Write ``groups`` ({group: {"hosts": {...}, "vars": {...}}}) as an inventory and return its path."""
    # JSON is valid YAML, and the YAML inventory plugin reads it.
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps(groups))
    return str(inventory)


def run_playbook(playbook, inventory, *options):
    """Run ``playbook`` on ``inventory`` without colours and return the completed process."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_NOCOLOR="true", ANSIBLE_FORCE_COLOR="false")
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, playbook, *options],
                          env=env, capture_output=True, text=True, check=False, timeout=600)


def recap(stdout):
    """Return the PLAY RECAP counters of each host, such as {"node": {"ok": 5, "changed": 1, ...}}."""
    counters = {}
    for line in stdout.split("PLAY RECAP", 1)[1].splitlines()[1:]:
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match:
            counters[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return counters


def task_messages(stdout, task_name):
    """Return the msg lists that the debug task ``task_name`` printed, in order."""
    messages = []
    for block in stdout.split("TASK [%s]" % task_name)[1:]:
        body = block.split("\nTASK [", 1)[0].split("\nPLAY ", 1)[0]
        for match in re.finditer(r'"msg": (\[.*?\n    \])', body, re.DOTALL):
            messages.append(json.loads(match.group(1)))
    return messages
