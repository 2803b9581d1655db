/* fuse.c: load-time fusion of op patterns into kernel epilogues.
 *
 * Design: fusion never rewrites the graph. A node whose value can be
 * computed more cheaply from earlier nodes gets an alternative form
 * (rt_node.fused), and the nodes that form skips are marked absorbed. The
 * executor uses the fused form unless a run asks for one of the absorbed
 * nodes as an output, so every tap stays available. Fused results are
 * bit-identical to the unfused graph: the epilogue performs the same float
 * operations in the same order.
 *
 * Patterns: hard-swish y = (c * x) * relu6(x + 3) right after a convolution
 * or depthwise convolution without activation, with c = 1/6 or its
 * float16-rounded value 0.1666259765625 (as TF exports it): the
 * convolution then applies it in its epilogue. Residual y = conv(x) + s
 * (the projection of an inverted-residual block): the convolution adds s in
 * its epilogue; fused only where s has the conv's shape at the declared
 * input, and a run whose shapes differ gets an error naming the node to
 * request to run unfused. Expand + depthwise: a depthwise convolution (mult 1,
 * dilation 1, constant filter; plain or in its hard-swish form) whose input
 * is a 1x1 stride-1 convolution with constant weights used nowhere else (the
 * expansion of an inverted-residual block, plain or in its hard-swish form):
 * the depthwise node gets a form that makes the expanded tensor in row bands
 * and consumes each band while it is in L2 (rt_expand_dwconv2d), so that
 * tensor is never stored whole. Activation after its producer: Sigmoid of a
 * convolution (a detector's heatmap) or Relu of a concatenation
 * (CenterNet's neck), where the producer has no other reader. Depthwise +
 * 1x1 (after the residual forms, whose added tensor it keeps): a 1x1
 * stride-1 convolution whose input is a depthwise convolution (mult 1,
 * dilation 1, constant filter) used nowhere else (a separable convolution:
 * CenterNet's neck and heads) makes the depthwise rows in bands that stay in
 * L2 and runs the 1x1 on each band (rt_dw_conv1x1), so the depthwise's
 * output is never stored whole.
 */
#include "runtime_int.h"

#include <stdlib.h>
#include <string.h>

static int const_scalar(const eng_model *m, rt_ref r, float *v)
{
    const rt_node *n = &m->nodes[r.node];
    if (!n->value || n->value->dtype != ENG_F32 || rt_numel(n->value) != 1)
        return 0;
    *v = eng_f32(n->value)[0];
    return 1;
}

/* for a binary node with one constant scalar side: index of the other input, or -1 */
static int other_than_const(const eng_model *m, const rt_node *n, float *c)
{
    if (n->n_in != 2)
        return -1;
    if (const_scalar(m, n->in[1], c))
        return 0;
    if (const_scalar(m, n->in[0], c))
        return 1;
    return -1;
}

static int is_conv(const rt_node *n)
{
    return rt_is_op(n, "Conv2D") || rt_is_op(n, "_FusedConv2D") ||
           rt_is_op(n, "DepthwiseConv2dNative") || rt_is_op(n, "FusedDepthwiseConv2dNative");
}

static int same_ref(rt_ref a, rt_ref b) { return a.node == b.node && a.port == b.port; }

/* A copy of node X standing for node Y (fused form) with room for n_in
 * inputs (at least X's), X's inputs copied first; NULL when out of memory. */
static rt_node *fused_copy(const rt_node *X, const rt_node *Y, int n_in)
{
    rt_node *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    *f = *X;
    f->name = strdup(Y->name);
    f->n_in = n_in;
    f->in = malloc((size_t)(n_in ? n_in : 1) * sizeof *f->in);
    if (!f->name || !f->in) {
        free(f->name);
        free(f->in);
        free(f);
        return NULL;
    }
    memcpy(f->in, X->in, (size_t)X->n_in * sizeof *f->in);
    f->value = NULL;
    f->packed_borrowed = 1;
    f->fused = NULL;
    f->absorbed_by = -1;
    return f;
}

/* Makes f node N's fused form, freeing the form it replaces (which f
 * includes). */
static void set_form(rt_node *N, rt_node *f)
{
    if (N->fused) {
        free(N->fused->name);
        free(N->fused->in);
        free(N->fused);
    }
    N->fused = f;
}

/* y = Mul(M1, R) with M1 = Mul(x, c), R = Relu6(Add(x, 3)), x a conv output */
static eng_status try_hswish(eng_model *m, int y, eng_diag *d)
{
    rt_node *Y = &m->nodes[y];
    if (!rt_is_op(Y, "Mul") || Y->n_in != 2 || Y->fused || Y->absorbed_by >= 0)
        return ENG_OK;
    for (int side = 0; side < 2; side++) {
        rt_node *M1 = &m->nodes[Y->in[side].node], *R = &m->nodes[Y->in[1 - side].node];
        if (!rt_is_op(M1, "Mul") || !rt_is_op(R, "Relu6") || M1->n_consumers != 1 ||
            R->n_consumers != 1 || M1 == R)
            continue;
        rt_node *A = &m->nodes[R->in[0].node];
        if (!(rt_is_op(A, "Add") || rt_is_op(A, "AddV2")) || A->n_consumers != 1)
            continue;
        float three, c;
        int ia = other_than_const(m, A, &three), im = other_than_const(m, M1, &c);
        if (ia < 0 || im < 0 || three != 3.0f || !same_ref(A->in[ia], M1->in[im]))
            continue;
        eng_act act;
        if (c == 1.0f / 6.0f)
            act = ENG_ACT_HSWISH;
        else if (c == 0.1666259765625f)
            act = ENG_ACT_HSWISH_F16;
        else
            continue;
        int x = A->in[ia].node;
        rt_node *X = &m->nodes[x];
        if (!is_conv(X) || X->a.act != ENG_ACT_NONE || X->n_consumers != 2 || X->absorbed_by >= 0 ||
            X->fused)
            continue;
        rt_node *f = fused_copy(X, Y, X->n_in);
        if (!f)
            return eng_fail(d, ENG_ENOMEM, "fusion: out of memory");
        f->a.act = act;
        Y->fused = f;
        X->absorbed_by = A->absorbed_by = R->absorbed_by = M1->absorbed_by = y;
        return ENG_OK;
    }
    return ENG_OK;
}

/* y = Sigmoid(X), X a convolution without activation used only here (a
 * detector's heatmap): X applies the sigmoid in its epilogue, with the
 * function the Sigmoid op applies (rt_sigmoid8 per lane). y = Relu(C), C a
 * concatenation used only here (CenterNet's neck): C clamps while it
 * copies. Either way the output is not written twice. */
static eng_status try_act_after(eng_model *m, int y, eng_diag *d)
{
    rt_node *Y = &m->nodes[y];
    int sigmoid = rt_is_op(Y, "Sigmoid"), relu = rt_is_op(Y, "Relu");
    if ((!sigmoid && !relu) || Y->n_in != 1 || Y->fused || Y->absorbed_by >= 0 ||
        Y->in[0].port != 0)
        return ENG_OK;
    rt_node *X = &m->nodes[Y->in[0].node];
    if (X->n_consumers != 1 || X->absorbed_by >= 0 || X->fused || X->value ||
        X->a.act != ENG_ACT_NONE || X->a.residual)
        return ENG_OK;
    if (sigmoid ? !(rt_is_op(X, "Conv2D") || rt_is_op(X, "_FusedConv2D"))
                : !rt_is_op(X, "ConcatV2"))
        return ENG_OK;
    rt_node *f = fused_copy(X, Y, X->n_in);
    if (!f)
        return eng_fail(d, ENG_ENOMEM, "fusion: out of memory");
    f->a.act = sigmoid ? ENG_ACT_SIGMOID : ENG_ACT_RELU;
    Y->fused = f;
    X->absorbed_by = y;
    return ENG_OK;
}

/* y = Add(P, S), P a convolution without activation used only here, S a
 * computed tensor of exactly P's shape at the declared input: P adds S in
 * its epilogue (after the bias, as the graph does), so P's output is never
 * stored. */
static eng_status try_residual(eng_model *m, int y, const eng_tensor *shapes, eng_diag *d)
{
    rt_node *Y = &m->nodes[y];
    if (!(rt_is_op(Y, "Add") || rt_is_op(Y, "AddV2")) || Y->n_in != 2 || Y->fused ||
        Y->absorbed_by >= 0)
        return ENG_OK;
    for (int side = 0; side < 2; side++) {
        rt_ref pr = Y->in[side], sr = Y->in[1 - side];
        rt_node *P = &m->nodes[pr.node], *S = &m->nodes[sr.node];
        if (!(rt_is_op(P, "Conv2D") || rt_is_op(P, "_FusedConv2D")) || P->a.act != ENG_ACT_NONE ||
            P->a.residual || P->n_consumers != 1 || P->absorbed_by >= 0 || P->fused || S->value ||
            pr.node == sr.node)
            continue;
        const eng_tensor *ps = &shapes[(size_t)pr.node * RT_MAX_OUT + pr.port];
        const eng_tensor *ss = &shapes[(size_t)sr.node * RT_MAX_OUT + sr.port];
        if (ps->ndim != 4 || !rt_same_shape(ps, ss) || ss->dtype != ENG_F32)
            continue;
        rt_node *f = fused_copy(P, Y, P->n_in + 1);
        if (!f)
            return eng_fail(d, ENG_ENOMEM, "fusion: out of memory");
        f->in[P->n_in] = sr;
        f->a.residual = 1;
        Y->fused = f;
        P->absorbed_by = y;
        return ENG_OK;
    }
    return ENG_OK;
}

static int is_dw(const rt_node *n)
{
    return rt_is_op(n, "DepthwiseConv2dNative") || rt_is_op(n, "FusedDepthwiseConv2dNative");
}

/* constant float32 4-D tensor behind input i of n, or NULL */
static const eng_tensor *const_filter(const eng_model *m, const rt_node *n, int i)
{
    const eng_tensor *v = rt_input_node(m, n, i)->value;
    return v && v->dtype == ENG_F32 && v->ndim == 4 ? v : NULL;
}

/* node k computes (or its hard-swish form is) a depthwise convolution of a 1x1 convolution
 * that nothing else reads: k gets the fused expand + depthwise form */
static eng_status try_expand_dw(eng_model *m, int k, eng_diag *d)
{
    rt_node *N = &m->nodes[k];
    if (N->absorbed_by >= 0)
        return ENG_OK;
    rt_node *D = N->fused ? N->fused : N;
    if (!is_dw(D) || D->n_in != 2 + D->a.has_bias || D->a.dilation[0] != 1 ||
        D->a.dilation[1] != 1 || D->a.residual || D->in[0].port != 0)
        return ENG_OK;
    const eng_tensor *df = const_filter(m, D, 1);
    if (!df || df->dim[3] != 1 || (D->a.has_bias && !rt_input_node(m, D, 2)->value))
        return ENG_OK;
    int p = D->in[0].node;
    rt_node *P = &m->nodes[p];
    if (P->n_consumers != 1 || P->absorbed_by >= 0 || P->value || p == k)
        return ENG_OK;
    const rt_node *E = P->fused ? P->fused : P;
    if (!(rt_is_op(E, "Conv2D") || rt_is_op(E, "_FusedConv2D")) || !E->packed || E->a.residual ||
        E->n_in != 2 + E->a.has_bias || E->a.stride[0] != 1 || E->a.stride[1] != 1 ||
        E->a.dilation[0] != 1 || E->a.dilation[1] != 1)
        return ENG_OK;
    if (E->a.padding == ENG_PAD_EXPLICIT &&
        (E->a.pads[0] || E->a.pads[1] || E->a.pads[2] || E->a.pads[3]))
        return ENG_OK;
    const eng_tensor *ef = const_filter(m, E, 1);
    if (!ef || ef->dim[0] != 1 || ef->dim[1] != 1 || ef->dim[3] != df->dim[2])
        return ENG_OK;
    rt_node *f = fused_copy(D, N, D->n_in + 1);
    if (!f)
        return eng_fail(d, ENG_ENOMEM, "fusion: out of memory");
    f->op = &rt_op_expand_dw;
    f->in[0] = E->in[0];
    f->in[D->n_in] = E->in[1];
    f->a.pre_act = E->a.act;
    f->packed = E->packed;
    set_form(N, f); /* replaces the hard-swish form, if any */
    P->absorbed_by = k;
    return ENG_OK;
}

/* node k computes (plain or in its sigmoid or residual form) a 1x1 stride-1 convolution of a
 * depthwise convolution that nothing else reads (a separable convolution, as in CenterNet's
 * head): k gets the fused depthwise + 1x1 form, which keeps that form's activation and added
 * tensor */
static eng_status try_dw_conv1x1(eng_model *m, int k, eng_diag *d)
{
    rt_node *N = &m->nodes[k];
    if (N->absorbed_by >= 0)
        return ENG_OK;
    rt_node *P = N->fused ? N->fused : N;
    if (!(rt_is_op(P, "Conv2D") || rt_is_op(P, "_FusedConv2D")) || !P->packed ||
        P->n_in != 2 + P->a.has_bias + P->a.residual || P->a.stride[0] != 1 ||
        P->a.stride[1] != 1 || P->a.dilation[0] != 1 || P->a.dilation[1] != 1 || P->in[0].port != 0)
        return ENG_OK;
    if (P->a.padding == ENG_PAD_EXPLICIT &&
        (P->a.pads[0] || P->a.pads[1] || P->a.pads[2] || P->a.pads[3]))
        return ENG_OK;
    const eng_tensor *pf = const_filter(m, P, 1);
    if (!pf || pf->dim[0] != 1 || pf->dim[1] != 1)
        return ENG_OK;
    int q = P->in[0].node;
    rt_node *D = &m->nodes[q];
    if (q == k || D->n_consumers != 1 || D->absorbed_by >= 0 || D->fused || D->value || !is_dw(D) ||
        D->n_in != 2 + D->a.has_bias || D->a.dilation[0] != 1 || D->a.dilation[1] != 1 ||
        D->a.residual || D->in[0].port != 0)
        return ENG_OK;
    const eng_tensor *df = const_filter(m, D, 1);
    if (!df || df->dim[3] != 1 || df->dim[2] != pf->dim[2] ||
        (D->a.has_bias && !rt_input_node(m, D, 2)->value))
        return ENG_OK;
    rt_node *f = fused_copy(P, N, P->n_in + D->n_in - 1);
    if (!f)
        return eng_fail(d, ENG_ENOMEM, "fusion: out of memory");
    f->op = &rt_op_dw_conv1x1;
    /* x, the 1x1's filter and bias, the depthwise's filter and bias, the added tensor */
    int i = 0;
    f->in[i++] = D->in[0];
    for (int j = 1; j < 2 + P->a.has_bias; j++)
        f->in[i++] = P->in[j];
    for (int j = 1; j < D->n_in; j++)
        f->in[i++] = D->in[j];
    if (P->a.residual)
        f->in[i++] = P->in[P->n_in - 1];
    f->dw = D;
    set_form(N, f); /* replaces the sigmoid or residual form, if any */
    D->absorbed_by = k;
    return ENG_OK;
}

eng_status rt_fuse_dw_conv1x1(eng_model *m, eng_diag *d)
{
    for (int i = 0; i < m->n_nodes; i++) {
        eng_status st = try_dw_conv1x1(m, m->order[i], d);
        if (st)
            return st;
    }
    return ENG_OK;
}

eng_status rt_fuse_residual(eng_model *m, const eng_tensor *shapes, eng_diag *d)
{
    if (!shapes)
        return ENG_OK;
    for (int i = 0; i < m->n_nodes; i++) {
        eng_status st = try_residual(m, m->order[i], shapes, d);
        if (st)
            return st;
    }
    return ENG_OK;
}

eng_status rt_fuse(eng_model *m, eng_diag *d)
{
    for (int i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            m->nodes[m->nodes[i].in[j].node].n_consumers++;
    for (int i = 0; i < m->n_nodes; i++) {
        eng_status st = try_hswish(m, m->order[i], d);
        if (st)
            return st;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        eng_status st = try_expand_dw(m, m->order[i], d);
        if (st)
            return st;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        eng_status st = try_act_after(m, m->order[i], d);
        if (st)
            return st;
    }
    return ENG_OK;
}
