"""The etcd store on a real 3-member etcd: versions are etcd revisions, a conflicting
write loses with the current version, history outlives compaction, a large config fits
etcd's request limits, the watch sees every version and survives a leader's death."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from dplb.cluster.etcd_store import EtcdStore
from dplb.config import EtcdSection
from dplb.store import StoreUnavailable, VersionConflict, VersionNotFound

from .etcd_cluster import EtcdCluster

T = TypeVar("T")

LOCAL = {
    "node": {"name": "lb1", "cluster": "x"},
    "dataplane": {"ports": [{"name": "p0", "device": "harness", "address": "10.0.0.1/24"}]},
    "api": {"listen": "127.0.0.1:8080"},
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def store(etcd: EtcdCluster, cluster: str, node: str = "lb1", **kw: Any) -> EtcdStore:
    cfg = EtcdSection(endpoints=etcd.endpoints, timeout=1.0, lease_ttl=3)
    return EtcdStore(cfg, cluster=cluster, node=node, local=LOCAL, **kw)


def service(n: int, reals: int = 2) -> dict[str, Any]:
    return {
        "vip": f"10.{n // 250}.{n % 250}.10",
        "port": 80,
        "reals": [
            {"address": f"10.200.{r // 250}.{r % 250 + 1}", "port": 8080} for r in range(reals)
        ],
    }


def config(*services: dict[str, Any], tokens: list[Any] | None = None) -> dict[str, Any]:
    return {**LOCAL, "api": {**LOCAL["api"], "tokens": tokens or []}, "services": list(services)}


def test_a_write_is_read_back_with_its_revision_as_version(
    etcd: EtcdCluster, cluster_name: str
) -> None:
    async def go() -> None:
        s = store(etcd, cluster_name)
        assert await s.read() is None
        assert await s.current_version() == 0
        info = await s.write(config(service(1)), author="alice", message="first")
        head = json.loads(etcd.etcdctl("get", f"/dplb/v1/{cluster_name}/config/head", "-w", "json"))
        assert info.version == int(head["kvs"][0]["mod_revision"])
        other = store(etcd, cluster_name, node="lb2")  # another node reads the same
        d = await other.read()
        assert d is not None and d.version == info.version
        assert d.data is not None and d.data["services"] == [service(1)]
        assert d.data["node"] == LOCAL["node"]  # local sections come from the node
        assert d.info.author == "alice" and d.info.message == "first"
        await s.close()
        await other.close()

    run(go())


def test_conflicting_writes_one_wins_the_other_gets_the_current_version(
    etcd: EtcdCluster, cluster_name: str
) -> None:
    async def go() -> None:
        a, b = store(etcd, cluster_name), store(etcd, cluster_name, node="lb2")
        base = await a.write(config(service(1)), author="x")
        results = await asyncio.gather(
            a.write(config(service(2)), author="a", expected_version=base.version),
            b.write(config(service(3)), author="b", expected_version=base.version),
            return_exceptions=True,
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, VersionConflict)]
        assert len(wins) == 1 and len(losses) == 1
        assert losses[0].current == wins[0].version
        await a.close()
        await b.close()

    run(go())


def test_history_and_old_versions_outlive_compaction(etcd: EtcdCluster, cluster_name: str) -> None:
    async def go() -> None:
        s = store(etcd, cluster_name)
        infos = [
            await s.write(config(service(i)), author=f"u{i}", message=f"m{i}") for i in range(4)
        ]
        etcd.compact()
        fresh = store(etcd, cluster_name)  # no cache
        history = await fresh.history()
        assert [h.version for h in history] == [i.version for i in reversed(infos)]
        assert [h.author for h in history] == ["u3", "u2", "u1", "u0"]
        old = await fresh.read_version(infos[0].version)
        assert old.data is not None and old.data["services"] == [service(0)]
        with pytest.raises(VersionNotFound):
            await fresh.read_version(infos[0].version + 100000)
        await s.close()
        await fresh.close()

    run(go())


def test_history_is_bounded_and_unused_blobs_go(etcd: EtcdCluster, cluster_name: str) -> None:
    async def go() -> None:
        s = store(etcd, cluster_name, keep_versions=3)
        for i in range(12):
            await s.write(config(service(i)), author="u")
        history = await s.history()
        assert 3 <= len(history) <= 4
        blobs = etcd.etcdctl(
            "get", "--prefix", "--keys-only", f"/dplb/v1/{cluster_name}/config/blobs/"
        )
        assert 1 <= len([line for line in blobs.split("\n") if line]) <= 5
        for h in history:  # every kept version can still be read
            assert (await store(etcd, cluster_name).read_version(h.version)).data is not None
        await s.close()

    run(go())


def test_a_thousand_services_of_a_hundred_reals_fit_and_a_small_change_writes_one_blob(
    etcd: EtcdCluster, cluster_name: str
) -> None:
    async def go() -> None:
        s = store(etcd, cluster_name)
        services = [service(i, reals=100) for i in range(1000)]
        await s.write(config(*services), author="big")
        services[500]["reals"][0]["weight"] = 7
        before = int(
            json.loads(etcd.etcdctl("endpoint", "status", "-w", "json"))[0]["Status"]["header"][
                "revision"
            ]
        )
        info = await s.write(config(*services), author="small")
        # the blob, the head, the history entry: three revisions, not a thousand
        assert info.version - before <= 2
        d = await store(etcd, cluster_name).read()
        assert d is not None and d.data is not None
        assert d.data["services"][500]["reals"][0]["weight"] == 7
        assert len(d.data["services"]) == 1000
        await s.close()

    run(go())


def test_the_watch_sees_every_version_through_a_leader_kill(
    etcd: EtcdCluster, cluster_name: str
) -> None:
    async def go() -> None:
        writer = store(etcd, cluster_name)
        watcher = store(etcd, cluster_name, node="lb2")
        seen: list[int] = []
        written: list[int] = []

        async def watch() -> None:
            async for d in watcher.watch(after=0):
                seen.append(d.version)

        task = asyncio.create_task(watch())
        for i in range(100):
            if i == 40:
                etcd.kill(etcd.leader())
            while True:
                try:
                    written.append((await writer.write(config(service(i)), author="w")).version)
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.2)  # an election under way
        for _ in range(300):
            if written[-1] in seen:
                break
            await asyncio.sleep(0.1)
        task.cancel()
        assert [v for v in seen if v in set(written)] == written  # none missed, in order
        await writer.close()
        await watcher.close()

    try:
        run(go())
    finally:
        for i in range(3):
            if i not in etcd.procs:
                etcd.start_member(i, state="existing")
        etcd.wait_healthy()
