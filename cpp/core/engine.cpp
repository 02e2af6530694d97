// Engine construction and configuration snapshots; the per-packet code is in worker.cpp.
#include "core/engine.hpp"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <thread>

#include "core/toeplitz.hpp"

namespace dplb::core {
namespace {

FlowKey service_key(const IpAddress& vip, uint16_t port, uint8_t proto) {
    FlowKey k;
    k.dst = vip;
    k.dst_port = port;
    k.proto = proto;
    return k;
}

// The running entry's scheduler can serve `s` unchanged: same kind, table size and
// reals with the same weights in the same order (a scheduler answers with indices).
bool same_scheduler_inputs(const ServiceEntry& running, const ServiceConfig& s) {
    if (running.scheduler_kind != s.scheduler || running.maglev_table_size != s.maglev_table_size ||
        running.reals.size() != s.reals.size()) {
        return false;
    }
    for (size_t i = 0; i < s.reals.size(); ++i) {
        const RealEntry& r = running.reals[i];
        if (!(r.address == s.reals[i].address) || r.port != s.reals[i].port || r.weight != s.reals[i].weight) {
            return false;
        }
    }
    return true;
}

std::string where_service(const ServiceConfig& s) {
    return "service " + s.vip.to_string() + ":" + std::to_string(s.port) + (s.proto == 6 ? "/tcp" : "/udp");
}

}  // namespace

WorkerView::WorkerView(const EngineConfig& config) : config_(config), routes_(config.ports) {
    for (size_t p = 0; p < config_.ports.size(); ++p) {
        const PortConfig& port = config_.ports[p];
        if (!port.local_addresses.empty() && port.local_addresses.size() != config_.workers) {
            throw std::invalid_argument("ports[" + std::to_string(p) +
                                        "].local_addresses: one list per worker is needed");
        }
        for (size_t w = 0; w < port.local_addresses.size(); ++w) {
            for (const IpAddress& a : port.local_addresses[w]) {
                if (local_address_owner(a) >= 0) {
                    throw std::invalid_argument("local address " + a.to_string() + " is listed twice");
                }
                uint16_t index = 0;
                for (const LocalOwner& o : local_owners_) index += o.worker == w;
                local_owners_.push_back({a, static_cast<uint16_t>(w), index});
            }
        }
    }
}

uint32_t WorkerView::inbound_owner(const FlowKey& key) const {
    if (config_.workers == 1) return 0;
    return rss_owner(rss_hash(key), config_.workers);
}

int32_t WorkerView::local_address_owner(const IpAddress& a) const {
    for (const LocalOwner& o : local_owners_) {
        if (o.address == a) return o.worker;
    }
    return -1;
}

// The config is checked before the view is built from it.
static const EngineConfig& checked(const EngineConfig& config) {
    if (config.workers < 1 || config.workers > 128) {
        throw std::invalid_argument("workers: must be between 1 and 128");
    }
    if (config.ports.empty() || config.ports.size() > 32) {
        throw std::invalid_argument("ports: between 1 and 32 ports are needed");
    }
    if (config.sessions_per_worker < 1) throw std::invalid_argument("sessions_per_worker: must be at least 1");
    if (config.local_port_first == 0 || config.local_port_first > config.local_port_last) {
        throw std::invalid_argument("local ports: first must be above 0 and not above last");
    }
    return config;
}

Engine::Engine(const EngineConfig& config) : view_(checked(config)) {
    for (uint32_t w = 0; w < view_.config_.workers; ++w) workers_.push_back(std::make_unique<Worker>(view_, w));
    apply_services(view_.config_.services);
}

Engine::~Engine() = default;

uint32_t Engine::rss_worker(const uint8_t* frame, uint32_t len) const {
    ParsedPacket p = parse_packet(frame, len);
    if (p.status != ParseStatus::ok) return 0;
    return rss_owner(rss_hash(p.key), worker_count());
}

uint32_t Engine::service_id_for(const ServiceConfig& s) {
    FlowKey k = service_key(s.vip, s.port, s.proto);
    if (auto it = service_ids_.find(k); it != service_ids_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(service_ids_.size());
    if (id >= view_.config_.max_services) throw std::invalid_argument("services: more than max_services");
    service_ids_.emplace(k, id);
    return id;
}

uint32_t Engine::real_slot_for(uint32_t service_id, const RealConfig& r) {
    FlowKey k;
    k.src = r.address;
    k.src_port = r.port;
    k.dst_port = static_cast<uint16_t>(service_id);
    k.pad[0] = static_cast<uint8_t>(service_id >> 16);
    k.pad[1] = static_cast<uint8_t>(service_id >> 24);
    if (auto it = real_slots_.find(k); it != real_slots_.end()) return it->second;
    uint32_t slot = static_cast<uint32_t>(real_slots_.size());
    if (slot >= view_.config_.max_reals) throw std::invalid_argument("reals: more than max_reals");
    real_slots_.emplace(k, slot);
    return slot;
}

void Engine::apply_services(const std::vector<ServiceConfig>& services) {
    std::lock_guard lock(control_mutex_);
    // Validate everything before anything is assigned: a refused config changes nothing.
    for (size_t i = 0; i < services.size(); ++i) {
        const ServiceConfig& s = services[i];
        if (s.proto != 6 && s.proto != 17) throw std::invalid_argument(where_service(s) + ": protocol must be tcp or udp");
        for (size_t j = 0; j < i; ++j) {
            const ServiceConfig& o = services[j];
            if (o.vip == s.vip && o.port == s.port && o.proto == s.proto) {
                throw std::invalid_argument(where_service(s) + ": defined twice");
            }
        }
        if (s.reals.size() > kMaxRealsPerService) {
            throw std::invalid_argument(where_service(s) + ": more than " + std::to_string(kMaxRealsPerService) +
                                        " reals");
        }
        for (const RealConfig& r : s.reals) {
            if (r.address.is_v4() != s.vip.is_v4()) {
                throw std::invalid_argument(where_service(s) + ": real " + r.address.to_string() +
                                            " is not of the VIP's address family");
            }
        }
        if (local_address_owner(s.vip) >= 0) {
            throw std::invalid_argument(where_service(s) + ": the VIP is also a local address");
        }
    }
    const ServiceTable* running = view_.services();
    std::vector<ServiceEntry> entries;
    entries.reserve(services.size());
    std::vector<size_t> builds;  // entries whose scheduler must be built anew
    for (const ServiceConfig& s : services) {
        ServiceEntry e;
        e.id = service_id_for(s);
        e.vip = s.vip;
        e.port = s.port;
        e.proto = s.proto;
        e.scheduler_kind = s.scheduler;
        e.client_address = s.client_address;
        e.proxy_from_client = s.proxy_from_client;
        e.connection_log = s.connection_log;
        e.timeouts = s.timeouts;
        e.maglev_table_size = s.maglev_table_size;
        for (const RealConfig& r : s.reals) e.reals.push_back({r.address, r.port, r.weight, real_slot_for(e.id, r)});
        // Unchanged services keep their scheduler: a Maglev table is the costly part of
        // a snapshot, and most changes touch few services.
        const ServiceEntry* before = running ? running->find(s.vip, s.port, s.proto) : nullptr;
        if (before != nullptr && same_scheduler_inputs(*before, s)) {
            e.scheduler = before->scheduler;
        } else {
            builds.push_back(entries.size());
        }
        entries.push_back(std::move(e));
    }
    build_schedulers(services, entries, builds);
    auto table = std::make_unique<ServiceTable>(std::move(entries), next_generation_++);
    view_.current_.store(table.get(), std::memory_order_release);
    tables_.push_back(std::move(table));
    view_.config_.services = services;
    reclaim_locked();
}

// Builds the schedulers of `which` entries (services[i] describes entries[i]), on a few
// threads when there are many: 1,000 Maglev tables of 65,537 entries take seconds on one
// core. Control side only; the workers keep forwarding on the running snapshot meanwhile.
void Engine::build_schedulers(const std::vector<ServiceConfig>& services, std::vector<ServiceEntry>& entries,
                              const std::vector<size_t>& which) {
    auto build = [&](size_t i) {
        const ServiceConfig& s = services[i];
        std::vector<SchedulerReal> weights;
        weights.reserve(s.reals.size());
        for (const RealConfig& r : s.reals) {
            FlowKey identity;
            identity.dst = r.address;
            identity.dst_port = r.port;
            weights.push_back({hash_key(identity), r.weight});
        }
        entries[i].scheduler = make_scheduler(s.scheduler, weights, s.maglev_table_size);
    };
    const size_t threads = std::min<size_t>({which.size() / 16, std::thread::hardware_concurrency(), 8});
    if (threads < 2) {
        for (size_t i : which) build(i);
        return;
    }
    std::atomic<size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto run = [&] {
        for (size_t k = next.fetch_add(1); k < which.size(); k = next.fetch_add(1)) {
            try {
                build(which[k]);
            } catch (...) {
                std::lock_guard guard(failure_mutex);
                if (!failure) failure = std::current_exception();
            }
        }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(run);
    run();
    for (std::thread& t : pool) t.join();
    if (failure) std::rethrow_exception(failure);
}

void Engine::reclaim() {
    std::lock_guard lock(control_mutex_);
    reclaim_locked();
}

void Engine::reclaim_locked() {
    uint64_t oldest_seen = UINT64_MAX;
    for (auto& w : workers_) oldest_seen = std::min(oldest_seen, w->seen_generation());
    const ServiceTable* current = view_.services();
    // The control lcore reads the current table too (for ARP: is this a VIP?) without
    // taking part in the workers' quiescence: the newest retired table is kept one more
    // round, so a read that began just before a swap always finishes on live memory.
    uint64_t newest_retired = 0;
    for (const auto& t : tables_) {
        if (t.get() != current) newest_retired = std::max(newest_retired, t->generation());
    }
    std::erase_if(tables_, [&](const std::unique_ptr<ServiceTable>& t) {
        return t.get() != current && t->generation() < oldest_seen && t->generation() != newest_retired;
    });
}

}  // namespace dplb::core
