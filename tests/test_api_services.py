"""Services and reals through the API: create, read, update, delete; weight, quiesce and
enable; IPv6 VIPs in paths; and each change reaching the engine (new sessions go where
the new config says, established ones carry on)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api_helpers import ADMIN, API, Node
from conftest import VIP4, VIP6, TcpFlow, nonzero_drops

WEB = f"{API}/services/{VIP4}/80/tcp"
REAL1, REAL2 = "10.0.2.11", "10.0.2.12"


def new_service(**extra: Any) -> dict[str, Any]:
    return {
        "vip": "10.0.100.20",
        "port": 443,
        "protocol": "tcp",
        "scheduler": "rr",
        "reals": [{"address": REAL1, "port": 8443}],
        **extra,
    }


def engine_services(node: Node) -> dict[str, list[tuple[str, int, int]]]:
    """The services the engine runs: id -> [(real, port, weight)]."""
    out = {}
    for r in node.engine.stats()["reals"]:
        vip, port = r["vip"]
        sid = f"{vip}:{port}/{r['protocol']}"
        out.setdefault(sid, []).append((r["real"][0], r["real"][1], r["weight"]))
    return out


def test_list_services_names_each_by_vip_port_protocol(client: TestClient) -> None:
    r = client.get(f"{API}/services", headers=ADMIN)
    assert r.status_code == 200
    assert [s["id"] for s in r.json()] == [
        "10.0.100.10:80/tcp",
        "10.0.100.10:53/udp",
        "[2001:db8:100::10]:80/tcp",
    ]
    web = r.json()[0]
    assert web["scheduler"] == "rr"
    assert [(x["address"], x["port"], x["weight"], x["enabled"]) for x in web["reals"]] == [
        (REAL1, 8080, 100, True),
        (REAL2, 8080, 100, True),
    ]


def test_get_one_service_ipv4_and_ipv6(client: TestClient) -> None:
    assert client.get(WEB, headers=ADMIN).json()["id"] == "10.0.100.10:80/tcp"
    for path in (VIP6, f"[{VIP6}]", VIP6.replace(":", "%3A"), "2001:DB8:100:0::10"):
        r = client.get(f"{API}/services/{path}/80/tcp", headers=ADMIN)
        assert r.status_code == 200, path
        assert r.json()["id"] == "[2001:db8:100::10]:80/tcp"


def test_unknown_service_is_404(client: TestClient) -> None:
    r = client.get(f"{API}/services/{VIP4}/81/tcp", headers=ADMIN)
    assert r.status_code == 404
    assert r.json() == {"errors": [{"path": "service", "reason": "no service 10.0.100.10:81/tcp"}]}


def test_bad_path_parameters_are_422_with_their_field(client: TestClient) -> None:
    r = client.get(f"{API}/services/not-an-ip/80/tcp", headers=ADMIN)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"path": "path.vip", "reason": "'not-an-ip' is not an IP address"}
    ]
    r = client.get(f"{API}/services/{VIP4}/0/sctp", headers=ADMIN)
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {"path.port", "path.protocol"}


def test_create_service_applies_it_and_it_forwards(client: TestClient, node: Node) -> None:
    r = client.post(f"{API}/services", headers=ADMIN, json=new_service())
    assert r.status_code == 201
    body = r.json()
    assert (body["version"], body["status"]) == (2, "applied")
    assert body["service"]["id"] == "10.0.100.20:443/tcp"
    assert body["changes"][0]["path"] == "services[10.0.100.20:443/tcp]"
    assert body["changes"][0]["op"] == "added"
    assert engine_services(node)["10.0.100.20:443/tcp"] == [(REAL1, 8443, 100)]

    flow = TcpFlow(node.engine, 44000, vip="10.0.100.20", vip_port=443)
    flow.syn()
    assert (flow.real, flow.real_port) == (REAL1, 8443)
    assert client.get(f"{API}/services/10.0.100.20/443/tcp", headers=ADMIN).status_code == 200


def test_create_an_existing_service_is_409(client: TestClient) -> None:
    r = client.post(
        f"{API}/services", headers=ADMIN, json={"vip": VIP4, "port": 80, "protocol": "tcp"}
    )
    assert r.status_code == 409
    assert r.json()["errors"] == [{"path": "body", "reason": "service 10.0.100.10:80/tcp exists"}]


def test_invalid_service_body_names_each_field(client: TestClient) -> None:
    r = client.post(
        f"{API}/services",
        headers=ADMIN,
        json=new_service(port=0, scheduler="random", reals=[{"address": "10.0.2", "port": 1}]),
    )
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {
        "body.port",
        "body.scheduler",
        "body.reals[0].address",
    }


def test_a_service_that_breaks_a_cross_check_is_refused_with_the_config_path(
    client: TestClient, node: Node
) -> None:
    bad = new_service(nic="port7", reals=[{"address": "2001:db8:2::11", "port": 80}])
    r = client.post(f"{API}/services", headers=ADMIN, json=bad)
    assert r.status_code == 422
    errors = {e["path"]: e["reason"] for e in r.json()["errors"]}
    assert "no port named 'port7'" in errors["services[3].nic"]
    assert "IPv6 real behind an IPv4 VIP" in errors["services[3].reals[0].address"]
    assert "10.0.100.20:443/tcp" not in engine_services(node)
    assert client.get(f"{API}/config/versions", headers=ADMIN).json()[0]["version"] == 1


def test_patch_service_changes_only_what_is_given(client: TestClient, node: Node) -> None:
    r = client.patch(WEB, headers=ADMIN, json={"scheduler": "maglev"})
    assert r.status_code == 200
    body = r.json()
    assert body["service"]["scheduler"] == "maglev"
    assert len(body["service"]["reals"]) == 2
    assert body["changes"] == [
        {
            "path": "services[10.0.100.10:80/tcp].scheduler",
            "op": "changed",
            "old": "rr",
            "new": "maglev",
        }
    ]
    assert node.running().services[0].scheduler == "maglev"


def test_patch_with_unknown_field_is_422(client: TestClient) -> None:
    r = client.patch(WEB, headers=ADMIN, json={"colour": "blue"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "body.colour"


def test_put_replaces_the_service(client: TestClient, node: Node) -> None:
    body = {"vip": VIP4, "port": 80, "reals": [{"address": REAL2, "port": 9090}]}
    r = client.put(WEB, headers=ADMIN, json=body)
    assert r.status_code == 200
    assert r.json()["service"]["scheduler"] == "wlc"  # the default: replaced, not merged
    assert engine_services(node)["10.0.100.10:80/tcp"] == [(REAL2, 9090, 100)]


def test_put_creates_a_missing_service(client: TestClient) -> None:
    r = client.put(f"{API}/services/10.0.100.20/443/tcp", headers=ADMIN, json=new_service())
    assert r.status_code == 201


def test_put_naming_another_service_than_the_path_is_422(client: TestClient) -> None:
    r = client.put(WEB, headers=ADMIN, json=new_service())
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "body"


def test_delete_service_drains_it(client: TestClient, node: Node) -> None:
    old = TcpFlow(node.engine, 44100)
    old.handshake()
    r = client.delete(WEB, headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["service"]["id"] == "10.0.100.10:80/tcp"
    assert "10.0.100.10:80/tcp" not in engine_services(node)
    assert client.get(WEB, headers=ADMIN).status_code == 404

    # No new sessions...
    assert node.dataplane.process(bytes(TcpFlow(node.engine, 44101).from_client("S"))) == []
    # ...but the established one finishes.
    old.to_real(old.from_client("PA", seq=1001, ack=5001, payload=b"bye"))
    old.to_client(old.from_real("PA", seq=5001, ack=1004, payload=b"ok"))
    assert client.delete(WEB, headers=ADMIN).status_code == 404


def test_list_and_get_reals(client: TestClient) -> None:
    reals = client.get(f"{WEB}/reals", headers=ADMIN).json()
    assert [(r["id"], r["service"]) for r in reals] == [
        ("10.0.2.11:8080", "10.0.100.10:80/tcp"),
        ("10.0.2.12:8080", "10.0.100.10:80/tcp"),
    ]
    r = client.get(f"{WEB}/reals/{REAL2}/8080", headers=ADMIN)
    assert (r.status_code, r.json()["weight"]) == (200, 100)
    assert client.get(f"{WEB}/reals/{REAL2}/8081", headers=ADMIN).status_code == 404
    six = client.get(f"{API}/services/{VIP6}/80/tcp/reals/2001:db8:2::11/8080", headers=ADMIN)
    assert six.json()["id"] == "[2001:db8:2::11]:8080"


def test_add_real_and_a_duplicate_is_409(client: TestClient, node: Node) -> None:
    r = client.post(f"{WEB}/reals", headers=ADMIN, json={"address": "10.0.2.13", "port": 8080})
    assert r.status_code == 201
    assert r.json()["real"]["id"] == "10.0.2.13:8080"
    assert (
        "10.0.2.13",
        8080,
        100,
    ) in engine_services(node)["10.0.100.10:80/tcp"]
    again = client.post(f"{WEB}/reals", headers=ADMIN, json={"address": "10.0.2.13", "port": 8080})
    assert again.status_code == 409


def test_set_weight_and_a_bad_weight(client: TestClient, node: Node) -> None:
    r = client.patch(f"{WEB}/reals/{REAL1}/8080", headers=ADMIN, json={"weight": 30})
    assert r.status_code == 200
    assert r.json()["real"]["weight"] == 30
    assert engine_services(node)["10.0.100.10:80/tcp"][0] == (REAL1, 8080, 30)
    r = client.patch(f"{WEB}/reals/{REAL1}/8080", headers=ADMIN, json={"weight": 70000})
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "body.weight"


def test_quiesce_keeps_sessions_and_weight_then_enable_restores(
    client: TestClient, node: Node
) -> None:
    old = TcpFlow(node.engine, 44200)
    old.handshake()
    assert old.real == REAL1

    r = client.post(f"{WEB}/reals/{REAL1}/8080/quiesce", headers=ADMIN)
    assert r.status_code == 200
    assert (r.json()["real"]["enabled"], r.json()["real"]["weight"]) == (False, 100)
    assert engine_services(node)["10.0.100.10:80/tcp"][0] == (REAL1, 8080, 0)

    for cport in range(44201, 44205):
        flow = TcpFlow(node.engine, cport)
        flow.syn()
        assert flow.real == REAL2
    old.to_real(old.from_client("PA", seq=1001, ack=5001, payload=b"still here"))
    assert nonzero_drops(node.engine) == {}

    r = client.post(f"{WEB}/reals/{REAL1}/8080/enable", headers=ADMIN)
    assert r.json()["real"]["enabled"] is True
    assert engine_services(node)["10.0.100.10:80/tcp"][0] == (REAL1, 8080, 100)


def test_quiesce_twice_is_unchanged(client: TestClient) -> None:
    first = client.post(f"{WEB}/reals/{REAL1}/8080/quiesce", headers=ADMIN).json()
    second = client.post(f"{WEB}/reals/{REAL1}/8080/quiesce", headers=ADMIN).json()
    assert (second["status"], second["version"]) == ("unchanged", first["version"])


def test_delete_real_quiesces_it(client: TestClient, node: Node) -> None:
    old = TcpFlow(node.engine, 44300)
    old.handshake()
    r = client.delete(f"{WEB}/reals/{REAL1}/8080", headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["real"]["id"] == "10.0.2.11:8080"
    assert engine_services(node)["10.0.100.10:80/tcp"] == [(REAL2, 8080, 100)]
    flow = TcpFlow(node.engine, 44301)
    flow.syn()
    assert flow.real == REAL2
    old.to_real(old.from_client("PA", seq=1001, ack=5001, payload=b"x"))
    assert client.delete(f"{WEB}/reals/{REAL1}/8080", headers=ADMIN).status_code == 404


def test_reals_of_an_unknown_service_are_404(client: TestClient) -> None:
    r = client.post(
        f"{API}/services/{VIP4}/81/tcp/reals",
        headers=ADMIN,
        json={"address": REAL1, "port": 1},
    )
    assert r.status_code == 404


def test_a_refused_change_leaves_no_trace_but_the_audit_line(
    client: TestClient, node: Node
) -> None:
    # The config model once took scoped IPv6 addresses, the engine did not: the change
    # was stored, and every later one was refused with the same error.
    r = client.post(f"{API}/services", headers=ADMIN, json=new_service(vip="fe80::1%eth0"))
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["body.vip"]
    assert "has a zone" in r.json()["errors"][0]["reason"]
    r = client.post(f"{API}/services", headers=ADMIN, json=new_service(vip="0.0.0.0"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "body.vip"
    versions = client.get(f"{API}/config/versions", headers=ADMIN).json()
    assert [v["version"] for v in versions] == [1]
    r = client.post(f"{API}/services", headers=ADMIN, json=new_service())
    assert (r.status_code, r.json()["version"], r.json()["status"]) == (201, 2, "applied")
    assert "10.0.100.20:443/tcp" in engine_services(node)
    status = client.get(f"{API}/config/status", headers=ADMIN).json()
    assert (status["applied_version"], status["last_result"]) == (2, "applied")
