/* image_int.h: private interface between the image module's files (probe,
 * per-format decoders, orientation, alpha compositing). Not installed. */
#ifndef VFS_ENGINE_IMAGE_INT_H
#define VFS_ENGINE_IMAGE_INT_H

#include "image.h"

/* The full probe result: the public info plus what the decoders need. */
typedef struct img_probe {
    eng_image_info info;
    size_t est_bytes; /* estimated peak memory of decoding at full size */
    int progressive;  /* JPEG: progressive (whole-image coefficient buffer) */
    size_t sub_off;   /* ICO: chosen entry's data */
    size_t sub_len;
    int sub_png; /* ICO: entry is a PNG (else a DIB without file header) */
} img_probe;

eng_status img_probe_mem(const uint8_t *b, size_t n, img_probe *p, eng_diag *d);

/* Reads a whole file (at most ENG_IMAGE_MAX_FILE_BYTES) into a new malloc'd
 * buffer. */
eng_status img_read_file(const char *path, uint8_t **buf, size_t *len, eng_diag *d);

/* Prefixes d->msg with the quoted path (once); returns st. */
eng_status img_prefix_path(eng_status st, const char *path, eng_diag *d);

/* Orientation value (1..8) of an EXIF TIFF block (starting at "II"/"MM"); 1 if
 * absent or malformed. */
int img_exif_orientation(const uint8_t *t, size_t n);

/* New image with uninitialised pixels, or NULL. */
eng_image *img_alloc(int w, int h);

/* Straight alpha composited on white, n pixels, src RGBA or grey+alpha. */
void img_rgba_to_rgb(const uint8_t *src, uint8_t *dst, size_t n);
void img_ga_to_rgb(const uint8_t *src, uint8_t *dst, size_t n);
void img_grey_to_rgb(const uint8_t *src, uint8_t *dst, size_t n);

/* Per-format decoders: stored orientation (the caller applies EXIF). */
eng_status img_decode_jpeg(const uint8_t *b, size_t n, const img_probe *p, int max_side_hint,
                           eng_image **out, eng_diag *d);
eng_status img_decode_stb(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                          eng_diag *d);
eng_status img_decode_ico(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                          eng_diag *d);
eng_status img_decode_webp(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                           eng_diag *d);
eng_status img_decode_tiff(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                           eng_diag *d);
/* TIFF probe through libtiff (decode_tiff.c). */
eng_status img_probe_tiff(const uint8_t *b, size_t n, img_probe *p, eng_diag *d);

static inline uint32_t img_rd16be(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t img_rd32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t img_rd16le(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }
static inline uint32_t img_rd32le(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

#endif
