/* bench_util.h: what the benchmark programs share: a wall clock, reading a
 * whole (small, trusted) file and the engine's log hook. */
#ifndef VFS_BENCH_UTIL_H
#define VFS_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The whole file, NUL terminated (free()); NULL when it cannot be read. */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

/* The engine's log hook for the benchmarks: one indented line on stderr. */
static inline void log_line(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "  | %s\n", line);
}

#endif
