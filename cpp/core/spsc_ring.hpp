// SpscRing: the bounded lock-free single-producer single-consumer ring that carries work
// between a worker and another thread (commands, neighbour requests, log records).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace dplb::core {

// A bounded single-producer single-consumer ring. The producer and the consumer each
// write only their own index (on its own cache line), so neither ever waits for the
// other: push fails when the ring is full, pop when it is empty.
template <class T, uint32_t Capacity>
class SpscRing {
    static_assert(std::has_single_bit(Capacity), "the capacity must be a power of two");

public:
    // Producer side only.
    bool push(const T& item) {
        const uint32_t head = head_.load(std::memory_order_relaxed);
        if (head - tail_.load(std::memory_order_acquire) == Capacity) return false;
        items_[head & (Capacity - 1)] = item;
        head_.store(head + 1, std::memory_order_release);
        return true;
    }

    // Consumer side only.
    bool pop(T& out) {
        const uint32_t tail = tail_.load(std::memory_order_relaxed);
        if (tail == head_.load(std::memory_order_acquire)) return false;
        out = items_[tail & (Capacity - 1)];
        tail_.store(tail + 1, std::memory_order_release);
        return true;
    }

    // Consumer side: one load of a line the producer rarely writes, so it stays cached.
    bool empty() const {
        return tail_.load(std::memory_order_relaxed) == head_.load(std::memory_order_acquire);
    }

    static constexpr uint32_t capacity() { return Capacity; }

private:
    alignas(64) std::atomic<uint32_t> head_{0};  // next slot the producer fills
    alignas(64) std::atomic<uint32_t> tail_{0};  // next slot the consumer reads
    alignas(64) std::array<T, Capacity> items_{};
};

}  // namespace dplb::core
