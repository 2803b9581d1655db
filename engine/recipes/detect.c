/* detect.c: the detector model (frozen pretrained depthwise filters + trained
 * 1x1 heads on CenterNet's stride-4 features), its one path from image file
 * to objects, decoding, drawing, evaluation and the model file.
 *
 * Design: det_features() is the only way from an image file to features and
 * det_heads() + det_objects() the only way from features to objects:
 * training's evaluation, eng_det_evaluate and eng_det_predict all call them,
 * so an image gives the same boxes everywhere. Features are float16 (F16C)
 * in memory and in the cache. Training lives in det_train.c.
 */
#include "asan_ranges.h"
#include "det_int.h"
#include "ranked.h"

#include <cjson/cJSON.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2: tiled detectors (tiles > 0), which a reader of version 1 would run on
 * the whole image only; 3: a box-size prior (size_weight > 0), which a
 * reader of version 2 would ignore; 4: a crop classifier; 5: a box
 * refinement from the crops (crop_reg); 6: NMS after it (crop_nms), which
 * a reader of version 5 would skip; other files keep the lowest version
 * that reads them right */
#define DET_VERSION 6

/* ---- the model ---- */

void eng_detector_free(eng_detector *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->ncat; i++)
        free(m->cats[i]);
    free(m->cats);
    free(m->bb_name);
    free(m->bb_checksum);
    free(m->feat_node);
    free(m->dw_cls);
    free(m->dw_wh);
    free(m->w1);
    free(m->b1);
    free(m->wc);
    free(m->bc);
    free(m->ww);
    free(m->bw);
    free(m->size_prior);
    free(m->crop_bb_name);
    free(m->crop_bb_checksum);
    free(m->crop_mean);
    free(m->crop_wb);
    free(m->crop_reg);
    free(m->recipe);
    free(m);
}

int eng_det_ncat(const eng_detector *m) { return m->ncat; }

const char *eng_det_category(const eng_detector *m, int i)
{
    return i >= 0 && i < m->ncat ? m->cats[i] : NULL;
}

const char *eng_det_backbone_needed(const eng_detector *m, int i, const char **checksum)
{
    if (i == 1 && det_crop_on(m)) {
        if (checksum)
            *checksum = m->crop_bb_checksum;
        return m->crop_bb_name;
    }
    if (i != 0)
        return NULL;
    if (checksum)
        *checksum = m->bb_checksum;
    return m->bb_name;
}

/* The backbone of m's crop classifier among bbs: *out NULL when m has none. */
static eng_status pick_crop_backbone(const eng_detector *m, eng_backbone *const *bbs, int n,
                                     eng_backbone **out, eng_diag *d)
{
    *out = NULL;
    if (!det_crop_on(m))
        return ENG_OK;
    for (int i = 0; i < n; i++) {
        const eng_backbone_info *inf = eng_backbone_get_info(bbs[i]);
        if (!strcmp(inf->name, m->crop_bb_name) && !strcmp(inf->checksum, m->crop_bb_checksum)) {
            *out = bbs[i];
            return ENG_OK;
        }
    }
    return eng_fail(d, ENG_ENOTFOUND,
                    "backbone \"%s\" (weights checksum %.16s...) of the crop classifier is not "
                    "installed (run " ENG_BACKBONE_FIX_COMMAND ")",
                    m->crop_bb_name, m->crop_bb_checksum);
}

const char *eng_det_recipe(const eng_detector *m) { return m->recipe ? m->recipe : "{}"; }

eng_status det_pick_backbone(eng_backbone *const *bbs, int n, const char *name,
                             const char *checksum, eng_backbone **out, eng_diag *d)
{
    *out = NULL;
    for (int i = 0; i < n; i++) {
        const eng_backbone_info *inf = eng_backbone_get_info(bbs[i]);
        if (name &&
            (strcmp(inf->name, name) != 0 || (checksum && strcmp(inf->checksum, checksum) != 0)))
            continue;
        if (!inf->detection_features || inf->detection_features_dim <= 0)
            continue;
        const eng_tensor *t = NULL;
        if (eng_model_const(eng_backbone_model(bbs[i]), DET_CONST_WH_PW, &t, NULL) != ENG_OK)
            continue;
        *out = bbs[i];
        return ENG_OK;
    }
    if (name)
        return eng_fail(d, ENG_ENOTFOUND,
                        "backbone \"%s\" (weights checksum %.16s...) with detection features is "
                        "not installed (run " ENG_BACKBONE_FIX_COMMAND ")",
                        name, checksum ? checksum : "?");
    return eng_fail(d, ENG_ENOTFOUND,
                    "no installed backbone has detection features and a CenterNet box head "
                    "(run " ENG_BACKBONE_FIX_COMMAND ")");
}

/* ---- features ---- */

void det_f32_to_f16(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = (uint16_t)_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* ENG_NO_ASAN: checked once per call under ASan (asan_ranges.h) */
ENG_NO_ASAN void det_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    eng_asan_range(src, n * sizeof(uint16_t), 0);
    eng_asan_range(dst, n * sizeof(float), 1);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

void det_widen(const uint16_t *f16, int fdim, int flip, float *f)
{
    if (!flip) {
        det_f16_to_f32(f16, f, (size_t)fdim * DET_CELLS);
        return;
    }
    for (int y = 0; y < DET_GRID; y++)
        for (int x = 0; x < DET_GRID; x++)
            det_f16_to_f32(f16 + ((size_t)y * DET_GRID + (DET_GRID - 1 - x)) * fdim,
                           f + ((size_t)y * DET_GRID + x) * fdim, (size_t)fdim);
}

void det_scale(int letterbox, int img_w, int img_h, float *fx, float *fy)
{
    if (letterbox) {
        int side = img_w > img_h ? img_w : img_h;
        *fx = *fy = (float)DET_SIZE / (float)side;
    } else {
        *fx = (float)DET_SIZE / (float)img_w;
        *fy = (float)DET_SIZE / (float)img_h;
    }
}

/* im padded to a square with grey at the bottom/right; NULL when out of memory. */
static eng_image *pad_square(const eng_image *im)
{
    int side = im->w > im->h ? im->w : im->h;
    eng_image *sq = eng_image_new(side, side);
    if (!sq)
        return NULL;
    memset(sq->rgb, 128, (size_t)side * side * 3);
    for (int y = 0; y < im->h; y++)
        memcpy(sq->rgb + (size_t)y * side * 3, im->rgb + (size_t)y * im->w * 3, (size_t)im->w * 3);
    return sq;
}

void det_tile_rect(int k, float r[4], float core[4])
{
    const float step = (1 - DET_TILE_SPAN) / (DET_TILES - 1);
    const float half = (DET_TILE_SPAN + step) / 2; /* a core ends midway through the overlap */
    int t[2] = {k % DET_TILES, k / DET_TILES};
    for (int a = 0; a < 2; a++) {
        r[a] = (float)t[a] * step;
        r[2 + a] = DET_TILE_SPAN;
        core[a] = t[a] == 0 ? 0.0f : (float)(t[a] - 1) * step + half;
        core[2 + a] = t[a] == DET_TILES - 1 ? 1.0f : (float)t[a] * step + half;
    }
}

int det_nviews(const eng_detector *m)
{
    return m->tiles > 0 ? DET_TILES * DET_TILES + (m->tile_whole != 0) : 1;
}

int det_view_tile(const eng_detector *m, int v)
{
    return m->tiles > 0 && v < DET_TILES * DET_TILES ? v : -1;
}

eng_status det_features(const eng_backbone *bb, const char *node, int fdim, int letterbox, int tile,
                        const char *path, const char *cache_dir, int threads, uint16_t *f16,
                        int *img_w, int *img_h, int *hit, eng_diag *d)
{
    if (hit)
        *hit = 0;
    eng_image_info info;
    eng_status st = eng_image_probe_file(path, &info, d);
    if (st != ENG_OK)
        return st;
    *img_w = eng_image_info_display_w(&info);
    *img_h = eng_image_info_display_h(&info);
    size_t n = (size_t)fdim * DET_CELLS;
    char key[512];
    key[0] = '\0';
    if (cache_dir) {
        char hex[33];
        if (eng_hash_file(path, hex, NULL) == ENG_OK) {
            char tk[48] = "";
            if (tile >= 0) /* whole-image keys stay as they were */
                snprintf(tk, sizeof tk, "|tile%d/%d/%.2f", tile, DET_TILES, DET_TILE_SPAN);
            snprintf(key, sizeof key, "det1|%s|%s|%d|%s|f16%s%s",
                     eng_backbone_get_info(bb)->checksum, hex, DET_SIZE, node,
                     letterbox ? "|letterbox" : "", tk);
        }
        /* float16 pairs travel through the cache's float API as raw bits */
        if (key[0] && eng_featcache_get(cache_dir, key, (float *)f16, (int)(n / 2))) {
            if (hit)
                *hit = 1;
            return ENG_OK;
        }
    }
    eng_image *im = NULL;
    /* a tile needs DET_SIZE pixels across DET_TILE_SPAN of the image */
    st = eng_image_decode_file(
        path, tile >= 0 ? (int)ceilf((float)DET_SIZE / DET_TILE_SPAN) : DET_SIZE, &im, d);
    if (st != ENG_OK)
        return st;
    eng_crop crop, *cp = NULL;
    if (tile >= 0) {
        float r[4], core[4];
        det_tile_rect(tile, r, core);
        crop = (eng_crop){r[0] * (float)im->w, r[1] * (float)im->h, r[2] * (float)im->w,
                          r[3] * (float)im->h};
        crop.w = fminf(crop.w, (float)im->w - crop.x);
        crop.h = fminf(crop.h, (float)im->h - crop.y);
        cp = &crop;
    } else if (letterbox && im->w != im->h) {
        eng_image *sq = pad_square(im);
        eng_image_free(im);
        if (!sq)
            return eng_fail(d, ENG_ENOMEM, "\"%s\": out of memory", path);
        im = sq;
    }
    int64_t idim[4] = {1, DET_SIZE, DET_SIZE, 3};
    eng_tensor *in = eng_tensor_new(ENG_F32, 4, idim);
    if (!in) {
        eng_image_free(im);
        return eng_fail(d, ENG_ENOMEM, "\"%s\": out of memory", path);
    }
    st = eng_image_to_tensor(im, cp, 0, DET_SIZE, DET_SIZE, eng_backbone_get_info(bb)->pixels,
                             eng_f32(in), d);
    eng_image_free(im);
    eng_tensor *out = NULL;
    if (st == ENG_OK) {
        eng_run_opts o = {.threads = threads};
        const char *outs[1] = {node};
        st = eng_model_run(eng_backbone_model(bb), in, outs, 1, &out, &o, d);
    }
    eng_tensor_free(in);
    if (st != ENG_OK)
        return st;
    if (eng_tensor_numel(out) != (int64_t)n) {
        eng_tensor_free(out);
        return eng_fail(d, ENG_EUNSUPPORTED, "detection features \"%s\": expected %dx%dx%d values",
                        node, DET_GRID, DET_GRID, fdim);
    }
    det_f32_to_f16(eng_f32(out), f16, n);
    eng_tensor_free(out);
    if (key[0])
        eng_featcache_put(cache_dir, key, (const float *)f16, (int)(n / 2), NULL);
    return ENG_OK;
}

eng_status det_scratch_init(det_scratch *s, int fdim, eng_diag *d)
{
    size_t n = (size_t)fdim * DET_CELLS * sizeof(float);
    s->mirror = NULL;
    s->mirror_cap = 0;
    s->f = eng_alloc(n);
    s->g = eng_alloc(n);
    if (!s->f || !s->g) {
        det_scratch_release(s);
        return eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    }
    return ENG_OK;
}

void det_scratch_release(det_scratch *s)
{
    eng_free(s->f);
    eng_free(s->g);
    eng_free(s->mirror);
    s->f = s->g = s->mirror = NULL;
    s->mirror_cap = 0;
}

void det_depthwise(det_scratch *s, int fdim, const float *dw, int threads)
{
    eng_conv_geom g;
    eng_conv_geom_init(&g, 1, DET_GRID, DET_GRID, fdim, fdim, 3, 3, 1, 1, 1, 1, ENG_PAD_SAME, NULL,
                       NULL);
    eng_dwconv2d(&g, s->f, dw, NULL, ENG_ACT_NONE, s->g, threads);
}

static eng_status heads_once(const eng_detector *m, const uint16_t *f16, int flip, int threads,
                             det_scratch *s, float *heat, float *wh, eng_diag *d)
{
    det_widen(f16, m->fdim, flip, s->f);
    det_depthwise(s, m->fdim, m->dw_wh, threads);
    eng_status st =
        eng_matmul(DET_CELLS, 4, m->fdim, s->g, 0, m->ww, 0, m->bw, ENG_ACT_NONE, wh, threads);
    if (st != ENG_OK)
        return eng_fail(d, st, "detector heads: out of memory");
    for (int i = 0; i < DET_CELLS * 4; i++)
        wh[i] *= m->wh_scale;
    det_depthwise(s, m->fdim, m->dw_cls, threads);
    const float *x = s->g;
    int k = m->fdim;
    if (m->hidden > 0) { /* s->f is free now and holds hidden <= fdim columns */
        st = eng_matmul(DET_CELLS, m->hidden, m->fdim, s->g, 0, m->w1, 0, m->b1, ENG_ACT_RELU, s->f,
                        threads);
        if (st != ENG_OK)
            return eng_fail(d, st, "detector heads: out of memory");
        x = s->f;
        k = m->hidden;
    }
    st = eng_matmul(DET_CELLS, m->ncat, k, x, 0, m->wc, 0, m->bc, ENG_ACT_SIGMOID, heat, threads);
    if (st != ENG_OK)
        return eng_fail(d, st, "detector heads: out of memory");
    return ENG_OK;
}

/* The heads on the features, and with flip_average on their mirror image too:
 * cell x of the mirrored maps is cell (GRID - 1 - x) of the image's (the
 * mirror training uses, x' = (SIZE - STRIDE) - x), and its left and right
 * box distances swap. */
eng_status det_heads(const eng_detector *m, const uint16_t *f16, int threads, det_scratch *s,
                     float *heat, float *wh, eng_diag *d)
{
    eng_status st = heads_once(m, f16, 0, threads, s, heat, wh, d);
    if (st != ENG_OK || !m->flip_average)
        return st;
    size_t need = (size_t)DET_CELLS * ((size_t)m->ncat + 4);
    if (s->mirror_cap < need) {
        eng_free(s->mirror);
        s->mirror = eng_alloc(need * sizeof(float));
        s->mirror_cap = s->mirror ? need : 0;
        if (!s->mirror)
            return eng_fail(d, ENG_ENOMEM, "detector heads: out of memory");
    }
    float *h2 = s->mirror, *w2 = s->mirror + (size_t)DET_CELLS * m->ncat;
    st = heads_once(m, f16, 1, threads, s, h2, w2, d);
    for (int y = 0; st == ENG_OK && y < DET_GRID; y++)
        for (int x = 0; x < DET_GRID; x++) {
            size_t c = (size_t)y * DET_GRID + x, c2 = (size_t)y * DET_GRID + (DET_GRID - 1 - x);
            for (int k = 0; k < m->ncat; k++)
                heat[c * m->ncat + k] = 0.5f * (heat[c * m->ncat + k] + h2[c2 * m->ncat + k]);
            float *b = wh + c * 4;
            const float *b2 = w2 + c2 * 4;
            b[0] = 0.5f * (b[0] + b2[2]);
            b[1] = 0.5f * (b[1] + b2[1]);
            b[2] = 0.5f * (b[2] + b2[0]);
            b[3] = 0.5f * (b[3] + b2[3]);
        }
    return st;
}

/* ---- targets and decoding ---- */

void eng_det_gaussian(float *heat, int gh, int gw, int ncat, int c, int stride, float x1, float y1,
                      float x2, float y2, float alpha)
{
    float w = (x2 - x1) / (float)stride, h = (y2 - y1) / (float)stride;
    if (!(w > 0) || !(h > 0))
        return;
    int cx = (int)lrintf((x1 + x2) * 0.5f / (float)stride);
    int cy = (int)lrintf((y1 + y2) * 0.5f / (float)stride);
    cx = cx < 0 ? 0 : cx >= gw ? gw - 1 : cx;
    cy = cy < 0 ? 0 : cy >= gh ? gh - 1 : cy;
    float sx = alpha * w / 6.0f, sy = alpha * h / 6.0f;
    if (sx < 0.25f)
        sx = 0.25f;
    if (sy < 0.25f)
        sy = 0.25f;
    int rx = (int)ceilf(3 * sx), ry = (int)ceilf(3 * sy);
    for (int y = cy - ry; y <= cy + ry; y++) {
        if (y < 0 || y >= gh)
            continue;
        for (int x = cx - rx; x <= cx + rx; x++) {
            if (x < 0 || x >= gw)
                continue;
            float dx = (float)(x - cx), dy = (float)(y - cy);
            float v = expf(-(dx * dx) / (2 * sx * sx) - (dy * dy) / (2 * sy * sy));
            if (x == cx && y == cy)
                v = 1.0f;
            float *p = &heat[((size_t)y * gw + x) * ncat + c];
            if (v > *p)
                *p = v;
        }
    }
}

typedef struct det_cand {
    float score;
    int index; /* cell * ncat + category */
} det_cand;

static int cand_cmp(const void *a, const void *b)
{
    const det_cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->index - y->index;
}

static float obj_iou(const eng_det_object *a, const eng_det_object *b)
{
    float ix = fminf(a->x + a->w, b->x + b->w) - fmaxf(a->x, b->x);
    float iy = fminf(a->y + a->h, b->y + b->h) - fmaxf(a->y, b->y);
    if (ix <= 0 || iy <= 0)
        return 0;
    float in = ix * iy;
    return in / (a->w * a->h + b->w * b->h - in);
}

int eng_det_decode(const float *heat, const float *wh, int gh, int gw, int ncat, int stride,
                   float sx, float sy, int img_w, int img_h, int topk, float min_score,
                   float nms_iou, eng_det_object *out)
{
    if (topk <= 0 || gh <= 0 || gw <= 0 || ncat <= 0)
        return 0;
    size_t cap = 1024, nc = 0;
    det_cand *c = malloc(cap * sizeof *c);
    if (!c)
        return 0;
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++)
            for (int k = 0; k < ncat; k++) {
                float v = heat[((size_t)y * gw + x) * ncat + k];
                if (!(v >= min_score))
                    continue;
                int peak = 1;
                for (int dy = -1; dy <= 1 && peak; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if (yy < 0 || yy >= gh || xx < 0 || xx >= gw)
                            continue;
                        if (heat[((size_t)yy * gw + xx) * ncat + k] > v) {
                            peak = 0;
                            break;
                        }
                    }
                if (!peak)
                    continue;
                if (nc == cap) {
                    det_cand *t = realloc(c, cap * 2 * sizeof *c);
                    if (!t)
                        goto sorted;
                    c = t;
                    cap *= 2;
                }
                c[nc].score = v;
                c[nc].index = (y * gw + x) * ncat + k;
                nc++;
            }
sorted:
    qsort(c, nc, sizeof *c, cand_cmp);
    int n = 0;
    for (size_t i = 0; i < nc && n < topk; i++) {
        int cell = c[i].index / ncat, k = c[i].index % ncat;
        float px = (float)(stride * (cell % gw)), py = (float)(stride * (cell / gw));
        const float *b = wh + (size_t)cell * 4;
        float x1 = (px - b[0]) * sx, y1 = (py - b[1]) * sy;
        float x2 = (px + b[2]) * sx, y2 = (py + b[3]) * sy;
        x1 = fmaxf(0, fminf(x1, (float)img_w));
        x2 = fmaxf(0, fminf(x2, (float)img_w));
        y1 = fmaxf(0, fminf(y1, (float)img_h));
        y2 = fmaxf(0, fminf(y2, (float)img_h));
        if (!(x2 - x1 > 0.5f) || !(y2 - y1 > 0.5f))
            continue;
        eng_det_object o = {x1, y1, x2 - x1, y2 - y1, k, c[i].score};
        int keep = 1;
        for (int j = 0; nms_iou > 0 && j < n && keep; j++)
            if (out[j].category == k && obj_iou(&out[j], &o) > nms_iou)
                keep = 0;
        if (keep)
            out[n++] = o;
    }
    free(c);
    return n;
}

int det_objects(const eng_detector *m, const float *heat, const float *wh, int img_w, int img_h,
                eng_det_object *out)
{
    float fx, fy;
    det_scale(m->letterbox, img_w, img_h, &fx, &fy);
    int n = eng_det_decode(heat, wh, DET_GRID, DET_GRID, m->ncat, DET_STRIDE, 1 / fx, 1 / fy, img_w,
                           img_h, ENG_DET_TOPK, m->min_score, m->nms_iou, out);
    det_apply_size_prior(m, out, n, img_w, img_h);
    /* monotone: the order (and so every mAP) stays that of the peaks */
    for (int i = 0; i < n; i++)
        out[i].score = det_confidence(m, out[i].score);
    return n;
}

void det_apply_size_prior(const eng_detector *m, eng_det_object *o, int n, int img_w, int img_h)
{
    if (!(m->size_weight > 0) || !m->size_prior || img_w <= 0 || img_h <= 0)
        return;
    float a = m->size_weight, W = (float)img_w, H = (float)img_h;
    for (int i = 0; i < n; i++) {
        const float *p = m->size_prior + 2 * o[i].category;
        float cx = o[i].x + o[i].w / 2, cy = o[i].y + o[i].h / 2;
        /* a box the decoder kept is over half a pixel wide and high */
        float w = W * expf((1 - a) * logf(o[i].w / W) + a * p[0]);
        float h = H * expf((1 - a) * logf(o[i].h / H) + a * p[1]);
        float x1 = fmaxf(0, cx - w / 2), x2 = fminf(W, cx + w / 2);
        float y1 = fmaxf(0, cy - h / 2), y2 = fminf(H, cy + h / 2);
        o[i].x = x1;
        o[i].y = y1;
        o[i].w = x2 - x1;
        o[i].h = y2 - y1;
    }
}

void det_size_prior_fit(const float *boxes, const int *cats, int nbox, int ncat, float *prior)
{
    double all[2] = {0, 0};
    int nall = 0;
    for (int c = 0; c < ncat; c++) {
        double sum[2] = {0, 0};
        int cnt = 0;
        for (int b = 0; b < nbox; b++) {
            const float *x = boxes + 4 * b;
            if (cats[b] != c || !(x[2] > 0) || !(x[3] > 0))
                continue;
            sum[0] += log(x[2]);
            sum[1] += log(x[3]);
            cnt++;
        }
        all[0] += sum[0];
        all[1] += sum[1];
        nall += cnt;
        prior[2 * c] = cnt ? (float)(sum[0] / cnt) : NAN;
        prior[2 * c + 1] = cnt ? (float)(sum[1] / cnt) : NAN;
    }
    for (int c = 0; c < ncat; c++)
        if (isnan(prior[2 * c])) {
            prior[2 * c] = nall ? (float)(all[0] / nall) : 0;
            prior[2 * c + 1] = nall ? (float)(all[1] / nall) : 0;
        }
}

int det_view_objects(const eng_detector *m, int tile, const float *heat, const float *wh, int img_w,
                     int img_h, eng_det_object *out)
{
    if (tile < 0)
        return det_objects(m, heat, wh, img_w, img_h, out);
    float r[4], core[4];
    det_tile_rect(tile, r, core);
    float x0 = r[0] * (float)img_w, y0 = r[1] * (float)img_h;
    float tw = r[2] * (float)img_w, th = r[3] * (float)img_h;
    int n = eng_det_decode(heat, wh, DET_GRID, DET_GRID, m->ncat, DET_STRIDE, tw / DET_SIZE,
                           th / DET_SIZE, (int)ceilf(tw), (int)ceilf(th), ENG_DET_TOPK,
                           m->min_score, m->nms_iou, out);
    int k = 0;
    for (int i = 0; i < n; i++) {
        eng_det_object o = out[i];
        o.x += x0;
        o.y += y0;
        o.w = fminf(o.w, (float)img_w - o.x);
        o.h = fminf(o.h, (float)img_h - o.y);
        det_apply_size_prior(m, &o, 1, img_w, img_h); /* in the image's frame */
        float cx = (o.x + o.w / 2) / (float)img_w, cy = (o.y + o.h / 2) / (float)img_h;
        if (!(o.w > 0.5f) || !(o.h > 0.5f) || cx < core[0] || cy < core[1] ||
            (cx >= core[2] && core[2] < 1) || (cy >= core[3] && core[3] < 1))
            continue;
        o.score = det_confidence(m, o.score);
        out[k++] = o;
    }
    return k;
}

int det_obj_cmp(const void *a, const void *b)
{
    const eng_det_object *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    if (x->category != y->category)
        return x->category - y->category;
    if (x->x != y->x)
        return x->x < y->x ? -1 : 1;
    return x->y < y->y ? -1 : x->y > y->y;
}

int det_merge(eng_det_object *in, int n, float nms_iou, eng_det_object *out, int cap)
{
    qsort(in, (size_t)n, sizeof *in, det_obj_cmp);
    int k = 0;
    for (int i = 0; i < n && k < cap; i++) {
        int keep = 1;
        for (int j = 0; nms_iou > 0 && j < k && keep; j++)
            if (out[j].category == in[i].category && obj_iou(&out[j], &in[i]) > nms_iou)
                keep = 0;
        if (keep)
            out[k++] = in[i];
    }
    return k;
}

/* ---- confidence calibration ---- */

static double logit_of(double p)
{
    p = p < 1e-7 ? 1e-7 : p > 1 - 1e-7 ? 1 - 1e-7 : p;
    return log(p / (1 - p));
}

float det_confidence(const eng_detector *m, float peak)
{
    if (!m->calibrated)
        return peak;
    double z = m->cal_a * logit_of(peak) + m->cal_b;
    return (float)(1 / (1 + exp(-z)));
}

eng_status det_label_tp(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred, int *tp,
                        eng_diag *d)
{
    ranked *ord = malloc(((size_t)npred + 1) * sizeof *ord);
    char *used = calloc((size_t)ngt + 1, 1);
    if (!ord || !used) {
        free(ord);
        free(used);
        return eng_fail(d, ENG_ENOMEM, "calibration: out of memory");
    }
    for (int j = 0; j < npred; j++)
        ord[j] = (ranked){pred[j].score, j};
    ranked_sort(ord, (size_t)npred);
    for (int q = 0; q < npred; q++) {
        const eng_det_pred *p = &pred[ord[q].index];
        int best = -1;
        double best_iou = 0.5;
        for (int g = 0; g < ngt; g++) {
            if (used[g] || gt[g].image != p->image || gt[g].category != p->category)
                continue;
            double iou = eng_det_iou(p->bbox, gt[g].bbox);
            if (iou >= best_iou) {
                best_iou = iou;
                best = g;
            }
        }
        tp[ord[q].index] = best >= 0;
        if (best >= 0)
            used[best] = 1;
    }
    free(ord);
    free(used);
    return ENG_OK;
}

/* Negative log-likelihood of Platt's fit at slope A, offset B (with the pull). */
static double platt_nll(const double *x, const int *tp, int n, double tpos, double tneg,
                        double lambda, double A, double B)
{
    double l = 0.5 * lambda * ((A - 1) * (A - 1) + B * B);
    for (int i = 0; i < n; i++) {
        double z = A * x[i] + B, y = tp[i] ? tpos : tneg;
        /* log(1 + e^z) - y z, computed without overflow */
        l += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - y * z;
    }
    return l;
}

void det_calibrate(const double *score, const int *tp, int n, float *a, float *b)
{
    /* Platt's smoothed targets keep a separable or one-sided set finite; a
     * weak pull towards slope 1 keeps a handful of points sane; Newton
     * steps halved until the objective falls */
    int npos = 0;
    for (int i = 0; i < n; i++)
        npos += tp[i] != 0;
    double tpos = (npos + 1.0) / (npos + 2.0), tneg = 1.0 / (n - npos + 2.0);
    double A = 1, B = 0;
    const double lambda = 0.01;
    double *x = malloc(((size_t)n + 1) * sizeof *x);
    if (!x) {
        *a = 1;
        *b = 0;
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = logit_of(score[i]);
    double f = platt_nll(x, tp, n, tpos, tneg, lambda, A, B);
    for (int it = 0; it < 100; it++) {
        double ga = lambda * (A - 1), gb = lambda * B;
        double haa = lambda, hab = 0, hbb = lambda;
        for (int i = 0; i < n; i++) {
            double y = tp[i] ? tpos : tneg;
            double p = 1 / (1 + exp(-(A * x[i] + B)));
            double r = p - y, w = p * (1 - p);
            ga += r * x[i];
            gb += r;
            haa += w * x[i] * x[i];
            hab += w * x[i];
            hbb += w;
        }
        double det = haa * hbb - hab * hab;
        if (!(det > 1e-12))
            break;
        double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
        double step = 1, nf = f;
        for (; step > 1e-6; step /= 2) {
            nf = platt_nll(x, tp, n, tpos, tneg, lambda, A - step * da, B - step * db);
            if (nf <= f)
                break;
        }
        if (!(step > 1e-6))
            break;
        A -= step * da;
        B -= step * db;
        double gain = f - nf;
        f = nf;
        if (gain < 1e-10)
            break;
    }
    if (!isfinite(A) || !isfinite(B)) {
        A = 1;
        B = 0;
    }
    /* monotone and not a step: the order of the peaks survives in float */
    if (A < 0.05 || A > 10) {
        double x0 = 0; /* keep the fitted value at the mean logit */
        for (int i = 0; i < n; i++)
            x0 += x[i] / n;
        double na = A < 0.05 ? 0.05 : 10;
        B += (A - na) * x0;
        A = na;
    }
    free(x);
    *a = (float)A;
    *b = (float)B;
}

/* ---- prediction ---- */

typedef struct det_bufs {
    uint16_t *f16;
    det_scratch s;
    float *heat, *wh;
    eng_det_object *objs;
    eng_det_object *views; /* with tiles: every view's objects before the merge */
} det_bufs;

/* Objects of the image at path into b->objs: each view's features and
 * heads, with tiles the views' objects merged, and with a crop classifier
 * (cbb its backbone) the most confident rescored. */
static eng_status predict_one(const eng_detector *m, const eng_backbone *bb,
                              const eng_backbone *cbb, const char *path, const char *cache_dir,
                              int threads, det_bufs *b, int *n, int *w, int *h, eng_diag *d)
{
    int nv = det_nviews(m), total = 0;
    for (int v = 0; v < nv; v++) {
        int tile = det_view_tile(m, v);
        eng_status st = det_features(bb, m->feat_node, m->fdim, m->letterbox, tile, path, cache_dir,
                                     threads, b->f16, w, h, NULL, d);
        if (st == ENG_OK)
            st = det_heads(m, b->f16, threads, &b->s, b->heat, b->wh, d);
        if (st != ENG_OK)
            return st;
        eng_det_object *dst = nv > 1 ? b->views + total : b->objs;
        total += det_view_objects(m, tile, b->heat, b->wh, *w, *h, dst);
    }
    *n = nv > 1 ? det_merge(b->views, total, m->nms_iou, b->objs, ENG_DET_TOPK) : total;
    if (cbb)
        return det_crop_rescore(m, cbb, path, *w, *h, b->objs, n, threads, d);
    return ENG_OK;
}

static void bufs_release(det_bufs *b)
{
    eng_free(b->f16);
    det_scratch_release(&b->s);
    eng_free(b->heat);
    eng_free(b->wh);
    free(b->objs);
    free(b->views);
    memset(b, 0, sizeof *b);
}

static eng_status bufs_init(det_bufs *b, const eng_detector *m, eng_diag *d)
{
    memset(b, 0, sizeof *b);
    b->f16 = eng_alloc((size_t)m->fdim * DET_CELLS * 2);
    b->heat = eng_alloc((size_t)DET_CELLS * m->ncat * sizeof(float));
    b->wh = eng_alloc((size_t)DET_CELLS * 4 * sizeof(float));
    b->objs = calloc(ENG_DET_TOPK, sizeof *b->objs);
    if (det_nviews(m) > 1)
        b->views = calloc((size_t)det_nviews(m) * ENG_DET_TOPK, sizeof *b->views);
    if (!b->f16 || !b->heat || !b->wh || !b->objs || (det_nviews(m) > 1 && !b->views) ||
        det_scratch_init(&b->s, m->fdim, NULL) != ENG_OK) {
        bufs_release(b);
        return eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    }
    return ENG_OK;
}

eng_status eng_det_predict(const eng_detector *m, eng_backbone *const *backbones, int nbackbones,
                           const char *image_path, int threads, eng_det_object **objs, int *n,
                           int *img_w, int *img_h, eng_diag *d)
{
    *objs = NULL;
    *n = 0;
    eng_backbone *bb = NULL, *cbb = NULL;
    eng_status st = det_pick_backbone(backbones, nbackbones, m->bb_name, m->bb_checksum, &bb, d);
    if (st == ENG_OK)
        st = pick_crop_backbone(m, backbones, nbackbones, &cbb, d);
    if (st != ENG_OK)
        return st;
    det_bufs b;
    if ((st = bufs_init(&b, m, d)) != ENG_OK)
        return st;
    int w = 0, h = 0, k = 0;
    st = predict_one(m, bb, cbb, image_path, NULL, threads, &b, &k, &w, &h, d);
    if (st == ENG_OK) {
        *objs = b.objs;
        b.objs = NULL;
        *n = k;
        if (img_w)
            *img_w = w;
        if (img_h)
            *img_h = h;
    }
    bufs_release(&b);
    return st;
}

/* ---- drawing ---- */

eng_status eng_det_draw(const eng_detector *m, const char *image_path, const eng_det_object *objs,
                        int n, uint8_t **jpg, size_t *len, eng_diag *d)
{
    static const uint8_t palette[8][3] = {{230, 25, 75},  {60, 180, 75},  {255, 225, 25},
                                          {0, 130, 200},  {245, 130, 48}, {145, 30, 180},
                                          {70, 240, 240}, {240, 50, 230}};
    static const uint8_t black[3] = {0, 0, 0};
    *jpg = NULL;
    *len = 0;
    eng_image *im = NULL;
    eng_status st = eng_image_decode_file(image_path, 0, &im, d);
    if (st != ENG_OK)
        return st;
    int side = im->w > im->h ? im->w : im->h;
    int thick = side / 300 + 2;
    int scale = side / 400 + 1;
    /* the confident ones; when there are none, the best if it is plausible */
    int best = -1, nconf = 0;
    for (int i = 0; i < n; i++) {
        nconf += objs[i].score >= DET_CONFIDENT;
        if (best < 0 || objs[i].score > objs[best].score)
            best = i;
    }
    /* weakest first so the best boxes end on top */
    for (int i = n - 1; i >= 0; i--) {
        const eng_det_object *o = &objs[i];
        if (nconf ? o->score < DET_CONFIDENT : (i != best || o->score < DET_DRAW_FALLBACK))
            continue;
        const uint8_t *col = palette[o->category % 8];
        int x = (int)lrintf(o->x), y = (int)lrintf(o->y);
        eng_image_draw_rect(im, x, y, (int)lrintf(o->w), (int)lrintf(o->h), col, thick);
        char label[160];
        const char *name = o->category >= 0 && o->category < m->ncat ? m->cats[o->category] : "?";
        snprintf(label, sizeof label, "%.120s %.2f", name, o->score);
        int tw = 0, th = 0;
        eng_image_text_size(label, scale, &tw, &th);
        int ty = y - th >= 0 ? y - th : y;
        int tx = x + tw <= im->w ? x : (im->w - tw > 0 ? im->w - tw : 0);
        eng_image_draw_text(im, tx, ty, label, black, col, scale);
    }
    st = eng_image_encode_jpeg(im, 90, jpg, len, d);
    eng_image_free(im);
    return st;
}

/* ---- metrics ---- */

static double r4(double v) { return round(v * 10000) / 10000; }

eng_status det_metrics(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred, int ncat,
                       const char *const *cats, const det_eval_extra *x, double map50_out[1],
                       char **json, eng_diag *d)
{
    *json = NULL;
    static const double ious[3] = {0.3, 0.5, 0.75};
    double map[3];
    double *per = malloc((size_t)3 * ncat * sizeof *per);
    int *ngt_cat = calloc((size_t)ncat, sizeof *ngt_cat);
    int *hit_cat = calloc((size_t)ncat, sizeof *hit_cat);
    if (!per || !ngt_cat || !hit_cat) {
        free(per);
        free(ngt_cat);
        free(hit_cat);
        return eng_fail(d, ENG_ENOMEM, "metrics: out of memory");
    }
    eng_status st =
        eng_det_map_ex(gt, ngt, pred, npred, ncat, ious, 3, ENG_DET_MAX_DETS, map, per, d);
    if (st != ENG_OK) {
        free(per);
        free(ngt_cat);
        free(hit_cat);
        return st;
    }
    /* tag accuracy: share of a tag's boxes found (IoU >= 0.5) by a confident
     * (score >= DET_CONFIDENT) detection of that tag */
    for (int i = 0; i < ngt; i++) {
        int c = gt[i].category;
        ngt_cat[c]++;
        for (int j = 0; j < npred; j++)
            if (pred[j].image == gt[i].image && pred[j].category == c &&
                pred[j].score >= DET_CONFIDENT && eng_det_iou(pred[j].bbox, gt[i].bbox) >= 0.5) {
                hit_cat[c]++;
                break;
            }
    }
    if (map50_out)
        map50_out[0] = map[1];
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    ok = ok && cJSON_AddNumberToObject(o, "meanAveragePrecision30", r4(map[0] < 0 ? 0 : map[0]));
    ok = ok && cJSON_AddNumberToObject(o, "meanAveragePrecision50", r4(map[1] < 0 ? 0 : map[1]));
    ok = ok && cJSON_AddNumberToObject(o, "meanAveragePrecision75", r4(map[2] < 0 ? 0 : map[2]));
    cJSON *tags = ok ? cJSON_AddObjectToObject(o, "tagPerformance") : NULL;
    ok = ok && tags;
    for (int c = 0; ok && c < ncat; c++) {
        if (ngt_cat[c] == 0)
            continue;
        cJSON *t = cJSON_AddObjectToObject(tags, cats[c]);
        ok = t && cJSON_AddNumberToObject(t, "accuracy", r4((double)hit_cat[c] / ngt_cat[c])) &&
             cJSON_AddNumberToObject(t, "averagePrecision50", r4(per[ncat + c])) &&
             cJSON_AddNumberToObject(t, "averagePrecision30", r4(per[c])) &&
             cJSON_AddNumberToObject(t, "averagePrecision75", r4(per[2 * ncat + c])) &&
             cJSON_AddNumberToObject(t, "boxes", ngt_cat[c]);
    }
    if (ok && x) {
        if (x->evaluated_on) {
            cJSON *e = cJSON_AddObjectToObject(o, "evaluatedOn");
            ok = e && cJSON_AddStringToObject(e, "dataset", x->evaluated_on) &&
                 cJSON_AddNumberToObject(e, "imageCount", x->image_count);
        }
        if (ok && x->cost_minutes >= 0)
            ok = cJSON_AddNumberToObject(o, "trainingCostInMinutes",
                                         round(x->cost_minutes * 1000) / 1000) != NULL;
        if (ok && x->stop_reason)
            ok = cJSON_AddStringToObject(o, "stopReason", x->stop_reason) != NULL;
    }
    char *s = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    free(per);
    free(ngt_cat);
    free(hit_cat);
    if (!s)
        return eng_fail(d, ENG_ENOMEM, "metrics json: out of memory");
    *json = s;
    return ENG_OK;
}

eng_status det_predictions_json(const eng_det_pred *pred, int npred, const long long *cat_ids,
                                char **out, eng_diag *d)
{
    /* written by hand: numbers with enough digits that a reader scores
     * exactly what was measured */
    size_t cap = 64 + (size_t)npred * 160, len = 0;
    char *s = malloc(cap);
    if (!s)
        return eng_fail(d, ENG_ENOMEM, "predictions json: out of memory");
    s[len++] = '[';
    for (int i = 0; i < npred; i++) {
        const eng_det_pred *p = &pred[i];
        long long cid = cat_ids ? cat_ids[p->category] : p->category + 1;
        int w = snprintf(s + len, cap - len,
                         "%s\n{\"image_id\": %lld, \"category_id\": %lld, \"bbox\": [%.9g, %.9g, "
                         "%.9g, %.9g], \"score\": %.9g}",
                         i ? "," : "", p->image, cid, p->bbox[0], p->bbox[1], p->bbox[2],
                         p->bbox[3], p->score);
        if (w < 0 || (size_t)w >= cap - len) {
            free(s);
            return eng_fail(d, ENG_ENOMEM, "predictions json: out of memory");
        }
        len += (size_t)w;
    }
    snprintf(s + len, cap - len, "\n]\n");
    *out = s;
    return ENG_OK;
}

/* ---- evaluation ---- */

eng_status eng_det_evaluate(const eng_detector *m, eng_backbone *const *backbones, int nbackbones,
                            const eng_sample *s, int n, const eng_eval_opts *o, char **metrics_json,
                            char **predictions_json, eng_diag *d)
{
    return det_evaluate(m, backbones, nbackbones, s, n, o, NULL, metrics_json, predictions_json, d);
}

/* Hands o->detail the per-image data (detail.h); skipped when memory is short. */
static void emit_detail(const eng_detector *m, const eng_sample *s, int n, const eng_det_gt *gt,
                        int ngt, const eng_det_pred *pred, int npred, const eng_eval_opts *o)
{
    const char **paths = malloc((size_t)n * sizeof *paths);
    long long *ids = malloc((size_t)n * sizeof *ids);
    int *ws = malloc((size_t)n * sizeof *ws), *hs = malloc((size_t)n * sizeof *hs);
    if (paths && ids && ws && hs) {
        for (int i = 0; i < n; i++) {
            paths[i] = s[i].path;
            ids[i] = s[i].id ? s[i].id : i + 1;
            ws[i] = s[i].width;
            hs[i] = s[i].height;
        }
        eng_eval_detail dt = {.detection = 1,
                              .n = n,
                              .ncat = m->ncat,
                              .categories = (const char *const *)m->cats,
                              .paths = paths,
                              .ids = ids,
                              .widths = ws,
                              .heights = hs,
                              .gt = gt,
                              .ngt = ngt,
                              .pred = pred,
                              .npred = npred};
        o->detail(o->detail_ctx, &dt);
    }
    free(paths);
    free(ids);
    free(ws);
    free(hs);
}

eng_status det_evaluate(const eng_detector *m, eng_backbone *const *backbones, int nbackbones,
                        const eng_sample *s, int n, const eng_eval_opts *o, const char *cache_dir,
                        char **metrics_json, char **predictions_json, eng_diag *d)
{
    *metrics_json = NULL;
    if (predictions_json)
        *predictions_json = NULL;
    eng_backbone *bb = NULL, *cbb = NULL;
    eng_status st = det_pick_backbone(backbones, nbackbones, m->bb_name, m->bb_checksum, &bb, d);
    if (st == ENG_OK)
        st = pick_crop_backbone(m, backbones, nbackbones, &cbb, d);
    if (st != ENG_OK)
        return st;
    int threads = o && o->threads > 0 ? o->threads : 1;
    int ngt = 0;
    for (int i = 0; i < n; i++)
        ngt += s[i].nboxes;
    eng_det_gt *gt = calloc((size_t)ngt + 1, sizeof *gt);
    eng_det_pred *pred = calloc((size_t)n * ENG_DET_TOPK + 1, sizeof *pred);
    det_bufs b;
    if (!gt || !pred || bufs_init(&b, m, NULL) != ENG_OK) {
        free(gt);
        free(pred);
        return eng_fail(d, ENG_ENOMEM, "evaluation: out of memory");
    }
    /* the objects computed elsewhere (o->dets: eng_det_predict of each
     * image, the same objects as predict_one's with or without the cache,
     * whose features are the float16 ones computed here), or here image by
     * image */
    eng_det_object *far = NULL;
    int *far_n = NULL, *far_wh = NULL, taken = 0;
    if (o && o->dets && n > 0) {
        const char **paths = malloc((size_t)n * sizeof *paths);
        far = calloc((size_t)n * ENG_DET_TOPK, sizeof *far);
        far_n = calloc((size_t)n, sizeof *far_n);
        far_wh = calloc((size_t)n * 2, sizeof *far_wh);
        if (!paths || !far || !far_n || !far_wh) {
            st = eng_fail(d, ENG_ENOMEM, "evaluation: out of memory");
        } else {
            for (int i = 0; i < n; i++)
                paths[i] = s[i].path;
            int rc = o->dets(o->dets_ctx, m, paths, n, far, far_n, far_wh, &st, d);
            if (rc < 0 && st == ENG_OK)
                st = eng_fail(d, ENG_EIO, "evaluation: the objects computed elsewhere failed");
            taken = rc == 0;
            if (rc >= 0)
                st = ENG_OK;
        }
        free(paths);
    }
    int npred = 0, k = 0;
    for (int i = 0; i < n && st == ENG_OK; i++) {
        if (!taken && o && o->abort && o->abort(o->ctx)) {
            st = eng_fail(d, ENG_EABORTED, "evaluation aborted");
            break;
        }
        int w = 0, h = 0, no = 0;
        if (taken) {
            no = far_n[i] < 0 ? 0 : far_n[i] > ENG_DET_TOPK ? ENG_DET_TOPK : far_n[i];
            memcpy(b.objs, far + (size_t)i * ENG_DET_TOPK, (size_t)no * sizeof *b.objs);
            w = far_wh[2 * i];
            h = far_wh[2 * i + 1];
        } else {
            st = predict_one(m, bb, cbb, s[i].path, cache_dir, threads, &b, &no, &w, &h, d);
        }
        if (st != ENG_OK)
            break;
        /* boxes refer to the declared size; predictions are in it too */
        float fx = s[i].width > 0 && w > 0 ? (float)s[i].width / w : 1,
              fy = s[i].height > 0 && h > 0 ? (float)s[i].height / h : 1;
        long long id = s[i].id ? s[i].id : i + 1;
        for (int j = 0; j < no; j++) {
            eng_det_pred *p = &pred[npred++];
            p->image = id;
            p->category = b.objs[j].category;
            p->bbox[0] = b.objs[j].x * fx;
            p->bbox[1] = b.objs[j].y * fy;
            p->bbox[2] = b.objs[j].w * fx;
            p->bbox[3] = b.objs[j].h * fy;
            p->score = b.objs[j].score;
        }
        for (int j = 0; j < s[i].nboxes; j++) {
            const eng_box *x = &s[i].boxes[j];
            if (x->category < 0 || x->category >= m->ncat)
                continue;
            gt[k].image = id;
            gt[k].category = x->category;
            gt[k].bbox[0] = x->x;
            gt[k].bbox[1] = x->y;
            gt[k].bbox[2] = x->w;
            gt[k].bbox[3] = x->h;
            k++;
        }
    }
    bufs_release(&b);
    free(far);
    free(far_n);
    free(far_wh);
    if (st == ENG_OK) {
        /* round-trip through the printed form so the reported mAP is the one
         * a reader of predictions.json computes */
        for (int j = 0; j < npred; j++) {
            char tmp[64];
            for (int q = 0; q < 4; q++) {
                snprintf(tmp, sizeof tmp, "%.9g", pred[j].bbox[q]);
                pred[j].bbox[q] = strtod(tmp, NULL);
            }
            snprintf(tmp, sizeof tmp, "%.9g", pred[j].score);
            pred[j].score = strtod(tmp, NULL);
        }
        det_eval_extra x = {o && o->dataset_name ? o->dataset_name : "dataset", n, -1, NULL};
        st = det_metrics(gt, k, pred, npred, m->ncat, (const char *const *)m->cats, &x, NULL,
                         metrics_json, d);
    }
    if (st == ENG_OK && o && o->detail)
        emit_detail(m, s, n, gt, k, pred, npred, o);
    if (st == ENG_OK && predictions_json) {
        st = det_predictions_json(pred, npred, o ? o->category_ids : NULL, predictions_json, d);
        if (st != ENG_OK) {
            free(*metrics_json);
            *metrics_json = NULL;
        }
    }
    free(gt);
    free(pred);
    return st;
}

/* ---- model file ---- */

eng_status eng_detector_save(const eng_detector *m, const char *path, eng_diag *d)
{
    eng_status st = ENG_ENOMEM;
    cJSON *cats = cJSON_CreateStringArray((const char *const *)m->cats, m->ncat);
    cJSON *bbs = cJSON_CreateArray();
    cJSON *pre = cJSON_CreateObject();
    cJSON *b = cJSON_CreateObject();
    char *s_cats = NULL, *s_bbs = NULL, *s_pre = NULL;
    int ok = cats && bbs && pre && b && cJSON_AddItemToArray(bbs, b);
    if (!ok)
        cJSON_Delete(b);
    ok = ok && cJSON_AddStringToObject(b, "name", m->bb_name) &&
         cJSON_AddStringToObject(b, "checksum", m->bb_checksum);
    cJSON *in = ok ? cJSON_AddArrayToObject(pre, "input") : NULL;
    ok = ok && in && cJSON_AddItemToArray(in, cJSON_CreateNumber(DET_SIZE)) &&
         cJSON_AddItemToArray(in, cJSON_CreateNumber(DET_SIZE)) &&
         cJSON_AddStringToObject(pre, "resize",
                                 m->letterbox ? "letterbox: padded to a square with grey 128 at "
                                                "the bottom/right, then bilinear"
                                              : "squash bilinear (aspect not kept)") &&
         cJSON_AddNumberToObject(pre, "letterbox", m->letterbox) &&
         cJSON_AddStringToObject(pre, "features", m->feat_node) &&
         cJSON_AddNumberToObject(pre, "features_dim", m->fdim) &&
         cJSON_AddNumberToObject(pre, "hidden", m->hidden) &&
         cJSON_AddNumberToObject(pre, "stride", DET_STRIDE) &&
         cJSON_AddNumberToObject(pre, "wh_scale", m->wh_scale) &&
         cJSON_AddNumberToObject(pre, "flip_average", m->flip_average) &&
         cJSON_AddNumberToObject(pre, "nms_iou", m->nms_iou) &&
         cJSON_AddNumberToObject(pre, "min_score", m->min_score) &&
         cJSON_AddNumberToObject(pre, "topk", ENG_DET_TOPK);
    if (ok && m->tiles > 0) {
        cJSON *tl = cJSON_AddObjectToObject(pre, "tiles");
        ok = tl && cJSON_AddNumberToObject(tl, "per_side", m->tiles) &&
             cJSON_AddNumberToObject(tl, "span", DET_TILE_SPAN) &&
             cJSON_AddNumberToObject(tl, "whole_image", m->tile_whole);
    }
    if (ok && m->size_weight > 0) {
        cJSON *sp = cJSON_AddObjectToObject(pre, "size_prior");
        ok = sp && cJSON_AddNumberToObject(sp, "weight", m->size_weight);
    }
    if (ok && det_crop_on(m)) {
        cJSON *cb = cJSON_CreateObject();
        ok = cb && cJSON_AddItemToArray(bbs, cb);
        if (!ok)
            cJSON_Delete(cb);
        ok = ok && cJSON_AddStringToObject(cb, "name", m->crop_bb_name) &&
             cJSON_AddStringToObject(cb, "checksum", m->crop_bb_checksum);
        cJSON *cc = ok ? cJSON_AddObjectToObject(pre, "crop_classifier") : NULL;
        ok = cc && cJSON_AddStringToObject(cc, "backbone", m->crop_bb_name) &&
             cJSON_AddStringToObject(cc, "checksum", m->crop_bb_checksum) &&
             cJSON_AddNumberToObject(cc, "dim", m->crop_dim) &&
             cJSON_AddNumberToObject(cc, "weight", m->crop_gamma) &&
             cJSON_AddNumberToObject(cc, "pad", DET_CROP_PAD) &&
             cJSON_AddNumberToObject(cc, "topk", DET_CROP_TOPK);
        if (ok && m->crop_reg) {
            cJSON *br = cJSON_AddObjectToObject(cc, "box_refinement");
            ok = br && cJSON_AddStringToObject(br, "tensor", "crop.box") &&
                 cJSON_AddStringToObject(br, "outputs", "dx dy log_w log_h") &&
                 (!(m->crop_nms > 0) || cJSON_AddNumberToObject(br, "nms_iou", m->crop_nms));
        }
    }
    if (ok && m->calibrated) {
        cJSON *cal = cJSON_AddObjectToObject(pre, "calibration");
        ok = cal && cJSON_AddNumberToObject(cal, "a", m->cal_a) &&
             cJSON_AddNumberToObject(cal, "b", m->cal_b);
    }
    if (ok) {
        s_cats = cJSON_PrintUnformatted(cats);
        s_bbs = cJSON_PrintUnformatted(bbs);
        s_pre = cJSON_PrintUnformatted(pre);
    }
    if (s_cats && s_bbs && s_pre) {
        char version[16];
        snprintf(version, sizeof version, "%d",
                 m->crop_reg && m->crop_nms > 0 ? 6
                 : m->crop_reg                  ? 5
                 : det_crop_on(m)               ? 4
                 : m->size_weight > 0           ? 3
                 : m->tiles > 0                 ? 2
                                                : 1);
        const char *keys[] = {"format",     "kind",          "version",
                              "categories", "backbone",      "backbone_checksum",
                              "backbones",  "preprocessing", "recipe"};
        const char *vals[] = {"visionfs",     "detector", version, s_cats,           m->bb_name,
                              m->bb_checksum, s_bbs,      s_pre,   eng_det_recipe(m)};
        int64_t f = m->fdim, c = m->ncat, h = m->hidden, k = m->hidden > 0 ? h : f;
        int64_t cd = m->crop_dim;
        eng_tensor ts[12] = {
            {ENG_F32, 3, {3, 3, f}, m->dw_cls},
            {ENG_F32, 2, {k, c}, m->wc},
            {ENG_F32, 1, {c}, m->bc},
            {ENG_F32, 3, {3, 3, f}, m->dw_wh},
            {ENG_F32, 2, {f, 4}, m->ww},
            {ENG_F32, 1, {4}, m->bw},
            {ENG_F32, 2, {f, h}, m->w1},
            {ENG_F32, 1, {h}, m->b1},
            {ENG_F32, 2, {c, 2}, m->size_prior},
            {ENG_F32, 1, {cd}, m->crop_mean},
            {ENG_F32, 2, {cd + 1, c + 1}, m->crop_wb},
            {ENG_F32, 2, {cd + 1, DET_BOX_T}, m->crop_reg},
        };
        const char *names[12] = {
            "heatmap.depthwise", "heatmap.weight", "heatmap.bias",          "box.depthwise",
            "box.weight",        "box.bias",       "heatmap.hidden.weight", "heatmap.hidden.bias",
            "box.size_prior",    "crop.mean",      "crop.weight",           "crop.box"};
        const eng_tensor *tp[12];
        const char *tn[12];
        int nt = 0;
        for (int i = 0; i < 12; i++)
            if ((i < 6) || (i < 8 && m->hidden > 0) || (i == 8 && m->size_weight > 0) ||
                ((i == 9 || i == 10) && det_crop_on(m)) || (i == 11 && m->crop_reg)) {
                tn[nt] = names[i];
                tp[nt++] = &ts[i];
            }
        st = eng_modelfile_write(path, tn, tp, nt, keys, vals, 9, d);
    } else {
        eng_fail(d, st, "model file: out of memory");
    }
    cJSON_Delete(cats);
    cJSON_Delete(bbs);
    cJSON_Delete(pre);
    free(s_cats);
    free(s_bbs);
    free(s_pre);
    return st;
}

static float *copy_tensor(const eng_modelfile *f, const char *name, int ndim, const int64_t *dim,
                          eng_status *st, eng_diag *d)
{
    const eng_tensor *t = NULL;
    if (*st != ENG_OK)
        return NULL;
    *st = eng_modelfile_expect(f, name, ndim, dim, &t, d);
    if (*st != ENG_OK)
        return NULL;
    size_t n = (size_t)eng_tensor_numel(t);
    float *p = malloc(n * sizeof *p + 1);
    if (!p) {
        *st = eng_fail(d, ENG_ENOMEM, "model: out of memory");
        return NULL;
    }
    memcpy(p, t->data, n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) {
            free(p);
            *st =
                eng_fail(d, ENG_EFORMAT, "model file: tensor \"%s\" has a non-finite value", name);
            return NULL;
        }
    return p;
}

/* Metadata text s (named key) parsed as JSON; NULL when absent or not JSON
 * (the check of its shape that follows then names the key). */
static cJSON *parse_meta_json(const char *s, const char *key)
{
    cJSON *j = NULL;
    eng_diag jd;
    if (s && eng_json_parse(s, strlen(s), key, &j, &jd) != ENG_OK)
        return NULL;
    return j;
}

eng_status eng_detector_from_file(const eng_modelfile *f, eng_detector **out, eng_diag *d)
{
    *out = NULL;
    const char *kind = eng_modelfile_meta(f, "kind");
    const char *ver = eng_modelfile_meta(f, "version");
    if (!kind)
        return eng_fail(d, ENG_EFORMAT,
                        "model file: metadata \"kind\" missing (not a visionfs model?)");
    if (strcmp(kind, "detector") != 0)
        return eng_fail(d, ENG_EFORMAT, "model file: kind is \"%.32s\", not a detector", kind);
    if (!ver || atoi(ver) < 1)
        return eng_fail(d, ENG_EFORMAT, "model file: metadata \"version\" missing or bad");
    if (atoi(ver) > DET_VERSION)
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "model file: version %d is newer than this program reads (%d)", atoi(ver),
                        DET_VERSION);
    const char *s_cats = eng_modelfile_meta(f, "categories");
    const char *s_pre = eng_modelfile_meta(f, "preprocessing");
    const char *bbn = eng_modelfile_meta(f, "backbone");
    const char *bbc = eng_modelfile_meta(f, "backbone_checksum");
    const char *rec = eng_modelfile_meta(f, "recipe");
    cJSON *cats = parse_meta_json(s_cats, "categories");
    cJSON *pre = parse_meta_json(s_pre, "preprocessing");
    eng_detector *m = calloc(1, sizeof *m);
    eng_status st = ENG_OK;
    int nc = cJSON_GetArraySize(cats);
    if (!m) {
        st = eng_fail(d, ENG_ENOMEM, "model: out of memory");
        goto fail;
    }
    if (!bbn || !*bbn || !bbc || !*bbc) {
        st = eng_fail(d, ENG_EFORMAT,
                      "model file: metadata \"backbone\" or "
                      "\"backbone_checksum\" missing");
        goto fail;
    }
    if (!cJSON_IsArray(cats) || nc < 1 || nc > 1000) {
        st = eng_fail(d, ENG_EFORMAT,
                      "model file: metadata \"categories\" must be a JSON array of 1..1000 names");
        goto fail;
    }
    m->cats = calloc((size_t)nc, sizeof *m->cats);
    m->bb_name = strdup(bbn);
    m->bb_checksum = strdup(bbc);
    m->recipe = strdup(rec ? rec : "{}");
    if (!m->cats || !m->bb_name || !m->bb_checksum || !m->recipe) {
        st = eng_fail(d, ENG_ENOMEM, "model: out of memory");
        goto fail;
    }
    for (cJSON *c = cats->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !*c->valuestring) {
            st = eng_fail(d, ENG_EFORMAT, "model file: category %d is not a name", m->ncat);
            goto fail;
        }
        if (!(m->cats[m->ncat++] = strdup(c->valuestring))) {
            st = eng_fail(d, ENG_ENOMEM, "model: out of memory");
            goto fail;
        }
    }
    cJSON *feat = cJSON_GetObjectItemCaseSensitive(pre, "features");
    cJSON *fd = cJSON_GetObjectItemCaseSensitive(pre, "features_dim");
    cJSON *ws = cJSON_GetObjectItemCaseSensitive(pre, "wh_scale");
    cJSON *nms = cJSON_GetObjectItemCaseSensitive(pre, "nms_iou");
    cJSON *ms = cJSON_GetObjectItemCaseSensitive(pre, "min_score");
    cJSON *stride = cJSON_GetObjectItemCaseSensitive(pre, "stride");
    cJSON *hid = cJSON_GetObjectItemCaseSensitive(pre, "hidden");
    cJSON *lb = cJSON_GetObjectItemCaseSensitive(pre, "letterbox");
    cJSON *fa = cJSON_GetObjectItemCaseSensitive(pre, "flip_average");
    if (!cJSON_IsString(feat) || !cJSON_IsNumber(fd) || fd->valuedouble < 1 ||
        fd->valuedouble > 4096 || !cJSON_IsNumber(ws) || !(ws->valuedouble > 0) ||
        !cJSON_IsNumber(nms) || !(nms->valuedouble >= 0 && nms->valuedouble <= 1) ||
        !cJSON_IsNumber(ms) || !(ms->valuedouble >= 0 && ms->valuedouble < 1) ||
        !cJSON_IsNumber(stride) || stride->valueint != DET_STRIDE ||
        (hid &&
         (!cJSON_IsNumber(hid) || hid->valuedouble < 0 || hid->valuedouble > fd->valuedouble))) {
        st = eng_fail(d, ENG_EFORMAT,
                      "model file: metadata \"preprocessing\" needs features, features_dim, "
                      "stride %d, wh_scale, nms_iou and min_score",
                      DET_STRIDE);
        goto fail;
    }
    m->feat_node = strdup(feat->valuestring);
    m->fdim = fd->valueint;
    m->hidden = hid ? hid->valueint : 0;
    m->letterbox = cJSON_IsNumber(lb) && lb->valueint == 1;
    m->flip_average = cJSON_IsNumber(fa) && fa->valueint == 1; /* absent: off */
    m->wh_scale = (float)ws->valuedouble;
    m->nms_iou = (float)nms->valuedouble;
    m->min_score = (float)ms->valuedouble;
    /* absent (files before tiling): the whole image only */
    cJSON *tl = cJSON_GetObjectItemCaseSensitive(pre, "tiles");
    if (tl) {
        cJSON *ps = cJSON_GetObjectItemCaseSensitive(tl, "per_side");
        cJSON *sp = cJSON_GetObjectItemCaseSensitive(tl, "span");
        cJSON *wi = cJSON_GetObjectItemCaseSensitive(tl, "whole_image");
        if (!cJSON_IsNumber(ps) || ps->valuedouble != DET_TILES || !cJSON_IsNumber(sp) ||
            fabs(sp->valuedouble - DET_TILE_SPAN) > 1e-6 || !cJSON_IsNumber(wi) ||
            (wi->valuedouble != 0 && wi->valuedouble != 1) || m->letterbox) {
            st = eng_fail(d, ENG_EFORMAT,
                          "model file: preprocessing \"tiles\" must be {\"per_side\": %d, "
                          "\"span\": %.1f, \"whole_image\": 0 or 1} without letterbox "
                          "(retrain the model with this version)",
                          DET_TILES, (double)DET_TILE_SPAN);
            goto fail;
        }
        m->tiles = DET_TILES;
        m->tile_whole = wi->valueint;
    }
    /* absent (files before calibration): the peak is the confidence */
    cJSON *cal = cJSON_GetObjectItemCaseSensitive(pre, "calibration");
    if (cal) {
        cJSON *ca = cJSON_GetObjectItemCaseSensitive(cal, "a");
        cJSON *cb = cJSON_GetObjectItemCaseSensitive(cal, "b");
        if (!cJSON_IsNumber(ca) || !cJSON_IsNumber(cb) || !(ca->valuedouble > 0) ||
            !(ca->valuedouble <= 1000) || !(fabs(cb->valuedouble) <= 1e4)) {
            st = eng_fail(d, ENG_EFORMAT,
                          "model file: preprocessing \"calibration\" needs numbers a (> 0) and b");
            goto fail;
        }
        m->calibrated = 1;
        m->cal_a = (float)ca->valuedouble;
        m->cal_b = (float)cb->valuedouble;
    }
    if (!m->feat_node) {
        st = eng_fail(d, ENG_ENOMEM, "model: out of memory");
        goto fail;
    }
    int64_t f3[3] = {3, 3, m->fdim}, c1[1] = {m->ncat};
    int64_t fc[2] = {m->hidden > 0 ? m->hidden : m->fdim, m->ncat};
    int64_t fh[2] = {m->fdim, m->hidden}, h1[1] = {m->hidden};
    if (m->hidden > 0) {
        m->w1 = copy_tensor(f, "heatmap.hidden.weight", 2, fh, &st, d);
        m->b1 = copy_tensor(f, "heatmap.hidden.bias", 1, h1, &st, d);
    }
    int64_t f4[2] = {m->fdim, 4}, b4[1] = {4};
    m->dw_cls = copy_tensor(f, "heatmap.depthwise", 3, f3, &st, d);
    m->wc = copy_tensor(f, "heatmap.weight", 2, fc, &st, d);
    m->bc = copy_tensor(f, "heatmap.bias", 1, c1, &st, d);
    m->dw_wh = copy_tensor(f, "box.depthwise", 3, f3, &st, d);
    m->ww = copy_tensor(f, "box.weight", 2, f4, &st, d);
    m->bw = copy_tensor(f, "box.bias", 1, b4, &st, d);
    /* absent (files before version 3): the box head's sizes */
    cJSON *sp = cJSON_GetObjectItemCaseSensitive(pre, "size_prior");
    if (sp && st == ENG_OK) {
        cJSON *sw = cJSON_GetObjectItemCaseSensitive(sp, "weight");
        if (!cJSON_IsNumber(sw) || !(sw->valuedouble > 0 && sw->valuedouble <= 1)) {
            st = eng_fail(d, ENG_EFORMAT,
                          "model file: preprocessing \"size_prior\" needs a weight in (0, 1]");
            goto fail;
        }
        int64_t c2[2] = {m->ncat, 2};
        m->size_weight = (float)sw->valuedouble;
        m->size_prior = copy_tensor(f, "box.size_prior", 2, c2, &st, d);
    }
    /* absent (files before version 4): no second stage */
    cJSON *cc = cJSON_GetObjectItemCaseSensitive(pre, "crop_classifier");
    if (cc && st == ENG_OK) {
        cJSON *cn = cJSON_GetObjectItemCaseSensitive(cc, "backbone");
        cJSON *cs = cJSON_GetObjectItemCaseSensitive(cc, "checksum");
        cJSON *cd = cJSON_GetObjectItemCaseSensitive(cc, "dim");
        cJSON *cw = cJSON_GetObjectItemCaseSensitive(cc, "weight");
        cJSON *br = cJSON_GetObjectItemCaseSensitive(cc, "box_refinement");
        if (!cJSON_IsString(cn) || !cJSON_IsString(cs) || !cJSON_IsNumber(cd) ||
            !(cd->valuedouble >= 1 && cd->valuedouble <= 65536) || !cJSON_IsNumber(cw) ||
            !(cw->valuedouble >= 0 && cw->valuedouble <= 1) ||
            (cw->valuedouble == 0 && !cJSON_IsObject(br))) {
            st = eng_fail(d, ENG_EFORMAT,
                          "model file: preprocessing \"crop_classifier\" needs a backbone, its "
                          "checksum, a dim in 1..65536 and a weight in [0, 1], above 0 "
                          "without a box_refinement");
            goto fail;
        }
        m->crop_dim = cd->valueint;
        m->crop_bb_name = strdup(cn->valuestring);
        m->crop_bb_checksum = strdup(cs->valuestring);
        if (!m->crop_bb_name || !m->crop_bb_checksum) {
            st = eng_fail(d, ENG_ENOMEM, "model file: out of memory");
            goto fail;
        }
        int64_t d1[1] = {m->crop_dim}, d2[2] = {m->crop_dim + 1, m->ncat + 1};
        m->crop_mean = copy_tensor(f, "crop.mean", 1, d1, &st, d);
        m->crop_wb = copy_tensor(f, "crop.weight", 2, d2, &st, d);
        int64_t d3[2] = {m->crop_dim + 1, DET_BOX_T};
        if (cJSON_IsObject(br)) /* absent (files before version 5): boxes as found */
            m->crop_reg = copy_tensor(f, "crop.box", 2, d3, &st, d);
        /* absent (files before version 6): no NMS after the refinement */
        cJSON *bn = cJSON_GetObjectItemCaseSensitive(br, "nms_iou");
        if (bn && !(cJSON_IsNumber(bn) && bn->valuedouble > 0 && bn->valuedouble <= 1)) {
            st = eng_fail(d, ENG_EFORMAT,
                          "model file: box_refinement's nms_iou must be a number in (0, 1]");
            goto fail;
        }
        m->crop_nms = bn ? (float)bn->valuedouble : 0;
        m->crop_gamma = (float)cw->valuedouble;
    }
    if (st != ENG_OK)
        goto fail;
    cJSON_Delete(cats);
    cJSON_Delete(pre);
    *out = m;
    return ENG_OK;
fail:
    cJSON_Delete(cats);
    cJSON_Delete(pre);
    eng_detector_free(m);
    return st;
}

eng_status eng_detector_load(const char *path, eng_detector **out, eng_diag *d)
{
    *out = NULL;
    eng_modelfile *f = NULL;
    eng_status st = eng_modelfile_read(path, &f, d);
    if (st != ENG_OK)
        return st;
    st = eng_detector_from_file(f, out, d);
    eng_modelfile_free(f);
    return st;
}
