// Worker: one worker's share of the full-NAT forwarding of DESIGN section 3. It owns one
// session table, its local ports and its counters, and runs packets to a verdict; of the
// engine it sees only the read-only WorkerView (services, routes, neighbours, owners).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/control_class.hpp"
#include "core/log_record.hpp"
#include "core/packet.hpp"
#include "core/port_pool.hpp"
#include "core/session_table.hpp"
#include "core/sync_record.hpp"
#include "core/thread_check.hpp"
#include "core/timer_wheel.hpp"
#include "core/worker_commands.hpp"
#include "core/worker_stats.hpp"
#include "core/worker_view.hpp"

namespace dplb::core {

inline constexpr uint64_t kTickNs = 10'000'000;  // timer resolution: 10 ms
inline constexpr uint32_t kWheelSlots = 8192;    // 82 s per turn of the wheel
inline constexpr uint32_t kMaxRealsPerService = 4096;
inline constexpr uint32_t kBurst = 32;  // packets handled together (prefetch pipeline)
// Sessions expired at most per clock move: 1M sessions due together would otherwise
// stall the worker ~180 ms in one call. The rest waits for the next move (the worker
// loop moves the clock again at once while expiry_behind()).
inline constexpr uint32_t kExpiryBudget = 1024;
inline constexpr uint32_t kHoldExpiryBudget = 1024;  // port holds ended per clock call at most
inline constexpr uint32_t kInstallBudget = 1024;     // peers' sync records installed per drain at most

enum class Verdict : uint8_t {
    transmit,   // send on `port`
    drop,       // counted under its reason
    hand_over,  // the flow belongs to `worker`: pass it there (software steering)
    control,    // for the control lcore (ARP, ND, traffic to the port's own address)
    resolve,    // ready to send on `port` but for the next hop's MAC: the control side
                // holds it while it resolves the neighbour, then sends it
};

struct Action {
    Verdict verdict = Verdict::drop;
    uint8_t port = 0;
    uint16_t worker = 0;
    ControlClass control = ControlClass::rest;  // with Verdict::control: which ring
};

// Written by its worker only, read by the control side (SingleWriterCounter).
struct RealCounters {
    Counter connections = 0;
    Counter packets_in = 0;   // client -> real
    Counter packets_out = 0;  // real -> client
    Counter bytes_in = 0;
    Counter bytes_out = 0;
    // Passive health (the control side marks a real down past a threshold): client SYNs
    // the real never answered (their session expired in syn_sent), and resets it sent.
    Counter syn_unanswered = 0;
    Counter resets_from_real = 0;
    SingleWriterCounter<uint32_t> active = 0;
    uint32_t pad = 0;
};
static_assert(sizeof(RealCounters) == 64, "one cache line per real and worker");

// A next hop whose MAC a session needs and the neighbour table lacks: the worker asks,
// the control side sends ARP or a neighbour solicitation.
struct NeighbourRequest {
    uint8_t port = 0;
    IpAddress ip;
};

class alignas(64) Worker {
public:
    Worker(const WorkerView& view, uint32_t id);

    // Runs `n` frames to their verdicts, modifying them in place. `handed_in` says they
    // came from another worker's hand-over ring (their owner is this worker).
    void process_burst(PacketView* const* packets, Action* actions, uint32_t n, bool handed_in);
    Action process(PacketView& packet, bool handed_in) {
        PacketView* p = &packet;
        Action a;
        process_burst(&p, &a, 1, handed_in);
        return a;
    }

    // Moves this worker's clock and expires what is due, at most kExpiryBudget sessions
    // (the rest at the next calls). The runtime calls it from the worker's own loop; the
    // harness between packets.
    void set_clock(uint64_t now_ns);
    // Due sessions are left for the next set_clock (the last one reached its budget).
    bool expiry_behind() const { return wheel_.behind(); }

    // Tells the control side that this worker holds no snapshot older than the one in
    // force: called at every poll of the worker's loop, packets or not (and by
    // process_burst and set_clock), so that an idle worker holds no retired snapshot.
    void quiesce() {
        owner_.check("Worker::quiesce: another thread drives this worker");
        seen_generation_.store(view_.services()->generation(), std::memory_order_release);
    }
    // Debug builds check that one thread drives a worker (docs/threads.md); the harness,
    // which drives them from whichever thread calls it, hands them over with this.
    void adopt_calling_thread() { owner_.adopt(); }

    // Carries out what the control side queued for this worker (Engine::reset_session).
    // Called by the worker itself, at the start of a burst and when its clock moves.
    uint32_t drain_commands() {
        if (commands_.empty()) [[likely]] return 0;
        return run_commands();
    }

    // Installs what the sync thread queued for this worker (Engine::install_synced), at
    // most kInstallBudget records. Called by the worker itself, at the start of a burst
    // and when its clock moves; without sync there is no ring and nothing to check.
    uint32_t drain_installs(const ServiceTable& services) {
        if (install_ring_ == nullptr || install_ring_->empty()) [[likely]] return 0;
        return run_installs(services);
    }
    // The sync thread (one consumer only): the next record of this worker's sessions.
    bool take_sync_record(SyncRecord& out) { return sync_ring_ != nullptr && sync_ring_->pop(out); }
    // Engine::install_synced (one producer at a time, under the engine's sync mutex).
    bool post_install(const SyncRecord& r) { return install_ring_ != nullptr && install_ring_->push(r); }

    uint32_t id() const { return id_; }
    // The newest snapshot generation this worker has seen: older retired ones are free
    // once every worker has passed them (Engine::reclaim).
    uint64_t seen_generation() const { return seen_generation_.load(std::memory_order_acquire); }
    // Control side (one producer at a time: Engine::reset_session holds its lock).
    bool post_command(const WorkerCommand& command) { return commands_.push(command); }
    // Control side: the next request for a neighbour resolution, if any.
    bool take_neighbour_request(NeighbourRequest& out) { return neighbour_requests_.pop(out); }
    // The logger thread: the next connection-log record, if any (one consumer only).
    bool take_log_record(LogRecord& out) { return log_ring_.pop(out); }
    const WorkerStats& stats() const { return stats_; }
    const SessionTable& sessions() const { return table_; }
    const std::vector<RealCounters>& real_counters() const { return reals_; }
    // Control side (Engine::recycle_slots): this worker's sessions on real slot `slot`, as
    // the worker last published them (release), and the zeroing of a slot that no
    // snapshot names and no session uses, for its next owner.
    uint32_t active_sessions_of(uint32_t slot) const {
        return reals_[slot].active.load_acquire();
    }
    void reset_real_counters(uint32_t slot) { reals_[slot] = RealCounters{}; }
    uint64_t now_ns() const { return now_ns_; }
    uint32_t now_tick() const { return now_tick_; }

    struct LocalAddress {
        IpAddress address;
        uint8_t port;
    };
    const std::vector<LocalAddress>& local_addresses() const { return laddrs_; }
    // The ports of those addresses (indexed as local_addresses()); nullptr without any.
    const PortPool* port_pool() const { return pool_.get(); }

private:
    Action process_one(PacketView& pkt, const ParsedPacket& p, const ServiceTable& services, bool handed_in,
                       uint64_t hash);
    // `ref` is the session found by the packet's tuple, if any; `svc` its service when the
    // caller looked it up already (else nullptr).
    Action inbound(PacketView& pkt, const ParsedPacket& p, const ServiceEntry* svc, const ServiceTable& services,
                   uint64_t hash, SessionRef ref);
    Action outbound(PacketView& pkt, const ParsedPacket& p, SessionRef ref);
    Action icmp_error(PacketView& pkt, const ParsedPacket& p, const ServiceTable& services, bool handed_in);
    SessionRef create_session(const ParsedPacket& p, const ServiceEntry& svc, uint64_t hash, DropReason& why);
    bool resolve_macs(Session& s);
    void update_tcp_state(uint32_t index, Session& s, uint8_t flags, Direction dir);
    // Sequence tracking of a TCP segment of `s` (tcp_track.hpp), before anything else
    // changes the session: the flags that may change its state (a RST or FIN outside the
    // window does not), or -1 when it is dropped (a RST outside the receiver's window).
    int track_tcp(Session& s, const TcpSegment& seg, Direction dir);
    // Same state, so the same timeout from now: the wheel refiles it lazily.
    void set_expiry(Session& s) { s.expire_tick = now_tick_ + s.timeout_ticks; }
    void expire(uint32_t index, CloseReason why = CloseReason::expired);
    // A real's active count, written with release: the control side reads it to know
    // when the real's slot is unused (active_sessions_of).
    static void add_active(RealCounters& rc, int32_t by) {
        rc.active.add_release(by);
    }
    // Connection log: pushes a record of `s` to the log ring, or counts it dropped when
    // the ring is full (the logger is behind); never waits. Cold: only sessions of
    // services with connection_log come here.
    [[gnu::noinline, gnu::cold]] void log_session(const Session& s, LogKind kind, CloseReason why);
    Action drop(DropReason r) {
        stats_.drop(r);
        return Action{Verdict::drop, 0, 0};
    }
    Action transmit(PacketView& pkt, uint8_t port);
    // For the control side, classified (ControlClass); the rest is rate-limited.
    Action to_control(const PacketView& pkt, const ParsedPacket& p);
    // The packet is rewritten but its next hop's MAC is unknown: hand it to be held.
    Action await_neighbour(PacketView& pkt, uint8_t port);
    uint32_t run_commands();                   // worker_commands.cpp
    bool reset_session(const FlowKey& inbound);  // worker_commands.cpp
    // TOA and PROXY protocol (worker_client_address.cpp): the packet path of sessions that
    // carry kSessionClientAddress, apart from the hot path of the others. Out of line and
    // cold on purpose: inlined by LTO, they doubled process_burst and slowed every packet.
    [[gnu::noinline, gnu::cold]] void init_client_address(Session& s, const ServiceEntry& svc);
    [[gnu::noinline, gnu::cold]] Action inbound_client_address(PacketView& pkt, const ParsedPacket& p,
                                                               SessionRef ref);
    [[gnu::noinline, gnu::cold]] Action outbound_client_address(PacketView& pkt, const ParsedPacket& p,
                                                                SessionRef ref);
    Action refuse_connection(PacketView& pkt, ParsedPacket& q, SessionRef ref);
    Action answer_refused(PacketView& pkt, ParsedPacket& q, SessionRef ref, Direction from);
    Action deliver(PacketView& pkt, SessionRef ref, uint8_t tcp_flags, Direction dir);
    // Session sync (worker_sync.cpp), out of line and cold: only with sync on. After each
    // packet of a session: adoption of a peer's copy, then open/update/refresh as due.
    [[gnu::noinline, gnu::cold]] void sync_seen(Session& s);
    // A session is freed: `close` for a pushed one; a peer's copy (adopted or not) gives
    // nothing back to this node's port pool. True when it freed the session itself.
    [[gnu::noinline, gnu::cold]] bool expire_synced(uint32_t index, Session& s);
    void push_sync(Session& s, SyncKind kind);
    uint32_t run_installs(const ServiceTable& services);
    void install_synced(const SyncRecord& r, const ServiceTable& services);

    const WorkerView& view_;
    uint32_t id_;
    uint64_t now_ns_ = 0;
    uint32_t now_tick_ = 0;
    WorkerStats stats_;
    SessionTable table_;
    TimerWheel wheel_;
    std::vector<LocalAddress> laddrs_;
    std::unique_ptr<PortPool> pool_;         // the ports of laddrs_, per (laddr, real)
    std::vector<uint32_t> laddr_cursor_;     // per port: round-robin over its local addresses
    std::vector<uint32_t> service_cursor_;   // per service id: rr/wrr position
    std::vector<RealCounters> reals_;        // per real slot
    std::vector<uint32_t> wlc_active_;       // scratch for wlc: active counts of one service
    TokenBucket rest_bucket_;  // ControlClass::rest frames of this worker
    std::array<ParsedPacket, kBurst> parsed_;  // scratch of process_burst
    // Sessions created in this burst whose outbound key waits to be indexed (its slot
    // prefetched) until the burst's end: SessionTable::insert with defer_outbound.
    struct DeferredIndex {
        uint64_t hash;
        uint32_t index;
    };
    std::array<DeferredIndex, kBurst> deferred_;
    uint32_t deferred_count_ = 0;
    SpscRing<NeighbourRequest, 64> neighbour_requests_;  // to the control side
    std::atomic<uint64_t> seen_generation_{0};
    ThreadOwner owner_;  // debug builds: the one thread driving this worker
    WorkerCommandRing commands_;  // the control side produces, this worker consumes
    LogRing log_ring_;            // this worker produces, the logger thread consumes
    // Session sync: allocated only with EngineConfig::sync_enabled (sync_on_).
    bool sync_on_ = false;
    uint32_t sync_refresh_ticks_ = 0;
    std::unique_ptr<SyncRing> sync_ring_;     // this worker produces, the sync thread consumes
    std::unique_ptr<SyncRing> install_ring_;  // the sync thread produces, this worker consumes
};

// The record of session `s` as a worker whose clock reads `now_tick` pushes it
// (worker_sync.cpp; Engine::export_sessions too).
SyncRecord sync_record_of(const Session& s, SyncKind kind, uint32_t now_tick, uint16_t worker);

}  // namespace dplb::core
