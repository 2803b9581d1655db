/* models_cls.c: the classifier kind for the model lifecycle: fs_recipe on
 * top of engine/recipes/classify.h.
 *
 * Design: backbones come from the process-wide cache of models_data.c
 * (fs_models_backbones_open), shared with the detector. Prediction and
 * evaluation both end in the engine's one image-to-scores function, so an
 * image scores the same through predict/ as in evaluation.json. Test and
 * evaluation datasets are matched to the model's categories by name.
 */
#include "area.h"
#include "engine.h"
#include "models_data.h"
#include "models_recipe.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Engine messages are cut to the size of fs_recipe_err on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define CLS_MAX_FILE ((int64_t)20 * 1000 * 1000)
#define CLS_MIN_SIDE 50
#define CLS_MAX_SIDE 10240

/* ---- the model ---- */

typedef struct cls_model {
    eng_classifier *m;
    eng_backbone **bbs;
    int nbb;
} cls_model;

static void cls_free(void *p)
{
    cls_model *c = p;
    if (!c)
        return;
    eng_classifier_free(c->m);
    free(c->bbs);
    free(c);
}

/* Opens the backbones of dirs into c; checks the model's needs when c->m is set. */
static fs_recipe_status cls_attach(cls_model *c, const char *const *dirs, int n, fs_recipe_err *err)
{
    c->bbs = calloc((size_t)n + 1, sizeof *c->bbs);
    if (!c->bbs) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    c->nbb = fs_models_backbones_open(dirs, n, c->bbs);
    if (!c->m)
        return FS_RECIPE_OK;
    for (int i = 0;; i++) {
        const char *sum = NULL;
        const char *name = eng_cls_backbone_needed(c->m, i, &sum);
        if (!name)
            break;
        int found = 0;
        for (int k = 0; k < c->nbb && !found; k++) {
            const eng_backbone_info *inf = eng_backbone_get_info(c->bbs[k]);
            found = strcmp(inf->name, name) == 0 && (!sum || strcmp(inf->checksum, sum) == 0);
        }
        if (!found) {
            snprintf(err->code, sizeof err->code, "backboneNotFound");
            snprintf(err->msg, sizeof err->msg,
                     "the model needs backbone \"%s\" with weights checksum %.16s..., which is "
                     "not installed (see backbones/)",
                     name, sum ? sum : "?");
            return FS_RECIPE_EFAIL;
        }
    }
    return FS_RECIPE_OK;
}

/* ---- training ---- */

static int find_category(const char *const *cats, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cats[i], name) == 0)
            return i;
    return -1;
}

/* Samples of ds with labels mapped onto cats by name; images whose category
 * is not in cats (or that have no label) are left out and counted. */
static eng_cls_sample *samples_of(const fs_recipe_dataset *ds, const char *const *cats, int ncat,
                                  int *n, int *skipped)
{
    eng_cls_sample *s = calloc((size_t)ds->nimages + 1, sizeof *s);
    *n = 0;
    *skipped = 0;
    if (!s)
        return NULL;
    for (int i = 0; i < ds->nimages; i++) {
        const fs_recipe_image *im = &ds->images[i];
        int label = -1;
        if (im->label >= 0 && im->label < ds->ncategories)
            label = cats ? find_category(cats, ncat, ds->categories[im->label]) : im->label;
        if (label < 0) {
            (*skipped)++;
            continue;
        }
        s[*n].path = im->path;
        s[*n].label = label;
        s[*n].id = (long long)im->id;
        (*n)++;
    }
    return s;
}

static const char *train_code(eng_status st)
{
    if (st == ENG_ENOBUDGET)
        return "notEnoughBudget";
    switch (st) {
    case ENG_EINVAL:
    case ENG_ENOTFOUND:
    case ENG_EFORMAT:
    case ENG_EUNSUPPORTED: return "datasetCorrupt";
    default: return "unknown";
    }
}

static fs_recipe_status cls_train(const fs_recipe_train_in *in, void **model, char **evaluation,
                                  fs_recipe_err *err)
{
    *model = NULL;
    *evaluation = NULL;
    cls_model *c = calloc(1, sizeof *c);
    if (!c) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    if (cls_attach(c, in->backbone_dirs, in->nbackbones, err) != FS_RECIPE_OK) {
        cls_free(c);
        return FS_RECIPE_EFAIL;
    }
    if (c->nbb == 0) {
        fs_recipe_set_err(err, "unknown",
                          "no installed backbone could be opened (run " ENG_BACKBONE_FIX_COMMAND
                          ")");
        cls_free(c);
        return FS_RECIPE_EFAIL;
    }
    const fs_recipe_dataset *tr = in->train;
    int ntr = 0, nte = 0, sk = 0, skt = 0;
    eng_cls_sample *trs = samples_of(tr, NULL, 0, &ntr, &sk);
    eng_cls_sample *tes =
        in->test ? samples_of(in->test, tr->categories, tr->ncategories, &nte, &skt) : NULL;
    if (!trs || (in->test && !tes)) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        free(trs);
        free(tes);
        cls_free(c);
        return FS_RECIPE_EFAIL;
    }
    char line[300];
    if (sk && in->hooks.log) {
        snprintf(line, sizeof line, "%d training images without a label are not used", sk);
        in->hooks.log(in->hooks.ctx, line);
    }
    if (skt && in->hooks.log) {
        snprintf(line, sizeof line,
                 "%d test images whose category is not in the training dataset are not used", skt);
        in->hooks.log(in->hooks.ctx, line);
    }
    if (in->test && nte == 0) {
        snprintf(err->code, sizeof err->code, "datasetCorrupt");
        snprintf(err->msg, sizeof err->msg,
                 "test dataset \"%s\": no image has a category of the training dataset",
                 in->test->name);
        free(trs);
        free(tes);
        cls_free(c);
        return FS_RECIPE_EFAIL;
    }
    eng_cls_train_args a = {
        .train = trs,
        .ntrain = ntr,
        .test = tes,
        .ntest = nte,
        .test_name = in->test ? in->test->name : NULL,
        .categories = tr->categories,
        .ncat = tr->ncategories,
        .backbones = c->bbs,
        .nbackbones = c->nbb,
        .budget_seconds = in->budget_seconds,
        .threads = in->threads,
        .seed = in->seed,
        .cache_dir = in->cache_dir,
        .hooks = fs_models_engine_hooks(&in->hooks),
    };
    eng_diag d = {{0}};
    eng_status st = eng_cls_train(&a, &c->m, evaluation, &d);
    free(trs);
    free(tes);
    if (st == ENG_EABORTED) {
        cls_free(c);
        return FS_RECIPE_EABORTED;
    }
    if (st != ENG_OK) {
        fs_recipe_set_err(err, train_code(st), d.msg);
        cls_free(c);
        return FS_RECIPE_EFAIL;
    }
    *model = c;
    return FS_RECIPE_OK;
}

/* ---- prediction ---- */

/* Azure's image checks: format, file size, dimensions. */
static fs_recipe_status check_image(const char *path, int *w, int *h, fs_recipe_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fs_recipe_set_err(err, "InvalidImageUrl", "the image file cannot be read");
        return FS_RECIPE_EFAIL;
    }
    if (st.st_size > CLS_MAX_FILE) {
        snprintf(err->code, sizeof err->code, "InvalidImageSize");
        snprintf(err->msg, sizeof err->msg, "image is %lld bytes; at most 20 MB",
                 (long long)st.st_size);
        return FS_RECIPE_EFAIL;
    }
    eng_image_info info;
    eng_diag d = {{0}};
    if (eng_image_probe_file(path, &info, &d) != ENG_OK) {
        snprintf(err->code, sizeof err->code, "InvalidImageFormat");
        snprintf(err->msg, sizeof err->msg,
                 "%s (formats: JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, "
                 "MPO)",
                 d.msg);
        return FS_RECIPE_EFAIL;
    }
    *w = eng_image_info_display_w(&info);
    *h = eng_image_info_display_h(&info);
    if (*w < CLS_MIN_SIDE || *h < CLS_MIN_SIDE || *w > CLS_MAX_SIDE || *h > CLS_MAX_SIDE) {
        snprintf(err->code, sizeof err->code, "InvalidImageSize");
        snprintf(err->msg, sizeof err->msg,
                 "image is %dx%d; width and height must be 50 to 10240 pixels", *w, *h);
        return FS_RECIPE_EFAIL;
    }
    return FS_RECIPE_OK;
}

typedef struct cls_rank {
    float p;
    int i;
} cls_rank;

static int rank_cmp(const void *a, const void *b)
{
    const cls_rank *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->i - y->i;
}

static fs_recipe_status cls_predict(void *model, const char *path, fs_recipe_prediction *out,
                                    fs_recipe_err *err)
{
    cls_model *c = model;
    memset(out, 0, sizeof *out);
    int w = 0, h = 0;
    if (check_image(path, &w, &h, err) != FS_RECIPE_OK)
        return FS_RECIPE_EFAIL;
    int ncat = eng_cls_ncat(c->m);
    float *probs = calloc((size_t)ncat, sizeof *probs);
    cls_rank *rk = calloc((size_t)ncat, sizeof *rk);
    out->classes = calloc((size_t)ncat, sizeof *out->classes);
    if (!probs || !rk || !out->classes) {
        free(probs);
        free(rk);
        fs_recipe_prediction_release(out);
        fs_recipe_set_err(err, "InternalServerError", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    eng_diag d = {{0}};
    eng_status st = eng_cls_predict(c->m, c->bbs, c->nbb, path, 1, probs, &d);
    if (st != ENG_OK) {
        free(probs);
        free(rk);
        fs_recipe_prediction_release(out);
        fs_recipe_set_err(err,
                          st == ENG_EFORMAT || st == ENG_EUNSUPPORTED ? "InvalidImageFormat"
                          : st == ENG_ENOTFOUND                       ? "modelNotFound"
                                                                      : "InternalServerError",
                          d.msg);
        return FS_RECIPE_EFAIL;
    }
    for (int i = 0; i < ncat; i++) {
        rk[i].p = probs[i];
        rk[i].i = i;
    }
    qsort(rk, (size_t)ncat, sizeof *rk, rank_cmp);
    for (int i = 0; i < ncat; i++) {
        out->classes[i].label = eng_cls_category(c->m, rk[i].i);
        out->classes[i].confidence = rk[i].p;
    }
    out->nclasses = ncat;
    out->width = w;
    out->height = h;
    free(probs);
    free(rk);
    return FS_RECIPE_OK;
}

/* ---- evaluation ---- */

typedef struct id_size {
    long long id;
    int w, h;
} id_size;

static int id_cmp(const void *a, const void *b)
{
    const id_size *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* COCO results carry a bbox (SPEC section 5); for a classifier the answer
 * is about the whole image: [0, 0, width, height] in pixels. Leaves the
 * string as it is when anything does not fit. */
static void add_whole_image_boxes(const fs_recipe_dataset *ds, char **predictions)
{
    if (!*predictions)
        return;
    id_size *map = malloc(((size_t)ds->nimages + 1) * sizeof *map);
    cJSON *arr = map ? cJSON_Parse(*predictions) : NULL;
    if (!cJSON_IsArray(arr)) {
        free(map);
        cJSON_Delete(arr);
        return;
    }
    for (int i = 0; i < ds->nimages; i++)
        map[i] = (id_size){(long long)ds->images[i].id, ds->images[i].width, ds->images[i].height};
    qsort(map, (size_t)ds->nimages, sizeof *map, id_cmp);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *iid = cJSON_GetObjectItem(e, "image_id");
        if (!cJSON_IsNumber(iid) || cJSON_GetObjectItem(e, "bbox"))
            continue;
        id_size key = {(long long)iid->valuedouble, 0, 0};
        const id_size *f = bsearch(&key, map, (size_t)ds->nimages, sizeof *map, id_cmp);
        if (!f)
            continue;
        const double box[4] = {0, 0, f->w, f->h};
        cJSON_AddItemToObject((cJSON *)e, "bbox", cJSON_CreateDoubleArray(box, 4));
    }
    char *out = cJSON_PrintUnformatted(arr);
    if (out) {
        free(*predictions);
        *predictions = out;
    }
    cJSON_Delete(arr);
    free(map);
}

static fs_recipe_status cls_evaluate(void *model, const fs_recipe_dataset *ds, int threads,
                                     const fs_recipe_hooks *hooks, char **metrics,
                                     char **predictions, fs_recipe_err *err)
{
    cls_model *c = model;
    *metrics = NULL;
    *predictions = NULL;
    int ncat = eng_cls_ncat(c->m);
    const char **cats = calloc((size_t)ncat + 1, sizeof *cats);
    long long *ids = calloc((size_t)ncat + 1, sizeof *ids);
    int n = 0, skipped = 0;
    eng_cls_sample *s = NULL;
    if (cats && ids) {
        for (int i = 0; i < ncat; i++) {
            cats[i] = eng_cls_category(c->m, i);
            int k = find_category(ds->categories, ds->ncategories, cats[i]);
            ids[i] = k >= 0 ? (long long)ds->category_ids[k] : (long long)(i + 1);
        }
        s = samples_of(ds, cats, ncat, &n, &skipped);
    }
    if (!s) {
        free(cats);
        free(ids);
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    if (n == 0) {
        free(cats);
        free(ids);
        free(s);
        snprintf(err->code, sizeof err->code, "datasetAnnotationsInvalid");
        snprintf(err->msg, sizeof err->msg,
                 "dataset \"%s\": no image is labelled with a category the model knows", ds->name);
        return FS_RECIPE_EFAIL;
    }
    eng_cls_eval_opts o = {
        .threads = threads,
        .abort = hooks ? hooks->abort : NULL,
        .ctx = hooks ? hooks->ctx : NULL,
        .dataset_name = ds->name,
        .category_ids = ids,
    };
    eng_diag d = {{0}};
    eng_status st = eng_cls_evaluate(c->m, c->bbs, c->nbb, s, n, &o, metrics, predictions, &d);
    free(cats);
    free(ids);
    free(s);
    if (st == ENG_EABORTED)
        return FS_RECIPE_EABORTED;
    if (st != ENG_OK) {
        fs_recipe_set_err(err, st == ENG_ENOMEM ? "unknown" : "datasetAnnotationsInvalid", d.msg);
        return FS_RECIPE_EFAIL;
    }
    add_whole_image_boxes(ds, predictions);
    return FS_RECIPE_OK;
}

/* ---- files ---- */

static fs_recipe_status cls_save(void *model, const char *path, fs_recipe_err *err)
{
    cls_model *c = model;
    eng_diag d = {{0}};
    eng_status st = eng_classifier_save(c->m, path, &d);
    if (st != ENG_OK) {
        fs_recipe_set_err(err, st == ENG_ENOSPC ? "storeFull" : "unknown", d.msg);
        return FS_RECIPE_EFAIL;
    }
    return FS_RECIPE_OK;
}

static fs_recipe_status cls_load(const char *path, const char *const *dirs, int n, void **model,
                                 fs_recipe_err *err)
{
    *model = NULL;
    cls_model *c = calloc(1, sizeof *c);
    if (!c) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    eng_diag d = {{0}};
    eng_status st = eng_classifier_load(path, &c->m, &d);
    if (st != ENG_OK) {
        /* another kind's file: let the registry try the next recipe */
        eng_modelfile *mf = NULL;
        eng_diag d2 = {{0}};
        const char *kind = NULL;
        if (eng_modelfile_read(path, &mf, &d2) == ENG_OK)
            kind = eng_modelfile_meta(mf, "kind");
        int other = kind && strcmp(kind, "classifier") != 0;
        snprintf(err->code, sizeof err->code, "%s", other ? "wrongKind" : "invalidModel");
        snprintf(err->msg, sizeof err->msg, "model.safetensors: %s", d.msg);
        eng_modelfile_free(mf);
        cls_free(c);
        return FS_RECIPE_EFAIL;
    }
    if (cls_attach(c, dirs, n, err) != FS_RECIPE_OK) {
        cls_free(c);
        return FS_RECIPE_EFAIL;
    }
    *model = c;
    return FS_RECIPE_OK;
}

static void cls_describe(void *model, char *buf, size_t cap)
{
    cls_model *c = model;
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0;; i++) {
        const char *sum = NULL;
        const char *name = eng_cls_backbone_needed(c->m, i, &sum);
        if (!name || len + 1 >= cap)
            break;
        int w = snprintf(buf + len, cap - len, "%s%s (sha256 %.12s)", i ? ", " : "", name,
                         sum ? sum : "?");
        if (w < 0)
            break;
        len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
    }
}

const fs_recipe fs_recipe_classifier = {
    .kind = "classifier",
    .azure_kind = "Generic-Classifier",
    .metric = "accuracyTop1",
    .wants_detection = 0,
    .train = cls_train,
    .predict = cls_predict,
    .evaluate = cls_evaluate,
    .save = cls_save,
    .load = cls_load,
    .describe = cls_describe,
    .free_model = cls_free,
};
