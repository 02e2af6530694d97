// Tests for core/toeplitz: Microsoft's RSS verification vectors, table-driven against
// the bitwise reference (and DPDK's rte_softrss when built with DPDK headers), and the
// spread of flows over workers.
#include "core/toeplitz.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#ifdef DPLB_HAVE_DPDK_THASH
#include <rte_config.h>
#include <rte_thash.h>
#endif

namespace dplb::core {
namespace {

FlowKey make_key(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    FlowKey k;
    k.src = *IpAddress::parse(src);
    k.dst = *IpAddress::parse(dst);
    k.src_port = sport;
    k.dst_port = dport;
    k.proto = 6;
    return k;
}

// The hash input exactly as NICs take it: addresses, then ports, network order.
std::vector<uint8_t> rss_input(const FlowKey& k) {
    std::vector<uint8_t> in;
    if (k.src.is_v4()) {
        in.insert(in.end(), k.src.v4(), k.src.v4() + 4);
        in.insert(in.end(), k.dst.v4(), k.dst.v4() + 4);
    } else {
        in.insert(in.end(), k.src.v6(), k.src.v6() + 16);
        in.insert(in.end(), k.dst.v6(), k.dst.v6() + 16);
    }
    for (uint16_t port : {k.src_port, k.dst_port}) {
        in.push_back(static_cast<uint8_t>(port >> 8));
        in.push_back(static_cast<uint8_t>(port));
    }
    return in;
}

uint32_t reference(const FlowKey& k) {
    const auto in = rss_input(k);
    return toeplitz_hash_reference(kRssKey, in.data(), in.size());
}

FlowKey random_key(std::mt19937_64& rng) {
    FlowKey k;
    uint8_t a[16], b[16];
    for (auto& x : a) x = static_cast<uint8_t>(rng());
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (rng() & 1) {
        k.src = IpAddress::from_v4(a);
        k.dst = IpAddress::from_v4(b);
    } else {
        a[0] = 0x20;  // never v4-mapped, so is_v4() picks the IPv6 layout
        k.src = IpAddress::from_v6(a);
        k.dst = IpAddress::from_v6(b);
    }
    k.src_port = static_cast<uint16_t>(rng());
    k.dst_port = static_cast<uint16_t>(rng());
    k.proto = (rng() & 1) ? 6 : 17;
    return k;
}

struct Vector {
    const char* src;
    uint16_t sport;
    const char* dst;
    uint16_t dport;
    uint32_t hash;
};

// "Verifying the RSS Hash Calculation" (Microsoft NDIS docs), IPv4/IPv6 with TCP ports.
// The hash input starts with the first address listed here.
constexpr Vector kMsVectors[] = {
    {"66.9.149.187", 2794, "161.142.100.80", 1766, 0x51ccc178},
    {"199.92.111.2", 14230, "65.69.140.83", 4739, 0xc626b0ea},
    {"24.19.198.95", 12898, "12.22.207.184", 38024, 0x5c2b394a},
    {"38.27.205.30", 48228, "209.142.163.6", 2217, 0xafc7327f},
    {"153.39.163.191", 44251, "202.188.127.2", 1303, 0x10e828a2},
    {"3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x40207d3d},
    {"3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0xdde51bbf},
    {"3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024,
     0x02d1feef},
};

TEST(ToeplitzTest, ReferenceMatchesMicrosoftVectors) {
    for (const auto& v : kMsVectors) {
        EXPECT_EQ(reference(make_key(v.src, v.sport, v.dst, v.dport)), v.hash) << v.src;
    }
}

TEST(ToeplitzTest, RssHashMatchesMicrosoftVectors) {
    for (const auto& v : kMsVectors) {
        EXPECT_EQ(rss_hash(make_key(v.src, v.sport, v.dst, v.dport)), v.hash) << v.src;
    }
}

TEST(ToeplitzTest, KeyIsTheMicrosoftKey) {
    const uint8_t expected[kRssKeySize] = {
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
        0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
        0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
    EXPECT_EQ(std::memcmp(kRssKey, expected, kRssKeySize), 0);
}

TEST(ToeplitzTest, TableDrivenEqualsReferenceOnRandomKeys) {
    std::mt19937_64 rng(11);
    for (int i = 0; i < 100000; ++i) {
        const FlowKey k = random_key(rng);
        ASSERT_EQ(rss_hash(k), reference(k)) << "key " << i << (k.src.is_v4() ? " v4" : " v6");
    }
}

TEST(ToeplitzTest, SingleBitInputsEqualReference) {
    // Each input bit on its own selects one 32-bit key window: catches an off-by-one in
    // any table row that random keys might average out.
    for (size_t len : {size_t{12}, size_t{36}}) {
        for (size_t bit = 0; bit < len * 8; ++bit) {
            std::vector<uint8_t> in(len, 0);
            in[bit / 8] = static_cast<uint8_t>(0x80 >> (bit % 8));
            FlowKey k;
            if (len == 12) {
                k.src = IpAddress::from_v4(&in[0]);
                k.dst = IpAddress::from_v4(&in[4]);
            } else {
                // At most one bit set: never the ::ffff:0:0/96 prefix, so stays IPv6.
                k.src = IpAddress::from_v6(&in[0]);
                k.dst = IpAddress::from_v6(&in[16]);
            }
            k.src_port = static_cast<uint16_t>(in[len - 4] << 8 | in[len - 3]);
            k.dst_port = static_cast<uint16_t>(in[len - 2] << 8 | in[len - 1]);
            ASSERT_EQ(rss_hash(k), reference(k)) << "len " << len << " bit " << bit;
        }
    }
}

#ifdef DPLB_HAVE_DPDK_THASH
// rte_softrss takes the tuple as host-order 32-bit words (rte_ipv4_tuple: src, dst,
// then dport in the low half and sport in the high half) and the key as NIC bytes.
uint32_t dpdk_softrss(const FlowKey& k) {
    const auto in = rss_input(k);
    uint32_t words[9];
    const size_t n = in.size() / 4;
    for (size_t i = 0; i < n; ++i) {
        words[i] = static_cast<uint32_t>(in[4 * i]) << 24 | static_cast<uint32_t>(in[4 * i + 1]) << 16 |
                   static_cast<uint32_t>(in[4 * i + 2]) << 8 | in[4 * i + 3];
    }
    return rte_softrss(words, static_cast<uint32_t>(n), kRssKey);
}

TEST(ToeplitzTest, MatchesDpdkSoftRss) {
    for (const auto& v : kMsVectors) {
        const FlowKey k = make_key(v.src, v.sport, v.dst, v.dport);
        EXPECT_EQ(dpdk_softrss(k), v.hash) << v.src;
        EXPECT_EQ(rss_hash(k), dpdk_softrss(k)) << v.src;
    }
    std::mt19937_64 rng(12);
    for (int i = 0; i < 10000; ++i) {
        const FlowKey k = random_key(rng);
        ASSERT_EQ(rss_hash(k), dpdk_softrss(k)) << "key " << i << (k.src.is_v4() ? " v4" : " v6");
    }
}

TEST(ToeplitzTest, DpdkIpv4TupleLayoutMatches) {
    // The same input built through DPDK's own struct, as dplb's DPDK side would.
    const FlowKey k = make_key("66.9.149.187", 2794, "161.142.100.80", 1766);
    rte_thash_tuple t{};
    t.v4.src_addr = (66u << 24) | (9u << 16) | (149u << 8) | 187u;
    t.v4.dst_addr = (161u << 24) | (142u << 16) | (100u << 8) | 80u;
    t.v4.sport = 2794;
    t.v4.dport = 1766;
    EXPECT_EQ(rte_softrss(reinterpret_cast<uint32_t*>(&t), RTE_THASH_V4_L4_LEN, kRssKey),
              rss_hash(k));
}
#endif

TEST(RssOwnerTest, SpreadsFlowsEvenlyOverWorkers) {
    std::mt19937_64 rng(13);
    std::vector<FlowKey> flows;
    for (int i = 0; i < 10000; ++i) flows.push_back(random_key(rng));
    for (uint32_t workers : {2u, 4u}) {
        std::vector<int> count(workers, 0);
        for (const auto& k : flows) {
            const uint32_t owner = rss_owner(rss_hash(k), workers);
            ASSERT_LT(owner, workers);
            ++count[owner];
        }
        const double expected = 10000.0 / workers;
        for (uint32_t w = 0; w < workers; ++w) {
            // Binomial sd is about 50; 10% is a wide margin that a broken hash or
            // owner function (everything on one worker, or half of them idle) fails.
            EXPECT_NEAR(count[w], expected, expected * 0.1) << workers << " workers, worker " << w;
        }
    }
}

TEST(RssOwnerTest, FollowsRoundRobinRedirectionTable) {
    // Entry i of the 128-entry table points at worker i % workers.
    EXPECT_EQ(rss_owner(0x51ccc178, 4), (0x51ccc178u & 127) % 4);
    EXPECT_EQ(rss_owner(127, 3), 127u % 3);
    EXPECT_EQ(rss_owner(128, 3), 0u);  // wraps at the table size, not the hash
    EXPECT_EQ(rss_owner(0xffffffff, 1), 0u);
}

// What a NIC does with its redirection table: the hash's low bits pick the entry.
uint32_t nic_queue(const std::vector<uint16_t>& reta, uint32_t hash) { return reta[hash & (reta.size() - 1)]; }

TEST(RssRetaTest, EveryHashReachesItsOwnerWhereTheTableCanSayIt) {
    std::mt19937 rng(7);
    std::vector<uint32_t> hashes;
    for (uint32_t h = 0; h < 4096; ++h) hashes.push_back(h);
    for (int i = 0; i < 20000; ++i) hashes.push_back(static_cast<uint32_t>(rng()));
    for (uint32_t reta_size : {32u, 64u, 128u, 256u, 512u}) {
        for (uint32_t workers = 1; workers <= 12; ++workers) {
            const std::vector<uint16_t> reta = rss_reta(reta_size, workers);
            ASSERT_EQ(reta.size(), reta_size);
            uint32_t wrong = 0;
            for (uint32_t h : hashes) {
                ASSERT_LT(nic_queue(reta, h), workers);
                wrong += nic_queue(reta, h) != rss_owner(h, workers);
            }
            // Exact means every hash lands on its owner; not exact, that some do not.
            EXPECT_EQ(rss_reta_exact(reta_size, workers), wrong == 0)
                << reta_size << " entries, " << workers << " workers, " << wrong << " misplaced";
        }
    }
    // 128 entries and more: exact for any worker count. A 512-entry NIC's default
    // table (entry i -> i % workers) is not: for 3 workers it sends hash 200 to worker
    // 2, its owner is (200 & 127) % 3 = 0.
    EXPECT_NE(200u % 3, rss_owner(200, 3));
    EXPECT_TRUE(rss_reta_exact(128, 3));
    EXPECT_TRUE(rss_reta_exact(512, 6));
    EXPECT_TRUE(rss_reta_exact(64, 4));
    EXPECT_FALSE(rss_reta_exact(64, 3));
}

TEST(RssRetaTest, TablesThatAreNotAPowerOfTwoAreNeverExact) {
    EXPECT_FALSE(rss_reta_exact(52, 2));
    EXPECT_FALSE(rss_reta_exact(0, 2));
    EXPECT_FALSE(rss_reta_exact(128, 0));
}

}  // namespace
}  // namespace dplb::core
