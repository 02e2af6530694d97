// TimerWheel: expiry of sessions by a hashed timing wheel over intrusive doubly-linked
// lists. A later expiry costs nothing on the packet path (the entry is refiled when its
// slot comes round); an earlier one refiles the entry at once.
#pragma once

#include <cstdint>
#include <vector>

#include "core/session.hpp"

namespace dplb::core {

class TimerWheel {
public:
    // `slots` is rounded up to a power of two.
    TimerWheel(uint32_t slots, uint32_t start_tick);

    // Files session `idx` (whose expire_tick is set) under its expiry.
    void file(Session* sessions, uint32_t idx);
    void unfile(Session* sessions, uint32_t idx);
    // Call after lowering a filed session's expire_tick.
    void refile_if_earlier(Session* sessions, uint32_t idx) {
        if (static_cast<int32_t>(sessions[idx].expire_tick - sessions[idx].timer_filed_tick) < 0) {
            unfile(sessions, idx);
            file(sessions, idx);
        }
    }

    // Visits every slot from the last advance up to `now_tick` and calls on_expired(idx)
    // for each session whose expire_tick has passed (the callee frees it; it is already
    // unfiled). Sessions not yet due are refiled. Returns how many expired.
    // At most `budget` sessions expire in one call: the sweep stops there, keeps its
    // position (the rest of the slot in hand is carried) and the next call goes on from
    // it, so that many sessions due together cannot stall the caller.
    template <class OnExpired>
    uint32_t advance(Session* sessions, uint32_t now_tick, OnExpired&& on_expired, uint32_t budget = UINT32_MAX);

    // The tick swept up to (a sweep cut short by its budget is behind its now_tick).
    uint32_t last_tick() const { return last_tick_; }
    // A sweep was cut short by its budget: sessions may be due that have not expired yet.
    bool behind() const { return behind_; }

private:
    // Walks the detached list from `idx`: expires what is due by `now_tick`, refiles the
    // rest; stops before the entry that would exceed `budget`, carrying the remainder.
    template <class OnExpired>
    bool sweep_list(Session* sessions, uint32_t idx, uint32_t now_tick, OnExpired& on_expired, uint32_t budget,
                    uint32_t& expired);

    std::vector<uint32_t> heads_;
    uint32_t mask_;
    uint32_t last_tick_;
    // The unswept rest of a slot whose sweep the budget cut short (a list like a slot's,
    // its head's timer_prev kNoIndex), or kNoIndex.
    uint32_t carry_ = kNoIndex;
    bool behind_ = false;
};

template <class OnExpired>
bool TimerWheel::sweep_list(Session* sessions, uint32_t idx, uint32_t now_tick, OnExpired& on_expired,
                            uint32_t budget, uint32_t& expired) {
    while (idx != kNoIndex) {
        Session& sess = sessions[idx];
        uint32_t next = sess.timer_next;
        if (static_cast<int32_t>(sess.expire_tick - now_tick) <= 0) {
            if (expired == budget) {
                sess.timer_prev = kNoIndex;
                carry_ = idx;
                return false;
            }
            sess.timer_prev = sess.timer_next = kNoIndex;
            on_expired(idx);
            ++expired;
        } else {
            file(sessions, idx);
        }
        idx = next;
    }
    return true;
}

template <class OnExpired>
uint32_t TimerWheel::advance(Session* sessions, uint32_t now_tick, OnExpired&& on_expired, uint32_t budget) {
    uint32_t expired = 0;
    behind_ = false;
    if (carry_ != kNoIndex) {
        uint32_t idx = carry_;
        carry_ = kNoIndex;
        if (!sweep_list(sessions, idx, now_tick, on_expired, budget, expired)) {
            behind_ = true;
            return expired;
        }
    }
    uint32_t steps = now_tick - last_tick_;
    if (static_cast<int32_t>(steps) <= 0) return expired;
    if (steps > mask_ + 1) steps = mask_ + 1;  // every slot visited once is enough
    for (uint32_t s = 1; s <= steps; ++s) {
        const uint32_t tick = now_tick - steps + s;
        uint32_t slot = tick & mask_;
        uint32_t idx = heads_[slot];
        heads_[slot] = kNoIndex;
        if (!sweep_list(sessions, idx, now_tick, on_expired, budget, expired)) {
            // Slots up to this one are swept (the rest of this one is carried): sessions
            // filed from now on that are due go to the next slot, as after a full sweep.
            last_tick_ = tick;
            behind_ = true;
            return expired;
        }
    }
    last_tick_ = now_tick;
    return expired;
}

}  // namespace dplb::core
