// Python views of an Engine's state (sessions, counters), shared by the harness engine
// and the DPDK runtime bindings. Reads only; called from the control side.
#include "bindings/engine_views.hpp"

#include <string>

#include "core/drop_reason.hpp"
#include "core/session_query.hpp"
#include "bindings/conversions.hpp"

namespace py = pybind11;

namespace dplb::bindings {

using namespace dplb::core;

py::dict stats_dict(const WorkerStats& s) {
    py::dict d;
    d["rx_packets"] = s.rx_packets.load();
    d["rx_bytes"] = s.rx_bytes.load();
    d["tx_packets"] = s.tx_packets.load();
    d["tx_bytes"] = s.tx_bytes.load();
    d["sessions_created"] = s.sessions_created.load();
    d["sessions_expired"] = s.sessions_expired.load();
    d["sessions_reset"] = s.sessions_reset.load();
    d["handed_over"] = s.handed_over.load();
    d["handed_in"] = s.handed_in.load();
    d["to_control"] = s.to_control.load();
    d["icmp_translated"] = s.icmp_translated.load();
    d["awaiting_neighbour"] = s.awaiting_neighbour.load();
    d["log_dropped"] = s.log_dropped.load();
    d["expiry_behind"] = s.expiry_behind.load();
#define DPLB_CLIENT_ADDRESS_ITEM(name, text) d[#name] = s.name.load();
    DPLB_FOREACH_CLIENT_ADDRESS_COUNTER(DPLB_CLIENT_ADDRESS_ITEM)
#undef DPLB_CLIENT_ADDRESS_ITEM
#define DPLB_SYNC_ITEM(name, text) d[#name] = s.name.load();
    DPLB_FOREACH_SYNC_COUNTER(DPLB_SYNC_ITEM)
#undef DPLB_SYNC_ITEM
    py::dict drops;
    for (size_t i = 0; i < kDropReasonCount; ++i) drops[py::str(std::string(kDropReasonNames[i]))] = s.drops[i].load();
    d["drops"] = drops;
    return d;
}

namespace {

py::dict session_dict(const SessionMatch& m) {
    const Session& s = m.session;
    py::dict d;
    d["worker"] = m.worker;
    d["protocol"] = s.inbound.proto == 6 ? "tcp" : "udp";
    d["client"] = py::make_tuple(s.inbound.src.to_string(), s.inbound.src_port);
    d["vip"] = py::make_tuple(s.inbound.dst.to_string(), s.inbound.dst_port);
    d["local"] = py::make_tuple(s.outbound.dst.to_string(), s.outbound.dst_port);
    d["real"] = py::make_tuple(s.outbound.src.to_string(), s.outbound.src_port);
    d["state"] = std::string(tcp_state_name(s.state));
    d["expires_in"] = static_cast<double>(m.expires_in_ticks) * double(kTickNs) / 1e9;
    d["bytes_in"] = s.bytes_in;
    d["bytes_out"] = s.bytes_out;
    return d;
}

}  // namespace

py::list engine_sessions(const Engine& engine) {
    std::vector<SessionMatch> found;
    {
        py::gil_scoped_release release;
        find_sessions(engine, SessionFilter{}, SessionCursor{}, UINT32_MAX, found);
    }
    py::list out;
    for (const SessionMatch& m : found) out.append(session_dict(m));
    return out;
}

py::dict engine_find_sessions(const Engine& engine, const SessionSearch& q) {
    SessionFilter filter;
    if (q.client) filter.client = parse_prefix(*q.client);
    filter.client_port = q.client_port;
    if (q.vip) filter.vip = parse_address(*q.vip);
    filter.vip_port = q.vip_port;
    if (q.real) filter.real = parse_address(*q.real);
    filter.real_port = q.real_port;
    filter.proto = q.protocol;
    if (q.state) {
        filter.state = tcp_state_from_name(*q.state);
        filter.match_nothing = !filter.state;
    }
    filter.worker = q.worker;
    std::vector<SessionMatch> found;
    std::optional<SessionCursor> next;
    {
        // A walk of up to every table (a million sessions): other Python threads (the
        // API, /metrics, health) go on meanwhile.
        py::gil_scoped_release release;
        found.reserve(q.limit);
        next = find_sessions(engine, filter, SessionCursor{q.cursor_worker, q.cursor_index}, q.limit, found);
    }
    py::list items;
    for (const SessionMatch& m : found) items.append(session_dict(m));
    py::dict d;
    d["items"] = items;
    d["next"] = next ? py::object(py::make_tuple(next->worker, next->index)) : py::object(py::none());
    return d;
}

py::list engine_worker_stats(const Engine& engine) {
    py::list out;
    for (uint32_t w = 0; w < engine.worker_count(); ++w) {
        py::dict d = stats_dict(engine.worker(w).stats());
        d["sessions"] = engine.worker(w).sessions().size();
        d["session_capacity"] = engine.worker(w).sessions().capacity();
        const PortPool* pool = engine.worker(w).port_pool();
        d["local_port_holds_cut"] = pool != nullptr ? pool->holds_cut() : 0;
        out.append(d);
    }
    return out;
}

py::list engine_real_stats(const Engine& engine) {
    py::list out;
    SnapshotReader reader(engine);  // the snapshot stays alive while this reads it
    for (const ServiceEntry& svc : reader.current().services()) {
        for (const RealEntry& r : svc.reals) {
            RealCounters sum;
            for (uint32_t w = 0; w < engine.worker_count(); ++w) {
                const RealCounters& c = engine.worker(w).real_counters()[r.slot];
                sum.connections += c.connections;
                sum.active += c.active;
                sum.packets_in += c.packets_in;
                sum.packets_out += c.packets_out;
                sum.bytes_in += c.bytes_in;
                sum.bytes_out += c.bytes_out;
                sum.syn_unanswered += c.syn_unanswered;
                sum.resets_from_real += c.resets_from_real;
            }
            py::dict d;
            d["vip"] = py::make_tuple(svc.vip.to_string(), svc.port);
            d["protocol"] = svc.proto == 6 ? "tcp" : "udp";
            d["real"] = py::make_tuple(r.address.to_string(), r.port);
            d["weight"] = r.weight;
            d["connections"] = sum.connections.load();
            d["active"] = sum.active.load();
            d["packets_in"] = sum.packets_in.load();
            d["packets_out"] = sum.packets_out.load();
            d["bytes_in"] = sum.bytes_in.load();
            d["bytes_out"] = sum.bytes_out.load();
            d["syn_unanswered"] = sum.syn_unanswered.load();
            d["resets_from_real"] = sum.resets_from_real.load();
            out.append(d);
        }
    }
    return out;
}

py::dict engine_counter_table(const Engine& engine, int64_t known_generation) {
    SnapshotReader reader(engine);  // the snapshot stays alive while this reads it
    const ServiceTable& table = reader.current();
    const auto& services = table.services();
    size_t real_count = 0;
    for (const ServiceEntry& svc : services) real_count += svc.reals.size();
    std::string service_bytes(services.size() * kCounterFields * sizeof(uint64_t), '\0');
    std::string real_bytes(real_count * kCounterFields * sizeof(uint64_t), '\0');
    auto* svc_out = reinterpret_cast<uint64_t*>(service_bytes.data());
    auto* real_out = reinterpret_cast<uint64_t*>(real_bytes.data());
    const bool fresh = static_cast<int64_t>(table.generation()) != known_generation;
    py::list service_ids, real_ids;
    size_t k = 0;
    for (size_t s = 0; s < services.size(); ++s) {
        const ServiceEntry& svc = services[s];
        if (fresh) service_ids.append(py::make_tuple(svc.vip.to_string(), svc.port, svc.proto == 6 ? "tcp" : "udp"));
        uint64_t* sum = svc_out + s * kCounterFields;
        for (const RealEntry& r : svc.reals) {
            uint64_t* out = real_out + k * kCounterFields;
            for (uint32_t w = 0; w < engine.worker_count(); ++w) {
                const RealCounters& c = engine.worker(w).real_counters()[r.slot];
                out[0] += c.connections;
                out[1] += c.active;
                out[2] += c.packets_in;
                out[3] += c.packets_out;
                out[4] += c.bytes_in;
                out[5] += c.bytes_out;
                out[6] += c.syn_unanswered;
                out[7] += c.resets_from_real;
            }
            for (size_t f = 0; f < kCounterFields; ++f) sum[f] += out[f];
            if (fresh) real_ids.append(py::make_tuple(s, r.address.to_string(), r.port, r.weight));
            ++k;
        }
    }
    py::dict d;
    d["generation"] = table.generation();
    d["services"] = fresh ? py::object(service_ids) : py::object(py::none());
    d["reals"] = fresh ? py::object(real_ids) : py::object(py::none());
    d["service_counters"] = py::bytes(service_bytes);
    d["real_counters"] = py::bytes(real_bytes);
    return d;
}

}  // namespace dplb::bindings
