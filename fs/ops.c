/* ops.c: the FUSE operations: map mount paths onto the store and dispatch
 * to the area hooks of fs/area.h.
 *
 * Design: reads pass straight through to store files (open() pins the
 * inode, so a generated file replaced by rename mid-read stays whole), and
 * every reader is opened with direct_io so a size in the kernel's cache
 * never truncates a read (see vfs_open). Every write goes to a private file without
 * a name (O_TMPFILE) in the store folder where it will live; flush (what
 * close() returns) asks the area to validate it (through a name in
 * STORE/.tmp when the validator reads it) and links it into place (renames,
 * when it replaces a file), or discards it and returns the error, so a
 * refused or oversized write never replaces the previous good file and a
 * crash leaves nothing behind. While a file is
 * being written its temp is found through a small table of open writers so
 * stat, fstat and O_APPEND see its growing size. Handlers only do file
 * system calls; anything slow is the areas' threads' job.
 */
#include "ops.h"

#include "area.h"
#include "http.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

static const fs_area *const areas[] = {&fs_area_datasets, &fs_area_models, &fs_area_backbones};
#define N_AREAS (sizeof areas / sizeof areas[0])

/* ---- mount paths ---- */

typedef enum vp_kind { VP_ROOT, VP_README, VP_AREA, VP_ITEM, VP_SUB } vp_kind;

typedef struct vpath {
    vp_kind kind;
    const fs_area *area;
    const char *rel; /* "NAME" or "NAME/sub"; "" for VP_AREA */
} vpath;

/* Parses a mount path; -ENOENT for unknown top-level names or hidden
 * bookkeeping components. */
static int vpath_parse(const char *path, vpath *vp)
{
    memset(vp, 0, sizeof *vp);
    vp->rel = "";
    if (!path || path[0] != '/')
        return -ENOENT;
    const char *p = path + 1;
    if (*p == '\0') {
        vp->kind = VP_ROOT;
        return 0;
    }
    if (strcmp(p, "README") == 0) {
        vp->kind = VP_README;
        return 0;
    }
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    for (size_t i = 0; i < N_AREAS; i++) {
        if (strlen(areas[i]->name) == len && memcmp(areas[i]->name, p, len) == 0)
            vp->area = areas[i];
    }
    if (!vp->area)
        return -ENOENT;
    if (!slash || slash[1] == '\0') {
        vp->kind = VP_AREA;
        return 0;
    }
    vp->rel = slash + 1;
    vp->kind = strchr(vp->rel, '/') ? VP_SUB : VP_ITEM;
    /* no hidden bookkeeping, no dot components */
    for (const char *c = vp->rel; c; c = strchr(c, '/')) {
        if (*c == '/')
            c++;
        if (strncmp(c, ".vfs", 4) == 0 || strcmp(c, ".") == 0 || strncmp(c, "./", 2) == 0 ||
            strcmp(c, "..") == 0 || strncmp(c, "../", 3) == 0)
            return -ENOENT;
    }
    if (vp->area->is_visible && !vp->area->is_visible(vp->rel))
        return -ENOENT;
    return 0;
}

static int is_readonly(const vpath *vp)
{
    if (vp->kind == VP_SUB)
        return vp->area->is_readonly && vp->area->is_readonly(vp->rel);
    return 0;
}

static const char *extra_root(const fs_area *a)
{
    const char *r = a->extra_root ? a->extra_root() : NULL;
    return (r && *r) ? r : NULL;
}

/* Store path of vp. With `extra`, falls back to the area's extra root when
 * the store has no such entry, and sets *in_extra. */
static int vpath_resolve(const vpath *vp, char *out, size_t n, int *in_extra)
{
    if (in_extra)
        *in_extra = 0;
    int rc = vp->area ? fs_store_path(out, n, vp->area->name, vp->rel)
                      : (snprintf(out, n, "%s", fs_store_root()) >= (int)n ? -ENAMETOOLONG : 0);
    if (rc || !in_extra || !vp->area || vp->kind == VP_AREA)
        return rc;
    const char *er = extra_root(vp->area);
    struct stat st;
    if (!er || lstat(out, &st) == 0)
        return 0;
    char alt[FS_PATH_MAX];
    if (snprintf(alt, sizeof alt, "%s/%s", er, vp->rel) >= (int)sizeof alt)
        return 0;
    if (lstat(alt, &st) == 0) {
        snprintf(out, n, "%s", alt);
        *in_extra = 1;
    }
    return 0;
}

/* 1 when vp's item exists only in the area's read-only extra root. */
static int item_in_extra_only(const vpath *vp)
{
    const char *er = extra_root(vp->area);
    if (!er || (vp->kind != VP_ITEM && vp->kind != VP_SUB))
        return 0;
    size_t len = strcspn(vp->rel, "/");
    char sp[FS_PATH_MAX], alt[FS_PATH_MAX];
    struct stat st;
    if (fs_store_path(sp, sizeof sp, vp->area->name, "") ||
        snprintf(sp + strlen(sp), sizeof sp - strlen(sp), "/%.*s", (int)len, vp->rel) >=
            (int)(sizeof sp - strlen(sp)) ||
        snprintf(alt, sizeof alt, "%s/%.*s", er, (int)len, vp->rel) >= (int)sizeof alt)
        return 0;
    return lstat(sp, &st) != 0 && lstat(alt, &st) == 0;
}

/* ---- open files ---- */

typedef struct fs_fh {
    int fd;
    int writer;
    int readme;
    pthread_mutex_t lock;
    const fs_area *area;
    char *path;  /* mount path (writers) */
    char *rel;   /* area-relative path (writers) */
    char *rpath; /* mount path of a reader of a writable file (see vfs_open) */
    char tmp[FS_PATH_MAX];
    int64_t max;
    int dirty;           /* content differs from the committed file */
    int written;         /* write() was called (a shell's `> f` closes a dup first) */
    int failed;          /* -errno to report at flush (e.g. -EFBIG) */
    int committed;       /* the temp has been renamed into place */
    int discarded;       /* the temp has been refused and removed */
    atomic_int unlinked; /* its name was unlinked while open: close commits nothing */
    unsigned gen;        /* bumped when rename moves path/rel (names_lock) */
    atomic_int moved;    /* renamed while open: close gives it the new name */
    atomic_int touched;  /* truncated by path or fd: close() commits, as for a write */
    int created;         /* no file had the name at open (see writer_hold_name) */
    int held;            /* an empty file holds the name (writer_hold_name), */
    ino_t held_ino;      /* this inode */
    dev_t held_dev;      /* on this device */
    int result;          /* what flush returns once finished */
    char why[512];       /* the area's reason when validate_write refused it */
    struct fs_fh *next;
    struct fs_fh *all_prev, *all_next; /* every open handle (open_lock) */
} fs_fh;

/* Every open file handle, so the ones the kernel never released (the loop
 * ended by a signal with RELEASE requests still queued) are freed at
 * destroy. Lock order: open_lock is a leaf. */
static fs_fh *open_list;
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

/* Open writers by mount path, so lookups see a file while it is written.
 * Lock order: pending_lock is a leaf (no other lock is taken under it).
 *
 * names_lock guards a pending writer's name (path, rel, gen, unlinked): an
 * unlink or rename of a file open for writing holds it exclusive while it
 * moves or detaches the writers of that name and changes the store; a
 * commit holds it shared while it gives the file its name, so a name
 * removed or moved by then is never brought back. Order: fh->lock, then
 * names_lock, then pending_lock. */
static pthread_rwlock_t names_lock = PTHREAD_RWLOCK_INITIALIZER;
#define PENDING_BUCKETS 1024
static fs_fh *pending[PENDING_BUCKETS];
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned path_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % PENDING_BUCKETS;
}

static void pending_add(fs_fh *fh)
{
    unsigned h = path_hash(fh->path);
    pthread_mutex_lock(&pending_lock);
    fh->next = pending[h];
    pending[h] = fh;
    pthread_mutex_unlock(&pending_lock);
}

static void pending_remove(fs_fh *fh)
{
    unsigned h = path_hash(fh->path);
    pthread_mutex_lock(&pending_lock);
    for (fs_fh **pp = &pending[h]; *pp; pp = &(*pp)->next) {
        if (*pp == fh) {
            *pp = fh->next;
            break;
        }
    }
    fh->next = NULL;
    pthread_mutex_unlock(&pending_lock);
}

/* Runs fn on the newest open writer of path (under the table lock, so fn
 * must be a single system call); returns fn's result or -ENOENT. */
static int pending_with(const char *path, int (*fn)(int fd, void *arg), void *arg)
{
    unsigned h = path_hash(path);
    int rc = -ENOENT;
    pthread_mutex_lock(&pending_lock);
    for (fs_fh *f = pending[h]; f; f = f->next) {
        if (strcmp(f->path, path) == 0) {
            rc = fn(f->fd, arg);
            break;
        }
    }
    pthread_mutex_unlock(&pending_lock);
    return rc;
}

/* unlink of a file still open for writing: every writer of path leaves
 * the table and will commit nothing; 1 when there was one. */
static int pending_detach(const char *path)
{
    unsigned h = path_hash(path);
    int found = 0;
    pthread_mutex_lock(&pending_lock);
    for (fs_fh **pp = &pending[h]; *pp;) {
        fs_fh *f = *pp;
        if (strcmp(f->path, path) == 0) {
            atomic_store(&f->unlinked, 1);
            *pp = f->next;
            f->next = NULL;
            found = 1;
        } else {
            pp = &f->next;
        }
    }
    pthread_mutex_unlock(&pending_lock);
    return found;
}

/* rename of a file still open for writing: its writers take the new name
 * (and commit under it at close); unlinked marks them removed (libfuse
 * hides an open file that is unlinked by renaming it to .fuse_hidden*).
 * Called with names_lock held exclusive. Returns how many moved, or
 * -ENOMEM. */
static int pending_move(const char *from, const char *to, const char *to_rel, int unlinked)
{
    unsigned h = path_hash(from);
    fs_fh *moved = NULL;
    int n = 0;
    pthread_mutex_lock(&pending_lock);
    for (fs_fh **pp = &pending[h]; *pp;) {
        fs_fh *f = *pp;
        if (strcmp(f->path, from) != 0) {
            pp = &f->next;
            continue;
        }
        char *np = strdup(to), *nr = strdup(to_rel);
        if (!np || !nr) {
            free(np);
            free(nr);
            n = -ENOMEM;
            break;
        }
        *pp = f->next;
        free(f->path);
        free(f->rel);
        f->path = np;
        f->rel = nr;
        f->gen++;
        atomic_store(&f->moved, 1); /* close commits it even if untouched */
        if (unlinked)
            atomic_store(&f->unlinked, 1);
        f->next = moved;
        moved = f;
        n++;
    }
    unsigned h2 = path_hash(to);
    while (moved) {
        fs_fh *f = moved;
        moved = f->next;
        f->next = pending[h2];
        pending[h2] = f;
    }
    pthread_mutex_unlock(&pending_lock);
    return n;
}

/* Files unlinked while open for reading (libfuse hides them as
 * .fuse_hidden* until the last close): the hidden name keeps an fd of the
 * removed file so fstat on the open fd still answers. Lock order:
 * hidden_lock is a leaf. */
typedef struct hidden_file {
    char *path;
    int fd;
    struct hidden_file *next;
} hidden_file;
static hidden_file *hidden_list;
static pthread_mutex_t hidden_lock = PTHREAD_MUTEX_INITIALIZER;

static int is_hidden_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return strncmp(b ? b + 1 : path, ".fuse_hidden", 12) == 0;
}

static int hidden_add(const char *path, int fd)
{
    hidden_file *h = calloc(1, sizeof *h);
    char *p = strdup(path);
    if (!h || !p) {
        free(h);
        free(p);
        return -ENOMEM;
    }
    h->path = p;
    h->fd = fd;
    pthread_mutex_lock(&hidden_lock);
    h->next = hidden_list;
    hidden_list = h;
    pthread_mutex_unlock(&hidden_lock);
    return 0;
}

/* Forgets path (every entry when path is NULL). */
static void hidden_remove(const char *path)
{
    pthread_mutex_lock(&hidden_lock);
    for (hidden_file **pp = &hidden_list; *pp;) {
        hidden_file *h = *pp;
        if (!path || strcmp(h->path, path) == 0) {
            *pp = h->next;
            close(h->fd);
            free(h->path);
            free(h);
        } else {
            pp = &h->next;
        }
    }
    pthread_mutex_unlock(&hidden_lock);
}

static int hidden_fstat(const char *path, struct stat *st)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&hidden_lock);
    for (hidden_file *h = hidden_list; h; h = h->next) {
        if (strcmp(h->path, path) == 0) {
            rc = fstat(h->fd, st) == 0 ? 0 : -errno;
            break;
        }
    }
    pthread_mutex_unlock(&hidden_lock);
    return rc;
}

/* 1 when a file is open for writing somewhere under the folder dir (a
 * mount path): a new one has no name in the store yet, so rmdir of its
 * folder must see it. */
static int pending_under(const char *dir)
{
    size_t n = strlen(dir);
    int found = 0;
    pthread_mutex_lock(&pending_lock);
    for (unsigned h = 0; h < PENDING_BUCKETS && !found; h++) {
        for (fs_fh *f = pending[h]; f; f = f->next) {
            if (strncmp(f->path, dir, n) == 0 && f->path[n] == '/' && !atomic_load(&f->unlinked)) {
                found = 1;
                break;
            }
        }
    }
    pthread_mutex_unlock(&pending_lock);
    return found;
}

/* fstat of a pending writer's file, which has its name in the mount but
 * none yet in the store (an O_TMPFILE, nlink 0): shown with nlink 1, as a
 * plain folder shows a new file (pjdfstest link/00 saw 0 for 1 s after
 * close, the kernel caching what create answered). */
static int fd_fstat(int fd, void *arg)
{
    struct stat *st = arg;
    if (fstat(fd, st) != 0)
        return -errno;
    if (S_ISREG(st->st_mode) && st->st_nlink == 0)
        st->st_nlink = 1;
    return 0;
}

/* truncate(path) of a file open for writing: its newest writer's file,
 * which close() then commits. */
static int pending_truncate(const char *path, off_t size)
{
    unsigned h = path_hash(path);
    int rc = -ENOENT;
    pthread_mutex_lock(&pending_lock);
    for (fs_fh *f = pending[h]; f; f = f->next) {
        if (strcmp(f->path, path) == 0) {
            rc = ftruncate(f->fd, size) == 0 ? 0 : -errno;
            if (rc == 0)
                atomic_store(&f->touched, 1);
            break;
        }
    }
    pthread_mutex_unlock(&pending_lock);
    return rc;
}

static int fd_fchmod(int fd, void *arg) { return fchmod(fd, *(mode_t *)arg) == 0 ? 0 : -errno; }

static int fd_futimens(int fd, void *arg) { return futimens(fd, arg) == 0 ? 0 : -errno; }

static int fd_tmp_path(int fd, void *arg)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int nfd = open(link, O_RDONLY | O_CLOEXEC);
    if (nfd < 0)
        return -errno;
    *(int *)arg = nfd;
    return 0;
}

static fs_fh *fh_new(void)
{
    fs_fh *fh = calloc(1, sizeof *fh);
    if (!fh)
        return NULL;
    fh->fd = -1;
    pthread_mutex_init(&fh->lock, NULL);
    pthread_mutex_lock(&open_lock);
    fh->all_next = open_list;
    if (open_list)
        open_list->all_prev = fh;
    open_list = fh;
    pthread_mutex_unlock(&open_lock);
    return fh;
}

static void fh_free(fs_fh *fh)
{
    if (!fh)
        return;
    pthread_mutex_lock(&open_lock);
    if (fh->all_prev)
        fh->all_prev->all_next = fh->all_next;
    else
        open_list = fh->all_next;
    if (fh->all_next)
        fh->all_next->all_prev = fh->all_prev;
    pthread_mutex_unlock(&open_lock);
    if (fh->fd >= 0)
        close(fh->fd);
    pthread_mutex_destroy(&fh->lock);
    free(fh->path);
    free(fh->rel);
    free(fh->rpath);
    free(fh);
}

static fs_fh *get_fh(struct fuse_file_info *fi) { return fi ? (fs_fh *)(uintptr_t)fi->fh : NULL; }

/* The mount path a reader opened, into out (open_lock: a rename may drop
 * it meanwhile). 0, or -1 when it has none. */
static int reader_path(fs_fh *fh, char *out, size_t n)
{
    pthread_mutex_lock(&open_lock);
    int rc = fh->rpath && snprintf(out, n, "%s", fh->rpath) < (int)n ? 0 : -1;
    pthread_mutex_unlock(&open_lock);
    return rc;
}

/* path (a file, or a folder and everything in it) was renamed, replaced or
 * removed: its readers no longer know which path names their file, so they
 * answer from the file they hold. */
static void readers_forget(const char *path)
{
    size_t len = strlen(path);
    pthread_mutex_lock(&open_lock);
    for (fs_fh *f = open_list; f; f = f->all_next) {
        if (f->rpath && strncmp(f->rpath, path, len) == 0 &&
            (f->rpath[len] == '\0' || f->rpath[len] == '/')) {
            free(f->rpath);
            f->rpath = NULL;
        }
    }
    pthread_mutex_unlock(&open_lock);
}

/* Forgets the writer's uncommitted file: its name in STORE/.tmp, if it has
 * one (an anonymous file goes with its last fd). */
static void writer_drop(fs_fh *fh)
{
    if (fh->tmp[0])
        unlink(fh->tmp);
    fh->tmp[0] = '\0';
}

/* Removes the empty file that held a writer's name (writer_hold_name) if
 * it is still there under the writer's name: a refused write leaves
 * nothing. Called with names_lock held exclusive. */
static void writer_unhold(fs_fh *fh)
{
    char dst[FS_PATH_MAX];
    struct stat st;
    if (fh->held && !atomic_load(&fh->unlinked) &&
        fs_store_path(dst, sizeof dst, fh->area->name, fh->rel) == 0 && lstat(dst, &st) == 0 &&
        st.st_ino == fh->held_ino && st.st_dev == fh->held_dev && st.st_size == 0)
        unlink(dst);
    fh->held = 0;
}

/* Gives up a writer that commits nothing: its temp, its place among the
 * open writers and the empty file holding its name. */
static void writer_abandon(fs_fh *fh)
{
    writer_drop(fh);
    pthread_rwlock_wrlock(&names_lock);
    pending_remove(fh);
    writer_unhold(fh);
    pthread_rwlock_unlock(&names_lock);
}

/* Gives the writer's file the name dst, replacing what is there. */
static int writer_place(fs_fh *fh, const char *dst)
{
    if (!fh->tmp[0]) {
        /* a new file: its name at once; else through a name in .tmp, as
         * only rename replaces a file atomically */
        int rc = fs_anon_link(fh->fd, dst);
        if (rc != -EEXIST)
            return rc;
        rc = fs_anon_tmp_link(fh->fd, fh->tmp, sizeof fh->tmp);
        if (rc) {
            fh->tmp[0] = '\0';
            return rc;
        }
    }
    if (rename(fh->tmp, dst) != 0)
        return -errno;
    fh->tmp[0] = '\0';
    return 0;
}

/* Validates the written file and gives it its name; called with fh->lock
 * held. Returns 0 or -errno (what close() reports). The name is read under
 * names_lock and checked again when the file is placed: a rename of the
 * open file in between validates again under the new name; an unlink
 * drops it. */
static int writer_commit(fs_fh *fh)
{
    if (fh->discarded)
        return fh->result;
    if (fh->committed) {
        /* written again through a dup'd fd after the first close: the writes
         * went straight into the committed file */
        if (fh->dirty && fh->area->committed)
            fh->area->committed(fh->rel);
        fh->dirty = 0;
        return 0;
    }
    char path[FS_PATH_MAX], rel[FS_PATH_MAX];
    for (int attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&names_lock);
        unsigned gen = fh->gen;
        int unlinked = atomic_load(&fh->unlinked);
        snprintf(path, sizeof path, "%s", fh->path);
        snprintf(rel, sizeof rel, "%s", fh->rel);
        pthread_rwlock_unlock(&names_lock);
        if (unlinked) {
            /* removed while open, as POSIX has it: the data goes with the name */
            writer_abandon(fh);
            fh->discarded = 1;
            fh->result = 0;
            return 0;
        }
        if (fh->failed) {
            writer_abandon(fh);
            fh->discarded = 1;
            fh->result = fh->failed;
            fs_log("write of \"%s\" refused: %s", path, strerror(-fh->failed));
            if (fh->area->write_failed)
                fh->area->write_failed(rel, -fh->failed);
            return fh->result;
        }
        if (!fh->dirty && !atomic_load(&fh->moved) && !atomic_load(&fh->touched))
            return 0;
        int rc = 0;
        if (fh->area->validate_write) {
            /* an anonymous file gets a name in .tmp for a validator that reads */
            if (!fh->tmp[0] && (!fh->area->validate_reads || fh->area->validate_reads(rel)) &&
                (rc = fs_anon_tmp_link(fh->fd, fh->tmp, sizeof fh->tmp)) != 0)
                fh->tmp[0] = '\0';
            char why[512] = "";
            if (rc == 0)
                rc = fh->area->validate_write(rel, fh->tmp[0] ? fh->tmp : NULL, why, sizeof why);
            if (rc < 0) {
                writer_abandon(fh);
                fh->discarded = 1;
                fh->result = rc;
                fs_log("write of \"%s\" refused: %s", path, why[0] ? why : strerror(-rc));
                snprintf(fh->why, sizeof fh->why, "%s", why);
                return rc;
            }
        }
        pthread_rwlock_rdlock(&names_lock);
        if ((fh->gen != gen || atomic_load(&fh->unlinked)) && attempt < 8) {
            pthread_rwlock_unlock(&names_lock);
            continue; /* renamed or removed while it was validated */
        }
        char dst[FS_PATH_MAX];
        rc = atomic_load(&fh->unlinked) ? -ENOENT
                                        : fs_store_path(dst, sizeof dst, fh->area->name, fh->rel);
        if (rc == 0)
            rc = writer_place(fh, dst);
        pending_remove(fh);
        pthread_rwlock_unlock(&names_lock);
        if (rc) {
            writer_abandon(fh);
            fh->discarded = 1;
            fh->result = rc;
            return rc;
        }
        fh->committed = 1;
        fh->dirty = 0;
        if (fh->area->committed)
            fh->area->committed(rel);
        return 0;
    }
}

/* A new file closed before anything was written to it (touch, `: > f`, or
 * a shell's `> f`, which closes its first fd before the command writes
 * through the dup, so that close cannot commit): a plain folder lists it
 * from that close, but the commit waits for RELEASE, which the kernel
 * sends after close() has returned. Meanwhile an empty file with the
 * writer's owner and mode holds the name, when the area judges the file by
 * its name alone (an image, not an annotation file or train.json, whose
 * empty content would be refused); the commit replaces it, a refusal
 * removes it. The area's committed hook runs at the commit only. Called
 * with fh->lock held. */
static void writer_hold_name(fs_fh *fh)
{
    const fs_area *a = fh->area;
    if (!fh->created || fh->held || fh->committed || fh->discarded)
        return;
    pthread_rwlock_rdlock(&names_lock); /* a rename replaces fh->rel */
    unsigned gen = fh->gen;
    char rel[FS_PATH_MAX];
    snprintf(rel, sizeof rel, "%s", fh->rel);
    pthread_rwlock_unlock(&names_lock);
    char why[256];
    if (a->validate_write && (!a->validate_reads || a->validate_reads(rel) ||
                              a->validate_write(rel, NULL, why, sizeof why) != 0))
        return; /* judged by content, or refused by name (the commit says so) */
    struct stat tmp;
    if (fstat(fh->fd, &tmp) != 0 || tmp.st_size != 0)
        return;
    char dst[FS_PATH_MAX];
    pthread_rwlock_rdlock(&names_lock);
    if (fh->gen == gen && !atomic_load(&fh->unlinked) &&
        fs_store_path(dst, sizeof dst, a->name, rel) == 0) {
        int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        struct stat st;
        if (fd >= 0) {
            /* owner first: chown clears the set-user-ID and set-group-ID bits */
            if ((geteuid() != 0 || fchown(fd, tmp.st_uid, tmp.st_gid) == 0) &&
                fchmod(fd, tmp.st_mode & 07777) == 0 && fstat(fd, &st) == 0) {
                fh->held = 1;
                fh->held_ino = st.st_ino;
                fh->held_dev = st.st_dev;
            } else {
                unlink(dst);
            }
            close(fd);
        }
    }
    pthread_rwlock_unlock(&names_lock);
}

/* ---- operations ---- */

/* I/O size advertised in st_blksize of regular files: cp and cat size their
 * buffers by it (at least 128 KB), and each write() of the copy is one FUSE
 * WRITE request, so 1 MB (the negotiated max_write) turns the three
 * requests of a 300 KB photo into one. */
#define IO_BLOCK ((blksize_t)1 << 20)

static void stat_tune(struct stat *st)
{
    if (S_ISREG(st->st_mode))
        st->st_blksize = IO_BLOCK;
}

/* The mounted file system, for telling the kernel about changes made by
 * the fs_tree_* calls (NULL when the areas run without a mount). */
static struct fuse *mounted;

static void *vfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->entry_timeout = 1.0;
    cfg->attr_timeout = 1.0;
    cfg->negative_timeout = 0.0;
    /* an open file that is unlinked is renamed to .fuse_hidden* by libfuse
     * (vfs_rename hides it: gone from the store and every listing) and
     * unlinked at its last close, so fstat on its fd keeps answering */
    cfg->hard_remove = 0;
    cfg->nullpath_ok = 1; /* reads and writes are served by the handle */
    /* st_ino is the store's inode number: libfuse's own numbers (use_ino
     * 0) are node ids, new each time the kernel forgets a name whose 1 s
     * entry timeout passed, so a file's inode changed under ls -i, find and
     * pjdfstest's rename checks. A file written through the mount is linked
     * in from its O_TMPFILE, so it keeps the number it had while open. */
    cfg->use_ino = 1;
    cfg->kernel_cache = 0;
    /* no splice for replies: when libfuse 3.14's splice of a read reply into
     * /dev/fuse fails ("fuse: splice from pipe: Invalid argument", seen once
     * on kernel 6.18 while test_datasets_urls read a status file) it drops
     * the request unanswered and the reader waits forever. Reads are
     * answered from memory (vfs_read's pread) and written, which cannot be
     * lost that way. */
    conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    if (conn->capable & FUSE_CAP_SPLICE_READ)
        conn->want |= FUSE_CAP_SPLICE_READ;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE; /* EFBIG must come from write() */
    struct fuse_context *ctx = fuse_get_context();
    mounted = ctx ? ctx->fuse : NULL;
    fs_areas_start();
    fs_http_start(); /* after the areas: every call goes through them */
    return NULL;
}

static void dirs_free_all(void);

static void vfs_destroy(void *data)
{
    (void)data;
    fs_http_stop(); /* before the areas: no call may reach a stopped area */
    fs_areas_stop();
    /* handles the kernel never released: uncommitted writes are dropped
     * (as after a crash: an empty file holding a name stays), the rest
     * closed */
    for (;;) {
        pthread_mutex_lock(&open_lock);
        fs_fh *fh = open_list;
        pthread_mutex_unlock(&open_lock);
        if (!fh)
            break;
        if (fh->writer && !fh->committed && !fh->discarded) {
            writer_drop(fh);
            pthread_rwlock_rdlock(&names_lock);
            pending_remove(fh);
            pthread_rwlock_unlock(&names_lock);
        }
        fh_free(fh);
    }
    hidden_remove(NULL);
    dirs_free_all();
}

static void readme_stat(struct stat *st)
{
    struct stat root;
    memset(st, 0, sizeof *st);
    if (stat(fs_store_root(), &root) == 0) {
        st->st_uid = root.st_uid;
        st->st_gid = root.st_gid;
        st->st_mtim = root.st_mtim;
        st->st_ctim = root.st_ctim;
        st->st_atim = root.st_atim;
    }
    st->st_ino = 1; /* not a store file; no ext4 file has the number 1 */
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = (off_t)strlen(fs_readme_text());
    st->st_blksize = 4096;
    st->st_blocks = (st->st_size + 511) / 512;
}

static int vfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    fs_fh *fh = get_fh(fi);
    if (fh && fh->readme) {
        readme_stat(st);
        return 0;
    }
    /* the kernel keeps one inode per path and takes these attributes for
     * it: a reader holding an older version answers for the path's file,
     * or a later reader's cat stops at the old size (see vfs_open) */
    char rp[FS_PATH_MAX];
    if (fh && reader_path(fh, rp, sizeof rp) == 0 && vfs_getattr(rp, st, NULL) == 0)
        return 0;
    if (fh && fh->fd >= 0) {
        if (fstat(fh->fd, st) != 0)
            return -errno;
        if (fh->writer && !atomic_load(&fh->unlinked) && st->st_nlink == 0)
            st->st_nlink = 1; /* named in the mount (see fd_fstat) */
        stat_tune(st);
        if (!fh->writer && path) {
            vpath vp;
            if (vpath_parse(path, &vp) == 0 && is_readonly(&vp))
                st->st_mode &= ~(mode_t)0222;
        }
        return 0;
    }
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if (vp.kind == VP_README) {
        readme_stat(st);
        return 0;
    }
    if (vp.kind == VP_SUB && (pending_with(path, fd_fstat, st) == 0 ||
                              (is_hidden_name(path) && hidden_fstat(path, st) == 0))) {
        stat_tune(st);
        return 0;
    }
    char sp[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    if (lstat(sp, st) != 0)
        return -errno;
    stat_tune(st);
    /* the store is 0700 to keep it private on disk; who may enter the
     * mount is decided by allow_other, so its root is shown open */
    if (vp.kind == VP_ROOT)
        st->st_mode = (st->st_mode & ~(mode_t)07777) | 0755;
    if (vp.kind == VP_ITEM && !S_ISDIR(st->st_mode))
        return -ENOENT; /* stray files at an area's top are not shown */
    if (extra || is_readonly(&vp))
        st->st_mode &= ~(mode_t)0222;
    return 0;
}

static int vfs_access(const char *path, int mask)
{
    struct stat st;
    int rc = vfs_getattr(path, &st, NULL);
    if (rc)
        return rc;
    if ((mask & W_OK) && !(st.st_mode & 0200))
        return -EACCES;
    vpath vp;
    vpath_parse(path, &vp);
    if ((mask & W_OK) && (vp.kind == VP_ROOT || vp.kind == VP_README))
        return -EACCES;
    return 0;
}

/* readdirplus hands the kernel each entry's attributes, which it caches:
 * a file being written must show its writer's file, as stat does, not the
 * committed one. */
static void pending_stat(const vpath *sub, struct stat *st)
{
    char path[FS_PATH_MAX];
    if (sub->kind == VP_SUB && S_ISREG(st->st_mode) &&
        snprintf(path, sizeof path, "/%s/%s", sub->area->name, sub->rel) < (int)sizeof path)
        pending_with(path, fd_fstat, st);
}

static int fill_dir(void *buf, fuse_fill_dir_t filler, const vpath *vp, const char *dir, int plus,
                    const char *skip_dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char rel[FS_PATH_MAX];
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
            continue;
        if (strncmp(nm, ".vfs", 4) == 0)
            continue;
        if (vp->kind == VP_AREA && e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        if (snprintf(rel, sizeof rel, "%s%s%s", vp->rel, *vp->rel ? "/" : "", nm) >=
            (int)sizeof rel)
            continue;
        if (vp->area->is_visible && !vp->area->is_visible(rel))
            continue;
        struct stat st;
        if (skip_dir) {
            char other[FS_PATH_MAX];
            snprintf(other, sizeof other, "%s/%s", skip_dir, nm);
            if (lstat(other, &st) == 0)
                continue;
        }
        if (plus && fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (vp->kind == VP_AREA && !S_ISDIR(st.st_mode))
                continue;
            vpath sub = {strchr(rel, '/') ? VP_SUB : VP_ITEM, vp->area, rel};
            if (skip_dir || is_readonly(&sub))
                st.st_mode &= ~(mode_t)0222;
            else
                pending_stat(&sub, &st);
            stat_tune(&st);
            if (filler(buf, nm, &st, 0, FUSE_FILL_DIR_PLUS))
                break;
        } else {
            memset(&st, 0, sizeof st);
            st.st_ino = e->d_ino;
            st.st_mode = (mode_t)DTTOIF(e->d_type);
            if (filler(buf, nm, &st, 0, 0))
                break;
        }
    }
    closedir(d);
    return 0;
}

/* An open store folder read in offset mode: entries carry their telldir
 * position, so libfuse passes readdirplus attributes to the kernel (ls -l
 * then needs no LOOKUP per entry) and big folders are read in pieces. Used
 * for folders of areas without an extra root; the others are listed whole. */
typedef struct fs_dirh {
    DIR *d; /* NULL: a folder listed whole (the root, areas with an extra root) */
    vpath vp;
    char rel[FS_PATH_MAX];
    struct fs_dirh *prev, *next; /* every open folder (open_lock) */
} fs_dirh;

static fs_dirh *dir_list;

static void dirh_free(fs_dirh *dh)
{
    pthread_mutex_lock(&open_lock);
    if (dh->prev)
        dh->prev->next = dh->next;
    else
        dir_list = dh->next;
    if (dh->next)
        dh->next->prev = dh->prev;
    pthread_mutex_unlock(&open_lock);
    if (dh->d)
        closedir(dh->d);
    free(dh);
}

static int vfs_opendir(const char *path, struct fuse_file_info *fi)
{
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    fi->fh = 0;
    /* every folder gets a handle that knows its path: readdir may be
     * called without one (nullpath_ok); the store's own folders are also
     * streamed from it (d), the others listed whole (d NULL) */
    int whole = vp.kind == VP_ROOT || vp.kind == VP_README || extra_root(vp.area);
    char sp[FS_PATH_MAX];
    if (!whole && (rc = fs_store_path(sp, sizeof sp, vp.area->name, vp.rel)) != 0)
        return rc;
    fs_dirh *dh = calloc(1, sizeof *dh);
    if (!dh)
        return -ENOMEM;
    if (!whole && !(dh->d = opendir(sp))) {
        rc = -errno;
        free(dh);
        return rc;
    }
    snprintf(dh->rel, sizeof dh->rel, "%s", vp.rel);
    dh->vp = vp;
    dh->vp.rel = dh->rel;
    pthread_mutex_lock(&open_lock);
    dh->next = dir_list;
    if (dir_list)
        dir_list->prev = dh;
    dir_list = dh;
    pthread_mutex_unlock(&open_lock);
    fi->fh = (uint64_t)(uintptr_t)dh;
    return 0;
}

static void dirs_free_all(void)
{
    for (;;) {
        pthread_mutex_lock(&open_lock);
        fs_dirh *dh = dir_list;
        pthread_mutex_unlock(&open_lock);
        if (!dh)
            break;
        dirh_free(dh);
    }
}

static int vfs_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    fs_dirh *dh = fi ? (fs_dirh *)(uintptr_t)fi->fh : NULL;
    if (dh)
        dirh_free(dh);
    return 0;
}

static int readdir_stream(fs_dirh *dh, void *buf, fuse_fill_dir_t filler, off_t off, int plus)
{
    const vpath *vp = &dh->vp;
    if (off == 0)
        rewinddir(dh->d);
    else
        seekdir(dh->d, off);
    char rel[FS_PATH_MAX];
    struct dirent *e;
    while ((e = readdir(dh->d))) {
        const char *nm = e->d_name;
        off_t next = telldir(dh->d);
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) {
            if (filler(buf, nm, NULL, next, 0))
                break;
            continue;
        }
        if (strncmp(nm, ".vfs", 4) == 0)
            continue;
        if (vp->kind == VP_AREA && e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        if (snprintf(rel, sizeof rel, "%s%s%s", vp->rel, *vp->rel ? "/" : "", nm) >=
            (int)sizeof rel)
            continue;
        if (vp->area->is_visible && !vp->area->is_visible(rel))
            continue;
        struct stat st;
        int fl = 0;
        if (plus && fstatat(dirfd(dh->d), nm, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (vp->kind == VP_AREA && !S_ISDIR(st.st_mode))
                continue;
            vpath sub = {strchr(rel, '/') ? VP_SUB : VP_ITEM, vp->area, rel};
            if (is_readonly(&sub))
                st.st_mode &= ~(mode_t)0222;
            pending_stat(&sub, &st);
            stat_tune(&st);
            fl = FUSE_FILL_DIR_PLUS;
        } else {
            memset(&st, 0, sizeof st);
            st.st_ino = e->d_ino;
            st.st_mode = (mode_t)DTTOIF(e->d_type);
        }
        if (filler(buf, nm, &st, next, (enum fuse_fill_dir_flags)fl))
            break;
    }
    return 0;
}

static int vfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    fs_dirh *dh = fi ? (fs_dirh *)(uintptr_t)fi->fh : NULL;
    if (dh && dh->d)
        return readdir_stream(dh, buf, filler, off, (flags & FUSE_READDIR_PLUS) != 0);
    vpath vp;
    int rc = 0;
    if (dh)
        vp = dh->vp;
    else
        rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    if (vp.kind == VP_ROOT) {
        filler(buf, "README", NULL, 0, 0);
        for (size_t i = 0; i < N_AREAS; i++)
            filler(buf, areas[i]->name, NULL, 0, 0);
        return 0;
    }
    if (vp.kind == VP_README)
        return -ENOTDIR;
    int plus = (flags & FUSE_READDIR_PLUS) != 0;
    char sp[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    const char *er = extra_root(vp.area);
    char store_dir[FS_PATH_MAX];
    fs_store_path(store_dir, sizeof store_dir, vp.area->name, vp.rel);
    rc = fill_dir(buf, filler, &vp, sp, plus, NULL);
    if (extra) /* the folder exists only in the extra root */
        return rc;
    if (er) {
        char alt[FS_PATH_MAX];
        if (snprintf(alt, sizeof alt, "%s%s%s", er, *vp.rel ? "/" : "", vp.rel) < (int)sizeof alt &&
            strcmp(alt, store_dir) != 0) {
            struct stat st;
            if (stat(alt, &st) == 0 && S_ISDIR(st.st_mode))
                fill_dir(buf, filler, &vp, alt, plus, store_dir);
        }
    }
    return rc;
}

static int item_exists(const vpath *vp)
{
    char sp[FS_PATH_MAX];
    int extra;
    struct stat st;
    if (vpath_resolve(vp, sp, sizeof sp, &extra))
        return 0;
    return lstat(sp, &st) == 0;
}

static int give_to_caller(int fd, gid_t parent_gid, const struct stat *old);
static gid_t inherited_gid(const char *dir);

static int vfs_mkdir(const char *path, mode_t mode)
{
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc == -ENOENT && vp.area && vp.kind != VP_AREA) {
        const char *last = strrchr(path, '/');
        if (last && strncmp(last + 1, ".vfs", 4) == 0)
            return -EINVAL; /* reserved for bookkeeping */
    }
    if (rc == -ENOENT && !vp.area && path[0] == '/' && !strchr(path + 1, '/'))
        return -EPERM; /* the top holds only README, datasets/, models/, backbones/ */
    if (rc)
        return rc;
    switch (vp.kind) {
    case VP_ROOT:
    case VP_README:
    case VP_AREA: return -EEXIST;
    case VP_ITEM:
        if (!fs_name_valid(vp.rel))
            return -EINVAL;
        if (item_exists(&vp))
            return -EEXIST;
        return vp.area->mkdir_item ? vp.area->mkdir_item(vp.rel) : -EPERM;
    case VP_SUB: break;
    }
    if (is_readonly(&vp) || item_in_extra_only(&vp))
        return -EACCES;
    if (vp.area->mkdir_sub)
        return vp.area->mkdir_sub(vp.rel);
    char sp[FS_PATH_MAX];
    rc = fs_store_path(sp, sizeof sp, vp.area->name, vp.rel);
    if (rc)
        return rc;
    if (mkdir(sp, mode & 07777) != 0)
        return -errno;
    /* mkdir applied the daemon's umask on top of the caller's (which the
     * kernel already applied): set the mode asked for, and the owner */
    char parent[FS_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", sp);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    int fd = open(sp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    rc = fd < 0 ? -errno : 0;
    gid_t pgid = inherited_gid(parent); /* a set-group-ID folder passes the bit on */
    if (rc == 0)
        rc = give_to_caller(fd, pgid, NULL);
    if (rc == 0 && fchmod(fd, (mode & 07777) | (pgid != (gid_t)-1 ? S_ISGID : 0)) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc)
        rmdir(sp);
    return rc;
}

static int vfs_rmdir(const char *path)
{
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if (vp.kind == VP_ROOT || vp.kind == VP_AREA)
        return -EBUSY;
    if (vp.kind == VP_README)
        return -ENOTDIR;
    char sp[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    if (extra)
        return -EACCES;
    /* a file still being written is listed but has no name in the store
     * yet (O_TMPFILE): an item's own emptiness check cannot see it */
    if (pending_under(path))
        return -ENOTEMPTY;
    if (vp.kind == VP_ITEM)
        return vp.area->rmdir_item ? vp.area->rmdir_item(vp.rel) : -EPERM;
    if (vp.area->rmdir_sub)
        return vp.area->rmdir_sub(vp.rel);
    if (rmdir(sp) != 0)
        return -errno;
    if (vp.area->unlinked)
        vp.area->unlinked(vp.rel);
    return 0;
}

static int vfs_unlink(const char *path)
{
    if (path && is_hidden_name(path)) {
        /* the last close of a file unlinked while open (see vfs_rename),
         * also when its folder has gone meanwhile */
        hidden_remove(path);
        pthread_rwlock_wrlock(&names_lock);
        pending_detach(path);
        pthread_rwlock_unlock(&names_lock);
        return 0;
    }
    readers_forget(path);
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if (vp.kind != VP_SUB)
        return vp.kind == VP_README ? -EACCES : -EISDIR;
    if (is_readonly(&vp))
        return 0; /* generated: comes back; lets rm -r of the item work */
    char sp[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    if (extra)
        return -EACCES;
    pthread_rwlock_wrlock(&names_lock);
    int was_open = pending_detach(path);
    rc = unlink(sp) != 0 && !(was_open && errno == ENOENT) ? -errno : 0;
    pthread_rwlock_unlock(&names_lock);
    if (rc)
        return rc;
    if (vp.area->unlinked)
        vp.area->unlinked(vp.rel);
    return 0;
}

/* unlink of a file that is open: libfuse renames it to a .fuse_hidden*
 * name instead (hard_remove off) and unlinks that name at the last close.
 * Here the file leaves the store and every listing at once, as unlink does;
 * its writers commit nothing; a reader's fstat is answered from an fd of
 * the removed file kept under the hidden name. */
static int hide_open_file(const vpath *a, const char *from, const char *to, const char *sa)
{
    if (a->kind != VP_SUB)
        return -EACCES;
    const char *to_rel = strchr(to + 1, '/') + 1;
    int fd = open(sa, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && hidden_add(to, fd) != 0) {
        close(fd);
        return -ENOMEM;
    }
    if (is_readonly(a))
        return 0; /* generated: stays, as for unlink */
    pthread_rwlock_wrlock(&names_lock);
    int n = pending_move(from, to, to_rel, 1);
    int rc = n < 0 ? n : 0;
    if (rc == 0 && unlink(sa) != 0 && !(n > 0 && errno == ENOENT))
        rc = -errno;
    pthread_rwlock_unlock(&names_lock);
    if (rc) {
        hidden_remove(to);
        return rc;
    }
    if (a->area->unlinked)
        a->area->unlinked(a->rel);
    return 0;
}

static int pending_exists(const char *path)
{
    struct stat st;
    return pending_with(path, fd_fstat, &st) == 0;
}

/* rename of a file still open for writing: the writers take the new name
 * and commit under it at close, as a plain folder moves an open file; a
 * committed version under the old name goes, as the name does. Returns 1
 * when from has no writer (an ordinary rename), else 0 or -errno. */
static int rename_open_writer(const vpath *a, const vpath *b, const char *from, const char *to,
                              const char *sa, const char *sb, unsigned int flags)
{
    if (!pending_exists(from))
        return 1;
    if (b->kind != VP_SUB)
        return -EACCES;
    int rc;
    if (b->area->check_create && (rc = b->area->check_create(b->rel)) != 0)
        return rc;
    struct stat st;
    char parent[FS_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", sb);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
        return -ENOENT;
    if (lstat(sb, &st) == 0 && S_ISDIR(st.st_mode))
        return -EISDIR;
    if ((flags & RENAME_NOREPLACE) && (lstat(sb, &st) == 0 || pending_exists(to)))
        return -EEXIST;
    pthread_rwlock_wrlock(&names_lock);
    int n = pending_move(from, to, b->rel, 0);
    rc = n < 0 ? n : 0;
    int had_old = n > 0 && unlink(sa) == 0;
    pthread_rwlock_unlock(&names_lock);
    if (rc == 0 && had_old && a->area->unlinked)
        a->area->unlinked(a->rel);
    return n == 0 ? 1 : rc; /* closed meanwhile: an ordinary rename */
}

static int vfs_rename(const char *from, const char *to, unsigned int flags)
{
    readers_forget(from);
    readers_forget(to);
    vpath a, b;
    int rc = vpath_parse(from, &a);
    if (rc)
        return rc;
    rc = vpath_parse(to, &b);
    if (rc == -ENOENT && b.area && b.kind == VP_ITEM)
        return -EINVAL;
    if (rc)
        return rc;
    if (flags & RENAME_EXCHANGE)
        return -EINVAL;
    if (a.area != b.area || !a.area)
        return a.area && b.area ? -EXDEV : -EACCES;
    if (a.kind != b.kind)
        return -EACCES;
    if (a.kind == VP_AREA)
        return -EBUSY;
    char sa[FS_PATH_MAX], sb[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&a, sa, sizeof sa, &extra);
    if (rc)
        return rc;
    if (extra)
        return -EACCES;
    rc = fs_store_path(sb, sizeof sb, b.area->name, b.rel);
    if (rc)
        return rc;
    if (a.kind == VP_ITEM) {
        if (!fs_name_valid(b.rel))
            return -EINVAL;
        if (item_exists(&b))
            return -EEXIST;
        return a.area->rename_item ? a.area->rename_item(a.rel, b.rel) : -EPERM;
    }
    if (is_hidden_name(to))
        return hide_open_file(&a, from, to, sa);
    if (is_hidden_name(from))
        return -ENOENT;
    if (is_readonly(&a) || is_readonly(&b))
        return -EACCES;
    rc = rename_open_writer(&a, &b, from, to, sa, sb, flags);
    if (rc != 1)
        return rc;
    struct stat st;
    if (lstat(sa, &st) != 0)
        return -errno;
    if (S_ISREG(st.st_mode) && b.area->check_create && (rc = b.area->check_create(b.rel)) != 0)
        return rc;
    if (S_ISREG(st.st_mode) && a.area->validate_write) {
        char why[512] = "";
        rc = a.area->validate_write(b.rel, sa, why, sizeof why);
        if (rc < 0) {
            fs_log("rename of \"%s\" to \"%s\" refused: %s", from, to, why);
            return rc;
        }
    }
    if (renameat2(AT_FDCWD, sa, AT_FDCWD, sb, flags & RENAME_NOREPLACE) != 0)
        return -errno;
    if (a.area->unlinked)
        a.area->unlinked(a.rel);
    if (a.area->committed)
        a.area->committed(b.rel);
    return 0;
}

static int64_t max_size_of(const vpath *vp)
{
    int64_t m = vp->area->max_size ? vp->area->max_size(vp->rel) : 0;
    return m > 0 ? m : FS_MAX_FILE_DEFAULT;
}

/* Copies the committed content into a new writer's temp (open without
 * O_TRUNC of an existing file). */
static int copy_into(int dst, const char *src_path, int64_t max)
{
    int src = open(src_path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return errno == ENOENT ? 0 : -errno;
    struct stat st;
    if (fstat(src, &st) != 0 || st.st_size > max) {
        int e = errno ? -errno : -EFBIG;
        close(src);
        return st.st_size > max ? -EFBIG : e;
    }
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = copy_file_range(src, NULL, dst, NULL, (size_t)left, 0);
        if (n <= 0) {
            char buf[65536];
            ssize_t r = read(src, buf, sizeof buf);
            if (r <= 0)
                break;
            if (write(dst, buf, (size_t)r) != r) {
                close(src);
                return -EIO;
            }
            n = r;
        }
        left -= n;
    }
    close(src);
    return 0;
}

/* Gives fd (a file or folder just made in the store by a daemon running as
 * root) to the user who asked for it: owner the caller's uid; group the
 * caller's gid, or the parent's when the parent folder is set-group-ID
 * (parent_gid, or -1 when it is not). The kernel then checks other users
 * against it (default_permissions). old, when not NULL, is the stat of the
 * file this content replaces: written by its owner or by root, the file
 * keeps its owner and group, as in a plain folder; written by another user
 * (whom the mode let write it), it becomes that user's, unlike a plain
 * folder: file:// urls in an annotation file are read with its owner's
 * rights (datasets.c, fetch_file.c), and those must not be more than the
 * rights of the user who wrote the urls. */
static int give_to_caller(int fd, gid_t parent_gid, const struct stat *old)
{
    const struct fuse_context *who = fuse_get_context();
    if (geteuid() != 0 || !who)
        return 0;
    uid_t uid = who->uid;
    gid_t gid = parent_gid != (gid_t)-1 ? parent_gid : who->gid;
    if (old && (who->uid == 0 || who->uid == old->st_uid)) {
        uid = old->st_uid;
        gid = old->st_gid;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (st.st_uid == uid && st.st_gid == gid)
        return 0;
    return fchown(fd, uid, gid) == 0 ? 0 : -errno;
}

/* The group a new entry of the store folder dir takes from it: its group
 * when it is set-group-ID, else -1. */
static gid_t inherited_gid(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && (st.st_mode & S_ISGID))
        return st.st_gid;
    return (gid_t)-1;
}

/* A writer of path (a new file with mode, umask already applied by the
 * kernel, or an existing one, whose mode it keeps; its owner: see
 * give_to_caller). */
static int open_writer(const char *path, const vpath *vp, struct fuse_file_info *fi, int creating,
                       mode_t mode)
{
    if (vp->kind == VP_ROOT || vp->kind == VP_AREA || vp->kind == VP_ITEM)
        return creating ? -EPERM : -EISDIR;
    if (vp->kind == VP_README || is_readonly(vp))
        return -EACCES;
    char sp[FS_PATH_MAX];
    int extra;
    int rc = vpath_resolve(vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    if (extra || item_in_extra_only(vp))
        return -EACCES;
    struct stat st;
    int exists = lstat(sp, &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
        return -EISDIR;
    char parent[FS_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", sp);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    /* the parent must be a folder in the store */
    struct stat pst;
    if (!exists && (stat(parent, &pst) != 0 || !S_ISDIR(pst.st_mode)))
        return -ENOENT;
    fs_fh *fh = fh_new();
    if (!fh)
        return -ENOMEM;
    fh->writer = 1;
    fh->area = vp->area;
    fh->path = strdup(path);
    fh->rel = strdup(vp->rel);
    fh->max = max_size_of(vp);
    if (!fh->path || !fh->rel) {
        fh_free(fh);
        return -ENOMEM;
    }
    /* a file without a name in the folder where it will live: its inode is
     * allocated there as for a plain cp (not all in one .tmp folder, whose
     * recently freed inodes ext4 may scan past on every create), commit is
     * one link, and a crash leaves nothing; a named temp where the file
     * system has no O_TMPFILE */
    fh->fd = fs_anon_create(parent);
    if (fh->fd == -EOPNOTSUPP || fh->fd == -EISDIR || fh->fd == -EINVAL)
        fh->fd = fs_tmp_create(fh->tmp, sizeof fh->tmp);
    if (fh->fd < 0) {
        rc = fh->fd;
        fh->fd = -1;
        fh->tmp[0] = '\0';
        fh_free(fh);
        return rc;
    }
    /* the mode asked for (a copy of a 0600 file stays 0600); a daemon not
     * running as root adds owner read: it reads what it verifies */
    mode_t want = exists ? st.st_mode & 07777 : mode & 07777;
    if (!exists && geteuid() != 0)
        want |= 0400;
    /* owner first: chown clears the set-user-ID and set-group-ID bits */
    rc = give_to_caller(fh->fd, exists ? (gid_t)-1 : inherited_gid(parent), exists ? &st : NULL);
    if (rc == 0 && fchmod(fh->fd, want) != 0)
        rc = -errno;
    if (rc) {
        writer_drop(fh);
        fh_free(fh);
        return rc;
    }
    if (exists && !(fi->flags & O_TRUNC)) {
        rc = copy_into(fh->fd, sp, fh->max);
        if (rc) {
            writer_drop(fh);
            fh_free(fh);
            return rc;
        }
    }
    fh->dirty = !exists || (fi->flags & O_TRUNC);
    fh->created = !exists;
    pending_add(fh);
    fi->fh = (uint64_t)(uintptr_t)fh;
    fi->direct_io = 0;
    fi->keep_cache = 0;
    return 0;
}

static int vfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc == -ENOENT ? -EACCES : rc;
    if (vp.kind == VP_SUB && vp.area->check_create && (rc = vp.area->check_create(vp.rel)) != 0)
        return rc;
    if (is_hidden_name(path))
        return -EINVAL; /* libfuse's names for files unlinked while open */
    return open_writer(path, &vp, fi, 1, mode);
}

static int vfs_open(const char *path, struct fuse_file_info *fi)
{
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
        return open_writer(path, &vp, fi, 0, 0644);
    fs_fh *fh;
    if (vp.kind == VP_README) {
        fh = fh_new();
        if (!fh)
            return -ENOMEM;
        fh->readme = 1;
        fi->fh = (uint64_t)(uintptr_t)fh;
        return 0;
    }
    if (vp.kind != VP_SUB)
        return -EISDIR;
    if (vp.area->open_read) {
        rc = vp.area->open_read(vp.rel);
        if (rc < 0)
            return rc;
    }
    int fd = -1;
    if (pending_with(path, fd_tmp_path, &fd) != 0) {
        char sp[FS_PATH_MAX];
        int extra;
        rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
        if (rc)
            return rc;
        fd = open(sp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            return -errno;
    }
    char *rpath = is_readonly(&vp) ? NULL : strdup(path);
    fh = fh_new();
    if (!fh) {
        close(fd);
        free(rpath);
        return -ENOMEM;
    }
    fh->fd = fd;
    pthread_mutex_lock(&open_lock); /* readers_forget may look already */
    fh->rpath = rpath;
    pthread_mutex_unlock(&open_lock);
    fi->fh = (uint64_t)(uintptr_t)fh;
    /* Every reader reads past the kernel's cache. A generated file's size
     * may change under it. A writable file is replaced whole at a writer's
     * close, but a reader keeps the version it opened while the kernel
     * keeps one inode per path: through the cache, that reader's short read
     * at its version's end would be taken as the end of the file for every
     * fd on the path (a writer's own pread, a later reader's cat) for the
     * 1 s attribute timeout. direct_io reads never set the size. */
    fi->direct_io = 1;
    fi->keep_cache = 0;
    return 0;
}

static int vfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    fs_fh *fh = get_fh(fi);
    if (!fh)
        return -EBADF;
    if (fh->readme) {
        const char *t = fs_readme_text();
        size_t len = strlen(t);
        if ((size_t)off >= len)
            return 0;
        if (size > len - (size_t)off)
            size = len - (size_t)off;
        memcpy(buf, t + off, size);
        return (int)size;
    }
    ssize_t n = pread(fh->fd, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int vfs_write_buf(const char *path, struct fuse_bufvec *src, off_t off,
                         struct fuse_file_info *fi)
{
    (void)path;
    fs_fh *fh = get_fh(fi);
    if (!fh || !fh->writer)
        return -EBADF;
    size_t size = fuse_buf_size(src);
    pthread_mutex_lock(&fh->lock);
    if (fh->discarded) {
        int rc = fh->result ? fh->result : -EIO; /* read under the lock that writes it */
        pthread_mutex_unlock(&fh->lock);
        return rc;
    }
    if ((int64_t)off + (int64_t)size > fh->max) {
        fh->failed = -EFBIG;
        pthread_mutex_unlock(&fh->lock);
        return -EFBIG;
    }
    fh->dirty = 1;
    fh->written = 1;
    pthread_mutex_unlock(&fh->lock);
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
    dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    dst.buf[0].fd = fh->fd;
    dst.buf[0].pos = off;
    ssize_t n = fuse_buf_copy(&dst, src, FUSE_BUF_SPLICE_NONBLOCK);
    if (n < 0) {
        /* e.g. ENOSPC: the file is incomplete, so close() must say the same
         * instead of validating what got written */
        pthread_mutex_lock(&fh->lock);
        if (!fh->failed)
            fh->failed = (int)n;
        pthread_mutex_unlock(&fh->lock);
    }
    return (int)n;
}

static int vfs_write(const char *path, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct fuse_bufvec src = FUSE_BUFVEC_INIT(size);
    src.buf[0].mem = (void *)buf;
    return vfs_write_buf(path, &src, off, fi);
}

static int vfs_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    fs_fh *fh = get_fh(fi);
    if (!fh || !fh->writer)
        return 0;
    pthread_mutex_lock(&fh->lock);
    /* Not written to yet: this close may be of a dup (a shell's `> f`
     * opens, dups onto stdout and closes the original before writing).
     * Commit at a later flush, or at release; a new file's name is held
     * meanwhile. */
    int rc = 0;
    if (fh->written || fh->failed || atomic_load(&fh->touched) || atomic_load(&fh->moved))
        rc = writer_commit(fh);
    else
        writer_hold_name(fh);
    pthread_mutex_unlock(&fh->lock);
    return rc;
}

static int vfs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    fs_fh *fh = get_fh(fi);
    if (!fh)
        return 0;
    if (fh->writer) {
        pthread_mutex_lock(&fh->lock);
        if (fh->dirty || fh->failed || atomic_load(&fh->moved) || atomic_load(&fh->touched))
            writer_commit(fh);
        if (!fh->committed && !fh->discarded)
            writer_abandon(fh);
        pthread_mutex_unlock(&fh->lock);
    }
    fh_free(fh);
    return 0;
}

static int vfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    fs_fh *fh = get_fh(fi);
    if (!fh || fh->fd < 0)
        return 0;
    int rc = datasync ? fdatasync(fh->fd) : fsync(fh->fd);
    return rc == 0 ? 0 : -errno;
}

/* Rewrites a committed file at a new length through a temp, so the area
 * validates the result like any other write. */
static int truncate_committed(const vpath *vp, off_t size)
{
    char sp[FS_PATH_MAX], tmp[FS_PATH_MAX];
    int rc = fs_store_path(sp, sizeof sp, vp->area->name, vp->rel);
    if (rc)
        return rc;
    struct stat st;
    if (lstat(sp, &st) != 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    int fd = fs_tmp_create(tmp, sizeof tmp);
    if (fd < 0)
        return fd;
    /* the file keeps its owner (the new copy is the daemon's) and mode;
     * owner first: chown clears the set-user-ID and set-group-ID bits */
    rc = 0;
    if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)
        rc = -errno;
    if (rc == 0 && fchmod(fd, st.st_mode & 07777) != 0)
        rc = -errno;
    if (rc == 0)
        rc = copy_into(fd, sp, INT64_MAX);
    if (rc == 0 && ftruncate(fd, size) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && vp->area->validate_write) {
        char why[512] = "";
        rc = vp->area->validate_write(vp->rel, tmp, why, sizeof why);
    }
    if (rc == 0 && rename(tmp, sp) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    if (vp->area->committed)
        vp->area->committed(vp->rel);
    return 0;
}

static int vfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    fs_fh *fh = get_fh(fi);
    if (fh && fh->writer) {
        if (size > fh->max)
            return -EFBIG;
        pthread_mutex_lock(&fh->lock);
        int rc = ftruncate(fh->fd, size) == 0 ? 0 : -errno;
        if (rc == 0) {
            fh->dirty = 1;
            atomic_store(&fh->touched, 1);
        }
        pthread_mutex_unlock(&fh->lock);
        return rc;
    }
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if (vp.kind != VP_SUB)
        return vp.kind == VP_README ? -EACCES : -EISDIR;
    if (is_readonly(&vp))
        return -EACCES;
    if (size > max_size_of(&vp))
        return -EFBIG;
    rc = pending_truncate(path, size);
    if (rc != -ENOENT)
        return rc;
    return truncate_committed(&vp, size);
}

static int vfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    fs_fh *fh = get_fh(fi);
    if (fh && fh->fd >= 0)
        return futimens(fh->fd, tv) == 0 ? 0 : -errno;
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if (vp.kind == VP_ROOT || vp.kind == VP_README || vp.kind == VP_AREA || is_readonly(&vp))
        return -EACCES;
    rc = pending_with(path, fd_futimens, (void *)tv);
    if (rc != -ENOENT)
        return rc;
    char sp[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    if (extra)
        return -EACCES;
    return utimensat(AT_FDCWD, sp, tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int vfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    fs_fh *fh = get_fh(fi);
    if (fh && fh->fd >= 0)
        return fchmod(fh->fd, mode & 07777) == 0 ? 0 : -errno;
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if (vp.kind == VP_ROOT || vp.kind == VP_README || vp.kind == VP_AREA || is_readonly(&vp))
        return -EACCES;
    char sp[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    if (extra)
        return -EACCES;
    /* a file being written: its next content gets the mode (cp -p sets
     * the mode while the copy is still open); the current one, if any, too */
    mode_t m = mode & 07777;
    int prc = pending_with(path, fd_fchmod, &m);
    struct stat st;
    if (lstat(sp, &st) != 0)
        return prc == -ENOENT ? -errno : prc;
    return chmod(sp, m) == 0 ? 0 : -errno;
}

static int vfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    fs_fh *fh = get_fh(fi);
    if (fh && fh->fd >= 0)
        return fchown(fh->fd, uid, gid) == 0 ? 0 : -errno;
    vpath vp;
    int rc = vpath_parse(path, &vp);
    if (rc)
        return rc;
    if (vp.kind == VP_ROOT || vp.kind == VP_README || vp.kind == VP_AREA || is_readonly(&vp))
        return -EACCES;
    char sp[FS_PATH_MAX];
    int extra;
    rc = vpath_resolve(&vp, sp, sizeof sp, &extra);
    if (rc)
        return rc;
    if (extra)
        return -EACCES;
    return lchown(sp, uid, gid) == 0 ? 0 : -errno;
}

static int vfs_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return statvfs(fs_store_root(), st) == 0 ? 0 : -errno;
}

static int vfs_symlink(const char *target, const char *path)
{
    (void)target;
    (void)path;
    return -EPERM;
}

static int vfs_link(const char *from, const char *to)
{
    (void)from;
    (void)to;
    return -EPERM;
}

static int vfs_mknod(const char *path, mode_t mode, dev_t dev)
{
    (void)path;
    (void)mode;
    (void)dev;
    return -EPERM;
}

static const struct fuse_operations ops = {
    .init = vfs_init,
    .destroy = vfs_destroy,
    .getattr = vfs_getattr,
    .access = vfs_access,
    .opendir = vfs_opendir,
    .readdir = vfs_readdir,
    .releasedir = vfs_releasedir,
    .mkdir = vfs_mkdir,
    .rmdir = vfs_rmdir,
    .unlink = vfs_unlink,
    .rename = vfs_rename,
    .create = vfs_create,
    .open = vfs_open,
    .read = vfs_read,
    .write = vfs_write,
    .write_buf = vfs_write_buf,
    .flush = vfs_flush,
    .release = vfs_release,
    .fsync = vfs_fsync,
    .truncate = vfs_truncate,
    .utimens = vfs_utimens,
    .chmod = vfs_chmod,
    .chown = vfs_chown,
    .statfs = vfs_statfs,
    .symlink = vfs_symlink,
    .link = vfs_link,
    .mknod = vfs_mknod,
};

const struct fuse_operations *fs_operations(void) { return &ops; }

void fs_areas_start(void)
{
    for (size_t i = 0; i < N_AREAS; i++)
        if (areas[i]->start)
            areas[i]->start();
}

void fs_areas_stop(void)
{
    for (size_t i = N_AREAS; i-- > 0;)
        if (areas[i]->stop)
            areas[i]->stop();
}

/* ---- the tree as a user sees it, for the other front door (fs/http.c) ----
 *
 * Each call is the sequence of FUSE operations a program makes for the same
 * thing (mkdir; create, write, close; open, read, close; rm -r), run through
 * the very handlers above, so the areas' rules, validate_write and committed
 * hooks apply exactly as they do to cp and mkdir through the mount. */

/* A change the kernel did not see (it came through HTTP): drop what it
 * cached of path and its folder, so stat and ls at once show the change
 * rather than after the 1 s attribute timeout. */
static void tree_changed(const char *path)
{
    if (!mounted)
        return;
    fuse_invalidate_path(mounted, path); /* -ENOENT: never looked up, nothing cached */
    char parent[FS_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        fuse_invalidate_path(mounted, parent);
    }
}

int fs_tree_mkdir(const char *path)
{
    int rc = vfs_mkdir(path, 0755);
    if (rc == 0)
        tree_changed(path);
    return rc;
}

int fs_tree_stat(const char *path, struct stat *st) { return vfs_getattr(path, st, NULL); }

int fs_tree_write(const char *path, const void *data, size_t len, char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    struct fuse_file_info fi;
    memset(&fi, 0, sizeof fi);
    fi.flags = O_WRONLY | O_CREAT | O_TRUNC;
    int rc = vfs_create(path, 0644, &fi);
    if (rc)
        return rc;
    size_t done = 0;
    while (rc == 0 && done < len) {
        size_t n = len - done > IO_BLOCK ? (size_t)IO_BLOCK : len - done;
        int w = vfs_write(path, (const char *)data + done, n, (off_t)done, &fi);
        if (w < 0)
            rc = w;
        else
            done += (size_t)w;
    }
    if (len == 0) /* an empty file still counts as written (like `: > f`) */
        get_fh(&fi)->written = get_fh(&fi)->dirty = 1;
    int frc = vfs_flush(path, &fi);
    if (why && why_len)
        snprintf(why, why_len, "%s", get_fh(&fi)->why);
    vfs_release(path, &fi);
    tree_changed(path);
    return rc ? rc : frc;
}

int fs_tree_read(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    struct fuse_file_info fi;
    memset(&fi, 0, sizeof fi);
    fi.flags = O_RDONLY;
    int rc = vfs_open(path, &fi);
    if (rc)
        return rc;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= max) {
                rc = -EFBIG;
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                break;
            buf = nb;
        }
        int r = vfs_read(path, buf + n, cap - n, (off_t)n, &fi);
        if (r <= 0) {
            rc = r;
            break;
        }
        n += (size_t)r;
    }
    vfs_release(path, &fi);
    if (!buf)
        return -ENOMEM;
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

typedef struct tree_lister {
    fs_tree_entry_fn fn;
    void *arg;
} tree_lister;

static int tree_fill(void *buf, const char *name, const struct stat *st, off_t off,
                     enum fuse_fill_dir_flags flags)
{
    (void)st;
    (void)off;
    (void)flags;
    tree_lister *l = buf;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    return l->fn(name, l->arg);
}

int fs_tree_list(const char *path, fs_tree_entry_fn fn, void *arg)
{
    struct fuse_file_info fi;
    memset(&fi, 0, sizeof fi);
    int rc = vfs_opendir(path, &fi);
    if (rc)
        return rc;
    tree_lister l = {fn, arg};
    rc = vfs_readdir(path, &l, tree_fill, 0, &fi, 0);
    vfs_releasedir(path, &fi);
    return rc;
}

typedef struct tree_rm {
    const char *dir;
    int rc;
} tree_rm;

static int tree_rm_one(const char *name, void *arg)
{
    tree_rm *r = arg;
    char p[FS_PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", r->dir, name) >= (int)sizeof p) {
        r->rc = -ENAMETOOLONG;
        return 1;
    }
    int rc = fs_tree_remove(p);
    if (rc && !r->rc)
        r->rc = rc;
    return 0;
}

int fs_tree_remove(const char *path)
{
    struct stat st;
    int rc = fs_tree_stat(path, &st);
    if (rc)
        return rc;
    if (!S_ISDIR(st.st_mode)) {
        rc = vfs_unlink(path);
        tree_changed(path);
        return rc;
    }
    /* rm -r: the entries first (generated files unlink as a no-op), then
     * the folder, where the area decides (a model's rmdir cancels training) */
    tree_rm r = {path, 0};
    rc = fs_tree_list(path, tree_rm_one, &r);
    if (rc)
        return rc;
    rc = vfs_rmdir(path);
    tree_changed(path);
    return rc ? rc : r.rc;
}
