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

typedef struct fs_ds_box {
    int category;     /* index into fs_ds_snapshot.categories */
    float x, y, w, h; /* pixels of the declared image size, clipped to it */
} fs_ds_box;

typedef struct fs_ds_image {
    const char *path;  /* absolute store path of the image file */
    int64_t id;        /* COCO image id */
    int width, height; /* declared in the COCO file (checked against the file) */
    int label;         /* classification: category index; -1 when none */
    const fs_ds_box *boxes;
    int nboxes;
} fs_ds_image;

typedef struct fs_ds_snapshot {
    const char *name;
    int detection; /* 1 for a detection dataset */
    int ncategories;
    const char *const *categories; /* names by index */
    const int64_t *category_ids;   /* COCO ids by index */
    const fs_ds_image *images;     /* usable images only */
    int nimages;
} fs_ds_snapshot;

/* State of dataset name after its last verification; FS_DS_VERIFYING when
 * something changed since. detection (may be NULL) gets 1 when the dataset
 * has boxes; line (may be NULL) the status line. Never blocks on I/O. */
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

/* ---- what datasets/ expects of the fetcher (fs/fetch.c, fs/fetch.h) ----
 * datasets.c uses these only when fs/fetch.h exists and defines the macro
 * named with each; until then images that are not in the folder are
 * reported missing and dataset.json is stored as is.
 *
 * FS_FETCH_IMAGE_API:
 *   fs_fetch_state fs_fetch_image(const char *dataset, const char *url,
 *                                 const char *dest, char *err, size_t n);
 *   Asks for url (http, https or file, from coco_image_fetch_url) to be
 *   downloaded to dest, an absolute path inside the dataset folder
 *   (STORE/datasets/NAME/.vfs-fetched/...; its folder may not exist yet).
 *   Called by the verifier thread for every image that is not in the
 *   folder, at every verification: it must not block and must remember
 *   outcomes. Returns FS_FETCH_PENDING (queued or running), FS_FETCH_DONE
 *   (dest is in place) or FS_FETCH_FAILED (err says why: "http 404", "over
 *   20 MB", ...). The download lands by temp + rename; when it lands or fails
 *   for good the fetcher calls fs_dataset_touch(dataset).
 *   fs_fetch_start() / fs_fetch_stop() start and join its thread; datasets/
 *   calls them from its own start/stop (FUSE init/destroy).
 *
 * FS_FETCH_DATASET_JSON_API:
 *   int fs_fetch_dataset_json_check(const char *tmp_path, char *why, size_t n);
 *     validates a written dataset.json (0, or -EINVAL with why) at close().
 *   void fs_fetch_dataset_json(const char *dataset, const char *path);
 *     after dataset.json is committed: download the annotation files (merge
 *     several with coco_dataset_merge) and write the result as
 *     STORE/datasets/NAME/annotations.json (temp + rename), then call
 *     fs_dataset_touch(dataset). Must not block.
 */
typedef enum fs_fetch_state {
    FS_FETCH_PENDING = 0,
    FS_FETCH_DONE,
    FS_FETCH_FAILED,
} fs_fetch_state;

#endif
