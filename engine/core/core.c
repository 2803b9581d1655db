/* core.c: status names, diagnostics, aligned memory and tensors: the value
 * types every engine module shares. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

eng_status eng_fail(eng_diag *d, eng_status st, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

const char *eng_status_name(eng_status st)
{
    switch (st) {
    case ENG_OK: return "ok";
    case ENG_EINVAL: return "invalid";
    case ENG_ENOMEM: return "out of memory";
    case ENG_EIO: return "i/o error";
    case ENG_EFORMAT: return "bad format";
    case ENG_EUNSUPPORTED: return "unsupported";
    case ENG_EABORTED: return "aborted";
    case ENG_ENOTFOUND: return "not found";
    case ENG_ENOBUDGET: return "not enough budget";
    case ENG_ENOSPC: return "no space";
    case ENG_EDIVERGED: return "diverged";
    }
    return "unknown status";
}

void *eng_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    /* round up so aligned_alloc's size rule holds */
    bytes = (bytes + 63) & ~(size_t)63;
    p = aligned_alloc(64, bytes);
    return p;
}

void eng_free(void *p) { free(p); }

int64_t eng_tensor_numel(const eng_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->dim[i];
    return n;
}

eng_tensor *eng_tensor_new(eng_dtype dtype, int ndim, const int64_t *dim)
{
    if (ndim < 0 || ndim > ENG_MAX_DIMS)
        return NULL;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dim[i] < 0 || (dim[i] > 0 && n > (((int64_t)1 << 32) / dim[i])))
            return NULL;
        n *= dim[i];
    }
    eng_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->dim[i] = dim[i];
    size_t bytes = (size_t)n * 4;
    t->data = eng_alloc(bytes);
    if (!t->data) {
        free(t);
        return NULL;
    }
    memset(t->data, 0, bytes);
    return t;
}

void eng_tensor_free(eng_tensor *t)
{
    if (!t)
        return;
    eng_free(t->data);
    free(t);
}
