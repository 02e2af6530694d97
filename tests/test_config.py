"""The node config (DESIGN sections 6 and 9): every error names the field path and the
reason; a valid YAML file loads; `dplb check-config` says the same on the command line; a
bad config given to a running engine is refused and the good one keeps running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from scapy.layers.inet import TCP

from conftest import (
    CLIENT4,
    CLIENT_GW_MAC,
    VIP4,
    TcpFlow,
    client_frame,
    make_engine,
    node_config,
    send_one,
)
from dplb import ConfigError, Engine, load_config, parse_config

DPLB_SCRIPT = Path(sys.executable).parent / "dplb"


def errors_of(config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    assert caught.value.errors, "a ConfigError must list its errors"
    errors: list[tuple[str, str]] = caught.value.errors
    return errors


def error_at(config: dict[str, Any], path: str) -> str:
    """The reason of the (only) error at `path`."""
    errors = errors_of(config)
    reasons = [reason for where, reason in errors if where == path]
    assert len(reasons) == 1, f"expected one error at {path}, got {errors}"
    return reasons[0]


def test_the_harness_config_is_valid() -> None:
    cfg = parse_config(node_config(workers=2))
    assert cfg.dataplane.workers == 2
    assert [s.port for s in cfg.services] == [80, 53, 80]
    assert cfg.services[0].reals[0].weight == 100  # the default weight
    assert cfg.dataplane.timeouts.tcp_established == 900


# -- one error, at its path ----------------------------------------------------------


def test_unknown_key_in_a_service() -> None:
    config = node_config()
    config["services"][0]["prot"] = "tcp"
    assert "not permitted" in error_at(config, "services[0].prot")


def test_unknown_key_at_the_top_and_in_dataplane() -> None:
    config = node_config()
    config["servics"] = []
    config["dataplane"]["worker"] = 2
    errors = dict(errors_of(config))
    assert set(errors) == {"servics", "dataplane.worker"}


@pytest.mark.parametrize("weight", [-1, 70000])
def test_bad_weight(weight: int) -> None:
    config = node_config()
    config["services"][0]["reals"][0]["weight"] = weight
    reason = error_at(config, "services[0].reals[0].weight")
    assert ("0" if weight < 0 else "65535") in reason


def test_weight_zero_is_valid() -> None:
    config = node_config()
    config["services"][0]["reals"][0]["weight"] = 0
    assert parse_config(config).services[0].reals[0].weight == 0


@pytest.mark.parametrize(
    ("where", "path"),
    [
        (lambda c: c["services"][0], "services[0].port"),
        (lambda c: c["services"][1]["reals"][0], "services[1].reals[0].port"),
    ],
    ids=["service", "real"],
)
def test_port_zero(where: Any, path: str) -> None:
    config = node_config()
    where(config)["port"] = 0
    assert "greater than or equal to 1" in error_at(config, path)


@pytest.mark.parametrize("value", [True, "80", 80.0])
def test_port_must_be_a_whole_number_not_a_bool_or_text(value: Any) -> None:
    """YAML's `port: yes` is a bool: it must not become port 1."""
    config = node_config()
    config["services"][0]["port"] = value
    assert "valid integer" in error_at(config, "services[0].port")


def test_port_above_65535() -> None:
    config = node_config()
    config["services"][0]["port"] = 65536
    assert "65535" in error_at(config, "services[0].port")


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("vip", "10.0.300.10", "services[0].vip"),
        ("vip", "not-an-address", "services[0].vip"),
        ("real", "10.0.2", "services[0].reals[1].address"),
        ("laddr", "10.0.2.1.1", "dataplane.ports[1].local_addresses[0][0]"),
        ("gateway", "10.0.1.x", "dataplane.ports[0].gateway[0]"),
    ],
)
def test_bad_ip_address(field: str, value: str, path: str) -> None:
    config = node_config()
    if field == "vip":
        config["services"][0]["vip"] = value
    elif field == "real":
        config["services"][0]["reals"][1]["address"] = value
    elif field == "laddr":
        config["dataplane"]["ports"][1]["local_addresses"][0][0] = value
    else:
        config["dataplane"]["ports"][0]["gateway"][0] = value
    assert "not a valid" in error_at(config, path)


def test_bad_port_address() -> None:
    config = node_config()
    config["dataplane"]["ports"][0]["address"] = ["10.0.1.1/33"]
    errors_at = [where for where, _ in errors_of(config)]
    assert errors_at == ["dataplane.ports[0].address[0]"]


@pytest.mark.parametrize("lists", [1, 3])
def test_local_address_lists_must_match_the_workers(lists: int) -> None:
    config = node_config(workers=2)
    port = config["dataplane"]["ports"][1]
    port["local_addresses"] = [[f"10.0.2.{101 + i}"] for i in range(lists)]
    reason = error_at(config, "dataplane.ports[1].local_addresses")
    assert "2 workers" in reason
    assert f"{lists} lists" in reason


def test_local_address_listed_twice() -> None:
    config = node_config(workers=2)
    config["dataplane"]["ports"][1]["local_addresses"][1][0] = "10.0.2.101"
    reason = error_at(config, "dataplane.ports[1].local_addresses[1][0]")
    assert "local_addresses[0][0]" in reason


def test_duplicate_service() -> None:
    config = node_config()
    config["services"].append(dict(config["services"][0]))
    reason = error_at(config, "services[3]")
    assert "10.0.100.10:80/tcp" in reason
    assert "services[0]" in reason


def test_duplicate_real() -> None:
    config = node_config()
    config["services"][0]["reals"][1]["address"] = "10.0.2.11"
    assert "reals[0]" in error_at(config, "services[0].reals[1]")


def test_duplicate_port_name() -> None:
    config = node_config()
    config["dataplane"]["ports"][1]["name"] = "port0"
    assert "ports[0]" in error_at(config, "dataplane.ports[1].name")


def test_same_vip_and_port_with_another_protocol_is_not_a_duplicate() -> None:
    config = node_config()
    udp80 = dict(config["services"][1])
    udp80["port"] = 80
    config["services"].append(udp80)
    assert len(parse_config(config).services) == 4


def test_ipv6_real_behind_ipv4_vip() -> None:
    config = node_config()
    config["services"][0]["reals"][1]["address"] = "2001:db8:2::12"
    reason = error_at(config, "services[0].reals[1].address")
    assert "IPv6 real behind an IPv4 VIP" in reason


def test_ipv4_real_behind_ipv6_vip() -> None:
    config = node_config()
    config["services"][2]["reals"][0]["address"] = "10.0.2.11"
    assert "IPv4 real behind an IPv6 VIP" in error_at(config, "services[2].reals[0].address")


def test_nic_naming_a_missing_port() -> None:
    config = node_config()
    config["services"][0]["nic"] = "port9"
    reason = error_at(config, "services[0].nic")
    assert "port9" in reason
    assert "port0" in reason  # says which ports there are


def test_nic_naming_an_existing_port_is_valid() -> None:
    config = node_config()
    config["services"][0]["nic"] = "port0"
    assert parse_config(config).services[0].nic == "port0"


@pytest.mark.parametrize("size", [65536, 1000, 9])
def test_maglev_table_size_not_prime(size: int) -> None:
    config = node_config()
    config["services"][2]["maglev_table_size"] = size
    assert "prime" in error_at(config, "services[2].maglev_table_size")


def test_maglev_table_size_prime_is_valid() -> None:
    config = node_config()
    config["services"][2]["maglev_table_size"] = 251
    assert parse_config(config).services[2].maglev_table_size == 251


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("protocol", "sctp", "services[0].protocol"),
        ("scheduler", "random", "services[0].scheduler"),
        ("client_address", "x-forwarded-for", "services[0].client_address"),
    ],
)
def test_bad_choice(field: str, value: str, path: str) -> None:
    config = node_config()
    config["services"][0][field] = value
    assert "Input should be" in error_at(config, path)


def test_bad_timeouts() -> None:
    config = node_config()
    config["services"][0]["timeouts"] = {"tcp_syn": 0}
    config["dataplane"]["timeouts"] = {"udp": -5}
    errors = dict(errors_of(config))
    assert set(errors) == {"services[0].timeouts.tcp_syn", "dataplane.timeouts.udp"}


def test_reuse_delay_is_refused_with_what_replaced_it() -> None:
    config = node_config(local_ports={"reuse_delay": 60})
    assert "real_time_wait" in error_at(config, "dataplane.local_ports.reuse_delay")


def test_local_ports_last_below_first() -> None:
    config = node_config(local_ports={"first": 2000, "last": 1000})
    assert "2000" in error_at(config, "dataplane.local_ports.last")


def test_proxy_protocol_on_udp() -> None:
    config = node_config()
    config["services"][1]["client_address"] = "proxy-v2"
    assert "tcp" in error_at(config, "services[1].client_address")


def test_ipv6_reals_need_an_ipv6_local_address() -> None:
    config = node_config()
    config["dataplane"]["ports"][1]["local_addresses"] = [["10.0.2.101"]]
    assert "IPv6" in error_at(config, "services[2].reals")


def test_gateway_outside_the_port_subnets() -> None:
    config = node_config()
    config["dataplane"]["ports"][0]["gateway"] = ["10.0.9.254"]
    assert "not in a subnet" in error_at(config, "dataplane.ports[0].gateway[0]")


def test_every_error_is_reported_at_once() -> None:
    config = node_config()
    config["services"][0]["reals"][0]["weight"] = -1
    config["services"][1]["port"] = 0
    config["services"][2]["maglev_table_size"] = 100
    errors = errors_of(config)
    assert {where for where, _ in errors} == {
        "services[0].reals[0].weight",
        "services[1].port",
        "services[2].maglev_table_size",
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    message = str(caught.value)
    assert "3 errors" in message
    for where, reason in errors:
        assert f"{where}: {reason}" in message


def test_engine_refuses_a_bad_config() -> None:
    config = node_config()
    config["services"][0]["reals"][0]["weight"] = -1
    with pytest.raises(ConfigError) as caught:
        Engine(config)
    assert caught.value.errors[0][0] == "services[0].reals[0].weight"


# -- a running engine keeps its good config ------------------------------------------


def test_update_with_a_bad_config_changes_nothing(engine: Engine) -> None:
    flow = TcpFlow(engine, 51000)
    flow.handshake()
    bad = node_config()
    bad["services"][0]["reals"] = [{"address": "10.0.2.13", "port": 8080, "weight": -1}]
    with pytest.raises(ConfigError):
        engine.update(bad)
    duplicate = node_config()
    duplicate["services"].append(dict(duplicate["services"][0]))
    with pytest.raises(ConfigError):
        engine.update(duplicate)
    # The old services still run: rr goes on with both reals, the session continues.
    fresh = [TcpFlow(engine, cport) for cport in (51001, 51002)]
    for f in fresh:
        f.syn()
    assert {f.real for f in fresh} == {"10.0.2.11", "10.0.2.12"}
    flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"x"))
    assert engine.config.services[0].reals[0].weight == 100


def test_update_cannot_change_the_dataplane(engine: Engine) -> None:
    with pytest.raises(ValueError, match="dataplane"):
        engine.update(node_config(sessions_per_worker=8))


def test_update_can_add_and_remove_services(engine: Engine) -> None:
    config = node_config()
    config["services"].append(
        {
            "vip": VIP4,
            "port": 443,
            "protocol": "tcp",
            "scheduler": "rr",
            "reals": [{"address": "10.0.2.13", "port": 8443}],
        }
    )
    engine.update(config)
    flow = TcpFlow(engine, 51100, vip_port=443)
    assert flow.syn()[TCP].dport == 8443
    config["services"] = config["services"][1:]  # VIP4:80 removed
    engine.update(config)
    result = engine.trace(bytes(TcpFlow(engine, 51101).from_client("S", seq=1)))
    assert result["verdict"] == "control"  # no service there any more
    assert result["sent"] == []


# -- YAML files and the command line -------------------------------------------------

GOOD_YAML = """\
node: {name: lb1, cluster: demo}
dataplane:
  workers: 2
  idle_sleep_us: 50            # 0 = busy polling
  sessions_per_worker: 1000
  ports:
    - name: port0              # client side
      device: "net_af_xdp0,iface=lb1-p0"
      address: 10.10.1.1/24
      gateway: 10.10.1.254
    - name: port1              # real-server side
      device: "net_af_xdp1,iface=lb1-p1"
      address: 10.10.2.1/24
      local_addresses: [[10.10.2.101], [10.10.2.102]]   # one list per worker
api: {listen: "127.0.0.1:8080"}
store: {file: /var/lib/dplb/desired.yaml}
services:
  - vip: 10.10.100.10
    port: 80
    protocol: tcp
    scheduler: maglev
    client_address: proxy-v2
    nic: port0
    reals:
      - {address: 10.10.2.11, port: 8080, weight: 100}
      - {address: 10.10.2.12, port: 8080, weight: 100}
"""


def write(tmp_path: Path, text: str, name: str = "node.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_config_from_yaml(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD_YAML))
    assert cfg.node.name == "lb1"
    assert cfg.dataplane.workers == 2
    assert [str(a) for a in cfg.dataplane.ports[0].address] == ["10.10.1.1/24"]
    assert [[str(a) for a in w] for w in cfg.dataplane.ports[1].local_addresses] == [
        ["10.10.2.101"],
        ["10.10.2.102"],
    ]
    (svc,) = cfg.services
    assert (str(svc.vip), svc.port, svc.scheduler, svc.client_address, svc.nic) == (
        "10.10.100.10",
        80,
        "maglev",
        "proxy-v2",
        "port0",
    )
    assert [(str(r.address), r.port, r.weight) for r in svc.reals] == [
        ("10.10.2.11", 8080, 100),
        ("10.10.2.12", 8080, 100),
    ]

    # The loaded config runs an engine that forwards.
    engine = Engine(cfg)
    engine.set_neighbour("port0", "10.10.1.254", CLIENT_GW_MAC)
    engine.set_neighbour("port1", "10.10.2.11", "0a:00:00:00:02:11")
    engine.set_neighbour("port1", "10.10.2.12", "0a:00:00:00:02:12")
    syn = client_frame(CLIENT4, "10.10.100.10") / TCP(sport=52000, dport=80, flags="S", seq=1)
    out_port, out = send_one(engine, syn)
    assert out_port == 1
    assert out[TCP].dport == 8080


def test_load_config_reports_paths(tmp_path: Path) -> None:
    bad = GOOD_YAML.replace(
        "weight: 100}\n      - {address: 10.10.2.12", "weight: -1}\n      - {address: 10.10.2.12"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, bad))
    assert [where for where, _ in caught.value.errors] == ["services[0].reals[0].weight"]


def test_load_config_of_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "node: {name: lb1\ndataplane: [\n"))
    assert caught.value.errors[0][0] == "(file)"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "- just\n- a list\n"))
    assert caught.value.errors[0][0] == "(top)"


def test_harness_config_round_trips_through_yaml(tmp_path: Path) -> None:
    config = node_config(workers=2)
    cfg = load_config(write(tmp_path, yaml.safe_dump(config)))
    assert cfg == parse_config(config)


def run_cli(*args: str, script: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(DPLB_SCRIPT)] if script else [sys.executable, "-m", "dplb.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("script", [False, True], ids=["python-m", "script"])
def test_check_config_cli(tmp_path: Path, script: bool) -> None:
    if script and not DPLB_SCRIPT.exists():
        pytest.skip(f"{DPLB_SCRIPT} is not installed")
    good = write(tmp_path, GOOD_YAML, "good.yaml")
    result = run_cli("check-config", str(good), script=script)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "2 workers" in result.stdout

    bad_text = GOOD_YAML.replace("maglev", "maglev\n    maglev_table_size: 65536").replace(
        "port: 80\n", "port: 0\n"
    )
    bad = write(tmp_path, bad_text, "bad.yaml")
    result = run_cli("check-config", str(bad), script=script)
    assert result.returncode == 1
    assert "services[0].port" in result.stderr
    assert "services[0].maglev_table_size" in result.stderr
    assert "prime" in result.stderr
    assert str(bad) in result.stderr
    assert result.stdout == ""

    result = run_cli("check-config", str(tmp_path / "missing.yaml"), script=script)
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr


def test_check_config_main_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dplb.cli import main

    config = node_config()
    config["services"][0]["reals"][0]["address"] = "2001:db8:2::11"
    bad = write(tmp_path, yaml.safe_dump(config))
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "services[0].reals[0].address" in err
    assert "IPv6 real behind an IPv4 VIP" in err


def test_vip_that_is_a_local_address() -> None:
    config = node_config()
    config["services"][0]["vip"] = "10.0.2.101"
    config["services"][0]["reals"] = [{"address": "10.0.2.11", "port": 8080}]
    assert "local address" in error_at(config, "services[0].vip")


def test_make_engine_uses_the_harness_config() -> None:
    engine = make_engine(workers=2)
    assert engine.config == parse_config(node_config(workers=2))
    assert engine.owner(CLIENT4, 1, VIP4, 80) in (0, 1)


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("vip", "services[2].vip"),
        ("real", "services[2].reals[0].address"),
        ("laddr", "dataplane.ports[1].local_addresses[0][1]"),
        ("gateway", "dataplane.ports[0].gateway[1]"),
        ("port", "dataplane.ports[1].address[1]"),
    ],
)
def test_a_scoped_ipv6_address_is_refused_where_it_is(field: str, path: str) -> None:
    # The engine knows no zones: `fe80::1%eth0` must be refused here, with its field,
    # not by the engine once the config is stored.
    config = node_config()
    scoped = "fe80::1%eth0"
    if field == "vip":
        config["services"][2]["vip"] = scoped
    elif field == "real":
        config["services"][2]["reals"][0]["address"] = "fe80::11%eth1"
    elif field == "laddr":
        config["dataplane"]["ports"][1]["local_addresses"][0][1] = scoped
    elif field == "gateway":
        config["dataplane"]["ports"][0]["gateway"][1] = scoped
    else:
        config["dataplane"]["ports"][1]["address"][1] = "fe80::1%eth1/64"
    assert "has a zone" in error_at(config, path)


@pytest.mark.parametrize(
    ("vip", "why"),
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "0.0.0.0/8"),
        ("255.255.255.255", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("239.1.2.3", "multicast"),
        ("240.0.0.1", "reserved"),
        ("169.254.1.1", "link-local"),
        ("127.0.0.1", "loopback"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("ff02::1", "multicast"),
        ("fe80::1", "link-local"),
        ("10.0.1.1", "the address of dataplane.ports[0]"),
        ("10.0.1.255", "the broadcast address of 10.0.1.0/24"),
    ],
)
def test_a_vip_that_cannot_take_connections_is_refused(vip: str, why: str) -> None:
    config = node_config()
    index = 2 if ":" in vip else 0
    config["services"][index]["vip"] = vip
    if ":" not in vip:
        config["services"][1]["vip"] = "10.0.100.11"  # a second service of the same VIP
    reason = error_at(config, f"services[{index}].vip")
    assert "cannot take connections" in reason and why in reason


@pytest.mark.parametrize("real", ["0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255"])
def test_a_real_that_cannot_take_connections_is_refused(real: str) -> None:
    config = node_config()
    config["services"][0]["reals"][1]["address"] = real
    assert "cannot take connections" in error_at(config, "services[0].reals[1].address")


def test_ordinary_vips_and_reals_are_valid() -> None:
    config = node_config()
    config["services"][0]["vip"] = "192.0.2.10"
    config["services"][2]["vip"] = "2001:db8:ffff::1"
    config["services"][0]["reals"][0]["address"] = "10.0.2.254"
    parse_config(config)


@pytest.mark.parametrize(
    ("store", "path", "reason"),
    [
        ({"etcd": {"endpoints": ["10.0.0.1:2379"], "cert_file": "/etc/c.pem"}},
         "store.etcd.key_file", "a client certificate needs both cert_file and key_file"),
        ({"etcd": {"endpoints": ["10.0.0.1:2379"], "key_file": "/etc/k.pem"}},
         "store.etcd.cert_file", "a client certificate needs both cert_file and key_file"),
        ({"etcd": {"endpoints": ["10.0.0.1:2379"], "user": "dplb"}},
         "store.etcd.password", "etcd authentication needs both user and password"),
        ({"etcd": ["http://10.0.0.1:2379", "https://10.0.0.2:2379"]},
         "store.etcd.endpoints", "all https:// or none: TLS is one setting for every endpoint"),
        ({"file": "/var/lib/dplb/desired.yaml", "etcd": ["10.0.0.1:2379"]},
         "store.etcd", "a node has one store: store.file or store.etcd, not both"),
        ({"etcd": []}, "store.etcd.endpoints",
         "List should have at least 1 item after validation, not 0"),
    ],
)  # fmt: skip
def test_a_bad_etcd_store_names_its_field(store: dict[str, Any], path: str, reason: str) -> None:
    cfg = node_config()
    cfg["api"] = {"audit_log": "/var/lib/dplb/audit.jsonl"}
    cfg["store"] = store
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert info.value.errors == [(path, reason)]


def test_an_etcd_store_needs_an_audit_log_file() -> None:
    cfg = node_config()
    cfg["store"] = {"etcd": ["10.0.0.1:2379"]}
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert [p for p, _ in info.value.errors] == ["api.audit_log"]
    cfg["api"] = {"audit_log": "/var/lib/dplb/audit.jsonl"}
    assert parse_config(cfg).store.etcd is not None
