/* models_eval.c: the evaluation job of the models/ area: a folder made in
 * evaluations/ names a dataset to evaluate on (models_int.h). */
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

/* ---- evaluations ---------------------------------------------------------- */

typedef struct ejob {
    mdl *m;
    evl *e;
    eng_eval_detail *detail; /* the evaluation's per-image data, for the report */
    int cluster_failed;      /* the Slurm job array failed (not an image) */
    const fs_recipe *recipe; /* the model's kind, while it evaluates */
} ejob;

static void ejob_detail(void *ctx, const eng_eval_detail *dt)
{
    ejob *j = ctx;
    mdl_report_keep(&j->detail, dt);
}

static int ejob_abort(void *ctx)
{
    ejob *j = ctx;
    pthread_mutex_lock(&g_models.mu);
    int stop = g_models.stopping || j->m->deleted || j->e->cancel;
    pthread_mutex_unlock(&g_models.mu);
    return stop;
}

static void ejob_write(ejob *j, const char *file, const char *text)
{
    char sub[FS_PATH_MAX];
    snprintf(sub, sizeof sub, "evaluations/%s/%s", j->e->ds, file);
    pthread_mutex_lock(&g_models.mu);
    int cancel = j->e->cancel;
    pthread_mutex_unlock(&g_models.mu);
    if (!cancel)
        mdl_put(j->m, sub, text, strlen(text));
}

static void ejob_status(ejob *j, fs_code code, const char *msg)
{
    char raw[1024], line[2048];
    if (code)
        snprintf(raw, sizeof raw, "failed: %s: %s", fs_code_name(code), msg);
    else
        snprintf(raw, sizeof raw, "%s", msg);
    /* one line, however the names in it are spelled */
    fs_line_escape(line, sizeof line - 1, raw);
    size_t used = strlen(line);
    line[used] = '\n';
    line[used + 1] = '\0';
    ejob_write(j, "status", line);
}

static void ejob_slurm_changed(void *ctx, const char *summary)
{
    ejob *j = ctx;
    char line[512];
    snprintf(line, sizeof line, "running%s", summary);
    ejob_status(j, FS_CODE_NONE, line);
}

/* --executor slurm: the probabilities of a classifier's (or the scores of a
 * multilabel model's) evaluation computed by a job array of
 * `visionfs-worker evaluate` (an eng_probs_fn). */
static int ejob_probs(void *ctx, const void *model, const char *const *paths, int n, int cached,
                      float *probs, eng_status *st, eng_diag *d)
{
    ejob *j = ctx;
    char stage[FS_TRQ_NAME_MAX + 32];
    snprintf(stage, sizeof stage, "evaluation of %s", j->e->ds);
    double cpu = 0;
    int rc = mdl_slurm_probs(j->m, j->recipe, MDL_SL_EVAL, stage, model, paths, n, cached,
                             ejob_abort, j, ejob_slurm_changed, j, probs, &cpu, st, d);
    j->cluster_failed = rc < 0 && strncmp(d->msg, "slurm:", 6) == 0;
    return rc;
}

/* --executor slurm: the objects a detector finds in the images of its
 * evaluation, from a job array of `visionfs-worker evaluate` (an
 * eng_dets_fn); the metrics are computed here as the local executor does. */
static int ejob_dets(void *ctx, const void *model, const char *const *paths, int n,
                     struct eng_det_object *objs, int *nobjs, int *wh, eng_status *st, eng_diag *d)
{
    ejob *j = ctx;
    char stage[FS_TRQ_NAME_MAX + 32];
    snprintf(stage, sizeof stage, "evaluation of %s", j->e->ds);
    double cpu = 0;
    int rc = mdl_slurm_dets(j->m, j->recipe, MDL_SL_EVAL, stage, model, paths, n, ejob_abort, j,
                            ejob_slurm_changed, j, objs, nobjs, wh, &cpu, st, d);
    j->cluster_failed = rc < 0 && strncmp(d->msg, "slurm:", 6) == 0;
    return rc;
}

static void ejob_run(void *arg)
{
    ejob *j = arg;
    mdl *m = j->m;
    if (ejob_abort(j))
        return;
    fs_recipe_err err = {0};
    srv *s = srv_get(m, &err);
    if (!s) {
        ejob_status(j, FS_CODE_MODEL_NOT_FOUND, err.msg);
        return;
    }
    fs_models_ds *ds = NULL;
    const fs_recipe_dataset *view = NULL;
    fs_models_ds_err de = {{0}};
    fs_models_ds_status dst = fs_models_ds_open(j->e->ds, &ds, &view, &de);
    if (dst != FS_MDS_OK) {
        fs_code code = dst == FS_MDS_NOTFOUND ? FS_CODE_DATASET_NOT_FOUND
                       : dst == FS_MDS_EMPTY  ? FS_CODE_DATASET_EMPTY
                       : dst == FS_MDS_ENOMEM ? FS_CODE_UNKNOWN
                                              : FS_CODE_DATASET_ANNOTATIONS_INVALID;
        ejob_status(j, code, de.msg);
    } else if (view->nimages == 0) {
        ejob_status(j, FS_CODE_DATASET_EMPTY, "the dataset has no images");
    } else if (!fs_recipe_accepts(s->recipe, view->detection)) {
        char msg[400], name[FS_TRQ_NAME_MAX + 1];
        mdl_name_copy(m, name, sizeof name);
        snprintf(msg, sizeof msg, "model \"%s\" is a %s; dataset \"%s\" is a %s dataset", name,
                 s->recipe->kind, j->e->ds, fs_recipe_data_name(view->detection));
        ejob_status(j, FS_CODE_INCORRECT_MODEL_KIND, msg);
    } else {
        ejob_status(j, FS_CODE_NONE, "running");
        char *metrics = NULL, *preds = NULL;
        fs_recipe_hooks hooks = {.ctx = j, .abort = ejob_abort, .detail = ejob_detail};
        j->recipe = s->recipe;
        if (fs_slurm()->enabled && (strcmp(s->recipe->kind, "classifier") == 0 ||
                                    strcmp(s->recipe->kind, "multilabel") == 0))
            hooks.probs = ejob_probs;
        if (fs_slurm()->enabled && strcmp(s->recipe->kind, "detector") == 0)
            hooks.dets = ejob_dets;
        fs_recipe_status st =
            fs_recipe_evaluate(s->model, view, fs_ncpu(), &hooks, &metrics, &preds, &err);
        if (st == FS_RECIPE_OK) {
            ejob_write(j, "metrics.json", metrics);
            ejob_write(j, "predictions.json", preds);
            /* built while the dataset's images are still at hand */
            char title[FS_PATH_MAX], dir[FS_PATH_MAX], name[FS_TRQ_NAME_MAX + 1];
            mdl_name_copy(m, name, sizeof name);
            snprintf(title, sizeof title, "Model %s on dataset %s", name, j->e->ds);
            snprintf(dir, sizeof dir, "evaluations/%s", j->e->ds);
            mdl_report rep;
            mdl_report_build(m, j->detail, metrics, title, &rep);
            if (!ejob_abort(j))
                mdl_report_write(m, dir, &rep);
            else
                eng_report_release(&rep.r);
            ejob_status(j, FS_CODE_NONE, "succeeded");
        } else if (st == FS_RECIPE_EFAIL) {
            ejob_status(j,
                        j->cluster_failed ? FS_CODE_UNKNOWN
                        : err.code        ? err.code
                                          : FS_CODE_UNKNOWN,
                        err.msg);
        }
        free(metrics);
        free(preds);
    }
    fs_models_ds_close(ds);
    srv_put(s);
}

static void ejob_drop(void *arg)
{
    ejob *j = arg;
    pthread_mutex_lock(&g_models.mu);
    for (evl **pp = &j->m->evals; *pp; pp = &(*pp)->next) {
        if (*pp == j->e) {
            *pp = j->e->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_models.mu);
    free(j->e);
    eng_eval_detail_free(j->detail);
    mdl_unref(j->m);
    free(j);
}

void mdl_eval_queue(mdl *m, const char *ds)
{
    ejob *j = calloc(1, sizeof *j);
    evl *e = calloc(1, sizeof *e);
    if (!j || !e) {
        free(j);
        free(e);
        return;
    }
    snprintf(e->ds, sizeof e->ds, "%s", ds);
    pthread_mutex_lock(&g_models.mu);
    for (evl *o = m->evals; o; o = o->next)
        if (strcmp(o->ds, ds) == 0)
            o->cancel = 1;
    e->next = m->evals;
    m->evals = e;
    m->refs++;
    j->m = m;
    j->e = e;
    fs_jobq *q = g_models.evalq;
    pthread_mutex_unlock(&g_models.mu);
    char sub[FS_PATH_MAX];
    snprintf(sub, sizeof sub, "evaluations/%s/status", ds);
    mdl_put(m, sub, "notStarted\n", 11);
    if (!q || fs_jobq_push(q, m->id, ejob_run, ejob_drop, j) != FS_JOBQ_OK)
        ejob_drop(j);
}

void mdl_eval_cancel(mdl *m, const char *ds)
{
    pthread_mutex_lock(&g_models.mu);
    for (evl *o = m->evals; o; o = o->next)
        if (!ds || strcmp(o->ds, ds) == 0)
            o->cancel = 1;
    pthread_mutex_unlock(&g_models.mu);
}
