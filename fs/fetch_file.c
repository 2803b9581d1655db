/* fetch_file.c: file:// URLs, read with the rights of the user who wrote
 * the file that names them (fetch_int.h).
 *
 * Design: the daemon may run as root, and a user who can write an annotation
 * file must not make it copy files that user cannot read. So the copy is
 * made by a child process that takes the writer's user, group and
 * supplementary groups before it opens the path: the kernel checks every
 * folder and the file as it would for that user, symbolic links included,
 * and there is nothing to race. The child calls only system calls (a forked
 * child of a threaded process may not take locks) and says how it ended by
 * its exit code. It is made by _Fork, not fork: fork first runs every
 * library's atfork handlers in the daemon, and OpenBLAS's handler shuts down
 * and joins its thread pool (racing any BLAS call in flight on another
 * thread) on each file:// URL; _Fork runs none and takes no locks.
 * A daemon that is not root can read only as itself: it reads
 * file:// URLs only from files it owns, and never on a shared mount.
 */
#include "fetch_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* How the child ended (its exit code). */
enum {
    COPY_OK = 0,
    COPY_IDS,    /* could not take the reader's ids */
    COPY_NOENT,  /* no such file */
    COPY_ACCES,  /* the reader may not read it */
    COPY_NOTREG, /* not a regular file */
    COPY_BIG,    /* over the size limit */
    COPY_FULL,   /* the store's disk is full */
    COPY_IO,     /* any other read or write error */
};

#define MAX_GROUPS 256

/* The child: becomes the reader (when ids is set), copies path into out. */
static int copy_as(const char *path, int out, int64_t max, const fs_fetch_reader *r,
                   const gid_t *groups, int ngroups, int ids)
{
    /* raw system calls: glibc's wrappers would signal threads the child
     * does not have */
    if (ids && (syscall(SYS_setgroups, (size_t)ngroups, groups) != 0 ||
                syscall(SYS_setresgid, r->gid, r->gid, r->gid) != 0 ||
                syscall(SYS_setresuid, r->uid, r->uid, r->uid) != 0))
        return COPY_IDS;
    int in = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (in < 0)
        return errno == ENOENT || errno == ENOTDIR ? COPY_NOENT
               : errno == EACCES || errno == EPERM ? COPY_ACCES
                                                   : COPY_IO;
    struct stat st;
    if (fstat(in, &st) != 0)
        return COPY_IO;
    if (!S_ISREG(st.st_mode))
        return COPY_NOTREG;
    if (st.st_size > max)
        return COPY_BIG;
    static char buf[1 << 16]; /* the child's own copy of this page */
    int64_t total = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return COPY_IO;
        if (n == 0)
            return COPY_OK;
        if ((total += n) > max)
            return COPY_BIG; /* it grew while we read */
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return errno == ENOSPC || errno == EDQUOT ? COPY_FULL : COPY_IO;
            done += w;
        }
    }
}

/* The reader's supplementary groups (from the user database; just its group
 * when it has no entry there). */
static int groups_of(const fs_fetch_reader *r, gid_t *groups)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    int n = MAX_GROUPS;
    if (getpwuid_r(r->uid, &pw, buf, sizeof buf, &found) != 0 || !found ||
        getgrouplist(found->pw_name, r->gid, groups, &n) < 0) {
        groups[0] = r->gid;
        return 1;
    }
    return n;
}

static const char *reason_of(int code, const fetch_job *j)
{
    switch (code) {
    case COPY_IDS: return "cannot take the rights of the user who wrote the file naming it";
    case COPY_NOENT: return "no such file";
    case COPY_ACCES: return "not readable by the user who wrote the file naming it";
    case COPY_NOTREG: return "not a regular file";
    case COPY_BIG:
        return j->kind == KIND_ANN ? "larger than 512 MB" : "larger than " IMG_MAX_BYTES_TEXT;
    case COPY_FULL: return "the store's disk is full";
    default: return "cannot be read";
    }
}

const char *fetch_read_file(fetch_job *j)
{
    char path[FS_PATH_MAX];
    if (fetch_file_url_path(j->url, path, sizeof path) != 0)
        return "not a usable file url";
    uid_t me = geteuid();
    int ids = me == 0 && j->reader.uid != 0;
    if (me != 0 && j->reader.uid != me)
        return "not read: visionfs reads file urls with the rights of the user who wrote the "
               "file naming them, which it can take only when it runs as root";
    if (me != 0 && fs_shared())
        return "not read: on a mount shared with other users (allow_other), file urls are read "
               "only when visionfs runs as root";
    j->fd = fs_tmp_create(j->tmp, sizeof j->tmp);
    if (j->fd < 0) {
        j->tmp[0] = '\0';
        return fs_disk_full(-j->fd) ? "the store's disk is full" : "cannot make a temp file";
    }
    /* a copy of something the user could reach by path: readable by the
     * user who mounted visionfs alone */
    if (fchmod(j->fd, 0600) != 0)
        return "cannot make a temp file";
    gid_t groups[MAX_GROUPS];
    int ngroups = ids ? groups_of(&j->reader, groups) : 0;
    pid_t pid = _Fork();
    if (pid < 0)
        return "cannot start the reader process";
    if (pid == 0) {
        /* the exit system call itself, as _exit makes it: under
         * ThreadSanitizer _exit first waits for a lock of its runtime that
         * another thread of the daemon may have held at _Fork (the child
         * hung there, and the fetcher with it, in test_datasets_urls.sh) */
        syscall(SYS_exit_group,
                copy_as(path, j->fd, j->max_bytes, &j->reader, groups, ngroups, ids));
        _exit(COPY_IO); /* not reached */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : COPY_IO;
    struct stat st;
    j->got = fstat(j->fd, &st) == 0 ? st.st_size : 0;
    return code == COPY_OK ? NULL : reason_of(code, j);
}
