"""`HarnessDataplane`: the engine harness (`dplb.Engine`, no DPDK) as a `Dataplane`."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from dplb.config import NodeConfig
from dplb.dataplane.models import (
    DataplaneStatus,
    EngineStats,
    Liveness,
    LocalAddress,
    PortLiveness,
    PortStatus,
    SessionKey,
    SessionPage,
    SessionQuery,
    core_stats,
    real_stats,
    session_page,
    session_search,
)
from dplb.dataplane.telemetry import CounterTable, Telemetry, read_counter_table
from dplb.engine import Engine, RealKey


class HarnessDataplane:
    """The engine harness as a Dataplane. The harness engine is single-threaded, so
    every call holds `lock`; code that drives traffic (tests, demos) uses `process` and
    `advance`, which take it too."""

    kind = "harness"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self._started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self._counters: CounterTable | None = None
        self._down: frozenset[RealKey] = frozenset()

    # -- traffic (harness only) ------------------------------------------------------
    def process(
        self, frame: bytes, port: int | str = 0, worker: int | None = None
    ) -> list[tuple[int, bytes]]:
        with self.lock:
            return self.engine.process(frame, port, worker)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.engine.advance(seconds)

    # -- session sync (dplb.sync.SyncManager) ----------------------------------------
    def sync_service(self, **options: Any) -> Any:
        """The engine's sync thread (`dplb._core.SyncService`), started. Records a peer
        sends reach the workers when the harness is driven (`process`, `advance`)."""
        return self.engine.sync_service(**options)

    def set_peer_local_addresses(self, peer_id: int, per_worker: list[list[str]]) -> None:
        with self.lock:
            self.engine.set_peer_local_addresses(peer_id, per_worker)

    # -- Dataplane -------------------------------------------------------------------
    def running_config(self) -> NodeConfig:
        with self.lock:
            return self.engine.config

    def apply(self, config: NodeConfig) -> None:
        with self.lock:
            self.engine.update(config, self._down)

    def set_reals_down(self, down: frozenset[RealKey]) -> None:
        with self.lock:
            if down != self._down:
                self.engine.update(self.engine.config, down)
                self._down = down

    def counters(self) -> CounterTable:
        with self.lock:
            self._counters = read_counter_table(self.engine.counter_table, self._counters)
            return self._counters

    def status(self) -> DataplaneStatus:
        with self.lock:
            cfg = self.engine.config
            ports = [
                PortStatus(
                    name=p.name,
                    device=p.device,
                    mac=self.engine.port_mac(i),
                    addresses=[str(a) for a in p.address],
                    gateways=[str(g) for g in p.gateway],
                    steering="harness",
                    **counters,
                )
                for i, (p, counters) in enumerate(
                    zip(cfg.dataplane.ports, self.engine.port_stats(), strict=True)
                )
            ]
        return DataplaneStatus(
            kind=self.kind,
            workers=cfg.dataplane.workers,
            steering="harness",
            ports=ports,
            started_at=self._started_at,
            uptime_seconds=time.monotonic() - self._started,
            liveness=self.liveness(),
        )

    def liveness(self) -> Liveness:
        """Always alive: the harness runs when it is driven (`process`, `advance`), it
        has no loop of its own that could stop."""
        cfg = self.engine.config
        return Liveness(
            worker_poll_age_seconds=[0.0] * cfg.dataplane.workers,
            ports=[PortLiveness(name=p.name) for p in cfg.dataplane.ports],
        )

    def stats(self) -> EngineStats:
        with self.lock:
            raw = self.engine.stats()
        return EngineStats(cores=core_stats(raw["workers"]), reals=real_stats(raw["reals"]))

    def sessions(self, query: SessionQuery) -> SessionPage:
        search = session_search(query)
        if search is None:
            return session_page(None, query)
        with self.lock:
            return session_page(self.engine.find_sessions(search), query)

    def reset_session(self, key: SessionKey) -> int:
        with self.lock:
            return self.engine.reset_session(
                str(key.client), key.client_port, str(key.vip), key.vip_port, key.protocol
            )

    def local_addresses(self) -> list[LocalAddress]:
        with self.lock:
            raw = self.engine.local_addresses()
        return [LocalAddress.model_validate(a) for a in raw]

    def telemetry(self) -> Telemetry:
        with self.lock:
            cores = self.engine.worker_stats()
            self._counters = read_counter_table(self.engine.counter_table, self._counters)
            counters = self._counters
            logger = self.engine.logger
            logger_stats = logger.stats() if logger is not None else None
            ports = [
                {"name": p.name, **port_counters}
                for p, port_counters in zip(
                    self.engine.config.dataplane.ports, self.engine.port_stats(), strict=True
                )
            ]
            laddrs = self.engine.local_addresses()
        return Telemetry(
            kind=self.kind,
            started_at=self._started_at.timestamp(),
            cores=cores,
            counters=counters,
            ports=ports,
            logger=logger_stats,
            liveness=self.liveness(),
            local_addresses=laddrs,
        )
