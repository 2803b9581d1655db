/* imglimits.h: the one table of image limits (SPEC sections 3 and 5), used by
 * dataset validation (coco/validate.c), writes into the tree (fs/area.h),
 * URL fetches (fs/fetch.h), predict/ and evaluations (fs/models_recipes.c),
 * the HTTP API (fs/http_int.h) and the decoder (engine/image/image.h).
 * Messages are built from these values (IMG_LIMIT_TEXT stringifies them),
 * so a limit changes here and nowhere else.
 *
 *   bytes   at most IMG_MAX_MB MB (MiB: the write path refuses a larger
 *           file with EFBIG as it arrives)
 *   sides   width and height over IMG_MIN_SIDE and at most IMG_MAX_SIDE
 *           pixels, as displayed (after the EXIF orientation)
 *   formats IMG_FORMATS_TEXT, decided by content, not by extension */
#ifndef VFS_IMGLIMITS_H
#define VFS_IMGLIMITS_H

#include <stdint.h>

#define IMG_MAX_MB 20
#define IMG_MAX_BYTES ((int64_t)IMG_MAX_MB << 20)
#define IMG_MIN_SIDE 50    /* width and height must be over this */
#define IMG_MAX_SIDE 10240 /* ... and at most this */
#define IMG_FORMATS_TEXT "JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO"

#define IMG_LIMIT_TEXT_(x) #x
/* IMG_LIMIT_TEXT(IMG_MIN_SIDE) is "50" */
#define IMG_LIMIT_TEXT(x) IMG_LIMIT_TEXT_(x)
#define IMG_MAX_BYTES_TEXT IMG_LIMIT_TEXT(IMG_MAX_MB) " MB"
#define IMG_SIDES_TEXT                                                                             \
    "width and height over " IMG_LIMIT_TEXT(IMG_MIN_SIDE) " and at most " IMG_LIMIT_TEXT(          \
        IMG_MAX_SIDE) " pixels"

/* 1 when a w x h image (as displayed) is within the sides of the table. */
static inline int img_sides_ok(int64_t w, int64_t h)
{
    return w > IMG_MIN_SIDE && h > IMG_MIN_SIDE && w <= IMG_MAX_SIDE && h <= IMG_MAX_SIDE;
}

#endif
