/* decode_tiff.c: TIFF probe and decode through libtiff, reading from memory
 * with TIFFClientOpenExt.
 *
 * Design: errors and warnings go to per-handle handlers (libtiff 4.5's
 * ...ExtR options) that write into the caller's eng_diag, so nothing global is
 * touched; a per-allocation cap bounds what a forged header can make libtiff
 * allocate. Pixels come from the RGBA interface (any photometric, bit depth,
 * compression libtiff knows) with the orientation tag reset to top-left so the
 * raster is the stored layout; the EXIF-style orientation is applied by the
 * caller like for every other format. The raster is premultiplied, so alpha is
 * composited on white as c + 255 - a. */
#include "image_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

typedef struct memf {
    const uint8_t *b;
    size_t n, pos;
    char err[256]; /* first error libtiff reported */
} memf;

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t size)
{
    memf *m = (memf *)h;
    if (size <= 0 || m->pos >= m->n)
        return 0;
    size_t k = (size_t)size < m->n - m->pos ? (size_t)size : m->n - m->pos;
    memcpy(buf, m->b + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t size)
{
    (void)h;
    (void)buf;
    (void)size;
    return -1;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    memf *m = (memf *)h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->n : 0;
    uint64_t np = base + off;
    if (np > m->n)
        np = m->n; /* reads past the end then return 0 bytes */
    m->pos = (size_t)np;
    return (toff_t)np;
}

static int mem_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h) { return (toff_t)((memf *)h)->n; }

static int mem_map(thandle_t h, void **base, toff_t *size)
{
    memf *m = (memf *)h;
    *base = (void *)m->b;
    *size = (toff_t)m->n;
    return 1;
}

static void mem_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h;
    (void)base;
    (void)size;
}

static int on_error(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)t;
    (void)module;
    memf *m = (memf *)user;
    if (!m->err[0])
        vsnprintf(m->err, sizeof m->err, fmt, ap);
    return 1;
}

static int on_warning(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)t;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1;
}

static TIFF *tiff_open(memf *m)
{
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o)
        return NULL;
    TIFFOpenOptionsSetMaxSingleMemAlloc(o, (tmsize_t)(ENG_IMAGE_MAX_DECODE_BYTES / 2));
    TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, m);
    TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, m);
    TIFF *t = TIFFClientOpenExt("memory", "r", (thandle_t)m, mem_read, mem_write, mem_seek,
                                mem_close, mem_size, mem_map, mem_unmap, o);
    TIFFOpenOptionsFree(o);
    return t;
}

/* Reports libtiff's first error; reads of a memory buffer only fail at its
 * end, so an I/O error means the file is cut short. */
static eng_status tiff_error(const memf *m, eng_diag *d)
{
    const char *e = m->err[0] ? m->err : "unreadable";
    int cut = strstr(e, "IO error") || strstr(e, "Read error") || strstr(e, "Cannot read") ||
              strstr(e, "past end") || strstr(e, "beyond");
    return eng_fail(d, ENG_EFORMAT, "tiff %s: %s", cut ? "truncated" : "corrupt", e);
}

/* Checks that the strips or tiles of the current directory lie in the file. */
static eng_status check_extents(TIFF *t, size_t n, eng_diag *d)
{
    int tiled = TIFFIsTiled(t);
    uint32_t cnt = tiled ? TIFFNumberOfTiles(t) : TIFFNumberOfStrips(t);
    uint64_t *offs = NULL, *lens = NULL;
    int ok1 = TIFFGetField(t, tiled ? TIFFTAG_TILEOFFSETS : TIFFTAG_STRIPOFFSETS, &offs);
    int ok2 = TIFFGetField(t, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &lens);
    if (!ok1 || !ok2 || !offs || !lens || cnt == 0)
        return eng_fail(d, ENG_EFORMAT, "tiff corrupt: no %s offsets", tiled ? "tile" : "strip");
    for (uint32_t i = 0; i < cnt; i++) {
        if (offs[i] > n || lens[i] > n - offs[i])
            return eng_fail(d, ENG_EFORMAT, "tiff truncated: %s %u extends past the end",
                            tiled ? "tile" : "strip", i + 1);
    }
    return ENG_OK;
}

eng_status img_probe_tiff(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    p->info.format = ENG_IMG_TIFF;
    if (n < 8)
        return eng_fail(d, ENG_EFORMAT, "tiff truncated: header incomplete");
    int frames = 0;
    if (b[2] == 42 || b[3] == 42) {
        /* classic TIFF: walk the directory chain ourselves to count pages and
         * name truncation before libtiff sees it */
        int le = b[0] == 'I';
        uint64_t off = le ? img_rd32le(b + 4) : img_rd32be(b + 4);
        while (off != 0) {
            if (off > n || n - off < 2)
                return eng_fail(d, ENG_EFORMAT, "tiff truncated: directory %d missing", frames + 1);
            uint64_t cnt = le ? img_rd16le(b + off) : img_rd16be(b + off);
            if (off + 2 + cnt * 12 + 4 > n)
                return eng_fail(d, ENG_EFORMAT, "tiff truncated: directory %d incomplete",
                                frames + 1);
            const uint8_t *nx = b + off + 2 + cnt * 12;
            off = le ? img_rd32le(nx) : img_rd32be(nx);
            if (++frames > 10000)
                return eng_fail(d, ENG_EFORMAT, "tiff corrupt: directory chain loops");
        }
    }
    memf m = {b, n, 0, {0}};
    TIFF *t = tiff_open(&m);
    if (!t)
        return tiff_error(&m, d);
    uint32_t w = 0, h = 0;
    uint16_t orient = 1;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(t, TIFFTAG_ORIENTATION, &orient);
    eng_status st = ENG_OK;
    if (w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff)
        st = eng_fail(d, ENG_EFORMAT, "tiff corrupt: size %ux%u", w, h);
    else
        st = check_extents(t, n, d);
    /* every page's data must be present (the first 64 pages) */
    for (int dir = 1; !st && dir < 64 && TIFFReadDirectory(t); dir++)
        st = check_extents(t, n, d);
    if (!st && m.err[0])
        st = tiff_error(&m, d);
    if (!st) {
        p->info.width = (int)w;
        p->info.height = (int)h;
        p->info.orientation = orient >= 1 && orient <= 8 ? orient : 1;
        if (frames == 0) {
            tdir_t dirs = TIFFNumberOfDirectories(t);
            frames = dirs > 0 ? (int)dirs : 1;
        }
        p->info.frames = frames;
        p->est_bytes = (size_t)w * (size_t)h * 8;
    }
    TIFFClose(t);
    return st;
}

eng_status img_decode_tiff(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                           eng_diag *d)
{
    memf m = {b, n, 0, {0}};
    TIFF *t = tiff_open(&m);
    if (!t)
        return tiff_error(&m, d);
    int w = p->info.width, h = p->info.height;
    char why[1024];
    if (!TIFFRGBAImageOK(t, why)) {
        TIFFClose(t);
        return eng_fail(d, ENG_EUNSUPPORTED, "tiff variant not supported: %s", why);
    }
    /* read rows as stored; orientation is applied by the caller */
    TIFFSetField(t, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
    size_t px = (size_t)w * (size_t)h;
    uint32_t *raster = malloc(px * 4);
    eng_image *im = img_alloc(w, h);
    if (!raster || !im) {
        free(raster);
        eng_image_free(im);
        TIFFClose(t);
        return eng_fail(d, ENG_ENOMEM, "tiff: out of memory");
    }
    if (!TIFFReadRGBAImageOriented(t, (uint32_t)w, (uint32_t)h, raster, ORIENTATION_TOPLEFT, 1)) {
        free(raster);
        eng_image_free(im);
        TIFFClose(t);
        if (!m.err[0])
            snprintf(m.err, sizeof m.err, "pixel data undecodable");
        return tiff_error(&m, d);
    }
    TIFFClose(t);
    uint8_t *dst = im->rgb;
    for (size_t i = 0; i < px; i++, dst += 3) {
        uint32_t v = raster[i];
        unsigned a = TIFFGetA(v), k = 255 - a;
        unsigned r = TIFFGetR(v) + k, g = TIFFGetG(v) + k, bl = TIFFGetB(v) + k;
        dst[0] = (uint8_t)(r > 255 ? 255 : r);
        dst[1] = (uint8_t)(g > 255 ? 255 : g);
        dst[2] = (uint8_t)(bl > 255 ? 255 : bl);
    }
    free(raster);
    *out = im;
    return ENG_OK;
}
