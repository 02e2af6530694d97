// Client-address pass-through (DESIGN section 5): the TOA option, PROXY protocol v1/v2
// headers (built and parsed), and the TCP surgery they need (growing a segment, shifting
// sequence numbers, clamping the MSS), every checksum kept right incrementally. The
// per-session decisions that call these are in worker_client_address.cpp.
#pragma once

#include <array>
#include <cstdint>

#include "core/nat_rewrite.hpp"
#include "core/packet.hpp"
#include "core/session.hpp"

namespace dplb::core {

// TOA: TCP option 254, then the client's port and address (network order). These are
// the lengths the Linux TOA modules (LVS, DPVS) read: 8 for IPv4, 20 for IPv6.
inline constexpr uint8_t kTcpOptionToa = 254;
inline constexpr uint8_t kToaLengthV4 = 8;
inline constexpr uint8_t kToaLengthV6 = 20;
inline constexpr uint32_t kTcpMaxHeader = 60;

// PROXY protocol (haproxy.org/download/2.9/doc/proxy-protocol.txt).
inline constexpr uint32_t kProxyV1MaxLength = 107;  // the spec's limit for a v1 line, CRLF included
inline constexpr std::array<uint8_t, 12> kProxyV2Signature = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                                              0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
// The longest headers dplb writes: v1 "PROXY TCP6 " + two 39-character addresses + two
// 5-digit ports + separators + CRLF; v2 with IPv6 addresses and no TLVs.
inline constexpr uint32_t kProxyV1Longest = 104;
inline constexpr uint32_t kProxyV2Longest = 52;
inline constexpr uint32_t kProxyHeaderMax = kProxyV1Longest;

// The connection a PROXY header names. Without addresses (`known` false) it says
// "use the connection's own endpoints": v1 UNKNOWN, v2 LOCAL (`local`) or a v2 family
// other than TCP over IPv4/IPv6.
struct ProxyAddresses {
    bool known = false;
    bool local = false;
    Endpoint src;
    Endpoint dst;
};

// Each writes a header into `out` (room for kProxyHeaderMax bytes) and returns its
// length. src and dst must be of one family.
uint32_t build_proxy_v1(uint8_t* out, const ProxyAddresses& a);
uint32_t build_proxy_v2(uint8_t* out, const ProxyAddresses& a);
inline uint32_t build_proxy_header(ClientAddressMode mode, const ProxyAddresses& a, uint8_t* out) {
    return mode == ClientAddressMode::proxy_v1 ? build_proxy_v1(out, a) : build_proxy_v2(out, a);
}

enum class ProxyParse : uint8_t {
    not_proxy,   // the data does not start with a PROXY signature
    incomplete,  // it does, but the header goes on past the data
    invalid,     // it does, and what follows breaks the spec
    ok,
};

// Parses a v1 or v2 header at the start of `data`; on ok fills `out` and `length` (the
// bytes the header takes, TLVs of v2 included).
ProxyParse parse_proxy_header(const uint8_t* data, uint32_t len, ProxyAddresses& out, uint32_t& length);

// True when `data` starts with "PROXY " or the v2 signature.
bool looks_like_proxy_header(const uint8_t* data, uint32_t len);

// Text forms for v1 headers, without allocation: dotted quad; RFC 5952 for IPv6
// (lower case, no leading zeros, the longest run of two or more zero groups as "::").
// `out` needs 15 and 39 characters. Return the length written (no terminator).
uint32_t format_ipv4(char* out, const uint8_t* a);
uint32_t format_ipv6(char* out, const uint8_t* a);

// The sequence shift of a PROXY session. The client's stream starts at `start` (its ISN
// + 1); toward the real, dplb's `header` bytes sit there in place of the client's first
// `header - delta` bytes (its own PROXY header when trusted, else none).
struct SeqShift {
    uint32_t start = 0;
    uint32_t header = 0;
    int32_t delta = 0;
    bool far = false;  // the real's ACKs went far past the header (kCaHeaderFar)

    // A sequence number of the real's view of the client's stream (an ACK or a SACK edge
    // sent by the real, a segment quoted by an ICMP error) in the client's view. The
    // header is dplb's, not the client's: a point inside it is the client's `start`.
    // Until `far`, every such point lies within 2 GiB of the header (windows are at most
    // 1 GiB), so comparing with its raw numbers cannot alias; once far, none can be in it.
    uint32_t to_client(uint32_t real_seq) const {
        if (!far && real_seq - start < header) return start;
        return real_seq - static_cast<uint32_t>(delta);
    }
};

inline SeqShift seq_shift_of(const Session& s) {
    return SeqShift{s.client_isn + 1, s.ca_header_len, s.seq_delta, (s.ca_flags & kCaHeaderFar) != 0};
}

// -- TCP surgery on a parsed IPv4/IPv6 TCP frame -------------------------------------
// These keep `q` (offsets, lengths) in step with the frame and update every checksum
// incrementally, so that a frame that came in with a bad checksum leaves with one.

enum class ToaResult : uint8_t { inserted, no_option_room, no_buffer_room };

// Puts the TOA option right after the fixed TCP header (8 and 20 are multiples of 4, so
// the options behind it keep their alignment).
ToaResult insert_toa(PacketView& pkt, ParsedPacket& q, const Endpoint& client);

// Replaces the first `old_n` payload bytes by `bytes[0..new_n)` (old_n 0: inserts).
// False when the buffer has no room to grow; the frame is then unchanged.
bool replace_payload_prefix(PacketView& pkt, ParsedPacket& q, uint32_t old_n, const uint8_t* bytes,
                            uint32_t new_n);

void set_tcp_seq(uint8_t* frame, const ParsedPacket& q, uint32_t seq);

// Rewrites the ACK number and the SACK blocks of a real -> client segment through
// `shift`. A SACK block that maps to nothing (a D-SACK of header bytes only) becomes NOPs.
void shift_acks_to_client(uint8_t* frame, const ParsedPacket& q, const SeqShift& shift);

// Removes the payload of a segment (a SYN's TCP Fast Open data): the IP length and every
// checksum follow. The sequence number stays (it counts the SYN flag only).
void strip_payload(PacketView& pkt, ParsedPacket& q);

// Turns the TCP Fast Open options of a SYN (kind 34, and the experimental kind 254 with
// magic 0xF989 of RFC 7413 section 4.1.1) into NOPs; true when there was one.
bool remove_fast_open(uint8_t* frame, const ParsedPacket& q);

// Lowers the MSS option of a SYN by `by` (not below 48, Linux's floor); false when the
// segment has no MSS option.
bool clamp_mss(uint8_t* frame, const ParsedPacket& q, uint16_t by);

// Rewrites the frame into a bare TCP segment from `src` to `dst` with only `flags`, `seq`
// and `ack` (no options, no payload, no IP options), TTL/hop limit 64; the Ethernet
// header is the caller's. Never grows the frame.
void make_tcp_reset(PacketView& pkt, ParsedPacket& q, const Endpoint& src, const Endpoint& dst, uint32_t seq,
                    uint32_t ack, uint8_t flags);

// Maps the sequence number of a TCP header quoted by an ICMP error (`l4`, `avail`
// bytes) from the real's view to the client's, fixing the quoted checksum if present.
[[gnu::cold]] void unshift_quoted_seq(uint8_t* l4, uint32_t avail, const SeqShift& shift);

}  // namespace dplb::core
