"""`dplb ctl` against a running node API (uvicorn on 127.0.0.1, a free port), run as a
separate process the way an operator or a script runs it: tables, --json, the token
from the environment or an option, and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_helpers import ADMIN_TOKEN, VIEWER_TOKEN, Node, free_port, running_server
from conftest import CLIENT4, VIP4, TcpFlow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    node = Node(tmp_path_factory.mktemp("ctl"))
    with running_server(node) as url:
        yield node, url


def ctl(
    url: str, *args: str, token: str | None = ADMIN_TOKEN, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DPLB_")}
    environment["DPLB_URL"] = url
    if token is not None:
        environment["DPLB_TOKEN"] = token
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dplb.cli", "ctl", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def ok(url: str, *args: str, **kw: Any) -> str:
    result = ctl(url, *args, **kw)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_services_list_is_a_table(server: tuple[Node, str]) -> None:
    _, url = server
    out = ok(url, "services", "list").splitlines()
    assert out[0].split() == ["SERVICE", "SCHEDULER", "CLIENT-ADDRESS", "NIC", "REALS-UP"]
    assert out[1].split() == ["10.0.100.10:80/tcp", "rr", "none", "-", "2/2"]
    assert out[3].split()[0] == "[2001:db8:100::10]:80/tcp"


def test_json_is_the_api_json(server: tuple[Node, str]) -> None:
    _, url = server
    data = json.loads(ok(url, "--json", "services", "show", f"{VIP4}:80/tcp"))
    assert data["id"] == "10.0.100.10:80/tcp"
    assert [r["address"] for r in data["reals"]] == ["10.0.2.11", "10.0.2.12"]


def test_add_quiesce_enable_and_delete_a_service(server: tuple[Node, str]) -> None:
    node, url = server
    out = ok(
        url, "services", "add", "10.0.100.50:443", "--scheduler", "maglev",
        "--real", "10.0.2.11:8443", "--real", "10.0.2.12:8443@50",
    )  # fmt: skip
    assert out.startswith("applied: version")
    assert "added services[10.0.100.50:443/tcp]" in out
    svc = node.running().services[-1]
    assert (svc.scheduler, [r.weight for r in svc.reals]) == ("maglev", [100, 50])

    out = ok(url, "reals", "quiesce", "10.0.100.50:443/tcp", "10.0.2.11:8443")
    assert "reals[10.0.2.11:8443].enabled: True -> False" in out
    table = ok(url, "reals", "list", "10.0.100.50:443").splitlines()
    # The API's tests run no health checker: health unknown, no check, no change.
    assert table[1].split() == ["10.0.2.11:8443", "100", "no", "quiesced", "unknown", "-", "-"]
    ok(url, "reals", "enable", "10.0.100.50:443", "10.0.2.11:8443")
    ok(url, "reals", "set", "10.0.100.50:443", "10.0.2.11:8443", "--weight", "7")
    assert node.running().services[-1].reals[0].weight == 7
    ok(url, "services", "delete", "10.0.100.50:443/tcp")
    assert [str(s.vip) for s in node.running().services].count("10.0.100.50") == 0


def test_a_refused_change_exits_1_with_every_error(server: tuple[Node, str]) -> None:
    _, url = server
    result = ctl(
        url, "services", "add", "10.0.100.51:80", "--nic", "port9", "--real", "10.0.2.11:0"
    )
    assert result.returncode == 1
    assert "refused (HTTP 422)" in result.stderr
    assert "body.reals[0].port" in result.stderr
    result = ctl(url, "services", "add", "10.0.100.51:80", "--nic", "port9")
    assert result.returncode == 1
    assert "services[3].nic: no port named 'port9'" in result.stderr


def test_no_such_service_exits_1(server: tuple[Node, str]) -> None:
    _, url = server
    result = ctl(url, "services", "show", f"{VIP4}:81/tcp")
    assert result.returncode == 1
    assert "no service 10.0.100.10:81/tcp" in result.stderr


def test_auth_failures_exit_3(server: tuple[Node, str], tmp_path: Path) -> None:
    _, url = server
    assert ctl(url, "services", "list", token=None).returncode == 3
    assert ctl(url, "services", "list", token="wrong-token-0123456789").returncode == 3
    viewer = ctl(url, "services", "delete", f"{VIP4}:80", token=VIEWER_TOKEN)
    assert viewer.returncode == 3
    assert "admin is needed" in viewer.stderr
    # --token-file and --token work without the environment.
    token_file = tmp_path / "token"
    token_file.write_text(VIEWER_TOKEN + "\n")
    assert ctl(url, "--token-file", str(token_file), "node", token=None).returncode == 0
    assert ctl(url, "--token", VIEWER_TOKEN, "node", token=None).returncode == 0


def test_an_unreachable_node_exits_4(server: tuple[Node, str]) -> None:
    result = ctl(f"http://127.0.0.1:{free_port()}", "node")
    assert result.returncode == 4
    assert "cannot reach" in result.stderr


def test_bad_usage_exits_2(server: tuple[Node, str]) -> None:
    _, url = server
    assert ctl(url, "services", "show", "not-a-service").returncode == 2
    assert ctl(url, "frobnicate").returncode == 2


def test_sessions_list_and_reset(server: tuple[Node, str]) -> None:
    node, url = server
    flow = TcpFlow(node.engine, 51000)
    with node.dataplane.lock:
        flow.handshake()
    out = ok(url, "sessions", "list", "--client", CLIENT4).splitlines()
    assert out[0].split()[:3] == ["PROTO", "CLIENT", "VIP"]
    assert out[1].split()[:3] == ["tcp", f"{CLIENT4}:51000", f"{VIP4}:80"]
    assert out[-1] == "1 session"
    assert ok(url, "sessions", "reset", "tcp", f"{CLIENT4}:51000", f"{VIP4}:80").strip() == (
        "reset: 1 session removed"
    )
    assert ctl(url, "sessions", "reset", "tcp", f"{CLIENT4}:51000", f"{VIP4}:80").returncode == 1


def test_sessions_list_pages_with_the_cursor_it_prints(server: tuple[Node, str]) -> None:
    node, url = server
    with node.dataplane.lock:
        for cport in (51100, 51101, 51102):
            TcpFlow(node.engine, cport).handshake()
    first = ok(url, "sessions", "list", "--limit", "2").splitlines()
    assert len(first) == 1 + 2 + 1  # the header, two sessions, the footer
    footer, _, cursor = first[-1].rpartition(" ")
    assert footer == "2 sessions; more with --cursor"
    rest = ok(url, "sessions", "list", "--limit", "2", "--cursor", cursor).splitlines()
    assert rest[-1] == "1 session"
    ports = {line.split()[1] for line in first[1:-1] + rest[1:-1]}
    assert ports == {f"{CLIENT4}:{p}" for p in (51100, 51101, 51102)}


def test_node_stats_and_local_addresses(server: tuple[Node, str]) -> None:
    _, url = server
    out = ok(url, "node")
    assert "node      harness (cluster test)" in out
    assert "steering harness" in out
    assert "liveness  ok" in out
    assert "port1" in out
    assert "rx_packets" in ok(url, "stats")
    assert ok(url, "stats", "services").splitlines()[0].split()[:3] == [
        "SERVICE",
        "REALS",
        "CONNECTIONS",
    ]
    assert "10.0.2.101" in ok(url, "laddrs")


def test_config_versions_diff_rollback_and_apply(server: tuple[Node, str], tmp_path: Path) -> None:
    node, url = server
    ok(url, "reals", "set", f"{VIP4}:80", "10.0.2.12:8080", "--weight", "3")
    versions = json.loads(ok(url, "--json", "config", "versions"))
    latest = versions[0]["version"]
    diff = ok(url, "config", "diff", str(latest - 1), str(latest))
    assert "-    weight: 100" in diff or "+    weight: 3" in diff
    out = ok(url, "config", "rollback", str(latest - 1))
    assert out.startswith("applied: version")
    assert node.running().services[0].reals[1].weight == 100

    shown = ok(url, "config", "show")
    assert shown.startswith(f"# version {latest + 1}")
    assert "*** redacted ***" in shown and ADMIN_TOKEN not in shown
    # Edit the shown YAML and apply it back: the redacted tokens are kept.
    edited = tmp_path / "desired.yaml"
    edited.write_text(shown.replace("scheduler: rr", "scheduler: wrr", 1))
    result = ctl(url, "config", "apply", str(edited), "--expected-version", str(latest + 1))
    assert result.returncode == 0, result.stderr
    assert node.running().services[0].scheduler == "wrr"
    stale = ctl(url, "config", "apply", str(edited), "--expected-version", "1")
    assert stale.returncode == 1
    assert "the current version is" in stale.stderr
    status = ok(url, "config", "status")
    assert f"applied version {latest + 2}" in status
    assert "ops" in ok(url, "audit")


def test_sync_on_a_node_without_it_says_off(server: tuple[Node, str]) -> None:
    _, url = server
    assert ok(url, "sync").strip() == "sync      off (node config: sync.enabled)"
