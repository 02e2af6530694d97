// The rr, wrr, wlc and Maglev schedulers: tables built once on the control side, then
// read-only picks on the hot path (no allocation, no lock, no floating point).
#include "core/scheduler.hpp"

#include <algorithm>
#include <numeric>
#include <queue>
#include <utility>

namespace dplb::core {

namespace {

// Longest wrr sequence: 64 Ki entries (256 KiB) per service is plenty of resolution for
// weights, and bounds both memory and build time whatever weights the operator sets.
constexpr uint64_t kWrrMaxSequence = 65536;

// Advances a per-worker cursor over a sequence of `len` entries. The cursor is kept in
// [0, len) so the steady state needs no division; it is only reduced with % when it was
// left out of range by a previous, longer sequence of the same service.
inline uint32_t take_slot(uint32_t& cursor, uint32_t len) {
    uint32_t i = cursor < len ? cursor : cursor % len;
    cursor = i + 1 == len ? 0 : i + 1;
    return i;
}

// rr and wrr: a precomputed sequence of real indices walked by the caller's cursor.
// rr is the sequence of reals with weight > 0, each once, in index order.
class SequenceScheduler final : public Scheduler {
public:
    explicit SequenceScheduler(std::vector<int32_t> sequence) : sequence_(std::move(sequence)) {}

    int pick(uint64_t, uint32_t& cursor, const uint32_t*) const override {
        if (sequence_.empty()) [[unlikely]] return kNoReal;
        return sequence_[take_slot(cursor, static_cast<uint32_t>(sequence_.size()))];
    }

private:
    std::vector<int32_t> sequence_;
};

std::vector<int32_t> rr_sequence(const std::vector<SchedulerReal>& reals) {
    std::vector<int32_t> seq;
    for (size_t i = 0; i < reals.size(); ++i) {
        if (reals[i].weight > 0) seq.push_back(static_cast<int32_t>(i));
    }
    return seq;
}

// Smooth wrr sequence. Real i's k-th slot (k = 0 .. w_i - 1) is due at (2k + 1) / (2 w_i)
// of a cycle, the middle of its k-th share of the cycle; slots are handed out in order
// of due time (ties to the lower index). This is the Sainte-Lague / stride-scheduling
// order: every real appears exactly w_i times per cycle, spread evenly rather than in
// bursts, like nginx's smooth wrr, but built with a heap in O(S log N) instead of
// nginx's O(S * N).
std::vector<int32_t> wrr_sequence(const std::vector<SchedulerReal>& reals) {
    std::vector<int32_t> index;
    std::vector<uint64_t> weight;
    for (size_t i = 0; i < reals.size(); ++i) {
        if (reals[i].weight == 0) continue;
        index.push_back(static_cast<int32_t>(i));
        weight.push_back(reals[i].weight);
    }
    if (index.empty()) return {};

    auto reduce = [&weight]() {
        uint64_t g = 0;
        for (uint64_t w : weight) g = std::gcd(g, w);
        uint64_t sum = 0;
        for (uint64_t& w : weight) sum += (w /= g);
        return sum;
    };
    uint64_t sum = reduce();
    // Every real with weight must appear at least once, so the cap grows with their count.
    const uint64_t cap = std::max<uint64_t>(kWrrMaxSequence, weight.size());
    if (sum > cap) {
        // Scale down proportionally; rounding a small weight up to 1 keeps the real in
        // rotation at the cost of slightly overweighting it. The sum stays below 2 * cap.
        for (uint64_t& w : weight) w = std::max<uint64_t>(1, w * cap / sum);
        sum = reduce();
    }

    struct Due {
        uint64_t num;  // due time = num / (2 * weight[slot])
        uint32_t slot;
    };
    // priority_queue pops the greatest, so "a after b" means a is due later.
    auto later = [&weight](const Due& a, const Due& b) {
        // a.num / w_a vs b.num / w_b by cross-multiplication; 128 bits because num < 2w
        // and w < 2 * cap, whose products need not fit 64 bits when cap is large.
        const unsigned __int128 lhs = static_cast<unsigned __int128>(a.num) * weight[b.slot];
        const unsigned __int128 rhs = static_cast<unsigned __int128>(b.num) * weight[a.slot];
        return lhs != rhs ? lhs > rhs : a.slot > b.slot;
    };
    std::priority_queue<Due, std::vector<Due>, decltype(later)> due(later);
    for (uint32_t s = 0; s < weight.size(); ++s) due.push({1, s});

    std::vector<int32_t> seq;
    seq.reserve(sum);
    while (!due.empty()) {
        Due d = due.top();
        due.pop();
        seq.push_back(index[d.slot]);
        // k-th slot has num 2k + 1; the real has weight[slot] slots in a cycle.
        if (d.num + 2 < 2 * weight[d.slot]) due.push({d.num + 2, d.slot});
    }
    return seq;
}

// wlc: argmin over reals of (active + 1) / weight.
class WlcScheduler final : public Scheduler {
public:
    explicit WlcScheduler(const std::vector<SchedulerReal>& reals) {
        for (size_t i = 0; i < reals.size(); ++i) {
            if (reals[i].weight == 0) continue;
            index_.push_back(static_cast<int32_t>(i));
            weight_.push_back(reals[i].weight);
        }
    }

    int pick(uint64_t, uint32_t&, const uint32_t* active) const override {
        int best = kNoReal;
        uint64_t best_load = 0;    // active + 1 of the best so far
        uint64_t best_weight = 1;  // its weight
        for (size_t k = 0; k < index_.size(); ++k) {
            const uint64_t load = (active != nullptr ? uint64_t{active[index_[k]]} : 0) + 1;
            const uint64_t w = weight_[k];
            // load / w < best_load / best_weight; both products are below 2^64 because
            // load <= 2^32 and weights < 2^32. Strict < keeps the lowest index on a tie.
            if (best == kNoReal || load * best_weight < best_load * w) {
                best = index_[k];
                best_load = load;
                best_weight = w;
            }
        }
        return best;
    }

private:
    // Only the reals with weight > 0, so the hot loop has no skip branch.
    std::vector<int32_t> index_;
    std::vector<uint64_t> weight_;
};

class MaglevScheduler final : public Scheduler {
public:
    MaglevScheduler(const std::vector<SchedulerReal>& reals, uint32_t size)
        : table_(build_maglev_table(reals, size)) {}

    // With no weighted real the table holds kNoReal everywhere, so no branch is needed.
    int pick(uint64_t flow_hash, uint32_t&, const uint32_t*) const override {
        return table_[flow_hash % table_.size()];
    }

private:
    std::vector<int32_t> table_;
};

}  // namespace

std::optional<SchedulerKind> scheduler_from_name(std::string_view name) {
    if (name == "rr") return SchedulerKind::rr;
    if (name == "wrr") return SchedulerKind::wrr;
    if (name == "wlc") return SchedulerKind::wlc;
    if (name == "maglev") return SchedulerKind::maglev;
    return std::nullopt;
}

std::string_view scheduler_name(SchedulerKind kind) {
    switch (kind) {
        case SchedulerKind::rr: return "rr";
        case SchedulerKind::wrr: return "wrr";
        case SchedulerKind::wlc: return "wlc";
        case SchedulerKind::maglev: return "maglev";
    }
    return "unknown";
}

std::unique_ptr<Scheduler> make_scheduler(SchedulerKind kind, const std::vector<SchedulerReal>& reals,
                                          uint32_t maglev_table_size) {
    switch (kind) {
        case SchedulerKind::rr: return std::make_unique<SequenceScheduler>(rr_sequence(reals));
        case SchedulerKind::wrr: return std::make_unique<SequenceScheduler>(wrr_sequence(reals));
        case SchedulerKind::wlc: return std::make_unique<WlcScheduler>(reals);
        case SchedulerKind::maglev: return std::make_unique<MaglevScheduler>(reals, maglev_table_size);
    }
    return nullptr;
}

}  // namespace dplb::core
