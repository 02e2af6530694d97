// PacketView (a frame in a buffer the engine may modify, as the runtime maps an rte_mbuf)
// and the parser that turns it into a ParsedPacket or a drop reason.
#pragma once

#include <cstdint>

#include "core/drop_reason.hpp"
#include "core/flow_key.hpp"

namespace dplb::core {

// A frame at data[0..len). headroom/tailroom say how far it may grow at either end
// (TOA and PROXY protocol insert bytes). The engine updates data/len when it grows.
struct PacketView {
    uint8_t* data = nullptr;
    uint32_t len = 0;
    uint32_t headroom = 0;
    uint32_t tailroom = 0;
    uint16_t in_port = 0;
};

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeArp = 0x0806;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

enum class ParseStatus : uint8_t {
    ok,        // IPv4/IPv6 with a valid header chain: key, offsets and lengths are set
    not_ip,    // ARP or another EtherType: for the control path
    dropped,   // malformed: `drop` says why
};

struct ParsedPacket {
    FlowKey key;                // addresses; ports for TCP/UDP (0 otherwise); proto
    ParseStatus status = ParseStatus::not_ip;
    DropReason drop = DropReason::truncated;
    bool ipv6 = false;
    uint16_t ether_type = 0;
    uint16_t l3_offset = 0;     // start of the IP header
    uint16_t l4_offset = 0;     // start of the TCP/UDP/ICMP header
    uint16_t l4_length = 0;     // L4 header + payload, as the IP header says
    uint16_t payload_offset = 0;  // first byte after the L4 header
    uint8_t tcp_flags = 0;
    uint8_t icmp_type = 0;
    uint8_t icmp_code = 0;
    uint8_t ttl = 0;            // TTL or hop limit
};

// Parses Ethernet (optionally one 802.1Q tag), IPv4 (options allowed) or IPv6 (extension
// headers walked), then TCP/UDP/ICMP/ICMPv6. Never reads past data[len).
ParsedPacket parse_packet(const uint8_t* data, uint32_t len);
// The same, filling `out` in place (the packet path: no struct copies). The key is
// written with whole-word stores so that hashing it right after reads forwarded stores.
void parse_packet(const uint8_t* data, uint32_t len, ParsedPacket& out);

// Parses an IP packet that starts at `data` (no L2): the inner packet of an ICMP error.
// The inner packet may be cut short: only the IP header and the first 8 bytes of L4 are
// required, and its total length may exceed `len`.
ParsedPacket parse_inner_ip(const uint8_t* data, uint32_t len, bool ipv6);

inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t load_be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void store_be16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

}  // namespace dplb::core
