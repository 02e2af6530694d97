// Session sync, engine side: installs of peers' records (created, updated, removed,
// refused by reason), peers' local addresses (equal worker counts) and the steering they
// give. Frame-level behaviour (push on establish, adoption, PROXY/TOA continuity) is in
// tests/test_sync_harness.py.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "core/engine.hpp"

namespace dplb::core {
namespace {

IpAddress ip(const std::string& text) { return *IpAddress::parse(text); }

EngineConfig config(uint32_t workers) {
    EngineConfig c;
    c.workers = workers;
    c.sessions_per_worker = 1024;
    c.sync_enabled = true;
    PortConfig clients, reals;
    clients.name = "port0";
    clients.addresses = {*Prefix::parse("10.0.1.1/24")};
    clients.gateways = {ip("10.0.1.254")};
    reals.name = "port1";
    reals.addresses = {*Prefix::parse("10.0.0.1/8")};
    for (uint32_t w = 0; w < workers; ++w) reals.local_addresses.push_back({ip("10.1.0." + std::to_string(1 + w))});
    c.ports = {clients, reals};
    ServiceConfig s;
    s.vip = ip("10.0.100.1");
    s.port = 53;
    s.proto = 17;
    s.scheduler = SchedulerKind::rr;
    s.reals = {{ip("10.0.2.10"), 8080, 100}};
    c.services = {s};
    return c;
}

// A peer's UDP session: client 198.18.0.1:port -> VIP:53, real 10.0.2.10:8080 -> laddr:40000.
SyncRecord record(uint16_t client_port, const char* laddr, SyncKind kind = SyncKind::open) {
    SyncRecord r;
    r.inbound.src = ip("198.18.0.1");
    r.inbound.dst = ip("10.0.100.1");
    r.inbound.src_port = client_port;
    r.inbound.dst_port = 53;
    r.inbound.proto = 17;
    r.outbound.src = ip("10.0.2.10");
    r.outbound.dst = ip(laddr);
    r.outbound.src_port = 8080;
    r.outbound.dst_port = 40000;
    r.outbound.proto = 17;
    r.remaining_ms = 20'000;
    r.kind = kind;
    return r;
}

TEST(SyncTest, InstallsUpdatesAndRemovesAPeersCopyWithoutCountingItAsOwn) {
    Engine e(config(1));
    e.set_peer_local_addresses(2, {{ip("10.9.0.1")}});
    Worker& w = e.worker(0);
    ASSERT_TRUE(e.install_synced(record(1000, "10.9.0.1")));
    w.set_clock(0);
    EXPECT_EQ(w.stats().sync_installed.load(), 1u);
    EXPECT_EQ(w.sessions().size(), 1u);
    EXPECT_EQ(w.stats().sessions_created.load(), 0u);
    EXPECT_EQ(w.real_counters()[e.services().services()[0].reals[0].slot].active.load(), 0u);
    ASSERT_TRUE(e.install_synced(record(1000, "10.9.0.1", SyncKind::refresh)));
    w.set_clock(0);
    EXPECT_EQ(w.stats().sync_updated.load(), 1u);
    ASSERT_TRUE(e.install_synced(record(1000, "10.9.0.1", SyncKind::close)));
    w.set_clock(0);
    EXPECT_EQ(w.stats().sync_removed.load(), 1u);
    EXPECT_EQ(w.sessions().size(), 0u);
}

TEST(SyncTest, RefusesByReason) {
    Engine e(config(1));
    EXPECT_FALSE(e.install_synced(record(1000, "10.9.0.1")));  // no peer names that address
    EXPECT_EQ(e.sync_counters().refused_unknown_local_address.load(), 1u);
    SyncRecord no_service = record(1001, "10.1.0.1");
    no_service.inbound.dst_port = 54;
    SyncRecord no_real = record(1002, "10.1.0.1");
    no_real.outbound.src = ip("10.0.2.99");
    ASSERT_TRUE(e.install_synced(no_service));
    ASSERT_TRUE(e.install_synced(no_real));
    e.worker(0).set_clock(0);
    EXPECT_EQ(e.worker(0).stats().sync_refused_no_service.load(), 1u);
    EXPECT_EQ(e.worker(0).stats().sync_refused_no_real.load(), 1u);
    EXPECT_EQ(e.worker(0).sessions().size(), 0u);
}

TEST(SyncTest, AnInboundOwnerThatDoesNotOwnTheLocalAddressIsRefused) {
    Engine e(config(2));
    SyncRecord r = record(1000, "10.1.0.1");
    for (uint16_t port = 1000; e.inbound_owner(r.inbound) != 1; ++port) r.inbound.src_port = port;
    EXPECT_FALSE(e.install_synced(r));  // 10.1.0.1 is worker 0's
    EXPECT_EQ(e.sync_counters().refused_owner_mismatch.load(), 1u);
}

TEST(SyncTest, PeerAddressesNeedEqualWorkerCounts) {
    Engine e(config(2));
    try {
        e.set_peer_local_addresses(7, {{ip("10.9.0.1")}});
        FAIL() << "one worker's list for a two-worker node was accepted";
    } catch (const std::invalid_argument& ex) {
        EXPECT_NE(std::string(ex.what()).find("1 workers, this node has 2"), std::string::npos) << ex.what();
    }
    e.set_peer_local_addresses(7, {{ip("10.9.0.1")}, {ip("10.9.0.2")}});
    EXPECT_EQ(e.services().peer_address_owner(ip("10.9.0.2")), 1);
    e.set_peer_local_addresses(7, {});
    EXPECT_EQ(e.services().peer_address_owner(ip("10.9.0.2")), -1);
}

}  // namespace
}  // namespace dplb::core
