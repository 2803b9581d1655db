/* voc.c: Pascal VOC annotations (one XML file per image) read into a
 * coco_dataset.
 *
 * Design: libxml2 parses each file into a tree with no network, no DTD
 * loading and no entity substitution; a document with a DOCTYPE is refused
 * outright (VOC files never have one, and refusing it closes every entity
 * trick), and element text is read from text nodes only. Boxes are VOC's
 * pixel corners (xmin, ymin, xmax, ymax) turned into COCO's relative
 * [left, top, width, height] with the image's size (<size>, else the size
 * of the file the caller found); a box overshooting the image by up to
 * 1.5 px is clipped with a warning, more is an error. Every problem names
 * the file, the element path and its line.
 */
#include "coco_int.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOC_TOLERANCE_PX 1.5 /* overshoot clipped with a warning */
#define VOC_MAX_FILE_BYTES ((size_t)16 << 20)

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void) { xmlInitParser(); }

/* qsort has no context argument: the images being sorted, per thread. */
static _Thread_local const coco_src_image *sort_images;

static int by_path(const void *a, const void *b)
{
    const char *pa =
        sort_images[*(const size_t *)a].path ? sort_images[*(const size_t *)a].path : "";
    const char *pb =
        sort_images[*(const size_t *)b].path ? sort_images[*(const size_t *)b].path : "";
    return strcmp(pa, pb);
}

/* One XML file under reading. */
typedef struct vfile {
    coco_dataset *ds;
    const char *path; /* relative to the dataset */
    const coco_src_image *images;
    size_t n_images;
    size_t *order; /* images by path (strcmp order) */
    int oom;
} vfile;

/* "a/b/c.xml" -> "a/b" ("" at the top) into out. */
static void dir_of(const char *path, char *out, size_t n)
{
    const char *s = strrchr(path, '/');
    size_t len = s ? (size_t)(s - path) : 0;
    snprintf(out, n, "%.*s", (int)len, path);
}

static const char *base_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Length of the name without its extension. */
static size_t stem_len(const char *base)
{
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? (size_t)(dot - base) : strlen(base);
}

/* The element's own text (text and CDATA children only, never entities),
 * trimmed, into out; returns its length, or -1 when too long or absent. */
static int node_text(const xmlNode *n, char *out, size_t cap)
{
    size_t o = 0;
    if (!n)
        return -1;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
            continue;
        const char *t = (const char *)c->content;
        size_t len = t ? strlen(t) : 0;
        if (o + len >= cap)
            return -1;
        memcpy(out + o, t, len);
        o += len;
    }
    out[o] = '\0';
    size_t b = 0;
    while (b < o && (out[b] == ' ' || out[b] == '\t' || out[b] == '\n' || out[b] == '\r'))
        b++;
    while (o > b &&
           (out[o - 1] == ' ' || out[o - 1] == '\t' || out[o - 1] == '\n' || out[o - 1] == '\r'))
        o--;
    memmove(out, out + b, o - b);
    out[o - b] = '\0';
    return (int)(o - b);
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

/* "FILE: ELEMENT (line N)" into out. */
static const char *where(const vfile *f, const char *elem, const xmlNode *n, char *out, size_t cap)
{
    long line = n ? xmlGetLineNo(n) : -1;
    if (line > 0)
        snprintf(out, cap, "%s: %s (line %ld)", f->path, elem, line);
    else
        snprintf(out, cap, "%s: %s", f->path, elem);
    return out;
}

/* The first image (in sorted order) whose path starts with prefix, or n. */
static size_t lower_bound(const vfile *f, const char *prefix)
{
    size_t lo = 0, hi = f->n_images;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(f->images[f->order[mid]].path, prefix) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The image named dir/base exactly (by_stem = 0), or dir/STEM.EXT for the
 * stem of base (by_stem = 1): its index in images, else -1. */
static long lookup(const vfile *f, const char *dir, const char *base, int by_stem)
{
    char key[COCO_PATH_MAX];
    size_t bl = by_stem ? stem_len(base) : strlen(base);
    int kl = snprintf(key, sizeof key, "%s%s%.*s%s", dir, *dir ? "/" : "", (int)bl, base,
                      by_stem ? "." : "");
    if (kl < 0 || (size_t)kl >= sizeof key)
        return -1;
    for (size_t i = lower_bound(f, key); i < f->n_images; i++) {
        const char *p = f->images[f->order[i]].path;
        if (strncmp(p, key, (size_t)kl) != 0)
            break;
        if (!by_stem ? p[kl] == '\0' : !strchr(p + kl, '/') && !strchr(p + kl, '.'))
            return (long)f->order[i];
    }
    return -1;
}

/* The image the XML describes: its index in images, else -1; *want gets
 * where it should be. */
static long find_image(const vfile *f, const char *filename, char *want, size_t cap)
{
    char dir[COCO_PATH_MAX], jpeg_dir[COCO_PATH_MAX];
    dir_of(f->path, dir, sizeof dir);
    const char *dbase = base_of(dir);
    jpeg_dir[0] = '\0';
    if (strcmp(dbase, "Annotations") == 0)
        snprintf(jpeg_dir, sizeof jpeg_dir, "%.*sJPEGImages", (int)(dbase - dir), dir);
    const char *xml_base = base_of(f->path);
    const char *fbase = filename && *filename ? base_of(filename) : NULL;
    const char *dirs[2] = {jpeg_dir, dir};
    /* by the file name, then by the stem (an image of any extension) */
    for (int pass = 0; pass < 2; pass++) {
        for (int d = 0; d < 2; d++) {
            if (d == 0 && !jpeg_dir[0])
                continue;
            const char *names[2] = {fbase, pass ? xml_base : NULL};
            for (int k = 0; k < 2; k++) {
                long i = names[k] ? lookup(f, dirs[d], names[k], pass) : -1;
                if (i >= 0)
                    return i;
            }
        }
    }
    const char *d = jpeg_dir[0] ? jpeg_dir : dir;
    int w = fbase ? snprintf(want, cap, "%s%s%s", d, *d ? "/" : "", fbase)
                  : snprintf(want, cap, "%s%s%.*s.jpg", d, *d ? "/" : "", (int)stem_len(xml_base),
                             xml_base);
    if (w < 0 || (size_t)w >= cap)
        snprintf(want, cap, "%s", fbase ? fbase : xml_base);
    return -1;
}

/* A positive integer in element name of n, or 0 (absent or not one). */
static long size_field(const xmlNode *size, const char *name, int *bad)
{
    char t[64];
    const xmlNode *e = child(size, name);
    double v;
    if (!e)
        return 0;
    if (node_text(e, t, sizeof t) <= 0 || coco_parse_double(t, strlen(t), &v) != 0 || v < 0 ||
        v > 1e6 || v != (double)(long)v) {
        *bad = 1;
        return 0;
    }
    return (long)v;
}

/* One <object>: its category and box, checked against the image size. */
static void read_object(vfile *f, const xmlNode *obj, int k, int64_t image_id, long W, long H)
{
    char path[COCO_PATH_MAX], elem[96], name[256], t[64];
    snprintf(elem, sizeof elem, "annotation/object[%d]", k);
    const xmlNode *ne = child(obj, "name");
    int nl = ne ? node_text(ne, name, sizeof name) : -1;
    if (nl <= 0) {
        snprintf(elem + strlen(elem), sizeof elem - strlen(elem), "/name");
        where(f, elem, ne ? ne : obj, path, sizeof path);
        coco_build_problem(f->ds, COCO_ERROR, path, "give every <object> a <name> with its label",
                           "%s: object has %s", path,
                           ne ? "an empty or too long <name>" : "no <name>");
        return;
    }
    const xmlNode *bb = child(obj, "bndbox");
    if (!bb) {
        snprintf(elem + strlen(elem), sizeof elem - strlen(elem), "/bndbox");
        where(f, elem, obj, path, sizeof path);
        coco_build_problem(f->ds, COCO_ERROR, path,
                           "add <bndbox> with <xmin>, <ymin>, <xmax>, <ymax> in pixels",
                           "%s: object \"%s\" has no <bndbox>", path, name);
        return;
    }
    static const char *const corner[4] = {"xmin", "ymin", "xmax", "ymax"};
    double v[4];
    for (int c = 0; c < 4; c++) {
        const xmlNode *e = child(bb, corner[c]);
        if (!e || node_text(e, t, sizeof t) <= 0 || coco_parse_double(t, strlen(t), &v[c]) != 0) {
            char el2[128];
            snprintf(el2, sizeof el2, "%s/bndbox/%s", elem, corner[c]);
            where(f, el2, e ? e : bb, path, sizeof path);
            coco_build_problem(f->ds, COCO_ERROR, path,
                               "write each corner as a number of pixels, e.g. <xmin>48</xmin>",
                               "%s: %s", path, e ? "not a number" : "missing");
            return;
        }
    }
    snprintf(elem + strlen(elem), sizeof elem - strlen(elem), "/bndbox");
    where(f, elem, bb, path, sizeof path);
    if (v[2] <= v[0] || v[3] <= v[1]) {
        coco_build_problem(f->ds, COCO_ERROR, path,
                           "xmax must be greater than xmin and ymax greater than ymin",
                           "%s: box (%g, %g)-(%g, %g) of \"%s\" has %s", path, v[0], v[1], v[2],
                           v[3], name, v[2] <= v[0] ? "no width" : "no height");
        return;
    }
    if (W <= 0 || H <= 0)
        return; /* no size to measure by: the image is missing or unreadable (reported) */
    double x0 = v[0] < 0 ? 0 : v[0], y0 = v[1] < 0 ? 0 : v[1];
    double x1 = v[2] > W ? (double)W : v[2], y1 = v[3] > H ? (double)H : v[3];
    double over = 0;
    over = -v[0] > over ? -v[0] : over;
    over = -v[1] > over ? -v[1] : over;
    over = v[2] - (double)W > over ? v[2] - (double)W : over;
    over = v[3] - (double)H > over ? v[3] - (double)H : over;
    if (x1 <= x0 || y1 <= y0 || over > VOC_TOLERANCE_PX) {
        coco_build_problem(f->ds, COCO_ERROR, path,
                           "fix the box so 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= "
                           "height (pixels)",
                           "%s: box (%g, %g)-(%g, %g) of \"%s\" %s the image (%ldx%ld)", path, v[0],
                           v[1], v[2], v[3], name, x1 <= x0 || y1 <= y0 ? "lies outside" : "leaves",
                           W, H);
        return;
    }
    if (over > 0)
        coco_build_problem(f->ds, COCO_WARNING, path,
                           "nothing to do unless the box is wrong; it was clipped to the image",
                           "%s: box (%g, %g)-(%g, %g) of \"%s\" overshoots the image (%ldx%ld) "
                           "slightly and is clipped",
                           path, v[0], v[1], v[2], v[3], name, W, H);
    double rel[4] = {x0 / (double)W, y0 / (double)H, (x1 - x0) / (double)W, (y1 - y0) / (double)H};
    int64_t cat = coco_build_category(f->ds, name, (size_t)nl, path);
    if (cat < 0 || coco_build_box(f->ds, image_id, cat, rel, path) != 0)
        f->oom = 1;
}

/* The parsed document: the image and its objects. */
static void read_doc(vfile *f, const xmlNode *root)
{
    char path[COCO_PATH_MAX], fname[COCO_PATH_MAX], want[COCO_PATH_MAX];
    if (!root || root->type != XML_ELEMENT_NODE || strcmp((const char *)root->name, "annotation")) {
        where(f, root ? (const char *)root->name : "(root)", root, path, sizeof path);
        coco_build_problem(f->ds, COCO_ERROR, path,
                           "a Pascal VOC file has <annotation> at the top; remove other XML "
                           "files from the dataset",
                           "%s: the top element is not <annotation>", path);
        return;
    }
    const xmlNode *fe = child(root, "filename");
    int fl = fe ? node_text(fe, fname, sizeof fname) : -1;
    long ii = find_image(f, fl > 0 ? fname : NULL, want, sizeof want);
    const char *file = ii >= 0 ? f->images[ii].path : want;
    /* the size: <size> when it holds one, else the file's */
    const xmlNode *se = child(root, "size");
    int bad = 0;
    long W = size_field(se, "width", &bad), H = size_field(se, "height", &bad);
    if (bad) {
        where(f, "annotation/size", se, path, sizeof path);
        coco_build_problem(f->ds, COCO_ERROR, path,
                           "write <width> and <height> as whole numbers of pixels, or leave <size> "
                           "out",
                           "%s: width or height is not a whole number", path);
        return;
    }
    long DW = 0, DH = 0; /* declared, checked against the file by validation */
    if (W > 0 && H > 0) {
        DW = W;
        DH = H;
    } else if (ii >= 0) {
        W = f->images[ii].width;
        H = f->images[ii].height;
    }
    where(f, se ? "annotation/size" : "annotation", se ? se : root, path, sizeof path);
    int64_t id = coco_build_image(f->ds, file, DW, DH, path);
    if (id < 0) {
        f->oom = 1;
        return;
    }
    int k = 0;
    for (const xmlNode *c = root->children; c && !f->oom; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "object") == 0)
            read_object(f, c, ++k, id, W, H);
}

static void read_file(vfile *f, const coco_src_file *src)
{
    char path[COCO_PATH_MAX];
    if (src->len > VOC_MAX_FILE_BYTES || src->len > (size_t)INT32_MAX) {
        snprintf(path, sizeof path, "%s", f->path);
        coco_build_problem(f->ds, COCO_ERROR, path, "a VOC file describes one image: keep it small",
                           "%s: larger than 16 MB", path);
        return;
    }
    xmlParserCtxtPtr ctx = xmlNewParserCtxt();
    if (!ctx) {
        f->oom = 1;
        return;
    }
    xmlDocPtr doc = xmlCtxtReadMemory(ctx, src->data ? src->data : "", (int)src->len, NULL, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                          XML_PARSE_NOCDATA);
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(ctx);
        char msg[200];
        snprintf(msg, sizeof msg, "%s", e && e->message ? e->message : "not XML");
        size_t ml = strlen(msg);
        while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
            msg[--ml] = '\0';
        if (e && e->line > 0)
            snprintf(path, sizeof path, "%s:%d", f->path, e->line);
        else
            snprintf(path, sizeof path, "%s", f->path);
        coco_build_problem(f->ds, COCO_ERROR, path,
                           "fix the XML or export the annotations again; the other files are used",
                           "%s: not well-formed XML: %s", path, msg);
    } else if (doc->intSubset || doc->extSubset) {
        snprintf(path, sizeof path, "%s", f->path);
        coco_build_problem(f->ds, COCO_ERROR, path,
                           "remove the <!DOCTYPE ...> declaration: VOC files do not need one",
                           "%s: a DOCTYPE is not allowed (entities are not expanded)", path);
    } else {
        read_doc(f, xmlDocGetRootElement(doc));
    }
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctx);
}

coco_status coco_voc_parse(const coco_src_file *xml, size_t n, const coco_src_image *images,
                           size_t n_images, coco_dataset **out, coco_diag *diag)
{
    if (!out || (n && !xml) || (n_images && !images))
        return coco_fail(diag, COCO_EINVAL, "coco_voc_parse: bad argument");
    *out = NULL;
    for (size_t i = 0; i < n_images; i++)
        if (!images[i].path)
            return coco_fail(diag, COCO_EINVAL, "coco_voc_parse: image %zu has no path", i);
    pthread_once(&xml_once, xml_init);
    coco_dataset *ds = coco_build_new();
    if (!ds)
        return coco_fail(diag, COCO_ENOMEM, "out of memory");
    vfile f = {.ds = ds, .images = images, .n_images = n_images};
    f.order = malloc((n_images ? n_images : 1) * sizeof *f.order);
    if (!f.order) {
        coco_dataset_free(ds);
        return coco_fail(diag, COCO_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_images; i++)
        f.order[i] = i;
    sort_images = images;
    qsort(f.order, n_images, sizeof *f.order, by_path);
    for (size_t i = 0; i < n && !f.oom; i++) {
        f.path = xml[i].path ? xml[i].path : "";
        read_file(&f, &xml[i]);
    }
    free(f.order);
    if (f.oom) {
        coco_dataset_free(ds);
        return coco_fail(diag, COCO_ENOMEM, "out of memory");
    }
    if (coco_build_finish(ds) != COCO_OK)
        return coco_fail(diag, COCO_ENOMEM, "out of memory");
    *out = ds;
    return COCO_OK;
}
