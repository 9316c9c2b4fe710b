"""The committed reference pages in docs/reference/ match what scripts/gen-docs.py renders now."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GENERATOR = os.path.join(ROOT, "scripts", "gen-docs.py")
REFERENCE = os.path.join(ROOT, "docs", "reference")
HINT = "docs/reference/ is out of date: run scripts/gen-docs.py and commit the result"


def read_pages(directory):
    pages = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".md"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                pages[name] = handle.read()
    return pages


def test_reference_pages_up_to_date(tmp_path):
    proc = subprocess.run([sys.executable, GENERATOR, "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr

    fresh = read_pages(str(tmp_path))
    committed = read_pages(REFERENCE) if os.path.isdir(REFERENCE) else {}

    assert sorted(committed) == sorted(fresh), HINT
    for name in sorted(fresh):
        diff = "".join(difflib.unified_diff(committed[name].splitlines(True), fresh[name].splitlines(True),
                                            "docs/reference/" + name, "generated " + name, n=1))
        assert not diff, "%s\n%s" % (HINT, diff[:3000])
