// Session sync, the worker's side (DESIGN section 7, docs/architecture.md "Session sync
// (engine side)"): records of this worker's sessions pushed for the sync thread, peers'
// records installed as synced copies, and the adoption of a copy when traffic arrives.
// Only with EngineConfig::sync_enabled: every entry from the packet path is behind one
// predictable branch on Worker::sync_on_, and lives here, out of line and cold.
#include <algorithm>

#include "core/worker.hpp"

namespace dplb::core {
namespace {

constexpr uint32_t kMsPerTick = static_cast<uint32_t>(kTickNs / 1'000'000);
constexpr uint32_t kTicksPerSecond = 1000 / kMsPerTick;
constexpr uint8_t kSyncedSessionFlags =
    kSessionFinFromClient | kSessionFinFromReal | kSessionRealClosedFirst | kSessionClientAddress;

// What of the client-address state a peer must learn when it changes: ca_flags, and
// whether packets still take the client-address path (a TOA session leaves it).
uint8_t sync_ca_signature(const Session& s) {
    return static_cast<uint8_t>(s.ca_flags | ((s.flags & kSessionClientAddress) ? 0x80 : 0));
}

// Worth keeping elsewhere: a UDP session, a TCP one past its handshake.
bool worth_syncing(TcpState state) {
    return state == TcpState::none || state == TcpState::established || state == TcpState::fin_wait ||
           state == TcpState::time_wait;
}

// The session's own state from a record: TCP state and tracking, client-address state,
// and its timer from the record's remaining time (timeouts come from this node's config).
void take_record_state(Session& s, const SyncRecord& r, uint32_t now_tick) {
    s.state = r.state;
    s.flags = static_cast<uint8_t>((s.flags & ~kSyncedSessionFlags) | (r.session_flags & kSyncedSessionFlags));
    s.track = r.track;
    s.ca_mode = r.ca_mode;
    s.ca_flags = r.ca_flags;
    s.ca_header_len = r.ca_header_len;
    s.seq_delta = r.seq_delta;
    s.client_isn = r.client_isn;
    s.timeout_ticks = s.timeouts_s[static_cast<size_t>(timeout_kind(s.state))] * kTicksPerSecond;
    s.expire_tick = now_tick + (r.remaining_ms + kMsPerTick - 1) / kMsPerTick;
    // A copy is its peer's record as last seen: the fields a later push compares against.
    s.sync_state = s.state;
    s.sync_ca = sync_ca_signature(s);
    s.sync_tick = now_tick;
}

}  // namespace

SyncRecord sync_record_of(const Session& s, SyncKind kind, uint32_t now_tick, uint16_t worker) {
    SyncRecord r;
    r.inbound = s.inbound;
    r.outbound = s.outbound;
    r.track = s.track;
    const auto left = static_cast<int32_t>(s.expire_tick - now_tick);
    r.remaining_ms = left > 0 ? static_cast<uint32_t>(left) * kMsPerTick : 0;
    r.seq_delta = s.seq_delta;
    r.worker = worker;
    r.kind = kind;
    r.state = s.state;
    r.session_flags = s.flags & kSyncedSessionFlags;
    r.ca_mode = s.ca_mode;
    r.ca_flags = s.ca_flags;
    r.ca_header_len = s.ca_header_len;
    r.client_isn = s.client_isn;
    return r;
}

void Worker::push_sync(Session& s, SyncKind kind) {
    if (!sync_ring_->push(sync_record_of(s, kind, now_tick_, static_cast<uint16_t>(id_)))) {
        // The sync thread is behind: the next packet tries again (the session's
        // last-push fields are left as they were), the refresh repairs the rest.
        ++stats_.sync_dropped;
        return;
    }
    ++stats_.sync_pushed;
    s.sync_flags |= kSyncPushed;
    s.sync_state = s.state;
    s.sync_ca = sync_ca_signature(s);
    s.sync_tick = now_tick_;
}

void Worker::sync_seen(Session& s) {
    if (s.sync_flags & kSyncInstalled) {
        // The first packet of a peer's copy, either way: the flow is ours from now on.
        s.sync_flags = static_cast<uint8_t>((s.sync_flags & ~kSyncInstalled) | kSyncAdopted);
        add_active(reals_[s.real_slot], 1);
        ++stats_.sync_adopted;
    }
    if (!(s.sync_flags & kSyncPushed)) {
        if (worth_syncing(s.state)) push_sync(s, SyncKind::open);
        return;
    }
    if (s.state != s.sync_state || sync_ca_signature(s) != s.sync_ca) {
        push_sync(s, SyncKind::update);
    } else if (now_tick_ - s.sync_tick >= sync_refresh_ticks_) {
        push_sync(s, SyncKind::refresh);
    }
}

bool Worker::expire_synced(uint32_t index, Session& s) {
    const uint8_t sf = s.sync_flags;
    // Its peers hold a copy (ours, or adopted and pushed since): they drop it.
    if ((sf & kSyncPushed) && !(sf & kSyncInstalled) && sync_ring_ != nullptr) {
        if (sync_ring_->push(sync_record_of(s, SyncKind::close, now_tick_, static_cast<uint16_t>(id_)))) {
            ++stats_.sync_pushed;
        } else {
            ++stats_.sync_dropped;
        }
    }
    if (!(sf & (kSyncInstalled | kSyncAdopted))) return false;  // our own: freed as usual
    // A peer's copy: its local port is the peer's (nothing goes back to our pool) and it
    // expires silently (no connection log); only an adopted one counted as ours.
    if (sf & kSyncAdopted) {
        RealCounters& rc = reals_[s.real_slot];
        if (rc.active > 0) add_active(rc, -1);
        ++stats_.sessions_expired;
    } else {
        ++stats_.sync_expired;
    }
    table_.erase(index);
    return true;
}

uint32_t Worker::run_installs(const ServiceTable& services) {
    uint32_t done = 0;
    SyncRecord r;
    while (done < kInstallBudget && install_ring_->pop(r)) {
        install_synced(r, services);
        ++done;
    }
    return done;
}

void Worker::install_synced(const SyncRecord& r, const ServiceTable& services) {
    const uint64_t hash = hash_key(r.inbound);
    if (SessionRef ref = table_.lookup(r.inbound, hash)) {
        Session& s = *ref.session;
        if (ref.direction != Direction::inbound || !(s.sync_flags & kSyncInstalled)) {
            // Our own session (or one adopted: traffic says it is ours): never overwritten.
            ++stats_.sync_conflict;
            return;
        }
        wheel_.unfile(table_.sessions(), ref.index);
        if (r.kind == SyncKind::close) {
            table_.erase(ref.index);
            ++stats_.sync_removed;
            return;
        }
        take_record_state(s, r, now_tick_);
        wheel_.file(table_.sessions(), ref.index);
        ++stats_.sync_updated;
        return;
    }
    if (r.kind == SyncKind::close) return;  // nothing here to remove
    const uint64_t out_hash = hash_key(r.outbound);
    if (table_.lookup(r.outbound, out_hash)) {
        ++stats_.sync_conflict;  // our own session uses that laddr:lport toward that real
        return;
    }
    const ServiceEntry* svc = services.find(r.inbound.dst, r.inbound.dst_port, r.inbound.proto);
    if (svc == nullptr) {
        ++stats_.sync_refused_no_service;
        return;
    }
    auto real = std::find_if(svc->reals.begin(), svc->reals.end(), [&](const RealEntry& e) {
        return e.address == r.outbound.src && e.port == r.outbound.src_port;
    });
    if (real == svc->reals.end()) {
        ++stats_.sync_refused_no_real;
        return;
    }
    auto to_real = view_.routes().lookup(r.outbound.src);
    auto to_client = view_.routes().lookup(r.inbound.src);
    if (!to_real || !to_client) {
        ++stats_.sync_refused_no_route;
        return;
    }
    if (table_.size() == table_.capacity()) {
        ++stats_.sync_refused_table_full;
        return;
    }
    SessionRef ref = table_.insert(r.inbound, hash, r.outbound, out_hash);
    if (!ref) {
        ++stats_.sync_refused_table_full;
        return;
    }
    Session& s = *ref.session;
    s.real_slot = real->slot;
    s.service_id = svc->id;
    s.local_address = UINT16_MAX;  // the peer's: no port of our pool
    s.port_to_real = to_real->port;
    s.port_to_client = to_client->port;
    std::copy(svc->timeouts.seconds.begin(), svc->timeouts.seconds.end(), s.timeouts_s);
    s.created_tick = now_tick_;
    s.neighbour_generation = 0;  // MACs resolved on first use, as for any session
    s.sync_flags = kSyncInstalled | kSyncPushed;
    take_record_state(s, r, now_tick_);
    wheel_.file(table_.sessions(), ref.index);
    ++stats_.sync_installed;
}

}  // namespace dplb::core
