/* models_data.h: what the model lifecycle reads from elsewhere in the daemon:
 * dataset snapshots (from fs/datasets.h, turned into fs_recipe_dataset) and
 * the installed backbone folders.
 *
 * Design: a snapshot is a private copy (paths, labels, boxes), so training
 * and evaluation run on a fixed view while the user keeps editing the
 * dataset. Errors carry the Azure code the caller reports as is.
 */
#ifndef VFS_FS_MODELS_DATA_H
#define VFS_FS_MODELS_DATA_H

#include "engine.h"
#include "models_recipe.h"

typedef struct fs_models_ds fs_models_ds;

typedef enum fs_models_ds_status {
    FS_MDS_OK = 0,
    FS_MDS_NOTFOUND, /* datasetNotFound */
    FS_MDS_NOTREADY, /* empty or incomplete */
    FS_MDS_FETCHING, /* its annotation files or images are being downloaded */
    FS_MDS_INVALID,  /* the verification found errors */
    FS_MDS_EMPTY,    /* ready but without images or annotations */
    FS_MDS_ENOMEM,
} fs_models_ds_status;

typedef struct fs_models_ds_err {
    char msg[400];
} fs_models_ds_err;

/* Quick check for validate_write (no copy): exists and ready; *detection set
 * to 1 when the dataset has boxes. */
fs_models_ds_status fs_models_ds_check(const char *name, int *detection, fs_models_ds_err *err);

/* Snapshot of a ready dataset. *out: new snapshot (free with
 * fs_models_ds_close); *view borrowed until then. */
fs_models_ds_status fs_models_ds_open(const char *name, fs_models_ds **out,
                                      const fs_recipe_dataset **view, fs_models_ds_err *err);
void fs_models_ds_close(fs_models_ds *ds);

/* Installed backbone folders (STORE/backbones/NAME first, then the default
 * folder's; each holding model.json). *dirs: new array of new strings, free
 * with fs_models_backbones_free. Returns the count (0 when none). */
int fs_models_backbones_list(char ***dirs);
void fs_models_backbones_free(char **dirs, int n);

/* Opened engine backbones for dirs, written to out (room for n); returns how
 * many opened. Backbones are opened once per process and shared by every
 * model of every kind (they are immutable and thread-safe), keyed by folder
 * and the mtime of backbone.json, so a replaced backbone is reopened. The
 * handles are borrowed for the life of the process: a replaced backbone's
 * old handle is kept, since models may still use it. A folder that does not
 * open is logged and left out. */
int fs_models_backbones_open(const char *const *dirs, int n, eng_backbone **out);

/* The engine's training hooks forwarding to the lifecycle's (abort,
 * progress, log), for every kind's recipe; h is borrowed for the training. */
eng_train_hooks fs_models_engine_hooks(const fs_recipe_hooks *h);
/* An eng_eval_detail_fn whose ctx is a fs_recipe_hooks: calls its detail. */
void fs_models_hooks_detail(void *ctx, const eng_eval_detail *dt);
/* An eng_probs_fn whose ctx is a fs_recipe_hooks: calls its probs. */
int fs_models_hooks_probs(void *ctx, const void *model, const char *const *paths, int n, int cached,
                          float *probs, eng_status *st, eng_diag *d);

/* An eng_dets_fn whose ctx is a fs_recipe_hooks: calls its dets. */
int fs_models_hooks_dets(void *ctx, const void *model, const char *const *paths, int n,
                         struct eng_det_object *objs, int *nobjs, int *wh, eng_status *st,
                         eng_diag *d);

/* An eng_finetune_fn whose ctx is a fs_recipe_hooks: calls its finetune. */
int fs_models_hooks_finetune(void *ctx, eng_finetune_job *jobs, int njobs, const char *const *paths,
                             int n, double *cpu, eng_status *st, eng_diag *d);

/* Fills err with a code and a message (cut to fit). */
void fs_recipe_set_err(fs_recipe_err *err, fs_code code, const char *msg);

#endif
