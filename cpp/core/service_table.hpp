// ServiceTable: the immutable snapshot of services and their reals that workers read
// through one pointer (DESIGN section 6: configuration handed over by generations).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/engine_config.hpp"
#include "core/flow_key.hpp"
#include "core/scheduler.hpp"

namespace dplb::core {

struct RealEntry {
    IpAddress address;
    uint16_t port = 0;
    uint32_t weight = 0;
    uint32_t slot = 0;  // stable index of this real's counters in every worker
};

struct ServiceEntry {
    uint32_t id = 0;  // stable index of this service's per-worker scheduler state
    IpAddress vip;
    uint16_t port = 0;
    uint8_t proto = 0;
    SchedulerKind scheduler_kind = SchedulerKind::wlc;
    ClientAddressMode client_address = ClientAddressMode::none;
    ProxyFromClient proxy_from_client = ProxyFromClient::refuse;
    bool connection_log = false;
    Timeouts timeouts;
    uint32_t maglev_table_size = kDefaultMaglevTableSize;
    std::vector<RealEntry> reals;
    // Immutable once built; a later snapshot shares it when the service's scheduler
    // inputs (kind, table size, reals and weights in order) did not change.
    std::shared_ptr<const Scheduler> scheduler;
};

// Keys services by (VIP, port, protocol) in an open-addressing array.
// A peer's local address and the worker of this node that owns it (session sync: the
// peer's worker w's addresses belong to our worker w).
struct PeerAddressOwner {
    IpAddress address;
    uint16_t worker = 0;
};
using PeerAddressOwners = std::vector<PeerAddressOwner>;

class ServiceTable {
public:
    ServiceTable(std::vector<ServiceEntry> services, uint64_t generation);

    const ServiceEntry* find(const IpAddress& vip, uint16_t port, uint8_t proto) const;
    // True when some service uses `vip` (any port): for ICMP errors and the control path.
    bool is_vip(const IpAddress& a) const;
    const std::vector<ServiceEntry>& services() const { return services_; }
    uint64_t generation() const { return generation_; }

    // Peers' local addresses ride in the snapshot, so that workers read them lock-free
    // and a replaced list is freed as retired snapshots are (Engine::set_peer_local_addresses).
    void set_peer_owners(std::shared_ptr<const PeerAddressOwners> peers) { peers_ = std::move(peers); }
    const std::shared_ptr<const PeerAddressOwners>& peer_owners() const { return peers_; }
    // The worker owning a peer's local address `a`, or -1.
    int32_t peer_address_owner(const IpAddress& a) const {
        if (peers_ == nullptr) return -1;
        for (const PeerAddressOwner& o : *peers_) {
            if (o.address == a) return o.worker;
        }
        return -1;
    }

private:
    std::vector<ServiceEntry> services_;
    std::vector<int32_t> index_;  // -1 empty, else index into services_
    std::vector<IpAddress> vips_;
    uint64_t mask_;
    uint64_t generation_;
    std::shared_ptr<const PeerAddressOwners> peers_;
};

}  // namespace dplb::core
