/* decode_webp.c: WebP through libwebp. Still images decode straight into our
 * buffer (RGB, or RGBA composited on white); animations give their first
 * frame through libwebpdemux's animation decoder, which composes the canvas. */
#include "image_int.h"

#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

eng_status img_decode_webp(const uint8_t *b, size_t n, const img_probe *p, eng_image **out,
                           eng_diag *d)
{
    (void)p;
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(b, n, &f) != VP8_STATUS_OK || f.width <= 0 || f.height <= 0)
        return eng_fail(d, ENG_EFORMAT, "webp corrupt: bitstream header unreadable");
    size_t px = (size_t)f.width * (size_t)f.height;
    if (f.has_animation) {
        WebPData data = {b, n};
        WebPAnimDecoderOptions opt;
        if (!WebPAnimDecoderOptionsInit(&opt))
            return eng_fail(d, ENG_EUNSUPPORTED, "webp: libwebp version mismatch");
        opt.color_mode = MODE_RGBA;
        opt.use_threads = 0;
        WebPAnimDecoder *dec = WebPAnimDecoderNew(&data, &opt);
        if (!dec)
            return eng_fail(d, ENG_EFORMAT, "webp corrupt: animation unreadable");
        WebPAnimInfo info;
        uint8_t *frame = NULL;
        int ts = 0;
        if (!WebPAnimDecoderGetInfo(dec, &info) || !WebPAnimDecoderGetNext(dec, &frame, &ts) ||
            !frame) {
            WebPAnimDecoderDelete(dec);
            return eng_fail(d, ENG_EFORMAT, "webp corrupt: first frame unreadable");
        }
        eng_image *im = img_alloc((int)info.canvas_width, (int)info.canvas_height);
        if (!im) {
            WebPAnimDecoderDelete(dec);
            return eng_fail(d, ENG_ENOMEM, "webp: out of memory");
        }
        img_rgba_to_rgb(frame, im->rgb, (size_t)im->w * (size_t)im->h);
        WebPAnimDecoderDelete(dec);
        *out = im;
        return ENG_OK;
    }
    eng_image *im = img_alloc(f.width, f.height);
    if (!im)
        return eng_fail(d, ENG_ENOMEM, "webp: out of memory");
    if (!f.has_alpha) {
        if (!WebPDecodeRGBInto(b, n, im->rgb, px * 3, f.width * 3)) {
            eng_image_free(im);
            return eng_fail(d, ENG_EFORMAT, "webp corrupt: image data undecodable");
        }
    } else {
        uint8_t *rgba = malloc(px * 4);
        if (!rgba) {
            eng_image_free(im);
            return eng_fail(d, ENG_ENOMEM, "webp: out of memory");
        }
        if (!WebPDecodeRGBAInto(b, n, rgba, px * 4, f.width * 4)) {
            free(rgba);
            eng_image_free(im);
            return eng_fail(d, ENG_EFORMAT, "webp corrupt: image data undecodable");
        }
        img_rgba_to_rgb(rgba, im->rgb, px);
        free(rgba);
    }
    *out = im;
    return ENG_OK;
}
