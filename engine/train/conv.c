/* conv.c: convolution, depthwise convolution and dense layers of the tape,
 * forward and backward.
 *
 * Design: forward passes call the runtime's kernels (engine/runtime/
 * kernels.h: packed GEMM convolution, AVX2 depthwise), which compute each
 * output element on one thread in a fixed order. Backward passes are ours,
 * as GEMMs (OpenBLAS sgemm, single-threaded, one call per fixed block,
 * blocks spread over the runtime's pool with tr_for):
 * - input gradient: written as a gather so no two blocks touch the same
 *   element: for TR_ROWS input pixels, collect dY at the output pixels each
 *   kernel tap maps them to, times the filter transposed per tap (1x1
 *   stride 1: dY times the filter transposed);
 * - filter gradient: one work item per (tap, block of 64 input channels)
 *   (1x1 stride 1: per block of 64 input x 64 output channels), summing
 *   over all pixels in image order.
 * Depthwise backward is direct loops over channels (contiguous in NHWC);
 * its filter gradient keeps one partial per fixed block of output rows,
 * added in block order. Nothing depends on the thread count.
 */
#include "train_int.h"

#include <cblas.h>
#include <string.h>

#define CI_BLOCK 64
#define CO_BLOCK 64
#define DW_ROWS 4
#define PW_ROWS 256 /* pixels per 1x1 input-gradient GEMM (each call packs the filter) */

typedef struct conv_geom {
    int n, ih, iw, ci, oh, ow, co, kh, kw, s, pt, pl;
} conv_geom;

static int is_pointwise(const conv_geom *g) { return g->kh == 1 && g->kw == 1 && g->s == 1; }

/* What the blocks of one backward pass share (tr_for callbacks). */
typedef struct conv_job {
    conv_geom g;
    const float *x, *w, *gy;
    float *gx, *gw;
    float *part;     /* depthwise filter gradient: one partial per row block */
    rt_scratch *scr; /* per-tid scratch (the pool's) */
    int64_t n, kd;   /* pixels (rows) of the pass; columns of a gathered row
                        (depthwise: the filter's size) */
    int nob, ncb;    /* output / input channel blocks */
} conv_job;

/* input gradient of a 1x1 stride-1 convolution, TR_ROWS pixels per block */
static void conv_gx_pointwise(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const conv_job *j = ctx;
    (void)tid;
    for (int64_t b = lo; b < hi; b++) {
        int64_t p0 = b * PW_ROWS, rows = j->n - p0 < PW_ROWS ? j->n - p0 : PW_ROWS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, j->g.ci, j->g.co, 1.0f,
                    j->gy + p0 * j->g.co, j->g.co, j->w, j->g.co, 1.0f, j->gx + p0 * j->g.ci,
                    j->g.ci);
    }
}

/* input gradient, any kernel: gather dY per tap for TR_ROWS input pixels,
 * times the transposed filter (j->w holds wt[(tap, co), ci]) */
static void conv_gx_gather(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const conv_job *j = ctx;
    conv_geom g = j->g;
    int64_t kd = j->kd;
    float *col = rt_scratch_get(j->scr, tid);
    if (!col)
        return;
    for (int64_t b = lo; b < hi; b++) {
        int64_t p0 = b * TR_ROWS, rows = j->n - p0 < TR_ROWS ? j->n - p0 : TR_ROWS;
        for (int64_t p = p0; p < p0 + rows; p++) {
            int64_t i = p / ((int64_t)g.ih * g.iw), r = p % ((int64_t)g.ih * g.iw);
            int iy = (int)(r / g.iw), ix = (int)(r % g.iw);
            float *dst = col + (p - p0) * kd;
            for (int ky = 0; ky < g.kh; ky++) {
                int ty = iy + g.pt - ky, oy = ty / g.s;
                int oky = ty >= 0 && ty % g.s == 0 && oy < g.oh;
                for (int kx = 0; kx < g.kw; kx++, dst += g.co) {
                    int tx = ix + g.pl - kx, ox = tx / g.s;
                    if (oky && tx >= 0 && tx % g.s == 0 && ox < g.ow)
                        memcpy(dst, j->gy + (((int64_t)i * g.oh + oy) * g.ow + ox) * g.co,
                               (size_t)g.co * sizeof(float));
                    else
                        memset(dst, 0, (size_t)g.co * sizeof(float));
                }
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, g.ci, (int)kd, 1.0f, col,
                    (int)kd, j->w, g.ci, 1.0f, j->gx + p0 * g.ci, g.ci);
    }
}

/* filter gradient of a 1x1 stride-1 convolution, one item per block of
 * CI_BLOCK input x CO_BLOCK output channels */
static void conv_gw_pointwise(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const conv_job *j = ctx;
    (void)tid;
    for (int64_t it = lo; it < hi; it++) {
        int c0 = (int)(it / j->nob) * CI_BLOCK, o0 = (int)(it % j->nob) * CO_BLOCK;
        int cb = j->g.ci - c0 < CI_BLOCK ? j->g.ci - c0 : CI_BLOCK;
        int ob = j->g.co - o0 < CO_BLOCK ? j->g.co - o0 : CO_BLOCK;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cb, ob, (int)j->n, 1.0f, j->x + c0,
                    j->g.ci, j->gy + o0, j->g.co, 1.0f, j->gw + (int64_t)c0 * j->g.co + o0,
                    j->g.co);
    }
}

/* filter gradient, any kernel: one item per (tap, block of CI_BLOCK input
 * channels), summing over the images in order */
static void conv_gw_taps(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const conv_job *j = ctx;
    conv_geom g = j->g;
    int64_t plane = (int64_t)g.oh * g.ow;
    float *xt = rt_scratch_get(j->scr, tid);
    if (!xt)
        return;
    for (int64_t it = lo; it < hi; it++) {
        int tp = (int)(it / j->ncb), ky = tp / g.kw, kx = tp % g.kw;
        int c0 = (int)(it % j->ncb) * CI_BLOCK, cb = g.ci - c0 < CI_BLOCK ? g.ci - c0 : CI_BLOCK;
        for (int i = 0; i < g.n; i++) {
            for (int oy = 0; oy < g.oh; oy++) {
                int iy = oy * g.s - g.pt + ky;
                for (int ox = 0; ox < g.ow; ox++) {
                    int ix = ox * g.s - g.pl + kx;
                    float *dst = xt + ((int64_t)oy * g.ow + ox) * cb;
                    if (iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw)
                        memset(dst, 0, (size_t)cb * sizeof(float));
                    else
                        memcpy(dst, j->x + (((int64_t)i * g.ih + iy) * g.iw + ix) * g.ci + c0,
                               (size_t)cb * sizeof(float));
                }
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cb, g.co, (int)plane, 1.0f, xt, cb,
                        j->gy + (int64_t)i * plane * g.co, g.co, 1.0f,
                        j->gw + ((int64_t)tp * g.ci + c0) * g.co, g.co);
        }
    }
}

static void conv_backward(eng_tape *t, eng_var *v)
{
    eng_var *xv = v->in[0], *wv = v->in[1];
    conv_job j = {.g = *(const conv_geom *)v->aux, .x = tr_val(xv), .w = tr_val(wv), .gy = v->grad};
    conv_geom g = j.g;
    j.gx = tr_grad(t, xv);
    j.gw = tr_grad(t, wv);
    int nt = tr_nt(t, v), taps = g.kh * g.kw;
    int64_t npix_out = (int64_t)g.n * g.oh * g.ow;
    if (j.gx && is_pointwise(&g)) {
        j.n = npix_out;
        tr_for(nt, tr_nblocks(npix_out, PW_ROWS), conv_gx_pointwise, &j);
    } else if (j.gx) {
        /* wt[(tap, co), ci] = w[tap, ci, co] */
        j.kd = (int64_t)taps * g.co;
        float *wt = tr_alloc(t, (size_t)(j.kd * g.ci) * sizeof(float));
        if (!wt)
            return;
        for (int tp = 0; tp < taps; tp++)
            for (int c = 0; c < g.ci; c++)
                for (int o = 0; o < g.co; o++)
                    wt[((int64_t)tp * g.co + o) * g.ci + c] =
                        j.w[((int64_t)tp * g.ci + c) * g.co + o];
        rt_scratch cols = {.bytes = (size_t)(TR_ROWS * j.kd) * sizeof(float)};
        conv_job jt = j;
        jt.w = wt;
        jt.n = (int64_t)g.n * g.ih * g.iw;
        jt.scr = &cols;
        tr_for(nt, tr_nblocks(jt.n, TR_ROWS), conv_gx_gather, &jt);
        if (rt_scratch_free(&cols)) {
            tr_fail(t, ENG_ENOMEM, "conv2d backward: out of memory");
            return;
        }
    }
    if (!j.gw)
        return;
    j.n = npix_out;
    j.ncb = (g.ci + CI_BLOCK - 1) / CI_BLOCK;
    if (is_pointwise(&g)) {
        j.nob = (g.co + CO_BLOCK - 1) / CO_BLOCK;
        tr_for(nt, (int64_t)j.ncb * j.nob, conv_gw_pointwise, &j);
        return;
    }
    rt_scratch taps_in = {.bytes = (size_t)((int64_t)g.oh * g.ow * CI_BLOCK) * sizeof(float)};
    j.scr = &taps_in;
    tr_for(nt, (int64_t)taps * j.ncb, conv_gw_taps, &j);
    if (rt_scratch_free(&taps_in))
        tr_fail(t, ENG_ENOMEM, "conv2d backward: out of memory");
}

eng_var *eng_op_conv2d(eng_tape *t, eng_var *x, eng_var *w, int stride)
{
    if (!x || !w)
        return NULL;
    const eng_tensor *X = &x->val, *W = &w->val;
    if (X->ndim != 4 || W->ndim != 4)
        return tr_fail(t, ENG_EINVAL, "conv2d: input rank %d, filter rank %d, need 4 and 4",
                       X->ndim, W->ndim);
    if (W->dim[2] != X->dim[3])
        return tr_fail(t, ENG_EINVAL, "conv2d: filter expects %lld channels, input has %lld",
                       (long long)W->dim[2], (long long)X->dim[3]);
    if (stride < 1 || stride > 4)
        return tr_fail(t, ENG_EINVAL, "conv2d: stride %d outside 1..4", stride);
    conv_geom g = {(int)X->dim[0], (int)X->dim[1], (int)X->dim[2], (int)X->dim[3], 0, 0,
                   (int)W->dim[3], (int)W->dim[0], (int)W->dim[1], stride,         0, 0};
    if (g.kh > 15 || g.kw > 15)
        return tr_fail(t, ENG_EINVAL, "conv2d: filter %dx%d larger than 15", g.kh, g.kw);
    tr_same(g.ih, g.kh, g.s, &g.oh, &g.pt);
    tr_same(g.iw, g.kw, g.s, &g.ow, &g.pl);
    int64_t dim[4] = {g.n, g.oh, g.ow, g.co};
    eng_var *v = tr_node(t, "conv2d", 4, dim, x, w, NULL);
    if (!v)
        return NULL;
    conv_geom *gp = tr_alloc(t, sizeof *gp);
    if (!gp)
        return NULL;
    *gp = g;
    v->aux = gp;
    v->backward = conv_backward;
    v->work = tr_numel(v) * g.kh * g.kw * g.ci;
    eng_conv_geom rg;
    eng_diag d;
    if (eng_conv_geom_init(&rg, g.n, g.ih, g.iw, g.ci, g.co, g.kh, g.kw, g.s, g.s, 1, 1,
                           ENG_PAD_SAME, NULL, &d) != ENG_OK)
        return tr_fail(t, ENG_EINVAL, "conv2d: %s", d.msg);
    if (eng_conv2d(&rg, tr_val(x), tr_val(w), NULL, ENG_ACT_NONE, tr_val(v), tr_nt(t, v)) != ENG_OK)
        return tr_fail(t, ENG_ENOMEM, "conv2d: out of memory");
    return v;
}

/* Dense: the last axis of x times w [K, M], run as a 1x1 convolution over
 * the rows of x. */
eng_var *eng_op_dense(eng_tape *t, eng_var *x, eng_var *w)
{
    if (!x || !w)
        return NULL;
    const eng_tensor *X = &x->val, *W = &w->val;
    if (W->ndim != 2 || W->dim[0] != X->dim[X->ndim - 1])
        return tr_fail(t, ENG_EINVAL, "dense: weights must be [%lld, M]",
                       (long long)X->dim[X->ndim - 1]);
    int64_t k = W->dim[0], m = W->dim[1], rows = tr_numel(x) / k;
    if (rows > (int64_t)1 << 31)
        return tr_fail(t, ENG_EINVAL, "dense: too many rows");
    int64_t dim[ENG_MAX_DIMS];
    for (int i = 0; i < X->ndim; i++)
        dim[i] = X->dim[i];
    dim[X->ndim - 1] = m;
    eng_var *v = tr_node(t, "dense", X->ndim, dim, x, w, NULL);
    if (!v)
        return NULL;
    conv_geom *gp = tr_alloc(t, sizeof *gp);
    if (!gp)
        return NULL;
    *gp = (conv_geom){1, (int)rows, 1, (int)k, (int)rows, 1, (int)m, 1, 1, 1, 0, 0};
    v->aux = gp;
    v->backward = conv_backward;
    v->work = rows * k * m;
    if (eng_matmul((int)rows, (int)m, (int)k, tr_val(x), 0, tr_val(w), 0, NULL, ENG_ACT_NONE,
                   tr_val(v), tr_nt(t, v)) != ENG_OK)
        return tr_fail(t, ENG_ENOMEM, "dense: out of memory");
    return v;
}

/* ---- depthwise ---- */

/* Under ASan: what the depthwise backward passes over rows [lo, hi) (input rows for gx, output
 * rows for gw) read and write, as they run without per-access checks (ENG_NO_ASAN,
 * asan_ranges.h): those rows, the other tensor's images they span, the filter or the partials */
static void dw_asan(const conv_job *j, int64_t lo, int64_t hi, int gx, int64_t plo, int64_t phi)
{
    const conv_geom *g = &j->g;
    const size_t f = sizeof(float), c = (size_t)g->ci;
    const size_t in_img = (size_t)g->ih * g->iw * c, out_img = (size_t)g->oh * g->ow * c;
    const int rows = gx ? g->ih : g->oh; /* per image, of the rows [lo, hi) */
    if (hi <= lo)
        return;
    const int64_t i0 = lo / rows, i1 = (hi - 1) / rows + 1;
    if (gx) {
        eng_asan_range(j->gx + lo * g->iw * c, (size_t)(hi - lo) * g->iw * c * f, 1);
        eng_asan_range(j->gy + i0 * out_img, (size_t)(i1 - i0) * out_img * f, 0);
        eng_asan_range(j->w, (size_t)g->kh * g->kw * c * f, 0);
    } else {
        eng_asan_range(j->gy + lo * g->ow * c, (size_t)(hi - lo) * g->ow * c * f, 0);
        eng_asan_range(j->x + i0 * in_img, (size_t)(i1 - i0) * in_img * f, 0);
        eng_asan_range(j->part + plo * j->kd, (size_t)(phi - plo) * (size_t)j->kd * f, 1);
    }
}

/* depthwise input gradient, one item per input row (image, iy) */
static ENG_NO_ASAN void dw_gx_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const conv_job *j = ctx;
    conv_geom g = j->g;
    int c = g.ci;
    (void)tid;
    if (ENG_ASAN)
        dw_asan(j, lo, hi, 1, 0, 0);
    for (int64_t r = lo; r < hi; r++) {
        int i = (int)(r / g.ih), iy = (int)(r % g.ih);
        for (int ix = 0; ix < g.iw; ix++) {
            float *dst = j->gx + (((int64_t)i * g.ih + iy) * g.iw + ix) * c;
            for (int ky = 0; ky < g.kh; ky++) {
                int ty = iy + g.pt - ky, oy = ty / g.s;
                if (ty < 0 || ty % g.s || oy >= g.oh)
                    continue;
                for (int kx = 0; kx < g.kw; kx++) {
                    int tx = ix + g.pl - kx, ox = tx / g.s;
                    if (tx < 0 || tx % g.s || ox >= g.ow)
                        continue;
                    const float *src = j->gy + (((int64_t)i * g.oh + oy) * g.ow + ox) * c;
                    const float *wk = j->w + ((int64_t)ky * g.kw + kx) * c;
#pragma omp simd
                    for (int q = 0; q < c; q++)
                        dst[q] += src[q] * wk[q];
                }
            }
        }
    }
}

/* depthwise filter gradient: one partial per block of DW_ROWS output rows */
static ENG_NO_ASAN void dw_gw_blocks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const conv_job *j = ctx;
    conv_geom g = j->g;
    int c = g.ci;
    int64_t rows = j->n, wsz = j->kd;
    (void)tid;
    if (ENG_ASAN)
        dw_asan(j, lo * DW_ROWS, hi * DW_ROWS < rows ? hi * DW_ROWS : rows, 0, lo, hi);
    for (int64_t b = lo; b < hi; b++) {
        float *p = j->part + b * wsz;
        memset(p, 0, (size_t)wsz * sizeof(float));
        int64_t r1 = (b + 1) * DW_ROWS < rows ? (b + 1) * DW_ROWS : rows;
        for (int64_t r = b * DW_ROWS; r < r1; r++) {
            int i = (int)(r / g.oh), oy = (int)(r % g.oh);
            for (int ox = 0; ox < g.ow; ox++) {
                const float *go = j->gy + (r * g.ow + ox) * c;
                for (int ky = 0; ky < g.kh; ky++) {
                    int iy = oy * g.s - g.pt + ky;
                    if (iy < 0 || iy >= g.ih)
                        continue;
                    for (int kx = 0; kx < g.kw; kx++) {
                        int ix = ox * g.s - g.pl + kx;
                        if (ix < 0 || ix >= g.iw)
                            continue;
                        const float *xi = j->x + (((int64_t)i * g.ih + iy) * g.iw + ix) * c;
                        float *pk = p + ((int64_t)ky * g.kw + kx) * c;
#pragma omp simd
                        for (int q = 0; q < c; q++)
                            pk[q] += xi[q] * go[q];
                    }
                }
            }
        }
    }
}

static void dw_backward(eng_tape *t, eng_var *v)
{
    eng_var *xv = v->in[0], *wv = v->in[1];
    conv_job j = {.g = *(const conv_geom *)v->aux, .x = tr_val(xv), .w = tr_val(wv), .gy = v->grad};
    conv_geom g = j.g;
    int nt = tr_nt(t, v);
    j.gx = tr_grad(t, xv);
    if (j.gx)
        tr_for(nt, (int64_t)g.n * g.ih, dw_gx_rows, &j);
    j.gw = tr_grad(t, wv);
    if (!j.gw)
        return;
    j.n = (int64_t)g.n * g.oh;
    j.kd = (int64_t)g.kh * g.kw * g.ci;
    int64_t nb = tr_nblocks(j.n, DW_ROWS);
    j.part = tr_alloc(t, (size_t)(nb * j.kd) * sizeof(float));
    if (!j.part)
        return;
    tr_for(nt, nb, dw_gw_blocks, &j);
    for (int64_t b = 0; b < nb; b++)
#pragma omp simd
        for (int64_t q = 0; q < j.kd; q++)
            j.gw[q] += j.part[b * j.kd + q];
}

eng_var *eng_op_depthwise(eng_tape *t, eng_var *x, eng_var *w, int stride)
{
    if (!x || !w)
        return NULL;
    const eng_tensor *X = &x->val, *W = &w->val;
    if (X->ndim != 4 || W->ndim != 4 || W->dim[2] != X->dim[3] || W->dim[3] != 1)
        return tr_fail(t, ENG_EINVAL, "depthwise: need input [N,H,W,C] and filter [KH,KW,C,1]");
    if (stride < 1 || stride > 4)
        return tr_fail(t, ENG_EINVAL, "depthwise: stride %d outside 1..4", stride);
    conv_geom g = {(int)X->dim[0], (int)X->dim[1], (int)X->dim[2], (int)X->dim[3], 0, 0,
                   (int)X->dim[3], (int)W->dim[0], (int)W->dim[1], stride,         0, 0};
    if (g.kh > 15 || g.kw > 15)
        return tr_fail(t, ENG_EINVAL, "depthwise: filter %dx%d larger than 15", g.kh, g.kw);
    tr_same(g.ih, g.kh, g.s, &g.oh, &g.pt);
    tr_same(g.iw, g.kw, g.s, &g.ow, &g.pl);
    int64_t dim[4] = {g.n, g.oh, g.ow, g.co};
    eng_var *v = tr_node(t, "depthwise", 4, dim, x, w, NULL);
    if (!v)
        return NULL;
    conv_geom *gp = tr_alloc(t, sizeof *gp);
    if (!gp)
        return NULL;
    *gp = g;
    v->aux = gp;
    v->backward = dw_backward;
    v->work = tr_numel(v) * g.kh * g.kw;
    eng_conv_geom rg;
    eng_diag d;
    if (eng_conv_geom_init(&rg, g.n, g.ih, g.iw, g.ci, g.co, g.kh, g.kw, g.s, g.s, 1, 1,
                           ENG_PAD_SAME, NULL, &d) != ENG_OK)
        return tr_fail(t, ENG_EINVAL, "depthwise: %s", d.msg);
    eng_dwconv2d(&rg, tr_val(x), tr_val(w), NULL, ENG_ACT_NONE, tr_val(v), tr_nt(t, v));
    return v;
}
