// Session sync, the engine's side (DESIGN section 7): where a peer's record goes (the
// worker this node's steering picks), the peers' local addresses the workers steer by,
// and the export of a worker's sessions for a full sync.
#include <atomic>
#include <stdexcept>
#include <string>

#include "core/engine.hpp"

namespace dplb::core {

bool Engine::install_synced(const SyncRecord& r, bool* ring_full) {
    if (ring_full) *ring_full = false;
    if (!config().sync_enabled) {
        sync_counters_.refused_disabled.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    const uint32_t owner = inbound_owner(r.inbound);
    std::lock_guard lock(sync_mutex_);
    int32_t laddr_owner = local_address_owner(r.outbound.dst);
    if (laddr_owner < 0 && peer_owners_ != nullptr) {
        for (const PeerAddressOwner& o : *peer_owners_) {
            if (o.address == r.outbound.dst) {
                laddr_owner = o.worker;
                break;
            }
        }
    }
    if (laddr_owner < 0) {
        // The real's answers to it would reach no worker that holds the session.
        sync_counters_.refused_unknown_local_address.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    if (static_cast<uint32_t>(laddr_owner) != owner) {
        // Inbound and outbound packets would land on two workers (unequal worker counts,
        // or a peer's address listed under another worker index).
        sync_counters_.refused_owner_mismatch.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    if (!workers_[owner]->post_install(r)) {
        if (ring_full) *ring_full = true;
        sync_counters_.refused_ring_full.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    sync_counters_.queued.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void Engine::set_peer_local_addresses(uint32_t peer_id, const std::vector<std::vector<IpAddress>>& per_worker) {
    if (!per_worker.empty() && per_worker.size() != worker_count()) {
        throw std::invalid_argument("peer " + std::to_string(peer_id) + ": its local addresses name " +
                                    std::to_string(per_worker.size()) + " workers, this node has " +
                                    std::to_string(worker_count()) + " (session sync needs equal worker counts)");
    }
    for (const auto& addresses : per_worker) {
        for (const IpAddress& a : addresses) {
            if (local_address_owner(a) >= 0) {
                throw std::invalid_argument("peer " + std::to_string(peer_id) + ": local address " + a.to_string() +
                                            " is also one of this node's");
            }
        }
    }
    ControlLock lock(*this);
    auto peers = peers_;
    if (per_worker.empty()) {
        peers.erase(peer_id);
    } else {
        peers[peer_id] = per_worker;
    }
    auto owners = std::make_shared<PeerAddressOwners>();
    for (const auto& [id, workers] : peers) {
        for (size_t w = 0; w < workers.size(); ++w) {
            for (const IpAddress& a : workers[w]) {
                for (const PeerAddressOwner& o : *owners) {
                    if (o.address == a) {  // the peers before were checked: it is the new one's
                        throw std::invalid_argument("peer " + std::to_string(peer_id) + ": local address " +
                                                    a.to_string() + " is listed twice");
                    }
                }
                owners->push_back({a, static_cast<uint16_t>(w)});
            }
        }
    }
    // Workers read the owners through the snapshot: a new snapshot with the same services
    // carries the new list, and the old one is freed with its retired snapshot, once no
    // worker can hold it (the same reclaim as a config change: workers never block).
    auto table = std::make_unique<ServiceTable>(view_.services()->services(), next_generation_++);
    table->set_peer_owners(owners);
    {
        std::lock_guard sync_lock(sync_mutex_);
        peers_ = std::move(peers);
        peer_owners_ = owners;
    }
    view_.current_.store(table.get(), std::memory_order_seq_cst);
    tables_.push_back(std::move(table));
    free_unread_tables();
}

// Read from the control side while the worker runs: each session is copied, then its
// slot is read again and the copy is kept only if the slot still holds the same session
// (in use, same inbound key, same creation tick) in a state worth syncing. A slot freed
// or reused during the copy is skipped (its close, or its new session's open, reaches
// the peers through the sync ring). A copy of a live session may mix two packets'
// updates of its tracking; the peer's copy is only used when the flow moves there, and
// the session's next push (update or refresh, through the ring, in order after the full
// sync's records it follows) brings it up to date. Peers' copies not adopted here are
// not exported: their owner exports them.
uint32_t Engine::export_sessions(uint32_t w, uint32_t from, uint32_t max, std::vector<SyncRecord>& out) const {
    const Worker& worker = *workers_.at(w);
    const SessionTable& table = worker.sessions();
    const uint32_t end = table.capacity();
    const Session* sessions = table.sessions();
    uint32_t i = from;
    uint32_t taken = 0;
    for (; i < end && taken < max; ++i) {
        const Session& live = sessions[i];
        if (!(live.flags & kSessionInUse)) continue;
        Session copy;
        __builtin_memcpy(&copy, &live, sizeof copy);
        if (!(copy.flags & kSessionInUse) || (copy.sync_flags & kSyncInstalled)) continue;
        if (copy.state != TcpState::none && copy.state != TcpState::established && copy.state != TcpState::fin_wait &&
            copy.state != TcpState::time_wait) {
            continue;
        }
        // The re-check must read after the copy: a compiler barrier is enough where loads
        // are not reordered with loads (x86-64's TSO; TSan refuses thread fences anyway).
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (!(live.flags & kSessionInUse) || live.created_tick != copy.created_tick || !(live.inbound == copy.inbound)) {
            continue;
        }
        out.push_back(sync_record_of(copy, SyncKind::refresh, worker.now_tick(), static_cast<uint16_t>(w)));
        ++taken;
    }
    return i;
}

}  // namespace dplb::core
