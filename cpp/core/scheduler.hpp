// Schedulers that pick a real server for a new session: rr, wrr, wlc and weighted
// Maglev. A Scheduler is built by the control side from the reals' weights and is then
// immutable and shared by all workers; what changes per pick (a round-robin cursor)
// lives in the calling worker and is passed in, so workers never share writes.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <optional>
#include <vector>

namespace dplb::core {

enum class SchedulerKind : uint8_t { rr, wrr, wlc, maglev };

std::optional<SchedulerKind> scheduler_from_name(std::string_view name);
std::string_view scheduler_name(SchedulerKind kind);

inline constexpr uint32_t kDefaultMaglevTableSize = 65537;  // prime
inline constexpr int kNoReal = -1;

struct SchedulerReal {
    uint64_t identity;  // stable hash of the real's address and port (Maglev permutation seed)
    uint32_t weight;    // 0 = quiesced: never picked for a new session
};

class Scheduler {
public:
    virtual ~Scheduler() = default;
    // Index of the chosen real in the vector given to make_scheduler, or kNoReal when no
    // real has a weight above 0. `flow_hash` is a hash of the client's 5-tuple (Maglev);
    // `cursor` is this worker's state for this service (rr, wrr); `active` holds this
    // worker's active session count per real, same indices (wlc).
    virtual int pick(uint64_t flow_hash, uint32_t& cursor, const uint32_t* active) const = 0;
};

// Builds a scheduler; maglev_table_size must be prime (checked by the caller's config
// validation; a non-prime size is rounded up to the next prime here).
std::unique_ptr<Scheduler> make_scheduler(SchedulerKind kind, const std::vector<SchedulerReal>& reals,
                                          uint32_t maglev_table_size = kDefaultMaglevTableSize);

// Smallest prime >= n (2 for n < 2); clamps to 4294967291, the largest 32-bit prime.
// Config validation can check a Maglev table size with next_prime(n) == n.
uint32_t next_prime(uint32_t n);

// The Maglev lookup table on its own, for tests and benchmarks: entry -> real index
// (kNoReal everywhere when no real has weight). `size` is rounded up to a prime like
// make_scheduler does, so the result has next_prime(size) entries. The table depends on
// the set of (identity, weight) pairs, not on their order in `reals`.
std::vector<int32_t> build_maglev_table(const std::vector<SchedulerReal>& reals, uint32_t size);

}  // namespace dplb::core
