// Every reason the engine drops a packet, in one X-macro: the enum, the counter index and
// the name used by metrics and logs all come from this list.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace dplb::core {

#define DPLB_FOREACH_DROP_REASON(X)                                                  \
    X(truncated, "frame shorter than its headers say")                               \
    X(bad_ip_version, "IP version field does not match the EtherType")              \
    X(bad_ip_header_length, "IPv4 header length below 20 bytes or beyond the frame") \
    X(bad_ip_total_length, "IP length beyond the frame or below the header")        \
    X(bad_l4_header, "TCP data offset or UDP length invalid")                       \
    X(bad_ipv6_extension, "IPv6 extension header chain truncated or too long")      \
    X(fragment, "IP fragment (not reassembled)")                                    \
    X(ttl_exceeded, "TTL or hop limit would reach zero")                            \
    X(no_session, "TCP packet other than SYN with no session")                     \
    X(no_real, "no real server with weight above zero")                             \
    X(session_table_full, "session table full, new session refused")                \
    X(no_local_port, "no free local address and port")                              \
    X(no_route, "no route toward the destination")                                  \
    X(no_neighbour, "next hop MAC address unknown")                                  \
    X(icmp_no_session, "ICMP error about no known session")                         \
    X(handover_full, "hand-over ring to the owner worker full")                     \
    X(proxy_no_room, "no buffer room to insert the PROXY protocol header")           \
    X(refused_connection, "RST toward a connection dplb reset (PROXY header refused)")  \
    X(tcp_rst_out_of_window, "TCP RST whose sequence number is outside the receiver's window") \
    X(control_rate_limited, "frame for the control side over dataplane.control.rest_rate_pps (junk, not ARP/BGP/BFD/own)")

enum class DropReason : uint8_t {
#define DPLB_DROP_ENUM(name, text) name,
    DPLB_FOREACH_DROP_REASON(DPLB_DROP_ENUM)
#undef DPLB_DROP_ENUM
        count_
};

inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::count_);

inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonNames = {
#define DPLB_DROP_NAME(name, text) #name,
    DPLB_FOREACH_DROP_REASON(DPLB_DROP_NAME)
#undef DPLB_DROP_NAME
};

inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonHelp = {
#define DPLB_DROP_HELP(name, text) text,
    DPLB_FOREACH_DROP_REASON(DPLB_DROP_HELP)
#undef DPLB_DROP_HELP
};

}  // namespace dplb::core
