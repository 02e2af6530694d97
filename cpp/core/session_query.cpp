#include "core/session_query.hpp"

#include "core/worker.hpp"

namespace dplb::core {

bool SessionFilter::matches(const Session& s) const {
    if (match_nothing) return false;
    if (client && !client->contains(s.inbound.src)) return false;
    if (client_port && *client_port != s.inbound.src_port) return false;
    if (vip && !(*vip == s.inbound.dst)) return false;
    if (vip_port && *vip_port != s.inbound.dst_port) return false;
    if (real && !(*real == s.outbound.src)) return false;
    if (real_port && *real_port != s.outbound.src_port) return false;
    if (proto && *proto != s.inbound.proto) return false;
    if (state && *state != s.state) return false;
    return true;
}

std::optional<TcpState> tcp_state_from_name(std::string_view name) {
    for (size_t i = 0; i < static_cast<size_t>(TcpState::count_); ++i) {
        const auto state = static_cast<TcpState>(i);
        if (tcp_state_name(state) == name) return state;
    }
    return std::nullopt;
}

uint32_t find_in_table(const SessionTable& table, const SessionFilter& filter, uint32_t from, uint32_t limit,
                       std::vector<uint32_t>& out) {
    const Session* all = table.sessions();
    uint32_t found = 0;
    uint32_t i = from;
    for (; i < table.capacity() && found < limit; ++i) {
        const Session& s = all[i];
        if (!(s.flags & kSessionInUse) || !filter.matches(s)) continue;
        out.push_back(i);
        ++found;
    }
    return i;
}

std::optional<SessionCursor> find_sessions(const Engine& engine, const SessionFilter& filter, SessionCursor from,
                                           uint32_t limit, std::vector<SessionMatch>& out) {
    std::vector<uint32_t> indexes;
    uint32_t w = from.worker;
    uint32_t index = from.index;
    if (filter.worker && *filter.worker > w) {
        w = *filter.worker;
        index = 0;
    }
    const uint32_t last = filter.worker ? *filter.worker : engine.worker_count() - 1;
    for (; w < engine.worker_count() && w <= last; ++w, index = 0) {
        const Worker& worker = engine.worker(w);
        const SessionTable& table = worker.sessions();
        indexes.clear();
        const uint32_t stopped = find_in_table(table, filter, index, limit - static_cast<uint32_t>(out.size()), indexes);
        for (uint32_t i : indexes) {
            const Session& s = table.sessions()[i];
            out.push_back({w, s, static_cast<int64_t>(s.expire_tick) - static_cast<int64_t>(worker.now_tick())});
        }
        if (out.size() >= limit) {
            if (stopped < table.capacity()) return SessionCursor{w, stopped};
            if (w + 1 < engine.worker_count() && w + 1 <= last) return SessionCursor{w + 1, 0};
            return std::nullopt;
        }
    }
    return std::nullopt;
}

}  // namespace dplb::core
