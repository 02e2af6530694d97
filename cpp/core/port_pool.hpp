// PortPool: the source ports of one worker's local (SNAT) addresses, pooled per (local
// address, real endpoint): the real sees (laddr, lport, real, rport), so one port may be
// in use toward several reals at once, and a port is held toward a real only as long as
// that real's TIME_WAIT needs. Memory grows with what is busy, not with the reals.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/flow_key.hpp"

namespace dplb::core {

struct PortPoolConfig {
    uint16_t first = 1024;  // the range every local address hands out, toward each real
    uint16_t last = 65535;
    uint32_t local_addresses = 1;
    // How long a port stays busy toward a real that closed first (its TIME_WAIT); 0: never.
    uint64_t hold_ns = 60'000'000'000ULL;
    uint32_t max_in_use = 65536;  // ports in use at once (the worker's session capacity)
    uint32_t max_holds = 65536;   // ports held at once; past it the oldest hold ends early
    // Unix time (ns) at which the worker's clock reads 0: the walk over the ports is tied
    // to the wall clock, so that a restarted node begins where a previous run that kept
    // within the sizing rule would have gone on (port_pool.cpp).
    uint64_t clock_epoch_ns = 0;
};

class PortPool {
public:
    // Throws std::invalid_argument when last < first or there is no local address.
    explicit PortPool(const PortPoolConfig& config);
    ~PortPool();
    PortPool(const PortPool&) = delete;
    PortPool& operator=(const PortPool&) = delete;

    // A port of local address `laddr` that is neither in use nor held toward
    // real:rport at now_ns, or nullopt (every port busy toward it, kMaxProbes busy ones
    // in a row, or the pool's tables full).
    std::optional<uint16_t> acquire(uint32_t laddr, const IpAddress& real, uint16_t rport, uint64_t now_ns);
    // Gives back a port acquire handed out. It stays busy toward that real until
    // `hold_until_ns` when that is later than now_ns (the real holds it in TIME_WAIT),
    // else it is free at once. now_ns must not go backwards between calls.
    void release(uint32_t laddr, const IpAddress& real, uint16_t rport, uint16_t lport, uint64_t now_ns,
                 uint64_t hold_until_ns);
    // Ends the holds due at now_ns, at most `budget` of them; returns how many it ended.
    // A due hold that waits here is free anyway for acquire.
    uint32_t expire_holds(uint64_t now_ns, uint32_t budget);

    // What a local address's ports do, readable from any thread (relaxed).
    struct Use {
        uint32_t in_use = 0;   // ports in sessions, summed over the reals
        uint32_t resting = 0;  // ports held toward a real in TIME_WAIT, summed over the reals
        uint32_t busiest = 0;  // busy (in use + resting) toward the real with the most
    };
    Use use(uint32_t laddr) const;
    uint32_t ports_per_real() const { return range_; }
    uint64_t holds_cut() const { return holds_cut_.load(std::memory_order_relaxed); }
    uint64_t hold_ns() const { return hold_ns_; }
    // Bytes the pool reserved (its tables are zero pages until written).
    size_t reserved_bytes() const;

    static constexpr uint32_t kMaxProbes = 64;
    static constexpr uint32_t kCursors = 4096;

private:
    struct Flow;       // one (laddr, real endpoint) with busy ports
    struct BusySlot;   // (flow, port) -> held until, or in use
    struct Hold;       // FIFO of holds: the end times come in order
    struct LaddrUse;

    Flow* find_flow(const FlowKey& key, uint64_t hash, uint64_t* slot_out);
    Flow* add_flow(const FlowKey& key, uint64_t hash, uint64_t slot);
    void erase_flow(Flow& flow);
    void count_busy(Flow& flow, bool more);
    uint64_t find_busy(uint64_t key) const;  // its slot, or kNone
    void erase_busy(uint64_t slot);
    void end_hold(const Hold& h);
    void insert_busy(uint64_t key, uint64_t until);

    uint16_t first_;
    uint32_t range_;
    uint64_t hold_ns_;
    uint64_t epoch_ns_;
    uint64_t ns_per_port_;  // the wall-clock pace of the walk; 0: none (no hold)

    Flow* flows_ = nullptr;  // slab; a flow's id is its index + 1
    uint32_t flow_capacity_;
    uint32_t flows_used_ = 0;  // slab entries ever taken (the rest are zero pages)
    uint32_t flow_free_ = 0;   // free list through Flow::next_free (id, 0: empty)
    uint32_t* flow_index_ = nullptr;  // open addressing: flow id or 0
    uint64_t flow_mask_;

    BusySlot* busy_ = nullptr;  // open addressing, key 0: empty
    uint64_t busy_mask_;
    uint64_t busy_count_ = 0;
    uint64_t busy_capacity_;

    Hold* holds_ = nullptr;  // ring
    uint32_t hold_capacity_;
    uint32_t hold_head_ = 0;
    uint32_t hold_count_ = 0;

    std::vector<uint64_t> cursors_;  // RFC 6056 algorithm 4: per bucket of (laddr, real)
    std::unique_ptr<LaddrUse[]> laddrs_;
    uint32_t laddr_count_;
    std::atomic<uint64_t> holds_cut_{0};
};

}  // namespace dplb::core
