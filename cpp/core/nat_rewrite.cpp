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
// `l4_avail` bytes of L4 are present (a quoted packet may be cut short). One summed
// delta serves both the IP and the L4 checksum.
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
    uint64_t l4_delta = 0;
    if (l4_avail >= 4) {
        l4_delta = checksum_delta32(checksum_load32(l4), checksum_load32(new_ports));
        std::memcpy(l4, new_ports, 4);
    }

    uint64_t addr_delta = 0;
    if (!ipv6) {
        addr_delta = checksum_delta32(checksum_load32(ip + 12), checksum_load32(src.address.v4())) +
                     checksum_delta32(checksum_load32(ip + 16), checksum_load32(dst.address.v4()));
        std::memcpy(ip + 12, src.address.v4(), 4);
        std::memcpy(ip + 16, dst.address.v4(), 4);
        uint64_t ip_delta = addr_delta;
        if (decrement_ttl) {
            uint16_t old_word = load16(ip + 8);
            ip[8] = static_cast<uint8_t>(ip[8] - 1);
            ip_delta += checksum_delta16(old_word, load16(ip + 8));
        }
        store16(ip + 10, checksum_apply(load16(ip + 10), ip_delta));
    } else {
        for (int w = 0; w < 16; w += 4) {
            addr_delta += checksum_delta32(checksum_load32(ip + 8 + w), checksum_load32(src.address.v6() + w));
            addr_delta += checksum_delta32(checksum_load32(ip + 24 + w), checksum_load32(dst.address.v6() + w));
        }
        std::memcpy(ip + 8, src.address.v6(), 16);
        std::memcpy(ip + 24, dst.address.v6(), 16);
        if (decrement_ttl) ip[7] = static_cast<uint8_t>(ip[7] - 1);
    }
    if (update_l4) {
        l4_check = checksum_apply(l4_check, addr_delta + l4_delta);
        // A UDP checksum that computes to zero is sent as all ones (RFC 768).
        if (proto == static_cast<uint8_t>(L4Proto::udp) && l4_check == 0) l4_check = 0xffff;
        store16(l4 + csum_off, l4_check);
    }
}

}  // namespace

void rewrite_full_nat(uint8_t* frame, const ParsedPacket& p, const Endpoint& src, const Endpoint& dst) {
    if (!p.ipv6) [[likely]] {
        // The common case, straight-line: IPv4 with a full TCP/UDP header.
        uint8_t* ip = frame + p.l3_offset;
        uint8_t* l4 = frame + p.l4_offset;
        const uint32_t new_src = checksum_load32(src.address.v4());
        const uint32_t new_dst = checksum_load32(dst.address.v4());
        const uint32_t new_ports = uint32_t(__builtin_bswap16(src.port)) | uint32_t(__builtin_bswap16(dst.port)) << 16;
        const uint64_t addr_delta = checksum_delta32(checksum_load32(ip + 12), new_src) +
                                    checksum_delta32(checksum_load32(ip + 16), new_dst);
        const uint64_t port_delta = checksum_delta32(checksum_load32(l4), new_ports);
        std::memcpy(ip + 12, &new_src, 4);
        std::memcpy(ip + 16, &new_dst, 4);
        std::memcpy(l4, &new_ports, 4);
        const uint16_t ttl_word = load16(ip + 8);
        ip[8] = static_cast<uint8_t>(ip[8] - 1);
        store16(ip + 10, checksum_apply(load16(ip + 10), addr_delta + checksum_delta16(ttl_word, load16(ip + 8))));
        uint8_t* check = l4 + (p.key.proto == static_cast<uint8_t>(L4Proto::tcp) ? 16 : 6);
        const uint16_t old_check = load16(check);
        if (p.key.proto == static_cast<uint8_t>(L4Proto::tcp)) {
            store16(check, checksum_apply(old_check, addr_delta + port_delta));
        } else if (old_check != 0) {
            const uint16_t c = checksum_apply(old_check, addr_delta + port_delta);
            store16(check, c == 0 ? 0xffff : c);
        }
        return;
    }
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
