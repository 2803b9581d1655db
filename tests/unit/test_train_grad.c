/* test_train_grad.c: engine/train ops and losses. For every op: the forward
 * value against a direct reference written here (naive loops, TensorFlow's
 * SAME padding and ResizeBilinear rules, a few values worked by hand), and
 * the backward pass against central finite differences of
 * J = sum(out * R) for a random R, in double. Inputs are kept away from
 * kinks (ReLU at 0, ReLU6 at 6, hard-swish at +-3, max-pool ties, |.| at 0)
 * by more than the step. Shapes are small, odd and even, seeds fixed. */
#include "check.h"
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXIN 4

typedef eng_var *(*build_fn)(eng_tape *t, eng_var **in, const void *ctx);

static eng_tape *tape;
static double worst_rel; /* worst relative error over all checks, reported */

static eng_param *mkparam(const char *name, int ndim, const int64_t *dim, eng_rng *r, float lo,
                          float hi)
{
    eng_param *p = NULL;
    eng_diag d;
    CHECK(eng_param_new(name, ndim, dim, &p, &d) == ENG_OK);
    float *w = eng_f32(p->value);
    for (int64_t i = 0; i < eng_tensor_numel(p->value); i++)
        w[i] = lo + (hi - lo) * eng_rng_uniform(r);
    return p;
}

/* Pushes values away from kink points by at least margin. */
static void avoid(eng_param *p, const float *kinks, int nk, float margin)
{
    float *w = eng_f32(p->value);
    for (int64_t i = 0; i < eng_tensor_numel(p->value); i++)
        for (int k = 0; k < nk; k++)
            if (fabsf(w[i] - kinks[k]) < margin)
                w[i] = kinks[k] + (w[i] >= kinks[k] ? margin : -margin);
}

static eng_var *forward(eng_param **ps, int n, build_fn f, const void *ctx)
{
    eng_tape_reset(tape);
    eng_var *in[MAXIN];
    for (int i = 0; i < n; i++)
        in[i] = eng_tape_param(tape, ps[i]);
    return f(tape, in, ctx);
}

static double objective(const eng_var *out, const double *r)
{
    const eng_tensor *y = eng_var_value(out);
    const float *v = eng_f32(y);
    double j = 0;
    for (int64_t i = 0; i < eng_tensor_numel(y); i++)
        j += v[i] * r[i];
    return j;
}

/* Checks the gradients of every input of f. */
static void gradcheck(const char *name, eng_param **ps, int n, build_fn f, const void *ctx,
                      double eps, double atol, double rtol)
{
    eng_diag d = {{0}};
    eng_var *out = forward(ps, n, f, ctx);
    CHECK_MSG(eng_tape_status(tape, &d) == ENG_OK, "%s: %s", name, d.msg);
    if (!out)
        return;
    int64_t m = eng_tensor_numel(eng_var_value(out));
    double *r = malloc(sizeof *r * (size_t)m);
    float *rf = malloc(sizeof *rf * (size_t)m);
    eng_rng rng;
    eng_rng_seed(&rng, 99);
    for (int64_t i = 0; i < m; i++)
        rf[i] = (float)(r[i] = 2.0 * eng_rng_uniform(&rng) - 1.0);
    for (int i = 0; i < n; i++)
        eng_param_zero_grad(ps[i]);
    CHECK_MSG(eng_tape_backward(tape, out, rf, &d) == ENG_OK, "%s: %s", name, d.msg);
    int nbad = 0, probes = 0;
    double max_abs = 0, max_rel = 0;
    for (int i = 0; i < n; i++) {
        int64_t cnt = eng_tensor_numel(ps[i]->value);
        float *ana = malloc(sizeof *ana * (size_t)cnt);
        memcpy(ana, ps[i]->grad->data, sizeof *ana * (size_t)cnt);
        float *w = eng_f32(ps[i]->value);
        int64_t step = cnt > 60 ? cnt / 50 : 1; /* at most ~60 probes */
        for (int64_t k = (cnt > 60 ? (int64_t)(eng_rng_u64(&rng) % (uint64_t)step) : 0); k < cnt;
             k += step) {
            float keep = w[k];
            w[k] = keep + (float)eps;
            double jp = objective(forward(ps, n, f, ctx), r);
            w[k] = keep - (float)eps;
            double jm = objective(forward(ps, n, f, ctx), r);
            w[k] = keep;
            double h = (double)(keep + (float)eps) - (double)(keep - (float)eps);
            double num = (jp - jm) / h, a = ana[k];
            double err = fabs(num - a), scale = fmax(fabs(num), fabs(a));
            double rel = err / fmax(scale, 1e-2);
            max_abs = fmax(max_abs, err);
            max_rel = fmax(max_rel, rel);
            probes++;
            if (err > atol + rtol * scale && nbad++ < 3)
                fprintf(stderr, "%s: input %d element %lld: analytic %.6g numeric %.6g\n", name, i,
                        (long long)k, a, num);
        }
        free(ana);
    }
    CHECK_MSG(nbad == 0, "%s: %d gradient mismatches", name, nbad);
    if (max_rel > worst_rel)
        worst_rel = max_rel;
    printf("gradcheck %-36s %3d probes  max abs err %.2e  max rel err %.2e\n", name, probes,
           max_abs, max_rel);
    free(r);
    free(rf);
}

static void free_params(eng_param **ps, int n)
{
    for (int i = 0; i < n; i++)
        eng_param_free(ps[i]);
}

/* ---- direct references ---- */

static void ref_same(int in, int k, int s, int *out, int *pad)
{
    *out = (in + s - 1) / s;
    int total = (*out - 1) * s + k - in;
    *pad = total > 0 ? total / 2 : 0;
}

static void ref_conv(const float *x, int n, int h, int w, int ci, const float *f, int kh, int kw,
                     int co, int s, int depthwise, float *y, int *oh, int *ow)
{
    int pt, pl;
    ref_same(h, kh, s, oh, &pt);
    ref_same(w, kw, s, ow, &pl);
    int oc = depthwise ? ci : co;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < *oh; oy++)
            for (int ox = 0; ox < *ow; ox++)
                for (int o = 0; o < oc; o++) {
                    double acc = 0;
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            const float *xp = x + ((i * h + iy) * w + ix) * ci;
                            if (depthwise)
                                acc += xp[o] * f[(ky * kw + kx) * ci + o];
                            else
                                for (int c = 0; c < ci; c++)
                                    acc += xp[c] * f[((ky * kw + kx) * ci + c) * co + o];
                        }
                    y[((i * *oh + oy) * *ow + ox) * oc + o] = (float)acc;
                }
}

static int close_all(const float *a, const float *b, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > tol * (1.0 + fabs(b[i])))
            return 0;
    return 1;
}

/* ---- convolutions ---- */

typedef struct conv_ctx {
    int stride, depthwise;
} conv_ctx;

static eng_var *build_conv(eng_tape *t, eng_var **in, const void *ctx)
{
    const conv_ctx *c = ctx;
    return c->depthwise ? eng_op_depthwise(t, in[0], in[1], c->stride)
                        : eng_op_conv2d(t, in[0], in[1], c->stride);
}

static void test_conv(int n, int h, int w, int ci, int k, int co, int stride, int depthwise)
{
    eng_rng r;
    eng_rng_seed(&r, (uint64_t)(h * 131 + w * 17 + k * 7 + stride + depthwise * 1000));
    int64_t xd[4] = {n, h, w, ci}, wd[4] = {k, k, ci, depthwise ? 1 : co};
    eng_param *ps[2] = {mkparam("x", 4, xd, &r, -1, 1), mkparam("w", 4, wd, &r, -1, 1)};
    conv_ctx c = {stride, depthwise};
    char name[96];
    snprintf(name, sizeof name, "%s %dx%d s%d in %dx%dx%dx%d", depthwise ? "depthwise" : "conv2d",
             k, k, stride, n, h, w, ci);
    /* forward against the direct loops */
    eng_var *out = forward(ps, 2, build_conv, &c);
    CHECK_MSG(out != NULL, "%s: no output", name);
    if (out) {
        int oh, ow, oc = depthwise ? ci : co;
        float *ref = malloc(sizeof(float) * (size_t)(n * h * w * (oc + 1)));
        ref_conv(eng_f32(ps[0]->value), n, h, w, ci, eng_f32(ps[1]->value), k, k, co, stride,
                 depthwise, ref, &oh, &ow);
        const eng_tensor *y = eng_var_value(out);
        CHECK_MSG(y->dim[1] == oh && y->dim[2] == ow && y->dim[3] == oc, "%s: shape", name);
        CHECK_MSG(close_all(eng_f32(y), ref, (int64_t)n * oh * ow * oc, 1e-5), "%s: forward", name);
        free(ref);
    }
    gradcheck(name, ps, 2, build_conv, &c, 1e-2, 2e-3, 5e-3);
    free_params(ps, 2);
}

/* ---- dense ---- */

static eng_var *build_dense(eng_tape *t, eng_var **in, const void *ctx)
{
    (void)ctx;
    return eng_op_dense(t, in[0], in[1]);
}

static void test_dense(void)
{
    eng_rng r;
    eng_rng_seed(&r, 5);
    int64_t xd[4] = {3, 1, 1, 70}, wd[2] = {70, 5}; /* K > CI_BLOCK: several blocks */
    eng_param *ps[2] = {mkparam("x", 4, xd, &r, -1, 1), mkparam("w", 2, wd, &r, -1, 1)};
    eng_var *out = forward(ps, 2, build_dense, NULL);
    const eng_tensor *y = eng_var_value(out);
    CHECK(y && y->ndim == 4 && y->dim[0] == 3 && y->dim[3] == 5);
    double acc = 0;
    for (int k = 0; k < 70; k++)
        acc += eng_f32(ps[0]->value)[70 + k] * eng_f32(ps[1]->value)[k * 5 + 2];
    CHECK_NEAR(eng_f32(y)[5 + 2], acc, 1e-4);
    gradcheck("dense", ps, 2, build_dense, NULL, 1e-2, 2e-3, 5e-3);
    free_params(ps, 2);
}

/* ---- elementwise and the rest ---- */

typedef struct un_ctx {
    int which;
    float s;
} un_ctx;

static eng_var *build_unary(eng_tape *t, eng_var **in, const void *ctx)
{
    const un_ctx *u = ctx;
    switch (u->which) {
    case 0: return eng_op_relu(t, in[0]);
    case 1: return eng_op_relu6(t, in[0]);
    case 2: return eng_op_hard_swish(t, in[0]);
    case 3: return eng_op_sigmoid(t, in[0]);
    case 4: return eng_op_mean_hw(t, in[0]);
    case 5: return eng_op_scale(t, in[0], u->s);
    case 6: return eng_op_upsample2x(t, in[0]);
    case 7: return eng_op_resize_bilinear(t, in[0], 5, 7);
    case 8: return eng_op_maxpool(t, in[0], 3, 1);
    case 9: return eng_op_maxpool(t, in[0], 3, 2);
    case 10: return eng_op_sum(t, in[0]);
    case 12: return eng_op_hard_swish_k(t, in[0], 0.1666259765625f);
    default: {
        int64_t dim[2] = {6, 8};
        return eng_op_reshape(t, in[0], 2, dim);
    }
    }
}

static double ref_act(int which, double x)
{
    switch (which) {
    case 0: return x > 0 ? x : 0;
    case 1: return fmin(fmax(x, 0), 6);
    case 2: return x * fmin(fmax(x + 3, 0), 6) / 6;
    default: return 1 / (1 + exp(-x));
    }
}

static void test_activations(void)
{
    static const char *names[4] = {"relu", "relu6", "hard_swish", "sigmoid"};
    static const float kinks[4] = {0, 6, -3, 3};
    for (int a = 0; a < 4; a++) {
        eng_rng r;
        eng_rng_seed(&r, 10 + (uint64_t)a);
        int64_t xd[4] = {2, 3, 3, 5};
        eng_param *ps[1] = {mkparam("x", 4, xd, &r, -5, 8)};
        avoid(ps[0], kinks, 4, 0.05f);
        un_ctx u = {a, 0};
        eng_var *out = forward(ps, 1, build_unary, &u);
        int ok = 1;
        for (int i = 0; i < 90; i++)
            ok &=
                fabs(eng_f32(eng_var_value(out))[i] - ref_act(a, eng_f32(ps[0]->value)[i])) < 1e-5;
        CHECK_MSG(ok, "%s: forward", names[a]);
        gradcheck(names[a], ps, 1, build_unary, &u, 1e-3, 1e-3, 5e-3);
        free_params(ps, 1);
    }
    /* worked by hand: hard-swish(1) = 1 * 4 / 6, (-1) = -1 * 2 / 6 */
    int64_t one[1] = {2};
    eng_param *p = NULL;
    eng_diag d;
    eng_param_new("x", 1, one, &p, &d);
    eng_f32(p->value)[0] = 1;
    eng_f32(p->value)[1] = -1;
    eng_param *ps[1] = {p};
    un_ctx u = {2, 0};
    eng_var *out = forward(ps, 1, build_unary, &u);
    CHECK_NEAR(eng_f32(eng_var_value(out))[0], 4.0 / 6.0, 1e-7);
    CHECK_NEAR(eng_f32(eng_var_value(out))[1], -2.0 / 6.0, 1e-7);
    /* the tfjs graph's constant */
    u.which = 12;
    out = forward(ps, 1, build_unary, &u);
    CHECK(eng_f32(eng_var_value(out))[0] == 1.0f * 0.1666259765625f * 4.0f);
    eng_param_free(p);
    eng_rng r;
    eng_rng_seed(&r, 15);
    int64_t xd[4] = {2, 3, 3, 5};
    eng_param *q[1] = {mkparam("x", 4, xd, &r, -5, 8)};
    avoid(q[0], kinks, 4, 0.05f);
    gradcheck("hard_swish_k tfjs constant", q, 1, build_unary, &u, 1e-3, 1e-3, 5e-3);
    eng_param_free(q[0]);
}

static void test_shape_ops(void)
{
    eng_rng r;
    eng_rng_seed(&r, 21);
    int64_t xd[4] = {2, 3, 4, 4};
    eng_param *ps[1] = {mkparam("x", 4, xd, &r, -1, 1)};
    un_ctx u = {4, 0};
    eng_var *out = forward(ps, 1, build_unary, &u);
    double m = 0;
    for (int p = 0; p < 12; p++)
        m += eng_f32(ps[0]->value)[48 + p * 4 + 1]; /* image 1, channel 1 */
    CHECK_NEAR(eng_f32(eng_var_value(out))[4 + 1], m / 12, 1e-6);
    gradcheck("mean_hw", ps, 1, build_unary, &u, 1e-2, 1e-3, 5e-3);
    u = (un_ctx){5, -1.5f};
    gradcheck("scale", ps, 1, build_unary, &u, 1e-2, 1e-3, 5e-3);
    u = (un_ctx){10, 0};
    gradcheck("sum", ps, 1, build_unary, &u, 1e-2, 1e-3, 5e-3);
    free_params(ps, 1);
    int64_t rd[4] = {1, 3, 4, 4};
    eng_param *q[1] = {mkparam("x", 4, rd, &r, -1, 1)};
    u = (un_ctx){11, 0};
    gradcheck("reshape", q, 1, build_unary, &u, 1e-2, 1e-3, 5e-3);
    free_params(q, 1);
}

static void test_resize(void)
{
    /* worked by hand: [[0,1],[2,3]] to 4x4 with TF's legacy rule src = dst/2,
     * the upper neighbour clamped at the edge */
    int64_t xd[4] = {1, 2, 2, 1};
    eng_param *p = NULL;
    eng_diag d;
    eng_param_new("x", 4, xd, &p, &d);
    for (int i = 0; i < 4; i++)
        eng_f32(p->value)[i] = (float)i;
    eng_param *ps[1] = {p};
    un_ctx u = {6, 0};
    eng_var *out = forward(ps, 1, build_unary, &u);
    static const float want[16] = {0, 0.5f, 1, 1, 1, 1.5f, 2, 2, 2, 2.5f, 3, 3, 2, 2.5f, 3, 3};
    CHECK(close_all(eng_f32(eng_var_value(out)), want, 16, 1e-7));
    eng_param_free(p);

    eng_rng r;
    eng_rng_seed(&r, 31);
    int64_t yd[4] = {2, 3, 4, 3};
    eng_param *q[1] = {mkparam("x", 4, yd, &r, -1, 1)};
    u = (un_ctx){6, 0};
    gradcheck("upsample2x", q, 1, build_unary, &u, 1e-2, 1e-3, 5e-3);
    u = (un_ctx){7, 0};
    out = forward(q, 1, build_unary, &u);
    /* 3x4 -> 5x7: output (3, 5) reads src y = 3*0.6 = 1.8, x = 5*4/7 */
    {
        const float *x = eng_f32(q[0]->value);
        float sy = 3 * (3.0f / 5.0f), sx = 5 * (4.0f / 7.0f);
        int y0 = (int)sy, x0 = (int)sx, y1 = y0 + 1 < 3 ? y0 + 1 : 2, x1 = x0 + 1 < 4 ? x0 + 1 : 3;
        float fy = sy - y0, fx = sx - x0;
        int c = 2;
        double top =
            x[(y0 * 4 + x0) * 3 + c] + (x[(y0 * 4 + x1) * 3 + c] - x[(y0 * 4 + x0) * 3 + c]) * fx;
        double bot =
            x[(y1 * 4 + x0) * 3 + c] + (x[(y1 * 4 + x1) * 3 + c] - x[(y1 * 4 + x0) * 3 + c]) * fx;
        CHECK_NEAR(eng_f32(eng_var_value(out))[(3 * 7 + 5) * 3 + c], top + (bot - top) * fy, 1e-6);
    }
    gradcheck("resize_bilinear 3x4->5x7", q, 1, build_unary, &u, 1e-2, 1e-3, 5e-3);
    free_params(q, 1);
}

static void test_maxpool(void)
{
    /* distinct values 0.05 apart, shuffled: no ties within 2 * eps */
    int64_t xd[4] = {2, 5, 6, 3};
    eng_param *p = NULL;
    eng_diag d;
    eng_param_new("x", 4, xd, &p, &d);
    int n = 180;
    float *w = eng_f32(p->value);
    for (int i = 0; i < n; i++)
        w[i] = 0.05f * (float)i - 4.0f;
    eng_rng r;
    eng_rng_seed(&r, 41);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(eng_rng_u64(&r) % (uint64_t)(i + 1));
        float tmp = w[i];
        w[i] = w[j];
        w[j] = tmp;
    }
    eng_param *ps[1] = {p};
    for (int s = 1; s <= 2; s++) {
        un_ctx u = {7 + s, 0};
        eng_var *out = forward(ps, 1, build_unary, &u);
        const eng_tensor *y = eng_var_value(out);
        /* reference: SAME 3x3, padded cells never win */
        int oh, ow, pt, pl, ok = 1;
        ref_same(5, 3, s, &oh, &pt);
        ref_same(6, 3, s, &ow, &pl);
        CHECK(y->dim[1] == oh && y->dim[2] == ow);
        for (int i = 0; i < 2; i++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    for (int c = 0; c < 3; c++) {
                        float m = -INFINITY;
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                                if (iy >= 0 && iy < 5 && ix >= 0 && ix < 6)
                                    m = fmaxf(m, w[((i * 5 + iy) * 6 + ix) * 3 + c]);
                            }
                        ok &= eng_f32(y)[((i * oh + oy) * ow + ox) * 3 + c] == m;
                    }
        CHECK_MSG(ok, "maxpool s%d forward", s);
        gradcheck(s == 1 ? "maxpool 3x3 s1" : "maxpool 3x3 s2", ps, 1, build_unary, &u, 1e-3, 1e-3,
                  5e-3);
    }
    eng_param_free(p);
}

typedef struct bin_ctx {
    int mul;
} bin_ctx;

static eng_var *build_binary(eng_tape *t, eng_var **in, const void *ctx)
{
    return ((const bin_ctx *)ctx)->mul ? eng_op_mul(t, in[0], in[1]) : eng_op_add(t, in[0], in[1]);
}

static eng_var *build_bias(eng_tape *t, eng_var **in, const void *ctx)
{
    (void)ctx;
    return eng_op_bias(t, in[0], in[1]);
}

static eng_var *build_concat(eng_tape *t, eng_var **in, const void *ctx)
{
    (void)ctx;
    return eng_op_concat(t, in, 3);
}

static void test_binary(void)
{
    eng_rng r;
    eng_rng_seed(&r, 51);
    int64_t a[4] = {2, 3, 4, 5};
    int64_t shapes[4][4] = {{2, 3, 4, 5}, {2, 1, 1, 5}, {1, 1, 1, 5}, {1, 3, 1, 1}};
    for (int mul = 0; mul < 2; mul++)
        for (int s = 0; s < 4; s++) {
            eng_param *ps[2] = {mkparam("a", 4, a, &r, -1, 1),
                                mkparam("b", 4, shapes[s], &r, -1, 1)};
            bin_ctx c = {mul};
            eng_var *out = forward(ps, 2, build_binary, &c);
            /* element (1, 2, 3, 4) */
            int64_t ia = ((1 * 3 + 2) * 4 + 3) * 5 + 4;
            int64_t *bd = shapes[s];
            int64_t ib =
                (((bd[0] > 1) * 1 * bd[1] + (bd[1] > 1) * 2) * bd[2] + (bd[2] > 1) * 3) * bd[3] +
                (bd[3] > 1) * 4;
            float av = eng_f32(ps[0]->value)[ia], bv = eng_f32(ps[1]->value)[ib];
            CHECK_NEAR(eng_f32(eng_var_value(out))[ia], mul ? av * bv : av + bv, 1e-6);
            char name[64];
            snprintf(name, sizeof name, "%s broadcast %d", mul ? "mul" : "add", s);
            gradcheck(name, ps, 2, build_binary, &c, 1e-2, 1e-3, 5e-3);
            free_params(ps, 2);
        }
    /* a large operand broadcast over the batch only (the serial path) */
    int64_t big[4] = {2, 96, 96, 2}, big1[4] = {1, 96, 96, 2};
    for (int mul = 0; mul < 2; mul++) {
        eng_param *ps[2] = {mkparam("a", 4, big, &r, -1, 1), mkparam("b", 4, big1, &r, -1, 1)};
        bin_ctx c = {mul};
        gradcheck(mul ? "mul broadcast batch (large)" : "add broadcast batch (large)", ps, 2,
                  build_binary, &c, 1e-2, 1e-3, 5e-3);
        free_params(ps, 2);
    }
    int64_t bd[1] = {5};
    eng_param *pb[2] = {mkparam("x", 4, a, &r, -1, 1), mkparam("b", 1, bd, &r, -1, 1)};
    eng_var *out = forward(pb, 2, build_bias, NULL);
    CHECK_NEAR(eng_f32(eng_var_value(out))[7], eng_f32(pb[0]->value)[7] + eng_f32(pb[1]->value)[2],
               1e-6);
    gradcheck("bias", pb, 2, build_bias, NULL, 1e-2, 1e-3, 5e-3);
    free_params(pb, 2);

    int64_t c1[4] = {2, 3, 2, 1}, c2[4] = {2, 3, 2, 4}, c3[4] = {2, 3, 2, 2};
    eng_param *pc[3] = {mkparam("a", 4, c1, &r, -1, 1), mkparam("b", 4, c2, &r, -1, 1),
                        mkparam("c", 4, c3, &r, -1, 1)};
    out = forward(pc, 3, build_concat, NULL);
    const eng_tensor *y = eng_var_value(out);
    CHECK(y->dim[3] == 7);
    CHECK(eng_f32(y)[7 * 5 + 0] == eng_f32(pc[0]->value)[5]);
    CHECK(eng_f32(y)[7 * 5 + 3] == eng_f32(pc[1]->value)[4 * 5 + 2]);
    CHECK(eng_f32(y)[7 * 5 + 6] == eng_f32(pc[2]->value)[2 * 5 + 1]);
    gradcheck("concat", pc, 3, build_concat, NULL, 1e-2, 1e-3, 5e-3);
    free_params(pc, 3);
}

/* Squeeze-excite block as in MobileNetV3: a composite of several ops. */
static eng_var *build_se(eng_tape *t, eng_var **in, const void *ctx)
{
    (void)ctx;
    eng_var *x = in[0];
    eng_var *s = eng_op_mean_hw(t, x);
    s = eng_op_relu(t, eng_op_bias(t, eng_op_dense(t, s, in[1]), in[2]));
    s = eng_op_hard_swish(t, eng_op_dense(t, s, in[3]));
    return eng_op_mul(t, x, eng_op_sigmoid(t, s));
}

static void test_composite(void)
{
    eng_rng r;
    eng_rng_seed(&r, 61);
    int64_t xd[4] = {2, 4, 3, 6}, w1[2] = {6, 3}, b1[1] = {3}, w2[2] = {3, 6};
    eng_param *ps[4] = {mkparam("x", 4, xd, &r, -1, 1), mkparam("w1", 2, w1, &r, -1, 1),
                        mkparam("b1", 1, b1, &r, 0.2f, 0.5f), mkparam("w2", 2, w2, &r, -1, 1)};
    gradcheck("squeeze-excite composite", ps, 4, build_se, NULL, 1e-3, 1e-3, 1e-2);
    free_params(ps, 4);
}

/* ---- losses ---- */

typedef struct loss_ctx {
    int which;
    const void *target;
    const float *weight;
    float a, b;
} loss_ctx;

static eng_var *build_loss(eng_tape *t, eng_var **in, const void *ctx)
{
    const loss_ctx *c = ctx;
    switch (c->which) {
    case 0: return eng_loss_softmax_xent(t, in[0], c->target, c->a);
    case 1: return eng_loss_focal(t, in[0], c->target, c->a, c->b);
    case 2: return eng_loss_l1(t, in[0], c->target, c->weight, c->a);
    case 3: return eng_loss_giou(t, in[0], c->target, c->weight, ENG_BOX_XYXY, c->a);
    default: return eng_loss_giou(t, in[0], c->target, c->weight, ENG_BOX_LTRB, c->a);
    }
}

static void test_losses(void)
{
    eng_rng r;
    eng_rng_seed(&r, 71);
    /* softmax cross-entropy: value by hand for one row */
    int64_t ld[2] = {4, 5};
    eng_param *pl[1] = {mkparam("logits", 2, ld, &r, -2, 2)};
    int labels[4] = {0, 3, 4, 1};
    for (int sm = 0; sm < 2; sm++) {
        loss_ctx c = {0, labels, NULL, sm ? 0.1f : 0.0f, 0};
        eng_var *out = forward(pl, 1, build_loss, &c);
        double want = 0;
        for (int row = 0; row < 4; row++) {
            const float *z = eng_f32(pl[0]->value) + row * 5;
            double se = 0;
            for (int j = 0; j < 5; j++)
                se += exp(z[j]);
            for (int j = 0; j < 5; j++) {
                double q = (j == labels[row] ? 1 - c.a : 0) + c.a / 5;
                want -= q * (z[j] - log(se));
            }
        }
        CHECK_NEAR(eng_var_scalar(out), want / 4, 1e-6);
        gradcheck(sm ? "softmax_xent smoothing 0.1" : "softmax_xent", pl, 1, build_loss, &c, 1e-2,
                  1e-4, 5e-3);
    }
    free_params(pl, 1);

    /* focal: a heatmap with two peaks (target 1) and Gaussian shoulders */
    int64_t hd[4] = {1, 5, 6, 2};
    eng_param *ph[1] = {mkparam("heat", 4, hd, &r, -4, 2)};
    float tgt[60];
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 6; x++)
            for (int k = 0; k < 2; k++) {
                float cx = k ? 4 : 1, cy = k ? 3 : 1;
                tgt[(y * 6 + x) * 2 + k] = expf(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 2);
            }
    loss_ctx cf = {1, tgt, NULL, 2, 4};
    eng_var *out = forward(ph, 1, build_loss, &cf);
    double want = 0;
    for (int i = 0; i < 60; i++) {
        double p = 1 / (1 + exp(-eng_f32(ph[0]->value)[i]));
        want += tgt[i] == 1.0f ? -pow(1 - p, 2) * log(p) : -pow(1 - tgt[i], 4) * p * p * log(1 - p);
    }
    CHECK_NEAR(eng_var_scalar(out), want / 2, 1e-5);
    gradcheck("focal alpha 2 beta 4", ph, 1, build_loss, &cf, 1e-2, 1e-4, 5e-3);
    free_params(ph, 1);

    /* L1 with row weights, values away from the target by > eps */
    int64_t bd[2] = {6, 4};
    eng_param *pb[1] = {mkparam("pred", 2, bd, &r, 0, 10)};
    float l1t[24], wts[6] = {1, 0, 2, 0.5f, 1, 0};
    for (int i = 0; i < 24; i++) {
        l1t[i] = eng_f32(pb[0]->value)[i] + (i % 2 ? 0.3f : -0.4f);
    }
    loss_ctx cl = {2, l1t, wts, 3.0f, 0};
    out = forward(pb, 1, build_loss, &cl);
    /* each row is 0.4 + 0.3 + 0.4 + 0.3 away; weights sum to 4.5 */
    CHECK_NEAR(eng_var_scalar(out), 1.4 * 4.5 / 3.0, 1e-5);
    gradcheck("l1", pb, 1, build_loss, &cl, 1e-2, 1e-4, 5e-3);
    free_params(pb, 1);

    /* GIoU, xyxy: overlapping, disjoint and nested pairs, no coordinate
     * of one box within 0.05 of the other's */
    float boxes[5][8] = {
        {0, 0, 4, 4, 1, 1.5f, 5, 6}, /* partial overlap */
        {0, 0, 2, 2, 3, 4, 6, 7},    /* disjoint */
        {0, 0, 10, 10, 2, 3, 6, 7},  /* target inside */
        {2, 3, 6, 7, 0, 0, 10, 10},  /* pred inside */
        {1, 1, 3, 9, 0.5f, 2, 7, 4}, /* crossing */
    };
    int64_t gd[2] = {5, 4};
    eng_param *pg[1] = {NULL};
    eng_diag d;
    eng_param_new("boxes", 2, gd, &pg[0], &d);
    float gt[20];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) {
            eng_f32(pg[0]->value)[i * 4 + j] = boxes[i][j];
            gt[i * 4 + j] = boxes[i][4 + j];
        }
    float gw[5] = {1, 1, 1, 1, 2};
    loss_ctx cg = {3, gt, gw, 2.0f, 0};
    out = forward(pg, 1, build_loss, &cg);
    /* box 0 by hand: I = 3 * 2.5 = 7.5, U = 16 + 18 - 7.5 = 26.5, C = 5 * 6 */
    double g0 = 7.5 / 26.5 - (30 - 26.5) / 30;
    /* box 1: I = 0, U = 4 + 9 = 13, C = 6 * 7 = 42 */
    double g1 = 0 - (42 - 13) / 42.0;
    double g2 = 16.0 / 100.0; /* nested: C = U = 100 */
    double g4 = (2 * 2) / (16.0 + 13 - 4) - (6.5 * 8 - 25) / (6.5 * 8);
    float xyxy_loss = eng_var_scalar(out); /* read before gradcheck resets the tape */
    CHECK_NEAR(xyxy_loss, ((1 - g0) + (1 - g1) + (1 - g2) + (1 - g2) + 2 * (1 - g4)) / 2.0, 1e-5);
    gradcheck("giou xyxy", pg, 1, build_loss, &cg, 1e-2, 1e-4, 5e-3);
    /* LTRB distances from one point: the same boxes shifted to the origin */
    float lt[20];
    for (int i = 0; i < 5; i++) {
        float px = 2.2f, py = 2.6f; /* any point: GIoU ignores translation */
        float *pv = eng_f32(pg[0]->value) + i * 4;
        pv[0] = px - boxes[i][0];
        pv[1] = py - boxes[i][1];
        pv[2] = boxes[i][2] - px;
        pv[3] = boxes[i][3] - py;
        lt[i * 4 + 0] = px - boxes[i][4];
        lt[i * 4 + 1] = py - boxes[i][5];
        lt[i * 4 + 2] = boxes[i][6] - px;
        lt[i * 4 + 3] = boxes[i][7] - py;
    }
    loss_ctx ct = {4, lt, gw, 2.0f, 0};
    out = forward(pg, 1, build_loss, &ct);
    CHECK_NEAR(eng_var_scalar(out), xyxy_loss, 1e-5);
    gradcheck("giou ltrb", pg, 1, build_loss, &ct, 1e-2, 1e-4, 5e-3);
    free_params(pg, 1);
}

static void test_errors(void)
{
    eng_rng r;
    eng_rng_seed(&r, 81);
    int64_t xd[4] = {1, 4, 4, 3}, wd[4] = {3, 3, 2, 4};
    eng_param *x = mkparam("x", 4, xd, &r, -1, 1), *w = mkparam("w", 4, wd, &r, -1, 1);
    eng_diag d = {{0}};
    eng_tape_reset(tape);
    eng_var *vx = eng_tape_param(tape, x), *vw = eng_tape_param(tape, w);
    eng_var *y = eng_op_conv2d(tape, vx, vw, 1);
    CHECK(y == NULL);
    /* later ops on NULL stay quiet; the first error is kept */
    CHECK(eng_op_relu(tape, y) == NULL);
    CHECK(eng_tape_status(tape, &d) == ENG_EINVAL);
    CHECK_MSG(strcmp(d.msg, "conv2d: filter expects 2 channels, input has 3") == 0, "%s", d.msg);
    CHECK(eng_tape_backward(tape, y, NULL, &d) == ENG_EINVAL);
    eng_tape_reset(tape);
    CHECK(eng_tape_status(tape, &d) == ENG_OK);
    vx = eng_tape_param(tape, x);
    CHECK(eng_tape_backward(tape, vx, NULL, &d) == ENG_EINVAL); /* 48 elements, no seed */
    int bad_labels[16] = {0};
    bad_labels[3] = 7;
    int64_t rd[2] = {16, 3};
    CHECK(eng_loss_softmax_xent(tape, eng_op_reshape(tape, vx, 2, rd), bad_labels, 0) == NULL);
    CHECK(eng_tape_status(tape, &d) == ENG_EINVAL);
    CHECK_MSG(strcmp(d.msg, "softmax_xent: label[3] = 7 outside 0..2") == 0, "%s", d.msg);
    eng_tape_reset(tape);
    vx = eng_tape_param(tape, x);
    int64_t b5[4] = {1, 4, 1, 5};
    eng_param *b = mkparam("b", 4, b5, &r, 0, 1);
    CHECK(eng_op_add(tape, vx, eng_tape_param(tape, b)) == NULL);
    eng_tape_status(tape, &d);
    CHECK_MSG(strcmp(d.msg, "add: axis 3 sizes 3 and 5 do not broadcast") == 0, "%s", d.msg);
    eng_param *p = NULL;
    int64_t zero[1] = {0};
    CHECK(eng_param_new("z", 1, zero, &p, &d) == ENG_EINVAL && p == NULL);
    CHECK(eng_param_set(x, eng_f32(w->value), 5, &d) == ENG_EINVAL);
    eng_param_free(x);
    eng_param_free(w);
    eng_param_free(b);
    eng_param_free(NULL);
}

/* Ops that the runtime also implements for inference must agree with it:
 * bilinear resize, max pooling, mean over H and W. */
static void test_vs_runtime(void)
{
    eng_rng r;
    eng_rng_seed(&r, 95);
    int64_t xd[4] = {2, 5, 7, 6};
    eng_param *ps[1] = {mkparam("x", 4, xd, &r, -2, 2)};
    const float *x = eng_f32(ps[0]->value);
    float *ref = malloc(sizeof(float) * 2 * 10 * 14 * 6);
    un_ctx u = {6, 0};
    eng_var *out = forward(ps, 1, build_unary, &u);
    eng_resize_bilinear(x, 2, 5, 7, 6, ref, 10, 14, 0, 0, 1);
    CHECK(close_all(eng_f32(eng_var_value(out)), ref, 2 * 10 * 14 * 6, 1e-6));
    u.which = 7; /* to 5x7 from 5x7: identity */
    out = forward(ps, 1, build_unary, &u);
    CHECK(close_all(eng_f32(eng_var_value(out)), x, 2 * 5 * 7 * 6, 0));
    for (int s = 1; s <= 2; s++) {
        eng_conv_geom g;
        eng_diag d;
        CHECK(eng_conv_geom_init(&g, 2, 5, 7, 6, 6, 3, 3, s, s, 1, 1, ENG_PAD_SAME, NULL, &d) ==
              ENG_OK);
        eng_maxpool2d(&g, x, ref, 1);
        u.which = 7 + s;
        out = forward(ps, 1, build_unary, &u);
        CHECK_MSG(close_all(eng_f32(eng_var_value(out)), ref, 2 * g.oh * g.ow * 6, 0),
                  "maxpool s%d differs from the runtime's", s);
    }
    eng_mean_hw(x, 2, 5, 7, 6, ref, 1);
    u.which = 4;
    out = forward(ps, 1, build_unary, &u);
    CHECK(close_all(eng_f32(eng_var_value(out)), ref, 12, 1e-6));
    free(ref);
    free_params(ps, 1);
}

/* Extreme logits give finite losses and gradients. */
static void test_loss_extremes(void)
{
    int64_t ld[2] = {2, 3};
    eng_param *p = NULL;
    eng_diag d;
    eng_param_new("z", 2, ld, &p, &d);
    static const float z[6] = {1000, -1000, 0, -80, 80, 0};
    eng_param_set(p, z, 6, &d);
    eng_param *ps[1] = {p};
    int labels[2] = {1, 0};
    loss_ctx c = {0, labels, NULL, 0.1f, 0};
    eng_var *out = forward(ps, 1, build_loss, &c);
    CHECK(isfinite(eng_var_scalar(out)) && eng_var_scalar(out) > 100);
    float target[6] = {1, 0, 0.5f, 1, 0, 0.9f};
    loss_ctx f = {1, target, NULL, 2, 4};
    eng_param_zero_grad(p);
    out = forward(ps, 1, build_loss, &f);
    CHECK(isfinite(eng_var_scalar(out)));
    CHECK(eng_tape_backward(tape, out, NULL, &d) == ENG_OK);
    for (int i = 0; i < 6; i++)
        CHECK(isfinite(eng_f32(p->grad)[i]));
    /* confident and right: near zero; confident and wrong: large */
    CHECK(eng_f32(p->grad)[0] > -1e-6f);
    CHECK(eng_f32(p->grad)[3] < -0.4f); /* a centre scored -80 is pushed up */
    eng_param_free(p);
}

/* Every op at sizes large enough to run on several threads: values and
 * gradients must be bitwise the same with 1 and 2 threads. */
static eng_var *build_big(eng_tape *t, eng_var **in, const void *ctx)
{
    (void)ctx;
    eng_var *x = eng_op_conv2d(t, in[0], in[1], 1);
    x = eng_op_relu6(t, eng_op_bias(t, x, in[3]));
    eng_var *y = eng_op_hard_swish(t, eng_op_depthwise(t, x, in[2], 2));
    eng_var *se = eng_op_sigmoid(t, eng_op_mean_hw(t, y));
    y = eng_op_mul(t, y, se);
    y = eng_op_upsample2x(t, y);
    eng_var *cat[2] = {y, x};
    y = eng_op_concat(t, cat, 2);
    y = eng_op_maxpool(t, y, 3, 1);
    return eng_op_add(t, y, eng_op_relu(t, y));
}

static void test_thread_independence(void)
{
    eng_rng r;
    eng_rng_seed(&r, 91);
    int64_t xd[4] = {4, 48, 48, 16}, wd[4] = {3, 3, 16, 16}, dd[4] = {5, 5, 16, 1}, bd[1] = {16};
    eng_param *ps[4] = {mkparam("x", 4, xd, &r, -1, 1), mkparam("w", 4, wd, &r, -0.3f, 0.3f),
                        mkparam("dw", 4, dd, &r, -0.3f, 0.3f), mkparam("b", 1, bd, &r, 0, 1)};
    float *val[2] = {NULL, NULL}, *grad[2][4];
    int64_t nout = 0;
    for (int k = 0; k < 2; k++) {
        eng_tape *keep = tape;
        eng_diag d;
        CHECK(eng_tape_new(k + 1, &tape, &d) == ENG_OK);
        for (int i = 0; i < 4; i++)
            eng_param_zero_grad(ps[i]);
        eng_var *out = forward(ps, 4, build_big, NULL);
        nout = eng_tensor_numel(eng_var_value(out));
        float *seed = malloc(sizeof *seed * (size_t)nout);
        for (int64_t i = 0; i < nout; i++)
            seed[i] = (float)((i * 7919) % 13) - 6.0f;
        CHECK(eng_tape_backward(tape, out, seed, &d) == ENG_OK);
        val[k] = malloc(sizeof(float) * (size_t)nout);
        memcpy(val[k], eng_f32(eng_var_value(out)), sizeof(float) * (size_t)nout);
        for (int i = 0; i < 4; i++) {
            size_t cnt = (size_t)eng_tensor_numel(ps[i]->grad);
            grad[k][i] = malloc(sizeof(float) * cnt);
            memcpy(grad[k][i], ps[i]->grad->data, sizeof(float) * cnt);
        }
        free(seed);
        eng_tape_free(tape);
        tape = keep;
    }
    CHECK(memcmp(val[0], val[1], sizeof(float) * (size_t)nout) == 0);
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(memcmp(grad[0][i], grad[1][i],
                         sizeof(float) * (size_t)eng_tensor_numel(ps[i]->grad)) == 0,
                  "gradient of %s differs between 1 and 2 threads", ps[i]->name);
        free(grad[0][i]);
        free(grad[1][i]);
    }
    free(val[0]);
    free(val[1]);
    free_params(ps, 4);
}

int main(void)
{
    eng_diag d;
    CHECK(eng_tape_new(2, &tape, &d) == ENG_OK);
    /* convolutions: 1x1, 3x3, 5x5; stride 1 and 2; odd and even sizes */
    test_conv(2, 5, 4, 3, 1, 4, 1, 0);
    test_conv(1, 5, 4, 3, 1, 4, 2, 0);
    test_conv(2, 5, 6, 3, 3, 4, 1, 0);
    test_conv(1, 7, 6, 3, 3, 4, 2, 0);
    test_conv(1, 6, 7, 2, 5, 3, 1, 0);
    test_conv(1, 7, 8, 2, 5, 3, 2, 0);
    test_conv(1, 9, 9, 40, 3, 5, 1, 0); /* more than one 32-channel block */
    test_conv(2, 6, 7, 4, 3, 0, 1, 1);
    test_conv(1, 7, 6, 4, 3, 0, 2, 1);
    test_conv(1, 6, 7, 3, 5, 0, 1, 1);
    test_conv(2, 8, 7, 3, 5, 0, 2, 1);
    test_dense();
    test_activations();
    test_shape_ops();
    test_resize();
    test_maxpool();
    test_binary();
    test_composite();
    test_losses();
    test_errors();
    test_thread_independence();
    test_vs_runtime();
    test_loss_extremes();
    printf("worst relative gradient error %.3g\n", worst_rel);
    eng_tape_free(tape);
    return check_report("test_train_grad");
}
