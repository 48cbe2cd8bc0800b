/* pgspout-man: writes pgspout(1) and pgspout.conf(5) (man_page.h) with the
 * options of the sinks found in the directories given, for the build to
 * install. Not installed itself.
 *
 * Usage: pgspout-man COMMAND_PAGE CONFIG_PAGE SINK_DIR... */
#include <stdio.h>
#include <stdlib.h>

#include "loader.h"
#include "man_page.h"

static void report_refused(const char *path, const char *why)
{
    fprintf(stderr, "pgspout-man: %s: %s\n", path, why);
    exit(1);
}

static int write_page(const char *path, FILE **out)
{
    *out = fopen(path, "w");
    if (!*out)
        perror(path);
    return *out ? 0 : 1;
}

static int close_page(const char *path, FILE *out)
{
    if (ferror(out) | (fclose(out) != 0)) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[1024];
    if (argc < 4) {
        fprintf(stderr, "usage: pgspout-man COMMAND_PAGE CONFIG_PAGE "
                        "SINK_DIR...\n");
        return 2;
    }
    if (!loader_init(err, sizeof err)) {
        fprintf(stderr, "pgspout-man: %s\n", err);
        return 1;
    }
    sink_library *libs;
    size_t n =
        sink_library_list(argv + 3, (size_t)(argc - 3), &libs, report_refused);
    const pgspout_sink_descriptor **descs = calloc(n + 1, sizeof *descs);
    for (size_t i = 0; i < n; i++)
        descs[i] = libs[i].desc;
    FILE *command, *config;
    int rc = write_page(argv[1], &command) || write_page(argv[2], &config);
    if (rc == 0) {
        man_page_write_command(command, PGSPOUT_VERSION);
        man_page_write_config(config, PGSPOUT_VERSION, descs, n);
        rc = close_page(argv[1], command) | close_page(argv[2], config);
    }
    for (size_t i = 0; i < n; i++)
        sink_library_close(&libs[i]);
    free(libs);
    free(descs);
    loader_shutdown();
    return rc;
}
