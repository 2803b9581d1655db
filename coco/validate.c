/* validate.c: every check of SPEC section 3 over a parsed dataset plus what
 * the caller found on disk for each image, producing a coco_report.
 * Design: one linear pass per record kind with hash lookups, then per-image
 * and per-category tallies through a compact image->annotations index, so
 * 200,000 images validate in milliseconds. Every problem is listed (capped
 * storage, exact counts); the state is derived from the counts at the end. */
#include "coco_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES ((uint64_t)20 << 20)
#define MIN_SIDE 50    /* width and height must be above this */
#define MAX_SIDE 10240 /* ... and at most this */
#define MAX_BOXES_PER_IMAGE 1000
#define BOX_TOLERANCE_PX 1.5 /* overshoot clipped with a warning */

typedef struct vctx {
    const coco_dataset *ds;
    coco_report *r;
    coco_kind kind;
    coco_box_units units;
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
    for (const char *s = url; s + 3 <= end; s++) {
        if (s[0] != ':' || s[1] != '/' || s[2] != '/')
            continue;
        const char *auth = s + 3, *at = auth; /* userinfo ends at '@' before the path */
        while (at < end && *at != '/' && *at != '?' && *at != '#' && *at != '@')
            at++;
        for (; url < auth && o + 1 < n; url++)
            out[o++] = *url;
        p = at < end && *at == '@' ? at + 1 : auth;
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

static void check_image(vctx *v, size_t i, const coco_image_file *f, int64_t *disp_w,
                        int64_t *disp_h)
{
    const coco_image *im = &v->ds->images[i];
    coco_report *r = v->r;
    char pre[32], path[128], subj[160];
    /* path and subject are formatted only when a problem needs them */
#define NEED_CTX()                                                                                 \
    do {                                                                                           \
        if (!path[0]) {                                                                            \
            prefix_of(v, im->source, pre, sizeof pre);                                             \
            snprintf(path, sizeof path, "%simages[%u]", pre, im->index);                           \
            image_subject(im, subj, sizeof subj);                                                  \
        }                                                                                          \
    } while (0)
    path[0] = 0;
    int hid = !!(im->flags & COCO_HAS_ID);
    const coco_subject S = COCO_SUBJECT_IMAGE;
    uint8_t st = COCO_IMAGE_OK;
    *disp_w = *disp_h = 0;

    if (!hid)
        st = COCO_IMAGE_INVALID;
    if (im->file_name) {
        coco_candidates cand;
        coco_diag d = {0};
        if (coco_image_candidates(im->file_name, im->file_name_len, &cand, &d) != COCO_OK) {
            char p2[160];
            NEED_CTX();
            snprintf(p2, sizeof p2, "%s.file_name", path);
            NEED_CTX();
            add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, hid, im->id, p2,
                "use a path inside the dataset folder, e.g. \"images/cat1.jpg\"",
                "%s: unsafe file name %s: %s", p2, subj, d.msg);
            st = COCO_IMAGE_INVALID;
        }
    }
    coco_url_kind uk = coco_url_classify(im->url);
    if (im->flags & COCO_URL_NUL)
        uk = COCO_URL_INVALID;
    coco_file_state fs = f ? f->state : COCO_FILE_UNCHECKED;
    if (uk == COCO_URL_INVALID) {
        char p2[160], q[160];
        NEED_CTX();
        snprintf(p2, sizeof p2, "%s.%s", path,
                 (im->flags & COCO_URL_IS_COCO) ? "coco_url" : "absolute_url");
        quote_url(q, sizeof q, im->url);
        /* only fatal when the file is not in the folder */
        NEED_CTX();
        add(v, fs == COCO_FILE_FOUND ? COCO_WARNING : COCO_ERROR, COCO_CODE_INVALID_ANNOTATION_URI,
            S, hid, im->id, p2,
            "use an http, https or file url (spaces written as %20), or copy the file into "
            "the dataset folder",
            "%s: url %s is not an http, https or file url", p2, q);
        if (fs != COCO_FILE_FOUND && st == COCO_IMAGE_OK)
            st = COCO_IMAGE_INVALID;
    }

    switch (fs) {
    case COCO_FILE_UNCHECKED: break;
    case COCO_FILE_MISSING:
        r->sum.images_missing++;
        if (st == COCO_IMAGE_OK)
            st = COCO_IMAGE_MISSING;
        NEED_CTX();
        add(v, COCO_WARNING, COCO_CODE_DATASET_CORRUPT, S, hid, im->id, path,
            "copy the file into the dataset folder (at file_name, or by its base name in the "
            "folder or in images/), or give an absolute_url",
            "%s: image %s not found", path, subj);
        break;
    case COCO_FILE_FETCHING:
        r->sum.images_fetching++;
        if (st == COCO_IMAGE_OK)
            st = COCO_IMAGE_FETCHING;
        break;
    case COCO_FILE_FETCH_FAILED: {
        r->sum.images_failed++;
        if (st == COCO_IMAGE_OK)
            st = COCO_IMAGE_FAILED;
        char q[160];
        if (im->url)
            quote_url(q, sizeof q, im->url);
        else {
            NEED_CTX();
            snprintf(q, sizeof q, "%s", subj);
        }
        NEED_CTX();
        add(v, COCO_ERROR, COCO_CODE_INVALID_ANNOTATION_URI, S, hid, im->id, path,
            "check the url (an expired SAS token gives 403) or copy the file into the dataset "
            "folder",
            "%s: download of %s failed: %s", path, q, f->error ? f->error : "unknown error");
        break;
    }
    case COCO_FILE_FOUND: {
        r->sum.images_found++;
        int bad = 0;
        if (f->error) {
            NEED_CTX();
            add(v, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, S, hid, im->id, path,
                "copy the image again or re-export it; the file is damaged",
                "%s: image %s is unreadable: %s", path, subj, f->error);
            bad = 1;
        }
        if (!f->format && !f->error) {
            NEED_CTX();
            add(v, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, S, hid, im->id, path,
                "replace it with a JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF or MPO image",
                "%s: %s is not an image", path, subj);
            bad = 1;
        } else if (f->format && !format_supported(f->format)) {
            NEED_CTX();
            add(v, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, S, hid, im->id, path,
                "convert it to JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF or MPO",
                "%s: image %s is in format '%.32s', which is not supported", path, subj, f->format);
            bad = 1;
        }
        if (f->size > MAX_FILE_BYTES) {
            NEED_CTX();
            add(v, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, S, hid, im->id, path,
                "recompress or shrink the image below 20 MB",
                "%s: image %s is %.1f MB, more than 20 MB", path, subj,
                (double)f->size / (1024.0 * 1024.0));
            bad = 1;
        }
        if (f->width > 0 && f->height > 0) {
            int turned = f->orientation >= 5 && f->orientation <= 8;
            *disp_w = turned ? f->height : f->width;
            *disp_h = turned ? f->width : f->height;
            if (im->flags & COCO_HAS_SIZE) {
                int match = (im->width == f->width && im->height == f->height) ||
                            (turned && im->width == f->height && im->height == f->width);
                if (!match) {
                    char p2[160], hint[200];
                    NEED_CTX();
                    snprintf(p2, sizeof p2, "%s.width", path);
                    snprintf(hint, sizeof hint,
                             "fix width/height in %s to %lldx%lld or re-export the file", path,
                             (long long)*disp_w, (long long)*disp_h);
                    NEED_CTX();
                    add(v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, hid, im->id, p2, hint,
                        "%s: declared size %lldx%lld of %s does not match the file's %lldx%lld", p2,
                        (long long)im->width, (long long)im->height, subj, (long long)*disp_w,
                        (long long)*disp_h);
                }
            }
        }
        if (bad)
            st = COCO_IMAGE_BAD;
        break;
    }
    }

    /* size limits: the file's size when known, else the declared one */
    int64_t w = *disp_w ? *disp_w : im->width, h = *disp_h ? *disp_h : im->height;
    if ((*disp_w || (im->flags & COCO_HAS_SIZE)) &&
        (w <= MIN_SIDE || h <= MIN_SIDE || w > MAX_SIDE || h > MAX_SIDE)) {
        NEED_CTX();
        add(v, COCO_ERROR, COCO_CODE_DATASET_CORRUPT, S, hid, im->id, path,
            w <= MIN_SIDE || h <= MIN_SIDE ? "use images larger than 50x50 pixels"
                                           : "downscale the image to at most 10240 pixels a side",
            "%s: image %s is %lldx%lld; width and height must be over 50 and at most 10240", path,
            subj, (long long)w, (long long)h);
        if (st == COCO_IMAGE_OK)
            st = COCO_IMAGE_BAD;
    }
    if (st == COCO_IMAGE_BAD && fs == COCO_FILE_FOUND)
        r->sum.images_bad++;
    r->image_status[i] = st;
#undef NEED_CTX
}

/* ---- annotations ------------------------------------------------------------- */

/* "annotations[17]" + suffix, with the merge prefix. */
static const char *ann_path(const vctx *v, const coco_annotation *a, const char *suffix, char *buf,
                            size_t n)
{
    char pre[32];
    prefix_of(v, a->source, pre, sizeof pre);
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
    int looks_rel = pixels && b[0] <= 1 && b[1] <= 1 && b[2] <= 1 && b[3] <= 1;
    /* bounds, in the box's own units; the tolerance comes from pixels */
    double W = pixels ? (double)img_w : 1.0, H = pixels ? (double)img_h : 1.0;
    int bounds = !nonpos && !(pixels && (img_w <= 0 || img_h <= 0));
    double over_l = -b[0], over_t = -b[1];
    double over_r = b[0] + b[2] - W, over_b = b[1] + b[3] - H;
    if (bounds && over_l <= 1e-9 && over_t <= 1e-9 && over_r <= 1e-9 && over_b <= 1e-9)
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
    double tol_x = 1e-9, tol_y = 1e-9;
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

/* ---- main -------------------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

coco_status coco_validate(const coco_dataset *ds, const coco_image_file *files, coco_report **out)
{
    if (!ds || !out)
        return COCO_EINVAL;
    *out = NULL;
    coco_report *r = calloc(1, sizeof *r);
    if (!r)
        return COCO_ENOMEM;
    size_t ni = ds->n_images, na = ds->n_anns, nc = ds->n_cats;
    int64_t *disp = NULL;     /* per image: displayed width, height from the file */
    uint32_t *ann_img = NULL; /* per annotation: image index + 1, 0 = none */
    uint32_t *ann_cat = NULL; /* per annotation: category index + 1 */
    uint32_t *img_start = NULL, *img_list = NULL;
    size_t *stamp = NULL;
    coco_idmap seen = {0};
    r->n_images = ni;
    r->n_cats = nc;
    r->image_status = calloc(ni ? ni : 1, 1);
    r->cat_images = calloc(nc ? nc : 1, sizeof *r->cat_images);
    r->cat_ids = calloc(nc ? nc : 1, sizeof *r->cat_ids);
    r->cat_names = calloc(nc ? nc : 1, sizeof *r->cat_names);
    disp = calloc(ni ? 2 * ni : 1, sizeof *disp);
    ann_img = calloc(na ? na : 1, sizeof *ann_img);
    ann_cat = calloc(na ? na : 1, sizeof *ann_cat);
    img_start = calloc(ni + 1, sizeof *img_start);
    img_list = calloc(na ? na : 1, sizeof *img_list);
    stamp = malloc((nc ? nc : 1) * sizeof *stamp);
    if (!r->image_status || !r->cat_images || !r->cat_ids || !r->cat_names || !disp || !ann_img ||
        !ann_cat || !img_start || !img_list || !stamp)
        goto oom;

    coco_info info;
    coco_dataset_info(ds, &info);
    vctx v = {ds, r, info.kind, info.units};
    r->sum.kind = info.kind;
    r->sum.units = info.units;
    r->sum.images = ni;
    r->sum.annotations = na;
    r->sum.categories = nc;
    r->sum.boxes = info.boxes;

    /* problems found while parsing come first */
    for (size_t k = 0; k < ds->problems.n_err; k++)
        coco_plist_copy(&r->problems, &ds->problems.err[k], NULL);
    for (size_t k = 0; k < ds->problems.n_warn; k++)
        coco_plist_copy(&r->problems, &ds->problems.warn[k], NULL);
    r->problems.total_err += ds->problems.total_err - ds->problems.n_err;
    r->problems.total_warn += ds->problems.total_warn - ds->problems.n_warn;

    if (ni == 0)
        add(&v, COCO_ERROR, COCO_CODE_DATASET_EMPTY, COCO_SUBJECT_NONE, 0, 0, "images",
            "add the images: one entry {id, file_name, width, height} per image",
            "images: the list is empty: the dataset has no images");
    if (na == 0)
        add(&v, COCO_ERROR, COCO_CODE_DATASET_EMPTY, COCO_SUBJECT_NONE, 0, 0, "annotations",
            "add the labels: one annotation {id, image_id, category_id[, bbox]} per label",
            "annotations: the list is empty: no image is labelled");

    /* images */
    char pre[32], path[160], subj[160];
    if (coco_idmap_init(&seen, ni))
        goto oom;
    for (size_t i = 0; i < ni; i++) {
        const coco_image *im = &ds->images[i];
        check_image(&v, i, files ? &files[i] : NULL, &disp[2 * i], &disp[2 * i + 1]);
        if (!(im->flags & COCO_HAS_ID))
            continue;
        uint32_t first;
        if (coco_idmap_put(&seen, im->id, (uint32_t)i, &first) == 0) {
            const coco_image *o = &ds->images[first];
            char opre[32];
            prefix_of(&v, im->source, pre, sizeof pre);
            prefix_of(&v, o->source, opre, sizeof opre);
            snprintf(path, sizeof path, "%simages[%u].id", pre, im->index);
            add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, 1, im->id, path,
                "give every image its own id", "%s: image id %lld is also used by %simages[%u]",
                path, (long long)im->id, opre, o->index);
            if (r->image_status[i] == COCO_IMAGE_OK)
                r->image_status[i] = COCO_IMAGE_INVALID;
        }
    }
    coco_idmap_free(&seen);

    /* categories */
    coco_idmap names = {0};
    if (coco_idmap_init(&seen, nc) || coco_idmap_init(&names, nc)) {
        coco_idmap_free(&names);
        goto oom;
    }
    size_t valid_cats = 0;
    for (size_t i = 0; i < nc; i++) {
        const coco_category *c = &ds->cats[i];
        r->cat_ids[i] = c->id;
        if (c->name && !(r->cat_names[i] = coco_arena_dup(&r->arena, c->name, strlen(c->name)))) {
            coco_idmap_free(&names);
            goto oom;
        }
        prefix_of(&v, c->source, pre, sizeof pre);
        if (c->flags & COCO_HAS_ID) {
            valid_cats++;
            uint32_t first;
            if (coco_idmap_put(&seen, c->id, (uint32_t)i, &first) == 0) {
                snprintf(path, sizeof path, "%scategories[%u].id", pre, c->index);
                char opre[32];
                prefix_of(&v, ds->cats[first].source, opre, sizeof opre);
                add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_CATEGORY, 1, c->id,
                    path, "give every category its own id",
                    "%s: category id %lld is also used by %scategories[%u]", path, (long long)c->id,
                    opre, ds->cats[first].index);
            }
        }
        if (c->name) {
            uint32_t first;
            int rc = coco_idmap_put(&names, (int64_t)name_hash(c->name), (uint32_t)i, &first);
            if (rc == 0 && ds->cats[first].name && strcmp(ds->cats[first].name, c->name) == 0) {
                char q[160], opre[32];
                coco_quote(q, sizeof q, c->name, strlen(c->name));
                prefix_of(&v, ds->cats[first].source, opre, sizeof opre);
                snprintf(path, sizeof path, "%scategories[%u].name", pre, c->index);
                add(&v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_CATEGORY,
                    !!(c->flags & COCO_HAS_ID), c->id, path,
                    "rename one of them, or merge them into one category",
                    "%s: category name %s is also used by %scategories[%u]", path, q, opre,
                    ds->cats[first].index);
            }
        }
    }
    coco_idmap_free(&seen);
    coco_idmap_free(&names);

    /* annotations */
    if (coco_idmap_init(&seen, na))
        goto oom;
    for (size_t i = 0; i < na; i++) {
        const coco_annotation *a = &ds->anns[i];
        int hid = !!(a->flags & COCO_HAS_ID);
        const coco_subject S = COCO_SUBJECT_ANNOTATION;
        uint32_t first;
        if (hid && coco_idmap_put(&seen, a->id, (uint32_t)i, &first) == 0) {
            char p2[180], opre[32];
            ann_path(&v, a, ".id", p2, sizeof p2);
            prefix_of(&v, ds->anns[first].source, opre, sizeof opre);
            add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, 1, a->id, p2,
                "give every annotation its own id",
                "%s: annotation id %lld is also used by %sannotations[%u]", p2, (long long)a->id,
                opre, ds->anns[first].index);
        }
        long ii = -1, ci = -1;
        if (a->flags & COCO_HAS_IMAGE_ID) {
            ii = coco_idmap_get(&ds->image_ids, a->image_id);
            if (ii < 0) {
                char p2[180];
                ann_path(&v, a, ".image_id", p2, sizeof p2);
                add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, p2,
                    "point image_id at an id listed in 'images', or add that image",
                    "%s: image_id %lld not in images", p2, (long long)a->image_id);
            }
        }
        if (a->flags & COCO_HAS_CAT_ID) {
            ci = coco_idmap_get(&ds->cat_ids, a->category_id);
            if (ci < 0) {
                char p2[180];
                ann_path(&v, a, ".category_id", p2, sizeof p2);
                add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, p2,
                    "point category_id at an id listed in 'categories', or add that category",
                    "%s: category_id %lld not in categories", p2, (long long)a->category_id);
            }
        }
        ann_img[i] = ii >= 0 ? (uint32_t)ii + 1 : 0;
        ann_cat[i] = ci >= 0 ? (uint32_t)ci + 1 : 0;
        char bpath[180];
        if (a->has_bbox) {
            if (v.kind == COCO_KIND_CLASSIFICATION) {
                ann_path(&v, a, ".bbox", bpath, sizeof bpath);
                add(&v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, bpath,
                    "remove the bbox, or make the dataset a detection dataset",
                    "%s: box ignored in a classification dataset", bpath);
            } else {
                int64_t w = 0, h = 0, iid = a->image_id;
                if (ii >= 0) {
                    const coco_image *im = &ds->images[ii];
                    w = (im->flags & COCO_HAS_SIZE) ? im->width : disp[2 * ii];
                    h = (im->flags & COCO_HAS_SIZE) ? im->height : disp[2 * ii + 1];
                }
                check_box(&v, a, w, h, iid);
            }
        } else if (v.kind == COCO_KIND_DETECTION && (a->flags & COCO_HAS_ID)) {
            /* mistyped boxes were reported while parsing */
            if (!(a->flags & COCO_BAD_BBOX) && ann_path(&v, a, ".bbox", bpath, sizeof bpath))
                add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, S, hid, a->id, bpath,
                    "give every annotation of a detection dataset a bbox [left, top, width, "
                    "height]",
                    "%s: annotation has no bbox in a detection dataset", bpath);
        }
    }
    coco_idmap_free(&seen);

    /* image -> annotations index (counting sort) */
    for (size_t i = 0; i < na; i++)
        if (ann_img[i])
            img_start[ann_img[i]]++;
    for (size_t i = 0; i < ni; i++)
        img_start[i + 1] += img_start[i];
    {
        uint32_t *fill = calloc(ni ? ni : 1, sizeof *fill);
        if (!fill)
            goto oom;
        for (size_t i = 0; i < na; i++)
            if (ann_img[i]) {
                size_t im = ann_img[i] - 1;
                img_list[img_start[im] + fill[im]++] = (uint32_t)i;
            }
        free(fill);
    }

    /* per image: labels, boxes; per category: distinct images */
    for (size_t c = 0; c < nc; c++)
        stamp[c] = SIZE_MAX;
    for (size_t i = 0; i < ni; i++) {
        const coco_image *im = &ds->images[i];
        size_t labels = 0, boxes = 0;
        for (uint32_t k = img_start[i]; k < img_start[i + 1]; k++) {
            size_t ai = img_list[k];
            labels++;
            boxes += ds->anns[ai].has_bbox ? 1 : 0;
            if (ann_cat[ai]) {
                size_t c = ann_cat[ai] - 1;
                if (stamp[c] != i) {
                    stamp[c] = i;
                    r->cat_images[c]++;
                }
            }
        }
        int hid = !!(im->flags & COCO_HAS_ID);
        int too_many = v.kind == COCO_KIND_DETECTION && boxes > MAX_BOXES_PER_IMAGE;
        int bad_labels = v.kind == COCO_KIND_CLASSIFICATION && na > 0 && hid && labels != 1;
        if (!too_many && !bad_labels)
            continue;
        prefix_of(&v, im->source, pre, sizeof pre);
        snprintf(path, sizeof path, "%simages[%u]", pre, im->index);
        image_subject(im, subj, sizeof subj);
        if (too_many)
            add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, hid, im->id,
                path, "split the image or drop boxes: at most 1000 per image",
                "%s: image %s has %zu boxes, more than 1000", path, subj, boxes);
        if (bad_labels) {
            if (labels == 0)
                add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, 1, im->id,
                    path, "add one annotation {image_id, category_id} for it, or remove the image",
                    "%s: image %s has no label", path, subj);
            else
                add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_IMAGE, 1, im->id,
                    path, "keep exactly one annotation per image (multi-label is not supported)",
                    "%s: image %s has %zu labels; classification needs exactly one", path, subj,
                    labels);
        }
    }

    /* category counts and per-category images */
    if (ni > 0 && na > 0) {
        if (v.kind == COCO_KIND_CLASSIFICATION && (valid_cats < 2 || valid_cats > 2500))
            add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_NONE, 0, 0,
                "categories",
                valid_cats < 2 ? "add categories: a classifier needs at least 2"
                               : "merge categories: a classifier takes at most 2500",
                "categories: classification needs 2 to 2500 categories, found %zu", valid_cats);
        if (v.kind == COCO_KIND_DETECTION && (valid_cats < 1 || valid_cats > 1000))
            add(&v, COCO_ERROR, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_NONE, 0, 0,
                "categories",
                valid_cats < 1 ? "add the categories the boxes use"
                               : "merge categories: a detector takes at most 1000",
                "categories: detection needs 1 to 1000 categories, found %zu", valid_cats);
        for (size_t c = 0; c < nc; c++) {
            const coco_category *cat = &ds->cats[c];
            if (!(cat->flags & COCO_HAS_ID) || r->cat_images[c] >= 2)
                continue;
            char q[160], hint[400];
            if (cat->name)
                coco_quote(q, sizeof q, cat->name, strlen(cat->name));
            else
                snprintf(q, sizeof q, "%lld", (long long)cat->id);
            prefix_of(&v, cat->source, pre, sizeof pre);
            snprintf(path, sizeof path, "%scategories[%u]", pre, cat->index);
            if (r->cat_images[c] == 0) {
                snprintf(hint, sizeof hint, "label some images with %s or remove the category", q);
                add(&v, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID, COCO_SUBJECT_CATEGORY, 1,
                    cat->id, path, hint, "%s: category %s has no images", path, q);
            } else {
                snprintf(hint, sizeof hint,
                         "label at least one more image with %s; training needs 2 per category", q);
                coco_problem *p = coco_plist_add(
                    &r->problems, COCO_WARNING, COCO_CODE_ANNOTATIONS_INVALID,
                    COCO_SUBJECT_CATEGORY, 1, cat->id, path, hint,
                    "%s: category %s has only 1 image; training needs at least 2", path, q);
                if (p)
                    p->training_only = 1;
                r->training_total++;
            }
        }
    }

    free(disp);
    free(ann_img);
    free(ann_cat);
    free(img_start);
    free(img_list);
    free(stamp);
    if (r->problems.oom) {
        coco_report_free(r);
        return COCO_ENOMEM;
    }
    coco_report_update_state(r);
    *out = r;
    return COCO_OK;
oom:
    coco_idmap_free(&seen);
    free(disp);
    free(ann_img);
    free(ann_cat);
    free(img_start);
    free(img_list);
    free(stamp);
    coco_report_free(r);
    return COCO_ENOMEM;
}
