/* probe.c: identifies an image by content and reads its size, orientation
 * and frame count without decoding pixels.
 *
 * Design: each format walks only its container structure (JPEG markers up to
 * the first scan, PNG chunks, GIF blocks, RIFF chunks, BMP/ICO directories;
 * TIFF through libtiff's directory reader) and checks that the data the
 * headers promise is present (JPEG EOI after the scan start, PNG IEND, GIF
 * trailer, RIFF size, pixel array/entry extents). That catches truncation and
 * garbage cheaply. The probe also estimates the peak memory a decode needs so
 * decoding can refuse memory-unsafe files before allocating anything large. */
#include "image_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <webp/decode.h>

const char *eng_image_format_name(eng_image_format f)
{
    switch (f) {
    case ENG_IMG_JPEG: return "jpeg";
    case ENG_IMG_PNG: return "png";
    case ENG_IMG_GIF: return "gif";
    case ENG_IMG_BMP: return "bmp";
    case ENG_IMG_WEBP: return "webp";
    case ENG_IMG_ICO: return "ico";
    case ENG_IMG_TIFF: return "tiff";
    case ENG_IMG_MPO: return "mpo";
    case ENG_IMG_UNKNOWN: break;
    }
    return "unknown";
}

/* ---- EXIF ---------------------------------------------------------------- */

int img_exif_orientation(const uint8_t *t, size_t n)
{
    if (n < 8)
        return 1;
    int le;
    if (t[0] == 'I' && t[1] == 'I')
        le = 1;
    else if (t[0] == 'M' && t[1] == 'M')
        le = 0;
    else
        return 1;
    uint32_t (*r16)(const uint8_t *) = le ? img_rd16le : img_rd16be;
    uint32_t (*r32)(const uint8_t *) = le ? img_rd32le : img_rd32be;
    if (r16(t + 2) != 42)
        return 1;
    uint32_t ifd = r32(t + 4);
    if (ifd > n || n - ifd < 2)
        return 1;
    uint32_t count = r16(t + ifd);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n)
            break;
        if (r16(t + e) == 0x0112 && r16(t + e + 2) == 3 && r32(t + e + 4) == 1) {
            uint32_t v = r16(t + e + 8);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
}

/* ---- JPEG / MPO ------------------------------------------------------------ */

/* Parses the MPF index (TIFF structure after "MPF\0"); base is the offset of
 * that TIFF header in the file, which MP entry offsets are relative to. */
static eng_status parse_mpf(const uint8_t *b, size_t n, size_t base, size_t seglen, img_probe *p,
                            eng_diag *d)
{
    const uint8_t *t = b + base;
    if (seglen < 8 || !((t[0] == 'I' && t[1] == 'I') || (t[0] == 'M' && t[1] == 'M')))
        return eng_fail(d, ENG_EFORMAT, "mpo corrupt: bad MPF header");
    int le = t[0] == 'I';
    uint32_t (*r16)(const uint8_t *) = le ? img_rd16le : img_rd16be;
    uint32_t (*r32)(const uint8_t *) = le ? img_rd32le : img_rd32be;
    uint32_t ifd = r32(t + 4);
    if (ifd > seglen || seglen - ifd < 2)
        return eng_fail(d, ENG_EFORMAT, "mpo corrupt: MPF index outside its segment");
    uint32_t count = r16(t + ifd);
    uint32_t nimg = 0, ent_off = 0, ent_len = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > seglen)
            return eng_fail(d, ENG_EFORMAT, "mpo corrupt: MPF index entries cut short");
        uint32_t tag = r16(t + e);
        if (tag == 0xB001)
            nimg = r32(t + e + 8);
        else if (tag == 0xB002) {
            ent_len = r32(t + e + 4);
            ent_off = r32(t + e + 8);
        }
    }
    if (nimg < 1 || nimg > 1000)
        return eng_fail(d, ENG_EFORMAT, "mpo corrupt: %u images declared", nimg);
    p->info.frames = (int)nimg;
    if (ent_len < (uint64_t)nimg * 16 || ent_off > seglen || seglen - ent_off < ent_len)
        return eng_fail(d, ENG_EFORMAT, "mpo corrupt: MP entry table outside its segment");
    for (uint32_t i = 1; i < nimg; i++) {
        const uint8_t *e = t + ent_off + (size_t)i * 16;
        uint64_t size = r32(e + 4), off = r32(e + 8);
        if (off == 0 || base + off + size > n)
            return eng_fail(d, ENG_EFORMAT,
                            "mpo truncated: image %u of %u extends past the end of the file", i + 1,
                            nimg);
        if (size < 4 || b[base + off] != 0xFF || b[base + off + 1] != 0xD8)
            return eng_fail(d, ENG_EFORMAT, "mpo corrupt: image %u is not a jpeg", i + 1);
    }
    return ENG_OK;
}

static int is_sof(int m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

static eng_status probe_jpeg(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    size_t pos = 2, scan = 0;
    int have_sof = 0, have_exif = 0, have_mpf = 0, ncomp = 0;
    p->info.format = ENG_IMG_JPEG;
    while (!scan) {
        if (pos >= n)
            return eng_fail(d, ENG_EFORMAT, "jpeg truncated: file ends inside the headers");
        if (b[pos] != 0xFF)
            return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: marker expected at offset %zu", pos);
        while (pos < n && b[pos] == 0xFF)
            pos++;
        if (pos >= n)
            return eng_fail(d, ENG_EFORMAT, "jpeg truncated: file ends inside the headers");
        int m = b[pos++];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7))
            continue;
        if (m == 0xD9 || m == 0xD8 || m == 0x00)
            return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: unexpected marker 0x%02X at offset %zu",
                            m, pos - 1);
        if (n - pos < 2)
            return eng_fail(d, ENG_EFORMAT, "jpeg truncated: file ends inside the headers");
        size_t len = img_rd16be(b + pos);
        if (len < 2)
            return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: segment length %zu at offset %zu", len,
                            pos);
        if (len > n - pos)
            return eng_fail(d, ENG_EFORMAT, "jpeg truncated: file ends inside the headers");
        const uint8_t *s = b + pos + 2;
        size_t sl = len - 2;
        if (m == 0xE1 && !have_exif && sl >= 6 && memcmp(s, "Exif\0\0", 6) == 0) {
            have_exif = 1;
            p->info.orientation = img_exif_orientation(s + 6, sl - 6);
        } else if (m == 0xE2 && !have_mpf && sl >= 4 && memcmp(s, "MPF\0", 4) == 0) {
            have_mpf = 1;
            eng_status st = parse_mpf(b, n, pos + 6, sl - 4, p, d);
            if (st)
                return st;
            p->info.format = ENG_IMG_MPO;
        } else if (is_sof(m) && !have_sof) {
            if (sl < 6)
                return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: short frame header");
            p->info.height = (int)img_rd16be(s + 1);
            p->info.width = (int)img_rd16be(s + 3);
            ncomp = s[5];
            if (ncomp < 1 || ncomp > 4 || sl < 6 + 3 * (size_t)ncomp)
                return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: %d components", ncomp);
            if (p->info.width == 0 || p->info.height == 0)
                return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: size %dx%d", p->info.width,
                                p->info.height);
            p->progressive = m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE;
            have_sof = 1;
        } else if (m == 0xDA) {
            if (!have_sof)
                return eng_fail(d, ENG_EFORMAT, "jpeg corrupt: image data before frame header");
            scan = pos + len;
        }
        pos += len;
    }
    /* Entropy-coded data stuffs every 0xFF, so FF D9 after the first scan
     * starts can only be the end-of-image marker; bytes after it are ignored. */
    int eoi = 0;
    if (n >= 2 && scan <= n - 2) {
        for (size_t i = n - 2;; i--) {
            if (b[i] == 0xFF && b[i + 1] == 0xD9) {
                eoi = 1;
                break;
            }
            if (i == scan)
                break;
        }
    }
    if (!eoi)
        return eng_fail(d, ENG_EFORMAT, "jpeg truncated: end-of-image marker missing");
    size_t px = (size_t)p->info.width * (size_t)p->info.height;
    p->est_bytes = px * 3 + (p->progressive ? px * (size_t)ncomp * 2 : 0);
    return ENG_OK;
}

/* ---- PNG ------------------------------------------------------------------- */

static eng_status probe_png(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    p->info.format = ENG_IMG_PNG;
    size_t pos = 8;
    if (n < 33 || img_rd32be(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0)
        return eng_fail(d, ENG_EFORMAT,
                        n < 33 ? "png truncated: header incomplete"
                               : "png corrupt: first chunk is not IHDR");
    uint32_t w = img_rd32be(b + 16), h = img_rd32be(b + 20);
    int depth = b[24], ctype = b[25];
    if (w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff)
        return eng_fail(d, ENG_EFORMAT, "png corrupt: size %ux%u", w, h);
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    if (ctype > 6 || chans[ctype] == 0 ||
        !(depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16))
        return eng_fail(d, ENG_EFORMAT, "png corrupt: colour type %d depth %d", ctype, depth);
    p->info.width = (int)w;
    p->info.height = (int)h;
    uint64_t idat = 0;
    int iend = 0;
    while (!iend) {
        if (n - pos < 12)
            return eng_fail(d, ENG_EFORMAT,
                            pos == n ? "png truncated: IEND chunk missing"
                                     : "png truncated: last chunk incomplete");
        uint32_t len = img_rd32be(b + pos);
        const uint8_t *type = b + pos + 4;
        if (len > 0x7fffffff)
            return eng_fail(d, ENG_EFORMAT, "png corrupt: chunk length %u at offset %zu", len, pos);
        if (len > n - pos - 12)
            return eng_fail(d, ENG_EFORMAT, "png truncated: chunk '%.4s' incomplete",
                            (const char *)type);
        const uint8_t *data = b + pos + 8;
        if (memcmp(type, "IDAT", 4) == 0)
            idat += len;
        else if (memcmp(type, "IEND", 4) == 0)
            iend = 1;
        else if (memcmp(type, "acTL", 4) == 0 && len >= 8)
            p->info.frames = (int)(img_rd32be(data) > 100000 ? 100000 : img_rd32be(data));
        else if (memcmp(type, "eXIf", 4) == 0)
            p->info.orientation = img_exif_orientation(data, len);
        pos += 12 + (size_t)len;
    }
    if (p->info.frames < 1)
        p->info.frames = 1;
    if (idat == 0)
        return eng_fail(d, ENG_EFORMAT, "png corrupt: no image data (IDAT)");
    /* deflate expands at most ~1032:1; filtered rows need h*(1+rowbytes) */
    uint64_t rowbytes = ((uint64_t)w * (uint64_t)chans[ctype] * (uint64_t)depth + 7) / 8;
    uint64_t raw = (uint64_t)h * (1 + rowbytes);
    if (idat * 1040 + 4096 < raw)
        return eng_fail(d, ENG_EFORMAT, "png corrupt: %llu bytes of image data cannot hold %ux%u",
                        (unsigned long long)idat, w, h);
    uint64_t px = (uint64_t)w * h;
    uint64_t est = raw + px * (uint64_t)(depth == 16 ? 8 : 4) + px * 7;
    p->est_bytes = est > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)est;
    return ENG_OK;
}

/* ---- GIF ------------------------------------------------------------------- */

/* Skips data sub-blocks from *pos; returns 0 when the file ends first. */
static int gif_skip_blocks(const uint8_t *b, size_t n, size_t *pos, uint64_t *bytes)
{
    for (;;) {
        if (*pos >= n)
            return 0;
        size_t len = b[(*pos)++];
        if (len == 0)
            return 1;
        if (len > n - *pos)
            return 0;
        *pos += len;
        if (bytes)
            *bytes += len;
    }
}

static eng_status probe_gif(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    p->info.format = ENG_IMG_GIF;
    if (n < 13)
        return eng_fail(d, ENG_EFORMAT, "gif truncated: header incomplete");
    p->info.width = (int)img_rd16le(b + 6);
    p->info.height = (int)img_rd16le(b + 8);
    if (p->info.width == 0 || p->info.height == 0)
        return eng_fail(d, ENG_EFORMAT, "gif corrupt: size %dx%d", p->info.width, p->info.height);
    size_t pos = 13;
    if (b[10] & 0x80)
        pos += 3u << ((b[10] & 7) + 1);
    int frames = 0;
    uint64_t first_px = 0, first_data = 0;
    for (;;) {
        if (pos >= n)
            return eng_fail(d, ENG_EFORMAT, "gif truncated: trailer missing");
        int c = b[pos++];
        if (c == 0x3B)
            break;
        if (c == 0x21) {
            if (pos >= n || (pos++, !gif_skip_blocks(b, n, &pos, NULL)))
                return eng_fail(d, ENG_EFORMAT, "gif truncated: extension block incomplete");
        } else if (c == 0x2C) {
            if (n - pos < 10)
                return eng_fail(d, ENG_EFORMAT, "gif truncated: image descriptor incomplete");
            uint64_t fw = img_rd16le(b + pos + 4), fh = img_rd16le(b + pos + 6);
            int flags = b[pos + 8];
            pos += 9;
            if (flags & 0x80)
                pos += 3u << ((flags & 7) + 1);
            pos++; /* LZW minimum code size */
            uint64_t bytes = 0;
            if (pos > n || !gif_skip_blocks(b, n, &pos, &bytes))
                return eng_fail(d, ENG_EFORMAT, "gif truncated: frame %d data incomplete",
                                frames + 1);
            if (frames == 0) {
                first_px = fw * fh;
                first_data = bytes;
            }
            frames++;
        } else {
            return eng_fail(d, ENG_EFORMAT, "gif corrupt: unknown block 0x%02X at offset %zu", c,
                            pos - 1);
        }
    }
    if (frames == 0)
        return eng_fail(d, ENG_EFORMAT, "gif corrupt: no frames");
    /* one 12-bit LZW code yields at most 4096 pixels */
    if (first_data * 2731 + 64 < first_px)
        return eng_fail(d, ENG_EFORMAT, "gif corrupt: frame 1 data too short for its size");
    p->info.frames = frames;
    /* stb keeps canvas, background (4 B/px each) and a history map (1 B/px) */
    p->est_bytes = (size_t)p->info.width * (size_t)p->info.height * 16;
    return ENG_OK;
}

/* ---- BMP ------------------------------------------------------------------- */

static eng_status probe_bmp(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    p->info.format = ENG_IMG_BMP;
    if (n < 26)
        return eng_fail(d, ENG_EFORMAT, "bmp truncated: header incomplete");
    uint32_t off = img_rd32le(b + 10), hs = img_rd32le(b + 14);
    int64_t w, h;
    int bpp;
    uint32_t comp = 0, sizeimg = 0;
    if (hs == 12) {
        w = img_rd16le(b + 18);
        h = img_rd16le(b + 20);
        bpp = (int)img_rd16le(b + 24);
    } else if (hs >= 40 && hs <= 256) {
        if (n < 14 + 40)
            return eng_fail(d, ENG_EFORMAT, "bmp truncated: header incomplete");
        w = (int32_t)img_rd32le(b + 18);
        h = (int32_t)img_rd32le(b + 22);
        bpp = (int)img_rd16le(b + 28);
        comp = img_rd32le(b + 30);
        sizeimg = img_rd32le(b + 34);
    } else {
        return eng_fail(d, ENG_EFORMAT, "bmp corrupt: header size %u", hs);
    }
    if (h < 0)
        h = -h;
    if (w <= 0 || h <= 0 || w > 0x7fffffff || h > 0x7fffffff)
        return eng_fail(d, ENG_EFORMAT, "bmp corrupt: size %lldx%lld", (long long)w, (long long)h);
    if (!(bpp == 1 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32))
        return eng_fail(d, ENG_EFORMAT, "bmp corrupt: %d bits per pixel", bpp);
    p->info.width = (int)w;
    p->info.height = (int)h;
    if (off < 14 + hs || off > n)
        return eng_fail(d, ENG_EFORMAT,
                        off > n ? "bmp truncated: pixel data missing"
                                : "bmp corrupt: pixel data offset %u inside the header",
                        off);
    uint64_t need;
    if (comp == 1 || comp == 2)
        need = sizeimg;
    else
        need = ((uint64_t)w * (uint64_t)bpp + 31) / 32 * 4 * (uint64_t)h;
    if (need > n - off)
        return eng_fail(d, ENG_EFORMAT, "bmp truncated: pixel data needs %llu bytes, file has %zu",
                        (unsigned long long)need, n - off);
    p->est_bytes = (size_t)w * (size_t)h * 11;
    return ENG_OK;
}

/* ---- WebP ------------------------------------------------------------------ */

static eng_status probe_webp(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    p->info.format = ENG_IMG_WEBP;
    uint64_t riff = (uint64_t)img_rd32le(b + 4) + 8;
    if (riff > n)
        return eng_fail(d, ENG_EFORMAT, "webp truncated: file has %zu of %llu bytes", n,
                        (unsigned long long)riff);
    if (riff < 20)
        return eng_fail(d, ENG_EFORMAT, "webp corrupt: RIFF size %llu", (unsigned long long)riff);
    size_t end = (size_t)riff, pos = 12;
    int anmf = 0, orientation = 1, have_img = 0;
    while (pos + 8 <= end) {
        uint64_t len = img_rd32le(b + pos + 4);
        if (len > end - pos - 8)
            return eng_fail(d, ENG_EFORMAT, "webp truncated: chunk '%.4s' incomplete",
                            (const char *)b + pos);
        const uint8_t *c = b + pos;
        if (memcmp(c, "ANMF", 4) == 0)
            anmf++;
        else if (memcmp(c, "EXIF", 4) == 0) {
            const uint8_t *e = c + 8;
            size_t el = (size_t)len;
            if (el >= 6 && memcmp(e, "Exif\0\0", 6) == 0) {
                e += 6;
                el -= 6;
            }
            orientation = img_exif_orientation(e, el);
        } else if (memcmp(c, "VP8 ", 4) == 0 || memcmp(c, "VP8L", 4) == 0)
            have_img = 1;
        pos += 8 + (size_t)len + (len & 1);
    }
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(b, end, &f) != VP8_STATUS_OK)
        return eng_fail(d, ENG_EFORMAT, "webp corrupt: bitstream header unreadable");
    if (!have_img && !anmf)
        return eng_fail(d, ENG_EFORMAT, "webp corrupt: no image data");
    if (f.width <= 0 || f.height <= 0)
        return eng_fail(d, ENG_EFORMAT, "webp corrupt: size %dx%d", f.width, f.height);
    p->info.width = f.width;
    p->info.height = f.height;
    p->info.frames = anmf > 0 ? anmf : 1;
    p->info.orientation = orientation;
    /* animation decoding keeps two RGBA canvases */
    p->est_bytes = (size_t)f.width * (size_t)f.height * (f.has_animation ? 12 : 7);
    return ENG_OK;
}

/* ---- ICO ------------------------------------------------------------------- */

static eng_status probe_ico(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    p->info.format = ENG_IMG_ICO;
    uint32_t count = img_rd16le(b + 4);
    if (count == 0)
        return eng_fail(d, ENG_EFORMAT, "ico corrupt: no entries");
    if (6 + (size_t)count * 16 > n)
        return eng_fail(d, ENG_EFORMAT, "ico truncated: directory incomplete");
    uint64_t best_px = 0;
    int best_bpp = -1;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = b + 6 + (size_t)i * 16;
        uint64_t size = img_rd32le(e + 8), off = img_rd32le(e + 12);
        if (off < 6 + (uint64_t)count * 16 || off + size > n)
            return eng_fail(d, ENG_EFORMAT, "ico truncated: entry %u extends past the end", i + 1);
        const uint8_t *s = b + off;
        int64_t w, h;
        int bpp, png = 0;
        if (size >= 24 && memcmp(s, "\x89PNG\r\n\x1a\n", 8) == 0) {
            png = 1;
            w = img_rd32be(s + 16);
            h = img_rd32be(s + 20);
            bpp = 32;
        } else if (size >= 40 && img_rd32le(s) >= 40) {
            w = (int32_t)img_rd32le(s + 4);
            h = (int32_t)img_rd32le(s + 8) / 2;
            bpp = (int)img_rd16le(s + 14);
        } else {
            return eng_fail(d, ENG_EFORMAT, "ico corrupt: entry %u is neither png nor bitmap",
                            i + 1);
        }
        if (w <= 0 || h <= 0 || w > 0x7fffffff || h > 0x7fffffff)
            return eng_fail(d, ENG_EFORMAT, "ico corrupt: entry %u size %lldx%lld", i + 1,
                            (long long)w, (long long)h);
        uint64_t px = (uint64_t)w * (uint64_t)h;
        if (px > best_px || (px == best_px && bpp > best_bpp)) {
            best_px = px;
            best_bpp = bpp;
            p->info.width = (int)w;
            p->info.height = (int)h;
            p->sub_off = (size_t)off;
            p->sub_len = (size_t)size;
            p->sub_png = png;
        }
    }
    p->info.frames = (int)count;
    if (p->sub_png) {
        /* the chosen PNG must itself be whole */
        img_probe sub;
        memset(&sub, 0, sizeof sub);
        sub.info.orientation = 1;
        eng_status st = probe_png(b + p->sub_off, p->sub_len, &sub, d);
        if (st) {
            char m[sizeof d->msg];
            snprintf(m, sizeof m, "%s", d ? d->msg : "");
            return eng_fail(d, st, "ico entry: %s", m);
        }
        p->est_bytes = sub.est_bytes;
    } else {
        p->est_bytes = (size_t)best_px * 7;
    }
    return ENG_OK;
}

/* ---- dispatch -------------------------------------------------------------- */

eng_status img_probe_mem(const uint8_t *b, size_t n, img_probe *p, eng_diag *d)
{
    memset(p, 0, sizeof *p);
    p->info.orientation = 1;
    p->info.frames = 1;
    if (!b || n == 0)
        return eng_fail(d, ENG_EUNSUPPORTED, "not an image: empty");
    eng_status st;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        st = probe_jpeg(b, n, p, d);
    else if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
        st = probe_png(b, n, p, d);
    else if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        st = probe_gif(b, n, p, d);
    else if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        st = probe_webp(b, n, p, d);
    else if (n >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0 ||
                        memcmp(b, "II+\0", 4) == 0 || memcmp(b, "MM\0+", 4) == 0))
        st = img_probe_tiff(b, n, p, d);
    else if (n >= 2 && b[0] == 'B' && b[1] == 'M')
        st = probe_bmp(b, n, p, d);
    else if (n >= 6 && b[0] == 0 && b[1] == 0 && (b[2] == 1 || b[2] == 2) && b[3] == 0)
        st = probe_ico(b, n, p, d);
    else if (n >= 12 && memcmp(b + 4, "ftyp", 4) == 0)
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "unsupported image format '%.4s' (heif/avif/mp4 family)",
                        (const char *)b + 8);
    else
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "not an image: unrecognised content (starts %02X %02X %02X %02X)", b[0],
                        n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
    if (st)
        return st;
    if (p->info.width <= 0 || p->info.height <= 0)
        return eng_fail(d, ENG_EFORMAT, "%s corrupt: size %dx%d",
                        eng_image_format_name(p->info.format), p->info.width, p->info.height);
    return ENG_OK;
}

eng_status eng_image_probe_mem(const void *buf, size_t len, eng_image_info *out, eng_diag *d)
{
    img_probe p;
    eng_status st = img_probe_mem(buf, len, &p, d);
    if (out)
        *out = st == ENG_OK ? p.info : (eng_image_info){ENG_IMG_UNKNOWN, 0, 0, 1, 0};
    return st;
}

eng_status img_read_file(const char *path, uint8_t **buf, size_t *len, eng_diag *d)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return eng_fail(d, errno == ENOENT ? ENG_ENOTFOUND : ENG_EIO, "'%s': %s", path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return eng_fail(d, ENG_EIO, "'%s': not a regular file", path);
    }
    if ((uint64_t)sb.st_size > ENG_IMAGE_MAX_FILE_BYTES) {
        close(fd);
        return eng_fail(d, ENG_EUNSUPPORTED, "'%s': file too large (%lld bytes)", path,
                        (long long)sb.st_size);
    }
    size_t cap = (size_t)sb.st_size, n = 0;
    uint8_t *b = malloc(cap ? cap : 1);
    if (!b) {
        close(fd);
        return eng_fail(d, ENG_ENOMEM, "'%s': out of memory", path);
    }
    while (n < cap) {
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(b);
            close(fd);
            return eng_fail(d, ENG_EIO, "'%s': read failed: %s", path, strerror(e));
        }
        if (r == 0)
            break; /* shrank while reading: probe sees the short file */
        n += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return ENG_OK;
}

/* Prefixes d->msg with the quoted path. */
eng_status img_prefix_path(eng_status st, const char *path, eng_diag *d)
{
    if (st && d && strncmp(d->msg, "'", 1) != 0) {
        char m[sizeof d->msg];
        snprintf(m, sizeof m, "%s", d->msg);
        eng_fail(d, st, "'%s': %s", path, m);
    }
    return st;
}

eng_status eng_image_probe_file(const char *path, eng_image_info *out, eng_diag *d)
{
    uint8_t *b;
    size_t n;
    eng_status st = img_read_file(path, &b, &n, d);
    if (st) {
        if (out)
            *out = (eng_image_info){ENG_IMG_UNKNOWN, 0, 0, 1, 0};
        return st;
    }
    st = eng_image_probe_mem(b, n, out, d);
    free(b);
    return img_prefix_path(st, path, d);
}
