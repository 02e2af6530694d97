// Session sync operations on an Engine for Python (engine_sync.hpp).
#include "bindings/engine_sync.hpp"

#include <cstring>
#include <stdexcept>

#include "bindings/conversions.hpp"

namespace py = pybind11;

namespace dplb::bindings {

using namespace dplb::core;

py::bytes engine_sync_pull(Engine& engine, uint32_t max) {
    std::string out;
    SyncRecord r;
    for (uint32_t w = 0; w < engine.worker_count(); ++w) {
        while (out.size() / sizeof r < max && engine.worker(w).take_sync_record(r)) {
            out.append(reinterpret_cast<const char*>(&r), sizeof r);
        }
    }
    return py::bytes(out);
}

uint32_t engine_sync_install(Engine& engine, const py::bytes& records, const std::function<void()>& drain) {
    std::string_view data = records;
    if (data.size() % sizeof(SyncRecord) != 0) {
        throw py::value_error("records: " + std::to_string(data.size()) + " bytes is not a whole number of " +
                              std::to_string(sizeof(SyncRecord)) + "-byte records");
    }
    uint32_t accepted = 0;
    const size_t n = data.size() / sizeof(SyncRecord);
    for (size_t i = 0; i < n; ++i) {
        SyncRecord r;
        std::memcpy(&r, data.data() + i * sizeof r, sizeof r);
        accepted += engine.install_synced(r);
        if ((i + 1) % kInstallBudget == 0) drain();
    }
    drain();
    return accepted;
}

void engine_set_peer_local_addresses(Engine& engine, uint32_t peer_id,
                                     const std::vector<std::vector<std::string>>& per_worker) {
    std::vector<std::vector<IpAddress>> addresses;
    for (const auto& worker : per_worker) {
        auto& list = addresses.emplace_back();
        for (const std::string& a : worker) list.push_back(parse_address(a));
    }
    try {
        engine.set_peer_local_addresses(peer_id, addresses);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

py::dict engine_sync_counters(const Engine& engine) {
    const SyncInstallCounters& c = engine.sync_counters();
    py::dict d;
    d["queued"] = c.queued.load(std::memory_order_relaxed);
    d["refused_disabled"] = c.refused_disabled.load(std::memory_order_relaxed);
    d["refused_owner_mismatch"] = c.refused_owner_mismatch.load(std::memory_order_relaxed);
    d["refused_unknown_local_address"] = c.refused_unknown_local_address.load(std::memory_order_relaxed);
    d["refused_ring_full"] = c.refused_ring_full.load(std::memory_order_relaxed);
    return d;
}

}  // namespace dplb::bindings
