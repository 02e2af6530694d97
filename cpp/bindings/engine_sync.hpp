// Session sync operations on an Engine for Python (records in and out as bytes, peers'
// local addresses, the engine's install counters), shared by the harness and runtime
// bindings. Thin: the logic is in cpp/core (engine_sync.cpp, worker_sync.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <tuple>
#include <string>
#include <vector>

#include "core/engine.hpp"
#include "host/sync_service.hpp"

namespace dplb::bindings {

// At most `max` records taken from the workers' sync rings (worker 0 first), as
// concatenated SyncRecords in host byte order (in-process tests; the wire is the sync
// thread's). Only where no sync thread consumes the rings.
pybind11::bytes engine_sync_pull(core::Engine& engine, uint32_t max);
// Splits `records` (a whole number of SyncRecords) and installs each with
// Engine::install_synced, calling `drain` whenever a worker's install ring may be full
// (the harness drains its workers there). Returns how many were accepted.
uint32_t engine_sync_install(core::Engine& engine, const pybind11::bytes& records, const std::function<void()>& drain);
// ValueError for a bad address or unequal worker counts.
void engine_set_peer_local_addresses(core::Engine& engine, uint32_t peer_id,
                                     const std::vector<std::vector<std::string>>& per_worker);
// Engine::sync_counters() as a dict.
pybind11::dict engine_sync_counters(const core::Engine& engine);

// What `sync_service(...)` takes from Python (the harness's and the runtime's), and the
// service it starts on `engine` (sync_service_bindings.cpp; ValueError for bad options).
struct SyncServiceArgs {
    uint32_t node_id = 0;
    std::string listen;
    std::vector<std::tuple<uint32_t, pybind11::bytes>> keys;
    uint32_t send_key = 0;
    uint32_t mtu = 1400;
    double flush_ms = 2.0;
    uint32_t heartbeat_ms = 1000;
    uint32_t full_sync_rate = 0;
    uint32_t io_timeout_ms = 5000;
    uint32_t test_break_stream_after = 0;
    double test_receive_loss = 0.0;
};
std::unique_ptr<host::SyncService> make_sync_service(core::Engine& engine, const SyncServiceArgs& args);

// Adds `sync_service(node_id, listen, keys, send_key, mtu=..., ...)` to a Python class
// whose C++ type gives its engine through `engine_of` (the service keeps its owner alive).
template <class Owner, class EngineOf>
void def_sync_service(pybind11::class_<Owner>& cls, EngineOf engine_of) {
    namespace py = pybind11;
    cls.def(
        "sync_service",
        [engine_of](Owner& owner, uint32_t node_id, const std::string& listen,
                    const std::vector<std::tuple<uint32_t, py::bytes>>& keys, uint32_t send_key, uint32_t mtu,
                    double flush_ms, uint32_t heartbeat_ms, uint32_t full_sync_rate, uint32_t io_timeout_ms,
                    uint32_t test_break_stream_after, double test_receive_loss) {
            SyncServiceArgs a{node_id,        listen,         keys,          send_key,
                              mtu,            flush_ms,       heartbeat_ms,  full_sync_rate,
                              io_timeout_ms,  test_break_stream_after, test_receive_loss};
            return make_sync_service(engine_of(owner), a);
        },
        py::arg("node_id"), py::arg("listen"), py::arg("keys"), py::arg("send_key"), py::arg("mtu") = 1400,
        py::arg("flush_ms") = 2.0, py::arg("heartbeat_ms") = 1000, py::arg("full_sync_rate") = 0,
        py::arg("io_timeout_ms") = 5000, py::arg("test_break_stream_after") = 0, py::arg("test_receive_loss") = 0.0,
        py::keep_alive<0, 1>());
}

}  // namespace dplb::bindings
