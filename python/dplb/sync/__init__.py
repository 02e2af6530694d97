"""Session sync in the control plane: the manager of a node's sync thread (peers from the
cluster's members, full sync at start, the BGP gate) and its status."""

from dplb.sync.manager import SyncGatedServing, SyncManager, SyncStatus, node_id, start_sync

__all__ = ["SyncGatedServing", "SyncManager", "SyncStatus", "node_id", "start_sync"]
