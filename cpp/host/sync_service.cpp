// SyncService (sync_service.hpp): the session-sync thread, its UDP datagrams both ways,
// and full syncs over TCP (served and pulled).
#include "host/sync_service.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <time.h>

#include "core/engine.hpp"

namespace dplb::host {

using core::kSyncHeaderBytes;
using core::kSyncMaxRecords;
using core::kSyncRecordMaxBytes;
using core::kSyncTagBytes;

namespace {

constexpr uint32_t kRingBudget = 4096;       // records taken from one worker's ring per pass
constexpr uint32_t kReceiveBudget = 256;     // datagrams read per pass
constexpr size_t kMaxStreamMessage = 1u << 20;
constexpr uint64_t kRequestMaxAgeNs = 60'000'000'000ULL;  // a full-sync request older than this is refused
constexpr uint64_t kLagWindowNs = 10'000'000'000ULL;      // lag quantiles cover the last 10-20 s

uint64_t clock_ns(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}
uint64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
uint64_t real_ns() { return clock_ns(CLOCK_REALTIME); }

void put32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
uint32_t get32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

uint64_t xorshift(uint64_t& s) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

// Waits until `fd` is ready for `events`, in slices so that `stopping` is seen; false on
// timeout, stop or error.
bool wait_fd(int fd, short events, uint32_t timeout_ms, const std::atomic<bool>& stopping) {
    const uint64_t deadline = mono_ns() + uint64_t(timeout_ms) * 1'000'000ULL;
    while (!stopping.load(std::memory_order_acquire)) {
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, 100);
        if (r > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
        if (r < 0 && errno != EINTR) return false;
        if (mono_ns() > deadline) return false;
    }
    return false;
}

bool read_exact(int fd, uint8_t* p, size_t n, uint32_t timeout_ms, const std::atomic<bool>& stopping) {
    while (n > 0) {
        const ssize_t r = ::recv(fd, p, n, MSG_DONTWAIT);
        if (r > 0) {
            p += r;
            n -= static_cast<size_t>(r);
            continue;
        }
        if (r == 0) return false;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
        if (!wait_fd(fd, POLLIN, timeout_ms, stopping)) return false;
    }
    return true;
}

bool write_all(int fd, const uint8_t* p, size_t n, uint32_t timeout_ms, const std::atomic<bool>& stopping) {
    while (n > 0) {
        const ssize_t r = ::send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= static_cast<size_t>(r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
        if (!wait_fd(fd, POLLOUT, timeout_ms, stopping)) return false;
    }
    return true;
}

// Lag of a peer's datagrams: log-scale buckets (4 per octave of microseconds), two
// windows so that the quantiles follow the recent past.
struct LagHistogram {
    static constexpr size_t kBuckets = 96;
    std::array<uint64_t, kBuckets> now{}, before{};
    uint64_t window_start = 0;

    static size_t bucket(uint64_t lag_ns) {
        const double us = static_cast<double>(lag_ns) / 1000.0;
        if (us < 1.0) return 0;
        const auto b = static_cast<size_t>(std::log2(us) * 4.0) + 1;
        return std::min(b, kBuckets - 1);
    }
    static double bucket_s(size_t b) { return b == 0 ? 0.0 : std::exp2(static_cast<double>(b) / 4.0) / 1e6; }
    void add(uint64_t lag_ns, uint64_t mono) {
        if (mono - window_start > kLagWindowNs) {
            before = now;
            now.fill(0);
            window_start = mono;
        }
        ++now[bucket(lag_ns)];
    }
    double quantile_s(double q) const {
        uint64_t total = 0;
        for (size_t b = 0; b < kBuckets; ++b) total += now[b] + before[b];
        if (total == 0) return -1;
        const auto target = static_cast<uint64_t>(q * static_cast<double>(total - 1));
        uint64_t seen = 0;
        for (size_t b = 0; b < kBuckets; ++b) {
            seen += now[b] + before[b];
            if (seen > target) return bucket_s(b);
        }
        return bucket_s(kBuckets - 1);
    }
};

}  // namespace

// An "ip:port" (or "[ip6]:port") as a socket address of the service's family.
struct SyncService::Address {
    sockaddr_storage ss{};
    socklen_t len = 0;

    static Address parse(const std::string& text, int family, const char* what) {
        std::string host;
        std::string port;
        if (!text.empty() && text.front() == '[') {
            const auto close = text.find(']');
            if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
                throw std::invalid_argument(std::string(what) + ": '" + text + "' is not [ip6]:port");
            }
            host = text.substr(1, close - 1);
            port = text.substr(close + 2);
        } else {
            const auto colon = text.rfind(':');
            if (colon == std::string::npos) {
                throw std::invalid_argument(std::string(what) + ": '" + text + "' is not ip:port");
            }
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
        }
        char* end = nullptr;
        const unsigned long p = std::strtoul(port.c_str(), &end, 10);
        if (port.empty() || *end != '\0' || p > 65535) {
            throw std::invalid_argument(std::string(what) + ": '" + text + "' has no port 0..65535");
        }
        Address a;
        in_addr v4{};
        in6_addr v6{};
        if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
            if (family == AF_INET6) {  // a v4 peer reached from a dual-stack socket
                v6.s6_addr[10] = v6.s6_addr[11] = 0xff;
                std::memcpy(&v6.s6_addr[12], &v4, 4);
            } else {
                auto* s = reinterpret_cast<sockaddr_in*>(&a.ss);
                s->sin_family = AF_INET;
                s->sin_addr = v4;
                s->sin_port = htons(static_cast<uint16_t>(p));
                a.len = sizeof(sockaddr_in);
                return a;
            }
        } else if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
            throw std::invalid_argument(std::string(what) + ": '" + host + "' is not an IP address");
        } else if (family == AF_INET) {
            throw std::invalid_argument(std::string(what) + ": '" + text +
                                        "' is IPv6 while sync listens on IPv4 (listen on [::]:port)");
        }
        auto* s = reinterpret_cast<sockaddr_in6*>(&a.ss);
        s->sin6_family = AF_INET6;
        s->sin6_addr = v6;
        s->sin6_port = htons(static_cast<uint16_t>(p));
        a.len = sizeof(sockaddr_in6);
        return a;
    }
};

struct SyncService::Peer {
    uint32_t node_id = 0;
    std::string address;
    Address addr;
    ReplayWindow window;  // the sync thread's
    // Under `mutex` (the sync thread writes, stats readers read).
    mutable std::mutex mutex;
    uint64_t datagrams = 0, records = 0, bytes = 0, gaps = 0;
    uint64_t last_seen_mono = 0;
    uint64_t epoch = 0;
    LagHistogram lag;
};

struct SyncService::FullSyncRun {
    struct PeerRun {
        SyncPeer peer;
        Address addr;
        // Under `mutex`.
        std::string state = "running";
        uint64_t records = 0;
        uint32_t worker = 0;  // the cursor: where the next batch starts
        uint32_t slot = 0;
        uint32_t workers = 0;
        uint32_t reconnects = 0;
        std::string error;
    };
    mutable std::mutex mutex;
    std::vector<PeerRun> peers;
    uint64_t started_mono = 0;
    uint64_t ended_mono = 0;
};

SyncService::SyncService(core::Engine& engine, SyncServiceOptions options)
    : engine_(engine), options_(std::move(options)), epoch_(real_ns()) {
    if (options_.node_id == 0) throw std::invalid_argument("node_id: 0 is not a node id");
    if (!engine_.config().sync_enabled) {
        throw std::invalid_argument("the engine runs with sync_enabled off: it pushes no records");
    }
    if (options_.mtu < kSyncHeaderBytes + kSyncTagBytes + kSyncRecordMaxBytes || options_.mtu > 65000) {
        throw std::invalid_argument("mtu: " + std::to_string(options_.mtu) + " is outside " +
                                    std::to_string(kSyncHeaderBytes + kSyncTagBytes + kSyncRecordMaxBytes) +
                                    "..65000 bytes");
    }
    if (!(options_.flush_ms > 0)) throw std::invalid_argument("flush_ms: must be above 0");
    if (options_.full_sync_batch == 0 || options_.full_sync_batch > kSyncMaxRecords) {
        throw std::invalid_argument("full_sync_batch: 1.." + std::to_string(kSyncMaxRecords) + " records");
    }
    keyring_.set(options_.keys, options_.send_key);  // throws naming what is wrong
    // The family comes from the listen address; parse it once for each to find it.
    family_ = options_.listen.find('[') == 0 || std::count(options_.listen.begin(), options_.listen.end(), ':') > 1
                  ? AF_INET6
                  : AF_INET;
    const Address listen = Address::parse(options_.listen, family_, "listen");
    peers_ = std::make_shared<const PeerList>();

    auto fail = [this](const std::string& what) {
        const std::string why = what + ": " + std::strerror(errno);
        for (int fd : {udp_fd_, tcp_fd_, wake_fd_}) {
            if (fd >= 0) ::close(fd);
        }
        throw std::runtime_error("sync: " + why);
    };
    udp_fd_ = ::socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    tcp_fd_ = ::socket(family_, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (udp_fd_ < 0 || tcp_fd_ < 0 || wake_fd_ < 0) fail("socket");
    const int one = 1;
    const int zero = 0;
    ::setsockopt(tcp_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family_ == AF_INET6) {
        ::setsockopt(udp_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        ::setsockopt(tcp_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    const int buf = 8 << 20;  // bursts of records: let the kernel hold them while we install
    ::setsockopt(udp_fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    ::setsockopt(udp_fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (::bind(udp_fd_, reinterpret_cast<const sockaddr*>(&listen.ss), listen.len) != 0) {
        fail("bind UDP " + options_.listen);
    }
    sockaddr_storage bound{};
    socklen_t bound_len = sizeof bound;
    ::getsockname(udp_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len);
    listen_port_ = ntohs(family_ == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                            : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    Address tcp_listen = listen;  // the same port number over TCP (port 0: the one UDP got)
    if (family_ == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&tcp_listen.ss)->sin_port = htons(listen_port_);
    } else {
        reinterpret_cast<sockaddr_in6*>(&tcp_listen.ss)->sin6_port = htons(listen_port_);
    }
    if (::bind(tcp_fd_, reinterpret_cast<const sockaddr*>(&tcp_listen.ss), tcp_listen.len) != 0 ||
        ::listen(tcp_fd_, 16) != 0) {
        fail("bind TCP port " + std::to_string(listen_port_));
    }

    cipher_ = std::make_unique<SyncCipher>(keyring_);
    batch_.resize(options_.mtu);
    receive_buf_.resize(65536);
    decoded_.resize(kSyncMaxRecords);
    rng_ = epoch_ ^ (uint64_t(options_.node_id) << 32) ^ 0x9e3779b97f4a7c15ULL;
    if (rng_ == 0) rng_ = 1;
    last_send_ns_ = mono_ns();
    thread_ = std::thread([this] { run(); });
}

SyncService::~SyncService() { stop(); }

void SyncService::stop() {
    std::call_once(stopped_, [this] {
        stopping_.store(true, std::memory_order_release);
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof one);
        if (thread_.joinable()) thread_.join();
        reap_threads(true);
        for (int fd : {udp_fd_, tcp_fd_, wake_fd_}) {
            if (fd >= 0) ::close(fd);
        }
        udp_fd_ = tcp_fd_ = wake_fd_ = -1;
    });
}

// -- peers and keys ---------------------------------------------------------------------

void SyncService::set_peers(const std::vector<SyncPeer>& peers) {
    std::lock_guard lock(peers_mutex_);
    auto next = std::make_shared<PeerList>();
    for (const SyncPeer& p : peers) {
        if (p.node_id == 0 || p.node_id == options_.node_id) {
            throw std::invalid_argument("peer " + p.address + ": node id " + std::to_string(p.node_id) +
                                        (p.node_id == 0 ? " is not a node id" : " is this node's"));
        }
        for (const auto& q : *next) {
            if (q->node_id == p.node_id) {
                throw std::invalid_argument("peer " + p.address + ": node id " + std::to_string(p.node_id) +
                                            " is listed twice");
            }
        }
        std::shared_ptr<Peer> kept;
        for (const auto& q : *peers_) {
            if (q->node_id == p.node_id && q->address == p.address) kept = q;
        }
        if (!kept) {
            kept = std::make_shared<Peer>();
            kept->node_id = p.node_id;
            kept->address = p.address;
            kept->addr = Address::parse(p.address, family_, "peer");
        }
        next->push_back(std::move(kept));
    }
    peers_ = std::move(next);
}

void SyncService::set_keys(const std::vector<SyncKey>& keys, uint8_t send_key) { keyring_.set(keys, send_key); }

std::shared_ptr<const SyncService::PeerList> SyncService::peer_list() const {
    std::lock_guard lock(peers_mutex_);
    return peers_;
}

std::shared_ptr<SyncService::Peer> SyncService::find_peer(uint32_t node_id) const {
    const auto list = peer_list();
    for (const auto& p : *list) {
        if (p->node_id == node_id) return p;
    }
    return nullptr;
}

// -- the sync thread --------------------------------------------------------------------

void SyncService::run() {
    const auto flush_ns = static_cast<uint64_t>(options_.flush_ms * 1e6);
    const uint64_t heartbeat_ns = uint64_t(options_.heartbeat_ms) * 1'000'000ULL;
    while (!stopping()) {
        const bool busy = drain_rings();
        const uint64_t now = mono_ns();
        if (batch_count_ > 0 && now - batch_first_ns_ >= flush_ns) flush_batch(now);
        if (batch_count_ == 0 && heartbeat_ns > 0 && now - last_send_ns_ >= heartbeat_ns) flush_batch(now);
        // Sleep until a datagram, a connection or the next look at the rings: a record
        // waits at most flush_ms in all (a quarter of it here).
        timespec wait{0, busy ? 0 : static_cast<long>(std::min<uint64_t>(flush_ns / 4, 1'000'000))};
        pollfd fds[3] = {{udp_fd_, POLLIN, 0}, {tcp_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        const int r = ::ppoll(fds, 3, &wait, nullptr);
        if (r <= 0) continue;
        if (fds[0].revents & POLLIN) receive_datagrams();
        if (fds[1].revents & POLLIN) accept_streams();
    }
    if (batch_count_ > 0) flush_batch(mono_ns());
}

bool SyncService::drain_rings() {
    bool any = false;
    core::SyncRecord r;
    for (uint32_t w = 0; w < engine_.worker_count(); ++w) {
        core::Worker& worker = engine_.worker(w);
        for (uint32_t n = 0; n < kRingBudget && worker.take_sync_record(r); ++n) {
            add_record(r);
            any = true;
        }
    }
    return any;
}

void SyncService::add_record(const core::SyncRecord& r) {
    const size_t size = core::sync_record_wire_size(r);
    const size_t room = options_.mtu - kSyncHeaderBytes - kSyncTagBytes;
    if (batch_count_ > 0 && (batch_body_ + size > room || batch_count_ == kSyncMaxRecords)) flush_batch(mono_ns());
    const size_t n = core::encode_sync_record(r, batch_.data() + kSyncHeaderBytes + batch_body_);
    if (n == 0) {
        unencodable_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (batch_count_ == 0) batch_first_ns_ = mono_ns();
    batch_body_ += n;
    ++batch_count_;
}

void SyncService::flush_batch(uint64_t now) {
    const auto peers = peer_list();
    const uint16_t count = batch_count_;
    const size_t body = batch_body_;
    batch_count_ = 0;
    batch_body_ = 0;
    last_send_ns_ = now;
    if (peers->empty()) {
        unsent_records_.fetch_add(count, std::memory_order_relaxed);
        return;
    }
    core::SyncHeader h;
    h.type = core::SyncMessage::records;
    h.count = count;
    h.node_id = options_.node_id;
    h.epoch = epoch_;
    h.sequence = udp_sequence_++;
    h.send_time_ns = real_ns();
    const size_t len = cipher_->seal(h, SyncChannel::udp, batch_.data(), body);
    if (len == 0) {
        send_errors_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    for (const auto& p : *peers) {
        const ssize_t s = ::sendto(udp_fd_, batch_.data(), len, MSG_DONTWAIT,
                                   reinterpret_cast<const sockaddr*>(&p->addr.ss), p->addr.len);
        if (s == static_cast<ssize_t>(len)) {
            sent_datagrams_.fetch_add(1, std::memory_order_relaxed);
            sent_bytes_.fetch_add(len, std::memory_order_relaxed);
        } else {
            send_errors_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    sent_records_.fetch_add(count, std::memory_order_relaxed);
}

void SyncService::receive_datagrams() {
    for (uint32_t i = 0; i < kReceiveBudget; ++i) {
        const ssize_t n = ::recv(udp_fd_, receive_buf_.data(), receive_buf_.size(), MSG_DONTWAIT);
        if (n < 0) return;
        if (options_.test_receive_loss > 0 &&
            static_cast<double>(xorshift(rng_) % 1'000'000) < options_.test_receive_loss * 1e6) {
            test_dropped_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        handle_datagram(receive_buf_.data(), static_cast<size_t>(n));
    }
}

void SyncService::handle_datagram(uint8_t* data, size_t len) {
    core::SyncHeader h;
    const core::SyncDecodeError e = core::decode_sync_header(data, len, h);
    if (e != core::SyncDecodeError::ok || h.type != core::SyncMessage::records ||
        len < kSyncHeaderBytes + kSyncTagBytes) {
        count_drop(e == core::SyncDecodeError::bad_version ? SyncDrop::bad_version : SyncDrop::malformed);
        return;
    }
    const auto peer = find_peer(h.node_id);
    if (!peer) {
        count_drop(SyncDrop::unknown_peer);
        return;
    }
    switch (peer->window.check(h.epoch, h.sequence)) {  // before the tag: a replay costs no decryption
        case SyncReplay::replayed: count_drop(SyncDrop::replayed); return;
        case SyncReplay::stale_epoch: count_drop(SyncDrop::stale_epoch); return;
        case SyncReplay::fresh: break;
    }
    switch (cipher_->open(h, SyncChannel::udp, data, len)) {
        case SyncOpen::unknown_key: count_drop(SyncDrop::unknown_key); return;
        case SyncOpen::auth_failed: count_drop(SyncDrop::auth_failed); return;
        case SyncOpen::ok: break;
    }
    const uint64_t gaps = peer->window.accept(h.epoch, h.sequence);
    const size_t body = len - kSyncHeaderBytes - kSyncTagBytes;
    if (core::decode_sync_records(data + kSyncHeaderBytes, body, h.count, decoded_.data(), decoded_.size()) !=
        core::SyncDecodeError::ok) {
        count_drop(SyncDrop::malformed);  // authentic but undecodable: the sender's bug, counted
        return;
    }
    const uint64_t now = mono_ns();
    const uint64_t sent = h.send_time_ns;
    const uint64_t wall = real_ns();
    {
        std::lock_guard lock(peer->mutex);
        ++peer->datagrams;
        peer->records += h.count;
        peer->bytes += len;
        peer->gaps += gaps;
        peer->last_seen_mono = now;
        peer->epoch = h.epoch;
        peer->lag.add(wall > sent ? wall - sent : 0, now);
    }
    received_datagrams_.fetch_add(1, std::memory_order_relaxed);
    received_records_.fetch_add(h.count, std::memory_order_relaxed);
    received_bytes_.fetch_add(len, std::memory_order_relaxed);
    for (uint16_t i = 0; i < h.count; ++i) install(decoded_[i], 2);
}

bool SyncService::install(const core::SyncRecord& r, uint32_t wait_ms) {
    const uint64_t deadline = mono_ns() + uint64_t(wait_ms) * 1'000'000ULL;
    for (;;) {
        bool ring_full = false;
        if (engine_.install_synced(r, &ring_full)) {
            applied_.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
        if (!ring_full || stopping() || mono_ns() > deadline) break;
        std::this_thread::sleep_for(std::chrono::microseconds(50));  // the worker drains its ring
    }
    install_refused_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

// -- threads beside the sync thread -----------------------------------------------------

void SyncService::start_thread(int fd, std::thread t) {
    std::lock_guard lock(threads_mutex_);
    threads_.push_back(Side{std::move(t), nullptr, fd});
}

void SyncService::reap_threads(bool all) {
    std::vector<Side> done;
    {
        std::lock_guard lock(threads_mutex_);
        if (all) {
            for (Side& s : threads_) {
                if (s.fd >= 0) ::shutdown(s.fd, SHUT_RDWR);  // unblocks its reads and writes
            }
            done.swap(threads_);
        } else {
            for (auto it = threads_.begin(); it != threads_.end();) {
                if (it->done && it->done->load(std::memory_order_acquire)) {
                    done.push_back(std::move(*it));
                    it = threads_.erase(it);
                } else {
                    ++it;
                }
            }
        }
    }
    for (Side& s : done) {
        if (s.thread.joinable()) s.thread.join();
    }
}

// -- full sync, served ------------------------------------------------------------------

void SyncService::accept_streams() {
    reap_threads(false);
    for (;;) {
        const int fd = ::accept4(tcp_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto done = std::make_shared<std::atomic<bool>>(false);
        std::lock_guard lock(threads_mutex_);
        threads_.push_back(Side{std::thread([this, fd, done] {
                                    serve_stream(fd);
                                    done->store(true, std::memory_order_release);
                                }),
                                done, fd});
    }
}

namespace {

// Reads one length-prefixed message into `buf`; false on EOF, timeout or a bad length.
bool read_message(int fd, std::vector<uint8_t>& buf, uint32_t timeout_ms, const std::atomic<bool>& stopping) {
    uint8_t len[4];
    if (!read_exact(fd, len, 4, timeout_ms, stopping)) return false;
    const uint32_t n = get32(len);
    if (n < kSyncHeaderBytes + kSyncTagBytes || n > kMaxStreamMessage) return false;
    buf.resize(n);
    return read_exact(fd, buf.data(), n, timeout_ms, stopping);
}

}  // namespace

void SyncService::serve_stream(int fd) {
    SyncCipher cipher(keyring_);
    std::vector<uint8_t> msg;
    const uint32_t timeout = options_.io_timeout_ms;
    auto finish = [&] {
        {
            std::lock_guard lock(threads_mutex_);
            for (Side& s : threads_) {
                if (s.fd == fd) s.fd = -1;
            }
        }
        ::close(fd);
    };
    if (!read_message(fd, msg, timeout, stopping_)) {
        finish();
        return;
    }
    core::SyncHeader req;
    const core::SyncDecodeError e = core::decode_sync_header(msg.data(), msg.size(), req);
    if (e != core::SyncDecodeError::ok || req.type != core::SyncMessage::sync_request) {
        count_drop(e == core::SyncDecodeError::bad_version ? SyncDrop::bad_version : SyncDrop::malformed);
        finish();
        return;
    }
    if (!find_peer(req.node_id)) {
        count_drop(SyncDrop::unknown_peer);
        finish();
        return;
    }
    switch (cipher.open(req, SyncChannel::stream, msg.data(), msg.size())) {
        case SyncOpen::unknown_key: count_drop(SyncDrop::unknown_key); finish(); return;
        case SyncOpen::auth_failed: count_drop(SyncDrop::auth_failed); finish(); return;
        case SyncOpen::ok: break;
    }
    const uint64_t wall = real_ns();
    if ((wall > req.send_time_ns ? wall - req.send_time_ns : req.send_time_ns - wall) > kRequestMaxAgeNs) {
        count_drop(SyncDrop::replayed);  // an old request played again (or clocks a minute apart)
        finish();
        return;
    }

    const uint32_t workers = engine_.worker_count();
    uint32_t w = req.worker;
    uint32_t slot = req.cursor;
    std::vector<core::SyncRecord> records;
    std::vector<uint8_t> out;
    uint64_t sent = 0;
    const uint64_t started = mono_ns();
    bool ok = true;
    while (ok && !stopping()) {
        core::SyncHeader h;
        h.node_id = options_.node_id;
        h.epoch = epoch_;
        h.stream = req.stream;
        size_t body = 0;
        if (w >= workers) {
            h.type = core::SyncMessage::sync_done;
            h.worker = static_cast<uint16_t>(workers);
            out.resize(kSyncHeaderBytes + kSyncTagBytes);
        } else {
            records.clear();
            const uint32_t next = engine_.export_sessions(w, slot, options_.full_sync_batch, records);
            out.resize(kSyncHeaderBytes + records.size() * kSyncRecordMaxBytes + kSyncTagBytes);
            uint16_t count = 0;
            for (const core::SyncRecord& r : records) {
                const size_t n = core::encode_sync_record(r, out.data() + kSyncHeaderBytes + body);
                if (n == 0) {
                    unencodable_.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                body += n;
                ++count;
            }
            h.type = core::SyncMessage::sync_batch;
            h.count = count;
            if (next >= engine_.worker(w).sessions().capacity()) {
                ++w;
                slot = 0;
            } else {
                slot = next;
            }
            h.worker = static_cast<uint16_t>(w);
            h.cursor = slot;
            sent += count;
        }
        h.sequence = stream_sequence_.fetch_add(1, std::memory_order_relaxed);
        h.send_time_ns = real_ns();
        const size_t len = cipher.seal(h, SyncChannel::stream, out.data(), body);
        uint8_t prefix[4];
        put32(prefix, static_cast<uint32_t>(len));
        ok = len > 0 && write_all(fd, prefix, 4, timeout, stopping_) && write_all(fd, out.data(), len, timeout, stopping_);
        if (h.type == core::SyncMessage::sync_done) {
            if (ok) full_sync_served_.fetch_add(1, std::memory_order_relaxed);
            break;
        }
        if (options_.test_break_stream_after > 0 && sent >= options_.test_break_stream_after) break;
        if (options_.full_sync_rate > 0) {  // pace: `sent` records take at least sent / rate seconds
            const uint64_t due = started + sent * 1'000'000'000ULL / options_.full_sync_rate;
            const uint64_t now = mono_ns();
            if (due > now) std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
        }
    }
    finish();
}

// -- full sync, pulled ------------------------------------------------------------------

bool SyncService::full_sync(const std::vector<SyncPeer>& peers) {
    auto run = std::make_shared<FullSyncRun>();
    run->started_mono = mono_ns();
    for (const SyncPeer& p : peers) {
        FullSyncRun::PeerRun pr;
        pr.peer = p;
        pr.addr = Address::parse(p.address, family_, "peer");
        pr.workers = engine_.worker_count();
        run->peers.push_back(std::move(pr));
    }
    {
        std::lock_guard lock(threads_mutex_);
        if (full_sync_) {
            std::lock_guard run_lock(full_sync_->mutex);
            for (const auto& p : full_sync_->peers) {
                if (p.state == "running") return false;
            }
        }
        full_sync_ = run;
    }
    for (size_t i = 0; i < run->peers.size(); ++i) {
        auto done = std::make_shared<std::atomic<bool>>(false);
        std::lock_guard lock(threads_mutex_);
        threads_.push_back(Side{std::thread([this, run, i, done] {
                                    pull_from(run, i);
                                    done->store(true, std::memory_order_release);
                                }),
                                done, -1});
    }
    if (run->peers.empty()) run->ended_mono = run->started_mono;
    return true;
}

void SyncService::pull_from(const std::shared_ptr<FullSyncRun>& run, size_t index) {
    SyncCipher cipher(keyring_);
    uint32_t failures = 0;
    std::string error;
    for (;;) {
        uint64_t before = 0;
        {
            std::lock_guard lock(run->mutex);
            before = run->peers[index].records + run->peers[index].worker * (1ULL << 32) + run->peers[index].slot;
        }
        if (pull_once(*run, index, cipher, error)) return;
        if (stopping()) error = "stopped";
        {
            std::lock_guard lock(run->mutex);
            FullSyncRun::PeerRun& p = run->peers[index];
            const uint64_t after = p.records + p.worker * (1ULL << 32) + p.slot;
            failures = after == before ? failures + 1 : 1;  // progress forgives earlier failures
            if (stopping() || failures > options_.full_sync_retries) {
                p.state = "failed";
                p.error = error;
                bool all = true;
                for (const auto& q : run->peers) all = all && q.state != "running";
                if (all) run->ended_mono = mono_ns();
                return;
            }
            ++p.reconnects;
        }
        for (uint32_t i = 0; i < failures && !stopping(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
}

bool SyncService::pull_once(FullSyncRun& run, size_t index, SyncCipher& cipher, std::string& error) {
    Address addr;
    SyncPeer peer;
    uint32_t worker = 0;
    uint32_t slot = 0;
    {
        std::lock_guard lock(run.mutex);
        addr = run.peers[index].addr;
        peer = run.peers[index].peer;
        worker = run.peers[index].worker;
        slot = run.peers[index].slot;
    }
    const int fd = ::socket(family_, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return false;
    }
    start_thread(fd, std::thread());  // tracked so that stop() shuts it down
    struct Closer {
        SyncService* s;
        int fd;
        ~Closer() {
            std::lock_guard lock(s->threads_mutex_);
            for (auto it = s->threads_.begin(); it != s->threads_.end(); ++it) {
                if (it->fd == fd && !it->thread.joinable()) {
                    s->threads_.erase(it);
                    break;
                }
            }
            ::close(fd);
        }
    } closer{this, fd};
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const uint32_t timeout = options_.io_timeout_ms;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) != 0 && errno != EINPROGRESS) {
        error = "connect " + peer.address + ": " + std::strerror(errno);
        return false;
    }
    int soerr = 0;
    socklen_t soerr_len = sizeof soerr;
    if (!wait_fd(fd, POLLOUT, timeout, stopping_) ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) != 0 || soerr != 0) {
        error = "connect " + peer.address + ": " + (soerr ? std::strerror(soerr) : "timed out");
        return false;
    }

    // The request: where to start, and a stream id every answer echoes.
    const auto stream = static_cast<uint32_t>(real_ns() ^ (uint64_t(peer.node_id) * 0x9e3779b97f4a7c15ULL)) | 1u;
    std::vector<uint8_t> msg(kSyncHeaderBytes + kSyncTagBytes);
    core::SyncHeader req;
    req.type = core::SyncMessage::sync_request;
    req.node_id = options_.node_id;
    req.epoch = epoch_;
    req.sequence = stream_sequence_.fetch_add(1, std::memory_order_relaxed);
    req.send_time_ns = real_ns();
    req.worker = static_cast<uint16_t>(worker);
    req.cursor = slot;
    req.stream = stream;
    const size_t len = cipher.seal(req, SyncChannel::stream, msg.data(), 0);
    uint8_t prefix[4];
    put32(prefix, static_cast<uint32_t>(len));
    if (len == 0 || !write_all(fd, prefix, 4, timeout, stopping_) || !write_all(fd, msg.data(), len, timeout, stopping_)) {
        error = "sending the request to " + peer.address + " failed";
        return false;
    }

    std::vector<core::SyncRecord> records(kSyncMaxRecords);
    uint64_t last_sequence = 0;
    bool first = true;
    for (;;) {
        if (!read_message(fd, msg, timeout, stopping_)) {
            error = "the stream from " + peer.address + " broke (closed, silent for " + std::to_string(timeout) +
                    " ms, or a bad length)";
            return false;
        }
        core::SyncHeader h;
        const core::SyncDecodeError e = core::decode_sync_header(msg.data(), msg.size(), h);
        if (e != core::SyncDecodeError::ok ||
            (h.type != core::SyncMessage::sync_batch && h.type != core::SyncMessage::sync_done) ||
            h.stream != stream || h.node_id != peer.node_id || (!first && h.sequence <= last_sequence)) {
            count_drop(e == core::SyncDecodeError::bad_version ? SyncDrop::bad_version : SyncDrop::malformed);
            error = std::string("a bad message from ") + peer.address + " (" +
                    std::string(core::sync_decode_error_name(e)) + ")";
            return false;
        }
        if (const SyncOpen o = cipher.open(h, SyncChannel::stream, msg.data(), msg.size()); o != SyncOpen::ok) {
            count_drop(o == SyncOpen::unknown_key ? SyncDrop::unknown_key : SyncDrop::auth_failed);
            error = peer.address + ": " + (o == SyncOpen::unknown_key ? "sealed with a key this node lacks"
                                                                       : "authentication failed (another key?)");
            return false;
        }
        first = false;
        last_sequence = h.sequence;
        if (h.type == core::SyncMessage::sync_done) {
            std::lock_guard lock(run.mutex);
            FullSyncRun::PeerRun& p = run.peers[index];
            p.state = "done";
            p.worker = h.worker;
            p.slot = 0;
            bool all = true;
            for (const auto& q : run.peers) all = all && q.state != "running";
            if (all) run.ended_mono = mono_ns();
            return true;
        }
        const size_t body = msg.size() - kSyncHeaderBytes - kSyncTagBytes;
        if (core::decode_sync_records(msg.data() + kSyncHeaderBytes, body, h.count, records.data(), records.size()) !=
            core::SyncDecodeError::ok) {
            count_drop(SyncDrop::malformed);
            error = "undecodable records from " + peer.address;
            return false;
        }
        for (uint16_t i = 0; i < h.count; ++i) install(records[i], timeout);
        full_sync_records_.fetch_add(h.count, std::memory_order_relaxed);
        std::lock_guard lock(run.mutex);
        FullSyncRun::PeerRun& p = run.peers[index];
        p.records += h.count;
        p.worker = h.worker;
        p.slot = h.cursor;
    }
}

FullSyncStatus SyncService::full_sync_status() const {
    std::shared_ptr<FullSyncRun> run;
    {
        std::lock_guard lock(threads_mutex_);
        run = full_sync_;
    }
    FullSyncStatus s;
    if (!run) return s;
    std::lock_guard lock(run->mutex);
    bool running = false;
    bool failed = false;
    for (const auto& p : run->peers) {
        FullSyncPeerStatus ps;
        ps.node_id = p.peer.node_id;
        ps.address = p.peer.address;
        ps.state = p.state;
        ps.records = p.records;
        ps.workers = p.workers;
        ps.workers_done = std::min(p.worker, p.workers);
        ps.reconnects = p.reconnects;
        ps.error = p.error;
        s.records += p.records;
        running = running || p.state == "running";
        if (p.state == "failed" && !failed) {
            failed = true;
            s.error = "peer " + p.peer.address + ": " + p.error;
        }
        s.peers.push_back(std::move(ps));
    }
    s.state = running ? "running" : failed ? "failed" : "done";
    const uint64_t end = running || run->ended_mono == 0 ? mono_ns() : run->ended_mono;
    s.elapsed_s = static_cast<double>(end - run->started_mono) / 1e9;
    return s;
}

// -- what operators see -----------------------------------------------------------------

SyncStats SyncService::stats() const {
    SyncStats s;
    auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    s.sent_datagrams = get(sent_datagrams_);
    s.sent_records = get(sent_records_);
    s.sent_bytes = get(sent_bytes_);
    s.send_errors = get(send_errors_);
    s.unsent_records = get(unsent_records_);
    s.unencodable = get(unencodable_);
    s.received_datagrams = get(received_datagrams_);
    s.received_records = get(received_records_);
    s.received_bytes = get(received_bytes_);
    s.applied = get(applied_);
    s.install_refused = get(install_refused_);
    s.test_dropped = get(test_dropped_);
    for (size_t i = 0; i < kSyncDropCount; ++i) s.dropped[i] = get(dropped_[i]);
    s.full_sync_served = get(full_sync_served_);
    s.full_sync_records = get(full_sync_records_);
    return s;
}

std::vector<SyncPeerStats> SyncService::peers() const {
    const auto list = peer_list();
    const uint64_t now = mono_ns();
    std::vector<SyncPeerStats> out;
    for (const auto& p : *list) {
        SyncPeerStats s;
        s.node_id = p->node_id;
        s.address = p->address;
        std::lock_guard lock(p->mutex);
        s.datagrams = p->datagrams;
        s.records = p->records;
        s.bytes = p->bytes;
        s.gaps = p->gaps;
        s.epoch = p->epoch;
        s.last_seen_s = p->last_seen_mono == 0 ? -1 : static_cast<double>(now - p->last_seen_mono) / 1e9;
        s.lag_p50_s = p->lag.quantile_s(0.50);
        s.lag_p99_s = p->lag.quantile_s(0.99);
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace dplb::host
