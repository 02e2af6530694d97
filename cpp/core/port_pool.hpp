// PortPool: the source ports of one local (SNAT) address in one worker. acquire and
// release are O(1) without searching: free ports wait in a FIFO stamped with the time
// from which they may be used again, so a released port is not handed out before the
// reuse delay (the TIME_WAIT period) has passed.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace dplb::core {

class PortPool {
public:
    // Ports first..last inclusive are all free (usable at once) at construction;
    // throws std::invalid_argument when last < first.
    PortPool(uint16_t first, uint16_t last, uint64_t reuse_delay_ns);

    // A free port whose reuse delay has passed at `now_ns`, or nullopt.
    std::optional<uint16_t> acquire(uint64_t now_ns);
    // Gives `port` back; it can be acquired again from now_ns + reuse_delay_ns.
    // now_ns must not go backwards between calls (the ring relies on it to stay sorted),
    // and each port is released at most once per acquire.
    void release(uint16_t port, uint64_t now_ns);

    size_t capacity() const { return ports_.size(); }
    size_t in_use() const { return capacity() - queued_; }

private:
    std::vector<uint16_t> ports_;      // ring of free ports, oldest release first
    std::vector<uint64_t> usable_at_;  // same ring: earliest time each may be reused
    size_t head_ = 0;
    size_t queued_ = 0;
    uint64_t reuse_delay_ns_;
};

}  // namespace dplb::core
