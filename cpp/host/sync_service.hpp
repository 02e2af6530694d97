// SyncService: the session-sync thread of DESIGN section 1 (issue 13). It drains the
// workers' sync rings, batches their records into authenticated UDP datagrams (wire
// format v1, core/sync_codec.hpp, sealed by host/sync_crypto) to every peer, receives and
// installs the peers' records (Engine::install_synced), and serves and runs full syncs
// over TCP on the same port number.
//
// Threads: one sync thread (rings, UDP both ways, accepting full-sync connections); one
// thread per full-sync stream it serves; one per peer while a full sync pulls. Installs
// from all of them meet in Engine::install_synced (its own mutex). The rest of the class
// may be called from any thread.
//
// Loss: a lost datagram is not sent again. The engine refreshes long-lived sessions
// (EngineConfig::sync_refresh_ms), so a session that lives on reaches its peers with its
// next refresh; one opened and closed between two refreshes whose datagram was lost is
// not known at the peer. Gaps in the sequence numbers are counted per peer.
//
// Full sync: the requester names where to start (worker, slot) and the server streams
// that worker's table, then the next worker's, each batch saying where the next one
// starts: a broken connection is resumed from there. Pace: the requester installs a
// batch before it reads the next, so TCP's flow control holds the server to the speed the
// requester's workers install at; `full_sync_rate` caps it further.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/sync_codec.hpp"
#include "core/sync_record.hpp"
#include "host/sync_crypto.hpp"

namespace dplb::core {
class Engine;
}  // namespace dplb::core

namespace dplb::host {

struct SyncPeer {
    uint32_t node_id = 0;
    std::string address;  // "192.0.2.1:7100" or "[2001:db8::1]:7100": its UDP and TCP port
};

struct SyncServiceOptions {
    uint32_t node_id = 0;             // 1..2^32-1, unique in the cluster
    std::string listen;               // "ip:port" (port 0: any free port, see listen_port())
    std::vector<SyncKey> keys;        // one or two
    uint8_t send_key = 0;
    uint32_t mtu = 1400;              // UDP payload bytes of a datagram
    double flush_ms = 2.0;            // a record waits at most this long for a full datagram
    uint32_t heartbeat_ms = 1000;     // an empty datagram when nothing was sent this long
    uint32_t full_sync_rate = 0;      // records/s a served stream sends at most (0: no cap)
    uint32_t full_sync_batch = 2048;  // records per full-sync message
    uint32_t full_sync_retries = 5;   // reconnects in a row without progress before a peer fails
    uint32_t io_timeout_ms = 5000;    // a full-sync connection silent this long is broken
    // Test seams (0: off): a served stream closes its connection after this many records
    // (the requester resumes from its cursor); received datagrams dropped at random at
    // this rate before anything else (loss measurements).
    uint32_t test_break_stream_after = 0;
    double test_receive_loss = 0.0;
};

struct SyncPeerStats {
    uint32_t node_id = 0;
    std::string address;
    uint64_t datagrams = 0;      // accepted from it
    uint64_t records = 0;
    uint64_t bytes = 0;
    double last_seen_s = -1;     // ago; -1: never
    uint64_t gaps = 0;           // sequence numbers skipped (lost or reordered datagrams)
    uint64_t epoch = 0;          // its current epoch
    double lag_p50_s = -1;       // now - send time of its recent datagrams (-1: none)
    double lag_p99_s = -1;
};

struct SyncStats {
    uint64_t sent_datagrams = 0;  // one per peer per batch
    uint64_t sent_records = 0;    // records batched (once, whatever the peer count)
    uint64_t sent_bytes = 0;
    uint64_t send_errors = 0;
    uint64_t unsent_records = 0;  // taken from the rings while there was no peer
    uint64_t unencodable = 0;     // records the codec refused (a field out of range)
    uint64_t received_datagrams = 0;
    uint64_t received_records = 0;
    uint64_t received_bytes = 0;
    uint64_t applied = 0;          // queued to the owner worker by the engine
    uint64_t install_refused = 0;  // refused by the engine (its sync counters say why)
    uint64_t test_dropped = 0;     // test_receive_loss
    std::array<uint64_t, kSyncDropCount> dropped{};
    uint64_t full_sync_served = 0;   // streams served to a peer to the end
    uint64_t full_sync_records = 0;  // records pulled by full syncs
};

struct FullSyncPeerStatus {
    uint32_t node_id = 0;
    std::string address;
    std::string state;  // running | done | failed
    uint64_t records = 0;
    uint32_t workers_done = 0;
    uint32_t workers = 0;
    uint32_t reconnects = 0;
    std::string error;
};

struct FullSyncStatus {
    std::string state = "idle";  // idle | running | done | failed
    uint64_t records = 0;
    double elapsed_s = 0;
    std::vector<FullSyncPeerStatus> peers;
    std::string error;  // the first failed peer's error
};

class SyncService {
public:
    // Binds the UDP and TCP sockets and starts the sync thread. Throws
    // std::invalid_argument (node id 0, a bad address, keys, an MTU too small for one
    // record, the engine's sync off) or std::runtime_error (a socket cannot be bound).
    SyncService(core::Engine& engine, SyncServiceOptions options);
    ~SyncService();
    SyncService(const SyncService&) = delete;
    SyncService& operator=(const SyncService&) = delete;

    // Replaces the peers; a peer kept keeps its replay window and counters. Throws
    // std::invalid_argument naming a bad address or id.
    void set_peers(const std::vector<SyncPeer>& peers);
    // Rotation without restart: one or two keys, `send_key` used to send.
    void set_keys(const std::vector<SyncKey>& keys, uint8_t send_key);

    // Starts pulling every given peer's table (in parallel, one connection each). False
    // when a full sync is running already.
    bool full_sync(const std::vector<SyncPeer>& peers);
    FullSyncStatus full_sync_status() const;

    SyncStats stats() const;
    std::vector<SyncPeerStats> peers() const;
    uint16_t listen_port() const { return listen_port_; }
    uint64_t epoch() const { return epoch_; }

    // Sends what is batched, stops every thread and closes the sockets. Idempotent.
    void stop();

    struct Address;
    struct Peer;
    struct FullSyncRun;

private:
    using PeerList = std::vector<std::shared_ptr<Peer>>;

    void run();
    bool drain_rings();
    void add_record(const core::SyncRecord& r);
    void flush_batch(uint64_t now);
    void receive_datagrams();
    void handle_datagram(uint8_t* data, size_t len);
    void accept_streams();
    void serve_stream(int fd);
    void pull_from(const std::shared_ptr<FullSyncRun>& run, size_t index);
    bool pull_once(FullSyncRun& run, size_t index, SyncCipher& cipher, std::string& error);
    // Installs one record, waiting a little while its worker's install ring is full.
    bool install(const core::SyncRecord& r, uint32_t wait_ms);
    void count_drop(SyncDrop reason) { dropped_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed); }
    std::shared_ptr<const PeerList> peer_list() const;
    std::shared_ptr<Peer> find_peer(uint32_t node_id) const;
    bool stopping() const { return stopping_.load(std::memory_order_acquire); }
    void start_thread(int fd, std::thread t);
    void reap_threads(bool all);

    core::Engine& engine_;
    SyncServiceOptions options_;
    SyncKeyring keyring_;
    const uint64_t epoch_;
    uint16_t listen_port_ = 0;
    int udp_fd_ = -1;
    int tcp_fd_ = -1;
    int wake_fd_ = -1;
    int family_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    std::once_flag stopped_;

    mutable std::mutex peers_mutex_;
    std::shared_ptr<const PeerList> peers_;

    // The sync thread's own state.
    std::unique_ptr<SyncCipher> cipher_;
    std::vector<uint8_t> batch_;  // header room + body + tag room
    size_t batch_body_ = 0;
    uint16_t batch_count_ = 0;
    uint64_t batch_first_ns_ = 0;
    uint64_t last_send_ns_ = 0;
    uint64_t udp_sequence_ = 0;
    std::vector<uint8_t> receive_buf_;
    std::vector<core::SyncRecord> decoded_;
    uint64_t rng_ = 0;

    // The stream channel's sequence numbers, shared by every stream this node seals.
    std::atomic<uint64_t> stream_sequence_{0};

    // Served streams and full-sync pulls: their threads and sockets (shut down on stop).
    struct Side {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
        int fd = -1;
    };
    mutable std::mutex threads_mutex_;
    std::vector<Side> threads_;
    std::shared_ptr<FullSyncRun> full_sync_;

    std::atomic<uint64_t> sent_datagrams_{0}, sent_records_{0}, sent_bytes_{0}, send_errors_{0};
    std::atomic<uint64_t> unsent_records_{0}, unencodable_{0};
    std::atomic<uint64_t> received_datagrams_{0}, received_records_{0}, received_bytes_{0};
    std::atomic<uint64_t> applied_{0}, install_refused_{0}, test_dropped_{0};
    std::atomic<uint64_t> full_sync_served_{0}, full_sync_records_{0};
    std::array<std::atomic<uint64_t>, kSyncDropCount> dropped_{};
};

}  // namespace dplb::host
