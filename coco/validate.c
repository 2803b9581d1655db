/* validate.c: every check of SPEC section 3 over a parsed dataset plus what
 * the caller found on disk for each image, producing a coco_report.
 * Design: one linear pass per record kind with hash lookups, then per-image
 * and per-category tallies through a compact image->annotations index, so
 * 200,000 images validate in milliseconds. Every problem is listed (capped
 * storage, exact counts); the state is derived from the counts at the end.
 * coco_validate runs the stages in order (validate_alloc, report_start,
 * check_images, check_categories, check_annotations, index_annotations,
 * tally_images, check_category_counts) and frees everything in one place. */
#include "coco_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imglimits.h"

/* Limits of SPEC section 3 (the service's published limits). Messages and
 * hints spell them through these names, so the text cannot drift from the
 * rule; the image limits come from the one table, common/imglimits.h. */
#define MAX_FILE_MB IMG_MAX_MB
#define MAX_FILE_BYTES ((uint64_t)IMG_MAX_BYTES)
#define MIN_SIDE IMG_MIN_SIDE
#define MAX_SIDE IMG_MAX_SIDE
#define MAX_BOXES_PER_IMAGE 1000
#define MIN_CLASSIFY_CATEGORIES 2 /* a classifier tells at least 2 classes apart */
#define MAX_CLASSIFY_CATEGORIES 2500
#define MIN_DETECT_CATEGORIES 1
#define MAX_DETECT_CATEGORIES 1000
/* Training needs this many images per category; below it (with at least one
 * image) a warning that coco_report_apply_training_rules turns into an error.
 * Its text says "only 1 image" and "one more image": keep them true. */
#define MIN_TRAIN_IMAGES_PER_CATEGORY 2
_Static_assert(MIN_TRAIN_IMAGES_PER_CATEGORY == 2,
               "the warning in check_category_images is worded for exactly 1 image");

#define BOX_TOLERANCE_PX 1.5 /* overshoot clipped with a warning */
/* A box edge this far past the image, in the box's own units, is inside:
 * rounding of left + width in doubles, not an overshoot worth a warning. */
#define BOX_EPSILON 1e-9
/* EXIF orientations 5..8 turn the stored pixels by 90 degrees: the image is
 * shown with width and height swapped. */
#define EXIF_TURNED_FIRST 5
#define EXIF_TURNED_LAST 8

/* One coco_validate call: the dataset, the report being filled and the
 * scratch arrays its stages share (allocated by validate_alloc, freed by
 * validate_release). */
typedef struct vctx {
    const coco_dataset *ds;
    coco_report *r;
    coco_kind kind;
    coco_box_units units;
    int64_t *disp;       /* per image: displayed width, height from the file */
    uint32_t *ann_img;   /* per annotation: image index + 1, 0 = none */
    uint32_t *ann_cat;   /* per annotation: category index + 1, 0 = none */
    uint32_t *img_start; /* per image (+1): where its annotations start in img_list */
    uint32_t *img_list;  /* annotation indices grouped by image */
    size_t *stamp;       /* per category: the last image counted for it */
    size_t valid_cats;   /* categories with an integer id */
} vctx;

/* "files[k]." when the dataset merges several files. */
static const char *prefix_of(const vctx *v, uint16_t source, char *buf, size_t n)
{
    if (v->ds->n_sources > 1)
        snprintf(buf, n, "files[%u].", (unsigned)source);
    else if (n)
        buf[0] = 0;
    return buf;
}

static void add(vctx *v, coco_severity sev, coco_code code, coco_subject subj, int has_id,
                int64_t id, const char *path, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 9, 10)));

static void add(vctx *v, coco_severity sev, coco_code code, coco_subject subj, int has_id,
                int64_t id, const char *path, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    coco_plist_addv(&v->r->problems, sev, code, subj, has_id, id, path, hint, fmt, ap);
    va_end(ap);
}

static int format_supported(const char *f)
{
    static const char *const ok[] = {"jpeg", "png", "gif", "bmp", "webp", "ico", "tiff", "mpo"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(f, ok[i]) == 0)
            return 1;
    return 0;
}

/* A url as messages show it: without userinfo ("user:password@"), query,
 * fragment or ';' parameters, which may hold credentials (a SAS token) that
 * must never reach status files or logs. */
static void quote_url(char *out, size_t n, const char *url)
{
    char shown[2048];
    coco_quote(out, n, shown, coco_url_shown(url, strlen(url), shown, sizeof shown));
}

size_t coco_url_shown(const char *url, size_t len, char *out, size_t n)
{
    const char *end = url + len, *p = url;
    size_t o = 0;
    /* the scheme's "://" comes before any query, fragment or ';'
     * parameter: one found after them (s3:b/x?sig=S&next=https://h) would
     * copy them out */
    for (const char *s = url; s + 3 <= end && *s != '?' && *s != '#' && *s != ';'; s++) {
        if (s[0] != ':' || s[1] != '/' || s[2] != '/')
            continue;
        /* userinfo ends at the last '@' before the path: a password with
         * an unescaped '@' (user:p@ss@host) must not show its tail */
        const char *auth = s + 3, *at = NULL, *q = auth;
        for (; q < end && *q != '/' && *q != '?' && *q != '#'; q++)
            if (*q == '@')
                at = q;
        for (; url < auth && o + 1 < n; url++)
            out[o++] = *url;
        p = at ? at + 1 : auth;
        break;
    }
    for (; p < end && *p != '?' && *p != '#' && *p != ';' && o + 1 < n; p++)
        out[o++] = *p;
    out[o] = '\0';
    return o;
}

/* The subject of an image: its quoted file name, else its url, else "". */
static void image_subject(const coco_image *im, char *out, size_t n)
{
    if (im->file_name)
        coco_quote(out, n, im->file_name, im->file_name_len);
    else if (im->url)
        quote_url(out, n, im->url);
    else
        snprintf(out, n, "(no file name)");
}

/* ---- images ------------------------------------------------------------------ */

/* One image under check. Its path and subject are formatted only when a
 * problem needs them (icheck_ctx): most images have none. */
typedef struct icheck {
    vctx *v;
    const coco_image *im;
    const coco_image_file *f; /* NULL: unchecked */
    int hid;                  /* the image has an integer id */
    char path[128], subj[160];
} icheck;

static void icheck_ctx(icheck *c)
{
    if (!c->path[0]) {
        char pre[32];
        prefix_of(c->v, c->im->source, pre, sizeof pre);
        if (c->im->origin)
            snprintf(c->path, sizeof c->path, "%s", c->im->origin);
        else
            snprintf(c->path, sizeof c->path, "%simages[%u]", pre, c->im->index);
        image_subject(c->im, c->subj, sizeof c->subj);
    }
}

/* A problem whose subject is the image under check. */
static void image_problem(icheck *c, coco_severity sev, coco_code code, const char *path,
                          const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void image_problem(icheck *c, coco_severity sev, coco_code code, const char *path,
                          const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    coco_plist_addv(&c->v->r->problems, sev, code, COCO_SUBJECT_IMAGE, c->hid, c->im->id, path,
                    hint, fmt, ap);
    va_end(ap);
}

/* The file name must stay inside the dataset folder; returns 1 when it does not. */
static int check_image_name(icheck *c)
{
    const coco_image *im = c->im;
    coco_candidates cand;
    coco_diag d = {0};
    if (!im->file_name ||
        coco_image_candidates(im->file_name, im->file_name_len, &cand, &d) == COCO_OK)
        return 0;
    char p2[160];
    icheck_ctx(c);
    snprintf(p2, sizeof p2, "%s.file_name", c->path);
    image_problem(c, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, p2,
                  "use a path inside the dataset folder, e.g. \"images/cat1.jpg\"",
                  "%s: unsafe file name %s: %s", p2, c->subj, d.msg);
    return 1;
}

/* A url the fetcher cannot follow: only an error when the file is not in
 * the folder (fs is what the caller found). Returns 1 when it is invalid. */
static int check_image_url(icheck *c, coco_file_state fs)
{
    const coco_image *im = c->im;
    coco_url_kind uk = coco_url_classify(im->url);
    if (im->flags & COCO_URL_NUL)
        uk = COCO_URL_INVALID;
    if (uk != COCO_URL_INVALID)
        return 0;
    char p2[160], q[160];
    icheck_ctx(c);
    snprintf(p2, sizeof p2, "%s.%s", c->path,
             (im->flags & COCO_URL_IS_COCO) ? "coco_url" : "absolute_url");
    quote_url(q, sizeof q, im->url);
    image_problem(c, fs == COCO_FILE_FOUND ? COCO_WARNING : COCO_ERROR,
                  COCO_CODE_INVALID_ANNOTATION_URI, p2,
                  "use an http, https or file url (spaces written as %20), or copy the file "
                  "into the dataset folder",
                  "%s: url %s is not an http, https or file url", p2, q);
    return 1;
}

static void report_fetch_failed(icheck *c)
{
    char q[160];
    icheck_ctx(c);
    if (c->im->url)
        quote_url(q, sizeof q, c->im->url);
    else
        snprintf(q, sizeof q, "%s", c->subj);
    image_problem(c, COCO_ERROR, COCO_CODE_INVALID_ANNOTATION_URI, c->path,
                  "check the url (an expired SAS token gives 403) or copy the file into the "
                  "dataset folder",
                  "%s: download of %s failed: %s", c->path, q,
                  c->f->error ? c->f->error : "unknown error");
}

/* The size the annotation declares must be the file's, either way round
 * when EXIF turns the image. */
static void check_declared_size(icheck *c, int turned, int64_t disp_w, int64_t disp_h)
{
    const coco_image *im = c->im;
    const coco_image_file *f = c->f;
    int match = (im->width == f->width && im->height == f->height) ||
                (turned && im->width == f->height && im->height == f->width);
    if (match)
        return;
    char p2[160], hint[200];
    icheck_ctx(c);
    snprintf(p2, sizeof p2, "%s%s", c->path, c->im->origin ? "" : ".width");
    snprintf(hint, sizeof hint, "fix width/height in %s to %lldx%lld or re-export the file",
             c->path, (long long)disp_w, (long long)disp_h);
    image_problem(c, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, p2, hint,
                  "%s: declared size %lldx%lld of %s does not match the file's %lldx%lld", p2,
                  (long long)im->width, (long long)im->height, c->subj, (long long)disp_w,
                  (long long)disp_h);
}

/* A file found in the folder: readable, a supported format, not too large,
 * and of the declared size. Sets the displayed size when the file's is
 * known; returns 1 when the file cannot be used. */
static int check_found_file(icheck *c, int64_t *disp_w, int64_t *disp_h)
{
    const coco_image_file *f = c->f;
    int bad = 0;
    if (f->error) {
        icheck_ctx(c);
        image_problem(c, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, c->path,
                      "copy the image again or re-export it; the file is damaged",
                      "%s: image %s is unreadable: %s", c->path, c->subj, f->error);
        bad = 1;
    }
    if (!f->format && !f->error) {
        icheck_ctx(c);
        image_problem(c, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, c->path,
                      "replace it with a JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF or MPO image",
                      "%s: %s is not an image", c->path, c->subj);
        bad = 1;
    } else if (f->format && !format_supported(f->format)) {
        icheck_ctx(c);
        image_problem(c, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, c->path,
                      "convert it to JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF or MPO",
                      "%s: image %s is in format '%.32s', which is not supported", c->path, c->subj,
                      f->format);
        bad = 1;
    }
    if (f->size > MAX_FILE_BYTES) {
        icheck_ctx(c);
        image_problem(c, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, c->path,
                      "recompress or shrink the image below " COCO_LIMIT_TEXT(MAX_FILE_MB) " MB",
                      "%s: image %s is %.1f MB, more than %d MB", c->path, c->subj,
                      (double)f->size / (1024.0 * 1024.0), MAX_FILE_MB);
        bad = 1;
    }
    if (f->width > 0 && f->height > 0) {
        int turned = f->orientation >= EXIF_TURNED_FIRST && f->orientation <= EXIF_TURNED_LAST;
        *disp_w = turned ? f->height : f->width;
        *disp_h = turned ? f->width : f->height;
        if (c->im->flags & COCO_HAS_SIZE)
            check_declared_size(c, turned, *disp_w, *disp_h);
    }
    return bad;
}

/* What the caller found for the image (fs): counts it and returns the
 * image's status st updated. */
static uint8_t check_image_file(icheck *c, coco_file_state fs, uint8_t st, int64_t *disp_w,
                                int64_t *disp_h)
{
    coco_summary *sum = &c->v->r->sum;
    switch (fs) {
    case COCO_FILE_UNCHECKED: break;
    case COCO_FILE_MISSING:
        sum->images_missing++;
        if (st == COCO_IMAGE_OK)
            st = COCO_IMAGE_MISSING;
        icheck_ctx(c);
        image_problem(c, COCO_WARNING, COCO_CODE_DATASET_CORRUPT, c->path,
                      c->im->origin
                          ? "copy the image where its annotation expects it (images/ for "
                            "labels/, JPEGImages/ for Annotations/, else next to the file)"
                          : "copy the file into the dataset folder (at file_name, or by its base "
                            "name in the folder or in images/), or give an absolute_url",
                      "%s: image %s not found", c->path, c->subj);
        break;
    case COCO_FILE_FETCHING:
        sum->images_fetching++;
        if (st == COCO_IMAGE_OK)
            st = COCO_IMAGE_FETCHING;
        break;
    case COCO_FILE_FETCH_FAILED:
        sum->images_failed++;
        if (st == COCO_IMAGE_OK)
            st = COCO_IMAGE_FAILED;
        report_fetch_failed(c);
        break;
    case COCO_FILE_FOUND:
        sum->images_found++;
        if (check_found_file(c, disp_w, disp_h))
            st = COCO_IMAGE_BAD;
        break;
    }
    return st;
}

/* Width and height within the limits: the file's size when known, else the
 * declared one. Returns 1 when outside. */
static int check_image_sides(icheck *c, int64_t disp_w, int64_t disp_h)
{
    const coco_image *im = c->im;
    int64_t w = disp_w ? disp_w : im->width, h = disp_h ? disp_h : im->height;
    int known = disp_w || (im->flags & COCO_HAS_SIZE);
    int small = w <= MIN_SIDE || h <= MIN_SIDE;
    if (!known || !(small || w > MAX_SIDE || h > MAX_SIDE))
        return 0;
    icheck_ctx(c);
    image_problem(
        c, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, c->path,
        small ? "use images larger than " COCO_LIMIT_TEXT(MIN_SIDE) "x" COCO_LIMIT_TEXT(
                    MIN_SIDE) " pixels"
              : "downscale the image to at most " COCO_LIMIT_TEXT(MAX_SIDE) " pixels a side",
        "%s: image %s is %lldx%lld; width and height must be over %d and at most %d", c->path,
        c->subj, (long long)w, (long long)h, MIN_SIDE, MAX_SIDE);
    return 1;
}

/* Image i with what the caller found for it (f, NULL = unchecked): sets its
 * status and the displayed size from the file (0 when unknown). */
static void check_image(vctx *v, size_t i, const coco_image_file *f, int64_t *disp_w,
                        int64_t *disp_h)
{
    icheck c;
    c.v = v;
    c.im = &v->ds->images[i];
    c.f = f;
    c.hid = !!(c.im->flags & COCO_HAS_ID);
    c.path[0] = 0;
    uint8_t st = c.hid ? COCO_IMAGE_OK : COCO_IMAGE_INVALID;
    *disp_w = *disp_h = 0;

    if (check_image_name(&c))
        st = COCO_IMAGE_INVALID;
    coco_file_state fs = f ? f->state : COCO_FILE_UNCHECKED;
    if (check_image_url(&c, fs) && fs != COCO_FILE_FOUND && st == COCO_IMAGE_OK)
        st = COCO_IMAGE_INVALID;
    st = check_image_file(&c, fs, st, disp_w, disp_h);
    if (check_image_sides(&c, *disp_w, *disp_h) && st == COCO_IMAGE_OK)
        st = COCO_IMAGE_BAD;
    if (st == COCO_IMAGE_BAD && fs == COCO_FILE_FOUND)
        v->r->sum.images_bad++;
    v->r->image_status[i] = st;
}

/* Image i's id must be its own (seen: the ids of the images before it). */
static void check_image_id(vctx *v, coco_idmap *seen, size_t i)
{
    const coco_image *im = &v->ds->images[i];
    uint32_t first;
    if (!(im->flags & COCO_HAS_ID) || coco_idmap_put(seen, im->id, (uint32_t)i, &first) != 0)
        return;
    const coco_image *o = &v->ds->images[first];
    char pre[32], opre[32], path[160];
    prefix_of(v, im->source, pre, sizeof pre);
    prefix_of(v, o->source, opre, sizeof opre);
    snprintf(path, sizeof path, "%simages[%u].id", pre, im->index);
    add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, 1, im->id, path,
        "give every image its own id", "%s: image id %lld is also used by %simages[%u]", path,
        (long long)im->id, opre, o->index);
    if (v->r->image_status[i] == COCO_IMAGE_OK)
        v->r->image_status[i] = COCO_IMAGE_INVALID;
}

/* Stage: every image, in dataset order. */
static coco_status check_images(vctx *v, const coco_image_file *files)
{
    coco_idmap seen = {0};
    if (coco_idmap_init(&seen, v->ds->n_images))
        return COCO_ENOMEM;
    for (size_t i = 0; i < v->ds->n_images; i++) {
        check_image(v, i, files ? &files[i] : NULL, &v->disp[2 * i], &v->disp[2 * i + 1]);
        check_image_id(v, &seen, i);
    }
    coco_idmap_free(&seen);
    return COCO_OK;
}

/* ---- boxes ------------------------------------------------------------------ */

/* "annotations[17]" + suffix, with the merge prefix. */
static const char *ann_path(const vctx *v, const coco_annotation *a, const char *suffix, char *buf,
                            size_t n)
{
    char pre[32];
    prefix_of(v, a->source, pre, sizeof pre);
    if (a->origin)
        snprintf(buf, n, "%s", a->origin);
    else
        snprintf(buf, n, "%sannotations[%u]%s", pre, a->index, suffix);
    return buf;
}

static void check_box(vctx *v, const coco_annotation *a, int64_t img_w, int64_t img_h,
                      int64_t img_id)
{
    int hid = !!(a->flags & COCO_HAS_ID);
    const coco_subject S = COCO_SUBJECT_ANNOTATION;
    const double *b = a->bbox;
    int pixels = v->units == COCO_UNITS_PIXELS;
    const char *unit = pixels ? "pixels" : "relative";
    int nonpos = b[2] <= 0 || b[3] <= 0;
    int looks_rel = pixels && b[0] <= COCO_RELATIVE_MAX && b[1] <= COCO_RELATIVE_MAX &&
                    b[2] <= COCO_RELATIVE_MAX && b[3] <= COCO_RELATIVE_MAX;
    /* bounds, in the box's own units; the tolerance comes from pixels */
    double W = pixels ? (double)img_w : 1.0, H = pixels ? (double)img_h : 1.0;
    int bounds = !nonpos && !(pixels && (img_w <= 0 || img_h <= 0));
    double over_l = -b[0], over_t = -b[1];
    double over_r = b[0] + b[2] - W, over_b = b[1] + b[3] - H;
    if (bounds && over_l <= BOX_EPSILON && over_t <= BOX_EPSILON && over_r <= BOX_EPSILON &&
        over_b <= BOX_EPSILON)
        bounds = 0;
    if (!nonpos && !looks_rel && !bounds)
        return; /* the common case: nothing to format */

    char path[180], box[160];
    ann_path(v, a, ".bbox", path, sizeof path);
    snprintf(box, sizeof box, "[%g, %g, %g, %g]", b[0], b[1], b[2], b[3]);
    if (nonpos) {
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, path,
            "give the box a positive width and height: [left, top, width, height]",
            "%s: box %s (%s) of image %lld has %s", path, box, unit, (long long)img_id,
            b[2] <= 0 && b[3] <= 0 ? "no width and no height"
                                   : (b[2] <= 0 ? "no width" : "no height"));
        return;
    }
    if (looks_rel)
        add(v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, path,
            "write every box in the same units: pixels like the others, or all relative (0..1)",
            "%s: box %s looks relative (0..1) but the file uses pixel boxes", path, box);
    if (!bounds)
        return;
    double tol_x = BOX_EPSILON, tol_y = BOX_EPSILON;
    if (img_w > 0 && img_h > 0) {
        tol_x = pixels ? BOX_TOLERANCE_PX : BOX_TOLERANCE_PX / (double)img_w;
        tol_y = pixels ? BOX_TOLERANCE_PX : BOX_TOLERANCE_PX / (double)img_h;
    }
    double x0 = b[0] < 0 ? 0 : b[0], y0 = b[1] < 0 ? 0 : b[1];
    double x1 = b[0] + b[2] > W ? W : b[0] + b[2], y1 = b[1] + b[3] > H ? H : b[1] + b[3];
    int small = over_l <= tol_x && over_r <= tol_x && over_t <= tol_y && over_b <= tol_y;
    char size[64];
    if (pixels)
        snprintf(size, sizeof size, "%lldx%lld", (long long)img_w, (long long)img_h);
    else
        snprintf(size, sizeof size, "0..1");
    if (small && x1 > x0 && y1 > y0) {
        add(v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, path,
            "nothing to do unless the box is wrong; it was clipped to the image",
            "%s: box %s overshoots image %lld (%s) slightly and is clipped to [%g, %g, %g, %g]",
            path, box, (long long)img_id, size, x0, y0, x1 - x0, y1 - y0);
        return;
    }
    char hint[200];
    snprintf(hint, sizeof hint,
             "fix the box so 0 <= left, 0 <= top, left+width <= %g and top+height <= %g (%s)", W, H,
             unit);
    const char *what = over_l > tol_x || over_t > tol_y ? "starts outside" : "ends outside";
    if (!(x1 > x0 && y1 > y0))
        what = "lies outside";
    add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, path, hint,
        "%s: box %s (%s) %s image %lld: it spans x %g..%g and y %g..%g of %s", path, box, unit,
        what, (long long)img_id, b[0], b[0] + b[2], b[1], b[1] + b[3], size);
}

/* ---- categories ------------------------------------------------------------- */

/* Category i's id must be its own (seen: the ids of the categories before it). */
static void check_category_id(vctx *v, coco_idmap *seen, size_t i)
{
    const coco_category *c = &v->ds->cats[i];
    if (!(c->flags & COCO_HAS_ID))
        return;
    v->valid_cats++;
    uint32_t first;
    if (coco_idmap_put(seen, c->id, (uint32_t)i, &first) != 0)
        return;
    const coco_category *o = &v->ds->cats[first];
    char pre[32], opre[32], path[160];
    prefix_of(v, c->source, pre, sizeof pre);
    prefix_of(v, o->source, opre, sizeof opre);
    snprintf(path, sizeof path, "%scategories[%u].id", pre, c->index);
    add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_CATEGORY, 1, c->id, path,
        "give every category its own id", "%s: category id %lld is also used by %scategories[%u]",
        path, (long long)c->id, opre, o->index);
}

/* Category i's name should be its own (names: hashes of the names before it). */
static void check_category_name(vctx *v, coco_idmap *names, size_t i)
{
    const coco_category *c = &v->ds->cats[i];
    if (!c->name)
        return;
    uint32_t first;
    if (coco_idmap_put(names, (int64_t)coco_name_hash(c->name), (uint32_t)i, &first) != 0)
        return;
    const coco_category *o = &v->ds->cats[first];
    if (!o->name || strcmp(o->name, c->name) != 0)
        return; /* another name with the same hash */
    char q[160], pre[32], opre[32], path[160];
    coco_quote(q, sizeof q, c->name, strlen(c->name));
    prefix_of(v, c->source, pre, sizeof pre);
    prefix_of(v, o->source, opre, sizeof opre);
    snprintf(path, sizeof path, "%scategories[%u].name", pre, c->index);
    add(v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_CATEGORY,
        !!(c->flags & COCO_HAS_ID), c->id, path,
        "rename one of them, or merge them into one category",
        "%s: category name %s is also used by %scategories[%u]", path, q, opre, o->index);
}

/* Stage: every category, in dataset order; keeps ids and names for the report. */
static coco_status check_categories(vctx *v)
{
    const coco_dataset *ds = v->ds;
    coco_report *r = v->r;
    coco_idmap seen = {0}, names = {0};
    coco_status st = COCO_OK;
    if (coco_idmap_init(&seen, ds->n_cats) || coco_idmap_init(&names, ds->n_cats))
        st = COCO_ENOMEM;
    for (size_t i = 0; i < ds->n_cats && st == COCO_OK; i++) {
        const coco_category *c = &ds->cats[i];
        r->cat_ids[i] = c->id;
        if (c->name && !(r->cat_names[i] = coco_arena_dup(&r->arena, c->name, strlen(c->name)))) {
            st = COCO_ENOMEM;
            break;
        }
        check_category_id(v, &seen, i);
        check_category_name(v, &names, i);
    }
    coco_idmap_free(&seen);
    coco_idmap_free(&names);
    return st;
}

/* ---- annotations ------------------------------------------------------------- */

/* The index of the image annotation a points at, or -1 (reported when its
 * image_id is an integer that no image has). */
static long ann_image(vctx *v, const coco_annotation *a)
{
    if (!(a->flags & COCO_HAS_IMAGE_ID))
        return -1;
    long ii = coco_idmap_get(&v->ds->image_ids, a->image_id);
    if (ii < 0) {
        char p2[180];
        ann_path(v, a, ".image_id", p2, sizeof p2);
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_ANNOTATION,
            !!(a->flags & COCO_HAS_ID), a->id, p2,
            "point image_id at an id listed in 'images', or add that image",
            "%s: image_id %lld not in images", p2, (long long)a->image_id);
    }
    return ii;
}

/* The same for its category. */
static long ann_category(vctx *v, const coco_annotation *a)
{
    if (!(a->flags & COCO_HAS_CAT_ID))
        return -1;
    long ci = coco_idmap_get(&v->ds->cat_ids, a->category_id);
    if (ci < 0) {
        char p2[180];
        ann_path(v, a, ".category_id", p2, sizeof p2);
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_ANNOTATION,
            !!(a->flags & COCO_HAS_ID), a->id, p2,
            "point category_id at an id listed in 'categories', or add that category",
            "%s: category_id %lld not in categories", p2, (long long)a->category_id);
    }
    return ci;
}

/* The box of annotation a, whose image has index ii (-1: unknown): ignored
 * in a classification dataset, required in a detection dataset. */
static void check_ann_box(vctx *v, const coco_annotation *a, long ii)
{
    int hid = !!(a->flags & COCO_HAS_ID);
    char bpath[180];
    if (a->has_bbox) {
        if (v->kind == COCO_KIND_CLASSIFICATION || v->kind == COCO_KIND_MULTILABEL) {
            ann_path(v, a, ".bbox", bpath, sizeof bpath);
            add(v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_ANNOTATION, hid, a->id,
                bpath, "remove the bbox, or make the dataset a detection dataset",
                "%s: box ignored in a %s dataset", bpath,
                v->kind == COCO_KIND_MULTILABEL ? "multilabel" : "classification");
            return;
        }
        int64_t w = 0, h = 0;
        if (ii >= 0) {
            const coco_image *im = &v->ds->images[ii];
            w = (im->flags & COCO_HAS_SIZE) ? im->width : v->disp[2 * ii];
            h = (im->flags & COCO_HAS_SIZE) ? im->height : v->disp[2 * ii + 1];
        }
        check_box(v, a, w, h, a->image_id);
    } else if (v->kind == COCO_KIND_DETECTION && hid) {
        /* mistyped boxes were reported while parsing */
        if (!(a->flags & COCO_BAD_BBOX) && ann_path(v, a, ".bbox", bpath, sizeof bpath))
            add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_ANNOTATION, hid, a->id,
                bpath,
                "give every annotation of a detection dataset a bbox [left, top, width, "
                "height]",
                "%s: annotation has no bbox in a detection dataset", bpath);
    }
}

/* Annotation i: its own id (seen: the ids before it), its image, its
 * category and its box. */
static void check_annotation(vctx *v, coco_idmap *seen, size_t i)
{
    const coco_annotation *a = &v->ds->anns[i];
    uint32_t first;
    if ((a->flags & COCO_HAS_ID) && coco_idmap_put(seen, a->id, (uint32_t)i, &first) == 0) {
        const coco_annotation *o = &v->ds->anns[first];
        char p2[180], opre[32];
        ann_path(v, a, ".id", p2, sizeof p2);
        prefix_of(v, o->source, opre, sizeof opre);
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_ANNOTATION, 1, a->id, p2,
            "give every annotation its own id",
            "%s: annotation id %lld is also used by %sannotations[%u]", p2, (long long)a->id, opre,
            o->index);
    }
    long ii = ann_image(v, a);
    long ci = ann_category(v, a);
    v->ann_img[i] = ii >= 0 ? (uint32_t)ii + 1 : 0;
    v->ann_cat[i] = ci >= 0 ? (uint32_t)ci + 1 : 0;
    check_ann_box(v, a, ii);
}

/* Stage: every annotation, in dataset order. */
static coco_status check_annotations(vctx *v)
{
    coco_idmap seen = {0};
    if (coco_idmap_init(&seen, v->ds->n_anns))
        return COCO_ENOMEM;
    for (size_t i = 0; i < v->ds->n_anns; i++)
        check_annotation(v, &seen, i);
    coco_idmap_free(&seen);
    return COCO_OK;
}

/* ---- per image and per category tallies ------------------------------------- */

/* Stage: the image -> annotations index (a counting sort of ann_img). */
static coco_status index_annotations(vctx *v)
{
    size_t ni = v->ds->n_images, na = v->ds->n_anns;
    for (size_t i = 0; i < na; i++)
        if (v->ann_img[i])
            v->img_start[v->ann_img[i]]++;
    for (size_t i = 0; i < ni; i++)
        v->img_start[i + 1] += v->img_start[i];
    uint32_t *fill = calloc(ni ? ni : 1, sizeof *fill);
    if (!fill)
        return COCO_ENOMEM;
    for (size_t i = 0; i < na; i++)
        if (v->ann_img[i]) {
            size_t im = v->ann_img[i] - 1;
            v->img_list[v->img_start[im] + fill[im]++] = (uint32_t)i;
        }
    free(fill);
    return COCO_OK;
}

/* Too many boxes on image i (detection), or not exactly one label
 * (classification). */
static void check_image_labels(vctx *v, size_t i, size_t labels, size_t boxes)
{
    const coco_image *im = &v->ds->images[i];
    int hid = !!(im->flags & COCO_HAS_ID);
    int too_many = v->kind == COCO_KIND_DETECTION && boxes > MAX_BOXES_PER_IMAGE;
    int bad_labels = v->kind == COCO_KIND_CLASSIFICATION && v->ds->n_anns > 0 && hid && labels != 1;
    if (!too_many && !bad_labels)
        return;
    char pre[32], path[160], subj[160];
    prefix_of(v, im->source, pre, sizeof pre);
    if (im->origin)
        snprintf(path, sizeof path, "%s", im->origin);
    else
        snprintf(path, sizeof path, "%simages[%u]", pre, im->index);
    image_subject(im, subj, sizeof subj);
    if (too_many)
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, hid, im->id, path,
            "split the image or drop boxes: at most " COCO_LIMIT_TEXT(
                MAX_BOXES_PER_IMAGE) " per image",
            "%s: image %s has %zu boxes, more than %d", path, subj, boxes, MAX_BOXES_PER_IMAGE);
    if (!bad_labels)
        return;
    if (labels == 0)
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, 1, im->id, path,
            "add one annotation {image_id, category_id} for it, or remove the image",
            "%s: image %s has no label", path, subj);
    else
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, 1, im->id, path,
            "keep exactly one annotation per image, or make it a multilabel dataset "
            "(\"task\": \"multilabel\")",
            "%s: image %s has %zu labels; classification needs exactly one", path, subj, labels);
}

/* Stage: per image its labels and boxes; per category its distinct images. */
static void tally_images(vctx *v)
{
    const coco_dataset *ds = v->ds;
    for (size_t c = 0; c < ds->n_cats; c++)
        v->stamp[c] = SIZE_MAX;
    for (size_t i = 0; i < ds->n_images; i++) {
        size_t labels = 0, boxes = 0;
        for (uint32_t k = v->img_start[i]; k < v->img_start[i + 1]; k++) {
            size_t ai = v->img_list[k];
            labels++;
            boxes += ds->anns[ai].has_bbox ? 1 : 0;
            if (v->ann_cat[ai]) {
                size_t c = v->ann_cat[ai] - 1;
                if (v->stamp[c] != i) {
                    v->stamp[c] = i;
                    v->r->cat_images[c]++;
                }
            }
        }
        check_image_labels(v, i, labels, boxes);
    }
}

/* Category c with fewer images than training needs: a warning, turned into
 * an error by coco_report_apply_training_rules when it has one image. */
static void check_category_images(vctx *v, size_t c)
{
    const coco_category *cat = &v->ds->cats[c];
    coco_report *r = v->r;
    if (!(cat->flags & COCO_HAS_ID) || r->cat_images[c] >= MIN_TRAIN_IMAGES_PER_CATEGORY)
        return;
    char q[160], hint[400], pre[32], path[160];
    if (cat->name)
        coco_quote(q, sizeof q, cat->name, strlen(cat->name));
    else
        snprintf(q, sizeof q, "%lld", (long long)cat->id);
    prefix_of(v, cat->source, pre, sizeof pre);
    if (cat->origin)
        snprintf(path, sizeof path, "%s", cat->origin);
    else
        snprintf(path, sizeof path, "%scategories[%u]", pre, cat->index);
    if (r->cat_images[c] == 0) {
        snprintf(hint, sizeof hint, "label some images with %s or remove the category", q);
        add(v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_CATEGORY, 1, cat->id, path,
            hint, "%s: category %s has no images", path, q);
        return;
    }
    snprintf(hint, sizeof hint,
             "label at least one more image with %s; training needs %d per category", q,
             MIN_TRAIN_IMAGES_PER_CATEGORY);
    coco_problem *p = coco_plist_add(&r->problems, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID,
                                     COCO_SUBJECT_CATEGORY, 1, cat->id, path, hint,
                                     "%s: category %s has only 1 image; training needs at least %d",
                                     path, q, MIN_TRAIN_IMAGES_PER_CATEGORY);
    if (p)
        p->training_only = 1;
    r->training_total++;
}

/* Stage: the number of categories and the images of each (only when the
 * dataset has images and annotations). */
static void check_category_counts(vctx *v)
{
    size_t n = v->valid_cats;
    if (v->ds->n_images == 0 || v->ds->n_anns == 0)
        return;
    if ((v->kind == COCO_KIND_CLASSIFICATION || v->kind == COCO_KIND_MULTILABEL) &&
        (n < MIN_CLASSIFY_CATEGORIES || n > MAX_CLASSIFY_CATEGORIES))
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_NONE, 0, 0, "categories",
            n < MIN_CLASSIFY_CATEGORIES
                ? "add categories: a classifier needs at least " COCO_LIMIT_TEXT(
                      MIN_CLASSIFY_CATEGORIES)
                : "merge categories: a classifier takes at most " COCO_LIMIT_TEXT(
                      MAX_CLASSIFY_CATEGORIES),
            "categories: classification needs %d to %d categories, found %zu",
            MIN_CLASSIFY_CATEGORIES, MAX_CLASSIFY_CATEGORIES, n);
    if (v->kind == COCO_KIND_DETECTION && (n < MIN_DETECT_CATEGORIES || n > MAX_DETECT_CATEGORIES))
        add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_NONE, 0, 0, "categories",
            n < MIN_DETECT_CATEGORIES
                ? "add the categories the boxes use"
                : "merge categories: a detector takes at most " COCO_LIMIT_TEXT(
                      MAX_DETECT_CATEGORIES),
            "categories: detection needs %d to %d categories, found %zu", MIN_DETECT_CATEGORIES,
            MAX_DETECT_CATEGORIES, n);
    for (size_t c = 0; c < v->ds->n_cats; c++)
        check_category_images(v, c);
}

/* ---- main -------------------------------------------------------------------- */

/* Stage: the report's arrays and the scratch arrays, sized for ds. */
static coco_status validate_alloc(vctx *v)
{
    coco_report *r = v->r;
    size_t ni = v->ds->n_images, na = v->ds->n_anns, nc = v->ds->n_cats;
    r->n_images = ni;
    r->n_cats = nc;
    r->image_status = calloc(ni ? ni : 1, 1);
    r->cat_images = calloc(nc ? nc : 1, sizeof *r->cat_images);
    r->cat_ids = calloc(nc ? nc : 1, sizeof *r->cat_ids);
    r->cat_names = calloc(nc ? nc : 1, sizeof *r->cat_names);
    v->disp = calloc(ni ? 2 * ni : 1, sizeof *v->disp);
    v->ann_img = calloc(na ? na : 1, sizeof *v->ann_img);
    v->ann_cat = calloc(na ? na : 1, sizeof *v->ann_cat);
    v->img_start = calloc(ni + 1, sizeof *v->img_start);
    v->img_list = calloc(na ? na : 1, sizeof *v->img_list);
    v->stamp = malloc((nc ? nc : 1) * sizeof *v->stamp);
    if (!r->image_status || !r->cat_images || !r->cat_ids || !r->cat_names || !v->disp ||
        !v->ann_img || !v->ann_cat || !v->img_start || !v->img_list || !v->stamp)
        return COCO_ENOMEM;
    return COCO_OK;
}

static void validate_release(vctx *v)
{
    free(v->disp);
    free(v->ann_img);
    free(v->ann_cat);
    free(v->img_start);
    free(v->img_list);
    free(v->stamp);
}

/* Stage: the summary's counts, the problems found while parsing (they come
 * first) and empty lists. */
static void report_start(vctx *v)
{
    const coco_dataset *ds = v->ds;
    coco_report *r = v->r;
    coco_info info;
    coco_dataset_info(ds, &info);
    v->kind = info.kind;
    v->units = info.units;
    r->sum.kind = info.kind;
    r->sum.units = info.units;
    r->sum.images = ds->n_images;
    r->sum.annotations = ds->n_anns;
    r->sum.categories = ds->n_cats;
    r->sum.boxes = info.boxes;
    r->sum.max_labels = info.max_labels;

    for (size_t k = 0; k < ds->problems.n_err; k++)
        coco_plist_copy(&r->problems, &ds->problems.err[k], NULL);
    for (size_t k = 0; k < ds->problems.n_warn; k++)
        coco_plist_copy(&r->problems, &ds->problems.warn[k], NULL);
    r->problems.total_err += ds->problems.total_err - ds->problems.n_err;
    r->problems.total_warn += ds->problems.total_warn - ds->problems.n_warn;

    if (ds->n_images == 0)
        add(v, COCO_ERROR, COCO_CODE_DATASET_EMPTY, COCO_SUBJECT_NONE, 0, 0, "images",
            "add the images: one entry {id, file_name, width, height} per image",
            "images: the list is empty: the dataset has no images");
    if (ds->n_anns == 0)
        add(v, COCO_ERROR, COCO_CODE_DATASET_EMPTY, COCO_SUBJECT_NONE, 0, 0, "annotations",
            "add the labels: one annotation {id, image_id, category_id[, bbox]} per label",
            "annotations: the list is empty: no image is labelled");
}

coco_status coco_validate(const coco_dataset *ds, const coco_image_file *files, coco_report **out)
{
    if (!ds || !out)
        return COCO_EINVAL;
    *out = NULL;
    vctx v = {.ds = ds};
    v.r = calloc(1, sizeof *v.r);
    if (!v.r)
        return COCO_ENOMEM;

    coco_status st = validate_alloc(&v);
    if (st == COCO_OK) {
        report_start(&v);
        st = check_images(&v, files);
    }
    if (st == COCO_OK)
        st = check_categories(&v);
    if (st == COCO_OK)
        st = check_annotations(&v);
    if (st == COCO_OK)
        st = index_annotations(&v);
    if (st == COCO_OK) {
        tally_images(&v);
        check_category_counts(&v);
    }

    validate_release(&v);
    if (st == COCO_OK && v.r->problems.oom)
        st = COCO_ENOMEM;
    if (st != COCO_OK) {
        coco_report_free(v.r);
        return st;
    }
    coco_report_update_state(v.r);
    *out = v.r;
    return COCO_OK;
}
