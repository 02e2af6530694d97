// Control-side operations on an Engine for Python: session reset and local addresses.
#include "bindings/engine_control.hpp"

#include "bindings/conversions.hpp"

#include <stdexcept>

namespace py = pybind11;

namespace dplb::bindings {

using namespace dplb::core;

void engine_reset_session(Engine& engine, const std::string& client, uint16_t client_port, const std::string& vip,
                          uint16_t vip_port, uint8_t proto) {
    FlowKey key;
    key.src = parse_address(client);
    key.dst = parse_address(vip);
    key.src_port = client_port;
    key.dst_port = vip_port;
    key.proto = proto;
    if (!engine.reset_session(key)) throw std::runtime_error("the worker's command ring is full: try again");
}

void engine_apply_services(Engine& engine, const std::vector<ServiceConfig>& services) {
    std::string error;
    {
        py::gil_scoped_release release;
        try {
            engine.apply_services(services);
        } catch (const std::invalid_argument& e) {
            error = e.what();
        }
    }
    if (!error.empty()) throw py::value_error(error);
}

uint64_t engine_sessions_reset(const Engine& engine) {
    uint64_t n = 0;
    for (uint32_t w = 0; w < engine.worker_count(); ++w) n += engine.worker(w).stats().sessions_reset;
    return n;
}

py::list engine_local_addresses(const Engine& engine) {
    py::list out;
    for (uint32_t w = 0; w < engine.worker_count(); ++w) {
        const Worker& worker = engine.worker(w);
        const std::vector<Worker::LocalAddress>& laddrs = worker.local_addresses();
        for (uint32_t i = 0; i < laddrs.size(); ++i) {
            const PortPool::Use use = worker.port_pool()->use(i);
            py::dict d;
            d["address"] = laddrs[i].address.to_string();
            d["port"] = laddrs[i].port;
            d["worker"] = w;
            d["ports_in_use"] = use.in_use;
            d["ports_resting"] = use.resting;
            d["ports_busiest_real"] = use.busiest;
            d["ports_per_real"] = worker.port_pool()->ports_per_real();
            out.append(d);
        }
    }
    return out;
}

}  // namespace dplb::bindings
