"""Property-based tests (Hypothesis): the store's YAML writer reads back what it wrote for
any plain data; a config parsed, dumped and parsed again is the same config, and a field
made invalid is refused at its own path; the cluster's split of a config into its
node-local and shared parts puts it back together unchanged."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import node_config
from dplb.cluster.layout import local_part, merge, split
from dplb.config import ConfigError, parse_config
from dplb.store import dump_yaml, load_yaml

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
plain = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal as data; floats equal as numbers (and -0.0 as 0.0)."""
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=0, abs_tol=0) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@SETTINGS
@given(st.dictionaries(st.text(), plain, max_size=6))
def test_the_yaml_writer_reads_back_what_it_wrote(data: dict[str, Any]) -> None:
    text = dump_yaml(data)
    assert same(load_yaml(text) if data else {}, data), text


octet = st.integers(min_value=1, max_value=254)
reals = st.lists(
    st.fixed_dictionaries(
        {
            "address": st.builds(lambda a, b: f"10.0.{a}.{b}", st.integers(2, 2), octet),
            "port": st.integers(1, 65535),
        },
        optional={"weight": st.integers(0, 65535), "enabled": st.booleans()},
    ),
    max_size=5,
    unique_by=lambda r: (r["address"], r["port"]),
)
services = st.lists(
    st.fixed_dictionaries(
        {
            "vip": st.builds(lambda a, b: f"10.{a}.{b}.10", st.integers(100, 120), octet),
            "port": st.integers(1, 65535),
            "reals": reals,
        },
        optional={
            "protocol": st.sampled_from(["tcp", "udp"]),
            "scheduler": st.sampled_from(["rr", "wrr", "wlc", "maglev"]),
        },
    ),
    max_size=5,
    unique_by=lambda s: (s["vip"], s["port"], s.get("protocol", "tcp")),
)


@SETTINGS
@given(services)
def test_a_config_dumped_and_parsed_again_is_the_same(svcs: list[dict[str, Any]]) -> None:
    cfg = parse_config(node_config(1, svcs))
    again = parse_config(load_yaml(dump_yaml(cfg.model_dump(mode="json", exclude_unset=True))))
    assert again == cfg


@SETTINGS
@given(services.filter(lambda s: any(x["reals"] for x in s)), st.data())
def test_a_bad_weight_is_refused_at_its_own_path(svcs: list[dict[str, Any]], data: Any) -> None:
    i = data.draw(st.sampled_from([n for n, s in enumerate(svcs) if s["reals"]]))
    j = data.draw(st.integers(0, len(svcs[i]["reals"]) - 1))
    svcs[i]["reals"][j]["weight"] = data.draw(st.integers(65536, 2**40) | st.integers(-(2**40), -1))
    try:
        parse_config(node_config(1, svcs))
    except ConfigError as exc:
        assert [p for p, _ in exc.errors] == [f"services[{i}].reals[{j}].weight"]
    else:
        raise AssertionError("a weight out of range was accepted")


@SETTINGS
@given(services, st.lists(st.text(min_size=16, max_size=20), max_size=3))
def test_the_cluster_split_puts_a_config_back_together(
    svcs: list[dict[str, Any]], tokens: list[str]
) -> None:
    cfg = node_config(1, svcs)
    cfg["api"] = {
        "listen": "127.0.0.1:8080",
        "tokens": [{"name": f"t{n}", "token": t} for n, t in enumerate(tokens)],
    }
    shared_api, shared_services = split(cfg)
    assert merge(local_part(cfg), shared_api, shared_services) == cfg
    assert "services" not in local_part(cfg) and "tokens" not in local_part(cfg)["api"]
