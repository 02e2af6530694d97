// SessionTable: one worker's preallocated sessions and the index that finds a session by
// either of its two tuples. Open addressing with linear probing over 8-byte slots
// (hash tag + session reference), at most half full; no allocation after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/counter.hpp"
#include "core/session.hpp"

namespace dplb::core {

// A prefetch the compiler must keep: GCC 12 drops __builtin_prefetch inside the probe
// loop of prefetch_session as dead code (seen in the benchmark: the session misses).
inline void prefetch_line(const void* p) {
#if defined(__x86_64__)
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__aarch64__)
    asm volatile("prfm pldl1keep, %0" : : "Q"(*static_cast<const char*>(p)));
#else
    __builtin_prefetch(p);
#endif
}

enum class Direction : uint8_t { inbound = 0, outbound = 1 };

struct SessionRef {
    Session* session = nullptr;
    uint32_t index = kNoIndex;
    Direction direction = Direction::inbound;
    explicit operator bool() const { return session != nullptr; }
};

class SessionTable {
public:
    explicit SessionTable(uint32_t capacity);
    ~SessionTable();
    SessionTable(const SessionTable&) = delete;
    SessionTable& operator=(const SessionTable&) = delete;

    // Prefetches the index slot a lookup of `hash` will read first.
    void prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }
    // Once that slot is in cache: prefetches the first two lines of the
    // session whose tag matches, looking a few slots along the probe run.
    void prefetch_session(uint64_t hash) const {
        const uint32_t tag = static_cast<uint32_t>(hash >> 32);
        uint64_t i = hash & mask_;
        for (int n = 0; n < 4; ++n, i = (i + 1) & mask_) {
            const Slot& slot = slots_[i];
            if (slot.ref == kNoIndex) return;
            if (slot.tag == tag) {
                const char* s = reinterpret_cast<const char*>(&sessions_[slot.ref >> 1]);
                prefetch_line(s);
                prefetch_line(s + 64);
                prefetch_line(s + 192);  // TCP's sequence tracking
                return;
            }
        }
    }

    SessionRef lookup(const FlowKey& key, uint64_t hash) const;

    // Takes a free session (zeroed but for its keys) and indexes both keys; nullptr
    // when the table is full. The caller checked that neither key exists. With
    // `defer_outbound` only the inbound key is indexed: the caller prefetches the outbound
    // key's slot and calls index_outbound later, so that the slot's cache miss overlaps
    // with other work (a worker does it at the end of the burst: no packet of the same
    // burst can look the outbound key up, its SYN has not left yet).
    SessionRef insert(const FlowKey& inbound, uint64_t inbound_hash, const FlowKey& outbound,
                      uint64_t outbound_hash, bool defer_outbound = false);
    // Indexes the outbound key of session `index`, unless the session was erased (and
    // perhaps reused) since insert, or the key is indexed already.
    void index_outbound(uint32_t index, uint64_t outbound_hash);

    // Removes both keys from the index and frees the session.
    void erase(uint32_t index);

    Session* sessions() { return sessions_; }
    const Session* sessions() const { return sessions_; }
    Session& at(uint32_t index) { return sessions_[index]; }
    uint32_t capacity() const { return capacity_; }
    uint32_t size() const { return size_; }
    size_t memory_bytes() const { return sizeof(Session) * capacity_ + sizeof(Slot) * slot_count_; }

private:
    struct Slot {
        uint32_t tag;  // upper 32 bits of the key hash
        uint32_t ref;  // session index << 1 | direction, kNoIndex when empty
    };
    void index_key(uint64_t hash, uint32_t ref);
    void unindex_key(const FlowKey& key, uint64_t hash, uint32_t ref);
    const FlowKey& key_of(uint32_t ref) const {
        const Session& s = sessions_[ref >> 1];
        return (ref & 1) ? s.outbound : s.inbound;
    }

    uint32_t capacity_;
    SingleWriterCounter<uint32_t> size_ = 0;  // the worker writes, the control side reads
    Session* sessions_;             // capacity_ sessions, huge-page backed
    std::vector<uint32_t> free_;    // stack of free session indices
    Slot* slots_;                   // slot_count_ slots, huge-page backed
    uint64_t slot_count_;
    uint64_t mask_;
};

}  // namespace dplb::core
