/* vfs_pixels: writes the exact input predict/ gives a backbone for an image:
 * decoded as the engine decodes it (EXIF orientation; a JPEG DCT-scaled by
 * M/8 toward the size, see eng_image_decode_file), squash-resized with the
 * engine's 8-bit bilinear filter to W x H, as raw RGB bytes (H rows of W
 * RGB triples). test_models_onnx.sh feeds these bytes to onnxruntime, so the
 * comparison with predict/ tests the exported graph alone.
 *
 * With "letterbox" the decoded image is first padded to a square with grey
 * 128 at the bottom/right, as a letterboxing detector's features are.
 *
 *   vfs_pixels IMAGE W H OUT.rgb [letterbox] */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "letterbox") == 0)) {
        fprintf(stderr, "usage: vfs_pixels IMAGE W H OUT.rgb [letterbox]\n");
        return 2;
    }
    int w = atoi(argv[2]), h = atoi(argv[3]);
    eng_diag d = {{0}};
    eng_image *im = NULL;
    size_t n = (size_t)w * (size_t)h * 3;
    float *px = w > 0 && h > 0 ? malloc(n * sizeof *px) : NULL;
    unsigned char *out = malloc(n ? n : 1);
    if (!px || !out) {
        fprintf(stderr, "vfs_pixels: bad size or out of memory\n");
        return 1;
    }
    if (eng_image_decode_file(argv[1], w > h ? w : h, &im, &d) != ENG_OK) {
        fprintf(stderr, "vfs_pixels: %s: %s\n", argv[1], d.msg);
        return 1;
    }
    if (argc == 6 && im->w != im->h) {
        int side = im->w > im->h ? im->w : im->h;
        eng_image *sq = eng_image_new(side, side);
        if (!sq) {
            fprintf(stderr, "vfs_pixels: out of memory\n");
            return 1;
        }
        memset(sq->rgb, 128, (size_t)side * side * 3);
        for (int y = 0; y < im->h; y++)
            memcpy(sq->rgb + (size_t)y * side * 3, im->rgb + (size_t)y * im->w * 3,
                   (size_t)im->w * 3);
        eng_image_free(im);
        im = sq;
    }
    if (eng_image_to_tensor(im, NULL, 0, w, h, ENG_PIX_0_255, px, &d) != ENG_OK) {
        fprintf(stderr, "vfs_pixels: %s: %s\n", argv[1], d.msg);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)px[i];
    FILE *f = fopen(argv[4], "wb");
    if (!f || fwrite(out, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "vfs_pixels: cannot write %s\n", argv[4]);
        return 1;
    }
    eng_image_free(im);
    free(px);
    free(out);
    return 0;
}
