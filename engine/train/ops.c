/* ops.c: the non-convolution ops of the tape with their backward passes:
 * activations, bias, broadcasting add/mul, scale, mean over H and W,
 * concat, bilinear resize, max pooling, reshape, sum.
 *
 * Design: elementwise work is split into fixed TR_CHUNK blocks (or rows,
 * or images) spread over the runtime's pool with tr_for; reductions whose
 * order matters (bias and broadcast gradients, sums) keep one partial per
 * fixed block and add the partials in block order, so results do not
 * depend on the thread count. Scatter-shaped backward passes (pooling) are
 * written as gathers, one writer per output element.
 */
#include "train_int.h"

#include <math.h>
#include <string.h>

/* ---- unary activations ---- */

enum { ACT_RELU, ACT_RELU6, ACT_HSWISH, ACT_SIGMOID };

/* One activation pass over TR_CHUNK blocks: forward (gy NULL: out = f(x))
 * or backward (out += gy * f'(x), y the forward's output). */
typedef struct act_job {
    const float *x, *y, *gy;
    float *out;
    int64_t n;
    int kind;
    float k;
} act_job;

/* Under ASan: the elements [i0, i1) of blocks [lo, hi) an activation pass reads and writes, as
 * the passes run without per-access checks (ENG_NO_ASAN, asan_ranges.h) */
static void act_asan(const act_job *j, int64_t lo, int64_t hi)
{
    const int64_t i0 = lo * TR_CHUNK, i1 = hi * TR_CHUNK < j->n ? hi * TR_CHUNK : j->n;
    const size_t off = (size_t)i0, bytes = (size_t)(i1 - i0) * sizeof(float);
    eng_asan_range(j->x + off, bytes, 0);
    if (j->gy) { /* backward: y only for the sigmoid's */
        eng_asan_range(j->gy + off, bytes, 0);
        if (j->kind == ACT_SIGMOID)
            eng_asan_range(j->y + off, bytes, 0);
    }
    eng_asan_range(j->out + off, bytes, 1);
}

static ENG_NO_ASAN void act_backward_blocks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const act_job *j = ctx;
    if (ENG_ASAN)
        act_asan(j, lo, hi);
    const float *xv = j->x, *yv = j->y, *gy = j->gy;
    float *gx = j->out, k = j->k;
    (void)tid;
    for (int64_t b = lo; b < hi; b++) {
        int64_t i0 = b * TR_CHUNK, i1 = i0 + TR_CHUNK < j->n ? i0 + TR_CHUNK : j->n;
        switch (j->kind) {
        case ACT_RELU:
#pragma omp simd
            for (int64_t i = i0; i < i1; i++)
                gx[i] += xv[i] > 0.0f ? gy[i] : 0.0f;
            break;
        case ACT_RELU6:
#pragma omp simd
            for (int64_t i = i0; i < i1; i++)
                gx[i] += xv[i] > 0.0f && xv[i] < 6.0f ? gy[i] : 0.0f;
            break;
        case ACT_HSWISH:
#pragma omp simd
            for (int64_t i = i0; i < i1; i++) {
                float d = xv[i] <= -3.0f  ? 0.0f
                          : xv[i] >= 3.0f ? 6.0f * k
                                          : (2.0f * xv[i] + 3.0f) * k;
                gx[i] += gy[i] * d;
            }
            break;
        default:
#pragma omp simd
            for (int64_t i = i0; i < i1; i++)
                gx[i] += gy[i] * (yv[i] * (1.0f - yv[i]));
            break;
        }
    }
}

static void act_backward(eng_tape *t, eng_var *v)
{
    eng_var *x = v->in[0];
    float *gx = tr_grad(t, x);
    if (!gx)
        return;
    act_job j = {tr_val(x), tr_val(v), v->grad, gx, tr_numel(v), v->iattr[0], v->fattr[0]};
    tr_for(tr_nt(t, v), tr_nblocks(j.n, TR_CHUNK), act_backward_blocks, &j);
}

/* min(max(x, 0), 6), NaN to 0 as fminf(fmaxf()) gives; written as
 * comparisons because those calls are not inlined without -ffast-math and
 * were 15% of fine-tuning's CPU time (perf), the loop around them scalar. */
static inline float clamp06(float x)
{
    float y = x > 0.0f ? x : 0.0f;
    return y < 6.0f ? y : 6.0f;
}

static ENG_NO_ASAN void act_forward_blocks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const act_job *j = ctx;
    if (ENG_ASAN)
        act_asan(j, lo, hi);
    const float *xv = j->x;
    float *y = j->out, k = j->k;
    (void)tid;
    for (int64_t b = lo; b < hi; b++) {
        int64_t i0 = b * TR_CHUNK, i1 = i0 + TR_CHUNK < j->n ? i0 + TR_CHUNK : j->n;
        switch (j->kind) {
        case ACT_RELU:
#pragma omp simd
            for (int64_t i = i0; i < i1; i++)
                y[i] = xv[i] > 0.0f ? xv[i] : 0.0f;
            break;
        case ACT_RELU6:
#pragma omp simd
            for (int64_t i = i0; i < i1; i++)
                y[i] = clamp06(xv[i]);
            break;
        case ACT_HSWISH:
#pragma omp simd
            for (int64_t i = i0; i < i1; i++)
                y[i] = xv[i] * k * clamp06(xv[i] + 3.0f);
            break;
        default:
            for (int64_t i = i0; i < i1; i++)
                y[i] = 1.0f / (1.0f + expf(-xv[i]));
            break;
        }
    }
}

static eng_var *act_op(eng_tape *t, eng_var *x, int kind, float k, const char *name)
{
    if (!x)
        return NULL;
    eng_var *v = tr_node(t, name, x->val.ndim, x->val.dim, x, NULL, NULL);
    if (!v)
        return NULL;
    v->iattr[0] = kind;
    v->fattr[0] = k;
    v->backward = act_backward;
    act_job j = {tr_val(x), NULL, NULL, tr_val(v), tr_numel(v), kind, k};
    tr_for(tr_nt(t, v), tr_nblocks(j.n, TR_CHUNK), act_forward_blocks, &j);
    return v;
}

eng_var *eng_op_relu(eng_tape *t, eng_var *x) { return act_op(t, x, ACT_RELU, 0, "relu"); }
eng_var *eng_op_relu6(eng_tape *t, eng_var *x) { return act_op(t, x, ACT_RELU6, 0, "relu6"); }
eng_var *eng_op_hard_swish(eng_tape *t, eng_var *x)
{
    return act_op(t, x, ACT_HSWISH, 1.0f / 6.0f, "hard_swish");
}
eng_var *eng_op_hard_swish_k(eng_tape *t, eng_var *x, float k)
{
    return act_op(t, x, ACT_HSWISH, k, "hard_swish");
}
eng_var *eng_op_sigmoid(eng_tape *t, eng_var *x) { return act_op(t, x, ACT_SIGMOID, 0, "sigmoid"); }

/* ---- scale ---- */

static void scale_backward(eng_tape *t, eng_var *v)
{
    float *gx = tr_grad(t, v->in[0]);
    if (!gx)
        return;
    float s = v->fattr[0];
    tr_axpy(t, tr_numel(v), s, v->grad, gx);
}

eng_var *eng_op_scale(eng_tape *t, eng_var *x, float s)
{
    if (!x)
        return NULL;
    eng_var *v = tr_node(t, "scale", x->val.ndim, x->val.dim, x, NULL, NULL);
    if (!v)
        return NULL;
    v->fattr[0] = s;
    v->backward = scale_backward;
    int64_t n = tr_numel(v);
    const float *xv = tr_val(x);
    float *y = tr_val(v);
    memset(y, 0, (size_t)n * sizeof(float));
    tr_axpy(t, n, s, xv, y);
    return v;
}

/* ---- bias over the last axis ---- */

/* Rows of c channels: the bias gradient's partial sums, one per block of
 * rb rows, or the forward out = x + b row by row. */
typedef struct bias_job {
    const float *x, *b, *gy;
    float *out;
    int64_t rows, rb, c;
} bias_job;

/* Under ASan: rows [r0, r1) of x (or gy) and out, and the bias, as bias_rows and bias_partials
 * run without per-access checks; the partials' rows are [lo, hi) */
static void bias_asan(const bias_job *j, int64_t lo, int64_t hi, int64_t r0, int64_t r1)
{
    const size_t row = (size_t)j->c * sizeof(float);
    if (j->gy) {
        eng_asan_range(j->gy + r0 * j->c, (size_t)(r1 - r0) * row, 0);
        eng_asan_range(j->out + lo * j->c, (size_t)(hi - lo) * row, 1);
    } else {
        eng_asan_range(j->x + r0 * j->c, (size_t)(r1 - r0) * row, 0);
        eng_asan_range(j->b, row, 0);
        eng_asan_range(j->out + r0 * j->c, (size_t)(r1 - r0) * row, 1);
    }
}

static ENG_NO_ASAN void bias_partials(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const bias_job *j = ctx;
    int64_t c = j->c;
    if (ENG_ASAN)
        bias_asan(j, lo, hi, lo * j->rb, hi * j->rb < j->rows ? hi * j->rb : j->rows);
    (void)tid;
    for (int64_t k = lo; k < hi; k++) {
        float *p = j->out + k * c;
        memset(p, 0, (size_t)c * sizeof(float));
        int64_t r1 = (k + 1) * j->rb < j->rows ? (k + 1) * j->rb : j->rows;
        for (int64_t r = k * j->rb; r < r1; r++)
#pragma omp simd
            for (int64_t q = 0; q < c; q++)
                p[q] += j->gy[r * c + q];
    }
}

static void bias_backward(eng_tape *t, eng_var *v)
{
    eng_var *x = v->in[0], *b = v->in[1];
    int64_t n = tr_numel(v), c = tr_numel(b), rows = n / c;
    float *gx = tr_grad(t, x);
    if (gx)
        tr_axpy(t, n, 1.0f, v->grad, gx);
    float *gb = tr_grad(t, b);
    if (!gb)
        return;
    /* one partial per fixed block of rows, added in block order */
    int64_t rb = TR_CHUNK / c > 0 ? TR_CHUNK / c : 1, nb = tr_nblocks(rows, rb);
    float *part = tr_alloc(t, (size_t)(nb * c) * sizeof(float));
    if (!part)
        return;
    bias_job j = {.gy = v->grad, .out = part, .rows = rows, .rb = rb, .c = c};
    tr_for(tr_nt(t, v), nb, bias_partials, &j);
    for (int64_t k = 0; k < nb; k++)
#pragma omp simd
        for (int64_t q = 0; q < c; q++)
            gb[q] += part[k * c + q];
}

static ENG_NO_ASAN void bias_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const bias_job *j = ctx;
    int64_t c = j->c;
    if (ENG_ASAN)
        bias_asan(j, lo, hi, lo, hi);
    (void)tid;
    for (int64_t r = lo; r < hi; r++)
#pragma omp simd
        for (int64_t q = 0; q < c; q++)
            j->out[r * c + q] = j->x[r * c + q] + j->b[q];
}

eng_var *eng_op_bias(eng_tape *t, eng_var *x, eng_var *b)
{
    if (!x || !b)
        return NULL;
    int64_t c = x->val.dim[x->val.ndim - 1];
    if (tr_numel(b) != c)
        return tr_fail(t, ENG_EINVAL, "bias: %lld values for %lld channels", (long long)tr_numel(b),
                       (long long)c);
    eng_var *v = tr_node(t, "bias", x->val.ndim, x->val.dim, x, b, NULL);
    if (!v)
        return NULL;
    v->backward = bias_backward;
    bias_job j = {
        .x = tr_val(x), .b = tr_val(b), .out = tr_val(v), .rows = tr_numel(x) / c, .c = c};
    tr_for(tr_nt(t, v), j.rows, bias_rows, &j);
    return v;
}

/* ---- broadcasting add / mul ---- */

/* Strides of a into the output index space (0 on broadcast axes). */
static void bcast_strides(const eng_var *a, int64_t *st)
{
    int64_t s = 1;
    for (int i = a->val.ndim - 1; i >= 0; i--) {
        st[i] = a->val.dim[i] == 1 ? 0 : s;
        s *= a->val.dim[i];
    }
}

/* Calls body(out_index, a_index, b_index) over the output in row-major
 * order, for output positions [o0, o1). */
typedef struct bcast_iter {
    int nd;
    int64_t dim[ENG_MAX_DIMS], sa[ENG_MAX_DIMS], sb[ENG_MAX_DIMS];
} bcast_iter;

static void bcast_index(const bcast_iter *it, int64_t o, int64_t *ia, int64_t *ib)
{
    int64_t a = 0, b = 0;
    for (int i = it->nd - 1; i >= 0; i--) {
        int64_t k = o % it->dim[i];
        o /= it->dim[i];
        a += k * it->sa[i];
        b += k * it->sb[i];
    }
    *ia = a;
    *ib = b;
}

static void bcast_init(bcast_iter *it, const eng_var *v, const eng_var *a, const eng_var *b)
{
    it->nd = v->val.ndim;
    for (int i = 0; i < it->nd; i++)
        it->dim[i] = v->val.dim[i];
    bcast_strides(a, it->sa);
    bcast_strides(b, it->sb);
}

/* Rows of the last axis per block, so blocks hold about TR_CHUNK elements. */
static int64_t bcast_rows_per_block(int64_t len) { return len < TR_CHUNK ? TR_CHUNK / len : 1; }

/* Adds the gradient of one operand for output rows [r0, r1):
 * dst[index(o)] += gy[o] * (other[index(o)] or 1). */
static void bcast_grad_rows(const bcast_iter *it, int64_t r0, int64_t r1, const float *gy,
                            const float *ov, int is_mul, int which, float *dst)
{
    int nd = it->nd;
    int64_t len = it->dim[nd - 1];
    int64_t sx = which == 0 ? it->sa[nd - 1] : it->sb[nd - 1];
    int64_t so = which == 0 ? it->sb[nd - 1] : it->sa[nd - 1];
    for (int64_t r = r0; r < r1; r++) {
        int64_t ia, ib;
        bcast_index(it, r * len, &ia, &ib);
        int64_t ix = which == 0 ? ia : ib, io = which == 0 ? ib : ia;
        const float *g = gy + r * len;
        float *d = dst + ix;
        if (sx == 0) { /* reduction along the row: in order */
            for (int64_t j = 0; j < len; j++)
                d[0] += g[j] * (is_mul ? ov[io + j * so] : 1.0f);
        } else if (!is_mul) {
#pragma omp simd
            for (int64_t j = 0; j < len; j++)
                d[j] += g[j];
        } else if (so) {
#pragma omp simd
            for (int64_t j = 0; j < len; j++)
                d[j] += g[j] * ov[io + j];
        } else {
            float f = ov[io];
#pragma omp simd
            for (int64_t j = 0; j < len; j++)
                d[j] += g[j] * f;
        }
    }
}

/* Blocks of rb output rows for one operand's gradient: into dst itself
 * (part NULL) or into one partial of nx values per block. */
typedef struct bcast_grad_job {
    const bcast_iter *it;
    const float *gy, *ov;
    float *dst, *part;
    int64_t rows, rb, nx;
    int is_mul, which;
} bcast_grad_job;

static void bcast_grad_blocks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const bcast_grad_job *j = ctx;
    (void)tid;
    for (int64_t k = lo; k < hi; k++) {
        float *d = j->dst;
        if (j->part) {
            d = j->part + k * j->nx;
            memset(d, 0, (size_t)j->nx * sizeof(float));
        }
        int64_t r1 = (k + 1) * j->rb < j->rows ? (k + 1) * j->rb : j->rows;
        bcast_grad_rows(j->it, k * j->rb, r1, j->gy, j->ov, j->is_mul, j->which, d);
    }
}

/* Gradient of one operand. When it is not broadcast, each block of rows
 * writes its own elements; otherwise per-block partials are added in block
 * order, or, when those would outweigh the output, one serial pass. */
static void bcast_grad(eng_tape *t, eng_var *v, eng_var *x, const eng_var *other, int is_mul,
                       int which)
{
    float *gx = tr_grad(t, x);
    if (!gx)
        return;
    bcast_iter it;
    bcast_init(&it, v, v->in[0], v->in[1]);
    int64_t n = tr_numel(v), nx = tr_numel(x), len = it.dim[it.nd - 1];
    int64_t rows = n / len, rb = bcast_rows_per_block(len), nb = tr_nblocks(rows, rb);
    bcast_grad_job j = {&it,    v->grad, other ? tr_val(other) : NULL, gx, NULL, rows, rb, nx,
                        is_mul, which};
    if (nx == n) {
        tr_for(tr_nt(t, v), nb, bcast_grad_blocks, &j);
        return;
    }
    if (nb * nx > n) {
        bcast_grad_rows(&it, 0, rows, j.gy, j.ov, is_mul, which, gx);
        return;
    }
    j.part = tr_alloc(t, (size_t)(nb * nx) * sizeof(float));
    if (!j.part)
        return;
    tr_for(tr_nt(t, v), nb, bcast_grad_blocks, &j);
    for (int64_t k = 0; k < nb; k++)
#pragma omp simd
        for (int64_t q = 0; q < nx; q++)
            gx[q] += j.part[k * nx + q];
}

static void add_backward(eng_tape *t, eng_var *v)
{
    bcast_grad(t, v, v->in[0], NULL, 0, 0);
    bcast_grad(t, v, v->in[1], NULL, 0, 1);
}

static void mul_backward(eng_tape *t, eng_var *v)
{
    bcast_grad(t, v, v->in[0], v->in[1], 1, 0);
    bcast_grad(t, v, v->in[1], v->in[0], 1, 1);
}

typedef struct bcast_job {
    const bcast_iter *it;
    const float *a, *b;
    float *y;
    int is_mul;
} bcast_job;

/* out = a + b or a * b for output rows [lo, hi) of the last axis */
static void bcast_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const bcast_job *j = ctx;
    int nd = j->it->nd;
    int64_t len = j->it->dim[nd - 1], sa = j->it->sa[nd - 1], sb = j->it->sb[nd - 1];
    (void)tid;
    for (int64_t r = lo; r < hi; r++) {
        int64_t ia, ib;
        bcast_index(j->it, r * len, &ia, &ib);
        const float *pa = j->a + ia, *pb = j->b + ib;
        float *o = j->y + r * len;
        if (j->is_mul) {
#pragma omp simd
            for (int64_t q = 0; q < len; q++)
                o[q] = pa[q * sa] * pb[q * sb];
        } else {
#pragma omp simd
            for (int64_t q = 0; q < len; q++)
                o[q] = pa[q * sa] + pb[q * sb];
        }
    }
}

static eng_var *bcast_op(eng_tape *t, eng_var *a, eng_var *b, int is_mul)
{
    if (!a || !b)
        return NULL;
    const char *name = is_mul ? "mul" : "add";
    if (a->val.ndim != b->val.ndim)
        return tr_fail(t, ENG_EINVAL, "%s: ranks %d and %d differ", name, a->val.ndim, b->val.ndim);
    int64_t dim[ENG_MAX_DIMS];
    for (int i = 0; i < a->val.ndim; i++) {
        int64_t x = a->val.dim[i], y = b->val.dim[i];
        if (x != y && x != 1 && y != 1)
            return tr_fail(t, ENG_EINVAL, "%s: axis %d sizes %lld and %lld do not broadcast", name,
                           i, (long long)x, (long long)y);
        dim[i] = x > y ? x : y;
    }
    eng_var *v = tr_node(t, name, a->val.ndim, dim, a, b, NULL);
    if (!v)
        return NULL;
    v->backward = is_mul ? mul_backward : add_backward;
    bcast_iter it;
    bcast_init(&it, v, a, b);
    bcast_job j = {&it, tr_val(a), tr_val(b), tr_val(v), is_mul};
    tr_for(tr_nt(t, v), tr_numel(v) / it.dim[it.nd - 1], bcast_rows, &j);
    return v;
}

eng_var *eng_op_add(eng_tape *t, eng_var *a, eng_var *b) { return bcast_op(t, a, b, 0); }
eng_var *eng_op_mul(eng_tape *t, eng_var *a, eng_var *b) { return bcast_op(t, a, b, 1); }

/* ---- mean over H, W ---- */

/* One item per image of hw pixels x c channels. */
typedef struct mean_job {
    const float *src;
    float *dst;
    int64_t hw, c;
} mean_job;

/* dst (the input's gradient) += src (the mean's) / hw at every pixel */
static void mean_hw_spread(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const mean_job *j = ctx;
    int64_t hw = j->hw, c = j->c;
    float inv = 1.0f / (float)hw;
    (void)tid;
    for (int64_t i = lo; i < hi; i++)
        for (int64_t p = 0; p < hw; p++)
#pragma omp simd
            for (int64_t q = 0; q < c; q++)
                j->dst[(i * hw + p) * c + q] += j->src[i * c + q] * inv;
}

static void mean_hw_backward(eng_tape *t, eng_var *v)
{
    eng_var *x = v->in[0];
    float *gx = tr_grad(t, x);
    if (!gx)
        return;
    mean_job j = {v->grad, gx, x->val.dim[1] * x->val.dim[2], x->val.dim[3]};
    tr_for(tr_nt(t, v), x->val.dim[0], mean_hw_spread, &j);
}

/* dst = the mean of src over its hw pixels */
static void mean_hw_images(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const mean_job *j = ctx;
    int64_t hw = j->hw, c = j->c;
    (void)tid;
    for (int64_t i = lo; i < hi; i++) {
        float *o = j->dst + i * c;
        memset(o, 0, (size_t)c * sizeof(float));
        for (int64_t p = 0; p < hw; p++)
#pragma omp simd
            for (int64_t q = 0; q < c; q++)
                o[q] += j->src[(i * hw + p) * c + q];
#pragma omp simd
        for (int64_t q = 0; q < c; q++)
            o[q] /= (float)hw;
    }
}

eng_var *eng_op_mean_hw(eng_tape *t, eng_var *x)
{
    if (!x)
        return NULL;
    if (x->val.ndim != 4)
        return tr_fail(t, ENG_EINVAL, "mean_hw: rank %d, need NHWC", x->val.ndim);
    int64_t dim[4] = {x->val.dim[0], 1, 1, x->val.dim[3]};
    eng_var *v = tr_node(t, "mean_hw", 4, dim, x, NULL, NULL);
    if (!v)
        return NULL;
    v->backward = mean_hw_backward;
    mean_job j = {tr_val(x), tr_val(v), x->val.dim[1] * x->val.dim[2], dim[3]};
    tr_for(tr_nt(t, v), dim[0], mean_hw_images, &j);
    return v;
}

/* ---- concat along the last axis ---- */

/* One input's columns [off, off + cx) of the c-wide output, per row. */
typedef struct concat_job {
    const float *src;
    float *dst;
    int64_t c, cx, off;
} concat_job;

static void concat_grad_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const concat_job *j = ctx;
    (void)tid;
    for (int64_t r = lo; r < hi; r++)
#pragma omp simd
        for (int64_t q = 0; q < j->cx; q++)
            j->dst[r * j->cx + q] += j->src[r * j->c + j->off + q];
}

static void concat_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const concat_job *j = ctx;
    (void)tid;
    for (int64_t r = lo; r < hi; r++)
        memcpy(j->dst + r * j->c + j->off, j->src + r * j->cx, (size_t)j->cx * sizeof(float));
}

static void concat_backward(eng_tape *t, eng_var *v)
{
    int64_t c = v->val.dim[v->val.ndim - 1], rows = tr_numel(v) / c, off = 0;
    for (int k = 0; k < v->nin; k++) {
        eng_var *x = v->ins[k];
        int64_t cx = x->val.dim[x->val.ndim - 1];
        float *gx = tr_grad(t, x);
        if (gx) {
            concat_job j = {v->grad, gx, c, cx, off};
            tr_for(tr_nt(t, v), rows, concat_grad_rows, &j);
        }
        off += cx;
    }
}

eng_var *eng_op_concat(eng_tape *t, eng_var *const *xs, int n)
{
    if (t->st != ENG_OK)
        return NULL;
    if (n < 1 || !xs)
        return tr_fail(t, ENG_EINVAL, "concat: no inputs");
    for (int k = 0; k < n; k++)
        if (!xs[k])
            return NULL;
    const eng_tensor *x0 = &xs[0]->val;
    int64_t dim[ENG_MAX_DIMS], c = 0;
    for (int k = 0; k < n; k++) {
        const eng_tensor *x = &xs[k]->val;
        if (x->ndim != x0->ndim)
            return tr_fail(t, ENG_EINVAL, "concat: input %d rank %d, input 0 rank %d", k, x->ndim,
                           x0->ndim);
        for (int i = 0; i < x->ndim - 1; i++)
            if (x->dim[i] != x0->dim[i])
                return tr_fail(t, ENG_EINVAL, "concat: input %d axis %d is %lld, not %lld", k, i,
                               (long long)x->dim[i], (long long)x0->dim[i]);
        c += x->dim[x->ndim - 1];
    }
    for (int i = 0; i < x0->ndim; i++)
        dim[i] = x0->dim[i];
    dim[x0->ndim - 1] = c;
    eng_var *v = tr_node(t, "concat", x0->ndim, dim, NULL, NULL, NULL);
    if (!v)
        return NULL;
    v->ins = tr_alloc(t, sizeof *v->ins * (size_t)n);
    if (!v->ins)
        return NULL;
    v->nin = n;
    for (int k = 0; k < n; k++) {
        v->ins[k] = xs[k];
        v->requires_grad |= xs[k]->requires_grad;
    }
    v->backward = concat_backward;
    int64_t rows = tr_numel(v) / c, off = 0;
    for (int k = 0; k < n; k++) {
        int64_t cx = xs[k]->val.dim[x0->ndim - 1];
        concat_job j = {tr_val(xs[k]), tr_val(v), c, cx, off};
        tr_for(tr_nt(t, v), rows, concat_rows, &j);
        off += cx;
    }
    return v;
}

/* ---- bilinear resize (TF ResizeBilinear, legacy coordinates) ---- */

typedef struct lerp_tab {
    int lo, hi;
    float f;
} lerp_tab;

static void lerp_fill(lerp_tab *tab, int in, int out)
{
    float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        float src = (float)o * scale;
        int lo = (int)floorf(src);
        if (lo > in - 1)
            lo = in - 1;
        tab[o].lo = lo;
        tab[o].hi = lo + 1 < in ? lo + 1 : in - 1;
        tab[o].f = src - (float)lo;
    }
}

/* A resize or max-pooling node and its input's gradient (NULL forward):
 * the callbacks read the shapes off the node. */
typedef struct node_job {
    const eng_var *v;
    float *gx;
} node_job;

/* scatter per image: images are independent, each written by one thread */
static void resize_grad_images(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const node_job *j = ctx;
    const eng_var *v = j->v, *x = v->in[0];
    int ih = (int)x->val.dim[1], iw = (int)x->val.dim[2];
    int c = (int)x->val.dim[3], oh = (int)v->val.dim[1], ow = (int)v->val.dim[2];
    const lerp_tab *ty = v->aux, *tx = ty + oh;
    (void)tid;
    for (int64_t i = lo; i < hi; i++) {
        float *g = j->gx + i * ih * iw * c;
        for (int oy = 0; oy < oh; oy++) {
            float fy = ty[oy].f;
            for (int ox = 0; ox < ow; ox++) {
                float fx = tx[ox].f;
                const float *gy = v->grad + ((i * oh + oy) * ow + ox) * c;
                float *p00 = g + ((int64_t)ty[oy].lo * iw + tx[ox].lo) * c;
                float *p01 = g + ((int64_t)ty[oy].lo * iw + tx[ox].hi) * c;
                float *p10 = g + ((int64_t)ty[oy].hi * iw + tx[ox].lo) * c;
                float *p11 = g + ((int64_t)ty[oy].hi * iw + tx[ox].hi) * c;
                float w00 = (1 - fy) * (1 - fx), w01 = (1 - fy) * fx, w10 = fy * (1 - fx),
                      w11 = fy * fx;
                for (int q = 0; q < c; q++) {
                    p00[q] += gy[q] * w00;
                    p01[q] += gy[q] * w01;
                    p10[q] += gy[q] * w10;
                    p11[q] += gy[q] * w11;
                }
            }
        }
    }
}

static void resize_backward(eng_tape *t, eng_var *v)
{
    node_job j = {v, tr_grad(t, v->in[0])};
    if (j.gx)
        tr_for(tr_nt(t, v), v->val.dim[0], resize_grad_images, &j);
}

/* one item per output row (image, oy) */
static void resize_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const node_job *j = ctx;
    const eng_var *v = j->v, *x = v->in[0];
    int ih = (int)x->val.dim[1], iw = (int)x->val.dim[2], c = (int)x->val.dim[3];
    int oh = (int)v->val.dim[1], ow = (int)v->val.dim[2];
    const lerp_tab *ty = v->aux, *tx = ty + oh;
    const float *xv = tr_val(x);
    float *y = tr_val(v);
    (void)tid;
    for (int64_t r = lo; r < hi; r++) {
        int64_t i = r / oh;
        int oy = (int)(r % oh);
        const float *r0 = xv + (i * ih + ty[oy].lo) * iw * c;
        const float *r1 = xv + (i * ih + ty[oy].hi) * iw * c;
        float fy = ty[oy].f;
        for (int ox = 0; ox < ow; ox++) {
            float fx = tx[ox].f;
            const float *a = r0 + (int64_t)tx[ox].lo * c, *b = r0 + (int64_t)tx[ox].hi * c;
            const float *cc = r1 + (int64_t)tx[ox].lo * c, *dd = r1 + (int64_t)tx[ox].hi * c;
            float *o = y + (r * ow + ox) * c;
#pragma omp simd
            for (int q = 0; q < c; q++) {
                float top = a[q] + (b[q] - a[q]) * fx;
                float bot = cc[q] + (dd[q] - cc[q]) * fx;
                o[q] = top + (bot - top) * fy;
            }
        }
    }
}

eng_var *eng_op_resize_bilinear(eng_tape *t, eng_var *x, int oh, int ow)
{
    if (!x)
        return NULL;
    if (x->val.ndim != 4 || oh < 1 || ow < 1)
        return tr_fail(t, ENG_EINVAL, "resize_bilinear: need NHWC input and a positive size");
    int64_t dim[4] = {x->val.dim[0], oh, ow, x->val.dim[3]};
    eng_var *v = tr_node(t, "resize_bilinear", 4, dim, x, NULL, NULL);
    if (!v)
        return NULL;
    int ih = (int)x->val.dim[1], iw = (int)x->val.dim[2];
    /* both tables in one arena block for backward: tx follows ty */
    lerp_tab *ty = tr_alloc(t, sizeof *ty * (size_t)(oh + ow));
    if (!ty)
        return NULL;
    lerp_fill(ty, ih, oh);
    lerp_fill(ty + oh, iw, ow);
    v->aux = ty;
    v->backward = resize_backward;
    node_job j = {v, NULL};
    tr_for(tr_nt(t, v), dim[0] * oh, resize_rows, &j);
    return v;
}

eng_var *eng_op_upsample2x(eng_tape *t, eng_var *x)
{
    if (!x)
        return NULL;
    if (x->val.ndim != 4)
        return tr_fail(t, ENG_EINVAL, "upsample2x: rank %d, need NHWC", x->val.ndim);
    return eng_op_resize_bilinear(t, x, (int)x->val.dim[1] * 2, (int)x->val.dim[2] * 2);
}

/* ---- max pooling ---- */

/* Along one axis: the output whose window (stride s, leading pad) holds
 * input position `in` at offset `tap`, or -1 when none does. */
static inline int window_at(int in, int pad, int tap, int s, int n_out)
{
    int t = in + pad - tap;
    if (t < 0 || t % s || t / s >= n_out)
        return -1;
    return t / s;
}

/* gather: each input pixel of rows [lo, hi) (image, iy) sums the outputs
 * whose window won on it */
static void maxpool_grad_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const node_job *j = ctx;
    const eng_var *v = j->v, *x = v->in[0];
    int ih = (int)x->val.dim[1], iw = (int)x->val.dim[2];
    int c = (int)x->val.dim[3], oh = (int)v->val.dim[1], ow = (int)v->val.dim[2];
    int k = v->iattr[0], s = v->iattr[1], pt = v->iattr[2], pl = v->iattr[3];
    const int32_t *arg = v->aux; /* winning input pixel (y * iw + x) per output */
    (void)tid;
    for (int64_t r = lo; r < hi; r++) {
        int64_t i = r / ih;
        int iy = (int)(r % ih);
        for (int ix = 0; ix < iw; ix++) {
            int32_t me = iy * iw + ix;
            float *g = j->gx + ((i * ih + iy) * iw + ix) * c;
            for (int ky = 0; ky < k; ky++) {
                int oy = window_at(iy, pt, ky, s, oh);
                if (oy < 0)
                    continue;
                for (int kx = 0; kx < k; kx++) {
                    int ox = window_at(ix, pl, kx, s, ow);
                    if (ox < 0)
                        continue;
                    int64_t o = ((i * oh + oy) * ow + ox) * c;
#pragma omp simd
                    for (int q = 0; q < c; q++)
                        if (arg[o + q] == me)
                            g[q] += v->grad[o + q];
                }
            }
        }
    }
}

static void maxpool_backward(eng_tape *t, eng_var *v)
{
    node_job j = {v, tr_grad(t, v->in[0])};
    if (j.gx)
        tr_for(tr_nt(t, v), v->in[0]->val.dim[0] * v->in[0]->val.dim[1], maxpool_grad_rows, &j);
}

/* one item per output row (image, oy): the maximum and where it was */
static void maxpool_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const node_job *j = ctx;
    const eng_var *v = j->v, *x = v->in[0];
    int ih = (int)x->val.dim[1], iw = (int)x->val.dim[2], c = (int)x->val.dim[3];
    int oh = (int)v->val.dim[1], ow = (int)v->val.dim[2];
    int k = v->iattr[0], stride = v->iattr[1], pt = v->iattr[2], pl = v->iattr[3];
    int32_t *arg = v->aux;
    const float *xv = tr_val(x);
    float *y = tr_val(v);
    (void)tid;
    for (int64_t r = lo; r < hi; r++) {
        int64_t i = r / oh;
        int oy = (int)(r % oh);
        for (int ox = 0; ox < ow; ox++) {
            int64_t o = (r * ow + ox) * c;
            for (int q = 0; q < c; q++) {
                y[o + q] = -INFINITY;
                arg[o + q] = -1;
            }
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * stride - pt + ky;
                if (iy < 0 || iy >= ih)
                    continue;
                for (int kx = 0; kx < k; kx++) {
                    int ix = ox * stride - pl + kx;
                    if (ix < 0 || ix >= iw)
                        continue;
                    const float *p = xv + ((i * ih + iy) * iw + ix) * c;
#pragma omp simd
                    for (int q = 0; q < c; q++)
                        if (p[q] > y[o + q]) {
                            y[o + q] = p[q];
                            arg[o + q] = iy * iw + ix;
                        }
                }
            }
        }
    }
}

eng_var *eng_op_maxpool(eng_tape *t, eng_var *x, int k, int stride)
{
    if (!x)
        return NULL;
    if (x->val.ndim != 4 || k < 1 || k > 15 || stride < 1 || stride > k)
        return tr_fail(t, ENG_EINVAL, "maxpool: need NHWC input, window 1..15, stride 1..k");
    int n = (int)x->val.dim[0], ih = (int)x->val.dim[1], iw = (int)x->val.dim[2];
    int c = (int)x->val.dim[3], oh, ow, pt, pl;
    tr_same(ih, k, stride, &oh, &pt);
    tr_same(iw, k, stride, &ow, &pl);
    int64_t dim[4] = {n, oh, ow, c};
    eng_var *v = tr_node(t, "maxpool", 4, dim, x, NULL, NULL);
    if (!v)
        return NULL;
    int32_t *arg = tr_alloc(t, (size_t)tr_numel(v) * sizeof(int32_t));
    if (!arg)
        return NULL;
    v->aux = arg;
    v->iattr[0] = k;
    v->iattr[1] = stride;
    v->iattr[2] = pt;
    v->iattr[3] = pl;
    v->backward = maxpool_backward;
    node_job j = {v, NULL};
    tr_for(tr_nt(t, v), (int64_t)n * oh, maxpool_rows, &j);
    return v;
}

/* ---- reshape, sum ---- */

static void copy_backward(eng_tape *t, eng_var *v)
{
    float *gx = tr_grad(t, v->in[0]);
    if (!gx)
        return;
    tr_axpy(t, tr_numel(v), 1.0f, v->grad, gx);
}

eng_var *eng_op_reshape(eng_tape *t, eng_var *x, int ndim, const int64_t *dim)
{
    if (!x)
        return NULL;
    int64_t n = 1;
    for (int i = 0; i < ndim && i < ENG_MAX_DIMS; i++)
        n *= dim[i] > 0 ? dim[i] : 0;
    if (ndim < 1 || ndim > ENG_MAX_DIMS || n != tr_numel(x))
        return tr_fail(t, ENG_EINVAL, "reshape: %lld elements cannot take the new shape",
                       (long long)tr_numel(x));
    eng_var *v = tr_node(t, "reshape", ndim, dim, x, NULL, NULL);
    if (!v)
        return NULL;
    v->backward = copy_backward;
    memcpy(tr_val(v), tr_val(x), (size_t)n * sizeof(float));
    return v;
}

static void sum_backward(eng_tape *t, eng_var *v)
{
    float *gx = tr_grad(t, v->in[0]);
    if (!gx)
        return;
    int64_t n = tr_numel(v->in[0]);
    float g = v->grad[0];
    for (int64_t i = 0; i < n; i++)
        gx[i] += g;
}

eng_var *eng_op_sum(eng_tape *t, eng_var *x)
{
    if (!x)
        return NULL;
    int64_t one = 1;
    eng_var *v = tr_node(t, "sum", 1, &one, x, NULL, NULL);
    if (!v)
        return NULL;
    v->backward = sum_backward;
    int64_t n = tr_numel(x);
    const float *xv = tr_val(x);
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += xv[i];
    tr_val(v)[0] = (float)s;
    return v;
}
