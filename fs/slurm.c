/* slurm.c: the Slurm executor's client side (see slurm.h): sbatch, squeue,
 * scancel and sacct run as child processes and their output parsed.
 *
 * Design: the client commands rather than libslurm: they are what every site
 * has and supports (libslurm's API changes with each release and its
 * configuration must match the controller's), the cost of a process per
 * poll is small next to the jobs, and a site's wrappers keep working.
 */
#include "slurm.h"

#include "area.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static fs_slurm_config g_cfg;

void fs_slurm_configure(const fs_slurm_config *c) { g_cfg = *c; }

const fs_slurm_config *fs_slurm(void) { return &g_cfg; }

/* Kills the process group of a child that run_cmd started (it leads it)
 * and reaps the child. */
static void kill_child(pid_t pid)
{
    kill(-pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* run_cmd's answer when it was told to stop (apart from exit statuses and
 * -errno). */
#define FS_SLURM_ABORTED (-1000)

/* fs_slurm_run, and with abort (may be NULL) polled every ABORT_POLL_MS
 * while the child runs: when it says stop, the child and whatever it
 * started (its own process group) are killed and the answer is
 * FS_SLURM_ABORTED. */
#define ABORT_POLL_MS 100
static int run_cmd(char *const argv[], char *out, size_t n, int (*abort)(void *), void *actx)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    if (abort) { /* a group of its own, to kill whatever it starts too */
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setpgroup(&at, 0);
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        if (n)
            snprintf(out, n, "%s: %s", argv[0], strerror(rc));
        return -rc;
    }
    size_t got = 0;
    char sink[512];
    for (;;) {
        if (abort) {
            struct pollfd pf = {p[0], POLLIN, 0};
            int r = poll(&pf, 1, ABORT_POLL_MS);
            if (r < 0 && errno != EINTR)
                break;
            if (abort(actx)) {
                close(p[0]);
                kill_child(pid);
                if (n)
                    snprintf(out, n, "%s: stopped (cancelled)", argv[0]);
                return FS_SLURM_ABORTED;
            }
            if (r <= 0)
                continue;
        }
        char *dst = got + 1 < n ? out + got : sink;
        size_t room = got + 1 < n ? n - 1 - got : sizeof sink;
        ssize_t r = read(p[0], dst, room);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (dst != sink)
            got += (size_t)r;
    }
    close(p[0]);
    if (n)
        out[got < n ? got : n - 1] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int fs_slurm_run(char *const argv[], char *out, size_t n)
{
    return run_cmd(argv, out, n, NULL, NULL);
}

/* The last non-empty line of s, without its newline, into out. */
static void last_line(const char *s, char *out, size_t n)
{
    size_t len = strlen(s);
    while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
        len--;
    size_t b = len;
    while (b && s[b - 1] != '\n')
        b--;
    snprintf(out, n, "%.*s", (int)(len - b), s + b);
}

int fs_slurm_submit(const char *script, const char *spec, const char *name, const char *out,
                    char *jobid, size_t n, char *err, size_t en)
{
    char array[64], jname[160], output[4200], part[160], acct[160];
    char extra[sizeof g_cfg.args];
    char *argv[64];
    int k = 0;
    snprintf(array, sizeof array, "--array=%s", spec);
    snprintf(jname, sizeof jname, "--job-name=%s", name);
    snprintf(output, sizeof output, "--output=%s", out);
    argv[k++] = "sbatch";
    argv[k++] = "--parsable";
    argv[k++] = array;
    argv[k++] = jname;
    argv[k++] = output;
    if (g_cfg.partition[0]) {
        snprintf(part, sizeof part, "--partition=%s", g_cfg.partition);
        argv[k++] = part;
    }
    if (g_cfg.account[0]) {
        snprintf(acct, sizeof acct, "--account=%s", g_cfg.account);
        argv[k++] = acct;
    }
    snprintf(extra, sizeof extra, "%s", g_cfg.args);
    char *save = NULL;
    for (char *t = strtok_r(extra, " \t", &save); t && k < 60; t = strtok_r(NULL, " \t", &save))
        argv[k++] = t;
    argv[k++] = (char *)script;
    argv[k] = NULL;
    char buf[2048];
    int rc = fs_slurm_run(argv, buf, sizeof buf);
    char line[512];
    last_line(buf, line, sizeof line);
    /* --parsable: "jobid" or "jobid;cluster" */
    size_t idl = strspn(line, "0123456789");
    if (rc != 0 || idl == 0 || idl >= n || (line[idl] && line[idl] != ';')) {
        snprintf(err, en, "sbatch failed (exit %d): %s", rc, line[0] ? line : "no output");
        return -1;
    }
    snprintf(jobid, n, "%.*s", (int)idl, line);
    return 0;
}

static double parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return 0;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return t == (time_t)-1 ? 0 : (double)t;
}

/* Splits s at '|' into at most n fields (in place). */
static int fields(char *s, char **f, int n)
{
    int k = 0;
    f[k++] = s;
    for (char *p = s; *p && k < n; p++)
        if (*p == '|') {
            *p = '\0';
            f[k++] = p + 1;
        }
    return k;
}

static int poll_job(const char *job, fs_slurm_task *tasks, int n, char *err, size_t en)
{
    char jarg[FS_SLURM_ID_MAX + 8];
    snprintf(jarg, sizeof jarg, "--jobs=%s", job);
    char *argv[] = {
        "squeue", "--noheader", "--array", "--states=all", jarg, "--format=%F|%K|%T|%N|%V|%S|%r",
        NULL};
    size_t cap = 64 + (size_t)n * 200;
    char *out = malloc(cap);
    if (!out) {
        snprintf(err, en, "out of memory");
        return -1;
    }
    int rc = fs_slurm_run(argv, out, cap);
    if (rc != 0) {
        /* a purged job: squeue refuses its id; its tasks are simply not listed */
        int purged = strstr(out, "Invalid job id") != NULL;
        if (!purged) {
            char line[400];
            last_line(out, line, sizeof line);
            snprintf(err, en, "squeue failed (exit %d): %s", rc, line);
        }
        free(out);
        return purged ? 0 : -1;
    }
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *f[7];
        if (fields(l, f, 7) != 7 || strcmp(f[0], job) != 0)
            continue;
        int idx = atoi(f[1]);
        for (int i = 0; i < n; i++) {
            fs_slurm_task *t = &tasks[i];
            if (t->index != idx || strcmp(t->job, job) != 0)
                continue;
            t->listed = 1;
            snprintf(t->state, sizeof t->state, "%s", f[2]);
            snprintf(t->node, sizeof t->node, "%s", strcmp(f[3], "(null)") ? f[3] : "");
            snprintf(t->reason, sizeof t->reason, "%s", strcmp(f[6], "None") ? f[6] : "");
            double sub = parse_time(f[4]), sta = parse_time(f[5]);
            if (sub > 0)
                t->submitted = sub;
            /* a pending task's %S is the expected start: only a running or
             * finished one has really started */
            if (sta > 0 && strcmp(f[2], "PENDING") != 0)
                t->started = sta;
        }
    }
    free(out);
    return 0;
}

int fs_slurm_poll(fs_slurm_task *tasks, int n, char *err, size_t en)
{
    for (int i = 0; i < n; i++)
        tasks[i].listed = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(tasks[j].job, tasks[i].job) == 0;
        if (!seen && tasks[i].job[0] && poll_job(tasks[i].job, tasks, n, err, en) != 0)
            return -1;
    }
    return 0;
}

void fs_slurm_cancel(const fs_slurm_task *tasks, int n)
{
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(tasks[j].job, tasks[i].job) == 0;
        if (seen || !tasks[i].job[0])
            continue;
        char *argv[] = {"scancel", (char *)tasks[i].job, NULL};
        char out[512];
        (void)fs_slurm_run(argv, out, sizeof out);
    }
}

double fs_slurm_duration(const char *s)
{
    long v[4] = {0, 0, 0, 0}; /* days, hours, minutes, seconds */
    int k = 0;
    const char *p = s, *dash = strchr(s, '-');
    char *e;
    if (dash) {
        v[0] = strtol(p, &e, 10);
        if (e != dash || e == p)
            return -1;
        p = dash + 1;
    }
    long part[3];
    for (;;) {
        if (*p < '0' || *p > '9' || k == 3)
            return -1;
        part[k++] = strtol(p, &e, 10);
        if (*e != ':')
            break;
        p = e + 1;
    }
    double frac = 0;
    if (*e == '.') {
        p = e;
        frac = strtod(p, &e);
    }
    if (*e || k < 2 || (dash && k != 3))
        return -1;
    v[1] = k == 3 ? part[0] : 0;
    v[2] = part[k - 2];
    v[3] = part[k - 1];
    return ((v[0] * 24.0 + v[1]) * 60.0 + v[2]) * 60.0 + v[3] + frac;
}

/* 1 when a line of s starts with prefix. */
static int has_line(const char *s, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *l = s;; l++) {
        if (strncmp(l, prefix, pl) == 0)
            return 1;
        if (!(l = strchr(l, '\n')))
            return 0;
    }
}

/* fs_slurm_accounted, with abort polled while sacct runs: -2 when it
 * said stop (sacct killed). */
static int accounted(const char *jobs, int expect, int (*abort)(void *), void *actx, double *cpu,
                     char *err, size_t en)
{
    *cpu = 0;
    size_t jl = strlen(jobs) + 8;
    char *jarg = malloc(jl);
    size_t cap = 4096 + (size_t)(expect > 0 ? expect : 1) * 400;
    char *out = malloc(cap);
    if (!jarg || !out) {
        free(jarg);
        free(out);
        snprintf(err, en, "out of memory");
        return -1;
    }
    snprintf(jarg, jl, "--jobs=%s", jobs);
    /* no --allocations: an allocation alone reports zero CPU (sacct(1)); its
     * steps hold what the processes used */
    char *argv[] = {"sacct", "--noheader", "--parsable2", jarg, "--format=JobID,TotalCPU,State",
                    NULL};
    int rc = run_cmd(argv, out, cap, abort, actx);
    if (rc == FS_SLURM_ABORTED) {
        snprintf(err, en, "cancelled");
        free(jarg);
        free(out);
        return -2;
    }
    if (rc != 0) {
        char line[400];
        last_line(out, line, sizeof line);
        const char *l = line;
        if (strncmp(l, "sacct: ", 7) == 0)
            l += 7;
        if (strncmp(l, "error: ", 7) == 0)
            l += 7;
        snprintf(err, en, "%s", l[0] ? l : "sacct failed");
        free(jarg);
        free(out);
        return -1;
    }
    /* first the allocations (no '.' in JobID), then their steps */
    int tasks = 0, ended = 1, missing = 0, completed = 0;
    double sum = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (char *l = out; *l;) {
            char *nl = strchr(l, '\n');
            size_t len = nl ? (size_t)(nl - l) : strlen(l);
            char line[256];
            snprintf(line, sizeof line, "%.*s", (int)len, l);
            l += len + (nl ? 1 : 0);
            char *f[3];
            if (fields(line, f, 3) != 3)
                continue;
            char *dot = strchr(f[0], '.');
            if (pass == 0 && !dot) {
                tasks++;
                ended = ended && fs_slurm_state_final(f[2]);
                /* a completed task's batch step must be in too */
                if (strncmp(f[2], "COMPLETED", 9) == 0) {
                    completed++;
                    char batch[80];
                    snprintf(batch, sizeof batch, "%s.batch|", f[0]);
                    missing += !has_line(out, batch);
                }
            } else if (pass == 1 && dot) {
                double s = fs_slurm_duration(f[1]);
                if (s > 0)
                    sum += s;
            }
        }
        if (pass == 0 && (tasks < expect || !ended || missing))
            break;
    }
    free(jarg);
    free(out);
    if (tasks < expect || !ended || missing)
        return 1;
    /* a process that ran uses some CPU: zero for completed tasks means Slurm
     * does not measure it (JobAcctGatherType=jobacct_gather/none) */
    if (completed && sum <= 0) {
        snprintf(err, en, "it accounts 0 CPU s for %d completed task(s): no JobAcctGatherType?",
                 completed);
        return -1;
    }
    *cpu = sum;
    return 0;
}

int fs_slurm_accounted(const char *jobs, int expect, double *cpu, char *err, size_t en)
{
    return accounted(jobs, expect, NULL, NULL, cpu, err, en);
}

/* 1 with err "cancelled" when abort (may be NULL) says stop. */
static int stopped(int (*abort)(void *), void *actx, char *err, size_t en)
{
    if (!abort || !abort(actx))
        return 0;
    snprintf(err, en, "cancelled");
    return 1;
}

int fs_slurm_accounted_wait(const char *jobs, int expect, double wait, double pause,
                            int (*abort)(void *), void *actx, double *cpu, char *err, size_t en)
{
    double t0 = fs_now();
    for (;;) {
        if (stopped(abort, actx, err, en))
            return -2;
        int rc = accounted(jobs, expect, abort, actx, cpu, err, en);
        if (rc != 1 || fs_now() - t0 >= wait)
            return rc;
        /* the pause in slices, so that a cancellation is heard at once */
        for (double left = pause; left > 0; left -= ABORT_POLL_MS * 1e-3) {
            if (stopped(abort, actx, err, en))
                return -2;
            double s = left < ABORT_POLL_MS * 1e-3 ? left : ABORT_POLL_MS * 1e-3;
            struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
}

int fs_slurm_state_final(const char *s)
{
    static const char *const fin[] = {"COMPLETED", "FAILED",        "CANCELLED",   "TIMEOUT",
                                      "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",   "DEADLINE",
                                      "PREEMPTED", "REVOKED",       "SPECIAL_EXIT"};
    for (size_t i = 0; i < sizeof fin / sizeof fin[0]; i++)
        if (strncmp(s, fin[i], strlen(fin[i])) == 0)
            return 1;
    return 0;
}
