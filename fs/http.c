/* http.c: the HTTP server of the front door: libmicrohttpd (its thread
 * pool, connection limits and timeouts; no HTTP parsing of ours), the key,
 * body caps and Azure's error shape. What a call means is http_azure.c's.
 *
 * Design: the key is checked and a declared body size refused on the first
 * call of a request, before any body is read; bodies are collected under a
 * cap chosen by the route (images 20 MB, JSON 1 MB) and a body that grows
 * past it is drained and refused. The listening socket is bound in main
 * (fs_http_prepare) so errors reach the terminal before fuse daemonizes;
 * the server's threads start in FUSE init, after the fork. */
#include "http.h"

#include "area.h"
#include "http_int.h"
#include "jobs.h"
#include "models.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE "http-key"
#define KEY_BYTES 16 /* 32 hex digits, like an Azure key */

static int listen_fd = -1, listen_v6;
static char key[2 * KEY_BYTES + 1];
static struct MHD_Daemon *daemon_;
/* Prediction calls whose image comes by URL are routed here, off
 * libmicrohttpd's pool threads, with their connections suspended meanwhile
 * (see "prediction calls" below). */
static fs_jobq *callq;

/* ---- key ---- */

/* Reads STORE/http-key, or makes it (0600) from getrandom at first start. */
static int load_key(char *err, size_t n)
{
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/" KEY_FILE, fs_store_root());
    size_t len = 0;
    char *k = fs_read_small(path, 256, &len);
    if (k) {
        while (len && (k[len - 1] == '\n' || k[len - 1] == '\r' || k[len - 1] == ' '))
            k[--len] = '\0';
        int ok = len >= 16 && len < sizeof key;
        if (ok)
            snprintf(key, sizeof key, "%s", k);
        free(k);
        if (!ok)
            snprintf(err, n, "\"%s\": not a key (16-32 characters); remove it to get a new one",
                     KEY_FILE);
        return ok ? 0 : -1;
    }
    unsigned char raw[KEY_BYTES];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        snprintf(err, n, "getrandom: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < KEY_BYTES; i++)
        snprintf(key + 2 * i, 3, "%02x", raw[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    char line[sizeof key + 1];
    int l = snprintf(line, sizeof line, "%s\n", key);
    if (fd < 0 || write(fd, line, (size_t)l) != l || fsync(fd) != 0) {
        snprintf(err, n, "cannot write the key file \"%s\": %s", KEY_FILE, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return -1;
    }
    close(fd);
    return 0;
}

/* Compares without an early exit, so timing does not tell the key. */
static int key_ok(const char *want, const char *given)
{
    if (!given || !want || !*want)
        return 0;
    size_t kl = strlen(want), gl = strlen(given);
    unsigned diff = (unsigned)(kl ^ gl);
    for (size_t i = 0; i < kl; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff == 0;
}

/* ---- address ---- */

int fs_http_prepare(const char *addr, char *err, size_t n)
{
    char host[256] = "127.0.0.1", port[16];
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        snprintf(port, sizeof port, "%s", addr);
    } else {
        size_t hl = (size_t)(colon - addr);
        if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
            addr++;
            hl -= 2;
        }
        if (hl >= sizeof host) {
            snprintf(err, n, "--http \"%s\": host name too long", addr);
            return -1;
        }
        if (hl > 0) {
            memcpy(host, addr, hl);
            host[hl] = '\0';
        }
        snprintf(port, sizeof port, "%s", colon + 1);
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 1 || p > 65535) {
        snprintf(err, n, "--http \"%s\": expected HOST:PORT with a port 1-65535", addr);
        return -1;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        snprintf(err, n, "--http \"%s\": %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, n, "--http %s:%s: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    listen_v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (load_key(err, n) != 0) {
        close(fd);
        return -1;
    }
    listen_fd = fd;
    fs_log("http: serving Azure's API on %s:%s (key in STORE/" KEY_FILE ")", host, port);
    return 0;
}

/* ---- answers ---- */

void http_error(http_resp *out, int status, const char *code, const char *message,
                const char *inner)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (inner) {
        cJSON *in = cJSON_AddObjectToObject(e, "innererror");
        cJSON_AddStringToObject(in, "code", inner);
        cJSON_AddStringToObject(in, "message", message);
    }
    free(out->body);
    out->body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    out->status = status;
    snprintf(out->error_code, sizeof out->error_code, "%s", inner ? inner : code);
}

void http_json(http_resp *out, int status, cJSON *j)
{
    free(out->body);
    out->body = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    out->status = status;
    if (j && !out->body)
        http_error(out, 500, "InternalServerError", "out of memory", NULL);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, http_resp *r)
{
    const char *b = r->body ? r->body : "";
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
    if (!mr)
        return MHD_NO;
    if (r->body)
        MHD_add_response_header(mr, "Content-Type", "application/json; charset=utf-8");
    if (r->error_code[0])
        MHD_add_response_header(mr, "x-ms-error-code", r->error_code);
    if (r->location[0])
        MHD_add_response_header(mr, "Location", r->location);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    free(r->body);
    r->body = NULL;
    return rc;
}

/* ---- requests ---- */

typedef struct conn_state {
    char *body;
    size_t len, cap, max;
    int over;          /* the body passed max: drained, then refused */
    int refused;       /* an answer was queued on the first call */
    int image;         /* the route takes an image body */
    int call;          /* CALL_*: a prediction routed on another thread */
    http_resp out;     /* that call's answer, sent when the connection resumes */
    double t0, t1;     /* headers read, body read (fs_trace_predict) */
    double ts, tc, td; /* suspended, call started, call done (fs_trace_predict) */
} conn_state;

enum { CALL_NONE = 0, CALL_RUNNING, CALL_DONE };

static const char *arg_of(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static const char *header_of(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? v : "";
}

static void too_big(http_resp *out, const char *url, int image)
{
    if (http_cv_path(url))
        http_cv_error(out, 400, image ? "BadRequestImageSizeBytes" : "BadRequest",
                      image ? "the image is larger than 20971520 bytes"
                            : "the request body is larger than 1048576 bytes");
    else if (image)
        http_error(out, 400, "InvalidRequest",
                   "The image size is not allowed to be zero or larger than 20971520 bytes",
                   "InvalidImageSize");
    else
        http_error(out, 413, "InvalidRequest", "the request body is larger than 1048576 bytes",
                   NULL);
}

/* ---- multipart image bodies ---- */

typedef struct part {
    char *data;
    size_t len, cap;
    char key[64]; /* the form field being kept; "" until the first part */
} part;

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *ctype, const char *enc,
                               const char *data, uint64_t off, size_t size)
{
    (void)kind;
    (void)filename;
    (void)ctype;
    (void)enc;
    (void)off;
    part *p = cls;
    if (!p->key[0])
        snprintf(p->key, sizeof p->key, "%s", key ? key : "?");
    if (strcmp(p->key, key ? key : "?") != 0)
        return MHD_YES; /* the image is the first field (Azure's form has one) */
    if (p->len + size + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 65536;
        while (cap < p->len + size + 1)
            cap *= 2;
        char *nb = realloc(p->data, cap);
        if (!nb)
            return MHD_NO;
        p->data = nb;
        p->cap = cap;
    }
    memcpy(p->data + p->len, data, size);
    p->len += size;
    return MHD_YES;
}

/* A multipart/form-data body (what `curl -F` and requests' files= send) is
 * turned into the bytes of its first field by libmicrohttpd's own form
 * parser, so the handlers see an image body like any other. */
static int unwrap_multipart(struct MHD_Connection *c, conn_state *st)
{
    part p = {0};
    struct MHD_PostProcessor *pp = MHD_create_post_processor(c, 65536, on_part, &p);
    if (!pp)
        return -1;
    enum MHD_Result rc = MHD_post_process(pp, st->body ? st->body : "", st->len);
    MHD_destroy_post_processor(pp);
    if (rc != MHD_YES) {
        free(p.data);
        return -1;
    }
    free(st->body);
    st->body = p.data;
    st->len = p.len;
    st->cap = p.cap;
    return 0;
}

int http_admit(const http_req *r, const char *want_key, http_resp *out, int *image, size_t *max)
{
    const char *ct = r->content_type ? r->content_type : "";
    *image = http_route_takes_image(r->path) && strncasecmp(ct, "application/json", 16) != 0;
    *max = *image ? HTTP_IMAGE_MAX : HTTP_JSON_MAX;
    /* Custom Vision's prediction key, or Azure's subscription key */
    const char *given =
        r->header(r, http_cv_path(r->path) ? "Prediction-Key" : "Ocp-Apim-Subscription-Key");
    if (!key_ok(want_key, given)) {
        /* APIM's own words for a missing or wrong key (both services) */
        http_error(out, 401, "401",
                   "Access denied due to invalid subscription key or wrong API endpoint. Make "
                   "sure to provide a valid key for an active subscription and use a correct "
                   "regional API endpoint for your resource.",
                   NULL);
        return -1;
    }
    const char *cl = r->header(r, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > *max) {
        too_big(out, r->path, *image);
        return -1;
    }
    return 0;
}

static enum MHD_Result first_call(struct MHD_Connection *c, const char *url, conn_state *st)
{
    http_resp out = {0};
    http_req r = {0};
    r.path = url;
    r.content_type = header(c, "Content-Type");
    r.header = header_of;
    r.conn = c;
    if (http_admit(&r, key, &out, &st->image, &st->max) == 0)
        return MHD_YES;
    st->refused = 1;
    return send_resp(c, &out);
}

/* Sends out (the last call of a request), with its stage times when
 * fs_trace_predict. */
static enum MHD_Result answer(struct MHD_Connection *c, const char *url, const char *method,
                              const conn_state *st, http_resp *out)
{
    double t2 = fs_now();
    enum MHD_Result rc = send_resp(c, out);
    if (fs_trace_predict() && st->ts > 0)
        fs_log("trace http hops: suspended to call start %.2f ms, call %.2f, to resumed %.2f",
               1e3 * (st->tc - st->ts), 1e3 * (st->td - st->tc), 1e3 * (t2 - st->td));
    if (fs_trace_predict())
        fs_log("trace http %s %s: body %.2f ms (%zu bytes), handler %.2f, response queued %.2f",
               method, url, 1e3 * (st->t1 - st->t0), st->len, 1e3 * (t2 - st->t1),
               1e3 * (fs_now() - t2));
    return rc;
}

/* ---- prediction calls: off the pool threads ----
 *
 * A prediction waits for the engine (tens of milliseconds, longer behind a
 * queue) or for a download. Waiting on a libmicrohttpd pool thread stalls
 * every other connection that thread serves (4 threads on 2 cores: at 8
 * clients, p99 was 8 times the engine's). So the connection is suspended,
 * the call is routed on a thread that may block, and the answer is sent
 * when the call resumes the connection; the pool thread goes on serving
 * its other connections meanwhile.
 *
 * Which thread: the one that does the call's slow part. An image in the
 * body goes to a prediction worker (fs_models_call), which routes the call
 * and runs the engine in place: pool thread -> prediction worker -> pool
 * thread, the two hand-offs a prediction needs anyway. (Routing it on an
 * http-call thread that queued the engine job and waited for it added two
 * more, call thread and back, each a wake-up that waits for a core on a
 * loaded machine.) An image by URL goes to an http-call thread, which
 * downloads it and then waits for the engine job like any caller: a slow
 * server must not hold one of the few prediction workers. Both are jobs
 * of a queue with the same run and drop below. */

typedef struct call {
    struct MHD_Connection *c;
    conn_state *st;
    http_req r; /* strings borrowed from the connection, kept while suspended */
    int ran;
} call;

/* Calls suspended and not yet resumed; fs_http_stop waits for none. */
static pthread_mutex_t calls_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t calls_cv = PTHREAD_COND_INITIALIZER;
static int calls_live, calls_stopping;

static void call_run(void *arg)
{
    call *j = arg;
    j->ran = 1;
    j->st->tc = fs_now();
    http_route(&j->r, &j->st->out);
    if (!j->st->out.status)
        http_error(&j->st->out, 500, "InternalServerError", "no answer", NULL);
}

/* After the call ran, or instead of it (the server is stopping): resumes
 * the connection, whose handler then sends st->out. */
static void call_done(void *arg)
{
    call *j = arg;
    if (!j->ran)
        http_error(&j->st->out, 503, "ServiceUnavailable", "the mount is stopping", NULL);
    j->st->td = fs_now();
    j->st->call = CALL_DONE;
    MHD_resume_connection(j->c); /* st is the connection's again */
    free(j);
    pthread_mutex_lock(&calls_mu);
    if (--calls_live == 0)
        pthread_cond_broadcast(&calls_cv);
    pthread_mutex_unlock(&calls_mu);
}

/* 0 when the call was handed to a thread (the connection suspended); -1:
 * the caller routes it on this thread. */
static int call_start(struct MHD_Connection *c, conn_state *st, const http_req *r)
{
    call *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->c = c;
    j->st = st;
    j->r = *r;
    st->call = CALL_RUNNING;
    st->ts = fs_now();
    MHD_suspend_connection(c);
    /* counted before the push (the call may be done before it returns);
     * under calls_mu, so fs_http_stop sees every call it must wait for and
     * no push reaches callq once it stops */
    pthread_mutex_lock(&calls_mu);
    int ok = !calls_stopping;
    if (ok) {
        calls_live++;
        ok = st->image ? fs_models_call(call_run, call_done, j) == 0
                       : callq && fs_jobq_push(callq, 0, call_run, call_done, j) == FS_JOBQ_OK;
        if (!ok)
            calls_live--;
    }
    pthread_mutex_unlock(&calls_mu);
    if (!ok) {
        st->call = CALL_NONE;
        st->ts = 0;
        MHD_resume_connection(c);
        free(j);
        return -1;
    }
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    conn_state *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        *con_cls = st;
        st->t0 = fs_now();
        return first_call(c, url, st);
    }
    if (st->refused) {
        *upload_size = 0; /* drained; the answer is already queued */
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (st->over || st->len + n > st->max) {
            st->over = 1;
            return MHD_YES;
        }
        if (st->len + n + 1 > st->cap) {
            size_t cap = st->cap ? st->cap : 65536;
            while (cap < st->len + n + 1)
                cap *= 2;
            char *nb = realloc(st->body, cap);
            if (!nb)
                return MHD_NO;
            st->body = nb;
            st->cap = cap;
        }
        memcpy(st->body + st->len, upload, n);
        st->len += n;
        return MHD_YES;
    }
    if (st->call == CALL_RUNNING)
        return MHD_YES; /* not resumed yet (libmicrohttpd may ask again) */
    if (st->call == CALL_DONE)
        return answer(c, url, method, st, &st->out);
    http_resp out = {0};
    st->t1 = fs_now();
    const char *ctype = header(c, "Content-Type");
    if (!st->over && st->image && strncasecmp(ctype, "multipart/form-data", 19) == 0) {
        if (unwrap_multipart(c, st) != 0)
            http_error(&out, 400, "InvalidRequest", "the multipart/form-data body is malformed",
                       NULL);
        ctype = "application/octet-stream";
    }
    if (out.status) {
        /* answered already */
    } else if (st->over) {
        too_big(&out, url, st->image);
    } else {
        http_req r = {0};
        r.method = method;
        r.path = url;
        r.content_type = ctype;
        r.host = header(c, "Host");
        r.body = st->body ? st->body : "";
        if (st->body)
            st->body[st->len] = '\0';
        r.len = st->len;
        r.arg = arg_of;
        r.header = header_of;
        r.conn = c;
        if (http_route_predicts(url) && call_start(c, st, &r) == 0)
            return MHD_YES; /* answered when the call resumes the connection */
        http_route(&r, &out);
        if (!out.status)
            http_error(&out, 500, "InternalServerError", "no answer", NULL);
    }
    return answer(c, url, method, st, &out);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    conn_state *st = *con_cls;
    if (st) {
        free(st->body);
        free(st->out.body);
        free(st);
    }
    *con_cls = NULL;
}

void fs_http_start(void)
{
    if (listen_fd < 0 || daemon_)
        return;
    unsigned pool = (unsigned)(fs_ncpu() * 2 < 4 ? 4 : fs_ncpu() * 2);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (listen_v6)
        flags |= MHD_USE_IPv6;
    /* prediction calls by URL download and wait on call threads (the
     * prediction queue caps how many images the engine works on); if the
     * call threads cannot start, they wait on the pool threads */
    pthread_mutex_lock(&calls_mu);
    calls_stopping = 0;
    pthread_mutex_unlock(&calls_mu);
    int ncall = fs_ncpu() * 4 < 8 ? 8 : fs_ncpu() * 4;
    callq = fs_jobq_new("http-call", ncall);
    if (callq && fs_jobq_start(callq) != FS_JOBQ_OK) {
        fs_jobq_free(callq);
        callq = NULL;
    }
    /* connections are limited so a flood of idle ones cannot exhaust file
     * descriptors, and an idle connection is closed after a minute (a slow
     * client holds no thread meanwhile) */
    daemon_ =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET,
                         listen_fd, MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!daemon_)
        fs_log("http: the server did not start (libmicrohttpd refused the options)");
}

void fs_http_stop(void)
{
    /* every suspended connection resumed (answered, or 503 for a call not
     * started) before libmicrohttpd stops; the prediction workers are
     * still there (the models area stops after this) */
    pthread_mutex_lock(&calls_mu);
    calls_stopping = 1;
    pthread_mutex_unlock(&calls_mu);
    fs_models_call_cancel();
    fs_jobq_free(callq);
    callq = NULL;
    pthread_mutex_lock(&calls_mu);
    while (calls_live > 0)
        pthread_cond_wait(&calls_cv, &calls_mu);
    pthread_mutex_unlock(&calls_mu);
    if (daemon_)
        MHD_stop_daemon(daemon_); /* also closes the listening socket */
    else if (listen_fd >= 0)
        close(listen_fd);
    daemon_ = NULL;
    listen_fd = -1;
}
