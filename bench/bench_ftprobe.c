/* bench_ftprobe.c: fine-tunes one backbone from one tap, outside the search,
 * and scores test top-1: for studying fine-tuning recipes offline (how deep,
 * which rates, how many passes) on the same code the search runs
 * (cls_finetune.c).
 *
 *   bench_ftprobe --backbone DIR --train LIST --test LIST [--tap NODE]
 *                 [--size 224] [--epochs 3] [--copies 6] [--batch 16]
 *                 [--lr-stage 1e-4] [--lr-head 1e-3] [--lp 1e-2]
 *                 [--threads 2] [--seed 0] [--cache DIR]
 *   bench_ftprobe --backbone DIR --taps
 *
 * LIST holds "PATH LABEL" per line (labels 0..K-1). --taps prints the taps
 * cls_ft_taps offers, shallowest first (the last on the Lite backbones is
 * the network's input: the whole network on the tape); --tap defaults to
 * the stride-16 tap, the search's deeper cut. The training images get the
 * search's copies (the image, its mirror, random resized crops with colour
 * jitter), the test images copy 0. Prints one line: test top-1 of the
 * linear probe alone (the dense layer's starting point), of the fine-tuned
 * tail, and of the two averaged, with the first and last epoch's loss and
 * the seconds spent.
 */
#include "engine.h"
#include "bench_util.h"
#include "../engine/recipes/cls_int.h"

#include <string.h>

typedef struct list {
    char **path;
    int *y, n;
} list;

static int read_list(const char *file, list *l)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    int cap = 0, lab;
    char p[4096];
    memset(l, 0, sizeof *l);
    while (fscanf(f, "%4095s %d", p, &lab) == 2) {
        if (l->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **np = realloc(l->path, sizeof(char *) * cap);
            int *ny = realloc(l->y, sizeof(int) * cap);
            if (np)
                l->path = np;
            if (ny)
                l->y = ny;
            if (!np || !ny) {
                fclose(f);
                return -1;
            }
        }
        if (!(l->path[l->n] = strdup(p))) {
            fclose(f);
            return -1;
        }
        l->y[l->n++] = lab;
    }
    fclose(f);
    return l->n > 0 ? 0 : -1;
}

/* Test top-1 of probabilities p (n x k), averaged with q when q is set. */
static double top1(const float *p, const float *q, const int *y, int n, int k)
{
    int right = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < k; c++) {
            float a = p[i * k + c] + (q ? q[i * k + c] : 0);
            float b = p[i * k + best] + (q ? q[i * k + best] : 0);
            if (a > b)
                best = c;
        }
        right += best == y[i];
    }
    return (double)right / n;
}

static int fail(const eng_diag *d)
{
    fprintf(stderr, "bench_ftprobe: %s\n", d->msg);
    return 1;
}

int main(int argc, char **argv)
{
    const char *bbdir = NULL, *trf = NULL, *tef = NULL, *tap = NULL, *cache = NULL;
    int size = 224, copies = 6, list_taps = 0;
    cls_ft_opts o = {.epochs = 3,
                     .batch = 16,
                     .lr_stage = 1e-4f,
                     .lr_head = 1e-3f,
                     .weight_decay = 1e-4f,
                     .lp_lambda = 1e-2f,
                     .threads = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--taps")) {
            list_taps = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_ftprobe: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--backbone"))
            bbdir = v;
        else if (!strcmp(a, "--train"))
            trf = v;
        else if (!strcmp(a, "--test"))
            tef = v;
        else if (!strcmp(a, "--tap"))
            tap = v;
        else if (!strcmp(a, "--cache"))
            cache = v;
        else if (!strcmp(a, "--size"))
            size = atoi(v);
        else if (!strcmp(a, "--epochs"))
            o.epochs = atoi(v);
        else if (!strcmp(a, "--copies"))
            copies = atoi(v);
        else if (!strcmp(a, "--batch"))
            o.batch = atoi(v);
        else if (!strcmp(a, "--lr-stage"))
            o.lr_stage = (float)atof(v);
        else if (!strcmp(a, "--lr-head"))
            o.lr_head = (float)atof(v);
        else if (!strcmp(a, "--lp"))
            o.lp_lambda = (float)atof(v);
        else if (!strcmp(a, "--threads"))
            o.threads = atoi(v);
        else if (!strcmp(a, "--seed"))
            o.seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "bench_ftprobe: unknown option %s\n", a);
            return 2;
        }
    }
    if (!bbdir || (!list_taps && (!trf || !tef)) || copies < 1 || o.epochs < 1 || size < 16) {
        fprintf(stderr, "usage: bench_ftprobe --backbone DIR --train LIST --test LIST [--tap "
                        "NODE] [options]; bench_ftprobe --backbone DIR --taps\n");
        return 2;
    }
    eng_diag d = {{0}};
    eng_backbone *bb = NULL;
    if (eng_backbone_open(bbdir, &bb, &d) != ENG_OK)
        return fail(&d);
    const char *taps[CLS_FT_MAX_TAPS];
    double gf[CLS_FT_MAX_TAPS];
    int ntap = cls_ft_taps(bb, size, taps, gf, CLS_FT_MAX_TAPS);
    if (list_taps) {
        for (int k = 0; k < ntap; k++)
            printf("%s (%.3f GFLOP per image at %d)\n", taps[k], gf[k], size);
        return 0;
    }
    if (!tap)
        tap = eng_backbone_field(bb, "taps.stride16");
    list tr, te;
    if (read_list(trf, &tr) || read_list(tef, &te)) {
        fprintf(stderr, "bench_ftprobe: cannot read %s or %s\n", trf, tef);
        return 1;
    }
    int ncat = 0;
    for (int i = 0; i < tr.n; i++)
        ncat = tr.y[i] >= ncat ? tr.y[i] + 1 : ncat;
    for (int i = 0; i < te.n; i++)
        ncat = te.y[i] >= ncat ? te.y[i] + 1 : ncat;
    int h, w, c;
    if (!tap || cls_ft_map_shape(bb, tap, size, &h, &w, &c, &d) != ENG_OK)
        return fail(&d);
    size_t dim = (size_t)h * w * c, rows = (size_t)copies * tr.n;
    float *mtr = malloc(sizeof(float) * dim * rows), *mte = malloc(sizeof(float) * dim * te.n);
    float *plp = malloc(sizeof(float) * te.n * ncat), *pft = malloc(sizeof(float) * te.n * ncat);
    float *loss = malloc(sizeof(float) * o.epochs);
    int *yc = malloc(sizeof(int) * rows);
    if (!mtr || !mte || !plp || !pft || !loss || !yc) {
        fprintf(stderr, "bench_ftprobe: out of memory\n");
        return 1;
    }
    double t0 = wall();
    for (int k = 0; k < copies; k++) {
        if (cls_ft_maps(bb, tap, (const char *const *)tr.path, tr.n, k, o.seed, size, cache,
                        o.threads, mtr + dim * k * tr.n, &d) != ENG_OK)
            return fail(&d);
        for (int i = 0; i < tr.n; i++)
            yc[k * tr.n + i] = tr.y[i];
    }
    if (cls_ft_maps(bb, tap, (const char *const *)te.path, te.n, 0, o.seed, size, cache, o.threads,
                    mte, &d) != ENG_OK)
        return fail(&d);
    double t1 = wall();
    /* the linear probe alone: one pass at rate 0 leaves the probe's head */
    cls_ft s;
    cls_ft_opts lp = o;
    lp.epochs = 1;
    lp.lr_stage = lp.lr_head = 0;
    float lp_loss;
    if (cls_ft_init(&s, bb, tap, ncat, &d) != ENG_OK ||
        cls_ft_train(&s, mtr, (int)rows, h, w, yc, &lp, &lp_loss, &d) != ENG_OK ||
        cls_ft_probs(&s, mte, te.n, h, w, o.threads, plp, &d) != ENG_OK)
        return fail(&d);
    cls_ft_free(&s);
    double t2 = wall();
    if (cls_ft_init(&s, bb, tap, ncat, &d) != ENG_OK ||
        cls_ft_train(&s, mtr, (int)rows, h, w, yc, &o, loss, &d) != ENG_OK ||
        cls_ft_probs(&s, mte, te.n, h, w, o.threads, pft, &d) != ENG_OK)
        return fail(&d);
    double t3 = wall();
    printf("tap %s (%d nodes), %d copies, %d epochs, lr %g / %g: test top-1 linear probe %.4f, "
           "fine-tuned %.4f, averaged %.4f; loss %.4f -> %.4f; maps %.1f s, probe %.1f s, "
           "fine-tuning %.1f s\n",
           tap, s.nnodes, copies, o.epochs, o.lr_stage, o.lr_head,
           top1(plp, NULL, te.y, te.n, ncat), top1(pft, NULL, te.y, te.n, ncat),
           top1(pft, plp, te.y, te.n, ncat), loss[0], loss[o.epochs - 1], t1 - t0, t2 - t1,
           t3 - t2);
    cls_ft_free(&s);
    eng_backbone_free(bb);
    return 0;
}
