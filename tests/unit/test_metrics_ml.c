/* test_metrics_ml.c: multilabel metrics (engine/metrics/multilabel.h) on
 * hand-worked cases (the arithmetic is in the comments), the F1-best
 * threshold, and the JSON names. */
#include "check.h"
#include "engine.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 4 images, 2 tags (rows are images).
 * tag 0 scores 0.9 0.8 0.3 0.1, truth 1 0 1 0
 * tag 1 scores 0.2 0.6 0.6 0.4, truth 0 1 0 0 */
static const float S[] = {0.9f, 0.2f, 0.8f, 0.6f, 0.3f, 0.6f, 0.1f, 0.4f};
static const uint8_t Y[] = {1, 0, 0, 1, 1, 0, 0, 0};

static void test_small_case(void)
{
    const float thr[] = {0.5f, 0.5f};
    eng_ml_metrics m;
    eng_diag d = {0};
    CHECK(eng_ml_metrics_compute(S, Y, thr, 4, 2, &m, &d) == ENG_OK);
    /* tag 0 ranked: 0.9 pos, 0.8 neg, 0.3 pos, 0.1 neg: AP = 0.5 x 1 + 0.5 x 2/3.
     * tag 1: the positive ties with a negative at 0.6: one threshold, recall
     * 1 at precision 1/2: AP 0.5. Mean AP 0.66667. */
    CHECK_NEAR(m.tag_ap[0], 0.5 + 0.5 * 2.0 / 3.0, 1e-12);
    CHECK_NEAR(m.tag_ap[1], 0.5, 1e-12);
    CHECK_NEAR(m.map, (0.5 + 1.0 / 3.0 + 0.5) / 2.0, 1e-12);
    /* at 0.5: tag 0 takes images 0 and 1 (TP 1, FP 1, FN 1): P 0.5, R 0.5;
     * tag 1 takes images 1 and 2 (TP 1, FP 1, FN 0): P 0.5, R 1.
     * Micro: TP 2, FP 2, FN 1: P 0.5, R 2/3. */
    CHECK_NEAR(m.tag_precision[0], 0.5, 1e-12);
    CHECK_NEAR(m.tag_recall[0], 0.5, 1e-12);
    CHECK_NEAR(m.tag_precision[1], 0.5, 1e-12);
    CHECK_NEAR(m.tag_recall[1], 1.0, 1e-12);
    CHECK_NEAR(m.precision, 0.5, 1e-12);
    CHECK_NEAR(m.recall, 2.0 / 3.0, 1e-12);
    CHECK(m.tag_images[0] == 2 && m.tag_images[1] == 1);
    eng_ml_metrics_release(&m);

    /* a higher threshold on tag 0 (0.85) takes only image 0: P 1, R 0.5 */
    const float thr2[] = {0.85f, 0.7f};
    CHECK(eng_ml_metrics_compute(S, Y, thr2, 4, 2, &m, &d) == ENG_OK);
    CHECK_NEAR(m.tag_precision[0], 1.0, 1e-12);
    CHECK_NEAR(m.tag_recall[0], 0.5, 1e-12);
    /* tag 1 at 0.7 takes nothing: precision 0 by rule, recall 0 */
    CHECK_NEAR(m.tag_precision[1], 0.0, 1e-12);
    CHECK_NEAR(m.tag_recall[1], 0.0, 1e-12);
    eng_ml_metrics_release(&m);
}

static void test_best_threshold(void)
{
    uint8_t col[4];
    /* tag 0: taking the top 1, 2, 3, 4 images gives F1 = 2 tp / (taken + 2):
     * 2/3, 2/4, 4/5, 4/6; the best is the top 3 (0.9, 0.8, 0.3): threshold
     * halfway between 0.3 and 0.1 */
    for (int i = 0; i < 4; i++)
        col[i] = Y[i * 2];
    CHECK_NEAR(eng_ml_best_threshold(S, 2, col, 4), 0.2, 1e-6);
    /* tag 1: the tied pair at 0.6 (F1 2/3), then 0.4 (2/4), all (2/5):
     * halfway between 0.6 and 0.4 */
    for (int i = 0; i < 4; i++)
        col[i] = Y[i * 2 + 1];
    CHECK_NEAR(eng_ml_best_threshold(S + 1, 2, col, 4), 0.5, 1e-6);
    /* equal F1 keeps the higher threshold: scores 0.9 (pos), 0.5 (neg),
     * 0.4 (pos): top 1 F1 = 2/3, top 3 F1 = 4/5... make them equal:
     * 0.9 pos, 0.8 neg, 0.7 neg, 0.6 pos: top 1 = 2/3, top 4 = 4/6 = 2/3 */
    const float s2[] = {0.9f, 0.8f, 0.7f, 0.6f};
    const uint8_t y2[] = {1, 0, 0, 1};
    CHECK_NEAR(eng_ml_best_threshold(s2, 1, y2, 4), 0.85, 1e-6);
    /* no positive: 0.5 */
    const uint8_t none[] = {0, 0, 0, 0};
    CHECK_NEAR(eng_ml_best_threshold(s2, 1, none, 4), 0.5, 1e-9);
}

static void test_json_and_errors(void)
{
    /* tag 2 has no image: no AP, left out of the mean and of the JSON */
    const float s[] = {0.9f, 0.1f, 0.3f, 0.2f, 0.8f, 0.3f};
    const uint8_t y[] = {1, 0, 0, 0, 1, 0};
    const float thr[] = {0.5f, 0.5f, 0.5f};
    eng_ml_metrics m;
    eng_diag d = {0};
    CHECK(eng_ml_metrics_compute(s, y, thr, 2, 3, &m, &d) == ENG_OK);
    CHECK(m.tag_ap[2] < 0 && m.tag_recall[2] < 0);
    CHECK_NEAR(m.map, 1.0, 1e-12);
    const char *tags[] = {"a", "b", "c"};
    eng_eval_extra ex = {"test", 2, -1, NULL};
    char *js = NULL;
    CHECK(eng_ml_metrics_json(&m, tags, thr, &ex, &js, &d) == ENG_OK);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    CHECK(o != NULL);
    if (o) {
        CHECK_NEAR(cJSON_GetObjectItem(o, "averagePrecision")->valuedouble, 1.0, 1e-9);
        CHECK(cJSON_GetObjectItem(o, "precision") && cJSON_GetObjectItem(o, "recall"));
        const cJSON *tp = cJSON_GetObjectItem(o, "tagPerformance");
        const cJSON *a = cJSON_GetObjectItem(tp, "a");
        CHECK(a && cJSON_GetObjectItem(a, "averagePrecision") &&
              cJSON_GetObjectItem(a, "precision") && cJSON_GetObjectItem(a, "recall") &&
              cJSON_GetObjectItem(a, "threshold") && cJSON_GetObjectItem(a, "imageCount"));
        CHECK(cJSON_GetObjectItem(tp, "c") == NULL);
        CHECK(
            strcmp(
                cJSON_GetObjectItem(cJSON_GetObjectItem(o, "evaluatedOn"), "dataset")->valuestring,
                "test") == 0);
        cJSON_Delete(o);
    }
    free(js);
    eng_ml_metrics_release(&m);
    const float bad[] = {NAN, 0.1f, 0.3f, 0.2f, 0.8f, 0.3f};
    CHECK(eng_ml_metrics_compute(bad, y, thr, 2, 3, &m, &d) == ENG_EINVAL);
    CHECK(strstr(d.msg, "image 0") != NULL);
    CHECK(eng_ml_metrics_compute(s, y, thr, 0, 3, &m, &d) == ENG_EINVAL);
}

int main(void)
{
    test_small_case();
    test_best_threshold();
    test_json_and_errors();
    return check_report("test_metrics_ml");
}
