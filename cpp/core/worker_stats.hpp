// Per-worker counters: written only by their worker, read by the control side (relaxed
// reads of 64-bit counters are enough for metrics).
#pragma once

#include <array>
#include <cstdint>

#include "core/drop_reason.hpp"

namespace dplb::core {

// Client-address pass-through events (TOA, PROXY protocol), named once for the stats
// dict and metrics.
#define DPLB_FOREACH_CLIENT_ADDRESS_COUNTER(X)                                                          \
    X(toa_inserted, "segments toward a real that got the TOA option")                                 \
    X(toa_no_room, "segments that should have carried TOA but had no room for it (sent unchanged)")   \
    X(proxy_header_sent, "PROXY protocol headers sent to a real")                                     \
    X(proxy_header_resent, "PROXY protocol headers sent again (the real had not acknowledged them)")  \
    X(proxy_header_translated, "PROXY headers of trusted clients replaced by dplb's")                  \
    X(proxy_refused, "connections reset because the client sent its own PROXY header")               \
    X(proxy_invalid, "connections reset because a trusted client's PROXY header was malformed")      \
    X(syn_data_stripped, "client SYNs whose data (TCP Fast Open) dplb removed; the client sends it again")

struct alignas(64) WorkerStats {
    uint64_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_packets = 0;
    uint64_t tx_bytes = 0;
    uint64_t sessions_created = 0;
    uint64_t sessions_expired = 0;
    uint64_t sessions_reset = 0;  // removed on the control side's request (not expired)
    uint64_t handed_over = 0;   // packets this worker passed to their owner worker
    uint64_t handed_in = 0;     // packets another worker passed to this one
    uint64_t to_control = 0;    // packets for the control path (ARP, ND, port address...)
    uint64_t icmp_translated = 0;
    uint64_t awaiting_neighbour = 0;  // rewritten packets held by the control side for a MAC
    uint64_t log_dropped = 0;  // log records not written: the log ring was full
    uint64_t expiry_behind = 0;  // clock moves that left due sessions for the next (budget reached)
#define DPLB_CLIENT_ADDRESS_FIELD(name, text) uint64_t name = 0;
    DPLB_FOREACH_CLIENT_ADDRESS_COUNTER(DPLB_CLIENT_ADDRESS_FIELD)
#undef DPLB_CLIENT_ADDRESS_FIELD
    std::array<uint64_t, kDropReasonCount> drops{};

    void drop(DropReason r) { ++drops[static_cast<size_t>(r)]; }
    uint64_t dropped(DropReason r) const { return drops[static_cast<size_t>(r)]; }
};

}  // namespace dplb::core
