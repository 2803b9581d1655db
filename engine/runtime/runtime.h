/* runtime.h: the neural-net runtime: loads tfjs graph models (model.json plus
 * weight shards) and interprets their TensorFlow ops on NHWC float32 tensors.
 *
 * Design: a model is an immutable graph of nodes in topological order, built
 * once at load (weights widened to float32 and repacked for the kernels). A
 * run evaluates only the nodes the requested outputs depend on, frees every
 * intermediate tensor after its last consumer, and keeps all per-run state on
 * the caller's side, so one model may run on several threads at once.
 */
#ifndef VFS_ENGINE_RUNTIME_H
#define VFS_ENGINE_RUNTIME_H

#include "core.h"

/* A loaded graph model. Opaque and immutable after load: several threads may
 * call eng_model_run on the same model concurrently. */
typedef struct eng_model eng_model;

/* Optional per-op-type timing filled by eng_model_run (for benchmarks). */
#define ENG_PROFILE_MAX_OPS 192
typedef struct eng_run_profile {
    int n;                               /* op types seen */
    const char *op[ENG_PROFILE_MAX_OPS]; /* op names, convolutions by kind ("conv 1x1",
                                            "depthwise 3x3 s2"...): static strings */
    double ms[ENG_PROFILE_MAX_OPS];      /* wall time summed over calls */
    double cpu_ms[ENG_PROFILE_MAX_OPS];  /* CPU time of the calling thread */
    double flops[ENG_PROFILE_MAX_OPS];   /* floating point operations summed */
    int calls[ENG_PROFILE_MAX_OPS];
    int by_node; /* set by the caller: a row per node, named as in the graph (the model must
                    outlive the profile; nodes past the rows' limit are left out) */
} eng_run_profile;

/* Adds one call of op (a static string) to p: wall and CPU milliseconds and
 * floating point operations. Also for work around the runtime that callers
 * want in the same table (the backbone's "decode+resize"). */
void eng_run_profile_add(eng_run_profile *p, const char *op, double ms, double cms, double flops);

/* Options of one run. threads <= 0 means 1; the run never uses more threads
 * than this (OpenMP num_threads per kernel; no threaded BLAS). A batch whose
 * needed ops all work per item runs item by item spread over the threads;
 * otherwise each op splits its own work. abort (may be NULL) is polled
 * between nodes, possibly from several threads at once (batch items), and
 * must be thread-safe. profile (may be NULL) is accumulated into, not
 * cleared. Results do not depend on the thread count. */
typedef struct eng_run_opts {
    int threads;
    eng_abort_fn abort;
    void *abort_ctx;
    eng_run_profile *profile;
} eng_run_opts;

/* For a program that runs the engine (the daemon, the benches): makes
 * libgomp's waiting threads sleep instead of spinning. libgomp reads
 * OMP_WAIT_POLICY once, when it loads, and its default spins at every
 * barrier: on a busy machine that made 2-thread runs up to 10x slower, and a
 * warm fine-tuning stage (the tape's many small loops) took 94.7 CPU s
 * against 35.1 (docs/engine.md, docs/training.md). Unless the caller chose
 * a policy, it sets OMP_WAIT_POLICY=passive and re-executes the program
 * (/proc/self/exe with argv), so call it first in main. If the exec fails
 * the program runs on with libgomp's default. */
void eng_openmp_passive(char **argv);

/* Loads a tfjs graph model. Weight shards named by the manifest are resolved
 * relative to the folder of model_json_path and concatenated in manifest
 * order. On success *out is a new model, free with eng_model_free. Errors:
 * ENG_EIO (unreadable file), ENG_EFORMAT (malformed json, truncated or
 * oversized shards, shapes that do not fit the weights or each other,
 * cycles), ENG_EUNSUPPORTED (unknown op or attribute value, named in d),
 * ENG_ENOMEM (declared sizes too large). */
eng_status eng_model_load(const char *model_json_path, eng_model **out, eng_diag *d);

/* Same from memory: json is model.json (json_len bytes, need not be NUL
 * terminated); weights is the concatenation of all shards of all manifest
 * groups in manifest order (paths are then ignored). Both are copied as
 * needed: the caller keeps ownership. */
eng_status eng_model_load_mem(const char *json, size_t json_len, const void *weights,
                              size_t weights_len, eng_model **out, eng_diag *d);

/* Frees m; eng_model_free(NULL) is a no-op. */
void eng_model_free(eng_model *m);

/* Name of the model's single Placeholder (e.g. "tower_0/images"); borrowed
 * until eng_model_free. */
const char *eng_model_input_name(const eng_model *m);

/* Declared input shape: returns the rank (0 if unknown) and fills dim[0..rank)
 * with the declared sizes, -1 where unknown. */
int eng_model_input_shape(const eng_model *m, int64_t dim[ENG_MAX_DIMS]);

/* Nonzero when the graph has a node called name (a "name:1" suffix selects a
 * second output of a multi-output node and is accepted too). */
int eng_model_has_node(const eng_model *m, const char *name);

/* Runs the subgraph that the requested outputs depend on. input is float32
 * NHWC [N,H,W,C] (N >= 1, C as declared); outputs are node names (any
 * intermediate node is a valid tap; "name:k" selects output k). On success
 * out[i] (i < n_outputs) are new tensors, free each with eng_tensor_free; on
 * error every out[i] is NULL. opts may be NULL (1 thread, no abort).
 * Errors: ENG_ENOTFOUND (unknown output name), ENG_EINVAL (bad input shape or
 * shapes that do not fit the graph, e.g. a head at the wrong size),
 * ENG_EABORTED, ENG_ENOMEM. */
eng_status eng_model_run(const eng_model *m, const eng_tensor *input, const char *const *outputs,
                         int n_outputs, eng_tensor **out, const eng_run_opts *opts, eng_diag *d);

/* Shapes the requested outputs would have for an input of shape in_dim
 * (rank in_ndim), without computing them. out_dim[i] receives the dims and
 * out_ndim[i] the rank. Also returns in *flops (may be NULL) the floating
 * point operations of the convolutions and matrix products of that run. */
eng_status eng_model_shapes(const eng_model *m, int in_ndim, const int64_t *in_dim,
                            const char *const *outputs, int n_outputs,
                            int64_t (*out_dim)[ENG_MAX_DIMS], int *out_ndim, double *flops,
                            eng_diag *d);

/* Borrowed constant (weight) by node name, as float32 or int32 in its stored
 * layout (conv filters HWIO: [KH,KW,Cin,Cout]; depthwise [KH,KW,C,mult]).
 * Valid until eng_model_free. ENG_ENOTFOUND if no Const node has that name. */
eng_status eng_model_const(const eng_model *m, const char *name, const eng_tensor **out,
                           eng_diag *d);

#include "kernels.h"

/* A node as a training recipe rebuilds it (eng_model_node): the kinds the
 * tape can record; ENG_NODE_OTHER for everything else. */
typedef enum eng_node_kind {
    ENG_NODE_OTHER = 0,
    ENG_NODE_CONV,      /* Conv2D / _FusedConv2D: filter HWIO */
    ENG_NODE_DEPTHWISE, /* (Fused)DepthwiseConv2dNative: filter [KH,KW,C,1] */
    ENG_NODE_ADD,       /* Add / AddV2 of two data inputs */
} eng_node_kind;

typedef struct eng_node_desc {
    eng_node_kind kind;
    int n_in;                         /* data inputs (not the weights) */
    const char *in[2];                /* their node names, borrowed */
    const eng_tensor *weights, *bias; /* conv, depthwise (bias may be NULL) */
    int stride;                       /* equal along h and w */
    eng_act act;                      /* fused activation */
} eng_node_desc;

/* Describes node `name` (weights borrowed until eng_model_free). A conv or
 * depthwise node the tape cannot record as it is (padding other than SAME,
 * dilation, unequal strides, a depth multiplier above 1) is
 * ENG_NODE_OTHER. ENG_ENOTFOUND for an unknown name. */
eng_status eng_model_node(const eng_model *m, const char *name, eng_node_desc *out, eng_diag *d);

/* ---- ONNX export (onnx_emit.c) ---- */

struct onnx_b; /* engine/export/onnx_write.h */

/* Adds to b the nodes computing the requested outputs of m (taps, 4-D maps)
 * from `input`, an ONNX float tensor NCHW [N, C, h, w] holding what m's
 * Placeholder takes (pixel range included), with the semantics of this
 * runtime's kernels (see onnx_emit.c). Tensor names start with prefix;
 * weights are initializers named wprefix + node name, so two calls with the
 * same wprefix share them. out_names[i] receives the NCHW tensor of
 * outputs[i] (names owned by b). ENG_EUNSUPPORTED names an op or shape the
 * export cannot translate. */
eng_status eng_model_emit_onnx(const eng_model *m, struct onnx_b *b, const char *input, int h,
                               int w, const char *const *outputs, int n_outputs, const char *prefix,
                               const char *wprefix, const char **out_names, eng_diag *d);

/* Adds act applied to tensor x (out: the result's name, NULL for a fresh
 * one; ENG_ACT_NONE with out NULL returns x); returns the result's name. */
const char *eng_onnx_act(struct onnx_b *b, const char *x, eng_act act, const char *out);

#endif
