// dplb._core.Runtime: the DPDK node runtime for `dplb run` (built when DPDK is found).
// start(), stop() and apply_services() release the GIL: they wait on EAL and the lcores,
// or build Maglev tables.
#ifdef DPLB_WITH_DPDK

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/engine_control.hpp"
#include "bindings/engine_sync.hpp"
#include "bindings/engine_views.hpp"
#include "dpdk/runtime.hpp"

namespace py = pybind11;
using dplb::dpdk::Runtime;
using dplb::dpdk::RuntimeOptions;

void register_runtime(py::module_& m) {
    m.attr("dpdk_version") = dplb::dpdk::dpdk_version();
    py::class_<dplb::dpdk::PortOptions>(m, "PortOptions")
        .def(py::init<>())
        .def_readwrite("device", &dplb::dpdk::PortOptions::device)
        .def_readwrite("kernel_interface", &dplb::dpdk::PortOptions::kernel_interface);

    py::class_<RuntimeOptions>(m, "RuntimeOptions")
        .def(py::init<>())
        .def_readwrite("ports", &RuntimeOptions::ports)
        .def_readwrite("hugepages", &RuntimeOptions::hugepages)
        .def_readwrite("memory_mb", &RuntimeOptions::memory_mb)
        .def_readwrite("lcores", &RuntimeOptions::lcores)
        .def_readwrite("idle_sleep_us", &RuntimeOptions::idle_sleep_us)
        .def_readwrite("file_prefix", &RuntimeOptions::file_prefix)
        .def_readwrite("extra_eal_args", &RuntimeOptions::extra_eal_args)
        .def_readwrite("log", &RuntimeOptions::log)
        .def_readwrite("latency_stats", &RuntimeOptions::latency_stats)
        .def_readwrite("control_flow_steering", &RuntimeOptions::control_flow_steering);

    py::class_<Runtime> runtime(m, "Runtime");
    runtime
        .def(py::init<const dplb::core::EngineConfig&, const RuntimeOptions&>(), py::arg("engine"), py::arg("options"))
        .def(
            "start",
            [](Runtime& r) {
                try {
                    py::gil_scoped_release release;
                    r.start();
                } catch (const std::runtime_error& e) {
                    throw py::value_error(e.what());
                }
            })
        .def("stop", [](Runtime& r) {
            py::gil_scoped_release release;
            r.stop();
        })
        .def_property_readonly("running", &Runtime::running)
        .def("ports",
             [](const Runtime& r) {
                 py::list out;
                 for (const auto& p : r.ports()) {
                     py::dict d;
                     d["name"] = p.name;
                     d["device"] = p.device;
                     d["kernel_interface"] = p.kernel_interface;
                     d["mac"] = p.mac;
                     d["link_up"] = p.link_up;
                     d["speed_mbps"] = p.speed_mbps;
                     d["rx_queues"] = p.rx_queues;
                     d["tx_queues"] = p.tx_queues;
                     d["steering"] = p.steering;
                     d["control_steering"] = p.control_steering;
                     d["rx_packets"] = p.rx_packets;
                     d["tx_packets"] = p.tx_packets;
                     d["rx_bytes"] = p.rx_bytes;
                     d["tx_bytes"] = p.tx_bytes;
                     d["rx_missed"] = p.rx_missed;
                     d["rx_errors"] = p.rx_errors;
                     d["tx_errors"] = p.tx_errors;
                     d["rx_nombuf"] = p.rx_nombuf;
                     out.append(d);
                 }
                 return out;
             })
        .def("workers",
             [](const Runtime& r) {
                 py::list out;
                 for (const auto& w : r.workers()) {
                     py::dict d;
                     d["id"] = w.id;
                     d["lcore"] = w.lcore;
                     d["busy_polls"] = w.busy_polls;
                     d["idle_polls"] = w.idle_polls;
                     d["tx_dropped"] = w.tx_dropped;
                     d["handover_dropped"] = w.handover_dropped;
                     d["multi_segment_linearized"] = w.multi_segment_linearized;
                     d["multi_segment_dropped"] = w.multi_segment_dropped;
                     d["shared_tx_bursts"] = w.shared_tx_bursts;
                     d["shared_tx_packets"] = w.shared_tx_packets;
                     d["polls"] = w.polls;
                     d["last_poll_age_ns"] = w.last_poll_age_ns;
                     d["bursts"] = w.bursts;
                     d["burst_ns_sum"] = w.burst_ns_sum;
                     d["burst_ns_buckets"] = w.burst_ns_buckets;  // bucket i: under 2^i ns
                     out.append(d);
                 }
                 return out;
             })
        .def("control",
             [](const Runtime& r) {
                 auto c = r.control();
                 py::dict d;
                 d["lcore"] = c.lcore;
                 d["arp_replies"] = c.arp_replies;
                 d["nd_replies"] = c.nd_replies;
                 d["to_kernel"] = c.to_kernel;
                 d["from_kernel"] = c.from_kernel;
                 d["resolutions_sent"] = c.resolutions_sent;
                 d["held"] = c.held;
                 d["held_expired"] = c.held_expired;
                 d["dropped"] = c.dropped;
                 d["loops"] = c.loops;
                 d["last_loop_age_ns"] = c.last_loop_age_ns;
                 d["neighbours_ignored"] = c.neighbours_ignored;
                 d["neighbours_full"] = c.neighbours_full;
                 d["priority_taken"] = c.priority_taken;
                 d["rest_taken"] = c.rest_taken;
                 d["priority_ring_full"] = c.priority_ring_full;
                 d["rest_ring_full"] = c.rest_ring_full;
                 return d;
             })
        .def("mac_of", &Runtime::mac_of)
        .def("latency",
             [](const Runtime& r) {
                 auto l = r.latency();
                 py::dict d;
                 d["enabled"] = l.enabled;
                 d["min_ns"] = l.min_ns;
                 d["avg_ns"] = l.avg_ns;
                 d["max_ns"] = l.max_ns;
                 d["jitter_ns"] = l.jitter_ns;
                 return d;
             })
        .def_property_readonly("logger", &Runtime::logger, py::return_value_policy::reference_internal)
        // The engine the runtime drives: the same views as the harness engine.
        .def("sessions", [](Runtime& r) { return dplb::bindings::engine_sessions(r.engine()); })
        .def(
            "find_sessions",
            [](Runtime& r, const dplb::bindings::SessionSearch& search) {
                return dplb::bindings::engine_find_sessions(r.engine(), search);
            },
            py::arg("search"))
        .def("worker_stats", [](Runtime& r) { return dplb::bindings::engine_worker_stats(r.engine()); })
        .def("real_stats", [](Runtime& r) { return dplb::bindings::engine_real_stats(r.engine()); })
        .def(
            "counter_table",
            [](Runtime& r, int64_t known) { return dplb::bindings::engine_counter_table(r.engine(), known); },
            py::arg("known_generation") = -1)
        .def("reset_session",
             [](Runtime& r, const std::string& client, uint16_t client_port, const std::string& vip,
                uint16_t vip_port, uint8_t proto) {
                 // Queued: the owner worker removes it within a millisecond (its clock tick).
                 dplb::bindings::engine_reset_session(r.engine(), client, client_port, vip, vip_port, proto);
             })
        .def("sessions_reset", [](Runtime& r) { return dplb::bindings::engine_sessions_reset(r.engine()); })
        .def("local_addresses", [](Runtime& r) { return dplb::bindings::engine_local_addresses(r.engine()); })
        // Builds the snapshot (Maglev tables of every changed service) without the GIL:
        // the API, /metrics and health go on meanwhile, as on the harness.
        .def("apply_services", [](Runtime& r, const std::vector<dplb::core::ServiceConfig>& services) {
            dplb::bindings::engine_apply_services(r.engine(), services);
        })
        // Session sync: peers' local addresses, the engine's install counters, the thread.
        .def("set_peer_local_addresses",
             [](Runtime& r, uint32_t peer_id, const std::vector<std::vector<std::string>>& per_worker) {
                 dplb::bindings::engine_set_peer_local_addresses(r.engine(), peer_id, per_worker);
             },
             py::arg("peer_id"), py::arg("per_worker"))
        .def("sync_counters", [](Runtime& r) { return dplb::bindings::engine_sync_counters(r.engine()); });
    dplb::bindings::def_sync_service(runtime, [](Runtime& r) -> dplb::core::Engine& { return r.engine(); });
}

#endif  // DPLB_WITH_DPDK
