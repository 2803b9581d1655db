/* yolo.c: YOLO annotations (labels/NAME.txt next to images/NAME.jpg, class
 * names in data.yaml, classes.txt or obj.names) read into a coco_dataset.
 *
 * Design: the images drive the dataset: every image below a folder named
 * "images" is one, and its label file is found by swapping that folder for
 * "labels" and the extension for ".txt" (sorted arrays and binary search, so
 * 100,000 images cost n log n). YOLO's normalised centre boxes become COCO's
 * relative [left, top, width, height] with no image size needed; a value
 * outside 0..1 is an error on its line (it would otherwise read as pixels).
 * data.yaml is read with libyaml's document loader, which keeps aliases as
 * references (no expansion). Every problem names the file and line.
 */
#include "coco_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YOLO_MAX_NAMES 100000
#define YOLO_MAX_YAML_BYTES ((size_t)4 << 20)

typedef struct yctx {
    coco_dataset *ds;
    char **names; /* class index -> name (NULL: none at that index) */
    size_t n_names;
    int have_names;
    int64_t *cat_of; /* class index -> category id, 0 = not made yet */
    int oom;
} yctx;

/* ---- class names ---- */

static int set_name(yctx *y, size_t idx, const char *s, size_t len)
{
    if (idx >= YOLO_MAX_NAMES)
        return -1;
    if (idx >= y->n_names) {
        char **nn = realloc(y->names, (idx + 1) * sizeof *nn);
        if (!nn) {
            y->oom = 1;
            return -1;
        }
        memset(nn + y->n_names, 0, (idx + 1 - y->n_names) * sizeof *nn);
        y->names = nn;
        y->n_names = idx + 1;
    }
    free(y->names[idx]);
    y->names[idx] = malloc(len + 1);
    if (!y->names[idx]) {
        y->oom = 1;
        return -1;
    }
    memcpy(y->names[idx], s, len);
    y->names[idx][len] = '\0';
    return 0;
}

/* classes.txt / obj.names: one name per line; blank lines at the end are
 * ignored, blank lines before a name are an error. */
static void names_from_lines(yctx *y, const coco_src_file *f)
{
    char path[COCO_PATH_MAX];
    size_t line = 0, idx = 0, blank_at = 0;
    const char *p = f->data ? f->data : "", *end = p + f->len;
    while (p < end && !y->oom) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        const char *b = p;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        const char *t = e;
        while (t > b && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        if (t == b) {
            if (!blank_at)
                blank_at = line;
        } else {
            if (blank_at) {
                snprintf(path, sizeof path, "%s:%zu", f->path, blank_at);
                coco_build_problem(y->ds, COCO_ERROR, path,
                                   "remove the blank line: line N names class N-1",
                                   "%s: empty class name", path);
                blank_at = 0;
            }
            if (set_name(y, idx++, b, (size_t)(t - b)) != 0 && !y->oom) {
                snprintf(path, sizeof path, "%s:%zu", f->path, line);
                coco_build_problem(y->ds, COCO_ERROR, path, "use fewer classes",
                                   "%s: more than %d classes", path, YOLO_MAX_NAMES);
                return;
            }
        }
        p = nl ? nl + 1 : end;
    }
    y->have_names = 1;
}

static int scalar_is(const yaml_node_t *n, const char *s)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
           memcmp(n->data.scalar.value, s, n->data.scalar.length) == 0;
}

static void yaml_problem(yctx *y, const char *file, size_t line0, const char *hint,
                         const char *what)
{
    char path[COCO_PATH_MAX];
    snprintf(path, sizeof path, "%s:%zu", file, line0 + 1);
    coco_build_problem(y->ds, COCO_ERROR, path, hint, "%s: %s", path, what);
}

/* names: a list of strings, or a map index -> string. */
static void names_from_node(yctx *y, yaml_document_t *doc, yaml_node_t *v, const char *file)
{
    const char *hint =
        "write names as a list (names: [cat, dog]) or a map (names: {0: cat, 1: dog})";
    if (v->type == YAML_SEQUENCE_NODE) {
        size_t idx = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top && !y->oom; it++, idx++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            if (!e || e->type != YAML_SCALAR_NODE || e->data.scalar.length == 0) {
                yaml_problem(y, file, e ? e->start_mark.line : v->start_mark.line, hint,
                             "a class name is not a plain string");
                continue;
            }
            if (set_name(y, idx, (const char *)e->data.scalar.value, e->data.scalar.length)) {
                yaml_problem(y, file, e->start_mark.line, "use fewer classes", "too many classes");
                return;
            }
        }
    } else if (v->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *pr = v->data.mapping.pairs.start;
             pr < v->data.mapping.pairs.top && !y->oom; pr++) {
            yaml_node_t *k = yaml_document_get_node(doc, pr->key);
            yaml_node_t *e = yaml_document_get_node(doc, pr->value);
            double d;
            if (!k || k->type != YAML_SCALAR_NODE ||
                coco_parse_double((const char *)k->data.scalar.value, k->data.scalar.length, &d) !=
                    0 ||
                d < 0 || d >= YOLO_MAX_NAMES || d != (double)(size_t)d) {
                yaml_problem(y, file, k ? k->start_mark.line : v->start_mark.line, hint,
                             "a class index is not a whole number from 0");
                continue;
            }
            if (!e || e->type != YAML_SCALAR_NODE || e->data.scalar.length == 0) {
                yaml_problem(y, file, e ? e->start_mark.line : k->start_mark.line, hint,
                             "a class name is not a plain string");
                continue;
            }
            set_name(y, (size_t)d, (const char *)e->data.scalar.value, e->data.scalar.length);
        }
    } else {
        yaml_problem(y, file, v->start_mark.line, hint, "names is neither a list nor a map");
        return;
    }
    y->have_names = 1;
}

static void names_from_yaml(yctx *y, const coco_src_file *f)
{
    char path[COCO_PATH_MAX];
    if (f->len > YOLO_MAX_YAML_BYTES) {
        snprintf(path, sizeof path, "%s", f->path);
        coco_build_problem(y->ds, COCO_ERROR, path, "keep data.yaml small", "%s: larger than 4 MB",
                           path);
        return;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        y->oom = 1;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(f->data ? f->data : ""), f->len);
    if (!yaml_parser_load(&parser, &doc)) {
        char what[200];
        snprintf(what, sizeof what, "not valid YAML: %s",
                 parser.problem ? parser.problem : "parse error");
        yaml_problem(y, f->path, parser.problem_mark.line,
                     "fix the YAML (names: [cat, dog]) or use classes.txt, one name per line",
                     what);
        yaml_parser_delete(&parser);
        return;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *names = NULL;
    if (root && root->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
             pr < root->data.mapping.pairs.top; pr++)
            if (scalar_is(yaml_document_get_node(&doc, pr->key), "names"))
                names = yaml_document_get_node(&doc, pr->value);
    if (names)
        names_from_node(y, &doc, names, f->path);
    else
        yaml_problem(y, f->path, root ? root->start_mark.line : 0,
                     "add names: [cat, dog, ...] with the class names in index order",
                     "no names in the file");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

/* The category of class idx (made on first use, so the dataset lists the
 * classes used, in index order of first use); 0 when it has no name. */
static int64_t category_of(yctx *y, size_t idx, const char *origin)
{
    if (y->have_names && (idx >= y->n_names || !y->names[idx]))
        return 0;
    if (idx < y->n_names && y->cat_of[idx])
        return y->cat_of[idx];
    char num[32];
    const char *name = y->have_names ? y->names[idx] : num;
    snprintf(num, sizeof num, "%zu", idx);
    int64_t id = coco_build_category(y->ds, name, strlen(name), origin);
    if (id < 0)
        y->oom = 1;
    else if (idx < y->n_names)
        y->cat_of[idx] = id;
    return id < 0 ? 0 : id;
}

/* ---- label files ---- */

#define YOLO_MAX_FIELDS 2049 /* class + 1024 polygon points */

static void read_line(yctx *y, const char *file, size_t line, const char *s, size_t len,
                      int64_t image_id)
{
    char path[COCO_PATH_MAX];
    snprintf(path, sizeof path, "%s:%zu", file, line);
    double v[YOLO_MAX_FIELDS];
    size_t nf = 0;
    const char *p = s, *end = s + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        if (p == end)
            break;
        const char *b = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (nf == YOLO_MAX_FIELDS) {
            coco_build_problem(y->ds, COCO_ERROR, path, "split the polygon or simplify it",
                               "%s: more than %d numbers", path, YOLO_MAX_FIELDS);
            return;
        }
        if (coco_parse_double(b, (size_t)(p - b), &v[nf]) != 0) {
            coco_build_problem(
                y->ds, COCO_ERROR, path, "each line is: class x_center y_center width height",
                "%s: \"%.*s\" is not a number", path, (int)(p - b > 40 ? 40 : p - b), b);
            return;
        }
        nf++;
    }
    if (nf == 0)
        return; /* blank line */
    if (nf != 5 && (nf < 7 || nf % 2 == 0)) {
        coco_build_problem(y->ds, COCO_ERROR, path,
                           "each line is: class x_center y_center width height (or class and "
                           "polygon points x1 y1 x2 y2 ...)",
                           "%s: %zu numbers, expected 5", path, nf);
        return;
    }
    /* range first: converting a double outside long's range is undefined */
    if (!(v[0] >= 0 && v[0] < YOLO_MAX_NAMES) || v[0] != (double)(long)v[0]) {
        coco_build_problem(y->ds, COCO_ERROR, path,
                           "the first number is the class index: 0, 1, 2, ...",
                           "%s: class %g is not a whole number from 0", path, v[0]);
        return;
    }
    size_t cls = (size_t)v[0];
    static const char *const field[5] = {"class", "x_center", "y_center", "width", "height"};
    for (size_t k = 1; k < nf; k++) {
        if (v[k] < 0 || v[k] > 1) {
            char what[32];
            if (nf == 5)
                snprintf(what, sizeof what, "%s", field[k]);
            else
                snprintf(what, sizeof what, "%c%zu", k % 2 ? 'x' : 'y', (k + 1) / 2);
            coco_build_problem(y->ds, COCO_ERROR, path,
                               "YOLO coordinates are fractions of the image (0..1): divide "
                               "pixels by the image's width and height",
                               "%s: %s %g is outside 0..1", path, what, v[k]);
            return;
        }
    }
    double rel[4];
    if (nf == 5) {
        if (v[3] <= 0 || v[4] <= 0) {
            coco_build_problem(y->ds, COCO_ERROR, path, "give the box a positive width and height",
                               "%s: box has %s", path, v[3] <= 0 ? "no width" : "no height");
            return;
        }
        rel[0] = v[1] - v[3] / 2;
        rel[1] = v[2] - v[4] / 2;
        rel[2] = v[3];
        rel[3] = v[4];
    } else {
        double x0 = 1, y0 = 1, x1 = 0, y1 = 0;
        for (size_t k = 1; k + 1 < nf; k += 2) {
            x0 = v[k] < x0 ? v[k] : x0;
            x1 = v[k] > x1 ? v[k] : x1;
            y0 = v[k + 1] < y0 ? v[k + 1] : y0;
            y1 = v[k + 1] > y1 ? v[k + 1] : y1;
        }
        if (x1 <= x0 || y1 <= y0) {
            coco_build_problem(y->ds, COCO_ERROR, path, "a polygon needs an area",
                               "%s: polygon has no width or no height", path);
            return;
        }
        rel[0] = x0;
        rel[1] = y0;
        rel[2] = x1 - x0;
        rel[3] = y1 - y0;
    }
    int64_t cat = category_of(y, cls, path);
    if (y->oom)
        return;
    if (!cat) {
        char hint[160];
        snprintf(hint, sizeof hint, "use a class from 0 to %zu, or add its name to the class names",
                 y->n_names ? y->n_names - 1 : 0);
        coco_build_problem(y->ds, COCO_ERROR, path, hint, "%s: class %zu has no name (%zu names)",
                           path, cls, y->n_names);
        return;
    }
    if (coco_build_box(y->ds, image_id, cat, rel, path) != 0)
        y->oom = 1;
}

static void read_labels(yctx *y, const coco_src_file *f, int64_t image_id)
{
    const char *p = f->data ? f->data : "", *end = p + f->len;
    size_t line = 0;
    while (p < end && !y->oom) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        read_line(y, f->path, ++line, p, (size_t)(e - p), image_id);
        p = nl ? nl + 1 : end;
    }
}

/* ---- matching images and labels ---- */

/* The label path of image path: the last "images" folder swapped for
 * "labels", the extension for ".txt". -1 when the image is not below a
 * folder named images. */
static int label_path(const char *img, char *out, size_t cap)
{
    const char *hit = NULL;
    for (const char *p = img; (p = strstr(p, "images/")); p++)
        if (p == img || p[-1] == '/')
            hit = p;
    if (!hit)
        return -1;
    const char *base = strrchr(img, '/') + 1;
    size_t sl = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        sl = (size_t)(dot - base);
    int w = snprintf(out, cap, "%.*slabels/%.*s%.*s.txt", (int)(hit - img), img,
                     (int)(base - hit - 7), hit + 7, (int)sl, base);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

static _Thread_local const coco_src_file *sort_labels;

static int label_cmp(const void *a, const void *b)
{
    return strcmp(sort_labels[*(const size_t *)a].path, sort_labels[*(const size_t *)b].path);
}

static long find_label(const coco_src_file *labels, const size_t *order, size_t n, const char *path)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(labels[order[mid]].path, path);
        if (c == 0)
            return (long)order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* A label without its image: the image it names (images/ for labels/, no
 * extension), reported missing by validation. */
static void image_for_label(const char *label, char *out, size_t cap)
{
    const char *hit = NULL;
    for (const char *p = label; (p = strstr(p, "labels/")); p++)
        if (p == label || p[-1] == '/')
            hit = p;
    size_t len = strlen(label);
    if (len > 4 && strcmp(label + len - 4, ".txt") == 0)
        len -= 4;
    if (hit)
        snprintf(out, cap, "%.*simages/%.*s", (int)(hit - label), label,
                 (int)(len - (size_t)(hit - label) - 7), hit + 7);
    else
        snprintf(out, cap, "%.*s", (int)len, label);
}

static void read_all(yctx *y, const coco_src_file *labels, size_t n, const coco_src_image *images,
                     size_t n_images, size_t *order, char *used)
{
    char lp[COCO_PATH_MAX];
    for (size_t i = 0; i < n_images && !y->oom; i++) {
        const coco_src_image *im = &images[i];
        if (label_path(im->path, lp, sizeof lp) != 0)
            continue;
        long li = find_label(labels, order, n, lp);
        int64_t id = coco_build_image(y->ds, im->path, im->width, im->height,
                                      li >= 0 ? labels[li].path : im->path);
        if (id < 0) {
            y->oom = 1;
            return;
        }
        if (li >= 0) {
            used[li] = 1;
            read_labels(y, &labels[li], id);
        }
    }
    for (size_t k = 0; k < n && !y->oom; k++) {
        size_t li = order[k];
        if (used[li])
            continue;
        image_for_label(labels[li].path, lp, sizeof lp);
        int64_t id = coco_build_image(y->ds, lp, 0, 0, labels[li].path);
        if (id < 0) {
            y->oom = 1;
            return;
        }
        read_labels(y, &labels[li], id);
    }
}

coco_status coco_yolo_parse(const coco_src_file *labels, size_t n, const coco_src_file *names,
                            const coco_src_image *images, size_t n_images, coco_dataset **out,
                            coco_diag *diag)
{
    if (!out || (n && !labels) || (n_images && !images))
        return coco_fail(diag, COCO_EINVAL, "coco_yolo_parse: bad argument");
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!labels[i].path)
            return coco_fail(diag, COCO_EINVAL, "coco_yolo_parse: label %zu has no path", i);
    for (size_t i = 0; i < n_images; i++)
        if (!images[i].path)
            return coco_fail(diag, COCO_EINVAL, "coco_yolo_parse: image %zu has no path", i);
    yctx y;
    memset(&y, 0, sizeof y);
    y.ds = coco_build_new();
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    char *used = calloc(n ? n : 1, 1);
    if (y.ds && order && used) {
        if (names && names->path) {
            size_t pl = strlen(names->path);
            if (pl >= 5 && (strcmp(names->path + pl - 5, ".yaml") == 0 ||
                            strcmp(names->path + pl - 4, ".yml") == 0))
                names_from_yaml(&y, names);
            else
                names_from_lines(&y, names);
        }
        if (!y.have_names && !y.oom) {
            char path[COCO_PATH_MAX];
            snprintf(path, sizeof path, "%s", names && names->path ? names->path : "");
            if (!names)
                coco_build_problem(y.ds, COCO_ERROR, path,
                                   "add data.yaml (names: [cat, dog]) or classes.txt (one name "
                                   "per line, in class order) next to images/ and labels/",
                                   "no class names: the classes are named by their numbers");
        }
        y.cat_of = calloc(y.n_names ? y.n_names : 1, sizeof *y.cat_of);
        if (!y.cat_of)
            y.oom = 1;
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        sort_labels = labels;
        qsort(order, n, sizeof *order, label_cmp);
        if (!y.oom)
            read_all(&y, labels, n, images, n_images, order, used);
    } else {
        y.oom = 1;
    }
    free(order);
    free(used);
    for (size_t i = 0; i < y.n_names; i++)
        free(y.names[i]);
    free(y.names);
    free(y.cat_of);
    if (y.oom) {
        coco_dataset_free(y.ds);
        return coco_fail(diag, COCO_ENOMEM, "out of memory");
    }
    if (coco_build_finish(y.ds) != COCO_OK)
        return coco_fail(diag, COCO_ENOMEM, "out of memory");
    *out = y.ds;
    return COCO_OK;
}
