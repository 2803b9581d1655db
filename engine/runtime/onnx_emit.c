/* onnx_emit.c: a loaded graph as ONNX nodes (eng_model_emit_onnx).
 *
 * Design: the graph as written (no fused forms), node by node, each op with
 * the semantics of its kernel here: NHWC tensors become NCHW (convolutions
 * need it), so a constant operand of an element-wise op is transposed the
 * same way and reduction and concatenation axes are renamed; SAME padding
 * becomes the explicit pads eng_conv_geom_init computes for the input size
 * (TF's rule: the odd pixel at the bottom/right); filters go HWIO -> OIHW
 * and depthwise [KH,KW,C,M] -> [C*M,1,KH,KW] with group C; a fused bias and
 * activation become Add-free Conv bias and an activation node. Only data
 * inputs are followed: weights, axes and resize sizes are read from
 * constants or from the shapes at the given input size, so the exported
 * graph has fixed spatial sizes and a free batch dimension. An op without a
 * translation fails with ENG_EUNSUPPORTED naming it. */
#include "runtime_int.h"

#include "onnx_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NHWC axis a (0..3) is NCHW axis nchw_axis[a] */
static const int64_t nchw_axis[4] = {0, 2, 3, 1};

typedef struct emit {
    const eng_model *m;
    onnx_b *b;
    const eng_tensor *shp; /* n_nodes * RT_MAX_OUT */
    const char **name;     /* tensor name of each node port, NULL: not emitted */
    const char *prefix, *wprefix;
    eng_diag *d;
} emit;

static int data_inputs(const rt_node *n)
{
    if (rt_is_op(n, "Conv2D") || rt_is_op(n, "_FusedConv2D") ||
        rt_is_op(n, "DepthwiseConv2dNative") || rt_is_op(n, "FusedDepthwiseConv2dNative") ||
        rt_is_op(n, "Mean") || rt_is_op(n, "ResizeBilinear"))
        return 1;
    if (rt_is_op(n, "ConcatV2"))
        return n->n_in - 1;
    return n->n_in;
}

static const eng_tensor *shape_of(const emit *e, rt_ref r)
{
    return &e->shp[(size_t)r.node * RT_MAX_OUT + r.port];
}

/* the constant value of input i of n, or NULL */
static const eng_tensor *const_in(const emit *e, const rt_node *n, int i)
{
    const rt_node *c = &e->m->nodes[n->in[i].node];
    return c->value;
}

static char *wname(const emit *e, const char *node, const char *what, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", e->wprefix, node, what);
    return buf;
}

/* a data input's tensor name: must be a 4-D float tensor already emitted */
static const char *data_name(const emit *e, const rt_node *n, int i)
{
    rt_ref r = n->in[i];
    const char *s = e->name[(size_t)r.node * RT_MAX_OUT + r.port];
    const eng_tensor *t = shape_of(e, r);
    if (!s || t->ndim != 4 || t->dtype != ENG_F32) {
        eng_fail(e->d, ENG_EUNSUPPORTED,
                 "onnx export: node '%s' (%s): input %d is not a 4-D float map the export follows",
                 n->name, n->op->name, i);
        return NULL;
    }
    return s;
}

/* a constant operand of an element-wise op as an NCHW-broadcastable
 * initializer */
static const char *const_operand(emit *e, const rt_node *n, int i)
{
    const eng_tensor *t = const_in(e, n, i);
    char buf[512];
    if (t->dtype != ENG_F32 || t->ndim > 4)
        return eng_fail(e->d, ENG_EUNSUPPORTED,
                        "onnx export: node '%s' (%s): constant operand is not float of rank <= 4",
                        n->name, n->op->name),
               NULL;
    int64_t cnt = rt_numel(t);
    const char *nm = wname(e, e->m->nodes[n->in[i].node].name, "", buf, sizeof buf);
    if (cnt == 1)
        return onnx_init_f32(e->b, nm, 0, NULL, eng_f32(t));
    int64_t d4[4] = {1, 1, 1, 1};
    for (int k = 0; k < t->ndim; k++)
        d4[4 - t->ndim + k] = t->dim[k];
    int64_t od[4] = {d4[0], d4[3], d4[1], d4[2]};
    float *v = malloc(sizeof(float) * (size_t)cnt);
    if (!v)
        return eng_fail(e->d, ENG_ENOMEM, "onnx export: out of memory"), NULL;
    const float *s = eng_f32(t);
    for (int64_t a = 0; a < d4[0]; a++)
        for (int64_t h = 0; h < d4[1]; h++)
            for (int64_t w = 0; w < d4[2]; w++)
                for (int64_t c = 0; c < d4[3]; c++)
                    v[((a * d4[3] + c) * d4[1] + h) * d4[2] + w] =
                        s[((a * d4[1] + h) * d4[2] + w) * d4[3] + c];
    const char *r = onnx_init_f32(e->b, nm, 4, od, v);
    free(v);
    return r;
}

const char *eng_onnx_act(onnx_b *b, const char *x, eng_act act, const char *out)
{
    switch (act) {
    case ENG_ACT_NONE: return out ? onnx_op1(b, "Identity", out, &x, 1) : x;
    case ENG_ACT_RELU: return onnx_op1(b, "Relu", out, &x, 1);
    case ENG_ACT_RELU6: {
        float z = 0.0f, six = 6.0f;
        const char *in[3] = {x, onnx_init_f32(b, "const_0", 0, NULL, &z),
                             onnx_init_f32(b, "const_6", 0, NULL, &six)};
        return onnx_op1(b, "Clip", out, in, 3);
    }
    case ENG_ACT_SIGMOID: return onnx_op1(b, "Sigmoid", out, &x, 1);
    case ENG_ACT_HSWISH:
    case ENG_ACT_HSWISH_F16: {
        /* (x * (1/6)) * relu6(x + 3), in that order */
        float three = 3.0f, sixth = act == ENG_ACT_HSWISH ? 1.0f / 6.0f : 0.1666259765625f;
        const char *a[2] = {x, onnx_init_f32(b, "const_3", 0, NULL, &three)};
        const char *p = onnx_op1(b, "Add", NULL, a, 2);
        const char *r = eng_onnx_act(b, p, ENG_ACT_RELU6, NULL);
        const char *m1[2] = {
            x, onnx_init_f32(b, act == ENG_ACT_HSWISH ? "const_sixth" : "const_sixth_f16", 0, NULL,
                             &sixth)};
        const char *q = onnx_op1(b, "Mul", NULL, m1, 2);
        const char *m2[2] = {q, r};
        return onnx_op1(b, "Mul", out, m2, 2);
    }
    }
    return NULL;
}

static eng_status emit_conv(emit *e, const rt_node *n, const char *out, int depthwise)
{
    const char *x = data_name(e, n, 0);
    const eng_tensor *w = const_in(e, n, 1), *xs = shape_of(e, n->in[0]);
    if (!x)
        return ENG_EUNSUPPORTED;
    if (!w || w->dtype != ENG_F32 || w->ndim != 4 || n->a.residual)
        return eng_fail(e->d, ENG_EUNSUPPORTED,
                        "onnx export: node '%s' (%s): filter is not a constant 4-D float tensor",
                        n->name, n->op->name);
    int64_t kh = w->dim[0], kw = w->dim[1], ci = w->dim[2], co = w->dim[3];
    int64_t cout = depthwise ? ci * co : co;
    eng_conv_geom g;
    eng_status st =
        eng_conv_geom_init(&g, 1, (int)xs->dim[1], (int)xs->dim[2], (int)xs->dim[3], (int)cout,
                           (int)kh, (int)kw, n->a.stride[0], n->a.stride[1], n->a.dilation[0],
                           n->a.dilation[1], n->a.padding, n->a.pads, e->d);
    if (st)
        return st;
    float *v = malloc(sizeof(float) * (size_t)(kh * kw * ci * co));
    if (!v)
        return eng_fail(e->d, ENG_ENOMEM, "onnx export: out of memory");
    const float *s = eng_f32(w);
    int64_t od[4];
    if (!depthwise) { /* HWIO -> OIHW */
        od[0] = co, od[1] = ci, od[2] = kh, od[3] = kw;
        for (int64_t h = 0; h < kh; h++)
            for (int64_t q = 0; q < kw; q++)
                for (int64_t i = 0; i < ci; i++)
                    for (int64_t o = 0; o < co; o++)
                        v[((o * ci + i) * kh + h) * kw + q] = s[((h * kw + q) * ci + i) * co + o];
    } else { /* [KH,KW,C,M] -> [C*M,1,KH,KW] */
        od[0] = ci * co, od[1] = 1, od[2] = kh, od[3] = kw;
        for (int64_t h = 0; h < kh; h++)
            for (int64_t q = 0; q < kw; q++)
                for (int64_t c = 0; c < ci; c++)
                    for (int64_t mm = 0; mm < co; mm++)
                        v[((c * co + mm) * kh + h) * kw + q] = s[((h * kw + q) * ci + c) * co + mm];
    }
    char buf[512];
    const char *in[3] = {x, onnx_init_f32(e->b, wname(e, n->name, "/W", buf, sizeof buf), 4, od, v),
                         NULL};
    free(v);
    int nin = 2;
    if (n->a.has_bias) {
        const eng_tensor *bt = const_in(e, n, 2);
        if (!bt || bt->dtype != ENG_F32 || rt_numel(bt) != cout)
            return eng_fail(e->d, ENG_EUNSUPPORTED, "onnx export: node '%s': bias not constant",
                            n->name);
        int64_t bd = cout;
        in[nin++] =
            onnx_init_f32(e->b, wname(e, n->name, "/B", buf, sizeof buf), 1, &bd, eng_f32(bt));
    }
    const char *co_name = n->a.act == ENG_ACT_NONE ? out : onnx_name(e->b, "conv");
    onnx_node *c = onnx_op(e->b, "Conv", in, nin, &co_name, 1);
    int64_t ks[2] = {kh, kw}, strides[2] = {n->a.stride[0], n->a.stride[1]},
            dil[2] = {n->a.dilation[0], n->a.dilation[1]},
            pads[4] = {g.pad_top, g.pad_left, g.pad_bottom, g.pad_right};
    onnx_attr_ints(e->b, c, "kernel_shape", 2, ks);
    onnx_attr_ints(e->b, c, "strides", 2, strides);
    onnx_attr_ints(e->b, c, "dilations", 2, dil);
    onnx_attr_ints(e->b, c, "pads", 4, pads);
    onnx_attr_int(e->b, c, "group", depthwise ? ci : 1);
    if (n->a.act != ENG_ACT_NONE)
        eng_onnx_act(e->b, co_name, n->a.act, out);
    return ENG_OK;
}

static eng_status emit_node(emit *e, const rt_node *n, const char *out)
{
    eng_diag *d = e->d;
    onnx_b *b = e->b;
    char buf[512];
    if (rt_is_op(n, "Conv2D") || rt_is_op(n, "_FusedConv2D"))
        return emit_conv(e, n, out, 0);
    if (rt_is_op(n, "DepthwiseConv2dNative") || rt_is_op(n, "FusedDepthwiseConv2dNative"))
        return emit_conv(e, n, out, 1);
    static const char *const bin[][2] = {{"Add", "Add"},     {"AddV2", "Add"},  {"BiasAdd", "Add"},
                                         {"Sub", "Sub"},     {"Mul", "Mul"},    {"RealDiv", "Div"},
                                         {"Maximum", "Max"}, {"Minimum", "Min"}};
    for (size_t k = 0; k < sizeof bin / sizeof bin[0]; k++) {
        if (!rt_is_op(n, bin[k][0]))
            continue;
        const char *in[2];
        for (int i = 0; i < 2; i++) {
            in[i] = const_in(e, n, i) ? const_operand(e, n, i) : data_name(e, n, i);
            if (!in[i])
                return ENG_EUNSUPPORTED; /* d says why */
        }
        return onnx_op1(b, bin[k][1], out, in, 2) ? ENG_OK : ENG_ENOMEM;
    }
    static const struct {
        const char *op;
        eng_act act;
    } un[] = {{"Identity", ENG_ACT_NONE},
              {"Relu", ENG_ACT_RELU},
              {"Relu6", ENG_ACT_RELU6},
              {"Sigmoid", ENG_ACT_SIGMOID}};
    for (size_t k = 0; k < sizeof un / sizeof un[0]; k++) {
        if (!rt_is_op(n, un[k].op))
            continue;
        const char *x = data_name(e, n, 0);
        if (!x)
            return ENG_EUNSUPPORTED;
        return eng_onnx_act(b, x, un[k].act, out) ? ENG_OK : ENG_ENOMEM;
    }
    if (rt_is_op(n, "Mean")) {
        const char *x = data_name(e, n, 0);
        const eng_tensor *ax = const_in(e, n, 1);
        if (!x)
            return ENG_EUNSUPPORTED;
        if (!ax || ax->dtype != ENG_I32 || !n->a.keep_dims || rt_numel(ax) > 4)
            return eng_fail(d, ENG_EUNSUPPORTED,
                            "onnx export: node '%s' (Mean): axes must be constant, keep_dims true",
                            n->name);
        int64_t axes[4];
        int na = (int)rt_numel(ax);
        for (int i = 0; i < na; i++) {
            int a = ((const int32_t *)ax->data)[i];
            axes[i] = nchw_axis[(a + 4) % 4];
        }
        onnx_node *r = onnx_op(b, "ReduceMean", &x, 1, &out, 1);
        onnx_attr_ints(b, r, "axes", na, axes);
        onnx_attr_int(b, r, "keepdims", 1);
        return ENG_OK;
    }
    if (rt_is_op(n, "ResizeBilinear")) {
        const char *x = data_name(e, n, 0);
        if (!x)
            return ENG_EUNSUPPORTED;
        const eng_tensor *is = shape_of(e, n->in[0]),
                         *os = &e->shp[(size_t)(n - e->m->nodes) * RT_MAX_OUT];
        float sc[4] = {1.0f, 1.0f, (float)os->dim[1] / (float)is->dim[1],
                       (float)os->dim[2] / (float)is->dim[2]};
        if ((int64_t)(is->dim[1] * sc[2]) != os->dim[1] ||
            (int64_t)(is->dim[2] * sc[3]) != os->dim[2])
            return eng_fail(
                d, ENG_EUNSUPPORTED,
                "onnx export: node '%s' (ResizeBilinear): %lldx%lld -> %lldx%lld is not "
                "an exact float scale",
                n->name, (long long)is->dim[1], (long long)is->dim[2], (long long)os->dim[1],
                (long long)os->dim[2]);
        int64_t four = 4;
        const char *in[3] = {
            x, "", onnx_init_f32(b, wname(e, n->name, "/scales", buf, sizeof buf), 1, &four, sc)};
        onnx_node *r = onnx_op(b, "Resize", in, 3, &out, 1);
        onnx_attr_str(b, r, "mode", "linear");
        onnx_attr_str(b, r, "coordinate_transformation_mode",
                      n->a.align_corners ? "align_corners"
                      : n->a.half_pixel  ? "half_pixel"
                                         : "asymmetric");
        return ENG_OK;
    }
    if (rt_is_op(n, "ConcatV2")) {
        int nd = n->n_in - 1;
        const eng_tensor *ax = const_in(e, n, nd);
        int64_t a;
        if (!ax || rt_scalar_int(ax, &a) || a < -4 || a > 3 || nd > 64)
            return eng_fail(d, ENG_EUNSUPPORTED, "onnx export: node '%s' (ConcatV2): axis",
                            n->name);
        const char *in[64];
        for (int i = 0; i < nd; i++)
            if (!(in[i] = data_name(e, n, i)))
                return ENG_EUNSUPPORTED;
        onnx_node *r = onnx_op(b, "Concat", in, nd, &out, 1);
        onnx_attr_int(b, r, "axis", nchw_axis[(a + 4) % 4]);
        return ENG_OK;
    }
    if (rt_is_op(n, "MaxPool")) {
        const char *x = data_name(e, n, 0);
        if (!x)
            return ENG_EUNSUPPORTED;
        const eng_tensor *xs = shape_of(e, n->in[0]);
        eng_conv_geom g;
        eng_status st =
            eng_conv_geom_init(&g, 1, (int)xs->dim[1], (int)xs->dim[2], (int)xs->dim[3],
                               (int)xs->dim[3], n->a.ksize[0], n->a.ksize[1], n->a.stride[0],
                               n->a.stride[1], 1, 1, n->a.padding, n->a.pads, d);
        if (st)
            return st;
        onnx_node *r = onnx_op(b, "MaxPool", &x, 1, &out, 1);
        int64_t ks[2] = {n->a.ksize[0], n->a.ksize[1]}, s2[2] = {n->a.stride[0], n->a.stride[1]},
                pads[4] = {g.pad_top, g.pad_left, g.pad_bottom, g.pad_right};
        onnx_attr_ints(b, r, "kernel_shape", 2, ks);
        onnx_attr_ints(b, r, "strides", 2, s2);
        onnx_attr_ints(b, r, "pads", 4, pads);
        return ENG_OK;
    }
    return eng_fail(d, ENG_EUNSUPPORTED, "onnx export: node '%s': op %s has no ONNX translation",
                    n->name, n->op->name);
}

eng_status eng_model_emit_onnx(const eng_model *m, struct onnx_b *b, const char *input, int h,
                               int w, const char *const *outputs, int n_outputs, const char *prefix,
                               const char *wprefix, const char **out_names, eng_diag *d)
{
    int n = m->n_nodes;
    int64_t ind[4] = {1, h, w, m->nodes[m->input_node].decl_dim[3]};
    if (m->nodes[m->input_node].decl_ndim != 4 || ind[3] < 1)
        return eng_fail(d, ENG_EUNSUPPORTED, "onnx export: the graph's input is not NHWC");
    eng_tensor *shp = NULL;
    eng_status st = rt_infer_for(m, 4, ind, outputs, n_outputs, &shp, d);
    if (st)
        return st;
    emit e = {.m = m, .b = b, .shp = shp, .prefix = prefix, .wprefix = wprefix, .d = d};
    e.name = calloc((size_t)n * RT_MAX_OUT, sizeof *e.name);
    unsigned char *need = calloc((size_t)n, 1);
    int *stack = malloc(sizeof(int) * (size_t)(n + 1));
    if (!e.name || !need || !stack) {
        st = eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
        goto out;
    }
    int sp = 0;
    for (int i = 0; i < n_outputs; i++) {
        int k = rt_find_node(m, outputs[i], strlen(outputs[i]));
        if (k < 0) {
            st = eng_fail(d, ENG_ENOTFOUND, "onnx export: no node '%s'", outputs[i]);
            goto out;
        }
        if (!need[k]) {
            need[k] = 1;
            stack[sp++] = k;
        }
    }
    while (sp > 0) {
        const rt_node *nd = &m->nodes[stack[--sp]];
        for (int i = 0, di = data_inputs(nd); i < di; i++) {
            int k = nd->in[i].node;
            if (!need[k] && !m->nodes[k].value) {
                need[k] = 1;
                stack[sp++] = k;
            }
        }
    }
    for (int oi = 0; oi < n && st == ENG_OK; oi++) {
        int k = m->order[oi];
        const rt_node *nd = &m->nodes[k];
        if (!need[k])
            continue;
        if (k == m->input_node) {
            e.name[(size_t)k * RT_MAX_OUT] = input;
            continue;
        }
        if (nd->op->n_out != 1) {
            st = eng_fail(d, ENG_EUNSUPPORTED, "onnx export: node '%s' (%s) has several outputs",
                          nd->name, nd->op->name);
            break;
        }
        char nm[600];
        snprintf(nm, sizeof nm, "%s%s", prefix, nd->name);
        const char *out = onnx_name(b, nm);
        if (!out) {
            st = eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
            break;
        }
        st = emit_node(&e, nd, out);
        e.name[(size_t)k * RT_MAX_OUT] = out;
    }
    for (int i = 0; st == ENG_OK && i < n_outputs; i++) {
        int k = rt_find_node(m, outputs[i], strlen(outputs[i]));
        if (shp[(size_t)k * RT_MAX_OUT].ndim != 4)
            st =
                eng_fail(d, ENG_EUNSUPPORTED, "onnx export: tap '%s' is not a 4-D map", outputs[i]);
        out_names[i] = e.name[(size_t)k * RT_MAX_OUT];
    }
out:
    free(stack);
    free(need);
    free(e.name);
    free(shp);
    return st;
}
