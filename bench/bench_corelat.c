/* bench_corelat.c: round trip of one cache line between two CPUs, in ns.
 *
 * Usage: bench_corelat [CPU_A CPU_B] [ROUNDS]   (default 0 1, 200000)
 *
 * Two threads, pinned to CPU_A and CPU_B, hand a counter back and forth
 * through one atomic int; prints {"corelat_ns":N,"cpus":[A,B]}. Where the
 * two CPUs share an L3 a round trip takes about 100 ns here; on this shared
 * host the virtual machine's two CPUs are at times placed on different L3s
 * (about 400 ns), and every line one thread writes and the other reads then
 * crosses the fabric: bench/second_thread.sh reports the probe beside each
 * round, since the second thread's speed-up depends on it.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) atomic_long turn;
static long rounds = 200000;

static int pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* answers each odd value with the next even one (the first WARMUP rounds untimed) */
#define WARMUP 2000
static void *responder(void *arg)
{
    if (pin(*(const int *)arg))
        fprintf(stderr, "bench_corelat: cannot pin to CPU %d\n", *(const int *)arg);
    for (long i = 0; i < WARMUP + rounds; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int a = argc > 2 ? atoi(argv[1]) : 0, b = argc > 2 ? atoi(argv[2]) : 1;
    if (argc > 3)
        rounds = atol(argv[3]);
    if (rounds < 1)
        rounds = 1;
    if (pin(a)) {
        fprintf(stderr, "bench_corelat: cannot pin to CPU %d\n", a);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, responder, &b)) {
        fprintf(stderr, "bench_corelat: cannot start a thread\n");
        return 1;
    }
    /* untimed rounds first: the thread's start and the other CPU's wake-up from idle (which in
     * a virtual machine takes far longer than a round trip) stay out of the figure */
    struct timespec t0 = {0}, t1;
    for (long i = 0; i < WARMUP + rounds; i++) {
        if (i == WARMUP)
            clock_gettime(CLOCK_MONOTONIC, &t0);
        atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                (double)rounds;
    printf("{\"corelat_ns\":%.0f,\"cpus\":[%d,%d]}\n", ns, a, b);
    return 0;
}
