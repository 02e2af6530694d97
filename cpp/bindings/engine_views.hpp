// Python views of an Engine's state, shared by the harness and runtime bindings.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <string>

#include "core/engine.hpp"

namespace dplb::bindings {

pybind11::dict stats_dict(const core::WorkerStats& s);
pybind11::list engine_sessions(const core::Engine& engine);

// A session search (the API's GET /sessions): filters in text as the API takes them
// (`client` an address or prefix), a cursor (worker, slot) and a limit.
struct SessionSearch {
    std::optional<std::string> client, vip, real;
    std::optional<uint16_t> client_port, vip_port, real_port;
    std::optional<uint8_t> protocol;
    std::optional<std::string> state;
    std::optional<uint32_t> worker;
    uint32_t cursor_worker = 0;
    uint32_t cursor_index = 0;
    uint32_t limit = 100;
};
// Walks the tables without the GIL and stops after `limit` matches: a dict with `items`
// (as engine_sessions gives them) and `next`, the cursor (worker, slot) to continue
// from, or None at the end. ValueError for a bad address or prefix.
pybind11::dict engine_find_sessions(const core::Engine& engine, const SessionSearch& search);
pybind11::list engine_worker_stats(const core::Engine& engine);
pybind11::list engine_real_stats(const core::Engine& engine);
// Service and real counters for metrics, cheap enough to read 100,000 reals per scrape:
// a dict with the snapshot's `generation`; `services` [(vip, port, protocol)] and
// `reals` [(service index, address, port, weight)] in snapshot order, or None when the
// generation is `known_generation` (the caller kept them); `service_counters` and
// `real_counters`: native uint64 bytes, kCounterFields per entry (connections, active,
// packets_in, packets_out, bytes_in, bytes_out, syn_unanswered, resets_from_real), summed
// over the workers.
pybind11::dict engine_counter_table(const core::Engine& engine, int64_t known_generation);
inline constexpr size_t kCounterFields = 8;

}  // namespace dplb::bindings
