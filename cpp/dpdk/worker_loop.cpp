// A worker lcore: rx burst from its queue of every port, hand-overs from other workers,
// the engine, then tx through per-port buffers (DESIGN section 3). No locks unless the
// device has fewer TX queues than workers; no syscalls but the idle back-off.
#include <rte_cycles.h>
#include <time.h>

#include <array>
#include <bit>
#include <vector>

#include "dpdk/runtime_impl.hpp"

namespace dplb::dpdk {

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

void idle_sleep(uint32_t us) {
    timespec ts{0, long(us) * 1000};
    nanosleep(&ts, nullptr);
}

namespace {

constexpr uint32_t kIdleLoopsBeforeSleep = 64;
constexpr uint64_t kClockEveryNs = 1'000'000;  // timers advance each millisecond

// A counter only its worker writes: a plain relaxed store, no locked instruction.
void bump(std::atomic<uint64_t>& c, uint64_t by = 1) {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

class WorkerLoop {
public:
    WorkerLoop(Runtime::Impl& rt, WorkerState& st) : rt_(rt), st_(st), worker_(rt.engine->worker(st.id)) {}

    void run() {
        uint32_t idle = 0;
        uint64_t last_clock = 0;
        while (rt_.running.load(std::memory_order_relaxed)) {
            uint64_t now = now_ns();
            st_.last_poll_ns.store(now, std::memory_order_relaxed);  // liveness: read by status
            // Expiry has a budget per clock move: while sessions due are left, move again
            // at every poll rather than each millisecond.
            if (now - last_clock >= kClockEveryNs || worker_.expiry_behind()) {
                worker_.set_clock(now);
                last_clock = now;
            } else {
                worker_.quiesce();  // idle or not, it holds no retired snapshot
            }
            uint32_t work = 0;
            for (size_t p = 0; p < rt_.ports.size(); ++p) {
                RuntimePort& port = rt_.ports[p];
                if (st_.id >= port.rx_queues) continue;
                rte_mbuf* mbufs[kBurstSize];
                uint16_t n = rte_eth_rx_burst(port.port_id, static_cast<uint16_t>(st_.id), mbufs, kBurstSize);
                if (n > 0) {
                    handle(mbufs, n, static_cast<uint8_t>(p), false);
                    work += n;
                }
            }
            rte_mbuf* handed[kBurstSize];
            unsigned got = rte_ring_sc_dequeue_burst(st_.handover, reinterpret_cast<void**>(handed), kBurstSize, nullptr);
            if (got > 0) {
                handle(handed, static_cast<uint16_t>(got), 0, true);
                work += got;
            }
            if (st_.id == 0) work += send_injected();
            if (work > 0) {
                flush();
                st_.busy_polls.fetch_add(1, std::memory_order_relaxed);
                idle = 0;
            } else {
                st_.idle_polls.fetch_add(1, std::memory_order_relaxed);
                if (++idle > kIdleLoopsBeforeSleep && rt_.options.idle_sleep_us > 0) {
                    flush();
                    idle_sleep(rt_.options.idle_sleep_us);
                }
            }
        }
        flush();
    }

private:
    void handle(rte_mbuf** mbufs, uint16_t n, uint8_t port, bool handed_in) {
        n = single_segments(mbufs, n);
        core::PacketView views[kBurstSize];
        core::PacketView* ptrs[kBurstSize];
        core::Action actions[kBurstSize];
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = mbufs[i];
            uint8_t in_port = port;
            if (handed_in) {
                int idx = rt_.engine_port_of[m->port];
                in_port = static_cast<uint8_t>(idx < 0 ? 0 : idx);
            }
            views[i] = core::PacketView{rte_pktmbuf_mtod(m, uint8_t*), m->data_len, rte_pktmbuf_headroom(m),
                                        rte_pktmbuf_tailroom(m), in_port};
            ptrs[i] = &views[i];
        }
        const uint64_t started = rte_rdtsc();
        worker_.process_burst(ptrs, actions, n, handed_in);
        record_burst(rte_rdtsc() - started);
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = mbufs[i];
            const core::Action& a = actions[i];
            switch (a.verdict) {
                case core::Verdict::transmit: {
                    // The engine may have moved the start or changed the length.
                    m->data_off = static_cast<uint16_t>(views[i].data - static_cast<uint8_t*>(m->buf_addr));
                    m->data_len = static_cast<uint16_t>(views[i].len);
                    m->pkt_len = views[i].len;
                    transmit(a.port, m);
                    break;
                }
                case core::Verdict::hand_over:
                    if (rte_ring_mp_enqueue(rt_.workers[a.worker]->handover, m) != 0) {
                        st_.handover_dropped.fetch_add(1, std::memory_order_relaxed);
                        rte_pktmbuf_free(m);
                    }
                    break;
                case core::Verdict::resolve:
                    m->data_off = static_cast<uint16_t>(views[i].data - static_cast<uint8_t*>(m->buf_addr));
                    m->data_len = static_cast<uint16_t>(views[i].len);
                    m->pkt_len = views[i].len;
                    m->hash.usr = a.port;  // where it leaves, once the control side knows the MAC
                    if (rte_ring_mp_enqueue(rt_.control.resolve_ring, m) != 0) {
                        rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
                        rte_pktmbuf_free(m);
                    }
                    break;
                case core::Verdict::control: {
                    // The engine classified it (ControlClass) and rate-limited the rest.
                    const bool priority = a.control != core::ControlClass::rest;
                    if (rte_ring_mp_enqueue(priority ? rt_.control.priority_ring : rt_.control.ring, m) != 0) {
                        (priority ? rt_.control.priority_ring_full : rt_.control.rest_ring_full)
                            .fetch_add(1, std::memory_order_relaxed);
                        rt_.control.dropped.fetch_add(1, std::memory_order_relaxed);
                        rte_pktmbuf_free(m);
                    }
                    break;
                }
                default:
                    rte_pktmbuf_free(m);
                    break;
            }
        }
    }

    // The engine reads a frame as one buffer: a chained mbuf (a PMD with scatter, or
    // jumbo frames) is copied into its first segment where it fits, else dropped and
    // counted; never read past its first segment.
    uint16_t single_segments(rte_mbuf** mbufs, uint16_t n) {
        uint16_t kept = 0;
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = mbufs[i];
            if (m->nb_segs > 1) {
                if (rte_pktmbuf_linearize(m) != 0) {
                    bump(st_.multi_segment_dropped);
                    rte_pktmbuf_free(m);
                    continue;
                }
                bump(st_.multi_segment_linearized);
            }
            mbufs[kept++] = m;
        }
        return kept;
    }

    void record_burst(uint64_t cycles) {
        const uint64_t ns = static_cast<uint64_t>((static_cast<unsigned __int128>(cycles) * rt_.tsc_ns_mult) >> 32);
        const size_t bucket = std::min<size_t>(std::bit_width(ns), kBurstHistogramBuckets - 1);
        bump(st_.burst_ns_buckets[bucket], 1);
        bump(st_.burst_ns_sum, ns);
        bump(st_.bursts, 1);
    }

    void transmit(uint8_t port_index, rte_mbuf* m) {
        RuntimePort& port = rt_.ports[port_index];
        uint16_t queue = static_cast<uint16_t>(st_.id % port.tx_queues);
        if (port.shared_tx) {
            // A queue shared with other workers: frames wait here and leave in bursts,
            // one lock acquisition each (flush_shared).
            SharedTx& pending = shared_tx_[port_index];
            pending.mbufs[pending.n++] = m;
            if (pending.n == kBurstSize) flush_shared(port_index);
            return;
        }
        rte_eth_tx_buffer(port.port_id, queue, st_.tx_buffers[port_index], m);
    }

    void flush_shared(size_t port_index) {
        SharedTx& pending = shared_tx_[port_index];
        if (pending.n == 0) return;
        RuntimePort& port = rt_.ports[port_index];
        const uint16_t queue = static_cast<uint16_t>(st_.id % port.tx_queues);
        rte_spinlock_t& lock = (*port.tx_locks)[queue];
        rte_spinlock_lock(&lock);
        const uint16_t sent = rte_eth_tx_burst(port.port_id, queue, pending.mbufs.data(), pending.n);
        rte_spinlock_unlock(&lock);
        bump(st_.shared_tx_bursts);
        bump(st_.shared_tx_packets, pending.n);
        if (sent < pending.n) {
            st_.tx_dropped.fetch_add(pending.n - sent, std::memory_order_relaxed);
            rte_pktmbuf_free_bulk(pending.mbufs.data() + sent, pending.n - sent);
        }
        pending.n = 0;
    }

    uint32_t send_injected() {
        uint32_t total = 0;
        for (size_t p = 0; p < rt_.ports.size(); ++p) {
            rte_mbuf* mbufs[kBurstSize];
            unsigned n = rte_ring_sc_dequeue_burst(rt_.ports[p].inject, reinterpret_cast<void**>(mbufs), kBurstSize,
                                                   nullptr);
            for (unsigned i = 0; i < n; ++i) transmit(static_cast<uint8_t>(p), mbufs[i]);
            total += n;
        }
        return total;
    }

    void flush() {
        for (size_t p = 0; p < rt_.ports.size(); ++p) {
            RuntimePort& port = rt_.ports[p];
            if (port.shared_tx) {
                flush_shared(p);
                continue;
            }
            rte_eth_tx_buffer_flush(port.port_id, static_cast<uint16_t>(st_.id % port.tx_queues), st_.tx_buffers[p]);
        }
    }

    struct SharedTx {
        std::array<rte_mbuf*, kBurstSize> mbufs{};
        uint16_t n = 0;
    };

    Runtime::Impl& rt_;
    WorkerState& st_;
    core::Worker& worker_;
    std::vector<SharedTx> shared_tx_ = std::vector<SharedTx>(rt_.ports.size());
};

}  // namespace

int worker_main(void* arg) {
    auto* args = static_cast<WorkerArgs*>(arg);
    WorkerLoop(*args->rt, *args->state).run();
    return 0;
}

}  // namespace dplb::dpdk
