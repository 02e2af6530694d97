"""Fixtures of the cluster tests: a real 3-member etcd (Debian's etcd-server) for the
whole module, and a fresh cluster name per test so that tests never see each other's
keys."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .etcd_cluster import ETCD, EtcdCluster

_names = itertools.count()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    if not Path(ETCD).exists():
        pytest.fail("etcd is not installed (Debian etcd-server): make test installs it")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)


@pytest.fixture
def cluster_name() -> str:
    return f"t{next(_names)}"
