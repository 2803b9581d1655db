/* http_customvision.c: Custom Vision Prediction v3.0 and v3.1 on the tree:
 * POST /customvision/v3.{0,1}/Prediction/{projectId}/classify|detect/
 * iterations/{publishedName}/image|url[/nostore], answered in Custom
 * Vision's shape with Custom Vision's top-level {"code", "message"} errors.
 *
 * Design: publishedName is the name of a model in models/, and projectId
 * may be any GUID (visionfs has no projects; the answer echoes it). The
 * answer is predict/IMAGE.json's (http_predict, the one prediction path)
 * reshaped: tagsResult or objectsResult values become predictions with the
 * same probabilities and order, and a pixel box {x, y, w, h} becomes
 * {left, top, width, height} divided by the image's width and height.
 * tagId and iteration are GUIDs derived from the model's name with its tag
 * or version, so they are stable across calls and remounts; id is random
 * per call. /nostore is the same call: nothing is ever stored. Paths are
 * matched without case, as scripts spell them both ways. */
#include "area.h"
#include "engine.h" /* eng_json_parse */
#include "http_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* Messages are cut to their buffers on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define CV_BASE "/customvision/"
#define CV_FORM                                                                                    \
    "POST /customvision/v3.0|v3.1/Prediction/{projectId}/classify|detect/iterations/"              \
    "{publishedName}/image|url[/nostore]"

typedef struct cv_route {
    char project[128];
    char model[128];
    int detect;  /* detect/ rather than classify/ */
    int url;     /* url rather than image */
    int nostore; /* the /nostore variant */
} cv_route;

int http_cv_path(const char *path)
{
    while (path[0] == '/' && path[1] == '/') /* http_route reads "//" as "/" */
        path++;
    return strncasecmp(path, CV_BASE, strlen(CV_BASE)) == 0;
}

/* Splits path into its Custom Vision prediction route; 0 when it is not
 * one. */
static int cv_parse(const char *path, cv_route *rt)
{
    memset(rt, 0, sizeof *rt);
    if (!http_cv_path(path) || strlen(path) >= 1024)
        return 0;
    char buf[1024], *seg[9];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", path + strlen(CV_BASE));
    for (char *p = buf; n < 9;) {
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    if (n < 7 || n > 8 || strchr(seg[n - 1], '/'))
        return 0;
    for (int i = 0; i < n; i++)
        if (!seg[i][0])
            return 0;
    if ((strcasecmp(seg[0], "v3.0") && strcasecmp(seg[0], "v3.1")) ||
        strcasecmp(seg[1], "prediction") || strcasecmp(seg[4], "iterations"))
        return 0;
    if (strcasecmp(seg[3], "detect") == 0)
        rt->detect = 1;
    else if (strcasecmp(seg[3], "classify") != 0)
        return 0;
    if (strcasecmp(seg[6], "url") == 0)
        rt->url = 1;
    else if (strcasecmp(seg[6], "image") != 0)
        return 0;
    if (n == 8) {
        if (strcasecmp(seg[7], "nostore") != 0)
            return 0;
        rt->nostore = 1;
    }
    if (strlen(seg[2]) >= sizeof rt->project || strlen(seg[5]) >= sizeof rt->model)
        return 0;
    snprintf(rt->project, sizeof rt->project, "%s", seg[2]);
    snprintf(rt->model, sizeof rt->model, "%s", seg[5]);
    return 1;
}

int http_cv_predicts(const char *path)
{
    cv_route rt;
    return cv_parse(path, &rt);
}

int http_cv_takes_image(const char *path)
{
    cv_route rt;
    return cv_parse(path, &rt) && !rt.url;
}

void http_cv_error(http_resp *out, int status, const char *code, const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "code", code);
    cJSON_AddStringToObject(root, "message", message);
    free(out->body);
    out->body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    out->status = status;
    snprintf(out->error_code, sizeof out->error_code, "%s", code);
}

/* ---- GUIDs ---- */

static int guid_ok(const char *s)
{
    static const int dash[] = {8, 13, 18, 23};
    if (strlen(s) != 36)
        return 0;
    for (int i = 0, d = 0; i < 36; i++) {
        if (d < 4 && i == dash[d]) {
            if (s[i] != '-')
                return 0;
            d++;
        } else if (!strchr("0123456789abcdefABCDEF", s[i])) {
            return 0;
        }
    }
    return 1;
}

static void guid_format(const unsigned char b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

/* A stable GUID for the text a + "\n" + b: two 64-bit FNV-1a hashes with
 * different seeds, marked as an RFC 9562 version 8 (custom) GUID. Not a
 * secret; only stable and unlikely to collide within a store. */
static void guid_of(const char *a, const char *b, char out[37])
{
    uint64_t h[2] = {14695981039346656037ULL, 0x9e3779b97f4a7c15ULL};
    for (int k = 0; k < 2; k++) {
        const char *parts[] = {a, "\n", b};
        for (int p = 0; p < 3; p++)
            for (const unsigned char *c = (const unsigned char *)parts[p]; *c; c++) {
                h[k] ^= *c;
                h[k] *= 1099511628211ULL;
            }
    }
    unsigned char raw[16];
    for (int i = 0; i < 8; i++) {
        raw[i] = (unsigned char)(h[0] >> (56 - 8 * i));
        raw[8 + i] = (unsigned char)(h[1] >> (56 - 8 * i));
    }
    raw[6] = (unsigned char)((raw[6] & 0x0f) | 0x80);
    raw[8] = (unsigned char)((raw[8] & 0x3f) | 0x80);
    guid_format(raw, out);
}

static void guid_random(char out[37])
{
    unsigned char raw[16] = {0};
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* not a secret: a clock-based id is good enough */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(raw, &ts, sizeof ts < sizeof raw ? sizeof ts : sizeof raw);
    }
    raw[6] = (unsigned char)((raw[6] & 0x0f) | 0x40);
    raw[8] = (unsigned char)((raw[8] & 0x3f) | 0x80);
    guid_format(raw, out);
}

/* ---- answers ---- */

static double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void add_prediction(cJSON *arr, const char *model, const cJSON *tag)
{
    char id[37];
    const char *name = str_of(tag, "name");
    guid_of(model, name, id);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "probability", num_of(tag, "confidence"));
    cJSON_AddStringToObject(p, "tagId", id);
    cJSON_AddStringToObject(p, "tagName", name);
    cJSON_AddItemToArray(arr, p);
}

/* Custom Vision's ImagePrediction from predict/IMAGE.json's content ia. */
static cJSON *cv_answer(const cv_route *rt, const cJSON *ia)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ia, "metadata");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(ia, "customModelResult");
    double w = num_of(meta, "width"), h = num_of(meta, "height");
    char id[37], iter[37];
    guid_random(id);
    guid_of(rt->model, str_of(ia, "modelVersion"), iter);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "project", rt->project);
    cJSON_AddStringToObject(o, "iteration", iter);
    http_add_time(o, "created", time(NULL));
    cJSON *arr = cJSON_AddArrayToObject(o, "predictions");
    const cJSON *v;
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(res, "tagsResult"), "values");
    cJSON_ArrayForEach(v, tags) add_prediction(arr, rt->model, v);
    const cJSON *objs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(res, "objectsResult"), "values");
    cJSON_ArrayForEach(v, objs)
    {
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(v, "boundingBox");
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(v, "tags"))
        {
            add_prediction(arr, rt->model, t);
            cJSON *box = cJSON_AddObjectToObject(
                cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1), "boundingBox");
            cJSON_AddNumberToObject(box, "left", w > 0 ? num_of(bb, "x") / w : 0.0);
            cJSON_AddNumberToObject(box, "top", h > 0 ? num_of(bb, "y") / h : 0.0);
            cJSON_AddNumberToObject(box, "width", w > 0 ? num_of(bb, "w") / w : 0.0);
            cJSON_AddNumberToObject(box, "height", h > 0 ? num_of(bb, "h") / h : 0.0);
        }
    }
    return o;
}

/* An Image Analysis error of http_predict in Custom Vision's words. */
static void cv_from_azure_error(const cv_route *rt, http_resp *out)
{
    char msg[1024] = "", code[64];
    snprintf(code, sizeof code, "%s", out->error_code);
    cJSON *e = NULL;
    eng_diag d = {{0}};
    if (out->body)
        eng_json_parse(out->body, strlen(out->body), "the answer", &e, &d);
    const cJSON *m =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "error"), "message");
    snprintf(msg, sizeof msg, "%s", cJSON_IsString(m) ? m->valuestring : "the prediction failed");
    cJSON_Delete(e);
    int status = out->status;
    const char *cv = status >= 500 ? "InternalServerError" : "BadRequest";
    if (strcmp(code, "InvalidImageSize") == 0) {
        cv = "BadRequestImageSizeBytes";
    } else if (strcmp(code, "InvalidImageUrl") == 0) {
        cv = "BadRequestImageUrl";
    } else if (strcmp(code, "InvalidImageFormat") == 0 || strcmp(code, "InvalidImage") == 0) {
        cv = "BadRequestImageFormat";
    } else if (strcmp(code, "NotFound") == 0) {
        cv = "NotFoundIteration";
        snprintf(msg, sizeof msg,
                 "no model \"%s\" in models/: publishedName is the name of a model of the mount",
                 rt->model);
    } else if (strcmp(code, "modelNotFound") == 0) {
        cv = "NotFoundIteration";
    } else if (strcmp(code, "ServiceUnavailable") == 0 || strcmp(code, "StoreFull") == 0) {
        cv = code;
    }
    http_cv_error(out, status, cv, msg);
}

void http_customvision(const http_req *r, http_resp *out)
{
    cv_route rt;
    if (!cv_parse(r->path, &rt)) {
        http_cv_error(out, 404, "NotFound", "Resource not found: visionfs serves " CV_FORM);
        return;
    }
    if (!http_method_is(r, "POST")) {
        http_cv_error(out, 405, "BadRequestNotSupported",
                      "this method is not served on this path: use POST");
        return;
    }
    char msg[512];
    if (!guid_ok(rt.project)) {
        snprintf(msg, sizeof msg,
                 "projectId \"%.64s\" is not a GUID: visionfs takes any GUID there and finds the "
                 "model by publishedName",
                 rt.project);
        http_cv_error(out, 400, "BadRequestInvalidIds", msg);
        return;
    }
    if (!fs_name_valid(rt.model)) {
        http_cv_error(out, 400, "BadRequestInvalidPublishName",
                      "publishedName is the name of a model of the mount: 1-64 characters of "
                      "A-Za-z0-9._- not starting with '.'");
        return;
    }
    http_predict(r, out, rt.model, rt.url ? HTTP_IMG_URL : HTTP_IMG_BYTES);
    if (out->status != 200) {
        cv_from_azure_error(&rt, out);
        return;
    }
    cJSON *ia = NULL;
    eng_diag d = {{0}};
    eng_json_parse(out->body, strlen(out->body), "the answer", &ia, &d);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(ia, "customModelResult");
    int detector = cJSON_GetObjectItemCaseSensitive(res, "objectsResult") != NULL;
    if (!ia) {
        http_cv_error(out, 500, "InternalServerError", "the prediction did not parse");
    } else if (detector != rt.detect) {
        snprintf(msg, sizeof msg, "model \"%s\" is %s: call .../%s/iterations/%s/%s instead",
                 rt.model, detector ? "an object detector" : "a classifier",
                 detector ? "detect" : "classify", rt.model, rt.url ? "url" : "image");
        http_cv_error(out, 400, "BadRequestNotSupported", msg);
    } else {
        http_json(out, 200, cv_answer(&rt, ia));
    }
    cJSON_Delete(ia);
}
