/* bench_features.c: writes the pooled embeddings of a list of images, for
 * studying classification recipes offline (bench/clsprobe.py reads them).
 *
 *   bench_features --backbone DIR --list PATHS.txt --out FEATS.f32
 *                  [--size S] [--flip] [--crop X,Y,W,H] [--threads 2] [--tap NODE]
 *
 * PATHS.txt holds one image path per line. FEATS.f32 is n x dim float32,
 * row i for line i, exactly what the classification recipe's feature pass
 * computes for that backbone and size (the embedding node,
 * global-average-pooled); --flip mirrors every image first and --crop takes
 * the same region of each (fractions of its width and height); --tap takes
 * another node of the graph instead of the embedding (e.g. "logits"),
 * pooled the same way. The dimension is printed on stdout.
 */
#include "engine.h"
#include "bench_util.h"

#include <string.h>

int main(int argc, char **argv)
{
    const char *bbdir = NULL, *list = NULL, *out = NULL, *tap = NULL;
    int size = 0, flip = 0, threads = 2, cropped = 0;
    eng_crop crop = {0, 0, 1, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--flip")) {
            flip = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_features: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--backbone"))
            bbdir = v;
        else if (!strcmp(a, "--list"))
            list = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--size"))
            size = atoi(v);
        else if (!strcmp(a, "--crop"))
            cropped = sscanf(v, "%f,%f,%f,%f", &crop.x, &crop.y, &crop.w, &crop.h) == 4;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--tap"))
            tap = v;
        else {
            fprintf(stderr, "bench_features: unknown option %s\n", a);
            return 2;
        }
    }
    if (!bbdir || !list || !out) {
        fprintf(stderr, "usage: bench_features --backbone DIR --list PATHS.txt --out FEATS.f32 "
                        "[--size S] [--flip] [--crop X,Y,W,H] [--threads N] [--tap NODE]\n");
        return 2;
    }
    char *txt = slurp(list);
    if (!txt) {
        fprintf(stderr, "bench_features: cannot read %s\n", list);
        return 1;
    }
    int n = 0, cap = 0;
    const char **paths = NULL;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            const char **p = realloc(paths, (size_t)cap * sizeof *p);
            if (!p)
                return 1;
            paths = p;
        }
        paths[n++] = line;
    }
    eng_diag d = {0};
    eng_backbone *bb = NULL;
    int dim = 0;
    if (eng_backbone_open(bbdir, &bb, &d) != ENG_OK ||
        eng_backbone_embed_dim(bb, size, tap ? &tap : NULL, tap ? 1 : 0, &dim, &d) != ENG_OK) {
        fprintf(stderr, "bench_features: %s\n", d.msg);
        return 1;
    }
    float *x = malloc((size_t)n * dim * sizeof *x);
    int *flips = calloc((size_t)n, sizeof *flips);
    eng_crop *crops = calloc((size_t)n, sizeof *crops);
    if (!x || !flips || !crops)
        return 1;
    for (int i = 0; i < n; i++) {
        flips[i] = flip;
        crops[i] = crop;
    }
    eng_run_opts o = {.threads = threads};
    if (eng_backbone_embed_files_aug(bb, paths, cropped ? crops : NULL, flips, n, size,
                                     tap ? &tap : NULL, tap ? 1 : 0, x, NULL, &o, &d) != ENG_OK) {
        fprintf(stderr, "bench_features: %s\n", d.msg);
        return 1;
    }
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(x, sizeof *x, (size_t)n * dim, f) != (size_t)n * dim || fclose(f) != 0) {
        fprintf(stderr, "bench_features: cannot write %s\n", out);
        return 1;
    }
    printf("%d\n", dim);
    free(x);
    free(flips);
    free(crops);
    free(paths);
    free(txt);
    eng_backbone_free(bb);
    return 0;
}
