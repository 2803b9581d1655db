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

/* Strings are copied into blocks that start at ARENA_FIRST bytes and double
 * up to ARENA_BLOCK (a longer string gets a block of its own): one malloc
 * for thousands of names, and a small file (a status, one label file) does
 * not cost a megabyte of fresh pages. */
#define ARENA_FIRST ((size_t)4 << 10)
#define ARENA_BLOCK ((size_t)1 << 20)
/* A string longer than half a block goes behind the current block, which
 * keeps filling, rather than leaving most of it unused. */
#define ARENA_BIG (ARENA_BLOCK / 2)

char *coco_arena_dup(coco_arena *a, const char *s, size_t len)
{
    coco_arena_block *b = a->head;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = !b ? ARENA_FIRST : b->cap < ARENA_BLOCK / 2 ? 2 * b->cap : ARENA_BLOCK;
        if (cap < len + 1)
            cap = len + 1;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        /* a big one-off string goes behind the current block so the
         * current block keeps filling */
        if (a->head && len + 1 > ARENA_BIG) {
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

/* ---- hashes and the id map ------------------------------------------------- */

/* FNV-1a, 64 bits: the published offset basis and prime. */
#define FNV64_OFFSET 1469598103934665603ULL
#define FNV64_PRIME 1099511628211ULL

uint64_t coco_name_hash(const char *s)
{
    uint64_t h = FNV64_OFFSET;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * FNV64_PRIME;
    return h;
}

/* The map has at least this many slots per key, so it is at most half full:
 * linear probes stay short and a lookup always reaches an empty slot. */
#define IDMAP_SLOTS_PER_KEY 2

/* MurmurHash3's 64-bit finaliser (fmix64): spreads ids, sequential ones
 * too, over the slots. */
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
    while (cap < n * IDMAP_SLOTS_PER_KEY + 1)
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
    free(ds->build_names);
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
            if (a->bbox[k] > COCO_RELATIVE_MAX)
                return COCO_UNITS_PIXELS;
    }
    return u;
}

static int cmp_pair(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* The most distinct categories any one image is annotated with (0 when out
 * of memory: the kind then falls back to classification, whose validation
 * names every image with several labels). */
static size_t max_labels(const coco_dataset *ds)
{
    if (ds->n_anns == 0)
        return 0;
    int64_t *pairs = malloc(ds->n_anns * 2 * sizeof *pairs);
    if (!pairs)
        return 0;
    for (size_t i = 0; i < ds->n_anns; i++) {
        pairs[2 * i] = ds->anns[i].image_id;
        pairs[2 * i + 1] = ds->anns[i].category_id;
    }
    qsort(pairs, ds->n_anns, 2 * sizeof *pairs, cmp_pair);
    size_t best = 1, run = 1;
    for (size_t i = 1; i < ds->n_anns; i++) {
        if (pairs[2 * i] != pairs[2 * i - 2])
            run = 1;
        else if (pairs[2 * i + 1] != pairs[2 * i - 1])
            run++;
        if (run > best)
            best = run;
    }
    free(pairs);
    return best;
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
    out->max_labels = max_labels(ds);
    if (ds->task_kind != COCO_KIND_UNKNOWN)
        out->kind = ds->task_kind;
    else if (out->boxes)
        out->kind = COCO_KIND_DETECTION;
    else
        out->kind = out->max_labels > 1 ? COCO_KIND_MULTILABEL : COCO_KIND_CLASSIFICATION;
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

static int64_t add_sat(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* A merge has at most this many parts: a record keeps its part in a uint16_t
 * (coco_image.source). */
#define MERGE_MAX_PARTS UINT16_MAX

/* One coco_dataset_merge call: the dataset being built and what the parts
 * merged so far use (freed by merge_release). */
typedef struct merger {
    coco_dataset *ds;
    coco_idmap img_seen, ann_seen, cat_seen; /* ids used so far */
    coco_idmap name_seen;                    /* category name hashes so far */
    int64_t max_img, max_ann, max_cat;       /* largest ids so far; INT64_MIN: none */
    int64_t *cat_map; /* the current part's category index -> merged category id */
    int64_t img_off;  /* the current part's image id shift */
} merger;

/* Stage: the maps and record arrays, sized for all parts. */
static int merge_alloc(merger *m, const coco_dataset *const *parts, size_t n)
{
    coco_dataset *ds = m->ds;
    size_t tot_i = 0, tot_a = 0, tot_c = 0;
    for (size_t k = 0; k < n; k++) {
        tot_i += parts[k]->n_images;
        tot_a += parts[k]->n_anns;
        tot_c += parts[k]->n_cats;
    }
    if (coco_idmap_init(&m->img_seen, tot_i) || coco_idmap_init(&m->ann_seen, tot_a) ||
        coco_idmap_init(&m->cat_seen, tot_c) || coco_idmap_init(&m->name_seen, tot_c) ||
        grow((void **)&ds->images, &ds->cap_images, tot_i, sizeof *ds->images) ||
        grow((void **)&ds->anns, &ds->cap_anns, tot_a, sizeof *ds->anns) ||
        grow((void **)&ds->cats, &ds->cap_cats, tot_c, sizeof *ds->cats))
        return -1;
    return 0;
}

static void merge_release(merger *m)
{
    free(m->cat_map);
    m->cat_map = NULL;
    coco_idmap_free(&m->img_seen);
    coco_idmap_free(&m->ann_seen);
    coco_idmap_free(&m->cat_seen);
    coco_idmap_free(&m->name_seen);
}

/* The problems part k (of n) found while parsing, with its "files[k]." prefix. */
static void merge_problems(coco_dataset *ds, const coco_dataset *p, size_t k, size_t n)
{
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
}

/* The merged category of an earlier part with the name of c (part k), or -1. */
static long same_name_category(const merger *m, const coco_category *c, size_t k)
{
    if (k == 0 || !c->name || !(c->flags & COCO_HAS_ID))
        return -1;
    const coco_dataset *ds = m->ds;
    long same = coco_idmap_get(&m->name_seen, (int64_t)coco_name_hash(c->name));
    if (same >= 0 && (ds->cats[same].source == k || strcmp(ds->cats[same].name, c->name)))
        return -1;
    return same;
}

/* Stage, per part: categories by name, else own id if free, else a new one;
 * fills cat_map for the part's annotations. */
static int merge_categories(merger *m, const coco_dataset *p, size_t k)
{
    coco_dataset *ds = m->ds;
    free(m->cat_map);
    m->cat_map = malloc((p->n_cats ? p->n_cats : 1) * sizeof *m->cat_map);
    if (!m->cat_map)
        return -1;
    for (size_t i = 0; i < p->n_cats; i++) {
        const coco_category *c = &p->cats[i];
        coco_category nc = *c;
        nc.origin = dup_opt(&ds->arena, c->origin, c->origin ? strlen(c->origin) : 0);
        nc.source = (uint16_t)k;
        nc.name = dup_opt(&ds->arena, c->name, c->name ? strlen(c->name) : 0);
        if (c->name && !nc.name)
            return -1;
        long same = same_name_category(m, c, k);
        if (same >= 0) {
            m->cat_map[i] = ds->cats[same].id;
            continue;
        }
        if ((c->flags & COCO_HAS_ID) && k > 0 && coco_idmap_get(&m->cat_seen, c->id) >= 0 &&
            ds->cats[coco_idmap_get(&m->cat_seen, c->id)].source != k) {
            nc.id = m->max_cat == INT64_MAX ? c->id : m->max_cat + 1;
        }
        m->cat_map[i] = nc.id;
        if (nc.flags & COCO_HAS_ID) {
            if (nc.id > m->max_cat)
                m->max_cat = nc.id;
            coco_idmap_put(&m->cat_seen, nc.id, (uint32_t)ds->n_cats, NULL);
            if (nc.name)
                coco_idmap_put(&m->name_seen, (int64_t)coco_name_hash(nc.name),
                               (uint32_t)ds->n_cats, NULL);
        }
        ds->cats[ds->n_cats++] = nc;
    }
    return 0;
}

/* Stage, per part: images, all shifted by one offset (img_off) when any id
 * clashes with an earlier part. */
static int merge_images(merger *m, const coco_dataset *p, size_t k)
{
    coco_dataset *ds = m->ds;
    m->img_off = 0;
    if (p->n_images)
        m->img_off = clash_offset(&m->img_seen, m->max_img, &p->images[0].id, &p->images[0].flags,
                                  p->n_images, sizeof *p->images);
    for (size_t i = 0; i < p->n_images; i++) {
        const coco_image *im = &p->images[i];
        coco_image ni = *im;
        ni.origin = dup_opt(&ds->arena, im->origin, im->origin ? strlen(im->origin) : 0);
        ni.source = (uint16_t)k;
        ni.file_name = dup_opt(&ds->arena, im->file_name, im->file_name_len);
        ni.url = dup_opt(&ds->arena, im->url, im->url ? strlen(im->url) : 0);
        if ((im->file_name && !ni.file_name) || (im->url && !ni.url))
            return -1;
        if (ni.flags & COCO_HAS_ID) {
            ni.id = add_sat(im->id, m->img_off);
            if (ni.id > m->max_img)
                m->max_img = ni.id;
        }
        ds->images[ds->n_images++] = ni;
    }
    for (size_t i = 0; i < p->n_images; i++)
        if (p->images[i].flags & COCO_HAS_ID)
            coco_idmap_put(&m->img_seen, add_sat(p->images[i].id, m->img_off), 0, NULL);
    return 0;
}

/* Stage, per part: annotations, shifted like the images when any id clashes;
 * they follow their image (img_off) and category (cat_map). */
static void merge_annotations(merger *m, const coco_dataset *p, size_t k)
{
    coco_dataset *ds = m->ds;
    int64_t ann_off = 0;
    if (p->n_anns)
        ann_off = clash_offset(&m->ann_seen, m->max_ann, &p->anns[0].id, &p->anns[0].flags,
                               p->n_anns, sizeof *p->anns);
    for (size_t i = 0; i < p->n_anns; i++) {
        const coco_annotation *a = &p->anns[i];
        coco_annotation na = *a;
        na.origin = dup_opt(&ds->arena, a->origin, a->origin ? strlen(a->origin) : 0);
        na.source = (uint16_t)k;
        if (na.flags & COCO_HAS_ID) {
            na.id = add_sat(a->id, ann_off);
            if (na.id > m->max_ann)
                m->max_ann = na.id;
        }
        if (na.flags & COCO_HAS_IMAGE_ID)
            na.image_id = add_sat(a->image_id, m->img_off);
        if (na.flags & COCO_HAS_CAT_ID) {
            long local = coco_idmap_get(&p->cat_ids, a->category_id);
            if (local >= 0)
                na.category_id = m->cat_map[local];
        }
        ds->anns[ds->n_anns++] = na;
    }
    for (size_t i = 0; i < p->n_anns; i++)
        if (p->anns[i].flags & COCO_HAS_ID)
            coco_idmap_put(&m->ann_seen, add_sat(p->anns[i].id, ann_off), 0, NULL);
}

/* Part k of n: its kind (when none yet), problems, categories, images and
 * annotations, in that order. */
static int merge_part(merger *m, const coco_dataset *p, size_t k, size_t n)
{
    if (m->ds->task_kind == COCO_KIND_UNKNOWN)
        m->ds->task_kind = p->task_kind;
    merge_problems(m->ds, p, k, n);
    if (merge_categories(m, p, k) || merge_images(m, p, k))
        return -1;
    merge_annotations(m, p, k);
    return 0;
}

coco_status coco_dataset_merge(const coco_dataset *const *parts, size_t n, coco_dataset **out,
                               coco_diag *diag)
{
    if (!out || (!parts && n))
        return coco_fail(diag, COCO_EINVAL, "coco_dataset_merge: null argument");
    *out = NULL;
    if (n > MERGE_MAX_PARTS)
        return coco_fail(diag, COCO_EINVAL, "coco_dataset_merge: %zu parts, at most %d", n,
                         MERGE_MAX_PARTS);
    for (size_t k = 0; k < n; k++)
        if (!parts[k])
            return coco_fail(diag, COCO_EINVAL, "coco_dataset_merge: part %zu is null", k);
    merger m = {.max_img = INT64_MIN, .max_ann = INT64_MIN, .max_cat = INT64_MIN};
    m.ds = calloc(1, sizeof *m.ds);
    if (!m.ds)
        return coco_fail(diag, COCO_ENOMEM, "out of memory merging datasets");
    m.ds->n_sources = (int)n;

    int rc = merge_alloc(&m, parts, n);
    for (size_t k = 0; k < n && rc == 0; k++)
        rc = merge_part(&m, parts[k], k, n);
    merge_release(&m);
    if (rc == 0 && (coco_dataset_index(m.ds) != COCO_OK || m.ds->problems.oom))
        rc = -1;
    if (rc != 0) {
        coco_dataset_free(m.ds);
        return coco_fail(diag, COCO_ENOMEM, "out of memory merging datasets");
    }
    *out = m.ds;
    return COCO_OK;
}
