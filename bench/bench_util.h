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

/* The daemon's OpenMP wait policy (fs/main.c, ensure_passive_openmp):
 * waiting threads sleep. libgomp's default spins at every barrier of the
 * training tape's many small loops; on the 2-core machine a warm
 * fine-tuning stage took 94.7 CPU s and 117 s wall that way against 35.1
 * CPU s and 48 s with the daemon's policy (both beside a CI run), so a
 * bench without it measures what users never run. libgomp reads the
 * variable when it loads: set it and re-execute, unless the caller chose a
 * policy. */
static inline void bench_daemon_openmp(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
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
