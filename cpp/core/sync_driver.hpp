// SyncDriver: runs frames through an Engine on the calling thread, playing the NIC (RSS
// picks the receiving worker) and the hand-over rings (a handed-over frame is processed
// by its owner at once). This is the engine harness's seam: the same Engine a DPDK
// runtime drives, without DPDK.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/engine.hpp"

namespace dplb::core {

struct DriverResult {
    std::vector<std::pair<uint8_t, std::vector<uint8_t>>> sent;  // (port, frame)
    std::vector<uint16_t> workers;  // the workers that handled the frame, in order
    Verdict verdict = Verdict::drop;
};

// What a NIC would count per port: frames (and their bytes) received and sent.
struct PortCounters {
    uint64_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_packets = 0;
    uint64_t tx_bytes = 0;
};

class SyncDriver {
public:
    static constexpr uint32_t kHeadroom = 128;
    static constexpr uint32_t kTailroom = 128;

    explicit SyncDriver(Engine& engine) : engine_(engine), ports_(engine.config().ports.size()) {}

    // Receives `frame` on `port` at `worker` (default: where RSS puts it).
    DriverResult receive(const uint8_t* frame, uint32_t len, uint8_t port, std::optional<uint32_t> worker);
    // Sets every worker's clock (expiring what is due, within each worker's budget).
    void set_clock(uint64_t now_ns);
    // Every worker publishes that it holds no older snapshot (done after each frame).
    void quiesce();
    // Per port, in the order of the engine's ports.
    const std::vector<PortCounters>& port_counters() const { return ports_; }

private:
    Engine& engine_;
    std::vector<uint8_t> buffer_;
    std::vector<PortCounters> ports_;
};

}  // namespace dplb::core
