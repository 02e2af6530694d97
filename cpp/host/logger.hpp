// Logger: the logger thread of DESIGN section 1. It drains the workers' log rings and the
// control side's events, writes them as JSON lines with size-based rotation, and reports
// drop counters that grew. Host side (a thread and files); the rings and the record
// format stay in core (core/log_record.hpp). A slow or full disk slows only this thread: workers never wait
// for it (a full ring drops the record and counts it in WorkerStats::log_dropped).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/drop_reason.hpp"
#include "core/log_record.hpp"

namespace dplb::core {
class Engine;
}  // namespace dplb::core

namespace dplb::host {

struct LoggerOptions {
    std::string path;                   // the log file; rotated ones are path.1 (newest) ... path.<keep>
    uint64_t max_bytes = 64ULL << 20;   // a file is rotated before it would grow past this
    uint32_t keep = 5;                  // rotated files kept (0: the full file is removed)
    // The workers' clocks are CLOCK_MONOTONIC (the DPDK runtime): record times become
    // wall-clock times. False for the harness, whose clock the caller moves: a line gets
    // the wall-clock time it was written and the engine's own as `engine_time`.
    bool monotonic_clock = true;
    uint32_t drop_report_ms = 10'000;   // how often drop counters that grew are reported
    uint32_t idle_wait_us = 2'000;      // how long the thread sleeps when there is nothing to do
    std::string node;                   // written as "node" and "cluster" on every line, when set
    std::string cluster;
};

struct LoggerStats {
    uint64_t lines_written = 0;
    uint64_t bytes_written = 0;
    uint64_t rotations = 0;
    uint64_t write_errors = 0;     // failed opens or writes of the file
    uint64_t lines_lost = 0;       // lines formatted but lost to write errors
    uint64_t events_dropped = 0;   // control-side events refused: their queue was full
    uint64_t worker_dropped = 0;   // records the workers dropped (sum of their log_dropped)
    bool paused = false;
};

class Logger {
public:
    // Opens (appends to) the file; throws std::runtime_error saying why it cannot.
    Logger(core::Engine& engine, LoggerOptions options);
    ~Logger();
    Logger(const Logger&) = delete;
    Logger& operator=(const Logger&) = delete;

    void start();
    // Writes what is left in the rings and the event queue, then closes the file.
    void stop();
    bool running() const { return thread_.joinable(); }

    // Holds the thread still (it drains nothing; workers keep forwarding and their rings
    // fill, then drop): returns once it is held. For tests, and an operator's "pause".
    void pause();
    void resume();
    // Waits until what was pushed and queued before the call is written; false on timeout
    // (or when paused).
    bool flush(std::chrono::milliseconds timeout);

    // A control-side event (start, stop, config applied or refused, real up or down):
    // `fields_json` is a JSON object ("{...}", may be empty) whose members join the line.
    // Any thread may call it; false when the queue is full (counted) or the fields are
    // not an object.
    bool event(std::string_view name, std::string_view fields_json = {});

    LoggerStats stats() const;
    const LoggerOptions& options() const { return options_; }

private:
    void run();
    bool drain(bool all);
    void format_record(const core::LogRecord& r);
    void format_event(const std::string& name, const std::string& fields);
    void report_drops(bool force);
    void begin_line(std::string_view event, uint64_t record_ns, bool has_record_time);
    void end_line();
    void write_out();
    void rotate();
    bool open_file();
    void close_file();

    core::Engine& engine_;
    LoggerOptions options_;
    std::thread thread_;

    // Thread control.
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool paused_ = false;
    bool held_ = false;
    uint64_t flush_requested_ = 0;
    uint64_t flush_done_ = 0;

    // Control-side events, bounded.
    static constexpr size_t kMaxEvents = 4096;
    std::mutex events_mutex_;
    std::deque<std::pair<std::string, std::string>> events_;

    // The logger thread's own state.
    int fd_ = -1;
    uint64_t file_bytes_ = 0;
    std::string buffer_;
    uint64_t buffer_lines_ = 0;
    std::string line_;
    int64_t wall_minus_mono_ns_ = 0;  // refreshed once per pass
    int64_t wall_now_ns_ = 0;
    std::chrono::steady_clock::time_point next_report_;
    std::array<uint64_t, core::kDropReasonCount> reported_drops_{};
    uint64_t reported_log_dropped_ = 0;

    std::atomic<uint64_t> lines_written_{0};
    std::atomic<uint64_t> bytes_written_{0};
    std::atomic<uint64_t> rotations_{0};
    std::atomic<uint64_t> write_errors_{0};
    std::atomic<uint64_t> lines_lost_{0};
    std::atomic<uint64_t> events_dropped_{0};
};

}  // namespace dplb::host
