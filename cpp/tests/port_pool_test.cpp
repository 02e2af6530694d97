// Tests for core/port_pool: every port handed out once, the reuse delay (TIME_WAIT)
// honoured, FIFO order of released ports, and the in_use count.
#include "core/port_pool.hpp"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <vector>

namespace dplb::core {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

TEST(PortPoolTest, HandsOutEveryPortOnceThenNothing) {
    PortPool pool(1024, 65535, 60 * kSecond);
    EXPECT_EQ(pool.capacity(), 65535u - 1024u + 1u);
    std::set<uint16_t> seen;
    while (auto port = pool.acquire(0)) {
        EXPECT_GE(*port, 1024);
        EXPECT_TRUE(seen.insert(*port).second) << "port " << *port << " handed out twice";
    }
    EXPECT_EQ(seen.size(), pool.capacity());
    EXPECT_EQ(pool.in_use(), pool.capacity());
    EXPECT_FALSE(pool.acquire(1000 * kSecond).has_value());
}

TEST(PortPoolTest, SinglePortRangeAndBadRange) {
    PortPool one(80, 80, 0);
    EXPECT_EQ(one.capacity(), 1u);
    EXPECT_EQ(one.acquire(0), 80);
    EXPECT_FALSE(one.acquire(0).has_value());
    EXPECT_THROW(PortPool(200, 100, 0), std::invalid_argument);
}

TEST(PortPoolTest, ReleasedPortWaitsForReuseDelay) {
    const uint64_t delay = 60 * kSecond;
    PortPool pool(5000, 5001, delay);
    ASSERT_EQ(pool.acquire(0), 5000);
    ASSERT_EQ(pool.acquire(0), 5001);

    const uint64_t t = 10 * kSecond;
    pool.release(5000, t);
    EXPECT_EQ(pool.in_use(), 1u);
    EXPECT_FALSE(pool.acquire(t).has_value());
    EXPECT_FALSE(pool.acquire(t + delay - 1).has_value());
    EXPECT_EQ(pool.in_use(), 1u);  // a refused acquire takes nothing
    EXPECT_EQ(pool.acquire(t + delay), 5000);
    EXPECT_EQ(pool.in_use(), 2u);
}

TEST(PortPoolTest, FreshPortsGoBeforeReleasedOnes) {
    PortPool pool(100, 103, kSecond);
    ASSERT_EQ(pool.acquire(0), 100);
    pool.release(100, 0);
    // 101..103 were never used: they come first, and 100 only after its delay.
    EXPECT_EQ(pool.acquire(0), 101);
    EXPECT_EQ(pool.acquire(0), 102);
    EXPECT_EQ(pool.acquire(0), 103);
    EXPECT_FALSE(pool.acquire(kSecond - 1).has_value());
    EXPECT_EQ(pool.acquire(kSecond), 100);
}

TEST(PortPoolTest, ReleasedPortsComeBackOldestFirst) {
    const uint64_t delay = 5 * kSecond;
    PortPool pool(1, 8, delay);
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(pool.acquire(0).has_value());
    // Released out of numeric order, at increasing times.
    const std::vector<uint16_t> order = {7, 2, 5, 1, 8, 3, 6, 4};
    for (size_t i = 0; i < order.size(); ++i) pool.release(order[i], i * kSecond);
    EXPECT_EQ(pool.in_use(), 0u);

    // Long after every delay: strictly the release order.
    std::vector<uint16_t> got;
    while (auto p = pool.acquire(100 * kSecond)) got.push_back(*p);
    EXPECT_EQ(got, order);
}

TEST(PortPoolTest, OnlyPortsWhoseDelayHasPassedAreUsable) {
    const uint64_t delay = 5 * kSecond;
    PortPool pool(1, 4, delay);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(pool.acquire(0).has_value());
    pool.release(3, 0);
    pool.release(1, 1 * kSecond);
    pool.release(4, 2 * kSecond);
    // At 6 s: 3 (usable at 5 s) and 1 (at 6 s) are, 4 (at 7 s) is not.
    EXPECT_EQ(pool.acquire(6 * kSecond), 3);
    EXPECT_EQ(pool.acquire(6 * kSecond), 1);
    EXPECT_FALSE(pool.acquire(6 * kSecond).has_value());
    EXPECT_EQ(pool.acquire(7 * kSecond), 4);
}

TEST(PortPoolTest, InUseCountsAcquiresMinusReleases) {
    PortPool pool(10, 19, 0);
    EXPECT_EQ(pool.in_use(), 0u);
    std::vector<uint16_t> held;
    for (int i = 0; i < 6; ++i) held.push_back(*pool.acquire(0));
    EXPECT_EQ(pool.in_use(), 6u);
    pool.release(held[0], 0);
    pool.release(held[1], 0);
    EXPECT_EQ(pool.in_use(), 4u);
    EXPECT_FALSE(pool.acquire(0) == std::nullopt);
    EXPECT_EQ(pool.in_use(), 5u);
}

TEST(PortPoolTest, ZeroDelayReusesOnceOlderFreePortsAreGone) {
    PortPool pool(1000, 1002, 0);
    ASSERT_EQ(pool.acquire(0), 1000);
    pool.release(1000, 0);
    // Still behind the never-used 1001 and 1002 (FIFO), then usable at once.
    EXPECT_EQ(pool.acquire(0), 1001);
    EXPECT_EQ(pool.acquire(0), 1002);
    EXPECT_EQ(pool.acquire(0), 1000);
    pool.release(1001, 0);
    EXPECT_EQ(pool.acquire(0), 1001);
    EXPECT_FALSE(pool.acquire(0).has_value());
}

TEST(PortPoolTest, RingWrapsManyTimesWithoutLosingPorts) {
    // Churn far past the capacity so head and tail wrap around the ring many times.
    const uint64_t delay = 10;
    PortPool pool(40000, 40015, delay);
    std::vector<uint16_t> held;
    uint64_t now = 0;
    for (int round = 0; round < 1000; ++round) {
        now += 3;
        while (held.size() < 12) {
            auto p = pool.acquire(now);
            if (!p) break;
            held.push_back(*p);
        }
        // Release the oldest few; the pool must never hand out a port that is held.
        for (int i = 0; i < 5 && !held.empty(); ++i) {
            pool.release(held.front(), now);
            held.erase(held.begin());
        }
        std::set<uint16_t> unique(held.begin(), held.end());
        ASSERT_EQ(unique.size(), held.size()) << "round " << round;
        ASSERT_EQ(pool.in_use(), held.size()) << "round " << round;
    }
    for (uint16_t p : held) pool.release(p, now);
    std::set<uint16_t> all;
    while (auto p = pool.acquire(now + delay)) all.insert(*p);
    EXPECT_EQ(all.size(), 16u);
}

}  // namespace
}  // namespace dplb::core
