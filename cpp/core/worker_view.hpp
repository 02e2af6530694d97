// WorkerView: what a worker may read of its engine. Fixed at start (config, routes,
// local-address owners) or published by the control side for lock-free reading (the
// service snapshot pointer, the neighbour table). Workers hold it by const reference;
// only the Engine that owns it writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/engine_config.hpp"
#include "core/flow_key.hpp"
#include "core/routing.hpp"
#include "core/service_table.hpp"

namespace dplb::core {

class WorkerView {
public:
    // Throws std::invalid_argument naming what is wrong in the ports' local addresses.
    explicit WorkerView(const EngineConfig& config);

    const EngineConfig& config() const { return config_; }
    uint32_t worker_count() const { return config_.workers; }
    // The service snapshot in force: read once per burst, never kept past it.
    const ServiceTable* services() const { return current_.load(std::memory_order_acquire); }
    const RouteTable& routes() const { return routes_; }
    const NeighbourTable& neighbours() const { return neighbours_; }
    const MacAddress& port_mac(uint8_t port) const { return config_.ports[port].mac; }

    // The worker that owns an inbound flow: a Toeplitz hash over the worker count.
    uint32_t inbound_owner(const FlowKey& key) const;
    // Owner of a local address, or -1.
    int32_t local_address_owner(const IpAddress& a) const;

private:
    friend class Engine;  // the one writer: snapshots, neighbours, the services config
    struct LocalOwner {
        IpAddress address;
        uint16_t worker;
        uint16_t index;  // in the worker's local addresses
    };
    EngineConfig config_;
    RouteTable routes_;
    NeighbourTable neighbours_;
    std::vector<LocalOwner> local_owners_;
    std::atomic<const ServiceTable*> current_{nullptr};
};

}  // namespace dplb::core
