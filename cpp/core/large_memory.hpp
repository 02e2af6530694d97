// Large zeroed tables (sessions, their index) in memory backed by transparent huge pages
// where the kernel allows it: random lookups over hundreds of MB otherwise spend more
// time in TLB misses than in the lookup. The DPDK runtime may place them on hugepages.
#pragma once

#include <cstddef>

namespace dplb::core {

// Zeroed memory of `bytes`, 2 MiB aligned; throws std::bad_alloc.
void* allocate_large(size_t bytes);
void free_large(void* p, size_t bytes);

}  // namespace dplb::core
