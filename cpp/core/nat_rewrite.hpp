// The full-NAT rewrite: new addresses and ports, TTL/hop limit decremented, checksums
// updated incrementally (RFC 1624); and ICMP error translation, inner header included.
#pragma once

#include <cstdint>

#include "core/packet.hpp"
#include "core/routing.hpp"

namespace dplb::core {

struct Endpoint {
    IpAddress address;
    uint16_t port = 0;
};

// Rewrites a parsed TCP/UDP frame in place. Addresses must keep their family.
void rewrite_full_nat(uint8_t* frame, const ParsedPacket& p, const Endpoint& src, const Endpoint& dst);

inline void set_ethernet(uint8_t* frame, const MacAddress& dst, const MacAddress& src) {
    __builtin_memcpy(frame, dst.data(), 6);
    __builtin_memcpy(frame + 6, src.data(), 6);
}

// Translates an ICMP/ICMPv6 error in place: the outer header gets outer_src -> outer_dst
// (TTL decremented), the quoted packet gets inner_src -> inner_dst; every checksum it
// carries is made right again. `inner_offset` is where the quoted IP header starts.
void translate_icmp_error(uint8_t* frame, uint32_t len, const ParsedPacket& outer, uint32_t inner_offset,
                          const ParsedPacket& inner, const IpAddress& outer_src, const IpAddress& outer_dst,
                          const Endpoint& inner_src, const Endpoint& inner_dst);

// True for the ICMP types dplb translates: destination unreachable (incl. fragmentation
// needed / packet too big) and time exceeded.
inline bool is_translated_icmp_error(bool ipv6, uint8_t type) {
    return ipv6 ? (type == 1 || type == 2 || type == 3) : (type == 3 || type == 11);
}

}  // namespace dplb::core
