// FlowKey: the 5-tuple that names one direction of a flow, and its table hash.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/ip_address.hpp"

namespace dplb::core {

enum class L4Proto : uint8_t { tcp = 6, udp = 17, icmp = 1, icmpv6 = 58 };

// 40 bytes, padding zeroed, so equality is one memcmp and hashing reads five words.
struct alignas(8) FlowKey {
    IpAddress src;
    IpAddress dst;
    uint16_t src_port = 0;  // host byte order
    uint16_t dst_port = 0;
    uint8_t proto = 0;
    uint8_t pad[3] = {0, 0, 0};

    bool operator==(const FlowKey& o) const {
        uint64_t a[5], b[5];
        std::memcpy(a, this, sizeof a);
        std::memcpy(b, &o, sizeof b);
        return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0;
    }

    FlowKey reversed() const {
        FlowKey k;
        k.src = dst;
        k.dst = src;
        k.src_port = dst_port;
        k.dst_port = src_port;
        k.proto = proto;
        return k;
    }
};
static_assert(sizeof(FlowKey) == 40);

// Fast, well-mixed 64-bit hash of a key for the session table (not the RSS hash).
inline uint64_t hash_key(const FlowKey& k) {
    uint64_t w[5];
    std::memcpy(w, &k, sizeof w);
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (uint64_t x : w) {
        h ^= x;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return h;
}

// Hash of a service key (VIP, port, protocol) without building a FlowKey.
inline uint64_t hash_service(const IpAddress& vip, uint16_t port, uint8_t proto) {
    uint64_t w[2];
    std::memcpy(w, vip.bytes.data(), 16);
    uint64_t h = (w[0] ^ 0x9e3779b97f4a7c15ULL) * 0xff51afd7ed558ccdULL;
    h = (h ^ (h >> 32) ^ w[1]) * 0xc4ceb9fe1a85ec53ULL;
    h = (h ^ (h >> 29) ^ (uint64_t(port) << 8 | proto)) * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

}  // namespace dplb::core
