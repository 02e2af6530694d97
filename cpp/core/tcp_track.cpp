// TCP sequence tracking (tcp_track.hpp). Every comparison is serial (RFC 1982): numbers
// wrap at 2^32.
#include "core/tcp_track.hpp"

#include <algorithm>

namespace dplb::core {
namespace {

constexpr uint8_t kTcpOptionWindowScale = 3;
constexpr uint8_t kMaxWindowScale = 14;  // RFC 7323 section 2.3

bool after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
// lo <= a <= hi, serially.
bool within(uint32_t a, uint32_t lo, uint32_t hi) { return a - lo <= hi - lo; }

int8_t window_scale(const uint8_t* l4) {
    const uint32_t header = (l4[12] >> 4) * 4u;
    for (uint32_t i = 20; i < header;) {
        const uint8_t kind = l4[i];
        if (kind == 0) break;
        if (kind == 1) {
            ++i;
            continue;
        }
        if (i + 1 >= header || l4[i + 1] < 2 || i + l4[i + 1] > header) break;
        if (kind == kTcpOptionWindowScale && l4[i + 1] == 3) {
            return static_cast<int8_t>(std::min(l4[i + 2], kMaxWindowScale));
        }
        i += l4[i + 1];
    }
    return -1;
}

}  // namespace

TcpSegment tcp_segment(const uint8_t* frame, const ParsedPacket& p) {
    const uint8_t* l4 = frame + p.l4_offset;
    TcpSegment s;
    s.seq = load_be32(l4 + 4);
    s.ack = load_be32(l4 + 8);
    s.window = load_be16(l4 + 14);
    s.flags = p.tcp_flags;
    s.len = p.l4_offset + p.l4_length - p.payload_offset;
    if (s.flags & kTcpSyn) s.wscale = window_scale(l4);
    return s;
}

void track_syn(TcpTrack& t, const TcpSegment& syn) {
    t = TcpTrack{};
    TcpPeer& c = t.side[0];
    t.client_isn = syn.seq;
    c.end = syn.seq + 1 + syn.len;
    c.maxend = c.end;
    c.syn_window = syn.window;
    c.flags = kPeerSyn;
    if (syn.wscale >= 0) {
        c.flags |= kPeerScale;
        c.scale = static_cast<uint8_t>(syn.wscale);
    }
}

TcpCheck track_segment(TcpTrack& t, uint32_t from, const TcpSegment& seg) {
    TcpPeer& p = t.side[from];
    TcpPeer& o = t.side[from ^ 1];
    if (!(t.side[0].flags & kPeerSyn)) return TcpCheck::ok;  // not tracked: a session not opened here
    const bool has_ack = seg.flags & kTcpAck;
    if (!(p.flags & kPeerSyn)) {
        // The real before its SYN-ACK: the SYN-ACK opens its side; a RST counts only when
        // it acknowledges the SYN (a closed port).
        if (from == 1 && (seg.flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck) &&
            within(seg.ack, t.client_isn + 1, o.end)) {
            p.end = seg.seq + 1 + seg.len;
            p.maxack = seg.ack;
            p.flags = kPeerSyn | kPeerWindow;
            if (seg.wscale >= 0 && (o.flags & kPeerScale)) {
                p.scale = static_cast<uint8_t>(seg.wscale);
            } else {
                o.scale = 0;  // scaling needs both SYNs to offer it
            }
            p.maxend = p.end + o.syn_window;  // windows in SYNs are never scaled
            o.maxack = seg.seq;               // nothing of the real's stream acknowledged yet
            o.maxend = seg.ack + seg.window;
            o.flags |= kPeerWindow;
            return TcpCheck::ok;
        }
        if (seg.flags & kTcpRst) return has_ack && seg.ack == o.end ? TcpCheck::ok : TcpCheck::drop;
        return TcpCheck::quiet;
    }
    if (seg.flags & kTcpSyn) return TcpCheck::quiet;  // a SYN again, or a SYN-ACK again: nothing to learn
    // Both are set together once the real answered the SYN: o's maxack and p's maxend.
    const bool o_window = o.flags & kPeerWindow;
    if (seg.flags & kTcpRst) {
        if (seg.seq == p.end || (o_window && seg.seq == o.maxack)) return TcpCheck::ok;
        return o_window && within(seg.seq, o.maxack, p.maxend) ? TcpCheck::quiet : TcpCheck::drop;
    }
    // What p acknowledges of o's stream, and how far its window lets o go: only an ACK
    // of what o has sent, and not behind what p acknowledged before.
    if (has_ack && o_window && within(seg.ack, p.maxack, o.end)) {
        p.maxack = seg.ack;
        const uint32_t edge = seg.ack + (static_cast<uint32_t>(seg.window) << p.scale);
        if (after(edge, o.maxend)) o.maxend = edge;
    }
    const uint32_t end = seg.seq + seg.len + ((seg.flags & kTcpFin) ? 1 : 0);
    const bool in_window = o_window && within(end, o.maxack, p.maxend);
    if (in_window && after(end, p.end)) p.end = end;
    if ((seg.flags & kTcpFin) && !in_window) return TcpCheck::quiet;
    return TcpCheck::ok;
}

}  // namespace dplb::core
