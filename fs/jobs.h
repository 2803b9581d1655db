/* jobs.h: a background job queue (mutex + condition variable + worker threads).
 *
 * Modelled on Redis' bio.c: a FIFO of jobs, N workers that pop and run them.
 * The queue knows nothing of models: a job is a run function, a drop
 * function and an opaque argument. Jobs carry an optional integer key so a
 * caller can drop the still-queued jobs of one owner (for example a model
 * being deleted). Workers are started by fs_jobq_start (FUSE init, after
 * fuse_main has forked) and joined by fs_jobq_stop (FUSE destroy).
 *
 * Lock order: the queue mutex is a leaf lock; run/drop are called without it.
 */
#ifndef VFS_FS_JOBS_H
#define VFS_FS_JOBS_H

#include <stddef.h>
#include <stdint.h>

typedef struct fs_jobq fs_jobq;

/* run(arg) does the work on a worker thread, then the queue calls
 * drop(arg) (if not NULL) to release arg. A job removed before it ran
 * (fs_jobq_cancel_key, fs_jobq_stop) only gets drop(arg). */
typedef void (*fs_job_run_fn)(void *arg);
typedef void (*fs_job_drop_fn)(void *arg);

typedef enum fs_jobq_status {
    FS_JOBQ_OK = 0,
    FS_JOBQ_ENOMEM,
    FS_JOBQ_ESTOPPED, /* the queue is stopping or stopped: the job was not queued */
    FS_JOBQ_ETHREAD,  /* a worker thread could not be created */
} fs_jobq_status;

/* Returns a new queue with nthreads (>= 1) workers, not yet started; NULL
 * when out of memory. name shows in thread names. Free with fs_jobq_free. */
fs_jobq *fs_jobq_new(const char *name, int nthreads);

/* Starts the workers. Jobs pushed before start wait for it. */
fs_jobq_status fs_jobq_start(fs_jobq *q);

/* Queues a job at the back. key: any value (0 = none) for fs_jobq_cancel_key. */
fs_jobq_status fs_jobq_push(fs_jobq *q, uint64_t key, fs_job_run_fn run, fs_job_drop_fn drop,
                            void *arg);

/* Removes the queued (not running) jobs with this key, calling their drop;
 * returns how many were removed. */
size_t fs_jobq_cancel_key(fs_jobq *q, uint64_t key);

/* 1 when the calling thread is one of q's workers: a job that would queue
 * work on its own queue and wait for it does that work in place instead
 * (no hand-off, and no deadlock when every worker waits). */
int fs_jobq_is_worker(const fs_jobq *q);

/* Jobs queued plus running. */
size_t fs_jobq_pending(fs_jobq *q);

/* Waits until no job is queued or running (used by tests). */
void fs_jobq_drain(fs_jobq *q);

/* Stops accepting jobs, drops the queued ones, waits for the running ones
 * (their owners must make them return: abort flags) and joins the workers.
 * Idempotent. */
void fs_jobq_stop(fs_jobq *q);

/* Stops (if needed) and frees. NULL is a no-op. */
void fs_jobq_free(fs_jobq *q);

#endif
