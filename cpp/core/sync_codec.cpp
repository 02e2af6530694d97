// Sync codec: the byte layout documented in sync_codec.hpp, written and read with explicit
// big-endian loads and stores (no struct overlays: no alignment or padding assumptions).
#include "core/sync_codec.hpp"

#include <cstring>

#include "core/session.hpp"

namespace dplb::core {

namespace {

constexpr uint8_t kFormIn6 = 0x01;
constexpr uint8_t kFormOut6 = 0x02;
constexpr uint8_t kFormTrack = 0x04;
// The session flags that mean the same at a peer; the rest (MACs, logged, in use) are local.
constexpr uint8_t kTravellingSessionFlags =
    kSessionFinFromClient | kSessionFinFromReal | kSessionClientAddress | kSessionRealClosedFirst;
constexpr size_t kTrackBytes = 36;

inline void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
inline void put64(uint8_t* p, uint64_t v) {
    put32(p, static_cast<uint32_t>(v >> 32));
    put32(p + 4, static_cast<uint32_t>(v));
}
inline uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t get32(const uint8_t* p) { return uint32_t(get16(p)) << 16 | get16(p + 2); }
inline uint64_t get64(const uint8_t* p) { return uint64_t(get32(p)) << 32 | get32(p + 4); }

inline size_t tuple_bytes(bool v6) { return 2 * (v6 ? 16 : 4) + 4; }

uint8_t* put_tuple(uint8_t* p, const FlowKey& k, bool v6) {
    const size_t a = v6 ? 16 : 4;
    std::memcpy(p, v6 ? k.src.v6() : k.src.v4(), a);
    std::memcpy(p + a, v6 ? k.dst.v6() : k.dst.v4(), a);
    put16(p + 2 * a, k.src_port);
    put16(p + 2 * a + 2, k.dst_port);
    return p + 2 * a + 4;
}

// False when an IPv6 form carries a v4-mapped address (IPv4 always travels in 4 bytes).
bool get_tuple(const uint8_t* p, FlowKey& k, bool v6, uint8_t proto) {
    const size_t a = v6 ? 16 : 4;
    k = FlowKey{};
    k.src = v6 ? IpAddress::from_v6(p) : IpAddress::from_v4(p);
    k.dst = v6 ? IpAddress::from_v6(p + a) : IpAddress::from_v4(p + a);
    k.src_port = get16(p + 2 * a);
    k.dst_port = get16(p + 2 * a + 2);
    k.proto = proto;
    return !v6 || (!k.src.is_v4() && !k.dst.is_v4());
}

bool header_count_ok(SyncMessage type, uint16_t count) {
    switch (type) {
        case SyncMessage::records: return count <= kSyncMaxRecords;  // 0: a heartbeat
        case SyncMessage::sync_batch: return count <= kSyncMaxRecords;
        default: return count == 0;
    }
}

}  // namespace

void encode_sync_header(const SyncHeader& h, uint8_t* out) {
    put32(out, kSyncMagic);
    out[4] = kSyncVersion;
    out[5] = static_cast<uint8_t>(h.type);
    out[6] = h.key_id;
    out[7] = 0;
    put16(out + 8, h.count);
    put16(out + 10, h.worker);
    put32(out + 12, h.node_id);
    put64(out + 16, h.epoch);
    put64(out + 24, h.sequence);
    put64(out + 32, h.send_time_ns);
    put32(out + 40, h.cursor);
    put32(out + 44, h.stream);
}

SyncDecodeError decode_sync_header(const uint8_t* p, size_t n, SyncHeader& h) {
    if (n < kSyncHeaderBytes) return SyncDecodeError::truncated;
    if (get32(p) != kSyncMagic) return SyncDecodeError::bad_magic;
    if (p[4] != kSyncVersion) return SyncDecodeError::bad_version;
    if (p[5] < 1 || p[5] > 4) return SyncDecodeError::bad_type;
    h.type = static_cast<SyncMessage>(p[5]);
    h.key_id = p[6];
    h.count = get16(p + 8);
    h.worker = get16(p + 10);
    h.node_id = get32(p + 12);
    h.epoch = get64(p + 16);
    h.sequence = get64(p + 24);
    h.send_time_ns = get64(p + 32);
    h.cursor = get32(p + 40);
    h.stream = get32(p + 44);
    if (!header_count_ok(h.type, h.count)) return SyncDecodeError::bad_count;
    if (p[7] != 0 || h.key_id == 0 || h.node_id == 0) return SyncDecodeError::bad_field;
    if (h.type == SyncMessage::records && (h.worker != 0 || h.cursor != 0 || h.stream != 0)) {
        return SyncDecodeError::bad_field;
    }
    return SyncDecodeError::ok;
}

size_t sync_record_wire_size(const SyncRecord& r) {
    return 18 + tuple_bytes(!r.inbound.src.is_v4() || !r.inbound.dst.is_v4()) +
           tuple_bytes(!r.outbound.src.is_v4() || !r.outbound.dst.is_v4()) +
           (r.inbound.proto == static_cast<uint8_t>(L4Proto::tcp) ? kTrackBytes : 0);
}

size_t encode_sync_record(const SyncRecord& r, uint8_t* out) {
    const uint8_t proto = r.inbound.proto;
    const bool tcp = proto == static_cast<uint8_t>(L4Proto::tcp);
    if (proto != r.outbound.proto || (!tcp && proto != static_cast<uint8_t>(L4Proto::udp))) return 0;
    if (static_cast<uint8_t>(r.kind) > static_cast<uint8_t>(SyncKind::close) ||
        static_cast<uint8_t>(r.state) >= static_cast<uint8_t>(TcpState::count_) ||
        static_cast<uint8_t>(r.ca_mode) > static_cast<uint8_t>(ClientAddressMode::proxy_v2)) {
        return 0;
    }
    // An address family per tuple: a tuple mixing IPv4 and IPv6 cannot exist on the wire.
    const bool in_v4 = r.inbound.src.is_v4(), out_v4 = r.outbound.src.is_v4();
    if (in_v4 != r.inbound.dst.is_v4() || out_v4 != r.outbound.dst.is_v4()) return 0;
    out[0] = static_cast<uint8_t>(r.kind);
    out[1] = static_cast<uint8_t>((in_v4 ? 0 : kFormIn6) | (out_v4 ? 0 : kFormOut6) | (tcp ? kFormTrack : 0));
    out[2] = proto;
    out[3] = static_cast<uint8_t>(tcp ? r.state : TcpState::none);
    put16(out + 4, r.worker);
    out[6] = r.session_flags & kTravellingSessionFlags;
    out[7] = static_cast<uint8_t>(r.ca_mode);
    out[8] = r.ca_flags;
    out[9] = r.ca_header_len;
    put32(out + 10, r.remaining_ms);
    put32(out + 14, static_cast<uint32_t>(r.seq_delta));
    uint8_t* p = put_tuple(out + 18, r.inbound, !in_v4);
    p = put_tuple(p, r.outbound, !out_v4);
    if (tcp) {
        for (const TcpPeer& s : r.track.side) {
            put32(p, s.end);
            put32(p + 4, s.maxend);
            put32(p + 8, s.maxack);
            put16(p + 12, s.syn_window);
            p[14] = s.scale;
            p[15] = s.flags;
            p += 16;
        }
        put32(p, r.track.client_isn);
        p += 4;
    }
    return static_cast<size_t>(p - out);
}

SyncDecodeError decode_sync_record(const uint8_t* p, size_t n, SyncRecord& out, size_t& used) {
    if (n < kSyncRecordMinBytes) return SyncDecodeError::truncated;
    const uint8_t kind = p[0], form = p[1], proto = p[2], state = p[3];
    if (kind > static_cast<uint8_t>(SyncKind::close) || (form & ~(kFormIn6 | kFormOut6 | kFormTrack)) != 0) {
        return SyncDecodeError::bad_field;
    }
    const bool tcp = proto == static_cast<uint8_t>(L4Proto::tcp);
    if (!tcp && proto != static_cast<uint8_t>(L4Proto::udp)) return SyncDecodeError::bad_field;
    // TCP has tracking and a state; UDP neither.
    if (tcp != ((form & kFormTrack) != 0)) return SyncDecodeError::bad_field;
    if (tcp ? (state == 0 || state >= static_cast<uint8_t>(TcpState::count_)) : state != 0) {
        return SyncDecodeError::bad_field;
    }
    if ((p[6] & ~kTravellingSessionFlags) != 0 || p[7] > static_cast<uint8_t>(ClientAddressMode::proxy_v2)) {
        return SyncDecodeError::bad_field;
    }
    const bool in6 = form & kFormIn6, out6 = form & kFormOut6;
    const size_t size = 18 + tuple_bytes(in6) + tuple_bytes(out6) + (tcp ? kTrackBytes : 0);
    if (n < size) return SyncDecodeError::truncated;
    out = SyncRecord{};
    out.kind = static_cast<SyncKind>(kind);
    out.state = static_cast<TcpState>(state);
    out.worker = get16(p + 4);
    out.session_flags = p[6];
    out.ca_mode = static_cast<ClientAddressMode>(p[7]);
    out.ca_flags = p[8];
    out.ca_header_len = p[9];
    out.remaining_ms = get32(p + 10);
    out.seq_delta = static_cast<int32_t>(get32(p + 14));
    const uint8_t* q = p + 18;
    if (!get_tuple(q, out.inbound, in6, proto)) return SyncDecodeError::bad_field;
    q += tuple_bytes(in6);
    if (!get_tuple(q, out.outbound, out6, proto)) return SyncDecodeError::bad_field;
    q += tuple_bytes(out6);
    if (tcp) {
        for (TcpPeer& s : out.track.side) {
            s.end = get32(q);
            s.maxend = get32(q + 4);
            s.maxack = get32(q + 8);
            s.syn_window = get16(q + 12);
            s.scale = q[14];
            s.flags = q[15];
            if (s.scale > 14) return SyncDecodeError::bad_field;  // RFC 7323's limit
            q += 16;
        }
        out.track.client_isn = get32(q);
        // The session's own copy (client-address sessions start their stream from it) is
        // set from the same SYN as the tracking's: one number on the wire serves both.
        out.client_isn = out.track.client_isn;
    }
    used = size;
    return SyncDecodeError::ok;
}

SyncDecodeError decode_sync_records(const uint8_t* p, size_t n, uint16_t count, SyncRecord* out, size_t max_out) {
    if (count > max_out) return SyncDecodeError::bad_count;
    size_t off = 0;
    for (uint16_t i = 0; i < count; ++i) {
        size_t used = 0;
        const SyncDecodeError e = decode_sync_record(p + off, n - off, out[i], used);
        if (e != SyncDecodeError::ok) return e;
        off += used;
    }
    return off == n ? SyncDecodeError::ok : SyncDecodeError::bad_count;
}

}  // namespace dplb::core
