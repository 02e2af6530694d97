// Where a packet leaves: RouteTable (connected subnets and a gateway per port, fixed at
// start) and NeighbourTable (next hop -> MAC, written by the control side, read by the
// workers without locks through per-entry sequence counters).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
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

class NeighbourTable {
public:
    explicit NeighbourTable(uint32_t capacity = 4096);

    // Control side (one writer).
    void set(uint8_t port, const IpAddress& ip, const MacAddress& mac);
    void remove(uint8_t port, const IpAddress& ip);

    // Any worker.
    std::optional<MacAddress> lookup(uint8_t port, const IpAddress& ip) const;
    // Grows on every change, so a session can tell its cached MACs are stale.
    uint32_t generation() const { return generation_.load(std::memory_order_acquire); }

    struct Entry {
        uint8_t port;
        IpAddress ip;
        MacAddress mac;
    };
    std::vector<Entry> entries() const;  // control side

private:
    struct Slot {
        std::atomic<uint32_t> seq{0};  // odd while being written
        uint8_t state = 0;             // 0 empty, 1 used, 2 deleted
        uint8_t port = 0;
        IpAddress ip;
        MacAddress mac{};
    };
    size_t home(uint8_t port, const IpAddress& ip) const;
    std::vector<Slot> slots_;
    std::atomic<uint32_t> generation_{1};
};

}  // namespace dplb::core
