// Session-sync authentication (issue 13): AES-256-GCM over the wire format of
// core/sync_codec.hpp with OpenSSL's libcrypto, the cluster keys (two at once during a
// rotation), the per-sender replay window, and the names of the reasons a message is dropped.
//
// Why AES-256-GCM: every x86 server dplb runs on has AES-NI and PCLMULQDQ, where OpenSSL's
// GCM runs at several GB/s per core (ChaCha20-Poly1305 is the better pick only without
// them); it is the AEAD every operator's compliance list already names.
//
// Nonces never repeat for one key: each (sender node, epoch) seals with its own key,
// HMAC-SHA256(cluster key, "dplb-sync-v1" || node_id || epoch), and the 96-bit nonce is
// channel (4 bytes: 0 UDP, 1 full-sync TCP) || sequence (8 bytes), the sequence growing by
// one per message on each channel. The header (48 bytes) is the associated data; the body
// is encrypted; the 16-byte tag follows it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "core/sync_codec.hpp"

struct evp_cipher_ctx_st;

namespace dplb::host {

// Why a received message was dropped; each one has its own counter.
enum class SyncDrop : uint8_t {
    malformed,     // truncated, bad magic, type, count or field
    bad_version,   // a wire format this node does not speak
    unknown_key,   // sealed with a key id this node does not hold
    auth_failed,   // the tag does not match: forged or corrupted
    replayed,      // a sequence number already seen, or behind the window
    stale_epoch,   // an epoch older than the newest seen from that node (a previous run)
    unknown_peer,  // a node id not in the peers list
    count_
};
inline constexpr size_t kSyncDropCount = static_cast<size_t>(SyncDrop::count_);
inline constexpr std::string_view kSyncDropNames[kSyncDropCount] = {
    "malformed", "bad_version", "unknown_key", "auth_failed", "replayed", "stale_epoch", "unknown_peer"};

inline constexpr size_t kSyncKeyBytes = 32;
using SyncKeyBytes = std::array<uint8_t, kSyncKeyBytes>;
struct SyncKey {
    uint8_t id = 0;  // 1..255, carried in every header
    SyncKeyBytes bytes{};
};

// The keys in force: at most two (the old and the new during a rotation), one of them
// used to send. Any thread; readers take a snapshot.
class SyncKeyring {
public:
    struct Keys {
        std::vector<SyncKey> keys;
        uint8_t send_id = 0;
        uint64_t generation = 0;
        const SyncKey* find(uint8_t id) const {
            for (const SyncKey& k : keys) {
                if (k.id == id) return &k;
            }
            return nullptr;
        }
    };

    // Throws std::invalid_argument: no key or more than two, an id 0 or twice, send_id
    // not among them.
    void set(const std::vector<SyncKey>& keys, uint8_t send_id);
    std::shared_ptr<const Keys> current() const;

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const Keys> keys_ = std::make_shared<Keys>();
};

enum class SyncChannel : uint32_t { udp = 0, stream = 1 };
enum class SyncOpen : uint8_t { ok, unknown_key, auth_failed };

// Seals and opens messages: one per thread (it holds an OpenSSL context and a small cache
// of per-sender keys).
class SyncCipher {
public:
    explicit SyncCipher(const SyncKeyring& keyring);
    ~SyncCipher();
    SyncCipher(const SyncCipher&) = delete;
    SyncCipher& operator=(const SyncCipher&) = delete;

    // `buf` holds the body (body_len bytes) at buf + kSyncHeaderBytes and room for the tag
    // after it. Sets h.key_id to the send key, writes the header, encrypts the body in
    // place and appends the tag. Returns the message length (0: no key to send with).
    size_t seal(core::SyncHeader& h, SyncChannel channel, uint8_t* buf, size_t body_len);
    // `msg` (len bytes) is a whole message whose header decoded into `h`: checks the tag
    // and decrypts the body in place (it is then len - header - tag bytes at
    // msg + kSyncHeaderBytes).
    SyncOpen open(const core::SyncHeader& h, SyncChannel channel, uint8_t* msg, size_t len);

private:
    struct Derived {
        uint64_t generation = 0;
        uint64_t epoch = 0;
        uint32_t node = 0;
        uint8_t key_id = 0;
        uint64_t used = 0;
        std::array<uint8_t, kSyncKeyBytes> key{};
    };
    const uint8_t* derived_key(const SyncKeyring::Keys& keys, const SyncKey& k, uint32_t node, uint64_t epoch);

    const SyncKeyring& keyring_;
    evp_cipher_ctx_st* ctx_ = nullptr;
    std::array<Derived, 8> cache_{};
    uint64_t uses_ = 0;
};

// Replay window of one sender node: the newest epoch seen and, in it, a sliding bitmap of
// the last kBits sequence numbers. A newer epoch starts it again (the sender restarted);
// an older one is refused.
enum class SyncReplay : uint8_t { fresh, replayed, stale_epoch };
class ReplayWindow {
public:
    static constexpr uint64_t kBits = 1024;

    // What `accept` would say, without recording anything (checked before the tag, so a
    // replay costs no decryption; recorded only once the tag is good).
    SyncReplay check(uint64_t epoch, uint64_t sequence) const;
    // Records an authenticated message `check` called fresh. Returns the messages it
    // skipped (a gap: lost, or still on the way and later filled in).
    uint64_t accept(uint64_t epoch, uint64_t sequence);
    uint64_t epoch() const { return epoch_; }
    uint64_t highest() const { return highest_; }

private:
    bool seen(uint64_t sequence) const { return (bits_[(sequence / 64) % kWords] >> (sequence % 64)) & 1; }
    static constexpr uint64_t kWords = kBits / 64;
    uint64_t epoch_ = 0;
    uint64_t highest_ = 0;  // the highest sequence accepted in epoch_
    bool any_ = false;
    std::array<uint64_t, kWords> bits_{};
};

}  // namespace dplb::host
