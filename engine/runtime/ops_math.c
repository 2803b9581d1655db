/* ops_math.c: element-wise, shape and index ops: Add/AddV2/BiasAdd, Sub,
 * Mul, RealDiv, Maximum, Minimum, Equal, FloorDiv, FloorMod (numpy
 * broadcasting, float32 or int32), Relu, Relu6, Sigmoid, Tanh, Identity,
 * ConcatV2, Reshape, ExpandDims, Squeeze, Cast, StridedSlice, Pad/PadV2,
 * TopKV2, GatherV2, NoOp, and the Const/Placeholder entries the executor
 * handles itself.
 *
 * Design: ops read any values they need for shapes (axes, sizes, begin/end)
 * from their input tensors; at load-time shape checking those are only
 * known for constants, otherwise the output shape is reported unknown.
 * Integer arithmetic wraps instead of overflowing, and division by zero
 * yields 0, so no input can trigger undefined behaviour.
 */
#include "pool.h"
#include "runtime_int.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(t) rt_shape_str(t, sbuf, sizeof sbuf)
#define SHAPE2(t) rt_shape_str(t, sbuf2, sizeof sbuf2)

static int nth(const rt_ctx *c, int64_t work) { return work < 65536 ? 1 : c->threads; }

/* ---- never run: the executor binds constants and the input itself ---- */

static eng_status leaf_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             eng_diag *d)
{
    (void)in, (void)out;
    return RT_FAIL(d, ENG_EFORMAT, n, "has no value");
}

static eng_status leaf_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    (void)in, (void)out, (void)c;
    return RT_FAIL(d, ENG_EFORMAT, n, "has no value");
}

static eng_status noop_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             eng_diag *d)
{
    (void)n, (void)in, (void)out, (void)d;
    return ENG_OK;
}

static eng_status noop_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    (void)n, (void)in, (void)out, (void)c, (void)d;
    return ENG_OK;
}

/* ---- binary element-wise with broadcasting ---- */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_EQ, B_FLOORDIV, B_FLOORMOD };

static int binop_of(const rt_node *n)
{
    const char *s = n->op->name;
    if (!strcmp(s, "Sub"))
        return B_SUB;
    if (!strcmp(s, "Mul"))
        return B_MUL;
    if (!strcmp(s, "RealDiv"))
        return B_DIV;
    if (!strcmp(s, "Maximum"))
        return B_MAX;
    if (!strcmp(s, "Minimum"))
        return B_MIN;
    if (!strcmp(s, "Equal"))
        return B_EQ;
    if (!strcmp(s, "FloorDiv"))
        return B_FLOORDIV;
    if (!strcmp(s, "FloorMod"))
        return B_FLOORMOD;
    return B_ADD;
}

static eng_status binary_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               eng_diag *d)
{
    char sbuf[160], sbuf2[160];
    const eng_tensor *a = in[0], *b = in[1];
    int op = binop_of(n);
    if (a->dtype != b->dtype)
        return RT_FAIL(d, ENG_EINVAL, n, "inputs have different dtypes");
    if (op == B_DIV && a->dtype != ENG_F32)
        return RT_FAIL(d, ENG_EINVAL, n, "int32 inputs not supported");
    if (!strcmp(n->op->name, "BiasAdd") &&
        (b->ndim != 1 || a->ndim < 1 || a->dim[a->ndim - 1] != b->dim[0]))
        return RT_FAIL(d, ENG_EINVAL, n, "bias %s does not match input %s", SHAPE(b), SHAPE2(a));
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t dim[ENG_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return RT_FAIL(d, ENG_EINVAL, n, "shapes %s and %s do not broadcast", SHAPE(a),
                           SHAPE2(b));
        dim[i] = da == 1 ? db : da;
    }
    rt_set_shape(out, op == B_EQ ? ENG_I32 : a->dtype, nd, dim);
    return ENG_OK;
}

static void bin_f32(int op, const float *a, int64_t sa, const float *b, int64_t sb, void *o,
                    int64_t len)
{
    float *of = o;
    int32_t *oi = o;
    switch (op) {
    case B_ADD:
        for (int64_t i = 0; i < len; i++)
            of[i] = a[i * sa] + b[i * sb];
        break;
    case B_SUB:
        for (int64_t i = 0; i < len; i++)
            of[i] = a[i * sa] - b[i * sb];
        break;
    case B_MUL:
        for (int64_t i = 0; i < len; i++)
            of[i] = a[i * sa] * b[i * sb];
        break;
    case B_DIV:
        for (int64_t i = 0; i < len; i++)
            of[i] = a[i * sa] / b[i * sb];
        break;
    case B_MAX:
        for (int64_t i = 0; i < len; i++)
            of[i] = a[i * sa] > b[i * sb] ? a[i * sa] : b[i * sb];
        break;
    case B_MIN:
        for (int64_t i = 0; i < len; i++)
            of[i] = a[i * sa] < b[i * sb] ? a[i * sa] : b[i * sb];
        break;
    case B_EQ:
        for (int64_t i = 0; i < len; i++)
            oi[i] = a[i * sa] == b[i * sb];
        break;
    case B_FLOORDIV:
        for (int64_t i = 0; i < len; i++)
            of[i] = floorf(a[i * sa] / b[i * sb]);
        break;
    case B_FLOORMOD:
        for (int64_t i = 0; i < len; i++) {
            float x = a[i * sa], y = b[i * sb], r = fmodf(x, y);
            of[i] = (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
        }
        break;
    }
}

static void bin_i32(int op, const int32_t *a, int64_t sa, const int32_t *b, int64_t sb, int32_t *o,
                    int64_t len)
{
    for (int64_t i = 0; i < len; i++) {
        int32_t x = a[i * sa], y = b[i * sb];
        uint32_t ux = (uint32_t)x, uy = (uint32_t)y;
        switch (op) {
        case B_ADD: o[i] = (int32_t)(ux + uy); break;
        case B_SUB: o[i] = (int32_t)(ux - uy); break;
        case B_MUL: o[i] = (int32_t)(ux * uy); break;
        case B_MAX: o[i] = x > y ? x : y; break;
        case B_MIN: o[i] = x < y ? x : y; break;
        case B_EQ: o[i] = x == y; break;
        case B_FLOORDIV:
            if (y == 0 || (x == INT32_MIN && y == -1)) {
                o[i] = y == 0 ? 0 : INT32_MIN;
            } else {
                int32_t q = x / y;
                o[i] = (q * y != x && ((x < 0) != (y < 0))) ? q - 1 : q;
            }
            break;
        case B_FLOORMOD:
            if (y == 0 || y == -1) {
                o[i] = 0;
            } else {
                int32_t r = x % y;
                o[i] = (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
            }
            break;
        default: o[i] = 0; break;
        }
    }
}

/* one binary op's work, split by rt_parallel_for (items: see each function) */
typedef struct bin_job {
    const eng_tensor *a, *b;
    eng_tensor *out;
    int op, nd;
    int64_t inner, isa, isb;
    const int64_t *sa, *sb; /* strides of a and b over the output dims */
} bin_job;

/* o = x op v over n elements (vec_first: o = v op x; the same for + and *, which commute
 * exactly), for bin_wrap_blocks: one loop per op so that each vectorises */
static void wrap_span(int op, int vec_first, const float *x, const float *v, float *o, int64_t n)
{
    switch (op) {
    case B_ADD:
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] + v[i];
        break;
    case B_SUB:
        if (vec_first)
            for (int64_t i = 0; i < n; i++)
                o[i] = v[i] - x[i];
        else
            for (int64_t i = 0; i < n; i++)
                o[i] = x[i] - v[i];
        break;
    case B_MUL:
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] * v[i];
        break;
    default: /* B_DIV */
        if (vec_first)
            for (int64_t i = 0; i < n; i++)
                o[i] = v[i] / x[i];
        else
            for (int64_t i = 0; i < n; i++)
                o[i] = x[i] / v[i];
        break;
    }
}

/* items: blocks of 1024 rows of a full tensor op a vector over its last axis (isa or isb 1,
 * the other operand's length inner < 16). The vector is repeated 16 times into a period of
 * 16 * inner floats, a whole number of SIMD vectors, so each block is whole periods of plain
 * element-wise work (an input normalisation's [1,H,W,3] - [3] ran at 5 cycles per element
 * with the vector's index wrapping per element) */
static void bin_wrap_blocks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const bin_job *j = ctx;
    const int bvec = rt_numel(j->a) == rt_numel(j->out);
    const float *full = eng_f32(bvec ? j->a : j->b), *vec = eng_f32(bvec ? j->b : j->a);
    float *of = eng_f32(j->out);
    const int64_t inner = j->inner, rows = rt_numel(j->out) / inner, period = 16 * inner;
    float rep[16 * 16];
    for (int64_t i = 0; i < period; i++)
        rep[i] = vec[i % inner];
    for (int64_t blk = lo; blk < hi; blk++) { /* 1024 rows: a whole number of periods */
        int64_t r0 = blk * 1024, e = (r0 + 1024 < rows ? r0 + 1024 : rows) * inner;
        for (int64_t i = r0 * inner; i < e; i += period)
            wrap_span(j->op, !bvec, full + i, rep, of + i, e - i < period ? e - i : period);
    }
}

/* items: elements [lo, hi) of the one row */
static void bin_span(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const bin_job *j = ctx;
    if (j->a->dtype == ENG_F32)
        bin_f32(j->op, eng_f32(j->a) + lo * j->isa, j->isa, eng_f32(j->b) + lo * j->isb, j->isb,
                (int32_t *)j->out->data + lo, hi - lo);
    else
        bin_i32(j->op, (const int32_t *)j->a->data + lo * j->isa, j->isa,
                (const int32_t *)j->b->data + lo * j->isb, j->isb, (int32_t *)j->out->data + lo,
                hi - lo);
}

/* items: rows of the output's last axis */
static void bin_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const bin_job *j = ctx;
    const int64_t inner = j->inner, total = rt_numel(j->out);
    for (int64_t r = lo; r < hi; r++) {
        int64_t rem = r, oa = 0, ob = 0;
        for (int i = j->nd - 2; i >= 0 && inner != total; i--) {
            int64_t idx = rem % j->out->dim[i];
            rem /= j->out->dim[i];
            oa += idx * j->sa[i];
            ob += idx * j->sb[i];
        }
        if (j->a->dtype == ENG_F32)
            bin_f32(j->op, eng_f32(j->a) + oa, j->isa, eng_f32(j->b) + ob, j->isb,
                    (int32_t *)j->out->data + r * inner, inner);
        else
            bin_i32(j->op, (const int32_t *)j->a->data + oa, j->isa,
                    (const int32_t *)j->b->data + ob, j->isb, (int32_t *)j->out->data + r * inner,
                    inner);
    }
}

static eng_status binary_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                 const rt_ctx *c, eng_diag *d)
{
    (void)d;
    const eng_tensor *a = in[0], *b = in[1];
    int op = binop_of(n);
    int nd = out->ndim;
    /* strides of a and b over the output dims (0 where broadcast) */
    int64_t sa[ENG_MAX_DIMS], sb[ENG_MAX_DIMS], ka = 1, kb = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        sa[i] = da == 1 ? 0 : ka;
        sb[i] = db == 1 ? 0 : kb;
        ka *= da;
        kb *= db;
    }
    int64_t total = rt_numel(out);
    if (total == 0)
        return ENG_OK;
    int64_t inner = nd ? out->dim[nd - 1] : 1;
    int64_t isa = nd ? sa[nd - 1] : 0, isb = nd ? sb[nd - 1] : 0;
    /* whole tensors with unit or zero strides: one flat row */
    if (rt_numel(a) == total && rt_numel(b) == total)
        inner = total, isa = isb = 1;
    else if (rt_numel(a) == 1 && rt_numel(b) == total)
        inner = total, isa = 0, isb = 1;
    else if (rt_numel(b) == 1 && rt_numel(a) == total)
        inner = total, isa = 1, isb = 0;
    int64_t rows = total / inner;
    int nt = nth(c, total);
    bin_job j = {a, b, out, op, nd, inner, isa, isb, sa, sb};
    /* a full tensor with a short vector over its last axis ([1,H,W,3] - [3], an input
     * normalisation): one flat loop with the vector's index wrapping, not a call per 3-element
     * row (longer rows, as a squeeze-excite's [1,H,W,C] * [1,1,1,C], vectorise as rows below) */
    int64_t nb = rt_numel(b), na = rt_numel(a);
    if (a->dtype == ENG_F32 && op <= B_DIV && inner < 16 && inner < total &&
        inner == out->dim[nd - 1] &&
        ((na == total && nb == inner && isb == 1) || (nb == total && na == inner && isa == 1))) {
        int64_t blocks = (rows + 1023) / 1024;
        rt_parallel_for(nt, blocks, rt_grain(blocks, nt, 4), bin_wrap_blocks, &j);
    } else if (rows == 1 && inner > 65536 && nt > 1) { /* one long row: split it */
        rt_parallel_for(nt, inner, rt_grain(inner, nt, 4), bin_span, &j);
    } else {
        rt_parallel_for(nt, rows, rt_grain(rows, nt, 4), bin_rows, &j);
    }
    return ENG_OK;
}

/* ---- unary ---- */

static eng_status unary_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                              eng_diag *d)
{
    if (strcmp(n->op->name, "Identity") && in[0]->dtype != ENG_F32)
        return RT_FAIL(d, ENG_EINVAL, n, "input must be float32");
    rt_set_shape(out, in[0]->dtype, in[0]->ndim, in[0]->dim);
    return ENG_OK;
}

static eng_status unary_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                const rt_ctx *c, eng_diag *d)
{
    (void)d;
    int64_t len = rt_numel(in[0]);
    if (out->data != in[0]->data) /* in place when the executor gave it the input (run.c) */
        memcpy(out->data, in[0]->data, (size_t)len * 4);
    const char *s = n->op->name;
    if (!strcmp(s, "Relu"))
        eng_act_apply(eng_f32(out), len, ENG_ACT_RELU, c->threads);
    else if (!strcmp(s, "Relu6"))
        eng_act_apply(eng_f32(out), len, ENG_ACT_RELU6, c->threads);
    else if (!strcmp(s, "Sigmoid"))
        eng_act_apply(eng_f32(out), len, ENG_ACT_SIGMOID, c->threads);
    else if (!strcmp(s, "Tanh")) {
        float *p = eng_f32(out);
        for (int64_t i = 0; i < len; i++)
            p[i] = tanhf(p[i]);
    }
    return ENG_OK;
}

/* ---- ConcatV2 ---- */

static eng_status concat_axis(const rt_node *n, const eng_tensor *const *in, int *axis, eng_diag *d)
{
    const eng_tensor *ax = in[n->n_in - 1];
    int64_t a;
    if (rt_scalar_int(ax, &a))
        return RT_FAIL(d, ENG_EFORMAT, n, "axis must be an int32 scalar");
    int rank = in[0]->ndim;
    if (a < 0)
        a += rank;
    if (a < 0 || a >= rank)
        return RT_FAIL(d, ENG_EINVAL, n, "axis out of range for rank %d", rank);
    *axis = (int)a;
    return ENG_OK;
}

static eng_status concat_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               eng_diag *d)
{
    char sbuf[160], sbuf2[160];
    if (!in[n->n_in - 1]->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    int axis;
    eng_status st = concat_axis(n, in, &axis, d);
    if (st)
        return st;
    const eng_tensor *a = in[0];
    int64_t dim[ENG_MAX_DIMS];
    memcpy(dim, a->dim, sizeof dim);
    for (int i = 1; i < n->n_in - 1; i++) {
        const eng_tensor *b = in[i];
        if (b->dtype != a->dtype || b->ndim != a->ndim)
            return RT_FAIL(d, ENG_EINVAL, n, "input %d: %s does not fit %s", i, SHAPE(b),
                           SHAPE2(a));
        for (int j = 0; j < a->ndim; j++)
            if (j != axis && b->dim[j] != a->dim[j])
                return RT_FAIL(d, ENG_EINVAL, n, "input %d: %s does not fit %s on axis %d", i,
                               SHAPE(b), SHAPE2(a), j);
        dim[axis] += b->dim[axis];
        if (dim[axis] > RT_MAX_ELEMS)
            return RT_FAIL(d, ENG_EINVAL, n, "output too large");
    }
    rt_set_shape(out, a->dtype, a->ndim, dim);
    return ENG_OK;
}

typedef struct concat_job {
    const eng_tensor *const *in;
    eng_tensor *out;
    int nin, axis;
    int64_t inner, orow;
    int relu; /* the fused form of Relu(ConcatV2) (fuse.c): max(x, 0) while copying */
} concat_job;

/* items: the output's slices before the axis */
static void concat_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const concat_job *j = ctx;
    for (int64_t o = lo; o < hi; o++) {
        int64_t off = 0;
        for (int i = 0; i < j->nin; i++) {
            int64_t len = j->in[i]->dim[j->axis] * j->inner;
            if (j->relu) {
                float *dst = eng_f32(j->out) + o * j->orow + off;
                const float *src = eng_f32(j->in[i]) + o * len;
                for (int64_t k = 0; k < len; k++)
                    dst[k] = src[k] > 0 ? src[k] : 0;
            } else {
                memcpy((int32_t *)j->out->data + o * j->orow + off,
                       (const int32_t *)j->in[i]->data + o * len, (size_t)len * 4);
            }
            off += len;
        }
    }
}

static eng_status concat_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                 const rt_ctx *c, eng_diag *d)
{
    int axis;
    eng_status st = concat_axis(n, in, &axis, d);
    if (st)
        return st;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= out->dim[i];
    for (int i = axis + 1; i < out->ndim; i++)
        inner *= out->dim[i];
    int64_t orow = out->dim[axis] * inner;
    int nin = n->n_in - 1;
    int relu = n->a.act == ENG_ACT_RELU;
    if (relu && out->dtype != ENG_F32)
        return RT_FAIL(d, ENG_EINVAL, n, "Relu of a concatenation: input must be float32");
    concat_job j = {in, out, nin, axis, inner, orow, relu};
    int nt = nth(c, rt_numel(out));
    rt_parallel_for(nt, outer, rt_grain(outer, nt, 4), concat_rows, &j);
    return ENG_OK;
}

/* ---- shape ops: Reshape, ExpandDims, Squeeze ---- */

static eng_status reshape_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                eng_diag *d)
{
    char sbuf[160], sbuf2[160];
    const eng_tensor *x = in[0], *s = in[1];
    if (s->dtype != ENG_I32 || s->ndim > 1)
        return RT_FAIL(d, ENG_EFORMAT, n, "shape must be an int32 vector");
    if (!s->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    int64_t k = rt_numel(s);
    if (k > ENG_MAX_DIMS)
        return RT_FAIL(d, ENG_EUNSUPPORTED, n, "more than %d dimensions", ENG_MAX_DIMS);
    int64_t dim[ENG_MAX_DIMS], prod = 1;
    int infer_at = -1;
    for (int i = 0; i < k; i++) {
        int64_t v = ((const int32_t *)s->data)[i];
        if (v == -1 && infer_at < 0) {
            infer_at = i;
            dim[i] = 1;
        } else if (v < 0) {
            return RT_FAIL(d, ENG_EINVAL, n, "bad size %lld in shape", (long long)v);
        } else {
            dim[i] = v;
            if (v && prod > RT_MAX_ELEMS / v)
                return RT_FAIL(d, ENG_EINVAL, n, "shape too large");
        }
        prod *= dim[i];
    }
    int64_t total = rt_numel(x);
    if (infer_at >= 0) {
        if (prod == 0 || total % prod)
            return RT_FAIL(d, ENG_EINVAL, n,
                           "cannot reshape %s: %lld elements do not divide "
                           "into the given sizes",
                           SHAPE(x), (long long)total);
        dim[infer_at] = total / prod;
        prod = total;
    }
    eng_tensor t = {.ndim = (int)k};
    memcpy(t.dim, dim, sizeof dim);
    if (prod != total)
        return RT_FAIL(d, ENG_EINVAL, n, "cannot reshape %s (%lld elements) to %s", SHAPE(x),
                       (long long)total, SHAPE2(&t));
    rt_set_shape(out, x->dtype, (int)k, dim);
    return ENG_OK;
}

static eng_status copy_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    (void)n, (void)c, (void)d;
    memcpy(out->data, in[0]->data, (size_t)rt_numel(out) * 4);
    return ENG_OK;
}

static eng_status expand_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               eng_diag *d)
{
    const eng_tensor *x = in[0];
    if (!in[1]->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    int64_t a;
    if (rt_scalar_int(in[1], &a))
        return RT_FAIL(d, ENG_EFORMAT, n, "dim must be an int32 scalar");
    if (x->ndim >= ENG_MAX_DIMS)
        return RT_FAIL(d, ENG_EUNSUPPORTED, n, "more than %d dimensions", ENG_MAX_DIMS);
    if (a < 0)
        a += x->ndim + 1;
    if (a < 0 || a > x->ndim)
        return RT_FAIL(d, ENG_EINVAL, n, "dim out of range for rank %d", x->ndim);
    int64_t dim[ENG_MAX_DIMS];
    for (int i = 0, k = 0; i <= x->ndim; i++)
        dim[i] = i == a ? 1 : x->dim[k++];
    rt_set_shape(out, x->dtype, x->ndim + 1, dim);
    return ENG_OK;
}

static eng_status squeeze_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                eng_diag *d)
{
    const eng_tensor *x = in[0];
    int drop[ENG_MAX_DIMS] = {0};
    for (int i = 0; i < n->a.n_squeeze; i++) {
        int a = n->a.squeeze[i] < 0 ? n->a.squeeze[i] + x->ndim : n->a.squeeze[i];
        if (a < 0 || a >= x->ndim || x->dim[a] != 1)
            return RT_FAIL(d, ENG_EINVAL, n, "cannot squeeze dimension %d", n->a.squeeze[i]);
        drop[a] = 1;
    }
    int64_t dim[ENG_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!(n->a.n_squeeze ? drop[i] : x->dim[i] == 1))
            dim[k++] = x->dim[i];
    rt_set_shape(out, x->dtype, k, dim);
    return ENG_OK;
}

/* ---- Cast ---- */

static eng_status cast_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             eng_diag *d)
{
    (void)d;
    rt_set_shape(out, n->a.dst_type == RT_DT_FLOAT ? ENG_F32 : ENG_I32, in[0]->ndim, in[0]->dim);
    return ENG_OK;
}

static eng_status cast_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    (void)c, (void)d;
    int64_t len = rt_numel(out);
    const eng_tensor *x = in[0];
    int to = n->a.dst_type;
    if (x->dtype == ENG_F32) {
        const float *s = eng_f32(x);
        int32_t *o = out->data;
        if (to == RT_DT_FLOAT)
            memcpy(out->data, x->data, (size_t)len * 4);
        else if (to == RT_DT_BOOL)
            for (int64_t i = 0; i < len; i++)
                o[i] = s[i] != 0;
        else
            for (int64_t i = 0; i < len; i++)
                o[i] = !(s[i] == s[i])          ? 0
                       : s[i] >= 2147483647.0f  ? INT32_MAX
                       : s[i] <= -2147483648.0f ? INT32_MIN
                                                : (int32_t)s[i];
    } else {
        const int32_t *s = x->data;
        if (to == RT_DT_FLOAT) {
            float *o = eng_f32(out);
            for (int64_t i = 0; i < len; i++)
                o[i] = (float)s[i];
        } else if (to == RT_DT_BOOL) {
            int32_t *o = out->data;
            for (int64_t i = 0; i < len; i++)
                o[i] = s[i] != 0;
        } else {
            memcpy(out->data, x->data, (size_t)len * 4);
        }
    }
    return ENG_OK;
}

/* ---- StridedSlice ---- */

typedef struct slice_plan {
    int nd; /* input dims */
    int64_t begin[ENG_MAX_DIMS], step[ENG_MAX_DIMS], size[ENG_MAX_DIMS];
    int out_ndim;
    int64_t out_dim[ENG_MAX_DIMS];
} slice_plan;

static eng_status slice_plan_make(const rt_node *n, const eng_tensor *const *in, slice_plan *p,
                                  eng_diag *d)
{
    const eng_tensor *x = in[0];
    const eng_tensor *bt = in[1], *et = in[2], *st = in[3];
    int64_t L = rt_numel(bt);
    if (bt->dtype != ENG_I32 || et->dtype != ENG_I32 || st->dtype != ENG_I32 || bt->ndim != 1 ||
        rt_numel(et) != L || rt_numel(st) != L || L > 16)
        return RT_FAIL(d, ENG_EFORMAT, n,
                       "begin, end and strides must be int32 vectors of one "
                       "length");
    const int32_t *B = bt->data, *E = et->data, *S = st->data;
    const rt_attr *a = &n->a;
    int ell = -1;
    int consumed = 0;
    for (int i = 0; i < L; i++) {
        if (a->ellipsis_mask & (1 << i)) {
            if (ell < 0)
                ell = i;
        } else if (!(a->new_axis_mask & (1 << i))) {
            consumed++;
        }
    }
    int ell_dims = ell >= 0 ? x->ndim - consumed : 0;
    if (ell_dims < 0 || (ell < 0 && consumed > x->ndim))
        return RT_FAIL(d, ENG_EINVAL, n, "slice has more dimensions than the input");
    p->nd = x->ndim;
    p->out_ndim = 0;
    int j = 0; /* input dim */
    for (int i = 0; i < L || j < x->ndim; i++) {
        int full = i >= L;
        if (!full && (a->ellipsis_mask & (1 << i)) && i == ell) {
            for (int k = 0; k < ell_dims; k++, j++) {
                p->begin[j] = 0, p->step[j] = 1, p->size[j] = x->dim[j];
                if (p->out_ndim >= ENG_MAX_DIMS)
                    return RT_FAIL(d, ENG_EUNSUPPORTED, n, "too many output dimensions");
                p->out_dim[p->out_ndim++] = x->dim[j];
            }
            continue;
        }
        if (!full && (a->ellipsis_mask & (1 << i)))
            continue; /* a second ellipsis is ignored */
        if (!full && (a->new_axis_mask & (1 << i))) {
            if (p->out_ndim >= ENG_MAX_DIMS)
                return RT_FAIL(d, ENG_EUNSUPPORTED, n, "too many output dimensions");
            p->out_dim[p->out_ndim++] = 1;
            continue;
        }
        if (j >= x->ndim)
            return RT_FAIL(d, ENG_EINVAL, n, "slice has more dimensions than the input");
        int64_t D = x->dim[j];
        if (full) {
            if (p->out_ndim >= ENG_MAX_DIMS)
                return RT_FAIL(d, ENG_EUNSUPPORTED, n, "too many output dimensions");
            p->begin[j] = 0, p->step[j] = 1, p->size[j] = D;
            p->out_dim[p->out_ndim++] = D;
            j++;
            continue;
        }
        int64_t b = B[i], e = E[i], s = S[i];
        if (s == 0)
            return RT_FAIL(d, ENG_EINVAL, n, "stride 0");
        if (a->shrink_mask & (1 << i)) {
            if (b < 0)
                b += D;
            if (b < 0 || b >= D)
                return RT_FAIL(d, ENG_EINVAL, n, "index %d out of range for size %lld", B[i],
                               (long long)D);
            p->begin[j] = b, p->step[j] = 1, p->size[j] = 1;
            j++;
            continue;
        }
        int64_t lo = s > 0 ? 0 : -1, hi = s > 0 ? D : D - 1;
        if (a->begin_mask & (1 << i)) {
            b = s > 0 ? 0 : D - 1;
        } else {
            if (b < 0)
                b += D;
            b = b < lo ? lo : b > hi ? hi : b;
        }
        if (a->end_mask & (1 << i)) {
            e = s > 0 ? D : -1;
        } else {
            if (e < 0)
                e += D;
            e = e < lo ? lo : e > hi ? hi : e;
        }
        int64_t size =
            s > 0 ? (e > b ? (e - b + s - 1) / s : 0) : (b > e ? (b - e - s - 1) / -s : 0);
        p->begin[j] = b, p->step[j] = s, p->size[j] = size;
        if (p->out_ndim >= ENG_MAX_DIMS)
            return RT_FAIL(d, ENG_EUNSUPPORTED, n, "too many output dimensions");
        p->out_dim[p->out_ndim++] = size;
        j++;
    }
    return ENG_OK;
}

static eng_status slice_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                              eng_diag *d)
{
    if (!in[1]->data || !in[2]->data || !in[3]->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    slice_plan p;
    eng_status st = slice_plan_make(n, in, &p, d);
    if (st)
        return st;
    rt_set_shape(out, in[0]->dtype, p.out_ndim, p.out_dim);
    return ENG_OK;
}

static eng_status slice_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                const rt_ctx *c, eng_diag *d)
{
    (void)c;
    slice_plan p;
    eng_status st = slice_plan_make(n, in, &p, d);
    if (st)
        return st;
    const eng_tensor *x = in[0];
    int64_t xs[ENG_MAX_DIMS], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dim[i];
    }
    int64_t total = rt_numel(out), idx[ENG_MAX_DIMS] = {0};
    const int32_t *src = x->data;
    int32_t *dst = out->data;
    for (int64_t e = 0; e < total; e++) {
        int64_t off = 0;
        for (int i = 0; i < p.nd; i++)
            off += (p.begin[i] + idx[i] * p.step[i]) * xs[i];
        dst[e] = src[off];
        for (int i = p.nd - 1; i >= 0; i--) {
            if (++idx[i] < p.size[i])
                break;
            idx[i] = 0;
        }
    }
    return ENG_OK;
}

/* ---- Pad, PadV2 ---- */

static eng_status pad_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                            eng_diag *d)
{
    const eng_tensor *x = in[0], *p = in[1];
    if (p->dtype != ENG_I32 || p->ndim != 2 || p->dim[0] != x->ndim || p->dim[1] != 2)
        return RT_FAIL(d, ENG_EFORMAT, n, "paddings must be int32 [rank, 2]");
    if (n->n_in == 3 && (in[2]->dtype != x->dtype || rt_numel(in[2]) != 1))
        return RT_FAIL(d, ENG_EFORMAT, n, "constant_values must be a scalar of the input type");
    if (!p->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    int64_t dim[ENG_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        int32_t lo = ((const int32_t *)p->data)[2 * i], hi = ((const int32_t *)p->data)[2 * i + 1];
        if (lo < 0 || hi < 0)
            return RT_FAIL(d, ENG_EINVAL, n, "negative padding");
        dim[i] = x->dim[i] + lo + hi;
        if (dim[i] > RT_MAX_ELEMS)
            return RT_FAIL(d, ENG_EINVAL, n, "output too large");
    }
    rt_set_shape(out, x->dtype, x->ndim, dim);
    return ENG_OK;
}

static eng_status pad_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                              const rt_ctx *c, eng_diag *d)
{
    (void)c, (void)d;
    const eng_tensor *x = in[0];
    const int32_t *pd = in[1]->data;
    int32_t fill = 0;
    if (n->n_in == 3)
        memcpy(&fill, in[2]->data, 4);
    int64_t total = rt_numel(out);
    int32_t *o = out->data;
    for (int64_t i = 0; i < total; i++)
        o[i] = fill;
    int nd = x->ndim;
    if (nd == 0) {
        memcpy(out->data, x->data, 4);
        return ENG_OK;
    }
    int64_t os[ENG_MAX_DIMS], s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        os[i] = s;
        s *= out->dim[i];
    }
    int64_t inner = x->dim[nd - 1], rows = inner ? rt_numel(x) / inner : 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = pd[2 * (nd - 1)];
        for (int i = nd - 2; i >= 0; i--) {
            int64_t idx = rem % x->dim[i];
            rem /= x->dim[i];
            off += (idx + pd[2 * i]) * os[i];
        }
        memcpy(o + off, (const int32_t *)x->data + r * inner, (size_t)inner * 4);
    }
    return ENG_OK;
}

/* ---- TopKV2 ---- */

static eng_status topk_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                             eng_diag *d)
{
    const eng_tensor *x = in[0];
    if (x->ndim < 1)
        return RT_FAIL(d, ENG_EINVAL, n, "input must have rank >= 1");
    if (!in[1]->data) {
        out[0].ndim = out[1].ndim = -1;
        return ENG_OK;
    }
    int64_t k;
    if (rt_scalar_int(in[1], &k))
        return RT_FAIL(d, ENG_EFORMAT, n, "k must be an int32 scalar");
    if (k < 0 || k > x->dim[x->ndim - 1])
        return RT_FAIL(d, ENG_EINVAL, n, "k %lld out of range for %lld values", (long long)k,
                       (long long)x->dim[x->ndim - 1]);
    int64_t dim[ENG_MAX_DIMS];
    memcpy(dim, x->dim, sizeof dim);
    dim[x->ndim - 1] = k;
    rt_set_shape(&out[0], x->dtype, x->ndim, dim);
    rt_set_shape(&out[1], ENG_I32, x->ndim, dim);
    return ENG_OK;
}

typedef struct topk_item {
    float v;
    int32_t i;
} topk_item;

/* a ranks before b: larger value, then smaller index (tfjs and TF order) */
static int topk_before(topk_item a, topk_item b) { return a.v > b.v || (a.v == b.v && a.i < b.i); }

static void heap_down(topk_item *h, int64_t k, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && topk_before(h[w], h[l]))
            w = l;
        if (r < k && topk_before(h[w], h[r]))
            w = r;
        if (w == i)
            return;
        topk_item t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int topk_cmp(const void *pa, const void *pb)
{
    const topk_item *a = pa, *b = pb;
    return topk_before(*a, *b) ? -1 : topk_before(*b, *a) ? 1 : 0;
}

static eng_status topk_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               const rt_ctx *c, eng_diag *d)
{
    (void)c;
    const eng_tensor *x = in[0];
    int64_t len = x->dim[x->ndim - 1], k = out[0].dim[x->ndim - 1];
    int64_t rows = len ? rt_numel(x) / len : 0;
    topk_item *h = malloc((size_t)(k ? k : 1) * sizeof *h);
    if (!h)
        return RT_FAIL(d, ENG_ENOMEM, n, "out of memory");
    for (int64_t r = 0; r < rows; r++) {
        /* heap whose root is the worst kept item */
        for (int64_t i = 0; i < len; i++) {
            topk_item it = {x->dtype == ENG_F32 ? eng_f32(x)[r * len + i]
                                                : (float)((const int32_t *)x->data)[r * len + i],
                            (int32_t)i};
            if (i < k) {
                h[i] = it;
                if (i == k - 1)
                    for (int64_t j = k / 2 - 1; j >= 0; j--)
                        heap_down(h, k, j);
            } else if (k && topk_before(it, h[0])) {
                h[0] = it;
                heap_down(h, k, 0);
            }
        }
        qsort(h, (size_t)k, sizeof *h, topk_cmp);
        for (int64_t j = 0; j < k; j++) {
            if (x->dtype == ENG_F32)
                eng_f32(&out[0])[r * k + j] = h[j].v;
            else
                ((int32_t *)out[0].data)[r * k + j] = ((const int32_t *)x->data)[r * len + h[j].i];
            ((int32_t *)out[1].data)[r * k + j] = h[j].i;
        }
    }
    free(h);
    return ENG_OK;
}

/* ---- GatherV2 ---- */

static eng_status gather_infer(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                               eng_diag *d)
{
    const eng_tensor *p = in[0], *idx = in[1];
    if (idx->dtype != ENG_I32)
        return RT_FAIL(d, ENG_EFORMAT, n, "indices must be int32");
    if (!in[2]->data) {
        out->ndim = -1;
        return ENG_OK;
    }
    int64_t a;
    if (rt_scalar_int(in[2], &a))
        return RT_FAIL(d, ENG_EFORMAT, n, "axis must be an int32 scalar");
    if (a < 0)
        a += p->ndim;
    if (a < 0 || a >= p->ndim)
        return RT_FAIL(d, ENG_EINVAL, n, "axis out of range for rank %d", p->ndim);
    if (p->ndim - 1 + idx->ndim > ENG_MAX_DIMS)
        return RT_FAIL(d, ENG_EUNSUPPORTED, n, "more than %d dimensions", ENG_MAX_DIMS);
    int64_t dim[ENG_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < a; i++)
        dim[k++] = p->dim[i];
    for (int i = 0; i < idx->ndim; i++)
        dim[k++] = idx->dim[i];
    for (int i = (int)a + 1; i < p->ndim; i++)
        dim[k++] = p->dim[i];
    rt_set_shape(out, p->dtype, k, dim);
    return ENG_OK;
}

static eng_status gather_compute(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                                 const rt_ctx *c, eng_diag *d)
{
    (void)c;
    const eng_tensor *p = in[0], *idx = in[1];
    int64_t a;
    rt_scalar_int(in[2], &a);
    if (a < 0)
        a += p->ndim;
    int64_t outer = 1, inner = 1, D = p->dim[a], ni = rt_numel(idx);
    for (int i = 0; i < a; i++)
        outer *= p->dim[i];
    for (int i = (int)a + 1; i < p->ndim; i++)
        inner *= p->dim[i];
    const int32_t *ix = idx->data;
    for (int64_t j = 0; j < ni; j++)
        if (ix[j] < 0 || ix[j] >= D)
            return RT_FAIL(d, ENG_EINVAL, n, "index %d out of range [0, %lld)", ix[j],
                           (long long)D);
    const int32_t *src = p->data;
    int32_t *dst = out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++)
            memcpy(dst + (o * ni + j) * inner, src + (o * D + ix[j]) * inner, (size_t)inner * 4);
    return ENG_OK;
}

const rt_op rt_ops_math[] = {
    {"Const", 0, 0, 1, NULL, leaf_infer, leaf_compute, NULL},
    {"Placeholder", 0, 0, 1, NULL, leaf_infer, leaf_compute, NULL},
    {"NoOp", 0, 1 << 20, 0, NULL, noop_infer, noop_compute, NULL},
    {"Identity", 1, 1, 1, NULL, unary_infer, copy_compute, NULL},
    {"Relu", 1, 1, 1, NULL, unary_infer, unary_compute, NULL},
    {"Relu6", 1, 1, 1, NULL, unary_infer, unary_compute, NULL},
    {"Sigmoid", 1, 1, 1, NULL, unary_infer, unary_compute, NULL},
    {"Tanh", 1, 1, 1, NULL, unary_infer, unary_compute, NULL},
    {"Add", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"AddV2", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"BiasAdd", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"Sub", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"Mul", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"RealDiv", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"Maximum", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"Minimum", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"Equal", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"FloorDiv", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"FloorMod", 2, 2, 1, NULL, binary_infer, binary_compute, NULL},
    {"ConcatV2", 2, 1 << 16, 1, NULL, concat_infer, concat_compute, NULL},
    {"Reshape", 2, 2, 1, NULL, reshape_infer, copy_compute, NULL},
    {"ExpandDims", 2, 2, 1, NULL, expand_infer, copy_compute, NULL},
    {"Squeeze", 1, 1, 1, NULL, squeeze_infer, copy_compute, NULL},
    {"Cast", 1, 1, 1, NULL, cast_infer, cast_compute, NULL},
    {"StridedSlice", 4, 4, 1, NULL, slice_infer, slice_compute, NULL},
    {"Pad", 2, 2, 1, NULL, pad_infer, pad_compute, NULL},
    {"PadV2", 3, 3, 1, NULL, pad_infer, pad_compute, NULL},
    {"TopKV2", 2, 2, 2, NULL, topk_infer, topk_compute, NULL},
    {"GatherV2", 3, 3, 1, NULL, gather_infer, gather_compute, NULL},
};
const int rt_ops_math_count = (int)(sizeof rt_ops_math / sizeof rt_ops_math[0]);
