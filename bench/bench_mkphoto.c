/* bench_mkphoto.c: a camera-sized JPEG of about a given file size, for
 * bench/predict_latency.sh (no image tool is installed here).
 *
 *   bench_mkphoto SRC W H BYTES OUT.jpg
 *
 * SRC (any format the engine reads) is stretched to W x H (bilinear), a
 * sensor-like grain (deterministic, +-6 levels) is added so the file does
 * not compress like a smooth upscale, and it is encoded with libjpeg-turbo
 * at the quality (50-98) whose size comes closest to BYTES. Prints
 * "W H BYTES QUALITY".
 */
#include "image.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint8_t sample(const eng_image *s, float x, float y, int c)
{
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < s->w ? x0 + 1 : x0, y1 = y0 + 1 < s->h ? y0 + 1 : y0;
    float fx = x - (float)x0, fy = y - (float)y0;
    const uint8_t *p = s->rgb;
    float a = p[((size_t)y0 * s->w + x0) * 3 + c], b = p[((size_t)y0 * s->w + x1) * 3 + c];
    float d = p[((size_t)y1 * s->w + x0) * 3 + c], e = p[((size_t)y1 * s->w + x1) * 3 + c];
    float v = (a * (1 - fx) + b * fx) * (1 - fy) + (d * (1 - fx) + e * fx) * fy;
    return (uint8_t)(v + 0.5f);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_mkphoto SRC W H BYTES OUT.jpg\n");
        return 2;
    }
    int w = atoi(argv[2]), h = atoi(argv[3]);
    long want = atol(argv[4]);
    eng_image *src = NULL;
    eng_diag d = {{0}};
    if (eng_image_decode_file(argv[1], 0, &src, &d) != ENG_OK) {
        fprintf(stderr, "bench_mkphoto: %s\n", d.msg);
        return 1;
    }
    eng_image *im = eng_image_new(w, h);
    if (!im) {
        fprintf(stderr, "bench_mkphoto: %dx%d: out of range\n", w, h);
        return 1;
    }
    uint32_t seed = 12345;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float sx = ((float)x + 0.5f) * (float)src->w / (float)w - 0.5f;
                float sy = ((float)y + 0.5f) * (float)src->h / (float)h - 0.5f;
                int v = sample(src, sx < 0 ? 0 : sx, sy < 0 ? 0 : sy, c);
                seed = seed * 1664525u + 1013904223u;
                v += (int)(seed >> 28) - 8 + 2; /* -6..+9, mean about 0.5 */
                im->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    int lo = 50, hi = 98, best = lo;
    long bestdiff = -1;
    while (lo <= hi) {
        int q = (lo + hi) / 2;
        uint8_t *jpg = NULL;
        size_t len = 0;
        if (eng_image_encode_jpeg(im, q, &jpg, &len, &d) != ENG_OK) {
            fprintf(stderr, "bench_mkphoto: %s\n", d.msg);
            return 1;
        }
        free(jpg);
        long diff = labs((long)len - want);
        if (bestdiff < 0 || diff < bestdiff) {
            bestdiff = diff;
            best = q;
        }
        if ((long)len < want)
            lo = q + 1;
        else
            hi = q - 1;
    }
    uint8_t *jpg = NULL;
    size_t len = 0;
    if (eng_image_encode_jpeg(im, best, &jpg, &len, &d) != ENG_OK) {
        fprintf(stderr, "bench_mkphoto: %s\n", d.msg);
        return 1;
    }
    FILE *f = fopen(argv[5], "wb");
    if (!f || fwrite(jpg, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "bench_mkphoto: cannot write %s\n", argv[5]);
        return 1;
    }
    printf("%d %d %zu %d\n", w, h, len, best);
    free(jpg);
    eng_image_free(im);
    eng_image_free(src);
    return 0;
}
