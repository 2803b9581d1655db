/* bench_backbone.c: speed of the engine's runtime on the installed
 * backbones: CenterNet backbone to the embedding at 320 and 512, the full
 * detector heads (keypoints + wh) at 512, EfficientNet-Lite0 at 224 and
 * Lite2 at 260 when installed; 1 and 2 threads, batch 1 and 8. Prints one
 * json line per case (ms per image, images per second, GFLOP/s, median)
 * plus the measured AVX2 FMA peak, for bench/backbone and
 * bench/backbone_peers.sh to tabulate next to the peers.
 *
 * Usage: bench_backbone [--reps N] [--profile | --profile-nodes] [--rss]
 *                       [--only SIZE] [--threads T] [--batch B] [--case NAME]...
 *                       [--no-peak] [--peak-only] [--export DIR --image PHOTO]
 *   --profile: time per op kind at batch 1, 1 thread (with --threads T: T threads);
 *   --profile-nodes: per node instead, named as in the graph (the first 48 nodes:
 *   EfficientNet's).
 *   --rss: run only the detector at 512 with batch 8 and print peak RSS.
 *   --threads / --batch / --case: only that thread count / batch size /
 *   network (NAME as the export names it, e.g. centernet-backbone-512;
 *   repeatable). --no-peak: skip measuring the FMA peak. --peak-only: only
 *   measure it (one thread, thread CPU time) and exit.
 *   --export: instead of timing, write for every network the bare graph as
 *   DIR/NAME.onnx (eng_model_emit_onnx: input "image" NCHW [N,3,S,S] in the
 *   backbone's pixel range, the network's outputs NCHW), the photo's pixels
 *   as the engine takes them (DIR/NAME.in.f32, NHWC [1,S,S,3]) and the
 *   engine's outputs on them (DIR/NAME.outK.f32, NHWC), plus one json line
 *   per network saying the shapes, so that a peer runtime can be checked
 *   against the engine on a real image before it is timed.
 * Model paths: $VFS_CENTERNET_JSON or the backbones folder of
 * tests/unit/test_backbone_dir.h. Exits 77 when CenterNet is not installed,
 * 1 when an installed backbone does not load.
 */
#include "engine.h"
#include "../tests/unit/test_backbone_dir.h"

#include <cjson/cJSON.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *const EMB = "tower_0/extern1/hard_swish/mul_1";
static const char *const HEADS[2] = {"tower_0/keypoints", "tower_0/wh"};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* NAME's model.json in the backbones folder (test_backbone_dir.h's rule);
 * NULL only when NAME is not installed, so that a broken install reaches
 * eng_model_load and is reported instead of being benchmarked as absent */
static const char *backbone_json(const char *name, char *buf, size_t len)
{
    return test_backbone_path(name, "model.json", buf, len) == 1 ? buf : NULL;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* AVX2 FMA peak of one thread: independent FMA chains in registers, timed in
 * thread CPU time so that other processes on the machine do not lower it */
__attribute__((target("avx2,fma"))) static double fma_peak_gflops(void)
{
    __m256 a[10];
    for (int i = 0; i < 10; i++)
        a[i] = _mm256_set1_ps((float)i * 1e-3f);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    long iters = 0;
    double t0 = thread_cpu_ms(), t;
    do {
        for (int k = 0; k < 100000; k++)
            for (int i = 0; i < 10; i++)
                a[i] = _mm256_fmadd_ps(a[i], m, c);
        iters += 100000;
        t = thread_cpu_ms();
    } while (t - t0 < 300);
    float sink = 0;
    for (int i = 0; i < 10; i++)
        sink += _mm256_cvtss_f32(a[i]);
    if (sink == 12345.0f)
        printf("#\n");
    return (double)iters * 10 * 16 / ((t - t0) * 1e6);
}

/* the same with AVX-512 (what the GEMM kernel uses where the CPU has it) */
__attribute__((target("avx512f"))) static double fma512_peak_gflops(void)
{
    __m512 a[12];
    for (int i = 0; i < 12; i++)
        a[i] = _mm512_set1_ps((float)i * 1e-3f);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    long iters = 0;
    double t0 = thread_cpu_ms(), t;
    do {
        for (int k = 0; k < 100000; k++)
            for (int i = 0; i < 12; i++)
                a[i] = _mm512_fmadd_ps(a[i], m, c);
        iters += 100000;
        t = thread_cpu_ms();
    } while (t - t0 < 300);
    float sink = 0;
    for (int i = 0; i < 12; i++)
        sink += _mm512_reduce_add_ps(a[i]);
    if (sink == 12345.0f)
        printf("#\n");
    return (double)iters * 12 * 32 / ((t - t0) * 1e6);
}

/* The peaks as json lines: AVX2, and AVX-512 where the CPU has it and the
 * engine may use it. */
static void print_peaks(void)
{
    printf("{\"fma_peak_gflops_1t\":%.1f}\n", fma_peak_gflops());
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && !getenv("VFS_NO_AVX512"))
        printf("{\"fma512_peak_gflops_1t\":%.1f}\n", fma512_peak_gflops());
}

typedef struct bench_case {
    const char *model; /* "centernet" or "efficientnet-lite0" */
    const char *name;
    int size;
    const char *const *outs;
    int n_outs;
} bench_case;

static int run_case(const eng_model *m, const bench_case *c, int batch, int threads, int reps,
                    eng_run_profile *prof)
{
    int64_t dim[4] = {batch, c->size, c->size, 3};
    eng_tensor *x = eng_tensor_new(ENG_F32, 4, dim);
    if (!x)
        return -1;
    for (int64_t i = 0; i < eng_tensor_numel(x); i++)
        eng_f32(x)[i] = (float)((i * 2654435761u >> 7) % 256);
    double flops = 0;
    eng_diag d;
    int64_t od[2][ENG_MAX_DIMS];
    int ond[2];
    if (eng_model_shapes(m, 4, dim, c->outs, c->n_outs, od, ond, &flops, &d)) {
        fprintf(stderr, "%s: %s\n", c->name, d.msg);
        eng_tensor_free(x);
        return -1;
    }
    eng_run_opts opts = {.threads = threads};
    eng_tensor *out[2] = {0};
    /* warm-up */
    if (eng_model_run(m, x, c->outs, c->n_outs, out, &opts, &d)) {
        fprintf(stderr, "%s: %s\n", c->name, d.msg);
        eng_tensor_free(x);
        return -1;
    }
    for (int i = 0; i < c->n_outs; i++)
        eng_tensor_free(out[i]);
    int n = reps;
    double *t = calloc((size_t)n, sizeof *t);
    opts.profile = prof;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (int r = 0; r < n; r++) {
        double t0 = now_ms();
        eng_model_run(m, x, c->outs, c->n_outs, out, &opts, &d);
        t[r] = now_ms() - t0;
        for (int i = 0; i < c->n_outs; i++)
            eng_tensor_free(out[i]);
    }
    getrusage(RUSAGE_SELF, &ru1);
    double cpu =
        (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) *
            1e3 +
        (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
         ru0.ru_stime.tv_usec) *
            1e-3;
    /* median */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double s = t[j];
            t[j] = t[j - 1];
            t[j - 1] = s;
        }
    /* best of n: the machine may be shared, the minimum is the least disturbed run */
    double ms = t[0] / batch;
    printf("{\"runtime\":\"engine\",\"model\":\"%s\",\"case\":\"%s\",\"size\":%d,\"batch\":%d,"
           "\"threads\":%d,\"ms_per_image\":%.3f,\"images_per_s\":%.2f,\"gflop\":%.3f,"
           "\"gflops\":%.2f,\"median_ms_per_image\":%.3f,\"cpu_ms_per_image\":%.3f}\n",
           c->model, c->name, c->size, batch, threads, ms, 1000.0 / ms, flops / batch / 1e9,
           flops / batch / 1e9 / (ms / 1000.0), t[n / 2] / batch, cpu / n / batch);
    fflush(stdout);
    free(t);
    eng_tensor_free(x);
    return 0;
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* the embedding node named by backbone.json next to model.json */
static const char *embedding_of(const char *json_path, char *buf, size_t len)
{
    char p[4200];
    snprintf(p, sizeof p, "%s", json_path);
    char *slash = strrchr(p, '/');
    if (!slash)
        return NULL;
    snprintf(slash, sizeof p - (size_t)(slash - p), "/backbone.json");
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, NULL, 0);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "embedding");
    const char *r = NULL;
    if (cJSON_IsString(e)) {
        snprintf(buf, len, "%s", e->valuestring);
        r = buf;
    }
    cJSON_Delete(j);
    return r;
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "%s: cannot write\n", path);
        return -1;
    }
    return 0;
}

/* --export: c's graph as DIR/NAME.onnx, the photo's pixels at c's size and
 * the engine's outputs on them (see the usage at the top) */
static int export_case(const eng_model *m, const bench_case *c, const eng_image *im,
                       const char *dir)
{
    char name[128], path[4400];
    snprintf(name, sizeof name, "%s-%s-%d", c->model, c->name, c->size);
    int64_t dim[4] = {1, c->size, c->size, 3};
    eng_tensor *x = eng_tensor_new(ENG_F32, 4, dim);
    eng_tensor *out[2] = {0};
    eng_diag d;
    onnx_b *b = onnx_new();
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = -1;
    if (!x || !b)
        goto done;
    if (eng_image_to_tensor(im, NULL, 0, c->size, c->size, ENG_PIX_0_255, eng_f32(x), &d)) {
        fprintf(stderr, "%s: %s\n", name, d.msg);
        goto done;
    }
    eng_run_opts opts = {.threads = 1};
    if (eng_model_run(m, x, c->outs, c->n_outs, out, &opts, &d)) {
        fprintf(stderr, "%s: %s\n", name, d.msg);
        goto done;
    }
    int64_t in_nchw[4] = {-1, 3, c->size, c->size};
    onnx_input(b, "image", ONNX_FLOAT, 4, in_nchw);
    const char *on[2];
    if (eng_model_emit_onnx(m, b, "image", c->size, c->size, c->outs, c->n_outs, "", "w/", on,
                            &d)) {
        fprintf(stderr, "%s: %s\n", name, d.msg);
        goto done;
    }
    for (int i = 0; i < c->n_outs; i++) {
        const int64_t *od = out[i]->dim;
        int64_t nchw[4] = {-1, od[3], od[1], od[2]};
        onnx_output(b, on[i], ONNX_FLOAT, 4, nchw);
    }
    if (onnx_pack(b, name, "bench", &buf, &len, &d)) {
        fprintf(stderr, "%s: %s\n", name, d.msg);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    if (write_file(path, buf, len))
        goto done;
    snprintf(path, sizeof path, "%s/%s.in.f32", dir, name);
    if (write_file(path, eng_f32(x), sizeof(float) * (size_t)eng_tensor_numel(x)))
        goto done;
    printf("{\"name\":\"%s\",\"model\":\"%s\",\"case\":\"%s\",\"size\":%d,\"outputs\":[", name,
           c->model, c->name, c->size);
    for (int i = 0; i < c->n_outs; i++) {
        snprintf(path, sizeof path, "%s/%s.out%d.f32", dir, name, i);
        if (write_file(path, eng_f32(out[i]), sizeof(float) * (size_t)eng_tensor_numel(out[i])))
            goto done;
        const int64_t *od = out[i]->dim;
        printf("%s{\"node\":\"%s\",\"nhwc\":[1,%lld,%lld,%lld]}", i ? "," : "", c->outs[i],
               (long long)od[1], (long long)od[2], (long long)od[3]);
    }
    printf("]}\n");
    rc = 0;
done:
    free(buf);
    onnx_free(b);
    for (int i = 0; i < 2; i++)
        eng_tensor_free(out[i]);
    eng_tensor_free(x);
    return rc;
}

int main(int argc, char **argv)
{
    int reps = 5, profile = 0, rss = 0, only = 0, only_thr = 0, only_batch = 0;
    const char *export_dir = NULL, *photo = NULL, *want[8];
    int n_want = 0, no_peak = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--peak-only")) {
            /* the ceiling bench/backbone_peers.sh holds every runtime to,
             * measured in the same run as they are timed */
            print_peaks();
            return 0;
        }
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--profile"))
            profile = 1;
        else if (!strcmp(argv[i], "--profile-nodes"))
            profile = 2;
        else if (!strcmp(argv[i], "--rss"))
            rss = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            only_thr = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            only_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--export") && i + 1 < argc)
            export_dir = argv[++i];
        else if (!strcmp(argv[i], "--image") && i + 1 < argc)
            photo = argv[++i];
        else if (!strcmp(argv[i], "--case") && i + 1 < argc && n_want < 8)
            want[n_want++] = argv[++i];
        else if (!strcmp(argv[i], "--no-peak"))
            no_peak = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--reps N] [--profile | --profile-nodes] [--rss] [--only SIZE] "
                    "[--threads T] "
                    "[--batch B] [--case NAME]... [--no-peak] [--peak-only] "
                    "[--export DIR --image PHOTO]\n",
                    argv[0]);
            return 2;
        }
    }
    if (export_dir && !photo) {
        fprintf(stderr, "--export needs --image PHOTO (a real photo to check the peers on)\n");
        return 2;
    }
    char cpath[4096], epath[4096], emb[512];
    const char *cj = getenv("VFS_CENTERNET_JSON");
    if (!cj || !*cj)
        cj = backbone_json("centernet", cpath, sizeof cpath);
    const char *ej = backbone_json("efficientnet-lite0", epath, sizeof epath);
    if (!cj) {
        fprintf(stderr, "CenterNet is not installed (run the set-up command)\n");
        return 77;
    }
    eng_diag d;
    eng_model *cn = NULL, *en = NULL;
    double t0 = now_ms();
    if (eng_model_load(cj, &cn, &d)) {
        fprintf(stderr, "%s: installed but does not load: %s\n", cj, d.msg);
        return 1;
    }
    double load_ms = now_ms() - t0;
    if (rss) {
        long before = max_rss_kb();
        bench_case c = {"centernet", "detector", 512, HEADS, 2};
        run_case(cn, &c, 8, 2, 1, NULL);
        printf("{\"peak_rss_mb\":%.1f,\"rss_before_run_mb\":%.1f,\"what\":\"detector heads, batch "
               "8 @512, 2 threads\"}\n",
               max_rss_kb() / 1024.0, before / 1024.0);
        eng_model_free(cn);
        return 0;
    }
    const char *en_emb = NULL, *e2_emb = NULL;
    char e2path[4096], emb2[512];
    const char *e2j = backbone_json("efficientnet-lite2", e2path, sizeof e2path);
    eng_model *e2 = NULL;
    if ((ej && eng_model_load(ej, &en, &d) != ENG_OK) ||
        (e2j && eng_model_load(e2j, &e2, &d) != ENG_OK)) {
        fprintf(stderr, "%s: installed but does not load: %s\n", en ? e2j : ej, d.msg);
        eng_model_free(cn);
        eng_model_free(en);
        return 1;
    }
    if (en)
        en_emb = embedding_of(ej, emb, sizeof emb);
    if (e2)
        e2_emb = embedding_of(e2j, emb2, sizeof emb2);
    bench_case cases[5] = {
        {"centernet", "backbone", 320, &EMB, 1},
        {"centernet", "backbone", 512, &EMB, 1},
        {"centernet", "detector", 512, HEADS, 2},
        {"efficientnet-lite0", "backbone", 224, &en_emb, 1},
        {"efficientnet-lite2", "backbone", 260, &e2_emb, 1},
    };
    const eng_model *model_of[5] = {cn, cn, cn, en_emb ? en : NULL, e2_emb ? e2 : NULL};
    for (int i = 0; i < 5 && n_want; i++) { /* --case: drop the others */
        char nm[128];
        snprintf(nm, sizeof nm, "%s-%s-%d", cases[i].model, cases[i].name, cases[i].size);
        int hit = 0;
        for (int k = 0; k < n_want; k++)
            hit |= !strcmp(want[k], nm);
        if (!hit)
            model_of[i] = NULL;
    }
    int rc = 0;
    if (export_dir) {
        eng_image *im = NULL;
        if (eng_image_decode_file(photo, 0, &im, &d)) {
            fprintf(stderr, "%s: %s\n", photo, d.msg);
            rc = 1;
        }
        for (int i = 0; im && i < 5; i++)
            if (model_of[i] && (!only || cases[i].size == only) &&
                export_case(model_of[i], &cases[i], im, export_dir))
                rc = 1;
        eng_image_free(im);
        goto out;
    }
    printf("{\"load_ms\":%.1f}\n", load_ms);
    if (!no_peak)
        print_peaks();
    fflush(stdout);
    for (int batch = 1; batch <= 8; batch *= 8)
        for (int threads = 1; threads <= 2; threads++)
            for (int i = 0; i < 5; i++) {
                if (!model_of[i] || (only && cases[i].size != only) ||
                    (only_thr && threads != only_thr) || (only_batch && batch != only_batch))
                    continue;
                /* --profile: per network, batch 1, 1 thread (or the --threads given; cpu ms
                 * is then the calling thread's alone) */
                eng_run_profile prof = {.by_node = profile == 2};
                int p = profile && threads == (only_thr ? only_thr : 1) && batch == 1;
                run_case(model_of[i], &cases[i], batch, threads, reps, p ? &prof : NULL);
                if (!p)
                    continue;
                printf("# per op, %s %s @%d, %d thread(s), batch 1, %d runs: wall ms, cpu ms, "
                       "calls, GFLOP/s (cpu)\n",
                       cases[i].model, cases[i].name, cases[i].size, threads, reps);
                for (int k = 0; k < prof.n; k++) {
                    printf("#  %-28s %9.2f %9.2f %6d  %6.1f\n", prof.op[k], prof.ms[k],
                           prof.cpu_ms[k], prof.calls[k],
                           prof.flops[k] / (prof.cpu_ms[k] * 1e6 + 1e-9));
                    printf("{\"profile\":\"%s-%s-%d\",\"op\":\"%s\",\"ms\":%.3f,\"cpu_ms\":%.3f,"
                           "\"calls\":%d,\"flops\":%.0f,\"runs\":%d}\n",
                           cases[i].model, cases[i].name, cases[i].size, prof.op[k], prof.ms[k],
                           prof.cpu_ms[k], prof.calls[k], prof.flops[k], reps);
                }
            }
out:
    eng_model_free(cn);
    eng_model_free(en);
    eng_model_free(e2);
    return rc;
}
