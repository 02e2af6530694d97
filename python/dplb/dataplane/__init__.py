"""The dataplane: what forwards packets, as the reconciler, the API and the metrics see
it. `interface` holds the `Dataplane` protocol, `models` what it answers with,
`telemetry` what the metrics collector reads, `harness` the engine harness behind it
(no DPDK) and `node` the running DPDK node (imported on its own: it needs the runtime)."""

from dplb.dataplane.harness import HarnessDataplane
from dplb.dataplane.interface import Dataplane
from dplb.dataplane.models import (
    CoreStats,
    DataplaneStatus,
    EngineStats,
    LocalAddress,
    PortStatus,
    RealStats,
    Session,
    SessionKey,
    SessionPage,
    SessionQuery,
)
from dplb.dataplane.telemetry import COUNTER_FIELDS, CounterTable, Telemetry

__all__ = [
    "COUNTER_FIELDS",
    "CoreStats",
    "CounterTable",
    "Dataplane",
    "DataplaneStatus",
    "EngineStats",
    "HarnessDataplane",
    "LocalAddress",
    "PortStatus",
    "RealStats",
    "Session",
    "SessionKey",
    "SessionPage",
    "SessionQuery",
    "Telemetry",
]
