/* train_int.h: tape internals shared by the files of engine/train.
 *
 * A node (eng_var) holds its value as an eng_tensor whose data lives in the
 * tape arena (or is borrowed: inputs, params), a lazily allocated gradient,
 * up to three inputs (concat keeps an array), small attributes and an aux
 * pointer for what its backward needs (argmax indices, copied targets).
 * Backward functions add into their inputs' gradients through var_grad(),
 * which allocates a zeroed gradient on first use and returns NULL for nodes
 * that need none.
 */
#ifndef VFS_ENGINE_TRAIN_INT_H
#define VFS_ENGINE_TRAIN_INT_H

#include "asan_ranges.h"
#include "pool.h"
#include "train.h"

#include <stdarg.h>

/* Work block sizes: fixed, never derived from the thread count. */
#define TR_ROWS 64        /* pixels per GEMM block */
#define TR_CHUNK 16384    /* elements per elementwise block */
#define TR_PAR_MIN 262144 /* less work than this runs on one thread */

typedef void (*tr_backward_fn)(eng_tape *t, eng_var *v);

struct eng_var {
    eng_tensor val;
    float *grad;
    int requires_grad;
    const char *op;
    tr_backward_fn backward;
    eng_var *in[3];
    eng_var **ins; /* concat inputs */
    int nin;
    eng_param *param;
    int iattr[4];
    float fattr[4];
    void *aux;
    int64_t work; /* multiply-adds of the forward, 0 = about one per element */
};

typedef struct tr_block {
    struct tr_block *next;
    size_t cap, used;
    /* data follows, 64-byte aligned */
} tr_block;

struct eng_tape {
    int threads;
    eng_status st;
    char msg[512];
    tr_block *blocks; /* newest first */
    size_t total;     /* bytes in all blocks */
    eng_var **nodes;
    int nnodes, cap_nodes;
};

/* Arena allocation, 64-byte aligned; NULL (and a sticky ENG_ENOMEM) on
 * failure. tr_alloc0 zeroes. */
void *tr_alloc(eng_tape *t, size_t bytes);
void *tr_alloc0(eng_tape *t, size_t bytes);

/* Records the first error; returns NULL for `return tr_fail(...)`. */
eng_var *tr_fail(eng_tape *t, eng_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* New node with the given shape and a fresh arena value (uninitialised);
 * requires_grad from its inputs. NULL on error. */
eng_var *tr_node(eng_tape *t, const char *op, int ndim, const int64_t *dim, eng_var *a, eng_var *b,
                 eng_var *c);

/* The gradient buffer of v, allocated zeroed on first use; NULL when v
 * needs no gradient (constant input, frozen param) or memory ran out. */
float *tr_grad(eng_tape *t, eng_var *v);

static inline int64_t tr_numel(const eng_var *v) { return eng_tensor_numel(&v->val); }
static inline float *tr_val(const eng_var *v) { return (float *)v->val.data; }

/* Threads for a loop of node v: one when the work is too small to pay for
 * waking the others (the block split, hence the result, is the same). */
static inline int tr_nt(const eng_tape *t, const eng_var *v)
{
    int64_t w = v->work;
    if (!w) {
        w = eng_tensor_numel(&v->val);
        if (v->in[0])
            w += eng_tensor_numel(&v->in[0]->val);
    }
    return w < TR_PAR_MIN ? 1 : t->threads;
}

/* Calls fn over items [0, n) on nt threads of the runtime's pool (the
 * tape's ops are as short as the runtime's, and an OpenMP region per op
 * either slept and woke at every op or spun: engine/runtime/pool.h). An
 * item is a fixed block computed the same way on any thread. */
static inline void tr_for(int nt, int64_t n, rt_for_fn fn, void *ctx)
{
    rt_parallel_for(nt, n, rt_grain(n, nt, 4), fn, ctx);
}

/* y[i] += a * x[i] for i < n, in TR_CHUNK blocks over threads when large. */
void tr_axpy(const eng_tape *t, int64_t n, float a, const float *x, float *y);

/* Number of blocks of size bs covering n. */
static inline int64_t tr_nblocks(int64_t n, int64_t bs) { return (n + bs - 1) / bs; }

/* SAME padding: output size and leading pad for one axis. */
static inline void tr_same(int in, int k, int s, int *out, int *pad_before)
{
    int o = (in + s - 1) / s;
    int total = (o - 1) * s + k - in;
    if (total < 0)
        total = 0;
    *out = o;
    *pad_before = total / 2;
}

#endif
