/* bench_fewshot_det.c: runs the detection recipe directly (no mount) on a
 * COCO detection split and prints the evaluation JSON and the wall time, for
 * tuning the recipe quickly with a warm feature cache. Not built by CMake
 * (the bench glob is bench_*.c); bench/fewshot_det.py --engine compiles it
 * against a build directory's libraries.
 *
 *   bench_fewshot_det ROOT TRAIN.json TEST.json [--cache DIR] [--seed N]
 *                      [--budget-min M] [--threads T] [--backbone DIR]
 *                      [--model OUT.safetensors] [--detfit here]
 *
 * --backbone defaults to the installed centernet (tests/unit/test_backbone_dir.h).
 *
 * --detfit here hands the head fits to the engine's detfit hook, which runs
 * each job in this process with eng_det_fit_run (the Slurm worker's call),
 * so that the model (--model) can be compared with a run without it.
 *
 * COCO boxes: relative (0..1, Azure) when no coordinate exceeds 1, else pixels.
 */
#include "engine.h"
#include "bench_util.h"
#include "../tests/unit/test_backbone_dir.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct split {
    eng_sample *s;
    int n;
    char **names;
    int ncat;
} split;

static double num(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int load_split(const char *root, const char *json, split *sp)
{
    char *txt = slurp(json);
    cJSON *o = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    cJSON *ims = cJSON_GetObjectItem(o, "images"), *ans = cJSON_GetObjectItem(o, "annotations");
    cJSON *cats = cJSON_GetObjectItem(o, "categories");
    if (!o || !cJSON_IsArray(ims) || !cJSON_IsArray(ans) || !cJSON_IsArray(cats)) {
        fprintf(stderr, "bench_fewshot_det: %s is not a COCO file\n", json);
        cJSON_Delete(o);
        return -1;
    }
    sp->ncat = cJSON_GetArraySize(cats);
    sp->names = calloc((size_t)sp->ncat, sizeof *sp->names);
    long long *cid = calloc((size_t)sp->ncat, sizeof *cid);
    int i = 0;
    for (cJSON *c = cats->child; c; c = c->next, i++) {
        sp->names[i] = strdup(cJSON_GetObjectItem(c, "name")->valuestring);
        cid[i] = (long long)num(c, "id");
    }
    int relative = 1;
    for (cJSON *a = ans->child; a; a = a->next) {
        cJSON *b = cJSON_GetObjectItem(a, "bbox");
        for (cJSON *x = b ? b->child : NULL; x; x = x->next)
            if (x->valuedouble > 1.0)
                relative = 0;
    }
    int n = cJSON_GetArraySize(ims);
    sp->s = calloc((size_t)n, sizeof *sp->s);
    for (cJSON *im = ims->child; im; im = im->next) {
        eng_sample *s = &sp->s[sp->n++];
        s->id = (long long)num(im, "id");
        s->width = (int)num(im, "width");
        s->height = (int)num(im, "height");
        const char *fn = cJSON_GetObjectItem(im, "file_name")->valuestring;
        size_t len = strlen(root) + strlen(fn) + 2;
        char *p = malloc(len);
        snprintf(p, len, "%s/%s", root, fn);
        s->path = p;
        int nb = 0;
        for (cJSON *a = ans->child; a; a = a->next)
            nb += (long long)num(a, "image_id") == s->id;
        eng_box *bx = calloc((size_t)nb + 1, sizeof *bx);
        for (cJSON *a = ans->child; a; a = a->next) {
            if ((long long)num(a, "image_id") != s->id)
                continue;
            cJSON *b = cJSON_GetObjectItem(a, "bbox");
            if (cJSON_GetArraySize(b) != 4)
                continue;
            double v[4];
            for (int k = 0; k < 4; k++)
                v[k] = cJSON_GetArrayItem(b, k)->valuedouble;
            if (relative) {
                v[0] *= s->width;
                v[2] *= s->width;
                v[1] *= s->height;
                v[3] *= s->height;
            }
            int c = -1;
            for (int k = 0; k < sp->ncat; k++)
                if (cid[k] == (long long)num(a, "category_id"))
                    c = k;
            if (c < 0)
                continue;
            bx[s->nboxes++] = (eng_box){(float)v[0], (float)v[1], (float)v[2], (float)v[3], c};
        }
        s->boxes = bx;
    }
    free(cid);
    cJSON_Delete(o);
    return 0;
}

/* Writes the test split's predictions as COCO results (category_id = the
 * model's index + 1, as in the test file's order) for error analysis. */
static int dump_predictions(const eng_detector *m, eng_backbone *const *bbs, int nbb,
                            const split *te, int threads, const char *path)
{
    eng_eval_opts o = {.threads = threads, .dataset_name = "test"};
    char *metrics = NULL, *preds = NULL;
    eng_diag d = {{0}};
    if (eng_det_evaluate(m, bbs, nbb, te->s, te->n, &o, &metrics, &preds, &d) != ENG_OK) {
        fprintf(stderr, "evaluate: %s\n", d.msg);
        return 1;
    }
    FILE *f = fopen(path, "w");
    int bad = !f || fputs(preds, f) < 0;
    if (f && fclose(f))
        bad = 1;
    if (bad)
        fprintf(stderr, "bench_fewshot_det: cannot write %s\n", path);
    free(metrics);
    free(preds);
    return bad;
}

/* --detfit here: the jobs of a batch one after the other, as the Slurm
 * workers would run them (their CPU time is this process's already). */
static const char *g_bbdir, *g_cache;
static int g_threads;

static int detfit_here(void *ctx, eng_finetune_job *jobs, int njobs, const char *const *paths,
                       int n, double *cpu, eng_status *st, eng_diag *d)
{
    (void)ctx;
    *cpu = 0;
    for (int k = 0; k < njobs; k++) {
        eng_status s = eng_det_fit_run(jobs[k].spec, &g_bbdir, 1, paths, n, g_cache, g_threads,
                                       &jobs[k].result, &jobs[k].len, d);
        if (s != ENG_OK) {
            for (int q = 0; q <= k; q++) {
                free(jobs[q].result);
                jobs[q].result = NULL;
            }
            *st = s;
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    eng_openmp_passive(argv); /* the daemon's policy: what users run */
    if (argc < 4) {
        fprintf(stderr, "usage: bench_fewshot_det ROOT TRAIN.json TEST.json [--cache DIR] "
                        "[--seed N] [--budget-min M] [--threads T] [--backbone DIR] "
                        "[--crop-backbone DIR|none] [--dump PREDICTIONS.json] [--model OUT] "
                        "[--detfit here]\n");
        return 2;
    }
    const char *root = argv[1], *cache = NULL, *dump = NULL, *model = NULL;
    int here = 0;
    /* default: the installed CenterNet, found as the daemon finds it */
    char installed[4096];
    test_backbone_path("centernet", NULL, installed, sizeof installed);
    const char *bbdir = installed;
    /* the crop classifier's backbone: the installed Lite0 when there is one */
    char crop_installed[4096];
    test_backbone_path("efficientnet-lite0", NULL, crop_installed, sizeof crop_installed);
    const char *cropdir = crop_installed;
    double budget = 5;
    int threads = 2;
    unsigned long long seed = 0;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cache"))
            cache = argv[i + 1];
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--budget-min"))
            budget = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backbone"))
            bbdir = argv[i + 1];
        else if (!strcmp(argv[i], "--crop-backbone"))
            cropdir = argv[i + 1];
        else if (!strcmp(argv[i], "--dump"))
            dump = argv[i + 1];
        else if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--detfit"))
            here = !strcmp(argv[i + 1], "here");
    }
    split tr = {0}, te = {0};
    if (load_split(root, argv[2], &tr) || load_split(root, argv[3], &te))
        return 1;
    eng_diag d = {{0}};
    eng_backbone *bbs[2] = {NULL, NULL};
    int nbb = 1;
    if (eng_backbone_open(bbdir, &bbs[0], &d) != ENG_OK) {
        fprintf(stderr, "backbone %s: %s\n", *bbdir ? bbdir : "(no backbones folder)", d.msg);
        return 1;
    }
    struct stat sb;
    if (strcmp(cropdir, "none") != 0 && stat(cropdir, &sb) == 0) {
        if (eng_backbone_open(cropdir, &bbs[1], &d) != ENG_OK) {
            fprintf(stderr, "backbone %s: %s\n", cropdir, d.msg);
            return 1;
        }
        nbb = 2;
    }
    eng_train_args a = {
        .train = tr.s,
        .ntrain = tr.n,
        .test = te.s,
        .ntest = te.n,
        .test_name = "test",
        .categories = (const char *const *)tr.names,
        .ncat = tr.ncat,
        .backbones = bbs,
        .nbackbones = nbb,
        .budget_seconds = budget * 60,
        .threads = threads,
        .seed = seed,
        .cache_dir = cache,
        .hooks = {.log = log_line},
    };
    g_bbdir = bbdir;
    g_cache = cache;
    g_threads = threads;
    if (here)
        a.hooks.detfit = detfit_here;
    double t0 = wall();
    eng_detector *m = NULL;
    char *ev = NULL;
    eng_status st = eng_det_train(&a, &m, &ev, &d);
    double t1 = wall();
    if (st != ENG_OK) {
        fprintf(stderr, "train: %s: %s\n", eng_status_name(st), d.msg);
        return 1;
    }
    if (dump && dump_predictions(m, bbs, nbb, &te, threads, dump))
        return 1;
    if (model && eng_detector_save(m, model, &d) != ENG_OK) {
        fprintf(stderr, "%s: %s\n", model, d.msg);
        return 1;
    }
    cJSON *o = cJSON_Parse(ev);
    cJSON_AddNumberToObject(o, "wall_s", t1 - t0);
    cJSON_AddNumberToObject(o, "train_images", tr.n);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    free(ev);
    eng_detector_free(m);
    eng_backbone_free(bbs[0]);
    eng_backbone_free(bbs[1]);
    return 0;
}
