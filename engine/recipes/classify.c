/* classify.c: the classifier model (views + linear head), its feature path
 * shared by training, evaluation and prediction, and its model file.
 *
 * Design: a view is (backbone, input size, tap); its features are the
 * backbone's global-average-pooled tap output, centred with the training
 * mean and L2-normalised, scaled by 1/sqrt(number of views) and concatenated.
 * cls_features() is the only way from image files to those vectors and
 * cls_scores() the only way from vectors to probabilities: training's test
 * evaluation, eng_cls_evaluate and eng_cls_predict all call them, so the same
 * image scores the same everywhere. The search itself lives in cls_train.c.
 */
#include "classify_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLS_VERSION 1

void eng_classifier_free(eng_classifier *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->ncat; i++)
        free(m->cats[i]);
    free(m->cats);
    for (int i = 0; i < m->nbb; i++) {
        free(m->bb_name[i]);
        free(m->bb_checksum[i]);
    }
    free(m->bb_name);
    free(m->bb_checksum);
    for (int i = 0; i < m->nviews; i++) {
        free(m->views[i].tap);
        free(m->views[i].mean);
    }
    free(m->views);
    free(m->w);
    free(m->b);
    free(m->recipe);
    cls_ft_free(m->ft);
    free(m->ft);
    free(m);
}

int eng_cls_ncat(const eng_classifier *m) { return m->ncat; }

const char *eng_cls_category(const eng_classifier *m, int i)
{
    return i >= 0 && i < m->ncat ? m->cats[i] : NULL;
}

const char *eng_cls_backbone_needed(const eng_classifier *m, int i, const char **checksum)
{
    if (i < 0 || i >= m->nbb)
        return NULL;
    if (checksum)
        *checksum = m->bb_checksum[i];
    return m->bb_name[i];
}

const char *eng_cls_recipe(const eng_classifier *m) { return m->recipe ? m->recipe : "{}"; }

/* ---- the feature path ---- */

void cls_aug_crop(uint64_t seed, uint64_t index, int aug, float *rx, float *ry, float *rw,
                  float *rh, int *flip)
{
    *rx = 0, *ry = 0, *rw = 1, *rh = 1, *flip = 0;
    if (aug == 1) {
        *flip = 1;
        return;
    }
    if (aug >= 2) {
        uint64_t s = cls_mix(seed ^ cls_mix(index * 0x9e3779b97f4a7c15ULL + (uint64_t)aug));
        double u1 = (double)(cls_mix(s + 1) >> 11) / 9007199254740992.0;
        double u2 = (double)(cls_mix(s + 2) >> 11) / 9007199254740992.0;
        double u3 = (double)(cls_mix(s + 3) >> 11) / 9007199254740992.0;
        double u4 = (double)(cls_mix(s + 4) >> 11) / 9007199254740992.0;
        /* side 60..90 % of the image, independent aspect jitter, random place */
        double sw = 0.6 + 0.3 * u1, sh = fmin(0.95, fmax(0.55, sw * (0.85 + 0.3 * u2)));
        *rw = (float)sw;
        *rh = (float)sh;
        *rx = (float)((1 - sw) * u3);
        *ry = (float)((1 - sh) * u4);
        *flip = (int)(cls_mix(s + 5) & 1);
    }
}

uint64_t cls_mix(uint64_t h)
{
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* Cache key of one image's features. */
static void feature_key(char *key, size_t cap, const eng_backbone *bb, int size,
                        const char *const *taps, int ntaps, int aug, uint64_t seed, uint64_t index,
                        const char *hash)
{
    int n = snprintf(key, cap, "v2|%s|%s|%d|", eng_backbone_get_info(bb)->checksum, hash, size);
    for (int t = 0; t < ntaps && n > 0 && (size_t)n < cap; t++)
        n += snprintf(key + n, cap - n, "%s%s", t ? "," : "", taps[t]);
    if (n > 0 && (size_t)n < cap) {
        float x, y, w, h;
        int flip;
        cls_aug_crop(seed, index, aug, &x, &y, &w, &h, &flip);
        snprintf(key + n, cap - n, "|a%d:%.5f,%.5f,%.5f,%.5f,%d", aug, x, y, w, h, flip);
    }
}

/* The number that seeds an image's augmentation: its content hash when
 * known (so the same picture gets the same crop in any dataset), else its
 * position. */
static uint64_t image_key(const cls_extract_req *r, int i)
{
    if (r->hashes && r->hashes[i]) {
        char head[17];
        memcpy(head, r->hashes[i], 16);
        head[16] = '\0';
        return strtoull(head, NULL, 16);
    }
    return (uint64_t)(r->index_base + i);
}

eng_status cls_extract(const cls_extract_req *r, float *out, eng_diag *d)
{
    int n = r->n, dim = r->dim;
    char key[2048];
    int *miss = malloc((size_t)(n ? n : 1) * sizeof *miss);
    if (!miss)
        return eng_fail(d, ENG_ENOMEM, "features: out of memory");
    int nmiss = 0;
    for (int i = 0; i < n; i++) {
        int hit = 0;
        if (r->cache_dir && r->hashes && r->hashes[i]) {
            feature_key(key, sizeof key, r->bb, r->size, r->taps, r->ntaps, r->aug, r->seed,
                        image_key(r, i), r->hashes[i]);
            hit = eng_featcache_get(r->cache_dir, key, out + (size_t)i * dim, dim);
        }
        if (!hit)
            miss[nmiss++] = i;
    }
    if (r->nmiss)
        *r->nmiss = nmiss;
    eng_status st = ENG_OK;
    enum { CHUNK = 16 };
    const char *paths[CHUNK];
    eng_crop crops[CHUNK];
    int flips[CHUNK];
    float *buf = malloc((size_t)CHUNK * dim * sizeof *buf);
    if (!buf) {
        free(miss);
        return eng_fail(d, ENG_ENOMEM, "features: out of memory");
    }
    /* a small first chunk lets the caller measure the cost early */
    for (int c0 = 0, cn = 0; c0 < nmiss && st == ENG_OK; c0 += cn) {
        cn = c0 == 0 && r->on_chunk ? 4 : CHUNK;
        if (cn > nmiss - c0)
            cn = nmiss - c0;
        if (r->opts && r->opts->abort && r->opts->abort(r->opts->abort_ctx)) {
            st = eng_fail(d, ENG_EABORTED, "feature extraction cancelled");
            break;
        }
        int got = 0;
        if (r->aug == 0) {
            for (int j = 0; j < cn; j++)
                paths[j] = r->paths[miss[c0 + j]];
            st = eng_backbone_embed_files(r->bb, paths, cn, r->size, r->taps, r->ntaps, buf, &got,
                                          r->opts, d);
        } else {
            for (int j = 0; j < cn; j++) {
                int i = miss[c0 + j];
                paths[j] = r->paths[i];
                cls_aug_crop(r->seed, image_key(r, i), r->aug, &crops[j].x, &crops[j].y,
                             &crops[j].w, &crops[j].h, &flips[j]);
            }
            st = eng_backbone_embed_files_aug(r->bb, paths, crops, flips, cn, r->size, r->taps,
                                              r->ntaps, buf, &got, r->opts, d);
        }
        if (st == ENG_OK && got != dim)
            st = eng_fail(d, ENG_EINVAL, "features: backbone gave %d values per image, expected %d",
                          got, dim);
        for (int j = 0; st == ENG_OK && j < cn; j++) {
            int i = miss[c0 + j];
            memcpy(out + (size_t)i * dim, buf + (size_t)j * dim, (size_t)dim * sizeof *buf);
            if (r->cache_dir && r->hashes && r->hashes[i]) {
                feature_key(key, sizeof key, r->bb, r->size, r->taps, r->ntaps, r->aug, r->seed,
                            image_key(r, i), r->hashes[i]);
                eng_diag ign;
                (void)eng_featcache_put(r->cache_dir, key, buf + (size_t)j * dim, dim, &ign);
            }
        }
        if (st == ENG_OK && r->on_chunk)
            r->on_chunk(r->chunk_ctx, c0 + cn, nmiss);
    }
    free(buf);
    free(miss);
    return st;
}

/* Tap keys tried for extra views, in order; the first that exists. */
static const char *const EXTRA_TAPS[][3] = {
    {"taps.stride32_block", "taps.stride32", NULL},
    {"taps.stride16", NULL, NULL},
};

int cls_pass_taps(const eng_backbone *b, const char **taps, const char **keys)
{
    int nt = 0;
    taps[nt] = eng_backbone_get_info(b)->embedding;
    keys[nt++] = "embedding";
    for (size_t e = 0; e < sizeof EXTRA_TAPS / sizeof EXTRA_TAPS[0]; e++)
        for (int k = 0; k < 3 && EXTRA_TAPS[e][k]; k++) {
            const char *node = eng_backbone_field(b, EXTRA_TAPS[e][k]);
            if (node && eng_model_has_node(eng_backbone_model(b), node)) {
                taps[nt] = node;
                keys[nt++] = EXTRA_TAPS[e][k] + 5;
                break;
            }
        }
    return nt;
}

/* Features of paths[0..n) through one pass into the cache; an image the
 * backbone refuses is counted in *failed and left out. */
static eng_status cache_chunk(const cls_extract_req *base, const char *const *paths,
                              char *const *hashes, int n, float *buf, int *computed, int *failed,
                              eng_diag *d)
{
    cls_extract_req r = *base;
    int nmiss = 0;
    r.paths = paths;
    r.hashes = hashes;
    r.n = n;
    r.nmiss = &nmiss;
    eng_status st = cls_extract(&r, buf, d);
    if (st == ENG_OK) {
        *computed += nmiss;
        return ENG_OK;
    }
    if (st == ENG_EABORTED || st == ENG_ENOMEM || n == 1) {
        if (n == 1 && st != ENG_EABORTED && st != ENG_ENOMEM) {
            ++*failed;
            return ENG_OK;
        }
        return st;
    }
    for (int i = 0; i < n; i++) {
        st = cache_chunk(base, paths + i, hashes + i, 1, buf, computed, failed, d);
        if (st != ENG_OK)
            return st;
    }
    return ENG_OK;
}

eng_status eng_cls_cache_features(const eng_backbone *bb, const char *const *paths, int n,
                                  const char *cache_dir, const eng_run_opts *o, int *computed,
                                  int *failed, eng_diag *d)
{
    return eng_cls_cache_pass(bb, 0, 0, 0, paths, n, cache_dir, o, computed, failed, d);
}

eng_status eng_cls_cache_pass(const eng_backbone *bb, int size, int aug, uint64_t seed,
                              const char *const *paths, int n, const char *cache_dir,
                              const eng_run_opts *o, int *computed, int *failed, eng_diag *d)
{
    const char *taps[CLS_MAX_TAPS], *keys[CLS_MAX_TAPS];
    int ntaps = cls_pass_taps(bb, taps, keys), dim = 0;
    if (size <= 0)
        size = eng_backbone_get_info(bb)->input_w;
    *computed = 0;
    *failed = 0;
    for (int k = 0; k < ntaps; k++) {
        int td = 0;
        eng_status st = eng_backbone_embed_dim(bb, size, &taps[k], 1, &td, d);
        if (st != ENG_OK)
            return st;
        dim += td;
    }
    enum { CHUNK = 16 };
    float *buf = malloc((size_t)CHUNK * dim * sizeof *buf);
    char *hash[CHUNK];
    char hbuf[CHUNK][33];
    if (!buf)
        return eng_fail(d, ENG_ENOMEM, "features: out of memory");
    cls_extract_req base = {.bb = bb,
                            .size = size,
                            .taps = taps,
                            .ntaps = ntaps,
                            .dim = dim,
                            .aug = aug,
                            .seed = seed,
                            .cache_dir = cache_dir,
                            .opts = o};
    eng_status st = ENG_OK;
    for (int c0 = 0; c0 < n && st == ENG_OK; c0 += CHUNK) {
        int cn = n - c0 < CHUNK ? n - c0 : CHUNK, k = 0;
        const char *p[CHUNK];
        for (int j = 0; j < cn; j++) {
            eng_diag ign;
            if (eng_hash_file(paths[c0 + j], hbuf[k], &ign) != ENG_OK) {
                ++*failed;
                continue;
            }
            hash[k] = hbuf[k];
            p[k++] = paths[c0 + j];
        }
        if (k)
            st = cache_chunk(&base, p, hash, k, buf, computed, failed, d);
    }
    free(buf);
    return st;
}

void cls_power(float *v, int dim, float e)
{
    if (e == 1.0f)
        return;
    for (int j = 0; j < dim; j++)
        v[j] = v[j] < 0 ? -powf(-v[j], e) : powf(v[j], e);
}

void cls_normalise(float *v, int dim, const float *mean, float weight)
{
    double s = 0;
    for (int j = 0; j < dim; j++) {
        v[j] -= mean[j];
        s += (double)v[j] * v[j];
    }
    float k = s > 0 ? (float)(weight / sqrt(s)) : 0.0f;
    for (int j = 0; j < dim; j++)
        v[j] *= k;
}

eng_status cls_resolve_backbones(const eng_classifier *m, eng_backbone *const *bbs, int nbb,
                                 const eng_backbone **out, eng_diag *d)
{
    for (int i = 0; i < m->nbb; i++) {
        out[i] = NULL;
        int named = 0;
        for (int j = 0; j < nbb && !out[i]; j++) {
            const eng_backbone_info *inf = eng_backbone_get_info(bbs[j]);
            if (strcmp(inf->name, m->bb_name[i]) != 0)
                continue;
            named = 1;
            if (strcmp(inf->checksum, m->bb_checksum[i]) == 0)
                out[i] = bbs[j];
        }
        if (!out[i]) {
            if (named)
                return eng_fail(d, ENG_ENOTFOUND,
                                "backbone \"%s\": installed weights differ from "
                                "the ones the model was trained on (checksum "
                                "%.16s...)",
                                m->bb_name[i], m->bb_checksum[i]);
            return eng_fail(d, ENG_ENOTFOUND,
                            "backbone \"%s\" is not installed (the model needs "
                            "it)",
                            m->bb_name[i]);
        }
    }
    return ENG_OK;
}

eng_status cls_features(const eng_classifier *m, const eng_backbone *const *rb,
                        const char *const *paths, char *const *hashes, int n, const char *cache_dir,
                        const eng_run_opts *o, float *feat, cls_chunk_fn on_chunk, void *chunk_ctx,
                        eng_diag *d)
{
    /* one extraction per (backbone, size) group, its taps in view order */
    int done[CLS_MAX_VIEWS] = {0};
    for (int v0 = 0; v0 < m->nviews; v0++) {
        if (done[v0])
            continue;
        const char *taps[CLS_MAX_VIEWS];
        int members[CLS_MAX_VIEWS], nt = 0, gdim = 0;
        for (int v = v0; v < m->nviews; v++)
            if (!done[v] && m->views[v].bb == m->views[v0].bb &&
                m->views[v].size == m->views[v0].size) {
                done[v] = 1;
                members[nt] = v;
                taps[nt++] = m->views[v].tap;
                gdim += m->views[v].dim;
            }
        float *buf = malloc((size_t)(n ? n : 1) * gdim * sizeof *buf);
        if (!buf)
            return eng_fail(d, ENG_ENOMEM, "features: out of memory");
        cls_extract_req r = {.bb = rb[m->views[v0].bb],
                             .size = m->views[v0].size,
                             .taps = taps,
                             .ntaps = nt,
                             .dim = gdim,
                             .aug = 0,
                             .paths = paths,
                             .hashes = hashes,
                             .n = n,
                             .cache_dir = cache_dir,
                             .opts = o,
                             .on_chunk = on_chunk,
                             .chunk_ctx = chunk_ctx};
        eng_status st = cls_extract(&r, buf, d);
        if (st != ENG_OK) {
            free(buf);
            return st;
        }
        for (int i = 0; i < n; i++) {
            int at = 0;
            for (int t = 0; t < nt; t++) {
                const cls_view *vw = &m->views[members[t]];
                memcpy(feat + (size_t)i * m->dim + vw->offset, buf + (size_t)i * gdim + at,
                       (size_t)vw->dim * sizeof *feat);
                at += vw->dim;
            }
        }
        free(buf);
    }
    for (int i = 0; i < n; i++)
        for (int v = 0; v < m->nviews; v++) {
            float *x = feat + (size_t)i * m->dim + m->views[v].offset;
            cls_power(x, m->views[v].dim, m->views[v].power);
            cls_normalise(x, m->views[v].dim, m->views[v].mean, m->view_weight);
        }
    return ENG_OK;
}

void cls_scores(const eng_classifier *m, const float *feat, int n, float *probs)
{
    int k = m->ncat;
    double *s = malloc((size_t)k * sizeof *s);
    if (!s) {
        for (size_t i = 0; i < (size_t)n * k; i++)
            probs[i] = 1.0f / k;
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *x = feat + (size_t)i * m->dim;
        for (int c = 0; c < k; c++)
            s[c] = m->b[c];
        for (int j = 0; j < m->dim; j++) {
            double v = x[j];
            const float *wj = m->w + (size_t)j * k;
            for (int c = 0; c < k; c++)
                s[c] += v * wj[c];
        }
        cls_softmax_rows(s, 1, k);
        for (int c = 0; c < k; c++)
            probs[(size_t)i * k + c] = (float)s[c];
    }
    free(s);
}

const char *cls_model_ft_tap(const eng_classifier *m, const eng_backbone *bb)
{
    return m->ft->tap[0] ? m->ft->tap : eng_backbone_field(bb, "taps.stride32");
}

static eng_status cls_ft_model_probs(const eng_classifier *m, const eng_backbone *const *rb,
                                     const char *const *paths, char *const *hashes, int n,
                                     const char *cache_dir, const eng_run_opts *o, float *probs,
                                     cls_chunk_fn on_chunk, void *chunk_ctx, eng_diag *d);

eng_status cls_model_probs(const eng_classifier *m, const eng_backbone *const *rb,
                           const char *const *paths, char *const *hashes, int n,
                           const char *cache_dir, const eng_run_opts *o, float *feat, float *probs,
                           cls_chunk_fn on_chunk, void *chunk_ctx, eng_diag *d)
{
    if (!m->ft) {
        eng_status st =
            cls_features(m, rb, paths, hashes, n, cache_dir, o, feat, on_chunk, chunk_ctx, d);
        if (st == ENG_OK)
            cls_scores(m, feat, n, probs);
        return st;
    }
    float *lin = NULL;
    if (m->ft_mix) { /* the linear head's probabilities, averaged in below */
        lin = malloc(sizeof(float) * (size_t)n * m->ncat);
        if (!lin)
            return eng_fail(d, ENG_ENOMEM, "predict: out of memory");
        eng_status st = cls_features(m, rb, paths, hashes, n, cache_dir, o, feat, NULL, NULL, d);
        if (st != ENG_OK) {
            free(lin);
            return st;
        }
        cls_scores(m, feat, n, lin);
    }
    eng_status st =
        cls_ft_model_probs(m, rb, paths, hashes, n, cache_dir, o, probs, on_chunk, chunk_ctx, d);
    for (size_t i = 0; lin && st == ENG_OK && i < (size_t)n * m->ncat; i++)
        probs[i] = 0.5f * (probs[i] + lin[i]);
    free(lin);
    return st;
}

/* The fine-tuned tail's probabilities (n x ncat) of image files. */
static eng_status cls_ft_model_probs(const eng_classifier *m, const eng_backbone *const *rb,
                                     const char *const *paths, char *const *hashes, int n,
                                     const char *cache_dir, const eng_run_opts *o, float *probs,
                                     cls_chunk_fn on_chunk, void *chunk_ctx, eng_diag *d)
{
    int h, w, c, threads = o && o->threads > 0 ? o->threads : 1;
    const char *tap = cls_model_ft_tap(m, rb[m->ft_bb]);
    eng_status st = tap ? cls_ft_map_shape(rb[m->ft_bb], tap, m->ft_size, &h, &w, &c, d)
                        : eng_fail(d, ENG_EUNSUPPORTED, "backbone has no stride-32 tap");
    if (st != ENG_OK)
        return st;
    enum { CHUNK = 16 };
    float *maps = malloc(sizeof(float) * (size_t)h * w * c * (n < CHUNK ? n : CHUNK));
    if (!maps)
        return eng_fail(d, ENG_ENOMEM, "predict: out of memory");
    for (int i0 = 0; i0 < n && st == ENG_OK; i0 += CHUNK) {
        int k = n - i0 < CHUNK ? n - i0 : CHUNK;
        if (o && o->abort && o->abort(o->abort_ctx)) {
            st = eng_fail(d, ENG_EABORTED, "cancelled");
            break;
        }
        st = cls_ft_maps(rb[m->ft_bb], tap, paths + i0, k, 0, 0, m->ft_size,
                         hashes ? cache_dir : NULL, threads, maps, d);
        if (st == ENG_OK)
            st = cls_ft_probs(m->ft, maps, k, h, w, threads, probs + (size_t)i0 * m->ncat, d);
        if (st == ENG_OK && on_chunk)
            on_chunk(chunk_ctx, i0 + k, n);
    }
    free(maps);
    return st;
}

eng_status eng_cls_predict(const eng_classifier *m, eng_backbone *const *backbones, int nbackbones,
                           const char *image_path, int threads, float *probs, eng_diag *d)
{
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m, backbones, nbackbones, rb, d);
    if (st != ENG_OK)
        return st;
    float *feat = malloc((size_t)m->dim * sizeof *feat);
    if (!feat)
        return eng_fail(d, ENG_ENOMEM, "predict: out of memory");
    eng_run_opts o = {.threads = threads > 0 ? threads : 1};
    st = cls_model_probs(m, rb, &image_path, NULL, 1, NULL, &o, feat, probs, NULL, NULL, d);
    free(feat);
    return st;
}

eng_status eng_cls_predict_files(const eng_classifier *m, eng_backbone *const *backbones,
                                 int nbackbones, const char *const *paths, int n,
                                 const eng_eval_opts *o, float *probs, eng_status *status,
                                 eng_diag *msgs, eng_diag *d)
{
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m, backbones, nbackbones, rb, d);
    if (st != ENG_OK)
        return st;
    eng_run_opts ro = {.threads = o && o->threads > 0 ? o->threads : 1,
                       .abort = o ? o->abort : NULL,
                       .abort_ctx = o ? o->ctx : NULL};
    float *feat = malloc((size_t)m->dim * sizeof *feat);
    if (!feat)
        return eng_fail(d, ENG_ENOMEM, "predict: out of memory");
    /* one image at a time: exactly eng_cls_predict's path, and a bad image
     * only fails itself */
    for (int i = 0; i < n; i++) {
        eng_diag di = {{0}};
        eng_status si = cls_model_probs(m, rb, &paths[i], NULL, 1, NULL, &ro, feat,
                                        probs + (size_t)i * m->ncat, NULL, NULL, &di);
        if (si == ENG_EABORTED || si == ENG_ENOMEM) {
            free(feat);
            *d = di;
            return si;
        }
        if (si != ENG_OK)
            memset(probs + (size_t)i * m->ncat, 0, (size_t)m->ncat * sizeof *probs);
        if (status)
            status[i] = si;
        if (msgs)
            msgs[i] = di;
    }
    free(feat);
    return ENG_OK;
}

void cls_emit_detail(eng_eval_detail_fn fn, void *ctx, const char *const *cats, int ncat,
                     const eng_sample *s, const int *idx, int n, const float *probs,
                     const int *labels)
{
    if (!fn || n < 1)
        return;
    const char **paths = malloc((size_t)n * sizeof *paths);
    long long *ids = malloc((size_t)n * sizeof *ids);
    uint8_t *truth = calloc((size_t)n * ncat, 1);
    if (paths && ids && truth) {
        for (int k = 0; k < n; k++) {
            int i = idx ? idx[k] : k;
            paths[k] = s[i].path;
            ids[k] = s[i].id ? s[i].id : i + 1;
            if (labels[k] >= 0 && labels[k] < ncat)
                truth[(size_t)k * ncat + labels[k]] = 1;
        }
        eng_eval_detail dt = {.n = n,
                              .ncat = ncat,
                              .categories = cats,
                              .paths = paths,
                              .ids = ids,
                              .scores = probs,
                              .truth = truth};
        fn(ctx, &dt);
    }
    free(paths);
    free(ids);
    free(truth);
}

eng_status cls_predictions_json(const eng_classifier *m, const float *probs, const long long *ids,
                                int n, const long long *cat_ids, char **out, eng_diag *d)
{
    cJSON *arr = cJSON_CreateArray();
    int ok = arr != NULL;
    for (int i = 0; ok && i < n; i++) {
        int c = eng_argmax(probs + (size_t)i * m->ncat, m->ncat);
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(arr, o);
        ok = ok && cJSON_AddNumberToObject(o, "image_id", (double)ids[i]);
        ok =
            ok && cJSON_AddNumberToObject(o, "category_id", (double)(cat_ids ? cat_ids[c] : c + 1));
        ok = ok &&
             cJSON_AddNumberToObject(o, "score", round(probs[(size_t)i * m->ncat + c] * 1e6) / 1e6);
    }
    char *s = ok ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!s)
        return eng_fail(d, ENG_ENOMEM, "predictions json: out of memory");
    *out = s;
    return ENG_OK;
}

eng_status eng_cls_probs(const eng_classifier *m, eng_backbone *const *backbones, int nbackbones,
                         const char *const *paths, int n, const char *cache_dir,
                         const eng_run_opts *o, float *probs, eng_diag *d)
{
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m, backbones, nbackbones, rb, d);
    if (st != ENG_OK || n < 1)
        return st;
    eng_run_opts ro = {.threads = o && o->threads > 0 ? o->threads : 1,
                       .abort = o ? o->abort : NULL,
                       .abort_ctx = o ? o->abort_ctx : NULL};
    char **hashes = NULL;
    float *feat = malloc((size_t)(cache_dir ? n : 1) * m->dim * sizeof *feat);
    if (cache_dir && feat && !(hashes = calloc((size_t)n, sizeof *hashes)))
        st = eng_fail(d, ENG_ENOMEM, "probabilities: out of memory");
    if (!feat)
        st = eng_fail(d, ENG_ENOMEM, "probabilities: out of memory");
    for (int i = 0; hashes && st == ENG_OK && i < n; i++) {
        hashes[i] = malloc(33);
        st = hashes[i] ? eng_hash_file(paths[i], hashes[i], d)
                       : eng_fail(d, ENG_ENOMEM, "probabilities: out of memory");
    }
    if (st == ENG_OK && cache_dir) /* training's test pass: all at once through the cache */
        st = cls_model_probs(m, rb, paths, hashes, n, cache_dir, &ro, feat, probs, NULL, NULL, d);
    for (int i = 0; !cache_dir && st == ENG_OK && i < n; i++) /* eng_cls_evaluate's loop */
        st = cls_model_probs(m, rb, &paths[i], NULL, 1, NULL, &ro, feat,
                             probs + (size_t)i * m->ncat, NULL, NULL, d);
    for (int i = 0; hashes && i < n; i++)
        free(hashes[i]);
    free(hashes);
    free(feat);
    return st;
}

eng_status eng_cls_evaluate(const eng_classifier *m, eng_backbone *const *backbones, int nbackbones,
                            const eng_sample *s, int n, const eng_eval_opts *o, char **metrics_json,
                            char **predictions_json, eng_diag *d)
{
    *metrics_json = NULL;
    if (predictions_json)
        *predictions_json = NULL;
    if (n < 1)
        return eng_fail(d, ENG_EINVAL, "evaluate: no images");
    for (int i = 0; i < n; i++)
        if (s[i].label < 0 || s[i].label >= m->ncat)
            return eng_fail(d, ENG_EINVAL, "evaluate: image \"%s\": label %d outside 0..%d",
                            s[i].path, s[i].label, m->ncat - 1);
    const eng_backbone *rb[CLS_MAX_VIEWS];
    eng_status st = cls_resolve_backbones(m, backbones, nbackbones, rb, d);
    if (st != ENG_OK)
        return st;
    eng_run_opts ro = {.threads = o && o->threads > 0 ? o->threads : 1,
                       .abort = o ? o->abort : NULL,
                       .abort_ctx = o ? o->ctx : NULL};
    float *feat = malloc((size_t)m->dim * sizeof *feat);
    float *probs = malloc((size_t)n * m->ncat * sizeof *probs);
    int *labels = malloc((size_t)n * sizeof *labels);
    long long *ids = malloc((size_t)n * sizeof *ids);
    if (!feat || !probs || !labels || !ids) {
        st = eng_fail(d, ENG_ENOMEM, "evaluate: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        labels[i] = s[i].label;
        ids[i] = s[i].id ? s[i].id : i + 1;
    }
    /* the probabilities computed elsewhere (the Slurm workers run
     * eng_cls_probs on their shards), or here */
    int here = 1;
    if (o && o->probs) {
        const char **paths = malloc((size_t)n * sizeof *paths);
        if (!paths) {
            st = eng_fail(d, ENG_ENOMEM, "evaluate: out of memory");
            goto done;
        }
        for (int i = 0; i < n; i++)
            paths[i] = s[i].path;
        here = o->probs(o->probs_ctx, m, paths, n, 0, probs, &st, d);
        free(paths);
        if (here < 0)
            goto done;
        st = ENG_OK;
    }
    for (int i = 0; here && i < n && st == ENG_OK; i++)
        st = cls_model_probs(m, rb, &s[i].path, NULL, 1, NULL, &ro, feat,
                             probs + (size_t)i * m->ncat, NULL, NULL, d);
    if (st != ENG_OK)
        goto done;
    eng_cls_metrics met;
    st = eng_cls_metrics_compute(probs, labels, n, m->ncat, &met, d);
    if (st != ENG_OK)
        goto done;
    eng_eval_extra ex = {o && o->dataset_name ? o->dataset_name : "dataset", n, -1, NULL};
    st = eng_cls_metrics_json(&met, (const char *const *)m->cats, &ex, metrics_json, d);
    eng_cls_metrics_release(&met);
    if (st == ENG_OK && o)
        cls_emit_detail(o->detail, o->detail_ctx, (const char *const *)m->cats, m->ncat, s, NULL, n,
                        probs, labels);
    if (st == ENG_OK && predictions_json)
        st =
            cls_predictions_json(m, probs, ids, n, o ? o->category_ids : NULL, predictions_json, d);
    if (st != ENG_OK) {
        free(*metrics_json);
        *metrics_json = NULL;
    }
done:
    free(feat);
    free(probs);
    free(labels);
    free(ids);
    return st;
}

/* ---- model file ---- */

/* The "finetune" metadata: backbone index, input size and the tail. */
static char *ft_meta(const eng_classifier *m)
{
    cJSON *o = cJSON_CreateObject();
    char *s = NULL;
    if (o && cJSON_AddNumberToObject(o, "backbone", m->ft_bb) &&
        cJSON_AddNumberToObject(o, "size", m->ft_size) &&
        cJSON_AddStringToObject(o, "scores",
                                m->ft_mix ? "average with the linear head" : "alone") &&
        cls_ft_describe(m->ft, o) == 0)
        s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

eng_status eng_classifier_save(const eng_classifier *m, const char *path, eng_diag *d)
{
    return cls_save_as(m, "classifier", NULL, NULL, 0, path, d);
}

eng_status cls_save_as(const eng_classifier *m, const char *kind, const char *const *xnames,
                       const eng_tensor *xt, int nx, const char *path, eng_diag *d)
{
    eng_status st = ENG_ENOMEM;
    int nt = 2 + m->nviews + (m->ft ? 2 * m->ft->nnodes + 2 : 0) + nx;
    char *ftmeta = NULL;
    const char **names = calloc((size_t)nt, sizeof *names);
    eng_tensor *ts = calloc((size_t)nt, sizeof *ts);
    const eng_tensor **tp = calloc((size_t)nt, sizeof *tp);
    char(*vnames)[32] = calloc((size_t)m->nviews + 1, sizeof *vnames);
    cJSON *cats = cJSON_CreateStringArray((const char *const *)m->cats, m->ncat);
    cJSON *bbs = cJSON_CreateArray();
    cJSON *pre = cJSON_CreateObject();
    char *s_cats = NULL, *s_bbs = NULL, *s_pre = NULL;
    char bbjoined[1024] = "", csjoined[1024] = "";
    if (!names || !ts || !tp || !vnames || !cats || !bbs || !pre)
        goto done;
    for (int i = 0; i < m->nbb; i++) {
        cJSON *b = cJSON_CreateObject();
        if (!b || !cJSON_AddItemToArray(bbs, b) ||
            !cJSON_AddStringToObject(b, "name", m->bb_name[i]) ||
            !cJSON_AddStringToObject(b, "checksum", m->bb_checksum[i]))
            goto done;
        snprintf(bbjoined + strlen(bbjoined), sizeof bbjoined - strlen(bbjoined), "%s%s",
                 i ? "+" : "", m->bb_name[i]);
        snprintf(csjoined + strlen(csjoined), sizeof csjoined - strlen(csjoined), "%s%s",
                 i ? "," : "", m->bb_checksum[i]);
    }
    cJSON *views = cJSON_AddArrayToObject(pre, "views");
    if (!views || !cJSON_AddStringToObject(pre, "resize", "squash bilinear (aspect not kept)") ||
        !cJSON_AddStringToObject(pre, "pooling", "global average") ||
        !cJSON_AddStringToObject(pre, "normalisation",
                                 "each value x to sign(x) |x|^power (the view's power), "
                                 "subtract view.N.mean, divide by L2 norm, times view_weight") ||
        !cJSON_AddNumberToObject(pre, "view_weight", m->view_weight))
        goto done;
    for (int v = 0; v < m->nviews; v++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(views, o) ||
            !cJSON_AddNumberToObject(o, "backbone", m->views[v].bb) ||
            !cJSON_AddNumberToObject(o, "size", m->views[v].size) ||
            !cJSON_AddStringToObject(o, "tap", m->views[v].tap) ||
            !cJSON_AddNumberToObject(o, "dim", m->views[v].dim) ||
            !cJSON_AddNumberToObject(o, "power", m->views[v].power))
            goto done;
    }
    s_cats = cJSON_PrintUnformatted(cats);
    s_bbs = cJSON_PrintUnformatted(bbs);
    s_pre = cJSON_PrintUnformatted(pre);
    if (!s_cats || !s_bbs || !s_pre || (m->ft && !(ftmeta = ft_meta(m))))
        goto done;
    char version[16];
    snprintf(version, sizeof version, "%d", CLS_VERSION);
    const char *keys[] = {
        "format",    "kind",          "version", "categories", "backbone", "backbone_checksum",
        "backbones", "preprocessing", "recipe",  "finetune"};
    const char *vals[] = {"visionfs", kind,  version,           s_cats, bbjoined, csjoined,
                          s_bbs,      s_pre, eng_cls_recipe(m), ftmeta};
    ts[0] = (eng_tensor){ENG_F32, 2, {m->dim, m->ncat}, m->w};
    ts[1] = (eng_tensor){ENG_F32, 1, {m->ncat}, m->b};
    names[0] = "head.weight";
    names[1] = "head.bias";
    for (int v = 0; v < m->nviews; v++) {
        snprintf(vnames[v], sizeof vnames[v], "view.%d.mean", v);
        names[2 + v] = vnames[v];
        ts[2 + v] = (eng_tensor){ENG_F32, 1, {m->views[v].dim}, m->views[v].mean};
    }
    nt = 2 + m->nviews;
    if (m->ft)
        nt += cls_ft_tensors(m->ft, names + nt, ts + nt);
    for (int i = 0; i < nx; i++) {
        names[nt] = xnames[i];
        ts[nt++] = xt[i];
    }
    for (int i = 0; i < nt; i++)
        tp[i] = &ts[i];
    st = eng_modelfile_write(path, names, tp, nt, keys, vals, m->ft ? 10 : 9, d);
done:
    if (st == ENG_ENOMEM)
        eng_fail(d, st, "model file: out of memory");
    cJSON_Delete(cats);
    cJSON_Delete(bbs);
    cJSON_Delete(pre);
    free(s_cats);
    free(s_bbs);
    free(s_pre);
    free(ftmeta);
    free(names);
    free(ts);
    free(tp);
    free(vnames);
    return st;
}

/* The metadata value `key` parsed as JSON; NULL when absent or not JSON
 * (the check of its shape that follows then names the key). */
static cJSON *parse_meta_json(const eng_modelfile *f, const char *key)
{
    const char *s = eng_modelfile_meta(f, key);
    cJSON *j = NULL;
    eng_diag jd;
    if (s && eng_json_parse(s, strlen(s), key, &j, &jd) != ENG_OK)
        return NULL;
    return j;
}

/* The file's kind and version: a `want` (classifier) this program reads. */
static eng_status check_kind(const eng_modelfile *f, const char *want, eng_diag *d)
{
    const char *kind = eng_modelfile_meta(f, "kind");
    const char *ver = eng_modelfile_meta(f, "version");
    if (!kind)
        return eng_fail(d, ENG_EFORMAT,
                        "model file: metadata \"kind\" missing (not a visionfs "
                        "model?)");
    if (strcmp(kind, want) != 0)
        return eng_fail(d, ENG_EFORMAT, "model file: kind is \"%.32s\", not a %s", kind, want);
    if (!ver || atoi(ver) < 1)
        return eng_fail(d, ENG_EFORMAT, "model file: metadata \"version\" missing or bad");
    if (atoi(ver) > CLS_VERSION)
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "model file: version %d is newer than this program "
                        "reads (%d)",
                        atoi(ver), CLS_VERSION);
    return ENG_OK;
}

/* m->cats from the "categories" metadata. */
static eng_status load_categories(eng_classifier *m, const cJSON *cats, eng_diag *d)
{
    if (!cJSON_IsArray(cats) || cJSON_GetArraySize(cats) < 2 || cJSON_GetArraySize(cats) > 100000)
        return eng_fail(d, ENG_EFORMAT,
                        "model file: metadata "
                        "\"categories\" must be a JSON array of at "
                        "least 2 names");
    m->ncat = 0;
    m->cats = calloc((size_t)cJSON_GetArraySize(cats), sizeof *m->cats);
    if (!m->cats)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    for (const cJSON *c = cats->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !*c->valuestring)
            return eng_fail(d, ENG_EFORMAT,
                            "model file: category "
                            "%d is not a name",
                            m->ncat);
        m->cats[m->ncat] = strdup(c->valuestring);
        if (!m->cats[m->ncat++])
            return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    }
    return ENG_OK;
}

/* m->bb_name and m->bb_checksum from the "backbones" metadata. */
static eng_status load_backbones(eng_classifier *m, const cJSON *bbs, eng_diag *d)
{
    int nbb = cJSON_GetArraySize(bbs);
    if (!cJSON_IsArray(bbs) || nbb < 1 || nbb > CLS_MAX_VIEWS)
        return eng_fail(d, ENG_EFORMAT,
                        "model file: metadata "
                        "\"backbones\" must list 1..%d backbones",
                        CLS_MAX_VIEWS);
    m->bb_name = calloc((size_t)nbb, sizeof *m->bb_name);
    m->bb_checksum = calloc((size_t)nbb, sizeof *m->bb_checksum);
    if (!m->bb_name || !m->bb_checksum)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    for (const cJSON *b = bbs->child; b; b = b->next) {
        cJSON *nm = cJSON_GetObjectItemCaseSensitive(b, "name");
        cJSON *cs = cJSON_GetObjectItemCaseSensitive(b, "checksum");
        if (!cJSON_IsString(nm) || !cJSON_IsString(cs) || !*nm->valuestring)
            return eng_fail(d, ENG_EFORMAT,
                            "model file: backbones"
                            "[%d] needs \"name\" and \"checksum\"",
                            m->nbb);
        m->bb_name[m->nbb] = strdup(nm->valuestring);
        m->bb_checksum[m->nbb] = strdup(cs->valuestring);
        if (!m->bb_name[m->nbb++] || !m->bb_checksum[m->nbb - 1])
            return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    }
    return ENG_OK;
}

/* The next view of m from its "preprocessing" entry v and its mean tensor. */
static eng_status load_view(const eng_modelfile *f, eng_classifier *m, const cJSON *v, eng_diag *d)
{
    cls_view *x = &m->views[m->nviews];
    cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "backbone");
    cJSON *sz = cJSON_GetObjectItemCaseSensitive(v, "size");
    cJSON *tap = cJSON_GetObjectItemCaseSensitive(v, "tap");
    cJSON *dm = cJSON_GetObjectItemCaseSensitive(v, "dim");
    cJSON *pw = cJSON_GetObjectItemCaseSensitive(v, "power"); /* absent in older files */
    if ((pw && (!cJSON_IsNumber(pw) || !(pw->valuedouble > 0 && pw->valuedouble <= 4))) ||
        !cJSON_IsNumber(b) || b->valuedouble < 0 || b->valuedouble >= m->nbb ||
        !cJSON_IsNumber(sz) || sz->valuedouble < 32 || sz->valuedouble > 2048 ||
        !cJSON_IsString(tap) || !*tap->valuestring || !cJSON_IsNumber(dm) || dm->valuedouble < 1 ||
        dm->valuedouble > 1 << 16)
        return eng_fail(d, ENG_EFORMAT,
                        "model file: "
                        "preprocessing view %d is malformed "
                        "(backbone, size, tap, dim, power)",
                        m->nviews);
    x->bb = (int)b->valuedouble;
    x->size = (int)sz->valuedouble;
    x->dim = (int)dm->valuedouble;
    x->power = pw ? (float)pw->valuedouble : 1.0f;
    x->offset = m->dim;
    m->dim += x->dim;
    x->tap = strdup(tap->valuestring);
    m->nviews++;
    if (!x->tap)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    char name[32];
    snprintf(name, sizeof name, "view.%d.mean", m->nviews - 1);
    const eng_tensor *t;
    int64_t dim1[1] = {x->dim};
    eng_status st = eng_modelfile_expect(f, name, 1, dim1, &t, d);
    if (st != ENG_OK)
        return st;
    x->mean = malloc((size_t)x->dim * sizeof *x->mean);
    if (!x->mean)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    memcpy(x->mean, t->data, (size_t)x->dim * sizeof *x->mean);
    return ENG_OK;
}

/* m->views and m->view_weight from the "preprocessing" metadata. */
static eng_status load_views(const eng_modelfile *f, eng_classifier *m, const cJSON *pre,
                             eng_diag *d)
{
    cJSON *views = cJSON_GetObjectItemCaseSensitive(pre, "views");
    cJSON *vw = cJSON_GetObjectItemCaseSensitive(pre, "view_weight");
    int nv = cJSON_GetArraySize(views);
    if (!cJSON_IsObject(pre) || !cJSON_IsArray(views) || nv < 1 || nv > CLS_MAX_VIEWS ||
        !cJSON_IsNumber(vw) || !(vw->valuedouble > 0 && vw->valuedouble <= 1))
        return eng_fail(d, ENG_EFORMAT,
                        "model file: metadata "
                        "\"preprocessing\" needs 1..%d views and a "
                        "view_weight in (0, 1]",
                        CLS_MAX_VIEWS);
    m->view_weight = (float)vw->valuedouble;
    m->views = calloc((size_t)nv, sizeof *m->views);
    if (!m->views)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    for (const cJSON *v = views->child; v; v = v->next) {
        eng_status st = load_view(f, m, v, d);
        if (st != ENG_OK)
            return st;
    }
    return ENG_OK;
}

/* The linear head (head.weight, head.bias) and the recipe. */
static eng_status load_head(const eng_modelfile *f, eng_classifier *m, eng_diag *d)
{
    const eng_tensor *w, *b;
    int64_t wd[2] = {m->dim, m->ncat}, bd[1] = {m->ncat};
    eng_status st = eng_modelfile_expect(f, "head.weight", 2, wd, &w, d);
    if (st == ENG_OK)
        st = eng_modelfile_expect(f, "head.bias", 1, bd, &b, d);
    if (st != ENG_OK)
        return st;
    m->w = malloc((size_t)m->dim * m->ncat * sizeof *m->w);
    m->b = malloc((size_t)m->ncat * sizeof *m->b);
    const char *recipe = eng_modelfile_meta(f, "recipe");
    m->recipe = strdup(recipe ? recipe : "{}");
    if (!m->w || !m->b || !m->recipe)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    memcpy(m->w, w->data, (size_t)m->dim * m->ncat * sizeof *m->w);
    memcpy(m->b, b->data, (size_t)m->ncat * sizeof *m->b);
    return ENG_OK;
}

/* The fine-tuned stage: absent in files of recipes without it (and older files). */
static eng_status load_finetune(const eng_modelfile *f, eng_classifier *m, eng_diag *d)
{
    cls_ft ft;
    int present = 0;
    cJSON *fm = parse_meta_json(f, "finetune");
    eng_status st = cls_ft_from_file(f, fm, m->ncat, &ft, &present, d);
    if (st != ENG_OK || !present) {
        cJSON_Delete(fm);
        return st;
    }
    cJSON *fb = cJSON_GetObjectItemCaseSensitive(fm, "backbone");
    cJSON *fs = cJSON_GetObjectItemCaseSensitive(fm, "size");
    const char *sc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fm, "scores"));
    m->ft_mix = sc && strcmp(sc, "average with the linear head") == 0;
    int ok = cJSON_IsNumber(fb) && fb->valuedouble >= 0 && fb->valuedouble < m->nbb &&
             cJSON_IsNumber(fs) && fs->valuedouble >= 32 && fs->valuedouble <= 2048;
    if (ok) {
        m->ft_bb = (int)fb->valuedouble;
        m->ft_size = (int)fs->valuedouble;
    }
    cJSON_Delete(fm);
    m->ft = ok ? malloc(sizeof *m->ft) : NULL;
    if (!m->ft) {
        cls_ft_free(&ft);
        return ok ? eng_fail(d, ENG_ENOMEM, "model: out of memory")
                  : eng_fail(d, ENG_EFORMAT,
                             "model file: metadata \"finetune\" needs a "
                             "backbone index and an input size");
    }
    *m->ft = ft;
    return ENG_OK;
}

eng_status eng_classifier_from_file(const eng_modelfile *f, eng_classifier **out, eng_diag *d)
{
    return cls_from_file_as(f, "classifier", out, d);
}

eng_status cls_from_file_as(const eng_modelfile *f, const char *kind, eng_classifier **out,
                            eng_diag *d)
{
    *out = NULL;
    eng_status st = check_kind(f, kind, d);
    if (st != ENG_OK)
        return st;
    cJSON *cats = parse_meta_json(f, "categories");
    cJSON *bbs = parse_meta_json(f, "backbones");
    cJSON *pre = parse_meta_json(f, "preprocessing");
    eng_classifier *m = calloc(1, sizeof *m);
    if (!m)
        st = eng_fail(d, ENG_ENOMEM, "model: out of memory");
    if (st == ENG_OK)
        st = load_categories(m, cats, d);
    if (st == ENG_OK)
        st = load_backbones(m, bbs, d);
    if (st == ENG_OK)
        st = load_views(f, m, pre, d);
    if (st == ENG_OK)
        st = load_head(f, m, d);
    if (st == ENG_OK)
        st = load_finetune(f, m, d);
    cJSON_Delete(cats);
    cJSON_Delete(bbs);
    cJSON_Delete(pre);
    if (st != ENG_OK) {
        eng_classifier_free(m);
        return st;
    }
    *out = m;
    return ENG_OK;
}

eng_status eng_classifier_load(const char *path, eng_classifier **out, eng_diag *d)
{
    *out = NULL;
    eng_modelfile *f = NULL;
    eng_status st = eng_modelfile_read(path, &f, d);
    if (st != ENG_OK)
        return st;
    st = eng_classifier_from_file(f, out, d);
    eng_modelfile_free(f);
    return st;
}
