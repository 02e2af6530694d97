"""Writes from another site are refused: a write whose Origin header names another host
than the request's own is 403 and changes nothing; writes without Origin (dplb ctl,
curl) and from the node's own pages go through; reads are not affected."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api_helpers import ADMIN, API, Node
from dplb.api.origin import cross_origin

NEW = {"vip": "10.0.100.20", "port": 443, "reals": [{"address": "10.0.2.11", "port": 8443}]}


def versions(client: TestClient) -> list[int]:
    return [v["version"] for v in client.get(f"{API}/config/versions", headers=ADMIN).json()]


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://testserver.evil.example",
        "http://testserver:8080",  # same host, another port: another origin
        "null",  # a sandboxed frame or a file: page
        "testserver",  # not an origin at all
    ],
)
def test_a_write_from_another_origin_is_refused_and_changes_nothing(
    client: TestClient, node: Node, origin: str
) -> None:
    r = client.post(f"{API}/services", headers={**ADMIN, "Origin": origin}, json=NEW)
    assert r.status_code == 403
    [error] = r.json()["errors"]
    assert error["path"] == "header.origin"
    assert origin in error["reason"]
    assert versions(client) == [1]
    assert "10.0.100.20" not in {str(s.vip) for s in node.running().services}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_every_write_method_is_guarded(client: TestClient, method: str) -> None:
    r = client.request(
        method,
        f"{API}/services/10.0.100.10/80/tcp",
        headers={**ADMIN, "Origin": "http://evil.example"},
        json={"scheduler": "maglev"},
    )
    assert r.status_code == 403
    assert versions(client) == [1]


def test_a_write_from_the_nodes_own_pages_goes_through(client: TestClient) -> None:
    # The test client's Host is `testserver`; the web admin served by it has that origin.
    r = client.post(f"{API}/services", headers={**ADMIN, "Origin": "http://testserver"}, json=NEW)
    assert r.status_code == 201
    assert versions(client) == [2, 1]


def test_a_write_without_origin_goes_through(client: TestClient) -> None:
    r = client.post(f"{API}/services", headers=ADMIN, json=NEW)
    assert r.status_code == 201


def test_reads_from_another_origin_are_answered_but_not_shared(client: TestClient) -> None:
    r = client.get(f"{API}/services", headers={**ADMIN, "Origin": "http://evil.example"})
    assert r.status_code == 200
    # No CORS header: a page on another site never gets to read the answer.
    assert "access-control-allow-origin" not in r.headers


def test_the_refusal_comes_before_the_token_is_looked_at(client: TestClient) -> None:
    r = client.post(f"{API}/services", headers={"Origin": "http://evil.example"}, json=NEW)
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("origin", "host", "crossed"),
    [
        ("http://lb1:8080", "lb1:8080", False),
        ("https://LB1.example", "lb1.example", False),
        ("http://[::1]:8080", "[::1]:8080", False),
        ("http://lb1:8080", "lb1:8081", True),
        ("http://lb2:8080", "lb1:8080", True),
        ("null", "lb1:8080", True),
        ("ftp://lb1:8080", "lb1:8080", True),
        ("http://lb1:8080", "", True),
    ],
)
def test_cross_origin(origin: str, host: str, crossed: bool) -> None:
    assert cross_origin(origin, host) is crossed
