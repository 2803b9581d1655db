/* classify.h: few-shot image classification on pretrained backbones:
 * recipe search and training, prediction, evaluation, model files.
 *
 * Design: a classifier is a linear head (weights + bias per category) over
 * one or more "views": the global-average-pooled output of one tap of one
 * backbone at one input size, centred with the training mean and
 * L2-normalised, views concatenated with equal weight. Training extracts
 * features once per image (cached on disk by backbone checksum + image
 * content + size + taps + augmentation), then searches recipes within a
 * CPU-time budget: backbones alone and concatenated, extra taps, a second
 * input scale, flip/crop augmentation; heads are multinomial logistic
 * regression (several L2 strengths, L-BFGS in the Gram-reduced space), or
 * nearest class mean when logistic regression would not fit in memory.
 * Cross-validated log-loss on the training images picks
 * the recipe (a held-out split when there is no test set), the winner is refit
 * on all training images and scored on the test set. Prediction and
 * evaluation share one function from image file to scores. The file
 * layout is in docs/model-format.md; each model describes its recipe in its
 * "recipe" metadata.
 *
 * Threads: train/evaluate/predict may run on any thread; a classifier is
 * immutable after training or loading and may be used by several threads.
 */
#ifndef VFS_ENGINE_CLASSIFY_H
#define VFS_ENGINE_CLASSIFY_H

#include "backbone.h"
#include "train.h"
#include "metrics.h"

#include "featcache.h"
#include "recipe.h"
#include "modelfile.h"

/* eng_cls_train returns ENG_ENOBUDGET (engine.h) when the budget cannot
 * cover feature extraction (Azure's notEnoughBudget); d->msg gives the
 * minimum and a suggested budget in minutes. */

/* Minimum images per category the trainer accepts. */
#define ENG_CLS_MIN_PER_CATEGORY 1

/* A trained model: head weights, categories, the backbones (name + checksum)
 * and preprocessing of each view, and a description of the recipe. Opaque,
 * immutable. */
typedef struct eng_classifier eng_classifier;

/* Searches recipes and trains. On success *out is a new classifier (free
 * with eng_classifier_free) and *evaluation_json a new string (free()) with
 * SPEC section 5's fields. Errors: ENG_EINVAL (bad arguments: fewer than 2
 * categories, a label out of range, a category without training images; the
 * message says which), ENG_ENOBUDGET (see above), ENG_EABORTED (the abort
 * hook asked to stop), ENG_ENOTFOUND/ENG_EFORMAT/ENG_EUNSUPPORTED (an image
 * that cannot be read or decoded: the message names it), ENG_ENOMEM.
 * Deterministic for a given seed and thread count (and cache contents do not
 * change results). */
eng_status eng_cls_train(const eng_train_args *a, eng_classifier **out, char **evaluation_json,
                         eng_diag *d);

/* Scores of one image: probs (ncat floats, caller-owned) sums to 1. The same
 * function evaluation uses, so the same image scores the same. backbones:
 * the installed ones; the model's are looked up by name and checksum
 * (ENG_ENOTFOUND naming the backbone when absent or different). threads <= 0: 1. */
eng_status eng_cls_predict(const eng_classifier *m, eng_backbone *const *backbones, int nbackbones,
                           const char *image_path, int threads, float *probs, eng_diag *d);

/* Options of evaluate and batch prediction. */
/* Scores n images: probs is n x ncat (caller-owned). Every image goes through
 * eng_cls_predict's path. Per-image failures land in status[i] (may be NULL)
 * with messages in msgs[i] (may be NULL; each a caller-owned eng_diag) and a
 * row of zeros; the call itself fails only for ENG_EABORTED, ENG_ENOMEM or a
 * missing backbone. */
eng_status eng_cls_predict_files(const eng_classifier *m, eng_backbone *const *backbones,
                                 int nbackbones, const char *const *paths, int n,
                                 const eng_eval_opts *o, float *probs, eng_status *status,
                                 eng_diag *msgs, eng_diag *d);

/* Puts into the feature cache cache_dir the features training extracts
 * first for backbone bb (its native input size, its embedding and extra
 * taps, no augmentation) of n image files: the very files training would
 * write, each written to a temp name and renamed. *computed: how many were
 * not cached yet; *failed: images that could not be read or decoded (left
 * out). Errors: ENG_ENOMEM, ENG_EABORTED (o->abort), the backbone's. */
eng_status eng_cls_cache_features(const eng_backbone *bb, const char *const *paths, int n,
                                  const char *cache_dir, const eng_run_opts *o, int *computed,
                                  int *failed, eng_diag *d);
/* eng_cls_cache_features for one pass of training's search: at input size
 * size (<= 0: the backbone's own), with augmentation aug (0 none, 1 flip,
 * 2 seeded crop, cls_train's copies) and the training seed; the same cache
 * files training's pass reads. The Slurm workers run a search's second
 * input scale and augmented copies with it. */
eng_status eng_cls_cache_pass(const eng_backbone *bb, int size, int aug, uint64_t seed,
                              const char *const *paths, int n, const char *cache_dir,
                              const eng_run_opts *o, int *computed, int *failed, eng_diag *d);
/* The probabilities (n x ncat, caller-owned) of n image files, computed as
 * the evaluations do: with cache_dir, through the feature cache all at once
 * (training's test pass); with NULL, one image at a time (eng_cls_evaluate).
 * The first image that cannot be read fails the call (the message names
 * it). The Slurm workers compute evaluations with it. */
eng_status eng_cls_probs(const eng_classifier *m, eng_backbone *const *backbones, int nbackbones,
                         const char *const *paths, int n, const char *cache_dir,
                         const eng_run_opts *o, float *probs, eng_diag *d);
/* The worker's side of eng_finetune_fn (recipe.h): runs the fine-tuning
 * candidate job describes on its n training images paths, exactly as
 * training would run it here: the maps of every copy (through the feature
 * cache cache_dir, may be NULL), the tail's cross-validation, then its fit
 * on every copy of every image (so a winning candidate needs no second
 * job). bb_dirs: backbone folders; the job's backbone is the one whose
 * folder has its name, checked by checksum (ENG_ENOTFOUND otherwise).
 * *result (malloc'd, *len bytes) is what the hook hands back to training.
 * Bitwise the result training computes itself, whatever threads (<= 0: 1).
 * abort (may be NULL) is polled every batch. */
eng_status eng_cls_finetune_run(const char *job, const char *const *bb_dirs, int nbb,
                                const char *const *paths, int n, const char *cache_dir, int threads,
                                eng_abort_fn abort, void *actx, void **result, size_t *len,
                                eng_diag *d);
/* Evaluates on n labelled images. o->probs (may be NULL) may compute the probabilities elsewhere.
 * *metrics_json: SPEC section 5 metrics plus evaluatedOn (new string, free()); *predictions_json
 * (may be NULL): COCO results [{image_id, category_id, score}] with the top-1 category of each
 * image (new string, free()). An image that cannot be read fails the call
 * (message names it). */
eng_status eng_cls_evaluate(const eng_classifier *m, eng_backbone *const *backbones, int nbackbones,
                            const eng_sample *s, int n, const eng_eval_opts *o, char **metrics_json,
                            char **predictions_json, eng_diag *d);

int eng_cls_ncat(const eng_classifier *m);
/* Borrowed until eng_classifier_free. */
const char *eng_cls_category(const eng_classifier *m, int i);
/* Backbone i the model needs (name, and its weights checksum in *checksum
 * when not NULL); NULL when i is past the last. Borrowed. */
const char *eng_cls_backbone_needed(const eng_classifier *m, int i, const char **checksum);
/* The recipe as a JSON string (head, strengths, views, augmentation, CV
 * score). Borrowed. */
const char *eng_cls_recipe(const eng_classifier *m);

/* Writes model.safetensors (temp file + rename). */
eng_status eng_classifier_save(const eng_classifier *m, const char *path, eng_diag *d);
/* Loads and checks a model file: a file that is not a classifier, is
 * truncated or malformed, or whose tensors do not match its metadata gives
 * ENG_EFORMAT (or ENG_EUNSUPPORTED for a newer version) with a message. */
eng_status eng_classifier_load(const char *path, eng_classifier **out, eng_diag *d);
/* Same from an already parsed model file (borrowed for the call). */
eng_status eng_classifier_from_file(const eng_modelfile *f, eng_classifier **out, eng_diag *d);
void eng_classifier_free(eng_classifier *m);

/* The whole prediction pipeline as an ONNX model (cls_onnx.c): inputs
 * uint8 RGB NHWC `image` [N, S, S, 3] (S the first view's size) and
 * `image_S2`... for every other view size, output `probabilities` [N, C],
 * IR 7 / opset 13, metadata_props categories, inputs, resize. bbs: the
 * installed backbones (the model's are found by name and checksum). *out:
 * malloc'd bytes. ENG_EUNSUPPORTED names a backbone op the export lacks. */
eng_status eng_classifier_export_onnx(const eng_classifier *m, eng_backbone *const *bbs, int nbb,
                                      const char *producer_version, uint8_t **out, size_t *len,
                                      eng_diag *d);

#endif
