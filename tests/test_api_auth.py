"""Authentication and roles on every route of the OpenAPI document: no token or a wrong
one is 401, a viewer token on a write is 403 and changes nothing, a viewer reads; tokens
never appear in the audit log, the node's log, or a config the API returns."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_helpers import ADMIN, ADMIN_TOKEN, API, VIEWER, VIEWER_TOKEN, Node, api_client
from conftest import VIP4

# A real value for each path parameter, so that a request with the right token succeeds.
PARAMS = {
    "{vip}": VIP4,
    "{port}": "80",
    "{protocol}": "tcp",
    "{address}": "10.0.2.11",
    "{real_port}": "8080",
    "{client}": "198.51.100.7",
    "{client_port}": "40000",
    "{vip_port}": "80",
    "{version}": "1",
}
UNAUTHENTICATED = {("GET", f"{API}/health")}


def routes(
    params: dict[str, str] = PARAMS, only_with_params: bool = False
) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        document = Node(Path(tmp)).app.openapi()
    out = []
    for path, methods in document["paths"].items():
        if only_with_params and "{" not in path:
            continue
        for method in methods:
            concrete = path
            for name, value in params.items():
                concrete = concrete.replace(name, value)
            assert "{" not in concrete, f"no test value for a parameter of {path}"
            out.append((method.upper(), concrete))
    return sorted(out)


ROUTES = routes()
WRITES = [(m, p) for m, p in ROUTES if m != "GET"]
READS = [(m, p) for m, p in ROUTES if m == "GET" and (m, p) not in UNAUTHENTICATED]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One node for the whole module: what these tests send is refused or only reads."""
    with api_client(Node(tmp_path_factory.mktemp("auth"))) as client:
        yield client


# Every address (and version) in a path given a value it refuses: the token first.
BAD_PARAMS = {**PARAMS, "{vip}": "nope", "{address}": "nope", "{client}": "nope", "{version}": "x"}
BAD_PATHS = routes(BAD_PARAMS, only_with_params=True)


def test_every_route_is_covered() -> None:
    assert len(ROUTES) == 38  # + /health-checks, /cluster, /cluster/wait, bgp (3), /sync
    assert {m for m, _ in WRITES} == {"POST", "PUT", "PATCH", "DELETE"}


def query_of(path: str) -> str:
    if path.endswith("/config/diff"):
        return "?from_version=1"
    if path.endswith("/cluster/wait"):
        return "?version=1&timeout=1"
    return ""


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r not in UNAUTHENTICATED])
def test_no_token_is_401(shared: TestClient, method: str, path: str) -> None:
    client = shared
    r = client.request(method, path + query_of(path))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {
        "errors": [
            {"path": "(auth)", "reason": "a bearer token is needed (Authorization: Bearer TOKEN)"}
        ]
    }


@pytest.mark.parametrize(("method", "path"), BAD_PATHS)
def test_the_token_is_checked_before_the_path_and_the_body(
    shared: TestClient, method: str, path: str
) -> None:
    # Once 422 "not an IP address" to a caller without a token, on 11 routes.
    r = shared.request(method, path, content=b"\xff{", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["errors"][0]["path"]) == (401, "(auth)")
    if method != "GET":
        r = shared.request(method, path, headers=VIEWER)
        assert (r.status_code, r.json()["errors"][0]["path"]) == (403, "(auth)")


def test_bad_paths_cover_the_routes_with_parameters() -> None:
    assert len(BAD_PATHS) == 13


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r not in UNAUTHENTICATED])
def test_wrong_token_is_401(shared: TestClient, method: str, path: str) -> None:
    client = shared
    r = client.request(method, path, headers={"Authorization": "Bearer " + "x" * 28})
    assert r.status_code == 401
    assert r.json()["errors"][0]["reason"] == "the token is not valid"


def test_a_token_prefix_or_another_scheme_is_401(client: TestClient) -> None:
    for header in (f"Bearer {ADMIN_TOKEN[:-1]}", f"Bearer {ADMIN_TOKEN}x", f"Basic {ADMIN_TOKEN}"):
        r = client.get(f"{API}/services", headers={"Authorization": header})
        assert r.status_code == 401, header


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_viewer_cannot_write(shared: TestClient, method: str, path: str) -> None:
    client = shared
    before = client.get(f"{API}/config/versions", headers=VIEWER).json()
    r = client.request(method, path, headers=VIEWER, json={})
    assert r.status_code == 403
    assert r.json() == {
        "errors": [
            {"path": "(auth)", "reason": "token 'dashboard' has role viewer; admin is needed"}
        ]
    }
    assert client.get(f"{API}/config/versions", headers=VIEWER).json() == before


@pytest.mark.parametrize(("method", "path"), READS)
def test_viewer_reads(shared: TestClient, method: str, path: str) -> None:
    client = shared
    r = client.request(method, path + query_of(path), headers=VIEWER)
    assert r.status_code == 200, r.text


def test_whoami_names_the_token_and_its_role(shared: TestClient) -> None:
    assert shared.get(f"{API}/whoami", headers=VIEWER).json() == {
        "name": "dashboard",
        "role": "viewer",
    }
    assert shared.get(f"{API}/whoami", headers=ADMIN).json() == {"name": "ops", "role": "admin"}


def test_health_needs_no_token(client: TestClient) -> None:
    r = client.get(f"{API}/health")
    assert (r.status_code, r.json()) == (200, {"status": "ok", "reasons": []})


def test_tokens_appear_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    node = Node(tmp_path)
    with api_client(node) as client:
        client.patch(f"{API}/services/{VIP4}/80/tcp", headers=ADMIN, json={"scheduler": "wrr"})
        client.post(f"{API}/services", headers=VIEWER, json={})
        client.get(f"{API}/services", headers={"Authorization": "Bearer wrong-token-0123456789"})
        config = client.get(f"{API}/config", headers=VIEWER).text
        version = client.get(f"{API}/config/versions/1", headers=VIEWER).text
        diff = client.get(f"{API}/config/diff?from_version=1", headers=VIEWER).text
        audit = client.get(f"{API}/audit", headers=VIEWER).text
    texts = {
        "audit log": node.audit_path.read_text(),
        "node log": caplog.text,
        "config": config,
        "version": version,
        "diff": diff,
        "audit route": audit,
    }
    for where, text in texts.items():
        for token in (ADMIN_TOKEN, VIEWER_TOKEN):
            assert token not in text, f"a token appears in the {where}"
    assert '"name":"ops"' in config.replace(" ", "")
    assert "*** redacted ***" in config
