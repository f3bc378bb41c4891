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
/* Fields one message of a request may carry that this node does not know (a newer member's);
 * the memory they take in all is charged to the request (its decoded bytes). */
#define HIE_PROTO_UNKNOWN_FIELDS_MAX 64u
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
/* Bytes of request frames in flight (read, not answered yet): past this a connection is not
 * read until replies bring it back under (one request always goes, whatever its size); past
 * the edge-wide one, no connection with a request in flight is read. With 4 MiB frames and 64
 * in flight a connection could otherwise hold 256 MiB, and a thousand of them the machine. */
#define HIE_EDGE_INFLIGHT_BYTES_MAX (16u * 1024u * 1024u)
/* The edge-wide one (config limits.edge_buffer_bytes_max, per edge thread) also bounds the
 * buffers of frames being read; at least two frames of limits.frame_bytes_max. */
#define HIE_EDGE_BUFFER_BYTES_DEFAULT (128u * 1024u * 1024u)
#define HIE_EDGE_BUFFER_BYTES_MAX (2048u * 1024u * 1024u)
/* Time limits (config: limits.*_timeout_ms). A handshake that has not finished, a frame that
 * has started and not finished, or a connection idle for longer is closed. */
#define HIE_EDGE_HANDSHAKE_TIMEOUT_MS_DEFAULT 10000u
#define HIE_EDGE_FRAME_TIMEOUT_MS_DEFAULT 30000u
#define HIE_EDGE_IDLE_TIMEOUT_MS_DEFAULT 300000u
#define HIE_EDGE_TIMEOUT_MS_MAX 3600000u
/* TLS 1.2 (where enabled), node and member alike: the IHE ITI-19 AES-GCM suites only
 * (reference.md N2), and their ECDSA twins for the EC certificates the PKI issues. */
#define HIE_TLS12_CIPHERS                                                                      \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                             \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"                                 \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
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
/* Bytes of those replies one worker holds (8192 of 64 KiB would be 512 MiB). */
#define HIE_NODE_REPLY_CACHE_BYTES_MAX (16u * 1024u * 1024u)

/* Commands in one group commit / apply batch. Bounds one LMDB write txn. */
#define HIE_LOG_BATCH_COMMANDS_MAX 1024u
/* A state commit left open by apply (audit records share state commits, cluster/src/log.c)
 * is flushed once no submission has arrived for this long. */
#define HIE_LOG_IDLE_FLUSH_MS 2u
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
/* Commands the log keeps behind the state (storage.log_retain; 0, the default, keeps every
 * one, so that a lost state can be rebuilt from the log): older ones are deleted as new ones
 * come. A command holds up to one worker wakeup's audit records (64, about 40 KB), so 10,000
 * hold at most ~400 MB, minutes of history at full load. */
#define HIE_LOG_RETAIN_DEFAULT 0u
#define HIE_LOG_RETAIN_MIN 100u
#define HIE_LOG_RETAIN_MAX 1000000000u
#define HIE_LMDB_MAP_BYTES_MAX (1024ull * 1024ull * 1024ull * 1024ull)
/* Past this share of either map (state, command log) a node refuses new work that would grow
 * it (OVERLOADED) instead of reaching MDB_MAP_FULL, which stops it at every replay. */
#define HIE_STORAGE_REFUSE_PCT 90u
/* Past this, even exchanges that add little (acknowledgements, revokes) are refused: each is
 * still a command in the log, which never shrinks. */
#define HIE_STORAGE_REFUSE_ALL_PCT 97u

/* The ipc:// admin channel: largest request and queued messages. */
#define HIE_ADMIN_MSG_BYTES_MAX (8u * 1024u * 1024u)
/* Items in one hiectl mpi import batch (AdminMpiFeedBatch): one group commit covers them. */
#define HIE_ADMIN_FEED_BATCH_MAX 1024u
/* Records hiectl mpi train reads; the index is keyed-hash ordered, so the first N are a
 * uniform sample. About 1 KB each in memory. */
#define HIE_MPI_TRAIN_RECORDS_MAX 200000u
/* hiectl mpi train --sample-pairs: random pairs for u (0 asks for the default, 200,000). */
#define HIE_MPI_TRAIN_SAMPLE_PAIRS_MIN 1000u
#define HIE_MPI_TRAIN_SAMPLE_PAIRS_MAX 10000000u
#define HIE_ADMIN_HWM 64

/* ---- Disclosure audit (node side of issue 4) ---- */
/* Keyed record identity of (org, MRN) in the MPI, and of an EUID in the audit index. */
#define HIE_PROTO_REC_HASH_BYTES 16u
/* Patients one audit record can name: a PDQ answer is at most 50 candidates. */
#define HIE_AUDIT_SUBJECTS_MAX 64u
/* Audit records in one AuditBatchCommand: the exchanges one worker handles in one wakeup share
 * a command (and a log entry). Also bounds the requests a worker takes per wakeup. */
#define HIE_AUDIT_BATCH_RECORDS_MAX 64u
/* Entries per disclosure report page (default 100); pages are walked with a token. */
#define HIE_AUDIT_REPORT_PAGE_MAX 1000u
#define HIE_AUDIT_REPORT_PAGE_DEFAULT 100u
/* A report waits at most this long for the audit records already answered to be committed to
 * the state (they share commits, node/src/sm.c); longer answers UNAVAILABLE. */
#define HIE_AUDIT_REPORT_COMMIT_WAIT_MS 2000u
/* How often a node signs a checkpoint of the audit tree when it has grown (audit.*). */
#define HIE_AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT 10000u
#define HIE_AUDIT_CHECKPOINT_INTERVAL_MS_MAX 3600000u
/* Replies a worker holds while their audit records are being committed (one group commit
 * covers them); when full, the worker stops taking requests until the log answers. */
#define HIE_NODE_AUDIT_PARKED_MAX 1024u
/* Consent directives on file per patient (per record identity); a submit beyond is refused. */
#define HIE_CONSENT_PER_PATIENT_MAX 32u

/* ---- Push and delivery (issue 5) ---- */
/* A pushed document's content: a discharge summary with images stays well under; bigger
 * payloads belong in a repository reference. The frame limit (16 MiB) bounds it anyway. */
#define HIE_PUSH_CONTENT_BYTES_MAX (1024u * 1024u)
/* Deliveries a recipient may hold unacknowledged on its connection (ReceiveRequest.window). */
#define HIE_DELIVERY_WINDOW_DEFAULT 32u
#define HIE_DELIVERY_WINDOW_MAX 256u
/* Bytes of deliveries unacknowledged on one connection (at least one message goes whatever its
 * size): with 1 MiB documents a window of 256 would otherwise queue 256 MiB at the edge. */
#define HIE_DELIVERY_INFLIGHT_BYTES_MAX (8u * 1024u * 1024u)
/* Sequence numbers in one DeliveryAck. */
#define HIE_DELIVERY_ACK_SEQS_MAX 1024u
/* Messages waiting in one recipient's queue; a push beyond is refused (OVERLOADED). */
#define HIE_DELIVERY_QUEUE_MAX 1000000u
/* Bytes one recipient's queue may hold before pushes to it are refused (OVERLOADED;
 * delivery.queue_bytes_max): one member offline for weeks must not fill the storage every
 * member's exchanges need (past 90% of it the node refuses all new work). */
#define HIE_DELIVERY_QUEUE_BYTES_DEFAULT (1024ull * 1024ull * 1024ull)
/* Bytes of documents one organization may store in the HIE's repository (pushes with no
 * recipient; delivery.repository_bytes_max): the repository keeps them for good, and one
 * member must not fill the storage every member's exchanges need. */
#define HIE_REPOSITORY_BYTES_DEFAULT (1024ull * 1024ull * 1024ull)
/* A document id (a push's message id, "<sender org>:<envelope id>") as requests name it, and
 * the reason an author or the operator gives when retracting a repository document. */
#define HIE_DOCUMENT_ID_BYTES_MAX 200u
#define HIE_RETRACT_REASON_BYTES_MAX 256u
/* Subscriptions: roster MRNs per request, per subscription; subscriptions per organization;
 * notifications one ADT event fans out to (one command). */
#define HIE_SUBSCRIPTION_ROSTER_BATCH_MAX 1000u
#define HIE_SUBSCRIPTION_ROSTER_MAX 100000u
#define HIE_SUBSCRIPTIONS_PER_ORG_MAX 64u
#define HIE_ADT_NOTICES_MAX 1024u
/* How long a visit's recipients are kept for its cancel (A11, A13): a cancel after it reaches
 * no one. Rows older go, a few with each ADT event applied. */
#define HIE_ADT_VISIT_RETAIN_MS (400ull * 24ull * 3600ull * 1000ull)
#define HIE_ADT_VISIT_PRUNE_PER_APPLY 4u
/* Notifications kept per subscription for replays (older ones are forgotten). */
#define HIE_SUBSCRIPTION_RETAIN_MAX 10000u /* default of delivery.retain_events */
#define HIE_SUBSCRIPTION_RETAIN_LIMIT 100000u /* its largest value */
/* Idle receiving connections get a heartbeat this often (delivery.heartbeat_ms). */
#define HIE_DELIVERY_HEARTBEAT_MS_DEFAULT 30000u
/* Dead letters one redrive-all command moves back (run it again for more). */
#define HIE_DELIVERY_REDRIVE_MAX 10000u
/* Notifications one replay queues again, each decided and audited anew (replay again from
 * the next event number for more). */
#define HIE_REPLAY_NOTICES_MAX 1000u
/* Replays one subscription may ask for in a window (node-wide), and one organization for all
 * of its subscriptions (up to 64 of them each allowed the per-subscription share: 32,000 audit
 * records a second of notices a replay withholds and still audits). */
#define HIE_REPLAYS_PER_WINDOW 5u
#define HIE_REPLAYS_PER_ORG_WINDOW 10u
#define HIE_REPLAY_WINDOW_MS 10000u
/* Dead letters one redrive decides: every one a redrive may move (HIE_DELIVERY_REDRIVE_MAX),
 * so letters consent withholds at the head cannot keep the rest from being decided. */
#define HIE_REDRIVE_DECIDED_MAX 10000u
/* Redelivery: no acknowledgement within ack_timeout_ms (doubling per attempt, +-20% jitter,
 * capped) sends again; after max_attempts or max_age_ms the message is dead-lettered. */
#define HIE_DELIVERY_ACK_TIMEOUT_MS_DEFAULT 30000u
#define HIE_DELIVERY_BACKOFF_MS_MAX (3600u * 1000u)
#define HIE_DELIVERY_MAX_ATTEMPTS_DEFAULT 8u
#define HIE_DELIVERY_MAX_AGE_MS_DEFAULT (7ull * 24u * 3600u * 1000u)

/* Graceful shutdown: how long SIGTERM waits for in-flight requests. */
#define HIE_NODE_DRAIN_TIMEOUT_MS 10000u

/* Log line length; longer lines are cut and end with "...". */
#define HIE_LOG_LINE_BYTES_MAX 2048u

/* Config file size: a node config is a page of YAML. */
#define HIE_CONFIG_FILE_BYTES_MAX (256u * 1024u)

/* ---- consent decision engine (broker/include/hie/consent.h) ------------------------------- */
/* Each limit below is checked by hie_consent_directive_validate() when a member submits a
 * directive (over the limit: HIE_ELIMIT, BAD_REQUEST naming the field, nothing stored) and
 * again, on the compiled form, by hie_consent_compiled_check() when it is read back. */

/* Provisions in one directive, the root included, at every depth. IHE PCF's advanced examples
 * use fewer than ten; 64 leaves room for a list of per-organization exceptions while bounding
 * the compiled table and the work of one decision (each provision is matched once per label). */
#define HIE_CONSENT_PROVISIONS_MAX 64u
/* Nesting depth of the provision tree, the root being depth 1. Each level reverses its parent
 * (permit, deny, permit, ...); real directives rarely pass 3. Checked before a level is
 * visited, so a directive nested 1,000 deep is refused after looking at 8 levels. */
#define HIE_CONSENT_DEPTH_MAX 8u
/* Items in one list of one provision (actors, purposes, security labels, classes, actions).
 * Every vocabulary is smaller than this except organizations, where 32 named recipients per
 * provision is a generous "share with these practices" list. */
#define HIE_CONSENT_LIST_ITEMS_MAX 32u
/* Bytes of one code string (a security label or a document class) before the vocabulary
 * lookup; every code in the vocabularies is shorter. Longer is HIE_ELIMIT. */
#define HIE_CONSENT_CODE_BYTES_MAX 32u
/* policy_uri (BPPC-style policy acknowledged): a URL or an OID, printable ASCII. */
#define HIE_CONSENT_POLICY_URI_BYTES_MAX 256u
/* Directive id ("cns-<log index>"): the shape of an envelope id. */
#define HIE_CONSENT_ID_BYTES_MAX HIE_PROTO_ID_BYTES_MAX
/* The patient's MRN or EUID in a directive: printable ASCII, no spaces; the MPI's MRN bound. */
#define HIE_CONSENT_PATIENT_ID_BYTES_MAX 64u
/* Directives one decision may look at: one patient's directives in force or on file. A
 * decision over more fails closed (DENY, HIE_ELIMIT); the store keeps fewer per patient. */
#define HIE_CONSENT_DIRECTIVES_MAX 64u
/* Distinct data-period bounds a decision about a document of unknown date is made around (the
 * directives in force of one patient); past it the decision fails closed. Each bound costs
 * one decision per class considered. */
#define HIE_CONSENT_UNKNOWN_BOUNDS_MAX 64u
/* Largest compiled directive: a 64-byte header, the id, and per provision 56 fixed bytes plus
 * a length byte and an org id per actor. About 132 KiB at the worst; a typical directive
 * compiles to a few hundred bytes. hie_consent_compile() never writes more. */
#define HIE_CONSENT_COMPILED_BYTES_MAX                                                         \
    (64u + HIE_CONSENT_ID_BYTES_MAX +                                                          \
        HIE_CONSENT_PROVISIONS_MAX *                                                           \
            (56u + HIE_CONSENT_LIST_ITEMS_MAX * (1u + HIE_ORG_ID_BYTES_MAX)))
/* What a member may file, checked when it submits (apply stores what the limits above allow,
 * so that an older log replays as it applied). Every decision about the patient reads every
 * compiled directive on file: at about 1.7 us a KiB, a patient's 64 directives at the
 * compiled maximum made each decision cost 14 ms, and a record query over a patient's
 * documents thousands of them. One directive at most 16 KiB compiled (some 250 named
 * organizations), one record's (one organization's) together at most 128 KiB (about 0.2 ms
 * a decision for each organization that holds a record of the patient). */
#define HIE_CONSENT_SUBMIT_COMPILED_BYTES_MAX (16u * 1024u)
#define HIE_CONSENT_RECORD_COMPILED_BYTES_MAX (128u * 1024u)
_Static_assert(HIE_CONSENT_PROVISIONS_MAX < 255u, "provision index and parent fit in a byte");
_Static_assert(HIE_CONSENT_DEPTH_MAX <= HIE_CONSENT_PROVISIONS_MAX, "depth needs provisions");
_Static_assert(HIE_CONSENT_LIST_ITEMS_MAX <= 255u && HIE_CONSENT_ID_BYTES_MAX <= 255u,
    "counts and the id length fit in a byte of the compiled form");

/* ---- tamper-evident audit log core (broker/include/hie/audit.h) --------------------------- */
/* Leaves in one audit tree. The tree's keys carry a 1-byte level and an 8-byte index, and a
 * proof for a tree of at most 2^63 leaves has at most 63 (inclusion) or 64 (consistency)
 * hashes. A million disclosures a day reach it in 2.5e10 years; appending past it is
 * HIE_ELIMIT, and a proof or checkpoint naming a larger size is refused. */
#define HIE_AUDIT_TREE_SIZE_MAX (1ull << 63)
/* Hashes in one inclusion or consistency proof (RFC 9162 proofs are about log2(n) hashes).
 * A verifier refuses a longer proof (HIE_EINVAL) before hashing anything, so a peer cannot
 * make it loop; the node decoding a proof off the wire checks the count against it first. */
#define HIE_AUDIT_PROOF_HASHES_MAX 64u
/* Checkpoint origin line: printable ASCII (C2SP tlog-checkpoint suggests a schema-less URL
 * such as "hie.example/audit"; sum.golang.org uses "go.sum database tree"). Longer is refused
 * (HIE_ELIMIT). */
#define HIE_AUDIT_ORIGIN_BYTES_MAX 256u
/* Key name of a signature line or verifier key (C2SP signed-note: no spaces, no '+'). */
#define HIE_AUDIT_KEY_NAME_BYTES_MAX 256u
/* Whole signed note: the 3-line body (at most 323 bytes) plus its signature lines. An
 * Ed25519 line is 98 bytes plus its key name, so 16 lines with names of up to 130 bytes fit
 * (C2SP asks verifiers to bound the note, "or, equivalently", the signature count). A longer
 * note is refused before any parsing (HIE_ELIMIT). */
#define HIE_AUDIT_NOTE_BYTES_MAX 4096u
/* Signature lines in one note: C2SP signed-note says a verifier MUST accept at least 16
 * (the log's key, a rotated key and witness cosignatures). A 17th is HIE_ELIMIT. */
#define HIE_AUDIT_NOTE_SIGNATURES_MAX 16u
_Static_assert(HIE_AUDIT_PROOF_HASHES_MAX >= 64u, "a proof for 2^63 leaves has up to 64 hashes");
/* body (origin, 20 digits, 44 base64, 3 newlines) + blank line + one Ed25519 line */
_Static_assert(HIE_AUDIT_ORIGIN_BYTES_MAX + 67u + 1u + 98u + HIE_AUDIT_KEY_NAME_BYTES_MAX <=
    HIE_AUDIT_NOTE_BYTES_MAX, "the longest checkpoint with one signature fits in a note");

#endif
