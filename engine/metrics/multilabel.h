/* multilabel.h: multilabel classification metrics on plain arrays (one
 * independent score per image and tag, the true tags, a threshold per tag).
 *
 * Names follow Azure Custom Vision's iteration performance (perTagPerformance
 * {precision, recall, averagePrecision}, and the same three overall):
 * - averagePrecision of a tag: eng_average_precision (classification.h) of
 *   its scores over all images, images with the tag positive; -1 (left out)
 *   when no image has the tag.
 * - averagePrecision overall = mean average precision: the mean over tags
 *   that have at least one image.
 * - precision / recall of a tag at its threshold t: an image is predicted
 *   to carry the tag when its score >= t; precision = TP / (TP + FP) (0
 *   when nothing is predicted), recall = TP / (TP + FN) (-1, left out, when
 *   no image has the tag).
 * - precision / recall overall: the same counts summed over every (image,
 *   tag) pair (micro average).
 */
#ifndef VFS_ENGINE_METRICS_MULTILABEL_H
#define VFS_ENGINE_METRICS_MULTILABEL_H

#include "classification.h"

typedef struct eng_ml_metrics {
    int n, ncat;
    double map, precision, recall;
    double *tag_ap, *tag_precision, *tag_recall; /* ncat each; -1: undefined */
    int *tag_images;                             /* ncat: images carrying the tag */
} eng_ml_metrics;

/* scores and truth are n x ncat row-major (truth nonzero: the image carries
 * the tag); thresholds ncat. Errors: ENG_EINVAL (n or ncat < 1, a score that
 * is not finite: the image is named by index), ENG_ENOMEM. On error *out is
 * zeroed. */
eng_status eng_ml_metrics_compute(const float *scores, const uint8_t *truth,
                                  const float *thresholds, int n, int ncat, eng_ml_metrics *out,
                                  eng_diag *d);
void eng_ml_metrics_release(eng_ml_metrics *m);

/* The threshold that maximises F1 = 2 TP / (2 TP + FP + FN) of one tag
 * (scores[i * stride] of image i, positive[i] nonzero when it has the tag):
 * halfway between the lowest score taken and the next lower score (the
 * lowest score itself when every image is taken); the highest threshold
 * among equal F1. Without positive images: 0.5. */
float eng_ml_best_threshold(const float *scores, int stride, const uint8_t *positive, int n);

/* The metrics as JSON: averagePrecision, precision, recall, tagPerformance
 * {NAME: {averagePrecision, precision, recall, threshold, imageCount}}
 * (tags without images left out) and from extra (may be NULL):
 * evaluatedOn {dataset, imageCount}, trainingCostInMinutes, stopReason.
 * *json: new string, free(). */
eng_status eng_ml_metrics_json(const eng_ml_metrics *m, const char *const *tags,
                               const float *thresholds, const eng_eval_extra *extra, char **json,
                               eng_diag *d);

#endif
