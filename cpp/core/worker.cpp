// The packet path of one worker (DESIGN section 3): parse, find the session by the
// packet's own tuple, create one for a new flow, rewrite, pick the way out.
#include "core/worker.hpp"

#include <algorithm>

#include "core/client_address.hpp"
#include "core/nat_rewrite.hpp"

namespace dplb::core {
namespace {

constexpr uint32_t kTicksPerSecond = static_cast<uint32_t>(1'000'000'000 / kTickNs);
constexpr uint8_t kTcp = static_cast<uint8_t>(L4Proto::tcp);
constexpr uint8_t kUdp = static_cast<uint8_t>(L4Proto::udp);

}  // namespace

std::string_view tcp_state_name(TcpState s) {
    static constexpr std::string_view names[] = {"none",      "syn_sent",  "syn_recv", "established",
                                                 "fin_wait", "time_wait", "close"};
    return names[static_cast<size_t>(s)];
}

Worker::Worker(const WorkerView& view, uint32_t id)
    : view_(view),
      id_(id),
      table_(view.config().sessions_per_worker),
      wheel_(kWheelSlots, 0),
      laddr_cursor_(view.config().ports.size(), 0),
      service_cursor_(view.config().max_services, 0),
      reals_(view.config().max_reals),
      wlc_active_(kMaxRealsPerService, 0),
      rest_bucket_(view.config().control_rest_rate_pps, view.config().control_rest_burst) {
    const EngineConfig& c = view.config();
    for (size_t p = 0; p < c.ports.size(); ++p) {
        if (c.ports[p].local_addresses.empty()) continue;
        for (const IpAddress& a : c.ports[p].local_addresses[id]) laddrs_.push_back({a, static_cast<uint8_t>(p)});
    }
    if (!laddrs_.empty()) {
        PortPoolConfig pc;
        pc.first = c.local_port_first;
        pc.last = c.local_port_last;
        pc.local_addresses = static_cast<uint32_t>(laddrs_.size());
        pc.hold_ns = uint64_t(c.local_port_real_time_wait_s) * 1'000'000'000ULL;
        // A hold outlives its session: as many holds as sessions before the oldest is cut.
        pc.max_in_use = c.sessions_per_worker;
        pc.max_holds = c.sessions_per_worker;
        pc.clock_epoch_ns = c.local_port_clock_epoch_ns;
        pool_ = std::make_unique<PortPool>(pc);
    }
    if (c.sync_enabled) {
        sync_on_ = true;
        sync_refresh_ticks_ = std::max<uint32_t>(1, c.sync_refresh_ms / static_cast<uint32_t>(kTickNs / 1'000'000));
        sync_ring_ = std::make_unique<SyncRing>();
        install_ring_ = std::make_unique<SyncRing>();
    }
}

void Worker::set_clock(uint64_t now_ns) {
    quiesce();
    now_ns_ = now_ns;
    now_tick_ = static_cast<uint32_t>(now_ns / kTickNs);
    drain_commands();
    drain_installs(*view_.services());
    wheel_.advance(table_.sessions(), now_tick_, [this](uint32_t index) { expire(index); }, kExpiryBudget);
    if (wheel_.behind()) ++stats_.expiry_behind;
    if (pool_) pool_->expire_holds(now_ns_, kHoldExpiryBudget);
}

void Worker::process_burst(PacketView* const* packets, Action* actions, uint32_t n, bool handed_in) {
    owner_.check("Worker::process_burst: another thread drives this worker");
    drain_commands();
    const ServiceTable* services = view_.services();
    seen_generation_.store(services->generation(), std::memory_order_release);
    drain_installs(*services);
    ParsedPacket* parsed = parsed_.data();
    for (uint32_t base = 0; base < n; base += kBurst) {
        uint32_t count = std::min(kBurst, n - base);
        // Parse the burst and prefetch each packet's index slot; then process it in order,
        // prefetching the session of the packet kAhead places on (its slot has arrived by
        // then), so that a packet's memory was asked for well before it is needed.
        uint64_t hashes[kBurst];
        for (uint32_t i = 0; i < count; ++i) {
            PacketView& pkt = *packets[base + i];
            if (i + 2 < count) __builtin_prefetch(packets[base + i + 2]->data);
            parse_packet(pkt.data, pkt.len, parsed[i]);
            if (parsed[i].status == ParseStatus::ok) {
                hashes[i] = hash_key(parsed[i].key);
                table_.prefetch(hashes[i]);
            }
        }
        constexpr uint32_t kAhead = 8;  // sessions prefetched ahead of the packet in hand
        for (uint32_t i = 0; i < std::min(kAhead, count); ++i) {
            if (parsed[i].status == ParseStatus::ok) table_.prefetch_session(hashes[i]);
        }
        for (uint32_t i = 0; i < count; ++i) {
            if (i + kAhead < count && parsed[i + kAhead].status == ParseStatus::ok) {
                table_.prefetch_session(hashes[i + kAhead]);
            }
            PacketView& pkt = *packets[base + i];
            if (handed_in) {
                ++stats_.handed_in;
            } else {
                ++stats_.rx_packets;
                stats_.rx_bytes += pkt.len;
            }
            actions[base + i] = process_one(pkt, parsed[i], *services, handed_in, hashes[i]);
        }
        for (uint32_t k = 0; k < deferred_count_; ++k) table_.index_outbound(deferred_[k].index, deferred_[k].hash);
        deferred_count_ = 0;
    }
}

Action Worker::process_one(PacketView& pkt, const ParsedPacket& p, const ServiceTable& services, bool handed_in,
                           uint64_t hash) {
    if (p.status == ParseStatus::dropped) [[unlikely]] return drop(p.drop);
    if (p.status == ParseStatus::not_ip) [[unlikely]] {
        return to_control(pkt, p);
    }
    const uint8_t proto = p.key.proto;
    if (proto == kTcp || proto == kUdp) [[likely]] {
        // A session here means this worker owns the flow (sessions are only created by
        // their owner), so a hit needs neither the service nor the owner.
        if (SessionRef ref = table_.lookup(p.key, hash)) [[likely]] {
            if (ref.direction == Direction::inbound) return inbound(pkt, p, nullptr, services, hash, ref);
            return outbound(pkt, p, ref);
        }
        if (const ServiceEntry* svc = services.find(p.key.dst, p.key.dst_port, proto)) {
            if (!handed_in) {
                uint32_t owner = view_.inbound_owner(p.key);
                if (owner != id_) {
                    ++stats_.handed_over;
                    return Action{Verdict::hand_over, 0, static_cast<uint16_t>(owner)};
                }
            }
            return inbound(pkt, p, svc, services, hash, SessionRef{});
        }
        int32_t owner = view_.local_address_owner(p.key.dst);
        // A peer's local address: the outbound side of its synced sessions, owned here by
        // the worker of the peer's worker index (equal worker counts).
        if (owner < 0 && sync_on_) [[unlikely]] owner = services.peer_address_owner(p.key.dst);
        if (owner >= 0) {
            if (static_cast<uint32_t>(owner) != id_ && !handed_in) {
                ++stats_.handed_over;
                return Action{Verdict::hand_over, 0, static_cast<uint16_t>(owner)};
            }
            return drop(DropReason::no_session);
        }
    } else if ((proto == static_cast<uint8_t>(L4Proto::icmp) && !p.ipv6) ||
               (proto == static_cast<uint8_t>(L4Proto::icmpv6) && p.ipv6)) {
        if (is_translated_icmp_error(p.ipv6, p.icmp_type)) return icmp_error(pkt, p, services, handed_in);
    }
    return to_control(pkt, p);
}

// ARP/ND, BGP/BFD and the node's own connections always go up (the control lcore drains
// them first); the rest only as fast as this worker's bucket allows, so that a flood of
// junk cannot crowd them out.
Action Worker::to_control(const PacketView& pkt, const ParsedPacket& p) {
    const ControlClass c = classify_control(pkt.data, pkt.len, p, view_.config().ports[pkt.in_port].addresses);
    if (c == ControlClass::rest && !rest_bucket_.take(now_ns_)) [[unlikely]] {
        return drop(DropReason::control_rate_limited);
    }
    ++stats_.to_control;
    Action a{Verdict::control, 0, 0};
    a.control = c;
    return a;
}

Action Worker::await_neighbour(PacketView& pkt, uint8_t port) {
    const MacAddress& mine = view_.port_mac(port);
    __builtin_memcpy(pkt.data + 6, mine.data(), 6);  // the destination comes with the answer
    ++stats_.awaiting_neighbour;
    return Action{Verdict::resolve, port, 0};
}

Action Worker::transmit(PacketView& pkt, uint8_t port) {
    ++stats_.tx_packets;
    stats_.tx_bytes += pkt.len;
    return Action{Verdict::transmit, port, 0};
}

Action Worker::inbound(PacketView& pkt, const ParsedPacket& p, const ServiceEntry* svc, const ServiceTable& services,
                       uint64_t hash, SessionRef ref) {
    const bool tcp = p.key.proto == kTcp;
    const uint8_t flags = p.tcp_flags;
    const bool pure_syn = (flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin)) == kTcpSyn;
    // Before anything changes a session: a packet that cannot go on changes nothing.
    if (p.ttl <= 1) [[unlikely]] return drop(DropReason::ttl_exceeded);
    if (ref && tcp && pure_syn && (ref.session->state == TcpState::time_wait || ref.session->state == TcpState::close))
        [[unlikely]] {
        // The client reuses its port for a new connection: the old one is over. A SYN on
        // a live session (syn_recv, established, fin_wait) goes to its real as it is,
        // which answers with a challenge ACK (RFC 5961 section 4): it never re-steers.
        wheel_.unfile(table_.sessions(), ref.index);
        expire(ref.index, CloseReason::reused);
        ref = {};
    }
    if (!ref) [[unlikely]] {
        if (tcp && !pure_syn) return drop(DropReason::no_session);
        if (svc == nullptr) svc = services.find(p.key.dst, p.key.dst_port, p.key.proto);
        if (svc == nullptr) return drop(DropReason::no_session);  // its service is gone
        DropReason why = DropReason::no_real;
        ref = create_session(p, *svc, hash, why);
        if (!ref) return drop(why);
    }
    Session& s = *ref.session;
    if (s.neighbour_generation != view_.neighbours().generation()) [[unlikely]] resolve_macs(s);
    const bool mac_known = s.flags & kSessionMacToReal;
    // A next hop without a MAC yet: deliver() hands the frame to be held, as below.
    if (s.flags & kSessionClientAddress) [[unlikely]] return inbound_client_address(pkt, p, ref);
    int counted = flags;
    if (tcp) {
        counted = track_tcp(s, tcp_segment(pkt.data, p), Direction::inbound);
        if (counted < 0) [[unlikely]] return drop(DropReason::tcp_rst_out_of_window);
    }
    rewrite_full_nat(pkt.data, p, Endpoint{s.outbound.dst, s.outbound.dst_port},
                     Endpoint{s.outbound.src, s.outbound.src_port});
    if (tcp) {
        update_tcp_state(ref.index, s, static_cast<uint8_t>(counted), Direction::inbound);
    } else {
        set_expiry(s);
    }
    s.bytes_in += pkt.len;
    if (sync_on_) [[unlikely]] sync_seen(s);
    RealCounters& rc = reals_[s.real_slot];
    ++rc.packets_in;
    rc.bytes_in += pkt.len;
    if (!mac_known) [[unlikely]] return await_neighbour(pkt, s.port_to_real);
    set_ethernet(pkt.data, MacAddress{s.mac_to_real[0], s.mac_to_real[1], s.mac_to_real[2], s.mac_to_real[3],
                                      s.mac_to_real[4], s.mac_to_real[5]},
                 view_.port_mac(s.port_to_real));
    return transmit(pkt, s.port_to_real);
}

Action Worker::outbound(PacketView& pkt, const ParsedPacket& p, SessionRef ref) {
    if (p.ttl <= 1) [[unlikely]] return drop(DropReason::ttl_exceeded);
    Session& s = *ref.session;
    if (s.neighbour_generation != view_.neighbours().generation()) [[unlikely]] resolve_macs(s);
    const bool mac_known = s.flags & kSessionMacToClient;
    if (s.flags & kSessionClientAddress) [[unlikely]] return outbound_client_address(pkt, p, ref);
    const bool tcp = p.key.proto == kTcp;
    int counted = p.tcp_flags;
    if (tcp) {
        counted = track_tcp(s, tcp_segment(pkt.data, p), Direction::outbound);
        if (counted < 0) [[unlikely]] return drop(DropReason::tcp_rst_out_of_window);
    }
    rewrite_full_nat(pkt.data, p, Endpoint{s.inbound.dst, s.inbound.dst_port},
                     Endpoint{s.inbound.src, s.inbound.src_port});
    if (tcp) {
        update_tcp_state(ref.index, s, static_cast<uint8_t>(counted), Direction::outbound);
    } else {
        set_expiry(s);
    }
    s.bytes_out += pkt.len;
    if (sync_on_) [[unlikely]] sync_seen(s);
    RealCounters& rc = reals_[s.real_slot];
    ++rc.packets_out;
    rc.bytes_out += pkt.len;
    if (!mac_known) [[unlikely]] return await_neighbour(pkt, s.port_to_client);
    set_ethernet(pkt.data, MacAddress{s.mac_to_client[0], s.mac_to_client[1], s.mac_to_client[2],
                                      s.mac_to_client[3], s.mac_to_client[4], s.mac_to_client[5]},
                 view_.port_mac(s.port_to_client));
    return transmit(pkt, s.port_to_client);
}

SessionRef Worker::create_session(const ParsedPacket& p, const ServiceEntry& svc, uint64_t hash, DropReason& why) {
    if (table_.size() == table_.capacity()) {
        why = DropReason::session_table_full;
        return {};
    }
    const uint32_t* active = nullptr;
    if (svc.scheduler_kind == SchedulerKind::wlc) {
        for (size_t i = 0; i < svc.reals.size(); ++i) wlc_active_[i] = reals_[svc.reals[i].slot].active;
        active = wlc_active_.data();
    }
    int pick = svc.scheduler->pick(hash, service_cursor_[svc.id], active);
    if (pick == kNoReal) {
        why = DropReason::no_real;
        return {};
    }
    const RealEntry& real = svc.reals[static_cast<size_t>(pick)];
    auto to_real = view_.routes().lookup(real.address);
    auto to_client = view_.routes().lookup(p.key.src);
    if (!to_real || !to_client) {
        why = DropReason::no_route;
        return {};
    }
    // A local address of this worker on the real's side, of the real's family, with a
    // free port; round-robin over the candidates.
    const uint32_t n = static_cast<uint32_t>(laddrs_.size());
    uint32_t& cursor = laddr_cursor_[to_real->port];
    int laddr = -1;
    uint16_t lport = 0;
    for (uint32_t k = 0; k < n && laddr < 0; ++k) {
        uint32_t i = (cursor + k) % n;
        LocalAddress& la = laddrs_[i];
        if (la.port != to_real->port || la.address.is_v4() != real.address.is_v4()) continue;
        if (auto port = pool_->acquire(i, real.address, real.port, now_ns_)) {
            laddr = static_cast<int>(i);
            lport = *port;
            cursor = i + 1;
        }
    }
    if (laddr < 0) {
        why = DropReason::no_local_port;
        return {};
    }
    FlowKey out;
    out.src = real.address;
    out.dst = laddrs_[static_cast<size_t>(laddr)].address;
    out.src_port = real.port;
    out.dst_port = lport;
    out.proto = p.key.proto;
    const uint64_t out_hash = hash_key(out);
    SessionRef ref = table_.insert(p.key, hash, out, out_hash, /*defer_outbound=*/true);
    if (!ref) {
        pool_->release(static_cast<uint32_t>(laddr), real.address, real.port, lport, now_ns_, 0);
        why = DropReason::session_table_full;
        return {};
    }
    // Its slot is likely a cache miss: indexed at the end of the burst, fetched meanwhile.
    table_.prefetch(out_hash);
    deferred_[deferred_count_++] = {out_hash, ref.index};
    Session& s = *ref.session;
    s.real_slot = real.slot;
    s.service_id = svc.id;
    s.local_address = static_cast<uint16_t>(laddr);
    s.port_to_real = to_real->port;
    s.port_to_client = to_client->port;
    s.state = p.key.proto == kTcp ? TcpState::syn_sent : TcpState::none;
    if (svc.client_address != ClientAddressMode::none && p.key.proto == kTcp) [[unlikely]] {
        init_client_address(s, svc);
    }
    std::copy(svc.timeouts.seconds.begin(), svc.timeouts.seconds.end(), s.timeouts_s);
    s.created_tick = now_tick_;
    s.neighbour_generation = 0;  // resolve on first use
    s.timeout_ticks = s.timeouts_s[static_cast<size_t>(timeout_kind(s.state))] * kTicksPerSecond;
    s.expire_tick = now_tick_ + s.timeout_ticks;
    if (svc.connection_log) [[unlikely]] {
        s.flags |= kSessionLogged;
        log_session(s, LogKind::session_open, CloseReason::expired);
    }
    wheel_.file(table_.sessions(), ref.index);
    ++stats_.sessions_created;
    RealCounters& rc = reals_[real.slot];
    ++rc.connections;
    add_active(rc, 1);
    return ref;
}

bool Worker::resolve_macs(Session& s) {
    const uint32_t generation = view_.neighbours().generation();
    bool both = true;
    auto to_real = view_.routes().lookup(s.outbound.src);
    auto mac = to_real ? view_.neighbours().lookup(to_real->port, to_real->next_hop) : std::nullopt;
    if (mac) {
        std::copy(mac->begin(), mac->end(), s.mac_to_real);
        s.flags |= kSessionMacToReal;
    } else {
        both = false;
        if (to_real) neighbour_requests_.push({to_real->port, to_real->next_hop});  // full: asked already
    }
    auto to_client = view_.routes().lookup(s.inbound.src);
    mac = to_client ? view_.neighbours().lookup(to_client->port, to_client->next_hop) : std::nullopt;
    if (mac) {
        std::copy(mac->begin(), mac->end(), s.mac_to_client);
        s.flags |= kSessionMacToClient;
    } else {
        both = false;
        if (to_client) neighbour_requests_.push({to_client->port, to_client->next_hop});
    }
    // Only a complete answer is remembered; a partial one is tried again next packet.
    if (both) s.neighbour_generation = generation;
    return both;
}

void Worker::update_tcp_state(uint32_t index, Session& s, uint8_t flags, Direction dir) {
    const TcpState before = s.state;
    if (flags & kTcpRst) {
        if (dir == Direction::outbound && before != TcpState::close) ++reals_[s.real_slot].resets_from_real;
        s.state = TcpState::close;
    } else {
        if (flags & kTcpFin) {
            // The real's FIN before any of the client's: the real will be in TIME_WAIT.
            if (dir == Direction::outbound && !(s.flags & (kSessionFinFromClient | kSessionFinFromReal))) {
                s.flags |= kSessionRealClosedFirst;
            }
            s.flags |= dir == Direction::inbound ? kSessionFinFromClient : kSessionFinFromReal;
        }
        const bool both_fin = (s.flags & (kSessionFinFromClient | kSessionFinFromReal)) ==
                              (kSessionFinFromClient | kSessionFinFromReal);
        switch (s.state) {
            case TcpState::syn_sent:
                if (dir == Direction::outbound && (flags & kTcpSyn) && (flags & kTcpAck)) s.state = TcpState::syn_recv;
                break;
            case TcpState::syn_recv:
                if (dir == Direction::inbound && (flags & kTcpAck) && !(flags & kTcpSyn)) {
                    s.state = (flags & kTcpFin) ? TcpState::fin_wait : TcpState::established;
                }
                break;
            case TcpState::established:
                if (flags & kTcpFin) s.state = both_fin ? TcpState::time_wait : TcpState::fin_wait;
                break;
            case TcpState::fin_wait:
                if (both_fin) s.state = TcpState::time_wait;
                break;
            default:
                break;
        }
    }
    if (s.state != before) [[unlikely]] {
        s.timeout_ticks = s.timeouts_s[static_cast<size_t>(timeout_kind(s.state))] * kTicksPerSecond;
        s.expire_tick = now_tick_ + s.timeout_ticks;
        // A shorter timeout must be filed earlier; a longer one is refiled lazily.
        wheel_.refile_if_earlier(table_.sessions(), index);
    } else {
        set_expiry(s);
    }
}

int Worker::track_tcp(Session& s, const TcpSegment& seg, Direction dir) {
    if (dir == Direction::inbound && (seg.flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin)) == kTcpSyn) {
        // The client's SYN: it starts the tracking while the real has not answered; on a
        // live session it changes nothing.
        if (s.state == TcpState::syn_sent) track_syn(s.track, seg);
        return seg.flags;
    }
    switch (track_segment(s.track, dir == Direction::inbound ? 0 : 1, seg)) {
        case TcpCheck::ok: return seg.flags;
        case TcpCheck::quiet: return seg.flags & ~(kTcpRst | kTcpFin);
        default: return -1;
    }
}

void Worker::expire(uint32_t index, CloseReason why) {
    Session& s = table_.at(index);
    if (s.sync_flags != 0) [[unlikely]] {
        if (expire_synced(index, s)) return;
    }
    if (s.flags & kSessionLogged) [[unlikely]] log_session(s, LogKind::session_close, why);
    // A real that closed first holds the 4-tuple in TIME_WAIT from its last packet (its
    // timer restarts on each): the port stays busy toward it until then, else it is free
    // at once (the client closed first, or a reset: the real keeps no TIME_WAIT).
    uint64_t hold_until = 0;
    if ((s.flags & kSessionRealClosedFirst) && s.state != TcpState::close) {
        const uint32_t idle_ticks = now_tick_ - (s.expire_tick - s.timeout_ticks);
        hold_until = now_ns_ - std::min<uint64_t>(now_ns_, uint64_t(idle_ticks) * kTickNs) + pool_->hold_ns();
    }
    pool_->release(s.local_address, s.outbound.src, s.outbound.src_port, s.outbound.dst_port, now_ns_, hold_until);
    RealCounters& rc = reals_[s.real_slot];
    if (s.state == TcpState::syn_sent && why == CloseReason::expired) [[unlikely]] ++rc.syn_unanswered;
    if (rc.active > 0) add_active(rc, -1);
    ++stats_.sessions_expired;
    table_.erase(index);
}

void Worker::log_session(const Session& s, LogKind kind, CloseReason why) {
    LogRecord r;
    r.time_ns = now_ns_;
    r.inbound = s.inbound;
    r.outbound = s.outbound;
    r.worker = static_cast<uint16_t>(id_);
    r.kind = kind;
    if (kind == LogKind::session_close) {
        r.bytes_in = s.bytes_in;
        r.bytes_out = s.bytes_out;
        r.duration_ms = (now_tick_ - s.created_tick) * static_cast<uint32_t>(kTickNs / 1'000'000);
        r.reason = why;
        r.state = s.state;
    }
    if (!log_ring_.push(r)) ++stats_.log_dropped;
}

Action Worker::icmp_error(PacketView& pkt, const ParsedPacket& p, const ServiceTable& services, bool handed_in) {
    const uint32_t inner_offset = p.payload_offset;
    const uint32_t ip_end = p.l4_offset + p.l4_length;
    ParsedPacket inner = parse_inner_ip(pkt.data + inner_offset, ip_end - inner_offset, p.ipv6);
    if (inner.status != ParseStatus::ok || (inner.key.proto != kTcp && inner.key.proto != kUdp)) {
        return drop(DropReason::icmp_no_session);
    }
    FlowKey key = inner.key.reversed();
    Direction want;
    uint32_t owner;
    if (int32_t laddr_owner = view_.local_address_owner(inner.key.src); laddr_owner >= 0) {
        // It quotes a packet we sent toward a real: the session's outbound tuple.
        want = Direction::outbound;
        owner = static_cast<uint32_t>(laddr_owner);
    } else if (services.find(inner.key.src, inner.key.src_port, inner.key.proto) != nullptr) {
        // It quotes a packet we sent toward a client: the session's inbound tuple.
        want = Direction::inbound;
        owner = view_.inbound_owner(key);
    } else {
        return to_control(pkt, p);
    }
    if (owner != id_ && !handed_in) {
        ++stats_.handed_over;
        return Action{Verdict::hand_over, 0, static_cast<uint16_t>(owner)};
    }
    SessionRef ref = table_.lookup(key, hash_key(key));
    if (!ref || ref.direction != want) return drop(DropReason::icmp_no_session);
    if (p.ttl <= 1) return drop(DropReason::ttl_exceeded);
    Session& s = *ref.session;
    if (s.neighbour_generation != view_.neighbours().generation()) resolve_macs(s);
    const uint8_t needed = want == Direction::outbound ? kSessionMacToClient : kSessionMacToReal;
    if (!(s.flags & needed)) return drop(DropReason::no_neighbour);
    uint8_t port;
    const uint8_t* mac;
    if (want == Direction::outbound) {
        if ((s.flags & kSessionClientAddress) && (s.ca_flags & kCaHeaderSent)) [[unlikely]] {
            // It quotes a segment in the real's numbering; the client checks its own.
            const uint32_t quoted_l4 = inner_offset + inner.l4_offset;
            unshift_quoted_seq(pkt.data + quoted_l4, ip_end - quoted_l4, seq_shift_of(s));
        }
        // The quoted packet becomes the one the client sent (client:cport -> VIP:vport).
        translate_icmp_error(pkt.data, ip_end, p, inner_offset, inner, s.inbound.dst, s.inbound.src,
                             Endpoint{s.inbound.src, s.inbound.src_port}, Endpoint{s.inbound.dst, s.inbound.dst_port});
        port = s.port_to_client;
        mac = s.mac_to_client;
    } else {
        // The quoted packet becomes the one the real sent (real:rport -> laddr:lport).
        translate_icmp_error(pkt.data, ip_end, p, inner_offset, inner, s.outbound.dst, s.outbound.src,
                             Endpoint{s.outbound.src, s.outbound.src_port},
                             Endpoint{s.outbound.dst, s.outbound.dst_port});
        port = s.port_to_real;
        mac = s.mac_to_real;
    }
    set_ethernet(pkt.data, MacAddress{mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]}, view_.port_mac(port));
    ++stats_.icmp_translated;
    return transmit(pkt, port);
}

}  // namespace dplb::core
