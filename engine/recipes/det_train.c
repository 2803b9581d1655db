/* det_train.c: training a detector: features once per image, then a small
 * search over head variants picked by held-out mAP@50, then the final fit.
 *
 * Design: the backbone runs once per image (det_features, cached as float16
 * on disk and kept in memory); every training step widens a few images'
 * features (mirrored for flip augmentation, with the boxes mirrored to
 * match), applies the frozen pretrained depthwise filters outside the tape
 * and records only the 1x1 heads on the tape, so a step costs two
 * depthwise passes per image and the heads train in seconds. The heatmap
 * learns from CenterNet's focal loss on elliptical Gaussians (TTFNet's
 * alpha 0.54); the box head, when fine-tuned, from GIoU on the cells near
 * each box centre weighted by the Gaussian, the smaller box winning a cell.
 * Variants: a linear heatmap head and one with a hidden layer of 64, each
 * scored on held-out images with NMS off and at 0.5 (NMS is kept unless
 * turning it off wins by more than DET_NMS_MARGIN). In both the box head is
 * fine-tuned when the pretrained one fits the training boxes poorly (mean
 * IoU at the box centres below DET_FIT_MIN) and kept otherwise. Then, when
 * the budget allows, the better of the two trained on the whole images and
 * their 2 x 2 tiles (small objects at twice the scale, at most
 * DET_TILE_MAX_STEPS steps), scored predicting from the tiles and the
 * whole image and from the tiles alone. A quarter of the images (rounded
 * up) is held out when there are at least five; with fewer (or no budget
 * left for the search) the hidden-layer heatmap is taken when the box head
 * is fine-tuned, the linear one otherwise, NMS at 0.5, and (with fewer than
 * five) trained on the tiles too when the objects are small, with the
 * box-size prior when each category's boxes keep their size. Every fold's
 * fit is also scored with the box-size prior at two weights. The CPU budget:
 * feature extraction must fit in it (else notEnoughBudget), the search
 * stops early when the rest would not fit, and each fit runs only the steps
 * its first steps' cost says fit before its deadline.
 */
#include "budget_int.h"
#include "det_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DET_ALPHA 0.54f
#define DET_PRIOR_BIAS -2.19f
#define DET_REG_MIN 0.3f /* Gaussian value above which a cell regresses its box */
#define DET_MAX_BATCH 4
#define DET_MEM_CAP ((size_t)1200 << 20) /* features kept in memory */
#define DET_MAP_CAP ((size_t)800 << 20)  /* depthwise maps kept in memory */
#define DET_NEG_RATE 0.125f              /* share of the cells far from objects a step samples */
#define DET_BOX_WEIGHT 2.0f
/* a whole-image fit's steps at most: the cap binds only on large sets
 * (blood-cells, 292 images: 1,500 -> 4,000 raised test mAP@50 from 0.5434
 * and 0.5370 to 0.6243 and 0.6229 on seeds 0 and 1 for 0.7-0.9 CPU min
 * more; raccoon's 160: 0.8990 -> 0.8991; 10 shots and fewer never reach it) */
#define DET_MAX_STEPS 4000
#define DET_TILE_MAX_STEPS 750 /* steps of a tiled fit at most */
#define DET_FIT_MIN 0.65f      /* pretrained box fit (mean IoU) below which it is fine-tuned */
#define DET_NEAR 0.1f          /* cells whose target reaches this are always in a step */
#define DET_MIN_STEPS 20       /* a fit cut by the budget still runs this many steps */
#define DET_PLAN_STEPS 16      /* steps after the first whose cost first re-plans a fit */
#define DET_SEARCH_SHARE 0.6   /* share of the budget the search may use */
#define DET_FOLDS 4            /* cross-validation folds of the search (fewer below 8 images) */
/* A further variant is tried only when it and the final fit, estimated from
 * the last variant's cost, would end within this share of the budget: the
 * rest is kept for evaluating the test images and for the estimate being
 * off (each search fit is also cut to end by DET_SEARCH_SHARE). */
#define DET_SEARCH_END 0.7

/* A view of a training image: the whole image (views 0 .. n-1, view i of
 * image i) or one of its tiles (view n + DET_TILES^2 i + k of tile k). */
typedef struct det_img {
    int src;    /* the training image */
    int tile;   /* -1: the whole image */
    int w, h;   /* image pixels (display) */
    float *box; /* nbox x 4: x1, y1, x2, y2 in input (512) pixels */
    int *cat;
    int nbox;
    uint16_t *feat;              /* NULL: read back from the cache */
    uint16_t *gmap[2], *hmap[2]; /* depthwise maps (heatmap, box) unflipped/flipped, or NULL */
} det_img;

typedef struct reg_cell {
    int cell;
    float w;
    float ltrb[4];
} reg_cell;

typedef struct variant {
    const char *name;
    int finetune_wh;
    int hidden;
    float lr;
    int epochs;
    int tiles; /* 0: trained on the whole images; DET_TILES: on their tiles too */
    int whole; /* with tiles: the whole image is a view at prediction too */
} variant;

/* The steps a fit of v over n views plans (fit() and fit_rng_skip()): its
 * epochs in batches, at least 60; a tiled fit (5 views per image) stops at
 * DET_TILE_MAX_STEPS: at DET_MAX_STEPS it cost 5x the CPU of an untiled fit
 * at k = 10, and fewer steps per view (twice the untiled fit's) lost most
 * of its gain. */
static int fit_steps(const variant *v, int n)
{
    int B = n < DET_MAX_BATCH ? n : DET_MAX_BATCH;
    int steps = (v->epochs * n + B - 1) / B, cap = v->tiles ? DET_TILE_MAX_STEPS : DET_MAX_STEPS;
    return steps < 60 ? 60 : steps > cap ? cap : steps;
}

typedef struct trainer {
    const eng_train_args *a;
    eng_backbone *bb;
    const char *node;
    int fdim, ncat;
    float *dw_cls, *dw_wh, *ww0, *bw0;
    float wh_scale;
    det_img *im; /* views: n whole images, then (tiles_ready) their tiles */
    int n;
    int nv;          /* views set up in im */
    int tiles_ready; /* the tile views have features and boxes */
    int *vidx;       /* a fit's views (n x DET_MAX_VIEWS) */
    size_t kept;     /* bytes of features kept in memory */
    double cpu0;
    eng_rng rng;
    /* step state */
    const int *idx;
    int nidx;
    int *order;
    int pos;
    int finetune_wh;
    det_scratch s;
    eng_tensor *gbatch, *hsel;
    float *target, *ltrb, *wgt;
    float *heat1, *roww, *seed; /* one image's heatmap target; row weights; logit gradient */
    size_t map_bytes;           /* depthwise maps kept */
    /* a worker's fit (eng_det_fit_run): the map slots (4 per view: 2 *
     * which + flip) the daemon's own run would hold as float16 already,
     * which it keeps so whatever map_bytes says; NULL in the daemon */
    unsigned char *map_held;
    /* the daemon with hooks.detfit: the map slots and bytes its own fits
     * would hold by now (fit_rng_skip keeps them); NULL until then */
    unsigned char *sim_held;
    size_t sim_bytes;
    int maxsel;
    uint16_t *tmpfeat;
    int *owner;
    float *wmap;
    reg_cell *rc;
    eng_param *p[6]; /* heatmap w, b, box w, b, hidden w, b */
    int hidden;
    int letterbox;
    int threads;
    double deadline;               /* > 0: CPU seconds (since cpu0) a fit must end by */
    int steps_done, steps_planned; /* of the last fit */
} trainer;

static double cpu_now(void) { return budget_cpu_now(); }

static void logf_(const trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const trainer *t, const char *fmt, ...)
{
    if (!t->a->hooks.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    t->a->hooks.log(t->a->hooks.ctx, line);
}

static void progress(const trainer *t, double frac, const char *stage, int trial, int ntrials,
                     double best)
{
    if (!t->a->hooks.progress)
        return;
    eng_train_progress p = {
        .fraction = frac,
        .trial = trial,
        .ntrials = ntrials,
        .best_metric = "meanAveragePrecision50",
        .best_value = best,
        .cpu_seconds = cpu_now() - t->cpu0,
        .budget_seconds = t->a->budget_seconds,
        .stage = stage,
    };
    t->a->hooks.progress(t->a->hooks.ctx, &p);
}

static int aborted(const trainer *t)
{
    return t->a->hooks.abort && t->a->hooks.abort(t->a->hooks.ctx);
}

static int abort_cb(void *ctx) { return aborted(ctx); }

/* Features of training image i (borrowed; buffer t->tmpfeat when not in memory). */
static const uint16_t *feat_of(trainer *t, int i, eng_diag *d)
{
    if (t->im[i].feat)
        return t->im[i].feat;
    int w, h;
    if (det_features(t->bb, t->node, t->fdim, t->letterbox, t->im[i].tile,
                     t->a->train[t->im[i].src].path, t->a->cache_dir, t->threads, t->tmpfeat, &w,
                     &h, NULL, d) != ENG_OK)
        return NULL;
    return t->tmpfeat;
}

/* ---- targets ---- */

/* Heatmap target of image i (flipped when flip) into heat [DET_CELLS, ncat]. */
static void heat_target(const trainer *t, const det_img *im, int flip, float *heat)
{
    memset(heat, 0, (size_t)DET_CELLS * t->ncat * sizeof *heat);
    for (int b = 0; b < im->nbox; b++) {
        const float *x = im->box + 4 * b;
        float x1 = x[0], x2 = x[2];
        if (flip) {
            x1 = (DET_SIZE - DET_STRIDE) - x[2];
            x2 = (DET_SIZE - DET_STRIDE) - x[0];
        }
        eng_det_gaussian(heat, DET_GRID, DET_GRID, t->ncat, im->cat[b], DET_STRIDE, x1, x[1], x2,
                         x[3], DET_ALPHA);
    }
}

/* Cells that regress a box, for image im (flipped when flip). Returns the
 * count written to out (at most cap). */
static int reg_cells(const det_img *im, int flip, reg_cell *out, int cap, int *owner, float *wmap)
{
    /* larger boxes first so smaller ones win shared cells */
    int n = 0;
    for (int i = 0; i < DET_CELLS; i++) {
        owner[i] = -1;
        wmap[i] = 0;
    }
    int *ord = malloc((size_t)(im->nbox + 1) * sizeof *ord);
    if (!ord)
        return 0;
    for (int b = 0; b < im->nbox; b++)
        ord[b] = b;
    for (int i = 1; i < im->nbox; i++) { /* insertion sort by area, descending */
        int k = ord[i], j = i - 1;
        const float *bk = im->box + 4 * k;
        float ak = (bk[2] - bk[0]) * (bk[3] - bk[1]);
        while (j >= 0) {
            const float *bj = im->box + 4 * ord[j];
            if ((bj[2] - bj[0]) * (bj[3] - bj[1]) >= ak)
                break;
            ord[j + 1] = ord[j];
            j--;
        }
        ord[j + 1] = k;
    }
    for (int q = 0; q < im->nbox; q++) {
        int b = ord[q];
        const float *x = im->box + 4 * b;
        float x1 = x[0], x2 = x[2], y1 = x[1], y2 = x[3];
        if (flip) {
            x1 = (DET_SIZE - DET_STRIDE) - x[2];
            x2 = (DET_SIZE - DET_STRIDE) - x[0];
        }
        float w = (x2 - x1) / DET_STRIDE, h = (y2 - y1) / DET_STRIDE;
        if (!(w > 0) || !(h > 0))
            continue;
        int cx = (int)lrintf((x1 + x2) * 0.5f / DET_STRIDE);
        int cy = (int)lrintf((y1 + y2) * 0.5f / DET_STRIDE);
        cx = cx < 0 ? 0 : cx >= DET_GRID ? DET_GRID - 1 : cx;
        cy = cy < 0 ? 0 : cy >= DET_GRID ? DET_GRID - 1 : cy;
        float sx = fmaxf(DET_ALPHA * w / 6, 0.25f), sy = fmaxf(DET_ALPHA * h / 6, 0.25f);
        int rx = (int)ceilf(3 * sx), ry = (int)ceilf(3 * sy);
        for (int y = cy - ry; y <= cy + ry; y++)
            for (int xx = cx - rx; xx <= cx + rx; xx++) {
                if (y < 0 || y >= DET_GRID || xx < 0 || xx >= DET_GRID)
                    continue;
                float px = (float)(DET_STRIDE * xx), py = (float)(DET_STRIDE * y);
                int centre = xx == cx && y == cy;
                if (!centre && (px <= x1 || px >= x2 || py <= y1 || py >= y2))
                    continue;
                float dx = (float)(xx - cx), dy = (float)(y - cy);
                float g =
                    centre ? 1.0f : expf(-(dx * dx) / (2 * sx * sx) - (dy * dy) / (2 * sy * sy));
                if (g < DET_REG_MIN)
                    continue;
                int c = y * DET_GRID + xx;
                owner[c] = b;
                wmap[c] = g;
            }
    }
    free(ord);
    for (int c = 0; c < DET_CELLS && n < cap; c++) {
        if (owner[c] < 0)
            continue;
        const float *x = im->box + 4 * owner[c];
        float x1 = x[0], x2 = x[2];
        if (flip) {
            x1 = (DET_SIZE - DET_STRIDE) - x[2];
            x2 = (DET_SIZE - DET_STRIDE) - x[0];
        }
        float px = (float)(DET_STRIDE * (c % DET_GRID)), py = (float)(DET_STRIDE * (c / DET_GRID));
        out[n].cell = c;
        out[n].w = wmap[c];
        out[n].ltrb[0] = px - x1;
        out[n].ltrb[1] = py - x[1];
        out[n].ltrb[2] = x2 - px;
        out[n].ltrb[3] = x[3] - py;
        n++;
    }
    return n;
}

/* ---- one training run ---- */

/* A depthwise map of one image: float16 kept in memory, or float32 in t->s.g. */
typedef struct map_ref {
    const uint16_t *h;
    const float *f;
} map_ref;

/* The depthwise map (which 0: heatmap filter, 1: box filter) of training
 * image i, mirrored when flip. Kept as float16 while memory allows. */
static eng_status dw_map(trainer *t, int i, int flip, int which, map_ref *out, eng_diag *d)
{
    det_img *im = &t->im[i];
    uint16_t **slot = which ? &im->hmap[flip] : &im->gmap[flip];
    size_t per = (size_t)DET_CELLS * t->fdim;
    out->h = NULL;
    out->f = NULL;
    if (*slot) {
        out->h = *slot;
        return ENG_OK;
    }
    const uint16_t *f = feat_of(t, i, d);
    if (!f)
        return ENG_EIO;
    det_widen(f, t->fdim, flip, t->s.f);
    det_depthwise(&t->s, t->fdim, which ? t->dw_wh : t->dw_cls, 1);
    int held = t->map_held && t->map_held[4 * i + 2 * which + flip];
    if ((held || t->map_bytes + per * 2 <= DET_MAP_CAP) && (*slot = eng_alloc(per * 2)) != NULL) {
        det_f32_to_f16(t->s.g, *slot, per);
        if (!held)
            t->map_bytes += per * 2;
        out->h = *slot; /* train on what later steps will see */
        return ENG_OK;
    }
    out->f = t->s.g;
    return ENG_OK;
}

static void map_row(const map_ref *m, int fdim, int cell, float *dst)
{
    if (m->h)
        det_f16_to_f32(m->h + (size_t)cell * fdim, dst, (size_t)fdim);
    else
        memcpy(dst, m->f + (size_t)cell * fdim, (size_t)fdim * sizeof *dst);
}

static float softplus(float x) { return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

/* Weighted CenterNet focal loss (alpha 2, beta 4) of logits [rows, ncat]
 * against target: returns the loss and writes d(loss)/d(logit) to grad.
 * Row r counts w[r] times; the sum is divided by npos. */
static double focal(const float *logit, const float *target, const float *w, int rows, int ncat,
                    float npos, float *grad)
{
    double loss = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < ncat; c++) {
            size_t k = (size_t)r * ncat + c;
            float x = logit[k], y = target[k];
            float p = 1.0f / (1.0f + expf(-x));
            float lp = -softplus(-x), l1p = -softplus(x); /* log p, log(1 - p) */
            float l, g;
            if (y >= 1.0f) {
                float q = (1 - p) * (1 - p);
                l = -q * lp;
                g = q * (2 * p * lp - (1 - p));
            } else {
                float nb = (1 - y) * (1 - y);
                nb *= nb;
                float pa = p * p;
                l = -nb * pa * l1p;
                g = nb * pa * (p - 2 * (1 - p) * l1p);
            }
            loss += (double)w[r] * l;
            grad[k] = w[r] * g / npos;
        }
    return loss / npos;
}

/* One step: a batch of images, their cells (every cell near an object and
 * a weighted sample of the rest), the heads forward and backward on two
 * tapes (heatmap, box), gradients left in the params. *loss: the objective. */
static eng_status step(trainer *t, eng_tape *ta, eng_tape *tb, float *loss, eng_diag *d)
{
    int B = t->nidx < DET_MAX_BATCH ? t->nidx : DET_MAX_BATCH;
    int rows = 0, nsel = 0;
    float npos = 0;
    float *X = eng_f32(t->gbatch);
    float *heat = t->heat1;
    for (int b = 0; b < B; b++) {
        if (t->pos >= t->nidx) { /* new epoch: reshuffle */
            for (int i = t->nidx - 1; i > 0; i--) {
                int j = (int)(eng_rng_u64(&t->rng) % (uint64_t)(i + 1));
                int x = t->order[i];
                t->order[i] = t->order[j];
                t->order[j] = x;
            }
            t->pos = 0;
        }
        int i = t->idx[t->order[t->pos++]];
        int flip = (int)(eng_rng_u64(&t->rng) & 1);
        map_ref mr;
        eng_status st = dw_map(t, i, flip, 0, &mr, d);
        if (st != ENG_OK)
            return st;
        heat_target(t, &t->im[i], flip, heat);
        for (int c = 0; c < DET_CELLS; c++) {
            const float *y = heat + (size_t)c * t->ncat;
            float mx = 0;
            for (int k = 0; k < t->ncat; k++) {
                mx = y[k] > mx ? y[k] : mx;
                npos += y[k] >= 1.0f;
            }
            float w = 1;
            if (mx < DET_NEAR) {
                if (eng_rng_uniform(&t->rng) >= DET_NEG_RATE)
                    continue;
                w = 1.0f / DET_NEG_RATE;
            }
            map_row(&mr, t->fdim, c, X + (size_t)rows * t->fdim);
            memcpy(t->target + (size_t)rows * t->ncat, y, t->ncat * sizeof(float));
            t->roww[rows++] = w;
        }
        if (t->finetune_wh) {
            reg_cell *rc = t->rc;
            int k = reg_cells(&t->im[i], flip, rc, DET_CELLS, t->owner, t->wmap);
            if (k > 0) {
                if ((st = dw_map(t, i, flip, 1, &mr, d)) != ENG_OK)
                    return st;
                for (int j = 0; j < k && nsel < t->maxsel; j++, nsel++) {
                    map_row(&mr, t->fdim, rc[j].cell, eng_f32(t->hsel) + (size_t)nsel * t->fdim);
                    memcpy(t->ltrb + 4 * nsel, rc[j].ltrb, sizeof rc[j].ltrb);
                    t->wgt[nsel] = rc[j].w;
                }
            }
        }
    }
    if (npos < 1)
        npos = 1;
    eng_tape_reset(ta);
    eng_tensor g = *t->gbatch;
    g.ndim = 2;
    g.dim[0] = rows;
    g.dim[1] = t->fdim;
    eng_var *x = eng_tape_input(ta, &g);
    if (t->hidden > 0)
        x = eng_op_relu(ta, eng_op_bias(ta, eng_op_dense(ta, x, eng_tape_param(ta, t->p[4])),
                                        eng_tape_param(ta, t->p[5])));
    eng_var *logit = eng_op_bias(ta, eng_op_dense(ta, x, eng_tape_param(ta, t->p[0])),
                                 eng_tape_param(ta, t->p[1]));
    eng_status st = eng_tape_status(ta, d);
    if (st != ENG_OK)
        return st;
    double l =
        focal(eng_f32(eng_var_value(logit)), t->target, t->roww, rows, t->ncat, npos, t->seed);
    if ((st = eng_tape_backward(ta, logit, t->seed, d)) != ENG_OK)
        return st;
    if (t->finetune_wh && nsel > 0) {
        eng_tape_reset(tb);
        eng_tensor h = *t->hsel;
        h.dim[0] = nsel;
        eng_var *hx = eng_tape_input(tb, &h);
        eng_var *p = eng_op_bias(tb, eng_op_dense(tb, hx, eng_tape_param(tb, t->p[2])),
                                 eng_tape_param(tb, t->p[3]));
        p = eng_op_scale(tb, p, t->wh_scale);
        float norm = 0;
        for (int j = 0; j < nsel; j++)
            norm += t->wgt[j];
        eng_var *lg = eng_loss_giou(tb, p, t->ltrb, t->wgt, ENG_BOX_LTRB, norm > 0 ? norm : 1);
        lg = eng_op_scale(tb, lg, DET_BOX_WEIGHT);
        if ((st = eng_tape_backward(tb, lg, NULL, d)) != ENG_OK)
            return st;
        l += eng_var_scalar(lg);
    }
    *loss = (float)l;
    return ENG_OK;
}

/* Trains the heads on images idx with variant v; fills m's head weights. */
static eng_status fit(trainer *t, const int *idx, int n, const variant *v, eng_detector *m,
                      float *last_loss, eng_diag *d)
{
    if (v->tiles) { /* the images' whole views and their tiles */
        int nv = 0;
        for (int q = 0; q < n; q++) {
            t->vidx[nv++] = idx[q];
            for (int k = 0; k < DET_TILES * DET_TILES; k++)
                t->vidx[nv++] = t->n + idx[q] * DET_TILES * DET_TILES + k;
        }
        idx = t->vidx;
        n = nv;
    }
    int steps = fit_steps(v, n);
    eng_status st = ENG_OK;
    int hid = v->hidden;
    int64_t dwc[2] = {hid > 0 ? hid : t->fdim, t->ncat}, dc[1] = {t->ncat};
    int64_t dww[2] = {t->fdim, 4}, db[1] = {4};
    int64_t dh[2] = {t->fdim, hid > 0 ? hid : 1}, dhb[1] = {hid > 0 ? hid : 1};
    memset(t->p, 0, sizeof t->p);
    eng_tape *tape = NULL;
    eng_optimizer *opt = NULL;
    if ((st = eng_param_new("heatmap.weight", 2, dwc, &t->p[0], d)) != ENG_OK ||
        (st = eng_param_new("heatmap.bias", 1, dc, &t->p[1], d)) != ENG_OK ||
        (st = eng_param_new("box.weight", 2, dww, &t->p[2], d)) != ENG_OK ||
        (st = eng_param_new("box.bias", 1, db, &t->p[3], d)) != ENG_OK ||
        (st = eng_param_new("hidden.weight", 2, dh, &t->p[4], d)) != ENG_OK ||
        (st = eng_param_new("hidden.bias", 1, dhb, &t->p[5], d)) != ENG_OK)
        goto done;
    eng_rng r = t->rng;
    eng_param_init_normal(t->p[0], 0.01f, &r);
    eng_param_fill(t->p[1], DET_PRIOR_BIAS);
    eng_param_init_he(t->p[4], t->fdim, &r);
    t->p[1]->no_decay = 1;
    t->p[3]->no_decay = 1;
    t->p[5]->no_decay = 1;
    eng_param_set(t->p[2], t->ww0, (int64_t)t->fdim * 4, NULL);
    eng_param_set(t->p[3], t->bw0, 4, NULL);
    t->p[2]->frozen = t->p[3]->frozen = !v->finetune_wh;
    t->finetune_wh = v->finetune_wh;
    t->hidden = hid;
    eng_param *train_p[6] = {t->p[0], t->p[1], t->p[4], t->p[5], t->p[2], t->p[3]};
    int np = 2 + (hid > 0 ? 2 : 0);
    if (v->finetune_wh) {
        train_p[np] = t->p[2];
        train_p[np + 1] = t->p[3];
        np += 2;
    }
    eng_opt_config oc = {
        .kind = ENG_OPT_ADAMW,
        .lr = v->lr,
        .weight_decay = 1e-4f,
        .warmup_steps = steps / 10,
        .total_steps = steps,
        .min_lr_ratio = 0.05f,
        .grad_clip = 10.0f,
    };
    /* one thread: a step's ops are small, and OpenMP barriers on a busy
     * machine cost more than they save */
    if ((st = eng_tape_new(1, &tape, d)) != ENG_OK ||
        (st = eng_optimizer_new(&oc, train_p, np, &opt, d)) != ENG_OK)
        goto done;
    t->idx = idx;
    t->nidx = n;
    t->pos = n; /* shuffle first */
    for (int i = 0; i < n; i++)
        t->order[i] = i;
    eng_tape *tb = NULL;
    if ((st = eng_tape_new(1, &tb, d)) != ENG_OK)
        goto done;
    double c0 = cpu_now();
    float l = 0;
    int done_steps = 0;
    t->steps_planned = steps;
    double c1 = c0;
    for (int k = 0, k1 = 0, plan = 1; k < steps && st == ENG_OK; k++) {
        if (t->deadline > 0 && k == plan) {
            /* the first step's cost says how many fit before the deadline,
             * and the mean cost of the steps since says it again at steps
             * 1 + 16, 1 + 64, 1 + 256, ...: the first steps alone, slowed
             * by one-time costs (the features paged in) or a busy moment,
             * cut whole folds to a third on a loaded machine */
            double now = cpu_now(), left = t->deadline - (now - t->cpu0);
            double each = (now - c1) / (k - k1);
            c1 = now;
            k1 = k;
            plan = k == 1 ? 1 + DET_PLAN_STEPS : 1 + 4 * (k - 1);
            int fits = each > 0 ? k + (int)(left / each) : t->steps_planned;
            steps = fits >= t->steps_planned ? t->steps_planned
                    : fits > DET_MIN_STEPS   ? fits
                                             : DET_MIN_STEPS;
        }
        if (aborted(t)) {
            st = eng_fail(d, ENG_EABORTED, "training cancelled");
            break;
        }
        if ((st = step(t, tape, tb, &l, d)) != ENG_OK)
            break;
        if (!isfinite(l)) {
            st = eng_fail(d, ENG_EDIVERGED, "diverged: loss is %g at step %d", l, k);
            break;
        }
        st = eng_optimizer_step(opt, d);
        done_steps++;
    }
    eng_tape_free(tb);
    t->steps_done = done_steps;
    logf_(t, "variant %s: %d images, %d of %d steps, last loss %.4f, %.1f s CPU", v->name, n,
          done_steps, t->steps_planned, l, cpu_now() - c0);
    if (last_loss)
        *last_loss = l;
    if (st == ENG_OK) {
        int k = hid > 0 ? hid : t->fdim;
        float *wc = realloc(m->wc, (size_t)k * t->ncat * sizeof(float));
        float *w1 = hid > 0 ? realloc(m->w1, (size_t)t->fdim * hid * sizeof(float)) : NULL;
        float *b1 = hid > 0 ? realloc(m->b1, (size_t)hid * sizeof(float)) : NULL;
        if (wc)
            m->wc = wc;
        if (w1)
            m->w1 = w1;
        if (b1)
            m->b1 = b1;
        if (!wc || (hid > 0 && (!w1 || !b1))) {
            st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
            goto done;
        }
        if (hid <= 0) {
            free(m->w1);
            free(m->b1);
            m->w1 = m->b1 = NULL;
        }
        m->hidden = hid > 0 ? hid : 0;
        memcpy(m->wc, t->p[0]->value->data, (size_t)k * t->ncat * sizeof(float));
        memcpy(m->bc, t->p[1]->value->data, (size_t)t->ncat * sizeof(float));
        memcpy(m->ww, t->p[2]->value->data, (size_t)t->fdim * 4 * sizeof(float));
        memcpy(m->bw, t->p[3]->value->data, 4 * sizeof(float));
        if (hid > 0) {
            memcpy(m->w1, t->p[4]->value->data, (size_t)t->fdim * hid * sizeof(float));
            memcpy(m->b1, t->p[5]->value->data, (size_t)hid * sizeof(float));
        }
    }
done:
    eng_optimizer_free(opt);
    eng_tape_free(tape);
    for (int i = 0; i < 6; i++)
        eng_param_free(t->p[i]);
    memset(t->p, 0, sizeof t->p);
    return st;
}

/* Held-out detections and ground truth gathered over one or more models
 * (the folds of a cross-validation), scored together. Image ids are the
 * training images' indices. */
typedef struct det_pool {
    eng_det_gt *gt;
    int ngt;
    eng_det_pred *p[2]; /* NMS off, on */
    int np[2];
    int nimg;
} det_pool;

static void pool_release(det_pool *pl)
{
    free(pl->gt);
    free(pl->p[0]);
    free(pl->p[1]);
    memset(pl, 0, sizeof *pl);
}

/* Adds m's detections (NMS off and on) and the ground truth of training
 * images idx to pl. */
static eng_status pool_add(trainer *t, eng_detector *m, const int *idx, int n, det_pool *pl,
                           eng_diag *d)
{
    int ngt = 0;
    for (int i = 0; i < n; i++)
        ngt += t->im[idx[i]].nbox;
    eng_det_gt *gt = realloc(pl->gt, ((size_t)pl->ngt + ngt + 1) * sizeof *gt);
    if (gt)
        pl->gt = gt;
    for (int q = 0; q < 2 && gt; q++) {
        eng_det_pred *p =
            realloc(pl->p[q], ((size_t)pl->np[q] + (size_t)n * ENG_DET_TOPK + 1) * sizeof *p);
        if (!p)
            gt = NULL;
        else
            pl->p[q] = p;
    }
    float *heat = malloc((size_t)DET_CELLS * t->ncat * sizeof *heat);
    float *wh = malloc((size_t)DET_CELLS * 4 * sizeof *wh);
    int nv = det_nviews(m);
    /* per pass (NMS off, on): every view's objects, then the merged ones */
    eng_det_object *o = calloc((size_t)(2 * nv + 1) * ENG_DET_TOPK, sizeof *o);
    eng_status st = ENG_OK;
    if (!gt || !heat || !wh || !o)
        st = eng_fail(d, ENG_ENOMEM, "evaluation: out of memory");
    float nms = m->nms_iou;
    for (int q = 0; q < n && st == ENG_OK; q++) {
        int i = idx[q];
        const det_img *im = &t->im[i];
        int cnt[2] = {0, 0};
        for (int v = 0; v < nv && st == ENG_OK; v++) {
            int tile = det_view_tile(m, v);
            const uint16_t *f =
                feat_of(t, tile < 0 ? i : t->n + i * DET_TILES * DET_TILES + tile, d);
            if (!f) {
                st = ENG_EIO;
                break;
            }
            if ((st = det_heads(m, f, t->threads, &t->s, heat, wh, d)) != ENG_OK)
                break;
            for (int pass = 0; pass < 2; pass++) {
                m->nms_iou = pass ? 0.5f : 0.0f;
                cnt[pass] += det_view_objects(m, tile, heat, wh, im->w, im->h,
                                              o + ((size_t)pass * nv * ENG_DET_TOPK + cnt[pass]));
            }
        }
        if (st != ENG_OK)
            break;
        for (int pass = 0; pass < 2; pass++) {
            eng_det_object *all = o + (size_t)pass * nv * ENG_DET_TOPK;
            eng_det_object *one = o + (size_t)2 * nv * ENG_DET_TOPK;
            int no = cnt[pass];
            if (nv > 1)
                no = det_merge(all, cnt[pass], pass ? 0.5f : 0.0f, one, ENG_DET_TOPK);
            else
                one = all;
            for (int j = 0; j < no; j++)
                pl->p[pass][pl->np[pass]++] = (eng_det_pred){
                    i, one[j].category, {one[j].x, one[j].y, one[j].w, one[j].h}, one[j].score};
        }
        float sx, sy;
        det_scale(t->letterbox, im->w, im->h, &sx, &sy);
        for (int b = 0; b < im->nbox; b++) {
            const float *x = im->box + 4 * b;
            pl->gt[pl->ngt++] = (eng_det_gt){
                i, im->cat[b], {x[0] / sx, x[1] / sy, (x[2] - x[0]) / sx, (x[3] - x[1]) / sy}};
        }
        pl->nimg++;
    }
    m->nms_iou = nms;
    free(heat);
    free(wh);
    free(o);
    return st;
}

/* mAP@50 of the pooled detections, NMS off and on; for each, the
 * calibration they fit (cal[q] = a, b) and, when json is not NULL, the
 * metrics JSON with the calibrated confidences. */
static eng_status pool_score(trainer *t, det_pool *pl, double *map_nms0, double *map_nms1,
                             char **json, float (*cal)[2], eng_diag *d)
{
    double iou = 0.5;
    eng_status st = eng_det_map_ex(pl->gt, pl->ngt, pl->p[0], pl->np[0], t->ncat, &iou, 1,
                                   ENG_DET_MAX_DETS, map_nms0, NULL, d);
    if (st == ENG_OK)
        st = eng_det_map_ex(pl->gt, pl->ngt, pl->p[1], pl->np[1], t->ncat, &iou, 1,
                            ENG_DET_MAX_DETS, map_nms1, NULL, d);
    det_eval_extra x = {"training images, each held out once (cross-validation)", pl->nimg, -1,
                        NULL};
    for (int q = 0; q < 2 && st == ENG_OK; q++) {
        eng_det_pred *p = pl->p[q];
        int np = pl->np[q];
        int *tp = malloc(((size_t)np + 1) * sizeof *tp);
        double *sc = malloc(((size_t)np + 1) * sizeof *sc);
        if (!tp || !sc)
            st = eng_fail(d, ENG_ENOMEM, "evaluation: out of memory");
        if (st == ENG_OK)
            st = det_label_tp(pl->gt, pl->ngt, p, np, tp, d);
        if (st == ENG_OK) {
            for (int j = 0; j < np; j++)
                sc[j] = p[j].score;
            det_calibrate(sc, tp, np, &cal[q][0], &cal[q][1]);
            eng_detector c = {.calibrated = 1, .cal_a = cal[q][0], .cal_b = cal[q][1]};
            for (int j = 0; j < np; j++)
                p[j].score = det_confidence(&c, (float)p[j].score);
        }
        free(tp);
        free(sc);
        if (st == ENG_OK && json)
            st = det_metrics(pl->gt, pl->ngt, p, np, t->ncat, t->a->categories, &x, NULL, &json[q],
                             d);
    }
    return st;
}

/* mAP@50 of m on training images idx, NMS off and on, with the
 * calibrations its detections fit (see pool_score). */
static eng_status score(trainer *t, eng_detector *m, const int *idx, int n, double *map_nms0,
                        double *map_nms1, char **json, float (*cal)[2], eng_diag *d)
{
    det_pool pl = {0};
    eng_status st = pool_add(t, m, idx, n, &pl, d);
    if (st == ENG_OK)
        st = pool_score(t, &pl, map_nms0, map_nms1, json, cal, d);
    pool_release(&pl);
    return st;
}

/* Mean IoU between each training box and the pretrained box at its centre cell. */
static double pretrained_fit(trainer *t, eng_detector *m, eng_diag *d)
{
    double sum = 0;
    int cnt = 0;
    float *heat = malloc((size_t)DET_CELLS * t->ncat * sizeof *heat);
    float *wh = malloc((size_t)DET_CELLS * 4 * sizeof *wh);
    for (int i = 0; heat && wh && i < t->n && cnt < 400; i++) {
        if (!t->im[i].nbox)
            continue;
        const uint16_t *f = feat_of(t, i, d);
        if (!f || det_heads(m, f, t->threads, &t->s, heat, wh, d) != ENG_OK)
            break;
        for (int b = 0; b < t->im[i].nbox; b++) {
            const float *x = t->im[i].box + 4 * b;
            int cx = (int)lrintf((x[0] + x[2]) * 0.5f / DET_STRIDE);
            int cy = (int)lrintf((x[1] + x[3]) * 0.5f / DET_STRIDE);
            cx = cx < 0 ? 0 : cx >= DET_GRID ? DET_GRID - 1 : cx;
            cy = cy < 0 ? 0 : cy >= DET_GRID ? DET_GRID - 1 : cy;
            const float *p = wh + ((size_t)cy * DET_GRID + cx) * 4;
            double a[4] = {DET_STRIDE * cx - p[0], DET_STRIDE * cy - p[1], p[0] + p[2],
                           p[1] + p[3]};
            double g[4] = {x[0], x[1], x[2] - x[0], x[3] - x[1]};
            if (a[2] < 0)
                a[2] = 0;
            if (a[3] < 0)
                a[3] = 0;
            sum += eng_det_iou(a, g);
            cnt++;
        }
    }
    free(heat);
    free(wh);
    return cnt ? sum / cnt : 1;
}

void det_pick_variant(const double (*vmap)[2], int nv, int *best, int *nms_on)
{
    /* NMS unless turning it off clearly wins: a hundred overlapping boxes
     * per object are of no use to whoever reads the predictions */
    *best = -1;
    *nms_on = 1;
    double best_v = -1;
    for (int v = 0; v < nv; v++) {
        if (vmap[v][0] < 0 && vmap[v][1] < 0)
            continue;
        int on = !(vmap[v][0] > vmap[v][1] + DET_NMS_MARGIN);
        double val = vmap[v][on];
        /* variants come simplest first: a later one must win clearly, as
         * a few held-out images cannot tell close ones apart */
        if (val > best_v * (*best >= 0 ? 1 + DET_SIMPLER_MARGIN : 1) + 1e-9) {
            best_v = val;
            *best = v;
            *nms_on = on;
        }
    }
}

/* ---- the whole run ---- */

static eng_status check_args(const eng_train_args *a, eng_diag *d)
{
    if (!a || !a->train || a->ntrain < 1)
        return eng_fail(d, ENG_EINVAL, "training: no training images");
    if (a->ncat < 1 || !a->categories)
        return eng_fail(d, ENG_EINVAL, "training: no categories");
    int *cnt = calloc((size_t)a->ncat, sizeof *cnt);
    if (!cnt)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int i = 0; i < a->ntrain; i++) {
        const eng_sample *s = &a->train[i];
        if (s->nboxes > ENG_DET_MAX_BOXES) {
            free(cnt);
            return eng_fail(d, ENG_EINVAL, "image \"%s\": %d boxes; at most %d", s->path, s->nboxes,
                            ENG_DET_MAX_BOXES);
        }
        for (int b = 0; b < s->nboxes; b++) {
            const eng_box *x = &s->boxes[b];
            if (x->category < 0 || x->category >= a->ncat || !isfinite(x->x) || !isfinite(x->y) ||
                !(x->w > 0) || !(x->h > 0) || !isfinite(x->w) || !isfinite(x->h)) {
                free(cnt);
                return eng_fail(d, ENG_EINVAL, "image \"%s\": box %d is invalid", s->path, b);
            }
        }
        for (int c = 0; c < a->ncat; c++)
            for (int b = 0; b < s->nboxes; b++)
                if (s->boxes[b].category == c) {
                    cnt[c]++;
                    break;
                }
    }
    for (int c = 0; c < a->ncat; c++)
        if (cnt[c] < ENG_DET_MIN_PER_CATEGORY) {
            eng_status st = eng_fail(d, ENG_EINVAL,
                                     "category \"%s\" has %d training image%s with boxes; at "
                                     "least %d are needed",
                                     a->categories[c], cnt[c], cnt[c] == 1 ? "" : "s",
                                     ENG_DET_MIN_PER_CATEGORY);
            free(cnt);
            return st;
        }
    free(cnt);
    return ENG_OK;
}

static eng_detector *model_new(const trainer *t)
{
    eng_detector *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    const eng_backbone_info *inf = eng_backbone_get_info(t->bb);
    m->ncat = t->ncat;
    m->cats = calloc((size_t)t->ncat, sizeof *m->cats);
    m->bb_name = strdup(inf->name);
    m->bb_checksum = strdup(inf->checksum);
    m->feat_node = strdup(t->node);
    m->fdim = t->fdim;
    m->letterbox = t->letterbox;
    /* measured: mAP50 up in all 12 runs of blood-cells and raccoon, k 5 and
     * 10, seeds 0-2 (docs/training.md) */
    m->flip_average = 1;
    m->wh_scale = t->wh_scale;
    size_t f = (size_t)t->fdim;
    m->dw_cls = malloc(9 * f * sizeof(float));
    m->dw_wh = malloc(9 * f * sizeof(float));
    m->wc = calloc(f * t->ncat, sizeof(float));
    m->bc = calloc((size_t)t->ncat, sizeof(float));
    m->ww = malloc(f * 4 * sizeof(float));
    m->bw = malloc(4 * sizeof(float));
    m->min_score = 0.01f;
    if (!m->cats || !m->bb_name || !m->bb_checksum || !m->feat_node || !m->dw_cls || !m->dw_wh ||
        !m->wc || !m->bc || !m->ww || !m->bw) {
        eng_detector_free(m);
        return NULL;
    }
    for (int c = 0; c < t->ncat; c++)
        if (!(m->cats[c] = strdup(t->a->categories[c]))) {
            eng_detector_free(m);
            return NULL;
        }
    memcpy(m->dw_cls, t->dw_cls, 9 * f * sizeof(float));
    memcpy(m->dw_wh, t->dw_wh, 9 * f * sizeof(float));
    memcpy(m->ww, t->ww0, f * 4 * sizeof(float));
    memcpy(m->bw, t->bw0, 4 * sizeof(float));
    for (int c = 0; c < t->ncat; c++)
        m->bc[c] = DET_PRIOR_BIAS;
    return m;
}

static eng_status load_consts(trainer *t, eng_diag *d)
{
    const eng_model *mm = eng_backbone_model(t->bb);
    const char *names[4] = {DET_CONST_CLS_DW, DET_CONST_WH_DW, DET_CONST_WH_PW, DET_CONST_WH_B};
    int64_t want[4] = {9 * (int64_t)t->fdim, 9 * (int64_t)t->fdim, 4 * (int64_t)t->fdim, 4};
    float **dst[4] = {&t->dw_cls, &t->dw_wh, &t->ww0, &t->bw0};
    for (int i = 0; i < 4; i++) {
        const eng_tensor *c = NULL;
        eng_status st = eng_model_const(mm, names[i], &c, d);
        if (st != ENG_OK)
            return st;
        if (c->dtype != ENG_F32 || eng_tensor_numel(c) != want[i])
            return eng_fail(d, ENG_EUNSUPPORTED, "backbone constant \"%s\" has an unexpected shape",
                            names[i]);
        *dst[i] = malloc((size_t)want[i] * sizeof(float));
        if (!*dst[i])
            return eng_fail(d, ENG_ENOMEM, "training: out of memory");
        memcpy(*dst[i], c->data, (size_t)want[i] * sizeof(float));
    }
    const char *sc = eng_backbone_field(t->bb, "detector.wh_scale");
    t->wh_scale = 16.0f;
    if (sc && atof(sc) > 0)
        t->wh_scale = (float)atof(sc);
    return ENG_OK;
}

static void trainer_release(trainer *t)
{
    for (int i = 0; t->im && i < t->nv; i++) {
        free(t->im[i].box);
        free(t->im[i].cat);
        eng_free(t->im[i].feat);
        for (int q = 0; q < 2; q++) {
            eng_free(t->im[i].gmap[q]);
            eng_free(t->im[i].hmap[q]);
        }
    }
    free(t->im);
    free(t->dw_cls);
    free(t->dw_wh);
    free(t->ww0);
    free(t->bw0);
    free(t->order);
    free(t->vidx);
    det_scratch_release(&t->s);
    eng_tensor_free(t->gbatch);
    eng_tensor_free(t->hsel);
    free(t->target);
    free(t->seed);
    free(t->heat1);
    free(t->roww);
    free(t->ltrb);
    free(t->wgt);
    eng_free(t->tmpfeat);
    free(t->owner);
    free(t->wmap);
    free(t->rc);
    free(t->map_held);
    free(t->sim_held);
}

/* Allocates the step buffers of t (t->n, fdim and ncat set). */
static eng_status trainer_buffers(trainer *t, eng_diag *d)
{
    size_t per = (size_t)t->fdim * DET_CELLS;
    t->order = calloc((size_t)t->n * DET_MAX_VIEWS, sizeof *t->order);
    t->vidx = calloc((size_t)t->n * DET_MAX_VIEWS, sizeof *t->vidx);
    t->tmpfeat = eng_alloc(per * 2);
    int64_t gd[4] = {DET_MAX_BATCH, DET_GRID, DET_GRID, t->fdim};
    t->gbatch = eng_tensor_new(ENG_F32, 4, gd);
    t->maxsel = DET_MAX_BATCH * 2048;
    int64_t hd[2] = {t->maxsel, t->fdim};
    t->hsel = eng_tensor_new(ENG_F32, 2, hd);
    t->target = malloc((size_t)DET_MAX_BATCH * DET_CELLS * t->ncat * sizeof(float));
    t->seed = malloc((size_t)DET_MAX_BATCH * DET_CELLS * t->ncat * sizeof(float));
    t->heat1 = malloc((size_t)DET_CELLS * t->ncat * sizeof(float));
    t->roww = malloc((size_t)DET_MAX_BATCH * DET_CELLS * sizeof(float));
    t->ltrb = malloc((size_t)t->maxsel * 4 * sizeof(float));
    t->wgt = malloc((size_t)t->maxsel * sizeof(float));
    t->owner = malloc(DET_CELLS * sizeof *t->owner);
    t->wmap = malloc(DET_CELLS * sizeof *t->wmap);
    t->rc = malloc(DET_CELLS * sizeof *t->rc);
    if (!t->owner || !t->wmap || !t->rc || !t->order || !t->vidx || !t->tmpfeat || !t->gbatch ||
        !t->hsel || !t->target || !t->ltrb || !t->wgt || !t->seed || !t->heat1 || !t->roww)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    return det_scratch_init(&t->s, t->fdim, d);
}

eng_status det_fit_heads(det_fit_args *f, eng_detector *m, float *last_loss, eng_diag *d)
{
    trainer t;
    memset(&t, 0, sizeof t);
    eng_train_args a;
    memset(&a, 0, sizeof a);
    t.a = &a;
    t.cpu0 = cpu_now();
    t.n = t.nv = f->n;
    t.fdim = m->fdim;
    t.ncat = m->ncat;
    t.threads = f->threads > 0 ? f->threads : 1;
    t.wh_scale = m->wh_scale;
    eng_rng_seed(&t.rng, f->seed);
    size_t fd = (size_t)m->fdim;
    t.dw_cls = malloc(9 * fd * sizeof(float));
    t.dw_wh = malloc(9 * fd * sizeof(float));
    t.ww0 = malloc(4 * fd * sizeof(float));
    t.bw0 = malloc(4 * sizeof(float));
    t.im = calloc((size_t)f->n, sizeof *t.im);
    int *idx = malloc((size_t)f->n * sizeof *idx);
    eng_status st = trainer_buffers(&t, d);
    if (st == ENG_OK && (!t.dw_cls || !t.dw_wh || !t.ww0 || !t.bw0 || !t.im || !idx))
        st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
    if (st == ENG_OK) {
        memcpy(t.dw_cls, m->dw_cls, 9 * fd * sizeof(float));
        memcpy(t.dw_wh, m->dw_wh, 9 * fd * sizeof(float));
        memcpy(t.ww0, m->ww, 4 * fd * sizeof(float));
        memcpy(t.bw0, m->bw, 4 * sizeof(float));
        for (int i = 0; i < f->n; i++) {
            idx[i] = i;
            t.im[i].src = i;
            t.im[i].tile = -1;
            t.im[i].w = t.im[i].h = DET_SIZE;
            t.im[i].nbox = f->nbox[i];
            t.im[i].box = malloc((size_t)(f->nbox[i] + 1) * 4 * sizeof(float));
            t.im[i].cat = malloc((size_t)(f->nbox[i] + 1) * sizeof(int));
            if (!t.im[i].box || !t.im[i].cat) {
                st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
                break;
            }
            memcpy(t.im[i].box, f->boxes[i], (size_t)f->nbox[i] * 4 * sizeof(float));
            memcpy(t.im[i].cat, f->cats[i], (size_t)f->nbox[i] * sizeof(int));
        }
    }
    if (st == ENG_OK) {
        for (int i = 0; i < f->n; i++)
            t.im[i].feat = (uint16_t *)f->feats[i]; /* borrowed: cleared before release */
        variant v = {"test", f->finetune_wh, f->hidden, f->lr, f->epochs, 0, 0};
        t.deadline = f->budget_seconds > 0 ? (cpu_now() - t.cpu0) + f->budget_seconds : 0;
        st = fit(&t, idx, f->n, &v, m, last_loss, d);
        f->steps_done = t.steps_done;
        f->steps_planned = t.steps_planned;
        for (int i = 0; i < f->n; i++)
            t.im[i].feat = NULL;
    }
    free(idx);
    trainer_release(&t);
    return st;
}

/* Adds trainingCostInMinutes and stopReason to a metrics JSON string. */
static eng_status add_extra(char **json, double minutes, const char *reason, const char *recipe,
                            eng_diag *d)
{
    cJSON *o = NULL;
    if (!*json || eng_json_parse(*json, strlen(*json), "evaluation json", &o, d) != ENG_OK)
        return eng_fail(d, ENG_ENOMEM, "evaluation json: out of memory");
    cJSON_AddNumberToObject(o, "trainingCostInMinutes", round(minutes * 1000) / 1000);
    cJSON_AddStringToObject(o, "stopReason", reason);
    cJSON *r = NULL;
    eng_diag rd;
    if (eng_json_parse(recipe, strlen(recipe), "recipe", &r, &rd) == ENG_OK)
        cJSON_AddItemToObject(o, "recipe", r);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return eng_fail(d, ENG_ENOMEM, "evaluation json: out of memory");
    free(*json);
    *json = s;
    return ENG_OK;
}

/* Variants: the linear and hidden-layer heatmaps on the whole image; the
 * better of them trained on the tiles and the whole image, predicting from
 * the tiles and the whole image, or from the tiles alone. */
#define DET_NVARIANTS 4
#define DET_V_TILES 2      /* tiles + whole image; DET_V_TILES + 1: tiles alone */
#define DET_TILE_KEEP 0.5f /* share of a box inside a tile for it to be a target there */
/* tiles are tried only when the median object's longer side is at most
 * this share of the image (so it fits in a tile of DET_TILE_SPAN) */
#define DET_TILE_MAX_OBJECT (DET_TILE_SPAN / 2)

/* Weights of the box-size prior the search tries on every variant's fits,
 * simplest (none) first: on blood-cells, whose three categories each have
 * a typical size, the box head's sizes from a few images were the weak
 * part; on raccoon (one category, sizes from a quarter of the image to all
 * of it) the prior should lose and is then not taken. */
#define DET_NSIZE 3
static const float DET_SIZE_W[DET_NSIZE] = {0, 0.5f, 1};

/* Without a held-out split (fewer than five images) the prior is taken at
 * weight 1 when the training boxes of a category keep about the same size:
 * the pooled within-category standard deviation of log(width share) and
 * log(height share) below this. Over the dev sets' training files it is
 * 0.15-0.27 per category on blood-cells, where the folds chose weight 1 in
 * every run at 5 and 10 shots, and 0.50-0.54 on raccoon, where they chose
 * none. */
#define DET_SIZE_STEADY 0.35
#define DET_SIZE_MIN_DOF 20 /* boxes minus categories, over both axes */

/* The variant search and what it chose, shared by the stages of eng_det_train. */
typedef struct search {
    variant vars[DET_NVARIANTS];
    double fitq;                     /* pretrained box head: mean IoU at the training box centres */
    int best;                        /* index of the chosen variant */
    float best_nms;                  /* its NMS IoU, 0 for off */
    double best_map;                 /* its held-out mAP@50; -1 without a split */
    double vmap[DET_NVARIANTS][2];   /* held-out mAP@50 per variant, NMS off, on; -1 untried */
    float vcal[DET_NVARIANTS][2][2]; /* calibration (a, b) per variant, NMS off and on */
    char *vjson[DET_NVARIANTS][2];   /* held-out metrics JSON per variant, NMS off and on */
    /* the size prior (det_int.h) at weight DET_SIZE_W[w] on each variant's
     * fits: held-out mAP@50 (-1 untried), calibration and metrics JSON as
     * above; row 0 (weight 0) is vmap/vcal/vjson */
    double smap[DET_NVARIANTS][DET_NSIZE][2];
    float scal[DET_NVARIANTS][DET_NSIZE][2][2];
    char *sjson[DET_NVARIANTS][DET_NSIZE][2];
    int size_off;         /* VFS_DET_SIZE_PRIOR=off */
    int best_size;        /* the chosen weight's index */
    int tiles_forced;     /* VFS_DET_TILES: 0 no, -1 off, else the variant forced */
    char tiles_note[128]; /* why the tiled variants were not tried */
    int *all;             /* every training image */
    int nfolds;           /* cross-validation folds; 0: too few images to hold some out */
    int *fold;            /* each training image's fold */
    int *fitidx, nfit;    /* one fold's training images */
    int *hold, nhold;     /* one fold's held-out images */
    const char *reason;   /* stopReason */
    char budget_reason[128];
    char *recipe; /* the recipe JSON of the model */
    /* each variant's held-out detections at each prior weight (calibrated
     * confidences), kept for the crop classifier's search */
    det_pool pool[DET_NVARIANTS][DET_NSIZE];
    det_crop_result crop;             /* the crop classifier's search */
    double final_cost[DET_NVARIANTS]; /* CPU s a variant's final fit is estimated to take */
} search;

static void search_release(search *s)
{
    free(s->all);
    free(s->fitidx);
    free(s->hold);
    free(s->fold);
    for (int v = 0; v < DET_NVARIANTS; v++)
        for (int q = 0; q < 2; q++) {
            free(s->vjson[v][q]);
            for (int w = 0; w < DET_NSIZE; w++)
                free(s->sjson[v][w][q]);
        }
    for (int v = 0; v < DET_NVARIANTS; v++)
        for (int w = 0; w < DET_NSIZE; w++)
            pool_release(&s->pool[v][w]);
    det_crop_result_release(&s->crop);
    free(s->recipe);
}

/* Sets up t for a run on a: the backbone, its detector constants, the
 * step buffers. */
static eng_status trainer_start(trainer *t, const eng_train_args *a, eng_diag *d)
{
    memset(t, 0, sizeof *t);
    t->a = a;
    t->cpu0 = cpu_now();
    t->ncat = a->ncat;
    t->n = a->ntrain;
    t->threads = a->threads > 0 ? a->threads : 1;
    /* squash, as the backbone was trained: letterboxing measured worse on
     * raccoon k=10 (mAP@50 0.793 against 0.840) */
    t->letterbox = 0;
    eng_rng_seed(&t->rng, a->seed ^ 0x6465746563740000ull);
    eng_status st = det_pick_backbone(a->backbones, a->nbackbones, NULL, NULL, &t->bb, d);
    if (st != ENG_OK)
        return st;
    const eng_backbone_info *inf = eng_backbone_get_info(t->bb);
    t->node = inf->detection_features;
    t->fdim = inf->detection_features_dim;
    if ((st = load_consts(t, d)) != ENG_OK)
        return st;
    t->im = calloc((size_t)t->n * DET_MAX_VIEWS, sizeof *t->im);
    if ((st = trainer_buffers(t, d)) != ENG_OK)
        return st;
    if (!t->im)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    t->nv = t->n;
    for (int i = 0; i < t->n; i++) {
        t->im[i].src = i;
        t->im[i].tile = -1;
    }
    return ENG_OK;
}

/* Features of training image i: computed or read from the cache, kept in
 * memory while *kept allows. *cpu_feat and *misses count the computed ones;
 * their rate says whether the rest fits the budget. */
static eng_status image_features(trainer *t, int i, size_t *kept, double *cpu_feat, int *misses,
                                 eng_diag *d)
{
    const eng_train_args *a = t->a;
    size_t per = (size_t)t->fdim * DET_CELLS;
    uint16_t *f = NULL;
    if (*kept + per * 2 <= DET_MEM_CAP || !a->cache_dir)
        f = eng_alloc(per * 2);
    uint16_t *buf = f ? f : t->tmpfeat;
    int hit = 0;
    double c0 = cpu_now();
    eng_status st = det_features(t->bb, t->node, t->fdim, t->letterbox, -1, a->train[i].path,
                                 a->cache_dir, t->threads, buf, &t->im[i].w, &t->im[i].h, &hit, d);
    if (st != ENG_OK) {
        eng_free(f);
        return st;
    }
    if (!hit) {
        *cpu_feat += cpu_now() - c0;
        (*misses)++;
        /* budget: extraction of the rest (and of the test set) must fit;
         * the first image's rate estimates it, as the classifier does */
        double each = *cpu_feat / *misses;
        double need = (cpu_now() - t->cpu0) + each * (t->n - i - 1 + a->ntest) * BUDGET_MARGIN;
        if (a->budget_seconds > 0 && need > a->budget_seconds) {
            eng_free(f);
            return budget_fail_features(d, a->budget_seconds, t->n + a->ntest,
                                        eng_backbone_get_info(t->bb)->name,
                                        each * (t->n + a->ntest) * BUDGET_MARGIN);
        }
    }
    t->im[i].feat = f;
    if (f)
        *kept += per * 2;
    return ENG_OK;
}

/* The boxes of training image i in input pixels (those left empty by the
 * clamp to the input dropped). */
static eng_status image_boxes(trainer *t, int i, eng_diag *d)
{
    const eng_sample *s = &t->a->train[i];
    det_img *im = &t->im[i];
    int dw = s->width > 0 ? s->width : im->w, dh = s->height > 0 ? s->height : im->h;
    float fx, fy;
    det_scale(t->letterbox, dw, dh, &fx, &fy);
    im->box = malloc((size_t)(s->nboxes + 1) * 4 * sizeof(float));
    im->cat = malloc((size_t)(s->nboxes + 1) * sizeof(int));
    if (!im->box || !im->cat)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int b = 0; b < s->nboxes; b++) {
        const eng_box *x = &s->boxes[b];
        float *q = im->box + 4 * im->nbox;
        q[0] = fmaxf(0, x->x * fx);
        q[1] = fmaxf(0, x->y * fy);
        q[2] = fminf(DET_SIZE, (x->x + x->w) * fx);
        q[3] = fminf(DET_SIZE, (x->y + x->h) * fy);
        if (q[2] - q[0] <= 0 || q[3] - q[1] <= 0)
            continue;
        im->cat[im->nbox++] = x->category;
    }
    return ENG_OK;
}

/* Stage 1: the features and boxes of every training image. */
static eng_status stage_features(trainer *t, eng_diag *d)
{
    double cpu_feat = 0;
    int misses = 0;
    for (int i = 0; i < t->n; i++) {
        if (aborted(t))
            return eng_fail(d, ENG_EABORTED, "training cancelled");
        eng_status st = image_features(t, i, &t->kept, &cpu_feat, &misses, d);
        if (st == ENG_OK)
            st = image_boxes(t, i, d);
        if (st != ENG_OK)
            return st;
        progress(t, 0.4 * (i + 1) / t->n, "features", 0, 0, -1);
    }
    logf_(t, "features of %d training images (%d computed, %.1f s CPU), %s at %dx%d", t->n, misses,
          cpu_feat, t->node, DET_SIZE, DET_SIZE);
    return ENG_OK;
}

/* The variants and the choice without a split, from the pretrained box fit. */
static eng_status search_init(trainer *t, eng_detector *m, search *s, eng_diag *d)
{
    s->fitq = pretrained_fit(t, m, d);
    logf_(t, "pretrained box head: mean IoU %.3f at the training box centres", s->fitq);
    /* the box head is fine-tuned when the pretrained one fits the training
     * boxes poorly; the search tries a linear and a hidden-layer heatmap */
    int ft = s->fitq < DET_FIT_MIN;
    s->vars[0] = (variant){"linear heatmap", ft, 0, 0.01f, 40, 0, 0};
    s->vars[1] = (variant){"hidden-64 heatmap", ft, 64, 0.01f, 150, 0, 0};
    /* heads set from the better of the two once they are scored */
    s->vars[DET_V_TILES] = s->vars[1];
    s->vars[DET_V_TILES].name = "tiles 2x2 + whole image";
    s->vars[DET_V_TILES].tiles = DET_TILES;
    s->vars[DET_V_TILES].whole = 1;
    s->vars[DET_V_TILES + 1] = s->vars[DET_V_TILES];
    s->vars[DET_V_TILES + 1].name = "tiles 2x2";
    s->vars[DET_V_TILES + 1].whole = 0;
    /* a measuring knob (docs/training.md): off, or force a tiled variant */
    const char *e = getenv("VFS_DET_TILES");
    s->tiles_forced = !e                    ? 0
                      : !strcmp(e, "off")   ? -1
                      : !strcmp(e, "whole") ? DET_V_TILES
                      : !strcmp(e, "only")  ? DET_V_TILES + 1
                                            : 0;
    /* without a split: far from COCO (box head fits poorly) wants the hidden layer */
    s->best = ft;
    s->best_nms = 0.5f; /* NMS helped on every held-out split measured */
    s->best_map = -1;
    for (int w = 0; w < 3; w++)
        s->crop.map[w] = -1; /* the crop classifier untried */
    for (int v = 0; v < DET_NVARIANTS; v++)
        for (int q = 0; q < 2; q++) {
            s->vcal[v][q][0] = 1;
            s->vcal[v][q][1] = 0;
            s->vmap[v][q] = -1;
            for (int w = 0; w < DET_NSIZE; w++)
                s->smap[v][w][q] = -1;
        }
    /* a measuring knob (docs/training.md): the search without the prior */
    e = getenv("VFS_DET_SIZE_PRIOR");
    s->size_off = e && !strcmp(e, "off");
    s->reason = "too few images to hold some out: heatmap chosen by the pretrained box fit";
    s->all = malloc((size_t)t->n * sizeof *s->all);
    s->fitidx = malloc((size_t)t->n * sizeof *s->fitidx);
    s->hold = malloc((size_t)t->n * sizeof *s->hold);
    s->fold = malloc((size_t)t->n * sizeof *s->fold);
    if (!s->all || !s->fitidx || !s->hold || !s->fold)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int i = 0; i < t->n; i++)
        s->all[i] = i;
    /* every image is held out once: one split of a quarter scored 2-3
     * images at few shots, and its choice was noise */
    s->nfolds = t->n < 5 ? 0 : t->n / 2 < DET_FOLDS ? t->n / 2 : DET_FOLDS;
    return ENG_OK;
}

/* A seeded shuffle deals the images into the folds. */
static eng_status search_split(const trainer *t, search *s, eng_diag *d)
{
    int *perm = malloc((size_t)t->n * sizeof *perm);
    eng_rng r = t->rng;
    if (!perm)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int i = 0; i < t->n; i++)
        perm[i] = i;
    for (int i = t->n - 1; i > 0; i--) {
        int j = (int)(eng_rng_u64(&r) % (uint64_t)(i + 1));
        int x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    for (int i = 0; i < t->n; i++)
        s->fold[perm[i]] = i % s->nfolds;
    free(perm);
    return ENG_OK;
}

/* Fits variant v on every fold's training images and pools the held-out
 * fold's detections; scores the pool into s->vmap[v], vjson[v], vcal[v]. */
/* m->size_prior from the boxes of training images idx (whole views). */
static eng_status size_prior_of(const trainer *t, const int *idx, int n, eng_detector *m,
                                eng_diag *d)
{
    int nb = 0;
    for (int q = 0; q < n; q++)
        nb += t->im[idx[q]].nbox;
    float *box = malloc(((size_t)nb + 1) * 4 * sizeof *box);
    int *cat = malloc(((size_t)nb + 1) * sizeof *cat);
    if (!m->size_prior)
        m->size_prior = malloc((size_t)t->ncat * 2 * sizeof *m->size_prior);
    if (!box || !cat || !m->size_prior) {
        free(box);
        free(cat);
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    }
    nb = 0;
    for (int q = 0; q < n; q++) {
        const det_img *im = &t->im[idx[q]];
        float sx, sy;
        det_scale(t->letterbox, im->w, im->h, &sx, &sy);
        for (int b = 0; b < im->nbox; b++) {
            const float *x = im->box + 4 * b;
            float *o = box + 4 * nb;
            o[0] = x[0] / sx / (float)im->w;
            o[1] = x[1] / sy / (float)im->h;
            o[2] = (x[2] - x[0]) / sx / (float)im->w;
            o[3] = (x[3] - x[1]) / sy / (float)im->h;
            cat[nb++] = im->cat[b];
        }
    }
    det_size_prior_fit(box, cat, nb, t->ncat, m->size_prior);
    free(box);
    free(cat);
    return ENG_OK;
}

/* ---- head fits run elsewhere (hooks.detfit, the Slurm workers) ----
 *
 * The fits of a variant's folds (and the final fit) are independent but
 * for the random generator: each fit draws from t->rng where the previous
 * one stopped. The engine therefore replays the draws a fit makes
 * (fit_rng_skip: the shuffles, the flips and one draw per cell far from
 * every object, counted per view and flip) to give each job the state the
 * local loop would start it from; the worker returns the state it ended
 * at, and training carries on from the last job's. A fit the budget cuts
 * draws less than the replay assumed: then the later jobs start elsewhere
 * than they would here (a cut fit is not reproducible locally either, as
 * the cut follows the CPU time). */

/* Cells of view i (flipped when flip) a step draws a number for: those
 * whose target stays below DET_NEAR, as step() counts them. far caches
 * them (2 per view, -1: not counted yet). */
static int far_cells(trainer *t, int *far, int i, int flip)
{
    if (far[2 * i + flip] >= 0)
        return far[2 * i + flip];
    heat_target(t, &t->im[i], flip, t->heat1);
    int cnt = 0;
    for (int c = 0; c < DET_CELLS; c++) {
        const float *y = t->heat1 + (size_t)c * t->ncat;
        float mx = 0;
        for (int k = 0; k < t->ncat; k++)
            mx = y[k] > mx ? y[k] : mx;
        cnt += mx < DET_NEAR;
    }
    return far[2 * i + flip] = cnt;
}

/* Cells of view i (flipped when flip) that regress a box, as step()
 * counts them (reg caches them as far_cells does). */
static int reg_count(trainer *t, int *reg, int i, int flip)
{
    if (reg[2 * i + flip] < 0)
        reg[2 * i + flip] = reg_cells(&t->im[i], flip, t->rc, DET_CELLS, t->owner, t->wmap);
    return reg[2 * i + flip];
}

/* The map slot k (dw_map's: 4 per view) as the daemon's fit would keep
 * it: held in float16 from its first use while the cap allows. */
static void sim_map(trainer *t, int k)
{
    size_t per = (size_t)DET_CELLS * t->fdim;
    if (!t->sim_held[k] && t->sim_bytes + per * 2 <= DET_MAP_CAP) {
        t->sim_held[k] = 1;
        t->sim_bytes += per * 2;
    }
}

/* Advances r past the draws fit(t, idx, n, v) makes when it runs every
 * step it plans, and t->sim_held and sim_bytes past the maps it keeps
 * (mirrors fit() and step(); far, reg: 2 per view, -1 unknown; order and
 * vidx: scratch of t->n * DET_MAX_VIEWS). */
static void fit_rng_skip(trainer *t, const int *idx, int n, const variant *v, eng_rng *r, int *far,
                         int *reg, int *order, int *vidx)
{
    if (v->tiles) {
        int nv = 0;
        for (int q = 0; q < n; q++) {
            vidx[nv++] = idx[q];
            for (int k = 0; k < DET_TILES * DET_TILES; k++)
                vidx[nv++] = t->n + idx[q] * DET_TILES * DET_TILES + k;
        }
        idx = vidx;
        n = nv;
    }
    int B = n < DET_MAX_BATCH ? n : DET_MAX_BATCH;
    int steps = fit_steps(v, n);
    int pos = n;
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int k = 0; k < steps; k++)
        for (int b = 0; b < B; b++) {
            if (pos >= n) {
                for (int i = n - 1; i > 0; i--) {
                    int j = (int)(eng_rng_u64(r) % (uint64_t)(i + 1));
                    int x = order[i];
                    order[i] = order[j];
                    order[j] = x;
                }
                pos = 0;
            }
            int i = idx[order[pos++]];
            int flip = (int)(eng_rng_u64(r) & 1);
            sim_map(t, 4 * i + flip);
            for (int c = far_cells(t, far, i, flip); c > 0; c--)
                eng_rng_u64(r);
            if (v->finetune_wh && reg_count(t, reg, i, flip) > 0)
                sim_map(t, 4 * i + 2 + flip);
        }
}

/* Starts t->sim_held and sim_bytes from the maps t holds (once). */
static eng_status sim_start(trainer *t, eng_diag *d)
{
    if (t->sim_held)
        return ENG_OK;
    t->sim_held = calloc((size_t)t->n * DET_MAX_VIEWS * 4, 1);
    if (!t->sim_held)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int i = 0; i < t->nv; i++)
        for (int q = 0; q < 2; q++) {
            t->sim_held[4 * i + q] = t->im[i].gmap[q] != NULL;
            t->sim_held[4 * i + 2 + q] = t->im[i].hmap[q] != NULL;
        }
    t->sim_bytes = t->map_bytes;
    return ENG_OK;
}

/* A growing byte buffer for a fit's result. */
typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
    int bad;
} wbuf;

static void wb_put(wbuf *b, const void *x, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + n)
            c *= 2;
        unsigned char *q = realloc(b->p, c);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, x, n);
    b->len += n;
}

static void wb_i32(wbuf *b, int32_t v) { wb_put(b, &v, sizeof v); }

/* Reads n bytes at *pos of a result of len bytes; 0 when it is short. */
static int rb_get(const unsigned char *p, size_t len, size_t *pos, void *x, size_t n)
{
    if (len - *pos < n || *pos > len)
        return 0;
    memcpy(x, p + *pos, n);
    *pos += n;
    return 1;
}

#define DET_FIT_MAGIC 0x31544656u /* "VFT1" */

/* A pool's content (the detections and boxes one fold added) into b. */
static void wb_pool(wbuf *b, const det_pool *pl)
{
    wb_i32(b, pl->ngt);
    wb_i32(b, pl->np[0]);
    wb_i32(b, pl->np[1]);
    wb_i32(b, pl->nimg);
    for (int i = 0; i < pl->ngt; i++) {
        const eng_det_gt *g = &pl->gt[i];
        wb_put(b, &g->image, sizeof g->image);
        wb_i32(b, g->category);
        wb_put(b, g->bbox, sizeof g->bbox);
    }
    for (int q = 0; q < 2; q++)
        for (int i = 0; i < pl->np[q]; i++) {
            const eng_det_pred *x = &pl->p[q][i];
            wb_put(b, &x->image, sizeof x->image);
            wb_i32(b, x->category);
            wb_put(b, x->bbox, sizeof x->bbox);
            wb_put(b, &x->score, sizeof x->score);
        }
}

/* Appends a pool's content read at *pos to pl (as pool_add would have). */
static int rb_pool(const unsigned char *p, size_t len, size_t *pos, det_pool *pl)
{
    int32_t ngt, np[2], nimg;
    if (!rb_get(p, len, pos, &ngt, 4) || !rb_get(p, len, pos, &np[0], 4) ||
        !rb_get(p, len, pos, &np[1], 4) || !rb_get(p, len, pos, &nimg, 4) || ngt < 0 || np[0] < 0 ||
        np[1] < 0 || nimg < 0)
        return 0;
    eng_det_gt *gt = realloc(pl->gt, ((size_t)pl->ngt + ngt + 1) * sizeof *gt);
    if (!gt)
        return 0;
    pl->gt = gt;
    for (int i = 0; i < ngt; i++) {
        eng_det_gt *g = &pl->gt[pl->ngt++];
        int32_t c;
        if (!rb_get(p, len, pos, &g->image, sizeof g->image) || !rb_get(p, len, pos, &c, 4) ||
            !rb_get(p, len, pos, g->bbox, sizeof g->bbox))
            return 0;
        g->category = c;
    }
    for (int q = 0; q < 2; q++) {
        eng_det_pred *x = realloc(pl->p[q], ((size_t)pl->np[q] + np[q] + 1) * sizeof *x);
        if (!x)
            return 0;
        pl->p[q] = x;
        for (int i = 0; i < np[q]; i++) {
            eng_det_pred *o = &pl->p[q][pl->np[q]++];
            int32_t c;
            if (!rb_get(p, len, pos, &o->image, sizeof o->image) || !rb_get(p, len, pos, &c, 4) ||
                !rb_get(p, len, pos, o->bbox, sizeof o->bbox) ||
                !rb_get(p, len, pos, &o->score, sizeof o->score))
                return 0;
            o->category = c;
        }
    }
    pl->nimg += nimg;
    return 1;
}

/* The JSON of one fit for hooks.detfit: every view of t (its image, tile,
 * size and boxes), variant v (and the pools' tiles and whole-image flags
 * of v .. v + npool - 1), nsize box-size weights, the images fitted and
 * held out, the generator's state and the CPU seconds the fit may take
 * (0: no limit). NULL when out of memory. */
static char *fit_spec(const trainer *t, const search *s, int v, int npool, int nsize,
                      const int *fitidx, int nfit, const int *hold, int nhold, const eng_rng *r,
                      double deadline, const char *title)
{
    const eng_backbone_info *inf = eng_backbone_get_info(t->bb);
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    const variant *x = &s->vars[v];
    cJSON_AddStringToObject(j, "kind", "detector-fit");
    cJSON_AddStringToObject(j, "title", title);
    cJSON_AddStringToObject(j, "backbone", inf->name);
    cJSON_AddStringToObject(j, "checksum", inf->checksum);
    cJSON_AddNumberToObject(j, "images", t->n);
    cJSON_AddNumberToObject(j, "categories", t->ncat);
    cJSON *vj = cJSON_AddObjectToObject(j, "variant");
    if (vj) {
        cJSON_AddStringToObject(vj, "name", x->name);
        cJSON_AddNumberToObject(vj, "finetune_wh", x->finetune_wh);
        cJSON_AddNumberToObject(vj, "hidden", x->hidden);
        cJSON_AddNumberToObject(vj, "lr", x->lr);
        cJSON_AddNumberToObject(vj, "epochs", x->epochs);
        cJSON_AddNumberToObject(vj, "tiles", x->tiles);
        cJSON_AddNumberToObject(vj, "whole", x->whole);
    }
    cJSON *pj = cJSON_AddArrayToObject(j, "pools");
    for (int p = 0; pj && p < npool; p++) {
        int two[2] = {s->vars[v + p].tiles, s->vars[v + p].whole};
        cJSON_AddItemToArray(pj, cJSON_CreateIntArray(two, 2));
    }
    cJSON_AddNumberToObject(j, "sizes", nsize);
    /* (cJSON makes no array of no numbers) */
    cJSON_AddItemToObject(j, "fit",
                          nfit ? cJSON_CreateIntArray(fitidx, nfit) : cJSON_CreateArray());
    cJSON_AddItemToObject(j, "hold",
                          nhold ? cJSON_CreateIntArray(hold, nhold) : cJSON_CreateArray());
    cJSON *rj = cJSON_AddArrayToObject(j, "rng");
    for (int k = 0; rj && k < 4; k++) {
        char hex[32];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->s[k]);
        cJSON_AddItemToArray(rj, cJSON_CreateString(hex));
    }
    cJSON_AddNumberToObject(j, "deadline", deadline);
    /* the map slots the daemon's fit would find held, and their bytes */
    cJSON *mj = cJSON_AddArrayToObject(j, "maps");
    for (int k = 0; mj && k < 4 * t->nv; k++)
        if (t->sim_held[k])
            cJSON_AddItemToArray(mj, cJSON_CreateNumber(k));
    cJSON_AddNumberToObject(j, "map_bytes", (double)t->sim_bytes);
    /* the views: [image, tile, w, h, [x1, y1, x2, y2, category, ...]] */
    cJSON *views = cJSON_AddArrayToObject(j, "views");
    for (int i = 0; views && i < t->nv; i++) {
        const det_img *im = &t->im[i];
        cJSON *o = cJSON_CreateArray(), *b = cJSON_CreateArray();
        if (!o || !b) {
            cJSON_Delete(o);
            cJSON_Delete(b);
            cJSON_Delete(j);
            return NULL;
        }
        cJSON_AddItemToArray(o, cJSON_CreateNumber(im->src));
        cJSON_AddItemToArray(o, cJSON_CreateNumber(im->tile));
        cJSON_AddItemToArray(o, cJSON_CreateNumber(im->w));
        cJSON_AddItemToArray(o, cJSON_CreateNumber(im->h));
        for (int q = 0; q < im->nbox; q++) {
            for (int c = 0; c < 4; c++)
                cJSON_AddItemToArray(b, cJSON_CreateNumber(im->box[4 * q + c]));
            cJSON_AddItemToArray(b, cJSON_CreateNumber(im->cat[q]));
        }
        cJSON_AddItemToArray(o, b);
        cJSON_AddItemToArray(views, o);
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

/* A fit's result as eng_det_fit_run writes it: the header, then the heads
 * (heatmap weight and bias, box weight and bias, hidden weight and bias),
 * then npool x nsize pools (wb_pool). */
typedef struct fit_res {
    eng_rng rng; /* the generator after the fit */
    int32_t steps_done, steps_planned, hidden, fdim, ncat, npool, nsize, nviews;
    float loss;
    double cpu; /* the fit's own CPU seconds (the log's figure) */
} fit_res;

static int rb_head(const unsigned char *p, size_t len, size_t *pos, fit_res *r)
{
    uint32_t magic = 0;
    int32_t *ints[8] = {&r->steps_done, &r->steps_planned, &r->hidden, &r->fdim,
                        &r->ncat,       &r->npool,         &r->nsize,  &r->nviews};
    if (!rb_get(p, len, pos, &magic, 4) || magic != DET_FIT_MAGIC ||
        !rb_get(p, len, pos, r->rng.s, sizeof r->rng.s))
        return 0;
    for (int k = 0; k < 8; k++)
        if (!rb_get(p, len, pos, ints[k], 4))
            return 0;
    return rb_get(p, len, pos, &r->loss, sizeof r->loss) &&
           rb_get(p, len, pos, &r->cpu, sizeof r->cpu) && r->hidden >= 0 && r->fdim > 0 &&
           r->ncat > 0 && r->npool >= 0 && r->npool <= 2 && r->nsize >= 1 && r->nsize <= DET_NSIZE;
}

/* The heads of a result at *pos into m, as fit() leaves them. */
static eng_status rb_heads(const unsigned char *p, size_t len, size_t *pos, const fit_res *r,
                           eng_detector *m, eng_diag *d)
{
    int hid = r->hidden, k = hid > 0 ? hid : r->fdim;
    if (r->fdim != m->fdim || r->ncat != m->ncat)
        return eng_fail(d, ENG_EFORMAT, "head fit: the result does not match the model");
    float *wc = realloc(m->wc, (size_t)k * r->ncat * sizeof(float));
    if (wc)
        m->wc = wc;
    float *w1 = hid > 0 ? realloc(m->w1, (size_t)r->fdim * hid * sizeof(float)) : NULL;
    if (w1)
        m->w1 = w1;
    float *b1 = hid > 0 ? realloc(m->b1, (size_t)hid * sizeof(float)) : NULL;
    if (b1)
        m->b1 = b1;
    if (!wc || (hid > 0 && (!w1 || !b1)))
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    if (hid <= 0) {
        free(m->w1);
        free(m->b1);
        m->w1 = m->b1 = NULL;
    }
    m->hidden = hid;
    int ok = rb_get(p, len, pos, m->wc, (size_t)k * r->ncat * sizeof(float)) &&
             rb_get(p, len, pos, m->bc, (size_t)r->ncat * sizeof(float)) &&
             rb_get(p, len, pos, m->ww, (size_t)r->fdim * 4 * sizeof(float)) &&
             rb_get(p, len, pos, m->bw, 4 * sizeof(float));
    if (ok && hid > 0)
        ok = rb_get(p, len, pos, m->w1, (size_t)r->fdim * hid * sizeof(float)) &&
             rb_get(p, len, pos, m->b1, (size_t)hid * sizeof(float));
    return ok ? ENG_OK : eng_fail(d, ENG_EFORMAT, "head fit: the result is truncated");
}

/* Hands jobs to hooks.detfit; the batch's CPU seconds count as training's
 * (t->cpu0 moves back by them). Returns the hook's answer; *st when -1. */
static int detfit_batch(trainer *t, eng_finetune_job *jobs, int njobs, eng_status *st, eng_diag *d)
{
    const char **paths = malloc(((size_t)t->n + 1) * sizeof *paths);
    if (!paths) {
        *st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        return -1;
    }
    for (int i = 0; i < t->n; i++)
        paths[i] = t->a->train[i].path;
    double cpu = 0;
    eng_status rst = ENG_EIO;
    int rc = t->a->hooks.detfit(t->a->hooks.ctx, jobs, njobs, paths, t->n, &cpu, &rst, d);
    free(paths);
    if (rc == 0)
        t->cpu0 -= cpu;
    else if (rc == 1) { /* fitted here from now on: its own maps are the truth */
        free(t->sim_held);
        t->sim_held = NULL;
    } else
        *st = rst != ENG_OK ? rst : ENG_EIO;
    return rc;
}

static void jobs_free(eng_finetune_job *jobs, int n)
{
    for (int k = 0; jobs && k < n; k++) {
        free((char *)jobs[k].spec);
        free(jobs[k].result);
    }
    free(jobs);
}

/* The CPU seconds a fit started now may take (fit()'s deadline): 0 none. */
static double deadline_left(const trainer *t)
{
    if (t->deadline <= 0)
        return 0;
    double left = t->deadline - (cpu_now() - t->cpu0);
    return left > 1e-3 ? left : 1e-3; /* past it: DET_MIN_STEPS, as here */
}

/* The scores of the pooled held-out detections of variant v (and v + 1
 * when npool is 2) into s, as cross_validate leaves them. */
static eng_status cv_score(trainer *t, search *s, int v, det_pool (*pl)[DET_NSIZE], int npool,
                           int nsize, eng_diag *d)
{
    eng_status st = ENG_OK;
    for (int p = 0; p < npool && st == ENG_OK; p++) {
        st = pool_score(t, &pl[p][0], &s->vmap[v + p][0], &s->vmap[v + p][1], s->vjson[v + p],
                        s->vcal[v + p], d);
        s->smap[v + p][0][0] = s->vmap[v + p][0];
        s->smap[v + p][0][1] = s->vmap[v + p][1];
        for (int w = 1; w < nsize && st == ENG_OK; w++)
            st = pool_score(t, &pl[p][w], &s->smap[v + p][w][0], &s->smap[v + p][w][1],
                            s->sjson[v + p][w], s->scal[v + p][w], d);
    }
    return st;
}

/* Fits variant v on every fold's training images and pools the held-out
 * fold's detections; scores the pool into s->vmap[v], vjson[v], vcal[v],
 * and, with the size prior of the fold's training boxes at each weight,
 * into s->smap[v], sjson[v], scal[v]. */
static eng_status cross_validate(trainer *t, eng_detector *m, search *s, int v, eng_diag *d)
{
    det_pool pl[2][DET_NSIZE];
    memset(pl, 0, sizeof pl);
    /* the tiled fit is scored with and without the whole image (variant v + 1) */
    int npool = s->vars[v].tiles ? 2 : 1, nsize = s->size_off ? 1 : DET_NSIZE;
    eng_status st = ENG_OK;
    for (int f = 0; f < s->nfolds && st == ENG_OK; f++) {
        s->nfit = s->nhold = 0;
        for (int i = 0; i < t->n; i++) {
            if (s->fold[i] == f)
                s->hold[s->nhold++] = i;
            else
                s->fitidx[s->nfit++] = i;
        }
        st = fit(t, s->fitidx, s->nfit, &s->vars[v], m, NULL, d);
        if (st == ENG_OK && nsize > 1)
            st = size_prior_of(t, s->fitidx, s->nfit, m, d);
        for (int p = 0; p < npool && st == ENG_OK; p++) {
            m->tiles = s->vars[v + p].tiles;
            m->tile_whole = s->vars[v + p].whole;
            for (int w = 0; w < nsize && st == ENG_OK; w++) {
                m->size_weight = DET_SIZE_W[w];
                st = pool_add(t, m, s->hold, s->nhold, &pl[p][w], d);
            }
        }
        m->size_weight = 0;
    }
    m->tiles = m->tile_whole = 0;
    if (st == ENG_OK)
        st = cv_score(t, s, v, pl, npool, nsize, d);
    /* kept for the crop classifier */
    for (int p = 0; p < 2; p++)
        for (int w = 0; w < DET_NSIZE; w++) {
            if (p < npool && st == ENG_OK) {
                pool_release(&s->pool[v + p][w]);
                s->pool[v + p][w] = pl[p][w];
            } else {
                pool_release(&pl[p][w]);
            }
        }
    return st;
}

/* cross_validate with the folds' fits run by hooks.detfit as one batch.
 * Returns 1 when the hook does not take them (then cross_validate runs
 * them here), 0 done, -1 failed with *st. */
static int cross_validate_elsewhere(trainer *t, eng_detector *m, search *s, int v, eng_status *st,
                                    eng_diag *d)
{
    int npool = s->vars[v].tiles ? 2 : 1, nsize = s->size_off ? 1 : DET_NSIZE, nf = s->nfolds;
    size_t nviews = (size_t)t->n * DET_MAX_VIEWS;
    eng_finetune_job *jobs = calloc((size_t)nf, sizeof *jobs);
    int *far = malloc(4 * nviews * sizeof *far); /* far_cells', then reg_count's */
    int *order = malloc(nviews * sizeof *order), *vidx = malloc(nviews * sizeof *vidx);
    det_pool pl[2][DET_NSIZE];
    memset(pl, 0, sizeof pl);
    int rc = -1;
    *st = ENG_OK;
    if (!jobs || !far || !order || !vidx) {
        *st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        goto out;
    }
    if ((*st = sim_start(t, d)) != ENG_OK)
        goto out;
    for (size_t i = 0; i < 4 * nviews; i++)
        far[i] = -1;
    eng_rng r = t->rng;
    double left = deadline_left(t);
    for (int f = 0; f < nf; f++) {
        s->nfit = s->nhold = 0;
        for (int i = 0; i < t->n; i++) {
            if (s->fold[i] == f)
                s->hold[s->nhold++] = i;
            else
                s->fitidx[s->nfit++] = i;
        }
        char title[160];
        snprintf(title, sizeof title, "%s, fold %d of %d", s->vars[v].name, f + 1, nf);
        jobs[f].spec =
            fit_spec(t, s, v, npool, nsize, s->fitidx, s->nfit, s->hold, s->nhold, &r, left, title);
        if (!jobs[f].spec) {
            *st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
            goto out;
        }
        fit_rng_skip(t, s->fitidx, s->nfit, &s->vars[v], &r, far, far + 2 * nviews, order, vidx);
    }
    rc = detfit_batch(t, jobs, nf, st, d);
    if (rc != 0)
        goto out;
    rc = -1;
    for (int f = 0; f < nf; f++) {
        const unsigned char *p = jobs[f].result;
        size_t pos = 0, len = jobs[f].len;
        fit_res res;
        if (!p || !rb_head(p, len, &pos, &res) || res.npool != npool || res.nsize != nsize) {
            *st = eng_fail(d, ENG_EFORMAT, "head fit: fold %d's result is not valid", f + 1);
            goto out;
        }
        if ((*st = rb_heads(p, len, &pos, &res, m, d)) != ENG_OK)
            goto out;
        for (int q = 0; q < npool; q++)
            for (int w = 0; w < nsize; w++)
                if (!rb_pool(p, len, &pos, &pl[q][w])) {
                    *st = eng_fail(d, ENG_EFORMAT, "head fit: fold %d's detections are truncated",
                                   f + 1);
                    goto out;
                }
        logf_(t, "variant %s: %d images, %d of %d steps, last loss %.4f, %.1f s CPU on the cluster",
              s->vars[v].name, res.nviews, res.steps_done, res.steps_planned, res.loss, res.cpu);
        t->rng = res.rng;
        t->steps_done = res.steps_done;
        t->steps_planned = res.steps_planned;
    }
    if ((*st = cv_score(t, s, v, pl, npool, nsize, d)) == ENG_OK)
        rc = 0;
out:
    /* kept for the crop classifier, as cross_validate keeps them */
    for (int p = 0; p < 2; p++)
        for (int w = 0; w < DET_NSIZE; w++) {
            if (p < npool && rc == 0) {
                pool_release(&s->pool[v + p][w]);
                s->pool[v + p][w] = pl[p][w];
            } else {
                pool_release(&pl[p][w]);
            }
        }
    jobs_free(jobs, nf);
    free(far);
    free(order);
    free(vidx);
    return rc;
}

/* stage_final's fit run by hooks.detfit; returns like
 * cross_validate_elsewhere (1: fit here). */
static int final_elsewhere(trainer *t, eng_detector *m, search *s, eng_status *st, eng_diag *d)
{
    eng_finetune_job job;
    memset(&job, 0, sizeof job);
    if ((*st = sim_start(t, d)) != ENG_OK)
        return -1;
    char title[160];
    snprintf(title, sizeof title, "%s, final fit", s->vars[s->best].name);
    job.spec =
        fit_spec(t, s, s->best, 0, 1, s->all, t->n, NULL, 0, &t->rng, deadline_left(t), title);
    if (!job.spec) {
        *st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        return -1;
    }
    int rc = detfit_batch(t, &job, 1, st, d);
    if (rc == 0) {
        size_t pos = 0;
        fit_res res;
        rc = -1;
        if (!job.result || !rb_head(job.result, job.len, &pos, &res))
            *st = eng_fail(d, ENG_EFORMAT, "head fit: the final fit's result is not valid");
        else if ((*st = rb_heads(job.result, job.len, &pos, &res, m, d)) == ENG_OK) {
            logf_(t,
                  "variant %s: %d images, %d of %d steps, last loss %.4f, %.1f s CPU on the "
                  "cluster",
                  s->vars[s->best].name, res.nviews, res.steps_done, res.steps_planned, res.loss,
                  res.cpu);
            t->rng = res.rng;
            t->steps_done = res.steps_done;
            t->steps_planned = res.steps_planned;
            rc = 0;
        }
    }
    free((char *)job.spec);
    free(job.result);
    return rc;
}

/* The boxes of tile view v in its input pixels: clipped to the tile, kept
 * where at least DET_TILE_KEEP of the box lies inside (a sliver cut off by
 * the tile's edge is neither an object nor trained as one). */
static eng_status tile_boxes(trainer *t, int v, eng_diag *d)
{
    det_img *im = &t->im[v];
    const eng_sample *s = &t->a->train[im->src];
    float dw = (float)(s->width > 0 ? s->width : im->w);
    float dh = (float)(s->height > 0 ? s->height : im->h);
    float r[4], core[4];
    det_tile_rect(im->tile, r, core);
    float ox = r[0] * dw, oy = r[1] * dh, fx = DET_SIZE / (r[2] * dw), fy = DET_SIZE / (r[3] * dh);
    im->box = malloc((size_t)(s->nboxes + 1) * 4 * sizeof(float));
    im->cat = malloc((size_t)(s->nboxes + 1) * sizeof(int));
    if (!im->box || !im->cat)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int b = 0; b < s->nboxes; b++) {
        const eng_box *x = &s->boxes[b];
        float x1 = (x->x - ox) * fx, y1 = (x->y - oy) * fy;
        float x2 = (x->x + x->w - ox) * fx, y2 = (x->y + x->h - oy) * fy;
        float full = (x2 - x1) * (y2 - y1);
        float *q = im->box + 4 * im->nbox;
        q[0] = fmaxf(0, x1);
        q[1] = fmaxf(0, y1);
        q[2] = fminf(DET_SIZE, x2);
        q[3] = fminf(DET_SIZE, y2);
        if (q[2] - q[0] <= 0 || q[3] - q[1] <= 0 ||
            (q[2] - q[0]) * (q[3] - q[1]) < DET_TILE_KEEP * full)
            continue;
        im->cat[im->nbox++] = x->category;
    }
    return ENG_OK;
}

/* Features and boxes of every training image's tiles, unless (force 0)
 * their extraction, the test images' tiles at the same rate and reserve
 * CPU seconds would end past DET_SEARCH_END of the budget: then *why says
 * so and t->tiles_ready stays 0. */
static eng_status stage_tiles(trainer *t, int force, double reserve, char *why, size_t whylen,
                              eng_diag *d)
{
    const eng_train_args *a = t->a;
    const int per_img = DET_TILES * DET_TILES, total = t->n * per_img;
    size_t per = (size_t)t->fdim * DET_CELLS;
    double cpu_feat = 0;
    int misses = 0;
    for (int q = 0; q < total; q++) {
        if (aborted(t))
            return eng_fail(d, ENG_EABORTED, "training cancelled");
        int v = t->n + q;
        det_img *im = &t->im[v];
        im->src = q / per_img;
        im->tile = q % per_img;
        t->nv = v + 1;
        uint16_t *f = NULL;
        if (t->kept + per * 2 <= DET_MEM_CAP || !a->cache_dir)
            f = eng_alloc(per * 2);
        int hit = 0;
        double c0 = cpu_now();
        eng_status st =
            det_features(t->bb, t->node, t->fdim, t->letterbox, im->tile, a->train[im->src].path,
                         a->cache_dir, t->threads, f ? f : t->tmpfeat, &im->w, &im->h, &hit, d);
        if (st != ENG_OK) {
            eng_free(f);
            return st;
        }
        im->feat = f;
        if (f)
            t->kept += per * 2;
        if ((st = tile_boxes(t, v, d)) != ENG_OK)
            return st;
        if (!hit) {
            cpu_feat += cpu_now() - c0;
            misses++;
            double each = cpu_feat / misses;
            double need = (cpu_now() - t->cpu0) +
                          each * (total - q - 1 + a->ntest * per_img) * BUDGET_MARGIN + reserve;
            if (!force && a->budget_seconds > 0 && need > a->budget_seconds * DET_SEARCH_END) {
                snprintf(why, whylen,
                         "budget: no room for tiles (about %.0f CPU s needed, %.0f left)", need,
                         a->budget_seconds * DET_SEARCH_END - (cpu_now() - t->cpu0));
                return ENG_OK;
            }
        }
        progress(t, 0.6 + 0.1 * (q + 1) / total, "tiles", 0, 0, -1);
    }
    t->tiles_ready = 1;
    logf_(t, "features of %d tiles (%d computed, %.1f s CPU), %dx%d tiles of %.0f%% of the image",
          total, misses, cpu_feat, DET_TILES, DET_TILES, 100.0 * DET_TILE_SPAN);
    return ENG_OK;
}

static int float_cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Whether the tiled variants cannot help, saying why: the best held-out
 * mAP@50 so far leaves no room to beat it by DET_SIMPLER_MARGIN, or the
 * median training object's longer side exceeds DET_TILE_MAX_OBJECT of the
 * image (tiles enlarge small objects; large ones are cut by the tiles'
 * edges: raccoon, median 0.83, held out 0.27-0.59 tiled vs 0.82-0.88). */
static int tiles_pointless(const trainer *t, double best, char *why, size_t whylen)
{
    if (best * (1 + DET_SIMPLER_MARGIN) >= 1) {
        snprintf(why, whylen, "held-out mAP@50 %.4f leaves no room to beat", best);
        return 1;
    }
    int nb = 0;
    for (int i = 0; i < t->n; i++)
        nb += t->im[i].nbox;
    if (nb == 0)
        return 0;
    float *side = malloc((size_t)nb * sizeof *side);
    if (!side)
        return 0; /* only a saving: try them */
    nb = 0;
    for (int i = 0; i < t->n; i++)
        for (int b = 0; b < t->im[i].nbox; b++) {
            const float *q = t->im[i].box + 4 * b;
            side[nb++] = fmaxf(q[2] - q[0], q[3] - q[1]) / DET_SIZE;
        }
    qsort(side, (size_t)nb, sizeof *side, float_cmp);
    float med = side[nb / 2];
    free(side);
    if (med > DET_TILE_MAX_OBJECT) {
        snprintf(why, whylen, "objects too large for tiles (median side %.2f of the image)",
                 (double)med);
        return 1;
    }
    return 0;
}

/* The pooled within-category standard deviation of the training boxes'
 * log width and height shares (both axes together); INFINITY when it rests
 * on fewer than DET_SIZE_MIN_DOF degrees of freedom (raccoon at 2 and 3
 * shots: one box per image, so 2-3 boxes, whose spread came out under the
 * bar by chance on seeds 1 and 2, where the prior cost 0.26-0.74 of
 * test mAP@50). */
static double size_spread(const trainer *t)
{
    double ss = 0;
    long cnt = 0, groups = 0;
    for (int c = 0; c < t->ncat; c++) {
        double sum[2] = {0, 0}, sq[2] = {0, 0};
        long k = 0;
        for (int i = 0; i < t->n; i++) {
            const det_img *im = &t->im[i];
            float sx, sy;
            det_scale(t->letterbox, im->w, im->h, &sx, &sy);
            for (int b = 0; b < im->nbox; b++) {
                const float *x = im->box + 4 * b;
                double lw = log((x[2] - x[0]) / sx / im->w), lh = log((x[3] - x[1]) / sy / im->h);
                if (im->cat[b] != c || !isfinite(lw) || !isfinite(lh))
                    continue;
                sum[0] += lw;
                sum[1] += lh;
                sq[0] += lw * lw;
                sq[1] += lh * lh;
                k++;
            }
        }
        if (k < 2)
            continue;
        for (int a = 0; a < 2; a++)
            ss += sq[a] - sum[a] * sum[a] / (double)k;
        cnt += 2 * k;
        groups += 2;
    }
    return cnt - groups >= DET_SIZE_MIN_DOF ? sqrt(fmax(0, ss) / (double)(cnt - groups)) : INFINITY;
}

/* Without a held-out split: the tiles and the whole image, with the head
 * search_init chose, when the objects are small (tiles_pointless: the
 * median training box's longer side within DET_TILE_MAX_OBJECT of the
 * image) and the budget has room for the tiles' features. With folds the
 * tiled variant won on blood-cells (median 0.28) in 5 of 6 runs at 5
 * shots; raccoon (0.83) never tries tiles. */
static eng_status no_split_tiles(trainer *t, search *s, eng_diag *d)
{
    if (s->tiles_forced < 0)
        return ENG_OK;
    if (s->tiles_forced == 0 && tiles_pointless(t, 0, s->tiles_note, sizeof s->tiles_note)) {
        logf_(t, "tiles not tried: %s", s->tiles_note);
        return ENG_OK;
    }
    eng_status st = stage_tiles(t, s->tiles_forced > 0, 0, s->tiles_note, sizeof s->tiles_note, d);
    if (st != ENG_OK)
        return st;
    if (!t->tiles_ready) {
        logf_(t, "tiles not tried: %s", s->tiles_note);
        return ENG_OK;
    }
    int v = s->tiles_forced > 0 ? s->tiles_forced : DET_V_TILES;
    s->vars[v].hidden = s->vars[s->best].hidden;
    s->vars[v].epochs = s->vars[s->best].epochs;
    s->vars[v].lr = s->vars[s->best].lr;
    s->best = v;
    logf_(t, "without a held-out split, %s: the objects are small", s->vars[v].name);
    return ENG_OK;
}

/* Stage 2: with enough images, cross-validates each variant while the
 * budget allows and picks the best pooled held-out mAP@50 (NMS off or on).
 * With too few, only the size prior's rule (DET_SIZE_STEADY). */
static eng_status stage_search(trainer *t, eng_detector *m, search *s, eng_diag *d)
{
    const eng_train_args *a = t->a;
    if (!s->nfolds) {
        double spread = size_spread(t);
        if (!s->size_off && spread < DET_SIZE_STEADY) {
            s->best_size = DET_NSIZE - 1;
            logf_(t,
                  "box-size prior at weight 1 without a held-out split: each category's boxes "
                  "keep their size (standard deviation of log size %.2f, under %.2f)",
                  spread, DET_SIZE_STEADY);
        } else if (isfinite(spread)) {
            logf_(t,
                  "no box-size prior: the boxes' sizes vary (standard deviation of log size "
                  "%.2f%s)",
                  spread, s->size_off ? "; VFS_DET_SIZE_PRIOR=off" : "");
        }
        return no_split_tiles(t, s, d);
    }
    eng_status st = search_split(t, s, d);
    if (st != ENG_OK)
        return st;
    s->reason = "searched every variant";
    t->deadline = a->budget_seconds > 0 ? a->budget_seconds * DET_SEARCH_SHARE : 0;
    double cv_cost = 0;
    /* the final fit costs about one fold's fit scaled to every image */
    double final_share = (double)t->n / (t->n - t->n / s->nfolds) / s->nfolds;
    double vcost[2] = {0, 0};
    for (int v = 0; v <= DET_V_TILES; v++) {
        double used = cpu_now() - t->cpu0;
        if (v == DET_V_TILES) {
            if (s->tiles_forced < 0)
                break;
            /* the heads of the better whole-image variant; a tiled fit
             * runs up to DET_MAX_VIEWS times its steps (at most
             * DET_TILE_MAX_STEPS), and is scored on DET_MAX_VIEWS views
             * per held-out image twice */
            int h = -1, on = 1;
            det_pick_variant((const double(*)[2])s->vmap, 2, &h, &on);
            if (h < 0)
                break;
            if (s->tiles_forced == 0 &&
                tiles_pointless(t, s->vmap[h][on], s->tiles_note, sizeof s->tiles_note)) {
                logf_(t, "tiles not tried: %s", s->tiles_note);
                break;
            }
            for (int q = DET_V_TILES; q < DET_NVARIANTS; q++) {
                s->vars[q].hidden = s->vars[h].hidden;
                s->vars[q].epochs = s->vars[h].epochs;
                s->vars[q].lr = s->vars[h].lr;
            }
            double reserve = vcost[h] * DET_MAX_VIEWS * (1 + final_share);
            st = stage_tiles(t, s->tiles_forced > 0, reserve, s->tiles_note, sizeof s->tiles_note,
                             d);
            if (st != ENG_OK)
                break;
            if (!t->tiles_ready) {
                logf_(t, "tiles not tried: %s", s->tiles_note);
                break;
            }
        } else if (a->budget_seconds > 0 && v == 0 &&
                   used > a->budget_seconds * DET_SEARCH_SHARE / 2) {
            s->reason = "budget: no room for the search (heatmap chosen by the pretrained box fit)";
            break;
        } else if (a->budget_seconds > 0 && v > 0) {
            /* the last variant's cost scaled by the steps this one plans: a
             * lower bound (a hidden layer's step costs more; blood-cells,
             * 292 images: 1.5x), which keeps it from being cut by the
             * deadline part-way, scored on half-trained folds, while the
             * stages after it (the crop classifier) starve */
            int nfit = t->n - t->n / s->nfolds;
            double need = cv_cost * fit_steps(&s->vars[v], nfit) /
                          fit_steps(&s->vars[v - 1], nfit) * (1 + final_share);
            double end = a->budget_seconds * DET_SEARCH_END;
            if (used + need > end) {
                s->reason = "budget: search stopped early";
                logf_(t,
                      "variant %s not tried: budget: about %.0f CPU s needed with its final fit, "
                      "%.0f left",
                      s->vars[v].name, need, end > used ? end - used : 0.0);
                break;
            }
        }
        double c0 = cpu_now(), r0 = t->cpu0;
        /* trials done of the plan: the variants, then the crop stage */
        progress(t, 0.4 + 0.1 * v, "search", v, DET_V_TILES + 2, s->best_map);
        /* the folds' fits elsewhere (hooks.detfit) when it takes them */
        int rc = a->hooks.detfit ? cross_validate_elsewhere(t, m, s, v, &st, d) : 1;
        if (rc < 0 || (rc == 1 && (st = cross_validate(t, m, s, v, d)) != ENG_OK))
            break;
        /* with hooks.detfit, t->cpu0 moved back by the CPU spent elsewhere */
        cv_cost = cpu_now() - c0 + (r0 - t->cpu0);
        if (v < 2)
            vcost[v] = cv_cost;
        /* the final fit of the variant(s) just scored, for the stages after */
        for (int q = v; q < (v == DET_V_TILES ? DET_NVARIANTS : v + 1); q++)
            s->final_cost[q] = cv_cost * final_share;
        for (int q = v; q < (v == DET_V_TILES ? DET_NVARIANTS : v + 1); q++) {
            logf_(t,
                  "variant %s: cross-validated mAP@50 %.4f (NMS off), %.4f (NMS 0.5), %d folds "
                  "of %d images, %.1f s CPU",
                  s->vars[q].name, s->vmap[q][0], s->vmap[q][1], s->nfolds, t->n, cv_cost);
            for (int w = 1; w < DET_NSIZE && s->smap[q][w][0] >= 0; w++)
                logf_(t, "variant %s with the box-size prior at weight %.1f: %.4f, %.4f",
                      s->vars[q].name, (double)DET_SIZE_W[w], s->smap[q][w][0], s->smap[q][w][1]);
        }
    }
    int pick = -1, nms_on = 1;
    det_pick_variant((const double(*)[2])s->vmap, DET_NVARIANTS, &pick, &nms_on);
    if (s->tiles_forced > 0 && s->vmap[s->tiles_forced][0] >= 0) {
        pick = s->tiles_forced;
        nms_on = !(s->vmap[pick][0] > s->vmap[pick][1] + DET_NMS_MARGIN);
    }
    if (pick >= 0) {
        s->best = pick;
        s->best_nms = nms_on ? 0.5f : 0.0f;
        s->best_map = s->vmap[s->best][nms_on];
        /* then the prior's weight for that variant, none first: a weight
         * must win by the same margin as a more complex variant */
        int w = -1, won = 1;
        det_pick_variant((const double(*)[2])s->smap[pick], DET_NSIZE, &w, &won);
        if (w > 0) {
            s->best_size = w;
            s->best_nms = won ? 0.5f : 0.0f;
            s->best_map = s->smap[pick][w][won];
        }
    }
    return st;
}

/* The backbone that embeds the crops of the crop classifier: Lite0, the
 * cheapest ImageNet network installed (a crop costs one pass of it). */
#define DET_CROP_BACKBONE "efficientnet-lite0"

/* The chosen heads' held-out detections and boxes (NMS as chosen) of every
 * training image, renumbered 0..sub->nimg - 1: image j of the sample is
 * s->hold[j]. Above DET_CROP_MIN_IMAGES the order is a seeded shuffle, so
 * that the first ones, all the crop search may have room for, are a
 * random sample; a smaller set keeps its numbering. */
static eng_status crop_sample(trainer *t, search *s, det_pool *sub, eng_diag *d)
{
    const det_pool *pl = &s->pool[s->best][s->best_size];
    int on = s->best_nms > 0, n = t->n;
    int *slot = malloc((size_t)n * sizeof *slot);
    sub->gt = malloc(((size_t)pl->ngt + 1) * sizeof *sub->gt);
    sub->p[0] = malloc(((size_t)pl->np[on] + 1) * sizeof *sub->p[0]);
    if (!slot || !sub->gt || !sub->p[0]) {
        free(slot);
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    }
    for (int i = 0; i < n; i++)
        s->hold[i] = i;
    eng_rng r = t->rng;
    for (int i = 0; n > DET_CROP_MIN_IMAGES && i < n; i++) {
        int j = i + (int)(eng_rng_u64(&r) % (uint64_t)(n - i));
        int x = s->hold[i];
        s->hold[i] = s->hold[j];
        s->hold[j] = x;
    }
    sub->nimg = n;
    for (int j = 0; j < n; j++)
        slot[s->hold[j]] = j;
    for (int q = 0; q < pl->ngt; q++) {
        sub->gt[sub->ngt] = pl->gt[q];
        sub->gt[sub->ngt++].image = slot[pl->gt[q].image];
    }
    for (int q = 0; q < pl->np[on]; q++) {
        sub->p[0][sub->np[0]] = pl->p[on][q];
        sub->p[0][sub->np[0]++].image = slot[pl->p[on][q].image];
    }
    free(slot);
    return ENG_OK;
}

/* The crop classifier's log line. */
static void crop_log(const trainer *t, const det_crop_result *c, int nimg)
{
    char sample[64] = "";
    if (nimg < t->n)
        snprintf(sample, sizeof sample, " of %d of the %d images", nimg, t->n);
    logf_(t,
          "crop classifier (%s crops, %d of them%s, %.1f s CPU): cross-validated mAP@50 %.4f "
          "at weight 0.5, %.4f at weight 1, against %.4f: %s",
          DET_CROP_BACKBONE, c->ncrops, sample, c->cpu, c->map[1], c->map[2], c->map[0],
          c->gamma > 0 ? "kept" : "not kept");
    if (c->reg_map >= 0)
        logf_(t,
              "box refinement from the crops (ridge, penalty %g): cross-validated mAP@50 %.4f "
              "at weight %g, against %.4f: %s",
              c->reg_lambda, c->reg_map, c->gamma, c->reg_base, c->reg ? "kept" : "not kept");
}

/* det_crop_search's hooks: the user's cancel, and the stage's share of the progress (75 % to
 * the final stage's 80 %) moving with its images */
typedef struct crop_watch {
    const trainer *t;
    const search *s;
} crop_watch;

static int crop_abort(void *ctx) { return aborted(((const crop_watch *)ctx)->t); }

static void crop_progress(void *ctx, int done, int of)
{
    const crop_watch *w = ctx;
    progress(w->t, 0.75 + 0.05 * done / (of > 0 ? of : 1), "search", DET_V_TILES + 1,
             DET_V_TILES + 2, w->s->best_map);
}

/* Stage 2b: the crop classifier (det_crops.c) on the chosen heads'
 * held-out detections; it needs a split, and is kept only when it raises
 * their mAP@50 by the margin a more complex variant needs. */
static eng_status stage_crops(trainer *t, eng_detector *m, search *s, eng_diag *d)
{
    const eng_train_args *a = t->a;
    const char *e = getenv("VFS_DET_CROPS"); /* a measuring knob: off */
    if (!s->nfolds || s->best_map < 0 || (e && !strcmp(e, "off")))
        return ENG_OK;
    eng_backbone *cbb = NULL;
    for (int i = 0; i < a->nbackbones && !cbb; i++)
        if (!strcmp(eng_backbone_get_info(a->backbones[i])->name, DET_CROP_BACKBONE))
            cbb = a->backbones[i];
    if (!cbb) {
        snprintf(s->crop.note, sizeof s->crop.note, "backbone %s is not installed",
                 DET_CROP_BACKBONE);
        logf_(t, "crop classifier not tried: %s", s->crop.note);
        return ENG_OK;
    }
    /* what is left before the search's end, keeping the final fit's share */
    double used = cpu_now() - t->cpu0, final = s->final_cost[s->best];
    double left = a->budget_seconds > 0 ? a->budget_seconds * DET_SEARCH_END - used - final : 1e30;
    progress(t, 0.75, "search", DET_V_TILES + 1, DET_V_TILES + 2, s->best_map);
    det_pool sub = {0};
    eng_status st = crop_sample(t, s, &sub, d);
    det_crop_image *ims = st == ENG_OK ? malloc((size_t)sub.nimg * sizeof *ims) : NULL;
    if (st == ENG_OK && !ims)
        st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
    for (int j = 0; st == ENG_OK && j < sub.nimg; j++) {
        int i = s->hold[j];
        ims[j] = (det_crop_image){a->train[i].path, t->im[i].w, t->im[i].h, s->fold[i]};
    }
    det_crop_result *c = &s->crop;
    crop_watch w = {t, s};
    det_crop_hooks h = {&w, crop_abort, crop_progress};
    if (st == ENG_OK)
        st = det_crop_search(cbb, ims, sub.nimg, s->nfolds, t->ncat, sub.gt, sub.ngt, sub.p[0],
                             sub.np[0], s->best_nms, left, t->threads, &h, c, d);
    free(ims);
    if (st != ENG_OK) {
        pool_release(&sub);
        return st;
    }
    if (c->note[0] || (!(c->gamma > 0) && !c->reg)) {
        if (c->note[0])
            logf_(t, "crop classifier not tried: %s", c->note);
        else
            crop_log(t, c, c->nimg);
        pool_release(&sub);
        return ENG_OK;
    }
    crop_log(t, c, c->nimg);
    const eng_backbone_info *inf = eng_backbone_get_info(cbb);
    m->crop_bb_name = strdup(inf->name);
    m->crop_bb_checksum = strdup(inf->checksum);
    if (!m->crop_bb_name || !m->crop_bb_checksum) {
        pool_release(&sub);
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    }
    m->crop_dim = c->dim;
    m->crop_mean = c->mean;
    m->crop_wb = c->wb;
    m->crop_reg = c->reg;
    m->crop_nms = c->reg ? s->best_nms : 0; /* as det_crop_search scored it */
    c->mean = c->wb = c->reg = NULL;
    m->crop_gamma = c->gamma;
    s->best_map = c->heldout_map;
    /* the held-out figure reported without a test set: the rescored one */
    int on = s->best_nms > 0;
    char **held = s->best_size > 0 ? &s->sjson[s->best][s->best_size][on] : &s->vjson[s->best][on];
    /* the boxes of the images the crops came from */
    int ng = 0;
    for (int q = 0; q < sub.ngt; q++)
        if (sub.gt[q].image < c->nimg)
            sub.gt[ng++] = sub.gt[q];
    sub.ngt = ng;
    det_eval_extra x = {c->nimg < t->n ? "a sample of the training images, each held out once "
                                         "(cross-validation)"
                                       : "training images, each held out once (cross-validation)",
                        c->nimg, -1, NULL};
    char *json = NULL;
    st =
        det_metrics(sub.gt, sub.ngt, c->pred, c->npred, t->ncat, a->categories, &x, NULL, &json, d);
    if (st == ENG_OK) {
        free(*held);
        *held = json;
    }
    pool_release(&sub);
    return st;
}

/* Stage 3: the chosen variant fitted on every image, and its calibration. */
static eng_status stage_final(trainer *t, eng_detector *m, search *s, eng_diag *d)
{
    /* a plan of two: this fit, then the evaluation (trials done 0: the mount shows "trial 1/2";
     * reporting 2 of 2 here made it show 99 % through the last minute of training) */
    progress(t, 0.8, "final", 0, 2, s->best_map);
    m->nms_iou = s->best_nms;
    t->deadline = t->a->budget_seconds > 0 ? t->a->budget_seconds : 0;
    eng_status st = ENG_OK;
    int rc = t->a->hooks.detfit ? final_elsewhere(t, m, s, &st, d) : 1;
    if (rc < 0 || (rc == 1 && (st = fit(t, s->all, t->n, &s->vars[s->best], m, NULL, d)) != ENG_OK))
        return st;
    m->tiles = s->vars[s->best].tiles;
    m->tile_whole = s->vars[s->best].whole;
    if (s->best_size > 0) {
        if ((st = size_prior_of(t, s->all, t->n, m, d)) != ENG_OK)
            return st;
        m->size_weight = DET_SIZE_W[s->best_size];
    } else {
        free(m->size_prior);
        m->size_prior = NULL;
        m->size_weight = 0;
    }
    if (t->steps_done < t->steps_planned) {
        snprintf(s->budget_reason, sizeof s->budget_reason,
                 "budget: final fit cut to %d of %d steps (%s)", t->steps_done, t->steps_planned,
                 s->reason);
        s->reason = s->budget_reason;
    }
    /* confidences: the calibration the chosen variant's held-out detections
     * fit; without a split, the final model's own training detections
     * (optimistic, but the order, and so mAP, does not depend on it) */
    int on = s->best_nms > 0;
    if (s->vmap[s->best][0] >= 0) {
        const float *c =
            s->best_size > 0 ? s->scal[s->best][s->best_size][on] : s->vcal[s->best][on];
        m->cal_a = c[0];
        m->cal_b = c[1];
        m->calibrated = 1;
        return ENG_OK;
    }
    double m0, m1;
    float c[2][2];
    if ((st = score(t, m, s->all, t->n, &m0, &m1, NULL, c, d)) != ENG_OK)
        return st;
    m->cal_a = c[on][0];
    m->cal_b = c[on][1];
    m->calibrated = 1;
    return ENG_OK;
}

/* The recipe JSON of the chosen variant, into s->recipe and m->recipe. */
static void recipe_make(const trainer *t, eng_detector *m, search *s)
{
    const variant *v = &s->vars[s->best];
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "backbone", eng_backbone_get_info(t->bb)->name);
    cJSON_AddStringToObject(r, "features", t->node);
    cJSON_AddNumberToObject(r, "input", DET_SIZE);
    if (v->tiles) {
        cJSON *tl = cJSON_AddObjectToObject(r, "tiles");
        if (tl) {
            cJSON_AddNumberToObject(tl, "per_side", v->tiles);
            cJSON_AddNumberToObject(tl, "span", DET_TILE_SPAN);
            cJSON_AddNumberToObject(tl, "whole_image", v->whole);
        }
    }
    cJSON_AddStringToObject(r, "heatmap",
                            v->hidden ? "frozen pretrained depthwise 3x3 + "
                                        "trained 1x1 to 64 + ReLU + 1x1, sigmoid, "
                                        "CenterNet focal loss"
                                      : "frozen pretrained depthwise 3x3 + trained 1x1, "
                                        "sigmoid, CenterNet focal loss");
    cJSON_AddNumberToObject(r, "hidden", v->hidden);
    cJSON_AddStringToObject(r, "box",
                            v->finetune_wh ? "pretrained, 1x1 fine-tuned with GIoU" : "pretrained");
    cJSON_AddStringToObject(r, "augmentation", "horizontal flip");
    cJSON_AddStringToObject(r, "testTime", "heads on the features and their mirror, maps averaged");
    cJSON_AddNumberToObject(r, "nms_iou", s->best_nms);
    cJSON *cal = cJSON_AddObjectToObject(r, "confidence");
    if (cal) {
        cJSON_AddStringToObject(cal, "calibration",
                                s->vmap[s->best][0] >= 0 ? "Platt on held-out detections"
                                                         : "Platt on training detections");
        cJSON_AddNumberToObject(cal, "a", m->cal_a);
        cJSON_AddNumberToObject(cal, "b", m->cal_b);
    }
    cJSON_AddNumberToObject(r, "learning_rate", v->lr);
    cJSON_AddNumberToObject(r, "epochs", v->epochs);
    cJSON_AddNumberToObject(r, "pretrained_box_fit_iou", round(s->fitq * 1000) / 1000);
    if (s->best_map >= 0)
        cJSON_AddNumberToObject(r, "heldout_map50", round(s->best_map * 10000) / 10000);
    if (s->tiles_note[0])
        cJSON_AddStringToObject(r, "tiles_not_tried", s->tiles_note);
    if (s->best_size > 0) {
        cJSON *sp = cJSON_AddObjectToObject(r, "size_prior");
        if (sp) {
            cJSON_AddNumberToObject(sp, "weight", DET_SIZE_W[s->best_size]);
            cJSON_AddStringToObject(sp, "sizes",
                                    "mean log width and height of each "
                                    "category's training boxes, as shares "
                                    "of their image");
        }
    }
    const det_crop_result *c = &s->crop;
    if (c->note[0]) {
        cJSON *cc = cJSON_AddObjectToObject(r, "crop_classifier");
        if (cc)
            cJSON_AddStringToObject(cc, "not_tried", c->note);
    } else if (c->map[0] >= 0) {
        cJSON *cc = cJSON_AddObjectToObject(r, "crop_classifier");
        if (cc) {
            cJSON_AddStringToObject(cc, "backbone", DET_CROP_BACKBONE);
            cJSON_AddNumberToObject(cc, "weight", c->gamma);
            cJSON_AddNumberToObject(cc, "crops", c->ncrops);
            cJSON_AddNumberToObject(cc, "images", c->nimg);
            cJSON_AddNumberToObject(cc, "map50_weight_0_5", round(c->map[1] * 10000) / 10000);
            cJSON_AddNumberToObject(cc, "map50_weight_1", round(c->map[2] * 10000) / 10000);
            if (c->reg_map >= 0) {
                cJSON *br = cJSON_AddObjectToObject(cc, "box_refinement");
                if (br) {
                    cJSON_AddBoolToObject(br, "kept", m->crop_reg != NULL);
                    cJSON_AddNumberToObject(br, "map50", round(c->reg_map * 10000) / 10000);
                    cJSON_AddNumberToObject(br, "penalty", c->reg_lambda);
                }
            }
        }
    }
    cJSON *vs = cJSON_AddArrayToObject(r, "variants");
    for (int k = 0; vs && k < DET_NVARIANTS; k++) {
        if (s->vmap[k][0] < 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->vars[k].name);
        cJSON_AddNumberToObject(o, "map50", round(s->vmap[k][0] * 10000) / 10000);
        cJSON_AddNumberToObject(o, "map50_nms", round(s->vmap[k][1] * 10000) / 10000);
        cJSON *sw = s->smap[k][1][0] >= 0 ? cJSON_AddArrayToObject(o, "size_prior") : NULL;
        for (int w = 1; sw && w < DET_NSIZE; w++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "weight", DET_SIZE_W[w]);
            cJSON_AddNumberToObject(x, "map50", round(s->smap[k][w][0] * 10000) / 10000);
            cJSON_AddNumberToObject(x, "map50_nms", round(s->smap[k][w][1] * 10000) / 10000);
            cJSON_AddItemToArray(sw, x);
        }
        cJSON_AddItemToArray(vs, o);
    }
    s->recipe = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    free(m->recipe);
    m->recipe = s->recipe ? strdup(s->recipe) : NULL;
}

/* Stage 4: the metrics JSON: on the test images when there are some, else
 * the winner's held-out figure, else on the training images. */
static eng_status stage_evaluate(trainer *t, eng_detector *m, search *s, char **evaluation_json,
                                 eng_diag *d)
{
    const eng_train_args *a = t->a;
    char **held = s->best_size > 0 ? &s->sjson[s->best][s->best_size][s->best_nms > 0]
                                   : &s->vjson[s->best][s->best_nms > 0];
    progress(t, 0.9, "evaluation", 1, 2, s->best_map);
    if (a->test && a->ntest > 0) {
        eng_eval_opts eo = {
            .threads = t->threads,
            .abort = abort_cb,
            .ctx = t,
            .dataset_name = a->test_name ? a->test_name : "test",
            .detail = a->hooks.detail,
            .detail_ctx = a->hooks.ctx,
            .dets = a->hooks.dets, /* the Slurm workers may find the objects */
            .dets_ctx = a->hooks.ctx,
        };
        char *preds = NULL;
        eng_status st = det_evaluate(m, a->backbones, a->nbackbones, a->test, a->ntest, &eo,
                                     a->cache_dir, evaluation_json, &preds, d);
        free(preds);
        return st;
    }
    if (s->nfolds && *held) {
        /* the held-out figure of the winner, measured before the final fit */
        *evaluation_json = *held;
        *held = NULL;
        return ENG_OK;
    }
    eng_eval_opts eo = {.threads = t->threads,
                        .detail = a->hooks.detail,
                        .detail_ctx = a->hooks.ctx,
                        .dataset_name = s->nfolds ? "training images (no budget to hold out)"
                                                  : "training images (too few to hold out)"};
    return det_evaluate(m, a->backbones, a->nbackbones, a->train, a->ntrain, &eo, a->cache_dir,
                        evaluation_json, NULL, d);
}

eng_status eng_det_train(const eng_train_args *a, eng_detector **out, char **evaluation_json,
                         eng_diag *d)
{
    *out = NULL;
    *evaluation_json = NULL;
    eng_status st = check_args(a, d);
    if (st != ENG_OK)
        return st;
    trainer t;
    search s;
    memset(&s, 0, sizeof s);
    eng_detector *m = NULL;
    if ((st = trainer_start(&t, a, d)) != ENG_OK || (st = stage_features(&t, d)) != ENG_OK)
        goto done;
    if (!(m = model_new(&t))) {
        st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        goto done;
    }
    if ((st = search_init(&t, m, &s, d)) != ENG_OK || (st = stage_search(&t, m, &s, d)) != ENG_OK ||
        (st = stage_crops(&t, m, &s, d)) != ENG_OK || (st = stage_final(&t, m, &s, d)) != ENG_OK)
        goto done;
    recipe_make(&t, m, &s);
    logf_(&t, "chosen: %s, NMS %s, box-size prior %s (%s)", s.vars[s.best].name,
          s.best_nms > 0 ? "0.5" : "off",
          s.best_size > 0 ? (s.best_size == 1 ? "at weight 0.5" : "at weight 1") : "off", s.reason);
    if ((st = stage_evaluate(&t, m, &s, evaluation_json, d)) == ENG_OK)
        st = add_extra(evaluation_json, (cpu_now() - t.cpu0) / 60, s.reason,
                       s.recipe ? s.recipe : "{}", d);
done:
    search_release(&s);
    trainer_release(&t);
    if (st != ENG_OK) {
        eng_detector_free(m);
        free(*evaluation_json);
        *evaluation_json = NULL;
        return st;
    }
    *out = m;
    return ENG_OK;
}

eng_status eng_det_cache_features(eng_backbone *const *backbones, int nbackbones,
                                  const char *const *paths, int n, const char *cache_dir,
                                  int threads, int *computed, int *failed, eng_diag *d)
{
    *computed = 0;
    *failed = 0;
    eng_backbone *bb = NULL;
    eng_status st = det_pick_backbone(backbones, nbackbones, NULL, NULL, &bb, d);
    if (st != ENG_OK)
        return st;
    const eng_backbone_info *inf = eng_backbone_get_info(bb);
    uint16_t *buf = eng_alloc((size_t)inf->detection_features_dim * DET_CELLS * 2);
    if (!buf)
        return eng_fail(d, ENG_ENOMEM, "detection features: out of memory");
    for (int i = 0; i < n; i++) {
        int w, h, hit = 0;
        eng_diag ign;
        /* letterbox 0: as trainer_start sets it */
        st = det_features(bb, inf->detection_features, inf->detection_features_dim, 0, -1, paths[i],
                          cache_dir, threads, buf, &w, &h, &hit, &ign);
        if (st == ENG_ENOMEM) {
            eng_free(buf);
            return eng_fail(d, st, "detection features: out of memory");
        }
        if (st != ENG_OK)
            ++*failed;
        else if (!hit)
            ++*computed;
    }
    eng_free(buf);
    return ENG_OK;
}

/* ---- the worker's side of hooks.detfit ---- */

static int json_int(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? (int)x->valuedouble : -1;
}

/* The int array o[k] into a new array (*n entries); NULL on error. */
static int *json_ints(const cJSON *o, const char *k, int max, int *n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    *n = cJSON_GetArraySize(a);
    int *v = malloc(((size_t)*n + 1) * sizeof *v);
    if (!cJSON_IsArray(a) || !v) {
        free(v);
        return NULL;
    }
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= max) {
            free(v);
            return NULL;
        }
        v[i++] = (int)x->valuedouble;
    }
    return v;
}

static eng_status fit_backbone(const char *name, const char *checksum, const char *const *dirs,
                               int nd, eng_backbone **out, eng_diag *d)
{
    *out = NULL;
    for (int i = 0; i < nd; i++) {
        const char *base = strrchr(dirs[i], '/');
        base = base ? base + 1 : dirs[i];
        if (strcmp(base, name) != 0)
            continue;
        eng_status st = eng_backbone_open(dirs[i], out, d);
        if (st != ENG_OK)
            return st;
        if (strcmp(eng_backbone_get_info(*out)->checksum, checksum) == 0)
            return ENG_OK;
        eng_backbone_free(*out);
        *out = NULL;
        return eng_fail(d, ENG_ENOTFOUND,
                        "backbone \"%s\" in \"%s\" differs from the daemon's (checksum): install "
                        "the same backbones on the nodes",
                        name, dirs[i]);
    }
    return eng_fail(d, ENG_ENOTFOUND,
                    "backbone \"%s\" is not installed on this node: install it or put it in the "
                    "store's backbones/",
                    name);
}

/* The views of the job into t->im (t->n images set). */
static eng_status fit_views(trainer *t, const cJSON *views, eng_diag *d)
{
    int nv = cJSON_GetArraySize(views);
    if (!cJSON_IsArray(views) || nv < t->n || nv > t->n * DET_MAX_VIEWS)
        return eng_fail(d, ENG_EFORMAT, "the job's views are not valid");
    int i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, views)
    {
        det_img *im = &t->im[i];
        const cJSON *b = cJSON_GetArrayItem(o, 4);
        int nb = cJSON_GetArraySize(b) / 5;
        if (cJSON_GetArraySize(o) != 5 || !cJSON_IsArray(b) || cJSON_GetArraySize(b) % 5)
            return eng_fail(d, ENG_EFORMAT, "view %d is not valid", i);
        im->src = (int)cJSON_GetArrayItem(o, 0)->valuedouble;
        im->tile = (int)cJSON_GetArrayItem(o, 1)->valuedouble;
        im->w = (int)cJSON_GetArrayItem(o, 2)->valuedouble;
        im->h = (int)cJSON_GetArrayItem(o, 3)->valuedouble;
        if (im->src < 0 || im->src >= t->n || im->tile < -1 || im->tile >= DET_TILES * DET_TILES)
            return eng_fail(d, ENG_EFORMAT, "view %d is not valid", i);
        im->box = malloc(((size_t)nb + 1) * 4 * sizeof(float));
        im->cat = malloc(((size_t)nb + 1) * sizeof(int));
        t->nv = i + 1;
        if (!im->box || !im->cat)
            return eng_fail(d, ENG_ENOMEM, "training: out of memory");
        for (int q = 0; q < nb; q++) {
            for (int c = 0; c < 4; c++)
                im->box[4 * q + c] = (float)cJSON_GetArrayItem(b, 5 * q + c)->valuedouble;
            im->cat[q] = (int)cJSON_GetArrayItem(b, 5 * q + 4)->valuedouble;
            if (im->cat[q] < 0 || im->cat[q] >= t->ncat)
                return eng_fail(d, ENG_EFORMAT, "view %d is not valid", i);
        }
        im->nbox = nb;
        i++;
    }
    t->tiles_ready = t->nv > t->n;
    return ENG_OK;
}

/* Features of view i into memory, as stage_features keeps them. */
static eng_status fit_load(trainer *t, int i, eng_diag *d)
{
    det_img *im = &t->im[i];
    if (im->feat || i >= t->nv)
        return i >= t->nv ? eng_fail(d, ENG_EFORMAT, "view %d is missing", i) : ENG_OK;
    size_t per = (size_t)t->fdim * DET_CELLS;
    if (t->kept + per * 2 > DET_MEM_CAP && t->a->cache_dir)
        return ENG_OK; /* read back when needed, as here */
    uint16_t *f = eng_alloc(per * 2);
    if (!f)
        return eng_fail(d, ENG_ENOMEM, "training: out of memory");
    int w, h, hit = 0;
    eng_status st =
        det_features(t->bb, t->node, t->fdim, t->letterbox, im->tile, t->a->train[im->src].path,
                     t->a->cache_dir, t->threads, f, &w, &h, &hit, d);
    if (st != ENG_OK) {
        eng_free(f);
        return st;
    }
    im->feat = f;
    t->kept += per * 2;
    return ENG_OK;
}

/* The features of images idx (and their tiles when tiles) into memory. */
static eng_status fit_load_all(trainer *t, const int *idx, int n, int tiles, eng_diag *d)
{
    eng_status st = ENG_OK;
    for (int q = 0; q < n && st == ENG_OK; q++) {
        st = fit_load(t, idx[q], d);
        for (int k = 0; tiles && k < DET_TILES * DET_TILES && st == ENG_OK; k++)
            st = fit_load(t, t->n + idx[q] * DET_TILES * DET_TILES + k, d);
    }
    return st;
}

eng_status eng_det_fit_run(const char *job, const char *const *bb_dirs, int nbb,
                           const char *const *paths, int n, const char *cache_dir, int threads,
                           void **result, size_t *len, eng_diag *d)
{
    *result = NULL;
    *len = 0;
    cJSON *j = cJSON_Parse(job);
    const cJSON *vj = cJSON_GetObjectItemCaseSensitive(j, "variant");
    const char *bbname = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "backbone"));
    const char *sum = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "checksum"));
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "kind"));
    const cJSON *rj = cJSON_GetObjectItemCaseSensitive(j, "rng");
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(j, "pools");
    int ncat = json_int(j, "categories"), nsize = json_int(j, "sizes");
    int npool = cJSON_GetArraySize(pj);
    if (!j || !vj || !bbname || !sum || !kind || strcmp(kind, "detector-fit") != 0 ||
        cJSON_GetArraySize(rj) != 4 || ncat < 1 || nsize < 1 || nsize > DET_NSIZE || npool > 2 ||
        json_int(j, "images") != n || n < 1) {
        cJSON_Delete(j);
        return eng_fail(d, ENG_EFORMAT, "the job is not valid");
    }
    trainer t;
    memset(&t, 0, sizeof t);
    eng_train_args a;
    memset(&a, 0, sizeof a);
    eng_sample *smp = calloc((size_t)n, sizeof *smp);
    char **cats = calloc((size_t)ncat, sizeof *cats);
    int nfit = 0, nhold = 0, *fitidx = json_ints(j, "fit", n, &nfit);
    int *hold = json_ints(j, "hold", n, &nhold);
    eng_detector *m = NULL;
    det_pool pl[2][DET_NSIZE];
    memset(pl, 0, sizeof pl);
    wbuf b = {0};
    eng_status st = ENG_OK;
    if (!smp || !cats || !fitidx || !hold || nfit < 1) {
        st = eng_fail(d, ENG_EFORMAT, "the job is not valid");
        goto out;
    }
    for (int i = 0; i < n; i++)
        smp[i].path = paths[i];
    for (int c = 0; c < ncat; c++)
        cats[c] = "?"; /* names do not enter the fit or its detections */
    a.train = smp;
    a.ntrain = n;
    a.categories = (const char *const *)cats;
    a.ncat = ncat;
    a.cache_dir = cache_dir;
    t.a = &a;
    t.ncat = ncat;
    t.n = n;
    t.threads = threads > 0 ? threads : 1;
    t.letterbox = 0; /* as trainer_start */
    if ((st = fit_backbone(bbname, sum, bb_dirs, nbb, &t.bb, d)) != ENG_OK)
        goto out;
    const eng_backbone_info *inf = eng_backbone_get_info(t.bb);
    t.node = inf->detection_features;
    t.fdim = inf->detection_features_dim;
    if (!t.node || t.fdim < 1) {
        st = eng_fail(d, ENG_EUNSUPPORTED, "backbone \"%s\" has no detection features", bbname);
        goto out;
    }
    if ((st = load_consts(&t, d)) != ENG_OK || (st = trainer_buffers(&t, d)) != ENG_OK)
        goto out;
    if (!(t.im = calloc((size_t)n * DET_MAX_VIEWS, sizeof *t.im))) {
        st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        goto out;
    }
    if ((st = fit_views(&t, cJSON_GetObjectItemCaseSensitive(j, "views"), d)) != ENG_OK)
        goto out;
    variant v = {
        .name = "fit",
        .finetune_wh = json_int(vj, "finetune_wh") > 0,
        .hidden = json_int(vj, "hidden") > 0 ? json_int(vj, "hidden") : 0,
        .lr = (float)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(vj, "lr")),
        .epochs = json_int(vj, "epochs"),
        .tiles = json_int(vj, "tiles") > 0 ? json_int(vj, "tiles") : 0,
        .whole = json_int(vj, "whole") > 0,
    };
    int ptiles[2] = {0, 0}, pwhole[2] = {0, 0}, anytiles = 0;
    for (int p = 0; p < npool; p++) {
        const cJSON *x = cJSON_GetArrayItem(pj, p);
        ptiles[p] = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(x, 0));
        pwhole[p] = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(x, 1));
        anytiles |= ptiles[p] > 0;
    }
    if (v.epochs < 1 || !(v.lr > 0) || ((v.tiles || anytiles) && !t.tiles_ready)) {
        st = eng_fail(d, ENG_EFORMAT, "the job's variant is not valid");
        goto out;
    }
    for (int k = 0; k < 4; k++) {
        const char *hex = cJSON_GetStringValue(cJSON_GetArrayItem(rj, k));
        t.rng.s[k] = hex ? strtoull(hex, NULL, 16) : 0;
    }
    /* the maps the daemon's own fit would find held (dw_map) */
    const cJSON *mj = cJSON_GetObjectItemCaseSensitive(j, "maps"), *x;
    if (!(t.map_held = calloc((size_t)n * DET_MAX_VIEWS * 4, 1))) {
        st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        goto out;
    }
    cJSON_ArrayForEach(x, mj)
    {
        if (cJSON_IsNumber(x) && x->valuedouble >= 0 && x->valuedouble < 4.0 * t.nv)
            t.map_held[(int)x->valuedouble] = 1;
    }
    double mb = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "map_bytes"));
    t.map_bytes = mb > 0 ? (size_t)mb : 0;
    if ((st = fit_load_all(&t, fitidx, nfit, v.tiles, d)) != ENG_OK ||
        (npool > 0 && (st = fit_load_all(&t, hold, nhold, anytiles, d)) != ENG_OK))
        goto out;
    if (!(m = model_new(&t))) {
        st = eng_fail(d, ENG_ENOMEM, "training: out of memory");
        goto out;
    }
    /* the fit, as cross_validate and stage_final run it */
    t.cpu0 = cpu_now();
    double dl = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "deadline"));
    t.deadline = dl > 0 ? dl : 0;
    float loss = 0;
    if ((st = fit(&t, fitidx, nfit, &v, m, &loss, d)) != ENG_OK)
        goto out;
    double fit_cpu = cpu_now() - t.cpu0;
    if (npool > 0 && nhold > 0 && nsize > 1)
        st = size_prior_of(&t, fitidx, nfit, m, d);
    for (int p = 0; p < npool && st == ENG_OK; p++) {
        m->tiles = ptiles[p];
        m->tile_whole = pwhole[p];
        for (int w = 0; w < nsize && st == ENG_OK; w++) {
            m->size_weight = DET_SIZE_W[w];
            st = pool_add(&t, m, hold, nhold, &pl[p][w], d);
        }
    }
    if (st != ENG_OK)
        goto out;
    uint32_t magic = DET_FIT_MAGIC;
    int hid = m->hidden, k = hid > 0 ? hid : t.fdim;
    int32_t nviews = v.tiles ? nfit * (1 + DET_TILES * DET_TILES) : nfit;
    wb_put(&b, &magic, 4);
    wb_put(&b, t.rng.s, sizeof t.rng.s);
    int32_t head[8] = {t.steps_done, t.steps_planned, hid, t.fdim, t.ncat, npool, nsize, nviews};
    wb_put(&b, head, sizeof head);
    wb_put(&b, &loss, sizeof loss);
    wb_put(&b, &fit_cpu, sizeof fit_cpu);
    wb_put(&b, m->wc, (size_t)k * t.ncat * sizeof(float));
    wb_put(&b, m->bc, (size_t)t.ncat * sizeof(float));
    wb_put(&b, m->ww, (size_t)t.fdim * 4 * sizeof(float));
    wb_put(&b, m->bw, 4 * sizeof(float));
    if (hid > 0) {
        wb_put(&b, m->w1, (size_t)t.fdim * hid * sizeof(float));
        wb_put(&b, m->b1, (size_t)hid * sizeof(float));
    }
    for (int p = 0; p < npool; p++)
        for (int w = 0; w < nsize; w++)
            wb_pool(&b, &pl[p][w]);
    if (b.bad) {
        st = eng_fail(d, ENG_ENOMEM, "out of memory");
        goto out;
    }
    *result = b.p;
    *len = b.len;
    b.p = NULL;
out:
    free(b.p);
    for (int p = 0; p < 2; p++)
        for (int w = 0; w < DET_NSIZE; w++)
            pool_release(&pl[p][w]);
    eng_detector_free(m);
    trainer_release(&t);
    eng_backbone_free(t.bb);
    free(smp);
    free(cats);
    free(fitidx);
    free(hold);
    cJSON_Delete(j);
    return st;
}
