/* classification.h: classifier metrics on plain arrays (scores and labels).
 *
 * Names and meanings follow SPEC section 5 (Azure's modelPerformance):
 * - accuracyTop1 / accuracyTop5: fraction of images whose true category is
 *   among the 1 / 5 highest scores (ties broken towards the lower category
 *   index, so a tie never counts twice); with 5 or fewer categories top-5 is 1.
 * - averagePrecision: mean over categories (that have at least one image) of
 *   the non-interpolated average precision of that category's scores over all
 *   images: sum over score thresholds of (recall step) x precision, tied
 *   scores forming one threshold (the rule scikit-learn's
 *   average_precision_score uses).
 * - calibrationECE: expected calibration error of the top-1 confidence with 15
 *   equal-width bins over [0, 1] (bin b holds confidences in (b/15, (b+1)/15],
 *   bin 0 also holds 0): sum over bins of (count/N) * |accuracy - mean confidence|.
 * - tagPerformance: per category, accuracy = fraction of that category's
 *   images predicted as it (per-class recall) and averagePrecision50 = the
 *   category's average precision as above (IoU does not apply to classifiers).
 * - confusionMatrix: counts[true][predicted] (top-1).
 * Scores need not be normalised; calibrationECE uses them as probabilities
 * and clamps to [0, 1].
 */
#ifndef VFS_ENGINE_METRICS_CLASSIFICATION_H
#define VFS_ENGINE_METRICS_CLASSIFICATION_H

#include "core.h"

#define ENG_ECE_BINS 15

/* Result of eng_cls_metrics_compute. Release with eng_cls_metrics_release. */
typedef struct eng_cls_metrics {
    int n, ncat;
    double top1, top5, average_precision, ece;
    double *tag_accuracy; /* ncat; -1 for a category without images */
    double *tag_ap;       /* ncat; -1 for a category without images */
    int *confusion;       /* ncat * ncat, row = true category, column = predicted */
} eng_cls_metrics;

/* Computes all metrics for n images: scores is n x ncat row-major (borrowed),
 * labels[i] in 0..ncat-1. n >= 1, ncat >= 1. Errors: ENG_EINVAL (label out of
 * range, non-finite score: the image index is named), ENG_ENOMEM. On error
 * *out is zeroed. */
eng_status eng_cls_metrics_compute(const float *scores, const int *labels, int n, int ncat,
                                   eng_cls_metrics *out, eng_diag *d);
void eng_cls_metrics_release(eng_cls_metrics *m);

/* Average precision of one category: scores[i * stride] is image i's score,
 * positive[i] nonzero when image i belongs to it. Returns -1 when no image is
 * positive. */
double eng_average_precision(const float *scores, int stride, const int *positive, int n);

/* Expected calibration error with ENG_ECE_BINS bins; confidence[i] is the
 * top-1 confidence, correct[i] nonzero when the top-1 guess is right. */
double eng_calibration_ece(const float *confidence, const int *correct, int n);

/* Index of the highest score of row (ties: lowest index). */
int eng_argmax(const float *row, int ncat);

/* Extra fields of an evaluation report (SPEC section 5). Any string may be
 * NULL and cost < 0 to leave that field out. */
typedef struct eng_eval_extra {
    const char *evaluated_on; /* test dataset name or "held-out split" */
    int image_count;          /* images evaluated */
    double training_cost_minutes;
    const char *stop_reason;
} eng_eval_extra;

/* Writes the metrics as a JSON object with SPEC section 5's names:
 * accuracyTop1, accuracyTop5, averagePrecision, calibrationECE,
 * tagPerformance {NAME: {accuracy, averagePrecision50}}, confusionMatrix
 * {labels: [..], matrix: [[..]]} (rows true, columns predicted), and from
 * extra (may be NULL): evaluatedOn {dataset, imageCount},
 * trainingCostInMinutes, stopReason. Categories without images are left out
 * of tagPerformance. *json: new NUL-terminated string, free with free(). */
eng_status eng_cls_metrics_json(const eng_cls_metrics *m, const char *const *categories,
                                const eng_eval_extra *extra, char **json, eng_diag *d);

#endif
