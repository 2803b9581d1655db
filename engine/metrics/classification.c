/* classification.c: accuracy, average precision, calibration error and the
 * confusion matrix of a classifier, from a score matrix and true labels.
 *
 * Design: everything is a direct count over plain arrays in double precision;
 * the exact rules (tie handling, bins) are written in classification.h so
 * other tools can reproduce the numbers. JSON output goes through cJSON,
 * which stays inside this file.
 */
#include "metrics.h"
#include "metrics_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int eng_argmax(const float *row, int ncat)
{
    int best = 0;
    for (int c = 1; c < ncat; c++)
        if (row[c] > row[best])
            best = c;
    return best;
}

/* Rank of category c in row: how many categories come before it (higher
 * score, or equal score and lower index). */
static int rank_of(const float *row, int ncat, int c)
{
    int r = 0;
    for (int j = 0; j < ncat; j++)
        if (row[j] > row[c] || (row[j] == row[c] && j < c))
            r++;
    return r;
}

typedef struct scored {
    float s;
    int pos;
} scored;

static int scored_cmp_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->s > y->s)
        return -1;
    if (x->s < y->s)
        return 1;
    return 0;
}

double eng_average_precision(const float *scores, int stride, const int *positive, int n)
{
    int npos = 0;
    for (int i = 0; i < n; i++)
        npos += positive[i] != 0;
    if (npos == 0 || n <= 0)
        return -1;
    scored *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return -1;
    for (int i = 0; i < n; i++) {
        v[i].s = scores[(size_t)i * stride];
        v[i].pos = positive[i] != 0;
    }
    qsort(v, (size_t)n, sizeof *v, scored_cmp_desc);
    double ap = 0, prev_recall = 0;
    int tp = 0, seen = 0;
    for (int i = 0; i < n;) {
        /* one threshold per distinct score */
        int j = i;
        while (j < n && v[j].s == v[i].s) {
            tp += v[j].pos;
            j++;
        }
        seen = j;
        double recall = (double)tp / npos;
        double precision = (double)tp / seen;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j;
    }
    free(v);
    return ap;
}

double eng_calibration_ece(const float *confidence, const int *correct, int n)
{
    double cnt[ENG_ECE_BINS] = {0}, acc[ENG_ECE_BINS] = {0}, conf[ENG_ECE_BINS] = {0};
    if (n <= 0)
        return 0;
    for (int i = 0; i < n; i++) {
        double p = confidence[i];
        if (!(p >= 0))
            p = 0;
        if (p > 1)
            p = 1;
        /* bin b holds (b/B, (b+1)/B]; 0 goes to bin 0 */
        int b = (int)ceil(p * ENG_ECE_BINS) - 1;
        if (b < 0)
            b = 0;
        if (b >= ENG_ECE_BINS)
            b = ENG_ECE_BINS - 1;
        cnt[b] += 1;
        acc[b] += correct[i] != 0;
        conf[b] += p;
    }
    double ece = 0;
    for (int b = 0; b < ENG_ECE_BINS; b++)
        if (cnt[b] > 0)
            ece += cnt[b] / n * fabs(acc[b] / cnt[b] - conf[b] / cnt[b]);
    return ece;
}

void eng_cls_metrics_release(eng_cls_metrics *m)
{
    if (!m)
        return;
    free(m->tag_accuracy);
    free(m->tag_ap);
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

eng_status eng_cls_metrics_compute(const float *scores, const int *labels, int n, int ncat,
                                   eng_cls_metrics *out, eng_diag *d)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || ncat < 1)
        return eng_fail(d, ENG_EINVAL,
                        "metrics: need at least one image and one category "
                        "(got %d images, %d categories)",
                        n, ncat);
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= ncat)
            return eng_fail(d, ENG_EINVAL, "image %d: label %d outside 0..%d", i, labels[i],
                            ncat - 1);
        for (int c = 0; c < ncat; c++)
            if (!isfinite(scores[(size_t)i * ncat + c]))
                return eng_fail(d, ENG_EINVAL, "image %d: score of category %d is not finite", i,
                                c);
    }
    eng_cls_metrics m = {.n = n, .ncat = ncat};
    m.tag_accuracy = malloc((size_t)ncat * sizeof *m.tag_accuracy);
    m.tag_ap = malloc((size_t)ncat * sizeof *m.tag_ap);
    m.confusion = calloc((size_t)ncat * ncat, sizeof *m.confusion);
    float *conf = malloc((size_t)n * sizeof *conf);
    int *correct = malloc((size_t)n * sizeof *correct);
    int *pos = malloc((size_t)n * sizeof *pos);
    if (!m.tag_accuracy || !m.tag_ap || !m.confusion || !conf || !correct || !pos) {
        free(conf);
        free(correct);
        free(pos);
        eng_cls_metrics_release(&m);
        return eng_fail(d, ENG_ENOMEM, "metrics: out of memory for %d images", n);
    }
    int top1 = 0, top5 = 0;
    for (int i = 0; i < n; i++) {
        const float *row = scores + (size_t)i * ncat;
        int a = eng_argmax(row, ncat);
        int r = rank_of(row, ncat, labels[i]);
        top1 += r == 0;
        top5 += r < 5;
        conf[i] = row[a];
        correct[i] = a == labels[i];
        m.confusion[labels[i] * ncat + a]++;
    }
    m.top1 = (double)top1 / n;
    m.top5 = (double)top5 / n;
    m.ece = eng_calibration_ece(conf, correct, n);
    double apsum = 0;
    int apn = 0;
    for (int c = 0; c < ncat; c++) {
        int cnt = 0;
        for (int i = 0; i < n; i++) {
            pos[i] = labels[i] == c;
            cnt += pos[i];
        }
        if (cnt == 0) {
            m.tag_accuracy[c] = -1;
            m.tag_ap[c] = -1;
            continue;
        }
        m.tag_accuracy[c] = (double)m.confusion[c * ncat + c] / cnt;
        m.tag_ap[c] = eng_average_precision(scores + c, ncat, pos, n);
        apsum += m.tag_ap[c];
        apn++;
    }
    m.average_precision = apn ? apsum / apn : 0;
    free(conf);
    free(correct);
    free(pos);
    *out = m;
    return ENG_OK;
}

/* Rounds to 4 decimals, as the detection metrics do: readable, stable, and
 * what a user recomputing top-1 from predict/ and rounding gets. */
static double r4(double v) { return round(v * 1e4) / 1e4; }

eng_status eng_cls_metrics_json(const eng_cls_metrics *m, const char *const *categories,
                                const eng_eval_extra *extra, char **json, eng_diag *d)
{
    *json = NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return eng_fail(d, ENG_ENOMEM, "metrics json: out of memory");
    int ok = 1;
    ok &= cJSON_AddNumberToObject(o, "accuracyTop1", r4(m->top1)) != NULL;
    ok &= cJSON_AddNumberToObject(o, "accuracyTop5", r4(m->top5)) != NULL;
    ok &= cJSON_AddNumberToObject(o, "averagePrecision", r4(m->average_precision)) != NULL;
    ok &= cJSON_AddNumberToObject(o, "calibrationECE", r4(m->ece)) != NULL;
    cJSON *tags = cJSON_AddObjectToObject(o, "tagPerformance");
    ok &= tags != NULL;
    for (int c = 0; ok && c < m->ncat; c++) {
        if (m->tag_accuracy[c] < 0)
            continue;
        cJSON *t = cJSON_AddObjectToObject(tags, categories[c]);
        ok &= t != NULL;
        if (t) {
            ok &= cJSON_AddNumberToObject(t, "accuracy", r4(m->tag_accuracy[c])) != NULL;
            ok &= cJSON_AddNumberToObject(t, "averagePrecision50", r4(m->tag_ap[c])) != NULL;
        }
    }
    cJSON *cm = cJSON_AddObjectToObject(o, "confusionMatrix");
    ok &= cm != NULL;
    if (ok) {
        cJSON *labels = cJSON_CreateStringArray(categories, m->ncat);
        cJSON *rows = cJSON_CreateArray();
        ok &= labels && rows;
        for (int r = 0; ok && r < m->ncat; r++) {
            cJSON *row = cJSON_CreateIntArray(m->confusion + (size_t)r * m->ncat, m->ncat);
            ok &= row != NULL && cJSON_AddItemToArray(rows, row);
        }
        if (ok) {
            cJSON_AddItemToObject(cm, "labels", labels);
            cJSON_AddItemToObject(cm, "matrix", rows);
        } else {
            cJSON_Delete(labels);
            cJSON_Delete(rows);
        }
    }
    return metrics_json_finish(o, ok, extra, json, d);
}

eng_status metrics_json_finish(cJSON *o, int ok, const eng_eval_extra *extra, char **json,
                               eng_diag *d)
{
    if (ok && extra) {
        if (extra->evaluated_on) {
            cJSON *e = cJSON_AddObjectToObject(o, "evaluatedOn");
            ok &= e && cJSON_AddStringToObject(e, "dataset", extra->evaluated_on) &&
                  cJSON_AddNumberToObject(e, "imageCount", extra->image_count);
        }
        if (extra->training_cost_minutes >= 0)
            ok &=
                cJSON_AddNumberToObject(o, "trainingCostInMinutes",
                                        round(extra->training_cost_minutes * 1000) / 1000) != NULL;
        if (extra->stop_reason)
            ok &= cJSON_AddStringToObject(o, "stopReason", extra->stop_reason) != NULL;
    }
    char *s = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return eng_fail(d, ENG_ENOMEM, "metrics json: out of memory");
    *json = s;
    return ENG_OK;
}
