/* detection.c: COCO mean average precision on plain arrays.
 *
 * Design: reproduce pycocotools' COCOeval (bbox, area "all", iscrowd 0)
 * step for step, in double precision, so the figures agree to rounding:
 * - per image and category, detections sorted by descending score, stable
 *   for ties (pycocotools uses a mergesort on -score), cut to max_dets;
 * - IoU as maskApi's bbIou (no +1 on widths);
 * - greedy matching in score order: each detection takes the not yet
 *   matched ground truth with the highest IoU >= threshold (the later one
 *   in input order on equal IoU, as pycocotools' loop does);
 * - per category, the detections of all images are concatenated in
 *   ascending image id order and stably sorted by -score; precision is made
 *   monotone and sampled at the 101 recall points i * 0.01 (first index
 *   with recall >= point; 0 past the end);
 * - a category without ground truth gets -1 and is left out of the mean;
 *   a detection on an image without ground truth of its category is a
 *   false positive.
 * Grouping is done by sorting index arrays, so the cost is
 * O(n log n + sum over image/category groups of gt * dt).
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double eng_det_iou(const double *a, const double *b)
{
    double w = fmin(a[2] + a[0], b[2] + b[0]) - fmax(a[0], b[0]);
    if (w <= 0)
        return 0.0;
    double h = fmin(a[3] + a[1], b[3] + b[1]) - fmax(a[1], b[1]);
    if (h <= 0)
        return 0.0;
    double i = w * h;
    double u = a[2] * a[3] + b[2] * b[3] - i;
    return i / u;
}

/* qsort comparators need the arrays: pass them through file-local context
 * structs stored alongside the indices. */
typedef struct gt_key {
    int cat;
    long long image;
    int idx;
} gt_key;

typedef struct dt_key {
    int cat;
    long long image;
    double score;
    int idx;
} dt_key;

static int gt_key_cmp(const void *pa, const void *pb)
{
    const gt_key *a = pa, *b = pb;
    if (a->cat != b->cat)
        return a->cat < b->cat ? -1 : 1;
    if (a->image != b->image)
        return a->image < b->image ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static int dt_key_cmp(const void *pa, const void *pb)
{
    const dt_key *a = pa, *b = pb;
    if (a->cat != b->cat)
        return a->cat < b->cat ? -1 : 1;
    if (a->image != b->image)
        return a->image < b->image ? -1 : 1;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* One kept detection of a category, in concatenation order. */
typedef struct cat_det {
    double score;
    int pos;         /* position in the concatenation: the stable tie-break */
    int match_first; /* offset of its nious match flags */
} cat_det;

static int cat_det_cmp(const void *pa, const void *pb)
{
    const cat_det *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static int box_ok(const double *b)
{
    for (int i = 0; i < 4; i++)
        if (!isfinite(b[i]))
            return 0;
    return b[2] >= 0 && b[3] >= 0;
}

static eng_status check_inputs(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred,
                               int ncat, const double *ious, int nious, int max_dets, eng_diag *d)
{
    if (ngt < 0 || npred < 0 || ncat < 0 || nious < 1 || max_dets < 1)
        return eng_fail(d, ENG_EINVAL, "detection map: negative count or no threshold");
    if ((ngt > 0 && !gt) || (npred > 0 && !pred) || !ious)
        return eng_fail(d, ENG_EINVAL, "detection map: missing array");
    for (int i = 0; i < nious; i++)
        if (!(ious[i] > 0.0 && ious[i] <= 1.0))
            return eng_fail(d, ENG_EINVAL, "iou threshold %g: outside (0, 1]", ious[i]);
    for (int i = 0; i < ngt; i++) {
        if (gt[i].category < 0 || gt[i].category >= ncat)
            return eng_fail(d, ENG_EINVAL, "gt[%d]: category %d outside 0..%d", i, gt[i].category,
                            ncat - 1);
        if (!box_ok(gt[i].bbox))
            return eng_fail(d, ENG_EINVAL, "gt[%d]: bbox not finite or negative size", i);
    }
    for (int i = 0; i < npred; i++) {
        if (pred[i].category < 0 || pred[i].category >= ncat)
            return eng_fail(d, ENG_EINVAL, "pred[%d]: category %d outside 0..%d", i,
                            pred[i].category, ncat - 1);
        if (!box_ok(pred[i].bbox))
            return eng_fail(d, ENG_EINVAL, "pred[%d]: bbox not finite or negative size", i);
        if (!isfinite(pred[i].score))
            return eng_fail(d, ENG_EINVAL, "pred[%d]: score not finite", i);
    }
    return ENG_OK;
}

/* Greedy matching of one image/category group. dts are in score order;
 * writes match flags (1 = true positive) for each threshold into
 * flags[k * nious + t]. gt_used is scratch of ng * nious bytes. */
static void match_group(const eng_det_gt *gt, const gt_key *gk, int ng, const eng_det_pred *pred,
                        const dt_key *dk, int nd, const double *ious, int nious, double *iou_mat,
                        unsigned char *gt_used, unsigned char *flags)
{
    for (int k = 0; k < nd; k++)
        for (int g = 0; g < ng; g++)
            iou_mat[(size_t)k * ng + g] = eng_det_iou(pred[dk[k].idx].bbox, gt[gk[g].idx].bbox);
    memset(gt_used, 0, (size_t)ng * nious);
    for (int t = 0; t < nious; t++) {
        for (int k = 0; k < nd; k++) {
            double best = fmin(ious[t], 1.0 - 1e-10);
            int m = -1;
            for (int g = 0; g < ng; g++) {
                if (gt_used[(size_t)t * ng + g])
                    continue;
                double v = iou_mat[(size_t)k * ng + g];
                if (v < best)
                    continue;
                best = v;
                m = g;
            }
            flags[(size_t)k * nious + t] = m >= 0;
            if (m >= 0)
                gt_used[(size_t)t * ng + m] = 1;
        }
    }
}

/* AP of one category at one threshold from its detections sorted by score. */
static double category_ap(const cat_det *cd, int n, const unsigned char *flags, int nious, int t,
                          int npig, double *pr, double *rc)
{
    double tp = 0, fp = 0;
    for (int i = 0; i < n; i++) {
        if (flags[(size_t)cd[i].match_first + t])
            tp += 1;
        else
            fp += 1;
        rc[i] = tp / npig;
        pr[i] = tp / (fp + tp + 2.220446049250313e-16);
    }
    for (int i = n - 1; i > 0; i--)
        if (pr[i] > pr[i - 1])
            pr[i - 1] = pr[i];
    double sum = 0;
    int j = 0;
    for (int r = 0; r <= 100; r++) {
        double thr = r == 100 ? 1.0 : (double)r * (1.0 / 100.0);
        while (j < n && rc[j] < thr)
            j++;
        if (j >= n)
            break;
        sum += pr[j];
    }
    (void)nious;
    return sum / 101.0;
}

eng_status eng_det_map_ex(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred,
                          int ncat, const double *ious, int nious, int max_dets, double *map,
                          double *per_cat, eng_diag *d)
{
    eng_status st = check_inputs(gt, ngt, pred, npred, ncat, ious, nious, max_dets, d);
    if (st != ENG_OK)
        return st;
    if (!map)
        return eng_fail(d, ENG_EINVAL, "detection map: no output");

    gt_key *gk = malloc(sizeof *gk * (size_t)(ngt ? ngt : 1));
    dt_key *dk = malloc(sizeof *dk * (size_t)(npred ? npred : 1));
    cat_det *cd = malloc(sizeof *cd * (size_t)(npred ? npred : 1));
    unsigned char *flags = malloc((size_t)(npred ? npred : 1) * nious);
    double *pr = malloc(sizeof *pr * (size_t)(npred ? npred : 1));
    double *rc = malloc(sizeof *rc * (size_t)(npred ? npred : 1));
    double *sum = calloc((size_t)nious, sizeof *sum);
    int *ncounted = calloc((size_t)nious, sizeof *ncounted);
    double *iou_mat = NULL;
    unsigned char *gt_used = NULL;
    size_t iou_cap = 0, used_cap = 0;
    if (!gk || !dk || !cd || !flags || !pr || !rc || !sum || !ncounted) {
        st = eng_fail(d, ENG_ENOMEM, "detection map: out of memory");
        goto done;
    }
    for (int i = 0; i < ngt; i++)
        gk[i] = (gt_key){gt[i].category, gt[i].image, i};
    for (int i = 0; i < npred; i++)
        dk[i] = (dt_key){pred[i].category, pred[i].image, pred[i].score, i};
    qsort(gk, (size_t)ngt, sizeof *gk, gt_key_cmp);
    qsort(dk, (size_t)npred, sizeof *dk, dt_key_cmp);

    int gi = 0, di = 0;
    for (int c = 0; c < ncat; c++) {
        int g0 = gi, d0 = di;
        while (gi < ngt && gk[gi].cat == c)
            gi++;
        while (di < npred && dk[di].cat == c)
            di++;
        int npig = gi - g0;
        int ncd = 0, nflags = 0;
        /* walk images of this category in ascending id, merging gt and dt */
        int ga = g0, da = d0;
        while (ga < gi || da < di) {
            long long img;
            if (ga < gi && da < di)
                img = gk[ga].image < dk[da].image ? gk[ga].image : dk[da].image;
            else
                img = ga < gi ? gk[ga].image : dk[da].image;
            int gb = ga, db = da;
            while (gb < gi && gk[gb].image == img)
                gb++;
            while (db < di && dk[db].image == img)
                db++;
            int ng = gb - ga, nd = db - da;
            if (nd > max_dets)
                nd = max_dets;
            if (nd > 0) {
                size_t need = (size_t)nd * (ng ? ng : 1);
                if (need > iou_cap) {
                    free(iou_mat);
                    iou_mat = malloc(sizeof *iou_mat * need);
                    iou_cap = need;
                }
                size_t need_used = (size_t)(ng ? ng : 1) * nious;
                if (need_used > used_cap) {
                    free(gt_used);
                    gt_used = malloc(need_used);
                    used_cap = need_used;
                }
                if (!iou_mat || !gt_used) {
                    st = eng_fail(d, ENG_ENOMEM, "detection map: out of memory");
                    goto done;
                }
                match_group(gt, gk + ga, ng, pred, dk + da, nd, ious, nious, iou_mat, gt_used,
                            flags + nflags);
                for (int k = 0; k < nd; k++) {
                    cd[ncd] = (cat_det){dk[da + k].score, ncd, nflags + k * nious};
                    ncd++;
                }
                nflags += nd * nious;
            }
            ga = gb;
            da = db;
        }
        if (npig == 0) {
            if (per_cat)
                for (int t = 0; t < nious; t++)
                    per_cat[(size_t)t * ncat + c] = -1.0;
            continue;
        }
        qsort(cd, (size_t)ncd, sizeof *cd, cat_det_cmp);
        for (int t = 0; t < nious; t++) {
            double ap = category_ap(cd, ncd, flags, nious, t, npig, pr, rc);
            if (per_cat)
                per_cat[(size_t)t * ncat + c] = ap;
            sum[t] += ap;
            ncounted[t]++;
        }
    }
    for (int t = 0; t < nious; t++)
        map[t] = ncounted[t] ? sum[t] / ncounted[t] : -1.0;
done:
    free(gk);
    free(dk);
    free(cd);
    free(flags);
    free(pr);
    free(rc);
    free(sum);
    free(ncounted);
    free(iou_mat);
    free(gt_used);
    return st;
}

eng_status eng_det_map(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred, int ncat,
                       double iou, double *map, double *per_cat, eng_diag *d)
{
    return eng_det_map_ex(gt, ngt, pred, npred, ncat, &iou, 1, ENG_DET_MAX_DETS, map, per_cat, d);
}
