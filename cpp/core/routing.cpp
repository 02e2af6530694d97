// RouteTable lookups and the seqlock-protected NeighbourTable.
#include "core/routing.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/flow_key.hpp"

namespace dplb::core {

RouteTable::RouteTable(const std::vector<PortConfig>& ports) {
    for (size_t i = 0; i < ports.size(); ++i) {
        for (const Prefix& p : ports[i].addresses) connected_.push_back({p, static_cast<uint8_t>(i)});
        for (const IpAddress& g : ports[i].gateways) gateways_.push_back({static_cast<uint8_t>(i), g});
    }
    std::stable_sort(connected_.begin(), connected_.end(),
                     [](const Connected& a, const Connected& b) { return a.prefix.length > b.prefix.length; });
}

std::optional<Route> RouteTable::lookup(const IpAddress& dst) const {
    for (const Connected& c : connected_) {
        if (c.prefix.address.is_v4() == dst.is_v4() && c.prefix.contains(dst)) return Route{c.port, dst};
    }
    for (const Route& g : gateways_) {
        if (g.next_hop.is_v4() == dst.is_v4()) return g;
    }
    return std::nullopt;
}

bool RouteTable::is_port_address(const IpAddress& a) const {
    return std::any_of(connected_.begin(), connected_.end(),
                       [&](const Connected& c) { return c.prefix.address == a; });
}

NeighbourTable::NeighbourTable(uint32_t capacity) : slots_(std::bit_ceil(std::max(capacity, 16u) * 2)) {}

size_t NeighbourTable::home(uint8_t port, const IpAddress& ip) const {
    FlowKey k;
    k.dst = ip;
    k.proto = port;
    return hash_key(k) & (slots_.size() - 1);
}

void NeighbourTable::set(uint8_t port, const IpAddress& ip, const MacAddress& mac) {
    size_t mask = slots_.size() - 1;
    size_t target = slots_.size();
    for (size_t i = home(port, ip), n = 0; n < slots_.size(); i = (i + 1) & mask, ++n) {
        Slot& s = slots_[i];
        if (s.state == 1 && s.port == port && s.ip == ip) {
            target = i;
            break;
        }
        if (s.state != 1 && target == slots_.size()) target = i;
        if (s.state == 0) break;
    }
    if (target == slots_.size()) return;  // full: the packet path drops as no_neighbour
    Slot& s = slots_[target];
    if (s.state == 1 && s.mac == mac) return;
    s.seq.fetch_add(1, std::memory_order_acq_rel);
    std::atomic_thread_fence(std::memory_order_release);
    s.port = port;
    s.ip = ip;
    s.mac = mac;
    s.state = 1;
    s.seq.fetch_add(1, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
}

void NeighbourTable::remove(uint8_t port, const IpAddress& ip) {
    size_t mask = slots_.size() - 1;
    for (size_t i = home(port, ip), n = 0; n < slots_.size(); i = (i + 1) & mask, ++n) {
        Slot& s = slots_[i];
        if (s.state == 0) return;
        if (s.state == 1 && s.port == port && s.ip == ip) {
            s.seq.fetch_add(1, std::memory_order_acq_rel);
            s.state = 2;
            s.seq.fetch_add(1, std::memory_order_release);
            generation_.fetch_add(1, std::memory_order_acq_rel);
            return;
        }
    }
}

std::optional<MacAddress> NeighbourTable::lookup(uint8_t port, const IpAddress& ip) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = home(port, ip), n = 0; n < slots_.size(); i = (i + 1) & mask, ++n) {
        const Slot& s = slots_[i];
        for (;;) {
            uint32_t before = s.seq.load(std::memory_order_acquire);
            if (before & 1) continue;
            uint8_t state = s.state;
            bool match = state == 1 && s.port == port && s.ip == ip;
            MacAddress mac = s.mac;
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s.seq.load(std::memory_order_relaxed) != before) continue;
            if (state == 0) return std::nullopt;
            if (match) return mac;
            break;
        }
    }
    return std::nullopt;
}

std::vector<NeighbourTable::Entry> NeighbourTable::entries() const {
    std::vector<Entry> out;
    for (const Slot& s : slots_) {
        if (s.state == 1) out.push_back({s.port, s.ip, s.mac});
    }
    return out;
}

}  // namespace dplb::core
