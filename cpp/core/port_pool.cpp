// PortPool: a FIFO ring of free ports stamped with the time each may be reused.
#include "core/port_pool.hpp"

#include <cassert>
#include <stdexcept>

namespace dplb::core {

PortPool::PortPool(uint16_t first, uint16_t last, uint64_t reuse_delay_ns)
    : reuse_delay_ns_(reuse_delay_ns) {
    if (last < first) throw std::invalid_argument("PortPool: last port below first");
    const size_t n = static_cast<size_t>(last) - first + 1;
    ports_.resize(n);
    usable_at_.assign(n, 0);  // never used yet: no TIME_WAIT to wait out
    for (size_t i = 0; i < n; ++i) ports_[i] = static_cast<uint16_t>(first + i);
    queued_ = n;
}

std::optional<uint16_t> PortPool::acquire(uint64_t now_ns) {
    // Releases are stamped with a non-decreasing now + a fixed delay, so the head is the
    // earliest usable port: if it is still waiting, so is every port behind it.
    if (queued_ == 0 || usable_at_[head_] > now_ns) return std::nullopt;
    const uint16_t port = ports_[head_];
    if (++head_ == ports_.size()) head_ = 0;
    --queued_;
    return port;
}

void PortPool::release(uint16_t port, uint64_t now_ns) {
    // More releases than acquires means a port was released twice: a caller bug that
    // would hand the same port to two sessions. The ring has no room for it anyway.
    assert(queued_ < ports_.size());
    if (queued_ == ports_.size()) [[unlikely]] return;
    size_t tail = head_ + queued_;
    if (tail >= ports_.size()) tail -= ports_.size();
    ports_[tail] = port;
    usable_at_[tail] = now_ns + reuse_delay_ns_;
    ++queued_;
}

}  // namespace dplb::core
