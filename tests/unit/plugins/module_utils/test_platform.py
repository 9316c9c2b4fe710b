"""The min_platform and max_platform rules, as a table."""

from __future__ import annotations

import pytest

from ansible_collections.smartos.images.plugins.module_utils._errors import ImageError
from ansible_collections.smartos.images.plugins.module_utils._platform import Platform, parse_sysinfo, platform_problem

HOST = Platform("7.0", "20240104T000814Z")

CASES = [
    ("no requirements", {}, None),
    ("empty min_platform", {"min_platform": {}}, None),
    ("same version, older stamp required", {"min_platform": {"7.0": "20230101T000000Z"}}, None),
    ("same version, same stamp required", {"min_platform": {"7.0": "20240104T000814Z"}}, None),
    ("same version, newer stamp required", {"min_platform": {"7.0": "20250101T000000Z"}}, "min_platform"),
    ("lower version key only", {"min_platform": {"6.5": "20990101T000000Z"}}, None),
    ("higher version key only", {"min_platform": {"7.1": "20200101T000000Z"}}, "min_platform"),
    ("max same version, newer stamp", {"max_platform": {"7.0": "20250101T000000Z"}}, None),
    ("max same version, older stamp", {"max_platform": {"7.0": "20230101T000000Z"}}, "max_platform"),
    ("max lower version key only", {"max_platform": {"6.5": "20990101T000000Z"}}, "max_platform"),
    ("max higher version key only", {"max_platform": {"7.1": "20200101T000000Z"}}, None),
    ("min met, max not", {"min_platform": {"7.0": "20200101T000000Z"}, "max_platform": {"7.0": "20210101T000000Z"}},
     "max_platform"),
]


@pytest.mark.parametrize("requirements, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_platform_problem(requirements, expected):
    problem = platform_problem({"requirements": requirements}, HOST)

    if expected is None:
        assert problem is None
    else:
        assert problem.startswith(expected)


def test_parse_sysinfo_reads_version_and_stamp():
    platform = parse_sysinfo('{"SDC Version": "7.0", "Live Image": "20240104T000814Z", "UUID": "x"}')

    assert platform == Platform("7.0", "20240104T000814Z")


def test_parse_sysinfo_defaults_version():
    assert parse_sysinfo('{"Live Image": "20120101T000000Z"}').version == "6.5"


def test_parse_sysinfo_rejects_garbage():
    with pytest.raises(ImageError, match="sysinfo printed no JSON"):
        parse_sysinfo("not json")
