// dplb._core: the pybind11 module. Thin: converts text addresses, bytes and dicts at the
// edge and forwards to dplb::core; the logic stays in C++ core and in Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>

#include "core/drop_reason.hpp"
#include "core/engine.hpp"
#include "host/logger.hpp"
#include "core/sync_driver.hpp"
#include "bindings/engine_control.hpp"
#include "bindings/conversions.hpp"
#include "bindings/engine_views.hpp"
#include "bindings/engine_sync.hpp"
#include "host/parallel_for.hpp"

namespace py = pybind11;
using namespace dplb::core;
using dplb::host::Logger;
using dplb::host::LoggerOptions;
using namespace dplb::bindings;

namespace {



const char* verdict_name(Verdict v) {
    switch (v) {
        case Verdict::transmit: return "transmit";
        case Verdict::drop: return "drop";
        case Verdict::hand_over: return "hand_over";
        case Verdict::resolve: return "resolve";
        default: return "control";
    }
}

// The Python-facing harness engine: an Engine with its SyncDriver.
class HarnessEngine {
public:
    explicit HarnessEngine(const EngineConfig& config)
        : engine_(config, dplb::host::snapshot_builder()), driver_(engine_) {}

    py::list process(py::bytes frame, uint8_t port, std::optional<uint32_t> worker) {
        auto r = receive(frame, port, worker);
        return sent_list(r);
    }

    py::dict trace(py::bytes frame, uint8_t port, std::optional<uint32_t> worker) {
        auto r = receive(frame, port, worker);
        py::dict d;
        d["sent"] = sent_list(r);
        d["workers"] = r.workers;
        d["verdict"] = verdict_name(r.verdict);
        return d;
    }

    void set_clock(uint64_t now_ns) { driver_.set_clock(now_ns); }

    void set_neighbour(uint8_t port, const std::string& ip, const std::string& mac) {
        engine_.neighbours().set(port, parse_address(ip), parse_mac(mac));
    }

    // Builds and swaps the snapshot without the GIL: another Python thread may keep
    // sending frames meanwhile, as workers keep forwarding on a node.
    void apply_services(const std::vector<ServiceConfig>& services) { engine_apply_services(engine_, services); }

    // The harness has no worker loops: after queueing the reset, the workers drain their
    // rings at once (a clock tick at the same time). Returns the sessions removed.
    uint64_t reset_session(const std::string& client, uint16_t client_port, const std::string& vip,
                           uint16_t vip_port, uint8_t proto) {
        const uint64_t before = engine_sessions_reset(engine_);
        engine_reset_session(engine_, client, client_port, vip, vip_port, proto);
        driver_.set_clock(engine_.worker(0).now_ns());
        return engine_sessions_reset(engine_) - before;
    }

    py::list local_addresses() const { return engine_local_addresses(engine_); }

    // Session sync (engine_sync.hpp). The harness has no worker loops: installs are
    // drained at once, by a clock move to the same time.
    py::bytes sync_pull(uint32_t max) { return engine_sync_pull(engine_, max); }
    uint32_t sync_install(const py::bytes& records) {
        return engine_sync_install(engine_, records, [this] { driver_.set_clock(engine_.worker(0).now_ns()); });
    }
    void set_peer_local_addresses(uint32_t peer_id, const std::vector<std::vector<std::string>>& per_worker) {
        engine_set_peer_local_addresses(engine_, peer_id, per_worker);
    }
    py::dict sync_counters() const { return engine_sync_counters(engine_); }
    Engine& engine() { return engine_; }

    // Per port, what a NIC would count: frames and bytes received and sent.
    py::list port_stats() const {
        py::list out;
        for (const PortCounters& c : driver_.port_counters()) {
            py::dict d;
            d["rx_packets"] = c.rx_packets;
            d["rx_bytes"] = c.rx_bytes;
            d["tx_packets"] = c.tx_packets;
            d["tx_bytes"] = c.tx_bytes;
            out.append(d);
        }
        return out;
    }

    py::list sessions() const { return engine_sessions(engine_); }

    py::dict find_sessions(const SessionSearch& search) const { return engine_find_sessions(engine_, search); }

    py::list worker_stats() const { return engine_worker_stats(engine_); }

    py::list real_stats() const { return engine_real_stats(engine_); }

    py::dict counter_table(int64_t known_generation) const { return engine_counter_table(engine_, known_generation); }

    uint32_t inbound_owner(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport,
                           uint8_t proto) const {
        FlowKey k;
        k.src = parse_address(src);
        k.dst = parse_address(dst);
        k.src_port = sport;
        k.dst_port = dport;
        k.proto = proto;
        return engine_.inbound_owner(k);
    }

    std::string port_mac(uint8_t port) const { return mac_text(engine_.port_mac(port).data()); }
    uint32_t worker_count() const { return engine_.worker_count(); }

    // The logger thread over this engine's workers (one per engine, alive as long as it).
    Logger& start_logger(const LoggerOptions& options) {
        if (logger_) throw py::value_error("this engine has a logger already");
        try {
            logger_ = std::make_unique<Logger>(engine_, options);
        } catch (const std::runtime_error& e) {
            throw py::value_error(e.what());
        }
        logger_->start();
        return *logger_;
    }
    Logger* logger() { return logger_.get(); }

private:
    DriverResult receive(py::bytes frame, uint8_t port, std::optional<uint32_t> worker) {
        std::string_view data = frame;
        try {
            return driver_.receive(reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(data.size()),
                                   port, worker);
        } catch (const std::out_of_range& e) {
            throw py::value_error(e.what());
        }
    }
    static py::list sent_list(const DriverResult& r) {
        py::list out;
        for (const auto& [p, bytes] : r.sent) {
            out.append(py::make_tuple(p, py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
        }
        return out;
    }

    Engine engine_;
    SyncDriver driver_;
    std::unique_ptr<Logger> logger_;  // destroyed first: it reads the engine's workers
};

}  // namespace

void register_logger(py::module_& m);  // logger_bindings.cpp
void register_sync_service(py::module_& m);  // sync_service_bindings.cpp
#ifdef DPLB_WITH_DPDK
void register_runtime(py::module_& m);  // runtime_bindings.cpp
#endif

PYBIND11_MODULE(_core, m) {
    m.doc() = "dplb's C++ engine (cpp/core) for the Python harness and node";

    m.attr("drop_reasons") = [] {
        py::list names;
        for (auto n : kDropReasonNames) names.append(std::string(n));
        return names;
    }();
    m.attr("timeout_kinds") = py::make_tuple("tcp_syn", "tcp_established", "tcp_fin", "tcp_time_wait",
                                             "tcp_close", "udp");
    m.attr("session_bytes") = sizeof(Session);
    m.attr("log_ring_slots") = kLogRingSlots;
    m.attr("sync_record_bytes") = sizeof(SyncRecord);
    register_logger(m);
    register_sync_service(m);
#ifdef DPLB_WITH_DPDK
    m.attr("with_dpdk") = true;
    register_runtime(m);
#else
    m.attr("with_dpdk") = false;
#endif

    py::enum_<SchedulerKind>(m, "SchedulerKind")
        .value("rr", SchedulerKind::rr)
        .value("wrr", SchedulerKind::wrr)
        .value("wlc", SchedulerKind::wlc)
        .value("maglev", SchedulerKind::maglev);
    py::enum_<ClientAddressMode>(m, "ClientAddressMode")
        .value("none", ClientAddressMode::none)
        .value("toa", ClientAddressMode::toa)
        .value("proxy_v1", ClientAddressMode::proxy_v1)
        .value("proxy_v2", ClientAddressMode::proxy_v2);
    py::enum_<ProxyFromClient>(m, "ProxyFromClient")
        .value("refuse", ProxyFromClient::refuse)
        .value("trust", ProxyFromClient::trust);

    py::class_<RealConfig>(m, "RealConfig")
        .def(py::init<>())
        .def_property(
            "address", [](const RealConfig& r) { return r.address.to_string(); },
            [](RealConfig& r, const std::string& a) { r.address = parse_address(a); })
        .def_readwrite("port", &RealConfig::port)
        .def_readwrite("weight", &RealConfig::weight);

    py::class_<ServiceConfig>(m, "ServiceConfig")
        .def(py::init<>())
        .def_property(
            "vip", [](const ServiceConfig& s) { return s.vip.to_string(); },
            [](ServiceConfig& s, const std::string& a) { s.vip = parse_address(a); })
        .def_readwrite("port", &ServiceConfig::port)
        .def_readwrite("proto", &ServiceConfig::proto)
        .def_readwrite("scheduler", &ServiceConfig::scheduler)
        .def_readwrite("client_address", &ServiceConfig::client_address)
        .def_readwrite("proxy_from_client", &ServiceConfig::proxy_from_client)
        .def_readwrite("maglev_table_size", &ServiceConfig::maglev_table_size)
        .def_property(
            "timeouts", [](const ServiceConfig& s) { return s.timeouts.seconds; },
            [](ServiceConfig& s, const std::array<uint32_t, kTimeoutKinds>& t) { s.timeouts.seconds = t; })
        .def_readwrite("reals", &ServiceConfig::reals)
        .def_readwrite("connection_log", &ServiceConfig::connection_log);

    py::class_<PortConfig>(m, "PortConfig")
        .def(py::init<>())
        .def_readwrite("name", &PortConfig::name)
        .def_property(
            "mac", [](const PortConfig& p) { return mac_text(p.mac.data()); },
            [](PortConfig& p, const std::string& text) { p.mac = parse_mac(text); })
        .def_property(
            "addresses",
            [](const PortConfig& p) {
                std::vector<std::string> out;
                for (const Prefix& x : p.addresses) out.push_back(x.address.to_string());
                return out;
            },
            [](PortConfig& p, const std::vector<std::string>& v) {
                p.addresses.clear();
                for (const auto& t : v) p.addresses.push_back(parse_prefix(t));
            })
        .def_property(
            "gateways",
            [](const PortConfig& p) {
                std::vector<std::string> out;
                for (const IpAddress& x : p.gateways) out.push_back(x.to_string());
                return out;
            },
            [](PortConfig& p, const std::vector<std::string>& v) {
                p.gateways.clear();
                for (const auto& t : v) p.gateways.push_back(parse_address(t));
            })
        .def_property(
            "local_addresses",
            [](const PortConfig& p) {
                std::vector<std::vector<std::string>> out;
                for (const auto& w : p.local_addresses) {
                    auto& list = out.emplace_back();
                    for (const IpAddress& x : w) list.push_back(x.to_string());
                }
                return out;
            },
            [](PortConfig& p, const std::vector<std::vector<std::string>>& v) {
                p.local_addresses.clear();
                for (const auto& w : v) {
                    auto& list = p.local_addresses.emplace_back();
                    for (const auto& t : w) list.push_back(parse_address(t));
                }
            });

    py::class_<EngineConfig>(m, "EngineConfig")
        .def(py::init<>())
        .def_readwrite("workers", &EngineConfig::workers)
        .def_readwrite("sessions_per_worker", &EngineConfig::sessions_per_worker)
        .def_readwrite("local_port_first", &EngineConfig::local_port_first)
        .def_readwrite("local_port_last", &EngineConfig::local_port_last)
        .def_readwrite("local_port_real_time_wait_s", &EngineConfig::local_port_real_time_wait_s)
        .def_readwrite("local_port_clock_epoch_ns", &EngineConfig::local_port_clock_epoch_ns)
        .def_readwrite("max_reals", &EngineConfig::max_reals)
        .def_readwrite("control_rest_rate_pps", &EngineConfig::control_rest_rate_pps)
        .def_readwrite("control_rest_burst", &EngineConfig::control_rest_burst)
        .def_readwrite("max_services", &EngineConfig::max_services)
        .def_readwrite("sync_enabled", &EngineConfig::sync_enabled)
        .def_readwrite("sync_refresh_ms", &EngineConfig::sync_refresh_ms)
        .def_readwrite("ports", &EngineConfig::ports)
        .def_readwrite("services", &EngineConfig::services);

    py::class_<SessionSearch>(m, "SessionSearch")
        .def(py::init<>())
        .def_readwrite("client", &SessionSearch::client)
        .def_readwrite("client_port", &SessionSearch::client_port)
        .def_readwrite("vip", &SessionSearch::vip)
        .def_readwrite("vip_port", &SessionSearch::vip_port)
        .def_readwrite("real", &SessionSearch::real)
        .def_readwrite("real_port", &SessionSearch::real_port)
        .def_readwrite("protocol", &SessionSearch::protocol)
        .def_readwrite("state", &SessionSearch::state)
        .def_readwrite("worker", &SessionSearch::worker)
        .def_readwrite("cursor_worker", &SessionSearch::cursor_worker)
        .def_readwrite("cursor_index", &SessionSearch::cursor_index)
        .def_readwrite("limit", &SessionSearch::limit);

    py::class_<HarnessEngine> harness(m, "HarnessEngine");
    harness
        .def(py::init([](const EngineConfig& c) {
                 try {
                     return std::make_unique<HarnessEngine>(c);
                 } catch (const std::invalid_argument& e) {
                     throw py::value_error(e.what());
                 }
             }),
             py::arg("config"))
        .def("process", &HarnessEngine::process, py::arg("frame"), py::arg("port") = 0,
             py::arg("worker") = py::none())
        .def("trace", &HarnessEngine::trace, py::arg("frame"), py::arg("port") = 0, py::arg("worker") = py::none())
        .def("set_clock", &HarnessEngine::set_clock, py::arg("now_ns"))
        .def("set_neighbour", &HarnessEngine::set_neighbour, py::arg("port"), py::arg("ip"), py::arg("mac"))
        .def("apply_services", &HarnessEngine::apply_services, py::arg("services"))
        .def("reset_session", &HarnessEngine::reset_session, py::arg("client"), py::arg("client_port"),
             py::arg("vip"), py::arg("vip_port"), py::arg("proto"))
        .def("local_addresses", &HarnessEngine::local_addresses)
        .def("sync_pull", &HarnessEngine::sync_pull, py::arg("max"))
        .def("sync_install", &HarnessEngine::sync_install, py::arg("records"))
        .def("set_peer_local_addresses", &HarnessEngine::set_peer_local_addresses, py::arg("peer_id"),
             py::arg("per_worker"))
        .def("sync_counters", &HarnessEngine::sync_counters)
        .def("port_stats", &HarnessEngine::port_stats)
        .def("sessions", &HarnessEngine::sessions)
        .def("find_sessions", &HarnessEngine::find_sessions, py::arg("search"))
        .def("worker_stats", &HarnessEngine::worker_stats)
        .def("real_stats", &HarnessEngine::real_stats)
        .def("counter_table", &HarnessEngine::counter_table, py::arg("known_generation") = -1)
        .def("inbound_owner", &HarnessEngine::inbound_owner)
        .def("port_mac", &HarnessEngine::port_mac)
        .def("start_logger", &HarnessEngine::start_logger, py::arg("options"), py::return_value_policy::reference_internal)
        .def_property_readonly("logger", &HarnessEngine::logger, py::return_value_policy::reference_internal)
        .def_property_readonly("workers", &HarnessEngine::worker_count);
    def_sync_service(harness, [](HarnessEngine& h) -> Engine& { return h.engine(); });
}
