// The Toeplitz (RSS) hash that decides which worker owns an inbound flow. It must give
// the same value as a NIC programmed with the same key, and as DPDK's rte_softrss, so
// that hardware RSS and software steering agree (DESIGN section 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

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

// The redirection table a NIC with `reta_size` entries needs so that it delivers every
// hash where rss_owner does: entry i -> rss_owner(i, workers). A NIC indexes its table
// with the low bits of the hash, so this is exact when reta_size is a power of two of
// at least kRetaSize entries, or a smaller power of two that `workers` divides.
std::vector<uint16_t> rss_reta(uint32_t reta_size, uint32_t workers);

// Whether rss_reta(reta_size, workers) sends every hash to rss_owner(hash, workers);
// when not, part of the traffic lands on a worker that hands it over in software.
bool rss_reta_exact(uint32_t reta_size, uint32_t workers);

}  // namespace dplb::core
