/* report_int.h: what report.c (analysis, HTML) and report_png.c (raster
 * plots) share: the numbers both draw, computed once. */
#ifndef VFS_ENGINE_REPORT_INT_H
#define VFS_ENGINE_REPORT_INT_H

#include "image.h"
#include "report.h"

#define RPT_CAL_BINS 10
#define RPT_IOU 0.5

/* One precision-recall curve: np points (recall, precision) in score order. */
typedef struct rpt_curve {
    int np, npos;
    float *recall, *precision;
    double ap; /* non-interpolated, from this curve; -1 without positives */
} rpt_curve;

typedef struct rpt {
    const eng_eval_detail *dt;
    int K;            /* categories */
    int R;            /* confusion rows/columns: K, or K + 1 for detectors */
    int has_conf;     /* 0: no confusion (multilabel) */
    long long *conf;  /* R x R, row true, column predicted */
    double threshold; /* detectors: the score threshold of the confusion */
    rpt_curve *pr;    /* K */
    int cal_n[RPT_CAL_BINS];
    double cal_conf[RPT_CAL_BINS], cal_acc[RPT_CAL_BINS]; /* means per bin */
    /* detectors, at the threshold: per prediction 1 correct, 0 false alarm,
     * -1 below threshold; per ground truth box 1 found, 0 missed */
    signed char *pred_ok, *gt_found;
    int *pred_img, *gt_img; /* index of the image of each box (-1: unknown id) */
} rpt;

/* Row/column names: the category, or "background"/"missed" for the extra. */
const char *rpt_row_name(const rpt *r, int i);
const char *rpt_col_name(const rpt *r, int j);
/* Curve colour k of K (distinct hues). */
void rpt_colour(int k, int K, uint8_t rgb[3]);

/* Cell (i, j) of the confusion, as both drawings show it: its count, its
 * heat-map colour (white to deep blue by its share of row i), and that share
 * (returned; 0 for an empty row). */
double rpt_cell(const rpt *r, int i, int j, long long *count, uint8_t rgb[3]);

eng_status rpt_confusion_png(const rpt *r, uint8_t **out, size_t *len, eng_diag *d);
eng_status rpt_pr_png(const rpt *r, uint8_t **out, size_t *len, eng_diag *d);

#endif
