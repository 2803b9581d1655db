/* multilabel.c: the multilabel recipe (multilabel.h): a classifier's views
 * and head read as one sigmoid per tag, thresholds per tag, its training
 * search, evaluation and model file.
 *
 * Design: features come from classify.c only: training extracts the
 * classifier's first pass (cls_extract with cls_pass_taps, no augmentation:
 * the same cache files) and keeps the embedding; prediction and evaluation
 * go through cls_features, the one path from image files to normalised
 * vectors. The heads are binary logistic regressions fitted by the
 * classifier's solver (two-class softmax, whose log-odds is a sigmoid) in
 * the Gram-reduced space, mapped back to one weight vector per tag.
 */
#include "classify_int.h"
#include "multilabel.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct eng_multilabel {
    eng_classifier *c; /* views, categories (the tags), head: one column per tag */
    float *thr;        /* ncat */
};

#define ML_FOLDS 5
#define ML_NC 5
/* inverse L2 strengths, as the classifier's grid (lambda = 1 / (C n)) */
static const double ML_C[ML_NC] = {0.5, 2, 8, 32, 128};
#define ML_NPOW 2
static const float ML_POW[ML_NPOW] = {0.5f, 1.0f};

void eng_ml_free(eng_multilabel *m)
{
    if (!m)
        return;
    eng_classifier_free(m->c);
    free(m->thr);
    free(m);
}

int eng_ml_ncat(const eng_multilabel *m) { return m->c->ncat; }
const char *eng_ml_category(const eng_multilabel *m, int i) { return eng_cls_category(m->c, i); }
float eng_ml_threshold(const eng_multilabel *m, int i)
{
    return i >= 0 && i < m->c->ncat ? m->thr[i] : 1.0f;
}
const char *eng_ml_backbone_needed(const eng_multilabel *m, int i, const char **checksum)
{
    return eng_cls_backbone_needed(m->c, i, checksum);
}
const char *eng_ml_recipe(const eng_multilabel *m) { return eng_cls_recipe(m->c); }

/* ---- scores ---- */

static float sigmoid(double z)
{
    return z >= 0 ? (float)(1.0 / (1.0 + exp(-z))) : (float)(exp(z) / (1.0 + exp(z)));
}

/* Independent scores (n x ncat) of feature vectors. */
static void ml_scores(const eng_classifier *c, const float *feat, int n, float *out)
{
    for (int i = 0; i < n; i++) {
        const float *x = feat + (size_t)i * c->dim;
        for (int k = 0; k < c->ncat; k++) {
            double z = c->b[k];
            for (int j = 0; j < c->dim; j++)
                z += (double)x[j] * c->w[(size_t)j * c->ncat + k];
            out[(size_t)i * c->ncat + k] = sigmoid(z);
        }
    }
}

/* Scores of image files through cls_features; feat: scratch n x dim. */
static eng_status ml_model_scores(const eng_multilabel *m, const eng_backbone *const *rb,
                                  const char *const *paths, char *const *hashes, int n,
                                  const char *cache_dir, const eng_run_opts *o, float *feat,
                                  float *scores, eng_diag *d)
{
    eng_status st = cls_features(m->c, rb, paths, hashes, n, cache_dir, o, feat, NULL, NULL, d);
    if (st == ENG_OK)
        ml_scores(m->c, feat, n, scores);
    return st;
}

eng_status eng_ml_predict(const eng_multilabel *m, eng_backbone *const *backbones, int nbackbones,
                          const char *image_path, int threads, float *scores, eng_diag *d)
{
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m->c, backbones, nbackbones, rb, d);
    if (st != ENG_OK)
        return st;
    float *feat = malloc((size_t)m->c->dim * sizeof *feat);
    if (!feat)
        return eng_fail(d, ENG_ENOMEM, "predict: out of memory");
    eng_run_opts o = {.threads = threads > 0 ? threads : 1};
    st = ml_model_scores(m, rb, &image_path, NULL, 1, NULL, &o, feat, scores, d);
    free(feat);
    return st;
}

eng_status eng_ml_probs(const eng_multilabel *m, eng_backbone *const *backbones, int nbackbones,
                        const char *const *paths, int n, const char *cache_dir,
                        const eng_run_opts *o, float *scores, eng_diag *d)
{
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m->c, backbones, nbackbones, rb, d);
    if (st != ENG_OK || n < 1)
        return st;
    eng_run_opts ro = {.threads = o && o->threads > 0 ? o->threads : 1,
                       .abort = o ? o->abort : NULL,
                       .abort_ctx = o ? o->abort_ctx : NULL};
    char **hash = cache_dir ? calloc((size_t)n, sizeof *hash) : NULL;
    float *feat = malloc((size_t)(cache_dir ? n : 1) * m->c->dim * sizeof *feat);
    if (!feat || (cache_dir && !hash))
        st = eng_fail(d, ENG_ENOMEM, "scores: out of memory");
    for (int i = 0; hash && st == ENG_OK && i < n; i++)
        st = (hash[i] = malloc(33)) ? eng_hash_file(paths[i], hash[i], d)
                                    : eng_fail(d, ENG_ENOMEM, "scores: out of memory");
    if (st == ENG_OK && cache_dir) /* training's test pass: all at once through the cache */
        st = ml_model_scores(m, rb, paths, hash, n, cache_dir, &ro, feat, scores, d);
    for (int i = 0; !cache_dir && st == ENG_OK && i < n; i++) /* eng_ml_evaluate's loop */
        st = ml_model_scores(m, rb, &paths[i], NULL, 1, NULL, &ro, feat,
                             scores + (size_t)i * m->c->ncat, d);
    for (int i = 0; hash && i < n; i++)
        free(hash[i]);
    free(hash);
    free(feat);
    return st;
}

/* ---- evaluation ---- */

/* Row i of truth (ncat) from sample s's box categories. */
static void tags_of(const eng_sample *s, int ncat, uint8_t *row)
{
    memset(row, 0, (size_t)ncat);
    if (s->nboxes == 0 && s->label >= 0 && s->label < ncat)
        row[s->label] = 1; /* one label per image: one tag */
    for (int j = 0; j < s->nboxes; j++)
        if (s->boxes[j].category >= 0 && s->boxes[j].category < ncat)
            row[s->boxes[j].category] = 1;
}

/* Metrics JSON of scores against truth at m's thresholds, plus the detail
 * and the COCO results. */
static eng_status ml_report(const eng_multilabel *m, const eng_sample *s, int n,
                            const float *scores, const uint8_t *truth, const eng_eval_extra *ex,
                            const eng_eval_opts *o, char **metrics, char **predictions, eng_diag *d)
{
    int K = m->c->ncat;
    eng_ml_metrics met;
    eng_status st = eng_ml_metrics_compute(scores, truth, m->thr, n, K, &met, d);
    if (st != ENG_OK)
        return st;
    st = eng_ml_metrics_json(&met, (const char *const *)m->c->cats, m->thr, ex, metrics, d);
    eng_ml_metrics_release(&met);
    if (st != ENG_OK)
        return st;
    const char **paths = malloc((size_t)n * sizeof *paths);
    long long *ids = malloc((size_t)n * sizeof *ids);
    if (!paths || !ids) {
        free(paths);
        free(ids);
        free(*metrics);
        *metrics = NULL;
        return eng_fail(d, ENG_ENOMEM, "evaluate: out of memory");
    }
    for (int i = 0; i < n; i++) {
        paths[i] = s[i].path;
        ids[i] = s[i].id ? s[i].id : i + 1;
    }
    if (o && o->detail) {
        eng_eval_detail dt = {.multilabel = 1,
                              .n = n,
                              .ncat = K,
                              .categories = (const char *const *)m->c->cats,
                              .paths = paths,
                              .ids = ids,
                              .scores = scores,
                              .truth = truth};
        o->detail(o->detail_ctx, &dt);
    }
    if (predictions) {
        cJSON *arr = cJSON_CreateArray();
        int ok = arr != NULL;
        for (int i = 0; ok && i < n; i++)
            for (int k = 0; ok && k < K; k++) {
                cJSON *e = cJSON_CreateObject();
                const long long cid = o && o->category_ids ? o->category_ids[k] : k + 1;
                ok = e && cJSON_AddItemToArray(arr, e) &&
                     cJSON_AddNumberToObject(e, "image_id", (double)ids[i]) &&
                     cJSON_AddNumberToObject(e, "category_id", (double)cid) &&
                     cJSON_AddNumberToObject(e, "score",
                                             round(scores[(size_t)i * K + k] * 1e6) / 1e6);
            }
        *predictions = ok ? cJSON_PrintUnformatted(arr) : NULL;
        cJSON_Delete(arr);
        if (!*predictions)
            st = eng_fail(d, ENG_ENOMEM, "predictions json: out of memory");
    }
    free(paths);
    free(ids);
    if (st != ENG_OK) {
        free(*metrics);
        *metrics = NULL;
    }
    return st;
}

eng_status eng_ml_evaluate(const eng_multilabel *m, eng_backbone *const *backbones, int nbackbones,
                           const eng_sample *s, int n, const eng_eval_opts *o, char **metrics_json,
                           char **predictions_json, eng_diag *d)
{
    *metrics_json = NULL;
    if (predictions_json)
        *predictions_json = NULL;
    if (n < 1)
        return eng_fail(d, ENG_EINVAL, "evaluate: no images");
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m->c, backbones, nbackbones, rb, d);
    if (st != ENG_OK)
        return st;
    int K = m->c->ncat;
    eng_run_opts ro = {.threads = o && o->threads > 0 ? o->threads : 1,
                       .abort = o ? o->abort : NULL,
                       .abort_ctx = o ? o->ctx : NULL};
    float *feat = malloc((size_t)m->c->dim * sizeof *feat);
    float *scores = malloc((size_t)n * K * sizeof *scores);
    uint8_t *truth = malloc((size_t)n * K);
    if (!feat || !scores || !truth)
        st = eng_fail(d, ENG_ENOMEM, "evaluate: out of memory");
    for (int i = 0; i < n && st == ENG_OK; i++)
        tags_of(&s[i], K, truth + (size_t)i * K);
    /* the scores computed elsewhere (the Slurm workers: eng_ml_predict of
     * each image, the same path as below), unless the hook declines */
    int here = 1;
    if (st == ENG_OK && o && o->probs) {
        const char **paths = malloc((size_t)n * sizeof *paths);
        if (!paths) {
            st = eng_fail(d, ENG_ENOMEM, "evaluate: out of memory");
        } else {
            for (int i = 0; i < n; i++)
                paths[i] = s[i].path;
            eng_status hs = ENG_OK;
            int rc = o->probs(o->probs_ctx, m, paths, n, 0, scores, &hs, d);
            free(paths);
            here = rc == 1;
            if (rc < 0)
                st = hs != ENG_OK ? hs : eng_fail(d, ENG_EIO, "evaluate: failed elsewhere");
        }
    }
    /* one image at a time: exactly the path of predict */
    for (int i = 0; here && i < n && st == ENG_OK; i++)
        st =
            ml_model_scores(m, rb, &s[i].path, NULL, 1, NULL, &ro, feat, scores + (size_t)i * K, d);
    if (st == ENG_OK) {
        eng_eval_extra ex = {o && o->dataset_name ? o->dataset_name : "dataset", n, -1, NULL};
        st = ml_report(m, s, n, scores, truth, &ex, o, metrics_json, predictions_json, d);
    }
    free(feat);
    free(scores);
    free(truth);
    return st;
}

/* ---- training ---- */

typedef struct mltrain {
    const eng_train_args *a;
    eng_diag *d;
    int n, K, threads;
    uint8_t *Y; /* n x K */
    char **hash;
    const char **paths;
    clock_t cpu0;
} mltrain;

static void mlog(const mltrain *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mlog(const mltrain *t, const char *fmt, ...)
{
    if (!t->a->hooks.log)
        return;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    t->a->hooks.log(t->a->hooks.ctx, line);
}

static int ml_abort(void *ctx)
{
    const mltrain *t = ctx;
    return t->a->hooks.abort && t->a->hooks.abort(t->a->hooks.ctx);
}

static double cpu_used(const mltrain *t) { return (double)(clock() - t->cpu0) / CLOCKS_PER_SEC; }

static void progress(const mltrain *t, const char *stage, double fraction, int trial, int ntrials,
                     double best)
{
    if (!t->a->hooks.progress)
        return;
    eng_train_progress p = {.fraction = fraction,
                            .trial = trial,
                            .ntrials = ntrials,
                            .best_metric = "averagePrecision",
                            .best_value = best,
                            .cpu_seconds = cpu_used(t),
                            .budget_seconds = t->a->budget_seconds,
                            .stage = stage};
    t->a->hooks.progress(t->a->hooks.ctx, &p);
}

/* The embeddings (n x *dim) of backbone bb at its input size: the
 * classifier's first pass (embedding and extra taps, no augmentation),
 * so the feature cache serves both kinds; only the embedding is kept. */
static eng_status embeddings(const mltrain *t, const eng_backbone *bb, float **out, int *dim)
{
    const char *taps[CLS_MAX_TAPS], *keys[CLS_MAX_TAPS];
    int nt = cls_pass_taps(bb, taps, keys), total = 0, edim = 0;
    for (int k = 0; k < nt; k++) {
        int dk = 0;
        int size = eng_backbone_get_info(bb)->input_w;
        eng_status st = eng_backbone_embed_dim(bb, size, &taps[k], 1, &dk, t->d);
        if (st != ENG_OK)
            return st;
        if (k == 0)
            edim = dk;
        total += dk;
    }
    float *buf = malloc((size_t)t->n * total * sizeof *buf);
    *out = malloc((size_t)t->n * edim * sizeof **out);
    if (!buf || !*out) {
        free(buf);
        free(*out);
        *out = NULL;
        return eng_fail(t->d, ENG_ENOMEM, "training: out of memory for features");
    }
    eng_run_opts o = {.threads = t->threads, .abort = ml_abort, .abort_ctx = (void *)t};
    cls_extract_req r = {.bb = bb,
                         .size = eng_backbone_get_info(bb)->input_w,
                         .taps = taps,
                         .ntaps = nt,
                         .dim = total,
                         .aug = 0,
                         .seed = t->a->seed,
                         .index_base = 0,
                         .paths = t->paths,
                         .hashes = t->hash,
                         .n = t->n,
                         .cache_dir = t->a->cache_dir,
                         .opts = &o};
    eng_status st = cls_extract(&r, buf, t->d);
    if (st == ENG_OK)
        for (int i = 0; i < t->n; i++)
            memcpy(*out + (size_t)i * edim, buf + (size_t)i * total, (size_t)edim * sizeof **out);
    free(buf);
    if (st != ENG_OK) {
        free(*out);
        *out = NULL;
    }
    *dim = edim;
    return st;
}

/* x (n x dim, raw) powered, centred with mean (computed over rows here),
 * L2-normalised, in place. */
static void prepare(float *x, int n, int dim, float power, float *mean)
{
    for (int i = 0; i < n; i++)
        cls_power(x + (size_t)i * dim, dim, power);
    for (int j = 0; j < dim; j++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += x[(size_t)i * dim + j];
        mean[j] = (float)(s / n);
    }
    for (int i = 0; i < n; i++)
        cls_normalise(x + (size_t)i * dim, dim, mean, 1.0f);
}

/* One-vs-rest heads for every tag and L2 strength on rows rows[0..m) of x:
 * w (ML_NC x K x dim) and b (ML_NC x K). A tag absent (or present) on every
 * row gets weights 0 and a bias of -20 (+20). Returns ENG_OK, ENG_ENOMEM or
 * ENG_EABORTED. */
static eng_status fit_heads(const mltrain *t, const float *x, int dim, const int *rows, int m,
                            double *w, double *b)
{
    double *g = malloc((size_t)m * m * sizeof *g);
    float *xs = calloc((size_t)m * dim + 1, sizeof *xs);
    double *wb = malloc(((size_t)m * 2 + 2) * sizeof *wb);
    double *alpha = malloc((size_t)m * sizeof *alpha);
    int *y = malloc((size_t)m * sizeof *y);
    eng_status st = ENG_OK;
    if (!g || !xs || !wb || !alpha || !y) {
        st = eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
        goto done;
    }
    for (int i = 0; i < m; i++)
        memcpy(xs + (size_t)i * dim, x + (size_t)rows[i] * dim, (size_t)dim * sizeof *xs);
    cls_gram(xs, m, dim, dim, g, t->threads);
    double tr = 0;
    for (int i = 0; i < m; i++)
        tr += g[(size_t)i * m + i];
    if (cls_cholesky(g, m, 1e-6 * tr / m + 1e-12) != 0) {
        st = eng_fail(t->d, ENG_ENOMEM, "training: the features are degenerate");
        goto done;
    }
    for (int k = 0; k < t->K && st == ENG_OK; k++) {
        int npos = 0;
        for (int i = 0; i < m; i++) {
            y[i] = t->Y[(size_t)rows[i] * t->K + k] != 0;
            npos += y[i];
        }
        for (int h = 0; h < ML_NC && st == ENG_OK; h++) {
            double *wk = w + ((size_t)h * t->K + k) * dim;
            double *bk = b + (size_t)h * t->K + k;
            memset(wk, 0, (size_t)dim * sizeof *wk);
            if (npos == 0 || npos == m) {
                *bk = npos ? 20 : -20;
                continue;
            }
            memset(wb, 0, ((size_t)m * 2 + 2) * sizeof *wb);
            int it = cls_logreg_fit(g, m, m, y, 2, 1.0 / (ML_C[h] * m), wb, 400, 1e-6, ml_abort,
                                    (void *)t);
            if (it == -2) {
                st = eng_fail(t->d, ENG_EABORTED, "training cancelled");
                break;
            }
            if (it < 0) {
                st = eng_fail(t->d, ENG_EDIVERGED,
                              "training: tag \"%s\": the logistic regression stopped being "
                              "finite",
                              t->a->categories[k]);
                break;
            }
            /* log-odds of class 1: L (W1 - W0) + b1 - b0; back to features:
             * w = Xs^T alpha with L^T alpha = W1 - W0 */
            for (int i = 0; i < m; i++)
                alpha[i] = wb[(size_t)i * 2 + 1] - wb[(size_t)i * 2];
            cls_solve_lt(g, m, alpha, 1);
            for (int i = 0; i < m; i++) {
                const float *xi = xs + (size_t)i * dim;
                for (int j = 0; j < dim; j++)
                    wk[j] += alpha[i] * xi[j];
            }
            *bk = wb[(size_t)m * 2 + 1] - wb[(size_t)m * 2];
        }
    }
done:
    free(g);
    free(xs);
    free(wb);
    free(alpha);
    free(y);
    return st;
}

/* Cross-validated scores oof (ML_NC x n x K) of features x (n x dim). */
static eng_status cross_validate(const mltrain *t, const float *x, int dim, const int *fold,
                                 int nfolds, float *oof)
{
    int *rows = malloc((size_t)t->n * sizeof *rows);
    double *w = malloc((size_t)ML_NC * t->K * dim * sizeof *w);
    double *b = malloc((size_t)ML_NC * t->K * sizeof *b);
    eng_status st = rows && w && b ? ENG_OK : eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
    for (int f = 0; f < nfolds && st == ENG_OK; f++) {
        int m = 0;
        for (int i = 0; i < t->n; i++)
            if (fold[i] != f)
                rows[m++] = i;
        st = fit_heads(t, x, dim, rows, m, w, b);
        for (int i = 0; st == ENG_OK && i < t->n; i++) {
            if (fold[i] != f)
                continue;
            const float *xi = x + (size_t)i * dim;
            for (int h = 0; h < ML_NC; h++)
                for (int k = 0; k < t->K; k++) {
                    const double *wk = w + ((size_t)h * t->K + k) * dim;
                    double z = b[(size_t)h * t->K + k];
                    for (int j = 0; j < dim; j++)
                        z += wk[j] * xi[j];
                    oof[((size_t)h * t->n + i) * t->K + k] = sigmoid(z);
                }
        }
    }
    free(rows);
    free(w);
    free(b);
    return st;
}

static double mean_log_loss(const float *p, const uint8_t *Y, size_t nk)
{
    double s = 0;
    for (size_t i = 0; i < nk; i++) {
        double q = Y[i] ? p[i] : 1.0 - p[i];
        s -= log(q > 1e-7 ? q : 1e-7);
    }
    return s / (double)nk;
}

static double mean_ap(const float *p, const uint8_t *Y, const float *thr, int n, int K)
{
    eng_ml_metrics met;
    eng_diag d;
    if (eng_ml_metrics_compute(p, Y, thr, n, K, &met, &d) != ENG_OK)
        return -1;
    double v = met.map;
    eng_ml_metrics_release(&met);
    return v;
}

/* The search's winner. */
typedef struct ml_best {
    int bb;
    float power;
    int h;
    double loss;
    float *oof; /* n x K */
} ml_best;

static eng_status check_args(const eng_train_args *a, uint8_t *Y, eng_diag *d)
{
    for (int i = 0; i < a->ntrain; i++)
        tags_of(&a->train[i], a->ncat, Y + (size_t)i * a->ncat);
    for (int k = 0; k < a->ncat; k++) {
        int npos = 0;
        for (int i = 0; i < a->ntrain; i++)
            npos += Y[(size_t)i * a->ncat + k];
        if (npos == 0)
            return eng_fail(d, ENG_EINVAL,
                            "training: tag \"%s\" has no training image; tag some images with "
                            "it or remove it",
                            a->categories[k]);
        if (npos == a->ntrain)
            return eng_fail(d, ENG_EINVAL,
                            "training: every training image has tag \"%s\"; add images without "
                            "it or remove it",
                            a->categories[k]);
    }
    return ENG_OK;
}

/* The model of the winner: one view (backbone bb, its input size, the
 * embedding) refit on every training image. x: its prepared features. */
static eng_status build_model(const mltrain *t, const ml_best *best, const float *x, int dim,
                              const float *mean, eng_multilabel **out)
{
    const eng_train_args *a = t->a;
    const eng_backbone *bb = a->backbones[best->bb];
    const eng_backbone_info *inf = eng_backbone_get_info(bb);
    int *rows = malloc((size_t)t->n * sizeof *rows);
    double *w = malloc((size_t)ML_NC * t->K * dim * sizeof *w);
    double *b = malloc((size_t)ML_NC * t->K * sizeof *b);
    eng_multilabel *m = calloc(1, sizeof *m);
    eng_classifier *c = m ? calloc(1, sizeof *c) : NULL;
    eng_status st = ENG_ENOMEM;
    if (!rows || !w || !b || !c)
        goto done;
    m->c = c;
    c->ncat = t->K;
    c->cats = calloc((size_t)t->K, sizeof *c->cats);
    c->nbb = 1;
    c->bb_name = calloc(1, sizeof *c->bb_name);
    c->bb_checksum = calloc(1, sizeof *c->bb_checksum);
    c->nviews = 1;
    c->views = calloc(1, sizeof *c->views);
    c->w = malloc((size_t)dim * t->K * sizeof *c->w);
    c->b = malloc((size_t)t->K * sizeof *c->b);
    m->thr = malloc((size_t)t->K * sizeof *m->thr);
    if (!c->cats || !c->bb_name || !c->bb_checksum || !c->views || !c->w || !c->b || !m->thr)
        goto done;
    for (int k = 0; k < t->K; k++)
        if (!(c->cats[k] = strdup(a->categories[k])))
            goto done;
    c->bb_name[0] = strdup(inf->name);
    c->bb_checksum[0] = strdup(inf->checksum);
    c->views[0] = (cls_view){.bb = 0,
                             .size = inf->input_w,
                             .tap = strdup(inf->embedding),
                             .dim = dim,
                             .offset = 0,
                             .mean = malloc((size_t)dim * sizeof(float)),
                             .power = best->power};
    c->view_weight = 1.0f;
    c->dim = dim;
    char recipe[512];
    snprintf(recipe, sizeof recipe,
             "{\"head\":\"one-vs-rest logistic regression\",\"C\":%g,\"views\":[{\"backbone\":"
             "\"%s\",\"size\":%d,\"tap\":\"embedding\"}],\"featurePower\":%g,\"cvLogLoss\":%.4f,"
             "\"thresholds\":\"per tag, best F1 on cross-validated scores\"}",
             ML_C[best->h], inf->name, inf->input_w, best->power, best->loss);
    c->recipe = strdup(recipe);
    if (!c->bb_name[0] || !c->bb_checksum[0] || !c->views[0].tap || !c->views[0].mean || !c->recipe)
        goto done;
    memcpy(c->views[0].mean, mean, (size_t)dim * sizeof(float));
    for (int i = 0; i < t->n; i++)
        rows[i] = i;
    st = fit_heads(t, x, dim, rows, t->n, w, b);
    if (st != ENG_OK)
        goto done;
    for (int k = 0; k < t->K; k++) {
        const double *wk = w + ((size_t)best->h * t->K + k) * dim;
        for (int j = 0; j < dim; j++)
            c->w[(size_t)j * t->K + k] = (float)wk[j];
        c->b[k] = (float)b[(size_t)best->h * t->K + k];
    }
    /* thresholds: each tag's best F1 on the winner's cross-validated scores */
    uint8_t *col = malloc((size_t)t->n);
    if (!col) {
        st = ENG_ENOMEM;
        goto done;
    }
    for (int k = 0; k < t->K; k++) {
        for (int i = 0; i < t->n; i++)
            col[i] = t->Y[(size_t)i * t->K + k];
        m->thr[k] = eng_ml_best_threshold(best->oof + k, t->K, col, t->n);
    }
    free(col);
    st = ENG_OK;
done:
    if (st == ENG_ENOMEM)
        eng_fail(t->d, st, "training: out of memory");
    if (st != ENG_OK)
        eng_ml_free(m);
    else
        *out = m;
    free(rows);
    free(w);
    free(b);
    return st;
}

/* Folds: images shuffled by seed, then dealt round-robin. */
static int make_folds(const mltrain *t, int *fold)
{
    int nf = t->n < ML_FOLDS ? t->n : ML_FOLDS;
    int *perm = malloc((size_t)t->n * sizeof *perm);
    if (!perm)
        return -1;
    for (int i = 0; i < t->n; i++)
        perm[i] = i;
    uint64_t s = t->a->seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = t->n - 1; i > 0; i--) {
        s = cls_mix(s);
        int j = (int)(s % (uint64_t)(i + 1));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int i = 0; i < t->n; i++)
        fold[perm[i]] = i % nf;
    free(perm);
    return nf;
}

/* Scores of the test images through the model's own path (through the
 * feature cache when there is one), or from the Slurm workers (hooks.probs,
 * which run eng_ml_probs: the same path). */
static eng_status test_scores(const mltrain *t, const eng_multilabel *m, float *scores)
{
    const eng_train_args *a = t->a;
    if (a->hooks.probs) {
        const char **tp = malloc((size_t)a->ntest * sizeof *tp);
        if (!tp)
            return eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
        for (int i = 0; i < a->ntest; i++)
            tp[i] = a->test[i].path;
        eng_status hs = ENG_OK;
        int rc =
            a->hooks.probs(a->hooks.ctx, m, tp, a->ntest, a->cache_dir != NULL, scores, &hs, t->d);
        free(tp);
        if (rc < 0)
            return hs != ENG_OK ? hs : eng_fail(t->d, ENG_EIO, "training: failed elsewhere");
        if (rc == 0) {
            mlog(t, "test scores: %d images (from the Slurm workers)", a->ntest);
            return ENG_OK;
        }
    }
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m->c, a->backbones, a->nbackbones, rb, t->d);
    const char **paths = malloc((size_t)a->ntest * sizeof *paths);
    char **hash = a->cache_dir ? calloc((size_t)a->ntest, sizeof *hash) : NULL;
    float *feat = malloc((size_t)a->ntest * m->c->dim * sizeof *feat);
    if (st == ENG_OK && (!paths || !feat || (a->cache_dir && !hash)))
        st = eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
    for (int i = 0; st == ENG_OK && i < a->ntest; i++) {
        paths[i] = a->test[i].path;
        if (hash && !(hash[i] = malloc(33)))
            st = eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
        if (st == ENG_OK && hash)
            st = eng_hash_file(paths[i], hash[i], t->d);
    }
    eng_run_opts o = {.threads = t->threads, .abort = ml_abort, .abort_ctx = (void *)t};
    if (st == ENG_OK)
        st = ml_model_scores(m, rb, paths, hash, a->ntest, a->cache_dir, &o, feat, scores, t->d);
    for (int i = 0; hash && i < a->ntest; i++)
        free(hash[i]);
    free(hash);
    free(paths);
    free(feat);
    return st;
}

static eng_status search(mltrain *t, ml_best *best, float **bestx, float **bestmean, int *bestdim)
{
    const eng_train_args *a = t->a;
    int *fold = malloc((size_t)t->n * sizeof *fold);
    int nf = fold ? make_folds(t, fold) : -1;
    if (nf < 0) {
        free(fold);
        return eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
    }
    float *oof = malloc((size_t)ML_NC * t->n * t->K * sizeof *oof);
    float *thr = malloc((size_t)t->K * sizeof *thr);
    eng_status st = oof && thr ? ENG_OK : eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
    int ntrials = a->nbackbones * ML_NPOW * ML_NC, trial = 0;
    best->loss = INFINITY;
    double best_ap = -1;
    for (int bi = 0; bi < a->nbackbones && st == ENG_OK; bi++) {
        const eng_backbone_info *inf = eng_backbone_get_info(a->backbones[bi]);
        if (!inf->embedding || inf->embedding_dim <= 0)
            continue;
        /* a second backbone only while the budget has room for it */
        if (bi > 0 && cpu_used(t) > 0.4 * a->budget_seconds) {
            mlog(t, "backbone %s not tried: %.0f of %.0f CPU seconds used", inf->name, cpu_used(t),
                 a->budget_seconds);
            continue;
        }
        progress(t, "features", 0.1 + 0.6 * bi / a->nbackbones, trial, ntrials, best_ap);
        float *raw = NULL;
        int dim = 0;
        st = embeddings(t, a->backbones[bi], &raw, &dim);
        if (st != ENG_OK)
            break;
        for (int p = 0; p < ML_NPOW && st == ENG_OK; p++) {
            float *x = malloc((size_t)t->n * dim * sizeof *x);
            float *mean = malloc((size_t)dim * sizeof *mean);
            if (!x || !mean) {
                free(x);
                free(mean);
                st = eng_fail(t->d, ENG_ENOMEM, "training: out of memory");
                break;
            }
            memcpy(x, raw, (size_t)t->n * dim * sizeof *x);
            prepare(x, t->n, dim, ML_POW[p], mean);
            st = cross_validate(t, x, dim, fold, nf, oof);
            int improved = 0;
            for (int h = 0; st == ENG_OK && h < ML_NC; h++) {
                const float *o = oof + (size_t)h * t->n * t->K;
                double loss = mean_log_loss(o, t->Y, (size_t)t->n * t->K);
                for (int k = 0; k < t->K; k++)
                    thr[k] = 0.5f;
                double ap = mean_ap(o, t->Y, thr, t->n, t->K);
                trial++;
                mlog(t,
                     "trial %d/%d: %s, power %g, C=%g: cross-validated log-loss %.4f, mean AP "
                     "%.4f",
                     trial, ntrials, inf->name, ML_POW[p], ML_C[h], loss, ap);
                if (loss < best->loss) {
                    best->loss = loss;
                    best->bb = bi;
                    best->power = ML_POW[p];
                    best->h = h;
                    memcpy(best->oof, o, (size_t)t->n * t->K * sizeof *o);
                    best_ap = ap;
                    improved = 1;
                }
            }
            if (improved) {
                free(*bestx);
                free(*bestmean);
                *bestx = x;
                *bestmean = mean;
                *bestdim = dim;
            } else {
                free(x);
                free(mean);
            }
            progress(t, "search", 0.1 + 0.6 * (bi + (p + 1.0) / ML_NPOW) / a->nbackbones, trial,
                     ntrials, best_ap);
        }
        free(raw);
    }
    if (st == ENG_OK && !*bestx)
        st = eng_fail(t->d, ENG_EINVAL, "training: no backbone has an embedding to classify with");
    free(fold);
    free(oof);
    free(thr);
    return st;
}

eng_status eng_ml_train(const eng_train_args *a, eng_multilabel **out, char **evaluation_json,
                        eng_diag *d)
{
    *out = NULL;
    *evaluation_json = NULL;
    if (a->ncat < 1)
        return eng_fail(d, ENG_EINVAL, "training: no tags");
    if (a->ntrain < 2)
        return eng_fail(d, ENG_EINVAL, "training: need at least 2 images, got %d", a->ntrain);
    if (a->nbackbones < 1 || !a->backbones)
        return eng_fail(d, ENG_EINVAL, "training: no backbone available");
    mltrain t = {.a = a,
                 .d = d,
                 .n = a->ntrain,
                 .K = a->ncat,
                 .threads = a->threads > 0 ? a->threads : 1,
                 .cpu0 = clock()};
    ml_best best = {0};
    float *x = NULL, *mean = NULL, *tscores = NULL;
    uint8_t *ttruth = NULL;
    int dim = 0;
    eng_multilabel *m = NULL;
    t.Y = calloc((size_t)t.n * t.K, 1);
    t.paths = malloc((size_t)t.n * sizeof *t.paths);
    best.oof = malloc((size_t)t.n * t.K * sizeof *best.oof);
    eng_status st = t.Y && t.paths && best.oof ? check_args(a, t.Y, d)
                                               : eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int i = 0; st == ENG_OK && i < t.n; i++)
        t.paths[i] = a->train[i].path;
    if (st == ENG_OK && a->cache_dir) {
        t.hash = calloc((size_t)t.n, sizeof *t.hash);
        for (int i = 0; st == ENG_OK && i < t.n; i++) {
            if (!t.hash || !(t.hash[i] = malloc(33)))
                st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
            else
                st = eng_hash_file(t.paths[i], t.hash[i], d);
        }
    }
    if (st == ENG_OK) {
        mlog(&t, "training on %d images, %d tags; %s; budget %.1f CPU minutes, %d thread(s)", t.n,
             t.K, a->ntest ? "a test set" : "no test set: cross-validated scores are reported",
             a->budget_seconds / 60, t.threads);
        st = search(&t, &best, &x, &mean, &dim);
    }
    if (st == ENG_OK) {
        progress(&t, "final", 0.8, 0, 0, -1);
        st = build_model(&t, &best, x, dim, mean, &m);
    }
    if (st == ENG_OK) {
        progress(&t, "evaluation", 0.9, 0, 0, -1);
        const eng_sample *es = a->ntest ? a->test : a->train;
        int en = a->ntest ? a->ntest : t.n;
        tscores = malloc((size_t)en * t.K * sizeof *tscores);
        ttruth = malloc((size_t)en * t.K);
        if (!tscores || !ttruth)
            st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        else if (a->ntest)
            st = test_scores(&t, m, tscores);
        else
            memcpy(tscores, best.oof, (size_t)en * t.K * sizeof *tscores);
        for (int i = 0; st == ENG_OK && i < en; i++)
            tags_of(&es[i], t.K, ttruth + (size_t)i * t.K);
        eng_eval_extra ex = {a->ntest ? (a->test_name ? a->test_name : "test")
                                      : "held-out split (cross-validation)",
                             en, cpu_used(&t) / 60, "converged"};
        eng_eval_opts eo = {.detail = a->hooks.detail, .detail_ctx = a->hooks.ctx};
        if (st == ENG_OK)
            st = ml_report(m, es, en, tscores, ttruth, &ex, &eo, evaluation_json, NULL, d);
    }
    if (st == ENG_OK) {
        mlog(&t, "done: %s", eng_ml_recipe(m));
        *out = m;
    } else {
        eng_ml_free(m);
    }
    for (int i = 0; t.hash && i < t.n; i++)
        free(t.hash[i]);
    free(t.hash);
    free(t.Y);
    free(t.paths);
    free(best.oof);
    free(x);
    free(mean);
    free(tscores);
    free(ttruth);
    return st;
}

/* ---- model file ---- */

eng_status eng_ml_export_onnx(const eng_multilabel *m, eng_backbone *const *bbs, int nbb,
                              const char *producer_version, uint8_t **out, size_t *len, eng_diag *d)
{
    return cls_export_onnx(m->c, m->thr, bbs, nbb, producer_version, out, len, d);
}

eng_status eng_ml_save(const eng_multilabel *m, const char *path, eng_diag *d)
{
    const char *names[] = {"head.threshold"};
    eng_tensor t = {ENG_F32, 1, {m->c->ncat}, m->thr};
    return cls_save_as(m->c, "multilabel", names, &t, 1, path, d);
}

eng_status eng_ml_from_file(const eng_modelfile *f, eng_multilabel **out, eng_diag *d)
{
    *out = NULL;
    eng_multilabel *m = calloc(1, sizeof *m);
    if (!m)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    eng_status st = cls_from_file_as(f, "multilabel", &m->c, d);
    const eng_tensor *t = NULL;
    if (st == ENG_OK) {
        int64_t dim[1] = {m->c->ncat};
        st = eng_modelfile_expect(f, "head.threshold", 1, dim, &t, d);
    }
    if (st == ENG_OK && !(m->thr = malloc((size_t)m->c->ncat * sizeof *m->thr)))
        st = eng_fail(d, ENG_ENOMEM, "model: out of memory");
    if (st == ENG_OK)
        memcpy(m->thr, t->data, (size_t)m->c->ncat * sizeof *m->thr);
    if (st == ENG_OK && m->c->ft)
        st = eng_fail(d, ENG_EFORMAT, "model file: a multilabel model has no fine-tuned tail");
    if (st != ENG_OK) {
        eng_ml_free(m);
        return st;
    }
    *out = m;
    return ENG_OK;
}
