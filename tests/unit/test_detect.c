/* test_detect.c: the detector's pieces without a backbone: decoding of
 * hand-made heatmaps (peaks, ties, thresholds, top-K, NMS, scaling,
 * clipping), Gaussian targets, a training run on synthetic features that
 * must find the boxes again, the CPU budget cutting a fit short, confidence
 * calibration (true-positive labels, Platt fit, mAP unchanged), the NMS
 * choice, images without boxes as background, and the model file round
 * trip (and refusals).
 */
#include "budget_int.h"
#include "det_int.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void set_cell(float *heat, float *wh, int gw, int ncat, int x, int y, int c, float v,
                     float l, float t, float r, float b)
{
    heat[(y * gw + x) * ncat + c] = v;
    float *p = wh + (y * gw + x) * 4;
    p[0] = l;
    p[1] = t;
    p[2] = r;
    p[3] = b;
}

static void test_decode(void)
{
    enum { G = 8, C = 2 };
    float heat[G * G * C], wh[G * G * 4];
    memset(heat, 0, sizeof heat);
    memset(wh, 0, sizeof wh);
    /* peak c0 at (1,1) with a weaker neighbour that is no peak */
    set_cell(heat, wh, G, C, 1, 1, 0, 0.9f, 2, 3, 4, 5);
    set_cell(heat, wh, G, C, 2, 1, 0, 0.5f, 2, 2, 2, 2);
    /* c1 at (5,5); c0 weak at (0,6) */
    set_cell(heat, wh, G, C, 5, 5, 1, 0.7f, 4, 4, 4, 4);
    set_cell(heat, wh, G, C, 0, 6, 0, 0.2f, 1, 1, 1, 1);
    eng_det_object o[8];
    int n = eng_det_decode(heat, wh, G, G, C, 4, 2.0f, 1.0f, 1000, 1000, 8, 0.3f, 0, o);
    CHECK(n == 2);
    CHECK(o[0].category == 0 && fabsf(o[0].score - 0.9f) < 1e-6f);
    /* cell point (4,4): box (4-2, 4-3, 4+4, 4+5) = (2,1)-(8,9), x scaled by 2 */
    CHECK_NEAR(o[0].x, 4, 1e-5);
    CHECK_NEAR(o[0].y, 1, 1e-5);
    CHECK_NEAR(o[0].w, 12, 1e-5);
    CHECK_NEAR(o[0].h, 8, 1e-5);
    CHECK(o[1].category == 1 && fabsf(o[1].score - 0.7f) < 1e-6f);
    CHECK_NEAR(o[1].x, 32, 1e-5); /* (20 - 4) * 2 */
    CHECK_NEAR(o[1].w, 16, 1e-5);
    /* a lower threshold lets the weak peak in, last */
    n = eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 1000, 1000, 8, 0.1f, 0, o);
    CHECK(n == 3 && fabsf(o[2].score - 0.2f) < 1e-6f);
    /* top-K */
    n = eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 1000, 1000, 1, 0.1f, 0, o);
    CHECK(n == 1 && o[0].score > 0.89f);
    /* clipping to the image; the box wholly outside it is dropped */
    n = eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 6, 6, 8, 0.3f, 0, o);
    CHECK(n == 1);
    CHECK_NEAR(o[0].x, 2, 1e-5);
    CHECK_NEAR(o[0].x + o[0].w, 6, 1e-5);
    CHECK_NEAR(o[0].y + o[0].h, 6, 1e-5);

    /* ties: two equal neighbours are both peaks (equal to their max-pool) */
    memset(heat, 0, sizeof heat);
    set_cell(heat, wh, G, C, 3, 3, 0, 0.6f, 8, 8, 8, 8);
    set_cell(heat, wh, G, C, 4, 3, 0, 0.6f, 8, 8, 8, 8);
    n = eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 1000, 1000, 8, 0.3f, 0, o);
    CHECK(n == 2);
    CHECK(o[0].x < o[1].x); /* equal scores: lower index first */
    /* NMS removes the overlapping twin of the same category only */
    n = eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 1000, 1000, 8, 0.3f, 0.5f, o);
    CHECK(n == 1);
    set_cell(heat, wh, G, C, 4, 3, 1, 0.55f, 8, 8, 8, 8);
    n = eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 1000, 1000, 8, 0.3f, 0.5f, o);
    CHECK(n == 2 && o[1].category == 1);
    /* a box of no size is dropped */
    memset(heat, 0, sizeof heat);
    set_cell(heat, wh, G, C, 2, 2, 0, 0.8f, 0, 0, 0, 0);
    n = eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 1000, 1000, 8, 0.3f, 0, o);
    CHECK(n == 0);
    /* nothing to find */
    memset(heat, 0, sizeof heat);
    CHECK(eng_det_decode(heat, wh, G, G, C, 4, 1, 1, 100, 100, 8, 0.01f, 0, o) == 0);
}

static void test_gaussian(void)
{
    enum { G = 32 };
    static float h[G * G];
    memset(h, 0, sizeof h);
    /* box 40x20 px centred at (60, 50) -> centre cell (15, 12 or 13) */
    eng_det_gaussian(h, G, G, 1, 0, 4, 40, 40, 80, 60, 0.54f);
    int cx = 15, cy = (int)lrintf(12.5f);
    CHECK(h[cy * G + cx] == 1.0f);
    int ones = 0;
    for (int i = 0; i < G * G; i++)
        ones += h[i] == 1.0f;
    CHECK(ones == 1);
    CHECK(h[cy * G + cx - 1] < 1 && h[cy * G + cx - 1] > 0);
    CHECK_NEAR(h[cy * G + cx - 1], h[cy * G + cx + 1], 1e-6);
    CHECK_NEAR(h[(cy - 1) * G + cx], h[(cy + 1) * G + cx], 1e-6);
    /* wider than tall: falls off slower along x */
    CHECK(h[cy * G + cx + 1] > h[(cy + 1) * G + cx]);
    /* sigma_x = 0.54 * 10 / 6 cells: value one cell away */
    float sx = 0.54f * 10 / 6;
    CHECK_NEAR(h[cy * G + cx + 1], expf(-1 / (2 * sx * sx)), 1e-5);
    CHECK(h[0] == 0);
    /* combining by maximum: a smaller box at the same centre changes nothing there */
    float before = h[cy * G + cx + 2];
    eng_det_gaussian(h, G, G, 1, 0, 4, 56, 46, 64, 54, 0.54f);
    CHECK(h[cy * G + cx + 2] == before);
    /* a box at the border stays in the grid; a degenerate box adds nothing */
    eng_det_gaussian(h, G, G, 1, 0, 4, 0, 0, 2, 2, 0.54f);
    CHECK(h[0] == 1.0f);
    float copy[G * G];
    memcpy(copy, h, sizeof copy);
    eng_det_gaussian(h, G, G, 1, 0, 4, 10, 10, 10, 30, 0.54f);
    CHECK(memcmp(copy, h, sizeof copy) == 0);
}

/* ---- training on synthetic features ---- */

enum { FD = 8, NC = 2, NIMG = 10, NBOX = 3, BOX = 64 };

typedef struct synth {
    uint16_t *feat[NIMG + 1];
    float box[NIMG + 1][NBOX * 4];
    int cat[NIMG + 1][NBOX];
} synth;

/* Adds a Gaussian blob of height a at input pixel (cx, cy) to channel ch
 * of features f (DET_GRID x DET_GRID x FD). */
static void blob(float *f, int cx, int cy, int ch, float a)
{
    int gx = cx / DET_STRIDE, gy = cy / DET_STRIDE;
    for (int y = gy - 4; y <= gy + 4; y++)
        for (int x = gx - 4; x <= gx + 4; x++)
            if (x >= 0 && y >= 0 && x < DET_GRID && y < DET_GRID)
                f[((size_t)y * DET_GRID + x) * FD + ch] +=
                    a * expf(-(float)((x - gx) * (x - gx) + (y - gy) * (y - gy)) / 4.0f);
}

/* Channel c < NC: a blob at each centre of a category-c box; channel NC:
 * ones; the rest: noise. Every box is BOX x BOX input pixels. */
static void synth_make(synth *s, uint64_t seed)
{
    eng_rng r;
    eng_rng_seed(&r, seed);
    float *f = malloc((size_t)FD * DET_CELLS * sizeof *f);
    for (int i = 0; i <= NIMG; i++) {
        for (size_t k = 0; k < (size_t)FD * DET_CELLS; k++)
            f[k] = (k % FD) == NC ? 1.0f : (k % FD) > NC ? 0.1f * eng_rng_normal(&r) : 0;
        for (int b = 0; b < NBOX; b++) {
            /* centres on a coarse lattice so boxes do not overlap */
            int cx = 64 + 128 * b + (int)(eng_rng_u64(&r) % 16) * 4;
            int cy = 64 + (int)(eng_rng_u64(&r) % 90) * 4;
            int c = (int)(eng_rng_u64(&r) % NC);
            float *q = s->box[i] + 4 * b;
            q[0] = (float)(cx - BOX / 2);
            q[1] = (float)(cy - BOX / 2);
            q[2] = (float)(cx + BOX / 2);
            q[3] = (float)(cy + BOX / 2);
            s->cat[i][b] = c;
            blob(f, cx, cy, c, 3.0f);
        }
        s->feat[i] = malloc((size_t)FD * DET_CELLS * 2);
        det_f32_to_f16(f, s->feat[i], (size_t)FD * DET_CELLS);
    }
    free(f);
}

static eng_detector *model_make(void)
{
    eng_detector *m = calloc(1, sizeof *m);
    m->ncat = NC;
    m->cats = calloc(NC, sizeof *m->cats);
    m->cats[0] = strdup("circle");
    m->cats[1] = strdup("square");
    m->bb_name = strdup("synthetic");
    m->bb_checksum = strdup("00ff");
    m->feat_node = strdup("features");
    m->fdim = FD;
    m->wh_scale = 16;
    m->dw_cls = calloc(9 * FD, sizeof(float));
    m->dw_wh = calloc(9 * FD, sizeof(float));
    for (int c = 0; c < FD; c++) /* identity: the centre tap */
        m->dw_cls[4 * FD + c] = m->dw_wh[4 * FD + c] = 1;
    m->wc = calloc(FD * NC, sizeof(float));
    m->bc = calloc(NC, sizeof(float));
    m->ww = calloc(FD * 4, sizeof(float));
    m->bw = calloc(4, sizeof(float));
    for (int k = 0; k < 4; k++)
        m->bw[k] = 0.5f; /* 8 px: far from the true 32 */
    m->min_score = 0.01f;
    m->recipe = strdup("{\"test\":1}");
    return m;
}

static double map50_on(const eng_detector *m, const synth *s, int i)
{
    float *heat = malloc((size_t)DET_CELLS * NC * sizeof *heat);
    float *wh = malloc((size_t)DET_CELLS * 4 * sizeof *wh);
    det_scratch sc;
    det_scratch_init(&sc, FD, NULL);
    eng_diag d;
    CHECK(det_heads(m, s->feat[i], 1, &sc, heat, wh, &d) == ENG_OK);
    eng_det_object o[ENG_DET_TOPK];
    int n = det_objects(m, heat, wh, DET_SIZE, DET_SIZE, o);
    eng_det_gt gt[NBOX];
    eng_det_pred p[ENG_DET_TOPK];
    for (int b = 0; b < NBOX; b++) {
        const float *q = s->box[i] + 4 * b;
        gt[b] = (eng_det_gt){0, s->cat[i][b], {q[0], q[1], q[2] - q[0], q[3] - q[1]}};
    }
    for (int j = 0; j < n; j++)
        p[j] = (eng_det_pred){0, o[j].category, {o[j].x, o[j].y, o[j].w, o[j].h}, o[j].score};
    double map = -1;
    CHECK(eng_det_map(gt, NBOX, p, n, NC, 0.5, &map, NULL, &d) == ENG_OK);
    det_scratch_release(&sc);
    free(heat);
    free(wh);
    return map;
}

static void test_train(eng_detector **out)
{
    static synth s;
    synth_make(&s, 7);
    const float *boxes[NIMG];
    const int *cats[NIMG];
    int nbox[NIMG];
    for (int i = 0; i < NIMG; i++) {
        boxes[i] = s.box[i];
        cats[i] = s.cat[i];
        nbox[i] = NBOX;
    }
    eng_detector *m = model_make();
    double before = map50_on(m, &s, NIMG);
    det_fit_args f = {.feats = (const uint16_t *const *)s.feat,
                      .boxes = boxes,
                      .cats = cats,
                      .nbox = nbox,
                      .n = NIMG,
                      .finetune_wh = 1,
                      .lr = 0.02f,
                      .epochs = 30,
                      .threads = 2,
                      .seed = 1};
    float loss = -1;
    eng_diag d = {{0}};
    eng_status st = det_fit_heads(&f, m, &loss, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    CHECK(isfinite(loss));
    /* the unseen image: both categories and the box size are learnt */
    double after = map50_on(m, &s, NIMG);
    printf("synthetic: mAP@50 before %.3f, after %.3f, last loss %.4f\n", before, after, loss);
    CHECK(before < 0.2);
    /* needs the box head too: the starting 16 px boxes have IoU 1/16 with the 64 px truth */
    CHECK(after > 0.9);
    /* same seed, same weights (thread count does not matter) */
    eng_detector *m2 = model_make();
    f.threads = 1;
    CHECK(det_fit_heads(&f, m2, NULL, &d) == ENG_OK);
    CHECK(memcmp(m->wc, m2->wc, FD * NC * sizeof(float)) == 0);
    CHECK(memcmp(m->bw, m2->bw, 4 * sizeof(float)) == 0);
    eng_detector_free(m2);

    /* a CPU budget cuts the fit short: far fewer steps than planned */
    eng_detector *m3 = model_make();
    f.budget_seconds = 1e-4;
    CHECK(det_fit_heads(&f, m3, NULL, &d) == ENG_OK);
    printf("budget 0.1 ms: %d of %d steps\n", f.steps_done, f.steps_planned);
    CHECK(f.steps_planned > 60 && f.steps_done < f.steps_planned / 2);
    eng_detector_free(m3);
    f.budget_seconds = 0;
    eng_detector *m4 = model_make();
    CHECK(det_fit_heads(&f, m4, NULL, &d) == ENG_OK);
    CHECK(f.steps_done == f.steps_planned);
    eng_detector_free(m4);

    /* calibration is monotone: the same mAP, whatever its slope and offset */
    double raw = map50_on(m, &s, NIMG);
    m->calibrated = 1;
    m->cal_a = 3.0f;
    m->cal_b = 10.0f;
    CHECK(map50_on(m, &s, NIMG) == raw);
    CHECK(det_confidence(m, 0.05f) > 0.5f && det_confidence(m, 0.01f) < det_confidence(m, 0.02f));
    m->calibrated = 0;
    CHECK(det_confidence(m, 0.05f) == 0.05f);
    for (int i = 0; i <= NIMG; i++)
        free(s.feat[i]);
    *out = m;
}

/* Images without boxes are background: every place in them is a negative.
 * Objects are a strong blob in channel 0 AND a weak one in channel 3;
 * distractors, the blob in channel 0 alone. Objects only ever show channel 0 together with channel
 * 3, so a head trained on them alone scores on channel 0; background
 * images full of distractors teach it not to. At the same number of steps,
 * the score at a distractor of an unseen image must be lower with them. */
enum { BG_POS = 6, BG_NEG = 6 };

/* Image i: objects (boxes written to box) or distractors, 3 per image. */
static uint16_t *bg_image(eng_rng *r, int objects, float *box)
{
    float *f = malloc((size_t)FD * DET_CELLS * sizeof *f);
    for (size_t k = 0; k < (size_t)FD * DET_CELLS; k++)
        f[k] = (k % FD) == NC ? 1.0f : (k % FD) > NC ? 0.1f * eng_rng_normal(r) : 0;
    for (int b = 0; b < 3; b++) {
        int cx = 64 + 128 * b + (int)(eng_rng_u64(r) % 16) * 4;
        int cy = 64 + (int)(eng_rng_u64(r) % 90) * 4;
        blob(f, cx, cy, 0, 3.0f);
        if (objects) {
            blob(f, cx, cy, 3, 1.0f);
            float *q = box + 4 * b;
            q[0] = (float)(cx - BOX / 2);
            q[1] = (float)(cy - BOX / 2);
            q[2] = (float)(cx + BOX / 2);
            q[3] = (float)(cy + BOX / 2);
        }
    }
    uint16_t *h = malloc((size_t)FD * DET_CELLS * 2);
    det_f32_to_f16(f, h, (size_t)FD * DET_CELLS);
    free(f);
    return h;
}

/* The highest category-0 score anywhere in features h. */
static float top_score(const eng_detector *m, const uint16_t *h)
{
    float *heat = malloc((size_t)DET_CELLS * NC * sizeof *heat);
    float *wh = malloc((size_t)DET_CELLS * 4 * sizeof *wh);
    det_scratch sc;
    det_scratch_init(&sc, FD, NULL);
    eng_diag d;
    CHECK(det_heads(m, h, 1, &sc, heat, wh, &d) == ENG_OK);
    float top = 0;
    for (int k = 0; k < DET_CELLS; k++)
        top = fmaxf(top, heat[(size_t)k * NC]);
    det_scratch_release(&sc);
    free(heat);
    free(wh);
    return top;
}

static void test_background_images(void)
{
    eng_rng r;
    eng_rng_seed(&r, 11);
    uint16_t *feat[BG_POS + BG_NEG];
    float box[BG_POS + BG_NEG][3 * 4];
    int cat[BG_POS + BG_NEG][3] = {{0}};
    const float *boxes[BG_POS + BG_NEG];
    const int *cats[BG_POS + BG_NEG];
    int nbox[BG_POS + BG_NEG];
    for (int i = 0; i < BG_POS + BG_NEG; i++) {
        feat[i] = bg_image(&r, i < BG_POS, box[i]);
        boxes[i] = box[i];
        cats[i] = cat[i];
        nbox[i] = i < BG_POS ? 3 : 0;
    }
    float unseen_box[12];
    uint16_t *object = bg_image(&r, 1, unseen_box), *distractor = bg_image(&r, 0, NULL);
    float obj[2], dis[2];
    for (int with = 0; with < 2; with++) {
        eng_detector *m = model_make();
        det_fit_args f = {.feats = (const uint16_t *const *)feat,
                          .boxes = boxes,
                          .cats = cats,
                          .nbox = nbox,
                          .n = with ? BG_POS + BG_NEG : BG_POS,
                          .lr = 0.02f,
                          /* the same number of steps */
                          .epochs = with ? 30 : 30 * (BG_POS + BG_NEG) / BG_POS,
                          .threads = 1,
                          .seed = 3};
        eng_diag d = {{0}};
        CHECK_MSG(det_fit_heads(&f, m, NULL, &d) == ENG_OK, "%s", d.msg);
        obj[with] = top_score(m, object);
        dis[with] = top_score(m, distractor);
        eng_detector_free(m);
    }
    printf("background images: object %.3f -> %.3f, distractor %.3f -> %.3f\n", obj[0], obj[1],
           dis[0], dis[1]);
    /* measured 0.565 -> 0.507 and 0.342 -> 0.288: the focal loss weighs a
     * negative by its score squared, so background images pull a middling
     * false score down only gently */
    CHECK(obj[1] > 0.4f);
    CHECK(dis[1] < 0.9f * dis[0]);
    CHECK(obj[1] / dis[1] > obj[0] / dis[0]);
    for (int i = 0; i < BG_POS + BG_NEG; i++)
        free(feat[i]);
    free(object);
    free(distractor);
}

/* Labels by hand: duplicates, another category and another image are false. */
static void test_label_tp(void)
{
    eng_det_gt gt[2] = {{1, 0, {0, 0, 10, 10}}, {1, 0, {50, 50, 10, 10}}};
    eng_det_pred p[5] = {
        {1, 0, {0, 0, 10, 10}, 0.6},   /* matches gt 0 */
        {1, 0, {1, 0, 10, 10}, 0.9},   /* better score: takes gt 0 first */
        {1, 1, {50, 50, 10, 10}, 0.8}, /* wrong category */
        {2, 0, {50, 50, 10, 10}, 0.7}, /* wrong image */
        {1, 0, {52, 50, 10, 10}, 0.1}, /* IoU 0.67 with gt 1 */
    };
    int tp[5] = {-1, -1, -1, -1, -1};
    eng_diag d = {{0}};
    CHECK(det_label_tp(gt, 2, p, 5, tp, &d) == ENG_OK);
    CHECK(tp[0] == 0 && tp[1] == 1 && tp[2] == 0 && tp[3] == 0 && tp[4] == 1);
}

/* Raw peaks far below 0.5 whose chance of being right grows with them: the
 * calibrated confidence tracks the empirical rate. */
static void test_calibrate(void)
{
    enum { N = 400 };
    double sc[N];
    int tp[N];
    eng_rng r;
    eng_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        sc[i] = 0.02 + 0.08 * eng_rng_uniform(&r);
        tp[i] = eng_rng_uniform(&r) < (sc[i] - 0.02) / 0.08;
    }
    float a = 0, b = 0;
    det_calibrate(sc, tp, N, &a, &b);
    eng_detector m = {.calibrated = 1, .cal_a = a, .cal_b = b};
    float hi = det_confidence(&m, 0.095f), mid = det_confidence(&m, 0.06f),
          lo = det_confidence(&m, 0.025f);
    printf("calibration a %.3f b %.3f: 0.025 -> %.3f, 0.06 -> %.3f, 0.095 -> %.3f\n", a, b, lo, mid,
           hi);
    CHECK(a > 0);
    CHECK(hi > 0.7f && lo < 0.2f && mid > 0.3f && mid < 0.7f);
    /* one-sided and empty sets stay finite and monotone */
    int none[N] = {0};
    det_calibrate(sc, none, N, &a, &b);
    m.cal_a = a;
    m.cal_b = b;
    CHECK(a > 0 && isfinite(b) && det_confidence(&m, 0.09f) < 0.1f);
    det_calibrate(sc, tp, 0, &a, &b);
    CHECK(a > 0 && isfinite(a) && isfinite(b));
}

/* The picture draws the confident detections (>= 0.5); when there are
 * none, only the best one if it reaches 0.2. */
static int draw_same(const eng_detector *m, const char *path, const eng_det_object *a, int na,
                     const eng_det_object *b, int nb)
{
    uint8_t *ja = NULL, *jb = NULL;
    size_t la = 0, lb = 0;
    eng_diag d = {{0}};
    CHECK_MSG(eng_det_draw(m, path, a, na, &ja, &la, &d) == ENG_OK, "%s", d.msg);
    CHECK_MSG(eng_det_draw(m, path, b, nb, &jb, &lb, &d) == ENG_OK, "%s", d.msg);
    int same = ja && jb && la == lb && memcmp(ja, jb, la) == 0;
    free(ja);
    free(jb);
    return same;
}

static void test_draw(const eng_detector *m)
{
    eng_image *im = eng_image_new(160, 120);
    for (size_t i = 0; i < (size_t)160 * 120 * 3; i++)
        im->rgb[i] = (uint8_t)(i * 7 % 200);
    uint8_t *jpg = NULL;
    size_t len = 0;
    eng_diag d = {{0}};
    CHECK(eng_image_encode_jpeg(im, 90, &jpg, &len, &d) == ENG_OK);
    eng_image_free(im);
    char path[] = "/tmp/test_detect_draw_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, jpg, len) == (ssize_t)len);
    close(fd);
    free(jpg);
    eng_det_object conf = {10, 10, 50, 40, 0, 0.6f}, doubt = {80, 50, 40, 40, 1, 0.3f},
                   weak = {90, 20, 30, 30, 1, 0.1f};
    eng_det_object both[2] = {conf, doubt}, doubts[2] = {doubt, weak};
    /* a confident one hides the doubtful one */
    CHECK(draw_same(m, path, both, 2, &conf, 1));
    CHECK(!draw_same(m, path, &conf, 1, NULL, 0));
    /* nothing confident: the best doubtful one is drawn, the weaker is not */
    CHECK(!draw_same(m, path, &doubt, 1, NULL, 0));
    CHECK(draw_same(m, path, doubts, 2, &doubt, 1));
    /* below 0.2: nothing */
    CHECK(draw_same(m, path, &weak, 1, NULL, 0));
    unlink(path);
}

/* notEnoughBudget says the minimum and a suggestion, rounded up. */
static void test_budget_message(void)
{
    eng_diag d = {{0}};
    CHECK(budget_fail_features(&d, 1.0, 31, "centernet", 5.7) == ENG_ENOBUDGET);
    printf("%s\n", d.msg);
    CHECK(strstr(d.msg, "31 images through \"centernet\"") == NULL);
    CHECK(strstr(d.msg, "31 images through centernet need about 5.7 CPU seconds"));
    CHECK(strstr(d.msg, "minimum 0.10 minutes, suggested 1 minutes"));
    CHECK(budget_fail_features(&d, 60, 500, NULL, 900) == ENG_ENOBUDGET);
    CHECK(strstr(d.msg, "500 images need about 900.0") && strstr(d.msg, "minimum 15.00 minutes") &&
          strstr(d.msg, "suggested 60 minutes"));
}

/* The worker's side of the head fits (eng_det_fit_run): a job it cannot
 * read, or one for another detector's images, fails without a result; a
 * backbone missing on the node is named. */
static void test_fit_run_refuses(void)
{
    const char *paths[1] = {"/nonexistent/a.png"}, *dirs[1] = {"/nonexistent/centernet"};
    void *res = (void *)1;
    size_t len = 7;
    eng_diag d = {{0}};
    CHECK(eng_det_fit_run("not json", dirs, 1, paths, 1, NULL, 1, &res, &len, &d) == ENG_EFORMAT);
    CHECK(res == NULL && len == 0);
    const char *job =
        "{\"kind\": \"detector-fit\", \"backbone\": \"nosuch\", \"checksum\": \"00\", "
        "\"images\": 1, \"categories\": 1, \"sizes\": 1, \"pools\": [], \"variant\": "
        "{\"hidden\": 0, \"lr\": 0.01, \"epochs\": 40}, \"fit\": [0], \"hold\": [], "
        "\"rng\": [\"1\", \"2\", \"3\", \"4\"], \"views\": [[0, -1, 64, 64, []]]}";
    /* two images for a job of one: not this job's list */
    const char *two[2] = {paths[0], paths[0]};
    CHECK(eng_det_fit_run(job, dirs, 1, two, 2, NULL, 1, &res, &len, &d) == ENG_EFORMAT);
    CHECK(eng_det_fit_run(job, dirs, 1, paths, 1, NULL, 1, &res, &len, &d) == ENG_ENOTFOUND);
    printf("%s\n", d.msg);
    CHECK(strstr(d.msg, "backbone \"nosuch\" is not installed on this node"));
    CHECK(res == NULL);
}

/* NMS is kept unless switching it off clearly wins on the held-out split;
 * a later (less simple) variant must win by a share of the figure. */
static void test_pick_variant(void)
{
    int best = -2, nms = -1;
    double tie[2][2] = {{0.71, 0.71}, {0.60, 0.62}};
    det_pick_variant((const double(*)[2])tie, 2, &best, &nms);
    CHECK(best == 0 && nms == 1);
    double noise[2][2] = {{0.715, 0.70}, {-1, -1}};
    det_pick_variant((const double(*)[2])noise, 2, &best, &nms);
    CHECK(best == 0 && nms == 1);
    double clear[2][2] = {{0.50, 0.55}, {0.80, 0.70}};
    det_pick_variant((const double(*)[2])clear, 2, &best, &nms);
    CHECK(best == 1 && nms == 0);
    /* the simpler variant (listed first) keeps a near tie, relative to the figure */
    double near[2][2] = {{0.80, 0.8475}, {0.80, 0.8755}};
    det_pick_variant((const double(*)[2])near, 2, &best, &nms);
    CHECK(best == 0 && nms == 1);
    double low[2][2] = {{0.06, 0.0725}, {0.07, 0.0926}};
    det_pick_variant((const double(*)[2])low, 2, &best, &nms);
    CHECK(best == 1 && nms == 1);
    double nothing[2][2] = {{-1, -1}, {-1, -1}};
    det_pick_variant((const double(*)[2])nothing, 2, &best, &nms);
    CHECK(best == -1 && nms == 1);
}

/* Saves m with a crop stage (weight gamma, refinement reg or NULL, NMS
 * after it nms) at path, checks the file's version, and returns the file
 * loaded (NULL: failed); m is left without the stage. */
static eng_detector *crop_round_trip(eng_detector *m, const char *path, float gamma, float *mean,
                                     float *wb, float *reg, float nms, const char *version)
{
    eng_diag d = {{0}};
    m->crop_gamma = gamma;
    m->crop_dim = 3;
    m->crop_bb_name = "lite";
    m->crop_bb_checksum = "abcd";
    m->crop_mean = mean;
    m->crop_wb = wb;
    m->crop_reg = reg;
    m->crop_nms = nms;
    CHECK_MSG(eng_detector_save(m, path, &d) == ENG_OK, "%s", d.msg);
    m->crop_gamma = m->crop_nms = 0;
    m->crop_dim = 0;
    m->crop_bb_name = m->crop_bb_checksum = NULL;
    m->crop_mean = m->crop_wb = m->crop_reg = NULL;
    eng_modelfile *mf = NULL;
    CHECK(eng_modelfile_read(path, &mf, &d) == ENG_OK && mf &&
          strcmp(eng_modelfile_meta(mf, "version"), version) == 0);
    eng_modelfile_free(mf);
    eng_detector *l = NULL;
    CHECK_MSG(eng_detector_load(path, &l, &d) == ENG_OK, "%s", d.msg);
    return l;
}

static void test_file(const eng_detector *m)
{
    char path[] = "/tmp/test_detect_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    eng_diag d = {{0}};
    CHECK_MSG(eng_detector_save(m, path, &d) == ENG_OK, "%s", d.msg);
    eng_detector *l = NULL;
    CHECK_MSG(eng_detector_load(path, &l, &d) == ENG_OK, "%s", d.msg);
    if (l) {
        CHECK(l->ncat == NC && strcmp(l->cats[1], "square") == 0);
        CHECK(strcmp(l->bb_name, "synthetic") == 0 && strcmp(l->bb_checksum, "00ff") == 0);
        CHECK(strcmp(l->feat_node, "features") == 0 && l->fdim == FD);
        CHECK(memcmp(l->wc, m->wc, FD * NC * sizeof(float)) == 0);
        CHECK(memcmp(l->bc, m->bc, NC * sizeof(float)) == 0);
        CHECK(memcmp(l->ww, m->ww, FD * 4 * sizeof(float)) == 0);
        CHECK(memcmp(l->bw, m->bw, 4 * sizeof(float)) == 0);
        CHECK(memcmp(l->dw_cls, m->dw_cls, 9 * FD * sizeof(float)) == 0);
        CHECK(memcmp(l->dw_wh, m->dw_wh, 9 * FD * sizeof(float)) == 0);
        CHECK(l->nms_iou == m->nms_iou && l->min_score == m->min_score);
        CHECK(strcmp(eng_det_recipe(l), "{\"test\":1}") == 0);
        const char *sum = NULL;
        CHECK(strcmp(eng_det_backbone_needed(l, 0, &sum), "synthetic") == 0 && sum &&
              strcmp(sum, "00ff") == 0);
        CHECK(eng_det_ncat(l) == NC && eng_det_category(l, 2) == NULL);
        CHECK(l->calibrated == 0); /* written without one: the peak is the confidence */
    }
    eng_detector_free(l);

    /* the calibration survives the file exactly */
    eng_detector *mc = (eng_detector *)m;
    mc->calibrated = 1;
    mc->cal_a = 2.75f;
    mc->cal_b = 1.0f / 3.0f;
    CHECK_MSG(eng_detector_save(mc, path, &d) == ENG_OK, "%s", d.msg);
    l = NULL;
    CHECK_MSG(eng_detector_load(path, &l, &d) == ENG_OK, "%s", d.msg);
    CHECK(l && l->calibrated == 1 && l->cal_a == 2.75f && l->cal_b == 1.0f / 3.0f);
    if (l)
        CHECK(det_confidence(l, 0.2f) == det_confidence(mc, 0.2f));
    eng_detector_free(l);
    mc->calibrated = 0;

    /* a crop classifier survives the file exactly, names its backbone as
     * the second one needed, and makes the file version 4 */
    float cmean[3] = {0.5f, -1, 2}, cwb[4 * (NC + 1)];
    for (int i = 0; i < 4 * (NC + 1); i++)
        cwb[i] = (float)i / 7 - 1;
    eng_detector *l4 = crop_round_trip(mc, path, 0.5f, cmean, cwb, NULL, 0, "4");
    if (l4) {
        CHECK(l4->crop_gamma == 0.5f && l4->crop_dim == 3);
        CHECK(memcmp(l4->crop_mean, cmean, sizeof cmean) == 0);
        CHECK(memcmp(l4->crop_wb, cwb, sizeof cwb) == 0);
        const char *sum = NULL;
        CHECK(strcmp(eng_det_backbone_needed(l4, 1, &sum), "lite") == 0 && sum &&
              strcmp(sum, "abcd") == 0);
        CHECK(eng_det_backbone_needed(l4, 2, NULL) == NULL);
    }
    eng_detector_free(l4);
    /* a box refinement alone (weight 0) keeps the crop stage, survives the
     * file exactly and makes it version 5 */
    float creg[4 * DET_BOX_T];
    for (int i = 0; i < 4 * DET_BOX_T; i++)
        creg[i] = (float)i / 9 - 0.5f;
    eng_detector *l5 = crop_round_trip(mc, path, 0, cmean, cwb, creg, 0, "5");
    if (l5) {
        CHECK(l5->crop_gamma == 0 && det_crop_on(l5) && l5->crop_reg && l5->crop_nms == 0);
        CHECK(l5->crop_reg && memcmp(l5->crop_reg, creg, sizeof creg) == 0);
        CHECK(strcmp(eng_det_backbone_needed(l5, 1, NULL), "lite") == 0);
    }
    eng_detector_free(l5);
    /* with NMS after the refinement: version 6, the IoU kept */
    eng_detector *l6 = crop_round_trip(mc, path, 0, cmean, cwb, creg, 0.5f, "6");
    CHECK(l6 && l6->crop_reg && l6->crop_nms == 0.5f);
    eng_detector_free(l6);
    /* without one, no second backbone is needed */
    CHECK(eng_det_backbone_needed(m, 1, NULL) == NULL);

    /* truncated: refused with a message */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len);
    CHECK(fread(buf, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    f = fopen(path, "wb");
    fwrite(buf, 1, (size_t)len - 9, f);
    fclose(f);
    l = NULL;
    CHECK(eng_detector_load(path, &l, &d) == ENG_EFORMAT && l == NULL);
    free(buf);

    /* another kind of model: "not a detector" */
    float w[2] = {1, 2};
    eng_tensor t = {ENG_F32, 1, {2}, w};
    const eng_tensor *tp[1] = {&t};
    const char *names[1] = {"head.weight"};
    const char *keys[2] = {"kind", "version"};
    const char *vals[2] = {"classifier", "1"};
    CHECK(eng_modelfile_write(path, names, tp, 1, keys, vals, 2, &d) == ENG_OK);
    CHECK(eng_detector_load(path, &l, &d) == ENG_EFORMAT && strstr(d.msg, "not a detector"));
    /* a detector whose tensors do not match its metadata */
    const char *vals2[2] = {"detector", "1"};
    CHECK(eng_modelfile_write(path, names, tp, 1, keys, vals2, 2, &d) == ENG_OK);
    CHECK(eng_detector_load(path, &l, &d) == ENG_EFORMAT && l == NULL);
    const char *vals3[2] = {"detector", "99"};
    CHECK(eng_modelfile_write(path, names, tp, 1, keys, vals3, 2, &d) == ENG_OK);
    CHECK(eng_detector_load(path, &l, &d) == ENG_EUNSUPPORTED);
    unlink(path);
}

static void test_predictions_json(void)
{
    eng_det_pred p[2] = {{5, 1, {1.5, 2, 30.25, 40}, 0.875}, {9, 0, {0, 0, 1, 1}, 0.01}};
    long long ids[2] = {17, 42};
    char *s = NULL;
    eng_diag d;
    CHECK(det_predictions_json(p, 2, ids, &s, &d) == ENG_OK);
    CHECK(s && strstr(s, "\"image_id\": 5, \"category_id\": 42, \"bbox\": [1.5, 2, 30.25, 40], "
                         "\"score\": 0.875"));
    CHECK(s && strstr(s, "\"image_id\": 9, \"category_id\": 17"));
    free(s);
    CHECK(det_predictions_json(p, 0, ids, &s, &d) == ENG_OK && strcmp(s, "[\n]\n") == 0);
    free(s);
}

/* flip_average: the averaged maps of the mirrored features are the mirror
 * of the averaged maps (cell x <-> GRID-1-x, left and right distances
 * swapped), exactly; and the setting survives the model file. */
static void test_flip_average(eng_detector *m)
{
    static synth s;
    synth_make(&s, 11);
    int flip_was = m->flip_average;
    m->flip_average = 1;
    size_t nf = (size_t)FD * DET_CELLS;
    uint16_t *mir = malloc(nf * 2);
    float *h = malloc((size_t)DET_CELLS * NC * sizeof *h),
          *w = malloc((size_t)DET_CELLS * 4 * sizeof *w);
    float *hm = malloc((size_t)DET_CELLS * NC * sizeof *hm),
          *wm = malloc((size_t)DET_CELLS * 4 * sizeof *wm);
    for (int y = 0; y < DET_GRID; y++)
        for (int x = 0; x < DET_GRID; x++)
            memcpy(mir + ((size_t)y * DET_GRID + x) * FD,
                   s.feat[0] + ((size_t)y * DET_GRID + DET_GRID - 1 - x) * FD, FD * 2);
    det_scratch sc;
    det_scratch_init(&sc, FD, NULL);
    eng_diag d;
    CHECK(det_heads(m, s.feat[0], 1, &sc, h, w, &d) == ENG_OK);
    CHECK(det_heads(m, mir, 1, &sc, hm, wm, &d) == ENG_OK);
    int bad = 0;
    for (int y = 0; y < DET_GRID; y++)
        for (int x = 0; x < DET_GRID; x++) {
            size_t c = (size_t)y * DET_GRID + x, c2 = (size_t)y * DET_GRID + DET_GRID - 1 - x;
            for (int k = 0; k < NC; k++)
                bad += hm[c * NC + k] != h[c2 * NC + k];
            bad += wm[c * 4] != w[c2 * 4 + 2] || wm[c * 4 + 2] != w[c2 * 4] ||
                   wm[c * 4 + 1] != w[c2 * 4 + 1] || wm[c * 4 + 3] != w[c2 * 4 + 3];
        }
    CHECK_MSG(bad == 0, "%d cells differ from the mirror", bad);
    char path[] = "/tmp/test_detect_flip_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    eng_detector *l = NULL;
    CHECK(eng_detector_save(m, path, &d) == ENG_OK && eng_detector_load(path, &l, &d) == ENG_OK);
    CHECK(l && l->flip_average == 1);
    eng_detector_free(l);
    m->flip_average = 0;
    CHECK(eng_detector_save(m, path, &d) == ENG_OK && eng_detector_load(path, &l, &d) == ENG_OK);
    CHECK(l && l->flip_average == 0);
    eng_detector_free(l);
    unlink(path);
    m->flip_average = flip_was;
    det_scratch_release(&sc);
    free(mir);
    free(h);
    free(w);
    free(hm);
    free(wm);
    for (int i = 0; i <= NIMG; i++)
        free(s.feat[i]);
}

/* Tiling: the tiles' geometry, a tile's objects mapped back to the image
 * and kept in its core only, the merge across views, the model file
 * (version 2, refusals) and the ONNX export's refusal. */
static void test_tiles(eng_detector *m)
{
    float r[4], core[4];
    det_tile_rect(0, r, core);
    CHECK(r[0] == 0 && r[1] == 0 && fabsf(r[2] - 0.6f) < 1e-6f && fabsf(r[3] - 0.6f) < 1e-6f);
    CHECK(core[0] == 0 && core[1] == 0 && fabsf(core[2] - 0.5f) < 1e-6f);
    det_tile_rect(3, r, core);
    CHECK(fabsf(r[0] - 0.4f) < 1e-6f && fabsf(r[1] - 0.4f) < 1e-6f);
    CHECK(fabsf(r[0] + r[2] - 1) < 1e-6f && fabsf(core[0] - 0.5f) < 1e-6f && core[2] == 1);
    det_tile_rect(1, r, core); /* tx 1, ty 0 */
    CHECK(fabsf(r[0] - 0.4f) < 1e-6f && r[1] == 0);

    int tiles_was = m->tiles, whole_was = m->tile_whole;
    float nms_was = m->nms_iou;
    m->tiles = 0;
    CHECK(det_nviews(m) == 1 && det_view_tile(m, 0) == -1);
    m->tiles = DET_TILES;
    m->tile_whole = 1;
    CHECK(det_nviews(m) == 5 && det_view_tile(m, 3) == 3 && det_view_tile(m, 4) == -1);
    m->tile_whole = 0;
    CHECK(det_nviews(m) == 4);

    /* tile 3 of a 1000 x 500 image covers x 400..1000, y 200..500; a peak
     * at cell (64, 64) = input (256, 256), box 64 px each way: in the
     * image (400 + 192 * 600 / 512, 200 + 192 * 300 / 512, 128 * 600 / 512,
     * 128 * 300 / 512); a second one at cell (4, 4) centres left of the core */
    float *heat = calloc((size_t)DET_CELLS * NC, sizeof *heat);
    float *wh = calloc((size_t)DET_CELLS * 4, sizeof *wh);
    set_cell(heat, wh, DET_GRID, NC, 64, 64, 1, 0.9f, 64, 64, 64, 64);
    set_cell(heat, wh, DET_GRID, NC, 4, 4, 0, 0.8f, 8, 8, 8, 8);
    m->nms_iou = 0.5f;
    m->calibrated = 0;
    eng_det_object o[ENG_DET_TOPK];
    int n = det_view_objects(m, 3, heat, wh, 1000, 500, o);
    CHECK_MSG(n == 1, "%d objects", n);
    if (n == 1) {
        CHECK(o[0].category == 1 && o[0].score == 0.9f);
        CHECK(fabsf(o[0].x - (400 + 192 * 600.0f / 512)) < 1e-3f);
        CHECK(fabsf(o[0].y - (200 + 192 * 300.0f / 512)) < 1e-3f);
        CHECK(fabsf(o[0].w - 128 * 600.0f / 512) < 1e-3f);
        CHECK(fabsf(o[0].h - 128 * 300.0f / 512) < 1e-3f);
    }
    /* the same peak in tile 0 lies in its core (x 0..500, y 0..250) */
    CHECK(det_view_objects(m, 0, heat, wh, 1000, 500, o) == 2);

    /* merge: best first, a same-category overlap dropped, another category kept */
    eng_det_object in[4] = {{0, 0, 10, 10, 0, 0.5f},
                            {1, 0, 10, 10, 0, 0.7f},
                            {0, 0, 10, 10, 1, 0.6f},
                            {50, 50, 10, 10, 0, 0.2f}};
    eng_det_object out[4];
    n = det_merge(in, 4, 0.5f, out, 4);
    CHECK(n == 3 && out[0].score == 0.7f && out[1].score == 0.6f && out[2].score == 0.2f);
    n = det_merge(in, 4, 0, out, 2); /* NMS off: everything, up to the cap */
    CHECK(n == 2 && out[0].score == 0.7f && out[1].score == 0.6f);

    /* the file: tiles survive, version 2; untiled files stay version 1 */
    char path[] = "/tmp/test_detect_tiles_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    eng_diag d = {{0}};
    eng_detector *l = NULL;
    m->tile_whole = 1;
    CHECK(eng_detector_save(m, path, &d) == ENG_OK && eng_detector_load(path, &l, &d) == ENG_OK);
    CHECK(l && l->tiles == DET_TILES && l->tile_whole == 1);
    eng_detector_free(l);
    eng_modelfile *f = NULL;
    CHECK(eng_modelfile_read(path, &f, &d) == ENG_OK);
    CHECK(f && strcmp(eng_modelfile_meta(f, "version"), "2") == 0);
    eng_modelfile_free(f);
    /* not exportable to ONNX yet, with a reason */
    uint8_t *onnx = NULL;
    size_t len = 0;
    CHECK(eng_detector_export_onnx(m, NULL, 0, "test", &onnx, &len, &d) == ENG_EUNSUPPORTED &&
          onnx == NULL && strstr(d.msg, "tiled detectors are not exportable yet"));
    /* letterbox with tiles is refused */
    m->letterbox = 1;
    CHECK(eng_detector_save(m, path, &d) == ENG_OK);
    l = NULL;
    CHECK(eng_detector_load(path, &l, &d) == ENG_EFORMAT && l == NULL && strstr(d.msg, "tiles"));
    m->letterbox = 0;
    m->tiles = 0;
    CHECK(eng_detector_save(m, path, &d) == ENG_OK && eng_detector_load(path, &l, &d) == ENG_OK);
    CHECK(l && l->tiles == 0);
    eng_detector_free(l);
    CHECK(eng_modelfile_read(path, &f, &d) == ENG_OK);
    CHECK(f && strcmp(eng_modelfile_meta(f, "version"), "1") == 0);
    eng_modelfile_free(f);
    unlink(path);
    m->tiles = tiles_was;
    m->tile_whole = whole_was;
    m->nms_iou = nms_was;
    free(heat);
    free(wh);
}

/* The box-size prior: the fit (mean log shares per category, the pooled
 * mean for a category without boxes), a detection resized around its centre
 * at weights 1 and 0.5 (whole image and tile views), the model file
 * (version 3 with the prior, the lower versions without, refusals); its
 * ONNX export is checked against predict/ by test_models_onnx.sh. */
static void test_size_prior(eng_detector *m)
{
    /* category 0: shares 0.1 x 0.2 and 0.4 x 0.2 (geometric mean 0.2 x 0.2);
     * category 1 has no boxes: the mean of all, 0.2 x 0.2 */
    float boxes[8] = {0, 0, 0.1f, 0.2f, 0.5f, 0.5f, 0.4f, 0.2f};
    int cats[2] = {0, 0};
    float prior[2 * NC];
    det_size_prior_fit(boxes, cats, 2, NC, prior);
    CHECK_NEAR(expf(prior[0]), 0.2, 1e-5);
    CHECK_NEAR(expf(prior[1]), 0.2, 1e-5);
    CHECK_NEAR(expf(prior[2]), 0.2, 1e-5);
    CHECK_NEAR(expf(prior[3]), 0.2, 1e-5);

    float *heat = calloc((size_t)DET_CELLS * NC, sizeof *heat);
    float *wh = calloc((size_t)DET_CELLS * 4, sizeof *wh);
    /* a peak at input (256, 256) with an 8 px box each way: in a 1000 x 500
     * image a 31.25 x 15.625 box centred at (500, 250) */
    set_cell(heat, wh, DET_GRID, NC, 64, 64, 0, 0.9f, 8, 8, 8, 8);
    float nms_was = m->nms_iou;
    int tiles_was = m->tiles, whole_was = m->tile_whole, cal_was = m->calibrated;
    m->nms_iou = 0.5f;
    m->calibrated = 0;
    m->tiles = 0;
    eng_det_object o[ENG_DET_TOPK];
    CHECK(det_view_objects(m, -1, heat, wh, 1000, 500, o) == 1);
    float head_w = o[0].w, head_h = o[0].h;
    CHECK_NEAR(head_w, 31.25, 1e-3);
    m->size_prior = malloc(sizeof prior);
    memcpy(m->size_prior, prior, sizeof prior);
    m->size_weight = 1;
    CHECK(det_view_objects(m, -1, heat, wh, 1000, 500, o) == 1);
    CHECK_NEAR(o[0].w, 200, 1e-2); /* 0.2 of the width */
    CHECK_NEAR(o[0].h, 100, 1e-2);
    CHECK_NEAR(o[0].x + o[0].w / 2, 500, 1e-2);
    CHECK_NEAR(o[0].y + o[0].h / 2, 250, 1e-2);
    m->size_weight = 0.5f;
    CHECK(det_view_objects(m, -1, heat, wh, 1000, 500, o) == 1);
    CHECK_NEAR(o[0].w, sqrt(200.0 * head_w), 1e-2);
    CHECK_NEAR(o[0].h, sqrt(100.0 * head_h), 1e-2);
    /* a tile's detection takes the size in the image's frame: the same
     * share of the image, whatever the tile's scale */
    m->size_weight = 1;
    m->tiles = DET_TILES;
    m->tile_whole = 0;
    int n = det_view_objects(m, 3, heat, wh, 1000, 500, o);
    CHECK(n == 1 && fabsf(o[0].w - 200) < 1e-2f && fabsf(o[0].h - 100) < 1e-2f);
    m->tiles = 0;

    /* the file: the prior survives, version 3; without it the file keeps
     * its lower version and loads with no prior */
    char path[] = "/tmp/test_detect_prior_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    eng_diag d = {{0}};
    eng_detector *l = NULL;
    m->size_weight = 0.5f;
    CHECK_MSG(eng_detector_save(m, path, &d) == ENG_OK && eng_detector_load(path, &l, &d) == ENG_OK,
              "%s", d.msg);
    CHECK(l && l->size_weight == 0.5f && l->size_prior &&
          memcmp(l->size_prior, prior, sizeof prior) == 0);
    if (l) {
        eng_det_object a[ENG_DET_TOPK], b[ENG_DET_TOPK];
        int na = det_view_objects(m, -1, heat, wh, 1000, 500, a);
        l->nms_iou = m->nms_iou;
        l->calibrated = 0;
        int nb = det_view_objects(l, -1, heat, wh, 1000, 500, b);
        CHECK(na == nb && na == 1 && memcmp(a, b, sizeof a[0]) == 0);
    }
    eng_detector_free(l);
    eng_modelfile *f = NULL;
    CHECK(eng_modelfile_read(path, &f, &d) == ENG_OK);
    CHECK(f && strcmp(eng_modelfile_meta(f, "version"), "3") == 0);
    eng_modelfile_free(f);
    m->size_weight = 0;
    CHECK(eng_detector_save(m, path, &d) == ENG_OK && eng_detector_load(path, &l, &d) == ENG_OK);
    CHECK(l && l->size_weight == 0 && l->size_prior == NULL);
    eng_detector_free(l);
    CHECK(eng_modelfile_read(path, &f, &d) == ENG_OK);
    CHECK(f && strcmp(eng_modelfile_meta(f, "version"), "1") == 0);
    eng_modelfile_free(f);
    unlink(path);
    free(m->size_prior);
    m->size_prior = NULL;
    m->nms_iou = nms_was;
    m->tiles = tiles_was;
    m->tile_whole = whole_was;
    m->calibrated = cal_was;
    free(heat);
    free(wh);
}

int main(void)
{
    test_decode();
    test_gaussian();
    test_predictions_json();
    test_label_tp();
    test_calibrate();
    test_pick_variant();
    test_budget_message();
    test_fit_run_refuses();
    test_background_images();
    eng_detector *m = NULL;
    test_train(&m);
    if (m) {
        test_file(m);
        test_flip_average(m);
        test_tiles(m);
        test_size_prior(m);
        test_draw(m);
    }
    eng_detector_free(m);
    return check_report("test_detect");
}
