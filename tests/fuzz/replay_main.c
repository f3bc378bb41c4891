/*
 * replay_main.c - a plain main() that runs a libFuzzer driver's LLVMFuzzerTestOneInput over a
 * committed corpus, so CI replays every corpus on every run without clang's libFuzzer (the
 * SQLite fuzzcheck / h2o model). Linked with one tests/fuzz/fuzz_*.c into <driver>_replay.
 *
 * Usage: <driver>_replay DIR|FILE...
 * Every regular file of each directory is run, in name order (so runs are reproducible), at
 * most REPLAY_FILES_MAX per directory and REPLAY_FILE_BYTES_MAX bytes each (larger files are
 * reported and skipped). Each input is read into a heap buffer of exactly its size, so ASan
 * catches a driver reading past the end. A crash or failed assertion aborts the process; on
 * success it prints "replayed N inputs" and exits 0. It does not define the fuzz entry point.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_FILES_MAX 10000u
#define REPLAY_FILE_BYTES_MAX (1024u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path (a regular file of st_size bytes) and runs it. Returns 1 if run, 0 if skipped,
 * -1 on an I/O error. */
static int
replay_file(const char *path, off_t st_size)
{
    if (st_size < 0 || (uint64_t)st_size > REPLAY_FILE_BYTES_MAX) {
        fprintf(stderr, "replay: skipping %s: larger than %u bytes\n", path,
            REPLAY_FILE_BYTES_MAX);
        return 0;
    }
    size_t size = (size_t)st_size;
    /* malloc(0) may return NULL: keep a valid pointer for empty inputs */
    uint8_t *buf = malloc(size > 0 ? size : 1);
    if (buf == NULL) {
        fprintf(stderr, "replay: out of memory for %s\n", path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        free(buf);
        return -1;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* the file shrank: run what was read */
        }
        done += (size_t)n;
    }
    close(fd);
    if (size > 0 && done < size) {
        uint8_t *exact = realloc(buf, done > 0 ? done : 1);
        buf = exact != NULL ? exact : buf;
    }
    (void)LLVMFuzzerTestOneInput(buf, done);
    free(buf);
    return 1;
}

static int
replay_dir(const char *dir, unsigned long *count)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot read directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    unsigned files = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat sb;
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        bool regular = len > 0 && (size_t)len < sizeof(path) && stat(path, &sb) == 0 &&
                       S_ISREG(sb.st_mode);
        if (regular && rc == 0) {
            if (files == REPLAY_FILES_MAX) {
                fprintf(stderr, "replay: %s: only the first %u files are run\n", dir,
                    REPLAY_FILES_MAX);
                rc = 1; /* stop, but not an error */
            } else {
                int r = replay_file(path, sb.st_size);
                files++;
                if (r < 0) {
                    rc = -1;
                } else {
                    *count += (unsigned long)r;
                }
            }
        }
        free(names[i]);
    }
    free(names);
    return rc < 0 ? -1 : 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    unsigned long count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = 0;
        if (S_ISDIR(sb.st_mode)) {
            rc = replay_dir(argv[i], &count);
        } else {
            int r = replay_file(argv[i], sb.st_size);
            rc = r < 0 ? -1 : 0;
            count += r > 0 ? 1u : 0u;
        }
        if (rc != 0) {
            return 1;
        }
    }
    printf("replayed %lu inputs\n", count);
    return 0;
}
