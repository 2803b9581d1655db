/* models_cls.c: the classifier kind (models_recipe.h): the engine's
 * classifier (engine/recipes/classify.h) behind the shared lifecycle.
 *
 * Design: prediction and evaluation both end in the engine's one
 * image-to-scores function, so an image scores the same through predict/ as
 * in evaluation.json. Everything else a kind needs is shared
 * (models_recipes.c).
 */
#include "engine.h"
#include "models_recipe.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the engine calls ---- */

static eng_status cls_train(const eng_train_args *a, void **model, char **evaluation, eng_diag *d)
{
    eng_classifier *m = NULL;
    eng_status st = eng_cls_train(a, &m, evaluation, d);
    *model = m;
    return st;
}

static eng_status cls_evaluate(const void *model, eng_backbone *const *bbs, int nbb,
                               const eng_sample *s, int n, const eng_eval_opts *o, char **metrics,
                               char **predictions, eng_diag *d)
{
    return eng_cls_evaluate(model, bbs, nbb, s, n, o, metrics, predictions, d);
}

static eng_status cls_save(const void *model, const char *path, eng_diag *d)
{
    return eng_classifier_save(model, path, d);
}

static eng_status cls_from_file(const eng_modelfile *f, void **model, eng_diag *d)
{
    eng_classifier *m = NULL;
    eng_status st = eng_classifier_from_file(f, &m, d);
    *model = m;
    return st;
}

static int cls_ncat(const void *model) { return eng_cls_ncat(model); }
static const char *cls_category(const void *model, int i) { return eng_cls_category(model, i); }
static const char *cls_needed(const void *model, int i, const char **checksum)
{
    return eng_cls_backbone_needed(model, i, checksum);
}
static void cls_free(void *model) { eng_classifier_free(model); }

/* ---- prediction: every category, best first ---- */

static eng_status cls_scores(const void *model, eng_backbone *const *bbs, int nbb, const char *path,
                             float *probs, eng_diag *d)
{
    return eng_cls_predict(model, bbs, nbb, path, 1, probs, d);
}

static fs_recipe_status cls_predict(const void *model, eng_backbone *const *bbs, int nbb,
                                    const char *path, int width, int height, int draw,
                                    fs_recipe_prediction *out, fs_recipe_err *err)
{
    (void)draw;
    return fs_recipe_predict_scores(&fs_recipe_classifier, cls_scores, NULL, model, bbs, nbb, path,
                                    width, height, out, err);
}

/* ---- evaluation ---- */

typedef struct id_size {
    long long id;
    int w, h;
} id_size;

static int id_cmp(const void *a, const void *b)
{
    const id_size *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* COCO results carry a bbox (SPEC section 5); for a classifier the answer
 * is about the whole image: [0, 0, width, height] in pixels. Leaves the
 * string as it is when anything does not fit. */
void fs_recipe_whole_image_boxes(const fs_recipe_dataset *ds, char **predictions)
{
    if (!*predictions)
        return;
    id_size *map = malloc(((size_t)ds->nimages + 1) * sizeof *map);
    cJSON *arr = NULL;
    eng_diag d = {{0}};
    if (map)
        eng_json_parse(*predictions, strlen(*predictions), "predictions", &arr, &d);
    if (!cJSON_IsArray(arr)) {
        free(map);
        cJSON_Delete(arr);
        return;
    }
    for (int i = 0; i < ds->nimages; i++)
        map[i] = (id_size){(long long)ds->images[i].id, ds->images[i].width, ds->images[i].height};
    qsort(map, (size_t)ds->nimages, sizeof *map, id_cmp);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *iid = cJSON_GetObjectItem(e, "image_id");
        if (!cJSON_IsNumber(iid) || cJSON_GetObjectItem(e, "bbox"))
            continue;
        id_size key = {(long long)iid->valuedouble, 0, 0};
        const id_size *f = bsearch(&key, map, (size_t)ds->nimages, sizeof *map, id_cmp);
        if (!f)
            continue;
        const double box[4] = {0, 0, f->w, f->h};
        cJSON_AddItemToObject((cJSON *)e, "bbox", cJSON_CreateDoubleArray(box, 4));
    }
    char *out = cJSON_PrintUnformatted(arr);
    if (out) {
        free(*predictions);
        *predictions = out;
    }
    cJSON_Delete(arr);
    free(map);
}

static eng_status cls_export_onnx(const void *model, eng_backbone *const *bbs, int nbb,
                                  uint8_t **out, size_t *len, eng_diag *d)
{
    return eng_classifier_export_onnx(model, bbs, nbb, "0.1", out, len, d);
}

const fs_recipe fs_recipe_classifier = {
    .kind = "classifier",
    .azure_kind = "Generic-Classifier",
    .metric = "accuracyTop1",
    .wants_detection = 0,
    .labelled_only = 1,
    .train = cls_train,
    .evaluate = cls_evaluate,
    .save = cls_save,
    .from_file = cls_from_file,
    .ncat = cls_ncat,
    .category = cls_category,
    .backbone_needed = cls_needed,
    .free = cls_free,
    .predict = cls_predict,
    .export_onnx = cls_export_onnx,
    .after_evaluate = fs_recipe_whole_image_boxes,
};
