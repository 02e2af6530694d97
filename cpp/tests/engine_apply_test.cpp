// Engine::apply_services: a new snapshot keeps the schedulers of the services whose
// scheduler inputs did not change (a Maglev table is the costly part of a snapshot), and
// rebuilds the others; Engine::reset_session queues to the flow's owner worker.
#include "core/engine.hpp"

#include <gtest/gtest.h>

#include <string>

namespace dplb::core {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

ServiceConfig service(const char* vip, SchedulerKind kind, uint32_t weight) {
    ServiceConfig s;
    s.vip = ip(vip);
    s.port = 80;
    s.scheduler = kind;
    s.maglev_table_size = 251;
    s.reals = {{ip("10.0.2.11"), 8080, weight}, {ip("10.0.2.12"), 8080, 100}};
    return s;
}

EngineConfig config(uint32_t workers) {
    EngineConfig c;
    c.workers = workers;
    c.sessions_per_worker = 64;
    PortConfig p;
    p.name = "port0";
    p.addresses = {*Prefix::parse("10.0.2.1/24")};
    for (uint32_t w = 0; w < workers; ++w) {
        p.local_addresses.push_back({ip(("10.0.2." + std::to_string(101 + w)).c_str())});
    }
    c.ports = {p};
    c.services = {service("10.0.100.1", SchedulerKind::maglev, 100), service("10.0.100.2", SchedulerKind::maglev, 100)};
    return c;
}

const Scheduler* scheduler_of(const Engine& e, const char* vip) {
    const ServiceEntry* s = e.services().find(ip(vip), 80, 6);
    return s ? s->scheduler.get() : nullptr;
}

TEST(EngineApplyTest, UnchangedServicesKeepTheirSchedulerChangedOnesGetANewOne) {
    Engine engine(config(1));
    const Scheduler* first = scheduler_of(engine, "10.0.100.1");
    const Scheduler* second = scheduler_of(engine, "10.0.100.2");
    ASSERT_NE(first, nullptr);

    engine.apply_services({service("10.0.100.1", SchedulerKind::maglev, 100),
                           service("10.0.100.2", SchedulerKind::maglev, 50)});
    EXPECT_EQ(scheduler_of(engine, "10.0.100.1"), first);
    EXPECT_NE(scheduler_of(engine, "10.0.100.2"), second);
    EXPECT_EQ(engine.services().find(ip("10.0.100.2"), 80, 6)->reals[0].weight, 50u);
}

TEST(EngineApplyTest, AnotherKindOrTableSizeIsANewScheduler) {
    Engine engine(config(1));
    const Scheduler* first = scheduler_of(engine, "10.0.100.1");
    ServiceConfig resized = service("10.0.100.1", SchedulerKind::maglev, 100);
    resized.maglev_table_size = 257;
    engine.apply_services({resized, service("10.0.100.2", SchedulerKind::wlc, 100)});
    EXPECT_NE(scheduler_of(engine, "10.0.100.1"), first);
    EXPECT_EQ(engine.services().find(ip("10.0.100.2"), 80, 6)->scheduler_kind, SchedulerKind::wlc);
}

TEST(EngineApplyTest, ARefusedSnapshotChangesNothing) {
    Engine engine(config(1));
    const Scheduler* first = scheduler_of(engine, "10.0.100.1");
    ServiceConfig twice = service("10.0.100.1", SchedulerKind::rr, 100);
    EXPECT_THROW(engine.apply_services({twice, twice}), std::invalid_argument);
    EXPECT_EQ(scheduler_of(engine, "10.0.100.1"), first);
    EXPECT_EQ(engine.services().services().size(), 2u);
}

TEST(EngineApplyTest, ResetOfAFlowWithNoSessionIsQueuedAndRemovesNothing) {
    Engine engine(config(2));
    FlowKey key;
    key.src = ip("198.51.100.7");
    key.dst = ip("10.0.100.1");
    key.src_port = 40000;
    key.dst_port = 80;
    key.proto = 6;
    ASSERT_TRUE(engine.reset_session(key));
    Worker& owner = engine.worker(engine.inbound_owner(key));
    EXPECT_EQ(owner.drain_commands(), 0u);
    EXPECT_EQ(owner.stats().sessions_reset, 0u);
}

TEST(EngineApplyTest, AFullCommandRingRefusesMore) {
    Engine engine(config(1));
    FlowKey key;
    key.src = ip("198.51.100.7");
    key.dst = ip("10.0.100.1");
    key.proto = 6;
    for (uint32_t i = 0; i < kWorkerCommandSlots; ++i) ASSERT_TRUE(engine.reset_session(key));
    EXPECT_FALSE(engine.reset_session(key));
    engine.worker(0).drain_commands();
    EXPECT_TRUE(engine.reset_session(key));
}

}  // namespace
}  // namespace dplb::core
