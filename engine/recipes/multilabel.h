/* multilabel.h: few-shot multilabel classification (several tags per
 * image) on pretrained backbones: training, prediction, evaluation, model
 * files.
 *
 * Design: a multilabel model is a classifier's views and linear head
 * (classify.h: the same features through the same function, the same
 * feature cache) read as independent sigmoid outputs, one per tag, plus a
 * threshold per tag. A sample's tags are the categories of its boxes
 * (recipe.h; the boxes' coordinates are not used), or its label when it
 * has no boxes (a dataset of one label per image). Training extracts each
 * backbone's embedding once (the classifier's first pass, so both kinds
 * share cached features), then cross-validates on the training images (at
 * most 5 folds) one-vs-rest logistic regressions for every (backbone,
 * feature power, L2 strength); the lowest mean binary log-loss wins, each
 * tag's threshold maximises its F1 on the cross-validated scores, and the
 * winner is refit on every training image. Metrics: engine/metrics/
 * multilabel.h. The model file is the classifier's layout with kind
 * "multilabel" and a "head.threshold" tensor (docs/model-format.md).
 *
 * Threads: a model is immutable after training or loading and may be used
 * by several threads at once.
 */
#ifndef VFS_ENGINE_MULTILABEL_H
#define VFS_ENGINE_MULTILABEL_H

#include "classify.h"

typedef struct eng_multilabel eng_multilabel;

/* Trains on a->train (tags: each sample's box categories, 0..a->ncat-1).
 * *evaluation_json: multilabel.h metrics on a->test, else on the
 * cross-validated scores of the training images. Errors: ENG_EINVAL (fewer
 * than 2 images, a tag without images: the message names it), ENG_EABORTED,
 * the backbones' image errors (the message names the image), ENG_ENOMEM. */
eng_status eng_ml_train(const eng_train_args *a, eng_multilabel **out, char **evaluation_json,
                        eng_diag *d);
/* Scores (ncat, caller-owned, each 0..1, independent) of one image. */
eng_status eng_ml_predict(const eng_multilabel *m, eng_backbone *const *backbones, int nbackbones,
                          const char *image_path, int threads, float *scores, eng_diag *d);
/* The scores (n x ncat, caller-owned) of n image files, computed as the
 * engine does: with cache_dir, through the feature cache all at once
 * (training's test pass); with NULL, one image at a time (eng_ml_evaluate).
 * The first image that cannot be read fails the call. The Slurm workers
 * compute a multilabel model's evaluations with it. */
eng_status eng_ml_probs(const eng_multilabel *m, eng_backbone *const *backbones, int nbackbones,
                        const char *const *paths, int n, const char *cache_dir,
                        const eng_run_opts *o, float *scores, eng_diag *d);
/* Evaluates on n samples (tags as in training). *metrics_json: multilabel
 * metrics with evaluatedOn; *predictions_json (may be NULL): COCO results,
 * one {image_id, category_id, score} per image and tag. */
eng_status eng_ml_evaluate(const eng_multilabel *m, eng_backbone *const *backbones, int nbackbones,
                           const eng_sample *s, int n, const eng_eval_opts *o, char **metrics_json,
                           char **predictions_json, eng_diag *d);

int eng_ml_ncat(const eng_multilabel *m);
const char *eng_ml_category(const eng_multilabel *m, int i);
/* Tag i's threshold: the tag is predicted when its score >= it. */
float eng_ml_threshold(const eng_multilabel *m, int i);
const char *eng_ml_backbone_needed(const eng_multilabel *m, int i, const char **checksum);
const char *eng_ml_recipe(const eng_multilabel *m);

eng_status eng_ml_save(const eng_multilabel *m, const char *path, eng_diag *d);
/* ENG_EFORMAT when f is not a multilabel model or is malformed. */
eng_status eng_ml_from_file(const eng_modelfile *f, eng_multilabel **out, eng_diag *d);
void eng_ml_free(eng_multilabel *m);
/* The model as ONNX (the classifier's graph, classify.h, with output
 * `scores` [N, C]: a sigmoid per tag; metadata kind "multilabel" and
 * thresholds, a JSON array in category order). *out: malloc'd bytes. */
eng_status eng_ml_export_onnx(const eng_multilabel *m, eng_backbone *const *bbs, int nbb,
                              const char *producer_version, uint8_t **out, size_t *len,
                              eng_diag *d);

#endif
