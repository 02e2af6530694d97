"""`dplb_bgp_*`: the BIRD controller's state in the Prometheus text format, added to the
node's /metrics (labels: cluster, node; per BGP session `session`, the BIRD protocol's
name: as many as bird.conf declares)."""

from __future__ import annotations

from dplb.bgp.controller import FAILURE_REASONS, BgpStatus
from dplb.prom_text import Families
from dplb.prom_text import escape as _escape


def bgp_metrics_text(status: BgpStatus, base: str) -> str:
    """`base`: the label text every series carries (`cluster="c",node="n"`)."""
    out = Families(base)
    family = out.family

    family(
        "dplb_bgp_bird_up",
        "gauge",
        "1 while the node's BIRD answers birdc.",
        [("", status.bird == "up")],
    )
    family(
        "dplb_bgp_in_sync",
        "gauge",
        "1 while BIRD announces what the node wants announced (0: a reconfiguration failed).",
        [("", status.in_sync)],
    )
    family(
        "dplb_bgp_draining",
        "gauge",
        "1 while the node is drained or draining (dplb ctl drain, or a stop).",
        [("", status.drain.state != "none")],
    )
    family(
        "dplb_bgp_announced_routes",
        "gauge",
        "Routes BIRD took from dplb, by kind: vip, local_address, backup (a peer's).",
        [
            (f',kind="{kind}"', sum(1 for r in status.announced if r.kind == kind))
            for kind in ("vip", "local_address", "backup")
        ],
    )
    family(
        "dplb_bgp_reconfigurations_total",
        "counter",
        "Times BIRD took a new routes file (birdc configure: Reconfigured).",
        [("", status.reconfigurations)],
    )
    family(
        "dplb_bgp_reconfiguration_failures_total",
        "counter",
        "Routes files not taken, by reason: invalid_config (bird -p), refused (birdc "
        "configure), bird_unavailable (not installed or not running).",
        [(f',reason="{r}"', status.failures.get(r, 0)) for r in FAILURE_REASONS],
    )
    family(
        "dplb_bgp_sessions_established",
        "gauge",
        "BGP sessions of the node's BIRD in state Established.",
        [("", status.sessions_established)],
    )
    family(
        "dplb_bgp_session_up",
        "gauge",
        "1 while this BGP session of BIRD is Established.",
        [(f',session="{_escape(s.name)}"', s.established) for s in status.sessions],
    )
    family(
        "dplb_bgp_session_exported_routes",
        "gauge",
        "Routes BIRD exports to this BGP session.",
        [(f',session="{_escape(s.name)}"', s.routes_exported) for s in status.sessions],
    )
    return out.text()
