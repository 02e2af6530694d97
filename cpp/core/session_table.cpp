// SessionTable: insert, lookup and backward-shift deletion for linear probing.
#include "core/session_table.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/large_memory.hpp"

namespace dplb::core {

SessionTable::SessionTable(uint32_t capacity)
    : capacity_(capacity < 1 ? 1 : capacity),
      sessions_(static_cast<Session*>(allocate_large(sizeof(Session) * capacity_))),
      free_(capacity_),
      slots_(nullptr),
      slot_count_(std::bit_ceil(uint64_t(capacity_) * 4)),
      mask_(slot_count_ - 1) {
    try {
        slots_ = static_cast<Slot*>(allocate_large(sizeof(Slot) * slot_count_));
    } catch (...) {
        free_large(sessions_, sizeof(Session) * capacity_);
        throw;
    }
    std::fill(slots_, slots_ + slot_count_, Slot{0, kNoIndex});
    // Lowest index on top, so a young table touches few pages.
    for (uint32_t i = 0; i < capacity_; ++i) free_[i] = capacity_ - 1 - i;
}

SessionTable::~SessionTable() {
    free_large(sessions_, sizeof(Session) * capacity_);
    free_large(slots_, sizeof(Slot) * slot_count_);
}

SessionRef SessionTable::lookup(const FlowKey& key, uint64_t hash) const {
    const uint32_t tag = static_cast<uint32_t>(hash >> 32);
    for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
        const Slot& slot = slots_[i];
        if (slot.ref == kNoIndex) return {};
        if (slot.tag == tag && key_of(slot.ref) == key) {
            return {&sessions_[slot.ref >> 1], slot.ref >> 1, static_cast<Direction>(slot.ref & 1)};
        }
    }
}

void SessionTable::index_key(uint64_t hash, uint32_t ref) {
    uint64_t i = hash & mask_;
    while (slots_[i].ref != kNoIndex) i = (i + 1) & mask_;
    slots_[i] = Slot{static_cast<uint32_t>(hash >> 32), ref};
}

SessionRef SessionTable::insert(const FlowKey& inbound, uint64_t inbound_hash, const FlowKey& outbound,
                                uint64_t outbound_hash, bool defer_outbound) {
    if (free_.empty()) return {};
    uint32_t index = free_.back();
    free_.pop_back();
    Session& s = sessions_[index];
    std::memset(static_cast<void*>(&s), 0, sizeof s);
    s.inbound = inbound;
    s.outbound = outbound;
    s.timer_prev = s.timer_next = kNoIndex;
    s.flags = kSessionInUse;
    index_key(inbound_hash, index << 1);
    if (!defer_outbound) index_key(outbound_hash, index << 1 | 1);
    ++size_;
    return {&s, index, Direction::inbound};
}

void SessionTable::index_outbound(uint32_t index, uint64_t outbound_hash) {
    const Session& s = sessions_[index];
    if (!(s.flags & kSessionInUse) || hash_key(s.outbound) != outbound_hash) return;
    if (lookup(s.outbound, outbound_hash)) return;
    index_key(outbound_hash, index << 1 | 1);
}

void SessionTable::unindex_key(const FlowKey& key, uint64_t hash, uint32_t ref) {
    uint64_t i = hash & mask_;
    while (slots_[i].ref != ref) {
        if (slots_[i].ref == kNoIndex) return;  // not indexed: nothing to do
        i = (i + 1) & mask_;
    }
    (void)key;
    // Backward-shift deletion: pull later entries of the probe run into the hole.
    uint64_t hole = i;
    for (uint64_t j = (i + 1) & mask_; slots_[j].ref != kNoIndex; j = (j + 1) & mask_) {
        uint64_t home = hash_key(key_of(slots_[j].ref)) & mask_;
        // Move j into the hole if its home does not lie cyclically in (hole, j].
        bool home_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!home_between) {
            slots_[hole] = slots_[j];
            hole = j;
        }
    }
    slots_[hole] = Slot{0, kNoIndex};
}

void SessionTable::erase(uint32_t index) {
    Session& s = sessions_[index];
    unindex_key(s.inbound, hash_key(s.inbound), index << 1);
    unindex_key(s.outbound, hash_key(s.outbound), index << 1 | 1);
    s.flags = 0;
    free_.push_back(index);
    --size_;
}

}  // namespace dplb::core
