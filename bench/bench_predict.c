/* bench_predict.c: the engine's own prediction rate for a model file, as
 * predict/ and the HTTP analyze call get it: fs_recipe_predict (the
 * function behind both) on each image, from THREADS threads at once, N
 * calls in all over the images in turn. Prints one JSON line: calls,
 * threads, images per second, p50 and p99 latency in ms. bench/http.sh
 * compares it with the mount and with HTTP in the same run.
 *
 *   bench_predict MODEL.safetensors THREADS N IMAGE...
 *
 * A detector draws X.boxes.jpg as predict/ does; BENCH_DRAW=0 leaves that
 * out, as the HTTP analyze call does.
 *
 * Backbones are found as the daemon finds them (fs_models_backbones_list:
 * $XDG_DATA_HOME/visionfs/backbones or ~/.local/share/visionfs/backbones).
 */
#include "bench_util.h"
#include "models_data.h"
#include "models_recipe.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct run {
    const fs_recipe_model *m;
    char **images;
    int nimages, n;
    int draw; /* a detector draws X.boxes.jpg, as predict/ does (BENCH_DRAW=0: as analyze) */
    int next, failed; /* under mu */
    double *lat;      /* per call, seconds */
    double *cpu;      /* per call, the calling thread's CPU seconds */
    pthread_mutex_t mu;
} run;

static void *worker(void *arg)
{
    run *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int i = r->next < r->n ? r->next++ : -1;
        pthread_mutex_unlock(&r->mu);
        if (i < 0)
            return NULL;
        fs_recipe_prediction p;
        fs_recipe_err err;
        memset(&p, 0, sizeof p);
        memset(&err, 0, sizeof err);
        double t0 = wall(), c0 = thread_cpu();
        fs_recipe_status st = fs_recipe_predict(r->m, r->images[i % r->nimages], r->draw, &p, &err);
        r->lat[i] = wall() - t0;
        r->cpu[i] = thread_cpu() - c0;
        fs_recipe_prediction_release(&p);
        if (st != FS_RECIPE_OK) {
            pthread_mutex_lock(&r->mu);
            if (!r->failed++)
                fprintf(stderr, "bench_predict: %s: %s\n", r->images[i % r->nimages], err.msg);
            pthread_mutex_unlock(&r->mu);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_predict MODEL.safetensors THREADS N IMAGE...\n");
        return 2;
    }
    int threads = atoi(argv[2]), n = atoi(argv[3]);
    if (threads < 1 || threads > 256 || n < 1) {
        fprintf(stderr, "bench_predict: THREADS 1-256 and N at least 1\n");
        return 2;
    }
    char **dirs = NULL;
    int nb = fs_models_backbones_list(&dirs);
    fs_recipe_model *m = NULL;
    fs_recipe_err err;
    memset(&err, 0, sizeof err);
    fs_recipe_status st = fs_recipe_load(argv[1], (const char *const *)dirs, nb, &m, &err);
    fs_models_backbones_free(dirs, nb);
    if (st != FS_RECIPE_OK) {
        fprintf(stderr, "bench_predict: %s: %s\n", argv[1], err.msg);
        return 1;
    }
    run r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.images = argv + 4;
    r.nimages = argc - 4;
    r.n = n;
    const char *dr = getenv("BENCH_DRAW");
    r.draw = !(dr && strcmp(dr, "0") == 0);
    r.lat = calloc((size_t)n, sizeof *r.lat);
    r.cpu = calloc((size_t)n, sizeof *r.cpu);
    pthread_mutex_init(&r.mu, NULL);
    /* one untimed call: backbones open lazily on the first */
    fs_recipe_prediction p;
    memset(&p, 0, sizeof p);
    fs_recipe_predict(m, r.images[0], 1, &p, &err);
    fs_recipe_prediction_release(&p);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    double t0 = wall();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, &r);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double secs = wall() - t0;
    qsort(r.lat, (size_t)n, sizeof *r.lat, cmp_double);
    qsort(r.cpu, (size_t)n, sizeof *r.cpu, cmp_double);
    printf("{\"calls\": %d, \"threads\": %d, \"per_s\": %.2f, \"p50_ms\": %.1f, \"p99_ms\": %.1f, "
           "\"cpu_p50_ms\": %.2f, \"failed\": %d}\n",
           n, threads, n / secs, 1000 * r.lat[n / 2],
           1000 * r.lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], 1000 * r.cpu[n / 2],
           r.failed);
    free(t);
    free(r.lat);
    free(r.cpu);
    pthread_mutex_destroy(&r.mu);
    fs_recipe_model_free(m);
    return r.failed ? 1 : 0;
}
