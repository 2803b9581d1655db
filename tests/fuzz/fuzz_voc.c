/* fuzz_voc.c: libFuzzer target for the Pascal VOC reader (coco/voc.c): the
 * input is up to 8 XML files separated by NUL bytes, read against a fixed
 * folder of images; see fuzz_formats.h for the invariants. */
#include "fuzz_formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[FUZZ_MAX_FILES] = {
        "Annotations/f0.xml", "Annotations/f1.xml", "d/f2.xml", "f3.xml",
        "Annotations/f4.xml", "d/e/f5.xml",         "x.xml",    "Annotations/f0.xml"};
    coco_src_file files[FUZZ_MAX_FILES];
    size_t n = fuzz_split(data, size, files, paths);
    coco_dataset *ds = NULL;
    coco_diag d;
    if (coco_voc_parse(files, n, fuzz_images, FUZZ_N_IMAGES, &ds, &d) != COCO_OK) {
        if (ds || d.status != COCO_ENOMEM)
            __builtin_trap();
        return 0;
    }
    fuzz_check(ds);
    coco_dataset_free(ds);
    return 0;
}
