/* bench_fewshot.c: runs the classification recipe directly (no mount) on a
 * COCO classification split and prints one JSON line: test top-1, training
 * wall and CPU time, the winning recipe, and the engine's own prediction
 * rate. bench/fewshot.py drives it over datasets, shots, seeds and backbone
 * sets and prints the table.
 *
 *   bench_fewshot --root DATASET_DIR --train SUB.json --test TEST.json
 *                 [--backbones centernet,efficientnet-lite0] [--budget-min 10]
 *                 [--threads 2] [--seed 0] [--cache DIR] [--predict N]
 *                 [--save model.safetensors] [--log] [--multilabel] [--heldout]
 *
 * --multilabel: every annotation of an image is one of its tags (the
 * multilabel recipe, engine/recipes/multilabel.h); the line then carries
 * the test mean average precision ("mAP") instead of top-1.
 * --heldout: train without the test set, as train.json without
 * test_dataset does (a held-out split of the training images picks the
 * recipe, and the budget keeps no reserve for a test pass), then predict
 * every test image as predict/ does; top-1 is counted from those answers.
 *
 * Backbones come from $VISIONFS_BACKBONES, else $XDG_DATA_HOME/visionfs/backbones,
 * else ~/.local/share/visionfs/backbones (where scripts/fetch-backbones.sh puts them;
 * the rule is tests/unit/test_backbone_dir.h's, shared with the tests).
 *
 * Design: COCO files are read with cJSON here (the bench is a client of the
 * engine like fs is); image paths are ROOT/file_name.
 */
#include "engine.h"
#include "bench_util.h"
#include "../tests/unit/test_backbone_dir.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct split {
    eng_sample *s;
    int n;
    char **names; /* category names by index */
    int ncat;
    long long *cat_ids;
} split;

/* Categories are indexed in the order of the COCO "categories" array.
 * ml: every annotation of an image becomes a tag (a box of its category). */
static int load_split(const char *root, const char *json, int ml, split *sp)
{
    char *txt = slurp(json);
    if (!txt) {
        fprintf(stderr, "bench_fewshot: cannot read %s\n", json);
        return -1;
    }
    cJSON *o = cJSON_Parse(txt);
    free(txt);
    cJSON *ims = cJSON_GetObjectItem(o, "images"), *ans = cJSON_GetObjectItem(o, "annotations");
    cJSON *cats = cJSON_GetObjectItem(o, "categories");
    if (!o || !cJSON_IsArray(ims) || !cJSON_IsArray(ans) || !cJSON_IsArray(cats)) {
        fprintf(stderr, "bench_fewshot: %s is not a COCO file\n", json);
        cJSON_Delete(o);
        return -1;
    }
    sp->ncat = cJSON_GetArraySize(cats);
    sp->names = calloc((size_t)sp->ncat, sizeof *sp->names);
    sp->cat_ids = calloc((size_t)sp->ncat, sizeof *sp->cat_ids);
    int i = 0;
    for (cJSON *c = cats->child; c; c = c->next, i++) {
        sp->names[i] = strdup(cJSON_GetObjectItem(c, "name")->valuestring);
        sp->cat_ids[i] = (long long)cJSON_GetObjectItem(c, "id")->valuedouble;
    }
    int n = cJSON_GetArraySize(ims);
    sp->s = calloc((size_t)n, sizeof *sp->s);
    sp->n = 0;
    for (cJSON *im = ims->child; im; im = im->next) {
        long long id = (long long)cJSON_GetObjectItem(im, "id")->valuedouble;
        int label = -1;
        for (cJSON *a = ans->child; a && label < 0; a = a->next)
            if ((long long)cJSON_GetObjectItem(a, "image_id")->valuedouble == id) {
                long long cid = (long long)cJSON_GetObjectItem(a, "category_id")->valuedouble;
                for (int c = 0; c < sp->ncat; c++)
                    if (sp->cat_ids[c] == cid)
                        label = c;
            }
        if (label < 0 && !ml)
            continue;
        const char *fn = cJSON_GetObjectItem(im, "file_name")->valuestring;
        size_t len = strlen(root) + strlen(fn) + 2;
        char *p = malloc(len);
        snprintf(p, len, "%s/%s", root, fn);
        eng_box *tags = NULL;
        int ntags = 0;
        if (ml) {
            tags = calloc((size_t)sp->ncat + 1, sizeof *tags);
            for (cJSON *a = ans->child; a; a = a->next)
                if ((long long)cJSON_GetObjectItem(a, "image_id")->valuedouble == id) {
                    long long cid = (long long)cJSON_GetObjectItem(a, "category_id")->valuedouble;
                    for (int c = 0; c < sp->ncat && ntags < sp->ncat; c++)
                        if (sp->cat_ids[c] == cid)
                            tags[ntags++].category = c;
                }
        }
        sp->s[sp->n++] =
            (eng_sample){.path = p, .label = label, .id = id, .boxes = tags, .nboxes = ntags};
    }
    cJSON_Delete(o);
    return 0;
}

/* --multilabel: trains, prints mean AP on the test split and the recipe. */
static int run_multilabel(const eng_train_args *a, eng_backbone **bb, int nbb)
{
    eng_multilabel *m = NULL;
    char *ev = NULL;
    eng_diag d = {{0}};
    double t0 = wall();
    clock_t c0 = clock();
    eng_status st = eng_ml_train(a, &m, &ev, &d);
    double train_s = wall() - t0, train_cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    if (st != ENG_OK) {
        printf("{\"error\": \"%s\", \"status\": \"%s\"}\n", d.msg, eng_status_name(st));
        return 1;
    }
    cJSON *evj = cJSON_Parse(ev);
    printf("{\"train_images\": %d, \"test_images\": %d, \"mAP\": %.4f, \"precision\": %.4f, "
           "\"recall\": %.4f, \"train_wall_s\": %.2f, \"train_cpu_s\": %.2f, \"recipe\": %s}\n",
           a->ntrain, a->ntest, cJSON_GetObjectItem(evj, "averagePrecision")->valuedouble,
           cJSON_GetObjectItem(evj, "precision")->valuedouble,
           cJSON_GetObjectItem(evj, "recall")->valuedouble, train_s, train_cpu, eng_ml_recipe(m));
    cJSON_Delete(evj);
    free(ev);
    eng_ml_free(m);
    for (int i = 0; i < nbb; i++)
        eng_backbone_free(bb[i]);
    return 0;
}

int main(int argc, char **argv)
{
    eng_openmp_passive(argv); /* the daemon's policy: what users run */
    const char *root = NULL, *train = NULL, *test = NULL, *bbs = "centernet,efficientnet-lite0";
    const char *cache = NULL, *save = NULL;
    double budget_min = 10;
    int threads = 2, npredict = 0, verbose = 0, ml = 0, heldout = 0;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--log")) {
            verbose = 1;
            continue;
        }
        if (!strcmp(a, "--heldout")) {
            heldout = 1;
            continue;
        }
        if (!strcmp(a, "--multilabel")) {
            ml = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_fewshot: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--root"))
            root = v;
        else if (!strcmp(a, "--train"))
            train = v;
        else if (!strcmp(a, "--test"))
            test = v;
        else if (!strcmp(a, "--backbones"))
            bbs = v;
        else if (!strcmp(a, "--budget-min"))
            budget_min = atof(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--cache"))
            cache = v;
        else if (!strcmp(a, "--predict"))
            npredict = atoi(v);
        else if (!strcmp(a, "--save"))
            save = v;
        else {
            fprintf(stderr, "bench_fewshot: unknown option %s\n", a);
            return 2;
        }
    }
    if (!root || !train) {
        fprintf(stderr,
                "usage: bench_fewshot --root DIR --train SUB.json [--test TEST.json] ...\n");
        return 2;
    }
    split tr = {0}, te = {0};
    if (load_split(root, train, ml, &tr) || (test && load_split(root, test, ml, &te)))
        return 1;
    eng_backbone *bb[8];
    int nbb = 0;
    char *list = strdup(bbs);
    for (char *tok = strtok(list, ","); tok && nbb < 8; tok = strtok(NULL, ",")) {
        /* the folder scripts/fetch-backbones.sh installs into */
        char bdir[4096];
        if (test_backbone_path(tok, NULL, bdir, sizeof bdir) < 0) {
            fprintf(stderr, "bench_fewshot: no backbones folder (set VISIONFS_BACKBONES)\n");
            return 1;
        }
        eng_diag d;
        if (eng_backbone_open(bdir, &bb[nbb], &d) != ENG_OK) {
            fprintf(stderr, "bench_fewshot: %s: %s\n", bdir, d.msg);
            return 1;
        }
        nbb++;
    }
    free(list);
    eng_train_args a = {.train = tr.s,
                        .ntrain = tr.n,
                        .test = heldout ? NULL : te.s,
                        .ntest = heldout ? 0 : te.n,
                        .test_name = "test",
                        .categories = (const char *const *)tr.names,
                        .ncat = tr.ncat,
                        .backbones = bb,
                        .nbackbones = nbb,
                        .budget_seconds = budget_min * 60,
                        .threads = threads,
                        .seed = seed,
                        .cache_dir = cache};
    if (verbose)
        a.hooks.log = log_line;
    if (ml)
        return run_multilabel(&a, bb, nbb);
    eng_classifier *m = NULL;
    char *ev = NULL;
    eng_diag d = {{0}};
    double t0 = wall();
    clock_t c0 = clock();
    eng_status st = eng_cls_train(&a, &m, &ev, &d);
    double train_s = wall() - t0, train_cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    if (st != ENG_OK) {
        printf("{\"error\": \"%s\", \"status\": \"%s\"}\n", d.msg, eng_status_name(st));
        return 1;
    }
    cJSON *evj = cJSON_Parse(ev);
    double top1 = cJSON_GetObjectItem(evj, "accuracyTop1")->valuedouble;
    const char *stop = cJSON_GetStringValue(cJSON_GetObjectItem(evj, "stopReason"));
    char *recipe = cJSON_PrintUnformatted(cJSON_GetObjectItem(evj, "recipe"));
    double rate = 0;
    if (heldout)
        npredict = te.n;
    if (npredict > 0 && te.n > 0) {
        int np = npredict < te.n ? npredict : te.n;
        const char **paths = malloc((size_t)np * sizeof *paths);
        for (int i = 0; i < np; i++)
            paths[i] = te.s[i].path;
        float *probs = malloc((size_t)np * tr.ncat * sizeof *probs);
        /* as the mount does it: one image per job, one thread per image,
         * `threads` images at once */
        int bad = 0;
        double p0 = wall();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : bad)
        for (int i = 0; i < np; i++) {
            eng_diag di;
            bad += eng_cls_predict(m, bb, nbb, paths[i], 1, probs + (size_t)i * tr.ncat, &di) !=
                   ENG_OK;
        }
        if (!bad)
            rate = np / (wall() - p0);
        if (heldout) {
            int right = 0;
            for (int i = 0; i < np; i++) {
                const float *p = probs + (size_t)i * tr.ncat;
                int best = 0;
                for (int c = 1; c < tr.ncat; c++)
                    if (p[c] > p[best])
                        best = c;
                right += best == te.s[i].label;
            }
            top1 = bad ? -1 : (double)right / np;
        }
        free(paths);
        free(probs);
    }
    if (save && eng_classifier_save(m, save, &d) != ENG_OK)
        fprintf(stderr, "bench_fewshot: save: %s\n", d.msg);
    printf("{\"train_images\": %d, \"test_images\": %d, \"top1\": %.4f, \"train_wall_s\": %.2f, "
           "\"train_cpu_s\": %.2f, \"predict_img_per_s\": %.2f, \"stop\": \"%s\", "
           "\"recipe\": %s}\n",
           tr.n, te.n, top1, train_s, train_cpu, rate, stop ? stop : "", recipe ? recipe : "{}");
    free(recipe);
    cJSON_Delete(evj);
    free(ev);
    eng_classifier_free(m);
    for (int i = 0; i < nbb; i++)
        eng_backbone_free(bb[i]);
    return 0;
}
