/* detail.h: the per-image data of one evaluation, as plain arrays, for
 * whatever looks at an evaluation more closely than its numbers (the
 * evaluation report, engine/report/).
 *
 * Design: one shape for every kind of model. Per-category data is generic:
 * a score and a truth flag per image and category, so a classifier (one
 * truth per image) and a multilabel model (any number) fill the same
 * arrays; a detector fills boxes instead. Everything is borrowed by the
 * callback that receives it; eng_eval_detail_copy makes an owned copy.
 */
#ifndef VFS_ENGINE_METRICS_DETAIL_H
#define VFS_ENGINE_METRICS_DETAIL_H

#include "core.h"
#include "detection.h"

#include <stdint.h>

typedef struct eng_eval_detail {
    int detection;  /* 1: boxes (gt, pred); 0: per-category scores and truths */
    int multilabel; /* 0: exactly one truth per image (top-1 and a confusion apply) */
    int n, ncat;
    const char *const *categories; /* ncat names */
    const char *const *paths;      /* n image files */
    const long long *ids;          /* n image ids (what gt/pred .image hold) */
    const int *widths, *heights;   /* n sizes the boxes refer to (0: the file's) */
    const float *scores;           /* n x ncat (per-category data; NULL for boxes) */
    const uint8_t *truth;          /* n x ncat, nonzero: the image has that category */
    const eng_det_gt *gt;          /* boxes; .image is an id of ids */
    int ngt;
    const eng_det_pred *pred;
    int npred;
} eng_eval_detail;

/* Receives the detail at the end of an evaluation (borrowed for the call). */
typedef void (*eng_eval_detail_fn)(void *ctx, const eng_eval_detail *dt);

/* A deep copy of src; NULL when out of memory. Free with eng_eval_detail_free. */
eng_eval_detail *eng_eval_detail_copy(const eng_eval_detail *src);
void eng_eval_detail_free(eng_eval_detail *dt);

#endif
