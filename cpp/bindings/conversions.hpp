// Text <-> core value conversions at the Python edge (addresses, prefixes, MACs), with
// ValueError naming what was wrong. Shared by every binding file.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdio>
#include <string>

#include "core/ip_address.hpp"
#include "core/routing.hpp"

namespace dplb::bindings {

inline core::IpAddress parse_address(const std::string& text) {
    auto a = core::IpAddress::parse(text);
    if (!a) throw pybind11::value_error("not an IP address: '" + text + "'");
    return *a;
}

inline core::Prefix parse_prefix(const std::string& text) {
    auto p = core::Prefix::parse(text);
    if (!p) throw pybind11::value_error("not an address/prefix: '" + text + "'");
    return *p;
}

inline core::MacAddress parse_mac(const std::string& text) {
    core::MacAddress mac{};
    unsigned v[6];
    if (text.size() != 17 || std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4],
                                         &v[5]) != 6) {
        throw pybind11::value_error("not a MAC address: '" + text + "'");
    }
    for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(v[i]);
    return mac;
}

inline std::string mac_text(const uint8_t* m) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return buf;
}

}  // namespace dplb::bindings
