// Internet checksum: 64-bit-wide ones'-complement sums and RFC 1624 incremental updates.
#include "core/checksum.hpp"

#include <cstring>

namespace dplb::core {

namespace {

// Ones'-complement addition on 64 bits: the carry out of bit 63 comes back in at bit 0
// (end-around carry), which keeps every 16-bit lane's sum congruent mod 0xffff. It
// cannot overflow again: with a carry, r <= 2^64 - 2.
inline uint64_t add_carry(uint64_t a, uint64_t b) {
    uint64_t r;
    const bool carry = __builtin_add_overflow(a, b, &r);
    return r + carry;
}

// Folds to 16 bits with end-around carry. A non-zero input never folds to zero, so a
// sum of data that is not all zero gives a result in 1..0xffff; that keeps incremental
// and full checksums bit-identical (never 0xffff where the other gives 0).
inline uint16_t fold16(uint64_t sum) {
    sum = (sum & 0xffffffffULL) + (sum >> 32);
    sum = (sum & 0xffffffffULL) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

}  // namespace

uint32_t checksum_add(const void* data, size_t len, uint32_t sum) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t acc = sum;
    // Two independent chains so the adds of one overlap the carries of the other.
    uint64_t acc2 = 0;
    while (len >= 32) {
        acc = add_carry(acc, load64(p));
        acc2 = add_carry(acc2, load64(p + 8));
        acc = add_carry(acc, load64(p + 16));
        acc2 = add_carry(acc2, load64(p + 24));
        p += 32;
        len -= 32;
    }
    acc = add_carry(acc, acc2);
    while (len >= 8) {
        acc = add_carry(acc, load64(p));
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t w;
        std::memcpy(&w, p, sizeof w);
        acc = add_carry(acc, w);
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        std::memcpy(&w, p, sizeof w);
        acc = add_carry(acc, w);
        p += 2;
        len -= 2;
    }
    if (len == 1) {
        // The pad byte follows the data byte in memory, whatever the host's byte order.
        const uint8_t last[2] = {p[0], 0};
        uint16_t w;
        std::memcpy(&w, last, sizeof w);
        acc = add_carry(acc, w);
    }
    acc = (acc & 0xffffffffULL) + (acc >> 32);
    acc = (acc & 0xffffffffULL) + (acc >> 32);
    return static_cast<uint32_t>(acc);
}

uint16_t checksum_finish(uint32_t sum) {
    return static_cast<uint16_t>(~fold16(sum));
}

uint16_t ipv4_header_checksum(const void* header, size_t len) {
    return checksum_finish(checksum_add(header, len));
}

uint16_t l4_checksum(const IpAddress& src, const IpAddress& dst, uint8_t proto,
                     const void* l4, size_t len) {
    uint32_t sum;
    if (src.is_v4()) {
        // RFC 793/768 pseudo-header: src, dst, zero, protocol, 16-bit L4 length.
        const uint8_t tail[4] = {0, proto, static_cast<uint8_t>(len >> 8),
                                 static_cast<uint8_t>(len)};
        sum = checksum_add(src.v4(), 4);
        sum = checksum_add(dst.v4(), 4, sum);
        sum = checksum_add(tail, sizeof tail, sum);
    } else {
        // RFC 8200 section 8.1: src, dst, 32-bit upper-layer length, 3 zeros, next header.
        const uint8_t tail[8] = {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                                 static_cast<uint8_t>(len >> 8),  static_cast<uint8_t>(len),
                                 0, 0, 0, proto};
        sum = checksum_add(src.v6(), 16);
        sum = checksum_add(dst.v6(), 16, sum);
        sum = checksum_add(tail, sizeof tail, sum);
    }
    return checksum_finish(checksum_add(l4, len, sum));
}

uint16_t checksum_replace16(uint16_t check, uint16_t old_word, uint16_t new_word) {
    uint64_t sum = static_cast<uint16_t>(~check);
    sum += static_cast<uint16_t>(~old_word);
    sum += new_word;
    return static_cast<uint16_t>(~fold16(sum));
}

uint16_t checksum_replace32(uint16_t check, uint32_t old_word, uint32_t new_word) {
    // The two halves of a word loaded from memory are the two 16-bit words of the
    // packet (in some order, which a sum does not care about).
    uint64_t sum = static_cast<uint16_t>(~check);
    sum += static_cast<uint16_t>(~old_word);
    sum += static_cast<uint16_t>(~(old_word >> 16));
    sum += new_word & 0xffff;
    sum += new_word >> 16;
    return static_cast<uint16_t>(~fold16(sum));
}

uint16_t checksum_replace_bytes(uint16_t check, const void* old_bytes, const void* new_bytes,
                                size_t len) {
    uint64_t sum = static_cast<uint16_t>(~check);
    sum += static_cast<uint16_t>(~fold16(checksum_add(old_bytes, len)));
    sum += checksum_add(new_bytes, len);
    return static_cast<uint16_t>(~fold16(sum));
}

}  // namespace dplb::core
