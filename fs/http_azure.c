/* http_azure.c: the router of Azure Image Analysis 4.0's model
 * customization API (api-version 2023-02-01-preview and 2023-04-01-preview)
 * on the tree: api-version, path and method to a handler of
 * http_datasets.c, http_models.c or http_analyze.c.
 *
 * Design: every call is the file operation a user would make through the
 * mount (ops.h fs_tree_*): PUT datasets/N is mkdir datasets/N plus writing
 * dataset.json; PUT models/N is mkdir models/N plus writing train.json;
 * GET reads the generated status.json and evaluation.json; DELETE is rm -r;
 * :cancel removes train.json. The areas' own validation decides what is
 * accepted, so nothing here re-implements a rule of the tree. Request keys
 * are matched without case (Microsoft's sample client sends PascalCase)
 * and rewritten to the camelCase the tree's parsers read. Analyze runs the
 * image through the same prediction code as predict/ (models.h).
 * /customvision/ paths go to http_customvision.c. */
#include "area.h"
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

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define BASE "/computervision"

static const char *const api_versions[] = {"2022-10-12-preview", "2023-02-01-preview",
                                           "2023-04-01-preview", "2023-07-01-preview"};

/* ---- routing ---- */

static cJSON *model_item(const char *owner, const char *name)
{
    (void)owner;
    return http_model_json(name);
}

static cJSON *dataset_item(const char *owner, const char *name)
{
    (void)owner;
    return http_dataset_json(name);
}

/* path with runs of '/' made one, as Azure's gateway took them (Microsoft's
 * sample EvaluationClient sends /computervision//models/...); 0 when it
 * does not fit out. */
static int squeeze(const char *path, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = path; *p; p++) {
        if (*p == '/' && o > 0 && out[o - 1] == '/')
            continue;
        if (o + 1 >= n)
            return 0;
        out[o++] = *p;
    }
    out[o] = '\0';
    return 1;
}

int http_route_takes_image(const char *path)
{
    char clean[2048];
    if (!squeeze(path, clean, sizeof clean))
        return 0;
    return strcmp(clean, BASE "/imageanalysis:analyze") == 0 || http_cv_takes_image(clean);
}

int http_route_predicts(const char *path)
{
    char clean[2048];
    if (!squeeze(path, clean, sizeof clean))
        return 0;
    return strcmp(clean, BASE "/imageanalysis:analyze") == 0 || http_cv_predicts(clean);
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
        if (!models || strcmp(op, "cancel") != 0 || !http_method_is(r, "POST")) {
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
            http_tree_error(out, rc, "cancel");
        else
            http_json(out, 202, NULL);
        return;
    }
    if (http_method_is(r, "PUT")) {
        if (models)
            http_model_put(r, out, nm);
        else
            http_dataset_put(r, out, nm);
    } else if (http_method_is(r, "GET")) {
        cJSON *o = models ? http_model_json(nm) : http_dataset_json(nm);
        if (o)
            http_json(out, 200, o);
        else
            http_error(out, 404, "NotFound", "Resource not found", NULL);
    } else if (http_method_is(r, "PATCH") && !models) {
        http_dataset_patch(r, out, nm);
    } else if (http_method_is(r, "DELETE")) {
        if (!models && !http_dataset_if_match(r, out, nm))
            return;
        int rc = fs_tree_remove(dir);
        if (rc == -ENOENT)
            http_error(out, 404, "NotFound", "Resource not found", NULL);
        else if (rc)
            http_tree_error(out, rc, area);
        else
            http_json(out, 204, NULL);
    } else {
        http_not_allowed(out);
    }
}

void http_route(const http_req *in, http_resp *out)
{
    char clean[2048];
    if (!squeeze(in->path, clean, sizeof clean)) {
        if (http_cv_path(in->path))
            http_cv_error(out, 404, "NotFound", "Resource not found: the path is too long");
        else
            http_error(out, 404, "NotFound", "Resource not found", NULL);
        return;
    }
    http_req copy = *in;
    copy.path = clean;
    const http_req *r = &copy;
    if (http_cv_path(r->path)) {
        http_customvision(r, out); /* no api-version: the version is in the path */
        return;
    }
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
        if (http_method_is(r, "POST"))
            http_analyze(r, out);
        else
            http_not_allowed(out);
        return;
    }
    const char *areas[] = {"datasets", "models"};
    for (size_t i = 0; i < 2; i++) {
        size_t al = strlen(areas[i]);
        if (strncmp(p, areas[i], al) != 0)
            continue;
        const char *rest = p + al;
        if (*rest == '\0' || strcmp(rest, "/") == 0) {
            if (http_method_is(r, "GET"))
                http_list(r, out, areas[i], NULL, i ? model_item : dataset_item);
            else
                http_not_allowed(out);
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
                http_evaluations(r, out, model, NULL);
                return;
            }
            if (*tail == '/' && !strchr(tail + 1, '/')) {
                http_evaluations(r, out, model, tail + 1);
                return;
            }
        }
    }
    http_error(out, 404, "NotFound", "Resource not found", NULL);
}
