// Engine: the control side of the forwarding of DESIGN section 3. It owns the workers
// and what they share read-only (WorkerView: the service snapshot, routes, neighbours,
// local-address owners) and is what the runtime and the Python harness drive.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/engine_config.hpp"
#include "core/thread_check.hpp"
#include "core/worker.hpp"
#include "core/worker_view.hpp"

namespace dplb::core {

// Runs body(i) for every i in [0, n) and returns when all are done, rethrowing what a
// body threw: how the engine builds a snapshot's schedulers. The host side passes a
// thread pool (host::parallel_for); core itself starts no threads.
using ParallelFor = std::function<void(size_t n, const std::function<void(size_t)>& body)>;

// Session sync refusals found before a record reaches a worker (Engine::install_synced);
// the worker counts the rest in its WorkerStats (sync_refused_*, sync_conflict).
struct SyncInstallCounters {
    std::atomic<uint64_t> queued{0};                 // records passed to their owner worker
    std::atomic<uint64_t> refused_disabled{0};       // sync is off on this node
    std::atomic<uint64_t> refused_owner_mismatch{0};  // inbound owner != owner of its local address
    std::atomic<uint64_t> refused_unknown_local_address{0};  // neither ours nor a known peer's
    std::atomic<uint64_t> refused_ring_full{0};      // the owner's install ring was full
};

// Which thread may call what: docs/threads.md.
class Engine {
public:
    // Throws std::invalid_argument naming what is wrong. `build` runs the scheduler
    // builds of a snapshot (default: one after the other on the calling thread).
    explicit Engine(const EngineConfig& config, ParallelFor build = {});
    ~Engine();

    uint32_t worker_count() const { return static_cast<uint32_t>(workers_.size()); }
    Worker& worker(uint32_t i) { return *workers_[i]; }
    const Worker& worker(uint32_t i) const { return *workers_[i]; }

    // The worker that owns an inbound flow (Toeplitz hash over the worker count) and the
    // one a NIC with RSS would deliver any frame to (used by the harness as "the NIC").
    uint32_t inbound_owner(const FlowKey& key) const { return view_.inbound_owner(key); }
    uint32_t rss_worker(const uint8_t* frame, uint32_t len) const;
    // Owner of a local address, or -1.
    int32_t local_address_owner(const IpAddress& a) const { return view_.local_address_owner(a); }

    // Replaces the services as one snapshot; workers switch at their next burst. Real
    // and service counter slots stay stable for the same (VIP, port, protocol, real)
    // while anything refers to them (a live snapshot, a session), and are recycled after:
    // a recycled real slot's counters start from 0. A refused config changes nothing.
    void apply_services(const std::vector<ServiceConfig>& services);
    // The snapshot in force. Only for the thread applying configs, or where nothing
    // applies concurrently (a single-threaded test); any other reader holds a
    // SnapshotReader (the control lcore, the Python views).
    const ServiceTable& services() const { return *view_.services(); }
    // Frees the snapshots no reader (worker or SnapshotReader) can still be reading and
    // recycles the counter slots nothing refers to any more.
    void reclaim();
    // Snapshots alive: the current one and the retired ones some reader may still hold.
    size_t snapshots_alive();
    // Counter slots held (named by a live snapshot or by a session, or not yet recycled).
    size_t real_slots_in_use();
    size_t service_slots_in_use();

    // Asks the worker that owns the inbound (client -> VIP) flow to remove its session,
    // through that worker's command ring: the session is gone once the worker has
    // drained its ring (its next burst or clock tick). False when the ring is full.
    bool reset_session(const FlowKey& inbound);

    // Session sync (DESIGN section 7; docs/architecture.md "Session sync (engine side)").
    // The sync thread only: queues a peer's record `r` for the worker this node's steering
    // picks (inbound_owner of r.inbound, which must own r.outbound.dst among this node's
    // and its peers' local addresses); false when refused (sync_counters()).
    // `ring_full` (when given) says whether it was refused only because the owner's
    // install ring was full (worth trying again once the worker drained it).
    bool install_synced(const SyncRecord& r, bool* ring_full = nullptr);
    // Full sync, control side: appends to `out` (kind = refresh) the sessions worth
    // syncing of worker `w` (its own and adopted ones: TCP established/closing, UDP) from
    // slot `from` on, at most `max`. Returns the slot to continue from; the table's
    // capacity() when the worker is done. Safe while the worker runs (engine_sync.cpp).
    uint32_t export_sessions(uint32_t w, uint32_t from, uint32_t max, std::vector<SyncRecord>& out) const;
    // A peer's local addresses, per worker index of that peer: its worker w's addresses
    // are owned by our worker w (equal worker counts required, else std::invalid_argument
    // saying both). An empty list removes the peer. Any thread but a worker's.
    void set_peer_local_addresses(uint32_t peer_id, const std::vector<std::vector<IpAddress>>& per_worker);
    const SyncInstallCounters& sync_counters() const { return sync_counters_; }

    NeighbourTable& neighbours() { return view_.neighbours_; }
    const RouteTable& routes() const { return view_.routes(); }
    const EngineConfig& config() const { return view_.config(); }
    const MacAddress& port_mac(uint8_t port) const { return view_.port_mac(port); }

private:
    friend class SnapshotReader;
    struct KeyHash {
        size_t operator()(const FlowKey& k) const { return hash_key(k); }
    };
    using KeySet = std::unordered_set<FlowKey, KeyHash>;
    // Counter slots of services or reals, by key: a slot stays with its key while
    // anything refers to it, then goes back to `free`.
    struct CounterSlots {
        std::unordered_map<FlowKey, uint32_t, KeyHash> by_key;
        std::vector<uint32_t> free;
        uint32_t next = 0;  // slots from here up were never used
        uint32_t limit = 0;
        size_t available() const { return free.size() + (limit - next); }
        uint32_t slot_for(const FlowKey& k);  // the key's slot, taking one if it has none
    };
    static constexpr uint64_t kNotReading = UINT64_MAX;
    // One reader of the snapshot besides the workers (SnapshotReader): the generation of
    // the oldest snapshot it may hold, or kNotReading.
    struct alignas(64) ReaderSlot {
        std::atomic<bool> taken{false};
        std::atomic<uint64_t> seen{kNotReading};
    };
    static constexpr size_t kReaderSlots = 32;
    // The control lock, remembering its holder for the thread checks.
    class ControlLock {
    public:
        explicit ControlLock(Engine& e);
        ~ControlLock();
        ControlLock(const ControlLock&) = delete;
        ControlLock& operator=(const ControlLock&) = delete;

    private:
        Engine& engine_;
    };
    void check_control_locked() const;
    // Frees the snapshots no reader can hold; recycles the slots nothing refers to, but
    // those of `keep` (keys the config being applied names keep slots and counters).
    void free_unread_tables();
    void recycle_slots(const KeySet* keep);
    void build_schedulers(const std::vector<ServiceConfig>& services, std::vector<ServiceEntry>& entries,
                          const std::vector<size_t>& which);

    WorkerView view_;
    ParallelFor build_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::unique_ptr<ServiceTable>> tables_;  // current and retired snapshots
    uint64_t next_generation_ = 1;
    std::mutex control_mutex_;
#ifdef DPLB_THREAD_CHECKS_ENABLED
    std::atomic<const void*> control_holder_{nullptr};
#endif
    std::mutex command_mutex_;  // one producer at a time on the workers' command rings
    mutable std::array<ReaderSlot, kReaderSlots> readers_;
    CounterSlots service_slots_;
    CounterSlots real_slots_;
    // Session sync: peers' local addresses (by peer id, per worker) and the owners list
    // built from them, which every new snapshot carries. Written under the control lock
    // and sync_mutex_; install_synced reads peer_owners_ under sync_mutex_ alone.
    std::map<uint32_t, std::vector<std::vector<IpAddress>>> peers_;
    std::shared_ptr<const PeerAddressOwners> peer_owners_;
    std::mutex sync_mutex_;  // install_synced: one producer at a time on the install rings
    SyncInstallCounters sync_counters_;
};

// A reader of the service snapshot other than a worker (the control lcore, a Python
// view of counters): it holds one of the engine's reader slots, and the snapshot its
// current() returned stays alive until its next current(), release() or its end, however
// many configs are applied meanwhile. One thread uses a reader at a time; lock-free.
class SnapshotReader {
public:
    // Throws std::runtime_error when every reader slot is taken.
    explicit SnapshotReader(const Engine& engine);
    ~SnapshotReader();
    SnapshotReader(const SnapshotReader&) = delete;
    SnapshotReader& operator=(const SnapshotReader&) = delete;

    // The snapshot in force now; what an earlier call returned may be freed from here on.
    const ServiceTable& current();
    // Holds no snapshot until the next current() (a reader going idle for long).
    void release();

private:
    static Engine::ReaderSlot& take_slot(const Engine& engine);
    const Engine& engine_;
    Engine::ReaderSlot& slot_;
};

}  // namespace dplb::core
