// IpAddress: one 16-byte value for IPv4 (stored v4-mapped, ::ffff:a.b.c.d) and IPv6,
// so keys, sessions and tables need no separate family field.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace dplb::core {

struct IpAddress {
    std::array<uint8_t, 16> bytes{};

    static IpAddress from_v4(const uint8_t* network_order) {
        IpAddress a;
        a.bytes[10] = 0xff;
        a.bytes[11] = 0xff;
        std::memcpy(&a.bytes[12], network_order, 4);
        return a;
    }
    static IpAddress from_v6(const uint8_t* network_order) {
        IpAddress a;
        std::memcpy(a.bytes.data(), network_order, 16);
        return a;
    }
    // Parses "10.0.0.1" or "2001:db8::1"; nullopt when it is neither.
    static std::optional<IpAddress> parse(std::string_view text);

    bool is_v4() const {
        static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return std::memcmp(bytes.data(), prefix, 12) == 0;
    }
    const uint8_t* v4() const { return &bytes[12]; }
    const uint8_t* v6() const { return bytes.data(); }
    std::string to_string() const;

    bool operator==(const IpAddress& o) const {
        uint64_t a[2], b[2];
        std::memcpy(a, bytes.data(), 16);
        std::memcpy(b, o.bytes.data(), 16);
        return ((a[0] ^ b[0]) | (a[1] ^ b[1])) == 0;
    }
};

// A subnet (address and prefix length), e.g. a port's connected network.
struct Prefix {
    IpAddress address;
    uint8_t length = 0;  // counted on the IPv6 form: an IPv4 /24 is stored as /120

    static std::optional<Prefix> parse(std::string_view text);  // "10.0.0.1/24", "2001:db8::1/64"
    bool contains(const IpAddress& a) const;
};

}  // namespace dplb::core
