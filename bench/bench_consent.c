/*
 * bench_consent.c - latency of one consent decision (issue 4; reference.md section 6, S4):
 * hie_consent_decide() over a patient's compiled directives, against the in-run baseline of
 * the reference evaluator hie_consent_decide_tree() walking the protobuf directives.
 *
 * usage: bench_consent [--decisions N] [--patients P] [--smoke]
 *   Defaults: 100,000 decisions over 1,000 patients with 10 directives each. --smoke: 2,000
 *   decisions over 100 patients (a few seconds under ASan).
 *
 * Workload (fixed seed, so runs are comparable): each patient's directives come from the unit
 * tests' generator (tests/unit/broker/test_consent_fixture.h), with bigger trees: up to 23
 * provisions nested up to 5 levels (about 8 on average), with actors, purposes, labels,
 * classes, actions and periods; about a sixth inactive and a sixth revoked, as a patient's
 * history would be.
 * They are compiled once and their bytes copied into one buffer, as LMDB values would sit in
 * the map. Each decision takes a random patient, policy and request (labels included) and is
 * timed per call with CLOCK_MONOTONIC for both evaluators in turn; both must agree (the run
 * fails otherwise). Both include their integrity checks: the compiled path re-checks every
 * blob (checksum and bounds), the tree path re-validates every directive.
 * Prints figures and one machine-readable line:
 *   HIE_CONSENT decisions= directives= ns_per_op= p50_us= p99_us= max_us= tree_p50_us=
 *   tree_p99_us= tree_max_us= ratio_p99= target_p99_us=50 mismatches=
 * No node, TLS or LMDB is involved: this measures the engine alone.
 */
#include "../tests/unit/broker/test_consent_fixture.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIRECTIVES_PER_PATIENT 10u
#define SEED 0x6869656265ull /* BENCH_SEED of the other benchmarks */
#define TARGET_P99_US 50.0

struct patient {
    const Hie__V1__ConsentDirective *dirs[DIRECTIVES_PER_PATIENT];
    hie_span_t spans[DIRECTIVES_PER_PATIENT];
};

struct stats {
    double p50_us, p99_us, max_us, mean_ns;
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct stats
stats_of(uint64_t *lat_ns, size_t n)
{
    struct stats s = {0};
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)lat_ns[i];
    }
    qsort(lat_ns, n, sizeof(*lat_ns), cmp_u64);
    s.p50_us = (double)lat_ns[(n - 1) * 50 / 100] / 1000.0;
    s.p99_us = (double)lat_ns[(n - 1) * 99 / 100] / 1000.0;
    s.max_us = (double)lat_ns[n - 1] / 1000.0;
    s.mean_ns = sum / (double)n;
    return s;
}

/* Provisions in a (validated, so at most 8 deep) tree. */
static size_t
count_provisions(const Hie__V1__ConsentProvision *p)
{
    size_t n = 1;
    for (size_t i = 0; i < p->n_provisions; i++) {
        n += count_provisions(p->provisions[i]);
    }
    return n;
}

/* Builds and compiles every patient's directives. Returns total compiled bytes. */
static size_t
build(hie_arena_t *arena, cfx_rng_t *r, struct patient *pts, size_t patients,
    size_t *provisions)
{
    uint8_t *tmp = malloc(HIE_CONSENT_COMPILED_BYTES_MAX);
    size_t total = 0;
    HIE_ASSERT(tmp != NULL);
    *provisions = 0;
    for (size_t p = 0; p < patients; p++) {
        for (unsigned k = 0; k < DIRECTIVES_PER_PATIENT; k++) {
            Hie__V1__ConsentDirective *d = cfx_random_directive(arena, r, k + 1);
            /* a bigger tree than the unit tests' default: 4..23 provisions, 2..5 levels */
            unsigned budget = 4 + cfx_below(r, 20);
            d->provision = cfx_random_prov(arena, r, (int)d->provision->type, 1,
                2 + cfx_below(r, 4), &budget);
            d->date_ms = (int64_t)k * 10; /* later directives are newer, as on file */
            d->submitted_index = p * DIRECTIVES_PER_PATIENT + k + 1;
            size_t len = 0;
            int rc = hie_consent_compile(d, tmp, HIE_CONSENT_COMPILED_BYTES_MAX, &len, NULL);
            HIE_ASSERT(rc == 0);
            uint8_t *copy = hie_arena_alloc(arena, len);
            HIE_ASSERT(copy != NULL);
            memcpy(copy, tmp, len);
            pts[p].dirs[k] = d;
            pts[p].spans[k] = hie_span(copy, len);
            total += len;
            *provisions += count_provisions(d->provision);
        }
    }
    free(tmp);
    return total;
}

struct run {
    uint64_t *lat, *lat_tree;
    size_t permits, redacts, break_glass, mismatches;
};

static void
decide_all(const struct patient *pts, size_t patients, size_t decisions, cfx_rng_t *r,
    struct run *out)
{
    for (size_t i = 0; i < decisions; i++) {
        const struct patient *pt = &pts[cfx_below(r, (uint32_t)patients)];
        hie_consent_policy_t pol;
        hie_consent_request_t req;
        cfx_random_policy(r, &pol);
        cfx_random_request(r, &req);
        hie_consent_decision_t a, b;
        uint64_t t0 = hie_time_mono_ns();
        int rc = hie_consent_decide(&pol, pt->spans, DIRECTIVES_PER_PATIENT, &req, &a);
        uint64_t t1 = hie_time_mono_ns();
        int rc_tree = hie_consent_decide_tree(&pol, pt->dirs, DIRECTIVES_PER_PATIENT, &req, &b);
        uint64_t t2 = hie_time_mono_ns();
        out->lat[i] = t1 - t0;
        out->lat_tree[i] = t2 - t1;
        out->mismatches += rc != 0 || rc_tree != 0 || cfx_decision_diff(&a, &b) != NULL;
        out->permits += a.decision == HIE_CONSENT_PERMIT;
        out->redacts += (a.obligations & HIE_CONSENT_OBL_REDACT_MASK) != 0;
        out->break_glass += a.break_glass;
    }
}

static int
parse_args(int argc, char **argv, size_t *decisions, size_t *patients)
{
    static const struct option longopts[] = {{"decisions", required_argument, NULL, 'd'},
        {"patients", required_argument, NULL, 'p'}, {"smoke", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'd') {
            *decisions = strtoull(optarg, NULL, 10);
        } else if (c == 'p') {
            *patients = strtoull(optarg, NULL, 10);
        } else if (c == 's') {
            *decisions = 2000;
            *patients = 100;
        } else {
            fprintf(stderr, "usage: bench_consent [--decisions N] [--patients P] [--smoke]\n");
            return 2;
        }
    }
    if (*decisions == 0 || *patients == 0 || *decisions > 100000000u || *patients > 1000000u) {
        fprintf(stderr, "bench_consent: decisions 1..1e8, patients 1..1e6\n");
        return 2;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    size_t decisions = 100000, patients = 1000, provisions = 0;
    if (parse_args(argc, argv, &decisions, &patients) != 0) {
        return 2;
    }
    hie_arena_t *arena = NULL;
    HIE_ASSERT(hie_arena_create(&arena, (size_t)8u << 30) == 0);
    cfx_rng_t r = {SEED};
    struct patient *pts = calloc(patients, sizeof(*pts));
    struct run run = {calloc(decisions, 8), calloc(decisions, 8), 0, 0, 0, 0};
    HIE_ASSERT(pts != NULL && run.lat != NULL && run.lat_tree != NULL);
    size_t bytes = build(arena, &r, pts, patients, &provisions);
    size_t directives = patients * DIRECTIVES_PER_PATIENT;
    printf("bench_consent: %zu patients x %u directives (%.1f provisions and %.0f compiled "
           "bytes per directive), %zu decisions, seed 0x%llx\n", patients,
        DIRECTIVES_PER_PATIENT, (double)provisions / (double)directives,
        (double)bytes / (double)directives, decisions, (unsigned long long)SEED);
    decide_all(pts, patients, decisions, &r, &run);
    struct stats c = stats_of(run.lat, decisions), t = stats_of(run.lat_tree, decisions);
    printf("compiled: mean %.0f ns  p50 %.2f us  p99 %.2f us  max %.2f us\n", c.mean_ns, c.p50_us,
        c.p99_us, c.max_us);
    printf("tree:     mean %.0f ns  p50 %.2f us  p99 %.2f us  max %.2f us  (p99 ratio %.2fx)\n",
        t.mean_ns, t.p50_us, t.p99_us, t.max_us, t.p99_us / c.p99_us);
    printf("outcomes: %zu permits, %zu with redactions, %zu break-glass; %zu mismatches; "
           "p99 target %.0f us %s\n", run.permits, run.redacts, run.break_glass, run.mismatches,
        TARGET_P99_US, c.p99_us < TARGET_P99_US ? "met" : "NOT met");
    printf("HIE_CONSENT decisions=%zu directives=%u ns_per_op=%.0f p50_us=%.2f p99_us=%.2f "
           "max_us=%.2f tree_p50_us=%.2f tree_p99_us=%.2f tree_max_us=%.2f ratio_p99=%.2f "
           "target_p99_us=%.0f mismatches=%zu\n", decisions, DIRECTIVES_PER_PATIENT, c.mean_ns,
        c.p50_us, c.p99_us, c.max_us, t.p50_us, t.p99_us, t.max_us, t.p99_us / c.p99_us,
        TARGET_P99_US, run.mismatches);
    free(run.lat);
    free(run.lat_tree);
    free(pts);
    hie_arena_destroy(&arena);
    return run.mismatches == 0 ? 0 : 1;
}
