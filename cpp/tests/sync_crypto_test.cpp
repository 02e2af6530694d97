// Session-sync authentication: sealed messages open with the same key and fail on any
// changed byte (header or body) or another key; keys are found by id (two during a
// rotation); nonces differ per sender and epoch; the replay window refuses what it saw.
#include "host/sync_crypto.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <vector>

namespace dplb::host {
namespace {

using namespace dplb::core;

SyncKey key(uint8_t id, uint8_t fill) {
    SyncKey k;
    k.id = id;
    k.bytes.fill(fill);
    return k;
}

SyncHeader header(uint64_t seq) {
    SyncHeader h;
    h.type = SyncMessage::records;
    h.count = 1;
    h.node_id = 7;
    h.epoch = 1234;
    h.sequence = seq;
    h.send_time_ns = 99;
    return h;
}

// A sealed message with a body of `body` bytes.
std::vector<uint8_t> sealed(SyncCipher& c, SyncHeader h, const std::vector<uint8_t>& body,
                            SyncChannel ch = SyncChannel::udp) {
    std::vector<uint8_t> buf(kSyncHeaderBytes + body.size() + kSyncTagBytes);
    std::memcpy(buf.data() + kSyncHeaderBytes, body.data(), body.size());
    const size_t n = c.seal(h, ch, buf.data(), body.size());
    EXPECT_EQ(n, buf.size());
    return buf;
}

SyncOpen open(SyncCipher& c, std::vector<uint8_t> msg, SyncChannel ch = SyncChannel::udp,
              std::vector<uint8_t>* body = nullptr) {
    SyncHeader h;
    if (decode_sync_header(msg.data(), msg.size(), h) != SyncDecodeError::ok) return SyncOpen::auth_failed;
    const SyncOpen r = c.open(h, ch, msg.data(), msg.size());
    if (body) body->assign(msg.begin() + kSyncHeaderBytes, msg.end() - kSyncTagBytes);
    return r;
}

TEST(SyncCrypto, SealedBodyIsEncryptedAndOpensWithTheSameKey) {
    SyncKeyring ring;
    ring.set({key(1, 0xaa)}, 1);
    SyncCipher a(ring), b(ring);
    const std::vector<uint8_t> body(100, 0x5c);
    auto msg = sealed(a, header(1), body);
    EXPECT_EQ(msg[6], 1);  // the key id in the header
    EXPECT_NE(std::vector<uint8_t>(msg.begin() + kSyncHeaderBytes, msg.end() - kSyncTagBytes), body);
    std::vector<uint8_t> out;
    EXPECT_EQ(open(b, msg, SyncChannel::udp, &out), SyncOpen::ok);
    EXPECT_EQ(out, body);
}

TEST(SyncCrypto, AnyChangedByteFailsAuthentication) {
    SyncKeyring ring;
    ring.set({key(1, 0xaa)}, 1);
    SyncCipher c(ring);
    const auto msg = sealed(c, header(1), std::vector<uint8_t>(60, 1));
    for (size_t i = 0; i < msg.size(); ++i) {
        if (i == 6) continue;  // the key id: unknown_key, below
        auto bad = msg;
        bad[i] ^= 0x01;
        SyncHeader h;
        if (decode_sync_header(bad.data(), bad.size(), h) != SyncDecodeError::ok) continue;  // refused earlier
        EXPECT_EQ(c.open(h, SyncChannel::udp, bad.data(), bad.size()), SyncOpen::auth_failed) << "byte " << i;
    }
    auto other_key = msg;
    other_key[6] = 2;
    EXPECT_EQ(open(c, other_key), SyncOpen::unknown_key);
    // Sealed for UDP, presented as a stream message: another nonce.
    EXPECT_EQ(open(c, msg, SyncChannel::stream), SyncOpen::auth_failed);
}

TEST(SyncCrypto, AnotherClusterKeyWithTheSameIdFails) {
    SyncKeyring ours, theirs;
    ours.set({key(1, 0xaa)}, 1);
    theirs.set({key(1, 0xbb)}, 1);
    SyncCipher a(theirs), b(ours);
    EXPECT_EQ(open(b, sealed(a, header(1), std::vector<uint8_t>(10, 3))), SyncOpen::auth_failed);
}

TEST(SyncCrypto, SendersAndEpochsGetTheirOwnKeys) {
    // The same sequence number from two nodes, or two epochs of one node, must not give the
    // same ciphertext (that would be a repeated nonce under one key).
    SyncKeyring ring;
    ring.set({key(1, 0xaa)}, 1);
    SyncCipher c(ring);
    const std::vector<uint8_t> body(32, 0);
    SyncHeader h1 = header(5), h2 = header(5), h3 = header(5);
    h2.node_id = 8;
    h3.epoch = 1235;
    const auto m1 = sealed(c, h1, body), m2 = sealed(c, h2, body), m3 = sealed(c, h3, body);
    auto body_of = [](const std::vector<uint8_t>& m) {
        return std::vector<uint8_t>(m.begin() + kSyncHeaderBytes, m.begin() + kSyncHeaderBytes + 32);
    };
    EXPECT_NE(body_of(m1), body_of(m2));
    EXPECT_NE(body_of(m1), body_of(m3));
    EXPECT_NE(body_of(m2), body_of(m3));
}

TEST(SyncCrypto, RotationAcceptsTwoKeysThenOnlyTheNewOne) {
    SyncKeyring sender, receiver;
    sender.set({key(1, 0x11)}, 1);
    receiver.set({key(1, 0x11)}, 1);
    SyncCipher s(sender), r(receiver);
    const std::vector<uint8_t> body(20, 9);
    const auto old_msg = sealed(s, header(1), body);
    // The receiver learns the new key first, the sender switches, then the old one goes.
    receiver.set({key(1, 0x11), key(2, 0x22)}, 1);
    EXPECT_EQ(open(r, old_msg), SyncOpen::ok);
    sender.set({key(1, 0x11), key(2, 0x22)}, 2);
    const auto new_msg = sealed(s, header(2), body);
    EXPECT_EQ(new_msg[6], 2);
    EXPECT_EQ(open(r, new_msg), SyncOpen::ok);
    EXPECT_EQ(open(r, old_msg), SyncOpen::ok);
    receiver.set({key(2, 0x22)}, 2);
    EXPECT_EQ(open(r, new_msg), SyncOpen::ok);
    EXPECT_EQ(open(r, old_msg), SyncOpen::unknown_key);
    // The same id with new bytes: the cache of derived keys follows.
    receiver.set({key(2, 0x33)}, 2);
    EXPECT_EQ(open(r, new_msg), SyncOpen::auth_failed);
}

TEST(SyncCrypto, KeyListsAreChecked) {
    SyncKeyring ring;
    EXPECT_THROW(ring.set({}, 1), std::invalid_argument);
    EXPECT_THROW(ring.set({key(1, 1), key(2, 2), key(3, 3)}, 1), std::invalid_argument);
    EXPECT_THROW(ring.set({key(0, 1)}, 0), std::invalid_argument);
    EXPECT_THROW(ring.set({key(1, 1), key(1, 2)}, 1), std::invalid_argument);
    EXPECT_THROW(ring.set({key(1, 1)}, 2), std::invalid_argument);
    // Without keys nothing is sealed.
    SyncCipher c(ring);
    SyncHeader h = header(1);
    uint8_t buf[kSyncHeaderBytes + kSyncTagBytes];
    EXPECT_EQ(c.seal(h, SyncChannel::udp, buf, 0), 0u);
}

TEST(ReplayWindow, RefusesWhatItSawAndWhatIsTooOld) {
    ReplayWindow w;
    EXPECT_EQ(w.check(10, 1), SyncReplay::fresh);
    EXPECT_EQ(w.accept(10, 1), 0u);
    EXPECT_EQ(w.check(10, 1), SyncReplay::replayed);
    EXPECT_EQ(w.accept(10, 5), 3u);  // 2, 3, 4 skipped
    EXPECT_EQ(w.check(10, 3), SyncReplay::fresh);  // late, inside the window
    w.accept(10, 3);
    EXPECT_EQ(w.check(10, 3), SyncReplay::replayed);
    EXPECT_EQ(w.check(10, 5), SyncReplay::replayed);
    EXPECT_EQ(w.accept(10, 5 + ReplayWindow::kBits), ReplayWindow::kBits - 1);
    EXPECT_EQ(w.check(10, 5), SyncReplay::replayed);  // fell behind the window
    EXPECT_EQ(w.check(10, 6), SyncReplay::fresh);     // the oldest inside, never seen
}

TEST(ReplayWindow, SlidingClearsTheBitsItPasses) {
    ReplayWindow w;
    for (uint64_t s = 1; s <= 3000; ++s) {
        ASSERT_EQ(w.check(1, s), SyncReplay::fresh) << s;
        w.accept(1, s);
    }
    for (uint64_t s = 3000 - ReplayWindow::kBits + 1; s <= 3000; ++s) ASSERT_EQ(w.check(1, s), SyncReplay::replayed);
    w.accept(1, 3100);  // skips 3001..3099, whose bits held 3001-1024.. from before
    for (uint64_t s = 3001; s < 3100; ++s) ASSERT_EQ(w.check(1, s), SyncReplay::fresh) << s;
}

TEST(ReplayWindow, ANewerEpochStartsAgainAndAnOlderOneIsStale) {
    ReplayWindow w;
    w.accept(10, 500);
    EXPECT_EQ(w.check(11, 1), SyncReplay::fresh);  // the sender restarted
    EXPECT_EQ(w.accept(11, 1), 0u);
    EXPECT_EQ(w.epoch(), 11u);
    EXPECT_EQ(w.check(10, 501), SyncReplay::stale_epoch);
    EXPECT_EQ(w.check(11, 1), SyncReplay::replayed);
    EXPECT_EQ(w.check(11, 2), SyncReplay::fresh);
}

}  // namespace
}  // namespace dplb::host
