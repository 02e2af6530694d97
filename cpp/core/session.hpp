// Session: one full-NAT connection as a worker holds it: both tuples, where to send each
// direction, TCP state, expiry and counters. Four cache lines, no pointers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/flow_key.hpp"
#include "core/tcp_track.hpp"

namespace dplb::core {

enum class TcpState : uint8_t {
    none,         // UDP: no state machine
    syn_sent,     // client SYN forwarded, waiting for the real's SYN-ACK
    syn_recv,     // SYN-ACK forwarded, waiting for the client's ACK
    established,
    fin_wait,     // one side has sent FIN
    time_wait,    // both sides have sent FIN
    close,        // reset seen
    count_
};

std::string_view tcp_state_name(TcpState s);

// Index into Session::timeouts_s and into the configured timeouts.
enum class TimeoutKind : uint8_t { tcp_syn, tcp_established, tcp_fin, tcp_time_wait, tcp_close, udp, count_ };
inline constexpr size_t kTimeoutKinds = static_cast<size_t>(TimeoutKind::count_);

// The timeout a session in state `s` runs on.
inline TimeoutKind timeout_kind(TcpState s) {
    switch (s) {
        case TcpState::none: return TimeoutKind::udp;
        case TcpState::syn_sent:
        case TcpState::syn_recv: return TimeoutKind::tcp_syn;
        case TcpState::established: return TimeoutKind::tcp_established;
        case TcpState::fin_wait: return TimeoutKind::tcp_fin;
        case TcpState::time_wait: return TimeoutKind::tcp_time_wait;
        default: return TimeoutKind::tcp_close;
    }
}

inline constexpr uint32_t kNoIndex = 0xffffffffu;

// How a service passes the client's address to its reals (DESIGN section 5).
enum class ClientAddressMode : uint8_t { none, toa, proxy_v1, proxy_v2 };

// Laid out by temperature: a packet of an established flow touches lines 0 and 1 (lookup
// key, MACs, expiry; the other tuple, state, byte counters) and, for TCP, line 3 (the
// sequence tracking); line 2 holds what changes on state changes, timer refiling and
// expiry.
struct alignas(64) Session {
    // line 0
    FlowKey inbound;    // client -> VIP, as it arrives
    uint8_t mac_to_real[6];
    uint8_t mac_to_client[6];
    uint32_t neighbour_generation;  // the neighbour table generation the MACs were read at
    uint32_t expire_tick;
    uint32_t timeout_ticks;         // the timeout of the current state
    // line 1
    FlowKey outbound;   // real -> local address, as it arrives
    uint32_t real_slot;             // the real's counters in the worker
    TcpState state;
    uint8_t flags;                  // kSession* bits
    uint8_t port_to_real;
    uint8_t port_to_client;
    uint64_t bytes_in;              // client -> real
    uint64_t bytes_out;             // real -> client
    // line 2
    uint32_t timer_prev;
    uint32_t timer_next;
    uint32_t timer_filed_tick;      // the tick whose wheel slot holds this session
    uint32_t created_tick;
    uint32_t service_id;
    uint16_t local_address;         // index of the worker's local address (port pool)
    uint16_t pad0;
    uint32_t timeouts_s[kTimeoutKinds];  // the service's timeouts when the session began
    // Client-address pass-through (client_address.hpp), read only with kSessionClientAddress.
    uint32_t client_isn;            // the sequence number of the client's SYN
    int32_t seq_delta;              // PROXY: bytes dplb added to the client's stream (ours - theirs)
    ClientAddressMode ca_mode;
    uint8_t ca_flags;               // kCa* bits
    uint8_t ca_header_len;          // PROXY: length of dplb's header (0 until one is decided)
    uint8_t sync_flags;             // kSync* bits (session sync; 0 with sync off)
    uint8_t pad1[4];
    // line 3
    TcpTrack track;                 // TCP: sequence numbers and windows of both sides
    // Session sync (worker_sync.cpp), read only with sync on: what the last record pushed
    // said, and when, so that a change or an old push shows on the next packet.
    uint32_t sync_tick;             // the tick of the last push
    TcpState sync_state;            // the state it carried
    uint8_t sync_ca;                // its client-address signature (sync_ca_signature)
    uint8_t pad2[22];
};
static_assert(sizeof(Session) == 256, "a session is four cache lines (DESIGN's limit)");
static_assert(offsetof(Session, outbound) == 64, "the second tuple starts line 1");
static_assert(offsetof(Session, timer_prev) == 128, "cold fields start line 2");
static_assert(offsetof(Session, client_isn) >= 128, "client-address state stays out of the hot lines");
static_assert(offsetof(Session, track) == 192, "the sequence tracking is line 3");

inline constexpr uint8_t kSessionFinFromClient = 0x01;
inline constexpr uint8_t kSessionFinFromReal = 0x02;
inline constexpr uint8_t kSessionMacToReal = 0x04;    // mac_to_real is known
inline constexpr uint8_t kSessionMacToClient = 0x08;  // mac_to_client is known
// Packets take the client-address path (TOA, PROXY protocol) of worker_client_address.cpp.
// Set at creation for such services; a TOA session drops it once the real has shown that
// its handshake is complete, and is then forwarded like any other.
inline constexpr uint8_t kSessionClientAddress = 0x10;
// Its service had `connection_log` when it opened: its close is logged too.
inline constexpr uint8_t kSessionLogged = 0x20;
// The real sent the first FIN: it will hold the 4-tuple in TIME_WAIT (PortPool holds).
inline constexpr uint8_t kSessionRealClosedFirst = 0x40;
inline constexpr uint8_t kSessionInUse = 0x80;

// Session::sync_flags (session sync, DESIGN section 7)
inline constexpr uint8_t kSyncPushed = 0x01;     // a record of it went to the sync ring: its free sends `close`
inline constexpr uint8_t kSyncInstalled = 0x02;  // a peer's copy: not ours until a packet arrives
inline constexpr uint8_t kSyncAdopted = 0x04;    // a peer's copy that traffic made ours (laddr is the peer's)

// Session::ca_flags
inline constexpr uint8_t kCaTrust = 0x01;        // PROXY: a client's own header is translated, not refused
inline constexpr uint8_t kCaDecided = 0x02;      // PROXY: seq_delta and ca_header_len are final
inline constexpr uint8_t kCaHeaderSent = 0x04;   // PROXY: dplb's header went to the real at least once
inline constexpr uint8_t kCaHeaderAcked = 0x08;  // PROXY: the real acknowledged it; TOA: the real is established
inline constexpr uint8_t kCaTranslated = 0x10;   // PROXY: dplb's header replaces the client's own
inline constexpr uint8_t kCaRefused = 0x20;      // reset by dplb: every packet gets a RST back
// PROXY: the real's ACKs went more than 1 GiB past the header (in steps smaller than that,
// as windows are): from then on its numbers map by the shift alone, since a comparison
// with the header's raw numbers would alias once the stream wraps past 4 GiB.
inline constexpr uint8_t kCaHeaderFar = 0x40;

}  // namespace dplb::core
