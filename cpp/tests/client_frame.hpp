// The TCP frame the engine tests send most: client 198.51.100.7:`port` to the VIP
// 10.0.100.10:80 on port0 (MAC 02:00:00:00:00:01), from the client gateway's MAC
// 0a:00:00:00:01:fe; 54 bytes, no checksum (the engine checks none).
#pragma once

#include <cstdint>
#include <cstring>

#include "core/packet.hpp"

namespace dplb::core::testing_frames {

inline constexpr uint32_t kClientFrameBytes = 54;

inline void write_client_frame(uint8_t* f, uint16_t port, uint8_t flags) {
    std::memset(f, 0, kClientFrameBytes);
    const uint8_t dst[6] = {2, 0, 0, 0, 0, 1}, src[6] = {0x0a, 0, 0, 0, 1, 0xfe};
    std::memcpy(f, dst, 6);
    std::memcpy(f + 6, src, 6);
    store_be16(f + 12, kEtherTypeIpv4);
    uint8_t* iph = f + 14;
    iph[0] = 0x45;
    store_be16(iph + 2, 40);
    iph[8] = 64;
    iph[9] = 6;
    const uint8_t client[4] = {198, 51, 100, 7}, vip[4] = {10, 0, 100, 10};
    std::memcpy(iph + 12, client, 4);
    std::memcpy(iph + 16, vip, 4);
    uint8_t* tcp = iph + 20;
    store_be16(tcp, port);
    store_be16(tcp + 2, 80);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
}

}  // namespace dplb::core::testing_frames
