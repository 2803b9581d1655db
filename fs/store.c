/* store.c: the on-disk store behind the mount: path building, name rules,
 * atomic file replacement and tree removal.
 *
 * Design: the store is a plain directory tree that mirrors the mount, so it
 * survives unmount and kill -9 and can be inspected with ordinary tools.
 * Every file the daemon generates is written to STORE/.tmp and renamed into
 * place, so readers and crashes only ever see a whole old or a whole new
 * file. STORE/.tmp is emptied at mount: whatever is there was never
 * committed. No fsync before a rename (here and for writes through the
 * mount, fs/ops.c): the kernel keeps the written pages when the daemon is
 * killed (kill -9, a crash of visionfs), so the rename alone keeps files
 * whole then; only a power loss or kernel crash could leave a renamed file
 * short or empty, and an fsync per file would cost more than the whole copy
 * of a small image. A user who needs that guarantee runs sync(1).
 * One daemon per store: STORE/.vfs-lock is held with flock for the life of
 * the process (the kernel drops it when the process dies).
 */
#include "area.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char store_root[4096];
static int lock_fd = -1; /* flock on STORE/.vfs-lock: one daemon per store */
static atomic_uint tmp_counter;
static FILE *log_file; /* NULL: stderr */

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    /* the store itself is private: annotation files may hold tokens */
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int fs_store_open(const char *root)
{
    size_t len = strlen(root);
    if (len == 0 || len >= sizeof store_root - 256)
        return -ENAMETOOLONG;
    memcpy(store_root, root, len + 1);
    while (len > 1 && store_root[len - 1] == '/')
        store_root[--len] = '\0';
    int rc = mkdir_p(store_root);
    if (rc)
        return rc;
    char tmp[FS_PATH_MAX];
    if (lock_fd < 0) {
        /* a second daemon on the same store would empty the first one's
         * .tmp and race its verifier: refuse it */
        snprintf(tmp, sizeof tmp, "%s/.vfs-lock", store_root);
        int fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
            close(fd);
            return e;
        }
        lock_fd = fd;
    }
    snprintf(tmp, sizeof tmp, "%s/.tmp", store_root);
    fs_remove_tree(tmp);
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -errno;
    fs_store_reserve();
    static const char *const areas[] = {"datasets", "models", "backbones"};
    for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
        snprintf(tmp, sizeof tmp, "%s/%s", store_root, areas[i]);
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

const char *fs_store_root(void) { return store_root; }

int fs_store_path(char *out, size_t n, const char *area, const char *rel)
{
    int w;
    if (rel && *rel)
        w = snprintf(out, n, "%s/%s/%s", store_root, area, rel);
    else
        w = snprintf(out, n, "%s/%s", store_root, area);
    return (w < 0 || (size_t)w >= n) ? -ENAMETOOLONG : 0;
}

int fs_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 || len > 64 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static int make_file(const char *path, void *arg)
{
    (void)arg;
    return open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
}

static int make_dir(const char *path, void *arg)
{
    (void)arg;
    return mkdir(path, 0700);
}

/* A name for the anonymous file open as *(int *)arg (O_TMPFILE), through
 * /proc so that no privilege is needed (linkat with AT_EMPTY_PATH wants
 * CAP_DAC_READ_SEARCH). */
static int make_link(const char *path, void *arg)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", *(int *)arg);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/* A new name STORE/.tmp/<kind>PID.N made by make (returns >= 0, or -1 with
 * errno; EEXIST tries the next N): what make returned, or -errno. */
static int tmp_make(char *out, size_t n, char kind, int (*make)(const char *, void *), void *arg)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned k = atomic_fetch_add(&tmp_counter, 1);
        int w = snprintf(out, n, "%s/.tmp/%c%ld.%u", store_root, kind, (long)getpid(), k);
        if (w < 0 || (size_t)w >= n)
            return -ENAMETOOLONG;
        int rc = make(out, arg);
        if (rc >= 0)
            return rc;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

int fs_tmp_create(char *out, size_t n) { return tmp_make(out, n, 'w', make_file, NULL); }

int fs_tmp_mkdir(char *out, size_t n) { return tmp_make(out, n, 's', make_dir, NULL); }

int fs_anon_create(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    return fd >= 0 ? fd : -errno;
}

int fs_anon_link(int fd, const char *path) { return make_link(path, &fd) == 0 ? 0 : -errno; }

int fs_anon_tmp_link(int fd, char *out, size_t n)
{
    int rc = tmp_make(out, n, 'l', make_link, &fd);
    return rc < 0 ? rc : 0;
}

int fs_write_fd(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int fs_tmp_write(char *out, size_t n, const void *data, size_t len)
{
    int fd = fs_tmp_create(out, n);
    if (fd < 0)
        return fd;
    int e = fs_write_fd(fd, data, len);
    if (e) {
        close(fd);
        unlink(out);
        return e;
    }
    if (close(fd) != 0) {
        int e = -errno;
        unlink(out);
        return e;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[FS_PATH_MAX];
    int rc = fs_tmp_write(tmp, sizeof tmp, data, len);
    if (rc)
        return rc;
    if (rename(tmp, path) != 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

int fs_disk_full(int err) { return err == ENOSPC || err == EDQUOT; }

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        return rmdir(path) != 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) != 0 && errno != ENOENT ? -1 : 0;
}

int fs_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) != 0 ? -errno : 0;
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errno ? -errno : -EIO;
    return 0;
}

void fs_store_unroot(char *s)
{
    size_t rl = strlen(store_root);
    if (rl == 0)
        return;
    for (char *p = strstr(s, store_root); p; p = strstr(p, store_root)) {
        if (p[rl] == '/')
            memmove(p, p + rl + 1, strlen(p + rl + 1) + 1);
        else
            p += rl;
    }
}

#define RESERVE_BYTES (1 << 20)

static void reserve_path(char *out, size_t n) { snprintf(out, n, "%s/.reserve", store_root); }

void fs_store_reserve(void)
{
    char path[FS_PATH_MAX];
    struct stat st;
    reserve_path(path, sizeof path);
    if (stat(path, &st) == 0 && st.st_blocks * 512 >= RESERVE_BYTES)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int rc = posix_fallocate(fd, 0, RESERVE_BYTES);
    close(fd);
    if (rc != 0)
        unlink(path); /* no room now: tried again at the next success */
}

int fs_store_release_reserve(void)
{
    char path[FS_PATH_MAX];
    reserve_path(path, sizeof path);
    return unlink(path) == 0;
}

int fs_discard_tree(const char *path)
{
    char tmp[FS_PATH_MAX];
    unsigned k = atomic_fetch_add(&tmp_counter, 1);
    snprintf(tmp, sizeof tmp, "%s/.tmp/d%ld.%u", store_root, (long)getpid(), k);
    if (rename(path, tmp) != 0)
        return -errno;
    /* gone from the mount: from here on the rmdir has succeeded, whatever
     * the deletion meets (reporting ENOTEMPTY for a folder that is gone
     * made rm -r fail and left the area's record behind) */
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++)
        if ((rc = fs_remove_tree(tmp)) == 0)
            return 0;
    fs_log("\"%s\" not deleted yet (%s): it goes at the next mount", tmp + strlen(store_root) + 1,
           strerror(-rc));
    return 0;
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void fs_log_to_store(int enable)
{
    pthread_mutex_lock(&log_lock);
    if (log_file) {
        fclose(log_file);
        log_file = NULL;
    }
    if (enable) {
        char path[FS_PATH_MAX];
        snprintf(path, sizeof path, "%s/.vfs-log", store_root);
        log_file = fopen(path, "ae");
    }
    pthread_mutex_unlock(&log_lock);
}

/* Length of the UTF-8 sequence at s (1-4, shortest form, no surrogates,
 * at most U+10FFFF), or 0 when it is not one. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    int n = c < 0x80             ? 1
            : (c & 0xe0) == 0xc0 ? 2
            : (c & 0xf0) == 0xe0 ? 3
            : (c & 0xf8) == 0xf0 ? 4
                                 : 0;
    if (n == 0 || (n == 2 && c < 0xc2) || (n == 4 && c > 0xf4))
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && c == 0xe0 && s[1] < 0xa0) || (n == 3 && c == 0xed && s[1] >= 0xa0) ||
        (n == 4 && c == 0xf0 && s[1] < 0x90) || (n == 4 && c == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

size_t fs_line_escape(char *out, size_t n, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)in;
    while (*p) {
        int k = utf8_len(p);
        int esc = k == 0 || (k == 1 && (*p < 0x20 || *p == 0x7f)) ||
                  (k == 2 && p[0] == 0xc2 && p[1] < 0xa0) || /* C1 */
                  (k == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9));
        if (k == 0)
            k = 1; /* a byte that starts no character: escape it alone */
        size_t need = esc ? 4 * (size_t)k : (size_t)k;
        if (o + need >= n)
            break;
        for (int i = 0; i < k; i++) {
            if (esc) {
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[p[i] >> 4];
                out[o++] = hex[p[i] & 15];
            } else {
                out[o++] = (char)p[i];
            }
        }
        p += k;
    }
    out[o] = '\0';
    return o;
}

void fs_log(const char *fmt, ...)
{
    char raw[1024], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    fs_line_escape(line, sizeof line, raw);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fprintf(f, "%s visionfs: %s\n", ts, line);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}

/* ---- small helpers every area uses ---- */

int fs_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

double fs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int fs_trace_predict(void)
{
    static _Atomic int on = -1; /* every thread computes the same value */
    if (on < 0) {
        const char *e = getenv("VFS_TRACE_PREDICT");
        on = e && *e && strcmp(e, "0") != 0;
    }
    return on;
}

int fs_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

char *fs_read_small(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (buf)
        buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

static atomic_int shared_mount;

void fs_set_shared(int shared) { atomic_store(&shared_mount, shared); }

int fs_shared(void) { return atomic_load(&shared_mount); }
