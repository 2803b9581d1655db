/* detection.h: COCO-style mean average precision for boxes on plain arrays.
 *
 * The numbers are those pycocotools' COCOeval gives for iouType "bbox",
 * area range "all", iscrowd 0 (see detection.c for the exact rules). No
 * tensors, no runtime: callers pass arrays of boxes with an image id each.
 */
#ifndef VFS_ENGINE_METRICS_DETECTION_H
#define VFS_ENGINE_METRICS_DETECTION_H

#include "core.h"

/* One ground-truth box. bbox is [x, y, w, h] in pixels (w, h >= 0). */
typedef struct eng_det_gt {
    long long image; /* any image id; boxes of one image share it */
    int category;    /* 0 .. ncat-1 */
    double bbox[4];
} eng_det_gt;

/* One predicted box with its confidence. */
typedef struct eng_det_pred {
    long long image;
    int category;
    double bbox[4];
    double score;
} eng_det_pred;

/* COCO's default: at most 100 detections per image and category. */
#define ENG_DET_MAX_DETS 100

/* Mean average precision at IoU threshold `iou` (e.g. 0.3, 0.5, 0.75).
 * OUT *map: mean of the per-category AP over categories that have at least
 * one ground-truth box; -1 when no category has any.
 * OUT per_cat (may be NULL; else ncat doubles): AP of each category, or -1
 * for a category without ground truth (pycocotools' convention; such a
 * category's predictions do not count anywhere).
 * Arrays are borrowed for the call. Returns ENG_EINVAL (with the offending
 * index in d) for a category outside 0..ncat-1, a negative or non-finite box,
 * a non-finite score, or a threshold outside (0, 1]. */
eng_status eng_det_map(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred, int ncat,
                       double iou, double *map, double *per_cat, eng_diag *d);

/* Same with an explicit per-image-per-category detection cap (max_dets >= 1)
 * and several thresholds at once: map[i] and per_cat[i * ncat + k] for
 * ious[i]. per_cat may be NULL. */
eng_status eng_det_map_ex(const eng_det_gt *gt, int ngt, const eng_det_pred *pred, int npred,
                          int ncat, const double *ious, int nious, int max_dets, double *map,
                          double *per_cat, eng_diag *d);

/* IoU of two [x, y, w, h] boxes as pycocotools computes it (0 when they do
 * not overlap). */
double eng_det_iou(const double *a, const double *b);

#endif
