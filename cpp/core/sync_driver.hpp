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

class SyncDriver {
public:
    static constexpr uint32_t kHeadroom = 128;
    static constexpr uint32_t kTailroom = 128;

    explicit SyncDriver(Engine& engine) : engine_(engine) {}

    // Receives `frame` on `port` at `worker` (default: where RSS puts it).
    DriverResult receive(const uint8_t* frame, uint32_t len, uint8_t port, std::optional<uint32_t> worker);
    // Sets every worker's clock (expiring what is due, within each worker's budget).
    void set_clock(uint64_t now_ns);
    // Every worker publishes that it holds no older snapshot (done after each frame).
    void quiesce();

private:
    Engine& engine_;
    std::vector<uint8_t> buffer_;
};

}  // namespace dplb::core
