/* models_recipe.h: what the model lifecycle (models.c) needs from a kind of
 * model, as a small vtable, so classifiers and detectors share one lifecycle.
 *
 * The lifecycle owns the files, the queue, the states and the JSON shapes the
 * user sees; a recipe only turns plain data into a model and a model into
 * scores. A recipe reaches the engine (engine/recipes/classify.h, detect.h)
 * and nothing of FUSE. Datasets arrive as fs_recipe_dataset: absolute store
 * paths plus labels or pixel boxes, borrowed for the call.
 *
 * To add a kind: define a `const fs_recipe` in its own fs/models_<kind>.c
 * and list it in the table of models_recipes.c; the lifecycle is not
 * touched.
 */
#ifndef VFS_FS_MODELS_RECIPE_H
#define VFS_FS_MODELS_RECIPE_H

#include <stddef.h>
#include <stdint.h>

/* ---- data in ---- */

typedef struct fs_recipe_box {
    int category;     /* index into fs_recipe_dataset.categories */
    float x, y, w, h; /* pixels of the image as stored (left, top, width, height) */
} fs_recipe_box;

typedef struct fs_recipe_image {
    const char *path;  /* absolute path of the image file */
    int64_t id;        /* the COCO image id */
    int width, height; /* as declared by the dataset (pixels) */
    int label;         /* classification: category index; -1 when none */
    const fs_recipe_box *boxes;
    int nboxes;
} fs_recipe_image;

typedef struct fs_recipe_dataset {
    const char *name;
    int detection; /* 1 when it has boxes */
    int ncategories;
    const char *const *categories; /* names, by index */
    const int64_t *category_ids;   /* COCO ids, by index */
    const fs_recipe_image *images;
    int nimages;
} fs_recipe_dataset;

/* ---- results ---- */

/* Errors a recipe reports: an Azure code and a message (lowercase, subject first). */
typedef struct fs_recipe_err {
    char code[48]; /* e.g. "diverged", "notEnoughBudget", "InvalidImageFormat" */
    char msg[480];
} fs_recipe_err;

typedef enum fs_recipe_status {
    FS_RECIPE_OK = 0,
    FS_RECIPE_EFAIL,    /* see err */
    FS_RECIPE_EABORTED, /* the abort hook asked to stop */
} fs_recipe_status;

typedef struct fs_recipe_class {
    const char *label; /* borrowed from the model */
    float confidence;
} fs_recipe_class;

typedef struct fs_recipe_object {
    float x, y, w, h; /* pixels of the image as stored */
    const char *label;
    float confidence;
} fs_recipe_object;

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

/* ---- the vtable ---- */

typedef struct fs_recipe {
    const char *kind;       /* "classifier" | "detector" */
    const char *azure_kind; /* "Generic-Classifier" | "Generic-Detector" */
    const char *metric;     /* the headline metric in status: "accuracyTop1" */
    int wants_detection;    /* 1: needs a dataset with boxes */

    /* Trains; *model: new model (free with free_model); *evaluation_json: new
     * string (free()) with SPEC section 5's names. */
    fs_recipe_status (*train)(const fs_recipe_train_in *in, void **model, char **evaluation_json,
                              fs_recipe_err *err);
    /* Scores one image; single-threaded; safe to call on one model from many
     * threads at once. */
    fs_recipe_status (*predict)(void *model, const char *image_path, fs_recipe_prediction *out,
                                fs_recipe_err *err);
    /* Evaluates on a dataset: metrics (SPEC section 5 names) and COCO results
     * [{image_id, category_id, bbox (pixels), score}]; both new strings. */
    fs_recipe_status (*evaluate)(void *model, const fs_recipe_dataset *ds, int threads,
                                 const fs_recipe_hooks *hooks, char **metrics_json,
                                 char **predictions_json, fs_recipe_err *err);
    fs_recipe_status (*save)(void *model, const char *path, fs_recipe_err *err);
    /* Loads a model file; FS_RECIPE_EFAIL with code "wrongKind" when the file
     * holds another kind of model (the registry then tries the next recipe). */
    fs_recipe_status (*load)(const char *path, const char *const *backbone_dirs, int nbackbones,
                             void **model, fs_recipe_err *err);
    /* Names of the backbones (with checksums) the model uses, for status.json;
     * writes at most cap bytes, NUL-terminated. May be NULL. */
    void (*describe)(void *model, char *buf, size_t cap);
    void (*free_model)(void *model);
} fs_recipe;

/* The registry (models_recipes.c). */
const fs_recipe *fs_recipe_for_kind(const char *kind); /* NULL when not available */
/* Tries every recipe's load; on success *recipe and *model are set. */
fs_recipe_status fs_recipe_load_any(const char *path, const char *const *backbone_dirs,
                                    int nbackbones, const fs_recipe **recipe, void **model,
                                    fs_recipe_err *err);

#endif
