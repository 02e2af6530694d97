// Tests for core/routing: RouteTable longest-prefix match across ports, the gateway of each
// family, no route; NeighbourTable set/lookup/remove/overwrite, its generation counter, a
// full table, misses that stay short after churn; NeighbourLearning: what gets in.
#include "core/routing.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

namespace dplb::core {
namespace {

IpAddress ip(const char* text) {
    auto a = IpAddress::parse(text);
    if (!a) throw std::invalid_argument(text);
    return *a;
}

Prefix prefix(const char* text) {
    auto p = Prefix::parse(text);
    if (!p) throw std::invalid_argument(text);
    return *p;
}

PortConfig port(const char* name, std::vector<Prefix> addresses, std::vector<IpAddress> gateways = {}) {
    PortConfig p;
    p.name = name;
    p.addresses = std::move(addresses);
    p.gateways = std::move(gateways);
    return p;
}

void expect_route(const RouteTable& t, const char* dst, uint8_t want_port, const char* want_next_hop) {
    auto r = t.lookup(ip(dst));
    ASSERT_TRUE(r.has_value()) << dst << ": no route";
    EXPECT_EQ(r->port, want_port) << dst;
    EXPECT_EQ(r->next_hop, ip(want_next_hop)) << dst << " via " << r->next_hop.to_string();
}

TEST(RouteTableTest, LongestPrefixWinsAcrossPorts) {
    // The broad prefix is on port 0, listed first; the narrow one on port 1 must still win.
    std::vector<PortConfig> ports = {
        port("port0", {prefix("10.0.0.1/8"), prefix("2001:db8::1/32")}),
        port("port1", {prefix("10.10.2.1/24"), prefix("2001:db8:2::1/64")}),
    };
    RouteTable t(ports);
    expect_route(t, "10.10.2.5", 1, "10.10.2.5");
    expect_route(t, "10.10.3.5", 0, "10.10.3.5");
    expect_route(t, "10.200.0.1", 0, "10.200.0.1");
    expect_route(t, "2001:db8:2::99", 1, "2001:db8:2::99");
    expect_route(t, "2001:db8:3::99", 0, "2001:db8:3::99");

    // Same prefixes, the ports swapped: the answer follows the prefix, not the order.
    std::vector<PortConfig> swapped = {ports[1], ports[0]};
    RouteTable u(swapped);
    expect_route(u, "10.10.2.5", 0, "10.10.2.5");
    expect_route(u, "10.10.3.5", 1, "10.10.3.5");
    expect_route(u, "2001:db8:2::99", 0, "2001:db8:2::99");
}

TEST(RouteTableTest, PrefixBoundariesAreExact) {
    RouteTable t({port("port0", {prefix("192.168.4.1/22")}, {ip("192.0.2.254")}),
                  port("port1", {prefix("192.168.8.1/23")})});
    expect_route(t, "192.168.4.0", 0, "192.168.4.0");
    expect_route(t, "192.168.7.255", 0, "192.168.7.255");
    expect_route(t, "192.168.8.7", 1, "192.168.8.7");
    expect_route(t, "192.168.9.255", 1, "192.168.9.255");
    // Just outside both: the gateway.
    expect_route(t, "192.168.3.255", 0, "192.0.2.254");
    expect_route(t, "192.168.10.0", 0, "192.0.2.254");
}

TEST(RouteTableTest, GatewayOfTheDestinationsFamily) {
    // Port 0 has the IPv4 gateway only, port 1 the IPv6 one only.
    RouteTable t({port("port0", {prefix("10.10.1.1/24")}, {ip("10.10.1.254")}),
                  port("port1", {prefix("10.10.2.1/24"), prefix("2001:db8:2::1/64")}, {ip("2001:db8:2::fe")})});
    expect_route(t, "192.0.2.1", 0, "10.10.1.254");
    expect_route(t, "2001:db8:ffff::1", 1, "2001:db8:2::fe");
    // Connected still beats the gateway.
    expect_route(t, "10.10.2.9", 1, "10.10.2.9");
    expect_route(t, "2001:db8:2::9", 1, "2001:db8:2::9");
}

TEST(RouteTableTest, FirstPortWithAGatewayOfTheFamily) {
    RouteTable t({port("port0", {prefix("10.10.1.1/24")}, {ip("10.10.1.254")}),
                  port("port1", {prefix("10.10.2.1/24")}, {ip("10.10.2.254")})});
    expect_route(t, "192.0.2.1", 0, "10.10.1.254");
}

TEST(RouteTableTest, NoRoute) {
    RouteTable empty(std::vector<PortConfig>{});
    EXPECT_FALSE(empty.lookup(ip("10.0.0.1")).has_value());
    EXPECT_FALSE(empty.lookup(ip("2001:db8::1")).has_value());

    // IPv4 only: no IPv6 destination is reachable, and no IPv4 one beyond the subnet.
    RouteTable v4_only({port("port0", {prefix("10.10.1.1/24")})});
    EXPECT_FALSE(v4_only.lookup(ip("2001:db8::1")).has_value());
    EXPECT_FALSE(v4_only.lookup(ip("10.10.2.1")).has_value());
    expect_route(v4_only, "10.10.1.2", 0, "10.10.1.2");

    // An IPv6 default route does not carry IPv4 (IPv4 is stored v4-mapped, inside ::/0).
    RouteTable v6_default({port("port0", {prefix("::/0")}, {ip("2001:db8::fe")})});
    EXPECT_FALSE(v6_default.lookup(ip("10.0.0.1")).has_value());
    expect_route(v6_default, "2001:db8:5::5", 0, "2001:db8:5::5");
}

TEST(RouteTableTest, PortAddresses) {
    RouteTable t({port("port0", {prefix("10.10.1.1/24")}), port("port1", {prefix("2001:db8:2::1/64")})});
    EXPECT_TRUE(t.is_port_address(ip("10.10.1.1")));
    EXPECT_TRUE(t.is_port_address(ip("2001:db8:2::1")));
    EXPECT_FALSE(t.is_port_address(ip("10.10.1.2")));
    EXPECT_FALSE(t.is_port_address(ip("2001:db8:2::2")));
}

const MacAddress kMacA = {0x02, 0, 0, 0, 0, 0x0a};
const MacAddress kMacB = {0x02, 0, 0, 0, 0, 0x0b};

TEST(NeighbourTableTest, SetLookupRemoveOverwrite) {
    NeighbourTable n;
    const IpAddress rs = ip("10.10.2.11");
    EXPECT_FALSE(n.lookup(0, rs).has_value());

    n.set(1, rs, kMacA);
    EXPECT_EQ(n.lookup(1, rs), kMacA);
    EXPECT_FALSE(n.lookup(0, rs).has_value()) << "neighbours are per port";
    EXPECT_FALSE(n.lookup(1, ip("10.10.2.12")).has_value());

    n.set(1, rs, kMacB);
    EXPECT_EQ(n.lookup(1, rs), kMacB);
    EXPECT_EQ(n.entries().size(), 1u) << "an overwrite must not add a second entry";

    n.set(0, rs, kMacA);  // the same address on another port is another neighbour
    EXPECT_EQ(n.lookup(0, rs), kMacA);
    EXPECT_EQ(n.lookup(1, rs), kMacB);

    n.remove(1, rs);
    EXPECT_FALSE(n.lookup(1, rs).has_value());
    EXPECT_EQ(n.lookup(0, rs), kMacA);

    n.set(1, rs, kMacA);  // back after removal
    EXPECT_EQ(n.lookup(1, rs), kMacA);
    EXPECT_EQ(n.entries().size(), 2u);

    const IpAddress v6 = ip("fe80::1");
    n.set(0, v6, kMacB);
    EXPECT_EQ(n.lookup(0, v6), kMacB);
}

TEST(NeighbourTableTest, GenerationGrowsOnEveryChangeOnly) {
    NeighbourTable n;
    const IpAddress a = ip("10.10.2.11"), b = ip("10.10.2.12");
    uint32_t g = n.generation();

    auto expect_grew = [&](const char* what) {
        EXPECT_GT(n.generation(), g) << what;
        g = n.generation();
    };
    auto expect_same = [&](const char* what) { EXPECT_EQ(n.generation(), g) << what; };

    n.set(0, a, kMacA);
    expect_grew("new entry");
    n.set(0, a, kMacA);
    expect_same("same MAC again");
    n.set(0, a, kMacB);
    expect_grew("MAC changed");
    n.set(0, b, kMacB);
    expect_grew("second entry");
    n.remove(0, a);
    expect_grew("removal");
    n.remove(0, a);
    expect_same("removal of an absent entry");
    n.remove(1, b);
    expect_same("removal on another port");
    n.set(0, a, kMacB);
    expect_grew("re-added with the MAC it had");
    n.set(0, a, kMacB);
    expect_same("same MAC again");
}

TEST(NeighbourTableTest, ManyEntriesWithRemovalsMatchAModel) {
    // Removals leave tombstones in the probe runs: entries beyond them must still be found
    // and a re-set must update the existing entry rather than add a duplicate.
    NeighbourTable n(128);  // room for all 120 keys
    std::map<std::pair<uint8_t, uint32_t>, MacAddress> model;
    std::mt19937 rng(5);
    auto address = [](uint32_t i) {
        const uint8_t b[4] = {10, 20, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        return IpAddress::from_v4(b);
    };
    uint32_t g = n.generation();
    for (int op = 0; op < 5000; ++op) {
        const uint8_t p = static_cast<uint8_t>(rng() % 2);
        const uint32_t i = rng() % 60;
        const auto key = std::make_pair(p, i);
        if (rng() % 3 == 0) {
            const bool present = model.erase(key) > 0;
            n.remove(p, address(i));
            EXPECT_EQ(n.generation() != g, present) << "op " << op;
        } else {
            const MacAddress mac = {0x02, 0, 0, p, static_cast<uint8_t>(i), static_cast<uint8_t>(rng() % 3)};
            auto it = model.find(key);
            const bool change = it == model.end() || it->second != mac;
            model[key] = mac;
            n.set(p, address(i), mac);
            EXPECT_EQ(n.generation() != g, change) << "op " << op;
        }
        g = n.generation();
        if (op % 50 == 0) {
            for (uint8_t q = 0; q < 2; ++q) {
                for (uint32_t j = 0; j < 60; ++j) {
                    auto found = n.lookup(q, address(j));
                    auto want = model.find({q, j});
                    if (want == model.end()) {
                        ASSERT_FALSE(found.has_value()) << "op " << op << ": stale entry";
                    } else {
                        ASSERT_TRUE(found.has_value()) << "op " << op << ": lost entry";
                        ASSERT_EQ(*found, want->second) << "op " << op;
                    }
                }
            }
            ASSERT_EQ(n.entries().size(), model.size()) << "op " << op;
        }
    }
}

IpAddress numbered(uint32_t i) {
    const uint8_t b[4] = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    return IpAddress::from_v4(b);
}

MacAddress mac_of(uint32_t i) {
    return {0x02, 0, static_cast<uint8_t>(i >> 24), static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
            static_cast<uint8_t>(i)};
}

TEST(NeighbourTableTest, AFullTableRefusesAndSaysSo) {
    NeighbourTable n(16);
    for (uint32_t i = 0; i < 16; ++i) ASSERT_EQ(n.set(0, numbered(i), mac_of(i)), NeighbourTable::SetResult::added);
    const uint32_t g = n.generation();
    EXPECT_EQ(n.set(0, numbered(16), mac_of(16)), NeighbourTable::SetResult::full);
    EXPECT_FALSE(n.lookup(0, numbered(16)).has_value());
    EXPECT_EQ(n.generation(), g);
    // A known entry still changes, and a removal makes room.
    EXPECT_EQ(n.set(0, numbered(3), mac_of(99)), NeighbourTable::SetResult::updated);
    EXPECT_EQ(n.set(0, numbered(3), mac_of(99)), NeighbourTable::SetResult::unchanged);
    n.remove(0, numbered(5));
    EXPECT_EQ(n.set(0, numbered(16), mac_of(16)), NeighbourTable::SetResult::added);
    EXPECT_EQ(n.lookup(0, numbered(16)), mac_of(16));
    EXPECT_EQ(n.size(), 16u);
}

// Misses happen on the worker path (a new client's first packet): however many entries
// came and went, one reads a bounded number of slots, and none once the table is empty.
TEST(NeighbourTableTest, MissesStayShortAfterManySetRemoveCycles) {
    NeighbourTable n(64);
    constexpr uint32_t kKept = 16;
    for (uint32_t i = 0; i < kKept; ++i) n.set(1, numbered(1'000'000 + i), mac_of(i));
    for (uint32_t i = 0; i < 100'000; ++i) {
        n.set(0, numbered(i), mac_of(i));
        if (i >= 8) n.remove(0, numbered(i - 8));  // up to 8 churning entries at a time
    }
    for (uint32_t i = 100'000 - 8; i < 100'000; ++i) n.remove(0, numbered(i));
    uint32_t longest = 0;
    for (uint32_t i = 0; i < 10'000; ++i) {
        uint32_t probes = 0;
        ASSERT_FALSE(n.lookup(2, numbered(i), &probes).has_value());
        longest = std::max(longest, probes);
    }
    // The 16 entries left lie in 128 slots: a miss reads to the end of a run of them.
    EXPECT_LE(longest, kKept + 1) << "a miss walked over slots of removed entries";
    for (uint32_t i = 0; i < kKept; ++i) ASSERT_EQ(n.lookup(1, numbered(1'000'000 + i)), mac_of(i)) << i;
    // Every slot is still usable: the table fills to its capacity.
    for (uint32_t i = 0; i < 64 - kKept; ++i) {
        ASSERT_EQ(n.set(3, numbered(i), mac_of(i)), NeighbourTable::SetResult::added) << i;
    }
    // Once nothing is left, no deleted slot is either: every miss reads one slot.
    for (uint32_t i = 0; i < kKept; ++i) n.remove(1, numbered(1'000'000 + i));
    for (uint32_t i = 0; i < 64 - kKept; ++i) n.remove(3, numbered(i));
    EXPECT_EQ(n.size(), 0u);
    for (uint32_t i = 0; i < 1'000; ++i) {
        uint32_t probes = 0;
        ASSERT_FALSE(n.lookup(2, numbered(i), &probes).has_value());
        ASSERT_EQ(probes, 1u) << "a removed entry left its slot in use";
    }
}

constexpr uint64_t kSecondNs = 1'000'000'000ULL;

// An ARP scan (here 10,000 senders, each claiming its address) must leave the table to
// the next hops the node needs: what it was told about, what it asked for, what it has.
TEST(NeighbourLearningTest, AScanOfUnsolicitedSendersLeavesRoomForARealNextHop) {
    NeighbourTable table(4096);
    NeighbourLearning learning(table);
    const IpAddress gateway = ip("10.10.1.254"), real = ip("10.10.2.11");
    learning.set_wanted({{0, gateway}});
    for (uint32_t i = 0; i < 10'000; ++i) {
        ASSERT_EQ(learning.heard(0, numbered(i), mac_of(i), kSecondNs), NeighbourLearning::Outcome::unsolicited);
    }
    EXPECT_EQ(table.size(), 0u) << "a scan took slots";
    EXPECT_EQ(learning.unsolicited(), 10'000u);

    // The configured gateway is learned when it speaks, asked or not.
    EXPECT_EQ(learning.heard(0, gateway, kMacA, 2 * kSecondNs), NeighbourLearning::Outcome::learned);
    // A next hop the node asked for is learned from its answer...
    learning.asked(1, real, 3 * kSecondNs);
    EXPECT_EQ(learning.heard(1, real, kMacB, 4 * kSecondNs), NeighbourLearning::Outcome::learned);
    EXPECT_EQ(table.lookup(1, real), kMacB);
    EXPECT_EQ(table.lookup(0, gateway), kMacA);
    // ...and from then on its changes are followed.
    EXPECT_EQ(learning.heard(1, real, kMacA, 5 * kSecondNs), NeighbourLearning::Outcome::updated);
    EXPECT_EQ(table.lookup(1, real), kMacA);
    EXPECT_EQ(learning.heard(1, real, kMacA, 6 * kSecondNs), NeighbourLearning::Outcome::unchanged);
    EXPECT_EQ(table.size(), 2u);
}

TEST(NeighbourLearningTest, AnAnswerIsAwaitedOnlyOnItsPortAndForAWhile) {
    NeighbourTable table(64);
    NeighbourLearning learning(table);
    const IpAddress a = ip("10.10.2.11"), b = ip("10.10.2.12");
    learning.asked(1, a, kSecondNs);
    EXPECT_EQ(learning.heard(0, a, kMacA, kSecondNs), NeighbourLearning::Outcome::unsolicited) << "other port";
    learning.asked(1, b, kSecondNs);
    EXPECT_EQ(learning.heard(1, b, kMacA, kSecondNs + NeighbourLearning::kPendingNs + 1),
              NeighbourLearning::Outcome::unsolicited)
        << "an answer long after the question";
    EXPECT_EQ(learning.heard(1, a, kMacA, 2 * kSecondNs), NeighbourLearning::Outcome::learned);
    EXPECT_EQ(table.size(), 1u);
}

TEST(NeighbourLearningTest, AFullTableIsCountedNotSilent) {
    NeighbourTable table(16);
    NeighbourLearning learning(table);
    for (uint32_t i = 0; i < 17; ++i) learning.asked(0, numbered(i), kSecondNs);
    for (uint32_t i = 0; i < 16; ++i) {
        ASSERT_EQ(learning.heard(0, numbered(i), mac_of(i), kSecondNs), NeighbourLearning::Outcome::learned);
    }
    EXPECT_EQ(learning.heard(0, numbered(16), mac_of(16), kSecondNs), NeighbourLearning::Outcome::full);
    EXPECT_EQ(learning.refused_full(), 1u);
    EXPECT_EQ(learning.unsolicited(), 0u);
}

}  // namespace
}  // namespace dplb::core
