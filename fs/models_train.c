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
        j->m->has_prog = 1;
    }
    int due = mine && fs_now() - j->m->last_publish >= 0.5;
    pthread_mutex_unlock(&g_models.mu);
    if (due)
        mdl_publish(j->m);
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
    int det = 0;
    fs_models_ds_err e = {{0}};
    fs_models_ds_status st = fs_models_ds_check(r->dataset, &det, &e);
    if (st != FS_MDS_OK) {
        *code = ds_code(st);
        snprintf(msg, mn, "%s", e.msg);
        return -1;
    }
    const char *kind =
        r->kind == FS_KIND_AUTO ? (det ? "detector" : "classifier") : fs_model_kind_name(r->kind);
    const fs_recipe *rc = fs_recipe_for_kind(kind);
    if (!rc) {
        *code = FS_CODE_UNKNOWN;
        snprintf(msg, mn, "kind \"%s\": not available in this build", kind);
        return -1;
    }
    if (rc->wants_detection != det) {
        *code = FS_CODE_INCORRECT_MODEL_KIND;
        snprintf(msg, mn,
                 "dataset \"%s\" is a %s dataset: a %s needs %s (write \"kind\": \"%s\" or "
                 "use another dataset)",
                 r->dataset, det ? "detection" : "classification", kind,
                 rc->wants_detection ? "boxes" : "one label per image, no boxes",
                 det ? "detector" : "classifier");
        return -1;
    }
    if (r->test_dataset[0]) {
        int tdet = 0;
        st = fs_models_ds_check(r->test_dataset, &tdet, &e);
        if (st != FS_MDS_OK) {
            *code = ds_code(st);
            snprintf(msg, mn, "test dataset: %s", e.msg);
            return -1;
        }
        if (tdet != det) {
            *code = FS_CODE_INCORRECT_MODEL_KIND;
            snprintf(msg, mn, "test dataset \"%s\" is a %s dataset, training dataset \"%s\" is not",
                     r->test_dataset, tdet ? "detection" : "classification", r->dataset);
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
static int write_model_files(const fs_recipe_model *model, const char *eval, char *tmpm,
                             char *tmpe, fs_code *code, char *msg, size_t nmsg)
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

static void tjob_run(void *arg)
{
    tjob *j = arg;
    mdl *m = j->m;
    pthread_mutex_lock(&g_models.mu);
    if (tjob_stale_locked(j) || m->cancel || g_models.stopping) {
        pthread_mutex_unlock(&g_models.mu);
        return;
    }
    m->queued = 0;
    m->running = 1;
    m->state = ST_TRAINING;
    m->has_prog = 0;
    m->restarted_run = j->restarted;
    fs_trainreq req = m->req;
    int version = m->version;
    pthread_mutex_unlock(&g_models.mu);
    mdl_persist(m);
    mdl_publish(m);
    if (j->restarted)
        mdl_log(m, "restarted: the daemon stopped while version %d was training", version);
    mdl_log(m, "training version %d on dataset \"%s\"%s%s%s, kind %s, budget %.1f minutes of CPU",
            version, req.dataset, req.test_dataset[0] ? ", testing on \"" : "", req.test_dataset,
            req.test_dataset[0] ? "\"" : "", fs_model_kind_name(req.kind),
            req.budget_seconds / 60.0);

    fs_code code = FS_CODE_NONE;
    char msg[480] = "";
    const fs_recipe *r = NULL;
    fs_models_ds *tr = NULL, *te = NULL;
    const fs_recipe_dataset *trv = NULL, *tev = NULL;
    fs_recipe_model *model = NULL;
    char *eval = NULL;
    fs_recipe_status st = FS_RECIPE_EFAIL;
    char **dirs = NULL;
    int nb = 0;
    fs_models_ds_err de = {{0}};
    fs_models_ds_status ds;
    if (mdl_request_check(&req, &r, &code, msg, sizeof msg) == 0) {
        if ((ds = fs_models_ds_open(req.dataset, &tr, &trv, &de)) != FS_MDS_OK) {
            code = ds_code(ds);
            snprintf(msg, sizeof msg, "%s", de.msg);
        } else if (req.test_dataset[0] &&
                   (ds = fs_models_ds_open(req.test_dataset, &te, &tev, &de)) != FS_MDS_OK) {
            code = ds_code(ds);
            snprintf(msg, sizeof msg, "test dataset: %s", de.msg);
        } else if ((nb = fs_models_backbones_list(&dirs)) == 0) {
            code = FS_CODE_UNKNOWN;
            snprintf(msg, sizeof msg,
                     "no backbone is installed (run scripts/fetch-backbones.sh, or cp -r one "
                     "into backbones/)");
        } else {
            char cdir[FS_PATH_MAX];
            cache_dir(cdir, sizeof cdir);
            fs_recipe_train_in in = {
                .train = trv,
                .test = tev,
                .budget_seconds = req.budget_seconds,
                .threads = fs_ncpu(),
                .seed = 0,
                .cache_dir = cdir,
                .backbone_dirs = (const char *const *)dirs,
                .nbackbones = nb,
                .hooks = {.ctx = j,
                          .abort = tjob_abort,
                          .progress = tjob_progress,
                          .log = tjob_log},
            };
            fs_recipe_err err = {0};
            st = fs_recipe_train(r, &in, &model, &eval, &err);
            code = err.code ? err.code : FS_CODE_UNKNOWN;
            snprintf(msg, sizeof msg, "%s", err.msg);
            const char *gone = st == FS_RECIPE_EFAIL ? vanished(&req) : NULL;
            if (gone) {
                code = FS_CODE_DATASET_NOT_FOUND;
                snprintf(msg, sizeof msg,
                         "dataset \"%s\" was removed or renamed while the model trained on "
                         "it; write train.json again to train on what is there now",
                         gone);
            }
        }
    }
    fs_models_ds_close(tr);
    fs_models_ds_close(te);
    fs_models_backbones_free(dirs, nb);

    pthread_mutex_lock(&g_models.mu);
    int stale = tjob_stale_locked(j), cancelled = m->cancel, stopping = g_models.stopping;
    m->running = 0;
    pthread_mutex_unlock(&g_models.mu);

    if (st == FS_RECIPE_OK && !stale && !cancelled && !stopping) {
        char tmpm[FS_PATH_MAX], tmpe[FS_PATH_MAX] = "";
        int ok =
            write_model_files(model, eval, tmpm, tmpe, &code, msg, sizeof msg) == 0;
        if (!ok && code == FS_CODE_STORE_FULL) {
            /* the feature cache yields to model files: it only saves time */
            char cdir[FS_PATH_MAX];
            cache_dir(cdir, sizeof cdir);
            fs_remove_tree(cdir);
            mdl_log(m, "the store's disk is full: removed the feature cache to make room");
            ok = write_model_files(model, eval, tmpm, tmpe, &code, msg, sizeof msg) == 0;
        }
        if (!ok && code == FS_CODE_STORE_FULL) {
            fs_store_release_reserve(); /* room to write the failure down */
            snprintf(msg, sizeof msg,
                     "the store's disk is full, the model could not be saved: free space "
                     "there, then write train.json again");
        }
        srv *nsrv = NULL;
        if (ok) {
            nsrv = srv_new(model); /* takes the model, also on failure */
            model = NULL;
        }
        if (ok && nsrv) {
            srv *old = NULL;
            /* shared m->files: the run cannot become stale while it commits */
            pthread_rwlock_rdlock(&m->files);
            pthread_mutex_lock(&g_models.mu);
            char pm[FS_PATH_MAX], pe[FS_PATH_MAX];
            int rc = tjob_stale_locked(j) ? -ESTALE : 0;
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
                m->served_version = version;
                m->state = ST_SUCCEEDED;
                snprintf(m->kind, sizeof m->kind, "%s", r->kind);
            }
            pthread_mutex_unlock(&g_models.mu);
            pthread_rwlock_unlock(&m->files);
            unlink(tmpm);
            unlink(tmpe);
            srv_free(old);
            if (nsrv) {
                srv_put(nsrv);
            }
            if (rc == 0) {
                mdl_mkdir(m, "predict");
                mdl_mkdir(m, "evaluations");
                mdl_persist(m);
                mdl_publish(m);
                mdl_log(m, "succeeded: version %d is now serving predict/", version);
                fs_store_reserve(); /* given back if a full disk took it */
            }
        } else {
            unlink(tmpm);
            if (tmpe[0])
                unlink(tmpe);
            pthread_mutex_lock(&g_models.mu);
            if (!tjob_stale_locked(j))
                mdl_fail_locked(m, code ? code : FS_CODE_UNKNOWN,
                                msg[0] ? msg : "cannot write the model files");
            pthread_mutex_unlock(&g_models.mu);
            mdl_persist(m);
            mdl_publish(m);
            mdl_log(m, "failed: %s: %s", fs_code_name(code ? code : FS_CODE_UNKNOWN), msg);
        }
    } else if (stale) {
        /* superseded by a newer train.json, or the model was deleted */
    } else if (st == FS_RECIPE_EABORTED || st == FS_RECIPE_OK) {
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
        mdl_fail_locked(m, code, msg[0] ? msg : "training failed");
        pthread_mutex_unlock(&g_models.mu);
        mdl_persist(m);
        mdl_publish(m);
        mdl_log(m, "failed: %s: %s", fs_code_name(code), msg);
    }
    fs_recipe_model_free(model);
    free(eval);
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
