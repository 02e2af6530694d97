// Frame parsing: L2 -> L3 -> L4 with every length checked against the frame, each
// malformation mapped to its own drop reason.
#include <cstring>

#include "core/packet.hpp"

namespace dplb::core {
namespace {

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoDestOpts = 60;
constexpr int kMaxIpv6Extensions = 8;

void set_dropped(ParsedPacket& p, DropReason r) {
    p.status = ParseStatus::dropped;
    p.drop = r;
}

// IPv4 as ::ffff:a.b.c.d, in two 8-byte stores.
void store_v4(IpAddress& a, const uint8_t* src) {
    uint32_t v;
    std::memcpy(&v, src, 4);
    const uint64_t lo = 0;
    const uint64_t hi = uint64_t(v) << 32 | 0xffff0000ULL;
    std::memcpy(a.bytes.data(), &lo, 8);
    std::memcpy(a.bytes.data() + 8, &hi, 8);
}

void store_v6(IpAddress& a, const uint8_t* src) {
    uint64_t w[2];
    std::memcpy(w, src, 16);
    std::memcpy(a.bytes.data(), w, 16);
}

// Ports, protocol and padding of the key in one 8-byte store.
void store_key_tail(FlowKey& k, uint16_t src_port, uint16_t dst_port, uint8_t proto) {
    const uint64_t tail = uint64_t(src_port) | uint64_t(dst_port) << 16 | uint64_t(proto) << 32;
    std::memcpy(&k.src_port, &tail, 8);
}
static_assert(offsetof(FlowKey, src_port) == 32 && offsetof(FlowKey, proto) == 36);

// L4 header checks from l4_offset with `avail` bytes of L4 in the IP packet. `inner`
// relaxes them for the quoted packet of an ICMP error (only 8 bytes are quoted).
void parse_l4(ParsedPacket& p, const uint8_t* data, uint32_t avail, uint8_t proto, bool inner) {
    const uint8_t* l4 = data + p.l4_offset;
    uint16_t sport = 0, dport = 0;
    switch (proto) {
        case static_cast<uint8_t>(L4Proto::tcp): {
            if (avail < (inner ? 8u : 20u)) return set_dropped(p, DropReason::truncated);
            sport = load_be16(l4);
            dport = load_be16(l4 + 2);
            if (!inner) {
                uint32_t header_len = (l4[12] >> 4) * 4u;
                if (header_len < 20 || header_len > avail) return set_dropped(p, DropReason::bad_l4_header);
                p.tcp_flags = l4[13];
                p.payload_offset = static_cast<uint16_t>(p.l4_offset + header_len);
            }
            break;
        }
        case static_cast<uint8_t>(L4Proto::udp): {
            if (avail < 8) return set_dropped(p, DropReason::truncated);
            sport = load_be16(l4);
            dport = load_be16(l4 + 2);
            if (!inner) {
                uint32_t udp_len = load_be16(l4 + 4);
                if (udp_len < 8 || udp_len > avail) return set_dropped(p, DropReason::bad_l4_header);
                p.payload_offset = static_cast<uint16_t>(p.l4_offset + 8);
            }
            break;
        }
        case static_cast<uint8_t>(L4Proto::icmp):
        case static_cast<uint8_t>(L4Proto::icmpv6): {
            if (avail < 8) return set_dropped(p, DropReason::truncated);
            p.icmp_type = l4[0];
            p.icmp_code = l4[1];
            p.payload_offset = static_cast<uint16_t>(p.l4_offset + 8);
            break;
        }
        default:
            p.payload_offset = p.l4_offset;
            break;
    }
    store_key_tail(p.key, sport, dport, proto);
    p.status = ParseStatus::ok;
}

void parse_ipv4(ParsedPacket& p, const uint8_t* data, uint32_t len, bool inner) {
    const uint32_t off = p.l3_offset;
    if (len < off + 20) return set_dropped(p, DropReason::truncated);
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 4) return set_dropped(p, DropReason::bad_ip_version);
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20 || off + ihl > len) return set_dropped(p, DropReason::bad_ip_header_length);
    uint32_t total = load_be16(ip + 2);
    if (total < ihl) return set_dropped(p, DropReason::bad_ip_total_length);
    if (!inner && off + total > len) return set_dropped(p, DropReason::bad_ip_total_length);
    uint16_t frag = load_be16(ip + 6);
    if ((frag & 0x3fff) != 0) return set_dropped(p, DropReason::fragment);  // MF or offset
    p.ipv6 = false;
    p.ttl = ip[8];
    store_v4(p.key.src, ip + 12);
    store_v4(p.key.dst, ip + 16);
    p.l4_offset = static_cast<uint16_t>(off + ihl);
    p.l4_length = static_cast<uint16_t>(total - ihl);
    uint32_t avail = inner ? len - off - ihl : p.l4_length;
    parse_l4(p, data, avail, ip[9], inner);
}

void parse_ipv6(ParsedPacket& p, const uint8_t* data, uint32_t len, bool inner) {
    const uint32_t off = p.l3_offset;
    if (len < off + 40) return set_dropped(p, DropReason::truncated);
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 6) return set_dropped(p, DropReason::bad_ip_version);
    uint32_t payload = load_be16(ip + 4);
    if (!inner && off + 40 + payload > len) return set_dropped(p, DropReason::bad_ip_total_length);
    uint32_t end = inner ? len : off + 40 + payload;
    p.ipv6 = true;
    p.ttl = ip[7];
    store_v6(p.key.src, ip + 8);
    store_v6(p.key.dst, ip + 24);
    uint8_t next = ip[6];
    uint32_t cursor = off + 40;
    for (int i = 0;; ++i) {
        if (next == kProtoFragment) return set_dropped(p, DropReason::fragment);
        if (next != kProtoHopByHop && next != kProtoRouting && next != kProtoDestOpts && next != kProtoAh) break;
        if (i == kMaxIpv6Extensions || cursor + 8 > end) return set_dropped(p, DropReason::bad_ipv6_extension);
        uint32_t ext_len = next == kProtoAh ? (data[cursor + 1] + 2u) * 4u : (data[cursor + 1] + 1u) * 8u;
        next = data[cursor];
        cursor += ext_len;
        if (cursor > end) return set_dropped(p, DropReason::bad_ipv6_extension);
    }
    p.l4_offset = static_cast<uint16_t>(cursor);
    p.l4_length = static_cast<uint16_t>(end - cursor);
    parse_l4(p, data, end - cursor, next, inner);
}

void reset(ParsedPacket& p) {
    p.status = ParseStatus::not_ip;
    p.drop = DropReason::truncated;
    p.ipv6 = false;
    p.ether_type = 0;
    p.l3_offset = p.l4_offset = p.l4_length = p.payload_offset = 0;
    p.tcp_flags = p.icmp_type = p.icmp_code = p.ttl = 0;
}

}  // namespace

void parse_packet(const uint8_t* data, uint32_t len, ParsedPacket& p) {
    reset(p);
    if (len < 14) return set_dropped(p, DropReason::truncated);
    uint16_t type = load_be16(data + 12);
    uint32_t l3 = 14;
    if (type == kEtherTypeVlan) {
        if (len < 18) return set_dropped(p, DropReason::truncated);
        type = load_be16(data + 16);
        l3 = 18;
    }
    p.ether_type = type;
    p.l3_offset = static_cast<uint16_t>(l3);
    if (type == kEtherTypeIpv4) return parse_ipv4(p, data, len, false);
    if (type == kEtherTypeIpv6) return parse_ipv6(p, data, len, false);
}

ParsedPacket parse_packet(const uint8_t* data, uint32_t len) {
    ParsedPacket p;
    parse_packet(data, len, p);
    return p;
}

ParsedPacket parse_inner_ip(const uint8_t* data, uint32_t len, bool ipv6) {
    ParsedPacket p;
    p.ether_type = ipv6 ? kEtherTypeIpv6 : kEtherTypeIpv4;
    if (ipv6) {
        parse_ipv6(p, data, len, true);
    } else {
        parse_ipv4(p, data, len, true);
    }
    return p;
}

}  // namespace dplb::core
