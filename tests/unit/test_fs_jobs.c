/* test_fs_jobs.c: the background job queue: FIFO order on one worker, all
 * workers busy at once, cancel by key, the deferred trim of a drained queue,
 * stop drops queued jobs and joins, a worker knows its own queue. */
#include "check.h"
#include "jobs.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int order[64], norder, dropped, running_now, running_max;

static void run_record(void *arg)
{
    pthread_mutex_lock(&mu);
    order[norder++] = (int)(intptr_t)arg;
    pthread_mutex_unlock(&mu);
}

static void run_slow(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    if (++running_now > running_max)
        running_max = running_now;
    pthread_mutex_unlock(&mu);
    usleep(50000);
    pthread_mutex_lock(&mu);
    running_now--;
    pthread_mutex_unlock(&mu);
}

static void drop_count(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    dropped++;
    pthread_mutex_unlock(&mu);
}

static fs_jobq *seen_q, *other_q;
static int seen_own = -1, seen_other = -1;

static void run_is_worker(void *arg)
{
    (void)arg;
    seen_own = fs_jobq_is_worker(seen_q);
    seen_other = fs_jobq_is_worker(other_q);
}

int main(void)
{
    /* FIFO on one worker; jobs pushed before start wait for it */
    fs_jobq *q = fs_jobq_new("t1", 1);
    CHECK(q != NULL);
    for (int i = 0; i < 10; i++)
        CHECK(fs_jobq_push(q, 0, run_record, drop_count, (void *)(intptr_t)i) == FS_JOBQ_OK);
    CHECK(fs_jobq_pending(q) == 10);
    usleep(20000);
    CHECK(norder == 0);
    CHECK(fs_jobq_start(q) == FS_JOBQ_OK);
    fs_jobq_drain(q);
    CHECK(norder == 10);
    for (int i = 0; i < 10; i++)
        CHECK(order[i] == i);
    CHECK(dropped == 10); /* drop runs after run too */
    fs_jobq_free(q);

    /* 4 workers run 8 slow jobs 4 at a time */
    q = fs_jobq_new("t4", 4);
    CHECK(fs_jobq_start(q) == FS_JOBQ_OK);
    for (int i = 0; i < 8; i++)
        CHECK(fs_jobq_push(q, 0, run_slow, NULL, NULL) == FS_JOBQ_OK);
    fs_jobq_drain(q);
    CHECK(running_max == 4);
    CHECK(fs_jobq_pending(q) == 0);
    fs_jobq_free(q);

    /* cancel by key removes only queued jobs of that key */
    q = fs_jobq_new("tc", 1);
    norder = 0;
    dropped = 0;
    for (int i = 0; i < 6; i++)
        fs_jobq_push(q, (uint64_t)(i % 2 + 1), run_record, drop_count, (void *)(intptr_t)i);
    CHECK(fs_jobq_cancel_key(q, 2) == 3);
    CHECK(dropped == 3);
    CHECK(fs_jobq_pending(q) == 3);
    fs_jobq_start(q);
    fs_jobq_drain(q);
    CHECK(norder == 3 && order[0] == 0 && order[1] == 2 && order[2] == 4);

    /* stop drops what is queued, refuses new jobs, is idempotent */
    fs_jobq_stop(q);
    CHECK(fs_jobq_push(q, 0, run_record, drop_count, NULL) == FS_JOBQ_ESTOPPED);
    fs_jobq_stop(q);
    fs_jobq_free(q);

    /* a drained queue trims after a second of idleness on a waiting worker;
     * jobs pushed before, during and after that wait all run, and a queue
     * freed while its workers wait to trim stops at once */
    q = fs_jobq_new("tt", 2);
    fs_jobq_start(q);
    norder = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++)
            fs_jobq_push(q, 0, run_record, NULL, (void *)(intptr_t)i);
        fs_jobq_drain(q);
        usleep(round == 1 ? 1300000 : 500000); /* the trim deadline passes once */
    }
    CHECK(norder == 9);
    for (int i = 0; i < 3; i++)
        fs_jobq_push(q, 0, run_record, NULL, (void *)(intptr_t)i);
    fs_jobq_drain(q);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fs_jobq_free(q);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(norder == 12);
    CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 500);

    /* a job knows it runs on its own queue's worker (fs_models_analyze
     * runs in place there), not on another queue's nor on this thread */
    seen_q = fs_jobq_new("tw", 1);
    other_q = fs_jobq_new("to", 1);
    fs_jobq_start(seen_q);
    fs_jobq_start(other_q);
    fs_jobq_push(seen_q, 0, run_is_worker, NULL, NULL);
    fs_jobq_drain(seen_q);
    CHECK(seen_own == 1);
    CHECK(seen_other == 0);
    CHECK(!fs_jobq_is_worker(seen_q));
    CHECK(!fs_jobq_is_worker(NULL));
    fs_jobq_free(seen_q);
    fs_jobq_free(other_q);

    q = fs_jobq_new("ts", 1);
    dropped = 0;
    for (int i = 0; i < 5; i++)
        fs_jobq_push(q, 0, run_record, drop_count, NULL);
    fs_jobq_free(q); /* never started: all five dropped */
    CHECK(dropped == 5);
    fs_jobq_free(NULL);
    return check_report("test_fs_jobs");
}
