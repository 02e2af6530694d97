// What kind of control traffic a frame is (ARP/ND, routing protocols, the node's own
// connections, the rest), decided by the worker before it leaves the data path, and the
// token bucket that rate-limits "the rest" per worker. Pure: no clock, no I/O.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "core/ip_address.hpp"
#include "core/packet.hpp"

namespace dplb::core {

// Ordered by priority: every class but `rest` goes to the control lcore's priority ring.
enum class ControlClass : uint8_t {
    neighbour,  // ARP, IPv6 neighbour discovery (router/neighbour solicit and advert, redirect)
    routing,    // BGP (TCP 179 either side) and BFD (UDP 3784/3785/4784) to or from a port address
    node,       // the node's own connections: TCP with ACK to a port address, echo replies
    rest,       // everything else (junk to non-VIP addresses, new connections, ...)
};

inline constexpr uint16_t kBgpPort = 179;
inline constexpr uint16_t kBfdControlPort = 3784;
inline constexpr uint16_t kBfdEchoPort = 3785;
inline constexpr uint16_t kBfdMultihopPort = 4784;

std::string_view control_class_name(ControlClass c);

// Classifies a frame the engine passes to the control side. `parsed` is parse_packet's
// result for it; `port_addresses` the receiving port's own addresses (PortConfig).
ControlClass classify_control(const uint8_t* frame, uint32_t len, const ParsedPacket& parsed,
                              std::span<const Prefix> port_addresses);

// A token bucket counted in nanotokens, so that rates below one per second and bursts of
// one stay exact. rate 0 = no limit; a burst is 1 to 10^9 tokens (clamped). The clock is the caller's (ns, never going back;
// a clock that goes back refills nothing).
class TokenBucket {
public:
    TokenBucket() = default;
    TokenBucket(uint64_t rate_per_second, uint64_t burst, uint64_t now_ns = 0);

    // Takes one token if there is one at `now_ns`; false = over the rate.
    bool take(uint64_t now_ns);
    uint64_t rate() const { return rate_; }
    uint64_t burst() const { return burst_; }

private:
    static constexpr uint64_t kScale = 1'000'000'000ULL;  // nanotokens per token
    static constexpr uint64_t kMaxBurst = 1'000'000'000ULL;  // keeps burst * kScale in 64 bits
    uint64_t rate_ = 0;
    uint64_t burst_ = 0;
    uint64_t tokens_ = 0;  // nanotokens, at most burst_ * kScale
    uint64_t last_ns_ = 0;
};

}  // namespace dplb::core
