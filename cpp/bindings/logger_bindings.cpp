// dplb._core.Logger and LoggerOptions: the logger thread as the harness engine and the
// runtime expose it. Calls that wait for the thread release the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>

#include "host/logger.hpp"

namespace py = pybind11;
using dplb::host::Logger;
using dplb::host::LoggerOptions;

void register_logger(py::module_& m) {
    py::class_<LoggerOptions>(m, "LoggerOptions")
        .def(py::init<>())
        .def_readwrite("path", &LoggerOptions::path)
        .def_readwrite("max_bytes", &LoggerOptions::max_bytes)
        .def_readwrite("keep", &LoggerOptions::keep)
        .def_readwrite("monotonic_clock", &LoggerOptions::monotonic_clock)
        .def_readwrite("drop_report_ms", &LoggerOptions::drop_report_ms)
        .def_readwrite("idle_wait_us", &LoggerOptions::idle_wait_us)
        .def_readwrite("node", &LoggerOptions::node)
        .def_readwrite("cluster", &LoggerOptions::cluster);

    py::class_<Logger>(m, "Logger")
        .def_property_readonly("path", [](const Logger& l) { return l.options().path; })
        .def_property_readonly("running", &Logger::running)
        .def("pause", &Logger::pause, py::call_guard<py::gil_scoped_release>())
        .def("resume", &Logger::resume, py::call_guard<py::gil_scoped_release>())
        .def("stop", &Logger::stop, py::call_guard<py::gil_scoped_release>())
        .def(
            "flush",
            [](Logger& l, double timeout) {
                py::gil_scoped_release release;
                return l.flush(std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
            },
            py::arg("timeout") = 5.0)
        .def("event", &Logger::event, py::arg("name"), py::arg("fields_json") = "")
        .def("stats", [](const Logger& l) {
            auto s = l.stats();
            py::dict d;
            d["lines_written"] = s.lines_written;
            d["bytes_written"] = s.bytes_written;
            d["rotations"] = s.rotations;
            d["write_errors"] = s.write_errors;
            d["lines_lost"] = s.lines_lost;
            d["events_dropped"] = s.events_dropped;
            d["worker_dropped"] = s.worker_dropped;
            d["paused"] = s.paused;
            return d;
        });
}
