// Tests for core/timer_wheel: a session expires exactly at its tick, big jumps, lazily
// raised and eagerly lowered expiries, unfiling, tick wrap-around, and a random model.
#include "core/timer_wheel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "core/session_table.hpp"

namespace dplb::core {
namespace {

// Sessions as a worker holds them: the array of a SessionTable, prev/next set by insert.
class Sessions {
public:
    explicit Sessions(uint32_t n) : table_(n) {
        for (uint32_t i = 0; i < n; ++i) {
            FlowKey in, out;
            in.src_port = static_cast<uint16_t>(i);
            in.dst_port = static_cast<uint16_t>(i >> 16);
            in.proto = 6;
            out = in;
            out.proto = 17;
            SessionRef r = table_.insert(in, hash_key(in), out, hash_key(out));
            EXPECT_TRUE(r);
        }
    }
    Session* data() { return table_.sessions(); }
    Session& operator[](uint32_t i) { return table_.at(i); }

private:
    SessionTable table_;
};

// Advances and returns the indices expired, sorted; checks advance's count and that no
// session is reported twice.
std::vector<uint32_t> advance(TimerWheel& w, Sessions& s, uint32_t now) {
    std::vector<uint32_t> out;
    uint32_t n = w.advance(s.data(), now, [&](uint32_t idx) { out.push_back(idx); });
    EXPECT_EQ(n, out.size());
    std::sort(out.begin(), out.end());
    EXPECT_TRUE(std::adjacent_find(out.begin(), out.end()) == out.end()) << "a session expired twice";
    return out;
}

void file_at(TimerWheel& w, Sessions& s, uint32_t idx, uint32_t tick) {
    s[idx].expire_tick = tick;
    w.file(s.data(), idx);
}

using Indices = std::vector<uint32_t>;

TEST(TimerWheelTest, ExpiresExactlyAtItsTickAndNotBefore) {
    Sessions s(3);
    TimerWheel w(16, 0);  // small wheel: session 1 is more than three turns ahead
    file_at(w, s, 0, 10);
    file_at(w, s, 1, 10 + 16 * 3);
    file_at(w, s, 2, 11);
    for (uint32_t t = 1; t < 10; ++t) ASSERT_EQ(advance(w, s, t), Indices{}) << "tick " << t;
    EXPECT_EQ(advance(w, s, 10), Indices{0});
    EXPECT_EQ(advance(w, s, 11), Indices{2});
    for (uint32_t t = 12; t < 58; ++t) ASSERT_EQ(advance(w, s, t), Indices{}) << "tick " << t;
    EXPECT_EQ(advance(w, s, 58), Indices{1});
    for (uint32_t t = 59; t < 200; ++t) ASSERT_EQ(advance(w, s, t), Indices{}) << "tick " << t;
    EXPECT_EQ(w.last_tick(), 199u);
}

TEST(TimerWheelTest, AdvanceToTheSameOrAnEarlierTickDoesNothing) {
    Sessions s(1);
    TimerWheel w(16, 100);
    file_at(w, s, 0, 105);
    EXPECT_EQ(advance(w, s, 100), Indices{});
    EXPECT_EQ(advance(w, s, 50), Indices{});
    EXPECT_EQ(w.last_tick(), 100u);
    EXPECT_EQ(advance(w, s, 105), Indices{0});
}

TEST(TimerWheelTest, SessionAlreadyDueExpiresAtTheNextAdvance) {
    Sessions s(2);
    TimerWheel w(16, 100);
    file_at(w, s, 0, 100);
    file_at(w, s, 1, 40);
    EXPECT_EQ(advance(w, s, 101), (Indices{0, 1}));
}

TEST(TimerWheelTest, OneBigJumpExpiresEverythingDueAndNothingElse) {
    constexpr uint32_t kSlots = 8192;
    constexpr uint32_t kJump = 100000;
    constexpr uint32_t kRandom = 3000;
    constexpr uint32_t kN = 2 * kSlots + kRandom;
    Sessions s(kN);
    TimerWheel w(kSlots, 0);
    std::mt19937 rng(99);
    std::vector<uint32_t> expire;
    // Every slot holds one session due in the last wheel turn before the jump and one due
    // in the first turn after it; then edges and random ticks over two jumps.
    for (uint32_t i = 0; i < kSlots; ++i) expire.push_back(kJump - i);
    for (uint32_t i = 0; i < kSlots; ++i) expire.push_back(kJump + 1 + i);
    for (uint32_t edge : {1u, kSlots - 1, kSlots, kSlots + 1, kJump - kSlots, kJump + kSlots, 2 * kJump}) {
        expire.push_back(edge);
    }
    while (expire.size() < kN) expire.push_back(std::uniform_int_distribution<uint32_t>(1, 2 * kJump)(rng));
    for (uint32_t i = 0; i < kN; ++i) file_at(w, s, i, expire[i]);
    Indices due;
    for (uint32_t i = 0; i < kN; ++i) {
        if (expire[i] <= kJump) due.push_back(i);
    }
    ASSERT_GT(due.size(), kSlots + 1000);
    EXPECT_EQ(advance(w, s, kJump), due);

    // Everything left expires exactly at its own tick afterwards.
    std::map<uint32_t, Indices> by_tick;
    for (uint32_t i = 0; i < kN; ++i) {
        if (expire[i] > kJump) by_tick[expire[i]].push_back(i);
    }
    for (uint32_t t = kJump + 1; t <= 2 * kJump; ++t) {
        auto it = by_tick.find(t);
        Indices want = it == by_tick.end() ? Indices{} : it->second;
        ASSERT_EQ(advance(w, s, t), want) << "tick " << t;
    }
}

TEST(TimerWheelTest, LaterExpirySetLazilyIsHonoured) {
    Sessions s(2);
    TimerWheel w(64, 0);
    file_at(w, s, 0, 10);
    file_at(w, s, 1, 10);
    s[0].expire_tick = 50;             // raised without refiling
    s[1].expire_tick = 10 + 64 * 2 + 5;  // raised beyond two wheel turns
    for (uint32_t t = 1; t < 50; ++t) ASSERT_EQ(advance(w, s, t), Indices{}) << "tick " << t;
    EXPECT_EQ(advance(w, s, 50), Indices{0});
    // Raised again while it waits in its new slot.
    s[1].expire_tick = 500;
    EXPECT_EQ(advance(w, s, 143), Indices{});
    EXPECT_EQ(advance(w, s, 499), Indices{});
    EXPECT_EQ(advance(w, s, 500), Indices{1});
}

TEST(TimerWheelTest, LaterExpirySetLazilyIsHonouredAcrossABigJump) {
    Sessions s(1);
    TimerWheel w(64, 0);
    file_at(w, s, 0, 10);
    s[0].expire_tick = 1000;
    EXPECT_EQ(advance(w, s, 999), Indices{});
    EXPECT_EQ(advance(w, s, 1000), Indices{0});
}

TEST(TimerWheelTest, RefileIfEarlierMovesAnEarlierExpiryForward) {
    Sessions s(3);
    TimerWheel w(64, 0);
    file_at(w, s, 0, 1000);
    EXPECT_EQ(s[0].timer_filed_tick, 1000u);
    s[0].expire_tick = 20;
    w.refile_if_earlier(s.data(), 0);
    EXPECT_EQ(s[0].timer_filed_tick, 20u);

    // A later expiry is left where it is (it is honoured lazily).
    file_at(w, s, 1, 30);
    s[1].expire_tick = 40;
    w.refile_if_earlier(s.data(), 1);
    EXPECT_EQ(s[1].timer_filed_tick, 30u);

    for (uint32_t t = 1; t < 20; ++t) ASSERT_EQ(advance(w, s, t), Indices{}) << "tick " << t;
    EXPECT_EQ(advance(w, s, 20), Indices{0});
    EXPECT_EQ(advance(w, s, 39), Indices{});
    EXPECT_EQ(advance(w, s, 40), Indices{1});
    // Nothing of session 0 stayed behind in its old slot.
    EXPECT_EQ(advance(w, s, 2000), Indices{});

    // Lowered below the current tick: due at the next advance.
    file_at(w, s, 2, 2500);
    s[2].expire_tick = 1500;
    w.refile_if_earlier(s.data(), 2);
    EXPECT_EQ(advance(w, s, 2001), Indices{2});
}

TEST(TimerWheelTest, UnfiledSessionNeverExpires) {
    // Five sessions in one slot: unfile the head, the tail and one in the middle.
    Sessions s(5);
    TimerWheel w(16, 0);
    for (uint32_t i = 0; i < 5; ++i) file_at(w, s, i, 7);
    // file() pushes at the head: the list is 4 3 2 1 0.
    w.unfile(s.data(), 4);
    w.unfile(s.data(), 0);
    w.unfile(s.data(), 2);
    EXPECT_EQ(s[2].timer_prev, kNoIndex);
    EXPECT_EQ(s[2].timer_next, kNoIndex);
    EXPECT_EQ(advance(w, s, 7), (Indices{1, 3}));
    for (uint32_t t = 8; t < 200; ++t) ASSERT_EQ(advance(w, s, t), Indices{}) << "tick " << t;

    // The only session of its slot.
    Sessions lone(2);
    TimerWheel w2(16, 0);
    file_at(w2, lone, 0, 5);
    file_at(w2, lone, 1, 6);
    w2.unfile(lone.data(), 0);
    EXPECT_EQ(advance(w2, lone, 100), Indices{1});
}

TEST(TimerWheelTest, TickCounterWrapsAround) {
    Sessions s(3);
    const uint32_t start = 0xffffffffu - 20;
    TimerWheel w(32, start);
    file_at(w, s, 0, start + 10);
    file_at(w, s, 1, start + 30);  // past 2^32: 9
    file_at(w, s, 2, start + 100);
    EXPECT_EQ(advance(w, s, start + 9), Indices{});
    EXPECT_EQ(advance(w, s, start + 10), Indices{0});
    EXPECT_EQ(advance(w, s, start + 29), Indices{});
    EXPECT_EQ(advance(w, s, start + 30), Indices{1});
    EXPECT_EQ(w.last_tick(), 9u);
    EXPECT_EQ(advance(w, s, start + 99), Indices{});
    EXPECT_EQ(advance(w, s, start + 100), Indices{2});
}

TEST(TimerWheelTest, RandomSessionsMatchAModel) {
    constexpr uint32_t kN = 2000;
    Sessions s(kN);
    TimerWheel w(256, 0);
    std::mt19937 rng(2024);
    auto rand = [&](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); };
    std::map<uint32_t, uint32_t> filed;  // index -> expire tick
    std::vector<uint32_t> idle;
    for (uint32_t i = 0; i < kN; ++i) idle.push_back(i);
    uint32_t now = 0;
    size_t expired_total = 0;

    auto pick_filed = [&]() {
        auto it = filed.begin();
        std::advance(it, rand(0, static_cast<uint32_t>(filed.size() - 1)));
        return it;
    };
    for (int op = 0; op < 30000; ++op) {
        const uint32_t what = rand(0, 99);
        if (what < 40 && !idle.empty()) {  // new session
            size_t pos = rand(0, static_cast<uint32_t>(idle.size() - 1));
            uint32_t idx = idle[pos];
            idle[pos] = idle.back();
            idle.pop_back();
            uint32_t expire = now + rand(0, 2000);
            file_at(w, s, idx, expire);
            filed[idx] = expire;
        } else if (what < 55 && !filed.empty()) {  // later expiry, set lazily
            auto it = pick_filed();
            it->second += rand(1, 1500);
            s[it->first].expire_tick = it->second;
        } else if (what < 65 && !filed.empty()) {  // earlier expiry, refiled
            auto it = pick_filed();
            it->second = now + rand(0, 100);
            s[it->first].expire_tick = it->second;
            w.refile_if_earlier(s.data(), it->first);
        } else if (what < 72 && !filed.empty()) {  // closed before its time
            auto it = pick_filed();
            w.unfile(s.data(), it->first);
            idle.push_back(it->first);
            filed.erase(it);
        } else {  // time passes, now and then by more than a wheel turn
            now += what < 97 ? rand(1, 20) : rand(200, 3000);
            Indices want;
            for (const auto& [idx, expire] : filed) {
                if (expire <= now) want.push_back(idx);
            }
            ASSERT_EQ(advance(w, s, now), want) << "op " << op << ", tick " << now;
            for (uint32_t idx : want) {
                filed.erase(idx);
                idle.push_back(idx);
            }
            expired_total += want.size();
        }
    }
    now += 100000;
    Indices rest;
    for (const auto& [idx, expire] : filed) rest.push_back(idx);
    EXPECT_EQ(advance(w, s, now), rest);
    EXPECT_GT(expired_total, 5000u);
}

// Many sessions due in one tick: a sweep with a budget expires at most that many, keeps
// its place, and the calls after it expire the rest; none expires before its tick.
TEST(TimerWheelTest, ABudgetBoundsEachSweepAndLaterSweepsFinish) {
    constexpr uint32_t kN = 5000, kBudget = 1000;
    Sessions s(kN);
    TimerWheel w(64, 0);
    for (uint32_t i = 0; i < kN; ++i) file_at(w, s, i, i < 4000 ? 10 : 11);
    Indices got;
    auto sweep = [&](uint32_t now) {
        uint32_t n = w.advance(s.data(), now, [&](uint32_t idx) { got.push_back(idx); }, kBudget);
        EXPECT_LE(n, kBudget);
        return n;
    };
    EXPECT_EQ(sweep(9), 0u);
    EXPECT_EQ(sweep(10), kBudget);
    EXPECT_TRUE(w.behind());
    for (uint32_t idx : got) ASSERT_LT(idx, 4000u) << "expired before its tick";
    EXPECT_EQ(sweep(10), kBudget);  // the same tick again: the work goes on
    EXPECT_EQ(sweep(10), kBudget);
    EXPECT_EQ(sweep(10), kBudget);
    EXPECT_EQ(sweep(10), 0u);
    EXPECT_FALSE(w.behind());
    EXPECT_EQ(got.size(), 4000u);
    for (uint32_t idx : got) ASSERT_LT(idx, 4000u) << "expired before its tick";
    EXPECT_EQ(sweep(11), kBudget);
    for (int k = 0; k < 3 && w.behind(); ++k) sweep(11);
    std::sort(got.begin(), got.end());
    Indices all(kN);
    for (uint32_t i = 0; i < kN; ++i) all[i] = i;
    EXPECT_EQ(got, all);
}

// The random model again with a small budget: each sweep expires only due sessions, at
// most the budget, and a sweep to a new tick that is not behind leaves nothing due;
// sessions of the carried rest may be refiled or closed meanwhile.
TEST(TimerWheelTest, RandomSessionsWithABudgetMatchAModel) {
    constexpr uint32_t kN = 2000, kBudget = 7;
    Sessions s(kN);
    TimerWheel w(256, 0);
    std::mt19937 rng(7);
    auto rand = [&](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); };
    std::map<uint32_t, uint32_t> filed;  // index -> expire tick
    std::vector<uint32_t> idle;
    for (uint32_t i = 0; i < kN; ++i) idle.push_back(i);
    uint32_t now = 0;
    size_t deferred = 0;
    auto pick_filed = [&]() {
        auto it = filed.begin();
        std::advance(it, rand(0, static_cast<uint32_t>(filed.size() - 1)));
        return it;
    };
    for (int op = 0; op < 30000; ++op) {
        const uint32_t what = rand(0, 99);
        if (what < 40 && !idle.empty()) {
            size_t pos = rand(0, static_cast<uint32_t>(idle.size() - 1));
            uint32_t idx = idle[pos];
            idle[pos] = idle.back();
            idle.pop_back();
            uint32_t expire = now + rand(0, 200);
            file_at(w, s, idx, expire);
            filed[idx] = expire;
        } else if (what < 55 && !filed.empty()) {
            auto it = pick_filed();
            it->second = std::max(it->second, now) + rand(1, 150);
            s[it->first].expire_tick = it->second;
        } else if (what < 65 && !filed.empty()) {
            auto it = pick_filed();
            it->second = now + rand(0, 10);
            s[it->first].expire_tick = it->second;
            w.refile_if_earlier(s.data(), it->first);
        } else if (what < 72 && !filed.empty()) {
            auto it = pick_filed();
            w.unfile(s.data(), it->first);
            idle.push_back(it->first);
            filed.erase(it);
        } else {
            // Time stands still while the wheel is behind (as a worker calls again at once).
            const bool moved = !w.behind();
            if (moved) now += what < 97 ? rand(1, 5) : rand(200, 600);
            Indices got;
            uint32_t n = w.advance(s.data(), now, [&](uint32_t idx) { got.push_back(idx); }, kBudget);
            ASSERT_EQ(n, got.size());
            ASSERT_LE(n, kBudget);
            for (uint32_t idx : got) {
                auto it = filed.find(idx);
                ASSERT_NE(it, filed.end()) << "op " << op << ": expired twice or never filed";
                ASSERT_LE(it->second, now) << "op " << op << ": expired before its tick";
                filed.erase(it);
                idle.push_back(idx);
            }
            if (w.behind()) {
                ++deferred;
            } else if (moved) {
                for (const auto& [idx, expire] : filed) ASSERT_GT(expire, now) << "op " << op << ": due, not expired";
            }
        }
    }
    EXPECT_GT(deferred, 100u);
}

}  // namespace
}  // namespace dplb::core
