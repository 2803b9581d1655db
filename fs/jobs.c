/* jobs.c: the background job queue of jobs.h.
 *
 * A singly linked FIFO under one mutex. Each worker sleeps on its own
 * condition variable, and a push wakes the worker that went idle last (a
 * stack of idle workers): one client sending one image at a time is
 * answered by the same thread every time, its caches, malloc arena and
 * engine scratch warm, instead of by the workers in turn. `idle` wakes
 * fs_jobq_drain. Workers run jobs without the lock held. Once a queue has
 * drained and stayed empty for TRIM_DELAY_S, an idle worker gives freed
 * memory back to the system (malloc_trim): after a burst, not between the
 * calls of a client that sends one image at a time (trimming there made
 * every prediction fault its buffers back in: a third of its time).
 */
#include "jobs.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRIM_DELAY_S 1

/* The queue whose worker this thread is (fs_jobq_is_worker); NULL on any
 * other thread. */
static __thread const struct fs_jobq *tl_queue;

typedef struct jobq_worker {
    struct fs_jobq *q;
    pthread_cond_t wake;
    struct jobq_worker *next_idle; /* the idle stack, under q->mu */
    int idle;                      /* on the idle stack */
} jobq_worker;

typedef struct jobq_job {
    struct jobq_job *next;
    uint64_t key;
    fs_job_run_fn run;
    fs_job_drop_fn drop;
    void *arg;
} jobq_job;

struct fs_jobq {
    pthread_mutex_t mu; /* leaf lock: guards everything below */
    pthread_cond_t idle;
    jobq_worker *workers;  /* nthreads of them */
    jobq_worker *idle_top; /* the worker that went idle last */
    jobq_job *head, *tail;
    size_t queued, running;
    int stopping, started, nthreads;
    int trim_due;            /* drained: trim at trim_at if still empty */
    struct timespec trim_at; /* CLOCK_REALTIME, the conds' clock */
    pthread_t *threads;
    char name[16];
};

fs_jobq *fs_jobq_new(const char *name, int nthreads)
{
    fs_jobq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->nthreads = nthreads < 1 ? 1 : nthreads;
    q->threads = calloc((size_t)q->nthreads, sizeof *q->threads);
    q->workers = calloc((size_t)q->nthreads, sizeof *q->workers);
    if (!q->threads || !q->workers) {
        free(q->threads);
        free(q->workers);
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->idle, NULL);
    for (int i = 0; i < q->nthreads; i++) {
        q->workers[i].q = q;
        pthread_cond_init(&q->workers[i].wake, NULL);
    }
    snprintf(q->name, sizeof q->name, "%s", name ? name : "jobs");
    return q;
}

static void idle_push(fs_jobq *q, jobq_worker *w)
{
    w->next_idle = q->idle_top;
    q->idle_top = w;
    w->idle = 1;
}

static void idle_remove(fs_jobq *q, jobq_worker *w)
{
    for (jobq_worker **p = &q->idle_top; *p; p = &(*p)->next_idle) {
        if (*p == w) {
            *p = w->next_idle;
            break;
        }
    }
    w->idle = 0;
}

/* Waits for work (lock held) on the idle stack; trims once the queue
 * stayed drained until trim_at. */
static void wait_for_work(fs_jobq *q, jobq_worker *w)
{
    while (!q->head && !q->stopping) {
        if (!w->idle)
            idle_push(q, w);
        if (!q->trim_due) {
            pthread_cond_wait(&w->wake, &q->mu);
            continue;
        }
        if (pthread_cond_timedwait(&w->wake, &q->mu, &q->trim_at) != ETIMEDOUT || !q->trim_due)
            continue;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec < q->trim_at.tv_sec ||
            (now.tv_sec == q->trim_at.tv_sec && now.tv_nsec < q->trim_at.tv_nsec))
            continue; /* drained again since: a later deadline */
        int idle = !q->head && q->running == 0;
        q->trim_due = 0; /* a running job sets it again when the queue drains */
        if (idle && !q->stopping) {
            pthread_mutex_unlock(&q->mu);
            malloc_trim(0);
            pthread_mutex_lock(&q->mu);
        }
    }
    if (w->idle)
        idle_remove(q, w);
}

static void *worker_main(void *p)
{
    jobq_worker *w = p;
    fs_jobq *q = w->q;
    tl_queue = q;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        wait_for_work(q, w);
        if (q->stopping)
            break;
        jobq_job *j = q->head;
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        q->running++;
        pthread_mutex_unlock(&q->mu);
        j->run(j->arg);
        if (j->drop)
            j->drop(j->arg);
        free(j);
        pthread_mutex_lock(&q->mu);
        q->running--;
        if (q->queued == 0 && q->running == 0) {
            pthread_cond_broadcast(&q->idle);
            /* the queue drained: its jobs' buffers (a training's features, a
             * burst of predictions) go back to the system, not only to
             * malloc, once it stays empty a while (wait_for_work) */
            clock_gettime(CLOCK_REALTIME, &q->trim_at);
            q->trim_at.tv_sec += TRIM_DELAY_S;
            q->trim_due = 1;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

fs_jobq_status fs_jobq_start(fs_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    if (q->started || q->stopping) {
        fs_jobq_status st = q->stopping ? FS_JOBQ_ESTOPPED : FS_JOBQ_OK;
        pthread_mutex_unlock(&q->mu);
        return st;
    }
    pthread_mutex_unlock(&q->mu);
    int made = 0;
    for (; made < q->nthreads; made++) {
        if (pthread_create(&q->threads[made], NULL, worker_main, &q->workers[made]) != 0)
            break;
        char tn[32];
        snprintf(tn, sizeof tn, "%.10s-%d", q->name, made);
        tn[15] = '\0'; /* the kernel's limit for thread names */
        pthread_setname_np(q->threads[made], tn);
    }
    pthread_mutex_lock(&q->mu);
    q->started = made;
    pthread_mutex_unlock(&q->mu);
    return made == 0 ? FS_JOBQ_ETHREAD : FS_JOBQ_OK;
}

fs_jobq_status fs_jobq_push(fs_jobq *q, uint64_t key, fs_job_run_fn run, fs_job_drop_fn drop,
                            void *arg)
{
    jobq_job *j = calloc(1, sizeof *j);
    if (!j)
        return FS_JOBQ_ENOMEM;
    j->key = key;
    j->run = run;
    j->drop = drop;
    j->arg = arg;
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        free(j);
        return FS_JOBQ_ESTOPPED;
    }
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->queued++;
    jobq_worker *w = q->idle_top;
    if (w) { /* the worker that went idle last; it leaves the stack now, so
              * a second push wakes another */
        q->idle_top = w->next_idle;
        w->idle = 0;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&q->mu);
    return FS_JOBQ_OK;
}

/* Unlinks the queued jobs matching key (all when all != 0) into a private list. */
static jobq_job *jobq_take(fs_jobq *q, uint64_t key, int all, size_t *count)
{
    jobq_job *out = NULL, **outp = &out, *prev = NULL;
    *count = 0;
    for (jobq_job *j = q->head, *next; j; j = next) {
        next = j->next;
        if (all || j->key == key) {
            if (prev)
                prev->next = next;
            else
                q->head = next;
            if (q->tail == j)
                q->tail = prev;
            j->next = NULL;
            *outp = j;
            outp = &j->next;
            q->queued--;
            (*count)++;
        } else {
            prev = j;
        }
    }
    return out;
}

static void jobq_drop_list(jobq_job *j)
{
    while (j) {
        jobq_job *next = j->next;
        if (j->drop)
            j->drop(j->arg);
        free(j);
        j = next;
    }
}

size_t fs_jobq_cancel_key(fs_jobq *q, uint64_t key)
{
    size_t n;
    pthread_mutex_lock(&q->mu);
    jobq_job *list = jobq_take(q, key, 0, &n);
    if (q->queued == 0 && q->running == 0)
        pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->mu);
    jobq_drop_list(list);
    return n;
}

int fs_jobq_is_worker(const fs_jobq *q) { return q && tl_queue == q; }

size_t fs_jobq_pending(fs_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->queued + q->running;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void fs_jobq_drain(fs_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    while ((q->queued || q->running) && !q->stopping)
        pthread_cond_wait(&q->idle, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

void fs_jobq_stop(fs_jobq *q)
{
    size_t n;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    jobq_job *list = jobq_take(q, 0, 1, &n);
    int started = q->started;
    q->started = 0;
    for (int i = 0; i < q->nthreads; i++)
        pthread_cond_signal(&q->workers[i].wake);
    pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->mu);
    jobq_drop_list(list);
    for (int i = 0; i < started; i++)
        pthread_join(q->threads[i], NULL);
}

void fs_jobq_free(fs_jobq *q)
{
    if (!q)
        return;
    fs_jobq_stop(q);
    pthread_mutex_destroy(&q->mu);
    for (int i = 0; i < q->nthreads; i++)
        pthread_cond_destroy(&q->workers[i].wake);
    pthread_cond_destroy(&q->idle);
    free(q->workers);
    free(q->threads);
    free(q);
}
