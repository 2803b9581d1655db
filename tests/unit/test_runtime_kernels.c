/* test_runtime_kernels.c: the public kernels of kernels.h against naive
 * loops written here, over many geometries (kernel sizes 1-5, strides 1-3,
 * dilations 1-2, SAME/VALID/EXPLICIT padding, channel counts around the
 * vector widths, every activation): dense convolution (packed GEMM, direct
 * 1x1 and im2col paths, both micro-kernels where the CPU has AVX-512),
 * depthwise with multipliers 1 and 2, matrix products with transposes, max
 * pooling. Also: results are bit-identical for 1 and 3 threads; the fused
 * expand 1x1 + depthwise kernel equals the two kernels run apart bit for bit. */
#include "check.h"
#include "engine.h"
#include "runtime_int.h" /* white box: rt_expand_dwconv2d */

#include <stdlib.h>
#include <string.h>

static unsigned rng = 12345;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 9) & 0xffff) / 32768.0f - 1.0f;
}

static double act_ref(double v, eng_act a)
{
    switch (a) {
    case ENG_ACT_RELU: return v > 0 ? v : 0;
    case ENG_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case ENG_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case ENG_ACT_HSWISH:
    case ENG_ACT_HSWISH_F16: {
        double c = a == ENG_ACT_HSWISH ? 1.0 / 6.0 : 0.1666259765625;
        double r = v + 3 < 0 ? 0 : v + 3 > 6 ? 6 : v + 3;
        return v * c * r;
    }
    default: return v;
    }
}

/* naive convolution (depthwise when dw) in double */
static void conv_ref(const eng_conv_geom *g, const float *in, const float *f, const float *b,
                     eng_act act, int dw, double *out)
{
    int mult = dw ? g->cout / g->cin : 1;
    for (int n = 0; n < g->n; n++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int oc = 0; oc < g->cout; oc++) {
                    double s = b ? b[oc] : 0;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->sh - g->pad_top + ky * g->dh;
                            int ix = ox * g->sw - g->pad_left + kx * g->dw;
                            if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw)
                                continue;
                            const float *p = in + (((size_t)n * g->ih + iy) * g->iw + ix) * g->cin;
                            if (dw) {
                                int c = oc / mult, q = oc % mult;
                                s += (double)p[c] *
                                     f[((size_t)(ky * g->kw + kx) * g->cin + c) * mult + q];
                            } else {
                                for (int c = 0; c < g->cin; c++)
                                    s += (double)p[c] *
                                         f[((size_t)(ky * g->kw + kx) * g->cin + c) * g->cout + oc];
                            }
                        }
                    out[(((size_t)n * g->oh + oy) * g->ow + ox) * g->cout + oc] = act_ref(s, act);
                }
}

static int close_all(const float *a, const double *r, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - r[i]) <= tol * (1 + fabs(r[i])))) {
            fprintf(stderr, "%s: [%zu] %g vs %g\n", what, i, a[i], r[i]);
            return 0;
        }
    return 1;
}

/* A convolution (dw: depthwise) of geometry g on random data, with a bias or without, on 1 and
 * 3 threads: both within 1e-5 of the double reference and equal to each other to the bit. */
static void conv_case(const eng_conv_geom *g, int dw, int with_bias, eng_act act, const char *what)
{
    int mult = dw ? g->cout / g->cin : 1;
    size_t nin = (size_t)g->n * g->ih * g->iw * g->cin;
    size_t nout = (size_t)g->n * g->oh * g->ow * g->cout;
    size_t nf = (size_t)g->kh * g->kw * g->cin * (dw ? mult : g->cout);
    float *in = malloc(nin * 4), *f = malloc(nf * 4), *b = malloc((size_t)g->cout * 4);
    float *o1 = malloc(nout * 4), *o3 = malloc(nout * 4);
    double *ref = malloc(nout * sizeof *ref);
    for (size_t i = 0; i < nin; i++)
        in[i] = frand() * 4;
    for (size_t i = 0; i < nf; i++)
        f[i] = frand();
    for (int i = 0; i < g->cout; i++)
        b[i] = frand();
    const float *bias = with_bias ? b : NULL;
    conv_ref(g, in, f, bias, act, dw, ref);
    if (dw) {
        eng_dwconv2d(g, in, f, bias, act, o1, 1);
        eng_dwconv2d(g, in, f, bias, act, o3, 3);
    } else {
        CHECK(eng_conv2d(g, in, f, bias, act, o1, 1) == ENG_OK);
        CHECK(eng_conv2d(g, in, f, bias, act, o3, 3) == ENG_OK);
    }
    CHECK_MSG(close_all(o1, ref, nout, 1e-5, what), "%s", what);
    CHECK_MSG(memcmp(o1, o3, nout * 4) == 0, "%s: 1 and 3 threads differ", what);
    free(in), free(f), free(b), free(o1), free(o3), free(ref);
}

static void test_conv(int dw)
{
    static const eng_act acts[5] = {ENG_ACT_NONE, ENG_ACT_RELU, ENG_ACT_RELU6, ENG_ACT_SIGMOID,
                                    ENG_ACT_HSWISH_F16};
    int cases = 0;
    for (int t = 0; t < 60; t++) {
        int k = 1 + t % 5, s = 1 + (t / 5) % 3, dil = (t % 7 == 3 && k > 1) ? 2 : 1;
        int cin = (int[]){1, 3, 8, 13, 16, 17, 24}[t % 7];
        int mult = dw ? 1 + (t % 4 == 1) : 1;
        int cout = dw ? cin * mult : (int[]){1, 4, 15, 16, 17, 33}[t % 6];
        int n = 1 + t % 2, h = 5 + t % 9, w = 6 + (t * 3) % 11;
        eng_padding pad = (eng_padding)(t % 3);
        int pads[4] = {t % 2, (t / 2) % 3, (t / 3) % 2, t % 3};
        eng_conv_geom g;
        if (eng_conv_geom_init(&g, n, h, w, cin, cout, k, k, s, s, dil, dil, pad, pads, NULL))
            continue; /* window larger than the input for this VALID case */
        char what[96];
        snprintf(what, sizeof what, "%s case %d: k%d s%d d%d pad%d cin%d cout%d",
                 dw ? "depthwise" : "conv", t, k, s, dil, (int)pad, cin, cout);
        conv_case(&g, dw, t % 4 != 0, acts[t % 5], what);
        cases++;
    }
    printf("%s: %d geometries\n", dw ? "depthwise" : "conv", cases);
    CHECK(cases >= 40);
}

/* KxK convolutions whose rows end in a 13-row group (the AVX-512 kernel's last group when one
 * row would be left): 13 pixels of one row with every window inside (patches read in place),
 * and 25 pixels of a 5x5 SAME map (the 13-row group touches the padding: gathered) */
static void test_conv_13_rows(void)
{
    static const struct {
        int h, w, k;
        eng_padding pad;
    } cases[] = {{3, 15, 3, ENG_PAD_VALID}, {5, 5, 3, ENG_PAD_SAME}, {5, 17, 5, ENG_PAD_VALID}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int cin = 16, cout = 40, k = cases[t].k;
        eng_conv_geom g;
        CHECK(eng_conv_geom_init(&g, 1, cases[t].h, cases[t].w, cin, cout, k, k, 1, 1, 1, 1,
                                 cases[t].pad, NULL, NULL) == ENG_OK);
        CHECK((g.oh * g.ow) % 12 == 1);
        char what[32];
        snprintf(what, sizeof what, "13-row case %zu", t);
        conv_case(&g, 0, 1, ENG_ACT_RELU6, what);
    }
}

/* KxK convolutions with output rows of 24 pixels or more, where a block of the AVX-512 path is
 * one output row: a stem (3x3 stride 2 SAME, 3 -> 16, hard-swish, two images, the last group of
 * each row on the right padding) and a 5x5 window with asymmetric explicit padding */
static void test_conv_row_blocks(void)
{
    eng_conv_geom g;
    CHECK(eng_conv_geom_init(&g, 2, 37, 66, 3, 16, 3, 3, 2, 2, 1, 1, ENG_PAD_SAME, NULL, NULL) ==
          ENG_OK);
    CHECK(g.ow >= 24);
    conv_case(&g, 0, 1, ENG_ACT_HSWISH, "stem row blocks");
    const int pads[4] = {2, 1, 0, 2};
    CHECK(eng_conv_geom_init(&g, 1, 9, 40, 4, 33, 5, 5, 1, 1, 1, 1, ENG_PAD_EXPLICIT, pads, NULL) ==
          ENG_OK);
    CHECK(g.ow >= 24);
    conv_case(&g, 0, 0, ENG_ACT_RELU, "5x5 row blocks");
}

/* the convolution kernels' sigmoid (AVX-512 where the CPU has it) against the Sigmoid op's
 * (eng_act_apply, AVX2), equal to the bit: 1 -> 16 channels, all weights 1 and no bias, so each
 * output is sigmoid(x) from the kernels' activation, over [-100, 100] (past both clamps) */
static void test_sigmoid_paths(void)
{
    enum { N = 4000, CO = 16 };
    float *x = malloc(N * 4), *y = malloc((size_t)N * CO * 4), w[CO];
    for (int i = 0; i < N; i++)
        x[i] = -100.0f + 200.0f * (float)i / N;
    for (int c = 0; c < CO; c++)
        w[c] = 1.0f;
    eng_conv_geom g;
    CHECK(eng_conv_geom_init(&g, 1, 1, N, 1, CO, 1, 1, 1, 1, 1, 1, ENG_PAD_VALID, NULL, NULL) ==
          ENG_OK);
    CHECK(eng_conv2d(&g, x, w, NULL, ENG_ACT_SIGMOID, y, 1) == ENG_OK);
    eng_act_apply(x, N, ENG_ACT_SIGMOID, 1);
    int same = 1;
    for (int i = 0; i < N && same; i++)
        for (int c = 0; c < CO; c++)
            if (memcmp(&y[(size_t)i * CO + c], &x[i], 4)) {
                fprintf(stderr, "sigmoid at %d channel %d: %.9g vs %.9g\n", i, c,
                        y[(size_t)i * CO + c], x[i]);
                same = 0;
                break;
            }
    CHECK_MSG(same, "the kernels' sigmoid differs from the Sigmoid op's");
    free(x), free(y);
}

static void test_matmul(void)
{
    for (int t = 0; t < 12; t++) {
        int m = 1 + t * 5 % 23, n = 1 + t * 7 % 37, k = 1 + t * 11 % 29;
        int ta = t & 1, tb = (t >> 1) & 1;
        float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)k * n * 4), *bias = malloc(n * 4);
        float *c = malloc((size_t)m * n * 4);
        for (int i = 0; i < m * k; i++)
            a[i] = frand();
        for (int i = 0; i < k * n; i++)
            b[i] = frand();
        for (int i = 0; i < n; i++)
            bias[i] = frand();
        CHECK(eng_matmul(m, n, k, a, ta, b, tb, bias, ENG_ACT_RELU, c, 2) == ENG_OK);
        int ok = 1;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = bias[j];
                for (int q = 0; q < k; q++)
                    s += (double)(ta ? a[q * m + i] : a[i * k + q]) *
                         (tb ? b[j * k + q] : b[q * n + j]);
                s = s > 0 ? s : 0;
                ok &= fabs(c[i * n + j] - s) <= 1e-5 * (1 + fabs(s));
            }
        CHECK_MSG(ok, "matmul %dx%dx%d ta%d tb%d", m, n, k, ta, tb);
        free(a), free(b), free(bias), free(c);
    }
}

static void test_maxpool(void)
{
    eng_conv_geom g;
    CHECK(eng_conv_geom_init(&g, 2, 7, 6, 5, 5, 3, 2, 2, 2, 1, 1, ENG_PAD_SAME, NULL, NULL) ==
          ENG_OK);
    float in[2 * 7 * 6 * 5], out[2 * 4 * 3 * 5];
    for (int i = 0; i < 2 * 7 * 6 * 5; i++)
        in[i] = frand();
    eng_maxpool2d(&g, in, out, 2);
    int ok = 1;
    for (int n = 0; n < 2; n++)
        for (int oy = 0; oy < g.oh; oy++)
            for (int ox = 0; ox < g.ow; ox++)
                for (int c = 0; c < 5; c++) {
                    float m = -1e30f;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 2; kx++) {
                            int iy = oy * 2 - g.pad_top + ky, ix = ox * 2 - g.pad_left + kx;
                            if (iy >= 0 && iy < 7 && ix >= 0 && ix < 6)
                                m = fmaxf(m, in[((n * 7 + iy) * 6 + ix) * 5 + c]);
                        }
                    ok &= out[((n * g.oh + oy) * g.ow + ox) * 5 + c] == m;
                }
    CHECK(ok);
    CHECK(g.oh == 4 && g.ow == 3 && g.pad_top == 1 && g.pad_bottom == 1 && g.pad_left == 0);
}

/* 1x1 convolutions (the direct GEMM path) on the shapes where the micro-kernels' edges are:
 * rows that are not a multiple of the 12- or 6-row groups (1, 5, 13, 49: the AVX-512 4-row tail
 * groups; 8, 9, 81: the AVX2 groups of 4 and 5 that end a block), output channels that end a
 * 32-channel panel pair part way or leave a last panel of
 * <= 8 (1, 8, 17, 24, 40, 72, 120, 136), large K with many channels (packed weights over 256 KB:
 * the panels-outer order), 1x1 spatial maps (squeeze-excite); against the double loop, and 1
 * and 2 threads bit-identical. ctest runs this file twice, once with VFS_NO_AVX512=1, so both
 * dispatch paths are checked on CPUs with AVX-512. */
static void test_conv1x1_edges(void)
{
    static const int rows[] = {1, 5, 8, 9, 13, 49, 81, 196};
    static const int chans[][2] = {{16, 1},   {3, 8},   {32, 17},   {64, 24},   {24, 40}, {72, 72},
                                   {96, 120}, {8, 136}, {720, 184}, {1152, 96}, {16, 16}, {40, 12}};
    static const eng_act acts[4] = {ENG_ACT_RELU6, ENG_ACT_HSWISH_F16, ENG_ACT_NONE,
                                    ENG_ACT_HSWISH};
    int cases = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (size_t j = 0; j < sizeof chans / sizeof chans[0]; j++) {
            int m = rows[i], cin = chans[j][0], cout = chans[j][1];
            /* m pixels as a 1 x m map, or an m-item batch of 1x1 maps */
            int batch = (i + j) % 2, n = batch ? m : 1, w = batch ? 1 : m;
            eng_conv_geom g;
            CHECK(eng_conv_geom_init(&g, n, 1, w, cin, cout, 1, 1, 1, 1, 1, 1, ENG_PAD_VALID, NULL,
                                     NULL) == ENG_OK);
            size_t nin = (size_t)m * cin, nout = (size_t)m * cout, nf = (size_t)cin * cout;
            float *in = malloc(nin * 4), *f = malloc(nf * 4), *b = malloc((size_t)cout * 4);
            float *o1 = malloc(nout * 4), *o2 = malloc(nout * 4);
            double *ref = malloc(nout * sizeof *ref);
            for (size_t q = 0; q < nin; q++)
                in[q] = frand() * 2;
            for (size_t q = 0; q < nf; q++)
                f[q] = frand() * 0.2f;
            for (int q = 0; q < cout; q++)
                b[q] = frand();
            eng_act act = acts[(i + j) % 4];
            const float *bias = j % 4 == 3 ? NULL : b;
            conv_ref(&g, in, f, bias, act, 0, ref);
            memset(o1, 0xff, nout * 4); /* NaN: an output the kernel skips shows */
            CHECK(eng_conv2d(&g, in, f, bias, act, o1, 1) == ENG_OK);
            CHECK(eng_conv2d(&g, in, f, bias, act, o2, 2) == ENG_OK);
            CHECK_MSG(close_all(o1, ref, nout, 1e-5, "conv1x1"), "conv1x1 %d rows %d->%d act %d", m,
                      cin, cout, (int)act);
            CHECK_MSG(memcmp(o1, o2, nout * 4) == 0, "conv1x1 %d rows %d->%d: 1 and 2 threads", m,
                      cin, cout);
            free(in), free(f), free(b), free(o1), free(o2), free(ref);
            cases++;
        }
    printf("conv1x1: %d shapes\n", cases);
}

/* depthwise (mult 1) on the AVX-512 kernel's edges: channel tails of the 16-lane masks (1, 15,
 * 17, 33, 72, 120), rows long enough for its 8- and 4-pixel blocks next to border pixels, 1x1
 * and 2x3 maps under 3x3 and 5x5 windows (only border pixels), stride 2 with SAME padding on odd
 * and even sizes, asymmetric explicit padding, a map over 1 MB (the prefetching path), rows
 * that the AVX2 path runs in blocks of 4-9 pixels;
 * against the double loop, 1 and 2 threads bit-identical (run again with VFS_NO_AVX512=1) */
static void test_dw_edges(void)
{
    static const int cases[][6] = {
        /* h, w, c, k, stride, padding (0 SAME, 1 VALID, 2 EXPLICIT 1,2,0,2) */
        {1, 1, 17, 3, 1, 0},
        {1, 1, 72, 5, 2, 0},
        {2, 3, 33, 5, 1, 0},
        {9, 27, 15, 3, 1, 0},
        {9, 27, 16, 3, 2, 0},
        {8, 26, 17, 5, 2, 0},
        {7, 7, 120, 5, 1, 0},
        {14, 14, 72, 5, 2, 0},
        {11, 40, 1, 3, 2, 1},
        {6, 19, 33, 3, 1, 2},
        {5, 23, 24, 5, 2, 2},
        {64, 72, 64, 3, 2, 0},
        {40, 45, 160, 3, 1, 0},
        /* rows in even blocks of 4-9 pixels (AVX2, channels a multiple of 8): 14 = 7 + 7, 65 =
         * 9 + 7 x 8, 33 = 9 + 3 x 8 (explicit padding), 9, stride 2 onto 14 and onto 6, 4 wide
         * with both ends on the padding; 15 with a channel tail (the ladder) */
        {6, 14, 24, 3, 1, 0},
        {3, 15, 9, 3, 1, 0},
        {5, 65, 16, 5, 1, 0},
        {9, 28, 40, 5, 2, 0},
        {4, 33, 8, 3, 1, 2},
        {3, 9, 16, 5, 1, 0},
        {5, 12, 8, 3, 2, 0},
        {2, 4, 24, 5, 1, 0},
    };
    static const eng_act acts[3] = {ENG_ACT_RELU6, ENG_ACT_NONE, ENG_ACT_HSWISH_F16};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *q = cases[t];
        int h = q[0], w = q[1], c = q[2], k = q[3], st = q[4];
        int pads[4] = {1, 2, 0, 2};
        eng_conv_geom g;
        CHECK(eng_conv_geom_init(&g, 1 + (int)t % 2, h, w, c, c, k, k, st, st, 1, 1,
                                 (eng_padding)q[5], pads, NULL) == ENG_OK);
        size_t nin = (size_t)g.n * h * w * c, nout = (size_t)g.n * g.oh * g.ow * c;
        size_t nf = (size_t)k * k * c;
        float *in = malloc(nin * 4), *f = malloc(nf * 4), *b = malloc((size_t)c * 4);
        float *o1 = malloc(nout * 4), *o2 = malloc(nout * 4);
        double *ref = malloc(nout * sizeof *ref);
        for (size_t i = 0; i < nin; i++)
            in[i] = frand() * 3;
        for (size_t i = 0; i < nf; i++)
            f[i] = frand();
        for (int i = 0; i < c; i++)
            b[i] = frand();
        const float *bias = t % 3 == 2 ? NULL : b;
        eng_act act = acts[t % 3];
        conv_ref(&g, in, f, bias, act, 1, ref);
        memset(o1, 0xff, nout * 4); /* NaN: an output the kernel skips shows */
        eng_dwconv2d(&g, in, f, bias, act, o1, 1);
        eng_dwconv2d(&g, in, f, bias, act, o2, 2);
        CHECK_MSG(close_all(o1, ref, nout, 1e-5, "dw"), "dw %dx%dx%d k%d s%d pad%d", h, w, c, k, st,
                  q[5]);
        CHECK_MSG(memcmp(o1, o2, nout * 4) == 0, "dw %dx%dx%d: 1 and 2 threads differ", h, w, c);
        free(in), free(f), free(b), free(o1), free(o2), free(ref);
    }
}

/* the fused expand 1x1 + depthwise kernel (rt_expand_dwconv2d) against the two kernels run one
 * after the other: bit-identical, for 1, 2 and 3 threads, batches of 1 and 2, strides 1 and 2,
 * windows 1-5, every padding, channel tails, maps of one band and of many (rows of 80x100
 * channels: a band holds a dozen, so bands keep overlap rows and chunks recompute them), and
 * against the double loops */
static void test_expand_dw(void)
{
    static const int cases[][8] = {
        /* n, h, w, cin, ce, k, stride, padding (0 SAME, 1 VALID, 2 EXPLICIT 1,2,0,2) */
        {1, 1, 1, 3, 8, 3, 1, 0},      {1, 7, 7, 16, 17, 5, 1, 0},   {2, 9, 11, 5, 33, 3, 2, 0},
        {1, 14, 14, 24, 72, 5, 2, 0},  {2, 6, 19, 8, 24, 3, 1, 2},   {1, 12, 23, 4, 40, 5, 2, 2},
        {1, 10, 13, 7, 15, 3, 2, 1},   {1, 8, 8, 16, 64, 1, 1, 0},   {1, 64, 80, 12, 100, 3, 2, 0},
        {2, 61, 80, 12, 100, 5, 1, 0}, {1, 70, 80, 9, 100, 3, 1, 2}, {1, 33, 80, 16, 100, 5, 2, 1},
    };
    static const eng_act acts[4] = {ENG_ACT_RELU6, ENG_ACT_NONE, ENG_ACT_HSWISH_F16, ENG_ACT_RELU};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *q = cases[t];
        int n = q[0], h = q[1], w = q[2], cin = q[3], ce = q[4], k = q[5], st = q[6];
        int pads[4] = {1, 2, 0, 2};
        eng_conv_geom ge, gd;
        CHECK(eng_conv_geom_init(&ge, n, h, w, cin, ce, 1, 1, 1, 1, 1, 1, ENG_PAD_VALID, NULL,
                                 NULL) == ENG_OK);
        CHECK(eng_conv_geom_init(&gd, n, h, w, ce, ce, k, k, st, st, 1, 1, (eng_padding)q[7], pads,
                                 NULL) == ENG_OK);
        size_t nin = (size_t)n * h * w * cin, nmid = (size_t)n * h * w * ce;
        size_t nout = (size_t)n * gd.oh * gd.ow * ce, nfe = (size_t)cin * ce;
        size_t nfd = (size_t)k * k * ce;
        float *in = malloc(nin * 4), *fe = malloc(nfe * 4), *fd = malloc(nfd * 4);
        float *be = malloc((size_t)ce * 4), *bd = malloc((size_t)ce * 4), *mid = malloc(nmid * 4);
        float *o0 = malloc(nout * 4), *o1 = malloc(nout * 4), *o2 = malloc(nout * 4);
        float *o3 = malloc(nout * 4);
        double *rmid = malloc(nmid * sizeof *rmid), *ref = malloc(nout * sizeof *ref);
        for (size_t i = 0; i < nin; i++)
            in[i] = frand() * 2;
        for (size_t i = 0; i < nfe; i++)
            fe[i] = frand() * 0.5f;
        for (size_t i = 0; i < nfd; i++)
            fd[i] = frand();
        for (int i = 0; i < ce; i++)
            be[i] = frand(), bd[i] = frand();
        eng_act ea = acts[t % 4], da = acts[(t + 1) % 4];
        const float *bias = t % 3 == 2 ? NULL : bd;
        eng_conv_packed *p = eng_conv_pack(fe, be, 1, 1, cin, ce);
        CHECK(p != NULL);
        CHECK(eng_conv2d_packed(&ge, in, p, ea, mid, 1) == ENG_OK);
        eng_dwconv2d(&gd, mid, fd, bias, da, o0, 1);
        memset(o1, 0xff, nout * 4); /* NaN: an output the kernel skips shows */
        CHECK(rt_expand_dwconv2d(&gd, in, p, ea, fd, bias, da, o1, 1) == ENG_OK);
        CHECK(rt_expand_dwconv2d(&gd, in, p, ea, fd, bias, da, o2, 2) == ENG_OK);
        CHECK(rt_expand_dwconv2d(&gd, in, p, ea, fd, bias, da, o3, 3) == ENG_OK);
        CHECK_MSG(memcmp(o0, o1, nout * 4) == 0, "expand+dw case %zu: fused != two kernels", t);
        CHECK_MSG(memcmp(o1, o2, nout * 4) == 0 && memcmp(o1, o3, nout * 4) == 0,
                  "expand+dw case %zu: thread counts differ", t);
        /* and the double loops: 1x1 then depthwise on the rounded 1x1 outputs */
        conv_ref(&ge, in, fe, be, ea, 0, rmid);
        CHECK_MSG(close_all(mid, rmid, nmid, 1e-5, "expand"), "expand case %zu", t);
        conv_ref(&gd, mid, fd, bias, da, 1, ref);
        CHECK_MSG(close_all(o1, ref, nout, 1e-5, "expand+dw"), "expand+dw case %zu", t);
        eng_conv_packed_free(p);
        free(in), free(fe), free(fd), free(be), free(bd), free(mid);
        free(o0), free(o1), free(o2), free(o3), free(rmid), free(ref);
    }
    printf("expand+dw: %zu geometries\n", sizeof cases / sizeof cases[0]);
}

/* the fused depthwise + 1x1 kernel (rt_dw_conv1x1) against the two kernels run one after the
 * other: bit-identical, with and without an added tensor, for 1, 2 and 3 threads, batches of 1
 * and 2, strides 1 and 2, windows 3 and 5 (and 1), every padding, channel tails, maps of one
 * band and of many (rows of 80x100 channels: a band holds a dozen) */
static void test_dw_conv1x1(void)
{
    static const int cases[][8] = {
        /* n, h, w, c, cout, k, stride, padding (0 SAME, 1 VALID, 2 EXPLICIT 1,2,0,2) */
        {1, 1, 1, 3, 8, 3, 1, 0},     {1, 7, 7, 16, 4, 5, 1, 0},     {2, 9, 11, 33, 5, 3, 2, 0},
        {1, 14, 14, 72, 24, 5, 2, 0}, {2, 6, 19, 24, 17, 3, 1, 2},   {1, 8, 8, 64, 16, 1, 1, 0},
        {1, 64, 80, 100, 4, 3, 1, 0}, {2, 61, 80, 100, 80, 5, 1, 1}, {1, 70, 80, 100, 12, 3, 2, 2},
    };
    static const eng_act acts[3] = {ENG_ACT_NONE, ENG_ACT_RELU6, ENG_ACT_SIGMOID};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *q = cases[t];
        int n = q[0], h = q[1], w = q[2], c = q[3], co = q[4], k = q[5], st = q[6];
        int pads[4] = {1, 2, 0, 2};
        eng_conv_geom gd, gp;
        CHECK(eng_conv_geom_init(&gd, n, h, w, c, c, k, k, st, st, 1, 1, (eng_padding)q[7], pads,
                                 NULL) == ENG_OK);
        CHECK(eng_conv_geom_init(&gp, n, gd.oh, gd.ow, c, co, 1, 1, 1, 1, 1, 1, ENG_PAD_VALID, NULL,
                                 NULL) == ENG_OK);
        size_t nin = (size_t)n * h * w * c, nmid = (size_t)n * gd.oh * gd.ow * c;
        size_t nout = (size_t)n * gd.oh * gd.ow * co;
        float *in = malloc(nin * 4), *fd = malloc((size_t)k * k * c * 4),
              *bd = malloc((size_t)c * 4);
        float *fp = malloc((size_t)c * co * 4), *bp = malloc((size_t)co * 4),
              *mid = malloc(nmid * 4);
        float *res = malloc(nout * 4), *o0 = malloc(nout * 4), *o1 = malloc(nout * 4);
        float *o2 = malloc(nout * 4), *o3 = malloc(nout * 4);
        for (size_t i = 0; i < nin; i++)
            in[i] = frand() * 2;
        for (int i = 0; i < k * k * c; i++)
            fd[i] = frand();
        for (int i = 0; i < c * co; i++)
            fp[i] = frand() * 0.3f;
        for (int i = 0; i < c; i++)
            bd[i] = frand();
        for (int i = 0; i < co; i++)
            bp[i] = frand();
        for (size_t i = 0; i < nout; i++)
            res[i] = frand();
        eng_act da = acts[t % 3], pa = acts[(t + 1) % 3];
        const float *bias = t % 2 ? NULL : bd, *r = t % 3 == 1 ? NULL : res;
        eng_conv_packed *p = eng_conv_pack(fp, bp, 1, 1, c, co);
        CHECK(p != NULL);
        eng_dwconv2d(&gd, in, fd, bias, da, mid, 1);
        CHECK(rt_conv2d_packed_res(&gp, mid, p, pa, r, o0, 1) == ENG_OK);
        memset(o1, 0xff, nout * 4); /* NaN: an output the kernel skips shows */
        CHECK(rt_dw_conv1x1(&gd, in, fd, bias, da, p, pa, r, o1, 1) == ENG_OK);
        CHECK(rt_dw_conv1x1(&gd, in, fd, bias, da, p, pa, r, o2, 2) == ENG_OK);
        CHECK(rt_dw_conv1x1(&gd, in, fd, bias, da, p, pa, r, o3, 3) == ENG_OK);
        CHECK_MSG(memcmp(o0, o1, nout * 4) == 0, "dw+1x1 case %zu: fused != two kernels", t);
        CHECK_MSG(memcmp(o1, o2, nout * 4) == 0 && memcmp(o1, o3, nout * 4) == 0,
                  "dw+1x1 case %zu: thread counts differ", t);
        eng_conv_packed_free(p);
        free(in), free(fd), free(bd), free(fp), free(bp), free(mid), free(res);
        free(o0), free(o1), free(o2), free(o3);
    }
    printf("dw+1x1: %zu geometries\n", sizeof cases / sizeof cases[0]);
}

int main(void)
{
    test_conv(0);
    test_conv_13_rows();
    test_conv_row_blocks();
    test_conv(1);
    test_conv1x1_edges();
    test_dw_edges();
    test_expand_dw();
    test_dw_conv1x1();
    test_sigmoid_paths();
    test_matmul();
    test_maxpool();
    return check_report("test_runtime_kernels");
}
