/* test_report.c: the evaluation report (engine/report/) from hand-made
 * details whose numbers are known: a classifier (confusion counts, the AP
 * of each curve, the most confident mistakes with a thumbnail, an image
 * that is gone as a placeholder, names escaped), a detector (the F1
 * threshold, wrong-category matches, false alarms in the background row,
 * misses), no detail at all; the PNGs decode at the documented sizes. */
#include "check.h"
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

static void png_size(const uint8_t *p, size_t len, int *w, int *h)
{
    eng_image *im = NULL;
    eng_diag d = {{0}};
    *w = *h = -1;
    if (eng_image_decode_mem(p, len, 0, &im, &d) == ENG_OK) {
        *w = im->w;
        *h = im->h;
    }
    eng_image_free(im);
}

static void write_jpeg(const char *path, int w, int h, uint8_t v)
{
    eng_image *im = eng_image_new(w, h);
    memset(im->rgb, v, (size_t)w * h * 3);
    uint8_t *jpg = NULL;
    size_t len = 0;
    eng_diag d = {{0}};
    CHECK(eng_image_encode_jpeg(im, 90, &jpg, &len, &d) == ENG_OK);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(jpg, 1, len, f) == len);
    if (f)
        fclose(f);
    free(jpg);
    eng_image_free(im);
}

static char dir[64];

static void test_classifier(void)
{
    const char *cats[3] = {"a", "<b>&\"x'", "c"};
    char p[4][128];
    const char *paths[4];
    for (int i = 0; i < 4; i++) {
        snprintf(p[i], sizeof p[i], "%s/%d.jpg", dir, i);
        if (i < 3)
            write_jpeg(p[i], 300, 200, (uint8_t)(60 * i + 30));
        paths[i] = p[i]; /* 3.jpg does not exist */
    }
    const float scores[12] = {0.9f, 0.05f, 0.05f, 0.1f, 0.1f, 0.8f,
                              0.1f, 0.2f,  0.7f,  0.3f, 0.6f, 0.1f};
    const uint8_t truth[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0};
    const long long ids[4] = {1, 2, 3, 4};
    eng_eval_detail dt = {.n = 4,
                          .ncat = 3,
                          .categories = cats,
                          .paths = paths,
                          .ids = ids,
                          .scores = scores,
                          .truth = truth};
    eng_eval_detail *copy = eng_eval_detail_copy(&dt);
    CHECK(copy && copy->paths != dt.paths && strcmp(copy->categories[1], cats[1]) == 0);
    eng_report r;
    eng_diag d = {{0}};
    const char *metrics = "{\"accuracyTop1\": 0.5, \"evaluatedOn\": {\"dataset\": \"t<1>\", "
                          "\"imageCount\": 4}}";
    CHECK(eng_report_build(copy, metrics, "Model <m>", &r, &d) == ENG_OK);
    eng_eval_detail_free(copy);
    if (!r.html)
        return;
    CHECK(strncmp(r.html, "<!DOCTYPE html>", 15) == 0);
    CHECK(strlen(r.html) == r.html_len);
    CHECK_MSG(count(r.html, "<svg ") == 5, "%d svg", count(r.html, "<svg "));
    CHECK_MSG(count(r.html, "<img ") == 1, "%d img", count(r.html, "<img "));
    CHECK(count(r.html, "<figure class=\"mistake\"") == 2);
    CHECK(strstr(r.html, "image no longer readable") != NULL);
    CHECK(strstr(r.html, "src=\"data:image/jpeg;base64,/9j/") != NULL);
    CHECK(strstr(r.html, "2 wrong answers") != NULL);
    /* the most confident mistake first: 1.jpg (c at 0.8) before 3.jpg */
    const char *m1 = strstr(r.html, "predicted c (0.800)"), *m3 = strstr(r.html, "(0.600)");
    CHECK(m1 && m3 && m1 < m3);
    /* names escaped everywhere, never markup */
    CHECK(strstr(r.html, "&lt;b&gt;&amp;&quot;x&#39;") != NULL);
    CHECK(strstr(r.html, "<b>&") == NULL && strstr(r.html, "<m>") == NULL);
    CHECK(strstr(r.html, "Model &lt;m&gt;") != NULL && strstr(r.html, "t&lt;1&gt;") != NULL);
    CHECK(strstr(r.html, "<script") == NULL &&
          strstr(r.html, "http://") == strstr(r.html, "http://www.w3.org"));
    /* confusion: a as a 1, a as the second 1, the second as c 1, c as c 1 */
    CHECK(strstr(r.html, "<title>a as a: 1</title>") != NULL);
    CHECK(strstr(r.html, "<title>a as &lt;b&gt;&amp;&quot;x&#39;: 1</title>") != NULL);
    CHECK(strstr(r.html, "<title>c as c: 1</title>") != NULL);
    CHECK(strstr(r.html, "<title>c as a: 0</title>") != NULL);
    /* AP per curve, as eng_average_precision gives */
    CHECK(strstr(r.html, "AP 1.000, 2 true") != NULL);
    CHECK(strstr(r.html, "AP 0.333, 1 true") != NULL);
    CHECK(strstr(r.html, "AP 0.500, 1 true") != NULL);
    int positive[4] = {0, 1, 0, 0};
    CHECK_NEAR(eng_average_precision(scores + 1, 3, positive, 4), 1.0 / 3, 1e-9);
    int w, h;
    png_size(r.confusion_png, r.confusion_len, &w, &h);
    CHECK(w == ENG_REPORT_MARGIN + 3 * ENG_REPORT_CELL && h == w);
    png_size(r.pr_png, r.pr_len, &w, &h);
    CHECK(w == ENG_REPORT_PR_W && h == ENG_REPORT_PR_H);
    eng_report_release(&r);
    eng_report_release(&r); /* twice is fine */
}

static void test_detector(void)
{
    const char *cats[2] = {"disc", "square"};
    char p[2][128];
    const char *paths[2] = {p[0], p[1]};
    snprintf(p[0], sizeof p[0], "%s/d0.jpg", dir);
    snprintf(p[1], sizeof p[1], "%s/d1.jpg", dir);
    write_jpeg(p[0], 100, 60, 200);
    write_jpeg(p[1], 100, 60, 100);
    const long long ids[2] = {10, 11};
    const int ws[2] = {100, 100}, hs[2] = {60, 60};
    const eng_det_gt gt[3] = {
        {10, 0, {10, 10, 20, 20}}, {10, 1, {40, 10, 15, 15}}, {11, 0, {5, 5, 10, 10}}};
    const eng_det_pred pred[4] = {{10, 0, {11, 10, 20, 20}, 0.9},
                                  {10, 0, {40, 10, 15, 15}, 0.8},
                                  {11, 1, {30, 30, 10, 10}, 0.7},
                                  {11, 0, {5, 5, 10, 10}, 0.2}};
    eng_eval_detail dt = {.detection = 1,
                          .n = 2,
                          .ncat = 2,
                          .categories = cats,
                          .paths = paths,
                          .ids = ids,
                          .widths = ws,
                          .heights = hs,
                          .gt = gt,
                          .ngt = 3,
                          .pred = pred,
                          .npred = 4};
    eng_report r;
    eng_diag d = {{0}};
    CHECK(eng_report_build(&dt, NULL, "det", &r, &d) == ENG_OK);
    if (!r.html)
        return;
    CHECK_MSG(count(r.html, "<svg ") == 4, "%d svg", count(r.html, "<svg "));
    CHECK_MSG(count(r.html, "<img ") == 2, "%d img", count(r.html, "<img "));
    /* best F1 (4/7) at the last score */
    CHECK(strstr(r.html, "score of at least 0.200") != NULL);
    CHECK(strstr(r.html, "<title>disc as disc: 2</title>") != NULL);
    CHECK(strstr(r.html, "<title>square as disc: 1</title>") != NULL);
    CHECK(strstr(r.html, "<title>background as square: 1</title>") != NULL);
    CHECK(strstr(r.html, "<title>disc as missed: 0</title>") != NULL);
    CHECK(strstr(r.html, "2 images with a false alarm or a missed box") != NULL);
    /* class-aware AP: disc 0.9 TP, 0.8 FP, 0.2 TP of 2; square no hit of 1 */
    CHECK(strstr(r.html, "AP 0.833, 2 true") != NULL);
    CHECK(strstr(r.html, "AP 0.000, 1 true") != NULL);
    int w, h;
    png_size(r.confusion_png, r.confusion_len, &w, &h);
    CHECK(w == ENG_REPORT_MARGIN + 3 * ENG_REPORT_CELL && h == w);
    eng_report_release(&r);
}

/* Many boxes: matching looks only at each image's own boxes, so this takes
 * well under a second (all pairs would take minutes). */
static void test_many_boxes(void)
{
    enum { N = 4000, G = 3, P = 12 };
    const char *cats[2] = {"a", "b"};
    const char **paths = calloc(N, sizeof *paths);
    long long *ids = calloc(N, sizeof *ids);
    eng_det_gt *gt = calloc((size_t)N * G, sizeof *gt);
    eng_det_pred *pred = calloc((size_t)N * P, sizeof *pred);
    for (int i = 0; i < N; i++) {
        paths[i] = "/nonexistent/x.jpg";
        ids[i] = 1000 + i;
        for (int g = 0; g < G; g++)
            gt[i * G + g] = (eng_det_gt){ids[i], g % 2, {g * 30.0, 0, 20, 20}};
        for (int p = 0; p < P; p++)
            pred[i * P + p] =
                (eng_det_pred){ids[i], p % 2, {p * 10.0, 0, 20, 20}, (p * 37 % 100) / 100.0};
    }
    eng_eval_detail dt = {.detection = 1,
                          .n = N,
                          .ncat = 2,
                          .categories = cats,
                          .paths = paths,
                          .ids = ids,
                          .gt = gt,
                          .ngt = N * G,
                          .pred = pred,
                          .npred = N * P};
    eng_report r;
    eng_diag d = {{0}};
    CHECK(eng_report_build(&dt, NULL, "many", &r, &d) == ENG_OK);
    CHECK(r.html && count(r.html, "image no longer readable") == ENG_REPORT_MAX_MISTAKES);
    eng_report_release(&r);
    free(paths);
    free(ids);
    free(gt);
    free(pred);
}

static void test_no_detail(void)
{
    eng_report r;
    eng_diag d = {{0}};
    CHECK(eng_report_build(NULL, "{\"meanAveragePrecision50\": 0.75}", "m", &r, &d) == ENG_OK);
    if (!r.html)
        return;
    CHECK(strstr(r.html, "kept no per-image results") != NULL);
    CHECK(strstr(r.html, "0.750") != NULL && count(r.html, "<svg ") == 0);
    int w, h;
    png_size(r.confusion_png, r.confusion_len, &w, &h);
    CHECK(w == ENG_REPORT_MARGIN && h == ENG_REPORT_MARGIN);
    png_size(r.pr_png, r.pr_len, &w, &h);
    CHECK(w == ENG_REPORT_PR_W && h == ENG_REPORT_PR_H);
    eng_report_release(&r);
    eng_eval_detail_free(NULL);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/vfs-report.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_classifier();
    test_detector();
    test_no_detail();
    test_many_boxes();
    const char *names[] = {"0.jpg", "1.jpg", "2.jpg", "d0.jpg", "d1.jpg"};
    char p[128];
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return check_report("test_report");
}
