// Per-worker counters: written only by their worker, read by the control side and the
// Python views at any time, so each is a SingleWriterCounter (core/counter.hpp).
#pragma once

#include <array>
#include <cstdint>

#include "core/counter.hpp"
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

// Session sync (worker_sync.cpp), named once for the stats dict and metrics.
#define DPLB_FOREACH_SYNC_COUNTER(X)                                                                     \
    X(sync_pushed, "sync records pushed to the sync ring")                                              \
    X(sync_dropped, "sync records not pushed: the sync ring was full")                                  \
    X(sync_installed, "peers' sessions installed as synced copies")                                     \
    X(sync_updated, "synced copies updated by a peer's record")                                         \
    X(sync_removed, "synced copies removed by a peer's close record")                                   \
    X(sync_adopted, "synced copies that traffic made this node's own")                                  \
    X(sync_expired, "synced copies that expired without traffic")                                       \
    X(sync_conflict, "peer records refused: this node has its own session with that tuple")            \
    X(sync_refused_no_service, "peer records refused: no service for their VIP, port and protocol")   \
    X(sync_refused_no_real, "peer records refused: their real is not configured in the service")      \
    X(sync_refused_no_route, "peer records refused: no route to their real or client")                \
    X(sync_refused_table_full, "peer records refused: the session table is full")

struct alignas(64) WorkerStats {
    Counter rx_packets = 0;
    Counter rx_bytes = 0;
    Counter tx_packets = 0;
    Counter tx_bytes = 0;
    Counter sessions_created = 0;
    Counter sessions_expired = 0;
    Counter sessions_reset = 0;  // removed on the control side's request (not expired)
    Counter handed_over = 0;   // packets this worker passed to their owner worker
    Counter handed_in = 0;     // packets another worker passed to this one
    Counter to_control = 0;    // packets for the control path (ARP, ND, port address...)
    Counter icmp_translated = 0;
    Counter awaiting_neighbour = 0;  // rewritten packets held by the control side for a MAC
    Counter log_dropped = 0;  // log records not written: the log ring was full
    Counter expiry_behind = 0;  // clock moves that left due sessions for the next (budget reached)
#define DPLB_CLIENT_ADDRESS_FIELD(name, text) Counter name = 0;
    DPLB_FOREACH_CLIENT_ADDRESS_COUNTER(DPLB_CLIENT_ADDRESS_FIELD)
#undef DPLB_CLIENT_ADDRESS_FIELD
#define DPLB_SYNC_FIELD(name, text) Counter name = 0;
    DPLB_FOREACH_SYNC_COUNTER(DPLB_SYNC_FIELD)
#undef DPLB_SYNC_FIELD
    std::array<Counter, kDropReasonCount> drops{};

    void drop(DropReason r) { ++drops[static_cast<size_t>(r)]; }
    uint64_t dropped(DropReason r) const { return drops[static_cast<size_t>(r)]; }
};

}  // namespace dplb::core
