// parallel_for on std::thread: a shared index handed out one at a time.
#include "host/parallel_for.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace dplb::host {

void parallel_for(size_t n, const std::function<void(size_t)>& body, size_t max_threads) {
    const size_t threads = std::min<size_t>({n, std::max(1U, std::thread::hardware_concurrency()), max_threads});
    if (threads < 2) {
        for (size_t i = 0; i < n; ++i) body(i);
        return;
    }
    std::atomic<size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto run = [&] {
        for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
            try {
                body(i);
            } catch (...) {
                std::lock_guard guard(failure_mutex);
                if (!failure) failure = std::current_exception();
            }
        }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(run);
    run();
    for (std::thread& t : pool) t.join();
    if (failure) std::rethrow_exception(failure);
}

}  // namespace dplb::host
