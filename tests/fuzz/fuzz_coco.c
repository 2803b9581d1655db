/* fuzz_coco.c: libFuzzer target for the COCO loader and validator. Parses
 * the input, invents what the caller could have found on disk for each
 * image (derived from the input, so runs are reproducible), validates,
 * writes status.json and the status line, and merges the dataset with
 * itself. Invariants that trap: lookup candidates never leave the folder,
 * status.json always parses as JSON, a failed parse yields no dataset. */
#include "coco.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int escapes(const char *p)
{
    if (!p[0] || p[0] == '/' || strchr(p, '\\'))
        return 1;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 2 && s[0] == '.' && s[1] == '.') || (n == 1 && s[0] == '.'))
            return 1;
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
}

static void exercise(const coco_dataset *ds, uint32_t seed)
{
    size_t ni = coco_dataset_image_count(ds);
    coco_image_file *files = calloc(ni ? ni : 1, sizeof *files);
    static const char *const formats[] = {"jpeg", "png",  "gif", "bmp", "webp",
                                          "ico",  "tiff", "mpo", "svg", NULL};
    for (size_t i = 0; i < ni; i++) {
        uint32_t h = (seed ^ (uint32_t)i) * 2654435761u;
        const coco_image *im = coco_dataset_image(ds, i);
        coco_candidates c;
        if (im->file_name &&
            coco_image_candidates(im->file_name, im->file_name_len, &c, NULL) == COCO_OK)
            for (int k = 0; k < c.n; k++)
                if (escapes(c.path[k]))
                    __builtin_trap();
        (void)coco_url_classify(im->url);
        files[i].state = (coco_file_state)(h % 5);
        files[i].size = (h >> 3) % 3 ? 1000 : ((uint64_t)25 << 20);
        files[i].format = formats[(h >> 5) % 10];
        files[i].width = (h >> 9) % 2 ? (int)im->width : (int)((h >> 10) % 12000);
        files[i].height = (h >> 9) % 2 ? (int)im->height : (int)((h >> 14) % 12000);
        files[i].orientation = (int)((h >> 20) % 9);
        files[i].error = (h >> 24) % 7 == 0 ? "truncated jpeg" : NULL;
    }
    for (size_t i = 0; i < coco_dataset_annotation_count(ds); i++) {
        double rel[4];
        (void)coco_annotation_box_relative(ds, coco_dataset_annotation(ds, i), rel, NULL);
    }
    const coco_image_file *use = seed & 1 ? files : NULL;
    coco_report *r = NULL;
    if (coco_validate(ds, use, &r) == COCO_OK) {
        char line[300];
        coco_report_status_line(r, line, sizeof line);
        if (seed & 2)
            coco_report_apply_training_rules(r);
        for (size_t i = 0; i <= ni; i++)
            (void)coco_report_image_status(r, i);
        char *js = coco_report_to_json(r);
        if (js) {
            cJSON *root = cJSON_Parse(js);
            if (!root)
                __builtin_trap();
            cJSON_Delete(root);
            free(js);
        }
        coco_report_free(r);
    }
    free(files);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    coco_limits lim = {1 << 20, 0, 20000};
    coco_dataset *ds = NULL;
    coco_diag d;
    memset(&d, 0, sizeof d);
    coco_status st = coco_dataset_parse((const char *)data, size, &lim, &ds, &d);
    if (st != COCO_OK) {
        if (ds || !d.msg[0])
            __builtin_trap();
        return 0;
    }
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        seed = (seed ^ data[i]) * 16777619u;
    exercise(ds, seed);
    const coco_dataset *parts[2] = {ds, ds};
    coco_dataset *m = NULL;
    if (coco_dataset_merge(parts, 2, &m, NULL) == COCO_OK) {
        exercise(m, seed >> 1);
        coco_dataset_free(m);
    }
    coco_dataset_free(ds);
    return 0;
}
