/* models_det.c: the detector kind (models_recipe.h): the engine's detector
 * (engine/recipes/detect.h) behind the shared lifecycle.
 *
 * Design: prediction and evaluation end in the engine's one image-to-objects
 * path. Boxes arrive in pixels of the image as declared by the dataset and
 * leave in pixels of the image. Everything else a kind needs is shared
 * (models_recipes.c).
 */
#include "engine.h"
#include "models_recipe.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- the engine calls ---- */

static eng_status det_train(const eng_train_args *a, void **model, char **evaluation, eng_diag *d)
{
    eng_detector *m = NULL;
    eng_status st = eng_det_train(a, &m, evaluation, d);
    *model = m;
    return st;
}

static eng_status det_evaluate(const void *model, eng_backbone *const *bbs, int nbb,
                               const eng_sample *s, int n, const eng_eval_opts *o, char **metrics,
                               char **predictions, eng_diag *d)
{
    return eng_det_evaluate(model, bbs, nbb, s, n, o, metrics, predictions, d);
}

static eng_status det_save(const void *model, const char *path, eng_diag *d)
{
    return eng_detector_save(model, path, d);
}

static eng_status det_from_file(const eng_modelfile *f, void **model, eng_diag *d)
{
    eng_detector *m = NULL;
    eng_status st = eng_detector_from_file(f, &m, d);
    *model = m;
    return st;
}

static int det_ncat(const void *model) { return eng_det_ncat(model); }
static const char *det_category(const void *model, int i) { return eng_det_category(model, i); }
static const char *det_needed(const void *model, int i, const char **checksum)
{
    return eng_det_backbone_needed(model, i, checksum);
}
static void det_free(void *model) { eng_detector_free(model); }

/* ---- prediction: objects, and the image with their boxes drawn ---- */

static fs_recipe_status det_predict(const void *model, eng_backbone *const *bbs, int nbb,
                                    const char *path, int width, int height, int draw,
                                    fs_recipe_prediction *out, fs_recipe_err *err)
{
    (void)width;
    (void)height; /* the engine reports the size it decoded */
    eng_det_object *o = NULL;
    int n = 0, w = 0, h = 0;
    eng_diag d = {{0}};
    eng_status st = eng_det_predict(model, bbs, nbb, path, 1, &o, &n, &w, &h, &d);
    if (st == ENG_OK && draw)
        st = eng_det_draw(model, path, o, n, &out->boxes_jpg, &out->boxes_jpg_len, &d);
    if (st == ENG_OK && !(out->objects = calloc((size_t)n + 1, sizeof *out->objects))) {
        st = ENG_ENOMEM;
        snprintf(d.msg, sizeof d.msg, "out of memory");
    }
    if (st != ENG_OK) {
        free(o);
        fs_recipe_prediction_release(out);
        return fs_recipe_engine_predict_failed(err, st, d.msg);
    }
    for (int i = 0; i < n; i++)
        out->objects[i] = (fs_recipe_object){
            o[i].x, o[i].y, o[i].w, o[i].h, eng_det_category(model, o[i].category), o[i].score};
    out->nobjects = n;
    out->width = w;
    out->height = h;
    free(o);
    return FS_RECIPE_OK;
}

static eng_status det_export_onnx(const void *model, eng_backbone *const *bbs, int nbb,
                                  uint8_t **out, size_t *len, eng_diag *d)
{
    return eng_detector_export_onnx(model, bbs, nbb, "0.1", out, len, d);
}

const fs_recipe fs_recipe_detector = {
    .kind = "detector",
    .azure_kind = "Generic-Detector",
    .metric = "meanAveragePrecision50",
    .wants_detection = 1,
    .labelled_only = 0,
    .train = det_train,
    .evaluate = det_evaluate,
    .save = det_save,
    .from_file = det_from_file,
    .ncat = det_ncat,
    .category = det_category,
    .backbone_needed = det_needed,
    .free = det_free,
    .predict = det_predict,
    .export_onnx = det_export_onnx,
};
