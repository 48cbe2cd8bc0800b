/* A main() for the fuzz targets without libFuzzer: runs each file given
 * (or each file in each directory given) through LLVMFuzzerTestOneInput
 * once. build.sh links it with gcc and the sanitizers, so the corpora,
 * crash reproducers included, are replayed as regression tests even where
 * clang is not installed. */
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

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += run_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            perror(argv[i]);
            errors++;
            continue;
        }
        char **names = NULL;
        size_t nnames = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            names = realloc(names, (nnames + 1) * sizeof *names);
            size_t plen = strlen(argv[i]) + strlen(e->d_name) + 2;
            names[nnames] = malloc(plen);
            snprintf(names[nnames++], plen, "%s/%s", argv[i], e->d_name);
        }
        closedir(d);
        qsort(names, nnames, sizeof *names, compare_names);
        for (size_t j = 0; j < nnames; j++) {
            errors += run_file(names[j]) != 0;
            files++;
            free(names[j]);
        }
        free(names);
    }
    printf("replayed %d inputs, %d unreadable\n", files, errors);
    return errors ? 1 : 0;
}
