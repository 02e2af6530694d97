// Text forms of IpAddress and Prefix (control path only).
#include "core/ip_address.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace dplb::core {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    std::string s(text);
    uint8_t buf[16];
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) return from_v4(buf);
    if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return from_v6(buf);
    return std::nullopt;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    if (is_v4()) {
        inet_ntop(AF_INET, v4(), buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, v6(), buf, sizeof buf);
    }
    return buf;
}

std::optional<Prefix> Prefix::parse(std::string_view text) {
    auto slash = text.find('/');
    auto addr = IpAddress::parse(text.substr(0, slash));
    if (!addr) return std::nullopt;
    unsigned max_len = addr->is_v4() ? 32 : 128;
    unsigned len = max_len;
    if (slash != std::string_view::npos) {
        auto digits = text.substr(slash + 1);
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
        if (ec != std::errc() || ptr != digits.data() + digits.size() || len > max_len) {
            return std::nullopt;
        }
    }
    return Prefix{*addr, static_cast<uint8_t>(addr->is_v4() ? len + 96 : len)};
}

bool Prefix::contains(const IpAddress& a) const {
    unsigned full = length / 8, rest = length % 8;
    if (std::memcmp(address.bytes.data(), a.bytes.data(), full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (address.bytes[full] & mask) == (a.bytes[full] & mask);
}

}  // namespace dplb::core
