/* modelfile.h: the safetensors container every trained model is saved in.
 *
 * Layout (docs/model-format.md): 8-byte little-endian header length N, N bytes
 * of JSON header (padded with spaces to a multiple of 8), then the raw
 * little-endian tensor bytes. The header maps each tensor name to
 * {"dtype": "F32"|"I32", "shape": [..], "data_offsets": [begin, end]}
 * (offsets relative to the byte after the header; tensors tile the buffer
 * without holes or overlap) and holds "__metadata__", a map of string to
 * string that the recipes fill (kind, categories, backbone, preprocessing,
 * recipe, version). Generic: classifiers and detectors share it.
 *
 * The reader treats the file as untrusted: every size, offset and type is
 * checked and a problem is an error with a message naming the field, never an
 * assert. Writing goes to a temporary file in the same folder that is then
 * renamed over the target, so a reader never sees half a file.
 */
#ifndef VFS_ENGINE_MODELFILE_H
#define VFS_ENGINE_MODELFILE_H

#include "core.h"

/* Largest header and file accepted by the reader. */
#define ENG_MODELFILE_MAX_HEADER ((uint64_t)16 << 20)
#define ENG_MODELFILE_MAX_BYTES ((uint64_t)1 << 30)

/* Writes tensors (names[i] -> tensors[i], F32 or I32) and the metadata
 * string map (keys[i] -> values[i]) to path, atomically (temp + rename).
 * Names must be unique, non-empty and not "__metadata__". All arrays are
 * borrowed for the call. Errors: ENG_EINVAL (bad name), ENG_EIO, ENG_ENOMEM. */
eng_status eng_modelfile_write(const char *path, const char *const *names,
                               const eng_tensor *const *tensors, int ntensors,
                               const char *const *keys, const char *const *values, int nmeta,
                               eng_diag *d);

/* A parsed model file: its tensors (copied, aligned) and metadata. */
typedef struct eng_modelfile eng_modelfile;

/* Reads and checks a model file. *out: a new eng_modelfile, free with
 * eng_modelfile_free; NULL on error. Errors: ENG_EIO (cannot read),
 * ENG_EFORMAT (truncated or malformed: the message says what and where),
 * ENG_EUNSUPPORTED (a dtype other than F32/I32), ENG_ENOMEM. */
eng_status eng_modelfile_read(const char *path, eng_modelfile **out, eng_diag *d);
/* Same from a buffer (borrowed for the call). */
eng_status eng_modelfile_parse(const void *buf, size_t len, eng_modelfile **out, eng_diag *d);
void eng_modelfile_free(eng_modelfile *m);

/* Metadata value for key, or NULL when absent. Borrowed until free. */
const char *eng_modelfile_meta(const eng_modelfile *m, const char *key);
/* Tensor by name, or NULL when absent. Borrowed until free. */
const eng_tensor *eng_modelfile_tensor(const eng_modelfile *m, const char *name);
int eng_modelfile_ntensors(const eng_modelfile *m);
/* Name of tensor i (0 <= i < ntensors), in file order. */
const char *eng_modelfile_tensor_name(const eng_modelfile *m, int i);

/* Looks up a tensor that must exist with dtype F32 and exactly the given
 * shape (ndim dims): ENG_EFORMAT naming the tensor otherwise. */
eng_status eng_modelfile_expect(const eng_modelfile *m, const char *name, int ndim,
                                const int64_t *dim, const eng_tensor **out, eng_diag *d);

#endif
