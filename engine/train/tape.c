/* tape.c: the autograd tape (arena, nodes, sticky errors, backward),
 * parameters and the random number generator.
 *
 * Design: nodes and their buffers come from a bump arena of large blocks;
 * reset folds all blocks into one of the total size, so a steady training
 * loop allocates once. Backward visits nodes in reverse creation order
 * (a valid reverse topological order since inputs exist before their
 * users) and only those that received a gradient.
 */
#include "train_int.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rng ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void eng_rng_seed(eng_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t eng_rng_u64(eng_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float eng_rng_uniform(eng_rng *r) { return (float)(eng_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float eng_rng_normal(eng_rng *r)
{
    double u1 = ((double)(eng_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(eng_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---- params ---- */

eng_status eng_param_new(const char *name, int ndim, const int64_t *dim, eng_param **out,
                         eng_diag *d)
{
    *out = NULL;
    if (ndim < 1 || ndim > ENG_MAX_DIMS)
        return eng_fail(d, ENG_EINVAL, "param '%s': rank %d outside 1..%d", name ? name : "", ndim,
                        ENG_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (dim[i] < 1)
            return eng_fail(d, ENG_EINVAL, "param '%s': dimension %d is %lld", name ? name : "", i,
                            (long long)dim[i]);
    eng_param *p = calloc(1, sizeof *p);
    if (!p)
        return eng_fail(d, ENG_ENOMEM, "param '%s': out of memory", name ? name : "");
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    p->value = eng_tensor_new(ENG_F32, ndim, dim);
    p->grad = eng_tensor_new(ENG_F32, ndim, dim);
    if (!p->value || !p->grad) {
        eng_param_free(p);
        return eng_fail(d, ENG_ENOMEM, "param '%s': out of memory", name ? name : "");
    }
    *out = p;
    return ENG_OK;
}

void eng_param_free(eng_param *p)
{
    if (!p)
        return;
    eng_tensor_free(p->value);
    eng_tensor_free(p->grad);
    eng_free(p->m);
    eng_free(p->v);
    free(p);
}

void eng_param_init_normal(eng_param *p, float std, eng_rng *rng)
{
    float *w = eng_f32(p->value);
    int64_t n = eng_tensor_numel(p->value);
    for (int64_t i = 0; i < n; i++)
        w[i] = std * eng_rng_normal(rng);
}

void eng_param_init_he(eng_param *p, int fan_in, eng_rng *rng)
{
    eng_param_init_normal(p, sqrtf(2.0f / (float)(fan_in > 0 ? fan_in : 1)), rng);
}

void eng_param_fill(eng_param *p, float v)
{
    float *w = eng_f32(p->value);
    int64_t n = eng_tensor_numel(p->value);
    for (int64_t i = 0; i < n; i++)
        w[i] = v;
}

eng_status eng_param_set(eng_param *p, const float *src, int64_t n, eng_diag *d)
{
    if (n != eng_tensor_numel(p->value))
        return eng_fail(d, ENG_EINVAL, "param '%s': %lld values given, %lld expected", p->name,
                        (long long)n, (long long)eng_tensor_numel(p->value));
    memcpy(p->value->data, src, (size_t)n * sizeof(float));
    return ENG_OK;
}

void eng_param_zero_grad(eng_param *p)
{
    memset(p->grad->data, 0, (size_t)eng_tensor_numel(p->grad) * sizeof(float));
}

/* ---- arena ---- */

#define TR_BLOCK_MIN ((size_t)1 << 20)
#define TR_HDR ((sizeof(tr_block) + 63) & ~(size_t)63)

static tr_block *block_new(size_t cap)
{
    tr_block *b = eng_alloc(TR_HDR + cap);
    if (!b)
        return NULL;
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

void *tr_alloc(eng_tape *t, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0)
        bytes = 64;
    tr_block *b = t->blocks;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = t->total > TR_BLOCK_MIN ? t->total : TR_BLOCK_MIN;
        if (cap < bytes)
            cap = bytes;
        b = block_new(cap);
        if (!b) {
            tr_fail(t, ENG_ENOMEM, "tape: out of memory allocating %zu bytes", bytes);
            return NULL;
        }
        b->next = t->blocks;
        t->blocks = b;
        t->total += cap;
    }
    void *p = (char *)b + TR_HDR + b->used;
    b->used += bytes;
    return p;
}

void *tr_alloc0(eng_tape *t, size_t bytes)
{
    void *p = tr_alloc(t, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

eng_var *tr_fail(eng_tape *t, eng_status st, const char *fmt, ...)
{
    if (t->st == ENG_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->msg, sizeof t->msg, fmt, ap);
        va_end(ap);
        t->st = st;
    }
    return NULL;
}

/* ---- helpers ---- */

typedef struct axpy_job {
    int64_t n;
    float a;
    const float *x;
    float *y;
} axpy_job;

/* ENG_NO_ASAN: checked per call, blocks [lo, hi) of x and y (asan_ranges.h) */
static ENG_NO_ASAN void axpy_blocks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    const axpy_job *j = ctx;
    (void)tid;
    if (ENG_ASAN) {
        const int64_t i0 = lo * TR_CHUNK, i1 = hi * TR_CHUNK < j->n ? hi * TR_CHUNK : j->n;
        eng_asan_range(j->x + i0, (size_t)(i1 - i0) * sizeof(float), 0);
        eng_asan_range(j->y + i0, (size_t)(i1 - i0) * sizeof(float), 1);
    }
    for (int64_t b = lo; b < hi; b++) {
        int64_t i1 = (b + 1) * TR_CHUNK < j->n ? (b + 1) * TR_CHUNK : j->n;
        float a = j->a, *y = j->y;
        const float *x = j->x;
#pragma omp simd
        for (int64_t i = b * TR_CHUNK; i < i1; i++)
            y[i] += a * x[i];
    }
}

void tr_axpy(const eng_tape *t, int64_t n, float a, const float *x, float *y)
{
    axpy_job j = {n, a, x, y};
    tr_for(n < TR_PAR_MIN ? 1 : t->threads, tr_nblocks(n, TR_CHUNK), axpy_blocks, &j);
}

/* ---- tape ---- */

eng_status eng_tape_new(int threads, eng_tape **out, eng_diag *d)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return eng_fail(d, ENG_ENOMEM, "tape: out of memory");
    (*out)->threads = threads > 0 ? threads : 1;
    openblas_set_num_threads(1);
    return ENG_OK;
}

static void blocks_free(tr_block *b)
{
    while (b) {
        tr_block *n = b->next;
        eng_free(b);
        b = n;
    }
}

void eng_tape_free(eng_tape *t)
{
    if (!t)
        return;
    blocks_free(t->blocks);
    free(t->nodes);
    free(t);
}

void eng_tape_reset(eng_tape *t)
{
    if (t->blocks && t->blocks->next) {
        size_t total = t->total;
        blocks_free(t->blocks);
        t->blocks = block_new(total);
        t->total = t->blocks ? total : 0;
    }
    if (t->blocks)
        t->blocks->used = 0;
    t->nnodes = 0;
    t->st = ENG_OK;
    t->msg[0] = 0;
}

eng_status eng_tape_status(const eng_tape *t, eng_diag *d)
{
    if (t->st != ENG_OK)
        return eng_fail(d, t->st, "%s", t->msg);
    return ENG_OK;
}

size_t eng_tape_bytes(const eng_tape *t) { return t->total; }

const eng_tensor *eng_var_value(const eng_var *v) { return v ? &v->val : NULL; }
const float *eng_var_grad(const eng_var *v) { return v ? v->grad : NULL; }

float eng_var_scalar(const eng_var *v)
{
    if (!v || tr_numel(v) != 1)
        return NAN;
    return tr_val(v)[0];
}

static eng_var *node_push(eng_tape *t, const char *op)
{
    if (t->nnodes == t->cap_nodes) {
        int cap = t->cap_nodes ? t->cap_nodes * 2 : 256;
        eng_var **n = realloc(t->nodes, sizeof *n * (size_t)cap);
        if (!n)
            return tr_fail(t, ENG_ENOMEM, "tape: out of memory for nodes");
        t->nodes = n;
        t->cap_nodes = cap;
    }
    eng_var *v = tr_alloc0(t, sizeof *v);
    if (!v)
        return NULL;
    v->op = op;
    t->nodes[t->nnodes++] = v;
    return v;
}

eng_var *tr_node(eng_tape *t, const char *op, int ndim, const int64_t *dim, eng_var *a, eng_var *b,
                 eng_var *c)
{
    if (t->st != ENG_OK)
        return NULL;
    if (ndim < 1 || ndim > ENG_MAX_DIMS)
        return tr_fail(t, ENG_EINVAL, "%s: rank %d outside 1..%d", op, ndim, ENG_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dim[i] < 1 || dim[i] > ((int64_t)1 << 31) || n > ((int64_t)1 << 33) / dim[i])
            return tr_fail(t, ENG_EINVAL, "%s: output shape too large or empty", op);
        n *= dim[i];
    }
    eng_var *v = node_push(t, op);
    if (!v)
        return NULL;
    v->val.dtype = ENG_F32;
    v->val.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->val.dim[i] = dim[i];
    v->val.data = tr_alloc(t, (size_t)n * sizeof(float));
    if (!v->val.data)
        return NULL;
    v->in[0] = a;
    v->in[1] = b;
    v->in[2] = c;
    v->nin = c ? 3 : b ? 2 : a ? 1 : 0;
    v->requires_grad =
        (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
    return v;
}

float *tr_grad(eng_tape *t, eng_var *v)
{
    if (!v || !v->requires_grad)
        return NULL;
    if (!v->grad)
        v->grad = tr_alloc0(t, (size_t)tr_numel(v) * sizeof(float));
    return v->grad;
}

eng_var *eng_tape_input(eng_tape *t, const eng_tensor *x)
{
    if (t->st != ENG_OK)
        return NULL;
    if (!x || x->dtype != ENG_F32 || x->ndim < 1 || !x->data)
        return tr_fail(t, ENG_EINVAL, "input: not a float32 tensor");
    eng_var *v = node_push(t, "input");
    if (!v)
        return NULL;
    v->val = *x;
    return v;
}

eng_var *eng_tape_param(eng_tape *t, eng_param *p)
{
    if (t->st != ENG_OK)
        return NULL;
    if (!p)
        return tr_fail(t, ENG_EINVAL, "param: NULL");
    eng_var *v = node_push(t, "param");
    if (!v)
        return NULL;
    v->val = *p->value;
    v->param = p;
    if (!p->frozen) {
        v->requires_grad = 1;
        v->grad = eng_f32(p->grad);
    }
    return v;
}

eng_status eng_tape_backward(eng_tape *t, eng_var *out, const float *seed, eng_diag *d)
{
    if (t->st != ENG_OK)
        return eng_fail(d, t->st, "%s", t->msg);
    if (!out)
        return eng_fail(d, ENG_EINVAL, "backward: no output node");
    int last = t->nnodes - 1;
    while (last >= 0 && t->nodes[last] != out)
        last--;
    if (last < 0)
        return eng_fail(d, ENG_EINVAL, "backward: node not on this tape");
    int64_t n = tr_numel(out);
    if (!seed && n != 1)
        return eng_fail(d, ENG_EINVAL, "backward: output has %lld elements, need a seed",
                        (long long)n);
    if (!out->requires_grad)
        return ENG_OK; /* nothing trainable upstream */
    float *g = tr_grad(t, out);
    if (!g)
        return eng_fail(d, t->st ? t->st : ENG_ENOMEM, "backward: %s", t->msg);
    for (int64_t i = 0; i < n; i++)
        g[i] += seed ? seed[i] : 1.0f;
    for (int i = last; i >= 0; i--) {
        eng_var *v = t->nodes[i];
        if (v->grad && v->backward)
            v->backward(t, v);
        if (t->st != ENG_OK)
            return eng_fail(d, t->st, "backward: %s", t->msg);
    }
    return ENG_OK;
}
