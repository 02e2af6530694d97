// The Toeplitz (RSS) hash that decides which worker owns an inbound flow. It must give
// the same value as a NIC programmed with the same key, and as DPDK's rte_softrss, so
// that hardware RSS and software steering agree (DESIGN section 4).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/flow_key.hpp"

namespace dplb::core {

inline constexpr size_t kRssKeySize = 40;
inline constexpr uint32_t kRetaSize = 128;  // redirection table entries, as on most NICs

// The key dplb programs into NICs and uses in software (the common Microsoft key).
extern const uint8_t kRssKey[kRssKeySize];

// Bit-by-bit reference implementation over `len` bytes of input in network order.
uint32_t toeplitz_hash_reference(const uint8_t* key, const uint8_t* input, size_t len);

// Table-driven Toeplitz hash with kRssKey; equal to the reference, several times faster.
// Input layout as rte_softrss/NICs use for TCP/UDP: src addr, dst addr, src port, dst
// port, all network order (12 bytes for IPv4, 36 for IPv6).
uint32_t rss_hash(const FlowKey& key);

// Worker that a NIC with a redirection table filled round-robin (entry i -> i % workers)
// delivers the hash to.
inline uint32_t rss_owner(uint32_t hash, uint32_t workers) {
    return (hash & (kRetaSize - 1)) % workers;
}

}  // namespace dplb::core
