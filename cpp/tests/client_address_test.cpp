// Tests for core/client_address: PROXY v1/v2 headers built and parsed byte for byte,
// RFC 5952 text, the sequence shift, and the TCP surgery (TOA, payload insertion,
// ACK/SACK shifting, MSS clamping, resets) checked against full checksum recomputation,
// with the buffer room on either side or none.
#include "core/client_address.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/checksum.hpp"

namespace dplb::core {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

std::string text_of(const uint8_t* p, uint32_t n) { return std::string(reinterpret_cast<const char*>(p), n); }

std::string v6_text(const char* in) {
    char out[40];
    uint32_t n = format_ipv6(out, ip(in).v6());
    return std::string(out, n);
}

ProxyAddresses addresses(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    ProxyAddresses a;
    a.known = true;
    a.src = {ip(src), sport};
    a.dst = {ip(dst), dport};
    return a;
}

// -- text forms ------------------------------------------------------------------------

TEST(ClientAddressText, Ipv4) {
    char out[16];
    const uint8_t a[4] = {0, 0, 0, 0}, b[4] = {255, 255, 255, 255}, c[4] = {198, 51, 100, 7};
    EXPECT_EQ(std::string(out, format_ipv4(out, a)), "0.0.0.0");
    EXPECT_EQ(std::string(out, format_ipv4(out, b)), "255.255.255.255");
    EXPECT_EQ(std::string(out, format_ipv4(out, c)), "198.51.100.7");
}

TEST(ClientAddressText, Ipv6FollowsRfc5952) {
    EXPECT_EQ(v6_text("::"), "::");
    EXPECT_EQ(v6_text("::1"), "::1");
    EXPECT_EQ(v6_text("1::"), "1::");
    EXPECT_EQ(v6_text("2001:0db8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
    // A single zero group is not compressed (4.2.2).
    EXPECT_EQ(v6_text("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
    // The longest run wins (4.2.3); the first one on a tie.
    EXPECT_EQ(v6_text("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
    EXPECT_EQ(v6_text("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
    EXPECT_EQ(v6_text("ABCD:EF01:2345:6789:ABCD:EF01:2345:6789"), "abcd:ef01:2345:6789:abcd:ef01:2345:6789");
    EXPECT_EQ(v6_text("fe80::0a00:0001"), "fe80::a00:1");
}

// -- PROXY headers ---------------------------------------------------------------------

TEST(ProxyHeader, V1Ipv4) {
    uint8_t out[kProxyHeaderMax];
    uint32_t n = build_proxy_v1(out, addresses("198.51.100.7", 43210, "10.0.100.10", 80));
    EXPECT_EQ(text_of(out, n), "PROXY TCP4 198.51.100.7 10.0.100.10 43210 80\r\n");
}

TEST(ProxyHeader, V1Ipv6AndItsLongestForm) {
    uint8_t out[kProxyHeaderMax];
    uint32_t n = build_proxy_v1(out, addresses("2001:db8:77::7", 1, "2001:db8:100::10", 65535));
    EXPECT_EQ(text_of(out, n), "PROXY TCP6 2001:db8:77::7 2001:db8:100::10 1 65535\r\n");
    n = build_proxy_v1(out, addresses("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
                                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535));
    EXPECT_EQ(n, kProxyV1Longest);
    EXPECT_LE(n, kProxyV1MaxLength);
}

TEST(ProxyHeader, V1Unknown) {
    uint8_t out[kProxyHeaderMax];
    EXPECT_EQ(text_of(out, build_proxy_v1(out, ProxyAddresses{})), "PROXY UNKNOWN\r\n");
}

TEST(ProxyHeader, V2Ipv4) {
    uint8_t out[kProxyHeaderMax];
    uint32_t n = build_proxy_v2(out, addresses("198.51.100.7", 43210, "10.0.100.10", 80));
    const std::vector<uint8_t> want = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
                                       0x21, 0x11, 0x00, 0x0c, 198,  51,   100,  7,    10,   0,    100,  10,
                                       0xa8, 0xca, 0x00, 0x50};
    EXPECT_EQ(std::vector<uint8_t>(out, out + n), want);
}

TEST(ProxyHeader, V2Ipv6) {
    uint8_t out[kProxyHeaderMax];
    uint32_t n = build_proxy_v2(out, addresses("2001:db8:77::7", 43210, "2001:db8:100::10", 80));
    ASSERT_EQ(n, kProxyV2Longest);
    EXPECT_EQ(out[12], 0x21);
    EXPECT_EQ(out[13], 0x21);
    EXPECT_EQ(load_be16(out + 14), 36);
    EXPECT_EQ(std::memcmp(out + 16, ip("2001:db8:77::7").v6(), 16), 0);
    EXPECT_EQ(std::memcmp(out + 32, ip("2001:db8:100::10").v6(), 16), 0);
    EXPECT_EQ(load_be16(out + 48), 43210);
    EXPECT_EQ(load_be16(out + 50), 80);
}

TEST(ProxyHeader, V2LocalAndUnknown) {
    uint8_t out[kProxyHeaderMax];
    ProxyAddresses local;
    local.local = true;
    ASSERT_EQ(build_proxy_v2(out, local), 16u);
    EXPECT_EQ(out[12], 0x20);
    EXPECT_EQ(out[13], 0x00);
    EXPECT_EQ(load_be16(out + 14), 0);
    ASSERT_EQ(build_proxy_v2(out, ProxyAddresses{}), 16u);
    EXPECT_EQ(out[12], 0x21);
    EXPECT_EQ(out[13], 0x00);
}

struct RoundTrip {
    ClientAddressMode mode;
    const char* src;
    const char* dst;
};

class ProxyRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(ProxyRoundTrip, ParseGivesBackWhatWasBuilt) {
    const RoundTrip& c = GetParam();
    uint8_t buf[kProxyHeaderMax + 16];
    ProxyAddresses a = addresses(c.src, 5555, c.dst, 443);
    uint32_t n = build_proxy_header(c.mode, a, buf);
    std::memcpy(buf + n, "GET /", 5);  // data behind the header is not part of it
    ProxyAddresses got;
    uint32_t length = 0;
    ASSERT_EQ(parse_proxy_header(buf, n + 5, got, length), ProxyParse::ok);
    EXPECT_EQ(length, n);
    EXPECT_TRUE(got.known);
    EXPECT_EQ(got.src.address, a.src.address);
    EXPECT_EQ(got.dst.address, a.dst.address);
    EXPECT_EQ(got.src.port, 5555);
    EXPECT_EQ(got.dst.port, 443);
    // Cut anywhere short of its end, it is incomplete.
    for (uint32_t cut = 1; cut < n; ++cut) {
        EXPECT_EQ(parse_proxy_header(buf, cut, got, length), ProxyParse::incomplete) << "cut at " << cut;
    }
}

INSTANTIATE_TEST_SUITE_P(Headers, ProxyRoundTrip,
                         ::testing::Values(RoundTrip{ClientAddressMode::proxy_v1, "203.0.113.9", "192.0.2.1"},
                                           RoundTrip{ClientAddressMode::proxy_v1, "2001:db8::9", "2001:db8::1"},
                                           RoundTrip{ClientAddressMode::proxy_v2, "203.0.113.9", "192.0.2.1"},
                                           RoundTrip{ClientAddressMode::proxy_v2, "2001:db8::9", "2001:db8::1"}));

ProxyParse parse_text(const std::string& s, ProxyAddresses* out = nullptr, uint32_t* length = nullptr) {
    ProxyAddresses a;
    uint32_t n = 0;
    ProxyParse r = parse_proxy_header(reinterpret_cast<const uint8_t*>(s.data()), static_cast<uint32_t>(s.size()), a, n);
    if (out) *out = a;
    if (length) *length = n;
    return r;
}

TEST(ProxyParseV1, UnknownIgnoresWhatFollows) {
    ProxyAddresses a;
    uint32_t n;
    EXPECT_EQ(parse_text("PROXY UNKNOWN\r\nGET", &a, &n), ProxyParse::ok);
    EXPECT_EQ(n, 15u);
    EXPECT_FALSE(a.known);
    EXPECT_EQ(parse_text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &a, &n), ProxyParse::ok);
    EXPECT_EQ(n, 35u);
    EXPECT_EQ(parse_text("PROXY UNKNOWNX\r\n"), ProxyParse::invalid);
}

TEST(ProxyParseV1, Malformed) {
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), ProxyParse::invalid);          // bare LF
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), ProxyParse::invalid);          // a field short
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), ProxyParse::invalid);      // one too many
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), ProxyParse::invalid);       // two spaces
    EXPECT_EQ(parse_text("PROXY TCP4 ::1 ::2 1 2\r\n"), ProxyParse::invalid);                // family
    EXPECT_EQ(parse_text("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), ProxyParse::invalid);
    EXPECT_EQ(parse_text("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), ProxyParse::invalid);
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), ProxyParse::invalid);    // port range
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"), ProxyParse::invalid);      // leading zero
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), ProxyParse::invalid);
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"), ProxyParse::invalid);       // not canonical
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 0 2\r\n"), ProxyParse::ok);
    // No CRLF within the spec's 107 bytes: invalid; fewer bytes so far: incomplete.
    EXPECT_EQ(parse_text("PROXY TCP4 " + std::string(100, '1')), ProxyParse::invalid);
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"), ProxyParse::incomplete);
    EXPECT_EQ(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), ProxyParse::incomplete);
}

TEST(ProxyParse, SignaturesAndPrefixes) {
    EXPECT_EQ(parse_text("GET / HTTP/1.1\r\n"), ProxyParse::not_proxy);
    EXPECT_EQ(parse_text("PROXZ"), ProxyParse::not_proxy);
    EXPECT_EQ(parse_text("PRO"), ProxyParse::incomplete);
    EXPECT_EQ(parse_text(std::string("\r\n\r\n\0\r", 6)), ProxyParse::incomplete);
    const uint8_t proxy[] = {'P', 'R', 'O', 'X', 'Y', ' '};
    EXPECT_TRUE(looks_like_proxy_header(proxy, 6));
    EXPECT_FALSE(looks_like_proxy_header(proxy, 5));  // "PROXY" alone could be anything
    EXPECT_TRUE(looks_like_proxy_header(kProxyV2Signature.data(), 12));
    EXPECT_FALSE(looks_like_proxy_header(kProxyV2Signature.data(), 11));
}

std::vector<uint8_t> v2_bytes(uint8_t ver_cmd, uint8_t family, std::vector<uint8_t> body, int length = -1) {
    std::vector<uint8_t> out(kProxyV2Signature.begin(), kProxyV2Signature.end());
    out.push_back(ver_cmd);
    out.push_back(family);
    const auto n = static_cast<uint16_t>(length < 0 ? body.size() : static_cast<size_t>(length));
    out.push_back(static_cast<uint8_t>(n >> 8));
    out.push_back(static_cast<uint8_t>(n));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

ProxyParse parse_bytes(const std::vector<uint8_t>& b, ProxyAddresses& a, uint32_t& n) {
    return parse_proxy_header(b.data(), static_cast<uint32_t>(b.size()), a, n);
}

TEST(ProxyParseV2, TlvsAreSkippedAndLocalAndOtherFamiliesCarryNoAddress) {
    ProxyAddresses a;
    uint32_t n;
    std::vector<uint8_t> body = {203, 0, 113, 9, 192, 0, 2, 1, 0x15, 0xb3, 0x01, 0xbb};
    body.insert(body.end(), {0x04, 0x00, 0x01, 0x00});  // a NOOP TLV
    ASSERT_EQ(parse_bytes(v2_bytes(0x21, 0x11, body), a, n), ProxyParse::ok);
    EXPECT_EQ(n, 16u + 16u);
    EXPECT_EQ(a.src.address, ip("203.0.113.9"));
    EXPECT_EQ(a.src.port, 5555);
    EXPECT_EQ(a.dst.port, 443);
    ASSERT_EQ(parse_bytes(v2_bytes(0x20, 0x00, {}), a, n), ProxyParse::ok);
    EXPECT_TRUE(a.local);
    EXPECT_FALSE(a.known);
    ASSERT_EQ(parse_bytes(v2_bytes(0x21, 0x12, std::vector<uint8_t>(12, 1)), a, n), ProxyParse::ok);  // UDP4
    EXPECT_FALSE(a.known);
    EXPECT_FALSE(a.local);
}

TEST(ProxyParseV2, Malformed) {
    ProxyAddresses a;
    uint32_t n;
    EXPECT_EQ(parse_bytes(v2_bytes(0x11, 0x11, std::vector<uint8_t>(12)), a, n), ProxyParse::invalid);  // version 1
    EXPECT_EQ(parse_bytes(v2_bytes(0x22, 0x11, std::vector<uint8_t>(12)), a, n), ProxyParse::invalid);  // command 2
    EXPECT_EQ(parse_bytes(v2_bytes(0x21, 0x41, std::vector<uint8_t>(12)), a, n), ProxyParse::invalid);  // family 4
    EXPECT_EQ(parse_bytes(v2_bytes(0x21, 0x11, std::vector<uint8_t>(8)), a, n), ProxyParse::invalid);   // too short
    EXPECT_EQ(parse_bytes(v2_bytes(0x21, 0x21, std::vector<uint8_t>(12)), a, n), ProxyParse::invalid);
    EXPECT_EQ(parse_bytes(v2_bytes(0x21, 0x11, std::vector<uint8_t>(12), 40), a, n), ProxyParse::incomplete);
}

// -- the sequence shift ------------------------------------------------------------------

TEST(SeqShift, MapsTheRealsNumbersToTheClients) {
    const SeqShift s{1001, 46, 46};
    EXPECT_EQ(s.to_client(1001), 1001u);       // the SYN-ACK's ACK
    EXPECT_EQ(s.to_client(1001 + 20), 1001u);  // inside dplb's header: nothing of the client's
    EXPECT_EQ(s.to_client(1001 + 46), 1001u);
    EXPECT_EQ(s.to_client(1001 + 46 + 5), 1006u);
    const SeqShift wrap{0xfffffff0u, 46, 46};
    EXPECT_EQ(wrap.to_client(0xfffffff0u + 46 + 100), 0xfffffff0u + 100);
    const SeqShift trusted{1001, 28, 28 - 46};  // dplb's 28 bytes stand for the client's 46
    EXPECT_EQ(trusted.to_client(1001 + 28), 1001u + 46);
    EXPECT_EQ(trusted.to_client(1001 + 27), 1001u);
    // Once the real's ACKs went far past the header, 4 GiB later the same raw numbers are
    // client data: they map by the shift alone.
    const SeqShift far{1001, 46, 46, true};
    EXPECT_EQ(far.to_client(1001 + 20), 1001u + 20 - 46);
}

// -- TCP surgery -------------------------------------------------------------------------

// A frame in a buffer with chosen room on either side.
struct Frame {
    std::vector<uint8_t> buffer;
    PacketView view;
    ParsedPacket parsed;

    Frame(bool v6, const std::vector<uint8_t>& options, const std::string& payload, uint8_t flags, uint32_t headroom,
          uint32_t tailroom, uint32_t padding = 0) {
        const uint32_t ip_len = v6 ? 40 : 20;
        const uint32_t tcp_len = 20 + static_cast<uint32_t>(options.size());
        const uint32_t len = 14 + ip_len + tcp_len + static_cast<uint32_t>(payload.size()) + padding;
        buffer.assign(headroom + len + tailroom, 0xee);
        uint8_t* f = buffer.data() + headroom;
        std::memset(f, 0, len);
        store_be16(f + 12, v6 ? kEtherTypeIpv6 : kEtherTypeIpv4);
        uint8_t* ipp = f + 14;
        const IpAddress src = ip(v6 ? "2001:db8:2::101" : "10.0.2.101"), dst = ip(v6 ? "2001:db8:2::11" : "10.0.2.11");
        const uint32_t l4_len = tcp_len + static_cast<uint32_t>(payload.size());
        if (v6) {
            ipp[0] = 0x60;
            store_be16(ipp + 4, static_cast<uint16_t>(l4_len));
            ipp[6] = 6;
            ipp[7] = 63;
            std::memcpy(ipp + 8, src.v6(), 16);
            std::memcpy(ipp + 24, dst.v6(), 16);
        } else {
            ipp[0] = 0x45;
            store_be16(ipp + 2, static_cast<uint16_t>(20 + l4_len));
            ipp[8] = 63;
            ipp[9] = 6;
            std::memcpy(ipp + 12, src.v4(), 4);
            std::memcpy(ipp + 16, dst.v4(), 4);
            const uint16_t c = ipv4_header_checksum(ipp, 20);
            std::memcpy(ipp + 10, &c, 2);
        }
        uint8_t* tcp = ipp + ip_len;
        store_be16(tcp, 1024);
        store_be16(tcp + 2, 8080);
        store_be32(tcp + 4, 1001);
        store_be32(tcp + 8, 5001);
        tcp[12] = static_cast<uint8_t>((tcp_len / 4) << 4);
        tcp[13] = flags;
        store_be16(tcp + 14, 65535);
        // An empty vector's data() may be null, which memcpy must not get (UBSan).
        if (!options.empty()) std::memcpy(tcp + 20, options.data(), options.size());
        if (!payload.empty()) std::memcpy(tcp + tcp_len, payload.data(), payload.size());
        const uint16_t c = l4_checksum(src, dst, 6, tcp, l4_len);
        std::memcpy(tcp + 16, &c, 2);
        view = PacketView{f, len, headroom, tailroom, 0};
        parse_packet(view.data, view.len, parsed);
    }

    uint8_t* l4() { return view.data + parsed.l4_offset; }
    std::string payload() {
        return text_of(view.data + parsed.payload_offset, parsed.l4_offset + parsed.l4_length - parsed.payload_offset);
    }
    // The stored TCP checksum minus a full recomputation (0 when right).
    int checksum_error() {
        ParsedPacket p = parse_packet(view.data, view.len);
        EXPECT_EQ(p.status, ParseStatus::ok);
        std::vector<uint8_t> seg(view.data + p.l4_offset, view.data + p.l4_offset + p.l4_length);
        uint16_t stored;
        std::memcpy(&stored, seg.data() + 16, 2);
        seg[16] = seg[17] = 0;
        const uint16_t want = l4_checksum(p.key.src, p.key.dst, 6, seg.data(), seg.size());
        return int(load_be16(reinterpret_cast<const uint8_t*>(&stored))) -
               int(load_be16(reinterpret_cast<const uint8_t*>(&want)));
    }
    bool ip_ok() {
        ParsedPacket p = parse_packet(view.data, view.len);
        if (p.status != ParseStatus::ok) return false;
        if (p.ipv6) return true;
        return ipv4_header_checksum(view.data + p.l3_offset, 20) == 0;
    }
};

const std::vector<uint8_t> kTimestamps = {1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9};

TEST(ToaInsertion, Ipv4WithTheOptionsBehindIt) {
    Frame f(false, kTimestamps, "hello", kTcpAck | kTcpPsh, 128, 128);
    const Endpoint client{ip("198.51.100.7"), 43210};
    ASSERT_EQ(insert_toa(f.view, f.parsed, client), ToaResult::inserted);
    EXPECT_EQ(f.checksum_error(), 0);
    EXPECT_TRUE(f.ip_ok());
    const uint8_t* opt = f.l4() + 20;
    EXPECT_EQ(opt[0], 254);
    EXPECT_EQ(opt[1], 8);
    EXPECT_EQ(load_be16(opt + 2), 43210);
    EXPECT_EQ(std::memcmp(opt + 4, client.address.v4(), 4), 0);
    EXPECT_EQ(std::vector<uint8_t>(opt + 8, opt + 20), kTimestamps);
    EXPECT_EQ(f.l4()[12] >> 4, 10);
    EXPECT_EQ(f.payload(), "hello");
    // The shorter side moved: the 17 bytes behind the gap, not the 54 of headers.
    EXPECT_EQ(f.view.headroom, 128u);
    EXPECT_EQ(f.view.tailroom, 120u);
    Frame big(false, {}, std::string(100, 'x'), kTcpAck, 128, 128);
    ASSERT_EQ(insert_toa(big.view, big.parsed, client), ToaResult::inserted);
    EXPECT_EQ(big.view.headroom, 120u);
    EXPECT_EQ(big.checksum_error(), 0);
    EXPECT_EQ(big.payload(), std::string(100, 'x'));
}

TEST(ToaInsertion, Ipv6UsesTheTailroomWhenThereIsNoHeadroom) {
    Frame f(true, {}, "odd", kTcpAck, 0, 20);
    ASSERT_EQ(insert_toa(f.view, f.parsed, Endpoint{ip("2001:db8:77::7"), 1}), ToaResult::inserted);
    EXPECT_EQ(f.checksum_error(), 0);
    EXPECT_EQ(f.view.tailroom, 0u);
    EXPECT_EQ(f.l4()[21], 20);
    EXPECT_EQ(f.payload(), "odd");
    EXPECT_EQ(load_be16(f.view.data + 14 + 4), 20 + 20 + 3);
}

TEST(ToaInsertion, NoRoom) {
    Frame full(false, std::vector<uint8_t>(36, 1), "", kTcpAck, 128, 128);  // 56 + 8 > 60
    const std::vector<uint8_t> before(full.view.data, full.view.data + full.view.len);
    EXPECT_EQ(insert_toa(full.view, full.parsed, Endpoint{ip("198.51.100.7"), 1}), ToaResult::no_option_room);
    EXPECT_EQ(std::vector<uint8_t>(full.view.data, full.view.data + full.view.len), before);

    Frame tight(false, {}, "", kTcpAck, 7, 7);
    EXPECT_EQ(insert_toa(tight.view, tight.parsed, Endpoint{ip("198.51.100.7"), 1}), ToaResult::no_buffer_room);
    EXPECT_EQ(tight.checksum_error(), 0);
}

TEST(ToaInsertion, EthernetPaddingIsDroppedNotCarried) {
    Frame f(false, {}, "", kTcpAck, 128, 128, 6);  // 54 bytes padded to 60
    ASSERT_EQ(insert_toa(f.view, f.parsed, Endpoint{ip("198.51.100.7"), 1}), ToaResult::inserted);
    EXPECT_EQ(f.view.len, 62u);
    EXPECT_EQ(f.checksum_error(), 0);
}

TEST(ToaInsertion, ABadChecksumStaysBad) {
    Frame f(false, {}, "x", kTcpAck, 128, 128);
    f.l4()[17] ^= 0x5a;
    const int error = f.checksum_error();
    ASSERT_NE(error, 0);
    ASSERT_EQ(insert_toa(f.view, f.parsed, Endpoint{ip("198.51.100.7"), 1}), ToaResult::inserted);
    EXPECT_NE(f.checksum_error(), 0);
}

struct Replacement {
    uint32_t old_n;
    uint32_t new_n;
    const char* payload;
};

class PayloadPrefix : public ::testing::TestWithParam<std::tuple<Replacement, bool, bool>> {};

TEST_P(PayloadPrefix, ReplacedWithChecksumsRight) {
    const auto& [r, v6, front] = GetParam();
    Frame f(v6, kTimestamps, r.payload, kTcpAck, front ? 128 : 0, 256);
    const std::string header(r.new_n, 'H');
    const std::string rest = std::string(r.payload).substr(r.old_n);
    ASSERT_TRUE(replace_payload_prefix(f.view, f.parsed, r.old_n, reinterpret_cast<const uint8_t*>(header.data()),
                                       r.new_n));
    EXPECT_EQ(f.payload(), header + rest);
    EXPECT_EQ(f.checksum_error(), 0);
    EXPECT_TRUE(f.ip_ok());
    EXPECT_EQ(f.view.len, 14u + (v6 ? 40 : 20) + 32 + header.size() + rest.size());
    EXPECT_EQ(load_be32(f.l4() + 4), 1001u);  // the TCP header itself is as it was
}

INSTANTIATE_TEST_SUITE_P(
    Lengths, PayloadPrefix,
    ::testing::Combine(::testing::Values(Replacement{0, 46, ""}, Replacement{0, 47, ""}, Replacement{0, 47, "GET /"},
                                         Replacement{0, 28, "GET / HTTP/1.1"}, Replacement{10, 3, "0123456789abc"},
                                         Replacement{11, 4, "0123456789abcd"}, Replacement{9, 52, "012345678tail"},
                                         Replacement{9, 9, "012345678odd"}),
                       ::testing::Bool(), ::testing::Bool()));

TEST(PayloadPrefix, NoRoomLeavesTheFrame) {
    Frame f(false, {}, "data", kTcpAck, 10, 10);
    const std::string header(46, 'H');
    EXPECT_FALSE(replace_payload_prefix(f.view, f.parsed, 0, reinterpret_cast<const uint8_t*>(header.data()), 46));
    EXPECT_EQ(f.payload(), "data");
    EXPECT_EQ(f.checksum_error(), 0);
}

TEST(PayloadPrefix, ABadChecksumKeepsItsError) {
    Frame f(false, {}, "abc", kTcpAck, 128, 128);
    store_be16(f.l4() + 16, static_cast<uint16_t>(load_be16(f.l4() + 16) + 0x100));
    const std::string header(47, 'H');
    ASSERT_TRUE(replace_payload_prefix(f.view, f.parsed, 0, reinterpret_cast<const uint8_t*>(header.data()), 47));
    EXPECT_NE(f.checksum_error(), 0);
}

TEST(AckShift, AckAndSackBlocksAtAnOddOffset) {
    // NOP, then SACK with two blocks at offset 21 (odd), then NOP NOP NOP: 28 bytes.
    std::vector<uint8_t> options = {1, 5, 18};
    for (uint32_t v : {1001u + 46 + 100, 1001u + 46 + 200, 1001u + 46 + 300, 1001u + 46 + 400}) {
        options.push_back(static_cast<uint8_t>(v >> 24));
        options.push_back(static_cast<uint8_t>(v >> 16));
        options.push_back(static_cast<uint8_t>(v >> 8));
        options.push_back(static_cast<uint8_t>(v));
    }
    options.insert(options.end(), {1, 1, 1, 1, 1, 1, 1});
    Frame f(false, options, "", kTcpAck, 0, 0);
    store_be32(f.l4() + 8, 1001 + 46 + 50);
    // (the ACK was set after the checksum: make it right again first)
    f.l4()[16] = f.l4()[17] = 0;
    const uint16_t c = l4_checksum(f.parsed.key.src, f.parsed.key.dst, 6, f.l4(), f.parsed.l4_length);
    std::memcpy(f.l4() + 16, &c, 2);
    shift_acks_to_client(f.view.data, f.parsed, SeqShift{1001, 46, 46});
    EXPECT_EQ(load_be32(f.l4() + 8), 1001u + 50);
    EXPECT_EQ(load_be32(f.l4() + 23), 1001u + 100);
    EXPECT_EQ(load_be32(f.l4() + 27), 1001u + 200);
    EXPECT_EQ(load_be32(f.l4() + 31), 1001u + 300);
    EXPECT_EQ(load_be32(f.l4() + 35), 1001u + 400);
    EXPECT_EQ(f.checksum_error(), 0);
}

TEST(AckShift, DsackOfHeaderBytesOnlyBecomesNops) {
    std::vector<uint8_t> options = {1, 1, 5, 18};
    for (uint32_t v : {1001u, 1001u + 46, 1001u + 46 + 300, 1001u + 46 + 400}) {
        for (int s = 24; s >= 0; s -= 8) options.push_back(static_cast<uint8_t>(v >> s));
    }
    options.insert(options.end(), {1, 1});
    Frame f(true, options, "", kTcpAck, 0, 0);
    shift_acks_to_client(f.view.data, f.parsed, SeqShift{1001, 46, 46});
    const uint8_t* o = f.l4() + 20;
    for (int i = 0; i < 10; ++i) EXPECT_EQ(o[i], 1) << i;
    EXPECT_EQ(o[10], 5);
    EXPECT_EQ(o[11], 10);
    EXPECT_EQ(load_be32(o + 12), 1001u + 300);
    EXPECT_EQ(load_be32(o + 16), 1001u + 400);
    EXPECT_EQ(f.checksum_error(), 0);
}

TEST(MssClamp, AtAnOddOffsetAndNeverBelowTheFloor) {
    Frame f(false, {1, 2, 4, 0x05, 0xb4, 1, 1, 1}, "", kTcpSyn | kTcpAck, 0, 0);  // NOP, MSS 1460
    ASSERT_TRUE(clamp_mss(f.view.data, f.parsed, 46));
    EXPECT_EQ(load_be16(f.l4() + 23), 1414);
    EXPECT_EQ(f.checksum_error(), 0);
    ASSERT_TRUE(clamp_mss(f.view.data, f.parsed, 2000));
    EXPECT_EQ(load_be16(f.l4() + 23), 48);
    EXPECT_EQ(f.checksum_error(), 0);
    Frame none(false, kTimestamps, "", kTcpSyn | kTcpAck, 0, 0);
    EXPECT_FALSE(clamp_mss(none.view.data, none.parsed, 46));
    EXPECT_EQ(none.checksum_error(), 0);
}

TEST(Reset, BareSegmentOfEitherFamily) {
    for (bool v6 : {false, true}) {
        Frame f(v6, kTimestamps, "payload that goes", kTcpAck | kTcpPsh, 0, 0);
        const uint32_t before = f.view.len;
        const Endpoint src{ip(v6 ? "2001:db8:100::10" : "10.0.100.10"), 80};
        const Endpoint dst{ip(v6 ? "2001:db8:77::7" : "198.51.100.7"), 43210};
        make_tcp_reset(f.view, f.parsed, src, dst, 777, 0, kTcpRst);
        EXPECT_EQ(f.view.len, 14u + (v6 ? 40 : 20) + 20);
        EXPECT_EQ(f.view.tailroom, before - f.view.len);
        EXPECT_EQ(f.checksum_error(), 0);
        EXPECT_TRUE(f.ip_ok());
        EXPECT_EQ(f.l4()[13], kTcpRst);
        EXPECT_EQ(load_be32(f.l4() + 4), 777u);
        EXPECT_EQ(load_be16(f.l4()), 80);
        ParsedPacket again = parse_packet(f.view.data, f.view.len);
        EXPECT_EQ(again.key.src, src.address);
        EXPECT_EQ(again.key.dst, dst.address);
        EXPECT_EQ(again.ttl, 64);
    }
}

TEST(QuotedSeq, UnshiftedWithItsChecksum) {
    Frame f(false, {}, "x", kTcpAck, 0, 0);
    store_be32(f.l4() + 4, 1001 + 46 + 10);
    f.l4()[16] = f.l4()[17] = 0;
    const uint16_t c = l4_checksum(f.parsed.key.src, f.parsed.key.dst, 6, f.l4(), f.parsed.l4_length);
    std::memcpy(f.l4() + 16, &c, 2);
    unshift_quoted_seq(f.l4(), f.parsed.l4_length, SeqShift{1001, 46, 46});
    EXPECT_EQ(load_be32(f.l4() + 4), 1001u + 10);
    EXPECT_EQ(f.checksum_error(), 0);
}

}  // namespace
}  // namespace dplb::core
