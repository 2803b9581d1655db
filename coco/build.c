/* build.c: filling a coco_dataset record by record, for the readers of
 * other formats (voc.c, yolo.c). They produce exactly what the COCO parser
 * does (images, categories, annotations, problems found while reading), so
 * validation, training and export never know where a dataset came from.
 * Ids are positions + 1; a record's origin names the file (and line or
 * element) it came from, for the messages. */
#include "coco_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need)
        nc *= 2;
    void *na = realloc(*arr, nc * elem);
    if (!na)
        return -1;
    *arr = na;
    *cap = nc;
    return 0;
}

static const char *dup_str(coco_dataset *ds, const char *s)
{
    return s ? coco_arena_dup(&ds->arena, s, strlen(s)) : NULL;
}

coco_dataset *coco_build_new(void)
{
    coco_dataset *ds = calloc(1, sizeof *ds);
    if (ds)
        ds->task_kind = COCO_KIND_DETECTION;
    return ds;
}

int64_t coco_build_image(coco_dataset *ds, const char *file_name, int64_t w, int64_t h,
                         const char *origin)
{
    if (grow((void **)&ds->images, &ds->cap_images, ds->n_images + 1, sizeof *ds->images))
        return -1;
    coco_image *im = &ds->images[ds->n_images];
    memset(im, 0, sizeof *im);
    im->file_name = dup_str(ds, file_name);
    im->origin = dup_str(ds, origin);
    if (!im->file_name || (origin && !im->origin))
        return -1;
    im->file_name_len = strlen(file_name);
    im->id = (int64_t)ds->n_images + 1;
    im->index = (uint32_t)ds->n_images;
    im->flags = COCO_HAS_ID | COCO_HAS_NAME;
    if (w > 0 && h > 0) {
        im->width = w;
        im->height = h;
        im->flags |= COCO_HAS_SIZE;
    }
    ds->n_images++;
    return im->id;
}

/* FNV-1a of name[0..len). */
static size_t name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ULL;
    }
    return (size_t)(h ^ (h >> 32));
}

/* The slot of the category named name[0..len) in ds->build_names, or the
 * empty slot where it goes. */
static size_t name_slot(const coco_dataset *ds, const char *name, size_t len)
{
    size_t i = name_hash(name, len) & ds->build_names_mask;
    for (uint32_t v; (v = ds->build_names[i]) != 0; i = (i + 1) & ds->build_names_mask) {
        const char *c = ds->cats[v - 1].name;
        if (strlen(c) == len && memcmp(c, name, len) == 0)
            break;
    }
    return i;
}

/* Keeps the name table at most half full: rebuilt at twice the size. */
static int names_grow(coco_dataset *ds)
{
    size_t cap = ds->build_names ? ds->build_names_mask + 1 : 0;
    if (ds->n_cats + 1 <= cap / 2)
        return 0;
    size_t nc = cap ? cap * 2 : 64;
    while (nc / 2 < ds->n_cats + 1)
        nc *= 2;
    uint32_t *t = calloc(nc, sizeof *t);
    if (!t)
        return -1;
    free(ds->build_names);
    ds->build_names = t;
    ds->build_names_mask = nc - 1;
    for (size_t k = 0; k < ds->n_cats; k++) {
        const char *c = ds->cats[k].name;
        ds->build_names[name_slot(ds, c, strlen(c))] = (uint32_t)k + 1;
    }
    return 0;
}

int64_t coco_build_category(coco_dataset *ds, const char *name, size_t len, const char *origin)
{
    /* a hash table, not a scan: a label folder can name 100,000 classes */
    len = strnlen(name, len); /* the name as stored */
    if (names_grow(ds))
        return -1;
    size_t slot = name_slot(ds, name, len);
    if (ds->build_names[slot])
        return ds->cats[ds->build_names[slot] - 1].id;
    if (grow((void **)&ds->cats, &ds->cap_cats, ds->n_cats + 1, sizeof *ds->cats))
        return -1;
    coco_category *c = &ds->cats[ds->n_cats];
    memset(c, 0, sizeof *c);
    c->name = coco_arena_dup(&ds->arena, name, len);
    c->origin = dup_str(ds, origin);
    if (!c->name || (origin && !c->origin))
        return -1;
    c->id = (int64_t)ds->n_cats + 1;
    c->index = (uint32_t)ds->n_cats;
    c->flags = COCO_HAS_ID | COCO_HAS_NAME;
    ds->n_cats++;
    ds->build_names[slot] = (uint32_t)ds->n_cats;
    return c->id;
}

int coco_build_box(coco_dataset *ds, int64_t image_id, int64_t category_id, const double rel[4],
                   const char *origin)
{
    if (grow((void **)&ds->anns, &ds->cap_anns, ds->n_anns + 1, sizeof *ds->anns))
        return -1;
    coco_annotation *a = &ds->anns[ds->n_anns];
    memset(a, 0, sizeof *a);
    a->origin = dup_str(ds, origin);
    if (origin && !a->origin)
        return -1;
    a->id = (int64_t)ds->n_anns + 1;
    a->image_id = image_id;
    a->category_id = category_id;
    memcpy(a->bbox, rel, sizeof a->bbox);
    a->area = rel[2] * rel[3];
    a->has_bbox = 1;
    a->index = (uint32_t)ds->n_anns;
    a->flags = COCO_HAS_ID | COCO_HAS_IMAGE_ID | COCO_HAS_CAT_ID | COCO_HAS_BBOX | COCO_HAS_AREA;
    ds->n_anns++;
    return 0;
}

coco_status coco_build_finish(coco_dataset *ds)
{
    free(ds->build_names);
    ds->build_names = NULL;
    ds->build_names_mask = 0;
    if (coco_dataset_index(ds) != COCO_OK || ds->problems.oom) {
        coco_dataset_free(ds);
        return COCO_ENOMEM;
    }
    return COCO_OK;
}

void coco_build_problem(coco_dataset *ds, coco_severity sev, const char *path, const char *hint,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    coco_plist_addv(&ds->problems, sev, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_NONE, 0, 0,
                    path, hint, fmt, ap);
    va_end(ap);
}

int coco_parse_double(const char *s, size_t len, double *out)
{
    char buf[64];
    while (len && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        len--;
    }
    while (len &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n'))
        len--;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + len || errno == ERANGE || !isfinite(v))
        return -1;
    /* strtod also reads hex floats, "inf" and "nan": only plain decimals */
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789+-.eE", buf[i]))
            return -1;
    *out = v;
    return 0;
}
