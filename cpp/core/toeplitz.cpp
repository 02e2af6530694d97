// Toeplitz hash: the bitwise reference and the table-driven version used per packet.
#include "core/toeplitz.hpp"

#include <array>

namespace dplb::core {

constexpr uint8_t kRssKey[kRssKeySize] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

namespace {

// Longest input: IPv6 src, dst and two ports. The key covers it with 4 bytes to spare,
// which the hash needs (each input bit uses the 32 key bits from its own position).
constexpr size_t kMaxInput = 36;
static_assert(kMaxInput + 4 <= kRssKeySize);

// The 32 key bits starting at bit `bit` (MSB of key[0] is bit 0).
constexpr uint32_t key_window(size_t bit) {
    const size_t byte = bit / 8;
    const unsigned shift = bit % 8;
    uint64_t w = 0;
    for (size_t i = 0; i < 5; ++i) {
        w = (w << 8) | (byte + i < kRssKeySize ? kRssKey[byte + i] : 0);
    }
    return static_cast<uint32_t>(w >> (8 - shift));
}

// The hash is linear (XOR) in the input bits, so the contribution of one input byte at
// one position can be precomputed for all 256 values: 36 x 256 x 4 bytes = 36 KiB,
// built at compile time. Each row is filled from the row entry with the lowest bit
// cleared, one XOR per entry.
using RssTable = std::array<std::array<uint32_t, 256>, kMaxInput>;

constexpr RssTable make_table() {
    RssTable t{};
    for (size_t pos = 0; pos < kMaxInput; ++pos) {
        t[pos][0] = 0;
        for (unsigned v = 1; v < 256; ++v) {
            const unsigned low = static_cast<unsigned>(__builtin_ctz(v));
            // Bit `low` of the byte is bit (7 - low) counted from its MSB.
            t[pos][v] = t[pos][v & (v - 1)] ^ key_window(pos * 8 + (7 - low));
        }
    }
    return t;
}

constexpr RssTable kTable = make_table();

inline uint32_t hash_bytes(uint32_t h, size_t pos, const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h ^= kTable[pos + i][p[i]];
    return h;
}

inline uint32_t hash_port(uint32_t h, size_t pos, uint16_t port) {
    // Ports are host order in FlowKey; the hash input is network order.
    return h ^ kTable[pos][port >> 8] ^ kTable[pos + 1][port & 0xff];
}

}  // namespace

uint32_t toeplitz_hash_reference(const uint8_t* key, const uint8_t* input, size_t len) {
    // Window = key bits [i, i+32) for input bit i; key must hold len + 4 bytes.
    uint32_t window = static_cast<uint32_t>(key[0]) << 24 | static_cast<uint32_t>(key[1]) << 16 |
                      static_cast<uint32_t>(key[2]) << 8 | key[3];
    uint32_t hash = 0;
    for (size_t i = 0; i < len; ++i) {
        for (int b = 7; b >= 0; --b) {
            if (input[i] & (1u << b)) hash ^= window;
            window = (window << 1) | ((key[i + 4] >> b) & 1u);
        }
    }
    return hash;
}

uint32_t rss_hash(const FlowKey& key) {
    uint32_t h = 0;
    if (key.src.is_v4()) [[likely]] {
        h = hash_bytes(h, 0, key.src.v4(), 4);
        h = hash_bytes(h, 4, key.dst.v4(), 4);
        h = hash_port(h, 8, key.src_port);
        return hash_port(h, 10, key.dst_port);
    }
    h = hash_bytes(h, 0, key.src.v6(), 16);
    h = hash_bytes(h, 16, key.dst.v6(), 16);
    h = hash_port(h, 32, key.src_port);
    return hash_port(h, 34, key.dst_port);
}

std::vector<uint16_t> rss_reta(uint32_t reta_size, uint32_t workers) {
    std::vector<uint16_t> reta(reta_size);
    for (uint32_t i = 0; i < reta_size; ++i) reta[i] = static_cast<uint16_t>(rss_owner(i, workers));
    return reta;
}

bool rss_reta_exact(uint32_t reta_size, uint32_t workers) {
    if (workers == 0 || reta_size == 0 || (reta_size & (reta_size - 1)) != 0) return false;
    // rss_owner reads the hash's low 7 bits, the NIC its low log2(reta_size) bits.
    return reta_size >= kRetaSize || reta_size % workers == 0;
}

}  // namespace dplb::core
