// Runtime benchmark: Mpps of one dplb worker through DPDK, beside dpdk-testpmd's macswap
// on the same kind of ports in the same run (the limit of this machine).
//
// dplb side: EAL with --no-huge --no-shconf, two net_ring ports made from rte_rings
// (rte_eth_from_rings), port 0 facing the clients and port 1 the real servers. One worker
// lcore runs the loop of cpp/dpdk/worker_loop.cpp (clock, rx burst of every port, the
// hand-over and inject rings, the engine, per-port TX buffers, flush) over established
// sessions in both directions. Between two polls the same lcore plays the wire: what
// dplb sent toward the reals comes back as a reply of the next session (real -> local
// address) and what it sent toward a client comes back as the client's next packet, by
// copying a prebuilt 64-byte frame into the mbuf. That copy is timed apart and taken out
// of dplb's figure (a NIC does it, not the worker); both figures are reported.
//
// testpmd side: `dpdk-testpmd --vdev net_ring0 --vdev net_ring1 -- --forward-mode=macswap
// --tx-first` on the same two cores (main + one forwarding lcore), bursts of 32, 64-byte
// frames: receive, swap the MAC addresses, send back; its Rx-pps summed over both ports.
// A second reference runs it on net_null ports (copy=1: the PMD writes every received
// frame and reads every sent one, and allocates and frees an mbuf per packet).
#include <poll.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_version.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "bench_engine_setup.hpp"
#include "core/engine.hpp"
#include "core/packet.hpp"

extern char** environ;

using namespace dplb::core;
using dplb::bench::JsonObject;

using dplb::bench::v4;

namespace {

constexpr uint32_t kFrameSize = 64;
constexpr uint16_t kBurstSize = 32;          // as cpp/dpdk/runtime_impl.hpp
constexpr uint32_t kInFlightPerPort = 1024;  // frames on each port's wire (an RX ring's worth)
constexpr uint32_t kRingSize = 4096;
constexpr uint32_t kReals = dplb::bench::kBenchReals;
constexpr double kAimRatio = 0.40;

struct Options {
    std::vector<uint32_t> sessions{1'000, 1'000'000};
    double seconds = 5;
    std::string testpmd = "dpdk-testpmd";
    std::string json;
    std::string lcores = "0@0,1@1";  // main on CPU 0, the worker on CPU 1 (testpmd: -l 0,1)
};

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

// A 64-byte Ethernet/IPv4/TCP frame of `key` (checksums are not checked by the engine).
void build_frame(uint8_t* f, const FlowKey& key, uint8_t tcp_flags, const uint8_t* dst_mac, const uint8_t* src_mac) {
    std::memset(f, 0, kFrameSize);
    std::memcpy(f, dst_mac, 6);
    std::memcpy(f + 6, src_mac, 6);
    store_be16(f + 12, kEtherTypeIpv4);
    uint8_t* ip = f + 14;
    ip[0] = 0x45;
    store_be16(ip + 2, 46);
    ip[8] = 64;
    ip[9] = 6;
    std::memcpy(ip + 12, key.src.v4(), 4);
    std::memcpy(ip + 16, key.dst.v4(), 4);
    uint8_t* tcp = ip + 20;
    store_be16(tcp, key.src_port);
    store_be16(tcp + 2, key.dst_port);
    store_be32(tcp + 4, 1000);
    store_be32(tcp + 8, 2000);
    tcp[12] = 5 << 4;
    tcp[13] = tcp_flags;
    store_be16(tcp + 14, 65535);
}

FlowKey client_key(uint32_t i) {
    FlowKey k;
    k.src = v4((198u << 24 | 18u << 16) + i / 60000);
    k.dst = v4(10u << 24 | 100u << 8 | 10u);
    k.src_port = static_cast<uint16_t>(1024 + i % 60000);
    k.dst_port = 80;
    k.proto = 6;
    return k;
}

const uint8_t kClientGatewayMac[6] = {0x0a, 0, 0, 0, 1, 0xfe};
uint8_t real_mac(uint32_t r) { return static_cast<uint8_t>(r); }

EngineConfig make_config(uint32_t sessions, const rte_ether_addr macs[2]) {
    std::array<uint8_t, 6> client_side, real_side;
    std::memcpy(client_side.data(), macs[0].addr_bytes, 6);
    std::memcpy(real_side.data(), macs[1].addr_bytes, 6);
    return dplb::bench::bench_engine_config(sessions, client_side, real_side);
}

// Runs frames through the worker without DPDK (setting up sessions before the clock runs).
uint32_t run_frames(Worker& w, std::vector<uint8_t>& frames, uint32_t count) {
    PacketView views[kBurst];
    PacketView* ptrs[kBurst];
    Action actions[kBurst];
    uint32_t sent = 0;
    for (uint32_t base = 0; base < count; base += kBurst) {
        uint32_t n = std::min(kBurst, count - base);
        for (uint32_t i = 0; i < n; ++i) {
            views[i] = PacketView{&frames[size_t(base + i) * kFrameSize], kFrameSize, 0, 0, 0};
            ptrs[i] = &views[i];
        }
        w.process_burst(ptrs, actions, n, false);
        for (uint32_t i = 0; i < n; ++i) sent += actions[i].verdict == Verdict::transmit;
    }
    return sent;
}

// The engine with `n` established sessions (SYN, SYN-ACK, ACK each) and the frames that
// play the wire: the next packet of each session from the client and from its real, in a
// random order of sessions.
struct Workload {
    std::unique_ptr<Engine> engine;
    std::vector<uint8_t> inbound;   // client -> VIP, arrives on port 0
    std::vector<uint8_t> outbound;  // real -> local address, arrives on port 1
    uint32_t sessions = 0;
};

std::optional<Workload> make_workload(uint32_t n, const rte_ether_addr macs[2]) {
    Workload wl;
    wl.sessions = n;
    wl.engine = std::make_unique<Engine>(make_config(n, macs));
    Engine& e = *wl.engine;
    e.neighbours().set(0, *IpAddress::parse("10.0.1.254"),
                       {kClientGatewayMac[0], 0, 0, 0, 1, kClientGatewayMac[5]});
    for (uint32_t r = 0; r < kReals; ++r) {
        e.neighbours().set(1, v4(10u << 24 | 2u << 8 | (11 + r)), {0x0a, 0, 0, 0, 2, real_mac(r)});
    }
    Worker& w = e.worker(0);
    w.set_clock(now_ns());  // the loop's clock: sessions made now must not expire at its first tick
    std::vector<uint8_t> frames(size_t(n) * kFrameSize);
    for (uint32_t i = 0; i < n; ++i) {
        build_frame(&frames[size_t(i) * kFrameSize], client_key(i), kTcpSyn, macs[0].addr_bytes, kClientGatewayMac);
    }
    if (run_frames(w, frames, n) != n || w.sessions().size() != n) {
        std::fprintf(stderr, "%u sessions: SYNs were not all forwarded\n", n);
        return std::nullopt;
    }
    // The sessions in a random order: SYN-ACKs from the reals, then the clients' ACKs.
    std::vector<uint32_t> order;
    order.reserve(n);
    const SessionTable& table = w.sessions();
    for (uint32_t s = 0; s < table.capacity(); ++s) {
        if (table.sessions()[s].flags & kSessionInUse) order.push_back(s);
    }
    std::shuffle(order.begin(), order.end(), std::mt19937(42));
    auto frames_of = [&](bool from_client, uint8_t flags, std::vector<uint8_t>& out) {
        out.assign(size_t(n) * kFrameSize, 0);
        for (uint32_t i = 0; i < n; ++i) {
            const Session& s = table.sessions()[order[i]];
            if (from_client) {
                build_frame(&out[size_t(i) * kFrameSize], s.inbound, flags, macs[0].addr_bytes, kClientGatewayMac);
            } else {
                const uint8_t src[6] = {0x0a, 0, 0, 0, 2, 0};
                build_frame(&out[size_t(i) * kFrameSize], s.outbound, flags, macs[1].addr_bytes, src);
            }
        }
    };
    frames_of(false, kTcpSyn | kTcpAck, frames);
    if (run_frames(w, frames, n) != n) return std::nullopt;
    frames_of(true, kTcpAck, frames);
    if (run_frames(w, frames, n) != n) return std::nullopt;
    for (uint32_t s : order) {
        if (table.sessions()[s].state != TcpState::established) {
            std::fprintf(stderr, "%u sessions: a session did not reach established\n", n);
            return std::nullopt;
        }
    }
    frames_of(true, kTcpAck | kTcpPsh, wl.inbound);
    frames_of(false, kTcpAck | kTcpPsh, wl.outbound);
    return wl;
}

// -- the DPDK side ------------------------------------------------------------------------

struct RingPort {
    uint16_t port_id = 0;
    rte_ring* rx = nullptr;  // what the port receives (the wire toward dplb)
    rte_ring* tx = nullptr;  // what the port sends
    rte_eth_dev_tx_buffer* tx_buffer = nullptr;
    uint64_t tx_buffer_dropped = 0;
};

struct Dpdk {
    rte_mempool* pool = nullptr;
    RingPort ports[2];
    rte_ring* handover = nullptr;  // empty: one worker hands nothing over
    rte_ring* inject[2] = {nullptr, nullptr};
    rte_ether_addr macs[2];
};

std::string error_text(int rc) { return rte_strerror(rc < 0 ? -rc : rc); }

bool start_dpdk(const Options& opt, Dpdk& d) {
    std::vector<std::string> args{"dplb_runtime_bench", "--no-huge",        "--no-shconf", "-m",
                                  "1024",               "--no-pci",         "--lcores",    opt.lcores,
                                  "--file-prefix",      "dplb-bench-runtime", "--log-level", "lib.eal:warning"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(argv.size() - 1), argv.data()) < 0) {
        std::fprintf(stderr, "EAL: %s\n", error_text(rte_errno).c_str());
        return false;
    }
    const int socket = 0;
    d.pool = rte_pktmbuf_pool_create("bench_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    d.handover = rte_ring_create("bench_handover", 8192, socket, RING_F_SC_DEQ);
    if (d.pool == nullptr || d.handover == nullptr) {
        std::fprintf(stderr, "cannot allocate mbufs or rings: %s\n", error_text(rte_errno).c_str());
        return false;
    }
    for (int p = 0; p < 2; ++p) {
        RingPort& rp = d.ports[p];
        const std::string n = std::to_string(p);
        rp.rx = rte_ring_create(("bench_rx" + n).c_str(), kRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        rp.tx = rte_ring_create(("bench_tx" + n).c_str(), kRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        d.inject[p] = rte_ring_create(("bench_inject" + n).c_str(), 1024, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (rp.rx == nullptr || rp.tx == nullptr || d.inject[p] == nullptr) return false;
        int id = rte_eth_from_rings(("net_ring_bench" + n).c_str(), &rp.rx, 1, &rp.tx, 1, socket);
        if (id < 0) {
            std::fprintf(stderr, "rte_eth_from_rings: %s\n", error_text(rte_errno).c_str());
            return false;
        }
        rp.port_id = static_cast<uint16_t>(id);
        rte_eth_conf conf{};
        int rc = rte_eth_dev_configure(rp.port_id, 1, 1, &conf);
        if (rc == 0) rc = rte_eth_rx_queue_setup(rp.port_id, 0, 1024, socket, nullptr, d.pool);
        if (rc == 0) rc = rte_eth_tx_queue_setup(rp.port_id, 0, 1024, socket, nullptr);
        if (rc == 0) rc = rte_eth_dev_start(rp.port_id);
        if (rc != 0) {
            std::fprintf(stderr, "port %d: %s\n", p, error_text(rc).c_str());
            return false;
        }
        rte_eth_macaddr_get(rp.port_id, &d.macs[p]);
        rp.tx_buffer = static_cast<rte_eth_dev_tx_buffer*>(
            rte_zmalloc_socket("tx_buffer", RTE_ETH_TX_BUFFER_SIZE(kBurstSize), 0, socket));
        if (rp.tx_buffer == nullptr) return false;
        rte_eth_tx_buffer_init(rp.tx_buffer, kBurstSize);
        rte_eth_tx_buffer_set_err_callback(rp.tx_buffer, rte_eth_tx_buffer_count_callback, &rp.tx_buffer_dropped);
    }
    return true;
}

void drain(Dpdk& d) {
    rte_mbuf* m[64];
    for (RingPort& rp : d.ports) {
        for (rte_ring* r : {rp.rx, rp.tx}) {
            unsigned n;
            while ((n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(m), 64, nullptr)) > 0) {
                rte_pktmbuf_free_bulk(m, n);
            }
        }
    }
}

struct RunResult {
    uint32_t sessions = 0;
    double seconds = 0;
    uint64_t received = 0;
    uint64_t transmitted = 0;
    uint64_t not_forwarded = 0;  // any verdict but transmit, and TX drops
    double mpps = 0;             // dplb alone: the wire's frame copies taken out
    double mpps_with_wire = 0;   // the lcore's whole loop
    double wire_share = 0;       // fraction of the lcore's time spent playing the wire
    double engine_ns_per_packet = 0;  // inside process_burst (the burst histogram's sum)
};

// One lcore: dplb's worker loop (as cpp/dpdk/worker_loop.cpp) and the wire between polls.
class BenchLoop {
public:
    BenchLoop(Dpdk& d, Workload& wl, double seconds) : d_(d), wl_(wl), worker_(wl.engine->worker(0)), seconds_(seconds) {}

    // Puts kInFlightPerPort frames on each port's receive ring.
    bool fill() {
        for (int p = 0; p < 2; ++p) {
            rte_mbuf* m[kInFlightPerPort];
            if (rte_pktmbuf_alloc_bulk(d_.pool, m, kInFlightPerPort) != 0) return false;
            restore(p, m, kInFlightPerPort);
            if (rte_ring_sp_enqueue_bulk(d_.ports[p].rx, reinterpret_cast<void**>(m), kInFlightPerPort, nullptr) !=
                kInFlightPerPort) {
                return false;
            }
        }
        return true;
    }

    void run(RunResult& out) {
        const uint64_t hz = rte_get_tsc_hz();
        tsc_ns_mult_ = (uint64_t(1'000'000'000) << 32) / std::max<uint64_t>(hz, 1);
        const uint64_t start = rte_rdtsc();
        const uint64_t end = start + static_cast<uint64_t>(seconds_ * double(hz));
        uint64_t wire_cycles = 0;
        uint64_t last_clock = 0;
        uint64_t stop_at = start;
        while (true) {
            // -- dplb's worker loop ------------------------------------------------------
            uint64_t now = now_ns();
            if (now - last_clock >= 1'000'000) {
                worker_.set_clock(now);
                last_clock = now;
            }
            uint32_t work = 0;
            for (uint8_t p = 0; p < 2; ++p) {
                rte_mbuf* mbufs[kBurstSize];
                uint16_t n = rte_eth_rx_burst(d_.ports[p].port_id, 0, mbufs, kBurstSize);
                if (n > 0) {
                    handle(mbufs, n, p);
                    work += n;
                }
            }
            rte_mbuf* handed[kBurstSize];
            unsigned got = rte_ring_sc_dequeue_burst(d_.handover, reinterpret_cast<void**>(handed), kBurstSize, nullptr);
            if (got > 0) rte_pktmbuf_free_bulk(handed, got);
            for (rte_ring* r : d_.inject) {
                got = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(handed), kBurstSize, nullptr);
                if (got > 0) rte_pktmbuf_free_bulk(handed, got);
            }
            if (work > 0) flush();
            // -- the wire (not dplb's work) ---------------------------------------------------
            const uint64_t t0 = rte_rdtsc();
            if (t0 >= end) {
                stop_at = t0;
                break;
            }
            for (int p = 0; p < 2; ++p) {
                rte_mbuf* m[2 * kBurstSize];
                unsigned n = rte_ring_sc_dequeue_burst(d_.ports[p].tx, reinterpret_cast<void**>(m), 2 * kBurstSize,
                                                       nullptr);
                if (n == 0) continue;
                restore(p, m, n);
                rte_ring_sp_enqueue_burst(d_.ports[p].rx, reinterpret_cast<void**>(m), n, nullptr);
            }
            wire_cycles += rte_rdtsc() - t0;
        }
        const double total_s = double(stop_at - start) / double(hz);
        const double dplb_s = double(stop_at - start - wire_cycles) / double(hz);
        out.sessions = wl_.sessions;
        out.seconds = total_s;
        out.received = received_;
        out.transmitted = transmitted_;
        out.not_forwarded = not_forwarded_ + d_.ports[0].tx_buffer_dropped + d_.ports[1].tx_buffer_dropped;
        out.mpps = double(received_) / dplb_s / 1e6;
        out.mpps_with_wire = double(received_) / total_s / 1e6;
        out.wire_share = 1 - dplb_s / total_s;
        out.engine_ns_per_packet = double(burst_ns_sum_) / double(std::max<uint64_t>(received_, 1));
    }

private:
    void handle(rte_mbuf** mbufs, uint16_t n, uint8_t port) {
        PacketView views[kBurstSize];
        PacketView* ptrs[kBurstSize];
        Action actions[kBurstSize];
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = mbufs[i];
            views[i] = PacketView{rte_pktmbuf_mtod(m, uint8_t*), m->data_len, rte_pktmbuf_headroom(m),
                                  rte_pktmbuf_tailroom(m), port};
            ptrs[i] = &views[i];
        }
        const uint64_t started = rte_rdtsc();
        worker_.process_burst(ptrs, actions, n, false);
        record_burst(rte_rdtsc() - started);
        received_ += n;
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = mbufs[i];
            if (actions[i].verdict == Verdict::transmit) [[likely]] {
                m->data_off = static_cast<uint16_t>(views[i].data - static_cast<uint8_t*>(m->buf_addr));
                m->data_len = static_cast<uint16_t>(views[i].len);
                m->pkt_len = views[i].len;
                const uint8_t out = actions[i].port;
                transmitted_ += rte_eth_tx_buffer(d_.ports[out].port_id, 0, d_.ports[out].tx_buffer, m);
            } else {
                ++not_forwarded_;
                rte_pktmbuf_free(m);
            }
        }
    }

    // As worker_loop.cpp's burst histogram: a few relaxed stores per burst.
    void record_burst(uint64_t cycles) {
        const uint64_t ns = static_cast<uint64_t>((static_cast<unsigned __int128>(cycles) * tsc_ns_mult_) >> 32);
        const size_t bucket = std::min<size_t>(std::bit_width(ns), buckets_.size() - 1);
        buckets_[bucket].store(buckets_[bucket].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        burst_ns_sum_ += ns;
        bursts_.store(bursts_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    void flush() {
        for (RingPort& rp : d_.ports) transmitted_ += rte_eth_tx_buffer_flush(rp.port_id, 0, rp.tx_buffer);
    }

    // What left port p comes back on port p as the next frame of the next session: from
    // a client on port 0, from a real on port 1.
    void restore(int p, rte_mbuf** m, unsigned n) {
        const std::vector<uint8_t>& frames = p == 0 ? wl_.inbound : wl_.outbound;
        uint32_t& cursor = cursor_[p];
        for (unsigned i = 0; i < n; ++i) {
            m[i]->data_off = RTE_PKTMBUF_HEADROOM;
            m[i]->data_len = kFrameSize;
            m[i]->pkt_len = kFrameSize;
            std::memcpy(rte_pktmbuf_mtod(m[i], uint8_t*), &frames[size_t(cursor) * kFrameSize], kFrameSize);
            if (++cursor == wl_.sessions) cursor = 0;
        }
    }

    Dpdk& d_;
    Workload& wl_;
    Worker& worker_;
    double seconds_;
    uint64_t tsc_ns_mult_ = 0;
    uint32_t cursor_[2] = {0, 0};
    uint64_t received_ = 0, transmitted_ = 0, not_forwarded_ = 0, burst_ns_sum_ = 0;
    std::atomic<uint64_t> bursts_{0};
    std::array<std::atomic<uint64_t>, 28> buckets_{};
};

struct LaunchArgs {
    BenchLoop* loop;
    RunResult* result;
    std::atomic<bool> done{false};
};

int bench_lcore(void* arg) {
    auto* a = static_cast<LaunchArgs*>(arg);
    a->loop->run(*a->result);
    a->done.store(true);
    return 0;
}

std::optional<RunResult> run_dplb(Dpdk& d, uint32_t sessions, double seconds) {
    std::optional<Workload> wl = make_workload(sessions, d.macs);
    if (!wl) return std::nullopt;
    BenchLoop loop(d, *wl, seconds);
    drain(d);
    if (!loop.fill()) {
        std::fprintf(stderr, "cannot fill the rings\n");
        return std::nullopt;
    }
    RunResult r;
    LaunchArgs args{&loop, &r};
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    if (lcore >= RTE_MAX_LCORE || rte_eal_remote_launch(bench_lcore, &args, lcore) != 0) {
        std::fprintf(stderr, "cannot launch the worker lcore (EAL --lcores needs a second lcore)\n");
        return std::nullopt;
    }
    // The main lcore sleeps meanwhile (testpmd's main lcore sleeps between its stats).
    while (!args.done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    rte_eal_wait_lcore(lcore);
    drain(d);
    return r;
}

// -- testpmd ------------------------------------------------------------------------------

struct TestpmdResult {
    bool ok = false;
    std::string error;
    std::vector<std::string> argv;
    double mpps = 0;  // Rx-pps of both ports, summed, averaged over the measured periods
    uint32_t periods = 0;
};

// Runs testpmd for warm-up + `seconds`, printing port stats each second, then SIGINT.
TestpmdResult run_testpmd(const Options& opt, const std::vector<std::string>& vdevs, const std::string& prefix) {
    TestpmdResult out;
    std::vector<std::string> args{opt.testpmd, "-l", "0,1", "--no-huge", "--no-shconf", "-m", "512", "--no-pci",
                                  "--file-prefix", prefix};
    for (const std::string& v : vdevs) args.insert(args.end(), {"--vdev", v});
    args.insert(args.end(), {"--", "--forward-mode=macswap", "--nb-cores=1", "--burst=32", "--txpkts=64",
                             "--tx-first", "--stats-period", "1", "--total-num-mbufs=8192"});
    out.argv = args;
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) {
        out.error = "pipe failed";
        return out;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        out.error = opt.testpmd + ": " + std::strerror(rc);
        return out;
    }
    const double warmup = 2;
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(warmup + opt.seconds + 0.5);
    bool signalled = false;
    while (true) {
        auto left = deadline - std::chrono::steady_clock::now();
        if (!signalled && left <= std::chrono::seconds(0)) {
            kill(pid, SIGINT);
            signalled = true;
            deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
            continue;
        }
        if (signalled && left <= std::chrono::seconds(0)) {
            kill(pid, SIGKILL);
            break;
        }
        pollfd pfd{fds[0], POLLIN, 0};
        int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(left).count());
        if (poll(&pfd, 1, std::max(1, std::min(wait_ms, 200))) > 0) {
            char buf[4096];
            ssize_t n = read(fds[0], buf, sizeof buf);
            if (n <= 0) break;
            text.append(buf, static_cast<size_t>(n));
        }
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    // Rx-pps lines come per port, port 0 then port 1, once a second.
    std::regex rx_pps(R"(Rx-pps:\s+(\d+))");
    std::vector<double> pps;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), rx_pps); it != std::sregex_iterator(); ++it) {
        pps.push_back(std::stod((*it)[1]));
    }
    const size_t ports = vdevs.size();
    const size_t periods = pps.size() / ports;
    const size_t skip = static_cast<size_t>(warmup);  // the first periods include start-up
    if (periods <= skip) {
        out.error = "testpmd printed no statistics; its output ended with: " +
                    text.substr(text.size() > 600 ? text.size() - 600 : 0);
        return out;
    }
    double sum = 0;
    for (size_t p = skip; p < periods; ++p) {
        for (size_t q = 0; q < ports; ++q) sum += pps[p * ports + q];
    }
    out.periods = static_cast<uint32_t>(periods - skip);
    out.mpps = sum / out.periods / 1e6;
    out.ok = out.mpps > 0;
    if (!out.ok) out.error = "testpmd forwarded nothing";
    return out;
}

std::vector<uint32_t> parse_list(const std::string& text) {
    std::vector<uint32_t> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) out.push_back(static_cast<uint32_t>(std::stoul(item)));
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) out += (out.empty() ? "" : " ") + s;
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--sessions" && i + 1 < argc) opt.sessions = parse_list(argv[++i]);
        else if (a == "--seconds" && i + 1 < argc) opt.seconds = std::stod(argv[++i]);
        else if (a == "--testpmd" && i + 1 < argc) opt.testpmd = argv[++i];
        else if (a == "--lcores" && i + 1 < argc) opt.lcores = argv[++i];
        else if (a == "--json" && i + 1 < argc) opt.json = argv[++i];
        else {
            std::fprintf(stderr,
                         "usage: %s [--sessions N,N] [--seconds S] [--testpmd PATH|none] [--lcores EAL] [--json FILE]\n",
                         argv[0]);
            return 2;
        }
    }
    const std::vector<double> load_start = dplb::bench::load_average();
    std::printf("dplb runtime benchmark: 1 worker on net_ring ports, 64-byte frames, %.0f s a run; load average %.2f\n",
                opt.seconds, load_start[0]);
    Dpdk d;
    if (!start_dpdk(opt, d)) return 1;
    const std::string dpdk_version = rte_version();
    std::vector<RunResult> runs;
    for (uint32_t n : opt.sessions) {
        std::optional<RunResult> r = run_dplb(d, n, opt.seconds);
        if (!r) return 1;
        runs.push_back(*r);
        std::printf("  dplb, %8u sessions: %6.2f Mpps (%.2f with the wire's copies, %.0f%% of the lcore), "
                    "engine %.1f ns/packet, %llu not forwarded\n",
                    n, r->mpps, r->mpps_with_wire, r->wire_share * 100, r->engine_ns_per_packet,
                    (unsigned long long)r->not_forwarded);
        std::fflush(stdout);
    }
    for (RingPort& rp : d.ports) {
        rte_eth_dev_stop(rp.port_id);
        rte_eth_dev_close(rp.port_id);
    }
    rte_eal_cleanup();

    TestpmdResult ring, null;
    if (opt.testpmd != "none") {
        ring = run_testpmd(opt, {"net_ring0", "net_ring1"}, "dplb-bench-testpmd-ring");
        std::printf("  testpmd macswap, net_ring: %s\n",
                    ring.ok ? (std::to_string(ring.mpps) + " Mpps").c_str() : ring.error.c_str());
        null = run_testpmd(opt, {"net_null0,copy=1", "net_null1,copy=1"}, "dplb-bench-testpmd-null");
        std::printf("  testpmd macswap, net_null (copy=1): %s\n",
                    null.ok ? (std::to_string(null.mpps) + " Mpps").c_str() : null.error.c_str());
    }
    const std::vector<double> load_end = dplb::bench::load_average();

    std::printf("\n%-44s %10s %12s %12s\n", "forwarder (1 lcore, 2 ports, 64-byte frames)", "Mpps", "of testpmd",
                "ns/packet");
    for (const RunResult& r : runs) {
        std::string name = "dplb, " + std::to_string(r.sessions) + " established sessions";
        std::printf("%-44s %10.2f %11.1f%% %12.1f\n", name.c_str(), r.mpps, ring.ok ? 100 * r.mpps / ring.mpps : 0.0,
                    1e3 / r.mpps);
    }
    if (ring.ok) std::printf("%-44s %10.2f %11s %12.1f\n", "testpmd macswap, net_ring", ring.mpps, "100%", 1e3 / ring.mpps);
    if (null.ok) {
        std::printf("%-44s %10.2f %11s %12.1f\n", "testpmd macswap, net_null copy=1", null.mpps, "-", 1e3 / null.mpps);
    }

    std::vector<JsonObject> aims;
    if (ring.ok) {
        std::printf("\naims (issue 7): dplb >= %.0f%% of testpmd's macswap rate per worker\n", kAimRatio * 100);
        for (const RunResult& r : runs) {
            const double ratio = r.mpps / ring.mpps;
            const bool met = ratio >= kAimRatio;
            std::printf("  %u sessions: %.1f%% %s\n", r.sessions, ratio * 100,
                        met ? "met" : ("MISSED, by " + std::to_string(int(std::lround((kAimRatio - ratio) / kAimRatio * 100))) +
                                       "% of the aim")
                                          .c_str());
            JsonObject a;
            a.str("aim", "dplb Mpps per worker over testpmd macswap Mpps (net_ring), " + std::to_string(r.sessions) +
                             " sessions")
                .num("at_least", kAimRatio)
                .num("value", ratio)
                .boolean("met", met)
                .num("missed_by_fraction", met ? 0 : (kAimRatio - ratio) / kAimRatio);
            aims.push_back(a);
        }
    }

    if (!opt.json.empty()) {
        std::vector<JsonObject> dplb_runs;
        for (const RunResult& r : runs) {
            JsonObject o;
            o.num("sessions", r.sessions)
                .num("mpps_per_worker", r.mpps)
                .num("ns_per_packet", 1e3 / r.mpps)
                .num("mpps_with_wire_copies", r.mpps_with_wire)
                .num("wire_share_of_lcore", r.wire_share)
                .num("engine_ns_per_packet", r.engine_ns_per_packet)
                .num("seconds", r.seconds)
                .num("packets_received", double(r.received))
                .num("packets_transmitted", double(r.transmitted))
                .num("packets_not_forwarded", double(r.not_forwarded));
            if (ring.ok) o.num("ratio_to_testpmd_ring", r.mpps / ring.mpps);
            if (null.ok) o.num("ratio_to_testpmd_null", r.mpps / null.mpps);
            dplb_runs.push_back(o);
        }
        auto testpmd_json = [](const TestpmdResult& t) {
            JsonObject o;
            o.boolean("ok", t.ok).str("command", join(t.argv));
            if (t.ok) o.num("mpps", t.mpps).num("ns_per_packet", 1e3 / t.mpps).num("periods_measured", t.periods);
            else o.str("error", t.error);
            return o;
        };
        JsonObject params;
        params.num("workers", 1)
            .num("ports", 2)
            .num("frame_bytes", kFrameSize)
            .num("burst", kBurstSize)
            .num("frames_in_flight_per_port", kInFlightPerPort)
            .num("seconds_per_run", opt.seconds)
            .str("eal", "--no-huge --no-shconf -m 1024 --no-pci --lcores " + opt.lcores)
            .str("dplb",
                 "two net_ring ports from rte_rings (rte_eth_from_rings); one worker lcore runs the loop of "
                 "cpp/dpdk/worker_loop.cpp over established sessions, half the frames client->VIP on port 0, half "
                 "real->local address on port 1; between polls the same lcore puts what was sent back on the "
                 "receive ring as the next prebuilt 64-byte frame (a memcpy), timed apart and taken out of "
                 "mpps_per_worker (mpps_with_wire_copies keeps it)")
            .str("testpmd",
                 "dpdk-testpmd -l 0,1 (main + one forwarding lcore), --forward-mode=macswap, two loopback "
                 "net_ring vdevs (what a port sends it receives), --tx-first, bursts of 32, 64-byte frames; "
                 "Rx-pps of both ports summed, averaged over the periods after a 2 s warm-up");
        JsonObject versions;
        versions.str("dpdk", dpdk_version);
        JsonObject root;
        root.str("benchmark", "runtime")
            .str("date", dplb::bench::utc_now())
            .obj("machine", dplb::bench::machine_info())
            .obj("versions", versions)
            .raw("load_average_start", dplb::bench::json_array(load_start))
            .raw("load_average_end", dplb::bench::json_array(load_end))
            .obj("parameters", params)
            .raw("dplb", dplb::bench::json_list(dplb_runs))
            .obj("testpmd_macswap_net_ring", testpmd_json(ring))
            .obj("testpmd_macswap_net_null", testpmd_json(null))
            .raw("aims", dplb::bench::json_list(aims));
        if (!dplb::bench::write_file(opt.json, root.dump())) {
            std::fprintf(stderr, "cannot write %s\n", opt.json.c_str());
            return 1;
        }
        std::printf("figures written to %s\n", opt.json.c_str());
    }
    return 0;
}
