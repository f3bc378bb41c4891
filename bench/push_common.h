/*
 * push_common.h - what bench_push.c (our durable push) and push_rabbitmq.c (the same workload
 * through RabbitMQ) share: the workload's options and limits, the 1 KiB documents, the
 * per-message bookkeeping that proves exactly-once delivery per message id, and the result.
 *
 * Threads: one push_track_t is shared by the sender threads and the one recipient thread of a
 * run. sent_ns is atomic (written by a sender, read by the recipient); ack_ns belongs to the
 * sender that owns the index (index % conns); e2e_ns and seen belong to the recipient. The
 * counters are atomic. init, summarize and release run on the main thread, before the
 * threads start or after they are joined.
 *
 * Limits: n <= PUSH_N_MAX messages, every array is sized n at init; every run has a deadline
 * (push_track_t.deadline_ns) that every loop checks.
 */
#ifndef HIE_BENCH_PUSH_COMMON_H
#define HIE_BENCH_PUSH_COMMON_H

#include "harness.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PUSH_DOC_BYTES 1024u      /* the document size */
#define PUSH_N_MAX 5000000u       /* messages per run: the arrays are 25 bytes per message */
#define PUSH_CONNS_MAX 64u        /* sender connections (one thread each) */
#define PUSH_WINDOW_MAX 64u       /* the node's default in-flight limit per connection */
#define PUSH_RX_WINDOW_MAX 256u   /* HIE_DELIVERY_WINDOW_MAX */
#define PUSH_ACK_EVERY_MAX 1024u  /* HIE_DELIVERY_ACK_SEQS_MAX */
#define PUSH_ACK_MS_MAX 1000u
#define PUSH_QUIET_MS 10000u      /* recipient: senders done and nothing new for this long */
#define PUSH_TIME_CAP_S_MAX 3600u
#define PUSH_SEEN_MAX 255u        /* seen[] saturates */

_Static_assert(PUSH_RX_WINDOW_MAX <= PUSH_ACK_EVERY_MAX, "a whole window fits in one ack");

typedef struct push_opts {
    unsigned n;            /* pushes in the run */
    unsigned conns;        /* sender connections */
    unsigned window;       /* pushes in flight per sender connection */
    unsigned rx_window;    /* unacknowledged deliveries (ReceiveRequest.window, prefetch) */
    unsigned ack_every;    /* the recipient acknowledges after this many deliveries ... */
    unsigned ack_ms;       /* ... or this long after the oldest unacknowledged one */
    unsigned workers;      /* hie-node workers */
    unsigned patients;     /* persons imported into the MPI */
    unsigned lmdb_batch;   /* puts per synced txn of the raw LMDB baseline */
    unsigned time_cap_s;   /* per side */
    bool smoke, keep, rabbitmq;
    bool thread_states;    /* sample what the node's threads are blocked in */
} push_opts_t;

typedef struct push_track {
    unsigned n, conns;
    _Atomic uint64_t *sent_ns;   /* monotonic send time per index; 0 = not sent */
    uint64_t *ack_ns;            /* push ack latency per index; 0 = not acknowledged */
    uint64_t *e2e_ns;            /* sent -> first delivery received, per index */
    uint8_t *seen;               /* deliveries received per index (saturating) */
    _Atomic uint64_t acked, delivered, duplicates, redelivered_flags, corrupt, errors;
    _Atomic uint64_t last_ack_ns, last_delivery_ns;
    _Atomic bool senders_done;
    _Atomic bool receiving;      /* the recipient is subscribed: the senders may start */
    uint64_t t0_ns, deadline_ns;
} push_track_t;

typedef struct push_result {
    uint64_t n, sent, acked, delivered, duplicates, redelivered_flags, lost, corrupt, errors;
    double push_s, pushes_per_s, deliveries_per_s;
    double ack_p50_us, ack_p99_us, e2e_p50_us, e2e_p99_us;
    double server_cpu_pct, client_cpu_pct, busiest_thread_pct, others_cpu_pct;
    uint64_t device_flushes, device_write_bytes, device_flush_ms;
} push_result_t;

/* Allocates the arrays for n messages and sets the deadline time_cap_s from now.
 * Returns 0 or HIE_ENOMEM. */
HIE_MUST_CHECK int push_track_init(push_track_t *t, unsigned n, unsigned conns,
    unsigned time_cap_s);
void push_track_release(push_track_t *t);

/* The 1 KiB document of message index (fixed seed): fills buf[PUSH_DOC_BYTES]. */
void push_doc_fill(unsigned index, uint8_t *buf);

/* The index of the message id "p<index>" (or "<org>:p<index>"), or UINT32_MAX. */
unsigned push_index_parse(const char *id, size_t len);

/* Records a push acknowledgement for index (sender thread that owns it). */
void push_track_acked(push_track_t *t, unsigned index, uint64_t now_ns);
/* Records one delivery of index (recipient thread): duplicates, the redelivery flag, the
 * content check, the end-to-end latency of the first delivery. */
void push_track_delivered(push_track_t *t, unsigned index, bool redelivery_flag,
    const uint8_t *content, size_t len, uint64_t now_ns);

/* Fills r from t (main thread, after the threads are joined); sorts the latency arrays.
 * Prints, for side, the first delivery's time, the end-to-end p50 per tenth of the message
 * indices and the acknowledged pushes/s per tenth of the run (how the run went, not only its
 * average). */
void push_track_summarize(push_track_t *t, push_result_t *r, const char *side);
/* One line per side: `side=... pushes_per_s=...`. */
void push_result_print(const char *side, const push_result_t *r);

/* What the block device that holds path has done since boot (/sys/dev/block/M:m/stat):
 * [out] flush requests completed (fsync, fdatasync, O_DSYNC writes), the milliseconds they
 * took, bytes written.
 * Machine-wide: other processes on the same device count too. False when unknown. */
typedef struct push_device {
    uint64_t flushes, write_bytes, flush_ms; /* flush_ms: time the flushes took, summed */
} push_device_t;
bool push_device_stat(const char *path, push_device_t *out);

/* Our CPU time (user + system) so far, in ns. */
uint64_t push_self_cpu_ns(void);

/* The whole machine's busy and total CPU time so far (/proc/stat, clock ticks, all CPUs):
 * busy = total - idle - iowait. For the share other processes took during a load. */
typedef struct push_machine {
    uint64_t busy, total;
} push_machine_t;
void push_machine_sample(push_machine_t *out);
/* CPU taken by processes other than the server and us between a and b, in % of one core. */
double push_machine_others_pct(const push_machine_t *a, const push_machine_t *b,
    double server_pct, double client_pct);

#ifdef HIE_BENCH_RABBITMQ
/* The same workload through RabbitMQ (push_rabbitmq.c): installs it when missing, starts it
 * on 127.0.0.1 with mutual TLS in <root>/rabbitmq, runs, stops it. On failure prints why and
 * returns non-zero; r is then untouched. Main thread, no other benchmark thread running. */
HIE_MUST_CHECK int push_rabbitmq_run(const push_opts_t *o, const char *root, push_result_t *r);
#endif

#endif
