/* models_int.h: what the files of the models/ area share (not a public
 * interface): the model record, the served model, the area's globals and the
 * functions one file of the area calls in another.
 *
 *   models.c          records, their files (status, status.json, log, state)
 *                     and the served model
 *   models_train.c    the training job
 *   models_predict.c  the prediction job (predict/)
 *   models_eval.c     the evaluation job (evaluations/)
 *   models_area.c     the area's hooks (what a FUSE call on models/ does) and
 *                     the resume after a crash
 *
 * Lock order: m->pub_mu, then m->files, then g_models.mu; the job queues'
 * locks are leaves. No file I/O under g_models.mu.
 */
#ifndef VFS_FS_MODELS_INT_H
#define VFS_FS_MODELS_INT_H

#include "area.h"
#include "jobs.h"
#include "models_data.h"
#include "models_recipe.h"
#include "slurm.h"
#include "trainreq.h"

#include <pthread.h>
#include <stdint.h>

#define STATE_FILE ".vfs-state.json"

typedef enum mdl_state {
    ST_NOT_STARTED = 0,
    ST_TRAINING,
    ST_SUCCEEDED,
    ST_FAILED,
    ST_CANCELLING,
    ST_CANCELLED,
} mdl_state;

/* A loaded model that serves predictions; refcounted so a retrain can swap
 * it while predictions still run on the old one. */
typedef struct srv {
    int refs; /* under g_models.mu */
    const fs_recipe *recipe;
    fs_recipe_model *model;
    char about[512];
} srv;

/* A prediction not yet written: open_read of its .json waits for it. */
typedef struct pend {
    struct pend *next;
    char rel[FS_PATH_MAX]; /* "predict/a/b.png" under the model */
    double queued;         /* fs_now() when queued (fs_trace_predict) */
} pend;

/* A running or queued evaluation. */
typedef struct evl {
    struct evl *next;
    char ds[FS_TRQ_NAME_MAX + 1];
    int cancel;
} evl;

/* A job array's tasks as shown (a copy owned by the record; tasks NULL when
 * none runs). stage: status.json's "stage" ("features", "evaluation", ...). */
typedef struct mdl_slurm_view {
    fs_slurm_task *tasks;
    int ntasks;
    char job[FS_SLURM_ID_MAX];
    char stage[FS_TRQ_NAME_MAX + 32];
} mdl_slurm_view;
enum { MDL_SL_TRAIN, MDL_SL_EVAL };

typedef struct mdl {
    struct mdl *next;
    uint64_t id;
    int refs;
    int deleted;
    char name[FS_TRQ_NAME_MAX + 1];
    pthread_mutex_t pub_mu; /* orders writes of status/status.json */
    /* The model's folder. Held shared to write a file of the model by its
     * path (resolved under g_models.mu, used after releasing it) or to commit
     * a run; exclusive to rename or delete the folder or to make runs stale
     * (gen++). So no file I/O happens under g_models.mu, and a run's
     * staleness cannot change while it commits. */
    pthread_rwlock_t files;

    mdl_state state;
    fs_code err_code;
    char err_msg[480];
    char refused[512]; /* last train.json refused while a run was going on */
    fs_trainreq req;
    int has_req;
    char kind[16];
    int version, restarts, restarted_run;
    uint64_t gen;
    int cancel, running, queued;
    fs_recipe_progress prog;
    int has_prog;
    double last_publish;

    srv *srv;
    int has_model, loading, imported, served_version;
    srv *import_pending;
    pend *pending;
    evl *evals;

    /* --executor slurm: the tasks of the job arrays under way, for status
     * and status.json: sl[MDL_SL_TRAIN] the training run's (status.json
     * "slurm"), sl[MDL_SL_EVAL] an evaluation's of evaluations/
     * ("slurmEvaluation") */
    mdl_slurm_view sl[2];
    /* --executor slurm: predict/ images of the current burst (also in
     * pending), sent as one job array when the burst ends; sb_open: its
     * batch job is queued */
    pend **sb;
    int nsb, sbcap, sb_open;
} mdl;

/* The area's globals. */
typedef struct models_globals {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* predictions written, models loaded, stop */
    mdl *models;
    fs_jobq *trainq, *predq, *evalq;
    int stopping, started;
    uint64_t next_id;
} models_globals;
extern models_globals g_models;

/* ---- records (models.c) ---- */

/* The record of model `name` (loaded from the store on first use), with a
 * reference the caller drops with mdl_unref; NULL when there is no such model. */
mdl *mdl_get(const char *name);
/* mdl_get of the model a path "NAME/sub" is in; *sub borrowed from rel. */
mdl *mdl_get_rel(const char *rel, const char **sub);
mdl *mdl_find_locked(const char *name);
void mdl_unref(mdl *m);
/* The model's name as it is now (a mv renames the record under
 * g_models.mu): for a caller that holds neither g_models.mu nor m->files. */
void mdl_name_copy(mdl *m, char *out, size_t n);
/* Splits "NAME/sub" into name (copied) and sub (borrowed; "" when none). */
int mdl_split_rel(const char *rel, char *name, const char **sub);
/* The results of image X in predict/: X.json, and X.boxes.jpg for detectors. */
#define MDL_RESULT_SUFFIX ".json"
#define MDL_BOXES_SUFFIX ".boxes.jpg"
/* The evaluation report (models_report.c), next to evaluation.json and in
 * each evaluations/DATASET/. */
#define MDL_REPORT_HTML "report.html"
#define MDL_REPORT_CONFUSION "confusion.png"
#define MDL_REPORT_PR "pr.png"
/* The length of the result suffix sub ends in; 0 when sub is not a result. */
size_t mdl_result_suffix(const char *sub);

/* The files and folders the area makes in a model's folder (the user's own
 * are train.json, and model.safetensors when imported). The one list: a
 * model folder holding nothing else is removed by rmdir; readonly ones are
 * never written by the user. */
typedef struct mdl_file {
    const char *name;
    int readonly;
} mdl_file;
extern const mdl_file mdl_files[]; /* ends with {NULL} */
const mdl_file *mdl_file_find(const char *name);
/* The store path of file `sub` of the model (g_models.mu held). */
int mdl_path_locked(const mdl *m, const char *sub, char *out, size_t n);
/* The same for a caller holding m->files (shared or exclusive), which keeps
 * the path valid; -ENOENT once the model is deleted. */
int mdl_path(mdl *m, const char *sub, char *out, size_t n);
/* Writes data as model file `sub`, atomically; the target path is resolved
 * under g_models.mu at rename time, so a concurrent mv of the model is safe. */
int mdl_put(mdl *m, const char *sub, const void *data, size_t len);
void mdl_mkdir(mdl *m, const char *sub);
/* Appends one timestamped line to the model's log. */
void mdl_log(mdl *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rewrites status and status.json from the record. */
void mdl_publish(mdl *m);
/* Saves the lifecycle state that must survive a crash. */
void mdl_persist(mdl *m);
void mdl_fail_locked(mdl *m, fs_code code, const char *msg);

/* ---- model.onnx (models_onnx.c) ---- */

#define MDL_ONNX_FILE "model.onnx"
/* Puts the empty placeholder (drops a cached export): a new model is served. */
void mdl_onnx_reset(mdl *m);
/* Before a read of model.onnx: exports the served model when the file is
 * the placeholder (a job on the prediction queue; this waits for it). 0,
 * -EIO (the reason in the daemon's and the model's log), or -ESHUTDOWN
 * when the mount is stopping. */
int mdl_onnx_open(mdl *m);

/* ---- the served model (models.c) ---- */

/* Takes model (freed also on failure). */
srv *srv_new(fs_recipe_model *model);
void srv_free(srv *s);
/* The served model with a reference (srv_put to drop), loading
 * model.safetensors on first use; NULL when there is none (why filled). */
srv *srv_get(mdl *m, fs_recipe_err *why);
void srv_put(srv *s);
/* Drops a reference (g_models.mu held); *to_free gets s when it was the last. */
void srv_unref_locked(srv *s, srv **to_free);

/* ---- jobs (models_train.c, models_predict.c, models_eval.c) ---- */

/* Checks a request against the datasets; fills code/msg and returns -1 when
 * it cannot train. Sets *recipe. */
int mdl_request_check(const fs_trainreq *r, const fs_recipe **recipe, fs_code *code, char *msg,
                      size_t mn);
/* Queues a training run of the current generation (g_models.mu not held). */
void mdl_train_queue(mdl *m, int restarted);
/* Queues the prediction of image `sub` ("predict/...") and puts an empty
 * IMAGE.json in place at once, so ls shows it as soon as cp returns. */
void mdl_predict_queue(mdl *m, const char *sub);
/* Queues an evaluation of the model on dataset ds / cancels it. */
void mdl_eval_queue(mdl *m, const char *ds);
void mdl_eval_cancel(mdl *m, const char *ds);

/* ---- the evaluation report (models_report.c) ---- */

/* A built report waiting to be written (the images it shows are read while
 * building, so it is built while the dataset snapshot is open). */
typedef struct mdl_report {
    eng_report r;
    int built;
} mdl_report;
/* Builds the report of an evaluation: dt (may be NULL: the page says the
 * evaluation kept no per-image results) and its metrics JSON. Failures are
 * logged in the model's log; out->built stays 0. */
void mdl_report_build(mdl *m, const eng_eval_detail *dt, const char *metrics_json,
                      const char *title, mdl_report *out);
/* Writes report.html, confusion.png and pr.png into folder dir of the
 * model ("" or "evaluations/DS") and releases the report. */
void mdl_report_write(mdl *m, const char *dir, mdl_report *rep);
/* The detail hook of a job: keeps an owned copy in *slot (replacing one). */
void mdl_report_keep(eng_eval_detail **slot, const eng_eval_detail *dt);

/* ---- the Slurm executor (models_slurm.c) ---- */

/* Puts the features of paths[0..n) (absolute store paths) through the
 * backbone folders bbs[0..nb) (detector: the detection features training
 * reads) into the feature cache with a Slurm job array,
 * showing its tasks in the model's status; abort(actx) is polled (then
 * scancel). *cpu_out: the CPU seconds to charge (what Slurm's accounting
 * says the jobs used when sacct answers, else what the workers report; the
 * log says which). 0 done; -2
 * aborted; -1 failed with code and msg set. */
int mdl_slurm_extract(mdl *m, const char *const *paths, int n, char *const *bbs, int nb,
                      int detector, int (*abort)(void *), void *actx, double *cpu_out,
                      fs_code *code, char *msg, size_t mn);
/* mdl_slurm_extract for one pass of a classifier's search: the backbone
 * folder bbdir at input size with augmentation aug and seed (the worker's
 * eng_cls_cache_pass). *computed: the features the workers computed. */
int mdl_slurm_extract_pass(mdl *m, const char *const *paths, int n, const char *bbdir, int size,
                           int aug, uint64_t seed, int (*abort)(void *), void *actx, int *computed,
                           double *cpu_out, fs_code *code, char *msg, size_t mn);
/* Answers paths[0..n) (absolute store paths of predict/ images) with
 * version `version` of the model by a Slurm job array; the answers are in
 * DIR/answers/K.json (K: index in paths; missing ones were left to the
 * daemon), dir gets DIR, which the caller removes. 0 done; -2 aborted; -1
 * failed (msg). */
int mdl_slurm_predict(mdl *m, int version, const char *const *paths, int n, int (*abort)(void *),
                      void *actx, char *dir, size_t dn, char *msg, size_t mn);
/* The probabilities (n x ncat of the classifier `model`, an eng_classifier;
 * or the scores of a multilabel model, an eng_multilabel: r is its kind)
 * of paths[0..n) (absolute store paths) computed by a job array of
 * `visionfs-worker evaluate` (cached: through the feature cache, as
 * training's test pass), its tasks shown in m->sl[slot] with stage;
 * changed(cctx, summary) (may be NULL) hears of every change of the tasks
 * (summary: " slurm job 12: 2 RUNNING on node1"). abort(actx) is polled
 * (then scancel). An eng_probs_fn's answer: 0 done; 1 not taken (an image
 * outside the store: the caller computes them); -1 failed with *st and d
 * (the first image that cannot be read, as the engine says it, or the
 * cluster's failure; ENG_EABORTED when aborted). *cpu: the workers' CPU s
 * (slot MDL_SL_TRAIN, charged to training's budget: sacct's count when it
 * answers, as mdl_slurm_extract). */
int mdl_slurm_probs(mdl *m, const fs_recipe *r, int slot, const char *stage, const void *model,
                    const char *const *paths, int n, int cached, int (*abort)(void *), void *actx,
                    void (*changed)(void *cctx, const char *summary), void *cctx, float *probs,
                    double *cpu, eng_status *st, eng_diag *d);
/* The same job array for a detector (model: an eng_detector; r its kind)
 * of an evaluation: the objects of each image as eng_det_predict finds them
 * (objs n x ENG_DET_TOPK, nobjs, wh: eng_dets_fn's). Returns like
 * mdl_slurm_probs. */
int mdl_slurm_dets(mdl *m, const fs_recipe *r, int slot, const char *stage, const void *model,
                   const char *const *paths, int n, int (*abort)(void *), void *actx,
                   void (*changed)(void *cctx, const char *summary), void *cctx,
                   eng_det_object *objs, int *nobjs, int *wh, double *cpu, eng_status *st,
                   eng_diag *d);
/* The fine-tuning candidates of the classifier training (jobs[0..njobs):
 * the engine's JSON in spec; paths[0..n) their training images) run by one
 * Slurm job array of `visionfs-worker finetune`, task i for jobs[i], shown
 * in m->sl[MDL_SL_TRAIN] (stage "fine-tuning") and the log; abort(actx) is
 * polled (then scancel). An eng_finetune_fn's answer: 0 with each job's
 * result (malloc'd) and cpu (its worker's count) and *cpu (the array's CPU
 * s, as mdl_slurm_extract counts them); 1 not taken (an image outside the
 * store); -1 failed with *st and d (ENG_EABORTED when aborted), no result
 * kept. */
int mdl_slurm_finetune(mdl *m, eng_finetune_job *jobs, int njobs, const char *const *paths, int n,
                       int (*abort)(void *), void *actx, double *cpu, eng_status *st, eng_diag *d);
/* A detector's head fits (jobs[0..njobs): the engine's JSON in spec, the
 * folds of one variant of the search or the final fit; paths[0..n) the
 * training images) run by one Slurm job array of `visionfs-worker
 * detfit`, task i for jobs[i], shown in m->sl[MDL_SL_TRAIN] (stage "head
 * training") and the log: an eng_detfit_fn's answer, as
 * mdl_slurm_finetune. */
int mdl_slurm_detfit(mdl *m, eng_finetune_job *jobs, int njobs, const char *const *paths, int n,
                     int (*abort)(void *), void *actx, double *cpu, eng_status *st, eng_diag *d);
/* " slurm job 12: 2 RUNNING on node1,node2, 2 PENDING (queued 4s)" of the
 * tasks v shows, "" when none (models.c). */
void mdl_slurm_summary(const mdl_slurm_view *v, char *out, size_t n);
/* Fewest images copied in one burst that go to Slurm; fewer are answered
 * in the daemon. */
#define MDL_SLURM_MIN_PREDICT 16

#endif
