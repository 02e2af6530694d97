// PortPool: busy ports kept per (local address, real endpoint) in bounded hash tables,
// and a walk over the range tied to the wall clock.
//
// Why per real: a port is busy only toward the reals that hold it (a session, or the
// real's TIME_WAIT after it closed first), so the same port serves every other real.
// Only what is busy is stored: a flow record per (laddr, real) with a busy port, a slot
// per busy (flow, port) and a FIFO of holds (a hold lasts a fixed hold_ns, so the holds
// end in the order they began). Nothing is allocated per real up front; the tables are
// zero pages until used (calloc), bounded by the worker's session capacity plus
// max_holds.
//
// Which port: RFC 6056 algorithm 4 (double hash): the port at walk position v toward a
// real is first + (F(laddr, real) + v) % range, with v kept in a small fixed table of
// cursors indexed by another hash of (laddr, real). The cursor never falls behind the
// wall clock: v >= unix_time / (hold / range), one lap of the range per hold time. A
// node within its sizing rule (each real given at most range ports per hold time) walks
// at that pace, so a port comes back toward a real no sooner than a hold time after it
// was last handed out. That holds across a restart too, without a state file: a new run
// begins at the clock's position, which is where the previous run would have gone on,
// so it does not begin with the ports the previous run left in the reals' TIME_WAIT.
// What it does not cover is said in the README (a previous run that ran ahead of the
// clock, or long connections).
#include "core/port_pool.hpp"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace dplb::core {

struct PortPool::Flow {
    FlowKey key;     // src: the real, src_port: its port, dst_port: the laddr index
    uint64_t hash;
    uint32_t busy;   // ports in use or held toward this real
    uint32_t next_free;
};

struct PortPool::BusySlot {
    uint64_t key;    // flow id << 16 | port; 0: empty
    uint64_t until;  // kInUse, or the end of the hold
};

struct PortPool::Hold {
    uint32_t flow;
    uint16_t port;
    uint16_t pad;
    uint64_t until;
};

struct PortPool::LaddrUse {
    std::atomic<uint32_t> in_use{0};
    std::atomic<uint32_t> resting{0};
    std::atomic<uint32_t> busiest{0};
    uint32_t max = 0;                  // worker only: the highest busy count of a flow
    std::vector<uint32_t> flows_with;  // [n]: flows of this laddr with n busy ports
};

namespace {

constexpr uint64_t kInUse = ~0ULL;
constexpr uint64_t kNone = ~0ULL;

uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

uint64_t pow2_at_least(uint64_t n) {
    uint64_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

template <class T>
T* zeroed(uint64_t n) {
    void* p = std::calloc(n, sizeof(T));  // large: fresh zero pages, touched on use
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
}

// Backward-shift deletion of slot `i` in a linear-probing table: later entries of the
// same run move up so that no tombstone is needed.
template <class IsEmpty, class Home, class Move, class Clear>
void erase_shift(uint64_t i, uint64_t mask, IsEmpty is_empty, Home home, Move move, Clear clear) {
    for (uint64_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (is_empty(j)) break;
        const uint64_t k = home(j);
        // j's entry may fill the hole at i unless its home lies cyclically in (i, j].
        const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            move(i, j);
            i = j;
        }
    }
    clear(i);
}

FlowKey flow_key(uint32_t laddr, const IpAddress& real, uint16_t rport) {
    FlowKey k;
    k.src = real;
    k.src_port = rport;
    k.dst_port = static_cast<uint16_t>(laddr);
    return k;
}

}  // namespace

PortPool::PortPool(const PortPoolConfig& c)
    : first_(c.first),
      range_(static_cast<uint32_t>(c.last) - c.first + 1),
      hold_ns_(c.hold_ns),
      epoch_ns_(c.clock_epoch_ns),
      laddr_count_(c.local_addresses) {
    if (c.last < c.first) throw std::invalid_argument("PortPool: last port below first");
    if (c.local_addresses == 0) throw std::invalid_argument("PortPool: no local address");
    ns_per_port_ = hold_ns_ == 0 ? 0 : std::max<uint64_t>(1, hold_ns_ / range_);
    hold_capacity_ = hold_ns_ == 0 ? 0 : std::max<uint32_t>(1, c.max_holds);
    busy_capacity_ = uint64_t(std::max<uint32_t>(1, c.max_in_use)) + hold_capacity_;
    flow_capacity_ = static_cast<uint32_t>(std::min<uint64_t>(busy_capacity_, 0xffffffffULL - 1));
    busy_mask_ = pow2_at_least(2 * busy_capacity_) - 1;
    flow_mask_ = pow2_at_least(2 * uint64_t(flow_capacity_)) - 1;
    try {
        busy_ = zeroed<BusySlot>(busy_mask_ + 1);
        flows_ = zeroed<Flow>(flow_capacity_);
        flow_index_ = zeroed<uint32_t>(flow_mask_ + 1);
        if (hold_capacity_ > 0) holds_ = zeroed<Hold>(hold_capacity_);
    } catch (...) {
        std::free(busy_);
        std::free(flows_);
        std::free(flow_index_);
        throw;
    }
    cursors_.assign(kCursors, 0);
    laddrs_ = std::make_unique<LaddrUse[]>(laddr_count_);
    for (uint32_t i = 0; i < laddr_count_; ++i) laddrs_[i].flows_with.assign(range_ + 1, 0);
}

PortPool::~PortPool() {
    std::free(busy_);
    std::free(flows_);
    std::free(flow_index_);
    std::free(holds_);
}

size_t PortPool::reserved_bytes() const {
    return (busy_mask_ + 1) * sizeof(BusySlot) + size_t(flow_capacity_) * sizeof(Flow) +
           (flow_mask_ + 1) * sizeof(uint32_t) + size_t(hold_capacity_) * sizeof(Hold) +
           kCursors * sizeof(uint64_t) + laddr_count_ * (sizeof(LaddrUse) + (range_ + 1) * sizeof(uint32_t));
}

PortPool::Use PortPool::use(uint32_t laddr) const {
    const LaddrUse& u = laddrs_[laddr];
    return Use{u.in_use.load(std::memory_order_relaxed), u.resting.load(std::memory_order_relaxed),
               u.busiest.load(std::memory_order_relaxed)};
}

// -- flows -----------------------------------------------------------------------------

PortPool::Flow* PortPool::find_flow(const FlowKey& key, uint64_t hash, uint64_t* slot_out) {
    for (uint64_t i = hash & flow_mask_;; i = (i + 1) & flow_mask_) {
        const uint32_t id = flow_index_[i];
        if (id == 0) {
            if (slot_out != nullptr) *slot_out = i;
            return nullptr;
        }
        Flow& f = flows_[id - 1];
        if (f.hash == hash && f.key == key) return &f;
    }
}

PortPool::Flow* PortPool::add_flow(const FlowKey& key, uint64_t hash, uint64_t slot) {
    uint32_t id;
    if (flow_free_ != 0) {
        id = flow_free_;
        flow_free_ = flows_[id - 1].next_free;
    } else if (flows_used_ < flow_capacity_) {
        id = ++flows_used_;
    } else {
        return nullptr;
    }
    Flow& f = flows_[id - 1];
    f.key = key;
    f.hash = hash;
    f.busy = 0;
    f.next_free = 0;
    flow_index_[slot] = id;
    return &f;
}

void PortPool::erase_flow(Flow& flow) {
    const uint32_t id = static_cast<uint32_t>(&flow - flows_) + 1;
    uint64_t i = flow.hash & flow_mask_;
    while (flow_index_[i] != id) i = (i + 1) & flow_mask_;
    erase_shift(
        i, flow_mask_, [this](uint64_t j) { return flow_index_[j] == 0; },
        [this](uint64_t j) { return flows_[flow_index_[j] - 1].hash & flow_mask_; },
        [this](uint64_t to, uint64_t from) { flow_index_[to] = flow_index_[from]; },
        [this](uint64_t j) { flow_index_[j] = 0; });
    flow.next_free = flow_free_;
    flow_free_ = id;
}

// One more (or one fewer) busy port toward `flow`: keeps the laddr's count of flows by
// busy ports, so its busiest real is known without a walk (counts move by one).
void PortPool::count_busy(Flow& flow, bool more) {
    LaddrUse& u = laddrs_[flow.key.dst_port];
    const uint32_t before = flow.busy;
    const uint32_t after = more ? before + 1 : before - 1;
    if (before > 0) --u.flows_with[before];
    if (after > 0) ++u.flows_with[after];
    flow.busy = after;
    if (after > u.max) {
        u.max = after;
    } else if (before == u.max && u.flows_with[before] == 0) {
        u.max = after;
    }
    u.busiest.store(u.max, std::memory_order_relaxed);
    if (after == 0) erase_flow(flow);
}

// -- busy ports ------------------------------------------------------------------------

uint64_t PortPool::find_busy(uint64_t key) const {
    for (uint64_t i = mix(key) & busy_mask_;; i = (i + 1) & busy_mask_) {
        if (busy_[i].key == key) return i;
        if (busy_[i].key == 0) return kNone;
    }
}

void PortPool::insert_busy(uint64_t key, uint64_t until) {
    uint64_t i = mix(key) & busy_mask_;
    while (busy_[i].key != 0) i = (i + 1) & busy_mask_;
    busy_[i] = BusySlot{key, until};
    ++busy_count_;
}

void PortPool::erase_busy(uint64_t slot) {
    erase_shift(
        slot, busy_mask_, [this](uint64_t j) { return busy_[j].key == 0; },
        [this](uint64_t j) { return mix(busy_[j].key) & busy_mask_; },
        [this](uint64_t to, uint64_t from) { busy_[to] = busy_[from]; }, [this](uint64_t j) { busy_[j] = {}; });
    --busy_count_;
}

// A hold from the FIFO: ends it unless its port was taken again meanwhile (acquire reuses
// a due hold in place) or it ended already; the end time tells them apart, as holds of
// one (flow, port) end strictly later each time.
void PortPool::end_hold(const Hold& h) {
    const uint64_t slot = find_busy(uint64_t(h.flow) << 16 | h.port);
    if (slot == kNone || busy_[slot].until != h.until) return;
    erase_busy(slot);
    Flow& flow = flows_[h.flow - 1];
    laddrs_[flow.key.dst_port].resting.fetch_sub(1, std::memory_order_relaxed);
    count_busy(flow, false);
}

uint32_t PortPool::expire_holds(uint64_t now_ns, uint32_t budget) {
    uint32_t n = 0;
    while (hold_count_ > 0 && n < budget && holds_[hold_head_].until <= now_ns) {
        end_hold(holds_[hold_head_]);
        if (++hold_head_ == hold_capacity_) hold_head_ = 0;
        --hold_count_;
        ++n;
    }
    return n;
}

// -- acquire and release ---------------------------------------------------------------

std::optional<uint16_t> PortPool::acquire(uint32_t laddr, const IpAddress& real, uint16_t rport, uint64_t now_ns) {
    const FlowKey key = flow_key(laddr, real, rport);
    const uint64_t hash = hash_key(key);
    uint64_t slot = 0;
    Flow* flow = find_flow(key, hash, &slot);
    if (flow == nullptr) {
        if (busy_count_ >= busy_capacity_) return std::nullopt;
        flow = add_flow(key, hash, slot);
        if (flow == nullptr) return std::nullopt;
    } else if (flow->busy >= range_) {
        // Every port busy toward this real, unless holds are due that the clock has not
        // ended yet (ending them may move the flow's index slot, not the flow).
        expire_holds(now_ns, kMaxProbes);
        if (flow->busy == 0 || flow->busy >= range_) {
            if (flow->busy == 0) return acquire(laddr, real, rport, now_ns);  // erased: anew
            return std::nullopt;
        }
    }
    const uint32_t id = static_cast<uint32_t>(flow - flows_) + 1;
    LaddrUse& u = laddrs_[laddr];
    uint64_t& cursor = cursors_[(hash >> 40) & (kCursors - 1)];
    uint64_t v = cursor;
    if (ns_per_port_ != 0) v = std::max(v, (epoch_ns_ + now_ns) / ns_per_port_);
    const uint32_t offset = static_cast<uint32_t>(hash % range_);
    std::optional<uint16_t> found;
    for (uint32_t probe = 0; probe < kMaxProbes && !found; ++probe, ++v) {
        const uint16_t port = static_cast<uint16_t>(first_ + (offset + v) % range_);
        const uint64_t bkey = uint64_t(id) << 16 | port;
        const uint64_t b = find_busy(bkey);
        if (b == kNone) {
            if (busy_count_ >= busy_capacity_) break;
            insert_busy(bkey, kInUse);
            count_busy(*flow, true);
            found = port;
        } else if (busy_[b].until != kInUse && busy_[b].until <= now_ns) {
            // Its hold is over but still in the FIFO: taken in place (end_hold skips it).
            busy_[b].until = kInUse;
            u.resting.fetch_sub(1, std::memory_order_relaxed);
            found = port;
        }
    }
    cursor = v;
    if (!found) {
        if (flow->busy == 0) erase_flow(*flow);
        return std::nullopt;
    }
    u.in_use.fetch_add(1, std::memory_order_relaxed);
    return found;
}

void PortPool::release(uint32_t laddr, const IpAddress& real, uint16_t rport, uint16_t lport, uint64_t now_ns,
                       uint64_t hold_until_ns) {
    const bool hold = hold_capacity_ > 0 && hold_until_ns > now_ns;
    if (hold && hold_count_ == hold_capacity_) [[unlikely]] {
        // Full: the oldest hold ends early (counted), before this one's slot is looked up
        // (ending it may move slots).
        end_hold(holds_[hold_head_]);
        if (++hold_head_ == hold_capacity_) hold_head_ = 0;
        --hold_count_;
        holds_cut_.fetch_add(1, std::memory_order_relaxed);
    }
    const FlowKey key = flow_key(laddr, real, rport);
    Flow* flow = find_flow(key, hash_key(key), nullptr);
    assert(flow != nullptr);
    if (flow == nullptr) [[unlikely]] return;
    const uint32_t id = static_cast<uint32_t>(flow - flows_) + 1;
    const uint64_t slot = find_busy(uint64_t(id) << 16 | lport);
    assert(slot != kNone && busy_[slot].until == kInUse);
    if (slot == kNone || busy_[slot].until != kInUse) [[unlikely]] return;
    LaddrUse& u = laddrs_[laddr];
    u.in_use.fetch_sub(1, std::memory_order_relaxed);
    if (hold) {
        busy_[slot].until = hold_until_ns;
        uint32_t tail = hold_head_ + hold_count_;
        if (tail >= hold_capacity_) tail -= hold_capacity_;
        holds_[tail] = Hold{id, lport, 0, hold_until_ns};
        ++hold_count_;
        u.resting.fetch_add(1, std::memory_order_relaxed);
    } else {
        erase_busy(slot);
        count_busy(*flow, false);
    }
}

}  // namespace dplb::core
