// Where a packet leaves: RouteTable (connected subnets and a gateway per port, fixed at
// start), NeighbourTable (next hop -> MAC, written by the control side, read by the
// workers without locks through per-entry sequence counters) and NeighbourLearning (what
// the control side lets into that table).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/engine_config.hpp"

namespace dplb::core {

struct Route {
    uint8_t port = 0;
    IpAddress next_hop;
};

class RouteTable {
public:
    explicit RouteTable(const std::vector<PortConfig>& ports);
    // Longest connected prefix first, then the first port with a gateway of the family.
    std::optional<Route> lookup(const IpAddress& dst) const;
    // True when `a` is one of the ports' own addresses.
    bool is_port_address(const IpAddress& a) const;

private:
    struct Connected {
        Prefix prefix;
        uint8_t port;
    };
    std::vector<Connected> connected_;  // longest prefix first
    std::vector<Route> gateways_;
};

using MacAddress = std::array<uint8_t, 6>;

// Next hop -> MAC. Open addressing with linear probing, every entry within kMaxProbe
// slots of its home, and no tombstones: a removal shifts the entries after it back into
// the gap (Knuth's algorithm R), so a miss (which happens on the worker path) reads only
// up to the end of its run, never more than kMaxProbe slots, whatever the history of sets
// and removes. A reader that misses while a shift was under way (a table-wide counter,
// odd during one) looks again, so an entry being moved is never missed. Each slot is a seqlock (DPDK's rte_seqlock, without DPDK): a sequence counter, odd
// while the one writer changes the slot, over payload words that are themselves atomic
// (relaxed, ordered by acquire/release), so a reader racing the writer never reads torn
// data and retries instead.
class NeighbourTable {
public:
    static constexpr uint32_t kMaxProbe = 32;

    // At most `capacity` entries; twice as many slots, so runs stay short.
    explicit NeighbourTable(uint32_t capacity = 4096);

    enum class SetResult : uint8_t {
        added,
        updated,    // the entry had another MAC
        unchanged,  // the entry had this MAC already
        full,       // no room: `capacity` entries, or no free slot within kMaxProbe of home
    };

    // Control side (one writer).
    SetResult set(uint8_t port, const IpAddress& ip, const MacAddress& mac);
    void remove(uint8_t port, const IpAddress& ip);

    // Any worker. `probes` (optional) gets the number of slots read.
    std::optional<MacAddress> lookup(uint8_t port, const IpAddress& ip, uint32_t* probes = nullptr) const;
    // Grows on every change, so a session can tell its cached MACs are stale.
    uint32_t generation() const { return generation_.load(std::memory_order_acquire); }

    struct Entry {
        uint8_t port;
        IpAddress ip;
        MacAddress mac;
    };
    std::vector<Entry> entries() const;  // control side
    uint32_t size() const { return used_; }  // control side
    uint32_t capacity() const { return capacity_; }

private:
    enum : uint8_t { kEmpty = 0, kUsed = 1 };
    // The payload in three 64-bit words: [state | port << 8 | MAC << 16], the address.
    struct alignas(32) Slot {
        std::atomic<uint32_t> seq{0};  // odd while being written
        std::atomic<uint64_t> head{0};
        std::atomic<uint64_t> ip_words[2] = {0, 0};
    };
    struct Payload {
        uint64_t head;
        uint64_t ip_words[2];
        uint8_t state() const { return static_cast<uint8_t>(head); }
    };
    static Payload pack(uint8_t state, uint8_t port, const IpAddress& ip, const MacAddress& mac);
    static bool matches(const Payload& p, uint8_t port, const IpAddress& ip);
    static MacAddress mac_of(const Payload& p);
    // The writer's own view of a slot (no concurrent writer: plain relaxed loads).
    static Payload peek(const Slot& s);
    // A consistent copy of a slot, as a reader (retries while it is being written).
    static Payload read(const Slot& s);
    static void write(Slot& s, const Payload& p);
    size_t home(uint8_t port, const IpAddress& ip) const;
    size_t home_of(const Payload& p) const;
    // Removes the entry in slot `i`, shifting back the entries of its run that may move.
    void erase_at(size_t i);

    std::vector<Slot> slots_;
    uint32_t capacity_;
    uint32_t used_ = 0;  // control side
    std::atomic<uint32_t> generation_{1};
    std::atomic<uint32_t> shifts_{0};  // odd while a removal moves entries
};

// What the control side learns from ARP and neighbour discovery. A sender is learned only
// when the node needs it: the next hops it was told about (gateways, the reals' next hops),
// the addresses it asked for and awaits an answer from, and the neighbours it has already
// (a MAC change). Anyone else (a scan, a spoofed sender) is ignored: it must not take a
// slot a real next hop will need. Control side only.
class NeighbourLearning {
public:
    // An answer is awaited this long after the question.
    static constexpr uint64_t kPendingNs = 5'000'000'000ULL;

    explicit NeighbourLearning(NeighbourTable& table) : table_(table) {}

    // The next hops the configuration names; replaces the previous list.
    void set_wanted(const std::vector<std::pair<uint8_t, IpAddress>>& next_hops);
    // The node sent an ARP request or a neighbour solicitation for `ip` at `now_ns`.
    void asked(uint8_t port, const IpAddress& ip, uint64_t now_ns);

    enum class Outcome : uint8_t { learned, updated, unchanged, unsolicited, full };
    // An ARP packet or a neighbour message said `ip` is at `mac`.
    Outcome heard(uint8_t port, const IpAddress& ip, const MacAddress& mac, uint64_t now_ns);

    uint64_t unsolicited() const { return unsolicited_; }
    uint64_t refused_full() const { return refused_full_; }

private:
    static std::string key_of(uint8_t port, const IpAddress& ip);
    NeighbourTable& table_;
    std::unordered_set<std::string> wanted_;
    std::unordered_map<std::string, uint64_t> pending_;  // key -> when asked
    uint64_t unsolicited_ = 0;
    uint64_t refused_full_ = 0;
};

}  // namespace dplb::core
