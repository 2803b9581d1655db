/* fetch_dsjson.c: Azure's dataset registration body, datasets/NAME/dataset.json:
 * its check at close(), the download of the annotation files it names (by
 * the fetcher's own queue and thread, fetch.c) and their merge into
 * annotations.json (fetch_int.h).
 */
#include "fetch_int.h"

#include "area.h"
#include "engine.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- dataset.json ---- */

/* Parses dataset.json text; fills kind and the url list (borrowed from root). */
static int dsjson_parse(const char *text, size_t len, cJSON **root_out, coco_kind *kind, char *why,
                        size_t n)
{
    *root_out = NULL;
    cJSON *root = NULL;
    eng_diag jd = {{0}};
    if (eng_json_parse(text, len, "dataset.json", &root, &jd) != ENG_OK || !cJSON_IsObject(root)) {
        snprintf(why, n, "%s", root ? "dataset.json is not a JSON object" : jd.msg);
        cJSON_Delete(root);
        return -EINVAL;
    }
    cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "annotationKind");
    if (!cJSON_IsString(k) || (strcasecmp(k->valuestring, "imageClassification") != 0 &&
                               strcasecmp(k->valuestring, "imageObjectDetection") != 0 &&
                               strcasecmp(k->valuestring, "imageMultilabelClassification") != 0)) {
        snprintf(why, n,
                 "annotationKind: must be \"imageClassification\", \"imageObjectDetection\" or "
                 "\"imageMultilabelClassification\" (several tags per image; not Azure's)");
        cJSON_Delete(root);
        return -EINVAL;
    }
    /* the last is ours: Azure IA 4.0 had no multilabel datasets */
    *kind = strcasecmp(k->valuestring, "imageClassification") == 0    ? COCO_KIND_CLASSIFICATION
            : strcasecmp(k->valuestring, "imageObjectDetection") == 0 ? COCO_KIND_DETECTION
                                                                      : COCO_KIND_MULTILABEL;
    cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "annotationFileUris");
    int nu = cJSON_IsArray(u) ? cJSON_GetArraySize(u) : 0;
    if (nu < 1 || nu > 64) {
        snprintf(why, n, "annotationFileUris: must be an array of 1 to 64 urls");
        cJSON_Delete(root);
        return -EINVAL;
    }
    for (int i = 0; i < nu; i++) {
        cJSON *s = cJSON_GetArrayItem(u, i);
        coco_url_kind uk = cJSON_IsString(s) ? coco_url_classify(s->valuestring) : COCO_URL_NONE;
        if (uk != COCO_URL_HTTP && uk != COCO_URL_HTTPS && uk != COCO_URL_FILE) {
            char plain[200] = "";
            if (cJSON_IsString(s))
                fs_fetch_redact(s->valuestring, plain, sizeof plain);
            snprintf(why, n, "annotationFileUris[%d]: \"%.150s\" is not an http, https or file url",
                     i, plain);
            cJSON_Delete(root);
            return -EINVAL;
        }
    }
    *root_out = root;
    return 0;
}

int fs_fetch_dataset_json_check(const char *path, char *why, size_t n)
{
    size_t len = 0;
    char *text = fs_read_small(path, 1 << 20, &len);
    if (!text) {
        snprintf(why, n, "dataset.json: cannot read it or larger than 1 MB");
        return -EINVAL;
    }
    cJSON *root = NULL;
    coco_kind kind;
    int rc = dsjson_parse(text, len, &root, &kind, why, n);
    free(text);
    cJSON_Delete(root);
    return rc;
}

/* Starts (or restarts) the downloads of name's dataset.json; lock not held. */
static void dsjson_start(const char *name, const char *dir)
{
    char path[FS_PATH_MAX], why[400];
    if (snprintf(path, sizeof path, "%s/dataset.json", dir) >= (int)sizeof path)
        return;
    size_t len = 0;
    char *text = fs_read_small(path, 1 << 20, &len);
    cJSON *root = NULL;
    coco_kind kind = COCO_KIND_UNKNOWN;
    int rc = text ? dsjson_parse(text, len, &root, &kind, why, sizeof why) : -ENOENT;
    free(text);
    struct stat st; /* its owner's rights read file:// urls */
    fs_fetch_reader reader = {geteuid(), getegid()};
    if (stat(path, &st) == 0)
        reader = (fs_fetch_reader){st.st_uid, st.st_gid};
    dsjson *d = calloc(1, sizeof *d);
    if (!d) {
        cJSON_Delete(root);
        return;
    }
    snprintf(d->name, sizeof d->name, "%s", name);
    d->kind = kind;
    cJSON *u = root ? cJSON_GetObjectItemCaseSensitive(root, "annotationFileUris") : NULL;
    d->n = u ? cJSON_GetArraySize(u) : 0;
    d->parts = calloc((size_t)(d->n ? d->n : 1), sizeof *d->parts);
    fetch_job **jobs = calloc((size_t)(d->n ? d->n : 1), sizeof *jobs);
    d->state = 1;
    if (rc || !d->parts || !jobs) {
        d->state = 2;
        d->code_uri = 1;
        snprintf(d->error, sizeof d->error, "%s", rc == -ENOENT ? "dataset.json is gone" : why);
    }
    for (int i = 0; d->state == 1 && i < d->n; i++) {
        cJSON *s = cJSON_GetArrayItem(u, i);
        jobs[i] = fetch_job_new(KIND_ANN, name, s->valuestring, NULL);
        if (!jobs[i]) {
            d->state = 2;
            snprintf(d->error, sizeof d->error, "out of memory");
        } else {
            jobs[i]->part = i;
            jobs[i]->reader = reader;
        }
    }
    cJSON_Delete(root);
    pthread_mutex_lock(&fetch_lock);
    if (!fetch_running || fetch_stopping) {
        pthread_mutex_unlock(&fetch_lock);
        for (int i = 0; i < d->n && jobs; i++)
            fetch_job_free(jobs[i]);
        free(jobs);
        fetch_dsjson_free(d);
        return;
    }
    /* a new request replaces an older one (its parts are dropped) */
    fetch_jobs_drop(name, 2);
    dsjson *old = NULL;
    for (dsjson **pp = &fetch_dsjsons; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            old = *pp;
            *pp = old->next;
            break;
        }
    }
    d->gen = ++fetch_dsj_gen;
    d->next = fetch_dsjsons;
    fetch_dsjsons = d;
    for (int i = 0; d->state == 1 && i < d->n; i++) {
        jobs[i]->gen = d->gen;
        fetch_queue_push(jobs[i]);
        jobs[i] = NULL;
    }
    fetch_wake_locked();
    /* d is the list's once the lock is let go: a second start for the same
     * name may free it at once, so its count is read here */
    int n = d->n;
    pthread_mutex_unlock(&fetch_lock);
    for (int i = 0; i < n && jobs; i++)
        fetch_job_free(jobs[i]);
    free(jobs);
    fetch_dsjson_free(old);
    fetch_dataset_changed(name);
}

void fs_fetch_dataset_json(const char *dataset, const char *path)
{
    char dir[FS_PATH_MAX];
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (slash && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    } else if (fs_store_path(dir, sizeof dir, "datasets", dataset) != 0) {
        return;
    }
    dsjson_start(dataset, dir);
}

/* All parts of d are in: parse, merge, write annotations.json. Runs on the
 * fetch thread without the lock; returns NULL or the reason. */
static const char *dsjson_assemble(const char *name, int n, char **parts, coco_kind kind, char *why,
                                   size_t whyn)
{
    coco_dataset **ds = calloc((size_t)n, sizeof *ds);
    const char *fail = NULL;
    if (!ds)
        return "out of memory";
    for (int k = 0; k < n && !fail; k++) {
        size_t len = 0;
        char *text = fs_read_small(parts[k], (size_t)FS_FETCH_MAX_ANN_BYTES, &len);
        coco_diag d;
        memset(&d, 0, sizeof d);
        if (!text) {
            fail = "cannot read the download";
            break;
        }
        coco_status cs = coco_dataset_parse(text, len, NULL, &ds[k], &d);
        free(text);
        if (cs != COCO_OK) {
            snprintf(why, whyn, "annotationFileUris[%d]: %.300s", k,
                     d.msg[0] ? d.msg : coco_status_name(cs));
            fail = why;
        }
    }
    coco_dataset *merged = NULL;
    if (!fail && n > 1) {
        coco_diag d;
        memset(&d, 0, sizeof d);
        if (coco_dataset_merge((const coco_dataset *const *)ds, (size_t)n, &merged, &d) !=
            COCO_OK) {
            snprintf(why, whyn, "merging the annotation files: %.300s", d.msg);
            fail = why;
        }
    }
    if (!fail) {
        const coco_dataset *one = merged ? merged : ds[0];
        size_t len = 0;
        char *json = coco_dataset_to_json(one, kind, &len);
        char path[FS_PATH_MAX];
        if (!json) {
            fail = "out of memory";
        } else if (fs_store_path(path, sizeof path, "datasets", name) == 0 &&
                   strlen(path) + 20 < sizeof path) {
            size_t used = strlen(path);
            snprintf(path + used, sizeof path - used, "/annotations.json");
            int rc = fs_write_atomic(path, json, len);
            if (rc) {
                snprintf(why, whyn, "cannot write annotations.json: %s", strerror(-rc));
                fail = why;
            }
        }
        free(json);
    }
    coco_dataset_free(merged);
    for (int k = 0; k < n; k++)
        coco_dataset_free(ds[k]);
    free(ds);
    return fail;
}

void fetch_dsjson_part_done(fetch_job *j, const char *reason)
{
    pthread_mutex_lock(&fetch_lock);
    dsjson *d = fetch_dsjsons;
    while (d && (strcmp(d->name, j->owner) != 0 || d->gen != j->gen))
        d = d->next;
    if (!d || d->state != 1) {
        pthread_mutex_unlock(&fetch_lock);
        if (!reason)
            unlink(j->tmp);
        return;
    }
    if (reason) {
        char plain[300];
        fs_fetch_redact(j->url, plain, sizeof plain);
        d->state = 2;
        d->code_uri = 1;
        snprintf(d->error, sizeof d->error,
                 "annotationFileUris[%d]: download of \"%.250s\" failed: %s", j->part, plain,
                 reason);
        /* once the lock is let go, an rm -r of the dataset frees d
         * (fs_fetch_cancel): log a copy */
        char error[sizeof d->error];
        snprintf(error, sizeof error, "%s", d->error);
        pthread_mutex_unlock(&fetch_lock);
        fs_log("fetch: dataset \"%s\": %s", j->owner, error);
        fetch_dataset_changed(j->owner);
        return;
    }
    d->parts[j->part] = strdup(j->tmp);
    d->done++;
    int all = d->done == d->n;
    int n = d->n;
    coco_kind kind = d->kind;
    char name[72];
    snprintf(name, sizeof name, "%s", d->name);
    unsigned gen = d->gen;
    char **parts = NULL;
    if (all) {
        /* take the parts: the lock is dropped while assembling */
        parts = d->parts;
        d->parts = calloc((size_t)n, sizeof *d->parts);
    }
    pthread_mutex_unlock(&fetch_lock);
    if (!all) {
        fetch_dataset_changed(name);
        return;
    }
    char why[400] = "";
    const char *fail =
        parts ? dsjson_assemble(name, n, parts, kind, why, sizeof why) : "out of memory";
    for (int k = 0; parts && k < n; k++) {
        if (parts[k])
            unlink(parts[k]);
        free(parts[k]);
    }
    free(parts);
    pthread_mutex_lock(&fetch_lock);
    for (d = fetch_dsjsons; d; d = d->next) {
        if (strcmp(d->name, name) == 0 && d->gen == gen) {
            d->state = fail ? 2 : 3;
            d->code_uri = 0;
            if (fail)
                snprintf(d->error, sizeof d->error, "%s", fail);
        }
    }
    pthread_mutex_unlock(&fetch_lock);
    if (fail)
        fs_log("fetch: dataset \"%s\": %s", name, fail);
    fetch_dataset_changed(name);
}

int fs_fetch_dataset_json_status(const char *name, const char *dir, char *line, size_t n,
                                 char **json)
{
    *json = NULL;
    char path[FS_PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/dataset.json", dir) >= (int)sizeof path ||
        lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    pthread_mutex_lock(&fetch_lock);
    if (!fetch_running || fetch_stopping) {
        pthread_mutex_unlock(&fetch_lock);
        return 0;
    }
    dsjson *d = fetch_dsjsons;
    while (d && strcmp(d->name, name) != 0)
        d = d->next;
    if (!d) {
        pthread_mutex_unlock(&fetch_lock);
        dsjson_start(name, dir);
        pthread_mutex_lock(&fetch_lock);
        for (d = fetch_dsjsons; d && strcmp(d->name, name) != 0;)
            d = d->next;
        if (!d) {
            pthread_mutex_unlock(&fetch_lock);
            return 0;
        }
    }
    int state = d->state;
    int done = d->done, total = d->n, code_uri = d->code_uri;
    char error[600];
    snprintf(error, sizeof error, "%s", d->error);
    pthread_mutex_unlock(&fetch_lock);
    if (state == 3)
        return 0;
    const char *code = code_uri ? "DatasetInvalidAnnotationUri" : "datasetAnnotationsInvalid";
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_kstr(&w, "dataset", name);
    if (state == 1) {
        snprintf(line, n, "fetching: annotation files %d/%d", done, total);
        jsonw_kstr(&w, "state", "fetching");
        jsonw_kstr(&w, "status", line);
        jsonw_kint(&w, "annotationFilesFetched", done);
    } else {
        snprintf(line, n, "invalid: %s: %.400s", code, error);
        jsonw_kstr(&w, "state", "invalid");
        jsonw_kstr(&w, "status", line);
    }
    jsonw_kint(&w, "annotationFiles", total);
    jsonw_kint(&w, "images", 0);
    jsonw_kint(&w, "errorCount", state == 1 ? 0 : 1);
    jsonw_kint(&w, "warningCount", 0);
    jsonw_key(&w, "errors");
    jsonw_arr(&w);
    if (state != 1) {
        jsonw_obj(&w);
        jsonw_kstr(&w, "code", code);
        jsonw_kstr(&w, "path", "dataset.json");
        jsonw_kstr(&w, "message", error);
        jsonw_kstr(&w, "hint",
                   code_uri ? "check the url (an expired SAS token gives 403), then "
                              "write dataset.json again"
                            : "fix the annotation file at that url, then write "
                              "dataset.json again");
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_key(&w, "warnings");
    jsonw_arr(&w);
    jsonw_end(&w);
    jsonw_end(&w);
    char *text = jsonw_finish(&w, NULL);
    if (!text)
        return 0;
    fs_fetch_redact_text(line);
    fs_fetch_redact_text(text);
    *json = text;
    return state == 1 ? 1 : 2;
}
