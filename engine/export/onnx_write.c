/* onnx_write.c: the ONNX model builder (onnx_write.h) over the protobuf-c
 * structures generated from onnx.proto.
 *
 * Every allocation goes through keep(), which records the pointer so that
 * onnx_free releases everything at once; the protobuf-c messages point into
 * these blocks and are packed by protobuf_c_message_pack. */
#include "onnx_write.h"

#include "onnx.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a growable array of pointers */
typedef struct parr {
    void **v;
    size_t n, cap;
} parr;

struct onnx_node {
    Onnx__NodeProto p;
    parr attrs;
};

struct onnx_b {
    int failed;
    unsigned long counter;
    parr blocks; /* everything to free */
    parr nodes, inits, inputs, outputs, meta;
};

static int parr_push(parr *a, void *p)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        void **v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = p;
    return 0;
}

/* records p for onnx_free; NULL (and the builder failed) when p is NULL or
 * cannot be recorded */
static void *keep(onnx_b *b, void *p)
{
    if (!p || parr_push(&b->blocks, p)) {
        free(p);
        b->failed = 1;
        return NULL;
    }
    return p;
}

static void *zalloc(onnx_b *b, size_t n) { return keep(b, calloc(1, n ? n : 1)); }

static char *dup(onnx_b *b, const char *s) { return keep(b, strdup(s ? s : "")); }

static void *memdup(onnx_b *b, const void *p, size_t n)
{
    void *q = keep(b, malloc(n ? n : 1));
    if (q && n)
        memcpy(q, p, n);
    return q;
}

onnx_b *onnx_new(void) { return calloc(1, sizeof(onnx_b)); }

void onnx_free(onnx_b *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nodes.n; i++) /* the nodes are blocks: first */
        free(((onnx_node *)b->nodes.v[i])->attrs.v);
    for (size_t i = 0; i < b->blocks.n; i++)
        free(b->blocks.v[i]);
    free(b->blocks.v);
    free(b->nodes.v);
    free(b->inits.v);
    free(b->inputs.v);
    free(b->outputs.v);
    free(b->meta.v);
    free(b);
}

const char *onnx_name(onnx_b *b, const char *base)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s_%lu", base, ++b->counter);
    return dup(b, buf);
}

/* the stored name of initializer `name`, or NULL */
static const char *find_init(const onnx_b *b, const char *name)
{
    for (size_t i = 0; i < b->inits.n; i++)
        if (strcmp(((Onnx__TensorProto *)b->inits.v[i])->name, name) == 0)
            return ((Onnx__TensorProto *)b->inits.v[i])->name;
    return NULL;
}

int onnx_has_init(const onnx_b *b, const char *name) { return find_init(b, name) != NULL; }

static const char *init_raw(onnx_b *b, const char *name, int type, int ndim, const int64_t *dim,
                            const void *data, size_t elem)
{
    const char *had = find_init(b, name);
    if (had) /* the builder's copy: name may be the caller's scratch buffer */
        return had;
    Onnx__TensorProto *t = zalloc(b, sizeof *t);
    if (!t)
        return NULL;
    onnx__tensor_proto__init(t);
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dim[i];
    t->name = dup(b, name);
    t->n_dims = (size_t)ndim;
    t->dims = ndim ? memdup(b, dim, sizeof *dim * (size_t)ndim) : NULL;
    t->has_data_type = 1;
    t->data_type = type;
    t->has_raw_data = 1; /* raw_data is little-endian, as this machine */
    t->raw_data.len = n * elem;
    t->raw_data.data = memdup(b, data, n * elem);
    if (!t->name || (ndim && !t->dims) || !t->raw_data.data || parr_push(&b->inits, t)) {
        b->failed = 1;
        return NULL;
    }
    return t->name;
}

const char *onnx_init_f32(onnx_b *b, const char *name, int ndim, const int64_t *dim,
                          const float *data)
{
    return init_raw(b, name, ONNX_FLOAT, ndim, dim, data, sizeof(float));
}

const char *onnx_init_i64(onnx_b *b, const char *name, int ndim, const int64_t *dim,
                          const int64_t *data)
{
    return init_raw(b, name, ONNX_INT64, ndim, dim, data, sizeof(int64_t));
}

static char **dup_names(onnx_b *b, const char *const *s, int n)
{
    char **v = zalloc(b, sizeof *v * (size_t)(n ? n : 1));
    for (int i = 0; v && i < n; i++)
        v[i] = dup(b, s[i]);
    return v;
}

onnx_node *onnx_op(onnx_b *b, const char *op, const char *const *in, int nin,
                   const char *const *out, int nout)
{
    onnx_node *n = zalloc(b, sizeof *n);
    if (!n)
        return NULL;
    onnx__node_proto__init(&n->p);
    n->p.op_type = dup(b, op);
    n->p.n_input = (size_t)nin;
    n->p.input = dup_names(b, in, nin);
    n->p.n_output = (size_t)nout;
    n->p.output = dup_names(b, out, nout);
    n->p.name = nout ? n->p.output ? n->p.output[0] : NULL : dup(b, op);
    if (parr_push(&b->nodes, n)) {
        b->failed = 1;
        return NULL;
    }
    return n;
}

const char *onnx_op1(onnx_b *b, const char *op, const char *out, const char *const *in, int nin)
{
    if (!out)
        out = onnx_name(b, op);
    if (!out)
        return NULL;
    onnx_node *n = onnx_op(b, op, in, nin, &out, 1);
    return n && n->p.output ? n->p.output[0] : NULL;
}

const char *onnx_opx(onnx_b *b, const char *op, const char *const *in, int nin, onnx_node **node)
{
    const char *out = onnx_name(b, op);
    onnx_node *n = out ? onnx_op(b, op, in, nin, &out, 1) : NULL;
    if (node)
        *node = n;
    return n ? out : NULL;
}

const char *onnx_bin(onnx_b *b, const char *op, const char *x, const char *y)
{
    const char *in[2] = {x, y};
    return onnx_opx(b, op, in, 2, NULL);
}

const char *onnx_scalar(onnx_b *b, const char *name, float v)
{
    return onnx_init_f32(b, name, 0, NULL, &v);
}

const char *onnx_ints(onnx_b *b, const char *name, int n, const int64_t *v)
{
    int64_t dim = n;
    return onnx_init_i64(b, name, 1, &dim, v);
}

static Onnx__AttributeProto *attr_new(onnx_b *b, onnx_node *n, const char *key, int type)
{
    if (!n)
        return NULL;
    Onnx__AttributeProto *a = zalloc(b, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = dup(b, key);
    a->has_type = 1;
    a->type = type;
    if (parr_push(&n->attrs, a)) {
        b->failed = 1;
        return NULL;
    }
    n->p.attribute = (Onnx__AttributeProto **)n->attrs.v;
    n->p.n_attribute = n->attrs.n;
    return a;
}

void onnx_attr_int(onnx_b *b, onnx_node *n, const char *key, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(b, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

void onnx_attr_ints(onnx_b *b, onnx_node *n, const char *key, int cnt, const int64_t *v)
{
    Onnx__AttributeProto *a = attr_new(b, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (a) {
        a->n_ints = (size_t)cnt;
        a->ints = memdup(b, v, sizeof *v * (size_t)cnt);
    }
}

void onnx_attr_float(onnx_b *b, onnx_node *n, const char *key, float v)
{
    Onnx__AttributeProto *a = attr_new(b, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

void onnx_attr_str(onnx_b *b, onnx_node *n, const char *key, const char *v)
{
    Onnx__AttributeProto *a = attr_new(b, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) {
        a->has_s = 1;
        a->s.len = strlen(v);
        a->s.data = memdup(b, v, a->s.len);
    }
}

static void value_info(onnx_b *b, parr *to, const char *name, int elem_type, int ndim,
                       const int64_t *dim)
{
    Onnx__ValueInfoProto *vi = zalloc(b, sizeof *vi);
    Onnx__TypeProto *tp = zalloc(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = zalloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = zalloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = zalloc(b, sizeof *dims * (size_t)(ndim ? ndim : 1));
    if (!vi || !tp || !tt || !sh || !dims)
        return;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *dm = zalloc(b, sizeof *dm);
        if (!dm)
            return;
        onnx__tensor_shape_proto__dimension__init(dm);
        if (dim[i] < 0) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = dup(b, "N");
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = dim[i];
        }
        dims[i] = dm;
    }
    sh->n_dim = (size_t)ndim;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = dup(b, name);
    vi->type = tp;
    if (parr_push(to, vi))
        b->failed = 1;
}

void onnx_input(onnx_b *b, const char *name, int elem_type, int ndim, const int64_t *dim)
{
    value_info(b, &b->inputs, name, elem_type, ndim, dim);
}

void onnx_output(onnx_b *b, const char *name, int elem_type, int ndim, const int64_t *dim)
{
    value_info(b, &b->outputs, name, elem_type, ndim, dim);
}

void onnx_meta(onnx_b *b, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = zalloc(b, sizeof *e);
    if (!e)
        return;
    onnx__string_string_entry_proto__init(e);
    e->key = dup(b, key);
    e->value = dup(b, value);
    if (parr_push(&b->meta, e))
        b->failed = 1;
}

eng_status onnx_pack(onnx_b *b, const char *graph_name, const char *producer_version, uint8_t **out,
                     size_t *len, eng_diag *d)
{
    *out = NULL;
    *len = 0;
    Onnx__ModelProto mp;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto os;
    Onnx__OperatorSetIdProto *osp = &os;
    onnx__model_proto__init(&mp);
    onnx__graph_proto__init(&g);
    onnx__operator_set_id_proto__init(&os);
    os.domain = "";
    os.has_version = 1;
    os.version = ONNX_OPSET;
    Onnx__NodeProto **nodes = zalloc(b, sizeof *nodes * (b->nodes.n ? b->nodes.n : 1));
    if (b->failed || !nodes)
        return eng_fail(d, ENG_ENOMEM, "onnx: out of memory while building the graph");
    for (size_t i = 0; i < b->nodes.n; i++)
        nodes[i] = &((onnx_node *)b->nodes.v[i])->p;
    g.name = (char *)graph_name;
    g.n_node = b->nodes.n;
    g.node = nodes;
    g.n_initializer = b->inits.n;
    g.initializer = (Onnx__TensorProto **)b->inits.v;
    g.n_input = b->inputs.n;
    g.input = (Onnx__ValueInfoProto **)b->inputs.v;
    g.n_output = b->outputs.n;
    g.output = (Onnx__ValueInfoProto **)b->outputs.v;
    mp.has_ir_version = 1;
    mp.ir_version = ONNX_IR_VERSION;
    mp.n_opset_import = 1;
    mp.opset_import = &osp;
    mp.producer_name = "visionfs";
    mp.producer_version = (char *)(producer_version ? producer_version : "");
    mp.graph = &g;
    mp.n_metadata_props = b->meta.n;
    mp.metadata_props = (Onnx__StringStringEntryProto **)b->meta.v;
    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return eng_fail(d, ENG_ENOMEM, "onnx: out of memory for a %zu-byte model", n);
    size_t got = onnx__model_proto__pack(&mp, buf);
    if (got != n) {
        free(buf);
        return eng_fail(d, ENG_EIO, "onnx: packed %zu bytes, expected %zu", got, n);
    }
    *out = buf;
    *len = n;
    return ENG_OK;
}
