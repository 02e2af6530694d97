// EngineConfig: what the engine is built from, already validated by the Python models
// (the engine re-checks what would break it and throws std::invalid_argument).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ip_address.hpp"
#include "core/scheduler.hpp"
#include "core/session.hpp"

namespace dplb::core {

// What a PROXY-protocol service does with a client that sends its own PROXY header
// (dplb behind another proxy): reset the connection, or trust the header and pass on the
// addresses it names in dplb's own header.
enum class ProxyFromClient : uint8_t { refuse, trust };

struct Timeouts {
    // Seconds, indexed by TimeoutKind.
    std::array<uint32_t, kTimeoutKinds> seconds{30, 900, 120, 60, 10, 300};
};

struct RealConfig {
    IpAddress address;
    uint16_t port = 0;
    uint32_t weight = 100;
};

struct ServiceConfig {
    IpAddress vip;
    uint16_t port = 0;
    uint8_t proto = 6;  // 6 tcp, 17 udp
    SchedulerKind scheduler = SchedulerKind::wlc;
    ClientAddressMode client_address = ClientAddressMode::none;
    ProxyFromClient proxy_from_client = ProxyFromClient::refuse;
    uint32_t maglev_table_size = kDefaultMaglevTableSize;
    Timeouts timeouts;
    std::vector<RealConfig> reals;
    bool connection_log = false;  // a log record when each session opens and closes
};

struct PortConfig {
    std::string name;
    std::array<uint8_t, 6> mac{};
    std::vector<Prefix> addresses;    // the port's own addresses and connected subnets
    std::vector<IpAddress> gateways;  // default next hop, one per family at most
    // local_addresses[w]: the SNAT addresses that worker w owns on this port.
    std::vector<std::vector<IpAddress>> local_addresses;
};

struct EngineConfig {
    uint32_t workers = 1;
    uint32_t sessions_per_worker = 65536;
    uint16_t local_port_first = 1024;
    uint16_t local_port_last = 65535;
    // How long a real holds a port in TIME_WAIT after it closed first (Linux: 60 s): the
    // port stays busy toward that real that long from the close, and no longer.
    uint32_t local_port_real_time_wait_s = 60;
    // Unix time (ns) at which the workers' clocks read 0 (PortPoolConfig::clock_epoch_ns).
    uint64_t local_port_clock_epoch_ns = 0;
    uint32_t max_reals = 65536;              // per-real counter slots per worker
    uint32_t max_services = 65536;
    // Frames for the control side that are not ARP/ND, BGP/BFD or the node's own
    // connections (ControlClass::rest): at most this many per second per worker, in
    // bursts of control_rest_burst; 0 = no limit.
    uint64_t control_rest_rate_pps = 10000;
    uint64_t control_rest_burst = 1000;
    // Session sync (DESIGN section 7): workers push records of their sessions for the
    // sync thread and install peers' records. Off: no ring, no push, no cost.
    bool sync_enabled = false;
    uint32_t sync_refresh_ms = 5000;  // a session pushed longer ago is pushed again on its next packet
    std::vector<PortConfig> ports;
    std::vector<ServiceConfig> services;
};

}  // namespace dplb::core
