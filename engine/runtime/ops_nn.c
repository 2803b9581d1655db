/* ops_nn.c: the ops with weights or windows: Conv2D and _FusedConv2D,
 * DepthwiseConv2dNative and FusedDepthwiseConv2dNative, MaxPool,
 * ResizeBilinear, Mean, MatMul and _FusedMatMul, Softmax.
 *
 * Design: these ops only check shapes and attributes and then call the
 * kernels of kernels.h; constant filters are repacked once in prepare
 * (load time), and non-constant filters are packed per call, so a graph that
 * computes its weights still runs.
 */
#include "runtime_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(t) rt_shape_str(t, sbuf, sizeof sbuf)
#define SHAPE2(t) rt_shape_str(t, sbuf2, sizeof sbuf2)

static int is_f32(const eng_tensor *t, int ndim) { return t->dtype == ENG_F32 && t->ndim == ndim; }

static eng_status window_geom(const rt_node *n, const eng_tensor *x, int cout, int kh, int kw,
                              eng_conv_geom *g, eng_diag *d)
{
    for (int i = 0; i < 4; i++)
        if (x->dim[i] < 1 || x->dim[i] > INT32_MAX)
            return RT_FAIL(d, ENG_EINVAL, n, "input dimension %d is %lld", i, (long long)x->dim[i]);
    eng_status st =
        eng_conv_geom_init(g, (int)x->dim[0], (int)x->dim[1], (int)x->dim[2], (int)x->dim[3], cout,
                           kh, kw, n->a.stride[0], n->a.stride[1], n->a.dilation[0],
                           n->a.dilation[1], n->a.padding, n->a.pads, d);
    if (st) {
        char msg[sizeof d->msg];
        snprintf(msg, sizeof msg, "%s", d ? d->msg : "");
        return RT_FAIL(d, st, n, "%s", msg);
    }
    return ENG_OK;
}

/* ---- Conv2D, _FusedConv2D ---- */

static eng_status conv_check_weights(const rt_node *n, const eng_tensor *x, const eng_tensor *f,
                                     const eng_tensor *b, int depthwise, eng_diag *d)
{
    char sbuf[160], sbuf2[160];
    if (!is_f32(x, 4))
        return RT_FAIL(d, ENG_EINVAL, n, "input must be float32 NHWC, is %s", SHAPE(x));
    if (!is_f32(f, 4))
        return RT_FAIL(d, ENG_EFORMAT, n, "filter must be float32 [kh,kw,cin,%s], is %s",
                       depthwise ? "mult" : "cout", SHAPE(f));
    for (int i = 0; i < 4; i++)
        if (f->dim[i] < 1 || f->dim[i] > (1 << 20))
            return RT_FAIL(d, ENG_EFORMAT, n, "filter shape %s", SHAPE(f));
    if (f->dim[2] != x->dim[3])
        return RT_FAIL(d, ENG_EINVAL, n,
                       "filter %s expects %lld input channels, input %s has "
                       "%lld",
                       SHAPE(f), (long long)f->dim[2], SHAPE2(x), (long long)x->dim[3]);
    int64_t cout = depthwise ? f->dim[2] * f->dim[3] : f->dim[3];
    if (cout > (1 << 24))
        return RT_FAIL(d, ENG_EFORMAT, n, "filter shape %s", SHAPE(f));
    if (n->a.has_bias) {
        if (b->dtype != ENG_F32 || b->ndim != 1 || b->dim[0] != cout)
            return RT_FAIL(d, ENG_EFORMAT, n, "bias %s does not match %lld output channels",
                           SHAPE(b), (long long)cout);
    }
    return ENG_OK;
}

static eng_status conv_prepare(eng_model *m, rt_node *n, eng_diag *d)
{
    (void)m;
    int want = 2 + n->a.has_bias;
    if (n->n_in != want)
        return RT_FAIL(d, ENG_EFORMAT, n, "expects %d inputs, has %d", want, n->n_in);
    const rt_node *f = rt_input_node(m, n, 1);
    const rt_node *b = n->a.has_bias ? rt_input_node(m, n, 2) : NULL;
    if (f->value && (!b || b->value)) {
        char sbuf[160], sbuf2[160];
        const eng_tensor *w = f->value;
        if (!is_f32(w, 4))
            return RT_FAIL(d, ENG_EFORMAT, n, "filter must be float32 [kh,kw,cin,cout], is %s",
                           SHAPE(w));
        for (int i = 0; i < 4; i++)
            if (w->dim[i] < 1 || w->dim[i] > (1 << 20))
                return RT_FAIL(d, ENG_EFORMAT, n, "filter shape %s", SHAPE(w));
        if (b &&
            (b->value->dtype != ENG_F32 || b->value->ndim != 1 || b->value->dim[0] != w->dim[3]))
            return RT_FAIL(d, ENG_EFORMAT, n, "bias %s does not match filter %s", SHAPE2(b->value),
                           SHAPE(w));
        n->packed = eng_conv_pack(eng_f32(w), b ? eng_f32(b->value) : NULL, (int)w->dim[0],
                                  (int)w->dim[1], (int)w->dim[2], (int)w->dim[3]);
        if (!n->packed)
            return RT_FAIL(d, ENG_ENOMEM, n, "out of memory packing the filter");
    }
    return ENG_OK;
}

static eng_status conv_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             eng_diag *d)
{
    const eng_tensor *x = in[0], *f = in[1], *b = n->a.has_bias ? in[2] : NULL;
    eng_status st = conv_check_weights(n, x, f, b, 0, d);
    if (st)
        return st;
    eng_conv_geom g;
    if ((st = window_geom(n, x, (int)f->dim[3], (int)f->dim[0], (int)f->dim[1], &g, d)))
        return st;
    int64_t dim[4] = {g.n, g.oh, g.ow, g.cout};
    rt_set_shape(out, ENG_F32, 4, dim);
    if (n->a.residual) { /* fused form (fuse.c): the added tensor must match exactly */
        const eng_tensor *r = in[n->n_in - 1];
        if (r->dtype != ENG_F32 || !rt_same_shape(r, out)) {
            char sbuf[160], sbuf2[160];
            return RT_FAIL(d, ENG_EUNSUPPORTED, n,
                           "added tensor %s does not match the convolution's %s (fused "
                           "residual: also request the convolution node to run it unfused)",
                           SHAPE(r), SHAPE2(out));
        }
    }
    return ENG_OK;
}

static eng_status conv_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    const eng_tensor *x = in[0], *f = in[1];
    eng_conv_geom g;
    eng_status st = window_geom(n, x, (int)f->dim[3], (int)f->dim[0], (int)f->dim[1], &g, d);
    if (st)
        return st;
    const float *res = n->a.residual ? eng_f32(in[n->n_in - 1]) : NULL;
    if (n->packed) {
        st = rt_conv2d_packed_res(&g, eng_f32(x), n->packed, n->a.act, res, eng_f32(out),
                                  c->threads);
    } else {
        eng_conv_packed *p = eng_conv_pack(eng_f32(f), n->a.has_bias ? eng_f32(in[2]) : NULL, g.kh,
                                           g.kw, g.cin, g.cout);
        st = p ? rt_conv2d_packed_res(&g, eng_f32(x), p, n->a.act, res, eng_f32(out), c->threads)
               : ENG_ENOMEM;
        eng_conv_packed_free(p);
    }
    if (st)
        return RT_FAIL(d, st, n, "out of memory");
    return ENG_OK;
}

static double conv_flops(const rt_node *n, const eng_tensor *const *in, const eng_tensor *out)
{
    (void)n;
    return 2.0 * (double)rt_numel(out) * (double)(in[1]->dim[0] * in[1]->dim[1] * in[1]->dim[2]);
}

/* ---- depthwise ---- */

static eng_status dw_prepare(eng_model *m, rt_node *n, eng_diag *d)
{
    (void)m;
    int want = 2 + n->a.has_bias;
    if (n->n_in != want)
        return RT_FAIL(d, ENG_EFORMAT, n, "expects %d inputs, has %d", want, n->n_in);
    return ENG_OK;
}

static eng_status dw_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                           eng_diag *d)
{
    const eng_tensor *x = in[0], *f = in[1], *b = n->a.has_bias ? in[2] : NULL;
    eng_status st = conv_check_weights(n, x, f, b, 1, d);
    if (st)
        return st;
    eng_conv_geom g;
    int cout = (int)(f->dim[2] * f->dim[3]);
    if ((st = window_geom(n, x, cout, (int)f->dim[0], (int)f->dim[1], &g, d)))
        return st;
    int64_t dim[4] = {g.n, g.oh, g.ow, g.cout};
    rt_set_shape(out, ENG_F32, 4, dim);
    return ENG_OK;
}

static eng_status dw_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             const rt_ctx *c, eng_diag *d)
{
    const eng_tensor *x = in[0], *f = in[1];
    eng_conv_geom g;
    int cout = (int)(f->dim[2] * f->dim[3]);
    eng_status st = window_geom(n, x, cout, (int)f->dim[0], (int)f->dim[1], &g, d);
    if (st)
        return st;
    eng_dwconv2d(&g, eng_f32(x), eng_f32(f), n->a.has_bias ? eng_f32(in[2]) : NULL, n->a.act,
                 eng_f32(out), c->threads);
    return ENG_OK;
}

static double dw_flops(const rt_node *n, const eng_tensor *const *in, const eng_tensor *out)
{
    (void)n;
    return 2.0 * (double)rt_numel(out) * (double)(in[1]->dim[0] * in[1]->dim[1]);
}

/* ---- expand 1x1 + depthwise, fused (fuse.c) ----
 * The fused form of a depthwise convolution whose input is a 1x1 convolution used nowhere
 * else. Inputs: x (the 1x1's input), the depthwise filter, its bias when has_bias, and the
 * 1x1's filter last; `packed` is the 1x1's packed weights (borrowed), `a` the depthwise's
 * attributes with a.pre_act the 1x1's activation. */

/* the 1x1's output shape (no data) */
static eng_status xdw_mid(const rt_node *n, const eng_tensor *const *in, eng_tensor *mid,
                          eng_diag *d)
{
    char sbuf[160], sbuf2[160];
    const eng_tensor *x = in[0], *ef = in[n->n_in - 1];
    if (!is_f32(x, 4))
        return RT_FAIL(d, ENG_EINVAL, n, "input must be float32 NHWC, is %s", SHAPE(x));
    if (!is_f32(ef, 4) || ef->dim[0] != 1 || ef->dim[1] != 1 || ef->dim[2] != x->dim[3] ||
        !n->packed)
        return RT_FAIL(d, ENG_EINVAL, n, "expand filter %s does not fit input %s", SHAPE(ef),
                       SHAPE2(x));
    memset(mid, 0, sizeof *mid);
    int64_t dim[4] = {x->dim[0], x->dim[1], x->dim[2], ef->dim[3]};
    rt_set_shape(mid, ENG_F32, 4, dim);
    return ENG_OK;
}

static eng_status xdw_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                            eng_diag *d)
{
    eng_tensor mid;
    eng_status st = xdw_mid(n, in, &mid, d);
    if (st)
        return st;
    const eng_tensor *din[3] = {&mid, in[1], n->a.has_bias ? in[2] : NULL};
    return dw_infer(n, din, out, d);
}

/* Maps under 1 MB per image (the expanded map of the expand + depthwise form, the depthwise
 * output of the depthwise + 1x1 form) run as the two kernels one after the other: they stay in
 * L2 between them. Measured in the networks (docs/engine.md): the threshold was 4 MB until
 * 2026-12-07, when Lite2's 65x65x144 expansion ran 0.83-0.93 ms as two kernels and 0.58-0.65
 * fused, and Lite0's first block 0.41-0.55 against 0.33-0.39; fusing every map was slower with
 * 2 threads (the chunks recompute kh - stride expanded rows each, a large share of a 7x7 or
 * 14x14 map). VFS_FUSE_MIN_KB overrides (benchmarks; 0 fuses every map). */
static int64_t fuse_min_bytes(void)
{
    static int64_t v = -1;
    int64_t b;
#pragma omp atomic read
    b = v;
    if (b < 0) {
        const char *e = getenv("VFS_FUSE_MIN_KB");
        long kb = e ? strtol(e, NULL, 10) : -1;
        b = kb >= 0 && kb < (1L << 30) ? (int64_t)kb * 1024 : (int64_t)1 << 20;
#pragma omp atomic write
        v = b;
    }
    return b;
}

static eng_status xdw_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                              const rt_ctx *c, eng_diag *d)
{
    const eng_tensor *f = in[1];
    eng_tensor mid;
    eng_status st = xdw_mid(n, in, &mid, d);
    if (st)
        return st;
    eng_conv_geom g;
    if ((st = window_geom(n, &mid, (int)mid.dim[3], (int)f->dim[0], (int)f->dim[1], &g, d)))
        return st;
    const float *bias = n->a.has_bias ? eng_f32(in[2]) : NULL;
    if ((int64_t)g.ih * g.iw * g.cin * (int64_t)sizeof(float) >= fuse_min_bytes()) {
        st = rt_expand_dwconv2d(&g, eng_f32(in[0]), n->packed, n->a.pre_act, eng_f32(f), bias,
                                n->a.act, eng_f32(out), c->threads);
    } else { /* small map: the 1x1 whole, then the depthwise */
        eng_tensor *t = rt_tensor_alloc(ENG_F32, 4, mid.dim);
        eng_conv_geom e = rt_geom_1x1(g.n, g.ih, g.iw, (int)in[0]->dim[3], g.cin);
        st = t ? rt_conv2d_packed_res(&e, eng_f32(in[0]), n->packed, n->a.pre_act, NULL, eng_f32(t),
                                      c->threads)
               : ENG_ENOMEM;
        if (!st)
            eng_dwconv2d(&g, eng_f32(t), eng_f32(f), bias, n->a.act, eng_f32(out), c->threads);
        eng_tensor_free(t);
    }
    if (st)
        return RT_FAIL(d, st, n, "out of memory");
    return ENG_OK;
}

static double xdw_flops(const rt_node *n, const eng_tensor *const *in, const eng_tensor *out)
{
    const eng_tensor *x = in[0], *ef = in[n->n_in - 1];
    return 2.0 * (double)(x->dim[0] * x->dim[1] * x->dim[2]) * (double)(ef->dim[2] * ef->dim[3]) +
           dw_flops(n, in, out);
}

const rt_op rt_op_expand_dw = {"_ExpandDepthwise", 3,           4,        1, NULL,
                               xdw_infer,          xdw_compute, xdw_flops};

/* ---- depthwise + 1x1, fused (fuse.c) ----
 * The fused form of a 1x1 stride-1 convolution whose input is a depthwise convolution used
 * nowhere else. Inputs: x (the depthwise's input), the 1x1's filter and its bias when
 * a.has_bias, the depthwise's filter and its bias when n->dw->a.has_bias, and the added
 * tensor last when a.residual; `packed` is the 1x1's packed weights (borrowed), `a` the 1x1's
 * attributes, n->dw the depthwise node. */

#define DWP_MAX_IN 6

/* the depthwise's inputs: x, filter, bias (NULL without) */
static void dwp_dw_inputs(const rt_node *n, const eng_tensor *const *in, const eng_tensor **din)
{
    int i = 2 + n->a.has_bias;
    din[0] = in[0];
    din[1] = in[i];
    din[2] = n->dw->a.has_bias ? in[i + 1] : NULL;
}

static eng_status dwp_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                            eng_diag *d)
{
    const eng_tensor *din[3];
    dwp_dw_inputs(n, in, din);
    eng_tensor mid;
    memset(&mid, 0, sizeof mid);
    eng_status st = dw_infer(n->dw, din, &mid, d);
    if (st)
        return st;
    const eng_tensor *cin[DWP_MAX_IN];
    for (int i = 0; i < n->n_in && i < DWP_MAX_IN; i++)
        cin[i] = in[i];
    cin[0] = &mid;
    return conv_infer(n, cin, out, d);
}

/* maps under fuse_min_bytes() run as the depthwise whole, then the 1x1 */
static eng_status dwp_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                              const rt_ctx *c, eng_diag *d)
{
    const eng_tensor *din[3];
    dwp_dw_inputs(n, in, din);
    const eng_tensor *f = din[1];
    eng_conv_geom g;
    eng_status st =
        window_geom(n->dw, in[0], (int)f->dim[2], (int)f->dim[0], (int)f->dim[1], &g, d);
    if (st)
        return st;
    const float *bias = din[2] ? eng_f32(din[2]) : NULL;
    const float *res = n->a.residual ? eng_f32(in[n->n_in - 1]) : NULL;
    if ((int64_t)g.oh * g.ow * g.cin * (int64_t)sizeof(float) >= fuse_min_bytes()) {
        st = rt_dw_conv1x1(&g, eng_f32(in[0]), eng_f32(f), bias, n->dw->a.act, n->packed, n->a.act,
                           res, eng_f32(out), c->threads);
    } else { /* small map: the depthwise whole, then the 1x1 */
        int64_t mdim[4] = {g.n, g.oh, g.ow, g.cin};
        eng_tensor *t = rt_tensor_alloc(ENG_F32, 4, mdim);
        eng_conv_geom e = rt_geom_1x1(g.n, g.oh, g.ow, g.cin, (int)in[1]->dim[3]);
        if (t)
            eng_dwconv2d(&g, eng_f32(in[0]), eng_f32(f), bias, n->dw->a.act, eng_f32(t),
                         c->threads);
        st = t ? rt_conv2d_packed_res(&e, eng_f32(t), n->packed, n->a.act, res, eng_f32(out),
                                      c->threads)
               : ENG_ENOMEM;
        eng_tensor_free(t);
    }
    if (st)
        return RT_FAIL(d, st, n, "out of memory");
    return ENG_OK;
}

static double dwp_flops(const rt_node *n, const eng_tensor *const *in, const eng_tensor *out)
{
    const eng_tensor *din[3];
    dwp_dw_inputs(n, in, din);
    const eng_tensor *pf = in[1], *df = din[1];
    double pixels = (double)(out->dim[0] * out->dim[1] * out->dim[2]);
    return 2.0 * pixels * (double)pf->dim[2] * (double)(pf->dim[3] + df->dim[0] * df->dim[1]);
}

const rt_op rt_op_dw_conv1x1 = {"_DepthwiseConv1x1", 3,           DWP_MAX_IN, 1, NULL,
                                dwp_infer,           dwp_compute, dwp_flops};

/* ---- MaxPool ---- */

static eng_status pool_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             eng_diag *d)
{
    char sbuf[160];
    if (!is_f32(in[0], 4))
        return RT_FAIL(d, ENG_EINVAL, n, "input must be float32 NHWC, is %s", SHAPE(in[0]));
    eng_conv_geom g;
    if (in[0]->dim[3] > INT32_MAX)
        return RT_FAIL(d, ENG_EINVAL, n, "too many channels");
    eng_status st = window_geom(n, in[0], (int)in[0]->dim[3], n->a.ksize[0], n->a.ksize[1], &g, d);
    if (st)
        return st;
    int64_t dim[4] = {g.n, g.oh, g.ow, g.cout};
    rt_set_shape(out, ENG_F32, 4, dim);
    return ENG_OK;
}

static eng_status pool_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    eng_conv_geom g;
    eng_status st = window_geom(n, in[0], (int)in[0]->dim[3], n->a.ksize[0], n->a.ksize[1], &g, d);
    if (st)
        return st;
    eng_maxpool2d(&g, eng_f32(in[0]), eng_f32(out), c->threads);
    return ENG_OK;
}

/* ---- ResizeBilinear ---- */

static eng_status resize_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               eng_diag *d)
{
    char sbuf[160];
    const eng_tensor *x = in[0], *s = in[1];
    if (!is_f32(x, 4))
        return RT_FAIL(d, ENG_EINVAL, n, "input must be float32 NHWC, is %s", SHAPE(x));
    if (s->dtype != ENG_I32 || s->ndim != 1 || s->dim[0] != 2)
        return RT_FAIL(d, ENG_EFORMAT, n, "size must be int32 [2], is %s", SHAPE(s));
    if (n->a.align_corners && n->a.half_pixel)
        return RT_FAIL(d, ENG_EFORMAT, n, "align_corners and half_pixel_centers both set");
    if (!s->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    const int32_t *sz = s->data;
    if (sz[0] < 1 || sz[1] < 1 || sz[0] > (1 << 16) || sz[1] > (1 << 16))
        return RT_FAIL(d, ENG_EINVAL, n, "bad output size %dx%d", sz[0], sz[1]);
    for (int i = 0; i < 4; i++)
        if (x->dim[i] < 1 || x->dim[i] > INT32_MAX)
            return RT_FAIL(d, ENG_EINVAL, n, "input shape %s", SHAPE(x));
    int64_t dim[4] = {x->dim[0], sz[0], sz[1], x->dim[3]};
    rt_set_shape(out, ENG_F32, 4, dim);
    return ENG_OK;
}

static eng_status resize_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                 const rt_ctx *c, eng_diag *d)
{
    (void)d;
    const eng_tensor *x = in[0];
    eng_resize_bilinear(eng_f32(x), (int)x->dim[0], (int)x->dim[1], (int)x->dim[2], (int)x->dim[3],
                        eng_f32(out), (int)out->dim[1], (int)out->dim[2], n->a.align_corners,
                        n->a.half_pixel, c->threads);
    return ENG_OK;
}

/* ---- Mean ---- */

/* reduced-axes bitmask from the axes tensor; -1 when invalid */
static int mean_axes(const rt_node *n, const eng_tensor *x, const eng_tensor *ax, eng_diag *d)
{
    if (ax->dtype != ENG_I32 || ax->ndim > 1)
        return RT_FAIL(d, ENG_EFORMAT, n, "axes must be int32 scalar or vector"), -1;
    int mask = 0;
    for (int64_t i = 0; i < rt_numel(ax); i++) {
        int64_t a = ((const int32_t *)ax->data)[i];
        if (a < 0)
            a += x->ndim;
        if (a < 0 || a >= x->ndim)
            return RT_FAIL(d, ENG_EINVAL, n, "axis %d out of range for rank %d",
                           ((const int32_t *)ax->data)[i], x->ndim),
                   -1;
        mask |= 1 << a;
    }
    return mask;
}

static eng_status mean_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             eng_diag *d)
{
    const eng_tensor *x = in[0];
    if (x->dtype != ENG_F32)
        return RT_FAIL(d, ENG_EINVAL, n, "input must be float32");
    if (!in[1]->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    int mask = mean_axes(n, x, in[1], d);
    if (mask < 0)
        return ENG_EINVAL;
    int64_t dim[ENG_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!(mask & (1 << i)))
            dim[k++] = x->dim[i];
        else if (n->a.keep_dims)
            dim[k++] = 1;
    }
    rt_set_shape(out, ENG_F32, k, dim);
    return ENG_OK;
}

static eng_status mean_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    const eng_tensor *x = in[0];
    int mask = mean_axes(n, x, in[1], d);
    if (mask < 0)
        return ENG_EINVAL;
    if (x->ndim == 4 && mask == 6) {
        eng_mean_hw(eng_f32(x), (int)x->dim[0], (int)x->dim[1], (int)x->dim[2], (int)x->dim[3],
                    eng_f32(out), c->threads);
        return ENG_OK;
    }
    /* general: accumulate each input element into its output slot */
    int64_t on = rt_numel(out), xn = rt_numel(x), cnt = on ? xn / on : 0;
    double *acc = calloc((size_t)(on ? on : 1), sizeof *acc);
    if (!acc)
        return RT_FAIL(d, ENG_ENOMEM, n, "out of memory");
    int64_t ostride[ENG_MAX_DIMS], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        ostride[i] = (mask & (1 << i)) ? 0 : s;
        if (!(mask & (1 << i)))
            s *= x->dim[i];
    }
    const float *p = eng_f32(x);
    int64_t idx[ENG_MAX_DIMS] = {0};
    for (int64_t e = 0; e < xn; e++) {
        int64_t o = 0;
        for (int i = 0; i < x->ndim; i++)
            o += idx[i] * ostride[i];
        acc[o] += p[e];
        for (int i = x->ndim - 1; i >= 0; i--) {
            if (++idx[i] < x->dim[i])
                break;
            idx[i] = 0;
        }
    }
    for (int64_t i = 0; i < on; i++)
        eng_f32(out)[i] = cnt ? (float)(acc[i] / (double)cnt) : 0.0f / 0.0f;
    free(acc);
    return ENG_OK;
}

/* ---- MatMul, _FusedMatMul ---- */

static eng_status matmul_prepare(eng_model *m, rt_node *n, eng_diag *d)
{
    (void)m;
    int want = 2 + n->a.has_bias;
    if (n->n_in != want)
        return RT_FAIL(d, ENG_EFORMAT, n, "expects %d inputs, has %d", want, n->n_in);
    return ENG_OK;
}

static eng_status matmul_dims(const rt_node *n, const eng_tensor *const *in, int64_t *M, int64_t *N,
                              int64_t *K, eng_diag *d)
{
    char sbuf[160], sbuf2[160];
    const eng_tensor *a = in[0], *b = in[1];
    if (!is_f32(a, 2) || !is_f32(b, 2))
        return RT_FAIL(d, ENG_EINVAL, n, "inputs must be float32 matrices, are %s and %s", SHAPE(a),
                       SHAPE2(b));
    *M = n->a.transpose_a ? a->dim[1] : a->dim[0];
    *K = n->a.transpose_a ? a->dim[0] : a->dim[1];
    int64_t kb = n->a.transpose_b ? b->dim[1] : b->dim[0];
    *N = n->a.transpose_b ? b->dim[0] : b->dim[1];
    if (kb != *K)
        return RT_FAIL(d, ENG_EINVAL, n, "inner dimensions %lld and %lld differ", (long long)*K,
                       (long long)kb);
    if (*M < 1 || *N < 1 || *K < 1 || *M > INT32_MAX || *N > (1 << 24) || *K > (1 << 24))
        return RT_FAIL(d, ENG_EINVAL, n, "matrix sizes out of range");
    if (n->a.has_bias && (in[2]->dtype != ENG_F32 || rt_numel(in[2]) != *N || in[2]->ndim != 1))
        return RT_FAIL(d, ENG_EFORMAT, n, "bias %s does not match %lld columns", SHAPE(in[2]),
                       (long long)*N);
    return ENG_OK;
}

static eng_status matmul_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               eng_diag *d)
{
    int64_t M = 0, N = 0, K = 0;
    eng_status st = matmul_dims(n, in, &M, &N, &K, d);
    if (st)
        return st;
    int64_t dim[2] = {M, N};
    rt_set_shape(out, ENG_F32, 2, dim);
    return ENG_OK;
}

static eng_status matmul_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                 const rt_ctx *c, eng_diag *d)
{
    int64_t M = 0, N = 0, K = 0;
    eng_status st = matmul_dims(n, in, &M, &N, &K, d);
    if (st)
        return st;
    st = eng_matmul((int)M, (int)N, (int)K, eng_f32(in[0]), n->a.transpose_a, eng_f32(in[1]),
                    n->a.transpose_b, n->a.has_bias ? eng_f32(in[2]) : NULL, n->a.act, eng_f32(out),
                    c->threads);
    return st ? RT_FAIL(d, st, n, "out of memory") : ENG_OK;
}

static double matmul_flops(const rt_node *n, const eng_tensor *const *in, const eng_tensor *out)
{
    int64_t k = n->a.transpose_a ? in[0]->dim[0] : in[0]->dim[1];
    return 2.0 * (double)rt_numel(out) * (double)k;
}

/* ---- Softmax ---- */

static eng_status softmax_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                eng_diag *d)
{
    if (in[0]->dtype != ENG_F32 || in[0]->ndim < 1)
        return RT_FAIL(d, ENG_EINVAL, n, "input must be float32 with rank >= 1");
    rt_set_shape(out, ENG_F32, in[0]->ndim, in[0]->dim);
    return ENG_OK;
}

static eng_status softmax_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                  const rt_ctx *c, eng_diag *d)
{
    (void)n, (void)d;
    int64_t cols = in[0]->dim[in[0]->ndim - 1];
    int64_t total = rt_numel(in[0]);
    memcpy(out->data, in[0]->data, (size_t)total * 4);
    if (cols > 0)
        eng_softmax_rows(eng_f32(out), total / cols, cols, c->threads);
    return ENG_OK;
}

const rt_op rt_ops_nn[] = {
    {"Conv2D", 2, 2, 1, conv_prepare, conv_infer, conv_compute, conv_flops},
    {"_FusedConv2D", 2, 4, 1, conv_prepare, conv_infer, conv_compute, conv_flops},
    {"DepthwiseConv2dNative", 2, 2, 1, dw_prepare, dw_infer, dw_compute, dw_flops},
    {"FusedDepthwiseConv2dNative", 2, 4, 1, dw_prepare, dw_infer, dw_compute, dw_flops},
    {"MaxPool", 1, 1, 1, NULL, pool_infer, pool_compute, NULL},
    {"ResizeBilinear", 2, 2, 1, NULL, resize_infer, resize_compute, NULL},
    {"Mean", 2, 2, 1, NULL, mean_infer, mean_compute, NULL},
    {"MatMul", 2, 2, 1, matmul_prepare, matmul_infer, matmul_compute, matmul_flops},
    {"_FusedMatMul", 2, 4, 1, matmul_prepare, matmul_infer, matmul_compute, matmul_flops},
    {"Softmax", 1, 1, 1, NULL, softmax_infer, softmax_compute, NULL},
};
const int rt_ops_nn_count = (int)(sizeof rt_ops_nn / sizeof rt_ops_nn[0]);
