// Tests for core/tcp_track: which RSTs and FINs count, which pass quietly, which drop,
// with window scaling, numbers that wrap, and forged segments that must not move the window.
#include "core/tcp_track.hpp"

#include <gtest/gtest.h>

namespace dplb::core {
namespace {

constexpr uint32_t kClient = 0;
constexpr uint32_t kReal = 1;

TcpSegment segment(uint8_t flags, uint32_t seq, uint32_t ack = 0, uint32_t len = 0, uint16_t window = 1000,
                   int8_t wscale = -1) {
    TcpSegment s;
    s.flags = flags;
    s.seq = seq;
    s.ack = ack;
    s.len = len;
    s.window = window;
    s.wscale = wscale;
    return s;
}

// Client ISN `c`, real ISN `r`, windows of 1000, the handshake done.
TcpTrack open(uint32_t c, uint32_t r, int8_t client_scale = -1, int8_t real_scale = -1) {
    TcpTrack t{};
    track_syn(t, segment(kTcpSyn, c, 0, 0, 1000, client_scale));
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpSyn | kTcpAck, r, c + 1, 0, 1000, real_scale)), TcpCheck::ok);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpAck, c + 1, r + 1)), TcpCheck::ok);
    return t;
}

TEST(TcpTrack, ResetAtTheSendersNextNumberCounts) {
    TcpTrack t = open(100, 900);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpAck, 101, 901, 50)), TcpCheck::ok);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 151)), TcpCheck::ok);
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpRst | kTcpAck, 901, 151)), TcpCheck::ok);
}

TEST(TcpTrack, ResetAtTheReceiversLastAckCounts) {
    TcpTrack t = open(100, 900);
    track_segment(t, kClient, segment(kTcpAck, 101, 901, 50));  // not acknowledged yet
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 101)), TcpCheck::ok);
}

TEST(TcpTrack, ResetInsideTheWindowIsQuietOutsideDropped) {
    TcpTrack t = open(100, 900);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 600)), TcpCheck::quiet);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 101 + 1000)), TcpCheck::quiet);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 101 + 1001)), TcpCheck::drop);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 100)), TcpCheck::drop);
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpRst, 900 + 0x80000000u)), TcpCheck::drop);
}

TEST(TcpTrack, BeforeTheSynAckOnlyAResetThatAcknowledgesTheSyn) {
    TcpTrack t{};
    track_syn(t, segment(kTcpSyn, 100, 0, 0));
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpRst | kTcpAck, 0, 102)), TcpCheck::drop);
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpRst, 0)), TcpCheck::drop);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 55)), TcpCheck::drop);
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpRst | kTcpAck, 0, 101)), TcpCheck::ok);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 101)), TcpCheck::ok);
}

TEST(TcpTrack, FastOpenDataThatPassedMayBeAcknowledgedBySynAck) {
    TcpTrack t{};
    track_syn(t, segment(kTcpSyn, 100, 0, 20));  // data in the SYN, passed on
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpSyn | kTcpAck, 900, 121)), TcpCheck::ok);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 121)), TcpCheck::ok);
}

TEST(TcpTrack, WindowScaleNeedsBothSyns) {
    TcpTrack both = open(100, 900, 4, 4);
    track_segment(both, kReal, segment(kTcpAck, 901, 101, 0, 1000));  // 16,000 bytes
    EXPECT_EQ(track_segment(both, kClient, segment(kTcpRst, 101 + 15'000)), TcpCheck::quiet);
    TcpTrack one = open(100, 900, 4, -1);
    track_segment(one, kReal, segment(kTcpAck, 901, 101, 0, 1000));
    EXPECT_EQ(track_segment(one, kClient, segment(kTcpRst, 101 + 15'000)), TcpCheck::drop);
}

TEST(TcpTrack, ForgedSegmentsDoNotMoveTheWindow) {
    TcpTrack t = open(100, 900);
    // Data far beyond the real's window, and an ACK of what the real never sent.
    track_segment(t, kClient, segment(kTcpAck, 50'000, 901, 100));
    track_segment(t, kClient, segment(kTcpAck, 101, 90'000));
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 50'100)), TcpCheck::drop);
    EXPECT_EQ(track_segment(t, kReal, segment(kTcpRst, 90'000)), TcpCheck::drop);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 101)), TcpCheck::ok);
}

TEST(TcpTrack, FinCountsInsideTheWindow) {
    TcpTrack t = open(100, 900);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpFin | kTcpAck, 100 + 0x40000000u, 901)), TcpCheck::quiet);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpFin | kTcpAck, 101, 901, 10)), TcpCheck::ok);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpFin | kTcpAck, 101, 901, 10)), TcpCheck::ok);  // again
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 112)), TcpCheck::ok);
}

TEST(TcpTrack, NumbersWrap) {
    TcpTrack t = open(0xfffffff0u, 0xffffff00u);
    track_segment(t, kClient, segment(kTcpAck, 0xfffffff1u, 0xffffff01u, 0x40));  // ends at 0x31
    track_segment(t, kReal, segment(kTcpAck, 0xffffff01u, 0x31));
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 0xfffffff1u)), TcpCheck::drop);  // acknowledged
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 0x31 + 500)), TcpCheck::quiet);
    EXPECT_EQ(track_segment(t, kClient, segment(kTcpRst, 0x31)), TcpCheck::ok);
}

}  // namespace
}  // namespace dplb::core
