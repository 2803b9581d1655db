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
 * The area is split in five files; models_int.h lists them. Lock order:
 * m->pub_mu, then g_models.mu; the job queues' locks are leaves.
 */
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

/* The lifecycle states as status shows them, by mdl_state. */
static const char *const state_names[] = {"notStarted", "training",   "succeeded",
                                          "failed",     "cancelling", "cancelled"};

models_globals g_models = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .next_id = 1};

/* Splits "NAME/sub" into name (copied) and sub (borrowed; "" when none). */
int mdl_split_rel(const char *rel, char *name, const char **sub)
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

size_t mdl_result_suffix(const char *sub)
{
    if (fs_ends_with(sub, MDL_RESULT_SUFFIX))
        return strlen(MDL_RESULT_SUFFIX);
    return fs_ends_with(sub, MDL_BOXES_SUFFIX) ? strlen(MDL_BOXES_SUFFIX) : 0;
}

const mdl_file mdl_files[] = {
    {"status", 1},
    {"status.json", 1},
    {"log", 1},
    {"evaluation.json", 1},
    {MDL_REPORT_HTML, 1},
    {MDL_REPORT_CONFUSION, 1},
    {MDL_REPORT_PR, 1},
    {"predict", 0},
    {"evaluations", 0},
    {"model.safetensors", 0}, /* read-only while trained or training (see is_readonly) */
    {MDL_ONNX_FILE, 1},       /* generated on first read (models_onnx.c) */
    {NULL, 0},
};

const mdl_file *mdl_file_find(const char *name)
{
    for (const mdl_file *f = mdl_files; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* ---- records ---------------------------------------------------------- */

void srv_unref_locked(srv *s, srv **to_free)
{
    if (s && --s->refs == 0)
        *to_free = s;
}

void srv_free(srv *s)
{
    if (!s)
        return;
    fs_recipe_model_free(s->model);
    free(s);
}

srv *srv_new(fs_recipe_model *model)
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

int mdl_path_locked(const mdl *m, const char *sub, char *out, size_t n)
{
    char rel[FS_PATH_MAX];
    if (snprintf(rel, sizeof rel, "%s%s%s", m->name, sub && *sub ? "/" : "", sub ? sub : "") >=
        (int)sizeof rel)
        return -ENAMETOOLONG;
    return fs_store_path(out, n, "models", rel);
}

void mdl_name_copy(mdl *m, char *out, size_t n)
{
    pthread_mutex_lock(&g_models.mu);
    snprintf(out, n, "%s", m->name);
    pthread_mutex_unlock(&g_models.mu);
}

int mdl_path(mdl *m, const char *sub, char *out, size_t n)
{
    pthread_mutex_lock(&g_models.mu);
    int rc = m->deleted ? -ENOENT : mdl_path_locked(m, sub, out, n);
    pthread_mutex_unlock(&g_models.mu);
    return rc;
}

static void mdl_free(mdl *m)
{
    free(m->sl[0].tasks);
    free(m->sl[1].tasks);
    free(m->sb);
    pthread_mutex_destroy(&m->pub_mu);
    pthread_rwlock_destroy(&m->files);
    free(m);
}

void mdl_unref(mdl *m)
{
    srv *f1 = NULL, *f2 = NULL;
    pthread_mutex_lock(&g_models.mu);
    int last = --m->refs == 0;
    if (last) {
        srv_unref_locked(m->srv, &f1);
        srv_unref_locked(m->import_pending, &f2);
    }
    pthread_mutex_unlock(&g_models.mu);
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
    mdl_free(m);
}

/* Reads .vfs-state.json into a fresh record, not yet in the list (so no
 * lock is needed). */
static void mdl_load_state(mdl *m)
{
    char path[FS_PATH_MAX];
    if (mdl_path_locked(m, STATE_FILE, path, sizeof path))
        return;
    size_t len;
    char *text = fs_read_small(path, 1 << 16, &len);
    cJSON *root = NULL;
    eng_diag jd = {{0}};
    if (text && eng_json_parse(text, len, STATE_FILE, &root, &jd) != ENG_OK)
        fs_log("model \"%s\": %s: its state is read as new", m->name, jd.msg);
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
                m->err_code = fs_code_parse(v->valuestring);
            if (cJSON_IsString(v = cJSON_GetObjectItem(err, "message")))
                snprintf(m->err_msg, sizeof m->err_msg, "%s", v->valuestring);
        }
        cJSON_Delete(root);
    }
    struct stat st;
    if (mdl_path_locked(m, "model.safetensors", path, sizeof path) == 0 && stat(path, &st) == 0)
        m->has_model = 1;
    /* model.onnx starts each run of the daemon as the placeholder: an export
     * cached by an earlier build is not trusted (nothing has the file open
     * yet: this is the record's first load) */
    if (m->has_model && mdl_path_locked(m, MDL_ONNX_FILE, path, sizeof path) == 0) {
        char tmp[FS_PATH_MAX];
        if (fs_tmp_write(tmp, sizeof tmp, "", 0) == 0 && rename(tmp, path) != 0)
            unlink(tmp);
    }
}

mdl *mdl_find_locked(const char *name)
{
    for (mdl *m = g_models.models; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* The record of model `name` (loaded from the store on first use), with a
 * reference the caller drops with mdl_unref; NULL when there is no such model. */
mdl *mdl_get(const char *name)
{
    pthread_mutex_lock(&g_models.mu);
    mdl *m = mdl_find_locked(name);
    if (m)
        m->refs++;
    pthread_mutex_unlock(&g_models.mu);
    if (m)
        return m;
    /* not loaded yet: read it from the store without the lock, then add it
     * unless another thread did in the meantime */
    char path[FS_PATH_MAX];
    struct stat st;
    if (!fs_trainreq_name_ok(name) || fs_store_path(path, sizeof path, "models", name) ||
        stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    mdl *fresh = calloc(1, sizeof *fresh);
    if (!fresh)
        return NULL;
    pthread_mutex_init(&fresh->pub_mu, NULL);
    pthread_rwlock_init(&fresh->files, NULL);
    snprintf(fresh->name, sizeof fresh->name, "%s", name);
    mdl_load_state(fresh);
    pthread_mutex_lock(&g_models.mu);
    m = mdl_find_locked(name);
    if (!m) {
        m = fresh;
        fresh = NULL;
        m->id = g_models.next_id++;
        m->refs = 1; /* the list's */
        m->next = g_models.models;
        g_models.models = m;
    }
    m->refs++;
    pthread_mutex_unlock(&g_models.mu);
    if (fresh)
        mdl_free(fresh);
    return m;
}

mdl *mdl_get_rel(const char *rel, const char **sub)
{
    char name[FS_TRQ_NAME_MAX + 1];
    if (mdl_split_rel(rel, name, sub))
        return NULL;
    return mdl_get(name);
}

/* ---- files ------------------------------------------------------------ */

/* Writes data as model file `sub`, atomically; the target path is resolved
 * under g_models.mu at rename time, so a concurrent mv of the model is safe. */
int mdl_put(mdl *m, const char *sub, const void *data, size_t len)
{
    char tmp[FS_PATH_MAX], path[FS_PATH_MAX];
    int rc = fs_tmp_write(tmp, sizeof tmp, data, len);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&m->files);
    rc = mdl_path(m, sub, path, sizeof path);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    pthread_rwlock_unlock(&m->files);
    if (rc)
        unlink(tmp);
    return rc;
}

void mdl_mkdir(mdl *m, const char *sub)
{
    char path[FS_PATH_MAX];
    pthread_rwlock_rdlock(&m->files);
    if (mdl_path(m, sub, path, sizeof path) == 0)
        mkdir(path, 0755);
    pthread_rwlock_unlock(&m->files);
}

/* Appends one timestamped line to the model's log. */
void mdl_log(mdl *m, const char *fmt, ...)
{
    char raw[1200], line[2400], path[FS_PATH_MAX];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    fs_store_unroot(raw);
    /* user text (names, URLs, messages) is in it: one line, escaped */
    fs_line_escape(line + n, sizeof line - n - 1, raw);
    size_t used = strlen(line);
    snprintf(line + used, sizeof line - used, "\n");
    pthread_rwlock_rdlock(&m->files);
    if (mdl_path(m, "log", path, sizeof path) == 0) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t w = write(fd, line, strlen(line));
            (void)w;
            close(fd);
        }
    }
    pthread_rwlock_unlock(&m->files);
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

/* The one-line status (under g_models.mu). */
void mdl_slurm_summary(const mdl_slurm_view *v, char *out, size_t n)
{
    static const char *const states[] = {"PENDING", "RUNNING", "COMPLETED", NULL};
    if (n)
        out[0] = '\0';
    if (!v->ntasks)
        return;
    size_t k = (size_t)snprintf(out, n, " slurm job %s:", v->job);
    int other = v->ntasks;
    double now = fs_now();
    for (int s = 0; states[s] && k < n; s++) {
        int c = 0;
        double wait = 0;
        char nodes[96] = "";
        size_t nl = 0;
        for (int i = 0; i < v->ntasks; i++) {
            const fs_slurm_task *t = &v->tasks[i];
            if (strcmp(t->state, states[s]) != 0)
                continue;
            c++;
            if (now - t->submitted > wait)
                wait = now - t->submitted;
            if (s == 1 && t->node[0] && !strstr(nodes, t->node) && nl < sizeof nodes)
                nl +=
                    (size_t)snprintf(nodes + nl, sizeof nodes - nl, "%s%s", nl ? "," : "", t->node);
        }
        other -= c;
        if (!c)
            continue;
        k += (size_t)snprintf(out + k, n - k, "%s %d %s", other + c < v->ntasks ? "," : "", c,
                              states[s]);
        if (s == 0 && k < n)
            k += (size_t)snprintf(out + k, n - k, " (queued %.0fs)", wait);
        if (s == 1 && nodes[0] && k < n)
            k += (size_t)snprintf(out + k, n - k, " on %s", nodes);
    }
    if (other > 0 && k < n)
        snprintf(out + k, n - k, ", %d other", other);
}

/* status's one line, without its newline (mdl_publish cleans and ends it) */
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
        char sl[320] = "";
        mdl_slurm_summary(&m->sl[MDL_SL_TRAIN], sl, sizeof sl);
        snprintf(out, n, "training %d%% %s%s elapsed %s budget %s%s%s", pct, trial, best, el, bu,
                 m->restarted_run ? " (restarted after an interruption)" : "", sl);
        break;
    }
    case ST_FAILED:
        snprintf(out, n, "failed: %s: %s", fs_code_name(m->err_code), m->err_msg);
        break;
    default: snprintf(out, n, "%s", state_names[m->state]);
    }
}

/* The request as members of the object being written. */
static void request_members(jsonw *w, const fs_trainreq *r)
{
    jsonw_kstr(w, "dataset", r->dataset);
    if (r->kind)
        jsonw_kstr(w, "kind", r->kind);
    jsonw_knum(w, "budget_minutes", r->budget_seconds / 60.0);
    if (r->test_dataset[0])
        jsonw_kstr(w, "test_dataset", r->test_dataset);
}

/* status.json's member key: the tasks v shows (nothing when none). */
static void slurm_json(jsonw *w, const char *key, const mdl_slurm_view *v)
{
    if (v->ntasks) {
        double now = fs_now();
        jsonw_key(w, key);
        jsonw_obj(w);
        jsonw_kstr(w, "stage", v->stage);
        jsonw_kstr(w, "jobId", v->job);
        jsonw_key(w, "tasks");
        jsonw_arr(w);
        for (int i = 0; i < v->ntasks; i++) {
            const fs_slurm_task *t = &v->tasks[i];
            char id[FS_SLURM_ID_MAX + 16];
            snprintf(id, sizeof id, "%s_%d", t->job, t->index);
            jsonw_obj(w);
            jsonw_kint(w, "task", t->index);
            jsonw_kstr(w, "jobId", id);
            jsonw_kstr(w, "state", t->state);
            jsonw_kstr(w, "node", t->node);
            if (t->reason[0])
                jsonw_kstr(w, "reason", t->reason);
            double q = t->started > 0 ? t->started - t->submitted : now - t->submitted;
            jsonw_knum(w, "queuedSeconds", q > 0 ? q : 0);
            jsonw_kint(w, "tries", t->tries);
            jsonw_end(w);
        }
        jsonw_end(w);
        jsonw_end(w);
    }
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
    slurm_json(&w, "slurm", &m->sl[MDL_SL_TRAIN]);
    slurm_json(&w, "slurmEvaluation", &m->sl[MDL_SL_EVAL]);
    jsonw_key(&w, "bestMetrics");
    jsonw_obj(&w);
    if (m->has_prog && m->prog.best >= 0)
        jsonw_knum(&w, metric_of(m), m->prog.best);
    jsonw_end(&w);
    jsonw_key(&w, "errors");
    jsonw_arr(&w);
    if (m->state == ST_FAILED) {
        jsonw_obj(&w);
        jsonw_kstr(&w, "code", fs_code_name(m->err_code));
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
void mdl_publish(mdl *m)
{
    char raw[1200], line[2400];
    pthread_mutex_lock(&m->pub_mu);
    pthread_mutex_lock(&g_models.mu);
    status_line_locked(m, raw, sizeof raw);
    char *js = status_json_locked(m);
    m->last_publish = fs_now();
    pthread_mutex_unlock(&g_models.mu);
    /* one line, however the names and messages in it are spelled */
    fs_line_escape(line, sizeof line - 1, raw);
    size_t used = strlen(line);
    line[used] = '\n';
    line[used + 1] = '\0';
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
void mdl_persist(mdl *m)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    pthread_mutex_lock(&g_models.mu);
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
        jsonw_kstr(&w, "code", fs_code_name(m->err_code));
        jsonw_kstr(&w, "message", m->err_msg);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    pthread_mutex_unlock(&g_models.mu);
    char *s = jsonw_finish(&w, NULL);
    if (s)
        mdl_put(m, STATE_FILE, s, strlen(s));
    free(s);
}

void mdl_fail_locked(mdl *m, fs_code code, const char *msg)
{
    m->state = ST_FAILED;
    m->err_code = code;
    snprintf(m->err_msg, sizeof m->err_msg, "%s", msg);
    fs_store_unroot(m->err_msg);
}

/* ---- serving ------------------------------------------------------------ */

/* The served model with a reference (srv_put to drop), loading
 * model.safetensors on first use; NULL when there is none (why filled). */
srv *srv_get(mdl *m, fs_recipe_err *why)
{
    pthread_mutex_lock(&g_models.mu);
    while (m->loading && !g_models.stopping)
        pthread_cond_wait(&g_models.cv, &g_models.mu);
    if (m->srv || !m->has_model || m->deleted) {
        srv *s = m->srv;
        if (s)
            s->refs++;
        else
            snprintf(why->msg, sizeof why->msg, "model \"%s\" has no trained model", m->name);
        why->code = FS_CODE_MODEL_NOT_FOUND;
        pthread_mutex_unlock(&g_models.mu);
        return s;
    }
    m->loading = 1;
    char path[FS_PATH_MAX];
    mdl_path_locked(m, "model.safetensors", path, sizeof path);
    pthread_mutex_unlock(&g_models.mu);

    char **dirs = NULL;
    int nb = fs_models_backbones_list(&dirs);
    fs_recipe_model *model = NULL;
    fs_recipe_status st = fs_recipe_load(path, (const char *const *)dirs, nb, &model, why);
    fs_models_backbones_free(dirs, nb);
    srv *s = st == FS_RECIPE_OK ? srv_new(model) : NULL;
    if (st == FS_RECIPE_OK && !s)
        snprintf(why->msg, sizeof why->msg, "out of memory");
    if (!s) {
        char name[FS_TRQ_NAME_MAX + 1];
        mdl_name_copy(m, name, sizeof name);
        fs_log("model \"%s\": cannot load model.safetensors: %s", name, why->msg);
    }

    pthread_mutex_lock(&g_models.mu);
    m->loading = 0;
    if (s) {
        m->srv = s;
        s->refs++;
        if (!m->kind[0])
            snprintf(m->kind, sizeof m->kind, "%s", s->recipe->kind);
    }
    pthread_cond_broadcast(&g_models.cv);
    pthread_mutex_unlock(&g_models.mu);
    return s;
}

void srv_put(srv *s)
{
    srv *f = NULL;
    pthread_mutex_lock(&g_models.mu);
    srv_unref_locked(s, &f);
    pthread_mutex_unlock(&g_models.mu);
    srv_free(f);
}
