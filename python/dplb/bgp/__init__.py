"""BGP through BIRD 2 (DESIGN section 7): the controller that tells the node's BIRD what
to announce (`controller`), the routes file it writes (`render`), birdc and its answers
(`birdc`), which services can serve (`serving`, the seam for health checks) and the
`dplb_bgp_*` metrics (`metrics`)."""

from __future__ import annotations

from collections.abc import Callable

from dplb.bgp.controller import BgpStatus, BirdController, PeerSource
from dplb.bgp.serving import RunningConfigServing, ServingSource
from dplb.config import NodeConfig
from dplb.dataplane import Dataplane


def controller_for(
    node_config: NodeConfig,
    running: Callable[[], NodeConfig],
    dataplane: Dataplane,
    serving: ServingSource | None = None,
    peers: PeerSource | None = None,
) -> BirdController | None:
    """The node's controller, or None when `bgp.enabled` is false. `running` gives the
    config the reconciler runs now; `serving` defaults to `RunningConfigServing`."""
    if not node_config.bgp.enabled:
        return None
    return BirdController(
        node_config.bgp,
        node=node_config.node.name,
        running=running,
        dataplane=dataplane,
        serving=serving or RunningConfigServing(running, dataplane),
        peers=peers,
    )


__all__ = ["BgpStatus", "BirdController", "RunningConfigServing", "ServingSource", "controller_for"]
