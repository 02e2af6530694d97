"""The node's log (DESIGN section 8) through the engine harness: the connection log of a
service with `connection_log`, events, and a held logger that never holds forwarding."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from dplb._core import log_ring_slots
from scapy.layers.inet import TCP

from conftest import VIP4, TcpFlow, client_frame, make_engine, node_config
from dplb import ConfigError, parse_config
from dplb.engine import Engine
from dplb.eventlog import LoggerHandler, log_event


def logged_services(flag: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "vip": VIP4,
            "port": 80,
            "scheduler": "rr",
            "connection_log": flag,
            "reals": [{"address": "10.0.2.11", "port": 8080}],
        },
        {"vip": VIP4, "port": 81, "reals": [{"address": "10.0.2.12", "port": 8080}]},
    ]


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def events(path: Path, name: str) -> list[dict[str, Any]]:
    return [line for line in read_lines(path) if line["event"] == name]


_SYN = {
    port: bytes(client_frame() / TCP(sport=1, dport=port, flags="S", seq=1000)) for port in (80, 81)
}


def syn(engine: Engine, client_port: int, vip_port: int = 80) -> list[tuple[int, bytes]]:
    """A client SYN from `client_port` (a template with the port patched in: the engine
    checks no checksum, and thousands of scapy frames would take seconds)."""
    frame = _SYN[vip_port]
    frame = frame[:34] + client_port.to_bytes(2, "big") + frame[36:]
    return engine.process(frame, "port0")


def test_a_connection_is_logged_when_it_opens_and_closes(tmp_path: Path) -> None:
    engine = make_engine(services=logged_services())
    log = tmp_path / "dplb.jsonl"
    logger = engine.start_logger(log)
    engine.advance(10)
    flow = TcpFlow(engine, 40000)
    flow.handshake()
    flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"x" * 100))
    flow.to_client(flow.from_real("PA", seq=5001, ack=1101, payload=b"y" * 300))
    assert logger.flush()
    (opened,) = events(log, "session_open")
    assert opened["node"] == "harness" and opened["cluster"] == "test"
    assert (opened["protocol"], opened["client"], opened["client_port"]) == (
        "tcp",
        flow.client,
        40000,
    )
    assert (opened["vip"], opened["vip_port"]) == (VIP4, 80)
    assert (opened["real"], opened["real_port"]) == ("10.0.2.11", 8080)
    assert (opened["local"], opened["local_port"]) == (flow.local, flow.local_port)
    assert opened["engine_time"] == 10.0
    assert events(log, "session_close") == []

    engine.advance(2.5)
    assert engine.reset_session(flow.client, 40000, VIP4, 80) == 1
    assert logger.flush()
    (closed,) = events(log, "session_close")
    session_bytes = {s["client"][1]: s for s in engine.sessions()}
    assert 40000 not in session_bytes
    assert closed["reason"] == "reset"
    assert closed["state"] == "established"
    assert closed["duration_s"] == 2.5
    # Bytes each way, as the session counted them (frames as they arrived).
    assert closed["bytes_in"] > 100 and closed["bytes_out"] > 300
    assert closed["bytes_in"] < closed["bytes_out"]


def test_an_expired_session_is_logged_with_its_reason(tmp_path: Path) -> None:
    engine = make_engine(services=logged_services())
    log = tmp_path / "dplb.jsonl"
    logger = engine.start_logger(log)
    assert syn(engine, 40000)
    engine.advance(31)  # past tcp_syn
    assert logger.flush()
    (closed,) = events(log, "session_close")
    assert (closed["reason"], closed["state"]) == ("expired", "syn_sent")


def test_services_without_the_flag_log_no_connection(tmp_path: Path) -> None:
    engine = make_engine(services=logged_services())
    log = tmp_path / "dplb.jsonl"
    logger = engine.start_logger(log)
    assert syn(engine, 40000, vip_port=81)
    assert logger.flush()
    assert read_lines(log) == []


def test_a_held_logger_never_holds_forwarding_and_logging_resumes(tmp_path: Path) -> None:
    extra = 500
    n = log_ring_slots + extra
    engine = make_engine(services=logged_services(), sessions_per_worker=n + 64)
    unlogged = make_engine(services=logged_services(False), sessions_per_worker=n + 64)
    log = tmp_path / "dplb.jsonl"
    logger = engine.start_logger(log)

    # The same traffic without a connection log: how fast forwarding is.
    started = time.perf_counter()
    for i in range(n):
        assert syn(unlogged, 1024 + i)
    baseline = time.perf_counter() - started

    logger.pause()
    started = time.perf_counter()
    for i in range(n):
        assert syn(engine, 1024 + i), f"SYN {i} was not forwarded"
    held = time.perf_counter() - started
    totals = engine.stats()["total"]
    assert totals["sessions_created"] == n
    assert totals["log_dropped"] == extra  # the ring filled, the rest were counted
    assert logger.stats()["worker_dropped"] == extra
    assert not log.exists() or events(log, "session_open") == []
    # Full speed: the worker went on as if there were no log at all (generous bound:
    # a worker that waited for the logger would never have finished).
    assert held < 3 * baseline + 0.5, (held, baseline)

    logger.resume()
    assert logger.flush()
    assert len(events(log, "session_open")) == log_ring_slots
    assert syn(engine, 60000)
    assert logger.flush()
    assert events(log, "session_open")[-1]["client_port"] == 60000
    assert engine.stats()["total"]["log_dropped"] == extra
    logger.stop()
    (lost,) = events(log, "log_dropped")
    assert (lost["count"], lost["total"]) == (extra, extra)


def test_events_and_drop_reports_are_lines_too(tmp_path: Path) -> None:
    cfg = node_config()
    cfg["dataplane"]["log"] = {"file": str(tmp_path / "node.jsonl"), "drop_report_interval": 0.05}
    engine = Engine(cfg)
    logger = engine.start_logger()
    assert logger.path == str(tmp_path / "node.jsonl")
    assert logger.event("config_applied", json.dumps({"version": 7}))
    assert not logger.event("bad", "[1]")
    engine.process(bytes(client_frame() / TCP(sport=1, dport=80, flags="A")), "port0")
    deadline = time.monotonic() + 5
    while not events(tmp_path / "node.jsonl", "drops") and time.monotonic() < deadline:
        logger.flush()
    (applied,) = events(tmp_path / "node.jsonl", "config_applied")
    assert applied["version"] == 7
    (drops,) = events(tmp_path / "node.jsonl", "drops")
    assert (drops["reason"], drops["count"]) == ("no_session", 1)


def test_size_rotation_keeps_the_configured_number_of_files(tmp_path: Path) -> None:
    cfg = node_config()
    cfg["dataplane"]["log"] = {"file": str(tmp_path / "node.jsonl"), "max_bytes": 4096, "keep": 2}
    engine = Engine(cfg)
    logger = engine.start_logger()
    for i in range(300):
        assert logger.event("tick", json.dumps({"i": i}))
    assert logger.flush()
    logger.stop()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["node.jsonl", "node.jsonl.1", "node.jsonl.2"]
    assert all((tmp_path / f).stat().st_size <= 4096 for f in files)
    assert read_lines(tmp_path / "node.jsonl")[-1]["i"] == 299
    assert logger.stats()["rotations"] >= 2


def test_a_log_file_that_cannot_be_opened_is_refused(tmp_path: Path) -> None:
    engine = make_engine()
    with pytest.raises(ValueError, match="cannot open"):
        engine.start_logger(tmp_path / "missing" / "dplb.jsonl")


def test_config_of_the_log_is_validated() -> None:
    cfg = node_config()
    cfg["dataplane"]["log"] = {"file": "/var/log/dplb.jsonl", "max_bytes": 10, "keep": -1}
    cfg["services"][0]["connection_log"] = "yes"
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    paths = {path for path, _ in err.value.errors}
    assert paths == {
        "dataplane.log.max_bytes",
        "dataplane.log.keep",
        "services[0].connection_log",
    }


def test_control_side_events_and_python_log_records_reach_the_file(tmp_path: Path) -> None:
    engine = make_engine()
    log = tmp_path / "dplb.jsonl"
    logger = engine.start_logger(log)
    assert log_event(logger, "real_down", vip="10.0.100.10:80/tcp", real="10.0.2.11:8080")
    python_log = logging.getLogger("dplb.test-eventlog")
    python_log.setLevel(logging.INFO)
    handler = LoggerHandler(logger)
    python_log.addHandler(handler)
    try:
        python_log.info(
            "applied version %d", 4, extra={"event": "config_applied", "fields": {"version": 4}}
        )
        python_log.warning("refused version %d: %s", 5, "services[0].port: bad")
        python_log.debug("not at INFO: not written")
    finally:
        python_log.removeHandler(handler)
    assert logger.flush()
    lines = read_lines(log)
    assert [line["event"] for line in lines] == ["real_down", "config_applied", "message"]
    assert lines[0]["real"] == "10.0.2.11:8080"
    assert lines[1]["version"] == 4
    assert (lines[2]["logger"], lines[2]["level"]) == ("dplb.test-eventlog", "warning")
    assert lines[2]["message"] == "refused version 5: services[0].port: bad"
