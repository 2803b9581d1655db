/* models_recipe.h: what the model lifecycle (models.c) needs from a kind of
 * model, as a small vtable, so classifiers and detectors share one lifecycle.
 *
 * The lifecycle owns the files, the queue, the states and the JSON shapes the
 * user sees; a recipe only turns plain data into a model and a model into
 * scores. A recipe reaches the engine (engine/recipes/classify.h, detect.h)
 * and nothing of FUSE. Datasets arrive as fs_recipe_dataset: the engine's own
 * samples (absolute store paths plus labels or pixel boxes), borrowed for the
 * call.
 *
 * A kind is one row: a `const fs_recipe` in its own fs/models_<kind>.c (the
 * engine calls behind `void *`, and its predict), listed in the table of
 * models_recipes.c. Everything else (backbones, image checks, samples,
 * category matching, error codes, model files) is shared, in
 * models_recipes.c; the lifecycle (models.c) is not touched.
 */
#ifndef VFS_FS_MODELS_RECIPE_H
#define VFS_FS_MODELS_RECIPE_H

#include "answer.h"
#include "codes.h"
#include "engine.h" /* eng_sample */

#include <stddef.h>
#include <stdint.h>

/* ---- data in ---- */

/* What a dataset's images carry and what a kind needs (`detection` below,
 * `wants_detection` of a kind); the same values as datasets.h's FS_DATA_*. */
enum { FS_RECIPE_LABEL = 0, FS_RECIPE_BOXES = 1, FS_RECIPE_TAGS = 2 };

typedef struct fs_recipe_dataset {
    const char *name;
    int detection; /* FS_RECIPE_LABEL, _BOXES or _TAGS */
    int ncategories;
    const char *const *categories; /* names, by index */
    const int64_t *category_ids;   /* COCO ids, by index */
    const eng_sample *images;
    int nimages;
} fs_recipe_dataset;

/* ---- results ---- */

/* Errors a recipe reports: an Azure code and a message (lowercase, subject first). */
typedef struct fs_recipe_err {
    fs_code code; /* FS_CODE_NONE until set */
    char msg[480];
} fs_recipe_err;

typedef enum fs_recipe_status {
    FS_RECIPE_OK = 0,
    FS_RECIPE_EFAIL,    /* see err */
    FS_RECIPE_EABORTED, /* the abort hook asked to stop */
} fs_recipe_status;

/* A tag ({name borrowed from the model, confidence}) and an object ({x, y,
 * w, h in pixels of the image as stored, name, confidence}) of an answer:
 * answer.h's, which writes them. */
typedef answer_tag fs_recipe_class;
typedef answer_object fs_recipe_object;

/* One image's answer; release with fs_recipe_prediction_release. */
typedef struct fs_recipe_prediction {
    int width, height;
    fs_recipe_class *classes; /* best first */
    int nclasses;
    fs_recipe_object *objects; /* best first */
    int nobjects;
    uint8_t *boxes_jpg; /* detectors: the image with boxes drawn (malloc'd), or NULL */
    size_t boxes_jpg_len;
} fs_recipe_prediction;

void fs_recipe_prediction_release(fs_recipe_prediction *p);

/* Progress of a training run, for status and status.json. */
typedef struct fs_recipe_progress {
    double fraction; /* 0..1 */
    int trial, ntrials;
    double best; /* best value of the recipe's metric so far; < 0 when none */
    double cpu_seconds, budget_seconds;
} fs_recipe_progress;

typedef struct fs_recipe_hooks {
    void *ctx;
    int (*abort)(void *ctx); /* nonzero: stop */
    void (*progress)(void *ctx, const fs_recipe_progress *p);
    void (*log)(void *ctx, const char *line); /* one line, no newline */
    /* may be NULL: the per-image data of the evaluation (training's, when
     * it has them, or fs_recipe_evaluate's), borrowed for the call */
    void (*detail)(void *ctx, const eng_eval_detail *dt);
    /* may be NULL: a classifier's probabilities computed elsewhere (the
     * Slurm executor); the engine's eng_probs_fn, called with ctx */
    eng_probs_fn probs;
    /* may be NULL: a detector's objects of an evaluation computed elsewhere
     * (the Slurm executor); the engine's eng_dets_fn, called with ctx */
    eng_dets_fn dets;
    /* may be NULL: a classifier's fine-tuning candidates run elsewhere (the
     * Slurm executor); the engine's eng_finetune_fn, called with ctx */
    eng_finetune_fn finetune;
    /* may be NULL: a classifier search's second scale and augmented copies
     * extracted elsewhere (the Slurm executor); eng_extract_fn, with ctx */
    eng_extract_fn extract;
    /* may be NULL: a detector's head fits run elsewhere (the Slurm
     * executor); eng_detfit_fn, with ctx */
    eng_detfit_fn detfit;
} fs_recipe_hooks;

typedef struct fs_recipe_train_in {
    const fs_recipe_dataset *train;
    const fs_recipe_dataset *test; /* NULL: the recipe holds out part of train */
    double budget_seconds;         /* CPU seconds */
    int threads;
    uint64_t seed;
    const char *cache_dir;            /* where backbone features may be cached */
    const char *const *backbone_dirs; /* installed, loadable backbones */
    int nbackbones;
    fs_recipe_hooks hooks;
} fs_recipe_train_in;

/* ---- a kind: one table row ---- */

/* A trained model of some kind with the backbones it runs on. */
typedef struct fs_recipe_model fs_recipe_model;

typedef struct fs_recipe {
    const char *kind; /* "classifier" | "detector" | "multilabel": train.json's and the
                         model file's */
    const char
        *azure_kind;     /* "Generic-Classifier" | "Generic-Detector" | "Multilabel-Classifier" */
    const char *metric;  /* the headline metric in status: "accuracyTop1" */
    int wants_detection; /* the data it needs: FS_RECIPE_LABEL, _BOXES or _TAGS */
    int labelled_only;   /* 1: an image without a label (of a known category) is left out */

    /* The engine's side of the kind; `void *` is the kind's engine model. */
    eng_status (*train)(const eng_train_args *a, void **model, char **evaluation_json, eng_diag *d);
    eng_status (*evaluate)(const void *model, eng_backbone *const *bbs, int nbb,
                           const eng_sample *s, int n, const eng_eval_opts *o, char **metrics_json,
                           char **predictions_json, eng_diag *d);
    eng_status (*save)(const void *model, const char *path, eng_diag *d);
    eng_status (*from_file)(const eng_modelfile *f, void **model, eng_diag *d);
    int (*ncat)(const void *model);
    const char *(*category)(const void *model, int i);
    const char *(*backbone_needed)(const void *model, int i, const char **checksum);
    void (*free)(void *model);

    /* The kind's own answer for one image (Azure's image checks done);
     * draw: a detector also draws out->boxes_jpg (predict/ writes it; the
     * HTTP answer has no use for it). */
    fs_recipe_status (*predict)(const void *model, eng_backbone *const *bbs, int nbb,
                                const char *image_path, int width, int height, int draw,
                                fs_recipe_prediction *out, fs_recipe_err *err);
    /* May be NULL (kind not exportable): the model as ONNX bytes (*out malloc'd). */
    eng_status (*export_onnx)(const void *model, eng_backbone *const *bbs, int nbb, uint8_t **out,
                              size_t *len, eng_diag *d);
    /* May be NULL: adjusts the COCO results of an evaluation. */
    void (*after_evaluate)(const fs_recipe_dataset *ds, char **predictions_json);
} fs_recipe;

/* ---- what the lifecycle calls (models_recipes.c), the same for every kind ---- */

/* Trains; *model: new model (free with fs_recipe_model_free);
 * *evaluation_json: new string (free()) with SPEC section 5's names. */
fs_recipe_status fs_recipe_train(const fs_recipe *r, const fs_recipe_train_in *in,
                                 fs_recipe_model **model, char **evaluation_json,
                                 fs_recipe_err *err);
/* Scores one image; safe to call on one model from many threads at once.
 * draw: a detector also draws out->boxes_jpg (a full-size decode and JPEG
 * encode of the image: only predict/ writes it). */
fs_recipe_status fs_recipe_predict(const fs_recipe_model *m, const char *image_path, int draw,
                                   fs_recipe_prediction *out, fs_recipe_err *err);
/* Evaluates on a dataset: metrics (SPEC section 5 names) and COCO results
 * [{image_id, category_id, bbox (pixels), score}]; both new strings. */
fs_recipe_status fs_recipe_evaluate(const fs_recipe_model *m, const fs_recipe_dataset *ds,
                                    int threads, const fs_recipe_hooks *hooks, char **metrics_json,
                                    char **predictions_json, fs_recipe_err *err);
fs_recipe_status fs_recipe_save(const fs_recipe_model *m, const char *path, fs_recipe_err *err);
/* The model as ONNX bytes (*out malloc'd); err says why not (a kind without
 * an export, an op the export cannot translate). */
fs_recipe_status fs_recipe_export_onnx(const fs_recipe_model *m, uint8_t **out, size_t *len,
                                       fs_recipe_err *err);
/* The kind of m. */
const fs_recipe *fs_recipe_of(const fs_recipe_model *m);
/* For a kind's predict: the Azure code and status for an engine failure. */
fs_recipe_status fs_recipe_engine_predict_failed(fs_recipe_err *err, eng_status st,
                                                 const char *msg);
/* The predict of a kind that scores every category of an image (classifier,
 * multilabel): scores(model, ...) fills one score per category; the answer
 * lists the categories whose score reaches threshold(model, i) (threshold
 * NULL: every category), best first, ties by category order. */
typedef eng_status (*fs_recipe_scores_fn)(const void *model, eng_backbone *const *bbs, int nbb,
                                          const char *path, float *scores, eng_diag *d);
typedef float (*fs_recipe_threshold_fn)(const void *model, int i);
fs_recipe_status fs_recipe_predict_scores(const fs_recipe *r, fs_recipe_scores_fn scores,
                                          fs_recipe_threshold_fn threshold, const void *model,
                                          eng_backbone *const *bbs, int nbb, const char *path,
                                          int width, int height, fs_recipe_prediction *out,
                                          fs_recipe_err *err);
/* Names of the backbones (with checksums) the model uses, for status.json;
 * writes at most cap bytes, NUL-terminated. */
void fs_recipe_describe(const fs_recipe_model *m, char *buf, size_t cap);
void fs_recipe_model_free(fs_recipe_model *m);

/* The registry (models_recipes.c) and its kinds (models_cls.c, models_det.c,
 * models_multilabel.c). */
extern const fs_recipe fs_recipe_classifier;
extern const fs_recipe fs_recipe_detector;
extern const fs_recipe fs_recipe_multilabel;
const fs_recipe *fs_recipe_for_kind(const char *kind); /* NULL when not available */
/* By Azure's name, matched without case, '-' and '_' ("GenericClassifier"). */
const fs_recipe *fs_recipe_for_azure_kind(const char *azure_kind);
/* The kind a dataset trains when train.json names none (boxes: detector,
 * tags: multilabel). */
const fs_recipe *fs_recipe_for_dataset(int detection);
/* "classification", "detection" or "multilabel": a dataset's kind in
 * messages; and what a kind needs ("one label per image, no boxes", ...). */
const char *fs_recipe_data_name(int detection);
/* 1 when kind r trains on or evaluates a dataset of that data: its own, or
 * for multilabel also one label per image (one tag each). */
int fs_recipe_accepts(const fs_recipe *r, int detection);
const char *fs_recipe_data_needs(int detection);
/* after_evaluate of the kinds without boxes: COCO results get the whole
 * image as their bbox (SPEC section 5). */
void fs_recipe_whole_image_boxes(const fs_recipe_dataset *ds, char **predictions_json);
/* The kinds' names for a message: "\"classifier\" or \"detector\"" (azure:
 * "\"Generic-Classifier\" or ..."). */
void fs_recipe_kind_names(int azure, char *buf, size_t n);
/* Loads a model file of any kind (the file names its kind); *model: new
 * model. Codes: invalidModel, backboneNotFound. */
fs_recipe_status fs_recipe_load(const char *path, const char *const *backbone_dirs, int nbackbones,
                                fs_recipe_model **model, fs_recipe_err *err);

#endif
