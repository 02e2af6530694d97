// Control traffic classes and the rest's token bucket (control_class.hpp).
#include "core/control_class.hpp"

#include <algorithm>

namespace dplb::core {
namespace {

constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmp6EchoReply = 129;

bool is_port_address(const IpAddress& a, std::span<const Prefix> port_addresses) {
    for (const Prefix& p : port_addresses) {
        if (p.address == a) return true;
    }
    return false;
}

bool is_bfd(uint16_t port) { return port == kBfdControlPort || port == kBfdEchoPort || port == kBfdMultihopPort; }

}  // namespace

std::string_view control_class_name(ControlClass c) {
    switch (c) {
        case ControlClass::neighbour: return "neighbour";
        case ControlClass::routing: return "routing";
        case ControlClass::node: return "node";
        default: return "rest";
    }
}

ControlClass classify_control(const uint8_t* frame, uint32_t len, const ParsedPacket& p,
                              std::span<const Prefix> port_addresses) {
    if (p.status == ParseStatus::not_ip) {
        if (len < 14) return ControlClass::rest;
        uint16_t type = load_be16(frame + 12);
        if (type == kEtherTypeVlan && len >= 18) type = load_be16(frame + 16);
        return type == kEtherTypeArp ? ControlClass::neighbour : ControlClass::rest;
    }
    if (p.status != ParseStatus::ok) return ControlClass::rest;
    const uint8_t proto = p.key.proto;
    if (p.ipv6 && proto == static_cast<uint8_t>(L4Proto::icmpv6) && p.icmp_type >= 133 && p.icmp_type <= 137) {
        return ControlClass::neighbour;  // RS, RA, NS, NA, redirect
    }
    const bool to_me = is_port_address(p.key.dst, port_addresses);
    if (!to_me && !is_port_address(p.key.src, port_addresses)) return ControlClass::rest;
    if (proto == static_cast<uint8_t>(L4Proto::tcp)) {
        if (p.key.src_port == kBgpPort || p.key.dst_port == kBgpPort) return ControlClass::routing;
        // Any segment with ACK belongs to a connection the kernel side opened or accepted
        // (health checks, SSH, the API); a bare SYN or junk without ACK is the rest.
        if (to_me && (p.tcp_flags & kTcpAck) != 0) return ControlClass::node;
        return ControlClass::rest;
    }
    if (proto == static_cast<uint8_t>(L4Proto::udp)) {
        return is_bfd(p.key.dst_port) ? ControlClass::routing : ControlClass::rest;
    }
    if (to_me && ((proto == static_cast<uint8_t>(L4Proto::icmp) && !p.ipv6 && p.icmp_type == kIcmpEchoReply) ||
                  (proto == static_cast<uint8_t>(L4Proto::icmpv6) && p.ipv6 && p.icmp_type == kIcmp6EchoReply))) {
        return ControlClass::node;  // answers to the node's own pings
    }
    return ControlClass::rest;
}

TokenBucket::TokenBucket(uint64_t rate_per_second, uint64_t burst, uint64_t now_ns)
    : rate_(rate_per_second), burst_(std::clamp<uint64_t>(burst, 1, kMaxBurst)), last_ns_(now_ns) {
    tokens_ = burst_ * kScale;
}

bool TokenBucket::take(uint64_t now_ns) {
    if (rate_ == 0) return true;
    const uint64_t cap = burst_ * kScale;
    if (now_ns > last_ns_) {
        // Refill; an elapsed time past what fills the bucket is capped first (no overflow).
        const uint64_t full_after_ns = cap / rate_ + 1;
        const uint64_t elapsed = std::min(now_ns - last_ns_, full_after_ns);
        tokens_ = std::min(cap, tokens_ + elapsed * rate_);
        last_ns_ = now_ns;
    }
    if (tokens_ < kScale) return false;
    tokens_ -= kScale;
    return true;
}

}  // namespace dplb::core
