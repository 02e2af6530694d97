// Runtime::Impl: the state the runtime's lcores share (internal to cpp/dpdk).
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "core/engine.hpp"
#include "dpdk/runtime.hpp"

namespace dplb::dpdk {

inline constexpr uint16_t kBurstSize = 32;

struct RuntimePort {
    uint16_t port_id = 0;
    std::string name;
    std::string device;
    std::string kernel_interface;
    int tap_fd = -1;
    rte_mempool* pool = nullptr;
    uint16_t rx_queues = 0;
    uint16_t tx_queues = 0;
    bool shared_tx = false;  // fewer TX queues than workers: queues are locked
    std::array<rte_spinlock_t, RTE_MAX_QUEUES_PER_PORT>* tx_locks = nullptr;
    bool flow_steering = false;
    bool rss = false;        // RSS spreads inbound flows over the RX queues
    bool rss_exact = false;  // ... each to its owner worker (key and redirection table are dplb's)
    rte_ring* inject = nullptr;  // frames from the control lcore, sent by worker 0
    bool reta_set = false;       // the RSS redirection table is dplb's (worker queues only)
    int control_queue = -1;      // RX queue that rte_flow fills with control traffic, polled by the control lcore
    std::string control_steering = "off";
    bool started = false;
};

struct alignas(64) WorkerState {
    uint32_t id = 0;
    uint32_t lcore = 0;
    rte_ring* handover = nullptr;  // frames other workers hand to this one
    std::vector<rte_eth_dev_tx_buffer*> tx_buffers;  // per port
    std::atomic<uint64_t> busy_polls{0};
    std::atomic<uint64_t> idle_polls{0};
    std::atomic<uint64_t> tx_dropped{0};  // shared TX queue full
    uint64_t tx_buffer_dropped = 0;       // TX queue full when a buffer flushed (DPDK counts it)
    std::atomic<uint64_t> handover_dropped{0};
    std::atomic<uint64_t> multi_segment_linearized{0};  // chained mbufs copied into one
    std::atomic<uint64_t> multi_segment_dropped{0};     // ... that did not fit: dropped
    std::atomic<uint64_t> shared_tx_bursts{0};           // tx_burst calls on a shared queue
    std::atomic<uint64_t> shared_tx_packets{0};          // ... and the frames they carried
    std::atomic<uint64_t> last_poll_ns{0};               // now_ns() at the loop's last turn
    // Engine time per burst (kBurstHistogramBuckets): written by this worker alone, with
    // plain relaxed stores (no locked instructions), read at scrape time.
    std::atomic<uint64_t> bursts{0};
    std::atomic<uint64_t> burst_ns_sum{0};
    std::array<std::atomic<uint64_t>, kBurstHistogramBuckets> burst_ns_buckets{};
};

struct ControlState {
    uint32_t lcore = 0;
    // Frames the workers pass to the control path, by ControlClass: ARP/ND, BGP/BFD and
    // the node's own connections on the priority ring, drained first; the rest (already
    // rate-limited by each worker) on `ring`.
    rte_ring* priority_ring = nullptr;
    rte_ring* ring = nullptr;
    rte_ring* resolve_ring = nullptr;  // rewritten frames waiting for a next hop's MAC
    std::atomic<uint64_t> arp_replies{0};
    std::atomic<uint64_t> nd_replies{0};
    std::atomic<uint64_t> to_kernel{0};
    std::atomic<uint64_t> from_kernel{0};
    std::atomic<uint64_t> resolutions_sent{0};
    std::atomic<uint64_t> held{0};          // frames held until their neighbour answered
    std::atomic<uint64_t> held_expired{0};  // frames whose neighbour never answered
    std::atomic<uint64_t> neighbours_ignored{0};  // ARP/ND senders not learned: not asked for
    std::atomic<uint64_t> neighbours_full{0};     // neighbours not learned: the table was full
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> priority_taken{0};      // frames taken from the priority ring
    std::atomic<uint64_t> rest_taken{0};          // ... and from the rest's ring
    std::atomic<uint64_t> priority_ring_full{0};  // dropped: the priority ring was full
    std::atomic<uint64_t> rest_ring_full{0};      // dropped: the rest's ring was full
    std::atomic<uint64_t> loops{0};         // turns of the control loop
    std::atomic<uint64_t> last_loop_ns{0};  // now_ns() at its last turn
};

struct Runtime::Impl {
    core::EngineConfig engine_config;
    RuntimeOptions options;
    std::unique_ptr<core::Engine> engine;
    std::unique_ptr<host::Logger> logger;
    bool latency_stats_started = false;
    uint64_t tsc_ns_mult = 0;  // ns = cycles * tsc_ns_mult >> 32
    std::vector<RuntimePort> ports;
    std::vector<int> engine_port_of;  // DPDK port id -> engine port index (-1: not ours)
    std::vector<std::unique_ptr<WorkerState>> workers;
    ControlState control;
    std::atomic<bool> running{false};
    bool eal_started = false;
    bool lcores_launched = false;

    void start();
    void stop();
    void start_eal();
    void setup_port(size_t index);
    void setup_rss(RuntimePort& port, const rte_eth_dev_info& info, bool key_set);
    void setup_flow_steering(size_t index);
    void setup_control_steering(size_t index);
    void open_kernel_interface(RuntimePort& port);
};

// The lcore entry points (worker_loop.cpp, control_loop.cpp).
int worker_main(void* arg);
int control_main(void* arg);

struct WorkerArgs {
    Runtime::Impl* rt;
    WorkerState* state;
};

// Monotonic nanoseconds (vDSO clock_gettime: cheap enough once per poll loop).
uint64_t now_ns();
// Sleeps for `us` microseconds (idle back-off).
void idle_sleep(uint32_t us);

}  // namespace dplb::dpdk
