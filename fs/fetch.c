/* fetch.c: the downloader behind datasets/: images and annotation files by
 * URL, one curl multi handle on one fetch thread (see fetch.h).
 *
 * Design: jobs live in a hash table keyed by destination path (so the
 * verifier, which asks about every missing image on every pass, gets an
 * answer in O(1) and never queues a file twice) and in a FIFO queue until
 * the fetch thread takes them. The fetch thread owns the easy handles and
 * the temp files; everyone else only touches job records under fetch_lock.
 * A finished download is probed as an image before it is renamed into the
 * dataset, so a text or HTML body never lands there: it is reported as a
 * failed download of that image. Failure reasons are interned strings that
 * live as long as the process, so the verifier can hold them without copies
 * while jobs come and go.
 * Lock order: fetch_lock is a leaf (no call into datasets/ or curl while it
 * is held; curl_multi_wakeup is the one exception: it takes no lock of ours,
 * and holding the lock keeps the multi handle alive during the call).
 */
#include "fetch_int.h"

#include "area.h"
#include "engine.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HASH_BUCKETS 65536
#define MAX_INTERNED 2048

pthread_mutex_t fetch_lock = PTHREAD_MUTEX_INITIALIZER;
static fetch_job **table;
static fetch_job *q_head, *q_tail; /* JOB_QUEUED, FIFO */
static fetch_job *waiting;         /* JOB_WAIT: retry after not_before */
dsjson *fetch_dsjsons;
unsigned fetch_dsj_gen;
static CURLM *multi;
static pthread_t thread;
int fetch_running, fetch_stopping;
static fs_fetch_opts opts;
/* Told when a download of a dataset lands or fails for good (the datasets
 * area re-verifies it); set at start, kept after stop. */
static _Atomic(fs_fetch_changed_fn) changed_fn;
/* the current burst of downloads, for the log (fetch thread only) */
static double burst_start, burst_last;
static long burst_ok, burst_failed;

/* ---- interned reasons ---- */

typedef struct interned {
    struct interned *next;
    char s[];
} interned;

static interned *interned_list;
static int interned_n;
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;

void fetch_dataset_changed(const char *dataset)
{
    fs_fetch_changed_fn fn = atomic_load(&changed_fn);
    if (fn)
        fn(dataset);
}

/* 1 for a loopback address as libcurl prints it (127.0.0.0/8, ::1, and
 * IPv4-mapped 127.x). */
int fs_fetch_loopback_ip(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
           strncmp(ip, "::ffff:127.", 11) == 0;
}

int fs_fetch_prereq(void *ctx, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    fs_fetch_guard *g = ctx;
    int local = fs_fetch_loopback_ip(primary_ip);
    if (g->requests++ == 0) {
        g->began_local = local;
        return CURL_PREREQFUNC_OK;
    }
    if (local && !g->began_local) {
        g->refused_local = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* A copy of s that lives as long as the process (lowercased first letter). */
static const char *intern(const char *s)
{
    pthread_mutex_lock(&intern_lock);
    for (interned *i = interned_list; i; i = i->next) {
        if (strcmp(i->s, s) == 0) {
            pthread_mutex_unlock(&intern_lock);
            return i->s;
        }
    }
    const char *r = "download failed";
    if (interned_n < MAX_INTERNED) {
        size_t len = strlen(s);
        interned *i = malloc(sizeof *i + len + 1);
        if (i) {
            memcpy(i->s, s, len + 1);
            if (i->s[0] >= 'A' && i->s[0] <= 'Z' && !(i->s[1] >= 'A' && i->s[1] <= 'Z'))
                i->s[0] = (char)(i->s[0] + 32);
            i->next = interned_list;
            interned_list = i;
            interned_n++;
            r = i->s;
        }
    }
    pthread_mutex_unlock(&intern_lock);
    return r;
}

/* ---- options ---- */

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end)
        return def;
    long r = (long)d;
    return r < lo ? lo : r > hi ? hi : r;
}

/* seconds (fractions allowed) from the environment, as milliseconds */
static long env_ms(const char *name, long def_ms, long lo_ms, long hi_ms)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def_ms;
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end)
        return def_ms;
    long r = (long)(d * 1000.0);
    return r < lo_ms ? lo_ms : r > hi_ms ? hi_ms : r;
}

void fs_fetch_opts_default(fs_fetch_opts *o)
{
    o->parallel = (int)env_long("VFS_FETCH_PARALLEL", 16, 1, 256);
    o->connect_timeout_ms = env_ms("VFS_FETCH_CONNECT_TIMEOUT", 10000, 100, 600000);
    o->timeout_ms = env_ms("VFS_FETCH_TIMEOUT", 300000, 100, 86400000);
    o->stall_timeout_ms = env_ms("VFS_FETCH_STALL_TIMEOUT", 30000, 1000, 3600000);
    o->retries = (int)env_long("VFS_FETCH_RETRIES", 3, 0, 20);
    o->backoff_ms = env_long("VFS_FETCH_BACKOFF_MS", 500, 0, 600000);
}

/* ---- URL helpers ---- */

static int prefix_ci(const char *s, const char *pre)
{
    return strncasecmp(s, pre, strlen(pre)) == 0;
}

void fs_fetch_redact(const char *url, char *out, size_t n)
{
    if (!n)
        return;
    coco_url_shown(url ? url : "", url ? strlen(url) : 0, out, n);
}

static int url_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != '\'' && c != '"' && c != '\\' && c != '<' && c != '>';
}

void fs_fetch_redact_text(char *s)
{
    if (!s)
        return;
    char *p = s;
    while (*p) {
        if (!(prefix_ci(p, "http://") || prefix_ci(p, "https://") || prefix_ci(p, "file://"))) {
            p++;
            continue;
        }
        char *end = p;
        while (*end && url_char((unsigned char)*end))
            end++;
        /* the shown url is never longer: write it over the original, then
         * close the gap */
        size_t len = (size_t)(end - p);
        char *shown = malloc(len + 1);
        if (!shown) { /* cannot redact: hide the whole url rather than show it */
            memmove(p, end, strlen(end) + 1);
            continue;
        }
        size_t k = coco_url_shown(p, len, shown, len + 1);
        memcpy(p, shown, k);
        free(shown);
        memmove(p + k, end, strlen(end) + 1);
        end = p + k;
        p = end;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fetch_file_url_path(const char *url, char *out, size_t n)
{
    if (!prefix_ci(url, "file://"))
        return -1;
    const char *p = url + 7;
    if (prefix_ci(p, "localhost/"))
        p += 9;
    if (*p != '/')
        return -1;
    size_t o = 0;
    for (; *p && *p != '?' && *p != '#'; p++) {
        char c = *p;
        if (c == '%') {
            int a = hexval(p[1]), b = a >= 0 ? hexval(p[2]) : -1;
            if (a < 0 || b < 0)
                return -1;
            c = (char)(a * 16 + b);
            p += 2;
        }
        if (c == '\0' || o + 1 >= n)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* ---- jobs (fetch_lock held) ---- */

/* Wakes the fetch thread. Called with fetch_lock held: the multi handle is
 * only cleaned up under the lock after `fetch_stopping` is set, so it is valid
 * here (curl_multi_wakeup is thread-safe and takes no lock of ours). */
void fetch_wake_locked(void)
{
    if (fetch_running && !fetch_stopping && multi)
        curl_multi_wakeup(multi);
}

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h % HASH_BUCKETS;
}

static fetch_job *table_find(const char *dest)
{
    if (!table)
        return NULL;
    for (fetch_job *j = table[hash_str(dest)]; j; j = j->hnext)
        if (strcmp(j->dest, dest) == 0)
            return j;
    return NULL;
}

static void table_remove(fetch_job *j)
{
    if (!j->in_hash)
        return;
    for (fetch_job **pp = &table[hash_str(j->dest)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == j) {
            *pp = j->hnext;
            break;
        }
    }
    j->in_hash = 0;
    j->hnext = NULL;
}

void fetch_job_free(fetch_job *j)
{
    if (!j)
        return;
    free(j->owner);
    free(j->url);
    free(j->dest);
    free(j);
}

fetch_job *fetch_job_new(job_kind kind, const char *owner, const char *url, const char *dest)
{
    fetch_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->kind = kind;
    j->fd = -1;
    j->owner = strdup(owner);
    j->url = strdup(url);
    j->dest = dest ? strdup(dest) : NULL;
    if (!j->owner || !j->url || (dest && !j->dest)) {
        fetch_job_free(j);
        return NULL;
    }
    j->max_bytes = kind == KIND_ANN ? FS_FETCH_MAX_ANN_BYTES : FS_FETCH_MAX_IMAGE_BYTES;
    j->reader = (fs_fetch_reader){geteuid(), getegid()};
    return j;
}

void fetch_queue_push(fetch_job *j)
{
    j->state = JOB_QUEUED;
    j->qnext = NULL;
    if (q_tail)
        q_tail->qnext = j;
    else
        q_head = j;
    q_tail = j;
}

/* Removes (and frees, unless running) every job of owner that matches; kinds:
 * 1 = failed images only, 2 = everything. */
void fetch_jobs_drop(const char *owner, int what)
{
    if (what == 2) {
        fetch_job **pp = &q_head;
        q_tail = NULL;
        while (*pp) {
            fetch_job *j = *pp;
            if (strcmp(j->owner, owner) == 0) {
                *pp = j->qnext;
                table_remove(j);
                fetch_job_free(j);
            } else {
                q_tail = j;
                pp = &j->qnext;
            }
        }
        pp = &waiting;
        while (*pp) {
            fetch_job *j = *pp;
            if (strcmp(j->owner, owner) == 0) {
                *pp = j->qnext;
                table_remove(j);
                fetch_job_free(j);
            } else {
                pp = &j->qnext;
            }
        }
    }
    if (!table)
        return;
    for (size_t b = 0; b < HASH_BUCKETS; b++) {
        fetch_job **pp = &table[b];
        while (*pp) {
            fetch_job *j = *pp;
            if (strcmp(j->owner, owner) != 0 || (what == 1 && j->state != JOB_FAILED)) {
                pp = &j->hnext;
                continue;
            }
            *pp = j->hnext;
            j->in_hash = 0;
            j->hnext = NULL;
            if (j->state == JOB_RUNNING)
                j->cancelled = 1; /* the fetch thread frees it */
            else
                fetch_job_free(j);
        }
    }
}

/* ---- public: images ---- */

static fs_fetch_state failed(char *err, size_t n, const char *why)
{
    if (err && n)
        snprintf(err, n, "%s", why);
    return FS_FETCH_FAILED;
}

fs_fetch_state fs_fetch_image(const char *dataset, const char *url, const char *dest,
                              const fs_fetch_reader *reader, char *err, size_t n)
{
    if (err && n)
        err[0] = '\0';
    coco_url_kind uk = coco_url_classify(url);
    if (uk != COCO_URL_HTTP && uk != COCO_URL_HTTPS && uk != COCO_URL_FILE)
        return failed(err, n, "not an http, https or file url");
    pthread_mutex_lock(&fetch_lock);
    if (!fetch_running || fetch_stopping) {
        pthread_mutex_unlock(&fetch_lock);
        return failed(err, n, "downloads are not running");
    }
    fetch_job *j = table_find(dest);
    if (j && strcmp(j->url, url) != 0) {
        /* the annotation file now gives another url: start over */
        if (j->state == JOB_FAILED) {
            table_remove(j);
            fetch_job_free(j);
            j = NULL;
        } else {
            pthread_mutex_unlock(&fetch_lock);
            return FS_FETCH_PENDING;
        }
    }
    if (j) {
        fs_fetch_state st = FS_FETCH_PENDING;
        if (j->state == JOB_FAILED)
            st = failed(err, n, j->error);
        pthread_mutex_unlock(&fetch_lock);
        return st;
    }
    pthread_mutex_unlock(&fetch_lock);
    struct stat st;
    if (lstat(dest, &st) == 0)
        return S_ISREG(st.st_mode) ? FS_FETCH_DONE : failed(err, n, "destination is not a file");
    fetch_job *nj = fetch_job_new(KIND_IMAGE, dataset, url, dest);
    if (nj && reader)
        nj->reader = *reader;
    if (!nj)
        return failed(err, n, "out of memory");
    pthread_mutex_lock(&fetch_lock);
    if (!fetch_running || fetch_stopping || table_find(dest)) {
        pthread_mutex_unlock(&fetch_lock);
        fetch_job_free(nj);
        return FS_FETCH_PENDING;
    }
    size_t h = hash_str(dest);
    nj->hnext = table[h];
    table[h] = nj;
    nj->in_hash = 1;
    fetch_queue_push(nj);
    fetch_wake_locked();
    pthread_mutex_unlock(&fetch_lock);
    return FS_FETCH_PENDING;
}

void fs_fetch_forget_failed(const char *owner)
{
    pthread_mutex_lock(&fetch_lock);
    fetch_jobs_drop(owner, 1);
    pthread_mutex_unlock(&fetch_lock);
}

void fetch_dsjson_free(dsjson *d)
{
    if (!d)
        return;
    for (int k = 0; d->parts && k < d->n; k++) {
        if (d->parts[k]) {
            unlink(d->parts[k]);
            free(d->parts[k]);
        }
    }
    free(d->parts);
    free(d);
}

void fs_fetch_cancel(const char *owner)
{
    pthread_mutex_lock(&fetch_lock);
    fetch_jobs_drop(owner, 2);
    dsjson *gone = NULL;
    for (dsjson **pp = &fetch_dsjsons; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, owner) == 0) {
            gone = *pp;
            *pp = gone->next;
            break;
        }
    }
    fetch_wake_locked();
    pthread_mutex_unlock(&fetch_lock);
    fetch_dsjson_free(gone);
}

/* ---- the fetch thread ---- */

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
    fetch_job *j = arg;
    size_t len = size * nitems;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        j->ctype[0] = j->mserr[0] = '\0'; /* a new response (after a redirect) */
        return len;
    }
    char *dst = NULL;
    size_t cap = 0, skip = 0;
    if (len > 13 && strncasecmp(buf, "content-type:", 13) == 0) {
        dst = j->ctype, cap = sizeof j->ctype, skip = 13;
    } else if (len > 16 && strncasecmp(buf, "x-ms-error-code:", 16) == 0) {
        dst = j->mserr, cap = sizeof j->mserr, skip = 16;
    }
    if (dst) {
        const char *v = buf + skip;
        size_t vl = len - skip;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        size_t o = 0;
        for (size_t i = 0; i < vl && o + 1 < cap; i++)
            if ((unsigned char)v[i] >= 0x20 && v[i] != '"' && v[i] != '\\')
                dst[o++] = v[i];
        dst[o] = '\0';
    }
    return len;
}

static size_t on_write(char *buf, size_t size, size_t nmemb, void *arg)
{
    fetch_job *j = arg;
    size_t len = size * nmemb;
    long code = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 400)
        return len; /* an error body: not kept, the status says enough */
    if (j->got + (int64_t)len > j->max_bytes) {
        j->too_big = 1;
        return 0;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(j->fd, buf + done, len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        done += (size_t)w;
    }
    j->got += (int64_t)len;
    j->last_data = fs_now();
    return len;
}

/* Aborts a transfer that has received nothing for the stall timeout (curl's
 * own low-speed check averages over several seconds). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)ultotal;
    (void)ulnow;
    (void)dlnow;
    fetch_job *j = arg;
    if (fs_now() - j->last_data > (double)opts.stall_timeout_ms / 1000.0) {
        j->stalled = 1;
        return 1;
    }
    return 0;
}

static const char *size_reason(const fetch_job *j)
{
    return j->kind == KIND_ANN ? "larger than 512 MB" : "larger than " IMG_MAX_BYTES_TEXT;
}

/* Prepares a running job's temp file and easy handle; a reason on failure. */
static const char *job_setup(fetch_job *j)
{
    coco_url_kind uk = coco_url_classify(j->url);
    if (uk != COCO_URL_HTTP && uk != COCO_URL_HTTPS)
        return "not an http or https url";
    j->fd = fs_tmp_create(j->tmp, sizeof j->tmp);
    if (j->fd < 0) {
        j->tmp[0] = '\0';
        return intern(strerror(-j->fd));
    }
    /* a copy of something the user could reach by url: readable by the
     * user who mounted visionfs alone */
    if (fchmod(j->fd, 0600) != 0)
        return intern(strerror(errno));
    j->got = 0;
    j->too_big = j->stalled = 0;
    j->last_data = fs_now();
    j->ctype[0] = j->mserr[0] = j->errbuf[0] = '\0';
    CURL *e = curl_easy_init();
    if (!e)
        return "out of memory";
    j->easy = e;
    j->guard = (fs_fetch_guard){0};
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, fs_fetch_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, &j->guard);
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)FS_FETCH_MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opts.timeout_ms);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, j);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)j->max_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "visionfs/1");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (curl_multi_add_handle(multi, e) != CURLM_OK)
        return "cannot start the transfer";
    return NULL;
}

/* Closes the easy handle and temp fd; unlinks the temp unless keep. */
static void job_release(fetch_job *j, int keep)
{
    if (j->easy) {
        curl_multi_remove_handle(multi, j->easy);
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
    }
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    if (!keep && j->tmp[0])
        unlink(j->tmp);
    if (!keep)
        j->tmp[0] = '\0';
}

static int retryable(CURLcode rc, long http)
{
    if (rc == CURLE_OK)
        return http >= 500 || http == 429 || http == 408;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return 1;
    default: return 0;
    }
}

/* The reason a transfer failed (interned), or NULL when it succeeded. */
static const char *transfer_reason(fetch_job *j, CURLcode rc, long http)
{
    char buf[256];
    if (j->too_big || rc == CURLE_FILESIZE_EXCEEDED)
        return size_reason(j);
    if (rc == CURLE_OK) {
        if (http >= 400 || (http >= 300 && http < 400)) {
            const char *tries = j->attempts > 1 ? " after %d attempts" : "";
            char fmt[64];
            snprintf(fmt, sizeof fmt, "http %%ld%s%%s%s", j->mserr[0] ? " " : "", tries);
            if (j->attempts > 1)
                snprintf(buf, sizeof buf, fmt, http, j->mserr, j->attempts);
            else
                snprintf(buf, sizeof buf, fmt, http, j->mserr);
            return intern(buf);
        }
        return NULL;
    }
    if (j->stalled)
        snprintf(buf, sizeof buf, "timed out: no data for %g s",
                 (double)opts.stall_timeout_ms / 1000.0);
    if (j->guard.refused_local)
        snprintf(buf, sizeof buf,
                 "refused: a redirect from a remote server to this machine (loopback)");
    switch (j->stalled || j->guard.refused_local ? CURLE_OK : rc) {
    case CURLE_OK: break;
    case CURLE_OPERATION_TIMEDOUT: {
        double connect = 0;
        curl_easy_getinfo(j->easy, CURLINFO_CONNECT_TIME, &connect);
        if (connect <= 0)
            snprintf(buf, sizeof buf, "timed out connecting (%.1f s)",
                     (double)opts.connect_timeout_ms / 1000.0);
        else
            snprintf(buf, sizeof buf, "timed out after %.1f s", (double)opts.timeout_ms / 1000.0);
        break;
    }
    case CURLE_COULDNT_CONNECT: snprintf(buf, sizeof buf, "cannot connect to the server"); break;
    case CURLE_COULDNT_RESOLVE_HOST: snprintf(buf, sizeof buf, "host not found"); break;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(buf, sizeof buf, "too many redirects (more than %d)", FS_FETCH_MAX_REDIRECTS);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(buf, sizeof buf, "redirected to a protocol other than http or https");
        break;
    case CURLE_WRITE_ERROR: snprintf(buf, sizeof buf, "cannot write the download"); break;
    default:
        snprintf(buf, sizeof buf, "%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc));
        break;
    }
    if (j->attempts > 1 && (j->stalled || retryable(rc, http))) {
        size_t o = strlen(buf);
        snprintf(buf + o, sizeof buf - o, " after %d attempts", j->attempts);
    }
    fs_fetch_redact_text(buf);
    return intern(buf);
}

/* The downloaded temp is an image (or, for annotation files, anything).
 * NULL, or the reason it is not usable. */
static const char *check_body(fetch_job *j)
{
    if (j->kind == KIND_ANN)
        return NULL;
    eng_image_info info;
    eng_diag d;
    d.msg[0] = '\0';
    eng_status es = eng_image_probe_file(j->tmp, &info, &d);
    if (es == ENG_OK)
        return NULL;
    char buf[256];
    if (es == ENG_EUNSUPPORTED || j->got == 0) {
        if (j->ctype[0])
            snprintf(buf, sizeof buf, "not an image (content-type %.60s)", j->ctype);
        else
            snprintf(buf, sizeof buf, "not an image");
        return intern(buf);
    }
    /* the engine names the file by its temp path: drop that */
    const char *m = d.msg[0] ? d.msg : eng_status_name(es);
    size_t tl = strlen(j->tmp);
    if (m[0] == '\'' && strncmp(m + 1, j->tmp, tl) == 0 && m[tl + 1] == '\'')
        m += tl + 2;
    while (*m == ':' || *m == ' ')
        m++;
    snprintf(buf, sizeof buf, "unusable image: %.200s", m);
    return intern(buf);
}

/* mkdir -p of dest's parent, below the owner's dataset folder only. 0, or
 * -ENOENT when the dataset is gone. */
static int make_parent(const char *owner, const char *dest)
{
    char ds[FS_PATH_MAX], buf[FS_PATH_MAX];
    struct stat st;
    if (fs_store_path(ds, sizeof ds, "datasets", owner) || stat(ds, &st) != 0 ||
        !S_ISDIR(st.st_mode))
        return -ENOENT;
    size_t dl = strlen(ds);
    if (strncmp(dest, ds, dl) != 0 || dest[dl] != '/')
        return -EINVAL;
    snprintf(buf, sizeof buf, "%s", dest);
    char *last = strrchr(buf, '/');
    if (!last)
        return -EINVAL;
    *last = '\0';
    for (char *p = buf + dl + 1; p <= last; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        if (lstat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return -ENOTDIR;
        *p = c;
        if (c == '\0')
            break;
    }
    return 0;
}

typedef struct touch_list {
    char **names;
    size_t n, cap;
} touch_list;

static void touch_add(touch_list *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0)
            return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **nn = realloc(t->names, cap * sizeof *nn);
        if (!nn)
            return;
        t->names = nn;
        t->cap = cap;
    }
    char *s = strdup(name);
    if (s)
        t->names[t->n++] = s;
}

static void touch_flush(touch_list *t)
{
    for (size_t i = 0; i < t->n; i++) {
        fetch_dataset_changed(t->names[i]);
        free(t->names[i]);
    }
    t->n = 0;
}

/* A running job ended with reason (NULL: the body is in j->tmp). */
static void job_finish(fetch_job *j, const char *reason, touch_list *touch)
{
    int cancelled;
    pthread_mutex_lock(&fetch_lock);
    cancelled = j->cancelled;
    pthread_mutex_unlock(&fetch_lock);
    if (cancelled) {
        job_release(j, 0);
        fetch_job_free(j);
        return;
    }
    if (j->kind == KIND_ANN) {
        job_release(j, reason == NULL);
        fetch_dsjson_part_done(j, reason);
        fetch_job_free(j);
        return;
    }
    int landed = 0, gone = 0;
    if (!reason) {
        job_release(j, 1);
        int rc = make_parent(j->owner, j->dest);
        if (rc == -ENOENT) {
            gone = 1;
        } else if (rc) {
            reason = intern(strerror(-rc));
        } else if (renameat2(AT_FDCWD, j->tmp, AT_FDCWD, j->dest, RENAME_NOREPLACE) == 0 ||
                   errno == EEXIST) {
            landed = 1;
        } else {
            gone = errno == ENOENT;
            if (!gone)
                reason = intern(strerror(errno));
        }
        unlink(j->tmp);
        j->tmp[0] = '\0';
    } else {
        job_release(j, 0);
    }
    if (reason) {
        char plain[512];
        fs_fetch_redact(j->url, plain, sizeof plain);
        fs_log("fetch: \"%s\" failed: %s", plain, reason);
        burst_failed++;
        burst_last = fs_now();
    } else if (landed) {
        burst_ok++;
        burst_last = fs_now();
    }
    pthread_mutex_lock(&fetch_lock);
    if (j->cancelled || landed || gone) {
        table_remove(j);
        pthread_mutex_unlock(&fetch_lock);
        if (!j->cancelled)
            touch_add(touch, j->owner);
        fetch_job_free(j);
        return;
    }
    j->state = JOB_FAILED;
    j->error = reason;
    /* a failed job is the table's once the lock is let go: an rm -r of its
     * dataset (fs_fetch_cancel), a new annotation file (fs_fetch_forget_failed)
     * or another url for its file (fs_fetch_image) frees it, so its owner
     * is copied now */
    touch_add(touch, j->owner);
    pthread_mutex_unlock(&fetch_lock);
}

/* A transfer completed (curl says how). */
static void job_done(fetch_job *j, CURLcode rc, touch_list *touch)
{
    long http = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
    const char *reason = transfer_reason(j, rc, http);
    if (reason && !j->too_big && j->attempts <= opts.retries &&
        (j->stalled || retryable(rc, http))) {
        job_release(j, 0);
        pthread_mutex_lock(&fetch_lock);
        if (!j->cancelled) {
            long delay = opts.backoff_ms << (j->attempts - 1 < 10 ? j->attempts - 1 : 10);
            j->not_before = fs_now() + (double)delay / 1000.0;
            j->state = JOB_WAIT;
            j->qnext = waiting;
            waiting = j;
            pthread_mutex_unlock(&fetch_lock);
            return;
        }
        pthread_mutex_unlock(&fetch_lock);
        fetch_job_free(j);
        return;
    }
    /* no fsync: like the store's other atomic writes, a rename after the
     * data is written survives kill -9 (the page cache outlives us) */
    if (!reason)
        reason = check_body(j);
    job_finish(j, reason, touch);
}

/* Most jobs one turn of the fetch loop starts or ends (the rest wait a turn). */
#define TURN_MAX 256

/* What the fetch thread holds (fetch thread only). */
typedef struct loop {
    fetch_job **run; /* opts.parallel slots of running transfers */
    touch_list touch;
    fetch_job *start[TURN_MAX], *dead[TURN_MAX];
    int nstart, ndead;
    double next_retry; /* when the first waiting retry is due; 0: none */
} loop;

static int running_count(const loop *l)
{
    int n = 0;
    for (int i = 0; i < opts.parallel; i++)
        n += l->run[i] != NULL;
    return n;
}

/* Under fetch_lock: due retries to the front of the queue, queued jobs into
 * the free slots (l->start), cancelled transfers out (l->dead). */
static void take_work_locked(loop *l, double now)
{
    l->nstart = l->ndead = 0;
    l->next_retry = 0;
    for (fetch_job **pp = &waiting; *pp;) {
        fetch_job *j = *pp;
        if (j->not_before <= now) {
            *pp = j->qnext;
            j->state = JOB_QUEUED;
            j->qnext = q_head;
            q_head = j;
            if (!q_tail)
                q_tail = j;
        } else {
            if (l->next_retry == 0 || j->not_before < l->next_retry)
                l->next_retry = j->not_before;
            pp = &j->qnext;
        }
    }
    int nrun = running_count(l);
    while (q_head && nrun + l->nstart < opts.parallel && l->nstart < TURN_MAX) {
        fetch_job *j = q_head;
        q_head = j->qnext;
        if (!q_head)
            q_tail = NULL;
        j->qnext = NULL;
        j->state = JOB_RUNNING;
        j->attempts++;
        l->start[l->nstart++] = j;
    }
    for (int i = 0; i < opts.parallel; i++) {
        if (l->run[i] && l->run[i]->cancelled && l->ndead < TURN_MAX) {
            l->dead[l->ndead++] = l->run[i];
            l->run[i] = NULL;
        }
    }
}

/* Ends the cancelled transfers and starts the new ones in free slots. */
static void start_and_reap(loop *l)
{
    for (int i = 0; i < l->ndead; i++) {
        job_release(l->dead[i], 0);
        fetch_job_free(l->dead[i]);
    }
    for (int i = 0; i < l->nstart; i++) {
        fetch_job *j = l->start[i];
        if (coco_url_classify(j->url) == COCO_URL_FILE) {
            /* a local copy, made at once by a reader process */
            const char *why = fetch_read_file(j);
            job_finish(j, why ? intern(why) : check_body(j), &l->touch);
            continue;
        }
        const char *why = job_setup(j);
        if (why) {
            job_release(j, 0);
            job_finish(j, intern(why), &l->touch);
            continue;
        }
        for (int k = 0; k < opts.parallel; k++) {
            if (!l->run[k]) {
                l->run[k] = j;
                break;
            }
        }
    }
}

/* Lets libcurl move every transfer on, and finishes those that ended. */
static void perform(loop *l)
{
    int still = 0;
    curl_multi_perform(multi, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        fetch_job *j = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        CURLcode rc = msg->data.result;
        for (int k = 0; k < opts.parallel; k++)
            if (l->run[k] == j)
                l->run[k] = NULL;
        if (j)
            job_done(j, rc, &l->touch);
    }
    touch_flush(&l->touch);
}

/* One log line per burst of downloads, when the fetcher goes idle. */
static void log_burst(const loop *l, double now)
{
    int busy = l->nstart > 0 || running_count(l) > 0;
    pthread_mutex_lock(&fetch_lock);
    busy = busy || q_head || waiting;
    pthread_mutex_unlock(&fetch_lock);
    if (busy && burst_start == 0) {
        burst_start = now;
    } else if (!busy && burst_start > 0) {
        double took = (burst_last > burst_start ? burst_last : fs_now()) - burst_start;
        fs_log("fetch: idle: %ld images in place, %ld failed, in %.3f s (%.1f images/s)", burst_ok,
               burst_failed, took, took > 0 ? (double)burst_ok / took : 0.0);
        burst_start = burst_last = 0;
        burst_ok = burst_failed = 0;
    }
}

/* Waits for network activity, a wake-up or the next due retry (at most
 * 1 s), unless queued work could start at once. */
static void wait_for_work(const loop *l)
{
    int timeout = 1000;
    if (l->next_retry > 0) {
        double w = (l->next_retry - fs_now()) * 1000.0;
        if (w < timeout)
            timeout = w < 1 ? 1 : (int)w;
    }
    int free_slot = running_count(l) < opts.parallel;
    pthread_mutex_lock(&fetch_lock);
    int more = q_head != NULL && free_slot;
    pthread_mutex_unlock(&fetch_lock);
    if (!more)
        curl_multi_poll(multi, NULL, 0, timeout, NULL);
}

/* Unmount: ends every transfer and leaves nothing behind. */
static void end_all(loop *l)
{
    pthread_mutex_lock(&fetch_lock);
    for (int i = 0; i < opts.parallel; i++)
        if (l->run[i])
            table_remove(l->run[i]);
    pthread_mutex_unlock(&fetch_lock);
    for (int i = 0; i < opts.parallel; i++) {
        if (l->run[i]) {
            job_release(l->run[i], 0);
            fetch_job_free(l->run[i]);
        }
    }
}

static void *fetch_main(void *arg)
{
    (void)arg;
    loop l = {.run = calloc((size_t)opts.parallel, sizeof *l.run)};
    if (!l.run)
        return NULL;
    for (;;) {
        double now = fs_now();
        pthread_mutex_lock(&fetch_lock);
        int stop = fetch_stopping;
        if (!stop)
            take_work_locked(&l, now);
        pthread_mutex_unlock(&fetch_lock);
        if (stop)
            break;
        start_and_reap(&l);
        perform(&l);
        log_burst(&l, now);
        wait_for_work(&l);
    }
    end_all(&l);
    free(l.run);
    free(l.touch.names);
    return NULL;
}

int fs_fetch_start(fs_fetch_changed_fn changed) { return fs_fetch_start_with(NULL, changed); }

int fs_fetch_start_with(const fs_fetch_opts *o, fs_fetch_changed_fn changed)
{
    atomic_store(&changed_fn, changed);
    pthread_mutex_lock(&fetch_lock);
    if (fetch_running) {
        pthread_mutex_unlock(&fetch_lock);
        return 0;
    }
    if (o)
        opts = *o;
    else
        fs_fetch_opts_default(&opts);
    if (opts.parallel < 1)
        opts.parallel = 1;
    if (opts.parallel > 256)
        opts.parallel = 256;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pthread_mutex_unlock(&fetch_lock);
        return -EIO;
    }
    table = calloc(HASH_BUCKETS, sizeof *table);
    multi = curl_multi_init();
    if (!table || !multi) {
        free(table);
        table = NULL;
        if (multi)
            curl_multi_cleanup(multi);
        multi = NULL;
        curl_global_cleanup();
        pthread_mutex_unlock(&fetch_lock);
        return -ENOMEM;
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)opts.parallel);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)opts.parallel);
    fetch_stopping = 0;
    if (pthread_create(&thread, NULL, fetch_main, NULL) != 0) {
        curl_multi_cleanup(multi);
        multi = NULL;
        free(table);
        table = NULL;
        curl_global_cleanup();
        pthread_mutex_unlock(&fetch_lock);
        return -EAGAIN;
    }
    fetch_running = 1;
    pthread_mutex_unlock(&fetch_lock);
    fs_log("fetch: started (%d parallel transfers)", opts.parallel);
    return 0;
}

void fs_fetch_stop(void)
{
    pthread_mutex_lock(&fetch_lock);
    if (!fetch_running) {
        pthread_mutex_unlock(&fetch_lock);
        return;
    }
    fetch_stopping = 1;
    pthread_mutex_unlock(&fetch_lock);
    curl_multi_wakeup(multi);
    pthread_join(thread, NULL);
    pthread_mutex_lock(&fetch_lock);
    while (q_head) {
        fetch_job *j = q_head;
        q_head = j->qnext;
        table_remove(j);
        fetch_job_free(j);
    }
    q_tail = NULL;
    while (waiting) {
        fetch_job *j = waiting;
        waiting = j->qnext;
        table_remove(j);
        fetch_job_free(j);
    }
    for (size_t b = 0; b < HASH_BUCKETS; b++) {
        while (table[b]) {
            fetch_job *j = table[b];
            table[b] = j->hnext;
            fetch_job_free(j);
        }
    }
    free(table);
    table = NULL;
    dsjson *d = fetch_dsjsons;
    fetch_dsjsons = NULL;
    curl_multi_cleanup(multi);
    multi = NULL;
    fetch_running = 0;
    fetch_stopping = 0;
    pthread_mutex_unlock(&fetch_lock);
    while (d) {
        dsjson *nx = d->next;
        fetch_dsjson_free(d);
        d = nx;
    }
    curl_global_cleanup();
}
