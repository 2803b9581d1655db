/* test_runtime_pool.c: the runtime's fork-join pool (engine/runtime/pool.c).
 * Every item is done exactly once and tids stay below nt, for many item
 * counts, grains and thread counts; jobs back to back (the worker still
 * spinning) and after the workers went to sleep; several threads calling at
 * once (the pool serves one, the others run alone); a forked child, which has
 * no workers and may not start any, finishes its jobs alone; per-tid scratch
 * buffers are made once per tid and all freed. Also runs under ThreadSanitizer
 * (scripts/test.sh, TSAN_TESTS). */
#include "check.h"
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXN 5000

typedef struct {
    atomic_int count[MAXN];
    atomic_int bad_tid, bad_range;
    int nt;
    int64_t n;
} job;

static void mark(void *ctx, int tid, int64_t lo, int64_t hi)
{
    job *j = ctx;
    if (tid < 0 || tid >= j->nt || tid >= RT_POOL_MAX_THREADS)
        atomic_fetch_add(&j->bad_tid, 1);
    if (lo < 0 || hi > j->n || lo >= hi)
        atomic_fetch_add(&j->bad_range, 1);
    for (int64_t i = lo; i < hi && i < MAXN && i >= 0; i++)
        atomic_fetch_add(&j->count[i], 1);
}

/* 1 when one job over n items on nt threads did each item once */
static int run_once(int nt, int64_t n, int64_t grain)
{
    static job j;
    memset(&j, 0, sizeof j);
    j.nt = nt < 1 ? 1 : nt;
    j.n = n;
    rt_parallel_for(nt, n, grain, mark, &j);
    int ok = atomic_load(&j.bad_tid) == 0 && atomic_load(&j.bad_range) == 0;
    for (int64_t i = 0; i < n; i++)
        ok &= atomic_load(&j.count[i]) == 1;
    return ok;
}

static void test_every_item_once(void)
{
    static const int64_t ns[] = {0, 1, 2, 7, 64, 999, MAXN};
    static const int64_t grains[] = {0, 1, 3, 50, 10000};
    for (int nt = 0; nt <= 4; nt++)
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof grains / sizeof *grains; b++)
                CHECK(run_once(nt, ns[a], grains[b]));
    /* back to back: thousands of small jobs while the worker is still spinning */
    int ok = 1;
    for (int r = 0; r < 3000; r++)
        ok &= run_once(2, 100, 1);
    CHECK(ok);
    /* after the spin ran out: the workers sleep and must be woken */
    usleep(20000);
    CHECK(run_once(3, MAXN, 7));
    usleep(20000);
    CHECK(run_once(2, 10, 1));
}

static void *caller(void *arg)
{
    int *ok = arg;
    for (int r = 0; r < 300; r++) {
        job *j = calloc(1, sizeof *j);
        if (!j) {
            *ok = 0;
            return NULL;
        }
        j->nt = 2;
        j->n = 500;
        rt_parallel_for(2, 500, 5, mark, j);
        for (int i = 0; i < 500; i++)
            *ok &= atomic_load(&j->count[i]) == 1;
        *ok &= atomic_load(&j->bad_tid) == 0 && atomic_load(&j->bad_range) == 0;
        free(j);
    }
    return NULL;
}

static void test_concurrent_callers(void)
{
    pthread_t t[4];
    int ok[4] = {1, 1, 1, 1};
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, caller, &ok[i]) == 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(ok[i]);
    }
}

static void test_fork(void)
{
    CHECK(run_once(2, 1000, 3)); /* the parent has its workers */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20); /* a hang (waiting for a worker the child does not have) fails */
        /* (under ThreadSanitizer, starting a thread here would kill the child) */
        int ok = 1;
        for (int r = 0; r < 100; r++)
            ok &= run_once(2, 1000, 3);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(run_once(2, 1000, 3));
}

/* rt_scratch: one buffer per tid, made once, all freed after the job */
typedef struct {
    rt_scratch *s;
    float *seen[RT_POOL_MAX_THREADS];
    atomic_int bad;
} scratch_job;

static void use_scratch(void *ctx, int tid, int64_t lo, int64_t hi)
{
    scratch_job *j = ctx;
    float *b = rt_scratch_get(j->s, tid);
    if (!b || (j->seen[tid] && j->seen[tid] != b))
        atomic_fetch_add(&j->bad, 1);
    j->seen[tid] = b;
    for (int64_t i = lo; i < hi && b; i++)
        b[i % 64] = (float)i; /* the whole buffer is the job's */
}

static void test_scratch(void)
{
    rt_scratch s = {.bytes = 64 * sizeof(float)};
    scratch_job j = {.s = &s};
    rt_parallel_for(2, 1000, 1, use_scratch, &j);
    /* which tids worked varies (a worker may take every chunk before the
     * caller takes one), but some did */
    int used = 0;
    for (int t = 0; t < RT_POOL_MAX_THREADS; t++)
        used += j.seen[t] != NULL;
    CHECK(atomic_load(&j.bad) == 0 && used >= 1);
    CHECK(rt_scratch_free(&s) == 0);
    int left = 0;
    for (int t = 0; t < RT_POOL_MAX_THREADS; t++)
        left += s.buf[t] != NULL;
    CHECK(left == 0);
}

int main(void)
{
    test_every_item_once();
    test_concurrent_callers();
    test_scratch();
    test_fork();
    return check_report("test_runtime_pool");
}
