"""Health checks (dplb.health): the rise/fall state machine, checks spread over the
interval, and, through the API over the harness, a real whose health endpoint is a real
Python listener on loopback going away and coming back: marked down, no new sessions to
it while its established ones go on, back up after `rise` passes, the same in the API,
/metrics and after the config is applied again. The passive checks: SYNs a real never
answered take it down. Intervals are short; nothing asserts on how long anything took."""

from __future__ import annotations

import asyncio
import http.server
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from api_helpers import (
    ADMIN,
    ADMIN_TOKEN,
    API,
    VIEWER,
    Node,
    api_client,
    harness_dataplane,
    running_server,
    wait_for,
)
from conftest import CLIENT_GW_MAC, REAL_MACS, VIP4, TcpFlow, node_config
from dplb.config import HealthCheckSection, parse_config
from dplb.dataplane import DataplaneStatus, HarnessDataplane
from dplb.engine import Engine
from dplb.health import HealthChecker, service_can_serve
from dplb.health.probes import ProbeTarget, run_check
from dplb.health.state import RealHealth
from health_helpers import checked_node, listener

WEB = f"{API}/services/{VIP4}/80/tcp"


# -- the state machine -----------------------------------------------------------------


def test_a_real_goes_down_after_fall_failures_and_up_after_rise_passes() -> None:
    h = RealHealth(rise=2, fall=3)
    assert h.status == "up" and h.last_result == "unknown"
    assert not h.record(False, "refused", 1.0)
    assert not h.record(False, "refused", 2.0)
    assert h.up, "two failures of three: still up"
    assert h.record(False, "timeout", 3.0)
    assert (h.status, h.last_result, h.last_change_at, h.down_reason) == (
        "down",
        "timeout",
        3.0,
        "active",
    )
    assert not h.record(True, "pass", 4.0)
    assert not h.record(False, "refused", 5.0), "a failure restarts the count of passes"
    assert not h.record(True, "pass", 6.0)
    assert h.record(True, "pass", 7.0)
    assert (h.status, h.last_change_at, h.down_reason) == ("up", 7.0, None)


def test_a_pass_between_failures_keeps_a_real_up() -> None:
    h = RealHealth(rise=1, fall=2)
    for i in range(10):
        assert not h.record(i % 2 == 0, "x", float(i))
    assert h.up


def test_passive_marks_down_at_once_and_active_checks_bring_it_back() -> None:
    h = RealHealth(rise=2, fall=3)
    assert h.mark_down("5 SYNs unanswered", 1.0)
    assert (h.status, h.down_reason) == ("down", "passive")
    assert not h.mark_down("again", 2.0), "already down: no second change"
    h.record(True, "pass", 3.0)
    assert h.record(True, "pass", 4.0)
    assert h.up


def many_reals_config(n: int, interval: float = 1.0) -> dict[str, Any]:
    reals = [{"address": f"10.0.{2 + i // 250}.{1 + i % 250}", "port": 8080} for i in range(n)]
    cfg = node_config()
    cfg["dataplane"]["ports"][1]["address"] = ["10.0.0.1/16", "2001:db8:2::1/64"]
    cfg["services"] = [
        {
            "vip": VIP4,
            "port": 80,
            "reals": reals,
            "health_check": {"interval": interval, "timeout": 0.5},
        }
    ]
    return cfg


def test_checks_are_spread_over_the_interval() -> None:
    cfg = parse_config(many_reals_config(1000))
    clock = [100.0]
    checker = HealthChecker(
        HarnessDataplane(Engine(cfg)),
        cfg.health,
        running_config=lambda: cfg,
        clock=lambda: clock[0],
    )
    checker.sync(cfg)
    due = [d for d, _ in checker.schedule()]
    assert len(due) == 1000
    assert all(100.0 <= d < 101.0 for d in due)
    # Ten slices of the interval: each starts about a tenth of the checks, never all.
    slices = [0] * 10
    for d in due:
        slices[int((d - 100.0) * 10)] += 1
    assert max(slices) <= 101 and min(slices) >= 99, slices
    # The config applied again: nobody moves (no burst of checks on each apply).
    clock[0] = 100.5
    checker.sync(parse_config(many_reals_config(1000)))
    assert [d for d, _ in checker.schedule()] == due


def test_a_config_applied_again_keeps_a_down_real_down() -> None:
    cfg = parse_config(node_config())
    checker = HealthChecker(HarnessDataplane(Engine(cfg)), cfg.health)
    checker.sync(cfg)
    key = (VIP4, 80, "tcp", "10.0.2.11", 8080)
    health = checker.state.get(key)
    assert health is not None
    health.mark_down("refused", 1.0)
    checker.sync(parse_config(node_config()))
    assert not checker.state.is_up(key)
    assert checker.state.service_can_serve((VIP4, 80, "tcp")), "10.0.2.12 is still up"
    other = checker.state.get((VIP4, 80, "tcp", "10.0.2.12", 8080))
    assert other is not None
    other.mark_down("refused", 1.0)
    assert not checker.state.service_can_serve((VIP4, 80, "tcp"))
    # The UDP service checks nothing by default: its real is unchecked, counted up.
    udp = checker.state.get((VIP4, 53, "udp", "10.0.2.13", 5353))
    assert udp is not None and udp.status == "unchecked"
    assert checker.state.service_can_serve((VIP4, 53, "udp"))


# -- a real listener on loopback -------------------------------------------------------


def real_health(client: TestClient, real: str = "10.0.2.11") -> dict[str, Any]:
    r = client.get(f"{WEB}/reals/{real}/8080", headers=VIEWER)
    assert r.status_code == 200, r.text
    health: dict[str, Any] = r.json()["health"]
    return health


def metric(client: TestClient, name: str, real: str) -> float:
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + "{") and f'real="{real}:8080"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {real}: not in /metrics")


def new_session_reals(node: Node, first_port: int, count: int) -> list[str]:
    """Sends `count` client SYNs; returns the real each went to."""
    reals = []
    for cport in range(first_port, first_port + count):
        out = node.dataplane.process(bytes(TcpFlow(node.engine, cport).from_client("S", seq=1)))
        assert len(out) == 1, f"SYN from port {cport}: {len(out)} frames out"
        reals.append(Ether(out[0][1])[IP].dst)
    return reals


def established_with(node: Node, real: str, first_port: int) -> TcpFlow:
    """An established client connection that the scheduler gave to `real`."""
    with node.dataplane.lock:
        for cport in range(first_port, first_port + 100):
            flow = TcpFlow(node.engine, cport)
            flow.handshake()
            if flow.real == real:
                return flow
    raise AssertionError(f"no connection went to {real}")


def test_a_real_whose_listener_goes_away_is_down_then_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dplb.health")
    with listener() as server:
        node = checked_node(
            tmp_path, server.port, type="http", path="/ready", expect_body="healthy"
        )
        with api_client(node) as client:
            wait_for(
                lambda: real_health(client)["last_result"] == "pass", what="a first passing check"
            )
            assert real_health(client)["status"] == "up"
            assert real_health(client, "10.0.2.12")["status"] == "unchecked"
            assert server.requests and server.requests[0].startswith(b"GET /ready HTTP/1.1\r\n")
            assert sorted(set(new_session_reals(node, 40000, 4))) == ["10.0.2.11", "10.0.2.12"]
            # An established session with 10.0.2.11 before it goes down.
            flow = established_with(node, "10.0.2.11", 41000)

            server.stop()
            health = wait_for(
                lambda: (h := real_health(client))["status"] == "down" and h,
                what="10.0.2.11 marked down",
            )
            assert health["last_result"] == "refused"
            assert health["down_reason"] == "active"
            assert health["last_change_at"] is not None
            assert metric(client, "dplb_real_up", "10.0.2.11") == 0
            assert metric(client, "dplb_real_up", "10.0.2.12") == 1
            # Logged as an event (the node's log writes `event` and `fields` as JSON).
            (event,) = [r for r in caplog.records if getattr(r, "event", None) == "real_down"]
            assert event.fields == {  # type: ignore[attr-defined]
                "vip": VIP4,
                "port": 80,
                "protocol": "tcp",
                "real": "10.0.2.11",
                "real_port": 8080,
                "result": "refused",
                "source": "active",
            }
            # No new session goes to it; its established one goes on.
            assert set(new_session_reals(node, 42000, 6)) == {"10.0.2.12"}
            with node.dataplane.lock:
                flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"still"))
            # Health is not config: the stored config did not change, and applying a
            # config again (a weight change of the other real) keeps 10.0.2.11 down.
            stored = client.get(f"{WEB}/reals/10.0.2.11/8080", headers=VIEWER).json()
            assert (stored["weight"], stored["enabled"]) == (100, True)
            r = client.patch(f"{WEB}/reals/10.0.2.12/8080", headers=ADMIN, json={"weight": 50})
            assert r.status_code == 200, r.text
            assert set(new_session_reals(node, 43000, 4)) == {"10.0.2.12"}

            server.start()  # the same port again
            wait_for(lambda: real_health(client)["status"] == "up", what="10.0.2.11 back up")
            assert metric(client, "dplb_real_up", "10.0.2.11") == 1
            assert [getattr(r, "event", None) for r in caplog.records].count("real_up") == 1
            assert "10.0.2.11" in new_session_reals(node, 44000, 6)
            checks = client.get(f"{API}/health-checks", headers=VIEWER).json()
            web = next(s for s in checks["services"] if s["id"] == f"{VIP4}:80/tcp")
            assert (web["can_serve"], web["reals_up"], web["reals_down"]) == (True, 2, 0)
            assert checks["checker"]["enabled"] and checks["checker"]["checks"]["fail"] >= 2
            text = client.get("/metrics").text
            assert 'dplb_health_checks_total{cluster="test",node="harness",result="fail"}' in text


def test_a_real_down_with_on_down_reset_loses_its_sessions(tmp_path: Path) -> None:
    with listener() as server:
        node = checked_node(tmp_path, server.port, type="tcp", on_down="reset")
        with api_client(node) as client:
            wait_for(lambda: real_health(client)["last_result"] == "pass", what="a first pass")
            flow = established_with(node, "10.0.2.11", 41000)
            server.stop()
            wait_for(lambda: real_health(client)["status"] == "down", what="marked down")

            def gone() -> bool:
                r = client.get(f"{API}/sessions", headers=VIEWER, params={"real": "10.0.2.11"})
                return r.status_code == 200 and not r.json()["items"]

            wait_for(gone, what="its sessions reset")
            data = flow.from_client("PA", seq=1001, ack=5001, payload=b"late")
            assert node.dataplane.process(bytes(data)) == [], "its session is gone"


def test_the_health_checks_of_the_harness_are_off_without_a_checker(client: TestClient) -> None:
    assert real_health(client)["status"] == "unknown"
    checks = client.get(f"{API}/health-checks", headers=VIEWER).json()
    assert checks["checker"]["enabled"] is False
    assert metric(client, "dplb_real_up", "10.0.2.11") == 1


# -- passive checks --------------------------------------------------------------------


def test_syns_a_real_never_answers_take_it_down(tmp_path: Path) -> None:
    with listener() as server:
        node = checked_node(
            tmp_path,
            server.port,
            type="tcp",
            interval=0.2,
            passive={"syn_unanswered": 2, "window": 60},
        )
        with api_client(node) as client:
            wait_for(lambda: real_health(client)["last_result"] == "pass", what="a first pass")
            # Three SYNs to 10.0.2.11 that it never answers: their sessions expire in
            # syn_sent (tcp_syn: 30 s on the harness clock).
            sent = 0
            cport = 45000
            while sent < 3:
                reals = new_session_reals(node, cport, 1)
                cport += 1
                sent += reals == ["10.0.2.11"]
            node.dataplane.advance(31)
            stats = node.dataplane.stats()
            (real,) = [r for r in stats.reals if r.address == "10.0.2.11" and r.real_port == 8080]
            assert real.syn_unanswered == 3
            health = wait_for(
                lambda: (h := real_health(client))["status"] == "down" and h,
                what="10.0.2.11 marked down by its unanswered SYNs",
            )
            assert health["down_reason"] == "passive"
            assert "SYNs unanswered" in health["last_result"]
            # Its checks pass (the listener is there): back up through them.
            wait_for(lambda: real_health(client)["status"] == "up", what="back up")


def test_resets_from_a_real_are_counted() -> None:
    engine = Engine(node_config())
    for ip, mac in REAL_MACS.items():
        engine.set_neighbour("port1", ip, mac)
    engine.set_neighbour("port0", "10.0.1.254", CLIENT_GW_MAC)
    flow = TcpFlow(engine, 46000)
    flow.syn()
    engine.process(bytes(flow.from_real("RA", seq=0, ack=1001)), 1)
    (real,) = [r for r in engine.stats()["reals"] if r["real"] == (flow.real, 8080)]
    assert (real["resets_from_real"], real["syn_unanswered"]) == (1, 0)


@pytest.mark.parametrize("kind", ["tcp", "http"])
def test_probes_against_a_closed_port_fail(kind: str) -> None:
    with listener() as server:
        port = server.port
        target = ProbeTarget("127.0.0.1", port, socket.AF_INET, None)
        check = HealthCheckSection(type=kind, timeout=1.0)  # type: ignore[arg-type]
        assert asyncio.run(run_check(kind, check, target)).passed
        wrong = HealthCheckSection(type=kind, timeout=1.0, expect_status=[204])  # type: ignore[arg-type]
        if kind == "http":
            assert asyncio.run(run_check(kind, wrong, target)).result == "status 200"
    result = asyncio.run(run_check(kind, check, target))
    assert (result.passed, result.result) == (False, "refused")


def test_a_udp_check_fails_on_port_unreachable_and_passes_on_a_reply() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

        def echo() -> None:
            data, peer = sock.recvfrom(100)
            sock.sendto(b"pong " + data, peer)

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        target = ProbeTarget("127.0.0.1", port, socket.AF_INET, None)
        check = HealthCheckSection(
            type="udp", timeout=1.0, send="ping", udp_expect="reply", expect_body="pong"
        )
        assert asyncio.run(run_check("udp", check, target)).passed
        thread.join(timeout=5)
    silent = HealthCheckSection(type="udp", timeout=0.5, send="ping")
    result = asyncio.run(run_check("udp", silent, target))  # nobody on the port now
    assert (result.passed, result.result) == (False, "refused")


# -- dplb ctl --------------------------------------------------------------------------


def test_dplb_ctl_shows_a_down_real_and_the_services_that_can_serve(tmp_path: Path) -> None:
    with listener() as server:
        node = checked_node(tmp_path, server.port, type="tcp")
        with running_server(node) as url:
            wait_for(lambda: b"pass" in ctl_out(url, "reals", "list", f"{VIP4}:80"), what="a pass")
            server.stop()
            wait_for(
                lambda: b"down" in ctl_out(url, "reals", "list", f"{VIP4}:80").splitlines()[1],
                what="10.0.2.11 down in dplb ctl",
            )
            rows = [
                line.split() for line in ctl_out(url, "reals", "list", f"{VIP4}:80").splitlines()
            ]
            assert rows[0] == [
                b"REAL",
                b"WEIGHT",
                b"ENABLED",
                b"STATE",
                b"HEALTH",
                b"LAST-CHECK",
                b"SINCE",
            ]
            assert rows[1][:6] == [b"10.0.2.11:8080", b"100", b"yes", b"down", b"down", b"refused"]
            assert rows[2][:5] == [b"10.0.2.12:8080", b"100", b"yes", b"up", b"unchecked"]
            services = [line.split() for line in ctl_out(url, "services", "list").splitlines()]
            assert services[1][0] == b"10.0.100.10:80/tcp"
            assert services[1][-1] == b"1/2", "10.0.2.11 down: one of two reals takes sessions"
            out = ctl_out(url, "health").decode()
            lines = [line.split() for line in out.splitlines()]
            assert lines[0] == ["SERVICE", "CHECK", "NIC", "CAN-SERVE", "UP", "DOWN"]
            assert ["10.0.100.10:80/tcp", "tcp", "-", "yes", "1", "1"] in lines
            assert ["10.0.100.10:80/tcp", "10.0.2.11:8080", "refused", "active"] in lines
            assert "health checker: 1 reals checked" in out, "only 10.0.2.11 is checked"


def ctl_out(url: str, *args: str) -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPLB_")}
    env.update({"DPLB_URL": url, "DPLB_TOKEN": ADMIN_TOKEN})
    result = subprocess.run(
        [sys.executable, "-m", "dplb.cli", "ctl", *args], capture_output=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- links: a port down takes down the reals behind it, and only those ------------------


class LinkDataplane(HarnessDataplane):
    """The harness with links that go down and up (the harness has no NIC to tell)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.links = {"port0": True, "port1": True}

    def status(self) -> DataplaneStatus:
        status = super().status()
        for port in status.ports:
            port.link_up = self.links[port.name]
        return status


def two_nic_config() -> dict[str, Any]:
    """The web service behind port1 (10.0.2.0/24) and another behind port0 (10.0.1.0/24),
    neither checked: only the links decide."""
    cfg = node_config()
    cfg["services"] = [
        {**cfg["services"][0], "health_check": {"type": "none"}},
        {
            "vip": VIP4,
            "port": 81,
            "reals": [{"address": "10.0.1.21", "port": 8080}],
            "health_check": {"type": "none"},
        },
    ]
    return cfg


def test_a_link_down_takes_down_only_the_services_behind_that_port() -> None:
    cfg = parse_config(two_nic_config())
    dataplane = LinkDataplane(harness_dataplane(cfg).engine)
    web, other = (VIP4, 80, "tcp"), (VIP4, 81, "tcp")
    changes: list[list[Any]] = []

    async def scenario() -> None:
        checker = HealthChecker(dataplane, cfg.health)
        checker.state.subscribe(changes.append)
        checker.start()
        try:
            assert checker.state.service_can_serve(web)
            assert checker.state.service_can_serve(other)
            dataplane.links["port1"] = False
            await until(lambda: not checker.state.service_can_serve(web))
            assert checker.state.service_can_serve(other), "port0's service is not touched"
            health = checker.state.get((*web, "10.0.2.11", 8080))
            assert health is not None
            assert (health.status, health.last_result, health.down_reason) == (
                "down",
                "link down",
                "link",
            )
            await until(lambda: bool(dataplane._down))
            syn = TcpFlow(dataplane.engine, 47000).from_client("S", seq=1)
            assert dataplane.process(bytes(syn)) == [], "no real behind a dead link"
            assert checker.state.changed.is_set()

            dataplane.links["port1"] = True
            await until(lambda: checker.state.service_can_serve(web))
            await until(lambda: not dataplane._down)
            assert len(dataplane.process(bytes(syn))) == 1
        finally:
            await checker.stop()

    asyncio.run(scenario())
    assert sorted(changes[0]) == [(*web, "10.0.2.11", 8080), (*web, "10.0.2.12", 8080)]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_an_https_check_sends_its_method_path_and_host_and_judges_the_answer(
    tmp_path: Path,
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=real.example", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    seen: list[tuple[str, str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            seen.append((self.command, self.path, self.headers.get("Host")))
            self.send_response(503 if self.path == "/busy" else 204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = ProbeTarget("127.0.0.1", server.server_address[1], socket.AF_INET, None)
        check = HealthCheckSection(
            type="https", method="HEAD", path="/ready", host="shop.example", expect_status=[204]
        )
        assert asyncio.run(run_check("https", check, target)).passed
        assert seen[-1] == ("HEAD", "/ready", "shop.example")
        busy = check.model_copy(update={"path": "/busy"})
        assert asyncio.run(run_check("https", busy, target)).result == "status 503"
        plain = asyncio.run(run_check("http", check, target))  # HTTP to a TLS port
        assert not plain.passed
    finally:
        server.shutdown()
        server.server_close()


def test_service_can_serve_follows_the_checks_and_without_a_checker_the_config(
    tmp_path: Path, client: TestClient, node: Node
) -> None:
    web, udp, gone = (VIP4, 80, "tcp"), (VIP4, 53, "udp"), ("10.0.100.99", 80, "tcp")
    # The API's test node runs no checker: the config decides.
    assert service_can_serve(node.app, web) and service_can_serve(node.app, udp)
    assert not service_can_serve(node.app, gone)
    r = client.patch(f"{WEB}/reals/10.0.2.11/8080", headers=ADMIN, json={"weight": 0})
    assert r.status_code == 200
    r = client.post(f"{WEB}/reals/10.0.2.12/8080/quiesce", headers=ADMIN)
    assert r.status_code == 200
    assert not service_can_serve(node.app, web), "no real takes sessions"
    with listener() as server:
        checked = checked_node(tmp_path / "checked", server.port, both=True, type="tcp")
        with api_client(checked) as c:
            wait_for(lambda: real_health(c)["last_result"] == "pass", what="a pass")
            assert service_can_serve(checked.app, web)
            server.stop()
            wait_for(lambda: not service_can_serve(checked.app, web), what="both reals down")
            assert service_can_serve(checked.app, udp), "the UDP service checks nothing"
