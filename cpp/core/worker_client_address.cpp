// The client-address path of a worker (DESIGN section 5): packets of sessions whose
// service passes the client's address to the reals with TOA or PROXY protocol. It lives
// apart from worker.cpp so that the hot path of other services stays as it is; the byte
// surgery is in client_address.cpp.
//
// Decisions, and why:
// - MSS. dplb lengthens client -> real segments, and those are sized by the MSS the
//   *real* announces in its SYN-ACK (the MSS in the client's SYN sizes the real's
//   segments, which dplb never grows). So the real's SYN-ACK leaves toward the client
//   with its MSS lowered by the most dplb may add to one segment: 8/20 bytes for TOA,
//   the header length for PROXY (the longest dplb writes when a client header may be
//   translated, since that length is unknown until the first data arrives).
// - TOA goes into the ACK that completes the handshake and into every later client
//   segment until the real shows it is established (it acknowledges client data or
//   sends data): if that ACK is lost, whichever segment completes the real's handshake
//   still carries the address (the Linux TOA modules read it there). The session then
//   leaves this path for good.
// - PROXY: dplb's header is the first bytes of the stream toward the real, put as payload
//   into the handshake-completing ACK, so that protocols where the server speaks first
//   get it too. Every client segment that starts at ISN + 1 carries it again until the
//   real's ACK numbers cover it, which recovers a lost header (the real trims the copy it
//   may already have). Later segments are shifted: seq + delta inbound; ACK and SACK
//   edges - delta outbound (a point inside the header maps to the stream's start).
// - A client that sends its own PROXY header is refused unless the service trusts it:
//   the offending segment becomes a RST toward the real, the session is marked refused,
//   and every later packet of either side gets a RST back (the client, whose data is not
//   acknowledged, retransmits and so learns of the reset within one RTO). Trusted, the
//   client's header is parsed and replaced by dplb's naming the same addresses.
#include "core/client_address.hpp"
#include "core/worker.hpp"

namespace dplb::core {
namespace {

ProxyAddresses own_addresses(const Session& s) {
    ProxyAddresses a;
    a.known = true;
    a.src = Endpoint{s.inbound.src, s.inbound.src_port};
    a.dst = Endpoint{s.inbound.dst, s.inbound.dst_port};
    return a;
}

// The most dplb adds to one client segment: what the real's MSS is lowered by.
uint16_t growth(const Session& s) {
    if (s.ca_mode == ClientAddressMode::toa) return s.inbound.src.is_v4() ? kToaLengthV4 : kToaLengthV6;
    if (s.ca_flags & kCaTrust) return s.ca_mode == ClientAddressMode::proxy_v1 ? kProxyV1Longest : kProxyV2Longest;
    return s.ca_header_len;
}

MacAddress mac_of(const uint8_t* m) { return MacAddress{m[0], m[1], m[2], m[3], m[4], m[5]}; }

uint32_t payload_length(const ParsedPacket& q) { return q.l4_offset + q.l4_length - q.payload_offset; }

// kCaHeaderFar: how far past the header the real's ACKs must go (a window's most, 2^30).
constexpr uint32_t kFar = 1u << 30;

}  // namespace

void Worker::init_client_address(Session& s, const ServiceEntry& svc) {
    s.flags |= kSessionClientAddress;
    s.ca_mode = svc.client_address;
    if (svc.client_address == ClientAddressMode::toa) return;
    if (svc.proxy_from_client == ProxyFromClient::trust) {
        // Which header, and so the shift, depends on the stream's first bytes.
        s.ca_flags = kCaTrust;
        return;
    }
    uint8_t header[kProxyHeaderMax];
    s.ca_header_len = static_cast<uint8_t>(build_proxy_header(s.ca_mode, own_addresses(s), header));
    s.seq_delta = s.ca_header_len;
    s.ca_flags = kCaDecided;
}

Action Worker::inbound_client_address(PacketView& pkt, const ParsedPacket& p, SessionRef ref) {
    Session& s = *ref.session;
    ParsedPacket q = p;
    if (s.ca_flags & kCaRefused) [[unlikely]] return answer_refused(pkt, q, ref, Direction::inbound);
    const uint8_t flags = q.tcp_flags;
    const uint32_t seq = load_be32(pkt.data + q.l4_offset + 4);
    if (flags & kTcpSyn) {
        // The SYN (or a retransmission of it) opens the client's stream at ISN + 1, and
        // reaches the real without data: the stream's first bytes go behind the header,
        // or through the refusal of a client's own, only after the handshake.
        if (payload_length(q) > 0) {
            strip_payload(pkt, q);
            ++stats_.syn_data_stripped;
        }
        if (s.ca_mode == ClientAddressMode::toa) remove_fast_open(pkt.data, q);
        const int counted = track_tcp(s, tcp_segment(pkt.data, q), Direction::inbound);
        if (s.state == TcpState::syn_sent) s.client_isn = seq;
        rewrite_full_nat(pkt.data, q, Endpoint{s.outbound.dst, s.outbound.dst_port},
                         Endpoint{s.outbound.src, s.outbound.src_port});
        return deliver(pkt, ref, static_cast<uint8_t>(counted), Direction::inbound);
    }
    const int tracked = track_tcp(s, tcp_segment(pkt.data, q), Direction::inbound);
    if (tracked < 0) [[unlikely]] return drop(DropReason::tcp_rst_out_of_window);
    const auto counted = static_cast<uint8_t>(tracked);
    const uint32_t start = s.client_isn + 1;
    const uint32_t payload_len = payload_length(q);
    if (s.ca_mode != ClientAddressMode::toa && seq == start && payload_len > 0 && !(s.ca_flags & kCaTrust) &&
        looks_like_proxy_header(pkt.data + q.payload_offset, payload_len)) [[unlikely]] {
        ++stats_.proxy_refused;
        return refuse_connection(pkt, q, ref);
    }
    rewrite_full_nat(pkt.data, q, Endpoint{s.outbound.dst, s.outbound.dst_port},
                     Endpoint{s.outbound.src, s.outbound.src_port});
    // A segment of the client's stream once the real has answered the SYN.
    const bool in_stream = (flags & kTcpAck) && !(flags & kTcpRst) && s.state >= TcpState::syn_recv;

    if (s.ca_mode == ClientAddressMode::toa) {
        if (in_stream && !(s.ca_flags & kCaHeaderAcked)) {
            if (insert_toa(pkt, q, Endpoint{s.inbound.src, s.inbound.src_port}) == ToaResult::inserted) {
                ++stats_.toa_inserted;
            } else {
                ++stats_.toa_no_room;  // sent as it is
            }
        }
        return deliver(pkt, ref, counted, Direction::inbound);
    }

    if (seq != start || (s.ca_flags & kCaHeaderAcked)) {
        if (s.seq_delta != 0) set_tcp_seq(pkt.data, q, seq + static_cast<uint32_t>(s.seq_delta));
        return deliver(pkt, ref, counted, Direction::inbound);
    }
    // The segment starts the stream and the real has not acknowledged a header: it goes
    // there at the stream's start (a RST or an early segment just keeps that seq).
    if (!in_stream) return deliver(pkt, ref, counted, Direction::inbound);
    const uint8_t* payload = pkt.data + q.payload_offset;
    uint8_t header[kProxyHeaderMax];
    uint32_t header_len = 0;
    uint32_t replaced = 0;  // bytes of the client's own header that dplb's replaces
    bool translated_now = false;
    if (!(s.ca_flags & kCaDecided)) {
        // Trusted clients: the first data says whether the client sent a header.
        if (payload_len == 0) return deliver(pkt, ref, counted, Direction::inbound);
        ProxyAddresses theirs;
        switch (parse_proxy_header(payload, payload_len, theirs, replaced)) {
            case ProxyParse::ok:
                header_len = build_proxy_header(s.ca_mode, theirs, header);
                s.ca_flags |= kCaTranslated;
                translated_now = true;
                break;
            case ProxyParse::not_proxy:
                replaced = 0;
                header_len = build_proxy_header(s.ca_mode, own_addresses(s), header);
                break;
            default:  // malformed, or cut short where dplb cannot wait for the rest
                ++stats_.proxy_invalid;
                return refuse_connection(pkt, q, ref);
        }
        s.ca_flags |= kCaDecided;
        s.ca_header_len = static_cast<uint8_t>(header_len);
        s.seq_delta = static_cast<int32_t>(header_len) - static_cast<int32_t>(replaced);
    } else if (s.ca_flags & kCaTranslated) {
        // The client's first segment again, its own header in front: translate it again.
        // Cut differently (it will not be, in practice), it goes on shifted.
        ProxyAddresses theirs;
        const uint32_t expected = s.ca_header_len - static_cast<uint32_t>(s.seq_delta);
        if (payload_len == 0 || parse_proxy_header(payload, payload_len, theirs, replaced) != ProxyParse::ok ||
            replaced != expected) {
            set_tcp_seq(pkt.data, q, seq + static_cast<uint32_t>(s.seq_delta));
            return deliver(pkt, ref, counted, Direction::inbound);
        }
        header_len = build_proxy_header(s.ca_mode, theirs, header);
    } else {
        header_len = build_proxy_header(s.ca_mode, own_addresses(s), header);
    }
    if (!replace_payload_prefix(pkt, q, replaced, header, header_len)) [[unlikely]] {
        return drop(DropReason::proxy_no_room);  // the client retransmits
    }
    if (s.ca_flags & kCaHeaderSent) {
        ++stats_.proxy_header_resent;
    } else {
        ++stats_.proxy_header_sent;
        if (translated_now) ++stats_.proxy_header_translated;
    }
    s.ca_flags |= kCaHeaderSent;
    return deliver(pkt, ref, counted, Direction::inbound);
}

Action Worker::outbound_client_address(PacketView& pkt, const ParsedPacket& p, SessionRef ref) {
    Session& s = *ref.session;
    ParsedPacket q = p;
    if (s.ca_flags & kCaRefused) [[unlikely]] return answer_refused(pkt, q, ref, Direction::outbound);
    const uint8_t flags = q.tcp_flags;
    // Tracked before anything changes: the real's ACK in the client's numbers.
    TcpSegment seg = tcp_segment(pkt.data, q);
    const bool shifted = s.ca_mode != ClientAddressMode::toa && (s.ca_flags & kCaHeaderSent);
    if (shifted) seg.ack = seq_shift_of(s).to_client(seg.ack);
    const int tracked = track_tcp(s, seg, Direction::outbound);
    if (tracked < 0) [[unlikely]] return drop(DropReason::tcp_rst_out_of_window);
    rewrite_full_nat(pkt.data, q, Endpoint{s.inbound.dst, s.inbound.dst_port},
                     Endpoint{s.inbound.src, s.inbound.src_port});
    if ((flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
        clamp_mss(pkt.data, q, growth(s));  // the real's MSS sizes the segments dplb grows
    } else if (flags & kTcpAck) {
        const uint32_t start = s.client_isn + 1;
        const uint32_t ack = load_be32(pkt.data + q.l4_offset + 8);
        if (s.ca_mode == ClientAddressMode::toa) {
            // Data from the real, or an ACK of client data, shows the real established
            // (a bare ACK of ISN + 1 does not: a SYN_RECV socket sends those too).
            if (payload_length(q) > 0 || ack - start - 1 < 0x7fffffffu) {
                s.ca_flags |= kCaHeaderAcked;
                s.flags &= static_cast<uint8_t>(~kSessionClientAddress);
            }
        } else if (shifted) {
            const SeqShift shift = seq_shift_of(s);
            shift_acks_to_client(pkt.data, q, shift);
            const uint32_t covered = ack - start;
            if (!(s.ca_flags & kCaHeaderAcked)) {
                if (covered >= shift.header && covered < 0x80000000u) s.ca_flags |= kCaHeaderAcked;
            } else if (!shift.far && (covered - shift.header) - kFar < kFar) {
                s.ca_flags |= kCaHeaderFar;  // ACKs move by less than kFar: seen before any alias
            }
        }
    }
    return deliver(pkt, ref, static_cast<uint8_t>(tracked), Direction::outbound);
}

Action Worker::refuse_connection(PacketView& pkt, ParsedPacket& q, SessionRef ref) {
    Session& s = *ref.session;
    s.ca_flags |= kCaRefused;
    // The segment becomes a RST toward the real, at the point of the stream the real
    // expects when it has dplb's header (if it has not, it answers with a challenge ACK,
    // and that gets a RST with the exact number from answer_refused).
    make_tcp_reset(pkt, q, Endpoint{s.outbound.dst, s.outbound.dst_port}, Endpoint{s.outbound.src, s.outbound.src_port},
                   s.client_isn + 1 + static_cast<uint32_t>(s.seq_delta), 0, kTcpRst);
    return deliver(pkt, ref, kTcpRst, Direction::inbound);
}

Action Worker::answer_refused(PacketView& pkt, ParsedPacket& q, SessionRef ref, Direction from) {
    Session& s = *ref.session;
    const uint8_t flags = q.tcp_flags;
    if (flags & kTcpRst) return drop(DropReason::refused_connection);
    const bool to_client = from == Direction::inbound;
    if (!(s.flags & (to_client ? kSessionMacToClient : kSessionMacToReal))) return drop(DropReason::no_neighbour);
    const uint8_t* l4 = pkt.data + q.l4_offset;
    const uint32_t seg_seq = load_be32(l4 + 4);
    const uint32_t seg_ack = load_be32(l4 + 8);
    const uint32_t seg_len = payload_length(q) + ((flags & kTcpSyn) ? 1 : 0) + ((flags & kTcpFin) ? 1 : 0);
    // Back to the sender, as RFC 793 resets a segment of a closed connection.
    const Endpoint src{q.key.dst, q.key.dst_port};
    const Endpoint dst{q.key.src, q.key.src_port};
    if (flags & kTcpAck) {
        make_tcp_reset(pkt, q, src, dst, seg_ack, 0, kTcpRst);
    } else {
        make_tcp_reset(pkt, q, src, dst, 0, seg_seq + seg_len, kTcpRst | kTcpAck);
    }
    set_expiry(s);
    const uint8_t port = to_client ? s.port_to_client : s.port_to_real;
    set_ethernet(pkt.data, mac_of(to_client ? s.mac_to_client : s.mac_to_real), view_.port_mac(port));
    return transmit(pkt, port);
}

Action Worker::deliver(PacketView& pkt, SessionRef ref, uint8_t tcp_flags, Direction dir) {
    Session& s = *ref.session;
    update_tcp_state(ref.index, s, tcp_flags, dir);
    if (sync_on_) [[unlikely]] sync_seen(s);
    RealCounters& rc = reals_[s.real_slot];
    if (dir == Direction::inbound) {
        s.bytes_in += pkt.len;
        ++rc.packets_in;
        rc.bytes_in += pkt.len;
        // The next hop's MAC is not known yet: the control side holds the frame and
        // sends it when the neighbour answers (a client on a connected subnet that the
        // node has not asked about), as for any other session.
        if (!(s.flags & kSessionMacToReal)) [[unlikely]] return await_neighbour(pkt, s.port_to_real);
        set_ethernet(pkt.data, mac_of(s.mac_to_real), view_.port_mac(s.port_to_real));
        return transmit(pkt, s.port_to_real);
    }
    s.bytes_out += pkt.len;
    ++rc.packets_out;
    rc.bytes_out += pkt.len;
    if (!(s.flags & kSessionMacToClient)) [[unlikely]] return await_neighbour(pkt, s.port_to_client);
    set_ethernet(pkt.data, mac_of(s.mac_to_client), view_.port_mac(s.port_to_client));
    return transmit(pkt, s.port_to_client);
}

}  // namespace dplb::core
