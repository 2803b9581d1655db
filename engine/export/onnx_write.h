/* onnx_write.h: builds an ONNX model (graph, initializers, inputs, outputs,
 * metadata) and serialises it with protobuf-c and the onnx.proto that the
 * PyPI package onnx ships (engine/export/onnx.proto, compiled by protoc-c at
 * build time). Knows nothing of the runtime or of FUSE.
 *
 * Design: the builder owns every string, array and tensor it is given
 * (copied) and frees them with onnx_free; a failed allocation makes the
 * builder "failed" (onnx_pack then reports it), so callers chain calls
 * without checking each one. */
#ifndef VFS_ENGINE_ONNX_WRITE_H
#define VFS_ENGINE_ONNX_WRITE_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

/* What visionfs writes: IR version 7 (ONNX 1.7) with the default domain at
 * opset 13, which every onnxruntime since 1.8 runs. */
#define ONNX_IR_VERSION 7
#define ONNX_OPSET 13

/* ONNX element types used here (TensorProto.DataType). */
enum { ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT32 = 6, ONNX_INT64 = 7 };

typedef struct onnx_b onnx_b;
typedef struct onnx_node onnx_node;

onnx_b *onnx_new(void);
void onnx_free(onnx_b *b);

/* A fresh tensor name "base_N" (owned by the builder). */
const char *onnx_name(onnx_b *b, const char *base);

/* Initializers (constant tensors), data copied. Returns name, or NULL when
 * out of memory. An initializer of a name already given is not added again
 * (weights shared by two copies of a backbone). */
const char *onnx_init_f32(onnx_b *b, const char *name, int ndim, const int64_t *dim,
                          const float *data);
const char *onnx_init_i64(onnx_b *b, const char *name, int ndim, const int64_t *dim,
                          const int64_t *data);
int onnx_has_init(const onnx_b *b, const char *name);

/* A node op(in[0..nin)) -> out[0..nout); an input "" is an omitted optional
 * one. Returns the node for attributes (NULL when out of memory). */
onnx_node *onnx_op(onnx_b *b, const char *op, const char *const *in, int nin,
                   const char *const *out, int nout);
/* Shorthand: one output, returns its name (out; NULL: a fresh name). */
const char *onnx_op1(onnx_b *b, const char *op, const char *out, const char *const *in, int nin);

/* Shorthands returning the (fresh) output name: op(in) with *node (may be
 * NULL) for attributes; a binary op; a float scalar and an int64 vector
 * initializer. */
const char *onnx_opx(onnx_b *b, const char *op, const char *const *in, int nin, onnx_node **node);
const char *onnx_bin(onnx_b *b, const char *op, const char *x, const char *y);
const char *onnx_scalar(onnx_b *b, const char *name, float v);
const char *onnx_ints(onnx_b *b, const char *name, int n, const int64_t *v);

void onnx_attr_int(onnx_b *b, onnx_node *n, const char *key, int64_t v);
void onnx_attr_ints(onnx_b *b, onnx_node *n, const char *key, int cnt, const int64_t *v);
void onnx_attr_float(onnx_b *b, onnx_node *n, const char *key, float v);
void onnx_attr_str(onnx_b *b, onnx_node *n, const char *key, const char *v);

/* Graph inputs and outputs: dims < 0 are the symbolic dimension "N". */
void onnx_input(onnx_b *b, const char *name, int elem_type, int ndim, const int64_t *dim);
void onnx_output(onnx_b *b, const char *name, int elem_type, int ndim, const int64_t *dim);

/* metadata_props of the model. */
void onnx_meta(onnx_b *b, const char *key, const char *value);

/* Serialises the model (IR ONNX_IR_VERSION, opset ONNX_OPSET, producer
 * "visionfs" producer_version, graph named graph_name) into *out (malloc'd,
 * *len bytes). ENG_ENOMEM when any earlier call ran out of memory. */
eng_status onnx_pack(onnx_b *b, const char *graph_name, const char *producer_version, uint8_t **out,
                     size_t *len, eng_diag *d);

#endif
