/* test_detect_crops.c: the detector's crop classifier (det_crops.c) with
 * the installed EfficientNet-Lite0 on drawn images. Each image holds a red
 * square (category 0), a blue disc (category 1) and a green ring that is
 * neither. The held-out detections handed to the search are those of a
 * heatmap that is sure of the ring and sometimes calls the disc a square:
 * the crop classifier must learn to tell them apart, raise the held-out
 * mAP@50 and be kept; rescoring an unseen image must put the square above
 * the ring, and keep the objects it does not look at below; a budget too small for the crops must
 * skip the stage and say why. Then the box refinement (det_boxreg.c):
 * detections of the right category whose boxes are all 1.6 times too
 * large (IoU 0.39, every one a miss at 0.5) must be corrected, the stage
 * kept for it alone (weight 0), and an unseen image's box shrunk onto its
 * object. The search reports each image to its progress hook and stops at
 * the image after a cancel.
 */
#include "det_int.h"
#include "check.h"
#include "test_backbone_dir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Debian's stb_image_write uses sprintf for its HDR header: allowed there
 * only (common/banned.h bans it in our code) */
#undef sprintf
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#define sprintf(...) VFS_BANNED(sprintf_use_snprintf)

#define SIDE 192
#define NIMG 10
#define OBJ 36 /* side of a shape's box */

static char dir[] = "/tmp/test_detect_crops_XXXXXX";

typedef struct shape_pos {
    int x[3], y[3]; /* top-left of the square, the disc, the ring */
} shape_pos;

static void put(uint8_t *px, int x, int y, int r, int g, int b)
{
    if (x < 0 || y < 0 || x >= SIDE || y >= SIDE)
        return;
    uint8_t *p = px + 3 * ((size_t)y * SIDE + x);
    p[0] = (uint8_t)r;
    p[1] = (uint8_t)g;
    p[2] = (uint8_t)b;
}

/* Writes image path with the three shapes at pos; a little noise so no
 * two crops are the same. */
static void draw(const char *path, const shape_pos *pos, unsigned seed)
{
    uint8_t *px = malloc((size_t)SIDE * SIDE * 3);
    for (int i = 0; i < SIDE * SIDE * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        px[i] = (uint8_t)(120 + (seed >> 16) % 16);
    }
    float c = OBJ / 2.0f;
    for (int dy = 0; dy < OBJ; dy++)
        for (int dx = 0; dx < OBJ; dx++) {
            float r = sqrtf((dx - c) * (dx - c) + (dy - c) * (dy - c));
            put(px, pos->x[0] + dx, pos->y[0] + dy, 220, 30, 30);
            if (r < c)
                put(px, pos->x[1] + dx, pos->y[1] + dy, 30, 30, 220);
            if (r < c && r > c - 7)
                put(px, pos->x[2] + dx, pos->y[2] + dy, 30, 200, 30);
        }
    CHECK(stbi_write_png(path, SIDE, SIDE, 3, px, SIDE * 3) != 0);
    free(px);
}

static shape_pos place(int i)
{
    /* three columns, shifted per image */
    shape_pos p;
    int col[3] = {(i % 3), (i + 1) % 3, (i + 2) % 3};
    for (int k = 0; k < 3; k++) {
        p.x[k] = 8 + col[k] * 60 + (i * 7) % 12;
        p.y[k] = 20 + ((i * 37 + k * 53) % 110);
    }
    return p;
}

static void box_of(const shape_pos *p, int k, double *b)
{
    b[0] = p->x[k];
    b[1] = p->y[k];
    b[2] = OBJ;
    b[3] = OBJ;
}

#define LOOSE 1.6 /* the loose boxes' side, as a share of the object's */

static void loose_box_of(const shape_pos *p, int k, double *b)
{
    box_of(p, k, b);
    b[0] -= (LOOSE - 1) * OBJ / 2;
    b[1] -= (LOOSE - 1) * OBJ / 2;
    b[2] = b[3] = LOOSE * OBJ;
}

/* The correction from a box to another, applied, gives the other back. */
static void test_box_target_round_trip(void)
{
    double p[4] = {10, 20, 40, 30}, g[4] = {14, 18, 50, 24};
    float t[DET_BOX_T], b[4] = {10, 20, 40, 30};
    det_box_target(p, g, t);
    det_box_apply(t, 200, 200, b);
    for (int v = 0; v < 4; v++)
        CHECK(fabs(b[v] - g[v]) < 1e-3);
    /* bounded: a box is never moved by more than half its side, nor grown
     * past exp(0.7), and stays in the image */
    double far[4] = {150, 150, 400, 400};
    float b2[4] = {10, 20, 40, 30};
    det_box_target(p, far, t);
    det_box_apply(t, 200, 200, b2);
    CHECK(b2[0] >= 0 && b2[1] >= 0 && b2[0] + b2[2] <= 200 && b2[1] + b2[3] <= 200);
    CHECK(b2[2] <= 40 * expf(0.7f) + 1e-3f && b2[0] + b2[2] / 2 <= 30 + 0.5f * 40 + 1e-3f);
}

/* How many images the crop search uses when only some fit in its budget
 * or in memory: a small set all or none, a large one at least
 * DET_CROP_MIN_IMAGES (64) in steps of 32, so that a little more or less
 * CPU time does not change the sample. */
static void test_crop_images(void)
{
    CHECK(det_crop_images(40, 40) == 40 && det_crop_images(40, 100) == 40);
    CHECK(det_crop_images(40, 39) == 0 && det_crop_images(292, 63) == 0);
    CHECK(det_crop_images(292, 64) == 64 && det_crop_images(292, 95) == 64);
    CHECK(det_crop_images(292, 96) == 96 && det_crop_images(292, 291) == 288);
    CHECK(det_crop_images(292, 292) == 292 && det_crop_images(292, 0) == 0);
}

/* Loose boxes of the right category: the refinement alone must win. */
static void test_box_refinement(eng_backbone *bb, char (*paths)[600], det_crop_image *ims)
{
    eng_det_gt gt[2 * NIMG];
    eng_det_pred pred[2 * NIMG];
    int ngt = 0, np = 0;
    eng_diag d = {{0}};
    for (int i = 0; i < NIMG; i++) {
        shape_pos p = place(i);
        for (int k = 0; k < 2; k++) {
            gt[ngt] = (eng_det_gt){i, k, {0}};
            box_of(&p, k, gt[ngt++].bbox);
            pred[np] = (eng_det_pred){i, k, {0}, 0.9 - 0.1 * k};
            loose_box_of(&p, k, pred[np++].bbox);
        }
    }
    det_crop_result c;
    eng_status st =
        det_crop_search(bb, ims, NIMG, 4, 2, gt, ngt, pred, np, 0.5f, 1e9, 2, NULL, &c, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    printf("box refinement: held-out mAP@50 %.4f -> %.4f (penalty %g, %d detections)\n", c.map[0],
           c.reg_map, c.reg_lambda, c.nreg);
    CHECK(c.map[0] < 0.05 && c.reg_map > 0.9);
    CHECK(c.gamma == 0 && c.reg && c.nreg == np && c.mean && c.wb);
    if (c.reg && c.mean) {
        eng_detector m = {
            .ncat = 2, .crop_dim = c.dim, .crop_mean = c.mean, .crop_wb = c.wb, .crop_reg = c.reg};
        shape_pos p = place(NIMG);
        double lb[4], tb[4];
        loose_box_of(&p, 1, lb);
        box_of(&p, 1, tb);
        eng_det_object o = {(float)lb[0], (float)lb[1], (float)lb[2], (float)lb[3], 1, 0.7f};
        int no = 1;
        CHECK_MSG(det_crop_rescore(&m, bb, paths[NIMG], SIDE, SIDE, &o, &no, 1, &d) == ENG_OK, "%s",
                  d.msg);
        double ob[4] = {o.x, o.y, o.w, o.h};
        printf("unseen image: IoU %.3f before, %.3f after; score %.3f\n", eng_det_iou(lb, tb),
               eng_det_iou(ob, tb), o.score);
        CHECK(no == 1 && eng_det_iou(ob, tb) > 0.8 && o.score == 0.7f);

        /* two boxes corrected onto one object: NMS again when the model
         * says so (crop_nms), both kept when not (version 5 files) */
        for (int nms = 0; nms < 2; nms++) {
            m.crop_nms = nms ? 0.5f : 0;
            eng_det_object two[2];
            two[0] =
                (eng_det_object){(float)lb[0], (float)lb[1], (float)lb[2], (float)lb[3], 1, 0.7f};
            two[1] = two[0];
            two[1].score = 0.6f;
            int n2 = 2;
            CHECK_MSG(det_crop_rescore(&m, bb, paths[NIMG], SIDE, SIDE, two, &n2, 1, &d) == ENG_OK,
                      "%s", d.msg);
            CHECK(n2 == (nms ? 1 : 2) && two[0].score == 0.7f);
        }
    }
    det_crop_result_release(&c);
}

/* det_crop_hooks for the test: counts, and cancels after `stop_after` images */
typedef struct crop_watch {
    int calls, polls, stop_after, last_done, last_of;
} crop_watch;

static int watch_abort(void *ctx)
{
    crop_watch *w = ctx;
    return ++w->polls > w->stop_after;
}

static void watch_progress(void *ctx, int done, int of)
{
    crop_watch *w = ctx;
    w->calls++;
    w->last_done = done;
    w->last_of = of;
}

int main(void)
{
    test_box_target_round_trip();
    char bbdir[4096];
    if (test_backbone_path("efficientnet-lite0", NULL, bbdir, sizeof bbdir) != 1)
        CHECK_SKIP("efficientnet-lite0 backbone not installed (scripts/fetch-backbones.sh)");
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    if (eng_backbone_open(bbdir, &bb, &d) != ENG_OK)
        return test_backbone_broken(bbdir, d.msg);
    if (!mkdtemp(dir))
        return 1;

    char paths[NIMG + 1][600];
    det_crop_image ims[NIMG];
    eng_det_gt gt[2 * NIMG];
    eng_det_pred pred[4 * NIMG];
    int ngt = 0, np = 0;
    for (int i = 0; i <= NIMG; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%d.png", dir, i);
        shape_pos p = place(i);
        draw(paths[i], &p, 7u + (unsigned)i);
        if (i == NIMG)
            break; /* the unseen image */
        ims[i] = (det_crop_image){paths[i], SIDE, SIDE, i % 4};
        for (int k = 0; k < 2; k++) {
            gt[ngt] = (eng_det_gt){i, k, {0}};
            box_of(&p, k, gt[ngt++].bbox);
        }
        /* the heatmap's detections: the ring above everything, the disc
         * also named a square */
        double s[4] = {0.6, 0.5, 0.8, 0.55};
        int cat[4] = {0, 1, 0, 0}, shape[4] = {0, 1, 2, 1};
        for (int j = 0; j < 4; j++) {
            pred[np] = (eng_det_pred){i, cat[j], {0}, s[j]};
            box_of(&p, shape[j], pred[np++].bbox);
        }
    }
    double iou = 0.5, base = 0;
    CHECK(eng_det_map_ex(gt, ngt, pred, np, 2, &iou, 1, ENG_DET_MAX_DETS, &base, NULL, &d) ==
          ENG_OK);

    det_crop_result c;
    eng_status st =
        det_crop_search(bb, ims, NIMG, 4, 2, gt, ngt, pred, np, 0.5f, 1e9, 2, NULL, &c, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    printf("crop classifier: held-out mAP@50 %.4f -> %.4f at weight 0.5, %.4f at 1 "
           "(%d crops, %.1f CPU s)\n",
           base, c.map[1], c.map[2], c.ncrops, c.cpu);
    CHECK(fabs(c.map[0] - base) < 1e-9); /* nothing cut: 4 detections per image */
    CHECK(c.gamma > 0 && c.heldout_map > base + 0.2);
    CHECK(c.ncrops == NIMG * (4 + 2 * 2)); /* detections, boxes and their mirrors */
    CHECK(c.pred && c.npred == np && c.mean && c.wb && c.dim > 0 && c.nimg == NIMG);

    /* the classifier fitted on every image rescores an unseen one */
    if (c.gamma > 0 && c.mean) {
        eng_detector m = {.ncat = 2,
                          .crop_gamma = c.gamma,
                          .crop_dim = c.dim,
                          .crop_mean = c.mean,
                          .crop_wb = c.wb};
        shape_pos p = place(NIMG);
        eng_det_object o[2];
        double b[4];
        box_of(&p, 2, b); /* the ring, as sure as before */
        o[0] = (eng_det_object){(float)b[0], (float)b[1], (float)b[2], (float)b[3], 0, 0.8f};
        box_of(&p, 0, b);
        o[1] = (eng_det_object){(float)b[0], (float)b[1], (float)b[2], (float)b[3], 0, 0.6f};
        int no = 2;
        CHECK_MSG(det_crop_rescore(&m, bb, paths[NIMG], SIDE, SIDE, o, &no, 1, &d) == ENG_OK, "%s",
                  d.msg);
        printf("unseen image: square %.3f, ring %.3f\n",
               o[0].x == (float)b[0] ? o[0].score : o[1].score,
               o[0].x == (float)b[0] ? o[1].score : o[0].score);
        CHECK(no == 2 && o[0].x == (float)b[0] && o[0].score > o[1].score);

        /* past the DET_CROP_TOPK most confident, objects are not looked
         * at: they stay, in their order, below every rescored one */
        int nt = DET_CROP_TOPK + 2;
        eng_det_object *t = calloc((size_t)nt, sizeof *t);
        for (int i = 0; i < nt; i++)
            t[i] = (eng_det_object){(float)b[0], (float)b[1], (float)b[2],
                                    (float)b[3], i % 2,       0.9f - 0.01f * (float)i};
        CHECK_MSG(det_crop_rescore(&m, bb, paths[NIMG], SIDE, SIDE, t, &nt, 1, &d) == ENG_OK, "%s",
                  d.msg);
        CHECK(nt == DET_CROP_TOPK + 2);
        int sorted = 1;
        for (int i = 1; i < nt; i++)
            sorted &= t[i].score <= t[i - 1].score;
        /* the last two are the two not looked at (categories 0 then 1) */
        CHECK(sorted && t[nt - 2].category == 0 && t[nt - 1].category == 1 &&
              t[nt - 1].score < t[nt - 2].score && t[nt - 2].score < t[nt - 3].score);
        free(t);
    }
    det_crop_result_release(&c);

    /* a budget too small for the crops: skipped, and said */
    st = det_crop_search(bb, ims, NIMG, 4, 2, gt, ngt, pred, np, 0.5f, 1e-6, 1, NULL, &c, &d);
    CHECK(st == ENG_OK && c.gamma == 0 && strstr(c.note, "budget") && !c.mean && !c.pred && !c.reg);
    det_crop_result_release(&c);

    /* the hooks: progress before each image, and a cancel stops the stage at once */
    crop_watch w = {.stop_after = 3};
    det_crop_hooks h = {&w, watch_abort, watch_progress};
    st = det_crop_search(bb, ims, NIMG, 4, 2, gt, ngt, pred, np, 0.5f, 1e9, 1, &h, &c, &d);
    CHECK(st == ENG_EABORTED && strstr(d.msg, "cancelled"));
    CHECK(w.calls == 3 && w.last_done == 2 && w.last_of == NIMG && w.polls == 4);
    det_crop_result_release(&c);

    test_box_refinement(bb, paths, ims);
    test_crop_images();

    for (int i = 0; i <= NIMG; i++)
        unlink(paths[i]);
    rmdir(dir);
    eng_backbone_free(bb);
    return check_report("test_detect_crops");
}
