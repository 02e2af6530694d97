"""The session-sync thread (cpp/host/sync_service) between harness engines on loopback:
what one node's workers push reaches its peers over authenticated UDP and goes on there;
forged, corrupted, replayed and foreign datagrams are dropped and counted by reason; keys
rotate without a restart; a full sync pulls a peer's whole table over TCP and resumes a
broken stream from its cursor."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import TCP

from conftest import TcpFlow
from dplb import Engine
from sync_helpers import KEY1, KEY2, address, moved, sync_engine, wait_for


class Services:
    """Sync threads started in a test, stopped at its end."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    def start(self, engine: Engine, node_id: int, keys: list[Any] | None = None, **kw: Any) -> Any:
        s = engine.sync_service(
            node_id=node_id,
            listen="127.0.0.1:0",
            keys=keys or [KEY1],
            send_key=kw.pop("send_key", 1),
            **kw,
        )
        self.started.append(s)
        return s


@pytest.fixture
def services() -> Iterator[Services]:
    s = Services()
    yield s
    for service in s.started:
        service.stop()


def handshakes(engine: Engine, n: int, first_port: int = 41000) -> list[TcpFlow]:
    flows = []
    for i in range(n):
        f = TcpFlow(engine, first_port + i)
        f.handshake(client_isn=1000 + i, real_isn=5000 + i)
        flows.append(f)
    return flows


def test_sessions_reach_the_peer_over_udp_and_go_on_there(
    tmp_path: Path, services: Services
) -> None:
    a, b = sync_engine(2, tmp_path), sync_engine(2, tmp_path)
    sa, sb = services.start(a, 1), services.start(b, 2)
    sa.set_peers([(2, address(sb))])
    sb.set_peers([(1, address(sa))])
    flows = handshakes(a, 40)
    wait_for(lambda: b.stats()["total"]["sync_installed"] == 40, [b])
    assert sa.stats()["sent_records"] == 40 and sb.stats()["applied"] == 40
    peer = sb.peers()[0]
    assert peer["node_id"] == 1 and peer["records"] == 40 and peer["gaps"] == 0
    assert peer["last_seen_seconds"] is not None and peer["lag_p99_seconds"] is not None

    there = moved(flows[7], b)  # the routers move one flow to b: it goes on, same rewrite
    out = there.to_real(there.from_client("A", seq=1008, ack=5008, payload=b"GET /"))
    assert (out[TCP].seq, out[TCP].ack) == (1008, 5008)
    assert b.stats()["total"]["sync_adopted"] == 1


def test_an_idle_peer_is_still_heard_from_by_its_heartbeats(
    tmp_path: Path, services: Services
) -> None:
    a, b = sync_engine(1, tmp_path), sync_engine(1, tmp_path)
    sa, sb = services.start(a, 1, heartbeat_ms=100), services.start(b, 2)
    sa.set_peers([(2, address(sb))])
    sb.set_peers([(1, address(sa))])
    wait_for(lambda: sb.peers()[0]["datagrams"] >= 3, [b])
    assert sb.peers()[0]["records"] == 0 and sb.stats()["applied"] == 0


def capture_datagram(a: Engine, sa: Any, first_port: int = 42000) -> bytes:
    """The datagram of a new session's record `sa` sends, caught by a socket posing as
    its peer 2 (heartbeats skipped)."""
    catcher = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    catcher.bind(("127.0.0.1", 0))
    catcher.settimeout(5)
    sa.set_peers([(2, f"127.0.0.1:{catcher.getsockname()[1]}")])
    handshakes(a, 1, first_port)
    data, _ = catcher.recvfrom(65536)
    for _ in range(10):
        if data[8:10] != b"\0\0":  # not a heartbeat (no records)
            break
        data, _ = catcher.recvfrom(65536)
    catcher.close()
    return data


def test_forged_corrupted_replayed_and_foreign_datagrams_are_dropped_by_reason(
    tmp_path: Path, services: Services
) -> None:
    a, b = sync_engine(1, tmp_path), sync_engine(1, tmp_path)
    sa, sb = services.start(a, 1), services.start(b, 2)
    sb.set_peers([(1, address(sa))])
    good = capture_datagram(a, sa)
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", sb.listen_port)

    def altered(offset: int, value: int) -> bytes:
        d = bytearray(good)
        d[offset] = value
        return bytes(d)

    send.sendto(altered(len(good) - 20, good[-20] ^ 1), target)  # a body bit flipped
    send.sendto(altered(6, 9), target)  # sealed with key 9, which b does not hold
    send.sendto(altered(4, 2), target)  # wire format v2
    send.sendto(altered(15, good[15] ^ 0x40), target)  # from node 65 (not a peer)
    send.sendto(good[:30], target)  # truncated
    send.sendto(good, target)  # the real one: applied
    send.sendto(good, target)  # again: a replay
    dropped = wait_for(lambda: (d := sb.stats()["dropped"])["replayed"] == 1 and d, [b])
    assert dropped == {
        "malformed": 1,
        "bad_version": 1,
        "unknown_key": 1,
        "auth_failed": 1,
        "replayed": 1,
        "stale_epoch": 0,
        "unknown_peer": 1,
    }
    assert sb.stats()["applied"] == 1
    wait_for(lambda: b.stats()["total"]["sync_installed"] == 1, [b])


def test_a_previous_run_of_the_peer_is_refused_as_a_stale_epoch(
    tmp_path: Path, services: Services
) -> None:
    a, b = sync_engine(1, tmp_path), sync_engine(1, tmp_path)
    old = services.start(a, 1)
    sb = services.start(b, 2)
    sb.set_peers([(1, address(old))])
    before = capture_datagram(a, old)
    old.stop()
    new = services.start(a, 1)  # the peer restarted: a newer epoch
    sb.set_peers([(1, address(new))])
    after = capture_datagram(a, new, 42100)
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send.sendto(after, ("127.0.0.1", sb.listen_port))
    wait_for(lambda: sb.stats()["applied"] == 1, [b])
    send.sendto(before, ("127.0.0.1", sb.listen_port))
    wait_for(lambda: sb.stats()["dropped"]["stale_epoch"] == 1, [b])


def test_keys_rotate_without_a_restart(tmp_path: Path, services: Services) -> None:
    a, b = sync_engine(1, tmp_path), sync_engine(1, tmp_path)
    sa, sb = services.start(a, 1), services.start(b, 2)
    sa.set_peers([(2, address(sb))])
    sb.set_peers([(1, address(sa))])
    handshakes(a, 1, 43000)
    wait_for(lambda: sb.stats()["applied"] == 1, [b])
    # the rotation: every node takes the new key beside the old, then sends with it
    sb.set_keys([KEY1, KEY2], 1)
    sa.set_keys([KEY1, KEY2], 2)
    handshakes(a, 1, 43100)
    wait_for(lambda: sb.stats()["applied"] == 2, [b])
    sb.set_keys([KEY1], 1)  # a node that lost the new key drops what it seals
    handshakes(a, 1, 43200)
    wait_for(lambda: sb.stats()["dropped"]["unknown_key"] >= 1, [b])
    assert sb.stats()["applied"] == 2
    with pytest.raises(ValueError, match="key 3 has 4 bytes"):
        sa.set_keys([(3, b"abcd")], 3)


def test_full_sync_pulls_the_whole_table_and_resumes_a_broken_stream(
    tmp_path: Path, services: Services
) -> None:
    a, c = sync_engine(2, tmp_path), sync_engine(2, tmp_path)
    # a stream breaks after the batch that passes 100 records: the puller resumes from its cursor
    sa = services.start(a, 1, test_break_stream_after=100)
    handshakes(a, 500, 44000)
    sc = services.start(c, 3)
    sa.set_peers([(3, address(sc))])
    sc.set_peers([(1, address(sa))])
    assert sc.full_sync([(1, address(sa))])
    status = wait_for(lambda: (s := sc.full_sync_status())["state"] != "running" and s, [c])
    assert status["state"] == "done", status
    assert status["records"] == 500 and status["peers"][0]["workers_done"] == 2
    # each worker's table comes in one batch (up to 2048 records), each batch ends a stream
    assert status["peers"][0]["reconnects"] == 2
    wait_for(lambda: c.stats()["total"]["sync_installed"] == 500, [c])
    assert sc.stats()["full_sync_records"] == 500


def test_full_sync_from_a_peer_that_does_not_answer_fails_naming_it(
    tmp_path: Path, services: Services
) -> None:
    c = sync_engine(1, tmp_path)
    sc = services.start(c, 3, io_timeout_ms=300)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connections are refused
    assert sc.full_sync([(1, f"127.0.0.1:{port}")])
    status = wait_for(
        lambda: (s := sc.full_sync_status())["state"] != "running" and s, [c], timeout=30
    )
    assert status["state"] == "failed"
    assert f"127.0.0.1:{port}" in status["error"] and "refused" in status["error"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"node_id": 0}, "node_id: 0 is not a node id"),
        ({"listen": "127.0.0.1"}, "listen: '127.0.0.1' is not ip:port"),
        ({"listen": "lb1:7100"}, "listen: 'lb1' is not an IP address"),
        ({"mtu": 100}, "mtu: 100 is outside"),
        ({"keys": [(1, b"short")]}, "key 1 has 5 bytes"),
        ({"send_key": 2}, "send"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    e = sync_engine(1, tmp_path)
    kw: dict[str, Any] = {
        "node_id": 1,
        "listen": "127.0.0.1:0",
        "keys": [KEY1],
        "send_key": 1,
    } | options
    with pytest.raises(ValueError, match=message):
        e.sync_service(**kw).stop()


def test_a_peer_with_a_bad_address_is_refused(tmp_path: Path, services: Services) -> None:
    s = services.start(sync_engine(1, tmp_path), 1)
    with pytest.raises(ValueError, match=re.escape("peer: '10.0.0.300' is not an IP address")):
        s.set_peers([(2, "10.0.0.300:7100")])
    with pytest.raises(ValueError, match="node id 1 is this node's"):
        s.set_peers([(1, "127.0.0.1:7100")])
