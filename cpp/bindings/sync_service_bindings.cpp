// dplb._core.SyncService: the session-sync thread (host/sync_service.hpp) for Python, as
// the harness engine and the runtime start it (`sync_service(...)` on either). Thin:
// peers and keys in as tuples, stats and status out as dicts; calls that may wait on the
// thread release the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bindings/engine_sync.hpp"
#include "host/sync_service.hpp"

namespace py = pybind11;
using dplb::host::SyncKey;
using dplb::host::SyncPeer;
using dplb::host::SyncService;
using dplb::host::SyncServiceOptions;

namespace {

using PeerTuples = std::vector<std::tuple<uint32_t, std::string>>;
using KeyTuples = std::vector<std::tuple<uint32_t, py::bytes>>;

std::vector<SyncPeer> peers_of(const PeerTuples& peers) {
    std::vector<SyncPeer> out;
    for (const auto& [id, address] : peers) out.push_back({id, address});
    return out;
}

std::vector<SyncKey> keys_of(const KeyTuples& keys) {
    std::vector<SyncKey> out;
    for (const auto& [id, bytes] : keys) {
        const std::string raw = bytes;
        if (id == 0 || id > 255) throw py::value_error("keys: id " + std::to_string(id) + " is not 1..255");
        if (raw.size() != dplb::host::kSyncKeyBytes) {
            throw py::value_error("keys: key " + std::to_string(id) + " has " + std::to_string(raw.size()) +
                                  " bytes, not " + std::to_string(dplb::host::kSyncKeyBytes));
        }
        SyncKey k;
        k.id = static_cast<uint8_t>(id);
        std::copy(raw.begin(), raw.end(), k.bytes.begin());
        out.push_back(k);
    }
    return out;
}

py::object seconds_or_none(double s) { return s < 0 ? py::object(py::none()) : py::object(py::float_(s)); }

}  // namespace

namespace dplb::bindings {

std::unique_ptr<SyncService> make_sync_service(core::Engine& engine, const SyncServiceArgs& a) {
    SyncServiceOptions o;
    o.node_id = a.node_id;
    o.listen = a.listen;
    o.keys = keys_of(a.keys);
    if (a.send_key > 255) throw py::value_error("send_key: not 1..255");
    o.send_key = static_cast<uint8_t>(a.send_key);
    o.mtu = a.mtu;
    o.flush_ms = a.flush_ms;
    o.heartbeat_ms = a.heartbeat_ms;
    o.full_sync_rate = a.full_sync_rate;
    o.io_timeout_ms = a.io_timeout_ms;
    o.test_break_stream_after = a.test_break_stream_after;
    o.test_receive_loss = a.test_receive_loss;
    return std::make_unique<SyncService>(engine, std::move(o));
}

}  // namespace dplb::bindings

void register_sync_service(py::module_& m) {
    m.attr("sync_drop_reasons") = [] {
        py::list names;
        for (auto n : dplb::host::kSyncDropNames) names.append(std::string(n));
        return names;
    }();
    py::class_<SyncService>(m, "SyncService")
        .def_property_readonly("listen_port", &SyncService::listen_port)
        .def_property_readonly("epoch", &SyncService::epoch)
        .def(
            "set_peers",
            [](SyncService& s, const PeerTuples& peers) {
                auto list = peers_of(peers);
                py::gil_scoped_release release;
                s.set_peers(list);
            },
            py::arg("peers"))
        .def(
            "set_keys", [](SyncService& s, const KeyTuples& keys, uint32_t send_key) {
                if (send_key > 255) throw py::value_error("send_key: not 1..255");
                s.set_keys(keys_of(keys), static_cast<uint8_t>(send_key));
            },
            py::arg("keys"), py::arg("send_key"))
        .def(
            "full_sync",
            [](SyncService& s, const PeerTuples& peers) {
                auto list = peers_of(peers);
                py::gil_scoped_release release;
                return s.full_sync(list);
            },
            py::arg("peers"))
        .def("full_sync_status",
             [](const SyncService& s) {
                 const auto st = s.full_sync_status();
                 py::dict d;
                 d["state"] = st.state;
                 d["records"] = st.records;
                 d["seconds"] = st.elapsed_s;
                 d["error"] = st.error;
                 py::list peers;
                 for (const auto& p : st.peers) {
                     py::dict pd;
                     pd["node_id"] = p.node_id;
                     pd["address"] = p.address;
                     pd["state"] = p.state;
                     pd["done"] = p.state == "done";
                     pd["records"] = p.records;
                     pd["workers_done"] = p.workers_done;
                     pd["workers"] = p.workers;
                     pd["reconnects"] = p.reconnects;
                     pd["error"] = p.error;
                     peers.append(pd);
                 }
                 d["peers"] = peers;
                 return d;
             })
        .def("stats",
             [](const SyncService& s) {
                 const auto st = s.stats();
                 py::dict d;
                 d["sent_datagrams"] = st.sent_datagrams;
                 d["sent_records"] = st.sent_records;
                 d["sent_bytes"] = st.sent_bytes;
                 d["send_errors"] = st.send_errors;
                 d["unsent_records"] = st.unsent_records;
                 d["unencodable"] = st.unencodable;
                 d["received_datagrams"] = st.received_datagrams;
                 d["received_records"] = st.received_records;
                 d["received_bytes"] = st.received_bytes;
                 d["applied"] = st.applied;
                 d["install_refused"] = st.install_refused;
                 d["test_dropped"] = st.test_dropped;
                 d["full_sync_served"] = st.full_sync_served;
                 d["full_sync_records"] = st.full_sync_records;
                 py::dict dropped;
                 for (size_t i = 0; i < dplb::host::kSyncDropCount; ++i) {
                     dropped[py::str(std::string(dplb::host::kSyncDropNames[i]))] = st.dropped[i];
                 }
                 d["dropped"] = dropped;
                 return d;
             })
        .def("peers",
             [](const SyncService& s) {
                 py::list out;
                 for (const auto& p : s.peers()) {
                     py::dict d;
                     d["node_id"] = p.node_id;
                     d["address"] = p.address;
                     d["datagrams"] = p.datagrams;
                     d["records"] = p.records;
                     d["bytes"] = p.bytes;
                     d["gaps"] = p.gaps;
                     d["epoch"] = p.epoch;
                     d["last_seen_seconds"] = seconds_or_none(p.last_seen_s);
                     d["lag_p50_seconds"] = seconds_or_none(p.lag_p50_s);
                     d["lag_p99_seconds"] = seconds_or_none(p.lag_p99_s);
                     out.append(d);
                 }
                 return out;
             })
        .def("stop", &SyncService::stop, py::call_guard<py::gil_scoped_release>());
}
