// Sync codec: session-sync wire format v1 (DESIGN section 7, issue 13). Encodes and decodes
// the message header and SyncRecords in network byte order; pure functions, no crypto, no
// I/O, no allocation (fuzzable). host/sync_crypto seals what this produces.
//
// ---- Wire format v1 ----------------------------------------------------------------------
// A message is: header (48 bytes, sent in clear, authenticated as AEAD associated data) ||
// body (the records, encrypted) || tag (16 bytes, AEAD). Over UDP one message is one
// datagram; over TCP (full sync) every message is preceded by its length (u32, the header,
// body and tag together). All integers are unsigned big-endian unless said otherwise.
//
// Header:
//   off len field
//     0   4 magic        0x44504C53 ("DPLS")
//     4   1 version      1
//     5   1 type         1 records (incremental, UDP), 2 sync_request, 3 sync_batch,
//                        4 sync_done (full sync, TCP)
//     6   1 key_id       which cluster key sealed it (1..255; 0 is never a key)
//     7   1 flags        0 (reserved: a receiver refuses any other value)
//     8   2 count        records in the body (records: 0..kSyncMaxRecords, 0 being a
//                        heartbeat sent when nothing else was for a while; sync_batch:
//                        0..kSyncMaxRecords; sync_request and sync_done: 0)
//    10   2 worker       full sync cursor: worker index (sync_request: where to start;
//                        sync_batch: where the next batch starts); 0 in records
//    12   4 node_id      the sender's node id (1..2^32-1), one of the receiver's peers
//    16   8 epoch        the sender's start (CLOCK_REALTIME ns when its sync service
//                        started): a restarted node's sequence numbers are new, and a
//                        receiver refuses epochs older than the newest it has seen
//    24   8 sequence     per (node, epoch, channel), +1 for each message sent: replay
//                        window and gap count on UDP, strictly increasing on a TCP stream
//    32   8 send_time    CLOCK_REALTIME ns when it was sealed (lag = now - send_time)
//    40   4 cursor       full sync cursor: slot in that worker's table (see worker)
//    44   4 stream       full sync: random id the requester picked, echoed in every
//                        sync_batch / sync_done of that stream; 0 in records
//
// Record (variable length, 42 to 126 bytes):
//   off len field
//     0   1 kind         0 open, 1 update, 2 refresh, 3 close (core::SyncKind)
//     1   1 form         bit 0: inbound tuple is IPv6; bit 1: outbound tuple is IPv6;
//                        bit 2: TCP tracking follows; other bits 0
//     2   1 proto        6 TCP (tracking required) or 17 UDP (no tracking)
//     3   1 state        core::TcpState (0 none for UDP, 1..6 for TCP)
//     4   2 worker       the sender's worker that holds it
//     6   1 session_flags kSession* bits (only FinFromClient, FinFromReal, ClientAddress,
//                        RealClosedFirst travel: the others are the receiver's own)
//     7   1 ca_mode      core::ClientAddressMode (0..3)
//     8   1 ca_flags     kCa* bits
//     9   1 ca_header_len PROXY header length
//    10   4 remaining_ms of the current state's timeout
//    14   4 seq_delta    signed (two's complement)
//    18   A inbound src address (A = 4 for IPv4, 16 for IPv6: form bit 0)
//  18+A   A inbound dst address (the VIP)
// 18+2A   2 inbound src port, then 2 inbound dst port
// 22+2A   B outbound src address (the real; B from form bit 1), B outbound dst (laddr)
// 22+2A+2B 4 outbound src port, dst port (2 each)
// 26+2A+2B 36 TCP tracking (form bit 2): for the client then the real: end, maxend,
//                        maxack (4 each), syn_window (2), scale (1), flags (1); then
//                        client_isn (4)
// IPv4 addresses are their 4 bytes; in memory they are v4-mapped (::ffff:a.b.c.d), and a
// v4-mapped address is always sent in 4 bytes (so form says the family, exactly).
// --------------------------------------------------------------------------------------------
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/sync_record.hpp"

namespace dplb::core {

inline constexpr uint32_t kSyncMagic = 0x44504C53;  // "DPLS"
inline constexpr uint8_t kSyncVersion = 1;
inline constexpr size_t kSyncHeaderBytes = 48;
inline constexpr size_t kSyncTagBytes = 16;
inline constexpr size_t kSyncRecordMinBytes = 42;   // IPv4 UDP
inline constexpr size_t kSyncRecordMaxBytes = 126;  // IPv6 TCP
inline constexpr uint16_t kSyncMaxRecords = 4096;   // per message

enum class SyncMessage : uint8_t { records = 1, sync_request = 2, sync_batch = 3, sync_done = 4 };

struct SyncHeader {
    SyncMessage type = SyncMessage::records;
    uint8_t key_id = 0;
    uint16_t count = 0;
    uint16_t worker = 0;
    uint32_t node_id = 0;
    uint64_t epoch = 0;
    uint64_t sequence = 0;
    uint64_t send_time_ns = 0;
    uint32_t cursor = 0;
    uint32_t stream = 0;
};

// Why a message was refused. Names in kSyncDecodeErrorNames.
enum class SyncDecodeError : uint8_t { ok, truncated, bad_magic, bad_version, bad_type, bad_count, bad_field };
inline constexpr std::string_view kSyncDecodeErrorNames[] = {"ok",       "truncated", "bad_magic", "bad_version",
                                                             "bad_type", "bad_count", "bad_field"};
inline std::string_view sync_decode_error_name(SyncDecodeError e) {
    return kSyncDecodeErrorNames[static_cast<size_t>(e)];
}

// Writes the 48 header bytes at `out`.
void encode_sync_header(const SyncHeader& h, uint8_t* out);
// Reads and checks a header (magic, version, type, flags, count against the type, node id
// not 0, key id not 0). `n` is what is available: less than a header is `truncated`.
SyncDecodeError decode_sync_header(const uint8_t* p, size_t n, SyncHeader& h);

// The encoded size of `r`.
size_t sync_record_wire_size(const SyncRecord& r);
// Writes `r` at `out` (room for sync_record_wire_size(r) bytes); returns the bytes written,
// 0 when `r` cannot travel (its two tuples' protocols differ, or a field is out of range).
size_t encode_sync_record(const SyncRecord& r, uint8_t* out);
// Reads one record of at most `n` bytes; on success `used` is its length.
SyncDecodeError decode_sync_record(const uint8_t* p, size_t n, SyncRecord& out, size_t& used);
// Reads exactly `count` records filling exactly `n` bytes into out[0..count) (`max_out`
// slots): bytes left over or more records than slots are `bad_count`.
SyncDecodeError decode_sync_records(const uint8_t* p, size_t n, uint16_t count, SyncRecord* out, size_t max_out);

}  // namespace dplb::core
