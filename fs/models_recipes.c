/* models_recipes.c: the registry of model kinds (models_recipe.h).
 *
 * Each kind lives in its own file and defines a `const fs_recipe`; this
 * table is the only place that lists them. Both kinds are referenced
 * strongly (a weak reference would not pull fs/models_det.c out of the
 * static library vfs_fs).
 */
#include "models_recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const fs_recipe fs_recipe_classifier;
extern const fs_recipe fs_recipe_detector;

static const fs_recipe *recipe_at(int i)
{
    switch (i) {
    case 0: return &fs_recipe_classifier;
    case 1: return &fs_recipe_detector;
    default: return NULL;
    }
}
#define N_RECIPES 2

const fs_recipe *fs_recipe_for_kind(const char *kind)
{
    for (int i = 0; kind && i < N_RECIPES; i++) {
        const fs_recipe *r = recipe_at(i);
        if (r && strcmp(r->kind, kind) == 0)
            return r;
    }
    return NULL;
}

fs_recipe_status fs_recipe_load_any(const char *path, const char *const *backbone_dirs,
                                    int nbackbones, const fs_recipe **recipe, void **model,
                                    fs_recipe_err *err)
{
    fs_recipe_err first = {{0}, {0}};
    int tried = 0;
    for (int i = 0; i < N_RECIPES; i++) {
        const fs_recipe *r = recipe_at(i);
        if (!r || !r->load)
            continue;
        fs_recipe_err e = {{0}, {0}};
        void *m = NULL;
        if (r->load(path, backbone_dirs, nbackbones, &m, &e) == FS_RECIPE_OK) {
            *recipe = r;
            *model = m;
            return FS_RECIPE_OK;
        }
        /* keep the most telling error: one from the recipe the file is for */
        if (!tried++ || strcmp(first.code, "wrongKind") == 0)
            first = e;
    }
    if (!tried)
        snprintf(first.msg, sizeof first.msg, "no model kind is built in");
    if (!first.code[0] || strcmp(first.code, "wrongKind") == 0)
        snprintf(first.code, sizeof first.code, "invalidModel");
    *err = first;
    *recipe = NULL;
    *model = NULL;
    return FS_RECIPE_EFAIL;
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
