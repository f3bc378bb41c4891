/*
 * test_edge_orgs.c - unit tests for the per-organization connection table (edge.c): counts
 * held up to the limit, given back, and the open-addressed table stays consistent when
 * organizations leave in any order (backward-shift deletion), with a printed seed.
 */
#include "node_int.h"

#include "../test_util.h"

#include <criterion/criterion.h>

#include <stdio.h>

Test(node_org_conns, counts_up_to_the_limit_and_back)
{
    node_org_conns_t *oc = NULL;
    cr_assert_eq(hie_node__org_conns_create(8, &oc), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert(hie_node__org_conns_take(oc, "clinic-a", 3));
    }
    cr_assert_not(hie_node__org_conns_take(oc, "clinic-a", 3), "a fourth over the limit");
    cr_assert(hie_node__org_conns_take(oc, "clinic-b", 3), "another organization");
    hie_node__org_conns_give(oc, "clinic-a");
    cr_assert(hie_node__org_conns_take(oc, "clinic-a", 3), "a freed place");
    hie_node__org_conns_destroy(&oc);
    cr_assert_null(oc);
}

/* Random takes and gives over 14 organizations in a 16-slot table (more than the node would
 * ever put there, so probe runs collide and deletions shift), checked against a plain array
 * model at every step. */
Test(node_org_conns, random_takes_and_gives_match_a_model)
{
    enum { ORGS = 14, STEPS = 20000, MAX = 5 };
    uint64_t seed = test_seed(0x4f5247434f4e4e53ull); /* "ORGCONNS" */
    test_rng_t rng;
    test_rng_init(&rng, seed);
    node_org_conns_t *oc = NULL;
    cr_assert_eq(hie_node__org_conns_create(8, &oc), 0);
    unsigned model[ORGS] = {0};
    char names[ORGS][16];
    for (int i = 0; i < ORGS; i++) {
        snprintf(names[i], sizeof(names[i]), "org-%d", i);
    }
    for (int step = 0; step < STEPS; step++) {
        int o = (int)test_rng_below(&rng, ORGS);
        if (model[o] > 0 && test_rng_below(&rng, 2) == 0) {
            hie_node__org_conns_give(oc, names[o]);
            model[o]--;
        } else {
            bool ok = hie_node__org_conns_take(oc, names[o], MAX);
            cr_assert_eq(ok, model[o] < MAX, "seed %" PRIu64 " step %d org %d", seed, step, o);
            model[o] += ok;
        }
    }
    for (int o = 0; o < ORGS; o++) { /* every count is still found: take until refused */
        unsigned n = model[o];
        while (hie_node__org_conns_take(oc, names[o], MAX)) {
            n++;
        }
        cr_assert_eq(n, MAX, "seed %" PRIu64 " org %d", seed, o);
    }
    hie_node__org_conns_destroy(&oc);
}
