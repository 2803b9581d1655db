/* datasets.c: the datasets/ area: register, delete and rename datasets,
 * accept the COCO file and the images, and keep status / status.json true.
 *
 * Design:
 * - The annotation file is parsed at close() (validate_write) only to decide
 *   whether it can be a COCO file at all: if not, close() returns EINVAL, the
 *   temp is discarded and the previous file stays; status says why. The
 *   parse is kept, so the verifier does not parse it again.
 * - Verification never runs in a FUSE handler: hooks only mark a dataset
 *   dirty; one verifier thread re-checks it (at once after an annotation
 *   file, at most every 0.5 s while images stream in), resolving every image
 *   through coco's safe candidate list relative to the dataset folder
 *   (fstatat on a folder fd, no symlinks followed), probing each file with
 *   the engine (cached by path, size and mtime, so re-checks are cheap) and
 *   writing status.json then status, each atomically.
 * - The last verification's result (report and the file found per image) is
 *   kept in memory for fs_dataset_snapshot.
 * - A record exists only while its dataset's folder does: hooks and late
 *   notices (a writer's close, a fetch finishing) make one only for a folder
 *   that is there (entry_live), checked under ds_lock, which orders it with
 *   rmdir_item (the folder goes first, then the record) and rename_item.
 * Lock order: ds_lock is the area's only lock and is a leaf: nothing else is
 * locked and no file I/O is done while holding it (except in snapshot
 * copies, which only copy memory, and entry_live's stat of the folder).
 */
#include "datasets.h"

#include "area.h"
#include "coco.h"
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dsformats.h"
#include "fetch.h"

#define AREA "datasets"
#define ANN_MAX_BYTES ((int64_t)512 << 20)
#define DEBOUNCE_S 0.5

/* A parsed annotation file, shared by the entry and a running verification. */
typedef struct ds_parsed {
    coco_dataset *coco;
    char file[256]; /* base name at the dataset top */
    off_t size;
    struct timespec mtime;
    int refs;
} ds_parsed;

/* Probe result of one file, keyed by path relative to the dataset. */
typedef struct probe_ent {
    struct probe_ent *next;
    char *rel;
    off_t size;
    struct timespec mtime;
    int probed_ok;
    eng_image_info info;
    char *error; /* NULL when the probe succeeded */
} probe_ent;

typedef struct ds_entry {
    struct ds_entry *next;
    char name[72];
    int dirty, busy, removed;
    /* images_idle: the last verification found no annotation file of any format and nothing
     * but images changed since, so an image added cannot change the status (a copy of the
     * images before their annotation file would otherwise rescan the growing folder every
     * DEBOUNCE_S); other_change: something else changed during the current verification */
    int images_idle, other_change;
    double due;
    double last_run;
    ds_parsed *ann;    /* newest good parse (ref) */
    char refused[512]; /* last refused annotation write, "" when none */
    char refused_file[256];
    time_t refused_at; /* when it was refused (wall clock) */
    /* results of the last verification */
    fs_ds_state state;
    int detection;
    char line[512];
    coco_report *report;
    ds_parsed *report_ann; /* what report is about (ref) */
    char **found;          /* per image: path found, relative to the dataset */
    size_t n_found;
    /* probe cache (verifier thread only) */
    probe_ent **probe;
    size_t probe_cap, probe_n;
} ds_entry;

static pthread_mutex_t ds_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ds_cond = PTHREAD_COND_INITIALIZER; /* work or stop */
static pthread_cond_t ds_done = PTHREAD_COND_INITIALIZER; /* a verification finished */
static ds_entry *entries;
static pthread_t verifier;
static int verifier_running, stopping;

/* ---- parsed files ---- */

static void parsed_unref(ds_parsed *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&ds_lock);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&ds_lock);
    if (last) {
        coco_dataset_free(p->coco);
        free(p);
    }
}

/* Reads and parses path (base: its name at the dataset top); on failure
 * writes why (without the name) and returns NULL. */
static ds_parsed *parse_file(const char *path, const char *base, char *why, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(why, n, "%s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > ANN_MAX_BYTES) {
        snprintf(why, n, "larger than 512 MB");
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len ? len : 1);
    if (!buf) {
        snprintf(why, n, "out of memory");
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    coco_dataset *coco = NULL;
    coco_diag d;
    memset(&d, 0, sizeof d);
    coco_status cs = coco_dataset_parse(buf, got, NULL, &coco, &d);
    free(buf);
    if (cs != COCO_OK) {
        snprintf(why, n, "%s", d.msg[0] ? d.msg : coco_status_name(cs));
        return NULL;
    }
    ds_parsed *p = calloc(1, sizeof *p);
    if (!p) {
        coco_dataset_free(coco);
        snprintf(why, n, "out of memory");
        return NULL;
    }
    p->coco = coco;
    snprintf(p->file, sizeof p->file, "%s", base);
    p->size = st.st_size;
    p->mtime = st.st_mtim;
    p->refs = 1;
    return p;
}

/* ---- entries (call with ds_lock held) ---- */

static ds_entry *entry_find(const char *name)
{
    for (ds_entry *e = entries; e; e = e->next)
        if (!e->removed && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static ds_entry *entry_get(const char *name)
{
    ds_entry *e = entry_find(name);
    if (e)
        return e;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->state = FS_DS_EMPTY;
    snprintf(e->line, sizeof e->line, "empty");
    e->next = entries;
    entries = e;
    return e;
}

static void probe_cache_free(ds_entry *e)
{
    for (size_t i = 0; i < e->probe_cap; i++) {
        probe_ent *p = e->probe[i];
        while (p) {
            probe_ent *nx = p->next;
            free(p->rel);
            free(p->error);
            free(p);
            p = nx;
        }
    }
    free(e->probe);
    e->probe = NULL;
    e->probe_cap = e->probe_n = 0;
}

static void found_free(char **found, size_t n)
{
    if (!found)
        return;
    for (size_t i = 0; i < n; i++)
        free(found[i]);
    free(found);
}

/* Frees an entry's memory; the parsed refs are dropped by the caller. */
static void entry_free_unlocked(ds_entry *e)
{
    coco_report_free(e->report);
    found_free(e->found, e->n_found);
    probe_cache_free(e);
    free(e);
}

static void entry_unlink_list(ds_entry *e)
{
    for (ds_entry **pp = &entries; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            return;
        }
    }
}

/* Takes e out of the records (ds_lock held) and returns it for entry_free
 * once the lock is let go; NULL when the verifier is busy with it (it frees
 * it when done). */
static ds_entry *entry_retire(ds_entry *e)
{
    e->removed = 1;
    if (e->busy)
        return NULL;
    entry_unlink_list(e);
    pthread_cond_broadcast(&ds_done);
    return e;
}

/* Frees a retired entry; call without ds_lock. */
static void entry_free(ds_entry *e)
{
    if (!e)
        return;
    parsed_unref(e->ann);
    parsed_unref(e->report_ann);
    entry_free_unlocked(e);
}

static int dataset_exists(const char *name);

/* The record of dataset name (ds_lock held), made if need be; NULL when
 * the dataset is gone. A late notice about a removed dataset (a fetch
 * finishing, a writer's close after rm -r or mv of the dataset) must not
 * bring its record back: a new dataset of the name would start with the old
 * one's state (a refused annotation file). The folder is looked at under
 * the lock: rmdir_item removes the folder before the record, so a record
 * made here is either removed by it or made after a new mkdir. */
static ds_entry *entry_live(const char *name)
{
    ds_entry *e = entry_find(name);
    if (!e && dataset_exists(name))
        e = entry_get(name);
    return e;
}

/* Marks name for verification: at once, or debounced. image: the change is an image added,
 * which needs none while the dataset has no annotation file (images_idle). */
static void mark_dirty_as(const char *name, int at_once, int image)
{
    pthread_mutex_lock(&ds_lock);
    ds_entry *e = entry_live(name);
    if (e && image && e->images_idle)
        e = NULL; /* nothing to check an image against */
    if (e && !image) {
        e->images_idle = 0;
        e->other_change = 1;
    }
    if (e) {
        double t = fs_now();
        double due = at_once ? t : e->last_run + DEBOUNCE_S;
        if (due < t)
            due = t;
        /* the verifier only needs waking when this moves its next run
         * earlier: not for every image of a copy streaming in */
        if (!e->dirty || due < e->due) {
            e->due = due;
            e->dirty = 1;
            pthread_cond_signal(&ds_cond);
        }
    }
    pthread_mutex_unlock(&ds_lock);
}

/* A change of dataset name: verify it again after DEBOUNCE_S, or at once. */
static void mark_dirty(const char *name, int at_once) { mark_dirty_as(name, at_once, 0); }

/* ---- helpers ---- */

/* "NAME/rest" -> copies NAME into name, returns rest ("" at the top). */
static const char *split_rel(const char *rel, char *name, size_t n)
{
    const char *slash = strchr(rel, '/');
    size_t len = slash ? (size_t)(slash - rel) : strlen(rel);
    if (len >= n)
        len = n - 1;
    memcpy(name, rel, len);
    name[len] = '\0';
    return slash ? slash + 1 : "";
}

static int is_generated(const char *top)
{
    return strcmp(top, "status") == 0 || strcmp(top, "status.json") == 0;
}

/* An annotation file: a *.json at the dataset top, but not ours or fetch's. */
static int is_annotation(const char *rest)
{
    return *rest && !strchr(rest, '/') && fs_ends_with(rest, ".json") && !is_generated(rest) &&
           strcmp(rest, "dataset.json") != 0;
}

static int write_status_files_raw(const char *name, const char *line, const char *json);

static int write_status_files(const char *name, const char *line_in, const char *json_in)
{
    /* URLs may carry SAS tokens: never show their query strings */
    char line[600];
    snprintf(line, sizeof line, "%s", line_in);
    fs_fetch_redact_text(line);
    char *json = strdup(json_in);
    if (!json)
        return -ENOMEM;
    fs_fetch_redact_text(json);
    int rc = write_status_files_raw(name, line, json);
    free(json);
    return rc;
}

/* The status file's text: one line however the names in it are spelled
 * (fs_line_escape), ending in a newline, truncated to n. */
static void status_text(char *out, size_t n, const char *line)
{
    size_t o = fs_line_escape(out, n - 1, line);
    out[o++] = '\n';
    out[o] = '\0';
}

static int write_status_files_raw(const char *name, const char *line, const char *json)
{
    char dir[FS_PATH_MAX], path[FS_PATH_MAX];
    if (fs_store_path(dir, sizeof dir, AREA, name))
        return -ENAMETOOLONG;
    if (snprintf(path, sizeof path, "%s/status.json", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int rc = fs_write_atomic(path, json, strlen(json));
    if (rc)
        return rc;
    char text[1200];
    status_text(text, sizeof text, line);
    if (snprintf(path, sizeof path, "%s/status", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    return fs_write_atomic(path, text, strlen(text));
}

/* Writes status.json from w (a finished document) and the status line; a
 * writer that failed (out of memory) leaves the previous files and is logged. */
static void write_status_jsonw(const char *name, const char *line, jsonw *w)
{
    jsonw_status err = jsonw_error(w);
    char *json = jsonw_finish(w, NULL);
    if (!json) {
        fs_log("dataset \"%s\": status.json not written: %s", name, jsonw_status_name(err));
        return;
    }
    write_status_files(name, line, json);
    free(json);
}

/* The last refused write as "lastRefusedWrite": {file, message, time, note}
 * (and the older name "refusedWrite" with file and message). */
static void refused_members(jsonw *w, const char *file, const char *msg, time_t at)
{
    char when[32] = "";
    struct tm tm;
    if (at && gmtime_r(&at, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    jsonw_key(w, "lastRefusedWrite");
    jsonw_obj(w);
    jsonw_kstr(w, "file", file);
    jsonw_kstr(w, "message", msg);
    jsonw_kstr(w, "time", when);
    jsonw_kstr(w, "note",
               "the write was refused (close() returned an error: EINVAL for a file "
               "that is not valid, ENOSPC when the disk was full, EFBIG when too "
               "large); the previous annotation file is kept and used");
    jsonw_end(w);
    jsonw_key(w, "refusedWrite");
    jsonw_obj(w);
    jsonw_kstr(w, "file", file);
    jsonw_kstr(w, "message", msg);
    jsonw_end(w);
}

/* status.json for states without a report (empty, unreadable file); a
 * refused write (refused_at != 0) is also named as lastRefusedWrite. */
static void write_simple_status_ex(const char *name, const char *state, const char *line,
                                   const char *ann_file, const char *error, time_t refused_at,
                                   const char *format, const char *hint)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_kstr(&w, "state", state);
    jsonw_kstr(&w, "status", line);
    jsonw_kstr(&w, "dataset", name);
    if (format)
        jsonw_kstr(&w, "format", format);
    if (ann_file)
        jsonw_kstr(&w, "annotationFile", ann_file);
    static const char *const zero[] = {"images", "annotations", "categories", "boxes"};
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        jsonw_kint(&w, zero[i], 0);
    jsonw_kint(&w, "errorCount", error ? 1 : 0);
    jsonw_kint(&w, "warningCount", 0);
    jsonw_key(&w, "errors");
    jsonw_arr(&w);
    if (error) {
        jsonw_obj(&w);
        jsonw_kstr(&w, "code", "datasetAnnotationsInvalid");
        jsonw_kstr(&w, "path", "");
        jsonw_kstr(&w, "message", error);
        jsonw_kstr(&w, "hint",
                   hint ? hint
                        : "write a COCO file with images, annotations and categories arrays");
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_key(&w, "warnings");
    jsonw_arr(&w);
    jsonw_end(&w);
    if (refused_at)
        refused_members(&w, ann_file, error, refused_at);
    jsonw_end(&w);
    write_status_jsonw(name, line, &w);
}

static void write_simple_status(const char *name, const char *state, const char *line,
                                const char *ann_file, const char *error, time_t refused_at)
{
    write_simple_status_ex(name, state, line, ann_file, error, refused_at, NULL, NULL);
}

/* ---- probing with a cache ---- */

static size_t str_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static probe_ent *probe_lookup(ds_entry *e, const char *rel, const struct stat *st,
                               const char *full)
{
    if (e->probe_cap == 0 || e->probe_n > e->probe_cap * 2) {
        size_t cap = e->probe_cap ? e->probe_cap * 4 : 1024;
        probe_ent **nt = calloc(cap, sizeof *nt);
        if (!nt)
            return NULL;
        for (size_t i = 0; i < e->probe_cap; i++) {
            probe_ent *p = e->probe[i];
            while (p) {
                probe_ent *nx = p->next;
                size_t h = str_hash(p->rel) % cap;
                p->next = nt[h];
                nt[h] = p;
                p = nx;
            }
        }
        free(e->probe);
        e->probe = nt;
        e->probe_cap = cap;
    }
    size_t h = str_hash(rel) % e->probe_cap;
    probe_ent *p;
    for (p = e->probe[h]; p; p = p->next)
        if (strcmp(p->rel, rel) == 0)
            break;
    if (p && p->size == st->st_size && p->mtime.tv_sec == st->st_mtim.tv_sec &&
        p->mtime.tv_nsec == st->st_mtim.tv_nsec)
        return p;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p)
            return NULL;
        p->rel = strdup(rel);
        if (!p->rel) {
            free(p);
            return NULL;
        }
        p->next = e->probe[h];
        e->probe[h] = p;
        e->probe_n++;
    }
    free(p->error);
    p->error = NULL;
    p->size = st->st_size;
    p->mtime = st->st_mtim;
    memset(&p->info, 0, sizeof p->info);
    eng_diag d;
    d.msg[0] = '\0';
    eng_status es = eng_image_probe_file(full, &p->info, &d);
    p->probed_ok = es == ENG_OK;
    if (es != ENG_OK) {
        /* the engine names the file by its store path: the user knows it by
         * file_name, which the report gives */
        const char *m = d.msg[0] ? d.msg : eng_status_name(es);
        size_t fl = strlen(full);
        if (m[0] == '\'' && strncmp(m + 1, full, fl) == 0 && m[fl + 1] == '\'' && m[fl + 2] == ':')
            m += fl + 3;
        while (*m == ' ')
            m++;
        p->error = strdup(m);
    }
    return p;
}

/* ---- verification ---- */

/* Names of the candidate annotation files, separated by '/' (which no file
 * name contains); names that do not fit are left out. */
static char ann_list[1024];

/* Newest annotation file at the dataset top (ties: the later name); others
 * counted and named in ann_list (verifier thread only). */
static int find_annotation(int dfd, char *out, size_t n, struct stat *st_out, int *others)
{
    int dfd2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
    if (dfd2 < 0)
        return 0;
    DIR *d = fdopendir(dfd2);
    if (!d) {
        close(dfd2);
        return 0;
    }
    int found = 0;
    *others = 0;
    ann_list[0] = '\0';
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !is_annotation(de->d_name))
            continue;
        if (strcmp(de->d_name, FS_DS_EXPORT) == 0 &&
            faccessat(dfd, FS_DS_EXPORT_MARK, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            continue; /* our generated export, not the user's COCO file */
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t used = strlen(ann_list);
        if (used + strlen(de->d_name) + 2 < sizeof ann_list)
            snprintf(ann_list + used, sizeof ann_list - used, "%s%s", used ? "/" : "", de->d_name);
        if (found) {
            (*others)++;
            if (st.st_mtim.tv_sec < st_out->st_mtim.tv_sec ||
                (st.st_mtim.tv_sec == st_out->st_mtim.tv_sec &&
                 (st.st_mtim.tv_nsec < st_out->st_mtim.tv_nsec ||
                  (st.st_mtim.tv_nsec == st_out->st_mtim.tv_nsec && strcmp(de->d_name, out) < 0))))
                continue;
        }
        snprintf(out, n, "%s", de->d_name);
        *st_out = st;
        found = 1;
    }
    closedir(d);
    return found;
}

/* The annotation file: at the dataset top, else at the top of one of its
 * folders (`cp -r export/ datasets/NAME` into an existing NAME makes
 * NAME/export/). ann gets its path relative to the dataset, sub the folder
 * ("" for the top). */
static int find_annotation_any(int dfd, char *ann, size_t n, struct stat *st, int *others,
                               char *sub, size_t subn)
{
    sub[0] = '\0';
    if (find_annotation(dfd, ann, n, st, others))
        return 1;
    int dfd2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
    DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!d) {
        if (dfd2 >= 0)
            close(dfd2);
        return 0;
    }
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        int sfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
            continue;
        char base[256];
        if (find_annotation(sfd, base, sizeof base, st, others) &&
            snprintf(ann, n, "%s/%s", de->d_name, base) < (int)n) {
            snprintf(sub, subn, "%s", de->d_name);
            found = 1;
        }
        close(sfd);
    }
    closedir(d);
    return found;
}

/* Where the image at url is downloaded to, relative to the dataset:
 * .vfs-fetched/<hash of the url>-<base name without query>. */
static int fetched_rel(const char *url, char *out, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    size_t qlen = strcspn(url, "?#");
    size_t b = qlen;
    while (b > 0 && url[b - 1] != '/')
        b--;
    char base[81];
    size_t m = 0;
    for (size_t i = b; i < qlen && m < sizeof base - 1; i++) {
        char c = url[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        base[m++] = ok ? c : '_';
    }
    base[m] = '\0';
    int w = snprintf(out, n, ".vfs-fetched/%016llx-%s", (unsigned long long)h, m ? base : "image");
    return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

typedef struct verify_out {
    fs_ds_format format;
    ds_parsed *ann; /* ref, or NULL */
    coco_report *report;
    char **found;
    size_t n_found;
    fs_ds_state state;
    int detection;
    char line[512];
} verify_out;

static fs_ds_state state_of(const coco_summary *s)
{
    switch (s->state) {
    case COCO_STATE_READY: return FS_DS_READY;
    case COCO_STATE_INVALID: return FS_DS_INVALID;
    case COCO_STATE_INCOMPLETE: return FS_DS_INCOMPLETE;
    case COCO_STATE_FETCHING: return FS_DS_FETCHING;
    }
    return FS_DS_INVALID;
}

/* The names in ann_list ('/'-separated) as a JSON array. */
static void ann_list_member(jsonw *w, const char *list)
{
    jsonw_key(w, "annotationFilesFound");
    jsonw_arr(w);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        jsonw_strn(w, p, n);
        p += n + (e != NULL);
    }
    jsonw_end(w);
}

/* A refused write the verifier reports (lastRefusedWrite in status.json). */
typedef struct refusal {
    const char *msg; /* "" when none */
    const char *file;
    time_t at;
} refusal;

/* The dataset has no annotation file: fetching one (dataset.json), or
 * empty, or invalid by a refused write. */
static void verify_without_annotations(const char *name, const char *dir, const refusal *rf,
                                       verify_out *out)
{
    char *fjson = NULL;
    int fr = fs_fetch_dataset_json_status(name, dir, out->line, sizeof out->line, &fjson);
    if (fr == 1 || fr == 2) {
        out->state = fr == 1 ? FS_DS_FETCHING : FS_DS_INVALID;
        if (fjson)
            write_status_files(name, out->line, fjson);
        free(fjson);
        return;
    }
    free(fjson);
    snprintf(out->line, sizeof out->line, "empty");
    if (rf->msg[0]) {
        out->state = FS_DS_INVALID;
        snprintf(out->line, sizeof out->line, "invalid: datasetAnnotationsInvalid: %.400s",
                 rf->msg);
        write_simple_status(name, "invalid", out->line, rf->file, rf->msg, rf->at);
    } else {
        write_simple_status(name, "empty", "empty", NULL, NULL, 0);
    }
}

/* The parsed annotation file: the one in have when the file has not changed
 * (a new reference), else parsed again. NULL when it does not parse (status
 * written). */
static ds_parsed *verify_parse(const char *name, const char *dir, const char *ann_name,
                               const struct stat *ast, ds_parsed *have, verify_out *out)
{
    if (have && strcmp(have->file, ann_name) == 0 && have->size == ast->st_size &&
        have->mtime.tv_sec == ast->st_mtim.tv_sec && have->mtime.tv_nsec == ast->st_mtim.tv_nsec) {
        pthread_mutex_lock(&ds_lock);
        have->refs++;
        pthread_mutex_unlock(&ds_lock);
        return have;
    }
    char path[FS_PATH_MAX], why[400], msg[512];
    if (snprintf(path, sizeof path, "%s/%s", dir, ann_name) >= (int)sizeof path)
        path[0] = '\0';
    ds_parsed *ann = parse_file(path, ann_name, why, sizeof why);
    if (!ann) {
        out->state = FS_DS_INVALID;
        snprintf(msg, sizeof msg, "\"%.100s\": %s", ann_name, why);
        snprintf(out->line, sizeof out->line, "invalid: datasetAnnotationsInvalid: %.470s", msg);
        write_simple_status(name, "invalid", out->line, ann_name, msg, 0);
    }
    return ann;
}

/* Where a dataset's files are looked up. */
typedef struct ds_dirs {
    const char *name;       /* the dataset */
    const char *dir;        /* its store folder */
    int tfd;                /* that folder (fetched images live there) */
    int dfd;                /* the folder holding the COCO file (file names are relative to it) */
    const char *sub;        /* that folder below the top, "" for the top */
    fs_fetch_reader reader; /* the annotation file's owner: file:// urls are read as them */
} ds_dirs;

/* Finds image im: in the folder by its file name, or downloaded from its url
 * (asking the fetcher when it is not there yet). Fills f, and *found with its
 * path relative to the dataset; *err gets a download error (f->error
 * borrows it). */
static void locate_image(ds_entry *e, const ds_dirs *w, const coco_image *im, coco_image_file *f,
                         char **found, char **err)
{
    struct stat st;
    char full[FS_PATH_MAX], rel[FS_PATH_MAX];
    int have = 0;
    if (im->file_name) {
        coco_candidates cand;
        coco_diag cd;
        if (coco_image_candidates(im->file_name, im->file_name_len, &cand, &cd) != COCO_OK)
            return; /* unsafe name: coco_validate reports it */
        for (int k = 0; k < cand.n && !have; k++) {
            if (strncmp(cand.path[k], ".vfs", 4) == 0 ||
                fstatat(w->dfd, cand.path[k], &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(st.st_mode))
                continue;
            have = snprintf(rel, sizeof rel, "%s%s%s", w->sub, w->sub[0] ? "/" : "", cand.path[k]) <
                   (int)sizeof rel;
        }
    }
    const char *url = have ? NULL : coco_image_fetch_url(im);
    if (url && fetched_rel(url, rel, sizeof rel) == 0) {
        if (fstatat(w->tfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
            have = 1;
        } else if (snprintf(full, sizeof full, "%s/%s", w->dir, rel) < (int)sizeof full) {
            char why[256] = "";
            fs_fetch_state fst = fs_fetch_image(w->name, url, full, &w->reader, why, sizeof why);
            if (fst == FS_FETCH_DONE && fstatat(w->tfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(st.st_mode)) {
                have = 1;
            } else if (fst == FS_FETCH_FAILED) {
                f->state = COCO_FILE_FETCH_FAILED;
                *err = strdup(why[0] ? why : "download failed");
                f->error = *err;
                return;
            } else {
                f->state = COCO_FILE_FETCHING;
                return;
            }
        }
    }
    if (!have || snprintf(full, sizeof full, "%s/%s", w->dir, rel) >= (int)sizeof full) {
        f->state = COCO_FILE_MISSING;
        return;
    }
    probe_ent *p = probe_lookup(e, rel, &st, full);
    f->state = COCO_FILE_FOUND;
    f->size = (uint64_t)st.st_size;
    *found = strdup(rel);
    if (p) {
        if (p->info.format != ENG_IMG_UNKNOWN)
            f->format = eng_image_format_name(p->info.format);
        f->width = p->info.width;
        f->height = p->info.height;
        f->orientation = p->info.orientation;
        f->error = p->error;
    }
}

/* status.json: our members first (dataset, annotation file, a refused
 * write), then the report's. A refused write leaves the dataset what its
 * kept file makes it: the refusal is only reported. */
static void write_report(const char *name, const char *ann_name, int others, const refusal *rf,
                         const coco_report *rep, const char *line, fs_ds_format fmt,
                         size_t ann_files)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_kstr(&w, "dataset", name);
    jsonw_kstr(&w, "format", fs_ds_format_name(fmt));
    jsonw_kstr(&w, "annotationFile", ann_name);
    if (fmt != FS_FMT_COCO)
        jsonw_kint(&w, "annotationFileCount", (long long)ann_files);
    if (others) {
        jsonw_kint(&w, "otherAnnotationFiles", others);
        ann_list_member(&w, ann_list);
        jsonw_kstr(&w, "annotationFileNote",
                   "several .json files at the top: the newest is used; remove the others");
    }
    if (rf->msg[0])
        refused_members(&w, rf->file, rf->msg, rf->at);
    jsonw_kstr(&w, "statusLine", line);
    coco_report_json_members(rep, &w);
    jsonw_end(&w);
    write_status_jsonw(name, line, &w);
}

/* ---- other formats and the export ---- */

/* What the size callback of fs_ds_load needs. */
typedef struct size_ctx {
    ds_entry *e;
    int tfd;
    const char *dir;
} size_ctx;

/* The displayed size of the image at rel (probed, cached like the others). */
static int image_size(void *arg, const char *rel, int *w, int *h)
{
    size_ctx *c = arg;
    struct stat st;
    char full[FS_PATH_MAX];
    if (fstatat(c->tfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        snprintf(full, sizeof full, "%s/%s", c->dir, rel) >= (int)sizeof full)
        return -1;
    probe_ent *p = probe_lookup(c->e, rel, &st, full);
    if (!p || !p->probed_ok)
        return -1;
    int turned = p->info.orientation >= 5 && p->info.orientation <= 8;
    *w = turned ? p->info.height : p->info.width;
    *h = turned ? p->info.width : p->info.height;
    return 0;
}

/* Annotation files of more than one format: the dataset is invalid and
 * status names one file of each. Returns 1 when mixed (status written). */
static int mixed_formats(const char *name, const char *coco_file, const fs_ds_scan *sc,
                         verify_out *out)
{
    const char *files[3] = {coco_file, sc->n_xml ? sc->xml[0] : NULL,
                            sc->n_labels ? sc->labels[0] : NULL};
    static const fs_ds_format fmts[3] = {FS_FMT_COCO, FS_FMT_VOC, FS_FMT_YOLO};
    int kinds = 0;
    char list[600] = "";
    for (int k = 0; k < 3; k++) {
        if (!files[k])
            continue;
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s\"%.120s\" is %s", kinds ? ", " : "", files[k],
                 fs_ds_format_title(fmts[k]));
        kinds++;
    }
    if (kinds < 2)
        return 0;
    char msg[700];
    snprintf(msg, sizeof msg, "annotation formats are mixed: %s", list);
    out->state = FS_DS_INVALID;
    snprintf(out->line, sizeof out->line, "invalid: datasetAnnotationsInvalid: %.460s", msg);
    write_simple_status_ex(name, "invalid", out->line, NULL, msg, 0, "mixed",
                           "keep one annotation format in a dataset: remove the files of the "
                           "other formats (or copy them into a dataset of their own)");
    return 1;
}

/* A VOC or YOLO folder read into a parsed dataset (a new reference); NULL
 * when out of memory (status written). */
static ds_parsed *load_other(ds_entry *e, const char *name, const char *dir, int tfd,
                             const fs_ds_scan *sc, fs_ds_format fmt, verify_out *out)
{
    size_ctx c = {.e = e, .tfd = tfd, .dir = dir};
    coco_dataset *coco = NULL;
    ds_parsed *p = NULL;
    if (fs_ds_load(tfd, sc, fmt, image_size, &c, &coco) == COCO_OK)
        p = calloc(1, sizeof *p);
    if (!p) {
        coco_dataset_free(coco);
        out->state = FS_DS_ENOMEM;
        snprintf(out->line, sizeof out->line, "invalid: datasetCorrupt: out of memory");
        write_simple_status(name, "invalid", out->line, NULL, "out of memory", 0);
        return NULL;
    }
    p->coco = coco;
    const char *first =
        fmt == FS_FMT_VOC ? (sc->n_xml ? sc->xml[0] : "") : (sc->n_labels ? sc->labels[0] : "");
    snprintf(p->file, sizeof p->file, "%.250s", first);
    p->refs = 1;
    return p;
}

/* Writes datasets/NAME/coco.json: the ready dataset as one COCO file, its
 * images named where they were found. A user's own top-level coco.json is
 * their annotation file and is left alone. While the dataset is not ready
 * the export keeps its last ready version and is never removed (only with
 * the dataset): a file that vanished between rm -r's readdir and its
 * unlink would make `rm -r datasets/NAME` fail with ENOENT. */
static void export_write(const char *name, const char *dir, int tfd, const coco_dataset *cd,
                         coco_kind kind, char **found, const int *sizes)
{
    if (faccessat(tfd, FS_DS_EXPORT, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
        faccessat(tfd, FS_DS_EXPORT_MARK, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
        return; /* the user's file */
    size_t len = 0;
    char *json = coco_dataset_export_json(cd, kind, (const char *const *)found, sizes, &len);
    char path[FS_PATH_MAX];
    if (!json || snprintf(path, sizeof path, "%s/%s", dir, FS_DS_EXPORT) >= (int)sizeof path) {
        free(json);
        fs_log("dataset \"%s\": coco.json not written: out of memory", name);
        return;
    }
    /* by path, as coco.json: through tfd it would land in the folder even
     * after an rm -r moved it away to be deleted, racing that deletion */
    char mark[FS_PATH_MAX];
    int mfd = snprintf(mark, sizeof mark, "%s/%s", dir, FS_DS_EXPORT_MARK) < (int)sizeof mark
                  ? open(mark, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)
                  : (errno = ENAMETOOLONG, -1);
    if (mfd >= 0)
        close(mfd);
    int rc = mfd >= 0 ? fs_write_atomic(path, json, len) : -errno;
    if (rc)
        fs_log("dataset \"%s\": coco.json not written: %s", name, strerror(-rc));
    free(json);
}

/* Verifies dataset name: finds its annotation files (COCO, Pascal VOC or
 * YOLO; parsing a COCO file again unless it is have, unchanged), locates
 * every image, validates, and writes status, status.json and the export.
 * out: the state, the status line and, when it got that far, the parsed
 * file, the report and the found paths (the caller keeps them). */
static void verify(ds_entry *e, const char *name, ds_parsed *have, const refusal *rf,
                   verify_out *out)
{
    memset(out, 0, sizeof *out);
    out->state = FS_DS_EMPTY;
    snprintf(out->line, sizeof out->line, "empty");
    char dir[FS_PATH_MAX];
    if (fs_store_path(dir, sizeof dir, AREA, name))
        return;
    int tfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tfd < 0)
        return;
    char ann_name[256], sub[256];
    struct stat ast;
    memset(&ast, 0, sizeof ast);
    int others = 0;
    ds_parsed *ann = NULL;
    fs_ds_scan sc;
    fs_ds_scan_dir(tfd, 0, &sc); /* out of memory: what it found */
    int has_coco =
        find_annotation_any(tfd, ann_name, sizeof ann_name, &ast, &others, sub, sizeof sub);
    size_t ann_files = 1;
    if (mixed_formats(name, has_coco ? ann_name : NULL, &sc, out)) {
        out->format = FS_FMT_NONE;
    } else if (has_coco) {
        out->format = FS_FMT_COCO;
        ann = verify_parse(name, dir, ann_name, &ast, have, out);
    } else if (sc.n_xml || sc.n_labels) {
        out->format = sc.n_xml ? FS_FMT_VOC : FS_FMT_YOLO;
        sub[0] = '\0';
        others = 0;
        fs_ds_scan_free(&sc);
        fs_ds_scan_dir(tfd, 1, &sc); /* again, with the images */
        ann_files = out->format == FS_FMT_VOC ? sc.n_xml : sc.n_labels;
        ann = load_other(e, name, dir, tfd, &sc, out->format, out);
        if (ann)
            snprintf(ann_name, sizeof ann_name, "%s", ann->file);
    } else {
        verify_without_annotations(name, dir, rf, out);
    }
    fs_ds_scan_free(&sc);
    if (!ann) {
        close(tfd);
        return;
    }
    out->ann = ann;
    ds_dirs w = {.name = name,
                 .dir = dir,
                 .tfd = tfd,
                 .dfd = tfd,
                 .sub = sub,
                 .reader = {ast.st_uid, ast.st_gid}};
    if (sub[0]) {
        int sfd = openat(tfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd >= 0)
            w.dfd = sfd;
    }
    size_t n = coco_dataset_image_count(ann->coco);
    coco_image_file *files = calloc(n ? n : 1, sizeof *files);
    char **found = calloc(n ? n : 1, sizeof *found);
    char **errs = calloc(n ? n : 1, sizeof *errs);       /* download errors, borrowed by files */
    int *sizes = calloc(2 * (n ? n : 1), sizeof *sizes); /* displayed, for the export */
    coco_report *rep = NULL;
    coco_status vs = COCO_ENOMEM;
    if (files && found && errs && sizes) {
        for (size_t i = 0; i < n; i++) {
            const coco_image *im = coco_dataset_image(ann->coco, i);
            if (im)
                locate_image(e, &w, im, &files[i], &found[i], &errs[i]);
            int turned = files[i].orientation >= 5 && files[i].orientation <= 8;
            sizes[2 * i] = turned ? files[i].height : files[i].width;
            sizes[2 * i + 1] = turned ? files[i].width : files[i].height;
        }
        vs = coco_validate(ann->coco, files, &rep);
    }
    if (w.dfd != tfd)
        close(w.dfd);
    free(files);
    for (size_t i = 0; errs && i < n; i++)
        free(errs[i]);
    free(errs);
    if (vs != COCO_OK || !rep) {
        found_free(found, n);
        free(sizes);
        close(tfd);
        out->state = FS_DS_ENOMEM;
        snprintf(out->line, sizeof out->line, "invalid: datasetCorrupt: out of memory");
        return;
    }
    const coco_summary *sum = coco_report_summary(rep);
    out->state = state_of(sum);
    out->detection = sum->kind == COCO_KIND_DETECTION    ? FS_DATA_BOXES
                     : sum->kind == COCO_KIND_MULTILABEL ? FS_DATA_TAGS
                                                         : FS_DATA_LABEL;
    coco_report_status_line(rep, out->line, sizeof out->line);
    size_t ll = strlen(out->line);
    if (out->format != FS_FMT_COCO && out->state == FS_DS_READY && ll > 0 &&
        out->line[ll - 1] == ')')
        snprintf(out->line + ll - 1, sizeof out->line - (ll - 1), ", %s)",
                 fs_ds_format_title(out->format));
    write_report(name, ann_name, others, rf, rep, out->line, out->format, ann_files);
    if (out->state == FS_DS_READY)
        export_write(name, dir, tfd, ann->coco, sum->kind, found, sizes);
    close(tfd);
    free(sizes);
    out->report = rep;
    out->found = found;
    out->n_found = n;
}

static void *verifier_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ds_lock);
    for (;;) {
        ds_entry *pick = NULL;
        while (!stopping) {
            pick = NULL;
            for (ds_entry *e = entries; e; e = e->next)
                if (e->dirty && !e->removed && (!pick || e->due < pick->due))
                    pick = e;
            double t = fs_now();
            if (pick && pick->due <= t)
                break;
            if (!pick) {
                pthread_cond_wait(&ds_cond, &ds_lock);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                double wait = pick->due - t;
                ts.tv_sec += (time_t)wait;
                ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&ds_cond, &ds_lock, &ts);
            }
        }
        if (stopping)
            break;
        ds_entry *e = pick;
        e->dirty = 0;
        e->busy = 1;
        e->other_change = 0;
        char name[72], refused[512], refused_file[256];
        time_t refused_at = e->refused_at;
        snprintf(name, sizeof name, "%s", e->name);
        snprintf(refused, sizeof refused, "%s", e->refused);
        snprintf(refused_file, sizeof refused_file, "%s", e->refused_file);
        ds_parsed *have = e->ann;
        if (have)
            have->refs++;
        pthread_mutex_unlock(&ds_lock);

        verify_out out;
        refusal rf = {.msg = refused, .file = refused_file, .at = refused_at};
        verify(e, name, have, &rf, &out);
        parsed_unref(have);
        malloc_trim(0);
        fs_store_reserve(); /* again, if a full disk took it and there is room now */

        pthread_mutex_lock(&ds_lock);
        e->busy = 0;
        e->last_run = fs_now();
        ds_parsed *old_report_ann = e->report_ann, *old_ann = NULL;
        coco_report *old_report = e->report;
        char **old_found = e->found;
        size_t old_n = e->n_found;
        e->report = out.report;
        e->report_ann = out.ann;
        e->found = out.found;
        e->n_found = out.n_found;
        e->state = out.state;
        e->detection = out.detection;
        e->images_idle = out.state == FS_DS_EMPTY && !out.ann && !e->other_change;
        snprintf(e->line, sizeof e->line, "%s", out.line);
        if (out.ann && e->ann != out.ann) {
            /* the verifier parsed a file the hooks had not: keep it */
            old_ann = e->ann;
            e->ann = out.ann;
            out.ann->refs++;
        }
        int gone = e->removed;
        if (gone)
            entry_unlink_list(e);
        pthread_cond_broadcast(&ds_done);
        pthread_mutex_unlock(&ds_lock);
        coco_report_free(old_report);
        found_free(old_found, old_n);
        parsed_unref(old_report_ann);
        parsed_unref(old_ann);
        if (gone) {
            parsed_unref(e->ann);
            parsed_unref(e->report_ann);
            e->report_ann = NULL;
            entry_free_unlocked(e);
        }
        pthread_mutex_lock(&ds_lock);
    }
    pthread_mutex_unlock(&ds_lock);
    return NULL;
}

/* Removes an entry (dataset deleted): freed now, or by the verifier when it
 * is busy with it. */
static void entry_remove(const char *name)
{
    pthread_mutex_lock(&ds_lock);
    ds_entry *e = entry_find(name);
    if (e)
        e = entry_retire(e);
    pthread_mutex_unlock(&ds_lock);
    entry_free(e);
}

/* ---- area hooks ---- */

static int ds_mkdir_item(const char *name)
{
    char path[FS_PATH_MAX];
    int rc = fs_store_path(path, sizeof path, AREA, name);
    if (rc)
        return rc;
    if (mkdir(path, 0755) != 0)
        return -errno;
    write_simple_status(name, "empty", "empty", NULL, NULL, 0);
    pthread_mutex_lock(&ds_lock);
    entry_get(name);
    pthread_mutex_unlock(&ds_lock);
    return 0;
}

/* 1 when NAME's coco.json is our generated export (not a user's file). */
static int export_is_ours(const char *name)
{
    char path[FS_PATH_MAX];
    if (fs_store_path(path, sizeof path, AREA, name))
        return 0;
    size_t l = strlen(path);
    if (snprintf(path + l, sizeof path - l, "/%s", FS_DS_EXPORT_MARK) >= (int)(sizeof path - l))
        return 0;
    return faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static int ds_rmdir_item(const char *name)
{
    char path[FS_PATH_MAX];
    int rc = fs_store_path(path, sizeof path, AREA, name);
    if (rc)
        return rc;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *de;
    int user_files = 0;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strncmp(nm, ".vfs", 4) == 0 ||
            is_generated(nm) || (strcmp(nm, FS_DS_EXPORT) == 0 && export_is_ours(name)))
            continue;
        user_files = 1;
        break;
    }
    closedir(d);
    if (user_files)
        return -ENOTEMPTY;
    fs_fetch_cancel(name);
    rc = fs_discard_tree(path);
    if (rc)
        return rc;
    entry_remove(name);
    return 0;
}

static int ds_rename_item(const char *from, const char *to)
{
    char a[FS_PATH_MAX], b[FS_PATH_MAX];
    if (fs_store_path(a, sizeof a, AREA, from) || fs_store_path(b, sizeof b, AREA, to))
        return -ENAMETOOLONG;
    fs_fetch_cancel(from); /* queued again under the new name */
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE) != 0)
        return -errno;
    pthread_mutex_lock(&ds_lock);
    ds_entry *e = entry_find(from), *extra = NULL;
    if (e) {
        /* a notice about `to` that came since the folder moved made a
         * record of that name: it holds nothing but that notice (the
         * mark_dirty below stands for it), and left there it would outlive
         * the dataset */
        extra = entry_find(to);
        if (extra)
            extra = entry_retire(extra);
        snprintf(e->name, sizeof e->name, "%s", to);
    }
    pthread_mutex_unlock(&ds_lock);
    entry_free(extra);
    mark_dirty(to, 1);
    return 0;
}

static int ds_is_readonly(const char *rel)
{
    char name[72];
    const char *rest = split_rel(rel, name, sizeof name);
    return is_generated(rest) || (strcmp(rest, FS_DS_EXPORT) == 0 && export_is_ours(name));
}

static int64_t ds_max_size(const char *rel)
{
    char name[72];
    const char *rest = split_rel(rel, name, sizeof name);
    if (*rest && !strchr(rest, '/') && fs_ends_with(rest, ".json"))
        return ANN_MAX_BYTES;
    return FS_MAX_FILE_DEFAULT;
}

static int ds_validate_write(const char *rel, const char *tmp_path, char *why, size_t why_len)
{
    char name[72];
    const char *rest = split_rel(rel, name, sizeof name);
    if (strcmp(rest, "dataset.json") == 0)
        return fs_fetch_dataset_json_check(tmp_path, why, why_len);
    if (!is_annotation(rest))
        return 0;
    char msg[512];
    ds_parsed *p = parse_file(tmp_path, rest, msg, sizeof msg);
    /* parsing a big file leaves the JSON tree's memory in this thread's
     * malloc arena; give it back to the system */
    malloc_trim(0);
    if (!p) {
        snprintf(why, why_len, "%s", msg);
        pthread_mutex_lock(&ds_lock);
        ds_entry *e = entry_live(name);
        int kept = 0; /* a good annotation file stays in use */
        if (e) {
            snprintf(e->refused, sizeof e->refused, "\"%.80s\" refused: %.400s", rest, msg);
            snprintf(e->refused_file, sizeof e->refused_file, "%s", rest);
            e->refused_at = time(NULL);
            snprintf(msg, sizeof msg, "%s", e->refused);
            kept = e->ann != NULL;
        }
        pthread_mutex_unlock(&ds_lock);
        fs_log("dataset \"%s\": %s%s", name, msg,
               kept ? " (the previous annotation file is kept)" : "");
        /* no good file yet: say it at once, whatever the verifier is doing
         * (with one, the status line stays what that file makes it) */
        char line[600], text[1200];
        snprintf(line, sizeof line, "invalid: datasetAnnotationsInvalid: %.500s", msg);
        status_text(text, sizeof text, line);
        char dir[FS_PATH_MAX], path[FS_PATH_MAX];
        if (!kept && fs_store_path(dir, sizeof dir, AREA, name) == 0 &&
            snprintf(path, sizeof path, "%s/status", dir) < (int)sizeof path)
            fs_write_atomic(path, text, strlen(text));
        mark_dirty(name, 1);
        return -EINVAL;
    }
    fs_fetch_forget_failed(name); /* a new annotation file: try failed downloads again */
    pthread_mutex_lock(&ds_lock);
    ds_entry *e = entry_live(name);
    ds_parsed *old = NULL;
    if (e) {
        old = e->ann;
        e->ann = p;
        e->refused[0] = '\0';
        e->refused_file[0] = '\0';
    } else {
        old = p;
    }
    pthread_mutex_unlock(&ds_lock);
    parsed_unref(old);
    return 0;
}

/* The validator reads annotation files and dataset.json; images pass by
 * name (the verifier checks them later). */
static int ds_validate_reads(const char *rel)
{
    char name[72];
    const char *rest = split_rel(rel, name, sizeof name);
    return strcmp(rest, "dataset.json") == 0 || is_annotation(rest);
}

/* An annotation file whose write failed before close (a full disk, too
 * large): said in status.json as lastRefusedWrite, like a file refused
 * for its content. A full disk gives back the store's reserve so that the
 * status can still be written. */
static void ds_write_failed(const char *rel, int err)
{
    char name[72];
    const char *rest = split_rel(rel, name, sizeof name);
    if (!is_annotation(rest))
        return;
    if (fs_disk_full(err))
        fs_store_release_reserve();
    pthread_mutex_lock(&ds_lock);
    ds_entry *e = entry_live(name);
    if (e) {
        snprintf(e->refused, sizeof e->refused, "\"%.80s\" refused: %s%s", rest, strerror(err),
                 fs_disk_full(err) ? " (the store's disk is full: free space "
                                     "there and copy the file again)"
                                   : "");
        snprintf(e->refused_file, sizeof e->refused_file, "%s", rest);
        e->refused_at = time(NULL);
    }
    pthread_mutex_unlock(&ds_lock);
    mark_dirty(name, 1);
}

static void ds_committed(const char *rel)
{
    char name[72];
    const char *rest = split_rel(rel, name, sizeof name);
    mark_dirty_as(name, is_annotation(rest) || *rest == '\0', fs_ds_is_image_name(rest));
    if (strcmp(rest, "dataset.json") == 0) {
        char path[FS_PATH_MAX];
        if (fs_store_path(path, sizeof path, AREA, rel) == 0)
            fs_fetch_dataset_json(name, path);
    }
}

static void ds_unlinked(const char *rel)
{
    char name[72];
    const char *rest = split_rel(rel, name, sizeof name);
    if (is_annotation(rest)) {
        pthread_mutex_lock(&ds_lock);
        ds_entry *e = entry_find(name);
        if (e && strcmp(e->refused_file, rest) == 0)
            e->refused[0] = e->refused_file[0] = '\0';
        pthread_mutex_unlock(&ds_lock);
    }
    mark_dirty(name, is_annotation(rest));
}

static void ds_start(void)
{
    pthread_mutex_lock(&ds_lock);
    if (verifier_running) {
        pthread_mutex_unlock(&ds_lock);
        return;
    }
    stopping = 0;
    pthread_mutex_unlock(&ds_lock);
    /* every dataset in the store is verified again (status comes back after
     * a crash; files may have changed behind our back) */
    char dir[FS_PATH_MAX];
    if (fs_store_path(dir, sizeof dir, AREA, NULL) == 0) {
        DIR *d = opendir(dir);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                if (fs_name_valid(de->d_name) && de->d_type == DT_DIR)
                    mark_dirty(de->d_name, 1);
            }
            closedir(d);
        }
    }
    fs_fetch_start(fs_dataset_touch);
    if (pthread_create(&verifier, NULL, verifier_main, NULL) == 0) {
        pthread_mutex_lock(&ds_lock);
        verifier_running = 1;
        pthread_mutex_unlock(&ds_lock);
    } else {
        fs_log("datasets: cannot start the verifier thread");
    }
}

static void ds_stop(void)
{
    pthread_mutex_lock(&ds_lock);
    int running = verifier_running;
    stopping = 1;
    pthread_cond_broadcast(&ds_cond);
    pthread_mutex_unlock(&ds_lock);
    if (running)
        pthread_join(verifier, NULL);
    fs_fetch_stop();
    pthread_mutex_lock(&ds_lock);
    verifier_running = 0;
    ds_entry *list = entries;
    entries = NULL;
    pthread_cond_broadcast(&ds_done);
    pthread_mutex_unlock(&ds_lock);
    while (list) {
        ds_entry *nx = list->next;
        parsed_unref(list->ann);
        parsed_unref(list->report_ann);
        entry_free_unlocked(list);
        list = nx;
    }
}

const fs_area fs_area_datasets = {
    .name = AREA,
    .mkdir_item = ds_mkdir_item,
    .rmdir_item = ds_rmdir_item,
    .rename_item = ds_rename_item,
    .is_readonly = ds_is_readonly,
    .validate_write = ds_validate_write,
    .write_failed = ds_write_failed,
    .committed = ds_committed,
    .unlinked = ds_unlinked,
    .max_size = ds_max_size,
    .start = ds_start,
    .stop = ds_stop,
    .validate_reads = ds_validate_reads,
};

/* ---- for models/ ---- */

static int dataset_exists(const char *name)
{
    char path[FS_PATH_MAX];
    struct stat st;
    if (!fs_name_valid(name) || fs_store_path(path, sizeof path, AREA, name))
        return 0;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

fs_ds_state fs_dataset_state(const char *name, int *detection, char *line, size_t n)
{
    if (!dataset_exists(name)) {
        if (line && n)
            snprintf(line, n, "dataset \"%s\" not found", name);
        return FS_DS_NOTFOUND;
    }
    pthread_mutex_lock(&ds_lock);
    ds_entry *e = entry_find(name);
    fs_ds_state st = e ? e->state : FS_DS_VERIFYING;
    if (e && (e->dirty || e->busy))
        st = FS_DS_VERIFYING;
    if (detection)
        *detection = e ? e->detection : 0;
    if (line && n)
        snprintf(line, n, "%s", e ? e->line : "verifying");
    pthread_mutex_unlock(&ds_lock);
    return st;
}

fs_ds_state fs_dataset_wait(const char *name, int timeout_ms)
{
    if (!dataset_exists(name))
        return FS_DS_NOTFOUND;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ds_lock);
    for (;;) {
        ds_entry *e = entry_find(name);
        if (e && !e->dirty && !e->busy)
            break;
        if (!verifier_running || stopping)
            break;
        if (pthread_cond_timedwait(&ds_done, &ds_lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&ds_lock);
    return fs_dataset_state(name, NULL, NULL, 0);
}

void fs_dataset_snapshot_free(fs_ds_snapshot *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nimages; i++)
        free((void *)s->images[i].path);
    for (int i = 0; i < s->ncategories; i++)
        free((void *)s->categories[i]);
    free((void *)s->images);
    free((void *)s->categories);
    free((void *)s->category_ids);
    free((void *)s->name);
    /* the boxes live in one block whose pointer follows the struct */
    eng_box **blk = (eng_box **)(s + 1);
    free(*blk);
    free(s);
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The snapshot's categories (names and ids). With for_training, a category
 * with one image makes the dataset FS_DS_INVALID (why says which). */
static fs_ds_state snap_categories(fs_ds_snapshot *s, const coco_dataset *cd,
                                   const coco_report *rep, int for_training, char *why, size_t n)
{
    const char **cats = (const char **)s->categories;
    int64_t *cids = (int64_t *)s->category_ids;
    fs_ds_state result = FS_DS_READY;
    for (int c = 0; c < s->ncategories; c++) {
        const coco_category *cat = coco_dataset_category(cd, (size_t)c);
        cats[c] = strdup(cat->name ? cat->name : "");
        cids[c] = cat->id;
        if (!cats[c])
            return FS_DS_ENOMEM;
        if (for_training && coco_report_category_images(rep, (size_t)c) == 1) {
            if (why && n)
                snprintf(why, n,
                         "category \"%s\" has 1 image: training needs at least 2 per category",
                         cats[c]);
            result = FS_DS_INVALID;
        }
    }
    return result;
}

/* The images the report found usable, with their store paths; slot[i] is
 * image i's place in the snapshot (-1: left out). */
static fs_ds_state snap_images(fs_ds_snapshot *s, const ds_entry *e, const coco_dataset *cd,
                               const coco_report *rep, int *slot)
{
    eng_sample *imgs = (eng_sample *)s->images;
    size_t ni = coco_dataset_image_count(cd);
    int m = 0;
    for (size_t i = 0; i < ni; i++) {
        slot[i] = -1;
        const coco_image *im = coco_dataset_image(cd, i);
        if (coco_report_image_status(rep, i) != COCO_IMAGE_OK || i >= e->n_found || !e->found[i])
            continue;
        char path[FS_PATH_MAX];
        if (fs_store_path(path, sizeof path, AREA, s->name))
            continue;
        size_t pl = strlen(path);
        snprintf(path + pl, sizeof path - pl, "/%s", e->found[i]);
        imgs[m].path = strdup(path);
        if (!imgs[m].path)
            return FS_DS_ENOMEM;
        imgs[m].id = im->id;
        imgs[m].width = (int)im->width;
        imgs[m].height = (int)im->height;
        imgs[m].label = -1;
        slot[i] = m++;
        s->nimages = m;
    }
    return FS_DS_READY;
}

/* Each image's label (its first annotation without a box) and boxes (in
 * pixels, clamped to the image), placed contiguously in blk. In a multilabel
 * dataset each distinct category of an image is one box of zero size: its
 * tags (engine/recipes/recipe.h). */
static void snap_annotations(fs_ds_snapshot *s, const coco_dataset *cd, const int *slot, int *nbox,
                             eng_box *blk)
{
    eng_sample *imgs = (eng_sample *)s->images;
    size_t na = coco_dataset_annotation_count(cd);
    for (size_t a = 0; a < na; a++) {
        const coco_annotation *an = coco_dataset_annotation(cd, a);
        long ii = coco_dataset_find_image(cd, an->image_id);
        if (ii >= 0 && slot[ii] >= 0 && (an->has_bbox || s->detection == FS_DATA_TAGS))
            nbox[slot[ii]]++;
    }
    size_t off = 0;
    for (int k = 0; k < s->nimages; k++) {
        imgs[k].boxes = blk + off;
        off += (size_t)nbox[k];
    }
    for (size_t a = 0; a < na; a++) {
        const coco_annotation *an = coco_dataset_annotation(cd, a);
        long ii = coco_dataset_find_image(cd, an->image_id);
        long ci = coco_dataset_find_category(cd, an->category_id);
        if (ii < 0 || slot[ii] < 0 || ci < 0)
            continue;
        eng_sample *im = &imgs[slot[ii]];
        if (s->detection == FS_DATA_TAGS) {
            int dup = 0;
            for (int k = 0; k < im->nboxes && !dup; k++)
                dup = im->boxes[k].category == (int)ci;
            if (!dup)
                ((eng_box *)&im->boxes[im->nboxes++])->category = (int)ci;
            if (im->label < 0)
                im->label = (int)ci;
            continue;
        }
        if (!an->has_bbox) {
            if (im->label < 0)
                im->label = (int)ci;
            continue;
        }
        double r[4];
        if (coco_annotation_box_relative(cd, an, r, NULL) != COCO_OK)
            continue;
        double x0 = clampd(r[0], 0, 1), y0 = clampd(r[1], 0, 1);
        double x1 = clampd(r[0] + r[2], 0, 1), y1 = clampd(r[1] + r[3], 0, 1);
        if (x1 <= x0 || y1 <= y0)
            continue;
        eng_box *b = (eng_box *)&im->boxes[im->nboxes++];
        b->category = (int)ci;
        b->x = (float)(x0 * im->width);
        b->y = (float)(y0 * im->height);
        b->w = (float)((x1 - x0) * im->width);
        b->h = (float)((y1 - y0) * im->height);
    }
}

fs_ds_state fs_dataset_snapshot(const char *name, int for_training, fs_ds_snapshot **out, char *why,
                                size_t n)
{
    *out = NULL;
    fs_ds_state st = fs_dataset_wait(name, 10000);
    if (st != FS_DS_READY) {
        fs_dataset_state(name, NULL, why, n);
        if (st == FS_DS_VERIFYING && why && n)
            snprintf(why, n, "dataset \"%s\" is still being verified", name);
        return st;
    }
    /* snapshot struct followed by the pointer to its box block */
    fs_ds_snapshot *s = calloc(1, sizeof *s + sizeof(eng_box *));
    if (!s)
        return FS_DS_ENOMEM;
    eng_box **blk = (eng_box **)(s + 1);
    pthread_mutex_lock(&ds_lock);
    ds_entry *e = entry_find(name);
    if (!e || !e->report || !e->report_ann || e->state != FS_DS_READY) {
        pthread_mutex_unlock(&ds_lock);
        free(s);
        if (why && n)
            snprintf(why, n, "dataset \"%s\" is not ready", name);
        return e ? FS_DS_VERIFYING : FS_DS_NOTFOUND;
    }
    const coco_dataset *cd = e->report_ann->coco;
    const coco_report *rep = e->report;
    size_t ni = coco_dataset_image_count(cd), na = coco_dataset_annotation_count(cd),
           nc = coco_dataset_category_count(cd);
    s->name = strdup(name);
    s->detection = e->detection;
    s->ncategories = (int)nc;
    s->categories = calloc(nc ? nc : 1, sizeof *s->categories);
    s->category_ids = calloc(nc ? nc : 1, sizeof *s->category_ids);
    s->images = calloc(ni ? ni : 1, sizeof *s->images);
    int *slot = malloc((ni ? ni : 1) * sizeof *slot);
    int *nbox = calloc(ni ? ni : 1, sizeof *nbox);
    *blk = calloc(na ? na : 1, sizeof **blk);
    fs_ds_state result = FS_DS_ENOMEM;
    if (s->name && s->categories && s->category_ids && s->images && slot && nbox && *blk)
        result = snap_categories(s, cd, rep, for_training, why, n);
    if (result == FS_DS_READY)
        result = snap_images(s, e, cd, rep, slot);
    if (result == FS_DS_READY)
        snap_annotations(s, cd, slot, nbox, *blk);
    pthread_mutex_unlock(&ds_lock);
    free(slot);
    free(nbox);
    if (result != FS_DS_READY) {
        if (result == FS_DS_ENOMEM && why && n)
            snprintf(why, n, "out of memory");
        /* categories may be partly filled: free what exists */
        for (size_t c = 0; s->categories && c < nc; c++)
            free((void *)s->categories[c]);
        s->ncategories = 0;
        fs_dataset_snapshot_free(s);
        return result;
    }
    *out = s;
    return FS_DS_READY;
}

void fs_dataset_touch(const char *name) { mark_dirty(name, 0); }
