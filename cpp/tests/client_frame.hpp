// What the engine tests share: the two-port topology of the harness (client side port0,
// real side port1 with one local address per worker, the VIP 10.0.100.10:80 with the
// real 10.0.2.11:8080), and the TCP frames they send most: client 198.51.100.7:`port` to
// the VIP on port0 (MAC 02:00:00:00:00:01) from the client gateway's MAC
// 0a:00:00:00:01:fe, and the real's answers to a local address; 54 bytes, no checksum
// (the engine checks none).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "core/engine_config.hpp"
#include "core/packet.hpp"

namespace dplb::core::testing_frames {

inline constexpr uint32_t kClientFrameBytes = 54;

// The harness topology with `workers` workers (local address 10.0.2.101 + w each).
inline EngineConfig two_port_config(uint32_t workers, uint32_t sessions_per_worker) {
    auto ip = [](const char* text) { return *IpAddress::parse(text); };
    EngineConfig c;
    c.workers = workers;
    c.sessions_per_worker = sessions_per_worker;
    c.local_port_real_time_wait_s = 0;
    PortConfig client_side, real_side;
    client_side.name = "port0";
    client_side.mac = {2, 0, 0, 0, 0, 1};
    client_side.addresses = {*Prefix::parse("10.0.1.1/24")};
    client_side.gateways = {ip("10.0.1.254")};
    real_side.name = "port1";
    real_side.mac = {2, 0, 0, 0, 0, 2};
    real_side.addresses = {*Prefix::parse("10.0.2.1/24")};
    for (uint32_t w = 0; w < workers; ++w) {
        real_side.local_addresses.push_back({*IpAddress::parse("10.0.2." + std::to_string(101 + w))});
    }
    c.ports = {client_side, real_side};
    ServiceConfig s;
    s.vip = ip("10.0.100.10");
    s.port = 80;
    s.scheduler = SchedulerKind::rr;
    s.reals = {{ip("10.0.2.11"), 8080, 100}};
    c.services = {s};
    return c;
}

// An IPv4 TCP frame of 54 bytes (no options, window 0 unless set after).
inline void write_tcp_frame(uint8_t* f, const uint8_t (&dst_mac)[6], const uint8_t (&src_mac)[6],
                            const uint8_t (&src)[4], const uint8_t (&dst)[4], uint16_t sport, uint16_t dport,
                            uint8_t flags, uint32_t seq = 0, uint32_t ack = 0) {
    std::memset(f, 0, kClientFrameBytes);
    std::memcpy(f, dst_mac, 6);
    std::memcpy(f + 6, src_mac, 6);
    store_be16(f + 12, kEtherTypeIpv4);
    uint8_t* iph = f + 14;
    iph[0] = 0x45;
    store_be16(iph + 2, 40);
    iph[8] = 64;
    iph[9] = 6;
    std::memcpy(iph + 12, src, 4);
    std::memcpy(iph + 16, dst, 4);
    uint8_t* tcp = iph + 20;
    store_be16(tcp, sport);
    store_be16(tcp + 2, dport);
    store_be32(tcp + 4, seq);
    store_be32(tcp + 8, ack);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
}

inline void write_client_frame(uint8_t* f, uint16_t port, uint8_t flags) {
    const uint8_t dst[6] = {2, 0, 0, 0, 0, 1}, src[6] = {0x0a, 0, 0, 0, 1, 0xfe};
    const uint8_t client[4] = {198, 51, 100, 7}, vip[4] = {10, 0, 100, 10};
    write_tcp_frame(f, dst, src, client, vip, port, 80, flags);
}

// The real 10.0.2.11:8080 (MAC 0a:00:00:00:02:11) to local address 10.0.2.101:`lport`
// on port1 (MAC 02:00:00:00:00:02).
inline void write_real_frame(uint8_t* f, uint16_t lport, uint8_t flags, uint32_t seq, uint32_t ack) {
    const uint8_t dst[6] = {2, 0, 0, 0, 0, 2}, src[6] = {0x0a, 0, 0, 0, 2, 0x11};
    const uint8_t real[4] = {10, 0, 2, 11}, laddr[4] = {10, 0, 2, 101};
    write_tcp_frame(f, dst, src, real, laddr, 8080, lport, flags, seq, ack);
    store_be16(f + 14 + 20 + 14, 65535);  // window
}

}  // namespace dplb::core::testing_frames
