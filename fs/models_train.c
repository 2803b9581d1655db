/* models_train.c: the training job of the models/ area (models_int.h). */
#include "models_int.h"

#include "backbones.h"
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Messages and paths are cut to their buffers on purpose (a path that does
 * not fit fails at the system call with ENAMETOOLONG or ENOENT). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- training ---------------------------------------------------------- */

typedef struct tjob {
    mdl *m;
    uint64_t gen;
    int restarted;
    double cluster_cpu;      /* CPU seconds the run's Slurm workers spent */
    const char *test_name;   /* the test dataset, for the evaluation's stage */
    const fs_recipe *recipe; /* the model's kind, for the test-set evaluation's array */
    char *const *dirs;       /* the backbone folders, for the search's extraction arrays */
    int nb;
    eng_eval_detail *detail; /* per-image data of evaluation.json, for the report */
} tjob;

static int tjob_stale_locked(const tjob *j) { return j->m->deleted || j->m->gen != j->gen; }

static int tjob_abort(void *ctx)
{
    tjob *j = ctx;
    pthread_mutex_lock(&g_models.mu);
    int stop = g_models.stopping || tjob_stale_locked(j) || j->m->cancel;
    pthread_mutex_unlock(&g_models.mu);
    return stop;
}

static void tjob_progress(void *ctx, const fs_recipe_progress *p)
{
    tjob *j = ctx;
    pthread_mutex_lock(&g_models.mu);
    int mine = !tjob_stale_locked(j) && j->m->state == ST_TRAINING;
    if (mine) {
        /* the shown fraction is at least the share of trials done, and
         * never goes back (the plan may grow as stages open) */
        double f = p->fraction;
        if (p->ntrials > 0 && p->trial > 0 && (double)p->trial / p->ntrials > f)
            f = (double)p->trial / p->ntrials;
        if (j->m->has_prog && j->m->prog.fraction > f)
            f = j->m->prog.fraction;
        j->m->prog = *p;
        j->m->prog.fraction = f > 1 ? 1 : f;
        /* the budget counts the workers' CPU time too */
        j->m->prog.cpu_seconds += j->cluster_cpu;
        j->m->prog.budget_seconds += j->cluster_cpu;
        j->m->has_prog = 1;
    }
    int due = mine && fs_now() - j->m->last_publish >= 0.5;
    pthread_mutex_unlock(&g_models.mu);
    if (due)
        mdl_publish(j->m);
}

static void tjob_detail(void *ctx, const eng_eval_detail *dt)
{
    tjob *j = ctx;
    mdl_report_keep(&j->detail, dt);
}

static void tjob_log(void *ctx, const char *line)
{
    tjob *j = ctx;
    pthread_mutex_lock(&g_models.mu);
    int stale = tjob_stale_locked(j);
    pthread_mutex_unlock(&g_models.mu);
    if (!stale)
        mdl_log(j->m, "%s", line);
}

static fs_code ds_code(fs_models_ds_status st)
{
    return st == FS_MDS_NOTFOUND ? FS_CODE_DATASET_NOT_FOUND
           : st == FS_MDS_ENOMEM ? FS_CODE_UNKNOWN
                                 : FS_CODE_DATASET_CORRUPT;
}

/* Checks a request against the datasets; fills code/msg and returns -1 when
 * it cannot train. Sets *recipe. */
int mdl_request_check(const fs_trainreq *r, const fs_recipe **recipe, fs_code *code, char *msg,
                      size_t mn)
{
    int det = 0, tdet = 0;
    fs_models_ds_err e = {{0}}, te = {{0}};
    fs_models_ds_status st = fs_models_ds_check(r->dataset, &det, &e);
    fs_models_ds_status tst =
        r->test_dataset[0] ? fs_models_ds_check(r->test_dataset, &tdet, &te) : FS_MDS_OK;
    if ((st == FS_MDS_FETCHING || tst == FS_MDS_FETCHING) &&
        (st == FS_MDS_OK || st == FS_MDS_FETCHING) &&
        (tst == FS_MDS_OK || tst == FS_MDS_FETCHING)) {
        /* still being downloaded (Azure's flow: register a dataset, then
         * train at once): accepted; the run waits for it and checks the
         * rest then (run_wait_for_data) */
        *recipe = r->kind ? fs_recipe_for_kind(r->kind) : fs_recipe_for_dataset(det);
        if (*recipe)
            return 0;
    }
    if (st != FS_MDS_OK) {
        *code = ds_code(st);
        snprintf(msg, mn, "%s", e.msg);
        return -1;
    }
    const fs_recipe *rc = r->kind ? fs_recipe_for_kind(r->kind) : fs_recipe_for_dataset(det);
    const char *kind = rc ? rc->kind : r->kind ? r->kind : "auto";
    if (!rc) {
        *code = FS_CODE_UNKNOWN;
        snprintf(msg, mn, "kind \"%s\": not available in this build", kind);
        return -1;
    }
    if (!fs_recipe_accepts(rc, det)) {
        const fs_recipe *fits = fs_recipe_for_dataset(det);
        *code = FS_CODE_INCORRECT_MODEL_KIND;
        snprintf(msg, mn,
                 "dataset \"%s\" is a %s dataset: a %s needs %s (write \"kind\": \"%s\" or "
                 "use another dataset)",
                 r->dataset, fs_recipe_data_name(det), kind,
                 fs_recipe_data_needs(rc->wants_detection), fits ? fits->kind : "another kind");
        return -1;
    }
    if (r->test_dataset[0]) {
        if (tst != FS_MDS_OK) {
            *code = ds_code(tst);
            snprintf(msg, mn, "test dataset: %s", te.msg);
            return -1;
        }
        if (tdet != det && !fs_recipe_accepts(rc, tdet)) {
            *code = FS_CODE_INCORRECT_MODEL_KIND;
            snprintf(msg, mn, "test dataset \"%s\" is a %s dataset, training dataset \"%s\" is not",
                     r->test_dataset, fs_recipe_data_name(tdet), r->dataset);
            return -1;
        }
    }
    *recipe = rc;
    return 0;
}

static void cache_dir(char *out, size_t n)
{
    fs_store_path(out, n, "models", ".vfs-cache");
    mkdir(out, 0755);
}

/* The training or test dataset of req when it no longer exists (removed or
 * renamed during training, which then fails reading its images), else NULL. */
/* How often a run waiting for its datasets' downloads looks again. */
#define DATA_POLL_MS 500

static const char *vanished(const fs_trainreq *req)
{
    const char *names[2] = {req->dataset, req->test_dataset};
    for (int i = 0; i < 2; i++) {
        char path[FS_PATH_MAX];
        struct stat st;
        if (names[i][0] && fs_store_path(path, sizeof path, "datasets", names[i]) == 0 &&
            stat(path, &st) != 0)
            return names[i];
    }
    return NULL;
}

/* Writes the trained model and its evaluation into two new temp files
 * (names in tmpm, tmpe). 0; or -1 with code (FS_CODE_STORE_FULL when the disk is
 * full) and msg set and no temp file left. */
static int write_model_files(const fs_recipe_model *model, const char *eval, char *tmpm, char *tmpe,
                             fs_code *code, char *msg, size_t nmsg)
{
    tmpe[0] = '\0';
    int fd = fs_tmp_create(tmpm, FS_PATH_MAX);
    if (fd < 0) {
        *code = fs_disk_full(-fd) ? FS_CODE_STORE_FULL : FS_CODE_UNKNOWN;
        snprintf(msg, nmsg, "saving the model: %s", strerror(-fd));
        return -1;
    }
    close(fd);
    fs_recipe_err err = {0};
    if (fs_recipe_save(model, tmpm, &err) != FS_RECIPE_OK) {
        unlink(tmpm);
        *code = err.code ? err.code : FS_CODE_UNKNOWN;
        snprintf(msg, nmsg, "saving the model: %s", err.msg);
        return -1;
    }
    size_t n = eval ? strlen(eval) : 0;
    char *text = malloc(n + 1);
    int rc = text ? 0 : -ENOMEM;
    if (text) {
        memcpy(text, eval ? eval : "", n);
        text[n] = '\n';
        rc = fs_tmp_write(tmpe, FS_PATH_MAX, text, n + 1);
        free(text);
    }
    if (rc) {
        unlink(tmpm);
        tmpe[0] = '\0';
        *code = fs_disk_full(-rc) ? FS_CODE_STORE_FULL : FS_CODE_UNKNOWN;
        snprintf(msg, nmsg, "saving evaluation.json: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

/* One training run, from the queue to its end. */
typedef struct run {
    tjob *j;
    mdl *m;
    fs_trainreq req;
    int version;
    const fs_recipe *r;
    fs_models_ds *tr, *te; /* snapshots (with hard links to their images) */
    const fs_recipe_dataset *trv, *tev;
    char **dirs; /* installed backbones */
    int nb;
    fs_recipe_model *model;
    char *eval;
    mdl_report report; /* of evaluation.json, written once the model is committed */
    fs_recipe_status st;
    fs_code code;
    char msg[480];
} run;

static void run_fail(run *x, fs_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void run_fail(run *x, fs_code code, const char *fmt, ...)
{
    x->st = FS_RECIPE_EFAIL;
    x->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof x->msg, fmt, ap);
    va_end(ap);
}

/* Takes the run off the queue; 0, or -1 when it has nothing to do (stale,
 * cancelled, unmounting). */
static int run_begin(run *x)
{
    mdl *m = x->m;
    pthread_mutex_lock(&g_models.mu);
    int go = !tjob_stale_locked(x->j) && !m->cancel && !g_models.stopping;
    if (go) {
        m->queued = 0;
        m->running = 1;
        x->req = m->req;
        x->version = m->version;
    }
    pthread_mutex_unlock(&g_models.mu);
    return go ? 0 : -1;
}

/* The request checked again, the datasets snapshotted (their images linked,
 * so a rm -r or mv of a dataset from here on does not disturb the run) and
 * the backbones listed. 0, or -1 with the failure in x. */
/* Waits while a dataset of the run is being downloaded (train.json may be
 * written right after dataset.json). 0, or -1 when the run was cancelled,
 * superseded or the daemon stops meanwhile. */
static int run_wait_for_data(run *x)
{
    const char *names[2] = {x->req.dataset, x->req.test_dataset};
    for (int said = 0;;) {
        int fetching = -1;
        fs_models_ds_err e = {{0}};
        for (int i = 0; i < 2 && fetching < 0; i++)
            if (names[i][0] && fs_models_ds_check(names[i], NULL, &e) == FS_MDS_FETCHING)
                fetching = i;
        if (fetching < 0)
            return 0;
        if (!said++)
            mdl_log(x->m, "waiting for dataset \"%s\" to be downloaded (%s)", names[fetching],
                    e.msg);
        if (tjob_abort(x->j)) {
            x->st = FS_RECIPE_EABORTED;
            return -1;
        }
        struct timespec ts = {0, DATA_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int run_open_data(run *x)
{
    fs_models_ds_err de = {{0}};
    fs_models_ds_status ds;
    if (run_wait_for_data(x) != 0)
        return -1;
    if (mdl_request_check(&x->req, &x->r, &x->code, x->msg, sizeof x->msg) != 0) {
        x->st = FS_RECIPE_EFAIL;
    } else if ((ds = fs_models_ds_open(x->req.dataset, &x->tr, &x->trv, &de)) != FS_MDS_OK) {
        run_fail(x, ds_code(ds), "%s", de.msg);
    } else if (x->req.test_dataset[0] &&
               (ds = fs_models_ds_open(x->req.test_dataset, &x->te, &x->tev, &de)) != FS_MDS_OK) {
        run_fail(x, ds_code(ds), "test dataset: %s", de.msg);
    } else if ((x->nb = fs_models_backbones_list(&x->dirs)) == 0) {
        run_fail(x, FS_CODE_UNKNOWN,
                 "no backbone is installed (run scripts/fetch-backbones.sh, or cp -r one into "
                 "backbones/)");
    } else {
        return 0;
    }
    return -1;
}

/* status says "training" once the run holds its data. 0, or -1 when a
 * cancel or a newer train.json came first. */
static int run_announce(run *x)
{
    mdl *m = x->m;
    pthread_mutex_lock(&g_models.mu);
    int go = !tjob_stale_locked(x->j) && !m->cancel;
    if (go) {
        m->state = ST_TRAINING;
        m->has_prog = 0;
        m->restarted_run = x->j->restarted;
    }
    pthread_mutex_unlock(&g_models.mu);
    if (!go) {
        x->st = FS_RECIPE_EABORTED;
        return -1;
    }
    mdl_persist(m);
    mdl_publish(m);
    const fs_trainreq *q = &x->req;
    if (x->j->restarted)
        mdl_log(m, "restarted: the daemon stopped while version %d was training", x->version);
    mdl_log(m, "training version %d on dataset \"%s\"%s%s%s, kind %s, budget %.1f minutes of CPU",
            x->version, q->dataset, q->test_dataset[0] ? ", testing on \"" : "", q->test_dataset,
            q->test_dataset[0] ? "\"" : "", q->kind ? q->kind : "auto", q->budget_seconds / 60.0);
    return 0;
}

/* --executor slurm: the features of the training images extracted by a
 * Slurm job array into the cache first (models_slurm.c); training then
 * finds them there. 0, or -1 with the
 * failure (or the abort) in x. */
static int run_slurm(run *x)
{
    if (!fs_slurm()->enabled)
        return 0;
    int n = x->trv->nimages;
    const char **paths = malloc(((size_t)n + 1) * sizeof *paths);
    if (!paths) {
        run_fail(x, FS_CODE_UNKNOWN, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        paths[i] = x->trv->images[i].path;
    fs_code code = FS_CODE_UNKNOWN;
    char msg[sizeof x->msg];
    int rc =
        mdl_slurm_extract(x->m, paths, n, x->dirs, x->nb, x->r->wants_detection == FS_RECIPE_BOXES,
                          tjob_abort, x->j, &x->j->cluster_cpu, &code, msg, sizeof msg);
    free(paths);
    if (rc == -2)
        x->st = FS_RECIPE_EABORTED;
    else if (rc != 0)
        run_fail(x, code, "%s", msg);
    return rc == 0 ? 0 : -1;
}

/* The CPU budget left for the daemon: the request's minus what the Slurm
 * workers spent (at least a quarter of it, so a run whose workers extracted
 * more backbones than the search will use can still search). */
static double daemon_budget(run *x)
{
    double b = x->req.budget_seconds, c = x->j->cluster_cpu;
    if (c <= 0 || b <= 0)
        return b;
    double left = b - c < 0.25 * b ? 0.25 * b : b - c;
    mdl_log(x->m, "budget: %.1f of %.1f CPU s spent by the Slurm workers; %.1f left for the search",
            c, b, left);
    return left;
}

/* --executor slurm: a classifier's test-set probabilities (a multilabel
 * model's scores) computed by a job array of `visionfs-worker evaluate`
 * (an eng_probs_fn). */
static int tjob_probs(void *ctx, const void *model, const char *const *paths, int n, int cached,
                      float *probs, eng_status *st, eng_diag *d)
{
    tjob *j = ctx;
    char stage[FS_TRQ_NAME_MAX + 32];
    snprintf(stage, sizeof stage, "evaluation on %s", j->test_name ? j->test_name : "test");
    double cpu = 0;
    int rc = mdl_slurm_probs(j->m, j->recipe, MDL_SL_TRAIN, stage, model, paths, n, cached,
                             tjob_abort, j, NULL, NULL, probs, &cpu, st, d);
    j->cluster_cpu += cpu;
    return rc;
}

/* --executor slurm: a detector's objects in the test images found by a job
 * array of `visionfs-worker evaluate` (an eng_dets_fn). */
static int tjob_dets(void *ctx, const void *model, const char *const *paths, int n,
                     eng_det_object *objs, int *nobjs, int *wh, eng_status *st, eng_diag *d)
{
    tjob *j = ctx;
    char stage[FS_TRQ_NAME_MAX + 32];
    snprintf(stage, sizeof stage, "evaluation on %s", j->test_name ? j->test_name : "test");
    double cpu = 0;
    int rc = mdl_slurm_dets(j->m, j->recipe, MDL_SL_TRAIN, stage, model, paths, n, tjob_abort, j,
                            NULL, NULL, objs, nobjs, wh, &cpu, st, d);
    j->cluster_cpu += cpu;
    return rc;
}

/* --executor slurm: a classifier search's fine-tuning candidates run by
 * one Slurm job array of `visionfs-worker finetune`, a task per candidate
 * (an eng_finetune_fn). Its CPU time is counted by the engine (its
 * budget), not in cluster_cpu. */
static int tjob_finetune(void *ctx, eng_finetune_job *jobs, int njobs, const char *const *paths,
                         int n, double *cpu, eng_status *st, eng_diag *d)
{
    tjob *j = ctx;
    return mdl_slurm_finetune(j->m, jobs, njobs, paths, n, tjob_abort, j, cpu, st, d);
}

/* --executor slurm: a detector's head fits (a variant's folds, the final
 * fit) run by one Slurm job array of `visionfs-worker detfit`, a task per
 * fit (an eng_detfit_fn). Its CPU time is counted by the engine (its
 * budget), not in cluster_cpu. */
static int tjob_detfit(void *ctx, eng_finetune_job *jobs, int njobs, const char *const *paths,
                       int n, double *cpu, eng_status *st, eng_diag *d)
{
    tjob *j = ctx;
    return mdl_slurm_detfit(j->m, jobs, njobs, paths, n, tjob_abort, j, cpu, st, d);
}

/* --executor slurm: a classifier search's second input scale or augmented
 * copies extracted into the cache by a job array of `visionfs-worker
 * extract --size --aug` (an eng_extract_fn). Its CPU time is counted by the
 * engine (its budget), not in cluster_cpu. */
static int tjob_extract(void *ctx, const char *backbone, const char *checksum, int size, int aug,
                        uint64_t seed, const char *const *paths, int n, int *computed, double *cpu,
                        eng_status *st, eng_diag *d)
{
    tjob *j = ctx;
    (void)checksum; /* the worker opens the same folder */
    const char *dir = NULL;
    for (int i = 0; i < j->nb && !dir; i++) {
        const char *b = strrchr(j->dirs[i], '/');
        if (strcmp(b ? b + 1 : j->dirs[i], backbone) == 0)
            dir = j->dirs[i];
    }
    if (!dir)
        return 1; /* not a folder of ours: extracted here */
    fs_code code;
    char msg[1024];
    int rc = mdl_slurm_extract_pass(j->m, paths, n, dir, size, aug, seed, tjob_abort, j, computed,
                                    cpu, &code, msg, sizeof msg);
    if (rc == -2)
        *st = eng_fail(d, ENG_EABORTED, "cancelled");
    else if (rc != 0)
        *st = eng_fail(d, ENG_EIO, "%s", msg);
    return rc == 0 ? 0 : -1;
}

static void run_train(run *x)
{
    char cdir[FS_PATH_MAX];
    cache_dir(cdir, sizeof cdir);
    double budget = daemon_budget(x);
    fs_recipe_train_in in = {
        .train = x->trv,
        .test = x->tev,
        .budget_seconds = budget,
        .threads = fs_ncpu(),
        .seed = 0,
        .cache_dir = cdir,
        .backbone_dirs = (const char *const *)x->dirs,
        .nbackbones = x->nb,
        .hooks = {.ctx = x->j,
                  .abort = tjob_abort,
                  .progress = tjob_progress,
                  .log = tjob_log,
                  .detail = tjob_detail},
    };
    if (fs_slurm()->enabled) {
        x->j->test_name = x->req.test_dataset;
        x->j->recipe = x->r;
        x->j->dirs = x->dirs;
        x->j->nb = x->nb;
        if (strcmp(x->r->kind, "classifier") == 0) {
            in.hooks.probs = tjob_probs;
            in.hooks.finetune = tjob_finetune;
            in.hooks.extract = tjob_extract;
        } else if (strcmp(x->r->kind, "multilabel") == 0) {
            in.hooks.probs = tjob_probs;
        } else if (strcmp(x->r->kind, "detector") == 0) {
            in.hooks.dets = tjob_dets;
            in.hooks.detfit = tjob_detfit;
        }
    }
    fs_recipe_err err = {0};
    x->st = fs_recipe_train(x->r, &in, &x->model, &x->eval, &err);
    if (x->st == FS_RECIPE_OK) {
        /* the report reads the images: build it while the snapshots are open */
        char title[FS_PATH_MAX], name[FS_TRQ_NAME_MAX + 1];
        mdl_name_copy(x->m, name, sizeof name);
        snprintf(title, sizeof title, "Model %s, version %d: evaluation after training", name,
                 x->version);
        mdl_report_build(x->m, x->j->detail, x->eval, title, &x->report);
    }
    eng_eval_detail_free(x->j->detail);
    x->j->detail = NULL;
    x->code = err.code ? err.code : FS_CODE_UNKNOWN;
    snprintf(x->msg, sizeof x->msg, "%s", err.msg);
    const char *gone = x->st == FS_RECIPE_EFAIL ? vanished(&x->req) : NULL;
    if (gone)
        run_fail(x, FS_CODE_DATASET_NOT_FOUND,
                 "dataset \"%s\" was removed or renamed while the model trained on it; write "
                 "train.json again to train on what is there now",
                 gone);
}

/* The model files in two temp files; on a full disk the feature cache
 * (which only saves time) is removed and the write tried once more. 0, or
 * -1 with the failure in x. */
static int run_save(run *x, char *tmpm, char *tmpe)
{
    if (write_model_files(x->model, x->eval, tmpm, tmpe, &x->code, x->msg, sizeof x->msg) == 0)
        return 0;
    if (x->code != FS_CODE_STORE_FULL)
        return -1;
    char cdir[FS_PATH_MAX];
    cache_dir(cdir, sizeof cdir);
    fs_remove_tree(cdir);
    mdl_log(x->m, "the store's disk is full: removed the feature cache to make room");
    if (write_model_files(x->model, x->eval, tmpm, tmpe, &x->code, x->msg, sizeof x->msg) == 0)
        return 0;
    if (x->code == FS_CODE_STORE_FULL) {
        fs_store_release_reserve(); /* room to write the failure down */
        snprintf(x->msg, sizeof x->msg,
                 "the store's disk is full, the model could not be saved: free space there, "
                 "then write train.json again");
    }
    return -1;
}

/* Renames the saved files into the model's folder and serves the new model,
 * unless the run went stale meanwhile. 0, or -errno. */
static int run_commit(run *x, const char *tmpm, const char *tmpe)
{
    mdl *m = x->m;
    srv *nsrv = srv_new(x->model); /* takes the model, also on failure */
    x->model = NULL;
    if (!nsrv)
        return -ENOMEM;
    srv *old = NULL;
    /* shared m->files: the run cannot become stale while it commits */
    pthread_rwlock_rdlock(&m->files);
    pthread_mutex_lock(&g_models.mu);
    char pm[FS_PATH_MAX], pe[FS_PATH_MAX];
    int rc = tjob_stale_locked(x->j) ? -ESTALE : 0;
    if (rc == 0)
        rc = mdl_path_locked(m, "model.safetensors", pm, sizeof pm);
    if (rc == 0)
        rc = mdl_path_locked(m, "evaluation.json", pe, sizeof pe);
    pthread_mutex_unlock(&g_models.mu);
    if (rc == 0 && (rename(tmpm, pm) != 0 || rename(tmpe, pe) != 0))
        rc = -errno;
    pthread_mutex_lock(&g_models.mu);
    if (rc == 0) {
        srv_unref_locked(m->srv, &old);
        m->srv = nsrv;
        nsrv = NULL;
        m->has_model = 1;
        m->imported = 0;
        m->served_version = x->version;
        m->state = ST_SUCCEEDED;
        snprintf(m->kind, sizeof m->kind, "%s", x->r->kind);
    }
    pthread_mutex_unlock(&g_models.mu);
    pthread_rwlock_unlock(&m->files);
    srv_free(old);
    if (nsrv)
        srv_put(nsrv);
    return rc;
}

/* A trained model: saved, committed and announced. */
static void run_finish(run *x)
{
    mdl *m = x->m;
    char tmpm[FS_PATH_MAX] = "", tmpe[FS_PATH_MAX] = "";
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    double w0 = fs_now();
    int rc = run_save(x, tmpm, tmpe) == 0 ? run_commit(x, tmpm, tmpe) : -1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    if (rc == 0) /* the last stage of the log's time account (the recipes log the others) */
        mdl_log(m, "stage saving: %.1f CPU s, %.1f s",
                (double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9, fs_now() - w0);
    /* the cached model.onnx was the previous model's */
    if (rc == 0)
        mdl_onnx_reset(m);
    if (rc != -1) { /* run_save leaves nothing behind when it fails */
        unlink(tmpm);
        unlink(tmpe);
    }
    if (rc == 0) {
        mdl_report_write(m, "", &x->report);
        mdl_mkdir(m, "predict");
        mdl_mkdir(m, "evaluations");
        mdl_persist(m);
        mdl_publish(m);
        mdl_log(m, "succeeded: version %d is now serving predict/", x->version);
        fs_store_reserve(); /* given back if a full disk took it */
        return;
    }
    if (rc == -ESTALE)
        return; /* superseded while saving */
    if (rc == -1 && !x->msg[0])
        snprintf(x->msg, sizeof x->msg, "cannot write the model files");
    if (rc < -1)
        run_fail(x, FS_CODE_UNKNOWN, "cannot write the model files: %s", strerror(-rc));
    pthread_mutex_lock(&g_models.mu);
    if (!tjob_stale_locked(x->j))
        mdl_fail_locked(m, x->code ? x->code : FS_CODE_UNKNOWN, x->msg);
    pthread_mutex_unlock(&g_models.mu);
    mdl_persist(m);
    mdl_publish(m);
    mdl_log(m, "failed: %s: %s", fs_code_name(x->code ? x->code : FS_CODE_UNKNOWN), x->msg);
}

/* How the run ended, written down: succeeded, cancelled, stopped or failed. */
static void run_end(run *x)
{
    mdl *m = x->m;
    pthread_mutex_lock(&g_models.mu);
    int stale = tjob_stale_locked(x->j), cancelled = m->cancel, stopping = g_models.stopping;
    m->running = 0;
    pthread_mutex_unlock(&g_models.mu);
    if (stale)
        return; /* superseded by a newer train.json, or the model was deleted */
    if (x->st == FS_RECIPE_OK && !cancelled && !stopping) {
        run_finish(x);
    } else if (x->st == FS_RECIPE_EABORTED || x->st == FS_RECIPE_OK) {
        if (cancelled) {
            pthread_mutex_lock(&g_models.mu);
            m->state = ST_CANCELLED;
            m->cancel = 0;
            pthread_mutex_unlock(&g_models.mu);
            mdl_persist(m);
            mdl_publish(m);
            mdl_log(m, "cancelled");
        } else if (stopping) {
            mdl_log(m, "stopped by unmount: training restarts at the next mount");
        }
    } else {
        pthread_mutex_lock(&g_models.mu);
        mdl_fail_locked(m, x->code, x->msg[0] ? x->msg : "training failed");
        pthread_mutex_unlock(&g_models.mu);
        mdl_persist(m);
        mdl_publish(m);
        mdl_log(m, "failed: %s: %s", fs_code_name(x->code), x->msg);
    }
}

static void tjob_run(void *arg)
{
    run x = {.j = arg, .m = ((tjob *)arg)->m, .st = FS_RECIPE_EFAIL};
    if (run_begin(&x) != 0)
        return;
    if (run_open_data(&x) == 0 && run_announce(&x) == 0 && run_slurm(&x) == 0)
        run_train(&x);
    fs_models_ds_close(x.tr);
    fs_models_ds_close(x.te);
    fs_models_backbones_free(x.dirs, x.nb);
    run_end(&x);
    fs_recipe_model_free(x.model);
    free(x.eval);
    eng_report_release(&x.report.r);
}

static void tjob_drop(void *arg)
{
    tjob *j = arg;
    mdl_unref(j->m);
    free(j);
}

/* Queues a training run of the current generation (g_models.mu not held). */
void mdl_train_queue(mdl *m, int restarted)
{
    tjob *j = calloc(1, sizeof *j);
    if (!j)
        return;
    pthread_mutex_lock(&g_models.mu);
    j->m = m;
    j->gen = m->gen;
    j->restarted = restarted;
    m->refs++;
    m->queued = 1;
    fs_jobq *q = g_models.trainq;
    pthread_mutex_unlock(&g_models.mu);
    if (!q || fs_jobq_push(q, m->id, tjob_run, tjob_drop, j) != FS_JOBQ_OK)
        tjob_drop(j); /* start() queues it from the persisted state */
}
