# Copyright (c) smartos.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Argument specs and engine objects shared by the modules."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from ansible_collections.smartos.images.plugins.module_utils._errors import ConfigError, ImageError
from ansible_collections.smartos.images.plugins.module_utils._http import HttpClient
from ansible_collections.smartos.images.plugins.module_utils._images import Paths
from ansible_collections.smartos.images.plugins.module_utils._installed import read_zone_paths
from ansible_collections.smartos.images.plugins.module_utils._platform import Platform, parse_sysinfo
from ansible_collections.smartos.images.plugins.module_utils._sources import (
    SOURCE_TYPES,
    Source,
    load_config,
)
from ansible_collections.smartos.images.plugins.module_utils._zfs import C_LOCALE, Zfs

HOST_STATE_SPEC: Dict[str, Any] = dict(
    pool=dict(type="str", default="zones"),
    config_file=dict(type="path", default="/var/imgadm/imgadm.conf"),
    cache_dir=dict(type="path", default="/var/imgadm/images"),
    download_dir=dict(type="path", default="/var/tmp/.imgadm-downloads"),
    lock_dir=dict(type="path", default="/var/run"),
)

NETWORK_SPEC: Dict[str, Any] = dict(
    connect_timeout=dict(type="float", default=15.0),
    read_timeout=dict(type="float", default=60.0),
    retries=dict(type="int", default=3),
)

SOURCE_SPEC: Dict[str, Any] = dict(
    url=dict(type="str", required=True),
    type=dict(type="str", default="imgapi", choices=list(SOURCE_TYPES)),
    insecure=dict(type="bool", default=False),
    channel=dict(type="str"),
)


def paths_from_params(params: Dict[str, Any]) -> Paths:
    return Paths(
        config_file=params["config_file"],
        cache_dir=params["cache_dir"],
        download_dir=params["download_dir"],
        lock_dir=params["lock_dir"],
    )


def http_from_params(params: Dict[str, Any]) -> HttpClient:
    for option in ("connect_timeout", "read_timeout"):
        if params[option] <= 0:
            raise ConfigError("%s is %s; give a number of seconds above 0" % (option, params[option]))
    if params["retries"] < 0:
        raise ConfigError("retries is %s; give 0 or more" % params["retries"])
    return HttpClient(
        connect_timeout=params["connect_timeout"],
        read_timeout=params["read_timeout"],
        retries=params["retries"],
    )


def sources_from_params(params: Dict[str, Any]) -> List[Source]:
    """Return the task's ``sources`` when given, else the host's configured ones."""
    given: Optional[List[Dict[str, Any]]] = params.get("sources")
    if given is not None:
        return [Source.from_config(entry, "sources") for entry in given]
    return load_config(params["config_file"]).sources


def zfs_for_module(module: Any) -> Zfs:
    zfs_bin = module.get_bin_path("zfs", required=True)
    zpool_bin = module.get_bin_path("zpool", required=True)

    def run(argv):
        return module.run_command(list(argv), environ_update=C_LOCALE)

    return Zfs(run, zfs_bin=zfs_bin, zpool_bin=zpool_bin)


def host_platform(module: Any) -> Optional[Platform]:
    """Return the host's platform from ``sysinfo``, or None where there is no ``sysinfo`` (not SmartOS)."""
    sysinfo = module.get_bin_path("sysinfo")
    if not sysinfo:
        return None
    rc, out, err = module.run_command([sysinfo], environ_update=C_LOCALE)
    if rc != 0:
        raise ImageError("%s failed (exit %d): %s" % (sysinfo, rc, err.strip()))
    return parse_sysinfo(out)


def zone_paths_for_module(module: Any) -> Set[str]:
    """Return the zone paths from ``zoneadm list -pc``, or none where there is no ``zoneadm`` (not SmartOS)."""
    zoneadm = module.get_bin_path("zoneadm")
    if not zoneadm:
        return set()

    def run(argv):
        return module.run_command(list(argv), environ_update=C_LOCALE)

    return read_zone_paths(run, zoneadm)
