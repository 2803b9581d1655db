/* models.h: what the rest of fs/ (the HTTP front door) may ask of the
 * models/ area beyond the tree itself: an answer for an image that is not
 * in the tree. Everything else goes through the tree (ops.h fs_tree_*). */
#ifndef VFS_FS_MODELS_H
#define VFS_FS_MODELS_H

#include "codes.h"
#include "jobs.h"

/* Analyzes image img (a store path, e.g. a temp file) with model `model`
 * exactly as predict/ would: the same prediction queue, engine call and
 * JSON (predict/IMAGE.json's content). Returns 0 with *json a new string
 * (free with free) and *code FS_CODE_NONE for an answer, or the code of
 * Azure's error shape in *json (the model serves nothing yet:
 * modelNotFound; an unusable image: invalidImageFormat, ...), in whose
 * message img is named shown_as. -ENOENT: no such model; -ESHUTDOWN: the
 * mount is stopping. Blocks until the answer is there; called on a
 * prediction worker (fs_models_call), it answers there, in place. */
int fs_models_analyze(const char *model, const char *img, const char *shown_as, char **json,
                      fs_code *code);

/* Runs run(arg) on a prediction worker, then drop(arg); only drop(arg)
 * when the job is dropped unrun (fs_models_call_cancel, the mount
 * stopping). For a caller whose work is mostly one fs_models_analyze call
 * (the HTTP server's prediction calls): that call then answers on the
 * worker itself, so the image goes through one hand-off, not two, and the
 * prediction queue still caps how many images the engine works on. 0, or
 * -1 when not queued (no prediction queue: the mount is stopping). */
int fs_models_call(fs_job_run_fn run, fs_job_drop_fn drop, void *arg);
/* Drops the fs_models_call jobs still queued (their drop runs). */
void fs_models_call_cancel(void);

#endif
