/* metrics_det_cases.h: reads the case files tests/tools/pycoco_check.py
 * writes (boxes plus pycocotools' figures) and checks eng_det_map against
 * them. Shared by test_metrics_det.c (committed cases) and
 * test_metrics_det_pycoco.c (fresh random cases). */
#ifndef VFS_METRICS_DET_CASES_H
#define VFS_METRICS_DET_CASES_H
#include "check.h"
#include "engine.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *det_cases_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = 0;
    fclose(f);
    return buf;
}

static void det_cases_box(const cJSON *arr, double *b)
{
    for (int i = 0; i < 4; i++)
        b[i] = cJSON_GetArrayItem(arr, i)->valuedouble;
}

/* Checks every case in the file; returns the number of cases, -1 when the
 * file cannot be read. Stores the largest absolute difference seen. */
static int det_cases_check(const char *path, double *max_diff)
{
    *max_diff = 0;
    char *text = det_cases_slurp(path);
    if (!text)
        return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return -1;
    static const double thr[3] = {0.3, 0.5, 0.75};
    static const char *thr_key[3] = {"0.3", "0.5", "0.75"};
    int ncases = 0;
    *max_diff = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, root)
    {
        int seed = cJSON_GetObjectItem(c, "seed")->valueint;
        int ncat = cJSON_GetObjectItem(c, "ncat")->valueint;
        const cJSON *jg = cJSON_GetObjectItem(c, "gt"), *jp = cJSON_GetObjectItem(c, "pred");
        int ngt = cJSON_GetArraySize(jg), npred = cJSON_GetArraySize(jp);
        eng_det_gt *gt = calloc((size_t)ngt + 1, sizeof *gt);
        eng_det_pred *pred = calloc((size_t)npred + 1, sizeof *pred);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, jg)
        {
            gt[i].image = (long long)cJSON_GetObjectItem(e, "image")->valuedouble;
            gt[i].category = cJSON_GetObjectItem(e, "category")->valueint;
            det_cases_box(cJSON_GetObjectItem(e, "bbox"), gt[i].bbox);
            i++;
        }
        i = 0;
        cJSON_ArrayForEach(e, jp)
        {
            pred[i].image = (long long)cJSON_GetObjectItem(e, "image")->valuedouble;
            pred[i].category = cJSON_GetObjectItem(e, "category")->valueint;
            det_cases_box(cJSON_GetObjectItem(e, "bbox"), pred[i].bbox);
            pred[i].score = cJSON_GetObjectItem(e, "score")->valuedouble;
            i++;
        }
        double map[3], *per = calloc((size_t)ncat * 3, sizeof *per);
        eng_diag d = {{0}};
        eng_status st =
            eng_det_map_ex(gt, ngt, pred, npred, ncat, thr, 3, ENG_DET_MAX_DETS, map, per, &d);
        CHECK_MSG(st == ENG_OK, "seed %d: %s", seed, d.msg);
        const cJSON *exp = cJSON_GetObjectItem(c, "expected");
        for (int t = 0; t < 3 && st == ENG_OK; t++) {
            const cJSON *et = cJSON_GetObjectItem(exp, thr_key[t]);
            double em = cJSON_GetObjectItem(et, "map")->valuedouble;
            double diff = fabs(em - map[t]);
            if (diff > *max_diff)
                *max_diff = diff;
            CHECK_MSG(diff < 1e-12, "seed %d iou %s: map %.17g, pycocotools %.17g", seed,
                      thr_key[t], map[t], em);
            const cJSON *pc = cJSON_GetObjectItem(et, "per_cat");
            for (int k = 0; k < ncat; k++) {
                double ek = cJSON_GetArrayItem(pc, k)->valuedouble;
                double dk = fabs(ek - per[t * ncat + k]);
                if (dk > *max_diff)
                    *max_diff = dk;
                CHECK_MSG(dk < 1e-12, "seed %d iou %s cat %d: ap %.17g, pycocotools %.17g", seed,
                          thr_key[t], k, per[t * ncat + k], ek);
            }
        }
        free(per);
        free(gt);
        free(pred);
        ncases++;
    }
    cJSON_Delete(root);
    return ncases;
}
#endif
