/* det_boxreg.c: the crop stage's box refinement. The heatmap places a
 * box's centre well, but its size comes from a head trained on a few
 * images or from the category's mean size, so many boxes overlap their
 * object by 0.3-0.5 of IoU and miss at 0.5. The crop embedding that names
 * the object also sees its edges (the crop has context around the box):
 * a ridge regression from it to the box's correction, in R-CNN's terms
 * (centre shift as a share of the side, log of the size ratio), fixes
 * part of that. det_crops.c trains it on the held-out detections that
 * overlap a box and keeps it only when it raises the held-out mAP@50.
 */
#include "det_int.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's Cholesky solve, in libopenblas (Debian ships no LAPACKE header
 * with it): A X = B for symmetric positive definite A, column-major. */
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info);

void det_box_target(const double *p, const double *g, float *t)
{
    double pw = p[2] > 1 ? p[2] : 1, ph = p[3] > 1 ? p[3] : 1;
    double gw = g[2] > 1 ? g[2] : 1, gh = g[3] > 1 ? g[3] : 1;
    t[0] = (float)((g[0] + gw / 2 - p[0] - pw / 2) / pw);
    t[1] = (float)((g[1] + gh / 2 - p[1] - ph / 2) / ph);
    t[2] = (float)log(gw / pw);
    t[3] = (float)log(gh / ph);
}

/* A correction is applied within these bounds: a crop that sees half of
 * an object cannot say where the rest is. */
#define SHIFT_MAX 0.5f
#define LOG_MAX 0.7f

static float clampf(float v, float m) { return v > m ? m : v < -m ? -m : v; }

void det_box_apply(const float *t, int img_w, int img_h, float *b)
{
    float w = b[2] > 1 ? b[2] : 1, h = b[3] > 1 ? b[3] : 1;
    float cx = b[0] + w / 2 + clampf(t[0], SHIFT_MAX) * w;
    float cy = b[1] + h / 2 + clampf(t[1], SHIFT_MAX) * h;
    w *= expf(clampf(t[2], LOG_MAX));
    h *= expf(clampf(t[3], LOG_MAX));
    float x1 = cx - w / 2, y1 = cy - h / 2, x2 = cx + w / 2, y2 = cy + h / 2;
    x1 = x1 < 0 ? 0 : x1;
    y1 = y1 < 0 ? 0 : y1;
    x2 = img_w > 0 && x2 > (float)img_w ? (float)img_w : x2;
    y2 = img_h > 0 && y2 > (float)img_h ? (float)img_h : y2;
    b[0] = x1;
    b[1] = y1;
    b[2] = x2 > x1 + 1 ? x2 - x1 : 1;
    b[3] = y2 > y1 + 1 ? y2 - y1 : 1;
}

eng_status det_boxreg_fit(const double *z, const float *t, int n, int dim, const double *lambda,
                          int nl, float *w, eng_diag *d)
{
    const int m = dim + 1; /* the features and a constant for the bias */
    double *za = malloc(((size_t)n + 1) * m * sizeof *za);
    double *ta = malloc(((size_t)n + 1) * DET_BOX_T * sizeof *ta);
    double *g = malloc((size_t)m * m * sizeof *g);
    double *l = malloc((size_t)m * m * sizeof *l);
    double *b = malloc((size_t)m * DET_BOX_T * sizeof *b);
    double *y = malloc((size_t)m * DET_BOX_T * sizeof *y);
    eng_status st = ENG_OK;
    if (n <= 0)
        st = eng_fail(d, ENG_EINVAL, "detector: no boxes to refine on");
    else if (!za || !ta || !g || !l || !b || !y)
        st = eng_fail(d, ENG_ENOMEM, "detector: out of memory");
    if (st == ENG_OK) {
        for (int i = 0; i < n; i++) {
            memcpy(za + (size_t)i * m, z + (size_t)i * dim, (size_t)dim * sizeof *za);
            za[(size_t)i * m + dim] = 1;
            for (int q = 0; q < DET_BOX_T; q++)
                ta[(size_t)i * DET_BOX_T + q] = t[(size_t)i * DET_BOX_T + q];
        }
        /* the normal equations' two sides, once for every lambda */
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, m, n, 1.0, za, m, 0.0, g, m);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, DET_BOX_T, n, 1.0, za, m, ta,
                    DET_BOX_T, 0.0, b, DET_BOX_T);
    }
    for (int k = 0; k < nl && st == ENG_OK; k++) {
        memcpy(l, g, (size_t)m * m * sizeof *l);
        for (int j = 0; j < dim; j++) /* the bias is not penalised */
            l[(size_t)j * m + j] += lambda[k];
        /* (G + lambda I) W = B by OpenBLAS's LAPACK: column-major, so the
         * lower triangle dsyrk filled by rows is the upper one by columns,
         * and B's columns are the rows of y */
        for (int j = 0; j < m; j++)
            for (int q = 0; q < DET_BOX_T; q++)
                y[(size_t)q * m + j] = b[(size_t)j * DET_BOX_T + q];
        int nrhs = DET_BOX_T, info = 0;
        dposv_("U", &m, &nrhs, l, &m, y, &m, &info);
        if (info != 0) {
            st = eng_fail(d, ENG_EINVAL, "detector: box refinement did not fit");
            break;
        }
        for (int j = 0; j < m; j++)
            for (int q = 0; q < DET_BOX_T; q++)
                w[((size_t)k * m + j) * DET_BOX_T + q] = (float)y[(size_t)q * m + j];
    }
    free(za);
    free(ta);
    free(g);
    free(l);
    free(b);
    free(y);
    return st;
}

void det_boxreg_predict(const float *w, const double *z, int dim, float *t)
{
    const float *bias = w + (size_t)dim * DET_BOX_T;
    for (int q = 0; q < DET_BOX_T; q++) {
        double s = bias[q];
        for (int j = 0; j < dim; j++)
            s += z[j] * w[(size_t)j * DET_BOX_T + q];
        t[q] = (float)s;
    }
}
