// The command ring between the control side and a worker: order, bounds, wrap-around,
// and a producer and a consumer on two threads losing and reordering nothing.
#include "core/worker_commands.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace dplb::core {
namespace {

TEST(SpscRingTest, PopsInTheOrderPushed) {
    SpscRing<uint32_t, 8> ring;
    for (uint32_t i = 1; i <= 5; ++i) ASSERT_TRUE(ring.push(i));
    std::vector<uint32_t> got;
    uint32_t v = 0;
    while (ring.pop(v)) got.push_back(v);
    EXPECT_EQ(got, (std::vector<uint32_t>{1, 2, 3, 4, 5}));
}

TEST(SpscRingTest, EmptyRingPopsNothing) {
    SpscRing<uint32_t, 4> ring;
    uint32_t v = 42;
    EXPECT_TRUE(ring.empty());
    EXPECT_FALSE(ring.pop(v));
    EXPECT_EQ(v, 42u);
}

TEST(SpscRingTest, FullRingRefusesAndKeepsWhatItHolds) {
    SpscRing<uint32_t, 4> ring;
    for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(ring.push(i));
    EXPECT_FALSE(ring.push(99));
    uint32_t v = 0;
    ASSERT_TRUE(ring.pop(v));
    EXPECT_EQ(v, 0u);
    EXPECT_TRUE(ring.push(4));  // one slot free again
    std::vector<uint32_t> got;
    while (ring.pop(v)) got.push_back(v);
    EXPECT_EQ(got, (std::vector<uint32_t>{1, 2, 3, 4}));
}

TEST(SpscRingTest, WrapsAroundManyTimes) {
    SpscRing<uint32_t, 4> ring;
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; ++round) {
        for (int k = 0; k < 3; ++k) ASSERT_TRUE(ring.push(next_in++));
        uint32_t v = 0;
        for (int k = 0; k < 3; ++k) {
            ASSERT_TRUE(ring.pop(v));
            ASSERT_EQ(v, next_out++);
        }
        ASSERT_TRUE(ring.empty());
    }
}

TEST(SpscRingTest, CarriesWorkerCommandsWithTheirKeys) {
    WorkerCommandRing ring;
    WorkerCommand c;
    c.kind = WorkerCommandKind::reset_session;
    c.key.src = *IpAddress::parse("198.51.100.7");
    c.key.dst = *IpAddress::parse("10.0.100.10");
    c.key.src_port = 42000;
    c.key.dst_port = 80;
    c.key.proto = 6;
    ASSERT_TRUE(ring.push(c));
    WorkerCommand out;
    ASSERT_TRUE(ring.pop(out));
    EXPECT_EQ(out.kind, WorkerCommandKind::reset_session);
    EXPECT_TRUE(out.key == c.key);
    EXPECT_EQ(WorkerCommandRing::capacity(), kWorkerCommandSlots);
}

TEST(SpscRingTest, ProducerAndConsumerThreadsLoseAndReorderNothing) {
    constexpr uint64_t kItems = 2'000'000;
    SpscRing<uint64_t, 64> ring;  // small, so both sides often find it full or empty
    std::thread producer([&] {
        for (uint64_t i = 0; i < kItems;) {
            if (ring.push(i)) {
                ++i;
            } else {
                std::this_thread::yield();
            }
        }
    });
    uint64_t expected = 0;
    uint64_t out_of_order = 0;
    while (expected < kItems) {
        uint64_t v = 0;
        if (!ring.pop(v)) {
            std::this_thread::yield();
            continue;
        }
        out_of_order += v != expected;
        expected = v + 1;
    }
    producer.join();
    EXPECT_EQ(out_of_order, 0u);
    EXPECT_TRUE(ring.empty());
}

}  // namespace
}  // namespace dplb::core
