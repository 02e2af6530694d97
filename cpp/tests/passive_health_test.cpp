// Passive health counters of a real (RealCounters): a client SYN the real never answers
// is counted when its session expires in syn_sent; a reset the real sends is counted
// once; a connection the real answered counts neither.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/engine.hpp"
#include "tests/client_frame.hpp"

namespace dplb::core {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

constexpr uint32_t kRoom = 128;
constexpr uint64_t kSecond = 1'000'000'000ULL;

class PassiveHealthTest : public ::testing::Test {
protected:
    PassiveHealthTest() : engine_(testing_frames::two_port_config(1, 64)) {
        engine_.neighbours().set(0, ip("10.0.1.254"), {0x0a, 0, 0, 0, 1, 0xfe});
        engine_.neighbours().set(1, ip("10.0.2.11"), {0x0a, 0, 0, 0, 2, 0x11});
    }

    Action run(std::vector<uint8_t>& buffer, uint32_t len, uint16_t in_port) {
        PacketView view{buffer.data() + kRoom, len, kRoom, kRoom, in_port};
        return engine_.worker(0).process(view, false);
    }

    // The client's SYN from `port`; returns the local port it got toward the real.
    uint16_t client_syn(uint16_t port) {
        std::vector<uint8_t> b(kRoom * 2 + testing_frames::kClientFrameBytes);
        testing_frames::write_client_frame(b.data() + kRoom, port, kTcpSyn);
        EXPECT_EQ(run(b, testing_frames::kClientFrameBytes, 0).verdict, Verdict::transmit);
        return load_be16(b.data() + kRoom + 14 + 20);
    }

    // A segment from the real 10.0.2.11:8080 to the local address 10.0.2.101:`lport`.
    Action from_real(uint16_t lport, uint8_t flags, uint32_t seq, uint32_t ack) {
        std::vector<uint8_t> b(kRoom * 2 + 54);
        testing_frames::write_real_frame(b.data() + kRoom, lport, flags, seq, ack);
        return run(b, 54, 1);
    }

    const RealCounters& counters() {
        SnapshotReader reader(engine_);
        const uint32_t slot = reader.current().services()[0].reals[0].slot;
        return engine_.worker(0).real_counters()[slot];
    }

    Engine engine_;
};

TEST_F(PassiveHealthTest, ASynTheRealNeverAnswersIsCountedWhenItsSessionExpires) {
    engine_.worker(0).set_clock(kSecond);
    client_syn(40000);
    EXPECT_EQ(counters().syn_unanswered.load(), 0u) << "not yet: the real may still answer";
    engine_.worker(0).set_clock(40 * kSecond);  // past tcp_syn (30 s)
    EXPECT_EQ(engine_.worker(0).sessions().size(), 0u);
    EXPECT_EQ(counters().syn_unanswered.load(), 1u);
    EXPECT_EQ(counters().resets_from_real.load(), 0u);
}

TEST_F(PassiveHealthTest, AResetFromTheRealIsCountedOnceAndIsNoUnansweredSyn) {
    engine_.worker(0).set_clock(kSecond);
    const uint16_t lport = client_syn(40001);
    // The client's SYN has seq 0: the real refuses it with RST+ACK 1.
    EXPECT_EQ(from_real(lport, kTcpRst | kTcpAck, 0, 1).verdict, Verdict::transmit);
    from_real(lport, kTcpRst | kTcpAck, 0, 1);  // a second one on a closed session
    EXPECT_EQ(counters().resets_from_real.load(), 1u);
    engine_.worker(0).set_clock(200 * kSecond);
    EXPECT_EQ(counters().syn_unanswered.load(), 0u);
}

TEST_F(PassiveHealthTest, AnAnsweredSynCountsNeither) {
    engine_.worker(0).set_clock(kSecond);
    const uint16_t lport = client_syn(40002);
    EXPECT_EQ(from_real(lport, kTcpSyn | kTcpAck, 5000, 1).verdict, Verdict::transmit);
    engine_.worker(0).set_clock(200 * kSecond);  // syn_recv times out too
    EXPECT_EQ(counters().syn_unanswered.load(), 0u);
    EXPECT_EQ(counters().resets_from_real.load(), 0u);
}

}  // namespace
}  // namespace dplb::core
