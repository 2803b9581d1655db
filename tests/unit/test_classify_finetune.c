/* test_classify_finetune.c: fine-tuning the last backbone stage
 * (cls_finetune.c) on the installed EfficientNet-Lite0 with images this
 * test draws (three categories: stripes, discs, checkerboards, randomly
 * placed and scaled). Checks: stage input maps have the tap's shape and come
 * back identical from the cache, fine-tuning lowers the training loss and
 * fits the training images, training is deterministic for a seed whatever
 * the thread count, a model-file round trip gives bitwise identical
 * probabilities, an image scored alone scores as in a batch, files without
 * the stage load as "absent"; a classifier carrying a fine-tuned stage
 * scores through it, saves and loads with identical probabilities, predict
 * == evaluate, and its file without the stage still loads. Skips (77) only
 * when the backbone is not installed; an installed one that does not open
 * fails. */
#include "check.h"
#include "classify_int.h"
#include "test_backbone_dir.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Debian's stb_image_write uses sprintf for its HDR header: allowed there
 * only (common/banned.h bans it in our code) */
#undef sprintf
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#define sprintf(...) VFS_BANNED(sprintf_use_snprintf)

#define CHECK_EQUAL(a, b) CHECK((a) == (b))

#define NCAT 3
#define NPER 4
#define N (NCAT * NPER)
#define SIDE 80

static unsigned rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static double frand(unsigned *s) { return (rnd(s) & 0xffff) / 65536.0; }

static unsigned char clamp8(int v) { return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* One image of category c: stripes, a disc or a checkerboard, with noise. */
static void draw(int c, unsigned *s, unsigned char *rgb)
{
    double period = 6 + 12 * frand(s), phase = 20 * frand(s);
    double cx = SIDE * (0.25 + 0.5 * frand(s)), cy = SIDE * (0.25 + 0.5 * frand(s));
    double rad = SIDE * (0.12 + 0.2 * frand(s));
    int cell = 5 + (int)(10 * frand(s));
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            int r, g, b;
            if (c == 0) {
                int on = fmod(x + phase, period) < period / 2;
                r = on ? 200 : 40, g = on ? 60 : 40, b = on ? 60 : 200;
            } else if (c == 1) {
                int in = (x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad;
                r = in ? 240 : 30, g = in ? 200 : 120, b = 30;
            } else {
                int on = ((x / cell) + (y / cell)) & 1;
                r = g = b = on ? 230 : 20;
            }
            int noise = (int)(rnd(s) % 41) - 20;
            unsigned char *p = rgb + (y * SIDE + x) * 3;
            p[0] = clamp8(r + noise);
            p[1] = clamp8(g + noise);
            p[2] = clamp8(b + noise);
        }
}

static char dir[] = "/tmp/test_classify_finetune.XXXXXX";

int main(void)
{
    char bbdir[4096];
    if (test_backbone_path("efficientnet-lite0", NULL, bbdir, sizeof bbdir) != 1)
        CHECK_SKIP("efficientnet-lite0 backbone not installed (scripts/fetch-backbones.sh)");
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    if (eng_backbone_open(bbdir, &bb, &d) != ENG_OK)
        return test_backbone_broken(bbdir, d.msg);
    CHECK(mkdtemp(dir) != NULL);

    /* images */
    char *paths[N];
    int y[N];
    unsigned seed = 777;
    unsigned char *rgb = malloc(SIDE * SIDE * 3);
    for (int i = 0; i < N; i++) {
        y[i] = i % NCAT;
        draw(y[i], &seed, rgb);
        paths[i] = malloc(strlen(dir) + 32);
        snprintf(paths[i], strlen(dir) + 32, "%s/im%d.png", dir, i);
        CHECK(stbi_write_png(paths[i], SIDE, SIDE, 3, rgb, SIDE * 3) != 0);
    }
    free(rgb);

    /* stage input maps */
    int h = 0, w = 0, cin = 0;
    CHECK_EQUAL(cls_ft_map_shape(bb, 224, &h, &w, &cin, &d), ENG_OK);
    CHECK_EQUAL(h, 7);
    CHECK_EQUAL(w, 7);
    CHECK_EQUAL(cin, 320);
    size_t dim = (size_t)h * w * cin;
    float *maps = malloc(sizeof(float) * dim * 2 * N), *again = malloc(sizeof(float) * dim * N);
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    CHECK_EQUAL(cls_ft_maps(bb, (const char *const *)paths, N, 0, 224, cache, 2, maps, &d), ENG_OK);
    CHECK_EQUAL(
        cls_ft_maps(bb, (const char *const *)paths, N, 1, 224, cache, 2, maps + dim * N, &d),
        ENG_OK);
    CHECK_EQUAL(cls_ft_maps(bb, (const char *const *)paths, N, 0, 224, cache, 1, again, &d),
                ENG_OK);
    CHECK(memcmp(maps, again, sizeof(float) * dim * N) == 0);
    /* the flipped map differs from the plain one */
    CHECK(memcmp(maps, maps + dim * N, sizeof(float) * dim) != 0);
    int y2[2 * N];
    for (int i = 0; i < 2 * N; i++)
        y2[i] = y[i % N];

    /* training lowers the loss and fits the training images */
    cls_ft s, s2;
    CHECK_EQUAL(cls_ft_init(&s, bb, NCAT, &d), ENG_OK);
    CHECK_EQUAL(s.cin, 320);
    CHECK_EQUAL(s.cout, 1280);
    cls_ft_opts o = {.epochs = 6,
                     .batch = 8,
                     .lr_stage = 1e-4f,
                     .lr_head = 1e-2f,
                     .weight_decay = 1e-4f,
                     .seed = 5,
                     .threads = 2};
    float loss[6], loss2[6];
    CHECK_EQUAL(cls_ft_train(&s, maps, 2 * N, h, w, y2, &o, loss, &d), ENG_OK);
    printf("epoch losses: %.4f %.4f %.4f %.4f %.4f %.4f\n", loss[0], loss[1], loss[2], loss[3],
           loss[4], loss[5]);
    CHECK(loss[5] < loss[0]);
    CHECK(loss[5] < 0.5f * logf(NCAT));
    float *p = malloc(sizeof(float) * 2 * N * NCAT), *q = malloc(sizeof(float) * 2 * N * NCAT);
    CHECK_EQUAL(cls_ft_probs(&s, maps, N, h, w, 2, p, &d), ENG_OK);
    int right = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        float sum = 0;
        for (int k = 0; k < NCAT; k++) {
            sum += p[i * NCAT + k];
            if (p[i * NCAT + k] > p[i * NCAT + best])
                best = k;
        }
        CHECK(fabsf(sum - 1.0f) < 1e-4f);
        right += best == y[i];
    }
    printf("training images right: %d/%d\n", right, N);
    CHECK_EQUAL(right, N);

    /* the stage moved away from the pretrained weights */
    CHECK_EQUAL(cls_ft_init(&s2, bb, NCAT, &d), ENG_OK);
    CHECK(memcmp(s.w, s2.w, sizeof(float) * s.cin * s.cout) != 0);

    /* deterministic for the seed, whatever the thread count */
    o.threads = 1;
    CHECK_EQUAL(cls_ft_train(&s2, maps, 2 * N, h, w, y2, &o, loss2, &d), ENG_OK);
    CHECK(memcmp(loss, loss2, sizeof loss) == 0);
    CHECK(memcmp(s.w, s2.w, sizeof(float) * s.cin * s.cout) == 0);
    CHECK(memcmp(s.hw, s2.hw, sizeof(float) * s.cout * NCAT) == 0);
    cls_ft_free(&s2);

    /* one image alone scores as in the batch */
    CHECK_EQUAL(cls_ft_probs(&s, maps + dim * 3, 1, h, w, 1, q, &d), ENG_OK);
    CHECK(memcmp(q, p + 3 * NCAT, sizeof(float) * NCAT) == 0);

    /* model-file round trip */
    const char *names[4];
    eng_tensor ts[4];
    const eng_tensor *tp[4];
    CHECK_EQUAL(cls_ft_tensors(&s, names, ts), 4);
    for (int i = 0; i < 4; i++)
        tp[i] = &ts[i];
    const char *keys[1] = {"kind"}, *vals[1] = {"classifier"};
    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    CHECK_EQUAL(eng_modelfile_write(mpath, names, tp, 4, keys, vals, 1, &d), ENG_OK);
    eng_modelfile *f = NULL;
    CHECK_EQUAL(eng_modelfile_read(mpath, &f, &d), ENG_OK);
    int present = 0;
    CHECK_EQUAL(cls_ft_from_file(f, NCAT, &s2, &present, &d), ENG_OK);
    CHECK_EQUAL(present, 1);
    CHECK_EQUAL(cls_ft_probs(&s2, maps, N, h, w, 2, q, &d), ENG_OK);
    CHECK(memcmp(p, q, sizeof(float) * N * NCAT) == 0);
    cls_ft_free(&s2);
    /* a mismatched category count is refused */
    CHECK_EQUAL(cls_ft_from_file(f, NCAT + 1, &s2, &present, &d), ENG_EFORMAT);
    eng_modelfile_free(f);
    /* an older file without the stage loads as absent */
    CHECK_EQUAL(eng_modelfile_write(mpath, names + 1, tp + 1, 1, keys, vals, 1, &d), ENG_OK);
    CHECK_EQUAL(eng_modelfile_read(mpath, &f, &d), ENG_OK);
    CHECK_EQUAL(cls_ft_from_file(f, NCAT, &s2, &present, &d), ENG_OK);
    CHECK_EQUAL(present, 0);
    CHECK(s2.w == NULL);
    eng_modelfile_free(f);

    /* a trained classifier carrying the fine-tuned stage */
    {
        eng_sample tr[N];
        for (int i = 0; i < N; i++)
            tr[i] = (eng_sample){.path = paths[i], .label = y[i], .id = i + 1};
        const char *cn[NCAT] = {"stripes", "disc", "checker"};
        eng_backbone *bbs[1] = {bb};
        eng_train_args ta = {.train = tr,
                             .ntrain = N,
                             .test = tr,
                             .ntest = N,
                             .categories = cn,
                             .ncat = NCAT,
                             .backbones = bbs,
                             .nbackbones = 1,
                             .budget_seconds = 120,
                             .threads = 2,
                             .seed = 1,
                             .cache_dir = cache};
        eng_classifier *m = NULL, *m2 = NULL;
        char *ev = NULL;
        CHECK_EQUAL(eng_cls_train(&ta, &m, &ev, &d), ENG_OK);
        free(ev);
        CHECK(m != NULL);
        if (!m)
            return check_report("test_classify_finetune");
        char plain[600];
        snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
        CHECK_EQUAL(eng_classifier_save(m, plain, &d), ENG_OK);
        float *lin = malloc(sizeof(float) * NCAT), *pa = malloc(sizeof(float) * N * NCAT),
              *pb = malloc(sizeof(float) * N * NCAT);
        CHECK_EQUAL(eng_cls_predict(m, bbs, 1, paths[0], 1, lin, &d), ENG_OK);
        cls_ft *ft = calloc(1, sizeof *ft);
        *ft = s;
        memset(&s, 0, sizeof s);
        CHECK(m->ft == NULL);
        m->ft = ft;
        m->ft_bb = 0;
        m->ft_size = 224;
        /* predict scores through the stage: as cls_ft_probs on the map */
        CHECK_EQUAL(eng_cls_predict(m, bbs, 2, paths[0], 2, pa, &d), ENG_OK);
        CHECK_EQUAL(eng_cls_predict(m, bbs, 1, paths[0], 1, pb, &d), ENG_OK);
        CHECK(memcmp(pa, p, sizeof(float) * NCAT) == 0);
        CHECK(memcmp(pa, pb, sizeof(float) * NCAT) == 0);
        /* save / load round trip, predict == batch predict == evaluate */
        CHECK_EQUAL(eng_classifier_save(m, mpath, &d), ENG_OK);
        CHECK_EQUAL(eng_classifier_load(mpath, &m2, &d), ENG_OK);
        CHECK(m2 && m2->ft && m2->ft_size == 224 && m2->ft_bb == 0);
        eng_eval_opts eo = {.threads = 2};
        CHECK_EQUAL(eng_cls_predict_files(m2, bbs, 1, (const char *const *)paths, N, &eo, pb, NULL,
                                          NULL, &d),
                    ENG_OK);
        for (int i = 0; i < N; i++) {
            CHECK_EQUAL(eng_cls_predict(m, bbs, 1, paths[i], 1, pa + i * NCAT, &d), ENG_OK);
        }
        CHECK(memcmp(pa, pb, sizeof(float) * N * NCAT) == 0);
        char *met = NULL, *pred = NULL;
        CHECK_EQUAL(eng_cls_evaluate(m2, bbs, 1, tr, N, &eo, &met, &pred, &d), ENG_OK);
        cJSON *arr = cJSON_Parse(pred ? pred : "[]");
        int same = cJSON_GetArraySize(arr) == N;
        for (int i = 0; same && i < N; i++) {
            cJSON *o2 = cJSON_GetArrayItem(arr, i);
            int c = (int)cJSON_GetObjectItem(o2, "category_id")->valuedouble - 1;
            double sc = cJSON_GetObjectItem(o2, "score")->valuedouble;
            same = c >= 0 && c < NCAT && fabs(sc - round(pa[i * NCAT + c] * 1e6) / 1e6) < 1e-9;
            for (int k = 0; same && k < NCAT; k++)
                same = pa[i * NCAT + k] <= pa[i * NCAT + c];
        }
        CHECK(same);
        cJSON_Delete(arr);
        free(met);
        free(pred);
        /* the file written without the stage still loads and scores linearly */
        eng_classifier_free(m2);
        m2 = NULL;
        CHECK_EQUAL(eng_classifier_load(plain, &m2, &d), ENG_OK);
        CHECK(m2 && m2->ft == NULL);
        CHECK_EQUAL(eng_cls_predict(m2, bbs, 1, paths[0], 1, pa, &d), ENG_OK);
        CHECK(memcmp(pa, lin, sizeof(float) * NCAT) == 0);
        eng_classifier_free(m2);
        eng_classifier_free(m);
        free(lin);
        free(pa);
        free(pb);
    }

    /* an unreadable image is named */
    const char *bad[1] = {"/nonexistent/x.png"};
    CHECK(cls_ft_maps(bb, bad, 1, 0, 224, NULL, 1, again, &d) != ENG_OK);
    CHECK(strstr(d.msg, "x.png") != NULL);

    cls_ft_free(&s);
    free(p);
    free(q);
    free(maps);
    free(again);
    for (int i = 0; i < N; i++) {
        unlink(paths[i]);
        free(paths[i]);
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    eng_backbone_free(bb);
    return check_report("test_classify_finetune");
}
