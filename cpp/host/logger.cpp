// Logger: drains the workers' log rings on its own thread and writes JSON lines with
// size-based rotation (path -> path.1 -> ... -> path.<keep>).
#include "host/logger.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "core/engine.hpp"

namespace dplb::host {

using namespace dplb::core;

namespace {

constexpr size_t kWriteChunk = 64 * 1024;  // buffered lines are written in chunks this big

int64_t clock_ns(clockid_t id) {
    timespec ts;
    clock_gettime(id, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

void append_escaped(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

void append_key(std::string& out, std::string_view key) {
    out += ",\"";
    out += key;
    out += "\":";
}

void append_uint(std::string& out, std::string_view key, uint64_t v) {
    append_key(out, key);
    out += std::to_string(v);
}

void append_str(std::string& out, std::string_view key, std::string_view v) {
    append_key(out, key);
    append_escaped(out, v);
}

void append_time(std::string& out, int64_t wall_ns) {
    const time_t secs = static_cast<time_t>(wall_ns / 1'000'000'000LL);
    tm t{};
    gmtime_r(&secs, &t);
    char buf[80];  // room for any int fields: no truncation warning at any -O
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                  t.tm_hour, t.tm_min, t.tm_sec, static_cast<long long>((wall_ns % 1'000'000'000LL) / 1000));
    out += "{\"time\":\"";
    out += buf;
    out += '"';
}

const char* close_reason_name(CloseReason r) {
    switch (r) {
        case CloseReason::reset: return "reset";
        case CloseReason::reused: return "reused";
        default: return "expired";
    }
}

}  // namespace

Logger::Logger(Engine& engine, LoggerOptions options) : engine_(engine), options_(std::move(options)) {
    if (options_.path.empty()) throw std::runtime_error("log file: no path given");
    if (!open_file()) {
        throw std::runtime_error("log file " + options_.path + ": cannot open: " + std::strerror(errno));
    }
    for (uint32_t w = 0; w < engine_.worker_count(); ++w) {
        const WorkerStats& s = engine_.worker(w).stats();
        for (size_t i = 0; i < kDropReasonCount; ++i) reported_drops_[i] += s.drops[i];
        reported_log_dropped_ += s.log_dropped;
    }
}

Logger::~Logger() {
    stop();
    close_file();
}

void Logger::start() {
    if (thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = false;
    }
    next_report_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.drop_report_ms);
    thread_ = std::thread([this] { run(); });
}

void Logger::stop() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        paused_ = false;
    }
    cv_.notify_all();
    thread_.join();
}

void Logger::pause() {
    std::unique_lock lock(mutex_);
    paused_ = true;
    cv_.notify_all();
    if (thread_.joinable()) cv_.wait(lock, [this] { return held_ || stopping_; });
}

void Logger::resume() {
    {
        std::lock_guard lock(mutex_);
        paused_ = false;
    }
    cv_.notify_all();
}

bool Logger::flush(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (!thread_.joinable() || paused_) return false;
    const uint64_t ticket = ++flush_requested_;
    cv_.notify_all();
    return cv_.wait_for(lock, timeout, [&] { return flush_done_ >= ticket || stopping_; });
}

bool Logger::event(std::string_view name, std::string_view fields_json) {
    std::string fields(fields_json);
    while (!fields.empty() && (fields.back() == ' ' || fields.back() == '\n')) fields.pop_back();
    if (!fields.empty() && (fields.front() != '{' || fields.back() != '}')) return false;
    std::lock_guard lock(events_mutex_);
    if (events_.size() >= kMaxEvents) {
        events_dropped_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    events_.emplace_back(std::string(name), std::move(fields));
    return true;
}

LoggerStats Logger::stats() const {
    LoggerStats s;
    s.lines_written = lines_written_.load(std::memory_order_relaxed);
    s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
    s.rotations = rotations_.load(std::memory_order_relaxed);
    s.write_errors = write_errors_.load(std::memory_order_relaxed);
    s.lines_lost = lines_lost_.load(std::memory_order_relaxed);
    s.events_dropped = events_dropped_.load(std::memory_order_relaxed);
    for (uint32_t w = 0; w < engine_.worker_count(); ++w) s.worker_dropped += engine_.worker(w).stats().log_dropped;
    std::lock_guard lock(mutex_);
    s.paused = paused_;
    return s;
}

// -- the thread -------------------------------------------------------------------------

void Logger::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        if (paused_) {
            held_ = true;
            cv_.notify_all();
            cv_.wait(lock, [this] { return !paused_ || stopping_; });
            held_ = false;
            continue;
        }
        const uint64_t wanted = flush_requested_;
        lock.unlock();
        const bool emptied = drain(false);
        lock.lock();
        if (emptied) {
            if (wanted > flush_done_) {
                flush_done_ = wanted;
                cv_.notify_all();
            }
            if (flush_requested_ == flush_done_ && !stopping_ && !paused_) {
                cv_.wait_for(lock, std::chrono::microseconds(options_.idle_wait_us));
            }
        }
    }
    lock.unlock();
    drain(true);
    report_drops(true);
    write_out();
}

// One pass over the rings and the event queue. True when everything was drained (the
// rings were found empty), so a flush requested before the pass is complete.
bool Logger::drain(bool all) {
    wall_now_ns_ = clock_ns(CLOCK_REALTIME);
    wall_minus_mono_ns_ = wall_now_ns_ - clock_ns(CLOCK_MONOTONIC);
    bool emptied = true;
    // A bound per pass, so that a flush or a pause is seen even under a steady stream.
    const uint32_t limit = all ? UINT32_MAX : 2 * kLogRingSlots;
    LogRecord r;
    for (uint32_t w = 0; w < engine_.worker_count(); ++w) {
        Worker& worker = engine_.worker(w);
        uint32_t n = 0;
        while (n < limit && worker.take_log_record(r)) {
            format_record(r);
            ++n;
        }
        if (n == limit) emptied = false;
    }
    std::deque<std::pair<std::string, std::string>> events;
    {
        std::lock_guard lock(events_mutex_);
        events.swap(events_);
    }
    for (const auto& [name, fields] : events) format_event(name, fields);
    report_drops(false);
    write_out();
    return emptied;
}

void Logger::begin_line(std::string_view event, uint64_t record_ns, bool has_record_time) {
    line_.clear();
    int64_t wall = wall_now_ns_;
    if (has_record_time && options_.monotonic_clock) wall = static_cast<int64_t>(record_ns) + wall_minus_mono_ns_;
    append_time(line_, wall);
    if (!options_.node.empty()) append_str(line_, "node", options_.node);
    if (!options_.cluster.empty()) append_str(line_, "cluster", options_.cluster);
    append_str(line_, "event", event);
    if (has_record_time && !options_.monotonic_clock) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(record_ns) / 1e9);
        append_key(line_, "engine_time");
        line_ += buf;
    }
}

// Appends the line to the buffer; rotates first when it would not fit in the file.
void Logger::end_line() {
    line_ += "}\n";
    if (options_.max_bytes > 0 && file_bytes_ + buffer_.size() + line_.size() > options_.max_bytes &&
        file_bytes_ + buffer_.size() > 0) {
        write_out();
        rotate();
    }
    buffer_ += line_;
    ++buffer_lines_;
    if (buffer_.size() >= kWriteChunk) write_out();
}

void Logger::format_record(const LogRecord& r) {
    begin_line(r.kind == LogKind::session_open ? "session_open" : "session_close", r.time_ns, true);
    append_uint(line_, "worker", r.worker);
    append_str(line_, "protocol", r.inbound.proto == 6 ? "tcp" : "udp");
    append_str(line_, "client", r.inbound.src.to_string());
    append_uint(line_, "client_port", r.inbound.src_port);
    append_str(line_, "vip", r.inbound.dst.to_string());
    append_uint(line_, "vip_port", r.inbound.dst_port);
    append_str(line_, "local", r.outbound.dst.to_string());
    append_uint(line_, "local_port", r.outbound.dst_port);
    append_str(line_, "real", r.outbound.src.to_string());
    append_uint(line_, "real_port", r.outbound.src_port);
    if (r.kind == LogKind::session_close) {
        append_uint(line_, "bytes_in", r.bytes_in);
        append_uint(line_, "bytes_out", r.bytes_out);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", r.duration_ms / 1000.0);
        append_key(line_, "duration_s");
        line_ += buf;
        if (r.inbound.proto == 6) append_str(line_, "state", tcp_state_name(r.state));
        append_str(line_, "reason", close_reason_name(r.reason));
    }
    end_line();
}

void Logger::format_event(const std::string& name, const std::string& fields) {
    begin_line(name, 0, false);
    // The object's members, without its braces, follow the line's own.
    if (fields.size() > 2) {
        std::string_view inner(fields.data() + 1, fields.size() - 2);
        while (!inner.empty() && (inner.front() == ' ' || inner.front() == '\n')) inner.remove_prefix(1);
        if (!inner.empty()) {
            line_ += ',';
            line_ += inner;
        }
    }
    end_line();
}

// The drop reasons whose counters grew since the last report, one line each, and the
// records the workers could not log: bounded lines however many packets were dropped.
void Logger::report_drops(bool force) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now < next_report_) return;
    next_report_ = now + std::chrono::milliseconds(options_.drop_report_ms);
    std::array<uint64_t, kDropReasonCount> totals{};
    uint64_t log_dropped = 0;
    for (uint32_t w = 0; w < engine_.worker_count(); ++w) {
        const WorkerStats& s = engine_.worker(w).stats();
        for (size_t i = 0; i < kDropReasonCount; ++i) totals[i] += s.drops[i];
        log_dropped += s.log_dropped;
    }
    for (size_t i = 0; i < kDropReasonCount; ++i) {
        if (totals[i] <= reported_drops_[i]) continue;
        begin_line("drops", 0, false);
        append_str(line_, "reason", kDropReasonNames[i]);
        append_uint(line_, "count", totals[i] - reported_drops_[i]);
        append_uint(line_, "total", totals[i]);
        end_line();
        reported_drops_[i] = totals[i];
    }
    if (log_dropped > reported_log_dropped_) {
        begin_line("log_dropped", 0, false);
        append_uint(line_, "count", log_dropped - reported_log_dropped_);
        append_uint(line_, "total", log_dropped);
        end_line();
        reported_log_dropped_ = log_dropped;
    }
}

// -- the file ---------------------------------------------------------------------------

bool Logger::open_file() {
    fd_ = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) return false;
    struct stat st{};
    file_bytes_ = fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    return true;
}

void Logger::close_file() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void Logger::write_out() {
    if (buffer_.empty()) return;
    if (fd_ < 0 && !open_file()) {
        write_errors_.fetch_add(1, std::memory_order_relaxed);
        lines_lost_.fetch_add(buffer_lines_, std::memory_order_relaxed);
    } else {
        const char* p = buffer_.data();
        size_t left = buffer_.size();
        while (left > 0) {
            ssize_t n = ::write(fd_, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            p += n;
            left -= static_cast<size_t>(n);
        }
        const uint64_t done = buffer_.size() - left;
        file_bytes_ += done;
        bytes_written_.fetch_add(done, std::memory_order_relaxed);
        if (left == 0) {
            lines_written_.fetch_add(buffer_lines_, std::memory_order_relaxed);
        } else {
            // A full disk or a removed file: what did not fit is lost; the next write
            // tries a fresh file.
            write_errors_.fetch_add(1, std::memory_order_relaxed);
            lines_lost_.fetch_add(buffer_lines_, std::memory_order_relaxed);
            close_file();
        }
    }
    buffer_.clear();
    buffer_lines_ = 0;
}

void Logger::rotate() {
    close_file();
    const std::string& base = options_.path;
    if (options_.keep == 0) {
        ::unlink(base.c_str());
    } else {
        for (uint32_t i = options_.keep; i > 1; --i) {
            std::string from = base + "." + std::to_string(i - 1);
            std::string to = base + "." + std::to_string(i);
            ::rename(from.c_str(), to.c_str());  // a missing one is fine
        }
        ::rename(base.c_str(), (base + ".1").c_str());
    }
    rotations_.fetch_add(1, std::memory_order_relaxed);
    if (!open_file()) write_errors_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace dplb::host
