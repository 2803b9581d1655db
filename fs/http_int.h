/* http_int.h: what the HTTP server core (http.c) and the API handlers
 * (http_azure.c) share: a request as the handlers see it, and the answer
 * they fill in. Handlers never touch libmicrohttpd; http.c never knows an
 * endpoint. */
#ifndef VFS_FS_HTTP_INT_H
#define VFS_FS_HTTP_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* JSON bodies are capped at 1 MB, images at 20 MB (Azure's limit). */
#define HTTP_JSON_MAX ((size_t)1 << 20)
#define HTTP_IMAGE_MAX ((size_t)20971520)

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
/* Answers one request (the whole body read). */
void http_route(const http_req *r, http_resp *out);

/* Azure's error body {"error": {"code", "message", "innererror"?}} with
 * x-ms-error-code; inner may be NULL. */
void http_error(http_resp *out, int status, const char *code, const char *message,
                const char *inner);
/* A JSON answer; takes j (deleted here). */
void http_json(http_resp *out, int status, cJSON *j);

#endif
