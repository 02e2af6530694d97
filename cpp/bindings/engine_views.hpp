// Python views of an Engine's state, shared by the harness and runtime bindings.
#pragma once

#include <pybind11/pybind11.h>

#include "core/engine.hpp"

namespace dplb::bindings {

pybind11::dict stats_dict(const core::WorkerStats& s);
pybind11::list engine_sessions(const core::Engine& engine);
pybind11::list engine_worker_stats(const core::Engine& engine);
pybind11::list engine_real_stats(const core::Engine& engine);
// Service and real counters for metrics, cheap enough to read 100,000 reals per scrape:
// a dict with the snapshot's `generation`; `services` [(vip, port, protocol)] and
// `reals` [(service index, address, port, weight)] in snapshot order, or None when the
// generation is `known_generation` (the caller kept them); `service_counters` and
// `real_counters`: native uint64 bytes, kCounterFields per entry (connections, active,
// packets_in, packets_out, bytes_in, bytes_out), summed over the workers.
pybind11::dict engine_counter_table(const core::Engine& engine, int64_t known_generation);
inline constexpr size_t kCounterFields = 6;

}  // namespace dplb::bindings
