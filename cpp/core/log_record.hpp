// LogRecord: the fixed-size record a worker pushes into its log ring (connection log of
// services with `connection_log`); the logger thread turns it into a JSON line.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/flow_key.hpp"
#include "core/session.hpp"
#include "core/spsc_ring.hpp"

namespace dplb::core {

enum class LogKind : uint8_t {
    session_open,   // a session was created: both tuples
    session_close,  // a session was freed: both tuples, bytes each way, duration
};

// Why a session ended (session_close).
enum class CloseReason : uint8_t {
    expired,  // its timeout passed (after FIN or RST in states time_wait and close)
    reset,    // the control side removed it (API session reset)
    reused,   // the client opened a new connection on the same port
};

struct alignas(64) LogRecord {
    uint64_t time_ns = 0;   // the worker's clock (the runtime's is CLOCK_MONOTONIC)
    FlowKey inbound;        // client -> VIP
    FlowKey outbound;       // real -> local address
    uint64_t bytes_in = 0;  // client -> real
    uint64_t bytes_out = 0;
    uint32_t duration_ms = 0;
    uint16_t worker = 0;
    LogKind kind = LogKind::session_open;
    CloseReason reason = CloseReason::expired;
    TcpState state = TcpState::none;  // at close
    uint8_t pad[7] = {};
};
static_assert(std::is_trivially_copyable_v<LogRecord>);
static_assert(sizeof(LogRecord) == 128, "a log record is two cache lines");

// Per worker: 8192 records (1 MiB) ride out a logger that stalls for a moment at tens of
// thousands of connections per second; past that, records are dropped and counted.
inline constexpr uint32_t kLogRingSlots = 8192;
using LogRing = SpscRing<LogRecord, kLogRingSlots>;

}  // namespace dplb::core
