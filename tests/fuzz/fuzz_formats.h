/* fuzz_formats.h: what fuzz_voc.c and fuzz_yolo.c share: the input split
 * into files at NUL bytes, a fixed folder of images, and the checks run on
 * every dataset the readers return. Invariants that trap: a reader never
 * fails on content (only EINVAL/ENOMEM), boxes stay relative (a box read
 * as pixels would change a dataset's units), status.json and the export
 * parse as JSON, and the export reads back as a COCO file with the same
 * counts. */
#ifndef VFS_FUZZ_FORMATS_H
#define VFS_FUZZ_FORMATS_H

#include "coco.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_FILES 8

static const coco_src_image fuzz_images[] = {
    {"JPEGImages/f0.jpg", 200, 140}, {"JPEGImages/f1.png", 0, 0}, {"d/f2.jpg", 640, 480},
    {"images/f0.jpg", 200, 140},     {"images/f1.png", 51, 51},   {"images/s/f2.jpg", 0, 0},
};
#define FUZZ_N_IMAGES (sizeof fuzz_images / sizeof fuzz_images[0])

/* Splits data at NUL bytes into at most FUZZ_MAX_FILES pieces. */
static size_t fuzz_split(const uint8_t *data, size_t size, coco_src_file *out,
                         const char *const *paths)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < FUZZ_MAX_FILES; i++) {
        if (i == size || (data[i] == 0 && n + 1 < FUZZ_MAX_FILES)) {
            out[n].path = paths[n];
            out[n].data = (const char *)data + start;
            out[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

static void fuzz_check(coco_dataset *ds)
{
    coco_info info;
    coco_dataset_info(ds, &info);
    if (info.units == COCO_UNITS_PIXELS)
        __builtin_trap();
    size_t ni = coco_dataset_image_count(ds);
    coco_image_file *files = calloc(ni ? ni : 1, sizeof *files);
    int *sizes = calloc(2 * (ni ? ni : 1), sizeof *sizes);
    for (size_t i = 0; i < ni; i++) {
        const coco_image *im = coco_dataset_image(ds, i);
        files[i].state = i % 3 ? COCO_FILE_FOUND : COCO_FILE_MISSING;
        files[i].format = "jpeg";
        files[i].size = 1000;
        files[i].width = 200;
        files[i].height = 140;
        sizes[2 * i] = 200;
        sizes[2 * i + 1] = 140;
        if (!im->origin || !im->file_name)
            __builtin_trap();
    }
    coco_report *r = NULL;
    if (coco_validate(ds, files, &r) == COCO_OK) {
        char line[300];
        coco_report_status_line(r, line, sizeof line);
        char *js = coco_report_to_json(r);
        cJSON *root = js ? cJSON_Parse(js) : NULL;
        if (js && !root)
            __builtin_trap();
        cJSON_Delete(root);
        free(js);
        coco_report_free(r);
    }
    size_t len = 0;
    char *ex = coco_dataset_export_json(ds, COCO_KIND_DETECTION, NULL, sizes, &len);
    if (ex) {
        coco_dataset *back = NULL;
        if (coco_dataset_parse(ex, len, NULL, &back, NULL) != COCO_OK)
            __builtin_trap();
        coco_info bi;
        coco_dataset_info(back, &bi);
        if (bi.images != info.images || bi.categories != info.categories ||
            bi.units == COCO_UNITS_PIXELS)
            __builtin_trap();
        coco_dataset_free(back);
        free(ex);
    }
    free(sizes);
    free(files);
}

#endif
