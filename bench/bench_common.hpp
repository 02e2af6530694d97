// What every C++ benchmark of bench/ records beside its figures: the machine, the load
// average, the date, the process's memory, and a small JSON writer for the result file.
#pragma once

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dplb::bench {

inline std::string read_first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown";
}

inline bool is_virtual_machine() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("flags", 0) == 0) return line.find(" hypervisor") != std::string::npos;
    }
    return false;
}

// The 1-, 5- and 15-minute load averages: the machine is shared, so every result says
// how busy it was.
inline std::vector<double> load_average() {
    std::istringstream in(read_first_line("/proc/loadavg"));
    std::vector<double> out(3, 0.0);
    in >> out[0] >> out[1] >> out[2];
    return out;
}

// Resident memory of this process in bytes (VmRSS).
inline size_t rss_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
}

inline size_t memory_total_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("MemTotal:", 0) == 0) return std::stoull(line.substr(9)) * 1024;
    }
    return 0;
}

inline std::string utc_now() {
    char date[32];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    return date;
}

inline std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

inline std::string json_number(double v) {
    char buf[32];
    if (v == static_cast<double>(static_cast<long long>(v)) && v > -1e15 && v < 1e15) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));  // counts stay exact
    } else {
        std::snprintf(buf, sizeof buf, "%.6g", v);
    }
    return buf;
}

inline std::string json_array(const std::vector<double>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        out += json_number(v[i]);
    }
    return out + "]";
}

// An ordered JSON object built from already-encoded values.
class JsonObject {
public:
    JsonObject& raw(const std::string& key, const std::string& encoded) {
        fields_.emplace_back(key, encoded);
        return *this;
    }
    JsonObject& str(const std::string& key, const std::string& v) { return raw(key, json_string(v)); }
    JsonObject& num(const std::string& key, double v) { return raw(key, json_number(v)); }
    JsonObject& boolean(const std::string& key, bool v) { return raw(key, v ? "true" : "false"); }
    JsonObject& obj(const std::string& key, const JsonObject& o) { return raw(key, o.dump()); }
    std::string dump(int indent = 0) const {
        if (fields_.empty()) return "{}";
        std::string pad(static_cast<size_t>(indent + 2), ' ');
        std::string out = "{\n";
        for (size_t i = 0; i < fields_.size(); ++i) {
            std::string value = fields_[i].second;
            // Re-indent nested objects and arrays written on several lines.
            std::string shifted;
            for (char c : value) {
                shifted += c;
                if (c == '\n') shifted += pad;
            }
            out += pad + json_string(fields_[i].first) + ": " + shifted + (i + 1 < fields_.size() ? ",\n" : "\n");
        }
        return out + std::string(static_cast<size_t>(indent), ' ') + "}";
    }

private:
    std::vector<std::pair<std::string, std::string>> fields_;
};

inline std::string json_list(const std::vector<JsonObject>& items) {
    if (items.empty()) return "[]";
    std::string out = "[\n";
    for (size_t i = 0; i < items.size(); ++i) {
        std::string value = items[i].dump();
        std::string shifted = "  ";
        for (char c : value) {
            shifted += c;
            if (c == '\n') shifted += "  ";
        }
        out += shifted + (i + 1 < items.size() ? ",\n" : "\n");
    }
    return out + "]";
}

inline JsonObject machine_info() {
    utsname u{};
    uname(&u);
    JsonObject m;
    m.str("cpu", cpu_model())
        .num("cores", std::thread::hardware_concurrency())
        .num("memory_bytes", static_cast<double>(memory_total_bytes()))
        .boolean("virtual_machine", is_virtual_machine())
        .str("kernel", u.release)
        .str("compiler", "gcc " __VERSION__);
    return m;
}

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline bool write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text << "\n";
    return static_cast<bool>(out);
}

}  // namespace dplb::bench
