/* Replays inputs through a fuzz target without libFuzzer (the normal build).
 *
 * Usage: fuzz_<target> PATH...: each PATH is a file or a directory, read
 * recursively in name order. Each file goes through LLVMFuzzerTestOneInput()
 * in a buffer of exactly its size, so ASan sees a read past the end. Exits 0
 * when every input ran (a violated invariant aborts), 2 when a path cannot
 * be read. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int pw_replay_path(const char *path, int *count);

static int pw_replay_file(const char *path, int *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0, n;
    unsigned char *buf = pw_malloc(cap);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = pw_realloc(buf, cap *= 2);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    /* Exactly len bytes: the target must not read what the input lacks. */
    unsigned char *input = pw_malloc(len);
    memcpy(input, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    (*count)++;
    return 0;
}

static int pw_replay_dir(const char *path, int *count)
{
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (name[0] != '.') { /* ".", "..", and hidden files such as .gitkeep */
            char *child = pw_asprintf("%s/%s", path, name);
            rc |= pw_replay_path(child, count);
            free(child);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int pw_replay_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) == -1) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return S_ISDIR(st.st_mode) ? pw_replay_dir(path, count) : pw_replay_file(path, count);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    int count = 0, rc = 0;
    for (int i = 1; i < argc; i++)
        rc |= pw_replay_path(argv[i], &count);
    printf("%s: %d inputs replayed\n", argv[0], count);
    return rc ? 2 : 0;
}
