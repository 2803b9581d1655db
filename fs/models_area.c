/* models_area.c: the models/ area's hooks (what a FUSE call on models/
 * means) and the resume of every model at mount (models_int.h). */
#include "models_int.h"

#include "backbones.h"
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* ---- hooks ---------------------------------------------------------------- */

static int models_mkdir_item(const char *name)
{
    char path[FS_PATH_MAX];
    int rc = fs_store_path(path, sizeof path, "models", name);
    if (rc)
        return rc;
    pthread_mutex_lock(&g_models.mu);
    mdl *old = mdl_find_locked(name);
    pthread_mutex_unlock(&g_models.mu);
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
    char sub[FS_PATH_MAX];
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
        else if (!predict || !mdl_result_suffix(n))
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
    char sub[FS_PATH_MAX];
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
        else if (mdl_result_suffix(n))
            unlink(sub);
    }
    closedir(d);
    if (remove_self)
        rmdir(dir);
}

static int models_rmdir_item(const char *name)
{
    mdl *m = mdl_get(name);
    char path[FS_PATH_MAX], sub[FS_PATH_MAX];
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
        int known = strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strncmp(n, ".vfs", 4) == 0 ||
                    mdl_file_find(n);
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
        pthread_rwlock_wrlock(&m->files);
        pthread_mutex_lock(&g_models.mu);
        m->deleted = 1;
        m->gen++;
        for (evl *o = m->evals; o; o = o->next)
            o->cancel = 1;
        for (mdl **pp = &g_models.models; *pp; pp = &(*pp)->next) {
            if (*pp == m) {
                *pp = m->next;
                m->refs--; /* the list's reference */
                break;
            }
        }
        fs_jobq *qs[3] = {g_models.trainq, g_models.predq, g_models.evalq};
        pthread_cond_broadcast(&g_models.cv);
        pthread_mutex_unlock(&g_models.mu);
        pthread_rwlock_unlock(&m->files);
        for (int i = 0; i < 3; i++)
            if (qs[i])
                fs_jobq_cancel_key(qs[i], m->id);
        mdl_unref(m);
    }
    return fs_discard_tree(path);
}

static int models_rename_item(const char *from, const char *to)
{
    char a[FS_PATH_MAX], b[FS_PATH_MAX];
    if (fs_store_path(a, sizeof a, "models", from) || fs_store_path(b, sizeof b, "models", to))
        return -ENAMETOOLONG;
    mdl *m = mdl_get(from);
    if (m)
        pthread_rwlock_wrlock(&m->files); /* no file of the model is being written */
    pthread_mutex_lock(&g_models.mu);
    int rc = mdl_find_locked(to) ? -EEXIST : 0;
    pthread_mutex_unlock(&g_models.mu);
    if (rc == 0 && renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE) != 0)
        rc = -errno;
    if (rc == 0 && m) {
        pthread_mutex_lock(&g_models.mu);
        snprintf(m->name, sizeof m->name, "%s", to);
        pthread_mutex_unlock(&g_models.mu);
    }
    if (m) {
        pthread_rwlock_unlock(&m->files);
        mdl_unref(m);
    }
    return rc;
}

static int models_mkdir_sub(const char *rel)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return -ENOENT;
    char path[FS_PATH_MAX];
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
            mdl_eval_queue(m, ds);
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
    char path[FS_PATH_MAX];
    int rc = fs_store_path(path, sizeof path, "models", rel);
    if (rc == 0) {
        if (strcmp(sub, "evaluations") == 0) {
            /* rm -r evaluations: drop every evaluation, keep the folder */
            mdl_eval_cancel(m, NULL);
            DIR *d = opendir(path);
            struct dirent *e;
            char p2[FS_PATH_MAX];
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                snprintf(p2, sizeof p2, "%s/%s", path, e->d_name);
                fs_discard_tree(p2);
            }
            if (d)
                closedir(d);
        } else if (strncmp(sub, "evaluations/", 12) == 0 && !strchr(sub + 12, '/')) {
            mdl_eval_cancel(m, sub + 12);
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
    if (mdl_split_rel(rel, name, &sub) || !*sub)
        return 0;
    const mdl_file *f = mdl_file_find(sub);
    if (f && f->readonly)
        return 1;
    if (strcmp(sub, "model.safetensors") == 0) {
        mdl *m = mdl_get(name);
        if (!m)
            return 1;
        pthread_mutex_lock(&g_models.mu);
        int ro = m->has_model || m->has_req || m->running || m->queued;
        pthread_mutex_unlock(&g_models.mu);
        mdl_unref(m);
        return ro;
    }
    if (strncmp(sub, "predict/", 8) == 0) {
        size_t suffix = mdl_result_suffix(sub);
        if (!suffix)
            return 0;
        /* the result of an image that was removed: the user may delete it
         * (rm -r and rm of a glob meet results after their images) */
        char img[FS_PATH_MAX], path[FS_PATH_MAX];
        snprintf(img, sizeof img, "%s", rel);
        img[strlen(img) - suffix] = '\0';
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
    if (mdl_split_rel(rel, name, &sub) || strncmp(sub, "predict/", 8) != 0)
        return 0;
    const char *img = sub + 8;
    if (strchr(img, '/'))
        return 0;
    if (strlen(img) + strlen(MDL_BOXES_SUFFIX) > NAME_MAX)
        return -ENAMETOOLONG;
    if (mdl_result_suffix(img)) {
        mdl *m = mdl_get(name);
        if (m) {
            mdl_log(m,
                    "predict/%.200s refused: names ending in " MDL_RESULT_SUFFIX
                    " or " MDL_BOXES_SUFFIX " are "
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
    if (mdl_split_rel(rel, name, &sub) || !*sub)
        return 1;
    if (strncmp(sub, "predict", 7) == 0 && (sub[7] == '\0' || sub[7] == '/')) {
    } else if (strcmp(sub, MDL_ONNX_FILE) == 0) {
    } else if (strncmp(sub, "evaluations", 11) == 0 && (sub[11] == '\0' || sub[11] == '/')) {
    } else {
        return 1;
    }
    mdl *m = mdl_get(name);
    if (!m)
        return 1;
    pthread_mutex_lock(&g_models.mu);
    int vis = m->has_model;
    pthread_mutex_unlock(&g_models.mu);
    mdl_unref(m);
    return vis;
}

/* An imported model.safetensors may be this large: it may carry fine-tuned
 * backbone layers besides its head (other files keep the 20 MB default). */
#define MODEL_FILE_MAX_BYTES ((int64_t)1 << 30)

static int64_t models_max_size(const char *rel)
{
    return fs_ends_with(rel, "/model.safetensors") ? MODEL_FILE_MAX_BYTES : 0;
}

/* Reads the committed or temp train.json and checks it fully. Returns 0 or
 * -1 with code and msg. */
static int train_json_check(const char *path, fs_trainreq *r, const fs_recipe **recipe,
                            fs_code *code, char *msg, size_t mn)
{
    size_t len = 0;
    char *text = fs_read_small(path, 1 << 16, &len);
    if (!text) {
        *code = FS_CODE_INVALID_REQUEST;
        snprintf(msg, mn, "train.json: cannot be read, or larger than 64 KB");
        return -1;
    }
    fs_trainreq_diag d = {{0}};
    fs_trainreq_status st = fs_trainreq_parse(text, len, r, &d);
    free(text);
    if (st != FS_TRQ_OK) {
        *code = FS_CODE_INVALID_REQUEST;
        snprintf(msg, mn, "%s", d.msg);
        return -1;
    }
    return mdl_request_check(r, recipe, code, msg, mn);
}

/* Reports a refused train.json or model file: in status when the model is
 * idle, in status.json and the log when a run is going on. */
static void report_refused(mdl *m, const char *what, fs_code code, const char *msg)
{
    pthread_mutex_lock(&g_models.mu);
    int busy = m->running || m->queued;
    if (busy)
        snprintf(m->refused, sizeof m->refused, "%s: %s: %s", what, fs_code_name(code), msg);
    else
        mdl_fail_locked(m, code, msg);
    pthread_mutex_unlock(&g_models.mu);
    if (!busy)
        mdl_persist(m);
    mdl_publish(m);
    mdl_log(m, "%s refused: %s: %s", what, fs_code_name(code), msg);
}

static int models_validate_write(const char *rel, const char *tmp_path, char *why, size_t why_len)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return 0;
    int rc = 0;
    fs_code code = FS_CODE_NONE;
    char msg[480];
    if (strncmp(sub, "evaluations/", 12) == 0 && !strchr(sub + 12, '/')) {
        snprintf(why, why_len, "evaluations/ holds folders: mkdir evaluations/DATASET to evaluate");
        rc = -EACCES;
    } else if (strcmp(sub, "train.json") == 0) {
        fs_trainreq r;
        const fs_recipe *rec = NULL;
        if (train_json_check(tmp_path, &r, &rec, &code, msg, sizeof msg)) {
            snprintf(why, why_len, "%s: %s", fs_code_name(code), msg);
            report_refused(m, "train.json", code, msg);
            rc = -EINVAL;
        }
    } else if (strcmp(sub, "model.safetensors") == 0) {
        char **dirs = NULL;
        int nb = fs_models_backbones_list(&dirs);
        fs_recipe_model *model = NULL;
        fs_recipe_err err = {0};
        fs_recipe_status st = fs_recipe_load(tmp_path, (const char *const *)dirs, nb, &model, &err);
        fs_models_backbones_free(dirs, nb);
        srv *s = st == FS_RECIPE_OK ? srv_new(model) : NULL;
        if (!s) {
            code = err.code ? err.code : FS_CODE_INVALID_MODEL;
            snprintf(why, why_len, "%s: %s", fs_code_name(code), err.msg);
            report_refused(m, "model.safetensors", code, err.msg);
            rc = -EINVAL;
        } else {
            srv *old = NULL;
            pthread_mutex_lock(&g_models.mu);
            srv_unref_locked(m->import_pending, &old);
            m->import_pending = s;
            pthread_mutex_unlock(&g_models.mu);
            srv_free(old);
        }
    }
    mdl_unref(m);
    return rc;
}

/* The validator reads train.json and model.safetensors of a model. */
static int models_validate_reads(const char *rel)
{
    const char *sub = strchr(rel, '/');
    return sub && (strcmp(sub + 1, "train.json") == 0 || strcmp(sub + 1, "model.safetensors") == 0);
}

static void models_committed(const char *rel)
{
    const char *sub;
    mdl *m = mdl_get_rel(rel, &sub);
    if (!m)
        return;
    if (strcmp(sub, "train.json") == 0) {
        char path[FS_PATH_MAX], msg[480];
        fs_code code = FS_CODE_NONE;
        fs_trainreq r;
        const fs_recipe *rec = NULL;
        fs_store_path(path, sizeof path, "models", rel);
        if (train_json_check(path, &r, &rec, &code, msg, sizeof msg)) {
            report_refused(m, "train.json", code, msg); /* arrived by a path without validation */
        } else {
            pthread_rwlock_wrlock(&m->files); /* waits for a run committing */
            pthread_mutex_lock(&g_models.mu);
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
            pthread_mutex_unlock(&g_models.mu);
            pthread_rwlock_unlock(&m->files);
            mdl_persist(m);
            mdl_publish(m);
            mdl_log(m, "train.json accepted: version %d queued%s", version,
                    had ? " (the current model keeps serving until it succeeds)" : "");
            mdl_train_queue(m, 0);
        }
    } else if (strcmp(sub, "model.safetensors") == 0) {
        srv *old = NULL;
        char kind[16] = "", about[sizeof old->about] = "";
        pthread_mutex_lock(&g_models.mu);
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
            /* s is the record's once the lock is let go: a second import or
             * a training that succeeds meanwhile frees it */
            snprintf(kind, sizeof kind, "%s", s->recipe->kind);
            snprintf(about, sizeof about, "%s", s->about);
        }
        pthread_mutex_unlock(&g_models.mu);
        srv_free(old);
        if (s) {
            mdl_mkdir(m, "predict");
            mdl_mkdir(m, "evaluations");
            mdl_persist(m);
            mdl_publish(m);
            mdl_onnx_reset(m);
            mdl_log(m, "imported model.safetensors (%s, %s)", kind, about);
        }
    } else if (strncmp(sub, "predict/", 8) == 0 && !mdl_result_suffix(sub)) {
        mdl_predict_queue(m, sub);
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
        pthread_rwlock_wrlock(&m->files); /* waits for a run committing */
        pthread_mutex_lock(&g_models.mu);
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
        pthread_mutex_unlock(&g_models.mu);
        pthread_rwlock_unlock(&m->files);
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
    size_t suffix;
    if (mdl_split_rel(rel, name, &sub) == 0 && strcmp(sub, MDL_ONNX_FILE) == 0) {
        mdl *m = mdl_get(name);
        int rc = m ? mdl_onnx_open(m) : -ENOENT;
        if (m)
            mdl_unref(m);
        return rc;
    }
    if (mdl_split_rel(rel, name, &sub) || strncmp(sub, "predict/", 8) != 0 ||
        !(suffix = mdl_result_suffix(sub)))
        return 0;
    char img[FS_PATH_MAX];
    snprintf(img, sizeof img, "%s", sub);
    img[strlen(img) - suffix] = '\0';
    mdl *m = mdl_get(name);
    if (!m)
        return 0;
    pthread_mutex_lock(&g_models.mu);
    for (;;) {
        int waiting = 0;
        for (pend *p = m->pending; p; p = p->next)
            waiting |= strcmp(p->rel, img) == 0;
        if (!waiting || g_models.stopping || m->deleted)
            break;
        pthread_cond_wait(&g_models.cv, &g_models.mu);
    }
    pthread_mutex_unlock(&g_models.mu);
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
    char p[FS_PATH_MAX], s[FS_PATH_MAX];
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
        } else if (!mdl_result_suffix(n)) {
            char out[FS_PATH_MAX + 8];
            snprintf(out, sizeof out, "%s.json", p);
            if (stat(out, &st) != 0 || st.st_size == 0)
                mdl_predict_queue(m, s);
        }
    }
    closedir(d);
}

/* After a mount: requeue what was interrupted. */
static void resume_model(mdl *m)
{
    pthread_mutex_lock(&g_models.mu);
    mdl_state s = m->state;
    int has_req = m->has_req;
    if (s == ST_TRAINING) {
        m->restarts++;
        m->restarted_run = 1;
    }
    if (s == ST_CANCELLING)
        m->state = ST_CANCELLED;
    if (s == ST_TRAINING && !has_req) {
        mdl_fail_locked(m, FS_CODE_UNKNOWN,
                        "the run interrupted by the daemon's stop cannot be restarted: its request "
                        "is unreadable; write train.json again");
        s = ST_CANCELLING; /* persist and publish below */
    }
    pthread_mutex_unlock(&g_models.mu);
    if ((s == ST_TRAINING || s == ST_NOT_STARTED) && has_req) {
        if (s == ST_TRAINING) {
            mdl_persist(m);
            mdl_log(m, "the daemon stopped during training: restarting it");
        }
        mdl_train_queue(m, s == ST_TRAINING);
        mdl_publish(m);
    } else if (s == ST_CANCELLING) {
        mdl_persist(m);
        mdl_publish(m);
    }
    char dir[FS_PATH_MAX];
    pthread_mutex_lock(&g_models.mu);
    int has_model = m->has_model;
    mdl_path_locked(m, "predict", dir, sizeof dir);
    pthread_mutex_unlock(&g_models.mu);
    if (!has_model)
        return;
    rescan_predict(m, dir, "predict");
    pthread_mutex_lock(&g_models.mu);
    mdl_path_locked(m, "evaluations", dir, sizeof dir);
    pthread_mutex_unlock(&g_models.mu);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || e->d_type == DT_REG)
            continue;
        char st[FS_PATH_MAX];
        snprintf(st, sizeof st, "%s/%s/status", dir, e->d_name);
        char *text = fs_read_small(st, 4096, NULL);
        int done = text && (strncmp(text, "succeeded", 9) == 0 || strncmp(text, "failed", 6) == 0);
        free(text);
        if (!done)
            mdl_eval_queue(m, e->d_name);
    }
    if (d)
        closedir(d);
}

static void models_start(void)
{
    pthread_mutex_lock(&g_models.mu);
    if (g_models.started) {
        pthread_mutex_unlock(&g_models.mu);
        return;
    }
    g_models.stopping = 0;
    g_models.trainq = fs_jobq_new("train", 1);
    g_models.predq = fs_jobq_new("predict", fs_ncpu());
    g_models.evalq = fs_jobq_new("eval", 1);
    g_models.started = 1;
    pthread_mutex_unlock(&g_models.mu);
    if (g_models.trainq)
        fs_jobq_start(g_models.trainq);
    if (g_models.predq)
        fs_jobq_start(g_models.predq);
    if (g_models.evalq)
        fs_jobq_start(g_models.evalq);
    char root[FS_PATH_MAX];
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
    pthread_mutex_lock(&g_models.mu);
    if (!g_models.started) {
        pthread_mutex_unlock(&g_models.mu);
        return;
    }
    g_models.stopping = 1;
    pthread_cond_broadcast(&g_models.cv);
    fs_jobq *qs[3] = {g_models.trainq, g_models.predq, g_models.evalq};
    g_models.trainq = g_models.predq = g_models.evalq = NULL;
    pthread_mutex_unlock(&g_models.mu);
    for (int i = 0; i < 3; i++)
        fs_jobq_free(qs[i]);
    /* drop the records: the next start reads the store again */
    pthread_mutex_lock(&g_models.mu);
    mdl *list = g_models.models;
    g_models.models = NULL;
    g_models.started = 0;
    pthread_mutex_unlock(&g_models.mu);
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
    .validate_reads = models_validate_reads,
};
