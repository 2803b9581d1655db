/* report.c: the evaluation report (report.h): the numbers the page and the
 * PNG plots draw (confusion, precision-recall, calibration, mistakes) and
 * the HTML page itself.
 *
 * Design: one pass computes everything into a struct (report_int.h) that
 * the HTML writer and the PNG rasteriser (report_png.c) only read, so the
 * page and the PNGs cannot disagree. Detector boxes are matched the way
 * COCO matches them (highest score first, each ground-truth box taken once,
 * IoU >= 0.5); the confusion takes the predictions above the score with the
 * best F1 over all categories and says which score that was.
 */
#include "report_int.h"

#include "classification.h"
#include "detection.h"
#include "ranked.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string ---------------------------------------------------- */

typedef struct sb {
    char *s;
    size_t len, cap;
    int bad;
} sb;

static void sb_add(sb *b, const char *t, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->bad = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, t, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(sb *b, const char *t) { sb_add(b, t, strlen(t)); }

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->bad = 1;
        return;
    }
    sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Text from the data, escaped for HTML element content and attribute values. */
static void sb_esc(sb *b, const char *t)
{
    for (const char *p = t ? t : ""; *p; p++) {
        switch (*p) {
        case '&': sb_puts(b, "&amp;"); break;
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        case '\'': sb_puts(b, "&#39;"); break;
        default: sb_add(b, p, 1);
        }
    }
}

static void sb_base64(sb *b, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[v >> 18 & 63];
        q[1] = tab[v >> 12 & 63];
        q[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        sb_add(b, q, 4);
    }
}

/* ---- shared helpers -------------------------------------------------------- */

const char *rpt_row_name(const rpt *r, int i)
{
    return i < r->K ? r->dt->categories[i] : "background";
}

const char *rpt_col_name(const rpt *r, int j) { return j < r->K ? r->dt->categories[j] : "missed"; }

void rpt_colour(int k, int K, uint8_t rgb[3])
{
    /* ten distinct colours (Tableau 10), repeated past ten */
    static const uint8_t pal[10][3] = {
        {78, 121, 167}, {242, 142, 43},  {225, 87, 89},   {118, 183, 178}, {89, 161, 79},
        {237, 201, 72}, {176, 122, 161}, {255, 157, 167}, {156, 117, 95},  {186, 176, 172}};
    (void)K;
    memcpy(rgb, pal[k % 10], 3);
}

double rpt_cell(const rpt *r, int i, int j, long long *count, uint8_t rgb[3])
{
    long long rs = 0;
    for (int k = 0; k < r->R; k++)
        rs += r->conf[(size_t)i * r->R + k];
    *count = r->conf[(size_t)i * r->R + j];
    double f = rs ? (double)*count / rs : 0;
    /* white to a deep blue */
    rgb[0] = (uint8_t)(255 - f * (255 - 23));
    rgb[1] = (uint8_t)(255 - f * (255 - 82));
    rgb[2] = (uint8_t)(255 - f * (255 - 158));
    return f;
}

/* ---- analysis -------------------------------------------------------------- */

typedef struct idx_id {
    long long id;
    int i;
} idx_id;

static int idx_id_cmp(const void *a, const void *b)
{
    const idx_id *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct scored {
    double s;
    int pos;
} scored;

static int scored_cmp(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    return x->s < y->s ? 1 : x->s > y->s ? -1 : 0;
}

/* The curve of n scored items with npos positives; ties form one point. */
static int curve_of(scored *it, int n, int npos, rpt_curve *c)
{
    qsort(it, (size_t)n, sizeof *it, scored_cmp);
    c->npos = npos;
    c->np = 0;
    c->ap = npos > 0 ? 0 : -1;
    c->recall = malloc(((size_t)n + 1) * sizeof *c->recall);
    c->precision = malloc(((size_t)n + 1) * sizeof *c->precision);
    if (!c->recall || !c->precision)
        return -1;
    int tp = 0;
    double last_r = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && it[j].s == it[i].s)
            tp += it[j++].pos != 0;
        double rc = npos > 0 ? (double)tp / npos : 0, pr = (double)tp / j;
        if (npos > 0)
            c->ap += (rc - last_r) * pr;
        last_r = rc;
        c->recall[c->np] = (float)rc;
        c->precision[c->np++] = (float)pr;
        i = j;
    }
    return 0;
}

static void cal_add(rpt *r, double conf, int correct)
{
    conf = fmin(1, fmax(0, conf));
    int b = (int)(conf * RPT_CAL_BINS);
    if (b >= RPT_CAL_BINS)
        b = RPT_CAL_BINS - 1;
    r->cal_n[b]++;
    r->cal_conf[b] += conf;
    r->cal_acc[b] += correct != 0;
}

static void cal_finish(rpt *r)
{
    for (int b = 0; b < RPT_CAL_BINS; b++)
        if (r->cal_n[b]) {
            r->cal_conf[b] /= r->cal_n[b];
            r->cal_acc[b] /= r->cal_n[b];
        }
}

static int analyse_scores(rpt *r)
{
    const eng_eval_detail *dt = r->dt;
    int n = dt->n, K = r->K;
    r->R = K;
    r->has_conf = !dt->multilabel;
    scored *it = malloc(((size_t)n + 1) * sizeof *it);
    r->conf = calloc((size_t)K * K + 1, sizeof *r->conf);
    if (!it || !r->conf) {
        free(it);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const float *row = dt->scores + (size_t)i * K;
        const uint8_t *tr = dt->truth + (size_t)i * K;
        if (!dt->multilabel) {
            int t = -1;
            for (int c = 0; c < K && t < 0; c++)
                if (tr[c])
                    t = c;
            int p = eng_argmax(row, K);
            if (t >= 0) {
                r->conf[(size_t)t * K + p]++;
                cal_add(r, row[p], p == t);
            }
        } else {
            for (int c = 0; c < K; c++)
                cal_add(r, row[c], (row[c] >= 0.5) == (tr[c] != 0));
        }
    }
    cal_finish(r);
    int rc = 0;
    for (int c = 0; c < K && rc == 0; c++) {
        int npos = 0;
        for (int i = 0; i < n; i++) {
            it[i] = (scored){dt->scores[(size_t)i * K + c], dt->truth[(size_t)i * K + c] != 0};
            npos += it[i].pos;
        }
        rc = curve_of(it, n, npos, &r->pr[c]);
    }
    free(it);
    return rc;
}

static int image_of(const idx_id *map, int n, long long id)
{
    idx_id key = {id, 0};
    const idx_id *f = bsearch(&key, map, (size_t)n, sizeof *map, idx_id_cmp);
    return f ? f->i : -1;
}

static int analyse_boxes(rpt *r)
{
    const eng_eval_detail *dt = r->dt;
    int n = dt->n, K = r->K, ng = dt->ngt, np = dt->npred;
    r->R = K + 1;
    r->has_conf = 1;
    idx_id *map = malloc(((size_t)n + 1) * sizeof *map);
    ranked *order = malloc(((size_t)np + 1) * sizeof *order);
    signed char *tp = calloc((size_t)np + 1, 1), *taken = calloc((size_t)ng + 1, 1);
    scored *it = malloc(((size_t)np + 1) * sizeof *it);
    int *first = calloc((size_t)n + 1, sizeof *first), *slot = calloc((size_t)n + 1, sizeof *slot);
    int *bygt = malloc(((size_t)ng + 1) * sizeof *bygt);
    r->conf = calloc((size_t)r->R * r->R, sizeof *r->conf);
    r->pred_ok = malloc((size_t)np + 1);
    r->gt_found = calloc((size_t)ng + 1, 1);
    r->pred_img = malloc(((size_t)np + 1) * sizeof *r->pred_img);
    r->gt_img = malloc(((size_t)ng + 1) * sizeof *r->gt_img);
    int rc = -1;
    if (!map || !order || !tp || !taken || !it || !first || !slot || !bygt || !r->conf ||
        !r->pred_ok || !r->gt_found || !r->pred_img || !r->gt_img)
        goto done;
    for (int i = 0; i < n; i++)
        map[i] = (idx_id){dt->ids[i], i};
    qsort(map, (size_t)n, sizeof *map, idx_id_cmp);
    for (int g = 0; g < ng; g++)
        r->gt_img[g] = image_of(map, n, dt->gt[g].image);
    for (int p = 0; p < np; p++) {
        r->pred_img[p] = image_of(map, n, dt->pred[p].image);
        order[p] = (ranked){dt->pred[p].score, p};
    }
    /* the true boxes of each image: bygt[first[i] .. first[i + 1]) */
    for (int g = 0; g < ng; g++)
        if (r->gt_img[g] >= 0)
            first[r->gt_img[g] + 1]++;
    for (int i = 0; i < n; i++)
        first[i + 1] += first[i];
    for (int g = 0; g < ng; g++) {
        if (r->gt_img[g] >= 0)
            bygt[first[r->gt_img[g]] + slot[r->gt_img[g]]++] = g;
    }
    ranked_sort(order, (size_t)np);
    /* class-aware matching (the PR curves, calibration, the threshold) */
    for (int q = 0; q < np; q++) {
        const eng_det_pred *p = &dt->pred[order[q].index];
        int best = -1;
        double bi = RPT_IOU;
        int pi = r->pred_img[order[q].index];
        for (int e = pi < 0 ? 0 : first[pi]; pi >= 0 && e < first[pi + 1]; e++) {
            int g = bygt[e];
            if (taken[g] || dt->gt[g].image != p->image || dt->gt[g].category != p->category)
                continue;
            double iou = eng_det_iou(p->bbox, dt->gt[g].bbox);
            if (iou >= bi) {
                bi = iou;
                best = g;
            }
        }
        if (best >= 0) {
            taken[best] = 1;
            tp[order[q].index] = 1;
        }
        cal_add(r, p->score, best >= 0);
    }
    cal_finish(r);
    for (int c = 0; c < K && rc != -2; c++) {
        int m = 0, npos = 0;
        for (int q = 0; q < np; q++)
            if (dt->pred[q].category == c)
                it[m++] = (scored){dt->pred[q].score, tp[q]};
        for (int g = 0; g < ng; g++)
            npos += dt->gt[g].category == c;
        if (curve_of(it, m, npos, &r->pr[c]) != 0)
            rc = -2;
    }
    if (rc == -2) {
        rc = -1;
        goto done;
    }
    /* the threshold with the best F1 over every category */
    int ctp = 0;
    double best_f1 = -1;
    r->threshold = 0.5;
    for (int q = 0; q < np;) {
        int j = q;
        while (j < np && order[j].score == order[q].score)
            ctp += tp[order[j++].index];
        double f1 = ng + j > 0 ? 2.0 * ctp / (ng + j) : 0;
        if (f1 > best_f1) {
            best_f1 = f1;
            r->threshold = order[q].score;
        }
        q = j;
    }
    /* the confusion at the threshold: same category first, else any */
    memset(taken, 0, (size_t)ng + 1);
    for (int q = 0; q < np; q++) {
        int k = order[q].index;
        const eng_det_pred *p = &dt->pred[k];
        if (p->score < r->threshold || p->category < 0 || p->category >= K) {
            r->pred_ok[k] = -1;
            continue;
        }
        int best = -1, same = 0, pi = r->pred_img[k];
        double bi = RPT_IOU;
        for (int pass = 0; pass < 2 && best < 0; pass++)
            for (int e = pi < 0 ? 0 : first[pi]; pi >= 0 && e < first[pi + 1]; e++) {
                int g = bygt[e];
                if (taken[g] || dt->gt[g].image != p->image ||
                    (pass == 0 && dt->gt[g].category != p->category))
                    continue;
                double iou = eng_det_iou(p->bbox, dt->gt[g].bbox);
                if (iou >= bi) {
                    bi = iou;
                    best = g;
                    same = pass == 0;
                }
            }
        if (best >= 0) {
            taken[best] = 1;
            r->gt_found[best] = (signed char)same;
            r->conf[(size_t)dt->gt[best].category * r->R + p->category]++;
        } else {
            r->conf[(size_t)K * r->R + p->category]++;
        }
        r->pred_ok[k] = (signed char)(best >= 0 && same);
    }
    for (int g = 0; g < ng; g++)
        if (!taken[g] && dt->gt[g].category >= 0 && dt->gt[g].category < K)
            r->conf[(size_t)dt->gt[g].category * r->R + K]++;
    rc = 0;
done:
    free(map);
    free(order);
    free(tp);
    free(taken);
    free(it);
    free(first);
    free(slot);
    free(bygt);
    return rc;
}

static void rpt_release(rpt *r)
{
    if (r->pr)
        for (int c = 0; c < r->K; c++) {
            free(r->pr[c].recall);
            free(r->pr[c].precision);
        }
    free(r->pr);
    free(r->conf);
    free(r->pred_ok);
    free(r->gt_found);
    free(r->pred_img);
    free(r->gt_img);
}

/* ---- thumbnails -------------------------------------------------------------- */

#define THUMB_SIDE 240

static const uint8_t C_OK[3] = {20, 170, 60}, C_FALSE[3] = {225, 30, 30},
                     C_MISSED[3] = {255, 190, 0}, C_WHITE[3] = {255, 255, 255},
                     C_BLACK[3] = {0, 0, 0};

typedef struct thumb_box {
    double b[4];
    const uint8_t *rgb;
    char label[64];
} thumb_box;

/* A data: URI of a small JPEG of image i with boxes (in the image's declared
 * size) drawn; NULL when the image cannot be read. New string, free(). */
static char *thumb_uri(const eng_eval_detail *dt, int i, const thumb_box *bx, int nb)
{
    eng_diag d = {{0}};
    eng_image *im = NULL, *th = NULL;
    float *px = NULL;
    uint8_t *jpg = NULL;
    size_t jlen = 0;
    char *out = NULL;
    if (eng_image_decode_file(dt->paths[i], THUMB_SIDE, &im, &d) != ENG_OK)
        return NULL;
    double sc = fmin(1.0, (double)THUMB_SIDE / (im->w > im->h ? im->w : im->h));
    int tw = (int)fmax(1, round(im->w * sc)), tht = (int)fmax(1, round(im->h * sc));
    th = eng_image_new(tw, tht);
    px = malloc((size_t)tw * tht * 3 * sizeof *px);
    if (!th || !px || eng_image_to_tensor(im, NULL, 0, tw, tht, ENG_PIX_0_255, px, &d) != ENG_OK)
        goto done;
    for (size_t k = 0; k < (size_t)tw * tht * 3; k++)
        th->rgb[k] = (uint8_t)fmin(255, fmax(0, lrint(px[k])));
    /* boxes refer to the declared size; without one, to the stored size */
    int rw = dt->widths && dt->widths[i] > 0 ? dt->widths[i] : 0;
    int rh = dt->heights && dt->heights[i] > 0 ? dt->heights[i] : 0;
    if (!rw || !rh) {
        eng_image_info info;
        if (eng_image_probe_file(dt->paths[i], &info, &d) == ENG_OK) {
            rw = eng_image_info_display_w(&info);
            rh = eng_image_info_display_h(&info);
        } else {
            rw = im->w;
            rh = im->h;
        }
    }
    double fx = (double)tw / rw, fy = (double)tht / rh;
    for (int k = 0; k < nb; k++) {
        int x = (int)lrint(bx[k].b[0] * fx), y = (int)lrint(bx[k].b[1] * fy);
        int w = (int)lrint(bx[k].b[2] * fx), h = (int)lrint(bx[k].b[3] * fy);
        eng_image_draw_rect(th, x, y, w < 2 ? 2 : w, h < 2 ? 2 : h, bx[k].rgb, 2);
    }
    for (int k = 0; k < nb; k++) {
        if (!bx[k].label[0])
            continue;
        int x = (int)lrint(bx[k].b[0] * fx), y = (int)lrint(bx[k].b[1] * fy);
        int lw, lh;
        eng_image_text_size(bx[k].label, 1, &lw, &lh);
        int ty = y - lh >= 0 ? y - lh : y + 2;
        eng_image_draw_text(th, x < 0 ? 0 : x, ty, bx[k].label,
                            bx[k].rgb == C_MISSED ? C_BLACK : C_WHITE, bx[k].rgb, 1);
    }
    if (eng_image_encode_jpeg(th, 85, &jpg, &jlen, &d) == ENG_OK) {
        sb b = {0};
        sb_puts(&b, "data:image/jpeg;base64,");
        sb_base64(&b, jpg, jlen);
        if (!b.bad)
            out = b.s;
        else
            free(b.s);
    }
done:
    free(jpg);
    free(px);
    eng_image_free(th);
    eng_image_free(im);
    return out;
}

/* ---- the page -------------------------------------------------------------- */

static const char css[] =
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;"
    "background:#fafafa}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px "
    "solid #ddd;padding-bottom:4px}"
    ".note{color:#666}.cards{display:flex;flex-wrap:wrap;gap:10px}"
    ".card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:"
    "120px}.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}"
    "table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px "
    "8px;text-align:right}th:first-child,td:first-child{text-align:left}"
    ".grid{display:flex;flex-wrap:wrap;gap:12px}"
    "figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;"
    "max-width:252px}figure img{display:block;max-width:240px}"
    "figcaption{font-size:12px;margin-top:4px;word-break:break-word}"
    ".bad{color:#c00}.good{color:#080}"
    ".key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;"
    "vertical-align:middle}"
    "svg{background:#fff;border:1px solid #ddd;border-radius:6px}"
    "svg text{font:11px system-ui,sans-serif;fill:#333}";

static void fmt_num(char *buf, size_t n, double v)
{
    if (v == floor(v) && fabs(v) < 1e9 && fabs(v) > 1)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.3f", v);
}

static void page_metrics(sb *b, const cJSON *mj)
{
    sb_puts(b, "<section id=\"metrics\"><h2>Headline metrics</h2>");
    if (!mj) {
        sb_puts(b, "<p class=\"note\">No metrics.</p></section>");
        return;
    }
    sb_puts(b, "<div class=\"cards\">");
    const cJSON *e;
    cJSON_ArrayForEach(e, mj)
    {
        if (!cJSON_IsNumber(e))
            continue;
        char v[64];
        fmt_num(v, sizeof v, e->valuedouble);
        sb_puts(b, "<div class=\"card\"><b>");
        sb_esc(b, v);
        sb_puts(b, "</b><span>");
        sb_esc(b, e->string);
        sb_puts(b, "</span></div>");
    }
    sb_puts(b, "</div>");
    const cJSON *on = cJSON_GetObjectItem(mj, "evaluatedOn");
    const cJSON *ds = cJSON_GetObjectItem(on, "dataset"),
                *ic = cJSON_GetObjectItem(on, "imageCount");
    const cJSON *sr = cJSON_GetObjectItem(mj, "stopReason");
    if (cJSON_IsString(ds)) {
        sb_puts(b, "<p>Evaluated on <b>");
        sb_esc(b, ds->valuestring);
        sb_puts(b, "</b>");
        if (cJSON_IsNumber(ic))
            sb_printf(b, ", %.0f images", ic->valuedouble);
        sb_puts(b, ".");
        if (cJSON_IsString(sr)) {
            sb_puts(b, " Training stopped: ");
            sb_esc(b, sr->valuestring);
            sb_puts(b, ".");
        }
        sb_puts(b, "</p>");
    }
    sb_puts(b, "</section>");
}

static void page_tags(sb *b, const cJSON *mj, const rpt *r)
{
    const cJSON *tp = cJSON_GetObjectItem(mj, "tagPerformance");
    if (!cJSON_IsObject(tp) && !r)
        return;
    int det = r && r->dt->detection;
    sb_printf(b,
              "<section id=\"tags\"><h2>Per category</h2><table><tr><th>category</th>"
              "<th>%s</th><th>accuracy</th><th>averagePrecision50</th></tr>",
              det ? "boxes" : "images");
    int K = r ? r->K : cJSON_GetArraySize(tp);
    for (int c = 0; c < K; c++) {
        const char *name = r ? r->dt->categories[c] : cJSON_GetArrayItem(tp, c)->string;
        const cJSON *t = cJSON_GetObjectItem(tp, name);
        const cJSON *acc = cJSON_GetObjectItem(t, "accuracy"),
                    *ap = cJSON_GetObjectItem(t, "averagePrecision50");
        sb_puts(b, "<tr><td>");
        sb_esc(b, name);
        sb_puts(b, "</td><td>");
        if (r)
            sb_printf(b, "%d", r->pr[c].npos);
        sb_puts(b, "</td><td>");
        if (cJSON_IsNumber(acc))
            sb_printf(b, "%.3f", acc->valuedouble);
        sb_puts(b, "</td><td>");
        if (cJSON_IsNumber(ap))
            sb_printf(b, "%.3f", ap->valuedouble);
        sb_puts(b, "</td></tr>");
    }
    sb_puts(b, "</table></section>");
}

static void svg_text(sb *b, double x, double y, const char *anchor, const char *extra,
                     const char *text)
{
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>", x, y, anchor, extra);
    sb_esc(b, text);
    sb_puts(b, "</text>");
}

static void page_confusion(sb *b, const rpt *r)
{
    sb_puts(b, "<section id=\"confusion\"><h2>Confusion matrix</h2>");
    if (!r->has_conf) {
        sb_puts(b, "<p class=\"note\">Images carry several categories: no confusion matrix; see "
                   "the per-category curves.</p></section>");
        return;
    }
    if (r->dt->detection)
        sb_printf(b,
                  "<p class=\"note\">Boxes with a score of at least %.3f (the score with the best "
                  "F1), matched to the true boxes at IoU &ge; 0.5. Row <i>background</i>: false "
                  "alarms (no true box there); column <i>missed</i>: true boxes no prediction "
                  "found.</p>",
                  r->threshold);
    else
        sb_puts(b, "<p class=\"note\">Rows: the true category; columns: the top-1 answer. Colour: "
                   "share of the row.</p>");
    int R = r->R;
    /* margins from the longest name (about 6.5 px a character at 11 px;
     * column names are rotated by 60 degrees) */
    size_t longest = 4;
    for (int i = 0; i < R; i++) {
        size_t a = strlen(rpt_row_name(r, i)), c = strlen(rpt_col_name(r, i));
        longest = a > longest ? a : longest;
        longest = c > longest ? c : longest;
    }
    double text = fmin(400, longest * 6.5);
    double cell = R <= 12 ? 40 : R <= 30 ? 24 : 14, lm = 24 + text, tm = 24 + text * 0.87;
    double W = lm + R * cell + 20 + text * 0.5, H = tm + R * cell + 30;
    sb_printf(b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
              "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"confusion matrix\">",
              W, H, W, H);
    for (int i = 0; i < R; i++) {
        for (int j = 0; j < R; j++) {
            long long v;
            uint8_t c[3];
            double f = rpt_cell(r, i, j, &v, c);
            sb_printf(b,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "fill=\"#%02x%02x%02x\" stroke=\"#ccc\"><title>",
                      lm + j * cell, tm + i * cell, cell, cell, c[0], c[1], c[2]);
            sb_esc(b, rpt_row_name(r, i));
            sb_puts(b, " as ");
            sb_esc(b, rpt_col_name(r, j));
            sb_printf(b, ": %lld</title></rect>", v);
            if (v && cell >= 20)
                sb_printf(b,
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                          "style=\"fill:%s\">%lld</text>",
                          lm + (j + 0.5) * cell, tm + (i + 0.5) * cell + 4,
                          f > 0.5 ? "#fff" : "#222", v);
        }
        svg_text(b, lm - 6, tm + (i + 0.5) * cell + 4, "end", "", rpt_row_name(r, i));
    }
    for (int j = 0; j < R; j++) {
        char tr[96];
        snprintf(tr, sizeof tr, " transform=\"rotate(-60 %.1f %.1f)\"", lm + (j + 0.5) * cell,
                 tm - 6);
        svg_text(b, lm + (j + 0.5) * cell, tm - 6, "start", tr, rpt_col_name(r, j));
    }
    svg_text(b, lm + R * cell / 2, H - 8, "middle", " font-weight=\"bold\"", "predicted");
    svg_text(b, 12, tm - 10, "start", " font-weight=\"bold\"", "true");
    sb_puts(b, "</svg></section>");
}

static void page_pr(sb *b, const rpt *r)
{
    sb_puts(b, "<section id=\"pr\"><h2>Precision-recall per category</h2>");
    if (r->dt->detection)
        sb_puts(b, "<p class=\"note\">Boxes matched at IoU &ge; 0.5, every score.</p>");
    sb_puts(b, "<div class=\"grid\">");
    const double W = 230, H = 226, x0 = 36, y0 = 40, pw = 180, ph = 150;
    for (int c = 0; c < r->K; c++) {
        const rpt_curve *cv = &r->pr[c];
        uint8_t col[3];
        rpt_colour(c, r->K, col);
        sb_printf(b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                  "viewBox=\"0 0 %.0f %.0f\" role=\"img\" class=\"pr\">",
                  W, H, W, H);
        char title[160];
        snprintf(title, sizeof title, "%.60s", r->dt->categories[c]);
        svg_text(b, 8, 15, "start", " font-weight=\"bold\"", title);
        if (cv->ap >= 0)
            snprintf(title, sizeof title, "AP %.3f, %d true", cv->ap, cv->npos);
        else
            snprintf(title, sizeof title, "no true %s", r->dt->detection ? "boxes" : "images");
        svg_text(b, 8, 29, "start", "", title);
        sb_printf(b,
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                  "stroke=\"#999\"/>",
                  x0, y0, pw, ph);
        for (int t = 1; t < 4; t++)
            sb_printf(b,
                      "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#eee\"/>"
                      "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#eee\"/>",
                      x0 + pw * t / 4, y0, x0 + pw * t / 4, y0 + ph, x0, y0 + ph * t / 4, x0 + pw,
                      y0 + ph * t / 4);
        svg_text(b, x0 - 4, y0 + 4, "end", "", "1");
        svg_text(b, x0 - 4, y0 + ph + 4, "end", "", "0");
        svg_text(b, x0 + pw, y0 + ph + 14, "end", "", "1");
        svg_text(b, x0 + pw / 2, y0 + ph + 26, "middle", "", "recall");
        char tr[80];
        snprintf(tr, sizeof tr, " transform=\"rotate(-90 12 %.0f)\"", y0 + ph / 2);
        svg_text(b, 12, y0 + ph / 2, "middle", tr, "precision");
        if (cv->np > 0 && cv->npos > 0) {
            sb_printf(b,
                      "<polyline fill=\"none\" stroke=\"#%02x%02x%02x\" stroke-width=\"2\" "
                      "points=\"%.1f,%.1f",
                      col[0], col[1], col[2], x0, y0 + ph * (1 - cv->precision[0]));
            for (int k = 0; k < cv->np; k++)
                sb_printf(b, " %.1f,%.1f", x0 + pw * cv->recall[k],
                          y0 + ph * (1 - cv->precision[k]));
            sb_puts(b, "\"/>");
        }
        sb_puts(b, "</svg>");
    }
    sb_puts(b, "</div></section>");
}

static void page_calibration(sb *b, const rpt *r)
{
    sb_puts(b, "<section id=\"calibration\"><h2>Calibration</h2><p class=\"note\">");
    if (r->dt->detection)
        sb_puts(b, "Each predicted box: its score against whether it found a true box of its "
                   "category.");
    else if (r->dt->multilabel)
        sb_puts(b, "Each image and category: the score against whether the answer at 0.5 is "
                   "right.");
    else
        sb_puts(b, "The top-1 confidence against whether the top-1 answer is right.");
    sb_puts(b, " Bars: share right per confidence bin (count above); dashed: perfect "
               "calibration; dots: mean confidence of the bin.</p>");
    const double W = 420, H = 300, x0 = 46, y0 = 20, pw = 350, ph = 230;
    sb_printf(b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
              "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"calibration\">",
              W, H, W, H);
    sb_printf(b,
              "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
              "stroke=\"#999\"/>",
              x0, y0, pw, ph);
    double bw = pw / RPT_CAL_BINS;
    for (int k = 0; k < RPT_CAL_BINS; k++) {
        if (!r->cal_n[k])
            continue;
        double h = ph * r->cal_acc[k];
        sb_printf(b,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4c78a8\" "
                  "fill-opacity=\"0.75\"/>",
                  x0 + k * bw + 2, y0 + ph - h, bw - 4, h);
        char cnt[32];
        snprintf(cnt, sizeof cnt, "%d", r->cal_n[k]);
        svg_text(b, x0 + (k + 0.5) * bw, y0 + ph - h - 3, "middle", "", cnt);
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#e45756\"/>",
                  x0 + pw * r->cal_conf[k], y0 + ph * (1 - r->cal_acc[k]));
    }
    sb_printf(b,
              "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#555\" "
              "stroke-dasharray=\"5,4\"/>",
              x0, y0 + ph, x0 + pw, y0);
    svg_text(b, x0 - 4, y0 + 4, "end", "", "1");
    svg_text(b, x0 - 4, y0 + ph + 4, "end", "", "0");
    svg_text(b, x0 + pw, y0 + ph + 14, "end", "", "1");
    svg_text(b, x0 + pw / 2, y0 + ph + 30, "middle", "", "confidence");
    svg_text(b, 14, y0 + ph / 2, "middle", " transform=\"rotate(-90 14 135)\"", "share right");
    sb_puts(b, "</svg></section>");
}

typedef struct mistake {
    double key, key2;
    int i;
} mistake;

static int mistake_cmp(const void *a, const void *b)
{
    const mistake *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? 1 : -1;
    if (x->key2 != y->key2)
        return x->key2 < y->key2 ? 1 : -1;
    return x->i - y->i;
}

static void figure(sb *b, const char *uri, const char *path)
{
    sb_puts(b, "<figure class=\"mistake\">");
    if (uri) {
        sb_puts(b, "<img alt=\"");
        sb_esc(b, path);
        sb_puts(b, "\" src=\"");
        sb_puts(b, uri); /* base64: nothing to escape */
        sb_puts(b, "\">");
    } else {
        sb_puts(b, "<p class=\"note\">(image no longer readable)</p>");
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void page_mistakes_scores(sb *b, const rpt *r)
{
    const eng_eval_detail *dt = r->dt;
    int K = r->K, nm = 0;
    mistake *ms = malloc(((size_t)dt->n + 1) * sizeof *ms);
    if (!ms) {
        b->bad = 1;
        return;
    }
    for (int i = 0; i < dt->n; i++) {
        const float *row = dt->scores + (size_t)i * K;
        const uint8_t *tr = dt->truth + (size_t)i * K;
        int wrong = -1;
        double best_true = -1;
        for (int c = 0; c < K; c++) {
            if (tr[c])
                best_true = fmax(best_true, row[c]);
            else if (wrong < 0 || row[c] > row[wrong])
                wrong = c;
        }
        int is_mistake =
            wrong >= 0 && (dt->multilabel ? row[wrong] >= 0.5 : eng_argmax(row, K) == wrong);
        if (is_mistake)
            ms[nm++] = (mistake){row[wrong], -best_true, i};
    }
    qsort(ms, (size_t)nm, sizeof *ms, mistake_cmp);
    int show = nm < ENG_REPORT_MAX_MISTAKES ? nm : ENG_REPORT_MAX_MISTAKES;
    sb_printf(b,
              "<section id=\"mistakes\"><h2>Worst mistakes</h2><p class=\"note\">%d wrong "
              "answer%s%s",
              nm, nm == 1 ? "" : "s", nm ? "" : ".");
    if (nm)
        sb_printf(b, "; the %d most confident shown.", show);
    sb_puts(b, "</p><div class=\"grid\">");
    for (int k = 0; k < show; k++) {
        int i = ms[k].i;
        const float *row = dt->scores + (size_t)i * K;
        const uint8_t *tr = dt->truth + (size_t)i * K;
        char *uri = thumb_uri(dt, i, NULL, 0);
        figure(b, uri, dt->paths[i]);
        free(uri);
        int wrong = -1;
        for (int c = 0; c < K; c++)
            if (!tr[c] && (wrong < 0 || row[c] > row[wrong]))
                wrong = c;
        sb_puts(b, "<figcaption><span class=\"bad\">predicted ");
        sb_esc(b, dt->categories[wrong]);
        sb_printf(b, " (%.3f)</span><br><span class=\"good\">true ", row[wrong]);
        int first = 1;
        for (int c = 0; c < K; c++)
            if (tr[c]) {
                if (!first)
                    sb_puts(b, ", ");
                first = 0;
                sb_esc(b, dt->categories[c]);
                sb_printf(b, " (%.3f)", row[c]);
            }
        sb_puts(b, "</span><br>");
        sb_esc(b, base_name(dt->paths[i]));
        sb_puts(b, "</figcaption></figure>");
    }
    sb_puts(b, "</div></section>");
    free(ms);
}

static void page_mistakes_boxes(sb *b, const rpt *r)
{
    const eng_eval_detail *dt = r->dt;
    int n = dt->n, nm = 0;
    mistake *ms = calloc((size_t)n + 1, sizeof *ms);
    int *fa = calloc((size_t)n + 1, sizeof *fa), *miss = calloc((size_t)n + 1, sizeof *miss);
    thumb_box *bx = malloc(((size_t)dt->ngt + dt->npred + 1) * sizeof *bx);
    if (!ms || !fa || !miss || !bx) {
        b->bad = 1;
        goto done;
    }
    for (int i = 0; i < n; i++)
        ms[i].i = i;
    for (int p = 0; p < dt->npred; p++)
        if (r->pred_ok[p] == 0 && r->pred_img[p] >= 0) {
            fa[r->pred_img[p]]++;
            ms[r->pred_img[p]].key2 = fmax(ms[r->pred_img[p]].key2, dt->pred[p].score);
        }
    for (int g = 0; g < dt->ngt; g++)
        if (!r->gt_found[g] && r->gt_img[g] >= 0)
            miss[r->gt_img[g]]++;
    for (int i = 0; i < n; i++)
        ms[i].key = fa[i] + miss[i];
    qsort(ms, (size_t)n, sizeof *ms, mistake_cmp);
    while (nm < n && ms[nm].key > 0)
        nm++;
    int show = nm < ENG_REPORT_MAX_MISTAKES ? nm : ENG_REPORT_MAX_MISTAKES;
    sb_printf(b,
              "<section id=\"mistakes\"><h2>Worst mistakes</h2><p class=\"note\">%d image%s "
              "with a false alarm or a missed box at score &ge; %.3f%s",
              nm, nm == 1 ? "" : "s", r->threshold, nm ? "" : ".");
    if (nm)
        sb_printf(b, "; the %d with the most shown.", show);
    sb_printf(b, "</p><p class=\"key\"><span style=\"background:#14aa3c\"></span>found"
                 "<span style=\"background:#e11e1e\"></span>false alarm (wrong place or category)"
                 "<span style=\"background:#ffbe00\"></span>missed (true box)</p><div "
                 "class=\"grid\">");
    for (int k = 0; k < show; k++) {
        int i = ms[k].i, nb = 0;
        for (int g = 0; g < dt->ngt; g++)
            if (r->gt_img[g] == i && !r->gt_found[g]) {
                thumb_box *t = &bx[nb++];
                memcpy(t->b, dt->gt[g].bbox, sizeof t->b);
                t->rgb = C_MISSED;
                snprintf(t->label, sizeof t->label, "%.40s", dt->categories[dt->gt[g].category]);
            }
        for (int p = 0; p < dt->npred; p++)
            if (r->pred_img[p] == i && r->pred_ok[p] >= 0) {
                thumb_box *t = &bx[nb++];
                memcpy(t->b, dt->pred[p].bbox, sizeof t->b);
                t->rgb = r->pred_ok[p] ? C_OK : C_FALSE;
                snprintf(t->label, sizeof t->label, "%.40s %.2f",
                         dt->categories[dt->pred[p].category], dt->pred[p].score);
            }
        char *uri = thumb_uri(dt, i, bx, nb);
        figure(b, uri, dt->paths[i]);
        free(uri);
        sb_printf(b,
                  "<figcaption><span class=\"bad\">%d false alarm%s</span>, <span "
                  "class=\"bad\">%d missed</span><br>",
                  fa[i], fa[i] == 1 ? "" : "s", miss[i]);
        sb_esc(b, base_name(dt->paths[i]));
        sb_puts(b, "</figcaption></figure>");
    }
    sb_puts(b, "</div></section>");
done:
    free(ms);
    free(fa);
    free(miss);
    free(bx);
}

/* ---- entry ------------------------------------------------------------------- */

eng_status eng_report_build(const eng_eval_detail *dt, const char *metrics_json, const char *title,
                            eng_report *out, eng_diag *d)
{
    memset(out, 0, sizeof *out);
    cJSON *mj = metrics_json
                    ? cJSON_ParseWithLengthOpts(metrics_json, strlen(metrics_json), NULL, 0)
                    : NULL;
    rpt r = {0}, *rp = NULL;
    eng_status st = ENG_OK;
    if (dt && dt->n > 0 && dt->ncat > 0 && (dt->detection || (dt->scores && dt->truth))) {
        r.dt = dt;
        r.K = dt->ncat;
        r.pr = calloc((size_t)r.K, sizeof *r.pr);
        if (!r.pr || (dt->detection ? analyse_boxes(&r) : analyse_scores(&r)) != 0) {
            st = eng_fail(d, ENG_ENOMEM, "report: out of memory");
            goto done;
        }
        rp = &r;
    }
    sb b = {0};
    sb_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    sb_esc(&b, title);
    sb_puts(&b, "</title><style>");
    sb_puts(&b, css);
    sb_puts(&b, "</style></head><body><h1>");
    sb_esc(&b, title);
    sb_puts(&b, "</h1>");
    page_metrics(&b, mj);
    page_tags(&b, mj, rp);
    if (rp) {
        page_confusion(&b, rp);
        page_pr(&b, rp);
        page_calibration(&b, rp);
        if (dt->detection)
            page_mistakes_boxes(&b, rp);
        else
            page_mistakes_scores(&b, rp);
    } else {
        sb_puts(&b, "<p class=\"note\">This evaluation kept no per-image results (a detector's "
                    "held-out figure is measured during the search). To see the confusion, the "
                    "curves and the mistakes, evaluate on a dataset: <code>mkdir "
                    "evaluations/DATASET</code>.</p>");
    }
    sb_puts(&b, "</body></html>\n");
    if (b.bad) {
        free(b.s);
        st = eng_fail(d, ENG_ENOMEM, "report: out of memory");
        goto done;
    }
    out->html = b.s;
    out->html_len = b.len;
    st = rpt_confusion_png(rp, &out->confusion_png, &out->confusion_len, d);
    if (st == ENG_OK)
        st = rpt_pr_png(rp, &out->pr_png, &out->pr_len, d);
    if (st != ENG_OK)
        eng_report_release(out);
done:
    rpt_release(&r);
    cJSON_Delete(mj);
    return st;
}

void eng_report_release(eng_report *r)
{
    if (!r)
        return;
    free(r->html);
    free(r->confusion_png);
    free(r->pr_png);
    memset(r, 0, sizeof *r);
}
