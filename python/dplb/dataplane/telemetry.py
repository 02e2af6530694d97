"""What the metrics collector reads of a dataplane at scrape time (`Telemetry`), and the
counter table of services and reals it reads cheaply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dplb.dataplane.models import Liveness

# The per-service and per-real counters of CounterTable, in this order.
COUNTER_FIELDS = (
    "connections",
    "active",
    "packets_in",
    "packets_out",
    "bytes_in",
    "bytes_out",
    "syn_unanswered",
    "resets_from_real",
)


@dataclass(frozen=True)
class CounterTable:
    """Service and real counters of the running engine snapshot, read cheaply enough for
    every scrape of a node with 100,000 reals: identities as tuples (the same objects as
    long as the snapshot's `generation` is the same, so a reader can cache what it derives
    from them), counters as native uint64 views, len(COUNTER_FIELDS) per entry, summed
    over the workers."""

    generation: int
    services: list[tuple[str, int, str]]  # (vip, port, protocol), snapshot order
    reals: list[tuple[int, str, int, int]]  # (index in services, address, port, weight)
    service_counters: memoryview
    real_counters: memoryview


def read_counter_table(
    read: Callable[[int], dict[str, Any]], previous: CounterTable | None
) -> CounterTable:
    """Reads the engine's counter table (the binding's `counter_table`), reusing the
    identities of `previous` when the snapshot did not change."""
    raw = read(previous.generation if previous is not None else -1)
    if raw["services"] is None and previous is not None:
        services, reals = previous.services, previous.reals
    else:
        services, reals = raw["services"], raw["reals"]
    return CounterTable(
        generation=raw["generation"],
        services=services,
        reals=reals,
        service_counters=memoryview(raw["service_counters"]).cast("Q"),
        real_counters=memoryview(raw["real_counters"]).cast("Q"),
    )


@dataclass(frozen=True)
class Telemetry:
    """What the metrics collector reads at scrape time, as the engine and runtime give
    it (plain values, no validation: a scrape must stay cheap).

    `cores`: one dict per worker with the engine's counters (the keys of `worker_stats`:
    rx_packets, ..., drops, sessions, session_capacity, log_dropped) and, where the
    dataplane runs worker lcores, the runtime's: busy_polls, idle_polls, tx_dropped,
    handover_dropped, bursts, burst_ns_sum, burst_ns_buckets (bucket i counts bursts
    under 2**i ns). `ports`: name, and where there is a NIC its counters (rx_packets,
    tx_packets, rx_bytes, tx_bytes, rx_missed, rx_errors, tx_errors, rx_nombuf, link_up,
    speed_mbps, device, steering). `control`: the control lcore's counters, if any.
    `latency`: DPDK latency stats (enabled, min_ns, avg_ns, max_ns, jitter_ns), if any.
    `logger`: the logger thread's stats, if it runs. `liveness`: whether the data plane
    is alive (models.Liveness).
    `local_addresses`: one dict per worker's local address (worker, address,
    ports_in_use, ports_resting, ports_busiest_real, ports_per_real)."""

    kind: str
    started_at: float  # Unix time
    cores: list[dict[str, Any]]
    counters: CounterTable
    ports: list[dict[str, Any]]
    control: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    logger: dict[str, Any] | None = None
    dpdk_version: str | None = None
    liveness: Liveness | None = None
    local_addresses: list[dict[str, Any]] = field(default_factory=list)
