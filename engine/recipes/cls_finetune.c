/* cls_finetune.c: fine-tuning the top of a classification backbone.
 *
 * Design: the backbone is cut at a tap. The part below it runs through the
 * runtime once per image and augmented copy, and its map is cached like
 * other features; the tail above it (convolutions, depthwise convolutions
 * and residual adds up to the embedding node, rebuilt from the graph with
 * eng_model_node) and a dense layer to the categories train on the tape.
 * The taps offered are the block boundaries between the stride-16 tap and
 * the embedding, so a search can fine-tune anything from the last 1x1
 * convolution alone to the whole last stage, and then the network's input
 * (after its normalisation): the whole network on the tape, whose "maps"
 * are the augmented pixels themselves.
 *
 * Copies of an image: 0 the image, 1 its mirror, 2.. random resized crops
 * (35-100 % of the area, aspect 3/4..4/3) mirrored half the time with
 * brightness, contrast and saturation jitter, seeded by the file's content
 * and the training seed so the feature cache serves every later run.
 *
 * Training: the dense layer first gets the logistic regression on the
 * pretrained tail's pooled features (a linear probe), then tail and dense
 * train together with softmax cross-entropy and AdamW, a small rate on the
 * pretrained tail and a larger one on the dense layer (linear probe, then
 * fine-tune: the tail's first steps are not spent undoing a random head).
 * The backbones fold batch norm into the convolutions, so there is no
 * normalisation layer to freeze; the folded biases train as shifts.
 * Scoring uses the same tape forward as training; the tape's kernels are
 * bitwise deterministic whatever the thread count.
 */
#include "classify_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FT_CACHE_TAG "ft2"
#define FT_SCORE_BATCH 16
#define FT_MAX_CHAIN (CLS_FT_MAX_NODES + 32)
#define FT_LP_ITERS 300

/* ---- the tail in the graph ---- */

/* Walks from the embedding back along first inputs while the tape can
 * record the nodes: down to the input's normalisation on the Lite
 * backbones. chain[0] is the embedding, chain[k] the input of chain[k - 1];
 * chain[n] is where the walk stopped (a possible tap). Returns n. */
static int ft_chain(const eng_backbone *bb, const char **chain, eng_node_desc *desc)
{
    const eng_model *m = eng_backbone_model(bb);
    const char *cur = eng_backbone_get_info(bb)->embedding;
    int n = 0;
    while (cur && n < FT_MAX_CHAIN - 1) {
        eng_node_desc nd;
        if (eng_model_node(m, cur, &nd, NULL) != ENG_OK || nd.kind == ENG_NODE_OTHER)
            break;
        chain[n] = cur;
        desc[n++] = nd;
        cur = nd.in[0];
    }
    chain[n] = cur;
    return cur ? n : 0;
}

/* Position of name among chain[0..n], or -1. */
static int chain_find(const char *const *chain, int n, const char *name)
{
    for (int k = 0; k <= n; k++)
        if (chain[k] && strcmp(chain[k], name) == 0)
            return k;
    return -1;
}

/* Nonzero when the tail chain[0..j-1] reads nothing below chain[j]. */
static int valid_cut(const char *const *chain, const eng_node_desc *desc, int j)
{
    for (int k = 0; k < j; k++)
        for (int i = 0; i < desc[k].n_in; i++) {
            int at = chain_find(chain, j, desc[k].in[i]);
            if (at < 0 || at <= k)
                return 0;
        }
    return 1;
}

static int act_ok(eng_act a)
{
    return a == ENG_ACT_NONE || a == ENG_ACT_RELU || a == ENG_ACT_RELU6 || a == ENG_ACT_HSWISH ||
           a == ENG_ACT_SIGMOID;
}

/* Forward GFLOP of one image from the input to node (at size). */
static double gflop_to(const eng_backbone *bb, const char *node, int size)
{
    int64_t in[4] = {1, size, size, 3}, od[1][ENG_MAX_DIMS];
    int ond[1];
    double f = 0;
    const char *outs[1] = {node};
    if (eng_model_shapes(eng_backbone_model(bb), 4, in, outs, 1, od, ond, &f, NULL) != ENG_OK)
        return 0;
    return f * 1e-9;
}

int cls_ft_taps(const eng_backbone *bb, int size, const char **taps, double *tail_gflop, int max)
{
    const char *chain[FT_MAX_CHAIN];
    eng_node_desc desc[FT_MAX_CHAIN];
    int n = ft_chain(bb, chain, desc), nt = 0;
    if (n < 1 || desc[0].kind != ENG_NODE_CONV)
        return 0; /* the embedding must be a convolution */
    const char *stop = eng_backbone_field(bb, "taps.stride16");
    int s16 = stop ? chain_find(chain, n, stop) : -1;
    double top = tail_gflop ? gflop_to(bb, chain[0], size) : 0;
    for (int j = 1; j <= n && nt < max; j++) {
        int ok = 1;
        for (int k = 0; k < j && ok; k++)
            ok = act_ok(desc[k].act);
        if (!ok)
            break;
        /* block boundaries down to the stride-16 tap, then only the input */
        eng_node_desc td = {0};
        eng_model_node(eng_backbone_model(bb), chain[j], &td, NULL);
        int boundary = s16 < 0 || j <= s16 ? j == 1 || td.kind == ENG_NODE_ADD || j == s16
                                           : j == n && n <= CLS_FT_MAX_NODES;
        if (!boundary || !valid_cut(chain, desc, j))
            continue;
        if (tail_gflop)
            tail_gflop[nt] = top - gflop_to(bb, chain[j], size);
        taps[nt++] = chain[j];
    }
    return nt;
}

eng_status cls_ft_map_shape(const eng_backbone *bb, const char *tap, int size, int *h, int *w,
                            int *cin, eng_diag *d)
{
    *h = *w = *cin = 0;
    int64_t in[4] = {1, size, size, 3}, od[1][ENG_MAX_DIMS];
    int ond[1];
    const char *outs[1] = {tap};
    eng_status st = eng_model_shapes(eng_backbone_model(bb), 4, in, outs, 1, od, ond, NULL, d);
    if (st != ENG_OK)
        return st;
    if (ond[0] != 4)
        return eng_fail(d, ENG_EUNSUPPORTED, "tap \"%s\": not a spatial map", tap);
    *h = (int)od[0][1];
    *w = (int)od[0][2];
    *cin = (int)od[0][3];
    return ENG_OK;
}

static void node_names(cls_ft_node *nd)
{
    snprintf(nd->wname, sizeof nd->wname, "finetune.%s.weights", nd->name);
    snprintf(nd->bname, sizeof nd->bname, "finetune.%s.bias", nd->name);
}

/* Allocates s's nodes and dense layer for nnodes nodes. */
static eng_status ft_alloc(cls_ft *s, int nnodes, int cout, int ncat, eng_diag *d)
{
    s->nnodes = nnodes;
    s->cout = cout;
    s->ncat = ncat;
    s->node = calloc((size_t)nnodes, sizeof *s->node);
    s->hw = calloc((size_t)cout * ncat, sizeof(float));
    s->hb = calloc((size_t)ncat, sizeof(float));
    if (!s->node || !s->hw || !s->hb) {
        cls_ft_free(s);
        return eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
    }
    return ENG_OK;
}

/* Copies weights (and bias, zero when NULL) into node nd. */
static eng_status node_weights(cls_ft_node *nd, const eng_tensor *w, const eng_tensor *b,
                               eng_diag *d)
{
    int64_t cout = nd->kind == ENG_NODE_DEPTHWISE ? w->dim[2] : w->dim[3];
    size_t nw = (size_t)eng_tensor_numel(w);
    memcpy(nd->wdim, w->dim, sizeof nd->wdim);
    nd->w = malloc(nw * sizeof(float));
    nd->b = calloc((size_t)cout, sizeof(float));
    if (!nd->w || !nd->b)
        return eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
    memcpy(nd->w, eng_f32(w), nw * sizeof(float));
    if (b)
        memcpy(nd->b, eng_f32(b), (size_t)cout * sizeof(float));
    return ENG_OK;
}

/* s->cin, the tap's channels: what the first filter reading the tap expects. */
static eng_status tap_channels(cls_ft *s, eng_diag *d)
{
    for (int i = 0; i < s->nnodes; i++)
        if (s->node[i].kind != ENG_NODE_ADD && s->node[i].in[0] < 0) {
            s->cin = (int)s->node[i].wdim[2];
            return ENG_OK;
        }
    return eng_fail(d, ENG_EFORMAT, "model file: no fine-tuned node reads the tap");
}

eng_status cls_ft_init(cls_ft *s, const eng_backbone *bb, const char *tap, int ncat, eng_diag *d)
{
    memset(s, 0, sizeof *s);
    const char *chain[FT_MAX_CHAIN];
    eng_node_desc desc[FT_MAX_CHAIN];
    int n = ft_chain(bb, chain, desc);
    int j = n > 0 ? chain_find(chain, n, tap) : -1;
    if (j < 1 || j > CLS_FT_MAX_NODES || !valid_cut(chain, desc, j) ||
        desc[0].kind != ENG_NODE_CONV)
        return eng_fail(d, ENG_EUNSUPPORTED, "backbone \"%s\": no tail to fine-tune above \"%s\"",
                        eng_backbone_get_info(bb)->name, tap);
    eng_status st = ft_alloc(s, j, (int)desc[0].weights->dim[3], ncat, d);
    if (st != ENG_OK)
        return st;
    snprintf(s->tap, sizeof s->tap, "%s", tap);
    for (int i = 0; i < j && st == ENG_OK; i++) {
        int k = j - 1 - i; /* topological: from the tap up */
        cls_ft_node *nd = &s->node[i];
        snprintf(nd->name, sizeof nd->name, "%s", chain[k]);
        node_names(nd);
        nd->kind = desc[k].kind;
        nd->stride = desc[k].stride > 0 ? desc[k].stride : 1; /* adds: 1 */
        nd->act = desc[k].act;
        for (int q = 0; q < 2; q++)
            nd->in[q] = q < desc[k].n_in ? j - 1 - chain_find(chain, j, desc[k].in[q]) : -1;
        if (nd->kind != ENG_NODE_ADD)
            st = node_weights(nd, desc[k].weights, desc[k].bias, d);
    }
    if (st == ENG_OK)
        st = tap_channels(s, d);
    if (st != ENG_OK)
        cls_ft_free(s);
    return st;
}

void cls_ft_free(cls_ft *s)
{
    if (!s)
        return;
    for (int i = 0; s->node && i < s->nnodes; i++) {
        free(s->node[i].w);
        free(s->node[i].b);
    }
    free(s->node);
    free(s->hw);
    free(s->hb);
    memset(s, 0, sizeof *s);
}

/* ---- maps of augmented copies ---- */

typedef struct ft_aug {
    eng_crop crop; /* fractions of the image */
    int flip;
    float bright, contrast, satur; /* factors, 1 = unchanged */
} ft_aug;

static double unit(uint64_t *s)
{
    *s = cls_mix(*s);
    return (double)(*s >> 11) / 9007199254740992.0;
}

static void ft_aug_params(uint64_t seed, uint64_t image, int copy, ft_aug *a)
{
    *a = (ft_aug){{0, 0, 1, 1}, copy == 1, 1, 1, 1};
    if (copy < 2)
        return;
    uint64_t s = cls_mix(seed ^ cls_mix(image * 0x9e3779b97f4a7c15ULL + (uint64_t)copy));
    double area = 0.35 + 0.65 * unit(&s),
           ar = exp(log(0.75) + (log(4.0 / 3) - log(0.75)) * unit(&s));
    double w = fmin(1, sqrt(area * ar)), h = fmin(1, sqrt(area / ar));
    a->crop.w = (float)w;
    a->crop.h = (float)h;
    a->crop.x = (float)((1 - w) * unit(&s));
    a->crop.y = (float)((1 - h) * unit(&s));
    a->flip = unit(&s) < 0.5;
    a->bright = (float)(0.8 + 0.4 * unit(&s));
    a->contrast = (float)(0.8 + 0.4 * unit(&s));
    a->satur = (float)(0.8 + 0.4 * unit(&s));
}

/* Colour jitter on an RGB tensor of npix pixels in range px. */
static void ft_jitter(float *x, int npix, eng_pixels px, const ft_aug *a)
{
    if (a->bright == 1 && a->contrast == 1 && a->satur == 1)
        return;
    float lo = px == ENG_PIX_M1_1 ? -1.0f : 0.0f, hi = px == ENG_PIX_0_255 ? 255.0f : 1.0f;
    float span = hi - lo;
    double mean = 0;
    for (int i = 0; i < npix * 3; i++)
        mean += (x[i] - lo) / span;
    mean /= (double)npix * 3;
    for (int p = 0; p < npix; p++) {
        float *v = x + 3 * p, u[3];
        for (int c = 0; c < 3; c++)
            u[c] = (v[c] - lo) / span * a->bright;
        float gray = 0.299f * u[0] + 0.587f * u[1] + 0.114f * u[2];
        for (int c = 0; c < 3; c++) {
            float t = gray + (u[c] - gray) * a->satur;
            t = (float)((t - mean) * a->contrast + mean);
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            v[c] = lo + t * span;
        }
    }
}

/* The number that seeds an image's copies: its content hash. */
static uint64_t hash_seed(const char *hex)
{
    char head[17];
    memcpy(head, hex, 16);
    head[16] = '\0';
    return strtoull(head, NULL, 16);
}

eng_status cls_ft_maps(const eng_backbone *bb, const char *tap, const char *const *paths, int n,
                       int copy, uint64_t seed, int size, const char *cache_dir, int threads,
                       float *out, eng_diag *d)
{
    int h, w, c;
    eng_status st = cls_ft_map_shape(bb, tap, size, &h, &w, &c, d);
    if (st != ENG_OK)
        return st;
    const eng_backbone_info *inf = eng_backbone_get_info(bb);
    int dim = h * w * c;
    int64_t idim[4] = {1, size, size, 3};
    eng_tensor *in = eng_tensor_new(ENG_F32, 4, idim);
    if (!in)
        return eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
    for (int i = 0; i < n && st == ENG_OK; i++) {
        float *o = out + (size_t)i * dim;
        char key[700], hex[33] = "";
        key[0] = '\0';
        if ((cache_dir || copy >= 2) && (st = eng_hash_file(paths[i], hex, d)) != ENG_OK)
            break;
        ft_aug a;
        ft_aug_params(seed, copy >= 2 ? hash_seed(hex) : 0, copy, &a);
        if (cache_dir) {
            snprintf(key, sizeof key, "%s|%s|%s|%d|%s|%.5f,%.5f,%.5f,%.5f,%d,%.4f,%.4f,%.4f",
                     FT_CACHE_TAG, inf->checksum, hex, size, tap, a.crop.x, a.crop.y, a.crop.w,
                     a.crop.h, a.flip, a.bright, a.contrast, a.satur);
            if (eng_featcache_get(cache_dir, key, o, dim))
                continue;
        }
        eng_image *im = NULL;
        if ((st = eng_image_decode_file(paths[i], copy >= 2 ? 2 * size : size, &im, d)) != ENG_OK)
            break;
        eng_crop px = {a.crop.x * im->w, a.crop.y * im->h, a.crop.w * im->w, a.crop.h * im->h};
        st = eng_image_to_tensor(im, copy >= 2 ? &px : NULL, a.flip, size, size, inf->pixels,
                                 eng_f32(in), d);
        eng_image_free(im);
        if (st != ENG_OK)
            break;
        ft_jitter(eng_f32(in), size * size, inf->pixels, &a);
        eng_tensor *res = NULL;
        eng_run_opts ro = {.threads = threads};
        const char *outs[1] = {tap};
        if ((st = eng_model_run(eng_backbone_model(bb), in, outs, 1, &res, &ro, d)) != ENG_OK)
            break;
        if (eng_tensor_numel(res) != dim) {
            eng_tensor_free(res);
            st = eng_fail(d, ENG_EUNSUPPORTED, "tap \"%s\": unexpected size", tap);
            break;
        }
        memcpy(o, eng_f32(res), sizeof(float) * dim);
        eng_tensor_free(res);
        if (key[0])
            eng_featcache_put(cache_dir, key, o, dim, NULL);
    }
    eng_tensor_free(in);
    return st;
}

/* ---- the tail on the tape ---- */

static eng_var *ft_act(eng_tape *t, eng_var *v, eng_act a)
{
    switch (a) {
    case ENG_ACT_RELU: return eng_op_relu(t, v);
    case ENG_ACT_RELU6: return eng_op_relu6(t, v);
    case ENG_ACT_HSWISH: return eng_op_hard_swish(t, v);
    case ENG_ACT_SIGMOID: return eng_op_sigmoid(t, v);
    default: return v;
    }
}

/* Pooled embedding [bn, cout] of a batch x [bn, h, w, cin] through the
 * tail; p holds two params per node (NULL for adds). */
static eng_var *ft_embed(eng_tape *t, const cls_ft *s, eng_tensor *x, eng_param *const *p)
{
    eng_var *v[CLS_FT_MAX_NODES];
    eng_var *in = eng_tape_input(t, x);
    for (int i = 0; i < s->nnodes; i++) {
        const cls_ft_node *nd = &s->node[i];
        eng_var *a = nd->in[0] < 0 ? in : v[nd->in[0]], *r;
        if (nd->kind == ENG_NODE_ADD)
            r = eng_op_add(t, a, nd->in[1] < 0 ? in : v[nd->in[1]]);
        else {
            eng_var *wv = eng_tape_param(t, p[2 * i]);
            r = nd->kind == ENG_NODE_CONV ? eng_op_conv2d(t, a, wv, nd->stride)
                                          : eng_op_depthwise(t, a, wv, nd->stride);
            r = eng_op_bias(t, r, eng_tape_param(t, p[2 * i + 1]));
        }
        v[i] = ft_act(t, r, nd->act);
    }
    int64_t rd[2] = {x->dim[0], s->cout};
    return eng_op_reshape(t, eng_op_mean_hw(t, v[s->nnodes - 1]), 2, rd);
}

/* Logits [bn, ncat]; p[2 * nnodes] and the next are the dense layer. */
static eng_var *ft_forward(eng_tape *t, const cls_ft *s, eng_tensor *x, eng_param *const *p)
{
    eng_var *e = ft_embed(t, s, x, p);
    int k = 2 * s->nnodes;
    return eng_op_bias(t, eng_op_dense(t, e, eng_tape_param(t, p[k])), eng_tape_param(t, p[k + 1]));
}

static void ft_params_free(eng_param **p, int np)
{
    for (int i = 0; i < np; i++)
        eng_param_free(p[i]);
    free(p);
}

/* Params holding s: two per node (NULL for adds), then the dense layer's.
 * *np gets the array's length. */
static eng_status ft_params(const cls_ft *s, eng_param ***out, int *np, eng_diag *d)
{
    int n = 2 * s->nnodes + 2;
    eng_param **p = calloc((size_t)n, sizeof *p);
    if (!p)
        return eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
    eng_status st = ENG_OK;
    for (int i = 0; i < s->nnodes && st == ENG_OK; i++) {
        const cls_ft_node *nd = &s->node[i];
        if (nd->kind == ENG_NODE_ADD)
            continue;
        int64_t cout = nd->kind == ENG_NODE_DEPTHWISE ? nd->wdim[2] : nd->wdim[3];
        int64_t db[1] = {cout};
        st = eng_param_new(nd->wname, 4, nd->wdim, &p[2 * i], d);
        if (st == ENG_OK)
            st = eng_param_set(p[2 * i], nd->w,
                               nd->wdim[0] * nd->wdim[1] * nd->wdim[2] * nd->wdim[3], d);
        if (st == ENG_OK)
            st = eng_param_new(nd->bname, 1, db, &p[2 * i + 1], d);
        if (st == ENG_OK)
            st = eng_param_set(p[2 * i + 1], nd->b, cout, d);
        if (st == ENG_OK)
            p[2 * i + 1]->no_decay = 1;
    }
    int64_t dh[2] = {s->cout, s->ncat}, dhb[1] = {s->ncat};
    int k = 2 * s->nnodes;
    if (st == ENG_OK)
        st = eng_param_new("finetune.dense.weights", 2, dh, &p[k], d);
    if (st == ENG_OK)
        st = eng_param_set(p[k], s->hw, (int64_t)s->cout * s->ncat, d);
    if (st == ENG_OK)
        st = eng_param_new("finetune.dense.bias", 1, dhb, &p[k + 1], d);
    if (st == ENG_OK)
        st = eng_param_set(p[k + 1], s->hb, s->ncat, d);
    if (st != ENG_OK) {
        ft_params_free(p, n);
        return st;
    }
    p[k + 1]->no_decay = 1;
    *out = p;
    *np = n;
    return ENG_OK;
}

/* Copies the params' values back into s. */
static void ft_store(cls_ft *s, eng_param *const *p)
{
    for (int i = 0; i < s->nnodes; i++) {
        cls_ft_node *nd = &s->node[i];
        if (!p[2 * i])
            continue;
        memcpy(nd->w, eng_f32(p[2 * i]->value), sizeof(float) * eng_tensor_numel(p[2 * i]->value));
        memcpy(nd->b, eng_f32(p[2 * i + 1]->value),
               sizeof(float) * eng_tensor_numel(p[2 * i + 1]->value));
    }
    int k = 2 * s->nnodes;
    memcpy(s->hw, eng_f32(p[k]->value), sizeof(float) * s->cout * s->ncat);
    memcpy(s->hb, eng_f32(p[k + 1]->value), sizeof(float) * s->ncat);
}

/* Runs the tail as it is over maps in batches: with probs, out (n x ncat)
 * gets the softmax of the logits; else out (n x cout) the pooled
 * embeddings. */
static eng_status ft_infer(const cls_ft *s, const float *maps, int n, int h, int w, int threads,
                           int probs, float *out, eng_diag *d)
{
    eng_param **p = NULL;
    int np = 0;
    eng_status st = ft_params(s, &p, &np, d);
    if (st != ENG_OK)
        return st;
    for (int i = 0; i < np; i++)
        if (p[i])
            p[i]->frozen = 1;
    eng_tape *t = NULL;
    st = eng_tape_new(threads, &t, d);
    size_t dim = (size_t)h * w * s->cin;
    int cols = probs ? s->ncat : s->cout;
    for (int b0 = 0; b0 < n && st == ENG_OK; b0 += FT_SCORE_BATCH) {
        int bn = n - b0 < FT_SCORE_BATCH ? n - b0 : FT_SCORE_BATCH;
        eng_tensor x = {.dtype = ENG_F32,
                        .ndim = 4,
                        .dim = {bn, h, w, s->cin},
                        .data = (void *)(maps + dim * b0)};
        eng_tape_reset(t);
        eng_var *v = probs ? ft_forward(t, s, &x, p) : ft_embed(t, s, &x, p);
        if ((st = eng_tape_status(t, d)) != ENG_OK)
            break;
        float *o = out + (size_t)b0 * cols;
        memcpy(o, eng_f32(eng_var_value(v)), sizeof(float) * bn * cols);
        for (int i = 0; probs && i < bn; i++) {
            float *r = o + (size_t)i * cols, mx = r[0];
            for (int k = 1; k < cols; k++)
                mx = r[k] > mx ? r[k] : mx;
            double z = 0;
            for (int k = 0; k < cols; k++)
                z += exp((double)r[k] - mx);
            for (int k = 0; k < cols; k++)
                r[k] = (float)(exp((double)r[k] - mx) / z);
        }
    }
    eng_tape_free(t);
    ft_params_free(p, np);
    return st;
}

/* The linear probe: the dense layer as the L2 logistic regression on the
 * pretrained tail's pooled features. */
static eng_status ft_linear_probe(cls_ft *s, const float *maps, int n, int h, int w, const int *y,
                                  const cls_ft_opts *o, eng_diag *d)
{
    float *e = malloc(sizeof(float) * n * s->cout);
    double *z = malloc(sizeof(double) * n * s->cout);
    double *wb = calloc((size_t)(s->cout + 1) * s->ncat, sizeof(double));
    eng_status st = ENG_OK;
    if (!e || !z || !wb)
        st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
    if (st == ENG_OK)
        st = ft_infer(s, maps, n, h, w, o->threads, 0, e, d);
    if (st == ENG_OK) {
        for (size_t i = 0; i < (size_t)n * s->cout; i++)
            z[i] = e[i];
        int it = cls_logreg_fit(z, n, s->cout, y, s->ncat, o->lp_lambda, wb, FT_LP_ITERS, 1e-5,
                                o->abort, o->abort_ctx);
        if (it == -2)
            st = eng_fail(d, ENG_EABORTED, "fine-tuning: cancelled");
        else if (it < 0)
            st = eng_fail(d, ENG_EDIVERGED, "diverged: the linear probe did not converge");
    }
    for (size_t i = 0; st == ENG_OK && i < (size_t)s->cout * s->ncat; i++)
        s->hw[i] = (float)wb[i];
    for (int k = 0; st == ENG_OK && k < s->ncat; k++)
        s->hb[k] = (float)wb[(size_t)s->cout * s->ncat + k];
    free(e);
    free(z);
    free(wb);
    return st;
}

eng_status cls_ft_train(cls_ft *s, const float *maps, int n, int h, int w, const int *y,
                        const cls_ft_opts *o, float *epoch_loss, eng_diag *d)
{
    if (n < 1 || o->epochs < 1 || h < 1 || w < 1)
        return eng_fail(d, ENG_EINVAL, "fine-tuning: nothing to train on");
    eng_status st = ENG_OK;
    if (o->lp_lambda > 0 && (st = ft_linear_probe(s, maps, n, h, w, y, o, d)) != ENG_OK)
        return st;
    int bs = o->batch > 0 ? o->batch : 16;
    if (bs > n)
        bs = n;
    size_t dim = (size_t)h * w * s->cin;
    int per_epoch = (n + bs - 1) / bs, total = per_epoch * o->epochs;
    eng_param **p = NULL, **tail = NULL;
    int np = 0, nt = 0;
    if ((st = ft_params(s, &p, &np, d)) != ENG_OK)
        return st;
    eng_tape *t = NULL;
    eng_optimizer *os = NULL, *oh = NULL;
    float *xb = eng_alloc(sizeof(float) * dim * bs);
    int *perm = malloc(sizeof(int) * n), *yb = malloc(sizeof(int) * bs);
    tail = malloc(sizeof *tail * (size_t)np);
    if (!xb || !perm || !yb || !tail) {
        st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
        goto done;
    }
    for (int i = 0; i < np - 2; i++)
        if (p[i])
            tail[nt++] = p[i];
    if ((st = eng_tape_new(o->threads, &t, d)) != ENG_OK)
        goto done;
    eng_opt_config cs = {.kind = ENG_OPT_ADAMW,
                         .lr = o->lr_stage,
                         .weight_decay = o->weight_decay,
                         .warmup_steps = total / 10,
                         .total_steps = total,
                         .min_lr_ratio = 0.05f,
                         .grad_clip = 5.0f};
    eng_opt_config ch = cs;
    ch.lr = o->lr_head;
    st = eng_optimizer_new(&cs, tail, nt, &os, d);
    if (st == ENG_OK)
        st = eng_optimizer_new(&ch, p + np - 2, 2, &oh, d);
    if (st != ENG_OK)
        goto done;
    eng_rng rng;
    eng_rng_seed(&rng, o->seed ^ 0x66696e6554756e65ull);
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int e = 0; e < o->epochs && st == ENG_OK; e++) {
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(eng_rng_u64(&rng) % (uint64_t)(i + 1)), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        double sum = 0;
        for (int b0 = 0; b0 < n && st == ENG_OK; b0 += bs) {
            if (o->abort && o->abort(o->abort_ctx)) {
                st = eng_fail(d, ENG_EABORTED, "fine-tuning: cancelled");
                break;
            }
            int bn = n - b0 < bs ? n - b0 : bs;
            for (int k = 0; k < bn; k++) {
                memcpy(xb + dim * k, maps + dim * perm[b0 + k], sizeof(float) * dim);
                yb[k] = y[perm[b0 + k]];
            }
            eng_tensor x = {.dtype = ENG_F32, .ndim = 4, .dim = {bn, h, w, s->cin}, .data = xb};
            eng_tape_reset(t);
            eng_var *loss = eng_loss_softmax_xent(t, ft_forward(t, s, &x, p), yb, 0.0f);
            st = eng_tape_status(t, d);
            if (st == ENG_OK)
                st = eng_tape_backward(t, loss, NULL, d);
            if (st == ENG_OK)
                st = eng_optimizer_step(os, d);
            if (st == ENG_OK)
                st = eng_optimizer_step(oh, d);
            sum += (double)eng_var_scalar(loss) * bn;
        }
        if (epoch_loss && st == ENG_OK)
            epoch_loss[e] = (float)(sum / n);
    }
    if (st == ENG_OK)
        ft_store(s, p);
done:
    eng_optimizer_free(os);
    eng_optimizer_free(oh);
    eng_tape_free(t);
    eng_free(xb);
    free(perm);
    free(yb);
    free(tail);
    ft_params_free(p, np);
    return st;
}

eng_status cls_ft_probs(const cls_ft *s, const float *maps, int n, int h, int w, int threads,
                        float *probs, eng_diag *d)
{
    return ft_infer(s, maps, n, h, w, threads, 1, probs, d);
}

/* ---- model file ---- */

static const char *const dense_names[2] = {"finetune.dense.weights", "finetune.dense.bias"};

int cls_ft_tensors(const cls_ft *s, const char **names, eng_tensor *t)
{
    int k = 0;
    for (int i = 0; i < s->nnodes; i++) {
        const cls_ft_node *nd = &s->node[i];
        if (nd->kind == ENG_NODE_ADD)
            continue;
        int64_t cout = nd->kind == ENG_NODE_DEPTHWISE ? nd->wdim[2] : nd->wdim[3];
        names[k] = nd->wname;
        t[k] = (eng_tensor){.dtype = ENG_F32, .ndim = 4, .data = nd->w};
        memcpy(t[k++].dim, nd->wdim, sizeof nd->wdim);
        names[k] = nd->bname;
        t[k++] = (eng_tensor){.dtype = ENG_F32, .ndim = 1, .dim = {cout}, .data = nd->b};
    }
    names[k] = dense_names[0];
    t[k++] = (eng_tensor){.dtype = ENG_F32, .ndim = 2, .dim = {s->cout, s->ncat}, .data = s->hw};
    names[k] = dense_names[1];
    t[k++] = (eng_tensor){.dtype = ENG_F32, .ndim = 1, .dim = {s->ncat}, .data = s->hb};
    return k;
}

static const char *const kind_names[] = {"other", "conv", "depthwise", "add"};
static const char *const act_names[] = {"none", "relu", "relu6", "sigmoid", "hard_swish"};

int cls_ft_describe(const cls_ft *s, cJSON *o)
{
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    if (!nodes || !cJSON_AddStringToObject(o, "tap", s->tap))
        return -1;
    for (int i = 0; i < s->nnodes; i++) {
        const cls_ft_node *nd = &s->node[i];
        cJSON *x = cJSON_CreateObject();
        double in[2] = {nd->in[0], nd->in[1]};
        cJSON *ins = cJSON_CreateDoubleArray(in, nd->kind == ENG_NODE_ADD ? 2 : 1);
        if (!x || !cJSON_AddItemToArray(nodes, x) || !ins || !cJSON_AddItemToObject(x, "in", ins) ||
            !cJSON_AddStringToObject(x, "name", nd->name) ||
            !cJSON_AddStringToObject(x, "op", kind_names[nd->kind]) ||
            !cJSON_AddNumberToObject(x, "stride", nd->stride) ||
            !cJSON_AddStringToObject(x, "activation", act_names[nd->act]))
            return -1;
    }
    return 0;
}

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* One node of the "nodes" metadata into nd (i: its position). */
static eng_status node_from_meta(const eng_modelfile *f, const cJSON *x, int i, cls_ft_node *nd,
                                 eng_diag *d)
{
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(x, "name");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(x, "in");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(x, "stride");
    int kind =
        name_index(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "op")), kind_names, 4);
    int act = name_index(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "activation")),
                         act_names, 5);
    int nin = cJSON_GetArraySize(in);
    if (!cJSON_IsString(nm) || strlen(nm->valuestring) >= sizeof nd->name || kind < 1 || act < 0 ||
        !cJSON_IsNumber(sd) || sd->valuedouble < 1 || sd->valuedouble > 4 ||
        nin != (kind == ENG_NODE_ADD ? 2 : 1))
        return eng_fail(d, ENG_EFORMAT, "model file: fine-tuned node %d is malformed", i);
    snprintf(nd->name, sizeof nd->name, "%s", nm->valuestring);
    node_names(nd);
    nd->kind = (eng_node_kind)kind;
    nd->act = (eng_act)act;
    nd->stride = (int)sd->valuedouble;
    nd->in[1] = -1;
    for (int q = 0; q < nin; q++) {
        const cJSON *v = cJSON_GetArrayItem(in, q);
        if (!cJSON_IsNumber(v) || v->valuedouble < -1 || v->valuedouble >= i)
            return eng_fail(d, ENG_EFORMAT, "model file: fine-tuned node %d reads a later node", i);
        nd->in[q] = (int)v->valuedouble;
    }
    if (kind == ENG_NODE_ADD)
        return ENG_OK;
    const eng_tensor *w = eng_modelfile_tensor(f, nd->wname);
    if (!w || w->dtype != ENG_F32 || w->ndim != 4 || w->dim[0] < 1 || w->dim[0] > 15 ||
        w->dim[1] < 1 || w->dim[1] > 15 || w->dim[2] < 1 || w->dim[2] > 65536 || w->dim[3] < 1 ||
        w->dim[3] > 65536 || (kind == ENG_NODE_DEPTHWISE && w->dim[3] != 1))
        return eng_fail(d, ENG_EFORMAT, "model file: tensor \"%s\" missing or not a filter",
                        nd->wname);
    int64_t db[1] = {kind == ENG_NODE_DEPTHWISE ? w->dim[2] : w->dim[3]};
    const eng_tensor *b = NULL;
    eng_status st = eng_modelfile_expect(f, nd->bname, 1, db, &b, d);
    return st == ENG_OK ? node_weights(nd, w, b, d) : st;
}

/* The channels flowing out of node i (-1: the tap's cin). */
static int64_t node_cout(const cls_ft *s, int i)
{
    if (i < 0)
        return s->cin;
    const cls_ft_node *nd = &s->node[i];
    if (nd->kind == ENG_NODE_ADD)
        return node_cout(s, nd->in[0]);
    return nd->kind == ENG_NODE_DEPTHWISE ? nd->wdim[2] : nd->wdim[3];
}

/* Channel counts must chain: each filter reads what its input gives. */
static eng_status check_chain(const cls_ft *s, eng_diag *d)
{
    for (int i = 0; i < s->nnodes; i++) {
        const cls_ft_node *nd = &s->node[i];
        int64_t a = node_cout(s, nd->in[0]);
        int ok = nd->kind == ENG_NODE_ADD ? a == node_cout(s, nd->in[1]) : a == nd->wdim[2];
        if (!ok)
            return eng_fail(d, ENG_EFORMAT,
                            "model file: fine-tuned node \"%s\": channels do "
                            "not match its input",
                            nd->name);
    }
    if (node_cout(s, s->nnodes - 1) != s->cout)
        return eng_fail(d, ENG_EFORMAT, "model file: fine-tuned dense layer does not match");
    return ENG_OK;
}

/* Files from before tails: one 1x1 stage fed by the stride-32 tap. */
static eng_status from_stage(const eng_modelfile *f, const eng_tensor *w, int ncat, cls_ft *s,
                             eng_diag *d)
{
    if (w->dtype != ENG_F32 || w->ndim != 4 || w->dim[0] != 1 || w->dim[1] != 1 || w->dim[2] < 1 ||
        w->dim[3] < 1 || w->dim[2] > 65536 || w->dim[3] > 65536)
        return eng_fail(d, ENG_EFORMAT,
                        "tensor \"finetune.stage.weights\": not a 1x1 "
                        "convolution");
    int64_t db[1] = {w->dim[3]};
    const eng_tensor *b = NULL;
    eng_status st = eng_modelfile_expect(f, "finetune.stage.bias", 1, db, &b, d);
    if (st == ENG_OK)
        st = ft_alloc(s, 1, (int)w->dim[3], ncat, d);
    if (st != ENG_OK)
        return st;
    cls_ft_node *nd = &s->node[0];
    snprintf(nd->name, sizeof nd->name, "stage");
    node_names(nd);
    nd->kind = ENG_NODE_CONV;
    nd->in[0] = nd->in[1] = -1;
    nd->stride = 1;
    nd->act = ENG_ACT_RELU6;
    s->cin = (int)w->dim[2];
    return node_weights(nd, w, b, d);
}

static eng_status dense_from_file(const eng_modelfile *f, cls_ft *s, const char *wn, const char *bn,
                                  eng_diag *d)
{
    int64_t dh[2] = {s->cout, s->ncat}, dhb[1] = {s->ncat};
    const eng_tensor *hw = NULL, *hb = NULL;
    eng_status st = eng_modelfile_expect(f, wn, 2, dh, &hw, d);
    if (st == ENG_OK)
        st = eng_modelfile_expect(f, bn, 1, dhb, &hb, d);
    if (st != ENG_OK)
        return st;
    memcpy(s->hw, eng_f32(hw), sizeof(float) * s->cout * s->ncat);
    memcpy(s->hb, eng_f32(hb), sizeof(float) * s->ncat);
    return ENG_OK;
}

eng_status cls_ft_from_file(const eng_modelfile *f, const cJSON *meta, int ncat, cls_ft *s,
                            int *present, eng_diag *d)
{
    memset(s, 0, sizeof *s);
    *present = 0;
    eng_status st;
    const eng_tensor *old = eng_modelfile_tensor(f, "finetune.stage.weights");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(meta, "nodes");
    const cJSON *tap = cJSON_GetObjectItemCaseSensitive(meta, "tap");
    if (old) {
        st = from_stage(f, old, ncat, s, d);
        if (st == ENG_OK)
            st = dense_from_file(f, s, dense_names[0], dense_names[1], d);
    } else {
        if (!nodes)
            return ENG_OK; /* recipes without fine-tuning */
        int n = cJSON_GetArraySize(nodes);
        const eng_tensor *hw = eng_modelfile_tensor(f, dense_names[0]);
        if (!cJSON_IsArray(nodes) || n < 1 || n > CLS_FT_MAX_NODES || !cJSON_IsString(tap) ||
            strlen(tap->valuestring) >= sizeof s->tap || !hw || hw->ndim != 2 || hw->dim[0] < 1 ||
            hw->dim[0] > 65536)
            return eng_fail(d, ENG_EFORMAT,
                            "model file: metadata \"finetune\" has no valid "
                            "tap, nodes and dense layer");
        st = ft_alloc(s, n, (int)hw->dim[0], ncat, d);
        if (st != ENG_OK)
            return st;
        snprintf(s->tap, sizeof s->tap, "%s", tap->valuestring);
        int i = 0;
        for (const cJSON *x = nodes->child; x && st == ENG_OK; x = x->next, i++)
            st = node_from_meta(f, x, i, &s->node[i], d);
        if (st == ENG_OK)
            st = tap_channels(s, d);
        if (st == ENG_OK)
            st = dense_from_file(f, s, dense_names[0], dense_names[1], d);
    }
    if (st == ENG_OK)
        st = check_chain(s, d);
    if (st != ENG_OK) {
        cls_ft_free(s);
        return st;
    }
    *present = 1;
    return ENG_OK;
}

/* ---- cross-validation ---- */

eng_status cls_ft_cv(const eng_backbone *bb, const char *tap, int ncat, const float *maps, int n,
                     int ncopies, int h, int w, const int *y, const int *fold, int nfolds,
                     const cls_ft_opts *o, double *oof, eng_diag *d)
{
    int groups = nfolds < CLS_FT_MAX_GROUPS ? nfolds : CLS_FT_MAX_GROUPS;
    if (groups < 1)
        return eng_fail(d, ENG_EINVAL, "fine-tuning: no validation split");
    size_t dim = 0;
    float *xt = NULL, *p = malloc(sizeof(float) * ncat * n);
    int *yt = malloc(sizeof(int) * ncopies * n), *vi = malloc(sizeof(int) * n);
    eng_status st = ENG_OK;
    if (!p || !yt || !vi) {
        st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
        goto done;
    }
    for (int g = 0; g < groups && st == ENG_OK; g++) {
        cls_ft s;
        if ((st = cls_ft_init(&s, bb, tap, ncat, d)) != ENG_OK)
            break;
        dim = (size_t)h * w * s.cin;
        if (!xt && !(xt = malloc(sizeof(float) * dim * ncopies * n))) {
            cls_ft_free(&s);
            st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
            break;
        }
        int nt = 0, nv = 0;
        for (int i = 0; i < n; i++) {
            if (fold[i] >= 0 && fold[i] % groups == g) {
                vi[nv++] = i;
                continue;
            }
            for (int c = 0; c < ncopies; c++) {
                memcpy(xt + dim * nt, maps + dim * ((size_t)c * n + i), sizeof(float) * dim);
                yt[nt++] = y[i];
            }
        }
        if (nv > 0 && nt > 0)
            st = cls_ft_train(&s, xt, nt, h, w, yt, o, NULL, d);
        for (int k = 0; k < nv && st == ENG_OK; k++)
            memcpy(xt + dim * k, maps + dim * vi[k], sizeof(float) * dim);
        if (nv > 0 && st == ENG_OK)
            st = cls_ft_probs(&s, xt, nv, h, w, o->threads, p, d);
        for (int k = 0; k < nv && st == ENG_OK; k++)
            for (int c = 0; c < ncat; c++)
                oof[(size_t)vi[k] * ncat + c] = p[(size_t)k * ncat + c];
        cls_ft_free(&s);
    }
done:
    free(xt);
    free(p);
    free(yt);
    free(vi);
    return st;
}
