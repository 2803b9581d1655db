/* runtime_int.h: private structures of the runtime: the graph, its nodes,
 * the op table and the helpers ops share. Not part of the public API.
 *
 * An op is three functions: prepare (load time: check attributes and
 * constant inputs, repack weights), infer (output shapes from input shapes,
 * used at load with the declared input and before every compute), compute
 * (fills outputs already allocated by the executor). Tensors without data
 * (data == NULL) stand for shapes only during the load-time check.
 */
#ifndef VFS_ENGINE_RUNTIME_INT_H
#define VFS_ENGINE_RUNTIME_INT_H

#include "asan_ranges.h"
#include "runtime.h"

#include <string.h>

#define RT_MAX_OUT 2                    /* outputs of one node (TopKV2 has two) */
#define RT_MAX_ELEMS ((int64_t)1 << 32) /* limit of eng_tensor_new */

/* tensorflow dtypes we carry; bool lives in ENG_I32 as 0/1 */
enum { RT_DT_FLOAT = 1, RT_DT_INT32 = 3, RT_DT_BOOL = 10 };

typedef struct rt_ref {
    int node;
    int port;
} rt_ref;

/* Attributes of every op we know, parsed once at load. */
typedef struct rt_attr {
    int stride[2], dilation[2]; /* h, w */
    int ksize[2];               /* pooling window h, w */
    eng_padding padding;
    int pads[4];  /* explicit: top, bottom, left, right */
    int has_bias; /* fused BiasAdd */
    eng_act act;  /* fused activation */
    int keep_dims;
    int align_corners, half_pixel;
    int begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_mask;
    int dst_type, src_type; /* Cast, Const dtype */
    int transpose_a, transpose_b;
    int batch_dims;
    int n_squeeze, squeeze[ENG_MAX_DIMS];
    int residual;    /* fused form of a conv: last input is added after the bias */
    eng_act pre_act; /* fused expand + depthwise form: the expand 1x1's activation */
} rt_attr;

struct rt_op;

typedef struct rt_node {
    char *name;
    const struct rt_op *op;
    int n_in;
    rt_ref *in;
    rt_attr a;
    eng_tensor *value;       /* Const: the weight (owned) */
    eng_conv_packed *packed; /* conv: filter+bias repacked at load (owned) */
    int decl_ndim;           /* Placeholder: declared shape, -1 for unknown sizes */
    int64_t decl_dim[ENG_MAX_DIMS];
    int n_consumers; /* data edges leaving this node */
    /* Fusion (fuse.c): `fused` is an alternative form computing this node's
     * value from earlier inputs (e.g. a convolution with hard-swish in its
     * epilogue); the nodes it folds in have absorbed_by = this node. A run
     * uses the fused form unless it requests one of the absorbed nodes. */
    struct rt_node *fused; /* owned; its packed weights are borrowed */
    int absorbed_by;       /* -1 or the node whose fused form covers this one */
    int packed_borrowed;   /* packed belongs to another node */
    /* fused depthwise + 1x1 form (fuse.c): the depthwise node, whose attributes it uses */
    const struct rt_node *dw;
} rt_node;

/* Per-run context handed to compute functions. */
typedef struct rt_ctx {
    int threads;
} rt_ctx;

typedef struct rt_op {
    const char *name;
    int min_in, max_in; /* data inputs (control inputs are dropped) */
    int n_out;
    eng_status (*prepare)(eng_model *m, rt_node *n, eng_diag *d);
    eng_status (*infer)(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                        eng_diag *d);
    eng_status (*compute)(const rt_node *n, const eng_tensor *const *in, eng_tensor *out,
                          const rt_ctx *c, eng_diag *d);
    double (*flops)(const rt_node *n, const eng_tensor *const *in, const eng_tensor *out);
} rt_op;

struct eng_model {
    int n_nodes;
    rt_node *nodes;
    int *order;     /* topological order, n_nodes entries */
    int input_node; /* the Placeholder */
    int *hash;      /* open addressing name -> node index, -1 empty */
    int hash_cap;
};

/* Nonzero when node n is of op name (e.g. "AddV2"). */
static inline int rt_is_op(const rt_node *n, const char *name)
{
    return strcmp(n->op->name, name) == 0;
}

/* model.c helpers used by ops */
int rt_find_node(const eng_model *m, const char *name, size_t len);
const rt_node *rt_input_node(const eng_model *m, const rt_node *n, int i);

/* run.c: uninitialised tensor (NULL when too large or out of memory); copy */
eng_tensor *rt_tensor_alloc(eng_dtype dt, int ndim, const int64_t *dim);
eng_tensor *rt_tensor_clone(const eng_tensor *s);

/* error from an op: "node 'NAME' (Op): ..." */
#define RT_FAIL(d, st, n, fmt, ...)                                                                \
    eng_fail(d, st, "node '%s' (%s): " fmt, (n)->name, (n)->op->name, ##__VA_ARGS__)

/* fuse.c: finds fusable patterns after load; rt_fuse_residual needs the
 * shapes of every node at the declared input (NULL: skipped) */
eng_status rt_fuse(eng_model *m, eng_diag *d);
eng_status rt_fuse_residual(eng_model *m, const eng_tensor *shapes, eng_diag *d);
/* fuse.c: the depthwise + 1x1 forms, after rt_fuse_residual (they keep a residual form's
 * added tensor) */
eng_status rt_fuse_dw_conv1x1(eng_model *m, eng_diag *d);

/* the geometry of a 1x1 stride-1 convolution over n images of h x w pixels */
static inline eng_conv_geom rt_geom_1x1(int n, int h, int w, int cin, int cout)
{
    eng_conv_geom g = {.n = n,
                       .ih = h,
                       .iw = w,
                       .cin = cin,
                       .oh = h,
                       .ow = w,
                       .cout = cout,
                       .kh = 1,
                       .kw = 1,
                       .sh = 1,
                       .sw = 1,
                       .dh = 1,
                       .dw = 1};
    return g;
}

/* kernels_conv.c: packed convolution weights, output channels in 16-wide panels */
struct eng_conv_packed {
    int kh, kw, cin, cout;
    int K;       /* kh * kw * cin */
    int npanel;  /* ceil(cout / 16) */
    float *w;    /* [npanel][K][16] */
    float *bias; /* [npanel * 16] */
};

/* kernels_conv.c: eng_conv2d_packed with res (same shape as out, may be NULL)
 * added after the bias and before the activation */
eng_status rt_conv2d_packed_res(const eng_conv_geom *g, const float *in, const eng_conv_packed *w,
                                eng_act act, const float *res, float *out, int threads);

/* kernels_conv.c: 1 when the AVX-512 kernels may run on this CPU (VFS_NO_AVX512 set in the
 * environment turns them off) */
int rt_use_avx512(void);

/* kernels_dw.c: the depthwise kernel for one output row oy of a mult-1, dilation-1 convolution
 * of geometry g, in_n holding the input rows from row0 on, into orow (g->ow x g->cout floats);
 * pf: prefetch the input rows the next output row adds. rt_dw_row_kernel gives this CPU's. */
typedef void (*rt_dw_row_fn)(const eng_conv_geom *g, const float *in_n, int row0,
                             const float *filter, const float *bias, eng_act act, int oy,
                             float *orow, int pf);
rt_dw_row_fn rt_dw_row_kernel(void);

/* kernels_fused.c: out = depthwise(act_e(1x1(x))) without storing the 1x1's output whole:
 * g is the depthwise's geometry (g->cin the expanded channels, mult 1, dilation 1), we the 1x1's
 * packed weights (we->cin channels of x). The expanded rows are made in bands that stay in L2;
 * results are bit-identical to the two kernels run one after the other. */
eng_status rt_expand_dwconv2d(const eng_conv_geom *g, const float *x, const eng_conv_packed *we,
                              eng_act eact, const float *filter, const float *bias, eng_act act,
                              float *out, int threads);

/* kernels_fused.c: out = act_p(1x1(depthwise(x)) + res) without storing the depthwise's
 * output whole: g is the depthwise's geometry (mult 1, dilation 1), wp the 1x1's packed
 * weights (wp->cin == g->cin), res NULL or shaped as out. The depthwise rows are made in bands
 * that stay in L2; results are bit-identical to the two kernels run one after the other. */
eng_status rt_dw_conv1x1(const eng_conv_geom *g, const float *x, const float *filter,
                         const float *bias, eng_act act, const eng_conv_packed *wp, eng_act pact,
                         const float *res, float *out, int threads);

/* ops_nn.c: the ops of fuse.c's expand + depthwise and depthwise + 1x1 forms (in no op table:
 * a graph cannot name them) */
extern const rt_op rt_op_expand_dw;
extern const rt_op rt_op_dw_conv1x1;

/* run.c: shapes (dtype, dims; data only for constants) of every node and
 * port for an input shape, graph as written; *out is n_nodes * RT_MAX_OUT
 * tensors, free with free(). Unknown shapes have ndim -1. */
eng_status rt_infer_all(const eng_model *m, int in_ndim, const int64_t *in_dim, eng_tensor **out,
                        eng_diag *d);

/* the same for the nodes the outputs depend on (others have ndim 0) */
eng_status rt_infer_for(const eng_model *m, int in_ndim, const int64_t *in_dim,
                        const char *const *outputs, int n_outputs, eng_tensor **out, eng_diag *d);

/* ops.c */
const rt_op *rt_op_find(const char *name);

/* shape helpers (ops_shape.c) */
int64_t rt_numel(const eng_tensor *t);
void rt_set_shape(eng_tensor *t, eng_dtype dt, int ndim, const int64_t *dim);
int rt_same_shape(const eng_tensor *a, const eng_tensor *b);
/* "[1,2,3]" into buf */
const char *rt_shape_str(const eng_tensor *t, char *buf, size_t len);
/* reads a scalar or 1-element int tensor; 0 on success */
int rt_scalar_int(const eng_tensor *t, int64_t *v);

/* the op tables of each op file */
extern const rt_op rt_ops_nn[];
extern const int rt_ops_nn_count;
extern const rt_op rt_ops_math[];
extern const int rt_ops_math_count;

#endif
