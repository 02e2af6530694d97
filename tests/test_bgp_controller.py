"""The BIRD controller's own logic, with a stand-in for BIRD (the real one is in
tests/test_bgp_bird.py): what it announces follows the serving source, whose change
notification (the health checker's seam) is all it takes to re-announce; a failed data
plane announces no VIP; the running config's default source follows weights, `enabled`
and the NIC's link."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api_helpers import harness_dataplane
from conftest import VIP4, VIP6, node_config
from dplb.bgp import BirdController, RunningConfigServing
from dplb.bgp.birdc import BirdProtocol, CheckResult, ConfigureResult
from dplb.bgp.serving import ServiceKey
from dplb.config import BgpSection, NodeConfig, parse_config
from dplb.dataplane import DataplaneStatus
from dplb.dataplane.models import Liveness


class FakeBird:
    """Takes every config; keeps the routes file as each `configure` found it."""

    def __init__(self, routes_file: Path) -> None:
        self.routes_file = routes_file
        self.taken: list[str] = []

    async def check_config(self, path: Path) -> CheckResult:
        return CheckResult(True, "")

    async def configure(self) -> ConfigureResult:
        self.taken.append(self.routes_file.read_text())
        return ConfigureResult(True, "Reconfigured")

    async def protocols(self) -> list[BirdProtocol]:
        return []


class Serving:
    """A source as the health checker will be: it says when its answer changed."""

    def __init__(self, keys: set[ServiceKey]) -> None:
        self.keys = keys
        self.listeners: list[Callable[[], None]] = []

    def serving(self) -> set[ServiceKey]:
        return set(self.keys)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def change(self, keys: set[ServiceKey]) -> None:
        self.keys = keys
        for listener in self.listeners:
            listener()


class FailingDataplane:
    """The harness dataplane whose liveness says failed (a stuck worker)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def status(self) -> DataplaneStatus:
        status: DataplaneStatus = self.inner.status()
        return status.model_copy(update={"liveness": Liveness(state="failed", reasons=["stuck"])})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def make(
    tmp_path: Path, serving: Any, dataplane: Any = None, cfg: NodeConfig | None = None
) -> BirdController:
    cfg = cfg or parse_config(node_config())
    bgp = BgpSection(
        enabled=True,
        asn=65001,
        routes_file=tmp_path / "routes.conf",
        bird_config=tmp_path / "bird.conf",
        poll_interval=60,
    )
    return BirdController(
        bgp,
        node="harness",
        running=lambda: cfg,
        dataplane=dataplane or harness_dataplane(cfg),
        serving=serving,
        bird=FakeBird(tmp_path / "routes.conf"),  # type: ignore[arg-type]
        evaluate_interval=60,  # only a notification can make it look again in this test
    )


def vips_in(path: Path) -> list[str]:
    return [line.split()[1] for line in path.read_text().splitlines() if "# vip" in line]


def test_a_change_notification_from_another_thread_re_announces(tmp_path: Path) -> None:
    v4 = (ipaddress.ip_address(VIP4), 80, "tcp")
    v6 = (ipaddress.ip_address(VIP6), 80, "tcp")
    serving = Serving({v4, v6})

    async def scenario() -> None:
        c = make(tmp_path, serving)
        c.bgp.drain.on_stop = False
        await c.start()
        assert vips_in(c.bgp.routes_file) == [f"{VIP4}/32", f"{VIP6}/128"]
        # The health checker's thread says VIP6's only service went down.
        threading.Thread(target=serving.change, args=({v4},)).start()
        for _ in range(200):
            if vips_in(c.bgp.routes_file) == [f"{VIP4}/32"]:
                break
            await asyncio.sleep(0.01)
        assert vips_in(c.bgp.routes_file) == [f"{VIP4}/32"]
        assert c.status().in_sync and c.status().reconfigurations == 2
        await c.stop()
        assert vips_in(c.bgp.routes_file) == []

    asyncio.run(scenario())


def test_a_failed_dataplane_announces_no_vip_but_its_local_addresses(tmp_path: Path) -> None:
    cfg = parse_config(node_config())

    async def scenario() -> None:
        inner = harness_dataplane(cfg)
        c = make(tmp_path, RunningConfigServing(lambda: cfg, inner), FailingDataplane(inner), cfg)
        await c.start()
        kinds = {r.kind for r in c.status().announced}
        assert kinds == {"local_address"}
        await c.stop()

    asyncio.run(scenario())


def test_the_default_source_follows_weights_enabled_and_the_link() -> None:
    data = node_config()
    data["services"][0]["reals"] = [
        {"address": "10.0.2.11", "port": 8080, "weight": 0},
        {"address": "10.0.2.12", "port": 8080, "enabled": False},
    ]
    data["services"][2]["nic"] = "port1"
    cfg = parse_config(data)
    dataplane = harness_dataplane(cfg)
    source = RunningConfigServing(lambda: cfg, dataplane)
    assert {(str(v), p, proto) for v, p, proto in source.serving()} == {
        (VIP4, 53, "udp"),
        (VIP6, 80, "tcp"),
    }

    class LinkDown:
        def status(self) -> DataplaneStatus:
            status: DataplaneStatus = dataplane.status()
            ports = [p.model_copy(update={"link_up": p.name != "port1"}) for p in status.ports]
            return status.model_copy(update={"ports": ports})

    down = RunningConfigServing(lambda: cfg, LinkDown())  # type: ignore[arg-type]
    assert {(str(v), p, proto) for v, p, proto in down.serving()} == {(VIP4, 53, "udp")}


def test_a_stop_drains_first_then_withdraws(tmp_path: Path) -> None:
    cfg = parse_config(node_config())

    async def scenario() -> None:
        c = make(tmp_path, RunningConfigServing(lambda: cfg, harness_dataplane(cfg)))
        await c.start()
        await c.stop()
        bird: FakeBird = c.bird  # type: ignore[assignment]
        first, drained, withdrawn = bird.taken
        assert "bgp_community.add((65535, 0))" not in first
        assert f"route {VIP4}/32 blackhole {{ bgp_community.add((65535, 0)); }};  # vip" in drained
        assert "route " not in withdrawn
        assert c.status().drain.state == "drained"

    asyncio.run(scenario())


def test_a_health_verdict_and_its_subscription_plug_in(tmp_path: Path) -> None:
    """The health checker's seam: `service_can_serve(id)` and `subscribe(callback)`,
    whose callback gets the changed reals' keys."""
    cfg = parse_config(node_config())
    down: set[tuple[str, int, str]] = set()
    subscribers: list[Callable[..., None]] = []
    source = RunningConfigServing(
        lambda: cfg,
        harness_dataplane(cfg),
        can_serve=lambda service: service not in down,
        subscribe=subscribers.append,
    )

    async def scenario() -> None:
        c = make(tmp_path, source, cfg=cfg)
        c.bgp.drain.on_stop = False
        await c.start()
        assert vips_in(c.bgp.routes_file) == [f"{VIP4}/32", f"{VIP6}/128"]
        down.add((VIP6, 80, "tcp"))
        for callback in subscribers:
            callback([(VIP6, 80, "tcp", "2001:db8:2::11", 8080)])  # the changed reals
        for _ in range(200):
            if vips_in(c.bgp.routes_file) == [f"{VIP4}/32"]:
                break
            await asyncio.sleep(0.01)
        assert vips_in(c.bgp.routes_file) == [f"{VIP4}/32"]
        await c.stop()

    asyncio.run(scenario())
