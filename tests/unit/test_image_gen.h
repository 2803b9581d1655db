/* test_image_gen.h: makes test images in every format the image module reads,
 * in memory, with the real encoders (libjpeg, stb_image_write, libwebp,
 * libtiff) or, where none exists here, by writing the container by hand (GIF
 * with uncompressed LZW, ICO, MPO, animated and EXIF WebP). Included by the
 * image tests only (header so each test stays one file). */
#ifndef VFS_TEST_IMAGE_GEN_H
#define VFS_TEST_IMAGE_GEN_H

#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <tiffio.h>
#include <webp/encode.h>

/* stb declares static functions it does not define in this configuration */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

/* A growable byte buffer. */
typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void gb_put(gbuf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void gb_u8(gbuf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    gb_put(b, &c, 1);
}
static void gb_le16(gbuf *b, unsigned v)
{
    gb_u8(b, v & 255);
    gb_u8(b, v >> 8 & 255);
}
static void gb_le32(gbuf *b, uint32_t v)
{
    gb_le16(b, v & 0xffff);
    gb_le16(b, v >> 16);
}
static void gb_be16(gbuf *b, unsigned v)
{
    gb_u8(b, v >> 8 & 255);
    gb_u8(b, v & 255);
}
static void gb_be32(gbuf *b, uint32_t v)
{
    gb_be16(b, v >> 16);
    gb_be16(b, v & 0xffff);
}
static void gb_le24(gbuf *b, uint32_t v)
{
    gb_le16(b, v & 0xffff);
    gb_u8(b, v >> 16);
}

/* The four quadrant colours: top-left red, top-right green, bottom-left blue,
 * bottom-right yellow. */
static const uint8_t gen_quad_rgb[4][3] = {
    {220, 20, 20}, {20, 200, 40}, {30, 40, 210}, {230, 220, 30}};

/* Returns a w x h image of the four quadrants. */
static eng_image *gen_quadrants(int w, int h)
{
    eng_image *im = eng_image_new(w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int q = (y >= h / 2) * 2 + (x >= w / 2);
            memcpy(im->rgb + ((size_t)y * w + x) * 3, gen_quad_rgb[q], 3);
        }
    return im;
}

/* Returns a w x h image of smooth gradients plus deterministic noise (a
 * photo-like JPEG size). */
static eng_image *gen_noise(int w, int h, unsigned seed)
{
    eng_image *im = eng_image_new(w, h);
    uint32_t s = seed * 2654435761u + 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                s = s * 1664525u + 1013904223u;
                int v = (x * 255 / w + y * 128 / h + c * 60) % 256 + (int)(s >> 27) - 16;
                im->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return im;
}

/* EXIF APP1 payload ("Exif\0\0" + big-endian TIFF with one Orientation tag). */
static void gen_exif(gbuf *b, int orientation)
{
    gb_put(b, "Exif\0\0", 6);
    gb_put(b, "MM\0*", 4);
    gb_be32(b, 8);
    gb_be16(b, 1);
    gb_be16(b, 0x0112);
    gb_be16(b, 3);
    gb_be32(b, 1);
    gb_be16(b, (unsigned)orientation);
    gb_be16(b, 0);
    gb_be32(b, 0);
}

/* JPEG of im (quality q); orientation > 0 adds an EXIF APP1; grey: one
 * component; progressive: progressive scans. Returns a malloc'd buffer. */
static uint8_t *gen_jpeg_ex(const eng_image *im, int q, int orientation, int grey, int progressive,
                            size_t *len)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&ci, &out, &size);
    ci.image_width = (JDIMENSION)im->w;
    ci.image_height = (JDIMENSION)im->h;
    ci.input_components = grey ? 1 : 3;
    ci.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    if (progressive)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    if (orientation > 0) {
        gbuf e = {0};
        gen_exif(&e, orientation);
        jpeg_write_marker(&ci, JPEG_APP0 + 1, e.p, (unsigned)e.n);
        free(e.p);
    }
    uint8_t *row = malloc((size_t)im->w * 3);
    while (ci.next_scanline < ci.image_height) {
        const uint8_t *src = im->rgb + (size_t)ci.next_scanline * im->w * 3;
        if (grey)
            for (int x = 0; x < im->w; x++)
                row[x] = (uint8_t)((src[3 * x] + src[3 * x + 1] + src[3 * x + 2]) / 3);
        else
            memcpy(row, src, (size_t)im->w * 3);
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    uint8_t *res = malloc(size);
    memcpy(res, out, size);
    free(out);
    *len = size;
    return res;
}

static uint8_t *gen_jpeg(const eng_image *im, int q, int orientation, size_t *len)
{
    return gen_jpeg_ex(im, q, orientation, 0, 0, len);
}

/* Adobe-style (inverted) CMYK JPEG filled with one CMYK value. */
static uint8_t *gen_jpeg_cmyk(int w, int h, const uint8_t cmyk[4], size_t *len)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&ci, &out, &size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 4;
    ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    jpeg_start_compress(&ci, TRUE);
    uint8_t *row = malloc((size_t)w * 4);
    for (int x = 0; x < w; x++)
        memcpy(row + 4 * x, cmyk, 4);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    uint8_t *res = malloc(size);
    memcpy(res, out, size);
    free(out);
    *len = size;
    return res;
}

static void gen_stbw_cb(void *ctx, void *data, int size) { gb_put(ctx, data, (size_t)size); }

/* PNG or BMP from raw pixels with comp channels (1..4). */
static uint8_t *gen_png_raw(const uint8_t *px, int w, int h, int comp, size_t *len)
{
    gbuf b = {0};
    stbi_write_png_to_func(gen_stbw_cb, &b, w, h, comp, px, w * comp);
    *len = b.n;
    return b.p;
}
static uint8_t *gen_png(const eng_image *im, size_t *len)
{
    return gen_png_raw(im->rgb, im->w, im->h, 3, len);
}
static uint8_t *gen_bmp(const eng_image *im, size_t *len)
{
    gbuf b = {0};
    stbi_write_bmp_to_func(gen_stbw_cb, &b, im->w, im->h, 3, im->rgb);
    *len = b.n;
    return b.p;
}

/* Inserts an eXIf chunk (orientation) after IHDR of a PNG. */
static uint8_t *gen_png_exif(const eng_image *im, int orientation, size_t *len)
{
    size_t n;
    uint8_t *png = gen_png(im, &n);
    gbuf e = {0}, b = {0};
    gen_exif(&e, orientation);
    gb_put(&b, png, 33); /* signature + IHDR */
    gb_be32(&b, (uint32_t)(e.n - 6));
    gb_put(&b, "eXIf", 4);
    gb_put(&b, e.p + 6, e.n - 6);
    gb_be32(&b, 0); /* CRC: not checked by readers we use */
    gb_put(&b, png + 33, n - 33);
    free(png);
    free(e.p);
    *len = b.n;
    return b.p;
}

/* GIF: the image's colours quantised to a palette of 128 (we use exact
 * colours: the image must have at most 128 distinct colours), LZW stored
 * "uncompressed": 8-bit codes and a clear code every 64 pixels so the code
 * width never grows. frames >= 1 repeats the frame. */
static uint8_t *gen_gif(const eng_image *im, int frames, size_t *len)
{
    uint8_t pal[128][3];
    int npal = 0;
    size_t npx = (size_t)im->w * im->h;
    uint8_t *idx = malloc(npx);
    for (size_t i = 0; i < npx; i++) {
        const uint8_t *c = im->rgb + i * 3;
        int k = 0;
        while (k < npal && memcmp(pal[k], c, 3) != 0)
            k++;
        if (k == npal) {
            if (npal == 128)
                abort();
            memcpy(pal[npal++], c, 3);
        }
        idx[i] = (uint8_t)k;
    }
    gbuf b = {0};
    gb_put(&b, "GIF89a", 6);
    gb_le16(&b, (unsigned)im->w);
    gb_le16(&b, (unsigned)im->h);
    gb_u8(&b, 0x80 | 0x70 | 6); /* global table of 2^(6+1) = 128 entries */
    gb_u8(&b, 0);
    gb_u8(&b, 0);
    for (int k = 0; k < 128; k++)
        gb_put(&b, k < npal ? pal[k] : (const uint8_t[3]){0, 0, 0}, 3);
    for (int f = 0; f < frames; f++) {
        gb_u8(&b, 0x2C);
        gb_le16(&b, 0);
        gb_le16(&b, 0);
        gb_le16(&b, (unsigned)im->w);
        gb_le16(&b, (unsigned)im->h);
        gb_u8(&b, 0);
        gb_u8(&b, 7); /* min code size 7: clear = 128, end = 129, codes 8 bits */
        gbuf codes = {0};
        for (size_t i = 0; i < npx; i++) {
            if (i % 64 == 0)
                gb_u8(&codes, 128);
            gb_u8(&codes, idx[i]);
        }
        gb_u8(&codes, 129);
        for (size_t off = 0; off < codes.n; off += 255) {
            size_t k = codes.n - off < 255 ? codes.n - off : 255;
            gb_u8(&b, (unsigned)k);
            gb_put(&b, codes.p + off, k);
        }
        gb_u8(&b, 0);
        free(codes.p);
    }
    gb_u8(&b, 0x3B);
    free(idx);
    *len = b.n;
    return b.p;
}

/* Lossless WebP (simple format). */
static uint8_t *gen_webp(const eng_image *im, size_t *len)
{
    uint8_t *out = NULL;
    *len = WebPEncodeLosslessRGB(im->rgb, im->w, im->h, im->w * 3, &out);
    uint8_t *res = malloc(*len);
    memcpy(res, out, *len);
    WebPFree(out);
    return res;
}

/* Lossless WebP with alpha: RGBA pixels. */
static uint8_t *gen_webp_rgba(const uint8_t *rgba, int w, int h, size_t *len)
{
    uint8_t *out = NULL;
    *len = WebPEncodeLosslessRGBA(rgba, w, h, w * 4, &out);
    uint8_t *res = malloc(*len);
    memcpy(res, out, *len);
    WebPFree(out);
    return res;
}

/* Extended WebP (VP8X) around the image chunk of a simple WebP: with an EXIF
 * orientation chunk (orientation > 0), or as an animation of `frames` copies. */
static uint8_t *gen_webp_ext(const eng_image *im, int orientation, int frames, size_t *len)
{
    size_t n;
    uint8_t *simple = gen_webp(im, &n);
    const uint8_t *chunk = simple + 12; /* "VP8L" + size + data */
    size_t clen = n - 12;
    gbuf body = {0};
    gb_put(&body, "VP8X", 4);
    gb_le32(&body, 10);
    gb_u8(&body, (orientation > 0 ? 0x08 : 0) | (frames > 0 ? 0x02 : 0));
    gb_le24(&body, 0);
    gb_le24(&body, (uint32_t)im->w - 1);
    gb_le24(&body, (uint32_t)im->h - 1);
    if (frames > 0) {
        gb_put(&body, "ANIM", 4);
        gb_le32(&body, 6);
        gb_le32(&body, 0xffffffff);
        gb_le16(&body, 0);
        for (int f = 0; f < frames; f++) {
            gb_put(&body, "ANMF", 4);
            gb_le32(&body, (uint32_t)(16 + clen));
            gb_le24(&body, 0);
            gb_le24(&body, 0);
            gb_le24(&body, (uint32_t)im->w - 1);
            gb_le24(&body, (uint32_t)im->h - 1);
            gb_le24(&body, 100);
            gb_u8(&body, 0);
            gb_put(&body, chunk, clen);
        }
    } else {
        gb_put(&body, chunk, clen);
    }
    if (orientation > 0) {
        gbuf e = {0};
        gen_exif(&e, orientation);
        gb_put(&body, "EXIF", 4);
        gb_le32(&body, (uint32_t)(e.n - 6));
        gb_put(&body, e.p + 6, e.n - 6);
        if ((e.n - 6) & 1)
            gb_u8(&body, 0);
        free(e.p);
    }
    gbuf b = {0};
    gb_put(&b, "RIFF", 4);
    gb_le32(&b, (uint32_t)(body.n + 4));
    gb_put(&b, "WEBP", 4);
    gb_put(&b, body.p, body.n);
    free(body.p);
    free(simple);
    *len = b.n;
    return b.p;
}

static void gen_tiff_silent(const char *m, const char *f, va_list ap)
{
    (void)m;
    (void)f;
    (void)ap;
}

/* TIFF through libtiff (via a temporary file): RGB 8-bit, `pages`
 * directories, an Orientation tag when orientation > 0, LZW when lzw. */
static uint8_t *gen_tiff(const eng_image *im, int orientation, int pages, int lzw, size_t *len)
{
    char path[] = "/tmp/vfs_test_tiff_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    TIFFSetWarningHandler(gen_tiff_silent);
    TIFF *t = TIFFOpen(path, "w");
    for (int p = 0; p < pages; p++) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)im->w);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)im->h);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, lzw ? COMPRESSION_LZW : COMPRESSION_NONE);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 8);
        if (orientation > 0)
            TIFFSetField(t, TIFFTAG_ORIENTATION, (uint16_t)orientation);
        for (int y = 0; y < im->h; y++)
            TIFFWriteScanline(t, im->rgb + (size_t)y * im->w * 3, (uint32_t)y, 0);
        TIFFWriteDirectory(t);
    }
    TIFFClose(t);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *res = malloc(*len);
    if (fread(res, 1, *len, f) != *len)
        abort();
    fclose(f);
    unlink(path);
    return res;
}

/* 32-bit DIB for an icon: BGRA rows bottom-up plus the 1-bit AND mask;
 * mask_x0..: columns >= mask_x0 are marked transparent in the mask; alpha
 * 0 means "no alpha channel" (all alpha bytes zero, mask decides). */
static void gen_dib(gbuf *b, const eng_image *im, int bpp, int mask_x0)
{
    int w = im->w, h = im->h;
    gb_le32(b, 40);
    gb_le32(b, (uint32_t)w);
    gb_le32(b, (uint32_t)(2 * h));
    gb_le16(b, 1);
    gb_le16(b, (unsigned)bpp);
    gb_le32(b, 0);
    gb_le32(b, 0);
    gb_le32(b, 0);
    gb_le32(b, 0);
    gb_le32(b, 0);
    gb_le32(b, 0);
    size_t xstride = ((size_t)w * bpp + 31) / 32 * 4, mstride = ((size_t)w + 31) / 32 * 4;
    uint8_t *row = calloc(xstride + mstride, 1);
    for (int y = h - 1; y >= 0; y--) {
        memset(row, 0, xstride);
        for (int x = 0; x < w; x++) {
            const uint8_t *c = im->rgb + ((size_t)y * w + x) * 3;
            uint8_t *o = row + (size_t)x * (bpp / 8);
            o[0] = c[2];
            o[1] = c[1];
            o[2] = c[0];
        }
        gb_put(b, row, xstride);
    }
    for (int y = h - 1; y >= 0; y--) {
        memset(row, 0, mstride);
        for (int x = mask_x0; x < w; x++)
            row[x >> 3] |= (uint8_t)(0x80 >> (x & 7));
        gb_put(b, row, mstride);
    }
    free(row);
}

/* ICO with a 16x16 24-bit bitmap entry and a PNG entry of im (the largest). */
static uint8_t *gen_ico(const eng_image *im, int png_entry, size_t *len)
{
    eng_image *small = gen_quadrants(16, 16);
    gbuf e1 = {0}, e2 = {0};
    gen_dib(&e1, small, 24, 16);
    if (png_entry) {
        size_t n;
        uint8_t *p = gen_png(im, &n);
        gb_put(&e2, p, n);
        free(p);
    } else {
        gen_dib(&e2, im, 24, im->w - im->w / 4); /* right quarter transparent */
    }
    gbuf b = {0};
    gb_le16(&b, 0);
    gb_le16(&b, 1);
    gb_le16(&b, 2);
    uint32_t off = 6 + 2 * 16;
    const gbuf *es[2] = {&e1, &e2};
    const eng_image *ims[2] = {small, im};
    for (int i = 0; i < 2; i++) {
        gb_u8(&b, ims[i]->w >= 256 ? 0 : (unsigned)ims[i]->w);
        gb_u8(&b, ims[i]->h >= 256 ? 0 : (unsigned)ims[i]->h);
        gb_u8(&b, 0);
        gb_u8(&b, 0);
        gb_le16(&b, 1);
        gb_le16(&b, 24);
        gb_le32(&b, (uint32_t)es[i]->n);
        gb_le32(&b, off);
        off += (uint32_t)es[i]->n;
    }
    gb_put(&b, e1.p, e1.n);
    gb_put(&b, e2.p, e2.n);
    free(e1.p);
    free(e2.p);
    eng_image_free(small);
    *len = b.n;
    return b.p;
}

/* MPO: first JPEG with an APP2 MPF index right after SOI, then a second
 * JPEG. */
static uint8_t *gen_mpo(const eng_image *a, const eng_image *b2, size_t *len)
{
    size_t n1, n2;
    uint8_t *j1 = gen_jpeg(a, 90, 0, &n1);
    uint8_t *j2 = gen_jpeg(b2, 90, 0, &n2);
    /* APP2: FF E2 len "MPF\0" then a big-endian TIFF IFD with 3 entries */
    gbuf m = {0};
    gb_put(&m, "MM\0*", 4);
    gb_be32(&m, 8);
    gb_be16(&m, 3);
    gb_be16(&m, 0xB000);
    gb_be16(&m, 7);
    gb_be32(&m, 4);
    gb_put(&m, "0100", 4);
    gb_be16(&m, 0xB001);
    gb_be16(&m, 4);
    gb_be32(&m, 1);
    gb_be32(&m, 2);
    gb_be16(&m, 0xB002);
    gb_be16(&m, 7);
    gb_be32(&m, 32);
    gb_be32(&m, 50);
    gb_be32(&m, 0); /* next IFD */
    size_t app2_len = 2 + 4 + m.n + 32;
    size_t first_len = n1 + 2 + app2_len;
    size_t base = 2 + 4 + 4; /* SOI, marker+length, "MPF\0" */
    gb_be32(&m, 0x20030000);
    gb_be32(&m, (uint32_t)first_len);
    gb_be32(&m, 0);
    gb_be32(&m, 0);
    gb_be32(&m, 0x00020002);
    gb_be32(&m, (uint32_t)n2);
    gb_be32(&m, (uint32_t)(first_len - base));
    gb_be32(&m, 0);
    gbuf out = {0};
    gb_put(&out, j1, 2);
    gb_u8(&out, 0xFF);
    gb_u8(&out, 0xE2);
    gb_be16(&out, (unsigned)app2_len);
    gb_put(&out, "MPF\0", 4);
    gb_put(&out, m.p, m.n);
    gb_put(&out, j1 + 2, n1 - 2);
    gb_put(&out, j2, n2);
    free(m.p);
    free(j1);
    free(j2);
    *len = out.n;
    return out.p;
}

#endif
