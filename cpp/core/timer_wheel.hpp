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
    template <class OnExpired>
    uint32_t advance(Session* sessions, uint32_t now_tick, OnExpired&& on_expired);

    uint32_t last_tick() const { return last_tick_; }

private:
    std::vector<uint32_t> heads_;
    uint32_t mask_;
    uint32_t last_tick_;
};

template <class OnExpired>
uint32_t TimerWheel::advance(Session* sessions, uint32_t now_tick, OnExpired&& on_expired) {
    uint32_t steps = now_tick - last_tick_;
    if (static_cast<int32_t>(steps) <= 0) return 0;
    if (steps > mask_ + 1) steps = mask_ + 1;  // every slot visited once is enough
    uint32_t expired = 0;
    for (uint32_t s = 1; s <= steps; ++s) {
        uint32_t slot = (now_tick - steps + s) & mask_;
        uint32_t idx = heads_[slot];
        heads_[slot] = kNoIndex;
        while (idx != kNoIndex) {
            Session& sess = sessions[idx];
            uint32_t next = sess.timer_next;
            if (static_cast<int32_t>(sess.expire_tick - now_tick) <= 0) {
                sess.timer_prev = sess.timer_next = kNoIndex;
                on_expired(idx);
                ++expired;
            } else {
                file(sessions, idx);
            }
            idx = next;
        }
    }
    last_tick_ = now_tick;
    return expired;
}

}  // namespace dplb::core
