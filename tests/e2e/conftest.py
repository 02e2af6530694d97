"""The end-to-end tests: the real node (`dplb run`) in the namespace topology of DESIGN
section 10, with real clients (curl, sockets, scapy) and real servers (helpers.py).

They need root (network namespaces, DPDK) and are skipped without it, saying so. Each
module builds its own topology under its own prefix (`e2e1p<pid>-*`, ...) and shares one
node among its tests where the config is the same; everything a module creates is
removed when it ends, also when a test fails, and what a killed run left is removed by
the next."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .helpers import remove_stale_runs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(
        reason="end-to-end tests need root: they create network namespaces and run DPDK"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_runs() -> Iterator[None]:
    if os.geteuid() == 0:
        remove_stale_runs()
    yield
