/* run.c: the executor: runs the part of a loaded graph that the requested
 * outputs depend on, and infers shapes without running.
 *
 * Design: all state of a run lives in this call (the model is read only),
 * so runs may overlap on one model. Nodes execute in the load-time
 * topological order; each value carries a count of the consumers still to
 * run and is freed when it drops to zero, which keeps peak memory near the
 * two or three largest live activations. Constants and the input are
 * borrowed, never copied, unless handed out as outputs. The abort callback
 * is polled before every node.
 */
#include "runtime_int.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

eng_tensor *rt_tensor_alloc(eng_dtype dt, int ndim, const int64_t *dim)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dim[i] < 0 || (dim[i] > 0 && n > RT_MAX_ELEMS / dim[i]))
            return NULL;
        n *= dim[i];
    }
    eng_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->dim, dim, (size_t)ndim * sizeof *dim);
    t->data = eng_alloc((size_t)n * 4);
    if (!t->data) {
        free(t);
        return NULL;
    }
    return t;
}

eng_tensor *rt_tensor_clone(const eng_tensor *s)
{
    eng_tensor *t = rt_tensor_alloc(s->dtype, s->ndim, s->dim);
    if (t)
        memcpy(t->data, s->data, (size_t)rt_numel(s) * 4);
    return t;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

void eng_run_profile_add(eng_run_profile *p, const char *op, double ms, double cms, double flops)
{
    int i = 0;
    while (i < p->n && strcmp(p->op[i], op))
        i++;
    if (i == p->n) {
        if (p->n >= ENG_PROFILE_MAX_OPS)
            return;
        p->op[p->n++] = op;
    }
    p->ms[i] += ms;
    p->cpu_ms[i] += cms;
    p->flops[i] += flops;
    p->calls[i]++;
}

/* resolves "name" / "name:k" */
static eng_status resolve(const eng_model *m, const char *name, rt_ref *r, eng_diag *d)
{
    if (!name)
        return eng_fail(d, ENG_EINVAL, "output name is NULL");
    size_t len = strlen(name);
    int port = 0;
    int k = rt_find_node(m, name, len);
    if (k < 0) {
        const char *c = strrchr(name, ':');
        if (c && c[1]) {
            char *end;
            long p = strtol(c + 1, &end, 10);
            if (!*end && p >= 0 && p < RT_MAX_OUT) {
                port = (int)p;
                k = rt_find_node(m, name, (size_t)(c - name));
            }
        }
    }
    if (k < 0 || port >= m->nodes[k].op->n_out)
        return eng_fail(d, ENG_ENOTFOUND, "node '%s' not found in the model", name);
    r->node = k;
    r->port = port;
    return ENG_OK;
}

/* the form of node k this run executes: its fused form unless disabled */
static const rt_node *node_form(const eng_model *m, int k, const unsigned char *unfused)
{
    const rt_node *nd = &m->nodes[k];
    return nd->fused && !(unfused && unfused[k]) ? nd->fused : nd;
}

/* marks the nodes the given refs depend on; counts consumers per node */
static eng_status mark_needed(const eng_model *m, const rt_ref *refs, int n, unsigned char *needed,
                              int *uses, const unsigned char *unfused, eng_diag *d)
{
    int *stack = malloc((size_t)m->n_nodes * sizeof *stack);
    if (!stack)
        return eng_fail(d, ENG_ENOMEM, "run: out of memory");
    int sp = 0;
    for (int i = 0; i < n; i++) {
        uses[refs[i].node]++;
        if (!needed[refs[i].node]) {
            needed[refs[i].node] = 1;
            stack[sp++] = refs[i].node;
        }
    }
    while (sp) {
        const rt_node *nd = node_form(m, stack[--sp], unfused);
        for (int j = 0; j < nd->n_in; j++) {
            int s = nd->in[j].node;
            uses[s]++;
            if (!needed[s]) {
                needed[s] = 1;
                stack[sp++] = s;
            }
        }
    }
    free(stack);
    return ENG_OK;
}

static int input_known(const eng_tensor *const *in, int n)
{
    for (int i = 0; i < n; i++)
        if (in[i]->ndim < 0)
            return 0;
    return 1;
}

static eng_status shapes_impl(const eng_model *m, int in_ndim, const int64_t *in_dim,
                              const char *const *outputs, int n_outputs,
                              int64_t (*out_dim)[ENG_MAX_DIMS], int *out_ndim, double *flops,
                              eng_tensor **keep, eng_diag *d);

eng_status rt_infer_all(const eng_model *m, int in_ndim, const int64_t *in_dim, eng_tensor **out,
                        eng_diag *d)
{
    *out = NULL;
    return shapes_impl(m, in_ndim, in_dim, NULL, 0, NULL, NULL, NULL, out, d);
}

eng_status rt_infer_for(const eng_model *m, int in_ndim, const int64_t *in_dim,
                        const char *const *outputs, int n_outputs, eng_tensor **out, eng_diag *d)
{
    *out = NULL;
    return shapes_impl(m, in_ndim, in_dim, outputs, n_outputs, NULL, NULL, NULL, out, d);
}

eng_status eng_model_shapes(const eng_model *m, int in_ndim, const int64_t *in_dim,
                            const char *const *outputs, int n_outputs,
                            int64_t (*out_dim)[ENG_MAX_DIMS], int *out_ndim, double *flops,
                            eng_diag *d)
{
    return shapes_impl(m, in_ndim, in_dim, outputs, n_outputs, out_dim, out_ndim, flops, NULL, d);
}

static eng_status shapes_impl(const eng_model *m, int in_ndim, const int64_t *in_dim,
                              const char *const *outputs, int n_outputs,
                              int64_t (*out_dim)[ENG_MAX_DIMS], int *out_ndim, double *flops,
                              eng_tensor **keep, eng_diag *d)
{
    if (!m || in_ndim < 0 || in_ndim > ENG_MAX_DIMS || n_outputs < 0)
        return eng_fail(d, ENG_EINVAL, "eng_model_shapes: bad arguments");
    int n = m->n_nodes;
    eng_tensor *shp = calloc((size_t)n * RT_MAX_OUT, sizeof *shp);
    unsigned char *needed = calloc((size_t)n, 1);
    int *uses = calloc((size_t)n, sizeof *uses);
    rt_ref *refs = calloc((size_t)n_outputs + 1, sizeof *refs);
    unsigned char *all_unfused = malloc((size_t)n);
    eng_status st = ENG_OK;
    if (!shp || !needed || !uses || !refs || !all_unfused) {
        st = eng_fail(d, ENG_ENOMEM, "shapes: out of memory");
        goto out;
    }
    for (int i = 0; i < n_outputs; i++)
        if ((st = resolve(m, outputs[i], &refs[i], d)))
            goto out;
    /* shapes follow the graph as written: no fused forms */
    memset(all_unfused, 1, (size_t)n);
    if (n_outputs)
        st = mark_needed(m, refs, n_outputs, needed, uses, all_unfused, d);
    else
        memset(needed, 1, (size_t)n);
    if (st)
        goto out;
    double total = 0;
    for (int oi = 0; oi < n; oi++) {
        int k = m->order[oi];
        const rt_node *nd = &m->nodes[k];
        eng_tensor *o = &shp[(size_t)k * RT_MAX_OUT];
        if (!needed[k])
            continue;
        if (nd->value) {
            *o = *nd->value;
            continue;
        }
        if (k == m->input_node) {
            rt_set_shape(o, ENG_F32, in_ndim, in_dim);
            o->data = NULL;
            continue;
        }
        const eng_tensor *in[64];
        int nin = nd->n_in < 64 ? nd->n_in : 64;
        for (int j = 0; j < nin; j++)
            in[j] = &shp[(size_t)nd->in[j].node * RT_MAX_OUT + nd->in[j].port];
        if (!input_known(in, nin) || nd->n_in > 64) {
            for (int p = 0; p < nd->op->n_out; p++)
                o[p].ndim = -1;
            continue;
        }
        if ((st = nd->op->infer(nd, in, o, d)))
            goto out;
        for (int p = 0; p < nd->op->n_out; p++) {
            int64_t cnt = 1;
            for (int j = 0; j < o[p].ndim; j++) {
                if (o[p].dim[j] < 0 || (o[p].dim[j] > 0 && cnt > RT_MAX_ELEMS / o[p].dim[j])) {
                    st = eng_fail(d, ENG_ENOMEM, "node '%s': output shape too large", nd->name);
                    goto out;
                }
                cnt *= o[p].dim[j];
            }
        }
        if (nd->op->flops && o->ndim >= 0)
            total += nd->op->flops(nd, in, o);
        for (int p = 0; p < nd->op->n_out; p++)
            o[p].data = NULL; /* values of computed nodes are unknown here */
    }
    for (int i = 0; i < n_outputs; i++) {
        const eng_tensor *t = &shp[(size_t)refs[i].node * RT_MAX_OUT + refs[i].port];
        if (out_ndim)
            out_ndim[i] = t->ndim;
        if (out_dim)
            for (int j = 0; j < t->ndim && j < ENG_MAX_DIMS; j++)
                out_dim[i][j] = t->dim[j];
    }
    if (flops)
        *flops = total;
    if (keep) {
        *keep = shp;
        shp = NULL;
    }
out:
    free(shp);
    free(needed);
    free(uses);
    free(refs);
    free(all_unfused);
    return st;
}

static eng_status run_graph(const eng_model *m, const eng_tensor *input, const char *const *outputs,
                            int n_outputs, eng_tensor **out, const eng_run_opts *opts, int threads,
                            int may_split, eng_diag *d);

/* constant int32 scalar/vector input j of nd, every value > 0 */
static int const_axes_positive(const eng_model *m, const rt_node *nd, int j)
{
    const eng_tensor *v = m->nodes[nd->in[j].node].value;
    if (!v || v->dtype != ENG_I32)
        return 0;
    for (int64_t i = 0; i < rt_numel(v); i++)
        if (((const int32_t *)v->data)[i] <= 0)
            return 0;
    return 1;
}

/* Can each item of the batch run on its own? True when every needed node
 * works per item (convolutions, pooling, resize, activations, element-wise
 * ops whose constants do not span the batch, means and concatenations off
 * axis 0) and no output is a constant. */
static int batch_separable(const eng_model *m, const unsigned char *needed,
                           const unsigned char *unfused, const rt_ref *refs, int n_refs)
{
    static const char *const per_item[] = {"Conv2D",
                                           "_FusedConv2D",
                                           "DepthwiseConv2dNative",
                                           "FusedDepthwiseConv2dNative",
                                           "_ExpandDepthwise",
                                           "_DepthwiseConv1x1",
                                           "MaxPool",
                                           "ResizeBilinear",
                                           "Relu",
                                           "Relu6",
                                           "Sigmoid",
                                           "Tanh",
                                           "Identity",
                                           NULL};
    static const char *const binary[] = {"Add",     "AddV2",   "BiasAdd", "Sub", "Mul",
                                         "RealDiv", "Maximum", "Minimum", NULL};
    for (int i = 0; i < n_refs; i++)
        if (m->nodes[refs[i].node].value)
            return 0;
    for (int k = 0; k < m->n_nodes; k++) {
        if (!needed[k] || m->nodes[k].value || k == m->input_node)
            continue;
        const rt_node *nd = node_form(m, k, unfused);
        const char *op = nd->op->name;
        int ok = 0;
        for (int i = 0; per_item[i] && !ok; i++)
            ok = !strcmp(op, per_item[i]);
        for (int i = 0; binary[i] && !ok; i++)
            if (!strcmp(op, binary[i])) {
                ok = 1;
                for (int j = 0; j < nd->n_in; j++) {
                    const eng_tensor *v = m->nodes[nd->in[j].node].value;
                    if (v && v->ndim >= 4 && v->dim[0] != 1)
                        ok = 0;
                }
            }
        if (!ok && !strcmp(op, "Mean"))
            ok = const_axes_positive(m, nd, 1);
        if (!ok && !strcmp(op, "ConcatV2"))
            ok = const_axes_positive(m, nd, nd->n_in - 1);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Runs the items of the batch one by one, spread over the threads (each run
 * single-threaded), and concatenates the outputs: no barrier between ops, so
 * threads scale even when ops are small or the machine is busy, and peak
 * memory is that of `threads` single images, not of the whole batch. */
static eng_status run_split(const eng_model *m, const eng_tensor *input, const char *const *outputs,
                            int n_outputs, eng_tensor **out, const eng_run_opts *opts, int threads,
                            eng_diag *d)
{
    int64_t N = input->dim[0], per = rt_numel(input) / N;
    int T = threads < N ? threads : (int)N;
    eng_tensor **parts = calloc((size_t)N * n_outputs, sizeof *parts);
    eng_status *sts = calloc((size_t)N, sizeof *sts);
    eng_diag *ds = calloc((size_t)N, sizeof *ds);
    eng_run_profile *profs = calloc((size_t)T, sizeof *profs);
    eng_status st = ENG_OK;
    if (!parts || !sts || !ds || !profs) {
        st = eng_fail(d, ENG_ENOMEM, "run: out of memory");
        goto out;
    }
    int stop = 0;
#pragma omp parallel for num_threads(T) if (T > 1) schedule(dynamic, 1)
    for (int64_t b = 0; b < N; b++) {
        int halt;
#pragma omp atomic read
        halt = stop;
        if (halt)
            continue;
        eng_tensor view = *input;
        view.dim[0] = 1;
        view.data = (float *)input->data + b * per;
        eng_run_opts o = opts ? *opts : (eng_run_opts){0};
        o.profile = opts && opts->profile ? &profs[omp_get_thread_num()] : NULL;
        sts[b] = run_graph(m, &view, outputs, n_outputs, parts + (size_t)b * n_outputs, &o, 1, 0,
                           &ds[b]);
        if (sts[b]) {
#pragma omp atomic write
            stop = 1;
        }
    }
    for (int64_t b = 0; b < N && !st; b++)
        if (sts[b]) {
            st = sts[b];
            if (d)
                *d = ds[b];
        }
    if (opts && opts->profile)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < profs[t].n; i++) {
                eng_run_profile *p = opts->profile;
                int j = 0;
                while (j < p->n && strcmp(p->op[j], profs[t].op[i]))
                    j++;
                if (j == p->n) {
                    if (p->n >= ENG_PROFILE_MAX_OPS)
                        continue;
                    p->op[p->n++] = profs[t].op[i];
                }
                p->ms[j] += profs[t].ms[i] / T;
                p->cpu_ms[j] += profs[t].cpu_ms[i];
                p->flops[j] += profs[t].flops[i];
                p->calls[j] += profs[t].calls[i];
            }
    for (int i = 0; i < n_outputs && !st; i++) {
        const eng_tensor *p0 = parts[i];
        int64_t dim[ENG_MAX_DIMS];
        memcpy(dim, p0->dim, sizeof dim);
        dim[0] = 0;
        for (int64_t b = 0; b < N; b++)
            dim[0] += parts[(size_t)b * n_outputs + i]->dim[0];
        if (!(out[i] = rt_tensor_alloc(p0->dtype, p0->ndim, dim))) {
            st = eng_fail(d, ENG_ENOMEM, "output '%s': out of memory", outputs[i]);
            break;
        }
        size_t off = 0;
        for (int64_t b = 0; b < N; b++) {
            const eng_tensor *p = parts[(size_t)b * n_outputs + i];
            size_t bytes = (size_t)rt_numel(p) * 4;
            memcpy((char *)out[i]->data + off, p->data, bytes);
            off += bytes;
        }
    }
out:
    if (parts)
        for (int64_t i = 0; i < N * n_outputs; i++)
            eng_tensor_free(parts[i]);
    if (st)
        for (int i = 0; i < n_outputs; i++) {
            eng_tensor_free(out[i]);
            out[i] = NULL;
        }
    free(parts);
    free(sts);
    free(ds);
    free(profs);
    return st;
}

eng_status eng_model_run(const eng_model *m, const eng_tensor *input, const char *const *outputs,
                         int n_outputs, eng_tensor **out, const eng_run_opts *opts, eng_diag *d)
{
    if (!m || !input || !out || n_outputs < 1 || !outputs)
        return eng_fail(d, ENG_EINVAL, "eng_model_run: bad arguments");
    for (int i = 0; i < n_outputs; i++)
        out[i] = NULL;
    const rt_node *ph = &m->nodes[m->input_node];
    if (input->dtype != ENG_F32 || !input->data)
        return eng_fail(d, ENG_EINVAL, "input '%s': float32 data expected", ph->name);
    if (ph->decl_ndim > 0) {
        if (input->ndim != ph->decl_ndim)
            return eng_fail(d, ENG_EINVAL, "input '%s': rank %d, the model declares %d", ph->name,
                            input->ndim, ph->decl_ndim);
        int last = ph->decl_ndim - 1;
        if (ph->decl_dim[last] > 0 && input->dim[last] != ph->decl_dim[last])
            return eng_fail(d, ENG_EINVAL, "input '%s': %lld channels, the model declares %lld",
                            ph->name, (long long)input->dim[last], (long long)ph->decl_dim[last]);
    }
    for (int i = 0; i < input->ndim; i++)
        if (input->dim[i] < 1)
            return eng_fail(d, ENG_EINVAL, "input '%s': empty dimension %d", ph->name, i);

    int threads = opts && opts->threads > 0 ? opts->threads : 1;
    return run_graph(m, input, outputs, n_outputs, out, opts, threads > 256 ? 256 : threads, 1, d);
}

/* One run's values and the bookkeeping that says which nodes run and when
 * a value can go. */
typedef struct run_state {
    const eng_model *m;
    eng_tensor **val;        /* n_nodes x RT_MAX_OUT: the values of node outputs */
    unsigned char *needed;   /* node feeds a requested output */
    unsigned char *borrowed; /* node's value is a constant or the input: not freed */
    int *uses;               /* consumers of the node still to run */
    rt_ref *refs;            /* the requested outputs, resolved */
    unsigned char *unfused;  /* node runs unfused: the run asks for a node it absorbs */
} run_state;

/* Resolves the outputs and marks the nodes they need (r zeroed first, so
 * run_state_release works whatever this returns). */
static eng_status run_state_init(run_state *r, const eng_model *m, const char *const *outputs,
                                 int n_outputs, eng_diag *d)
{
    int n = m->n_nodes;
    memset(r, 0, sizeof *r);
    r->m = m;
    r->val = calloc((size_t)n * RT_MAX_OUT, sizeof *r->val);
    r->needed = calloc((size_t)n, 1);
    r->borrowed = calloc((size_t)n, 1);
    r->uses = calloc((size_t)n, sizeof *r->uses);
    r->refs = calloc((size_t)n_outputs, sizeof *r->refs);
    r->unfused = calloc((size_t)n, 1);
    if (!r->val || !r->needed || !r->borrowed || !r->uses || !r->refs || !r->unfused)
        return eng_fail(d, ENG_ENOMEM, "run: out of memory");
    eng_status st;
    for (int i = 0; i < n_outputs; i++)
        if ((st = resolve(m, outputs[i], &r->refs[i], d)))
            return st;
    /* a fused form is skipped when the run asks for a node it absorbs */
    for (int i = 0; i < n_outputs; i++)
        if (m->nodes[r->refs[i].node].absorbed_by >= 0)
            r->unfused[m->nodes[r->refs[i].node].absorbed_by] = 1;
    return mark_needed(m, r->refs, n_outputs, r->needed, r->uses, r->unfused, d);
}

/* Frees the values still held (borrowed ones stay) and the bookkeeping. */
static void run_state_release(run_state *r)
{
    if (r->val && r->borrowed)
        for (int k = 0; k < r->m->n_nodes; k++)
            if (!r->borrowed[k])
                for (int p = 0; p < RT_MAX_OUT; p++)
                    eng_tensor_free(r->val[(size_t)k * RT_MAX_OUT + p]);
    free(r->val);
    free(r->needed);
    free(r->borrowed);
    free(r->uses);
    free(r->refs);
    free(r->unfused);
}

/* The profile's row for nd: convolutions by kind, as their costs differ
 * (1x1 GEMMs, gathered KxK ones, depthwise by window and stride); other ops
 * by op name; in a profile by node, the node's name. Strings that outlive
 * the run (the profile keeps the pointers). */
static const char *profile_label(const rt_node *nd, const eng_tensor *const *in, int by_node)
{
    if (by_node)
        return nd->name;
    if (nd->op == &rt_op_expand_dw && in[1] && in[1]->ndim == 4) {
        int s2 = nd->a.stride[0] > 1 || nd->a.stride[1] > 1;
        if (in[1]->dim[0] == 3 && in[1]->dim[1] == 3)
            return s2 ? "1x1 + depthwise 3x3 s2" : "1x1 + depthwise 3x3 s1";
        if (in[1]->dim[0] == 5 && in[1]->dim[1] == 5)
            return s2 ? "1x1 + depthwise 5x5 s2" : "1x1 + depthwise 5x5 s1";
        return "1x1 + depthwise other";
    }
    if (nd->op == &rt_op_dw_conv1x1 && nd->n_in > 3) {
        const eng_tensor *f = in[2 + nd->a.has_bias];
        int s2 = nd->dw->a.stride[0] > 1 || nd->dw->a.stride[1] > 1;
        if (f && f->dim[0] == 3 && f->dim[1] == 3)
            return s2 ? "depthwise 3x3 s2 + 1x1" : "depthwise 3x3 s1 + 1x1";
        if (f && f->dim[0] == 5 && f->dim[1] == 5)
            return s2 ? "depthwise 5x5 s2 + 1x1" : "depthwise 5x5 s1 + 1x1";
        return "depthwise other + 1x1";
    }
    int dw = rt_is_op(nd, "DepthwiseConv2dNative") || rt_is_op(nd, "FusedDepthwiseConv2dNative");
    int conv = rt_is_op(nd, "Conv2D") || rt_is_op(nd, "_FusedConv2D");
    if ((!dw && !conv) || nd->n_in < 2 || !in[1] || in[1]->ndim != 4)
        return nd->op->name;
    int64_t kh = in[1]->dim[0], kw = in[1]->dim[1];
    int s2 = nd->a.stride[0] > 1 || nd->a.stride[1] > 1;
    if (conv)
        return kh == 1 && kw == 1 ? (s2 ? "conv 1x1 s2" : "conv 1x1") : "conv KxK (stem)";
    if (kh == 3 && kw == 3)
        return s2 ? "depthwise 3x3 s2" : "depthwise 3x3 s1";
    if (kh == 5 && kw == 5)
        return s2 ? "depthwise 5x5 s2" : "depthwise 5x5 s1";
    return "depthwise other";
}

/* Allocates the outputs o of node nd for inputs in (those not already
 * there) and computes them, timed into the profile when the run keeps one. */
static eng_status node_compute(const rt_node *nd, const eng_tensor **in, eng_tensor **o,
                               const eng_run_opts *opts, const rt_ctx *ctx, eng_diag *d)
{
    eng_tensor shape[RT_MAX_OUT];
    memset(shape, 0, sizeof shape);
    eng_status st = nd->op->infer(nd, in, shape, d);
    for (int p = 0; !st && p < nd->op->n_out; p++) {
        if (o[p]) /* an input's tensor, taken over by run_node (same shape) */
            continue;
        if (shape[p].ndim < 0)
            st = eng_fail(d, ENG_EUNSUPPORTED, "node '%s': output shape not computable", nd->name);
        else if (!(o[p] = rt_tensor_alloc(shape[p].dtype, shape[p].ndim, shape[p].dim)))
            st = eng_fail(d, ENG_ENOMEM, "node '%s': out of memory for its output", nd->name);
    }
    if (st)
        return st;
    double t0 = opts && opts->profile ? now_ms() : 0;
    double c0 = opts && opts->profile ? cpu_ms() : 0;
    eng_tensor outs[RT_MAX_OUT];
    for (int p = 0; p < nd->op->n_out; p++)
        outs[p] = *o[p];
    st = nd->op->compute(nd, in, outs, ctx, d);
    if (opts && opts->profile) {
        double fl = nd->op->flops ? nd->op->flops(nd, in, o[0]) : 0;
        eng_run_profile_add(opts->profile, profile_label(nd, in, opts->profile->by_node),
                            now_ms() - t0, cpu_ms() - c0, fl);
    }
    return st;
}

/* How a node may use an input's tensor as its output once nothing else
 * needs that input: REUSE_MOVE, the bytes stay as they are (Identity,
 * Reshape, ExpandDims, Squeeze: the value moves over with its new shape;
 * a model's outputs often end in an Identity, and copying CenterNet's
 * heatmaps cost 0.7 ms per image); REUSE_IN_PLACE, an element-wise op
 * that writes each element where it read it (squeeze-excite's Mul saves a
 * pass over fresh memory); 0, never. */
enum { REUSE_MOVE = 1, REUSE_IN_PLACE = 2 };

static int reuse_kind(const rt_node *nd)
{
    static const char *const move[] = {"Identity", "Reshape", "ExpandDims", "Squeeze"};
    static const char *const in_place[] = {"Relu", "Relu6",   "Sigmoid", "Tanh",
                                           "Add",  "AddV2",   "BiasAdd", "Sub",
                                           "Mul",  "RealDiv", "Maximum", "Minimum"};
    if (nd->op->n_out != 1)
        return 0;
    for (size_t i = 0; i < sizeof move / sizeof *move; i++)
        if (rt_is_op(nd, move[i]))
            return REUSE_MOVE;
    for (size_t i = 0; i < sizeof in_place / sizeof *in_place; i++)
        if (rt_is_op(nd, in_place[i]))
            return REUSE_IN_PLACE;
    return 0;
}

/* Gives node nd's output o[0] the tensor of one of its inputs (the first,
 * or for an element-wise op either of the first two) that has no other
 * consumer, is not borrowed and has the output's type and size (for an
 * element-wise op its shape: not the operand that broadcasts). Returns
 * that input's index, or -1 (o[0] left NULL) when none fits. */
static int take_over_input(run_state *r, const rt_node *nd, eng_tensor **o, int kind, eng_diag *d)
{
    const eng_tensor *in[4] = {NULL};
    int n = nd->n_in < 4 ? nd->n_in : 4;
    for (int j = 0; j < n; j++)
        in[j] = r->val[(size_t)nd->in[j].node * RT_MAX_OUT + nd->in[j].port];
    eng_tensor shape = {0};
    if (nd->n_in > 4 || nd->op->infer(nd, in, &shape, d) != ENG_OK || shape.ndim < 0)
        return -1; /* the usual path reports it */
    for (int j = 0; j < (kind == REUSE_MOVE ? 1 : n < 2 ? n : 2); j++) {
        int s = nd->in[j].node;
        eng_tensor **src = &r->val[(size_t)s * RT_MAX_OUT + nd->in[j].port];
        const eng_tensor *t = *src;
        if (r->uses[s] != 1 || r->borrowed[s] || !t || t->dtype != shape.dtype ||
            rt_numel(t) != rt_numel(&shape))
            continue;
        if (kind == REUSE_IN_PLACE &&
            (t->ndim != shape.ndim || memcmp(t->dim, shape.dim, (size_t)t->ndim * sizeof *t->dim)))
            continue;
        o[0] = *src;
        *src = NULL;
        o[0]->ndim = shape.ndim;
        memcpy(o[0]->dim, shape.dim, sizeof shape.dim);
        return j;
    }
    return -1;
}

/* Runs needed node k: a constant or the input is borrowed, anything else
 * computed; then frees the inputs whose last consumer this was. */
static eng_status run_node(run_state *r, int k, const eng_tensor *input, const eng_run_opts *opts,
                           const rt_ctx *ctx, eng_diag *d)
{
    const eng_model *m = r->m;
    const rt_node *nd = node_form(m, k, r->unfused);
    eng_tensor **o = &r->val[(size_t)k * RT_MAX_OUT];
    if (opts && opts->abort && opts->abort(opts->abort_ctx))
        return eng_fail(d, ENG_EABORTED, "run aborted before node '%s'", nd->name);
    if (nd->value || k == m->input_node) {
        o[0] = nd->value ? nd->value : (eng_tensor *)input;
        r->borrowed[k] = 1;
        return ENG_OK;
    }
    int kind = reuse_kind(nd);
    int taken = kind ? take_over_input(r, nd, o, kind, d) : -1;
    if (kind != REUSE_MOVE || taken < 0) {
        const eng_tensor *in_stack[16];
        const eng_tensor **in = in_stack;
        if (nd->n_in > 16 && !(in = malloc((size_t)nd->n_in * sizeof *in)))
            return eng_fail(d, ENG_ENOMEM, "run: out of memory");
        for (int j = 0; j < nd->n_in; j++)
            in[j] =
                j == taken ? o[0] : r->val[(size_t)nd->in[j].node * RT_MAX_OUT + nd->in[j].port];
        eng_status st = node_compute(nd, in, o, opts, ctx, d);
        if (in != in_stack)
            free(in);
        if (st)
            return st;
    }
    /* release inputs whose last consumer this was (a taken one's slot is
     * empty now; the producer's other outputs go) */
    for (int j = 0; j < nd->n_in; j++) {
        int s = nd->in[j].node;
        if (--r->uses[s] == 0 && !r->borrowed[s])
            for (int p = 0; p < RT_MAX_OUT; p++) {
                eng_tensor_free(r->val[(size_t)s * RT_MAX_OUT + p]);
                r->val[(size_t)s * RT_MAX_OUT + p] = NULL;
            }
    }
    return ENG_OK;
}

/* Hands the requested values out: clones first (borrowed values and
 * repeated names), so a failed copy leaves ownership clear; then the
 * remaining outputs move out. */
static eng_status run_outputs(run_state *r, const char *const *outputs, int n_outputs,
                              eng_tensor **out, eng_diag *d)
{
    const rt_ref *refs = r->refs;
    for (int i = 0; i < n_outputs; i++) {
        const eng_tensor *src = r->val[(size_t)refs[i].node * RT_MAX_OUT + refs[i].port];
        int repeat = 0;
        for (int j = 0; j < i; j++)
            repeat |= refs[j].node == refs[i].node && refs[j].port == refs[i].port;
        if ((r->borrowed[refs[i].node] || repeat) && !(out[i] = rt_tensor_clone(src)))
            return eng_fail(d, ENG_ENOMEM, "output '%s': out of memory", outputs[i]);
    }
    for (int i = 0; i < n_outputs; i++) {
        eng_tensor **slot = &r->val[(size_t)refs[i].node * RT_MAX_OUT + refs[i].port];
        if (!out[i]) {
            out[i] = *slot;
            *slot = NULL;
        }
    }
    return ENG_OK;
}

static eng_status run_graph(const eng_model *m, const eng_tensor *input, const char *const *outputs,
                            int n_outputs, eng_tensor **out, const eng_run_opts *opts, int threads,
                            int may_split, eng_diag *d)
{
    rt_ctx ctx = {.threads = threads};
    run_state r;
    eng_status st = run_state_init(&r, m, outputs, n_outputs, d);
    int split = !st && may_split && input->ndim >= 1 && input->dim[0] > 1 &&
                batch_separable(m, r.needed, r.unfused, r.refs, n_outputs);
    for (int oi = 0; !st && !split && oi < m->n_nodes; oi++)
        if (r.needed[m->order[oi]])
            st = run_node(&r, m->order[oi], input, opts, &ctx, d);
    if (!st && !split)
        st = run_outputs(&r, outputs, n_outputs, out, d);
    run_state_release(&r);
    if (st)
        for (int i = 0; i < n_outputs; i++) {
            eng_tensor_free(out[i]);
            out[i] = NULL;
        }
    if (split)
        return run_split(m, input, outputs, n_outputs, out, opts, threads, d);
    return st;
}
