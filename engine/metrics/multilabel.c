/* multilabel.c: per-tag average precision, precision and recall at a
 * threshold, their means, and the F1-best threshold of a tag (the rules are
 * in multilabel.h). */
#include "metrics.h"
#include "metrics_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void eng_ml_metrics_release(eng_ml_metrics *m)
{
    if (!m)
        return;
    free(m->tag_ap);
    free(m->tag_precision);
    free(m->tag_recall);
    free(m->tag_images);
    memset(m, 0, sizeof *m);
}

eng_status eng_ml_metrics_compute(const float *scores, const uint8_t *truth, const float *thr,
                                  int n, int ncat, eng_ml_metrics *out, eng_diag *d)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || ncat < 1)
        return eng_fail(d, ENG_EINVAL, "metrics: need at least one image and one tag");
    for (size_t i = 0; i < (size_t)n * ncat; i++)
        if (!isfinite(scores[i]))
            return eng_fail(d, ENG_EINVAL, "metrics: image %zu has a score that is not finite",
                            i / (size_t)ncat);
    out->n = n;
    out->ncat = ncat;
    out->tag_ap = malloc((size_t)ncat * sizeof *out->tag_ap);
    out->tag_precision = malloc((size_t)ncat * sizeof *out->tag_precision);
    out->tag_recall = malloc((size_t)ncat * sizeof *out->tag_recall);
    out->tag_images = calloc((size_t)ncat, sizeof *out->tag_images);
    int *pos = malloc((size_t)n * sizeof *pos);
    if (!out->tag_ap || !out->tag_precision || !out->tag_recall || !out->tag_images || !pos) {
        free(pos);
        eng_ml_metrics_release(out);
        return eng_fail(d, ENG_ENOMEM, "metrics: out of memory");
    }
    long long tp_all = 0, fp_all = 0, fn_all = 0;
    double ap_sum = 0;
    int ap_n = 0;
    for (int c = 0; c < ncat; c++) {
        long long tp = 0, fp = 0, fn = 0;
        for (int i = 0; i < n; i++) {
            pos[i] = truth[(size_t)i * ncat + c] != 0;
            int taken = scores[(size_t)i * ncat + c] >= thr[c];
            out->tag_images[c] += pos[i];
            tp += taken && pos[i];
            fp += taken && !pos[i];
            fn += !taken && pos[i];
        }
        out->tag_ap[c] = eng_average_precision(scores + c, ncat, pos, n);
        out->tag_precision[c] = tp + fp ? (double)tp / (double)(tp + fp) : 0;
        out->tag_recall[c] = tp + fn ? (double)tp / (double)(tp + fn) : -1;
        if (out->tag_ap[c] >= 0) {
            ap_sum += out->tag_ap[c];
            ap_n++;
        }
        tp_all += tp;
        fp_all += fp;
        fn_all += fn;
    }
    free(pos);
    out->map = ap_n ? ap_sum / ap_n : 0;
    out->precision = tp_all + fp_all ? (double)tp_all / (double)(tp_all + fp_all) : 0;
    out->recall = tp_all + fn_all ? (double)tp_all / (double)(tp_all + fn_all) : 0;
    return ENG_OK;
}

typedef struct ml_scored {
    float s;
    int pos;
} ml_scored;

static int ml_desc(const void *a, const void *b)
{
    const ml_scored *x = a, *y = b;
    return x->s > y->s ? -1 : x->s < y->s;
}

float eng_ml_best_threshold(const float *scores, int stride, const uint8_t *positive, int n)
{
    int npos = 0;
    for (int i = 0; i < n; i++)
        npos += positive[i] != 0;
    ml_scored *v = npos ? malloc((size_t)n * sizeof *v) : NULL;
    if (!v)
        return 0.5f;
    for (int i = 0; i < n; i++)
        v[i] = (ml_scored){scores[(size_t)i * stride], positive[i] != 0};
    qsort(v, (size_t)n, sizeof *v, ml_desc);
    double best = -1;
    float thr = 0.5f;
    int tp = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].s == v[i].s)
            tp += v[j++].pos;
        /* take every image scoring >= v[i].s: j images, tp of them right;
         * 2 TP + FP + FN = 2 tp + (j - tp) + (npos - tp) = j + npos */
        double f1 = 2.0 * tp / (double)(j + npos);
        if (f1 > best) {
            best = f1;
            thr = v[i].s;
            float mid = j < n ? 0.5f * (v[i].s + v[j].s) : v[i].s;
            if (mid > v[j < n ? j : i].s)
                thr = mid; /* else no float lies between the two scores */
        }
        i = j;
    }
    free(v);
    return thr;
}

static double r4(double v) { return round(v * 1e4) / 1e4; }

eng_status eng_ml_metrics_json(const eng_ml_metrics *m, const char *const *tags, const float *thr,
                               const eng_eval_extra *extra, char **json, eng_diag *d)
{
    *json = NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return eng_fail(d, ENG_ENOMEM, "metrics json: out of memory");
    int ok = 1;
    ok &= cJSON_AddNumberToObject(o, "averagePrecision", r4(m->map)) != NULL;
    ok &= cJSON_AddNumberToObject(o, "precision", r4(m->precision)) != NULL;
    ok &= cJSON_AddNumberToObject(o, "recall", r4(m->recall)) != NULL;
    cJSON *tp = cJSON_AddObjectToObject(o, "tagPerformance");
    ok &= tp != NULL;
    for (int c = 0; ok && c < m->ncat; c++) {
        if (m->tag_images[c] == 0)
            continue;
        cJSON *t = cJSON_AddObjectToObject(tp, tags[c]);
        ok &= t && cJSON_AddNumberToObject(t, "averagePrecision", r4(m->tag_ap[c])) &&
              cJSON_AddNumberToObject(t, "precision", r4(m->tag_precision[c])) &&
              cJSON_AddNumberToObject(t, "recall", r4(m->tag_recall[c])) &&
              cJSON_AddNumberToObject(t, "threshold", r4(thr[c])) &&
              cJSON_AddNumberToObject(t, "imageCount", m->tag_images[c]);
    }
    return metrics_json_finish(o, ok, extra, json, d);
}
