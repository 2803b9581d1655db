/* cls_ftjob.c: a fine-tuning candidate as a unit of work run elsewhere
 * (the Slurm executor's `visionfs-worker finetune`).
 *
 * Design: the search writes the candidate as JSON (cls_ftjob_spec): the
 * backbone by name and checksum, the tap and input size, the copies, the
 * labels, the first repeat's folds and the options with the seed. The
 * worker (eng_cls_finetune_run) computes exactly what the search would
 * (cls_finetune.c's maps, cross-validation and, in the same job, the fit on
 * every copy of every image, so a winning candidate needs no second job)
 * and returns bytes the search reads back (cls_ftjob_result): the held-out
 * probabilities as doubles and the trained tail as the floats of
 * cls_ft_tensors, in order. The tape's kernels are deterministic whatever
 * the thread count, so the result is bitwise the local one.
 *
 * Result: "VFT1", u32 n, u32 ncat, u32 ntail (floats), then n x ncat
 * doubles, then ntail floats, host byte order (the daemon and the workers
 * share one build).
 */
#include "classify_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FTJOB_MAGIC "VFT1"
#define FTJOB_HEAD 16

char *cls_ftjob_spec(const eng_backbone *bb, const char *tap, int size, int ncopies, int ncat,
                     const int *y, const int *fold, int n, int nfolds, const cls_ft_opts *o)
{
    const eng_backbone_info *inf = eng_backbone_get_info(bb);
    cJSON *j = cJSON_CreateObject();
    cJSON *ya = cJSON_CreateIntArray(y, n), *fa = cJSON_CreateIntArray(fold, n);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
    char *out = NULL;
    if (j && ya && fa && cJSON_AddStringToObject(j, "backbone", inf->name) &&
        cJSON_AddStringToObject(j, "checksum", inf->checksum) &&
        cJSON_AddStringToObject(j, "tap", tap) && cJSON_AddNumberToObject(j, "size", size) &&
        cJSON_AddNumberToObject(j, "copies", ncopies) &&
        cJSON_AddNumberToObject(j, "categories", ncat) && cJSON_AddNumberToObject(j, "images", n) &&
        cJSON_AddNumberToObject(j, "folds", nfolds) &&
        cJSON_AddNumberToObject(j, "epochs", o->epochs) &&
        cJSON_AddNumberToObject(j, "batch", o->batch) &&
        cJSON_AddNumberToObject(j, "lrStage", o->lr_stage) &&
        cJSON_AddNumberToObject(j, "lrHead", o->lr_head) &&
        cJSON_AddNumberToObject(j, "weightDecay", o->weight_decay) &&
        cJSON_AddNumberToObject(j, "lpLambda", o->lp_lambda) &&
        cJSON_AddStringToObject(j, "seed", seed)) {
        cJSON_AddItemToObject(j, "labels", ya);
        cJSON_AddItemToObject(j, "fold", fa);
        ya = fa = NULL;
        out = cJSON_PrintUnformatted(j);
    }
    cJSON_Delete(ya);
    cJSON_Delete(fa);
    cJSON_Delete(j);
    return out;
}

/* ---- the worker's side ---- */

typedef struct ftjob {
    char backbone[128], checksum[128], tap[96];
    int size, ncopies, ncat, n, nfolds;
    int *y, *fold;
    cls_ft_opts o;
} ftjob;

static int num(const cJSON *j, const char *k, double lo, double hi, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(x) || x->valuedouble < lo || x->valuedouble > hi)
        return -1;
    *v = x->valuedouble;
    return 0;
}

static int str(const cJSON *j, const char *k, char *out, size_t cap)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, k));
    if (!s || strlen(s) >= cap)
        return -1;
    snprintf(out, cap, "%s", s);
    return 0;
}

/* n ints of array k in [lo, hi) into a new *out. */
static int ints(const cJSON *j, const char *k, int n, int lo, int hi, int **out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n || !(*out = malloc(sizeof(int) * n)))
        return -1;
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || x->valueint < lo || x->valueint >= hi)
            return -1;
        (*out)[i] = x->valueint;
    }
    return 0;
}

static eng_status parse_job(const char *text, ftjob *f, eng_diag *d)
{
    memset(f, 0, sizeof *f);
    cJSON *j = cJSON_Parse(text);
    double v[12];
    char seed[32];
    int ok = j && str(j, "backbone", f->backbone, sizeof f->backbone) == 0 &&
             str(j, "checksum", f->checksum, sizeof f->checksum) == 0 &&
             str(j, "tap", f->tap, sizeof f->tap) == 0 && num(j, "size", 16, 4096, &v[0]) == 0 &&
             num(j, "copies", 1, 64, &v[1]) == 0 && num(j, "categories", 2, 1e6, &v[2]) == 0 &&
             num(j, "images", 1, 1e7, &v[3]) == 0 && num(j, "folds", 1, 1e7, &v[4]) == 0 &&
             num(j, "epochs", 1, 1e4, &v[5]) == 0 && num(j, "batch", 0, 1e6, &v[6]) == 0 &&
             num(j, "lrStage", 0, 10, &v[7]) == 0 && num(j, "lrHead", 0, 10, &v[8]) == 0 &&
             num(j, "weightDecay", 0, 10, &v[9]) == 0 && num(j, "lpLambda", 0, 1e6, &v[10]) == 0 &&
             str(j, "seed", seed, sizeof seed) == 0;
    if (ok) {
        f->size = (int)v[0];
        f->ncopies = (int)v[1];
        f->ncat = (int)v[2];
        f->n = (int)v[3];
        f->nfolds = (int)v[4];
        ok = ints(j, "labels", f->n, 0, f->ncat, &f->y) == 0 &&
             ints(j, "fold", f->n, -1, f->nfolds, &f->fold) == 0;
        f->o = (cls_ft_opts){.epochs = (int)v[5],
                             .batch = (int)v[6],
                             .lr_stage = (float)v[7],
                             .lr_head = (float)v[8],
                             .weight_decay = (float)v[9],
                             .lp_lambda = (float)v[10],
                             .seed = strtoull(seed, NULL, 10)};
    }
    cJSON_Delete(j);
    if (!ok) {
        free(f->y);
        free(f->fold);
        f->y = f->fold = NULL;
        return eng_fail(d, ENG_EFORMAT, "fine-tuning job: malformed (not written by this build?)");
    }
    return ENG_OK;
}

static eng_status open_backbone(const ftjob *f, const char *const *dirs, int nd, eng_backbone **out,
                                eng_diag *d)
{
    *out = NULL;
    for (int i = 0; i < nd; i++) {
        const char *base = strrchr(dirs[i], '/');
        base = base ? base + 1 : dirs[i];
        if (strcmp(base, f->backbone) != 0)
            continue;
        eng_status st = eng_backbone_open(dirs[i], out, d);
        if (st != ENG_OK)
            return st;
        if (strcmp(eng_backbone_get_info(*out)->checksum, f->checksum) == 0)
            return ENG_OK;
        eng_backbone_free(*out);
        *out = NULL;
        return eng_fail(d, ENG_ENOTFOUND,
                        "backbone \"%s\" in \"%s\" differs from the daemon's (checksum): install "
                        "the same backbones on the nodes",
                        f->backbone, dirs[i]);
    }
    return eng_fail(d, ENG_ENOTFOUND,
                    "backbone \"%s\" is not installed on this node: install it or put it in the "
                    "store's backbones/",
                    f->backbone);
}

eng_status eng_cls_finetune_run(const char *job, const char *const *bb_dirs, int nbb,
                                const char *const *paths, int n, const char *cache_dir, int threads,
                                eng_abort_fn abort, void *actx, void **result, size_t *len,
                                eng_diag *d)
{
    *result = NULL;
    *len = 0;
    ftjob f;
    eng_status st = parse_job(job, &f, d);
    if (st != ENG_OK)
        return st;
    eng_backbone *bb = NULL;
    float *maps = NULL;
    double *oof = NULL;
    int *yc = NULL, h = 0, w = 0, c = 0;
    cls_ft s = {0};
    if (f.n != n) {
        st = eng_fail(d, ENG_EINVAL, "fine-tuning job: %d images listed, the job has %d", n, f.n);
        goto out;
    }
    if ((st = open_backbone(&f, bb_dirs, nbb, &bb, d)) != ENG_OK ||
        (st = cls_ft_map_shape(bb, f.tap, f.size, &h, &w, &c, d)) != ENG_OK)
        goto out;
    f.o.threads = threads > 0 ? threads : 1;
    f.o.abort = abort;
    f.o.abort_ctx = actx;
    size_t dim = (size_t)h * w * c, rows = (size_t)f.ncopies * n;
    maps = malloc(sizeof(float) * dim * rows);
    oof = calloc((size_t)n * f.ncat, sizeof *oof);
    yc = malloc(sizeof(int) * rows);
    if (!maps || !oof || !yc) {
        st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory for %zu maps", rows);
        goto out;
    }
    /* what the search does here: the copies' maps (cls_train.c ft_copies),
     * the cross-validation, then the fit on every copy (finetune_final) */
    for (int k = 0; k < f.ncopies && st == ENG_OK; k++)
        st = cls_ft_maps(bb, f.tap, paths, n, k, f.o.seed, f.size, cache_dir, f.o.threads,
                         maps + dim * k * n, d);
    if (st == ENG_OK)
        st = cls_ft_cv(bb, f.tap, f.ncat, maps, n, f.ncopies, h, w, f.y, f.fold, f.nfolds, &f.o,
                       oof, d);
    for (size_t i = 0; i < rows; i++)
        yc[i] = f.y[i % n];
    if (st == ENG_OK)
        st = cls_ft_init(&s, bb, f.tap, f.ncat, d);
    if (st == ENG_OK)
        st = cls_ft_train(&s, maps, (int)rows, h, w, yc, &f.o, NULL, d);
    if (st != ENG_OK)
        goto out;
    const char *names[2 * CLS_FT_MAX_NODES + 2];
    eng_tensor t[2 * CLS_FT_MAX_NODES + 2];
    int nt = cls_ft_tensors(&s, names, t);
    size_t ntail = 0;
    for (int k = 0; k < nt; k++)
        ntail += (size_t)eng_tensor_numel(&t[k]);
    size_t total = FTJOB_HEAD + sizeof(double) * n * f.ncat + sizeof(float) * ntail;
    uint8_t *r = malloc(total);
    if (!r) {
        st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
        goto out;
    }
    uint32_t head[3] = {(uint32_t)n, (uint32_t)f.ncat, (uint32_t)ntail};
    memcpy(r, FTJOB_MAGIC, 4);
    memcpy(r + 4, head, sizeof head);
    size_t at = FTJOB_HEAD;
    memcpy(r + at, oof, sizeof(double) * n * f.ncat);
    at += sizeof(double) * n * f.ncat;
    for (int k = 0; k < nt; k++) {
        size_t b = sizeof(float) * (size_t)eng_tensor_numel(&t[k]);
        memcpy(r + at, t[k].data, b);
        at += b;
    }
    *result = r;
    *len = total;
out:
    cls_ft_free(&s);
    eng_backbone_free(bb);
    free(maps);
    free(oof);
    free(yc);
    free(f.y);
    free(f.fold);
    return st;
}

/* ---- the search's side ---- */

eng_status cls_ftjob_result(const void *res, size_t len, const eng_backbone *bb, const char *tap,
                            int n, int ncat, const int *fold, double *oof, cls_ft *tail,
                            eng_diag *d)
{
    uint32_t head[3];
    if (len < FTJOB_HEAD || memcmp(res, FTJOB_MAGIC, 4) != 0)
        return eng_fail(d, ENG_EFORMAT, "fine-tuning job: its result is not one");
    memcpy(head, (const uint8_t *)res + 4, sizeof head);
    eng_status st = cls_ft_init(tail, bb, tap, ncat, d);
    if (st != ENG_OK)
        return st;
    const char *names[2 * CLS_FT_MAX_NODES + 2];
    eng_tensor t[2 * CLS_FT_MAX_NODES + 2];
    int nt = cls_ft_tensors(tail, names, t);
    size_t ntail = 0;
    for (int k = 0; k < nt; k++)
        ntail += (size_t)eng_tensor_numel(&t[k]);
    size_t want = FTJOB_HEAD + sizeof(double) * n * ncat + sizeof(float) * ntail;
    if (head[0] != (uint32_t)n || head[1] != (uint32_t)ncat || head[2] != ntail || len != want) {
        cls_ft_free(tail);
        return eng_fail(d, ENG_EFORMAT,
                        "fine-tuning job: its result has %u x %u probabilities and %u weights, "
                        "expected %d x %d and %zu",
                        head[0], head[1], head[2], n, ncat, ntail);
    }
    const uint8_t *p = (const uint8_t *)res + FTJOB_HEAD;
    for (int i = 0; i < n; i++)
        if (fold[i] >= 0)
            memcpy(oof + (size_t)i * ncat, p + sizeof(double) * i * ncat, sizeof(double) * ncat);
    p += sizeof(double) * n * ncat;
    for (int k = 0; k < nt; k++) {
        size_t b = sizeof(float) * (size_t)eng_tensor_numel(&t[k]);
        memcpy(t[k].data, p, b);
        p += b;
    }
    return ENG_OK;
}
