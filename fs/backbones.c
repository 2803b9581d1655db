/* backbones.c: the backbones/ area: the installed pretrained backbones.
 *
 * Design: the listing merges two folders: the backbones the set-up installed
 * for everyone (${XDG_DATA_HOME:-~/.local/share}/visionfs/backbones, shown
 * read-only) and STORE/backbones, where `cp -r` of a tfjs graph-model folder
 * adds one. When the store is the default store both are the same folder.
 * Loading and checking a backbone is the engine's job; this file lists,
 * stores and reports: every backbone gets a generated, read-only
 * backbones/NAME/status ("ok: NAME, input WxH, embedding DIM" or "invalid:
 * why"), written by a thread of this area at start and again (debounced)
 * after files under backbones/ change. An installed backbone's status lives
 * in a folder of the same name in the store that holds only that file: reads
 * of the other files fall through to the installed folder, and everything
 * under such a name stays read-only as before. */
#include "backbones.h"

#include "area.h"

#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char default_dir[FS_PATH_MAX];
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_dir_init(void)
{
    const char *env = getenv("VISIONFS_BACKBONES"); /* as scripts/fetch-backbones.sh */
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (env && *env)
        snprintf(default_dir, sizeof default_dir, "%s", env);
    else if (xdg && *xdg)
        snprintf(default_dir, sizeof default_dir, "%s/visionfs/backbones", xdg);
    else if (home && *home)
        snprintf(default_dir, sizeof default_dir, "%s/.local/share/visionfs/backbones", home);
    else
        default_dir[0] = '\0';
}

const char *fs_backbones_default_dir(void)
{
    pthread_once(&default_once, default_dir_init);
    return default_dir;
}

static int installed_only(const char *name);

int fs_backbones_find(const char *name, char *out, size_t n)
{
    struct stat st;
    if (!fs_name_valid(name))
        return -EINVAL;
    if (fs_store_path(out, n, "backbones", name) == 0 && stat(out, &st) == 0 &&
        S_ISDIR(st.st_mode) && !installed_only(name))
        return 0;
    const char *d = fs_backbones_default_dir();
    if (*d && snprintf(out, n, "%s/%s", d, name) < (int)n && stat(out, &st) == 0 &&
        S_ISDIR(st.st_mode))
        return 0;
    return -ENOENT;
}

/* 1 when the default folder has backbone NAME and the store's folder of
 * that name, if any, is only the shadow holding its status. */
static int installed_only(const char *name)
{
    const char *d = fs_backbones_default_dir();
    char path[FS_PATH_MAX], store[FS_PATH_MAX];
    struct stat st;
    if (!*d || snprintf(path, sizeof path, "%s/%s", d, name) >= (int)sizeof path ||
        stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    if (fs_store_path(store, sizeof store, "backbones", name))
        return 0;
    if (strcmp(store, path) == 0) /* the store is the default store */
        return 0;
    DIR *dir = opendir(store);
    if (!dir)
        return 1;
    int only = 1;
    struct dirent *e;
    while (only && (e = readdir(dir)))
        only = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
               strcmp(e->d_name, "status") == 0;
    closedir(dir);
    return only;
}

/* ---- status files ---- */

static pthread_mutex_t bb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bb_cond = PTHREAD_COND_INITIALIZER;
static pthread_t bb_thread;
static int bb_running, bb_stopping, bb_dirty;
static double bb_due;

/* Last status written per backbone, keyed by folder and a signature of its
 * top-level files, so unchanged backbones are not loaded again. */
typedef struct bb_seen {
    struct bb_seen *next;
    char name[72];
    char sig[128];
} bb_seen;
static bb_seen *bb_cache; /* thread only */

/* Sizes and mtimes of the folder's files, folded into a short string. */
static void dir_signature(const char *dir, char *out, size_t n)
{
    unsigned long long h = 1469598103934665603ULL;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "status") == 0)
            continue;
        char p[4400];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p || stat(p, &st) != 0)
            continue;
        unsigned long long v = (unsigned long long)st.st_size * 1000003ULL ^
                               (unsigned long long)st.st_mtim.tv_sec * 7919ULL ^
                               (unsigned long long)st.st_mtim.tv_nsec;
        for (const char *c = e->d_name; *c; c++)
            v = v * 131 + (unsigned char)*c;
        h ^= v; /* order of readdir does not matter */
        h *= 1099511628211ULL;
        h ^= h >> 29;
    }
    if (d)
        closedir(d);
    unsigned long long hd = 1469598103934665603ULL; /* the folder itself */
    for (const char *c = dir; *c; c++)
        hd = (hd ^ (unsigned char)*c) * 1099511628211ULL;
    snprintf(out, n, "%llx:%llx", hd, h);
}

/* The status line of the backbone in dir. */
static void backbone_status_line(const char *name, const char *dir, char *out, size_t n)
{
    eng_diag d = {{0}};
    eng_backbone *bb = NULL;
    eng_status st = eng_backbone_open(dir, &bb, &d);
    if (st != ENG_OK) {
        /* the folder's path is ours, not the user's: show backbones/NAME */
        char msg[600];
        snprintf(msg, sizeof msg, "%s", d.msg[0] ? d.msg : eng_status_name(st));
        char *at = strstr(msg, dir);
        if (at) {
            char tail[600];
            snprintf(tail, sizeof tail, "%s", at + strlen(dir));
            snprintf(at, sizeof msg - (size_t)(at - msg), "backbones/%s%s", name, tail);
        }
        /* the message quotes the folder's files: one line, escaped */
        size_t o = (size_t)snprintf(out, n, "invalid: ");
        o += fs_line_escape(out + o, n - o - 1, msg);
        snprintf(out + o, n - o, "\n");
        return;
    }
    const eng_backbone_info *in = eng_backbone_get_info(bb);
    snprintf(out, n, "ok: %s, input %dx%d, embedding %d\n", name, in->input_w, in->input_h,
             in->embedding_dim);
    eng_backbone_free(bb);
}

/* Writes backbones/NAME/status when the folder changed since the last time
 * (or the file is missing). dir is where the backbone's files are. */
static void status_update(const char *name, const char *dir)
{
    char store[FS_PATH_MAX], path[FS_PATH_MAX + 8], sig[128];
    struct stat st;
    if (fs_store_path(store, sizeof store, "backbones", name) ||
        snprintf(path, sizeof path, "%s/status", store) >= (int)sizeof path)
        return;
    dir_signature(dir, sig, sizeof sig);
    bb_seen *c = bb_cache;
    while (c && strcmp(c->name, name) != 0)
        c = c->next;
    if (c && strcmp(c->sig, sig) == 0 && stat(path, &st) == 0)
        return;
    char line[2500];
    backbone_status_line(name, dir, line, sizeof line);
    if (strcmp(dir, store) != 0 && mkdir(store, 0755) != 0 && errno != EEXIST)
        return;
    if (stat(store, &st) != 0 || fs_write_atomic(path, line, strlen(line)) != 0)
        return; /* removed meanwhile */
    if (strncmp(line, "ok", 2) != 0)
        fs_log("backbone \"%s\" cannot be used: %.*s", name, (int)strlen(line) - 1, line);
    if (!c && (c = calloc(1, sizeof *c)) != NULL) {
        snprintf(c->name, sizeof c->name, "%.71s", name);
        c->next = bb_cache;
        bb_cache = c;
    }
    if (c)
        snprintf(c->sig, sizeof c->sig, "%s", sig);
}

/* Status of every backbone: the store's folders, then the installed ones
 * not shadowed by a user's folder of the same name. */
static void status_all(void)
{
    const char *roots[2];
    char store[FS_PATH_MAX];
    roots[0] = fs_store_path(store, sizeof store, "backbones", NULL) == 0 ? store : NULL;
    roots[1] = fs_backbones_default_dir();
    for (int r = 0; r < 2; r++) {
        DIR *d = roots[r] && *roots[r] ? opendir(roots[r]) : NULL;
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!fs_name_valid(e->d_name))
                continue;
            char dir[FS_PATH_MAX];
            struct stat st;
            if (snprintf(dir, sizeof dir, "%s/%s", roots[r], e->d_name) >= (int)sizeof dir ||
                stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
                continue;
            if (r == 0 && installed_only(e->d_name))
                continue; /* a shadow: done with the installed folder */
            if (r == 1) {
                char mine[FS_PATH_MAX];
                if (fs_backbones_find(e->d_name, mine, sizeof mine) == 0 &&
                    strcmp(mine, dir) != 0 && !installed_only(e->d_name))
                    continue; /* the store's folder of that name wins */
            }
            status_update(e->d_name, dir);
            pthread_mutex_lock(&bb_lock);
            int stop = bb_stopping;
            pthread_mutex_unlock(&bb_lock);
            if (stop)
                break;
        }
        if (d)
            closedir(d);
    }
}

static void *bb_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bb_lock);
    while (!bb_stopping) {
        if (!bb_dirty) {
            pthread_cond_wait(&bb_cond, &bb_lock);
            continue;
        }
        double wait = bb_due - fs_now();
        if (wait > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)wait;
            ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&bb_cond, &bb_lock, &ts);
            continue;
        }
        bb_dirty = 0;
        pthread_mutex_unlock(&bb_lock);
        status_all();
        pthread_mutex_lock(&bb_lock);
    }
    pthread_mutex_unlock(&bb_lock);
    return NULL;
}

/* Asks for a recomputation after things have been quiet for delay seconds
 * (a cp -r commits many files: one run after the last). */
static void bb_mark(double delay)
{
    pthread_mutex_lock(&bb_lock);
    bb_dirty = 1;
    bb_due = fs_now() + delay;
    pthread_cond_signal(&bb_cond);
    pthread_mutex_unlock(&bb_lock);
}

static void backbones_committed(const char *rel)
{
    (void)rel;
    bb_mark(1.0);
}

static void backbones_unlinked(const char *rel)
{
    (void)rel;
    bb_mark(1.0);
}

static void backbones_start(void)
{
    pthread_mutex_lock(&bb_lock);
    if (bb_running) {
        pthread_mutex_unlock(&bb_lock);
        return;
    }
    bb_stopping = 0;
    bb_dirty = 1;
    bb_due = fs_now();
    bb_running = pthread_create(&bb_thread, NULL, bb_main, NULL) == 0;
    pthread_mutex_unlock(&bb_lock);
}

static void backbones_stop(void)
{
    pthread_mutex_lock(&bb_lock);
    if (!bb_running) {
        pthread_mutex_unlock(&bb_lock);
        return;
    }
    bb_stopping = 1;
    pthread_cond_signal(&bb_cond);
    pthread_mutex_unlock(&bb_lock);
    pthread_join(bb_thread, NULL);
    pthread_mutex_lock(&bb_lock);
    bb_running = 0;
    while (bb_cache) {
        bb_seen *c = bb_cache;
        bb_cache = c->next;
        free(c);
    }
    pthread_mutex_unlock(&bb_lock);
}

static int backbones_mkdir_item(const char *name)
{
    char path[FS_PATH_MAX];
    int rc = fs_store_path(path, sizeof path, "backbones", name);
    if (rc)
        return rc;
    return mkdir(path, 0755) == 0 ? 0 : -errno;
}

static int backbones_rmdir_item(const char *name)
{
    char path[FS_PATH_MAX];
    if (installed_only(name))
        return -EACCES; /* an installed backbone stays */
    int rc = fs_store_path(path, sizeof path, "backbones", name);
    if (rc)
        return rc;
    rc = fs_discard_tree(path);
    bb_mark(0.2); /* an installed one of that name shows again */
    return rc;
}

static int backbones_rename_item(const char *from, const char *to)
{
    char a[FS_PATH_MAX], b[FS_PATH_MAX];
    if (installed_only(from))
        return -EACCES;
    if (fs_store_path(a, sizeof a, "backbones", from) ||
        fs_store_path(b, sizeof b, "backbones", to))
        return -ENAMETOOLONG;
    if (rename(a, b) != 0)
        return -errno;
    bb_mark(0.2);
    return 0;
}

static int backbones_is_readonly(const char *rel)
{
    const char *slash = strchr(rel, '/');
    if (!slash)
        return 0;
    if (strcmp(slash + 1, "status") == 0)
        return 1;
    char name[72];
    size_t len = (size_t)(slash - rel);
    if (len >= sizeof name)
        return 0;
    memcpy(name, rel, len);
    name[len] = '\0';
    return installed_only(name); /* under an installed backbone's shadow */
}

static int64_t backbones_max_size(const char *rel)
{
    (void)rel;
    return (int64_t)1 << 31; /* weight shards are large */
}

static const char *backbones_extra_root(void) { return fs_backbones_default_dir(); }

const fs_area fs_area_backbones = {
    .name = "backbones",
    .mkdir_item = backbones_mkdir_item,
    .rmdir_item = backbones_rmdir_item,
    .rename_item = backbones_rename_item,
    .is_readonly = backbones_is_readonly,
    .committed = backbones_committed,
    .unlinked = backbones_unlinked,
    .max_size = backbones_max_size,
    .start = backbones_start,
    .stop = backbones_stop,
    .extra_root = backbones_extra_root,
};
