/* test_runtime_util.h: helpers shared by the runtime tests: finding the
 * installed CenterNet, reading raw float32 files, comparing tensors with the
 * golden tolerance |c - ref| <= rel * max|ref| + abs. */
#ifndef VFS_TEST_RUNTIME_UTIL_H
#define VFS_TEST_RUNTIME_UTIL_H
#include "check.h"
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* path of the installed CenterNet model.json, or NULL */
static inline const char *tr_centernet_path(void)
{
    static char path[4096];
    const char *env = getenv("VFS_CENTERNET_JSON");
    if (env && access(env, R_OK) == 0)
        return env;
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(path, sizeof path, "%s/visionfs/backbones/centernet/model.json", xdg);
    else if (home)
        snprintf(path, sizeof path, "%s/.local/share/visionfs/backbones/centernet/model.json",
                 home);
    else
        return NULL;
    return access(path, R_OK) == 0 ? path : NULL;
}

/* reads a raw little-endian float32 file of exactly n floats; NULL if absent/short */
static inline float *tr_read_f32(const char *path, int64_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *p = malloc((size_t)n * sizeof *p);
    size_t got = p ? fread(p, sizeof *p, (size_t)n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != (size_t)n || extra) {
        free(p);
        return NULL;
    }
    return p;
}

/* compares n floats; returns the worst error / allowed ratio (<= 1 passes) */
static inline double tr_compare(const char *what, const float *c, const float *ref, int64_t n,
                                double rel, double abs_tol)
{
    double mx = 0, worst = 0, worst_diff = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
    double tol = rel * mx + abs_tol;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)c[i] - ref[i]);
        if (!(e <= worst_diff)) {
            worst_diff = e;
            at = i;
        }
    }
    worst = worst_diff / tol;
    printf("  %-28s n=%-8lld max|ref|=%-9.4g max|diff|=%-9.3g (%.3g of tolerance) at %lld\n",
           what, (long long)n, mx, worst_diff, worst, (long long)at);
    return worst;
}

static inline eng_tensor *tr_tensor(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t dim[4] = {d0, d1, d2, d3};
    return eng_tensor_new(ENG_F32, ndim, dim);
}
#endif
