// Worker commands: requests from the control side that only a worker may carry out on its
// own state (reset a session), passed through a lock-free single-producer ring per worker.
#pragma once

#include <cstdint>

#include "core/flow_key.hpp"
#include "core/spsc_ring.hpp"

namespace dplb::core {

enum class WorkerCommandKind : uint8_t {
    reset_session,  // remove the session whose inbound (client -> VIP) tuple is `key`
};

struct WorkerCommand {
    WorkerCommandKind kind = WorkerCommandKind::reset_session;
    FlowKey key;
};

inline constexpr uint32_t kWorkerCommandSlots = 256;
using WorkerCommandRing = SpscRing<WorkerCommand, kWorkerCommandSlots>;

}  // namespace dplb::core
