/* pool.h: the runtime's own fork-join pool for splitting one op over threads.
 *
 * Why not an OpenMP parallel region per op: at batch 1 a network is ~90 ops
 * of 0.05-2 ms each, and libgomp's waiting threads either sleep between ops
 * (OMP_WAIT_POLICY=passive, the daemon's: every op then pays a wake-up, so a
 * second thread gave only 1.36x) or spin at every barrier (1.7x on an idle
 * machine, 1.1-2.8x slower on a busy one, where a spinner holds the core the
 * thread it waits for needs). Here a worker spins for a short while after
 * each job (the next op of a running network comes within it) and then
 * sleeps, and the calling thread never waits for a worker that has not
 * started: work is claimed in chunks (a thread's own share first, then what
 * is left of the others'), so a worker that is asleep or has no core joins
 * late or not at all, and the caller does its chunks. See docs/engine.md,
 * "The second thread at batch 1".
 */
#ifndef VFS_ENGINE_RUNTIME_POOL_H
#define VFS_ENGINE_RUNTIME_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RT_POOL_MAX_THREADS 64 /* tids are below this, whatever nt asks */

/* Work on items [lo, hi) as thread tid (0 <= tid < the nt passed to
 * rt_parallel_for; a tid is used by one thread at a time, so per-tid scratch
 * needs no lock). */
typedef void (*rt_for_fn)(void *ctx, int tid, int64_t lo, int64_t hi);

/* Calls fn over items [0, n) in chunks of `grain` items, on up to nt threads
 * (the caller is one of them), and returns when every item is done. Which
 * thread does which chunk varies from run to run: fn must compute each item
 * the same way whatever its tid. nt <= 1, n <= grain, or the pool already
 * busy with another caller's job (a kernel called from several threads at
 * once): fn(ctx, 0, 0, n) on the calling thread. */
void rt_parallel_for(int nt, int64_t n, int64_t grain, rt_for_fn fn, void *ctx);

/* Chunk size that deals [0, n) into about `per_thread` chunks per thread. */
int64_t rt_grain(int64_t n, int nt, int per_thread);

/* Scratch buffers of one job, one per tid, each made on its tid's first use
 * (a tid is used by one thread at a time, so no lock); the caller sets
 * `bytes`, runs the job and then calls rt_scratch_free. */
typedef struct rt_scratch {
    size_t bytes;
    float *buf[RT_POOL_MAX_THREADS];
    atomic_int failed; /* an allocation failed: the job is incomplete (ENG_ENOMEM) */
} rt_scratch;

/* tid's buffer, or NULL (and failed set) when out of memory */
float *rt_scratch_get(rt_scratch *s, int tid);
/* frees every buffer; returns 1 when an allocation failed */
int rt_scratch_free(rt_scratch *s);

#endif
