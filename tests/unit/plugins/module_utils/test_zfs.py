"""Command tables for the ``Zfs`` wrapper, run against a scripted runner.

Each case lists the method call, every ``argv`` the wrapper must run in
order with the canned ``(rc, stdout, stderr)``, and the expected return
value or error.  The runner fails on a call out of order or one too many,
and the test fails when a scripted call was never made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import pytest

from ansible_collections.smartos.images.plugins.module_utils import _zfs
from ansible_collections.smartos.images.plugins.module_utils._errors import ZfsError
from ansible_collections.smartos.images.plugins.module_utils._zfs import Dataset, Zfs

UUID = "2b683a82-a066-11e3-97ab-2faa44701c5a"
BASE = "zones/" + UUID
BUSY = "cannot destroy '%s': dataset is busy\n" % BASE
MISSING = "cannot open '%s': dataset does not exist\n" % BASE

Call = Tuple[List[str], Tuple[int, str, str]]


class ScriptedRunner:
    """A ``run(argv)`` that checks each call against a script and returns its canned result."""

    def __init__(self, script: Sequence[Call]):
        self.script = list(script)
        self.calls: List[List[str]] = []

    def __call__(self, argv):
        argv = list(argv)
        index = len(self.calls)
        assert index < len(self.script), "unexpected extra call %d: %r" % (index + 1, argv)
        expected_argv, result = self.script[index]
        assert argv == expected_argv, "call %d" % (index + 1)
        self.calls.append(argv)
        return result


@dataclass
class Case:
    method: str
    args: Tuple[Any, ...]
    calls: List[Call]
    result: Any = None
    error: Optional[str] = None
    sleeps: int = 0


def list_one(name):
    return ["zfs", "list", "-H", "-o", "name", name]


def list_datasets(pool):
    return ["zfs", "list", "-H", "-o", "name,origin", "-t", "filesystem,volume", "-r", pool]


def list_snapshots(dataset):
    return ["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", dataset]


def destroy(name):
    return ["zfs", "destroy", "-r", name]


def unmount(name):
    return ["zfs", "unmount", name]


UNMOUNTED = (unmount(BASE), (0, "", ""))
NOT_MOUNTED = (unmount(BASE), (1, "", "cannot unmount '%s': not currently mounted\n" % BASE))


DATASET_ROWS = (
    "zones\t-\n"
    "zones/%s\t-\n"
    "zones/vm1\tzones/%s@final\n"
    "zones/vm2\tzones/%s@snap2\n"
    "zones/other\tzones/%s-partial@final\n"
    "zones/vol\t\n"
) % (UUID, UUID, UUID, UUID)

CASES = [
    pytest.param(
        Case("exists", (BASE,), [(list_one(BASE), (0, BASE + "\n", ""))], result=True),
        id="exists-present",
    ),
    pytest.param(
        Case("exists", (BASE,), [(list_one(BASE), (1, "", MISSING))], result=False),
        id="exists-missing",
    ),
    pytest.param(
        Case("exists", (BASE,), [(list_one(BASE), (1, "", "internal error: out of memory\n"))],
             error="out of memory"),
        id="exists-other-error",
    ),
    pytest.param(
        Case("pool_exists", ("zones",), [(["zpool", "list", "-H", "-o", "name", "zones"], (0, "zones\n", ""))],
             result=True),
        id="pool-exists",
    ),
    pytest.param(
        Case("pool_exists", ("zones",),
             [(["zpool", "list", "-H", "-o", "name", "zones"], (1, "", "cannot open 'zones': no such pool\n"))],
             result=False),
        id="pool-missing",
    ),
    pytest.param(
        Case("datasets", ("zones",), [(list_datasets("zones"), (0, DATASET_ROWS, ""))], result=[
            Dataset("zones", None),
            Dataset(BASE, None),
            Dataset("zones/vm1", BASE + "@final"),
            Dataset("zones/vm2", BASE + "@snap2"),
            Dataset("zones/other", BASE + "-partial@final"),
            Dataset("zones/vol", None),
        ]),
        id="datasets-origins",
    ),
    pytest.param(
        Case("datasets", ("zones",), [(list_datasets("zones"), (0, "", ""))], result=[]),
        id="datasets-empty",
    ),
    pytest.param(
        Case("datasets", ("nopool",),
             [(list_datasets("nopool"), (1, "", "cannot open 'nopool': dataset does not exist\n"))],
             error="cannot open 'nopool'"),
        id="datasets-error",
    ),
    pytest.param(
        Case("snapshots", (BASE,),
             [(list_snapshots(BASE), (0, "%s@final\n%s@extra\n%s-partial@x\n" % (BASE, BASE, BASE), ""))],
             result=["final", "extra"]),
        id="snapshots-short-names",
    ),
    pytest.param(
        Case("snapshots", (BASE,), [(list_snapshots(BASE), (0, "", ""))], result=[]),
        id="snapshots-none",
    ),
    pytest.param(
        Case("clones_of", ("zones", BASE), [(list_datasets("zones"), (0, DATASET_ROWS, ""))],
             result=["zones/vm1", "zones/vm2"]),
        id="clones-of-base",
    ),
    pytest.param(
        Case("clones_of", ("zones", "zones/vm1"), [(list_datasets("zones"), (0, DATASET_ROWS, ""))], result=[]),
        id="clones-of-none",
    ),
    pytest.param(
        Case("get", (BASE, "origin"),
             [(["zfs", "get", "-H", "-p", "-o", "value", "origin", BASE], (0, "-\n", ""))],
             result="-"),
        id="get-value",
    ),
    pytest.param(
        Case("get", (BASE, "nosuchprop"),
             [(["zfs", "get", "-H", "-p", "-o", "value", "nosuchprop", BASE],
               (2, "", "bad property list: invalid property 'nosuchprop'\n"))],
             error="invalid property 'nosuchprop'"),
        id="get-error",
    ),
    pytest.param(
        Case("rename", (BASE + "-partial", BASE),
             [(["zfs", "rename", BASE + "-partial", BASE], (0, "", ""))], result=None),
        id="rename",
    ),
    pytest.param(
        Case("rename", (BASE + "-partial", BASE),
             [(["zfs", "rename", BASE + "-partial", BASE], (1, "", "cannot rename to '%s': dataset already exists\n" % BASE))],
             error="dataset already exists"),
        id="rename-error",
    ),
    pytest.param(
        Case("mount", (BASE,), [(["zfs", "mount", BASE], (0, "", ""))], result=None),
        id="mount",
    ),
    pytest.param(
        Case("destroy", (BASE,), [UNMOUNTED, (destroy(BASE), (0, "", ""))], result=None),
        id="destroy",
    ),
    pytest.param(
        Case("destroy", (BASE,), [NOT_MOUNTED, (destroy(BASE), (0, "", ""))], result=None),
        id="destroy-not-mounted",
    ),
    pytest.param(
        Case("destroy", (BASE,), [(unmount(BASE), (1, "", BUSY)), UNMOUNTED, (destroy(BASE), (0, "", ""))],
             result=None, sleeps=1),
        id="destroy-unmount-busy-once",
    ),
    pytest.param(
        Case("destroy", (BASE,), [(unmount(BASE), (1, "", BUSY))] * 8, error="stop what uses the dataset",
             sleeps=7),
        id="destroy-unmount-busy-always",
    ),
    pytest.param(
        Case("destroy", (BASE,), [UNMOUNTED, (destroy(BASE), (1, "", MISSING))], result=None),
        id="destroy-missing",
    ),
    pytest.param(
        Case("destroy", (BASE,), [UNMOUNTED, (destroy(BASE), (1, "", BUSY)), (destroy(BASE), (0, "", ""))],
             result=None, sleeps=1),
        id="destroy-busy-once",
    ),
    pytest.param(
        Case("destroy", (BASE,), [UNMOUNTED, (destroy(BASE), (1, "", BUSY)), (destroy(BASE), (1, "", MISSING))],
             result=None, sleeps=1),
        id="destroy-busy-then-gone",
    ),
    pytest.param(
        Case("destroy", (BASE,), [UNMOUNTED] + [(destroy(BASE), (1, "", BUSY))] * 8, error="dataset is busy",
             sleeps=7),
        id="destroy-busy-always",
    ),
    pytest.param(
        Case("destroy", (BASE,),
             [UNMOUNTED, (destroy(BASE), (1, "", "cannot destroy '%s': filesystem has dependent clones\n" % BASE))],
             error="dependent clones"),
        id="destroy-clones",
    ),
]


@pytest.fixture
def sleeps(monkeypatch):
    recorded = []
    monkeypatch.setattr(_zfs.time, "sleep", recorded.append)
    return recorded


@pytest.mark.parametrize("case", CASES)
def test_zfs_command(case, sleeps):
    runner = ScriptedRunner(case.calls)
    zfs = Zfs(runner)
    method = getattr(zfs, case.method)

    if case.error is None:
        assert method(*case.args) == case.result
    else:
        with pytest.raises(ZfsError) as caught:
            method(*case.args)
        assert case.error in str(caught.value)
        assert caught.value.argv == case.calls[-1][0]
        assert caught.value.rc == case.calls[-1][1][0]
        assert caught.value.stderr == case.calls[-1][1][2]

    assert runner.calls == [argv for argv, _output in case.calls]
    assert len(sleeps) == case.sleeps


def test_zfs_error_names_command():
    runner = ScriptedRunner([(list_datasets("zones"), (1, "", "cannot open 'zones': pool I/O error\n"))])

    with pytest.raises(ZfsError) as caught:
        Zfs(runner).datasets("zones")

    assert " ".join(list_datasets("zones")) in str(caught.value)
    assert "exit 1" in str(caught.value)


def test_zfs_custom_binaries():
    runner = ScriptedRunner([(["/sbin/zfs", "list", "-H", "-o", "name", BASE], (0, BASE + "\n", ""))])
    zfs = Zfs(runner, zfs_bin="/sbin/zfs", zpool_bin="/sbin/zpool")

    assert zfs.exists(BASE) is True
    assert zfs.receive_argv(BASE + "-partial") == ["/sbin/zfs", "receive", "-u", BASE + "-partial"]


def test_run_command_c_locale(monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")

    rc, out, err = _zfs.run_command(["sh", "-c", "echo $LC_ALL $LANG; echo oops >&2; exit 3"])

    assert rc == 3
    assert out == "C C\n"
    assert err == "oops\n"
