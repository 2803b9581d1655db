/* http_util.c: what the Azure handlers share: errno to HTTP answers,
 * request bodies with Azure's key spelling made canonical, reading the
 * tree's generated JSON, and skip/top listing of a folder. */
#include "area.h"
#include "engine.h" /* eng_json_parse */
#include "models_recipe.h"
#include "http_int.h"
#include "ops.h"

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

#define BASE "/computervision"
#define MAX_TOP 30

/* ---- helpers ---- */

/* An errno from the tree as an HTTP answer. */
void http_tree_error(http_resp *out, int rc, const char *what)
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
static void http_canonicalise(cJSON *j)
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
            const fs_recipe *k = fs_recipe_for_azure_kind(it->valuestring);
            if (k)
                cJSON_SetValuestring(it, k->azure_kind);
        }
        if ((cJSON_IsObject(it) || cJSON_IsArray(it)) &&
            !(it->string && strcmp(it->string, "customProperties") == 0))
            http_canonicalise(it);
    }
}

/* The request body as a JSON object with canonical keys, or NULL with the
 * answer set. */
cJSON *http_body_object(const http_req *r, http_resp *out)
{
    cJSON *j = NULL;
    eng_diag d = {{0}};
    if (eng_json_parse(r->body, r->len, "the request body", &j, &d) != ENG_OK ||
        !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        http_error(out, 400, "InvalidRequest", j ? "the request body is not a JSON object" : d.msg,
                   NULL);
        return NULL;
    }
    http_canonicalise(j);
    return j;
}

static void iso_time(time_t t, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void http_add_time(cJSON *o, const char *key, time_t t)
{
    char b[32];
    iso_time(t, b, sizeof b);
    cJSON_AddStringToObject(o, key, b);
}

/* A generated or written file of the tree, parsed; NULL when absent. */
cJSON *http_tree_json(const char *fmt, const char *name)
{
    char path[FS_PATH_MAX], *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, fmt, name);
    if (fs_tree_read(path, 16 << 20, &buf, &len) != 0)
        return NULL;
    cJSON *j = NULL;
    eng_diag d = {{0}};
    eng_json_parse(buf, len, path, &j, &d); /* a file a user may have written */
    free(buf);
    return j;
}

/* The first line of a generated one-line file; "" when absent. */
void http_tree_line(const char *fmt, const char *name, char *out, size_t n)
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

time_t http_mtime_of(const char *fmt, const char *name, time_t dflt)
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
void http_list(const http_req *r, http_resp *out, const char *area, const char *owner,
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
        http_tree_error(out, rc, area);
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

int http_method_is(const http_req *r, const char *m) { return strcmp(r->method, m) == 0; }

void http_not_allowed(http_resp *out)
{
    http_error(out, 405, "InvalidRequest", "this method is not served on this path", NULL);
}
