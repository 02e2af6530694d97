// Engine construction and configuration snapshots; the per-packet code is in worker.cpp.
#include "core/engine.hpp"

#include <algorithm>
#include <stdexcept>

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

Engine::Engine(const EngineConfig& config, ParallelFor build) : view_(checked(config)), build_(std::move(build)) {
    service_slots_.limit = view_.config_.max_services;
    real_slots_.limit = view_.config_.max_reals;
    for (uint32_t w = 0; w < view_.config_.workers; ++w) workers_.push_back(std::make_unique<Worker>(view_, w));
    apply_services(view_.config_.services);
}

Engine::~Engine() = default;

uint32_t Engine::rss_worker(const uint8_t* frame, uint32_t len) const {
    ParsedPacket p = parse_packet(frame, len);
    if (p.status != ParseStatus::ok) return 0;
    return rss_owner(rss_hash(p.key), worker_count());
}

Engine::ControlLock::ControlLock(Engine& e) : engine_(e) {
    engine_.control_mutex_.lock();
#ifdef DPLB_THREAD_CHECKS_ENABLED
    engine_.control_holder_.store(this_thread_tag(), std::memory_order_relaxed);
#endif
}

Engine::ControlLock::~ControlLock() {
#ifdef DPLB_THREAD_CHECKS_ENABLED
    engine_.control_holder_.store(nullptr, std::memory_order_relaxed);
#endif
    engine_.control_mutex_.unlock();
}

void Engine::check_control_locked() const {
#ifdef DPLB_THREAD_CHECKS_ENABLED
    if (control_holder_.load(std::memory_order_relaxed) != this_thread_tag()) {
        thread_check_failed("Engine: control state used without the control lock");
    }
#endif
}

uint32_t Engine::CounterSlots::slot_for(const FlowKey& k) {
    if (auto it = by_key.find(k); it != by_key.end()) return it->second;
    uint32_t slot;
    if (!free.empty()) {
        slot = free.back();
        free.pop_back();
    } else {
        slot = next++;  // apply_services checked that one is left
    }
    by_key.emplace(k, slot);
    return slot;
}

namespace {

// A real's key: its service's (VIP, port, protocol) and its own address and port; tagged
// apart from a service's key, which has no source.
FlowKey real_key(const ServiceConfig& s, const RealConfig& r) {
    FlowKey k = service_key(s.vip, s.port, s.proto);
    k.src = r.address;
    k.src_port = r.port;
    k.pad[0] = 1;
    return k;
}

void validate(const std::vector<ServiceConfig>& services, const WorkerView& view) {
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
        if (view.local_address_owner(s.vip) >= 0) {
            throw std::invalid_argument(where_service(s) + ": the VIP is also a local address");
        }
    }
}

std::string slots_refused(const char* what, const char* limit_name, size_t limit, size_t wanted, size_t free) {
    return std::string(what) + ": more than " + limit_name + " (" + std::to_string(limit) + " counter slots; " +
           std::to_string(wanted) + " new ones needed, " + std::to_string(free) +
           " free: the others are held by this config, by snapshots still read or by open sessions)";
}

}  // namespace

void Engine::apply_services(const std::vector<ServiceConfig>& services) {
    ControlLock lock(*this);
    // Validate everything before anything is assigned: a refused config changes nothing
    // and takes no slot.
    validate(services, view_);
    KeySet keep;
    for (const ServiceConfig& s : services) {
        keep.insert(service_key(s.vip, s.port, s.proto));
        for (const RealConfig& r : s.reals) keep.insert(real_key(s, r));
    }
    free_unread_tables();
    recycle_slots(&keep);
    size_t new_services = 0, new_reals = 0;
    for (const FlowKey& k : keep) {
        const bool real = k.pad[0] == 1;
        const CounterSlots& slots = real ? real_slots_ : service_slots_;
        if (!slots.by_key.contains(k)) ++(real ? new_reals : new_services);
    }
    if (new_services > service_slots_.available()) {
        throw std::invalid_argument(slots_refused("services", "max_services", service_slots_.limit, new_services,
                                                  service_slots_.available()));
    }
    if (new_reals > real_slots_.available()) {
        throw std::invalid_argument(
            slots_refused("reals", "max_reals", real_slots_.limit, new_reals, real_slots_.available()));
    }
    const ServiceTable* running = view_.services();
    std::vector<ServiceEntry> entries;
    entries.reserve(services.size());
    std::vector<size_t> builds;  // entries whose scheduler must be built anew
    for (const ServiceConfig& s : services) {
        ServiceEntry e;
        e.id = service_slots_.slot_for(service_key(s.vip, s.port, s.proto));
        e.vip = s.vip;
        e.port = s.port;
        e.proto = s.proto;
        e.scheduler_kind = s.scheduler;
        e.client_address = s.client_address;
        e.proxy_from_client = s.proxy_from_client;
        e.connection_log = s.connection_log;
        e.timeouts = s.timeouts;
        e.maglev_table_size = s.maglev_table_size;
        for (const RealConfig& r : s.reals) {
            e.reals.push_back({r.address, r.port, r.weight, real_slots_.slot_for(real_key(s, r))});
        }
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
    table->set_peer_owners(peer_owners_);  // unchanged by a config: set_peer_local_addresses changes it
    // Sequentially consistent: a SnapshotReader announces itself, then loads the pointer;
    // this stores the pointer, then looks at the readers (free_unread_tables).
    view_.current_.store(table.get(), std::memory_order_seq_cst);
    tables_.push_back(std::move(table));
    view_.config_.services = services;
    free_unread_tables();
}

// Builds the schedulers of `which` entries (services[i] describes entries[i]), through
// the host's ParallelFor when there are many: 1,000 Maglev tables of 65,537 entries take
// seconds on one core. Control side only; the workers keep forwarding on the running
// snapshot meanwhile.
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
    constexpr size_t kWorthSharing = 32;  // fewer builds are quicker than handing them out
    if (!build_ || which.size() < kWorthSharing) {
        for (size_t i : which) build(i);
        return;
    }
    build_(which.size(), [&](size_t k) { build(which[k]); });
}

void Engine::reclaim() {
    ControlLock lock(*this);
    free_unread_tables();
    recycle_slots(nullptr);
}

size_t Engine::snapshots_alive() {
    ControlLock lock(*this);
    return tables_.size();
}

size_t Engine::real_slots_in_use() {
    ControlLock lock(*this);
    return real_slots_.by_key.size();
}

size_t Engine::service_slots_in_use() {
    ControlLock lock(*this);
    return service_slots_.by_key.size();
}

// A retired snapshot is freed once every reader has moved past it: each worker publishes
// the generation it holds at every burst and poll (Worker::quiesce), each SnapshotReader
// at each current(); a reader that holds nothing does not count.
void Engine::free_unread_tables() {
    check_control_locked();
    uint64_t oldest_seen = UINT64_MAX;
    for (auto& w : workers_) oldest_seen = std::min(oldest_seen, w->seen_generation());
    for (const ReaderSlot& r : readers_) oldest_seen = std::min(oldest_seen, r.seen.load(std::memory_order_seq_cst));
    const ServiceTable* current = view_.services();
    std::erase_if(tables_, [&](const std::unique_ptr<ServiceTable>& t) {
        return t.get() != current && t->generation() < oldest_seen;
    });
}

// A real's slot is free once no live snapshot names it (no worker can start a session on
// it) and no worker has a session on it (its active count, published by the worker with
// release, is 0 everywhere): its counters are zeroed for the next owner, which only a
// later snapshot can name. A service's slot is free once no live snapshot names it and
// none of its reals holds a slot.
void Engine::recycle_slots(const KeySet* keep) {
    check_control_locked();
    std::vector<bool> real_named(real_slots_.next), service_named(service_slots_.next);
    for (const auto& t : tables_) {
        for (const ServiceEntry& s : t->services()) {
            service_named[s.id] = true;
            for (const RealEntry& r : s.reals) real_named[r.slot] = true;
        }
    }
    auto kept = [&](const FlowKey& k) { return keep != nullptr && keep->contains(k); };
    std::vector<bool> service_held(service_slots_.next);
    for (auto it = real_slots_.by_key.begin(); it != real_slots_.by_key.end();) {
        const uint32_t slot = it->second;
        bool busy = real_named[slot] || kept(it->first);
        for (size_t w = 0; w < workers_.size() && !busy; ++w) busy = workers_[w]->active_sessions_of(slot) > 0;
        if (busy) {
            FlowKey svc = service_key(it->first.dst, it->first.dst_port, it->first.proto);
            if (auto s = service_slots_.by_key.find(svc); s != service_slots_.by_key.end()) {
                service_held[s->second] = true;
            }
            ++it;
            continue;
        }
        for (auto& w : workers_) w->reset_real_counters(slot);
        real_slots_.free.push_back(slot);
        it = real_slots_.by_key.erase(it);
    }
    for (auto it = service_slots_.by_key.begin(); it != service_slots_.by_key.end();) {
        const uint32_t slot = it->second;
        if (service_named[slot] || service_held[slot] || kept(it->first)) {
            ++it;
            continue;
        }
        service_slots_.free.push_back(slot);
        it = service_slots_.by_key.erase(it);
    }
}

Engine::ReaderSlot& SnapshotReader::take_slot(const Engine& engine) {
    for (Engine::ReaderSlot& slot : engine.readers_) {
        bool taken = false;
        if (slot.taken.compare_exchange_strong(taken, true, std::memory_order_acq_rel)) return slot;
    }
    throw std::runtime_error("snapshot readers: all " + std::to_string(Engine::kReaderSlots) + " slots are taken");
}

SnapshotReader::SnapshotReader(const Engine& engine) : engine_(engine), slot_(take_slot(engine)) {}

SnapshotReader::~SnapshotReader() {
    release();
    slot_.taken.store(false, std::memory_order_release);
}

const ServiceTable& SnapshotReader::current() {
    // A reader holding nothing first holds everything not yet freed, then looks: either
    // the engine's next reclaim sees that, or this load sees the engine's newer pointer.
    if (slot_.seen.load(std::memory_order_relaxed) == Engine::kNotReading) {
        slot_.seen.store(0, std::memory_order_seq_cst);
    }
    const ServiceTable* t = engine_.view_.current_.load(std::memory_order_seq_cst);
    // What it held before is older than `t`; from here on only `t` and newer are held.
    slot_.seen.store(t->generation(), std::memory_order_seq_cst);
    return *t;
}

void SnapshotReader::release() { slot_.seen.store(Engine::kNotReading, std::memory_order_release); }

}  // namespace dplb::core
