/* models_multilabel.c: the multilabel kind (models_recipe.h): the engine's
 * multilabel classifier (engine/recipes/multilabel.h) behind the shared
 * lifecycle.
 *
 * Design: predict lists every tag whose score reaches its threshold, best
 * first (none: an empty list); scores come from the engine's one
 * image-to-scores path, which evaluation uses too. Evaluation results get
 * the whole image as their box, as the classifier's do.
 */
#include "engine.h"
#include "models_recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static eng_status ml_train(const eng_train_args *a, void **model, char **evaluation, eng_diag *d)
{
    eng_multilabel *m = NULL;
    eng_status st = eng_ml_train(a, &m, evaluation, d);
    *model = m;
    return st;
}

static eng_status ml_evaluate(const void *model, eng_backbone *const *bbs, int nbb,
                              const eng_sample *s, int n, const eng_eval_opts *o, char **metrics,
                              char **predictions, eng_diag *d)
{
    return eng_ml_evaluate(model, bbs, nbb, s, n, o, metrics, predictions, d);
}

static eng_status ml_save(const void *model, const char *path, eng_diag *d)
{
    return eng_ml_save(model, path, d);
}

static eng_status ml_from_file(const eng_modelfile *f, void **model, eng_diag *d)
{
    eng_multilabel *m = NULL;
    eng_status st = eng_ml_from_file(f, &m, d);
    *model = m;
    return st;
}

static int ml_ncat(const void *model) { return eng_ml_ncat(model); }
static const char *ml_category(const void *model, int i) { return eng_ml_category(model, i); }
static const char *ml_needed(const void *model, int i, const char **checksum)
{
    return eng_ml_backbone_needed(model, i, checksum);
}
static void ml_free(void *model) { eng_ml_free(model); }

static eng_status ml_scores(const void *model, eng_backbone *const *bbs, int nbb, const char *path,
                            float *scores, eng_diag *d)
{
    return eng_ml_predict(model, bbs, nbb, path, 1, scores, d);
}

static float ml_threshold(const void *model, int i) { return eng_ml_threshold(model, i); }

/* Every tag at or above its threshold, best first. */
static fs_recipe_status ml_predict(const void *model, eng_backbone *const *bbs, int nbb,
                                   const char *path, int width, int height, int draw,
                                   fs_recipe_prediction *out, fs_recipe_err *err)
{
    (void)draw; /* no picture for tags */
    return fs_recipe_predict_scores(&fs_recipe_multilabel, ml_scores, ml_threshold, model, bbs, nbb,
                                    path, width, height, out, err);
}

static eng_status ml_export_onnx(const void *model, eng_backbone *const *bbs, int nbb,
                                 uint8_t **out, size_t *len, eng_diag *d)
{
    return eng_ml_export_onnx(model, bbs, nbb, "0.1", out, len, d);
}

const fs_recipe fs_recipe_multilabel = {
    .kind = "multilabel",
    .azure_kind = "Multilabel-Classifier",
    .metric = "averagePrecision",
    .wants_detection = FS_RECIPE_TAGS,
    .labelled_only = 0,
    .train = ml_train,
    .evaluate = ml_evaluate,
    .save = ml_save,
    .from_file = ml_from_file,
    .ncat = ml_ncat,
    .category = ml_category,
    .backbone_needed = ml_needed,
    .free = ml_free,
    .predict = ml_predict,
    .export_onnx = ml_export_onnx,
    .after_evaluate = fs_recipe_whole_image_boxes,
};
