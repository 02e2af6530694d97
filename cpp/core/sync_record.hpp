// SyncRecord: what a worker tells its node's peers about one of its sessions (session sync,
// DESIGN section 7), as it sits in the worker's sync ring in host byte order. The sync
// codec (sync_codec.hpp) turns records into authenticated datagrams in network byte
// order; a peer's engine installs them (Engine::install_synced) on the worker its own
// steering picks for the session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/flow_key.hpp"
#include "core/session.hpp"
#include "core/spsc_ring.hpp"
#include "core/tcp_track.hpp"

namespace dplb::core {

enum class SyncKind : uint8_t {
    open,     // a session became worth keeping elsewhere: TCP established, UDP created
    update,   // its TCP state changed (FIN, RST) or its client-address state was decided
    refresh,  // a long-lived session, again, so that a peer's copy does not expire
    close,    // it was freed here: a peer drops its copy
};

// Every field a session needs to go on at a peer: the peer takes timeouts and counters
// from its own config (the service is named by the inbound tuple's VIP, port, protocol).
struct alignas(64) SyncRecord {
    FlowKey inbound;            // client -> VIP
    FlowKey outbound;           // real -> local address: the real and laddr:lport
    TcpTrack track;             // TCP sequence tracking of both sides
    uint32_t remaining_ms = 0;  // of the current state's timeout, when it was pushed
    int32_t seq_delta = 0;      // PROXY: bytes dplb added to the client's stream
    uint16_t worker = 0;        // the worker that holds it at the sender
    SyncKind kind = SyncKind::open;
    TcpState state = TcpState::none;
    uint8_t session_flags = 0;  // kSessionFin*, kSessionRealClosedFirst, kSessionClientAddress
    ClientAddressMode ca_mode = ClientAddressMode::none;
    uint8_t ca_flags = 0;       // kCa* bits
    uint8_t ca_header_len = 0;  // PROXY: length of dplb's header
    uint32_t client_isn = 0;    // the client's SYN sequence number (TOA/PROXY: where the stream starts)
};
static_assert(std::is_trivially_copyable_v<SyncRecord>);
static_assert(sizeof(SyncRecord) == 192, "a sync record is three cache lines");
static_assert(offsetof(SyncRecord, client_isn) == 132, "client_isn took the place of pad[4]");

// Per worker, like the log ring: 8192 records (1.5 MiB) ride out a sync thread that
// stalls for a moment; past that, records are dropped and counted (the periodic refresh
// repairs what was lost for sessions that live on).
inline constexpr uint32_t kSyncRingSlots = 8192;
using SyncRing = SpscRing<SyncRecord, kSyncRingSlots>;

}  // namespace dplb::core
