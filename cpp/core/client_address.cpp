// TOA option insertion, PROXY protocol v1/v2 headers, and the TCP surgery behind them.
//
// Checksums: every change is applied as an RFC 1624 delta, never as a recomputation over
// data the client sent, so a corrupt segment stays visibly corrupt. Inserting an odd
// number of bytes (a v1 header) moves the bytes behind it to the other half of their
// 16-bit words; a ones'-complement sum is byte-order independent, so their contribution
// becomes the byte-swapped sum of the same bytes (RFC 1071, section 2(B)).
#include "core/client_address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "core/checksum.hpp"

namespace dplb::core {
namespace {

constexpr char kProxyV1Prefix[] = "PROXY ";
constexpr uint32_t kProxyV1PrefixLength = 6;
constexpr uint32_t kProxyV2FixedLength = 16;
constexpr uint16_t kMinMss = 48;  // Linux's TCP_MIN_SND_MSS

uint16_t load16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// A 16-bit value in network order as the raw word the checksum code sums.
uint16_t raw_be16(uint16_t v) {
    uint8_t b[2];
    store_be16(b, v);
    return load16(b);
}

// The ones'-complement sum of `n` bytes as they count in a checksum whose region they
// sit in at an even (`odd` false) or odd offset.
uint16_t sum_at(const uint8_t* p, size_t n, bool odd) {
    const auto s = static_cast<uint16_t>(~checksum_finish(checksum_add(p, n)));
    return odd ? __builtin_bswap16(s) : s;
}

uint8_t* tcp_check(uint8_t* frame, const ParsedPacket& q) { return frame + q.l4_offset + 16; }

void apply_tcp_delta(uint8_t* frame, const ParsedPacket& q, uint64_t delta) {
    uint8_t* check = tcp_check(frame, q);
    store16(check, checksum_apply(load16(check), delta));
}

// Stores a 32-bit field of the TCP header; returns its checksum delta.
uint64_t store_tcp32(uint8_t* l4, uint32_t offset, uint32_t value) {
    uint8_t bytes[4];
    store_be32(bytes, value);
    const uint32_t old_word = checksum_load32(l4 + offset);
    const uint32_t new_word = checksum_load32(bytes);
    std::memcpy(l4 + offset, bytes, 4);
    return checksum_delta32(old_word, new_word);
}

// Ethernet padding behind the IP packet is not part of it: drop it before growing.
void trim_padding(PacketView& pkt, const ParsedPacket& q) {
    const uint32_t end = q.l4_offset + q.l4_length;
    if (pkt.len > end) {
        pkt.tailroom += pkt.len - end;
        pkt.len = end;
    }
}

// Grows (n > 0: a gap of n bytes at `at`) or shrinks (n < 0: the -n bytes at `at` go)
// the TCP segment, moving whichever side of `at` is cheaper and fits in the buffer, and
// updates the IP length (and IPv4 checksum). The TCP checksum's pseudo-header length
// goes into `tcp_delta`. Offsets before `at` keep their place relative to pkt.data.
bool resize_segment(PacketView& pkt, ParsedPacket& q, uint32_t at, int32_t n, uint64_t& tcp_delta) {
    trim_padding(pkt, q);
    const uint32_t l3_header = q.l4_offset - q.l3_offset;
    const int64_t new_l4_length = int64_t(q.l4_length) + n;
    if (new_l4_length < 20 || (!q.ipv6 && new_l4_length + l3_header > 0xffff) ||
        (q.ipv6 && new_l4_length + l3_header - 40 > 0xffff)) {
        return false;
    }
    if (n > 0) {
        const auto grow = static_cast<uint32_t>(n);
        // Usually the headers in front are the shorter part (and mbufs have headroom).
        if (pkt.headroom >= grow && (at <= pkt.len - at || pkt.tailroom < grow)) {
            std::memmove(pkt.data - grow, pkt.data, at);
            pkt.data -= grow;
            pkt.headroom -= grow;
        } else if (pkt.tailroom >= grow) {
            std::memmove(pkt.data + at + grow, pkt.data + at, pkt.len - at);
            pkt.tailroom -= grow;
        } else {
            return false;
        }
        pkt.len += grow;
    } else if (n < 0) {
        const auto cut = static_cast<uint32_t>(-n);
        std::memmove(pkt.data + cut, pkt.data, at);
        pkt.data += cut;
        pkt.headroom += cut;
        pkt.len -= cut;
    }
    uint8_t* ip = pkt.data + q.l3_offset;
    if (!q.ipv6) {
        const uint16_t old_word = load16(ip + 2);
        store_be16(ip + 2, static_cast<uint16_t>(load_be16(ip + 2) + n));
        store16(ip + 10, checksum_apply(load16(ip + 10), checksum_delta16(old_word, load16(ip + 2))));
    } else {
        store_be16(ip + 4, static_cast<uint16_t>(load_be16(ip + 4) + n));
    }
    tcp_delta += checksum_delta16(raw_be16(q.l4_length), raw_be16(static_cast<uint16_t>(new_l4_length)));
    q.l4_length = static_cast<uint16_t>(new_l4_length);
    return true;
}

// Calls f(offset, kind, length) for each TCP option of the segment at `l4` until f
// returns true; stops at EOL or at a malformed length.
template <class F>
void for_each_option(const uint8_t* l4, F f) {
    const uint32_t header = (l4[12] >> 4) * 4u;
    uint32_t i = 20;
    while (i < header) {
        const uint8_t kind = l4[i];
        if (kind == 0) return;
        if (kind == 1) {
            ++i;
            continue;
        }
        if (i + 1 >= header) return;
        const uint8_t len = l4[i + 1];
        if (len < 2 || i + len > header) return;
        if (f(i, kind, len)) return;
        i += len;
    }
}

uint32_t write_decimal(char* out, uint32_t v) {
    char digits[10];
    uint32_t n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (uint32_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
    return n;
}

uint32_t write_text(char* out, const char* text) {
    const size_t n = std::strlen(text);
    std::memcpy(out, text, n);
    return static_cast<uint32_t>(n);
}

// A v1 port: 1 to 5 digits, at most 65535, no leading zero (the spec's words).
bool parse_port(const uint8_t* p, uint32_t n, uint16_t& port) {
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0')) return false;
    uint32_t v = 0;
    for (uint32_t i = 0; i < n; ++i) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535) return false;
    port = static_cast<uint16_t>(v);
    return true;
}

bool parse_address(const uint8_t* p, uint32_t n, bool v6, IpAddress& out) {
    char text[48];
    if (n == 0 || n >= sizeof text) return false;
    std::memcpy(text, p, n);
    text[n] = '\0';
    uint8_t bytes[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, text, bytes) != 1) return false;
    out = v6 ? IpAddress::from_v6(bytes) : IpAddress::from_v4(bytes);
    return true;
}

ProxyParse parse_v1(const uint8_t* data, uint32_t len, ProxyAddresses& out, uint32_t& length) {
    // The line ends at the first CRLF, within 107 bytes; a bare LF is not allowed.
    const uint32_t limit = std::min(len, kProxyV1MaxLength);
    uint32_t end = 0;
    for (uint32_t i = kProxyV1PrefixLength; i < limit; ++i) {
        if (data[i] == '\n') {
            if (data[i - 1] != '\r') return ProxyParse::invalid;
            end = i - 1;
            break;
        }
    }
    if (end == 0) return len < kProxyV1MaxLength ? ProxyParse::incomplete : ProxyParse::invalid;
    length = end + 2;
    constexpr char kUnknown[] = "UNKNOWN";
    constexpr uint32_t kUnknownLength = sizeof kUnknown - 1;
    if (end - kProxyV1PrefixLength >= kUnknownLength &&
        std::memcmp(data + kProxyV1PrefixLength, kUnknown, kUnknownLength) == 0 &&
        (end - kProxyV1PrefixLength == kUnknownLength || data[kProxyV1PrefixLength + kUnknownLength] == ' ')) {
        return ProxyParse::ok;  // whatever follows UNKNOWN is to be ignored
    }
    // Fields separated by single spaces: protocol, then for TCP4/TCP6 exactly four more.
    const uint8_t* field[5];
    uint32_t field_len[5];
    uint32_t fields = 0;
    uint32_t begin = kProxyV1PrefixLength;
    for (uint32_t i = kProxyV1PrefixLength; i <= end; ++i) {
        if (i == end || data[i] == ' ') {
            if (fields == 5) return ProxyParse::invalid;
            field[fields] = data + begin;
            field_len[fields] = i - begin;
            ++fields;
            begin = i + 1;
        }
    }
    auto is = [&](uint32_t f, const char* text) {
        return field_len[f] == std::strlen(text) && std::memcmp(field[f], text, field_len[f]) == 0;
    };
    const bool v6 = is(0, "TCP6");
    if (!(v6 || is(0, "TCP4")) || fields != 5) return ProxyParse::invalid;
    if (!parse_address(field[1], field_len[1], v6, out.src.address) ||
        !parse_address(field[2], field_len[2], v6, out.dst.address) ||
        !parse_port(field[3], field_len[3], out.src.port) || !parse_port(field[4], field_len[4], out.dst.port)) {
        return ProxyParse::invalid;
    }
    out.known = true;
    return ProxyParse::ok;
}

ProxyParse parse_v2(const uint8_t* data, uint32_t len, ProxyAddresses& out, uint32_t& length) {
    if (len < kProxyV2FixedLength) return ProxyParse::incomplete;
    const uint8_t version = data[12] >> 4, command = data[12] & 0x0f;
    const uint8_t family = data[13] >> 4, transport = data[13] & 0x0f;
    if (version != 2 || command > 1 || family > 3 || transport > 2) return ProxyParse::invalid;
    const uint32_t address_len = load_be16(data + 14);
    if (len < kProxyV2FixedLength + address_len) return ProxyParse::incomplete;
    length = kProxyV2FixedLength + address_len;
    if (command == 0) {
        out.local = true;  // LOCAL: the proxy's own connection (a health check)
        return ProxyParse::ok;
    }
    const uint8_t* a = data + kProxyV2FixedLength;
    if (data[13] == 0x11) {  // TCP over IPv4
        if (address_len < 12) return ProxyParse::invalid;
        out.src = {IpAddress::from_v4(a), load_be16(a + 8)};
        out.dst = {IpAddress::from_v4(a + 4), load_be16(a + 10)};
        out.known = true;
    } else if (data[13] == 0x21) {  // TCP over IPv6
        if (address_len < 36) return ProxyParse::invalid;
        out.src = {IpAddress::from_v6(a), load_be16(a + 32)};
        out.dst = {IpAddress::from_v6(a + 16), load_be16(a + 34)};
        out.known = true;
    }
    // Other families (UNSPEC, UDP, UNIX) carry nothing dplb can pass on: unknown.
    return ProxyParse::ok;
}

}  // namespace

uint32_t format_ipv4(char* out, const uint8_t* a) {
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) {
        if (i > 0) out[n++] = '.';
        n += write_decimal(out + n, a[i]);
    }
    return n;
}

uint32_t format_ipv6(char* out, const uint8_t* a) {
    uint16_t group[8];
    for (int i = 0; i < 8; ++i) group[i] = load_be16(a + 2 * i);
    // RFC 5952 section 4.2: the longest run of zero groups, the first one on a tie, and
    // only when it spans two groups or more.
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (group[i] != 0) {
            ++i;
            continue;
        }
        int j = i;
        while (j < 8 && group[j] == 0) ++j;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    if (best_len < 2) best = -1;
    static constexpr char kHex[] = "0123456789abcdef";
    uint32_t n = 0;
    for (int i = 0; i < 8; ++i) {
        if (best >= 0 && i >= best && i < best + best_len) {
            if (i == best) {
                out[n++] = ':';
                out[n++] = ':';
            }
            continue;
        }
        if (i > 0 && i != best + best_len) out[n++] = ':';
        bool started = false;
        for (int shift = 12; shift >= 0; shift -= 4) {
            const int digit = (group[i] >> shift) & 0xf;
            if (digit != 0 || started || shift == 0) {
                out[n++] = kHex[digit];
                started = true;
            }
        }
    }
    return n;
}

uint32_t build_proxy_v1(uint8_t* out, const ProxyAddresses& a) {
    char* p = reinterpret_cast<char*>(out);
    if (!a.known) return write_text(p, "PROXY UNKNOWN\r\n");
    const bool v4 = a.src.address.is_v4();
    uint32_t n = write_text(p, v4 ? "PROXY TCP4 " : "PROXY TCP6 ");
    n += v4 ? format_ipv4(p + n, a.src.address.v4()) : format_ipv6(p + n, a.src.address.v6());
    p[n++] = ' ';
    n += v4 ? format_ipv4(p + n, a.dst.address.v4()) : format_ipv6(p + n, a.dst.address.v6());
    p[n++] = ' ';
    n += write_decimal(p + n, a.src.port);
    p[n++] = ' ';
    n += write_decimal(p + n, a.dst.port);
    p[n++] = '\r';
    p[n++] = '\n';
    return n;
}

uint32_t build_proxy_v2(uint8_t* out, const ProxyAddresses& a) {
    std::memcpy(out, kProxyV2Signature.data(), kProxyV2Signature.size());
    if (!a.known) {
        // LOCAL stays LOCAL; an unknown source is PROXY over AF_UNSPEC: in both the
        // real uses the connection's own endpoints.
        out[12] = a.local ? 0x20 : 0x21;
        out[13] = 0x00;
        store_be16(out + 14, 0);
        return kProxyV2FixedLength;
    }
    out[12] = 0x21;  // version 2, PROXY
    uint8_t* p = out + kProxyV2FixedLength;
    uint32_t address_len;
    if (a.src.address.is_v4()) {
        out[13] = 0x11;  // AF_INET, STREAM
        std::memcpy(p, a.src.address.v4(), 4);
        std::memcpy(p + 4, a.dst.address.v4(), 4);
        store_be16(p + 8, a.src.port);
        store_be16(p + 10, a.dst.port);
        address_len = 12;
    } else {
        out[13] = 0x21;  // AF_INET6, STREAM
        std::memcpy(p, a.src.address.v6(), 16);
        std::memcpy(p + 16, a.dst.address.v6(), 16);
        store_be16(p + 32, a.src.port);
        store_be16(p + 34, a.dst.port);
        address_len = 36;
    }
    store_be16(out + 14, static_cast<uint16_t>(address_len));
    return kProxyV2FixedLength + address_len;
}

bool looks_like_proxy_header(const uint8_t* data, uint32_t len) {
    return (len >= kProxyV1PrefixLength && std::memcmp(data, kProxyV1Prefix, kProxyV1PrefixLength) == 0) ||
           (len >= kProxyV2Signature.size() &&
            std::memcmp(data, kProxyV2Signature.data(), kProxyV2Signature.size()) == 0);
}

ProxyParse parse_proxy_header(const uint8_t* data, uint32_t len, ProxyAddresses& out, uint32_t& length) {
    out = ProxyAddresses{};
    length = 0;
    const uint32_t v2_seen = std::min<uint32_t>(len, kProxyV2Signature.size());
    if (std::memcmp(data, kProxyV2Signature.data(), v2_seen) == 0) {
        return len < kProxyV2Signature.size() ? ProxyParse::incomplete : parse_v2(data, len, out, length);
    }
    const uint32_t v1_seen = std::min(len, kProxyV1PrefixLength);
    if (std::memcmp(data, kProxyV1Prefix, v1_seen) == 0) {
        return len < kProxyV1PrefixLength ? ProxyParse::incomplete : parse_v1(data, len, out, length);
    }
    return ProxyParse::not_proxy;
}

ToaResult insert_toa(PacketView& pkt, ParsedPacket& q, const Endpoint& client) {
    const bool v4 = client.address.is_v4();
    const uint32_t n = v4 ? kToaLengthV4 : kToaLengthV6;
    const uint32_t header = (pkt.data[q.l4_offset + 12] >> 4) * 4u;
    if (header + n > kTcpMaxHeader) return ToaResult::no_option_room;
    uint64_t delta = 0;
    if (!resize_segment(pkt, q, q.l4_offset + 20, static_cast<int32_t>(n), delta)) return ToaResult::no_buffer_room;
    q.payload_offset = static_cast<uint16_t>(q.payload_offset + n);
    uint8_t* l4 = pkt.data + q.l4_offset;
    uint8_t* option = l4 + 20;
    option[0] = kTcpOptionToa;
    option[1] = static_cast<uint8_t>(n);
    store_be16(option + 2, client.port);
    std::memcpy(option + 4, v4 ? client.address.v4() : client.address.v6(), v4 ? 4 : 16);
    delta += sum_at(option, n, false);
    const uint16_t old_word = load16(l4 + 12);
    l4[12] = static_cast<uint8_t>(((header + n) / 4) << 4 | (l4[12] & 0x0f));
    delta += checksum_delta16(old_word, load16(l4 + 12));
    apply_tcp_delta(pkt.data, q, delta);
    return ToaResult::inserted;
}

bool replace_payload_prefix(PacketView& pkt, ParsedPacket& q, uint32_t old_n, const uint8_t* bytes,
                            uint32_t new_n) {
    trim_padding(pkt, q);
    const uint32_t at = q.payload_offset;
    const uint32_t end = q.l4_offset + q.l4_length;
    if (at + old_n > end) return false;
    // The payload starts at an even offset of the segment (the TCP header is 4-byte
    // words). The old prefix leaves the sum; the bytes behind it change word halves when
    // the length changes by an odd number.
    uint64_t delta = checksum_delta16(sum_at(pkt.data + at, old_n, false), 0);
    if ((old_n ^ new_n) & 1) {
        const uint16_t tail = sum_at(pkt.data + at + old_n, end - at - old_n, false);
        const uint16_t swapped = __builtin_bswap16(tail);
        delta += (old_n & 1) ? checksum_delta16(swapped, tail) : checksum_delta16(tail, swapped);
    }
    if (!resize_segment(pkt, q, at, static_cast<int32_t>(new_n) - static_cast<int32_t>(old_n), delta)) return false;
    std::memcpy(pkt.data + at, bytes, new_n);
    delta += sum_at(pkt.data + at, new_n, false);
    apply_tcp_delta(pkt.data, q, delta);
    return true;
}

void set_tcp_seq(uint8_t* frame, const ParsedPacket& q, uint32_t seq) {
    apply_tcp_delta(frame, q, store_tcp32(frame + q.l4_offset, 4, seq));
}

void shift_acks_to_client(uint8_t* frame, const ParsedPacket& q, const SeqShift& shift) {
    uint8_t* l4 = frame + q.l4_offset;
    uint64_t delta = 0;
    if (l4[13] & kTcpAck) {
        const uint32_t ack = load_be32(l4 + 8);
        const uint32_t mapped = shift.to_client(ack);
        if (mapped != ack) delta += store_tcp32(l4, 8, mapped);
    }
    for_each_option(l4, [&](uint32_t at, uint8_t kind, uint8_t len) {
        if (kind != 5 || len < 10 || (len - 2) % 8 != 0) return false;
        uint8_t* option = l4 + at;
        uint8_t before[40];
        std::memcpy(before, option, len);
        for (uint32_t b = 2; b < len; b += 8) {
            const uint32_t left = shift.to_client(load_be32(option + b));
            const uint32_t right = shift.to_client(load_be32(option + b + 4));
            if (left == right && b == 2) {
                // A D-SACK (RFC 2883, always the first block) of dplb's header bytes
                // only: nothing of the client's. It becomes NOPs, the option moving up.
                std::memset(option, 1, 8);
                if (len == 10) {
                    option[8] = option[9] = 1;
                } else {
                    option[8] = 5;
                    option[9] = static_cast<uint8_t>(len - 8);
                }
                continue;
            }
            store_be32(option + b, left);
            store_be32(option + b + 4, right);
        }
        const bool odd = at & 1;
        delta += checksum_delta16(sum_at(before, len, odd), sum_at(option, len, odd));
        return false;
    });
    if (delta != 0) apply_tcp_delta(frame, q, delta);
}

void strip_payload(PacketView& pkt, ParsedPacket& q) {
    const uint32_t n = q.l4_offset + q.l4_length - q.payload_offset;
    const uint8_t nothing = 0;
    if (n > 0) replace_payload_prefix(pkt, q, n, &nothing, 0);  // shrinking always fits
}

bool remove_fast_open(uint8_t* frame, const ParsedPacket& q) {
    constexpr uint8_t kTcpOptionFastOpen = 34;
    constexpr uint16_t kFastOpenMagic = 0xf989;
    uint8_t* l4 = frame + q.l4_offset;
    bool found = false;
    for_each_option(l4, [&](uint32_t at, uint8_t kind, uint8_t len) {
        uint8_t* option = l4 + at;
        if (kind != kTcpOptionFastOpen && !(kind == kTcpOptionToa && len >= 4 && load_be16(option + 2) == kFastOpenMagic)) {
            return false;
        }
        const bool odd = at & 1;
        const uint16_t before = sum_at(option, len, odd);
        std::memset(option, 1, len);
        apply_tcp_delta(frame, q, checksum_delta16(before, sum_at(option, len, odd)));
        found = true;
        return false;
    });
    return found;
}

bool clamp_mss(uint8_t* frame, const ParsedPacket& q, uint16_t by) {
    uint8_t* l4 = frame + q.l4_offset;
    bool found = false;
    for_each_option(l4, [&](uint32_t at, uint8_t kind, uint8_t len) {
        if (kind != 2 || len != 4) return false;
        found = true;
        uint8_t* value = l4 + at + 2;
        const uint16_t mss = load_be16(value);
        if (mss <= kMinMss) return true;
        const uint8_t before[2] = {value[0], value[1]};
        store_be16(value, static_cast<uint16_t>(std::max<int>(mss - by, kMinMss)));
        const bool odd = at & 1;
        apply_tcp_delta(frame, q, checksum_delta16(sum_at(before, 2, odd), sum_at(value, 2, odd)));
        return true;
    });
    return found;
}

void make_tcp_reset(PacketView& pkt, ParsedPacket& q, const Endpoint& src, const Endpoint& dst, uint32_t seq,
                    uint32_t ack, uint8_t flags) {
    const bool v4 = src.address.is_v4();
    const uint32_t ip_len = v4 ? 20 : 40;
    uint8_t* ip = pkt.data + q.l3_offset;
    uint8_t* tcp = ip + ip_len;
    if (v4) {
        std::memset(ip, 0, 20);
        ip[0] = 0x45;
        store_be16(ip + 2, 40);
        store_be16(ip + 6, 0x4000);  // don't fragment
        ip[8] = 64;
        ip[9] = static_cast<uint8_t>(L4Proto::tcp);
        std::memcpy(ip + 12, src.address.v4(), 4);
        std::memcpy(ip + 16, dst.address.v4(), 4);
        store16(ip + 10, ipv4_header_checksum(ip, 20));
    } else {
        store_be32(ip, 0x60000000);
        store_be16(ip + 4, 20);
        ip[6] = static_cast<uint8_t>(L4Proto::tcp);
        ip[7] = 64;
        std::memcpy(ip + 8, src.address.v6(), 16);
        std::memcpy(ip + 24, dst.address.v6(), 16);
    }
    std::memset(tcp, 0, 20);
    store_be16(tcp, src.port);
    store_be16(tcp + 2, dst.port);
    store_be32(tcp + 4, seq);
    store_be32(tcp + 8, ack);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    store16(tcp + 16, l4_checksum(src.address, dst.address, static_cast<uint8_t>(L4Proto::tcp), tcp, 20));
    const uint32_t len = q.l3_offset + ip_len + 20;
    pkt.tailroom += pkt.len - len;
    pkt.len = len;
    q.ipv6 = !v4;
    q.l4_offset = static_cast<uint16_t>(q.l3_offset + ip_len);
    q.l4_length = 20;
    q.payload_offset = static_cast<uint16_t>(q.l4_offset + 20);
    q.tcp_flags = flags;
}

void unshift_quoted_seq(uint8_t* l4, uint32_t avail, const SeqShift& shift) {
    if (avail < 8) return;
    const uint32_t seq = load_be32(l4 + 4);
    const uint32_t mapped = shift.to_client(seq);
    if (mapped == seq) return;
    const uint64_t delta = store_tcp32(l4, 4, mapped);
    if (avail >= 18) store16(l4 + 16, checksum_apply(load16(l4 + 16), delta));
}

}  // namespace dplb::core
