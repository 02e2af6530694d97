// Tests of the weighted Maglev table and scheduler: balance, weights, disruption when
// the set of reals changes, and independence from the order reals are listed in.
#include "core/scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace dplb::core {
namespace {

constexpr uint32_t kM = kDefaultMaglevTableSize;

// A stand-in for the hash of a real's address and port: distinct, structured values (as
// real addresses are), left to the table's own hash mixes to spread.
uint64_t identity_of(uint64_t n) { return (uint64_t{0x0a000000} + n) << 16 | 8080; }

std::vector<SchedulerReal> equal_reals(size_t n, uint64_t first = 0) {
    std::vector<SchedulerReal> reals;
    for (size_t i = 0; i < n; ++i) reals.push_back({identity_of(first + i), 1});
    return reals;
}

std::vector<size_t> entries_per_real(const std::vector<int32_t>& table, size_t n) {
    std::vector<size_t> count(n);
    for (int32_t r : table) {
        EXPECT_GE(r, 0);
        EXPECT_LT(static_cast<size_t>(r), n);
        if (r >= 0 && static_cast<size_t>(r) < n) ++count[static_cast<size_t>(r)];
    }
    return count;
}

// How many entries map to a different real (compared by identity, as indices shift
// when a real is removed) between two tables of the same size.
size_t changed_entries(const std::vector<SchedulerReal>& a_reals, const std::vector<int32_t>& a,
                       const std::vector<SchedulerReal>& b_reals, const std::vector<int32_t>& b) {
    size_t changed = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a_reals[static_cast<size_t>(a[i])].identity != b_reals[static_cast<size_t>(b[i])].identity) ++changed;
    }
    return changed;
}

TEST(Maglev, NextPrime) {
    EXPECT_EQ(next_prime(0), 2u);
    EXPECT_EQ(next_prime(2), 2u);
    EXPECT_EQ(next_prime(3), 3u);
    EXPECT_EQ(next_prime(4), 5u);
    EXPECT_EQ(next_prime(1000), 1009u);
    EXPECT_EQ(next_prime(65536), 65537u);
    EXPECT_EQ(next_prime(65537), 65537u);
    EXPECT_EQ(next_prime(4294967291u), 4294967291u);
    EXPECT_EQ(next_prime(4294967295u), 4294967291u);
}

TEST(Maglev, TableSizeIsRoundedUpToAPrime) {
    EXPECT_EQ(build_maglev_table(equal_reals(3), 1000).size(), 1009u);
    EXPECT_EQ(build_maglev_table(equal_reals(3), kM).size(), size_t{kM});
}

TEST(Maglev, EqualWeightsBalanceWithinOnePercent) {
    // Unweighted Maglev fills the table in rounds, one entry per real per round, so every
    // real ends with floor(M/N) or ceil(M/N) entries: 655 or 656 for M = 65537, N = 100,
    // at most 0.1% from the mean. Assert the 1% the design asks for, and the exact
    // one-entry spread the algorithm gives.
    const auto reals = equal_reals(100);
    const auto count = entries_per_real(build_maglev_table(reals, kM), reals.size());
    const double mean = kM / 100.0;
    for (size_t i = 0; i < count.size(); ++i) {
        EXPECT_LE(std::abs(static_cast<double>(count[i]) - mean), 0.01 * mean) << "real " << i;
    }
    const auto [lo, hi] = std::minmax_element(count.begin(), count.end());
    EXPECT_LE(*hi - *lo, 1u);
}

TEST(Maglev, ThousandRealsAreBalanced) {
    const auto reals = equal_reals(1000);
    const auto count = entries_per_real(build_maglev_table(reals, kM), reals.size());
    const auto [lo, hi] = std::minmax_element(count.begin(), count.end());
    EXPECT_EQ(*lo, kM / 1000);
    EXPECT_EQ(*hi, kM / 1000 + 1);
}

TEST(Maglev, WeightsGiveProportionalShares) {
    const std::vector<SchedulerReal> reals{{identity_of(1), 1}, {identity_of(2), 2}, {identity_of(3), 3}};
    const auto count = entries_per_real(build_maglev_table(reals, kM), reals.size());
    for (size_t i = 0; i < reals.size(); ++i) {
        const double expected = kM * reals[i].weight / 6.0;
        EXPECT_LE(std::abs(static_cast<double>(count[i]) - expected), 0.01 * expected) << "real " << i;
    }
}

TEST(Maglev, WeightZeroGetsNoEntries) {
    auto reals = equal_reals(10);
    reals[3].weight = 0;
    reals[7].weight = 0;
    const auto count = entries_per_real(build_maglev_table(reals, kM), reals.size());
    EXPECT_EQ(count[3], 0u);
    EXPECT_EQ(count[7], 0u);
    for (size_t i : {0u, 1u, 2u, 4u, 5u, 6u, 8u, 9u}) EXPECT_GE(count[i], kM / 8) << "real " << i;
}

TEST(Maglev, NoWeightedRealGivesNoReal) {
    auto reals = equal_reals(4);
    for (auto& r : reals) r.weight = 0;
    const auto table = build_maglev_table(reals, kM);
    EXPECT_TRUE(std::all_of(table.begin(), table.end(), [](int32_t r) { return r == kNoReal; }));

    auto s = make_scheduler(SchedulerKind::maglev, reals);
    uint32_t cursor = 0;
    EXPECT_EQ(s->pick(12345, cursor, nullptr), kNoReal);
    EXPECT_EQ(make_scheduler(SchedulerKind::maglev, {})->pick(12345, cursor, nullptr), kNoReal);
}

TEST(Maglev, MoreRealsThanEntriesStillFillsTheTable) {
    const auto reals = equal_reals(20);
    const auto table = build_maglev_table(reals, 7);
    ASSERT_EQ(table.size(), 7u);
    for (int32_t r : table) {
        EXPECT_GE(r, 0);
        EXPECT_LT(r, 20);
    }
    // One entry per real per round: the first round already fills 7 entries, 7 reals.
    std::vector<int32_t> sorted = table;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
}

TEST(Maglev, RemovingOneRealMovesLittleMoreThanItsShare) {
    // Maglev is not minimally disruptive: besides the removed real's own ~M/100 entries,
    // some entries of other reals move because their permutations now reach different
    // free slots. Measured worst case over all 100 removals is about 1.6 x M/100, so the
    // bound asserted is 2 x M/100 (the design allows 3 x).
    const auto before_reals = equal_reals(100);
    const auto before = build_maglev_table(before_reals, kM);
    for (size_t k = 0; k < before_reals.size(); k += 7) {
        auto after_reals = before_reals;
        after_reals.erase(after_reals.begin() + static_cast<long>(k));
        const auto after = build_maglev_table(after_reals, kM);
        const size_t changed = changed_entries(before_reals, before, after_reals, after);
        const size_t own = static_cast<size_t>(std::count(before.begin(), before.end(), static_cast<int32_t>(k)));
        EXPECT_GE(changed, own) << "every entry of the removed real must move";
        EXPECT_LE(changed, 2 * kM / 100) << "removing real " << k;
    }
}

TEST(Maglev, AddingOneRealMovesLittleMoreThanItsShare) {
    const auto before_reals = equal_reals(100);
    const auto before = build_maglev_table(before_reals, kM);
    for (uint64_t extra = 1000; extra < 1010; ++extra) {
        auto after_reals = before_reals;
        after_reals.push_back({identity_of(extra), 1});
        const auto after = build_maglev_table(after_reals, kM);
        const size_t changed = changed_entries(before_reals, before, after_reals, after);
        const size_t gained = static_cast<size_t>(std::count(after.begin(), after.end(), 100));
        EXPECT_GE(gained, kM / 101);
        EXPECT_LE(gained, kM / 101 + 1);
        EXPECT_LE(changed, 2 * kM / 100) << "adding identity " << extra;
    }
}

TEST(Maglev, TableDependsOnTheSetOfRealsNotTheirOrder) {
    auto reals = equal_reals(50);
    reals[10].weight = 3;
    const auto table = build_maglev_table(reals, kM);
    auto reversed = reals;
    std::reverse(reversed.begin(), reversed.end());
    const auto table_reversed = build_maglev_table(reversed, kM);
    EXPECT_EQ(changed_entries(reals, table, reversed, table_reversed), 0u);
}

TEST(Maglev, SchedulerPicksTheTableEntryOfTheFlowHash) {
    const auto reals = equal_reals(10);
    const auto table = build_maglev_table(reals, 1000);  // 1009 entries
    auto s = make_scheduler(SchedulerKind::maglev, reals, 1000);
    uint32_t cursor = 0;
    uint64_t h = 0x123456789abcdefull;
    for (int i = 0; i < 5000; ++i) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        ASSERT_EQ(s->pick(h, cursor, nullptr), table[h % table.size()]);
    }
    // Same flow, same real, whatever the cursor.
    uint32_t other_cursor = 77;
    EXPECT_EQ(s->pick(h, other_cursor, nullptr), s->pick(h, cursor, nullptr));
}

}  // namespace
}  // namespace dplb::core
