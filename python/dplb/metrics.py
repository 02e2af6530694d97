"""Prometheus metrics of a node (DESIGN section 8): a custom collector that reads the
dataplane at scrape time (never a Python object updated per packet), and `GET /metrics`.

Every series carries `cluster` and `node`; per core `core`, per service `vip`, `port`,
`protocol`, per real also `real` (address:port), per NIC `nic`, per local address `core`
and `address`. Counters end in `_total`, times are seconds. There is no per-client label
(nor a per-real one on local ports: the busiest real stands for the others).

A node with 100,000 reals exposes about a million samples: the collector keeps the
label text of each service and real while the engine snapshot stays the same, and
`render()` writes the text format straight from columns of values. `collect()` gives the
same families to prometheus_client (a registry, `generate_latest`) for other uses."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dplb import __version__
from dplb.dataplane import COUNTER_FIELDS, CounterTable, Dataplane, Telemetry
from dplb.engine import DROP_REASONS
from dplb.health import CheckerStats, app_health
from dplb.store import ApplyStatus, StoreHealth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (service or real, direction) -> counter field of CounterTable
_FIELD = {name: i for i, name in enumerate(COUNTER_FIELDS)}
_NFIELDS = len(COUNTER_FIELDS)

# Runtime drop counters that join the engine's named reasons in dplb_core_drops_total.
_RUNTIME_DROPS = {
    "tx_dropped": "tx_queue_full",
    "handover_dropped": "handover_full",
    "multi_segment_dropped": "multi_segment",
}

# Burst-processing histogram: the runtime's log2 buckets (bucket i: under 2**i ns),
# exposed from 2**7 ns (128 ns) to 2**24 ns (16.8 ms).
_HISTOGRAM_FIRST, _HISTOGRAM_LAST = 7, 24

# Engine counters per core: (dict key, metric name, help).
_CORE_COUNTERS = (
    (
        "rx_packets",
        "dplb_core_receive_packets_total",
        "Packets the core received from its NIC queues.",
    ),
    ("rx_bytes", "dplb_core_receive_bytes_total", "Bytes the core received from its NIC queues."),
    ("tx_packets", "dplb_core_transmit_packets_total", "Packets the core sent."),
    ("tx_bytes", "dplb_core_transmit_bytes_total", "Bytes the core sent."),
    ("sessions_created", "dplb_core_sessions_created_total", "Sessions the core created."),
    ("sessions_expired", "dplb_core_sessions_expired_total", "Sessions that timed out."),
    ("sessions_reset", "dplb_core_sessions_reset_total", "Sessions removed on request (API)."),
    ("to_control", "dplb_core_control_packets_total", "Packets passed to the control path."),
    ("icmp_translated", "dplb_core_icmp_translated_total", "ICMP errors translated."),
    (
        "awaiting_neighbour",
        "dplb_core_awaiting_neighbour_packets_total",
        "Packets held by the control side until a next hop's MAC was known.",
    ),
    (
        "local_port_holds_cut",
        "dplb_core_local_port_holds_cut_total",
        "Local port holds (a real's TIME_WAIT) ended early: the core's hold table was full.",
    ),
)
_CLIENT_ADDRESS_EVENTS = (
    "toa_inserted",
    "toa_no_room",
    "proxy_header_sent",
    "proxy_header_resent",
    "proxy_header_translated",
    "proxy_refused",
    "proxy_invalid",
    "syn_data_stripped",
)
_NIC_COUNTERS = (
    ("rx_packets", "dplb_nic_receive_packets_total", "Packets the NIC received."),
    ("tx_packets", "dplb_nic_transmit_packets_total", "Packets the NIC sent."),
    ("rx_bytes", "dplb_nic_receive_bytes_total", "Bytes the NIC received."),
    ("tx_bytes", "dplb_nic_transmit_bytes_total", "Bytes the NIC sent."),
    ("rx_missed", "dplb_nic_receive_missed_total", "Packets the NIC dropped: RX queues full."),
    ("rx_errors", "dplb_nic_receive_errors_total", "Erroneous packets received."),
    ("tx_errors", "dplb_nic_transmit_errors_total", "Packets the NIC failed to send."),
    ("rx_nombuf", "dplb_nic_receive_nombuf_total", "RX failures for want of an mbuf."),
)
_CONTROL_COUNTERS = (
    ("arp_replies", "dplb_control_arp_replies_total", "ARP replies for VIPs and local addresses."),
    ("nd_replies", "dplb_control_nd_replies_total", "Neighbour advertisements sent."),
    ("to_kernel", "dplb_control_to_kernel_packets_total", "Packets passed to the kernel."),
    ("from_kernel", "dplb_control_from_kernel_packets_total", "Packets the kernel sent out."),
    ("resolutions_sent", "dplb_control_resolutions_total", "ARP/ND requests for next hops."),
    ("held", "dplb_control_held_packets_total", "Packets held until their next hop answered."),
    (
        "held_expired",
        "dplb_control_held_expired_total",
        "Held packets whose next hop never answered.",
    ),
    ("dropped", "dplb_control_dropped_packets_total", "Packets the control path dropped."),
    ("loops", "dplb_control_loops_total", "Turns of the control lcore's loop."),
    (
        "neighbours_ignored",
        "dplb_control_neighbours_ignored_total",
        "ARP/ND senders not learned: not a next hop the node asked for or knows.",
    ),
    (
        "neighbours_full",
        "dplb_control_neighbour_table_full_total",
        "Next hops not learned: the neighbour table was full.",
    ),
    (
        "priority_taken",
        "dplb_control_priority_packets_total",
        "Packets the control lcore took from its priority ring (ARP/ND, BGP/BFD, own connections).",
    ),
    (
        "rest_taken",
        "dplb_control_rest_packets_total",
        "Packets the control lcore took from its ring of the rest (rate-limited per worker).",
    ),
    (
        "priority_ring_full",
        "dplb_control_priority_ring_full_total",
        "Priority control packets dropped: the priority ring was full.",
    ),
    (
        "rest_ring_full",
        "dplb_control_rest_ring_full_total",
        "Other control packets dropped: their ring was full.",
    ),
)
# (field of CounterTable, metric suffix, help) for services and reals alike. The unit
# goes last; incoming/outgoing as node_exporter's node_ipvs_incoming_bytes_total (in:
# client toward real).
_TRAFFIC = (
    ("connections", "connections_total", "Connections (sessions) opened."),
    ("packets_in", "incoming_packets_total", "Packets from clients toward reals."),
    ("packets_out", "outgoing_packets_total", "Packets from reals toward clients."),
    ("bytes_in", "incoming_bytes_total", "Bytes from clients toward reals."),
    ("bytes_out", "outgoing_bytes_total", "Bytes from reals toward clients."),
)

# Passive health: per real only.
_PASSIVE = (
    (
        "syn_unanswered",
        "dplb_real_syn_unanswered_total",
        "Client SYNs the real never answered (their session expired waiting for it).",
    ),
    ("resets_from_real", "dplb_real_resets_total", "Resets the real sent."),
)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_labels(names: Sequence[str], values: Sequence[str]) -> str:
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True))


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(slots=True)
class Labels:
    """Label sets of one kind of entity (the node, cores, services, reals, NICs), with
    their text: shared by every family of that entity."""

    names: tuple[str, ...]
    values: list[tuple[str, ...]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def add(self, values: tuple[str, ...]) -> None:
        self.values.append(values)
        self.text.append(render_labels(self.names, values))

    def extended(self, name: str, value: str) -> Labels:
        """The same label sets with one more label."""
        out = Labels((*self.names, name))
        for values in self.values:
            out.add((*values, value))
        return out


@dataclass(slots=True)
class Family:
    """A metric family as columns: the i-th sample has labels.values[i] and values[i]."""

    name: str
    kind: str  # "counter", "gauge"
    help: str
    labels: Labels
    values: Sequence[int | float]


@dataclass(slots=True)
class Histogram:
    """Cumulative buckets per label set: (upper bounds, counts per bound, sum, count)."""

    name: str
    help: str
    labels: Labels
    bounds: list[float]
    buckets: list[list[int]] = field(default_factory=list)
    sums: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


def _number(v: int | float) -> str:
    if isinstance(v, int):
        return str(v)
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def render(families: Sequence[Family | Histogram]) -> str:
    """The Prometheus text format (0.0.4) of `families`."""
    out: list[str] = []
    for f in families:
        if isinstance(f, Histogram):
            out.append(f"# HELP {f.name} {f.help}\n# TYPE {f.name} histogram")
            les = [_number(b) for b in f.bounds]
            for text, buckets, total, count in zip(
                f.labels.text, f.buckets, f.sums, f.counts, strict=True
            ):
                sep = "," if text else ""
                for le, n in zip(les, buckets, strict=True):
                    out.append(f'{f.name}_bucket{{{text}{sep}le="{le}"}} {n}')
                out.append(f'{f.name}_bucket{{{text}{sep}le="+Inf"}} {count}')
                out.append(f"{f.name}_sum{{{text}}} {_number(total)}")
                out.append(f"{f.name}_count{{{text}}} {count}")
            continue
        if not f.values:
            continue
        name = f.name
        out.append(f"# HELP {name} {f.help}\n# TYPE {name} {f.kind}")
        if f.values and isinstance(f.values[0], float):
            out.extend(
                [
                    f"{name}{{{t}}} {_number(v)}"
                    for t, v in zip(f.labels.text, f.values, strict=True)
                ]
            )
        else:
            out.extend([f"{name}{{{t}}} {v}" for t, v in zip(f.labels.text, f.values, strict=True)])
    out.append("")
    return "\n".join(out)


def to_metric(f: Family | Histogram) -> Metric:
    """A family as prometheus_client's metric family."""
    names = list(f.labels.names)
    if isinstance(f, Histogram):
        h = HistogramMetricFamily(f.name, f.help, labels=names)
        for values, buckets, total, count in zip(
            f.labels.values, f.buckets, f.sums, f.counts, strict=True
        ):
            pairs = [(_number(b), float(n)) for b, n in zip(f.bounds, buckets, strict=True)]
            pairs.append(("+Inf", float(count)))
            h.add_metric(list(values), pairs, total)
        return h
    metric: Metric
    if f.kind == "counter":
        metric = CounterMetricFamily(f.name, f.help, labels=names)
    else:
        metric = GaugeMetricFamily(f.name, f.help, labels=names)
    for values, v in zip(f.labels.values, f.values, strict=True):
        metric.add_metric(list(values), float(v))
    return metric


RealKey = tuple[str, int, str, str, int]  # vip, port, protocol, real address, real port


@dataclass(slots=True)
class _SnapshotLabels:
    """What the collector derives from one engine snapshot and keeps until it changes."""

    generation: int
    services: Labels
    reals: Labels
    real_weight: list[int]
    real_enabled: list[int]
    real_keys: list[RealKey]


class DataplaneCollector(Collector):
    """Reads `dataplane.telemetry()` at each scrape. `apply_status` gives the
    reconciler's status (config versions); `real_up` the health checker's verdicts by
    (vip, port, protocol, address, port): a real missing there is counted up; `health`
    the checker's own counters (its cost), None while it does not run."""

    def __init__(
        self,
        dataplane: Dataplane,
        *,
        cluster: str,
        node: str,
        apply_status: Callable[[], ApplyStatus | None] | None = None,
        real_up: Callable[[], Mapping[RealKey, bool]] | None = None,
        store_health: Callable[[], StoreHealth] | None = None,
        health: Callable[[], CheckerStats | None] | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.store_health = store_health
        self.apply_status = apply_status
        self.real_up = real_up
        self.health = health
        self.base = Labels(("cluster", "node"))
        self.base.add((cluster, node))
        self._snapshot: _SnapshotLabels | None = None

    # -- prometheus_client --------------------------------------------------------
    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering must not scrape the engine

    def collect(self) -> Iterator[Metric]:
        for f in self.families():
            yield to_metric(f)

    def render(self) -> str:
        return render(self.families())

    # -- the families -------------------------------------------------------------
    def families(self) -> list[Family | Histogram]:
        t = self.dataplane.telemetry()
        out: list[Family | Histogram] = []
        self._node(t, out)
        self._cores(t, out)
        self._services(t.counters, out)
        self._nics(t, out)
        self._local_addresses(t, out)
        self._health(out)
        return out

    def _health(self, out: list[Family | Histogram]) -> None:
        stats = self.health() if self.health is not None else None
        if stats is None:
            return
        base = self.base
        results = Labels((*base.names, "result"))
        for result in ("pass", "fail"):
            results.add((*base.values[0], result))
        out.append(
            Family(
                "dplb_health_checks_total",
                "counter",
                "Health checks of reals run, by result.",
                results,
                [stats.checks["pass"], stats.checks["fail"]],
            )
        )
        for name, kind, text, value in (
            (
                "dplb_health_check_seconds_total",
                "counter",
                "Time the health checks took, summed (waiting for the reals included).",
                stats.check_seconds,
            ),
            (
                "dplb_health_checker_busy_seconds_total",
                "counter",
                "Time the checker's own work took on the event loop (scheduling, results).",
                stats.busy_seconds,
            ),
            (
                "dplb_health_checks_late_total",
                "counter",
                "Checks started more than one interval after they were due (checker behind).",
                stats.late,
            ),
            (
                "dplb_health_checks_in_flight",
                "gauge",
                "Health checks under way.",
                stats.in_flight,
            ),
            (
                "dplb_health_applies_total",
                "counter",
                "Engine snapshots made because reals went down or up.",
                stats.applies,
            ),
            (
                "dplb_health_apply_errors_total",
                "counter",
                "Health changes the dataplane refused (retried).",
                stats.apply_errors,
            ),
            (
                "dplb_health_passive_downs_total",
                "counter",
                "Reals marked down by the passive checks (SYNs unanswered, resets).",
                stats.passive_downs,
            ),
            (
                "dplb_health_link_downs_total",
                "counter",
                "Reals marked down because the link of their port went down.",
                stats.link_downs,
            ),
        ):
            out.append(Family(name, kind, text, base, [value]))

    def _node(self, t: Telemetry, out: list[Family | Histogram]) -> None:
        base = self.base
        out.append(Family("dplb_up", "gauge", "1 while the node's dataplane answers.", base, [1]))
        info = base.extended("version", __version__).extended("dataplane", t.kind)
        info = info.extended("dpdk", t.dpdk_version or "").extended(
            "python", platform.python_version()
        )
        out.append(Family("dplb_info", "gauge", "Versions of the node's software.", info, [1]))
        out.append(
            Family(
                "dplb_start_time_seconds",
                "gauge",
                "When the dataplane started (Unix time).",
                base,
                [float(t.started_at)],
            )
        )
        status = self.apply_status() if self.apply_status is not None else None
        if status is not None:
            if status.applied_version is not None:
                out.append(
                    Family(
                        "dplb_config_applied_version",
                        "gauge",
                        "The config version the node runs.",
                        base,
                        [status.applied_version],
                    )
                )
            if status.last_version is not None:
                out.append(
                    Family(
                        "dplb_config_last_version",
                        "gauge",
                        "The newest config version the node has looked at.",
                        base,
                        [status.last_version],
                    )
                )
            out.append(
                Family(
                    "dplb_config_refused",
                    "gauge",
                    "1 when the newest config version was refused (the node runs an older one).",
                    base,
                    [1 if status.last_result == "refused" else 0],
                )
            )
            if status.last_at is not None:
                out.append(
                    Family(
                        "dplb_config_last_change_timestamp_seconds",
                        "gauge",
                        "When the node last applied or refused a config version (Unix time).",
                        base,
                        [status.last_at.timestamp()],
                    )
                )
        out.append(
            Family(
                "dplb_config_snapshot_generation",
                "gauge",
                "The engine's service snapshot in force: it grows at each apply that changed "
                "something, never for a config that changed nothing.",
                base,
                [t.counters.generation],
            )
        )
        self._store(out)
        sessions = sum(int(c["sessions"]) for c in t.cores)
        capacity = sum(int(c["session_capacity"]) for c in t.cores)
        out.append(
            Family(
                "dplb_session_entries", "gauge", "Sessions in the node's tables.", base, [sessions]
            )
        )
        out.append(
            Family(
                "dplb_session_entries_limit",
                "gauge",
                "Sessions the node's tables can hold.",
                base,
                [capacity],
            )
        )
        # Log records lost, wherever it happened.
        dropped = Labels((*base.names, "reason"))
        drop_values: list[int] = []
        dropped.add((*base.values[0], "ring_full"))
        drop_values.append(sum(int(c.get("log_dropped", 0)) for c in t.cores))
        lg = t.logger
        if lg is not None:
            dropped.add((*base.values[0], "queue_full"))
            drop_values.append(int(lg["events_dropped"]))
            dropped.add((*base.values[0], "write_error"))
            drop_values.append(int(lg["lines_lost"]))
        out.append(
            Family(
                "dplb_logger_dropped_total",
                "counter",
                "Log records lost: a worker's log ring was full, the event queue was full, "
                "or the file could not be written.",
                dropped,
                drop_values,
            )
        )
        if lg is not None:
            for key, name, text in (
                ("lines_written", "dplb_logger_lines_total", "Lines the logger wrote."),
                ("bytes_written", "dplb_logger_written_bytes_total", "Bytes the logger wrote."),
                ("rotations", "dplb_logger_rotations_total", "Log files rotated."),
                ("write_errors", "dplb_logger_write_errors_total", "Failed log writes."),
            ):
                out.append(Family(name, "counter", text, base, [int(lg[key])]))
            out.append(
                Family(
                    "dplb_logger_paused",
                    "gauge",
                    "1 while the logger is paused.",
                    base,
                    [int(bool(lg["paused"]))],
                )
            )
        lat = t.latency
        if lat is not None and lat.get("enabled"):
            for key, name, text in (
                ("min_ns", "dplb_dpdk_latency_min_seconds", "Lowest rx-to-tx latency sampled."),
                ("avg_ns", "dplb_dpdk_latency_avg_seconds", "Average rx-to-tx latency sampled."),
                ("max_ns", "dplb_dpdk_latency_max_seconds", "Highest rx-to-tx latency sampled."),
                ("jitter_ns", "dplb_dpdk_latency_jitter_seconds", "Jitter of the latency."),
            ):
                out.append(
                    Family(
                        name,
                        "gauge",
                        text + " (DPDK latencystats, all ports).",
                        base,
                        [float(lat[key]) / 1e9],
                    )
                )
        if t.control is not None:
            for key, name, text in _CONTROL_COUNTERS:
                if key in t.control:
                    out.append(Family(name, "counter", text, base, [int(t.control[key])]))
            if "last_loop_age_ns" in t.control:
                out.append(
                    Family(
                        "dplb_control_last_loop_age_seconds",
                        "gauge",
                        "Since the control lcore's loop last turned (stuck past 1 s).",
                        base,
                        [int(t.control["last_loop_age_ns"]) / 1e9],
                    )
                )
        if t.liveness is not None:
            out.append(
                Family(
                    "dplb_dataplane_alive",
                    "gauge",
                    "1 while the data plane is alive: its loops turn and its ports receive "
                    "(0: /api/v1/health says failed, and why).",
                    base,
                    [int(t.liveness.state != "failed")],
                )
            )

    def _store(self, out: list[Family | Histogram]) -> None:
        if self.store_health is None:
            return
        health = self.store_health()
        labels = self.base.extended("store", health.kind)
        out.append(
            Family(
                "dplb_store_up",
                "gauge",
                "1 while the node reaches its config store (etcd with quorum, or its file).",
                labels,
                [1 if health.up else 0],
            )
        )
        for name, value, text in (
            (
                "dplb_store_failovers_total",
                health.failovers,
                "Requests moved to the next endpoint.",
            ),
            (
                "dplb_store_watch_restarts_total",
                health.watch_restarts,
                "Config watches that broke and were made again (from the last revision seen).",
            ),
            (
                "dplb_store_relists_total",
                health.relists,
                "Whole config re-reads because the watch's revision was compacted.",
            ),
        ):
            out.append(Family(name, "counter", text, labels, [value]))
        if health.last_contact is not None:
            age = max(0.0, time.time() - health.last_contact.timestamp())
            out.append(
                Family(
                    "dplb_store_last_contact_age_seconds",
                    "gauge",
                    "Seconds since the store last answered this node.",
                    labels,
                    [0.0 if health.kind == "file" else age],
                )
            )

    def _cores(self, t: Telemetry, out: list[Family | Histogram]) -> None:
        cores = Labels((*self.base.names, "core"))
        for i, _ in enumerate(t.cores):
            cores.add((*self.base.values[0], str(i)))
        for key, name, text in _CORE_COUNTERS:
            out.append(Family(name, "counter", text, cores, [int(c.get(key, 0)) for c in t.cores]))
        out.append(
            Family(
                "dplb_core_session_entries",
                "gauge",
                "Sessions in the core's table.",
                cores,
                [int(c["sessions"]) for c in t.cores],
            )
        )
        out.append(
            Family(
                "dplb_core_session_entries_limit",
                "gauge",
                "Sessions the core's table can hold.",
                cores,
                [int(c["session_capacity"]) for c in t.cores],
            )
        )
        handover = Labels((*cores.names, "direction"))
        handover_values: list[int] = []
        for values, c in zip(cores.values, t.cores, strict=True):
            handover.add((*values, "out"))
            handover_values.append(int(c.get("handed_over", 0)))
            handover.add((*values, "in"))
            handover_values.append(int(c.get("handed_in", 0)))
        out.append(
            Family(
                "dplb_core_handover_packets_total",
                "counter",
                "Packets handed to the worker that owns their flow (out) or from another (in).",
                handover,
                handover_values,
            )
        )
        drops = Labels((*cores.names, "reason"))
        drop_values: list[int] = []
        for values, c in zip(cores.values, t.cores, strict=True):
            counts = dict(c["drops"])
            for key, reason in _RUNTIME_DROPS.items():
                if key in c:
                    counts[reason] = counts.get(reason, 0) + int(c[key])
            for reason in (*DROP_REASONS, "tx_queue_full", "multi_segment"):
                if reason in counts:
                    drops.add((*values, reason))
                    drop_values.append(int(counts[reason]))
        out.append(
            Family(
                "dplb_core_drops_total",
                "counter",
                "Packets the core dropped, by reason.",
                drops,
                drop_values,
            )
        )
        ca = Labels((*cores.names, "event"))
        ca_values: list[int] = []
        for values, c in zip(cores.values, t.cores, strict=True):
            for event in _CLIENT_ADDRESS_EVENTS:
                ca.add((*values, event))
                ca_values.append(int(c.get(event, 0)))
        out.append(
            Family(
                "dplb_core_client_address_events_total",
                "counter",
                "TOA and PROXY protocol events (client address toward the reals).",
                ca,
                ca_values,
            )
        )
        with_runtime = [c for c in t.cores if "busy_polls" in c]
        if len(with_runtime) != len(t.cores) or not t.cores:
            return
        polls = Labels((*cores.names, "state"))
        poll_values: list[int] = []
        for values, c in zip(cores.values, t.cores, strict=True):
            polls.add((*values, "busy"))
            poll_values.append(int(c["busy_polls"]))
            polls.add((*values, "idle"))
            poll_values.append(int(c["idle_polls"]))
        out.append(
            Family(
                "dplb_core_polls_total",
                "counter",
                "Poll loops of the core that found work (busy) or none (idle).",
                polls,
                poll_values,
            )
        )
        if all("last_poll_age_ns" in c for c in t.cores):
            out.append(
                Family(
                    "dplb_core_last_poll_age_seconds",
                    "gauge",
                    "Since the core's poll loop last turned (stuck past 1 s).",
                    cores,
                    [int(c["last_poll_age_ns"]) / 1e9 for c in t.cores],
                )
            )
        if all("burst_ns_buckets" in c for c in t.cores):
            h = Histogram(
                "dplb_core_burst_processing_seconds",
                "Time the engine took per burst of packets.",
                cores,
                [2.0**i / 1e9 for i in range(_HISTOGRAM_FIRST, _HISTOGRAM_LAST + 1)],
            )
            for c in t.cores:
                raw = list(c["burst_ns_buckets"])
                cumulative, running = [], 0
                for i, n in enumerate(raw):
                    running += int(n)
                    if _HISTOGRAM_FIRST <= i <= _HISTOGRAM_LAST:
                        cumulative.append(running)
                h.buckets.append(cumulative)
                h.sums.append(int(c["burst_ns_sum"]) / 1e9)
                h.counts.append(running)
            out.append(h)

    def _snapshot_labels(self, table: CounterTable) -> _SnapshotLabels:
        snap = self._snapshot
        if snap is not None and snap.generation == table.generation:
            return snap
        base = self.base.values[0]
        services = Labels((*self.base.names, "vip", "port", "protocol"))
        for vip, port, protocol in table.services:
            services.add((*base, vip, str(port), protocol))
        reals = Labels((*services.names, "real"))
        keys: list[RealKey] = []
        for index, address, port, _ in table.reals:
            vip, vport, protocol = table.services[index]
            reals.add((*services.values[index], endpoint(address, port)))
            keys.append((vip, vport, protocol, address, port))
        configured: dict[RealKey, tuple[int, bool]] = {}
        for svc in self.dataplane.running_config().services:
            for r in svc.reals:
                configured[(str(svc.vip), svc.port, svc.protocol, str(r.address), r.port)] = (
                    r.weight,
                    r.enabled,
                )
        weight, enabled = [], []
        for real_key, (_, _, _, engine_weight) in zip(keys, table.reals, strict=True):
            w, on = configured.get(real_key, (engine_weight, engine_weight > 0))
            weight.append(w)
            enabled.append(int(on))
        snap = _SnapshotLabels(table.generation, services, reals, weight, enabled, keys)
        self._snapshot = snap
        return snap

    def _services(self, table: CounterTable, out: list[Family | Histogram]) -> None:
        snap = self._snapshot_labels(table)
        svc, real = table.service_counters, table.real_counters
        active = _FIELD["active"]
        out.append(
            Family(
                "dplb_service_active_connections",
                "gauge",
                "Sessions of the service.",
                snap.services,
                svc[active::_NFIELDS].tolist(),
            )
        )
        for key, suffix, text in _TRAFFIC:
            out.append(
                Family(
                    f"dplb_service_{suffix}",
                    "counter",
                    text,
                    snap.services,
                    svc[_FIELD[key] :: _NFIELDS].tolist(),
                )
            )
        out.append(
            Family(
                "dplb_real_active_connections",
                "gauge",
                "Sessions with the real.",
                snap.reals,
                real[active::_NFIELDS].tolist(),
            )
        )
        for key, suffix, text in _TRAFFIC:
            out.append(
                Family(
                    f"dplb_real_{suffix}",
                    "counter",
                    text,
                    snap.reals,
                    real[_FIELD[key] :: _NFIELDS].tolist(),
                )
            )
        for key, name, text in _PASSIVE:
            out.append(
                Family(name, "counter", text, snap.reals, real[_FIELD[key] :: _NFIELDS].tolist())
            )
        out.append(
            Family(
                "dplb_real_weight",
                "gauge",
                "The real's configured weight.",
                snap.reals,
                snap.real_weight,
            )
        )
        out.append(
            Family(
                "dplb_real_enabled",
                "gauge",
                "1 when the real is enabled (0: disabled by an operator, no new sessions).",
                snap.reals,
                snap.real_enabled,
            )
        )
        verdicts = self.real_up() if self.real_up is not None else {}
        up = [int(verdicts.get(k, True)) for k in snap.real_keys] if verdicts else None
        out.append(
            Family(
                "dplb_real_up",
                "gauge",
                "1 when the real passes its health check (0: down).",
                snap.reals,
                up if up is not None else [1] * len(snap.real_keys),
            )
        )

    def _nics(self, t: Telemetry, out: list[Family | Histogram]) -> None:
        nics = Labels((*self.base.names, "nic"))
        for p in t.ports:
            nics.add((*self.base.values[0], str(p["name"])))
        for key, name, text in _NIC_COUNTERS:
            if t.ports and all(key in p for p in t.ports):
                out.append(Family(name, "counter", text, nics, [int(p[key]) for p in t.ports]))
        if t.ports and all("link_up" in p for p in t.ports):
            out.append(
                Family(
                    "dplb_nic_up",
                    "gauge",
                    "1 when the NIC's link is up.",
                    nics,
                    [int(bool(p["link_up"])) for p in t.ports],
                )
            )
        if t.liveness is not None and len(t.liveness.ports) == len(t.ports):
            out.append(
                Family(
                    "dplb_nic_receiving",
                    "gauge",
                    "0 when the port drops frames at the NIC while it receives none.",
                    nics,
                    [int(p.receiving) for p in t.liveness.ports],
                )
            )
        if t.ports and all("speed_mbps" in p for p in t.ports):
            out.append(
                Family(
                    "dplb_nic_speed_bytes",
                    "gauge",
                    "The link's speed in bytes per second.",
                    nics,
                    [int(p["speed_mbps"]) * 125_000 for p in t.ports],
                )
            )

    def _local_addresses(self, t: Telemetry, out: list[Family | Histogram]) -> None:
        """Source ports per local address (and core): without a per-real label, the
        real with the most busy ports stands for the others."""
        if not t.local_addresses:
            return
        laddrs = Labels((*self.base.names, "core", "address"))
        for a in t.local_addresses:
            laddrs.add((*self.base.values[0], str(a["worker"]), str(a["address"])))
        by_state = Labels((*laddrs.names, "state"))
        state_values: list[int] = []
        for values, a in zip(laddrs.values, t.local_addresses, strict=True):
            for state, key in (("in_use", "ports_in_use"), ("resting", "ports_resting")):
                by_state.add((*values, state))
                state_values.append(int(a[key]))
        out.append(
            Family(
                "dplb_local_address_ports",
                "gauge",
                "Source ports of the local address in sessions (in_use) or held toward reals "
                "that closed first, for their TIME_WAIT (resting); summed over the reals.",
                by_state,
                state_values,
            )
        )
        out.append(
            Family(
                "dplb_local_address_busiest_real_ports",
                "gauge",
                "Source ports of the local address busy (in use or resting) toward the real "
                "with the most: at dplb_local_address_ports_limit new connections toward it "
                "are dropped (no_local_port).",
                laddrs,
                [int(a["ports_busiest_real"]) for a in t.local_addresses],
            )
        )
        out.append(
            Family(
                "dplb_local_address_ports_limit",
                "gauge",
                "Source ports of the local address toward each real (local_ports.first..last).",
                laddrs,
                [int(a["ports_per_real"]) for a in t.local_addresses],
            )
        )


# -- GET /metrics --------------------------------------------------------------------

metrics_router = APIRouter()


def app_collector(app: Any) -> DataplaneCollector | None:
    """The collector of a running API app (made at its first scrape), or None before
    the app has started."""
    collector: DataplaneCollector | None = getattr(app.state, "metrics_collector", None)
    if collector is not None:
        return collector
    node = getattr(app.state, "node", None)
    if node is None:
        return None
    reconciler = node.reconciler

    def real_up() -> Mapping[RealKey, bool]:
        checker = app_health(app)
        return checker.state.real_up() if checker is not None else {}

    def health() -> CheckerStats | None:
        checker = app_health(app)
        return checker.stats if checker is not None else None

    collector = DataplaneCollector(
        node.dataplane,
        cluster=node.node_config.node.cluster,
        node=node.node_config.node.name,
        apply_status=lambda: reconciler.status,
        store_health=node.store.health,
        real_up=real_up,
        health=health,
    )
    app.state.metrics_collector = collector
    return collector


@metrics_router.get("/metrics", include_in_schema=False)
def get_metrics(request: Request) -> Response:
    """Prometheus scrapes this (no token: metrics hold no secret and no client address)."""
    collector = app_collector(request.app)
    if collector is None:
        return Response("dplb: the node is starting\n", status_code=503, media_type="text/plain")
    started = time.perf_counter()
    text = collector.render()
    bgp = getattr(request.app.state, "bgp", None)
    if bgp is not None:  # dplb_bgp_*: the BIRD controller (bgp.enabled)
        from dplb.bgp.metrics import bgp_metrics_text

        text += bgp_metrics_text(bgp.status(), collector.base.text[0])
    sync = getattr(request.app.state, "sync", None)
    if sync is not None:  # dplb_sync_*: session sync (sync.enabled)
        from dplb.sync.metrics import sync_metrics_text

        text += sync_metrics_text(sync.status(), collector.base.text[0])
    took = time.perf_counter() - started
    text += (
        "# HELP dplb_scrape_duration_seconds How long the previous part of this scrape took.\n"
        "# TYPE dplb_scrape_duration_seconds gauge\n"
        f"dplb_scrape_duration_seconds{{{collector.base.text[0]}}} {took!r}\n"
    )
    return Response(text, media_type=CONTENT_TYPE)
