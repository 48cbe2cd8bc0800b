/* One source, several deliberately broken sinks: each build defines one
 * VARIANT_* macro, and the loader test checks the host's refusal of each. */
#include <pgspout/pgspout.h>

#ifdef VARIANT_BAD_MAGIC
#define MAGIC 0xDEADBEEFu
#else
#define MAGIC PGSPOUT_ABI_MAGIC
#endif
#ifdef VARIANT_OTHER_MAJOR
#define MAJOR (PGSPOUT_ABI_MAJOR + 1)
#else
#define MAJOR PGSPOUT_ABI_MAJOR
#endif
#ifdef VARIANT_NEWER_MINOR
#define MINOR (PGSPOUT_ABI_MINOR + 1)
#elif defined(VARIANT_OLDER_MINOR)
#define MINOR 0 /* built against ABI 1.0 headers */
#else
#define MINOR PGSPOUT_ABI_MINOR
#endif
#ifdef VARIANT_SHORT_DESCRIPTOR
#define SIZE 16
#else
#define SIZE sizeof(pgspout_sink_descriptor)
#endif
#ifdef VARIANT_MISSING_FLUSH
#define FLUSH NULL
#else
#define FLUSH flush
#endif

static pgspout_status create(const pgspout_host_api *host,
                             pgspout_sink_handle *sink, void **state)
{
    (void)host;
    (void)sink;
    *state = NULL;
    return PGSPOUT_OK;
}

static pgspout_status
write_events(void *state, const pgspout_event *const *events, size_t count)
{
    (void)state;
    (void)events;
    (void)count;
    return PGSPOUT_OK;
}

static pgspout_status flush(void *state)
{
    (void)state;
    return PGSPOUT_OK;
}

static void destroy(void *state)
{
    (void)state;
}

#ifdef VARIANT_SILENT_REFUSAL
/* Refuses its options without naming one or saying why (ABI 1.7). */
static bool check_options(const pgspout_host_api *host,
                          pgspout_sink_handle *sink, char *option,
                          size_t option_size, char *why, size_t why_size)
{
    (void)host, (void)sink, (void)option_size, (void)why_size;
    option[0] = why[0] = '\0';
    return false;
}
#define CHECK_OPTIONS check_options
#else
#define CHECK_OPTIONS NULL
#endif

#ifdef VARIANT_MISSING_FLUSH
/* Keeps the unused flush referenced so the variant builds with -Werror. */
PGSPOUT_EXPORT pgspout_status (*unused_flush)(void *) = flush;
#endif

#ifndef VARIANT_NO_ENTRY
#ifdef VARIANT_BAD_PREFIX
/* A prefix option (ABI 1.4) must end with a dot. */
static const pgspout_option_def options[] = {
    {.name = "lib", .type = PGSPOUT_OPT_STRING, .flags = PGSPOUT_OPTF_PREFIX},
    PGSPOUT_OPTION_END};
#else
static const pgspout_option_def options[] = {PGSPOUT_OPTION_END};
#endif

static const pgspout_sink_descriptor descriptor = {
    .magic = MAGIC,
    .abi_major = MAJOR,
    .abi_minor = MINOR,
    .size = SIZE,
    .name = SINK_NAME,
    .version = "1.0",
    .description = "test sink for ABI checks",
    .options = options,
    .create = create,
    .write = write_events,
    .flush = FLUSH,
    .destroy = destroy,
    .check_options = CHECK_OPTIONS,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &descriptor;
}
#else
/* Exports something, just not the entry point. */
PGSPOUT_EXPORT void *not_the_entry_point(int which);
PGSPOUT_EXPORT void *not_the_entry_point(int which)
{
    void *fns[] = {(void *)(uintptr_t)create, (void *)(uintptr_t)write_events,
                   (void *)(uintptr_t)flush, (void *)(uintptr_t)destroy};
    return fns[which & 3];
}
#endif
