/* models_det.c: the detector kind for the model lifecycle: fs_recipe on top
 * of engine/recipes/detect.h.
 *
 * Design: as the classifier adapter, backbones come from the shared
 * process-wide cache (fs_models_backbones_open in models_data.c), datasets are
 * matched to the model's categories by name, and prediction and evaluation
 * end in the engine's one image-to-objects path. Boxes arrive in pixels of
 * the image as declared by the dataset and leave in pixels of the image.
 */
#include "area.h"
#include "engine.h"
#include "models_data.h"
#include "models_recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Engine messages are cut to the size of fs_recipe_err on purpose (clang
 * has no such warning and would warn about the pragma itself). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define DET_MAX_FILE ((int64_t)20 * 1000 * 1000)
#define DET_MIN_SIDE 50
#define DET_MAX_SIDE 10240

/* ---- the model ---- */

typedef struct det_model {
    eng_detector *m;
    eng_backbone **bbs;
    int nbb;
} det_model;

static void det_free(void *p)
{
    det_model *c = p;
    if (!c)
        return;
    eng_detector_free(c->m);
    free(c->bbs);
    free(c);
}

static fs_recipe_status det_attach(det_model *c, const char *const *dirs, int n, fs_recipe_err *err)
{
    c->bbs = calloc((size_t)n + 1, sizeof *c->bbs);
    if (!c->bbs) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    c->nbb = fs_models_backbones_open(dirs, n, c->bbs);
    if (!c->m)
        return FS_RECIPE_OK;
    const char *sum = NULL;
    const char *name = eng_det_backbone_needed(c->m, &sum);
    for (int k = 0; k < c->nbb; k++) {
        const eng_backbone_info *inf = eng_backbone_get_info(c->bbs[k]);
        if (strcmp(inf->name, name) == 0 && strcmp(inf->checksum, sum) == 0)
            return FS_RECIPE_OK;
    }
    snprintf(err->code, sizeof err->code, "backboneNotFound");
    snprintf(err->msg, sizeof err->msg,
             "the model needs backbone \"%s\" with weights checksum %.16s..., which is not "
             "installed (see backbones/)",
             name, sum);
    return FS_RECIPE_EFAIL;
}

/* ---- data ---- */

static int find_category(const char *const *cats, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cats[i], name) == 0)
            return i;
    return -1;
}

/* Samples of ds with box categories mapped onto cats by name (cats NULL: as
 * they are). Boxes of other categories are dropped and counted. *boxes
 * receives the one array every sample's boxes point into (free both). */
static eng_det_sample *samples_of(const fs_recipe_dataset *ds, const char *const *cats, int ncat,
                                  eng_det_box **boxes, int *dropped)
{
    size_t nb = 0;
    *dropped = 0;
    for (int i = 0; i < ds->nimages; i++)
        nb += (size_t)ds->images[i].nboxes;
    eng_det_sample *s = calloc((size_t)ds->nimages + 1, sizeof *s);
    eng_det_box *b = calloc(nb + 1, sizeof *b);
    if (!s || !b) {
        free(s);
        free(b);
        *boxes = NULL;
        return NULL;
    }
    size_t k = 0;
    for (int i = 0; i < ds->nimages; i++) {
        const fs_recipe_image *im = &ds->images[i];
        s[i].path = im->path;
        s[i].id = (long long)im->id;
        s[i].width = im->width;
        s[i].height = im->height;
        s[i].boxes = b + k;
        for (int j = 0; j < im->nboxes; j++) {
            const fs_recipe_box *x = &im->boxes[j];
            int c = x->category;
            if (c < 0 || c >= ds->ncategories) {
                (*dropped)++;
                continue;
            }
            if (cats) {
                c = find_category(cats, ncat, ds->categories[c]);
                if (c < 0) {
                    (*dropped)++;
                    continue;
                }
            }
            b[k++] = (eng_det_box){x->x, x->y, x->w, x->h, c};
            s[i].nboxes++;
        }
    }
    *boxes = b;
    return s;
}

/* ---- training ---- */

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

static fs_recipe_status det_train(const fs_recipe_train_in *in, void **model, char **evaluation,
                                  fs_recipe_err *err)
{
    *model = NULL;
    *evaluation = NULL;
    det_model *c = calloc(1, sizeof *c);
    if (!c) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    if (det_attach(c, in->backbone_dirs, in->nbackbones, err) != FS_RECIPE_OK) {
        det_free(c);
        return FS_RECIPE_EFAIL;
    }
    const fs_recipe_dataset *tr = in->train;
    eng_det_box *trb = NULL, *teb = NULL;
    int dtr = 0, dte = 0;
    eng_det_sample *trs = samples_of(tr, NULL, 0, &trb, &dtr);
    eng_det_sample *tes =
        in->test ? samples_of(in->test, tr->categories, tr->ncategories, &teb, &dte) : NULL;
    if (!trs || (in->test && !tes)) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        free(trs);
        free(trb);
        free(tes);
        free(teb);
        det_free(c);
        return FS_RECIPE_EFAIL;
    }
    char line[300];
    if (dte && in->hooks.log) {
        snprintf(line, sizeof line,
                 "%d test boxes whose category is not in the training dataset are not used", dte);
        in->hooks.log(in->hooks.ctx, line);
    }
    eng_det_train_args a = {
        .train = trs,
        .ntrain = tr->nimages,
        .test = tes,
        .ntest = in->test ? in->test->nimages : 0,
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
    eng_status st = eng_det_train(&a, &c->m, evaluation, &d);
    free(trs);
    free(trb);
    free(tes);
    free(teb);
    if (st == ENG_EABORTED) {
        det_free(c);
        return FS_RECIPE_EABORTED;
    }
    if (st != ENG_OK) {
        fs_recipe_set_err(err, train_code(st), d.msg);
        det_free(c);
        return FS_RECIPE_EFAIL;
    }
    *model = c;
    return FS_RECIPE_OK;
}

/* ---- prediction ---- */

static fs_recipe_status check_image(const char *path, fs_recipe_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fs_recipe_set_err(err, "InvalidImageUrl", "the image file cannot be read");
        return FS_RECIPE_EFAIL;
    }
    if (st.st_size > DET_MAX_FILE) {
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
                 "%s (formats: JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO)", d.msg);
        return FS_RECIPE_EFAIL;
    }
    int w = eng_image_info_display_w(&info), h = eng_image_info_display_h(&info);
    if (w < DET_MIN_SIDE || h < DET_MIN_SIDE || w > DET_MAX_SIDE || h > DET_MAX_SIDE) {
        snprintf(err->code, sizeof err->code, "InvalidImageSize");
        snprintf(err->msg, sizeof err->msg,
                 "image is %dx%d; width and height must be 50 to 10240 pixels", w, h);
        return FS_RECIPE_EFAIL;
    }
    return FS_RECIPE_OK;
}

static fs_recipe_status det_predict(void *model, const char *path, fs_recipe_prediction *out,
                                    fs_recipe_err *err)
{
    det_model *c = model;
    memset(out, 0, sizeof *out);
    if (check_image(path, err) != FS_RECIPE_OK)
        return FS_RECIPE_EFAIL;
    eng_det_object *o = NULL;
    int n = 0, w = 0, h = 0;
    eng_diag d = {{0}};
    eng_status st = eng_det_predict(c->m, c->bbs, c->nbb, path, 1, &o, &n, &w, &h, &d);
    if (st == ENG_OK)
        st = eng_det_draw(c->m, path, o, n, &out->boxes_jpg, &out->boxes_jpg_len, &d);
    if (st != ENG_OK) {
        free(o);
        fs_recipe_prediction_release(out);
        fs_recipe_set_err(err,
                          st == ENG_EFORMAT || st == ENG_EUNSUPPORTED ? "InvalidImageFormat"
                          : st == ENG_ENOTFOUND                       ? "modelNotFound"
                                                                      : "InternalServerError",
                          d.msg);
        return FS_RECIPE_EFAIL;
    }
    out->objects = calloc((size_t)n + 1, sizeof *out->objects);
    if (!out->objects) {
        free(o);
        fs_recipe_prediction_release(out);
        fs_recipe_set_err(err, "InternalServerError", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    for (int i = 0; i < n; i++)
        out->objects[i] = (fs_recipe_object){
            o[i].x, o[i].y, o[i].w, o[i].h, eng_det_category(c->m, o[i].category), o[i].score};
    out->nobjects = n;
    out->width = w;
    out->height = h;
    free(o);
    return FS_RECIPE_OK;
}

/* ---- evaluation ---- */

static fs_recipe_status det_evaluate(void *model, const fs_recipe_dataset *ds, int threads,
                                     const fs_recipe_hooks *hooks, char **metrics,
                                     char **predictions, fs_recipe_err *err)
{
    det_model *c = model;
    *metrics = NULL;
    *predictions = NULL;
    int ncat = eng_det_ncat(c->m);
    const char **cats = calloc((size_t)ncat + 1, sizeof *cats);
    long long *ids = calloc((size_t)ncat + 1, sizeof *ids);
    eng_det_box *boxes = NULL;
    eng_det_sample *s = NULL;
    int dropped = 0, known = 0;
    if (cats && ids) {
        for (int i = 0; i < ncat; i++) {
            cats[i] = eng_det_category(c->m, i);
            int k = find_category(ds->categories, ds->ncategories, cats[i]);
            ids[i] = k >= 0 ? (long long)ds->category_ids[k] : (long long)(i + 1);
            known += k >= 0;
        }
        s = samples_of(ds, cats, ncat, &boxes, &dropped);
    }
    if (!s) {
        free(cats);
        free(ids);
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    if (known == 0) {
        free(cats);
        free(ids);
        free(s);
        free(boxes);
        snprintf(err->code, sizeof err->code, "datasetAnnotationsInvalid");
        snprintf(err->msg, sizeof err->msg,
                 "dataset \"%s\": none of its categories is one the model knows", ds->name);
        return FS_RECIPE_EFAIL;
    }
    eng_det_eval_opts o = {
        .threads = threads,
        .abort = hooks ? hooks->abort : NULL,
        .ctx = hooks ? hooks->ctx : NULL,
        .dataset_name = ds->name,
        .category_ids = ids,
    };
    eng_diag d = {{0}};
    eng_status st =
        eng_det_evaluate(c->m, c->bbs, c->nbb, s, ds->nimages, &o, metrics, predictions, &d);
    free(cats);
    free(ids);
    free(s);
    free(boxes);
    if (st == ENG_EABORTED)
        return FS_RECIPE_EABORTED;
    if (st != ENG_OK) {
        fs_recipe_set_err(err, st == ENG_ENOMEM ? "unknown" : "datasetAnnotationsInvalid", d.msg);
        return FS_RECIPE_EFAIL;
    }
    return FS_RECIPE_OK;
}

/* ---- files ---- */

static fs_recipe_status det_save(void *model, const char *path, fs_recipe_err *err)
{
    det_model *c = model;
    eng_diag d = {{0}};
    eng_status st = eng_detector_save(c->m, path, &d);
    if (st != ENG_OK) {
        fs_recipe_set_err(err, st == ENG_ENOSPC ? "storeFull" : "unknown", d.msg);
        return FS_RECIPE_EFAIL;
    }
    return FS_RECIPE_OK;
}

static fs_recipe_status det_load(const char *path, const char *const *dirs, int n, void **model,
                                 fs_recipe_err *err)
{
    *model = NULL;
    det_model *c = calloc(1, sizeof *c);
    if (!c) {
        fs_recipe_set_err(err, "unknown", "out of memory");
        return FS_RECIPE_EFAIL;
    }
    eng_modelfile *mf = NULL;
    eng_diag d = {{0}};
    eng_status st = eng_modelfile_read(path, &mf, &d);
    if (st == ENG_OK) {
        const char *kind = eng_modelfile_meta(mf, "kind");
        if (kind && strcmp(kind, "detector") != 0) {
            snprintf(err->code, sizeof err->code, "wrongKind");
            snprintf(err->msg, sizeof err->msg, "model.safetensors: kind is \"%.32s\"", kind);
            eng_modelfile_free(mf);
            det_free(c);
            return FS_RECIPE_EFAIL;
        }
        st = eng_detector_from_file(mf, &c->m, &d);
    }
    eng_modelfile_free(mf);
    if (st != ENG_OK) {
        snprintf(err->code, sizeof err->code, "invalidModel");
        snprintf(err->msg, sizeof err->msg, "model.safetensors: %s", d.msg);
        det_free(c);
        return FS_RECIPE_EFAIL;
    }
    if (det_attach(c, dirs, n, err) != FS_RECIPE_OK) {
        det_free(c);
        return FS_RECIPE_EFAIL;
    }
    *model = c;
    return FS_RECIPE_OK;
}

static void det_describe(void *model, char *buf, size_t cap)
{
    det_model *c = model;
    const char *sum = NULL;
    const char *name = eng_det_backbone_needed(c->m, &sum);
    snprintf(buf, cap, "%s (sha256 %.12s)", name, sum ? sum : "?");
}

const fs_recipe fs_recipe_detector = {
    .kind = "detector",
    .azure_kind = "Generic-Detector",
    .metric = "meanAveragePrecision50",
    .wants_detection = 1,
    .train = det_train,
    .predict = det_predict,
    .evaluate = det_evaluate,
    .save = det_save,
    .load = det_load,
    .describe = det_describe,
    .free_model = det_free,
};
