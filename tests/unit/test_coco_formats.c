/* test_coco_formats.c: the Pascal VOC and YOLO readers (coco/voc.c,
 * coco/yolo.c): good folders of each layout give the dataset a COCO file
 * would (relative boxes, categories by name, images where they were found)
 * and validate as ready; a table of broken files per format asserts each
 * problem's severity, its path (file and line, or file and element) and its
 * message; a DOCTYPE (XXE, entity bombs) is refused; the export is a COCO
 * file with relative boxes that reads back as the same dataset; many
 * distinct class names cost linear time, not quadratic. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "coco.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const coco_src_image IMAGES[] = {
    {"JPEGImages/a.jpg", 200, 100}, {"JPEGImages/b.png", 400, 300}, {"side/c.jpg", 640, 480},
    {"images/a.jpg", 200, 100},     {"images/b.png", 400, 300},     {"images/sub/d.jpg", 100, 100},
    {"train/images/e.jpg", 64, 64}, {"other/x.jpg", 80, 80},
};
#define N_IMAGES (sizeof IMAGES / sizeof IMAGES[0])

static coco_src_file F(const char *path, const char *text)
{
    coco_src_file f = {path, text, strlen(text)};
    return f;
}

/* The problem of severity sev whose path contains path and message
 * contains msg, or NULL. */
static const coco_problem *find_problem(const coco_report *r, coco_severity sev, const char *path,
                                        const char *msg)
{
    size_t n = 0;
    const coco_problem *p = coco_report_problems(r, sev, &n);
    for (size_t i = 0; i < n; i++)
        if (strstr(p[i].path, path) && strstr(p[i].message, msg) && p[i].hint[0])
            return &p[i];
    return NULL;
}

static void dump(const coco_report *r)
{
    for (int sev = 0; sev < 2; sev++) {
        size_t n = 0;
        const coco_problem *p = coco_report_problems(r, (coco_severity)sev, &n);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "  %s: %s | %s | %s\n", sev ? "warning" : "error", p[i].path,
                    p[i].message, p[i].hint);
    }
}

/* Validates ds with every image found at its declared (or given) size. */
static coco_report *validate_found(const coco_dataset *ds)
{
    size_t n = coco_dataset_image_count(ds);
    coco_image_file *files = calloc(n ? n : 1, sizeof *files);
    for (size_t i = 0; i < n; i++) {
        const coco_image *im = coco_dataset_image(ds, i);
        files[i].format = "jpeg";
        files[i].size = 1000;
        for (size_t k = 0; k < N_IMAGES; k++)
            if (strcmp(IMAGES[k].path, im->file_name) == 0) {
                files[i].state = COCO_FILE_FOUND;
                files[i].width = IMAGES[k].width;
                files[i].height = IMAGES[k].height;
            }
        if (!files[i].state)
            files[i].state = COCO_FILE_MISSING;
    }
    coco_report *r = NULL;
    CHECK(coco_validate(ds, files, &r) == COCO_OK);
    free(files);
    return r;
}

static const coco_annotation *ann_of(const coco_dataset *ds, const char *file, int k)
{
    for (size_t i = 0; i < coco_dataset_image_count(ds); i++) {
        const coco_image *im = coco_dataset_image(ds, i);
        if (strcmp(im->file_name, file) != 0)
            continue;
        int seen = 0;
        for (size_t a = 0; a < coco_dataset_annotation_count(ds); a++) {
            const coco_annotation *an = coco_dataset_annotation(ds, a);
            if (an->image_id == im->id && seen++ == k)
                return an;
        }
    }
    return NULL;
}

static const char *cat_name(const coco_dataset *ds, int64_t id)
{
    long c = coco_dataset_find_category(ds, id);
    return c >= 0 ? coco_dataset_category(ds, (size_t)c)->name : "?";
}

/* ---- Pascal VOC ---- */

#define VOC(fname, size, objs)                                                                     \
    "<?xml version=\"1.0\"?>\n<annotation>\n  <folder>JPEGImages</folder>\n"                       \
    "  <filename>" fname "</filename>\n" size objs "</annotation>\n"
#define SIZE(w, h) "  <size><width>" #w "</width><height>" #h "</height><depth>3</depth></size>\n"
#define OBJ(name, x0, y0, x1, y1)                                                                  \
    "  <object>\n    <name>" name "</name>\n    <bndbox>\n      <xmin>" #x0 "</xmin><ymin>" #y0    \
    "</ymin><xmax>" #x1 "</xmax><ymax>" #y1 "</ymax>\n    </bndbox>\n  </object>\n"

static void test_voc_good(void)
{
    coco_src_file f[3] = {
        F("Annotations/a.xml",
          VOC("a.jpg", SIZE(200, 100), OBJ("dog", 20, 10, 120, 60) OBJ("cat", 0, 0, 200, 100))),
        /* no <filename>: the image by the XML's stem; no <size>: the file's */
        F("Annotations/b.xml", "<annotation>" OBJ(" dog ", 40, 30, 80, 90) "</annotation>"),
        /* side by side, slight overshoot clipped with a warning */
        F("side/c.xml", VOC("c.jpg", SIZE(640, 480), OBJ("cat", 10, 20, 641, 480))),
    };
    coco_dataset *ds = NULL;
    coco_diag d;
    CHECK(coco_voc_parse(f, 3, IMAGES, N_IMAGES, &ds, &d) == COCO_OK);
    if (!ds)
        return;
    coco_info info;
    coco_dataset_info(ds, &info);
    CHECK(info.images == 3 && info.boxes == 4 && info.categories == 2);
    CHECK(info.kind == COCO_KIND_DETECTION && info.units == COCO_UNITS_RELATIVE);
    const coco_annotation *a = ann_of(ds, "JPEGImages/a.jpg", 0);
    CHECK(a && strcmp(cat_name(ds, a->category_id), "dog") == 0);
    if (a) {
        CHECK_NEAR(a->bbox[0], 0.1, 1e-9);
        CHECK_NEAR(a->bbox[1], 0.1, 1e-9);
        CHECK_NEAR(a->bbox[2], 0.5, 1e-9);
        CHECK_NEAR(a->bbox[3], 0.5, 1e-9);
    }
    a = ann_of(ds, "JPEGImages/b.png", 0);
    CHECK(a && strcmp(cat_name(ds, a->category_id), "dog") == 0); /* trimmed name */
    if (a) {
        CHECK_NEAR(a->bbox[0], 0.1, 1e-9);
        CHECK_NEAR(a->bbox[3], 0.2, 1e-9);
    }
    a = ann_of(ds, "side/c.jpg", 0);
    CHECK(a && a->bbox[0] + a->bbox[2] <= 1.0 + 1e-12);
    coco_report *r = validate_found(ds);
    const coco_summary *s = coco_report_summary(r);
    CHECK_MSG(s->state == COCO_STATE_READY, "state %d", (int)s->state);
    CHECK(s->errors == 0);
    CHECK(find_problem(r, COCO_WARNING, "side/c.xml: annotation/object[1]/bndbox (line",
                       "overshoots the image (640x480) slightly"));
    if (s->errors)
        dump(r);
    /* the export: relative boxes, the same counts, and it reads back */
    size_t len = 0;
    char *js = coco_dataset_export_json(ds, COCO_KIND_DETECTION, NULL, NULL, &len);
    CHECK(js != NULL);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    CHECK(root && cJSON_GetArraySize(cJSON_GetObjectItem(root, "annotations")) == 4);
    CHECK(root && cJSON_GetArraySize(cJSON_GetObjectItem(root, "categories")) == 2);
    cJSON *im0 = root ? cJSON_GetArrayItem(cJSON_GetObjectItem(root, "images"), 1) : NULL;
    /* b.xml had no <size>: its width comes from the sizes given, absent here */
    CHECK(im0 && !cJSON_GetObjectItem(im0, "width"));
    cJSON_Delete(root);
    coco_dataset *back = NULL;
    CHECK(js && coco_dataset_parse(js, len, NULL, &back, &d) == COCO_OK);
    coco_info bi;
    coco_dataset_info(back, &bi);
    CHECK(bi.boxes == 4 && bi.units == COCO_UNITS_RELATIVE);
    coco_dataset_free(back);
    free(js);
    coco_report_free(r);
    coco_dataset_free(ds);
}

typedef struct bad_case {
    const char *path, *text;
    coco_severity sev;
    const char *want_path, *want_msg;
} bad_case;

static void run_voc_bad(void)
{
    static const bad_case cases[] = {
        {"Annotations/a.xml", "<annotation><filename>a.jpg</filename>\n<object>", COCO_ERROR,
         "Annotations/a.xml:2", "not well-formed XML"},
        {"Annotations/a.xml", "<notvoc/>", COCO_ERROR, "Annotations/a.xml: notvoc",
         "the top element is not <annotation>"},
        {"Annotations/a.xml", VOC("a.jpg", SIZE(200, 100), "<object><bndbox/></object>"),
         COCO_ERROR, "Annotations/a.xml: annotation/object[1]/name (line 6)", "has no <name>"},
        {"Annotations/a.xml", VOC("a.jpg", SIZE(200, 100), "<object><name>x</name></object>"),
         COCO_ERROR, "annotation/object[1]/bndbox", "has no <bndbox>"},
        {"Annotations/a.xml", VOC("a.jpg", SIZE(200, 100), OBJ("x", 1, 2, 3, four)), COCO_ERROR,
         "Annotations/a.xml: annotation/object[1]/bndbox/ymax (line 9)", "not a number"},
        /* entities that do not loop are not expanded either: the DOCTYPE is refused */
        {"Annotations/a.xml",
         "<!DOCTYPE a [<!ENTITY n \"dog\">]><annotation><object><name>&n;</name></object>"
         "</annotation>",
         COCO_ERROR, "Annotations/a.xml", "a DOCTYPE is not allowed"},
        {"Annotations/a.xml", VOC("a.jpg", SIZE(200, 100), OBJ("x", 50, 10, 40, 20)), COCO_ERROR,
         "annotation/object[1]/bndbox", "has no width"},
        {"Annotations/a.xml", VOC("a.jpg", SIZE(200, 100), OBJ("x", 10, 10, 300, 20)), COCO_ERROR,
         "annotation/object[1]/bndbox", "leaves the image (200x100)"},
        {"Annotations/a.xml", VOC("a.jpg", SIZE(200, 100), OBJ("x", 300, 10, 400, 20)), COCO_ERROR,
         "annotation/object[1]/bndbox", "lies outside the image"},
        {"Annotations/a.xml", VOC("a.jpg", SIZE(2x0, 100), OBJ("x", 1, 1, 5, 5)), COCO_ERROR,
         "Annotations/a.xml: annotation/size (line 5)", "not a whole number"},
        /* declared size differs from the file's: validation names the XML */
        {"Annotations/a.xml", VOC("a.jpg", SIZE(300, 100), OBJ("x", 1, 1, 5, 5)), COCO_ERROR,
         "Annotations/a.xml: annotation/size", "does not match the file's 200x100"},
        /* an image not there (yet): missing, by where the XML expects it */
        {"Annotations/z.xml", VOC("z.jpg", SIZE(300, 100), OBJ("x", 1, 1, 5, 5)), COCO_WARNING,
         "Annotations/z.xml", "'JPEGImages/z.jpg' not found"},
        {"Annotations/a.xml",
         "<?xml version=\"1.0\"?>\n<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "
         "\"file:///etc/passwd\">]>\n<annotation><filename>&xxe;</filename></annotation>",
         COCO_ERROR, "Annotations/a.xml", "a DOCTYPE is not allowed"},
        {"Annotations/a.xml",
         "<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
         "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><annotation><object><name>&c;</name>"
         "</object></annotation>",
         COCO_ERROR, "Annotations/a.xml", "entity reference loop"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        coco_src_file f = F(c->path, c->text);
        coco_dataset *ds = NULL;
        CHECK(coco_voc_parse(&f, 1, IMAGES, N_IMAGES, &ds, NULL) == COCO_OK);
        if (!ds)
            continue;
        coco_report *r = validate_found(ds);
        const coco_problem *p = find_problem(r, c->sev, c->want_path, c->want_msg);
        CHECK_MSG(p != NULL, "VOC case %zu: want [%s] [%s]", i, c->want_path, c->want_msg);
        if (!p)
            dump(r);
        if (c->sev == COCO_ERROR)
            CHECK_MSG(coco_report_summary(r)->state == COCO_STATE_INVALID, "case %zu", i);
        coco_report_free(r);
        coco_dataset_free(ds);
    }
}

/* ---- YOLO ---- */

static void test_yolo_good(void)
{
    static const char *const names_files[][2] = {
        {"data.yaml", "train: images\nnc: 2\nnames: ['dog', cat]\n"},
        {"data.yaml", "names:\n  0: dog\n  1: cat\n"},
        {"data.yml", "names:\n  - dog\n  - cat\n"},
        {"classes.txt", "dog\ncat\n\n"},
        {"obj.names", "dog\r\ncat\r\n"},
    };
    for (size_t k = 0; k < sizeof names_files / sizeof names_files[0]; k++) {
        coco_src_file labels[3] = {
            F("labels/a.txt", "0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.2\n\n"),
            /* a polygon (YOLO segmentation): its bounding box */
            F("labels/sub/d.txt", "1 0.1 0.2 0.5 0.2 0.3 0.6\n"),
            F("train/labels/e.txt", "0 0.5 0.5 1 1"),
        };
        coco_src_file names = F(names_files[k][0], names_files[k][1]);
        coco_dataset *ds = NULL;
        CHECK(coco_yolo_parse(labels, 3, &names, IMAGES, N_IMAGES, &ds, NULL) == COCO_OK);
        if (!ds)
            continue;
        coco_info info;
        coco_dataset_info(ds, &info);
        /* images under images/ only (b.png has no labels: no boxes) */
        CHECK_MSG(info.images == 4 && info.boxes == 4 && info.categories == 2,
                  "names %zu: %zu images %zu boxes %zu categories", k, info.images, info.boxes,
                  info.categories);
        CHECK(info.units == COCO_UNITS_RELATIVE);
        const coco_annotation *a = ann_of(ds, "images/a.jpg", 1);
        CHECK(a && strcmp(cat_name(ds, a->category_id), "cat") == 0);
        if (a) {
            CHECK_NEAR(a->bbox[0], 0.2, 1e-9);
            CHECK_NEAR(a->bbox[1], 0.15, 1e-9);
            CHECK_NEAR(a->bbox[2], 0.1, 1e-9);
            CHECK_NEAR(a->bbox[3], 0.2, 1e-9);
        }
        a = ann_of(ds, "images/sub/d.jpg", 0);
        CHECK(a && strcmp(cat_name(ds, a->category_id), "cat") == 0);
        if (a) {
            CHECK_NEAR(a->bbox[0], 0.1, 1e-9);
            CHECK_NEAR(a->bbox[1], 0.2, 1e-9);
            CHECK_NEAR(a->bbox[2], 0.4, 1e-9);
            CHECK_NEAR(a->bbox[3], 0.4, 1e-9);
        }
        CHECK(ann_of(ds, "train/images/e.jpg", 0) != NULL);
        coco_report *r = validate_found(ds);
        CHECK_MSG(coco_report_summary(r)->errors == 0, "names %zu", k);
        if (coco_report_summary(r)->errors)
            dump(r);
        coco_report_free(r);
        coco_dataset_free(ds);
    }
}

static void run_yolo_bad(void)
{
    static const char *const yaml = "names: [dog, cat]\n";
    static const bad_case cases[] = {
        {"labels/a.txt", "0 0.5 0.5 0.2\n", COCO_ERROR, "labels/a.txt:1", "4 numbers, expected 5"},
        {"labels/a.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 x 0.2 0.2\n", COCO_ERROR, "labels/a.txt:2",
         "\"x\" is not a number"},
        {"labels/a.txt", "\n\n2 0.5 0.5 0.2 0.2\n", COCO_ERROR, "labels/a.txt:3",
         "class 2 has no name (2 names)"},
        {"labels/a.txt", "0.5 0.5 0.5 0.2 0.2\n", COCO_ERROR, "labels/a.txt:1",
         "class 0.5 is not a whole number"},
        {"labels/a.txt", "0 120 80 20 20\n", COCO_ERROR, "labels/a.txt:1",
         "x_center 120 is outside 0..1"},
        {"labels/a.txt", "0 0.5 0.5 0 0.2\n", COCO_ERROR, "labels/a.txt:1", "box has no width"},
        {"labels/a.txt", "0 nan 0.5 0.1 0.2\n", COCO_ERROR, "labels/a.txt:1", "not a number"},
        /* a box that leaves the image: validation, on the label's line */
        {"labels/a.txt", "1 0.95 0.5 0.5 0.2\n", COCO_ERROR, "labels/a.txt:1", "ends outside"},
        /* a label without its image: missing, named where it should be */
        {"labels/zz.txt", "0 0.5 0.5 0.2 0.2\n", COCO_WARNING, "labels/zz.txt",
         "image 'images/zz' not found"},
    };
    coco_src_file names = F("data.yaml", yaml);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        coco_src_file f = F(c->path, c->text);
        coco_dataset *ds = NULL;
        CHECK(coco_yolo_parse(&f, 1, &names, IMAGES, N_IMAGES, &ds, NULL) == COCO_OK);
        if (!ds)
            continue;
        coco_info info;
        coco_dataset_info(ds, &info);
        CHECK_MSG(info.units != COCO_UNITS_PIXELS, "case %zu: boxes read as pixels", i);
        coco_report *r = validate_found(ds);
        const coco_problem *p = find_problem(r, c->sev, c->want_path, c->want_msg);
        CHECK_MSG(p != NULL, "YOLO case %zu: want [%s] [%s]", i, c->want_path, c->want_msg);
        if (!p)
            dump(r);
        coco_report_free(r);
        coco_dataset_free(ds);
    }
    /* class-name files */
    static const bad_case nfiles[] = {
        {"data.yaml", "names: [dog, cat\n", COCO_ERROR, "data.yaml:", "not valid YAML"},
        {"data.yaml", "nc: 2\n", COCO_ERROR, "data.yaml:1", "no names in the file"},
        {"data.yaml", "names: 3\n", COCO_ERROR, "data.yaml:1", "neither a list nor a map"},
        {"data.yaml", "names:\n  a: dog\n", COCO_ERROR, "data.yaml:2",
         "class index is not a whole number"},
        {"data.yaml", "names: [dog, [cat]]\n", COCO_ERROR, "data.yaml:1",
         "class name is not a plain string"},
        {"classes.txt", "dog\n\ncat\n", COCO_ERROR, "classes.txt:2", "empty class name"},
    };
    coco_src_file lab = F("labels/a.txt", "0 0.5 0.5 0.2 0.2\n");
    for (size_t i = 0; i < sizeof nfiles / sizeof nfiles[0]; i++) {
        const bad_case *c = &nfiles[i];
        coco_src_file nf = F(c->path, c->text);
        coco_dataset *ds = NULL;
        CHECK(coco_yolo_parse(&lab, 1, &nf, IMAGES, N_IMAGES, &ds, NULL) == COCO_OK);
        if (!ds)
            continue;
        coco_report *r = validate_found(ds);
        const coco_problem *p = find_problem(r, c->sev, c->want_path, c->want_msg);
        CHECK_MSG(p != NULL, "names case %zu: want [%s] [%s]", i, c->want_path, c->want_msg);
        if (!p)
            dump(r);
        coco_report_free(r);
        coco_dataset_free(ds);
    }
    /* no class names at all: an error that says what to add */
    coco_dataset *ds = NULL;
    CHECK(coco_yolo_parse(&lab, 1, NULL, IMAGES, N_IMAGES, &ds, NULL) == COCO_OK);
    coco_report *r = validate_found(ds);
    CHECK(find_problem(r, COCO_ERROR, "", "no class names"));
    CHECK(coco_report_summary(r)->state == COCO_STATE_INVALID);
    coco_report_free(r);
    coco_dataset_free(ds);
    /* bad arguments */
    CHECK(coco_yolo_parse(NULL, 1, NULL, NULL, 0, &ds, NULL) == COCO_EINVAL);
    CHECK(coco_voc_parse(NULL, 1, NULL, 0, &ds, NULL) == COCO_EINVAL);
}

/* ---- many distinct classes ---- */

/* Boxes k and k + n both have the category named PREFIX k, and there are n
 * categories. */
static void check_classes(const coco_dataset *ds, size_t n, const char *what, const char *prefix)
{
    CHECK_MSG(coco_dataset_category_count(ds) == n, "%s: %zu categories, want %zu", what,
              coco_dataset_category_count(ds), n);
    CHECK_MSG(coco_dataset_annotation_count(ds) == 2 * n, "%s: %zu boxes, want %zu", what,
              coco_dataset_annotation_count(ds), 2 * n);
    size_t bad = 0;
    for (size_t k = 0; k < n && coco_dataset_annotation_count(ds) == 2 * n; k++) {
        const coco_annotation *a = coco_dataset_annotation(ds, k);
        const coco_annotation *b = coco_dataset_annotation(ds, k + n);
        long ci = coco_dataset_find_category(ds, a->category_id);
        char want[32];
        snprintf(want, sizeof want, "%s%zu", prefix, k);
        if (a->category_id != b->category_id || ci < 0 ||
            strcmp(coco_dataset_category(ds, (size_t)ci)->name, want))
            bad++;
    }
    CHECK_MSG(bad == 0, "%s: %zu boxes with the wrong category", what, bad);
}

/* A label folder with 100,000 distinct classes (the most it may have) and no
 * class-name file, and a VOC file with 50,000 distinct object names, each
 * used twice: hostile input a daemon reads on every write, so the category
 * lookup must not scan every category per box. */
static void test_many_classes(void)
{
    const size_t ny = 100000, nv = 50000;
    size_t cap = 2 * ny * 32 + 1, o = 0;
    char *txt = malloc(cap);
    for (size_t r = 0; r < 2; r++)
        for (size_t k = 0; k < ny; k++)
            o += (size_t)snprintf(txt + o, cap - o, "%zu 0.5 0.5 0.2 0.2\n", k);
    coco_src_file lab = {"labels/a.txt", txt, o};
    coco_dataset *ds = NULL;
    double t0 = now_ms();
    CHECK(coco_yolo_parse(&lab, 1, NULL, IMAGES, N_IMAGES, &ds, NULL) == COCO_OK);
    double ty = now_ms() - t0;
    if (ds)
        check_classes(ds, ny, "YOLO", ""); /* no names: classes are named by number */
    coco_dataset_free(ds);
    free(txt);

    cap = 200 + 2 * nv * 120;
    o = 0;
    txt = malloc(cap);
    o += (size_t)snprintf(txt + o, cap - o,
                          "<annotation><filename>a.jpg</filename><size><width>200</width>"
                          "<height>100</height></size>");
    for (size_t r = 0; r < 2; r++)
        for (size_t k = 0; k < nv; k++)
            o += (size_t)snprintf(txt + o, cap - o,
                                  "<object><name>c%zu</name><bndbox><xmin>1</xmin><ymin>2</ymin>"
                                  "<xmax>30</xmax><ymax>40</ymax></bndbox></object>",
                                  k);
    o += (size_t)snprintf(txt + o, cap - o, "</annotation>");
    coco_src_file x = {"Annotations/a.xml", txt, o};
    ds = NULL;
    t0 = now_ms();
    CHECK(coco_voc_parse(&x, 1, IMAGES, N_IMAGES, &ds, NULL) == COCO_OK);
    double tv = now_ms() - t0;
    if (ds)
        check_classes(ds, nv, "VOC", "c");
    coco_dataset_free(ds);
    free(txt);
    printf("many classes: YOLO %zu classes x 2 in %.0f ms, VOC %zu names x 2 in %.0f ms\n", ny, ty,
           nv, tv);
    /* linear is 0.2-0.7 s (1-3 s under sanitizers on a loaded machine); a
     * scan per box took 20 s and more */
    CHECK_MSG(ty < 10000 && tv < 10000, "too slow: YOLO %.0f ms, VOC %.0f ms", ty, tv);
}

int main(void)
{
    test_voc_good();
    run_voc_bad();
    test_yolo_good();
    run_yolo_bad();
    test_many_classes();
    return check_report("test_coco_formats");
}
