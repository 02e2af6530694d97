// libFuzzer target: a whole engine conversation. A 2-worker engine of the harness's
// two-port topology (IPv4 and IPv6 services, TOA, PROXY protocol, UDP) receives frames on
// both ports through SyncDriver, the harness's driver, with config changes, neighbour
// changes, session resets and clock moves between them, all decoded from the input:
//
//   input  := op*            each op: one byte, its low 3 bits the kind, then its operands
//   0..2   raw frame         port (op bit 3), length (1 byte, + 256 * op bit 4), bytes
//   3      client segment    service (1), client port (1), flags (1), seq (4), ack (4),
//                            payload length (1, % 48): client -> VIP on port0
//   4      real segment      worker+family (1), session or local port (1), flags (1), seq,
//                            ack, payload length: real -> local address on port1, toward
//                            that worker's session of that index when it is live
//   5      clock             advance (2 bytes, x 10 ms; op bit 3: x 1 s instead)
//   6      config            variant (2 bytes): the services' modes, reals, removals
//   7      neighbour/reset   operand (1): a next hop's MAC changed or removed, or a
//                            session reset
// Short operands read as zeros. Invariants are checked after every op (abort: a crash).
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/engine.hpp"
#include "core/packet.hpp"
#include "core/sync_driver.hpp"

namespace {

using namespace dplb::core;

void check(bool ok) {
    if (!ok) std::abort();
}

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

constexpr uint16_t kLocalPortFirst = 1024;
constexpr uint16_t kLocalPorts = 64;  // few, so that a guessed local port hits a session
constexpr uint32_t kWorkers = 2;
constexpr uint32_t kSessions = 48;  // small, so that the table fills

class Reader {
public:
    Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
    bool done() const { return p_ >= end_; }
    uint8_t u8() { return p_ < end_ ? *p_++ : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
    uint32_t u32() { return uint32_t(u16()) << 16 | u16(); }
    // Up to `n` bytes (fewer at the end of the input).
    const uint8_t* bytes(size_t n, size_t& got) {
        got = std::min<size_t>(n, static_cast<size_t>(end_ - p_));
        const uint8_t* at = p_;
        p_ += got;
        return at;
    }

private:
    const uint8_t* p_;
    const uint8_t* end_;
};

EngineConfig base_config() {
    EngineConfig c;
    c.workers = kWorkers;
    c.sessions_per_worker = kSessions;
    c.local_port_first = kLocalPortFirst;
    c.local_port_last = kLocalPortFirst + kLocalPorts - 1;
    c.local_port_real_time_wait_s = 1;
    c.max_reals = 64;
    c.max_services = 32;
    c.control_rest_rate_pps = 100;
    c.control_rest_burst = 10;
    PortConfig client_side, real_side;
    client_side.name = "port0";
    client_side.mac = {2, 0, 0, 0, 0, 1};
    client_side.addresses = {*Prefix::parse("10.0.1.1/24"), *Prefix::parse("2001:db8:1::1/64")};
    client_side.gateways = {ip("10.0.1.254"), ip("2001:db8:1::fe")};
    real_side.name = "port1";
    real_side.mac = {2, 0, 0, 0, 0, 2};
    real_side.addresses = {*Prefix::parse("10.0.2.1/24"), *Prefix::parse("2001:db8:2::1/64")};
    for (uint32_t w = 0; w < kWorkers; ++w) {
        real_side.local_addresses.push_back({ip(("10.0.2." + std::to_string(101 + w)).c_str()),
                                             ip(("2001:db8:2::" + std::to_string(101 + w)).c_str())});
    }
    c.ports = {client_side, real_side};
    return c;
}

// The services, varied by the bits of `v` (0: the plain set).
std::vector<ServiceConfig> services(uint16_t v) {
    auto service = [](const char* vip, uint16_t port, uint8_t proto, std::vector<RealConfig> reals) {
        ServiceConfig s;
        s.vip = ip(vip);
        s.port = port;
        s.proto = proto;
        s.scheduler = SchedulerKind::rr;
        s.maglev_table_size = 251;
        s.reals = std::move(reals);
        return s;
    };
    const RealConfig r1{ip("10.0.2.11"), 8080, 100}, r2{ip("10.0.2.12"), 8080, 50};
    const RealConfig r6{ip("2001:db8:2::11"), 8080, 100};
    std::vector<ServiceConfig> out;
    out.push_back(service("10.0.100.10", 80, 6, {r1}));
    out.push_back(service("10.0.100.10", 81, 6, {r1, r2}));
    out.back().client_address = ClientAddressMode::toa;
    out.push_back(service("10.0.100.10", 82, 6, {r1}));
    out.back().client_address = (v & 0x1) ? ClientAddressMode::proxy_v1 : ClientAddressMode::proxy_v2;
    out.back().proxy_from_client = (v & 0x2) ? ProxyFromClient::trust : ProxyFromClient::refuse;
    out.push_back(service("10.0.100.10", 53, 17, {r1, r2}));
    out.push_back(service("2001:db8:100::10", 80, 6, {r6}));
    out.back().client_address = (v & 0x4) ? ClientAddressMode::toa : ClientAddressMode::none;
    static constexpr SchedulerKind kinds[] = {SchedulerKind::rr, SchedulerKind::wrr, SchedulerKind::wlc,
                                              SchedulerKind::maglev};
    for (size_t i = 0; i < out.size(); ++i) {
        out[i].scheduler = kinds[(v >> (3 + (i % 3))) & 3];
        out[i].connection_log = (v >> 8) & 1;
        out[i].timeouts.seconds = {uint32_t(1 + ((v >> 9) & 7)), 30, 5, 3, 2, 1};
    }
    if (v & 0x400) out[1].reals[0].weight = 0;          // quiesced
    if (v & 0x800) out[0].reals.push_back(r2);          // a real added
    if (v & 0x1000) out.erase(out.begin() + 3);         // the UDP service removed
    if (v & 0x2000) out.erase(out.begin());             // the first service removed
    return out;
}

// An Ethernet + IPv4/IPv6 + TCP/UDP frame with `payload` bytes of payload (0x41...).
std::vector<uint8_t> segment(bool v6, const uint8_t* dst_mac, const uint8_t* src_mac, const IpAddress& src,
                             const IpAddress& dst, uint8_t proto, uint16_t sport, uint16_t dport, uint8_t flags,
                             uint32_t seq, uint32_t ack, uint32_t payload) {
    const uint32_t l3 = v6 ? 40 : 20, l4 = proto == 6 ? 20 : 8;
    std::vector<uint8_t> f(14 + l3 + l4 + payload, 0x41);
    std::memcpy(f.data(), dst_mac, 6);
    std::memcpy(f.data() + 6, src_mac, 6);
    uint8_t* h = f.data() + 14;
    if (v6) {
        store_be16(f.data() + 12, 0x86dd);
        std::memset(h, 0, 40);
        h[0] = 0x60;
        store_be16(h + 4, static_cast<uint16_t>(l4 + payload));
        h[6] = proto;
        h[7] = 64;
        std::memcpy(h + 8, src.v6(), 16);
        std::memcpy(h + 24, dst.v6(), 16);
    } else {
        store_be16(f.data() + 12, 0x0800);
        std::memset(h, 0, 20);
        h[0] = 0x45;
        store_be16(h + 2, static_cast<uint16_t>(20 + l4 + payload));
        h[8] = 64;
        h[9] = proto;
        std::memcpy(h + 12, src.v6() + 12, 4);
        std::memcpy(h + 16, dst.v6() + 12, 4);
    }
    uint8_t* t = h + l3;
    std::memset(t, 0, l4);
    store_be16(t, sport);
    store_be16(t + 2, dport);
    if (proto == 6) {
        store_be32(t + 4, seq);
        store_be32(t + 8, ack);
        t[12] = 5 << 4;
        t[13] = flags;
        store_be16(t + 14, 65535);
    } else {
        store_be16(t + 4, static_cast<uint16_t>(8 + payload));
    }
    return f;
}

const uint8_t kPort0Mac[6] = {2, 0, 0, 0, 0, 1}, kPort1Mac[6] = {2, 0, 0, 0, 0, 2};
const uint8_t kGatewayMac[6] = {0x0a, 0, 0, 0, 1, 0xfe}, kRealMac[6] = {0x0a, 0, 0, 0, 2, 0x11};

struct Target {
    const char* vip;
    uint16_t port;
    uint8_t proto;
};
constexpr Target kTargets[] = {{"10.0.100.10", 80, 6}, {"10.0.100.10", 81, 6}, {"10.0.100.10", 82, 6},
                               {"10.0.100.10", 53, 17}, {"2001:db8:100::10", 80, 6}, {"10.0.100.10", 99, 6}};

std::vector<uint8_t> client_segment(Reader& in) {
    const Target& t = kTargets[in.u8() % std::size(kTargets)];
    const bool v6 = t.vip[0] == '2';
    const uint16_t sport = static_cast<uint16_t>(40000 + in.u8());
    const uint8_t flags = in.u8();
    const uint32_t seq = in.u32(), ack = in.u32();
    const uint32_t payload = in.u8() % 48;
    const IpAddress client = v6 ? ip("2001:db8:7::7") : ip("198.51.100.7");
    return segment(v6, kPort0Mac, kGatewayMac, client, ip(t.vip), t.proto, sport, t.port, flags, seq, ack, payload);
}

// A segment from the real side: toward a live session's local address and port when the
// operand names one (so the fuzzer reaches the answers of its own connections), else
// toward a guessed local port.
std::vector<uint8_t> real_segment(Reader& in, Engine& engine) {
    const uint8_t which = in.u8();
    const uint8_t pick = in.u8();
    const uint8_t flags = in.u8();
    const uint32_t seq = in.u32(), ack = in.u32();
    const uint32_t payload = in.u8() % 48;
    const uint32_t w = which & 1;
    Worker& worker = engine.worker(w);
    const uint32_t index = pick % worker.sessions().capacity();
    const Session& s = worker.sessions().sessions()[index];
    SessionRef ref = worker.sessions().lookup(s.outbound, hash_key(s.outbound));
    if (!(which & 0x10) && ref && ref.index == index && ref.direction == Direction::outbound) {
        const bool v6 = !s.outbound.src.is_v4();
        return segment(v6, kPort1Mac, kRealMac, s.outbound.src, s.outbound.dst, s.outbound.proto, s.outbound.src_port,
                       s.outbound.dst_port, flags, seq, ack, payload);
    }
    const bool v6 = which & 2;
    const bool udp = (which & 4) && !v6;
    const IpAddress laddr = v6 ? ip(("2001:db8:2::" + std::to_string(101 + w)).c_str())
                               : ip(("10.0.2." + std::to_string(101 + w)).c_str());
    const IpAddress real = v6 ? ip("2001:db8:2::11") : ((which & 8) ? ip("10.0.2.12") : ip("10.0.2.11"));
    const uint16_t lport = static_cast<uint16_t>(kLocalPortFirst + pick % kLocalPorts);
    return segment(v6, kPort1Mac, kRealMac, real, laddr, udp ? 17 : 6, 8080, lport, flags, seq, ack, payload);
}

void check_engine(Engine& engine) {
    for (uint32_t w = 0; w < engine.worker_count(); ++w) {
        const Worker& worker = engine.worker(w);
        check(worker.sessions().size() <= worker.sessions().capacity());
        LogRecord r;
        while (engine.worker(w).take_log_record(r)) {
        }
        NeighbourRequest n;
        while (engine.worker(w).take_neighbour_request(n)) {
        }
    }
}

// One engine for the whole run: building one per input (its rings and tables, a few MB)
// cost 4 ms, 250 inputs a second. Each input starts from the base services and
// neighbours, two minutes after the last one: every session of the one before has expired
// (checked: a session that outlives every timeout is a leak), every port hold ended.
// What carries over (round-robin cursors, counters, the control bucket) picks among
// equivalent paths only.
struct Fixture {
    Engine engine{base_config()};
    SyncDriver driver{engine};
    uint64_t now_ns = 1'000'000'000;

    void reset() {
        engine.apply_services(services(0));
        const MacAddress gateway{0x0a, 0, 0, 0, 1, 0xfe}, real_mac{0x0a, 0, 0, 0, 2, 0x11};
        engine.neighbours().set(0, ip("10.0.1.254"), gateway);
        engine.neighbours().set(0, ip("2001:db8:1::fe"), gateway);
        engine.neighbours().set(1, ip("10.0.2.11"), real_mac);
        engine.neighbours().set(1, ip("10.0.2.12"), real_mac);
        engine.neighbours().set(1, ip("2001:db8:2::11"), real_mac);
        now_ns += 120'000'000'000ULL;  // past every timeout (at most 30 s) and hold (1 s)
        for (int round = 0; round < 16; ++round) {
            driver.set_clock(now_ns);
            bool behind = false;
            for (uint32_t w = 0; w < engine.worker_count(); ++w) behind |= engine.worker(w).expiry_behind();
            if (!behind) break;
        }
        for (uint32_t w = 0; w < engine.worker_count(); ++w) check(engine.worker(w).sessions().size() == 0);
        check_engine(engine);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 8192) return 0;  // long conversations add time, not paths
    static Fixture* fixture = new Fixture;  // never freed: it lives as long as the run
    fixture->reset();
    Engine& engine = fixture->engine;
    SyncDriver& driver = fixture->driver;
    uint64_t& now_ns = fixture->now_ns;
    Reader in(data, size);
    while (!in.done()) {
        const uint8_t op = in.u8();
        std::vector<uint8_t> frame;
        uint8_t port = 0;
        switch (op & 7) {
            case 0:
            case 1:
            case 2: {
                port = (op >> 3) & 1;
                size_t want = in.u8() + ((op & 0x10) ? 256 : 0), got = 0;
                const uint8_t* bytes = in.bytes(want, got);
                frame.assign(bytes, bytes + got);
                break;
            }
            case 3: frame = client_segment(in); break;
            case 4:
                frame = real_segment(in, engine);
                port = 1;
                break;
            case 5: {
                const uint64_t step = (op & 8) ? 1'000'000'000ULL : 10'000'000ULL;
                now_ns += in.u16() * step;
                driver.set_clock(now_ns);
                break;
            }
            case 6: engine.apply_services(services(in.u16())); break;
            case 7: {
                const uint8_t x = in.u8();
                const IpAddress hop = (x & 1) ? ip("10.0.2.11") : ip("10.0.1.254");
                const uint8_t hop_port = (x & 1) ? 1 : 0;
                if (x & 2) {
                    engine.neighbours().remove(hop_port, hop);
                } else if (x & 4) {
                    engine.neighbours().set(hop_port, hop, MacAddress{0x0a, 0, 0, 0, 9, x});
                } else {
                    FlowKey k;
                    k.src = ip("198.51.100.7");
                    k.dst = ip("10.0.100.10");
                    k.src_port = static_cast<uint16_t>(40000 + in.u8());
                    k.dst_port = 80;
                    k.proto = 6;
                    engine.reset_session(k);
                }
                break;
            }
        }
        if (!frame.empty()) {
            DriverResult r = driver.receive(frame.data(), static_cast<uint32_t>(frame.size()), port, std::nullopt);
            check(r.workers.size() <= 2);
            for (const auto& [out_port, out] : r.sent) {
                check(out_port < 2);
                check(out.size() >= 14 && out.size() <= frame.size() + SyncDriver::kHeadroom);
            }
        }
        check_engine(engine);
    }
    return 0;
}
