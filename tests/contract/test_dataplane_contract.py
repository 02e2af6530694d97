"""Every method of the `Dataplane` interface, asserted with the same shapes and values
on the harness and on the DPDK node (see conftest.py)."""

from __future__ import annotations

import ipaddress
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import CLIENT4, CLIENT6, VIP4, VIP6
from dplb.api import create_app
from dplb.api.audit import AuditLog
from dplb.config import NodeConfig, parse_config
from dplb.dataplane import COUNTER_FIELDS, Dataplane, Session, SessionKey, SessionQuery
from dplb.engine import DROP_REASONS
from dplb.store import FileStore

from .conftest import BASE, RESET_CLIENT, SESSIONS, UDP_CLIENT

LOCAL_PORTS = BASE.dataplane.local_ports.last - BASE.dataplane.local_ports.first + 1


def with_services(services: list[dict[str, Any]]) -> NodeConfig:
    """BASE with more services (those of BASE stay: their sessions go on)."""
    raw = BASE.model_dump(mode="json", exclude_none=True)
    raw["services"] += services
    return parse_config(raw)


def real_ids(dp: Dataplane) -> set[tuple[str, int, str, str, int, int]]:
    return {(r.vip, r.port, r.protocol, r.address, r.real_port, r.weight) for r in dp.stats().reals}


BASE_REALS = {
    (VIP4, 80, "tcp", "10.0.2.11", 8080, 100),
    (VIP4, 80, "tcp", "10.0.2.12", 8080, 100),
    (VIP4, 53, "udp", "10.0.2.13", 5353, 100),
    (VIP6, 80, "tcp", "2001:db8:2::11", 8080, 100),
}

ONE_SERVICE = [
    {
        "vip": "10.0.100.20",
        "port": 443,
        "scheduler": "maglev",
        "reals": [{"address": "10.0.2.21", "port": 8443, "weight": 3}],
    }
]


def test_kind(dataplane: Dataplane, request: pytest.FixtureRequest) -> None:
    assert dataplane.kind == request.node.callspec.params["dataplane"]
    assert isinstance(dataplane, Dataplane)


def test_running_config_is_the_config_it_runs(dataplane: Dataplane) -> None:
    assert dataplane.running_config() == BASE
    assert real_ids(dataplane) == BASE_REALS


def test_apply_a_good_config_runs_it(dataplane: Dataplane) -> None:
    new = with_services(ONE_SERVICE)
    dataplane.apply(new)
    assert dataplane.running_config() == new
    assert real_ids(dataplane) == BASE_REALS | {("10.0.100.20", 443, "tcp", "10.0.2.21", 8443, 3)}


def test_a_refused_service_leaves_the_old_config_running(dataplane: Dataplane) -> None:
    # A VIP that is a local address: the config model refuses it when parsing, so the
    # config is built without validation to reach the engine's own check.
    bad_service = BASE.services[0].model_copy(update={"vip": ipaddress.ip_address("10.0.2.101")})
    bad = BASE.model_copy(update={"services": [*BASE.services, bad_service]})
    with pytest.raises(ValueError, match=r"10\.0\.2\.101:80.*local address"):
        dataplane.apply(bad)
    assert dataplane.running_config() == BASE
    assert real_ids(dataplane) == BASE_REALS


def test_a_changed_dataplane_section_is_refused(dataplane: Dataplane) -> None:
    raw = BASE.model_dump(mode="json", exclude_none=True)
    raw["dataplane"]["sessions_per_worker"] = 2048
    raw["services"] = ONE_SERVICE
    with pytest.raises(ValueError, match=r"^dataplane: "):
        dataplane.apply(parse_config(raw))
    assert dataplane.running_config() == BASE
    assert real_ids(dataplane) == BASE_REALS


def test_reals_set_down_get_weight_0_until_set_up_and_a_reapply_keeps_them(
    dataplane: Dataplane,
) -> None:
    down = (VIP4, 80, "tcp", "10.0.2.11", 8080)
    quiesced = (*down, 0)
    dataplane.set_reals_down(frozenset({down}))
    try:
        assert real_ids(dataplane) == BASE_REALS - {(*down, 100)} | {quiesced}
        assert dataplane.running_config() == BASE, "health is not config"
        dataplane.apply(with_services(ONE_SERVICE))
        assert quiesced in real_ids(dataplane)
    finally:
        dataplane.set_reals_down(frozenset())
    assert (*down, 100) in real_ids(dataplane)


def test_counters_name_every_real_of_the_snapshot(dataplane: Dataplane) -> None:
    table = dataplane.counters()
    assert sorted(table.services) == sorted(
        [(VIP4, 80, "tcp"), (VIP4, 53, "udp"), (VIP6, 80, "tcp")]
    )
    assert len(table.real_counters) == len(table.reals) * len(COUNTER_FIELDS) == 4 * 8


def test_status(dataplane: Dataplane) -> None:
    status = dataplane.status()
    assert status.kind == dataplane.kind
    assert status.workers == 2
    assert status.uptime_seconds >= 0
    assert [(p.name, p.addresses, p.gateways) for p in status.ports] == [
        ("port0", ["10.0.1.1/24", "2001:db8:1::1/64"], ["10.0.1.254", "2001:db8:1::fe"]),
        ("port1", ["10.0.2.1/24", "2001:db8:2::1/64"], []),
    ]
    for port in status.ports:
        assert port.mac == port.mac.lower() and len(port.mac.split(":")) == 6
        assert port.steering == status.steering


def test_stats(dataplane: Dataplane) -> None:
    stats = dataplane.stats()
    assert [(c.worker, c.session_capacity) for c in stats.cores] == [(0, 1024), (1, 1024)]
    assert sum(c.sessions for c in stats.cores) == len(every_session(dataplane))
    for core in stats.cores:
        assert set(core.drops) == set(DROP_REASONS)
    connections = {(r.vip, r.port, r.protocol): 0 for r in stats.reals}
    for r in stats.reals:
        connections[(r.vip, r.port, r.protocol)] += r.connections
    assert connections == {(VIP4, 80, "tcp"): 32, (VIP4, 53, "udp"): 2, (VIP6, 80, "tcp"): 1}


def test_local_addresses(dataplane: Dataplane) -> None:
    got = [a.model_dump() for a in dataplane.local_addresses()]
    in_use = {(a["worker"], a["address"]): a.pop("ports_in_use") for a in got}
    busiest = {(a["worker"], a["address"]): a.pop("ports_busiest_real") for a in got}
    assert sorted(got, key=lambda a: (a["worker"], a["address"])) == [
        {
            "address": a,
            "port": "port1",
            "worker": w,
            "ports_per_real": LOCAL_PORTS,
            "ports_resting": 0,
        }
        for w, a in [
            (0, "10.0.2.101"),
            (0, "2001:db8:2::101"),
            (1, "10.0.2.102"),
            (1, "2001:db8:2::102"),
        ]
    ]
    # A local port per session, taken on the session's worker from its family's address.
    sessions = every_session(dataplane)
    assert in_use == {
        (w, a): sum(1 for s in sessions if s.worker == w and s.local == a) for w, a in in_use
    }
    assert all(busiest[k] <= in_use[k] for k in in_use)


def test_reset_of_no_session_removes_nothing(dataplane: Dataplane) -> None:
    key = SessionKey(protocol="tcp", client="198.51.100.9", client_port=4000, vip=VIP4, vip_port=80)
    assert dataplane.reset_session(key) == 0


def test_reset_removes_the_session(dataplane: Dataplane) -> None:
    key = SessionKey(protocol="tcp", client=RESET_CLIENT, client_port=60000, vip=VIP4, vip_port=80)
    before = sum(c.sessions for c in dataplane.stats().cores)
    assert dataplane.reset_session(key) == 1
    left = dataplane.sessions(SessionQuery(client=f"{RESET_CLIENT}/32"))
    assert [(s.client, s.client_port) for s in left.items] == [(RESET_CLIENT, 60001)]
    assert sum(c.sessions for c in dataplane.stats().cores) == before - 1
    assert dataplane.reset_session(key) == 0


# -- sessions: filters and pages --------------------------------------------------------


def every_session(dp: Dataplane, **filters: Any) -> list[Session]:
    """Every session matching `filters`, following the cursor with the largest page."""
    return [s for page in pages(dp, limit=1000, **filters) for s in page]


def pages(dp: Dataplane, **query: Any) -> list[list[Session]]:
    out = []
    cursor = None
    while True:
        page = dp.sessions(SessionQuery(**query, cursor=cursor))
        assert page.limit == query["limit"] and len(page.items) <= page.limit
        out.append(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def not_reset(sessions: list[Session]) -> list[Session]:
    return [s for s in sessions if s.client != RESET_CLIENT]


def test_sessions_of_the_traffic(dataplane: Dataplane) -> None:
    sessions = not_reset(every_session(dataplane))
    assert len(sessions) == SESSIONS - 2
    by_client = {(s.protocol, s.client, s.client_port, s.vip, s.vip_port) for s in sessions}
    assert by_client == (
        {("tcp", CLIENT4, 50000 + i, VIP4, 80) for i in range(30)}
        | {("tcp", CLIENT6, 50100, VIP6, 80)}
        | {("udp", UDP_CLIENT, p, VIP4, 53) for p in (5300, 5301)}
    )
    for s in sessions:
        assert s.state == ("syn_sent" if s.protocol == "tcp" else "none")
        assert s.worker in (0, 1)
        assert (s.real, s.real_port) in {
            ("10.0.2.11", 8080),
            ("10.0.2.12", 8080),
            ("10.0.2.13", 5353),
            ("2001:db8:2::11", 8080),
        }
        assert 0 < s.expires_in <= 3600
        assert s.bytes_in > 0 and s.bytes_out == 0


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"client": f"{CLIENT4}/32"}, 30),
        ({"client": "203.0.113.0/24"}, 2),
        ({"client": f"{CLIENT4}/32", "client_port": 50007}, 1),
        ({"vip": VIP6}, 1),
        ({"vip": VIP4, "vip_port": 53}, 2),
        ({"protocol": "udp"}, 2),
        ({"real": "10.0.2.13", "real_port": 5353}, 2),
        ({"state": "syn_sent", "client": "198.51.100.0/24"}, 30),
        ({"state": "established"}, 0),
        ({"state": "no-such-state"}, 0),
        ({"vip": "fe80::1%eth0"}, 0),
        ({"worker": 7}, 0),
    ],
)
def test_session_filters(dataplane: Dataplane, filters: dict[str, Any], expected: int) -> None:
    assert len(not_reset(every_session(dataplane, **filters))) == expected


def test_session_filters_by_real_and_worker_split_the_sessions(dataplane: Dataplane) -> None:
    everything = every_session(dataplane, vip=VIP4, vip_port=80)
    by_real = [every_session(dataplane, real=r, vip_port=80) for r in ("10.0.2.11", "10.0.2.12")]
    by_worker = [every_session(dataplane, worker=w) for w in (0, 1)]
    assert sum(map(len, by_real)) == len(everything)
    assert all(by_real) and all(by_worker)
    assert sum(map(len, by_worker)) == len(every_session(dataplane))
    assert all(s.worker == w for w in (0, 1) for s in by_worker[w])


@pytest.mark.parametrize("limit", [1, 4, 7, 1000])
def test_pages_cover_every_session_once(dataplane: Dataplane, limit: int) -> None:
    got = pages(dataplane, limit=limit)
    flat = [(s.protocol, s.client, s.client_port) for page in got for s in page]
    assert len(flat) == len(set(flat)) == len(every_session(dataplane))
    assert all(len(page) == limit for page in got[:-1])


def test_filtered_pages_hold_matches_only(dataplane: Dataplane) -> None:
    got = pages(dataplane, limit=4, client=f"{CLIENT4}/32", worker=1)
    flat = [s for page in got for s in page]
    assert flat and all(s.client == CLIENT4 and s.worker == 1 for s in flat)
    assert all(len(page) == 4 for page in got[:-1])
    assert len(flat) == len(every_session(dataplane, client=f"{CLIENT4}/32", worker=1))


def test_both_see_the_same_sessions_and_counters(both: tuple[Dataplane, Dataplane]) -> None:
    """The same frames make the same sessions, on the same workers, with the same reals
    and local addresses, in the same order; the counters of the reals agree."""
    harness, dpdk = both

    def seen(dp: Dataplane) -> list[tuple[Any, ...]]:
        return [
            (
                s.worker,
                s.protocol,
                s.client,
                s.client_port,
                s.vip,
                s.vip_port,
                s.local,
                s.real,
                s.real_port,
                s.state,
                s.bytes_in,
            )
            for s in not_reset(every_session(dp))
        ]

    def reals(dp: Dataplane) -> list[tuple[Any, ...]]:
        return sorted(
            (r.vip, r.port, r.protocol, r.address, r.real_port, r.connections)
            for r in dp.stats().reals
        )

    assert seen(harness) == seen(dpdk)
    assert reals(harness) == reals(dpdk)


def test_telemetry(dataplane: Dataplane) -> None:
    t = dataplane.telemetry()
    assert t.kind == dataplane.kind
    assert len(t.cores) == 2
    for core in t.cores:
        assert {"rx_packets", "tx_packets", "drops", "sessions", "session_capacity"} <= set(core)
    assert [p["name"] for p in t.ports] == ["port0", "port1"]
    assert sorted(t.counters.services) == sorted(
        [(VIP4, 80, "tcp"), (VIP4, 53, "udp"), (VIP6, 80, "tcp")]
    )
    assert len(t.counters.reals) == 4
    assert len(t.counters.real_counters) == 4 * len(COUNTER_FIELDS)


# -- apply does not stop the control plane ----------------------------------------------


def many_maglev_services(n: int) -> NodeConfig:
    return with_services(
        [
            {
                "vip": "10.0.100.30",
                "port": 1000 + i,
                "scheduler": "maglev",
                "reals": [{"address": f"10.0.2.{30 + r}", "port": 8080} for r in range(8)],
            }
            for i in range(n)
        ]
    )


@contextmanager
def no_forced_thread_switches() -> Iterator[None]:
    """Python threads switch only where one releases the GIL itself."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_apply_lets_other_python_threads_run(dataplane: Dataplane) -> None:
    """While the Maglev tables of a large config build, the API, /metrics and health
    (other Python threads) keep running. No forced switches: the counting thread runs
    only when the applying thread releases the GIL, so its count moves during `apply`
    exactly when `apply` releases it."""
    config = many_maglev_services(200)
    count = 0
    stop = threading.Event()

    def counter() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1
            time.sleep(0)  # gives the GIL back at once, to whoever waits for it

    with no_forced_thread_switches():
        thread = threading.Thread(target=counter)
        thread.start()
        try:
            time.sleep(0.01)  # lets it start
            before = count
            dataplane.apply(config)
            during = count - before
        finally:
            stop.set()
            thread.join()
    assert dataplane.running_config() == config
    assert during > 0, "no other Python thread ran while apply built 200 Maglev tables"


# -- the API over each dataplane ------------------------------------------------------


def test_api_local_addresses(dataplane: Dataplane, tmp_path: Path) -> None:
    token = "viewer-token-0123456789abcdef"
    raw = BASE.model_dump(mode="json", exclude_none=True)
    raw["api"] = {"tokens": [{"name": "dash", "token": token, "role": "viewer"}]}
    raw["store"] = {"file": str(tmp_path / "desired.yaml")}
    cfg = parse_config(raw)
    dataplane.apply(cfg)  # the tokens are the running config's
    app = create_app(
        cfg,
        dataplane,
        FileStore(tmp_path / "desired.yaml", poll_interval=0.05),
        audit_log=AuditLog(tmp_path / "audit.jsonl"),
    )
    with TestClient(app) as client:
        r = client.get("/api/v1/local-addresses", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert {(a["address"], a["port"], a["worker"]) for a in r.json()} == {
        ("10.0.2.101", "port1", 0),
        ("2001:db8:2::101", "port1", 0),
        ("10.0.2.102", "port1", 1),
        ("2001:db8:2::102", "port1", 1),
    }


def test_control_steering_the_vdevs_cannot_do_is_refused_and_the_node_runs() -> None:
    """`control_flow_steering` asked of net_pcap (one RX queue: no spare one) and net_ring
    (a spare queue, but no rte_flow: its first rule is refused and DPDK says why): each
    port says why not, and the node forwards without it (it made every session of its
    capture when it started; the other tests ran with it asked for)."""
    from .conftest import _node, _start_dpdk

    dp = _start_dpdk()  # fails unless the node made every session of its capture
    pcap, ring = (p["control_steering"] for p in _node["runtime"].ports())
    assert pcap == "refused: no spare RX queue"
    assert ring.startswith("refused: ") and ring != pcap, ring
    assert [p.name for p in dp.status().ports] == ["port0", "port1"]
