/* models_onnx.c: models/NAME/model.onnx, the served model exported to ONNX
 * (the engine's eng_classifier_export_onnx through the kind's recipe).
 *
 * Design: a succeeded model's folder in the store holds model.onnx from the
 * moment it is served: an empty placeholder (so the file is listed) until
 * the first open for reading, which exports the served model and writes
 * the bytes into the placeholder itself. In place, not temp + rename: the
 * file keeps its inode number, which cp compares between its stat and its
 * open ("skipping file ..., as it was replaced while being copied" when the
 * export outlived the 1 s attribute cache). No reader sees half a file:
 * every open for reading waits for the export (below), and a daemon killed
 * mid-write finds the placeholder again, since each run starts every
 * model.onnx empty (models.c). A new model (training success, import) puts the placeholder back,
 * dropping the cached export; deleting the model removes its folder. One
 * mutex serialises exports and resets, so an export of the old model cannot
 * land after the reset for a new one. The export runs as a job on the
 * prediction queue (the FUSE handler only waits, as for predict/ results).
 * A failed export leaves the placeholder, logs the reason and fails the
 * open with EIO. */
#include "models_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Lock order: onnx_mu first, then m->files and g_models.mu (mdl_path,
 * srv_get, mdl_put); never m->pub_mu (mdl_log runs after it is released). */
static pthread_mutex_t onnx_mu = PTHREAD_MUTEX_INITIALIZER;

void mdl_onnx_reset(mdl *m)
{
    pthread_mutex_lock(&onnx_mu);
    int rc = mdl_put(m, MDL_ONNX_FILE, "", 0);
    pthread_mutex_unlock(&onnx_mu);
    if (rc) {
        char name[FS_TRQ_NAME_MAX + 1];
        mdl_name_copy(m, name, sizeof name);
        fs_log("model \"%s\": cannot reset " MDL_ONNX_FILE ": %s", name, strerror(-rc));
    }
}

/* Writes buf into the (empty) model.onnx at path, keeping its inode; on a
 * failure it is left empty again. 0 or -errno. */
static int write_in_place(mdl *m, const uint8_t *buf, size_t len)
{
    char path[FS_PATH_MAX];
    pthread_rwlock_rdlock(&m->files); /* the folder stays where path says */
    int rc = mdl_path(m, MDL_ONNX_FILE, path, sizeof path), fd = -1;
    if (rc == 0 && (fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0)
        rc = -errno;
    if (rc == 0)
        rc = fs_write_fd(fd, buf, len);
    if (fd >= 0) {
        if (rc && ftruncate(fd, 0) != 0)
            rc = -errno;
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
    }
    pthread_rwlock_unlock(&m->files);
    return rc;
}

/* The export itself (a prediction-queue worker). 0, or -EIO. */
static int onnx_export(mdl *m)
{
    char path[FS_PATH_MAX];
    struct stat st;
    pthread_mutex_lock(&onnx_mu);
    pthread_rwlock_rdlock(&m->files);
    int rc = mdl_path(m, MDL_ONNX_FILE, path, sizeof path);
    pthread_rwlock_unlock(&m->files);
    if (rc == 0 && stat(path, &st) != 0)
        rc = -errno;
    if (rc || st.st_size > 0) { /* gone, or already exported */
        pthread_mutex_unlock(&onnx_mu);
        return rc;
    }
    fs_recipe_err why = {0};
    srv *s = srv_get(m, &why);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (s && fs_recipe_export_onnx(s->model, &buf, &len, &why) == FS_RECIPE_OK) {
        rc = write_in_place(m, buf, len);
        if (rc)
            snprintf(why.msg, sizeof why.msg, "cannot write it: %s", strerror(-rc));
    } else {
        rc = -EIO;
    }
    if (s)
        srv_put(s);
    free(buf);
    pthread_mutex_unlock(&onnx_mu);
    if (rc) {
        char name[FS_TRQ_NAME_MAX + 1];
        mdl_name_copy(m, name, sizeof name);
        fs_log("model \"%s\": " MDL_ONNX_FILE " export failed: %s", name, why.msg);
        mdl_log(m, MDL_ONNX_FILE " export failed: %s", why.msg);
        return -EIO;
    }
    mdl_log(m, MDL_ONNX_FILE " exported (%zu bytes)", len);
    return 0;
}

typedef struct ojob {
    mdl *m;
    int rc, done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} ojob;

static void ojob_run(void *arg)
{
    ojob *j = arg;
    j->rc = onnx_export(j->m);
}

static void ojob_drop(void *arg) /* after the run, or instead of it */
{
    ojob *j = arg;
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int mdl_onnx_open(mdl *m)
{
    ojob j = {.m = m, .rc = -ESHUTDOWN};
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&g_models.mu);
    fs_jobq *q = g_models.predq;
    pthread_mutex_unlock(&g_models.mu);
    int rc;
    if (!q || fs_jobq_push(q, 0, ojob_run, ojob_drop, &j) != FS_JOBQ_OK) {
        rc = -ESHUTDOWN;
    } else {
        pthread_mutex_lock(&j.mu);
        while (!j.done)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
        rc = j.rc; /* -ESHUTDOWN when dropped: the mount is stopping */
    }
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    return rc;
}
