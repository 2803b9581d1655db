/* bench_conv.c: the convolution kernels alone, on the shapes of the
 * backbones (EfficientNet-Lite0 at 224 as it is; CenterNet at 512 its
 * channel counts at representative map sizes; the 1x1 convolutions of
 * CenterNet's detector head at 512, as "cn-head"; EfficientNet-Lite2's
 * depthwise shapes at 260, whose maps have odd widths), one
 * thread: CPU ms per call and GFLOP/s for each 1x1 and depthwise shape, and
 * the sum per network, so that a kernel change is measured without the
 * rest of the graph. Run it twice, once with VFS_NO_AVX512=1, to compare
 * the two dispatch paths; pin it (taskset -c 1) on a shared machine.
 *
 * Usage: bench_conv [--reps N] [--evict-kb KB] [--only 1x1|dw|stem|fused]
 * Prints one line per shape: kind, geometry, best CPU ms of N reps, GFLOP/s.
 * `--only fused`: each inverted-residual block's expand 1x1 + depthwise pair
 * (Lite0 at 224, Lite2 at 260, CenterNet at 512) run as two kernels (the 1x1's
 * output stored whole) and fused (rt_expand_dwconv2d, docs/engine.md), best
 * CPU ms of each and their ratio; rows alternate, so load hits both alike.
 */
#include "engine.h"
#include "runtime_int.h" /* rt_expand_dwconv2d */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* a dense convolution (k x k, stride s; dw 0) or a depthwise one (dw 1) over hw x hw input
 * pixels, cin -> cout channels, count times in the network */
typedef struct shape {
    const char *net;
    int dw, hw, cin, cout, k, s, count;
} shape;

static const shape SHAPES[] = {
    /* CenterNet backbone at 512 (MobileNetV3): the stem, then 1x1 and depthwise shapes */
    {"centernet", 0, 512, 3, 16, 3, 2, 1},
    {"centernet", 0, 128, 16, 64, 1, 1, 1},
    {"centernet", 0, 128, 64, 24, 1, 1, 1},
    {"centernet", 0, 128, 24, 72, 1, 1, 1},
    {"centernet", 0, 128, 72, 24, 1, 1, 1},
    {"centernet", 0, 64, 72, 40, 1, 1, 1},
    {"centernet", 0, 64, 24, 96, 1, 1, 2},
    {"centernet", 0, 64, 96, 24, 1, 1, 2},
    {"centernet", 0, 32, 96, 384, 1, 1, 1},
    {"centernet", 0, 32, 64, 144, 1, 1, 2},
    {"centernet", 0, 32, 144, 64, 1, 1, 2},
    {"centernet", 0, 32, 88, 528, 1, 1, 2},
    {"centernet", 0, 32, 528, 136, 1, 1, 2},
    {"centernet", 0, 16, 136, 528, 1, 1, 2},
    {"centernet", 0, 16, 184, 720, 1, 1, 2},
    {"centernet", 0, 16, 720, 184, 1, 1, 2},
    {"centernet", 0, 16, 120, 720, 1, 1, 2},
    {"centernet", 0, 16, 720, 120, 1, 1, 2},
    {"centernet", 0, 16, 120, 480, 1, 1, 1},
    {"centernet", 1, 256, 16, 16, 3, 1, 1},
    {"centernet", 1, 256, 64, 64, 3, 2, 1},
    {"centernet", 1, 128, 72, 72, 3, 1, 2},
    {"centernet", 1, 128, 72, 72, 5, 2, 1},
    {"centernet", 1, 64, 96, 96, 5, 1, 2},
    {"centernet", 1, 64, 144, 144, 3, 2, 1},
    {"centernet", 1, 32, 528, 528, 3, 1, 2},
    {"centernet", 1, 32, 528, 528, 5, 2, 1},
    {"centernet", 1, 16, 720, 720, 5, 1, 2},
    /* CenterNet's detector at 512: its head's 1x1 convolutions (the upsampling path's and the
     * output layers; depthwise ones as the backbone's) */
    {"cn-head", 0, 128, 128, 80, 1, 1, 1},
    {"cn-head", 0, 128, 128, 4, 1, 1, 1},
    {"cn-head", 0, 128, 72, 18, 1, 1, 1},
    {"cn-head", 0, 128, 18, 64, 1, 1, 1},
    {"cn-head", 0, 64, 192, 64, 1, 1, 2},
    {"cn-head", 0, 32, 256, 96, 1, 1, 2},
    {"cn-head", 0, 16, 480, 128, 1, 1, 2},
    /* EfficientNet-Lite0 at 224 */
    {"lite0", 0, 224, 3, 32, 3, 2, 1},
    {"lite0", 0, 112, 32, 16, 1, 1, 1},
    {"lite0", 0, 112, 16, 96, 1, 1, 1},
    {"lite0", 0, 56, 96, 24, 1, 1, 1},
    {"lite0", 0, 56, 24, 144, 1, 1, 2},
    {"lite0", 0, 56, 144, 24, 1, 1, 1},
    {"lite0", 0, 28, 144, 40, 1, 1, 1},
    {"lite0", 0, 28, 40, 240, 1, 1, 2},
    {"lite0", 0, 28, 240, 40, 1, 1, 1},
    {"lite0", 0, 14, 240, 80, 1, 1, 1},
    {"lite0", 0, 14, 80, 480, 1, 1, 3},
    {"lite0", 0, 14, 480, 80, 1, 1, 2},
    {"lite0", 0, 14, 480, 112, 1, 1, 1},
    {"lite0", 0, 14, 112, 672, 1, 1, 3},
    {"lite0", 0, 14, 672, 112, 1, 1, 2},
    {"lite0", 0, 7, 672, 192, 1, 1, 1},
    {"lite0", 0, 7, 192, 1152, 1, 1, 4},
    {"lite0", 0, 7, 1152, 192, 1, 1, 3},
    {"lite0", 0, 7, 1152, 320, 1, 1, 1},
    {"lite0", 0, 7, 320, 1280, 1, 1, 1},
    {"lite0", 1, 112, 32, 32, 3, 1, 1},
    {"lite0", 1, 112, 96, 96, 3, 2, 1},
    {"lite0", 1, 56, 144, 144, 3, 1, 1},
    {"lite0", 1, 56, 144, 144, 5, 2, 1},
    {"lite0", 1, 28, 240, 240, 5, 1, 1},
    {"lite0", 1, 28, 240, 240, 3, 2, 1},
    {"lite0", 1, 14, 480, 480, 3, 1, 2},
    {"lite0", 1, 14, 480, 480, 5, 1, 1},
    {"lite0", 1, 14, 672, 672, 5, 1, 2},
    {"lite0", 1, 14, 672, 672, 5, 2, 1},
    {"lite0", 1, 7, 1152, 1152, 5, 1, 3},
    {"lite0", 1, 7, 1152, 1152, 3, 1, 1},
    /* EfficientNet-Lite2 at 260: its depthwise shapes (odd widths: 65, 33, 17, 9) */
    {"lite2", 1, 130, 32, 32, 3, 1, 1},
    {"lite2", 1, 130, 96, 96, 3, 2, 1},
    {"lite2", 1, 65, 144, 144, 3, 1, 2},
    {"lite2", 1, 65, 144, 144, 5, 2, 1},
    {"lite2", 1, 33, 288, 288, 5, 1, 2},
    {"lite2", 1, 33, 288, 288, 3, 2, 1},
    {"lite2", 1, 17, 528, 528, 3, 1, 3},
    {"lite2", 1, 17, 528, 528, 5, 1, 1},
    {"lite2", 1, 17, 720, 720, 5, 1, 3},
    {"lite2", 1, 17, 720, 720, 5, 2, 1},
    {"lite2", 1, 9, 1248, 1248, 5, 1, 4},
    {"lite2", 1, 9, 1248, 1248, 3, 1, 1},
};

/* an expand 1x1 (cin -> ce at hw x hw) feeding a k x k stride-s depthwise, count times: the
 * pairs the runtime fuses structurally (CenterNet's backbone at 512 without the two expansions
 * the detector's neck also reads) */
typedef struct pair {
    const char *net;
    int hw, cin, ce, k, s, count;
} pair;

static const pair PAIRS[] = {
    {"lite0", 112, 16, 96, 3, 2, 1},     {"lite0", 56, 24, 144, 3, 1, 1},
    {"lite0", 56, 24, 144, 5, 2, 1},     {"lite0", 28, 40, 240, 5, 1, 1},
    {"lite0", 28, 40, 240, 3, 2, 1},     {"lite0", 14, 80, 480, 3, 1, 2},
    {"lite0", 14, 80, 480, 5, 1, 1},     {"lite0", 14, 112, 672, 5, 1, 2},
    {"lite0", 14, 112, 672, 5, 2, 1},    {"lite0", 7, 192, 1152, 5, 1, 3},
    {"lite0", 7, 192, 1152, 3, 1, 1},    {"lite2", 130, 16, 96, 3, 2, 1},
    {"lite2", 65, 24, 144, 3, 1, 2},     {"lite2", 65, 24, 144, 5, 2, 1},
    {"lite2", 33, 48, 288, 5, 1, 2},     {"lite2", 33, 48, 288, 3, 2, 1},
    {"lite2", 17, 88, 528, 3, 1, 3},     {"lite2", 17, 88, 528, 5, 1, 1},
    {"lite2", 17, 120, 720, 5, 1, 3},    {"lite2", 17, 120, 720, 5, 2, 1},
    {"lite2", 9, 208, 1248, 5, 1, 4},    {"lite2", 9, 208, 1248, 3, 1, 1},
    {"centernet", 256, 16, 64, 3, 2, 1}, {"centernet", 128, 24, 72, 3, 1, 1},
    {"centernet", 64, 32, 96, 5, 1, 1},  {"centernet", 64, 32, 192, 3, 2, 1},
    {"centernet", 32, 64, 160, 3, 1, 1}, {"centernet", 32, 64, 144, 3, 1, 2},
    {"centernet", 32, 64, 384, 3, 1, 1}, {"centernet", 32, 88, 528, 3, 1, 1},
    {"centernet", 32, 88, 528, 5, 2, 1}, {"centernet", 16, 120, 720, 5, 1, 2},
};

static int bench_fused(int reps)
{
    const char *nets[] = {"lite0", "lite2", "centernet"};
    double tot[3][2] = {{0}};
    for (size_t i = 0; i < sizeof PAIRS / sizeof PAIRS[0]; i++) {
        const pair *s = &PAIRS[i];
        eng_conv_geom ge, gd;
        if (eng_conv_geom_init(&ge, 1, s->hw, s->hw, s->cin, s->ce, 1, 1, 1, 1, 1, 1, ENG_PAD_SAME,
                               NULL, NULL) ||
            eng_conv_geom_init(&gd, 1, s->hw, s->hw, s->ce, s->ce, s->k, s->k, s->s, s->s, 1, 1,
                               ENG_PAD_SAME, NULL, NULL))
            return 1;
        size_t nin = (size_t)s->hw * s->hw * s->cin, nmid = (size_t)s->hw * s->hw * s->ce;
        size_t nout = (size_t)gd.oh * gd.ow * s->ce, nfe = (size_t)s->cin * s->ce;
        size_t nfd = (size_t)s->k * s->k * s->ce;
        float *in = malloc(nin * 4), *fe = malloc(nfe * 4), *fd = malloc(nfd * 4);
        float *b = malloc((size_t)s->ce * 4), *mid = malloc(nmid * 4), *o1 = malloc(nout * 4);
        float *o2 = malloc(nout * 4);
        if (!in || !fe || !fd || !b || !mid || !o1 || !o2)
            return 1;
        for (size_t j = 0; j < nin; j++)
            in[j] = (float)(j % 17) * 0.1f - 0.8f;
        for (size_t j = 0; j < nfe; j++)
            fe[j] = (float)(j % 13) * 0.01f - 0.06f;
        for (size_t j = 0; j < nfd; j++)
            fd[j] = (float)(j % 11) * 0.02f - 0.1f;
        for (int j = 0; j < s->ce; j++)
            b[j] = 0.5f;
        eng_conv_packed *p = eng_conv_pack(fe, b, 1, 1, s->cin, s->ce);
        if (!p)
            return 1;
        double best[2] = {1e30, 1e30};
        for (int r = 0; r < reps; r++) {
            double t0 = cpu_ms();
            if (eng_conv2d_packed(&ge, in, p, ENG_ACT_RELU6, mid, 1))
                return 1;
            eng_dwconv2d(&gd, mid, fd, b, ENG_ACT_RELU6, o1, 1);
            double t1 = cpu_ms();
            if (rt_expand_dwconv2d(&gd, in, p, ENG_ACT_RELU6, fd, b, ENG_ACT_RELU6, o2, 1))
                return 1;
            double t2 = cpu_ms();
            best[0] = t1 - t0 < best[0] ? t1 - t0 : best[0];
            best[1] = t2 - t1 < best[1] ? t2 - t1 : best[1];
        }
        if (memcmp(o1, o2, nout * 4)) {
            fprintf(stderr, "bench_conv: fused and unfused results differ\n");
            return 1;
        }
        printf("%-9s fused %3dx%-3d %4d->%-4d dw k%d s%d  %5.1f MB  two %8.3f ms  fused %8.3f ms"
               "  %5.2fx  x%d\n",
               s->net, s->hw, s->hw, s->cin, s->ce, s->k, s->s, nmid * 4 / 1e6, best[0], best[1],
               best[0] / best[1], s->count);
        for (int n = 0; n < 3; n++)
            if (!strcmp(s->net, nets[n]))
                for (int v = 0; v < 2; v++)
                    tot[n][v] += best[v] * s->count;
        eng_conv_packed_free(p);
        free(in), free(fe), free(fd), free(b), free(mid), free(o1), free(o2);
    }
    for (int n = 0; n < 3; n++)
        printf("total %-9s fused  two %8.3f ms  fused %8.3f ms  %5.2fx\n", nets[n], tot[n][0],
               tot[n][1], tot[n][0] / tot[n][1]);
    return 0;
}

/* writes over `bytes` of other memory, so the next convolution starts with its weights and
 * input where a network's run would have them: out of L2 (a few MB) or out of L3 (64 MB) */
static void evict_caches(size_t bytes)
{
    static unsigned char *junk;
    static size_t have;
    if (bytes > have) {
        free(junk);
        junk = malloc(bytes);
        have = junk ? bytes : 0;
    }
    for (size_t i = 0; i < have && i < bytes; i += 64)
        junk[i] = (unsigned char)(junk[i] + 1);
}

int main(int argc, char **argv)
{
    int reps = 20;
    size_t evict = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--evict-kb") && i + 1 < argc)
            evict = (size_t)atol(argv[++i]) * 1024;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--reps N] [--evict-kb KB] [--only 1x1|dw|stem|fused]\n",
                    argv[0]);
            return 2;
        }
    }
    if (only && !strcmp(only, "fused"))
        return bench_fused(reps);
    static const char *const NETS[] = {"centernet", "lite0", "cn-head", "lite2"};
    double tot_ms[4][3] = {{0}}, tot_fl[4][3] = {{0}};
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const shape *s = &SHAPES[i];
        const char *kind = s->dw ? "dw" : s->k > 1 ? "stem" : "1x1";
        if (only && strcmp(only, kind))
            continue;
        eng_conv_geom g;
        if (eng_conv_geom_init(&g, 1, s->hw, s->hw, s->cin, s->cout, s->k, s->k, s->s, s->s, 1, 1,
                               ENG_PAD_SAME, NULL, NULL))
            return 1;
        size_t nin = (size_t)s->hw * s->hw * s->cin, nout = (size_t)g.oh * g.ow * s->cout;
        size_t nf = (size_t)s->k * s->k * s->cin * (s->dw ? 1 : s->cout);
        float *in = malloc(nin * 4), *f = malloc(nf * 4), *b = malloc((size_t)s->cout * 4);
        float *out = malloc(nout * 4);
        if (!in || !f || !b || !out)
            return 1;
        for (size_t j = 0; j < nin; j++)
            in[j] = (float)(j % 17) * 0.1f - 0.8f;
        for (size_t j = 0; j < nf; j++)
            f[j] = (float)(j % 13) * 0.01f - 0.06f;
        for (int j = 0; j < s->cout; j++)
            b[j] = 0.5f;
        eng_conv_packed *p = s->dw ? NULL : eng_conv_pack(f, b, s->k, s->k, s->cin, s->cout);
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            evict_caches(evict);
            double t0 = cpu_ms();
            if (s->dw)
                eng_dwconv2d(&g, in, f, b, ENG_ACT_RELU6, out, 1);
            else if (eng_conv2d_packed(&g, in, p, ENG_ACT_RELU6, out, 1))
                return 1;
            double t = cpu_ms() - t0;
            best = t < best ? t : best;
        }
        double fl = 2.0 * nout * s->k * s->k * (s->dw ? 1 : s->cin);
        printf("%-9s %-4s %3dx%-3d %4d->%-4d k%d s%d  %8.3f ms  %6.1f GFLOP/s  x%d\n", s->net, kind,
               s->hw, s->hw, s->cin, s->cout, s->k, s->s, best, fl / (best * 1e6), s->count);
        int net = 0;
        while (net < 3 && strcmp(s->net, NETS[net]))
            net++;
        int ki = s->dw ? 1 : s->k > 1 ? 2 : 0;
        tot_ms[net][ki] += best * s->count;
        tot_fl[net][ki] += fl * s->count;
        eng_conv_packed_free(p);
        free(in), free(f), free(b), free(out);
    }
    for (int net = 0; net < 4; net++)
        for (int ki = 0; ki < 3; ki++)
            if (tot_ms[net][ki] > 0)
                printf("total %-9s %-4s %8.3f ms  %6.1f GFLOP/s\n", NETS[net],
                       (const char *[]){"1x1", "dw", "stem"}[ki], tot_ms[net][ki],
                       tot_fl[net][ki] / (tot_ms[net][ki] * 1e6));
    return 0;
}
