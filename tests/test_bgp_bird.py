"""The BIRD controller against a real BIRD 2: the node's BIRD (ops/bird/bird.conf made
concrete) in one namespace, a router's BIRD (ops/bird/router.conf) in another, a veth
between them, each daemon with its own config and control socket. What the router's
kernel and BIRD learn is what a user would see: the VIPs that can serve, the local
addresses, the backups, the drain's community; a config BIRD refuses leaves the routes
as they were; BIRD down is said and retried. Needs root (namespaces)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api_helpers import ADMIN, VIEWER, Node, api_client, harness_dataplane, running_server, wait_for
from bird_helpers import BirdDaemon, concrete, kernel_nexthops
from conftest import node_config
from dplb.bgp import BirdController, RunningConfigServing
from dplb.bgp.render import render_routes
from dplb.config import BgpSection, NodeConfig, parse_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces")

NODE_NS, ROUTER_NS = f"tbgp{os.getpid()}-node", f"tbgp{os.getpid()}-rtr"
NODE_IP, ROUTER_IP = "10.98.0.1", "10.98.0.2"
VIP = "10.0.100.10"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


class Lab:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.routes_file = folder / "dplb-routes.conf"
        self.node_conf = folder / "bird.conf"
        self.node_conf.write_text(
            concrete(
                "bird.conf",
                {
                    "log syslog all;": f'log "{folder}/node-bird.log" all;',
                    "router id 10.10.1.1;": f"router id {NODE_IP};",
                    "/etc/bird/dplb-routes.conf": str(self.routes_file),
                    '"lb1-port0"': '"tbgpn"',
                    "neighbor 10.10.1.254": f"neighbor {ROUTER_IP}",
                },
            )
        )
        router_conf = folder / "router.conf"
        router_conf.write_text(
            concrete(
                "router.conf",
                {
                    "log syslog all;": f'log "{folder}/router-bird.log" all;',
                    "router id 10.10.1.254;": f"router id {ROUTER_IP};",
                    "neighbor 10.10.1.1 ": f"neighbor {NODE_IP} ",
                    "protocol bgp lb2 from dplb_nodes { neighbor 10.10.1.2 as 65001; }": "",
                },
            )
        )
        self.node = BirdDaemon(NODE_NS, self.node_conf, folder, "node")
        self.router = BirdDaemon(ROUTER_NS, router_conf, folder, "router")

    def bgp(self, **overrides: Any) -> BgpSection:
        fields: dict[str, Any] = {
            "enabled": True,
            "asn": 65001,
            "bird_config": self.node_conf,
            "routes_file": self.routes_file,
            "control_socket": self.node.socket,
            "poll_interval": 0.3,
            "drain": {"timeout": 5},
            **overrides,
        }
        return BgpSection.model_validate(fields)

    def router_nexthops(self, prefix: str) -> list[str]:
        return kernel_nexthops(ROUTER_NS, prefix)

    def reset(self) -> None:
        """Nothing announced, the node's BIRD running with its own config, established."""
        self.node_conf.write_text(self.node_conf.read_text().replace("protocol bogus;\n", ""))
        self.routes_file.write_text(render_routes(self.bgp(), [], "harness"))
        if self.node.pid is None:
            self.node.start()
        self.node.ask("configure")
        wait_for(lambda: self.node.established("router1"), 60, "the BGP session")
        wait_for(lambda: not self.router_nexthops(VIP), 10, "nothing announced")


def remove_stale_namespaces() -> None:
    """The namespaces (and BIRDs in them) of runs of this module that were killed."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in (line.split(" ")[0] for line in listing.splitlines()):
        m = re.match(r"^tbgp(\d+)-", name)
        if m is None or Path(f"/proc/{m[1]}").exists():
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    remove_stale_namespaces()
    folder = tmp_path_factory.mktemp("bird")
    sh("ip", "netns", "add", NODE_NS)
    sh("ip", "netns", "add", ROUTER_NS)
    the_lab = Lab(folder)
    try:
        sh("ip", "link", "add", "tbgpn", "netns", NODE_NS, "type", "veth", "peer", "name",
           "tbgpr", "netns", ROUTER_NS)  # fmt: skip
        sh("ip", "-n", NODE_NS, "addr", "add", f"{NODE_IP}/24", "dev", "tbgpn")
        sh("ip", "-n", ROUTER_NS, "addr", "add", f"{ROUTER_IP}/24", "dev", "tbgpr")
        for ns, dev in ((NODE_NS, "tbgpn"), (ROUTER_NS, "tbgpr")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        the_lab.routes_file.write_text(render_routes(the_lab.bgp(), [], "harness"))
        the_lab.router.start()
        the_lab.node.start()
        yield the_lab
    finally:
        the_lab.node.stop()
        the_lab.router.stop()
        subprocess.run(["ip", "netns", "del", NODE_NS], capture_output=True)
        subprocess.run(["ip", "netns", "del", ROUTER_NS], capture_output=True)


class Running:
    """The config the controller reads (`running`), which a test changes as the
    reconciler would."""

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg

    def __call__(self) -> NodeConfig:
        return self.cfg

    def set_weights(self, vip: str, weight: int) -> None:
        data = self.cfg.model_dump(mode="json")
        for svc in data["services"]:
            if svc["vip"] == vip:
                for real in svc["reals"]:
                    real["weight"] = weight
        self.cfg = parse_config(data)


def controller(
    lab: Lab, peers: Callable[[], Any] | None = None, **bgp: Any
) -> tuple[BirdController, Running]:
    running = Running(parse_config(node_config()))
    dataplane = harness_dataplane(running.cfg)
    c = BirdController(
        lab.bgp(**bgp),
        node="harness",
        running=running,
        dataplane=dataplane,
        serving=RunningConfigServing(running, dataplane),
        peers=peers,
        evaluate_interval=0.1,
    )
    return c, running


async def until(condition: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """`wait_for` for a coroutine: the controller keeps running meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await asyncio.to_thread(condition)):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def test_the_vips_that_can_serve_reach_the_router_and_leave_it(lab: Lab) -> None:
    lab.reset()

    async def scenario() -> None:
        c, running = controller(lab)
        await c.start()
        await until(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], "the VIP at the router")
        await until(lambda: lab.router_nexthops("10.0.2.101/32") == [NODE_IP], "the local address")
        status = await until(lambda: (s := c.status()).sessions_established == 1 and s, "status")
        assert status.bird == "up" and status.in_sync
        assert [s.name for s in status.sessions] == ["router1"]
        assert status.sessions[0].routes_exported == 2  # the IPv4 VIP and the local address
        assert {r.prefix for r in status.announced} >= {f"{VIP}/32", "10.0.2.101/32"}
        # No real of the VIP's services can take a connection: withdrawn.
        running.set_weights(VIP, 0)
        await until(lambda: not lab.router_nexthops(f"{VIP}/32"), "the VIP withdrawn")
        assert lab.router_nexthops("10.0.2.101/32") == [NODE_IP]
        running.set_weights(VIP, 100)
        await until(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], "the VIP back")
        # The node stops (no drain: on_stop is tested with the API below): all withdrawn.
        c.bgp = c.bgp.model_copy(
            update={"drain": c.bgp.drain.model_copy(update={"on_stop": False})}
        )
        await c.stop()
        await until(lambda: not lab.router_nexthops("10.0.2.101/32"), "all withdrawn")
        assert not lab.router_nexthops(f"{VIP}/32")
        assert "route" not in lab.routes_file.read_text()

    asyncio.run(scenario())


def test_peer_local_addresses_are_less_preferred_backups(lab: Lab) -> None:
    lab.reset()

    async def scenario() -> None:
        c, _ = controller(lab, peers=lambda: {"lb2": [ipaddress.ip_address("10.0.2.201")]})
        await c.start()
        await until(lambda: lab.router_nexthops("10.0.2.201/32") == [NODE_IP], "the backup")
        route = lab.router.ask("show", "route", "10.0.2.201/32", "all")
        assert "BGP.as_path: 65001 65001 65001" in route  # prepended twice (backup)
        own = lab.router.ask("show", "route", "10.0.2.101/32", "all")
        assert "BGP.as_path: 65001\n" in own
        await c.stop()

    asyncio.run(scenario())


def test_a_config_bird_refuses_keeps_the_old_routes(lab: Lab) -> None:
    lab.reset()

    async def scenario() -> None:
        c, running = controller(lab)
        await c.start()
        await until(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], "the VIP")
        before = lab.routes_file.read_text()
        # A broken template: bird -p refuses it, the routes file stays as it was.
        lab.node_conf.write_text(lab.node_conf.read_text() + "protocol bogus;\n")
        running.set_weights(VIP, 0)
        status = await until(lambda: (s := c.status()).failures["invalid_config"] and s, "refusal")
        assert status.last_reconfiguration is not None and not status.last_reconfiguration.ok
        assert "bird -p -c" in status.last_reconfiguration.message
        assert not status.in_sync
        assert lab.routes_file.read_text() == before
        assert lab.router_nexthops(f"{VIP}/32") == [NODE_IP]  # the old routes stay
        # Fixed: the next retry goes through.
        lab.node_conf.write_text(lab.node_conf.read_text().replace("protocol bogus;\n", ""))
        await until(lambda: not lab.router_nexthops(f"{VIP}/32"), "withdrawn after the fix")
        assert c.status().in_sync
        await c.stop()

    asyncio.run(scenario())


def test_birdc_refusing_while_exiting_zero_is_a_failure(lab: Lab) -> None:
    """BIRD re-reads its own config on `configure`; when that one is broken (while the
    file dplb checked is fine), birdc says so and still exits 0: the answer decides."""
    lab.reset()
    checked = lab.folder / "bird-checked.conf"
    checked.write_text(lab.node_conf.read_text())

    async def scenario() -> None:
        c, running = controller(lab, bird_config=checked)
        await c.start()
        await until(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], "the VIP")
        before = lab.routes_file.read_text()
        lab.node_conf.write_text(lab.node_conf.read_text() + "protocol bogus;\n")
        running.set_weights(VIP, 0)
        status = await until(lambda: (s := c.status()).failures["refused"] and s, "refusal")
        assert status.last_reconfiguration is not None
        assert "syntax error" in status.last_reconfiguration.message
        assert lab.routes_file.read_text() == before
        assert lab.router_nexthops(f"{VIP}/32") == [NODE_IP]
        lab.node_conf.write_text(lab.node_conf.read_text().replace("protocol bogus;\n", ""))
        await until(lambda: not lab.router_nexthops(f"{VIP}/32"), "withdrawn after the fix")
        await c.stop()

    asyncio.run(scenario())


def test_bird_down_is_said_and_retried(lab: Lab) -> None:
    lab.reset()

    async def scenario() -> None:
        c, running = controller(lab)
        await c.start()
        await until(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], "the VIP")
        await asyncio.to_thread(lab.node.stop)
        await until(lambda: c.status().bird == "down", "BIRD seen down")
        running.set_weights(VIP, 0)
        status = await until(
            lambda: (s := c.status()).failures["bird_unavailable"] and s, "a failed attempt"
        )
        assert not status.in_sync and "control socket" in status.bird_message
        # The checked file is in place for BIRD's next start; the node retries.
        assert f"{VIP}/32" not in lab.routes_file.read_text()
        await asyncio.to_thread(lab.node.start)
        await until(lambda: (s := c.status()).bird == "up" and s.in_sync, "BIRD back, in sync")
        await until(lambda: lab.router_nexthops("10.0.2.101/32") == [NODE_IP], "announced again")
        assert not lab.router_nexthops(f"{VIP}/32")
        await c.stop()

    asyncio.run(scenario())


def test_bird_not_installed_is_said() -> None:
    async def scenario() -> None:
        running = Running(parse_config(node_config()))
        dataplane = harness_dataplane(running.cfg)
        folder = Path(f"/tmp/dplb-bgp-none-{os.getpid()}")
        folder.mkdir(exist_ok=True)
        bgp = BgpSection(
            enabled=True,
            asn=65001,
            bird="/nonexistent/bird",
            birdc="/nonexistent/birdc",
            routes_file=folder / "routes.conf",
            bird_config=folder / "bird.conf",
        )
        c = BirdController(
            bgp, node="harness", running=running, dataplane=dataplane,
            serving=RunningConfigServing(running, dataplane),
        )  # fmt: skip
        await c.start()
        status = c.status()
        assert status.bird == "not_installed" and "not installed" in status.bird_message
        assert status.failures["bird_unavailable"] == 1 and not status.in_sync
        await c.stop()

    asyncio.run(scenario())


def test_drain_marks_graceful_shutdown_and_undrain_clears_it(lab: Lab) -> None:
    lab.reset()

    async def scenario() -> None:
        c, _ = controller(lab)
        await c.start()
        await until(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], "the VIP")
        await c.start_drain()
        await until(
            lambda: (
                "BGP.community: (65535,0)" in lab.router.ask("show", "route", f"{VIP}/32", "all")
            ),
            "the GRACEFUL_SHUTDOWN community at the router",
        )
        route = lab.router.ask("show", "route", f"{VIP}/32", "all")
        assert "BGP.local_pref: 0" in route  # the router's RFC 8326 policy (router.conf)
        drained = await c.wait_drained()
        assert drained.state == "drained" and drained.established_sessions == 0
        local = lab.router.ask("show", "route", "10.0.2.101/32", "all")
        assert "65535,0" not in local  # the local addresses are not drained
        await c.undrain()
        await until(
            lambda: "65535,0" not in lab.router.ask("show", "route", f"{VIP}/32", "all"),
            "the community gone",
        )
        assert c.status().drain.state == "none"
        await c.stop()

    asyncio.run(scenario())


def test_the_api_metrics_and_a_stop_of_a_node_with_bgp(lab: Lab, tmp_path: Path) -> None:
    lab.reset()
    bgp = lab.bgp().model_dump(mode="json")
    node = Node(tmp_path, bgp=bgp)
    with api_client(node) as client:
        wait_for(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], 20, "the VIP")
        status = wait_for(
            lambda: (
                (r := client.get("/api/v1/bgp", headers=VIEWER).json())["sessions_established"]
                and r
            ),
            10,
            "the session in the API",
        )
        assert status["enabled"] and status["bird"] == "up" and status["in_sync"]
        assert status["sessions"][0]["name"] == "router1"
        metrics = client.get("/metrics").text
        assert 'dplb_bgp_bird_up{cluster="test",node="harness"} 1' in metrics
        assert 'dplb_bgp_session_up{cluster="test",node="harness",session="router1"} 1' in metrics
        assert 'dplb_bgp_announced_routes{cluster="test",node="harness",kind="vip"} 2' in metrics
        assert client.post("/api/v1/bgp/drain", headers=VIEWER).status_code == 403
        drained = client.post("/api/v1/bgp/drain?wait=true", headers=ADMIN)
        assert drained.status_code == 200, drained.text
        assert drained.json()["drain"]["state"] == "drained"
        wait_for(
            lambda: "(65535,0)" in lab.router.ask("show", "route", f"{VIP}/32", "all"), 10, "GS"
        )
        assert client.get("/metrics").text.count("dplb_bgp_draining{") == 1
        undrained = client.post("/api/v1/bgp/undrain", headers=ADMIN)
        assert undrained.json()["drain"]["state"] == "none"
    # The app stopped (drain on stop, then withdraw): nothing left at the router.
    wait_for(lambda: not lab.router_nexthops(f"{VIP}/32"), 10, "withdrawn at stop")
    wait_for(lambda: not lab.router_nexthops("10.0.2.101/32"), 10, "withdrawn at stop")


def test_bgp_off_answers_so(client: Any) -> None:
    assert client.get("/api/v1/bgp", headers=VIEWER).json()["enabled"] is False
    refused = client.post("/api/v1/bgp/drain", headers=ADMIN)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["path"] == "bgp.enabled"


def test_dplb_ctl_shows_bgp_and_drains(lab: Lab, tmp_path: Path) -> None:
    from test_ctl import ctl

    lab.reset()
    node = Node(tmp_path, bgp=lab.bgp().model_dump(mode="json"))
    with running_server(node) as url:
        wait_for(lambda: lab.router_nexthops(f"{VIP}/32") == [NODE_IP], 20, "the VIP")
        wait_for(lambda: "Established" in ctl(url, "bgp").stdout, 10, "the session in ctl")
        shown = ctl(url, "bgp")
        assert shown.returncode == 0, shown.stderr
        assert "bird      up" in shown.stdout and "router1" in shown.stdout
        assert f"{VIP}/32" in shown.stdout
        drained = ctl(url, "drain", "--wait")
        assert drained.returncode == 0, drained.stderr
        assert "drain     drained (graceful_shutdown, 0 established sessions)" in drained.stdout
        assert "65535:0" in drained.stdout
        viewer = ctl(url, "undrain", token=VIEWER["Authorization"].split()[1])
        assert viewer.returncode == 3  # a viewer may not
        undrained = ctl(url, "undrain")
        assert undrained.returncode == 0 and "drain     none" in undrained.stdout
