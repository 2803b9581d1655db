/* fuzz_image.c: libFuzzer target for untrusted image bytes: probe, then
 * decode (full size and with JPEG scaling), then resize the result to a small
 * tensor (squash, crop, letterbox), as prediction does. Seeds: tests/fuzz/corpus/image (written by
 * `test_image --write-corpus DIR`). */
#include "engine.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_diag d;
    eng_image_info info;
    eng_status st = eng_image_probe_mem(data, size, &info, &d);
    eng_image *im = NULL;
    eng_status st2 = eng_image_decode_mem(data, size, (int)(size & 7) * 8, &im, &d);
    if (st2 == ENG_OK) {
        /* decoding never succeeds where the probe failed */
        if (st != ENG_OK || !im || im->w <= 0 || im->h <= 0)
            abort();
        float t[16 * 16 * 3];
        eng_crop c = {0.5f, 0.25f, (float)im->w / 2, (float)im->h / 2};
        if (eng_image_to_tensor(im, NULL, 1, 16, 16, ENG_PIX_M1_1, t, &d) != ENG_OK)
            abort();
        if (im->w >= 2 && im->h >= 2 &&
            eng_image_to_tensor(im, &c, 0, 7, 5, ENG_PIX_0_1, t, &d) != ENG_OK)
            abort();
        eng_crop placed;
        if (eng_image_to_tensor_letterbox(im, 16, 9, 114, ENG_PIX_0_255, t, &placed, &d) !=
                ENG_OK ||
            placed.x + placed.w > 16 || placed.y + placed.h > 9)
            abort();
    } else if (im) {
        abort();
    }
    eng_image_free(im);
    return 0;
}
