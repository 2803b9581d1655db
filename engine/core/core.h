/* core.h: the engine's value types, shared by every engine module.
 *
 * Conventions (see ../shared/STYLE.md):
 * - every call returns eng_status (ENG_OK == 0) and fills a caller-owned
 *   eng_diag with a lowercase message naming the subject;
 * - results come out through OUT parameters; "returns a new X, free with
 *   x_free"; x_free(NULL) is a no-op;
 * - untrusted input never asserts or exits.
 */
#ifndef VFS_ENGINE_CORE_H
#define VFS_ENGINE_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_status {
    ENG_OK = 0,
    ENG_EINVAL,       /* bad argument or malformed input */
    ENG_ENOMEM,       /* allocation failed or declared size too large */
    ENG_EIO,          /* file could not be read or written */
    ENG_EFORMAT,      /* file content is not what it should be */
    ENG_EUNSUPPORTED, /* valid input we do not handle (unknown op, format) */
    ENG_EABORTED,     /* the abort callback asked to stop */
    ENG_ENOTFOUND,    /* named thing (node, file, backbone) does not exist */
    ENG_ENOBUDGET,    /* the time budget cannot cover the minimum work (notEnoughBudget) */
    ENG_ENOSPC,       /* a file could not be written: the disk or quota is full */
    ENG_EDIVERGED,    /* training stopped: a loss or gradient was not finite (diverged) */
} eng_status;

/* Caller-owned diagnostic: what went wrong, subject first. */
typedef struct eng_diag {
    char msg[512];
} eng_diag;

/* Formats into d->msg (d may be NULL); returns st so callers can write
 * `return eng_fail(d, ENG_EINVAL, "...")`. */
eng_status eng_fail(eng_diag *d, eng_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *eng_status_name(eng_status st);

/* Abort callback, polled between graph nodes and training steps: return
 * nonzero to stop; the call then returns ENG_EABORTED. */
typedef int (*eng_abort_fn)(void *ctx);

typedef enum eng_dtype { ENG_F32 = 0, ENG_I32 = 1 } eng_dtype;

#define ENG_MAX_DIMS 6

/* A dense row-major tensor (NHWC for images). Small value type: fields are
 * public. data is 64-byte aligned when made by eng_tensor_new. */
typedef struct eng_tensor {
    eng_dtype dtype;
    int ndim;
    int64_t dim[ENG_MAX_DIMS];
    void *data;
} eng_tensor;

/* Returns a new zeroed tensor, or NULL when out of memory or when the
 * element count would exceed 2^34 bytes. Free with eng_tensor_free. */
eng_tensor *eng_tensor_new(eng_dtype dtype, int ndim, const int64_t *dim);
void eng_tensor_free(eng_tensor *t);
int64_t eng_tensor_numel(const eng_tensor *t);
static inline float *eng_f32(const eng_tensor *t) { return (float *)t->data; }

/* Parses len bytes of JSON text (need not end in NUL) named `what` in
 * messages. *out: a new cJSON tree (cJSON_Delete). ENG_EFORMAT with the byte
 * and line where it broke ("model.json: not valid JSON at byte 12 (line 2)").
 * Every parse of text the engine or its users did not write goes here. */
struct cJSON;
eng_status eng_json_parse(const char *text, size_t len, const char *what, struct cJSON **out,
                          eng_diag *d);
/* As eng_json_parse, but the value may be followed by other bytes: *used
 * is how many bytes it took (up to the end of the value, no whitespace
 * after it), for the caller to check what follows. */
eng_status eng_json_parse_prefix(const char *text, size_t len, const char *what, struct cJSON **out,
                                 size_t *used, eng_diag *d);

/* Aligned allocation for kernels and tensors; free with eng_free. */
void *eng_alloc(size_t bytes);
void eng_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
