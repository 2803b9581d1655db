/* worker.c: build/visionfs-worker, one unit of work against a store, run by
 * a cluster scheduler (Slurm) on any node that sees the store.
 *
 * Design: the worker links the engine and coco, never FUSE, and writes only
 * through the engine's feature cache (temp file + rename, so a killed worker
 * leaves nothing half-written) and into its job folder (markers the daemon
 * reads). The daemon stays the one owner of the tree: it names the images
 * (a list of store-relative paths in the job folder) and merges the shards
 * by reading the cache the workers filled.
 *
 *   visionfs-worker extract --store S (--dataset D | --images LIST)
 *                   [--backbone B]... --shard i/n [--job-dir DIR] [--threads T]
 *   visionfs-worker predict --store S --model M (--images LIST | FILES...) --shard i/n
 *                   [--threads T]      (a classifier, multilabel model or detector)
 *   visionfs-worker evaluate --store S --model-file F --images LIST --shard i/n
 *                   --job-dir DIR [--cache] [--threads T]
 *   visionfs-worker finetune --store S --spec JOB [--spec JOB]... --images LIST
 *                   --job-dir DIR [--shard i/n] [--threads T]
 *   visionfs-worker detfit   (the same arguments as finetune)
 *
 * evaluate writes a classifier's probabilities of its shard (eng_cls_probs,
 * the call the daemon's evaluation makes), or a multilabel model's scores
 * (eng_ml_probs), into DIR/probs.I as raw floats, or a
 * detector's objects (eng_det_predict of each image, eng_det_evaluate's
 * path) into DIR/dets.I as text (per image "WIDTH HEIGHT COUNT", then COUNT
 * lines "CATEGORY X Y W H SCORE", floats as %.9g: the very floats);
 * the daemon merges the shards and computes the metrics itself. finetune
 * runs one fine-tuning candidate of a classifier's search (JOB: the
 * engine's JSON, eng_cls_finetune_run) and writes its result into
 * DIR/result.I for the daemon's search: shard I of a job array of n tasks
 * runs the I-th of n JOBs, so one array runs every candidate at once.
 * detfit does the same for one head fit of a detector's training (the
 * search's fold of a variant, or the final fit: eng_det_fit_run).
 *
 * Exit codes: 0 done, 1 work failed, 2 usage, 3 the store is not visible here.
 */
#include "answer.h"
#include "coco.h"
#include "imglimits.h"
#include "engine.h"
#include "ranked.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define W_PATH 4096
#define MAX_BB 32
#define MAX_SPECS 100 /* the daemon's array tasks at most */

typedef struct wargs {
    const char *store, *dataset, *images, *job_dir, *model, *model_file;
    const char *spec[MAX_SPECS]; /* finetune: one per shard */
    int nspec;
    char **files; /* predict: FILES... */
    int nfiles, version;
    const char *bb[MAX_BB];
    int nbb;
    int shard, nshards, threads;
    int detector;  /* extract --kind detector */
    int size, aug; /* extract: a search's pass (--size, --aug; 0: the plain pass) */
    unsigned long long seed;
    int cached; /* evaluate --cache: through the feature cache */
} wargs;

static void usage(void)
{
    fprintf(stderr,
            "usage: visionfs-worker extract --store DIR (--dataset NAME | --images LIST)\n"
            "                       [--backbone NAME|DIR|all]... --shard I/N [--job-dir DIR]\n"
            "                       [--threads T] [--kind classifier|detector]\n"
            "                       [--size S --aug A --seed N]\n"
            "Puts the features of shard I of N of the images into the store's feature cache\n"
            "(STORE/models/.vfs-cache), the same files the daemon writes when it trains\n"
            "(--size/--aug/--seed: a classifier search's second input scale or augmented\n"
            "copies, A 1 flipped, 2 cropped).\n"
            "LIST: one image path per line, relative to the store. Exit codes: 0 done,\n"
            "1 failed, 2 usage, 3 the store is not visible from this node.\n"
            "\n"
            "       visionfs-worker predict --store DIR --model NAME [--version V]\n"
            "                       (--images LIST | FILES...) --shard I/N [--job-dir DIR]\n"
            "                       [--threads T]\n"
            "Answers shard I of N of the images with classifier or detector models/NAME:\n"
            "IMAGE.json next to each image as predict/ does (a detector's IMAGE.boxes.jpg\n"
            "too), or with --job-dir DIR/answers/K.json and K.boxes.jpg (K: the image's\n"
            "line in LIST). An image Azure's checks refuse gets no answer (the daemon\n"
            "writes its error).\n"
            "\n"
            "       visionfs-worker evaluate --store DIR --model-file FILE --images LIST\n"
            "                       --shard I/N --job-dir DIR [--cache] [--threads T]\n"
            "Computes a classifier's probabilities (a multilabel model's scores) of shard I\n"
            "of N of the images, as the\n"
            "daemon's evaluation does (--cache: through the feature cache, as training's\n"
            "test pass does), into DIR/probs.I (float32, one row of categories per image);\n"
            "a detector's objects of each image into DIR/dets.I (text).\n"
            "An image that cannot be read is named in DIR/failed.I (its status and message).\n"
            "\n"
            "       visionfs-worker finetune --store DIR --spec JOB [--spec JOB]... --images LIST\n"
            "                       --job-dir DIR [--shard I/N] [--threads T]\n"
            "Runs the fine-tuning candidate JOB (written by the daemon's search) on the\n"
            "training images of LIST into DIR/result.I (I: the shard, 0 by default); with\n"
            "N JOBs (one job array for every candidate), shard I runs the I-th.\n"
            "\n"
            "       visionfs-worker detfit (the arguments of finetune)\n"
            "Runs the detector head fit JOB (a fold of the search, or the final fit: the\n"
            "heads, the held-out detections) into DIR/result.I, as finetune does.\n"
            "\n"
            "--threads T: threads of a unit (default $SLURM_CPUS_PER_TASK, else every CPU).\n");
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    const char *node = getenv("SLURMD_NODENAME");
    fprintf(stderr, "visionfs-worker[%s]: ", node ? node : host);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int parse(int argc, char **argv, wargs *a)
{
    memset(a, 0, sizeof *a);
    a->nshards = 1;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--cache") == 0) {
            a->cached = 1;
            continue;
        }
        if (k[0] != '-' || k[1] != '-') { /* FILES... */
            a->files = argv + i;
            a->nfiles = argc - i;
            break;
        }
        if (!v) {
            fprintf(stderr, "visionfs-worker: %s needs a value\n", k);
            return -1;
        }
        i++;
        if (strcmp(k, "--store") == 0)
            a->store = v;
        else if (strcmp(k, "--dataset") == 0)
            a->dataset = v;
        else if (strcmp(k, "--images") == 0)
            a->images = v;
        else if (strcmp(k, "--job-dir") == 0)
            a->job_dir = v;
        else if (strcmp(k, "--model") == 0)
            a->model = v;
        else if (strcmp(k, "--model-file") == 0)
            a->model_file = v;
        else if (strcmp(k, "--spec") == 0) {
            if (a->nspec == MAX_SPECS) {
                fprintf(stderr, "visionfs-worker: more than %d --spec\n", MAX_SPECS);
                return -1;
            }
            a->spec[a->nspec++] = v;
        } else if (strcmp(k, "--kind") == 0 &&
                   (strcmp(v, "classifier") == 0 || strcmp(v, "detector") == 0))
            a->detector = strcmp(v, "detector") == 0;
        else if (strcmp(k, "--version") == 0)
            a->version = atoi(v);
        else if (strcmp(k, "--threads") == 0)
            a->threads = atoi(v);
        else if (strcmp(k, "--size") == 0)
            a->size = atoi(v);
        else if (strcmp(k, "--aug") == 0)
            a->aug = atoi(v);
        else if (strcmp(k, "--seed") == 0)
            a->seed = strtoull(v, NULL, 10);
        else if (strcmp(k, "--backbone") == 0 && a->nbb < MAX_BB)
            a->bb[a->nbb++] = v;
        else if (strcmp(k, "--shard") == 0) {
            if (sscanf(v, "%d/%d", &a->shard, &a->nshards) != 2 || a->nshards < 1 || a->shard < 0 ||
                a->shard >= a->nshards) {
                fprintf(stderr, "visionfs-worker: --shard \"%s\": expected I/N with 0 <= I < N\n",
                        v);
                return -1;
            }
        } else {
            fprintf(stderr, "visionfs-worker: unknown option \"%s\"\n", k);
            return -1;
        }
    }
    if (strcmp(argv[1], "evaluate") == 0) {
        if (!a->store || !a->model_file || !a->images || !a->job_dir) {
            fprintf(stderr, "visionfs-worker: evaluate needs --store, --model-file, --images and "
                            "--job-dir\n");
            return -1;
        }
    } else if (strcmp(argv[1], "finetune") == 0 || strcmp(argv[1], "detfit") == 0) {
        if (!a->store || !a->nspec || !a->images || !a->job_dir) {
            fprintf(stderr,
                    "visionfs-worker: %s needs --store, --spec, --images and "
                    "--job-dir\n",
                    argv[1]);
            return -1;
        }
        if (a->nspec != a->nshards) {
            fprintf(stderr,
                    "visionfs-worker: %s: %d --spec for %d shard(s): one per shard, "
                    "in order\n",
                    argv[1], a->nspec, a->nshards);
            return -1;
        }
    } else if (strcmp(argv[1], "predict") == 0) {
        if (!a->store || !a->model || (!a->images == !a->nfiles)) {
            fprintf(stderr, "visionfs-worker: predict needs --store, --model and either "
                            "--images LIST or FILES...\n");
            return -1;
        }
    } else if (!a->store || (!a->dataset == !a->images)) {
        fprintf(stderr, "visionfs-worker: extract needs --store and one of --dataset, --images\n");
        return -1;
    }
    return 0;
}

/* ---- the image list ---- */

typedef struct strs {
    char **v;
    int n, cap;
} strs;

static int strs_add(strs *s, const char *p)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    return (s->v[s->n] = strdup(p)) ? (s->n++, 0) : -1;
}

static void strs_free(strs *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int read_list(const char *store, const char *list, strs *out)
{
    FILE *f = fopen(list, "r");
    if (!f) {
        say("image list \"%s\": %s", list, strerror(errno));
        return -1;
    }
    char line[W_PATH], path[2 * W_PATH + 2];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        snprintf(path, sizeof path, "%s/%s", store, line);
        rc = strs_add(out, path);
    }
    fclose(f);
    return rc;
}

/* The dataset's annotation file: the newest top-level *.json that is not
 * ours (status.json) nor dataset.json, as the daemon's verifier picks it. */
static int dataset_images(const char *store, const char *name, strs *out)
{
    char dir[W_PATH], best[3 * W_PATH] = "", p[2 * W_PATH + 2];
    snprintf(dir, sizeof dir, "%s/datasets/%s", store, name);
    DIR *d = opendir(dir);
    if (!d) {
        say("dataset \"%s\": %s", name, strerror(errno));
        return -1;
    }
    struct dirent *e;
    struct timespec newest = {0, 0};
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        struct stat st;
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 ||
            strcmp(e->d_name, "status.json") == 0 || strcmp(e->d_name, "dataset.json") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
            (st.st_mtim.tv_sec > newest.tv_sec ||
             (st.st_mtim.tv_sec == newest.tv_sec && st.st_mtim.tv_nsec > newest.tv_nsec))) {
            newest = st.st_mtim;
            snprintf(best, sizeof best, "%s", p);
        }
    }
    closedir(d);
    if (!best[0]) {
        say("dataset \"%s\": no annotation file", name);
        return -1;
    }
    FILE *f = fopen(best, "rb");
    char *buf = NULL;
    long len = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, f) != (size_t)len)
        len = -1;
    if (f)
        fclose(f);
    coco_dataset *ds = NULL;
    coco_diag cd;
    memset(&cd, 0, sizeof cd);
    if (len < 0 || !buf || coco_dataset_parse(buf, (size_t)len, NULL, &ds, &cd) != COCO_OK) {
        say("dataset \"%s\": cannot read its annotation file", name);
        free(buf);
        return -1;
    }
    int rc = 0;
    size_t n = coco_dataset_image_count(ds);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const coco_image *im = coco_dataset_image(ds, i);
        coco_candidates c;
        if (coco_image_candidates(im->file_name, im->file_name_len, &c, &cd) != COCO_OK)
            continue;
        for (int k = 0; k < c.n; k++) {
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, c.path[k]);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = strs_add(out, p);
                break;
            }
        }
    }
    coco_dataset_free(ds);
    free(buf);
    return rc;
}

/* ---- backbones ---- */

static const char *installed_dir(char *buf, size_t n)
{
    const char *env = getenv("VISIONFS_BACKBONES");
    if (env && env[0])
        return env;
    const char *x = getenv("XDG_DATA_HOME"), *h = getenv("HOME");
    if (x && x[0])
        snprintf(buf, n, "%s/visionfs/backbones", x);
    else
        snprintf(buf, n, "%s/.local/share/visionfs/backbones", h ? h : "");
    return buf;
}

static void add_root(const char *root, strs *out)
{
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    char p[2 * W_PATH + 16];
    while ((e = readdir(d))) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s/backbone.json", root, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &st) == 0) {
            p[strlen(p) - strlen("/backbone.json")] = '\0';
            int dup = 0;
            for (int i = 0; i < out->n; i++)
                dup |= strcmp(strrchr(out->v[i], '/') + 1, e->d_name) == 0;
            if (!dup)
                strs_add(out, p);
        }
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The backbone folders: DIRs as given, NAMEs looked up in STORE/backbones
 * then the installed ones (as the daemon does), "all" (or none) = every one. */
static int backbone_dirs(const wargs *a, strs *out)
{
    char sroot[W_PATH], ibuf[W_PATH];
    snprintf(sroot, sizeof sroot, "%s/backbones", a->store);
    const char *iroot = installed_dir(ibuf, sizeof ibuf);
    if (a->nbb == 0 || (a->nbb == 1 && strcmp(a->bb[0], "all") == 0)) {
        add_root(sroot, out);
        add_root(iroot, out);
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
        return out->n ? 0 : (say("no backbone found in \"%s\" nor \"%s\"", sroot, iroot), -1);
    }
    for (int i = 0; i < a->nbb; i++) {
        char p[2 * W_PATH + 2];
        struct stat st;
        if (strchr(a->bb[i], '/')) {
            snprintf(p, sizeof p, "%s", a->bb[i]);
        } else {
            snprintf(p, sizeof p, "%s/%s", sroot, a->bb[i]);
            if (stat(p, &st) != 0)
                snprintf(p, sizeof p, "%s/%s", iroot, a->bb[i]);
        }
        if (strs_add(out, p) != 0)
            return -1;
    }
    return 0;
}

/* ---- markers in the job folder ---- */

static int put_file(const char *dir, const char *name, const char *text)
{
    char path[W_PATH + 256], tmp[W_PATH + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static int cmd_extract(const wargs *a)
{
    char models[W_PATH + 16], cache[W_PATH + 32], host[256] = "?";
    struct stat st;
    gethostname(host, sizeof host - 1);
    snprintf(models, sizeof models, "%s/models", a->store);
    if (stat(models, &st) != 0 || !S_ISDIR(st.st_mode)) {
        say("the store \"%s\" is not visible here (%s): it must be on a file system shared "
            "with every node, at the same path",
            a->store, strerror(errno ? errno : ENOTDIR));
        return 3;
    }
    char marker[64], text[512];
    if (a->job_dir) {
        /* the first act: the daemon checks this marker to know the store is
         * shared with the node the task ran on */
        snprintf(marker, sizeof marker, "started.%d", a->shard);
        const char *node = getenv("SLURMD_NODENAME");
        snprintf(text, sizeof text, "%s\n", node ? node : host);
        if (put_file(a->job_dir, marker, text) != 0) {
            say("job folder \"%s\": %s: the store must be shared with this node", a->job_dir,
                strerror(errno));
            return 3;
        }
    }
    snprintf(cache, sizeof cache, "%s/.vfs-cache", models);
    strs imgs = {0}, bbs = {0};
    int rc = 1;
    if ((a->images ? read_list(a->store, a->images, &imgs)
                   : dataset_images(a->store, a->dataset, &imgs)) != 0 ||
        backbone_dirs(a, &bbs) != 0)
        goto out;
    int lo = (int)((long long)imgs.n * a->shard / a->nshards);
    int hi = (int)((long long)imgs.n * (a->shard + 1) / a->nshards);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *cpt = getenv("SLURM_CPUS_PER_TASK");
    int threads = a->threads > 0 ? a->threads : cpt && atoi(cpt) > 0 ? atoi(cpt) : (int)ncpu;
    eng_run_opts o = {.threads = threads > 0 ? threads : 1};
    int computed = 0, failed = 0;
    double c0 = cpu_seconds();
    if (a->detector) {
        /* the detector trains on one backbone's detection features */
        eng_backbone *open[MAX_BB];
        int no = 0;
        eng_diag d = {{0}};
        for (int b = 0; b < bbs.n && no < MAX_BB; b++)
            if (eng_backbone_open(bbs.v[b], &open[no], &d) == ENG_OK)
                no++;
        eng_status st = eng_det_cache_features(open, no, (const char *const *)imgs.v + lo, hi - lo,
                                               cache, o.threads, &computed, &failed, &d);
        for (int b = 0; b < no; b++)
            eng_backbone_free(open[b]);
        if (st != ENG_OK) {
            say("detection features: %s", d.msg);
            goto out;
        }
    }
    for (int b = 0; !a->detector && b < bbs.n; b++) {
        eng_backbone *bb = NULL;
        eng_diag d = {{0}};
        if (eng_backbone_open(bbs.v[b], &bb, &d) != ENG_OK) {
            say("backbone \"%s\": %s", bbs.v[b], d.msg);
            goto out;
        }
        int c = 0, f = 0;
        eng_status st =
            eng_cls_cache_pass(bb, a->size, a->aug, (uint64_t)a->seed,
                               (const char *const *)imgs.v + lo, hi - lo, cache, &o, &c, &f, &d);
        eng_backbone_free(bb);
        if (st != ENG_OK) {
            say("features of \"%s\": %s", bbs.v[b], d.msg);
            goto out;
        }
        computed += c;
        failed += f;
    }
    say("shard %d/%d: %d images x %d backbones, %d computed, %d unreadable, %.1f CPU s", a->shard,
        a->nshards, hi - lo, bbs.n, computed, failed, cpu_seconds() - c0);
    rc = 0;
    if (a->job_dir) {
        snprintf(marker, sizeof marker, "done.%d", a->shard);
        snprintf(text, sizeof text,
                 "{\"images\": %d, \"computed\": %d, \"unreadable\": %d, \"cpuSeconds\": %.3f}\n",
                 hi - lo, computed, failed, cpu_seconds() - c0);
        if (put_file(a->job_dir, marker, text) != 0) {
            say("job folder \"%s\": %s", a->job_dir, strerror(errno));
            rc = 1;
        }
    }
out:
    strs_free(&imgs);
    strs_free(&bbs);
    return rc;
}

/* The store check and the started marker every unit begins with: 0, or 3
 * (the exit code) when the store or the job folder is not visible here. */
static int begin(const wargs *a)
{
    char path[W_PATH + 64], host[256] = "?";
    struct stat st;
    gethostname(host, sizeof host - 1);
    snprintf(path, sizeof path, "%s/models", a->store);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        say("the store \"%s\" is not visible here: it must be on a file system shared with "
            "every node, at the same path",
            a->store);
        return 3;
    }
    if (a->job_dir) {
        /* the first act: the daemon checks this marker to know the store is
         * shared with the node the task ran on */
        char marker[64], text[512];
        snprintf(marker, sizeof marker, "started.%d", a->shard);
        const char *node = getenv("SLURMD_NODENAME");
        snprintf(text, sizeof text, "%s\n", node ? node : host);
        if (put_file(a->job_dir, marker, text) != 0) {
            say("job folder \"%s\": %s", a->job_dir, strerror(errno));
            return 3;
        }
    }
    return 0;
}

/* Backbone i a classifier (m), a multilabel model (ml) or a detector (det)
 * needs. */
static const char *needed(const eng_classifier *m, const eng_multilabel *ml,
                          const eng_detector *det, int i, const char **sum)
{
    return m    ? eng_cls_backbone_needed(m, i, sum)
           : ml ? eng_ml_backbone_needed(ml, i, sum)
                : eng_det_backbone_needed(det, i, sum);
}

/* Opens the installed backbones the model (m, ml or det) needs (by name and
 * checksum, as the daemon does) into bbs[0..*nbb); bbdirs gets every
 * backbone folder. */
static int model_backbones(const wargs *a, const eng_classifier *m, const eng_multilabel *ml,
                           const eng_detector *det, strs *bbdirs, eng_backbone **bbs, int *nbb)
{
    wargs all = *a;
    all.nbb = 0;
    eng_diag d = {{0}};
    *nbb = 0;
    if (backbone_dirs(&all, bbdirs) != 0)
        return -1;
    for (int i = 0; needed(m, ml, det, i, NULL) && *nbb < MAX_BB; i++) {
        const char *sum = NULL, *name = needed(m, ml, det, i, &sum);
        for (int k = 0; k < bbdirs->n; k++) {
            if (strcmp(strrchr(bbdirs->v[k], '/') + 1, name) != 0)
                continue;
            if (eng_backbone_open(bbdirs->v[k], &bbs[*nbb], &d) == ENG_OK) {
                if (!sum || strcmp(eng_backbone_get_info(bbs[*nbb])->checksum, sum) == 0)
                    (*nbb)++;
                else
                    eng_backbone_free(bbs[*nbb]);
            }
            break;
        }
    }
    return 0;
}

static int task_threads(const wargs *a)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *cpt = getenv("SLURM_CPUS_PER_TASK");
    int t = a->threads > 0 ? a->threads : cpt && atoi(cpt) > 0 ? atoi(cpt) : (int)ncpu;
    return t > 0 ? t : 1;
}

/* ---- evaluate ---- */

/* Writes n bytes to DIR/name through a temp name and a rename. */
static int put_bytes(const char *dir, const char *name, const void *p, size_t n)
{
    char path[W_PATH + 256], tmp[W_PATH + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    int ok = fwrite(p, 1, n, f) == n;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* What evaluate and predict share: the store check, the image list, the
 * model and the backbones it needs, the shard's range. */
typedef struct unit {
    strs imgs, bbdirs;
    eng_classifier *m;  /* a classifier, */
    eng_multilabel *ml; /* or a multilabel model, */
    eng_detector *det;  /* or a detector */
    eng_backbone *bbs[MAX_BB];
    int nbb, lo, hi, threads, ncat;
} unit;

static void unit_close(unit *u)
{
    for (int i = 0; i < u->nbb; i++)
        eng_backbone_free(u->bbs[i]);
    eng_classifier_free(u->m);
    eng_ml_free(u->ml);
    eng_detector_free(u->det);
    strs_free(&u->imgs);
    strs_free(&u->bbdirs);
    memset(u, 0, sizeof *u);
}

/* Opens u for the model in model_file (a classifier, a multilabel model or
 * a detector): 0; 3 when the store or the job folder is not visible here; 1
 * failed (said; u closed). */
static int unit_open(const wargs *a, const char *model_file, unit *u)
{
    memset(u, 0, sizeof *u);
    if (begin(a) != 0)
        return 3;
    eng_diag d = {{0}};
    if (a->images ? read_list(a->store, a->images, &u->imgs) != 0 : 0)
        goto fail;
    for (int i = 0; !a->images && i < a->nfiles; i++)
        if (strs_add(&u->imgs, a->files[i]) != 0)
            goto fail;
    eng_modelfile *f = NULL;
    if (eng_modelfile_read(model_file, &f, &d) != ENG_OK) {
        say("model file \"%s\": %s", model_file, d.msg);
        goto fail;
    }
    const char *kind = eng_modelfile_meta(f, "kind");
    eng_status st = kind && strcmp(kind, "multilabel") == 0 ? eng_ml_from_file(f, &u->ml, &d)
                    : kind && strcmp(kind, "detector") == 0
                        ? eng_detector_from_file(f, &u->det, &d)
                        : eng_classifier_from_file(f, &u->m, &d);
    eng_modelfile_free(f);
    if (st != ENG_OK) {
        say("model file \"%s\": %s (the worker knows classifiers, multilabel models and "
            "detectors)",
            model_file, d.msg);
        goto fail;
    }
    u->ncat = u->m ? eng_cls_ncat(u->m) : u->ml ? eng_ml_ncat(u->ml) : eng_det_ncat(u->det);
    if (model_backbones(a, u->m, u->ml, u->det, &u->bbdirs, u->bbs, &u->nbb) != 0)
        goto fail;
    u->lo = (int)((long long)u->imgs.n * a->shard / a->nshards);
    u->hi = (int)((long long)u->imgs.n * (a->shard + 1) / a->nshards);
    u->threads = task_threads(a);
    return 0;
fail:
    unit_close(u);
    return 1;
}

/* Appends image path's objects (eng_det_predict: eng_det_evaluate's path
 * for one image) to *buf in dets.I's form. */
static eng_status det_lines(const unit *u, const char *path, char **buf, size_t *len, size_t *cap,
                            eng_diag *d)
{
    eng_det_object *o = NULL;
    int n = 0, w = 0, h = 0;
    eng_status st = eng_det_predict(u->det, u->bbs, u->nbb, path, u->threads, &o, &n, &w, &h, d);
    if (st != ENG_OK)
        return st;
    size_t need = *len + 64 + (size_t)n * 96;
    if (need > *cap) {
        size_t nc = need * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) {
            free(o);
            return eng_fail(d, ENG_ENOMEM, "out of memory");
        }
        *buf = nb;
        *cap = nc;
    }
    *len += (size_t)snprintf(*buf + *len, *cap - *len, "%d %d %d\n", w, h, n);
    for (int j = 0; j < n; j++)
        *len += (size_t)snprintf(*buf + *len, *cap - *len, "%d %.9g %.9g %.9g %.9g %.9g\n",
                                 o[j].category, o[j].x, o[j].y, o[j].w, o[j].h, o[j].score);
    free(o);
    return ENG_OK;
}

static int cmd_evaluate(const wargs *a)
{
    unit u;
    int rc = unit_open(a, a->model_file, &u);
    if (rc != 0)
        return rc;
    char *dets = NULL;
    size_t dlen = 0, dcap = 0;
    rc = 1;
    float *probs = NULL;
    double c0 = cpu_seconds();
    eng_diag d = {{0}};
    char name[64], text[1200], cache[W_PATH + 32];
    int lo = u.lo, hi = u.hi, ncat = u.ncat;
    probs = calloc((size_t)(hi - lo ? hi - lo : 1) * ncat, sizeof *probs);
    if (!probs)
        goto out;
    snprintf(cache, sizeof cache, "%s/models/.vfs-cache", a->store);
    eng_run_opts o = {.threads = u.threads};
    eng_status st = ENG_OK;
    if (u.m)
        st = eng_cls_probs(u.m, u.bbs, u.nbb, (const char *const *)u.imgs.v + lo, hi - lo,
                           a->cached ? cache : NULL, &o, probs, &d);
    /* a multilabel model: the same call (one image at a time as
     * eng_ml_evaluate, or through the cache as training's test pass) */
    if (u.ml)
        st = eng_ml_probs(u.ml, u.bbs, u.nbb, (const char *const *)u.imgs.v + lo, hi - lo,
                          a->cached ? cache : NULL, &o, probs, &d);
    /* a detector: one image at a time, eng_det_evaluate's path */
    for (int i = lo; u.det && i < hi && st == ENG_OK; i++)
        st = det_lines(&u, u.imgs.v[i], &dets, &dlen, &dcap, &d);
    if (st != ENG_OK && st != ENG_ENOMEM) {
        /* an image the daemon's own evaluation would fail on: said once,
         * not retried */
        snprintf(name, sizeof name, "failed.%d", a->shard);
        snprintf(text, sizeof text, "%d\n%s\n", (int)st, d.msg);
        if (put_file(a->job_dir, name, text) != 0)
            goto out;
        say("shard %d/%d: %s", a->shard, a->nshards, d.msg);
    } else if (st != ENG_OK) {
        say("shard %d/%d: %s", a->shard, a->nshards, d.msg);
        goto out;
    } else if (u.det) {
        snprintf(name, sizeof name, "dets.%d", a->shard);
        if (put_bytes(a->job_dir, name, dets ? dets : "", dlen) != 0) {
            say("job folder \"%s\": %s", a->job_dir, strerror(errno));
            goto out;
        }
        say("shard %d/%d: objects of %d images, %.1f CPU s", a->shard, a->nshards, hi - lo,
            cpu_seconds() - c0);
    } else {
        snprintf(name, sizeof name, "probs.%d", a->shard);
        if (put_bytes(a->job_dir, name, probs, (size_t)(hi - lo) * ncat * sizeof *probs) != 0) {
            say("job folder \"%s\": %s", a->job_dir, strerror(errno));
            goto out;
        }
        say("shard %d/%d: %d images x %d categories, %.1f CPU s", a->shard, a->nshards, hi - lo,
            ncat, cpu_seconds() - c0);
    }
    snprintf(name, sizeof name, "done.%d", a->shard);
    snprintf(text, sizeof text, "{\"images\": %d, \"cpuSeconds\": %.3f}\n", hi - lo,
             cpu_seconds() - c0);
    rc = put_file(a->job_dir, name, text) == 0 ? 0 : 1;
out:
    free(probs);
    free(dets);
    unit_close(&u);
    return rc;
}

/* ---- predict ---- */

/* The answer predict/ writes (answer.h, as the daemon writes it). */
static char *answer_of(const wargs *a, int w, int h, const answer_tag *tags, int ntags,
                       const answer_object *objs, int nobjs, int detector)
{
    answer x = {a->model, a->version > 0 ? a->version : 0, w, h, detector, tags, ntags, objs,
                nobjs};
    return answer_json(&x);
}

/* A classifier's answer: every category, best first; a multilabel model's
 * (threshold 1): the tags at or above their thresholds, best first, as
 * fs/models_recipes.c fs_recipe_predict_scores lists them. */
static char *tags_answer(const wargs *a, const unit *u, const float *scores, int thresholded, int w,
                         int h)
{
    int ncat = u->ncat, k = 0;
    ranked *rk = malloc((size_t)ncat * sizeof *rk);
    answer_tag *t = malloc((size_t)ncat * sizeof *t);
    char *json = NULL;
    if (rk && t) {
        for (int i = 0; i < ncat; i++)
            if (!thresholded || scores[i] >= eng_ml_threshold(u->ml, i))
                rk[k++] = (ranked){scores[i], i};
        ranked_sort(rk, (size_t)k);
        for (int i = 0; i < k; i++)
            t[i] = (answer_tag){u->m ? eng_cls_category(u->m, rk[i].index)
                                     : eng_ml_category(u->ml, rk[i].index),
                                (float)rk[i].score};
        json = answer_of(a, w, h, t, k, NULL, 0, 0);
    }
    free(rk);
    free(t);
    return json;
}

/* A detector's answer. */
static char *objects_answer(const wargs *a, const eng_detector *m, const eng_det_object *o, int n,
                            int w, int h)
{
    answer_object *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    if (!x)
        return NULL;
    for (int i = 0; i < n; i++)
        x[i] = (answer_object){
            o[i].x, o[i].y, o[i].w, o[i].h, eng_det_category(m, o[i].category), o[i].score};
    char *json = answer_of(a, w, h, NULL, 0, x, n, 1);
    free(x);
    return json;
}

/* The image checks of the limits table (imglimits.h), as the daemon's
 * predict/ makes them; 0 when usable. An image refused here is left to the
 * daemon, which writes the error answer. */
static int usable(const char *path, int *w, int *h)
{
    struct stat st;
    eng_image_info info;
    eng_diag d;
    if (stat(path, &st) != 0 || st.st_size > IMG_MAX_BYTES ||
        eng_image_probe_file(path, &info, &d) != ENG_OK)
        return -1;
    *w = eng_image_info_display_w(&info);
    *h = eng_image_info_display_h(&info);
    return img_sides_ok(*w, *h) ? 0 : -1;
}

/* path's whole content (as the daemon writes an answer: no newline added),
 * through a temp name and a rename. */
static int write_whole(const char *path, const void *data, size_t len)
{
    char tmp[2 * W_PATH];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int cmd_predict(const wargs *a)
{
    char path[W_PATH + 64], marker[64], text[512];
    snprintf(path, sizeof path, "%s/models/%s/model.safetensors", a->store, a->model);
    unit u;
    int rc = unit_open(a, path, &u);
    if (rc != 0)
        return rc;
    rc = 1;
    int answered = 0, skipped = 0;
    eng_diag d = {{0}};
    float *probs = malloc((size_t)u.ncat * sizeof *probs);
    if (!probs)
        goto out;
    int lo = u.lo, hi = u.hi;
    if (a->job_dir) {
        snprintf(path, sizeof path, "%s/answers", a->job_dir);
        mkdir(path, 0700);
    }
    for (int i = lo; i < hi; i++) {
        int w, h;
        char *json = NULL;
        const char *img = u.imgs.v[i];
        eng_det_object *o = NULL;
        uint8_t *jpg = NULL; /* a detector's drawing, as predict/ shows it */
        size_t jl = 0;
        int no = 0;
        if (usable(img, &w, &h) != 0)
            json = NULL;
        else if (u.m && eng_cls_predict(u.m, u.bbs, u.nbb, img, u.threads, probs, &d) == ENG_OK)
            json = tags_answer(a, &u, probs, 0, w, h);
        else if (u.ml && eng_ml_predict(u.ml, u.bbs, u.nbb, img, u.threads, probs, &d) == ENG_OK)
            json = tags_answer(a, &u, probs, 1, w, h);
        else if (u.det &&
                 eng_det_predict(u.det, u.bbs, u.nbb, img, u.threads, &o, &no, &w, &h, &d) ==
                     ENG_OK &&
                 eng_det_draw(u.det, img, o, no, &jpg, &jl, &d) == ENG_OK)
            json = objects_answer(a, u.det, o, no, w, h);
        free(o);
        int ok = json != NULL;
        if (ok && jpg) {
            if (a->job_dir)
                snprintf(path, sizeof path, "%s/answers/%d.boxes.jpg", a->job_dir, i);
            else
                snprintf(path, sizeof path, "%s.boxes.jpg", img);
            ok = write_whole(path, jpg, jl) == 0;
        }
        if (ok) {
            if (a->job_dir)
                snprintf(path, sizeof path, "%s/answers/%d.json", a->job_dir, i);
            else
                snprintf(path, sizeof path, "%s.json", img);
            ok = write_whole(path, json, strlen(json)) == 0;
        }
        answered += ok;
        skipped += !ok;
        free(json);
        free(jpg);
    }
    say("shard %d/%d: %d answered, %d left to the daemon", a->shard, a->nshards, answered, skipped);
    rc = 0;
    if (a->job_dir) {
        snprintf(marker, sizeof marker, "done.%d", a->shard);
        snprintf(text, sizeof text, "{\"answered\": %d, \"skipped\": %d}\n", answered, skipped);
        rc = put_file(a->job_dir, marker, text) == 0 ? 0 : 1;
    }
out:
    free(probs);
    unit_close(&u);
    return rc;
}

/* ---- finetune, detfit ---- */

/* det 0: a classifier's fine-tuning candidate (eng_cls_finetune_run);
 * 1: a detector's head fit (eng_det_fit_run). */
static int cmd_finetune(const wargs *a, int det)
{
    if (begin(a) != 0)
        return 3;
    strs imgs = {0}, bbdirs = {0};
    wargs all = *a;
    all.nbb = 0;
    int rc = 1;
    void *res = NULL;
    size_t len = 0, jl = 0;
    char *job = NULL, name[64], text[256], cache[W_PATH + 32];
    double c0 = cpu_seconds();
    const char *spec = a->spec[a->shard];
    FILE *f = fopen(spec, "rb");
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long l = ftell(f);
        if (l >= 0 && fseek(f, 0, SEEK_SET) == 0 && (job = malloc((size_t)l + 1)) &&
            fread(job, 1, (size_t)l, f) == (size_t)l) {
            jl = (size_t)l;
            job[jl] = '\0';
        } else {
            free(job);
            job = NULL;
        }
    }
    if (f)
        fclose(f);
    if (!job) {
        say("job \"%s\": %s", spec, strerror(errno ? errno : EIO));
        goto out;
    }
    if (read_list(a->store, a->images, &imgs) != 0 || backbone_dirs(&all, &bbdirs) != 0)
        goto out;
    snprintf(cache, sizeof cache, "%s/models/.vfs-cache", a->store);
    eng_diag d = {{0}};
    eng_status st = det ? eng_det_fit_run(job, (const char *const *)bbdirs.v, bbdirs.n,
                                          (const char *const *)imgs.v, imgs.n, cache,
                                          task_threads(a), &res, &len, &d)
                        : eng_cls_finetune_run(job, (const char *const *)bbdirs.v, bbdirs.n,
                                               (const char *const *)imgs.v, imgs.n, cache,
                                               task_threads(a), NULL, NULL, &res, &len, &d);
    if (st != ENG_OK) {
        say("%s: %s", det ? "head fit" : "fine-tuning", d.msg);
        goto out;
    }
    snprintf(name, sizeof name, "result.%d", a->shard);
    if (put_bytes(a->job_dir, name, res, len) != 0) {
        say("job folder \"%s\": %s", a->job_dir, strerror(errno));
        goto out;
    }
    say("%s: %d images, %.1f CPU s", det ? "head fit" : "fine-tuning candidate", imgs.n,
        cpu_seconds() - c0);
    snprintf(name, sizeof name, "done.%d", a->shard);
    snprintf(text, sizeof text, "{\"images\": %d, \"cpuSeconds\": %.3f}\n", imgs.n,
             cpu_seconds() - c0);
    rc = put_file(a->job_dir, name, text) == 0 ? 0 : 1;
out:
    free(job);
    free(res);
    strs_free(&imgs);
    strs_free(&bbdirs);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    wargs a;
    if (strcmp(argv[1], "extract") != 0 && strcmp(argv[1], "predict") != 0 &&
        strcmp(argv[1], "evaluate") != 0 && strcmp(argv[1], "finetune") != 0 &&
        strcmp(argv[1], "detfit") != 0) {
        fprintf(stderr, "visionfs-worker: unknown command \"%s\" (see --help)\n", argv[1]);
        return 2;
    }
    if (parse(argc, argv, &a) != 0)
        return 2;
    if (strcmp(argv[1], "evaluate") == 0)
        return cmd_evaluate(&a);
    if (strcmp(argv[1], "finetune") == 0 || strcmp(argv[1], "detfit") == 0)
        return cmd_finetune(&a, strcmp(argv[1], "detfit") == 0);
    return strcmp(argv[1], "predict") == 0 ? cmd_predict(&a) : cmd_extract(&a);
}
