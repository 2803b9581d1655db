/* fuzz_modelfile.c: libFuzzer target for the model file (safetensors)
 * reader and the classifier loader on top of it: any bytes must give a
 * status, never a crash or a leak. When the file parses, every accessor is
 * exercised and the classifier checks run. */
#include "engine.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_modelfile *m = NULL;
    eng_diag d;
    if (eng_modelfile_parse(data, size, &m, &d) == ENG_OK) {
        for (int i = 0; i < eng_modelfile_ntensors(m); i++) {
            const eng_tensor *t = eng_modelfile_tensor(m, eng_modelfile_tensor_name(m, i));
            if (!t)
                __builtin_trap();
        }
        (void)eng_modelfile_meta(m, "kind");
        eng_classifier *c = NULL;
        if (eng_classifier_from_file(m, &c, &d) == ENG_OK) {
            for (int i = 0; i < eng_cls_ncat(c); i++)
                (void)eng_cls_category(c, i);
            (void)eng_cls_backbone_needed(c, 0, NULL);
            (void)eng_cls_recipe(c);
        }
        eng_classifier_free(c);
        eng_modelfile_free(m);
    }
    return 0;
}
