/* pool.c: the runtime's fork-join pool (pool.h says why it exists).
 *
 * One job at a time, published through `gen`: odd while a job is open to
 * joining, even when none is. A worker joins by counting itself in `active`
 * and then checking that the job it saw is still open; the caller closes the
 * job and then waits until `active` is 0. Both sides use sequentially
 * consistent atomics, so either the worker sees the job closed (and leaves
 * without touching it) or the caller sees the worker inside (and waits for
 * it): the job's fields, on the caller's stack, are never read after the
 * caller has returned.
 *
 * Idle workers spin on `gen` for VFS_POOL_SPIN_US microseconds (default 200,
 * 0 = sleep at once) and then sleep on it with a futex; a spin that finds the
 * thread was descheduled meanwhile (the core is wanted elsewhere) stops at
 * once. The caller wakes sleepers when it opens a job, and does not wait for
 * them: the items are claimed in chunks, each thread from its own share of
 * them first and then from the others' (run_chunks).
 *
 * On a machine busy with other work a second thread cannot speed a job up
 * (the scheduler gives our threads together about the cores others leave),
 * and its wake-ups and spins are time taken from the caller. The caller sees
 * it when the workers do almost none of its jobs, and then runs alone for a
 * while before it tries again (rt_parallel_for).
 */

#include "pool.h"

#include "core.h"
#include "runtime.h"

#include <immintrin.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX_WORKERS (RT_POOL_MAX_THREADS - 1)
#define SOLO_MIN_JOB_NS 50000 /* shorter jobs can end before a spinning worker looks */
#define SOLO_MISSES 4
#define SOLO_HITS 16     /* jobs shared since the last solo period that end the doubling */
#define SOLO_NS 20000000 /* the first solo period; it doubles up to SOLO_MAX_NS */
#define SOLO_MAX_NS 1280000000

static struct {
    atomic_int owner;    /* 1 while a caller runs a job */
    atomic_uint gen;     /* odd: a job is open */
    atomic_int active;   /* workers inside the current job */
    atomic_int joined;   /* tids handed out for the current job (the caller is 0) */
    atomic_int sleepers; /* workers in (or entering) futex wait */
    int nworkers;        /* threads started; changed only by the owner */
    int forked;          /* 1 in a forked child: no workers */
    int misses;          /* jobs in a row the workers did almost none of (owner only) */
    int hits;            /* jobs shared since the last solo period (owner only) */
    int64_t solo_ns;     /* how long the next solo period lasts (owner only) */
    /* counts for VFS_POOL_STATS (owner only) */
    long long jobs, shared, missed, asleep_at_open, solos, solo_ms;
    atomic_llong solo_until; /* CLOCK_MONOTONIC ns: until then callers run alone */
    /* the job, written by the owner before it opens `gen` */
    rt_for_fn fn;
    void *ctx;
    int64_t grain;
    int nt;
    /* the items, one range per tid: [next, end), next moved by whoever claims a chunk of it */
    struct {
        _Alignas(64) atomic_llong next;
        int64_t end;
    } range[RT_POOL_MAX_THREADS];
} P;

static long futex(atomic_uint *addr, int op, unsigned val)
{
    return syscall(SYS_futex, (unsigned *)addr, op, val, NULL, NULL, 0);
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t spin_ns(void)
{
    static atomic_llong v = -1;
    long long s = atomic_load_explicit(&v, memory_order_relaxed);
    if (s < 0) {
        const char *e = getenv("VFS_POOL_SPIN_US");
        long us = e ? strtol(e, NULL, 10) : 200;
        s = us < 0 ? 0 : us > 100000 ? 100000000LL : (long long)us * 1000;
        atomic_store_explicit(&v, s, memory_order_relaxed);
    }
    return s;
}

/* items of the open job, claimed chunk by chunk, as thread tid: its own range first, then what
 * is left of the others' (a thread that joined late or not at all); returns how many it did.
 * Thread tid starts on the same share of every job, and the kernels number items in the order
 * of output rows, so the rows a thread writes in one op are mostly the rows it reads in the
 * next: on a host that puts the two cores on different L3s, claiming from one shared counter
 * sent about half of every op's input across (2 threads on Lite0: 1.35x of 1 thread there,
 * 1.8x with a shared L3). */
static int64_t run_chunks(int tid)
{
    const int64_t grain = P.grain;
    const int nt = P.nt;
    int64_t done = 0;
    for (int k = 0; k < nt; k++) {
        const int r = (tid + k) % nt;
        const int64_t end = P.range[r].end;
        for (;;) {
            int64_t lo = atomic_fetch_add(&P.range[r].next, grain);
            if (lo >= end)
                break;
            int64_t hi = lo + grain < end ? lo + grain : end;
            P.fn(P.ctx, tid, lo, hi);
            done += hi - lo;
        }
    }
    return done;
}

/* returns the value of gen once it differs from seen: spinning first, then asleep */
static unsigned wait_change(unsigned seen)
{
    const int64_t limit = spin_ns();
    if (limit > 0) {
        int64_t t0 = now_ns(), last = t0;
        for (;;) {
            for (int i = 0; i < 64; i++) {
                unsigned g = atomic_load_explicit(&P.gen, memory_order_acquire);
                if (g != seen)
                    return g;
                _mm_pause();
            }
            int64_t t = now_ns();
            /* 64 pauses take a few microseconds; far longer means we lost the core */
            if (t - t0 >= limit || t - last > 200000)
                break;
            last = t;
        }
    }
    for (;;) {
        atomic_fetch_add(&P.sleepers, 1);
        unsigned g = atomic_load(&P.gen);
        if (g == seen)
            futex(&P.gen, FUTEX_WAIT_PRIVATE, seen);
        atomic_fetch_sub(&P.sleepers, 1);
        g = atomic_load(&P.gen);
        if (g != seen)
            return g;
    }
}

static void *worker(void *arg)
{
    (void)arg;
    unsigned seen = atomic_load(&P.gen);
    for (;;) {
        unsigned g = wait_change(seen);
        seen = g;
        if (!(g & 1))
            continue; /* closed before we saw it open */
        atomic_fetch_add(&P.active, 1);
        if (atomic_load(&P.gen) == g) {
            int tid = atomic_fetch_add(&P.joined, 1) + 1;
            if (tid < P.nt)
                run_chunks(tid);
        }
        atomic_fetch_sub(&P.active, 1);
    }
    return NULL;
}

/* A forked child has none of the parent's workers and none of its jobs; it runs its jobs
 * alone (a child of a threaded process may only call async-signal-safe functions, which
 * pthread_create is not). */
static void after_fork_child(void)
{
    P.nworkers = 0;
    P.forked = 1;
    atomic_store(&P.owner, 0);
    atomic_store(&P.active, 0);
    atomic_store(&P.sleepers, 0);
    atomic_store(&P.gen, 0);
}

/* VFS_POOL_STATS set: how the pool did, on stderr at exit (benchmarks) */
static void print_stats(void)
{
    fprintf(stderr,
            "pool: %d workers, %lld jobs, %lld shared, %lld opened with a worker asleep, %lld "
            "missed, %lld solo periods (%lld ms)\n",
            P.nworkers, P.jobs, P.shared, P.asleep_at_open, P.missed, P.solos, P.solo_ms);
}

/* starts workers until there are want (or as many as the system gives) */
static void grow(int want)
{
    static int atfork_done; /* only the owner gets here */
    if (want > POOL_MAX_WORKERS)
        want = POOL_MAX_WORKERS;
    if (P.nworkers >= want || P.forked)
        return;
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, after_fork_child);
        if (getenv("VFS_POOL_STATS"))
            atexit(print_stats);
        atfork_done = 1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* workers take no signals */
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    while (P.nworkers < want) {
        pthread_t t;
        if (pthread_create(&t, &a, worker, NULL))
            break;
        P.nworkers++;
    }
    pthread_attr_destroy(&a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

float *rt_scratch_get(rt_scratch *s, int tid)
{
    if (!s->buf[tid])
        s->buf[tid] = eng_alloc(s->bytes);
    if (!s->buf[tid])
        atomic_store(&s->failed, 1);
    return s->buf[tid];
}

int rt_scratch_free(rt_scratch *s)
{
    for (int t = 0; t < RT_POOL_MAX_THREADS; t++) {
        eng_free(s->buf[t]);
        s->buf[t] = NULL;
    }
    return atomic_load(&s->failed);
}

int64_t rt_grain(int64_t n, int nt, int per_thread)
{
    int64_t parts = (int64_t)(nt < 1 ? 1 : nt) * (per_thread < 1 ? 1 : per_thread);
    int64_t g = (n + parts - 1) / parts;
    return g < 1 ? 1 : g;
}

void rt_parallel_for(int nt, int64_t n, int64_t grain, rt_for_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int expect = 0;
    if (nt <= 1 || n <= grain ||
        now_ns() < atomic_load_explicit(&P.solo_until, memory_order_relaxed) ||
        !atomic_compare_exchange_strong(&P.owner, &expect, 1)) {
        fn(ctx, 0, 0, n);
        return;
    }
    grow(nt - 1);
    if (P.nworkers == 0) {
        atomic_store(&P.owner, 0);
        fn(ctx, 0, 0, n);
        return;
    }
    P.fn = fn;
    P.ctx = ctx;
    P.grain = grain;
    P.nt = nt < P.nworkers + 1 ? nt : P.nworkers + 1;
    const int64_t chunks = n / grain; /* whole chunks; the last share also takes the rest */
    for (int t = 0; t < P.nt; t++) {
        atomic_store(&P.range[t].next, chunks * t / P.nt * grain);
        P.range[t].end = t == P.nt - 1 ? n : chunks * (t + 1) / P.nt * grain;
    }
    atomic_store(&P.joined, 0);
    atomic_fetch_add(&P.gen, 1); /* open */
    const int asleep = atomic_load(&P.sleepers) > 0;
    if (asleep)
        futex(&P.gen, FUTEX_WAKE_PRIVATE, INT_MAX);
    int64_t t0 = now_ns(), mine = run_chunks(0), t1 = now_ns();
    P.jobs++;
    P.shared += mine < n;
    P.asleep_at_open += asleep;
    atomic_fetch_add(&P.gen, 1); /* closed: no one joins any more */
    /* A job long enough for an awake worker to join in which the workers did under 1/8 of the
     * items: they have no core (the machine is busy), and every wake-up or spin of theirs is
     * CPU time taken from this thread's share. After SOLO_MISSES such jobs in a row, run alone
     * for a while, twice as long each time until SOLO_HITS jobs were shared again after one.
     * (Counting only jobs whose workers were awake at the open was tried: beside busy loops the
     * workers are mostly asleep, and 2 threads fell to 0.51-0.73 of 1 thread, from 0.68-1.04.) */
    if (t1 - t0 > SOLO_MIN_JOB_NS) {
        if (mine * 4 <= n * 3) { /* the workers did a quarter or more */
            P.misses = 0;
            if (++P.hits >= SOLO_HITS)
                P.solo_ns = SOLO_NS;
        } else if (mine * 8 > n * 7 && (P.missed++, ++P.misses >= SOLO_MISSES)) {
            /* each time in a row, twice as long */
            P.misses = P.hits = 0;
            P.solo_ns = P.solo_ns < SOLO_NS ? SOLO_NS : P.solo_ns;
            atomic_store_explicit(&P.solo_until, t1 + P.solo_ns, memory_order_relaxed);
            P.solos++;
            P.solo_ms += P.solo_ns / 1000000;
            P.solo_ns = P.solo_ns * 2 < SOLO_MAX_NS ? P.solo_ns * 2 : SOLO_MAX_NS;
        }
    }
    for (int i = 0; atomic_load(&P.active) > 0; i++) {
        if (i < 4096)
            _mm_pause();
        else
            sched_yield(); /* a worker inside a chunk lost its core */
    }
    atomic_store(&P.owner, 0);
}

void eng_openmp_passive(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
}
