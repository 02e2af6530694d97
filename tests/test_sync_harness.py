"""Session sync through two harness engines built from the same config: A's sessions,
moved to B as records (sync_pull / sync_install, what the sync thread carries), go on at
B with the same rewrite; B counts them as its own only once traffic arrives (adoption);
A's close removes B's copy (DESIGN section 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import TCP

from conftest import TcpFlow, node_config
from dplb import Engine
from sync_helpers import moved, sync_engine


@pytest.mark.parametrize("workers", [1, 2])
def test_synced_tcp_session_goes_on_at_the_peer_and_is_adopted(
    workers: int, tmp_path: Path
) -> None:
    a, b = sync_engine(workers, tmp_path), sync_engine(workers, tmp_path)
    flow = TcpFlow(a, 40001)
    flow.handshake(client_isn=1000, real_isn=5000)
    records = a.sync_pull()
    assert a.stats()["total"]["sync_pushed"] == 1
    assert b.sync_install(records) == 1
    total = b.stats()["total"]
    assert total["sync_installed"] == 1 and total["sessions_created"] == 0
    assert all(r["active"] == 0 for r in b.stats()["reals"] if "active" in r)

    there = moved(flow, b)
    out = there.to_real(there.from_client("A", seq=1001, ack=5001, payload=b"GET /"))
    assert (out[TCP].seq, out[TCP].ack) == (1001, 5001)
    back = there.to_client(there.from_real("A", seq=5001, ack=1006, payload=b"OK"))
    assert (back[TCP].seq, back[TCP].ack) == (5001, 1006)
    assert b.stats()["total"]["sync_adopted"] == 1


def test_close_from_the_owner_removes_the_copy(tmp_path: Path) -> None:
    a, b = sync_engine(1, tmp_path), sync_engine(1, tmp_path)
    flow = TcpFlow(a, 40002)
    flow.handshake()
    b.sync_install(a.sync_pull())
    assert len(b.sessions()) == 1
    a.reset_session(flow.client, 40002, flow.vip, 80)
    b.sync_install(a.sync_pull())
    assert b.sessions() == []
    assert b.stats()["total"]["sync_removed"] == 1


def test_sync_off_pushes_nothing_and_refuses_installs(tmp_path: Path) -> None:
    a = sync_engine(1, tmp_path)
    flow = TcpFlow(a, 40003)
    flow.handshake()
    records = a.sync_pull()
    off = Engine(node_config(1))
    assert off.sync_install(records) == 0
    assert off.stats()["sync"]["refused_disabled"] == 1
