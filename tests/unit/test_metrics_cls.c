/* test_metrics_cls.c: classifier metrics on hand-worked cases (see the
 * comments for the arithmetic), plus the JSON names SPEC section 5 asks for. */
#include "check.h"
#include "engine.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void test_small_case(void)
{
    /* 4 images, 3 categories.
     * img0 true 0: [0.70 0.20 0.10] -> predicted 0 (conf 0.70, right)
     * img1 true 1: [0.50 0.25 0.25] -> predicted 0 (conf 0.50, wrong)
     * img2 true 2: [0.10 0.28 0.62] -> predicted 2 (conf 0.62, right)
     * img3 true 1: [0.20 0.70 0.10] -> predicted 1 (conf 0.70, right) */
    const float s[] = {0.70f, 0.20f, 0.10f, 0.50f, 0.25f, 0.25f,
                       0.10f, 0.28f, 0.62f, 0.20f, 0.70f, 0.10f};
    const int y[] = {0, 1, 2, 1};
    eng_cls_metrics m;
    eng_diag d = {0};
    CHECK(eng_cls_metrics_compute(s, y, 4, 3, &m, &d) == ENG_OK);
    CHECK_NEAR(m.top1, 0.75, 1e-12);
    CHECK_NEAR(m.top5, 1.0, 1e-12);
    /* AP: category 0 ranks its positive first -> 1. Category 1 scores sorted:
     * 0.70 (pos), 0.28 (neg), 0.25 (pos), 0.20 -> 0.5*1 + 0.5*2/3 = 0.8333.
     * Category 2: 0.62 (pos) first -> 1. Mean 0.94444. */
    CHECK_NEAR(m.tag_ap[0], 1.0, 1e-12);
    CHECK_NEAR(m.tag_ap[1], 0.5 + 0.5 * 2.0 / 3.0, 1e-12);
    CHECK_NEAR(m.tag_ap[2], 1.0, 1e-12);
    CHECK_NEAR(m.average_precision, (2.0 + 0.5 + 1.0 / 3.0) / 3.0, 1e-12);
    /* per-tag accuracy = recall: 1/1, 1/2, 1/1 */
    CHECK_NEAR(m.tag_accuracy[0], 1.0, 1e-12);
    CHECK_NEAR(m.tag_accuracy[1], 0.5, 1e-12);
    CHECK_NEAR(m.tag_accuracy[2], 1.0, 1e-12);
    /* ECE, 15 bins: 0.70 x2 in bin 10 (acc 1): 2/4*0.30; 0.50 in bin 7 (acc 0):
     * 1/4*0.50; 0.62 in bin 9 (acc 1): 1/4*0.38. Total 0.37. */
    CHECK_NEAR(m.ece, 0.15 + 0.125 + 0.095, 1e-6);
    /* confusion rows true, columns predicted */
    const int want[9] = {1, 0, 0, 1, 1, 0, 0, 0, 1};
    CHECK(memcmp(m.confusion, want, sizeof want) == 0);

    const char *names[] = {"cat", "dog", "bird"};
    eng_eval_extra ex = {"held-out split", 4, 0.5, "all candidates tried"};
    char *js = NULL;
    CHECK(eng_cls_metrics_json(&m, names, &ex, &js, &d) == ENG_OK);
    cJSON *o = cJSON_Parse(js);
    CHECK(o != NULL);
    CHECK_NEAR(cJSON_GetObjectItem(o, "accuracyTop1")->valuedouble, 0.75, 1e-9);
    CHECK(cJSON_GetObjectItem(o, "accuracyTop5") != NULL);
    CHECK(cJSON_GetObjectItem(o, "averagePrecision") != NULL);
    CHECK(cJSON_GetObjectItem(o, "calibrationECE") != NULL);
    cJSON *tp = cJSON_GetObjectItem(o, "tagPerformance");
    CHECK(tp && cJSON_GetObjectItem(tp, "dog"));
    CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(tp, "dog"), "accuracy")->valuedouble, 0.5,
               1e-9);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(tp, "dog"), "averagePrecision50") != NULL);
    cJSON *cm = cJSON_GetObjectItem(o, "confusionMatrix");
    CHECK(cm && cJSON_GetArraySize(cJSON_GetObjectItem(cm, "matrix")) == 3);
    CHECK(
        cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cm, "matrix"), 1), 0)->valueint ==
        1);
    cJSON *eo = cJSON_GetObjectItem(o, "evaluatedOn");
    CHECK(eo && strcmp(cJSON_GetObjectItem(eo, "dataset")->valuestring, "held-out split") == 0);
    CHECK(cJSON_GetObjectItem(eo, "imageCount")->valueint == 4);
    CHECK_NEAR(cJSON_GetObjectItem(o, "trainingCostInMinutes")->valuedouble, 0.5, 1e-9);
    CHECK(strcmp(cJSON_GetObjectItem(o, "stopReason")->valuestring, "all candidates tried") == 0);
    cJSON_Delete(o);
    free(js);
    eng_cls_metrics_release(&m);
}

static void test_top5_and_ties(void)
{
    /* 7 categories; image 0 true 6 ranked 6th (5 higher) -> not in top 5;
     * image 1 true 3 tied with 0,1,2,4,5 all equal: lower indices 0,1,2 come
     * first -> rank 3 -> in top 5 but not top 1. */
    const float s[] = {7, 6, 5, 4, 3, 2.5f, 1, 1, 1, 1, 1, 1, 1, 0};
    const int y[] = {6, 3};
    eng_cls_metrics m;
    CHECK(eng_cls_metrics_compute(s, y, 2, 7, &m, NULL) == ENG_OK);
    CHECK_NEAR(m.top1, 0.0, 1e-12);
    CHECK_NEAR(m.top5, 0.5, 1e-12);
    /* categories without images: -1, left out of the mean */
    CHECK(m.tag_ap[0] == -1 && m.tag_accuracy[0] == -1);
    eng_cls_metrics_release(&m);

    /* tied scores form one threshold: one positive, one negative, same score */
    const float t[] = {0.5f, 0.5f};
    const int pos[] = {0, 1};
    CHECK_NEAR(eng_average_precision(t, 1, pos, 2), 0.5, 1e-12);
    const int none[] = {0, 0};
    CHECK(eng_average_precision(t, 1, none, 2) == -1);
    /* perfectly calibrated: confidence 1 and right */
    const float c1[] = {1.0f, 1.0f};
    const int r1[] = {1, 1};
    CHECK_NEAR(eng_calibration_ece(c1, r1, 2), 0.0, 1e-12);
    const float c0[] = {0.0f};
    const int r0[] = {1};
    CHECK_NEAR(eng_calibration_ece(c0, r0, 1), 1.0, 1e-12);
}

static void test_bad_input(void)
{
    const float s[] = {0.5f, NAN};
    const int y_bad[] = {2};
    const int y_ok[] = {0};
    eng_cls_metrics m;
    eng_diag d = {0};
    CHECK(eng_cls_metrics_compute(s, y_bad, 1, 2, &m, &d) == ENG_EINVAL);
    CHECK(strstr(d.msg, "image 0") != NULL);
    CHECK(eng_cls_metrics_compute(s, y_ok, 1, 2, &m, &d) == ENG_EINVAL);
    CHECK(strstr(d.msg, "not finite") != NULL);
    CHECK(eng_cls_metrics_compute(s, y_ok, 0, 2, &m, &d) == ENG_EINVAL);
    eng_cls_metrics_release(NULL);
}

int main(void)
{
    test_small_case();
    test_top5_and_ties();
    test_bad_input();
    return check_report("test_metrics_cls");
}
