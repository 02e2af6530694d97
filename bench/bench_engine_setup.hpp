// The node every engine benchmark drives: port0 toward clients behind a gateway, port1
// toward kBenchReals real servers, and enough local addresses for the sessions asked for.
#pragma once

#include <array>
#include <cstdint>

#include "core/engine_config.hpp"

namespace dplb::bench {

inline constexpr uint32_t kBenchReals = 4;
inline constexpr uint32_t kPortsPerLocalAddress = 64512;  // 1024..65535

inline core::IpAddress v4(uint32_t host_order) {
    const uint8_t b[4] = {uint8_t(host_order >> 24), uint8_t(host_order >> 16), uint8_t(host_order >> 8),
                          uint8_t(host_order)};
    return core::IpAddress::from_v4(b);
}

// Real r is 10.0.2.(11 + r):8080; clients come from 198.18.0.0/15 to 10.0.100.10:80.
inline core::EngineConfig bench_engine_config(uint32_t sessions, const std::array<uint8_t, 6>& client_side_mac,
                                              const std::array<uint8_t, 6>& real_side_mac) {
    using namespace dplb::core;
    EngineConfig c;
    c.workers = 1;
    c.sessions_per_worker = sessions + 1024;
    c.local_port_real_time_wait_s = 0;
    PortConfig client_side, real_side;
    client_side.name = "port0";
    client_side.mac = client_side_mac;
    client_side.addresses = {*Prefix::parse("10.0.1.1/24")};
    client_side.gateways = {*IpAddress::parse("10.0.1.254")};
    real_side.name = "port1";
    real_side.mac = real_side_mac;
    real_side.addresses = {*Prefix::parse("10.0.2.1/24"), *Prefix::parse("10.1.0.1/16")};
    real_side.local_addresses.emplace_back();
    for (uint32_t i = 0; i <= sessions / kPortsPerLocalAddress; ++i) {
        real_side.local_addresses[0].push_back(v4(10u << 24 | 1u << 16 | (i + 10)));
    }
    c.ports = {client_side, real_side};
    ServiceConfig svc;
    svc.vip = *IpAddress::parse("10.0.100.10");
    svc.port = 80;
    svc.proto = 6;
    svc.scheduler = SchedulerKind::rr;
    for (uint32_t r = 0; r < kBenchReals; ++r) {
        svc.reals.push_back({v4(10u << 24 | 2u << 8 | (11 + r)), 8080, 100});
    }
    c.services = {svc};
    return c;
}

}  // namespace dplb::bench
