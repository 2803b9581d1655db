/* slurm.h: the Slurm executor: where the heavy parts of a job may run.
 *
 * Without --executor slurm nothing here is used and every job runs in the
 * daemon. With it, the daemon submits units of work (build/visionfs-worker
 * runs) as Slurm job arrays through the ordinary client commands (sbatch,
 * squeue, scancel), polls their states and cancels them. The commands are
 * run as child processes (posix_spawnp, no shell), so a site's own wrappers
 * and configuration (SLURM_CONF, PATH) apply as for the user; nothing here
 * knows about models.
 *
 * Thread safety: the configuration is set once by main before the mount and
 * only read afterwards; the other calls keep no state.
 */
#ifndef VFS_FS_SLURM_H
#define VFS_FS_SLURM_H

#include <stddef.h>

#define FS_SLURM_ID_MAX 48

typedef struct fs_slurm_config {
    int enabled;
    char partition[128], account[128];
    char args[1024];   /* extra sbatch arguments, split on spaces */
    char worker[4096]; /* absolute path of visionfs-worker */
    int tasks;         /* array size for feature extraction; 0 = by image count */
    int max_tries;     /* tries per array task (first run + retries) */
    double poll_seconds;
} fs_slurm_config;

/* Sets the executor (main, before mounting). */
void fs_slurm_configure(const fs_slurm_config *c);
/* The configuration; enabled == 0 for the local executor. */
const fs_slurm_config *fs_slurm(void);

/* One array task as squeue shows it. */
typedef struct fs_slurm_task {
    int index;                 /* array index */
    char job[FS_SLURM_ID_MAX]; /* array job id of its current try ("12") */
    char state[24];            /* PENDING, RUNNING, COMPLETED, FAILED, ...; "" unknown */
    char node[64];             /* "" until it runs */
    char reason[64];           /* why it waits ("Resources"), "" when none */
    double submitted, started; /* epoch seconds; 0 unknown */
    int tries;
    int done;   /* its done marker was seen */
    int listed; /* squeue listed it at the last poll */
} fs_slurm_task;

/* Submits script as array `spec` ("0-3", or "2" for a retry). out: Slurm's
 * output file pattern. jobid gets the array job id. 0; or -1 with err set
 * (sbatch's own message). */
int fs_slurm_submit(const char *script, const char *spec, const char *name, const char *out,
                    char *jobid, size_t n, char *err, size_t en);

/* Refreshes state, node, reason and times of tasks[0..n) from squeue (one
 * call for all their array jobs). Tasks squeue does not list get listed = 0
 * (finished and purged, or never known). 0; or -1 with err set. */
int fs_slurm_poll(fs_slurm_task *tasks, int n, char *err, size_t en);

/* scancel of each distinct array job of tasks[0..n). */
void fs_slurm_cancel(const fs_slurm_task *tasks, int n);

/* Slurm's own accounting of finished jobs: jobs is a comma-separated list
 * of array job ids ("12,15"), expect the number of array tasks they hold
 * (every try of every task). Asks sacct for every step of every task and
 * sums their TotalCPU (user + system seconds of each step's processes; the
 * batch step holds the batch script, that is, the worker it execs) into
 * *cpu. 0 when sacct lists at least `expect` tasks, all ended, and the batch
 * step of each completed one; 1 when sacct answers but has not recorded all
 * of that yet (the database learns of a job's end a moment after the job
 * ends: ask again); -1 with err set when sacct cannot answer (no
 * accounting database: "Slurm accounting storage is disabled"; no sacct)
 * or accounts no CPU at all for completed tasks (a cluster that records
 * jobs but does not measure them: JobAcctGatherType=jobacct_gather/none). */
int fs_slurm_accounted(const char *jobs, int expect, double *cpu, char *err, size_t en);

/* fs_slurm_accounted until sacct has recorded every end: asks again every
 * `pause` seconds for at most `wait` seconds (a question begun within them
 * runs to its answer). abort(actx) (may be NULL) is polled between the
 * questions, during the pauses and while sacct runs (every 0.1 s; sacct is
 * then killed): -2 with err "cancelled" as soon as it says stop. Otherwise
 * fs_slurm_accounted's answer to the last question (1: not recorded within
 * `wait`). */
int fs_slurm_accounted_wait(const char *jobs, int expect, double wait, double pause,
                            int (*abort)(void *), void *actx, double *cpu, char *err, size_t en);

/* Seconds of sacct's time format "[D-][HH:]MM:SS[.mmm]", or -1. */
double fs_slurm_duration(const char *s);

/* 1 when state is final (the task will not run any more). */
int fs_slurm_state_final(const char *state);

/* Runs argv[0] (searched in PATH) with argv; stdout and stderr together in
 * out (cut to n - 1 bytes, NUL-terminated). The exit status, or -errno when
 * it could not be started. */
int fs_slurm_run(char *const argv[], char *out, size_t n);

#endif
