/* decode.c: decoding entry points, EXIF orientation, pixel conversions and
 * the JPEG/MPO decoder (libjpeg-turbo).
 *
 * Design: every decode probes first, so size limits and truncation are
 * decided from headers before a pixel buffer exists. Per-format decoders
 * return the image as stored; orientation is applied here once for all. The
 * JPEG decoder uses libjpeg-turbo's default (islow DCT, fancy upsampling) so
 * pixels equal Pillow's, grows its output as rows arrive (a forged header
 * cannot make it allocate the full declared size before data proves it), and
 * treats premature end of data as an error rather than grey fill. */
#include "image_int.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

eng_image *img_alloc(int w, int h)
{
    if (w <= 0 || h <= 0 || (uint64_t)w * (uint64_t)h > (uint64_t)SIZE_MAX / 4)
        return NULL;
    eng_image *im = malloc(sizeof *im);
    if (!im)
        return NULL;
    im->w = w;
    im->h = h;
    im->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!im->rgb) {
        free(im);
        return NULL;
    }
    return im;
}

eng_image *eng_image_new(int w, int h)
{
    if (w > ENG_IMAGE_MAX_SIDE || h > ENG_IMAGE_MAX_SIDE)
        return NULL;
    eng_image *im = img_alloc(w, h);
    if (im)
        memset(im->rgb, 0, (size_t)w * (size_t)h * 3);
    return im;
}

void eng_image_free(eng_image *im)
{
    if (!im)
        return;
    free(im->rgb);
    free(im);
}

/* ---- pixel conversions ----------------------------------------------------- */

static inline uint8_t over_white(unsigned c, unsigned a)
{
    return (uint8_t)((c * a + 255u * (255u - a) + 127u) / 255u);
}

void img_rgba_to_rgb(const uint8_t *src, uint8_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++, src += 4, dst += 3) {
        unsigned a = src[3];
        dst[0] = over_white(src[0], a);
        dst[1] = over_white(src[1], a);
        dst[2] = over_white(src[2], a);
    }
}

void img_ga_to_rgb(const uint8_t *src, uint8_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++, src += 2, dst += 3)
        dst[0] = dst[1] = dst[2] = over_white(src[0], src[1]);
}

void img_grey_to_rgb(const uint8_t *src, uint8_t *dst, size_t n)
{
    /* backwards so src may equal dst */
    for (size_t i = n; i-- > 0;)
        dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = src[i];
}

/* ---- orientation ----------------------------------------------------------- */

/* Returns a new image holding im shown as EXIF orientation o says. */
static eng_image *orient(const eng_image *im, int o)
{
    int sw = im->w, sh = im->h;
    int w = o >= 5 ? sh : sw, h = o >= 5 ? sw : sh;
    eng_image *r = img_alloc(w, h);
    if (!r)
        return NULL;
    for (int y = 0; y < h; y++) {
        uint8_t *dst = r->rgb + (size_t)y * w * 3;
        /* source position of (0, y) and the step per output x, in pixels */
        ptrdiff_t x0, y0, dx, dy;
        switch (o) {
        case 2:
            x0 = sw - 1;
            y0 = y;
            dx = -1;
            dy = 0;
            break;
        case 3:
            x0 = sw - 1;
            y0 = sh - 1 - y;
            dx = -1;
            dy = 0;
            break;
        case 4:
            x0 = 0;
            y0 = sh - 1 - y;
            dx = 1;
            dy = 0;
            break;
        case 5:
            x0 = y;
            y0 = 0;
            dx = 0;
            dy = 1;
            break;
        case 6:
            x0 = y;
            y0 = sh - 1;
            dx = 0;
            dy = -1;
            break;
        case 7:
            x0 = sw - 1 - y;
            y0 = sh - 1;
            dx = 0;
            dy = -1;
            break;
        case 8:
            x0 = sw - 1 - y;
            y0 = 0;
            dx = 0;
            dy = 1;
            break;
        default:
            x0 = 0;
            y0 = y;
            dx = 1;
            dy = 0;
            break;
        }
        ptrdiff_t i = (y0 * sw + x0) * 3, step = (dy * sw + dx) * 3;
        for (int x = 0; x < w; x++, dst += 3, i += step) {
            dst[0] = im->rgb[i];
            dst[1] = im->rgb[i + 1];
            dst[2] = im->rgb[i + 2];
        }
    }
    return r;
}

/* ---- JPEG ------------------------------------------------------------------ */

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    eng_status st;
    char msg[JMSG_LENGTH_MAX];
} jerr;

static void jpeg_on_error(j_common_ptr c)
{
    jerr *e = (jerr *)c->err;
    c->err->format_message(c, e->msg);
    if (c->err->msg_code == JERR_OUT_OF_MEMORY)
        e->st = ENG_ENOMEM;
    else if (c->err->msg_code == JERR_BAD_PRECISION)
        e->st = ENG_EUNSUPPORTED;
    longjmp(e->jb, 1);
}

static _Noreturn void jpeg_stop(jerr *e, eng_status st, const char *why)
{
    e->st = st;
    snprintf(e->msg, sizeof e->msg, "%s", why);
    longjmp(e->jb, 1);
}

static void jpeg_on_message(j_common_ptr c, int level)
{
    if (level >= 0)
        return;
    /* data ending early (or a marker inside a scan) is a broken file; other
     * warnings (extraneous bytes, odd restart markers) are tolerated */
    int code = c->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER) {
        jerr *e = (jerr *)c->err;
        c->err->format_message(c, e->msg);
        longjmp(e->jb, 1);
    }
    c->err->num_warnings++;
}

eng_status img_decode_jpeg(const uint8_t *b, size_t n, const img_probe *p, int max_side_hint,
                           eng_image **out, eng_diag *d)
{
    struct jpeg_decompress_struct ci;
    jerr je;
    /* volatile: modified between setjmp and longjmp */
    eng_image *volatile im = NULL;
    uint8_t *volatile cmyk = NULL;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_on_error;
    je.pub.emit_message = jpeg_on_message;
    je.msg[0] = 0;
    je.st = ENG_EFORMAT;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        if (im) {
            free(im->rgb);
            free(im);
        }
        free(cmyk);
        if (je.st == ENG_ENOMEM)
            return eng_fail(d, ENG_ENOMEM, "jpeg: out of memory");
        if (je.st == ENG_EUNSUPPORTED)
            return eng_fail(d, ENG_EUNSUPPORTED, "jpeg variant not supported: %s", je.msg);
        return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: %s", je.msg);
    }
    jpeg_create_decompress(&ci);
    ci.mem->max_memory_to_use = (long)ENG_IMAGE_MAX_DECODE_BYTES;
    jpeg_mem_src(&ci, b, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    int cmyk_in = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    ci.out_color_space = cmyk_in ? JCS_CMYK : JCS_RGB;
    int sw = (int)ci.image_width, sh = (int)ci.image_height;
    if (max_side_hint > 0) {
        int short_side = sw < sh ? sw : sh;
        int m = 8;
        for (int k = 1; k <= 8; k++) {
            if (((int64_t)short_side * k + 7) / 8 >= max_side_hint) {
                m = k;
                break;
            }
        }
        ci.scale_num = (unsigned)m;
        ci.scale_denom = 8;
    }
    jpeg_start_decompress(&ci);
    int w = (int)ci.output_width, h = (int)ci.output_height;
    if (w <= 0 || h <= 0 || w > ENG_IMAGE_MAX_SIDE || h > ENG_IMAGE_MAX_SIDE)
        jpeg_stop(&je, ENG_EFORMAT, "output size out of range");
    size_t row = (size_t)w * 3;
    eng_image *img = malloc(sizeof *img);
    if (!img)
        jpeg_stop(&je, ENG_ENOMEM, "out of memory");
    img->w = w;
    img->h = h;
    img->rgb = NULL;
    im = img;
    if (cmyk_in) {
        cmyk = malloc((size_t)w * 4);
        if (!cmyk)
            jpeg_stop(&je, ENG_ENOMEM, "out of memory");
    }
    /* grow the pixel buffer as rows arrive: at most a doubling ahead of the
     * data actually decoded */
    int cap = h < 64 ? h : 64;
    img->rgb = malloc(row * (size_t)cap);
    if (!img->rgb)
        jpeg_stop(&je, ENG_ENOMEM, "out of memory");
    while ((int)ci.output_scanline < h) {
        int y = (int)ci.output_scanline;
        if (y == cap) {
            int ncap = cap * 2 > h ? h : cap * 2;
            uint8_t *nb = realloc(img->rgb, row * (size_t)ncap);
            if (!nb)
                jpeg_stop(&je, ENG_ENOMEM, "out of memory");
            img->rgb = nb;
            cap = ncap;
        }
        JSAMPROW r = cmyk_in ? cmyk : img->rgb + row * (size_t)y;
        if (jpeg_read_scanlines(&ci, &r, 1) != 1)
            jpeg_stop(&je, ENG_EFORMAT, "decoder stalled");
        if (cmyk_in) {
            /* Adobe writes inverted CMYK: stored values are 255-C etc. */
            int inv = ci.saw_Adobe_marker;
            uint8_t *dst = img->rgb + row * (size_t)y;
            for (int x = 0; x < w; x++) {
                unsigned c = cmyk[4 * x], m = cmyk[4 * x + 1], yy = cmyk[4 * x + 2],
                         k = cmyk[4 * x + 3];
                if (!inv) {
                    c = 255 - c;
                    m = 255 - m;
                    yy = 255 - yy;
                    k = 255 - k;
                }
                dst[3 * x] = (uint8_t)((c * k + 127) / 255);
                dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                dst[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
            }
        }
    }
    /* no jpeg_finish_decompress: the first image is complete; an MPO's other
     * images (or trailing bytes) are not read */
    jpeg_destroy_decompress(&ci);
    free(cmyk);
    (void)p;
    *out = img;
    return ENG_OK;
}

/* ---- entry points ---------------------------------------------------------- */

eng_status eng_image_decode_mem(const void *buf, size_t len, int max_side_hint, eng_image **out,
                                eng_diag *d)
{
    if (!out)
        return eng_fail(d, ENG_EINVAL, "image decode: no output pointer");
    *out = NULL;
    img_probe p;
    eng_status st = img_probe_mem(buf, len, &p, d);
    if (st)
        return st;
    const char *fmt = eng_image_format_name(p.info.format);
    if (p.info.width > ENG_IMAGE_MAX_SIDE || p.info.height > ENG_IMAGE_MAX_SIDE)
        return eng_fail(d, ENG_EUNSUPPORTED, "%s too large: %dx%d exceeds %d pixels a side", fmt,
                        p.info.width, p.info.height, ENG_IMAGE_MAX_SIDE);
    if (p.est_bytes > ENG_IMAGE_MAX_DECODE_BYTES)
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "%s too large to decode safely: %dx%d needs about %zu MB", fmt,
                        p.info.width, p.info.height, p.est_bytes >> 20);
    eng_image *im = NULL;
    switch (p.info.format) {
    case ENG_IMG_JPEG:
    case ENG_IMG_MPO: st = img_decode_jpeg(buf, len, &p, max_side_hint, &im, d); break;
    case ENG_IMG_PNG:
    case ENG_IMG_GIF:
    case ENG_IMG_BMP: st = img_decode_stb(buf, len, &p, &im, d); break;
    case ENG_IMG_ICO: st = img_decode_ico(buf, len, &p, &im, d); break;
    case ENG_IMG_WEBP: st = img_decode_webp(buf, len, &p, &im, d); break;
    case ENG_IMG_TIFF: st = img_decode_tiff(buf, len, &p, &im, d); break;
    default: st = eng_fail(d, ENG_EUNSUPPORTED, "unsupported image format");
    }
    if (st)
        return st;
    if (p.info.orientation > 1) {
        eng_image *r = orient(im, p.info.orientation);
        eng_image_free(im);
        if (!r)
            return eng_fail(d, ENG_ENOMEM, "%s: out of memory", fmt);
        im = r;
    }
    *out = im;
    return ENG_OK;
}

eng_status eng_image_decode_file(const char *path, int max_side_hint, eng_image **out, eng_diag *d)
{
    if (out)
        *out = NULL;
    uint8_t *b;
    size_t n;
    eng_status st = img_read_file(path, &b, &n, d);
    if (st)
        return st;
    st = eng_image_decode_mem(b, n, max_side_hint, out, d);
    free(b);
    return img_prefix_path(st, path, d);
}
