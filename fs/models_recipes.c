/* models_recipes.c: the table of model kinds and what every kind shares
 * (models_recipe.h).
 *
 * Design: a kind file (models_cls.c, models_det.c) gives the engine calls
 * behind `void *` and its own predict; everything around them is here, once:
 * opening the backbones a model needs, Azure's image checks, turning a
 * dataset into samples with its categories matched to the model's by name,
 * the Azure code for each engine status, and reading a model file whatever
 * its kind. Both kinds are referenced strongly (a weak reference would not
 * pull a kind's file out of the static library vfs_fs).
 */
#include "models_recipe.h"

#include "area.h"
#include "models_data.h"
#include "ranked.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Engine messages are cut to the size of fs_recipe_err on purpose (clang
 * has no such warning and would warn about the pragma itself). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* The kinds, in the order a model file without a "kind" is tried. */
static const fs_recipe *const kinds[] = {&fs_recipe_classifier, &fs_recipe_detector,
                                         &fs_recipe_multilabel};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

/* The limits on an image to score are those of a dataset's images: one
 * table, common/imglimits.h. */

struct fs_recipe_model {
    const fs_recipe *r;
    void *m; /* the kind's engine model */
    eng_backbone **bbs;
    int nbb;
};

const fs_recipe *fs_recipe_for_kind(const char *kind)
{
    for (int i = 0; kind && i < NKINDS; i++)
        if (strcmp(kinds[i]->kind, kind) == 0)
            return kinds[i];
    return NULL;
}

/* a and b equal but for case, '-' and '_' (Azure's clients spell the kinds
 * "Generic-Classifier" and "GenericClassifier") */
static int same_kind_name(const char *a, const char *b)
{
    for (;;) {
        while (*a == '-' || *a == '_')
            a++;
        while (*b == '-' || *b == '_')
            b++;
        if (!*a || !*b)
            return !*a && !*b;
        if (tolower((unsigned char)*a++) != tolower((unsigned char)*b++))
            return 0;
    }
}

const fs_recipe *fs_recipe_for_azure_kind(const char *azure_kind)
{
    for (int i = 0; azure_kind && i < NKINDS; i++)
        if (same_kind_name(kinds[i]->azure_kind, azure_kind))
            return kinds[i];
    return NULL;
}

const fs_recipe *fs_recipe_for_dataset(int detection)
{
    for (int i = 0; i < NKINDS; i++)
        if (kinds[i]->wants_detection == detection)
            return kinds[i];
    return NULL;
}

const char *fs_recipe_data_name(int detection)
{
    return detection == FS_RECIPE_BOXES  ? "detection"
           : detection == FS_RECIPE_TAGS ? "multilabel"
                                         : "classification";
}

int fs_recipe_accepts(const fs_recipe *r, int detection)
{
    return r->wants_detection == detection ||
           (r->wants_detection == FS_RECIPE_TAGS && detection == FS_RECIPE_LABEL);
}

const char *fs_recipe_data_needs(int detection)
{
    return detection == FS_RECIPE_BOXES  ? "boxes"
           : detection == FS_RECIPE_TAGS ? "images with several tags, no boxes"
                                         : "one label per image, no boxes";
}

void fs_recipe_kind_names(int azure, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < NKINDS && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s\"%s\"",
                         i == 0           ? ""
                         : i + 1 < NKINDS ? ", "
                                          : " or ",
                         azure ? kinds[i]->azure_kind : kinds[i]->kind);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

const fs_recipe *fs_recipe_of(const fs_recipe_model *m) { return m->r; }

void fs_recipe_model_free(fs_recipe_model *m)
{
    if (!m)
        return;
    if (m->m)
        m->r->free(m->m);
    free(m->bbs);
    free(m);
}

/* ---- errors ---- */

/* Where an engine status arose: each place has its own Azure codes. */
typedef enum at {
    AT_TRAIN,
    AT_PREDICT,
    AT_EVALUATE,
    AT_SAVE,
} at;

static fs_code code_for(at where, eng_status st)
{
    switch (where) {
    case AT_TRAIN:
        if (st == ENG_ENOBUDGET)
            return FS_CODE_NOT_ENOUGH_BUDGET;
        if (st == ENG_EDIVERGED)
            return FS_CODE_DIVERGED;
        if (st == ENG_EINVAL || st == ENG_ENOTFOUND || st == ENG_EFORMAT || st == ENG_EUNSUPPORTED)
            return FS_CODE_DATASET_CORRUPT;
        return FS_CODE_UNKNOWN;
    case AT_PREDICT:
        if (st == ENG_EFORMAT || st == ENG_EUNSUPPORTED)
            return FS_CODE_INVALID_IMAGE_FORMAT;
        return st == ENG_ENOTFOUND ? FS_CODE_MODEL_NOT_FOUND : FS_CODE_INTERNAL_SERVER_ERROR;
    case AT_EVALUATE:
        return st == ENG_ENOMEM ? FS_CODE_UNKNOWN : FS_CODE_DATASET_ANNOTATIONS_INVALID;
    case AT_SAVE: return st == ENG_ENOSPC ? FS_CODE_STORE_FULL : FS_CODE_UNKNOWN;
    }
    return FS_CODE_UNKNOWN;
}

/* The recipe status for an engine failure st (message msg) at where. */
static fs_recipe_status engine_failed(fs_recipe_err *err, at where, eng_status st, const char *msg)
{
    if (st == ENG_EABORTED)
        return FS_RECIPE_EABORTED;
    fs_recipe_set_err(err, code_for(where, st), msg);
    return FS_RECIPE_EFAIL;
}

static fs_recipe_status out_of_memory(fs_recipe_err *err)
{
    fs_recipe_set_err(err, FS_CODE_UNKNOWN, "out of memory");
    return FS_RECIPE_EFAIL;
}

/* ---- the model and its backbones ---- */

/* A new model of kind r on the backbones of dirs; when engine_model is set,
 * every backbone it needs must be among them (backboneNotFound). On failure
 * engine_model is freed too. */
static fs_recipe_status model_new(const fs_recipe *r, void *engine_model, const char *const *dirs,
                                  int n, fs_recipe_model **out, fs_recipe_err *err)
{
    *out = NULL;
    fs_recipe_model *m = calloc(1, sizeof *m);
    if (m) {
        m->r = r;
        m->m = engine_model;
        m->bbs = calloc((size_t)n + 1, sizeof *m->bbs);
    }
    if (!m || !m->bbs) {
        if (!m && engine_model)
            r->free(engine_model);
        fs_recipe_model_free(m);
        return out_of_memory(err);
    }
    m->nbb = fs_models_backbones_open(dirs, n, m->bbs);
    for (int i = 0; engine_model; i++) {
        const char *sum = NULL;
        const char *name = r->backbone_needed(engine_model, i, &sum);
        if (!name)
            break;
        int found = 0;
        for (int k = 0; k < m->nbb && !found; k++) {
            const eng_backbone_info *inf = eng_backbone_get_info(m->bbs[k]);
            found = strcmp(inf->name, name) == 0 && (!sum || strcmp(inf->checksum, sum) == 0);
        }
        if (!found) {
            err->code = FS_CODE_BACKBONE_NOT_FOUND;
            snprintf(err->msg, sizeof err->msg,
                     "the model needs backbone \"%s\" with weights checksum %.16s..., which is "
                     "not installed (see backbones/)",
                     name, sum ? sum : "?");
            fs_recipe_model_free(m);
            return FS_RECIPE_EFAIL;
        }
    }
    *out = m;
    return FS_RECIPE_OK;
}

void fs_recipe_describe(const fs_recipe_model *m, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0;; i++) {
        const char *sum = NULL;
        const char *name = m->r->backbone_needed(m->m, i, &sum);
        if (!name || len + 1 >= cap)
            break;
        int w = snprintf(buf + len, cap - len, "%s%s (sha256 %.12s)", i ? ", " : "", name,
                         sum ? sum : "?");
        if (w < 0)
            break;
        len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
    }
}

/* ---- samples ---- */

static int find_category(const char *const *cats, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cats[i], name) == 0)
            return i;
    return -1;
}

/* A dataset turned into samples for the engine, its categories mapped onto
 * another category list by name. */
typedef struct samples {
    eng_sample *s;
    eng_box *boxes; /* the one array every sample's boxes point into */
    int n;
    int dropped_images; /* labelled_only: without a label of the categories */
    int dropped_boxes;  /* of a category not in the list */
    int no_boxes;       /* images left without a box */
} samples;

static void samples_free(samples *x)
{
    free(x->s);
    free(x->boxes);
    memset(x, 0, sizeof *x);
}

/* The samples of ds with labels and boxes mapped onto cats by name (cats
 * NULL: as they are). Boxes of other categories are dropped; with
 * r->labelled_only, so are images without such a label. 0, or -1 when out of
 * memory. */
static int samples_of(const fs_recipe *r, const fs_recipe_dataset *ds, const char *const *cats,
                      int ncat, samples *x)
{
    memset(x, 0, sizeof *x);
    size_t nb = 0;
    for (int i = 0; i < ds->nimages; i++)
        nb += (size_t)ds->images[i].nboxes;
    x->s = calloc((size_t)ds->nimages + 1, sizeof *x->s);
    x->boxes = calloc(nb + 1, sizeof *x->boxes);
    if (!x->s || !x->boxes) {
        samples_free(x);
        return -1;
    }
    size_t k = 0;
    for (int i = 0; i < ds->nimages; i++) {
        const eng_sample *im = &ds->images[i];
        int label = -1;
        if (im->label >= 0 && im->label < ds->ncategories)
            label = cats ? find_category(cats, ncat, ds->categories[im->label]) : im->label;
        if (label < 0 && r->labelled_only) {
            x->dropped_images++;
            continue;
        }
        eng_sample *s = &x->s[x->n++];
        *s = *im;
        s->label = label;
        s->boxes = x->boxes + k;
        s->nboxes = 0;
        for (int j = 0; j < im->nboxes; j++) {
            int c = im->boxes[j].category;
            if (c < 0 || c >= ds->ncategories)
                c = -1;
            else if (cats)
                c = find_category(cats, ncat, ds->categories[c]);
            if (c < 0) {
                x->dropped_boxes++;
                continue;
            }
            x->boxes[k] = im->boxes[j];
            x->boxes[k++].category = c;
            s->nboxes++;
        }
        x->no_boxes += s->nboxes == 0;
    }
    return 0;
}

/* ---- training ---- */

static void log_line(const fs_recipe_hooks *h, const char *fmt, int n)
{
    if (n && h->log) {
        char line[300];
        snprintf(line, sizeof line, fmt, n);
        h->log(h->ctx, line);
    }
}

fs_recipe_status fs_recipe_train(const fs_recipe *r, const fs_recipe_train_in *in,
                                 fs_recipe_model **model, char **evaluation, fs_recipe_err *err)
{
    *model = NULL;
    *evaluation = NULL;
    fs_recipe_model *m = NULL;
    if (model_new(r, NULL, in->backbone_dirs, in->nbackbones, &m, err) != FS_RECIPE_OK)
        return FS_RECIPE_EFAIL;
    if (m->nbb == 0) {
        fs_recipe_model_free(m);
        fs_recipe_set_err(err, FS_CODE_UNKNOWN,
                          "no installed backbone could be opened (run " ENG_BACKBONE_FIX_COMMAND
                          ")");
        return FS_RECIPE_EFAIL;
    }
    const fs_recipe_dataset *tr = in->train, *te = in->test;
    samples trs, tes = {0};
    if (samples_of(r, tr, NULL, 0, &trs) != 0 ||
        (te && samples_of(r, te, tr->categories, tr->ncategories, &tes) != 0)) {
        samples_free(&trs);
        fs_recipe_model_free(m);
        return out_of_memory(err);
    }
    log_line(&in->hooks, "%d training images without a label are not used", trs.dropped_images);
    if (r->wants_detection == FS_RECIPE_BOXES)
        log_line(&in->hooks,
                 "%d training images have no boxes: they are background, every place in them "
                 "a negative",
                 trs.no_boxes);
    log_line(&in->hooks,
             "%d test images whose category is not in the training dataset are not used",
             tes.dropped_images);
    log_line(&in->hooks, "%d test boxes whose category is not in the training dataset are not used",
             tes.dropped_boxes);
    fs_recipe_status rs = FS_RECIPE_OK;
    if (te && tes.n == 0) {
        err->code = FS_CODE_DATASET_CORRUPT;
        snprintf(err->msg, sizeof err->msg,
                 "test dataset \"%s\": no image has a category of the training dataset", te->name);
        rs = FS_RECIPE_EFAIL;
    } else {
        eng_train_args a = {
            .train = trs.s,
            .ntrain = trs.n,
            .test = te ? tes.s : NULL,
            .ntest = tes.n,
            .test_name = te ? te->name : NULL,
            .categories = tr->categories,
            .ncat = tr->ncategories,
            .backbones = m->bbs,
            .nbackbones = m->nbb,
            .budget_seconds = in->budget_seconds,
            .threads = in->threads,
            .seed = in->seed,
            .cache_dir = in->cache_dir,
            .hooks = fs_models_engine_hooks(&in->hooks),
        };
        eng_diag d = {{0}};
        eng_status st = r->train(&a, &m->m, evaluation, &d);
        if (st != ENG_OK)
            rs = engine_failed(err, AT_TRAIN, st, d.msg);
    }
    samples_free(&trs);
    samples_free(&tes);
    if (rs != FS_RECIPE_OK) {
        fs_recipe_model_free(m);
        free(*evaluation);
        *evaluation = NULL;
        return rs;
    }
    *model = m;
    return FS_RECIPE_OK;
}

/* ---- prediction ---- */

/* Azure's image checks: readable, file size, format, dimensions. */
static fs_recipe_status check_image(const char *path, int *w, int *h, fs_recipe_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fs_recipe_set_err(err, FS_CODE_INVALID_IMAGE_URL, "the image file cannot be read");
        return FS_RECIPE_EFAIL;
    }
    if (st.st_size > IMG_MAX_BYTES) {
        err->code = FS_CODE_INVALID_IMAGE_SIZE;
        snprintf(err->msg, sizeof err->msg, "image is %lld bytes; at most " IMG_MAX_BYTES_TEXT,
                 (long long)st.st_size);
        return FS_RECIPE_EFAIL;
    }
    eng_image_info info;
    eng_diag d = {{0}};
    if (eng_image_probe_file(path, &info, &d) != ENG_OK) {
        err->code = FS_CODE_INVALID_IMAGE_FORMAT;
        snprintf(err->msg, sizeof err->msg, "%s (formats: " IMG_FORMATS_TEXT ")", d.msg);
        return FS_RECIPE_EFAIL;
    }
    *w = eng_image_info_display_w(&info);
    *h = eng_image_info_display_h(&info);
    if (!img_sides_ok(*w, *h)) {
        err->code = FS_CODE_INVALID_IMAGE_SIZE;
        snprintf(err->msg, sizeof err->msg, "image is %dx%d; " IMG_SIDES_TEXT, *w, *h);
        return FS_RECIPE_EFAIL;
    }
    return FS_RECIPE_OK;
}

fs_recipe_status fs_recipe_predict(const fs_recipe_model *m, const char *path, int draw,
                                   fs_recipe_prediction *out, fs_recipe_err *err)
{
    memset(out, 0, sizeof *out);
    int w = 0, h = 0;
    if (check_image(path, &w, &h, err) != FS_RECIPE_OK)
        return FS_RECIPE_EFAIL;
    return m->r->predict(m->m, m->bbs, m->nbb, path, w, h, draw, out, err);
}

fs_recipe_status fs_recipe_engine_predict_failed(fs_recipe_err *err, eng_status st, const char *msg)
{
    return engine_failed(err, AT_PREDICT, st, msg);
}

fs_recipe_status fs_recipe_predict_scores(const fs_recipe *r, fs_recipe_scores_fn scores,
                                          fs_recipe_threshold_fn threshold, const void *model,
                                          eng_backbone *const *bbs, int nbb, const char *path,
                                          int width, int height, fs_recipe_prediction *out,
                                          fs_recipe_err *err)
{
    int ncat = r->ncat(model);
    float *sc = calloc((size_t)ncat, sizeof *sc);
    ranked *rk = calloc((size_t)ncat, sizeof *rk);
    out->classes = calloc((size_t)ncat, sizeof *out->classes);
    fs_recipe_status rs = FS_RECIPE_OK;
    eng_diag d = {{0}};
    eng_status st = ENG_ENOMEM;
    if (sc && rk && out->classes)
        st = scores(model, bbs, nbb, path, sc, &d);
    if (st == ENG_ENOMEM && !d.msg[0])
        snprintf(d.msg, sizeof d.msg, "out of memory");
    if (st != ENG_OK) {
        fs_recipe_prediction_release(out);
        rs = fs_recipe_engine_predict_failed(err, st, d.msg);
    } else {
        int k = 0;
        for (int i = 0; i < ncat; i++)
            if (!threshold || sc[i] >= threshold(model, i))
                rk[k++] = (ranked){sc[i], i};
        ranked_sort(rk, (size_t)k);
        for (int i = 0; i < k; i++)
            out->classes[i] =
                (fs_recipe_class){r->category(model, rk[i].index), (float)rk[i].score};
        out->nclasses = k;
        out->width = width;
        out->height = height;
    }
    free(sc);
    free(rk);
    return rs;
}

/* ---- evaluation ---- */

fs_recipe_status fs_recipe_evaluate(const fs_recipe_model *m, const fs_recipe_dataset *ds,
                                    int threads, const fs_recipe_hooks *hooks, char **metrics,
                                    char **predictions, fs_recipe_err *err)
{
    const fs_recipe *r = m->r;
    *metrics = NULL;
    *predictions = NULL;
    int ncat = r->ncat(m->m), known = 0;
    const char **cats = calloc((size_t)ncat + 1, sizeof *cats);
    long long *ids = calloc((size_t)ncat + 1, sizeof *ids);
    samples s = {0};
    int ok = cats && ids;
    for (int i = 0; ok && i < ncat; i++) {
        cats[i] = r->category(m->m, i);
        int k = find_category(ds->categories, ds->ncategories, cats[i]);
        ids[i] = k >= 0 ? (long long)ds->category_ids[k] : (long long)(i + 1);
        known += k >= 0;
    }
    fs_recipe_status rs = FS_RECIPE_OK;
    if (!ok || samples_of(r, ds, cats, ncat, &s) != 0) {
        rs = out_of_memory(err);
    } else if (known == 0 || s.n == 0) {
        err->code = FS_CODE_DATASET_ANNOTATIONS_INVALID;
        snprintf(err->msg, sizeof err->msg,
                 "dataset \"%s\": no image is labelled with a category the model knows", ds->name);
        rs = FS_RECIPE_EFAIL;
    } else {
        eng_eval_opts o = {
            .threads = threads,
            .abort = hooks ? hooks->abort : NULL,
            .ctx = hooks ? hooks->ctx : NULL,
            .dataset_name = ds->name,
            .category_ids = ids,
            .detail = hooks && hooks->detail ? fs_models_hooks_detail : NULL,
            .detail_ctx = (void *)hooks,
            .probs = hooks && hooks->probs ? fs_models_hooks_probs : NULL,
            .probs_ctx = (void *)hooks,
            .dets = hooks && hooks->dets ? fs_models_hooks_dets : NULL,
            .dets_ctx = (void *)hooks,
        };
        eng_diag d = {{0}};
        eng_status st = r->evaluate(m->m, m->bbs, m->nbb, s.s, s.n, &o, metrics, predictions, &d);
        if (st != ENG_OK)
            rs = engine_failed(err, AT_EVALUATE, st, d.msg);
        else if (r->after_evaluate)
            r->after_evaluate(ds, predictions);
    }
    free(cats);
    free(ids);
    samples_free(&s);
    return rs;
}

/* ---- files ---- */

fs_recipe_status fs_recipe_save(const fs_recipe_model *m, const char *path, fs_recipe_err *err)
{
    eng_diag d = {{0}};
    eng_status st = m->r->save(m->m, path, &d);
    return st == ENG_OK ? FS_RECIPE_OK : engine_failed(err, AT_SAVE, st, d.msg);
}

fs_recipe_status fs_recipe_export_onnx(const fs_recipe_model *m, uint8_t **out, size_t *len,
                                       fs_recipe_err *err)
{
    *out = NULL;
    *len = 0;
    if (!m->r->export_onnx) {
        err->code = FS_CODE_INTERNAL_SERVER_ERROR;
        snprintf(err->msg, sizeof err->msg, "a %s has no ONNX export in this build", m->r->kind);
        return FS_RECIPE_EFAIL;
    }
    eng_diag d = {{0}};
    eng_status st = m->r->export_onnx(m->m, m->bbs, m->nbb, out, len, &d);
    if (st == ENG_OK)
        return FS_RECIPE_OK;
    err->code = FS_CODE_INTERNAL_SERVER_ERROR;
    snprintf(err->msg, sizeof err->msg, "%s", d.msg);
    return FS_RECIPE_EFAIL;
}

/* The engine model in f: of the kind f names, or (an old file without one)
 * of the first kind that reads it. */
static fs_recipe_status read_kind(const eng_modelfile *f, const fs_recipe **r, void **em,
                                  fs_recipe_err *err)
{
    const char *kind = eng_modelfile_meta(f, "kind");
    eng_diag first = {{0}};
    for (int i = 0; i < NKINDS; i++) {
        if (kind && strcmp(kind, kinds[i]->kind) != 0)
            continue;
        eng_diag d = {{0}};
        if (kinds[i]->from_file(f, em, &d) == ENG_OK) {
            *r = kinds[i];
            return FS_RECIPE_OK;
        }
        if (!first.msg[0])
            first = d;
    }
    err->code = FS_CODE_INVALID_MODEL;
    if (first.msg[0])
        snprintf(err->msg, sizeof err->msg, "model.safetensors: %s", first.msg);
    else
        snprintf(err->msg, sizeof err->msg,
                 "model.safetensors: kind \"%.32s\" is not one this build knows", kind);
    return FS_RECIPE_EFAIL;
}

fs_recipe_status fs_recipe_load(const char *path, const char *const *dirs, int n,
                                fs_recipe_model **model, fs_recipe_err *err)
{
    *model = NULL;
    eng_modelfile *f = NULL;
    eng_diag d = {{0}};
    if (eng_modelfile_read(path, &f, &d) != ENG_OK) {
        err->code = FS_CODE_INVALID_MODEL;
        snprintf(err->msg, sizeof err->msg, "model.safetensors: %s", d.msg);
        return FS_RECIPE_EFAIL;
    }
    const fs_recipe *r = NULL;
    void *em = NULL;
    fs_recipe_status rs = read_kind(f, &r, &em, err);
    eng_modelfile_free(f);
    if (rs != FS_RECIPE_OK)
        return rs;
    return model_new(r, em, dirs, n, model, err);
}

void fs_recipe_prediction_release(fs_recipe_prediction *p)
{
    if (!p)
        return;
    free(p->classes);
    free(p->objects);
    free(p->boxes_jpg);
    memset(p, 0, sizeof *p);
}
