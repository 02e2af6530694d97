// Weighted Maglev lookup table (Eisenbud et al., NSDI 2016, weighted the way Katran's
// MaglevHashV2 does it) and the prime rounding of its size. Control path only.
#include "core/scheduler.hpp"

#include <algorithm>

namespace dplb::core {

namespace {

constexpr uint32_t kLargestPrime32 = 4294967291u;

bool is_prime(uint32_t n) {
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2) {
        if (n % d == 0) return false;
    }
    return true;
}

// Two unrelated 64-bit finalizers (splitmix64's and murmur3's fmix64), each over the
// identity xored with its own seed, so a real's offset and skip are independent: were
// they derived from one mix, reals whose offsets collide would also share skips and
// walk the table in lockstep.
uint64_t mix_offset(uint64_t x) {
    x ^= 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t mix_skip(uint64_t x) {
    x ^= 0xc2b2ae3d27d4eb4full;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

}  // namespace

uint32_t next_prime(uint32_t n) {
    if (n <= 2) return 2;
    if (n > kLargestPrime32) return kLargestPrime32;
    for (uint32_t c = n | 1u;; c += 2) {
        if (is_prime(c)) return c;
    }
}

std::vector<int32_t> build_maglev_table(const std::vector<SchedulerReal>& reals, uint32_t size) {
    const uint64_t m = next_prime(size);
    std::vector<int32_t> table(m, kNoReal);

    // Each real walks its own permutation of the slots, (offset + j * skip) mod m; with m
    // prime and 1 <= skip < m every walk visits every slot. `pos` is the next slot to try,
    // advanced by addition so the build does no division per probe.
    struct Walker {
        int32_t real;
        uint64_t weight;
        uint64_t skip;
        uint64_t pos;
        uint64_t credit;
    };
    std::vector<Walker> walkers;
    uint64_t max_weight = 0;
    for (size_t i = 0; i < reals.size(); ++i) {
        const SchedulerReal& r = reals[i];
        if (r.weight == 0) continue;
        walkers.push_back({static_cast<int32_t>(i), r.weight, mix_skip(r.identity) % (m - 1) + 1,
                           mix_offset(r.identity) % m, 0});
        max_weight = std::max<uint64_t>(max_weight, r.weight);
    }
    if (walkers.empty()) return table;

    // Maglev's result depends on the order in which reals take turns. Taking turns in
    // identity order makes the table a function of the set of reals, so two balancers (or
    // one after a restart) given the same reals in another order map flows identically.
    std::sort(walkers.begin(), walkers.end(), [&](const Walker& a, const Walker& b) {
        const uint64_t ia = reals[static_cast<size_t>(a.real)].identity;
        const uint64_t ib = reals[static_cast<size_t>(b.real)].identity;
        return ia != ib ? ia < ib : a.real < b.real;
    });

    // Weighting (Katran MaglevHashV2): every round each real earns its weight in credit and
    // takes one slot whenever its credit reaches the largest weight, so over the build a
    // real takes slots in proportion to its weight, and equal weights degrade to plain
    // Maglev (one slot per real per round).
    uint64_t filled = 0;
    for (;;) {
        for (Walker& w : walkers) {
            w.credit += w.weight;
            if (w.credit < max_weight) continue;
            w.credit -= max_weight;
            // The table is not full here, so the walk finds a free slot within m steps.
            while (table[w.pos] != kNoReal) {
                w.pos += w.skip;
                if (w.pos >= m) w.pos -= m;
            }
            table[w.pos] = w.real;
            w.pos += w.skip;
            if (w.pos >= m) w.pos -= m;
            if (++filled == m) return table;
        }
    }
}

}  // namespace dplb::core
