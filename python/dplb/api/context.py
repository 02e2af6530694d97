"""What the routes work with: the node's store, dataplane, reconciler, audit log and the
config writer, built at start-up (the app's lifespan) and reached through `deps`."""

from __future__ import annotations

from dataclasses import dataclass

from dplb.api.audit import AuditLog
from dplb.api.changes import ConfigWriter
from dplb.config import NodeConfig
from dplb.dataplane import Dataplane
from dplb.reconciler import Reconciler
from dplb.store import Store


@dataclass
class NodeContext:
    node_config: NodeConfig
    store: Store
    dataplane: Dataplane
    reconciler: Reconciler
    audit: AuditLog
    writer: ConfigWriter
