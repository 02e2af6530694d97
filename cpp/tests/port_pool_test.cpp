// Tests for core/port_pool: ports pooled per (local address, real), held toward a real
// only for its TIME_WAIT, a walk tied to the wall clock (restarts), bounded tables, the
// use counts, and a randomized run against a plain model.
#include "core/port_pool.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

namespace dplb::core {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

IpAddress real(uint32_t n) {
    uint8_t b[4] = {10, uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
    return IpAddress::from_v4(b);
}

PortPoolConfig config(uint16_t first, uint16_t last, uint64_t hold_ns = 60 * kSecond) {
    PortPoolConfig c;
    c.first = first;
    c.last = last;
    c.hold_ns = hold_ns;
    c.max_in_use = 1 << 16;
    c.max_holds = 1 << 16;
    c.clock_epoch_ns = 1'800'000'000 * kSecond;
    return c;
}

TEST(PortPoolTest, TheSamePortServesTwoRealsAtOnce) {
    PortPool pool(config(40000, 40000));
    EXPECT_EQ(pool.acquire(0, real(1), 8080, 0), 40000);
    EXPECT_EQ(pool.acquire(0, real(1), 8080, 0), std::nullopt);  // busy toward that real
    EXPECT_EQ(pool.acquire(0, real(2), 8080, 0), 40000);          // free toward another
    EXPECT_EQ(pool.acquire(0, real(1), 8081, 0), 40000);          // or another port of it
    EXPECT_EQ(pool.use(0).in_use, 3u);
    EXPECT_EQ(pool.use(0).busiest, 1u);
}

TEST(PortPoolTest, HandsOutEveryPortOnceTowardARealThenNothing) {
    PortPool pool(config(1024, 65535));
    EXPECT_EQ(pool.ports_per_real(), 65535u - 1024u + 1u);
    std::set<uint16_t> seen;
    while (auto port = pool.acquire(0, real(1), 80, 0)) {
        EXPECT_TRUE(seen.insert(*port).second) << *port;
        EXPECT_GE(*port, 1024);
    }
    EXPECT_EQ(seen.size(), pool.ports_per_real());
    EXPECT_EQ(pool.use(0).in_use, pool.ports_per_real());
    EXPECT_EQ(pool.use(0).busiest, pool.ports_per_real());
}

TEST(PortPoolTest, BadRange) {
    EXPECT_THROW(PortPool(config(200, 100)), std::invalid_argument);
    PortPoolConfig none = config(1, 2);
    none.local_addresses = 0;
    EXPECT_THROW(PortPool{none}, std::invalid_argument);
}

TEST(PortPoolTest, HeldPortIsBusyTowardItsRealUntilTheHoldEnds) {
    PortPool pool(config(5000, 5000));
    const uint64_t t0 = 10 * kSecond;
    ASSERT_EQ(pool.acquire(0, real(1), 80, t0), 5000);
    pool.release(0, real(1), 80, 5000, t0, t0 + 60 * kSecond);
    EXPECT_EQ(pool.use(0).in_use, 0u);
    EXPECT_EQ(pool.use(0).resting, 1u);
    EXPECT_EQ(pool.acquire(0, real(1), 80, t0 + 59 * kSecond), std::nullopt);
    EXPECT_EQ(pool.acquire(0, real(2), 80, t0 + 59 * kSecond), 5000);  // not held toward real 2
    EXPECT_EQ(pool.expire_holds(t0 + 60 * kSecond, 100), 1u);
    EXPECT_EQ(pool.use(0).resting, 0u);
    EXPECT_EQ(pool.acquire(0, real(1), 80, t0 + 60 * kSecond), 5000);
}

TEST(PortPoolTest, ReleasedWithoutHoldIsFreeAtOnce) {
    PortPool pool(config(5000, 5000));
    ASSERT_EQ(pool.acquire(0, real(1), 80, 0), 5000);
    pool.release(0, real(1), 80, 5000, kSecond, 0);
    EXPECT_EQ(pool.use(0).resting, 0u);
    EXPECT_EQ(pool.use(0).busiest, 0u);
    EXPECT_EQ(pool.acquire(0, real(1), 80, kSecond), 5000);
}

TEST(PortPoolTest, AHoldThatEndedIsTakenEvenBeforeItIsExpired) {
    PortPool pool(config(5000, 5001));
    const uint16_t held = *pool.acquire(0, real(1), 80, 0);
    const uint16_t other = *pool.acquire(0, real(1), 80, 0);
    pool.release(0, real(1), 80, held, 0, 60 * kSecond);
    pool.release(0, real(1), 80, other, 0, 0);
    // No expire_holds call: the due hold is taken in place.
    std::set<uint16_t> got{*pool.acquire(0, real(1), 80, 60 * kSecond), *pool.acquire(0, real(1), 80, 60 * kSecond)};
    EXPECT_EQ(got, (std::set<uint16_t>{5000, 5001}));
    EXPECT_EQ(pool.use(0).resting, 0u);
    EXPECT_EQ(pool.use(0).in_use, 2u);
    EXPECT_EQ(pool.expire_holds(61 * kSecond, 100), 1u);  // the stale entry leaves the FIFO
    EXPECT_EQ(pool.use(0).in_use, 2u);
    EXPECT_EQ(pool.acquire(0, real(1), 80, 61 * kSecond), std::nullopt);  // both in use
}

TEST(PortPoolTest, AFullRealEndsItsDueHoldsBeforeGivingUp) {
    PortPool pool(config(5000, 5000));
    ASSERT_EQ(pool.acquire(0, real(1), 80, 0), 5000);
    pool.release(0, real(1), 80, 5000, 0, 60 * kSecond);
    EXPECT_EQ(pool.acquire(0, real(1), 80, 60 * kSecond), 5000);
    EXPECT_EQ(pool.use(0).resting, 0u);
    EXPECT_EQ(pool.use(0).in_use, 1u);
}

TEST(PortPoolTest, LocalAddressesArePooledApart) {
    PortPoolConfig c = config(7000, 7000);
    c.local_addresses = 2;
    PortPool pool(c);
    EXPECT_EQ(pool.acquire(0, real(1), 80, 0), 7000);
    EXPECT_EQ(pool.acquire(1, real(1), 80, 0), 7000);
    EXPECT_EQ(pool.use(0).in_use, 1u);
    EXPECT_EQ(pool.use(1).in_use, 1u);
}

TEST(PortPoolTest, BusiestIsTheRealWithTheMostBusyPorts) {
    PortPool pool(config(1000, 1099));
    std::vector<uint16_t> toward_1;
    for (int i = 0; i < 5; ++i) toward_1.push_back(*pool.acquire(0, real(1), 80, 0));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.acquire(0, real(2), 80, 0));
    EXPECT_EQ(pool.use(0).busiest, 5u);
    EXPECT_EQ(pool.use(0).in_use, 8u);
    pool.release(0, real(1), 80, toward_1[0], 0, 0);
    pool.release(0, real(1), 80, toward_1[1], 0, 0);
    pool.release(0, real(1), 80, toward_1[2], 0, 10 * kSecond);  // held: still busy
    EXPECT_EQ(pool.use(0).busiest, 3u);
    pool.release(0, real(1), 80, toward_1[3], 0, 0);
    EXPECT_EQ(pool.use(0).busiest, 3u);  // real 2's three
    EXPECT_EQ(pool.use(0).resting, 1u);
}

// The walk keeps pace with the wall clock: a second run that starts some seconds after
// a first one (a restart, with none of its state) does not begin with the ports the
// first handed out toward the same real, when the first kept within the sizing rule.
TEST(PortPoolTest, ARestartDoesNotBeginWithThePortsThePreviousRunHandedOut) {
    const PortPoolConfig c = config(1024, 65535);
    std::set<uint16_t> first_run;
    {
        PortPool run(c);
        // 1,000 connections a second for 30 s (within 64,512 / 60 s), each closed by the
        // real at once and held.
        for (uint64_t ms = 0; ms < 30'000; ++ms) {
            const uint64_t now = ms * 1'000'000;
            auto port = run.acquire(0, real(1), 80, now);
            ASSERT_TRUE(port) << ms;
            first_run.insert(*port);
            run.release(0, real(1), 80, *port, now, now + c.hold_ns);
            run.expire_holds(now, 1024);
        }
    }
    ASSERT_EQ(first_run.size(), 30'000u);
    PortPoolConfig later = c;
    later.clock_epoch_ns += 31 * kSecond;  // starts one second after the first stopped
    PortPool run(later);
    for (int i = 0; i < 1000; ++i) {
        auto port = run.acquire(0, real(1), 80, uint64_t(i) * 1'000'000);
        ASSERT_TRUE(port);
        EXPECT_FALSE(first_run.count(*port)) << "port " << *port << " at " << i;
    }
}

TEST(PortPoolTest, TablesAreBoundedByTheSessionsAndHolds) {
    PortPoolConfig c = config(1024, 65535);
    c.max_in_use = 10;
    c.max_holds = 2;
    PortPool pool(c);
    for (uint32_t r = 0; r < 10; ++r) ASSERT_TRUE(pool.acquire(0, real(r), 80, 0));
    // 12 busy entries fit (10 in use + 2 held): the 11th real gets one once two are held.
    EXPECT_TRUE(pool.acquire(0, real(10), 80, 0));
    EXPECT_TRUE(pool.acquire(0, real(11), 80, 0));
    EXPECT_FALSE(pool.acquire(0, real(12), 80, 0));
}

TEST(PortPoolTest, WhenHoldsAreFullTheOldestEndsEarlyAndIsCounted) {
    PortPoolConfig c = config(3000, 3000);
    c.max_holds = 2;
    PortPool pool(c);
    for (uint32_t r = 0; r < 3; ++r) {
        ASSERT_EQ(pool.acquire(0, real(r), 80, 0), 3000);
        pool.release(0, real(r), 80, 3000, 0, 60 * kSecond);
    }
    EXPECT_EQ(pool.holds_cut(), 1u);
    EXPECT_EQ(pool.use(0).resting, 2u);
    EXPECT_EQ(pool.acquire(0, real(0), 80, 0), 3000);  // its hold was cut
    EXPECT_EQ(pool.acquire(0, real(1), 80, 0), std::nullopt);
}

TEST(PortPoolTest, ManyRealsCostNothingUntilTheyHaveConnections) {
    PortPoolConfig c = config(1024, 65535);
    c.local_addresses = 4;
    c.max_in_use = 1'000'000;
    c.max_holds = 1'000'000;
    PortPool pool(c);
    const size_t reserved = pool.reserved_bytes();
    // One connection toward each of 100,000 reals on each of 4 local addresses.
    for (uint32_t r = 0; r < 100'000; ++r) {
        for (uint32_t a = 0; a < 4; ++a) ASSERT_TRUE(pool.acquire(a, real(r), 80, 0));
    }
    EXPECT_EQ(pool.reserved_bytes(), reserved);
    EXPECT_EQ(pool.use(3).in_use, 100'000u);
    EXPECT_EQ(pool.use(3).busiest, 1u);
}

// Random acquires, releases (held or not) and clock steps against a plain model: no
// port is ever handed out toward a real while busy toward it, and the counts agree.
TEST(PortPoolTest, RandomRunAgreesWithAModel) {
    PortPoolConfig c = config(100, 115, 5 * kSecond);  // 16 ports
    c.local_addresses = 2;
    c.max_in_use = 200;
    c.max_holds = 200;
    PortPool pool(c);
    using Key = std::tuple<uint32_t, uint32_t, uint16_t>;  // laddr, real, port
    std::map<Key, uint64_t> busy;                            // until, or ~0 in use
    std::vector<Key> in_use;
    std::mt19937 rng(7);
    uint64_t now = 0;
    for (int step = 0; step < 200'000; ++step) {
        const uint32_t op = rng() % 10;
        if (op < 5) {
            const uint32_t laddr = rng() % 2, r = rng() % 6;
            auto port = pool.acquire(laddr, real(r), 80, now);
            if (port) {
                auto it = busy.find({laddr, r, *port});
                ASSERT_TRUE(it == busy.end() || it->second <= now) << "port handed out while busy";
                busy[{laddr, r, *port}] = ~0ULL;
                in_use.push_back({laddr, r, *port});
            }
        } else if (op < 8 && !in_use.empty()) {
            const size_t i = rng() % in_use.size();
            const Key k = in_use[i];
            in_use[i] = in_use.back();
            in_use.pop_back();
            const uint64_t until = rng() % 2 ? now + c.hold_ns : 0;
            pool.release(std::get<0>(k), real(std::get<1>(k)), 80, std::get<2>(k), now, until);
            if (until > now) {
                busy[k] = until;
            } else {
                busy.erase(k);
            }
        } else {
            now += (rng() % 1000) * 1'000'000;
            pool.expire_holds(now, 1'000'000);
        }
        if (step % 1000 == 0) {
            pool.expire_holds(now, 1'000'000);
            for (uint32_t a = 0; a < 2; ++a) {
                uint32_t used = 0, resting = 0;
                std::map<uint32_t, uint32_t> per_real;
                for (auto it = busy.begin(); it != busy.end();) {
                    if (it->second != ~0ULL && it->second <= now) {
                        it = busy.erase(it);  // the pool ended it too
                        continue;
                    }
                    if (std::get<0>(it->first) == a) {
                        (it->second == ~0ULL ? used : resting)++;
                        ++per_real[std::get<1>(it->first)];
                    }
                    ++it;
                }
                uint32_t busiest = 0;
                for (auto& [r, n] : per_real) busiest = std::max(busiest, n);
                ASSERT_EQ(pool.use(a).in_use, used) << step;
                ASSERT_EQ(pool.use(a).resting, resting) << step;
                ASSERT_EQ(pool.use(a).busiest, busiest) << step;
            }
        }
    }
    EXPECT_EQ(pool.holds_cut(), 0u);
}

}  // namespace
}  // namespace dplb::core
