/*
 * hie/base.h - the small shared base of every hiebroker module.
 *
 * Purpose: error codes and hie_strerror(), release-mode assertions, logging, the replaceable
 * allocator hooks (hie_mem_*), byte spans and a bounded arena.
 *
 * Threads: every function here may be called from any thread. The allocator hooks and the log
 * configuration are set once by main() before threads start; the allocation counters are
 * atomics, so tests can check for leaks.
 *
 * Ownership: memory from hie_mem_alloc() is freed with hie_mem_free(); an arena owns every block
 * it hands out and releases them all in hie_arena_release().
 *
 * Limits: see hie/limits.h. Logging never formats more than HIE_LOG_LINE_BYTES_MAX per line.
 */
#ifndef HIE_BASE_H
#define HIE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIE_MUST_CHECK __attribute__((warn_unused_result))
#define HIE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define HIE_NORETURN __attribute__((noreturn))
#define HIE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ------------------------------------------------------------------------------ */
/* Fallible functions return 0, -errno for OS failures, or one of these (range -20000..-20999). */
enum hie_err {
    HIE_EAGAIN = -20001,   /* need more bytes or retry later; not an error */
    HIE_ENOTFOUND = -20002,
    HIE_EINVAL = -20003,   /* caller or input is invalid */
    HIE_EPROTO = -20004,   /* malformed wire data */
    HIE_ELIMIT = -20005,   /* a limit from hie/limits.h or the config was exceeded */
    HIE_EDENIED = -20006,  /* authorization or consent */
    HIE_ENOMEM = -20007,
    HIE_ECORRUPT = -20008, /* stored data failed validation */
    HIE_ESTATE = -20009,   /* object is poisoned by an earlier failure */
    HIE_EUNAUTH = -20010,  /* peer identity missing, unknown or suspended */
    HIE_EBUSY = -20011,    /* overloaded: queue full */
    HIE_EUNAVAIL = -20012, /* shutting down or not ready */
    HIE_ETIMEDOUT = -20013,
    HIE_ESTORAGE = -20014, /* LMDB or file I/O failure */
    HIE_ECONFIG = -20015,  /* configuration invalid */
    HIE_ETLS = -20016,     /* TLS failure (handshake, certificate) */
    HIE_ENOSPC = -20017,   /* storage (an LMDB map) is full: refused, nothing written */
};
#define HIE_ERR_MIN (-20999)
#define HIE_ERR_MAX (-20000)

/* Returns a static, human-readable description of rc (HIE_E* or -errno). Never NULL. */
const char *hie_strerror(int rc);
/* Returns the symbolic name of rc ("HIE_ELIMIT", "ENOENT", ...). Never NULL. */
const char *hie_strerror_name(int rc);

/* Why a decoder or validator refused its input: a static reason and field name, never values. */
typedef struct hie_errinfo {
    const char *reason; /* static string, e.g. "too long" */
    const char *field;  /* static string, e.g. "envelope.id", or NULL */
} hie_errinfo_t;

static inline int
hie_errinfo_set(hie_errinfo_t *info, int rc, const char *field, const char *reason)
{
    if (info != NULL) {
        info->field = field;
        info->reason = reason;
    }
    return rc;
}

/* ---- assertions -------------------------------------------------------------------------- */
/* Logs "file:line func: assertion 'e' failed", flushes and aborts. Never returns. */
HIE_NORETURN void hie__assert_fail(const char *expr, const char *file, int line, const char *func);

/* On in every build, release included (style.md 3.6). Programmer errors only, never input. */
#define HIE_ASSERT(e)                                                                          \
    ((e) ? (void)0 : hie__assert_fail(#e, __FILE__, __LINE__, __func__))
#if defined(HIE_DEBUG_ASSERTS) && HIE_DEBUG_ASSERTS
#define HIE_DEBUG_ASSERT(e) HIE_ASSERT(e)
#else
#define HIE_DEBUG_ASSERT(e) ((void)0)
#endif

/* ---- byte spans -------------------------------------------------------------------------- */
/* Wire bytes: never assumed NUL-terminated. Borrowed: the owner says for how long. */
typedef struct hie_span {
    const uint8_t *ptr;
    size_t len;
} hie_span_t;

static inline hie_span_t
hie_span(const void *ptr, size_t len)
{
    hie_span_t s = {(const uint8_t *)ptr, len};
    return s;
}

static inline uint32_t
hie_load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void
hie_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
hie_store_be64(uint8_t *p, uint64_t v)
{
    hie_store_be32(p, (uint32_t)(v >> 32));
    hie_store_be32(p + 4, (uint32_t)v);
}

static inline uint64_t
hie_load_be64(const uint8_t *p)
{
    return ((uint64_t)hie_load_be32(p) << 32) | hie_load_be32(p + 4);
}

/* ---- memory ------------------------------------------------------------------------------ */
/* All heap use goes through these. They return NULL on failure (never abort). */
void *hie_mem_alloc(size_t bytes);
void *hie_mem_calloc(size_t count, size_t size);
void *hie_mem_realloc(void *ptr, size_t old_bytes, size_t new_bytes);
/* Frees ptr (NULL-safe); bytes must be the size it was allocated with (for accounting). */
void hie_mem_free(void *ptr, size_t bytes);
/* Wipes then frees: for PHI and secrets. */
void hie_mem_free_wipe(void *ptr, size_t bytes);
char *hie_mem_strdup(const char *s);
void hie_mem_strfree(char *s);

/* Test hooks: make allocation number n (1-based, counted from this call) and every later one
 * fail; 0 turns failure injection off. Live bytes counts what is allocated and not yet freed. */
void hie_mem_fail_after(uint64_t n);
int64_t hie_mem_live_bytes(void);

/* ---- arena ------------------------------------------------------------------------------- */
/* A bump allocator with a hard byte cap; one per envelope. Not thread-safe: one owner. */
typedef struct hie_arena hie_arena_t;

/* Creates an arena that will hand out at most cap_bytes in total. [out] *out owned by the
 * caller (hie_arena_destroy). Returns 0 or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_arena_create(hie_arena_t **out, size_t cap_bytes);
/* The same with a first block of first_bytes (at least 256; the default is 16 KiB), for an
 * arena that usually holds little and may live long (a request waiting for its audit record). */
HIE_MUST_CHECK int hie_arena_create_first(hie_arena_t **out, size_t cap_bytes,
    size_t first_bytes);
/* Frees every block and the arena; sets *arena to NULL; NULL-safe. */
void hie_arena_destroy(hie_arena_t **arena);
/* Empties the arena for reuse: everything it handed out is invalid, its newest (largest)
 * block is kept and the others freed, the cap counts from zero again. For an owner that
 * would otherwise create and destroy an arena per item (fresh pages each time). */
void hie_arena_reset(hie_arena_t *arena);
/* Zeroes what the arena handed out (decrypted personal data must not stay in freed memory);
 * call before hie_arena_reset or hie_arena_destroy. */
void hie_arena_wipe(hie_arena_t *arena);
/* Returns 16-aligned memory valid until destroy, or NULL when the cap or memory runs out
 * (hie_arena_cap_hit() then tells which). */
void *hie_arena_alloc(hie_arena_t *arena, size_t bytes);
bool hie_arena_cap_hit(const hie_arena_t *arena);
/* True once an allocation failed below the cap: the system ran out of memory (until reset). */
bool hie_arena_out_of_memory(const hie_arena_t *arena);
size_t hie_arena_used_bytes(const hie_arena_t *arena);

/* ---- hashing --------------------------------------------------------------------------- */
/* FNV-1a over the NUL-terminated strings a and b (b may be NULL), with a separator between
 * them so ("ab","c") and ("a","bc") differ. For in-process routing and caches only: not keyed,
 * never for anything a peer can use to collide on purpose at scale. */
uint64_t hie_hash_pair(const char *a, const char *b);

/* ---- time -------------------------------------------------------------------------------- */
uint64_t hie_time_mono_ns(void);   /* CLOCK_MONOTONIC */
int64_t hie_time_wall_ms(void);    /* CLOCK_REALTIME in ms since the epoch */

/* ---- logging ----------------------------------------------------------------------------- */
/* One line per event to stderr: `ts=... level=info mod=edge msg="..." key=value ...`, or a JSON
 * object per line. Never log PHI or payload bytes. */
enum hie_log_level { HIE_LOG_ERROR = 0, HIE_LOG_WARN, HIE_LOG_INFO, HIE_LOG_DEBUG };
enum hie_log_format { HIE_LOG_KV = 0, HIE_LOG_JSON };

/* Set once before threads start. */
void hie_log_configure(enum hie_log_level level, enum hie_log_format format);
/* Parses "error|warn|info|debug" or "kv|json". Return 0 or HIE_EINVAL. */
HIE_MUST_CHECK int hie_log_level_parse(const char *s, enum hie_log_level *out);
HIE_MUST_CHECK int hie_log_format_parse(const char *s, enum hie_log_format *out);
bool hie_log_enabled(enum hie_log_level level);

/* msg is a short lowercase constant describing the event; fmt adds ` key=value` pairs (the
 * caller writes them with a leading space), e.g.
 *   hie_log_info("edge", "request done", " org=%s id=%s rc=%s", ...). */
void hie_log_write(enum hie_log_level level, const char *mod, const char *msg, const char *fmt,
    ...) HIE_PRINTF(4, 5);
#define hie_log_error(mod, msg, ...) hie_log_write(HIE_LOG_ERROR, mod, msg, __VA_ARGS__)
#define hie_log_warn(mod, msg, ...) hie_log_write(HIE_LOG_WARN, mod, msg, __VA_ARGS__)
#define hie_log_info(mod, msg, ...) hie_log_write(HIE_LOG_INFO, mod, msg, __VA_ARGS__)
#define hie_log_debug(mod, msg, ...)                                                           \
    do {                                                                                       \
        if (hie_log_enabled(HIE_LOG_DEBUG))                                                    \
            hie_log_write(HIE_LOG_DEBUG, mod, msg, __VA_ARGS__);                               \
    } while (0)

/* Writes s into a log-safe token: only [A-Za-z0-9._:@/-] are copied, others become '?', at most
 * out_bytes-1 characters. For identifiers (org ids, envelope ids) that came from a peer. */
void hie_log_sanitize(char *out, size_t out_bytes, const char *s, size_t s_len);

#ifdef __cplusplus
}
#endif
#endif
