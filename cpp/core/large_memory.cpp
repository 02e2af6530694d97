// allocate_large: anonymous mmap with a MADV_HUGEPAGE hint (construction time only).
#include "core/large_memory.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <new>

namespace dplb::core {
namespace {
constexpr size_t kHugePage = 2u << 20;
}

void* allocate_large(size_t bytes) {
    size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    // Map one huge page more and trim, so the table starts on a huge-page boundary.
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    auto start = reinterpret_cast<uintptr_t>(raw);
    uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);
    uintptr_t end = aligned + size;
    uintptr_t raw_end = start + size + kHugePage;
    if (raw_end > end) munmap(reinterpret_cast<void*>(end), raw_end - end);
    madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
    // Touch it now: a preallocated table must not fault pages in on the packet path.
    std::memset(reinterpret_cast<void*>(aligned), 0, size);
    return reinterpret_cast<void*>(aligned);
}

void free_large(void* p, size_t bytes) {
    if (p == nullptr) return;
    size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    munmap(p, size);
}

}  // namespace dplb::core
