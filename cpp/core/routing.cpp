// RouteTable lookups, the seqlock-protected NeighbourTable and what it learns.
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

NeighbourTable::NeighbourTable(uint32_t capacity)
    : slots_(std::bit_ceil(std::max(capacity, 16u) * 2)), capacity_(std::max(capacity, 1u)) {}

size_t NeighbourTable::home(uint8_t port, const IpAddress& ip) const {
    FlowKey k;
    k.dst = ip;
    k.proto = port;
    return hash_key(k) & (slots_.size() - 1);
}

NeighbourTable::Payload NeighbourTable::pack(uint8_t state, uint8_t port, const IpAddress& ip, const MacAddress& mac) {
    Payload p;
    uint64_t m = 0;
    std::memcpy(&m, mac.data(), mac.size());
    p.head = uint64_t(state) | uint64_t(port) << 8 | m << 16;
    std::memcpy(p.ip_words, ip.bytes.data(), sizeof p.ip_words);
    return p;
}

bool NeighbourTable::matches(const Payload& p, uint8_t port, const IpAddress& ip) {
    uint64_t w[2];
    std::memcpy(w, ip.bytes.data(), sizeof w);
    return p.state() == kUsed && static_cast<uint8_t>(p.head >> 8) == port && p.ip_words[0] == w[0] &&
           p.ip_words[1] == w[1];
}

MacAddress NeighbourTable::mac_of(const Payload& p) {
    MacAddress mac;
    const uint64_t m = p.head >> 16;
    std::memcpy(mac.data(), &m, mac.size());
    return mac;
}

NeighbourTable::Payload NeighbourTable::peek(const Slot& s) {
    return {s.head.load(std::memory_order_relaxed),
            {s.ip_words[0].load(std::memory_order_relaxed), s.ip_words[1].load(std::memory_order_relaxed)}};
}

// Reader side of the seqlock: acquire loads (plain loads on x86) order the payload
// between the two reads of the counter; a changed or odd counter means a torn copy.
NeighbourTable::Payload NeighbourTable::read(const Slot& s) {
    for (;;) {
        const uint32_t before = s.seq.load(std::memory_order_acquire);
        Payload p{s.head.load(std::memory_order_acquire),
                  {s.ip_words[0].load(std::memory_order_acquire), s.ip_words[1].load(std::memory_order_acquire)}};
        if (!(before & 1) && s.seq.load(std::memory_order_relaxed) == before) [[likely]] return p;
    }
}

// Writer side: the counter goes odd before any payload word changes (the release stores
// keep it first) and even again after the last one.
void NeighbourTable::write(Slot& s, const Payload& p) {
    const uint32_t seq = s.seq.load(std::memory_order_relaxed);
    s.seq.store(seq + 1, std::memory_order_relaxed);
    s.head.store(p.head, std::memory_order_release);
    s.ip_words[0].store(p.ip_words[0], std::memory_order_release);
    s.ip_words[1].store(p.ip_words[1], std::memory_order_release);
    s.seq.store(seq + 2, std::memory_order_release);
}

size_t NeighbourTable::home_of(const Payload& p) const {
    IpAddress ip;
    std::memcpy(ip.bytes.data(), p.ip_words, sizeof p.ip_words);
    return home(static_cast<uint8_t>(p.head >> 8), ip);
}

NeighbourTable::SetResult NeighbourTable::set(uint8_t port, const IpAddress& ip, const MacAddress& mac) {
    const size_t mask = slots_.size() - 1;
    size_t i = home(port, ip);
    for (uint32_t n = 0; n < kMaxProbe; i = (i + 1) & mask, ++n) {
        const Payload p = peek(slots_[i]);
        if (p.state() == kEmpty) {
            if (used_ >= capacity_) return SetResult::full;
            write(slots_[i], pack(kUsed, port, ip, mac));
            ++used_;
            generation_.fetch_add(1, std::memory_order_acq_rel);
            return SetResult::added;
        }
        if (matches(p, port, ip)) {
            if (mac_of(p) == mac) return SetResult::unchanged;
            write(slots_[i], pack(kUsed, port, ip, mac));
            generation_.fetch_add(1, std::memory_order_acq_rel);
            return SetResult::updated;
        }
    }
    return SetResult::full;  // no empty slot within kMaxProbe of home
}

void NeighbourTable::remove(uint8_t port, const IpAddress& ip) {
    const size_t mask = slots_.size() - 1;
    size_t i = home(port, ip);
    for (uint32_t n = 0; n < kMaxProbe; i = (i + 1) & mask, ++n) {
        const Payload p = peek(slots_[i]);
        if (p.state() == kEmpty) return;
        if (matches(p, port, ip)) {
            erase_at(i);
            --used_;
            generation_.fetch_add(1, std::memory_order_acq_rel);
            return;
        }
    }
}

// Every entry lies on an unbroken run of used slots from its home. The gap left at `hole`
// takes the next entry of the run whose home is at or before the gap (it moves closer to
// home, so within kMaxProbe still), which leaves a gap where that entry was, and so on to
// the end of the run; the last gap turns empty. An entry is written to its new slot
// before its old one is reused, and readers that miss during the shift look again.
void NeighbourTable::erase_at(size_t hole) {
    const size_t mask = slots_.size() - 1;
    const uint32_t shifts = shifts_.load(std::memory_order_relaxed);
    shifts_.store(shifts + 1, std::memory_order_relaxed);  // the slot stores below are release
    for (size_t j = (hole + 1) & mask, n = 1; n < slots_.size(); j = (j + 1) & mask, ++n) {
        const Payload p = peek(slots_[j]);
        if (p.state() == kEmpty) break;
        const size_t h = home_of(p);
        if (((hole - h) & mask) < ((j - h) & mask)) {
            write(slots_[hole], p);
            hole = j;
        }
    }
    write(slots_[hole], Payload{});
    shifts_.store(shifts + 2, std::memory_order_release);
}

std::optional<MacAddress> NeighbourTable::lookup(uint8_t port, const IpAddress& ip, uint32_t* probes) const {
    const size_t mask = slots_.size() - 1;
    for (;;) {
        const uint32_t shifts = shifts_.load(std::memory_order_acquire);
        size_t i = home(port, ip);
        for (uint32_t n = 0; n < kMaxProbe; i = (i + 1) & mask, ++n) {
            const Payload p = read(slots_[i]);
            if (probes) *probes = n + 1;
            if (p.state() == kEmpty) break;
            if (matches(p, port, ip)) return mac_of(p);
        }
        // A miss counts only if no removal moved entries meanwhile (slot loads are acquire).
        if (!(shifts & 1) && shifts_.load(std::memory_order_relaxed) == shifts) [[likely]] return std::nullopt;
    }
}

std::vector<NeighbourTable::Entry> NeighbourTable::entries() const {
    std::vector<Entry> out;
    for (const Slot& s : slots_) {
        const Payload p = peek(s);
        if (p.state() != kUsed) continue;
        Entry e{static_cast<uint8_t>(p.head >> 8), IpAddress{}, mac_of(p)};
        std::memcpy(e.ip.bytes.data(), p.ip_words, sizeof p.ip_words);
        out.push_back(e);
    }
    return out;
}

std::string NeighbourLearning::key_of(uint8_t port, const IpAddress& ip) {
    std::string k(reinterpret_cast<const char*>(ip.bytes.data()), ip.bytes.size());
    k.push_back(static_cast<char>(port));
    return k;
}

void NeighbourLearning::set_wanted(const std::vector<std::pair<uint8_t, IpAddress>>& next_hops) {
    wanted_.clear();
    for (const auto& [port, ip] : next_hops) wanted_.insert(key_of(port, ip));
}

void NeighbourLearning::asked(uint8_t port, const IpAddress& ip, uint64_t now_ns) {
    // Bounded: questions older than kPendingNs await nothing any more.
    if (pending_.size() >= 4 * size_t{table_.capacity()}) {
        std::erase_if(pending_, [&](const auto& e) { return now_ns - e.second > kPendingNs; });
    }
    pending_[key_of(port, ip)] = now_ns;
}

NeighbourLearning::Outcome NeighbourLearning::heard(uint8_t port, const IpAddress& ip, const MacAddress& mac,
                                                    uint64_t now_ns) {
    const std::string key = key_of(port, ip);
    if (!table_.lookup(port, ip)) {
        auto pending = pending_.find(key);
        const bool awaited = pending != pending_.end() && now_ns - pending->second <= kPendingNs;
        if (!awaited && !wanted_.contains(key)) {
            ++unsolicited_;
            return Outcome::unsolicited;
        }
        if (pending != pending_.end()) pending_.erase(pending);
    }
    switch (table_.set(port, ip, mac)) {
    case NeighbourTable::SetResult::added:
        return Outcome::learned;
    case NeighbourTable::SetResult::updated:
        return Outcome::updated;
    case NeighbourTable::SetResult::unchanged:
        return Outcome::unchanged;
    case NeighbourTable::SetResult::full:
        break;
    }
    ++refused_full_;
    return Outcome::full;
}

}  // namespace dplb::core
