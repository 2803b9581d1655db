/* image.h: image decoding, probing, resize-to-tensor, JPEG encoding and drawing.
 *
 * Design: the content decides the format (magic bytes), never the file name.
 * A probe reads headers plus a cheap structural end check (JPEG EOI, PNG IEND,
 * GIF trailer, RIFF/TIFF/BMP/ICO extents) so truncated files are caught before
 * anything large is allocated. Decoding always probes first, refuses sizes over
 * ENG_IMAGE_MAX_SIDE or whose decode would need more than ENG_IMAGE_MAX_DECODE_BYTES,
 * and yields RGB8 with EXIF orientation applied. The resize matches Pillow's
 * 8-bit antialiased bilinear resize (triangle filter widened by the shrink factor,
 * separable, horizontal pass first, 8-bit intermediate), so tensors equal what
 * `Image.resize((W, H), Image.BILINEAR)` gives.
 *
 * Thread safety: every function is reentrant (no global state is written;
 * stb_image's global flags are never set).
 */
#ifndef VFS_ENGINE_IMAGE_H
#define VFS_ENGINE_IMAGE_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

#include "imglimits.h"

/* Largest width or height accepted for decoding (the service's limit, from
 * the one table of image limits). */
#define ENG_IMAGE_MAX_SIDE IMG_MAX_SIDE
/* Estimated peak memory of one decode above which it is refused. */
#define ENG_IMAGE_MAX_DECODE_BYTES ((size_t)1 << 30)
/* Files larger than this are not read (the product limit is 20 MB). */
#define ENG_IMAGE_MAX_FILE_BYTES ((size_t)64 << 20)

typedef enum eng_image_format {
    ENG_IMG_UNKNOWN = 0,
    ENG_IMG_JPEG,
    ENG_IMG_PNG,
    ENG_IMG_GIF,
    ENG_IMG_BMP,
    ENG_IMG_WEBP,
    ENG_IMG_ICO,
    ENG_IMG_TIFF,
    ENG_IMG_MPO,
} eng_image_format;

/* "jpeg", "png", "gif", "bmp", "webp", "ico", "tiff", "mpo"; "unknown" otherwise.
 * Static string. */
const char *eng_image_format_name(eng_image_format f);

typedef struct eng_image_info {
    eng_image_format format;
    int width, height; /* as stored (before EXIF orientation; for ICO the largest entry) */
    int orientation;   /* EXIF orientation 1..8; 1 when absent. 5..8 swap width and height */
    int frames;        /* frames (GIF, animated WebP, TIFF pages, MPO images, ICO entries) */
} eng_image_info;

/* Width and height after orientation (what decoding returns at full size). */
static inline int eng_image_info_display_w(const eng_image_info *i)
{
    return i->orientation >= 5 ? i->height : i->width;
}
static inline int eng_image_info_display_h(const eng_image_info *i)
{
    return i->orientation >= 5 ? i->width : i->height;
}

/* Identifies the format by content and reads the stored size, orientation and
 * frame count. Cheap: headers plus a structural end check; it reports
 * truncated files (ENG_EFORMAT, message starts with "<format> truncated") and
 * non-images (ENG_EUNSUPPORTED, "not an image ..."). It does NOT apply the size
 * limits: a valid 20000x100 PNG probes OK (callers compare with
 * ENG_IMAGE_MAX_SIDE); decoding refuses it. */
eng_status eng_image_probe_file(const char *path, eng_image_info *out, eng_diag *d);
eng_status eng_image_probe_mem(const void *buf, size_t len, eng_image_info *out, eng_diag *d);

/* A decoded image: w*h*3 bytes, rows top to bottom, RGB8. Owned by the image. */
typedef struct eng_image {
    int w, h;
    uint8_t *rgb;
} eng_image;

/* Returns a new w x h image filled with 0 (black), or NULL (bad size or out of
 * memory). Free with eng_image_free. */
eng_image *eng_image_new(int w, int h);
void eng_image_free(eng_image *im);

/* Decodes the first frame to RGB8 with EXIF orientation applied (JPEG/MPO APP1,
 * PNG eXIf, WebP EXIF chunk, TIFF Orientation tag). Grey and palette become RGB;
 * alpha is composited on white. Animated images give their first frame, MPO its
 * first (primary) image, ICO its largest entry.
 *
 * max_side_hint > 0 (JPEG/MPO only): libjpeg-turbo DCT scaling picks the smallest
 * scale M/8 whose result still has its short side >= max_side_hint (no scaling
 * when the image is already smaller). Pass the short side of the largest tensor
 * you will make (e.g. 512); pass 0 for full size (drawing, exact geometry).
 * The returned size can therefore be smaller than the stored size: map
 * coordinates with ratios, not with eng_image_info.
 *
 * Errors: ENG_EFORMAT (corrupt/truncated), ENG_EUNSUPPORTED (not an image, a
 * variant no decoder handles, or larger than ENG_IMAGE_MAX_SIDE / memory limit:
 * message contains "too large"), ENG_ENOMEM, ENG_EIO (file read).
 * *out: a new image, free with eng_image_free; NULL on error. */
eng_status eng_image_decode_file(const char *path, int max_side_hint, eng_image **out, eng_diag *d);
eng_status eng_image_decode_mem(const void *buf, size_t len, int max_side_hint, eng_image **out,
                                eng_diag *d);

/* Pixel ranges a backbone expects. */
typedef enum eng_pixels { ENG_PIX_0_255 = 0, ENG_PIX_0_1, ENG_PIX_M1_1 } eng_pixels;
/* Parses "0..255" | "0..1" | "-1..1". */
eng_status eng_pixels_parse(const char *s, eng_pixels *out);

/* A crop in source pixels (floats; x, y the top-left corner). */
typedef struct eng_crop {
    float x, y, w, h;
} eng_crop;

/* Squash-resizes (aspect ratio not kept) a crop of im (crop NULL = whole image)
 * to out_w x out_h with Pillow's antialiased bilinear filter, mirrors it
 * horizontally when flip != 0, and writes out_h*out_w*3 floats (NHWC, RGB) in
 * range px to dst (caller-owned). Values are the 8-bit resize result mapped to
 * the range: v, v/255 or v/127.5-1. The crop must lie within the image (a
 * rounding overshoot of up to 1e-3 px is clamped) with w, h > 0; out sizes
 * 1..ENG_IMAGE_MAX_SIDE. Not internally threaded; safe to call from many
 * threads at once. */
eng_status eng_image_to_tensor(const eng_image *im, const eng_crop *crop, int flip, int out_w,
                               int out_h, eng_pixels px, float *dst, eng_diag *d);

/* Letterbox variant: resizes the whole image keeping its aspect ratio to the
 * largest size that fits out_w x out_h (same filter), centres it, and fills
 * the rest with the byte value pad (mapped to the range like a pixel, e.g. 0
 * or 114). *placed (may be NULL) receives where the image landed, in tensor
 * pixels, to map boxes back: src_x = (t_x - placed.x) * im->w / placed.w. */
eng_status eng_image_to_tensor_letterbox(const eng_image *im, int out_w, int out_h, uint8_t pad,
                                         eng_pixels px, float *dst, eng_crop *placed, eng_diag *d);

/* Encodes im as a baseline JPEG (4:4:4 so drawn lines and text stay sharp;
 * quality clamped to 1..100).
 * *out: new buffer of *len bytes, free with free(). */
eng_status eng_image_encode_jpeg(const eng_image *im, int quality, uint8_t **out, size_t *len,
                                 eng_diag *d);

/* Draws the outline of the rectangle (x, y, w, h) with lines `thickness` px wide
 * growing inward; clipped to the image. */
void eng_image_draw_rect(eng_image *im, int x, int y, int w, int h, const uint8_t rgb[3],
                         int thickness);

/* Built-in 5x7 bitmap font (ASCII 32..126; other bytes draw as '?'). Each glyph
 * cell is 6x9 units (1 unit spacing, 1 unit margin) times `scale` (>= 1) pixels.
 * Draws s with its top-left corner at (x, y) in fg on a filled bg box covering
 * the whole text (bg NULL: transparent). '\n' starts a new line. Clipped. */
void eng_image_draw_text(eng_image *im, int x, int y, const char *s, const uint8_t fg[3],
                         const uint8_t bg[3], int scale);
/* Size in pixels of the box eng_image_draw_text fills for s at scale. */
void eng_image_text_size(const char *s, int scale, int *w, int *h);

#endif
