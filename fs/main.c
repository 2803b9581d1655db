/* main.c: build/visionfs: parse the command line, open the store, clear a
 * stale mount a crash left behind, mount, and run libfuse's multithreaded
 * loop until unmounted (fusermount3 -u, SIGINT, SIGTERM).
 *
 * Design: the steps of fuse_main are spelled out so a stale mount point can
 * be detected (ENOTCONN) and detached before mounting again, and so the
 * loop gets enough threads for readers that wait on results. Worker threads
 * start in the init callback, after fuse_daemonize has forked. */
#include "area.h"
#include "engine.h"
#include "http.h"
#include "ops.h"
#include "slurm.h"

#include <errno.h>
#include <signal.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(const char *prog)
{
    printf("usage: %s [--store DIR] [--http ADDR] [-f] [-d] [-o fuse-options] MOUNTPOINT\n"
           "\n"
           "Mounts visionfs at MOUNTPOINT. Everything lives in the store, by default\n"
           "$XDG_DATA_HOME/visionfs (else ~/.local/share/visionfs).\n"
           "  --store DIR   keep datasets and models in DIR\n"
           "  --http ADDR   also serve Azure's Image Analysis 4.0 REST API on ADDR\n"
           "                (HOST:PORT, or PORT for 127.0.0.1); the key every call needs\n"
           "                is in STORE/http-key (docs/migrating-from-azure.md)\n"
           "  --executor local|slurm  where heavy work runs: in the daemon (local, the\n"
           "                default) or as Slurm jobs (training's feature extraction, a\n"
           "                classifier's evaluations and predict/ bursts run as job arrays\n"
           "                of build/visionfs-worker; docs/cluster.md)\n"
           "  --slurm-partition P, --slurm-account A   sbatch's --partition, --account\n"
           "  --slurm-args \"...\"  more sbatch arguments (split on spaces)\n"
           "  --slurm-tasks N  array tasks per extraction, evaluation or burst (default:\n"
           "                one per 500 images to extract, per 100 to evaluate or predict)\n"
           "  --slurm-tries N  runs of a task before the model fails (default 3)\n"
           "  --slurm-worker PATH  the worker (default: visionfs-worker next to visionfs)\n"
           "  -f            stay in the foreground\n"
           "  -d            debug output (implies -f)\n"
           "  -o OPTS       fuse mount options; allow_other (other users may use the\n"
           "                mount) always comes with default_permissions\n"
           "Unmount with: fusermount3 -u MOUNTPOINT\n",
           prog);
}

static int default_store(char *out, size_t n)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        return snprintf(out, n, "%s/visionfs", xdg) < (int)n ? 0 : -1;
    if (home && *home)
        return snprintf(out, n, "%s/.local/share/visionfs", home) < (int)n ? 0 : -1;
    return -1;
}

/* A mount whose daemon died answers ENOTCONN: detach it so we can mount. */
static void clear_stale_mount(const char *mnt)
{
    /* stat may be answered from the kernel's attribute cache for a second
     * after the daemon died; statfs always asks the daemon */
    struct stat st;
    struct statfs sf;
    int dead =
        (stat(mnt, &st) != 0 && errno == ENOTCONN) || (statfs(mnt, &sf) != 0 && errno == ENOTCONN);
    if (!dead)
        return;
    fprintf(stderr, "visionfs: \"%s\": stale mount (daemon gone), detaching it\n", mnt);
    if (umount2(mnt, MNT_DETACH) == 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        execlp("fusermount3", "fusermount3", "-u", "-z", mnt, (char *)NULL);
        _exit(127);
    }
    if (pid > 0) {
        int status;
        waitpid(pid, &status, 0);
    }
}

/* 1 when something live is mounted at mnt (its device differs from its
 * parent's): mounting over it would hide it, e.g. a first visionfs. */
static int live_mount_at(const char *mnt)
{
    char parent[PATH_MAX + 4];
    struct stat a, b;
    snprintf(parent, sizeof parent, "%s/..", mnt);
    return stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* 1 when the comma-separated option list has the option name. */
static int opt_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* 1 when some -o option of argv[1..argc) is name. */
static int fuse_opt_given(char **argv, int argc, const char *name)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && opt_listed(argv[i + 1], name))
            return 1;
        if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2] && opt_listed(argv[i] + 2, name))
            return 1;
    }
    return 0;
}

static fs_slurm_config g_exec = {.max_tries = 3, .poll_seconds = 1.0};
static char g_executor[16] = "local";

/* One of the executor options with its value; -1 when name is not one. */
static int executor_arg(const char *name, const char *v)
{
    if (strcmp(name, "--executor") == 0)
        snprintf(g_executor, sizeof g_executor, "%s", v);
    else if (strcmp(name, "--slurm-partition") == 0)
        snprintf(g_exec.partition, sizeof g_exec.partition, "%s", v);
    else if (strcmp(name, "--slurm-account") == 0)
        snprintf(g_exec.account, sizeof g_exec.account, "%s", v);
    else if (strcmp(name, "--slurm-args") == 0)
        snprintf(g_exec.args, sizeof g_exec.args, "%s", v);
    else if (strcmp(name, "--slurm-worker") == 0)
        snprintf(g_exec.worker, sizeof g_exec.worker, "%s", v);
    else if (strcmp(name, "--slurm-tasks") == 0)
        g_exec.tasks = atoi(v) > 0 ? atoi(v) : -1;
    else if (strcmp(name, "--slurm-tries") == 0)
        g_exec.max_tries = atoi(v) > 0 ? atoi(v) : -1;
    else
        return -1;
    return 0;
}

/* Checks the executor options and sets the executor. 0, or 2 (said why). */
static int executor_setup(void)
{
    if (strcmp(g_executor, "local") == 0)
        return 0;
    if (strcmp(g_executor, "slurm") != 0) {
        fprintf(stderr, "visionfs: --executor \"%s\": expected local or slurm\n", g_executor);
        return 2;
    }
    if (g_exec.tasks < 0 || g_exec.max_tries < 0) {
        fprintf(stderr, "visionfs: --slurm-tasks and --slurm-tries take a number >= 1\n");
        return 2;
    }
    if (!g_exec.worker[0]) {
        char self[PATH_MAX - 32];
        ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
        self[l > 0 ? l : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(g_exec.worker, sizeof g_exec.worker, "%s/visionfs-worker", self);
    }
    char real[PATH_MAX];
    if (!realpath(g_exec.worker, real) || access(real, X_OK) != 0) {
        fprintf(stderr,
                "visionfs: --executor slurm: the worker \"%s\" is not an executable file "
                "(build it, or name it with --slurm-worker PATH)\n",
                g_exec.worker);
        return 2;
    }
    snprintf(g_exec.worker, sizeof g_exec.worker, "%s", real);
    char *argv[] = {"sbatch", "--version", NULL};
    char out[256];
    if (fs_slurm_run(argv, out, sizeof out) != 0) {
        size_t l = strlen(out);
        while (l && (out[l - 1] == '\n' || out[l - 1] == ' '))
            out[--l] = '\0';
        fprintf(stderr,
                "visionfs: --executor slurm: \"sbatch --version\" failed: %s\n"
                "visionfs: install Slurm's client commands, put them in PATH and make sure they "
                "find the cluster's configuration (SLURM_CONF or configless DNS)\n",
                out);
        return 2;
    }
    g_exec.enabled = 1;
    fs_slurm_configure(&g_exec);
    return 0;
}

/* Takes --store (and --help) out of argv; the rest goes to libfuse in
 * fargv, with our fsname, and default_permissions whenever allow_other is
 * given. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, char *store, size_t n, const char **http, char **fargv,
                      int *fargc)
{
    int k = 0;
    fargv[k++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            snprintf(store, n, "%s", argv[++i]);
        } else if (strncmp(argv[i], "--store=", 8) == 0) {
            snprintf(store, n, "%s", argv[i] + 8);
        } else if (strcmp(argv[i], "--http") == 0 && i + 1 < argc) {
            *http = argv[++i];
        } else if (strncmp(argv[i], "--http=", 7) == 0) {
            *http = argv[i] + 7;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(argv[0]);
            return 0;
        } else if (i + 1 < argc && executor_arg(argv[i], argv[i + 1]) == 0) {
            i++;
        } else {
            fargv[k++] = argv[i];
        }
    }
    fargv[k++] = "-ofsname=visionfs,subtype=visionfs";
    /* allow_other alone lets every local user do anything the daemon can
     * (remove datasets, make it read files for them): with it, the kernel
     * must check each caller against the files' owners and modes */
    fs_set_shared(fuse_opt_given(fargv, k, "allow_other"));
    if (fuse_opt_given(fargv, k, "allow_other") &&
        !fuse_opt_given(fargv, k, "default_permissions")) {
        fargv[k++] = "-odefault_permissions";
        fprintf(stderr, "visionfs: allow_other given: adding default_permissions, so other "
                        "users get only what the files' owners and modes allow\n");
    }
    *fargc = k;
    return -1;
}

/* Opens the store for mounting on mnt: no live mount there, the store not
 * in use nor inside the mount point. real_store/real_mnt get the absolute
 * paths. Returns -1 to go on, else the exit code. */
static int open_store(const char *store, const char *mnt, char *real_store, char *real_mnt)
{
    clear_stale_mount(mnt);
    if (live_mount_at(mnt)) {
        fprintf(stderr,
                "visionfs: \"%s\" is already a mount point (another visionfs or filesystem is "
                "mounted there); unmount it first: fusermount3 -u %s\n",
                mnt, mnt);
        return 1;
    }
    int rc = fs_store_open(store);
    if (rc) {
        fprintf(stderr, "visionfs: store \"%s\": %s\n", store,
                rc == -EBUSY ? "in use by another visionfs (one mount per store)" : strerror(-rc));
        return 1;
    }
    if (!realpath(store, real_store) || !realpath(mnt, real_mnt)) {
        fprintf(stderr, "visionfs: \"%s\": %s\n", mnt, strerror(errno));
        return 1;
    }
    size_t ml = strlen(real_mnt);
    if (strcmp(real_store, real_mnt) == 0 ||
        (strncmp(real_store, real_mnt, ml) == 0 && real_store[ml] == '/')) {
        fprintf(stderr, "visionfs: the store \"%s\" must not be inside the mount point\n",
                real_store);
        return 2;
    }
    fs_store_open(real_store); /* absolute: the daemon chdirs to / */
    struct stat sst;
    if (stat(real_store, &sst) == 0 && (sst.st_mode & 077))
        fprintf(stderr,
                "visionfs: note: the store \"%s\" is open to other users (mode %03o); "
                "chmod 700 it to keep datasets and annotation files private\n",
                real_store, (unsigned)(sst.st_mode & 0777));
    return -1;
}

/* Runs libfuse's loop until unmount or a signal; the loop's result. */
static int serve(struct fuse *fuse, const struct fuse_cmdline_opts *opts)
{
    /* a daemon started with `&` from a script inherits SIGINT ignored, and
     * libfuse leaves ignored signals alone: SIGINT must still unmount */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    struct fuse_session *se = fuse_get_session(fuse);
    if (fuse_set_signal_handlers(se) != 0)
        return -1;
    int rc;
    if (opts->singlethread) {
        rc = fuse_loop(fuse);
    } else {
        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, (unsigned)opts->clone_fd);
        if (opts->max_idle_threads != UINT_MAX)
            fuse_loop_cfg_set_idle_threads(cfg, opts->max_idle_threads);
        /* readers of predict/X.json wait in open(): keep threads to spare */
        unsigned mt = opts->max_threads;
        fuse_loop_cfg_set_max_threads(cfg, mt < 64 || mt > 100000 ? 64 : mt);
        rc = fuse_loop_mt(fuse, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    fuse_remove_signal_handlers(se);
    /* the loop returns the signal that ended it: a clean unmount too */
    return rc == SIGINT || rc == SIGTERM || rc == SIGHUP ? 0 : rc;
}

/* Mounts, daemonizes and serves; the exit code. */
static int mount_and_serve(struct fuse_args *args, const struct fuse_cmdline_opts *opts,
                           const char *real_store, const char *real_mnt)
{
    struct fuse *fuse = fuse_new(args, fs_operations(), sizeof(struct fuse_operations), NULL);
    if (!fuse)
        return 1;
    if (fuse_mount(fuse, opts->mountpoint) != 0) {
        fuse_destroy(fuse);
        return 1;
    }
    int rc = 1, served = fuse_daemonize(opts->foreground) == 0;
    if (served) {
        if (!opts->foreground)
            fs_log_to_store(1);
        fs_log("mounted \"%s\" on \"%s\"", real_store, real_mnt);
        rc = serve(fuse, opts) ? 1 : 0;
    }
    fuse_unmount(fuse);
    fuse_destroy(fuse); /* calls destroy: areas stop their threads */
    if (served)
        fs_log("unmounted \"%s\"", real_mnt);
    return rc;
}

int main(int argc, char **argv)
{
    eng_openmp_passive(argv); /* jobs here share cores with the FUSE threads */
    char store[PATH_MAX] = "";
    char **fargv = calloc((size_t)argc + 3, sizeof *fargv);
    if (!fargv)
        return 1;
    int fargc = 0;
    const char *http = NULL;
    int rc = parse_args(argc, argv, store, sizeof store, &http, fargv, &fargc);
    if (rc < 0 && (rc = executor_setup()) == 0)
        rc = -1;
    if (rc >= 0) {
        free(fargv);
        return rc;
    }
    struct fuse_args args = FUSE_ARGS_INIT(fargc, fargv);
    struct fuse_cmdline_opts opts;
    memset(&opts, 0, sizeof opts);
    char real_store[PATH_MAX], real_mnt[PATH_MAX];
    if (fuse_parse_cmdline(&args, &opts) != 0) {
        /* libfuse said what is wrong (e.g. a mount point that does not exist) */
        fprintf(stderr, "visionfs: see %s --help\n", argv[0]);
        rc = 2;
    } else if (opts.show_version) {
        printf("visionfs 0.1, libfuse %s\n", fuse_pkgversion());
        rc = 0;
    } else if (!opts.mountpoint) {
        usage(argv[0]);
        fprintf(stderr, "visionfs: no mount point given\n");
        rc = 2;
    } else if (!store[0] && default_store(store, sizeof store) != 0) {
        fprintf(stderr, "visionfs: no --store and neither XDG_DATA_HOME nor HOME is set\n");
        rc = 2;
    } else if ((rc = open_store(store, opts.mountpoint, real_store, real_mnt)) < 0) {
        char err[512];
        /* bound before fuse daemonizes, so a busy port is said here */
        if (http && fs_http_prepare(http, err, sizeof err) != 0) {
            fprintf(stderr, "visionfs: %s\n", err);
            rc = 1;
        } else {
            rc = mount_and_serve(&args, &opts, real_store, real_mnt);
        }
    }
    free(opts.mountpoint);
    fuse_opt_free_args(&args);
    free(fargv);
    return rc;
}
