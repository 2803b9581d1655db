/* http_analyze.c: POST /computervision/imageanalysis:analyze: the image
 * (bytes, or a URL fetched with libcurl, http and https only) lands in a
 * memfd (else a temp file of the store) and is answered by the prediction code of
 * predict/ (models.h), so both give the same JSON for the same image.
 * http_predict is that one path; Custom Vision's prediction calls
 * (http_customvision.c) reshape its answer. */
#include "area.h"
#include "http_int.h"
#include "ops.h"
#include "codes.h"
#include "engine.h" /* eng_json_parse */
#include "fetch.h"
#include "models.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Messages and paths are cut to their buffers on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- analyze ---- */

typedef struct dl {
    FILE *f;
    size_t len;
    int over;
    fs_fetch_guard guard; /* fetch.h's loopback rule */
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
    dl d = {.f = fopen(tmp, "wb")};
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
        curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, fs_fetch_prereq);
        curl_easy_setopt(c, CURLOPT_PREREQDATA, &d.guard);
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
        if (d.guard.refused_local)
            snprintf(msg, sizeof msg,
                     "the image URL was refused: a redirect from a remote server to this "
                     "machine (loopback)");
        else if (cr != CURLE_OK)
            snprintf(msg, sizeof msg, "the image URL could not be read: %s",
                     curl_easy_strerror(cr));
        else
            snprintf(msg, sizeof msg, "the image URL answered HTTP %ld", code);
        http_error(out, 400, "InvalidRequest", msg, "InvalidImageUrl");
        return -1;
    }
    return 0;
}

void http_analyze(const http_req *r, http_resp *out)
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
    http_predict(r, out, model, HTTP_IMG_BY_TYPE);
}

/* The image of the request into the temp file tmp: 0, or -1 with the
 * answer set. */
static int image_to_tmp(const http_req *r, http_resp *out, http_img_how how, const char *tmp)
{
    int json = how == HTTP_IMG_URL || (how == HTTP_IMG_BY_TYPE &&
                                       strncasecmp(r->content_type, "application/json", 16) == 0);
    if (json) {
        cJSON *j = http_body_object(r, out);
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "url");
        int rc = -1;
        if (!j)
            rc = -1;
        else if (!cJSON_IsString(u) || !u->valuestring[0])
            http_error(out, 400, "InvalidRequest", "\"url\": missing", "InvalidImageUrl");
        else
            rc = download(u->valuestring, tmp, out);
        cJSON_Delete(j);
        return rc;
    }
    if (r->len == 0) {
        http_error(out, 400, "InvalidRequest",
                   "The image size is not allowed to be zero or larger than 20971520 bytes",
                   "InvalidImageSize");
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    int bad = !f || fwrite(r->body, 1, r->len, f) != r->len;
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad) {
        http_error(out, 507, "StoreFull", "the image could not be stored", NULL);
        return -1;
    }
    return 0;
}

void http_predict(const http_req *r, http_resp *out, const char *model, http_img_how how)
{
    char dir[FS_PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "/models/%s", model);
    if (!fs_name_valid(model) || fs_tree_stat(dir, &st) != 0) {
        http_error(out, 404, "NotFound", "Resource not found", NULL);
        return;
    }
    double t0 = fs_now();
    char tmp[FS_PATH_MAX];
    /* the image lives in memory (a memfd the engine opens by its /proc
     * name), not in the store: writing, then unlinking, 300 KB on the
     * store's disk took a millisecond of each call, and more when the
     * journal was busy; the store's temp folder when that is not possible */
    int fd = memfd_create("visionfs-analyze", MFD_CLOEXEC);
    int mem = fd >= 0;
    if (mem) {
        snprintf(tmp, sizeof tmp, "/proc/self/fd/%d", fd);
        if (access(tmp, R_OK) != 0) { /* no /proc */
            close(fd);
            mem = 0;
        }
    }
    if (!mem) {
        fd = fs_tmp_create(tmp, sizeof tmp);
        if (fd < 0) {
            http_tree_error(out, fd, "analyze");
            return;
        }
        close(fd);
    }
    int bad = image_to_tmp(r, out, how, tmp) != 0;
    char *json = NULL;
    fs_code code = FS_CODE_NONE;
    double t1 = fs_now();
    int rc = bad ? 0 : fs_models_analyze(model, tmp, "the image", &json, &code);
    double t2 = fs_now();
    if (mem)
        close(fd);
    else
        unlink(tmp);
    if (fs_trace_predict())
        fs_log("trace http %s: image file %.2f ms, analyze %.2f, removal %.2f", model,
               1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (fs_now() - t2));
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
        cJSON *e = NULL;
        eng_diag d = {{0}};
        eng_json_parse(json, strlen(json), "the answer", &e, &d);
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
