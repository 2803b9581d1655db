/* kernels_misc.c: the memory-bound kernels: max pooling, bilinear resize,
 * spatial mean, activations, softmax.
 *
 * Design: loops over NHWC keep the channel dimension innermost so the
 * compiler vectorises it; work is split over output rows. Coordinates of
 * the bilinear resize follow TensorFlow's ResizeBilinear exactly (including
 * the order of the two interpolations) so results match the reference
 * runtime to the last bits where possible. The mean accumulates in double.
 */
#include "runtime_int.h"
#include "simd_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int nthreads(int t) { return t < 1 ? 1 : t; }

void eng_maxpool2d(const eng_conv_geom *g, const float *in, float *out, int threads)
{
    const int64_t rows = (int64_t)g->n * g->oh;
    const int C = g->cin;
    int nt = nthreads(threads);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int n = (int)(row / g->oh), oy = (int)(row % g->oh);
        for (int ox = 0; ox < g->ow; ox++) {
            float *o = out + (row * g->ow + ox) * C;
            for (int c = 0; c < C; c++)
                o[c] = -FLT_MAX;
            int any = 0;
            for (int ky = 0; ky < g->kh; ky++) {
                int iy = oy * g->sh - g->pad_top + ky * g->dh;
                if (iy < 0 || iy >= g->ih)
                    continue;
                for (int kx = 0; kx < g->kw; kx++) {
                    int ix = ox * g->sw - g->pad_left + kx * g->dw;
                    if (ix < 0 || ix >= g->iw)
                        continue;
                    const float *p = in + (((int64_t)n * g->ih + iy) * g->iw + ix) * C;
                    for (int c = 0; c < C; c++)
                        o[c] = p[c] > o[c] ? p[c] : o[c];
                    any = 1;
                }
            }
            if (!any)
                memset(o, 0, (size_t)C * sizeof(float));
        }
    }
}

/* source coordinate of output index i */
static void resize_coord(int i, int in_size, double scale, int half_pixel, int *lo, int *hi,
                         float *frac)
{
    double src = half_pixel ? ((double)i + 0.5) * scale - 0.5 : (double)i * scale;
    double fl = floor(src);
    int l = (int)fl, h = (int)ceil(src);
    *lo = l < 0 ? 0 : l > in_size - 1 ? in_size - 1 : l;
    *hi = h > in_size - 1 ? in_size - 1 : h < 0 ? 0 : h;
    *frac = (float)(src - fl);
}

void eng_resize_bilinear(const float *in, int n, int ih, int iw, int c, float *out, int oh, int ow,
                         int align_corners, int half_pixel_centers, int threads)
{
    double sy = (align_corners && oh > 1) ? (double)(ih - 1) / (oh - 1) : (double)ih / oh;
    double sx = (align_corners && ow > 1) ? (double)(iw - 1) / (ow - 1) : (double)iw / ow;
    int *xl = malloc((size_t)ow * 2 * sizeof(int));
    float *xf = malloc((size_t)ow * sizeof(float));
    if (!xl || !xf) { /* tiny buffers; fall back to computing per pixel */
        free(xl);
        free(xf);
        xl = NULL;
        xf = NULL;
    } else {
        for (int x = 0; x < ow; x++)
            resize_coord(x, iw, sx, half_pixel_centers, &xl[2 * x], &xl[2 * x + 1], &xf[x]);
    }
    const int64_t rows = (int64_t)n * oh;
    int nt = nthreads(threads);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int b = (int)(row / oh), y = (int)(row % oh);
        int y0, y1;
        float fy;
        resize_coord(y, ih, sy, half_pixel_centers, &y0, &y1, &fy);
        const float *r0 = in + ((int64_t)b * ih + y0) * iw * c;
        const float *r1 = in + ((int64_t)b * ih + y1) * iw * c;
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            float fx;
            if (xl) {
                x0 = xl[2 * x], x1 = xl[2 * x + 1], fx = xf[x];
            } else {
                resize_coord(x, iw, sx, half_pixel_centers, &x0, &x1, &fx);
            }
            const float *tl = r0 + (int64_t)x0 * c, *tr = r0 + (int64_t)x1 * c;
            const float *bl = r1 + (int64_t)x0 * c, *br = r1 + (int64_t)x1 * c;
            float *o = out + (row * ow + x) * c;
            for (int k = 0; k < c; k++) {
                float top = tl[k] + (tr[k] - tl[k]) * fx;
                float bot = bl[k] + (br[k] - bl[k]) * fx;
                o[k] = top + (bot - top) * fy;
            }
        }
    }
    free(xl);
    free(xf);
}

void eng_mean_hw(const float *in, int n, int h, int w, int c, float *out, int threads)
{
    int nt = nthreads(threads);
    if (nt > n)
        nt = n;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        double *acc = malloc((size_t)c * sizeof(double));
#pragma omp for schedule(static)
        for (int b = 0; b < n; b++) {
            const float *p = in + (int64_t)b * h * w * c;
            if (!acc) { /* out of memory: slower column sums */
                for (int k = 0; k < c; k++) {
                    double s = 0;
                    for (int64_t i = 0; i < (int64_t)h * w; i++)
                        s += p[i * c + k];
                    out[(int64_t)b * c + k] = (float)(s / ((double)h * w));
                }
                continue;
            }
            for (int k = 0; k < c; k++)
                acc[k] = 0;
            for (int64_t i = 0; i < (int64_t)h * w; i++)
                for (int k = 0; k < c; k++)
                    acc[k] += p[i * c + k];
            for (int k = 0; k < c; k++)
                out[(int64_t)b * c + k] = (float)(acc[k] / ((double)h * w));
        }
        free(acc);
    }
}

void eng_act_apply(float *x, int64_t len, eng_act act, int threads)
{
    int nt = nthreads(threads);
    if (len < 65536)
        nt = 1;
    switch (act) {
    case ENG_ACT_RELU:
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (int64_t i = 0; i < len; i++)
            x[i] = x[i] > 0 ? x[i] : 0;
        break;
    case ENG_ACT_RELU6:
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (int64_t i = 0; i < len; i++)
            x[i] = x[i] < 0 ? 0 : x[i] > 6 ? 6 : x[i];
        break;
    case ENG_ACT_SIGMOID: {
        int64_t n8 = len / 8;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (int64_t i = 0; i < n8; i++)
            _mm256_storeu_ps(x + 8 * i, rt_sigmoid8(_mm256_loadu_ps(x + 8 * i)));
        for (int64_t i = n8 * 8; i < len; i++)
            x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    }
    case ENG_ACT_HSWISH:
    case ENG_ACT_HSWISH_F16: {
        const float c = act == ENG_ACT_HSWISH ? 1.0f / 6.0f : 0.1666259765625f;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (int64_t i = 0; i < len; i++) {
            float r = x[i] + 3.0f;
            r = r < 0 ? 0 : r > 6 ? 6 : r;
            x[i] = (x[i] * c) * r;
        }
        break;
    }
    default: break;
    }
}

void eng_softmax_rows(float *x, int64_t rows, int64_t cols, int threads)
{
    int nt = nthreads(threads);
    if (rows * cols < 65536)
        nt = 1;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *p = x + r * cols;
        float mx = -INFINITY;
        for (int64_t i = 0; i < cols; i++)
            mx = p[i] > mx ? p[i] : mx;
        double s = 0;
        for (int64_t i = 0; i < cols; i++) {
            p[i] = expf(p[i] - mx);
            s += p[i];
        }
        for (int64_t i = 0; i < cols; i++)
            p[i] = (float)(p[i] / s);
    }
}
