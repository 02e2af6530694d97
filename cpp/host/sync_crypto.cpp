// Session-sync authentication: AES-256-GCM through OpenSSL's EVP interface, per-sender keys
// derived with HMAC-SHA256 (cached), and the sliding replay window.
#include "host/sync_crypto.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dplb::host {

using core::kSyncHeaderBytes;
using core::kSyncTagBytes;

void SyncKeyring::set(const std::vector<SyncKey>& keys, uint8_t send_id) {
    if (keys.empty() || keys.size() > 2) {
        throw std::invalid_argument("sync keys: give one or two keys (the old and the new during a rotation), not " +
                                    std::to_string(keys.size()));
    }
    for (size_t i = 0; i < keys.size(); ++i) {
        if (keys[i].id == 0) throw std::invalid_argument("sync keys: key id 0 is not a key id (1..255)");
        for (size_t j = 0; j < i; ++j) {
            if (keys[j].id == keys[i].id) {
                throw std::invalid_argument("sync keys: key id " + std::to_string(keys[i].id) + " given twice");
            }
        }
    }
    auto next = std::make_shared<Keys>();
    next->keys = keys;
    next->send_id = send_id;
    if (!next->find(send_id)) {
        throw std::invalid_argument("sync keys: send key " + std::to_string(send_id) + " is not among the keys");
    }
    std::lock_guard lock(mutex_);
    next->generation = keys_->generation + 1;
    keys_ = std::move(next);
}

std::shared_ptr<const SyncKeyring::Keys> SyncKeyring::current() const {
    std::lock_guard lock(mutex_);
    return keys_;
}

SyncCipher::SyncCipher(const SyncKeyring& keyring) : keyring_(keyring), ctx_(EVP_CIPHER_CTX_new()) {
    if (!ctx_) throw std::runtime_error("sync: OpenSSL cannot allocate a cipher context");
}

SyncCipher::~SyncCipher() { EVP_CIPHER_CTX_free(ctx_); }

const uint8_t* SyncCipher::derived_key(const SyncKeyring::Keys& keys, const SyncKey& k, uint32_t node,
                                       uint64_t epoch) {
    ++uses_;
    Derived* oldest = &cache_[0];
    for (Derived& d : cache_) {
        if (d.used != 0 && d.generation == keys.generation && d.key_id == k.id && d.node == node && d.epoch == epoch) {
            d.used = uses_;
            return d.key.data();
        }
        if (d.used < oldest->used) oldest = &d;
    }
    uint8_t info[12 + 4 + 8] = {'d', 'p', 'l', 'b', '-', 's', 'y', 'n', 'c', '-', 'v', '1'};
    for (int i = 0; i < 4; ++i) info[12 + i] = static_cast<uint8_t>(node >> (24 - 8 * i));
    for (int i = 0; i < 8; ++i) info[16 + i] = static_cast<uint8_t>(epoch >> (56 - 8 * i));
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), k.bytes.data(), static_cast<int>(k.bytes.size()), info, sizeof info, oldest->key.data(),
              &len) ||
        len != kSyncKeyBytes) {
        return nullptr;
    }
    oldest->generation = keys.generation;
    oldest->key_id = k.id;
    oldest->node = node;
    oldest->epoch = epoch;
    oldest->used = uses_;
    return oldest->key.data();
}

namespace {

void make_nonce(uint8_t* iv, SyncChannel channel, uint64_t sequence) {
    const auto c = static_cast<uint32_t>(channel);
    for (int i = 0; i < 4; ++i) iv[i] = static_cast<uint8_t>(c >> (24 - 8 * i));
    for (int i = 0; i < 8; ++i) iv[4 + i] = static_cast<uint8_t>(sequence >> (56 - 8 * i));
}

}  // namespace

size_t SyncCipher::seal(core::SyncHeader& h, SyncChannel channel, uint8_t* buf, size_t body_len) {
    const auto keys = keyring_.current();
    const SyncKey* k = keys->find(keys->send_id);
    if (!k) return 0;
    const uint8_t* key = derived_key(*keys, *k, h.node_id, h.epoch);
    if (!key) return 0;
    h.key_id = k->id;
    core::encode_sync_header(h, buf);
    uint8_t iv[12];
    make_nonce(iv, channel, h.sequence);
    int n = 0;
    uint8_t* body = buf + kSyncHeaderBytes;
    if (EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key, iv) != 1 ||
        EVP_EncryptUpdate(ctx_, nullptr, &n, buf, static_cast<int>(kSyncHeaderBytes)) != 1 ||
        (body_len > 0 && EVP_EncryptUpdate(ctx_, body, &n, body, static_cast<int>(body_len)) != 1) ||
        EVP_EncryptFinal_ex(ctx_, body + body_len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kSyncTagBytes), body + body_len) != 1) {
        return 0;
    }
    return kSyncHeaderBytes + body_len + kSyncTagBytes;
}

SyncOpen SyncCipher::open(const core::SyncHeader& h, SyncChannel channel, uint8_t* msg, size_t len) {
    if (len < kSyncHeaderBytes + kSyncTagBytes) return SyncOpen::auth_failed;
    const auto keys = keyring_.current();
    const SyncKey* k = keys->find(h.key_id);
    if (!k) return SyncOpen::unknown_key;
    const uint8_t* key = derived_key(*keys, *k, h.node_id, h.epoch);
    if (!key) return SyncOpen::auth_failed;
    uint8_t iv[12];
    make_nonce(iv, channel, h.sequence);
    const size_t body_len = len - kSyncHeaderBytes - kSyncTagBytes;
    uint8_t* body = msg + kSyncHeaderBytes;
    uint8_t tag[kSyncTagBytes];
    std::copy(body + body_len, body + body_len + kSyncTagBytes, tag);
    int n = 0;
    if (EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key, iv) != 1 ||
        EVP_DecryptUpdate(ctx_, nullptr, &n, msg, static_cast<int>(kSyncHeaderBytes)) != 1 ||
        (body_len > 0 && EVP_DecryptUpdate(ctx_, body, &n, body, static_cast<int>(body_len)) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kSyncTagBytes), tag) != 1 ||
        EVP_DecryptFinal_ex(ctx_, body + body_len, &n) != 1) {
        return SyncOpen::auth_failed;
    }
    return SyncOpen::ok;
}

SyncReplay ReplayWindow::check(uint64_t epoch, uint64_t sequence) const {
    if (!any_ || epoch > epoch_) return SyncReplay::fresh;
    if (epoch < epoch_) return SyncReplay::stale_epoch;
    if (sequence > highest_) return SyncReplay::fresh;
    if (highest_ - sequence >= kBits || seen(sequence)) return SyncReplay::replayed;
    return SyncReplay::fresh;
}

uint64_t ReplayWindow::accept(uint64_t epoch, uint64_t sequence) {
    uint64_t gap = 0;
    if (!any_ || epoch > epoch_) {
        bits_.fill(0);
        epoch_ = epoch;
        highest_ = sequence;
        any_ = true;
    } else if (sequence > highest_) {
        const uint64_t ahead = sequence - highest_;
        gap = ahead - 1;
        if (ahead >= kBits) {
            bits_.fill(0);
        } else {
            for (uint64_t s = highest_ + 1; s < sequence; ++s) bits_[(s / 64) % kWords] &= ~(uint64_t(1) << (s % 64));
        }
        highest_ = sequence;
    }
    bits_[(sequence / 64) % kWords] |= uint64_t(1) << (sequence % 64);
    return gap;
}

}  // namespace dplb::host
