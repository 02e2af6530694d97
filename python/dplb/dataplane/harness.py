"""`HarnessDataplane`: the engine harness (`dplb.Engine`, no DPDK) as a `Dataplane`."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from dplb.config import NodeConfig
from dplb.dataplane.models import (
    DataplaneStatus,
    EngineStats,
    LocalAddress,
    PortStatus,
    SessionKey,
    SessionPage,
    SessionQuery,
    core_stats,
    page_sessions,
    real_stats,
    session_from_engine,
)
from dplb.dataplane.telemetry import CounterTable, Telemetry, read_counter_table
from dplb.engine import Engine


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

    # -- traffic (harness only) ------------------------------------------------------
    def process(
        self, frame: bytes, port: int | str = 0, worker: int | None = None
    ) -> list[tuple[int, bytes]]:
        with self.lock:
            return self.engine.process(frame, port, worker)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.engine.advance(seconds)

    # -- Dataplane -------------------------------------------------------------------
    def running_config(self) -> NodeConfig:
        with self.lock:
            return self.engine.config

    def apply(self, config: NodeConfig) -> None:
        with self.lock:
            self.engine.update(config)

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
                )
                for i, p in enumerate(cfg.dataplane.ports)
            ]
        return DataplaneStatus(
            kind=self.kind,
            workers=cfg.dataplane.workers,
            steering="harness",
            ports=ports,
            started_at=self._started_at,
            uptime_seconds=time.monotonic() - self._started,
        )

    def stats(self) -> EngineStats:
        with self.lock:
            raw = self.engine.stats()
        return EngineStats(cores=core_stats(raw["workers"]), reals=real_stats(raw["reals"]))

    def sessions(self, query: SessionQuery) -> SessionPage:
        with self.lock:
            raw = self.engine.sessions()
        return page_sessions((session_from_engine(s) for s in raw), query)

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
            ports = [{"name": p.name} for p in self.engine.config.dataplane.ports]
            laddrs = self.engine.local_addresses()
        return Telemetry(
            kind=self.kind,
            started_at=self._started_at.timestamp(),
            cores=cores,
            counters=counters,
            ports=ports,
            logger=logger_stats,
            local_addresses=laddrs,
        )
