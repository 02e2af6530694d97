"""BGP through BIRD, the parts that need no BIRD: the `bgp` config section's errors, the
routes file dplb renders (what BIRD will announce, with which communities), and the
parser of birdc's answers, fed with answers captured from a real BIRD 2.0.12
(tests/birdc_answers/, made by tests/birdc_answers/capture.sh)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from conftest import node_config
from dplb import ConfigError, parse_config
from dplb.bgp.birdc import configure_result, parse_protocols, parse_reply, parse_routes
from dplb.bgp.render import GRACEFUL_SHUTDOWN, plan_routes, render_routes
from dplb.config import BgpSection

ANSWERS = Path(__file__).parent / "birdc_answers"


def answer(name: str) -> str:
    return (ANSWERS / f"{name}.txt").read_text()


def ip(text: str) -> Any:
    return ipaddress.ip_address(text)


def with_bgp(**bgp: Any) -> dict[str, Any]:
    config = node_config()
    config["store"] = {"file": "/tmp/dplb-unused/desired.yaml"}
    config["bgp"] = {"enabled": True, "asn": 65001, **bgp}
    return config


# -- the config section ---------------------------------------------------------------


def config_errors(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    return dict(caught.value.errors)


def test_a_bgp_section_loads_with_its_defaults() -> None:
    cfg = parse_config(with_bgp())
    assert cfg.bgp.enabled and cfg.bgp.asn == 65001
    assert cfg.bgp.drain.mode == "graceful_shutdown"
    assert str(cfg.bgp.routes_file) == "/etc/bird/dplb-routes.conf"


def test_bgp_errors_name_their_field() -> None:
    errors = config_errors(with_bgp(communities=["65000:70000"], drain={"mode": "fast"}))
    assert "each half of a community is 0-65535" in errors["bgp.communities[0]"]
    assert "bgp.drain.mode" in errors
    config = with_bgp(routes_file="dplb-routes.conf")
    assert "absolute" in config_errors(config)["bgp.routes_file"]
    config = with_bgp(protocol_ipv4="vips", protocol_ipv6="vips")
    assert "two names" in config_errors(config)["bgp.protocol_ipv6"]


def test_bgp_needs_an_asn_to_prepend_and_an_api() -> None:
    config = with_bgp()
    del config["bgp"]["asn"]
    assert "backup.path_prepend" in config_errors(config)["bgp.asn"]
    config["bgp"]["backup"] = {"path_prepend": 0}
    parse_config(config)  # no prepend, no ASN needed
    config = with_bgp()
    del config["store"]
    assert "store.file" in config_errors(config)["bgp.enabled"]


# -- what is announced ----------------------------------------------------------------

LADDRS = [ip("10.0.2.101"), ip("2001:db8:2::101")]
PEERS = {"lb2": [ip("10.0.2.201"), ip("10.0.2.101")]}  # a peer naming one of ours too


def test_vips_own_and_peer_local_addresses_are_announced_each_once() -> None:
    bgp = BgpSection(enabled=True, asn=65001, communities=["65000:1"])
    routes = plan_routes(
        bgp,
        vips=[ip("10.0.100.10"), ip("10.0.100.10"), ip("2001:db8:100::10")],
        local_addresses=LADDRS,
        peer_local_addresses=PEERS,
    )
    assert [(r.prefix, r.kind) for r in routes] == [
        ("10.0.100.10/32", "vip"),
        ("2001:db8:100::10/128", "vip"),
        ("10.0.2.101/32", "local_address"),
        ("2001:db8:2::101/128", "local_address"),
        ("10.0.2.201/32", "backup"),
    ]
    assert all(r.communities[0] == "65000:1" for r in routes)


def test_the_routes_file_has_both_protocols_and_the_attributes() -> None:
    bgp = BgpSection(
        enabled=True,
        asn=65001,
        backup={"path_prepend": 2, "local_pref": 50, "communities": ["65000:200"]},
    )
    routes = plan_routes(
        bgp, vips=[ip("10.0.100.10")], local_addresses=LADDRS, peer_local_addresses=PEERS
    )
    text = render_routes(bgp, routes, "lb1")
    lines = [line.strip() for line in text.splitlines()]
    assert "protocol static dplb4 {" in lines and "protocol static dplb6 {" in lines
    assert "route 10.0.100.10/32 blackhole;  # vip" in lines
    assert "route 2001:db8:2::101/128 blackhole;  # local address" in lines
    assert (
        "route 10.0.2.201/32 blackhole { bgp_path.prepend(65001); bgp_path.prepend(65001); "
        "bgp_local_pref = 50; bgp_community.add((65000, 200)); };  # backup for lb2"
    ) in lines
    # Nothing to announce: the protocols are still there for bird.conf's filters.
    empty = render_routes(bgp, [], "lb1")
    assert "protocol static dplb4 {\n  ipv4;\n}" in empty
    assert "protocol static dplb6 {\n  ipv6;\n}" in empty


def test_a_drain_marks_the_vips_graceful_shutdown_or_withdraws_them() -> None:
    for mode, expected in (("graceful_shutdown", [(GRACEFUL_SHUTDOWN,)]), ("withdraw", [])):
        bgp = BgpSection(enabled=True, asn=65001, drain={"mode": mode})
        routes = plan_routes(
            bgp,
            vips=[ip("10.0.100.10")],
            local_addresses=LADDRS,
            peer_local_addresses={},
            draining=True,
        )
        assert [r.communities for r in routes if r.kind == "vip"] == expected
        # The node's own local addresses stay: the draining sessions' replies come back.
        assert len([r for r in routes if r.kind == "local_address"]) == 2
    text = render_routes(
        BgpSection(enabled=True, asn=65001),
        plan_routes(
            BgpSection(enabled=True, asn=65001),
            vips=[ip("10.0.100.10")],
            local_addresses=[],
            peer_local_addresses={},
            draining=True,
        ),
        "lb1",
    )
    assert "route 10.0.100.10/32 blackhole { bgp_community.add((65535, 0)); };  # vip" in text


def test_local_addresses_off_announces_only_vips() -> None:
    bgp = BgpSection(enabled=True, asn=65001, local_addresses=False)
    routes = plan_routes(
        bgp, vips=[ip("10.0.100.10")], local_addresses=LADDRS, peer_local_addresses=PEERS
    )
    assert [r.kind for r in routes] == ["vip"]


# -- birdc's answers ------------------------------------------------------------------


def test_configure_succeeds_only_on_reconfigured() -> None:
    assert configure_result(parse_reply(answer("configure_reconfigured"))).ok
    assert configure_result(parse_reply(answer("configure_in_progress"))).ok
    refused = configure_result(parse_reply(answer("configure_syntax_error")))
    assert not refused.ok
    assert "routes.conf:1:49 syntax error" in refused.message
    missing = configure_result(parse_reply(answer("configure_no_file")))
    assert not missing.ok and "No such file or directory" in missing.message
    assert not configure_result(parse_reply(answer("no_socket"))).ok
    assert not configure_result(parse_reply("")).ok


def test_protocols_established_with_their_exported_routes() -> None:
    protocols = {
        p.name: p for p in parse_protocols(parse_reply(answer("show_protocols_all_established")))
    }
    assert set(protocols) == {"device1", "dplb4", "dplb6", "r1", "bfd1"}
    r1 = protocols["r1"]
    assert r1.proto == "BGP" and r1.established
    assert (r1.neighbor_address, r1.neighbor_as) == ("10.99.0.2", 65000)
    assert r1.routes_exported == 2 and r1.routes_imported == 0
    assert protocols["dplb4"].routes_imported == 2
    assert protocols["bfd1"].state == "up"


def test_a_session_that_is_down() -> None:
    for name in ("show_protocols_all_peer_down", "show_protocols_peer_down"):
        r1 = next(p for p in parse_protocols(parse_reply(answer(name))) if p.name == "r1")
        assert not r1.established
        assert r1.state == "start" and r1.info.startswith("Active")
    short = parse_protocols(parse_reply(answer("show_protocols_established")))
    assert [p.name for p in short if p.established] == ["r1"]


def test_exported_routes() -> None:
    assert parse_routes(parse_reply(answer("show_route_export"))) == [
        "10.10.100.10/32",
        "10.10.2.201/32",
    ]
    down = parse_reply(answer("show_route_export_down"))
    assert parse_routes(down) == [] and down.errors == ["No valid tables"]
