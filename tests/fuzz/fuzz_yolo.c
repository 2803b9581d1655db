/* fuzz_yolo.c: libFuzzer target for the YOLO reader (coco/yolo.c): the
 * input's first NUL-separated piece is the class-name file (data.yaml when
 * the input starts with a byte below 0x80, else classes.txt), the rest are
 * label files, read against a fixed folder of images; see fuzz_formats.h
 * for the invariants. */
#include "fuzz_formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[FUZZ_MAX_FILES] = {
        "data.yaml",     "labels/f0.txt",   "labels/f1.txt",     "labels/s/f2.txt",
        "labels/f9.txt", "x/labels/f0.txt", "labels/labels.txt", "labels/f0.txt"};
    coco_src_file files[FUZZ_MAX_FILES];
    size_t n = fuzz_split(data, size, files, paths);
    if (size && data[0] >= 0x80)
        files[0].path = "classes.txt";
    coco_dataset *ds = NULL;
    coco_diag d;
    if (coco_yolo_parse(files + 1, n - 1, &files[0], fuzz_images, FUZZ_N_IMAGES, &ds, &d) !=
        COCO_OK) {
        if (ds || d.status != COCO_ENOMEM)
            __builtin_trap();
        return 0;
    }
    fuzz_check(ds);
    coco_dataset_free(ds);
    return 0;
}
