/* http_models.c: /computervision/models/{name} and its evaluations: a
 * model is a folder of models/ whose train.json is the training request;
 * its answers come from the generated status.json, evaluation.json and
 * evaluations/DATASET/ files, read through the tree. */
#include "area.h"
#include "http_int.h"
#include "ops.h"
#include "models_recipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Messages and paths are cut to their buffers on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- models ---- */

/* Azure's Model for models/NAME, from status.json (state, request,
 * errors) and evaluation.json (modelPerformance). */
cJSON *http_model_json(const char *name)
{
    cJSON *st = http_tree_json("/models/%s/status.json", name);
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
    time_t made = http_mtime_of("/models/%s/train.json", name, now);
    http_add_time(o, "createdDateTime", made);
    http_add_time(o, "updatedDateTime", http_mtime_of("/models/%s/status.json", name, now));
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
        cJSON *ev = http_tree_json("/models/%s/evaluation.json", name);
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
    cJSON *st = http_tree_json("/models/%s/status.json", name);
    const cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "errors"), 0);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e0, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e0, "message");
    if (cJSON_IsString(c))
        snprintf(code, cn, "%s", c->valuestring);
    if (cJSON_IsString(m))
        snprintf(msg, mn, "%s", m->valuestring);
    cJSON_Delete(st);
}

void http_model_put(const http_req *r, http_resp *out, const char *name)
{
    cJSON *j = http_body_object(r, out);
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
        http_tree_error(out, rc, "models");
        return;
    }
    http_json(out, 201, http_model_json(name));
}

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
    http_add_time(o, "createdDateTime", st.st_mtime);
    http_add_time(o, "updatedDateTime", fs_tree_stat(path, &st) == 0 ? st.st_mtime : time(NULL));
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
        cJSON *mj = http_tree_json(path, ds);
        if (mj)
            cJSON_AddItemToObject(o, "modelPerformance", mj);
    }
    return o;
}

void http_evaluations(const http_req *r, http_resp *out, const char *model, const char *name)
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
        if (!http_method_is(r, "GET")) {
            http_not_allowed(out);
            return;
        }
        snprintf(area, sizeof area, "models/%s/evaluations", model);
        http_list(r, out, area, model, eval_json);
        return;
    }
    snprintf(path, sizeof path, "/models/%s/evaluations/%s", model, name);
    if (http_method_is(r, "GET")) {
        cJSON *o = eval_json(model, name);
        if (o)
            http_json(out, 200, o);
        else
            http_error(out, 404, "NotFound", "Resource not found", NULL);
    } else if (http_method_is(r, "DELETE")) {
        int rc = fs_tree_remove(path);
        if (rc == -ENOENT)
            http_error(out, 404, "NotFound", "Resource not found", NULL);
        else if (rc)
            http_tree_error(out, rc, "evaluations");
        else
            http_json(out, 204, NULL);
    } else if (http_method_is(r, "PUT")) {
        cJSON *j = http_body_object(r, out);
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
            http_tree_error(out, rc, "evaluations");
        else
            http_json(out, 201, eval_json(model, name));
    } else {
        http_not_allowed(out);
    }
}
