"""Real servers: which real a new connection gets (rr, wrr, wlc, maglev), what happens to
established sessions when a real is quiesced or removed (DESIGN section 6: existing
sessions finish, new ones go elsewhere), and the per-real counters."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from scapy.layers.inet import TCP

from conftest import (
    CLIENT4,
    VIP4,
    TcpFlow,
    drops,
    ip_layer,
    make_engine,
    node_config,
    nonzero_drops,
    send,
)
from dplb import Engine

REAL1, REAL2, REAL3 = "10.0.2.11", "10.0.2.12", "10.0.2.13"


def web_service(scheduler: str, weights: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "vip": VIP4,
        "port": 80,
        "protocol": "tcp",
        "scheduler": scheduler,
        "reals": [{"address": a, "port": 8080, "weight": w} for a, w in weights.items()],
        **extra,
    }


def config_with_web(scheduler: str, weights: dict[str, int]) -> dict[str, Any]:
    """The harness config with the VIP4:80 service replaced."""
    config = node_config()
    config["services"][0] = web_service(scheduler, weights)
    return config


def real_stats(engine: Engine, real: str) -> dict[str, Any]:
    for r in engine.stats()["reals"]:
        if r["vip"] == (VIP4, 80) and r["protocol"] == "tcp" and r["real"] == (real, 8080):
            stats: dict[str, Any] = r
            return stats
    raise AssertionError(f"no counters for real {real}")


def reals_of(engine: Engine, client_ports: range) -> list[str]:
    """Opens a connection from each client port; the real each SYN went to."""
    picked = []
    for cport in client_ports:
        flow = TcpFlow(engine, cport)
        flow.syn()
        picked.append(flow.real)
    return picked


def test_rr_alternates_between_the_reals(engine: Engine) -> None:
    assert reals_of(engine, range(42000, 42006)) == [REAL1, REAL2] * 3
    by_real = {s["real"] for s in engine.sessions()}
    assert by_real == {(REAL1, 8080), (REAL2, 8080)}


def test_quiesced_real_gets_no_new_sessions_but_keeps_its_own(engine: Engine) -> None:
    old = TcpFlow(engine, 42100)
    old.handshake()
    assert old.real == REAL1

    engine.update(config_with_web("rr", {REAL1: 0, REAL2: 100}))
    assert real_stats(engine, REAL1)["weight"] == 0

    assert reals_of(engine, range(42101, 42105)) == [REAL2] * 4

    # The established session to the quiesced real goes on in both directions.
    out = old.to_real(old.from_client("PA", seq=1001, ack=5001, payload=b"still here?"))
    assert ip_layer(out).dst == REAL1
    assert bytes(out[TCP].payload) == b"still here?"
    out = old.to_client(old.from_real("PA", seq=5001, ack=1012, payload=b"yes"))
    assert bytes(out[TCP].payload) == b"yes"
    assert old.session()["state"] == "established"
    assert nonzero_drops(engine) == {}

    # Weight back: REAL1 takes new sessions again.
    engine.update(config_with_web("rr", {REAL1: 100, REAL2: 100}))
    assert set(reals_of(engine, range(42105, 42109))) == {REAL1, REAL2}


def test_removed_real_keeps_its_sessions_and_gets_no_new_ones(engine: Engine) -> None:
    old = TcpFlow(engine, 42200)
    old.handshake()
    assert old.real == REAL1

    engine.update(config_with_web("rr", {REAL2: 100}))
    assert [r["real"][0] for r in engine.stats()["reals"] if r["vip"] == (VIP4, 80)] == [REAL2]
    assert reals_of(engine, range(42201, 42205)) == [REAL2] * 4

    out = old.to_real(old.from_client("PA", seq=1001, ack=5001, payload=b"req"))
    assert ip_layer(out).dst == REAL1
    out = old.to_client(old.from_real("PA", seq=5001, ack=1004, payload=b"resp"))
    assert bytes(out[TCP].payload) == b"resp"
    old.to_real(old.from_client("FA", seq=1004, ack=5005))
    old.to_client(old.from_real("FA", seq=5005, ack=1005))
    assert old.session()["state"] == "time_wait"
    engine.advance(60)
    assert old.session() is None
    assert nonzero_drops(engine) == {}

    # Added back after its last session ended, its slot was recycled: it starts from 0.
    engine.update(config_with_web("rr", {REAL1: 100, REAL2: 100}))
    assert real_stats(engine, REAL1)["connections"] == 0
    assert real_stats(engine, REAL1)["active"] == 0


@pytest.mark.parametrize("scheduler", ["rr", "wrr", "wlc", "maglev"])
def test_all_reals_at_weight_zero_drop_new_syn_as_no_real(scheduler: str) -> None:
    services = node_config()["services"]
    services[0] = web_service(scheduler, {REAL1: 0, REAL2: 0})
    engine = make_engine(services=services)
    flow = TcpFlow(engine, 42300)
    assert send(engine, flow.from_client("S", seq=1)) == []
    assert nonzero_drops(engine) == {"no_real": 1}
    assert engine.sessions() == []


@pytest.mark.parametrize("scheduler", ["rr", "wrr", "wlc", "maglev"])
def test_service_with_no_reals_drops_new_syn_as_no_real(scheduler: str) -> None:
    services = node_config()["services"]
    services[0] = web_service(scheduler, {})
    engine = make_engine(services=services)
    assert send(engine, TcpFlow(engine, 42301).from_client("S", seq=1)) == []
    assert nonzero_drops(engine) == {"no_real": 1}


def test_quiescing_every_real_drops_new_syn_but_not_established(engine: Engine) -> None:
    old = TcpFlow(engine, 42400)
    old.handshake()
    engine.update(config_with_web("rr", {REAL1: 0, REAL2: 0}))
    assert send(engine, TcpFlow(engine, 42401).from_client("S", seq=1)) == []
    assert drops(engine)["no_real"] == 1
    old.to_real(old.from_client("PA", seq=1001, ack=5001, payload=b"x"))
    old.to_client(old.from_real("A", seq=5001, ack=1002))


def test_real_counters(engine: Engine) -> None:
    first = TcpFlow(engine, 42500)
    first.handshake()  # to REAL1: 2 packets in, 1 out
    second = TcpFlow(engine, 42501)
    second.syn()  # to REAL2: 1 packet in
    first.to_real(first.from_client("PA", seq=1001, ack=5001, payload=b"abc"))
    first.to_client(first.from_real("PA", seq=5001, ack=1004, payload=b"defg"))

    r1, r2 = real_stats(engine, REAL1), real_stats(engine, REAL2)
    assert (r1["connections"], r1["active"], r1["packets_in"], r1["packets_out"]) == (1, 1, 3, 2)
    assert (r2["connections"], r2["active"], r2["packets_in"], r2["packets_out"]) == (1, 1, 1, 0)
    session = first.session()
    assert session is not None
    assert (r1["bytes_in"], r1["bytes_out"]) == (session["bytes_in"], session["bytes_out"])
    assert r1["bytes_in"] == 54 + 54 + 57  # SYN, ACK, data: Ethernet + IP + TCP + payload
    assert r1["bytes_out"] == 54 + 58
    assert r1["weight"] == 100

    # The SYN-only session expires: REAL2 has no active session left, its total stays.
    engine.advance(30)
    r2 = real_stats(engine, REAL2)
    assert (r2["connections"], r2["active"]) == (1, 0)
    assert real_stats(engine, REAL1)["active"] == 1
    engine.advance(870)
    assert real_stats(engine, REAL1)["active"] == 0
    assert real_stats(engine, REAL1)["connections"] == 1


def test_wrr_follows_the_weights() -> None:
    engine = make_engine()
    engine.update(config_with_web("wrr", {REAL1: 300, REAL2: 100}))
    picked = reals_of(engine, range(42600, 42616))
    assert Counter(picked) == {REAL1: 12, REAL2: 4}
    # Smooth: REAL2 never waits more than one cycle of four.
    assert all(REAL2 in picked[i : i + 4] for i in range(0, 16, 4))
    assert real_stats(engine, REAL1)["connections"] == 12


def test_wlc_picks_the_real_with_fewest_active_sessions() -> None:
    services = node_config()["services"]
    services[0] = web_service("wlc", {REAL1: 100, REAL2: 100, REAL3: 100})
    engine = make_engine(services=services)
    flows = [TcpFlow(engine, cport) for cport in range(42700, 42706)]
    for flow in flows:
        flow.syn()
    assert Counter(f.real for f in flows) == {REAL1: 2, REAL2: 2, REAL3: 2}

    # Both of REAL2's sessions are reset and expire: the next two go to REAL2.
    for flow in flows:
        if flow.real == REAL2:
            flow.to_real(flow.from_client("R", seq=1001))
    engine.advance(10)
    assert real_stats(engine, REAL2)["active"] == 0
    assert reals_of(engine, range(42710, 42712)) == [REAL2, REAL2]


def test_wlc_weighs_active_sessions_by_weight() -> None:
    services = node_config()["services"]
    services[0] = web_service("wlc", {REAL1: 300, REAL2: 100})
    engine = make_engine(services=services)
    picked = reals_of(engine, range(42800, 42808))
    assert Counter(picked) == {REAL1: 6, REAL2: 2}


def maglev_engine(reals: list[str], table_size: int = 65537) -> Engine:
    services = node_config()["services"]
    services[0] = web_service("maglev", dict.fromkeys(reals, 100), maglev_table_size=table_size)
    return make_engine(services=services)


def maglev_picks(engine: Engine, client_ports: range, client: str = CLIENT4) -> dict[int, str]:
    """The real each client port's SYN went to; each session is reset and left to
    expire, so a port can be asked again."""
    picks = {}
    for cport in client_ports:
        flow = TcpFlow(engine, cport, client=client)
        flow.syn()
        picks[cport] = flow.real
        flow.to_real(flow.from_client("R", seq=1001))
    engine.advance(10)
    assert engine.sessions() == []
    return picks


def test_maglev_gives_a_client_tuple_the_same_real_every_time() -> None:
    reals = [REAL1, REAL2, REAL3]
    engine = maglev_engine(reals)
    ports = range(43000, 43060)
    first = maglev_picks(engine, ports)
    assert maglev_picks(engine, ports) == first
    # Spread over every real, roughly evenly.
    counts = Counter(first.values())
    assert set(counts) == set(reals)
    assert min(counts.values()) >= 10

    # Another node with the same reals, listed in another order, picks the same reals.
    other = maglev_engine([REAL3, REAL1, REAL2])
    assert maglev_picks(other, ports) == first


def test_maglev_removing_a_real_moves_only_its_flows() -> None:
    engine = maglev_engine([REAL1, REAL2, REAL3])
    ports = range(43100, 43160)
    before = maglev_picks(engine, ports)
    config = node_config()
    config["services"][0] = web_service("maglev", {REAL1: 100, REAL2: 100})
    engine.update(config)
    after = maglev_picks(engine, ports)
    assert REAL3 not in after.values()
    moved = [p for p in ports if before[p] != after[p]]
    assert moved and all(before[p] == REAL3 for p in moved)


def test_removed_service_drains(engine: Engine) -> None:
    # DESIGN section 6: removing a service drains it; its sessions finish.
    old = TcpFlow(engine, 42900)
    old.handshake()
    config = node_config()
    config["services"] = config["services"][1:]  # VIP4:80 removed
    engine.update(config)

    out = old.to_real(old.from_client("PA", seq=1001, ack=5001, payload=b"req"))
    assert bytes(out[TCP].payload) == b"req"
    out = old.to_client(old.from_real("PA", seq=5001, ack=1004, payload=b"resp"))
    assert bytes(out[TCP].payload) == b"resp"

    # No new connection is accepted on it.
    result = engine.trace(bytes(TcpFlow(engine, 42901).from_client("S", seq=1)))
    assert result["sent"] == []
    assert result["verdict"] != "transmit"
    assert len(engine.sessions()) == 1

    old.to_real(old.from_client("FA", seq=1004, ack=5005))
    old.to_client(old.from_real("FA", seq=5005, ack=1005))
    assert old.session()["state"] == "time_wait"
    # The client reusing its port does not reopen the removed service.
    assert send(engine, old.from_client("S", seq=9000)) == []
    assert engine.sessions() == []
