"""Node status, local addresses and counters through the API, checked against traffic
sent through the harness engine behind it; and the API's error bodies: field paths,
JSON for unknown routes, never a stack trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api_helpers import ADMIN, API, VIEWER, Node, api_client
from conftest import VIP4, TcpFlow
from dplb.dataplane import EngineStats


def test_node_status(client: TestClient) -> None:
    n = client.get(f"{API}/node", headers=VIEWER).json()
    assert (n["name"], n["cluster"], n["software_version"]) == ("harness", "test", "0.1.0")
    dp = n["dataplane"]
    assert (dp["kind"], dp["workers"], dp["steering"]) == ("harness", 1, "harness")
    assert dp["uptime_seconds"] >= 0
    assert [(p["name"], p["device"], p["mac"]) for p in dp["ports"]] == [
        ("port0", "net_null0", "02:00:00:00:00:01"),
        ("port1", "net_null1", "02:00:00:00:00:02"),
    ]
    assert dp["ports"][1]["addresses"] == ["10.0.2.1/24", "2001:db8:2::1/64"]
    assert n["config"]["desired_version"] == n["config"]["applied_version"] == 1


def test_local_addresses_per_worker_with_ports_in_use(tmp_path: Path) -> None:
    node = Node(tmp_path, workers=2)
    with api_client(node) as client:
        TcpFlow(node.engine, 48000).handshake()
        laddrs = client.get(f"{API}/local-addresses", headers=VIEWER).json()
    assert [(a["address"], a["port"], a["worker"]) for a in laddrs] == [
        ("10.0.2.101", "port1", 0),
        ("2001:db8:2::101", "port1", 0),
        ("10.0.2.102", "port1", 1),
        ("2001:db8:2::102", "port1", 1),
    ]
    assert sum(a["ports_in_use"] for a in laddrs) == 1
    assert sum(a["ports_busiest_real"] for a in laddrs) == 1
    assert {a["ports_resting"] for a in laddrs} == {0}
    assert {a["ports_per_real"] for a in laddrs} == {65535 - 1024 + 1}


def test_stats_follow_the_traffic(tmp_path: Path) -> None:
    node = Node(tmp_path, workers=2)
    with api_client(node) as client:
        flows = [TcpFlow(node.engine, p) for p in range(48100, 48104)]
        for f in flows:
            f.handshake()  # 2 frames from the client, 1 from the real
        stats = client.get(f"{API}/stats", headers=VIEWER).json()
        assert (stats["workers"], stats["sessions"]) == (2, 4)
        assert stats["session_capacity"] == 2 * 1024
        assert stats["counters"]["rx_packets"] == 12
        assert stats["counters"]["sessions_created"] == 4
        assert stats["drops"]["no_session"] == 0

        cores = client.get(f"{API}/stats/cores", headers=VIEWER).json()
        assert [c["worker"] for c in cores] == [0, 1]
        assert sum(c["sessions"] for c in cores) == 4
        assert sum(c["rx_packets"] for c in cores) == 12

        services = {s["id"]: s for s in client.get(f"{API}/stats/services", headers=VIEWER).json()}
        web = services["10.0.100.10:80/tcp"]
        assert (web["reals"], web["connections"], web["active"], web["packets_in"]) == (2, 4, 4, 8)
        assert services["10.0.100.10:53/udp"]["connections"] == 0

        reals = client.get(f"{API}/stats/reals", headers=VIEWER).json()
        by_real = {(r["vip"], r["port"], r["address"]): r for r in reals}
        assert by_real[(VIP4, 80, "10.0.2.11")]["connections"] == 2
        assert by_real[(VIP4, 80, "10.0.2.12")]["packets_out"] == 2


# -- errors ---------------------------------------------------------------------------


class BrokenDataplane:
    """A dataplane whose counters fail, as a bug would."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def stats(self) -> EngineStats:
        raise RuntimeError("secret detail: /etc/dplb/node.yaml line 42")


def test_an_unexpected_failure_is_a_bare_500(tmp_path: Path) -> None:
    node = Node(tmp_path)
    from dplb.api import create_app

    app = create_app(node.config, BrokenDataplane(node.dataplane), node.store)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get(f"{API}/stats", headers=ADMIN)
    assert r.status_code == 500
    assert r.json() == {"error": "internal error"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    r = client.get(f"{API}/nothing-here", headers=ADMIN)
    assert (r.status_code, r.json()) == (
        404,
        {"errors": [{"path": "(request)", "reason": f"the API has no {API}/nothing-here"}]},
    )
    r = client.put(f"{API}/stats", headers=ADMIN)
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, OPTIONS"
    assert r.json()["errors"][0]["reason"] == (
        "PUT is not one of the methods of this path (GET, OPTIONS)"
    )


def test_options_on_an_api_path_names_its_methods(client: TestClient) -> None:
    # Once answered by the web admin's mount: 405 "GET, HEAD" for every API path.
    r = client.options(f"{API}/services/{VIP4}/80/tcp")
    assert (r.status_code, r.headers["allow"]) == (204, "DELETE, GET, OPTIONS, PATCH, PUT")
    r = client.options(f"{API}/services")
    assert (r.status_code, r.headers["allow"]) == (204, "GET, OPTIONS, POST")
    r = client.options(f"{API}/nothing-here")
    assert r.status_code == 404


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    r = client.post(
        f"{API}/services",
        headers={**ADMIN, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"].startswith("body")


def test_openapi_document_is_served_with_stable_operation_ids(client: TestClient) -> None:
    doc = client.get(f"{API}/openapi.json").json()
    ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {
        "list_services",
        "create_service",
        "get_service",
        "replace_service",
        "update_service",
        "delete_service",
        "list_reals",
        "create_real",
        "get_real",
        "update_real",
        "quiesce_real",
        "enable_real",
        "delete_real",
        "list_sessions",
        "reset_session",
        "get_node_stats",
        "list_core_stats",
        "list_service_stats",
        "list_real_stats",
        "get_node_status",
        "list_local_addresses",
        "get_health",
        "get_caller",
        "get_config",
        "replace_config",
        "get_config_status",
        "list_config_versions",
        "get_config_version",
        "diff_config_versions",
        "rollback_config",
        "list_audit_entries",
        "get_cluster",
        "wait_cluster_applied",
        "get_health_checks",
        "get_bgp_status",
        "drain_node",
        "undrain_node",
        "get_sync_status",
    } == ids
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    error = doc["paths"]["/api/v1/services"]["post"]["responses"]["422"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_sync_status_says_off_on_a_node_without_session_sync(client: TestClient) -> None:
    r = client.get(f"{API}/sync", headers=VIEWER)
    assert r.status_code == 200
    body = r.json()
    assert body["enabled"] is False and body["ready"] is True and body["peers"] == []
