// Session search for the control side: a filter over both tuples, a walk of the session
// tables in table order (worker, then slot) that stops after `limit` matches, and a
// cursor to continue from. Sessions never move in their table, so a session that lives
// through a whole paging is seen exactly once; one created or removed meanwhile may or
// may not be.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/engine.hpp"
#include "core/ip_address.hpp"
#include "core/session.hpp"
#include "core/session_table.hpp"

namespace dplb::core {

// Every field set must match (AND); unset fields match everything.
struct SessionFilter {
    std::optional<Prefix> client;
    std::optional<uint16_t> client_port;
    std::optional<IpAddress> vip;
    std::optional<uint16_t> vip_port;
    std::optional<IpAddress> real;
    std::optional<uint16_t> real_port;
    std::optional<uint8_t> proto;
    std::optional<TcpState> state;
    std::optional<uint32_t> worker;
    bool match_nothing = false;  // e.g. a state name that no session can have

    bool matches(const Session& s) const;
};

// The state named `name` (as tcp_state_name gives it), or nullopt.
std::optional<TcpState> tcp_state_from_name(std::string_view name);

// Where a walk goes on from: the first slot of `worker` not looked at yet.
struct SessionCursor {
    uint32_t worker = 0;
    uint32_t index = 0;
};

// Appends to `out` the indexes of at most `limit` sessions of `table` matching `filter`,
// from slot `from` on. Returns the slot after the last one looked at: capacity() when
// the walk reached the end of the table.
uint32_t find_in_table(const SessionTable& table, const SessionFilter& filter, uint32_t from, uint32_t limit,
                       std::vector<uint32_t>& out);

struct SessionMatch {
    uint32_t worker;
    Session session;           // a copy, read from the control side while the worker runs
    int64_t expires_in_ticks;  // from the worker's clock when it was read
};

// The sessions of every worker matching `filter`, at most `limit`, from `from` on.
// Returns the cursor to continue from, or nullopt when the walk reached the end.
std::optional<SessionCursor> find_sessions(const Engine& engine, const SessionFilter& filter, SessionCursor from,
                                           uint32_t limit, std::vector<SessionMatch>& out);

}  // namespace dplb::core
