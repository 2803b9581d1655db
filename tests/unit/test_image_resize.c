/* test_image_resize.c: image to tensor. Hand-worked cases of the antialiased
 * triangle filter (upscale, downscale, crops, flips, pixel ranges), then the
 * reference inputs of ../shared/golden/centernet (made by Pillow from dataset
 * JPEGs; skipped when ../shared is absent), and a timing of decode + resize
 * (printed, not asserted). */
#include "check.h"
#include "engine.h"
#include "test_image_gen.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A w x 1 grey image from values. */
static eng_image *row_image(const int *v, int w)
{
    eng_image *im = eng_image_new(w, 1);
    for (int x = 0; x < w; x++)
        im->rgb[3 * x] = im->rgb[3 * x + 1] = im->rgb[3 * x + 2] = (uint8_t)v[x];
    return im;
}

static void test_hand_cases(void)
{
    eng_diag d = {{0}};
    float out[64 * 3];
    /* upscale 2 -> 4: centres at 0.25, 0.75, 1.25, 1.75; the triangle of
     * width 1 gives weights (1), (.75 .25), (.25 .75), (1) */
    int two[2] = {0, 255};
    eng_image *im = row_image(two, 2);
    CHECK(eng_image_to_tensor(im, NULL, 0, 4, 1, ENG_PIX_0_255, out, &d) == ENG_OK);
    const float up[4] = {0, 64, 191, 255};
    for (int x = 0; x < 4; x++)
        CHECK_MSG(out[3 * x] == up[x] && out[3 * x + 2] == up[x], "up x=%d: %g", x, out[3 * x]);
    /* flipped */
    CHECK(eng_image_to_tensor(im, NULL, 1, 4, 1, ENG_PIX_0_255, out, &d) == ENG_OK);
    for (int x = 0; x < 4; x++)
        CHECK(out[3 * x + 1] == up[3 - x]);
    eng_image_free(im);
    /* downscale 4 -> 2: support widens to 2 input pixels; output 0 has centre
     * 1.0 and weights .75 .75 .25 (sum 1.75); output 1 centre 3.0 weights
     * .25 .75 .75 over inputs 1..3 */
    int four[4] = {0, 100, 200, 40};
    im = row_image(four, 4);
    CHECK(eng_image_to_tensor(im, NULL, 0, 2, 1, ENG_PIX_0_255, out, &d) == ENG_OK);
    CHECK_MSG(out[0] == 71 && out[3] == 117, "down: %g %g", out[0], out[3]);
    /* pixel ranges */
    CHECK(eng_image_to_tensor(im, NULL, 0, 2, 1, ENG_PIX_0_1, out, &d) == ENG_OK);
    CHECK_NEAR(out[0], 71 / 255.0, 1e-6);
    CHECK(eng_image_to_tensor(im, NULL, 0, 2, 1, ENG_PIX_M1_1, out, &d) == ENG_OK);
    CHECK_NEAR(out[3], 117 / 127.5 - 1, 1e-6);
    /* same size, no crop: exact copy; a crop of one pixel: that pixel */
    CHECK(eng_image_to_tensor(im, NULL, 0, 4, 1, ENG_PIX_0_255, out, &d) == ENG_OK);
    for (int x = 0; x < 4; x++)
        CHECK(out[3 * x] == four[x]);
    eng_crop c = {2, 0, 1, 1};
    CHECK(eng_image_to_tensor(im, &c, 0, 1, 1, ENG_PIX_0_255, out, &d) == ENG_OK);
    CHECK(out[0] == 200);
    /* crop to 3 outputs from 2 pixels [1, 3): centres 1.333, 2.0, 2.667 */
    c = (eng_crop){1, 0, 2, 1};
    CHECK(eng_image_to_tensor(im, &c, 0, 3, 1, ENG_PIX_0_255, out, &d) == ENG_OK);
    /* x=0: centre 1.333, inputs 0..1 (lo=int(0.833)=0, hi=int(2.833)=2):
     * w = tri(-0.833)=.167, tri(.167)=.833 -> (0*.167+100*.833) = 83.3;
     * x=1: centre 2.0, inputs 1..2: tri(-.5)=.5, tri(.5)=.5 -> 150;
     * x=2: centre 2.667, inputs 2..3: tri(-.167)=.833, tri(.833)=.167 -> 173.3 */
    CHECK_MSG(out[0] == 83 && out[3] == 150 && out[6] == 173, "crop: %g %g %g", out[0], out[3],
              out[6]);
    /* errors */
    c = (eng_crop){3, 0, 2, 1};
    CHECK(eng_image_to_tensor(im, &c, 0, 2, 1, ENG_PIX_0_255, out, &d) == ENG_EINVAL);
    CHECK(strstr(d.msg, "crop") != NULL);
    c = (eng_crop){0, 0, 0, 1};
    CHECK(eng_image_to_tensor(im, &c, 0, 2, 1, ENG_PIX_0_255, out, &d) == ENG_EINVAL);
    c = (eng_crop){NAN, 0, 1, 1};
    CHECK(eng_image_to_tensor(im, &c, 0, 2, 1, ENG_PIX_0_255, out, &d) == ENG_EINVAL);
    CHECK(eng_image_to_tensor(im, NULL, 0, 0, 1, ENG_PIX_0_255, out, &d) == ENG_EINVAL);
    CHECK(eng_image_to_tensor(im, NULL, 0, 2, 1, (eng_pixels)7, out, &d) == ENG_EINVAL);
    CHECK(eng_image_to_tensor(NULL, NULL, 0, 2, 1, ENG_PIX_0_255, out, &d) == ENG_EINVAL);
    eng_image_free(im);

    /* antialiasing: a 1-pixel checkerboard shrunk 4x averages to mid grey
     * (a point-sampling bilinear would give black or white) */
    eng_image *cb = eng_image_new(64, 64);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            memset(cb->rgb + ((size_t)y * 64 + x) * 3, ((x + y) & 1) ? 255 : 0, 3);
    float *t = malloc(sizeof(float) * 16 * 16 * 3);
    CHECK(eng_image_to_tensor(cb, NULL, 0, 16, 16, ENG_PIX_0_255, t, &d) == ENG_OK);
    float lo = 255, hi = 0;
    for (int i = 0; i < 16 * 16 * 3; i++) {
        lo = t[i] < lo ? t[i] : lo;
        hi = t[i] > hi ? t[i] : hi;
    }
    CHECK_MSG(lo >= 110 && hi <= 145, "checkerboard shrink: %g..%g", lo, hi);
    free(t);
    eng_image_free(cb);

    /* quadrants: squash keeps the layout; flip swaps left and right; a crop of
     * the top-right quadrant is green inside (its edges blend with the
     * neighbours within the filter's support, as Pillow's box does) */
    eng_image *q = gen_quadrants(80, 40);
    float *qt = malloc(sizeof(float) * 32 * 32 * 3);
    CHECK(eng_image_to_tensor(q, NULL, 1, 32, 32, ENG_PIX_0_255, qt, &d) == ENG_OK);
    CHECK(qt[(8 * 32 + 8) * 3 + 1] == gen_quad_rgb[1][1]);   /* TL shows green */
    CHECK(qt[(24 * 32 + 24) * 3 + 2] == gen_quad_rgb[2][2]); /* BR shows blue */
    c = (eng_crop){40, 0, 40, 20};
    CHECK(eng_image_to_tensor(q, &c, 0, 32, 32, ENG_PIX_0_255, qt, &d) == ENG_OK);
    int all_green = 1;
    for (int y = 2; y < 30; y++)
        for (int x = 2; x < 30; x++) {
            const float *p = qt + (y * 32 + x) * 3;
            all_green &= p[0] == gen_quad_rgb[1][0] && p[1] == gen_quad_rgb[1][1];
        }
    CHECK(all_green);
    CHECK(qt[0] > gen_quad_rgb[1][0]); /* top-left output pixel takes some red */
    /* a crop overshooting by float rounding is clamped */
    c = (eng_crop){39.9995f, 0, 40.0009f, 20};
    CHECK(eng_image_to_tensor(q, &c, 0, 32, 32, ENG_PIX_0_255, qt, &d) == ENG_OK);
    /* letterbox: 80x40 into 32x32 lands at (0, 8, 32, 16), the band equals a
     * plain 32x16 resize, the rest is the pad value */
    eng_crop pl;
    CHECK(eng_image_to_tensor_letterbox(q, 32, 32, 114, ENG_PIX_0_1, qt, &pl, &d) == ENG_OK);
    CHECK_MSG(pl.x == 0 && pl.y == 8 && pl.w == 32 && pl.h == 16, "placed %g %g %g %g", pl.x, pl.y,
              pl.w, pl.h);
    float *plain = malloc(sizeof(float) * 32 * 16 * 3);
    CHECK(eng_image_to_tensor(q, NULL, 0, 32, 16, ENG_PIX_0_1, plain, &d) == ENG_OK);
    int same = 1, padded = 1;
    for (int y = 0; y < 32; y++)
        for (int i = 0; i < 32 * 3; i++) {
            float v = qt[y * 32 * 3 + i];
            if (y >= 8 && y < 24)
                same &= v == plain[(y - 8) * 32 * 3 + i];
            else
                padded &= v == 114 / 255.0f;
        }
    CHECK(same && padded);
    /* tall image: bands left and right */
    eng_image *tall = gen_quadrants(30, 90);
    CHECK(eng_image_to_tensor_letterbox(tall, 30, 30, 0, ENG_PIX_0_255, qt, &pl, &d) == ENG_OK);
    CHECK(pl.x == 10 && pl.y == 0 && pl.w == 10 && pl.h == 30);
    CHECK(qt[(15 * 30 + 5) * 3] == 0 && qt[(5 * 30 + 12) * 3] == gen_quad_rgb[0][0]);
    CHECK(eng_image_to_tensor_letterbox(tall, 0, 30, 0, ENG_PIX_0_255, qt, &pl, &d) == ENG_EINVAL);
    eng_image_free(tall);
    free(plain);
    free(qt);
    eng_image_free(q);
}

static float *read_f32(const char *path, size_t count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *v = malloc(count * sizeof(float));
    size_t got = fread(v, sizeof(float), count, f);
    fclose(f);
    if (got != count) {
        free(v);
        return NULL;
    }
    return v;
}

/* Decode + resize timing on the given JPEG bytes to out x out. */
static void bench(const char *what, const uint8_t *b, size_t n, int out)
{
    eng_diag d = {{0}};
    float *t = malloc(sizeof(float) * out * out * 3);
    double best_dec = 1e9, best_rs = 1e9;
    for (int r = 0; r < 20; r++) {
        eng_image *im = NULL;
        double t0 = now_ms();
        eng_image_decode_mem(b, n, out, &im, &d);
        double t1 = now_ms();
        eng_image_to_tensor(im, NULL, 0, out, out, ENG_PIX_0_255, t, &d);
        double t2 = now_ms();
        best_dec = t1 - t0 < best_dec ? t1 - t0 : best_dec;
        best_rs = t2 - t1 < best_rs ? t2 - t1 : best_rs;
        eng_image_free(im);
    }
    printf("bench %s -> %dx%d: decode %.2f ms + resize %.2f ms = %.2f ms (best of 20)\n", what, out,
           out, best_dec, best_rs, best_dec + best_rs);
    free(t);
}

static int test_golden(void)
{
    const char *shared = VFS_SHARED_DIR;
    char path[4096];
    /* absent only when the folder is: once it exists, a missing or short
     * reference file is a failure naming it, not a skip */
    snprintf(path, sizeof path, "%s/golden/centernet", shared);
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    struct {
        const char *src, *ref;
        int size;
    } g[] = {{"raccoon/images/000161.jpg", "img0_512_input.f32", 512},
             {"clothing/images/000401.jpg", "img1_320_input.f32", 320},
             {"clothing/images/000500.jpg", "img2_320_input.f32", 320}};
    for (int i = 0; i < 3; i++) {
        eng_diag d = {{0}};
        eng_image *im = NULL;
        snprintf(path, sizeof path, "%s/datasets/%s", shared, g[i].src);
        CHECK_MSG(eng_image_decode_file(path, 0, &im, &d) == ENG_OK, "%s: %s", path, d.msg);
        if (!im)
            continue;
        int s = g[i].size;
        size_t cnt = (size_t)s * s * 3;
        float *t = malloc(cnt * sizeof(float));
        CHECK(eng_image_to_tensor(im, NULL, 0, s, s, ENG_PIX_0_255, t, &d) == ENG_OK);
        snprintf(path, sizeof path, "%s/golden/centernet/%s", shared, g[i].ref);
        float *ref = read_f32(path, cnt);
        CHECK_MSG(ref != NULL, "cannot read %s", path);
        if (ref) {
            double sum = 0, mx = 0;
            size_t diff = 0;
            for (size_t k = 0; k < cnt; k++) {
                double e = fabs((double)t[k] - ref[k]);
                sum += e;
                mx = e > mx ? e : mx;
                diff += e > 0;
            }
            printf("golden %s (%dx%d -> %d): mean abs diff %.4f, max %.0f, %zu of %zu values "
                   "differ\n",
                   g[i].src, im->w, im->h, s, sum / cnt, mx, diff, cnt);
            CHECK_MSG(sum / cnt < 1.0, "%s: mean abs diff %g", g[i].src, sum / cnt);
            free(ref);
        }
        free(t);
        eng_image_free(im);
    }
    /* timing on the real 384x512 photo */
    snprintf(path, sizeof path, "%s/datasets/raccoon/images/000161.jpg", shared);
    FILE *f = fopen(path, "rb");
    if (f) {
        uint8_t *b = malloc(1 << 22);
        size_t n = fread(b, 1, 1 << 22, f);
        fclose(f);
        bench("raccoon/000161.jpg (384x512)", b, n, 512);
        free(b);
    }
    return 1;
}

int main(void)
{
    test_hand_cases();
    /* timing on a generated photo-like JPEG of the same size, always */
    eng_image *noise = gen_noise(512, 384, 9);
    size_t n;
    uint8_t *b = gen_jpeg(noise, 90, 0, &n);
    bench("generated 512x384 jpeg", b, n, 512);
    free(b);
    eng_image_free(noise);
    noise = gen_noise(3000, 2000, 4);
    b = gen_jpeg(noise, 90, 0, &n);
    bench("generated 3000x2000 jpeg, scaled decode", b, n, 512);
    free(b);
    eng_image_free(noise);
    int had_golden = test_golden();
    int rc = check_report("test_image_resize");
    if (!had_golden && rc == 0) {
        printf("golden comparison skipped: %s/golden absent\n", VFS_SHARED_DIR);
        return 77;
    }
    return rc;
}
