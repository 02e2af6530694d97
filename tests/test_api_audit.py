"""The audit log: every change through the API is one JSON line with who (the token's
name), when, the request, the outcome, the version it made and what changed; refused and
forbidden attempts are recorded too; the log survives the node."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api_helpers import ADMIN, API, VIEWER, Node, api_client, api_config, harness_dataplane
from conftest import VIP4
from dplb.api import create_app
from dplb.config import parse_config

WEB = f"{API}/services/{VIP4}/80/tcp"


def lines(node: Node) -> list[dict[str, Any]]:
    return [json.loads(line) for line in node.audit_path.read_text().splitlines()]


def test_a_change_is_recorded_with_who_when_and_what(client: TestClient, node: Node) -> None:
    before = datetime.now(UTC)
    client.patch(f"{WEB}/reals/10.0.2.11/8080", headers=ADMIN, json={"weight": 42})
    (entry,) = lines(node)
    assert entry["who"] == "ops"
    assert entry["role"] == "admin"
    assert (entry["method"], entry["path"]) == ("PATCH", f"{WEB}/reals/10.0.2.11/8080")
    assert (entry["outcome"], entry["status"], entry["version"]) == ("applied", 200, 2)
    assert entry["message"] == "set weight=42 real 10.0.2.11:8080 of service 10.0.100.10:80/tcp"
    assert entry["changes"] == [
        {
            "path": "services[10.0.100.10:80/tcp].reals[10.0.2.11:8080].weight",
            "op": "changed",
            "old": 100,
            "new": 42,
        }
    ]
    when = datetime.fromisoformat(entry["time"])
    assert before - timedelta(seconds=1) <= when <= datetime.now(UTC)


def test_refused_and_forbidden_attempts_are_recorded(client: TestClient, node: Node) -> None:
    client.patch(f"{WEB}/reals/10.0.2.11/8080", headers=ADMIN, json={"weight": 42})
    client.post(
        f"{API}/services", headers=ADMIN, json={"vip": "10.0.100.40", "port": 1, "nic": "nope"}
    )
    client.delete(WEB, headers=VIEWER)
    client.delete(f"{API}/services/{VIP4}/99/tcp", headers=ADMIN)
    entries = lines(node)
    assert [(e["who"], e["outcome"], e["status"]) for e in entries] == [
        ("ops", "applied", 200),
        ("ops", "refused", 422),
        ("dashboard", "forbidden", 403),
        ("ops", "not_found", 404),
    ]
    assert entries[1]["errors"][0]["path"] == "services[3].nic"
    assert entries[1]["changes"] == []
    # The route shows the same, newest first.
    shown = client.get(f"{API}/audit?limit=2", headers=VIEWER).json()
    assert [e["outcome"] for e in shown] == ["not_found", "forbidden"]


def test_reads_and_unchanged_writes_are_not_changes(client: TestClient, node: Node) -> None:
    client.get(f"{API}/services", headers=ADMIN)
    client.post(f"{WEB}/reals/10.0.2.11/8080/enable", headers=ADMIN)  # already enabled
    assert not node.audit_path.exists() or lines(node) == []


def test_the_log_outlives_the_node(tmp_path: Path) -> None:
    node = Node(tmp_path)
    with api_client(node) as client:
        client.patch(WEB, headers=ADMIN, json={"scheduler": "wrr"})
    again = Node(tmp_path)
    with api_client(again) as client:
        client.patch(WEB, headers=ADMIN, json={"scheduler": "wlc"})
        shown = client.get(f"{API}/audit", headers=ADMIN).json()
    assert [e["version"] for e in shown] == [3, 2]


def test_every_refused_attempt_is_a_line_with_the_status_the_client_got(
    client: TestClient, node: Node
) -> None:
    # A body the model refuses, a body that is not JSON, a path naming another service:
    # each once answered 422 without an audit line; a create said 200 where it was 201.
    answers = [
        client.post(f"{API}/services", headers=ADMIN, json={"vip": "10.0.100.40", "port": 0}),
        client.post(
            f"{API}/services",
            headers={**ADMIN, "Content-Type": "application/json"},
            content=b"{not json",
        ),
        client.put(
            f"{API}/services/10.0.100.41/80/tcp",
            headers=ADMIN,
            json={"vip": "10.0.100.42", "port": 80},
        ),
        client.post(f"{API}/services", headers=ADMIN, json={"vip": "10.0.100.43", "port": 80}),
        client.put(
            f"{API}/services/10.0.100.44/80/tcp",
            headers=ADMIN,
            json={"vip": "10.0.100.44", "port": 80},
        ),
    ]
    assert [r.status_code for r in answers] == [422, 422, 422, 201, 201]
    entries = lines(node)
    assert [(e["method"], e["outcome"], e["status"]) for e in entries] == [
        ("POST", "refused", 422),
        ("POST", "refused", 422),
        ("PUT", "refused", 422),
        ("POST", "applied", 201),
        ("PUT", "applied", 201),
    ]
    assert entries[0]["errors"][0]["path"] == "body.port"
    assert entries[1]["errors"][0]["path"].startswith("body")
    assert "names another service" in entries[2]["errors"][0]["reason"]
    assert [e["version"] for e in entries[3:]] == [2, 3]


def test_history_and_audit_log_are_bounded_by_the_node_config(tmp_path: Path) -> None:
    # Both once grew without bound: a version file pair and an audit line per change.
    cfg = api_config(tmp_path)
    cfg["store"]["keep_versions"] = 3
    cfg["api"]["audit_log_max_bytes"] = 4096
    cfg["api"]["audit_log_keep"] = 2
    config = parse_config(cfg)
    app = create_app(config, harness_dataplane(config))  # the store and log it says
    with TestClient(app) as client:
        for weight in range(1, 61):
            r = client.patch(f"{WEB}/reals/10.0.2.11/8080", headers=ADMIN, json={"weight": weight})
            assert r.status_code == 200
        versions = client.get(f"{API}/config/versions", headers=ADMIN).json()
        shown = client.get(f"{API}/audit?limit=1000", headers=ADMIN).json()
    assert [v["version"] for v in versions] == [61, 60, 59]
    history = tmp_path / "store" / "history"
    assert sorted(p.name for p in history.iterdir()) == [
        f"{v}.{ext}" for v in (59, 60, 61) for ext in ("json", "yaml")
    ]
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("audit"))
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all((tmp_path / f).stat().st_size <= 4096 for f in files)
    # The newest entries, newest first, across the rotated files; the oldest are gone.
    versions_shown = [e["version"] for e in shown]
    assert versions_shown == list(range(61, 61 - len(versions_shown), -1))
    assert 10 < len(versions_shown) < 60
