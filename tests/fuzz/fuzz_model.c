/* fuzz_model.c: libFuzzer target for the tfjs graph-model loader.
 *
 * Input: model.json bytes, then a NUL byte, then the weight bytes (no NUL:
 * everything is json, no weights). A model that loads is also run when it
 * is small (at most 64 nodes, a declared input of at most 4096 elements and
 * every output shape known and at most 65536 elements), requesting every
 * node, so the executor and the ops see fuzzed graphs too.
 */
#include "engine.h"
#include "runtime_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void try_run(const eng_model *m)
{
    if (m->n_nodes > 64)
        return;
    int64_t dim[ENG_MAX_DIMS];
    int nd = eng_model_input_shape(m, dim);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (dim[i] < 0)
            dim[i] = 1;
        if (dim[i] == 0 || dim[i] > 4096)
            return;
        n *= dim[i];
        if (n > 4096)
            return;
    }
    const char *names[64];
    int k = 0;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op->n_out > 0)
            names[k++] = m->nodes[i].name;
    if (!k)
        return;
    int64_t od[64][ENG_MAX_DIMS];
    int ond[64];
    eng_diag d;
    if (eng_model_shapes(m, nd, dim, names, k, od, ond, NULL, &d))
        return;
    for (int i = 0; i < k; i++) {
        if (ond[i] < 0)
            return;
        int64_t c = 1;
        for (int j = 0; j < ond[i]; j++) {
            c *= od[i][j];
            if (c > 65536)
                return;
        }
    }
    eng_tensor *x = eng_tensor_new(ENG_F32, nd, dim);
    if (!x)
        return;
    for (int64_t i = 0; i < n; i++)
        eng_f32(x)[i] = (float)((i * 37) % 11) - 5.0f;
    eng_tensor *out[64] = {0};
    eng_run_opts opts = {.threads = 2};
    if (eng_model_run(m, x, names, k, out, &opts, &d) == ENG_OK)
        for (int i = 0; i < k; i++)
            eng_tensor_free(out[i]);
    eng_tensor_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *w = nul ? nul + 1 : NULL;
    size_t wlen = nul ? size - jlen - 1 : 0;
    eng_model *m = NULL;
    eng_diag d;
    if (eng_model_load_mem((const char *)data, jlen, w, wlen, &m, &d) == ENG_OK) {
        try_run(m);
        eng_model_free(m);
    }
    return 0;
}
