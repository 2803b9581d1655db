/* kernels_misc.c: the memory-bound kernels: max pooling, bilinear resize,
 * spatial mean, activations, softmax.
 *
 * Design: loops over NHWC keep the channel dimension innermost so the
 * compiler vectorises it; work is split over output rows. Coordinates of
 * the bilinear resize follow TensorFlow's ResizeBilinear exactly (including
 * the order of the two interpolations) so results match the reference
 * runtime to the last bits where possible. The mean accumulates in double.
 */
#include "pool.h"
#include "runtime_int.h"
#include "simd_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct maxpool_job {
    const eng_conv_geom *g;
    const float *in;
    float *out;
} maxpool_job;

static void maxpool_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const maxpool_job *j = ctx;
    const eng_conv_geom *g = j->g;
    const float *in = j->in;
    float *out = j->out;
    const int C = g->cin;
    for (int64_t row = lo; row < hi; row++) {
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

void eng_maxpool2d(const eng_conv_geom *g, const float *in, float *out, int threads)
{
    const int64_t rows = (int64_t)g->n * g->oh;
    maxpool_job j = {g, in, out};
    rt_parallel_for(threads, rows, rt_grain(rows, threads, 4), maxpool_rows, &j);
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

typedef struct resize_job {
    const float *in;
    float *out;
    int ih, iw, c, oh, ow, half_pixel;
    double sy, sx;
    const int *xl; /* per output column: its two source columns, or NULL */
    const float *xf;
} resize_job;

static void resize_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const resize_job *j = ctx;
    const int ih = j->ih, iw = j->iw, c = j->c, oh = j->oh, ow = j->ow;
    for (int64_t row = lo; row < hi; row++) {
        int b = (int)(row / oh), y = (int)(row % oh);
        int y0, y1;
        float fy;
        resize_coord(y, ih, j->sy, j->half_pixel, &y0, &y1, &fy);
        const float *r0 = j->in + ((int64_t)b * ih + y0) * iw * c;
        const float *r1 = j->in + ((int64_t)b * ih + y1) * iw * c;
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            float fx;
            if (j->xl) {
                x0 = j->xl[2 * x], x1 = j->xl[2 * x + 1], fx = j->xf[x];
            } else {
                resize_coord(x, iw, j->sx, j->half_pixel, &x0, &x1, &fx);
            }
            const float *tl = r0 + (int64_t)x0 * c, *tr = r0 + (int64_t)x1 * c;
            const float *bl = r1 + (int64_t)x0 * c, *br = r1 + (int64_t)x1 * c;
            float *o = j->out + (row * ow + x) * c;
            for (int k = 0; k < c; k++) {
                float top = tl[k] + (tr[k] - tl[k]) * fx;
                float bot = bl[k] + (br[k] - bl[k]) * fx;
                o[k] = top + (bot - top) * fy;
            }
        }
    }
}

void eng_resize_bilinear(const float *in, int n, int ih, int iw, int c, float *out, int oh, int ow,
                         int align_corners, int half_pixel_centers, int threads)
{
    resize_job j = {.in = in,
                    .out = out,
                    .ih = ih,
                    .iw = iw,
                    .c = c,
                    .oh = oh,
                    .ow = ow,
                    .half_pixel = half_pixel_centers,
                    .sy = (align_corners && oh > 1) ? (double)(ih - 1) / (oh - 1) : (double)ih / oh,
                    .sx =
                        (align_corners && ow > 1) ? (double)(iw - 1) / (ow - 1) : (double)iw / ow};
    int *xl = malloc((size_t)ow * 2 * sizeof(int));
    float *xf = malloc((size_t)ow * sizeof(float));
    if (xl && xf) { /* else (tiny buffers): computed per pixel */
        for (int x = 0; x < ow; x++)
            resize_coord(x, iw, j.sx, half_pixel_centers, &xl[2 * x], &xl[2 * x + 1], &xf[x]);
        j.xl = xl;
        j.xf = xf;
    }
    const int64_t rows = (int64_t)n * oh;
    rt_parallel_for(threads, rows, rt_grain(rows, threads, 4), resize_rows, &j);
    free(xl);
    free(xf);
}

typedef struct mean_job {
    const float *in;
    float *out;
    int64_t hw;
    int c, blocks; /* blocks of MEAN_BLOCK channels per image */
} mean_job;

/* Channels summed per pass over an image: 32 doubles are eight AVX2
 * accumulators, kept in registers for the whole pass (a pass over all the
 * channels would load and store each one per pixel). Each channel still
 * adds its pixels in order, so the sums do not depend on the blocking or
 * on the threads. */
#define MEAN_BLOCK 32

/* items: (image, channel block) pairs */
static void mean_blocks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const mean_job *j = ctx;
    const int c = j->c;
    const int64_t hw = j->hw;
    for (int64_t it = lo; it < hi; it++) {
        int64_t b = it / j->blocks;
        int k0 = (int)(it % j->blocks) * MEAN_BLOCK;
        const float *p = j->in + b * hw * c + k0;
        float *o = j->out + b * c + k0;
        int kn = c - k0 < MEAN_BLOCK ? c - k0 : MEAN_BLOCK;
        double acc[MEAN_BLOCK] = {0};
        if (kn == MEAN_BLOCK) {
            __m256d a[MEAN_BLOCK / 4];
            for (int q = 0; q < MEAN_BLOCK / 4; q++)
                a[q] = _mm256_setzero_pd();
            for (int64_t i = 0; i < hw; i++, p += c)
                for (int q = 0; q < MEAN_BLOCK / 4; q++)
                    a[q] = _mm256_add_pd(a[q], _mm256_cvtps_pd(_mm_loadu_ps(p + 4 * q)));
            for (int q = 0; q < MEAN_BLOCK / 4; q++)
                _mm256_storeu_pd(acc + 4 * q, a[q]);
        } else {
            for (int64_t i = 0; i < hw; i++, p += c)
                for (int k = 0; k < kn; k++)
                    acc[k] += p[k];
        }
        for (int k = 0; k < kn; k++)
            o[k] = (float)(acc[k] / (double)hw);
    }
}

void eng_mean_hw(const float *in, int n, int h, int w, int c, float *out, int threads)
{
    int blocks = (c + MEAN_BLOCK - 1) / MEAN_BLOCK;
    mean_job j = {in, out, (int64_t)h * w, c, blocks};
    int64_t items = (int64_t)n * blocks;
    rt_parallel_for(threads, items, 1, mean_blocks, &j);
}

typedef struct act_job {
    float *x;
    eng_act act;
} act_job;

/* x[lo, hi) through the activation; lo is a multiple of 8 (the grain is) */
static void act_span(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const act_job *j = ctx;
    float *x = j->x;
    switch (j->act) {
    case ENG_ACT_RELU:
        for (int64_t i = lo; i < hi; i++)
            x[i] = x[i] > 0 ? x[i] : 0;
        break;
    case ENG_ACT_RELU6:
        for (int64_t i = lo; i < hi; i++)
            x[i] = x[i] < 0 ? 0 : x[i] > 6 ? 6 : x[i];
        break;
    case ENG_ACT_SIGMOID: {
        int64_t i = lo;
        for (; i + 8 <= hi; i += 8)
            _mm256_storeu_ps(x + i, rt_sigmoid8(_mm256_loadu_ps(x + i)));
        for (; i < hi; i++)
            x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    }
    case ENG_ACT_HSWISH:
    case ENG_ACT_HSWISH_F16: {
        const float c = j->act == ENG_ACT_HSWISH ? 1.0f / 6.0f : 0.1666259765625f;
        for (int64_t i = lo; i < hi; i++) {
            float r = x[i] + 3.0f;
            r = r < 0 ? 0 : r > 6 ? 6 : r;
            x[i] = (x[i] * c) * r;
        }
        break;
    }
    default: break;
    }
}

void eng_act_apply(float *x, int64_t len, eng_act act, int threads)
{
    act_job j = {x, act};
    int nt = len < 65536 ? 1 : threads;
    int64_t grain = (rt_grain(len, nt, 4) + 7) / 8 * 8;
    rt_parallel_for(nt, len, grain, act_span, &j);
}

typedef struct softmax_job {
    float *x;
    int64_t cols;
} softmax_job;

static void softmax_span(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const softmax_job *j = ctx;
    for (int64_t r = lo; r < hi; r++) {
        float *p = j->x + r * j->cols;
        float mx = -INFINITY;
        for (int64_t i = 0; i < j->cols; i++)
            mx = p[i] > mx ? p[i] : mx;
        double s = 0;
        for (int64_t i = 0; i < j->cols; i++) {
            p[i] = expf(p[i] - mx);
            s += p[i];
        }
        for (int64_t i = 0; i < j->cols; i++)
            p[i] = (float)(p[i] / s);
    }
}

void eng_softmax_rows(float *x, int64_t rows, int64_t cols, int threads)
{
    softmax_job j = {x, cols};
    int nt = rows * cols < 65536 ? 1 : threads;
    rt_parallel_for(nt, rows, rt_grain(rows, nt, 4), softmax_span, &j);
}
