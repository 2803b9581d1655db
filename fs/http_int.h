/* http_int.h: what the HTTP server core (http.c) and the API handlers
 * (http_azure.c) share: a request as the handlers see it, and the answer
 * they fill in. Handlers never touch libmicrohttpd; http.c never knows an
 * endpoint. */
#ifndef VFS_FS_HTTP_INT_H
#define VFS_FS_HTTP_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <time.h>

#include "imglimits.h"

/* JSON bodies are capped at 1 MB, images by the table of image limits. */
#define HTTP_JSON_MAX ((size_t)1 << 20)
#define HTTP_IMAGE_MAX ((size_t)IMG_MAX_BYTES)

typedef struct http_req {
    const char *method;       /* "GET", "PUT", ... */
    const char *path;         /* decoded URL path, no query */
    const char *content_type; /* "" when none */
    const char *host;         /* the Host header, "" when none */
    const char *body;         /* NUL terminated; borrowed */
    size_t len;
    /* a query argument, NULL when absent */
    const char *(*arg)(const struct http_req *r, const char *name);
    /* a request header (any case), NULL when absent */
    const char *(*header)(const struct http_req *r, const char *name);
    void *conn; /* for arg */
} http_req;

typedef struct http_resp {
    int status;
    char *body;          /* JSON, owned (free); NULL for no body */
    char error_code[64]; /* x-ms-error-code when an error */
    char location[512];  /* a Location header, "" for none */
} http_resp;

/* 1 when path is one of the image routes, whose bodies may be 20 MB. */
int http_route_takes_image(const char *path);
/* 1 when path is a prediction route (analyze, Custom Vision's classify and
 * detect, image or URL): its answer waits for the engine (or a download),
 * so http.c suspends the connection and routes it on another thread. */
int http_route_predicts(const char *path);
/* The first look at a request, before any body is read: the key (r's
 * Ocp-Apim-Subscription-Key header, or Prediction-Key under /customvision/)
 * must be want_key, and a declared Content-Length must fit the route's cap.
 * 0 to go on, with *image (the route takes an image body) and *max (the
 * cap); -1 with the answer (401, or the size error) in out. */
int http_admit(const http_req *r, const char *want_key, http_resp *out, int *image, size_t *max);
/* Answers one request (the whole body read). Runs of '/' in the path count
 * as one, as Azure's gateway took them. */
void http_route(const http_req *r, http_resp *out);

/* Azure's error body {"error": {"code", "message", "innererror"?}} with
 * x-ms-error-code; inner may be NULL. */
void http_error(http_resp *out, int status, const char *code, const char *message,
                const char *inner);
/* A JSON answer; takes j (deleted here). */
void http_json(http_resp *out, int status, cJSON *j);

/* ---- shared by the handlers (http_util.c) ---- */

/* An errno of the tree as an answer (ENOENT 404, EEXIST 409, EINVAL 400 ...). */
void http_tree_error(http_resp *out, int rc, const char *what);
/* The body as a JSON object with Azure's keys in camelCase (Azure matched
 * keys without case) and modelKind spelled as the kinds' table; NULL with
 * a 400 answer set. Free with cJSON_Delete. */
cJSON *http_body_object(const http_req *r, http_resp *out);
/* Adds key: t as ISO 8601 UTC. */
void http_add_time(cJSON *o, const char *key, time_t t);
/* The tree file printf(fmt, name), parsed; NULL when absent or not JSON. */
cJSON *http_tree_json(const char *fmt, const char *name);
/* The first line of the tree file printf(fmt, name); "" when absent. */
void http_tree_line(const char *fmt, const char *name, char *out, size_t n);
/* The mtime of the tree file printf(fmt, name), or dflt. */
time_t http_mtime_of(const char *fmt, const char *name, time_t dflt);
/* Answers {"value": [item(owner, NAME)...], "nextLink"?} for the folder
 * /folder of the tree, names sorted, with skip and top (1-30). */
void http_list(const http_req *r, http_resp *out, const char *folder, const char *owner,
               cJSON *(*item)(const char *owner, const char *name));
int http_method_is(const http_req *r, const char *m);
void http_not_allowed(http_resp *out);

/* ---- the resources (http_datasets.c, http_models.c, http_analyze.c) ---- */

/* Azure's Dataset / Model for an item of the tree; NULL when none. */
cJSON *http_dataset_json(const char *name);
cJSON *http_model_json(const char *name);
/* If-Match (when given) must be the dataset's eTag or "*"; else 0 and 412. */
int http_dataset_if_match(const http_req *r, http_resp *out, const char *name);
void http_dataset_put(const http_req *r, http_resp *out, const char *name);
void http_dataset_patch(const http_req *r, http_resp *out, const char *name);
void http_model_put(const http_req *r, http_resp *out, const char *name);
/* /models/MODEL/evaluations[/NAME] (name NULL: the list). */
void http_evaluations(const http_req *r, http_resp *out, const char *model, const char *name);
void http_analyze(const http_req *r, http_resp *out);

/* How a prediction call gives its image: by Content-Type (JSON {"url"} or
 * bytes; Image Analysis), always JSON {"url"}, always bytes (Custom
 * Vision's /url and /image routes). */
typedef enum http_img_how { HTTP_IMG_BY_TYPE, HTTP_IMG_URL, HTTP_IMG_BYTES } http_img_how;
/* The image of r answered by model exactly as predict/ answers it
 * (fs_models_analyze): 200 with predict/IMAGE.json's content as the body,
 * or Azure's error shape (404 for an unknown model, 400 InvalidRequest
 * with the inner code for image problems). */
void http_predict(const http_req *r, http_resp *out, const char *model, http_img_how how);

/* ---- Custom Vision Prediction v3.0/v3.1 (http_customvision.c) ---- */

/* 1 when path is under /customvision/ (any case): its answers and errors
 * use Custom Vision's shapes. */
int http_cv_path(const char *path);
/* 1 when path is any Custom Vision prediction route. */
int http_cv_predicts(const char *path);
/* 1 when path is a Custom Vision /image route (bodies up to 20 MB). */
int http_cv_takes_image(const char *path);
/* Custom Vision's error body {"code", "message"}. */
void http_cv_error(http_resp *out, int status, const char *code, const char *message);
void http_customvision(const http_req *r, http_resp *out);

#endif
