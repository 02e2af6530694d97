"""`dplb_sync_*`: session sync as the node's /metrics shows it (labels: cluster, node; per
peer `peer`, the peer's node name; drops by `reason`). The workers' side (records pushed,
ring full, installed, adopted) is per core in the engine's own families."""

from __future__ import annotations

from dplb.prom_text import Families, escape
from dplb.sync.manager import SyncStatus

# The sync thread's counters (SyncService.stats()) exported as counters: (key, name, help).
_COUNTERS = (
    ("sent_datagrams", "dplb_sync_sent_datagrams_total", "Datagrams sent to peers."),
    ("sent_records", "dplb_sync_sent_records_total", "Session records sent (each once per peer)."),
    ("sent_bytes", "dplb_sync_sent_bytes_total", "UDP payload bytes sent to peers."),
    (
        "received_datagrams",
        "dplb_sync_received_datagrams_total",
        "Datagrams received that authenticated.",
    ),
    (
        "received_records",
        "dplb_sync_received_records_total",
        "Session records received from peers.",
    ),
    ("applied", "dplb_sync_applied_total", "Received records handed to the workers to install."),
    (
        "install_refused",
        "dplb_sync_install_refused_total",
        "Received records the engine refused (a worker's install ring full, an owner mismatch).",
    ),
    ("full_sync_records", "dplb_sync_full_sync_records_total", "Records pulled by full syncs."),
)


def sync_metrics_text(status: SyncStatus, base: str) -> str:
    out = Families(base)
    stats = status.stats
    out.family(
        "dplb_sync_ready",
        "gauge",
        "1 once the node holds its peers' sessions (full sync done, failed or not needed): "
        "until then it announces no VIP.",
        [("", status.ready)],
    )
    for key, name, help_ in _COUNTERS:
        out.family(name, "counter", help_, [("", float(stats.get(key, 0)))])
    dropped = stats.get("dropped") or {}
    out.family(
        "dplb_sync_dropped_total",
        "counter",
        "Datagrams dropped on receipt, by reason (malformed, bad_version, unknown_key, "
        "auth_failed, replayed, stale_epoch, unknown_peer).",
        [(f',reason="{escape(str(r))}"', float(n)) for r, n in sorted(dropped.items())],
    )
    out.family(
        "dplb_sync_peers_up",
        "gauge",
        "Peers heard from lately (an authenticated datagram within a few seconds).",
        [("", sum(1 for p in status.peers if p.up))],
    )
    peer = [(f',peer="{escape(p.node)}"', p) for p in status.peers]
    out.family("dplb_sync_peer_up", "gauge", "1 while this peer is heard from.",
               [(labels, p.up) for labels, p in peer])  # fmt: skip
    out.family(
        "dplb_sync_peer_records_total",
        "counter",
        "Session records received from this peer.",
        [(labels, p.records) for labels, p in peer],
    )
    out.family(
        "dplb_sync_peer_gaps_total",
        "counter",
        "Datagrams of this peer never received (sequence gaps): the refresh repairs them.",
        [(labels, p.gaps) for labels, p in peer],
    )
    out.family(
        "dplb_sync_peer_lag_seconds",
        "gauge",
        "Time from a peer's send to receipt here, p50 and p99 of recent datagrams.",
        [
            (f'{labels},quantile="{q}"', v)
            for labels, p in peer
            for q, v in (("0.5", p.lag_p50_seconds), ("0.99", p.lag_p99_seconds))
            if v is not None
        ],
    )
    return out.text()
