/* report.h: the evaluation report: one self-contained HTML page and two PNG
 * plots (confusion matrix, precision-recall curves) of one evaluation.
 *
 * Design: everything comes from plain data: the evaluation's metrics JSON
 * (SPEC section 5 names) and its per-image detail (metrics/detail.h). The
 * page needs nothing from outside: inline CSS, SVG charts, thumbnails as
 * data: URIs of small JPEGs (image/). Every name from the data is escaped.
 * Per-category data is read generically (a score and a truth per image and
 * category), so any kind of model that fills eng_eval_detail gets a report.
 *
 * What the page holds: the headline metrics; the confusion matrix as a heat
 * map (single-label classifiers: true x predicted top-1; detectors: true x
 * predicted with a "background" row for false alarms and a "missed" column,
 * boxes matched at IoU 0.5 above the score threshold with the best F1); a
 * precision-recall curve per category (one SVG each); the calibration
 * (reliability) curve; the worst mistakes as thumbnails.
 *
 * PNG sizes (for scripts): confusion.png is (170 + R*44) x (170 + R*44)
 * where R is the number of rows (categories; detectors one more); pr.png is
 * 720 x 480.
 */
#ifndef VFS_ENGINE_REPORT_H
#define VFS_ENGINE_REPORT_H

#include "core.h"
#include "detail.h"

#include <stddef.h>
#include <stdint.h>

#define ENG_REPORT_CELL 44
#define ENG_REPORT_MARGIN 170
#define ENG_REPORT_PR_W 720
#define ENG_REPORT_PR_H 480
/* Most thumbnails of mistakes on a page. */
#define ENG_REPORT_MAX_MISTAKES 12

typedef struct eng_report {
    char *html; /* NUL-terminated */
    size_t html_len;
    uint8_t *confusion_png;
    size_t confusion_len;
    uint8_t *pr_png;
    size_t pr_len;
} eng_report;

/* Builds the report. dt may be NULL (the evaluation kept no per-image data:
 * the page says so and shows the metrics alone); metrics_json may be NULL;
 * title is shown as the page's heading (escaped). An image that cannot be
 * read becomes a placeholder, not an error. Errors: ENG_ENOMEM. *out is
 * zeroed first; release with eng_report_release. */
eng_status eng_report_build(const eng_eval_detail *dt, const char *metrics_json, const char *title,
                            eng_report *out, eng_diag *d);
void eng_report_release(eng_report *r);

#endif
