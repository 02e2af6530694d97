// Logger: connection-log records from the workers' rings become JSON lines; a held
// logger never holds a worker (the ring fills, records are dropped and counted); control
// events, drop reports and size-based rotation.
#include "host/logger.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/engine.hpp"
#include "tests/client_frame.hpp"
#include "core/sync_driver.hpp"

namespace dplb::host {
namespace {

using namespace dplb::core;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

EngineConfig config(bool connection_log, uint32_t sessions = 64) {
    EngineConfig c = testing_frames::two_port_config(1, sessions);
    c.services[0].connection_log = connection_log;
    return c;
}

// A TCP frame from client 198.51.100.7:`port` to the VIP (the engine checks no checksum).
std::vector<uint8_t> client_frame(uint16_t port, uint8_t flags) {
    std::vector<uint8_t> f(testing_frames::kClientFrameBytes);
    testing_frames::write_client_frame(f.data(), port, flags);
    return f;
}

class LoggerTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("dplb-logger-test-" + std::to_string(getpid()) + "-" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    void make_engine(bool connection_log, uint32_t sessions = 64) {
        engine_ = std::make_unique<Engine>(config(connection_log, sessions));
        engine_->neighbours().set(0, ip("10.0.1.254"), {0x0a, 0, 0, 0, 1, 0xfe});
        engine_->neighbours().set(1, ip("10.0.2.11"), {0x0a, 0, 0, 0, 2, 0x11});
        driver_ = std::make_unique<SyncDriver>(*engine_);
    }

    LoggerOptions options() {
        LoggerOptions o;
        o.path = (dir_ / "dplb.jsonl").string();
        o.monotonic_clock = false;
        o.node = "lb1";
        o.cluster = "test";
        return o;
    }

    Verdict send_syn(uint16_t port) {
        auto f = client_frame(port, 0x02);
        return driver_->receive(f.data(), static_cast<uint32_t>(f.size()), 0, std::nullopt).verdict;
    }

    std::vector<std::string> lines(const fs::path& p) const {
        std::ifstream in(p);
        std::vector<std::string> out;
        for (std::string line; std::getline(in, line);) out.push_back(line);
        return out;
    }
    std::vector<std::string> lines() const { return lines(dir_ / "dplb.jsonl"); }

    static size_t count_with(const std::vector<std::string>& ls, const std::string& needle) {
        size_t n = 0;
        for (const auto& l : ls) n += l.find(needle) != std::string::npos;
        return n;
    }

    fs::path dir_;
    std::unique_ptr<Engine> engine_;
    std::unique_ptr<SyncDriver> driver_;
};

TEST_F(LoggerTest, SessionOpenAndCloseBecomeJsonLines) {
    make_engine(true);
    Logger logger(*engine_, options());
    logger.start();
    driver_->set_clock(1'000'000'000);
    ASSERT_EQ(send_syn(40000), Verdict::transmit);
    driver_->set_clock(3'500'000'000);
    FlowKey key;
    key.src = ip("198.51.100.7");
    key.dst = ip("10.0.100.10");
    key.src_port = 40000;
    key.dst_port = 80;
    key.proto = 6;
    ASSERT_TRUE(engine_->reset_session(key));
    driver_->set_clock(3'500'000'000);
    ASSERT_TRUE(logger.flush(5s));

    auto ls = lines();
    ASSERT_EQ(ls.size(), 2u) << (ls.empty() ? "" : ls[0]);
    EXPECT_NE(ls[0].find(R"("node":"lb1","cluster":"test","event":"session_open")"), std::string::npos) << ls[0];
    EXPECT_NE(ls[0].find(R"("client":"198.51.100.7","client_port":40000,"vip":"10.0.100.10","vip_port":80)"),
              std::string::npos)
        << ls[0];
    EXPECT_NE(ls[0].find(R"("local":"10.0.2.101")"), std::string::npos) << ls[0];
    EXPECT_NE(ls[0].find(R"("real":"10.0.2.11","real_port":8080)"), std::string::npos) << ls[0];
    EXPECT_NE(ls[0].find(R"("engine_time":1.000)"), std::string::npos) << ls[0];
    EXPECT_EQ(ls[0].rfind("{\"time\":\"", 0), 0u) << ls[0];
    EXPECT_EQ(ls[0].back(), '}');
    EXPECT_NE(ls[1].find(R"("event":"session_close")"), std::string::npos) << ls[1];
    EXPECT_NE(ls[1].find(R"("bytes_in":54,"bytes_out":0,"duration_s":2.500,"state":"syn_sent","reason":"reset")"),
              std::string::npos)
        << ls[1];
}

TEST_F(LoggerTest, ServicesWithoutTheFlagLogNoSessions) {
    make_engine(false);
    Logger logger(*engine_, options());
    logger.start();
    ASSERT_EQ(send_syn(40000), Verdict::transmit);
    ASSERT_TRUE(logger.flush(5s));
    EXPECT_EQ(count_with(lines(), "session_"), 0u);
    EXPECT_EQ(engine_->worker(0).stats().log_dropped, 0u);
}

TEST_F(LoggerTest, AHeldLoggerNeverHoldsTheWorkerItsRingDropsAndCounts) {
    const uint32_t extra = 1000;
    make_engine(true, kLogRingSlots + extra + 16);
    Logger logger(*engine_, options());
    logger.start();
    logger.pause();
    EXPECT_TRUE(logger.stats().paused);
    for (uint32_t i = 0; i < kLogRingSlots + extra; ++i) {
        ASSERT_EQ(send_syn(static_cast<uint16_t>(1024 + i)), Verdict::transmit) << "packet " << i;
    }
    EXPECT_EQ(engine_->worker(0).stats().sessions_created, kLogRingSlots + extra);
    EXPECT_EQ(engine_->worker(0).stats().log_dropped, extra);
    EXPECT_EQ(logger.stats().worker_dropped, extra);
    EXPECT_FALSE(logger.flush(50ms)) << "a held logger writes nothing";
    EXPECT_EQ(count_with(lines(), "session_open"), 0u);

    logger.resume();
    ASSERT_TRUE(logger.flush(5s));
    auto ls = lines();
    EXPECT_EQ(count_with(ls, "session_open"), kLogRingSlots);
    // After resuming, new sessions are logged again.
    ASSERT_EQ(send_syn(60000), Verdict::transmit);
    ASSERT_TRUE(logger.flush(5s));
    ls = lines();
    EXPECT_EQ(count_with(ls, "session_open"), kLogRingSlots + 1);
    EXPECT_EQ(count_with(ls, R"("client_port":60000)"), 1u);
    EXPECT_EQ(engine_->worker(0).stats().log_dropped, extra);
    logger.stop();
    // The loss itself is reported in the log.
    EXPECT_EQ(count_with(lines(), R"("event":"log_dropped","count":1000,"total":1000)"), 1u);
}

TEST_F(LoggerTest, EventsJoinTheirFieldsAndBadFieldsAreRefused) {
    make_engine(false);
    Logger logger(*engine_, options());
    logger.start();
    EXPECT_TRUE(logger.event("config_applied", R"({"version": 3, "changes": 2})"));
    EXPECT_TRUE(logger.event("start"));
    EXPECT_FALSE(logger.event("bad", "[1, 2]"));
    ASSERT_TRUE(logger.flush(5s));
    auto ls = lines();
    ASSERT_EQ(ls.size(), 2u);
    EXPECT_NE(ls[0].find(R"("event":"config_applied","version": 3, "changes": 2})"), std::string::npos) << ls[0];
    EXPECT_NE(ls[1].find(R"("event":"start"})"), std::string::npos) << ls[1];
}

TEST_F(LoggerTest, DropsThatGrewAreReportedOncePerInterval) {
    make_engine(false);
    LoggerOptions o = options();
    o.drop_report_ms = 20;
    Logger logger(*engine_, o);
    logger.start();
    for (uint16_t port = 1; port <= 3; ++port) {
        auto f = client_frame(port, 0x10);  // an ACK with no session
        driver_->receive(f.data(), static_cast<uint32_t>(f.size()), 0, std::nullopt);
    }
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (count_with(lines(), R"("event":"drops")") == 0 && std::chrono::steady_clock::now() < deadline) {
        logger.flush(1s);
    }
    auto ls = lines();
    EXPECT_EQ(count_with(ls, R"("event":"drops","reason":"no_session","count":3,"total":3)"), 1u)
        << (ls.empty() ? "no lines" : ls.back());
}

TEST_F(LoggerTest, RotatesBySizeAndKeepsNFiles) {
    make_engine(false);
    LoggerOptions o = options();
    o.max_bytes = 1000;
    o.keep = 2;
    Logger logger(*engine_, o);
    logger.start();
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(logger.event("tick", "{\"i\":" + std::to_string(i) + "}"));
    ASSERT_TRUE(logger.flush(5s));
    logger.stop();
    EXPECT_GT(logger.stats().rotations, 2u);
    const fs::path base = dir_ / "dplb.jsonl";
    EXPECT_TRUE(fs::exists(base));
    EXPECT_TRUE(fs::exists(dir_ / "dplb.jsonl.1"));
    EXPECT_TRUE(fs::exists(dir_ / "dplb.jsonl.2"));
    EXPECT_FALSE(fs::exists(dir_ / "dplb.jsonl.3"));
    for (const char* name : {"dplb.jsonl", "dplb.jsonl.1", "dplb.jsonl.2"}) {
        EXPECT_LE(fs::file_size(dir_ / name), 1000u) << name;
    }
    // The newest lines are in the file, the ones before in .1, in order.
    auto last = lines(base);
    ASSERT_FALSE(last.empty());
    EXPECT_NE(last.back().find(R"("i":99)"), std::string::npos);
    auto previous = lines(dir_ / "dplb.jsonl.1");
    ASSERT_FALSE(previous.empty());
    EXPECT_NE(previous.back().find("\"i\":" + std::to_string(99 - static_cast<int>(last.size()))), std::string::npos)
        << previous.back();
}

TEST_F(LoggerTest, AFileThatCannotBeOpenedIsAnError) {
    make_engine(false);
    LoggerOptions o = options();
    o.path = (dir_ / "no-such-dir" / "dplb.jsonl").string();
    EXPECT_THROW(Logger(*engine_, o), std::runtime_error);
}

}  // namespace
}  // namespace dplb::host
