// SingleWriterCounter: a counter one thread writes and any thread reads (per-worker
// stats, per-real counters, a table's size). Its word is atomic, so a reader on another
// thread sees a whole value (no torn read, no data race); the one writer adds with a
// relaxed load and store, not a locked read-modify-write: on x86 the same instructions as
// a plain increment.
#pragma once

#include <atomic>
#include <cstdint>

namespace dplb::core {

template <typename T>
class SingleWriterCounter {
public:
    constexpr SingleWriterCounter(T v = 0) noexcept : v_(v) {}  // NOLINT: converts like T
    SingleWriterCounter(const SingleWriterCounter& o) noexcept : v_(o.load()) {}
    SingleWriterCounter& operator=(const SingleWriterCounter& o) noexcept {
        v_.store(o.load(), std::memory_order_relaxed);
        return *this;
    }

    // Any thread.
    T load() const noexcept { return v_.load(std::memory_order_relaxed); }
    operator T() const noexcept { return load(); }  // NOLINT: reads like T

    // The owning worker only (one writer).
    void add(T n) noexcept { v_.store(static_cast<T>(load() + n), std::memory_order_relaxed); }
    void sub(T n) noexcept { v_.store(static_cast<T>(load() - n), std::memory_order_relaxed); }
    // The writer publishes with release what a reader must see ordered after its earlier
    // writes (a real's active count: its slot is free at 0); the reader loads with acquire.
    void add_release(int64_t n) noexcept { v_.store(static_cast<T>(load() + n), std::memory_order_release); }
    T load_acquire() const noexcept { return v_.load(std::memory_order_acquire); }
    SingleWriterCounter& operator+=(T n) noexcept {
        add(n);
        return *this;
    }
    SingleWriterCounter& operator-=(T n) noexcept {
        sub(n);
        return *this;
    }
    SingleWriterCounter& operator++() noexcept {
        add(1);
        return *this;
    }
    SingleWriterCounter& operator--() noexcept {
        sub(1);
        return *this;
    }

private:
    std::atomic<T> v_;
};
static_assert(sizeof(SingleWriterCounter<uint64_t>) == sizeof(uint64_t));
using Counter = SingleWriterCounter<uint64_t>;

}  // namespace dplb::core
