/* coco_int.h: private details shared by the coco/ sources: the dataset
 * layout (growable arrays of records plus a chunked string arena so record
 * pointers stay stable), the capped problem list, and an int64 -> index hash
 * used for id lookups. Nothing here is exported beyond vfs_coco. */
#ifndef VFS_COCO_INT_H
#define VFS_COCO_INT_H

#include "coco.h"

#include <stdarg.h>
#include <stdint.h>

/* Chunked string arena: strings never move once stored. */
typedef struct coco_arena_block {
    struct coco_arena_block *next;
    size_t used, cap;
    char data[];
} coco_arena_block;

typedef struct coco_arena {
    coco_arena_block *head;
} coco_arena;

char *coco_arena_dup(coco_arena *a, const char *s, size_t len);
void coco_arena_free(coco_arena *a);

/* Problem list, capped per severity (the rest are only counted). */
typedef struct coco_plist {
    coco_problem *err, *warn;
    size_t n_err, n_warn;     /* stored */
    size_t cap_err, cap_warn; /* allocated */
    size_t total_err, total_warn;
    int oom;
} coco_plist;

void coco_plist_free(coco_plist *l);
/* Appends a problem; message and hint are printf formats (hint may be NULL).
 * Returns the stored problem or NULL when capped/out of memory. */
coco_problem *coco_plist_add(coco_plist *l, coco_severity sev, coco_code code, coco_subject subj,
                             int has_id, int64_t id, const char *path, const char *hint,
                             const char *fmt, ...) __attribute__((format(printf, 9, 10)));
coco_problem *coco_plist_addv(coco_plist *l, coco_severity sev, coco_code code, coco_subject subj,
                              int has_id, int64_t id, const char *path, const char *hint,
                              const char *fmt, va_list ap);
/* Copies one problem, prefixing its path (and message) with prefix. */
void coco_plist_copy(coco_plist *dst, const coco_problem *p, const char *prefix);

/* Open-addressing map int64 -> index (first insert wins). */
typedef struct coco_idmap {
    int64_t *keys;
    uint32_t *vals; /* index + 1; 0 = empty slot */
    size_t mask;
} coco_idmap;

int coco_idmap_init(coco_idmap *m, size_t n);
void coco_idmap_free(coco_idmap *m);
/* Returns 1 inserted, 0 already present (*existing set), -1 no room. */
int coco_idmap_put(coco_idmap *m, int64_t key, uint32_t val, uint32_t *existing);
long coco_idmap_get(const coco_idmap *m, int64_t key);

struct coco_dataset {
    coco_image *images;
    coco_annotation *anns;
    coco_category *cats;
    size_t n_images, n_anns, n_cats;
    size_t cap_images, cap_anns, cap_cats;
    coco_arena arena;
    coco_plist problems; /* found while parsing */
    coco_kind task_kind; /* from "task" or coco_dataset_set_kind */
    int n_sources;       /* > 1 after a merge of several parts */
    coco_idmap image_ids, cat_ids;
    /* while a reader builds the dataset (build.c): category index + 1 by
     * name, open addressing, 0 = empty; freed by coco_build_finish */
    uint32_t *build_names;
    size_t build_names_mask;
};

struct coco_report {
    coco_summary sum;
    coco_plist problems;
    uint8_t *image_status; /* coco_image_status per image */
    size_t n_images;
    size_t n_cats;
    size_t *cat_images; /* distinct images per category */
    int64_t *cat_ids;
    const char **cat_names; /* in arena; NULL when the category has none */
    size_t training_total;  /* training_only warnings, stored or not */
    int training_applied;
    coco_arena arena;
};

/* The decimal text of a limit #defined as a plain number, to splice into a
 * message or hint that is a plain string: COCO_LIMIT_TEXT(50) is "50". */
#define COCO_LIMIT_TEXT_(x) #x
#define COCO_LIMIT_TEXT(x) COCO_LIMIT_TEXT_(x)

/* A relative box coordinate is at most this; one coordinate above it makes
 * the file's boxes pixel boxes (coco_dataset_units), and a pixel file's box
 * with every coordinate within it looks relative (validate.c warns). */
#define COCO_RELATIVE_MAX 1.0

/* FNV-1a hash of a NUL-terminated name, for the category name maps. */
uint64_t coco_name_hash(const char *s);

/* Recomputes r->sum.state from the counts. */
void coco_report_update_state(coco_report *r);

/* Builds the id maps and returns COCO_OK or COCO_ENOMEM. */
coco_status coco_dataset_index(coco_dataset *ds);
coco_box_units coco_dataset_units(const coco_dataset *ds);

/* Writes s[0..len) into out (cap bytes) as a quoted, printable subject:
 * control bytes and quotes escaped, long names shortened with "...". */
void coco_quote(char *out, size_t cap, const char *s, size_t len);

/* ---- building a dataset from another format (build.c; voc.c, yolo.c) ---- */

/* A new empty dataset of kind detection, or NULL. */
coco_dataset *coco_build_new(void);
/* Appends an image with id n + 1 (flags ID, NAME, and SIZE when w, h > 0);
 * returns its id, or -1 when out of memory. */
int64_t coco_build_image(coco_dataset *ds, const char *file_name, int64_t w, int64_t h,
                         const char *origin);
/* The id of the category named name, added with id n + 1 when new; -1 when
 * out of memory. */
int64_t coco_build_category(coco_dataset *ds, const char *name, size_t len, const char *origin);
/* Appends a box annotation (relative left, top, width, height); 0 or -1. */
int coco_build_box(coco_dataset *ds, int64_t image_id, int64_t category_id, const double rel[4],
                   const char *origin);
/* Indexes the ids; COCO_OK or COCO_ENOMEM (the dataset is freed then). */
coco_status coco_build_finish(coco_dataset *ds);
/* A problem found while reading the files (severity, file-level subject). */
void coco_build_problem(coco_dataset *ds, coco_severity sev, const char *path, const char *hint,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* strtod of s[0..len) (surrounding blanks allowed) into *out: 0, or -1 when
 * it is not one finite number. */
int coco_parse_double(const char *s, size_t len, double *out);

/* Sets diag and returns st. */
coco_status coco_fail(coco_diag *d, coco_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
