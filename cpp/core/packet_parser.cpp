// Frame parsing: L2 -> L3 -> L4 with every length checked against the frame, each
// malformation mapped to its own drop reason.
#include "core/packet.hpp"

namespace dplb::core {
namespace {

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoDestOpts = 60;
constexpr int kMaxIpv6Extensions = 8;

ParsedPacket dropped(ParsedPacket p, DropReason r) {
    p.status = ParseStatus::dropped;
    p.drop = r;
    return p;
}

// L4 header checks from l4_offset with l4_length bytes available in the IP packet.
// `inner` relaxes them for the quoted packet of an ICMP error (only 8 bytes are quoted).
ParsedPacket parse_l4(ParsedPacket p, const uint8_t* data, uint32_t avail, bool inner) {
    const uint8_t* l4 = data + p.l4_offset;
    uint32_t len = inner ? avail : p.l4_length;
    switch (p.key.proto) {
        case static_cast<uint8_t>(L4Proto::tcp): {
            if (len < (inner ? 8u : 20u)) return dropped(p, DropReason::truncated);
            p.key.src_port = load_be16(l4);
            p.key.dst_port = load_be16(l4 + 2);
            if (inner) break;
            uint32_t header_len = (l4[12] >> 4) * 4u;
            if (header_len < 20 || header_len > len) return dropped(p, DropReason::bad_l4_header);
            p.tcp_flags = l4[13];
            p.payload_offset = static_cast<uint16_t>(p.l4_offset + header_len);
            break;
        }
        case static_cast<uint8_t>(L4Proto::udp): {
            if (len < 8) return dropped(p, DropReason::truncated);
            p.key.src_port = load_be16(l4);
            p.key.dst_port = load_be16(l4 + 2);
            if (inner) break;
            uint32_t udp_len = load_be16(l4 + 4);
            if (udp_len < 8 || udp_len > len) return dropped(p, DropReason::bad_l4_header);
            p.payload_offset = static_cast<uint16_t>(p.l4_offset + 8);
            break;
        }
        case static_cast<uint8_t>(L4Proto::icmp):
        case static_cast<uint8_t>(L4Proto::icmpv6): {
            if (len < 8) return dropped(p, DropReason::truncated);
            p.icmp_type = l4[0];
            p.icmp_code = l4[1];
            p.payload_offset = static_cast<uint16_t>(p.l4_offset + 8);
            break;
        }
        default:
            p.payload_offset = p.l4_offset;
            break;
    }
    p.status = ParseStatus::ok;
    return p;
}

ParsedPacket parse_ipv4(ParsedPacket p, const uint8_t* data, uint32_t len, bool inner) {
    const uint32_t off = p.l3_offset;
    if (len < off + 20) return dropped(p, DropReason::truncated);
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 4) return dropped(p, DropReason::bad_ip_version);
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20 || off + ihl > len) return dropped(p, DropReason::bad_ip_header_length);
    uint32_t total = load_be16(ip + 2);
    if (total < ihl) return dropped(p, DropReason::bad_ip_total_length);
    if (!inner && off + total > len) return dropped(p, DropReason::bad_ip_total_length);
    uint16_t frag = load_be16(ip + 6);
    if ((frag & 0x3fff) != 0) return dropped(p, DropReason::fragment);  // MF or offset
    p.ipv6 = false;
    p.ttl = ip[8];
    p.key.proto = ip[9];
    p.key.src = IpAddress::from_v4(ip + 12);
    p.key.dst = IpAddress::from_v4(ip + 16);
    p.l4_offset = static_cast<uint16_t>(off + ihl);
    p.l4_length = static_cast<uint16_t>(total - ihl);
    uint32_t avail = inner ? len - off - ihl : p.l4_length;
    return parse_l4(p, data, avail, inner);
}

ParsedPacket parse_ipv6(ParsedPacket p, const uint8_t* data, uint32_t len, bool inner) {
    const uint32_t off = p.l3_offset;
    if (len < off + 40) return dropped(p, DropReason::truncated);
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 6) return dropped(p, DropReason::bad_ip_version);
    uint32_t payload = load_be16(ip + 4);
    if (!inner && off + 40 + payload > len) return dropped(p, DropReason::bad_ip_total_length);
    uint32_t end = inner ? len : off + 40 + payload;
    p.ipv6 = true;
    p.ttl = ip[7];
    p.key.src = IpAddress::from_v6(ip + 8);
    p.key.dst = IpAddress::from_v6(ip + 24);
    uint8_t next = ip[6];
    uint32_t cursor = off + 40;
    for (int i = 0;; ++i) {
        if (next == kProtoFragment) return dropped(p, DropReason::fragment);
        if (next != kProtoHopByHop && next != kProtoRouting && next != kProtoDestOpts &&
            next != kProtoAh) {
            break;
        }
        if (i == kMaxIpv6Extensions || cursor + 8 > end) {
            return dropped(p, DropReason::bad_ipv6_extension);
        }
        uint32_t ext_len = next == kProtoAh ? (data[cursor + 1] + 2u) * 4u : (data[cursor + 1] + 1u) * 8u;
        next = data[cursor];
        cursor += ext_len;
        if (cursor > end) return dropped(p, DropReason::bad_ipv6_extension);
    }
    p.key.proto = next;
    p.l4_offset = static_cast<uint16_t>(cursor);
    p.l4_length = static_cast<uint16_t>(end - cursor);
    return parse_l4(p, data, end - cursor, inner);
}

}  // namespace

ParsedPacket parse_packet(const uint8_t* data, uint32_t len) {
    ParsedPacket p;
    if (len < 14) return dropped(p, DropReason::truncated);
    uint16_t type = load_be16(data + 12);
    uint32_t l3 = 14;
    if (type == kEtherTypeVlan) {
        if (len < 18) return dropped(p, DropReason::truncated);
        type = load_be16(data + 16);
        l3 = 18;
    }
    p.ether_type = type;
    p.l3_offset = static_cast<uint16_t>(l3);
    if (type == kEtherTypeIpv4) return parse_ipv4(p, data, len, false);
    if (type == kEtherTypeIpv6) return parse_ipv6(p, data, len, false);
    p.status = ParseStatus::not_ip;
    return p;
}

ParsedPacket parse_inner_ip(const uint8_t* data, uint32_t len, bool ipv6) {
    ParsedPacket p;
    p.l3_offset = 0;
    p.ether_type = ipv6 ? kEtherTypeIpv6 : kEtherTypeIpv4;
    return ipv6 ? parse_ipv6(p, data, len, true) : parse_ipv4(p, data, len, true);
}

}  // namespace dplb::core
