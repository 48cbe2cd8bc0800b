/* A main() for the fuzz targets without libFuzzer: runs each file given, or
 * each file below each directory given, through LLVMFuzzerTestOneInput
 * once. build.sh links it with gcc and the sanitizers, so the corpora, crash
 * reproducers included, are replayed as regression tests even where clang
 * is not installed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    /* An exact-size copy, as libFuzzer passes it. */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_path(const char *path, int *files, int *errors);

/* Every file below dir, subdirectories included (as libFuzzer reads a
 * corpus), in name order. */
static void replay_dir(const char *dir, int *files, int *errors)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        (*errors)++;
        return;
    }
    char **names = NULL;
    size_t nnames = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (nnames + 1) * sizeof *names);
        size_t plen = strlen(dir) + strlen(e->d_name) + 2;
        names[nnames] = malloc(plen);
        snprintf(names[nnames++], plen, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, nnames, sizeof *names, compare_names);
    for (size_t j = 0; j < nnames; j++) {
        replay_path(names[j], files, errors);
        free(names[j]);
    }
    free(names);
}

static void replay_path(const char *path, int *files, int *errors)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        (*errors)++;
    } else if (S_ISDIR(st.st_mode)) {
        replay_dir(path, files, errors);
    } else {
        *errors += run_file(path) != 0;
        (*files)++;
    }
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++)
        replay_path(argv[i], &files, &errors);
    printf("replayed %d inputs, %d unreadable\n", files, errors);
    return errors ? 1 : 0;
}
