"""BIRD 2 for the tests: `dplb.demo.bgp_lab` holds the daemon (its own config, control
socket and pid file, in a network namespace), the ops/bird/ examples made concrete, and
what a router's kernel has for a prefix; the tests import them from here."""

from __future__ import annotations

from dplb.demo.bgp_lab import BirdDaemon, concrete, kernel_nexthops

__all__ = ["BirdDaemon", "concrete", "kernel_nexthops"]
