"""The control plane's side of session sync (dplb.sync), without the sync thread: which
members become peers and why some are refused, the peers' local addresses kept after a
peer is gone, the BGP gate until full sync is done, key files and config errors. The
sync thread itself is tested with real engines in tests/test_sync_service.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import node_config
from dplb.cluster.peers import PeerAddresses
from dplb.config import ConfigError, parse_config
from dplb.store import MemberInfo
from dplb.sync import SyncGatedServing, SyncManager, node_id
from dplb.sync.keys import load_keys
from dplb.sync.metrics import sync_metrics_text


class FakeService:
    """Stands in for the binding's SyncService: records what the manager asked."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.peer_lists: list[list[tuple[int, str]]] = []
        self.full_syncs: list[list[tuple[int, str]]] = []
        self.full_status: dict[str, Any] = {"state": "idle", "records": 0, "peers": []}
        self.stopped = False

    def set_peers(self, peers: list[tuple[int, str]]) -> None:
        self.peer_lists.append(peers)

    def set_keys(self, keys: list[tuple[int, bytes]], send_key: int) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {"sent_records": 3, "dropped": {"replayed": 2}}

    def peers(self) -> list[dict[str, Any]]:
        """As the sync thread: the peers of its current list only."""
        listed = {pid for pid, _ in (self.peer_lists[-1] if self.peer_lists else [])}
        lb2 = {"node_id": node_id("lb2"), "last_seen_seconds": 0.5, "records": 7, "gaps": 1}
        return [lb2] if lb2["node_id"] in listed else []

    def full_sync(self, peers: list[tuple[int, str]]) -> None:
        self.full_syncs.append(peers)
        self.full_status = {"state": "running", "records": 10, "peers": [{"done": False}]}

    def full_sync_status(self) -> dict[str, Any]:
        return self.full_status

    def stop(self) -> None:
        self.stopped = True


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Waits until `condition()` is true; fails after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Members:
    """A store's members() with a list the test changes."""

    def __init__(self, members: list[MemberInfo]) -> None:
        self.list = members

    async def members(self) -> list[MemberInfo]:
        return list(self.list)


def member(name: str, workers: int = 1, sync: str | None = "10.0.9.2:7100") -> MemberInfo:
    laddrs = [[f"10.0.3.{10 * (w + 1) + len(name)}"] for w in range(workers)]
    return MemberInfo(
        node=name,
        sync=sync,
        workers=workers,
        local_addresses=[a for w in laddrs for a in w],
        worker_local_addresses=laddrs,
        version="test",
        started_at=datetime.now(UTC),
    )


def sync_config(tmp_path: Path, **sync: Any) -> dict[str, Any]:
    key = tmp_path / "sync.key"
    key.write_text("ab" * 32 + "\n")
    cfg = node_config()
    cfg["node"]["name"] = "lb1"
    cfg["store"] = {"etcd": {"endpoints": ["127.0.0.1:2379"]}}
    cfg["api"] = {"audit_log": str(tmp_path / "audit.jsonl")}
    cfg["sync"] = {
        "enabled": True,
        "listen": "127.0.0.1:7100",
        "keys": [{"id": 1, "file": str(key)}],
    }
    cfg["sync"].update(sync)
    return cfg


def manager_for(tmp_path: Path, members: Members) -> tuple[SyncManager, dict[int, Any]]:
    cfg = parse_config(sync_config(tmp_path))
    installed: dict[int, Any] = {}

    def set_laddrs(peer: int, per_worker: list[list[str]]) -> None:
        if len(per_worker) != cfg.dataplane.workers:
            raise ValueError(f"the peer has {len(per_worker)} workers, this node 1")
        installed[peer] = per_worker

    keys, send = load_keys(cfg.sync)
    manager = SyncManager(cfg, members, FakeService, set_laddrs, keys, send)  # type: ignore[arg-type]
    return manager, installed


def test_members_with_the_same_worker_count_become_peers_the_others_are_refused_by_name(
    tmp_path: Path,
) -> None:
    members = Members(
        [member("lb1"), member("lb2"), member("lb3", workers=2), member("lb4", sync=None)]
    )
    manager, installed = manager_for(tmp_path, members)
    asyncio.run(manager.refresh())
    service: FakeService = manager.service  # type: ignore[assignment]
    assert service.peer_lists == [[(node_id("lb2"), "10.0.9.2:7100")]]
    assert set(installed) == {node_id("lb2")}
    status = manager.status()
    by_node = {p.node: p for p in status.peers}
    assert "lb1" not in by_node  # itself
    assert by_node["lb2"].refused is None and by_node["lb2"].up and by_node["lb2"].records == 7
    assert "2 workers, this node 1" in (by_node["lb3"].refused or "")
    assert not by_node["lb3"].up
    assert by_node["lb4"].refused == "session sync is off there (sync.enabled)"


def test_a_gone_peer_keeps_its_local_addresses_installed(tmp_path: Path) -> None:
    members = Members([member("lb1"), member("lb2")])
    manager, installed = manager_for(tmp_path, members)
    asyncio.run(manager.refresh())
    members.list = [member("lb1")]  # lb2's lease expired: it died
    asyncio.run(manager.refresh())
    assert set(installed) == {node_id("lb2")}  # its return traffic still finds sessions here
    service: FakeService = manager.service  # type: ignore[assignment]
    assert service.peer_lists[-1] == []  # nothing more is sent to it
    [gone] = manager.status().peers
    assert not gone.live and not gone.up
    # what it sent before stays in view, and so does how long it has been silent
    assert gone.records == 7 and (gone.last_seen_seconds or 0) >= 0.5


@pytest.mark.parametrize("keep_synced", [True, False])
def test_a_gone_synced_peer_keeps_its_backup_routes(keep_synced: bool) -> None:
    # BGP's backups of the peers' local addresses (dplb.cluster.peers): with sync on here,
    # a dead peer's stay announced, else its synced sessions' return traffic has no route.
    members = Members([member("lb1"), member("lb2"), member("lb3", sync=None)])
    peers = PeerAddresses(members, "lb1", keep_synced=keep_synced)  # type: ignore[arg-type]
    asyncio.run(peers.refresh())
    assert sorted(peers()) == ["lb2", "lb3"]
    lb2 = peers()["lb2"]
    members.list = [member("lb1")]  # both leases expired
    asyncio.run(peers.refresh())
    asyncio.run(peers.refresh())
    assert dict(peers()) == ({"lb2": lb2} if keep_synced else {})
    members.list = [member("lb1"), member("lb2", sync=None)]  # back, without sync
    asyncio.run(peers.refresh())
    assert sorted(peers()) == ["lb2"]


def test_no_vip_is_announced_until_full_sync_is_done(tmp_path: Path) -> None:
    members = Members([member("lb1"), member("lb2")])
    manager, _ = manager_for(tmp_path, members)
    service: FakeService = manager.service  # type: ignore[assignment]

    class Inner:
        def serving(self) -> set[Any]:
            return {("10.0.100.10", 80, "tcp")}

        def add_listener(self, listener: Any) -> None: ...

    gate = SyncGatedServing(Inner(), manager)
    woken: list[int] = []
    gate.add_listener(lambda: woken.append(1))

    async def run() -> None:
        await manager.start()
        await until(lambda: service.full_syncs)
        assert service.full_syncs == [[(node_id("lb2"), "10.0.9.2:7100")]]
        assert gate.serving() == set() and not manager.ready
        assert manager.status().full_sync is not None
        service.full_status = {"state": "done", "records": 1000, "peers": [{"done": True}]}
        await until(lambda: manager.ready)
        await manager.stop()

    asyncio.run(run())
    assert manager.ready and woken == [1]
    assert gate.serving() == {("10.0.100.10", 80, "tcp")}
    full = manager.status().full_sync
    assert full is not None and full.state == "done" and full.records == 1000
    assert service.stopped
    text = sync_metrics_text(manager.status(), 'cluster="test",node="lb1"')
    assert 'dplb_sync_ready{cluster="test",node="lb1"} 1' in text
    assert 'dplb_sync_dropped_total{cluster="test",node="lb1",reason="replayed"} 2' in text
    assert 'dplb_sync_peer_gaps_total{cluster="test",node="lb1",peer="lb2"} 1' in text


def test_a_node_alone_is_ready_at_once(tmp_path: Path) -> None:
    manager, _ = manager_for(tmp_path, Members([member("lb1")]))

    async def run() -> None:
        await manager.start()
        await until(lambda: manager.ready)
        await manager.stop()

    asyncio.run(run())
    full = manager.status().full_sync
    assert manager.ready and full is not None and full.state == "skipped"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"keys": []}, "sync.keys", "needs a cluster key"),
        ({"send_key": 2}, "sync.send_key", "not the id of one of sync.keys"),
        ({"listen": "0.0.0.0:7100"}, "sync.advertise", "say where peers reach this node"),
        ({"mtu": 100}, "sync.mtu", "greater than or equal to 576"),
        ({"listen": "lb1:7100"}, "sync.listen", "takes an IP address, not a name"),
        ({"advertise": "lb1.example:7100"}, "sync.advertise", "takes an IP address, not a name"),
    ],
)
def test_bad_sync_settings_name_their_field(
    tmp_path: Path, change: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(sync_config(tmp_path, **change))
    assert any(path == field and says in reason for path, reason in err.value.errors), err.value


def test_sync_without_etcd_is_refused(tmp_path: Path) -> None:
    cfg = sync_config(tmp_path)
    cfg["store"] = {"file": str(tmp_path / "desired.yaml")}
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert (
        "sync.enabled",
        "session sync finds its peers among the cluster's members: it needs store.etcd",
    ) in err.value.errors


@pytest.mark.parametrize(
    ("content", "says"),
    [("xyz", "64 hex digits"), ("ab" * 16, "holds 16 bytes"), (None, "cannot read")],
)
def test_bad_key_files_name_the_key(tmp_path: Path, content: str | None, says: str) -> None:
    cfg = parse_config(sync_config(tmp_path))
    key = cfg.sync.keys[0].file
    if content is None:
        key.unlink()
    else:
        key.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_keys(cfg.sync)
    [(path, reason)] = err.value.errors
    assert path == "sync.keys[0].file" and says in reason
