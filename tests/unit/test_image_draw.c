/* test_image_draw.c: rectangles, the built-in font (every glyph present,
 * distinct, rendered exactly and scaled, on its background box, clipped) and
 * JPEG encoding round trips. */
#include "check.h"
#include "engine.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t *px(const eng_image *im, int x, int y)
{
    return im->rgb + ((size_t)y * im->w + x) * 3;
}

static int is(const uint8_t *p, const uint8_t c[3]) { return memcmp(p, c, 3) == 0; }

static const uint8_t black[3] = {0, 0, 0}, red[3] = {255, 0, 0}, white[3] = {255, 255, 255},
                     blue[3] = {0, 0, 200};

static void test_rect(void)
{
    eng_image *im = eng_image_new(50, 40);
    eng_image_draw_rect(im, 10, 5, 20, 15, red, 2);
    CHECK(is(px(im, 10, 5), red) && is(px(im, 29, 19), red));    /* corners */
    CHECK(is(px(im, 11, 12), red) && is(px(im, 12, 12), black)); /* 2 px wide, inward */
    CHECK(is(px(im, 28, 12), red) && is(px(im, 27, 12), black));
    CHECK(is(px(im, 20, 6), red) && is(px(im, 20, 7), black));
    CHECK(is(px(im, 9, 5), black) && is(px(im, 30, 19), black) && is(px(im, 20, 20), black));
    int count = 0;
    for (int i = 0; i < 50 * 40; i++)
        count += is(im->rgb + 3 * i, red);
    CHECK_MSG(count == 20 * 15 - 16 * 11, "rect pixels %d", count);
    /* clipped everywhere, no crash */
    eng_image_draw_rect(im, -30, -30, 200, 200, blue, 3);
    eng_image_draw_rect(im, 45, 35, 100, 100, blue, 1);
    eng_image_draw_rect(im, 1000, 1000, 5, 5, blue, 1);
    eng_image_draw_rect(im, 0, 0, 0, 5, blue, 1);
    eng_image_draw_rect(im, 2147483000, 0, 2000, 5, blue, 1);
    CHECK(is(px(im, 45, 35), blue) && is(px(im, 49, 35), blue) && is(px(im, 46, 36), black));
    eng_image_draw_rect(NULL, 0, 0, 5, 5, blue, 1);
    eng_image_free(im);
}

/* Renders one character at scale 1 on a fresh image; returns its 5x7 ink
 * bitmap as 35 chars. */
static void glyph_bits(char c, char bits[36])
{
    eng_image *im = eng_image_new(7, 9);
    char s[2] = {c, 0};
    eng_image_draw_text(im, 0, 0, s, white, blue, 1);
    for (int r = 0; r < 7; r++)
        for (int k = 0; k < 5; k++)
            bits[r * 5 + k] = is(px(im, 1 + k, 1 + r), white) ? '#' : '.';
    bits[35] = 0;
    /* margins stay background */
    for (int y = 0; y < 9; y++)
        CHECK(is(px(im, 0, y), blue) && (y == 0 || y == 8 ? is(px(im, 3, y), blue) : 1));
    CHECK(is(px(im, 6, 4), blue)); /* right spacing column is background */
    eng_image_free(im);
}

static void test_font(void)
{
    char all[95][36];
    for (int c = 32; c < 127; c++)
        glyph_bits((char)c, all[c - 32]);
    /* 'A' looks like an A: apex, crossbar, legs */
    CHECK_MSG(strcmp(all['A' - 32], ".###."
                                    "#...#"
                                    "#...#"
                                    "#####"
                                    "#...#"
                                    "#...#"
                                    "#...#") == 0,
              "A = %s", all['A' - 32]);
    CHECK(strcmp(all['1' - 32], "..#.."
                                ".##.."
                                "..#.."
                                "..#.."
                                "..#.."
                                "..#.."
                                ".###.") == 0);
    /* space is empty, every other glyph has ink, and all glyphs differ */
    CHECK(strchr(all[0], '#') == NULL);
    int dup = 0, empty = 0;
    for (int i = 1; i < 95; i++) {
        empty += strchr(all[i], '#') == NULL;
        for (int j = 0; j < i; j++)
            if (strcmp(all[i], all[j]) == 0) {
                dup++;
                fprintf(stderr, "glyphs '%c' and '%c' are identical\n", i + 32, j + 32);
            }
    }
    CHECK(dup == 0 && empty == 0);
    /* characters outside ASCII 32..126 draw as '?' */
    char q[36];
    glyph_bits('\x01', q);
    CHECK(strcmp(q, all['?' - 32]) == 0);

    /* text size and scaled rendering with the background box */
    int w, h;
    eng_image_text_size("cat 0.93", 2, &w, &h);
    CHECK_MSG(w == (8 * 6 + 1) * 2 && h == 9 * 2, "size %dx%d", w, h);
    eng_image_text_size("ab\nlonger", 1, &w, &h);
    CHECK(w == 6 * 6 + 1 && h == 18);
    eng_image_text_size("", 3, &w, &h);
    CHECK(w == 0 && h == 0);
    eng_image *im = eng_image_new(120, 40);
    memset(im->rgb, 90, 120 * 40 * 3);
    eng_image_draw_text(im, 4, 3, "cat 0.93", white, black, 2);
    int ink = 0, bg = 0, other = 0;
    for (int y = 3; y < 3 + 18; y++)
        for (int x = 4; x < 4 + 98; x++) {
            const uint8_t *p = px(im, x, y);
            ink += is(p, white);
            bg += is(p, black);
            other += !is(p, white) && !is(p, black);
        }
    CHECK_MSG(ink > 100 && bg > ink && other == 0, "ink %d bg %d other %d", ink, bg, other);
    CHECK(px(im, 3, 3)[0] == 90 && px(im, 102, 3)[0] == 90 && px(im, 4, 21)[0] == 90);
    /* scale 2: the 'c' of "cat" at (4+2, 3+2): its first row ".....": no ink,
     * its third row ".###." has ink at columns 1..3 as 2x2 blocks */
    CHECK(is(px(im, 6 + 2, 3 + 2 + 4), white) && is(px(im, 6 + 3, 3 + 2 + 5), white));
    CHECK(is(px(im, 6, 3 + 2 + 4), black));
    /* clipped at every edge, transparent background, NULLs */
    eng_image_draw_text(im, -50, -5, "clipped text", red, NULL, 3);
    eng_image_draw_text(im, 110, 35, "edge", red, black, 4);
    eng_image_draw_text(im, 0, 0, "\xff\x80 high bytes", red, black, 1);
    eng_image_draw_text(im, 0, 0, NULL, red, black, 1);
    eng_image_draw_text(NULL, 0, 0, "x", red, black, 1);
    CHECK(is(px(im, 119, 39), black));
    eng_image_free(im);
}

static void test_encode(void)
{
    eng_diag d = {{0}};
    eng_image *im = eng_image_new(96, 64);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 96; x++) {
            uint8_t *p = im->rgb + ((size_t)y * 96 + x) * 3;
            p[0] = (uint8_t)(x * 2), p[1] = (uint8_t)(y * 3), p[2] = 128;
        }
    eng_image_draw_rect(im, 10, 10, 40, 30, red, 3);
    eng_image_draw_text(im, 12, 14, "dog 0.8", white, black, 1);
    uint8_t *jpg = NULL;
    size_t n = 0;
    CHECK(eng_image_encode_jpeg(im, 90, &jpg, &n, &d) == ENG_OK && jpg && n > 100);
    eng_image_info info;
    CHECK(eng_image_probe_mem(jpg, n, &info, &d) == ENG_OK && info.format == ENG_IMG_JPEG &&
          info.width == 96 && info.height == 64);
    eng_image *back = NULL;
    CHECK(eng_image_decode_mem(jpg, n, 0, &back, &d) == ENG_OK);
    if (back) {
        double se = 0;
        for (size_t i = 0; i < 96 * 64 * 3; i++) {
            double e = (double)back->rgb[i] - im->rgb[i];
            se += e * e;
        }
        double psnr = 10 * log10(255.0 * 255.0 / (se / (96 * 64 * 3) + 1e-9));
        printf("jpeg q90 round trip: %zu bytes, PSNR %.1f dB\n", n, psnr);
        CHECK_MSG(psnr > 30, "psnr %.1f", psnr);
    }
    eng_image_free(back);
    free(jpg);
    /* quality is clamped, bigger quality -> bigger file */
    size_t n1, n100;
    uint8_t *j1, *j100;
    CHECK(eng_image_encode_jpeg(im, -5, &j1, &n1, &d) == ENG_OK);
    CHECK(eng_image_encode_jpeg(im, 1000, &j100, &n100, &d) == ENG_OK);
    CHECK(n1 < n100);
    free(j1);
    free(j100);
    /* a large image grows the output buffer several times */
    eng_image *big = eng_image_new(1200, 900);
    for (size_t i = 0; i < 1200 * 900 * 3; i++)
        big->rgb[i] = (uint8_t)((i * 2654435761u) >> 24);
    CHECK(eng_image_encode_jpeg(big, 95, &jpg, &n, &d) == ENG_OK && n > 65536 * 4);
    CHECK(eng_image_decode_mem(jpg, n, 0, &back, &d) == ENG_OK && back->w == 1200);
    eng_image_free(back);
    free(jpg);
    eng_image_free(big);
    CHECK(eng_image_encode_jpeg(NULL, 90, &jpg, &n, &d) == ENG_EINVAL);
    CHECK(eng_image_new(0, 5) == NULL && eng_image_new(5, 20000) == NULL);
    eng_image_free(im);
}

int main(void)
{
    test_rect();
    test_font();
    test_encode();
    return check_report("test_image_draw");
}
