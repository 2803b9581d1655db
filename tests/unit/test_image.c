/* test_image.c: probe and decode of every supported format on images the
 * test makes itself (test_image_gen.h): sizes, colours, EXIF orientation,
 * frames, alpha, scaled JPEG decoding, truncated and non-image input, size
 * limits, files. `test_image --write-corpus DIR` writes the fuzz seeds. */
#include "check.h"
#include "engine.h"
#include "test_image_gen.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Colour of the decoded image at (fx, fy) (fractions of its size). */
static const uint8_t *at(const eng_image *im, double fx, double fy)
{
    int x = (int)(fx * im->w), y = (int)(fy * im->h);
    return im->rgb + ((size_t)y * im->w + x) * 3;
}

static int near_rgb(const uint8_t *a, const uint8_t *b, int tol)
{
    for (int c = 0; c < 3; c++)
        if (abs((int)a[c] - (int)b[c]) > tol)
            return 0;
    return 1;
}

/* Checks the four quadrant colours of a decoded quadrant image; corner[i] is
 * which stored quadrant should show at display quadrant i (TL, TR, BL, BR). */
static void check_quads(const char *what, const eng_image *im, const int corner[4], int tol)
{
    static const double pos[4][2] = {{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}};
    for (int i = 0; i < 4; i++) {
        const uint8_t *c = at(im, pos[i][0], pos[i][1]);
        const uint8_t *e = gen_quad_rgb[corner[i]];
        CHECK_MSG(near_rgb(c, e, tol), "%s: quadrant %d is %d,%d,%d, expected %d,%d,%d", what, i,
                  c[0], c[1], c[2], e[0], e[1], e[2]);
    }
}

static const int upright[4] = {0, 1, 2, 3};

/* Probe + decode + truncation checks for one encoded image. */
static void check_format(const char *what, const uint8_t *buf, size_t n, eng_image_format fmt,
                         int w, int h, int frames, int tol)
{
    eng_diag d = {{0}};
    eng_image_info info;
    eng_status st = eng_image_probe_mem(buf, n, &info, &d);
    CHECK_MSG(st == ENG_OK, "%s: probe: %s", what, d.msg);
    CHECK_MSG(info.format == fmt, "%s: format %s", what, eng_image_format_name(info.format));
    CHECK_MSG(info.width == w && info.height == h, "%s: probe size %dx%d", what, info.width,
              info.height);
    CHECK_MSG(info.orientation == 1, "%s: orientation %d", what, info.orientation);
    CHECK_MSG(info.frames == frames, "%s: frames %d, expected %d", what, info.frames, frames);
    eng_image *im = NULL;
    st = eng_image_decode_mem(buf, n, 0, &im, &d);
    CHECK_MSG(st == ENG_OK && im, "%s: decode: %s", what, d.msg);
    if (im) {
        CHECK_MSG(im->w == w && im->h == h, "%s: decoded %dx%d", what, im->w, im->h);
        check_quads(what, im, upright, tol);
    }
    eng_image_free(im);
    /* truncations: always an error, never a crash; the end cut says so */
    size_t cuts[] = {n - 1, n - 2, n - 7, n * 3 / 4, n / 2, n / 3, 40, 20, 8, 3, 1, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= n)
            continue;
        memset(&d, 0, sizeof d);
        st = eng_image_probe_mem(buf, cuts[i], &info, &d);
        CHECK_MSG(st != ENG_OK, "%s cut to %zu bytes: probe accepted it", what, cuts[i]);
        CHECK_MSG(d.msg[0] != 0, "%s cut to %zu: no message", what, cuts[i]);
        if (i < 2 || cuts[i] == n / 2)
            CHECK_MSG(strstr(d.msg, "truncated") != NULL, "%s cut to %zu: '%s'", what, cuts[i],
                      d.msg);
        im = NULL;
        st = eng_image_decode_mem(buf, cuts[i], 0, &im, &d);
        CHECK_MSG(st != ENG_OK && im == NULL, "%s cut to %zu: decode accepted it", what, cuts[i]);
    }
}

static void test_formats(void)
{
    eng_image *q = gen_quadrants(64, 48);
    size_t n;
    uint8_t *b;

    b = gen_jpeg(q, 92, 0, &n);
    check_format("jpeg", b, n, ENG_IMG_JPEG, 64, 48, 1, 12);
    free(b);
    b = gen_jpeg_ex(q, 92, 0, 0, 1, &n);
    check_format("progressive jpeg", b, n, ENG_IMG_JPEG, 64, 48, 1, 12);
    free(b);
    b = gen_png(q, &n);
    check_format("png", b, n, ENG_IMG_PNG, 64, 48, 1, 0);
    free(b);
    b = gen_bmp(q, &n);
    check_format("bmp", b, n, ENG_IMG_BMP, 64, 48, 1, 0);
    free(b);
    b = gen_gif(q, 1, &n);
    check_format("gif", b, n, ENG_IMG_GIF, 64, 48, 1, 0);
    free(b);
    b = gen_gif(q, 3, &n);
    check_format("gif 3 frames", b, n, ENG_IMG_GIF, 64, 48, 3, 0);
    free(b);
    b = gen_webp(q, &n);
    check_format("webp", b, n, ENG_IMG_WEBP, 64, 48, 1, 0);
    free(b);
    b = gen_webp_ext(q, 0, 2, &n);
    check_format("animated webp", b, n, ENG_IMG_WEBP, 64, 48, 2, 0);
    free(b);
    b = gen_tiff(q, 0, 1, 0, &n);
    check_format("tiff", b, n, ENG_IMG_TIFF, 64, 48, 1, 0);
    free(b);
    b = gen_tiff(q, 0, 2, 1, &n);
    check_format("tiff lzw 2 pages", b, n, ENG_IMG_TIFF, 64, 48, 2, 0);
    free(b);
    b = gen_ico(q, 1, &n);
    check_format("ico png", b, n, ENG_IMG_ICO, 64, 48, 2, 0);
    free(b);
    eng_image *sq = gen_quadrants(64, 64);
    eng_image *other = gen_noise(40, 30, 5);
    b = gen_mpo(q, other, &n);
    check_format("mpo", b, n, ENG_IMG_MPO, 64, 48, 2, 12);
    free(b);

    /* ICO with bitmap entries: the AND mask makes the right quarter white */
    eng_diag d = {{0}};
    eng_image *im = NULL;
    b = gen_ico(sq, 0, &n);
    eng_image_info info;
    CHECK(eng_image_probe_mem(b, n, &info, &d) == ENG_OK && info.width == 64 && info.height == 64 &&
          info.frames == 2);
    CHECK_MSG(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK, "ico bmp: %s", d.msg);
    if (im) {
        static const uint8_t white[3] = {255, 255, 255};
        CHECK(near_rgb(at(im, 0.25, 0.25), gen_quad_rgb[0], 0));
        CHECK(near_rgb(at(im, 0.6, 0.25), gen_quad_rgb[1], 0));
        CHECK(near_rgb(at(im, 0.25, 0.75), gen_quad_rgb[2], 0));
        CHECK(near_rgb(at(im, 0.9, 0.25), white, 0));
        CHECK(near_rgb(at(im, 0.9, 0.75), white, 0));
    }
    eng_image_free(im);
    free(b);
    eng_image_free(sq);
    eng_image_free(other);
    eng_image_free(q);
}

/* Where the stored top-left (red, 0) and top-right (green, 1) quadrants
 * appear for each EXIF orientation, from the EXIF definitions: 2 mirror,
 * 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
 * 8 rotate 90 counter-clockwise. Display quadrants: 0 TL 1 TR 2 BL 3 BR. */
static const int red_at[9] = {0, 0, 1, 3, 2, 0, 1, 3, 2};
static const int green_at[9] = {0, 1, 0, 2, 3, 2, 3, 1, 0};

static void check_oriented(const char *what, const uint8_t *b, size_t n, int o, int w, int h,
                           int tol)
{
    eng_diag d = {{0}};
    eng_image_info info;
    CHECK_MSG(eng_image_probe_mem(b, n, &info, &d) == ENG_OK, "%s o=%d: %s", what, o, d.msg);
    CHECK_MSG(info.orientation == o, "%s: orientation %d, expected %d", what, info.orientation, o);
    CHECK_MSG(info.width == w && info.height == h, "%s o=%d: probe reports %dx%d (stored)", what, o,
              info.width, info.height);
    int dw = o >= 5 ? h : w, dh = o >= 5 ? w : h;
    CHECK(eng_image_info_display_w(&info) == dw && eng_image_info_display_h(&info) == dh);
    eng_image *im = NULL;
    CHECK_MSG(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK, "%s o=%d: %s", what, o, d.msg);
    if (!im)
        return;
    CHECK_MSG(im->w == dw && im->h == dh, "%s o=%d: decoded %dx%d", what, o, im->w, im->h);
    static const double pos[4][2] = {{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}};
    const uint8_t *r = at(im, pos[red_at[o]][0], pos[red_at[o]][1]);
    const uint8_t *g = at(im, pos[green_at[o]][0], pos[green_at[o]][1]);
    CHECK_MSG(near_rgb(r, gen_quad_rgb[0], tol), "%s o=%d: red not at quadrant %d", what, o,
              red_at[o]);
    CHECK_MSG(near_rgb(g, gen_quad_rgb[1], tol), "%s o=%d: green not at quadrant %d", what, o,
              green_at[o]);
    eng_image_free(im);
}

static void test_orientation(void)
{
    eng_image *q = gen_quadrants(64, 48);
    size_t n;
    for (int o = 1; o <= 8; o++) {
        uint8_t *b = gen_jpeg(q, 92, o, &n);
        check_oriented("jpeg exif", b, n, o, 64, 48, 12);
        free(b);
    }
    int some[] = {3, 6, 8};
    for (int i = 0; i < 3; i++) {
        uint8_t *b = gen_png_exif(q, some[i], &n);
        check_oriented("png eXIf", b, n, some[i], 64, 48, 0);
        free(b);
        b = gen_tiff(q, some[i], 1, 0, &n);
        check_oriented("tiff", b, n, some[i], 64, 48, 0);
        free(b);
        b = gen_webp_ext(q, some[i], 0, &n);
        check_oriented("webp exif", b, n, some[i], 64, 48, 0);
        free(b);
    }
    /* orientation and scaled decoding together: 800x600 stored, o=6, hint 150 */
    eng_image *big = gen_quadrants(800, 600);
    uint8_t *b = gen_jpeg(big, 85, 6, &n);
    eng_image *im = NULL;
    eng_diag d = {{0}};
    CHECK(eng_image_decode_mem(b, n, 150, &im, &d) == ENG_OK);
    /* short side 600 * 2/8 = 150 >= 150: 200x150 stored, 150x200 shown */
    CHECK_MSG(im && im->w == 150 && im->h == 200, "scaled+rotated: %dx%d", im ? im->w : 0,
              im ? im->h : 0);
    if (im)
        CHECK(near_rgb(at(im, 0.75, 0.25), gen_quad_rgb[0], 16));
    eng_image_free(im);
    free(b);
    eng_image_free(big);
    eng_image_free(q);
}

static void test_jpeg_variants(void)
{
    eng_diag d = {{0}};
    size_t n;
    eng_image *im = NULL;
    /* scaled decoding: smallest M/8 keeping the short side >= hint */
    eng_image *big = gen_noise(1024, 768, 1);
    uint8_t *b = gen_jpeg(big, 90, 0, &n);
    struct {
        int hint, w, h;
    } sc[] = {{0, 1024, 768},   {256, 384, 288},   {96, 128, 96},  {1, 128, 96},
              {700, 1024, 768}, {2000, 1024, 768}, {384, 512, 384}};
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        CHECK(eng_image_decode_mem(b, n, sc[i].hint, &im, &d) == ENG_OK);
        CHECK_MSG(im && im->w == sc[i].w && im->h == sc[i].h, "hint %d: %dx%d", sc[i].hint,
                  im ? im->w : 0, im ? im->h : 0);
        eng_image_free(im);
        im = NULL;
    }
    /* probe cost on a photo-sized JPEG (best of several rounds) */
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now_ms();
        eng_image_info info;
        for (int i = 0; i < 200; i++)
            eng_image_probe_mem(b, n, &info, &d);
        double per = (now_ms() - t0) / 200;
        if (per < best)
            best = per;
    }
    printf("probe_mem of a %zu-byte 1024x768 jpeg: %.2f us\n", n, best * 1e3);
    CHECK_MSG(best < 1.0, "probe took %.3f ms", best);
    char path[] = "/tmp/vfs_test_probe_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, b, n) == (ssize_t)n);
    close(fd);
    best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now_ms();
        eng_image_info info;
        for (int i = 0; i < 50; i++)
            CHECK(eng_image_probe_file(path, &info, &d) == ENG_OK);
        double per = (now_ms() - t0) / 50;
        if (per < best)
            best = per;
    }
    unlink(path);
    printf("probe_file of the same jpeg (read + probe): %.2f us\n", best * 1e3);
    CHECK_MSG(best < 1.0, "probe_file took %.3f ms", best);
    free(b);
    eng_image_free(big);

    /* grey JPEG becomes RGB */
    eng_image *q = gen_quadrants(32, 32);
    b = gen_jpeg_ex(q, 95, 0, 1, 0, &n);
    CHECK(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK);
    if (im) {
        const uint8_t *c = at(im, 0.25, 0.25);
        int grey = (gen_quad_rgb[0][0] + gen_quad_rgb[0][1] + gen_quad_rgb[0][2]) / 3;
        CHECK_MSG(c[0] == c[1] && c[1] == c[2] && abs(c[0] - grey) < 6, "grey %d %d %d", c[0], c[1],
                  c[2]);
    }
    eng_image_free(im);
    im = NULL;
    free(b);
    /* Adobe CMYK (inverted): C full, others none -> cyan */
    const uint8_t cmyk[4] = {0, 255, 255, 255};
    b = gen_jpeg_cmyk(16, 16, cmyk, &n);
    CHECK_MSG(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK, "cmyk: %s", d.msg);
    if (im) {
        const uint8_t cyan[3] = {0, 255, 255};
        CHECK_MSG(near_rgb(im->rgb, cyan, 4), "cmyk -> %d %d %d", im->rgb[0], im->rgb[1],
                  im->rgb[2]);
    }
    eng_image_free(im);
    im = NULL;
    free(b);
    /* trailing bytes after EOI are fine; a corrupted scan is an error */
    eng_image *noisy = gen_noise(64, 64, 3);
    b = gen_jpeg(noisy, 90, 0, &n);
    eng_image_free(noisy);
    uint8_t *t = malloc(n + 100);
    memcpy(t, b, n);
    memset(t + n, 0, 100);
    CHECK(eng_image_decode_mem(t, n + 100, 0, &im, &d) == ENG_OK);
    eng_image_free(im);
    im = NULL;
    /* an EOI marker in the middle of the scan data: data ends early */
    memcpy(t, b, n);
    t[n * 3 / 4] = 0xFF;
    t[n * 3 / 4 + 1] = 0xD9;
    eng_status st = eng_image_decode_mem(t, n, 0, &im, &d);
    CHECK_MSG(st == ENG_EFORMAT && !im, "mid-scan EOI: %s", d.msg);
    free(t);
    free(b);
    eng_image_free(q);
}

static void test_alpha(void)
{
    eng_diag d = {{0}};
    size_t n;
    eng_image *im = NULL;
    /* RGBA: left half opaque red, right half: alpha 0 (any colour) and 128 */
    int w = 32, h = 16;
    uint8_t *px = malloc((size_t)w * h * 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * 4;
            p[0] = 200, p[1] = 0, p[2] = 0, p[3] = 255;
            if (x >= w / 2)
                p[0] = 0, p[1] = 0, p[2] = 0, p[3] = y < h / 2 ? 0 : 128;
        }
    const uint8_t red[3] = {200, 0, 0}, white[3] = {255, 255, 255}, half[3] = {127, 127, 127};
    uint8_t *b = gen_png_raw(px, w, h, 4, &n);
    CHECK(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK);
    if (im) {
        CHECK(near_rgb(at(im, 0.2, 0.2), red, 0));
        CHECK(near_rgb(at(im, 0.8, 0.2), white, 0));
        CHECK_MSG(near_rgb(at(im, 0.8, 0.8), half, 1), "half alpha: %d", at(im, 0.8, 0.8)[0]);
    }
    eng_image_free(im);
    im = NULL;
    free(b);
    b = gen_webp_rgba(px, w, h, &n);
    CHECK_MSG(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK, "webp rgba: %s", d.msg);
    if (im) {
        CHECK(near_rgb(at(im, 0.2, 0.2), red, 0));
        CHECK(near_rgb(at(im, 0.8, 0.2), white, 0));
        CHECK(near_rgb(at(im, 0.8, 0.8), half, 1));
    }
    eng_image_free(im);
    im = NULL;
    free(b);
    /* grey PNG and grey+alpha PNG */
    uint8_t g[16 * 16 * 2];
    for (int i = 0; i < 256; i++)
        g[2 * i] = 90, g[2 * i + 1] = 255;
    b = gen_png_raw(g, 16, 8, 2, &n);
    CHECK(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK);
    if (im)
        CHECK(im->rgb[0] == 90 && im->rgb[1] == 90 && im->rgb[2] == 90);
    eng_image_free(im);
    im = NULL;
    free(b);
    b = gen_png_raw(g, 32, 8, 1, &n);
    CHECK(eng_image_decode_mem(b, n, 0, &im, &d) == ENG_OK);
    if (im)
        CHECK(im->w == 32 && im->rgb[0] == 90 && im->rgb[4] == 255);
    eng_image_free(im);
    free(b);
    free(px);
}

static void test_bad_input(void)
{
    eng_diag d = {{0}};
    eng_image_info info;
    eng_image *im = (eng_image *)1;
    struct {
        const char *name;
        const char *data;
        size_t n;
        const char *msg;
    } bad[] = {
        {"empty", "", 0, "not an image"},
        {"text", "hello, this is not a picture\n", 29, "not an image"},
        {"json", "{\"images\": []}", 14, "not an image"},
        {"heic",
         "\0\0\0\x18"
         "ftypheic\0\0\0\0mif1heic",
         24, "heif"},
        {"gif header only", "GIF89a\x10\0\x10\0\0\0\0", 13, "gif truncated"},
        {"png sig only", "\x89PNG\r\n\x1a\n", 8, "png truncated"},
        {"jpeg soi only", "\xFF\xD8\xFF", 3, "jpeg truncated"},
        {"bmp magic only", "BM", 2, "bmp truncated"},
        {"tiff header only", "II*\0\x08\0\0\0", 8, "tiff truncated"},
        {"riff not webp", "RIFF\x04\0\0\0WAVE", 12, "not an image"},
        {"webp header only", "RIFF\x20\0\0\0WEBPVP8 ", 16, "webp truncated"},
        {"ico no entries", "\0\0\1\0\0\0", 6, "ico corrupt"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 0, sizeof d);
        eng_status st = eng_image_probe_mem(bad[i].data, bad[i].n, &info, &d);
        CHECK_MSG(st != ENG_OK && strstr(d.msg, bad[i].msg), "%s: status %d '%s'", bad[i].name, st,
                  d.msg);
        CHECK(info.format == ENG_IMG_UNKNOWN);
        im = (eng_image *)1;
        st = eng_image_decode_mem(bad[i].data, bad[i].n, 0, &im, &d);
        CHECK_MSG(st != ENG_OK && im == NULL, "%s: decode", bad[i].name);
    }
    CHECK(eng_image_probe_mem("hello", 5, &info, &d) == ENG_EUNSUPPORTED);

    /* a header that declares more than the limit: probe reports, decode refuses */
    eng_image *q = gen_quadrants(32, 32);
    size_t n;
    uint8_t *b = gen_jpeg(q, 90, 0, &n);
    for (size_t i = 2; i + 9 < n; i++) {
        if (b[i] == 0xFF && b[i + 1] == 0xC0) { /* SOF0: FF C0 len(2) P H(2) W(2) */
            b[i + 7] = 20000 >> 8;
            b[i + 8] = 20000 & 255;
            break;
        }
    }
    CHECK(eng_image_probe_mem(b, n, &info, &d) == ENG_OK && info.width == 20000);
    eng_status st = eng_image_decode_mem(b, n, 0, &im, &d);
    CHECK_MSG(st == ENG_EUNSUPPORTED && strstr(d.msg, "too large") && !im, "20000 wide: %s", d.msg);
    free(b);
    /* memory-unsafe: a 10000x10000 GIF canvas with one tiny frame */
    eng_image *one = gen_quadrants(2, 2);
    b = gen_gif(one, 1, &n);
    b[6] = 10000 & 255, b[7] = 10000 >> 8, b[8] = 10000 & 255, b[9] = 10000 >> 8;
    CHECK(eng_image_probe_mem(b, n, &info, &d) == ENG_OK && info.width == 10000);
    st = eng_image_decode_mem(b, n, 0, &im, &d);
    CHECK_MSG(st == ENG_EUNSUPPORTED && strstr(d.msg, "too large") && !im, "gif: %s", d.msg);
    free(b);
    /* PNG whose IHDR promises far more pixels than its data can hold */
    b = gen_png(q, &n);
    b[16] = 0, b[17] = 0, b[18] = 0x27, b[19] = 0x10; /* width 10000 */
    b[20] = 0, b[21] = 0, b[22] = 0x27, b[23] = 0x10;
    st = eng_image_probe_mem(b, n, &info, &d);
    CHECK_MSG(st == ENG_EFORMAT && strstr(d.msg, "png corrupt"), "png bomb: %s", d.msg);
    free(b);
    eng_image_free(one);
    eng_image_free(q);
    CHECK(eng_image_decode_mem(NULL, 0, 0, NULL, &d) == ENG_EINVAL);
    eng_image_free(NULL);
}

static void test_files(void)
{
    eng_diag d = {{0}};
    eng_image_info info;
    eng_image *im = NULL;
    char path[] = "/tmp/vfs_test_image_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    eng_image *q = gen_quadrants(64, 48);
    size_t n;
    uint8_t *b = gen_webp(q, &n); /* the name says nothing: content decides */
    CHECK(write(fd, b, n) == (ssize_t)n);
    close(fd);
    CHECK(eng_image_probe_file(path, &info, &d) == ENG_OK && info.format == ENG_IMG_WEBP);
    CHECK(eng_image_decode_file(path, 0, &im, &d) == ENG_OK && im && im->w == 64);
    eng_image_free(im);
    im = NULL;
    truncate(path, (off_t)n - 5);
    CHECK(eng_image_decode_file(path, 0, &im, &d) == ENG_EFORMAT && !im);
    CHECK_MSG(strstr(d.msg, path) && strstr(d.msg, "webp truncated"), "%s", d.msg);
    unlink(path);
    CHECK(eng_image_probe_file(path, &info, &d) == ENG_ENOTFOUND && strstr(d.msg, path));
    CHECK(eng_image_decode_file("/tmp", 0, &im, &d) == ENG_EIO && !im);
    free(b);
    eng_image_free(q);

    eng_pixels px;
    CHECK(eng_pixels_parse("0..255", &px) == ENG_OK && px == ENG_PIX_0_255);
    CHECK(eng_pixels_parse("0..1", &px) == ENG_OK && px == ENG_PIX_0_1);
    CHECK(eng_pixels_parse("-1..1", &px) == ENG_OK && px == ENG_PIX_M1_1);
    CHECK(eng_pixels_parse("0-255", &px) == ENG_EINVAL);
    CHECK(strcmp(eng_image_format_name(ENG_IMG_MPO), "mpo") == 0);
    CHECK(strcmp(eng_image_format_name(ENG_IMG_UNKNOWN), "unknown") == 0);
}

/* Decoding is reentrant: threads decode good and corrupt images of every
 * format at once and each gets its own right answer and message. */
typedef struct thr_job {
    const uint8_t *b[8];
    size_t n[8];
    int count, bad_png, errors;
} thr_job;

static void *thr_run(void *arg)
{
    thr_job *j = arg;
    for (int r = 0; r < 15; r++)
        for (int i = 0; i < j->count; i++) {
            eng_diag d = {{0}};
            eng_image *im = NULL;
            eng_status st = eng_image_decode_mem(j->b[i], j->n[i], 0, &im, &d);
            if (i == j->bad_png) {
                if (st != ENG_EFORMAT || !strstr(d.msg, "png corrupt"))
                    j->errors++;
            } else if (st != ENG_OK || !im || im->w != 64 || im->h != 48 ||
                       !near_rgb(at(im, 0.25, 0.25), gen_quad_rgb[0], 12)) {
                j->errors++;
            }
            eng_image_free(im);
        }
    return NULL;
}

static void test_threads(void)
{
    eng_image *q = gen_quadrants(64, 48);
    thr_job j = {.count = 7, .bad_png = 6};
    j.b[0] = gen_jpeg(q, 90, 0, &j.n[0]);
    j.b[1] = gen_png(q, &j.n[1]);
    j.b[2] = gen_gif(q, 1, &j.n[2]);
    j.b[3] = gen_webp(q, &j.n[3]);
    j.b[4] = gen_tiff(q, 0, 1, 1, &j.n[4]);
    j.b[5] = gen_bmp(q, &j.n[5]);
    uint8_t *bad = gen_png(q, &j.n[6]);
    bad[41] ^= 0x55; /* zlib header inside the first IDAT: stb fails */
    j.b[6] = bad;
    eng_diag d = {{0}};
    eng_image *im = NULL;
    CHECK_MSG(eng_image_decode_mem(bad, j.n[6], 0, &im, &d) == ENG_EFORMAT, "%s", d.msg);
    CHECK_MSG(strstr(d.msg, "png corrupt: ") != NULL, "%s", d.msg);
    printf("corrupt zlib stream: %s\n", d.msg);
    thr_job jobs[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = j;
        jobs[i].bad_png = i % 2 ? 6 : -1; /* half the threads skip the bad one */
        jobs[i].count = i % 2 ? 7 : 6;
        pthread_create(&t[i], NULL, thr_run, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(jobs[i].errors == 0, "thread %d: %d wrong results", i, jobs[i].errors);
    }
    for (int i = 0; i < 7; i++)
        free((void *)j.b[i]);
    eng_image_free(q);
}

/* Writes the fuzz seed corpus: one small file per format and variant. */
static int write_corpus(const char *dir)
{
    eng_image *q = gen_quadrants(8, 6);
    eng_image *q2 = gen_quadrants(4, 4);
    struct {
        const char *name;
        uint8_t *b;
        size_t n;
    } s[16];
    int k = 0;
    s[k].name = "q.jpg", s[k].b = gen_jpeg(q, 80, 0, &s[k].n), k++;
    s[k].name = "q_exif6.jpg", s[k].b = gen_jpeg(q, 80, 6, &s[k].n), k++;
    s[k].name = "q_prog.jpg", s[k].b = gen_jpeg_ex(q, 80, 0, 0, 1, &s[k].n), k++;
    s[k].name = "q.png", s[k].b = gen_png(q, &s[k].n), k++;
    s[k].name = "q_exif.png", s[k].b = gen_png_exif(q, 8, &s[k].n), k++;
    s[k].name = "q.bmp", s[k].b = gen_bmp(q, &s[k].n), k++;
    s[k].name = "q2.gif", s[k].b = gen_gif(q, 2, &s[k].n), k++;
    s[k].name = "q.webp", s[k].b = gen_webp(q, &s[k].n), k++;
    s[k].name = "q_anim.webp", s[k].b = gen_webp_ext(q, 0, 2, &s[k].n), k++;
    s[k].name = "q_exif.webp", s[k].b = gen_webp_ext(q, 3, 0, &s[k].n), k++;
    s[k].name = "q.tif", s[k].b = gen_tiff(q, 0, 1, 0, &s[k].n), k++;
    s[k].name = "q_lzw2.tif", s[k].b = gen_tiff(q, 6, 2, 1, &s[k].n), k++;
    s[k].name = "q_png.ico", s[k].b = gen_ico(q, 1, &s[k].n), k++;
    s[k].name = "q_bmp.ico", s[k].b = gen_ico(q2, 0, &s[k].n), k++;
    s[k].name = "q.mpo", s[k].b = gen_mpo(q, q2, &s[k].n), k++;
    int rc = 0;
    for (int i = 0; i < k; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, s[i].name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(s[i].b, 1, s[i].n, f) != s[i].n) {
            perror(path);
            rc = 1;
        }
        if (f)
            fclose(f);
        free(s[i].b);
    }
    eng_image_free(q);
    eng_image_free(q2);
    printf("wrote %d seeds to %s\n", k, dir);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    test_formats();
    test_orientation();
    test_jpeg_variants();
    test_alpha();
    test_bad_input();
    test_files();
    test_threads();
    return check_report("test_image");
}
