/* resize.c: image to tensor (crop, squash-resize, flip, pixel range).
 *
 * Design: reproduces the behaviour of Pillow's 8-bit BILINEAR resize, which
 * produced the reference inputs the backbones were checked against: a
 * separable triangle filter whose support grows with the shrink factor (so
 * shrinking averages an area instead of skipping pixels), weights normalised
 * per output pixel then rounded to 22-bit fixed point, the horizontal pass
 * first over only the rows the vertical pass needs, an 8-bit rounded
 * intermediate, and a pass skipped when its axis is unchanged. Integer
 * arithmetic makes it both exact and fast; output bytes are mapped to the
 * pixel range through a 256-entry table. */
#include "image_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREC 22 /* coefficient fixed-point bits (8-bit samples, 32-bit sums) */

typedef struct axis {
    int ksize;  /* coefficients per output sample */
    int *lo;    /* first input sample of each output */
    int *cnt;   /* input samples used */
    int32_t *k; /* out * ksize fixed-point weights */
} axis;

static void axis_free(axis *a)
{
    free(a->lo);
    free(a->cnt);
    free(a->k);
}

static double tri(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Weights for out samples covering [in0, in1) of an axis of in samples. */
static int axis_init(axis *a, int in, double in0, double in1, int out)
{
    memset(a, 0, sizeof *a);
    double scale = (in1 - in0) / out;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = fscale; /* the triangle's support is 1 */
    a->ksize = (int)ceil(support) * 2 + 1;
    a->lo = malloc(sizeof(int) * (size_t)out);
    a->cnt = malloc(sizeof(int) * (size_t)out);
    a->k = malloc(sizeof(int32_t) * (size_t)out * (size_t)a->ksize);
    double *w = malloc(sizeof(double) * (size_t)a->ksize);
    if (!a->lo || !a->cnt || !a->k || !w) {
        free(w);
        axis_free(a);
        return 0;
    }
    for (int o = 0; o < out; o++) {
        double center = in0 + (o + 0.5) * scale, sum = 0.0;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in)
            hi = in;
        int n = hi - lo;
        if (n < 0)
            n = 0;
        if (n > a->ksize)
            n = a->ksize;
        for (int i = 0; i < n; i++) {
            w[i] = tri((i + lo - center + 0.5) / fscale);
            sum += w[i];
        }
        int32_t *k = a->k + (size_t)o * (size_t)a->ksize;
        for (int i = 0; i < a->ksize; i++) {
            double v = i < n ? (sum != 0.0 ? w[i] / sum : w[i]) : 0.0;
            v *= (double)(1 << PREC);
            k[i] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        a->lo[o] = lo;
        a->cnt[o] = n;
    }
    free(w);
    return 1;
}

static inline uint8_t clip8(int32_t v)
{
    v >>= PREC;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* rows x (in_w -> out_w), RGB, src rows of sstride bytes. */
static void pass_h(const uint8_t *src, size_t sstride, int rows, const axis *ax, int out_w,
                   uint8_t *dst)
{
    const int32_t half = 1 << (PREC - 1);
    for (int y = 0; y < rows; y++) {
        const uint8_t *s = src + (size_t)y * sstride;
        uint8_t *o = dst + (size_t)y * (size_t)out_w * 3;
        for (int x = 0; x < out_w; x++, o += 3) {
            const int32_t *k = ax->k + (size_t)x * (size_t)ax->ksize;
            const uint8_t *p = s + (size_t)ax->lo[x] * 3;
            int32_t r = half, g = half, b = half;
            for (int i = 0, n = ax->cnt[x]; i < n; i++, p += 3) {
                r += p[0] * k[i];
                g += p[1] * k[i];
                b += p[2] * k[i];
            }
            o[0] = clip8(r);
            o[1] = clip8(g);
            o[2] = clip8(b);
        }
    }
}

/* Writes one output row of w RGB bytes as floats, mirrored when flip. */
static void put_row(const uint8_t *row, int w, int flip, const float *lut, float *dst)
{
    if (!flip) {
        for (int i = 0; i < w * 3; i++)
            dst[i] = lut[row[i]];
        return;
    }
    for (int x = 0; x < w; x++) {
        const uint8_t *p = row + (size_t)(w - 1 - x) * 3;
        dst[3 * x] = lut[p[0]];
        dst[3 * x + 1] = lut[p[1]];
        dst[3 * x + 2] = lut[p[2]];
    }
}

eng_status eng_pixels_parse(const char *s, eng_pixels *out)
{
    if (!s || !out)
        return ENG_EINVAL;
    if (strcmp(s, "0..255") == 0)
        *out = ENG_PIX_0_255;
    else if (strcmp(s, "0..1") == 0)
        *out = ENG_PIX_0_1;
    else if (strcmp(s, "-1..1") == 0)
        *out = ENG_PIX_M1_1;
    else
        return ENG_EINVAL;
    return ENG_OK;
}

static void make_lut(eng_pixels px, float lut[256])
{
    for (int i = 0; i < 256; i++)
        lut[i] = px == ENG_PIX_0_255 ? (float)i
                 : px == ENG_PIX_0_1 ? (float)i / 255.0f
                                     : (float)i / 127.5f - 1.0f;
}

/* Resizes into dst rows of dstride floats. */
static eng_status resize_into(const eng_image *im, const eng_crop *crop, int flip, int out_w,
                              int out_h, eng_pixels px, float *dst, size_t dstride, eng_diag *d);

eng_status eng_image_to_tensor(const eng_image *im, const eng_crop *crop, int flip, int out_w,
                               int out_h, eng_pixels px, float *dst, eng_diag *d)
{
    return resize_into(im, crop, flip, out_w, out_h, px, dst, (size_t)out_w * 3, d);
}

eng_status eng_image_to_tensor_letterbox(const eng_image *im, int out_w, int out_h, uint8_t pad,
                                         eng_pixels px, float *dst, eng_crop *placed, eng_diag *d)
{
    if (!im || !im->rgb || im->w <= 0 || im->h <= 0 || !dst)
        return eng_fail(d, ENG_EINVAL, "image to tensor: no image or no output");
    if (out_w < 1 || out_h < 1 || out_w > ENG_IMAGE_MAX_SIDE || out_h > ENG_IMAGE_MAX_SIDE)
        return eng_fail(d, ENG_EINVAL, "image to tensor: output size %dx%d out of range", out_w,
                        out_h);
    if (px != ENG_PIX_0_255 && px != ENG_PIX_0_1 && px != ENG_PIX_M1_1)
        return eng_fail(d, ENG_EINVAL, "image to tensor: unknown pixel range %d", (int)px);
    /* the largest size with the image's aspect ratio that fits */
    double s = (double)out_w / im->w < (double)out_h / im->h ? (double)out_w / im->w
                                                             : (double)out_h / im->h;
    int w = (int)(im->w * s + 0.5), h = (int)(im->h * s + 0.5);
    w = w < 1 ? 1 : w > out_w ? out_w : w;
    h = h < 1 ? 1 : h > out_h ? out_h : h;
    int x0 = (out_w - w) / 2, y0 = (out_h - h) / 2;
    float lut[256];
    make_lut(px, lut);
    size_t n = (size_t)out_w * (size_t)out_h * 3;
    for (size_t i = 0; i < n; i++)
        dst[i] = lut[pad];
    if (placed)
        *placed = (eng_crop){(float)x0, (float)y0, (float)w, (float)h};
    return resize_into(im, NULL, 0, w, h, px, dst + ((size_t)y0 * out_w + x0) * 3,
                       (size_t)out_w * 3, d);
}

static eng_status resize_into(const eng_image *im, const eng_crop *crop, int flip, int out_w,
                              int out_h, eng_pixels px, float *dst, size_t dstride, eng_diag *d)
{
    if (!im || !im->rgb || im->w <= 0 || im->h <= 0 || !dst)
        return eng_fail(d, ENG_EINVAL, "image to tensor: no image or no output");
    if (out_w < 1 || out_h < 1 || out_w > ENG_IMAGE_MAX_SIDE || out_h > ENG_IMAGE_MAX_SIDE)
        return eng_fail(d, ENG_EINVAL, "image to tensor: output size %dx%d out of range", out_w,
                        out_h);
    if (px != ENG_PIX_0_255 && px != ENG_PIX_0_1 && px != ENG_PIX_M1_1)
        return eng_fail(d, ENG_EINVAL, "image to tensor: unknown pixel range %d", (int)px);
    double x0 = 0, y0 = 0, x1 = im->w, y1 = im->h;
    if (crop) {
        const double eps = 1e-3;
        if (!isfinite(crop->x) || !isfinite(crop->y) || !isfinite(crop->w) || !isfinite(crop->h) ||
            crop->w <= 0 || crop->h <= 0 || crop->x < -eps || crop->y < -eps ||
            (double)crop->x + crop->w > im->w + eps || (double)crop->y + crop->h > im->h + eps)
            return eng_fail(d, ENG_EINVAL,
                            "image to tensor: crop (%g, %g, %g, %g) outside the %dx%d image",
                            crop->x, crop->y, crop->w, crop->h, im->w, im->h);
        x0 = crop->x < 0 ? 0 : crop->x;
        y0 = crop->y < 0 ? 0 : crop->y;
        x1 = (double)crop->x + crop->w;
        y1 = (double)crop->y + crop->h;
        if (x1 > im->w)
            x1 = im->w;
        if (y1 > im->h)
            y1 = im->h;
        if (x1 <= x0 || y1 <= y0)
            return eng_fail(d, ENG_EINVAL, "image to tensor: empty crop");
    }
    float lut[256];
    make_lut(px, lut);

    int need_h = out_w != im->w || x0 != 0 || x1 != im->w;
    int need_v = out_h != im->h || y0 != 0 || y1 != im->h;
    size_t srow = (size_t)im->w * 3, orow = (size_t)out_w * 3;
    axis ah, av;
    memset(&ah, 0, sizeof ah);
    if (!axis_init(&av, im->h, y0, y1, out_h))
        return eng_fail(d, ENG_ENOMEM, "image to tensor: out of memory");
    if (need_h && !axis_init(&ah, im->w, x0, x1, out_w)) {
        axis_free(&av);
        return eng_fail(d, ENG_ENOMEM, "image to tensor: out of memory");
    }
    int yfirst = av.lo[0], ylast = av.lo[out_h - 1] + av.cnt[out_h - 1];
    if (!need_v) {
        yfirst = 0;
        ylast = im->h;
    }
    if (ylast <= yfirst)
        ylast = yfirst + 1;
    uint8_t *tmp = NULL;
    const uint8_t *mid; /* rows yfirst..ylast-1 after the horizontal pass */
    size_t mrow;
    if (need_h) {
        tmp = malloc(orow * (size_t)(ylast - yfirst));
        if (!tmp) {
            axis_free(&av);
            axis_free(&ah);
            return eng_fail(d, ENG_ENOMEM, "image to tensor: out of memory");
        }
        pass_h(im->rgb + (size_t)yfirst * srow, srow, ylast - yfirst, &ah, out_w, tmp);
        mid = tmp;
        mrow = orow;
    } else {
        mid = im->rgb + (size_t)yfirst * srow;
        mrow = srow; /* == orow: the horizontal axis is unchanged */
    }
    if (!need_v) {
        for (int y = 0; y < out_h; y++)
            put_row(mid + (size_t)y * mrow, out_w, flip, lut, dst + (size_t)y * dstride);
    } else {
        int32_t *acc = malloc(sizeof(int32_t) * orow);
        uint8_t *row = malloc(orow);
        if (!acc || !row) {
            free(acc);
            free(row);
            free(tmp);
            axis_free(&av);
            axis_free(&ah);
            return eng_fail(d, ENG_ENOMEM, "image to tensor: out of memory");
        }
        const int32_t half = 1 << (PREC - 1);
        for (int y = 0; y < out_h; y++) {
            for (size_t i = 0; i < orow; i++)
                acc[i] = half;
            const int32_t *k = av.k + (size_t)y * (size_t)av.ksize;
            for (int t = 0; t < av.cnt[y]; t++) {
                const uint8_t *s = mid + (size_t)(av.lo[y] - yfirst + t) * mrow;
                int32_t w = k[t];
                for (size_t i = 0; i < orow; i++)
                    acc[i] += s[i] * w;
            }
            for (size_t i = 0; i < orow; i++)
                row[i] = clip8(acc[i]);
            put_row(row, out_w, flip, lut, dst + (size_t)y * dstride);
        }
        free(acc);
        free(row);
    }
    free(tmp);
    axis_free(&av);
    axis_free(&ah);
    return ENG_OK;
}
