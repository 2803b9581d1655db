/* models_data.c: dataset snapshots and backbone folders for the model
 * lifecycle (models_data.h), on top of fs/datasets.h and fs/backbones.h.
 *
 * Design: the datasets area's snapshot is converted into the recipe's
 * fs_recipe_dataset by copying (the two layouts are kept apart so either
 * side can grow without breaking the other).
 */
#include "models_data.h"

#include "area.h"
#include "backbones.h"
#include "datasets.h"

_Static_assert((int)FS_DATA_LABEL == (int)FS_RECIPE_LABEL &&
                   (int)FS_DATA_BOXES == (int)FS_RECIPE_BOXES &&
                   (int)FS_DATA_TAGS == (int)FS_RECIPE_TAGS,
               "datasets.h and models_recipe.h name the same data kinds");

/* Reasons are cut to the size of fs_models_ds_err on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fs_models_ds {
    fs_ds_snapshot *snap;
    char linkdir[FS_PATH_MAX]; /* hard links to the images, "" when none */
    char **paths;              /* per image: its link, or NULL (the dataset's file) */
    fs_recipe_dataset view;
    eng_sample *images; /* the snapshot's, with paths to the links */
};

static fs_models_ds_status map_state(fs_ds_state st)
{
    switch (st) {
    case FS_DS_READY: return FS_MDS_OK;
    case FS_DS_NOTFOUND: return FS_MDS_NOTFOUND;
    case FS_DS_EMPTY: return FS_MDS_EMPTY;
    case FS_DS_INVALID: return FS_MDS_INVALID;
    case FS_DS_ENOMEM: return FS_MDS_ENOMEM;
    case FS_DS_FETCHING: return FS_MDS_FETCHING;
    default: return FS_MDS_NOTREADY;
    }
}

static void explain(const char *name, fs_ds_state st, const char *line, fs_models_ds_err *err)
{
    if (!err)
        return;
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        n--;
    switch (st) {
    case FS_DS_NOTFOUND:
        snprintf(err->msg, sizeof err->msg, "dataset \"%s\" does not exist (mkdir datasets/%s)",
                 name, name);
        break;
    case FS_DS_VERIFYING:
        snprintf(err->msg, sizeof err->msg, "dataset \"%s\" is being verified; try again", name);
        break;
    default:
        snprintf(err->msg, sizeof err->msg, "dataset \"%s\" is not ready: %.*s", name, (int)n,
                 line[0] ? line : "no status");
    }
}

fs_models_ds_status fs_models_ds_check(const char *name, int *detection, fs_models_ds_err *err)
{
    char line[512] = "";
    int det = 0;
    fs_ds_state st = fs_dataset_state(name, &det, line, sizeof line);
    if (st == FS_DS_VERIFYING) {
        st = fs_dataset_wait(name, 2000);
        fs_dataset_state(name, &det, line, sizeof line);
    }
    if (detection)
        *detection = det;
    if (st != FS_DS_READY)
        explain(name, st, line, err);
    return map_state(st);
}

/* Hard links to every image in a folder of STORE/.tmp, used instead of the
 * dataset's files: a dataset removed (rm -r) or renamed while a model
 * trains or evaluates on it no longer pulls the images from under the job,
 * which goes on with the data it started from. Costs one link per image; an
 * image that cannot be linked is read where it is. */
static void link_images(fs_models_ds *d)
{
    int n = d->snap->nimages;
    if (n == 0 || fs_tmp_mkdir(d->linkdir, sizeof d->linkdir) != 0) {
        d->linkdir[0] = '\0';
        return;
    }
    d->paths = calloc((size_t)n, sizeof *d->paths);
    for (int i = 0; d->paths && i < n; i++) {
        const char *src = d->images[i].path, *base = strrchr(src, '/');
        char dst[FS_PATH_MAX + 64];
        snprintf(dst, sizeof dst, "%s/%d-%s", d->linkdir, i, base ? base + 1 : src);
        if (link(src, dst) == 0 && (d->paths[i] = strdup(dst)) != NULL)
            d->images[i].path = d->paths[i];
    }
}

fs_models_ds_status fs_models_ds_open(const char *name, fs_models_ds **out,
                                      const fs_recipe_dataset **view, fs_models_ds_err *err)
{
    *out = NULL;
    *view = NULL;
    char why[512] = "";
    fs_ds_snapshot *s = NULL;
    fs_ds_state st = fs_dataset_snapshot(name, 1, &s, why, sizeof why);
    if (st != FS_DS_READY) {
        if (st == FS_DS_INVALID && err && why[0])
            snprintf(err->msg, sizeof err->msg, "dataset \"%s\": %s", name, why);
        else
            explain(name, st, why, err);
        return map_state(st);
    }
    /* the samples as the snapshot has them, paths replaced by their links */
    fs_models_ds *d = calloc(1, sizeof *d);
    if (d)
        d->images = calloc((size_t)s->nimages + 1, sizeof *d->images);
    if (!d || !d->images) {
        free(d);
        fs_dataset_snapshot_free(s);
        if (err)
            snprintf(err->msg, sizeof err->msg, "dataset \"%s\": out of memory", name);
        return FS_MDS_ENOMEM;
    }
    d->snap = s;
    memcpy(d->images, s->images, (size_t)s->nimages * sizeof *d->images);
    link_images(d);
    d->view.name = s->name;
    d->view.detection = s->detection;
    d->view.ncategories = s->ncategories;
    d->view.categories = s->categories;
    d->view.category_ids = s->category_ids;
    d->view.images = d->images;
    d->view.nimages = s->nimages;
    *out = d;
    *view = &d->view;
    if (s->nimages == 0) {
        if (err)
            snprintf(err->msg, sizeof err->msg, "dataset \"%s\" has no usable images", name);
        fs_models_ds_close(d);
        *out = NULL;
        *view = NULL;
        return FS_MDS_EMPTY;
    }
    return FS_MDS_OK;
}

void fs_models_ds_close(fs_models_ds *ds)
{
    if (!ds)
        return;
    if (ds->linkdir[0])
        fs_remove_tree(ds->linkdir);
    for (int i = 0; ds->paths && i < ds->snap->nimages; i++)
        free(ds->paths[i]);
    free(ds->paths);
    fs_dataset_snapshot_free(ds->snap);
    free(ds->images);
    free(ds);
}

static int name_cmp(const void *a, const void *b)
{
    const char *x = strrchr(*(char *const *)a, '/'), *y = strrchr(*(char *const *)b, '/');
    return strcmp(x ? x : "", y ? y : "");
}

/* Adds the backbone folders of root not already listed by name. */
static int list_root(const char *root, char ***dirs, int n, int *cap)
{
    DIR *d = root && *root ? opendir(root) : NULL;
    if (!d)
        return n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[FS_PATH_MAX + 100], mj[4400];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        snprintf(mj, sizeof mj, "%s/model.json", path);
        struct stat st;
        if (stat(mj, &st) != 0)
            continue;
        int dup = 0;
        for (int i = 0; i < n && !dup; i++) {
            const char *base = strrchr((*dirs)[i], '/');
            dup = base && strcmp(base + 1, e->d_name) == 0;
        }
        if (dup)
            continue;
        if (n == *cap) {
            int nc = *cap ? *cap * 2 : 8;
            char **t = realloc(*dirs, (size_t)nc * sizeof *t);
            if (!t)
                break;
            *dirs = t;
            *cap = nc;
        }
        char *s = strdup(path);
        if (!s)
            break;
        (*dirs)[n++] = s;
    }
    closedir(d);
    return n;
}

int fs_models_backbones_list(char ***dirs)
{
    *dirs = NULL;
    int n = 0, cap = 0;
    char store[FS_PATH_MAX];
    if (fs_store_path(store, sizeof store, "backbones", NULL) == 0)
        n = list_root(store, dirs, n, &cap);
    n = list_root(fs_backbones_default_dir(), dirs, n, &cap);
    if (n > 1)
        qsort(*dirs, (size_t)n, sizeof **dirs, name_cmp);
    return n;
}

void fs_models_backbones_free(char **dirs, int n)
{
    for (int i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
}

/* ---- opened backbones, shared by every model of every kind ---- */

typedef struct bb_slot {
    char dir[FS_PATH_MAX];
    struct timespec mtime;
    eng_backbone *bb; /* NULL when it failed to open */
} bb_slot;

static pthread_mutex_t bb_mu = PTHREAD_MUTEX_INITIALIZER; /* leaf lock */
static bb_slot *bb_slots;
static int bb_n, bb_cap;

int fs_models_backbones_open(const char *const *dirs, int n, eng_backbone **out)
{
    int k = 0;
    pthread_mutex_lock(&bb_mu);
    for (int i = 0; i < n; i++) {
        char bj[FS_PATH_MAX];
        struct stat st;
        snprintf(bj, sizeof bj, "%s/backbone.json", dirs[i]);
        memset(&st, 0, sizeof st);
        stat(bj, &st);
        bb_slot *s = NULL;
        for (int j = 0; j < bb_n && !s; j++)
            if (strcmp(bb_slots[j].dir, dirs[i]) == 0 &&
                bb_slots[j].mtime.tv_sec == st.st_mtim.tv_sec &&
                bb_slots[j].mtime.tv_nsec == st.st_mtim.tv_nsec)
                s = &bb_slots[j];
        if (!s) {
            if (bb_n == bb_cap) {
                int nc = bb_cap ? bb_cap * 2 : 8;
                bb_slot *t = realloc(bb_slots, (size_t)nc * sizeof *t);
                if (!t)
                    continue;
                bb_slots = t;
                bb_cap = nc;
            }
            s = &bb_slots[bb_n++];
            memset(s, 0, sizeof *s);
            snprintf(s->dir, sizeof s->dir, "%s", dirs[i]);
            s->mtime = st.st_mtim;
            eng_diag d = {{0}};
            if (eng_backbone_open(dirs[i], &s->bb, &d) != ENG_OK) {
                s->bb = NULL;
                fs_log("backbone \"%s\" not used: %s", dirs[i], d.msg);
            }
        }
        if (s->bb)
            out[k++] = s->bb;
    }
    pthread_mutex_unlock(&bb_mu);
    return k;
}

/* ---- the engine's training hooks, forwarding to the lifecycle's ---- */

static int hooks_abort(void *ctx)
{
    const fs_recipe_hooks *h = ctx;
    return h->abort ? h->abort(h->ctx) : 0;
}

static void hooks_progress(void *ctx, const eng_train_progress *p)
{
    const fs_recipe_hooks *h = ctx;
    if (!h->progress)
        return;
    fs_recipe_progress q = {
        .fraction = p->fraction,
        .trial = p->trial,
        .ntrials = p->ntrials,
        .best = p->best_value,
        .cpu_seconds = p->cpu_seconds,
        .budget_seconds = p->budget_seconds,
    };
    h->progress(h->ctx, &q);
}

static void hooks_log(void *ctx, const char *line)
{
    const fs_recipe_hooks *h = ctx;
    if (h->log)
        h->log(h->ctx, line);
}

void fs_models_hooks_detail(void *ctx, const eng_eval_detail *dt)
{
    const fs_recipe_hooks *h = ctx;
    if (h->detail)
        h->detail(h->ctx, dt);
}

int fs_models_hooks_probs(void *ctx, const void *model, const char *const *paths, int n, int cached,
                          float *probs, eng_status *st, eng_diag *d)
{
    const fs_recipe_hooks *h = ctx;
    return h->probs(h->ctx, model, paths, n, cached, probs, st, d);
}

int fs_models_hooks_dets(void *ctx, const void *model, const char *const *paths, int n,
                         struct eng_det_object *objs, int *nobjs, int *wh, eng_status *st,
                         eng_diag *d)
{
    const fs_recipe_hooks *h = ctx;
    return h->dets(h->ctx, model, paths, n, objs, nobjs, wh, st, d);
}

int fs_models_hooks_finetune(void *ctx, eng_finetune_job *jobs, int njobs, const char *const *paths,
                             int n, double *cpu, eng_status *st, eng_diag *d)
{
    const fs_recipe_hooks *h = ctx;
    return h->finetune(h->ctx, jobs, njobs, paths, n, cpu, st, d);
}

static int hooks_extract(void *ctx, const char *backbone, const char *checksum, int size, int aug,
                         uint64_t seed, const char *const *paths, int n, int *computed, double *cpu,
                         eng_status *st, eng_diag *d)
{
    const fs_recipe_hooks *h = ctx;
    return h->extract(h->ctx, backbone, checksum, size, aug, seed, paths, n, computed, cpu, st, d);
}

static int hooks_detfit(void *ctx, eng_finetune_job *jobs, int njobs, const char *const *paths,
                        int n, double *cpu, eng_status *st, eng_diag *d)
{
    const fs_recipe_hooks *h = ctx;
    return h->detfit(h->ctx, jobs, njobs, paths, n, cpu, st, d);
}

eng_train_hooks fs_models_engine_hooks(const fs_recipe_hooks *h)
{
    eng_train_hooks e = {.abort = hooks_abort,
                         .ctx = (void *)h,
                         .progress = hooks_progress,
                         .log = hooks_log,
                         .detail = h->detail ? fs_models_hooks_detail : NULL,
                         .probs = h->probs ? fs_models_hooks_probs : NULL,
                         .dets = h->dets ? fs_models_hooks_dets : NULL,
                         .finetune = h->finetune ? fs_models_hooks_finetune : NULL,
                         .extract = h->extract ? hooks_extract : NULL,
                         .detfit = h->detfit ? hooks_detfit : NULL};
    return e;
}

void fs_recipe_set_err(fs_recipe_err *err, fs_code code, const char *msg)
{
    err->code = code;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}
