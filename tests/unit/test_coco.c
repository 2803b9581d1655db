/* test_coco.c: the COCO loader and validator against a table of broken
 * inputs (each asserting the parse status, or the problem's severity, code,
 * JSON path and id), plus good inputs of both kinds and both box units,
 * status lines and the status.json report read back with cJSON.
 * JSON in this file is written with ' for " (see q()) to stay readable. */
#include "check.h"
#include "coco.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Returns a new copy of s with every ' turned into ". */
static char *q(const char *s)
{
    char *o = strdup(s);
    for (char *p = o; *p; p++)
        if (*p == '\'')
            *p = '"';
    return o;
}

/* clang-format off */
#define IMG(id, name) "{'id':" #id ",'file_name':'" name "','width':640,'height':480}"
#define ANN(id, img, cat, box) \
    "{'id':" #id ",'image_id':" #img ",'category_id':" #cat ",'bbox':" box "}"
#define LBL(id, img, cat) "{'id':" #id ",'image_id':" #img ",'category_id':" #cat "}"
#define CAT(id, name) "{'id':" #id ",'name':'" name "'}"
#define B1 "[0.1,0.1,0.2,0.2]"

/* a good relative detection dataset: 3 images, 2 categories, 4 boxes */
#define GOOD_IMGS IMG(1, "a.jpg") "," IMG(2, "b.jpg") "," IMG(3, "c.jpg")
#define GOOD_CATS CAT(1, "cat") "," CAT(2, "dog")
#define GOOD_ANNS ANN(1, 1, 1, B1) "," ANN(2, 2, 1, B1) "," ANN(3, 2, 2, B1) "," ANN(4, 3, 2, B1)
#define DOC(imgs, anns, cats) \
    "{'images':[" imgs "],'annotations':[" anns "],'categories':[" cats "]}"
#define GOOD DOC(GOOD_IMGS, GOOD_ANNS, GOOD_CATS)
/* the good document with image 0 replaced, annotations or categories added */
#define IMG0(img0) DOC(img0 "," IMG(2, "b.jpg") "," IMG(3, "c.jpg"), GOOD_ANNS, GOOD_CATS)
#define PLUS_ANNS(anns) DOC(GOOD_IMGS, GOOD_ANNS "," anns, GOOD_CATS)
#define PLUS_CATS(cats) DOC(GOOD_IMGS, GOOD_ANNS, GOOD_CATS "," cats)
/* pixel boxes: annotation 1 given, the others fine */
#define PX_DOC(first) DOC(GOOD_IMGS, ANN(1, 1, 1, first) "," ANN(2, 2, 1, "[10,10,100,100]") \
    "," ANN(3, 2, 2, "[10,10,100,100]") "," ANN(4, 3, 2, "[10,10,100,100]"), GOOD_CATS)

/* classification: 4 images, 2 categories, one label each */
#define CLS_IMGS GOOD_IMGS "," IMG(4, "d.jpg")
#define CLS_ANNS LBL(1, 1, 1) "," LBL(2, 2, 1) "," LBL(3, 3, 2) "," LBL(4, 4, 2)

enum { NOID = -999999 };

typedef struct file_case {
    int use;                /* apply file0 to image 0 (others unchecked) */
    coco_image_file file0;
} file_case;

typedef struct bad_case {
    const char *name;
    const char *json;  /* with ' for " */
    coco_status parse; /* expected parse status */
    coco_severity sev;
    coco_code code;
    const char *path;
    long long id; /* NOID: the problem carries no id */
    file_case files;
} bad_case;

#define E COCO_ERROR
#define W COCO_WARNING
#define INV COCO_CODE_ANNOTATIONS_INVALID
#define CORRUPT COCO_CODE_DATASET_CORRUPT
#define URI COCO_CODE_INVALID_ANNOTATION_URI
#define EMPTY COCO_CODE_DATASET_EMPTY
#define NOFILE {0}
#define FILE0(...) {1, {__VA_ARGS__}}
#define FOUND COCO_FILE_FOUND

static const bad_case bad_cases[] = {
    /* parse failures: fs refuses these at close() */
    {"not json", "hello", COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"empty bytes", "", COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"truncated", "{'images':[{'id':1", COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"trailing garbage", GOOD " x", COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"leading zero", "{'images':[{'id':01}],'annotations':[],'categories':[]}",
     COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"bad escape", "{'images':[{'file_name':'a\\q'}],'annotations':[],'categories':[]}",
     COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"raw newline in string",
     "{'images':[{'file_name':'a\nb'}],'annotations':[],'categories':[]}",
     COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"missing colon", "{'images' []}", COCO_EJSON, 0, 0, NULL, NOID, NOFILE},
    {"top is array", "[1,2]", COCO_ENOTCOCO, 0, 0, NULL, NOID, NOFILE},
    {"no categories", "{'images':[],'annotations':[]}", COCO_ENOTCOCO, 0, 0, NULL, NOID, NOFILE},
    {"images not array", "{'images':{},'annotations':[],'categories':[]}",
     COCO_ENOTCOCO, 0, 0, NULL, NOID, NOFILE},

    /* empty */
    {"no images", DOC("", GOOD_ANNS, GOOD_CATS), COCO_OK, E, EMPTY, "images", NOID, NOFILE},
    {"no annotations", DOC(GOOD_IMGS, "", GOOD_CATS), COCO_OK, E, EMPTY, "annotations", NOID,
     NOFILE},

    /* images: fields and types */
    {"image id missing",
     DOC(IMG(1, "a.jpg") ",{'file_name':'b.jpg','width':640,'height':480}", GOOD_ANNS, GOOD_CATS),
     COCO_OK, E, INV, "images[1].id", NOID, NOFILE},
    {"image id string", IMG0("{'id':'1','file_name':'a.jpg','width':640,'height':480}"),
     COCO_OK, E, INV, "images[0].id", NOID, NOFILE},
    {"image id fraction", IMG0("{'id':1.5,'file_name':'a.jpg','width':640,'height':480}"),
     COCO_OK, E, INV, "images[0].id", NOID, NOFILE},
    {"image id duplicate", DOC(GOOD_IMGS "," IMG(1, "z.jpg"), GOOD_ANNS, GOOD_CATS),
     COCO_OK, E, INV, "images[3].id", 1, NOFILE},
    {"width missing", IMG0("{'id':1,'file_name':'a.jpg','height':480}"),
     COCO_OK, E, INV, "images[0].width", 1, NOFILE},
    {"height negative", IMG0("{'id':1,'file_name':'a.jpg','width':640,'height':-4}"),
     COCO_OK, E, INV, "images[0].height", 1, NOFILE},
    {"file_name missing", IMG0("{'id':1,'width':640,'height':480}"),
     COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"file_name number", IMG0("{'id':1,'file_name':7,'width':640,'height':480}"),
     COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"file_name empty", IMG0(IMG(1, "")), COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"file_name escapes", IMG0(IMG(1, "../../etc/passwd")),
     COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"file_name absolute", IMG0(IMG(1, "/etc/passwd")),
     COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"file_name climbs after descending", IMG0(IMG(1, "a/../../x.jpg")),
     COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"file_name backslashes", IMG0(IMG(1, "..\\\\..\\\\x.jpg")),
     COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"file_name nul byte", IMG0(IMG(1, "a.jpg\\u0000/../../x")),
     COCO_OK, E, INV, "images[0].file_name", 1, NOFILE},
    {"image not an object", IMG0(IMG(1, "a.jpg") ",5"), COCO_OK, E, INV, "images[1]", NOID,
     NOFILE},
    {"duplicate images key",
     "{'images':[" GOOD_IMGS "],'images':[],'annotations':[" GOOD_ANNS "],"
     "'categories':[" GOOD_CATS "]}",
     COCO_OK, E, INV, "images", NOID, NOFILE},
    {"url bad scheme, file missing",
     IMG0("{'id':1,'file_name':'a.jpg','absolute_url':'ftp://h/a.jpg','width':640,'height':480}"),
     COCO_OK, E, URI, "images[0].absolute_url", 1,
     FILE0(COCO_FILE_MISSING, 0, NULL, 0, 0, 0, NULL)},
    {"url not a string",
     IMG0("{'id':1,'file_name':'a.jpg','coco_url':5,'width':640,'height':480}"),
     COCO_OK, E, URI, "images[0].coco_url", 1, NOFILE},

    /* annotations */
    {"image_id unknown", DOC(GOOD_IMGS, ANN(1, 9, 1, B1) "," GOOD_ANNS, GOOD_CATS),
     COCO_OK, E, INV, "annotations[0].image_id", 1, NOFILE},
    {"category_id unknown", PLUS_ANNS(ANN(5, 1, 99, B1)),
     COCO_OK, E, INV, "annotations[4].category_id", 5, NOFILE},
    {"annotation id duplicate", PLUS_ANNS(ANN(2, 1, 1, B1)),
     COCO_OK, E, INV, "annotations[4].id", 2, NOFILE},
    {"annotation id missing", PLUS_ANNS("{'image_id':1,'category_id':1,'bbox':" B1 "}"),
     COCO_OK, E, INV, "annotations[4].id", NOID, NOFILE},
    {"category_id missing", PLUS_ANNS("{'id':5,'image_id':1,'bbox':" B1 "}"),
     COCO_OK, E, INV, "annotations[4].category_id", 5, NOFILE},
    {"bbox 3 numbers", PLUS_ANNS(ANN(5, 1, 1, "[1,2,3]")),
     COCO_OK, E, INV, "annotations[4].bbox", 5, NOFILE},
    {"bbox string", PLUS_ANNS(ANN(5, 1, 1, "'0 0 1 1'")),
     COCO_OK, E, INV, "annotations[4].bbox", 5, NOFILE},
    {"bbox holds a string", PLUS_ANNS(ANN(5, 1, 1, "[0,0,'a',1]")),
     COCO_OK, E, INV, "annotations[4].bbox", 5, NOFILE},
    {"bbox huge number", PLUS_ANNS(ANN(5, 1, 1, "[0,0,1e999,1]")),
     COCO_OK, E, INV, "annotations[4].bbox", 5, NOFILE},
    {"bbox zero width", PLUS_ANNS(ANN(5, 1, 1, "[0.1,0.1,0,0.2]")),
     COCO_OK, E, INV, "annotations[4].bbox", 5, NOFILE},
    {"bbox far outside (relative)", PLUS_ANNS(ANN(5, 1, 1, "[0.9,0.1,0.5,0.2]")),
     COCO_OK, E, INV, "annotations[4].bbox", 5, NOFILE},
    {"bbox negative left (pixels)", PX_DOC("[-20,10,100,100]"),
     COCO_OK, E, INV, "annotations[0].bbox", 1, NOFILE},
    {"bbox overshoots by a pixel", PX_DOC("[0,0,641,100]"),
     COCO_OK, W, INV, "annotations[0].bbox", 1, NOFILE},
    {"bbox looks relative among pixels", PX_DOC("[0.1,0.1,0.5,0.5]"),
     COCO_OK, W, INV, "annotations[0].bbox", 1, NOFILE},
    {"detection label without box", PLUS_ANNS(LBL(5, 1, 1)),
     COCO_OK, E, INV, "annotations[4].bbox", 5, NOFILE},
    {"area string",
     PLUS_ANNS("{'id':5,'image_id':1,'category_id':1,'bbox':" B1 ",'area':'x'}"),
     COCO_OK, E, INV, "annotations[4].area", 5, NOFILE},

    /* categories */
    {"category id duplicate", PLUS_CATS(CAT(1, "bird")),
     COCO_OK, E, INV, "categories[2].id", 1, NOFILE},
    {"category name duplicate", PLUS_CATS(CAT(3, "dog")),
     COCO_OK, W, INV, "categories[2].name", 3, NOFILE},
    {"category name missing", PLUS_CATS("{'id':3}"),
     COCO_OK, E, INV, "categories[2].name", 3, NOFILE},
    {"category without images", PLUS_CATS(CAT(3, "bird")),
     COCO_OK, W, INV, "categories[2]", 3, NOFILE},
    {"category with one image",
     DOC(GOOD_IMGS, GOOD_ANNS "," ANN(5, 1, 3, B1), GOOD_CATS "," CAT(3, "bird")),
     COCO_OK, W, INV, "categories[2]", 3, NOFILE},

    /* classification rules */
    {"classification two labels",
     "{'task':'imageClassification','images':[" CLS_IMGS "],'annotations':[" CLS_ANNS
     "," LBL(5, 1, 2) "],'categories':[" GOOD_CATS "]}",
     COCO_OK, E, INV, "images[0]", 1, NOFILE},
    {"classification unlabelled image", DOC(CLS_IMGS "," IMG(5, "e.jpg"), CLS_ANNS, GOOD_CATS),
     COCO_OK, E, INV, "images[4]", 5, NOFILE},
    {"classification one category",
     DOC(CLS_IMGS, LBL(1, 1, 1) "," LBL(2, 2, 1) "," LBL(3, 3, 1) "," LBL(4, 4, 1),
         CAT(1, "cat")),
     COCO_OK, E, INV, "categories", NOID, NOFILE},

    /* image files, as the caller found them (image 0 = id 1) */
    {"file not an image", GOOD, COCO_OK, E, CORRUPT, "images[0]", 1,
     FILE0(FOUND, 1000, NULL, 0, 0, 0, NULL)},
    {"file unsupported format", GOOD, COCO_OK, E, CORRUPT, "images[0]", 1,
     FILE0(FOUND, 1000, "svg", 640, 480, 0, NULL)},
    {"file truncated", GOOD, COCO_OK, E, CORRUPT, "images[0]", 1,
     FILE0(FOUND, 1000, "jpeg", 640, 480, 1, "truncated jpeg")},
    {"file over 20 MB", GOOD, COCO_OK, E, CORRUPT, "images[0]", 1,
     FILE0(FOUND, 21u << 20, "png", 640, 480, 0, NULL)},
    {"declared size mismatch", GOOD, COCO_OK, E, INV, "images[0].width", 1,
     FILE0(FOUND, 1000, "jpeg", 800, 600, 1, NULL)},
    {"declared size swapped without rotation", GOOD, COCO_OK, E, INV, "images[0].width", 1,
     FILE0(FOUND, 1000, "jpeg", 480, 640, 1, NULL)},
    {"image too small", IMG0("{'id':1,'file_name':'a.jpg','width':40,'height':40}"),
     COCO_OK, E, CORRUPT, "images[0]", 1, NOFILE},
    {"image too large", IMG0("{'id':1,'file_name':'a.jpg','width':20000,'height':400}"),
     COCO_OK, E, CORRUPT, "images[0]", 1, NOFILE},
    {"download failed",
     IMG0("{'id':1,'absolute_url':'https://h.example/a.jpg','width':640,'height':480}"),
     COCO_OK, E, URI, "images[0]", 1,
     FILE0(COCO_FILE_FETCH_FAILED, 0, NULL, 0, 0, 0, "http 404")},
    {"file missing", GOOD, COCO_OK, W, CORRUPT, "images[0]", 1,
     FILE0(COCO_FILE_MISSING, 0, NULL, 0, 0, 0, NULL)},
};
/* clang-format on */

static const coco_problem *find_problem(const coco_report *r, coco_severity sev, const char *path)
{
    size_t n;
    const coco_problem *p = coco_report_problems(r, sev, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].path, path) == 0)
            return &p[i];
    return NULL;
}

static void dump_problems(const coco_report *r)
{
    for (int sev = 0; sev < 2; sev++) {
        size_t n;
        const coco_problem *p = coco_report_problems(r, (coco_severity)sev, &n);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "    %s %s [%s] %s | %s\n", sev ? "warning" : "error",
                    coco_code_name(p[i].code), p[i].path, p[i].message, p[i].hint);
    }
}

static void test_bad_cases(void)
{
    size_t ncase = sizeof bad_cases / sizeof bad_cases[0];
    printf("broken inputs: %zu\n", ncase);
    CHECK(ncase >= 30);
    for (size_t k = 0; k < ncase; k++) {
        const bad_case *c = &bad_cases[k];
        char *json = q(c->json);
        coco_dataset *ds = NULL;
        coco_diag d = {0};
        coco_status st = coco_dataset_parse(json, strlen(json), NULL, &ds, &d);
        CHECK_MSG(st == c->parse, "%s: parse status %s, want %s (%s)", c->name,
                  coco_status_name(st), coco_status_name(c->parse), d.msg);
        if (st != COCO_OK) {
            CHECK_MSG(ds == NULL && d.msg[0], "%s: failed parse gives no dataset and a message",
                      c->name);
            free(json);
            continue;
        }
        if (c->parse != COCO_OK) {
            coco_dataset_free(ds);
            free(json);
            continue;
        }
        coco_image_file *files = calloc(coco_dataset_image_count(ds) + 1, sizeof *files);
        if (c->files.use)
            files[0] = c->files.file0;
        coco_report *r = NULL;
        CHECK(coco_validate(ds, files, &r) == COCO_OK && r);
        const coco_problem *p = find_problem(r, c->sev, c->path);
        CHECK_MSG(p != NULL, "%s: no %s at '%s'", c->name, c->sev ? "warning" : "error", c->path);
        if (!p)
            dump_problems(r);
        if (p) {
            CHECK_MSG(p->code == c->code, "%s: code %s, want %s", c->name, coco_code_name(p->code),
                      coco_code_name(c->code));
            if (c->id == NOID)
                CHECK_MSG(!p->has_id, "%s: problem should carry no id", c->name);
            else
                CHECK_MSG(p->has_id && p->id == c->id, "%s: id %lld (has %d), want %lld", c->name,
                          (long long)p->id, p->has_id, c->id);
            /* message starts with the path; hint is actionable text */
            CHECK_MSG(strncmp(p->message, c->path, strlen(c->path)) == 0,
                      "%s: message '%s' does not start with the path", c->name, p->message);
            CHECK_MSG(strlen(p->hint) > 10, "%s: hint '%s' too short", c->name, p->hint);
        }
        const coco_summary *s = coco_report_summary(r);
        if (c->sev == COCO_ERROR)
            CHECK_MSG(s->state == COCO_STATE_INVALID, "%s: state %d, want invalid", c->name,
                      s->state);
        coco_report_free(r);
        coco_dataset_free(ds);
        free(files);
        free(json);
    }
}

/* nesting, size and entry limits */
static void test_limits(void)
{
    char deep[400];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{\"images\":");
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    n += (size_t)snprintf(deep + n, sizeof deep - n, ",\"annotations\":[],\"categories\":[]}");
    coco_dataset *ds = NULL;
    coco_diag d = {0};
    CHECK(coco_dataset_parse(deep, n, NULL, &ds, &d) == COCO_ETOODEEP && !ds);
    CHECK(strstr(d.msg, "64") != NULL);
    coco_limits lim = {0, 200, 0};
    CHECK(coco_dataset_parse(deep, n, &lim, &ds, &d) == COCO_OK);
    coco_dataset_free(ds);
    ds = NULL;

    /* a million '[' does not overflow the stack */
    size_t big = 1000000;
    char *b = malloc(big);
    memset(b, '[', big);
    CHECK(coco_dataset_parse(b, big, NULL, &ds, &d) == COCO_ETOODEEP);
    memset(b, '{', big);
    CHECK(coco_dataset_parse(b, big, NULL, &ds, &d) == COCO_EJSON ||
          coco_dataset_parse(b, big, NULL, &ds, &d) == COCO_ETOODEEP);
    free(b);

    char *good = q(DOC(GOOD_IMGS, GOOD_ANNS, GOOD_CATS));
    coco_limits small = {10, 0, 0};
    CHECK(coco_dataset_parse(good, strlen(good), &small, &ds, &d) == COCO_ETOOBIG);
    coco_limits few = {0, 0, 5};
    CHECK(coco_dataset_parse(good, strlen(good), &few, &ds, &d) == COCO_ELIMIT);
    CHECK(coco_dataset_parse(NULL, 5, NULL, &ds, &d) == COCO_EINVAL);
    /* the error offset points into the input */
    const char *bad = "{\"images\": [1,,2]}";
    CHECK(coco_dataset_parse(bad, strlen(bad), NULL, &ds, &d) == COCO_EJSON);
    CHECK(d.offset == 14);
    CHECK(strstr(d.msg, "line 1") != NULL);
    free(good);
}

static coco_report *validate_json(const char *json_q, const coco_image_file *files,
                                  coco_dataset **dsout)
{
    char *json = q(json_q);
    coco_dataset *ds = NULL;
    coco_diag d = {0};
    coco_status st = coco_dataset_parse(json, strlen(json), NULL, &ds, &d);
    CHECK_MSG(st == COCO_OK, "parse: %s", d.msg);
    free(json);
    if (st != COCO_OK)
        return NULL;
    coco_report *r = NULL;
    CHECK(coco_validate(ds, files, &r) == COCO_OK);
    if (dsout)
        *dsout = ds;
    else
        coco_dataset_free(ds);
    return r;
}

static void test_good(void)
{
    char line[256];
    /* relative detection */
    coco_dataset *ds = NULL;
    coco_report *r = validate_json(DOC(GOOD_IMGS, GOOD_ANNS, GOOD_CATS), NULL, &ds);
    const coco_summary *s = coco_report_summary(r);
    CHECK(s->state == COCO_STATE_READY && s->errors == 0 && s->warnings == 0);
    if (s->errors || s->warnings)
        dump_problems(r);
    CHECK(s->kind == COCO_KIND_DETECTION && s->units == COCO_UNITS_RELATIVE);
    CHECK(s->images == 3 && s->categories == 2 && s->boxes == 4 && s->annotations == 4);
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strcmp(line, "ready: 3 images, 2 categories, 4 boxes (detection)") == 0, "%s", line);
    CHECK(coco_report_category_images(r, 0) == 2 && coco_report_category_images(r, 1) == 2);
    CHECK(coco_dataset_image_count(ds) == 3);
    const coco_image *im = coco_dataset_image(ds, 1);
    CHECK(im && im->id == 2 && strcmp(im->file_name, "b.jpg") == 0 && im->width == 640);
    CHECK(coco_dataset_image(ds, 3) == NULL);
    CHECK(coco_dataset_find_image(ds, 3) == 2 && coco_dataset_find_image(ds, 77) == -1);
    CHECK(coco_dataset_find_category(ds, 2) == 1);
    const coco_annotation *a = coco_dataset_annotation(ds, 0);
    CHECK(a && a->has_bbox && a->bbox[2] == 0.2);
    double rel[4];
    CHECK(coco_annotation_box_relative(ds, a, rel, NULL) == COCO_OK && rel[0] == 0.1);
    CHECK(strcmp(coco_dataset_category(ds, 1)->name, "dog") == 0);
    coco_report_free(r);
    coco_dataset_free(ds);

    /* pixel detection, a negative image (no boxes) is fine */
    r = validate_json(DOC(GOOD_IMGS "," IMG(4, "neg.jpg"),
                          ANN(1, 1, 1, "[10,20,100,50]") "," ANN(2, 2, 1, "[0,0,640,480]") "," ANN(
                              3, 2, 2, "[320,240,320,240]") "," ANN(4, 3, 2, "[1,1,2,2]"),
                          GOOD_CATS),
                      NULL, &ds);
    s = coco_report_summary(r);
    CHECK(s->state == COCO_STATE_READY && s->units == COCO_UNITS_PIXELS && s->errors == 0);
    if (s->errors)
        dump_problems(r);
    a = coco_dataset_annotation(ds, 0);
    CHECK(coco_annotation_box_relative(ds, a, rel, NULL) == COCO_OK);
    CHECK_NEAR(rel[0], 10.0 / 640, 1e-12);
    CHECK_NEAR(rel[3], 50.0 / 480, 1e-12);
    /* [320,240,320,240] fills the bottom-right quarter exactly */
    CHECK(coco_annotation_box_relative(ds, coco_dataset_annotation(ds, 2), rel, NULL) == COCO_OK);
    CHECK(rel[0] == 0.5 && rel[1] == 0.5 && rel[2] == 0.5 && rel[3] == 0.5);
    char *js = coco_report_to_json(r);
    cJSON *root = cJSON_Parse(js);
    CHECK(root && strcmp(cJSON_GetObjectItem(root, "boxUnits")->valuestring, "pixels") == 0);
    cJSON_Delete(root);
    free(js);
    coco_report_free(r);
    coco_dataset_free(ds);

    /* a box overshooting by a pixel is clipped for the trainer too */
    r = validate_json(DOC(GOOD_IMGS,
                          ANN(1, 1, 1, "[600,0,41,100]") "," ANN(2, 2, 1, "[0,0,10,10]") "," ANN(
                              3, 2, 2, "[0,0,10,10]") "," ANN(4, 3, 2, "[-700,0,10,10]"),
                          GOOD_CATS),
                      NULL, &ds);
    CHECK(coco_annotation_box_relative(ds, coco_dataset_annotation(ds, 0), rel, NULL) == COCO_OK);
    CHECK_NEAR(rel[0] + rel[2], 1.0, 1e-12);
    CHECK_NEAR(rel[2], 40.0 / 640, 1e-12);
    coco_diag bd = {0};
    CHECK(coco_annotation_box_relative(ds, coco_dataset_annotation(ds, 3), rel, &bd) ==
              COCO_EINVAL &&
          strstr(bd.msg, "annotation 4"));
    CHECK(coco_annotation_box_relative(ds, NULL, rel, NULL) == COCO_EINVAL);
    coco_report_free(r);
    coco_dataset_free(ds);

    /* classification */
    r = validate_json(DOC(CLS_IMGS, CLS_ANNS, GOOD_CATS), NULL, NULL);
    s = coco_report_summary(r);
    CHECK(s->state == COCO_STATE_READY && s->kind == COCO_KIND_CLASSIFICATION &&
          s->units == COCO_UNITS_NONE);
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strcmp(line, "ready: 4 images, 2 categories, 0 boxes (classification)") == 0, "%s",
              line);
    coco_report_free(r);

    /* multilabel: several categories on an image, no boxes (no "task"
     * needed); an image without a tag is fine */
    r = validate_json(DOC(CLS_IMGS "," IMG(5, "e.jpg"),
                          CLS_ANNS "," LBL(5, 1, 2) "," LBL(6, 1, 2) "," LBL(7, 3, 3),
                          GOOD_CATS "," CAT(3, "bird")),
                      NULL, NULL);
    s = coco_report_summary(r);
    CHECK(s->state == COCO_STATE_READY && s->kind == COCO_KIND_MULTILABEL && s->max_labels == 2);
    if (s->errors)
        dump_problems(r);
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strcmp(line, "ready: 5 images, 3 tags, up to 2 per image (multilabel)") == 0, "%s",
              line);
    coco_report_free(r);
    r = validate_json("{'task':'multilabel','images':[" CLS_IMGS "],'annotations':[" CLS_ANNS
                      "],'categories':[" GOOD_CATS "]}",
                      NULL, NULL);
    CHECK(coco_report_summary(r)->kind == COCO_KIND_MULTILABEL);
    coco_report_free(r);

    /* Azure style: bbox null / [] for labels, urls, extra fields, BOM, unicode names */
    const char *azure =
        "\xef\xbb\xbf{'info':{'v':[1,{'x':null}]},'images':["
        "{'id':1,'width':640,'height':480,'file_name':'images/a.jpg','absolute_url':'https://"
        "x.blob.core.windows.net/c/a.jpg?sv=1&sig=a%2Fb'},"
        "{'id':2,'width':640,'height':480,'file_name':'b.jpg','coco_url':'file:///data/b.jpg'},"
        "{'id':3,'width':640,'height':480,'file_name':'c\\u00e9.jpg'},"
        "{'id':4,'width':640,'height':480,'file_name':'d.jpg'}],"
        "'annotations':[{'id':1,'image_id':1,'category_id':1,'bbox':null,'iscrowd':0},"
        "{'id':2,'image_id':2,'category_id':1,'bbox':[]},{'id':3,'image_id':3,'category_id':2},"
        "{'id':4,'image_id':4,'category_id':2,'segmentation':[[1,2,3]]}],"
        "'categories':[{'id':1,'name':'\\ud83d\\udc31 "
        "cat','supercategory':'x'},{'id':2,'name':'dog'}]}";
    r = validate_json(azure, NULL, &ds);
    s = coco_report_summary(r);
    CHECK(s->state == COCO_STATE_READY && s->kind == COCO_KIND_CLASSIFICATION);
    if (s->errors)
        dump_problems(r);
    CHECK(strcmp(coco_dataset_category(ds, 0)->name, "\xf0\x9f\x90\xb1 cat") == 0);
    CHECK(strcmp(coco_dataset_image(ds, 2)->file_name, "c\xc3\xa9.jpg") == 0);
    CHECK(strcmp(coco_dataset_image(ds, 1)->url, "file:///data/b.jpg") == 0);
    CHECK(coco_url_classify(coco_dataset_image(ds, 0)->url) == COCO_URL_HTTPS);
    coco_report_free(r);
    coco_dataset_free(ds);

    /* "task" decides the kind over the boxes */
    r = validate_json("{'task':'imageClassification','images':[" CLS_IMGS
                      "],'annotations':[" ANN(1, 1, 1, B1) "," ANN(2, 2, 1, B1) "," ANN(
                          3, 3, 2, B1) "," ANN(4, 4, 2, B1) "],'categories':[" GOOD_CATS "]}",
                      NULL, NULL);
    s = coco_report_summary(r);
    CHECK(s->kind == COCO_KIND_CLASSIFICATION && s->errors == 0 && s->warnings == 4);
    coco_report_free(r);

    /* EXIF rotation: declared 480x640 for a stored 640x480 turned by 90 degrees */
    coco_image_file files[3] = {{COCO_FILE_FOUND, 5000, "jpeg", 480, 640, 6, NULL},
                                {COCO_FILE_FOUND, 5000, "mpo", 640, 480, 1, NULL},
                                {COCO_FILE_FOUND, 5000, "webp", 640, 480, 0, NULL}};
    r = validate_json(DOC("{'id':1,'file_name':'a.jpg','width':640,'height':480}," IMG(
                              2, "b.jpg") "," IMG(3, "c.jpg"),
                          GOOD_ANNS, GOOD_CATS),
                      files, NULL);
    s = coco_report_summary(r);
    CHECK(s->state == COCO_STATE_READY && s->images_found == 3);
    if (s->errors)
        dump_problems(r);
    coco_report_free(r);
    /* ... and its stored size matches too */
    files[0].width = 640;
    files[0].height = 480;
    r = validate_json(DOC(GOOD_IMGS, GOOD_ANNS, GOOD_CATS), files, NULL);
    CHECK(coco_report_summary(r)->errors == 0);
    coco_report_free(r);
}

static void test_states(void)
{
    char line[512];
    /* fetching, then incomplete, then invalid with a count */
    coco_image_file files[3] = {{COCO_FILE_FOUND, 5000, "jpeg", 640, 480, 1, NULL},
                                {COCO_FILE_FETCHING, 0, NULL, 0, 0, 0, NULL},
                                {COCO_FILE_MISSING, 0, NULL, 0, 0, 0, NULL}};
    coco_report *r = validate_json(DOC(GOOD_IMGS, GOOD_ANNS, GOOD_CATS), files, NULL);
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strcmp(line, "fetching: 1/3") == 0, "%s", line);
    CHECK(coco_report_image_status(r, 0) == COCO_IMAGE_OK);
    CHECK(coco_report_image_status(r, 1) == COCO_IMAGE_FETCHING);
    CHECK(coco_report_image_status(r, 2) == COCO_IMAGE_MISSING);
    CHECK(coco_report_image_status(r, 3) == COCO_IMAGE_INVALID);
    coco_report_free(r);

    files[1].state = COCO_FILE_FOUND;
    files[1].format = "png";
    files[1].width = 640;
    files[1].height = 480;
    r = validate_json(DOC(GOOD_IMGS, GOOD_ANNS, GOOD_CATS), files, NULL);
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strcmp(line, "incomplete: 1 images missing") == 0, "%s", line);
    CHECK(coco_report_summary(r)->images_missing == 1);
    coco_report_free(r);

    r = validate_json(
        DOC(GOOD_IMGS, GOOD_ANNS "," ANN(5, 9, 1, B1) "," ANN(6, 8, 1, B1), GOOD_CATS), NULL, NULL);
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strcmp(line,
                     "invalid: datasetAnnotationsInvalid: annotations[4].image_id: image_id 9 "
                     "not in images (+1 more)") == 0,
              "%s", line);
    /* a tiny buffer truncates but reports the full length */
    char tiny[10];
    size_t full = coco_report_status_line(r, tiny, sizeof tiny);
    CHECK(full == strlen(line) && strlen(tiny) == 9);
    coco_report_free(r);

    /* one error: no "(+0 more)" */
    r = validate_json(DOC(GOOD_IMGS, GOOD_ANNS "," ANN(5, 9, 1, B1), GOOD_CATS), NULL, NULL);
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strstr(line, "more") == NULL && strncmp(line, "invalid: ", 9) == 0, "%s", line);
    coco_report_free(r);

    /* the training rule: a category with one image becomes an error */
    r = validate_json(DOC(GOOD_IMGS, GOOD_ANNS "," ANN(5, 1, 3, B1), GOOD_CATS "," CAT(3, "bird")),
                      NULL, NULL);
    CHECK(coco_report_summary(r)->state == COCO_STATE_READY);
    CHECK(coco_report_summary(r)->warnings == 1);
    CHECK(coco_report_category_images(r, 2) == 1);
    CHECK(coco_report_apply_training_rules(r) == 1);
    CHECK(coco_report_apply_training_rules(r) == 0);
    const coco_summary *s = coco_report_summary(r);
    CHECK(s->state == COCO_STATE_INVALID && s->errors == 1 && s->warnings == 0);
    size_t n;
    const coco_problem *p = coco_report_problems(r, COCO_ERROR, &n);
    CHECK(n == 1 && strcmp(p[0].path, "categories[2]") == 0 && p[0].severity == COCO_ERROR &&
          strstr(p[0].message, "'bird'"));
    coco_report_free(r);
}

/* A SAS token in a url is a credential: no message may quote it. */
static void test_url_query_hidden(void)
{
    /* a failed download with a SAS query, one with a coco_url query, one with
     * a password and a ';sig=' parameter: none of them shown */
    coco_image_file files[3] = {{COCO_FILE_FETCH_FAILED, 0, NULL, 0, 0, 0, "http 403"},
                                {COCO_FILE_FOUND, 5000, "jpeg", 640, 480, 1, NULL},
                                {COCO_FILE_FETCH_FAILED, 0, NULL, 0, 0, 0, "http 401"}};
    coco_report *r =
        validate_json(DOC("{'id':1,'width':640,'height':480,'absolute_url':"
                          "'https://a.blob.core.windows.net/c/x.jpg?sv=2021&sig=SECRET'},"
                          "{'id':2,'file_name':'b.jpg','width':640,'height':480,'coco_url':'ftp://"
                          "h/y.jpg?sig=SECRET'},"
                          "{'id':3,'width':640,'height':480,'absolute_url':"
                          "'http://user:SECRET@h/z.jpg;sig=SECRET'}",
                          GOOD_ANNS, GOOD_CATS),
                      files, NULL);
    char *json = coco_report_to_json(r);
    char line[512];
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(json && !strstr(json, "SECRET") && !strstr(json, "sv=2021"), "%s", json);
    CHECK(json && strstr(json, "https://a.blob.core.windows.net/c/x.jpg"));
    CHECK_MSG(json && strstr(json, "http://h/z.jpg"), "%s", json);
    CHECK_MSG(!strstr(line, "SECRET"), "%s", line);
    free(json);
    coco_report_free(r);
}

static void test_report_json(void)
{
    /* a name with invalid UTF-8 and quotes still gives JSON that parses */
    const char *json =
        "{'images':[{'id':1,'file_name':'bad\xff\\u0022name.jpg','width':640,'height':480}," IMG(
            2, "b.jpg") "," IMG(3, "c.jpg") "],'annotations':[" GOOD_ANNS
                                            "," ANN(5, 3, 7, B1) "],'categories':[" GOOD_CATS "]}";
    coco_image_file files[3] = {{COCO_FILE_FOUND, 100, NULL, 0, 0, 0, NULL}, {0}, {0}};
    coco_report *r = validate_json(json, files, NULL);
    char *out = coco_report_to_json(r);
    CHECK(out != NULL);
    cJSON *root = cJSON_Parse(out);
    CHECK_MSG(root != NULL, "status.json does not parse:\n%s", out);
    if (root) {
        CHECK(strcmp(cJSON_GetObjectItem(root, "state")->valuestring, "invalid") == 0);
        CHECK(strncmp(cJSON_GetObjectItem(root, "status")->valuestring, "invalid: ", 9) == 0);
        CHECK(cJSON_GetObjectItem(root, "images")->valueint == 3);
        CHECK(cJSON_GetObjectItem(root, "boxes")->valueint == 5);
        CHECK(strcmp(cJSON_GetObjectItem(root, "boxUnits")->valuestring, "relative") == 0);
        CHECK(strcmp(cJSON_GetObjectItem(root, "kind")->valuestring, "detection") == 0);
        cJSON *errs = cJSON_GetObjectItem(root, "errors");
        CHECK(cJSON_IsArray(errs) && cJSON_GetArraySize(errs) == 2);
        CHECK(cJSON_GetObjectItem(root, "errorCount")->valueint == 2);
        int saw_corrupt = 0, saw_cat = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, errs)
        {
            const char *code = cJSON_GetObjectItem(e, "code")->valuestring;
            const char *path = cJSON_GetObjectItem(e, "path")->valuestring;
            CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
            CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "hint")));
            if (strcmp(code, "datasetCorrupt") == 0 && strcmp(path, "images[0]") == 0) {
                saw_corrupt = 1;
                CHECK(cJSON_GetObjectItem(e, "id")->valueint == 1);
                /* U+FFFD for the bad byte, quote escaped in the subject */
                CHECK(strstr(cJSON_GetObjectItem(e, "message")->valuestring, "\xef\xbf\xbd") !=
                      NULL);
            }
            if (strcmp(path, "annotations[4].category_id") == 0) {
                saw_cat = 1;
                CHECK(cJSON_GetObjectItem(e, "id")->valueint == 5);
            }
        }
        CHECK(saw_corrupt && saw_cat);
        cJSON *ci = cJSON_GetObjectItem(root, "categoryImages");
        CHECK(cJSON_GetArraySize(ci) == 2);
        CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(ci, 1), "images")->valueint == 2);
        CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(ci, 0), "name")->valuestring, "cat") ==
              0);
        CHECK(cJSON_IsArray(cJSON_GetObjectItem(root, "warnings")));
        cJSON_Delete(root);
    }
    free(out);
    coco_report_free(r);
}

/* more problems than stored: the count is exact, the list capped */
static void test_cap(void)
{
    size_t n = 3000;
    size_t cap = 200 + n * 80;
    char *json = malloc(cap);
    size_t o = (size_t)snprintf(json, cap,
                                "{\"images\":[{\"id\":1,\"file_name\":\"a.jpg\",\"width\":640,"
                                "\"height\":480}],\"categories\":[{\"id\":1,\"name\":\"a\"}],"
                                "\"annotations\":[");
    for (size_t i = 0; i < n; i++)
        o +=
            (size_t)snprintf(json + o, cap - o,
                             "%s{\"id\":%zu,\"image_id\":%zu,\"category_id\":1,\"bbox\":[0,0,1,1]}",
                             i ? "," : "", i + 1, i + 2);
    o += (size_t)snprintf(json + o, cap - o, "]}");
    coco_dataset *ds = NULL;
    CHECK(coco_dataset_parse(json, o, NULL, &ds, NULL) == COCO_OK);
    coco_report *r = NULL;
    CHECK(coco_validate(ds, NULL, &r) == COCO_OK);
    const coco_summary *s = coco_report_summary(r);
    size_t stored;
    coco_report_problems(r, COCO_ERROR, &stored);
    CHECK_MSG(s->errors == n, "errors %zu", s->errors);
    CHECK(stored == COCO_MAX_STORED_PROBLEMS);
    char line[512];
    coco_report_status_line(r, line, sizeof line);
    CHECK_MSG(strstr(line, "(+2999 more)") != NULL, "%s", line);
    char *js = coco_report_to_json(r);
    cJSON *root = cJSON_Parse(js);
    CHECK(root && cJSON_GetObjectItem(root, "errorsNotListed")->valueint == 2000);
    cJSON_Delete(root);
    free(js);
    coco_report_free(r);
    coco_dataset_free(ds);
    free(json);
}

static void test_null_free(void)
{
    coco_dataset_free(NULL);
    coco_report_free(NULL);
    CHECK(coco_validate(NULL, NULL, NULL) == COCO_EINVAL);
    CHECK(coco_report_to_json(NULL) == NULL);
    CHECK(coco_dataset_image_count(NULL) == 0);
    CHECK(strcmp(coco_code_name(COCO_CODE_INVALID_ANNOTATION_URI), "DatasetInvalidAnnotationUri") ==
          0);
    CHECK(strcmp(coco_code_name(COCO_CODE_DATASET_EMPTY), "datasetEmpty") == 0);
    CHECK(strcmp(coco_status_name(COCO_ETOODEEP), "etoodeep") == 0);
}

/* coco_dataset_to_json: hostile names and urls come back exactly (invalid
 * UTF-8 as U+FFFD), and the output parses to the same dataset. */
static void test_serialize(void)
{
    const char *in = "{\"images\": [{\"id\": 7, \"width\": 64, \"height\": 48, \"file_name\": "
                     "\"a\\\"b\\\\c\\u0001\\u2028.png\", \"absolute_url\": \"http://h/x?sig=1\"}],"
                     "\"annotations\": [{\"id\": 3, \"image_id\": 7, \"category_id\": 2, "
                     "\"bbox\": [0.1, 0.25, 0.5, 0.3333333333333333], \"area\": 0.1666}],"
                     "\"categories\": [{\"id\": 2, \"name\": \"caf\xc3\xa9 \xff\"}]}";
    coco_dataset *ds = NULL, *back = NULL;
    coco_diag d;
    CHECK(coco_dataset_parse(in, strlen(in), NULL, &ds, &d) == COCO_OK);
    size_t len = 0;
    char *out = ds ? coco_dataset_to_json(ds, COCO_KIND_DETECTION, &len) : NULL;
    CHECK(out && len == strlen(out));
    CHECK(out && strstr(out, "\"task\":\"imageObjectDetection\"") != NULL);
    CHECK(out && coco_dataset_parse(out, len, NULL, &back, &d) == COCO_OK);
    if (back) {
        const coco_image *im = coco_dataset_image(back, 0);
        CHECK(im && im->id == 7 && im->width == 64 && im->height == 48);
        CHECK(im && im->file_name_len == strlen("a\"b\\c\x01\xe2\x80\xa8.png") &&
              memcmp(im->file_name, "a\"b\\c\x01\xe2\x80\xa8.png", im->file_name_len) == 0);
        CHECK(im && im->url && strcmp(im->url, "http://h/x?sig=1") == 0);
        const coco_annotation *a = coco_dataset_annotation(back, 0);
        CHECK(a && a->has_bbox && a->bbox[3] == 0.3333333333333333 && a->area == 0.1666);
        const coco_category *c = coco_dataset_category(back, 0);
        CHECK(c && c->name && strcmp(c->name, "caf\xc3\xa9 \xef\xbf\xbd") == 0);
    }
    free(out);
    coco_dataset_free(ds);
    coco_dataset_free(back);
}

int main(void)
{
    test_serialize();
    test_bad_cases();
    test_limits();
    test_good();
    test_states();
    test_url_query_hidden();
    test_report_json();
    test_cap();
    test_null_free();
    return check_report("test_coco");
}
