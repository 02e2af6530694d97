// Owner-thread checks (docs/threads.md): compiled in when NDEBUG is not defined or with
// DPLB_THREAD_CHECKS (the CMake option of that name, on for the C++ tests); otherwise
// they are empty and cost nothing.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>

#if !defined(NDEBUG) || defined(DPLB_THREAD_CHECKS)
#define DPLB_THREAD_CHECKS_ENABLED 1
#endif

namespace dplb::core {

// A tag unique to the calling thread while it lives: the address of a thread_local.
inline const void* this_thread_tag() {
    static thread_local char tag;
    return &tag;
}

[[noreturn]] inline void thread_check_failed(const char* what) {
    std::fprintf(stderr, "dplb: thread check failed: %s\n", what);
    std::abort();
}

// What one thread at a time owns (a worker's state): the first thread to call check()
// owns it, a later call from another thread aborts naming `what`.
class ThreadOwner {
public:
#ifdef DPLB_THREAD_CHECKS_ENABLED
    void check(const char* what) {
        const void* me = this_thread_tag();
        const void* expected = nullptr;
        if (!owner_.compare_exchange_strong(expected, me, std::memory_order_relaxed) && expected != me) {
            thread_check_failed(what);
        }
    }
    // The calling thread takes over (the harness drives workers from whichever thread
    // calls it, one at a time).
    void adopt() { owner_.store(this_thread_tag(), std::memory_order_relaxed); }

private:
    std::atomic<const void*> owner_{nullptr};
#else
    void check(const char*) {}
    void adopt() {}
#endif
};

}  // namespace dplb::core
