/* det_onnx.c: a detector as one ONNX model (eng_detector_export_onnx).
 *
 * Design: the steps of predict_one as graph nodes. Input `image` uint8 NHWC
 * [N, 512, 512, 3] (squashed, or letterboxed when the model says so, by the
 * caller) and `image_size` float [N, 2] (width, height of the image the
 * boxes are wanted in: the original's for predict/'s pixels, 512 x 512 for
 * the input's). The backbone runs to the detection features, which are
 * rounded to float16 and back as the engine's feature path does; the box
 * and heatmap heads (depthwise 3x3, 1x1s, sigmoid) run on them and, with
 * flip_average, on their mirror, averaged as det_heads does. Decoding:
 * a cell is a peak when it equals the 3x3 max-pool of its category's map
 * and reaches min_score; the best DET_ONNX_CANDIDATES peaks (score, then
 * HWC index: TopK keeps the lower index first on ties, as the engine's
 * sort) become boxes mapped to image_size and clipped; boxes under half a
 * pixel are dropped; per-category NonMaxSuppression at nms_iou; the first
 * 100 survivors in score order are the output, confidences through the
 * calibration, boxes through the size prior when the model has one.
 * Outputs: boxes [N, 100, 4] (x1, y1, x2, y2), scores [N, 100] (0 on
 * padding rows), categories int64 [N, 100] (-1 on padding),
 * count int64 [N]. */
#include "det_int.h"

#include "onnx_write.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* peaks decoded per image before NMS and the drop of tiny boxes: the
 * engine walks all of them until it has 100 objects; the graph agrees
 * unless more than DET_ONNX_CANDIDATES - 100 of the best peaks are dropped */
#define DET_ONNX_CANDIDATES 2000

static const char *attr_ints_op(onnx_b *b, const char *op, const char *x, const char *key, int n,
                                const int64_t *v)
{
    onnx_node *nd;
    const char *r = onnx_opx(b, op, &x, 1, &nd);
    onnx_attr_ints(b, nd, key, n, v);
    return r;
}

/* 1x1 convolution with weights w [cin, cout] (row-major) and bias */
static const char *conv1x1(onnx_b *b, const char *x, const char *name, int cin, int cout,
                           const float *w, const float *bias)
{
    float *t = malloc(sizeof(float) * (size_t)cin * cout);
    if (!t)
        return NULL;
    for (int i = 0; i < cin; i++)
        for (int o = 0; o < cout; o++)
            t[(size_t)o * cin + i] = w[(size_t)i * cout + o];
    char buf[128];
    int64_t wd[4] = {cout, cin, 1, 1}, bd = cout;
    snprintf(buf, sizeof buf, "%s.weight", name);
    const char *wn = onnx_init_f32(b, buf, 4, wd, t);
    free(t);
    snprintf(buf, sizeof buf, "%s.bias", name);
    const char *in[3] = {x, wn, onnx_init_f32(b, buf, 1, &bd, bias)};
    return onnx_opx(b, "Conv", in, 3, NULL);
}

/* depthwise 3x3, SAME (1 on every side at stride 1), no bias; dw [3,3,F] */
static const char *dw3x3(onnx_b *b, const char *x, const char *name, int f, const float *dw)
{
    float *t = malloc(sizeof(float) * (size_t)f * 9);
    if (!t)
        return NULL;
    for (int k = 0; k < 9; k++)
        for (int c = 0; c < f; c++)
            t[(size_t)c * 9 + k] = dw[(size_t)k * f + c];
    int64_t wd[4] = {f, 1, 3, 3};
    const char *in[2] = {x, onnx_init_f32(b, name, 4, wd, t)};
    free(t);
    onnx_node *n;
    const char *r = onnx_opx(b, "Conv", in, 2, &n);
    int64_t ks[2] = {3, 3}, pads[4] = {1, 1, 1, 1};
    onnx_attr_ints(b, n, "kernel_shape", 2, ks);
    onnx_attr_ints(b, n, "pads", 4, pads);
    onnx_attr_int(b, n, "group", f);
    return r;
}

/* heads_once on NCHW features f: *heat [N,C,H,W], *wh [N,4,H,W] */
static void heads(const eng_detector *m, onnx_b *b, const char *f, const char **heat,
                  const char **wh)
{
    const char *g = dw3x3(b, f, "box.depthwise", m->fdim, m->dw_wh);
    *wh = onnx_bin(b, "Mul", conv1x1(b, g, "box", m->fdim, 4, m->ww, m->bw),
                   onnx_scalar(b, "wh_scale", m->wh_scale));
    const char *x = dw3x3(b, f, "heatmap.depthwise", m->fdim, m->dw_cls);
    int k = m->fdim;
    if (m->hidden > 0) {
        x = conv1x1(b, x, "heatmap.hidden", m->fdim, m->hidden, m->w1, m->b1);
        x = onnx_opx(b, "Relu", &x, 1, NULL);
        k = m->hidden;
    }
    x = conv1x1(b, x, "heatmap", k, m->ncat, m->wc, m->bc);
    *heat = onnx_opx(b, "Sigmoid", &x, 1, NULL);
}

/* x mirrored along W (NCHW axis 3) */
static const char *mirror(onnx_b *b, const char *x)
{
    static const int64_t st[1] = {-1}, en[1] = {INT64_MIN}, ax[1] = {3}, sp[1] = {-1};
    const char *in[5] = {x, onnx_ints(b, "mirror.starts", 1, st),
                         onnx_ints(b, "mirror.ends", 1, en), onnx_ints(b, "mirror.axes", 1, ax),
                         onnx_ints(b, "mirror.steps", 1, sp)};
    return onnx_opx(b, "Slice", in, 5, NULL);
}

static const char *gather(onnx_b *b, const char *op, const char *x, const char *idx, int axis)
{
    onnx_node *n;
    const char *in[2] = {x, idx};
    const char *r = onnx_opx(b, op, in, 2, &n);
    onnx_attr_int(b, n, "axis", axis);
    return r;
}

/* column c of x [N, K, 4] as [N, K] */
static const char *col(onnx_b *b, const char *x, int c)
{
    char nm[32];
    snprintf(nm, sizeof nm, "col%d", c);
    int64_t v = c;
    return gather(b, "Gather", x, onnx_init_i64(b, nm, 0, NULL, &v), 2);
}

/* One axis of step 4b (det_apply_size_prior) on corners lo, hi of an
 * image side `side`: the box keeps its centre and takes the size side x
 * exp((1 - a) log(size / side) + a plog), clipped to [0, side]; the same
 * float operations in the same order as the engine. */
static void prior_axis(onnx_b *b, const char *lo, const char *hi, const char *side,
                       const char *plog, float a, const char **nlo, const char **nhi)
{
    const char *size = onnx_bin(b, "Sub", hi, lo);
    const char *c = onnx_bin(b, "Add", lo, onnx_bin(b, "Div", size, onnx_scalar(b, "const_2", 2)));
    const char *t = onnx_bin(b, "Mul", onnx_scalar(b, "size_weight", a), plog);
    if (a < 1) {
        /* padding rows may be 0 wide: kept finite, then zeroed by the caller */
        const char *share = onnx_bin(b, "Max", onnx_bin(b, "Div", size, side),
                                     onnx_scalar(b, "const_tiny", 1e-30f));
        const char *lg = onnx_opx(b, "Log", &share, 1, NULL);
        t = onnx_bin(b, "Add", onnx_bin(b, "Mul", onnx_scalar(b, "size_keep", 1 - a), lg), t);
    }
    const char *e = onnx_opx(b, "Exp", &t, 1, NULL);
    const char *hs = onnx_bin(b, "Div", onnx_bin(b, "Mul", side, e), onnx_scalar(b, "const_2", 2));
    *nlo = onnx_bin(b, "Max", onnx_scalar(b, "const_0", 0), onnx_bin(b, "Sub", c, hs));
    *nhi = onnx_bin(b, "Min", side, onnx_bin(b, "Add", c, hs));
}

static eng_status build(const eng_detector *m, const eng_backbone *bb, onnx_b *b, eng_diag *d)
{
    const eng_backbone_info *inf = eng_backbone_get_info(bb);
    onnx_node *n;
    /* input to NCHW floats in the backbone's pixel range */
    const char *in = "image";
    const char *x = onnx_opx(b, "Cast", &in, 1, &n);
    onnx_attr_int(b, n, "to", ONNX_FLOAT);
    if (inf->pixels == ENG_PIX_0_1)
        x = onnx_bin(b, "Div", x, onnx_scalar(b, "const_255", 255.0f));
    else if (inf->pixels == ENG_PIX_M1_1)
        x = onnx_bin(b, "Sub", onnx_bin(b, "Div", x, onnx_scalar(b, "const_127_5", 127.5f)),
                     onnx_scalar(b, "const_1", 1.0f));
    static const int64_t to_nchw[4] = {0, 3, 1, 2}, to_nhwc[4] = {0, 2, 3, 1};
    x = attr_ints_op(b, "Transpose", x, "perm", 4, to_nchw);
    char prefix[160], wprefix[160];
    snprintf(prefix, sizeof prefix, "%s@%d/", inf->name, DET_SIZE);
    snprintf(wprefix, sizeof wprefix, "%s/", inf->name);
    const char *node = m->feat_node, *f = NULL;
    eng_status st = eng_model_emit_onnx(eng_backbone_model(bb), b, x, DET_SIZE, DET_SIZE, &node, 1,
                                        prefix, wprefix, &f, d);
    if (st != ENG_OK)
        return st;
    /* the engine keeps detection features as float16 */
    f = onnx_opx(b, "Cast", &f, 1, &n);
    onnx_attr_int(b, n, "to", 10); /* FLOAT16 */
    f = onnx_opx(b, "Cast", &f, 1, &n);
    onnx_attr_int(b, n, "to", ONNX_FLOAT);
    const char *heat, *wh;
    heads(m, b, f, &heat, &wh);
    if (m->flip_average) {
        const char *h2, *w2;
        heads(m, b, mirror(b, f), &h2, &w2);
        const char *half = onnx_scalar(b, "const_half", 0.5f);
        heat = onnx_bin(b, "Mul", onnx_bin(b, "Add", heat, mirror(b, h2)), half);
        static const int64_t swap[4] = {2, 1, 0, 3}; /* l, t, r, b <- r', t', l', b' */
        const char *w2m = gather(b, "Gather", mirror(b, w2), onnx_ints(b, "lr_swap", 4, swap), 1);
        wh = onnx_bin(b, "Mul", onnx_bin(b, "Add", wh, w2m), half);
    }
    /* peaks: equal to the 3x3 max (MaxPool pads with -inf: the engine skips
     * cells outside) and at least min_score; others score -1 */
    const char *hmax = onnx_opx(b, "MaxPool", &heat, 1, &n);
    static const int64_t k3[2] = {3, 3}, p1[4] = {1, 1, 1, 1};
    onnx_attr_ints(b, n, "kernel_shape", 2, k3);
    onnx_attr_ints(b, n, "pads", 4, p1);
    const char *peak =
        onnx_bin(b, "And", onnx_bin(b, "Equal", heat, hmax),
                 onnx_opx(b, "Not",
                          (const char *[]){
                              onnx_bin(b, "Less", heat, onnx_scalar(b, "min_score", m->min_score))},
                          1, NULL));
    const char *wi[3] = {peak, heat, onnx_scalar(b, "const_m1", -1.0f)};
    const char *sc = onnx_opx(b, "Where", wi, 3, NULL);
    /* HWC order flattened: index (y * W + x) * C + k, as eng_det_decode */
    static const int64_t flat[2] = {0, -1}, cells4[3] = {0, -1, 4};
    sc = onnx_bin(b, "Reshape", attr_ints_op(b, "Transpose", sc, "perm", 4, to_nhwc),
                  onnx_ints(b, "shape_flat", 2, flat));
    int64_t total = (int64_t)DET_CELLS * m->ncat;
    int64_t k0 = total < DET_ONNX_CANDIDATES ? total : DET_ONNX_CANDIDATES;
    const char *tk_in[2] = {sc, onnx_ints(b, "k_candidates", 1, &k0)};
    const char *tk_out[2] = {onnx_name(b, "cand_score"), onnx_name(b, "cand_index")};
    n = onnx_op(b, "TopK", tk_in, 2, tk_out, 2);
    onnx_attr_int(b, n, "axis", 1);
    onnx_attr_int(b, n, "sorted", 1);
    const char *cs = tk_out[0], *ci = tk_out[1];
    int64_t ncat = m->ncat, grid = DET_GRID;
    const char *cat = onnx_bin(b, "Mod", ci, onnx_init_i64(b, "ncat", 0, NULL, &ncat));
    const char *cell = onnx_bin(b, "Div", ci, onnx_init_i64(b, "ncat", 0, NULL, &ncat));
    const char *gx = onnx_bin(b, "Mod", cell, onnx_init_i64(b, "grid", 0, NULL, &grid));
    const char *gy = onnx_bin(b, "Div", cell, onnx_init_i64(b, "grid", 0, NULL, &grid));
    const char *stride = onnx_scalar(b, "stride", (float)DET_STRIDE);
    const char *px = onnx_bin(b, "Mul", onnx_opx(b, "Cast", &gx, 1, &n), stride);
    onnx_attr_int(b, n, "to", ONNX_FLOAT);
    const char *py = onnx_bin(b, "Mul", onnx_opx(b, "Cast", &gy, 1, &n), stride);
    onnx_attr_int(b, n, "to", ONNX_FLOAT);
    /* distances of the candidates' cells: wh [N,4,H,W] -> [N, H*W, 4] */
    const char *whc = onnx_bin(b, "Reshape", attr_ints_op(b, "Transpose", wh, "perm", 4, to_nhwc),
                               onnx_ints(b, "shape_cells4", 3, cells4));
    static const int64_t unsq2[1] = {2};
    static const int64_t rep[3] = {1, 1, 4};
    /* Unsqueeze in opset 13 takes axes as an input */
    const char *uin[2] = {cell, onnx_ints(b, "axes_2", 1, unsq2)};
    const char *cidx =
        onnx_bin(b, "Tile", onnx_opx(b, "Unsqueeze", uin, 2, NULL), onnx_ints(b, "rep_4", 3, rep));
    const char *dist = gather(b, "GatherElements", whc, cidx, 1); /* [N, K0, 4] */
    /* image scale: sx = 1 / (512 / w) (letterbox: the longer side) */
    static const int64_t c0[1] = {0}, c1[1] = {1};
    const char *size = "image_size";
    const char *iw = gather(b, "Gather", size, onnx_ints(b, "idx0", 1, c0), 1); /* [N,1] */
    const char *ih = gather(b, "Gather", size, onnx_ints(b, "idx1", 1, c1), 1);
    const char *s512 = onnx_scalar(b, "det_size", (float)DET_SIZE);
    const char *one_f = onnx_scalar(b, "const_1", 1.0f);
    const char *sx, *sy;
    if (m->letterbox) {
        const char *side = onnx_bin(b, "Max", iw, ih);
        sx = sy = onnx_bin(b, "Div", one_f, onnx_bin(b, "Div", s512, side));
    } else {
        sx = onnx_bin(b, "Div", one_f, onnx_bin(b, "Div", s512, iw));
        sy = onnx_bin(b, "Div", one_f, onnx_bin(b, "Div", s512, ih));
    }
    const char *zero = onnx_scalar(b, "const_0", 0.0f);
    const char *x1 = onnx_bin(b, "Mul", onnx_bin(b, "Sub", px, col(b, dist, 0)), sx);
    const char *y1 = onnx_bin(b, "Mul", onnx_bin(b, "Sub", py, col(b, dist, 1)), sy);
    const char *x2 = onnx_bin(b, "Mul", onnx_bin(b, "Add", px, col(b, dist, 2)), sx);
    const char *y2 = onnx_bin(b, "Mul", onnx_bin(b, "Add", py, col(b, dist, 3)), sy);
    x1 = onnx_bin(b, "Max", zero, onnx_bin(b, "Min", x1, iw));
    x2 = onnx_bin(b, "Max", zero, onnx_bin(b, "Min", x2, iw));
    y1 = onnx_bin(b, "Max", zero, onnx_bin(b, "Min", y1, ih));
    y2 = onnx_bin(b, "Max", zero, onnx_bin(b, "Min", y2, ih));
    const char *halfpx = onnx_scalar(b, "half_pixel", 0.5f);
    const char *valid =
        onnx_bin(b, "And",
                 onnx_bin(b, "And", onnx_bin(b, "Greater", onnx_bin(b, "Sub", x2, x1), halfpx),
                          onnx_bin(b, "Greater", onnx_bin(b, "Sub", y2, y1), halfpx)),
                 onnx_bin(b, "GreaterOrEqual", cs, zero));
    static const int64_t last[1] = {2};
    const char *u[4];
    const char *corners[4] = {x1, y1, x2, y2};
    for (int i = 0; i < 4; i++) {
        const char *ui[2] = {corners[i], onnx_ints(b, "axes_2", 1, last)};
        u[i] = onnx_opx(b, "Unsqueeze", ui, 2, NULL);
    }
    const char *boxes = onnx_opx(b, "Concat", u, 4, &n); /* [N, K0, 4] */
    onnx_attr_int(b, n, "axis", 2);
    const char *m1 = onnx_scalar(b, "const_m1", -1.0f);
    const char *wv[3] = {valid, cs, m1};
    const char *vs = onnx_opx(b, "Where", wv, 3, NULL); /* [N, K0], -1 when out */
    const char *kept = valid;
    if (m->nms_iou > 0) {
        /* per-category scores [N, C, K0]: the candidate's score in its own
         * category, -1 elsewhere */
        int64_t nc = m->ncat;
        int64_t *range = malloc(sizeof(int64_t) * (size_t)nc);
        if (!range)
            return eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
        for (int64_t i = 0; i < nc; i++)
            range[i] = i;
        int64_t rd[3] = {1, nc, 1};
        const char *cats = onnx_init_i64(b, "category_range", 3, rd, range);
        free(range);
        static const int64_t ax1[1] = {1};
        const char *ci_[2] = {cat, onnx_ints(b, "axes_1", 1, ax1)};
        const char *mine = onnx_bin(b, "Equal", onnx_opx(b, "Unsqueeze", ci_, 2, NULL), cats);
        const char *vi_[2] = {vs, onnx_ints(b, "axes_1", 1, ax1)};
        const char *wc3[3] = {mine, onnx_opx(b, "Unsqueeze", vi_, 2, NULL), m1};
        const char *pc = onnx_opx(b, "Where", wc3, 3, NULL);
        int64_t maxo = ENG_DET_TOPK;
        float iou = m->nms_iou, thr = -0.5f;
        const char *nin[5] = {boxes, pc, onnx_ints(b, "nms_max", 1, &maxo),
                              onnx_init_f32(b, "nms_iou", 1, (int64_t[]){1}, &iou),
                              onnx_init_f32(b, "nms_threshold", 1, (int64_t[]){1}, &thr)};
        const char *sel = onnx_opx(b, "NonMaxSuppression", nin, 5, NULL); /* [M, 3] */
        static const int64_t bc[2] = {0, 2};
        const char *bi = gather(b, "Gather", sel, onnx_ints(b, "sel_cols", 2, bc), 1); /* [M,2] */
        /* kept[n, j] = 1 for each selected (n, j) */
        const char *zeros = onnx_bin(b, "Mul", vs, zero);
        static const int64_t mshape[1] = {-1};
        const char *ones = onnx_bin(
            b, "Add",
            onnx_bin(
                b, "Mul",
                onnx_opx(b, "Cast",
                         (const char *[]){gather(b, "Gather", sel, onnx_ints(b, "idx0", 1, c0), 1)},
                         1, &n),
                zero),
            one_f);
        onnx_attr_int(b, n, "to", ONNX_FLOAT);
        ones = onnx_bin(b, "Reshape", ones, onnx_ints(b, "shape_m", 1, mshape));
        const char *sci[3] = {zeros, bi, ones};
        kept = onnx_opx(b, "ScatterND", sci, 3, NULL);
        kept = onnx_bin(b, "Greater", kept, onnx_scalar(b, "const_half", 0.5f));
    }
    const char *wk[3] = {kept, vs, m1};
    const char *fs = onnx_opx(b, "Where", wk, 3, NULL);
    int64_t kout = k0 < ENG_DET_TOPK ? k0 : ENG_DET_TOPK;
    const char *t2in[2] = {fs, onnx_ints(b, "k_out", 1, &kout)};
    const char *t2out[2] = {onnx_name(b, "out_score"), onnx_name(b, "out_index")};
    n = onnx_op(b, "TopK", t2in, 2, t2out, 2);
    onnx_attr_int(b, n, "axis", 1);
    onnx_attr_int(b, n, "sorted", 1);
    const char *os = t2out[0], *oi = t2out[1];
    const char *ok = onnx_bin(b, "GreaterOrEqual", os, zero);
    /* confidence: sigmoid(a * logit(clamp(p, 1e-7, 1 - 1e-7)) + b) */
    const char *conf = os;
    if (m->calibrated) {
        const char *cl[3] = {os, onnx_scalar(b, "logit_lo", 1e-7f),
                             onnx_scalar(b, "logit_hi", 1.0f - 1e-7f)};
        const char *p = onnx_opx(b, "Clip", cl, 3, NULL);
        const char *lg = onnx_opx(
            b, "Log", (const char *[]){onnx_bin(b, "Div", p, onnx_bin(b, "Sub", one_f, p))}, 1,
            NULL);
        const char *z =
            onnx_bin(b, "Add", onnx_bin(b, "Mul", lg, onnx_scalar(b, "cal_a", m->cal_a)),
                     onnx_scalar(b, "cal_b", m->cal_b));
        conf = onnx_opx(b, "Sigmoid", &z, 1, NULL);
    }
    const char *w1[3] = {ok, conf, zero};
    onnx_op(b, "Where", w1, 3, (const char *[]){"scores"}, 1);
    const char *oi3[2] = {oi, onnx_ints(b, "axes_2", 1, last)};
    const char *bidx =
        onnx_bin(b, "Tile", onnx_opx(b, "Unsqueeze", oi3, 2, NULL), onnx_ints(b, "rep_4", 3, rep));
    const char *ob = gather(b, "GatherElements", boxes, bidx, 1);
    if (m->size_weight > 0 && m->size_prior) {
        /* step 4b on the objects NMS kept: their category's row of the prior */
        int64_t pd[2] = {m->ncat, 2};
        const char *oc = gather(b, "GatherElements", cat, oi, 1); /* [N, 100] */
        const char *pr =
            gather(b, "Gather", onnx_init_f32(b, "box.size_prior", 2, pd, m->size_prior), oc, 0);
        const char *nc[4];
        prior_axis(b, col(b, ob, 0), col(b, ob, 2), iw, col(b, pr, 0), m->size_weight, &nc[0],
                   &nc[2]);
        prior_axis(b, col(b, ob, 1), col(b, ob, 3), ih, col(b, pr, 1), m->size_weight, &nc[1],
                   &nc[3]);
        for (int i = 0; i < 4; i++) {
            const char *ui[2] = {nc[i], onnx_ints(b, "axes_2", 1, last)};
            nc[i] = onnx_opx(b, "Unsqueeze", ui, 2, NULL);
        }
        ob = onnx_opx(b, "Concat", nc, 4, &n); /* [N, 100, 4] */
        onnx_attr_int(b, n, "axis", 2);
    }
    const char *okb[2] = {ok, onnx_ints(b, "axes_2", 1, last)};
    const char *w2[3] = {onnx_opx(b, "Unsqueeze", okb, 2, NULL), ob, zero};
    onnx_op(b, "Where", w2, 3, (const char *[]){"boxes"}, 1);
    int64_t mone = -1;
    const char *w3[3] = {ok, gather(b, "GatherElements", cat, oi, 1),
                         onnx_init_i64(b, "const_m1_i64", 0, NULL, &mone)};
    onnx_op(b, "Where", w3, 3, (const char *[]){"categories"}, 1);
    const char *okc = onnx_opx(b, "Cast", &ok, 1, &n);
    onnx_attr_int(b, n, "to", ONNX_INT64);
    const char *rs[2] = {okc, onnx_ints(b, "axes_1", 1, (const int64_t[]){1})};
    n = onnx_op(b, "ReduceSum", rs, 2, (const char *[]){"count"}, 1);
    onnx_attr_int(b, n, "keepdims", 0);
    return ENG_OK;
}

eng_status eng_detector_export_onnx(const eng_detector *m, eng_backbone *const *bbs, int nbb,
                                    const char *producer_version, uint8_t **out, size_t *len,
                                    eng_diag *d)
{
    *out = NULL;
    *len = 0;
    if (m->tiles > 0) /* the crops and the merge of the views are not in the graph */
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "tiled detectors are not exportable yet (model.safetensors and predict/ "
                        "work; train without tiles for an ONNX file)");
    if (det_crop_on(m)) /* a second network over each object's crop */
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "detectors with a crop classifier (chosen by the search when it "
                        "named the held-out objects better) are not exportable yet "
                        "(model.safetensors and predict/ work)");
    eng_backbone *bb = NULL;
    eng_status st = det_pick_backbone(bbs, nbb, m->bb_name, m->bb_checksum, &bb, d);
    if (st != ENG_OK)
        return st;
    onnx_b *b = onnx_new();
    if (!b)
        return eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
    st = build(m, bb, b, d);
    cJSON *cats = cJSON_CreateStringArray((const char *const *)m->cats, m->ncat);
    char *catj = cats ? cJSON_PrintUnformatted(cats) : NULL;
    if (st == ENG_OK && !catj)
        st = eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
    if (st == ENG_OK) {
        int64_t idim[4] = {-1, DET_SIZE, DET_SIZE, 3}, sdim[2] = {-1, 2};
        int64_t bdim[3] = {-1, ENG_DET_TOPK, 4}, kdim[2] = {-1, ENG_DET_TOPK}, cdim[1] = {-1};
        onnx_input(b, "image", ONNX_UINT8, 4, idim);
        onnx_input(b, "image_size", ONNX_FLOAT, 2, sdim);
        onnx_output(b, "boxes", ONNX_FLOAT, 3, bdim);
        onnx_output(b, "scores", ONNX_FLOAT, 2, kdim);
        onnx_output(b, "categories", ONNX_INT64, 2, kdim);
        onnx_output(b, "count", ONNX_INT64, 1, cdim);
        char sz[32];
        snprintf(sz, sizeof sz, "%d", DET_SIZE);
        onnx_meta(b, "kind", "detector");
        onnx_meta(b, "categories", catj);
        onnx_meta(b, "inputs",
                  "[{\"name\":\"image\",\"height\":512,\"width\":512},{\"name\":\"image_size\","
                  "\"shape\":\"[N, 2]\",\"meaning\":\"width, height the boxes are given in\"}]");
        onnx_meta(b, "input_size", sz);
        onnx_meta(b, "input_format", "uint8 RGB, NHWC [N, H, W, 3]");
        onnx_meta(b, "resize",
                  m->letterbox
                      ? "letterbox then squash bilinear: pad the image (after EXIF orientation) "
                        "to a square with grey 128 at the bottom/right, then resize to 512 x 512 "
                        "with 8-bit bilinear filtering as Pillow's Image.resize(BILINEAR)"
                      : "squash bilinear: the whole image (after EXIF orientation) resized to "
                        "512 x 512 without keeping the aspect, with 8-bit bilinear filtering as "
                        "Pillow's Image.resize(BILINEAR)");
        onnx_meta(b, "outputs",
                  "boxes [N, 100, 4] x1, y1, x2, y2 in image_size pixels; scores [N, 100] "
                  "calibrated confidences, best first; categories [N, 100] indices into "
                  "categories; count [N] valid rows (later rows: score 0, category -1)");
        st = onnx_pack(b, "visionfs_detector", producer_version, out, len, d);
    }
    free(catj);
    cJSON_Delete(cats);
    onnx_free(b);
    return st;
}
