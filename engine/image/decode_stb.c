/* decode_stb.c: PNG, GIF and BMP through stb_image, and ICO entries (PNG
 * through stb, bitmaps through our own small DIB reader, since icons store
 * bitmaps without a file header and with a 1-bit transparency mask).
 *
 * Design: the only translation unit with STB_IMAGE_IMPLEMENTATION; compiled
 * static (STB_IMAGE_STATIC) with only the three formats we use, so nobody else
 * can reach stb's global flip/premultiply settings: we never set them, and
 * stb 2.27 keeps its failure reason thread-local, which we copy at once.
 * Limits were checked by the probe before stb runs. Alpha is composited on
 * white. */
#include "image_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS ENG_IMAGE_MAX_SIDE
/* stb declares a few static functions it never defines in this configuration,
 * and gcc's inliner sees stb's callback fields as maybe-uninitialised for
 * memory sources (they are never read there): file-wide, since both are
 * reported where our functions inline stb's */
#pragma GCC diagnostic ignored "-Wunused-function"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

/* Converts stb's 1..4 channel buffer to an image (takes ownership of px). */
static eng_status from_stb(uint8_t *px, int w, int h, int comp, eng_image **out, eng_diag *d,
                           const char *fmt)
{
    size_t n = (size_t)w * (size_t)h;
    if (comp == 3) {
        eng_image *im = malloc(sizeof *im);
        if (!im) {
            stbi_image_free(px);
            return eng_fail(d, ENG_ENOMEM, "%s: out of memory", fmt);
        }
        im->w = w;
        im->h = h;
        im->rgb = px; /* stb allocates with malloc */
        *out = im;
        return ENG_OK;
    }
    eng_image *im = img_alloc(w, h);
    if (!im) {
        stbi_image_free(px);
        return eng_fail(d, ENG_ENOMEM, "%s: out of memory", fmt);
    }
    if (comp == 1)
        img_grey_to_rgb(px, im->rgb, n);
    else if (comp == 2)
        img_ga_to_rgb(px, im->rgb, n);
    else
        img_rgba_to_rgb(px, im->rgb, n);
    stbi_image_free(px);
    *out = im;
    return ENG_OK;
}

static eng_status stb_decode(const uint8_t *b, size_t n, eng_image **out, eng_diag *d,
                             const char *fmt)
{
    if (n > 0x7fffffff)
        return eng_fail(d, ENG_EUNSUPPORTED, "%s too large: file over 2 GB", fmt);
    int w = 0, h = 0, comp = 0;
    uint8_t *px = stbi_load_from_memory(b, (int)n, &w, &h, &comp, 0);
    if (!px) {
        const char *why = stbi_failure_reason();
        char m[128];
        snprintf(m, sizeof m, "%s", why ? why : "unknown error");
        /* stb's short reasons for variants it lacks */
        int unsup = strstr(m, "not supported") || strcmp(m, "BMP RLE") == 0 ||
                    strcmp(m, "BMP type not supported: RLE") == 0;
        return eng_fail(d, unsup ? ENG_EUNSUPPORTED : ENG_EFORMAT, "%s %s: %s", fmt,
                        unsup ? "variant not supported" : "corrupt", m);
    }
    if (w <= 0 || h <= 0 || comp < 1 || comp > 4) {
        stbi_image_free(px);
        return eng_fail(d, ENG_EFORMAT, "%s corrupt: decoder returned %dx%dx%d", fmt, w, h, comp);
    }
    return from_stb(px, w, h, comp, out, d, fmt);
}

eng_status img_decode_stb(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                          eng_diag *d)
{
    return stb_decode(b, n, out, d, eng_image_format_name(p->info.format));
}

/* ---- ICO bitmaps ------------------------------------------------------------ */

static eng_status decode_dib(const uint8_t *s, size_t n, eng_image **out, eng_diag *d)
{
    uint32_t hs = img_rd32le(s);
    int32_t w = (int32_t)img_rd32le(s + 4), h2 = (int32_t)img_rd32le(s + 8);
    int bpp = (int)img_rd16le(s + 14);
    uint32_t comp = img_rd32le(s + 16), used = img_rd32le(s + 32);
    int h = h2 / 2;
    if (hs > n || w <= 0 || h <= 0)
        return eng_fail(d, ENG_EFORMAT, "ico corrupt: bitmap header");
    if (comp != 0 && !(comp == 3 && (bpp == 32 || bpp == 16)))
        return eng_fail(d, ENG_EUNSUPPORTED, "ico variant not supported: compression %u", comp);
    if (!(bpp == 1 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32))
        return eng_fail(d, ENG_EFORMAT, "ico corrupt: %d bits per pixel", bpp);
    size_t ncol = bpp <= 8 ? (used && used <= (1u << bpp) ? used : 1u << bpp) : 0;
    size_t pal = hs + (comp == 3 ? 12 : 0);
    size_t xor_off = pal + ncol * 4;
    size_t xstride = ((size_t)w * (size_t)bpp + 31) / 32 * 4;
    size_t mstride = ((size_t)w + 31) / 32 * 4;
    size_t and_off = xor_off + xstride * (size_t)h;
    if (xor_off > n || xstride * (size_t)h > n - xor_off)
        return eng_fail(d, ENG_EFORMAT, "ico truncated: bitmap pixels incomplete");
    int has_mask = and_off <= n && mstride * (size_t)h <= n - and_off;
    eng_image *im = img_alloc(w, h);
    if (!im)
        return eng_fail(d, ENG_ENOMEM, "ico: out of memory");
    int alpha_used = 0;
    if (bpp == 32)
        for (int y = 0; y < h && !alpha_used; y++)
            for (int x = 0; x < w; x++)
                if (s[xor_off + (size_t)y * xstride + (size_t)x * 4 + 3]) {
                    alpha_used = 1;
                    break;
                }
    for (int y = 0; y < h; y++) {
        const uint8_t *row = s + xor_off + (size_t)y * xstride;
        const uint8_t *mrow = has_mask ? s + and_off + (size_t)y * mstride : NULL;
        uint8_t *dst = im->rgb + (size_t)(h - 1 - y) * (size_t)w * 3; /* bottom-up */
        for (int x = 0; x < w; x++, dst += 3) {
            unsigned r, g, bl, a = 255;
            if (bpp <= 8) {
                unsigned bit = (unsigned)x * (unsigned)bpp;
                unsigned idx = (row[bit >> 3] >> (8 - bpp - (bit & 7))) & ((1u << bpp) - 1);
                if (idx >= ncol)
                    idx = 0;
                const uint8_t *c = s + pal + (size_t)idx * 4;
                bl = c[0];
                g = c[1];
                r = c[2];
            } else if (bpp == 16) {
                unsigned v = img_rd16le(row + 2 * x);
                r = ((v >> 10) & 31) * 255 / 31;
                g = ((v >> 5) & 31) * 255 / 31;
                bl = (v & 31) * 255 / 31;
            } else {
                const uint8_t *c = row + (size_t)x * (size_t)(bpp / 8);
                bl = c[0];
                g = c[1];
                r = c[2];
                if (bpp == 32 && alpha_used)
                    a = c[3];
            }
            if (!alpha_used && mrow && (mrow[x >> 3] >> (7 - (x & 7)) & 1))
                a = 0;
            dst[0] = (uint8_t)((r * a + 255u * (255u - a) + 127u) / 255u);
            dst[1] = (uint8_t)((g * a + 255u * (255u - a) + 127u) / 255u);
            dst[2] = (uint8_t)((bl * a + 255u * (255u - a) + 127u) / 255u);
        }
    }
    *out = im;
    return ENG_OK;
}

eng_status img_decode_ico(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                          eng_diag *d)
{
    if (p->sub_off > n || p->sub_len > n - p->sub_off)
        return eng_fail(d, ENG_EFORMAT, "ico truncated: entry incomplete");
    const uint8_t *s = b + p->sub_off;
    if (p->sub_png)
        return stb_decode(s, p->sub_len, out, d, "ico png entry");
    return decode_dib(s, p->sub_len, out, d);
}
