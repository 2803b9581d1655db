/* models_predict.c: the prediction job of the models/ area: an image in
 * predict/ becomes its .json answer (models_int.h). */
#include "models_int.h"
#include "models.h"

#include "answer.h"
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

/* ---- prediction --------------------------------------------------------- */

/* This thread's CPU time in seconds (fs_trace_predict: an engine stage
 * that takes longer than its CPU time waited for a core). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct pjob {
    mdl *m;
    pend *p;
} pjob;

/* predict/IMAGE.json (answer.h): version 0 is an imported model. The HTTP
 * analyze call answers the same. */
static char *prediction_json(const char *model, int version, int detector,
                             const fs_recipe_prediction *p)
{
    answer a = {model,      version,     p->width,   p->height,  detector,
                p->classes, p->nclasses, p->objects, p->nobjects};
    return answer_json(&a);
}

/* Azure's error shape, for an image that cannot be used. */
static char *error_json(fs_code code, const char *msg)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_key(&w, "error");
    jsonw_obj(&w);
    jsonw_kstr(&w, "code", fs_code_name(code));
    jsonw_kstr(&w, "message", msg);
    jsonw_end(&w);
    jsonw_end(&w);
    return jsonw_finish(&w, NULL);
}

/* Rewrites an engine message about a file of model `model` for the user:
 * "STORE/models/MODEL/predict/x.jpg" becomes "predict/x.jpg" (the name as
 * seen under models/MODEL/), and any other store path loses the store root,
 * so no message shows where the store lives. In place; msg stays a string. */
static void models_user_message(char *msg, size_t n, const char *model)
{
    char pre[2][FS_PATH_MAX];
    const char *root = fs_store_root();
    if (!msg || !n || !root || !*root)
        return;
    int np = 0;
    if (fs_store_path(pre[0], sizeof pre[0], "models", model) == 0 &&
        strlen(pre[0]) + 2 < sizeof pre[0]) {
        size_t used = strlen(pre[0]);
        snprintf(pre[0] + used, sizeof pre[0] - used, "/");
        np = 1;
    }
    if (snprintf(pre[np], sizeof pre[np], "%s/", root) < (int)sizeof pre[np])
        np++;
    for (int k = 0; k < np; k++) {
        size_t pl = strlen(pre[k]);
        char *at;
        while ((at = strstr(msg, pre[k])) != NULL)
            memmove(at, at + pl, strlen(at + pl) + 1);
    }
    (void)n;
}

static void pend_remove_locked(mdl *m, pend *p)
{
    for (pend **pp = &m->pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    free(p);
    pthread_cond_broadcast(&g_models.cv);
}

/* Replaces every occurrence of from in s (cap bytes) with to. */
static void replace_all(char *s, size_t cap, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    char *at = s;
    while (fl && (at = strstr(at, from)) != NULL) {
        size_t rest = strlen(at + fl);
        if ((size_t)(at - s) + tl + rest + 1 > cap)
            return;
        memmove(at + tl, at + fl, rest + 1);
        memcpy(at, to, tl);
        at += tl;
    }
}

/* The answer for image img (a store path) from the served model s of model
 * `name`, or Azure's error shape: what predict/IMAGE.json holds and what
 * the HTTP analyze call returns (one function makes both). s may be NULL
 * (no model to serve: why in *err); *code gets the error's code or
 * FS_CODE_NONE. A detector's drawing lands in pred. shown_as (may be NULL):
 * how the caller knows the file img, for messages. */
static char *answer_image(srv *s, const char *name, int version, const char *img,
                          const char *shown_as, int draw, fs_recipe_prediction *pred,
                          fs_recipe_err *err, fs_code *code)
{
    *code = FS_CODE_NONE;
    if (!s) {
        *code = FS_CODE_MODEL_NOT_FOUND;
        return error_json(*code, err->msg);
    }
    memset(err, 0, sizeof *err);
    if (fs_recipe_predict(s->model, img, draw, pred, err) == FS_RECIPE_OK)
        return prediction_json(name, version, s->recipe->wants_detection == FS_RECIPE_BOXES, pred);
    if (shown_as)
        replace_all(err->msg, sizeof err->msg, img, shown_as);
    models_user_message(err->msg, sizeof err->msg, name);
    *code = err->code ? err->code : FS_CODE_INVALID_IMAGE;
    return error_json(*code, err->msg);
}

/* Answers one image of predict/ in the daemon. */
static void predict_one(mdl *m, const pend *p)
{
    double t0 = fs_now();
    fs_recipe_err err = {0};
    char *json = NULL, img[FS_PATH_MAX];
    fs_recipe_prediction pred;
    memset(&pred, 0, sizeof pred);
    srv *s = srv_get(m, &err);
    pthread_mutex_lock(&g_models.mu);
    int gone = m->deleted || g_models.stopping || mdl_path_locked(m, p->rel, img, sizeof img);
    char name[FS_TRQ_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", m->name);
    int version = m->imported ? 0 : m->served_version;
    pthread_mutex_unlock(&g_models.mu);
    if (gone) {
        if (s)
            srv_put(s);
        return;
    }
    fs_code code;
    double t1 = fs_now(), c1 = cpu_now();
    json = answer_image(s, name, version, img, NULL, 1, &pred, &err, &code);
    double t2 = fs_now(), c2 = cpu_now();
    struct stat st;
    if (json && stat(img, &st) == 0) {
        char out[FS_PATH_MAX];
        snprintf(out, sizeof out, "%s" MDL_RESULT_SUFFIX, p->rel);
        if (pred.boxes_jpg) {
            snprintf(out, sizeof out, "%s" MDL_BOXES_SUFFIX, p->rel);
            mdl_put(m, out, pred.boxes_jpg, pred.boxes_jpg_len);
            snprintf(out, sizeof out, "%s" MDL_RESULT_SUFFIX, p->rel);
        }
        int rc = mdl_put(m, out, json, strlen(json));
        if (fs_disk_full(-rc)) {
            /* the reader must learn why rather than find an empty file */
            fs_store_release_reserve();
            char *e = error_json(FS_CODE_PREDICT_STORE_FULL,
                                 "the store's disk is full, so the result could "
                                 "not be written: free space there and copy the "
                                 "image again");
            if (e)
                mdl_put(m, out, e, strlen(e));
            free(e);
        }
    }
    if (fs_trace_predict())
        fs_log("trace predict %s/%s: queue %.2f ms, model %.2f, engine %.2f (cpu %.2f), result "
               "file %.2f",
               name, p->rel, 1e3 * (t0 - p->queued), 1e3 * (t1 - t0), 1e3 * (t2 - t1),
               1e3 * (c2 - c1), 1e3 * (fs_now() - t2));
    free(json);
    fs_recipe_prediction_release(&pred);
    if (s)
        srv_put(s);
}

static void pjob_run(void *arg)
{
    pjob *j = arg;
    predict_one(j->m, j->p);
}

/* ---- --executor slurm: a burst of images as one job array ---- */

typedef struct sbjob {
    mdl *m;
    int ran;
} sbjob;

/* How long a burst may be quiet before it is sent, and its longest wait. */
#define BURST_QUIET_S 1.0
#define BURST_MAX_S 10.0

static int sb_abort(void *ctx)
{
    mdl *m = ctx;
    pthread_mutex_lock(&g_models.mu);
    int stop = g_models.stopping || m->deleted;
    pthread_mutex_unlock(&g_models.mu);
    return stop;
}

/* Takes the burst's images out of the record (g_models.mu held). */
static pend **sb_take_locked(mdl *m, int *n)
{
    pend **b = m->sb;
    *n = m->nsb;
    m->sb = NULL;
    m->nsb = m->sbcap = 0;
    m->sb_open = 0;
    return b;
}

/* The cluster's answers for b[0..n) moved into predict/ (a detector's
 * drawing first, as predict_one writes them); done[k] set for each. */
static int sb_merge(mdl *m, pend **b, int n, const char *dir, int version, int det, char *done)
{
    int got = 0;
    for (int k = 0; k < n; k++) {
        char p[FS_PATH_MAX + 48], out[FS_PATH_MAX];
        snprintf(p, sizeof p, "%s/answers/%d.json", dir, k);
        size_t len = 0;
        char *json = fs_read_small(p, 1 << 20, &len);
        if (!json)
            continue;
        pthread_mutex_lock(&g_models.mu);
        int same = !m->deleted && !m->imported && m->served_version == version;
        pthread_mutex_unlock(&g_models.mu);
        size_t jl = 0;
        char *jpg = NULL;
        if (det) {
            snprintf(p, sizeof p, "%s/answers/%d" MDL_BOXES_SUFFIX, dir, k);
            jpg = fs_read_small(p, (size_t)1 << 28, &jl);
            snprintf(out, sizeof out, "%s" MDL_BOXES_SUFFIX, b[k]->rel);
            if (!jpg || (same && mdl_put(m, out, jpg, jl) != 0))
                same = 0; /* no drawing: the daemon answers it */
            free(jpg);
        }
        snprintf(out, sizeof out, "%s" MDL_RESULT_SUFFIX, b[k]->rel);
        if (same && mdl_put(m, out, json, len) == 0) {
            done[k] = 1;
            got++;
        }
        free(json);
    }
    return got;
}

static void sbjob_run(void *arg)
{
    sbjob *j = arg;
    mdl *m = j->m;
    j->ran = 1;
    double t0 = fs_now(), quiet = t0;
    int last = -1, n = 0;
    for (;;) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&g_models.mu);
        n = m->nsb;
        pthread_mutex_unlock(&g_models.mu);
        if (n != last) {
            last = n;
            quiet = fs_now();
        }
        if (sb_abort(m) || fs_now() - quiet >= BURST_QUIET_S || fs_now() - t0 >= BURST_MAX_S)
            break;
    }
    pthread_mutex_lock(&g_models.mu);
    pend **b = sb_take_locked(m, &n);
    int version = m->served_version, det = strcmp(m->kind, "detector") == 0;
    /* every kind (the worker answers for classifiers, multilabel models and
     * detectors); not an imported model, which has no version for sb_merge to
     * check the answers against */
    int cluster = n >= MDL_SLURM_MIN_PREDICT && !m->imported && m->has_model;
    char **paths = cluster ? calloc((size_t)n, sizeof *paths) : NULL;
    for (int k = 0; paths && k < n; k++) {
        paths[k] = malloc(FS_PATH_MAX);
        if (paths[k] && mdl_path_locked(m, b[k]->rel, paths[k], FS_PATH_MAX) != 0)
            paths[k][0] = '\0';
    }
    pthread_mutex_unlock(&g_models.mu);
    char *done = calloc((size_t)n + 1, 1);
    if (paths && done && !sb_abort(m)) {
        char dir[FS_PATH_MAX] = "", msg[480];
        int rc = mdl_slurm_predict(m, version, (const char *const *)paths, n, sb_abort, m, dir,
                                   sizeof dir, msg, sizeof msg);
        int got = rc == 0 ? sb_merge(m, b, n, dir, version, det, done) : 0;
        if (rc == -1)
            mdl_log(m, "%s; the daemon answers those images itself", msg);
        else if (rc == 0)
            mdl_log(m, "slurm: %d of %d answers came from the cluster%s", got, n,
                    got < n ? ", the daemon writes the others" : "");
        if (dir[0])
            fs_remove_tree(dir);
    }
    for (int k = 0; k < n; k++)
        if (!(done && done[k]))
            predict_one(m, b[k]);
    pthread_mutex_lock(&g_models.mu);
    for (int k = 0; k < n; k++)
        pend_remove_locked(m, b[k]);
    pthread_mutex_unlock(&g_models.mu);
    for (int k = 0; paths && k < n; k++)
        free(paths[k]);
    free(paths);
    free(done);
    free(b);
}

static void sbjob_drop(void *arg)
{
    sbjob *j = arg;
    if (!j->ran) { /* dropped unrun (unmount): nobody waits for these any more */
        pthread_mutex_lock(&g_models.mu);
        int n;
        pend **b = sb_take_locked(j->m, &n);
        for (int k = 0; k < n; k++)
            pend_remove_locked(j->m, b[k]);
        pthread_mutex_unlock(&g_models.mu);
        free(b);
    }
    mdl_unref(j->m);
    free(j);
}

/* Adds p to the model's burst, queueing its batch job when none is. 0, or
 * -1 when it could not (the caller predicts it on its own). */
static int sb_add(mdl *m, pend *p)
{
    sbjob *j = NULL;
    pthread_mutex_lock(&g_models.mu);
    if (m->nsb == m->sbcap) {
        int cap = m->sbcap ? 2 * m->sbcap : 64;
        pend **v = realloc(m->sb, (size_t)cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&g_models.mu);
            return -1;
        }
        m->sb = v;
        m->sbcap = cap;
    }
    m->sb[m->nsb++] = p;
    if (!m->sb_open && (j = calloc(1, sizeof *j))) {
        m->sb_open = 1;
        m->refs++;
        j->m = m;
    }
    fs_jobq *q = g_models.predq;
    pthread_mutex_unlock(&g_models.mu);
    if (j && (!q || fs_jobq_push(q, m->id, sbjob_run, sbjob_drop, j) != FS_JOBQ_OK))
        sbjob_drop(j);
    return 0;
}

static void pjob_drop(void *arg)
{
    pjob *j = arg;
    pthread_mutex_lock(&g_models.mu);
    pend_remove_locked(j->m, j->p);
    pthread_mutex_unlock(&g_models.mu);
    mdl_unref(j->m);
    free(j);
}

/* Queues the prediction of image `sub` ("predict/...") and puts an empty
 * IMAGE.json in place at once, so ls shows it as soon as cp returns. */
void mdl_predict_queue(mdl *m, const char *sub)
{
    pjob *j = calloc(1, sizeof *j);
    pend *p = calloc(1, sizeof *p);
    if (!j || !p) {
        free(j);
        free(p);
        return;
    }
    snprintf(p->rel, sizeof p->rel, "%s", sub);
    p->queued = fs_now();
    char out[FS_PATH_MAX];
    snprintf(out, sizeof out, "%s.json", sub);
    pthread_mutex_lock(&g_models.mu);
    p->next = m->pending;
    m->pending = p;
    m->refs++;
    j->m = m;
    j->p = p;
    fs_jobq *q = g_models.predq;
    pthread_mutex_unlock(&g_models.mu);
    mdl_put(m, out, "", 0);
    if (fs_slurm()->enabled && sb_add(m, p) == 0) {
        mdl_unref(m);
        free(j);
        return;
    }
    if (!q || fs_jobq_push(q, m->id, pjob_run, pjob_drop, j) != FS_JOBQ_OK)
        pjob_drop(j);
}

/* ---- analyze: the same answer for an image that is not in the tree ---- */

typedef struct ajob {
    mdl *m;
    const char *img, *shown_as;
    char *json;
    fs_code code;
    int done;
    double t_push, t_start, t_end, cpu; /* fs_trace_predict */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} ajob;

static void ajob_run(void *arg)
{
    ajob *j = arg;
    j->t_start = fs_now();
    double c0 = cpu_now();
    fs_recipe_err err = {0};
    fs_recipe_prediction pred;
    memset(&pred, 0, sizeof pred);
    srv *s = srv_get(j->m, &err);
    pthread_mutex_lock(&g_models.mu);
    char name[FS_TRQ_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", j->m->name);
    int version = j->m->imported ? 0 : j->m->served_version;
    pthread_mutex_unlock(&g_models.mu);
    /* no boxes drawn: the HTTP answer has no image (a full-size decode and
     * encode of the photo saved) */
    j->json = answer_image(s, name, version, j->img, j->shown_as, 0, &pred, &err, &j->code);
    if (s)
        srv_put(s);
    fs_recipe_prediction_release(&pred);
    j->t_end = fs_now();
    j->cpu = cpu_now() - c0;
}

static void ajob_drop(void *arg)
{
    ajob *j = arg;
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int fs_models_analyze(const char *model, const char *img, const char *shown_as, char **json,
                      fs_code *code)
{
    *json = NULL;
    *code = FS_CODE_NONE;
    mdl *m = mdl_get(model);
    if (!m)
        return -ENOENT;
    ajob j;
    memset(&j, 0, sizeof j);
    j.m = m;
    j.img = img;
    j.shown_as = shown_as;
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&g_models.mu);
    fs_jobq *q = g_models.predq;
    pthread_mutex_unlock(&g_models.mu);
    int rc = 0;
    j.t_push = fs_now();
    /* on the prediction queue, like predict/: the same worker count caps
     * how many images the engine works on at once; on one of its workers
     * already (fs_models_call), right here */
    if (fs_jobq_is_worker(q)) {
        ajob_run(&j);
        if (fs_trace_predict())
            fs_log("trace analyze %s: on the prediction worker, engine %.2f (cpu %.2f)", model,
                   1e3 * (j.t_end - j.t_start), 1e3 * j.cpu);
    } else if (!q || fs_jobq_push(q, 0, ajob_run, ajob_drop, &j) != FS_JOBQ_OK) {
        rc = -ESHUTDOWN;
    } else {
        pthread_mutex_lock(&j.mu);
        while (!j.done)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
        if (!j.json)
            rc = -ESHUTDOWN; /* dropped: the mount is stopping */
        if (fs_trace_predict() && j.json)
            fs_log("trace analyze %s: queue %.2f ms, engine %.2f (cpu %.2f), back to the caller "
                   "%.2f",
                   model, 1e3 * (j.t_start - j.t_push), 1e3 * (j.t_end - j.t_start), 1e3 * j.cpu,
                   1e3 * (fs_now() - j.t_end));
    }
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    mdl_unref(m);
    *json = j.json;
    *code = j.code;
    return rc;
}

/* The key of fs_models_call's jobs on the prediction queue: model ids count
 * up from 1, and analyze's own jobs use 0. */
#define CALL_KEY UINT64_MAX

int fs_models_call(fs_job_run_fn run, fs_job_drop_fn drop, void *arg)
{
    pthread_mutex_lock(&g_models.mu);
    fs_jobq *q = g_models.predq;
    pthread_mutex_unlock(&g_models.mu);
    return q && fs_jobq_push(q, CALL_KEY, run, drop, arg) == FS_JOBQ_OK ? 0 : -1;
}

void fs_models_call_cancel(void)
{
    pthread_mutex_lock(&g_models.mu);
    fs_jobq *q = g_models.predq;
    pthread_mutex_unlock(&g_models.mu);
    if (q)
        fs_jobq_cancel_key(q, CALL_KEY);
}
