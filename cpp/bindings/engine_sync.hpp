// Session sync operations on an Engine for Python (records in and out as bytes, peers'
// local addresses, the engine's install counters), shared by the harness and runtime
// bindings. Thin: the logic is in cpp/core (engine_sync.cpp, worker_sync.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/engine.hpp"

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

}  // namespace dplb::bindings
