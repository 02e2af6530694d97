// Control-side operations on an Engine for Python (session reset, local addresses),
// shared by the harness and runtime bindings.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/engine.hpp"

namespace dplb::bindings {

// Queues the reset of the session whose inbound tuple is given with the worker that owns
// it. Raises ValueError for a bad address, RuntimeError when the worker's ring is full.
void engine_reset_session(core::Engine& engine, const std::string& client, uint16_t client_port,
                          const std::string& vip, uint16_t vip_port, uint8_t proto);

// Applies the services as one snapshot, building it (Maglev tables of every changed
// service) without the GIL: other Python threads (the API, /metrics, health) go on
// meanwhile. Call it holding the GIL; ValueError naming what the engine refused.
void engine_apply_services(core::Engine& engine, const std::vector<core::ServiceConfig>& services);

// Sessions removed on request so far, summed over the workers.
uint64_t engine_sessions_reset(const core::Engine& engine);

// Every local (SNAT) address: its worker, port index and what its source ports do (in
// use, resting toward reals in TIME_WAIT, busy toward the busiest real, per real).
pybind11::list engine_local_addresses(const core::Engine& engine);

}  // namespace dplb::bindings
