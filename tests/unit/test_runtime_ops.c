/* test_runtime_ops.c: forward tests of every op on tiny graphs built in
 * memory, checked against values worked out by hand (padding asymmetry,
 * resize coordinate rules, top-k ties, floor division of negatives, strided
 * slice masks), plus the executor's taps, multi-output ports, constants as
 * outputs and the abort callback. */
#include "test_runtime_util.h"
#include "runtime_int.h" /* white box: fused forms */

static eng_tensor *input4(int64_t n, int64_t h, int64_t w, int64_t c, const float *v)
{
    eng_tensor *t = tr_tensor(4, n, h, w, c);
    memcpy(t->data, v, (size_t)(n * h * w * c) * sizeof(float));
    return t;
}

/* loads g, runs it on x, returns output `name` (NULL on failure, message printed) */
static eng_tensor *run(tr_graph *g, const eng_tensor *x, const char *name)
{
    eng_model *m = NULL;
    eng_diag d = {{0}};
    eng_status st = tr_load(g, &m, &d);
    CHECK_MSG(st == ENG_OK, "load: %s", d.msg);
    if (st)
        return NULL;
    eng_tensor *o = NULL;
    eng_run_opts opts = {.threads = 2};
    st = eng_model_run(m, x, &name, 1, &o, &opts, &d);
    CHECK_MSG(st == ENG_OK, "run %s: %s", name, d.msg);
    eng_model_free(m);
    return o;
}

static void expect(const char *what, const eng_tensor *t, const float *want, int64_t n, double tol)
{
    CHECK_MSG(t != NULL, "%s: no output", what);
    if (!t)
        return;
    CHECK_MSG(eng_tensor_numel(t) == n, "%s: %lld elements, want %lld", what,
              (long long)eng_tensor_numel(t), (long long)n);
    if (eng_tensor_numel(t) != n)
        return;
    for (int64_t i = 0; i < n; i++) {
        double v = t->dtype == ENG_F32 ? eng_f32(t)[i] : ((int32_t *)t->data)[i];
        CHECK_MSG(fabs(v - want[i]) <= tol, "%s[%lld] = %g, want %g", what, (long long)i, v,
                  (double)want[i]);
    }
}

static void expect_dims(const eng_tensor *t, int ndim, const int64_t *dim)
{
    if (!t)
        return;
    CHECK(t->ndim == ndim);
    for (int i = 0; i < ndim && i < t->ndim; i++)
        CHECK_MSG(t->dim[i] == dim[i], "dim %d is %lld, want %lld", i, (long long)t->dim[i],
                  (long long)dim[i]);
}

static const int64_t D1x4x4x1[4] = {1, 4, 4, 1};

static void test_conv_same_stride2(void)
{
    /* 4x4 input 1..16, 3x3 ones, stride 2 SAME: pad 0 top/left, 1 bottom/right */
    float x[16], w[9];
    for (int i = 0; i < 16; i++)
        x[i] = (float)(i + 1);
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, D1x4x4x1);
    int64_t wd[4] = {3, 3, 1, 1};
    tr_const_f(&g, "w", 4, wd, w);
    tr_node(&g, "conv", "Conv2D", "x,w", tr_attr_conv(a, sizeof a, 2, "SAME", NULL));
    eng_tensor *in = input4(1, 4, 4, 1, x);
    eng_tensor *o = run(&g, in, "conv");
    const float want[4] = {54, 45, 72, 54};
    expect("conv SAME s2", o, want, 4, 1e-5);
    int64_t od[4] = {1, 2, 2, 1};
    expect_dims(o, 4, od);
    eng_tensor_free(o);

    /* VALID: (4 - 3) / 2 + 1 = 1 output: the top-left window only */
    tr_graph_free(&g);
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, D1x4x4x1);
    tr_const_f(&g, "w", 4, wd, w);
    tr_node(&g, "conv", "Conv2D", "x,w", tr_attr_conv(a, sizeof a, 2, "VALID", NULL));
    o = run(&g, in, "conv");
    const float want_v[1] = {54};
    expect("conv VALID s2", o, want_v, 1, 1e-5);
    eng_tensor_free(o);
    tr_graph_free(&g);

    /* EXPLICIT 1,1,1,1 at stride 2: windows centred on (0,0),(0,2),(2,0),(2,2) */
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, D1x4x4x1);
    tr_const_f(&g, "w", 4, wd, w);
    snprintf(a, sizeof a,
             "\"strides\":{\"list\":{\"i\":[\"1\",\"2\",\"2\",\"1\"]}},"
             "\"padding\":{\"s\":\"RVhQTElDSVQ=\"},"
             "\"explicit_paddings\":{\"list\":{\"i\":[\"0\",\"0\",\"1\",\"1\",\"1\",\"1\",\"0\","
             "\"0\"]}}");
    tr_node(&g, "conv", "Conv2D", "x,w", a);
    o = run(&g, in, "conv");
    /* (0,0): rows 0-1, cols 0-1 = 1+2+5+6 = 14; (0,2): rows 0-1 cols 1-3 = 2+3+4+6+7+8 = 30;
     * (2,0): rows 1-3 cols 0-1 = 5+6+9+10+13+14 = 57; (2,2): rows 1-3 cols 1-3 = 99 */
    const float want_e[4] = {14, 30, 57, 99};
    expect("conv EXPLICIT s2", o, want_e, 4, 1e-5);
    eng_tensor_free(o);
    tr_graph_free(&g);
    eng_tensor_free(in);
}

static void test_fused_conv(void)
{
    /* 1x1 conv 2 -> 3 channels, bias, Relu6 and Relu */
    const int64_t xd[4] = {1, 1, 2, 2};
    float x[4] = {1, 2, -3, 4};
    float w[6] = {1, 0, 2, /* cin 0 -> cout 0..2 */ 1, -1, 3};
    float b[3] = {0.5f, 0, -1};
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, xd);
    int64_t wd[4] = {1, 1, 2, 3}, bd[1] = {3};
    tr_const_f(&g, "w", 4, wd, w);
    tr_const_f(&g, "b", 1, bd, b);
    tr_node(&g, "c6", "_FusedConv2D", "x,w,b",
            tr_attr_conv(a, sizeof a, 1, "SAME", "BiasAdd,Relu6"));
    tr_node(&g, "c0", "_FusedConv2D", "x,w,b",
            tr_attr_conv(a, sizeof a, 1, "VALID", "BiasAdd,Relu"));
    tr_node(&g, "cb", "_FusedConv2D", "x,w,b", tr_attr_conv(a, sizeof a, 1, "VALID", "BiasAdd"));
    eng_tensor *in = input4(1, 1, 2, 2, x);
    /* pixel0 (1,2): [1+2+.5, -2, 2+6-1] = [3.5,-2,7]; pixel1 (-3,4): [-3+4+.5, -4, -6+12-1] */
    eng_tensor *o = run(&g, in, "c6");
    const float w6[6] = {3.5f, 0, 6, 1.5f, 0, 5};
    expect("fused relu6", o, w6, 6, 1e-6);
    eng_tensor_free(o);
    o = run(&g, in, "c0");
    const float w0[6] = {3.5f, 0, 7, 1.5f, 0, 5};
    expect("fused relu", o, w0, 6, 1e-6);
    eng_tensor_free(o);
    o = run(&g, in, "cb");
    const float wb[6] = {3.5f, -2, 7, 1.5f, -4, 5};
    expect("fused bias", o, wb, 6, 1e-6);
    eng_tensor_free(o);
    eng_tensor_free(in);
    tr_graph_free(&g);
}

static void test_depthwise(void)
{
    /* 3x3 input, 2 channels, 3x3 depthwise SAME stride 1, channel 1 filter = 2 * channel 0 */
    const int64_t xd[4] = {1, 3, 3, 2};
    float x[18];
    for (int i = 0; i < 9; i++)
        x[2 * i] = (float)(i + 1), x[2 * i + 1] = 1;
    float w[18];
    for (int i = 0; i < 9; i++)
        w[2 * i] = 1, w[2 * i + 1] = 2;
    float b[2] = {0, -1};
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, xd);
    int64_t wd[4] = {3, 3, 2, 1}, bd[1] = {2};
    tr_const_f(&g, "w", 4, wd, w);
    tr_const_f(&g, "b", 1, bd, b);
    tr_node(&g, "dw", "DepthwiseConv2dNative", "x,w", tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "fdw", "FusedDepthwiseConv2dNative", "x,w,b",
            tr_attr_conv(a, sizeof a, 2, "SAME", "BiasAdd,Relu"));
    eng_tensor *in = input4(1, 3, 3, 2, x);
    eng_tensor *o = run(&g, in, "dw");
    /* channel 0: neighbourhood sums of 1..9; channel 1: 2 * neighbour count */
    const float want[18] = {12, 8, 21, 12, 16, 8, 27, 12, 45, 18, 33, 12, 24, 8, 39, 12, 28, 8};
    expect("depthwise", o, want, 18, 1e-5);
    eng_tensor_free(o);
    /* stride 2 SAME on 3x3: out 2x2, pad 1 total -> 0 top/left... (3-1)/2: pad_total =
     * (2-1)*2+3-3 = 2 -> 1 and 1: centres at 0 and 2 */
    o = run(&g, in, "fdw");
    const float want2[8] = {12, 7, 16, 7, 24, 7, 28, 7};
    expect("fused depthwise s2", o, want2, 8, 1e-5);
    eng_tensor_free(o);
    eng_tensor_free(in);
    tr_graph_free(&g);
}

static void test_maxpool_resize(void)
{
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)((i * 7) % 16);
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, D1x4x4x1);
    tr_node(&g, "mp", "MaxPool", "x",
            "\"ksize\":{\"list\":{\"i\":[\"1\",\"3\",\"3\",\"1\"]}},"
            "\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}},\"padding\":{\"s\":\"U0FNRQ=="
            "\"}");
    eng_tensor *in = input4(1, 4, 4, 1, x);
    eng_tensor *o = run(&g, in, "mp");
    /* x = 0 7 14 5 / 12 3 10 1 / 8 15 6 13 / 4 11 2 9 */
    const float want[16] = {12, 14, 14, 14, 15, 15, 15, 14, 15, 15, 15, 13, 15, 15, 15, 13};
    expect("maxpool 3x3 s1 SAME", o, want, 16, 0);
    eng_tensor_free(o);
    eng_tensor_free(in);
    tr_graph_free(&g);

    /* resize 2x2 -> 4x4 under the three coordinate rules */
    const int64_t xd[4] = {1, 2, 2, 1};
    const float xv[4] = {1, 2, 3, 4};
    const int32_t size[2] = {4, 4};
    const int64_t sd[1] = {2};
    static const char *const attrs[3] = {
        "\"align_corners\":{\"b\":false},\"half_pixel_centers\":{\"b\":false}",
        "\"align_corners\":{\"b\":true},\"half_pixel_centers\":{\"b\":false}",
        "\"align_corners\":{\"b\":false},\"half_pixel_centers\":{\"b\":true}"};
    static const float rows[3][4] = {
        {1, 1.5f, 2, 2}, {1, 4 / 3.0f, 5 / 3.0f, 2}, {1, 1.25f, 1.75f, 2}};
    static const float cols[3][4] = {{0, 1, 2, 2}, {0, 2 / 3.0f, 4 / 3.0f, 2}, {0, 0.5f, 1.5f, 2}};
    in = input4(1, 2, 2, 1, xv);
    for (int k = 0; k < 3; k++) {
        tr_graph_init(&g);
        tr_placeholder(&g, "x", 4, xd);
        tr_const_i(&g, "size", 1, sd, size);
        tr_node(&g, "rs", "ResizeBilinear", "x,size", attrs[k]);
        o = run(&g, in, "rs");
        /* value = row profile (over x) + column offset (over y: rows differ by 2) */
        float want4[16];
        for (int y = 0; y < 4; y++)
            for (int xx = 0; xx < 4; xx++)
                want4[y * 4 + xx] = rows[k][xx] + cols[k][y];
        expect(k == 0   ? "resize legacy"
               : k == 1 ? "resize align_corners"
                        : "resize half_pixel",
               o, want4, 16, 1e-6);
        eng_tensor_free(o);
        tr_graph_free(&g);
    }
    eng_tensor_free(in);
}

static void test_mean_concat(void)
{
    const int64_t xd[4] = {1, 2, 2, 2};
    const float x[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    const int32_t axes[2] = {1, 2};
    const int64_t ad[1] = {2}, sc[1] = {1};
    const int32_t ax_last[1] = {-1}, ax1[1] = {1};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_i(&g, "axes", 1, ad, axes);
    tr_const_i(&g, "last", 0, sc, ax_last);
    tr_const_i(&g, "one", 0, sc, ax1);
    tr_node(&g, "mean", "Mean", "x,axes", "\"keep_dims\":{\"b\":true}");
    tr_node(&g, "mean_c", "Mean", "x,last", "\"keep_dims\":{\"b\":false}");
    eng_tensor *in = input4(1, 2, 2, 2, x);
    eng_tensor *o = run(&g, in, "mean");
    const float wm[2] = {2.5f, 25};
    expect("mean keep_dims", o, wm, 2, 1e-6);
    int64_t md[4] = {1, 1, 1, 2};
    expect_dims(o, 4, md);
    eng_tensor_free(o);
    o = run(&g, in, "mean_c");
    const float wc[4] = {5.5f, 11, 16.5f, 22};
    expect("mean over channels", o, wc, 4, 1e-6);
    int64_t mcd[3] = {1, 2, 2};
    expect_dims(o, 3, mcd);
    eng_tensor_free(o);
    /* concat on the last axis needs equal spatial dims: expect a clear error */
    tr_node(&g, "cat", "ConcatV2", "x,mean,mean,last", "");
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK(tr_load(&g, &m, &d) == ENG_EINVAL);
    CHECK_MSG(strstr(d.msg, "'cat'") && strstr(d.msg, "does not fit"), "%s", d.msg);
    tr_graph_free(&g);

    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_i(&g, "one", 0, sc, ax1);
    tr_node(&g, "cat1", "ConcatV2", "x,x,one", "");
    o = run(&g, in, "cat1");
    const float w1[16] = {1, 10, 2, 20, 3, 30, 4, 40, 1, 10, 2, 20, 3, 30, 4, 40};
    expect("concat axis 1", o, w1, 16, 0);
    int64_t cd[4] = {1, 4, 2, 2};
    expect_dims(o, 4, cd);
    eng_tensor_free(o);
    eng_tensor_free(in);
    tr_graph_free(&g);
}

/* Mean over H and W of 70 channels (two blocks of 32 summed in registers,
 * and 6 more): each channel's pixels added in order in double, as a plain
 * loop does, to the last bit */
static void test_mean_blocks(void)
{
    enum { H = 3, W = 5, C = 70 };
    const int64_t xd[4] = {1, H, W, C};
    static float x[H * W * C];
    for (int i = 0; i < H * W * C; i++)
        x[i] = (float)((i * 7919) % 1000) / 7.0f - 60.0f;
    float want[C];
    for (int k = 0; k < C; k++) {
        double s = 0;
        for (int p = 0; p < H * W; p++)
            s += x[p * C + k];
        want[k] = (float)(s / (H * W));
    }
    const int32_t axes[2] = {1, 2};
    const int64_t ad[1] = {2};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_i(&g, "axes", 1, ad, axes);
    tr_node(&g, "mean", "Mean", "x,axes", "\"keep_dims\":{\"b\":true}");
    eng_tensor *in = input4(1, H, W, C, x);
    eng_tensor *o = run(&g, in, "mean");
    expect("mean of 70 channels", o, want, C, 0);
    eng_tensor_free(o);
    eng_tensor_free(in);
    tr_graph_free(&g);
}

/* A full map op a short vector over its last axis (an input normalisation): 37x41 pixels of
 * 3 channels make two blocks of 1024 rows and a last partial period; every op, the vector on
 * either side, exactly as the scalar expression (the period-wise loop must not reorder) */
static void test_vector_wrap(void)
{
    enum { H = 37, W = 41, C = 3, N = H * W * C };
    const int64_t xd[4] = {1, H, W, C}, d3[1] = {C};
    const float v[C] = {0.485f, 0.456f, 0.406f};
    static float x[N], want[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)((i * 7919) % 256) - 0.5f;
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "v", 1, d3, v);
    const char *ops[4] = {"Add", "Sub", "Mul", "RealDiv"};
    char name[16], args[8];
    for (int k = 0; k < 8; k++) {
        snprintf(name, sizeof name, "o%d", k);
        snprintf(args, sizeof args, "%s", k % 2 ? "v,x" : "x,v");
        tr_node(&g, name, ops[k / 2], args, "");
    }
    eng_tensor *in = input4(1, H, W, C, x);
    for (int k = 0; k < 8; k++) {
        for (int i = 0; i < N; i++) {
            float a = k % 2 ? v[i % C] : x[i], b = k % 2 ? x[i] : v[i % C];
            want[i] = k / 2 == 0 ? a + b : k / 2 == 1 ? a - b : k / 2 == 2 ? a * b : a / b;
        }
        snprintf(name, sizeof name, "o%d", k);
        eng_tensor *o = run(&g, in, name);
        expect(name, o, want, N, 0);
        eng_tensor_free(o);
    }
    eng_tensor_free(in);
    tr_graph_free(&g);
}

/* The executor gives a node an input's tensor when nothing else needs it:
 * Reshape takes it as it is, element-wise ops compute in place (either
 * operand of a binary op, never the one that broadcasts). Values that are
 * still needed, the input and constants keep their own. */
static void test_reuse(void)
{
    const int64_t xd[4] = {1, 2, 2, 3}, cd[1] = {3}, sd[1] = {2};
    const float x[12] = {-1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11, 12};
    const float c[3] = {0.5f, -2, 3};
    const int32_t shape[2] = {1, 12};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "c", 1, cd, c);
    tr_const_i(&g, "shape", 1, sd, shape);
    tr_node(&g, "s", "Sigmoid", "x", "");        /* x is the run's input: not in place */
    tr_node(&g, "a", "Add", "x,c", "");          /* a fresh tensor */
    tr_node(&g, "m", "Mul", "c,a", "");          /* in place in a, the second operand */
    tr_node(&g, "r", "Relu", "m", "");           /* in place */
    tr_node(&g, "rs", "Reshape", "r,shape", ""); /* moved */
    tr_node(&g, "b", "Sub", "x,c", "");
    tr_node(&g, "u", "Mul", "b,b", ""); /* b has two uses: a new tensor */
    tr_node(&g, "t", "Tanh", "s", "");  /* s is also asked for: a new tensor */
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    eng_tensor *in = input4(1, 2, 2, 3, x);
    const char *names[] = {"rs", "u", "s", "t"};
    eng_tensor *o[4] = {0};
    CHECK_MSG(eng_model_run(m, in, names, 4, o, NULL, &d) == ENG_OK, "%s", d.msg);
    float wrs[12], wu[12], ws[12], wt[12];
    for (int i = 0; i < 12; i++) {
        float a = x[i] + c[i % 3], mm = c[i % 3] * a, b = x[i] - c[i % 3];
        wrs[i] = mm > 0 ? mm : 0;
        wu[i] = b * b;
        ws[i] = 1.0f / (1.0f + expf(-x[i]));
        wt[i] = tanhf(ws[i]);
    }
    expect("in place Mul, Relu, moved by Reshape", o[0], wrs, 12, 0);
    const int64_t rd[2] = {1, 12};
    expect_dims(o[0], 2, rd);
    expect("Mul of one tensor by itself", o[1], wu, 12, 0);
    expect("Sigmoid of the input", o[2], ws, 12, 1e-6);
    expect("Tanh of a value also asked for", o[3], wt, 12, 1e-6);
    expect("the input unchanged", in, x, 12, 0);
    const eng_tensor *ct = NULL;
    CHECK(eng_model_const(m, "c", &ct, &d) == ENG_OK && ct && eng_f32(ct)[1] == -2);
    for (int i = 0; i < 4; i++)
        eng_tensor_free(o[i]);
    eng_tensor_free(in);
    eng_model_free(m);
    tr_graph_free(&g);
}

static void test_elementwise(void)
{
    const int64_t xd[4] = {1, 1, 2, 3};
    const float x[6] = {-4, -0.5f, 0, 2, 6.5f, 9};
    const float c3[3] = {1, 2, 3};
    const float c1[1] = {3};
    const int64_t d3[1] = {3}, d0[1] = {1};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "c3", 1, d3, c3);
    tr_const_f(&g, "three", 0, d0, c1);
    tr_node(&g, "relu", "Relu", "x", "");
    tr_node(&g, "relu6", "Relu6", "x", "");
    tr_node(&g, "sig", "Sigmoid", "x", "");
    tr_node(&g, "add", "Add", "x,c3", "");
    tr_node(&g, "addv2", "AddV2", "c3,x", "");
    tr_node(&g, "sub", "Sub", "x,three", "");
    tr_node(&g, "mul", "Mul", "three,x", "");
    /* a vector over the last axis, on either side (the flat wrapping loop) */
    tr_node(&g, "subv", "Sub", "x,c3", "");
    tr_node(&g, "mulv", "Mul", "c3,x", "");
    tr_node(&g, "divv", "RealDiv", "x,c3", "");
    tr_node(&g, "eq", "Equal", "x,c3", "");
    tr_node(&g, "cast", "Cast", "eq",
            "\"SrcT\":{\"type\":\"DT_BOOL\"},\"DstT\":{\"type\":\"DT_FLOAT\"}");
    tr_node(&g, "hs_add", "Add", "x,three", "");
    tr_node(&g, "hs_r6", "Relu6", "hs_add", "");
    tr_node(&g, "hs", "Mul", "x,hs_r6", "");
    eng_tensor *in = input4(1, 1, 2, 3, x);
    struct {
        const char *name;
        float want[6];
    } cases[] = {
        {"relu", {0, 0, 0, 2, 6.5f, 9}},
        {"relu6", {0, 0, 0, 2, 6, 6}},
        {"sig", {0.0179862100f, 0.3775406688f, 0.5f, 0.8807970780f, 0.9984988177f, 0.9998766054f}},
        {"add", {-3, 1.5f, 3, 3, 8.5f, 12}},
        {"addv2", {-3, 1.5f, 3, 3, 8.5f, 12}},
        {"sub", {-7, -3.5f, -3, -1, 3.5f, 6}},
        {"mul", {-12, -1.5f, 0, 6, 19.5f, 27}},
        {"subv", {-5, -2.5f, -3, 1, 4.5f, 6}},
        {"mulv", {-4, -1, 0, 2, 13, 27}},
        {"divv", {-4, -0.25f, 0, 2, 3.25f, 3}},
        {"eq", {0, 0, 0, 0, 0, 0}},
        {"cast", {0, 0, 0, 0, 0, 0}},
        {"hs", {0, -1.25f, 0, 10, 39, 54}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_tensor *o = run(&g, in, cases[i].name);
        expect(cases[i].name, o, cases[i].want, 6, 1e-6);
        if (o && !strcmp(cases[i].name, "eq"))
            CHECK(o->dtype == ENG_I32);
        eng_tensor_free(o);
    }
    eng_tensor_free(in);
    /* broadcasting [2,1] (x) against [3]: Equal finds the matches */
    tr_graph_free(&g);
    tr_graph_init(&g);
    const int64_t xd2[4] = {1, 1, 3, 1};
    const float x2[3] = {1, 2, 5};
    tr_placeholder(&g, "x", 4, xd2);
    tr_const_f(&g, "c3", 1, d3, c3);
    tr_node(&g, "eq", "Equal", "x,c3", "");
    tr_node(&g, "sub", "Sub", "x,c3", "");
    in = input4(1, 1, 3, 1, x2);
    eng_tensor *o = run(&g, in, "eq");
    const float weq[9] = {1, 0, 0, 0, 1, 0, 0, 0, 0};
    expect("broadcast equal", o, weq, 9, 0);
    int64_t bd[4] = {1, 1, 3, 3};
    expect_dims(o, 4, bd);
    eng_tensor_free(o);
    o = run(&g, in, "sub");
    const float wsub[9] = {0, -1, -2, 1, 0, -1, 4, 3, 2};
    expect("broadcast sub", o, wsub, 9, 0);
    eng_tensor_free(o);
    eng_tensor_free(in);
    tr_graph_free(&g);
}

/* the integer decode ops of CenterNet: TopKV2, FloorDiv, FloorMod, Cast, GatherV2,
 * Reshape, ExpandDims, StridedSlice */
static void test_decode_ops(void)
{
    const int64_t xd[4] = {1, 1, 2, 3};
    const float x[6] = {1, 3, 3, 2, -1, 3};
    const int32_t k3[1] = {3}, den[1] = {2}, negs[4] = {-7, 7, -8, 5}, shp[2] = {1, -1};
    const int32_t idx[3] = {2, 0, 2}, zero[1] = {0}, m1[1] = {-1};
    const int32_t sb[4] = {0, 0, 0, 1}, se[4] = {0, 0, 0, 3}, ss[4] = {1, 1, 1, 1};
    const int32_t nb[2] = {0, -1}, ne[2] = {0, 0}, ns[2] = {1, -1};
    const float dn[4] = {-7, 7, 7, -7}, dd[4] = {2, 2, -2, -2};
    const int64_t s1[1] = {1}, s4[1] = {4}, s2[1] = {2}, s3[1] = {3};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_i(&g, "k", 0, s1, k3);
    tr_const_i(&g, "two", 0, s1, den);
    tr_const_i(&g, "negs", 1, s4, negs);
    tr_const_i(&g, "shape", 1, s2, shp);
    tr_const_i(&g, "idx", 1, s3, idx);
    tr_const_i(&g, "zero", 0, s1, zero);
    tr_const_i(&g, "m1", 0, s1, m1);
    tr_const_i(&g, "sb", 1, s4, sb);
    tr_const_i(&g, "se", 1, s4, se);
    tr_const_i(&g, "ss", 1, s4, ss);
    tr_const_i(&g, "nb", 1, s2, nb);
    tr_const_i(&g, "ne", 1, s2, ne);
    tr_const_i(&g, "ns", 1, s2, ns);
    tr_const_f(&g, "dn", 1, s4, dn);
    tr_const_f(&g, "dd", 1, s4, dd);
    tr_node(&g, "flat", "Reshape", "x,shape", "");
    tr_node(&g, "topk", "TopKV2", "flat,k", "\"sorted\":{\"b\":true}");
    tr_node(&g, "fdiv", "FloorDiv", "negs,two", "");
    tr_node(&g, "fmod", "FloorMod", "negs,two", "");
    tr_node(&g, "ffdiv", "FloorDiv", "dn,dd", "");
    tr_node(&g, "ffmod", "FloorMod", "dn,dd", "");
    tr_node(&g, "tofloat", "Cast", "negs", "\"DstT\":{\"type\":\"DT_FLOAT\"}");
    tr_node(&g, "toint", "Cast", "x", "\"DstT\":{\"type\":\"DT_INT32\"}");
    tr_node(&g, "gather", "GatherV2", "flat,idx,m1", "");
    tr_node(&g, "row", "Reshape", "x,shape", "");
    tr_node(&g, "exp", "ExpandDims", "row,m1", "");
    tr_node(&g, "slice", "StridedSlice", "x,sb,se,ss",
            "\"begin_mask\":{\"i\":\"7\"},\"end_mask\":{\"i\":\"7\"}");
    tr_node(&g, "shrink", "StridedSlice", "x,sb,se,ss",
            "\"begin_mask\":{\"i\":\"7\"},\"end_mask\":{\"i\":\"7\"},\"shrink_axis_mask\":{\"i\":"
            "\"8\"}");
    tr_node(&g, "rev", "StridedSlice", "flat,nb,ne,ns",
            "\"begin_mask\":{\"i\":\"0\"},"
            "\"ellipsis_mask\":{\"i\":\"1\"},\"end_mask\":{\"i\":\"0\"}");
    tr_node(&g, "sq", "Squeeze", "x", "\"squeeze_dims\":{\"list\":{\"i\":[\"0\",\"1\"]}}");
    eng_tensor *in = input4(1, 1, 2, 3, x);
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m) {
        eng_tensor_free(in);
        tr_graph_free(&g);
        return;
    }
    const char *names[] = {"topk",  "topk:1", "fdiv", "fmod",  "ffdiv",  "ffmod", "tofloat",
                           "toint", "gather", "exp",  "slice", "shrink", "rev",   "sq"};
    eng_tensor *o[14] = {0};
    CHECK_MSG(eng_model_run(m, in, names, 14, o, NULL, &d) == ENG_OK, "%s", d.msg);
    /* ties: the lower index first, as tfjs and TF */
    const float wv[3] = {3, 3, 3}, wi[3] = {1, 2, 5};
    expect("topk values", o[0], wv, 3, 0);
    expect("topk indices", o[1], wi, 3, 0);
    if (o[1])
        CHECK(o[1]->dtype == ENG_I32);
    const float wfd[4] = {-4, 3, -4, 2}, wfm[4] = {1, 1, 0, 1};
    expect("int floordiv", o[2], wfd, 4, 0);
    expect("int floormod", o[3], wfm, 4, 0);
    const float wffd[4] = {-4, 3, -4, 3}, wffm[4] = {1, 1, -1, -1};
    expect("float floordiv", o[4], wffd, 4, 0);
    expect("float floormod", o[5], wffm, 4, 0);
    const float wtf[4] = {-7, 7, -8, 5};
    expect("cast int->float", o[6], wtf, 4, 0);
    const float wti[6] = {1, 3, 3, 2, -1, 3};
    expect("cast float->int", o[7], wti, 6, 0);
    const float wg[3] = {3, 1, 3};
    expect("gather", o[8], wg, 3, 0);
    int64_t ed[3] = {1, 6, 1};
    expect_dims(o[9], 3, ed);
    const float wsl[4] = {3, 3, -1, 3};
    expect("strided slice", o[10], wsl, 4, 0);
    int64_t sd[4] = {1, 1, 2, 2};
    expect_dims(o[10], 4, sd);
    const float wsh[2] = {3, -1};
    expect("strided slice shrink", o[11], wsh, 2, 0);
    int64_t shd[3] = {1, 1, 2};
    expect_dims(o[11], 3, shd);
    /* [1,6] reversed over the last axis from -1 down to (excluding) 0 */
    const float wrev[5] = {3, -1, 2, 3, 3};
    expect("strided slice reverse", o[12], wrev, 5, 0);
    int64_t sqd[2] = {2, 3};
    expect_dims(o[13], 2, sqd);
    for (int i = 0; i < 14; i++)
        eng_tensor_free(o[i]);
    eng_model_free(m);
    eng_tensor_free(in);
    tr_graph_free(&g);
}

/* new axes beyond the rank limit are an error, not an overflow */
static void test_slice_rank_limit(void)
{
    const int64_t xd[4] = {1, 1, 2, 3};
    const float x[6] = {0};
    const int32_t z[5] = {0, 0, 0, 0, 0}, one[5] = {1, 1, 1, 1, 1};
    const int64_t s5[1] = {5};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_i(&g, "b", 1, s5, z);
    tr_const_i(&g, "e", 1, s5, z);
    tr_const_i(&g, "s", 1, s5, one);
    tr_node(&g, "sl", "StridedSlice", "x,b,e,s", "\"new_axis_mask\":{\"i\":\"31\"}");
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK(tr_load(&g, &m, &d) == ENG_EUNSUPPORTED);
    CHECK_MSG(strstr(d.msg, "'sl'") && strstr(d.msg, "too many output dimensions"), "%s", d.msg);
    (void)x;
    tr_graph_free(&g);
}

static void test_matmul_softmax_pad(void)
{
    const int64_t xd[2] = {2, 3};
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const float wt[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}; /* [2 out][3 in], used with transpose_b */
    const float b[2] = {3, -5};
    const int32_t pads[4] = {1, 0, 0, 2};
    const int64_t wd[2] = {2, 3}, bd[1] = {2}, pd[2] = {2, 2};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 2, xd);
    tr_const_f(&g, "w", 2, wd, wt);
    tr_const_f(&g, "b", 1, bd, b);
    tr_const_i(&g, "pads", 2, pd, pads);
    char fb[16], fr[16];
    tr_b64("BiasAdd", fb);
    tr_b64("Relu", fr);
    char attrs[512];
    snprintf(attrs, sizeof attrs,
             "\"transpose_b\":{\"b\":true},\"fused_ops\":{\"list\":{\"s\":[\"%s\",\"%s\"]}},"
             "\"num_args\":{\"i\":\"1\"}",
             fb, fr);
    tr_node(&g, "mm", "MatMul", "x,w", "\"transpose_b\":{\"b\":true}");
    tr_node(&g, "fmm", "_FusedMatMul", "x,w,b", attrs);
    tr_node(&g, "sm", "Softmax", "mm", "");
    tr_node(&g, "pad", "Pad", "x,pads", "");
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    eng_tensor *in = eng_tensor_new(ENG_F32, 2, xd);
    memcpy(in->data, x, sizeof x);
    const char *names[] = {"mm", "fmm", "sm", "pad"};
    eng_tensor *o[4] = {0};
    if (m)
        CHECK_MSG(eng_model_run(m, in, names, 4, o, NULL, &d) == ENG_OK, "%s", d.msg);
    const float wmm[4] = {-2, 3, -2, 7.5f};
    expect("matmul transpose_b", o[0], wmm, 4, 1e-6);
    const float wf[4] = {1, 0, 1, 2.5f};
    expect("fused matmul bias relu", o[1], wf, 4, 1e-6);
    const float e5 = expf(-5), e95 = expf(-9.5f);
    const float wsm[4] = {e5 / (1 + e5), 1 / (1 + e5), e95 / (1 + e95), 1 / (1 + e95)};
    expect("softmax", o[2], wsm, 4, 1e-6);
    const float wp[15] = {0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0, 0};
    expect("pad", o[3], wp, 15, 0);
    for (int i = 0; i < 4; i++)
        eng_tensor_free(o[i]);
    eng_tensor_free(in);
    eng_model_free(m);
    tr_graph_free(&g);
}

static int abort_after(void *ctx)
{
    int *calls = ctx;
    return ++*calls > 3;
}

static void test_executor(void)
{
    const int64_t xd[4] = {1, 1, 1, 2};
    const float x[2] = {1, -2};
    const float c[2] = {10, 20};
    const int64_t cd[1] = {2};
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "c", 1, cd, c);
    tr_node(&g, "a", "Add", "x,c", "");
    tr_node(&g, "r", "Relu", "a", "");
    tr_node(&g, "m", "Mul", "r,a", "");
    tr_node(&g, "n", "Mul", "m,^r", ""); /* control input is ignored: Mul of one input fails */
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK(tr_load(&g, &m, &d) == ENG_EFORMAT);
    CHECK_MSG(strstr(d.msg, "'n'") != NULL, "%s", d.msg);
    tr_graph_free(&g);

    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "c", 1, cd, c);
    tr_node(&g, "a", "Add", "x,c", "");
    tr_node(&g, "r", "Relu", "a", "");
    tr_node(&g, "m", "Mul", "r,a", "");
    tr_node(&g, "id", "Identity", "m,^r", "");
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    eng_tensor *in = input4(1, 1, 1, 2, x);
    /* taps, a constant, the input and a repeated name in one call */
    const char *names[] = {"a", "id", "c", "x", "id", "m"};
    eng_tensor *o[6] = {0};
    CHECK_MSG(eng_model_run(m, in, names, 6, o, NULL, &d) == ENG_OK, "%s", d.msg);
    const float wa[2] = {11, 18}, wm[2] = {121, 324};
    expect("tap a", o[0], wa, 2, 0);
    expect("identity", o[1], wm, 2, 0);
    expect("const as output", o[2], c, 2, 0);
    expect("input as output", o[3], x, 2, 0);
    expect("repeated output", o[4], wm, 2, 0);
    expect("tap m", o[5], wm, 2, 0);
    CHECK(o[1] != o[4] && o[2]->data != c && o[3] != in);
    for (int i = 0; i < 6; i++)
        eng_tensor_free(o[i]);

    CHECK(eng_model_has_node(m, "a") && !eng_model_has_node(m, "zz") &&
          !eng_model_has_node(m, "a:1"));
    const eng_tensor *ct = NULL;
    CHECK(eng_model_const(m, "c", &ct, &d) == ENG_OK && ct && eng_f32(ct)[1] == 20);
    CHECK(eng_model_const(m, "a", &ct, &d) == ENG_ENOTFOUND);
    CHECK(strcmp(eng_model_input_name(m), "x") == 0);
    int64_t dim[ENG_MAX_DIMS];
    CHECK(eng_model_input_shape(m, dim) == 4 && dim[3] == 2);

    /* unknown output, wrong channel count, abort */
    const char *bad = "nope";
    CHECK(eng_model_run(m, in, &bad, 1, o, NULL, &d) == ENG_ENOTFOUND);
    CHECK_MSG(strstr(d.msg, "'nope'") != NULL, "%s", d.msg);
    CHECK(o[0] == NULL);
    eng_tensor *in3 = tr_tensor(4, 1, 1, 1, 3);
    const char *idn = "id";
    CHECK(eng_model_run(m, in3, &idn, 1, o, NULL, &d) == ENG_EINVAL);
    CHECK_MSG(strstr(d.msg, "3 channels") != NULL, "%s", d.msg);
    int calls = 0;
    eng_run_opts opts = {.threads = 1, .abort = abort_after, .abort_ctx = &calls};
    CHECK(eng_model_run(m, in, &idn, 1, o, &opts, &d) == ENG_EABORTED);
    CHECK(o[0] == NULL && calls == 4);
    /* a batch runs item by item (split path): abort and shapes still hold */
    eng_tensor *batch = tr_tensor(4, 4, 1, 1, 2);
    calls = 0;
    CHECK(eng_model_run(m, batch, &idn, 1, o, &opts, &d) == ENG_EABORTED);
    CHECK(o[0] == NULL);
    opts.abort = NULL;
    opts.threads = 2;
    CHECK(eng_model_run(m, batch, &idn, 1, o, &opts, &d) == ENG_OK);
    int64_t bd4[4] = {4, 1, 1, 2};
    expect_dims(o[0], 4, bd4);
    const float wb4[8] = {100, 400, 100, 400, 100, 400, 100, 400};
    expect("batch split", o[0], wb4, 8, 0);
    eng_tensor_free(o[0]);
    eng_tensor_free(batch);
    /* a larger input broadcasts against the [2] constant too: taps work at any size */
    eng_tensor *big = tr_tensor(4, 3, 5, 7, 2);
    CHECK(eng_model_run(m, big, &idn, 1, o, NULL, &d) == ENG_OK);
    int64_t bd[4] = {3, 5, 7, 2};
    expect_dims(o[0], 4, bd);
    eng_tensor_free(o[0]);
    /* shapes without running */
    int64_t od[1][ENG_MAX_DIMS];
    int ond[1];
    int64_t xin[4] = {2, 3, 4, 2};
    CHECK(eng_model_shapes(m, 4, xin, &idn, 1, od, ond, NULL, &d) == ENG_OK);
    CHECK(ond[0] == 4 && od[0][0] == 2 && od[0][2] == 4);
    eng_tensor_free(big);
    eng_tensor_free(in3);
    eng_tensor_free(in);
    eng_model_free(m);
    eng_model_free(NULL);
    tr_graph_free(&g);
}

/* hard-swish after a convolution runs fused in the conv epilogue unless a run
 * asks for one of the nodes inside the pattern; both give the same bits */
static void test_hswish_fusion(void)
{
    const int64_t xd[4] = {1, 1, 3, 1};
    const float x[3] = {-5, 1, 2};
    const float w[1] = {2}, b[1] = {1}, three[1] = {3}, c[1] = {0.1666259765625f};
    const int64_t wd[4] = {1, 1, 1, 1}, bd[1] = {1}, sd[1] = {1};
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "w", 4, wd, w);
    tr_const_f(&g, "b", 1, bd, b);
    tr_const_f(&g, "three", 0, sd, three);
    tr_const_f(&g, "c", 0, sd, c);
    tr_node(&g, "conv", "_FusedConv2D", "x,w,b", tr_attr_conv(a, sizeof a, 1, "SAME", "BiasAdd"));
    tr_node(&g, "hs/mul", "Mul", "c,conv", "");
    tr_node(&g, "hs/add", "Add", "conv,three", "");
    tr_node(&g, "hs/relu6", "Relu6", "hs/add", "");
    tr_node(&g, "hs/out", "Mul", "hs/mul,hs/relu6", "");
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m)
        return;
    eng_tensor *in = input4(1, 1, 3, 1, x);
    const char *fused = "hs/out";
    const char *both[2] = {"hs/out", "hs/add"};
    eng_tensor *o1 = NULL, *o2[2] = {0};
    CHECK(eng_model_run(m, in, &fused, 1, &o1, NULL, &d) == ENG_OK);
    CHECK(eng_model_run(m, in, both, 2, o2, NULL, &d) == ENG_OK);
    /* conv: -9, 3, 5 -> (c*v) * relu6(v+3) */
    float want[3];
    const float v[3] = {-9, 3, 5};
    for (int i = 0; i < 3; i++) {
        float r = v[i] + 3 < 0 ? 0 : v[i] + 3 > 6 ? 6 : v[i] + 3;
        want[i] = (c[0] * v[i]) * r;
    }
    expect("hswish fused", o1, want, 3, 0);
    expect("hswish unfused", o2[0], want, 3, 0);
    const float wadd[3] = {-6, 6, 8};
    expect("hswish inner tap", o2[1], wadd, 3, 0);
    if (o1 && o2[0])
        CHECK(memcmp(o1->data, o2[0]->data, 12) == 0);
    eng_tensor_free(o1);
    eng_tensor_free(o2[0]);
    eng_tensor_free(o2[1]);
    eng_tensor_free(in);
    eng_model_free(m);
    tr_graph_free(&g);
}

/* An inverted-residual block's expand 1x1 (+ relu6) feeding a depthwise convolution runs as
 * one fused node (the expanded 128x128x64 map, 4 MB, is never stored whole) unless a run asks
 * for the expand's output; fused and unfused give the same bits, for 1 and 2 threads and a
 * batch of 2, and match the double loops. An expand that has a second consumer, and a 3x3
 * "expand", are left alone. */
static void test_expand_dw_fusion(void)
{
    enum { H = 128, W = 128, CI = 8, CE = 64 };
    const int64_t xd[4] = {-1, H, W, CI}, ewd[4] = {1, 1, CI, CE}, bd[1] = {CE};
    const int64_t dwd[4] = {3, 3, CE, 1}, k3d[4] = {3, 3, CI, CE};
    static float ew[CI * CE], eb[CE], dwf[9 * CE], dwb[CE], k3[9 * CI * CE];
    for (int i = 0; i < CI * CE; i++)
        ew[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
    for (int i = 0; i < CE; i++)
        eb[i] = (float)(i % 7) * 0.25f - 0.5f, dwb[i] = (float)(i % 5) * 0.1f;
    for (int i = 0; i < 9 * CE; i++)
        dwf[i] = (float)((i * 11) % 19) / 19.0f - 0.4f;
    for (int i = 0; i < 9 * CI * CE; i++)
        k3[i] = (float)(i % 13) * 0.01f;
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "ew", 4, ewd, ew);
    tr_const_f(&g, "eb", 1, bd, eb);
    tr_const_f(&g, "dwf", 4, dwd, dwf);
    tr_const_f(&g, "dwb", 1, bd, dwb);
    tr_const_f(&g, "k3", 4, k3d, k3);
    tr_node(&g, "exp", "_FusedConv2D", "x,ew,eb",
            tr_attr_conv(a, sizeof a, 1, "VALID", "BiasAdd,Relu6"));
    tr_node(&g, "dw", "FusedDepthwiseConv2dNative", "exp,dwf,dwb",
            tr_attr_conv(a, sizeof a, 2, "SAME", "BiasAdd,Relu6"));
    tr_node(&g, "exp2", "Conv2D", "x,ew", tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "dw2", "DepthwiseConv2dNative", "exp2,dwf",
            tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "sum", "AddV2", "dw2,exp2", "");
    tr_node(&g, "c3", "Conv2D", "x,k3", tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "dw3", "DepthwiseConv2dNative", "c3,dwf",
            tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m) {
        tr_graph_free(&g);
        return;
    }
    int idw = rt_find_node(m, "dw", 2), iexp = rt_find_node(m, "exp", 3);
    int idw2 = rt_find_node(m, "dw2", 3), idw3 = rt_find_node(m, "dw3", 3);
    CHECK(idw >= 0 && iexp >= 0 && idw2 >= 0 && idw3 >= 0);
    if (idw < 0 || iexp < 0 || idw2 < 0 || idw3 < 0)
        return;
    CHECK_MSG(m->nodes[idw].fused && m->nodes[idw].fused->op == &rt_op_expand_dw,
              "the expand + depthwise pair is not fused");
    CHECK(m->nodes[iexp].absorbed_by == idw);
    CHECK_MSG(!m->nodes[idw2].fused, "an expand read twice was fused");
    CHECK_MSG(!m->nodes[idw3].fused, "a 3x3 convolution was fused as an expand");

    eng_tensor *in = tr_tensor(4, 2, H, W, CI);
    for (int64_t i = 0; i < 2 * H * W * CI; i++)
        eng_f32(in)[i] = (float)((i * 7919) % 1009) / 1009.0f * 4 - 2;
    eng_tensor one = *in; /* item 0 alone */
    one.dim[0] = 1;
    const char *fused = "dw", *both[2] = {"dw", "exp"};
    eng_tensor *f1 = NULL, *f2 = NULL, *fb = NULL, *u[2] = {0};
    eng_run_opts o1 = {.threads = 1}, o2 = {.threads = 2};
    CHECK(eng_model_run(m, &one, &fused, 1, &f1, &o1, &d) == ENG_OK);
    CHECK(eng_model_run(m, &one, &fused, 1, &f2, &o2, &d) == ENG_OK);
    CHECK(eng_model_run(m, in, &fused, 1, &fb, &o2, &d) == ENG_OK);
    CHECK(eng_model_run(m, &one, both, 2, u, &o1, &d) == ENG_OK); /* asks for exp: unfused */
    const int64_t od[4] = {1, H / 2, W / 2, CE};
    expect_dims(f1, 4, od);
    size_t nout = (size_t)(H / 2) * (W / 2) * CE;
    if (f1 && f2 && fb && u[0] && u[1]) {
        CHECK_MSG(memcmp(f1->data, u[0]->data, nout * 4) == 0, "fused != unfused");
        CHECK_MSG(memcmp(f1->data, f2->data, nout * 4) == 0, "1 and 2 threads differ");
        CHECK_MSG(memcmp(f1->data, fb->data, nout * 4) == 0, "batch item 0 differs");
        /* the double loops: relu6(x . ew + eb), then the depthwise (SAME, stride 2 on an even
         * size: pad bottom/right only) + dwb, relu6; on a sample of outputs */
        const float *x = eng_f32(in), *e = eng_f32(u[1]), *y = eng_f32(f1);
        double maxd = 0;
        for (int p = 0; p < H * W; p += 97)
            for (int c = 0; c < CE; c++) {
                double s = eb[c];
                for (int k = 0; k < CI; k++)
                    s += (double)x[(size_t)p * CI + k] * ew[k * CE + c];
                s = s < 0 ? 0 : s > 6 ? 6 : s;
                double dd = fabs(s - e[(size_t)p * CE + c]);
                maxd = dd > maxd ? dd : maxd;
            }
        for (int oy = 0; oy < H / 2; oy += 7)
            for (int ox = 0; ox < W / 2; ox += 5)
                for (int c = 0; c < CE; c++) {
                    double s = dwb[c];
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = 2 * oy + ky, ix = 2 * ox + kx;
                            if (iy < H && ix < W)
                                s += (double)e[((size_t)iy * W + ix) * CE + c] *
                                     dwf[(ky * 3 + kx) * CE + c];
                        }
                    s = s < 0 ? 0 : s > 6 ? 6 : s;
                    double dd = fabs(s - y[((size_t)oy * (W / 2) + ox) * CE + c]);
                    maxd = dd > maxd ? dd : maxd;
                }
        CHECK_MSG(maxd < 1e-4, "expand + depthwise off the double loops by %g", maxd);
    }
    eng_tensor_free(f1);
    eng_tensor_free(f2);
    eng_tensor_free(fb);
    eng_tensor_free(u[0]);
    eng_tensor_free(u[1]);
    eng_tensor_free(in);
    eng_model_free(m);
    tr_graph_free(&g);
}

/* A separable convolution (depthwise, then a 1x1 that alone reads it) fuses: as written, in its
 * sigmoid form (a detector's heatmap) and in its residual form (the 1x1 + an Add), the 1x1's
 * node gets the fused form and the depthwise is absorbed. A 4 MB map runs the banded kernel, a
 * smaller one the two kernels; either way the results equal the graph as written, to the bit,
 * at 1 and 2 threads and in a batch. */
static void test_dw_conv1x1_fusion(void)
{
    enum { H = 128, W = 128, C = 64, CO = 24 };
    const int64_t xd[4] = {-1, H, W, C}, dwd[4] = {3, 3, C, 1}, bd[1] = {C};
    const int64_t pwd[4] = {1, 1, C, CO}, pbd[1] = {CO}, pw2d[4] = {1, 1, C, C};
    static float dwf[9 * C], dwb[C], pwf[C * CO], pwb[CO], pw2[C * C];
    for (int i = 0; i < 9 * C; i++)
        dwf[i] = (float)((i * 11) % 19) / 19.0f - 0.4f;
    for (int i = 0; i < C; i++)
        dwb[i] = (float)(i % 5) * 0.1f - 0.2f;
    for (int i = 0; i < C * CO; i++)
        pwf[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
    for (int i = 0; i < CO; i++)
        pwb[i] = (float)(i % 7) * 0.25f - 0.5f;
    for (int i = 0; i < C * C; i++)
        pw2[i] = (float)((i * 13) % 29) / 29.0f - 0.5f;
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "dwf", 4, dwd, dwf);
    tr_const_f(&g, "dwb", 1, bd, dwb);
    tr_const_f(&g, "pwf", 4, pwd, pwf);
    tr_const_f(&g, "pwb", 1, pbd, pwb);
    tr_const_f(&g, "pw2", 4, pw2d, pw2);
    /* the heatmap: 4 MB depthwise map, 1x1 with bias, sigmoid after */
    tr_node(&g, "dw", "DepthwiseConv2dNative", "x,dwf", tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "pw", "_FusedConv2D", "dw,pwf,pwb",
            tr_attr_conv(a, sizeof a, 1, "VALID", "BiasAdd"));
    tr_node(&g, "sig", "Sigmoid", "pw", "");
    /* a residual pair on a 1 MB map: depthwise with bias and relu6 at stride 2, 1x1, + r */
    tr_node(&g, "dwb2", "FusedDepthwiseConv2dNative", "x,dwf,dwb",
            tr_attr_conv(a, sizeof a, 2, "SAME", "BiasAdd,Relu6"));
    tr_node(&g, "pwr", "Conv2D", "dwb2,pw2", tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "r", "DepthwiseConv2dNative", "x,dwf", tr_attr_conv(a, sizeof a, 2, "SAME", NULL));
    tr_node(&g, "add", "AddV2", "pwr,r", "");
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m) {
        tr_graph_free(&g);
        return;
    }
    int isig = rt_find_node(m, "sig", 3), idw = rt_find_node(m, "dw", 2);
    int iadd = rt_find_node(m, "add", 3), idw2 = rt_find_node(m, "dwb2", 4);
    CHECK(isig >= 0 && idw >= 0 && iadd >= 0 && idw2 >= 0);
    if (isig < 0 || idw < 0 || iadd < 0 || idw2 < 0)
        return;
    const rt_node *fs = m->nodes[isig].fused, *fa = m->nodes[iadd].fused;
    CHECK_MSG(fs && fs->op == &rt_op_dw_conv1x1 && fs->a.act == ENG_ACT_SIGMOID,
              "the heatmap's separable convolution is not fused");
    CHECK_MSG(fa && fa->op == &rt_op_dw_conv1x1 && fa->a.residual,
              "the residual separable convolution is not fused");
    CHECK(m->nodes[idw].absorbed_by == isig && m->nodes[idw2].absorbed_by == iadd);

    eng_tensor *in = tr_tensor(4, 2, H, W, C);
    for (int64_t i = 0; i < 2 * H * W * C; i++)
        eng_f32(in)[i] = (float)((i * 7919) % 1009) / 1009.0f * 4 - 2;
    eng_tensor one = *in; /* item 0 alone */
    one.dim[0] = 1;
    const char *outs[2] = {"sig", "add"}, *plain[4] = {"sig", "add", "dw", "dwb2"};
    eng_tensor *f1[2] = {0}, *f2[2] = {0}, *fb[2] = {0}, *u[4] = {0};
    eng_run_opts o1 = {.threads = 1}, o2 = {.threads = 2};
    CHECK(eng_model_run(m, &one, outs, 2, f1, &o1, &d) == ENG_OK);
    CHECK(eng_model_run(m, &one, outs, 2, f2, &o2, &d) == ENG_OK);
    CHECK(eng_model_run(m, in, outs, 2, fb, &o2, &d) == ENG_OK);
    CHECK(eng_model_run(m, &one, plain, 4, u, &o1, &d) == ENG_OK); /* asks for dw: unfused */
    size_t ns = (size_t)H * W * CO, na = (size_t)(H / 2) * (W / 2) * C;
    if (f1[0] && f1[1] && f2[0] && f2[1] && fb[0] && fb[1] && u[0] && u[1] && u[2]) {
        CHECK_MSG(memcmp(f1[0]->data, u[0]->data, ns * 4) == 0, "sigmoid form: fused != unfused");
        CHECK_MSG(memcmp(f1[1]->data, u[1]->data, na * 4) == 0, "residual form: fused != unfused");
        CHECK_MSG(memcmp(f1[0]->data, f2[0]->data, ns * 4) == 0 &&
                      memcmp(f1[1]->data, f2[1]->data, na * 4) == 0,
                  "1 and 2 threads differ");
        CHECK_MSG(memcmp(f1[0]->data, fb[0]->data, ns * 4) == 0 &&
                      memcmp(f1[1]->data, fb[1]->data, na * 4) == 0,
                  "batch item 0 differs");
        /* the double loops on a sample: sigmoid(dw . pwf + pwb) */
        const float *dwo = eng_f32(u[2]), *y = eng_f32(f1[0]);
        double maxd = 0;
        for (int p = 0; p < H * W; p += 89)
            for (int o = 0; o < CO; o++) {
                double s = pwb[o];
                for (int c = 0; c < C; c++)
                    s += (double)dwo[(size_t)p * C + c] * pwf[c * CO + o];
                double dd = fabs(1.0 / (1.0 + exp(-s)) - y[(size_t)p * CO + o]);
                maxd = dd > maxd ? dd : maxd;
            }
        CHECK_MSG(maxd < 1e-4, "depthwise + 1x1 off the double loops by %g", maxd);
    }
    for (int i = 0; i < 2; i++)
        eng_tensor_free(f1[i]), eng_tensor_free(f2[i]), eng_tensor_free(fb[i]);
    for (int i = 0; i < 4; i++)
        eng_tensor_free(u[i]);
    eng_tensor_free(in);
    eng_model_free(m);
    tr_graph_free(&g);
}

/* the expansion in its hard-swish form (MobileNetV3, CenterNet) fuses too: the depthwise node
 * gets the fused form, the hard-swish node is absorbed; results equal the graph as written */
static void test_expand_dw_hswish(void)
{
    const int64_t xd[4] = {1, 6, 5, 2}, ewd[4] = {1, 1, 2, 4}, dwd[4] = {3, 3, 4, 1};
    const int64_t sd[1] = {1};
    float ew[8], dwf[36];
    const float three[1] = {3}, c[1] = {0.1666259765625f};
    for (int i = 0; i < 8; i++)
        ew[i] = (float)(i % 5) * 0.7f - 1.2f;
    for (int i = 0; i < 36; i++)
        dwf[i] = (float)((i * 7) % 11) / 11.0f - 0.4f;
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "ew", 4, ewd, ew);
    tr_const_f(&g, "dwf", 4, dwd, dwf);
    tr_const_f(&g, "three", 0, sd, three);
    tr_const_f(&g, "c", 0, sd, c);
    tr_node(&g, "e", "Conv2D", "x,ew", tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "hm", "Mul", "c,e", "");
    tr_node(&g, "ha", "AddV2", "e,three", "");
    tr_node(&g, "hr", "Relu6", "ha", "");
    tr_node(&g, "h", "Mul", "hm,hr", "");
    tr_node(&g, "d", "DepthwiseConv2dNative", "h,dwf", tr_attr_conv(a, sizeof a, 2, "SAME", NULL));
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m) {
        tr_graph_free(&g);
        return;
    }
    int id = rt_find_node(m, "d", 1), ih = rt_find_node(m, "h", 1);
    CHECK(id >= 0 && ih >= 0);
    if (id >= 0 && ih >= 0) {
        CHECK_MSG(m->nodes[id].fused && m->nodes[id].fused->op == &rt_op_expand_dw &&
                      m->nodes[id].fused->a.pre_act == ENG_ACT_HSWISH_F16,
                  "the hard-swish expansion + depthwise is not fused");
        CHECK(m->nodes[ih].absorbed_by == id);
    }
    float x[60];
    for (int i = 0; i < 60; i++)
        x[i] = (float)((i * 13) % 17) * 0.5f - 4;
    eng_tensor *in = input4(1, 6, 5, 2, x);
    const char *fused = "d", *both[2] = {"d", "h"};
    eng_tensor *o1 = NULL, *o2[2] = {0};
    CHECK(eng_model_run(m, in, &fused, 1, &o1, NULL, &d) == ENG_OK);
    CHECK(eng_model_run(m, in, both, 2, o2, NULL, &d) == ENG_OK);
    const int64_t od[4] = {1, 3, 3, 4};
    expect_dims(o1, 4, od);
    if (o1 && o2[0])
        CHECK_MSG(memcmp(o1->data, o2[0]->data, 36 * 4) == 0, "hswish expand: fused != unfused");
    eng_tensor_free(o1);
    eng_tensor_free(o2[0]);
    eng_tensor_free(o2[1]);
    eng_tensor_free(in);
    eng_model_free(m);
    tr_graph_free(&g);
}

/* long enough for the vector path: sigmoid against libm */
static void test_sigmoid_vector(void)
{
    const int64_t xd[4] = {1, 1, 5, 7};
    float x[35], want[35];
    for (int i = 0; i < 35; i++) {
        x[i] = (float)(i - 17) * 1.37f;
        want[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
    }
    tr_graph g;
    tr_graph_init(&g);
    tr_placeholder(&g, "x", 4, xd);
    tr_node(&g, "s", "Sigmoid", "x", "");
    eng_tensor *in = input4(1, 1, 5, 7, x);
    eng_tensor *o = run(&g, in, "s");
    expect("sigmoid vector path", o, want, 35, 2e-7);
    eng_tensor_free(o);
    eng_tensor_free(in);
    tr_graph_free(&g);
}

/* a residual add after a convolution runs in the conv epilogue (bit-identical);
 * a broadcast add of a per-channel tensor is left alone */
static void test_residual_fusion(void)
{
    const int64_t xd[4] = {1, 2, 2, 2};
    const float x[8] = {1, 2, 3, 4, -5, 6, 7, -8};
    const float w[4] = {1, 2, -1, 0.5f}, b[2] = {0.25f, -1};
    const int32_t ax[2] = {1, 2};
    const int64_t wd[4] = {1, 1, 2, 2}, bd[1] = {2}, ad[1] = {2};
    tr_graph g;
    tr_graph_init(&g);
    char a[1024];
    tr_placeholder(&g, "x", 4, xd);
    tr_const_f(&g, "w", 4, wd, w);
    tr_const_f(&g, "b", 1, bd, b);
    tr_const_i(&g, "ax", 1, ad, ax);
    tr_node(&g, "proj", "_FusedConv2D", "x,w,b", tr_attr_conv(a, sizeof a, 1, "SAME", "BiasAdd"));
    tr_node(&g, "add", "AddV2", "x,proj", "");
    tr_node(&g, "mean", "Mean", "x,ax", "\"keep_dims\":{\"b\":true}");
    tr_node(&g, "proj2", "Conv2D", "x,w", tr_attr_conv(a, sizeof a, 1, "SAME", NULL));
    tr_node(&g, "badd", "Add", "proj2,mean", "");
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(tr_load(&g, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m)
        return;
    CHECK(m->nodes[5].fused != NULL && m->nodes[5].fused->a.residual); /* add */
    CHECK(m->nodes[8].fused == NULL);                                  /* badd: broadcast */
    eng_tensor *in = input4(1, 2, 2, 2, x);
    const char *fused = "add", *both[2] = {"add", "proj"}, *bc = "badd";
    eng_tensor *o1 = NULL, *o2[2] = {0}, *o3 = NULL;
    CHECK(eng_model_run(m, in, &fused, 1, &o1, NULL, &d) == ENG_OK);
    CHECK(eng_model_run(m, in, both, 2, o2, NULL, &d) == ENG_OK);
    CHECK(eng_model_run(m, in, &bc, 1, &o3, NULL, &d) == ENG_OK);
    /* proj = [x0 - x1 + .25, 2 x0 + .5 x1 - 1] per pixel */
    float want[8], wantb[8];
    for (int p = 0; p < 4; p++) {
        float x0 = x[2 * p], x1 = x[2 * p + 1];
        float p0 = (x0 * 1 + x1 * -1) + 0.25f, p1 = (x0 * 2 + x1 * 0.5f) - 1;
        want[2 * p] = x0 + p0, want[2 * p + 1] = x1 + p1;
        wantb[2 * p] = (x0 - x1) + 1.5f, wantb[2 * p + 1] = (2 * x0 + 0.5f * x1) + 1;
    }
    expect("residual fused", o1, want, 8, 1e-6);
    expect("residual unfused", o2[0], want, 8, 1e-6);
    expect("broadcast add after conv", o3, wantb, 8, 1e-6);
    if (o1 && o2[0])
        CHECK(memcmp(o1->data, o2[0]->data, 32) == 0);
    eng_tensor_free(o1);
    eng_tensor_free(o2[0]);
    eng_tensor_free(o2[1]);
    eng_tensor_free(o3);
    eng_tensor_free(in);
    eng_model_free(m);
    tr_graph_free(&g);
}

int main(void)
{
    test_residual_fusion();
    test_sigmoid_vector();
    test_hswish_fusion();
    test_expand_dw_fusion();
    test_dw_conv1x1_fusion();
    test_expand_dw_hswish();
    test_conv_same_stride2();
    test_fused_conv();
    test_depthwise();
    test_maxpool_resize();
    test_mean_concat();
    test_mean_blocks();
    test_vector_wrap();
    test_reuse();
    test_elementwise();
    test_decode_ops();
    test_slice_rank_limit();
    test_matmul_softmax_pad();
    test_executor();
    return check_report("test_runtime_ops");
}
