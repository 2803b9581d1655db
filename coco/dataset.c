/* dataset.c: the coco_dataset object: storage helpers (string arena,
 * capped problem list, id hash), accessors, kind/units and merging.
 * Design: records live in plain arrays in file order; lookups by id go
 * through an open-addressing hash built once after parsing or merging. */
#include "coco_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small shared helpers ------------------------------------------------ */

const char *coco_status_name(coco_status st)
{
    switch (st) {
    case COCO_OK: return "ok";
    case COCO_EINVAL: return "einval";
    case COCO_ENOMEM: return "enomem";
    case COCO_ETOOBIG: return "etoobig";
    case COCO_ETOODEEP: return "etoodeep";
    case COCO_EJSON: return "ejson";
    case COCO_ENOTCOCO: return "enotcoco";
    case COCO_ELIMIT: return "elimit";
    case COCO_EUNSAFE: return "eunsafe";
    }
    return "unknown";
}

const char *coco_code_name(coco_code code)
{
    switch (code) {
    case COCO_CODE_DATASET_CORRUPT: return "datasetCorrupt";
    case COCO_CODE_INVALID_ANNOTATION_URI: return "DatasetInvalidAnnotationUri";
    case COCO_CODE_DATASET_EMPTY: return "datasetEmpty";
    case COCO_CODE_ANNOTATIONS_INVALID: return "datasetAnnotationsInvalid";
    }
    return "unknown";
}

coco_status coco_fail(coco_diag *d, coco_status st, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
        d->status = st;
    }
    return st;
}

void coco_quote(char *out, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    if (cap < 8) {
        if (cap)
            out[0] = 0;
        return;
    }
    size_t limit = cap - 6; /* room for the closing quote, "..." and NUL */
    out[o++] = '\'';
    for (size_t i = 0; s && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        int k;
        if (c < 0x20 || c == 0x7f)
            k = snprintf(esc, sizeof esc, "\\x%02x", c);
        else if (c == '\'' || c == '\\')
            k = snprintf(esc, sizeof esc, "\\%c", c);
        else {
            esc[0] = (char)c;
            k = 1;
        }
        if (o + (size_t)k > limit) {
            /* do not cut a UTF-8 sequence in half */
            while (o > 1 && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
                o--;
            if (o > 1 && ((unsigned char)out[o - 1] & 0xc0) == 0xc0)
                o--;
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, esc, (size_t)k);
        o += (size_t)k;
    }
    out[o++] = '\'';
    out[o] = 0;
}

/* ---- arena --------------------------------------------------------------- */

char *coco_arena_dup(coco_arena *a, const char *s, size_t len)
{
    coco_arena_block *b = a->head;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > (1u << 20) ? len + 1 : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        /* a big one-off string goes behind the current block so the
         * current block keeps filling */
        if (a->head && len + 1 > (1u << 19)) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    char *p = b->data + b->used;
    if (len)
        memcpy(p, s, len);
    p[len] = 0;
    b->used += len + 1;
    return p;
}

void coco_arena_free(coco_arena *a)
{
    coco_arena_block *b = a->head;
    while (b) {
        coco_arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

/* ---- problem list --------------------------------------------------------- */

void coco_plist_free(coco_plist *l)
{
    free(l->err);
    free(l->warn);
    memset(l, 0, sizeof *l);
}

static coco_problem *plist_slot(coco_plist *l, coco_severity sev)
{
    coco_problem **arr = sev == COCO_ERROR ? &l->err : &l->warn;
    size_t *n = sev == COCO_ERROR ? &l->n_err : &l->n_warn;
    size_t *cap = sev == COCO_ERROR ? &l->cap_err : &l->cap_warn;
    if (sev == COCO_ERROR)
        l->total_err++;
    else
        l->total_warn++;
    if (*n >= COCO_MAX_STORED_PROBLEMS)
        return NULL;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        if (nc > COCO_MAX_STORED_PROBLEMS)
            nc = COCO_MAX_STORED_PROBLEMS;
        coco_problem *na = realloc(*arr, nc * sizeof *na);
        if (!na) {
            l->oom = 1;
            return NULL;
        }
        *arr = na;
        *cap = nc;
    }
    coco_problem *p = &(*arr)[(*n)++];
    memset(p, 0, sizeof *p);
    p->severity = sev;
    return p;
}

coco_problem *coco_plist_addv(coco_plist *l, coco_severity sev, coco_code code, coco_subject subj,
                              int has_id, int64_t id, const char *path, const char *hint,
                              const char *fmt, va_list ap)
{
    coco_problem *p = plist_slot(l, sev);
    if (!p)
        return NULL;
    p->code = code;
    p->subject = subj;
    p->has_id = has_id;
    p->id = has_id ? id : 0;
    snprintf(p->path, sizeof p->path, "%s", path ? path : "");
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    snprintf(p->hint, sizeof p->hint, "%s", hint ? hint : "");
    return p;
}

coco_problem *coco_plist_add(coco_plist *l, coco_severity sev, coco_code code, coco_subject subj,
                             int has_id, int64_t id, const char *path, const char *hint,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    coco_problem *p = coco_plist_addv(l, sev, code, subj, has_id, id, path, hint, fmt, ap);
    va_end(ap);
    return p;
}

void coco_plist_copy(coco_plist *dst, const coco_problem *src, const char *prefix)
{
    coco_problem *p = plist_slot(dst, src->severity);
    if (!p)
        return;
    *p = *src;
    if (prefix && *prefix) {
        snprintf(p->path, sizeof p->path, "%s%s", prefix, src->path);
        snprintf(p->message, sizeof p->message, "%s%s", prefix, src->message);
    }
}

/* ---- id map ---------------------------------------------------------------- */

static size_t hash64(int64_t k)
{
    uint64_t x = (uint64_t)k;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (size_t)x;
}

int coco_idmap_init(coco_idmap *m, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2 + 1)
        cap <<= 1;
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->mask = cap - 1;
    if (!m->keys || !m->vals) {
        coco_idmap_free(m);
        return -1;
    }
    return 0;
}

void coco_idmap_free(coco_idmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

int coco_idmap_put(coco_idmap *m, int64_t key, uint32_t val, uint32_t *existing)
{
    if (!m->vals)
        return -1;
    for (size_t i = hash64(key) & m->mask, probes = 0; probes <= m->mask;
         i = (i + 1) & m->mask, probes++) {
        if (!m->vals[i]) {
            m->keys[i] = key;
            m->vals[i] = val + 1;
            return 1;
        }
        if (m->keys[i] == key) {
            if (existing)
                *existing = m->vals[i] - 1;
            return 0;
        }
    }
    return -1;
}

long coco_idmap_get(const coco_idmap *m, int64_t key)
{
    if (!m->vals)
        return -1;
    for (size_t i = hash64(key) & m->mask, probes = 0; probes <= m->mask;
         i = (i + 1) & m->mask, probes++) {
        if (!m->vals[i])
            return -1;
        if (m->keys[i] == key)
            return (long)m->vals[i] - 1;
    }
    return -1;
}

/* ---- dataset --------------------------------------------------------------- */

coco_status coco_dataset_index(coco_dataset *ds)
{
    coco_idmap_free(&ds->image_ids);
    coco_idmap_free(&ds->cat_ids);
    if (coco_idmap_init(&ds->image_ids, ds->n_images) || coco_idmap_init(&ds->cat_ids, ds->n_cats))
        return COCO_ENOMEM;
    for (size_t i = 0; i < ds->n_images; i++)
        if (ds->images[i].flags & COCO_HAS_ID)
            coco_idmap_put(&ds->image_ids, ds->images[i].id, (uint32_t)i, NULL);
    for (size_t i = 0; i < ds->n_cats; i++)
        if (ds->cats[i].flags & COCO_HAS_ID)
            coco_idmap_put(&ds->cat_ids, ds->cats[i].id, (uint32_t)i, NULL);
    return COCO_OK;
}

void coco_dataset_free(coco_dataset *ds)
{
    if (!ds)
        return;
    free(ds->images);
    free(ds->anns);
    free(ds->cats);
    coco_arena_free(&ds->arena);
    coco_plist_free(&ds->problems);
    coco_idmap_free(&ds->image_ids);
    coco_idmap_free(&ds->cat_ids);
    free(ds);
}

coco_box_units coco_dataset_units(const coco_dataset *ds)
{
    coco_box_units u = COCO_UNITS_NONE;
    for (size_t i = 0; i < ds->n_anns; i++) {
        const coco_annotation *a = &ds->anns[i];
        if (!a->has_bbox)
            continue;
        u = COCO_UNITS_RELATIVE;
        for (int k = 0; k < 4; k++)
            if (a->bbox[k] > 1.0)
                return COCO_UNITS_PIXELS;
    }
    return u;
}

void coco_dataset_info(const coco_dataset *ds, coco_info *out)
{
    memset(out, 0, sizeof *out);
    if (!ds)
        return;
    out->images = ds->n_images;
    out->annotations = ds->n_anns;
    out->categories = ds->n_cats;
    for (size_t i = 0; i < ds->n_anns; i++)
        out->boxes += ds->anns[i].has_bbox ? 1 : 0;
    out->units = coco_dataset_units(ds);
    if (ds->task_kind != COCO_KIND_UNKNOWN)
        out->kind = ds->task_kind;
    else
        out->kind = out->boxes ? COCO_KIND_DETECTION : COCO_KIND_CLASSIFICATION;
}

void coco_dataset_set_kind(coco_dataset *ds, coco_kind kind)
{
    if (ds)
        ds->task_kind = kind;
}

size_t coco_dataset_image_count(const coco_dataset *ds) { return ds ? ds->n_images : 0; }
size_t coco_dataset_annotation_count(const coco_dataset *ds) { return ds ? ds->n_anns : 0; }
size_t coco_dataset_category_count(const coco_dataset *ds) { return ds ? ds->n_cats : 0; }

const coco_image *coco_dataset_image(const coco_dataset *ds, size_t i)
{
    return ds && i < ds->n_images ? &ds->images[i] : NULL;
}

const coco_annotation *coco_dataset_annotation(const coco_dataset *ds, size_t i)
{
    return ds && i < ds->n_anns ? &ds->anns[i] : NULL;
}

const coco_category *coco_dataset_category(const coco_dataset *ds, size_t i)
{
    return ds && i < ds->n_cats ? &ds->cats[i] : NULL;
}

long coco_dataset_find_image(const coco_dataset *ds, int64_t id)
{
    return ds ? coco_idmap_get(&ds->image_ids, id) : -1;
}

long coco_dataset_find_category(const coco_dataset *ds, int64_t id)
{
    return ds ? coco_idmap_get(&ds->cat_ids, id) : -1;
}

coco_status coco_annotation_box_relative(const coco_dataset *ds, const coco_annotation *a,
                                         double out[4], coco_diag *diag)
{
    if (!ds || !a || !out)
        return coco_fail(diag, COCO_EINVAL, "coco_annotation_box_relative: null argument");
    if (!a->has_bbox)
        return coco_fail(diag, COCO_EINVAL, "annotation %lld: no bbox", (long long)a->id);
    double b[4];
    memcpy(b, a->bbox, sizeof b);
    if (coco_dataset_units(ds) == COCO_UNITS_PIXELS) {
        long ii = coco_dataset_find_image(ds, a->image_id);
        if (ii < 0)
            return coco_fail(diag, COCO_EINVAL, "annotation %lld: image %lld not in images",
                             (long long)a->id, (long long)a->image_id);
        const coco_image *im = &ds->images[ii];
        if (!(im->flags & COCO_HAS_SIZE))
            return coco_fail(diag, COCO_EINVAL, "image %lld: no width/height to scale the box",
                             (long long)im->id);
        b[0] /= (double)im->width;
        b[2] /= (double)im->width;
        b[1] /= (double)im->height;
        b[3] /= (double)im->height;
    }
    /* clip to the image, as the validator reports for small overshoots */
    double x0 = b[0] < 0 ? 0 : b[0], y0 = b[1] < 0 ? 0 : b[1];
    double x1 = b[0] + b[2] > 1 ? 1 : b[0] + b[2], y1 = b[1] + b[3] > 1 ? 1 : b[1] + b[3];
    if (!(x1 > x0) || !(y1 > y0))
        return coco_fail(diag, COCO_EINVAL, "annotation %lld: box has no area inside the image",
                         (long long)a->id);
    out[0] = x0;
    out[1] = y0;
    out[2] = x1 - x0;
    out[3] = y1 - y0;
    return COCO_OK;
}

/* ---- merge ----------------------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *na = realloc(*arr, nc * elem);
    if (!na)
        return -1;
    *arr = na;
    *cap = nc;
    return 0;
}

static const char *dup_opt(coco_arena *a, const char *s, size_t len)
{
    return s ? coco_arena_dup(a, s, len) : NULL;
}

/* Offset that moves the ids of one part past max_so_far when any of them
 * already exists in seen; 0 when nothing clashes (or it would overflow). */
static int64_t clash_offset(const coco_idmap *seen, int64_t max_so_far, const int64_t *ids,
                            const uint16_t *flags, size_t n, size_t stride)
{
    int clash = 0;
    int64_t mn = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        const int64_t id = *(const int64_t *)(const void *)((const char *)ids + i * stride);
        const uint16_t fl = *(const uint16_t *)(const void *)((const char *)flags + i * stride);
        if (!(fl & COCO_HAS_ID))
            continue;
        if (id < mn)
            mn = id;
        if (coco_idmap_get(seen, id) >= 0)
            clash = 1;
    }
    int64_t off;
    if (!clash || max_so_far == INT64_MIN || __builtin_sub_overflow(max_so_far, mn, &off) ||
        __builtin_add_overflow(off, 1, &off))
        return 0;
    return off;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

coco_status coco_dataset_merge(const coco_dataset *const *parts, size_t n, coco_dataset **out,
                               coco_diag *diag)
{
    if (!out || (!parts && n))
        return coco_fail(diag, COCO_EINVAL, "coco_dataset_merge: null argument");
    *out = NULL;
    if (n > 65535)
        return coco_fail(diag, COCO_EINVAL, "coco_dataset_merge: %zu parts, at most 65535", n);
    for (size_t k = 0; k < n; k++)
        if (!parts[k])
            return coco_fail(diag, COCO_EINVAL, "coco_dataset_merge: part %zu is null", k);
    coco_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return coco_fail(diag, COCO_ENOMEM, "out of memory merging datasets");
    ds->n_sources = (int)n;
    coco_idmap img_seen = {0}, ann_seen = {0}, cat_seen = {0}, name_seen = {0};
    size_t tot_i = 0, tot_a = 0, tot_c = 0;
    for (size_t k = 0; k < n; k++) {
        tot_i += parts[k]->n_images;
        tot_a += parts[k]->n_anns;
        tot_c += parts[k]->n_cats;
    }
    int64_t *cat_map = NULL;
    int64_t max_img = INT64_MIN, max_ann = INT64_MIN, max_cat = INT64_MIN;
    if (coco_idmap_init(&img_seen, tot_i) || coco_idmap_init(&ann_seen, tot_a) ||
        coco_idmap_init(&cat_seen, tot_c) || coco_idmap_init(&name_seen, tot_c) ||
        grow((void **)&ds->images, &ds->cap_images, tot_i, sizeof *ds->images) ||
        grow((void **)&ds->anns, &ds->cap_anns, tot_a, sizeof *ds->anns) ||
        grow((void **)&ds->cats, &ds->cap_cats, tot_c, sizeof *ds->cats))
        goto oom;

    for (size_t k = 0; k < n; k++) {
        const coco_dataset *p = parts[k];
        if (ds->task_kind == COCO_KIND_UNKNOWN)
            ds->task_kind = p->task_kind;
        char prefix[32] = "";
        if (n > 1)
            snprintf(prefix, sizeof prefix, "files[%zu].", k);
        for (size_t e = 0; e < p->problems.n_err; e++)
            coco_plist_copy(&ds->problems, &p->problems.err[e], prefix);
        for (size_t e = 0; e < p->problems.n_warn; e++)
            coco_plist_copy(&ds->problems, &p->problems.warn[e], prefix);
        /* problems beyond the stored cap are still counted */
        ds->problems.total_err += p->problems.total_err - p->problems.n_err;
        ds->problems.total_warn += p->problems.total_warn - p->problems.n_warn;

        /* categories: by name, else own id if free, else a new one */
        free(cat_map);
        cat_map = malloc((p->n_cats ? p->n_cats : 1) * sizeof *cat_map);
        if (!cat_map)
            goto oom;
        for (size_t i = 0; i < p->n_cats; i++) {
            const coco_category *c = &p->cats[i];
            coco_category nc = *c;
            nc.source = (uint16_t)k;
            nc.name = dup_opt(&ds->arena, c->name, c->name ? strlen(c->name) : 0);
            if (c->name && !nc.name)
                goto oom;
            long same = -1;
            if (k > 0 && c->name && (c->flags & COCO_HAS_ID)) {
                same = coco_idmap_get(&name_seen, (int64_t)hash_name(c->name));
                if (same >= 0 &&
                    (ds->cats[same].source == k || strcmp(ds->cats[same].name, c->name)))
                    same = -1;
            }
            if (same >= 0) {
                cat_map[i] = ds->cats[same].id;
                continue;
            }
            if ((c->flags & COCO_HAS_ID) && k > 0 && coco_idmap_get(&cat_seen, c->id) >= 0 &&
                ds->cats[coco_idmap_get(&cat_seen, c->id)].source != k) {
                nc.id = max_cat == INT64_MAX ? c->id : max_cat + 1;
            }
            cat_map[i] = nc.id;
            if (nc.flags & COCO_HAS_ID) {
                if (nc.id > max_cat)
                    max_cat = nc.id;
                coco_idmap_put(&cat_seen, nc.id, (uint32_t)ds->n_cats, NULL);
                if (nc.name)
                    coco_idmap_put(&name_seen, (int64_t)hash_name(nc.name), (uint32_t)ds->n_cats,
                                   NULL);
            }
            ds->cats[ds->n_cats++] = nc;
        }

        /* images: one offset for the part when any id clashes */
        int64_t img_off = 0;
        if (p->n_images)
            img_off = clash_offset(&img_seen, max_img, &p->images[0].id, &p->images[0].flags,
                                   p->n_images, sizeof *p->images);
        for (size_t i = 0; i < p->n_images; i++) {
            const coco_image *im = &p->images[i];
            coco_image ni = *im;
            ni.source = (uint16_t)k;
            ni.file_name = dup_opt(&ds->arena, im->file_name, im->file_name_len);
            ni.url = dup_opt(&ds->arena, im->url, im->url ? strlen(im->url) : 0);
            if ((im->file_name && !ni.file_name) || (im->url && !ni.url))
                goto oom;
            if (ni.flags & COCO_HAS_ID) {
                ni.id = add_sat(im->id, img_off);
                if (ni.id > max_img)
                    max_img = ni.id;
            }
            ds->images[ds->n_images++] = ni;
        }
        for (size_t i = 0; i < p->n_images; i++)
            if (p->images[i].flags & COCO_HAS_ID)
                coco_idmap_put(&img_seen, add_sat(p->images[i].id, img_off), 0, NULL);

        int64_t ann_off = 0;
        if (p->n_anns)
            ann_off = clash_offset(&ann_seen, max_ann, &p->anns[0].id, &p->anns[0].flags, p->n_anns,
                                   sizeof *p->anns);
        for (size_t i = 0; i < p->n_anns; i++) {
            const coco_annotation *a = &p->anns[i];
            coco_annotation na = *a;
            na.source = (uint16_t)k;
            if (na.flags & COCO_HAS_ID) {
                na.id = add_sat(a->id, ann_off);
                if (na.id > max_ann)
                    max_ann = na.id;
            }
            if (na.flags & COCO_HAS_IMAGE_ID)
                na.image_id = add_sat(a->image_id, img_off);
            if (na.flags & COCO_HAS_CAT_ID) {
                long local = coco_idmap_get(&p->cat_ids, a->category_id);
                if (local >= 0)
                    na.category_id = cat_map[local];
            }
            ds->anns[ds->n_anns++] = na;
        }
        for (size_t i = 0; i < p->n_anns; i++)
            if (p->anns[i].flags & COCO_HAS_ID)
                coco_idmap_put(&ann_seen, add_sat(p->anns[i].id, ann_off), 0, NULL);
    }
    free(cat_map);
    cat_map = NULL;
    coco_idmap_free(&img_seen);
    coco_idmap_free(&ann_seen);
    coco_idmap_free(&cat_seen);
    coco_idmap_free(&name_seen);
    if (coco_dataset_index(ds) != COCO_OK || ds->problems.oom)
        goto oom;
    *out = ds;
    return COCO_OK;
oom:
    free(cat_map);
    coco_idmap_free(&img_seen);
    coco_idmap_free(&ann_seen);
    coco_idmap_free(&cat_seen);
    coco_idmap_free(&name_seen);
    coco_dataset_free(ds);
    return coco_fail(diag, COCO_ENOMEM, "out of memory merging datasets");
}
