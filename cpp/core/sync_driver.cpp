// SyncDriver: one frame through the engine, hand-overs followed synchronously.
#include "core/sync_driver.hpp"

#include <cstring>
#include <stdexcept>

namespace dplb::core {

DriverResult SyncDriver::receive(const uint8_t* frame, uint32_t len, uint8_t port, std::optional<uint32_t> worker) {
    if (port >= engine_.config().ports.size()) throw std::out_of_range("port: no such port");
    uint32_t w = worker ? *worker : engine_.rss_worker(frame, len);
    if (w >= engine_.worker_count()) throw std::out_of_range("worker: no such worker");
    ports_[port].rx_packets++;
    ports_[port].rx_bytes += len;
    buffer_.assign(kHeadroom + len + kTailroom, 0);
    std::memcpy(buffer_.data() + kHeadroom, frame, len);
    PacketView pkt{buffer_.data() + kHeadroom, len, kHeadroom, kTailroom, port};
    DriverResult result;
    bool handed_in = false;
    for (;;) {
        result.workers.push_back(static_cast<uint16_t>(w));
        engine_.worker(w).adopt_calling_thread();
        Action a = engine_.worker(w).process(pkt, handed_in);
        result.verdict = a.verdict;
        if (a.verdict == Verdict::hand_over && !handed_in) {
            w = a.worker;
            handed_in = true;
            continue;
        }
        if (a.verdict == Verdict::transmit) {
            result.sent.emplace_back(a.port, std::vector<uint8_t>(pkt.data, pkt.data + pkt.len));
            PortCounters& out = ports_.at(a.port);
            out.tx_packets++;
            out.tx_bytes += pkt.len;
        }
        quiesce();
        return result;
    }
}

void SyncDriver::set_clock(uint64_t now_ns) {
    for (uint32_t w = 0; w < engine_.worker_count(); ++w) {
        engine_.worker(w).adopt_calling_thread();
        engine_.worker(w).set_clock(now_ns);
    }
    engine_.reclaim();
}

// Between frames no worker holds a snapshot: every one says so, the idle ones too, as
// each worker loop of the runtime does at every poll.
void SyncDriver::quiesce() {
    for (uint32_t w = 0; w < engine_.worker_count(); ++w) {
        engine_.worker(w).adopt_calling_thread();
        engine_.worker(w).quiesce();
    }
}

}  // namespace dplb::core
