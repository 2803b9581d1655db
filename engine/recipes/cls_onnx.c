/* cls_onnx.c: a classifier as one ONNX model (eng_classifier_export_onnx).
 *
 * Design: the same steps as cls_model_probs, as graph nodes: each distinct
 * view size is an input (uint8 NHWC RGB, already squash-resized by the
 * caller exactly as predict/ resizes: Pillow-style 8-bit bilinear), cast to
 * float, mapped to the backbone's pixel range, transposed to NCHW; each
 * (backbone, size) group runs its backbone once (eng_model_emit_onnx) to the
 * taps of its views; each view is mean-pooled, signed-powered, centred,
 * L2-normalised and weighted; the concatenation goes through the linear head
 * and softmax. A fine-tuned tail runs from its tap (convolutions with SAME
 * padding, adds, activations), is mean-pooled, goes through its dense layer
 * and softmax, and is averaged with the linear head's probabilities when the
 * model says so (ft_mix). Inputs: `image` at the first view's size, then
 * `image_S` for every other size, in first-use order. */
#include "classify_int.h"

#include "onnx_write.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZES (CLS_MAX_VIEWS + 1)

typedef struct cx {
    onnx_b *b;
    int nsize;
    int size[MAX_SIZES];
    char input[MAX_SIZES][32];
    const char *nchw[MAX_SIZES][3]; /* NCHW float input per size and pixel range */
} cx;

static int size_index(cx *c, int s)
{
    for (int i = 0; i < c->nsize; i++)
        if (c->size[i] == s)
            return i;
    if (c->nsize == MAX_SIZES)
        return -1;
    c->size[c->nsize] = s;
    if (c->nsize == 0)
        snprintf(c->input[0], sizeof c->input[0], "image");
    else
        snprintf(c->input[c->nsize], sizeof c->input[0], "image_%d", s);
    return c->nsize++;
}

/* the float NCHW input at size index si for pixel range px (the same
 * float values as resize.c's table: i, i / 255, i / 127.5 - 1) */
static const char *pixels_in(cx *c, int si, eng_pixels px)
{
    if (c->nchw[si][px])
        return c->nchw[si][px];
    onnx_b *b = c->b;
    const char *in = c->input[si];
    onnx_node *n;
    const char *x = onnx_opx(b, "Cast", &in, 1, &n);
    onnx_attr_int(b, n, "to", ONNX_FLOAT);
    if (px == ENG_PIX_0_1)
        x = onnx_bin(b, "Div", x, onnx_scalar(b, "const_255", 255.0f));
    else if (px == ENG_PIX_M1_1)
        x = onnx_bin(b, "Sub", onnx_bin(b, "Div", x, onnx_scalar(b, "const_127_5", 127.5f)),
                     onnx_scalar(b, "const_1", 1.0f));
    x = onnx_opx(b, "Transpose", &x, 1, &n);
    int64_t perm[4] = {0, 3, 1, 2};
    onnx_attr_ints(b, n, "perm", 4, perm);
    return c->nchw[si][px] = x;
}

/* mean over H and W of an NCHW map: [N, C] */
static const char *gap(onnx_b *b, const char *x)
{
    onnx_node *n;
    const char *r = onnx_opx(b, "ReduceMean", &x, 1, &n);
    int64_t axes[2] = {2, 3};
    onnx_attr_ints(b, n, "axes", 2, axes);
    onnx_attr_int(b, n, "keepdims", 0);
    return r;
}

static const char *softmax(onnx_b *b, const char *x, const char *out)
{
    onnx_node *n = onnx_op(b, "Softmax", &x, 1, &out, 1);
    onnx_attr_int(b, n, "axis", 1);
    return n ? out : NULL;
}

/* the linear head's probabilities (out: the name of the result): softmax
 * over the categories, or (multilabel) an independent sigmoid per tag */
static eng_status linear_head(const eng_classifier *m, const eng_backbone *const *rb, cx *c,
                              int multilabel, const char *out, eng_diag *d)
{
    onnx_b *b = c->b;
    const char *vec[CLS_MAX_VIEWS] = {0};
    int done[CLS_MAX_VIEWS] = {0};
    char buf[256];
    for (int v0 = 0; v0 < m->nviews; v0++) {
        if (done[v0])
            continue;
        const cls_view *w0 = &m->views[v0];
        const char *taps[CLS_MAX_VIEWS], *maps[CLS_MAX_VIEWS];
        int members[CLS_MAX_VIEWS], nt = 0;
        for (int v = v0; v < m->nviews; v++)
            if (!done[v] && m->views[v].bb == w0->bb && m->views[v].size == w0->size) {
                done[v] = 1;
                members[nt] = v;
                taps[nt++] = m->views[v].tap;
            }
        const eng_backbone *bb = rb[w0->bb];
        const eng_backbone_info *inf = eng_backbone_get_info(bb);
        int si = size_index(c, w0->size);
        if (si < 0)
            return eng_fail(d, ENG_EUNSUPPORTED, "onnx export: too many view sizes");
        char prefix[160], wprefix[160];
        snprintf(prefix, sizeof prefix, "%s@%d/", inf->name, w0->size);
        snprintf(wprefix, sizeof wprefix, "%s/", inf->name);
        eng_status st =
            eng_model_emit_onnx(eng_backbone_model(bb), b, pixels_in(c, si, inf->pixels), w0->size,
                                w0->size, taps, nt, prefix, wprefix, maps, d);
        if (st != ENG_OK)
            return st;
        for (int t = 0; t < nt; t++) {
            const cls_view *vw = &m->views[members[t]];
            const char *x = gap(b, maps[t]);
            if (vw->power != 1.0f) {
                snprintf(buf, sizeof buf, "view%d.power", members[t]);
                const char *sg = onnx_opx(b, "Sign", &x, 1, NULL);
                const char *ab = onnx_opx(b, "Abs", &x, 1, NULL);
                x = onnx_bin(b, "Mul", sg, onnx_bin(b, "Pow", ab, onnx_scalar(b, buf, vw->power)));
            }
            int64_t dim = vw->dim;
            snprintf(buf, sizeof buf, "view%d.mean", members[t]);
            x = onnx_bin(b, "Sub", x, onnx_init_f32(b, buf, 1, &dim, vw->mean));
            onnx_node *n;
            const char *nrm = onnx_opx(b, "ReduceL2", &x, 1, &n);
            int64_t ax = 1;
            onnx_attr_ints(b, n, "axes", 1, &ax);
            onnx_attr_int(b, n, "keepdims", 1);
            /* a zero vector stays zero: its norm is replaced by a tiny one */
            nrm = onnx_bin(b, "Max", nrm, onnx_scalar(b, "const_tiny", 1e-30f));
            const char *k = onnx_bin(b, "Div", onnx_scalar(b, "view_weight", m->view_weight), nrm);
            vec[members[t]] = onnx_bin(b, "Mul", x, k);
        }
    }
    onnx_node *n;
    const char *x = m->nviews == 1 ? vec[0] : onnx_opx(b, "Concat", vec, m->nviews, &n);
    if (m->nviews > 1)
        onnx_attr_int(b, n, "axis", 1);
    int64_t wd[2] = {m->dim, m->ncat}, bd = m->ncat;
    x = onnx_bin(b, "MatMul", x, onnx_init_f32(b, "head.weight", 2, wd, m->w));
    x = onnx_bin(b, "Add", x, onnx_init_f32(b, "head.bias", 1, &bd, m->b));
    if (multilabel)
        onnx_op(b, "Sigmoid", &x, 1, &out, 1);
    else
        softmax(b, x, out);
    return ENG_OK;
}

/* the fine-tuned tail's probabilities */
static eng_status tail_head(const eng_classifier *m, const eng_backbone *const *rb, cx *c,
                            const char *out, eng_diag *d)
{
    onnx_b *b = c->b;
    const cls_ft *s = m->ft;
    const eng_backbone *bb = rb[m->ft_bb];
    const eng_backbone_info *inf = eng_backbone_get_info(bb);
    const char *tap = cls_model_ft_tap(m, bb);
    if (!tap)
        return eng_fail(d, ENG_EUNSUPPORTED, "onnx export: the backbone has no stride-32 tap");
    int si = size_index(c, m->ft_size);
    if (si < 0)
        return eng_fail(d, ENG_EUNSUPPORTED, "onnx export: too many view sizes");
    char prefix[160], wprefix[160], buf[300];
    snprintf(prefix, sizeof prefix, "%s@%d/", inf->name, m->ft_size);
    snprintf(wprefix, sizeof wprefix, "%s/", inf->name);
    const char *map = NULL;
    eng_status st = eng_model_emit_onnx(eng_backbone_model(bb), b, pixels_in(c, si, inf->pixels),
                                        m->ft_size, m->ft_size, &tap, 1, prefix, wprefix, &map, d);
    if (st != ENG_OK)
        return st;
    int h = m->ft_size, w = m->ft_size, ch = 0;
    if ((st = cls_ft_map_shape(bb, tap, m->ft_size, &h, &w, &ch, d)) != ENG_OK)
        return st;
    const char **val = calloc((size_t)s->nnodes, sizeof *val);
    int *hh = calloc((size_t)s->nnodes * 2, sizeof *hh);
    if (!val || !hh) {
        free(val);
        free(hh);
        return eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
    }
    for (int i = 0; i < s->nnodes && st == ENG_OK; i++) {
        const cls_ft_node *nd = &s->node[i];
        const char *x0 = nd->in[0] < 0 ? map : val[nd->in[0]];
        int ih = nd->in[0] < 0 ? h : hh[2 * nd->in[0]],
            iw = nd->in[0] < 0 ? w : hh[2 * nd->in[0] + 1];
        if (nd->kind == ENG_NODE_ADD) {
            const char *x1 = nd->in[1] < 0 ? map : val[nd->in[1]];
            val[i] = eng_onnx_act(b, onnx_bin(b, "Add", x0, x1), nd->act, NULL);
            hh[2 * i] = ih, hh[2 * i + 1] = iw;
            continue;
        }
        int dw = nd->kind == ENG_NODE_DEPTHWISE;
        int64_t kh = nd->wdim[0], kw = nd->wdim[1], ci = nd->wdim[2], co = dw ? ci : nd->wdim[3];
        eng_conv_geom g;
        st = eng_conv_geom_init(&g, 1, ih, iw, (int)ci, (int)co, (int)kh, (int)kw, nd->stride,
                                nd->stride, 1, 1, ENG_PAD_SAME, NULL, d);
        if (st != ENG_OK)
            break;
        float *v = malloc(sizeof(float) * (size_t)(kh * kw * ci * (dw ? 1 : co)));
        if (!v) {
            st = eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
            break;
        }
        int64_t od[4] = {co, dw ? 1 : ci, kh, kw};
        for (int64_t y = 0; y < kh; y++)
            for (int64_t q = 0; q < kw; q++)
                for (int64_t a = 0; a < ci; a++)
                    for (int64_t o = 0; o < (dw ? 1 : co); o++) {
                        float wv = nd->w[((y * kw + q) * ci + a) * (dw ? 1 : co) + o];
                        if (dw)
                            v[(a * kh + y) * kw + q] = wv;
                        else
                            v[((o * ci + a) * kh + y) * kw + q] = wv;
                    }
        snprintf(buf, sizeof buf, "finetune.%s.weights", nd->name);
        const char *wn = onnx_init_f32(b, buf, 4, od, v);
        free(v);
        snprintf(buf, sizeof buf, "finetune.%s.bias", nd->name);
        const char *in[3] = {x0, wn, onnx_init_f32(b, buf, 1, &co, nd->b)};
        onnx_node *n;
        const char *y = onnx_opx(b, "Conv", in, 3, &n);
        int64_t ks[2] = {kh, kw}, str[2] = {nd->stride, nd->stride}, dil[2] = {1, 1},
                pads[4] = {g.pad_top, g.pad_left, g.pad_bottom, g.pad_right};
        onnx_attr_ints(b, n, "kernel_shape", 2, ks);
        onnx_attr_ints(b, n, "strides", 2, str);
        onnx_attr_ints(b, n, "dilations", 2, dil);
        onnx_attr_ints(b, n, "pads", 4, pads);
        onnx_attr_int(b, n, "group", dw ? ci : 1);
        val[i] = eng_onnx_act(b, y, nd->act, NULL);
        hh[2 * i] = (int)g.oh, hh[2 * i + 1] = (int)g.ow;
    }
    if (st == ENG_OK) {
        const char *x = gap(b, val[s->nnodes - 1]);
        int64_t wd[2] = {s->cout, s->ncat}, bd = s->ncat;
        x = onnx_bin(b, "MatMul", x, onnx_init_f32(b, "finetune.dense.weights", 2, wd, s->hw));
        x = onnx_bin(b, "Add", x, onnx_init_f32(b, "finetune.dense.bias", 1, &bd, s->hb));
        softmax(b, x, out);
    }
    free(val);
    free(hh);
    return st;
}

eng_status eng_classifier_export_onnx(const eng_classifier *m, eng_backbone *const *bbs, int nbb,
                                      const char *producer_version, uint8_t **out, size_t *len,
                                      eng_diag *d)
{
    return cls_export_onnx(m, NULL, bbs, nbb, producer_version, out, len, d);
}

eng_status cls_export_onnx(const eng_classifier *m, const float *thresholds,
                           eng_backbone *const *bbs, int nbb, const char *producer_version,
                           uint8_t **out, size_t *len, eng_diag *d)
{
    *out = NULL;
    *len = 0;
    const eng_backbone *rb[16];
    if (m->nbb > 16)
        return eng_fail(d, ENG_EUNSUPPORTED, "onnx export: more than 16 backbones");
    for (int i = 0; i < m->nbb; i++) {
        rb[i] = NULL;
        for (int j = 0; j < nbb && !rb[i]; j++) {
            const eng_backbone_info *inf = eng_backbone_get_info(bbs[j]);
            if (!strcmp(inf->name, m->bb_name[i]) && !strcmp(inf->checksum, m->bb_checksum[i]))
                rb[i] = bbs[j];
        }
        if (!rb[i])
            return eng_fail(d, ENG_ENOTFOUND,
                            "onnx export: backbone \"%s\" (checksum %.16s...) is not installed",
                            m->bb_name[i], m->bb_checksum[i]);
    }
    cx c = {.b = onnx_new()};
    if (!c.b)
        return eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
    eng_status st = ENG_OK;
    const char *result = thresholds ? "scores" : "probabilities";
    if (thresholds && m->ft) {
        st = eng_fail(d, ENG_EUNSUPPORTED, "onnx export: a multilabel model has no tail");
    } else if (!m->ft) {
        st = linear_head(m, rb, &c, thresholds != NULL, result, d);
    } else if (!m->ft_mix) {
        st = tail_head(m, rb, &c, "probabilities", d);
    } else {
        st = linear_head(m, rb, &c, 0, "probabilities_linear", d);
        if (st == ENG_OK)
            st = tail_head(m, rb, &c, "probabilities_finetuned", d);
        if (st == ENG_OK) {
            const char *sum =
                onnx_bin(c.b, "Add", "probabilities_linear", "probabilities_finetuned");
            const char *in[2] = {sum, onnx_scalar(c.b, "const_half", 0.5f)};
            onnx_op1(c.b, "Mul", "probabilities", in, 2);
        }
    }
    cJSON *meta = cJSON_CreateArray(), *cats = NULL, *thr = NULL;
    char *inputs = NULL, *catj = NULL, *thrj = NULL;
    if (st == ENG_OK) {
        for (int i = 0; i < c.nsize; i++) {
            int64_t dim[4] = {-1, c.size[i], c.size[i], 3};
            onnx_input(c.b, c.input[i], ONNX_UINT8, 4, dim);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", c.input[i]);
            cJSON_AddNumberToObject(o, "height", c.size[i]);
            cJSON_AddNumberToObject(o, "width", c.size[i]);
            cJSON_AddItemToArray(meta, o);
        }
        int64_t od[2] = {-1, m->ncat};
        onnx_output(c.b, result, ONNX_FLOAT, 2, od);
        cats = cJSON_CreateStringArray((const char *const *)m->cats, m->ncat);
        inputs = cJSON_PrintUnformatted(meta);
        catj = cats ? cJSON_PrintUnformatted(cats) : NULL;
        if (thresholds) {
            thr = cJSON_CreateFloatArray(thresholds, m->ncat);
            thrj = thr ? cJSON_PrintUnformatted(thr) : NULL;
        }
        if (!inputs || !catj || (thresholds && !thrj))
            st = eng_fail(d, ENG_ENOMEM, "onnx export: out of memory");
    }
    if (st == ENG_OK) {
        char sz[64];
        snprintf(sz, sizeof sz, "%d", c.size[0]);
        onnx_meta(c.b, "kind", thresholds ? "multilabel" : "classifier");
        onnx_meta(c.b, "categories", catj);
        if (thresholds)
            onnx_meta(c.b, "thresholds", thrj);
        onnx_meta(c.b, "inputs", inputs);
        onnx_meta(c.b, "input_size", sz);
        onnx_meta(c.b, "input_format", "uint8 RGB, NHWC [N, H, W, 3]");
        onnx_meta(c.b, "resize",
                  "squash bilinear: each input is the whole image (after EXIF orientation) "
                  "resized to its height x width without keeping the aspect, with 8-bit "
                  "bilinear filtering as Pillow's Image.resize(BILINEAR) does");
        onnx_meta(c.b, "outputs",
                  thresholds ? "scores [N, C]: an independent sigmoid per tag, in the order of "
                               "categories; a tag applies when its score reaches its entry "
                               "in thresholds"
                             : "probabilities [N, C]: softmax over categories, in the order "
                               "of categories");
        st = onnx_pack(c.b, thresholds ? "visionfs_multilabel" : "visionfs_classifier",
                       producer_version, out, len, d);
    }
    free(inputs);
    free(catj);
    free(thrj);
    cJSON_Delete(meta);
    cJSON_Delete(cats);
    cJSON_Delete(thr);
    onnx_free(c.b);
    return st;
}
