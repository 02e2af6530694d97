// Workers, the control side and a reader of the counters at once, each on its own
// std::thread as in the runtime (worker lcores, the control lcore, Python reading the
// views): workers run bursts of real frames while the control side changes neighbours
// and resets sessions, and the reader reads what the bindings' views read (WorkerStats,
// RealCounters, session counts, neighbours). Under TSan (`make test-tsan`) a plain field
// shared this way is a reported race; in every build the counts must add up.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <latch>
#include <thread>
#include <vector>

#include "core/engine.hpp"
#include "tests/client_frame.hpp"

namespace dplb::core {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

constexpr uint32_t kWorkers = 2;
const MacAddress kClientGatewayMac = {0x0a, 0, 0, 0, 1, 0xfe};
const MacAddress kRealMacs[2] = {{0x0a, 0, 0, 0, 2, 0x11}, {0x0a, 0, 0, 0, 2, 0x12}};

EngineConfig config() {
    EngineConfig c = testing_frames::two_port_config(kWorkers, 4096);
    c.services[0].reals.push_back({ip("10.0.2.12"), 8080, 100});
    return c;
}

FlowKey client_key(uint16_t port) {
    FlowKey k;
    k.src = ip("198.51.100.7");
    k.dst = ip("10.0.100.10");
    k.src_port = port;
    k.dst_port = 80;
    k.proto = 6;
    return k;
}

void client_frame(uint8_t* f, uint16_t port, uint8_t flags) { testing_frames::write_client_frame(f, port, flags); }

uint64_t sum_of(const WorkerStats& s) {
    uint64_t n = s.rx_packets + s.rx_bytes + s.tx_packets + s.tx_bytes + s.sessions_created + s.sessions_expired +
                 s.sessions_reset + s.handed_over + s.handed_in + s.to_control + s.icmp_translated +
                 s.awaiting_neighbour + s.log_dropped;
#define DPLB_CLIENT_ADDRESS_SUM(name, text) n += s.name;
    DPLB_FOREACH_CLIENT_ADDRESS_COUNTER(DPLB_CLIENT_ADDRESS_SUM)
#undef DPLB_CLIENT_ADDRESS_SUM
    for (const Counter& d : s.drops) n += d;
    return n;
}

TEST(ConcurrencyTest, WorkersControlSideAndReadersAtOnce) {
    Engine engine(config());
    NeighbourTable& neighbours = engine.neighbours();
    neighbours.set(0, ip("10.0.1.254"), kClientGatewayMac);
    neighbours.set(1, ip("10.0.2.11"), kRealMacs[0]);
    neighbours.set(1, ip("10.0.2.12"), kRealMacs[0]);

    // Each worker gets the client ports it owns (as RSS and the hand-over would do).
    std::vector<std::vector<uint16_t>> ports(kWorkers);
    for (uint32_t p = 1024; p < 65535; ++p) {
        ports[engine.inbound_owner(client_key(static_cast<uint16_t>(p)))].push_back(static_cast<uint16_t>(p));
    }

    constexpr uint32_t kRounds = 300;
    constexpr uint32_t kFlowsPerRound = kBurst / 2;  // a SYN and an ACK each
    std::atomic<uint32_t> workers_running{kWorkers};
    // The workers start once the control side and the reader run: on a loaded machine
    // the workers' 300 rounds would otherwise be over before the others are scheduled.
    std::latch others_running(2);
    std::vector<uint64_t> sent(kWorkers, 0), transmitted(kWorkers, 0);

    auto worker_thread = [&](uint32_t w) {
        Worker& worker = engine.worker(w);
        constexpr uint32_t kRoom = 128 + 54 + 128;
        std::vector<uint8_t> buffers(kBurst * kRoom);
        PacketView views[kBurst];
        PacketView* pointers[kBurst];
        Action actions[kBurst];
        others_running.wait();
        for (uint32_t round = 0; round < kRounds; ++round) {
            worker.set_clock((round + 1) * 1'000'000ULL);  // 1 ms a round
            for (uint32_t i = 0; i < kBurst; ++i) {
                const uint16_t port = ports[w][(round * kFlowsPerRound + i / 2) % ports[w].size()];
                uint8_t* frame = buffers.data() + i * kRoom + 128;
                client_frame(frame, port, i % 2 == 0 ? kTcpSyn : kTcpAck);
                views[i] = PacketView{frame, 54, 128, 128, 0};
                pointers[i] = &views[i];
            }
            worker.process_burst(pointers, actions, kBurst, false);
            sent[w] += kBurst;
            for (const Action& a : actions) transmitted[w] += a.verdict == Verdict::transmit;
        }
        workers_running.fetch_sub(1);
    };

    // The control side: the reals' MACs change, a real's neighbour comes and goes, other
    // neighbours are learned and forgotten, sessions are reset.
    uint64_t control_rounds = 0;
    auto control_thread = [&] {
        others_running.count_down();
        for (uint32_t i = 0; i == 0 || workers_running.load() > 0; ++i, ++control_rounds) {
            neighbours.set(1, ip("10.0.2.11"), kRealMacs[i % 2]);
            if (i % 3 == 0) {
                neighbours.remove(1, ip("10.0.2.12"));
            } else {
                neighbours.set(1, ip("10.0.2.12"), kRealMacs[(i + 1) % 2]);
            }
            const uint8_t b[4] = {10, 0, 2, static_cast<uint8_t>(20 + i % 200)};
            neighbours.set(1, IpAddress::from_v4(b), kRealMacs[0]);
            if (i >= 50) {
                const uint8_t old[4] = {10, 0, 2, static_cast<uint8_t>(20 + (i - 50) % 200)};
                neighbours.remove(1, IpAddress::from_v4(old));
            }
            if (i % 16 == 0) engine.reset_session(client_key(ports[i % kWorkers][i % 64]));
            std::this_thread::yield();
        }
    };

    // A reader as the Python views are: counters, per-real counters, session counts.
    uint64_t reader_rounds = 0;
    bool went_back = false, lost_neighbour = false;
    const IpAddress real = ip("10.0.2.11");
    auto reader_thread = [&] {
        std::vector<uint64_t> last(kWorkers, 0);
        others_running.count_down();
        do {
            for (uint32_t w = 0; w < kWorkers; ++w) {
                const Worker& worker = engine.worker(w);
                const uint64_t rx = worker.stats().rx_packets;
                went_back |= rx < last[w];
                last[w] = rx;
                volatile uint64_t seen = sum_of(worker.stats()) + worker.sessions().size();
                for (const ServiceEntry& svc : engine.services().services()) {
                    for (const RealEntry& r : svc.reals) {
                        const RealCounters& c = worker.real_counters()[r.slot];
                        seen = seen + c.connections + c.active + c.packets_in + c.packets_out + c.bytes_in +
                               c.bytes_out;
                    }
                }
                (void)seen;
            }
            // Never removed, only changed: a lookup must find it whatever else moves.
            lost_neighbour |= !neighbours.lookup(1, real).has_value();
            ++reader_rounds;
            std::this_thread::yield();
        } while (workers_running.load() > 0);
    };

    std::vector<std::thread> threads;
    for (uint32_t w = 0; w < kWorkers; ++w) threads.emplace_back(worker_thread, w);
    threads.emplace_back(control_thread);
    threads.emplace_back(reader_thread);
    for (std::thread& t : threads) t.join();

    EXPECT_FALSE(went_back) << "a counter read from another thread went backwards";
    EXPECT_FALSE(lost_neighbour) << "a lookup missed a neighbour while others were removed";
    EXPECT_GT(control_rounds, 0u);
    EXPECT_GT(reader_rounds, 0u);
    uint64_t connections = 0;
    for (uint32_t w = 0; w < kWorkers; ++w) {
        const WorkerStats& s = engine.worker(w).stats();
        EXPECT_EQ(s.rx_packets, sent[w]) << "worker " << w;
        EXPECT_EQ(s.tx_packets, transmitted[w]) << "worker " << w;
        EXPECT_GT(s.sessions_created, 0u) << "worker " << w;
        EXPECT_EQ(s.handed_over, 0u) << "worker " << w << " got frames it does not own";
        for (const ServiceEntry& svc : engine.services().services()) {
            for (const RealEntry& r : svc.reals) connections += engine.worker(w).real_counters()[r.slot].connections;
        }
        EXPECT_LE(engine.worker(w).sessions().size(), s.sessions_created) << "worker " << w;
    }
    uint64_t created = 0;
    for (uint32_t w = 0; w < kWorkers; ++w) created += engine.worker(w).stats().sessions_created;
    EXPECT_EQ(connections, created) << "every session counted once against its real";
}

}  // namespace
}  // namespace dplb::core
