/* recipe.h: what every training recipe takes (classifier, detector, and
 * whatever kind comes next): the samples of a labelled dataset, the training
 * arguments and hooks, and the evaluation options.
 *
 * One layout for every kind, so a caller builds its samples once: a
 * classifier reads label, a detector reads boxes; each ignores the other.
 * Strings, boxes and backbones are borrowed for the call.
 */
#ifndef VFS_ENGINE_RECIPE_H
#define VFS_ENGINE_RECIPE_H

#include "backbone.h"
#include "detail.h"

/* A box in pixels of the image as stored (left, top, width, height). */
typedef struct eng_box {
    float x, y, w, h;
    int category; /* index into the categories */
} eng_box;

typedef struct eng_sample {
    const char *path;     /* image file */
    long long id;         /* image id written into predictions.json (0: index + 1) */
    int width, height;    /* the size the boxes refer to (0: the file's) */
    int label;            /* classification: index into the categories; -1: none */
    const eng_box *boxes; /* detection: the image's boxes; none: a negative.
                           * multilabel: its tags are the boxes' categories
                           * (coordinates unused); none: no tag */
    int nboxes;
} eng_sample;

typedef struct eng_train_progress {
    double fraction;         /* 0..1 */
    int trial, ntrials;      /* trials so far / planned (grows as stages open) */
    const char *best_metric; /* "accuracyTop1", "meanAveragePrecision50" */
    double best_value;       /* held-out value of the best recipe so far; -1 before the first */
    double cpu_seconds, budget_seconds;
    const char *stage; /* "features", "search", "final", "evaluation" */
} eng_train_progress;

/* Computes elsewhere (the Slurm executor's workers) the probabilities a
 * classifier (model: an eng_classifier) or the scores a multilabel model
 * (an eng_multilabel) gives n image files, exactly as the engine would:
 * cached = 1 through the feature cache as training's test pass does, 0 one
 * image at a time as eng_cls_evaluate and eng_ml_evaluate do.
 * probs: n x ncat.
 * Returns 0 with probs filled; 1 when it does not take the work (the engine
 * computes the probabilities itself); -1 failed with *st and d set (the
 * first image that cannot be read, ENG_EABORTED, or the cluster's failure). */
typedef int (*eng_probs_fn)(void *ctx, const void *model, const char *const *paths, int n,
                            int cached, float *probs, eng_status *st, eng_diag *d);

struct eng_det_object;

/* Computes elsewhere (the Slurm executor's workers) the objects a detector
 * (model: an eng_detector) finds in n image files, exactly as
 * eng_det_predict does (the engine's per-image path in eng_det_evaluate):
 * image i's objects at objs + i * ENG_DET_TOPK (detect.h), nobjs[i] of
 * them, in pixels of the decoded image whose size is wh[2i] x wh[2i + 1].
 * Returns like eng_probs_fn: 0 filled; 1 not taken (the engine computes
 * them itself); -1 failed with *st and d set. */
typedef int (*eng_dets_fn)(void *ctx, const void *model, const char *const *paths, int n,
                           struct eng_det_object *objs, int *nobjs, int *wh, eng_status *st,
                           eng_diag *d);

/* One fine-tuning candidate of a classifier's search handed to an
 * eng_finetune_fn. */
typedef struct eng_finetune_job {
    const char *spec; /* the candidate as JSON text the engine wrote (backbone, tap,
                       * labels, folds, options, seed), borrowed for the call */
    void *result;     /* OUT: malloc'd, len bytes: what eng_cls_finetune_run gave */
    size_t len;
    double cpu; /* OUT: the CPU seconds its run reports (the log's figure) */
} eng_finetune_job;

/* Runs a batch of a classifier's fine-tuning candidates elsewhere, at the
 * same time where it can (the Slurm executor: one job array of
 * `visionfs-worker finetune`, one task per candidate, each handing its job
 * to eng_cls_finetune_run): jobs[0..njobs) the candidates, paths the n
 * training images they share. Returns 0 with every job's result and cpu,
 * and *cpu the CPU seconds the whole batch costs (which the engine counts
 * in its budget: the cluster's own accounting where it has one, so not
 * always the sum of the jobs' figures); 1 when it does not take the work
 * (the engine fine-tunes itself, one candidate after the other); -1 failed
 * with *st and d set (ENG_EABORTED when cancelled, or the cluster's
 * failure) and no result kept. */
typedef int (*eng_finetune_fn)(void *ctx, eng_finetune_job *jobs, int njobs,
                               const char *const *paths, int n, double *cpu, eng_status *st,
                               eng_diag *d);

/* Runs a batch of a detector's head fits elsewhere, at the same time where
 * it can (the Slurm executor: one job array of `visionfs-worker detfit`,
 * one task per fit, each handing its job to eng_det_fit_run, detect.h):
 * the folds of one variant of the search, or the final fit. The same
 * contract as eng_finetune_fn: jobs[k].spec is the fit as JSON text the
 * engine wrote (the views, the variant, the images fitted and held out,
 * the random generator's state), jobs[k].result what eng_det_fit_run gave
 * (the heads, the held-out detections, the generator's state after the
 * fit); paths the n training images; *cpu the CPU seconds the batch costs.
 * Returns 0, 1 (not taken: the engine fits locally) or -1 (failed). */
typedef eng_finetune_fn eng_detfit_fn;

/* Extracts elsewhere (the Slurm executor's workers, eng_cls_cache_pass)
 * the features of one pass of a classifier's search into the feature cache:
 * backbone (its name and checksum) at input size with augmentation aug and
 * seed, over the n training images paths. Returns 0 when every feature is
 * in the cache (*computed: how many the workers computed, *cpu: their CPU
 * seconds, which the engine counts in its budget); 1 when it does not take
 * the work (the engine extracts it itself); -1 failed with *st and d set. */
typedef int (*eng_extract_fn)(void *ctx, const char *backbone, const char *checksum, int size,
                              int aug, uint64_t seed, const char *const *paths, int n,
                              int *computed, double *cpu, eng_status *st, eng_diag *d);

typedef struct eng_train_hooks {
    eng_abort_fn abort; /* may be NULL; polled often (at least every batch of images) */
    void *ctx;
    void (*progress)(void *ctx, const eng_train_progress *p); /* may be NULL */
    /* one human-readable line per event, no trailing newline; may be NULL */
    void (*log)(void *ctx, const char *line);
    /* may be NULL: the per-image data of the evaluation training reports
     * (evaluation.json), when it has them (a held-out detector figure has none) */
    eng_eval_detail_fn detail;
    /* may be NULL: a classifier's test-set probabilities, or a multilabel
     * model's test-set scores (cached = 1), computed elsewhere */
    eng_probs_fn probs;
    /* may be NULL: a detector's objects in the test images computed elsewhere */
    eng_dets_fn dets;
    /* may be NULL: the classifier's fine-tuning candidates run elsewhere,
     * together in one batch */
    eng_finetune_fn finetune;
    /* may be NULL: a classifier search's second input scale and augmented
     * copies extracted elsewhere into the feature cache */
    eng_extract_fn extract;
    /* may be NULL: a detector's head fits (the search's folds of a variant,
     * the final fit) run elsewhere, each batch at once */
    eng_detfit_fn detfit;
} eng_train_hooks;

typedef struct eng_train_args {
    const eng_sample *train;
    int ntrain;
    const eng_sample *test; /* may be NULL */
    int ntest;              /* 0: a held-out part of train picks the recipe and is reported */
    const char *test_name;  /* evaluatedOn name of the test dataset (NULL: "test") */
    const char *const *categories;
    int ncat;
    eng_backbone *const *backbones; /* every usable backbone; each recipe picks its own */
    int nbackbones;
    double budget_seconds; /* CPU seconds (process CPU time) */
    int threads;           /* <= 0: 1 */
    uint64_t seed;
    const char *cache_dir; /* feature cache folder (created as needed), may be NULL */
    eng_train_hooks hooks;
} eng_train_args;

typedef struct eng_eval_opts {
    int threads;        /* <= 0: 1 */
    eng_abort_fn abort; /* may be NULL */
    void *ctx;
    const char *dataset_name;      /* evaluatedOn (NULL: "dataset") */
    const long long *category_ids; /* COCO ids of the model's categories for
                                      predictions.json (NULL: index + 1) */
    eng_eval_detail_fn detail;     /* may be NULL: gets the per-image data at the end */
    void *detail_ctx;
    eng_probs_fn probs; /* may be NULL: a classifier's probabilities computed elsewhere */
    void *probs_ctx;
    eng_dets_fn dets; /* may be NULL: a detector's objects computed elsewhere */
    void *dets_ctx;
} eng_eval_opts;

#endif
