// TimerWheel filing and unfiling (the sweep is a template in the header).
#include "core/timer_wheel.hpp"

#include <bit>

namespace dplb::core {

TimerWheel::TimerWheel(uint32_t slots, uint32_t start_tick)
    : heads_(std::bit_ceil(slots < 2 ? 2u : slots), kNoIndex),
      mask_(static_cast<uint32_t>(heads_.size() - 1)),
      last_tick_(start_tick) {}

void TimerWheel::file(Session* sessions, uint32_t idx) {
    Session& s = sessions[idx];
    // A session already due is filed in the next slot to be swept.
    uint32_t tick = static_cast<int32_t>(s.expire_tick - last_tick_) <= 0 ? last_tick_ + 1 : s.expire_tick;
    uint32_t slot = tick & mask_;
    s.timer_filed_tick = tick;
    s.timer_prev = kNoIndex;
    s.timer_next = heads_[slot];
    if (s.timer_next != kNoIndex) sessions[s.timer_next].timer_prev = idx;
    heads_[slot] = idx;
}

void TimerWheel::unfile(Session* sessions, uint32_t idx) {
    Session& s = sessions[idx];
    if (s.timer_prev != kNoIndex) {
        sessions[s.timer_prev].timer_next = s.timer_next;
    } else if (idx == carry_) {
        carry_ = s.timer_next;
    } else {
        heads_[s.timer_filed_tick & mask_] = s.timer_next;
    }
    if (s.timer_next != kNoIndex) sessions[s.timer_next].timer_prev = s.timer_prev;
    s.timer_prev = s.timer_next = kNoIndex;
}

}  // namespace dplb::core
