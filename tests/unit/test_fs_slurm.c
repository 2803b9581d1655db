/* test_fs_slurm.c: how the daemon reads Slurm's accounting of finished job
 * arrays (fs_slurm_accounted, the CPU seconds charged to a model's budget
 * when slurmdbd runs) and sacct's durations (fs_slurm_duration). A fake
 * `sacct` first in PATH prints a canned answer: the answer of a site with an
 * accounting database (every step summed), one whose database has not yet
 * recorded a job's end (ask again), one without a database (fall back),
 * one that records jobs without measuring them (every step at zero: fall
 * back too), and the arguments the daemon passed. Then the daemon's wait
 * for sacct after an array (fs_slurm_accounted_wait): it asks again until
 * the end is recorded or its time is up, and a cancellation (rm
 * train.json) ends it at once, also while a slow sacct (the fake sleeps)
 * is still running. The real sacct is in tests/e2e/test_slurm.sh. */
#include "check.h"
#include "slurm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_dir[64];

static void duration(const char *s, double want)
{
    double got = fs_slurm_duration(s);
    CHECK_MSG(got == want || (want >= 0 && got >= 0 && fabs(got - want) < 1e-6),
              "\"%s\" gave %g, want %g", s, got, want);
}

/* The fake sacct prints `out` and exits with rc. */
static void fake(const char *out, int rc)
{
    char p[128];
    snprintf(p, sizeof p, "%s/answer", g_dir);
    FILE *f = fopen(p, "w");
    fputs(out, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/rc", g_dir);
    f = fopen(p, "w");
    fprintf(f, "%d\n", rc);
    fclose(f);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The fake sacct sleeps this long before it answers. */
static void fake_delay(double s)
{
    char p[128];
    snprintf(p, sizeof p, "%s/delay", g_dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "%g\n", s);
    fclose(f);
}

/* An abort callback: stop once `after` seconds have passed since t0
 * (after < 0: never); counts its calls. */
typedef struct stopper {
    double t0, after;
    int calls;
} stopper;

static int stop_after(void *ctx)
{
    stopper *s = ctx;
    s->calls++;
    return s->after >= 0 && now() - s->t0 >= s->after;
}

/* fs_slurm_accounted_wait with up to `wait` s, a pause of 0.25 s, and an
 * abort that says stop after `after` s; *took: how long it ran. */
static int waited(double wait, double after, double *cpu, double *took, char *err, size_t en)
{
    stopper s = {now(), after, 0};
    err[0] = '\0';
    int rc = fs_slurm_accounted_wait("12", 2, wait, 0.25, stop_after, &s, cpu, err, en);
    *took = now() - s.t0;
    return rc;
}

static int accounted(const char *jobs, int expect, double *cpu, char *err, size_t en)
{
    err[0] = '\0';
    return fs_slurm_accounted(jobs, expect, cpu, err, en);
}

int main(void)
{
    duration("00:01.605", 1.605);
    duration("01:02", 62);
    duration("02:03:04", 7384);
    duration("1-02:03:04", 93784);
    duration("12:00:00.5", 43200.5);
    duration("00:00:00", 0);
    duration("", -1);
    duration("INVALID", -1);
    duration("5", -1);
    duration("1-02:03", -1);
    duration("1:2:3:4", -1);
    duration("01:02x", -1);

    snprintf(g_dir, sizeof g_dir, "/tmp/vfs-sacct.XXXXXX");
    if (!mkdtemp(g_dir))
        CHECK_SKIP("no temp dir");
    char p[128];
    snprintf(p, sizeof p, "%s/sacct", g_dir);
    FILE *f = fopen(p, "w");
    fprintf(f,
            "#!/bin/sh\necho \"$@\" >\"%s/args\"\nsleep $(cat \"%s/delay\")\ncat "
            "\"%s/answer\"\nexit $(cat \"%s/rc\")\n",
            g_dir, g_dir, g_dir, g_dir);
    fclose(f);
    chmod(p, 0755);
    char path[8192];
    snprintf(path, sizeof path, "%s:%s", g_dir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    fake_delay(0);

    double cpu = -1;
    char err[300];
    /* a 2-task array and a retry of task 1 as job 15: every step is
     * summed, the failed first try of task 1 too (Slurm accounted it) */
    fake("12_0|00:01.500|COMPLETED\n"
         "12_0.batch|00:01.500|COMPLETED\n"
         "12_1|00:00.250|FAILED\n"
         "12_1.batch|00:00.250|FAILED\n"
         "15_1|01:02.000|COMPLETED\n"
         "15_1.batch|01:01.000|COMPLETED\n"
         "15_1.extern|00:01.000|COMPLETED\n",
         0);
    CHECK(accounted("12,15", 3, &cpu, err, sizeof err) == 0);
    CHECK_NEAR(cpu, 1.5 + 0.25 + 61 + 1, 1e-9);
    snprintf(p, sizeof p, "%s/args", g_dir);
    size_t len = 0;
    char args[512] = "";
    f = fopen(p, "r");
    if (f) {
        len = fread(args, 1, sizeof args - 1, f);
        fclose(f);
    }
    args[len] = '\0';
    CHECK_MSG(strstr(args, "--jobs=12,15") && strstr(args, "--format=JobID,TotalCPU,State") &&
                  !strstr(args, "--allocations") && !strstr(args, "-X"),
              "sacct was run with: %s", args);

    /* the database has not recorded every end yet: ask again */
    fake("12_0|00:01.500|COMPLETED\n"
         "12_0.batch|00:01.500|COMPLETED\n"
         "12_1|00:00:00|RUNNING\n",
         0);
    CHECK(accounted("12", 2, &cpu, err, sizeof err) == 1);
    fake("12_0|00:01.500|COMPLETED\n"
         "12_0.batch|00:01.500|COMPLETED\n",
         0);
    CHECK(accounted("12", 2, &cpu, err, sizeof err) == 1); /* task 1 not listed */
    fake("12_0|00:01.500|COMPLETED\n"
         "12_1|00:00:00|COMPLETED\n"
         "12_0.batch|00:01.500|COMPLETED\n",
         0);
    CHECK(accounted("12", 2, &cpu, err, sizeof err) == 1); /* task 1's batch step not in */
    fake("12_[0-3]|00:00:00|PENDING\n", 0);
    CHECK(accounted("12", 4, &cpu, err, sizeof err) == 1);
    fake("", 0);
    CHECK(accounted("12", 1, &cpu, err, sizeof err) == 1);
    /* a task cancelled before it ran has no step */
    fake("12_0|00:02.000|COMPLETED\n"
         "12_0.batch|00:02.000|COMPLETED\n"
         "12_1|00:00:00|CANCELLED by 0\n",
         0);
    CHECK(accounted("12", 2, &cpu, err, sizeof err) == 0);
    CHECK_NEAR(cpu, 2, 1e-9);

    /* a database but no measurement (JobAcctGatherType=jobacct_gather/none):
     * every step at zero, as sacct shows it there */
    fake("1_0|00:00:00|COMPLETED\n"
         "1_0.batch|00:00:00|COMPLETED\n"
         "1_1|00:00:00|COMPLETED\n"
         "1_1.batch|00:00:00|COMPLETED\n",
         0);
    CHECK(accounted("1", 2, &cpu, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "0 CPU s for 2 completed task(s)") != NULL, "err: %s", err);

    /* no accounting database: sacct's own words, without its prefix */
    fake("sacct: error: Slurm accounting storage is disabled\n", 1);
    CHECK(accounted("12", 1, &cpu, err, sizeof err) == -1);
    CHECK_MSG(strcmp(err, "Slurm accounting storage is disabled") == 0, "err: %s", err);
    /* the wait after an array: recorded at the first question */
    double took = 0;
    fake("12_0|00:01.000|COMPLETED\n"
         "12_0.batch|00:01.000|COMPLETED\n"
         "12_1|00:02.000|COMPLETED\n"
         "12_1.batch|00:02.000|COMPLETED\n",
         0);
    CHECK(waited(5, -1, &cpu, &took, err, sizeof err) == 0);
    CHECK_NEAR(cpu, 3, 1e-9);
    CHECK_MSG(took < 2, "took %.2f s", took);
    /* not recorded: asks again until its time is up, then says so */
    fake("12_0|00:01.000|COMPLETED\n"
         "12_0.batch|00:01.000|COMPLETED\n"
         "12_1|00:00:00|RUNNING\n",
         0);
    CHECK(waited(0.6, -1, &cpu, &took, err, sizeof err) == 1);
    CHECK_MSG(took >= 0.6 && took < 3, "took %.2f s", took);
    /* cancelled while it waits for the database: it stops at once instead
     * of asking for its whole 5 s */
    CHECK(waited(5, 0.5, &cpu, &took, err, sizeof err) == -2);
    CHECK_MSG(took < 1.5, "the wait took %.2f s after a cancellation at 0.5 s", took);
    CHECK_MSG(strcmp(err, "cancelled") == 0, "err: %s", err);
    /* cancelled while a slow sacct runs (the fake sleeps 30 s): sacct is
     * stopped, the wait ends at once */
    fake_delay(30);
    CHECK(waited(5, 0.5, &cpu, &took, err, sizeof err) == -2);
    CHECK_MSG(took < 1.5, "the wait took %.2f s after a cancellation at 0.5 s", took);
    fake_delay(0);
    /* cancelled before: no question asked */
    snprintf(p, sizeof p, "%s/args", g_dir);
    unlink(p);
    CHECK(waited(5, 0, &cpu, &took, err, sizeof err) == -2);
    CHECK(access(p, F_OK) != 0);

    /* no sacct at all */
    setenv("PATH", "/nonexistent", 1);
    CHECK(accounted("12", 1, &cpu, err, sizeof err) == -1);
    CHECK_MSG(strcmp(err, "No such file or directory") == 0, "err: %s", err);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    setenv("PATH", "/usr/bin:/bin", 1);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return check_report("test_fs_slurm");
}
