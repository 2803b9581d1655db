/* test_coco_paths.c: image lookup candidates (order, normalisation, and
 * every escape refused), URL classification, merging several files (id
 * clash rule, path prefixes) and number reading against strtod. */
#include "check.h"
#include "coco.h"

#include <stdlib.h>
#include <string.h>

static void expect_cands(const char *name, int n, const char *c0, const char *c1, const char *c2)
{
    coco_candidates c;
    coco_diag d = {0};
    coco_status st = coco_image_candidates(name, strlen(name), &c, &d);
    CHECK_MSG(st == COCO_OK, "'%s': %s", name, d.msg);
    CHECK_MSG(c.n == n, "'%s': %d candidates, want %d", name, c.n, n);
    const char *want[3] = {c0, c1, c2};
    for (int i = 0; i < n && i < c.n; i++)
        CHECK_MSG(strcmp(c.path[i], want[i]) == 0, "'%s' candidate %d: '%s', want '%s'", name, i,
                  c.path[i], want[i]);
}

static void expect_unsafe(const char *name, size_t len)
{
    coco_candidates c;
    c.n = 7;
    coco_diag d = {0};
    coco_status st = coco_image_candidates(name, len, &c, &d);
    CHECK_MSG(st == COCO_EUNSAFE && c.n == 0 && d.msg[0], "'%.*s' should be refused (%s)", (int)len,
              name, coco_status_name(st));
}

static void test_candidates(void)
{
    expect_cands("a.jpg", 2, "a.jpg", "images/a.jpg", NULL);
    expect_cands("images/a.jpg", 2, "images/a.jpg", "a.jpg", NULL);
    expect_cands("train/cats/a.jpg", 3, "train/cats/a.jpg", "a.jpg", "images/a.jpg");
    expect_cands("./images//a.jpg", 2, "images/a.jpg", "a.jpg", NULL);
    expect_cands("x/../a.jpg", 2, "a.jpg", "images/a.jpg", NULL);
    expect_cands("images\\sub\\a.jpg", 3, "images/sub/a.jpg", "a.jpg", "images/a.jpg");
    expect_cands("..a.jpg", 2, "..a.jpg", "images/..a.jpg", NULL);
    expect_cands("caf\xc3\xa9 1.jpg", 2, "caf\xc3\xa9 1.jpg", "images/caf\xc3\xa9 1.jpg", NULL);

    const char *bad[] = {"",          "/etc/passwd",    "../../etc/passwd", "a/../../x",
                         "..",        "../x",           "..\\..\\x",        "a\\..\\..\\x",
                         "C:\\x.jpg", "c:/x.jpg",       "\\\\server\\x",    ".",
                         "./",        "a/..",           "images/",          "a\nb.jpg",
                         "a\tb",      "images/../../x", "//etc/passwd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_unsafe(bad[i], strlen(bad[i]));
    expect_unsafe("a.jpg\0/../../x", 14);
    expect_unsafe("\0", 1);
    char longc[300];
    memset(longc, 'a', sizeof longc - 1);
    longc[sizeof longc - 1] = 0;
    expect_unsafe(longc, strlen(longc));
    char *huge = malloc(COCO_PATH_MAX + 10);
    for (int i = 0; i < COCO_PATH_MAX + 9; i++)
        huge[i] = i % 2 ? '/' : 'a';
    huge[COCO_PATH_MAX + 9] = 0;
    expect_unsafe(huge, strlen(huge));
    free(huge);
    CHECK(coco_image_candidates("a", 1, NULL, NULL) == COCO_EINVAL);

    /* no candidate of any input escapes: random names over a hostile alphabet */
    const char alpha[] = "./\\a.";
    unsigned seed = 12345;
    for (int t = 0; t < 20000; t++) {
        char name[24];
        int len = 1 + (int)(seed % 20);
        for (int i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            name[i] = alpha[(seed >> 16) % 5];
        }
        name[len] = 0;
        coco_candidates c;
        if (coco_image_candidates(name, (size_t)len, &c, NULL) != COCO_OK)
            continue;
        for (int k = 0; k < c.n; k++) {
            const char *p = c.path[k];
            CHECK_MSG(p[0] != '/' && p[0] && strcmp(p, "..") && strncmp(p, "../", 3) &&
                          !strstr(p, "/../") &&
                          strcmp(p + strlen(p) - (strlen(p) >= 3 ? 3 : 0), "/..") &&
                          !strchr(p, '\\') && !strstr(p, "//"),
                      "'%s' -> '%s'", name, p);
        }
    }
}

static void test_urls(void)
{
    CHECK(coco_url_classify(NULL) == COCO_URL_NONE);
    CHECK(coco_url_classify("") == COCO_URL_NONE);
    CHECK(coco_url_classify("http://h/a.jpg") == COCO_URL_HTTP);
    CHECK(coco_url_classify("HTTPS://h.blob.core.windows.net/c/a.jpg?sv=2021&sig=x%2By") ==
          COCO_URL_HTTPS);
    CHECK(coco_url_classify("file:///tmp/a.jpg") == COCO_URL_FILE);
    CHECK(coco_url_classify("file://localhost/tmp/a.jpg") == COCO_URL_FILE);
    CHECK(coco_url_classify("file://host/tmp/a.jpg") == COCO_URL_INVALID);
    CHECK(coco_url_classify("ftp://h/a.jpg") == COCO_URL_INVALID);
    CHECK(coco_url_classify("https:///a.jpg") == COCO_URL_INVALID);
    CHECK(coco_url_classify("https://") == COCO_URL_INVALID);
    CHECK(coco_url_classify("https://h/a b.jpg") == COCO_URL_INVALID);
    CHECK(coco_url_classify("a.jpg") == COCO_URL_INVALID);
    CHECK(coco_url_classify("javascript:alert(1)") == COCO_URL_INVALID);

    coco_image im = {0};
    CHECK(coco_image_fetch_url(NULL) == NULL && coco_image_fetch_url(&im) == NULL);
    im.url = "https://h/a.jpg";
    CHECK(coco_image_fetch_url(&im) == im.url);
    im.flags = COCO_URL_NUL;
    CHECK(coco_image_fetch_url(&im) == NULL);
    im.flags = 0;
    im.url = "ftp://h/a.jpg";
    CHECK(coco_image_fetch_url(&im) == NULL);
    CHECK(strcmp(coco_kind_name(COCO_KIND_DETECTION), "detection") == 0);
    CHECK(strcmp(coco_kind_name(COCO_KIND_UNKNOWN), "unknown") == 0);
    CHECK(strcmp(coco_units_name(COCO_UNITS_PIXELS), "pixels") == 0);
    CHECK(strcmp(coco_state_name(COCO_STATE_INCOMPLETE), "incomplete") == 0);
}

static coco_dataset *parse_q(const char *s)
{
    char *j = strdup(s);
    for (char *p = j; *p; p++)
        if (*p == '\'')
            *p = '"';
    coco_dataset *ds = NULL;
    coco_diag d = {0};
    CHECK_MSG(coco_dataset_parse(j, strlen(j), NULL, &ds, &d) == COCO_OK, "%s", d.msg);
    free(j);
    return ds;
}

static void test_merge(void)
{
    /* two exports that both number from 1; the second has one new category
     * and one whose id means something else */
    coco_dataset *a =
        parse_q("{'images':[{'id':1,'file_name':'a1.jpg','width':640,'height':480},"
                "{'id':2,'file_name':'a2.jpg','width':640,'height':480}],"
                "'annotations':[{'id':1,'image_id':1,'category_id':1,'bbox':[0.1,0.1,0.2,0.2]},"
                "{'id':2,'image_id':2,'category_id':2,'bbox':[0.1,0.1,0.2,0.2]}],"
                "'categories':[{'id':1,'name':'cat'},{'id':2,'name':'dog'}]}");
    coco_dataset *b = parse_q(
        "{'images':[{'id':1,'file_name':'b1.jpg','width':640,'height':480},"
        "{'id':2,'file_name':'b2.jpg','width':640,'height':480}],"
        "'annotations':[{'id':1,'image_id':1,'category_id':1,'bbox':[0.1,0.1,0.2,0.2]},"
        "{'id':2,'image_id':2,'category_id':2,'bbox':[0.1,0.1,0.2,0.2]},"
        "{'id':3,'image_id':2,'category_id':5,'bbox':[0.1,0.1,0.2,0.2]}],"
        "'categories':[{'id':1,'name':'dog'},{'id':2,'name':'bird'},{'id':3,'name':'cat'}]}");
    const coco_dataset *parts[2] = {a, b};
    coco_dataset *m = NULL;
    coco_diag d = {0};
    CHECK(coco_dataset_merge(parts, 2, &m, &d) == COCO_OK && m);
    CHECK(coco_dataset_image_count(m) == 4 && coco_dataset_annotation_count(m) == 5);
    /* images of b shifted past 2: 1->3, 2->4 */
    CHECK(coco_dataset_image(m, 2)->id == 3 && coco_dataset_image(m, 3)->id == 4);
    CHECK(strcmp(coco_dataset_image(m, 3)->file_name, "b2.jpg") == 0);
    CHECK(coco_dataset_image(m, 3)->source == 1 && coco_dataset_image(m, 3)->index == 1);
    /* categories by name: b's dog -> 2, b's cat -> 1, bird (id 2 taken) -> 3 */
    CHECK(coco_dataset_category_count(m) == 3);
    const coco_category *bird = coco_dataset_category(m, 2);
    CHECK(bird && strcmp(bird->name, "bird") == 0 && bird->id == 3);
    const coco_annotation *x = coco_dataset_annotation(m, 2); /* b's first: image 1, dog */
    CHECK(x->image_id == 3 && x->category_id == 2 && x->id == 3);
    x = coco_dataset_annotation(m, 3); /* b's second: image 2, bird */
    CHECK(x->image_id == 4 && x->category_id == 3 && x->id == 4);
    /* b's dangling category 5 stays dangling, with a prefixed path */
    coco_report *r = NULL;
    CHECK(coco_validate(m, NULL, &r) == COCO_OK);
    size_t n;
    const coco_problem *p = coco_report_problems(r, COCO_ERROR, &n);
    CHECK_MSG(n == 1 && strcmp(p[0].path, "files[1].annotations[2].category_id") == 0,
              "%zu errors, first '%s'", n, n ? p[0].path : "");
    coco_report_free(r);
    coco_dataset_free(m);

    /* no clash: ids are kept; problems found while parsing get the prefix */
    coco_dataset *c =
        parse_q("{'images':[{'id':10,'file_name':'c.jpg','width':640,'height':'x'}],"
                "'annotations':[{'id':10,'image_id':10,'category_id':1,'bbox':[0.1,0.1,0.2,0.2]}],"
                "'categories':[{'id':1,'name':'cat'}]}");
    parts[1] = c;
    CHECK(coco_dataset_merge(parts, 2, &m, &d) == COCO_OK);
    CHECK(coco_dataset_image(m, 2)->id == 10 && coco_dataset_annotation(m, 2)->id == 10);
    CHECK(coco_dataset_annotation(m, 2)->category_id == 1);
    CHECK(coco_validate(m, NULL, &r) == COCO_OK);
    p = coco_report_problems(r, COCO_ERROR, &n);
    CHECK(n >= 1 && strcmp(p[0].path, "files[1].images[0].height") == 0 &&
          strncmp(p[0].message, "files[1].images[0].height", 25) == 0);
    coco_report_free(r);
    coco_dataset_free(m);

    /* one part: a copy, no prefixes */
    CHECK(coco_dataset_merge(parts, 1, &m, &d) == COCO_OK && coco_dataset_image_count(m) == 2);
    coco_dataset_free(m);
    CHECK(coco_dataset_merge(NULL, 1, &m, &d) == COCO_EINVAL);
    coco_dataset_free(a);
    coco_dataset_free(b);
    coco_dataset_free(c);
}

/* the parser's numbers equal strtod's for many decimal shapes */
static void test_numbers(void)
{
    unsigned seed = 7;
    char json[256], num[64];
    int mismatches = 0;
    for (int t = 0; t < 20000; t++) {
        seed = seed * 1103515245u + 12345u;
        unsigned a = seed >> 8;
        seed = seed * 1103515245u + 12345u;
        unsigned b = seed >> 12;
        switch (t % 5) {
        case 0: snprintf(num, sizeof num, "%u.%u", a % 5000, b); break;
        case 1: snprintf(num, sizeof num, "0.%06u%u", b % 1000000, a); break;
        case 2: snprintf(num, sizeof num, "%u.%ue%d", a % 100, b % 1000, (int)(b % 40) - 20); break;
        case 3: snprintf(num, sizeof num, "%.17g", (double)a / (double)(b + 1)); break;
        default: snprintf(num, sizeof num, "-%u%u.%u", a, b, a % 7); break;
        }
        snprintf(json, sizeof json,
                 "{\"images\":[],\"categories\":[],\"annotations\":[{\"id\":1,\"image_id\":1,"
                 "\"category_id\":1,\"bbox\":[%s,1,1,1]}]}",
                 num);
        coco_dataset *ds = NULL;
        if (coco_dataset_parse(json, strlen(json), NULL, &ds, NULL) != COCO_OK) {
            mismatches++;
            continue;
        }
        const coco_annotation *an = coco_dataset_annotation(ds, 0);
        if (!an || !an->has_bbox || an->bbox[0] != strtod(num, NULL)) {
            if (mismatches < 5)
                fprintf(stderr, "number '%s' read as %.17g\n", num, an ? an->bbox[0] : 0.0);
            mismatches++;
        }
        coco_dataset_free(ds);
    }
    CHECK_MSG(mismatches == 0, "%d numbers differ from strtod", mismatches);
}

/* ids use the full int64 range exactly; larger or fractional ones are refused */
static void test_ids(void)
{
    const char *json =
        "{\"images\":[{\"id\":9223372036854775807,\"file_name\":\"a.jpg\",\"width\":64,"
        "\"height\":64},{\"id\":9223372036854775806,\"file_name\":null,\"absolute_url\":"
        "\"https://h/b.jpg\",\"width\":64,\"height\":64},{\"id\":-9223372036854775807,"
        "\"file_name\":\"c.jpg\",\"width\":64,\"height\":64},{\"id\":9223372036854775808,"
        "\"file_name\":\"d.jpg\",\"width\":64,\"height\":64}],\"annotations\":[],"
        "\"categories\":[]}";
    coco_dataset *ds = NULL;
    CHECK(coco_dataset_parse(json, strlen(json), NULL, &ds, NULL) == COCO_OK);
    CHECK(coco_dataset_image(ds, 0)->id == INT64_MAX);
    CHECK(coco_dataset_image(ds, 1)->id == INT64_MAX - 1);
    CHECK(coco_dataset_image(ds, 1)->file_name == NULL);
    CHECK(coco_dataset_image(ds, 2)->id == -INT64_MAX);
    CHECK(!(coco_dataset_image(ds, 3)->flags & COCO_HAS_ID));
    coco_report *r = NULL;
    CHECK(coco_validate(ds, NULL, &r) == COCO_OK);
    size_t n;
    const coco_problem *p = coco_report_problems(r, COCO_ERROR, &n);
    /* images[3].id, and the empty annotations list */
    CHECK_MSG(n == 2 && strcmp(p[0].path, "images[3].id") == 0, "%zu errors, first %s", n,
              n ? p[0].path : "");
    coco_report_free(r);
    coco_dataset_free(ds);
}

int main(void)
{
    test_candidates();
    test_urls();
    test_merge();
    test_numbers();
    test_ids();
    return check_report("test_coco_paths");
}
