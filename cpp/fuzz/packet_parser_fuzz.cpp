// libFuzzer target: the packet parser (parse_packet, parse_inner_ip) on any bytes. It must
// never read past the frame (ASan) and what it reports must stay inside the frame.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/packet.hpp"

namespace {

using dplb::core::ParsedPacket;
using dplb::core::ParseStatus;

void check(bool ok) {
    if (!ok) std::abort();  // the fuzzer reports it as a crash with the input
}

// Offsets of an accepted packet lie inside what was parsed, in order.
void check_offsets(const ParsedPacket& p, uint32_t len, bool inner) {
    if (p.status != ParseStatus::ok) return;
    check(p.l3_offset <= p.l4_offset);
    // An inner packet (parse_inner_ip) carries its addresses, ports and L4 offset only:
    // its payload_offset is not set, and it may be cut short of its own length.
    if (!inner) {
        check(p.l4_offset <= p.payload_offset);
        check(p.payload_offset <= len);
        check(uint32_t(p.l4_offset) + p.l4_length <= len);
        check(p.payload_offset <= uint32_t(p.l4_offset) + p.l4_length);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 65535) return 0;
    // A copy of exactly `size` bytes: ASan then catches a read one byte past the frame.
    std::vector<uint8_t> frame(data, data + size);
    const uint32_t len = static_cast<uint32_t>(size);
    ParsedPacket p = dplb::core::parse_packet(frame.data(), len);
    check_offsets(p, len, false);
    if (p.status == ParseStatus::ok && p.payload_offset < len) {
        // What an ICMP error quotes: the rest of the frame as an inner IP packet.
        const uint32_t end = std::min<uint32_t>(len, uint32_t(p.l4_offset) + p.l4_length);
        if (p.payload_offset < end) {
            std::vector<uint8_t> quoted(frame.begin() + p.payload_offset, frame.begin() + end);
            ParsedPacket inner = dplb::core::parse_inner_ip(quoted.data(), static_cast<uint32_t>(quoted.size()), p.ipv6);
            check_offsets(inner, static_cast<uint32_t>(quoted.size()), true);
        }
    }
    // The same bytes read as a bare inner packet of either family.
    ParsedPacket v4 = dplb::core::parse_inner_ip(frame.data(), len, false);
    ParsedPacket v6 = dplb::core::parse_inner_ip(frame.data(), len, true);
    check_offsets(v4, len, true);
    check_offsets(v6, len, true);
    return 0;
}
