"""dplb: a Layer-4 full-NAT load balancer on DPDK. The package holds the node's Python
side (config, harness, later the API and control plane) around the C++ engine."""

from dplb.config import ConfigError, NodeConfig, load_config, parse_config
from dplb.engine import DROP_REASONS, Engine

__all__ = ["DROP_REASONS", "ConfigError", "Engine", "NodeConfig", "load_config", "parse_config"]
__version__ = "0.1.0"
