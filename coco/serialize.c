/* serialize.c: a coco_dataset written back as one COCO file (what coco
 * keeps: ids, names, urls, sizes, boxes, areas), through jsonw so that no
 * name or url can break the output. fs/ uses it to store the merge of the
 * annotation files a dataset.json names. */
#include "coco_int.h"

#include <stdlib.h>

static void write_images(jsonw *w, const coco_dataset *ds)
{
    jsonw_key(w, "images");
    jsonw_arr(w);
    size_t n = coco_dataset_image_count(ds);
    for (size_t i = 0; i < n; i++) {
        const coco_image *im = coco_dataset_image(ds, i);
        jsonw_obj(w);
        if (im->flags & COCO_HAS_ID)
            jsonw_kint(w, "id", (long long)im->id);
        if (im->file_name) {
            jsonw_key(w, "file_name");
            jsonw_strn(w, im->file_name, im->file_name_len);
        }
        if (im->url)
            jsonw_kstr(w, im->flags & COCO_URL_IS_COCO ? "coco_url" : "absolute_url", im->url);
        if (im->flags & COCO_HAS_SIZE) {
            jsonw_kint(w, "width", (long long)im->width);
            jsonw_kint(w, "height", (long long)im->height);
        }
        jsonw_end(w);
    }
    jsonw_end(w);
}

static void write_annotations(jsonw *w, const coco_dataset *ds)
{
    jsonw_key(w, "annotations");
    jsonw_arr(w);
    size_t n = coco_dataset_annotation_count(ds);
    for (size_t i = 0; i < n; i++) {
        const coco_annotation *a = coco_dataset_annotation(ds, i);
        jsonw_obj(w);
        if (a->flags & COCO_HAS_ID)
            jsonw_kint(w, "id", (long long)a->id);
        if (a->flags & COCO_HAS_IMAGE_ID)
            jsonw_kint(w, "image_id", (long long)a->image_id);
        if (a->flags & COCO_HAS_CAT_ID)
            jsonw_kint(w, "category_id", (long long)a->category_id);
        if (a->has_bbox) {
            jsonw_key(w, "bbox");
            jsonw_arr(w);
            for (int k = 0; k < 4; k++)
                jsonw_num(w, a->bbox[k]);
            jsonw_end(w);
        }
        if (a->flags & COCO_HAS_AREA)
            jsonw_knum(w, "area", a->area);
        jsonw_end(w);
    }
    jsonw_end(w);
}

static void write_categories(jsonw *w, const coco_dataset *ds)
{
    jsonw_key(w, "categories");
    jsonw_arr(w);
    size_t n = coco_dataset_category_count(ds);
    for (size_t i = 0; i < n; i++) {
        const coco_category *c = coco_dataset_category(ds, i);
        jsonw_obj(w);
        jsonw_kint(w, "id", (long long)c->id);
        if (c->name)
            jsonw_kstr(w, "name", c->name);
        jsonw_end(w);
    }
    jsonw_end(w);
}

char *coco_dataset_to_json(const coco_dataset *ds, coco_kind kind, size_t *len)
{
    jsonw w;
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_obj(&w);
    jsonw_kstr(&w, "task",
               kind == COCO_KIND_DETECTION    ? "imageObjectDetection"
               : kind == COCO_KIND_MULTILABEL ? "imageMultilabelClassification"
                                              : "imageClassification");
    write_images(&w, ds);
    write_annotations(&w, ds);
    write_categories(&w, ds);
    jsonw_end(&w);
    return jsonw_finish(&w, len);
}

char *coco_dataset_export_json(const coco_dataset *ds, coco_kind kind,
                               const char *const *file_names, const int *sizes, size_t *len)
{
    jsonw w;
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_obj(&w);
    jsonw_kstr(&w, "task",
               kind == COCO_KIND_DETECTION    ? "imageObjectDetection"
               : kind == COCO_KIND_MULTILABEL ? "imageMultilabelClassification"
                                              : "imageClassification");
    jsonw_key(&w, "images");
    jsonw_arr(&w);
    size_t n = coco_dataset_image_count(ds);
    for (size_t i = 0; i < n; i++) {
        const coco_image *im = coco_dataset_image(ds, i);
        jsonw_obj(&w);
        jsonw_kint(&w, "id", (long long)im->id);
        if (file_names && file_names[i])
            jsonw_kstr(&w, "file_name", file_names[i]);
        else if (im->file_name) {
            jsonw_key(&w, "file_name");
            jsonw_strn(&w, im->file_name, im->file_name_len);
        }
        if (im->url)
            jsonw_kstr(&w, im->flags & COCO_URL_IS_COCO ? "coco_url" : "absolute_url", im->url);
        long long iw = im->flags & COCO_HAS_SIZE ? (long long)im->width : 0;
        long long ih = im->flags & COCO_HAS_SIZE ? (long long)im->height : 0;
        if (!iw && sizes) {
            iw = sizes[2 * i];
            ih = sizes[2 * i + 1];
        }
        if (iw > 0 && ih > 0) {
            jsonw_kint(&w, "width", iw);
            jsonw_kint(&w, "height", ih);
        }
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_key(&w, "annotations");
    jsonw_arr(&w);
    n = coco_dataset_annotation_count(ds);
    int px = coco_dataset_units(ds) == COCO_UNITS_PIXELS;
    for (size_t i = 0; i < n; i++) {
        const coco_annotation *a = coco_dataset_annotation(ds, i);
        double r[4];
        if (a->has_bbox && coco_annotation_box_relative(ds, a, r, NULL) != COCO_OK) {
            /* no declared size: the caller's */
            long ii = coco_dataset_find_image(ds, a->image_id);
            if (ii < 0 || !sizes || sizes[2 * ii] <= 0 || sizes[2 * ii + 1] <= 0)
                continue;
            double W = sizes[2 * ii], H = sizes[2 * ii + 1];
            r[0] = px ? a->bbox[0] / W : a->bbox[0];
            r[1] = px ? a->bbox[1] / H : a->bbox[1];
            r[2] = px ? a->bbox[2] / W : a->bbox[2];
            r[3] = px ? a->bbox[3] / H : a->bbox[3];
        }
        jsonw_obj(&w);
        jsonw_kint(&w, "id", (long long)a->id);
        jsonw_kint(&w, "image_id", (long long)a->image_id);
        jsonw_kint(&w, "category_id", (long long)a->category_id);
        if (a->has_bbox) {
            jsonw_key(&w, "bbox");
            jsonw_arr(&w);
            for (int k = 0; k < 4; k++)
                jsonw_num(&w, r[k]);
            jsonw_end(&w);
            jsonw_knum(&w, "area", r[2] * r[3]);
        }
        jsonw_end(&w);
    }
    jsonw_end(&w);
    write_categories(&w, ds);
    jsonw_end(&w);
    return jsonw_finish(&w, len);
}
