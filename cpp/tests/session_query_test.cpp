// Tests for core/session_query: the filter over both tuples, and a walk that stops after
// `limit` matches and goes on from where it stopped.
#include "core/session_query.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace dplb::core {
namespace {

IpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    const uint8_t bytes[4] = {a, b, c, d};
    return IpAddress::from_v4(bytes);
}

// Session n: client 198.51.100.n:(1000 + n) -> 10.0.100.10:80, real 10.0.2.(11 + n % 2).
void insert(SessionTable& t, uint8_t n, TcpState state = TcpState::established) {
    FlowKey in;
    in.src = v4(198, 51, 100, n);
    in.dst = v4(10, 0, 100, 10);
    in.src_port = static_cast<uint16_t>(1000 + n);
    in.dst_port = 80;
    in.proto = 6;
    FlowKey out;
    out.src = v4(10, 0, 2, static_cast<uint8_t>(11 + n % 2));
    out.dst = v4(10, 0, 2, 101);
    out.src_port = 8080;
    out.dst_port = static_cast<uint16_t>(20000 + n);
    out.proto = 6;
    SessionRef ref = t.insert(in, hash_key(in), out, hash_key(out));
    ASSERT_TRUE(ref);
    ref.session->state = state;
}

std::vector<uint16_t> client_ports(const SessionTable& t, const std::vector<uint32_t>& indexes) {
    std::vector<uint16_t> out;
    for (uint32_t i : indexes) out.push_back(t.sessions()[i].inbound.src_port);
    return out;
}

TEST(SessionQueryTest, EveryFieldSetMustMatch) {
    SessionTable t(64);
    for (uint8_t n = 1; n <= 10; ++n) insert(t, n, n == 3 ? TcpState::fin_wait : TcpState::established);
    auto count = [&](const SessionFilter& f) {
        std::vector<uint32_t> found;
        find_in_table(t, f, 0, 1000, found);
        return found.size();
    };
    SessionFilter f;
    EXPECT_EQ(count(f), 10u);
    f.client = Prefix::parse("198.51.100.0/29");  // .1 to .7
    EXPECT_EQ(count(f), 7u);
    f.real = v4(10, 0, 2, 12);  // odd n
    EXPECT_EQ(count(f), 4u);
    f.state = TcpState::fin_wait;
    EXPECT_EQ(count(f), 1u);
    f.client_port = 1004;
    EXPECT_EQ(count(f), 0u);

    SessionFilter g;
    g.vip = v4(10, 0, 100, 10);
    g.vip_port = 80;
    g.real_port = 8080;
    g.proto = 6;
    EXPECT_EQ(count(g), 10u);
    g.proto = 17;
    EXPECT_EQ(count(g), 0u);
    SessionFilter none;
    none.match_nothing = true;
    EXPECT_EQ(count(none), 0u);
}

TEST(SessionQueryTest, AWalkStopsAtTheLimitAndGoesOnWhereItStopped) {
    SessionTable t(64);
    for (uint8_t n = 1; n <= 10; ++n) insert(t, n);
    SessionFilter odd;
    odd.real = v4(10, 0, 2, 12);
    std::vector<uint16_t> seen;
    uint32_t from = 0;
    int pages = 0;
    while (from < t.capacity()) {
        std::vector<uint32_t> found;
        from = find_in_table(t, odd, from, 2, found);
        EXPECT_LE(found.size(), 2u);
        for (uint16_t p : client_ports(t, found)) seen.push_back(p);
        ++pages;
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<uint16_t>{1001, 1003, 1005, 1007, 1009}));
    EXPECT_GE(pages, 3);
}

TEST(SessionQueryTest, StateNames) {
    EXPECT_EQ(tcp_state_from_name("established"), TcpState::established);
    EXPECT_EQ(tcp_state_from_name("none"), TcpState::none);
    EXPECT_EQ(tcp_state_from_name("closed"), std::nullopt);
}

}  // namespace
}  // namespace dplb::core
