// Tests for core/checksum: known vectors, a naive byte-wise reference, and incremental
// rewrites of random IPv4/IPv6 TCP/UDP packets checked against full recomputation.
#include "core/checksum.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace dplb::core {
namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

// Deliberately simple, independent of checksum.cpp: big-endian 16-bit words, a wide
// accumulator, fold at the end. Returns the checksum as a host-order number.
uint16_t naive_checksum(const std::vector<uint8_t>& b) {
    uint64_t sum = 0;
    for (size_t i = 0; i < b.size(); i += 2) {
        sum += static_cast<uint64_t>(b[i]) << 8;
        if (i + 1 < b.size()) sum += b[i + 1];
    }
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

uint16_t naive_l4_checksum(bool v6, const uint8_t* src, const uint8_t* dst, uint8_t proto,
                           const uint8_t* l4, size_t len) {
    std::vector<uint8_t> b;
    const size_t alen = v6 ? 16 : 4;
    b.insert(b.end(), src, src + alen);
    b.insert(b.end(), dst, dst + alen);
    if (v6) {
        b.insert(b.end(), {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                           static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 0, 0, 0,
                           proto});
    } else {
        b.insert(b.end(), {0, proto, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)});
    }
    b.insert(b.end(), l4, l4 + len);
    return naive_checksum(b);
}

// The library works on raw (memory-order) values; this reads one as the big-endian
// number the naive reference produces.
uint16_t raw_to_be(uint16_t raw) {
    uint8_t b[2];
    std::memcpy(b, &raw, 2);
    return static_cast<uint16_t>(b[0] << 8 | b[1]);
}

uint16_t load16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

uint16_t udp_rule(uint16_t check) { return check == 0 ? 0xffff : check; }

// One packet: IP header (IPv4 with 0..10 option words, or IPv6), TCP or UDP header,
// random payload; both checksums computed from scratch and stored.
struct Packet {
    std::vector<uint8_t> b;
    bool v6 = false;
    size_t l3_len = 0;
    uint8_t proto = 0;

    uint8_t* src() { return &b[v6 ? 8 : 12]; }
    uint8_t* dst() { return &b[v6 ? 24 : 16]; }
    size_t addr_len() const { return v6 ? 16 : 4; }
    uint8_t* l4() { return &b[l3_len]; }
    size_t l4_len() const { return b.size() - l3_len; }
    uint8_t* l4_check() { return l4() + (proto == kTcp ? 16 : 6); }
    uint8_t* ip_check() { return &b[10]; }  // IPv4 only

    IpAddress src_ip() { return v6 ? IpAddress::from_v6(src()) : IpAddress::from_v4(src()); }
    IpAddress dst_ip() { return v6 ? IpAddress::from_v6(dst()) : IpAddress::from_v4(dst()); }

    // Full recomputation with the library, field zeroed first.
    uint16_t full_ip_check() {
        std::vector<uint8_t> h(b.begin(), b.begin() + static_cast<ptrdiff_t>(l3_len));
        h[10] = h[11] = 0;
        return ipv4_header_checksum(h.data(), h.size());
    }
    uint16_t full_l4_check() {
        std::vector<uint8_t> l(b.begin() + static_cast<ptrdiff_t>(l3_len), b.end());
        std::memset(&l[proto == kTcp ? 16 : 6], 0, 2);
        const uint16_t c = l4_checksum(src_ip(), dst_ip(), proto, l.data(), l.size());
        return proto == kUdp ? udp_rule(c) : c;
    }
    // The same with the naive reference, as a big-endian number.
    uint16_t naive_l4_check() {
        std::vector<uint8_t> l(b.begin() + static_cast<ptrdiff_t>(l3_len), b.end());
        std::memset(&l[proto == kTcp ? 16 : 6], 0, 2);
        const uint16_t c = naive_l4_checksum(v6, src(), dst(), proto, l.data(), l.size());
        return proto == kUdp ? udp_rule(c) : c;
    }
    uint16_t naive_ip_check() {
        std::vector<uint8_t> h(b.begin(), b.begin() + static_cast<ptrdiff_t>(l3_len));
        h[10] = h[11] = 0;
        return naive_checksum(h);
    }
};

Packet random_packet(std::mt19937_64& rng) {
    auto byte = [&] { return static_cast<uint8_t>(rng()); };
    Packet p;
    p.v6 = rng() & 1;
    p.proto = (rng() & 1) ? kTcp : kUdp;
    p.l3_len = p.v6 ? 40 : 20 + 4 * (rng() % 11);
    const size_t l4_hdr = p.proto == kTcp ? 20 : 8;
    const size_t payload = rng() % 1500;  // odd lengths included
    p.b.resize(p.l3_len + l4_hdr + payload);
    for (auto& x : p.b) x = byte();
    const size_t l4_len = l4_hdr + payload;
    if (p.v6) {
        p.b[0] = 0x60;
        p.b[4] = static_cast<uint8_t>(l4_len >> 8);
        p.b[5] = static_cast<uint8_t>(l4_len);
        p.b[6] = p.proto;
    } else {
        p.b[0] = static_cast<uint8_t>(0x40 | (p.l3_len / 4));
        p.b[2] = static_cast<uint8_t>(p.b.size() >> 8);
        p.b[3] = static_cast<uint8_t>(p.b.size());
        p.b[9] = p.proto;
        store16(p.ip_check(), p.full_ip_check());
    }
    if (p.proto == kUdp) {
        p.l4()[4] = static_cast<uint8_t>(l4_len >> 8);
        p.l4()[5] = static_cast<uint8_t>(l4_len);
    }
    store16(p.l4_check(), p.full_l4_check());
    return p;
}

TEST(ChecksumTest, Rfc1071Example) {
    // RFC 1071 section 3: the sum of these bytes is ddf2, so the checksum is 220d.
    const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(raw_to_be(checksum_finish(checksum_add(data, sizeof data))), 0x220d);
}

TEST(ChecksumTest, KnownIpv4Header) {
    // 192.168.0.1 -> 192.168.0.199 UDP, total length 0x73, DF, TTL 64, checksum b861.
    uint8_t hdr[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                     0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    // A header with a valid checksum sums to 0xffff, i.e. finishes to zero.
    EXPECT_EQ(checksum_finish(checksum_add(hdr, sizeof hdr)), 0);
    hdr[10] = hdr[11] = 0;
    EXPECT_EQ(raw_to_be(ipv4_header_checksum(hdr, sizeof hdr)), 0xb861);
}

TEST(ChecksumTest, Rfc1624Example) {
    // RFC 1624 section 4: HC=dd2f, m 5555 -> 3285 gives 0000 with eqn. 3 (the older
    // eqn. 2 gives ffff, which is the bug the RFC fixes).
    EXPECT_EQ(checksum_replace16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

TEST(ChecksumTest, OddLengthPadsWithZero) {
    const uint8_t one[] = {0xab};
    EXPECT_EQ(raw_to_be(checksum_finish(checksum_add(one, 1))), 0x54ff);  // ~ab00

    std::mt19937_64 rng(7);
    for (size_t len = 1; len < 100; len += 2) {
        std::vector<uint8_t> data(len + 1);
        for (auto& x : data) x = static_cast<uint8_t>(rng());
        data[len] = 0;
        // Unfolded sums may differ in form; the folded checksum may not.
        EXPECT_EQ(checksum_finish(checksum_add(data.data(), len)),
                  checksum_finish(checksum_add(data.data(), len + 1)))
            << "len " << len;
        std::vector<uint8_t> exact(data.begin(), data.begin() + static_cast<ptrdiff_t>(len));
        EXPECT_EQ(raw_to_be(checksum_finish(checksum_add(data.data(), len))),
                  naive_checksum(exact))
            << "len " << len;
    }
}

TEST(ChecksumTest, FullSumMatchesNaiveAtAnyLengthAndAlignment) {
    std::mt19937_64 rng(1);
    std::vector<uint8_t> buf(600);
    for (size_t len = 0; len <= 520; ++len) {
        for (size_t offset = 0; offset < 8; ++offset) {
            for (auto& x : buf) x = static_cast<uint8_t>(rng());
            const std::vector<uint8_t> exact(buf.begin() + static_cast<ptrdiff_t>(offset),
                                             buf.begin() + static_cast<ptrdiff_t>(offset + len));
            ASSERT_EQ(raw_to_be(checksum_finish(checksum_add(&buf[offset], len))),
                      naive_checksum(exact))
                << "len " << len << " offset " << offset;
        }
    }
    // All ones: the 64-bit accumulator carries out on every add.
    std::vector<uint8_t> ones(1000, 0xff);
    EXPECT_EQ(checksum_finish(checksum_add(ones.data(), ones.size())), naive_checksum(ones));
}

TEST(ChecksumTest, SumsChainOverEvenPieces) {
    std::mt19937_64 rng(2);
    std::vector<uint8_t> data(301);
    for (auto& x : data) x = static_cast<uint8_t>(rng());
    for (size_t split = 0; split <= 300; split += 2) {
        const uint32_t chained =
            checksum_add(&data[split], data.size() - split, checksum_add(data.data(), split));
        ASSERT_EQ(checksum_finish(chained), checksum_finish(checksum_add(data.data(), data.size())))
            << "split " << split;
    }
}

TEST(ChecksumTest, L4ChecksumMatchesNaivePseudoHeader) {
    std::mt19937_64 rng(3);
    for (int i = 0; i < 2000; ++i) {
        Packet p = random_packet(rng);
        SCOPED_TRACE(::testing::Message() << "packet " << i << (p.v6 ? " v6" : " v4")
                                          << " proto " << int(p.proto) << " l4_len "
                                          << p.l4_len());
        ASSERT_EQ(raw_to_be(load16(p.l4_check())), p.naive_l4_check());
        if (!p.v6) {
            ASSERT_EQ(raw_to_be(load16(p.ip_check())), p.naive_ip_check());
        }
    }
}

TEST(ChecksumTest, IncrementalRewriteEqualsFullRecompute) {
    std::mt19937_64 rng(4);
    int rewrites = 0;
    for (int i = 0; i < 10000; ++i) {
        Packet p = random_packet(rng);
        SCOPED_TRACE(::testing::Message() << "packet " << i << (p.v6 ? " v6" : " v4")
                                          << " proto " << int(p.proto) << " l4_len "
                                          << p.l4_len());
        uint16_t ip_check = load16(p.ip_check());
        uint16_t l4_check = load16(p.l4_check());

        // Full-NAT rewrites: each field changes with probability 3/4, as the engine
        // sometimes keeps a port or an address.
        for (uint8_t* addr : {p.src(), p.dst()}) {
            if (rng() % 4 == 0) continue;
            uint8_t fresh[16];
            for (auto& x : fresh) x = static_cast<uint8_t>(rng());
            if (p.v6) {
                l4_check = checksum_replace_bytes(l4_check, addr, fresh, 16);
            } else {
                ip_check = checksum_replace32(ip_check, load32(addr), load32(fresh));
                l4_check = checksum_replace32(l4_check, load32(addr), load32(fresh));
            }
            std::memcpy(addr, fresh, p.addr_len());
            ++rewrites;
        }
        for (uint8_t* port : {p.l4(), p.l4() + 2}) {
            if (rng() % 4 == 0) continue;
            const uint16_t fresh = static_cast<uint16_t>(rng());
            l4_check = checksum_replace16(l4_check, load16(port), fresh);
            store16(port, fresh);
            ++rewrites;
        }
        if (p.proto == kUdp) l4_check = udp_rule(l4_check);
        if (!p.v6) store16(p.ip_check(), ip_check);  // IPv6 has no header checksum
        store16(p.l4_check(), l4_check);

        ASSERT_EQ(l4_check, p.full_l4_check());
        ASSERT_EQ(raw_to_be(l4_check), p.naive_l4_check());
        if (!p.v6) {
            ASSERT_EQ(ip_check, p.full_ip_check());
            ASSERT_EQ(raw_to_be(ip_check), p.naive_ip_check());
        }
    }
    EXPECT_GT(rewrites, 20000);
}

TEST(ChecksumTest, ReplaceBytesMatchesWordByWord) {
    std::mt19937_64 rng(5);
    for (int i = 0; i < 1000; ++i) {
        const uint16_t check = static_cast<uint16_t>(rng());
        uint8_t old_b[16], new_b[16];
        for (auto& x : old_b) x = static_cast<uint8_t>(rng());
        for (auto& x : new_b) x = static_cast<uint8_t>(rng());
        uint16_t by_words = check;
        for (size_t w = 0; w < 16; w += 2) {
            by_words = checksum_replace16(by_words, load16(&old_b[w]), load16(&new_b[w]));
        }
        uint16_t by_dwords = check;
        for (size_t w = 0; w < 16; w += 4) {
            by_dwords = checksum_replace32(by_dwords, load32(&old_b[w]), load32(&new_b[w]));
        }
        const uint16_t by_bytes = checksum_replace_bytes(check, old_b, new_b, 16);
        // Equal as ones'-complement values (0 and ffff are both zero).
        EXPECT_EQ(by_bytes % 0xffff, by_words % 0xffff);
        EXPECT_EQ(by_bytes % 0xffff, by_dwords % 0xffff);
    }
}

TEST(ChecksumTest, UdpZeroIsReturnedRawAndSurvivesIncrementalUpdate) {
    // Choose the last two payload bytes so that the UDP checksum computes to zero:
    // adding the checksum c of the data to the data makes it sum to ffff (-0).
    const auto src = *IpAddress::parse("10.1.2.3");
    const auto dst = *IpAddress::parse("10.9.8.7");
    std::vector<uint8_t> udp = {0x30, 0x39, 0x00, 0x35, 0x00, 0x0e, 0x00, 0x00,
                                'h',  'e',  'l',  'l',  0x00, 0x00};
    const uint16_t c = l4_checksum(src, dst, kUdp, udp.data(), udp.size());
    store16(&udp[12], c);
    ASSERT_EQ(l4_checksum(src, dst, kUdp, udp.data(), udp.size()), 0);

    // Stored as ffff per RFC 768; a port rewrite from there matches a recomputation.
    const uint16_t new_port = raw_to_be(0x1f90);  // 8080, as raw bytes 1f 90
    uint16_t check = checksum_replace16(0xffff, load16(&udp[0]), new_port);
    store16(&udp[0], new_port);
    EXPECT_EQ(udp_rule(check), udp_rule(l4_checksum(src, dst, kUdp, udp.data(), udp.size())));
}

}  // namespace
}  // namespace dplb::core
