"""The API answers as its OpenAPI document says: schemathesis generates requests from the
document (valid ones and ones it should refuse) for every operation and checks each
answer: its status is documented, its body matches the documented schema, no 5xx, a
refused input is a 4xx, a method the path does not have is 405. A short run (a few
examples per operation, derandomized) against a real server over the engine harness."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api_helpers import ADMIN, API, Node, running_server
from dplb.api.models import ErrorBody


def openapi_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        document: dict[str, Any] = Node(Path(tmp)).app.openapi()
    return document


# The fuzzing phase only, a few examples an operation (the coverage phase sends hundreds
# of requests per operation: minutes, where this must stay a short run).
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One node for the run: what schemathesis writes stays in its own store."""
    with running_server(Node(tmp_path_factory.mktemp("openapi"))) as url:
        yield url


@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_as_its_openapi_says(case: Any, base_url: str) -> None:
    # A request the document allows may still be refused (422): what the config checks
    # across fields (a VIP that is a port's address, a nic the node lacks) no schema says.
    case.call_and_validate(
        base_url=base_url, headers=ADMIN, excluded_checks=[positive_data_acceptance]
    )


def documented(method: str, path: str, status: int) -> dict[str, Any]:
    """The documented answer of an operation for a status (KeyError when there is none)."""
    operation = DOCUMENT["paths"][path][method]
    answer: dict[str, Any] = operation["responses"][str(status)]
    return answer


def test_what_the_answers_are_is_what_the_document_says(client: TestClient) -> None:
    # Each once answered otherwise than documented.
    service = f"{API}/services/{{vip}}/{{port}}/{{protocol}}"
    body = {"vip": "10.0.100.50", "port": 80}
    r = client.put(f"{API}/services/10.0.100.50/80/tcp", headers=ADMIN, json=body)
    assert r.status_code == 201
    assert (
        "ServiceChange"
        in documented("put", service, 201)["content"]["application/json"]["schema"]["$ref"]
    )
    for method, path in (("patch", service), ("put", f"{API}/config")):
        assert documented(method, path, 202)  # pending: written, not applied yet
    config = client.get(f"{API}/config", headers=ADMIN).json()["config"]
    r = client.put(f"{API}/config?expected_version=99", headers=ADMIN, json=config)
    assert r.status_code == 409
    ErrorBody.model_validate(r.json())  # the documented body: `version` is in it
    assert r.json()["version"] == 2
    r = client.post(
        f"{API}/services",
        headers={**ADMIN, "Content-Type": "application/json"},
        content=b'{"vip": "\xff"}',
    )
    assert (r.status_code, r.json()["errors"][0]["path"]) == (422, "body")
    vip = DOCUMENT["paths"][service]["get"]["parameters"][0]
    assert vip["name"] == "vip"
    assert vip["schema"]["anyOf"] == [{"format": "ipv4"}, {"format": "ipv6"}]
