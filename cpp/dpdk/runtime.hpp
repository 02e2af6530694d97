// Runtime: the DPDK node around the engine (DESIGN section 1). EAL, ports, one RX/TX
// queue per worker where the device has them, worker lcores (rx burst -> engine -> tx
// burst) with software steering rings, and a control lcore for ARP/ND and the exception
// path to the kernel. The header has no DPDK types, so the bindings stay thin.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/engine.hpp"
#include "host/logger.hpp"

namespace dplb::dpdk {

struct PortOptions {
    std::string device;            // PCI address or DPDK vdev string
    std::string kernel_interface;  // TAP for the exception path; empty = none
};

struct RuntimeOptions {
    std::vector<PortOptions> ports;  // in the order of EngineConfig::ports
    bool hugepages = false;          // hugepages with --in-memory, else --no-huge --no-shconf
    uint32_t memory_mb = 256;
    std::string lcores;              // EAL --lcores value; empty: main, control, workers floating
    uint32_t idle_sleep_us = 50;     // 0: busy polling
    std::string file_prefix = "dplb";
    std::vector<std::string> extra_eal_args;
    // The logger thread (connection log, events, drop reports); no logger when log.path
    // is empty. It starts with the lcores and stops after them, writing what is left.
    host::LoggerOptions log;
    // DPDK's rte_latencystats (rx-to-tx latency of sampled packets, all ports together).
    // Off by default: its callbacks read the TSC for every received packet and share
    // state between all workers (a cache line they all write, a lock on transmit).
    bool latency_stats = false;
    // Steer ARP, ND and BGP/BFD to the port addresses to an RX queue of their own that
    // the control lcore polls (rte_flow). Where the device cannot (no spare queue, no
    // rte_flow, RSS without a redirection table), the port runs without it and its
    // status says why (PortStatus::control_steering); start() does not fail for it.
    bool control_flow_steering = false;
};

// Time a worker spends in the engine per burst: log2 buckets of nanoseconds, bucket i
// counts bursts that took less than 2^i ns (the last one, all the rest).
inline constexpr size_t kBurstHistogramBuckets = 28;

struct PortStatus {
    std::string name;
    std::string device;
    std::string kernel_interface;
    std::string mac;
    bool link_up = false;
    uint32_t speed_mbps = 0;
    uint16_t rx_queues = 0;
    uint16_t tx_queues = 0;
    std::string steering;  // "rte_flow", "rss" (to the owner), "rss+software" (part handed over), "software"
    std::string control_steering;  // "off", "rte_flow" (queue N), or "refused: <why>"
    uint64_t rx_packets = 0, tx_packets = 0, rx_bytes = 0, tx_bytes = 0;
    uint64_t rx_missed = 0, rx_errors = 0, tx_errors = 0, rx_nombuf = 0;
};

struct WorkerStatus {
    uint32_t id = 0;
    uint32_t lcore = 0;
    uint64_t busy_polls = 0;
    uint64_t idle_polls = 0;
    uint64_t tx_dropped = 0;      // TX queue full
    uint64_t handover_dropped = 0;
    uint64_t multi_segment_linearized = 0;  // chained mbufs copied into their first segment
    uint64_t multi_segment_dropped = 0;     // chained mbufs too long for one: dropped
    uint64_t shared_tx_bursts = 0;          // tx_burst calls on a TX queue shared by workers
    uint64_t shared_tx_packets = 0;         // frames those calls carried
    uint64_t polls = 0;                     // turns of the loop (busy + idle)
    uint64_t last_poll_age_ns = 0;          // since the loop's last turn (liveness)
    uint64_t bursts = 0;          // bursts run through the engine
    uint64_t burst_ns_sum = 0;
    std::array<uint64_t, kBurstHistogramBuckets> burst_ns_buckets{};  // not cumulative
};

// rte_latencystats over every port: rx to tx of sampled packets.
struct LatencyStatus {
    bool enabled = false;
    double min_ns = 0, avg_ns = 0, max_ns = 0, jitter_ns = 0;
};

struct ControlStatus {
    uint32_t lcore = 0;
    uint64_t arp_replies = 0;
    uint64_t nd_replies = 0;
    uint64_t to_kernel = 0;
    uint64_t from_kernel = 0;
    uint64_t resolutions_sent = 0;
    uint64_t held = 0;
    uint64_t held_expired = 0;
    uint64_t dropped = 0;
    uint64_t loops = 0;              // turns of the control loop
    uint64_t last_loop_age_ns = 0;   // since its last turn (liveness)
    uint64_t neighbours_ignored = 0;
    uint64_t neighbours_full = 0;
    uint64_t priority_taken = 0;      // ARP/ND, BGP/BFD, own connections taken by the control lcore
    uint64_t rest_taken = 0;          // the rest taken
    uint64_t priority_ring_full = 0;  // dropped by a worker: the priority ring was full
    uint64_t rest_ring_full = 0;      // ... the rest's ring was full
};

// The DPDK library's version ("DPDK 22.11.11").
std::string dpdk_version();

class Runtime {
public:
    Runtime(const core::EngineConfig& engine, const RuntimeOptions& options);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Starts EAL, ports, the kernel interfaces and the lcores. Throws std::runtime_error
    // saying what failed. Once per process (EAL cannot start twice).
    void start();
    // Stops the lcores, closes ports and kernel interfaces, releases EAL memory.
    void stop();
    bool running() const;

    core::Engine& engine();
    std::vector<PortStatus> ports() const;
    std::vector<WorkerStatus> workers() const;
    ControlStatus control() const;
    std::string mac_of(uint32_t port) const;
    LatencyStatus latency() const;
    // The logger thread (stopped by stop(), alive until the runtime is destroyed), or
    // nullptr when options.log.path is empty.
    host::Logger* logger();

    struct Impl;  // runtime_impl.hpp: shared by the lcore loops

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace dplb::dpdk
