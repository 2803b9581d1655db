/* det_int.h: the detector's private representation and the feature and
 * head path shared by detect.c (model, predict, evaluate, file) and
 * det_train.c (recipe search). */
#ifndef VFS_ENGINE_DET_INT_H
#define VFS_ENGINE_DET_INT_H

#include "detect.h"

#include <math.h>

#define DET_SIZE 512 /* input side the neck works at */
#define DET_STRIDE 4 /* of the detection features */
#define DET_GRID (DET_SIZE / DET_STRIDE)
#define DET_CELLS (DET_GRID * DET_GRID)

/* Names of the pretrained CenterNet head constants the detector reuses. */
#define DET_CONST_CLS_DW "CenternetHead/centernet_cls_output/depthwise_weights"
#define DET_CONST_WH_DW "CenternetHead/centernet_wh_output/depthwise_weights"
#define DET_CONST_WH_PW "CenternetHead/centernet_wh_output/pointwise_weights"
#define DET_CONST_WH_B "CenternetHead/centernet_wh_output/biases"

struct eng_detector {
    int ncat;
    char **cats;
    char *bb_name, *bb_checksum;
    char *feat_node; /* detection features node */
    int fdim;        /* its channels */
    float wh_scale;  /* box head output x this = input pixels */
    float *dw_cls;   /* [3,3,fdim] frozen depthwise of the heatmap head */
    float *dw_wh;    /* [3,3,fdim] frozen depthwise of the box head */
    int hidden;      /* 0: heatmap 1x1 straight to the categories; else its width */
    float *w1, *b1;  /* hidden 1x1 + ReLU: [fdim,hidden], [hidden] (NULL when hidden 0) */
    float *wc, *bc;  /* heatmap 1x1: [hidden or fdim, ncat], [ncat] */
    float *ww, *bw;  /* box 1x1: [fdim,4], [4] */
    int letterbox;   /* 1: image padded to a square (bottom/right) before the resize; 0: squashed */
    /* 1: the heads also run on the mirrored feature map and the two maps are
     * averaged (a horizontal flip at test time for the price of the heads,
     * not of a second backbone pass); 0 in files written before it */
    int flip_average;
    float nms_iou; /* 0: no NMS */
    float min_score;
    /* confidence = sigmoid(cal_a * logit(peak) + cal_b), fitted on held-out
     * detections (Platt); calibrated 0: the peak itself */
    int calibrated;
    float cal_a, cal_b;
    /* tiles 0: the whole image only (files before tiling); DET_TILES: also
     * the image cut into DET_TILES x DET_TILES overlapping tiles, each
     * squash-resized to DET_SIZE (small objects at a larger scale) */
    int tiles;
    int tile_whole; /* with tiles: 1 the whole image is a view too */
    /* box-size prior (file version 3): a detection of category c takes, per
     * axis, the size exp((1 - size_weight) * log(the box head's size) +
     * size_weight * size_prior[2c or 2c + 1]) around its own centre, where
     * size_prior [ncat, 2] is the mean log of the training boxes' width and
     * height as shares of their image's. size_weight 0 (and size_prior NULL
     * in files before it): the box head's size. */
    float size_weight;
    float *size_prior;
    /* crop classifier (file version 4, det_crops.c): crop_gamma > 0 rescores
     * the DET_CROP_TOPK most confident objects with backbone crop_bb's
     * embedding of their crops: [crop_dim] mean, then a logistic regression
     * crop_wb [(crop_dim + 1), ncat + 1] (weights, then biases; the last
     * class is background). crop_gamma 0 (and crop_reg NULL): no second
     * stage. crop_reg (file version 5, det_boxreg.c): [(crop_dim + 1),
     * DET_BOX_T] a ridge regression from the same embedding to each of those
     * objects' box correction; NULL: their boxes as found. crop_nms (file
     * version 6): NMS at this IoU again after the correction (0: none, as
     * version 5 files predicted). */
    float crop_gamma, crop_nms;
    char *crop_bb_name, *crop_bb_checksum;
    int crop_dim;
    float *crop_mean, *crop_wb, *crop_reg;
    char *recipe; /* JSON */
};

/* Resizes objects o[0..n) of an img_w x img_h image by m's size prior
 * (nothing when m->size_weight is 0), clipped to the image. */
void det_apply_size_prior(const eng_detector *m, eng_det_object *o, int n, int img_w, int img_h);

/* The size prior of boxes: prior [ncat, 2] = the mean log width and height
 * shares of category c's boxes; a category without boxes gets the mean
 * over every box (0 when there are none). boxes hold nbox x (x, y, w, h)
 * shares of their image, cats their categories. */
void det_size_prior_fit(const float *boxes, const int *cats, int nbox, int ncat, float *prior);

/* Tiling: tiles per side, and the share of the image's width and height one
 * tile covers (neighbours overlap by 2 x DET_TILE_SPAN - 1 of it). */
#define DET_TILES 2
#define DET_TILE_SPAN 0.6f
#define DET_MAX_VIEWS (DET_TILES * DET_TILES + 1)

/* Views of an image m predicts from: 1 without tiles, else its tiles then
 * (tile_whole) the whole image; det_view_tile: view v's tile index, -1 for
 * the whole image. */
int det_nviews(const eng_detector *m);
int det_view_tile(const eng_detector *m, int v);

/* Tile k (0 .. DET_TILES^2 - 1, row-major) of an image as a share of its
 * width and height: r = x0, y0, w, h; core = the part it owns (x0, y0, x1,
 * y1): a detection from the tile is kept only when its centre lies there,
 * so neighbours do not report an object twice. */
void det_tile_rect(int k, float r[4], float core[4]);

/* Objects of one view's maps in image pixels (a tile's: mapped back from
 * the tile and kept only when centred in its core), NMS at m->nms_iou
 * inside the view, calibrated confidences. Returns the count (<= ENG_DET_TOPK). */
int det_view_objects(const eng_detector *m, int tile, const float *heat, const float *wh, int img_w,
                     int img_h, eng_det_object *out);

/* qsort order of objects: most confident first, ties by category, x, y. */
int det_obj_cmp(const void *a, const void *b);

/* Merges n objects of several views (sorted by confidence, NMS per category
 * at nms_iou when > 0) into out; returns the count (<= cap). Reorders in. */
int det_merge(eng_det_object *in, int n, float nms_iou, eng_det_object *out, int cap);

/* Confidence from which a detection counts: drawn on IMAGE.boxes.jpg and
 * counted by tagPerformance accuracy. */
#define DET_CONFIDENT 0.5f
/* When nothing reaches DET_CONFIDENT, the best detection is still drawn if
 * its confidence reaches this. */
#define DET_DRAW_FALLBACK 0.2f
/* NMS off must beat NMS on by more than this held-out mAP@50 to be chosen. */
#define DET_NMS_MARGIN 0.02
/* A variant must beat a simpler one (listed earlier) by more than this
 * share of its held-out mAP@50 to be chosen (relative: the noise of a few
 * held-out images grows with the figure). */
#define DET_SIMPLER_MARGIN 0.05
/* The crop stage holds out every image it uses once, so its figure's noise
 * falls as 1 / sqrt(images): past DET_MARGIN_IMAGES (the few-shot sets the
 * 5 % was set on) its margin shrinks at that rate. On raccoon's 160 images
 * (2.2 %) the crop classifier's +2.5 % held-out gain then stands, as its
 * test gain did (+0.9 and +1.4 points, seeds 0 and 1). The variants' choice
 * keeps the flat margin. */
#define DET_MARGIN_IMAGES 32
static inline double det_crop_margin(int images)
{
    return images > DET_MARGIN_IMAGES
               ? DET_SIMPLER_MARGIN * sqrt((double)DET_MARGIN_IMAGES / images)
               : DET_SIMPLER_MARGIN;
}

/* ---- the crop classifier (det_crops.c) ---- */

#define DET_CROP_TOPK 40  /* objects per image the crop classifier rescores */
#define DET_CROP_PAD 0.2f /* context around a crop, share of the box side on each side */
#define DET_CROP_C 8.0    /* inverse regularisation of its logistic regression */
/* crops the search holds at most: the embeddings and the regression's
 * copy take about 16 KB each with Lite0 (30,000: under 500 MB) */
#define DET_CROP_MAX_ROWS 30000
/* The search embeds the crops of as many training images as its budget
 * holds, in a seeded random order, at least this many (or all) or none:
 * 64 blood-cell images are about 4,000 crops, 50 CPU s with Lite0 */
#define DET_CROP_MIN_IMAGES 64
/* beyond that minimum, the images used are a multiple of this, so that a
 * little more or less CPU time does not change the sample */
#define DET_CROP_IMAGE_STEP 32

/* How many of n images the crop search uses when room of them fit (in the
 * budget or in memory): all when all fit, else room rounded down to
 * DET_CROP_MIN_IMAGES plus a multiple of DET_CROP_IMAGE_STEP; 0 (none)
 * when fewer than that minimum (or n) fit. */
int det_crop_images(int n, int room);

/* Whether m has the crop stage: a crop classifier, a box refinement or both. */
static inline int det_crop_on(const eng_detector *m) { return m->crop_gamma > 0 || m->crop_reg; }

/* Row x of a crop embedding as the crop stage's regressions see it: minus
 * mean, L2-normalised, into z [dim]. */
void det_crop_row(const float *x, const float *mean, int dim, double *z);

/* Embeddings out [n (2n with flip: then the mirrored crops), dim] of the
 * crops of boxes (n x 4: x, y, w, h in pixels of a ref_w x ref_h image) of
 * the image at path, each widened by DET_CROP_PAD and squash-resized to
 * bb's input size. */
eng_status det_crop_embed(const eng_backbone *bb, const char *path, int ref_w, int ref_h,
                          const float *boxes, int n, int flip, int threads, float *out, int dim,
                          eng_diag *d);

/* Fits the crop classifier on rows x [n, dim] with labels y in 0..k-1:
 * mean [dim] and wb [(dim + 1), k]. */
eng_status det_crop_fit(const float *x, const int *y, int n, int dim, int k, float *mean, float *wb,
                        eng_diag *d);

/* Its probabilities p [n, k] for rows x [n, dim]. */
void det_crop_probs(const float *mean, const float *wb, int dim, int k, const float *x, int n,
                    float *p);

/* A confidence s and crop probability p combined at weight g: s^(1-g) p^g. */
float det_crop_score(float s, float p, float g);

/* With m's crop classifier (cbb its backbone): rescores the DET_CROP_TOPK
 * most confident of o[0..*n) (pixels of an img_w x img_h image at path),
 * keeps the rest in their order below them, and sorts by confidence. */
eng_status det_crop_rescore(const eng_detector *m, const eng_backbone *cbb, const char *path,
                            int img_w, int img_h, eng_det_object *o, int *n, int threads,
                            eng_diag *d);

/* A training image as the crop search sees it. */
typedef struct det_crop_image {
    const char *path;
    int w, h; /* the pixels its boxes are in */
    int fold; /* its cross-validation fold */
} det_crop_image;

/* What det_crop_search asks and tells its caller while it embeds the images' crops, the
 * stage's long part (minutes on a few hundred images). Any member may be NULL. */
typedef struct det_crop_hooks {
    void *ctx;
    int (*abort)(void *ctx);                       /* nonzero: stop, ENG_EABORTED */
    void (*progress)(void *ctx, int done, int of); /* before each image: done of `of` planned */
} det_crop_hooks;

/* What det_crop_search measured and chose. */
typedef struct det_crop_result {
    float gamma;        /* chosen weight; 0: the stage does not win */
    double map[3];      /* held-out mAP@50 at weight 0 (as they were), 0.5
                         * and 1; -1 untried */
    double heldout_map; /* at the chosen weight */
    int dim, ncrops;
    int nimg;         /* images whose crops it used: ims[0..nimg) */
    double cpu;       /* CPU seconds the search took */
    float *mean, *wb; /* the classifier fitted on every image (chosen only) */
    /* the box refinement: held-out mAP@50 with it at the chosen weight (-1
     * untried), its penalty, and its weights fitted on every image (when
     * kept; NULL otherwise) */
    double reg_map, reg_lambda;
    double reg_base; /* what it had to beat: mAP@50 at the chosen weight */
    int nreg;        /* detections it was trained on */
    float *reg;
    eng_det_pred *pred; /* the held-out detections rescored (chosen only) */
    int npred;
    char note[160]; /* why it was not tried, when it was not */
} det_crop_result;

/* ---- the crop stage's box refinement (det_boxreg.c) ---- */

/* A box correction: the centre's shift along x and y as shares of the
 * box's width and height, then the log of the width and height ratios. */
#define DET_BOX_T 4
/* detections the refinement learns from overlap a box by at least this */
#define DET_BOXREG_MIN_IOU 0.3

/* t [DET_BOX_T]: the correction that takes box p to box g (x, y, w, h). */
void det_box_target(const double *p, const double *g, float *t);

/* Applies correction t (bounded) to box b (x, y, w, h), clipped to an
 * img_w x img_h image. */
void det_box_apply(const float *t, int img_w, int img_h, float *b);

/* Ridge regressions of corrections t [n, DET_BOX_T] on rows z [n, dim]
 * (det_crop_row's), one per penalty lambda[0..nl): w [nl, dim + 1,
 * DET_BOX_T], weights then biases (not penalised). */
eng_status det_boxreg_fit(const double *z, const float *t, int n, int dim, const double *lambda,
                          int nl, float *w, eng_diag *d);

/* t [DET_BOX_T]: the correction w gives row z [dim]. */
void det_boxreg_predict(const float *w, const double *z, int dim, float *t);

/* The crop classifier's cross-validation: ims[0..n) the training images
 * (detections and boxes name them by index), pred the pooled held-out
 * detections of the chosen heads (calibrated confidences) and gt the boxes.
 * Each fold's classifier is trained on the crops of the other folds'
 * images and scores the fold's detections. A weight is kept when it beats
 * their mAP@50 as they are (map[0]) by det_crop_margin; then the
 * classifier is fitted on every image. It uses the first images of ims
 * whose crops fit in cpu_left CPU seconds and in memory (c->nimg; ims is
 * a random order when that may be fewer than n), at least
 * DET_CROP_MIN_IMAGES of them (or all n), else gives up (note set, gamma
 * 0). nms_iou: the detector's NMS (0: off), run again on boxes the
 * refinement moved. h (may be NULL) is polled before each image. */
eng_status det_crop_search(const eng_backbone *cbb, const det_crop_image *ims, int n, int nfolds,
                           int ncat, const eng_det_gt *gt, int ngt, const eng_det_pred *pred,
                           int npred, float nms_iou, double cpu_left, int threads,
                           const det_crop_hooks *h, det_crop_result *c, eng_diag *d);
void det_crop_result_release(det_crop_result *c);

/* The calibrated confidence of a heatmap peak. */
float det_confidence(const eng_detector *m, float peak);

/* tp[j] = 1 when pred[j] matches a box of gt at IoU >= 0.5 (COCO's greedy
 * matching by score per image and category), else 0. */
eng_status det_label_tp(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred, int *tp,
                        eng_diag *d);

/* Fits a monotone calibration (Platt: logistic on logit(score), targets
 * smoothed, slope kept in [0.05, 10]) to scores with labels tp. */
void det_calibrate(const double *score, const int *tp, int n, float *a, float *b);

/* Picks among nv variants by held-out mAP@50 (vmap[v][0] NMS off, [1] NMS
 * 0.5; < 0: not tried), simplest first: the best variant (a later one only
 * when it beats the best before it by more than DET_SIMPLER_MARGIN of it), and
 * NMS on unless off beats it by more than DET_NMS_MARGIN. *best -1 when
 * none was tried. */
void det_pick_variant(const double (*vmap)[2], int nv, int *best, int *nms_on);

/* Features of one image (tile -1) or of its tile (det_tile_rect; letterbox
 * must be 0): fdim x DET_CELLS float16 (NHWC), with the image's size in
 * pixels (after EXIF orientation). With cache_dir, read from and written to
 * the feature cache. *hit (may be NULL) says it came from the cache. */
eng_status det_features(const eng_backbone *bb, const char *node, int fdim, int letterbox, int tile,
                        const char *path, const char *cache_dir, int threads, uint16_t *f16,
                        int *img_w, int *img_h, int *hit, eng_diag *d);

/* Scratch for det_heads (sized for one image). */
typedef struct det_scratch {
    float *f; /* fdim x DET_CELLS features (float32, maybe flipped) */
    float *g; /* same size: after the depthwise filter */
    /* flip_average: the mirrored heads' heat [DET_CELLS, ncat] and boxes
     * [DET_CELLS, 4], grown on first use, kept for the next image */
    float *mirror;
    size_t mirror_cap; /* floats */
} det_scratch;

eng_status det_scratch_init(det_scratch *s, int fdim, eng_diag *d);
void det_scratch_release(det_scratch *s);

/* Widens f16 into s->f (mirrored left-right when flip). */
void det_widen(const uint16_t *f16, int fdim, int flip, float *f);

/* s->g = depthwise 3x3 (SAME) of s->f with filter dw [3,3,fdim]. */
void det_depthwise(det_scratch *s, int fdim, const float *dw, int threads);

/* Heatmap probabilities heat [DET_CELLS, ncat] and box distances wh
 * [DET_CELLS, 4] of one image's features. */
eng_status det_heads(const eng_detector *m, const uint16_t *f16, int threads, det_scratch *s,
                     float *heat, float *wh, eng_diag *d);

/* Input pixels per image pixel along x and y. */
void det_scale(int letterbox, int img_w, int img_h, float *fx, float *fy);

/* Objects of one image from its features, in image pixels. */
int det_objects(const eng_detector *m, const float *heat, const float *wh, int img_w, int img_h,
                eng_det_object *out);

/* The metrics JSON of predictions against ground truth. */
typedef struct det_eval_extra {
    const char *evaluated_on;
    int image_count;
    double cost_minutes;     /* < 0: left out */
    const char *stop_reason; /* NULL: left out */
} det_eval_extra;

eng_status det_metrics(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred, int ncat,
                       const char *const *cats, const det_eval_extra *x, double map50_out[1],
                       char **json, eng_diag *d);

eng_status det_predictions_json(const eng_det_pred *pred, int npred, const long long *cat_ids,
                                char **out, eng_diag *d);

/* Trains m's 1x1 heads (m's depthwise filters and box head as the start)
 * on features given directly, for tests: boxes[i] holds nbox[i] x (x1, y1,
 * x2, y2) in input pixels, cats[i] their categories. */
typedef struct det_fit_args {
    const uint16_t *const *feats;
    const float *const *boxes;
    const int *const *cats;
    const int *nbox;
    int n;
    int finetune_wh;
    int hidden;
    float lr;
    int epochs;
    int threads;
    uint64_t seed;
    double budget_seconds; /* > 0: CPU seconds the fit may take */
    int steps_done;        /* out: steps run */
    int steps_planned;     /* out: steps the recipe wanted */
} det_fit_args;

eng_status det_fit_heads(det_fit_args *f, eng_detector *m, float *last_loss, eng_diag *d);

/* float32 <-> float16 (round to nearest even). */
void det_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void det_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/* eng_det_evaluate with a feature cache (may be NULL). */
eng_status det_evaluate(const eng_detector *m, eng_backbone *const *backbones, int nbackbones,
                        const eng_sample *s, int n, const eng_eval_opts *o, const char *cache_dir,
                        char **metrics_json, char **predictions_json, eng_diag *d);

/* Finds the backbone with detection features; ENG_ENOTFOUND otherwise. */
eng_status det_pick_backbone(eng_backbone *const *bbs, int n, const char *name,
                             const char *checksum, eng_backbone **out, eng_diag *d);

#endif
