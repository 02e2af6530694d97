// Internet checksum (RFC 1071): full sums for the slow path and RFC 1624 incremental
// updates for the rewrite path. All words are raw 16-bit values as they sit in the
// packet (network order); ones'-complement arithmetic does not care about byte order
// as long as every operand uses the same one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ip_address.hpp"

namespace dplb::core {

// Ones'-complement sum of `len` bytes added to `sum`, not folded, not complemented.
// An odd trailing byte is padded with zero as the RFC says.
uint32_t checksum_add(const void* data, size_t len, uint32_t sum = 0);

// Folds a 32-bit sum to 16 bits and complements it: the value to store in a header.
uint16_t checksum_finish(uint32_t sum);

// IPv4 header checksum of `len` bytes (the checksum field must be zero or is skipped
// by the caller); returns the value to store.
uint16_t ipv4_header_checksum(const void* header, size_t len);

// TCP/UDP/ICMPv6 checksum over a pseudo-header and `len` bytes of L4 data (whose
// checksum field must be zero). Family is taken from `src` (is_v4()). Returns the raw
// computed value, which can be 0: for UDP the caller stores 0xffff instead, since 0
// means "no checksum" over IPv4 and is invalid over IPv6 (RFC 768, RFC 8200 8.1).
// The incremental functions below accept that 0xffff as the stored check.
uint16_t l4_checksum(const IpAddress& src, const IpAddress& dst, uint8_t proto,
                     const void* l4, size_t len);

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). `check` is the stored checksum; words are
// raw values loaded from the packet (memcpy), not converted to host order. Given a check
// made by the functions above, the result equals a full recomputation bit for bit
// (including the UDP rule: a result of 0 must again be stored as 0xffff).
uint16_t checksum_replace16(uint16_t check, uint16_t old_word, uint16_t new_word);
uint16_t checksum_replace32(uint16_t check, uint32_t old_word, uint32_t new_word);
// Replaces `len` bytes (even) from `old_bytes` by `new_bytes`.
uint16_t checksum_replace_bytes(uint16_t check, const void* old_bytes, const void* new_bytes,
                                size_t len);

// Fast incremental updates for the rewrite path: accumulate (new - old) over 32-bit words
// in ones'-complement arithmetic, then apply the sum to as many checksums as need it.
inline uint32_t checksum_load32(const void* p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
// Adds the change of one 32-bit word from `old_word` to `new_word` (raw memory order).
inline uint64_t checksum_delta32(uint32_t old_word, uint32_t new_word) {
    return uint64_t(0xffffffffu - old_word) + new_word;
}
inline uint64_t checksum_delta16(uint16_t old_word, uint16_t new_word) {
    return uint64_t(0xffffu - old_word) + new_word;
}
// RFC 1624 eqn. 3 with the summed delta: HC' = ~(~HC + delta).
inline uint16_t checksum_apply(uint16_t check, uint64_t delta) {
    uint64_t s = uint64_t(static_cast<uint16_t>(~check)) + delta;
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffu) + (s >> 16);
    s = (s & 0xffffu) + (s >> 16);
    s = (s & 0xffffu) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

}  // namespace dplb::core
