"""Config versions through the API: the desired config (tokens redacted) and replacing it
whole, optimistic concurrency, the history, the diff of two versions, rollback, what the
node did with each version, and a hand edit of the store's file picked up on its own."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api_helpers import ADMIN, ADMIN_TOKEN, API, VIEWER, Node, wait_for
from conftest import VIP4

WEB = f"{API}/services/{VIP4}/80/tcp"


def edit_by_hand(path: Path, old: str, new: str) -> None:
    """Edits the store's file the way editors that rename do (vim, sed -i): a reader
    sees the old file or the new one."""
    tmp = path.with_name(path.name + ".edit")
    tmp.write_text(path.read_text().replace(old, new, 1))
    os.replace(tmp, path)


def desired(client: TestClient) -> dict[str, Any]:
    config: dict[str, Any] = client.get(f"{API}/config", headers=VIEWER).json()["config"]
    return config


def weights(node: Node) -> list[int]:
    return [r.weight for r in node.running().services[0].reals]


def test_get_config_is_the_seeded_node_config_with_tokens_redacted(client: TestClient) -> None:
    r = client.get(f"{API}/config", headers=VIEWER)
    assert r.status_code == 200
    doc = r.json()
    assert (doc["info"]["version"], doc["info"]["author"]) == (1, "node")
    assert doc["info"]["message"] == "seeded from the node config"
    assert [t["token"] for t in doc["config"]["api"]["tokens"]] == ["*** redacted ***"] * 2
    assert doc["config"]["services"][0]["vip"] == VIP4


def test_put_config_round_trip_keeps_tokens_and_applies(client: TestClient, node: Node) -> None:
    config = desired(client)
    config["services"][0]["reals"][0]["weight"] = 5
    r = client.put(f"{API}/config", headers=ADMIN, json=config)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["status"]) == (2, "applied")
    assert weights(node) == [5, 100]
    # The redacted token came back as the running one: the admin token still works.
    assert node.running().api.tokens[0].token == ADMIN_TOKEN
    assert client.get(f"{API}/services", headers=ADMIN).status_code == 200


def test_put_config_with_a_stale_expected_version_is_409(client: TestClient) -> None:
    config = desired(client)
    assert (
        client.put(f"{API}/config?expected_version=1", headers=ADMIN, json=config).json()["status"]
        == "unchanged"
    )
    client.patch(WEB, headers=ADMIN, json={"scheduler": "wrr"})  # version 2
    r = client.put(f"{API}/config?expected_version=1", headers=ADMIN, json=config)
    assert r.status_code == 409
    assert r.json()["errors"] == [
        {"path": "query.expected_version", "reason": "the current version is 2, not 1"}
    ]
    assert r.json()["version"] == 2


def test_put_config_changing_the_dataplane_is_refused_naming_it(
    client: TestClient, node: Node
) -> None:
    config = desired(client)
    config["dataplane"]["workers"] = 4
    config["dataplane"]["ports"][1]["local_addresses"] = [
        [f"10.0.2.{101 + w}", f"2001:db8:2::{101 + w}"] for w in range(4)
    ]
    r = client.put(f"{API}/config", headers=ADMIN, json=config)
    assert r.status_code == 422
    errors = {e["path"]: e["reason"] for e in r.json()["errors"]}
    assert "cannot change on a running node" in errors["dataplane.workers"]
    assert node.running().dataplane.workers == 1
    assert client.get(f"{API}/config/versions", headers=VIEWER).json()[0]["version"] == 1


def test_put_config_with_every_error_at_once(client: TestClient) -> None:
    config = desired(client)
    config["services"][0]["port"] = 0
    config["services"][1]["scheduler"] = "fastest"
    config["node"]["colour"] = "blue"
    r = client.put(f"{API}/config", headers=ADMIN, json=config)
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {
        "body.services[0].port",
        "body.services[1].scheduler",
        "body.node.colour",
    }


def test_versions_show_and_diff(client: TestClient) -> None:
    client.patch(f"{WEB}/reals/10.0.2.11/8080", headers=ADMIN, json={"weight": 10})
    client.delete(f"{API}/services/{VIP4}/53/udp", headers=ADMIN)
    versions = client.get(f"{API}/config/versions", headers=VIEWER).json()
    assert [(v["version"], v["author"]) for v in versions] == [(3, "ops"), (2, "ops"), (1, "node")]
    assert versions[0]["message"] == "delete service 10.0.100.10:53/udp"
    assert client.get(f"{API}/config/versions?limit=1", headers=VIEWER).json() == versions[:1]

    v2 = client.get(f"{API}/config/versions/2", headers=VIEWER).json()
    assert v2["config"]["services"][0]["reals"][0]["weight"] == 10
    assert len(v2["config"]["services"]) == 3

    diff = client.get(f"{API}/config/diff?from_version=1&to_version=3", headers=VIEWER).json()
    assert diff["changes"] == [
        {
            "path": "services[10.0.100.10:80/tcp].reals[10.0.2.11:8080].weight",
            "op": "changed",
            "old": 100,
            "new": 10,
        },
        {
            "path": "services[10.0.100.10:53/udp]",
            "op": "removed",
            "old": diff["changes"][1]["old"],
            "new": None,
        },
    ]
    assert "--- version 1" in diff["text"] and "+++ version 3" in diff["text"]
    assert "-  port: 53" in diff["text"]
    # Default target: the current version.
    assert client.get(f"{API}/config/diff?from_version=2", headers=VIEWER).json()["to_version"] == 3


def test_unknown_versions_are_404(client: TestClient) -> None:
    assert client.get(f"{API}/config/versions/9", headers=VIEWER).status_code == 404
    r = client.get(f"{API}/config/diff?from_version=9", headers=VIEWER)
    assert r.status_code == 404
    assert r.json()["errors"][0]["path"] == "query.from_version"
    r = client.post(f"{API}/config/rollback", headers=ADMIN, json={"version": 9})
    assert (r.status_code, r.json()["errors"][0]["path"]) == (404, "body.version")


def test_rollback_writes_the_old_version_again_and_applies_it(
    client: TestClient, node: Node
) -> None:
    client.patch(f"{WEB}/reals/10.0.2.11/8080", headers=ADMIN, json={"weight": 10})
    client.post(f"{WEB}/reals/10.0.2.12/8080/quiesce", headers=ADMIN)
    assert weights(node) == [10, 100]
    assert [r.enabled for r in node.running().services[0].reals] == [True, False]

    r = client.post(f"{API}/config/rollback", headers=ADMIN, json={"version": 1})
    assert r.status_code == 200
    assert (r.json()["version"], r.json()["status"]) == (4, "applied")
    assert [c["path"] for c in r.json()["changes"]] == [
        "services[10.0.100.10:80/tcp].reals[10.0.2.11:8080].weight",
        "services[10.0.100.10:80/tcp].reals[10.0.2.12:8080].enabled",
    ]
    assert weights(node) == [100, 100]
    assert [r.enabled for r in node.running().services[0].reals] == [True, True]
    latest = client.get(f"{API}/config/versions", headers=VIEWER).json()[0]
    assert (latest["version"], latest["message"]) == (4, "roll back to version 1")


def test_config_status_says_what_runs(client: TestClient) -> None:
    client.patch(WEB, headers=ADMIN, json={"scheduler": "wrr"})
    status = client.get(f"{API}/config/status", headers=VIEWER).json()
    assert status["node"] == "harness"
    assert (status["desired_version"], status["applied_version"], status["last_result"]) == (
        2,
        2,
        "applied",
    )
    assert status["errors"] == []


def test_a_hand_edit_of_the_store_file_is_applied(client: TestClient, node: Node) -> None:
    edit_by_hand(node.store.path, "scheduler: rr", "scheduler: wlc")
    wait_for(lambda: node.running().services[0].scheduler == "wlc", what="the hand edit")
    status = client.get(f"{API}/config/status", headers=VIEWER).json()
    assert (status["applied_version"], status["last_result"]) == (2, "applied")
    assert client.get(f"{API}/config/versions", headers=VIEWER).json()[0]["author"] == "file"


def test_a_bad_hand_edit_is_refused_reported_and_then_fixed_through_the_api(
    client: TestClient, node: Node
) -> None:
    edit_by_hand(node.store.path, "port: 8080", "port: 80800")
    status = wait_for(
        lambda: (
            (s := client.get(f"{API}/config/status", headers=VIEWER).json())["last_result"]
            == "refused"
            and s
        ),
        what="the refusal",
    )
    assert status["applied_version"] == 1
    assert status["last_version"] == 2
    assert status["errors"][0]["path"] == "services[0].reals[0].port"
    assert weights(node) == [100, 100]

    # Editing through the API now says why it cannot build on the bad version...
    r = client.patch(WEB, headers=ADMIN, json={"scheduler": "wrr"})
    assert r.status_code == 409
    assert "version 2" in r.json()["errors"][0]["reason"]
    # ...and a rollback fixes it.
    r = client.post(f"{API}/config/rollback", headers=ADMIN, json={"version": 1})
    assert (r.status_code, r.json()["version"], r.json()["status"]) == (200, 3, "applied")
    node_status = client.get(f"{API}/node", headers=VIEWER).json()["config"]
    # Version 3 is version 1 again, which never stopped running: nothing to change.
    assert (node_status["applied_version"], node_status["last_result"]) == (3, "unchanged")
    assert node_status["errors"] == []


def test_concurrent_writers_both_land(client: TestClient, node: Node) -> None:
    """Another writer (a second store on the same file) slips in between: the API reads
    again and writes on top, losing neither change."""
    import asyncio

    from dplb.store import FileStore

    other = FileStore(node.store.path)
    current = asyncio.run(other.read())
    data = copy.deepcopy(current.data)
    data["services"][0]["scheduler"] = "wrr"
    asyncio.run(other.write(data, author="other", expected_version=current.version))
    r = client.patch(f"{WEB}/reals/10.0.2.11/8080", headers=ADMIN, json={"weight": 1})
    assert r.status_code == 200
    svc = node.running().services[0]
    assert (svc.scheduler, svc.reals[0].weight) == ("wrr", 1)


def test_rollback_restores_services_never_tokens(client: TestClient, node: Node) -> None:
    # Once the old version's api.tokens came back with it: revoked tokens worked again.
    config = desired(client)
    config["api"]["tokens"] = [t for t in config["api"]["tokens"] if t["name"] != "dashboard"]
    config["api"]["tokens"].append(
        {"name": "new-admin", "token": "new-admin-token-0123456789", "role": "admin"}
    )
    config["services"][0]["scheduler"] = "wrr"
    assert client.put(f"{API}/config", headers=ADMIN, json=config).status_code == 200
    assert client.get(f"{API}/whoami", headers=VIEWER).status_code == 401

    r = client.post(f"{API}/config/rollback", headers=ADMIN, json={"version": 1})
    assert (r.status_code, r.json()["version"], r.json()["status"]) == (200, 3, "applied")
    assert node.running().services[0].scheduler == "rr"
    assert client.get(f"{API}/whoami", headers=VIEWER).status_code == 401
    new_admin = {"Authorization": "Bearer new-admin-token-0123456789"}
    assert client.get(f"{API}/whoami", headers=new_admin).json()["name"] == "new-admin"
    tokens = client.get(f"{API}/config", headers=ADMIN).json()["config"]["api"]["tokens"]
    assert [t["name"] for t in tokens] == ["ops", "new-admin"]
