// Tests for core/packet_parser: hand-built frames (IPv4 with options, 802.1Q, IPv6 extension
// chains, fragments, every kind of malformation) parsed field by field, and every truncation
// of a valid frame parsed from a buffer that ends at an unreadable page.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "core/packet.hpp"

namespace dplb::core {
namespace {

using Bytes = std::vector<uint8_t>;

// ---- frame builders ---------------------------------------------------------------------

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

void put16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

Bytes ether(uint16_t type, std::optional<uint16_t> vlan_tci = std::nullopt) {
    Bytes b = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02};
    if (vlan_tci) {
        put16(b, kEtherTypeVlan);
        put16(b, *vlan_tci);
    }
    put16(b, type);
    return b;
}

constexpr uint8_t kClient4[4] = {192, 0, 2, 10};
constexpr uint8_t kVip4[4] = {198, 51, 100, 1};
constexpr uint8_t kClient6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
constexpr uint8_t kVip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};

struct Ipv4Fields {
    uint8_t proto = 6;
    Bytes options;              // multiple of 4 bytes
    uint16_t frag = 0;          // flags + fragment offset word
    uint8_t ttl = 64;
    uint8_t version = 4;
    std::optional<uint8_t> ihl;            // override the header length field (words)
    std::optional<uint16_t> total_length;  // override the total length field
};

Ipv4Fields with_proto(uint8_t proto) {
    Ipv4Fields f;
    f.proto = proto;
    return f;
}

Bytes ipv4(const Ipv4Fields& f, const Bytes& payload) {
    Bytes b;
    const size_t header = 20 + f.options.size();
    b.push_back(static_cast<uint8_t>(f.version << 4 | (f.ihl ? *f.ihl : header / 4)));
    b.push_back(0);
    put16(b, f.total_length ? *f.total_length : static_cast<uint16_t>(header + payload.size()));
    put16(b, 0x1234);
    put16(b, f.frag);
    b.push_back(f.ttl);
    b.push_back(f.proto);
    put16(b, 0);
    b.insert(b.end(), kClient4, kClient4 + 4);
    b.insert(b.end(), kVip4, kVip4 + 4);
    b.insert(b.end(), f.options.begin(), f.options.end());
    uint32_t sum = 0;
    for (size_t i = 0; i < header; i += 2) sum += uint32_t(b[i]) << 8 | b[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    store_be16(&b[10], static_cast<uint16_t>(~sum));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

Bytes ipv6(uint8_t next, const Bytes& payload, std::optional<uint16_t> payload_length = std::nullopt,
           uint8_t version = 6, uint8_t hop_limit = 61) {
    Bytes b = {static_cast<uint8_t>(version << 4), 0, 0, 0};
    put16(b, payload_length ? *payload_length : static_cast<uint16_t>(payload.size()));
    b.push_back(next);
    b.push_back(hop_limit);
    b.insert(b.end(), kClient6, kClient6 + 16);
    b.insert(b.end(), kVip6, kVip6 + 16);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

// An IPv6 options extension header (hop-by-hop, destination options) of 8 * (units + 1)
// bytes: next header, length, then one PadN option filling the rest.
Bytes ipv6_options(uint8_t next, uint8_t units) {
    const size_t total = 8 * (units + 1u);
    Bytes b = {next, units, 0x01, static_cast<uint8_t>(total - 4)};
    b.resize(total, 0);
    return b;
}

Bytes ipv6_fragment(uint8_t next, uint16_t offset_and_m) {
    Bytes b = {next, 0};
    put16(b, offset_and_m);
    b.insert(b.end(), {0, 0, 0x12, 0x34});
    return b;
}

Bytes tcp(uint16_t sport, uint16_t dport, uint8_t flags, const Bytes& options = {}, const Bytes& payload = {},
          std::optional<uint8_t> data_offset = std::nullopt) {
    Bytes b;
    put16(b, sport);
    put16(b, dport);
    b.insert(b.end(), {0, 0, 0x10, 0x00, 0, 0, 0, 0});  // seq, ack
    b.push_back(static_cast<uint8_t>((data_offset ? *data_offset : (20 + options.size()) / 4) << 4));
    b.push_back(flags);
    put16(b, 65535);
    put16(b, 0);  // checksum (not checked by the parser)
    put16(b, 0);
    b.insert(b.end(), options.begin(), options.end());
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload, std::optional<uint16_t> length = std::nullopt) {
    Bytes b;
    put16(b, sport);
    put16(b, dport);
    put16(b, length ? *length : static_cast<uint16_t>(8 + payload.size()));
    put16(b, 0);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

const Bytes kTcpOptions = {0x02, 0x04, 0x05, 0xb4,  // MSS 1460
                           0x01,                    // NOP
                           0x03, 0x03, 0x07,        // window scale 7
                           0x04, 0x02,              // SACK permitted
                           0x01, 0x01};             // NOP NOP
const Bytes kIpRouterAlert = {0x94, 0x04, 0x00, 0x00};

// IPv4 TCP: IHL 6, TCP data offset 8, 5 bytes of payload.
Bytes ipv4_tcp_frame() {
    Ipv4Fields f;
    f.options = kIpRouterAlert;
    f.ttl = 63;
    return cat({ether(kEtherTypeIpv4),
                ipv4(f, tcp(40000, 80, kTcpSyn | kTcpAck, kTcpOptions, {'h', 'e', 'l', 'l', 'o'}))});
}

// IPv6: hop-by-hop (8 bytes) -> destination options (16 bytes) -> TCP with 4 bytes payload.
Bytes ipv6_ext_tcp_frame() {
    return cat({ether(kEtherTypeIpv6),
                ipv6(0, cat({ipv6_options(60, 0), ipv6_options(6, 1), tcp(40001, 443, kTcpAck | kTcpPsh, {}, {1, 2, 3, 4})}))});
}

// 802.1Q VLAN 100, IPv4 UDP with 3 bytes payload.
Bytes vlan_udp_frame() {
    return cat({ether(kEtherTypeIpv4, 100), ipv4(with_proto(17), udp(5353, 53, {7, 8, 9}))});
}

ParsedPacket parse(const Bytes& frame) { return parse_packet(frame.data(), static_cast<uint32_t>(frame.size())); }

IpAddress addr(const char* text) {
    auto a = IpAddress::parse(text);
    if (!a) throw std::invalid_argument(text);
    return *a;
}

std::string_view drop_name(DropReason r) { return kDropReasonNames[static_cast<size_t>(r)]; }

::testing::AssertionResult dropped_for(const ParsedPacket& p, DropReason want) {
    if (p.status != ParseStatus::dropped) {
        return ::testing::AssertionFailure() << "not dropped (status " << int(p.status) << "), expected drop "
                                             << drop_name(want);
    }
    if (p.drop != want) {
        return ::testing::AssertionFailure() << "dropped as " << drop_name(p.drop) << ", expected "
                                             << drop_name(want);
    }
    return ::testing::AssertionSuccess();
}

#define EXPECT_DROPPED(parsed, reason) EXPECT_TRUE(dropped_for((parsed), (reason)))

// A copy of the first `len` bytes of a frame that ends exactly where an inaccessible page
// begins: a read past data[len) faults, whatever the build.
class GuardedBuffer {
public:
    GuardedBuffer() {
        page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        void* m = mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) throw std::runtime_error("mmap");
        base_ = static_cast<uint8_t*>(m);
        if (mprotect(base_ + page_, page_, PROT_NONE) != 0) throw std::runtime_error("mprotect");
    }
    ~GuardedBuffer() { munmap(base_, 2 * page_); }
    GuardedBuffer(const GuardedBuffer&) = delete;
    GuardedBuffer& operator=(const GuardedBuffer&) = delete;

    const uint8_t* load(const Bytes& frame, size_t len) {
        if (len > page_) throw std::invalid_argument("frame longer than a page");
        uint8_t* data = base_ + page_ - len;
        std::memcpy(data, frame.data(), len);
        return data;
    }

private:
    size_t page_ = 0;
    uint8_t* base_ = nullptr;
};

// ---- well-formed frames -----------------------------------------------------------------

TEST(PacketParserTest, Ipv4TcpWithOptions) {
    const Bytes frame = ipv4_tcp_frame();
    ASSERT_EQ(frame.size(), 14u + 24 + 32 + 5);
    ParsedPacket p = parse(frame);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_FALSE(p.ipv6);
    EXPECT_EQ(p.ether_type, kEtherTypeIpv4);
    EXPECT_EQ(p.l3_offset, 14);
    EXPECT_EQ(p.l4_offset, 14 + 24);
    EXPECT_EQ(p.l4_length, 32 + 5);
    EXPECT_EQ(p.payload_offset, 14 + 24 + 32);
    EXPECT_EQ(frame[p.payload_offset], 'h');
    EXPECT_EQ(p.tcp_flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(p.ttl, 63);
    EXPECT_EQ(p.key.src, addr("192.0.2.10"));
    EXPECT_EQ(p.key.dst, addr("198.51.100.1"));
    EXPECT_EQ(p.key.src_port, 40000);
    EXPECT_EQ(p.key.dst_port, 80);
    EXPECT_EQ(p.key.proto, 6);
}

TEST(PacketParserTest, VlanTaggedFrame) {
    const Bytes frame = vlan_udp_frame();
    ParsedPacket p = parse(frame);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_EQ(p.ether_type, kEtherTypeIpv4);  // the type behind the tag
    EXPECT_EQ(p.l3_offset, 18);
    EXPECT_EQ(p.l4_offset, 18 + 20);
    EXPECT_EQ(p.l4_length, 8 + 3);
    EXPECT_EQ(p.payload_offset, 18 + 20 + 8);
    EXPECT_EQ(frame[p.payload_offset], 7);
    EXPECT_EQ(p.key.src, addr("192.0.2.10"));
    EXPECT_EQ(p.key.dst, addr("198.51.100.1"));
    EXPECT_EQ(p.key.src_port, 5353);
    EXPECT_EQ(p.key.dst_port, 53);
    EXPECT_EQ(p.key.proto, 17);
    EXPECT_EQ(p.tcp_flags, 0);
}

TEST(PacketParserTest, VlanTaggedIpv6) {
    const Bytes frame = cat({ether(kEtherTypeIpv6, 0x2005), ipv6(6, tcp(1, 2, kTcpSyn))});
    ParsedPacket p = parse(frame);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_TRUE(p.ipv6);
    EXPECT_EQ(p.ether_type, kEtherTypeIpv6);
    EXPECT_EQ(p.l3_offset, 18);
    EXPECT_EQ(p.l4_offset, 18 + 40);
    EXPECT_EQ(p.key.src_port, 1);
    EXPECT_EQ(p.key.dst_port, 2);
}

TEST(PacketParserTest, Ipv6ExtensionHeadersWalkedToTcp) {
    const Bytes frame = ipv6_ext_tcp_frame();
    ParsedPacket p = parse(frame);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_TRUE(p.ipv6);
    EXPECT_EQ(p.ether_type, kEtherTypeIpv6);
    EXPECT_EQ(p.l3_offset, 14);
    EXPECT_EQ(p.l4_offset, 14 + 40 + 8 + 16);
    EXPECT_EQ(p.l4_length, 20 + 4);
    EXPECT_EQ(p.payload_offset, 14 + 40 + 8 + 16 + 20);
    EXPECT_EQ(frame[p.payload_offset], 1);
    EXPECT_EQ(p.key.proto, 6);
    EXPECT_EQ(p.key.src, addr("2001:db8:1::10"));
    EXPECT_EQ(p.key.dst, addr("2001:db8:2::1"));
    EXPECT_EQ(p.key.src_port, 40001);
    EXPECT_EQ(p.key.dst_port, 443);
    EXPECT_EQ(p.tcp_flags, kTcpAck | kTcpPsh);
    EXPECT_EQ(p.ttl, 61);
}

TEST(PacketParserTest, Ipv4IcmpEcho) {
    const Bytes echo = {8, 0, 0, 0, 0, 1, 0, 1, 'x'};
    ParsedPacket p = parse(cat({ether(kEtherTypeIpv4), ipv4(with_proto(1), echo)}));
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_EQ(p.key.proto, 1);
    EXPECT_EQ(p.icmp_type, 8);
    EXPECT_EQ(p.icmp_code, 0);
    EXPECT_EQ(p.key.src_port, 0);
    EXPECT_EQ(p.key.dst_port, 0);
    EXPECT_EQ(p.l4_length, 9);
    EXPECT_EQ(p.payload_offset, 14 + 20 + 8);
}

TEST(PacketParserTest, EthernetPaddingAfterTheIpPacketIsIgnored) {
    // A bare SYN is 54 bytes; the minimum Ethernet frame pads it to 60.
    Bytes frame = cat({ether(kEtherTypeIpv4), ipv4({}, tcp(40000, 80, kTcpSyn))});
    ASSERT_EQ(frame.size(), 54u);
    frame.resize(60, 0);
    ParsedPacket p = parse(frame);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_EQ(p.l4_offset, 34);
    EXPECT_EQ(p.l4_length, 20);  // from the IP header, not the frame
    EXPECT_EQ(p.payload_offset, 54);

    Bytes small_udp = cat({ether(kEtherTypeIpv4), ipv4(with_proto(17), udp(1000, 53, {0xaa, 0xbb}))});
    small_udp.resize(60, 0xee);
    p = parse(small_udp);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_EQ(p.l4_length, 10);
    EXPECT_EQ(p.payload_offset, 14 + 20 + 8);

    Bytes v6 = cat({ether(kEtherTypeIpv6), ipv6(17, udp(1000, 53, {1}))});
    v6.resize(v6.size() + 12, 0);
    p = parse(v6);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_EQ(p.l4_length, 9);

    // The padding does not count as L4 bytes: a TCP header longer than the IP packet says
    // is malformed even when the frame's padding would cover it.
    Bytes long_header = cat({ether(kEtherTypeIpv4), ipv4({}, tcp(40000, 80, kTcpSyn, {}, {}, 8))});
    long_header.resize(long_header.size() + 20, 0);
    EXPECT_DROPPED(parse(long_header), DropReason::bad_l4_header);
}

TEST(PacketParserTest, ArpAndOtherEtherTypesAreNotIp) {
    Bytes arp = ether(kEtherTypeArp);
    arp.resize(60, 0);
    ParsedPacket p = parse(arp);
    EXPECT_EQ(p.status, ParseStatus::not_ip);
    EXPECT_EQ(p.ether_type, kEtherTypeArp);

    Bytes tagged_arp = ether(kEtherTypeArp, 100);
    tagged_arp.resize(60, 0);
    p = parse(tagged_arp);
    EXPECT_EQ(p.status, ParseStatus::not_ip);
    EXPECT_EQ(p.ether_type, kEtherTypeArp);

    Bytes lldp = ether(0x88cc);
    lldp.resize(60, 0);
    EXPECT_EQ(parse(lldp).status, ParseStatus::not_ip);
}

TEST(PacketParserTest, InPlaceParseIntoAReusedResultMatchesAFreshOne) {
    // The packet path parses each burst into the same array: nothing of the previous
    // packet may survive into the next one.
    const Bytes frames[] = {
        ipv4_tcp_frame(),
        vlan_udp_frame(),
        ipv6_ext_tcp_frame(),
        cat({ether(kEtherTypeIpv4), ipv4(with_proto(1), Bytes{3, 3, 0, 0, 0, 0, 0, 0})}),
        Bytes(10, 0),  // truncated
        [] {
            Bytes arp = ether(kEtherTypeArp);
            arp.resize(60, 0);
            return arp;
        }(),
        cat({ether(kEtherTypeIpv4), ipv4(with_proto(17), udp(7, 9, {}))}),
    };
    ParsedPacket reused;
    for (int round = 0; round < 2; ++round) {
        for (const Bytes& f : frames) {
            parse_packet(f.data(), static_cast<uint32_t>(f.size()), reused);
            const ParsedPacket fresh = parse(f);
            SCOPED_TRACE(testing::Message() << "frame of " << f.size() << " bytes");
            EXPECT_EQ(reused.status, fresh.status);
            if (fresh.status == ParseStatus::dropped) {
                EXPECT_EQ(reused.drop, fresh.drop);
            }
            EXPECT_EQ(reused.ipv6, fresh.ipv6);
            EXPECT_EQ(reused.ether_type, fresh.ether_type);
            EXPECT_EQ(reused.l3_offset, fresh.l3_offset);
            EXPECT_EQ(reused.l4_offset, fresh.l4_offset);
            EXPECT_EQ(reused.l4_length, fresh.l4_length);
            EXPECT_EQ(reused.payload_offset, fresh.payload_offset);
            EXPECT_EQ(reused.tcp_flags, fresh.tcp_flags);
            EXPECT_EQ(reused.icmp_type, fresh.icmp_type);
            EXPECT_EQ(reused.icmp_code, fresh.icmp_code);
            EXPECT_EQ(reused.ttl, fresh.ttl);
            if (fresh.status == ParseStatus::ok) {
                EXPECT_TRUE(reused.key == fresh.key);
            }
        }
    }
}

// ---- fragments ----------------------------------------------------------------------------

TEST(PacketParserTest, Ipv4FragmentsAreDropped) {
    Ipv4Fields f;
    f.frag = 0x2000;  // MF, offset 0: the first fragment
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(f, tcp(1, 2, kTcpSyn))})), DropReason::fragment);
    f.frag = 0x0005;  // offset 40 bytes, last fragment
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(f, Bytes(20, 0))})), DropReason::fragment);
    f.frag = 0x4000;  // DF alone is not a fragment
    EXPECT_EQ(parse(cat({ether(kEtherTypeIpv4), ipv4(f, tcp(1, 2, kTcpSyn))})).status, ParseStatus::ok);
}

TEST(PacketParserTest, Ipv6FragmentHeaderIsDropped) {
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(44, cat({ipv6_fragment(6, 0x0001), tcp(1, 2, kTcpSyn)}))})),
                   DropReason::fragment);
    // Behind a hop-by-hop header too.
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6),
                              ipv6(0, cat({ipv6_options(44, 0), ipv6_fragment(17, 0x00a8), Bytes(16, 0)}))})),
                   DropReason::fragment);
}

// ---- malformed headers --------------------------------------------------------------------

TEST(PacketParserTest, BadIpVersion) {
    Ipv4Fields f;
    f.version = 6;
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(f, tcp(1, 2, kTcpSyn))})), DropReason::bad_ip_version);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(6, tcp(1, 2, kTcpSyn), std::nullopt, 4)})),
                   DropReason::bad_ip_version);
}

TEST(PacketParserTest, BadIpv4HeaderLength) {
    for (uint8_t ihl : {0, 1, 4}) {
        Ipv4Fields f;
        f.ihl = ihl;
        EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(f, tcp(1, 2, kTcpSyn))})),
                       DropReason::bad_ip_header_length)
            << "IHL " << int(ihl);
    }
    // IHL 15 (60 bytes) in a 54-byte frame: the header runs past the frame.
    Ipv4Fields f;
    f.ihl = 15;
    f.total_length = 40;
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(f, tcp(1, 2, kTcpSyn))})),
                   DropReason::bad_ip_header_length);
}

TEST(PacketParserTest, BadIpTotalLength) {
    Ipv4Fields f;
    f.total_length = 41;  // one byte beyond the frame
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(f, tcp(1, 2, kTcpSyn))})),
                   DropReason::bad_ip_total_length);
    f.total_length = 19;  // below the header
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(f, tcp(1, 2, kTcpSyn))})),
                   DropReason::bad_ip_total_length);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(6, tcp(1, 2, kTcpSyn), 21)})),
                   DropReason::bad_ip_total_length);
}

TEST(PacketParserTest, BadTcpDataOffset) {
    for (uint8_t offset : {0, 4}) {
        EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4({}, tcp(1, 2, kTcpSyn, {}, {}, offset))})),
                       DropReason::bad_l4_header)
            << "data offset " << int(offset);
        EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(6, tcp(1, 2, kTcpSyn, {}, {}, offset))})),
                       DropReason::bad_l4_header)
            << "data offset " << int(offset);
    }
    // Data offset 6 (24 bytes) with only 20 TCP bytes in the packet.
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4({}, tcp(1, 2, kTcpSyn, {}, {}, 6))})),
                   DropReason::bad_l4_header);
}

TEST(PacketParserTest, BadUdpLength) {
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(with_proto(17), udp(1, 2, {1, 2, 3}, 12))})),
                   DropReason::bad_l4_header);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(17, udp(1, 2, {1, 2, 3}, 12))})),
                   DropReason::bad_l4_header);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(with_proto(17), udp(1, 2, {1, 2, 3}, 7))})),
                   DropReason::bad_l4_header);
    // Exactly the bytes available is fine.
    EXPECT_EQ(parse(cat({ether(kEtherTypeIpv4), ipv4(with_proto(17), udp(1, 2, {1, 2, 3}, 11))})).status,
              ParseStatus::ok);
}

TEST(PacketParserTest, L4HeaderShorterThanItsMinimum) {
    // The IP lengths agree with the frame, but the L4 header itself is cut.
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4({}, Bytes(19, 0))})), DropReason::truncated);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(with_proto(17), Bytes(7, 0))})), DropReason::truncated);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv4), ipv4(with_proto(1), Bytes(7, 0))})), DropReason::truncated);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(6, Bytes(19, 0))})), DropReason::truncated);
}

TEST(PacketParserTest, BadIpv6ExtensionChain) {
    // Hop-by-hop says 16 bytes, the IPv6 payload holds 8.
    Bytes half = ipv6_options(6, 1);
    half.resize(8);
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(0, half)})), DropReason::bad_ipv6_extension);
    // Fewer than 8 bytes left for an extension header.
    EXPECT_DROPPED(parse(cat({ether(kEtherTypeIpv6), ipv6(60, Bytes(4, 0))})), DropReason::bad_ipv6_extension);

    // The IPv6 header announces an extension header but the packet ends there (or one
    // byte later): the length byte of the header is not there to be read.
    GuardedBuffer guard;
    for (size_t extra : {0, 1}) {
        const Bytes frame = cat({ether(kEtherTypeIpv6), ipv6(0, Bytes(extra, 60))});
        EXPECT_DROPPED(parse_packet(guard.load(frame, frame.size()), static_cast<uint32_t>(frame.size())),
                       DropReason::bad_ipv6_extension)
            << extra << " bytes of payload";
    }

    // Eight extension headers are walked; a ninth is too many.
    auto chain = [](int n) {
        Bytes b;
        for (int i = 0; i < n; ++i) b = cat({b, ipv6_options(i + 1 < n ? 60 : 6, 0)});
        return cat({ether(kEtherTypeIpv6), ipv6(0, cat({b, tcp(1, 2, kTcpSyn)}))});
    };
    ParsedPacket eight = parse(chain(8));
    ASSERT_EQ(eight.status, ParseStatus::ok);
    EXPECT_EQ(eight.l4_offset, 14 + 40 + 8 * 8);
    EXPECT_EQ(eight.key.dst_port, 2);
    EXPECT_DROPPED(parse(chain(9)), DropReason::bad_ipv6_extension);
}

// ---- truncation ---------------------------------------------------------------------------

// What a frame cut to `len` bytes must be dropped for, given its L3 offset, whether it is
// IPv6 and its IPv4 header length.
DropReason expected_cut_reason(uint32_t len, uint32_t l3, bool is_v6, uint32_t ihl) {
    if (is_v6) return len < l3 + 40 ? DropReason::truncated : DropReason::bad_ip_total_length;
    if (len < l3 + 20) return DropReason::truncated;
    if (len < l3 + ihl) return DropReason::bad_ip_header_length;
    return DropReason::bad_ip_total_length;
}

void check_every_cut(const Bytes& frame, uint32_t l3, bool is_v6, uint32_t ihl) {
    GuardedBuffer guard;
    ASSERT_EQ(parse_packet(guard.load(frame, frame.size()), static_cast<uint32_t>(frame.size())).status,
              ParseStatus::ok);
    for (uint32_t len = 0; len < frame.size(); ++len) {
        ParsedPacket p = parse_packet(guard.load(frame, len), len);
        ASSERT_TRUE(dropped_for(p, expected_cut_reason(len, l3, is_v6, ihl)))
            << "cut at " << len << " of " << frame.size();
    }
}

TEST(PacketParserTest, EveryTruncationOfIpv4TcpIsDropped) { check_every_cut(ipv4_tcp_frame(), 14, false, 24); }

TEST(PacketParserTest, EveryTruncationOfVlanUdpIsDropped) { check_every_cut(vlan_udp_frame(), 18, false, 20); }

TEST(PacketParserTest, EveryTruncationOfIpv6ExtensionTcpIsDropped) {
    check_every_cut(ipv6_ext_tcp_frame(), 14, true, 0);
}

TEST(PacketParserTest, GuardPageCatchesOverreads) {
    // The guard itself: the byte after a loaded frame is not readable.
    GuardedBuffer guard;
    const Bytes frame = {1, 2, 3};
    EXPECT_DEATH(
        {
            const volatile uint8_t* p = guard.load(frame, frame.size());
            (void)p[frame.size()];
        },
        "");
}

// ---- the quoted packet of an ICMP error ---------------------------------------------------

TEST(PacketParserTest, InnerIpv4CutAfterEightL4Bytes) {
    // What an ICMP error quotes: the IP header of a 60-byte packet and 8 bytes of its TCP.
    Bytes quoted = ipv4({}, tcp(40000, 80, kTcpSyn, {}, Bytes(20, 0)));
    ASSERT_EQ(quoted.size(), 60u);
    quoted.resize(28);
    GuardedBuffer guard;
    ParsedPacket p = parse_inner_ip(guard.load(quoted, quoted.size()), 28, false);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_FALSE(p.ipv6);
    EXPECT_EQ(p.l3_offset, 0);
    EXPECT_EQ(p.l4_offset, 20);
    EXPECT_EQ(p.key.proto, 6);
    EXPECT_EQ(p.key.src, addr("192.0.2.10"));
    EXPECT_EQ(p.key.dst, addr("198.51.100.1"));
    EXPECT_EQ(p.key.src_port, 40000);
    EXPECT_EQ(p.key.dst_port, 80);

    // UDP quoted likewise.
    Bytes quoted_udp = ipv4(with_proto(17), udp(5000, 53, Bytes(100, 0)));
    quoted_udp.resize(28);
    p = parse_inner_ip(guard.load(quoted_udp, 28), 28, false);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_EQ(p.key.src_port, 5000);
    EXPECT_EQ(p.key.dst_port, 53);

    // Seven L4 bytes are not enough, and no cut below that reads past the end.
    for (uint32_t len = 0; len < 28; ++len) {
        ParsedPacket cut = parse_inner_ip(guard.load(quoted, len), len, false);
        EXPECT_EQ(cut.status, ParseStatus::dropped) << "cut at " << len;
    }
    EXPECT_DROPPED(parse_inner_ip(quoted.data(), 27, false), DropReason::truncated);
}

TEST(PacketParserTest, InnerIpv6CutAfterEightL4Bytes) {
    Bytes quoted = ipv6(6, tcp(40001, 443, kTcpAck, {}, Bytes(100, 0)));
    quoted.resize(48);
    GuardedBuffer guard;
    ParsedPacket p = parse_inner_ip(guard.load(quoted, quoted.size()), 48, true);
    ASSERT_EQ(p.status, ParseStatus::ok);
    EXPECT_TRUE(p.ipv6);
    EXPECT_EQ(p.l4_offset, 40);
    EXPECT_EQ(p.key.src, addr("2001:db8:1::10"));
    EXPECT_EQ(p.key.dst, addr("2001:db8:2::1"));
    EXPECT_EQ(p.key.src_port, 40001);
    EXPECT_EQ(p.key.dst_port, 443);
    for (uint32_t len = 0; len < 48; ++len) {
        ParsedPacket cut = parse_inner_ip(guard.load(quoted, len), len, true);
        EXPECT_EQ(cut.status, ParseStatus::dropped) << "cut at " << len;
    }
    EXPECT_DROPPED(parse_inner_ip(quoted.data(), 47, true), DropReason::truncated);
}

}  // namespace
}  // namespace dplb::core
