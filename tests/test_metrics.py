"""GET /metrics over the engine harness: what an operator's Prometheus sees per node, core,
service and real, moving with the traffic; names and labels by Prometheus' rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scapy.layers.inet import TCP

from api_helpers import ADMIN, Node, api_client, wait_for
from conftest import TcpFlow, client_frame, send
from dplb.metrics import DataplaneCollector

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics")  # no token: Prometheus scrapes it as it is
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    want = {"cluster": "test", "node": "harness", **labels}
    found = [v for (n, ls), v in samples.items() if n == name and want.items() <= dict(ls).items()]
    assert len(found) == 1, f"{name}{labels}: {len(found)} series"
    return found[0]


SERVICE = {"vip": "10.0.100.10", "port": "80", "protocol": "tcp"}


def test_a_connection_moves_the_core_service_and_real_series(
    client: TestClient, node: Node
) -> None:
    before = scrape(client)
    assert value(before, "dplb_up") == 1
    assert value(before, "dplb_service_connections_total", **SERVICE) == 0
    assert value(before, "dplb_real_connections_total", **SERVICE, real="10.0.2.11:8080") == 0

    flow = TcpFlow(node.engine, 40000)
    with node.dataplane.lock:
        flow.handshake()
        send(
            node.engine,
            flow.from_client("PA", seq=1001, ack=5001, payload=b"GET / HTTP/1.0\r\n\r\n"),
        )
    core = str(node.engine.owner(flow.client, flow.client_port, flow.vip, flow.vip_port))
    real = f"{flow.real}:{flow.real_port}"

    after = scrape(client)
    # SYN, ACK and data from the client, SYN-ACK from the real: one worker gets them all.
    assert value(after, "dplb_core_receive_packets_total", core=core) == 4
    assert value(after, "dplb_core_transmit_packets_total", core=core) == 4
    assert value(after, "dplb_core_sessions_created_total", core=core) == 1
    assert value(after, "dplb_core_session_entries", core=core) == 1
    assert value(after, "dplb_session_entries") == 1
    assert value(after, "dplb_service_connections_total", **SERVICE) == 1
    assert value(after, "dplb_service_active_connections", **SERVICE) == 1
    assert value(after, "dplb_service_incoming_packets_total", **SERVICE) == 3
    assert value(after, "dplb_service_outgoing_packets_total", **SERVICE) == 1
    assert value(after, "dplb_real_connections_total", **SERVICE, real=real) == 1
    assert value(after, "dplb_real_incoming_bytes_total", **SERVICE, real=real) == value(
        after, "dplb_service_incoming_bytes_total", **SERVICE
    )
    assert value(after, "dplb_real_incoming_bytes_total", **SERVICE, real=real) > 0
    other = "10.0.2.12:8080" if real == "10.0.2.11:8080" else "10.0.2.11:8080"
    assert value(after, "dplb_real_connections_total", **SERVICE, real=other) == 0
    assert value(after, "dplb_real_up", **SERVICE, real=real) == 1
    assert value(after, "dplb_real_weight", **SERVICE, real=real) == 100
    assert value(after, "dplb_real_enabled", **SERVICE, real=real) == 1


def test_the_harness_counts_frames_per_nic_as_a_nic_would(client: TestClient, node: Node) -> None:
    # The harness once exported no dplb_nic_* series: only the DPDK node had them.
    syn = client_frame() / TCP(sport=40010, dport=80, flags="S", seq=1000)
    stray = client_frame() / TCP(sport=40011, dport=80, flags="A")  # no session: dropped
    sent = node.dataplane.process(bytes(syn), "port0") + node.dataplane.process(
        bytes(stray), "port0"
    )
    assert [port for port, _ in sent] == [1]  # the SYN leaves toward the real
    samples = scrape(client)
    assert value(samples, "dplb_nic_receive_packets_total", nic="port0") == 2
    assert value(samples, "dplb_nic_receive_bytes_total", nic="port0") == len(syn) + len(stray)
    assert value(samples, "dplb_nic_transmit_packets_total", nic="port0") == 0
    assert value(samples, "dplb_nic_receive_packets_total", nic="port1") == 0
    assert value(samples, "dplb_nic_transmit_packets_total", nic="port1") == 1
    assert value(samples, "dplb_nic_transmit_bytes_total", nic="port1") == len(sent[0][1])
    ports = client.get("/api/v1/node", headers=ADMIN).json()["dataplane"]["ports"]
    assert [(p["name"], p["rx_packets"], p["tx_packets"]) for p in ports] == [
        ("port0", 2, 0),
        ("port1", 0, 1),
    ]


def test_drops_are_counted_per_core_under_their_reason(client: TestClient, node: Node) -> None:
    frame = client_frame() / TCP(sport=40001, dport=80, flags="A")  # no session
    out = node.dataplane.process(bytes(frame), "port0", 0)
    assert out == []
    samples = scrape(client)
    assert value(samples, "dplb_core_drops_total", core="0", reason="no_session") == 1
    assert value(samples, "dplb_core_drops_total", core="0", reason="truncated") == 0


def test_every_series_carries_cluster_and_node_and_no_client(
    client: TestClient, node: Node
) -> None:
    flow = TcpFlow(node.engine, 40002)
    with node.dataplane.lock:
        flow.syn()
    text = client.get("/metrics").text
    names = set()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("dplb_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        # The unit goes last (`_bytes_total`, never `_bytes_in_total`).
        assert not re.search(r"_(bytes|packets|seconds)_(?!total$)", family.name), family.name
        for s in family.samples:
            names.add(s.name)
            assert s.labels["cluster"] == "test" and s.labels["node"] == "harness", s
            assert not {"client", "client_port", "src"} & s.labels.keys(), s
            assert "198.51.100.7" not in s.labels.values(), s
    for required in (
        "dplb_up",
        "dplb_info",
        "dplb_config_applied_version",
        "dplb_config_refused",
        "dplb_session_entries_limit",
        "dplb_logger_dropped_total",
        "dplb_core_handover_packets_total",
        "dplb_core_drops_total",
        "dplb_service_outgoing_bytes_total",
        "dplb_real_outgoing_packets_total",
    ):
        assert required in names, required


@pytest.mark.skipif(
    shutil.which("promtool") is None and not os.environ.get("CI"),
    reason="promtool (Debian package prometheus) missing",
)
def test_promtool_finds_nothing_to_lint_in_a_scrape(client: TestClient, node: Node) -> None:
    flow = TcpFlow(node.engine, 40003)
    with node.dataplane.lock:
        flow.syn()
    text = client.get("/metrics").text
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_render_and_collect_give_the_same_samples(client: TestClient, node: Node) -> None:
    flow = TcpFlow(node.engine, 40004)
    with node.dataplane.lock:
        flow.handshake()
    client.get("/metrics")  # starts the app's collector
    collector = node.app.state.metrics_collector
    registry = CollectorRegistry()
    registry.register(collector)
    from_client = parse(generate_latest(registry).decode())
    rendered = parse(collector.render())
    assert rendered == from_client


def test_config_versions_and_a_refusal_show(client: TestClient, node: Node) -> None:
    samples = scrape(client)
    assert value(samples, "dplb_config_applied_version") == 1
    assert value(samples, "dplb_config_refused") == 0
    path = node.store.path
    # As an editor saves (a new file renamed over the old): the store never reads a half
    # written file, which it would record as a version of its own.
    edited = path.with_name("desired.yaml.new")
    edited.write_text(path.read_text().replace("port: 8080", "port: 80800", 1))
    edited.replace(path)
    wait_for(lambda: value(scrape(client), "dplb_config_refused") == 1, what="the refusal")
    samples = scrape(client)
    assert value(samples, "dplb_config_applied_version") == 1
    assert value(samples, "dplb_config_last_version") == 2


def test_a_disabled_real_shows_enabled_zero(client: TestClient, node: Node) -> None:
    path: Path = node.store.path
    text = path.read_text()
    assert "  - address: 10.0.2.12\n    port: 8080\n" in text, text
    path.write_text(
        text.replace(
            "  - address: 10.0.2.12\n    port: 8080\n",
            "  - address: 10.0.2.12\n    port: 8080\n    enabled: false\n",
        )
    )
    wait_for(
        lambda: value(scrape(client), "dplb_real_enabled", **SERVICE, real="10.0.2.12:8080") == 0,
        what="the disabled real",
    )
    assert value(scrape(client), "dplb_real_enabled", **SERVICE, real="10.0.2.11:8080") == 1


def test_the_logger_shows_in_the_metrics(tmp_path: Path) -> None:
    node = Node(tmp_path, workers=2)
    logger = node.engine.start_logger(tmp_path / "dplb.jsonl")
    with api_client(node) as client:
        samples = scrape(client)
        assert value(samples, "dplb_logger_paused") == 0
        assert value(samples, "dplb_logger_dropped_total", reason="ring_full") == 0
        logger.event("start", "{}")
        assert logger.flush()
        assert value(scrape(client), "dplb_logger_lines_total") >= 1
        logger.pause()
        assert value(scrape(client), "dplb_logger_paused") == 1
        logger.resume()


def test_a_real_health_verdict_shows_as_up_zero(node: Node) -> None:
    down = ("10.0.100.10", 80, "tcp", "10.0.2.11", 8080)
    collector = DataplaneCollector(
        node.dataplane, cluster="test", node="harness", real_up=lambda: {down: False}
    )
    samples = parse(collector.render())
    assert value(samples, "dplb_real_up", **SERVICE, real="10.0.2.11:8080") == 0
    assert value(samples, "dplb_real_up", **SERVICE, real="10.0.2.12:8080") == 1


def test_local_address_ports_show_in_use_resting_and_the_busiest_real(
    client: TestClient, node: Node
) -> None:
    laddr = {"core": "0", "address": "10.0.2.101"}
    before = scrape(client)
    assert value(before, "dplb_local_address_ports_limit", **laddr) == 65535 - 1024 + 1
    assert value(before, "dplb_local_address_ports", **laddr, state="in_use") == 0
    assert value(before, "dplb_local_address_busiest_real_ports", **laddr) == 0
    assert value(before, "dplb_core_local_port_holds_cut_total", core="0") == 0

    flow = TcpFlow(node.engine, 40010)
    with node.dataplane.lock:
        flow.handshake()
    during = scrape(client)
    assert value(during, "dplb_local_address_ports", **laddr, state="in_use") == 1
    assert value(during, "dplb_local_address_busiest_real_ports", **laddr) == 1

    with node.dataplane.lock:  # the real closes first, then the session is reset
        flow.to_client(flow.from_real("FA", seq=5001, ack=1001))
        flow.to_real(flow.from_client("FA", seq=1001, ack=5002))
        node.engine.reset_session(flow.client, flow.client_port, flow.vip, 80, "tcp")
        node.engine.advance(1)
    resting = scrape(client)
    assert value(resting, "dplb_local_address_ports", **laddr, state="in_use") == 0
    assert value(resting, "dplb_local_address_ports", **laddr, state="resting") == 1
    assert value(resting, "dplb_local_address_busiest_real_ports", **laddr) == 1
    with node.dataplane.lock:
        node.engine.advance(60)  # the real's TIME_WAIT is over
    after = scrape(client)
    assert value(after, "dplb_local_address_ports", **laddr, state="resting") == 0
    assert value(after, "dplb_local_address_busiest_real_ports", **laddr) == 0
