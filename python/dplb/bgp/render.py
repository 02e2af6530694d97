"""What the node's BIRD announces, and the file that says it: `plan_routes` turns the VIPs
that can serve, the node's own local addresses and its peers' into routes; `render_routes`
writes them as two static protocols (IPv4, IPv6) that BIRD's config includes at its top
level and exports. Every prefix is a host route (/32, /128) to blackhole: BIRD sets
itself as the BGP next hop toward its peers, and nothing goes into the node's kernel."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from dplb.config import BgpSection, IPAddress

GRACEFUL_SHUTDOWN = "65535:0"  # RFC 8326
RouteKind = Literal["vip", "local_address", "backup"]


@dataclass(frozen=True)
class Route:
    prefix: str  # 10.10.100.10/32
    kind: RouteKind
    communities: tuple[str, ...] = ()
    prepend: int = 0
    local_pref: int | None = None
    note: str = ""  # why it is announced, as a comment in the file

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.prefix).version


def host_prefix(address: IPAddress) -> str:
    return f"{address}/{address.max_prefixlen}"


def plan_routes(
    bgp: BgpSection,
    *,
    vips: Iterable[IPAddress],
    local_addresses: Iterable[IPAddress],
    peer_local_addresses: Mapping[str, Sequence[IPAddress]],
    draining: bool = False,
) -> list[Route]:
    """The routes to announce, sorted: VIPs (marked GRACEFUL_SHUTDOWN or left out while
    draining, as `bgp.drain.mode` says), the node's local addresses, then the peers' as
    backups (a peer's address that is also this node's is announced once, as its own)."""
    common = tuple(bgp.communities)
    routes: dict[str, Route] = {}
    if not (draining and bgp.drain.mode == "withdraw"):
        marks = (GRACEFUL_SHUTDOWN,) if draining else ()
        for vip in sorted(set(vips), key=lambda a: (a.version, int(a))):
            p = host_prefix(vip)
            routes[p] = Route(p, "vip", common + marks, note="vip")
    if bgp.local_addresses:
        for address in sorted(set(local_addresses), key=lambda a: (a.version, int(a))):
            p = host_prefix(address)
            routes.setdefault(p, Route(p, "local_address", common, note="local address"))
        backup = bgp.backup
        for peer in sorted(peer_local_addresses):
            for address in sorted(
                set(peer_local_addresses[peer]), key=lambda a: (a.version, int(a))
            ):
                p = host_prefix(address)
                routes.setdefault(
                    p,
                    Route(
                        p,
                        "backup",
                        common + tuple(c for c in backup.communities if c not in common),
                        prepend=backup.path_prepend,
                        local_pref=backup.local_pref,
                        note=f"backup for {peer}",
                    ),
                )
    order = {"vip": 0, "local_address": 1, "backup": 2}
    return sorted(
        routes.values(),
        key=lambda r: (order[r.kind], ipaddress.ip_network(r.prefix).version, r.prefix),
    )


def _attributes(route: Route, asn: int | None) -> str:
    parts = []
    if route.prepend and asn is not None:
        parts += [f"bgp_path.prepend({asn});"] * route.prepend
    if route.local_pref is not None and route.kind == "backup":
        parts.append(f"bgp_local_pref = {route.local_pref};")
    for community in route.communities:
        high, low = community.split(":")
        parts.append(f"bgp_community.add(({high}, {low}));")
    return f" {{ {' '.join(parts)} }}" if parts else ""


def render_routes(bgp: BgpSection, routes: Sequence[Route], node: str) -> str:
    """The routes file. Both protocols are always declared (empty when nothing is
    announced), so the filters of BIRD's config that name them always parse."""
    lines = [
        f"# Written by dplb (node {node}): what this node announces. Do not edit:",
        "# dplb rewrites it on every change, and bird.conf includes it at its top level.",
    ]
    for version, name, channel in ((4, bgp.protocol_ipv4, "ipv4"), (6, bgp.protocol_ipv6, "ipv6")):
        lines.append(f"protocol static {name} {{")
        lines.append(f"  {channel};")
        for r in routes:
            if r.version == version:
                lines.append(f"  route {r.prefix} blackhole{_attributes(r, bgp.asn)};  # {r.note}")
        lines.append("}")
    return "\n".join(lines) + "\n"
