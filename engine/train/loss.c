/* loss.c: scalar losses of the tape: softmax cross-entropy, CenterNet's
 * focal loss, L1 and GIoU for boxes.
 *
 * Design: each loss computes its value and its gradient with respect to
 * the prediction together in the forward call (in double, serially in
 * element order, so the value is deterministic), stores the gradient in
 * the arena and scales it by the incoming gradient in backward. Targets
 * are copied, so callers may reuse their buffers at once.
 */
#include "train_int.h"

#include <math.h>
#include <string.h>

static void loss_backward(eng_tape *t, eng_var *v)
{
    float *gx = tr_grad(t, v->in[0]);
    if (!gx)
        return;
    const float *g = v->aux;
    float s = v->grad[0];
    tr_axpy(t, tr_numel(v->in[0]), s, g, gx);
}

/* Makes the scalar node and its gradient buffer (zeroed). */
static eng_var *loss_node(eng_tape *t, const char *name, eng_var *x, float **grad)
{
    int64_t one = 1;
    eng_var *v = tr_node(t, name, 1, &one, x, NULL, NULL);
    if (!v)
        return NULL;
    *grad = tr_alloc0(t, (size_t)tr_numel(x) * sizeof(float));
    if (!*grad)
        return NULL;
    v->aux = *grad;
    v->backward = loss_backward;
    return v;
}

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* x^e, by multiplication for the small integer exponents losses use. */
static double power(double x, double e)
{
    if (e == 2.0)
        return x * x;
    if (e == 4.0) {
        double x2 = x * x;
        return x2 * x2;
    }
    if (e == 1.0)
        return x;
    if (e == 0.0)
        return 1.0;
    return pow(x, e);
}

eng_var *eng_loss_softmax_xent(eng_tape *t, eng_var *logits, const int *labels, float smoothing)
{
    if (!logits)
        return NULL;
    if (!labels || !(smoothing >= 0.0f && smoothing < 1.0f))
        return tr_fail(t, ENG_EINVAL, "softmax_xent: no labels or smoothing outside [0, 1)");
    int64_t k = logits->val.dim[logits->val.ndim - 1], rows = tr_numel(logits) / k;
    for (int64_t r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= k)
            return tr_fail(t, ENG_EINVAL, "softmax_xent: label[%lld] = %d outside 0..%lld",
                           (long long)r, labels[r], (long long)k - 1);
    float *g;
    eng_var *v = loss_node(t, "softmax_xent", logits, &g);
    if (!v)
        return NULL;
    const float *z = tr_val(logits);
    double total = 0, off = smoothing / (double)k, on = 1.0 - smoothing + off;
    for (int64_t r = 0; r < rows; r++) {
        const float *zr = z + r * k;
        double mx = zr[0];
        for (int64_t j = 1; j < k; j++)
            mx = zr[j] > mx ? zr[j] : mx;
        double se = 0;
        for (int64_t j = 0; j < k; j++)
            se += exp(zr[j] - mx);
        double lse = mx + log(se);
        for (int64_t j = 0; j < k; j++) {
            double q = j == labels[r] ? on : off;
            double p = exp(zr[j] - lse);
            total -= q * (zr[j] - lse);
            g[r * k + j] = (float)((p - q) / (double)rows);
        }
    }
    tr_val(v)[0] = (float)(total / (double)rows);
    return v;
}

eng_var *eng_loss_focal(eng_tape *t, eng_var *logits, const float *target, float alpha, float beta)
{
    if (!logits)
        return NULL;
    if (!target || !(alpha >= 0.0f) || !(beta >= 0.0f))
        return tr_fail(t, ENG_EINVAL, "focal: no target or negative exponent");
    float *g;
    eng_var *v = loss_node(t, "focal", logits, &g);
    if (!v)
        return NULL;
    int64_t n = tr_numel(logits);
    const float *z = tr_val(logits);
    int64_t npos = 0;
    for (int64_t i = 0; i < n; i++)
        npos += target[i] >= 1.0f;
    double norm = npos > 0 ? (double)npos : 1.0, total = 0, a = alpha, b = beta;
    for (int64_t i = 0; i < n; i++) {
        double zi = z[i], p = 1.0 / (1.0 + exp(-zi));
        double logp = -softplus(-zi), log1mp = -softplus(zi), q = 1.0 - p, l, d;
        if (target[i] >= 1.0f) {
            double qa = power(q, a);
            l = -qa * logp;
            d = a * p * qa * logp - qa * q;
        } else {
            double wneg = power(1.0 - (double)target[i], b), pa = power(p, a);
            l = -wneg * pa * log1mp;
            d = wneg * pa * (p - a * q * log1mp);
        }
        total += l;
        g[i] = (float)(d / norm);
    }
    tr_val(v)[0] = (float)(total / norm);
    return v;
}

eng_var *eng_loss_l1(eng_tape *t, eng_var *pred, const float *target, const float *weight,
                     float norm)
{
    if (!pred)
        return NULL;
    if (!target || !(norm > 0.0f))
        return tr_fail(t, ENG_EINVAL, "l1: no target or norm not positive");
    float *g;
    eng_var *v = loss_node(t, "l1", pred, &g);
    if (!v)
        return NULL;
    int64_t k = pred->val.dim[pred->val.ndim - 1], rows = tr_numel(pred) / k;
    const float *p = tr_val(pred);
    double total = 0;
    for (int64_t r = 0; r < rows; r++) {
        double w = weight ? weight[r] : 1.0;
        if (w == 0.0)
            continue;
        for (int64_t j = 0; j < k; j++) {
            double e = (double)p[r * k + j] - target[r * k + j];
            total += w * fabs(e);
            g[r * k + j] = (float)((e > 0 ? w : e < 0 ? -w : 0.0) / norm);
        }
    }
    tr_val(v)[0] = (float)(total / norm);
    return v;
}

/* 1 - GIoU of two x1y1x2y2 boxes and its gradient wrt the first. */
static double giou_loss(const double *a, const double *b, double *grad)
{
    const double eps = 1e-9;
    double aw = a[2] - a[0], ah = a[3] - a[1], bw = b[2] - b[0], bh = b[3] - b[1];
    double ap = aw * ah, at = bw * bh;
    double ix1 = fmax(a[0], b[0]), iy1 = fmax(a[1], b[1]);
    double ix2 = fmin(a[2], b[2]), iy2 = fmin(a[3], b[3]);
    double iw = ix2 - ix1, ih = iy2 - iy1;
    int overlap = iw > 0 && ih > 0;
    double inter = overlap ? iw * ih : 0.0;
    double uni = ap + at - inter + eps;
    double cx1 = fmin(a[0], b[0]), cy1 = fmin(a[1], b[1]);
    double cx2 = fmax(a[2], b[2]), cy2 = fmax(a[3], b[3]);
    double cw = cx2 - cx1, ch = cy2 - cy1, c = cw * ch + eps;
    double giou = inter / uni - (c - uni) / c;
    /* giou = I/U + U/C - 1 with U = Ap + At - I */
    double d_inter = 1.0 / uni + inter / (uni * uni) - 1.0 / c;
    double d_ap = -inter / (uni * uni) + 1.0 / c;
    double d_c = -uni / (c * c);
    double g[4] = {0, 0, 0, 0};
    /* area of a */
    g[0] += d_ap * -ah;
    g[2] += d_ap * ah;
    g[1] += d_ap * -aw;
    g[3] += d_ap * aw;
    if (overlap) {
        if (a[0] > b[0])
            g[0] += d_inter * -ih;
        if (a[2] < b[2])
            g[2] += d_inter * ih;
        if (a[1] > b[1])
            g[1] += d_inter * -iw;
        if (a[3] < b[3])
            g[3] += d_inter * iw;
    }
    if (a[0] < b[0])
        g[0] += d_c * -ch;
    if (a[2] > b[2])
        g[2] += d_c * ch;
    if (a[1] < b[1])
        g[1] += d_c * -cw;
    if (a[3] > b[3])
        g[3] += d_c * cw;
    for (int i = 0; i < 4; i++)
        grad[i] = -g[i];
    return 1.0 - giou;
}

eng_var *eng_loss_giou(eng_tape *t, eng_var *pred, const float *target, const float *weight,
                       eng_box_format fmt, float norm)
{
    if (!pred)
        return NULL;
    if (!target || !(norm > 0.0f) || pred->val.dim[pred->val.ndim - 1] != 4)
        return tr_fail(t, ENG_EINVAL, "giou: need pred [..., 4], a target and norm > 0");
    float *g;
    eng_var *v = loss_node(t, "giou", pred, &g);
    if (!v)
        return NULL;
    int64_t rows = tr_numel(pred) / 4;
    const float *p = tr_val(pred);
    double total = 0;
    for (int64_t r = 0; r < rows; r++) {
        double w = weight ? weight[r] : 1.0;
        if (w == 0.0)
            continue;
        double a[4], b[4], d[4];
        for (int j = 0; j < 4; j++) {
            double sign = fmt == ENG_BOX_LTRB && j < 2 ? -1.0 : 1.0;
            a[j] = sign * p[r * 4 + j];
            b[j] = sign * target[r * 4 + j];
        }
        total += w * giou_loss(a, b, d);
        for (int j = 0; j < 4; j++) {
            double sign = fmt == ENG_BOX_LTRB && j < 2 ? -1.0 : 1.0;
            g[r * 4 + j] = (float)(w * sign * d[j] / norm);
        }
    }
    tr_val(v)[0] = (float)(total / norm);
    return v;
}
