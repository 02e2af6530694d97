// Sync codec (wire format v1): headers and records round-trip field by field, IPv4 and
// IPv6, TCP and UDP; every malformed input is refused with its reason.
#include "core/sync_codec.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace dplb::core {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

SyncRecord tcp_record(bool v6_in, bool v6_out) {
    SyncRecord r;
    r.inbound.src = ip(v6_in ? "2001:db8::7" : "198.51.100.7");
    r.inbound.dst = ip(v6_in ? "2001:db8:100::10" : "10.10.100.10");
    r.inbound.src_port = 40001;
    r.inbound.dst_port = 80;
    r.inbound.proto = 6;
    r.outbound.src = ip(v6_out ? "2001:db8:2::11" : "10.10.2.11");
    r.outbound.dst = ip(v6_out ? "2001:db8:2::101" : "10.10.2.101");
    r.outbound.src_port = 8080;
    r.outbound.dst_port = 1025;
    r.outbound.proto = 6;
    r.track.side[0] = {1000, 70000, 5000, 64240, 7, kPeerSyn | kPeerScale};
    r.track.side[1] = {5000, 90000, 1000, 65535, 9, kPeerSyn | kPeerWindow};
    r.track.client_isn = 999;
    r.client_isn = 999;  // the session's copy: the same SYN's number
    r.remaining_ms = 86'400'000;
    r.seq_delta = -17;
    r.worker = 3;
    r.kind = SyncKind::update;
    r.state = TcpState::fin_wait;
    r.session_flags = kSessionFinFromClient | kSessionClientAddress;
    r.ca_mode = ClientAddressMode::proxy_v2;
    r.ca_flags = kCaDecided | kCaHeaderSent;
    r.ca_header_len = 28;
    return r;
}

SyncRecord udp_record() {
    SyncRecord r = tcp_record(false, false);
    r.inbound.proto = r.outbound.proto = 17;
    r.track = TcpTrack{};
    r.client_isn = 0;  // UDP: no SYN
    r.state = TcpState::none;
    r.kind = SyncKind::open;
    r.session_flags = 0;
    r.ca_mode = ClientAddressMode::none;
    r.ca_flags = 0;
    r.ca_header_len = 0;
    r.seq_delta = 0;
    return r;
}

void expect_same(const SyncRecord& a, const SyncRecord& b) {
    EXPECT_EQ(a.inbound, b.inbound);
    EXPECT_EQ(a.outbound, b.outbound);
    EXPECT_EQ(0, std::memcmp(&a.track, &b.track, sizeof a.track));
    EXPECT_EQ(a.client_isn, b.client_isn);
    EXPECT_EQ(a.remaining_ms, b.remaining_ms);
    EXPECT_EQ(a.seq_delta, b.seq_delta);
    EXPECT_EQ(a.worker, b.worker);
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.state, b.state);
    EXPECT_EQ(a.session_flags, b.session_flags);
    EXPECT_EQ(a.ca_mode, b.ca_mode);
    EXPECT_EQ(a.ca_flags, b.ca_flags);
    EXPECT_EQ(a.ca_header_len, b.ca_header_len);
}

SyncHeader header() {
    SyncHeader h;
    h.type = SyncMessage::sync_batch;
    h.key_id = 2;
    h.count = 17;
    h.worker = 5;
    h.node_id = 0xdeadbeef;
    h.epoch = 0x0102030405060708ULL;
    h.sequence = 0xfffffffffffffff0ULL;
    h.send_time_ns = 1'700'000'000'123'456'789ULL;
    h.cursor = 123456;
    h.stream = 0xabcdef01;
    return h;
}

TEST(SyncCodec, HeaderRoundTripsInNetworkOrder) {
    uint8_t buf[kSyncHeaderBytes];
    encode_sync_header(header(), buf);
    EXPECT_EQ(buf[0], 'D');
    EXPECT_EQ(buf[3], 'S');
    EXPECT_EQ(buf[4], 1);
    EXPECT_EQ(buf[12], 0xde);  // node id, most significant byte first
    SyncHeader h;
    ASSERT_EQ(decode_sync_header(buf, sizeof buf, h), SyncDecodeError::ok);
    const SyncHeader want = header();
    EXPECT_EQ(h.type, want.type);
    EXPECT_EQ(h.key_id, want.key_id);
    EXPECT_EQ(h.count, want.count);
    EXPECT_EQ(h.worker, want.worker);
    EXPECT_EQ(h.node_id, want.node_id);
    EXPECT_EQ(h.epoch, want.epoch);
    EXPECT_EQ(h.sequence, want.sequence);
    EXPECT_EQ(h.send_time_ns, want.send_time_ns);
    EXPECT_EQ(h.cursor, want.cursor);
    EXPECT_EQ(h.stream, want.stream);
}

TEST(SyncCodec, MalformedHeadersAreRefusedWithTheirReason) {
    uint8_t good[kSyncHeaderBytes];
    encode_sync_header(header(), good);
    SyncHeader h;
    for (size_t n = 0; n < kSyncHeaderBytes; ++n) EXPECT_EQ(decode_sync_header(good, n, h), SyncDecodeError::truncated);
    auto with = [&](size_t off, uint8_t v) {
        uint8_t b[kSyncHeaderBytes];
        std::memcpy(b, good, sizeof b);
        b[off] = v;
        return decode_sync_header(b, sizeof b, h);
    };
    EXPECT_EQ(with(0, 'X'), SyncDecodeError::bad_magic);
    EXPECT_EQ(with(4, 2), SyncDecodeError::bad_version);
    EXPECT_EQ(with(4, 0), SyncDecodeError::bad_version);
    EXPECT_EQ(with(5, 0), SyncDecodeError::bad_type);
    EXPECT_EQ(with(5, 5), SyncDecodeError::bad_type);
    EXPECT_EQ(with(6, 0), SyncDecodeError::bad_field);  // key id 0
    EXPECT_EQ(with(7, 1), SyncDecodeError::bad_field);  // reserved flags
    EXPECT_EQ(with(8, 0xff), SyncDecodeError::bad_count);
    SyncHeader z = header();
    z.node_id = 0;
    uint8_t b[kSyncHeaderBytes];
    encode_sync_header(z, b);
    EXPECT_EQ(decode_sync_header(b, sizeof b, h), SyncDecodeError::bad_field);
    z = header();
    z.type = SyncMessage::records;
    z.count = 0;
    encode_sync_header(z, b);
    EXPECT_EQ(decode_sync_header(b, sizeof b, h), SyncDecodeError::bad_field);  // a heartbeat names no cursor
    z.count = 1;  // a records message names no cursor or stream
    encode_sync_header(z, b);
    EXPECT_EQ(decode_sync_header(b, sizeof b, h), SyncDecodeError::bad_field);
    z.worker = 0;
    z.cursor = 0;
    z.stream = 0;
    encode_sync_header(z, b);
    EXPECT_EQ(decode_sync_header(b, sizeof b, h), SyncDecodeError::ok);
    z.type = SyncMessage::sync_request;
    encode_sync_header(z, b);
    EXPECT_EQ(decode_sync_header(b, sizeof b, h), SyncDecodeError::bad_count);  // a request carries none
}

TEST(SyncCodec, RecordsRoundTripEveryFamilyAndProtocol) {
    const SyncRecord records[] = {tcp_record(false, false), tcp_record(true, true), tcp_record(false, true),
                                  tcp_record(true, false), udp_record()};
    const size_t sizes[] = {78, 126, 102, 102, 42};
    std::vector<uint8_t> buf;
    for (size_t i = 0; i < std::size(records); ++i) {
        const size_t at = buf.size();
        EXPECT_EQ(sync_record_wire_size(records[i]), sizes[i]);
        buf.resize(at + kSyncRecordMaxBytes);
        const size_t n = encode_sync_record(records[i], buf.data() + at);
        EXPECT_EQ(n, sizes[i]);
        buf.resize(at + n);
    }
    SyncRecord out[8];
    ASSERT_EQ(decode_sync_records(buf.data(), buf.size(), std::size(records), out, std::size(out)),
              SyncDecodeError::ok);
    for (size_t i = 0; i < std::size(records); ++i) expect_same(records[i], out[i]);
    // Sizes the encoding keeps small: an IPv4 TCP session in 78 bytes, the SyncRecord in 192.
    EXPECT_LT(sizes[0], sizeof(SyncRecord) / 2);
}

TEST(SyncCodec, LocalSessionFlagsDoNotTravel) {
    SyncRecord r = tcp_record(false, false);
    r.session_flags |= kSessionMacToReal | kSessionLogged | kSessionInUse;
    uint8_t buf[kSyncRecordMaxBytes];
    const size_t n = encode_sync_record(r, buf);
    SyncRecord out;
    size_t used = 0;
    ASSERT_EQ(decode_sync_record(buf, n, out, used), SyncDecodeError::ok);
    EXPECT_EQ(out.session_flags, kSessionFinFromClient | kSessionClientAddress);
}

TEST(SyncCodec, RecordsThatCannotTravelAreNotEncoded) {
    uint8_t buf[kSyncRecordMaxBytes];
    SyncRecord r = tcp_record(false, false);
    r.outbound.proto = 17;
    EXPECT_EQ(encode_sync_record(r, buf), 0u);
    r = tcp_record(false, false);
    r.inbound.proto = 1;
    r.outbound.proto = 1;
    EXPECT_EQ(encode_sync_record(r, buf), 0u);
    r = tcp_record(false, false);
    r.inbound.dst = ip("2001:db8::1");  // one tuple, two families
    EXPECT_EQ(encode_sync_record(r, buf), 0u);
    r = tcp_record(false, false);
    r.kind = static_cast<SyncKind>(9);
    EXPECT_EQ(encode_sync_record(r, buf), 0u);
}

TEST(SyncCodec, MalformedRecordsAreRefusedWithTheirReason) {
    uint8_t good[kSyncRecordMaxBytes];
    const size_t n = encode_sync_record(tcp_record(false, false), good);
    SyncRecord out;
    size_t used = 0;
    for (size_t len = 0; len < n; ++len) {
        EXPECT_EQ(decode_sync_record(good, len, out, used), SyncDecodeError::truncated) << len;
    }
    auto with = [&](size_t off, uint8_t v) {
        uint8_t b[kSyncRecordMaxBytes];
        std::memcpy(b, good, n);
        b[off] = v;
        return decode_sync_record(b, n, out, used);
    };
    EXPECT_EQ(with(0, 4), SyncDecodeError::bad_field);     // kind
    EXPECT_EQ(with(1, 0x08), SyncDecodeError::bad_field);  // unknown form bit
    EXPECT_EQ(with(1, 0x00), SyncDecodeError::bad_field);  // TCP without tracking
    EXPECT_EQ(with(2, 1), SyncDecodeError::bad_field);     // ICMP
    EXPECT_EQ(with(2, 17), SyncDecodeError::bad_field);    // UDP with tracking
    EXPECT_EQ(with(3, 0), SyncDecodeError::bad_field);     // TCP without a state
    EXPECT_EQ(with(3, 7), SyncDecodeError::bad_field);     // no such state
    EXPECT_EQ(with(6, kSessionInUse), SyncDecodeError::bad_field);
    EXPECT_EQ(with(7, 4), SyncDecodeError::bad_field);       // client-address mode
    EXPECT_EQ(with(n - 22, 15), SyncDecodeError::bad_field);  // client's window scale > 14
    // UDP with a state.
    uint8_t u[kSyncRecordMaxBytes];
    const size_t un = encode_sync_record(udp_record(), u);
    u[3] = 3;
    EXPECT_EQ(decode_sync_record(u, un, out, used), SyncDecodeError::bad_field);
    // An IPv6 form carrying a v4-mapped address.
    SyncRecord v6 = tcp_record(true, false);
    v6.inbound.src = ip("::ffff:1.2.3.4");
    uint8_t b6[kSyncRecordMaxBytes];
    const size_t n6 = encode_sync_record(v6, b6);  // encoded as IPv4? no: the tuple mixes forms
    EXPECT_EQ(n6, 0u);
    SyncRecord v6ok = tcp_record(true, false);
    const size_t m6 = encode_sync_record(v6ok, b6);
    std::memset(b6 + 18, 0, 10);
    b6[28] = b6[29] = 0xff;  // inbound src becomes ::ffff:x.x.x.x
    EXPECT_EQ(decode_sync_record(b6, m6, out, used), SyncDecodeError::bad_field);
}

TEST(SyncCodec, RecordCountMustMatchTheBody) {
    uint8_t buf[2 * kSyncRecordMaxBytes];
    const size_t a = encode_sync_record(udp_record(), buf);
    const size_t b = encode_sync_record(udp_record(), buf + a);
    SyncRecord out[4];
    EXPECT_EQ(decode_sync_records(buf, a + b, 2, out, 4), SyncDecodeError::ok);
    EXPECT_EQ(decode_sync_records(buf, a + b, 1, out, 4), SyncDecodeError::bad_count);  // bytes left over
    EXPECT_EQ(decode_sync_records(buf, a + b, 3, out, 4), SyncDecodeError::truncated);  // one missing
    EXPECT_EQ(decode_sync_records(buf, a + b, 2, out, 1), SyncDecodeError::bad_count);  // no room
    EXPECT_EQ(decode_sync_records(buf, a + b - 1, 2, out, 4), SyncDecodeError::truncated);
}

}  // namespace
}  // namespace dplb::core
