// The control lcore: answers ARP and IPv6 neighbour solicitations for the VIPs and local
// addresses, learns neighbours into the engine's table, resolves the next hops the data
// path needs (reals, gateways), and carries everything else between the ports and their
// kernel interfaces (the exception path), both ways.
#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>

#include "core/checksum.hpp"
#include "core/packet.hpp"
#include "dpdk/runtime_impl.hpp"

namespace dplb::dpdk {
namespace {

using core::IpAddress;
using core::MacAddress;

constexpr uint64_t kResolveEveryNs = 1'000'000'000ULL;  // unresolved next hops: each second
constexpr uint64_t kRefreshEveryNs = 30'000'000'000ULL;  // resolved ones: each 30 s
constexpr uint64_t kHoldNs = 3'000'000'000ULL;  // a frame waits this long for its MAC
constexpr size_t kHeldPerNeighbour = 16;
constexpr uint64_t kAgingEveryNs = 10'000'000'000ULL;
constexpr uint64_t kNeighbourMaxAgeNs = 300'000'000'000ULL;  // 5 minutes, as ARP caches go
constexpr uint64_t kFullReportEveryNs = 10'000'000'000ULL;  // a full neighbour table: logged each 10 s
constexpr uint32_t kPriorityBursts = 4;  // priority bursts per turn before one of the rest
constexpr uint8_t kIcmp6NeighbourSolicit = 135;
constexpr uint8_t kIcmp6NeighbourAdvert = 136;

struct NextHop {
    uint8_t port;
    IpAddress ip;
    uint64_t last_sent = 0;
};

class ControlLoop {
public:
    explicit ControlLoop(Runtime::Impl& rt)
        : rt_(rt), engine_(*rt.engine), reader_(*rt.engine), learning_(engine_.neighbours()) {
        services_ = &reader_.current();
        collect_next_hops();
    }

    void run() {
        announce();
        while (rt_.running.load(std::memory_order_relaxed)) {
            rt_.control.last_loop_ns.store(now_ns(), std::memory_order_relaxed);  // liveness
            rt_.control.loops.store(rt_.control.loops.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            // The service snapshot of this round: it stays alive until the next round's
            // current() (this lcore takes part in the snapshots' reclaim).
            services_ = &reader_.current();
            uint32_t work = take_from_workers();
            for (size_t p = 0; p < rt_.ports.size(); ++p) work += from_kernel(static_cast<uint8_t>(p));
            work += take_waiting_frames();
            work += answer_neighbour_requests();
            resolve_next_hops();
            age_neighbours();
            if (work == 0) idle_sleep(rt_.options.idle_sleep_us > 0 ? rt_.options.idle_sleep_us : 20);
        }
    }

private:
    // -- what arrives from the ports ------------------------------------------------
    // The control queues rte_flow fills, then the priority ring (ARP/ND, BGP/BFD, the
    // node's own connections), up to kPriorityBursts bursts a turn; then one burst of the
    // rest, so that neither starves.
    uint32_t take_from_workers() {
        uint32_t work = 0;
        rte_mbuf* mbufs[kBurstSize];
        for (const RuntimePort& port : rt_.ports) {  // what rte_flow steered here (setup_control_steering)
            if (port.control_queue < 0) continue;
            uint16_t n = rte_eth_rx_burst(port.port_id, static_cast<uint16_t>(port.control_queue), mbufs, kBurstSize);
            for (uint16_t i = 0; i < n; ++i) {
                // Read as one buffer, as the workers do (their frames are linearized).
                if (mbufs[i]->nb_segs > 1 && rte_pktmbuf_linearize(mbufs[i]) != 0) {
                    rte_pktmbuf_free(mbufs[i]);
                    rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                from_port(mbufs[i]);
            }
            rt_.control.priority_taken.fetch_add(n, std::memory_order_relaxed);
            work += n;
        }
        for (uint32_t b = 0; b < kPriorityBursts; ++b) {
            unsigned n = rte_ring_sc_dequeue_burst(rt_.control.priority_ring, reinterpret_cast<void**>(mbufs),
                                                   kBurstSize, nullptr);
            for (unsigned i = 0; i < n; ++i) from_port(mbufs[i]);
            rt_.control.priority_taken.fetch_add(n, std::memory_order_relaxed);
            work += n;
            if (n < kBurstSize) break;
        }
        unsigned n = rte_ring_sc_dequeue_burst(rt_.control.ring, reinterpret_cast<void**>(mbufs), kBurstSize, nullptr);
        for (unsigned i = 0; i < n; ++i) from_port(mbufs[i]);
        rt_.control.rest_taken.fetch_add(n, std::memory_order_relaxed);
        return work + n;
    }

    void from_port(rte_mbuf* m) {
        int idx = rt_.engine_port_of[m->port];
        if (idx < 0) {
            rte_pktmbuf_free(m);
            return;
        }
        uint8_t port = static_cast<uint8_t>(idx);
        uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
        uint32_t len = m->data_len;
        bool answered = false;
        if (len >= 14 + 28 && core::load_be16(frame + 12) == core::kEtherTypeArp) {
            answered = handle_arp(port, frame);
        } else {
            core::ParsedPacket p = core::parse_packet(frame, len);
            if (p.status == core::ParseStatus::ok && p.ipv6 && p.key.proto == 58 &&
                (p.icmp_type == kIcmp6NeighbourSolicit || p.icmp_type == kIcmp6NeighbourAdvert)) {
                answered = handle_nd(port, frame, len, p);
            }
        }
        if (!answered) to_kernel(port, frame, len);
        rte_pktmbuf_free(m);
    }

    bool owns(uint8_t port, const IpAddress& a) const {
        if (services_->is_vip(a)) return true;
        int32_t owner = engine_.local_address_owner(a);
        if (owner < 0) return false;
        for (const auto& list : engine_.config().ports[port].local_addresses) {
            for (const IpAddress& l : list) {
                if (l == a) return true;
            }
        }
        return false;
    }

    bool handle_arp(uint8_t port, uint8_t* frame) {
        auto* arp = reinterpret_cast<rte_arp_hdr*>(frame + 14);
        if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
            arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
            return false;
        }
        IpAddress sender = IpAddress::from_v4(reinterpret_cast<const uint8_t*>(&arp->arp_data.arp_sip));
        IpAddress target = IpAddress::from_v4(reinterpret_cast<const uint8_t*>(&arp->arp_data.arp_tip));
        MacAddress sender_mac;
        std::memcpy(sender_mac.data(), arp->arp_data.arp_sha.addr_bytes, 6);
        if (!(sender == IpAddress::from_v4(reinterpret_cast<const uint8_t*>("\0\0\0\0")))) {
            learn(port, sender, sender_mac);
        }
        if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) || !owns(port, target)) return false;
        send_arp(port, RTE_ARP_OP_REPLY, target, sender, sender_mac);
        rt_.control.arp_replies.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    bool handle_nd(uint8_t port, uint8_t* frame, uint32_t len, const core::ParsedPacket& p) {
        const uint8_t* icmp = frame + p.l4_offset;
        uint32_t icmp_len = p.l4_length;
        if (icmp_len < 24) return false;
        IpAddress target = IpAddress::from_v6(icmp + 8);
        // Learn from the link-layer address option (source in NS, target in NA).
        for (uint32_t off = 24; off + 8 <= icmp_len && icmp[off + 1] != 0; off += icmp[off + 1] * 8u) {
            uint8_t type = icmp[off];
            if ((type == 1 && p.icmp_type == kIcmp6NeighbourSolicit) ||
                (type == 2 && p.icmp_type == kIcmp6NeighbourAdvert)) {
                MacAddress mac;
                std::memcpy(mac.data(), icmp + off + 2, 6);
                const IpAddress& who = p.icmp_type == kIcmp6NeighbourSolicit ? p.key.src : target;
                if (who.v6()[0] != 0 || who.v6()[1] != 0) learn(port, who, mac);
            }
        }
        (void)len;
        if (p.icmp_type != kIcmp6NeighbourSolicit || !owns(port, target)) return false;
        MacAddress to_mac;
        std::memcpy(to_mac.data(), frame + 6, 6);
        send_na(port, target, p.key.src, to_mac);
        rt_.control.nd_replies.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    // Only what the node needs gets in (NeighbourLearning): a scan or a spoofed sender
    // is counted and ignored, and a full table is counted and logged, not silent.
    void learn(uint8_t port, const IpAddress& ip, const MacAddress& mac) {
        const uint64_t now = now_ns();
        switch (learning_.heard(port, ip, mac, now)) {
        case core::NeighbourLearning::Outcome::unsolicited:
            rt_.control.neighbours_ignored.fetch_add(1, std::memory_order_relaxed);
            return;
        case core::NeighbourLearning::Outcome::full:
            rt_.control.neighbours_full.fetch_add(1, std::memory_order_relaxed);
            if (last_full_report_ == 0 || now - last_full_report_ >= kFullReportEveryNs) {
                last_full_report_ = now;
                report_full(port, ip);
            }
            return;
        default:
            break;
        }
        const std::string key = key_of(port, ip);
        confirmed_[key] = now;
        auto held = held_.find(key);
        if (held == held_.end()) return;
        for (const Held& h : held->second) send_held(h.frame, port, mac);
        held_.erase(held);
    }

    void report_full(uint8_t port, const IpAddress& ip) {
        const std::string fields = "{\"capacity\":" + std::to_string(engine_.neighbours().capacity()) +
                                   ",\"port\":" + std::to_string(port) + ",\"address\":\"" + ip.to_string() + "\"}";
        if (rt_.logger) {
            rt_.logger->event("neighbour_table_full", fields);
        } else {
            fprintf(stderr, "dplb: neighbour table full, not learned: %s\n", fields.c_str());
        }
    }

    // -- frames waiting for a neighbour ------------------------------------------------
    struct Held {
        rte_mbuf* frame;
        uint64_t since;
    };

    void send_held(rte_mbuf* m, uint8_t port, const MacAddress& mac) {
        std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), mac.data(), 6);
        if (rte_ring_sp_enqueue(rt_.ports[port].inject, m) != 0) {
            rte_pktmbuf_free(m);
            rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // A rewritten frame whose next hop had no MAC yet: send it if the answer came in the
    // meantime, else keep it (a few per neighbour, a few seconds) and ask.
    uint32_t take_waiting_frames() {
        rte_mbuf* mbufs[kBurstSize];
        unsigned n = rte_ring_sc_dequeue_burst(rt_.control.resolve_ring, reinterpret_cast<void**>(mbufs), kBurstSize,
                                               nullptr);
        const uint64_t now = now_ns();
        for (unsigned i = 0; i < n; ++i) {
            rte_mbuf* m = mbufs[i];
            const uint8_t port = static_cast<uint8_t>(m->hash.usr);
            core::ParsedPacket p = core::parse_packet(rte_pktmbuf_mtod(m, uint8_t*), m->data_len);
            auto route = p.status == core::ParseStatus::ok ? engine_.routes().lookup(p.key.dst) : std::nullopt;
            if (!route || route->port != port) {
                rte_pktmbuf_free(m);
                rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            if (auto mac = engine_.neighbours().lookup(port, route->next_hop)) {
                send_held(m, port, *mac);
                continue;
            }
            std::vector<Held>& queue = held_[key_of(port, route->next_hop)];
            if (queue.size() >= kHeldPerNeighbour) {
                rte_pktmbuf_free(m);
                rt_.control.held_expired.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            queue.push_back({m, now});
            rt_.control.held.fetch_add(1, std::memory_order_relaxed);
            ask(port, route->next_hop, now);
        }
        return n;
    }

    void expire_held() {
        const uint64_t now = now_ns();
        for (auto it = held_.begin(); it != held_.end();) {
            auto& queue = it->second;
            while (!queue.empty() && now - queue.front().since > kHoldNs) {
                rte_pktmbuf_free(queue.front().frame);
                queue.erase(queue.begin());
                rt_.control.held_expired.fetch_add(1, std::memory_order_relaxed);
            }
            it = queue.empty() ? held_.erase(it) : std::next(it);
        }
    }

    // Neighbours not heard from for kNeighbourMaxAgeNs are forgotten: a next hop the data
    // path still needs is asked for again (refreshes keep the ones in use confirmed).
    void age_neighbours() {
        const uint64_t now = now_ns();
        expire_held();
        if (now - last_aging_ < kAgingEveryNs) return;
        last_aging_ = now;
        for (const core::NeighbourTable::Entry& e : engine_.neighbours().entries()) {
            auto it = confirmed_.find(key_of(e.port, e.ip));
            if (it == confirmed_.end()) {
                confirmed_[key_of(e.port, e.ip)] = now;  // learned before we kept time
            } else if (now - it->second > kNeighbourMaxAgeNs) {
                engine_.neighbours().remove(e.port, e.ip);
                confirmed_.erase(it);
            }
        }
    }

    // -- the exception path ---------------------------------------------------------
    void to_kernel(uint8_t port, const uint8_t* frame, uint32_t len) {
        int fd = rt_.ports[port].tap_fd;
        if (fd < 0) return;
        if (write(fd, frame, len) == static_cast<ssize_t>(len)) {
            rt_.control.to_kernel.fetch_add(1, std::memory_order_relaxed);
        } else {
            rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
        }
    }

    uint32_t from_kernel(uint8_t port) {
        int fd = rt_.ports[port].tap_fd;
        if (fd < 0) return 0;
        uint32_t count = 0;
        uint8_t buf[9216];
        for (; count < kBurstSize; ++count) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) break;
            send(port, buf, static_cast<uint32_t>(n));
            rt_.control.from_kernel.fetch_add(1, std::memory_order_relaxed);
        }
        return count;
    }

    // -- sending ----------------------------------------------------------------------
    void send(uint8_t port, const uint8_t* frame, uint32_t len) {
        RuntimePort& rp = rt_.ports[port];
        rte_mbuf* m = rte_pktmbuf_alloc(rp.pool);
        if (m == nullptr || len > rte_pktmbuf_tailroom(m)) {
            if (m) rte_pktmbuf_free(m);
            rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(len)), frame, len);
        if (rte_ring_sp_enqueue(rp.inject, m) != 0) {
            rte_pktmbuf_free(m);
            rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
        }
    }

    void send_arp(uint8_t port, uint16_t op, const IpAddress& from, const IpAddress& to, const MacAddress& to_mac) {
        uint8_t f[60] = {};
        const MacAddress& mine = engine_.port_mac(port);
        static constexpr MacAddress kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        const MacAddress& dst = op == RTE_ARP_OP_REQUEST ? kBroadcast : to_mac;
        std::memcpy(f, dst.data(), 6);
        std::memcpy(f + 6, mine.data(), 6);
        core::store_be16(f + 12, core::kEtherTypeArp);
        uint8_t* a = f + 14;
        core::store_be16(a, RTE_ARP_HRD_ETHER);
        core::store_be16(a + 2, RTE_ETHER_TYPE_IPV4);
        a[4] = 6;
        a[5] = 4;
        core::store_be16(a + 6, op);
        std::memcpy(a + 8, mine.data(), 6);
        std::memcpy(a + 14, from.v4(), 4);
        if (op == RTE_ARP_OP_REPLY) std::memcpy(a + 18, to_mac.data(), 6);
        std::memcpy(a + 24, to.v4(), 4);
        send(port, f, sizeof f);
    }

    // An ICMPv6 neighbour message (NS or NA) with one link-layer address option.
    void send_nd(uint8_t port, uint8_t type, const IpAddress& src, const IpAddress& dst, const IpAddress& target,
                 const MacAddress& dst_mac, uint8_t flags) {
        uint8_t f[14 + 40 + 32] = {};
        const MacAddress& mine = engine_.port_mac(port);
        std::memcpy(f, dst_mac.data(), 6);
        std::memcpy(f + 6, mine.data(), 6);
        core::store_be16(f + 12, core::kEtherTypeIpv6);
        uint8_t* ip = f + 14;
        ip[0] = 0x60;
        core::store_be16(ip + 4, 32);
        ip[6] = 58;
        ip[7] = 255;
        std::memcpy(ip + 8, src.v6(), 16);
        std::memcpy(ip + 24, dst.v6(), 16);
        uint8_t* icmp = ip + 40;
        icmp[0] = type;
        icmp[4] = flags;
        std::memcpy(icmp + 8, target.v6(), 16);
        icmp[24] = type == kIcmp6NeighbourSolicit ? 1 : 2;  // source / target link-layer address
        icmp[25] = 1;
        std::memcpy(icmp + 26, mine.data(), 6);
        uint16_t sum = core::l4_checksum(src, dst, 58, icmp, 32);
        std::memcpy(icmp + 2, &sum, 2);
        send(port, f, sizeof f);
    }

    void send_na(uint8_t port, const IpAddress& target, const IpAddress& to, const MacAddress& to_mac) {
        bool unspecified = to == IpAddress{};
        IpAddress dst = to;
        MacAddress dst_mac = to_mac;
        if (unspecified) {  // DAD probe: answer all nodes
            dst = *IpAddress::parse("ff02::1");
            dst_mac = {0x33, 0x33, 0, 0, 0, 1};
        }
        // Router=0, Solicited (unless to all nodes), Override.
        send_nd(port, kIcmp6NeighbourAdvert, target, dst, target, dst_mac, unspecified ? 0x20 : 0x60);
    }

    void send_ns(uint8_t port, const IpAddress& target) {
        // Solicited-node multicast ff02::1:ffXX:XXXX and its MAC 33:33:ff:XX:XX:XX.
        IpAddress dst = *IpAddress::parse("ff02::1:ff00:0");
        dst.bytes[13] = target.bytes[13];
        dst.bytes[14] = target.bytes[14];
        dst.bytes[15] = target.bytes[15];
        MacAddress mac{0x33, 0x33, 0xff, target.bytes[13], target.bytes[14], target.bytes[15]};
        IpAddress src = port_address(port, false);
        send_nd(port, kIcmp6NeighbourSolicit, src, dst, target, mac, 0);
    }

    IpAddress port_address(uint8_t port, bool v4) const {
        for (const core::Prefix& p : engine_.config().ports[port].addresses) {
            if (p.address.is_v4() == v4) return p.address;
        }
        return IpAddress{};
    }

    // -- next hops ------------------------------------------------------------------
    void collect_next_hops() {
        auto add = [&](const IpAddress& dst) {
            auto route = engine_.routes().lookup(dst);
            if (!route) return;
            for (const NextHop& h : next_hops_) {
                if (h.port == route->port && h.ip == route->next_hop) return;
            }
            next_hops_.push_back({route->port, route->next_hop, 0});
        };
        for (const core::ServiceEntry& s : services_->services()) {
            for (const core::RealEntry& r : s.reals) add(r.address);
        }
        for (const core::PortConfig& p : engine_.config().ports) {
            for (const IpAddress& g : p.gateways) add(g);
        }
        std::vector<std::pair<uint8_t, IpAddress>> wanted;
        for (const NextHop& h : next_hops_) wanted.emplace_back(h.port, h.ip);
        learning_.set_wanted(wanted);
    }

    void resolve_next_hops() {
        uint64_t now = now_ns();
        if (now - last_resolve_ < kResolveEveryNs / 4) return;
        last_resolve_ = now;
        if (services_->generation() != services_generation_) {
            services_generation_ = services_->generation();
            collect_next_hops();
        }
        for (NextHop& h : next_hops_) {
            bool known = engine_.neighbours().lookup(h.port, h.ip).has_value();
            uint64_t every = known ? kRefreshEveryNs : kResolveEveryNs;
            if (h.last_sent != 0 && now - h.last_sent < every) continue;
            h.last_sent = now;
            solicit(h.port, h.ip, now);
        }
    }

    // Next hops the workers found missing (a client's first packet, a new real): ask at
    // once, then at most every 200 ms per address.
    uint32_t answer_neighbour_requests() {
        uint32_t count = 0;
        const uint64_t now = now_ns();
        for (uint32_t w = 0; w < engine_.worker_count(); ++w) {
            core::NeighbourRequest req;
            while (count < 256 && engine_.worker(w).take_neighbour_request(req)) {
                ++count;
                if (!engine_.neighbours().lookup(req.port, req.ip)) ask(req.port, req.ip, now);
            }
        }
        if (asked_.size() > 65536) asked_.clear();  // bounded: old entries only rate-limit
        return count;
    }

    // ARP or a neighbour solicitation, at most every 200 ms per address.
    void ask(uint8_t port, const IpAddress& ip, uint64_t now) {
        uint64_t& last = asked_[key_of(port, ip)];
        if (last != 0 && now - last < 200'000'000ULL) return;
        last = now;
        solicit(port, ip, now);
    }

    // An ARP request or a neighbour solicitation for `ip`; its answer will be learned.
    void solicit(uint8_t port, const IpAddress& ip, uint64_t now) {
        learning_.asked(port, ip, now);
        if (ip.is_v4()) {
            send_arp(port, RTE_ARP_OP_REQUEST, port_address(port, true), ip, MacAddress{});
        } else {
            send_ns(port, ip);
        }
        rt_.control.resolutions_sent.fetch_add(1, std::memory_order_relaxed);
    }

    static std::string key_of(uint8_t port, const IpAddress& ip) {
        std::string k(reinterpret_cast<const char*>(ip.bytes.data()), 16);
        k.push_back(static_cast<char>(port));
        return k;
    }

    // Gratuitous ARP for the VIPs and local addresses, so neighbours learn them at start.
    void announce() {
        for (size_t p = 0; p < rt_.ports.size(); ++p) {
            uint8_t port = static_cast<uint8_t>(p);
            auto garp = [&](const IpAddress& a) {
                if (a.is_v4()) send_arp(port, RTE_ARP_OP_REQUEST, a, a, MacAddress{});
            };
            for (const core::ServiceEntry& s : services_->services()) garp(s.vip);
            for (const auto& list : engine_.config().ports[p].local_addresses) {
                for (const IpAddress& a : list) garp(a);
            }
        }
    }

    Runtime::Impl& rt_;
    core::Engine& engine_;
    core::SnapshotReader reader_;
    const core::ServiceTable* services_ = nullptr;
    core::NeighbourLearning learning_;
    uint64_t last_full_report_ = 0;
    std::vector<NextHop> next_hops_;
    std::unordered_map<std::string, uint64_t> asked_;      // (address, port) -> when last asked
    std::unordered_map<std::string, uint64_t> confirmed_;  // (address, port) -> when last heard
    uint64_t last_aging_ = 0;
    std::unordered_map<std::string, std::vector<Held>> held_;  // (address, port) -> frames
    uint64_t last_resolve_ = 0;
    uint64_t services_generation_ = 0;
};

}  // namespace

int control_main(void* arg) {
    auto* rt = static_cast<Runtime::Impl*>(arg);
    ControlLoop(*rt).run();
    return 0;
}

}  // namespace dplb::dpdk
