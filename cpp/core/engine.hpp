// Engine: the control side of the forwarding of DESIGN section 3. It owns the workers
// and what they share read-only (WorkerView: the service snapshot, routes, neighbours,
// local-address owners) and is what the runtime and the Python harness drive.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/engine_config.hpp"
#include "core/worker.hpp"
#include "core/worker_view.hpp"

namespace dplb::core {

class Engine {
public:
    // Throws std::invalid_argument naming what is wrong.
    explicit Engine(const EngineConfig& config);
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
    // and service counter slots stay stable for the same (VIP, port, protocol, real).
    void apply_services(const std::vector<ServiceConfig>& services);
    const ServiceTable& services() const { return *view_.services(); }
    // Frees snapshots no worker can still be reading.
    void reclaim();

    // Asks the worker that owns the inbound (client -> VIP) flow to remove its session,
    // through that worker's command ring: the session is gone once the worker has
    // drained its ring (its next burst or clock tick). False when the ring is full.
    bool reset_session(const FlowKey& inbound);

    NeighbourTable& neighbours() { return view_.neighbours_; }
    const RouteTable& routes() const { return view_.routes(); }
    const EngineConfig& config() const { return view_.config(); }
    const MacAddress& port_mac(uint8_t port) const { return view_.port_mac(port); }

private:
    void reclaim_locked();
    uint32_t real_slot_for(uint32_t service_id, const RealConfig& r);
    void build_schedulers(const std::vector<ServiceConfig>& services, std::vector<ServiceEntry>& entries,
                          const std::vector<size_t>& which);
    uint32_t service_id_for(const ServiceConfig& s);

    WorkerView view_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::unique_ptr<ServiceTable>> tables_;  // current and retired snapshots
    uint64_t next_generation_ = 1;
    std::mutex control_mutex_;
    std::mutex command_mutex_;  // one producer at a time on the workers' command rings
    struct KeyHash {
        size_t operator()(const FlowKey& k) const { return hash_key(k); }
    };
    std::unordered_map<FlowKey, uint32_t, KeyHash> service_ids_;
    std::unordered_map<FlowKey, uint32_t, KeyHash> real_slots_;
};

}  // namespace dplb::core
