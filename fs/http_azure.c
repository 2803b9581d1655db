/* http_azure.c: Azure Image Analysis 4.0's model customization API
 * (api-version 2023-02-01-preview and 2023-04-01-preview) on the tree.
 *
 * Design: every call is the file operation a user would make through the
 * mount (ops.h fs_tree_*): PUT datasets/N is mkdir datasets/N plus writing
 * dataset.json; PUT models/N is mkdir models/N plus writing train.json;
 * GET reads the generated status.json and evaluation.json; DELETE is rm -r;
 * :cancel removes train.json. The areas' own validation decides what is
 * accepted, so nothing here re-implements a rule of the tree. Request keys
 * are matched without case (Microsoft's sample client sends PascalCase)
 * and rewritten to the camelCase the tree's parsers read. Analyze runs the
 * image through the same prediction code as predict/ (models.h). */
#include "area.h"
#include "codes.h"
#include "http_int.h"
#include "models.h"
#include "models_recipe.h"
#include "ops.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define BASE "/computervision"
#define MAX_TOP 30

static const char *const api_versions[] = {"2022-10-12-preview", "2023-02-01-preview",
                                           "2023-04-01-preview", "2023-07-01-preview"};

/* ---- helpers ---- */

/* An errno from the tree as an HTTP answer. */
static void tree_error(http_resp *out, int rc, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(-rc));
    switch (-rc) {
    case ENOENT: http_error(out, 404, "NotFound", msg, NULL); break;
    case EEXIST: http_error(out, 409, "Conflict", msg, NULL); break;
    case EINVAL: http_error(out, 400, "InvalidRequest", msg, NULL); break;
    case EFBIG: http_error(out, 413, "InvalidRequest", msg, NULL); break;
    case EACCES:
    case EPERM: http_error(out, 403, "Forbidden", msg, NULL); break;
    case ENOSPC:
    case EDQUOT: http_error(out, 507, "StoreFull", msg, NULL); break;
    default: http_error(out, 500, "InternalServerError", msg, NULL); break;
    }
}

/* The camelCase spelling of every request key the tree's parsers read. */
static const char *const canon_keys[] = {"trainingParameters",
                                         "trainingDatasetName",
                                         "timeBudgetInHours",
                                         "modelKind",
                                         "evaluationParameters",
                                         "testDatasetName",
                                         "annotationKind",
                                         "annotationFileUris",
                                         "customProperties",
                                         "authentication",
                                         "kind",
                                         "sasToken",
                                         "url"};

/* Azure matched keys without case: rewrite every known key of j (at any
 * depth, not inside customProperties) to its camelCase spelling, and
 * modelKind's value to the spelling of the kinds' table. */
static void canonicalise(cJSON *j)
{
    cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        for (size_t i = 0; it->string && i < sizeof canon_keys / sizeof *canon_keys; i++) {
            if (strcasecmp(it->string, canon_keys[i]) == 0 && strcmp(it->string, canon_keys[i])) {
                char *s = strdup(canon_keys[i]);
                if (s && !(it->type & cJSON_StringIsConst)) {
                    free(it->string);
                    it->string = s;
                } else {
                    free(s);
                }
            }
        }
        if (it->string && strcmp(it->string, "modelKind") == 0 && cJSON_IsString(it)) {
            /* Generic-Classifier, GenericClassifier, generic-classifier ... */
            static const char *const kinds[] = {"Generic-Classifier", "Generic-Detector"};
            for (size_t k = 0; k < 2; k++) {
                char a[64], b[64];
                size_t na = 0, nb = 0;
                for (const char *p = it->valuestring; *p && na < 63; p++)
                    if (*p != '-' && *p != '_')
                        a[na++] = *p;
                for (const char *p = kinds[k]; *p && nb < 63; p++)
                    if (*p != '-')
                        b[nb++] = *p;
                a[na] = b[nb] = '\0';
                if (strcasecmp(a, b) == 0)
                    cJSON_SetValuestring(it, kinds[k]);
            }
        }
        if ((cJSON_IsObject(it) || cJSON_IsArray(it)) &&
            !(it->string && strcmp(it->string, "customProperties") == 0))
            canonicalise(it);
    }
}

/* The request body as a JSON object with canonical keys, or NULL with the
 * answer set. */
static cJSON *body_object(const http_req *r, http_resp *out)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(r->body, r->len, &end, 0);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        http_error(out, 400, "InvalidRequest", "the request body is not a JSON object", NULL);
        return NULL;
    }
    canonicalise(j);
    return j;
}

static void iso_time(time_t t, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void add_time(cJSON *o, const char *key, time_t t)
{
    char b[32];
    iso_time(t, b, sizeof b);
    cJSON_AddStringToObject(o, key, b);
}

/* A generated or written file of the tree, parsed; NULL when absent. */
static cJSON *tree_json(const char *fmt, const char *name)
{
    char path[FS_PATH_MAX], *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, fmt, name);
    if (fs_tree_read(path, 16 << 20, &buf, &len) != 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

/* The first line of a generated one-line file; "" when absent. */
static void tree_line(const char *fmt, const char *name, char *out, size_t n)
{
    char path[FS_PATH_MAX], *buf = NULL;
    snprintf(path, sizeof path, fmt, name);
    out[0] = '\0';
    if (fs_tree_read(path, 64 << 10, &buf, NULL) == 0) {
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(out, n, "%s", buf);
        free(buf);
    }
}

static time_t mtime_of(const char *fmt, const char *name, time_t dflt)
{
    char path[FS_PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, fmt, name);
    return fs_tree_stat(path, &st) == 0 ? st.st_mtime : dflt;
}

/* ---- listing with skip/top ---- */

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static int names_add(const char *name, void *arg)
{
    names *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, cap * sizeof *nv);
        if (!nv)
            return 1;
        l->v = nv;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(name)) != NULL)
        l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_count(const char *s, long dflt, long lo, long hi, long *out)
{
    if (!s) {
        *out = dflt;
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* {"value": [item(name) ...], "nextLink"?} over the folder `area`. */
static void list_items(const http_req *r, http_resp *out, const char *area, const char *owner,
                       cJSON *(*item)(const char *owner, const char *name))
{
    long skip, top;
    if (parse_count(r->arg(r, "skip"), 0, 0, 1L << 30, &skip) ||
        parse_count(r->arg(r, "top"), 10, 1, MAX_TOP, &top)) {
        http_error(out, 400, "InvalidRequest",
                   "skip must be a count from 0 and top a count from 1 to 30", NULL);
        return;
    }
    names l = {0};
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "/%s", area);
    int rc = fs_tree_list(path, names_add, &l);
    if (rc) {
        tree_error(out, rc, area);
        return;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_str);
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "value");
    for (size_t i = (size_t)skip; i < l.n && i < (size_t)(skip + top); i++) {
        cJSON *o = item(owner, l.v[i]);
        if (o)
            cJSON_AddItemToArray(arr, o);
    }
    if ((size_t)(skip + top) < l.n) {
        char link[1024];
        const char *v = r->arg(r, "api-version");
        snprintf(link, sizeof link, "http://%s" BASE "/%s?api-version=%s&skip=%ld&top=%ld", r->host,
                 area, v ? v : "", skip + top, top);
        cJSON_AddStringToObject(root, "nextLink", link);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    http_json(out, 200, root);
}

/* ---- datasets ---- */

/* A dataset's eTag: its registration (dataset.json) changes it; "" when
 * the dataset does not exist. */
static void dataset_etag(const char *name, char *out, size_t n)
{
    char path[FS_PATH_MAX];
    struct stat st;
    out[0] = '\0';
    snprintf(path, sizeof path, "/datasets/%s/dataset.json", name);
    if (fs_tree_stat(path, &st) != 0) {
        snprintf(path, sizeof path, "/datasets/%s", name);
        if (fs_tree_stat(path, &st) != 0)
            return;
    }
    snprintf(out, n, "\"%llx%09ld\"", (unsigned long long)st.st_mtim.tv_sec,
             (long)st.st_mtim.tv_nsec);
}

/* If-Match (when given) must name the dataset's eTag (or be "*"); else 412. */
static int if_match_ok(const http_req *r, http_resp *out, const char *name)
{
    const char *want = r->header(r, "If-Match");
    char etag[64];
    dataset_etag(name, etag, sizeof etag);
    if (!want || strcmp(want, "*") == 0 || strcmp(want, etag) == 0)
        return 1;
    http_error(out, 412, "PreconditionFailed", "If-Match does not name the dataset's eTag", NULL);
    return 0;
}

/* Azure's Dataset for datasets/NAME: the registration body it was made
 * with (dataset.json), or what the mount shows for one made by cp. */
static cJSON *dataset_json(const char *name)
{
    char dir[FS_PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "/datasets/%s", name);
    if (fs_tree_stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    cJSON *o = tree_json("/datasets/%s/dataset.json", name);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
        char line[512];
        tree_line("/datasets/%s/status", name, line, sizeof line);
        cJSON_AddStringToObject(o, "annotationKind",
                                strstr(line, "(detection)") ? "imageObjectDetection"
                                                            : "imageClassification");
        cJSON_AddArrayToObject(o, "annotationFileUris");
    }
    cJSON_DeleteItemFromObject(o, "name");
    cJSON_AddStringToObject(o, "name", name);
    time_t made = mtime_of("/datasets/%s/dataset.json", name, st.st_mtime);
    time_t changed = mtime_of("/datasets/%s/status", name, made);
    add_time(o, "createdDateTime", made);
    add_time(o, "updatedDateTime", changed > made ? changed : made);
    char etag[64];
    dataset_etag(name, etag, sizeof etag);
    cJSON_AddStringToObject(o, "eTag", etag);
    return o;
}

static void dataset_put(const http_req *r, http_resp *out, const char *name)
{
    cJSON *j = body_object(r, out);
    if (!j)
        return;
    cJSON_DeleteItemFromObject(j, "name");
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char dir[FS_PATH_MAX], file[FS_PATH_MAX], why[512];
    snprintf(dir, sizeof dir, "/datasets/%s", name);
    snprintf(file, sizeof file, "%s/dataset.json", dir);
    int rc = text ? fs_tree_mkdir(dir) : -ENOMEM;
    if (rc == -EEXIST) {
        free(text);
        http_error(out, 409, "DatasetAlreadyExists", "a dataset of this name exists", NULL);
        return;
    }
    if (rc == 0) {
        rc = fs_tree_write(file, text, strlen(text), why, sizeof why);
        if (rc)
            fs_tree_remove(dir); /* refused: as if never registered */
    }
    free(text);
    if (rc == -EINVAL) {
        http_error(out, 400, "InvalidRequest", why[0] ? why : "the dataset body was refused", NULL);
        return;
    }
    if (rc) {
        tree_error(out, rc, "datasets");
        return;
    }
    http_json(out, 201, dataset_json(name));
}

/* PATCH: the registration body with the given keys replaced, written again
 * as dataset.json (what a user's editor would do); If-Match is checked. */
static void dataset_patch(const http_req *r, http_resp *out, const char *name)
{
    char file[FS_PATH_MAX], why[512];
    struct stat st;
    snprintf(file, sizeof file, "/datasets/%s", name);
    if (fs_tree_stat(file, &st) != 0) {
        http_error(out, 404, "NotFound", "Resource not found", NULL);
        return;
    }
    if (!if_match_ok(r, out, name))
        return;
    cJSON *patch = body_object(r, out);
    if (!patch)
        return;
    cJSON *cur = tree_json("/datasets/%s/dataset.json", name);
    if (!cJSON_IsObject(cur)) {
        cJSON_Delete(cur);
        cJSON_Delete(patch);
        http_error(out, 409, "Conflict",
                   "this dataset was made through the mount (no dataset.json): nothing to patch",
                   NULL);
        return;
    }
    cJSON *it;
    cJSON_ArrayForEach(it, patch)
    {
        if (strcmp(it->string, "name") == 0)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(cur, it->string);
        cJSON_AddItemToObject(cur, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON_Delete(patch);
    char *text = cJSON_Print(cur);
    cJSON_Delete(cur);
    snprintf(file, sizeof file, "/datasets/%s/dataset.json", name);
    int rc = text ? fs_tree_write(file, text, strlen(text), why, sizeof why) : -ENOMEM;
    free(text);
    if (rc == -EINVAL)
        http_error(out, 400, "InvalidRequest", why[0] ? why : "the dataset body was refused", NULL);
    else if (rc)
        tree_error(out, rc, "datasets");
    else
        http_json(out, 200, dataset_json(name));
}

/* ---- models ---- */

/* Azure's Model for models/NAME, from status.json (state, request,
 * errors) and evaluation.json (modelPerformance). */
static cJSON *model_json(const char *name)
{
    cJSON *st = tree_json("/models/%s/status.json", name);
    if (!cJSON_IsObject(st)) {
        cJSON_Delete(st);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(st, "request");
    cJSON *tp = cJSON_AddObjectToObject(o, "trainingParameters");
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(req, "dataset");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(req, "kind");
    const cJSON *bm = cJSON_GetObjectItemCaseSensitive(req, "budget_minutes");
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(req, "test_dataset");
    if (cJSON_IsString(ds))
        cJSON_AddStringToObject(tp, "trainingDatasetName", ds->valuestring);
    if (cJSON_IsNumber(bm))
        cJSON_AddNumberToObject(tp, "timeBudgetInHours", bm->valuedouble / 60.0);
    const fs_recipe *rec = cJSON_IsString(kind) ? fs_recipe_for_kind(kind->valuestring) : NULL;
    if (rec)
        cJSON_AddStringToObject(tp, "modelKind", rec->azure_kind);
    if (cJSON_IsString(td) && td->valuestring[0])
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "evaluationParameters"),
                                "testDatasetName", td->valuestring);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(st, "status");
    const char *s = cJSON_IsString(status) ? status->valuestring : "notStarted";
    cJSON_AddStringToObject(o, "status", s);
    time_t now = time(NULL);
    time_t made = mtime_of("/models/%s/train.json", name, now);
    add_time(o, "createdDateTime", made);
    add_time(o, "updatedDateTime", mtime_of("/models/%s/status.json", name, now));
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(st, "errors");
    const cJSON *e0 = cJSON_GetArrayItem(errs, 0);
    if (e0 && strcmp(s, "failed") == 0) {
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e0, "code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e0, "message");
        cJSON_AddStringToObject(e, "code", cJSON_IsString(c) ? c->valuestring : "unknown");
        cJSON_AddStringToObject(e, "message", cJSON_IsString(m) ? m->valuestring : "");
    }
    if (strcmp(s, "succeeded") == 0) {
        cJSON *ev = tree_json("/models/%s/evaluation.json", name);
        static const char *const perf[] = {"accuracyTop1",           "accuracyTop5",
                                           "averagePrecision",       "calibrationECE",
                                           "meanAveragePrecision30", "meanAveragePrecision50",
                                           "meanAveragePrecision75", "tagPerformance"};
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(ev, "trainingCostInMinutes");
        if (cJSON_IsNumber(cost))
            cJSON_AddNumberToObject(o, "trainingCostInMinutes", (int)(cost->valuedouble + 0.5));
        cJSON *mp = cJSON_AddObjectToObject(o, "modelPerformance");
        for (size_t i = 0; ev && i < sizeof perf / sizeof *perf; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, perf[i]);
            if (v)
                cJSON_AddItemToObject(mp, perf[i], cJSON_Duplicate(v, 1));
        }
        cJSON_Delete(ev);
    }
    cJSON_Delete(st);
    return o;
}

/* After train.json was refused: the reason the model area wrote down. */
static void refused_reason(const char *name, char *code, size_t cn, char *msg, size_t mn)
{
    snprintf(code, cn, "InvalidRequest");
    snprintf(msg, mn, "the training request was refused");
    cJSON *st = tree_json("/models/%s/status.json", name);
    const cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "errors"), 0);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e0, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e0, "message");
    if (cJSON_IsString(c))
        snprintf(code, cn, "%s", c->valuestring);
    if (cJSON_IsString(m))
        snprintf(msg, mn, "%s", m->valuestring);
    cJSON_Delete(st);
}

static void model_put(const http_req *r, http_resp *out, const char *name)
{
    cJSON *j = body_object(r, out);
    if (!j)
        return;
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "trainingParameters"))) {
        cJSON_Delete(j);
        http_error(out, 400, "InvalidRequest", "\"trainingParameters\": missing", NULL);
        return;
    }
    cJSON_DeleteItemFromObject(j, "name");
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char dir[FS_PATH_MAX], file[FS_PATH_MAX];
    snprintf(dir, sizeof dir, "/models/%s", name);
    snprintf(file, sizeof file, "%s/train.json", dir);
    int rc = text ? fs_tree_mkdir(dir) : -ENOMEM;
    if (rc == -EEXIST) {
        free(text);
        http_error(out, 409, "ModelAlreadyExists", "a model of this name exists", NULL);
        return;
    }
    int made = rc == 0;
    if (made)
        rc = fs_tree_write(file, text, strlen(text), NULL, 0);
    free(text);
    if (rc == -EINVAL && made) {
        char code[64], msg[512];
        refused_reason(name, code, sizeof code, msg, sizeof msg);
        fs_tree_remove(dir); /* refused: as if never made */
        http_error(out, 400, code, msg, NULL);
        return;
    }
    if (rc) {
        if (made)
            fs_tree_remove(dir);
        tree_error(out, rc, "models");
        return;
    }
    http_json(out, 201, model_json(name));
}

static int method_is(const http_req *r, const char *m);
static void not_allowed(http_resp *out);

/* ---- evaluations: models/M/evaluations/DATASET in the mount ---- */

/* Azure's ModelEvaluation for models/M/evaluations/DS, from its status
 * line (notStarted, running, succeeded, failed: CODE: message) and
 * metrics.json. */
static cJSON *eval_json(const char *model, const char *ds)
{
    char path[FS_PATH_MAX], line[1024], *buf = NULL;
    struct stat st;
    snprintf(path, sizeof path, "/models/%s/evaluations/%s", model, ds);
    if (fs_tree_stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    snprintf(path, sizeof path, "/models/%s/evaluations/%s/status", model, ds);
    line[0] = '\0';
    if (fs_tree_read(path, 64 << 10, &buf, NULL) == 0) {
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(line, sizeof line, "%s", buf);
        free(buf);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", ds);
    cJSON_AddStringToObject(o, "modelName", model);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "evaluationParameters"), "testDatasetName",
                            ds);
    add_time(o, "createdDateTime", st.st_mtime);
    add_time(o, "updatedDateTime", fs_tree_stat(path, &st) == 0 ? st.st_mtime : time(NULL));
    if (strncmp(line, "failed: ", 8) == 0) {
        cJSON_AddStringToObject(o, "status", "failed");
        char *code = line + 8, *msg = strstr(code, ": ");
        if (msg)
            *msg = '\0';
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddStringToObject(e, "message", msg ? msg + 2 : "");
    } else {
        cJSON_AddStringToObject(o, "status", line[0] ? line : "notStarted");
    }
    if (strcmp(line, "succeeded") == 0) {
        snprintf(path, sizeof path, "/models/%s/evaluations/%s/metrics.json", model, "%s");
        cJSON *mj = tree_json(path, ds);
        if (mj)
            cJSON_AddItemToObject(o, "modelPerformance", mj);
    }
    return o;
}

static void evaluations(const http_req *r, http_resp *out, const char *model, const char *name)
{
    char path[FS_PATH_MAX];
    struct stat st;
    if (!fs_name_valid(model) || (name && !fs_name_valid(name))) {
        http_error(out, 400, "InvalidRequest",
                   "names are 1-64 characters of A-Za-z0-9._- not starting with '.'", NULL);
        return;
    }
    snprintf(path, sizeof path, "/models/%s", model);
    if (fs_tree_stat(path, &st) != 0) {
        http_error(out, 404, "NotFound", "Resource not found", NULL);
        return;
    }
    if (!name) {
        char area[FS_PATH_MAX];
        if (!method_is(r, "GET")) {
            not_allowed(out);
            return;
        }
        snprintf(area, sizeof area, "models/%s/evaluations", model);
        list_items(r, out, area, model, eval_json);
        return;
    }
    snprintf(path, sizeof path, "/models/%s/evaluations/%s", model, name);
    if (method_is(r, "GET")) {
        cJSON *o = eval_json(model, name);
        if (o)
            http_json(out, 200, o);
        else
            http_error(out, 404, "NotFound", "Resource not found", NULL);
    } else if (method_is(r, "DELETE")) {
        int rc = fs_tree_remove(path);
        if (rc == -ENOENT)
            http_error(out, 404, "NotFound", "Resource not found", NULL);
        else if (rc)
            tree_error(out, rc, "evaluations");
        else
            http_json(out, 204, NULL);
    } else if (method_is(r, "PUT")) {
        cJSON *j = body_object(r, out);
        if (!j)
            return;
        const cJSON *td = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(j, "evaluationParameters"), "testDatasetName");
        int same = !cJSON_IsString(td) || strcmp(td->valuestring, name) == 0;
        cJSON_Delete(j);
        if (!same) {
            http_error(out, 400, "InvalidRequest",
                       "visionfs names an evaluation after its test dataset "
                       "(models/M/evaluations/DATASET): use the dataset's name as the "
                       "evaluation's",
                       NULL);
            return;
        }
        int rc = fs_tree_mkdir(path);
        if (rc == -EEXIST)
            http_error(out, 409, "Conflict", "an evaluation of this name exists", NULL);
        else if (rc == -ENOENT)
            http_error(out, 400, "InvalidRequest",
                       "the model has not succeeded yet: nothing to evaluate", NULL);
        else if (rc)
            tree_error(out, rc, "evaluations");
        else
            http_json(out, 201, eval_json(model, name));
    } else {
        not_allowed(out);
    }
}

/* ---- analyze ---- */

typedef struct dl {
    FILE *f;
    size_t len;
    int over;
} dl;

static size_t dl_write(char *p, size_t sz, size_t n, void *arg)
{
    dl *d = arg;
    if (d->len + sz * n > HTTP_IMAGE_MAX) {
        d->over = 1;
        return 0;
    }
    d->len += sz * n;
    return fwrite(p, sz, n, d->f) * sz;
}

/* Downloads url (http or https only: the caller must not read our files)
 * into the temp file tmp. 0, or -1 with the answer set. */
static int download(const char *url, const char *tmp, http_resp *out)
{
    dl d = {fopen(tmp, "wb"), 0, 0};
    CURL *c = d.f ? curl_easy_init() : NULL;
    CURLcode cr = CURLE_FAILED_INIT;
    long code = 0;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
        cr = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
    }
    if (d.f)
        fclose(d.f);
    if (d.over || (cr == CURLE_OK && code < 300 && d.len == 0)) {
        http_error(out, 400, "InvalidRequest",
                   "The image size is not allowed to be zero or larger than 20971520 bytes",
                   "InvalidImageSize");
        return -1;
    }
    if (cr != CURLE_OK || code >= 300) {
        char msg[512];
        if (cr != CURLE_OK)
            snprintf(msg, sizeof msg, "the image URL could not be read: %s",
                     curl_easy_strerror(cr));
        else
            snprintf(msg, sizeof msg, "the image URL answered HTTP %ld", code);
        http_error(out, 400, "InvalidRequest", msg, "InvalidImageUrl");
        return -1;
    }
    return 0;
}

static void analyze(const http_req *r, http_resp *out)
{
    const char *model = r->arg(r, "model-name");
    const char *features = r->arg(r, "features");
    if (!model || !*model) {
        http_error(out, 400, "InvalidRequest",
                   features && *features
                       ? "visionfs serves custom models only: give model-name"
                       : "Either 'features' or 'model-name' needs to be specified in the query "
                         "parameter",
                   NULL);
        return;
    }
    char dir[FS_PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "/models/%s", model);
    if (!fs_name_valid(model) || fs_tree_stat(dir, &st) != 0) {
        http_error(out, 404, "NotFound", "Resource not found", NULL);
        return;
    }
    char tmp[FS_PATH_MAX];
    int fd = fs_tmp_create(tmp, sizeof tmp);
    if (fd < 0) {
        tree_error(out, fd, "analyze");
        return;
    }
    close(fd);
    int bad = 0;
    if (strncasecmp(r->content_type, "application/json", 16) == 0) {
        cJSON *j = body_object(r, out);
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "url");
        if (!j)
            bad = 1;
        else if (!cJSON_IsString(u) || !u->valuestring[0]) {
            http_error(out, 400, "InvalidRequest", "\"url\": missing", "InvalidImageUrl");
            bad = 1;
        } else {
            bad = download(u->valuestring, tmp, out) != 0;
        }
        cJSON_Delete(j);
    } else if (strncasecmp(r->content_type, "multipart/", 10) == 0) {
        http_error(out, 415, "InvalidRequest",
                   "multipart bodies are not served yet: send the image bytes as "
                   "application/octet-stream or {\"url\"} as application/json",
                   NULL);
        bad = 1;
    } else if (r->len == 0) {
        http_error(out, 400, "InvalidRequest",
                   "The image size is not allowed to be zero or larger than 20971520 bytes",
                   "InvalidImageSize");
        bad = 1;
    } else {
        FILE *f = fopen(tmp, "wb");
        bad = !f || fwrite(r->body, 1, r->len, f) != r->len;
        if (f && fclose(f) != 0)
            bad = 1;
        if (bad)
            http_error(out, 507, "StoreFull", "the image could not be stored", NULL);
    }
    char *json = NULL;
    fs_code code = FS_CODE_NONE;
    int rc = bad ? 0 : fs_models_analyze(model, tmp, "the image", &json, &code);
    unlink(tmp);
    if (bad)
        return;
    if (rc == -ENOENT) {
        http_error(out, 404, "NotFound", "Resource not found", NULL);
    } else if (rc || !json) {
        http_error(out, 503, "ServiceUnavailable", "the mount is stopping", NULL);
    } else if (code == FS_CODE_NONE) {
        free(out->body);
        out->body = json;
        json = NULL;
        out->status = 200;
    } else {
        cJSON *e = cJSON_Parse(json);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(e, "error"), "message");
        const char *msg = cJSON_IsString(m) ? m->valuestring : fs_code_name(code);
        if (code == FS_CODE_MODEL_NOT_FOUND)
            http_error(out, 404, "NotFound", msg, fs_code_name(code));
        else
            http_error(out, 400, "InvalidRequest", msg, fs_code_name(code));
        cJSON_Delete(e);
    }
    free(json);
}

/* ---- routing ---- */

static cJSON *model_item(const char *owner, const char *name)
{
    (void)owner;
    return model_json(name);
}

static cJSON *dataset_item(const char *owner, const char *name)
{
    (void)owner;
    return dataset_json(name);
}

int http_route_takes_image(const char *path)
{
    return strcmp(path, BASE "/imageanalysis:analyze") == 0;
}

static int method_is(const http_req *r, const char *m) { return strcmp(r->method, m) == 0; }

static void not_allowed(http_resp *out)
{
    http_error(out, 405, "InvalidRequest", "this method is not served on this path", NULL);
}

/* One item of a collection: GET, PUT, DELETE (and :cancel for models). */
static void item(const http_req *r, http_resp *out, const char *area, const char *name)
{
    int models = strcmp(area, "models") == 0;
    char nm[128], op[32] = "";
    snprintf(nm, sizeof nm, "%s", name);
    char *colon = strchr(nm, ':');
    if (colon) {
        snprintf(op, sizeof op, "%s", colon + 1);
        *colon = '\0';
    }
    if (!fs_name_valid(nm)) {
        http_error(out, 400, "InvalidRequest",
                   "names are 1-64 characters of A-Za-z0-9._- not starting with '.'", NULL);
        return;
    }
    char dir[FS_PATH_MAX];
    snprintf(dir, sizeof dir, "/%s/%s", area, nm);
    if (op[0]) {
        if (!models || strcmp(op, "cancel") != 0 || !method_is(r, "POST")) {
            http_error(out, 404, "NotFound", "Resource not found", NULL);
            return;
        }
        struct stat st;
        if (fs_tree_stat(dir, &st) != 0) {
            http_error(out, 404, "NotFound", "Resource not found", NULL);
            return;
        }
        /* removing train.json is how the mount cancels a training */
        char file[FS_PATH_MAX];
        snprintf(file, sizeof file, "%s/train.json", dir);
        int rc = fs_tree_remove(file);
        if (rc && rc != -ENOENT)
            tree_error(out, rc, "cancel");
        else
            http_json(out, 202, NULL);
        return;
    }
    if (method_is(r, "PUT")) {
        if (models)
            model_put(r, out, nm);
        else
            dataset_put(r, out, nm);
    } else if (method_is(r, "GET")) {
        cJSON *o = models ? model_json(nm) : dataset_json(nm);
        if (o)
            http_json(out, 200, o);
        else
            http_error(out, 404, "NotFound", "Resource not found", NULL);
    } else if (method_is(r, "PATCH") && !models) {
        dataset_patch(r, out, nm);
    } else if (method_is(r, "DELETE")) {
        if (!models && !if_match_ok(r, out, nm))
            return;
        int rc = fs_tree_remove(dir);
        if (rc == -ENOENT)
            http_error(out, 404, "NotFound", "Resource not found", NULL);
        else if (rc)
            tree_error(out, rc, area);
        else
            http_json(out, 204, NULL);
    } else {
        not_allowed(out);
    }
}

void http_route(const http_req *r, http_resp *out)
{
    const char *v = r->arg(r, "api-version");
    int known = 0;
    for (size_t i = 0; v && i < sizeof api_versions / sizeof *api_versions; i++)
        known |= strcmp(v, api_versions[i]) == 0;
    if (!known) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "api-version \"%.64s\" is not served; use 2023-02-01-preview or "
                 "2023-04-01-preview",
                 v ? v : "");
        http_error(out, 400, "InvalidRequest", msg, "UnsupportedApiVersion");
        return;
    }
    const char *p = r->path;
    if (strncmp(p, BASE "/", sizeof BASE) != 0) {
        http_error(out, 404, "NotFound", "Resource not found", NULL);
        return;
    }
    p += sizeof BASE;
    if (strcmp(p, "imageanalysis:analyze") == 0) {
        if (method_is(r, "POST"))
            analyze(r, out);
        else
            not_allowed(out);
        return;
    }
    const char *areas[] = {"datasets", "models"};
    for (size_t i = 0; i < 2; i++) {
        size_t al = strlen(areas[i]);
        if (strncmp(p, areas[i], al) != 0)
            continue;
        const char *rest = p + al;
        if (*rest == '\0' || strcmp(rest, "/") == 0) {
            if (method_is(r, "GET"))
                list_items(r, out, areas[i], NULL, i ? model_item : dataset_item);
            else
                not_allowed(out);
            return;
        }
        if (*rest == '/' && rest[1] && !strchr(rest + 1, '/')) {
            item(r, out, areas[i], rest + 1);
            return;
        }
        const char *ev = i ? strstr(rest + 1, "/evaluations") : NULL;
        if (*rest == '/' && ev && ev > rest + 1 && ev - rest - 1 < 128) {
            char model[128];
            snprintf(model, sizeof model, "%.*s", (int)(ev - rest - 1), rest + 1);
            const char *tail = ev + strlen("/evaluations");
            if (*tail == '\0' || strcmp(tail, "/") == 0) {
                evaluations(r, out, model, NULL);
                return;
            }
            if (*tail == '/' && !strchr(tail + 1, '/')) {
                evaluations(r, out, model, tail + 1);
                return;
            }
        }
    }
    http_error(out, 404, "NotFound", "Resource not found", NULL);
}
