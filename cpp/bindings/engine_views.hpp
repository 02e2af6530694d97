// Python views of an Engine's state, shared by the harness and runtime bindings.
#pragma once

#include <pybind11/pybind11.h>

#include "core/engine.hpp"

namespace dplb::bindings {

pybind11::dict stats_dict(const core::WorkerStats& s);
pybind11::list engine_sessions(const core::Engine& engine);
pybind11::list engine_worker_stats(const core::Engine& engine);
pybind11::list engine_real_stats(const core::Engine& engine);

}  // namespace dplb::bindings
