"""The node config (DESIGN section 9): pydantic models shared by the engine harness and
the node, and `load_config`, which reports every error with its field path."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyInterface,
    PlainValidator,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
# Strict: `port: yes` in YAML is a bool, not port 1.
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Seconds = Annotated[int, Strict(), Field(ge=1, le=7 * 24 * 3600)]


def parse_ip_address(value: Any) -> IPAddress:
    """An IPv4 or IPv6 address: inet_pton first, which answers like ipaddress for what it
    accepts and is several times faster (a config may hold 100,000 reals); ipaddress
    for the rest, to name what is wrong. A scoped IPv6 address (`fe80::1%eth0`) is
    refused: the engine knows no zones (a port's addresses say where it is)."""
    if type(value) is str:
        try:
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, value))
        except OSError:
            pass
        try:
            return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, value))
        except OSError:
            pass
        with contextlib.suppress(ValueError):
            value = ipaddress.ip_address(value)
    if isinstance(value, ipaddress.IPv6Address) and value.scope_id is not None:
        raise ValueError(f"'{value}' has a zone (%{value.scope_id}): give the address alone")
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    raise ValueError("value is not a valid IPv4 or IPv6 address")


def _unscoped_interface(value: Any) -> Any:
    if isinstance(value, ipaddress.IPv6Interface) and value.scope_id is not None:
        raise ValueError(f"'{value}' has a zone (%{value.scope_id}): give the address alone")
    return value


_V4_BROADCAST = 0xFFFFFFFF
_V6_LINK_LOCAL = int(ipaddress.IPv6Address("fe80::"))


def _cannot_serve(address: IPAddress, vip: bool) -> str | None:
    """Why `address` cannot take connections (as a VIP, or as a real when `vip` is
    False), or None. On integers: a config may hold 100,000 reals."""
    n = int(address)
    if address.version == 4:
        if n >> 24 == 0:
            return "the unspecified address (0.0.0.0/8)" if n == 0 else "in 0.0.0.0/8 ('this host')"
        if n >> 24 == 127:
            return "a loopback address (127.0.0.0/8)"
        if n >> 28 == 14:
            return "a multicast address (224.0.0.0/4)"
        if n == _V4_BROADCAST:
            return "the broadcast address"
        if n >> 28 == 15:
            return "a reserved address (240.0.0.0/4)"
        if vip and n >> 16 == 0xA9FE:
            return "a link-local address (169.254.0.0/16)"
        return None
    if n == 0:
        return "the unspecified address (::)"
    if n == 1:
        return "the loopback address (::1)"
    if n >> 120 == 0xFF:
        return "a multicast address (ff00::/8)"
    if vip and n >> 118 == _V6_LINK_LOCAL >> 118:
        return "a link-local address (fe80::/10)"
    return None


def _serving_address(vip: bool) -> Any:
    def validate(value: Any) -> IPAddress:
        address = parse_ip_address(value)
        problem = _cannot_serve(address, vip)
        if problem is not None:
            raise ValueError(f"{address} cannot take connections: {problem}")
        return address

    return validate


# An IPv4 or an IPv6 address, in the formats OpenAPI tools know.
ADDRESS_JSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
}
_ADDRESS_SCHEMA = WithJsonSchema(ADDRESS_JSON_SCHEMA)
# IPvAnyAddress, validated faster (the fields a large config repeats) and without zones.
Address = Annotated[IPAddress, PlainValidator(parse_ip_address), _ADDRESS_SCHEMA]
# Addresses that take connections: a VIP, a real.
VipAddress = Annotated[IPAddress, PlainValidator(_serving_address(vip=True)), _ADDRESS_SCHEMA]
RealAddress = Annotated[IPAddress, PlainValidator(_serving_address(vip=False)), _ADDRESS_SCHEMA]
Interface = Annotated[IPvAnyInterface, AfterValidator(_unscoped_interface)]


def _one_or_many(value: Any) -> Any:
    """Accept `address: 10.0.0.1/24` as well as a list of addresses."""
    if isinstance(value, str):
        return [value]
    return value


class ConfigModel(BaseModel):
    """Unknown keys are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class NodeSection(ConfigModel):
    name: Annotated[
        str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ]
    cluster: Annotated[
        str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ] = "default"


class Timeouts(ConfigModel):
    """Session timeouts in seconds, per TCP state and for UDP."""

    tcp_syn: Seconds = 30
    tcp_established: Seconds = 900
    tcp_fin: Seconds = 120
    tcp_time_wait: Seconds = 60
    tcp_close: Seconds = 10
    udp: Seconds = 300


class TimeoutOverrides(ConfigModel):
    """Per-service timeouts; unset ones come from `dataplane.timeouts`."""

    tcp_syn: Seconds | None = None
    tcp_established: Seconds | None = None
    tcp_fin: Seconds | None = None
    tcp_time_wait: Seconds | None = None
    tcp_close: Seconds | None = None
    udp: Seconds | None = None


class LocalPorts(ConfigModel):
    """Source ports dplb takes on each local address, toward each real (the real sees
    local address, port, its own address and port: a port in use toward one real is free
    toward the others), and how long a real holds a port in TIME_WAIT after it closed
    the connection first (Linux: 60 s, fixed). Such a port stays busy toward that real
    that long from the close; any other port is free once its session is gone."""

    first: Port = 1024
    last: Port = 65535
    real_time_wait: Annotated[int, Strict(), Field(ge=0, le=3600)] = 60
    # Gone: a freed port rested this long after its session's own time_wait (twice).
    reuse_delay: SkipJsonSchema[Any] = Field(default=None, exclude=True)

    @field_validator("reuse_delay")
    @classmethod
    def _reuse_delay_is_gone(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "replaced by real_time_wait (the real's TIME_WAIT, 60 s on Linux): a port "
                "now rests only toward a real that closed first, and only that long"
            )
        return None

    @field_validator("last")
    @classmethod
    def _last_not_below_first(cls, last: int, info: Any) -> int:
        first = info.data.get("first")
        if first is not None and last < first:
            raise ValueError(f"must not be below first ({first})")
        return last


MAC_PATTERN = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"


class PortSection(ConfigModel):
    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
    device: Annotated[str, Field(min_length=1)]
    address: Annotated[list[Interface], BeforeValidator(_one_or_many), Field(min_length=1)]
    gateway: Annotated[list[Address], BeforeValidator(_one_or_many)] = []
    mac: Annotated[str, Field(pattern=MAC_PATTERN)] | None = None
    # One list per worker: the SNAT addresses that worker owns on this port.
    local_addresses: list[list[Address]] = []
    # The kernel side of the port (exception path: ping, ssh, BGP, health checks). Default:
    # "<node>-<port>" cut to 15 characters; "" for none.
    kernel_interface: Annotated[str, Field(max_length=15, pattern=r"^[A-Za-z0-9_.-]*$")] | None = (
        None
    )


class MemorySection(ConfigModel):
    hugepages: bool = False
    size_mb: Annotated[int, Strict(), Field(ge=64)] = 256


class LogSection(ConfigModel):
    """The node's log (DESIGN section 8): JSON lines written by the logger thread, never
    by a worker. Without `file`, the node writes no log."""

    file: Path | None = None
    # The file is rotated (file.1, file.2, ...) before it would grow past max_bytes.
    max_bytes: Annotated[int, Strict(), Field(ge=4096)] = 64 * 1024 * 1024
    keep: Annotated[int, Strict(), Field(ge=0, le=1000)] = 5
    # How often drop counters that grew are written (one line per reason).
    drop_report_interval: Annotated[float, Field(gt=0, le=3600)] = 10.0


class ControlSection(ConfigModel):
    """Frames for the control side that are not ARP/ND, BGP/BFD or the node's own
    connections: at most rest_rate_pps per worker (0: no limit), in bursts of rest_burst."""

    rest_rate_pps: Annotated[int, Strict(), Field(ge=0, le=100_000_000)] = 10_000
    rest_burst: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 1000
    # ARP, ND and BGP/BFD to the port addresses on an RX queue of their own (rte_flow),
    # where the NIC can; a port that cannot runs without it and says why.
    flow_steering: Annotated[bool, Strict()] = False


class DataplaneSection(ConfigModel):
    workers: Annotated[int, Strict(), Field(ge=1, le=128)] = 1
    lcores: str | None = None
    memory: MemorySection = MemorySection()
    idle_sleep_us: Annotated[int, Strict(), Field(ge=0, le=100_000)] = 50
    sessions_per_worker: Annotated[int, Strict(), Field(ge=1, le=100_000_000)] = 1_000_000
    # Capacity of the service and real counter tables, fixed at start: a (service, real)
    # pair keeps its slot while a snapshot or an open session refers to it, then the slot
    # is recycled (docs/threads.md).
    max_services: Annotated[int, Strict(), Field(ge=1, le=1_048_576)] = 65536
    max_reals: Annotated[int, Strict(), Field(ge=1, le=16_777_216)] = 65536
    local_ports: LocalPorts = LocalPorts()
    timeouts: Timeouts = Timeouts()
    ports: Annotated[list[PortSection], Field(min_length=1, max_length=32)]
    log: LogSection = LogSection()
    control: ControlSection = ControlSection()
    # DPDK's rte_latencystats (rx-to-tx latency of sampled packets). Off by default: it
    # reads the TSC for every received packet and shares a cache line between workers.
    latency_stats: Annotated[bool, Strict()] = False


class TokenEntry(ConfigModel):
    name: Annotated[str, Field(min_length=1)]
    token: Annotated[str, Field(min_length=16)]
    role: Literal["viewer", "admin"] = "viewer"


# `address:port` (an IPv6 address in brackets) or `name:port`.
HostPort = Annotated[str, Field(pattern=r"^(\[[0-9a-fA-F:]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$")]


class ApiSection(ConfigModel):
    listen: HostPort = "127.0.0.1:8080"
    tokens: list[TokenEntry] = []
    # JSON lines, one per change made through the API; default: audit.jsonl beside the
    # store's file. Rotated (audit.jsonl.1, .2, ...) before it would grow past
    # audit_log_max_bytes; audit_log_keep rotated files are kept.
    audit_log: Path | None = None
    audit_log_max_bytes: Annotated[int, Strict(), Field(ge=4096)] = 16 * 1024 * 1024
    audit_log_keep: Annotated[int, Strict(), Field(ge=0, le=1000)] = 5


# An etcd endpoint: `host:port`, `http://host:port` or `https://host:port`.
EtcdEndpoint = Annotated[
    str, Field(pattern=r"^(https?://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
]


def _endpoints_only(value: Any) -> Any:
    """Accept `etcd: [host:port, ...]` as short for `etcd: {endpoints: [...]}`."""
    if isinstance(value, list | str):
        return {"endpoints": _one_or_many(value)}
    return value


class EtcdSection(ConfigModel):
    """The cluster's etcd (v3 API): tried in turn, the first that answers is used."""

    endpoints: Annotated[list[EtcdEndpoint], Field(min_length=1, max_length=16)]
    # Keys live under <prefix>/<node.cluster>/.
    prefix: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")] = "/dplb/v1"
    # TLS: with https:// endpoints or a CA file. cert_file and key_file: a client
    # certificate, both or neither.
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # etcd's own users (auth enable): both or neither.
    user: Annotated[str, Field(min_length=1)] | None = None
    password: str | None = None
    # Each request gives up after this long and the next endpoint is tried.
    timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    # The node's member key lives as long as this lease, kept alive at a third of it.
    lease_ttl: Annotated[int, Strict(), Field(ge=3, le=300)] = 10

    @property
    def tls(self) -> bool:
        return (
            self.ca_file is not None
            or self.cert_file is not None
            or any(e.startswith("https://") for e in self.endpoints)
        )


class HealthSection(ConfigModel):
    """The node's health checker (node-local). Each service says how its reals are
    checked (`services[].health_check`)."""

    enabled: Annotated[bool, Strict()] = True
    # How often the workers' passive counters are read.
    passive_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Checks in flight at once at most (later ones wait their turn).
    max_concurrent: Annotated[int, Strict(), Field(ge=1, le=100_000)] = 1000


class StoreSection(ConfigModel):
    # A standalone node's desired config, in a YAML file; or the cluster's, in etcd.
    file: Path | None = None
    etcd: Annotated[EtcdSection | None, BeforeValidator(_endpoints_only)] = None
    # Past versions kept in the history (the newest ones; version numbers still grow).
    keep_versions: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 1000


class RealHealthCheck(ConfigModel):
    """A real's own health-check settings: the check of its service, sent elsewhere
    (a separate status port or address), or not at all (`enabled: false`: always up)."""

    enabled: Annotated[bool, Strict()] = True
    address: Address | None = None
    port: Port | None = None


class RealSection(ConfigModel):
    address: RealAddress
    port: Port
    # 0 quiesces the real: no new sessions, established ones go on.
    weight: Annotated[int, Strict(), Field(ge=0, le=65535)] = 100
    # false quiesces it too, keeping its weight for when it is enabled again.
    enabled: Annotated[bool, Strict()] = True
    # Where the service's health check of this real goes, when not to the real itself
    # (None: to the real, as the service says).
    health_check: RealHealthCheck | None = None


class PassiveCheckSection(ConfigModel):
    """Passive checks: what the workers see of a real's traffic. More than `syn_unanswered`
    client SYNs it never answered, or more than `resets` resets it sent, within `window`
    seconds, mark it down like failed active checks (0: that count is not used); it comes
    back up through the active checks."""

    syn_unanswered: Annotated[int, Strict(), Field(ge=0, le=1_000_000)] = 0
    resets: Annotated[int, Strict(), Field(ge=0, le=1_000_000)] = 0
    window: Annotated[float, Field(gt=0, le=3600)] = 10.0


HealthCheckType = Literal["none", "tcp", "http", "https", "udp"]


class HealthCheckSection(ConfigModel):
    """How the node checks each real of a service (dplb.health)."""

    # Default: tcp for a TCP service, none for a UDP one (a UDP check needs to know what
    # to send): see `check_type`.
    type: HealthCheckType | None = None
    interval: Annotated[float, Field(gt=0, le=3600)] = 2.0
    timeout: Annotated[float, Field(gt=0, le=60)] = 1.0
    rise: Annotated[int, Strict(), Field(ge=1, le=100)] = 2
    fall: Annotated[int, Strict(), Field(ge=1, le=100)] = 3
    # The port checked (default: each real's own).
    port: Port | None = None
    # http / https
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    path: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^/[!-~]*$")] = "/"
    host: (
        Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.:\[\]_-]+$")]
        | None
    ) = None
    expect_status: Annotated[
        list[Annotated[int, Strict(), Field(ge=100, le=599)]], Field(min_length=1)
    ] = [200]
    expect_body: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    # udp: the datagram sent (UTF-8 text), and what passes: a reply (containing
    # expect_body if set), or no ICMP port unreachable within the timeout.
    send: Annotated[str, Field(max_length=1024)] = ""
    udp_expect: Literal["reply", "no_unreachable"] = "no_unreachable"
    # A real that goes down: "quiesce" (no new sessions, established ones go on) or
    # "reset" (its sessions are removed too).
    on_down: Literal["quiesce", "reset"] = "quiesce"
    passive: PassiveCheckSection = PassiveCheckSection()


def check_type(svc: ServiceSection) -> HealthCheckType:
    """The health check a service runs: its `health_check.type`, or the default for its
    protocol."""
    if svc.health_check.type is not None:
        return svc.health_check.type
    return "tcp" if svc.protocol == "tcp" else "none"


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


class ServiceSection(ConfigModel):
    vip: VipAddress
    port: Port
    protocol: Literal["tcp", "udp"] = "tcp"
    scheduler: Literal["rr", "wrr", "wlc", "maglev"] = "wlc"
    client_address: Literal["none", "toa", "proxy-v1", "proxy-v2"] = "none"
    # A client that sends its own PROXY header (dplb behind another proxy): "refuse" resets
    # the connection; "trust" passes on the addresses that header names, in dplb's own.
    proxy_protocol_from_client: Literal["refuse", "trust"] = "refuse"
    nic: str | None = None
    maglev_table_size: Annotated[int, Strict(), Field(ge=7, le=16_777_259)] = 65537
    timeouts: TimeoutOverrides = TimeoutOverrides()
    reals: Annotated[list[RealSection], Field(max_length=4096)] = []
    health_check: HealthCheckSection = HealthCheckSection()
    # A log line when each session opens and closes (client, VIP, real, local address,
    # bytes each way, duration), for audits; written where the node has a log
    # (dataplane.log.file).
    connection_log: Annotated[bool, Strict()] = False

    @field_validator("maglev_table_size")
    @classmethod
    def _prime(cls, size: int) -> int:
        if not _is_prime(size):
            raise ValueError(f"must be a prime number, {size} is not")
        return size


COMMUNITY_PATTERN = r"^\d{1,5}:\d{1,5}$"
Community = Annotated[str, Field(pattern=COMMUNITY_PATTERN)]


def _community_in_range(value: str) -> str:
    high, low = (int(x) for x in value.split(":"))
    if high > 65535 or low > 65535:
        raise ValueError(f"'{value}': each half of a community is 0-65535")
    return value


BgpCommunity = Annotated[Community, AfterValidator(_community_in_range)]


class BgpBackupSection(ConfigModel):
    """How the peers' local addresses are announced: less preferred than their owner's
    own announcement, so a router uses them only once the owner is gone."""

    # Prepended this many times with `bgp.asn` (eBGP routers compare path lengths).
    path_prepend: Annotated[int, Strict(), Field(ge=0, le=16)] = 2
    # Sent on iBGP sessions only (BIRD drops it toward eBGP peers).
    local_pref: Annotated[int, Strict(), Field(ge=0, le=4294967295)] | None = 50
    communities: list[BgpCommunity] = []


class BgpDrainSection(ConfigModel):
    """`dplb ctl drain` and a stop: the VIPs get the GRACEFUL_SHUTDOWN community
    (65535:0, RFC 8326) or are withdrawn; then the node waits for its established
    sessions to end, at most `timeout` seconds."""

    mode: Literal["graceful_shutdown", "withdraw"] = "graceful_shutdown"
    timeout: Annotated[float, Field(ge=0, le=24 * 3600)] = 30.0
    # Drain before stopping on SIGTERM/SIGINT (a stop without it withdraws at once).
    on_stop: Annotated[bool, Strict()] = True


class BgpSection(ConfigModel):
    """The node's BIRD 2 (node-local). dplb writes `routes_file`, which `bird_config`
    includes at its top level, checks `bird_config` with `bird -p -c`, then
    `birdc configure` over `control_socket`."""

    enabled: Annotated[bool, Strict()] = False
    # The node's AS number: what `backup.path_prepend` prepends.
    asn: Annotated[int, Strict(), Field(ge=1, le=4294967295)] | None = None
    # BIRD's router id, shown by the API; BIRD itself takes it from bird_config.
    router_id: ipaddress.IPv4Address | None = None
    bird_config: Path = Path("/etc/bird/bird.conf")
    routes_file: Path = Path("/etc/bird/dplb-routes.conf")
    control_socket: Path = Path("/run/bird/bird.ctl")
    bird: str = "bird"
    birdc: str = "birdc"
    # Names of the static protocols the routes file declares (bird_config exports them).
    protocol_ipv4: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")] = "dplb4"
    protocol_ipv6: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")] = "dplb6"
    # Announce this node's own local (SNAT) addresses, and the peers' as backups.
    local_addresses: Annotated[bool, Strict()] = True
    # Added to every route dplb announces.
    communities: list[BgpCommunity] = []
    backup: BgpBackupSection = BgpBackupSection()
    drain: BgpDrainSection = BgpDrainSection()
    # How often BIRD's state is read, and a failed reconfiguration retried.
    poll_interval: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # The longest a `bird -p` or `birdc` call may take.
    command_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0

    @field_validator("protocol_ipv6")
    @classmethod
    def _two_names(cls, name: str, info: Any) -> str:
        if name == info.data.get("protocol_ipv4"):
            raise ValueError(f"'{name}' is protocol_ipv4 too: the two need two names")
        return name


class SyncKey(ConfigModel):
    """A cluster key of session sync: every node holds the same keys."""

    id: Annotated[int, Strict(), Field(ge=1, le=255)]
    # A file holding 32 bytes as 64 hex digits (`openssl rand -hex 32`), readable by dplb.
    file: Path


class SyncSection(ConfigModel):
    """Session sync with the cluster's other nodes (node-local): every node holds every
    other node's sessions, so connections survive a node's death. Peers are the cluster's
    members (store.etcd) with the same worker count."""

    enabled: Annotated[bool, Strict()] = False
    # UDP for the incremental datagrams, TCP (same port) for full sync.
    listen: HostPort = "0.0.0.0:7100"
    # Where peers reach this node; needed when `listen` is a wildcard address.
    advertise: HostPort | None = None
    # A long-lived session is sent again after this long with traffic, so that a peer's
    # copy does not expire (and a lost datagram is repaired).
    refresh_interval: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # One key, or two while the cluster changes keys: both accepted, `send_key` sent with.
    keys: Annotated[list[SyncKey], Field(max_length=2)] = []
    send_key: Annotated[int, Strict(), Field(ge=1, le=255)] | None = None
    # Largest UDP payload of a datagram, and the longest a record waits for one.
    mtu: Annotated[int, Strict(), Field(ge=576, le=9000)] = 1400
    flush_ms: Annotated[float, Field(gt=0, le=1000)] = 2.0
    # At start, the node pulls every live peer's table before it announces any VIP; after
    # this long it announces anyway (saying so).
    full_sync_timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0

    @property
    def address(self) -> str:
        """Where peers send: `advertise`, else `listen`."""
        return self.advertise or self.listen


class NodeConfig(ConfigModel):
    node: NodeSection
    dataplane: DataplaneSection
    api: ApiSection = ApiSection()
    store: StoreSection = StoreSection()
    health: HealthSection = HealthSection()
    bgp: BgpSection = BgpSection()
    sync: SyncSection = SyncSection()
    services: list[ServiceSection] = []


class ConfigError(ValueError):
    """A config that cannot run; `errors` holds (field path, reason) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {path}: {reason}" for path, reason in errors)
        super().__init__(
            f"invalid config ({len(errors)} error{'s' if len(errors) != 1 else ''}):\n{lines}"
        )


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _store_check(cfg: NodeConfig) -> list[tuple[str, str]]:
    """One store, and the etcd settings that come in pairs."""
    errors: list[tuple[str, str]] = []
    etcd = cfg.store.etcd
    if etcd is None:
        return errors
    if cfg.store.file is not None:
        errors.append(("store.etcd", "a node has one store: store.file or store.etcd, not both"))
    if (etcd.cert_file is None) != (etcd.key_file is None):
        missing = "key_file" if etcd.key_file is None else "cert_file"
        errors.append(
            (f"store.etcd.{missing}", "a client certificate needs both cert_file and key_file")
        )
    if (etcd.user is None) != (etcd.password is None):
        missing = "password" if etcd.password is None else "user"
        errors.append((f"store.etcd.{missing}", "etcd authentication needs both user and password"))
    if len({e.startswith("https://") for e in etcd.endpoints}) > 1:
        errors.append(
            ("store.etcd.endpoints", "all https:// or none: TLS is one setting for every endpoint")
        )
    return errors


def _sync_check(cfg: NodeConfig) -> list[tuple[str, str]]:
    sync = cfg.sync
    errors: list[tuple[str, str]] = []
    if not sync.enabled:
        return errors
    if cfg.store.etcd is None:
        errors.append(
            (
                "sync.enabled",
                "session sync finds its peers among the cluster's members: it needs store.etcd",
            )
        )
    if not sync.keys:
        errors.append(
            ("sync.keys", "session sync needs a cluster key (`openssl rand -hex 32` into a file)")
        )
    ids = [k.id for k in sync.keys]
    if len(set(ids)) != len(ids):
        errors.append(("sync.keys", f"key ids must differ: {ids}"))
    if sync.send_key is not None and sync.send_key not in ids:
        errors.append(
            ("sync.send_key", f"{sync.send_key} is not the id of one of sync.keys ({ids})")
        )
    for field, value in (("sync.listen", sync.listen), ("sync.advertise", sync.advertise)):
        if value is None:
            continue
        try:
            ipaddress.ip_address(value.rsplit(":", 1)[0].strip("[]"))
        except ValueError:
            errors.append((field, f"{value}: the sync thread takes an IP address, not a name"))
    host = sync.listen.rsplit(":", 1)[0].strip("[]")
    if sync.advertise is None and host in ("0.0.0.0", "::"):
        errors.append(
            ("sync.advertise", f"listen is {sync.listen}: say where peers reach this node")
        )
    return errors


def _cross_check(cfg: NodeConfig) -> list[tuple[str, str]]:
    """Checks that need more than one field: they name the field that is wrong."""
    errors: list[tuple[str, str]] = _store_check(cfg) + _sync_check(cfg)
    if cfg.store.etcd is not None and cfg.api.audit_log is None:
        errors.append(
            (
                "api.audit_log",
                "a node with store.etcd needs a file for its audit log (there is no store "
                "folder to keep it beside)",
            )
        )
    dp = cfg.dataplane
    port_names: dict[str, int] = {}
    laddrs: dict[IPAddress, str] = {}
    for i, port in enumerate(dp.ports):
        where = f"dataplane.ports[{i}]"
        if port.name in port_names:
            errors.append(
                (f"{where}.name", f"'{port.name}' is used by ports[{port_names[port.name]}] too")
            )
        port_names.setdefault(port.name, i)
        families = [a.version for a in port.address]
        if len(set(families)) != len(families):
            errors.append((f"{where}.address", "at most one address per IP version"))
        gw_families = [g.version for g in port.gateway]
        if len(set(gw_families)) != len(gw_families):
            errors.append((f"{where}.gateway", "at most one gateway per IP version"))
        for j, gw in enumerate(port.gateway):
            if not any(a.version == gw.version and gw in a.network for a in port.address):
                errors.append((f"{where}.gateway[{j}]", f"{gw} is not in a subnet of this port"))
        if port.local_addresses and len(port.local_addresses) != dp.workers:
            errors.append(
                (
                    f"{where}.local_addresses",
                    f"needs one list per worker: {dp.workers} workers, "
                    f"{len(port.local_addresses)} lists",
                )
            )
        for w, worker_list in enumerate(port.local_addresses):
            for k, addr in enumerate(worker_list):
                at = f"{where}.local_addresses[{w}][{k}]"
                if addr in laddrs:
                    errors.append((at, f"{addr} is also {laddrs[addr]}"))
                laddrs.setdefault(addr, at)
    # A port's own addresses (the kernel side answers them) and its IPv4 subnets'
    # broadcast addresses cannot be VIPs.
    port_owned: dict[IPAddress, str] = {}
    for i, port in enumerate(dp.ports):
        for a in port.address:
            port_owned[a.ip] = f"the address of dataplane.ports[{i}]"
            if a.version == 4 and a.network.prefixlen < 31:
                port_owned.setdefault(
                    a.network.broadcast_address, f"the broadcast address of {a.network}"
                )
    seen: dict[tuple[IPAddress, int, str], int] = {}
    for i, svc in enumerate(cfg.services):
        where = f"services[{i}]"
        key = (svc.vip, svc.port, svc.protocol)
        if key in seen:
            errors.append(
                (where, f"{svc.vip}:{svc.port}/{svc.protocol} is also services[{seen[key]}]")
            )
        seen.setdefault(key, i)
        if svc.vip in laddrs:
            errors.append((f"{where}.vip", f"{svc.vip} is a local address ({laddrs[svc.vip]})"))
        if svc.vip in port_owned:
            errors.append(
                (f"{where}.vip", f"{svc.vip} cannot take connections: {port_owned[svc.vip]}")
            )
        if svc.nic is not None and svc.nic not in port_names:
            errors.append(
                (f"{where}.nic", f"no port named '{svc.nic}' (ports: {', '.join(port_names)})")
            )
        if svc.protocol == "udp" and svc.client_address != "none":
            errors.append((f"{where}.client_address", "TOA and PROXY protocol need protocol tcp"))
        if svc.proxy_protocol_from_client == "trust" and not svc.client_address.startswith("proxy"):
            errors.append(
                (
                    f"{where}.proxy_protocol_from_client",
                    "trust needs client_address proxy-v1 or proxy-v2",
                )
            )
        reals_seen: dict[tuple[IPAddress, int], int] = {}
        for j, real in enumerate(svc.reals):
            if real.address.version != svc.vip.version:
                errors.append(
                    (
                        f"{where}.reals[{j}].address",
                        f"IPv{real.address.version} real behind an IPv{svc.vip.version} VIP",
                    )
                )
            endpoint = (real.address, real.port)
            if endpoint in reals_seen:
                errors.append(
                    (
                        f"{where}.reals[{j}]",
                        f"{real.address}:{real.port} is also reals[{reals_seen[endpoint]}]",
                    )
                )
            reals_seen.setdefault(endpoint, j)
        needs = {r.address.version for r in svc.reals}
        for version in sorted(needs):
            if not any(a.version == version for a in laddrs):
                errors.append((f"{where}.reals", f"no IPv{version} local address on any port"))
    bgp = cfg.bgp
    if bgp.enabled:
        if bgp.backup.path_prepend and bgp.asn is None:
            errors.append(("bgp.asn", "required for backup.path_prepend (set it, or 0 prepends)"))
        if bgp.routes_file == bgp.bird_config:
            errors.append(("bgp.routes_file", "must not be bird_config itself (dplb rewrites it)"))
        if cfg.store.file is None and not cfg.store.etcd:
            errors.append(
                ("bgp.enabled", "needs store.file or store.etcd: BIRD is driven by the node's API")
            )
        if not bgp.routes_file.is_absolute():
            errors.append(("bgp.routes_file", "must be an absolute path (BIRD includes it)"))
    return errors


def parse_config(data: Any) -> NodeConfig:
    """Validates a config given as a mapping; raises ConfigError listing every error."""
    try:
        cfg = NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([(_path(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    errors = _cross_check(cfg)
    if errors:
        raise ConfigError(errors)
    return cfg


def load_config(path: str | Path) -> NodeConfig:
    """Reads and validates a YAML node config file."""
    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("(file)", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([("(top)", "the config must be a mapping")])
    return parse_config(data)
