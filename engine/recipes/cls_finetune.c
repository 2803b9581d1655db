/* cls_finetune.c: fine-tuning the last backbone stage for classification.
 *
 * Design: the "last stage" is the backbone's final 1x1 convolution (the
 * embedding node, e.g. EfficientNet-Lite0's head/relu6: 320 -> 1280, bias,
 * ReLU6) plus a dense layer to the categories. Its input, the spatial map at
 * the stride-32 tap (7x7x320 at 224), is computed once per image (and per
 * flip) through the runtime and cached like other features; training then
 * runs only the stage on the tape (conv1x1 initialised from the pretrained
 * weights -> relu6 -> mean over H, W -> dense), softmax cross-entropy, AdamW
 * with a small learning rate on the stage and a larger one on the dense
 * layer, mini-batches in a seeded order. Scoring uses the same tape forward
 * as training, so the same map scores the same; the tape's kernels are
 * bitwise deterministic whatever the thread count.
 */
#include "cls_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FT_CACHE_TAG "ft1"
#define FT_SCORE_BATCH 16

eng_status cls_ft_nodes(const eng_backbone *bb, const char **tap, const char **conv, eng_diag *d)
{
    const char *t = eng_backbone_field(bb, "taps.stride32");
    const char *c = eng_backbone_get_info(bb)->embedding;
    if (!t || !c)
        return eng_fail(d, ENG_EUNSUPPORTED, "backbone \"%s\": no stride-32 tap to fine-tune from",
                        eng_backbone_get_info(bb)->name);
    char wn[256];
    const eng_tensor *wt = NULL;
    snprintf(wn, sizeof wn, "%s/weights", c);
    if (eng_model_const(eng_backbone_model(bb), wn, &wt, NULL) != ENG_OK || wt->ndim != 4 ||
        wt->dim[0] != 1 || wt->dim[1] != 1)
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "backbone \"%s\": embedding \"%s\" is not a 1x1 convolution",
                        eng_backbone_get_info(bb)->name, c);
    *tap = t;
    *conv = c;
    return ENG_OK;
}

eng_status cls_ft_map_shape(const eng_backbone *bb, int size, int *h, int *w, int *cin, eng_diag *d)
{
    const char *tap = NULL, *conv = NULL;
    eng_status st = cls_ft_nodes(bb, &tap, &conv, d);
    if (st != ENG_OK)
        return st;
    int64_t in[4] = {1, size, size, 3}, od[1][ENG_MAX_DIMS];
    int ond[1];
    const char *outs[1] = {tap};
    st = eng_model_shapes(eng_backbone_model(bb), 4, in, outs, 1, od, ond, NULL, d);
    if (st != ENG_OK)
        return st;
    if (ond[0] != 4)
        return eng_fail(d, ENG_EUNSUPPORTED, "tap \"%s\": not a spatial map", tap);
    *h = (int)od[0][1];
    *w = (int)od[0][2];
    *cin = (int)od[0][3];
    return ENG_OK;
}

eng_status cls_ft_init(cls_ft *s, const eng_backbone *bb, int ncat, eng_diag *d)
{
    memset(s, 0, sizeof *s);
    const char *tap = NULL, *conv = NULL;
    eng_status st = cls_ft_nodes(bb, &tap, &conv, d);
    if (st != ENG_OK)
        return st;
    char wn[256], bn[256];
    snprintf(wn, sizeof wn, "%s/weights", conv);
    snprintf(bn, sizeof bn, "%s/bias", conv);
    const eng_tensor *wt = NULL, *bt = NULL;
    const eng_model *m = eng_backbone_model(bb);
    if (eng_model_const(m, wn, &wt, d) != ENG_OK || eng_model_const(m, bn, &bt, d) != ENG_OK)
        return eng_fail(d, ENG_EUNSUPPORTED, "backbone \"%s\": no weights \"%s\" to fine-tune",
                        eng_backbone_get_info(bb)->name, wn);
    if (wt->dtype != ENG_F32 || wt->ndim != 4 || wt->dim[0] != 1 || wt->dim[1] != 1 ||
        bt->dtype != ENG_F32 || eng_tensor_numel(bt) != wt->dim[3])
        return eng_fail(d, ENG_EUNSUPPORTED, "\"%s\": not a 1x1 convolution with a bias", wn);
    s->cin = (int)wt->dim[2];
    s->cout = (int)wt->dim[3];
    s->ncat = ncat;
    s->w = malloc(sizeof(float) * s->cin * s->cout);
    s->b = malloc(sizeof(float) * s->cout);
    s->hw = calloc((size_t)s->cout * ncat, sizeof(float));
    s->hb = calloc((size_t)ncat, sizeof(float));
    if (!s->w || !s->b || !s->hw || !s->hb) {
        cls_ft_free(s);
        return eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
    }
    memcpy(s->w, eng_f32(wt), sizeof(float) * s->cin * s->cout);
    memcpy(s->b, eng_f32(bt), sizeof(float) * s->cout);
    return ENG_OK;
}

void cls_ft_free(cls_ft *s)
{
    if (!s)
        return;
    free(s->w);
    free(s->b);
    free(s->hw);
    free(s->hb);
    memset(s, 0, sizeof *s);
}

eng_status cls_ft_maps(const eng_backbone *bb, const char *const *paths, int n, int flip, int size,
                       const char *cache_dir, int threads, float *out, eng_diag *d)
{
    const char *tap = NULL, *conv = NULL;
    int h, w, c;
    eng_status st = cls_ft_map_shape(bb, size, &h, &w, &c, d);
    if (st == ENG_OK)
        st = cls_ft_nodes(bb, &tap, &conv, d);
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
        char key[600], hex[33];
        key[0] = '\0';
        if (cache_dir && eng_hash_file(paths[i], hex, NULL) == ENG_OK) {
            snprintf(key, sizeof key, "%s|%s|%s|%d|%s|%d", FT_CACHE_TAG, inf->checksum, hex, size,
                     tap, flip);
            if (eng_featcache_get(cache_dir, key, o, dim))
                continue;
        }
        eng_image *im = NULL;
        st = eng_image_decode_file(paths[i], size, &im, d);
        if (st != ENG_OK)
            break;
        st = eng_image_to_tensor(im, NULL, flip, size, size, inf->pixels, eng_f32(in), d);
        eng_image_free(im);
        if (st != ENG_OK)
            break;
        eng_tensor *res = NULL;
        eng_run_opts ro = {.threads = threads};
        const char *outs[1] = {tap};
        st = eng_model_run(eng_backbone_model(bb), in, outs, 1, &res, &ro, d);
        if (st != ENG_OK)
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

/* Records the stage's forward pass for a batch x [bn,h,w,cin] and returns
 * the logits node [bn, ncat]. */
static eng_var *ft_forward(eng_tape *t, eng_tensor *x, eng_param *const *p)
{
    eng_var *v = eng_tape_input(t, x);
    v = eng_op_conv2d(t, v, eng_tape_param(t, p[0]), 1);
    v = eng_op_bias(t, v, eng_tape_param(t, p[1]));
    v = eng_op_relu6(t, v);
    v = eng_op_mean_hw(t, v);
    int64_t rd[2] = {x->dim[0], p[0]->value->dim[3]};
    v = eng_op_reshape(t, v, 2, rd);
    v = eng_op_dense(t, v, eng_tape_param(t, p[2]));
    return eng_op_bias(t, v, eng_tape_param(t, p[3]));
}

/* Params p[0..3] (stage weights, bias, dense weights, bias) holding s. */
static eng_status ft_params(const cls_ft *s, eng_param **p, eng_diag *d)
{
    int64_t dw[4] = {1, 1, s->cin, s->cout}, db[1] = {s->cout}, dh[2] = {s->cout, s->ncat},
            dhb[1] = {s->ncat};
    const char *names[4] = {"stage/weights", "stage/bias", "dense/weights", "dense/bias"};
    const int64_t *dims[4] = {dw, db, dh, dhb};
    const int nd[4] = {4, 1, 2, 1};
    const float *src[4] = {s->w, s->b, s->hw, s->hb};
    const int64_t cnt[4] = {(int64_t)s->cin * s->cout, s->cout, (int64_t)s->cout * s->ncat,
                            s->ncat};
    memset(p, 0, sizeof(*p) * 4);
    for (int i = 0; i < 4; i++) {
        eng_status st = eng_param_new(names[i], nd[i], dims[i], &p[i], d);
        if (st == ENG_OK)
            st = eng_param_set(p[i], src[i], cnt[i], d);
        if (st != ENG_OK) {
            for (int j = 0; j <= i; j++)
                eng_param_free(p[j]);
            return st;
        }
    }
    p[1]->no_decay = p[3]->no_decay = 1;
    return ENG_OK;
}

static void ft_params_free(eng_param **p)
{
    for (int i = 0; i < 4; i++)
        eng_param_free(p[i]);
}

eng_status cls_ft_train(cls_ft *s, const float *maps, int n, int h, int w, const int *y,
                        const cls_ft_opts *o, float *epoch_loss, eng_diag *d)
{
    if (n < 1 || o->epochs < 1 || h < 1 || w < 1)
        return eng_fail(d, ENG_EINVAL, "fine-tuning: nothing to train on");
    int bs = o->batch > 0 ? o->batch : 16;
    if (bs > n)
        bs = n;
    size_t dim = (size_t)h * w * s->cin;
    int per_epoch = (n + bs - 1) / bs, total = per_epoch * o->epochs;
    eng_param *p[4];
    eng_status st = ft_params(s, p, d);
    if (st != ENG_OK)
        return st;
    eng_tape *t = NULL;
    eng_optimizer *os = NULL, *oh = NULL;
    float *xb = eng_alloc(sizeof(float) * dim * bs);
    int *perm = malloc(sizeof(int) * n), *yb = malloc(sizeof(int) * bs);
    if (!xb || !perm || !yb) {
        st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
        goto done;
    }
    st = eng_tape_new(o->threads, &t, d);
    if (st != ENG_OK)
        goto done;
    eng_opt_config cs = {.kind = ENG_OPT_ADAMW,
                         .lr = o->lr_stage,
                         .weight_decay = o->weight_decay,
                         .total_steps = total,
                         .min_lr_ratio = 0.05f,
                         .grad_clip = 5.0f};
    eng_opt_config ch = cs;
    ch.lr = o->lr_head;
    st = eng_optimizer_new(&cs, p, 2, &os, d);
    if (st == ENG_OK)
        st = eng_optimizer_new(&ch, p + 2, 2, &oh, d);
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
            eng_var *loss = eng_loss_softmax_xent(t, ft_forward(t, &x, p), yb, 0.0f);
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
    if (st == ENG_OK) {
        memcpy(s->w, eng_f32(p[0]->value), sizeof(float) * s->cin * s->cout);
        memcpy(s->b, eng_f32(p[1]->value), sizeof(float) * s->cout);
        memcpy(s->hw, eng_f32(p[2]->value), sizeof(float) * s->cout * s->ncat);
        memcpy(s->hb, eng_f32(p[3]->value), sizeof(float) * s->ncat);
    }
done:
    eng_optimizer_free(os);
    eng_optimizer_free(oh);
    eng_tape_free(t);
    eng_free(xb);
    free(perm);
    free(yb);
    ft_params_free(p);
    return st;
}

eng_status cls_ft_probs(const cls_ft *s, const float *maps, int n, int h, int w, int threads,
                        float *probs, eng_diag *d)
{
    eng_param *p[4];
    eng_status st = ft_params(s, p, d);
    if (st != ENG_OK)
        return st;
    for (int i = 0; i < 4; i++)
        p[i]->frozen = 1;
    eng_tape *t = NULL;
    st = eng_tape_new(threads, &t, d);
    size_t dim = (size_t)h * w * s->cin;
    for (int b0 = 0; b0 < n && st == ENG_OK; b0 += FT_SCORE_BATCH) {
        int bn = n - b0 < FT_SCORE_BATCH ? n - b0 : FT_SCORE_BATCH;
        eng_tensor x = {.dtype = ENG_F32,
                        .ndim = 4,
                        .dim = {bn, h, w, s->cin},
                        .data = (void *)(maps + dim * b0)};
        eng_tape_reset(t);
        eng_var *lg = ft_forward(t, &x, p);
        st = eng_tape_status(t, d);
        if (st != ENG_OK)
            break;
        const float *l = eng_f32(eng_var_value(lg));
        for (int i = 0; i < bn; i++) {
            const float *r = l + (size_t)i * s->ncat;
            float *o = probs + (size_t)(b0 + i) * s->ncat;
            float mx = r[0];
            for (int k = 1; k < s->ncat; k++)
                mx = r[k] > mx ? r[k] : mx;
            double z = 0;
            for (int k = 0; k < s->ncat; k++)
                z += exp((double)r[k] - mx);
            for (int k = 0; k < s->ncat; k++)
                o[k] = (float)(exp((double)r[k] - mx) / z);
        }
    }
    eng_tape_free(t);
    ft_params_free(p);
    return st;
}

/* Tensor names of the stage in a model file. */
static const char *const ft_names[4] = {"finetune.stage.weights", "finetune.stage.bias",
                                        "finetune.dense.weights", "finetune.dense.bias"};

int cls_ft_tensors(const cls_ft *s, const char **names, eng_tensor *t)
{
    float *src[4] = {s->w, s->b, s->hw, s->hb};
    int64_t dims[4][4] = {{1, 1, s->cin, s->cout}, {s->cout}, {s->cout, s->ncat}, {s->ncat}};
    const int nd[4] = {4, 1, 2, 1};
    for (int i = 0; i < 4; i++) {
        names[i] = ft_names[i];
        t[i] = (eng_tensor){.dtype = ENG_F32, .ndim = nd[i], .data = src[i]};
        memcpy(t[i].dim, dims[i], sizeof(int64_t) * nd[i]);
    }
    return 4;
}

eng_status cls_ft_from_file(const eng_modelfile *f, int ncat, cls_ft *s, int *present, eng_diag *d)
{
    memset(s, 0, sizeof *s);
    *present = 0;
    const eng_tensor *w = eng_modelfile_tensor(f, ft_names[0]);
    if (!w)
        return ENG_OK; /* older files and recipes without fine-tuning */
    if (w->dtype != ENG_F32 || w->ndim != 4 || w->dim[0] != 1 || w->dim[1] != 1 || w->dim[2] < 1 ||
        w->dim[3] < 1 || w->dim[2] > 65536 || w->dim[3] > 65536)
        return eng_fail(d, ENG_EFORMAT, "tensor \"%s\": not a 1x1 convolution", ft_names[0]);
    int cin = (int)w->dim[2], cout = (int)w->dim[3];
    const eng_tensor *b, *hw, *hb;
    int64_t db[1] = {cout}, dh[2] = {cout, ncat}, dhb[1] = {ncat};
    eng_status st = eng_modelfile_expect(f, ft_names[1], 1, db, &b, d);
    if (st == ENG_OK)
        st = eng_modelfile_expect(f, ft_names[2], 2, dh, &hw, d);
    if (st == ENG_OK)
        st = eng_modelfile_expect(f, ft_names[3], 1, dhb, &hb, d);
    if (st != ENG_OK)
        return st;
    s->cin = cin;
    s->cout = cout;
    s->ncat = ncat;
    s->w = malloc(sizeof(float) * cin * cout);
    s->b = malloc(sizeof(float) * cout);
    s->hw = malloc(sizeof(float) * cout * ncat);
    s->hb = malloc(sizeof(float) * ncat);
    if (!s->w || !s->b || !s->hw || !s->hb) {
        cls_ft_free(s);
        return eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
    }
    memcpy(s->w, eng_f32(w), sizeof(float) * cin * cout);
    memcpy(s->b, eng_f32(b), sizeof(float) * cout);
    memcpy(s->hw, eng_f32(hw), sizeof(float) * cout * ncat);
    memcpy(s->hb, eng_f32(hb), sizeof(float) * ncat);
    *present = 1;
    return ENG_OK;
}

eng_status cls_ft_cv(const eng_backbone *bb, int ncat, const float *maps, int n, int h, int w,
                     const int *y, const int *fold, int nfolds, const cls_ft_opts *o, double *oof,
                     eng_diag *d)
{
    int groups = nfolds < CLS_FT_MAX_GROUPS ? nfolds : CLS_FT_MAX_GROUPS;
    if (groups < 1)
        return eng_fail(d, ENG_EINVAL, "fine-tuning: no validation split");
    size_t dim = (size_t)h * w;
    float *xt = NULL, *p = malloc(sizeof(float) * ncat * n);
    int *yt = malloc(sizeof(int) * 2 * n), *vi = malloc(sizeof(int) * n);
    eng_status st = ENG_OK;
    if (!p || !yt || !vi) {
        st = eng_fail(d, ENG_ENOMEM, "fine-tuning: out of memory");
        goto done;
    }
    for (int g = 0; g < groups && st == ENG_OK; g++) {
        cls_ft s;
        st = cls_ft_init(&s, bb, ncat, d);
        if (st != ENG_OK)
            break;
        dim = (size_t)h * w * s.cin;
        if (!xt && !(xt = malloc(sizeof(float) * dim * 2 * n))) {
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
            for (int f = 0; f < 2; f++) {
                memcpy(xt + dim * nt, maps + dim * ((size_t)f * n + i), sizeof(float) * dim);
                yt[nt++] = y[i];
            }
        }
        if (nv > 0 && nt > 0)
            st = cls_ft_train(&s, xt, nt, h, w, yt, o, NULL, d);
        for (int k = 0; k < nv && st == ENG_OK; k++) {
            memcpy(xt + dim * k, maps + dim * vi[k], sizeof(float) * dim);
        }
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
