// Tests of the rr, wrr and wlc schedulers and of the scheduler names (Maglev has its own
// file, maglev_test.cpp).
#include "core/scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace dplb::core {
namespace {

std::vector<SchedulerReal> reals_with_weights(const std::vector<uint32_t>& weights) {
    std::vector<SchedulerReal> reals;
    for (size_t i = 0; i < weights.size(); ++i) reals.push_back({0x1000 + i, weights[i]});
    return reals;
}

std::vector<int> picks(const Scheduler& s, size_t n, uint32_t& cursor, const uint32_t* active = nullptr) {
    std::vector<int> out;
    for (size_t i = 0; i < n; ++i) out.push_back(s.pick(0, cursor, active));
    return out;
}

TEST(SchedulerName, RoundTripsEveryKind) {
    for (SchedulerKind k : {SchedulerKind::rr, SchedulerKind::wrr, SchedulerKind::wlc, SchedulerKind::maglev}) {
        auto back = scheduler_from_name(scheduler_name(k));
        ASSERT_TRUE(back.has_value()) << scheduler_name(k);
        EXPECT_EQ(*back, k);
    }
    EXPECT_EQ(scheduler_name(SchedulerKind::rr), "rr");
    EXPECT_EQ(scheduler_name(SchedulerKind::wrr), "wrr");
    EXPECT_EQ(scheduler_name(SchedulerKind::wlc), "wlc");
    EXPECT_EQ(scheduler_name(SchedulerKind::maglev), "maglev");
}

TEST(SchedulerName, RejectsUnknownNames) {
    EXPECT_FALSE(scheduler_from_name("").has_value());
    EXPECT_FALSE(scheduler_from_name("RR").has_value());
    EXPECT_FALSE(scheduler_from_name("lc").has_value());
    EXPECT_FALSE(scheduler_from_name("maglev ").has_value());
}

TEST(Rr, CyclesInIndexOrderSkippingWeightZero) {
    // rr ignores the size of a weight; only weight 0 (quiesced) matters.
    auto s = make_scheduler(SchedulerKind::rr, reals_with_weights({1, 0, 3, 1, 0}));
    uint32_t cursor = 0;
    EXPECT_EQ(picks(*s, 7, cursor), (std::vector<int>{0, 2, 3, 0, 2, 3, 0}));
}

TEST(Rr, EachCallerHasItsOwnCursor) {
    auto s = make_scheduler(SchedulerKind::rr, reals_with_weights({1, 1, 1}));
    uint32_t a = 0;
    uint32_t b = 0;
    EXPECT_EQ(s->pick(0, a, nullptr), 0);
    EXPECT_EQ(s->pick(0, a, nullptr), 1);
    EXPECT_EQ(s->pick(0, b, nullptr), 0);
    EXPECT_EQ(s->pick(0, a, nullptr), 2);
    EXPECT_EQ(s->pick(0, b, nullptr), 1);
}

TEST(Rr, CursorLeftByALongerListStillPicksAValidReal) {
    // A cursor kept by a worker across a rebuild that removed reals.
    auto s = make_scheduler(SchedulerKind::rr, reals_with_weights({1, 1, 1}));
    uint32_t cursor = 1000;  // 1000 % 3 == 1
    EXPECT_EQ(picks(*s, 4, cursor), (std::vector<int>{1, 2, 0, 1}));
}

TEST(Rr, NoWeightedRealGivesNoReal) {
    uint32_t cursor = 0;
    EXPECT_EQ(make_scheduler(SchedulerKind::rr, reals_with_weights({0, 0}))->pick(0, cursor, nullptr), kNoReal);
    EXPECT_EQ(make_scheduler(SchedulerKind::rr, {})->pick(0, cursor, nullptr), kNoReal);
}

TEST(Wrr, CountsFollowWeightsExactly) {
    auto s = make_scheduler(SchedulerKind::wrr, reals_with_weights({1, 2, 5}));
    uint32_t cursor = 0;
    std::vector<int> count(3);
    for (int r : picks(*s, 8000, cursor)) {
        ASSERT_GE(r, 0);
        ASSERT_LT(r, 3);
        ++count[static_cast<size_t>(r)];
    }
    EXPECT_EQ(count, (std::vector<int>{1000, 2000, 5000}));
}

TEST(Wrr, SequenceIsInterleaved) {
    const std::vector<uint32_t> weights{1, 2, 5};
    auto s = make_scheduler(SchedulerKind::wrr, reals_with_weights(weights));
    uint32_t cursor = 0;
    std::vector<int> seq = picks(*s, 8000, cursor);

    // The heavy real has 3 others' picks per cycle to separate its 5, so a smooth order
    // never gives it more than ceil(5 / 3) = 2 in a row; a batched order (2 2 2 2 2 1 1 0)
    // would give 5.
    int run = 0;
    int longest = 0;
    for (int r : seq) {
        run = r == 2 ? run + 1 : 0;
        longest = std::max(longest, run);
    }
    EXPECT_LE(longest, 2);

    // Stronger: in every window of L consecutive picks, each real is picked within one of
    // its fair share L * w / 8.
    // The sequence is periodic (8), so windows starting in the first few periods suffice.
    for (size_t len = 1; len <= 16; ++len) {
        for (size_t start = 0; start < 64; ++start) {
            for (int real = 0; real < 3; ++real) {
                const long n = std::count(seq.begin() + static_cast<long>(start),
                                          seq.begin() + static_cast<long>(start + len), real);
                const double fair = static_cast<double>(len) * weights[static_cast<size_t>(real)] / 8.0;
                EXPECT_LE(std::abs(static_cast<double>(n) - fair), 1.0)
                    << "real " << real << " window [" << start << ", +" << len << ")";
            }
        }
    }
}

TEST(Wrr, CommonFactorOfWeightsDoesNotLengthenTheCycle) {
    // 100:200:500 is 1:2:5; after 8 picks the counts are already exact.
    auto s = make_scheduler(SchedulerKind::wrr, reals_with_weights({100, 200, 500}));
    uint32_t cursor = 0;
    std::vector<int> seq = picks(*s, 8, cursor);
    EXPECT_EQ(std::count(seq.begin(), seq.end(), 0), 1);
    EXPECT_EQ(std::count(seq.begin(), seq.end(), 1), 2);
    EXPECT_EQ(std::count(seq.begin(), seq.end(), 2), 5);
}

TEST(Wrr, ManyRealsGetExactlyTheirWeightPerCycle) {
    std::vector<uint32_t> weights;
    for (uint32_t w = 1; w <= 100; ++w) weights.push_back(w);
    auto s = make_scheduler(SchedulerKind::wrr, reals_with_weights(weights));
    uint32_t cursor = 0;
    std::vector<int> count(100);
    for (int r : picks(*s, 5050, cursor)) ++count[static_cast<size_t>(r)];
    for (size_t i = 0; i < 100; ++i) EXPECT_EQ(count[i], static_cast<int>(weights[i])) << "real " << i;
}

TEST(Wrr, HugeWeightsAreScaledButKeepEveryRealAndTheRatio) {
    // Sum / gcd is far above the sequence cap, so weights are scaled down; the tiny real
    // must still be in rotation, and the big ones keep their 4:3 ratio.
    auto s = make_scheduler(SchedulerKind::wrr, reals_with_weights({1, 4'000'000'000u, 3'000'000'000u}));
    uint32_t cursor = 0;
    std::vector<int> count(3);
    for (int r : picks(*s, 2 * 65536, cursor)) ++count[static_cast<size_t>(r)];
    EXPECT_GE(count[0], 1);
    EXPECT_LE(count[0], 2);
    EXPECT_NEAR(static_cast<double>(count[1]) / count[2], 4.0 / 3.0, 0.001);
}

TEST(Wrr, WeightZeroIsNeverPicked) {
    auto s = make_scheduler(SchedulerKind::wrr, reals_with_weights({0, 3, 0, 1}));
    uint32_t cursor = 0;
    std::vector<int> seq = picks(*s, 400, cursor);
    EXPECT_EQ(std::count(seq.begin(), seq.end(), 0), 0);
    EXPECT_EQ(std::count(seq.begin(), seq.end(), 2), 0);
    EXPECT_EQ(std::count(seq.begin(), seq.end(), 1), 300);
    EXPECT_EQ(std::count(seq.begin(), seq.end(), 3), 100);
}

TEST(Wrr, NoWeightedRealGivesNoReal) {
    uint32_t cursor = 0;
    EXPECT_EQ(make_scheduler(SchedulerKind::wrr, reals_with_weights({0, 0, 0}))->pick(0, cursor, nullptr), kNoReal);
    EXPECT_EQ(make_scheduler(SchedulerKind::wrr, {})->pick(0, cursor, nullptr), kNoReal);
}

TEST(Wlc, EqualWeightsPickTheLeastLoaded) {
    auto s = make_scheduler(SchedulerKind::wlc, reals_with_weights({1, 1, 1}));
    const uint32_t active[] = {10, 0, 5};
    uint32_t cursor = 0;
    EXPECT_EQ(s->pick(0, cursor, active), 1);
}

TEST(Wlc, WeightsScaleTheLoad) {
    auto s = make_scheduler(SchedulerKind::wlc, reals_with_weights({4, 1}));
    uint32_t cursor = 0;
    // (3 + 1) / 4 = 1 beats (1 + 1) / 1 = 2 although real 0 has more sessions.
    const uint32_t busy_heavy[] = {3, 1};
    EXPECT_EQ(s->pick(0, cursor, busy_heavy), 0);
    // (8 + 1) / 4 = 2.25 loses to (1 + 1) / 1 = 2.
    const uint32_t busier_heavy[] = {8, 1};
    EXPECT_EQ(s->pick(0, cursor, busier_heavy), 1);
    // Idle: the +1 makes the heavier real win rather than a 0/w tie.
    const uint32_t idle[] = {0, 0};
    EXPECT_EQ(s->pick(0, cursor, idle), 0);
}

TEST(Wlc, TiesGoToTheLowestIndex) {
    auto s = make_scheduler(SchedulerKind::wlc, reals_with_weights({2, 1, 2}));
    const uint32_t active[] = {3, 1, 3};  // 4/2 == 2/1 == 4/2
    uint32_t cursor = 0;
    EXPECT_EQ(s->pick(0, cursor, active), 0);
}

TEST(Wlc, WeightZeroIsSkipped) {
    auto s = make_scheduler(SchedulerKind::wlc, reals_with_weights({0, 1, 1}));
    const uint32_t active[] = {0, 5, 4};
    uint32_t cursor = 0;
    EXPECT_EQ(s->pick(0, cursor, active), 2);
}

TEST(Wlc, ComparesExactlyAtTheTopOfTheRange) {
    // 2^32 / w vs (2^32 - 1) / w: a 64-bit product keeps them apart.
    auto s = make_scheduler(SchedulerKind::wlc, reals_with_weights({0xFFFFFFFFu, 0xFFFFFFFFu}));
    const uint32_t active[] = {0xFFFFFFFFu, 0xFFFFFFFEu};
    uint32_t cursor = 0;
    EXPECT_EQ(s->pick(0, cursor, active), 1);
}

TEST(Wlc, SessionsSpreadInProportionToWeight) {
    auto s = make_scheduler(SchedulerKind::wlc, reals_with_weights({1, 2, 3}));
    std::vector<uint32_t> active(3);
    uint32_t cursor = 0;
    for (int i = 0; i < 600; ++i) {
        int r = s->pick(0, cursor, active.data());
        ASSERT_GE(r, 0);
        ++active[static_cast<size_t>(r)];
    }
    EXPECT_EQ(active, (std::vector<uint32_t>{100, 200, 300}));
}

TEST(Wlc, NoWeightedRealGivesNoReal) {
    const uint32_t active[] = {0, 0};
    uint32_t cursor = 0;
    EXPECT_EQ(make_scheduler(SchedulerKind::wlc, reals_with_weights({0, 0}))->pick(0, cursor, active), kNoReal);
    EXPECT_EQ(make_scheduler(SchedulerKind::wlc, {})->pick(0, cursor, nullptr), kNoReal);
}

}  // namespace
}  // namespace dplb::core
