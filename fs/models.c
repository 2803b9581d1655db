/* models.c: the models/ area: the model lifecycle (train.json -> queued ->
 * training -> succeeded | failed | cancelled), prediction, evaluations,
 * export and import.
 *
 * Design:
 * - The store holds everything (STORE/models/NAME/): the user's train.json,
 *   the generated status, status.json, log, evaluation.json and
 *   model.safetensors (written temp + rename; log appended), predict/ and
 *   evaluations/, and .vfs-state.json, the lifecycle state that survives a
 *   crash: a run that was "training" when the daemon died is queued again at
 *   the next mount.
 * - In memory, one record per model (refcounted) under one mutex (g.mu).
 *   FUSE hooks only read and flip these records and queue jobs; the jobs run
 *   on three queues (fs/jobs.h): training (one at a time, all cores inside
 *   the engine), prediction (one worker per core, single-threaded engine
 *   calls) and evaluation (one at a time).
 * - Kind-agnostic: what a kind of model does is a fs_recipe vtable
 *   (models_recipe.h); this file never names the engine.
 * - Versions: a training run carries a generation number; rewriting
 *   train.json bumps it, so the older run sees "stale" and stops without
 *   touching state, while the served model (g.srv) stays until a run succeeds.
 *
 * Lock order: m->pub_mu, then g.mu; the job queues' locks are leaves.
 */
#include "area.h"
#include "backbones.h"
#include "jobs.h"
#include "models_data.h"
#include "models_recipe.h"
#include "trainreq.h"
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
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

#define MP 4200 /* path buffers */
#define STATE_FILE ".vfs-state.json"

typedef enum mdl_state {
    ST_NOT_STARTED = 0,
    ST_TRAINING,
    ST_SUCCEEDED,
    ST_FAILED,
    ST_CANCELLING,
    ST_CANCELLED,
} mdl_state;

static const char *const state_names[] = {"notStarted", "training",   "succeeded",
                                          "failed",     "cancelling", "cancelled"};

/* A loaded model that serves predictions; refcounted so a retrain can swap
 * it while predictions still run on the old one. */
typedef struct srv {
    int refs; /* under g.mu */
    const fs_recipe *recipe;
    fs_recipe_model *model;
    char about[512];
} srv;

/* A prediction not yet written: open_read of its .json waits for it. */
typedef struct pend {
    struct pend *next;
    char rel[MP]; /* "predict/a/b.png" under the model */
} pend;

/* A running or queued evaluation. */
typedef struct evl {
    struct evl *next;
    char ds[FS_TRQ_NAME_MAX + 1];
    int cancel;
} evl;

typedef struct mdl {
    struct mdl *next;
    uint64_t id;
    int refs;
    int deleted;
    char name[FS_TRQ_NAME_MAX + 1];
    pthread_mutex_t pub_mu; /* orders writes of status/status.json */

    mdl_state state;
    char err_code[48], err_msg[480];
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
} mdl;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* predictions written, models loaded, stop */
    mdl *models;
    fs_jobq *trainq, *predq, *evalq;
    int stopping, started;
    uint64_t next_id;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .next_id = 1};

static int ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Splits "NAME/sub" into name (copied) and sub (borrowed; "" when none). */
static int split_rel(const char *rel, char *name, const char **sub)
{
    const char *slash = strchr(rel, '/');
    size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
    if (n == 0 || n > FS_TRQ_NAME_MAX)
        return -1;
    memcpy(name, rel, n);
    name[n] = '\0';
    *sub = slash ? slash + 1 : "";
    return 0;
}

/* A generated output in predict/: X.json or X.boxes.jpg. */
static int is_predict_output(const char *sub)
{
    return ends_with(sub, ".json") || ends_with(sub, ".boxes.jpg");
}

/* ---- records ---------------------------------------------------------- */

static void srv_unref_locked(srv *s, srv **to_free)
{
    if (s && --s->refs == 0)
        *to_free = s;
}

static void srv_free(srv *s)
{
    if (!s)
        return;
    fs_recipe_model_free(s->model);
    free(s);
}

static srv *srv_new(fs_recipe_model *model)
{
    srv *s = calloc(1, sizeof *s);
    if (!s) {
        fs_recipe_model_free(model);
        return NULL;
    }
    s->refs = 1;
    s->recipe = fs_recipe_of(model);
    s->model = model;
    fs_recipe_describe(model, s->about, sizeof s->about);
    return s;
}

static int mdl_path_locked(const mdl *m, const char *sub, char *out, size_t n)
{
    char rel[MP];
    if (snprintf(rel, sizeof rel, "%s%s%s", m->name, sub && *sub ? "/" : "", sub ? sub : "") >=
        (int)sizeof rel)
        return -ENAMETOOLONG;
    return fs_store_path(out, n, "models", rel);
}

static void mdl_unref(mdl *m)
{
    srv *f1 = NULL, *f2 = NULL;
    pthread_mutex_lock(&g.mu);
    int last = --m->refs == 0;
    if (last) {
        srv_unref_locked(m->srv, &f1);
        srv_unref_locked(m->import_pending, &f2);
    }
    pthread_mutex_unlock(&g.mu);
    if (!last)
        return;
    srv_free(f1);
    srv_free(f2);
    for (pend *p = m->pending, *n; p; p = n) {
        n = p->next;
        free(p);
    }
    for (evl *e = m->evals, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    pthread_mutex_destroy(&m->pub_mu);
    free(m);
}

static char *read_small(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf || n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Reads .vfs-state.json into a fresh record (called under g.mu). */
static void mdl_load_state_locked(mdl *m)
{
    char path[MP];
    if (mdl_path_locked(m, STATE_FILE, path, sizeof path))
        return;
    size_t len;
    char *text = read_small(path, 1 << 16, &len);
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    if (root) {
        const cJSON *v;
        if (cJSON_IsString(v = cJSON_GetObjectItem(root, "state")))
            for (int i = 0; i <= ST_CANCELLED; i++)
                if (strcmp(v->valuestring, state_names[i]) == 0)
                    m->state = (mdl_state)i;
        if (cJSON_IsNumber(v = cJSON_GetObjectItem(root, "version")))
            m->version = v->valueint;
        if (cJSON_IsNumber(v = cJSON_GetObjectItem(root, "restarts")))
            m->restarts = v->valueint;
        if (cJSON_IsNumber(v = cJSON_GetObjectItem(root, "servedVersion")))
            m->served_version = v->valueint;
        if (cJSON_IsBool(v = cJSON_GetObjectItem(root, "imported")))
            m->imported = cJSON_IsTrue(v);
        if (cJSON_IsString(v = cJSON_GetObjectItem(root, "kind")))
            snprintf(m->kind, sizeof m->kind, "%s", v->valuestring);
        const cJSON *req = cJSON_GetObjectItem(root, "request");
        if (cJSON_IsObject(req)) {
            char *s = cJSON_PrintUnformatted(req);
            fs_trainreq_diag d;
            if (s && fs_trainreq_parse(s, strlen(s), &m->req, &d) == FS_TRQ_OK)
                m->has_req = 1;
            free(s);
        }
        const cJSON *err = cJSON_GetObjectItem(root, "error");
        if (cJSON_IsObject(err)) {
            if (cJSON_IsString(v = cJSON_GetObjectItem(err, "code")))
                snprintf(m->err_code, sizeof m->err_code, "%s", v->valuestring);
            if (cJSON_IsString(v = cJSON_GetObjectItem(err, "message")))
                snprintf(m->err_msg, sizeof m->err_msg, "%s", v->valuestring);
        }
        cJSON_Delete(root);
    }
    struct stat st;
    if (mdl_path_locked(m, "model.safetensors", path, sizeof path) == 0 && stat(path, &st) == 0)
        m->has_model = 1;
}

static mdl *mdl_find_locked(const char *name)
{
    for (mdl *m = g.models; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* The record of model `name` (loaded from the store on first use), with a
 * reference the caller drops with mdl_unref; NULL when there is no such model. */
static mdl *mdl_get(const char *name)
{
    pthread_mutex_lock(&g.mu);
    mdl *m = mdl_find_locked(name);
    if (!m) {
        char path[MP];
        struct stat st;
        if (!fs_trainreq_name_ok(name) || fs_store_path(path, sizeof path, "models", name) ||
            stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            pthread_mutex_unlock(&g.mu);
            return NULL;
        }
        m = calloc(1, sizeof *m);
        if (!m) {
            pthread_mutex_unlock(&g.mu);
            return NULL;
        }
        pthread_mutex_init(&m->pub_mu, NULL);
        snprintf(m->name, sizeof m->name, "%s", name);
        m->id = g.next_id++;
        m->refs = 1; /* the list's */
        mdl_load_state_locked(m);
        m->next = g.models;
        g.models = m;
    }
    m->refs++;
    pthread_mutex_unlock(&g.mu);
    return m;
}

static mdl *mdl_get_rel(const char *rel, const char **sub)
{
    char name[FS_TRQ_NAME_MAX + 1];
    if (split_rel(rel, name, sub))
        return NULL;
    return mdl_get(name);
}

/* ---- files ------------------------------------------------------------ */

/* Writes data as model file `sub`, atomically; the target path is resolved
 * under g.mu at rename time, so a concurrent mv of the model is safe. */
static int mdl_put(mdl *m, const char *sub, const void *data, size_t len)
{
    char tmp[MP], path[MP];
    int rc = fs_tmp_write(tmp, sizeof tmp, data, len);
    if (rc)
        return rc;
    pthread_mutex_lock(&g.mu);
    rc = m->deleted ? -ENOENT : mdl_path_locked(m, sub, path, sizeof path);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    pthread_mutex_unlock(&g.mu);
    if (rc)
        unlink(tmp);
    return rc;
}

static void mdl_mkdir(mdl *m, const char *sub)
{
    char path[MP];
    pthread_mutex_lock(&g.mu);
    if (!m->deleted && mdl_path_locked(m, sub, path, sizeof path) == 0)
        mkdir(path, 0755);
    pthread_mutex_unlock(&g.mu);
}

/* Appends one timestamped line to the model's log. */
static void mdl_log(mdl *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mdl_log(mdl *m, const char *fmt, ...)
{
    char line[1200], path[MP];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    for (char *c = line + n; *c; c++)
        if (*c == '\n')
            *c = ' ';
    fs_store_unroot(line + n);
    size_t used = strlen(line);
    snprintf(line + used, sizeof line - used, "\n");
    pthread_mutex_lock(&g.mu);
    if (!m->deleted && mdl_path_locked(m, "log", path, sizeof path) == 0) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t w = write(fd, line, strlen(line));
            (void)w;
            close(fd);
        }
    }
    pthread_mutex_unlock(&g.mu);
}

static void fmt_clock(char *out, size_t n, double s)
{
    long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
}

static const char *metric_of(const mdl *m)
{
    const fs_recipe *r = fs_recipe_for_kind(m->kind);
    return r ? r->metric : "accuracyTop1";
}

/* The one-line status (under g.mu). */
static void status_line_locked(const mdl *m, char *out, size_t n)
{
    switch (m->state) {
    case ST_TRAINING: {
        char el[32], bu[32], best[96] = "";
        fmt_clock(el, sizeof el, m->has_prog ? m->prog.cpu_seconds : 0);
        fmt_clock(bu, sizeof bu, m->req.budget_seconds);
        int pct = m->has_prog ? (int)(m->prog.fraction * 100.0) : 0;
        if (pct > 99)
            pct = 99;
        if (m->has_prog && m->prog.best >= 0)
            snprintf(best, sizeof best, " best %s %.2f", metric_of(m), m->prog.best);
        /* the trial under way (trials done + 1, at most the plan); before
         * the search has a plan: "preparing", never "trial 0/0" */
        char trial[48] = "preparing";
        if (m->has_prog && m->prog.ntrials > 0) {
            int t = m->prog.trial < 0 ? 1 : m->prog.trial + 1;
            snprintf(trial, sizeof trial, "trial %d/%d", t > m->prog.ntrials ? m->prog.ntrials : t,
                     m->prog.ntrials);
        }
        snprintf(out, n, "training %d%% %s%s elapsed %s budget %s%s\n", pct, trial, best, el, bu,
                 m->restarted_run ? " (restarted after an interruption)" : "");
        break;
    }
    case ST_FAILED: snprintf(out, n, "failed: %s: %s\n", m->err_code, m->err_msg); break;
    default: snprintf(out, n, "%s\n", state_names[m->state]);
    }
}

/* The request as members of the object being written. */
static void request_members(jsonw *w, const fs_trainreq *r)
{
    jsonw_kstr(w, "dataset", r->dataset);
    if (r->kind != FS_KIND_AUTO)
        jsonw_kstr(w, "kind", fs_model_kind_name(r->kind));
    jsonw_knum(w, "budget_minutes", r->budget_seconds / 60.0);
    if (r->test_dataset[0])
        jsonw_kstr(w, "test_dataset", r->test_dataset);
}

static char *status_json_locked(const mdl *m)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_kstr(&w, "name", m->name);
    jsonw_kstr(&w, "status", state_names[m->state]);
    if (m->kind[0])
        jsonw_kstr(&w, "kind", m->kind);
    jsonw_kint(&w, "version", m->version);
    jsonw_kint(&w, "restarts", m->restarts);
    jsonw_kbool(&w, "restarted", m->restarted_run && m->state == ST_TRAINING);
    if (m->has_req) {
        jsonw_key(&w, "request");
        jsonw_obj(&w);
        request_members(&w, &m->req);
        jsonw_end(&w);
    }
    if (m->state == ST_TRAINING) {
        jsonw_key(&w, "progress");
        jsonw_obj(&w);
        jsonw_knum(&w, "fraction", m->has_prog ? m->prog.fraction : 0);
        jsonw_kint(&w, "trial", m->has_prog ? m->prog.trial : 0);
        jsonw_kint(&w, "trials", m->has_prog ? m->prog.ntrials : 0);
        jsonw_knum(&w, "elapsedSeconds", m->has_prog ? m->prog.cpu_seconds : 0);
        jsonw_knum(&w, "budgetSeconds", m->req.budget_seconds);
        jsonw_end(&w);
    }
    jsonw_key(&w, "bestMetrics");
    jsonw_obj(&w);
    if (m->has_prog && m->prog.best >= 0)
        jsonw_knum(&w, metric_of(m), m->prog.best);
    jsonw_end(&w);
    jsonw_key(&w, "errors");
    jsonw_arr(&w);
    if (m->state == ST_FAILED) {
        jsonw_obj(&w);
        jsonw_kstr(&w, "code", m->err_code);
        jsonw_kstr(&w, "message", m->err_msg);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    if (m->refused[0])
        jsonw_kstr(&w, "lastRefusedRequest", m->refused);
    jsonw_key(&w, "model");
    jsonw_obj(&w);
    jsonw_kbool(&w, "available", m->has_model);
    jsonw_kbool(&w, "imported", m->imported);
    if (m->has_model && !m->imported)
        jsonw_kint(&w, "version", m->served_version);
    if (m->srv && m->srv->about[0])
        jsonw_kstr(&w, "backbones", m->srv->about);
    jsonw_end(&w);
    jsonw_end(&w);
    return jsonw_finish(&w, NULL);
}

/* Rewrites status and status.json from the record. */
static void mdl_publish(mdl *m)
{
    char line[1200];
    pthread_mutex_lock(&m->pub_mu);
    pthread_mutex_lock(&g.mu);
    status_line_locked(m, line, sizeof line);
    char *js = status_json_locked(m);
    m->last_publish = now_s();
    pthread_mutex_unlock(&g.mu);
    mdl_put(m, "status", line, strlen(line));
    if (js) {
        size_t n = strlen(js);
        char *t = realloc(js, n + 2);
        if (t) {
            js = t;
            js[n] = '\n';
            js[n + 1] = '\0';
        }
        mdl_put(m, "status.json", js, strlen(js));
    }
    free(js);
    pthread_mutex_unlock(&m->pub_mu);
}

/* Saves the lifecycle state that must survive a crash. */
static void mdl_persist(mdl *m)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    pthread_mutex_lock(&g.mu);
    jsonw_obj(&w);
    jsonw_kstr(&w, "state", state_names[m->state]);
    jsonw_kint(&w, "version", m->version);
    jsonw_kint(&w, "restarts", m->restarts);
    jsonw_kint(&w, "servedVersion", m->served_version);
    jsonw_kbool(&w, "imported", m->imported);
    jsonw_kstr(&w, "kind", m->kind);
    if (m->has_req) {
        jsonw_key(&w, "request");
        jsonw_obj(&w);
        request_members(&w, &m->req);
        jsonw_end(&w);
    }
    if (m->state == ST_FAILED) {
        jsonw_key(&w, "error");
        jsonw_obj(&w);
        jsonw_kstr(&w, "code", m->err_code);
        jsonw_kstr(&w, "message", m->err_msg);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    pthread_mutex_unlock(&g.mu);
    char *s = jsonw_finish(&w, NULL);
    if (s)
        mdl_put(m, STATE_FILE, s, strlen(s));
    free(s);
}

static void mdl_fail_locked(mdl *m, const char *code, const char *msg)
{
    m->state = ST_FAILED;
    snprintf(m->err_code, sizeof m->err_code, "%s", code);
    snprintf(m->err_msg, sizeof m->err_msg, "%s", msg);
    fs_store_unroot(m->err_msg);
}

/* ---- serving ------------------------------------------------------------ */

/* The served model with a reference (srv_put to drop), loading
 * model.safetensors on first use; NULL when there is none (why filled). */
static srv *srv_get(mdl *m, fs_recipe_err *why)
{
    pthread_mutex_lock(&g.mu);
    while (m->loading && !g.stopping)
        pthread_cond_wait(&g.cv, &g.mu);
    if (m->srv || !m->has_model || m->deleted) {
        srv *s = m->srv;
        if (s)
            s->refs++;
        else
            snprintf(why->msg, sizeof why->msg, "model \"%s\" has no trained model", m->name);
        snprintf(why->code, sizeof why->code, "modelNotFound");
        pthread_mutex_unlock(&g.mu);
        return s;
    }
    m->loading = 1;
    char path[MP];
    mdl_path_locked(m, "model.safetensors", path, sizeof path);
    pthread_mutex_unlock(&g.mu);

    char **dirs = NULL;
    int nb = fs_models_backbones_list(&dirs);
    fs_recipe_model *model = NULL;
    fs_recipe_status st = fs_recipe_load(path, (const char *const *)dirs, nb, &model, why);
    fs_models_backbones_free(dirs, nb);
    srv *s = st == FS_RECIPE_OK ? srv_new(model) : NULL;
    if (st == FS_RECIPE_OK && !s)
        snprintf(why->msg, sizeof why->msg, "out of memory");
    if (!s)
        fs_log("model \"%s\": cannot load model.safetensors: %s", m->name, why->msg);

    pthread_mutex_lock(&g.mu);
    m->loading = 0;
    if (s) {
        m->srv = s;
        s->refs++;
        if (!m->kind[0])
            snprintf(m->kind, sizeof m->kind, "%s", s->recipe->kind);
    }
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    return s;
}

static void srv_put(srv *s)
{
    srv *f = NULL;
    pthread_mutex_lock(&g.mu);
    srv_unref_locked(s, &f);
    pthread_mutex_unlock(&g.mu);
    srv_free(f);
}

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
    pthread_mutex_lock(&g.mu);
    int stop = g.stopping || tjob_stale_locked(j) || j->m->cancel;
    pthread_mutex_unlock(&g.mu);
    return stop;
}

static void tjob_progress(void *ctx, const fs_recipe_progress *p)
{
    tjob *j = ctx;
    pthread_mutex_lock(&g.mu);
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
    int due = mine && now_s() - j->m->last_publish >= 0.5;
    pthread_mutex_unlock(&g.mu);
    if (due)
        mdl_publish(j->m);
}

static void tjob_log(void *ctx, const char *line)
{
    tjob *j = ctx;
    pthread_mutex_lock(&g.mu);
    int stale = tjob_stale_locked(j);
    pthread_mutex_unlock(&g.mu);
    if (!stale)
        mdl_log(j->m, "%s", line);
}

static const char *ds_code(fs_models_ds_status st)
{
    return st == FS_MDS_NOTFOUND ? "datasetNotFound"
           : st == FS_MDS_ENOMEM ? "unknown"
                                 : "datasetCorrupt";
}

/* Checks a request against the datasets; fills code/msg and returns -1 when
 * it cannot train. Sets *recipe. */
static int request_check(const fs_trainreq *r, const fs_recipe **recipe, char *code, size_t cn,
                         char *msg, size_t mn)
{
    int det = 0;
    fs_models_ds_err e = {{0}};
    fs_models_ds_status st = fs_models_ds_check(r->dataset, &det, &e);
    if (st != FS_MDS_OK) {
        snprintf(code, cn, "%s", ds_code(st));
        snprintf(msg, mn, "%s", e.msg);
        return -1;
    }
    const char *kind =
        r->kind == FS_KIND_AUTO ? (det ? "detector" : "classifier") : fs_model_kind_name(r->kind);
    const fs_recipe *rc = fs_recipe_for_kind(kind);
    if (!rc) {
        snprintf(code, cn, "unknown");
        snprintf(msg, mn, "kind \"%s\": not available in this build", kind);
        return -1;
    }
    if (rc->wants_detection != det) {
        snprintf(code, cn, "incorrectModelKind");
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
            snprintf(code, cn, "%s", ds_code(st));
            snprintf(msg, mn, "test dataset: %s", e.msg);
            return -1;
        }
        if (tdet != det) {
            snprintf(code, cn, "incorrectModelKind");
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
        char path[MP];
        struct stat st;
        if (names[i][0] && fs_store_path(path, sizeof path, "datasets", names[i]) == 0 &&
            stat(path, &st) != 0)
            return names[i];
    }
    return NULL;
}

/* Writes the trained model and its evaluation into two new temp files
 * (names in tmpm, tmpe). 0; or -1 with code ("storeFull" when the disk is
 * full) and msg set and no temp file left. */
static int write_model_files(const fs_recipe_model *model, const char *eval, char *tmpm,
                             char *tmpe, char *code, size_t ncode, char *msg, size_t nmsg)
{
    tmpe[0] = '\0';
    int fd = fs_tmp_create(tmpm, MP);
    if (fd < 0) {
        snprintf(code, ncode, "%s", fs_disk_full(-fd) ? "storeFull" : "unknown");
        snprintf(msg, nmsg, "saving the model: %s", strerror(-fd));
        return -1;
    }
    close(fd);
    fs_recipe_err err = {{0}, {0}};
    if (fs_recipe_save(model, tmpm, &err) != FS_RECIPE_OK) {
        unlink(tmpm);
        snprintf(code, ncode, "%s", err.code[0] ? err.code : "unknown");
        snprintf(msg, nmsg, "saving the model: %s", err.msg);
        return -1;
    }
    size_t n = eval ? strlen(eval) : 0;
    char *text = malloc(n + 1);
    int rc = text ? 0 : -ENOMEM;
    if (text) {
        memcpy(text, eval ? eval : "", n);
        text[n] = '\n';
        rc = fs_tmp_write(tmpe, MP, text, n + 1);
        free(text);
    }
    if (rc) {
        unlink(tmpm);
        tmpe[0] = '\0';
        snprintf(code, ncode, "%s", fs_disk_full(-rc) ? "storeFull" : "unknown");
        snprintf(msg, nmsg, "saving evaluation.json: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

static void tjob_run(void *arg)
{
    tjob *j = arg;
    mdl *m = j->m;
    pthread_mutex_lock(&g.mu);
    if (tjob_stale_locked(j) || m->cancel || g.stopping) {
        pthread_mutex_unlock(&g.mu);
        return;
    }
    m->queued = 0;
    m->running = 1;
    m->state = ST_TRAINING;
    m->has_prog = 0;
    m->restarted_run = j->restarted;
    fs_trainreq req = m->req;
    int version = m->version;
    pthread_mutex_unlock(&g.mu);
    mdl_persist(m);
    mdl_publish(m);
    if (j->restarted)
        mdl_log(m, "restarted: the daemon stopped while version %d was training", version);
    mdl_log(m, "training version %d on dataset \"%s\"%s%s%s, kind %s, budget %.1f minutes of CPU",
            version, req.dataset, req.test_dataset[0] ? ", testing on \"" : "", req.test_dataset,
            req.test_dataset[0] ? "\"" : "", fs_model_kind_name(req.kind),
            req.budget_seconds / 60.0);

    char code[48] = "", msg[480] = "";
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
    if (request_check(&req, &r, code, sizeof code, msg, sizeof msg) == 0) {
        if ((ds = fs_models_ds_open(req.dataset, &tr, &trv, &de)) != FS_MDS_OK) {
            snprintf(code, sizeof code, "%s", ds_code(ds));
            snprintf(msg, sizeof msg, "%s", de.msg);
        } else if (req.test_dataset[0] &&
                   (ds = fs_models_ds_open(req.test_dataset, &te, &tev, &de)) != FS_MDS_OK) {
            snprintf(code, sizeof code, "%s", ds_code(ds));
            snprintf(msg, sizeof msg, "test dataset: %s", de.msg);
        } else if ((nb = fs_models_backbones_list(&dirs)) == 0) {
            snprintf(code, sizeof code, "unknown");
            snprintf(msg, sizeof msg,
                     "no backbone is installed (run scripts/fetch-backbones.sh, or cp -r one "
                     "into backbones/)");
        } else {
            char cdir[MP];
            cache_dir(cdir, sizeof cdir);
            fs_recipe_train_in in = {
                .train = trv,
                .test = tev,
                .budget_seconds = req.budget_seconds,
                .threads = ncpu(),
                .seed = 0,
                .cache_dir = cdir,
                .backbone_dirs = (const char *const *)dirs,
                .nbackbones = nb,
                .hooks = {.ctx = j,
                          .abort = tjob_abort,
                          .progress = tjob_progress,
                          .log = tjob_log},
            };
            fs_recipe_err err = {{0}, {0}};
            st = fs_recipe_train(r, &in, &model, &eval, &err);
            snprintf(code, sizeof code, "%s", err.code[0] ? err.code : "unknown");
            snprintf(msg, sizeof msg, "%s", err.msg);
            const char *gone = st == FS_RECIPE_EFAIL ? vanished(&req) : NULL;
            if (gone) {
                snprintf(code, sizeof code, "datasetNotFound");
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

    pthread_mutex_lock(&g.mu);
    int stale = tjob_stale_locked(j), cancelled = m->cancel, stopping = g.stopping;
    m->running = 0;
    pthread_mutex_unlock(&g.mu);

    if (st == FS_RECIPE_OK && !stale && !cancelled && !stopping) {
        char tmpm[MP], tmpe[MP] = "";
        int ok =
            write_model_files(model, eval, tmpm, tmpe, code, sizeof code, msg, sizeof msg) == 0;
        if (!ok && strcmp(code, "storeFull") == 0) {
            /* the feature cache yields to model files: it only saves time */
            char cdir[MP];
            cache_dir(cdir, sizeof cdir);
            fs_remove_tree(cdir);
            mdl_log(m, "the store's disk is full: removed the feature cache to make room");
            ok = write_model_files(model, eval, tmpm, tmpe, code, sizeof code, msg,
                                   sizeof msg) == 0;
        }
        if (!ok && strcmp(code, "storeFull") == 0) {
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
            pthread_mutex_lock(&g.mu);
            char pm[MP], pe[MP];
            int rc = tjob_stale_locked(j) ? -ESTALE : 0;
            if (rc == 0)
                rc = mdl_path_locked(m, "model.safetensors", pm, sizeof pm);
            if (rc == 0)
                rc = mdl_path_locked(m, "evaluation.json", pe, sizeof pe);
            if (rc == 0 && (rename(tmpm, pm) != 0 || rename(tmpe, pe) != 0))
                rc = -errno;
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
            pthread_mutex_unlock(&g.mu);
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
            pthread_mutex_lock(&g.mu);
            if (!tjob_stale_locked(j))
                mdl_fail_locked(m, code[0] ? code : "unknown",
                                msg[0] ? msg : "cannot write the model files");
            pthread_mutex_unlock(&g.mu);
            mdl_persist(m);
            mdl_publish(m);
            mdl_log(m, "failed: %s: %s", code[0] ? code : "unknown", msg);
        }
    } else if (stale) {
        /* superseded by a newer train.json, or the model was deleted */
    } else if (st == FS_RECIPE_EABORTED || st == FS_RECIPE_OK) {
        if (cancelled) {
            pthread_mutex_lock(&g.mu);
            m->state = ST_CANCELLED;
            m->cancel = 0;
            pthread_mutex_unlock(&g.mu);
            mdl_persist(m);
            mdl_publish(m);
            mdl_log(m, "cancelled");
        } else if (stopping) {
            mdl_log(m, "stopped by unmount: training restarts at the next mount");
        }
    } else {
        pthread_mutex_lock(&g.mu);
        mdl_fail_locked(m, code, msg[0] ? msg : "training failed");
        pthread_mutex_unlock(&g.mu);
        mdl_persist(m);
        mdl_publish(m);
        mdl_log(m, "failed: %s: %s", code, msg);
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

/* Queues a training run of the current generation (g.mu not held). */
static void train_queue(mdl *m, int restarted)
{
    tjob *j = calloc(1, sizeof *j);
    if (!j)
        return;
    pthread_mutex_lock(&g.mu);
    j->m = m;
    j->gen = m->gen;
    j->restarted = restarted;
    m->refs++;
    m->queued = 1;
    fs_jobq *q = g.trainq;
    pthread_mutex_unlock(&g.mu);
    if (!q || fs_jobq_push(q, m->id, tjob_run, tjob_drop, j) != FS_JOBQ_OK)
        tjob_drop(j); /* start() queues it from the persisted state */
}

/* ---- prediction --------------------------------------------------------- */

typedef struct pjob {
    mdl *m;
    pend *p;
} pjob;

/* predict/IMAGE.json: the shape Image Analysis 4.0's analyze call returned
 * (SPEC section 5, AZURE-API.md 1.5): modelVersion, metadata, and
 * customModelResult.tagsResult.values for classifiers or
 * objectsResult.values for detectors. Confidences have 6 decimals (the list
 * is already sorted on the exact values, so the order is the engine's).
 * version 0 is an imported model. The HTTP analyze call answers the same. */
static char *prediction_json(const char *model, int version, int detector,
                             const fs_recipe_prediction *p)
{
    char mv[FS_TRQ_NAME_MAX + 32];
    if (version > 0)
        snprintf(mv, sizeof mv, "%s/v%d", model, version);
    else
        snprintf(mv, sizeof mv, "%s/imported", model);
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_kstr(&w, "modelVersion", mv);
    jsonw_key(&w, "metadata");
    jsonw_obj(&w);
    jsonw_kint(&w, "width", p->width);
    jsonw_kint(&w, "height", p->height);
    jsonw_end(&w);
    jsonw_key(&w, "customModelResult");
    jsonw_obj(&w);
    jsonw_key(&w, detector ? "objectsResult" : "tagsResult");
    jsonw_obj(&w);
    jsonw_key(&w, "values");
    jsonw_arr(&w);
    for (int i = 0; !detector && i < p->nclasses; i++) {
        jsonw_obj(&w);
        jsonw_kstr(&w, "name", p->classes[i].label);
        jsonw_key(&w, "confidence");
        jsonw_numr(&w, p->classes[i].confidence, 6);
        jsonw_end(&w);
    }
    for (int i = 0; detector && i < p->nobjects; i++) {
        const fs_recipe_object *x = &p->objects[i];
        char id[16];
        snprintf(id, sizeof id, "%d", i + 1);
        jsonw_obj(&w);
        jsonw_kstr(&w, "id", id);
        jsonw_key(&w, "boundingBox");
        jsonw_obj(&w);
        jsonw_kint(&w, "x", (int)(x->x + 0.5f));
        jsonw_kint(&w, "y", (int)(x->y + 0.5f));
        int bw = (int)(x->w + 0.5f), bh = (int)(x->h + 0.5f);
        jsonw_kint(&w, "w", bw < 1 ? 1 : bw);
        jsonw_kint(&w, "h", bh < 1 ? 1 : bh);
        jsonw_end(&w);
        jsonw_key(&w, "tags");
        jsonw_arr(&w);
        jsonw_obj(&w);
        jsonw_kstr(&w, "name", x->label);
        jsonw_key(&w, "confidence");
        jsonw_numr(&w, x->confidence, 6);
        jsonw_end(&w);
        jsonw_end(&w);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_end(&w);
    jsonw_end(&w);
    jsonw_end(&w);
    return jsonw_finish(&w, NULL);
}

/* Azure's error shape, for an image that cannot be used. */
static char *error_json(const char *code, const char *msg)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_key(&w, "error");
    jsonw_obj(&w);
    jsonw_kstr(&w, "code", code);
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
    char pre[2][MP];
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
    pthread_cond_broadcast(&g.cv);
}

static void pjob_run(void *arg)
{
    pjob *j = arg;
    mdl *m = j->m;
    fs_recipe_err err = {{0}, {0}};
    char *json = NULL, img[MP];
    fs_recipe_prediction pred;
    memset(&pred, 0, sizeof pred);
    srv *s = srv_get(m, &err);
    pthread_mutex_lock(&g.mu);
    int gone = m->deleted || g.stopping || mdl_path_locked(m, j->p->rel, img, sizeof img);
    char name[FS_TRQ_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", m->name);
    int version = m->imported ? 0 : m->served_version;
    pthread_mutex_unlock(&g.mu);
    if (gone) {
        if (s)
            srv_put(s);
        return;
    }
    if (!s) {
        json = error_json("modelNotFound", err.msg);
    } else {
        memset(&err, 0, sizeof err);
        if (fs_recipe_predict(s->model, img, &pred, &err) == FS_RECIPE_OK)
            json = prediction_json(name, version, s->recipe->wants_detection, &pred);
        else {
            models_user_message(err.msg, sizeof err.msg, name);
            json = error_json(err.code[0] ? err.code : "InvalidImage", err.msg);
        }
    }
    struct stat st;
    if (json && stat(img, &st) == 0) {
        char out[MP];
        snprintf(out, sizeof out, "%s.json", j->p->rel);
        if (pred.boxes_jpg) {
            snprintf(out, sizeof out, "%s.boxes.jpg", j->p->rel);
            mdl_put(m, out, pred.boxes_jpg, pred.boxes_jpg_len);
            snprintf(out, sizeof out, "%s.json", j->p->rel);
        }
        int rc = mdl_put(m, out, json, strlen(json));
        if (fs_disk_full(-rc)) {
            /* the reader must learn why rather than find an empty file */
            fs_store_release_reserve();
            char *e = error_json("StoreFull", "the store's disk is full, so the result could "
                                              "not be written: free space there and copy the "
                                              "image again");
            if (e)
                mdl_put(m, out, e, strlen(e));
            free(e);
        }
    }
    free(json);
    fs_recipe_prediction_release(&pred);
    if (s)
        srv_put(s);
}

static void pjob_drop(void *arg)
{
    pjob *j = arg;
    pthread_mutex_lock(&g.mu);
    pend_remove_locked(j->m, j->p);
    pthread_mutex_unlock(&g.mu);
    mdl_unref(j->m);
    free(j);
}

/* Queues the prediction of image `sub` ("predict/...") and puts an empty
 * IMAGE.json in place at once, so ls shows it as soon as cp returns. */
static void predict_queue(mdl *m, const char *sub)
{
    pjob *j = calloc(1, sizeof *j);
    pend *p = calloc(1, sizeof *p);
    if (!j || !p) {
        free(j);
        free(p);
        return;
    }
    snprintf(p->rel, sizeof p->rel, "%s", sub);
    char out[MP];
    snprintf(out, sizeof out, "%s.json", sub);
    pthread_mutex_lock(&g.mu);
    p->next = m->pending;
    m->pending = p;
    m->refs++;
    j->m = m;
    j->p = p;
    fs_jobq *q = g.predq;
    pthread_mutex_unlock(&g.mu);
    mdl_put(m, out, "", 0);
    if (!q || fs_jobq_push(q, m->id, pjob_run, pjob_drop, j) != FS_JOBQ_OK)
        pjob_drop(j);
}

/* ---- evaluations ---------------------------------------------------------- */

typedef struct ejob {
    mdl *m;
    evl *e;
} ejob;

static int ejob_abort(void *ctx)
{
    ejob *j = ctx;
    pthread_mutex_lock(&g.mu);
    int stop = g.stopping || j->m->deleted || j->e->cancel;
    pthread_mutex_unlock(&g.mu);
    return stop;
}

static void ejob_write(ejob *j, const char *file, const char *text)
{
    char sub[MP];
    snprintf(sub, sizeof sub, "evaluations/%s/%s", j->e->ds, file);
    pthread_mutex_lock(&g.mu);
    int cancel = j->e->cancel;
    pthread_mutex_unlock(&g.mu);
    if (!cancel)
        mdl_put(j->m, sub, text, strlen(text));
}

static void ejob_status(ejob *j, const char *code, const char *msg)
{
    char line[1024];
    if (code)
        snprintf(line, sizeof line, "failed: %s: %s\n", code, msg);
    else
        snprintf(line, sizeof line, "%s\n", msg);
    ejob_write(j, "status", line);
}

static void ejob_run(void *arg)
{
    ejob *j = arg;
    mdl *m = j->m;
    if (ejob_abort(j))
        return;
    fs_recipe_err err = {{0}, {0}};
    srv *s = srv_get(m, &err);
    if (!s) {
        ejob_status(j, "modelNotFound", err.msg);
        return;
    }
    fs_models_ds *ds = NULL;
    const fs_recipe_dataset *view = NULL;
    fs_models_ds_err de = {{0}};
    fs_models_ds_status dst = fs_models_ds_open(j->e->ds, &ds, &view, &de);
    if (dst != FS_MDS_OK) {
        const char *code = dst == FS_MDS_NOTFOUND ? "datasetNotFound"
                           : dst == FS_MDS_EMPTY  ? "datasetEmpty"
                           : dst == FS_MDS_ENOMEM ? "unknown"
                                                  : "datasetAnnotationsInvalid";
        ejob_status(j, code, de.msg);
    } else if (view->nimages == 0) {
        ejob_status(j, "datasetEmpty", "the dataset has no images");
    } else if (view->detection != s->recipe->wants_detection) {
        char msg[400];
        snprintf(msg, sizeof msg, "model \"%s\" is a %s; dataset \"%s\" is a %s dataset", m->name,
                 s->recipe->kind, j->e->ds, view->detection ? "detection" : "classification");
        ejob_status(j, "incorrectModelKind", msg);
    } else {
        ejob_status(j, NULL, "running");
        char *metrics = NULL, *preds = NULL;
        fs_recipe_hooks hooks = {.ctx = j, .abort = ejob_abort};
        fs_recipe_status st =
            fs_recipe_evaluate(s->model, view, ncpu(), &hooks, &metrics, &preds, &err);
        if (st == FS_RECIPE_OK) {
            ejob_write(j, "metrics.json", metrics);
            ejob_write(j, "predictions.json", preds);
            ejob_status(j, NULL, "succeeded");
        } else if (st == FS_RECIPE_EFAIL) {
            ejob_status(j, err.code[0] ? err.code : "unknown", err.msg);
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
    pthread_mutex_lock(&g.mu);
    for (evl **pp = &j->m->evals; *pp; pp = &(*pp)->next) {
        if (*pp == j->e) {
            *pp = j->e->next;
            break;
        }
    }
    pthread_mutex_unlock(&g.mu);
    free(j->e);
    mdl_unref(j->m);
    free(j);
}

static void eval_queue(mdl *m, const char *ds)
{
    ejob *j = calloc(1, sizeof *j);
    evl *e = calloc(1, sizeof *e);
    if (!j || !e) {
        free(j);
        free(e);
        return;
    }
    snprintf(e->ds, sizeof e->ds, "%s", ds);
    pthread_mutex_lock(&g.mu);
    for (evl *o = m->evals; o; o = o->next)
        if (strcmp(o->ds, ds) == 0)
            o->cancel = 1;
    e->next = m->evals;
    m->evals = e;
    m->refs++;
    j->m = m;
    j->e = e;
    fs_jobq *q = g.evalq;
    pthread_mutex_unlock(&g.mu);
    char sub[MP];
    snprintf(sub, sizeof sub, "evaluations/%s/status", ds);
    mdl_put(m, sub, "notStarted\n", 11);
    if (!q || fs_jobq_push(q, m->id, ejob_run, ejob_drop, j) != FS_JOBQ_OK)
        ejob_drop(j);
}

static void eval_cancel(mdl *m, const char *ds)
{
    pthread_mutex_lock(&g.mu);
    for (evl *o = m->evals; o; o = o->next)
        if (!ds || strcmp(o->ds, ds) == 0)
            o->cancel = 1;
    pthread_mutex_unlock(&g.mu);
}

/* ---- hooks ---------------------------------------------------------------- */

static int models_mkdir_item(const char *name)
{
    char path[MP];
    int rc = fs_store_path(path, sizeof path, "models", name);
    if (rc)
        return rc;
    pthread_mutex_lock(&g.mu);
    mdl *old = mdl_find_locked(name);
    pthread_mutex_unlock(&g.mu);
    if (old)
        return -EEXIST;
    if (mkdir(path, 0755) != 0)
        return -errno;
    mdl *m = mdl_get(name);
    if (!m)
        return -EIO;
    mdl_persist(m);
    mdl_publish(m);
    mdl_log(m,
            "model \"%s\" created: write train.json to train it, or cp a model.safetensors "
            "here to import one",
            name);
    mdl_unref(m);
    return 0;
}

/* Whether a store folder holds anything but generated files (recursively). */
static int has_user_files(const char *dir, int predict)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    char sub[MP];
    while (!found && (e = readdir(d))) {
        const char *n = e->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strncmp(n, ".vfs", 4) == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, n);
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            found = has_user_files(sub, predict);
        else if (!predict || !is_predict_output(n))
            found = 1;
    }
    closedir(d);
    return found;
}

/* Removes generated prediction files below dir (recursively), and the
 * sub-folders left empty. */
static void clear_outputs(const char *dir, int remove_self)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char sub[MP];
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, n);
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            clear_outputs(sub, 1);
        else if (is_predict_output(n))
            unlink(sub);
    }
    closedir(d);
    if (remove_self)
        rmdir(dir);
}

static int models_rmdir_item(const char *name)
{
    mdl *m = mdl_get(name);
    char path[MP], sub[MP];
    int rc = fs_store_path(path, sizeof path, "models", name);
    if (rc) {
        if (m)
            mdl_unref(m);
        return rc;
    }
    struct stat st;
    snprintf(sub, sizeof sub, "%s/train.json", path);
    if (lstat(sub, &st) == 0)
        rc = -ENOTEMPTY;
    snprintf(sub, sizeof sub, "%s/predict", path);
    if (!rc && has_user_files(sub, 1))
        rc = -ENOTEMPTY;
    DIR *d = rc ? NULL : opendir(path);
    struct dirent *e;
    while (d && !rc && (e = readdir(d))) {
        const char *n = e->d_name;
        static const char *const gen[] = {"status",           "status.json", "log",
                                          "evaluation.json",  "predict",     "evaluations",
                                          "model.safetensors"};
        int known = strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strncmp(n, ".vfs", 4) == 0;
        for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++)
            known |= strcmp(n, gen[i]) == 0;
        if (!known)
            rc = -ENOTEMPTY;
    }
    if (d)
        closedir(d);
    if (rc) {
        if (m)
            mdl_unref(m);
        return rc;
    }
    if (m) {
        pthread_mutex_lock(&g.mu);
        m->deleted = 1;
        m->gen++;
        for (evl *o = m->evals; o; o = o->next)
            o->cancel = 1;
        for (mdl **pp = &g.models; *pp; pp = &(*pp)->next) {
            if (*pp == m) {
                *pp = m->next;
                m->refs--; /* the list's reference */
                break;
            }
        }
        fs_jobq *qs[3] = {g.trainq, g.predq, g.evalq};
        pthread_cond_broadcast(&g.cv);
        pthread_mutex_unlock(&g.mu);
        for (int i = 0; i < 3; i++)
            if (qs[i])
                fs_jobq_cancel_key(qs[i], m->id);
        mdl_unref(m);
    }
    return fs_discard_tree(path);
}

static int models_rename_item(const char *from, const char *to)
{
    char a[MP], b[MP];
    if (fs_store_path(a, sizeof a, "models", from) || fs_store_path(b, sizeof b, "models", to))
        return -ENAMETOOLONG;
    mdl *m = mdl_get(from);
    pthread_mutex_lock(&g.mu);
    int rc = mdl_find_locked(to) ? -EEXIST : 0;
    if (rc == 0 && rename(a, b) != 0)
        rc = -errno;
    if (rc == 0 && m)
        snprintf(m->name, sizeof m->name, "%s", to);
    pthread_mutex_unlock(&g.mu);
    if (m)
        mdl_unref(m);
    return rc;
}

static int models_mkdir_sub(const char *rel)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return -ENOENT;
    char path[MP];
    int rc = fs_store_path(path, sizeof path, "models", rel);
    if (rc == 0 && mkdir(path, 0755) != 0)
        rc = -errno;
    if (rc == 0 && strncmp(sub, "evaluations/", 12) == 0 && !strchr(sub + 12, '/')) {
        const char *ds = sub + 12;
        if (!fs_trainreq_name_ok(ds)) {
            rmdir(path);
            rc = -EINVAL;
        } else {
            mdl_log(m, "evaluation on dataset \"%s\" requested", ds);
            eval_queue(m, ds);
        }
    }
    mdl_unref(m);
    return rc;
}

static int models_rmdir_sub(const char *rel)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return -ENOENT;
    char path[MP];
    int rc = fs_store_path(path, sizeof path, "models", rel);
    if (rc == 0) {
        if (strcmp(sub, "evaluations") == 0) {
            /* rm -r evaluations: drop every evaluation, keep the folder */
            eval_cancel(m, NULL);
            DIR *d = opendir(path);
            struct dirent *e;
            char p2[MP];
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                snprintf(p2, sizeof p2, "%s/%s", path, e->d_name);
                fs_discard_tree(p2);
            }
            if (d)
                closedir(d);
        } else if (strncmp(sub, "evaluations/", 12) == 0 && !strchr(sub + 12, '/')) {
            eval_cancel(m, sub + 12);
            rc = fs_discard_tree(path);
        } else if (strcmp(sub, "predict") == 0 || strncmp(sub, "predict/", 8) == 0) {
            if (has_user_files(path, 1))
                rc = -ENOTEMPTY;
            else
                clear_outputs(path, strcmp(sub, "predict") != 0);
        } else if (rmdir(path) != 0) {
            rc = -errno;
        }
    }
    mdl_unref(m);
    return rc;
}

static int models_is_readonly(const char *rel)
{
    char name[FS_TRQ_NAME_MAX + 1];
    const char *sub;
    if (split_rel(rel, name, &sub) || !*sub)
        return 0;
    if (strcmp(sub, "status") == 0 || strcmp(sub, "status.json") == 0 || strcmp(sub, "log") == 0 ||
        strcmp(sub, "evaluation.json") == 0)
        return 1;
    if (strcmp(sub, "model.safetensors") == 0) {
        mdl *m = mdl_get(name);
        if (!m)
            return 1;
        pthread_mutex_lock(&g.mu);
        int ro = m->has_model || m->has_req || m->running || m->queued;
        pthread_mutex_unlock(&g.mu);
        mdl_unref(m);
        return ro;
    }
    if (strncmp(sub, "predict/", 8) == 0) {
        if (!is_predict_output(sub))
            return 0;
        /* the result of an image that was removed: the user may delete it
         * (rm -r and rm of a glob meet results after their images) */
        char img[MP], path[MP];
        snprintf(img, sizeof img, "%s", rel);
        img[strlen(img) - (ends_with(img, ".json") ? 5 : 10)] = '\0';
        struct stat st;
        return fs_store_path(path, sizeof path, "models", img) != 0 || lstat(path, &st) == 0;
    }
    if (strncmp(sub, "evaluations/", 12) == 0)
        return strchr(sub + 12, '/') != NULL; /* files in evaluations/DS/ */
    return 0;
}

/* Names predict/ cannot take: a result's name (X.json, X.boxes.jpg), which
 * would never be predicted and would be overwritten by the result of X; and
 * a name whose results would not fit in a file name. */
static int models_check_create(const char *rel)
{
    char name[FS_TRQ_NAME_MAX + 1];
    const char *sub;
    if (split_rel(rel, name, &sub) || strncmp(sub, "predict/", 8) != 0)
        return 0;
    const char *img = sub + 8;
    if (strchr(img, '/'))
        return 0;
    if (strlen(img) + strlen(".boxes.jpg") > 255)
        return -ENAMETOOLONG;
    if (is_predict_output(img)) {
        mdl *m = mdl_get(name);
        if (m) {
            mdl_log(m,
                    "predict/%.200s refused: names ending in .json or .boxes.jpg are "
                    "results (rename the image)",
                    img);
            mdl_unref(m);
        }
        return -EINVAL;
    }
    return 0;
}

static int models_is_visible(const char *rel)
{
    char name[FS_TRQ_NAME_MAX + 1];
    const char *sub;
    if (split_rel(rel, name, &sub) || !*sub)
        return 1;
    if (strncmp(sub, "predict", 7) == 0 && (sub[7] == '\0' || sub[7] == '/')) {
    } else if (strncmp(sub, "evaluations", 11) == 0 && (sub[11] == '\0' || sub[11] == '/')) {
    } else {
        return 1;
    }
    mdl *m = mdl_get(name);
    if (!m)
        return 1;
    pthread_mutex_lock(&g.mu);
    int vis = m->has_model;
    pthread_mutex_unlock(&g.mu);
    mdl_unref(m);
    return vis;
}

static int64_t models_max_size(const char *rel)
{
    return ends_with(rel, "/model.safetensors") ? (int64_t)1 << 30 : 0;
}

/* Reads the committed or temp train.json and checks it fully. Returns 0 or
 * -1 with code and msg. */
static int train_json_check(const char *path, fs_trainreq *r, const fs_recipe **recipe, char *code,
                            size_t cn, char *msg, size_t mn)
{
    size_t len = 0;
    char *text = read_small(path, 1 << 16, &len);
    if (!text) {
        snprintf(code, cn, "invalidRequest");
        snprintf(msg, mn, "train.json: cannot be read, or larger than 64 KB");
        return -1;
    }
    fs_trainreq_diag d = {{0}};
    fs_trainreq_status st = fs_trainreq_parse(text, len, r, &d);
    free(text);
    if (st != FS_TRQ_OK) {
        snprintf(code, cn, "invalidRequest");
        snprintf(msg, mn, "%s", d.msg);
        return -1;
    }
    return request_check(r, recipe, code, cn, msg, mn);
}

/* Reports a refused train.json or model file: in status when the model is
 * idle, in status.json and the log when a run is going on. */
static void report_refused(mdl *m, const char *what, const char *code, const char *msg)
{
    pthread_mutex_lock(&g.mu);
    int busy = m->running || m->queued;
    if (busy)
        snprintf(m->refused, sizeof m->refused, "%s: %s: %s", what, code, msg);
    else
        mdl_fail_locked(m, code, msg);
    pthread_mutex_unlock(&g.mu);
    if (!busy)
        mdl_persist(m);
    mdl_publish(m);
    mdl_log(m, "%s refused: %s: %s", what, code, msg);
}

static int models_validate_write(const char *rel, const char *tmp_path, char *why, size_t why_len)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return 0;
    int rc = 0;
    char code[48], msg[480];
    if (strncmp(sub, "evaluations/", 12) == 0 && !strchr(sub + 12, '/')) {
        snprintf(why, why_len, "evaluations/ holds folders: mkdir evaluations/DATASET to evaluate");
        rc = -EACCES;
    } else if (strcmp(sub, "train.json") == 0) {
        fs_trainreq r;
        const fs_recipe *rec = NULL;
        if (train_json_check(tmp_path, &r, &rec, code, sizeof code, msg, sizeof msg)) {
            snprintf(why, why_len, "%s: %s", code, msg);
            report_refused(m, "train.json", code, msg);
            rc = -EINVAL;
        }
    } else if (strcmp(sub, "model.safetensors") == 0) {
        char **dirs = NULL;
        int nb = fs_models_backbones_list(&dirs);
        fs_recipe_model *model = NULL;
        fs_recipe_err err = {{0}, {0}};
        fs_recipe_status st =
            fs_recipe_load(tmp_path, (const char *const *)dirs, nb, &model, &err);
        fs_models_backbones_free(dirs, nb);
        srv *s = st == FS_RECIPE_OK ? srv_new(model) : NULL;
        if (!s) {
            snprintf(code, sizeof code, "%s", err.code[0] ? err.code : "invalidModel");
            snprintf(why, why_len, "%s: %s", code, err.msg);
            report_refused(m, "model.safetensors", code, err.msg);
            rc = -EINVAL;
        } else {
            srv *old = NULL;
            pthread_mutex_lock(&g.mu);
            srv_unref_locked(m->import_pending, &old);
            m->import_pending = s;
            pthread_mutex_unlock(&g.mu);
            srv_free(old);
        }
    }
    mdl_unref(m);
    return rc;
}

static void models_committed(const char *rel)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return;
    if (strcmp(sub, "train.json") == 0) {
        char path[MP], code[48], msg[480];
        fs_trainreq r;
        const fs_recipe *rec = NULL;
        fs_store_path(path, sizeof path, "models", rel);
        if (train_json_check(path, &r, &rec, code, sizeof code, msg, sizeof msg)) {
            report_refused(m, "train.json", code, msg); /* arrived by a path without validation */
        } else {
            pthread_mutex_lock(&g.mu);
            m->req = r;
            m->has_req = 1;
            m->gen++; /* a run in progress becomes stale and stops */
            m->cancel = 0;
            m->version++;
            m->state = ST_NOT_STARTED;
            m->refused[0] = '\0';
            m->has_prog = 0;
            snprintf(m->kind, sizeof m->kind, "%s", rec->kind);
            int version = m->version, had = m->has_model;
            pthread_mutex_unlock(&g.mu);
            mdl_persist(m);
            mdl_publish(m);
            mdl_log(m, "train.json accepted: version %d queued%s", version,
                    had ? " (the current model keeps serving until it succeeds)" : "");
            train_queue(m, 0);
        }
    } else if (strcmp(sub, "model.safetensors") == 0) {
        srv *old = NULL;
        pthread_mutex_lock(&g.mu);
        srv *s = m->import_pending;
        m->import_pending = NULL;
        if (s) {
            srv_unref_locked(m->srv, &old);
            m->srv = s;
            m->has_model = 1;
            m->imported = 1;
            m->served_version = 0;
            m->state = ST_SUCCEEDED;
            snprintf(m->kind, sizeof m->kind, "%s", s->recipe->kind);
        }
        pthread_mutex_unlock(&g.mu);
        srv_free(old);
        if (s) {
            mdl_mkdir(m, "predict");
            mdl_mkdir(m, "evaluations");
            mdl_persist(m);
            mdl_publish(m);
            mdl_log(m, "imported model.safetensors (%s, %s)", s->recipe->kind, s->about);
        }
    } else if (strncmp(sub, "predict/", 8) == 0 && !is_predict_output(sub)) {
        predict_queue(m, sub);
    }
    mdl_unref(m);
}

static void models_unlinked(const char *rel)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return;
    if (strcmp(sub, "train.json") == 0) {
        pthread_mutex_lock(&g.mu);
        int running = m->running, queued = m->queued;
        m->has_req = 0;
        if (running) {
            m->cancel = 1; /* the run stops at its next abort poll: then cancelled */
            m->state = ST_CANCELLING;
        } else if (queued) {
            m->gen++; /* the queued run becomes stale */
            m->queued = 0;
            m->state = ST_CANCELLED;
        }
        pthread_mutex_unlock(&g.mu);
        mdl_persist(m);
        mdl_publish(m);
        if (running || queued)
            mdl_log(m, "train.json removed: cancelling");
    }
    /* the results of a removed image stay until deleted (see is_readonly) */
    mdl_unref(m);
}

static int models_open_read(const char *rel)
{
    const char *sub;
    char name[FS_TRQ_NAME_MAX + 1];
    if (split_rel(rel, name, &sub) || strncmp(sub, "predict/", 8) != 0 || !is_predict_output(sub))
        return 0;
    char img[MP];
    snprintf(img, sizeof img, "%s", sub);
    if (ends_with(img, ".json"))
        img[strlen(img) - 5] = '\0';
    else
        img[strlen(img) - 10] = '\0';
    mdl *m = mdl_get(name);
    if (!m)
        return 0;
    pthread_mutex_lock(&g.mu);
    for (;;) {
        int waiting = 0;
        for (pend *p = m->pending; p; p = p->next)
            waiting |= strcmp(p->rel, img) == 0;
        if (!waiting || g.stopping || m->deleted)
            break;
        pthread_cond_wait(&g.cv, &g.mu);
    }
    pthread_mutex_unlock(&g.mu);
    mdl_unref(m);
    return 0;
}

/* Queues predictions whose result is missing or empty (after a restart). */
static void rescan_predict(mdl *m, const char *dir, const char *sub)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[MP], s[MP];
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (n[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, n);
        snprintf(s, sizeof s, "%s/%s", sub, n);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rescan_predict(m, p, s);
        } else if (!is_predict_output(n)) {
            char out[MP + 8];
            snprintf(out, sizeof out, "%s.json", p);
            if (stat(out, &st) != 0 || st.st_size == 0)
                predict_queue(m, s);
        }
    }
    closedir(d);
}

/* After a mount: requeue what was interrupted. */
static void resume_model(mdl *m)
{
    pthread_mutex_lock(&g.mu);
    mdl_state s = m->state;
    int has_req = m->has_req;
    if (s == ST_TRAINING) {
        m->restarts++;
        m->restarted_run = 1;
    }
    if (s == ST_CANCELLING)
        m->state = ST_CANCELLED;
    if (s == ST_TRAINING && !has_req) {
        mdl_fail_locked(m, "unknown",
                        "the run interrupted by the daemon's stop cannot be restarted: its request "
                        "is unreadable; write train.json again");
        s = ST_CANCELLING; /* persist and publish below */
    }
    pthread_mutex_unlock(&g.mu);
    if ((s == ST_TRAINING || s == ST_NOT_STARTED) && has_req) {
        if (s == ST_TRAINING) {
            mdl_persist(m);
            mdl_log(m, "the daemon stopped during training: restarting it");
        }
        train_queue(m, s == ST_TRAINING);
        mdl_publish(m);
    } else if (s == ST_CANCELLING) {
        mdl_persist(m);
        mdl_publish(m);
    }
    char dir[MP];
    pthread_mutex_lock(&g.mu);
    int has_model = m->has_model;
    mdl_path_locked(m, "predict", dir, sizeof dir);
    pthread_mutex_unlock(&g.mu);
    if (!has_model)
        return;
    rescan_predict(m, dir, "predict");
    pthread_mutex_lock(&g.mu);
    mdl_path_locked(m, "evaluations", dir, sizeof dir);
    pthread_mutex_unlock(&g.mu);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || e->d_type == DT_REG)
            continue;
        char st[MP];
        snprintf(st, sizeof st, "%s/%s/status", dir, e->d_name);
        char *text = read_small(st, 4096, NULL);
        int done = text && (strncmp(text, "succeeded", 9) == 0 || strncmp(text, "failed", 6) == 0);
        free(text);
        if (!done)
            eval_queue(m, e->d_name);
    }
    if (d)
        closedir(d);
}

static void models_start(void)
{
    pthread_mutex_lock(&g.mu);
    if (g.started) {
        pthread_mutex_unlock(&g.mu);
        return;
    }
    g.stopping = 0;
    g.trainq = fs_jobq_new("train", 1);
    g.predq = fs_jobq_new("predict", ncpu());
    g.evalq = fs_jobq_new("eval", 1);
    g.started = 1;
    pthread_mutex_unlock(&g.mu);
    if (g.trainq)
        fs_jobq_start(g.trainq);
    if (g.predq)
        fs_jobq_start(g.predq);
    if (g.evalq)
        fs_jobq_start(g.evalq);
    char root[MP];
    fs_store_path(root, sizeof root, "models", NULL);
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!fs_trainreq_name_ok(e->d_name))
            continue;
        mdl *m = mdl_get(e->d_name);
        if (!m)
            continue;
        resume_model(m);
        mdl_unref(m);
    }
    if (d)
        closedir(d);
}

static void models_stop(void)
{
    pthread_mutex_lock(&g.mu);
    if (!g.started) {
        pthread_mutex_unlock(&g.mu);
        return;
    }
    g.stopping = 1;
    pthread_cond_broadcast(&g.cv);
    fs_jobq *qs[3] = {g.trainq, g.predq, g.evalq};
    g.trainq = g.predq = g.evalq = NULL;
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < 3; i++)
        fs_jobq_free(qs[i]);
    /* drop the records: the next start reads the store again */
    pthread_mutex_lock(&g.mu);
    mdl *list = g.models;
    g.models = NULL;
    g.started = 0;
    pthread_mutex_unlock(&g.mu);
    while (list) {
        mdl *n = list->next;
        mdl_unref(list);
        list = n;
    }
}

const fs_area fs_area_models = {
    .name = "models",
    .mkdir_item = models_mkdir_item,
    .rmdir_item = models_rmdir_item,
    .rename_item = models_rename_item,
    .mkdir_sub = models_mkdir_sub,
    .rmdir_sub = models_rmdir_sub,
    .is_readonly = models_is_readonly,
    .is_visible = models_is_visible,
    .validate_write = models_validate_write,
    .committed = models_committed,
    .unlinked = models_unlinked,
    .open_read = models_open_read,
    .max_size = models_max_size,
    .start = models_start,
    .stop = models_stop,
    .check_create = models_check_create,
};
