// Tests for core/routing: RouteTable longest-prefix match across ports, the gateway of each
// family, no route; NeighbourTable set/lookup/remove/overwrite and its generation counter.
#include "core/routing.hpp"

#include <gtest/gtest.h>

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
    NeighbourTable n(64);
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

}  // namespace
}  // namespace dplb::core
