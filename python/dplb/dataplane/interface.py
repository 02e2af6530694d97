"""The `Dataplane` interface: what the reconciler and the management API need from the
thing that forwards packets. The engine harness (`HarnessDataplane`, harness.py)
implements it for tests, development and the web admin; the DPDK node (`NodeDataplane`,
node.py) implements the same protocol.

Every method may be called from any thread; an implementation serialises what its
engine cannot do concurrently. `apply` may take a while for a large config and is called
off the event loop."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from dplb.config import NodeConfig
from dplb.dataplane.models import (
    DataplaneStatus,
    EngineStats,
    LocalAddress,
    SessionKey,
    SessionPage,
    SessionQuery,
)
from dplb.dataplane.telemetry import CounterTable, Telemetry
from dplb.engine import RealKey


@runtime_checkable
class Dataplane(Protocol):
    """What the reconciler and the API drive. `apply` raises ValueError saying what it
    refused; it is never given a config whose node or dataplane sections differ from
    `running_config()` (the reconciler refuses those first)."""

    @property
    def kind(self) -> str: ...

    def running_config(self) -> NodeConfig: ...

    def apply(self, config: NodeConfig) -> None: ...

    def status(self) -> DataplaneStatus: ...

    def stats(self) -> EngineStats: ...

    def sessions(self, query: SessionQuery) -> SessionPage: ...

    def reset_session(self, key: SessionKey) -> int: ...

    def local_addresses(self) -> list[LocalAddress]: ...

    def telemetry(self) -> Telemetry: ...

    def counters(self) -> CounterTable:
        """The service and real counters alone (cheap: the health checker's passive
        checks read them every second)."""
        ...

    def set_reals_down(self, down: frozenset[RealKey]) -> None:
        """The reals that failed their health checks, by (vip, port, protocol, address,
        port): they get no new sessions (weight 0 in a new snapshot) until a later call
        leaves them out. Health is not config: `running_config()` does not change, and
        every later `apply` keeps these reals down."""
        ...
