// Engine benchmark, straight on cpp/core (no DPDK, one worker, 64-byte TCP frames in
// bursts of 32), for each table size of a sweep (1 thousand to 10 million sessions):
// new sessions per second (SYN in, schedule, local port, insert), nanoseconds per packet
// of established flows in a random order, and the memory a session costs.
// Prints a table and writes the figures as JSON (`--json FILE`).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "bench_engine_setup.hpp"
#include "core/engine.hpp"
#include "core/packet.hpp"

using namespace dplb::core;
using dplb::bench::JsonObject;
using Clock = std::chrono::steady_clock;

using dplb::bench::v4;

namespace {

constexpr uint32_t kFrameSize = 64;
constexpr uint32_t kReals = dplb::bench::kBenchReals;

// Aims of issue 7 on the 2-core test machine.
constexpr double kAimNsAt1M = 60;
constexpr double kAimNewPerSecond = 3e6;
constexpr double kAimGrowth = 2.0;  // ns per packet at 10M over ns per packet at 1k
constexpr double kAimBytesPerSession = 256;

struct Options {
    std::vector<uint32_t> sizes{1'000, 100'000, 1'000'000, 10'000'000};
    uint64_t packets = 20'000'000;  // established packets per size (at least 3 passes)
    uint64_t syns = 1'000'000;      // SYNs per size (fresh tables for the small sizes)
    std::string json;
};

struct SizeResult {
    uint32_t sessions = 0;
    double new_per_second = 0;
    uint64_t syns = 0;
    double ns_per_packet = 0;        // engine only: median pass, frame copy taken out
    double ns_per_packet_copy = 0;   // the same passes with the frame copy
    double ns_per_packet_min = 0;    // fastest round
    uint32_t passes = 0;
    double table_bytes_per_session = 0;  // sessions + index over the capacity
    double rss_bytes = 0;                // the engine's resident memory once full
    double build_s = 0;
};

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
    return dplb::bench::bench_engine_config(sessions, {2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2});
}

std::unique_ptr<Engine> make_engine(uint32_t sessions) {
    auto engine = std::make_unique<Engine>(make_config(sessions));
    engine->neighbours().set(0, *IpAddress::parse("10.0.1.254"), {0x0a, 0, 0, 0, 1, 0xfe});
    for (uint32_t r = 0; r < kReals; ++r) {
        engine->neighbours().set(1, v4(10u << 24 | 2u << 8 | (11 + r)), {0x0a, 0, 0, 0, 2, uint8_t(r)});
    }
    return engine;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Processes `count` frames from `pool` in bursts, each burst copied into a work buffer
// first (as a NIC writes fresh mbufs). Returns seconds; `copy_only` skips the engine, to
// measure what the copy alone costs.
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
            asm volatile("" : : "r"(work) : "memory");
            continue;
        }
        w.process_burst(ptrs, actions, n, false);
        for (uint32_t i = 0; i < n; ++i) sent += actions[i].verdict == Verdict::transmit;
    }
    return seconds_since(t0);
}

// One table size: SYN rate, then established packets in passes over every session.
bool run_size(uint32_t n, const Options& opt, std::vector<uint8_t>& pool, SizeResult& out) {
    out.sessions = n;
    pool.assign(size_t(n) * kFrameSize, 0);
    for (uint32_t i = 0; i < n; ++i) build_frame(&pool[size_t(i) * kFrameSize], i, kTcpSyn);
    uint64_t sent = 0;

    // New sessions: n SYNs from distinct clients into an empty table; small tables are
    // filled several times (fresh engines) so that the figure rests on enough SYNs.
    const uint32_t fills = static_cast<uint32_t>(std::max<uint64_t>(1, (opt.syns + n - 1) / n));
    double syn_s = 0;
    std::unique_ptr<Engine> engine;
    const size_t rss_before = dplb::bench::rss_bytes();
    for (uint32_t f = 0; f < fills; ++f) {
        engine.reset();
        auto t_build = Clock::now();
        engine = make_engine(n);
        out.build_s = seconds_since(t_build);
        Worker& w = engine->worker(0);
        syn_s += run_pool(w, pool, n, false, sent);
        syn_s -= run_pool(w, pool, n, true, sent);
        if (w.sessions().size() != n) {
            std::fprintf(stderr, "%u sessions: only %u were created (drops: see stats)\n", n, w.sessions().size());
            return false;
        }
    }
    out.syns = uint64_t(n) * fills;
    out.new_per_second = double(out.syns) / syn_s;
    Worker& w = engine->worker(0);
    out.rss_bytes = double(dplb::bench::rss_bytes() - rss_before);
    out.table_bytes_per_session = double(w.sessions().memory_bytes()) / w.sessions().capacity();

    // Established flows: ACKs of every session in a random order, several passes.
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(42));
    for (uint32_t i = 0; i < n; ++i) build_frame(&pool[size_t(i) * kFrameSize], order[i], kTcpAck);
    // Timed in rounds of at least a million packets (several passes over a small table),
    // each followed by the same frames copied alone; the figure is the median round.
    const uint32_t per_round = static_cast<uint32_t>(std::max<uint64_t>(1, 1'000'000 / n));
    const uint32_t rounds = static_cast<uint32_t>(std::max<uint64_t>(3, opt.packets / (uint64_t(n) * per_round)));
    out.passes = rounds * per_round;
    std::vector<double> engine_ns, total_ns;
    const uint64_t before = w.stats().tx_packets;
    for (uint32_t r = 0; r < rounds; ++r) {
        double with_engine = 0, copy_only = 0;
        for (uint32_t p = 0; p < per_round; ++p) with_engine += run_pool(w, pool, n, false, sent);
        for (uint32_t p = 0; p < per_round; ++p) copy_only += run_pool(w, pool, n, true, sent);
        const double packets = double(n) * per_round;
        total_ns.push_back(with_engine * 1e9 / packets);
        engine_ns.push_back((with_engine - copy_only) * 1e9 / packets);
    }
    const uint64_t forwarded = w.stats().tx_packets - before;
    if (forwarded != uint64_t(n) * out.passes) {
        std::fprintf(stderr, "%u sessions: only %llu of %llu established packets were forwarded\n", n,
                     (unsigned long long)forwarded, (unsigned long long)(uint64_t(n) * out.passes));
        return false;
    }
    out.ns_per_packet = dplb::bench::median(engine_ns);
    out.ns_per_packet_copy = dplb::bench::median(total_ns);
    out.ns_per_packet_min = *std::min_element(engine_ns.begin(), engine_ns.end());
    return sent != 0;
}

std::vector<uint32_t> parse_sizes(const std::string& text) {
    std::vector<uint32_t> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) out.push_back(static_cast<uint32_t>(std::stoul(item)));
    return out;
}

const SizeResult* find_size(const std::vector<SizeResult>& results, uint32_t n) {
    for (const SizeResult& r : results) {
        if (r.sessions == n) return &r;
    }
    return nullptr;
}

// One aim: its value, whether it is met, and by how much it is missed (a fraction of the
// aim; 0 when met).
JsonObject aim(const std::string& what, const std::string& unit, double limit, bool at_most, double value) {
    const bool met = at_most ? value <= limit : value >= limit;
    const double miss = met ? 0 : std::abs(value - limit) / limit;
    JsonObject a;
    a.str("aim", what).str("unit", unit).num(at_most ? "at_most" : "at_least", limit).num("value", value);
    a.boolean("met", met).num("missed_by_fraction", miss);
    std::printf("  %-58s %-7s (%s %g, measured %.3g%s)\n", what.c_str(), met ? "met" : "MISSED",
                at_most ? "<=" : ">=", limit, value,
                met ? "" : (", missed by " + std::to_string(int(std::lround(miss * 100))) + "%").c_str());
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--sizes" && i + 1 < argc) opt.sizes = parse_sizes(argv[++i]);
        else if (a == "--sessions" && i + 1 < argc) opt.sizes = {static_cast<uint32_t>(std::stoul(argv[++i]))};
        else if (a == "--packets" && i + 1 < argc) opt.packets = std::stoull(argv[++i]);
        else if (a == "--syns" && i + 1 < argc) opt.syns = std::stoull(argv[++i]);
        else if (a == "--json" && i + 1 < argc) opt.json = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--sizes N,N,...] [--sessions N] [--packets P] [--syns S] [--json FILE]\n",
                         argv[0]);
            return 2;
        }
    }
    const std::vector<double> load_start = dplb::bench::load_average();
    std::printf("dplb engine benchmark: 1 worker, 64-byte frames, bursts of %u; load average %.2f\n", kBurst,
                load_start[0]);

    std::vector<SizeResult> results;
    std::vector<uint8_t> pool;
    for (uint32_t n : opt.sizes) {
        SizeResult r;
        if (!run_size(n, opt, pool, r)) return 1;
        results.push_back(r);
        std::printf("  %9u sessions: %7.1f ns/packet (%5.2f Mpps), %5.2f M new sessions/s, %6.0f bytes/session\n",
                    n, r.ns_per_packet, 1e3 / r.ns_per_packet, r.new_per_second / 1e6, r.rss_bytes / n);
        std::fflush(stdout);
    }
    const std::vector<double> load_end = dplb::bench::load_average();

    std::printf("\n%10s %14s %10s %8s %12s %12s %12s\n", "sessions", "new sess/s", "ns/packet", "Mpps",
                "ns w/ copy", "B/session", "B/session");
    std::printf("%10s %14s %10s %8s %12s %12s %12s\n", "", "", "(median)", "", "(median)", "(tables)", "(RSS)");
    for (const SizeResult& r : results) {
        std::printf("%10u %14.0f %10.1f %8.2f %12.1f %12.1f %12.1f\n", r.sessions, r.new_per_second,
                    r.ns_per_packet, 1e3 / r.ns_per_packet, r.ns_per_packet_copy, r.table_bytes_per_session,
                    r.rss_bytes / r.sessions);
    }

    std::printf("\naims (issue 7):\n");
    std::vector<JsonObject> aims;
    const SizeResult* at_1k = find_size(results, 1'000);
    const SizeResult* at_1m = find_size(results, 1'000'000);
    const SizeResult* at_10m = find_size(results, 10'000'000);
    const SizeResult* largest = results.empty() ? nullptr : &results.back();
    if (at_1m) {
        aims.push_back(aim("ns per packet at 1M sessions", "ns", kAimNsAt1M, true, at_1m->ns_per_packet));
        aims.push_back(
            aim("new sessions per second per worker (1M)", "1/s", kAimNewPerSecond, false, at_1m->new_per_second));
    }
    if (at_1k && at_10m) {
        aims.push_back(aim("ns per packet at 10M over 1k sessions", "ratio", kAimGrowth, true,
                           at_10m->ns_per_packet / at_1k->ns_per_packet));
    }
    if (largest) {
        aims.push_back(aim("bytes per session (RSS, " + std::to_string(largest->sessions) + " sessions)", "bytes",
                           kAimBytesPerSession, true, largest->rss_bytes / largest->sessions));
    }

    if (!opt.json.empty()) {
        std::vector<JsonObject> sizes;
        for (const SizeResult& r : results) {
            JsonObject s;
            s.num("sessions", r.sessions)
                .num("new_sessions_per_second", r.new_per_second)
                .num("syns_measured", double(r.syns))
                .num("established_ns_per_packet", r.ns_per_packet)
                .num("established_ns_per_packet_fastest_round", r.ns_per_packet_min)
                .num("established_ns_per_packet_with_copy", r.ns_per_packet_copy)
                .num("established_mpps", 1e3 / r.ns_per_packet)
                .num("passes", r.passes)
                .num("table_bytes_per_session", r.table_bytes_per_session)
                .num("rss_bytes", r.rss_bytes)
                .num("rss_bytes_per_session", r.rss_bytes / r.sessions)
                .num("engine_build_seconds", r.build_s);
            sizes.push_back(s);
        }
        JsonObject params;
        params.num("workers", 1)
            .num("frame_bytes", kFrameSize)
            .num("burst", kBurst)
            .num("reals", kReals)
            .str("scheduler", "rr")
            .num("established_packets_per_size", double(opt.packets))
            .num("syns_per_size", double(opt.syns))
            .str("method",
                 "per size: fresh engine with capacity sessions+1024; SYNs of distinct clients in bursts of 32 "
                 "(new sessions per second, frame-copy time taken out); then ACKs of every session in a random "
                 "order, in rounds of passes over all sessions (at least 1M packets a round), each burst copied "
                 "into a work buffer first; ns per packet is the median round minus the same round of copies "
                 "alone");
        JsonObject memory;
        memory.num("session_struct_bytes", sizeof(Session));
        if (largest) {
            memory.num("sessions", largest->sessions)
                .num("engine_rss_bytes", largest->rss_bytes)
                .num("bytes_per_session", largest->rss_bytes / largest->sessions)
                .num("table_bytes_per_session", largest->table_bytes_per_session);
        }
        JsonObject root;
        root.str("benchmark", "engine")
            .str("date", dplb::bench::utc_now())
            .obj("machine", dplb::bench::machine_info())
            .raw("load_average_start", dplb::bench::json_array(load_start))
            .raw("load_average_end", dplb::bench::json_array(load_end))
            .obj("parameters", params)
            .raw("sizes", dplb::bench::json_list(sizes))
            .obj("memory", memory)
            .raw("aims", dplb::bench::json_list(aims));
        if (!dplb::bench::write_file(opt.json, root.dump())) {
            std::fprintf(stderr, "cannot write %s\n", opt.json.c_str());
            return 1;
        }
        std::printf("figures written to %s\n", opt.json.c_str());
    }
    return 0;
}
