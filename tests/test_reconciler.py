"""The reconciler (DESIGN section 6): a desired version is validated whole and applied as
one snapshot; a refused one is reported with every error and its field path while the
last good config keeps running; what a running node cannot change is named."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from api_helpers import api_config, harness_dataplane
from conftest import VIP4, TcpFlow, nonzero_drops
from dplb.config import parse_config
from dplb.dataplane import HarnessDataplane
from dplb.reconciler import Reconciler, seed_config, seed_store
from dplb.store import FileStore


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Setup:
    def __init__(self, tmp_path: Path, **dataplane: Any) -> None:
        self.raw = api_config(tmp_path)
        self.raw["dataplane"].update(dataplane)
        self.config = parse_config(self.raw)
        self.dataplane: HarnessDataplane = harness_dataplane(self.config)
        self.store = FileStore(tmp_path / "store" / "desired.yaml")
        self.reconciler = Reconciler(self.store, self.dataplane)

    def push(self, data: dict[str, Any]) -> Any:
        async def go() -> Any:
            await self.store.write(data, author="test")
            desired = await self.store.read()
            return await self.reconciler.reconcile(desired)

        return run(go())


def web_weights(setup: Setup) -> list[int]:
    svc = setup.dataplane.running_config().services[0]
    return [r.weight for r in svc.reals]


def test_a_valid_version_is_applied_and_recorded(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    data = copy.deepcopy(s.raw)
    data["services"][0]["reals"][0]["weight"] = 7
    status = s.push(data)
    assert (status.applied_version, status.last_result, status.errors) == (1, "applied", [])
    assert web_weights(s) == [7, 100]
    assert run(s.store.read_status("harness")) == status


def test_the_same_config_again_is_unchanged_but_becomes_the_applied_version(
    tmp_path: Path,
) -> None:
    s = Setup(tmp_path)
    s.push(copy.deepcopy(s.raw))
    status = s.push(copy.deepcopy(s.raw))
    assert (status.applied_version, status.last_result) == (2, "unchanged")


def test_a_refused_version_lists_every_error_and_the_last_good_keeps_running(
    tmp_path: Path,
) -> None:
    s = Setup(tmp_path)
    good = copy.deepcopy(s.raw)
    good["services"][0]["reals"][0]["weight"] = 7
    s.push(good)
    flow = TcpFlow(s.dataplane.engine, 43000)
    flow.handshake()

    bad = copy.deepcopy(good)
    bad["services"][0]["reals"][1]["weight"] = -5
    bad["services"][1]["port"] = 70000
    bad["services"].append(copy.deepcopy(bad["services"][2]))
    status = s.push(bad)

    assert status.last_result == "refused"
    assert status.last_version == 2
    assert status.applied_version == 1
    paths = {e.path for e in status.errors}
    assert {"services[0].reals[1].weight", "services[1].port"} <= paths
    assert web_weights(s) == [7, 100]
    # The running flow did not notice.
    flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"still"))
    assert nonzero_drops(s.dataplane.engine) == {}


def test_cross_field_errors_are_found_too(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    bad = copy.deepcopy(s.raw)
    bad["services"].append(copy.deepcopy(bad["services"][0]))
    bad["services"][1]["nic"] = "port9"
    status = s.push(bad)
    reasons = {e.path: e.reason for e in status.errors}
    assert "is also services[0]" in reasons["services[3]"]
    assert "no port named 'port9'" in reasons["services[1].nic"]


def test_a_dataplane_change_is_refused_naming_the_field(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    bad = copy.deepcopy(s.raw)
    bad["dataplane"]["sessions_per_worker"] = 2048
    bad["node"]["name"] = "other"
    status = s.push(bad)
    reasons = {e.path: e.reason for e in status.errors}
    assert set(reasons) == {"dataplane.sessions_per_worker", "node.name"}
    assert "cannot change on a running node" in reasons["dataplane.sessions_per_worker"]
    assert "restart" in reasons["node.name"]
    assert s.dataplane.running_config().dataplane.sessions_per_worker == 1024


def test_local_addresses_per_worker_are_checked(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    bad = copy.deepcopy(s.raw)
    bad["dataplane"]["ports"][1]["local_addresses"].append(["10.0.2.200"])
    status = s.push(bad)
    assert (
        "needs one list per worker"
        in {e.path: e.reason for e in status.errors}["dataplane.ports[1].local_addresses"]
    )


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.push(copy.deepcopy(s.raw))
    (tmp_path / "store" / "desired.yaml").write_text("services: [\n")
    status = run(s.reconciler.reconcile(run(s.store.read())))
    assert status.last_result == "refused"
    assert status.errors[0].path == "(file)"
    assert status.applied_version == 1


def test_more_reals_than_the_engine_holds_are_refused(tmp_path: Path) -> None:
    s = Setup(tmp_path, max_reals=4)  # the harness config has 4
    bad = copy.deepcopy(s.raw)
    bad["services"][1]["reals"].append({"address": "10.0.2.12", "port": 5353})
    status = s.push(bad)
    assert (
        "5 reals in all, more than max_reals (4)"
        in {e.path: e.reason for e in status.errors}["services"]
    )


def test_removing_the_last_admin_token_is_refused(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    bad = copy.deepcopy(s.raw)
    bad["api"]["tokens"] = [t for t in bad["api"]["tokens"] if t["role"] != "admin"]
    status = s.push(bad)
    assert {e.path for e in status.errors} == {"api.tokens"}


def test_an_empty_store_is_seeded_with_the_node_config(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    run(seed_store(s.store, s.config))
    current = run(s.store.read())
    assert (current.version, current.info.author) == (1, "node")
    assert parse_config(current.data) == s.config
    run(seed_store(s.store, s.config))  # nothing to do the second time
    assert run(s.store.current_version()) == 1


def test_a_restart_with_a_new_dataplane_keeps_the_stored_services(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    stored = copy.deepcopy(s.raw)
    stored["services"] = stored["services"][:1]
    restarted = copy.deepcopy(s.raw)
    restarted["dataplane"]["sessions_per_worker"] = 4096
    merged = seed_config(parse_config(restarted), parse_config(stored))
    assert merged is not None
    assert merged.dataplane.sessions_per_worker == 4096
    assert [str(svc.vip) for svc in merged.services] == [VIP4]
