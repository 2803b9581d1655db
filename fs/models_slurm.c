/* models_slurm.c: a training run's feature extraction as a Slurm job array
 * (--executor slurm; see slurm.h and docs/cluster.md).
 *
 * Design: the daemon keeps the tree; the workers only fill the feature cache.
 * A run writes a job folder in STORE/.tmp (the image list, the batch script;
 * the workers add started.I, done.I and Slurm's output files), submits one
 * array sharded by image, polls squeue, shows every task in status,
 * status.json and log, retries a task that died, and on success returns:
 * training then runs in the daemon as before and finds every feature in the
 * cache. A task that ran but left no started.I marker means the store is
 * not visible on the nodes: the run fails at once saying so. The CPU an
 * array of a training run charges to its budget is Slurm's own accounting
 * (sacct) where an accounting database answers, else the workers' count
 * from their done markers (charged_cpu).
 */
#include "models_int.h"
#include "slurm.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* Images per array task when --slurm-tasks is not given, and the cap. */
#define IMAGES_PER_TASK 500
#define PREDICT_PER_TASK 100
#define MAX_TASKS 100
/* Consecutive squeue failures (one per poll) before the run gives up. */
#define MAX_POLL_ERRORS 30
/* How long after an array's end sacct may take to record it (seconds), and
 * the pause between two questions. */
#define SACCT_WAIT 5.0
#define SACCT_POLL 0.25

/* s with every ' closed, escaped and reopened: safe inside '...' in sh. */
static void sh_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    fputc('\'', f);
}

/* DIR/job.sh, the one batch script every job folder gets: a comment line,
 * then `exec WORKER CMD --store ROOT --images DIR/images.txt --job-dir DIR
 * ARGS... --shard "$SLURM_ARRAY_TASK_ID/NTASKS"` (every argument quoted for
 * sh). 0, or -1 with err set. */
static int write_job_sh(const char *dir, const char *comment, const char *cmd,
                        const char *const *args, int nargs, int ntasks, char *err, size_t en)
{
    char p[FS_PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/job.sh", dir);
    FILE *f = fopen(p, "w");
    if (!f) {
        snprintf(err, en, "job folder: %s", strerror(errno));
        return -1;
    }
    fprintf(f, "#!/bin/sh\n# visionfs: %s\nexport OMP_WAIT_POLICY=passive\nexec ", comment);
    sh_quote(f, fs_slurm()->worker);
    fprintf(f, " %s --store ", cmd);
    sh_quote(f, fs_store_root());
    fprintf(f, " --images ");
    snprintf(p, sizeof p, "%s/images.txt", dir);
    sh_quote(f, p);
    fprintf(f, " --job-dir ");
    sh_quote(f, dir);
    for (int i = 0; i < nargs; i++) {
        fputc(' ', f);
        sh_quote(f, args[i]);
    }
    fprintf(f, " --shard \"$SLURM_ARRAY_TASK_ID/%d\"\n", ntasks);
    if (fclose(f) != 0) {
        snprintf(err, en, "job folder: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int has_file(const char *dir, const char *what, int idx)
{
    char p[FS_PATH_MAX + 32];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s.%d", dir, what, idx);
    return stat(p, &st) == 0;
}

/* The last line of the task's Slurm output file (what the worker said
 * last), or "" when there is none. Returns 1 when the file exists, and
 * sets *blind when the worker said it cannot see the store. */
static int task_said(const char *dir, const fs_slurm_task *t, char *out, size_t n, int *blind)
{
    char p[FS_PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/task-%d-%s.out", dir, t->index, t->job);
    out[0] = '\0';
    *blind = 0;
    size_t len = 0;
    char *s = fs_read_small(p, 1 << 16, &len);
    if (!s)
        return 0;
    *blind = strstr(s, "is not visible here") != NULL;
    while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
        len--;
    size_t b = len;
    while (b && s[b - 1] != '\n')
        b--;
    snprintf(out, n, "%.*s", (int)(len - b), s + b);
    free(s);
    return 1;
}

/* Where a job array's tasks are shown: m->sl[slot] (-1: nowhere) with its
 * stage, and changed(cctx, summary) told of each change (may be NULL). */
typedef struct sl_show {
    int slot;
    const char *stage;
    void (*changed)(void *cctx, const char *summary);
    void *cctx;
} sl_show;

/* Publishes a copy of the tasks in the record (status, status.json). */
static void show(mdl *m, const sl_show *v, const char *job, const fs_slurm_task *t, int n)
{
    if (v->slot < 0)
        return;
    fs_slurm_task *copy = NULL;
    if (t && n > 0 && (copy = malloc((size_t)n * sizeof *copy)))
        memcpy(copy, t, (size_t)n * sizeof *copy);
    char summary[320] = "";
    pthread_mutex_lock(&g_models.mu);
    mdl_slurm_view *s = &m->sl[v->slot];
    free(s->tasks);
    s->tasks = copy;
    s->ntasks = copy ? n : 0;
    snprintf(s->job, sizeof s->job, "%s", job ? job : "");
    snprintf(s->stage, sizeof s->stage, "%s", v->stage);
    mdl_slurm_summary(s, summary, sizeof summary);
    pthread_mutex_unlock(&g_models.mu);
    mdl_publish(m);
    if (v->changed)
        v->changed(v->cctx, summary);
}

/* One extraction: the backbone folders, detection features or not, and a
 * classifier search's pass (size 0: the backbone's own; aug; seed). */
typedef struct ex_pass {
    char *const *bbs;
    int nb, detector, size, aug;
    uint64_t seed;
} ex_pass;

static int write_inputs(const char *dir, const char *const *paths, int n, const ex_pass *x,
                        int ntasks, char *err, size_t en)
{
    char *const *bbs = x->bbs;
    int nb = x->nb;
    const char *root = fs_store_root();
    size_t rl = strlen(root);
    char p[FS_PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/images.txt", dir);
    FILE *f = fopen(p, "w");
    if (!f) {
        snprintf(err, en, "job folder: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (strncmp(paths[i], root, rl) == 0 && paths[i][rl] == '/')
            fprintf(f, "%s\n", paths[i] + rl + 1);
    if (fclose(f) != 0) {
        snprintf(err, en, "job folder: %s", strerror(errno));
        return -1;
    }
    const char **args = malloc((size_t)(2 * nb + 8) * sizeof *args);
    char size[16], aug[16], seed[32];
    if (!args) {
        snprintf(err, en, "out of memory");
        return -1;
    }
    int na = 0;
    for (int b = 0; b < nb; b++) {
        args[na++] = "--backbone";
        args[na++] = bbs[b];
    }
    if (x->detector) {
        args[na++] = "--kind";
        args[na++] = "detector";
    }
    if (x->size > 0 || x->aug) {
        snprintf(size, sizeof size, "%d", x->size);
        snprintf(aug, sizeof aug, "%d", x->aug);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)x->seed);
        const char *more[] = {"--size", size, "--aug", aug, "--seed", seed};
        for (int k = 0; k < 6; k++)
            args[na++] = more[k];
    }
    snprintf(p, sizeof p, "features of shard $SLURM_ARRAY_TASK_ID of %d", ntasks);
    int rc = write_job_sh(dir, p, "extract", args, na, ntasks, err, en);
    free(args);
    return rc;
}

/* What task i's done marker says: computed, CPU seconds (0 when absent). */
static void task_done(const char *dir, int i, int *computed, double *cpu)
{
    char p[FS_PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/done.%d", dir, i);
    size_t len = 0;
    char *s = fs_read_small(p, 4096, &len);
    const char *c = s ? strstr(s, "\"computed\":") : NULL;
    const char *u = s ? strstr(s, "\"cpuSeconds\":") : NULL;
    *computed = c ? atoi(c + 11) : 0;
    *cpu = u ? atof(u + 13) : 0;
    free(s);
}

/* Totals of the done markers: computed, CPU seconds. */
static void totals(const char *dir, int ntasks, int *computed, double *cpu)
{
    *computed = 0;
    *cpu = 0;
    for (int i = 0; i < ntasks; i++) {
        int c;
        double u;
        task_done(dir, i, &c, &u);
        *computed += c;
        *cpu += u;
    }
}

/* What an array ran, for sacct: its job ids, comma-separated (the first
 * submission's and every retry's; malloc'd), and the array tasks they hold
 * (every try of every task). */
typedef struct sl_ran {
    char *jobs;
    int tries;
} sl_ran;

static void sleep_for(double s)
{
    struct timespec ts = {(time_t)s, (long)(fmod(s, 1.0) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The CPU seconds a finished array charges to the budget (*cpu): what
 * Slurm's accounting says its jobs used (every step of every try:
 * fs_slurm_accounted) when sacct has recorded their end within SACCT_WAIT
 * seconds, else what its workers report in their done markers (`workers`:
 * sites without slurmdbd). The log says which. abort(actx) is heard while
 * it waits for sacct, as run_array hears it while the array runs. 0; -2
 * when abort said stop (*cpu = workers). Frees ran->jobs. */
static int charged_cpu(mdl *m, sl_ran *ran, double workers, int (*abort)(void *), void *actx,
                       double *cpu)
{
    char err[400] = "";
    double acc = 0;
    int rc = -1;
    *cpu = workers;
    if (ran->jobs)
        rc = fs_slurm_accounted_wait(ran->jobs, ran->tries, SACCT_WAIT, SACCT_POLL, abort, actx,
                                     &acc, err, sizeof err);
    if (rc == -2)
        mdl_log(m, "slurm: cancelled while waiting for sacct's accounting of job %s", ran->jobs);
    else if (rc == 0)
        mdl_log(m,
                "budget: %.1f CPU s accounted by Slurm (sacct) for job %s (%d tasks; the workers "
                "report %.1f)",
                acc, ran->jobs, ran->tries, workers);
    else if (rc == 1)
        mdl_log(m,
                "budget: %.1f CPU s reported by the workers (sacct had not recorded the end of "
                "job %s after %.0f s)",
                workers, ran->jobs, SACCT_WAIT);
    else
        mdl_log(m, "budget: %.1f CPU s reported by the workers (sacct: %s)", workers,
                err[0] ? err : "out of memory");
    free(ran->jobs);
    ran->jobs = NULL;
    if (rc == 0)
        *cpu = acc;
    return rc == -2 ? -2 : 0;
}

/* Runs DIR/job.sh as an array of ntasks and follows it to its end: what
 * says what it does (log lines), show 1 puts the tasks in status. 0 done
 * (ran, unless NULL, says what ran: the caller frees ran->jobs); -2
 * aborted; -1 failed with code and msg set. The caller removes dir. */
static int run_array(mdl *m, const char *dir, int ntasks, const char *what, const sl_show *sv,
                     int (*abort)(void *), void *actx, sl_ran *ran, fs_code *code, char *msg,
                     size_t mn)
{
    const fs_slurm_config *cfg = fs_slurm();
    char script[FS_PATH_MAX + 16], outpat[FS_PATH_MAX + 32], job[48];
    char name[FS_TRQ_NAME_MAX + 16], err[600];
    *code = FS_CODE_UNKNOWN;
    fs_slurm_task *t = calloc((size_t)ntasks, sizeof *t);
    int *final_polls = calloc((size_t)ntasks, sizeof *final_polls);
    if (!t || !final_polls) {
        snprintf(msg, mn, "slurm: out of memory");
        free(t);
        free(final_polls);
        return -1;
    }
    snprintf(script, sizeof script, "%s/job.sh", dir);
    snprintf(outpat, sizeof outpat, "%s/task-%%a-%%A.out", dir);
    char mname[FS_TRQ_NAME_MAX + 1];
    mdl_name_copy(m, mname, sizeof mname);
    snprintf(name, sizeof name, "vfs-%s", mname);
    char spec[32];
    snprintf(spec, sizeof spec, "0-%d", ntasks - 1);
    double t0 = fs_now();
    if (fs_slurm_submit(script, spec, name, outpat, job, sizeof job, err, sizeof err) != 0) {
        snprintf(msg, mn, "slurm: submitting the %s: %s", what, err);
        free(t);
        free(final_polls);
        return -1;
    }
    for (int i = 0; i < ntasks; i++) {
        t[i].index = i;
        t[i].tries = 1;
        t[i].submitted = t0;
        snprintf(t[i].job, sizeof t[i].job, "%s", job);
        snprintf(t[i].state, sizeof t[i].state, "PENDING");
    }
    mdl_log(m, "slurm: %s submitted as job array %s (%d tasks)", what, job, ntasks);
    show(m, sv, job, t, ntasks);
    char *ids = strdup(job); /* NULL (out of memory): no sacct */
    int tries = ntasks;
    int result = 1, poll_errors = 0;
    while (result > 0) {
        sleep_for(cfg->poll_seconds);
        if (abort(actx)) {
            fs_slurm_cancel(t, ntasks);
            mdl_log(m, "slurm: cancelled job array %s (scancel)", job);
            result = -2;
            break;
        }
        fs_slurm_task before[MAX_TASKS];
        memcpy(before, t, (size_t)ntasks * sizeof *t);
        if (fs_slurm_poll(t, ntasks, err, sizeof err) != 0) {
            if (++poll_errors >= MAX_POLL_ERRORS) {
                fs_slurm_cancel(t, ntasks);
                snprintf(msg, mn, "slurm: cannot follow job array %s: %s", job, err);
                result = -1;
            }
            continue;
        }
        poll_errors = 0;
        int ndone = 0, changed = 0;
        for (int i = 0; i < ntasks && result > 0; i++) {
            fs_slurm_task *k = &t[i];
            if (!k->done && has_file(dir, "done", i)) {
                k->done = 1;
                if (!fs_slurm_state_final(k->state))
                    snprintf(k->state, sizeof k->state, "COMPLETED");
            }
            if (k->done) {
                ndone++;
            } else if (!k->listed || fs_slurm_state_final(k->state)) {
                /* give the done marker one more poll to appear (a shared
                 * file system may show it a little later) */
                if (++final_polls[i] < 2)
                    continue;
                final_polls[i] = 0;
                char said[300];
                int blind = 0, has_out = task_said(dir, k, said, sizeof said, &blind);
                const char *st = k->listed ? k->state : "LOST (no longer known to squeue)";
                int ran = strcmp(k->state, "COMPLETED") == 0 || strcmp(k->state, "FAILED") == 0;
                /* it ran but left neither its marker nor Slurm's output file
                 * in the job folder (or said so itself): the store is not
                 * shared with its node */
                if (ran && !has_file(dir, "started", i) && (!has_out || blind)) {
                    *code = FS_CODE_UNKNOWN;
                    snprintf(msg, mn,
                             "slurm: task %d of job %s ran on %s but cannot see the store "
                             "\"%s\"%s%s: the store must be on a file system shared with "
                             "the nodes (NFS, Lustre...), at the same path",
                             i, k->job, k->node[0] ? k->node : "its node", fs_store_root(),
                             said[0] ? ": " : "", said);
                    result = -1;
                    break;
                }
                if (k->tries >= cfg->max_tries) {
                    snprintf(msg, mn,
                             "slurm: task %d of the %s failed %d time(s), last as job %s_%d: "
                             "%s%s%s%s%s",
                             i, what, k->tries, k->job, i, st, k->node[0] ? " on " : "", k->node,
                             said[0] ? ": " : "", said);
                    result = -1;
                    break;
                }
                char nj[48], one[16];
                snprintf(one, sizeof one, "%d", i);
                if (fs_slurm_submit(script, one, name, outpat, nj, sizeof nj, err, sizeof err) !=
                    0) {
                    snprintf(msg, mn, "slurm: resubmitting task %d: %s", i, err);
                    result = -1;
                    break;
                }
                mdl_log(m, "slurm: task %d (job %s_%d) ended %s%s%s%s%s; try %d of %d as job %s_%d",
                        i, k->job, i, st, k->node[0] ? " on " : "", k->node, said[0] ? ": " : "",
                        said, k->tries + 1, cfg->max_tries, nj, i);
                size_t il = ids ? strlen(ids) : 0;
                char *more = ids ? realloc(ids, il + strlen(nj) + 2) : NULL;
                if (more)
                    snprintf(more + il, strlen(nj) + 2, ",%s", nj);
                else
                    free(ids);
                ids = more;
                tries++;
                snprintf(k->job, sizeof k->job, "%s", nj);
                snprintf(k->state, sizeof k->state, "PENDING");
                k->node[0] = k->reason[0] = '\0';
                k->submitted = fs_now();
                k->started = 0;
                k->tries++;
                k->listed = 1;
                changed = 1;
            }
        }
        if (result <= 0)
            break;
        for (int i = 0; i < ntasks; i++) {
            const fs_slurm_task *a = &before[i], *k = &t[i];
            if (strcmp(a->state, k->state) == 0 && strcmp(a->node, k->node) == 0)
                continue;
            changed = 1;
            if (strcmp(k->state, "RUNNING") == 0)
                mdl_log(m, "slurm: task %d (job %s_%d) RUNNING on %s after %.1f s queued", i,
                        k->job, i, k->node, k->started > 0 ? k->started - k->submitted : 0);
            else
                mdl_log(m, "slurm: task %d (job %s_%d) %s%s%s", i, k->job, i, k->state,
                        k->node[0] ? " on " : "", k->node);
        }
        if (changed)
            show(m, sv, job, t, ntasks);
        if (ndone == ntasks)
            result = 0;
    }
    if (result == 0)
        mdl_log(m, "slurm: job array %s done in %.1f s", job, fs_now() - t0);
    else if (result == -1)
        fs_slurm_cancel(t, ntasks);
    show(m, sv, NULL, NULL, 0);
    free(t);
    free(final_polls);
    if (result == 0 && ran) {
        ran->jobs = ids;
        ran->tries = tries;
    } else {
        free(ids);
    }
    return result;
}

static int tasks_for(int n, int per_task)
{
    const fs_slurm_config *cfg = fs_slurm();
    int k = cfg->tasks > 0 ? cfg->tasks : (n + per_task - 1) / per_task;
    return k > MAX_TASKS ? MAX_TASKS : k > n ? n : k < 1 ? 1 : k;
}

/* The extraction array of x over paths[0..n): 0 done (*computed, *cpu_out
 * from the done markers), -2 aborted, -1 failed with code and msg. */
static int extract_array(mdl *m, const char *const *paths, int n, const ex_pass *x,
                         const char *what, int (*abort)(void *), void *actx, int *computed_out,
                         double *cpu_out, fs_code *code, char *msg, size_t mn)
{
    *cpu_out = 0;
    *computed_out = 0;
    char dir[FS_PATH_MAX], err[600];
    *code = FS_CODE_UNKNOWN;
    int ntasks = tasks_for(n, IMAGES_PER_TASK);
    int rc = fs_tmp_mkdir(dir, sizeof dir);
    if (rc < 0) {
        snprintf(msg, mn, "slurm: cannot make the job folder: %s", strerror(-rc));
        return -1;
    }
    if (write_inputs(dir, paths, n, x, ntasks, err, sizeof err) != 0) {
        snprintf(msg, mn, "slurm: %s", err);
        fs_remove_tree(dir);
        return -1;
    }
    sl_show sv = {MDL_SL_TRAIN, "features", NULL, NULL};
    sl_ran ran = {NULL, 0};
    rc = run_array(m, dir, ntasks, what, &sv, abort, actx, &ran, code, msg, mn);
    if (rc == 0) {
        int computed;
        double cpu;
        totals(dir, ntasks, &computed, &cpu);
        mdl_log(m, "slurm: %d feature files computed, %.1f CPU s on the nodes", computed, cpu);
        rc = charged_cpu(m, &ran, cpu, abort, actx, cpu_out);
        *computed_out = computed;
    }
    fs_remove_tree(dir);
    return rc;
}

int mdl_slurm_extract(mdl *m, const char *const *paths, int n, char *const *bbs, int nb,
                      int detector, int (*abort)(void *), void *actx, double *cpu_out,
                      fs_code *code, char *msg, size_t mn)
{
    char what[96];
    if (detector)
        snprintf(what, sizeof what, "feature extraction (%d images, detection features)", n);
    else
        snprintf(what, sizeof what, "feature extraction (%d images, %d backbone(s))", n, nb);
    ex_pass x = {bbs, nb, detector, 0, 0, 0};
    int computed;
    return extract_array(m, paths, n, &x, what, abort, actx, &computed, cpu_out, code, msg, mn);
}

int mdl_slurm_extract_pass(mdl *m, const char *const *paths, int n, const char *bbdir, int size,
                           int aug, uint64_t seed, int (*abort)(void *), void *actx, int *computed,
                           double *cpu_out, fs_code *code, char *msg, size_t mn)
{
    static const char *const augname[] = {"", ", flipped", ", cropped"};
    char what[FS_PATH_MAX + 96];
    const char *name = strrchr(bbdir, '/');
    snprintf(what, sizeof what, "feature extraction (%d images, %s@%d%s)", n,
             name ? name + 1 : bbdir, size,
             augname[aug < 0   ? 0
                     : aug > 2 ? 2
                               : aug]);
    char *const bbs[1] = {(char *)bbdir};
    ex_pass x = {bbs, 1, 0, size, aug, seed};
    return extract_array(m, paths, n, &x, what, abort, actx, computed, cpu_out, code, msg, mn);
}

int mdl_slurm_predict(mdl *m, int version, const char *const *paths, int n, int (*abort)(void *),
                      void *actx, char *dir, size_t dn, char *msg, size_t mn)
{
    char name[FS_TRQ_NAME_MAX + 1], p[FS_PATH_MAX + 32], what[64];
    fs_code code;
    int ntasks = tasks_for(n, PREDICT_PER_TASK);
    int rc = fs_tmp_mkdir(dir, dn);
    if (rc < 0) {
        snprintf(msg, mn, "slurm: cannot make the job folder: %s", strerror(-rc));
        return -1;
    }
    pthread_mutex_lock(&g_models.mu);
    snprintf(name, sizeof name, "%s", m->name);
    pthread_mutex_unlock(&g_models.mu);
    const char *root = fs_store_root();
    size_t rl = strlen(root);
    snprintf(p, sizeof p, "%s/images.txt", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; f && i < n; i++)
        fprintf(f, "%s\n", strncmp(paths[i], root, rl) == 0 ? paths[i] + rl + 1 : "");
    char err[600] = "", ver[16], comment[96];
    snprintf(ver, sizeof ver, "%d", version);
    snprintf(comment, sizeof comment, "answers of shard $SLURM_ARRAY_TASK_ID of %d", ntasks);
    const char *args[] = {"--model", name, "--version", ver};
    if (!f || fclose(f) != 0)
        snprintf(err, sizeof err, "job folder: %s", strerror(errno));
    else
        write_job_sh(dir, comment, "predict", args, 4, ntasks, err, sizeof err);
    if (err[0]) {
        snprintf(msg, mn, "slurm: %s", err);
        return -1;
    }
    snprintf(what, sizeof what, "prediction of %d images", n);
    sl_show sv = {-1, "", NULL, NULL};
    return run_array(m, dir, ntasks, what, &sv, abort, actx, NULL, &code, msg, mn);
}

/* The first image a worker could not read (failed.I, in shard order: the
 * image the daemon's own loop would have stopped at). 1 when one did. */
static int first_failure(const char *dir, int ntasks, eng_status *st, eng_diag *d)
{
    for (int i = 0; i < ntasks; i++) {
        char p[FS_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/failed.%d", dir, i);
        size_t len = 0;
        char *s = fs_read_small(p, 4096, &len);
        if (!s)
            continue;
        char *nl = strchr(s, '\n');
        char *msg = nl ? nl + 1 : s + len;
        msg[strcspn(msg, "\n")] = '\0';
        *st = (eng_status)atoi(s);
        if (*st == ENG_OK || *st == ENG_EABORTED)
            *st = ENG_EIO;
        eng_fail(d, *st, "%s", msg);
        free(s);
        return 1;
    }
    return 0;
}

/* Reads the shards' probabilities probs.I into probs (n x ncat). */
static int read_probs(const char *dir, int ntasks, int n, int ncat, float *probs, char *msg,
                      size_t mn)
{
    for (int i = 0; i < ntasks; i++) {
        int lo = (int)((long long)n * i / ntasks), hi = (int)((long long)n * (i + 1) / ntasks);
        size_t want = (size_t)(hi - lo) * ncat * sizeof *probs, len = 0;
        char p[FS_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/probs.%d", dir, i);
        char *s = fs_read_small(p, want + 1, &len);
        if (!s || len != want) {
            snprintf(msg, mn, "slurm: task %d left %s (%zu bytes, expected %zu)", i,
                     s ? "a damaged probs file" : "no probs file", s ? len : 0, want);
            free(s);
            return -1;
        }
        memcpy(probs + (size_t)lo * ncat, s, want);
        free(s);
    }
    return 0;
}

/* The job array of `visionfs-worker evaluate` for mdl_slurm_probs and
 * mdl_slurm_dets: writes the model and the image list into a new job folder
 * (dir), runs the array, and returns 0 with the shards' files in dir (the
 * caller reads them and removes dir) and *ntasks; 1 not taken (an image
 * outside the store); -1 failed with *st and d set (dir removed). */
static int eval_array(mdl *m, const fs_recipe *r, int slot, const char *stage, const void *model,
                      const char *const *paths, int n, int cached, int (*abort)(void *), void *actx,
                      void (*changed)(void *cctx, const char *summary), void *cctx, char *dir,
                      size_t dn, int *ntasks_out, sl_ran *ran, eng_status *st, eng_diag *d)
{
    const char *root = fs_store_root();
    size_t rl = strlen(root);
    for (int i = 0; i < n; i++)
        if (strncmp(paths[i], root, rl) != 0 || paths[i][rl] != '/')
            return 1; /* not in the store: the workers cannot see it */
    char p[FS_PATH_MAX + 32], msg[1024], what[FS_TRQ_NAME_MAX + 96];
    int ntasks = tasks_for(n, PREDICT_PER_TASK);
    *ntasks_out = ntasks;
    *st = ENG_EIO;
    int rc = fs_tmp_mkdir(dir, dn);
    if (rc < 0) {
        eng_fail(d, ENG_EIO, "slurm: cannot make the job folder: %s", strerror(-rc));
        return -1;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    eng_diag sd = {{0}};
    if (r->save(model, p, &sd) != ENG_OK) {
        eng_fail(d, ENG_EIO, "slurm: the model for the workers: %s", sd.msg);
        fs_remove_tree(dir);
        return -1;
    }
    snprintf(p, sizeof p, "%s/images.txt", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; f && i < n; i++)
        fprintf(f, "%s\n", paths[i] + rl + 1);
    char err[600] = "", comment[96];
    snprintf(comment, sizeof comment, "%s of shard $SLURM_ARRAY_TASK_ID of %d",
             strcmp(r->kind, "detector") == 0 ? "objects" : "probabilities", ntasks);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    const char *args[] = {"--model-file", p, "--cache"};
    if (!f || fclose(f) != 0)
        snprintf(err, sizeof err, "job folder: %s", strerror(errno));
    else
        write_job_sh(dir, comment, "evaluate", args, cached ? 3 : 2, ntasks, err, sizeof err);
    if (err[0]) {
        eng_fail(d, ENG_EIO, "slurm: %s", err);
        fs_remove_tree(dir);
        return -1;
    }
    snprintf(what, sizeof what, "%s (%d images)", stage, n);
    sl_show sv = {slot, stage, changed, cctx};
    fs_code code;
    rc = run_array(m, dir, ntasks, what, &sv, abort, actx, ran, &code, msg, sizeof msg);
    if (rc == 0 && first_failure(dir, ntasks, st, d))
        rc = -3;
    if (rc != 0 && ran) {
        free(ran->jobs);
        ran->jobs = NULL;
    }
    if (rc == -2)
        *st = eng_fail(d, ENG_EABORTED, "cancelled");
    else if (rc == -1)
        *st = eng_fail(d, ENG_EIO, "%s", msg);
    if (rc != 0) {
        fs_remove_tree(dir);
        return -1;
    }
    return 0;
}

int mdl_slurm_probs(mdl *m, const fs_recipe *r, int slot, const char *stage, const void *model,
                    const char *const *paths, int n, int cached, int (*abort)(void *), void *actx,
                    void (*changed)(void *cctx, const char *summary), void *cctx, float *probs,
                    double *cpu, eng_status *st, eng_diag *d)
{
    char dir[FS_PATH_MAX], msg[1024];
    int ntasks = 0;
    *cpu = 0;
    sl_ran ran = {NULL, 0};
    int rc = eval_array(m, r, slot, stage, model, paths, n, cached, abort, actx, changed, cctx, dir,
                        sizeof dir, &ntasks, slot == MDL_SL_TRAIN ? &ran : NULL, st, d);
    if (rc != 0)
        return rc;
    if (read_probs(dir, ntasks, n, r->ncat(model), probs, msg, sizeof msg) != 0) {
        *st = eng_fail(d, ENG_EIO, "%s", msg);
        free(ran.jobs);
        rc = -1;
    } else {
        int computed;
        totals(dir, ntasks, &computed, cpu);
        mdl_log(m, "slurm: %d probabilities computed, %.1f CPU s on the nodes", n, *cpu);
        if (slot == MDL_SL_TRAIN && charged_cpu(m, &ran, *cpu, abort, actx, cpu) == -2) {
            *st = eng_fail(d, ENG_EABORTED, "cancelled");
            rc = -1;
        }
    }
    fs_remove_tree(dir);
    return rc;
}

/* Reads the shards' objects dets.I (the worker's text: per image a line
 * "WIDTH HEIGHT COUNT", then COUNT lines "CATEGORY X Y W H SCORE") into
 * objs, nobjs, wh (mdl_slurm_dets). */
static int read_dets(const char *dir, int ntasks, int n, int ncat, eng_det_object *objs, int *nobjs,
                     int *wh, char *msg, size_t mn)
{
    for (int t = 0; t < ntasks; t++) {
        int lo = (int)((long long)n * t / ntasks), hi = (int)((long long)n * (t + 1) / ntasks);
        char p[FS_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/dets.%d", dir, t);
        size_t len = 0;
        char *s = fs_read_small(p, (size_t)1 << 28, &len);
        if (!s) {
            snprintf(msg, mn, "slurm: task %d left no objects file (%s)", t, p);
            return -1;
        }
        const char *c = s;
        int ok = 1;
        for (int i = lo; ok && i < hi; i++) {
            char *e;
            long w = strtol(c, &e, 10), h = strtol(e, &e, 10), k = strtol(e, &e, 10);
            ok = e != c && w > 0 && h > 0 && k >= 0 && k <= ENG_DET_TOPK;
            c = e;
            wh[2 * i] = (int)w;
            wh[2 * i + 1] = (int)h;
            nobjs[i] = ok ? (int)k : 0;
            for (int j = 0; ok && j < k; j++) {
                eng_det_object *o = &objs[(size_t)i * ENG_DET_TOPK + j];
                long cat = strtol(c, &e, 10);
                ok = e != c && cat >= 0 && cat < ncat;
                o->category = (int)cat;
                float *v[5] = {&o->x, &o->y, &o->w, &o->h, &o->score};
                for (int q = 0; ok && q < 5; q++) {
                    c = e;
                    *v[q] = strtof(c, &e);
                    ok = e != c;
                }
                c = e;
            }
        }
        free(s);
        if (!ok) {
            snprintf(msg, mn, "slurm: task %d left a damaged objects file (%s)", t, p);
            return -1;
        }
    }
    return 0;
}

int mdl_slurm_dets(mdl *m, const fs_recipe *r, int slot, const char *stage, const void *model,
                   const char *const *paths, int n, int (*abort)(void *), void *actx,
                   void (*changed)(void *cctx, const char *summary), void *cctx,
                   eng_det_object *objs, int *nobjs, int *wh, double *cpu, eng_status *st,
                   eng_diag *d)
{
    char dir[FS_PATH_MAX], msg[1024];
    int ntasks = 0;
    *cpu = 0;
    sl_ran ran = {NULL, 0};
    int rc = eval_array(m, r, slot, stage, model, paths, n, 0, abort, actx, changed, cctx, dir,
                        sizeof dir, &ntasks, slot == MDL_SL_TRAIN ? &ran : NULL, st, d);
    if (rc != 0)
        return rc;
    if (read_dets(dir, ntasks, n, r->ncat(model), objs, nobjs, wh, msg, sizeof msg) != 0) {
        *st = eng_fail(d, ENG_EIO, "%s", msg);
        free(ran.jobs);
        rc = -1;
    } else {
        int computed, total = 0;
        for (int i = 0; i < n; i++)
            total += nobjs[i];
        totals(dir, ntasks, &computed, cpu);
        mdl_log(m, "slurm: %d objects in %d images found, %.1f CPU s on the nodes", total, n, *cpu);
        if (slot == MDL_SL_TRAIN && charged_cpu(m, &ran, *cpu, abort, actx, cpu) == -2) {
            *st = eng_fail(d, ENG_EABORTED, "cancelled");
            rc = -1;
        }
    }
    fs_remove_tree(dir);
    return rc;
}

/* "efficientnet-lite0 from blocks_14/add and blocks_15/project" (the
 * backbone and the tail's tap of every job, a backbone named once while it
 * stays the same) into out. */
static void ft_names(const eng_finetune_job *jobs, int njobs, char *out, size_t n)
{
    size_t len = 0;
    char prev[128] = "";
    out[0] = '\0';
    for (int i = 0; i < njobs && len < n; i++) {
        cJSON *j = cJSON_Parse(jobs[i].spec);
        const char *bb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "backbone"));
        const char *tap = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "tap"));
        const char *sep = i == 0 ? "" : i == njobs - 1 ? " and " : ", ";
        bb = bb ? bb : "?";
        if (strcmp(bb, prev) == 0)
            len += snprintf(out + len, n - len, "%s%s", sep, tap ? tap : "?");
        else
            len += snprintf(out + len, n - len, "%s%s from %s", sep, bb, tap ? tap : "?");
        snprintf(prev, sizeof prev, "%s", bb);
        cJSON_Delete(j);
    }
}

/* One job array of `visionfs-worker CMD --spec job.0.json ...`, task k for
 * jobs[k] (mdl_slurm_finetune, mdl_slurm_detfit): what names the work in
 * the log and the failures, stage in status.json, task its task in the
 * batch script's comment. */
static int spec_array(mdl *m, eng_finetune_job *jobs, int njobs, const char *const *paths, int n,
                      const char *cmd, const char *what, const char *stage, const char *task,
                      int (*abort)(void *), void *actx, double *cpu, eng_status *st, eng_diag *d)
{
    const char *root = fs_store_root();
    size_t rl = strlen(root);
    *cpu = 0;
    for (int k = 0; k < njobs; k++) {
        jobs[k].result = NULL;
        jobs[k].len = 0;
        jobs[k].cpu = 0;
    }
    if (njobs < 1 || njobs > MAX_TASKS)
        return 1;
    for (int i = 0; i < n; i++)
        if (strncmp(paths[i], root, rl) != 0 || paths[i][rl] != '/')
            return 1; /* not in the store: the workers cannot see it */
    char dir[FS_PATH_MAX], p[FS_PATH_MAX + 32], msg[1024], err[600] = "";
    *st = ENG_EIO;
    int rc = fs_tmp_mkdir(dir, sizeof dir);
    if (rc < 0) {
        eng_fail(d, ENG_EIO, "slurm: cannot make the job folder: %s", strerror(-rc));
        return -1;
    }
    /* task k runs jobs[k]: --spec DIR/job.K.json, one per task, in order */
    const char **args = malloc(sizeof *args * 2 * (size_t)njobs);
    char(*specs)[FS_PATH_MAX + 32] = malloc(sizeof *specs * (size_t)njobs);
    int ok = args && specs;
    for (int k = 0; ok && k < njobs; k++) {
        snprintf(specs[k], sizeof specs[k], "%s/job.%d.json", dir, k);
        args[2 * k] = "--spec";
        args[2 * k + 1] = specs[k];
        FILE *f = fopen(specs[k], "w");
        ok = f && fputs(jobs[k].spec, f) >= 0;
        ok = f && fclose(f) == 0 && ok;
    }
    snprintf(p, sizeof p, "%s/images.txt", dir);
    FILE *f = ok ? fopen(p, "w") : NULL;
    for (int i = 0; f && i < n; i++)
        fprintf(f, "%s\n", paths[i] + rl + 1);
    if (!args || !specs)
        snprintf(err, sizeof err, "out of memory");
    else if (!f || fclose(f) != 0)
        snprintf(err, sizeof err, "job folder: %s", strerror(errno));
    else
        write_job_sh(dir, task, cmd, args, 2 * njobs, njobs, err, sizeof err);
    free(args);
    free(specs);
    if (err[0]) {
        eng_fail(d, ENG_EIO, "slurm: %s", err);
        fs_remove_tree(dir);
        return -1;
    }
    sl_show sv = {MDL_SL_TRAIN, stage, NULL, NULL};
    fs_code code;
    sl_ran ran = {NULL, 0};
    rc = run_array(m, dir, njobs, what, &sv, abort, actx, &ran, &code, msg, sizeof msg);
    for (int k = 0; rc == 0 && k < njobs; k++) {
        snprintf(p, sizeof p, "%s/result.%d", dir, k);
        jobs[k].result = fs_read_small(p, (size_t)1 << 30, &jobs[k].len);
        if (!jobs[k].result) {
            snprintf(msg, sizeof msg, "slurm: task %d of the %s left no result in %s", k, what,
                     dir);
            rc = -1;
        }
    }
    if (rc == 0) {
        char each[400] = "";
        size_t el = 0;
        for (int k = 0; k < njobs; k++) {
            int computed;
            task_done(dir, k, &computed, &jobs[k].cpu);
            *cpu += jobs[k].cpu;
            if (njobs > 1 && el < sizeof each)
                el += snprintf(each + el, sizeof each - el, "%stask %d %.1f", k ? ", " : " (", k,
                               jobs[k].cpu);
        }
        if (njobs > 1 && el < sizeof each)
            snprintf(each + el, sizeof each - el, ")");
        mdl_log(m, "slurm: %s done, %.1f CPU s on the node%s%s", what, *cpu, njobs > 1 ? "s" : "",
                each);
        rc = charged_cpu(m, &ran, *cpu, abort, actx, cpu);
    }
    free(ran.jobs);
    if (rc != 0) {
        for (int k = 0; k < njobs; k++) {
            free(jobs[k].result);
            jobs[k].result = NULL;
            jobs[k].len = 0;
        }
        *cpu = 0;
    }
    if (rc == -2)
        *st = eng_fail(d, ENG_EABORTED, "cancelled");
    else if (rc == -1)
        *st = eng_fail(d, ENG_EIO, "%s", msg);
    fs_remove_tree(dir);
    return rc == 0 ? 0 : -1;
}

int mdl_slurm_finetune(mdl *m, eng_finetune_job *jobs, int njobs, const char *const *paths, int n,
                       int (*abort)(void *), void *actx, double *cpu, eng_status *st, eng_diag *d)
{
    /* the log names the candidates: the backbone and each tail's tap */
    char what[600], names[512];
    ft_names(jobs, njobs, names, sizeof names);
    snprintf(what, sizeof what, "fine-tuning of %s (%d images)", names, n);
    return spec_array(m, jobs, njobs, paths, n, "finetune", what, "fine-tuning",
                      "fine-tuning candidate $SLURM_ARRAY_TASK_ID", abort, actx, cpu, st, d);
}

int mdl_slurm_detfit(mdl *m, eng_finetune_job *jobs, int njobs, const char *const *paths, int n,
                     int (*abort)(void *), void *actx, double *cpu, eng_status *st, eng_diag *d)
{
    /* "head training of linear heatmap, 4 folds (20 images)", or "head
     * training of hidden-64 heatmap, final fit (20 images)" */
    char what[600], name[200] = "?";
    cJSON *j = njobs > 0 ? cJSON_Parse(jobs[0].spec) : NULL;
    const char *title = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "title"));
    if (title) {
        snprintf(name, sizeof name, "%s", title);
        char *fold = njobs > 1 ? strstr(name, ", fold ") : NULL;
        if (fold)
            snprintf(fold, sizeof name - (size_t)(fold - name), ", %d folds", njobs);
    }
    cJSON_Delete(j);
    snprintf(what, sizeof what, "head training of %s (%d images)", name, n);
    return spec_array(m, jobs, njobs, paths, n, "detfit", what, "head training",
                      "head fit $SLURM_ARRAY_TASK_ID", abort, actx, cpu, st, d);
}
