// Worker commands: the control side queues, the owning worker carries out (session reset).
#include "core/worker_commands.hpp"

#include "core/engine.hpp"

namespace dplb::core {

bool Engine::reset_session(const FlowKey& inbound) {
    std::lock_guard lock(command_mutex_);
    return workers_[inbound_owner(inbound)]->post_command({WorkerCommandKind::reset_session, inbound});
}

uint32_t Worker::run_commands() {
    uint32_t done = 0;
    WorkerCommand command;
    while (commands_.pop(command)) {
        switch (command.kind) {
            case WorkerCommandKind::reset_session: done += reset_session(command.key); break;
        }
    }
    return done;
}

bool Worker::reset_session(const FlowKey& inbound) {
    SessionRef ref = table_.lookup(inbound, hash_key(inbound));
    if (!ref || ref.direction != Direction::inbound) return false;
    const bool peer_copy = ref.session->sync_flags & kSyncInstalled;
    wheel_.unfile(table_.sessions(), ref.index);
    // expire() is the one way a session is freed (port back to its pool, counters);
    // it counts an expiry, which this is not.
    expire(ref.index, CloseReason::reset);
    if (peer_copy) {
        --stats_.sync_expired;
        ++stats_.sync_removed;
        return true;
    }
    --stats_.sessions_expired;
    ++stats_.sessions_reset;
    return true;
}

}  // namespace dplb::core
