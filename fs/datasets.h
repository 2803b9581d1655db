/* datasets.h: what the rest of the daemon (models/, evaluations) may ask of
 * datasets/: whether a dataset is ready, and a private snapshot of a ready
 * one (absolute image paths, labels, boxes) to train or evaluate on.
 *
 * Design: the snapshot is a copy made under the area's lock from the last
 * verification, so a training job works on a fixed view while the user keeps
 * copying files; it only lists images the verification found usable. Its
 * layout matches fs_recipe_dataset (fs/models_recipe.h) field for field.
 */
#ifndef VFS_FS_DATASETS_H
#define VFS_FS_DATASETS_H

#include "engine.h" /* eng_sample */

#include <stddef.h>
#include <stdint.h>

typedef enum fs_ds_state {
    FS_DS_READY = 0,
    FS_DS_NOTFOUND,   /* no such dataset (datasetNotFound) */
    FS_DS_EMPTY,      /* no annotation file yet */
    FS_DS_INCOMPLETE, /* images missing */
    FS_DS_FETCHING,   /* downloads pending */
    FS_DS_INVALID,    /* errors (see the status line) */
    FS_DS_VERIFYING,  /* changed since the last verification, not yet re-run */
    FS_DS_ENOMEM,
} fs_ds_state;

/* A snapshot's images are the engine's samples (engine/recipes/recipe.h):
 * absolute store paths, the COCO id, the declared size, the label
 * (classification; -1 when none) and boxes in pixels of the declared size,
 * clipped to it. */

/* What a dataset's images carry (the `detection` fields below and in
 * models_recipe.h): one label each, boxes, or several tags each. */
enum { FS_DATA_LABEL = 0, FS_DATA_BOXES = 1, FS_DATA_TAGS = 2 };

typedef struct fs_ds_snapshot {
    const char *name;
    int detection; /* FS_DATA_LABEL, FS_DATA_BOXES or FS_DATA_TAGS */
    int ncategories;
    const char *const *categories; /* names by index */
    const int64_t *category_ids;   /* COCO ids by index */
    const eng_sample *images;      /* usable images only */
    int nimages;
} fs_ds_snapshot;

/* State of dataset name after its last verification; FS_DS_VERIFYING when
 * something changed since. detection (may be NULL) gets FS_DATA_BOXES when
 * the dataset has boxes, FS_DATA_TAGS when it is multilabel; line (may be NULL) the status line.
 * Never blocks on I/O. */
fs_ds_state fs_dataset_state(const char *name, int *detection, char *line, size_t n);

/* Waits up to timeout_ms for a pending verification of name to finish.
 * Returns the state then. */
fs_ds_state fs_dataset_wait(const char *name, int timeout_ms);

/* A snapshot of a ready dataset. With for_training, categories used by
 * fewer than 2 images make it FS_DS_INVALID (SPEC section 3). Waits up to
 * 10 s for a pending verification. On FS_DS_READY *out is a new snapshot
 * (free with fs_dataset_snapshot_free); otherwise why gets the reason
 * (the status line or the training rule). */
fs_ds_state fs_dataset_snapshot(const char *name, int for_training, fs_ds_snapshot **out, char *why,
                                size_t n);
void fs_dataset_snapshot_free(fs_ds_snapshot *s);

/* Asks for a re-verification of name (e.g. after a download landed in its
 * folder behind the mount's back). */
void fs_dataset_touch(const char *name);

#endif
