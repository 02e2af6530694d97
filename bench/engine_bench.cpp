// Engine benchmark: new sessions per second and nanoseconds per packet on the
// established-flow path of one worker, in bursts of 32, straight on cpp/core (no DPDK).
// Prints a table and writes the figures as JSON (`--json FILE`).
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/engine.hpp"
#include "core/packet.hpp"

using namespace dplb::core;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kFrameSize = 64;

constexpr uint32_t kPortsPerLaddr = 64512;

struct Options {
    uint32_t sessions = 1'000'000;
    uint32_t passes = 5;
    std::string json;
};

IpAddress v4(uint32_t host_order) {
    uint8_t b[4] = {uint8_t(host_order >> 24), uint8_t(host_order >> 16), uint8_t(host_order >> 8),
                    uint8_t(host_order)};
    return IpAddress::from_v4(b);
}

// A 64-byte Ethernet/IPv4/TCP frame from client i to the VIP (checksums are not checked
// by the engine, so they are left at zero).
void build_frame(uint8_t* f, uint32_t i, uint8_t tcp_flags) {
    std::memset(f, 0, kFrameSize);
    const uint8_t dst_mac[6] = {2, 0, 0, 0, 0, 1}, src_mac[6] = {0x0a, 0, 0, 0, 1, 0xfe};
    std::memcpy(f, dst_mac, 6);
    std::memcpy(f + 6, src_mac, 6);
    store_be16(f + 12, kEtherTypeIpv4);
    uint8_t* ip = f + 14;
    ip[0] = 0x45;
    store_be16(ip + 2, 46);  // 20 IP + 20 TCP + 6 payload: a 64-byte frame with FCS
    ip[8] = 64;
    ip[9] = 6;
    store_be32(ip + 12, (198u << 24 | 18u << 16) + i / 60000);
    store_be32(ip + 16, 10u << 24 | 100u << 8 | 10u);
    uint8_t* tcp = ip + 20;
    store_be16(tcp, static_cast<uint16_t>(1024 + i % 60000));
    store_be16(tcp + 2, 80);
    store_be32(tcp + 4, 1000);
    tcp[12] = 5 << 4;
    tcp[13] = tcp_flags;
    store_be16(tcp + 14, 65535);
}

EngineConfig make_config(uint32_t sessions) {
    EngineConfig c;
    c.workers = 1;
    c.sessions_per_worker = sessions + 1024;
    c.local_port_reuse_delay_s = 0;
    PortConfig client_side, real_side;
    client_side.name = "port0";
    client_side.mac = {2, 0, 0, 0, 0, 1};
    client_side.addresses = {*Prefix::parse("10.0.1.1/24")};
    client_side.gateways = {*IpAddress::parse("10.0.1.254")};
    real_side.name = "port1";
    real_side.mac = {2, 0, 0, 0, 0, 2};
    real_side.addresses = {*Prefix::parse("10.0.2.1/24"), *Prefix::parse("10.1.0.1/16")};
    real_side.local_addresses.emplace_back();
    for (uint32_t i = 0; i <= sessions / kPortsPerLaddr; ++i) {
        real_side.local_addresses[0].push_back(v4(10u << 24 | 1u << 16 | (i + 10)));
    }
    c.ports = {client_side, real_side};
    ServiceConfig svc;
    svc.vip = *IpAddress::parse("10.0.100.10");
    svc.port = 80;
    svc.proto = 6;
    svc.scheduler = SchedulerKind::rr;
    for (uint32_t r = 0; r < 4; ++r) svc.reals.push_back({v4(10u << 24 | 2u << 8 | (11 + r)), 8080, 100});
    c.services = {svc};
    return c;
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Processes `count` frames from `pool` in bursts, each burst copied into a work buffer
// first (as a NIC writes fresh mbufs). Returns seconds; `copy_only` skips the engine.
double run_pool(Worker& w, const std::vector<uint8_t>& pool, uint32_t count, bool copy_only, uint64_t& sent) {
    alignas(64) uint8_t work[kBurst][kFrameSize];
    PacketView views[kBurst];
    PacketView* ptrs[kBurst];
    Action actions[kBurst];
    for (uint32_t i = 0; i < kBurst; ++i) ptrs[i] = &views[i];
    auto t0 = Clock::now();
    for (uint32_t base = 0; base < count; base += kBurst) {
        uint32_t n = std::min(kBurst, count - base);
        for (uint32_t i = 0; i < n; ++i) {
            std::memcpy(work[i], &pool[size_t(base + i) * kFrameSize], kFrameSize);
            views[i] = PacketView{work[i], kFrameSize, 0, 0, 0};
        }
        if (copy_only) {
            sent += work[0][0];
            continue;
        }
        w.process_burst(ptrs, actions, n, false);
        for (uint32_t i = 0; i < n; ++i) sent += actions[i].verdict == Verdict::transmit;
    }
    return seconds_since(t0);
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--sessions" && i + 1 < argc) opt.sessions = static_cast<uint32_t>(std::stoul(argv[++i]));
        else if (a == "--passes" && i + 1 < argc) opt.passes = static_cast<uint32_t>(std::stoul(argv[++i]));
        else if (a == "--json" && i + 1 < argc) opt.json = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--sessions N] [--passes P] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    const uint32_t n = opt.sessions;
    std::printf("dplb engine benchmark: 1 worker, %u sessions, 64-byte frames, bursts of %u\n", n, kBurst);

    auto t_build = Clock::now();
    Engine engine(make_config(n));
    engine.neighbours().set(0, *IpAddress::parse("10.0.1.254"), {0x0a, 0, 0, 0, 1, 0xfe});
    for (uint32_t r = 0; r < 4; ++r) engine.neighbours().set(1, v4(10u << 24 | 2u << 8 | (11 + r)), {0x0a, 0, 0, 0, 2, uint8_t(r)});
    Worker& w = engine.worker(0);
    double build_s = seconds_since(t_build);

    // New sessions: n SYNs from distinct clients.
    std::vector<uint8_t> pool(size_t(n) * kFrameSize);
    for (uint32_t i = 0; i < n; ++i) build_frame(&pool[size_t(i) * kFrameSize], i, kTcpSyn);
    uint64_t sent = 0;
    double syn_s = run_pool(w, pool, n, false, sent);
    if (w.sessions().size() != n) {
        std::fprintf(stderr, "expected %u sessions, have %u (drops: see stats)\n", n, w.sessions().size());
        return 1;
    }
    double syn_copy_s = run_pool(w, pool, n, true, sent);
    double new_per_s = n / (syn_s - syn_copy_s);

    // Established flows: ACKs of every session in a random order, several passes.
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(42));
    for (uint32_t i = 0; i < n; ++i) build_frame(&pool[size_t(i) * kFrameSize], order[i], kTcpAck);
    double est_s = 0, copy_s = 0;
    uint64_t before = w.stats().tx_packets;
    for (uint32_t p = 0; p < opt.passes; ++p) {
        est_s += run_pool(w, pool, n, false, sent);
        copy_s += run_pool(w, pool, n, true, sent);
    }
    uint64_t forwarded = w.stats().tx_packets - before;
    uint64_t packets = uint64_t(n) * opt.passes;
    if (forwarded != packets) {
        std::fprintf(stderr, "only %llu of %llu established packets were forwarded\n",
                     (unsigned long long)forwarded, (unsigned long long)packets);
        return 1;
    }
    double ns_total = est_s * 1e9 / double(packets);
    double ns_copy = copy_s * 1e9 / double(packets);
    double ns_engine = ns_total - ns_copy;
    double bytes_per_session = double(w.sessions().memory_bytes()) / w.sessions().capacity();

    std::printf("\n%-44s %14s\n", "figure", "value");
    std::printf("%-44s %14.0f\n", "new sessions per second (1 worker)", new_per_s);
    std::printf("%-44s %14.1f\n", "established: ns per packet (engine)", ns_engine);
    std::printf("%-44s %14.1f\n", "established: ns per packet (with frame copy)", ns_total);
    std::printf("%-44s %14.2f\n", "established: Mpps (engine)", 1e3 / ns_engine);
    std::printf("%-44s %14zu\n", "session struct bytes", sizeof(Session));
    std::printf("%-44s %14.0f\n", "bytes per session incl. index", bytes_per_session);
    std::printf("%-44s %14.3f\n", "engine build seconds", build_s);
    std::printf("\naims (issue 2): <= 100 ns per packet at 1M sessions: %s; >= 2M new sessions/s: %s\n",
                ns_engine <= 100 ? "met" : "MISSED", new_per_s >= 2e6 ? "met" : "MISSED");

    if (!opt.json.empty()) {
        utsname u{};
        uname(&u);
        char date[32];
        std::time_t now = std::time(nullptr);
        std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
        std::ofstream out(opt.json);
        out << "{\n"
            << "  \"benchmark\": \"engine\",\n"
            << "  \"date\": \"" << date << "\",\n"
            << "  \"machine\": {\"cpu\": \"" << cpu_model() << "\", \"kernel\": \"" << u.release
            << "\", \"compiler\": \"" << __VERSION__ << "\"},\n"
            << "  \"parameters\": {\"workers\": 1, \"sessions\": " << n << ", \"frame_bytes\": " << kFrameSize
            << ", \"burst\": " << kBurst << ", \"passes\": " << opt.passes << "},\n"
            << "  \"figures\": {\n"
            << "    \"new_sessions_per_second\": " << new_per_s << ",\n"
            << "    \"established_ns_per_packet\": " << ns_engine << ",\n"
            << "    \"established_ns_per_packet_with_copy\": " << ns_total << ",\n"
            << "    \"established_mpps\": " << 1e3 / ns_engine << ",\n"
            << "    \"session_struct_bytes\": " << sizeof(Session) << ",\n"
            << "    \"bytes_per_session\": " << bytes_per_session << "\n"
            << "  },\n"
            << "  \"aims\": {\"established_ns_per_packet_max\": 100, \"new_sessions_per_second_min\": 2000000}\n"
            << "}\n";
        std::printf("figures written to %s\n", opt.json.c_str());
    }
    return sent == 0 ? 1 : 0;
}
