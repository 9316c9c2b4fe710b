"""Which datasets are installed images: tables of ``zfs list`` and ``zoneadm list`` outputs."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.smartos.images.plugins.module_utils._cache import ManifestCache
from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError, ZfsError
from ansible_collections.smartos.images.plugins.module_utils._filters import parse_filters
from ansible_collections.smartos.images.plugins.module_utils._installed import (
    LIST_PROPERTIES,
    LIST_TYPES,
    InstalledImageLister,
    check_pool_names,
    dataset_rows,
    find_images,
    parse_zone_paths,
    read_zone_paths,
)
from ansible_collections.smartos.images.plugins.module_utils._zfs import Zfs

BASE = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271"
CHILD = "c2c31b00-1d60-11e9-9a77-ff9f06554b0f"
VM = "7970c690-1738-4e58-a04f-8ce4ea8ebfca"
OTHER = "dc5cbce7-798a-4bc8-bdc5-61b4be00a22e"

ZONEADM_GLOBAL = "0:global:running:/::liveimg:shared:0\n"
ZONEADM_WITH_VM = ZONEADM_GLOBAL + "21:%s:running:/zones/%s:%s:joyent-minimal:excl:21\n" % (VM, VM, VM)

LIST_ARGV_TAIL = ["-H", "-o", ",".join(LIST_PROPERTIES), "-t", ",".join(LIST_TYPES)]


def row(name, origin="-", mountpoint=None, ignore="-"):
    """Return one ``zfs list -H`` line; the mountpoint defaults to ``/<name>``, or ``-`` for a snapshot."""
    if mountpoint is None:
        mountpoint = "-" if "@" in name else "/" + name
    return "\t".join([name, origin, mountpoint, ignore])


def image_rows(pool, uuid, origin="-", ignore="-"):
    return [row("%s/%s" % (pool, uuid), origin=origin, ignore=ignore), row("%s/%s@final" % (pool, uuid))]


class FakeRunner:
    """Return a canned result for each command, chosen by its first words, and record every argv."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        for prefix, answer in self.answers:
            if list(argv[:len(prefix)]) == prefix:
                return answer(argv) if callable(answer) else answer
        raise AssertionError("unexpected command %s" % argv)


def zfs_answering(text, rc=0, err=""):
    return Zfs(FakeRunner([(["zfs", "list"], (rc, text, err))]))


def listed(lines, zoneadm=""):
    """Run the listing rules on ``zfs list`` lines and ``zoneadm list -pc`` output."""
    rows = zfs_answering("\n".join(lines) + "\n").list_rows(LIST_PROPERTIES, LIST_TYPES)
    images, warnings = find_images(dataset_rows(rows), parse_zone_paths(zoneadm))
    return {image.dataset: image.clones for image in images}, warnings


# (case id, zfs list lines, zoneadm output, {image dataset: clones}, number of warnings)
RULE_CASES = [
    ("full image", ["zones\t-\t/zones\t-"] + image_rows("zones", BASE), "",
     {"zones/" + BASE: []}, 0),
    ("datasets without a uuid name", [row("zones"), row("zones/var"), row("zones/opt/custom"), row("zones/cores")],
     "", {}, 0),
    ("partial leftover", [row("zones/%s-partial" % BASE), row("zones/%s-partial@final" % BASE)], "", {}, 0),
    ("upper-case uuid", [row("zones/" + BASE.upper()), row("zones/%s@final" % BASE.upper())], "", {}, 0),
    ("uuid nested below the pool", [row("zones/images/" + BASE), row("zones/images/%s@final" % BASE)], "", {}, 0),
    ("snapshot alone", [row("zones/%s@final" % BASE)], "", {}, 0),
    ("volume image", [row("zones/" + BASE, mountpoint="-"), row("zones/%s@final" % BASE)], "",
     {"zones/" + BASE: []}, 0),
    ("image without final snapshot", [row("zones/" + BASE)], "", {"zones/" + BASE: []}, 0),
    ("pool name with digits", image_rows("zones2", BASE), "", {"zones2/" + BASE: []}, 0),
    ("pool name with dot and dash", image_rows("fast.pool-a", BASE), "", {"fast.pool-a/" + BASE: []}, 0),
    ("same uuid on two pools", image_rows("zones", BASE) + image_rows("data", BASE), "",
     {"zones/" + BASE: [], "data/" + BASE: []}, 0),
    ("vm cloned from final", image_rows("zones", BASE) + [row("zones/" + VM, origin="zones/%s@final" % BASE)], "",
     {"zones/" + BASE: ["zones/" + VM]}, 0),
    ("vm with a snapshot of its own but no final",
     image_rows("zones", BASE) + [row("zones/" + VM, origin="zones/%s@final" % BASE), row("zones/%s@backup" % VM)],
     "", {"zones/" + BASE: ["zones/" + VM]}, 0),
    ("child image with its own final", image_rows("zones", BASE) + image_rows("zones", CHILD, "zones/%s@final" % BASE),
     "", {"zones/" + BASE: ["zones/" + CHILD], "zones/" + CHILD: []}, 0),
    ("clone of a snapshot other than final", image_rows("zones", BASE)
     + [row("zones/" + OTHER, origin="zones/%s@manual" % BASE)], "",
     {"zones/" + BASE: ["zones/" + OTHER], "zones/" + OTHER: []}, 0),
    ("kvm disk volume", image_rows("zones", BASE)
     + [row("zones/%s-disk0" % VM, origin="zones/%s@final" % BASE, mountpoint="-")], "",
     {"zones/" + BASE: ["zones/%s-disk0" % VM]}, 0),
    ("bhyve disk below the vm", image_rows("zones", BASE) + [
        row("zones/" + VM),
        row("zones/%s/disk0" % VM, origin="zones/%s@final" % BASE, mountpoint="-"),
        row("zones/%s/disk1" % VM, origin="zones/%s@final" % BASE, mountpoint="-"),
    ], ZONEADM_WITH_VM, {"zones/" + BASE: ["zones/%s/disk0" % VM, "zones/%s/disk1" % VM]}, 0),
    ("clones sorted by name", image_rows("zones", BASE) + [
        row("zones/%s-disk0" % OTHER, origin="zones/%s@final" % BASE, mountpoint="-"),
        row("zones/" + VM, origin="zones/%s@final" % BASE),
    ], "", {"zones/" + BASE: ["zones/" + VM, "zones/%s-disk0" % OTHER]}, 0),
    ("clone of a dataset that is no image", [row("zones/base"), row("zones/base@s"),
                                             row("zones/copy", origin="zones/base@s")], "", {}, 0),
    ("zone root", image_rows("zones", VM), ZONEADM_WITH_VM, {}, 0),
    ("zone root unknown without zoneadm", image_rows("zones", VM), "", {"zones/" + VM: []}, 0),
    ("zone path of another zone", image_rows("zones", BASE), ZONEADM_WITH_VM, {"zones/" + BASE: []}, 0),
    ("global zone path", [row("zones/" + BASE, mountpoint="/"), row("zones/%s@final" % BASE)], ZONEADM_GLOBAL, {}, 0),
    ("ignore true", image_rows("zones", BASE, ignore="true"), "", {}, 0),
    ("ignore yes", image_rows("zones", BASE, ignore="yes"), "", {}, 0),
    ("ignore false", image_rows("zones", BASE, ignore="false"), "", {"zones/" + BASE: []}, 0),
    ("ignore no", image_rows("zones", BASE, ignore="no"), "", {"zones/" + BASE: []}, 0),
    ("ignore invalid", image_rows("zones", BASE, ignore="maybe"), "", {"zones/" + BASE: []}, 1),
    ("ignore is case-sensitive", image_rows("zones", BASE, ignore="TRUE"), "", {"zones/" + BASE: []}, 1),
    ("ignored image keeps its clones out of the list", image_rows("zones", BASE, ignore="true")
     + [row("zones/" + VM, origin="zones/%s@final" % BASE)], "", {}, 0),
    ("ignored clone still counts", image_rows("zones", BASE) + image_rows("zones", CHILD, "zones/%s@final" % BASE,
                                                                          ignore="true"),
     "", {"zones/" + BASE: ["zones/" + CHILD]}, 0),
]


@pytest.mark.parametrize("lines, zoneadm, expected, warning_count", [case[1:] for case in RULE_CASES],
                         ids=[case[0] for case in RULE_CASES])
def test_listing_rules(lines, zoneadm, expected, warning_count):
    images, warnings = listed(lines, zoneadm)

    assert images == expected
    assert len(warnings) == warning_count


def test_invalid_ignore_warning_names_dataset_and_value():
    images, warnings = listed(image_rows("zones", BASE, ignore="maybe"))

    assert "zones/%s" % BASE in warnings[0]
    assert "'maybe'" in warnings[0]


def test_ignore_value_with_tab_stays_one_field():
    images, warnings = listed(["zones/%s\t-\t/zones/%s\ttrue\tmore" % (BASE, BASE)])

    assert images == {"zones/" + BASE: []}
    assert "'true\\tmore'" in warnings[0]


ZONEADM_CASES = [
    ("imgadm's example", ZONEADM_WITH_VM + "-:%s:installed:/zones/%s:%s:kvm:excl:22\n" % (OTHER, OTHER, OTHER),
     {"/", "/zones/" + VM, "/zones/" + OTHER}),
    ("empty output", "", set()),
    ("blank lines", "\n\n", set()),
    ("escaped colon", "3:odd:installed:/zones/a\\:b:%s:joyent:excl:3\n" % VM, {"/zones/a:b"}),
    ("escaped backslash", "3:odd:installed:/zones/a\\\\b:%s:joyent:excl:3\n" % VM, {"/zones/a\\b"}),
    ("short line", "3:odd:installed\n", set()),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in ZONEADM_CASES], ids=[case[0] for case in ZONEADM_CASES])
def test_zone_paths(text, expected):
    assert parse_zone_paths(text) == expected


def test_zoneadm_runs_list_pc():
    runner = FakeRunner([(["/usr/sbin/zoneadm"], (0, ZONEADM_WITH_VM, ""))])

    paths = read_zone_paths(runner, "/usr/sbin/zoneadm")

    assert runner.calls == [["/usr/sbin/zoneadm", "list", "-pc"]]
    assert paths == {"/", "/zones/" + VM}


def test_zoneadm_failure_names_command():
    runner = FakeRunner([(["/usr/sbin/zoneadm"], (1, "", "zoneadm: permission denied\n"))])

    with pytest.raises(ImageError) as caught:
        read_zone_paths(runner, "/usr/sbin/zoneadm")

    assert "/usr/sbin/zoneadm list -pc failed (exit 1)" in str(caught.value)
    assert "permission denied" in str(caught.value)


# zfs list and its -p probe

def test_list_with_p_where_supported():
    runner = FakeRunner([(["zfs", "list"], (0, row("zones") + "\n", ""))])
    zfs = Zfs(runner)

    rows = zfs.list_rows(LIST_PROPERTIES, LIST_TYPES)

    assert runner.calls == [["zfs", "list", "-p"] + LIST_ARGV_TAIL]
    assert rows == [["zones", "-", "/zones", "-"]]
    assert zfs.list_parsable is True


def test_list_falls_back_without_p():
    runner = FakeRunner([
        (["zfs", "list", "-p"], (2, "", "invalid option 'p'\nusage:\n\tlist [-rH][-d max] ...\n")),
        (["zfs", "list"], (0, row("zones") + "\n", "")),
    ])
    zfs = Zfs(runner)

    rows = zfs.list_rows(LIST_PROPERTIES, LIST_TYPES)

    assert runner.calls == [["zfs", "list", "-p"] + LIST_ARGV_TAIL, ["zfs", "list"] + LIST_ARGV_TAIL]
    assert rows == [["zones", "-", "/zones", "-"]]
    assert zfs.list_parsable is False


def test_list_probes_once():
    runner = FakeRunner([
        (["zfs", "list", "-p"], (2, "", "invalid option 'p'\n")),
        (["zfs", "list"], (0, "", "")),
    ])
    zfs = Zfs(runner)

    zfs.list_rows(LIST_PROPERTIES, LIST_TYPES)
    zfs.list_rows(LIST_PROPERTIES, LIST_TYPES)

    assert len(runner.calls) == 3
    assert runner.calls[2] == ["zfs", "list"] + LIST_ARGV_TAIL


def test_list_roots_are_recursive():
    runner = FakeRunner([(["zfs", "list"], (0, "", ""))])

    Zfs(runner).list_rows(LIST_PROPERTIES, LIST_TYPES, ["zones", "data"])

    assert runner.calls[0][-3:] == ["-r", "zones", "data"]


def test_list_failure_is_an_error():
    runner = FakeRunner([(["zfs", "list"], (1, "", "cannot open 'gone': dataset does not exist\n"))])

    with pytest.raises(ZfsError) as caught:
        Zfs(runner).list_rows(LIST_PROPERTIES, LIST_TYPES, ["gone"])

    assert len(runner.calls) == 1
    assert caught.value.argv == runner.calls[0]
    assert "dataset does not exist" in str(caught.value)


def test_list_failure_after_fallback_is_an_error():
    runner = FakeRunner([
        (["zfs", "list", "-p"], (2, "", "invalid option 'p'\n")),
        (["zfs", "list"], (1, "", "internal error: out of memory\n")),
    ])

    with pytest.raises(ZfsError) as caught:
        Zfs(runner).list_rows(LIST_PROPERTIES, LIST_TYPES)

    assert caught.value.argv == ["zfs", "list"] + LIST_ARGV_TAIL
    assert "out of memory" in str(caught.value)


def test_list_other_usage_error_fails():
    runner = FakeRunner([(["zfs", "list"], (2, "", "bad property list: invalid property 'imgadm'\n"))])

    with pytest.raises(ZfsError):
        Zfs(runner).list_rows(LIST_PROPERTIES, LIST_TYPES)

    assert len(runner.calls) == 1


def test_list_row_with_too_few_values():
    runner = FakeRunner([(["zfs", "list"], (0, "zones\t-\n", ""))])

    with pytest.raises(ZfsError) as caught:
        Zfs(runner).list_rows(LIST_PROPERTIES, LIST_TYPES)

    assert "2 values where 4" in str(caught.value)


# Pool names

POOL_NAME_CASES = [
    ("dataset path", "zones/images"),
    ("snapshot", "zones@final"),
    ("option", "-r"),
    ("leading digit", "2zones"),
    ("empty", ""),
]


@pytest.mark.parametrize("name", [case[1] for case in POOL_NAME_CASES], ids=[case[0] for case in POOL_NAME_CASES])
def test_pool_name_rejected(name):
    with pytest.raises(ImageError) as caught:
        check_pool_names([name])

    assert repr(name) in str(caught.value)


def test_pool_names_without_repeats():
    assert check_pool_names(["zones", "data2", "zones", "fast.pool_a:b c"]) == ["zones", "data2", "fast.pool_a:b c"]


def test_empty_pool_list_rejected():
    with pytest.raises(ImageError) as caught:
        check_pool_names([])

    assert "omit it" in str(caught.value)


# The lister: cache files, errors, filters and order

def write_cache(cache_dir, pool, manifest, source=None):
    os.makedirs(cache_dir, exist_ok=True)
    info = {"manifest": manifest, "zpool": pool}
    if source:
        info["source"] = source
    with open(os.path.join(cache_dir, "%s-%s.json" % (pool, manifest["uuid"])), "w") as handle:
        json.dump(info, handle)


def final_snapshots_of(lines):
    """Answer ``zfs list -H -o name <snapshot>...`` from the snapshot rows among ``lines``."""
    present = {line.split("\t", 1)[0] for line in lines if "@" in line.split("\t", 1)[0]}

    def answer(argv):
        asked = argv[5:]
        found = [name for name in asked if name in present]
        missing = ["cannot open '%s': dataset does not exist" % name for name in asked if name not in present]
        return (1 if missing else 0), "".join(name + "\n" for name in found), "".join(m + "\n" for m in missing)

    return answer


def lister_for(lines, cache_dir, answers=(), zone_paths=frozenset()):
    warnings = []
    runner = FakeRunner(list(answers) + [
        (["zfs", "list", "-H", "-o", "name"], final_snapshots_of(lines)),
        (["zfs", "list"], (0, "\n".join(lines) + "\n", "")),
    ])
    lister = InstalledImageLister(zfs=Zfs(runner), cache=ManifestCache(cache_dir), zone_paths=set(zone_paths),
                                  warn=warnings.append)
    return lister, warnings, runner


POOL_LINES = (image_rows("zones", BASE) + image_rows("zones", CHILD, "zones/%s@final" % BASE)
              + [row("zones/" + VM, origin="zones/%s@final" % CHILD)] + image_rows("zones2", OTHER))
BASE_MANIFEST = {"uuid": BASE, "name": "base", "version": "1.0.0", "published_at": "2024-01-01T00:00:00.000Z"}
CHILD_MANIFEST = {"uuid": CHILD, "name": "child", "version": "2.0.0", "published_at": "2025-01-01T00:00:00.000Z",
                  "origin": BASE}
OTHER_MANIFEST = {"uuid": OTHER, "name": "another", "version": "1.0.0", "published_at": "2024-01-01T00:00:00.000Z"}


@pytest.fixture
def cache_dir(tmp_path):
    path = str(tmp_path / "images")
    write_cache(path, "zones", BASE_MANIFEST, "http://127.0.0.1:8086")
    write_cache(path, "zones", CHILD_MANIFEST, "http://127.0.0.1:8086")
    write_cache(path, "zones2", OTHER_MANIFEST)
    return path


def test_lister_entries(cache_dir):
    lister, warnings, runner = lister_for(POOL_LINES, cache_dir)

    entries = lister.list()

    assert entries[1] == {"manifest": BASE_MANIFEST, "zpool": "zones", "source": "http://127.0.0.1:8086",
                          "clones": ["zones/" + CHILD], "clone_count": 1}
    assert entries[2]["clones"] == ["zones/" + VM]
    assert warnings == []
    assert len(runner.calls) == 2
    assert runner.calls[1] == ["zfs", "list", "-H", "-o", "name", "zones/%s@final" % CHILD, "zones/%s@final" % VM]


def test_lister_sorts_by_published_at_then_name(cache_dir):
    lister, warnings, runner = lister_for(POOL_LINES, cache_dir)

    names = [entry["manifest"]["name"] for entry in lister.list()]

    assert names == ["another", "base", "child"]


def test_lister_source_none_without_one_in_cache(cache_dir):
    lister, warnings, runner = lister_for(POOL_LINES, cache_dir)

    entries = lister.list()

    assert entries[0]["source"] is None
    assert entries[0]["zpool"] == "zones2"


def test_lister_missing_cache_file(cache_dir):
    os.unlink(os.path.join(cache_dir, "zones-%s.json" % CHILD))
    lister, warnings, runner = lister_for(POOL_LINES, cache_dir)

    entries = lister.list()

    assert entries[0]["manifest"] == {"uuid": CHILD}
    assert entries[0]["source"] is None
    assert entries[0]["clones"] == ["zones/" + VM]
    assert warnings == []


def test_lister_missing_cache_dir(tmp_path):
    lister, warnings, runner = lister_for(POOL_LINES, str(tmp_path / "absent"))

    entries = lister.list()

    assert [entry["manifest"] for entry in entries] == [{"uuid": BASE}, {"uuid": CHILD}, {"uuid": OTHER}]
    assert warnings == []


def test_lister_corrupt_cache_file(cache_dir):
    path = os.path.join(cache_dir, "zones-%s.json" % BASE)
    with open(path, "w") as handle:
        handle.write('{"manifest": {"uuid": ')
    lister, warnings, runner = lister_for(POOL_LINES, cache_dir)

    entries = lister.list()

    assert {"uuid": BASE} in [entry["manifest"] for entry in entries]
    assert len(warnings) == 1
    assert path in warnings[0]


def test_lister_warns_about_ignore_value(cache_dir):
    lister, warnings, runner = lister_for(image_rows("zones", BASE, ignore="1"), cache_dir)

    entries = lister.list()

    assert len(entries) == 1
    assert "imgadm:ignore is '1'" in warnings[0]


def test_lister_skips_zone_roots(cache_dir):
    lines = image_rows("zones", BASE) + image_rows("zones", VM)
    lister, warnings, runner = lister_for(lines, cache_dir, zone_paths={"/zones/" + VM})

    entries = lister.list()

    assert [entry["manifest"]["uuid"] for entry in entries] == [BASE]


def test_lister_lists_given_pools(cache_dir):
    lister, warnings, runner = lister_for(image_rows("zones", BASE), cache_dir)

    lister.list(["zones", "zones2"])

    assert runner.calls[0][-3:] == ["-r", "zones", "zones2"]


def test_lister_missing_pool_is_named(cache_dir):
    answers = [
        (["zfs", "list"], (1, "", "cannot open 'gone': dataset does not exist\n")),
        (["zpool", "list", "-H", "-o", "name", "zones"], (0, "zones\n", "")),
        (["zpool", "list", "-H", "-o", "name", "gone"], (1, "", "cannot open 'gone': no such pool\n")),
    ]
    lister, warnings, runner = lister_for([], cache_dir, answers)

    with pytest.raises(ImageError) as caught:
        lister.list(["zones", "gone"])

    assert str(caught.value).startswith("pool gone given in pools does not exist on this host")
    assert "zfs list -p" in str(caught.value)
    assert caught.value.details["missing_pools"] == ["gone"]


def test_lister_zfs_failure_is_not_an_empty_list(cache_dir):
    answers = [(["zfs", "list"], (1, "", "internal error: Bad file descriptor\n"))]
    lister, warnings, runner = lister_for([], cache_dir, answers)

    with pytest.raises(ZfsError) as caught:
        lister.list()

    assert "Bad file descriptor" in str(caught.value)
    assert caught.value.argv[:2] == ["zfs", "list"]


def test_lister_zfs_failure_with_existing_pools(cache_dir):
    answers = [
        (["zfs", "list"], (1, "", "internal error: Bad file descriptor\n")),
        (["zpool", "list"], (0, "zones\n", "")),
    ]
    lister, warnings, runner = lister_for([], cache_dir, answers)

    with pytest.raises(ZfsError) as caught:
        lister.list(["zones"])

    assert "Bad file descriptor" in str(caught.value)


FILTER_CASES = [
    ("name", ["name=base"], [BASE]),
    ("name substring", ["name=~ch"], [CHILD]),
    ("zpool", ["zpool=zones2"], [OTHER]),
    ("clone count", ["clones=0"], [OTHER]),
    ("clone count one", ["clones=1"], [BASE, CHILD]),
    ("source", ["source=http://127.0.0.1:8086"], [BASE, CHILD]),
    ("published date", ["pub=2024-01-01"], [OTHER, BASE]),
    ("origin", ["origin=" + BASE], [CHILD]),
    ("and", ["name=~a", "zpool=zones"], [BASE]),
    ("dictionary", {"version": "1.0.0", "zpool": "zones"}, [BASE]),
    ("nothing matches", ["name=absent"], []),
]


@pytest.mark.parametrize("specs, expected", [case[1:] for case in FILTER_CASES], ids=[case[0] for case in FILTER_CASES])
def test_lister_filters(cache_dir, specs, expected):
    lister, warnings, runner = lister_for(POOL_LINES, cache_dir)

    entries = lister.list(filters=parse_filters(specs))

    assert [entry["manifest"]["uuid"] for entry in entries] == expected


def test_lister_filter_leaves_entry_unchanged(cache_dir):
    lister, warnings, runner = lister_for(POOL_LINES, cache_dir)

    entries = lister.list(filters=parse_filters(["pub=2024-01-01"]))

    assert entries[1]["manifest"] == BASE_MANIFEST
