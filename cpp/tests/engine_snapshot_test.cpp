// The engine's control side under use: retired service snapshots are freed once no
// reader (worker, control lcore, Python view) can hold them, an idle worker included;
// counter slots are recycled once nothing refers to them, and a refused config takes
// none; expiry has a budget per clock move; one thread drives a worker.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/checksum.hpp"
#include "core/engine.hpp"
#include "core/sync_driver.hpp"

namespace dplb::core {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ULL;

IpAddress ip(const std::string& text) { return *IpAddress::parse(text); }

RealConfig real(uint32_t n, uint32_t weight = 100) {
    return {ip("10.0." + std::to_string(2 + n / 200) + "." + std::to_string(10 + n % 200)), 8080, weight};
}

ServiceConfig udp_service(std::vector<RealConfig> reals, const char* vip = "10.0.100.1") {
    ServiceConfig s;
    s.vip = ip(vip);
    s.port = 53;
    s.proto = 17;
    s.scheduler = SchedulerKind::rr;
    s.timeouts.seconds[static_cast<size_t>(TimeoutKind::udp)] = 30;
    s.reals = std::move(reals);
    return s;
}

// port0 toward clients (behind 10.0.1.254), port1 toward the reals (10.0.0.0/8) with a
// local address per worker.
EngineConfig config(uint32_t workers, uint32_t max_reals = 65536, uint32_t sessions = 4096) {
    EngineConfig c;
    c.workers = workers;
    c.sessions_per_worker = sessions;
    c.max_reals = max_reals;
    c.local_port_real_time_wait_s = 0;
    PortConfig clients, reals;
    clients.name = "port0";
    clients.addresses = {*Prefix::parse("10.0.1.1/24")};
    clients.gateways = {ip("10.0.1.254")};
    reals.name = "port1";
    reals.addresses = {*Prefix::parse("10.0.0.1/8")};
    for (uint32_t w = 0; w < workers; ++w) reals.local_addresses.push_back({ip("10.1.0." + std::to_string(1 + w))});
    c.ports = {clients, reals};
    c.services = {udp_service({real(0), real(1)})};
    return c;
}

// A UDP frame from client 198.18.(n / 60000).x:(1024 + n % 60000) to the VIP's port 53.
std::vector<uint8_t> udp_frame(uint32_t n, const char* vip = "10.0.100.1") {
    std::vector<uint8_t> f(14 + 20 + 8 + 4, 0);
    store_be16(f.data() + 12, kEtherTypeIpv4);
    uint8_t* iph = f.data() + 14;
    iph[0] = 0x45;
    store_be16(iph + 2, 20 + 8 + 4);
    iph[8] = 64;
    iph[9] = 17;
    store_be32(iph + 12, (198u << 24 | 18u << 16) + n / 60000);
    std::memcpy(iph + 16, ip(vip).v4(), 4);
    uint8_t* udp = iph + 20;
    store_be16(udp, static_cast<uint16_t>(1024 + n % 60000));
    store_be16(udp + 2, 53);
    store_be16(udp + 4, 8 + 4);
    return f;
}

FlowKey key_of(const std::vector<uint8_t>& frame) {
    ParsedPacket p = parse_packet(frame.data(), static_cast<uint32_t>(frame.size()));
    EXPECT_EQ(p.status, ParseStatus::ok);
    return p.key;
}

// Runs `frame` on worker `w` (its owner) and returns the verdict.
Verdict run(Worker& w, std::vector<uint8_t> frame) {
    PacketView pkt{frame.data(), static_cast<uint32_t>(frame.size()), 0, 0, 0};
    return w.process(pkt, true).verdict;
}

// Frames numbered from `first` that worker `w` owns, `count` of them.
std::vector<std::vector<uint8_t>> owned_frames(const Engine& e, uint32_t w, uint32_t first, uint32_t count) {
    std::vector<std::vector<uint8_t>> out;
    for (uint32_t n = first; out.size() < count; ++n) {
        auto f = udp_frame(n);
        if (e.inbound_owner(key_of(f)) == w) out.push_back(std::move(f));
    }
    return out;
}

size_t rss_bytes() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return 0;
    unsigned long pages = 0, resident = 0;
    if (std::fscanf(f, "%lu %lu", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
    return resident * 4096;
}

// -- reclaim --------------------------------------------------------------------------

// Two workers, one forwarding and one idle (its loop polls: quiesce, or a clock move):
// every apply retires a snapshot, and none stays alive for the idle worker's sake.
TEST(EngineSnapshotTest, AnIdleWorkerHoldsNoRetiredSnapshot) {
    EngineConfig c = config(2);
    c.services[0].scheduler = SchedulerKind::maglev;
    c.services[0].maglev_table_size = 65537;  // 256 KB a table: what a leak costs
    Engine engine(c);
    const auto busy_frames = owned_frames(engine, 0, 0, 1);
    const size_t rss_before = rss_bytes();
    size_t most_alive = 0;
    constexpr uint32_t kApplies = 500;  // 2,000 measured +534 MB before, +0.3 MB after
    for (uint32_t i = 0; i < kApplies; ++i) {
        ServiceConfig s = c.services[0];
        s.reals[0].weight = 1 + i % 200;  // a new Maglev table each time
        engine.apply_services({s});
        run(engine.worker(0), busy_frames[0]);
        engine.worker(1).set_clock(i * 1'000'000ULL);  // the idle worker's clock moves, nothing else
        most_alive = std::max(most_alive, engine.snapshots_alive());
    }
    std::printf("2 workers, one idle, %u applies: resident %+.1f MB\n", kApplies,
                (double(rss_bytes()) - double(rss_before)) / 1e6);
    EXPECT_LE(most_alive, 2u) << "retired snapshots kept alive by the idle worker";
}

// The same through the harness's driver: frames to one worker only, no clock at all.
TEST(EngineSnapshotTest, TheHarnessDriverQuiescesEveryWorkerAfterEachFrame) {
    Engine engine(config(2));
    SyncDriver driver(engine);
    const auto frame = owned_frames(engine, 0, 0, 1)[0];
    for (uint32_t i = 0; i < 100; ++i) {
        engine.apply_services({udp_service({real(0, 1 + i), real(1)})});
        driver.receive(frame.data(), static_cast<uint32_t>(frame.size()), 0, 0);
    }
    EXPECT_LE(engine.snapshots_alive(), 2u);
}

// A reader other than a worker (the control lcore, a metrics scrape) holds a snapshot
// while two configs are applied at once: it stays alive and intact until the reader lets
// go, and is freed at the first reclaim after.
TEST(EngineSnapshotTest, AReaderKeepsItsSnapshotAcrossTwoQuickApplies) {
    Engine engine(config(1));
    std::mutex m;
    std::condition_variable cv;
    int step = 0;
    auto wait_for = [&](int s) {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return step >= s; });
    };
    auto go = [&](int s) {
        {
            std::lock_guard lock(m);
            step = s;
        }
        cv.notify_all();
    };
    uint32_t weight_seen = 0;
    bool vip_seen = false;
    std::thread reader_thread([&] {
        SnapshotReader reader(engine);
        const ServiceTable& held = reader.current();
        go(1);
        wait_for(2);
        // Two applies and reclaims later: what this holds is still the first config.
        const ServiceEntry* s = held.find(ip("10.0.100.1"), 53, 17);
        vip_seen = held.is_vip(ip("10.0.100.1")) && s != nullptr;
        if (s != nullptr) weight_seen = s->reals[0].weight;
        reader.release();
        go(3);
    });
    wait_for(1);
    engine.apply_services({udp_service({real(0, 7), real(1)})});
    engine.apply_services({udp_service({real(0, 9), real(1)}, "10.0.100.2")});
    engine.worker(0).set_clock(kSecond);
    engine.reclaim();
    // The held snapshot, the one applied between and the current one: a reader holds every
    // generation from its own on.
    EXPECT_EQ(engine.snapshots_alive(), 3u);
    go(2);
    wait_for(3);
    reader_thread.join();
    EXPECT_TRUE(vip_seen);
    EXPECT_EQ(weight_seen, 100u);
    engine.reclaim();
    EXPECT_EQ(engine.snapshots_alive(), 1u);
}

// Everything at once, for the sanitizers: two worker threads forwarding (sessions opened
// and expired on reals that come and go), a reader walking the snapshot, and applies.
TEST(EngineSnapshotTest, WorkersAReaderAndAppliesRunTogether) {
    Engine engine(config(2, 64));
    std::vector<std::vector<std::vector<uint8_t>>> frames;
    for (uint32_t w = 0; w < 2; ++w) frames.push_back(owned_frames(engine, w, 0, 64));
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    std::array<std::atomic<uint64_t>, 2> polls{};
    for (uint32_t w = 0; w < 2; ++w) {
        threads.emplace_back([&, w] {
            Worker& worker = engine.worker(w);
            uint64_t now = 0;
            for (uint32_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
                polls[w].fetch_add(1, std::memory_order_relaxed);
                run(worker, frames[w][i % frames[w].size()]);
                if (i % 16 == 0) worker.set_clock(now += 5 * kSecond);  // UDP sessions last 30 s
                worker.quiesce();
            }
        });
    }
    std::atomic<uint64_t> walked{0};
    threads.emplace_back([&] {
        SnapshotReader reader(engine);
        while (!stop.load(std::memory_order_relaxed)) {
            const ServiceTable& t = reader.current();
            uint64_t sum = 0;
            for (const ServiceEntry& s : t.services()) {
                sum += t.is_vip(s.vip);
                for (const RealEntry& r : s.reals) sum += r.weight + r.slot;
            }
            walked.fetch_add(sum > 0, std::memory_order_relaxed);
        }
    });
    // Every few applies, wait until each thread has gone round again, so that they overlap.
    auto all_moved = [&] {
        const uint64_t w0 = polls[0].load(), w1 = polls[1].load(), r = walked.load();
        while (polls[0].load() == w0 || polls[1].load() == w1 || walked.load() == r) std::this_thread::yield();
    };
    for (uint32_t i = 0; i < 300; ++i) {
        // Each config: 2 reals of a rotating set of 40, under max_reals (64) at any time.
        engine.apply_services({udp_service({real(i % 40, 1 + i % 50), real((i + 1) % 40)})});
        if (i % 20 == 0) all_moved();
    }
    stop.store(true);
    for (std::thread& t : threads) t.join();
    EXPECT_GT(walked.load(), 0u);
    for (uint32_t w = 0; w < 2; ++w) {
        engine.worker(w).adopt_calling_thread();
        engine.worker(w).quiesce();
    }
    engine.reclaim();
    EXPECT_EQ(engine.snapshots_alive(), 1u);
}

// -- counter slots ------------------------------------------------------------------

// Over the node's life many more distinct reals than max_reals come and go, each config
// under the limit: every config is accepted.
TEST(EngineSnapshotTest, RealSlotsAreRecycledOnceNothingRefersToThem) {
    Engine engine(config(1, 8));
    for (uint32_t round = 0; round < 20; ++round) {
        std::vector<RealConfig> reals;
        for (uint32_t k = 0; k < 4; ++k) reals.push_back(real(100 + round * 4 + k));
        EXPECT_NO_THROW(engine.apply_services({udp_service(reals)})) << "round " << round;
        engine.worker(0).set_clock(round * kSecond);  // the worker polls
    }
    EXPECT_LE(engine.real_slots_in_use(), 8u);
}

// A refused config takes no slot: the next valid one, with reals as new as the refused
// one's, is accepted.
TEST(EngineSnapshotTest, ARefusedConfigTakesNoSlot) {
    Engine engine(config(1, 4));  // reals 0 and 1 hold two slots
    EXPECT_EQ(engine.real_slots_in_use(), 2u);
    EXPECT_THROW(engine.apply_services({udp_service({real(0), real(1), real(2), real(3), real(4)})}),
                 std::invalid_argument);
    EXPECT_EQ(engine.real_slots_in_use(), 2u);
    EXPECT_NO_THROW(engine.apply_services({udp_service({real(5), real(6)})}));
}

// A session holds its real's slot after the real left the config; once it expired the
// slot goes to a new real, whose counters start from 0.
TEST(EngineSnapshotTest, ASessionHoldsItsRealsSlotAndANewOwnerStartsFromZero) {
    // Three slots: real 1 holds one while the next config is built (the workers forward
    // on its snapshot meanwhile), real 0's session another.
    EngineConfig c = config(1, 3);
    c.services = {udp_service({real(0)})};
    Engine engine(c);
    Worker& w = engine.worker(0);
    w.set_clock(kSecond);
    ASSERT_NE(run(w, udp_frame(1)), Verdict::drop);
    const uint32_t old_slot = engine.services().services()[0].reals[0].slot;
    EXPECT_EQ(w.real_counters()[old_slot].connections, 1u);
    // Real 0 leaves; its session stays open (30 s): two new reals find one slot free.
    engine.apply_services({udp_service({real(1)})});
    w.set_clock(2 * kSecond);
    EXPECT_THROW(engine.apply_services({udp_service({real(2), real(3)})}), std::invalid_argument);
    w.set_clock(40 * kSecond);  // the session expires
    ASSERT_EQ(w.sessions().size(), 0u);
    ASSERT_NO_THROW(engine.apply_services({udp_service({real(2), real(3)})}));
    for (const RealEntry& r : engine.services().services()[0].reals) {
        EXPECT_EQ(w.real_counters()[r.slot].connections, 0u) << r.address.to_string();
        EXPECT_EQ(w.real_counters()[r.slot].packets_in, 0u) << r.address.to_string();
    }
}

// -- expiry budget ------------------------------------------------------------------

// 3,000 sessions due in the same tick: one clock move expires at most the budget, the
// next ones finish the work; sessions due later stay.
TEST(EngineSnapshotTest, ExpiryHasABudgetPerClockMove) {
    Engine engine(config(1));
    Worker& w = engine.worker(0);
    w.set_clock(kSecond);
    for (uint32_t n = 0; n < 3000; ++n) ASSERT_NE(run(w, udp_frame(n)), Verdict::drop);
    w.set_clock(20 * kSecond);
    for (uint32_t n = 3000; n < 3100; ++n) ASSERT_NE(run(w, udp_frame(n)), Verdict::drop);
    ASSERT_EQ(w.sessions().size(), 3100u);
    w.set_clock(32 * kSecond);  // the first 3,000 are due (30 s), the last 100 at 50 s
    EXPECT_EQ(w.stats().sessions_expired, uint64_t(kExpiryBudget));
    EXPECT_TRUE(w.expiry_behind());
    for (int k = 0; k < 3 && w.expiry_behind(); ++k) w.set_clock(32 * kSecond);
    EXPECT_FALSE(w.expiry_behind());
    EXPECT_EQ(w.stats().sessions_expired, 3000u);
    EXPECT_EQ(w.sessions().size(), 100u) << "sessions not yet due expired";
    EXPECT_GE(w.stats().expiry_behind, 2u);
    w.set_clock(51 * kSecond);
    EXPECT_EQ(w.sessions().size(), 0u);
}

// -- thread checks ------------------------------------------------------------------

TEST(EngineSnapshotDeathTest, AWorkerDrivenFromASecondThreadAborts) {
#ifdef DPLB_THREAD_CHECKS_ENABLED
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            Engine engine(config(1));
            engine.worker(0).set_clock(kSecond);
            std::thread([&] { engine.worker(0).set_clock(2 * kSecond); }).join();
        },
        "another thread drives this worker");
#else
    GTEST_SKIP() << "built without DPLB_THREAD_CHECKS";
#endif
}

}  // namespace
}  // namespace dplb::core
