/*
 * hie/limits.h - every compile-time limit of hiebroker, with its reason (the sqliteLimit.h model).
 *
 * A configuration file may lower a limit marked "config"; asking for more than the value here
 * makes startup fail with an error naming the key (we refuse, never truncate silently).
 */
#ifndef HIE_LIMITS_H
#define HIE_LIMITS_H

/* Largest Envelope body a member may send (config: limits.frame_bytes_max, default 4 MiB).
 * Checked on the 4-byte length prefix before any body byte is buffered; bigger gets BAD_REQUEST
 * and the connection is closed. Documents later ride in envelopes, hence MiBs, not KiBs. */
#define HIE_PROTO_FRAME_BYTES_MAX (16u * 1024u * 1024u)
#define HIE_PROTO_FRAME_BYTES_DEFAULT (4u * 1024u * 1024u)
/* Smallest maximum the config may set: below this not even an Error fits. */
#define HIE_PROTO_FRAME_BYTES_MIN 1024u

/* Bytes protobuf-c may allocate while unpacking one envelope: body plus its overhead (each
 * string or sub-message costs a pointer and a header). Exceeding it rejects the frame. */
#define HIE_ARENA_BYTES_MAX (3u * HIE_PROTO_FRAME_BYTES_MAX)
_Static_assert(HIE_ARENA_BYTES_MAX >= 2u * HIE_PROTO_FRAME_BYTES_MAX,
    "arena too small for a max frame");

/* Envelope id (idempotency key) and correlation id: 1..64 printable ASCII [A-Za-z0-9._:-].
 * Long enough for a UUID or a ULID with a prefix; short enough to log and index cheaply. */
#define HIE_PROTO_ID_BYTES_MAX 64u
/* Organization and node ids: [a-z0-9][a-z0-9._-]{0,62}, the certificate CN. */
#define HIE_ORG_ID_BYTES_MAX 63u
#define HIE_ORG_NAME_BYTES_MAX 200u
/* Roles one organization can hold (hospital, clinic, lab, payer, auditor, operator, node). */
#define HIE_ORG_ROLES_MAX 8u
/* Organizations in one registry: a regional HIE has hundreds; leaves room. */
#define HIE_ORGS_MAX 100000u

/* Concurrent member connections per node (config: limits.connections_max). A connection over
 * the limit is accepted and closed at once, and counted in the metrics. */
#define HIE_EDGE_CONNECTIONS_MAX 16384u
#define HIE_EDGE_CONNECTIONS_DEFAULT 4096u
/* Requests one connection may have in flight (config: limits.inflight_per_connection_max).
 * At the limit the edge stops reading that socket until replies drain (backpressure). */
#define HIE_EDGE_INFLIGHT_MAX 1024u
#define HIE_EDGE_INFLIGHT_DEFAULT 64u
/* Reply bytes queued for one connection above which the edge stops reading from it. A reply
 * is always queued whole, so one connection holds at most this plus inflight_max replies; a
 * client that does not read its replies cannot make the node buffer without bound. */
#define HIE_EDGE_WRITE_BUFFER_BYTES_MAX (256u * 1024u)
/* Time limits (config: limits.*_timeout_ms). A handshake that has not finished, a frame that
 * has started and not finished, or a connection idle for longer is closed. */
#define HIE_EDGE_HANDSHAKE_TIMEOUT_MS_DEFAULT 10000u
#define HIE_EDGE_FRAME_TIMEOUT_MS_DEFAULT 30000u
#define HIE_EDGE_IDLE_TIMEOUT_MS_DEFAULT 300000u
#define HIE_EDGE_TIMEOUT_MS_MAX 3600000u
/* Certificate chain bytes a peer may send (SSL_CTX_set_max_cert_list). */
#define HIE_TLS_CERT_LIST_BYTES_MAX (64u * 1024u)
/* Chain depth we verify: CA -> (intermediate) -> leaf. */
#define HIE_TLS_VERIFY_DEPTH_MAX 4

/* Worker threads (config: workers). */
#define HIE_NODE_WORKERS_MAX 64u
/* Requests queued towards one worker before the edge answers OVERLOADED. */
#define HIE_NODE_WORKER_QUEUE_MAX 4096u
/* Replies a worker remembers for idempotent repeats of read-only requests. */
#define HIE_NODE_REPLY_CACHE_ENTRIES 8192u

/* Commands in one group commit / apply batch. Bounds one LMDB write txn. */
#define HIE_LOG_BATCH_COMMANDS_MAX 1024u
/* Largest encoded command. Frames carry commands' payloads, plus a header. */
#define HIE_LOG_COMMAND_BYTES_MAX (HIE_PROTO_FRAME_BYTES_MAX + 4096u)
/* Commands submitted and not yet applied, node-wide. Beyond it: OVERLOADED. */
#define HIE_LOG_PENDING_MAX 65536u
/* How long the replicated dedup table remembers a request id (by the command's own time). */
#define HIE_DEDUP_RETENTION_MS (7ull * 24ull * 3600ull * 1000ull)
/* Expired dedup entries pruned per applied command, so pruning work stays bounded. */
#define HIE_DEDUP_PRUNE_PER_APPLY 4u

/* LMDB map sizes (config: storage.map_bytes). */
#define HIE_LMDB_MAP_BYTES_DEFAULT (4ull * 1024ull * 1024ull * 1024ull)
#define HIE_LMDB_MAP_BYTES_MAX (1024ull * 1024ull * 1024ull * 1024ull)

/* The ipc:// admin channel: largest request and queued messages. */
#define HIE_ADMIN_MSG_BYTES_MAX (8u * 1024u * 1024u)
/* Items in one hiectl mpi import batch (AdminMpiFeedBatch): one group commit covers them. */
#define HIE_ADMIN_FEED_BATCH_MAX 1024u
/* Records hiectl mpi train reads; the index is keyed-hash ordered, so the first N are a
 * uniform sample. About 1 KB each in memory. */
#define HIE_MPI_TRAIN_RECORDS_MAX 200000u
#define HIE_ADMIN_HWM 64

/* Graceful shutdown: how long SIGTERM waits for in-flight requests. */
#define HIE_NODE_DRAIN_TIMEOUT_MS 10000u

/* Log line length; longer lines are cut and end with "...". */
#define HIE_LOG_LINE_BYTES_MAX 2048u

/* Config file size: a node config is a page of YAML. */
#define HIE_CONFIG_FILE_BYTES_MAX (256u * 1024u)

#endif
