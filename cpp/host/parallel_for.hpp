// parallel_for: runs a loop body over a range on a few threads, for the control side's
// heavy builds (an engine snapshot's Maglev tables). Host side: core never starts threads.
#pragma once

#include <cstddef>
#include <functional>

namespace dplb::host {

// Calls body(i) for every i in [0, n) on up to `max_threads` threads (the caller's among
// them) and returns when all are done; the first exception a body throws is rethrown.
void parallel_for(size_t n, const std::function<void(size_t)>& body, size_t max_threads = 8);

}  // namespace dplb::host
