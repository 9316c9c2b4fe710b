"""The removals of an exclusive task: the decision as a table of pools."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._exclusive import plan_exclusive

POOL = "zones"
BASE = "11111111-1111-4111-8111-111111111111"
CHILD = "22222222-2222-4222-8222-222222222222"
OTHER = "33333333-3333-4333-8333-333333333333"
OTHER_CHILD = "44444444-4444-4444-8444-444444444444"
VM = "zones/55555555-5555-4555-8555-555555555555"


def entry(uuid, clones=(), cached=True, pool=POOL):
    manifest = {"uuid": uuid, "name": "image-" + uuid[:4], "version": "1.0.0"} if cached else {"uuid": uuid}
    return {"manifest": manifest, "zpool": pool, "clones": list(clones)}


def dataset(uuid):
    return "%s/%s" % (POOL, uuid)


ALL_FINAL = {dataset(uuid) for uuid in (BASE, CHILD, OTHER, OTHER_CHILD)}

CASES = [
    # (case, installed, keep, removed in order, kept uuids)
    ("nothing else installed", [entry(BASE)], {BASE}, [], []),
    ("unrequested image goes", [entry(BASE), entry(OTHER)], {BASE}, [OTHER], []),
    ("origin of requested child stays",
     [entry(BASE, clones=[dataset(CHILD)]), entry(CHILD)], {CHILD}, [], [BASE]),
    ("unrequested chain goes child first",
     [entry(OTHER, clones=[dataset(OTHER_CHILD)]), entry(OTHER_CHILD), entry(BASE)], {BASE},
     [OTHER_CHILD, OTHER], []),
    ("image under a VM stays", [entry(BASE), entry(OTHER, clones=[VM])], {BASE}, [], [OTHER]),
    ("origin of a VM's image stays",
     [entry(OTHER, clones=[dataset(OTHER_CHILD)]), entry(OTHER_CHILD, clones=[VM]), entry(BASE)], {BASE},
     [], [OTHER, OTHER_CHILD]),
    ("image without cache entry stays", [entry(BASE), entry(OTHER, cached=False)], {BASE}, [], [OTHER]),
    ("other pool is not touched", [entry(BASE), entry(OTHER, pool="data")], {BASE}, [], []),
    ("empty keep removes every free image", [entry(BASE), entry(OTHER)], set(), [BASE, OTHER], []),
]


@pytest.mark.parametrize("case, installed, keep, removed, kept", CASES, ids=[case[0] for case in CASES])
def test_plan_exclusive(case, installed, keep, removed, kept):
    plan = plan_exclusive(installed, keep, POOL, ALL_FINAL)

    assert [item["manifest"]["uuid"] for item in plan.remove] == removed
    assert [item["uuid"] for item in plan.kept] == kept


def test_origin_of_image_to_import_stays():
    # CHILD is about to be imported, so nothing is cloned from BASE yet.
    installed = [entry(BASE), entry(OTHER)]

    plan = plan_exclusive(installed, {CHILD}, POOL, ALL_FINAL, origins={CHILD: BASE})

    assert [item["manifest"]["uuid"] for item in plan.remove] == [OTHER]
    assert plan.kept == []


def test_origin_chain_from_cache_stays():
    child = entry(CHILD)
    child["manifest"]["origin"] = OTHER
    other = entry(OTHER)
    other["manifest"]["origin"] = BASE
    installed = [entry(BASE), other, child, entry(OTHER_CHILD)]

    plan = plan_exclusive(installed, {CHILD}, POOL, ALL_FINAL)

    assert [item["manifest"]["uuid"] for item in plan.remove] == [OTHER_CHILD]


def test_kept_reasons():
    installed = [entry(BASE), entry(OTHER, clones=[VM]), entry(CHILD, cached=False), entry(OTHER_CHILD)]
    with_final = ALL_FINAL - {dataset(OTHER_CHILD)}

    plan = plan_exclusive(installed, {BASE}, POOL, with_final)

    assert plan.remove == []
    assert plan.kept == [
        {"uuid": CHILD, "reason": "it has no manifest cache entry"},
        {"uuid": OTHER, "reason": "datasets are cloned from it: %s" % VM},
        {"uuid": OTHER_CHILD, "reason": "it has no @final snapshot"},
    ]
