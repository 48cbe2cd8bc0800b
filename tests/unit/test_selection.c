/* The partition-chain rule: which sinks a change arriving under a relation
 * goes to, judged with the relation's ancestors, and the refusal of filters
 * that select a partition apart from the relation its changes arrive under
 * (publish_via_partition_root). */
#include "check.h"
#include "selection.h"
#include "sink_host.h"

#include <stdbool.h>
#include <stdlib.h>

#define DB "mydb"

/* public.orders > public.orders_2025 > public.orders_2025_eu, visible. */
static catalog_table tables[] = {
    {"public", "orders_2025_eu", "public.orders_2025_eu", true, 3},
    {"public", "orders_2025", "public.orders_2025", true, 2},
    {"public", "orders", "public.orders", true, 1},
};
static const catalog_chain leaf = {tables, 3};
static const catalog_chain partition = {tables + 1, 2};
static const catalog_chain root = {tables + 2, 1};

static table_filter *filter(const char *include, const char *exclude)
{
    char err[256];
    table_filter *f = table_filter_new();
    if (include)
        CHECK(table_filter_add(f, false, include, DB, err, sizeof err));
    if (exclude)
        CHECK(table_filter_add(f, true, exclude, DB, err, sizeof err));
    return f;
}

static void test_chain_rule(void)
{
    table_filter *f = filter("orders", NULL);
    selection *s = selection_new(f, NULL, 0);
    CHECK(selection_has_patterns(s));
    /* an include matching an ancestor selects the partitions below it */
    CHECK(selection_global(s, &leaf));
    CHECK(selection_global(s, &partition));
    CHECK(selection_global(s, &root));
    selection_free(s);
    table_filter_free(f);

    f = filter("orders_2025", NULL);
    s = selection_new(f, NULL, 0);
    CHECK(selection_global(s, &leaf));
    CHECK(selection_global(s, &partition));
    CHECK(!selection_global(s, &root));
    selection_free(s);
    table_filter_free(f);

    /* an exclude matching any ancestor wins */
    f = filter("orders", "orders_2025");
    s = selection_new(f, NULL, 0);
    CHECK(!selection_global(s, &leaf));
    CHECK(selection_global(s, &root));
    selection_free(s);
    table_filter_free(f);

    /* an unqualified pattern sees an ancestor only when it is visible */
    catalog_table hidden[] = {{"app", "part", "app.part", false, 5},
                              {"app", "orders", "app.orders", false, 4}};
    const catalog_chain hidden_leaf = {hidden, 2};
    f = filter("orders", NULL);
    s = selection_new(f, NULL, 0);
    CHECK(!selection_global(s, &hidden_leaf));
    selection_free(s);
    table_filter_free(f);
    f = filter("app.orders", NULL);
    s = selection_new(f, NULL, 0);
    CHECK(selection_global(s, &hidden_leaf));
    selection_free(s);
    table_filter_free(f);
}

static void test_sink_masks(void)
{
    table_filter *global = filter(NULL, NULL);
    sink_handle a = {.name = "all", .filter = filter(NULL, NULL)};
    sink_handle b = {.name = "y2025", .filter = filter("orders_2025", NULL)};
    sink_handle *sinks[] = {&a, &b};
    selection *s = selection_new(global, sinks, 2);
    CHECK(selection_has_patterns(s));
    CHECK(selection_mask(s, &leaf) == 3);
    CHECK(selection_mask(s, &root) == 1);
    selection_free(s);
    table_filter_free(global);

    /* nothing reaches a sink the global filter leaves out */
    global = filter(NULL, "orders_2025_eu");
    s = selection_new(global, sinks, 2);
    CHECK(selection_mask(s, &leaf) == 0);
    CHECK(selection_mask(s, &partition) == 3);
    selection_free(s);
    table_filter_free(global);
    table_filter_free(a.filter);
    table_filter_free(b.filter);
}

static bool refused(const table_filter *global, sink_handle **sinks,
                    size_t nsinks, const char *want)
{
    catalog_chain leaves[] = {leaf};
    catalog_source src = {root, leaves, 1};
    char err[2048] = "";
    selection *s = selection_new(global, sinks, nsinks);
    bool ok = selection_check_partitions(s, &src, "publication \"pub\"", err,
                                         sizeof err);
    selection_free(s);
    if (!ok && !strstr(err, want))
        printf("# message: %s\n", err);
    return !ok && strstr(err, want) && strstr(err, "publication \"pub\"") &&
           strstr(err, "publish_via_partition_root = false");
}

static void test_partition_refusal(void)
{
    table_filter *f = filter("orders", NULL);
    CHECK(!refused(f, NULL, 0, ""));
    table_filter_free(f);

    f = filter("orders_2025", NULL);
    CHECK(refused(f, NULL, 0,
                  "include pattern \"orders_2025\" selects partition "
                  "public.orders_2025 but not public.orders:"));
    table_filter_free(f);

    f = filter(NULL, "orders_2025_eu");
    CHECK(refused(f, NULL, 0,
                  "exclude pattern \"orders_2025_eu\" excludes partition "
                  "public.orders_2025_eu but not public.orders:"));
    table_filter_free(f);

    /* neither selected: nothing to refuse */
    f = filter("other", NULL);
    CHECK(!refused(f, NULL, 0, ""));
    table_filter_free(f);

    /* a sink's filter, checked when the global filter selects the root; the
     * message names the nearest table the pattern matched */
    table_filter *global = filter(NULL, NULL);
    sink_handle b = {.name = "y2025", .filter = filter("orders_2025*", NULL)};
    sink_handle *sinks[] = {&b};
    CHECK(refused(global, sinks, 1,
                  "sink \"y2025\": include pattern \"orders_2025*\" selects "
                  "partition public.orders_2025_eu but not public.orders:"));
    table_filter_free(global);
    global = filter("other", NULL);
    CHECK(!refused(global, sinks, 1, ""));
    table_filter_free(global);
    table_filter_free(b.filter);
}

int main(void)
{
    test_chain_rule();
    test_sink_masks();
    test_partition_refusal();
    return check_summary();
}
