// Full-NAT header rewriting with incremental checksums, and ICMP error translation.
#include "core/nat_rewrite.hpp"

#include <cstring>

#include "core/checksum.hpp"

namespace dplb::core {
namespace {

uint16_t load16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Offset of the L4 checksum for TCP/UDP, or 0 when the quoted bytes do not reach it.
uint32_t l4_checksum_offset(uint8_t proto) {
    if (proto == static_cast<uint8_t>(L4Proto::tcp)) return 16;
    if (proto == static_cast<uint8_t>(L4Proto::udp)) return 6;
    return 0;
}

// Rewrites addresses and ports of an IP packet at `ip` whose L4 header is at `l4`;
// `l4_avail` bytes of L4 are present (a quoted packet may be cut short).
void rewrite_ip_l4(uint8_t* ip, bool ipv6, uint8_t proto, uint8_t* l4, uint32_t l4_avail, const Endpoint& src,
                   const Endpoint& dst, bool decrement_ttl) {
    uint32_t csum_off = l4_checksum_offset(proto);
    bool has_l4_csum = csum_off != 0 && l4_avail >= csum_off + 2;
    uint16_t l4_check = has_l4_csum ? load16(l4 + csum_off) : 0;
    // UDP over IPv4 with checksum 0 carries no checksum: leave it so.
    bool udp_no_csum = proto == static_cast<uint8_t>(L4Proto::udp) && !ipv6 && l4_check == 0;
    bool update_l4 = has_l4_csum && !udp_no_csum;

    uint8_t new_ports[4];
    store_be16(new_ports, src.port);
    store_be16(new_ports + 2, dst.port);
    if (l4_avail >= 4) {
        if (update_l4) l4_check = checksum_replace_bytes(l4_check, l4, new_ports, 4);
        std::memcpy(l4, new_ports, 4);
    }

    if (!ipv6) {
        uint16_t ip_check = load16(ip + 10);
        ip_check = checksum_replace_bytes(ip_check, ip + 12, src.address.v4(), 4);
        ip_check = checksum_replace_bytes(ip_check, ip + 16, dst.address.v4(), 4);
        if (update_l4) {
            l4_check = checksum_replace_bytes(l4_check, ip + 12, src.address.v4(), 4);
            l4_check = checksum_replace_bytes(l4_check, ip + 16, dst.address.v4(), 4);
        }
        std::memcpy(ip + 12, src.address.v4(), 4);
        std::memcpy(ip + 16, dst.address.v4(), 4);
        if (decrement_ttl) {
            uint16_t old_word = load16(ip + 8);
            ip[8] = static_cast<uint8_t>(ip[8] - 1);
            ip_check = checksum_replace16(ip_check, old_word, load16(ip + 8));
        }
        store16(ip + 10, ip_check);
    } else {
        if (update_l4) {
            l4_check = checksum_replace_bytes(l4_check, ip + 8, src.address.v6(), 16);
            l4_check = checksum_replace_bytes(l4_check, ip + 24, dst.address.v6(), 16);
        }
        std::memcpy(ip + 8, src.address.v6(), 16);
        std::memcpy(ip + 24, dst.address.v6(), 16);
        if (decrement_ttl) ip[7] = static_cast<uint8_t>(ip[7] - 1);
    }
    if (update_l4) {
        // A UDP checksum that computes to zero is sent as all ones (RFC 768).
        if (proto == static_cast<uint8_t>(L4Proto::udp) && l4_check == 0) l4_check = 0xffff;
        store16(l4 + csum_off, l4_check);
    }
}

}  // namespace

void rewrite_full_nat(uint8_t* frame, const ParsedPacket& p, const Endpoint& src, const Endpoint& dst) {
    rewrite_ip_l4(frame + p.l3_offset, p.ipv6, p.key.proto, frame + p.l4_offset, p.l4_length, src, dst, true);
}

void translate_icmp_error(uint8_t* frame, uint32_t len, const ParsedPacket& outer, uint32_t inner_offset,
                          const ParsedPacket& inner, const IpAddress& outer_src, const IpAddress& outer_dst,
                          const Endpoint& inner_src, const Endpoint& inner_dst) {
    uint8_t* inner_ip = frame + inner_offset;
    uint32_t inner_len = len - inner_offset;
    uint32_t inner_l4_avail = inner_len - inner.l4_offset;
    rewrite_ip_l4(inner_ip, inner.ipv6, inner.key.proto, inner_ip + inner.l4_offset, inner_l4_avail, inner_src,
                  inner_dst, false);
    if (!inner.ipv6) {
        // The quoted header is complete, so recompute rather than patch its checksum.
        store16(inner_ip + 10, 0);
        store16(inner_ip + 10, ipv4_header_checksum(inner_ip, inner.l4_offset));
    }

    uint8_t* ip = frame + outer.l3_offset;
    uint8_t* icmp = frame + outer.l4_offset;
    uint32_t icmp_len = outer.l4_length;
    if (!outer.ipv6) {
        std::memcpy(ip + 12, outer_src.v4(), 4);
        std::memcpy(ip + 16, outer_dst.v4(), 4);
        ip[8] = static_cast<uint8_t>(ip[8] - 1);
        store16(ip + 10, 0);
        store16(ip + 10, ipv4_header_checksum(ip, outer.l4_offset - outer.l3_offset));
        store16(icmp + 2, 0);
        store16(icmp + 2, checksum_finish(checksum_add(icmp, icmp_len)));
    } else {
        std::memcpy(ip + 8, outer_src.v6(), 16);
        std::memcpy(ip + 24, outer_dst.v6(), 16);
        ip[7] = static_cast<uint8_t>(ip[7] - 1);
        store16(icmp + 2, 0);
        store16(icmp + 2, l4_checksum(outer_src, outer_dst, 58, icmp, icmp_len));
    }
}

}  // namespace dplb::core
