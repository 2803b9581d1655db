/* http_datasets.c: /computervision/datasets/{name}: a dataset is a folder
 * of datasets/, and its registration body is its dataset.json, written
 * (PUT, PATCH) through the tree as a user would, so the datasets area
 * validates and fetches it exactly as for a dataset.json copied in. */
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

/* Messages and paths are cut to their buffers on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

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
int http_dataset_if_match(const http_req *r, http_resp *out, const char *name)
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
cJSON *http_dataset_json(const char *name)
{
    char dir[FS_PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "/datasets/%s", name);
    if (fs_tree_stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    cJSON *o = http_tree_json("/datasets/%s/dataset.json", name);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
        char line[512];
        http_tree_line("/datasets/%s/status", name, line, sizeof line);
        cJSON_AddStringToObject(o, "annotationKind",
                                strstr(line, "(detection)")    ? "imageObjectDetection"
                                : strstr(line, "(multilabel)") ? "imageMultilabelClassification"
                                                               : "imageClassification");
        cJSON_AddArrayToObject(o, "annotationFileUris");
    }
    cJSON_DeleteItemFromObject(o, "name");
    cJSON_AddStringToObject(o, "name", name);
    time_t made = http_mtime_of("/datasets/%s/dataset.json", name, st.st_mtime);
    time_t changed = http_mtime_of("/datasets/%s/status", name, made);
    http_add_time(o, "createdDateTime", made);
    http_add_time(o, "updatedDateTime", changed > made ? changed : made);
    char etag[64];
    dataset_etag(name, etag, sizeof etag);
    cJSON_AddStringToObject(o, "eTag", etag);
    return o;
}

void http_dataset_put(const http_req *r, http_resp *out, const char *name)
{
    cJSON *j = http_body_object(r, out);
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
        http_tree_error(out, rc, "datasets");
        return;
    }
    http_json(out, 201, http_dataset_json(name));
}

/* PATCH: the registration body with the given keys replaced, written again
 * as dataset.json (what a user's editor would do); If-Match is checked. */
void http_dataset_patch(const http_req *r, http_resp *out, const char *name)
{
    char file[FS_PATH_MAX], why[512];
    struct stat st;
    snprintf(file, sizeof file, "/datasets/%s", name);
    if (fs_tree_stat(file, &st) != 0) {
        http_error(out, 404, "NotFound", "Resource not found", NULL);
        return;
    }
    if (!http_dataset_if_match(r, out, name))
        return;
    cJSON *patch = http_body_object(r, out);
    if (!patch)
        return;
    cJSON *cur = http_tree_json("/datasets/%s/dataset.json", name);
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
        http_tree_error(out, rc, "datasets");
    else
        http_json(out, 200, http_dataset_json(name));
}
