/* The host validates a sink before calling anything in it, and each refusal
 * names what is wrong. argv[1]: the directory holding the test sinks built
 * from tests/unit/sinks/abi_variant.c. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "loader.h"

static char *dirs[1];

static void expect_refusal(const char *name, const char *fragment)
{
    sink_library lib;
    char err[1024] = "";
    bool ok = sink_library_open(name, dirs, 1, &lib, err, sizeof err);
    CHECK(!ok);
    if (ok) {
        sink_library_close(&lib);
        return;
    }
    if (!strstr(err, fragment))
        printf("# %s: got \"%s\"\n", name, err);
    CHECK(strstr(err, fragment) != NULL);
}

static int refusals;
static void count_refusal(const char *path, const char *why)
{
    (void)path;
    (void)why;
    refusals++;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_loader DIR\n");
        return 2;
    }
    dirs[0] = argv[1];
    char err[1024];
    CHECK(loader_init(err, sizeof err));

    sink_library lib;
    CHECK(sink_library_open("good", dirs, 1, &lib, err, sizeof err));
    CHECK_STR(lib.desc->name, "good");
    CHECK(lib.desc->abi_major == PGSPOUT_ABI_MAJOR);
    sink_library_close(&lib);

    /* A sink built for an older minor keeps loading. */
    CHECK(sink_library_open("older_minor", dirs, 1, &lib, err, sizeof err));
    CHECK(lib.desc->abi_minor == 0 && PGSPOUT_ABI_MINOR > 0);
    sink_library_close(&lib);

    char path[4096];
    snprintf(path, sizeof path, "%s/pgspout_good.so", argv[1]);
    if (path[0] == '/') {
        CHECK(sink_library_open(path, dirs, 0, &lib, err, sizeof err));
        sink_library_close(&lib);
    }

    expect_refusal("bad_magic", "bad magic number 0xDEADBEEF");
    expect_refusal("other_major",
                   "incompatible ABI major version: sink built for ABI 2.7, "
                   "this pgspout provides ABI 1.7");
    expect_refusal("newer_minor",
                   "sink needs a newer host: sink built for ABI 1.8, this "
                   "pgspout provides ABI 1.7");
    expect_refusal("short_descriptor", "descriptor size 16 is smaller");
    expect_refusal("missing_flush", "missing required callback 'flush'");
    expect_refusal("no_entry", "does not export pgspout_sink_entry()");
    expect_refusal("bad_prefix", "prefix option 'lib' must end with '.'");
    expect_refusal("absent", "sink 'absent' not found");
    expect_refusal("./pgspout_good.so", "must be absolute");
    expect_refusal("Bad Name", "not a sink name");

    /* A file with the right name that is not a shared object. */
    char tmpdir[] = "/tmp/pgspout-loader-XXXXXX";
    CHECK(mkdtemp(tmpdir) != NULL);
    char textfile[4096];
    snprintf(textfile, sizeof textfile, "%s/pgspout_text.so", tmpdir);
    FILE *f = fopen(textfile, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("this is not ELF\n", f);
        fclose(f);
    }
    dirs[0] = tmpdir;
    expect_refusal("text", "not a shared object (no ELF header)");
    unlink(textfile);
    rmdir(tmpdir);
    dirs[0] = argv[1];

    /* A descriptor checked in memory: the fields are read in order, so an
     * unknown magic is reported even when everything else is wrong too. */
    pgspout_sink_descriptor d = {PGSPOUT_SINK_HEADER};
    d.name = "mem";
    d.version = "1";
    d.description = "in memory";
    CHECK(!sink_descriptor_validate(&d, err, sizeof err));
    CHECK(strstr(err, "missing required callback 'create'") != NULL);
    d.magic = 0;
    d.abi_major = 9;
    CHECK(!sink_descriptor_validate(&d, err, sizeof err));
    CHECK(strstr(err, "bad magic number") != NULL);

    /* Listing finds the good sinks and reports each broken one. */
    sink_library *libs;
    size_t n = sink_library_list(dirs, 1, &libs, count_refusal);
    CHECK(n == 3);
    bool good = false, older = false, refusing = false;
    for (size_t i = 0; i < n; i++) {
        good |= strcmp(libs[i].desc->name, "good") == 0;
        older |= strcmp(libs[i].desc->name, "older_minor") == 0;
        /* Valid: what it thinks of its options is asked only when loaded
         * for a run. */
        refusing |= strcmp(libs[i].desc->name, "silent_refusal") == 0;
        sink_library_close(&libs[i]);
    }
    CHECK(good && older && refusing);
    free(libs);
    CHECK(refusals == 7);

    loader_shutdown();
    return check_summary();
}
