// Sequence tracking of a TCP session, cut down from Linux conntrack's tcp_in_window: for
// each side how far it has sent, how far the other side's window lets it go and how far
// it has acknowledged, so that a blind attacker who knows only the 4-tuple cannot reset a
// connection or end it with a FIN.
#pragma once

#include <cstdint>

#include "core/packet.hpp"

namespace dplb::core {

// TcpPeer::flags
inline constexpr uint8_t kPeerSyn = 0x01;     // its SYN was seen: `end` is known
inline constexpr uint8_t kPeerScale = 0x02;   // its SYN offered window scaling
inline constexpr uint8_t kPeerWindow = 0x04;  // the real answered the SYN: `maxend` and `maxack` are known

// One side of a connection, in its own sequence numbers. For the client's stream these
// are the client's numbers, also where PROXY protocol shifts it toward the real: the
// real's ACKs are mapped back before they are tracked.
struct TcpPeer {
    uint32_t end;         // the highest sequence number + length it sent: its next one
    uint32_t maxend;      // the highest the other side's ACK + window lets it reach
    uint32_t maxack;      // the highest ACK it sent: where it stands in the other's stream
    uint16_t syn_window;  // the window of its SYN (never scaled), until the other's SYN
    uint8_t scale;        // its window shift, 0 unless both SYNs offered scaling
    uint8_t flags;        // kPeer* bits
};

struct TcpTrack {
    TcpPeer side[2];  // [0] the client, [1] the real
    uint32_t client_isn;
};
static_assert(sizeof(TcpTrack) == 36);

// The fields of a TCP segment the tracking reads. `len` counts payload bytes only.
struct TcpSegment {
    uint32_t seq = 0;
    uint32_t ack = 0;
    uint32_t len = 0;
    uint16_t window = 0;
    uint8_t flags = 0;
    int8_t wscale = -1;  // the window scale option of a SYN, -1 without one
};

// Reads a parsed TCP segment's numbers (and, for a SYN, its window scale option).
TcpSegment tcp_segment(const uint8_t* frame, const ParsedPacket& p);

// The client's SYN, of a new session or of one the real has not answered yet: tracking
// starts again from it.
void track_syn(TcpTrack& t, const TcpSegment& syn);

enum class TcpCheck : uint8_t {
    ok,     // forward it; its flags count
    quiet,  // forward it, but its RST or FIN must not change the session's state
    drop,   // a RST outside the receiver's window
};

// Any other segment from side `from` (0 client, 1 real). A RST counts when its number is
// exactly where the receiver stands (the sender's next number, or the receiver's last
// ACK) and, before the real answered, when it acknowledges the SYN (RFC 793); inside the
// receiver's window it goes through quietly (the receiver answers with a challenge ACK,
// RFC 5961), outside it is dropped. A FIN counts inside the window. A segment advances
// what is tracked only when its numbers are plausible, so that forged ones cannot move
// the window toward a later forged RST.
TcpCheck track_segment(TcpTrack& t, uint32_t from, const TcpSegment& seg);

}  // namespace dplb::core
