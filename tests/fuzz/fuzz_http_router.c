/* fuzz_http_router.c: libFuzzer target for the REST API's router and
 * handlers: a whole request (method, path, query, headers, body) through
 * http_admit (the key and the size caps) and http_route (Image Analysis
 * and Custom Vision routes, the JSON handlers, the tree) on a real store in
 * a temp folder, with every area started as a mount starts them (and a
 * libfuse handle made but never mounted, as the daemon has one).
 *
 * An input is text shaped like an HTTP request:
 *   METHOD PATH[?QUERY]\n
 *   Header: value\n ...
 *   \n
 *   BODY
 * The path and query are %-decoded as libmicrohttpd decodes them. The key
 * the store expects is FUZZ_KEY (the seeds send it). Downloads are pointed
 * at a closed local port through curl's proxy variables, so no input
 * reaches the network. After each input the datasets and models it made
 * are removed, so inputs do not depend on each other.
 *
 * Traps when an answer has no status, an error has no body, no
 * x-ms-error-code or not the error shape of its API (Azure's {"error":
 * {"code"}}, Custom Vision's top-level {"code"}), or a 2xx body is not JSON. */
#include "area.h"
#include "http_int.h"
#include "ops.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define FUZZ_KEY "fuzzkey0123456789abcdef"
#define MAX_FIELDS 32

typedef struct field {
    char *name, *value;
} field;

typedef struct fuzz_req {
    http_req r;
    field args[MAX_FIELDS], headers[MAX_FIELDS];
    int nargs, nheaders;
} fuzz_req;

static char store[] = "/tmp/fuzz_http_router.XXXXXX";
static int started;
static struct fuse *fuse_; /* never mounted: it makes libfuse's context key,
                            * which the handlers read (NULL context), as in
                            * the daemon */

static void stop(void)
{
    fs_areas_stop();
    fuse_destroy(fuse_);
    fs_remove_tree(store);
}

static void start(void)
{
    if (started)
        return;
    started = 1;
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("https_proxy", "http://127.0.0.1:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    char *argv[] = {(char *)"fuzz_http_router", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    fuse_ = fuse_new(&args, fs_operations(), sizeof(struct fuse_operations), NULL);
    fuse_opt_free_args(&args);
    if (!fuse_ || !mkdtemp(store) || fs_store_open(store) != 0)
        abort();
    fs_areas_start();
    atexit(stop);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %XX and (for a query) '+' decoded in place. */
static void unescape(char *s, int query)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = query && *p == '+' ? ' ' : *p;
        }
    }
    *o = '\0';
}

static const char *arg_of(const http_req *r, const char *name)
{
    const fuzz_req *f = r->conn; /* the router may pass a copy of r */
    for (int i = 0; i < f->nargs; i++)
        if (strcmp(f->args[i].name, name) == 0)
            return f->args[i].value;
    return NULL;
}

static const char *header_of(const http_req *r, const char *name)
{
    const fuzz_req *f = r->conn; /* the router may pass a copy of r */
    for (int i = 0; i < f->nheaders; i++)
        if (strcasecmp(f->headers[i].name, name) == 0)
            return f->headers[i].value;
    return NULL;
}

static void parse_query(fuzz_req *f, char *q)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv && f->nargs < MAX_FIELDS;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq)
            *eq = '\0';
        unescape(kv, 1);
        f->args[f->nargs].name = kv;
        f->args[f->nargs].value = eq ? eq + 1 : (char *)"";
        if (eq)
            unescape(eq + 1, 1);
        f->nargs++;
    }
}

static int add_name(const char *name, void *arg)
{
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "/%s/%s", (const char *)arg, name);
    fs_tree_remove(path);
    return 0;
}

static void remove_all(const char *area)
{
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "/%s", area);
    fs_tree_list(path, add_name, (void *)area);
}

/* The answer must be whole and in its API's shape. */
static void check(const char *path, const http_resp *out)
{
    if (out->status < 100 || out->status > 599)
        __builtin_trap();
    if (out->status >= 400) {
        if (!out->body || !out->error_code[0])
            __builtin_trap();
        cJSON *j = cJSON_Parse(out->body);
        const cJSON *code = http_cv_path(path)
                                ? cJSON_GetObjectItemCaseSensitive(j, "code")
                                : cJSON_GetObjectItemCaseSensitive(
                                      cJSON_GetObjectItemCaseSensitive(j, "error"), "code");
        if (out->status == 401) /* APIM's body, for both APIs */
            code = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"),
                                                    "code");
        if (!cJSON_IsString(code) || !code->valuestring[0])
            __builtin_trap();
        cJSON_Delete(j);
    } else if (out->body) {
        cJSON *j = cJSON_Parse(out->body);
        if (!j)
            __builtin_trap();
        cJSON_Delete(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    start();
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    fuzz_req f;
    memset(&f, 0, sizeof f);
    f.r.conn = &f;
    /* the request line */
    char *line_end = memchr(buf, '\n', size);
    char *rest = line_end ? line_end + 1 : buf + size;
    if (line_end)
        *line_end = '\0';
    char *sp = strchr(buf, ' ');
    char root[] = "/";
    char *method = buf, *target = sp ? sp + 1 : root;
    if (sp)
        *sp = '\0';
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        parse_query(&f, q + 1);
    }
    unescape(target, 0);
    /* headers up to an empty line; the body is the rest (binary allowed) */
    size_t left = line_end ? size - (size_t)(rest - buf) : 0;
    while (left > 0 && *rest != '\n') {
        char *nl = memchr(rest, '\n', left);
        size_t n = nl ? (size_t)(nl - rest) + 1 : left;
        if (nl)
            *nl = '\0';
        char *colon = strchr(rest, ':');
        if (colon && f.nheaders < MAX_FIELDS) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            f.headers[f.nheaders].name = rest;
            f.headers[f.nheaders].value = v;
            f.nheaders++;
        }
        rest += n;
        left -= n;
    }
    if (left > 0) { /* the empty line */
        rest++;
        left--;
    }
    const char *ct = header_of(&f.r, "Content-Type");
    f.r.method = method;
    f.r.path = target;
    f.r.content_type = ct ? ct : "";
    const char *host = header_of(&f.r, "Host");
    f.r.host = host ? host : "";
    f.r.body = rest;
    f.r.len = left;
    f.r.arg = arg_of;
    f.r.header = header_of;

    http_resp out;
    memset(&out, 0, sizeof out);
    int image = 0;
    size_t max = 0;
    if (http_admit(&f.r, FUZZ_KEY, &out, &image, &max) != 0) {
        check(target, &out);
    } else if (left <= max) {
        http_route(&f.r, &out);
        check(target, &out);
    }
    free(out.body);
    free(buf);
    remove_all("datasets");
    remove_all("models");
    return 0;
}
