/* det_crops.c: the detector's second stage, a crop classifier. The heatmap
 * finds objects well on real photo sets but names and ranks them from
 * CenterNet's own features, which separate few-shot categories and
 * background poorly. Here each detection's crop (with some context) is
 * embedded by an ImageNet backbone and a logistic regression over
 * "background + categories" gives p(category); the detection's confidence
 * s becomes s^(1 - g) p^g. The search (det_train.c) trains the regression on
 * crops of the training images' held-out detections and boxes, and keeps
 * the stage only when it raises the cross-validated mAP@50.
 */
#include "budget_int.h"
#include "cls_int.h"
#include "det_int.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* The crop of box b (x, y, w, h in pixels of a ref_w x ref_h image) in an
 * im->w x im->h decoding of it, widened by DET_CROP_PAD of its side on
 * every side and clipped; at least 2 x 2 pixels. */
static eng_crop crop_of(const float *b, int ref_w, int ref_h, const eng_image *im)
{
    float sx = ref_w > 0 ? (float)im->w / (float)ref_w : 1;
    float sy = ref_h > 0 ? (float)im->h / (float)ref_h : 1;
    float w = b[2] > 1 ? b[2] : 1, h = b[3] > 1 ? b[3] : 1;
    float x1 = (b[0] - DET_CROP_PAD * w) * sx, y1 = (b[1] - DET_CROP_PAD * h) * sy;
    float x2 = (b[0] + w + DET_CROP_PAD * w) * sx, y2 = (b[1] + h + DET_CROP_PAD * h) * sy;
    x1 = x1 < 0 ? 0 : x1 > (float)im->w - 2 ? (float)im->w - 2 : x1;
    y1 = y1 < 0 ? 0 : y1 > (float)im->h - 2 ? (float)im->h - 2 : y1;
    x2 = x2 > (float)im->w ? (float)im->w : x2 < x1 + 2 ? x1 + 2 : x2;
    y2 = y2 > (float)im->h ? (float)im->h : y2 < y1 + 2 ? y1 + 2 : y2;
    return (eng_crop){x1, y1, x2 - x1, y2 - y1};
}

eng_status det_crop_embed(const eng_backbone *bb, const char *path, int ref_w, int ref_h,
                          const float *boxes, int n, int flip, int threads, float *out, int dim,
                          eng_diag *d)
{
    if (n <= 0)
        return ENG_OK;
    eng_image *im = NULL;
    eng_status st = eng_image_decode_file(path, 0, &im, d);
    if (st != ENG_OK)
        return st;
    int rows = flip ? 2 * n : n;
    const eng_image **ims = malloc((size_t)rows * sizeof *ims);
    eng_crop *cr = malloc((size_t)rows * sizeof *cr);
    int *fl = malloc((size_t)rows * sizeof *fl);
    if (!ims || !cr || !fl) {
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    } else {
        for (int r = 0; r < rows; r++) {
            ims[r] = im;
            cr[r] = crop_of(boxes + 4 * (r % n), ref_w, ref_h, im);
            fl[r] = r >= n;
        }
        eng_run_opts o = {.threads = threads};
        int got = 0;
        st = eng_backbone_embed_images(bb, ims, cr, fl, rows, 0, NULL, 0, out, &got, &o, d);
        if (st == ENG_OK && got != dim)
            st = eng_fail(d, ENG_EFORMAT, "detector: crop embedding has %d values, expected %d",
                          got, dim);
    }
    free(ims);
    free(cr);
    free(fl);
    eng_image_free(im);
    return st;
}

void det_crop_row(const float *x, const float *mean, int dim, double *z)
{
    double s = 0;
    for (int j = 0; j < dim; j++) {
        z[j] = (double)x[j] - mean[j];
        s += z[j] * z[j];
    }
    s = s > 0 ? 1 / sqrt(s) : 0;
    for (int j = 0; j < dim; j++)
        z[j] *= s;
}

eng_status det_crop_fit(const float *x, const int *y, int n, int dim, int k, float *mean, float *wb,
                        eng_diag *d)
{
    double *z = malloc(((size_t)n * dim + 1) * sizeof *z);
    double *w = calloc((size_t)(dim + 1) * k, sizeof *w);
    if (!z || !w) {
        free(z);
        free(w);
        return eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    }
    for (int j = 0; j < dim; j++)
        mean[j] = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dim; j++)
            mean[j] += x[(size_t)i * dim + j] / (float)n;
    for (int i = 0; i < n; i++)
        det_crop_row(x + (size_t)i * dim, mean, dim, z + (size_t)i * dim);
    int it = cls_logreg_fit(z, n, dim, y, k, 1.0 / (DET_CROP_C * n), w, 300, 1e-5, NULL, NULL);
    for (size_t j = 0; j < (size_t)(dim + 1) * k; j++)
        wb[j] = (float)w[j];
    free(z);
    free(w);
    return it < 0 ? eng_fail(d, ENG_ENOMEM, "detector: crop classifier did not fit") : ENG_OK;
}

void det_crop_probs(const float *mean, const float *wb, int dim, int k, const float *x, int n,
                    float *p)
{
    double *z = malloc((size_t)dim * sizeof *z);
    double *w = malloc((size_t)(dim + 1) * k * sizeof *w);
    double *o = malloc((size_t)k * sizeof *o);
    for (int i = 0; i < n; i++) {
        if (!z || !w || !o) {
            for (int c = 0; c < k; c++)
                p[(size_t)i * k + c] = 1;
            continue;
        }
        if (i == 0)
            for (size_t j = 0; j < (size_t)(dim + 1) * k; j++)
                w[j] = wb[j];
        det_crop_row(x + (size_t)i * dim, mean, dim, z);
        cls_logreg_predict(z, 1, dim, w, k, o);
        for (int c = 0; c < k; c++)
            p[(size_t)i * k + c] = (float)o[c];
    }
    free(z);
    free(w);
    free(o);
}

float det_crop_score(float s, float p, float g)
{
    if (!(g > 0))
        return s;
    return powf(s > 1e-12f ? s : 1e-12f, 1 - g) * powf(p > 1e-12f ? p : 1e-12f, g);
}

/* The confidences out[0..n) of one image's objects at weight g, given
 * their confidences s (most confident first) and, for the first k, the
 * crop probability p of their category: those k rescored, the rest in
 * their order below every rescored one. A crop costs a backbone run, so
 * only the k most confident are looked at; the tail keeps its recall. */
static void rescore_list(const float *s, const float *p, int n, int k, float g, float *out)
{
    float lo = 1;
    for (int i = 0; i < k; i++) {
        out[i] = det_crop_score(s[i], p[i], g);
        lo = out[i] < lo ? out[i] : lo;
    }
    float sk = k > 0 && s[k - 1] > 1e-12f ? s[k - 1] : 1e-12f;
    for (int i = k; i < n; i++)
        out[i] = g > 0 ? lo * (s[i] < sk ? s[i] / sk : 1) : s[i];
}

eng_status det_crop_rescore(const eng_detector *m, const eng_backbone *cbb, const char *path,
                            int img_w, int img_h, eng_det_object *o, int *n, int threads,
                            eng_diag *d)
{
    if (!det_crop_on(m) || *n <= 0)
        return ENG_OK;
    qsort(o, (size_t)*n, sizeof *o, det_obj_cmp);
    int k = *n < DET_CROP_TOPK ? *n : DET_CROP_TOPK, nc = m->ncat + 1;
    float *box = malloc((size_t)k * 4 * sizeof *box);
    float *x = malloc((size_t)k * m->crop_dim * sizeof *x);
    float *p = malloc((size_t)k * nc * sizeof *p);
    float *sc = malloc((size_t)*n * 3 * sizeof *sc); /* confidences, p, new confidences */
    double *z = malloc(((size_t)m->crop_dim + 1) * sizeof *z);
    eng_status st = ENG_OK;
    if (!box || !x || !p || !sc || !z)
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    for (int i = 0; i < k && st == ENG_OK; i++) {
        box[4 * i] = o[i].x;
        box[4 * i + 1] = o[i].y;
        box[4 * i + 2] = o[i].w;
        box[4 * i + 3] = o[i].h;
    }
    if (st == ENG_OK)
        st = det_crop_embed(cbb, path, img_w, img_h, box, k, 0, threads, x, m->crop_dim, d);
    if (st == ENG_OK) {
        det_crop_probs(m->crop_mean, m->crop_wb, m->crop_dim, nc, x, k, p);
        float *ps = sc + *n, *out = sc + 2 * *n;
        for (int i = 0; i < *n; i++) {
            sc[i] = o[i].score;
            ps[i] = i < k ? p[(size_t)i * nc + o[i].category] : 0;
        }
        rescore_list(sc, ps, *n, k, m->crop_gamma, out);
        for (int i = 0; i < *n; i++)
            o[i].score = out[i];
        for (int i = 0; i < k && m->crop_reg; i++) {
            float t[DET_BOX_T], b[4] = {o[i].x, o[i].y, o[i].w, o[i].h};
            det_crop_row(x + (size_t)i * m->crop_dim, m->crop_mean, m->crop_dim, z);
            det_boxreg_predict(m->crop_reg, z, m->crop_dim, t);
            det_box_apply(t, img_w, img_h, b);
            o[i].x = b[0], o[i].y = b[1], o[i].w = b[2], o[i].h = b[3];
        }
        qsort(o, (size_t)*n, sizeof *o, det_obj_cmp);
    }
    /* corrected boxes may now cover one object twice: NMS again, as the
     * search scored them */
    int again = st == ENG_OK && m->crop_reg && m->crop_nms > 0;
    eng_det_object *kept = again ? malloc((size_t)*n * sizeof *kept) : NULL;
    if (kept) {
        *n = det_merge(o, *n, m->crop_nms, kept, *n);
        memcpy(o, kept, (size_t)*n * sizeof *o);
    } else if (again) {
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    }
    free(kept);
    free(z);
    free(box);
    free(x);
    free(p);
    free(sc);
    return st;
}

/* ---- the search's side ---- */

int det_crop_images(int n, int room)
{
    int least = n < DET_CROP_MIN_IMAGES ? n : DET_CROP_MIN_IMAGES;
    if (room >= n)
        return n;
    if (room < least)
        return 0;
    return room - (room - least) % DET_CROP_IMAGE_STEP;
}

#define CROP_NG 2
#define DET_CROP_PLAN 8 /* images after the first whose mean cost re-plans the sample */
static const float CROP_G[CROP_NG] = {0.5f, 1};

static int pred_cmp(const void *a, const void *b)
{
    const eng_det_pred *x = a, *y = b;
    if (x->image != y->image)
        return (x->image > y->image) - (x->image < y->image);
    if (x->score != y->score)
        return (x->score < y->score) - (x->score > y->score);
    if (x->category != y->category) /* ties in a fixed order, as det_obj_cmp */
        return x->category - y->category;
    if (x->bbox[0] != y->bbox[0])
        return x->bbox[0] < y->bbox[0] ? -1 : 1;
    return (x->bbox[1] > y->bbox[1]) - (x->bbox[1] < y->bbox[1]);
}

/* The rows of the crop set: each kept detection (label: the category of the
 * box it overlaps at IoU >= 0.5, background under 0.3, else -1: not
 * trained on; t: the correction to the box it overlaps most when that is
 * at least DET_BOXREG_MIN_IOU, else NaN), then each box and its mirror
 * image. */
typedef struct crop_rows {
    float *x, *t;
    int *y, *img, *pred; /* pred: index of the detection, -1 for a box */
    int n, cap;
} crop_rows;

static eng_status rows_grow(crop_rows *r, int more, int dim, eng_diag *d)
{
    if (r->n + more <= r->cap)
        return ENG_OK;
    int cap = (r->n + more) * 2;
    float *x = realloc(r->x, (size_t)cap * dim * sizeof *x);
    if (x)
        r->x = x;
    int *y = realloc(r->y, (size_t)cap * sizeof *y);
    if (y)
        r->y = y;
    int *im = realloc(r->img, (size_t)cap * sizeof *im);
    if (im)
        r->img = im;
    int *p = realloc(r->pred, (size_t)cap * sizeof *p);
    if (p)
        r->pred = p;
    float *t = realloc(r->t, (size_t)cap * DET_BOX_T * sizeof *t);
    if (t)
        r->t = t;
    if (!x || !y || !im || !p || !t)
        return eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    r->cap = cap;
    return ENG_OK;
}

/* Embeds image i's kept detections pred[0..np) and its boxes gt[0..ngt). */
static eng_status image_rows(const eng_backbone *cbb, const det_crop_image *im, int i, int dim,
                             int ncat, const eng_det_pred *pred, int np, int p0,
                             const eng_det_gt *gt, int ngt, int threads, crop_rows *r, eng_diag *d)
{
    int rows = np + 2 * ngt;
    float *box = malloc(((size_t)np + ngt + 1) * 4 * sizeof *box);
    eng_status st = box ? rows_grow(r, rows, dim, d) : eng_fail(d, ENG_ENOMEM, "out of memory");
    for (int j = 0; j < np + ngt && st == ENG_OK; j++) {
        const double *b = j < np ? pred[j].bbox : gt[j - np].bbox;
        for (int q = 0; q < 4; q++)
            box[4 * j + q] = (float)b[q];
    }
    float *x = st == ENG_OK ? r->x + (size_t)r->n * dim : NULL;
    if (st == ENG_OK)
        st = det_crop_embed(cbb, im->path, im->w, im->h, box, np, 0, threads, x, dim, d);
    if (st == ENG_OK && ngt)
        st = det_crop_embed(cbb, im->path, im->w, im->h, box + 4 * np, ngt, 1, threads,
                            x + (size_t)np * dim, dim, d);
    for (int j = 0; j < rows && st == ENG_OK; j++) {
        int k = r->n + j, y = -1;
        float *t = r->t + (size_t)k * DET_BOX_T;
        t[0] = NAN;
        if (j < np) {
            double best = 0;
            int bc = ncat, bg = -1;
            for (int g = 0; g < ngt; g++) {
                double o = eng_det_iou(pred[j].bbox, gt[g].bbox);
                if (o > best) {
                    best = o;
                    bc = gt[g].category;
                    bg = g;
                }
            }
            y = best >= 0.5 ? bc : best < 0.3 ? ncat : -1;
            if (best >= DET_BOXREG_MIN_IOU)
                det_box_target(pred[j].bbox, gt[bg].bbox, t);
        } else {
            y = gt[(j - np) % ngt].category;
        }
        r->y[k] = y;
        r->img[k] = i;
        r->pred[k] = j < np ? p0 + j : -1;
    }
    if (st == ENG_OK)
        r->n += rows;
    free(box);
    return st;
}

/* Fits on the rows whose image is not in fold f (every row: f < 0). */
static eng_status fold_fit(const crop_rows *r, const det_crop_image *ims, int f, int dim, int k,
                           float *mean, float *wb, eng_diag *d)
{
    float *x = malloc(((size_t)r->n + 1) * dim * sizeof *x);
    int *y = malloc(((size_t)r->n + 1) * sizeof *y);
    int n = 0;
    eng_status st = x && y ? ENG_OK : eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    for (int i = 0; i < r->n && st == ENG_OK; i++) {
        if (r->y[i] < 0 || (f >= 0 && ims[r->img[i]].fold == f))
            continue;
        memcpy(x + (size_t)n * dim, r->x + (size_t)i * dim, (size_t)dim * sizeof *x);
        y[n++] = r->y[i];
    }
    if (st == ENG_OK)
        st = n ? det_crop_fit(x, y, n, dim, k, mean, wb, d)
               : eng_fail(d, ENG_EINVAL, "detector: no crops to train on");
    free(x);
    free(y);
    return st;
}

/* q = pred (sorted by image, then confidence) rescored at weight g with
 * the probabilities prob [np, k] of each image's first DET_CROP_TOPK;
 * sc: scratch of 3 np floats. */
static void rescore_all(const eng_det_pred *pred, int np, const float *prob, int k, float g,
                        float *sc, eng_det_pred *q)
{
    float *ps = sc + np, *out = sc + 2 * np;
    for (int a = 0, b; a < np; a = b) {
        for (b = a; b < np && pred[b].image == pred[a].image; b++) {
            sc[b] = (float)pred[b].score;
            ps[b] = b - a < DET_CROP_TOPK ? prob[(size_t)b * k + pred[b].category] : 0;
        }
        int kk = b - a < DET_CROP_TOPK ? b - a : DET_CROP_TOPK;
        rescore_list(sc + a, ps + a, b - a, kk, g, out + a);
    }
    for (int j = 0; j < np; j++) {
        q[j] = pred[j];
        q[j].score = out[j];
    }
}

/* The box refinement's penalties, tried in every fold; the one with the
 * least held-out squared error of the corrections is kept. */
#define REG_NL 3
static const double REG_LAMBDA[REG_NL] = {0.3, 3, 30};

/* Fits the box refinement at lambda[0..nl) into w on the detections with a
 * correction whose image is not in fold f (every one: f < 0), their rows
 * normalised by mean. *n: how many. */
static eng_status reg_fit(const crop_rows *r, const det_crop_image *ims, int f, int dim,
                          const float *mean, const double *lambda, int nl, float *w, int *n,
                          eng_diag *d)
{
    double *z = malloc(((size_t)r->n + 1) * dim * sizeof *z);
    float *t = malloc(((size_t)r->n + 1) * DET_BOX_T * sizeof *t);
    eng_status st = z && t ? ENG_OK : eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    *n = 0;
    for (int i = 0; i < r->n && st == ENG_OK; i++) {
        const float *ti = r->t + (size_t)i * DET_BOX_T;
        if (r->pred[i] < 0 || isnan(ti[0]) || (f >= 0 && ims[r->img[i]].fold == f))
            continue;
        det_crop_row(r->x + (size_t)i * dim, mean, dim, z + (size_t)*n * dim);
        memcpy(t + (size_t)*n * DET_BOX_T, ti, DET_BOX_T * sizeof *t);
        (*n)++;
    }
    if (st == ENG_OK && *n)
        st = det_boxreg_fit(z, t, *n, dim, lambda, nl, w, d);
    free(z);
    free(t);
    return st;
}

/* q's boxes corrected by delta [np, DET_BOX_T] where it has one (not NaN),
 * then NMS at nms_iou again (0: none) per image and category, as
 * det_crop_rescore does: two corrected boxes may now cover one object.
 * Returns how many are left, q compacted by image then confidence. */
static int refine_all(eng_det_pred *q, int np, const float *delta, const det_crop_image *ims,
                      float nms_iou)
{
    for (int j = 0; j < np; j++) {
        const float *t = delta + (size_t)j * DET_BOX_T;
        if (isnan(t[0]))
            continue;
        float b[4];
        for (int v = 0; v < 4; v++)
            b[v] = (float)q[j].bbox[v];
        det_box_apply(t, ims[q[j].image].w, ims[q[j].image].h, b);
        for (int v = 0; v < 4; v++)
            q[j].bbox[v] = b[v];
    }
    if (!(nms_iou > 0))
        return np;
    qsort(q, (size_t)np, sizeof *q, pred_cmp);
    int k = 0;
    for (int a = 0, b; a < np; a = b) {
        int first = k;
        for (b = a; b < np && q[b].image == q[a].image; b++) {
            int keep = 1;
            for (int j = first; j < k && keep; j++)
                keep =
                    q[j].category != q[b].category || eng_det_iou(q[j].bbox, q[b].bbox) <= nms_iou;
            if (keep)
                q[k++] = q[b];
        }
    }
    return k;
}

void det_crop_result_release(det_crop_result *c)
{
    free(c->reg);
    free(c->mean);
    free(c->wb);
    free(c->pred);
    memset(c, 0, sizeof *c);
}

eng_status det_crop_search(const eng_backbone *cbb, const det_crop_image *ims, int n, int nfolds,
                           int ncat, const eng_det_gt *gt, int ngt, const eng_det_pred *pred0,
                           int npred0, float nms_iou, double cpu_left, int threads,
                           const det_crop_hooks *h, det_crop_result *c, eng_diag *d)
{
    memset(c, 0, sizeof *c);
    for (int w = 0; w <= CROP_NG; w++)
        c->map[w] = -1;
    c->reg_map = -1;
    double c0 = budget_cpu_now();
    int dim = 0, k = ncat + 1;
    eng_status st = eng_backbone_embed_dim(cbb, 0, NULL, 0, &dim, d);
    if (st != ENG_OK)
        return st;
    c->dim = dim;
    /* the detections, by image then confidence; the first DET_CROP_TOPK of
     * each image are embedded */
    eng_det_pred *pred = malloc(((size_t)npred0 + 1) * sizeof *pred);
    eng_det_gt *g = malloc(((size_t)ngt + 1) * sizeof *g);
    float *prob = NULL, *delta = NULL, *regw = NULL;
    double *zrow = NULL;
    crop_rows r = {0};
    if (!pred || !g) {
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
        goto done;
    }
    memcpy(pred, pred0, (size_t)npred0 * sizeof *pred);
    qsort(pred, (size_t)npred0, sizeof *pred, pred_cmp);
    int np = npred0, least = n < DET_CROP_MIN_IMAGES ? n : DET_CROP_MIN_IMAGES;
    /* rows: each image's first DET_CROP_TOPK detections, its boxes twice;
     * the images whose rows fit in memory */
    long rows = 0, *ri = calloc((size_t)n + 1, sizeof *ri);
    int fit = 0;
    if (!ri) {
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
        goto done;
    }
    for (int q = 0; q < ngt; q++)
        ri[gt[q].image] += 2;
    for (int j = 0, run = 0; j < np; j++) {
        run = j && pred[j].image == pred[j - 1].image ? run + 1 : 0;
        ri[pred[j].image] += run < DET_CROP_TOPK;
    }
    while (fit < n && rows + ri[fit] <= DET_CROP_MAX_ROWS)
        rows += ri[fit++];
    free(ri);
    int nfit = det_crop_images(n, fit);
    if (!nfit) {
        snprintf(c->note, sizeof c->note,
                 "too many crops for memory (%d images fit in %d crops, at least %d needed)", fit,
                 DET_CROP_MAX_ROWS, least);
        goto done;
    }
    n = nfit;
    /* every image's rows; the first one's cost says how many fit, and the
     * mean of the next DET_CROP_PLAN says it again (the first one also
     * pays for warming the backbone up) */
    double c1 = c0;
    for (int i = 0, pj = 0; i < n && st == ENG_OK; i++) {
        if (h && h->abort && h->abort(h->ctx)) {
            st = eng_fail(d, ENG_EABORTED, "training cancelled");
            break;
        }
        if (h && h->progress)
            h->progress(h->ctx, i, n);
        int p0 = pj, ng = 0;
        while (pj < np && pred[pj].image == i)
            pj++;
        for (int q = 0; q < ngt; q++)
            if (gt[q].image == i)
                g[ng++] = gt[q];
        int kp = pj - p0 < DET_CROP_TOPK ? pj - p0 : DET_CROP_TOPK;
        st = image_rows(cbb, &ims[i], i, dim, ncat, pred + p0, kp, p0, g, ng, threads, &r, d);
        if (st == ENG_OK && (i == 0 || i == DET_CROP_PLAN)) {
            double now = budget_cpu_now(), each = (now - c1) / (i ? i : 1);
            double left = cpu_left - (now - c0);
            c1 = now;
            int room =
                det_crop_images(nfit, each > 0 ? (int)fmin(i + 1 + left / each, nfit) : nfit);
            if (!room) {
                snprintf(c->note, sizeof c->note,
                         "budget: no room for the crop classifier (about %.0f CPU s needed for "
                         "%d images, %.0f left)",
                         each * least, least, cpu_left);
                goto done;
            }
            n = room;
        }
    }
    c->nimg = n;
    c->ncrops = r.n;
    /* the detections and boxes of those images */
    while (np > 0 && pred[np - 1].image >= n)
        np--;
    int ng = 0;
    for (int q = 0; q < ngt; q++)
        if (gt[q].image < n)
            g[ng++] = gt[q];
    gt = g;
    ngt = ng;
    /* held-out probabilities of each kept detection, fold by fold */
    /* and, at each penalty, the held-out corrections delta [REG_NL, np,
     * DET_BOX_T] of the box refinement (NaN: none) and their squared error */
    prob = malloc(((size_t)np + 1) * k * sizeof *prob);
    c->mean = malloc((size_t)dim * sizeof *c->mean);
    c->wb = malloc((size_t)(dim + 1) * k * sizeof *c->wb);
    delta = malloc(((size_t)np + 1) * REG_NL * DET_BOX_T * sizeof *delta);
    regw = malloc((size_t)REG_NL * (dim + 1) * DET_BOX_T * sizeof *regw);
    zrow = malloc((size_t)dim * sizeof *zrow);
    if (st == ENG_OK && (!prob || !c->mean || !c->wb || !delta || !regw || !zrow))
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    for (size_t j = 0; st == ENG_OK && j < (size_t)np * REG_NL * DET_BOX_T; j++)
        delta[j] = NAN;
    double err[REG_NL] = {0};
    int reg_folds = 0;
    for (int f = 0; f < nfolds && st == ENG_OK; f++) {
        if ((st = fold_fit(&r, ims, f, dim, k, c->mean, c->wb, d)) != ENG_OK)
            break;
        for (int i = 0; i < r.n; i++)
            if (r.pred[i] >= 0 && ims[r.img[i]].fold == f)
                det_crop_probs(c->mean, c->wb, dim, k, r.x + (size_t)i * dim, 1,
                               prob + (size_t)r.pred[i] * k);
        int nr = 0;
        if ((st = reg_fit(&r, ims, f, dim, c->mean, REG_LAMBDA, REG_NL, regw, &nr, d)) != ENG_OK)
            break;
        if (!nr)
            continue;
        reg_folds++;
        for (int i = 0; i < r.n; i++) {
            if (r.pred[i] < 0 || ims[r.img[i]].fold != f)
                continue;
            det_crop_row(r.x + (size_t)i * dim, c->mean, dim, zrow);
            const float *ti = r.t + (size_t)i * DET_BOX_T;
            for (int l = 0; l < REG_NL; l++) {
                float *dl = delta + ((size_t)l * np + r.pred[i]) * DET_BOX_T;
                det_boxreg_predict(regw + (size_t)l * (dim + 1) * DET_BOX_T, zrow, dim, dl);
                for (int v = 0; v < DET_BOX_T && !isnan(ti[0]); v++)
                    err[l] += (double)(dl[v] - ti[v]) * (dl[v] - ti[v]);
            }
        }
    }
    /* mAP@50 of the detections at each weight, 0 (as they were) first */
    eng_det_pred *q = malloc(((size_t)np + 1) * sizeof *q);
    float *sc = malloc(((size_t)np + 1) * 3 * sizeof *sc);
    if (st == ENG_OK && (!q || !sc))
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    double iou = 0.5;
    int best = -1;
    double margin = det_crop_margin(n);      /* every one of the n images held out once */
    const char *e = getenv("VFS_DET_CROPS"); /* a measuring knob: always (off: det_train.c) */
    int force = e && !strcmp(e, "always");
    double best_map = -1;
    for (int w = 0; w <= CROP_NG && st == ENG_OK; w++) {
        rescore_all(pred, np, prob, k, w ? CROP_G[w - 1] : 0, sc, q);
        st = eng_det_map_ex(gt, ngt, q, np, ncat, &iou, 1, ENG_DET_MAX_DETS, &c->map[w], NULL, d);
        /* a weight must win as a more complex variant must (unless
         * forced, for measuring) */
        if (st == ENG_OK && w == 0)
            best_map = c->map[0];
        else if (st == ENG_OK && (c->map[w] > best_map * (1 + margin) + 1e-9 ||
                                  (force && (best < 0 || c->map[w] > best_map)))) {
            best = w;
            best_map = c->map[w];
        }
    }
    /* the box refinement at the chosen weight, with the penalty whose
     * corrections erred least. It costs no crop of its own, so it is an
     * option of the stage, like the weight: kept when it raises the
     * held-out mAP@50, as long as the stage then beats the detections as
     * they were by the margin a more complex variant needs */
    int lb = 0, keep_reg = 0;
    for (int l = 1; l < REG_NL; l++)
        lb = err[l] < err[lb] ? l : lb;
    float gamma = best > 0 ? CROP_G[best - 1] : 0;
    const float *dl = delta + (size_t)lb * np * DET_BOX_T;
    if (st == ENG_OK && reg_folds == nfolds) {
        rescore_all(pred, np, prob, k, gamma, sc, q);
        int nq = refine_all(q, np, dl, ims, nms_iou);
        st = eng_det_map_ex(gt, ngt, q, nq, ncat, &iou, 1, ENG_DET_MAX_DETS, &c->reg_map, NULL, d);
        c->reg_lambda = REG_LAMBDA[lb];
        c->reg_base = best_map;
        e = getenv("VFS_DET_BOXREG"); /* a measuring knob: always, off */
        int always = e && !strcmp(e, "always"), off = e && !strcmp(e, "off");
        if (st == ENG_OK && !off &&
            (always ||
             (c->reg_map > best_map + 1e-9 && c->reg_map > c->map[0] * (1 + margin) + 1e-9))) {
            keep_reg = 1;
            best_map = c->reg_map;
        }
    }
    if (st == ENG_OK && (best > 0 || keep_reg)) {
        c->gamma = gamma;
        c->heldout_map = best_map;
        rescore_all(pred, np, prob, k, c->gamma, sc, q);
        c->npred = keep_reg ? refine_all(q, np, dl, ims, nms_iou) : np;
        c->pred = q;
        q = NULL;
        st = fold_fit(&r, ims, -1, dim, k, c->mean, c->wb, d);
        c->reg = keep_reg ? malloc((size_t)(dim + 1) * DET_BOX_T * sizeof *c->reg) : NULL;
        if (st == ENG_OK && keep_reg && !c->reg)
            st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
        if (st == ENG_OK && keep_reg)
            st = reg_fit(&r, ims, -1, dim, c->mean, &c->reg_lambda, 1, c->reg, &c->nreg, d);
    }
    free(q);
    free(sc);
done:
    c->cpu = budget_cpu_now() - c0;
    free(pred);
    free(g);
    free(prob);
    free(delta);
    free(regw);
    free(zrow);
    free(r.t);
    free(r.x);
    free(r.y);
    free(r.img);
    free(r.pred);
    if (st != ENG_OK || (!(c->gamma > 0) && !c->reg)) {
        free(c->mean);
        free(c->wb);
        free(c->pred);
        free(c->reg);
        c->reg = NULL;
        c->mean = c->wb = NULL;
        c->pred = NULL;
        c->npred = 0;
        c->gamma = 0;
    }
    return st;
}
