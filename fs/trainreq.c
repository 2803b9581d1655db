/* trainreq.c: train.json -> fs_trainreq (see trainreq.h).
 *
 * cJSON is parsed with explicit length and no global error pointer; every
 * failure is a status plus a message naming the offending key.
 */
#include "trainreq.h"

#include "engine.h"        /* eng_json_parse */
#include "models_recipe.h" /* the kinds */

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define TRQ_MAX_BYTES (64 * 1024)

static fs_trainreq_status trq_fail(fs_trainreq_diag *d, fs_trainreq_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static fs_trainreq_status trq_fail(fs_trainreq_diag *d, fs_trainreq_status st, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

int fs_trainreq_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > FS_TRQ_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Copies a dataset name from item (a string obeying the name rule). */
static fs_trainreq_status trq_name(const cJSON *item, const char *key, char *dst,
                                   fs_trainreq_diag *d)
{
    if (!cJSON_IsString(item))
        return trq_fail(d, FS_TRQ_EFIELD, "\"%s\": must be a string (a dataset name)", key);
    const char *s = item->valuestring;
    if (!fs_trainreq_name_ok(s))
        return trq_fail(d, FS_TRQ_EFIELD,
                        "\"%s\": \"%.64s\" is not a dataset name (1-64 of A-Za-z0-9._-, not "
                        "starting with '.')",
                        key, s);
    snprintf(dst, FS_TRQ_NAME_MAX + 1, "%s", s);
    return FS_TRQ_OK;
}

static fs_trainreq_status trq_budget(const cJSON *item, const char *key, double scale, double *out,
                                     fs_trainreq_diag *d)
{
    if (!cJSON_IsNumber(item))
        return trq_fail(d, FS_TRQ_EFIELD, "\"%s\": must be a number", key);
    double v = item->valuedouble * scale;
    if (!isfinite(v) || v <= 0)
        return trq_fail(d, FS_TRQ_EFIELD, "\"%s\": must be above 0", key);
    if (v > FS_TRQ_MAX_BUDGET_S)
        return trq_fail(d, FS_TRQ_EFIELD, "\"%s\": more than 7 days", key);
    if (v < 1.0)
        v = 1.0;
    *out = v;
    return FS_TRQ_OK;
}

static fs_trainreq_status trq_short(const cJSON *root, fs_trainreq *r, fs_trainreq_diag *d)
{
    fs_trainreq_status st;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "dataset");
    if (!ds)
        return trq_fail(d, FS_TRQ_EFIELD,
                        "\"dataset\": missing (the short form is {\"dataset\": \"NAME\", "
                        "\"budget_minutes\": 10})");
    if ((st = trq_name(ds, "dataset", r->dataset, d)))
        return st;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (kind && !cJSON_IsNull(kind)) {
        char names[200];
        fs_recipe_kind_names(0, names, sizeof names);
        if (!cJSON_IsString(kind))
            return trq_fail(d, FS_TRQ_EFIELD, "\"kind\": must be %s", names);
        const fs_recipe *rec = fs_recipe_for_kind(kind->valuestring);
        if (!rec)
            return trq_fail(d, FS_TRQ_EFIELD, "\"kind\": \"%.40s\" is unknown (use %s)",
                            kind->valuestring, names);
        r->kind = rec->kind;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "budget_minutes");
    if (b && !cJSON_IsNull(b) &&
        (st = trq_budget(b, "budget_minutes", 60.0, &r->budget_seconds, d)))
        return st;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "test_dataset");
    if (t && !cJSON_IsNull(t) && (st = trq_name(t, "test_dataset", r->test_dataset, d)))
        return st;
    return FS_TRQ_OK;
}

static fs_trainreq_status trq_azure(const cJSON *root, fs_trainreq *r, fs_trainreq_diag *d)
{
    fs_trainreq_status st;
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(root, "trainingParameters");
    if (!cJSON_IsObject(tp))
        return trq_fail(d, FS_TRQ_EFIELD, "\"trainingParameters\": must be an object");
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(tp, "trainingDatasetName");
    if (!ds)
        return trq_fail(d, FS_TRQ_EFIELD, "\"trainingParameters.trainingDatasetName\": missing");
    if ((st = trq_name(ds, "trainingParameters.trainingDatasetName", r->dataset, d)))
        return st;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(tp, "timeBudgetInHours");
    if (b && !cJSON_IsNull(b) &&
        (st = trq_budget(b, "trainingParameters.timeBudgetInHours", 3600.0, &r->budget_seconds, d)))
        return st;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(tp, "modelKind");
    if (kind && !cJSON_IsNull(kind)) {
        if (!cJSON_IsString(kind))
            return trq_fail(d, FS_TRQ_EFIELD, "\"trainingParameters.modelKind\": must be a string");
        const fs_recipe *rec = fs_recipe_for_azure_kind(kind->valuestring);
        if (!rec) {
            char names[200];
            fs_recipe_kind_names(1, names, sizeof names);
            return trq_fail(d, FS_TRQ_EFIELD,
                            "\"trainingParameters.modelKind\": \"%.40s\" is unknown (use %s)",
                            kind->valuestring, names);
        }
        r->kind = rec->kind;
    }
    const cJSON *ep = cJSON_GetObjectItemCaseSensitive(root, "evaluationParameters");
    if (ep && !cJSON_IsNull(ep)) {
        if (!cJSON_IsObject(ep))
            return trq_fail(d, FS_TRQ_EFIELD, "\"evaluationParameters\": must be an object");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(ep, "testDatasetName");
        if (t && !cJSON_IsNull(t) &&
            (st = trq_name(t, "evaluationParameters.testDatasetName", r->test_dataset, d)))
            return st;
    }
    r->azure_form = 1;
    return FS_TRQ_OK;
}

/* The first key that appears twice in one object of o (at any depth, case
 * ignored, since Azure's keys are matched without case), or NULL. cJSON
 * keeps both and answers lookups with the first, so a request that says two
 * things would silently mean one of them. */
static const char *duplicate_key(const cJSON *o)
{
    for (const cJSON *a = o ? o->child : NULL; a; a = a->next) {
        if (cJSON_IsObject(o) && a->string)
            for (const cJSON *b = a->next; b; b = b->next)
                if (b->string && strcasecmp(a->string, b->string) == 0)
                    return a->string;
        const char *inner = duplicate_key(a);
        if (inner)
            return inner;
    }
    return NULL;
}

fs_trainreq_status fs_trainreq_parse(const char *buf, size_t len, fs_trainreq *out,
                                     fs_trainreq_diag *d)
{
    memset(out, 0, sizeof *out);
    out->budget_seconds = FS_TRQ_DEFAULT_BUDGET_S;
    if (!buf || len == 0)
        return trq_fail(d, FS_TRQ_EJSON, "train.json: empty file");
    if (len > TRQ_MAX_BYTES)
        return trq_fail(d, FS_TRQ_EJSON, "train.json: %zu bytes, more than a request can be", len);
    cJSON *root = NULL;
    eng_diag jd = {{0}};
    if (eng_json_parse(buf, len, "train.json", &root, &jd) != ENG_OK)
        return trq_fail(d, FS_TRQ_EJSON, "%s", jd.msg);
    fs_trainreq_status st;
    const char *dup = NULL;
    if (!cJSON_IsObject(root))
        st = trq_fail(d, FS_TRQ_EJSON, "train.json: must be a JSON object");
    else if ((dup = duplicate_key(root)) != NULL)
        st = trq_fail(d, FS_TRQ_EFIELD,
                      "train.json: \"%.64s\" is given twice; keep one (keys must be unique)", dup);
    else if (cJSON_GetObjectItemCaseSensitive(root, "trainingParameters"))
        st = trq_azure(root, out, d);
    else
        st = trq_short(root, out, d);
    cJSON_Delete(root);
    return st;
}

int fs_trainreq_format(const fs_trainreq *r, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "{\"dataset\": \"%s\", \"budget_minutes\": %.6g", r->dataset,
                     r->budget_seconds / 60.0);
    if (r->kind)
        n += snprintf(n < (int)cap ? buf + n : NULL, n < (int)cap ? cap - n : 0,
                      ", \"kind\": \"%s\"", r->kind);
    if (r->test_dataset[0])
        n += snprintf(n < (int)cap ? buf + n : NULL, n < (int)cap ? cap - n : 0,
                      ", \"test_dataset\": \"%s\"", r->test_dataset);
    n += snprintf(n < (int)cap ? buf + n : NULL, n < (int)cap ? cap - n : 0, "}");
    return n;
}
