// SyncService (host/sync_service.hpp) between two engines on loopback, with the workers
// driven from threads of their own as a node's lcores drive them: records reach the peer
// and are installed while stats are read; a full sync resumes broken streams; stop()
// ends a pull from a peer that never answers. Run under TSan too (make test-tsan).
// Frame-level continuity and the drop reasons are in tests/test_sync_service.py.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/engine.hpp"
#include "core/packet.hpp"
#include "core/sync_driver.hpp"
#include "host/sync_service.hpp"

namespace dplb::host {
namespace {

using core::Engine;
using core::EngineConfig;
using core::IpAddress;
using core::Prefix;
using core::SyncDriver;

EngineConfig config() {
    EngineConfig c;
    c.workers = 2;
    c.sessions_per_worker = 4096;
    c.sync_enabled = true;
    core::PortConfig clients, reals;
    clients.name = "port0";
    clients.mac = {2, 0, 0, 0, 0, 1};
    clients.addresses = {*Prefix::parse("10.0.1.1/24")};
    clients.gateways = {*IpAddress::parse("10.0.1.254")};
    reals.name = "port1";
    reals.mac = {2, 0, 0, 0, 0, 2};
    reals.addresses = {*Prefix::parse("10.0.0.1/8")};
    reals.local_addresses = {{*IpAddress::parse("10.1.0.1")}, {*IpAddress::parse("10.1.0.2")}};
    c.ports = {clients, reals};
    core::ServiceConfig s;
    s.vip = *IpAddress::parse("10.0.100.1");
    s.port = 53;
    s.proto = 17;
    s.scheduler = core::SchedulerKind::rr;
    s.reals = {{*IpAddress::parse("10.0.2.10"), 8080, 100}};
    c.services = {s};
    return c;
}

std::unique_ptr<Engine> engine() {
    auto e = std::make_unique<Engine>(config());
    e->neighbours().set(0, *IpAddress::parse("10.0.1.254"), {0x0a, 0, 0, 0, 1, 0xfe});
    e->neighbours().set(1, *IpAddress::parse("10.0.2.10"), {0x0a, 0, 0, 0, 2, 1});
    return e;
}

// A UDP datagram from 198.18.0.1:port to the VIP's port 53: a new session each port.
void open_udp_sessions(SyncDriver& d, uint16_t first_port, uint16_t n) {
    for (uint16_t i = 0; i < n; ++i) {
        uint8_t f[46] = {2, 0, 0, 0, 0, 1, 0x0a, 0, 0, 0, 1, 0xfe};
        core::store_be16(f + 12, core::kEtherTypeIpv4);
        uint8_t* ip = f + 14;
        ip[0] = 0x45;
        core::store_be16(ip + 2, 32);
        ip[8] = 64;
        ip[9] = 17;
        core::store_be32(ip + 12, 198u << 24 | 18u << 16 | 1);
        core::store_be32(ip + 16, 10u << 24 | 100u << 8 | 1);
        core::store_be16(ip + 20, static_cast<uint16_t>(first_port + i));
        core::store_be16(ip + 22, 53);
        core::store_be16(ip + 24, 12);
        d.receive(f, sizeof f, 0, std::nullopt);
    }
}

// Drives an engine's workers (clock moves drain their install rings) on its own thread.
class Lcores {
public:
    explicit Lcores(Engine& e) : driver_(e), thread_([this] {
        uint64_t t = 1'000'000'000ULL;
        while (!stop_.load()) driver_.set_clock(t += 100'000);
    }) {}
    ~Lcores() {
        stop_ = true;
        thread_.join();
    }

private:
    SyncDriver driver_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

SyncServiceOptions options(uint32_t node) {
    SyncServiceOptions o;
    o.node_id = node;
    o.listen = "127.0.0.1:0";
    SyncKey k;
    k.id = 1;
    k.bytes.fill(0x5a);
    o.keys = {k};
    o.send_key = 1;
    return o;
}

std::string address_of(const SyncService& s) { return "127.0.0.1:" + std::to_string(s.listen_port()); }

uint64_t installed(const Engine& e) {
    uint64_t n = 0;
    for (uint32_t w = 0; w < e.worker_count(); ++w) n += e.worker(w).stats().sync_installed;
    return n;
}

bool eventually(const std::function<bool()>& condition) {
    for (int i = 0; i < 1000; ++i) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return condition();
}

TEST(SyncServiceTest, RecordsReachThePeerAndAreInstalledWhileStatsAreRead) {
    auto a = engine(), b = engine();
    SyncDriver da(*a);
    da.set_clock(1'000'000'000ULL);
    SyncService sa(*a, options(1)), sb(*b, options(2));
    sa.set_peers({{2, address_of(sb)}});
    sb.set_peers({{1, address_of(sa)}});
    Lcores lb(*b);
    open_udp_sessions(da, 20000, 300);
    EXPECT_TRUE(eventually([&] {
        (void)sb.peers();  // readers beside the sync thread
        return installed(*b) == 300;
    }));
    EXPECT_EQ(sa.stats().sent_records, 300u);
    EXPECT_EQ(sb.stats().applied, 300u);
    const auto peers = sb.peers();
    ASSERT_EQ(peers.size(), 1u);
    EXPECT_EQ(peers[0].records, 300u);
    EXPECT_EQ(peers[0].gaps, 0u);
}

TEST(SyncServiceTest, AFullSyncResumesBrokenStreamsFromItsCursor) {
    auto a = engine(), c = engine();
    SyncDriver da(*a);
    da.set_clock(1'000'000'000ULL);
    open_udp_sessions(da, 30000, 500);
    core::SyncRecord r;
    for (uint32_t w = 0; w < 2; ++w) {
        while (a->worker(w).take_sync_record(r)) {
        }
    }
    SyncServiceOptions oa = options(1);
    oa.test_break_stream_after = 1;
    oa.full_sync_batch = 64;  // each stream ends after its first batch
    SyncService sa(*a, oa), sc(*c, options(3));
    sa.set_peers({{3, address_of(sc)}});
    sc.set_peers({{1, address_of(sa)}});
    Lcores lc(*c);
    ASSERT_TRUE(sc.full_sync({{1, address_of(sa)}}));
    EXPECT_FALSE(sc.full_sync({{1, address_of(sa)}}));  // one at a time
    ASSERT_TRUE(eventually([&] { return sc.full_sync_status().state != "running"; }));
    const FullSyncStatus st = sc.full_sync_status();
    EXPECT_EQ(st.state, "done") << st.error;
    EXPECT_EQ(st.records, 500u);
    ASSERT_EQ(st.peers.size(), 1u);
    EXPECT_GE(st.peers[0].reconnects, 500u / 64);
    EXPECT_TRUE(eventually([&] { return installed(*c) == 500; }));
}

TEST(SyncServiceTest, StopEndsAPullFromAPeerThatNeverAnswers) {
    auto c = engine();
    const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(silent, 4), 0);  // connections complete, nothing is ever sent
    socklen_t len = sizeof addr;
    ::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
    SyncServiceOptions oc = options(3);
    oc.io_timeout_ms = 600'000;
    SyncService sc(*c, oc);
    const std::string peer = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    ASSERT_TRUE(sc.full_sync({{1, peer}}));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(sc.full_sync_status().state, "running");
    sc.stop();
    const FullSyncStatus st = sc.full_sync_status();
    EXPECT_EQ(st.state, "failed");
    EXPECT_NE(st.error.find(peer), std::string::npos) << st.error;
    ::close(silent);
}

}  // namespace
}  // namespace dplb::host
