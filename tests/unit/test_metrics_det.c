/* test_metrics_det.c: COCO mAP of engine/metrics/detection.c on cases
 * worked out by hand (ties, images without boxes, categories without ground
 * truth, the 100-detection cap, greedy matching) and on committed cases
 * scored by pycocotools (tests/tools/pycoco_cases.json). */
#include "check.h"
#include "engine.h"
#include "metrics_det_cases.h"

#define BOX(x, y, w, h)                                                                            \
    {                                                                                              \
        x, y, w, h                                                                                 \
    }

static double map_at(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred, int ncat,
                     double iou, double *per_cat)
{
    double m = -2;
    eng_diag d = {{0}};
    eng_status st = eng_det_map(gt, ngt, pred, npred, ncat, iou, &m, per_cat, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    return m;
}

static void test_iou(void)
{
    double a[4] = {0, 0, 10, 10}, b[4] = {5, 0, 10, 10}, c[4] = {10, 0, 5, 5};
    CHECK_NEAR(eng_det_iou(a, a), 1.0, 1e-15);
    CHECK_NEAR(eng_det_iou(a, b), 50.0 / 150.0, 1e-15);
    CHECK(eng_det_iou(a, c) == 0.0); /* touching edges do not overlap */
}

/* TP, FP, TP on 2 ground truths: precision 1, 1/2, 2/3 -> monotone
 * 1, 2/3, 2/3; recall points 0..0.50 (51) read 1, 0.51..1 (50) read 2/3. */
static void test_basic_curve(void)
{
    eng_det_gt gt[2] = {{1, 0, BOX(0, 0, 10, 10)}, {1, 0, BOX(50, 50, 10, 10)}};
    eng_det_pred pred[3] = {{1, 0, BOX(0, 0, 10, 10), 0.9},
                            {1, 0, BOX(30, 30, 5, 5), 0.8},
                            {1, 0, BOX(50, 50, 10, 10), 0.7}};
    double expect = (51.0 + 50.0 * 2.0 / 3.0) / 101.0;
    CHECK_NEAR(map_at(gt, 2, pred, 3, 1, 0.5, NULL), expect, 1e-12);
    /* shuffled input order does not matter when scores differ */
    eng_det_pred shuf[3] = {pred[2], pred[0], pred[1]};
    CHECK_NEAR(map_at(gt, 2, shuf, 3, 1, 0.5, NULL), expect, 1e-12);
    /* perfect detector */
    eng_det_pred perfect[2] = {{1, 0, BOX(0, 0, 10, 10), 0.9}, {1, 0, BOX(50, 50, 10, 10), 0.3}};
    CHECK_NEAR(map_at(gt, 2, perfect, 2, 1, 0.75, NULL), 1.0, 1e-12);
    /* no predictions at all: AP 0, not -1 */
    CHECK_NEAR(map_at(gt, 2, NULL, 0, 1, 0.5, NULL), 0.0, 0);
}

/* Equal scores across images: pycocotools concatenates images in ascending
 * id order and sorts stably, so the lower image id ranks first. */
static void test_ties_across_images(void)
{
    eng_det_gt gt[1] = {{2, 0, BOX(0, 0, 10, 10)}};
    eng_det_pred fp_first[2] = {{2, 0, BOX(0, 0, 10, 10), 0.5}, {1, 0, BOX(0, 0, 10, 10), 0.5}};
    /* image 1 (FP) before image 2 (TP): precision 0, 1/2 -> 1/2 everywhere */
    CHECK_NEAR(map_at(gt, 1, fp_first, 2, 1, 0.5, NULL), 0.5, 1e-12);
    eng_det_gt gt3[1] = {{2, 0, BOX(0, 0, 10, 10)}};
    eng_det_pred tp_first[2] = {{2, 0, BOX(0, 0, 10, 10), 0.5}, {3, 0, BOX(0, 0, 10, 10), 0.5}};
    /* image 2 (TP) before image 3 (FP): AP 1 */
    CHECK_NEAR(map_at(gt3, 1, tp_first, 2, 1, 0.5, NULL), 1.0, 1e-12);
}

/* Equal scores in one image: input order decides who matches first. */
static void test_ties_within_image(void)
{
    eng_det_gt gt[1] = {{7, 0, BOX(0, 0, 10, 10)}};
    /* a: IoU 60/140 ... choose a = [0,0,10,6] (IoU 0.6), b = [0,0,10,9] (0.9) */
    eng_det_pred p[2] = {{7, 0, BOX(0, 0, 10, 6), 0.4}, {7, 0, BOX(0, 0, 10, 9), 0.4}};
    /* at 0.5 the first (a) takes the gt: TP then FP -> AP 1 */
    CHECK_NEAR(map_at(gt, 1, p, 2, 1, 0.5, NULL), 1.0, 1e-12);
    /* at 0.75 a cannot match: FP then TP -> AP 0.5 */
    CHECK_NEAR(map_at(gt, 1, p, 2, 1, 0.75, NULL), 0.5, 1e-12);
}

/* A detection takes the free gt with the highest IoU; on equal IoU the
 * later gt in input order (pycocotools' loop keeps replacing on >=). */
static void test_greedy_matching(void)
{
    eng_det_gt gt[2] = {{1, 0, BOX(0, 0, 10, 10)}, {1, 0, BOX(2, 0, 10, 10)}};
    /* p1 overlaps both with IoU 90/110; p2 overlaps g2 with 90/110 and g1
     * with 70/130 = 0.538. p1 takes g2 (tie, later), so p2 gets g1 at 0.538:
     * a TP at 0.5, an FP at 0.75. */
    eng_det_pred p[2] = {{1, 0, BOX(1, 0, 10, 10), 0.9}, {1, 0, BOX(3, 0, 10, 10), 0.8}};
    CHECK_NEAR(map_at(gt, 2, p, 2, 1, 0.5, NULL), 1.0, 1e-12);
    CHECK_NEAR(map_at(gt, 2, p, 2, 1, 0.75, NULL), 51.0 / 101.0, 1e-12);
    /* highest IoU wins over input order: p matches g2 (IoU 1), so a second
     * detection exactly on g1 is also a TP */
    eng_det_gt gt2[2] = {{1, 0, BOX(0, 0, 10, 10)}, {1, 0, BOX(1, 0, 10, 10)}};
    eng_det_pred q[2] = {{1, 0, BOX(1, 0, 10, 10), 0.9}, {1, 0, BOX(0, 0, 10, 10), 0.8}};
    CHECK_NEAR(map_at(gt2, 2, q, 2, 1, 0.85, NULL), 1.0, 1e-12);
}

/* A confident detection on an image without any box is a false positive. */
static void test_image_without_boxes(void)
{
    eng_det_gt gt[1] = {{1, 0, BOX(0, 0, 10, 10)}};
    eng_det_pred p[2] = {{1, 0, BOX(0, 0, 10, 10), 0.5}, {9, 0, BOX(0, 0, 10, 10), 0.9}};
    CHECK_NEAR(map_at(gt, 1, p, 2, 1, 0.5, NULL), 0.5, 1e-12);
    /* below the TP it changes nothing */
    p[1].score = 0.1;
    CHECK_NEAR(map_at(gt, 1, p, 2, 1, 0.5, NULL), 1.0, 1e-12);
}

/* Categories without ground truth get -1 and leave the mean; their
 * predictions do not touch other categories. */
static void test_absent_categories(void)
{
    eng_det_gt gt[2] = {{1, 0, BOX(0, 0, 10, 10)}, {1, 2, BOX(40, 40, 10, 10)}};
    eng_det_pred p[4] = {{1, 0, BOX(0, 0, 10, 10), 0.8},
                         {1, 1, BOX(0, 0, 10, 10), 0.99}, /* cat 1: no gt */
                         {1, 2, BOX(0, 0, 10, 10), 0.9},  /* cat 2: FP then TP */
                         {1, 2, BOX(40, 40, 10, 10), 0.7}};
    double per[4];
    double m = map_at(gt, 2, p, 4, 4, 0.5, per);
    CHECK_NEAR(per[0], 1.0, 1e-12);
    CHECK(per[1] == -1.0); /* predictions but no gt */
    CHECK_NEAR(per[2], 0.5, 1e-12);
    CHECK(per[3] == -1.0); /* absent from the test set */
    CHECK_NEAR(m, 0.75, 1e-12);
    /* no ground truth at all: -1 */
    CHECK(map_at(NULL, 0, p, 4, 4, 0.5, NULL) == -1.0);
    /* a category with gt and no prediction counts as 0 */
    eng_det_gt gt2[2] = {{1, 0, BOX(0, 0, 10, 10)}, {1, 3, BOX(40, 40, 10, 10)}};
    CHECK_NEAR(map_at(gt2, 2, p, 1, 4, 0.5, per), 0.5, 1e-12);
    CHECK(per[3] == 0.0);
}

/* At most 100 detections per image and category, kept by score. */
static void test_max_dets(void)
{
    enum { N = 101 };
    eng_det_gt gt[1] = {{1, 0, BOX(0, 0, 10, 10)}};
    eng_det_pred p[N];
    for (int i = 0; i < N; i++)
        p[i] = (eng_det_pred){1, 0, BOX(100 + i, 100, 5, 5), 0.9 - i * 0.001};
    p[N - 1].bbox[0] = 0;
    p[N - 1].bbox[1] = 0;
    p[N - 1].bbox[2] = 10;
    p[N - 1].bbox[3] = 10; /* the only TP ranks 101st */
    CHECK_NEAR(map_at(gt, 1, p, N, 1, 0.5, NULL), 0.0, 0);
    double m = -2, thr = 0.5;
    eng_diag d;
    CHECK(eng_det_map_ex(gt, 1, p, N, 1, &thr, 1, N, &m, NULL, &d) == ENG_OK);
    CHECK_NEAR(m, 1.0 / 101.0, 1e-12); /* precision 1/101 at every recall point */
    /* the cap is per category: the same boxes as category 1 do not push
     * category 0 out */
    eng_det_pred q[N + 1];
    memcpy(q, p, sizeof p);
    q[N] = (eng_det_pred){1, 1, BOX(0, 0, 1, 1), 0.99};
    for (int i = 0; i < N - 1; i++)
        q[i].category = 1;
    eng_det_gt gt2[2] = {{1, 0, BOX(0, 0, 10, 10)}, {1, 1, BOX(500, 500, 1, 1)}};
    double per[2];
    map_at(gt2, 2, q, N + 1, 2, 0.5, per);
    CHECK_NEAR(per[0], 1.0, 1e-12);
    CHECK_NEAR(per[1], 0.0, 0);
}

static void test_errors(void)
{
    eng_det_gt gt[1] = {{1, 0, BOX(0, 0, 10, 10)}};
    eng_det_pred p[1] = {{1, 0, BOX(0, 0, 10, 10), 0.5}};
    double m;
    eng_diag d;
    struct {
        int gcat, pcat;
        double gw, pw, score, iou;
        const char *msg;
    } bad[] = {
        {2, 0, 10, 10, 0.5, 0.5, "gt[0]: category 2 outside 0..1"},
        {0, -1, 10, 10, 0.5, 0.5, "pred[0]: category -1 outside 0..1"},
        {0, 0, -1, 10, 0.5, 0.5, "gt[0]: bbox not finite or negative size"},
        {0, 0, 10, NAN, 0.5, 0.5, "pred[0]: bbox not finite or negative size"},
        {0, 0, 10, 10, INFINITY, 0.5, "pred[0]: score not finite"},
        {0, 0, 10, 10, 0.5, 0.0, "iou threshold 0: outside (0, 1]"},
        {0, 0, 10, 10, 0.5, 1.5, "iou threshold 1.5: outside (0, 1]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gt[0].category = bad[i].gcat;
        p[0].category = bad[i].pcat;
        gt[0].bbox[2] = bad[i].gw;
        p[0].bbox[2] = bad[i].pw;
        p[0].score = bad[i].score;
        d.msg[0] = 0;
        CHECK(eng_det_map(gt, 1, p, 1, 2, bad[i].iou, &m, NULL, &d) == ENG_EINVAL);
        CHECK_MSG(strcmp(d.msg, bad[i].msg) == 0, "got '%s'", d.msg);
    }
}

int main(void)
{
    test_iou();
    test_basic_curve();
    test_ties_across_images();
    test_ties_within_image();
    test_greedy_matching();
    test_image_without_boxes();
    test_absent_categories();
    test_max_dets();
    test_errors();
    double md;
    int n = det_cases_check(VFS_SOURCE_DIR "/tests/tools/pycoco_cases.json", &md);
    CHECK_MSG(n >= 16, "committed pycocotools cases: %d", n);
    printf("%d committed pycocotools cases, max abs difference %.3g\n", n, md);
    return check_report("test_metrics_det");
}
