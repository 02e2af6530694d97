// Tests for core/control_class: which ControlClass each kind of frame gets (ARP, ND, BGP
// and BFD either way, the node's own connections, junk), the token bucket's edges (empty,
// exact refill, cap, clock going back, no limit), and the engine passing the priority
// classes while it drops the rest over the rate under control_rate_limited.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/control_class.hpp"
#include "core/engine.hpp"
#include "tests/client_frame.hpp"

namespace dplb::core {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kSecond = 1'000'000'000ULL;

const std::vector<Prefix> kPort0 = {*Prefix::parse("10.0.1.1/24"), *Prefix::parse("2001:db8:1::1/64")};

Bytes tcp_frame(const char* src, const char* dst, uint16_t sport, uint16_t dport, uint8_t flags) {
    Bytes f(testing_frames::kClientFrameBytes);
    const uint8_t dmac[6] = {2, 0, 0, 0, 0, 1}, smac[6] = {0x0a, 0, 0, 0, 1, 0xfe};
    uint8_t s[4], d[4];
    std::memcpy(s, IpAddress::parse(src)->v4(), 4);
    std::memcpy(d, IpAddress::parse(dst)->v4(), 4);
    testing_frames::write_tcp_frame(f.data(), dmac, smac, s, d, sport, dport, flags);
    return f;
}

// The same addresses and ports as UDP (8 bytes of header, no payload).
Bytes udp_frame(const char* src, const char* dst, uint16_t sport, uint16_t dport) {
    Bytes f = tcp_frame(src, dst, sport, dport, 0);
    f.resize(14 + 20 + 8);
    f[14 + 9] = 17;
    store_be16(f.data() + 14 + 2, 28);
    store_be16(f.data() + 14 + 20 + 4, 8);
    return f;
}

Bytes icmp4_frame(const char* dst, uint8_t type) {
    Bytes f = udp_frame("10.0.1.254", dst, 0, 0);
    f[14 + 9] = 1;
    f[14 + 20] = type;
    f[14 + 21] = 0;
    return f;
}

Bytes arp_frame(bool vlan) {
    Bytes f = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0, 0, 0, 1, 0xfe};
    if (vlan) f.insert(f.end(), {0x81, 0x00, 0x00, 0x05});
    f.insert(f.end(), {0x08, 0x06});
    f.resize(f.size() + 28);
    return f;
}

// An ICMPv6 message of `type` from fe80::1 to `dst` (24 bytes of ICMPv6).
Bytes icmp6_frame(const char* dst, uint8_t type) {
    Bytes f = {0x33, 0x33, 0xff, 0, 0, 1, 0x0a, 0, 0, 0, 1, 0xfe, 0x86, 0xdd};
    Bytes ip6(40);
    ip6[0] = 0x60;
    store_be16(ip6.data() + 4, 24);
    ip6[6] = 58;
    ip6[7] = 255;
    std::memcpy(ip6.data() + 8, IpAddress::parse("fe80::1")->v6(), 16);
    std::memcpy(ip6.data() + 24, IpAddress::parse(dst)->v6(), 16);
    f.insert(f.end(), ip6.begin(), ip6.end());
    Bytes icmp(24);
    icmp[0] = type;
    f.insert(f.end(), icmp.begin(), icmp.end());
    return f;
}

ControlClass classify(const Bytes& f) {
    const ParsedPacket p = parse_packet(f.data(), static_cast<uint32_t>(f.size()));
    return classify_control(f.data(), static_cast<uint32_t>(f.size()), p, kPort0);
}

TEST(ControlClassTest, ArpWithOrWithoutVlanIsNeighbour) {
    EXPECT_EQ(classify(arp_frame(false)), ControlClass::neighbour);
    EXPECT_EQ(classify(arp_frame(true)), ControlClass::neighbour);
}

TEST(ControlClassTest, NeighbourDiscoveryIsNeighbourOtherIcmp6IsNot) {
    for (uint8_t type = 133; type <= 137; ++type) {
        EXPECT_EQ(classify(icmp6_frame("ff02::1:ff00:1", type)), ControlClass::neighbour) << int(type);
    }
    EXPECT_EQ(classify(icmp6_frame("ff02::1", 132)), ControlClass::rest);  // MLD report
    EXPECT_EQ(classify(icmp6_frame("ff02::1", 138)), ControlClass::rest);
    EXPECT_EQ(classify(icmp6_frame("2001:db8:1::1", 128)), ControlClass::rest);  // echo request
    EXPECT_EQ(classify(icmp6_frame("2001:db8:1::1", 129)), ControlClass::node);  // echo reply
    EXPECT_EQ(classify(icmp6_frame("2001:db8:1::9", 129)), ControlClass::rest);  // not ours
}

TEST(ControlClassTest, BgpEitherSideOfThePortAddressIsRouting) {
    EXPECT_EQ(classify(tcp_frame("10.0.1.254", "10.0.1.1", 40000, 179, kTcpSyn)), ControlClass::routing);
    EXPECT_EQ(classify(tcp_frame("10.0.1.254", "10.0.1.1", 179, 40000, kTcpAck)), ControlClass::routing);
    // From the port address (a peer that loops it back), still the node's session.
    EXPECT_EQ(classify(tcp_frame("10.0.1.1", "10.0.1.254", 40000, 179, kTcpAck)), ControlClass::routing);
    // BGP to an address that is not the port's: junk.
    EXPECT_EQ(classify(tcp_frame("10.0.1.254", "10.0.1.77", 40000, 179, kTcpSyn)), ControlClass::rest);
    EXPECT_EQ(classify(tcp_frame("10.0.1.254", "10.0.1.1", 40000, 178, kTcpSyn)), ControlClass::rest);
    EXPECT_EQ(classify(tcp_frame("10.0.1.254", "10.0.1.1", 40000, 180, kTcpSyn)), ControlClass::rest);
}

TEST(ControlClassTest, BfdPortsToThePortAddressAreRoutingTheirNeighboursAreNot) {
    for (uint16_t port : {3784, 3785, 4784}) {
        EXPECT_EQ(classify(udp_frame("10.0.1.254", "10.0.1.1", 49152, port)), ControlClass::routing) << port;
    }
    for (uint16_t port : {3783, 3786, 4783, 4785}) {
        EXPECT_EQ(classify(udp_frame("10.0.1.254", "10.0.1.1", 49152, port)), ControlClass::rest) << port;
    }
    EXPECT_EQ(classify(udp_frame("10.0.1.254", "10.0.1.50", 49152, 3784)), ControlClass::rest);
}

TEST(ControlClassTest, TcpWithAckToThePortAddressIsTheNodesOwnABareSynIsNot) {
    // A health check's SYN-ACK and data back to the node.
    EXPECT_EQ(classify(tcp_frame("10.0.1.20", "10.0.1.1", 8080, 41000, kTcpSyn | kTcpAck)), ControlClass::node);
    EXPECT_EQ(classify(tcp_frame("10.0.1.20", "10.0.1.1", 8080, 41000, kTcpAck)), ControlClass::node);
    EXPECT_EQ(classify(tcp_frame("10.0.1.20", "10.0.1.1", 41000, 22, kTcpSyn)), ControlClass::rest);
    EXPECT_EQ(classify(tcp_frame("10.0.1.20", "10.0.1.1", 41000, 22, 0)), ControlClass::rest);
    EXPECT_EQ(classify(tcp_frame("10.0.1.20", "10.0.1.99", 8080, 41000, kTcpAck)), ControlClass::rest);
}

TEST(ControlClassTest, IcmpEchoReplyToThePortAddressIsTheNodesOwnOtherIcmpIsNot) {
    EXPECT_EQ(classify(icmp4_frame("10.0.1.1", 0)), ControlClass::node);
    EXPECT_EQ(classify(icmp4_frame("10.0.1.1", 8)), ControlClass::rest);
    EXPECT_EQ(classify(icmp4_frame("10.0.1.2", 0)), ControlClass::rest);
}

TEST(ControlClassTest, JunkAndShortFramesAreTheRest) {
    EXPECT_EQ(classify(udp_frame("192.0.2.9", "10.0.1.77", 1234, 9)), ControlClass::rest);
    Bytes lldp = arp_frame(false);
    lldp[12] = 0x88;
    lldp[13] = 0xcc;
    EXPECT_EQ(classify(lldp), ControlClass::rest);
    Bytes shorter = {0xff, 0xff, 0xff};
    EXPECT_EQ(classify(shorter), ControlClass::rest);
    EXPECT_EQ(control_class_name(ControlClass::routing), "routing");
}

TEST(TokenBucketTest, StartsFullAndRefusesPastItsBurst) {
    TokenBucket b(10, 3, 0);
    EXPECT_TRUE(b.take(0));
    EXPECT_TRUE(b.take(0));
    EXPECT_TRUE(b.take(0));
    EXPECT_FALSE(b.take(0));
}

TEST(TokenBucketTest, RefillsOneTokenExactlyAtOneOverTheRate) {
    TokenBucket b(10, 1, 0);  // one token each 100 ms
    EXPECT_TRUE(b.take(0));
    EXPECT_FALSE(b.take(100'000'000 - 1));
    EXPECT_TRUE(b.take(100'000'000));
    EXPECT_FALSE(b.take(100'000'000));
}

TEST(TokenBucketTest, NeverHoldsMoreThanItsBurstHoweverLongItWaited) {
    TokenBucket b(1000, 5, 0);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.take(0));
    const uint64_t much_later = 10'000 * kSecond;
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.take(much_later)) << i;
    EXPECT_FALSE(b.take(much_later));
}

TEST(TokenBucketTest, RatesBelowOnePerSecondAndHugeRatesStayExact) {
    TokenBucket slow(1, 1, 0);
    EXPECT_TRUE(slow.take(0));
    EXPECT_FALSE(slow.take(kSecond - 1));
    EXPECT_TRUE(slow.take(kSecond));
    TokenBucket fast(100'000'000, 1'000'000, 0);
    for (int i = 0; i < 1'000'000; ++i) ASSERT_TRUE(fast.take(0));
    EXPECT_FALSE(fast.take(0));
    EXPECT_TRUE(fast.take(10));  // 10 ns at 10^8/s: one token
    EXPECT_FALSE(fast.take(10));
    TokenBucket far(100'000'000, 1'000'000, 0);  // a far clock: no overflow, just full
    for (int i = 0; i < 1'000'000; ++i) ASSERT_TRUE(far.take(UINT64_MAX));
    EXPECT_FALSE(far.take(UINT64_MAX));
}

TEST(TokenBucketTest, AClockGoingBackRefillsNothing) {
    TokenBucket b(10, 1, kSecond);
    EXPECT_TRUE(b.take(kSecond));
    EXPECT_FALSE(b.take(0));
    EXPECT_FALSE(b.take(kSecond + 100'000'000 - 1));
    EXPECT_TRUE(b.take(kSecond + 100'000'000));
}

TEST(TokenBucketTest, RateZeroIsNoLimitAndBurstZeroMeansOne) {
    TokenBucket open(0, 1, 0);
    for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(open.take(0));
    TokenBucket one(10, 0, 0);
    EXPECT_EQ(one.burst(), 1u);
    EXPECT_TRUE(one.take(0));
    EXPECT_FALSE(one.take(0));
}

// The engine: junk over the rate is dropped and counted; ARP and BGP to the port address
// still go up, marked for the priority ring, however much junk came before.
TEST(ControlEngineTest, JunkOverTheRateIsDroppedWhileArpAndBgpStillPass) {
    EngineConfig c = testing_frames::two_port_config(1, 64);
    c.control_rest_rate_pps = 10;
    c.control_rest_burst = 4;
    Engine engine(c);
    Worker& w = engine.worker(0);
    w.set_clock(kSecond);
    auto run = [&](Bytes f) {
        Bytes buf(128 * 2 + f.size());
        std::memcpy(buf.data() + 128, f.data(), f.size());
        PacketView view{buf.data() + 128, static_cast<uint32_t>(f.size()), 128, 128, 0};
        return w.process(view, false);
    };
    uint32_t passed = 0, limited = 0;
    for (int i = 0; i < 100; ++i) {
        Action a = run(udp_frame("192.0.2.9", "10.0.1.77", static_cast<uint16_t>(1000 + i), 9));
        if (a.verdict == Verdict::control) {
            EXPECT_EQ(a.control, ControlClass::rest);
            ++passed;
        } else {
            EXPECT_EQ(a.verdict, Verdict::drop);
            ++limited;
        }
    }
    EXPECT_EQ(passed, 4u);
    EXPECT_EQ(limited, 96u);
    EXPECT_EQ(w.stats().dropped(DropReason::control_rate_limited), 96u);
    Action arp = run(arp_frame(false));
    EXPECT_EQ(arp.verdict, Verdict::control);
    EXPECT_EQ(arp.control, ControlClass::neighbour);
    Action bgp = run(tcp_frame("10.0.1.254", "10.0.1.1", 179, 40000, kTcpAck));
    EXPECT_EQ(bgp.verdict, Verdict::control);
    EXPECT_EQ(bgp.control, ControlClass::routing);
    w.set_clock(kSecond + 100'000'000);  // 100 ms at 10/s: one more of the rest
    EXPECT_EQ(run(udp_frame("192.0.2.9", "10.0.1.77", 7, 9)).verdict, Verdict::control);
    EXPECT_EQ(run(udp_frame("192.0.2.9", "10.0.1.77", 8, 9)).verdict, Verdict::drop);
}

}  // namespace
}  // namespace dplb::core
