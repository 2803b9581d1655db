/* area.h: how a top-level folder of the mount (datasets/, models/,
 * backbones/) plugs into the FUSE core, and the store helpers areas share.
 *
 * The store is a plain directory tree that mirrors the mount: the mount path
 * /AREA/REL is the file STORE/AREA/REL. The core (fs/ops.c) does the generic
 * file work: it passes reads through to store files, sends every write to a
 * private file (unnamed, in the folder where it will live) and, when the
 * file is closed (flush), asks the area to validate it and then gives it its
 * name (commit) or discards it, so a refused write never costs the previous
 * good file. An area supplies the
 * policy through this hook table: which names may be made, which files are
 * generated (read-only through the mount), what a written file must look
 * like, and what to do once it is in place (e.g. re-verify a dataset, start
 * training). "rel" is always "NAME" or "NAME/sub/path" under the area,
 * already checked to hold no "." or ".." component; an item NAME has already
 * passed fs_name_valid. Hooks return 0 or -errno and run on FUSE threads:
 * they must be short (hand work to a thread of the area) except open_read,
 * which may block until content is ready. Any hook may be NULL:
 * item-level hooks (mkdir_item, rmdir_item, rename_item) then refuse with
 * EPERM; sub-level ones fall back to the plain store operation; predicates
 * default to "no" (is_readonly) and "yes" (is_visible). Names starting with
 * ".vfs" are reserved for bookkeeping and are never shown through the mount.
 * Extend the table only by adding fields at the end.
 */
#ifndef VFS_FS_AREA_H
#define VFS_FS_AREA_H

#include <stddef.h>
#include <stdint.h>

#include "imglimits.h"

typedef struct fs_area {
    const char *name; /* "datasets", "models", "backbones" */
    /* Make STORE/AREA/NAME (the core has checked the name and that it does
     * not exist yet). */
    int (*mkdir_item)(const char *name);
    /* Remove an item (rmdir, the last step of rm -r); the area decides
     * whether what is left may go (ENOTEMPTY otherwise). */
    int (*rmdir_item)(const char *name);
    /* mv of an item; `to` passed the name rules and does not exist. */
    int (*rename_item)(const char *from, const char *to);
    /* mkdir/rmdir below an item. */
    int (*mkdir_sub)(const char *rel);
    int (*rmdir_sub)(const char *rel);
    /* Nonzero: a generated file: mode 0444, writes refused with EACCES,
     * unlink is a silent no-op (so rm -r of the item works). */
    int (*is_readonly)(const char *rel);
    /* Zero: hidden from readdir and lookup (ENOENT). */
    int (*is_visible)(const char *rel);
    /* A written file is complete at tmp_path and is about to become rel.
     * Return 0 to commit, or -errno (usually -EINVAL) to refuse: the temp is
     * discarded and close() returns the error. Write a reason into why.
     * tmp_path is NULL when validate_reads said the file is not read: the
     * name alone is judged, with no other effect (ops.c also asks so at a
     * first close before any write, see writer_hold_name). */
    int (*validate_write)(const char *rel, const char *tmp_path, char *why, size_t why_len);
    /* rel was committed (a written file renamed into place, or something
     * moved or created there). */
    void (*committed)(const char *rel);
    /* rel was removed (unlink of a file, rmdir below an item, or the source
     * of a rename). */
    void (*unlinked)(const char *rel);
    /* Called before a file is opened for reading; may block until the
     * content is ready (e.g. models/M/predict/X.json). */
    int (*open_read)(const char *rel);
    /* Largest size a write may reach (EFBIG beyond); 0 = the core default. */
    int64_t (*max_size)(const char *rel);
    /* Start and stop the area's threads: called from FUSE init and destroy
     * (after fuse has daemonized), or from tests. */
    void (*start)(void);
    void (*stop)(void);
    /* Optional second, read-only root merged under the area (backbones/
     * shows the installed default backbones); NULL or "" for none. Entries in
     * STORE/AREA win over entries of the same name there. */
    const char *(*extra_root)(void);
    /* A new file rel is about to be created (create, or the target of a
     * rename): 0 to allow, or -errno to refuse (NULL: always allowed). */
    int (*check_create)(const char *rel);
    /* A write of rel failed before close (err: ENOSPC, EFBIG, ...) and was
     * discarded; the file as it was stays. */
    void (*write_failed)(const char *rel, int err);
    /* Nonzero when validate_write reads the written file of rel; zero: it
     * decides by the name alone and gets tmp_path NULL, which spares the
     * core a name for the file before it is committed (NULL hook: always
     * a path). */
    int (*validate_reads)(const char *rel);
} fs_area;

/* The areas, defined by fs/datasets.c, fs/models.c, fs/backbones.c. */
extern const fs_area fs_area_datasets;
extern const fs_area fs_area_models;
extern const fs_area fs_area_backbones;

/* Default largest size of a written file (20 MB, SPEC section 3). */
/* Size of a path buffer for a store file: the store's own path (PATH_MAX)
 * plus an area and a path below it; a longer path fails at the system call. */
#define FS_PATH_MAX 4200

#define FS_MAX_FILE_DEFAULT IMG_MAX_BYTES

/* ---- store helpers (fs/store.c) ---- */

/* Sets the store root (made if missing, with .tmp/) and takes the store's
 * lock; returns 0, -EBUSY when another visionfs uses the store, or -errno.
 * Calling it again (e.g. with the absolute path) keeps the lock. */
int fs_store_open(const char *root);
/* The store root; borrowed for the life of the process. */
const char *fs_store_root(void);
/* Formats STORE/AREA/REL into out (rel may be NULL or "" for the area
 * folder). Returns 0, or -ENAMETOOLONG. */
int fs_store_path(char *out, size_t n, const char *area, const char *rel);
/* 1 when name is 1-64 chars of A-Za-z0-9._- not starting with '.'. */
int fs_name_valid(const char *name);
/* Writes data to path atomically: a temp file in STORE/.tmp, then rename.
 * Readers see the old content or the new, never a mix. 0 or -errno. */
int fs_write_atomic(const char *path, const void *data, size_t len);
/* Makes a new temp file in STORE/.tmp; writes its path into out and returns
 * an fd open for writing (O_RDWR), or -errno. */
int fs_tmp_create(char *out, size_t n);
/* A new file without a name (O_TMPFILE) in the store folder dir, open for
 * writing (O_RDWR, mode 0600): its inode is made where the file will live,
 * and a crash leaves nothing behind. Returns the fd, or -errno (EOPNOTSUPP,
 * EISDIR or EINVAL where the file system or kernel has no O_TMPFILE). */
int fs_anon_create(const char *dir);
/* Gives the anonymous file fd the name path (which must not exist, EEXIST
 * otherwise; same file system). 0 or -errno. */
int fs_anon_link(int fd, const char *path);
/* Gives the anonymous file fd a new name in STORE/.tmp (its path in out),
 * to be validated by path or renamed over an existing file. 0 or -errno. */
int fs_anon_tmp_link(int fd, char *out, size_t n);
/* Writes all len bytes of data to fd (short writes and EINTR retried): 0
 * or -errno. */
int fs_write_fd(int fd, const void *data, size_t len);
/* A new temp file in STORE/.tmp holding data, closed (path in out): 0, or
 * -errno with nothing left behind. */
int fs_tmp_write(char *out, size_t n, const void *data, size_t len);
/* 1 when errno value err (positive) means the disk or quota is full. */
int fs_disk_full(int err);
/* Makes a new empty folder in STORE/.tmp (path in out); 0 or -errno. */
int fs_tmp_mkdir(char *out, size_t n);
/* rm -rf of path (no symlinks are followed). 0 or -errno. */
int fs_remove_tree(const char *path);

/* A 1 MB file of allocated space in the store, given back when the disk is
 * full so that a failure can still be written down (status, log) instead of
 * leaving a stale "training". fs_store_reserve (re)creates it, quietly
 * doing nothing when there is no room; fs_store_release_reserve removes it
 * and returns 1 when there was one. */
void fs_store_reserve(void);
/* Removes every "STORE/" from s, so a message names paths as the mount
 * shows them ("datasets/d/images/a.png"), never where the store lives. */
void fs_store_unroot(char *s);
int fs_store_release_reserve(void);
/* Moves path out of the way at once (rename into STORE/.tmp) and deletes it
 * there, so a big tree disappears from the mount immediately. 0 once it is
 * moved, or -errno when it could not be (it is still there). A thread that
 * still holds a folder fd of the tree may create files in it while it is
 * deleted: what cannot be deleted then stays in STORE/.tmp (logged), which
 * is emptied at the next mount; the caller's rmdir has still succeeded. */
int fs_discard_tree(const char *path);
/* Copies in to out (n bytes, n >= 1) as text safe to show as one line of a
 * log or status file a user reads with cat, less or tail -f: C0 controls
 * (newline, carriage return, escape, tab, ...), DEL, C1 controls
 * (U+0080..U+009F), U+2028, U+2029 and every byte that is not UTF-8 are
 * written as \xNN, one escape per byte, so no name or URL a user wrote
 * can start a forged entry, overwrite the line on screen or send a
 * terminal escape, and the bytes can still be read. Other UTF-8 text is
 * kept, backslashes too (coco's messages escape controls the same way
 * already; a literal "\x0A" in a name stays four harmless characters).
 * Never cuts an escape or a character: what does not fit is left out.
 * Returns the length written. */
size_t fs_line_escape(char *out, size_t n, const char *in);
/* Log lines to STORE/.vfs-log from now on (enable) or to stderr. */
void fs_log_to_store(int enable);
/* Log a line to the daemon log (stderr with -f; STORE/.vfs-log otherwise). */
void fs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether the mount is shared with other users (allow_other); set once by
 * main before the mount. */
void fs_set_shared(int shared);
int fs_shared(void);
/* Online CPUs, 1 to 64. */
int fs_ncpu(void);
/* Seconds on the monotonic clock. */
double fs_now(void);
/* 1 when VFS_TRACE_PREDICT is set in the daemon's environment: each
 * prediction (predict/ and HTTP analyze) logs its stages' times (queue
 * wait, engine, result file, request body, temp file) in milliseconds. */
int fs_trace_predict(void);
int fs_ends_with(const char *s, const char *suffix);
/* The whole of a regular file (not a symlink) of at most max bytes, NUL
 * terminated; *len (may be NULL) gets its length. A new buffer, or NULL. */
char *fs_read_small(const char *path, size_t max, size_t *len);

#endif
