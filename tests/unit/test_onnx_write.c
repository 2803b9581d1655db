/* test_onnx_write.c: the ONNX writer (engine/export) on a tiny graph,
 * packed and read back with protobuf-c's own unpack of the same onnx.proto:
 * IR version and opset, the graph's nodes in order with their attributes,
 * initializers (bytes, dims, a scalar, the second of a shared name not
 * added again and its name the builder's copy, not the caller's buffer),
 * the symbolic batch dimension of inputs and outputs, metadata_props. */
#include "check.h"
#include "onnx.pb-c.h"
#include "onnx_write.h"

#include <stdlib.h>
#include <string.h>

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *key)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, key) == 0)
            return n->attribute[i];
    return NULL;
}

int main(void)
{
    onnx_b *b = onnx_new();
    CHECK(b != NULL);
    const float w[6] = {1, 2, 3, 4, 5, 6};
    const int64_t wd[2] = {2, 3};
    char scratch[64];
    snprintf(scratch, sizeof scratch, "weight");
    const char *w1 = onnx_init_f32(b, scratch, 2, wd, w);
    snprintf(scratch, sizeof scratch, "weight");
    const char *w2 = onnx_init_f32(b, scratch, 2, wd, w); /* shared: not added twice */
    snprintf(scratch, sizeof scratch, "overwritten");
    CHECK(w1 && w2 && w1 == w2 && strcmp(w2, "weight") == 0);
    const char *half = onnx_scalar(b, "half", 0.5f);
    const char *in = "image";
    onnx_node *n = NULL;
    const char *x = onnx_opx(b, "Cast", &in, 1, &n);
    onnx_attr_int(b, n, "to", ONNX_FLOAT);
    x = onnx_bin(b, "MatMul", x, w1);
    const char *mi[2] = {x, half};
    onnx_op1(b, "Mul", "out", mi, 2);
    const int64_t idim[2] = {-1, 2}, odim[2] = {-1, 3};
    onnx_input(b, "image", ONNX_UINT8, 2, idim);
    onnx_output(b, "out", ONNX_FLOAT, 2, odim);
    onnx_meta(b, "categories", "[\"a\",\"b\",\"c\"]");
    uint8_t *buf = NULL;
    size_t len = 0;
    eng_diag d = {{0}};
    CHECK(onnx_pack(b, "tiny", "test", &buf, &len, &d) == ENG_OK);
    onnx_free(b);

    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    CHECK(m != NULL);
    if (!m) {
        free(buf);
        return check_report("test_onnx_write");
    }
    CHECK(m->has_ir_version && m->ir_version == 7);
    CHECK(m->n_opset_import == 1 && m->opset_import[0]->version == 13 &&
          strcmp(m->opset_import[0]->domain, "") == 0);
    CHECK(strcmp(m->producer_name, "visionfs") == 0 && strcmp(m->producer_version, "test") == 0);
    CHECK(m->n_metadata_props == 1 && strcmp(m->metadata_props[0]->key, "categories") == 0 &&
          strcmp(m->metadata_props[0]->value, "[\"a\",\"b\",\"c\"]") == 0);
    const Onnx__GraphProto *g = m->graph;
    CHECK(g && strcmp(g->name, "tiny") == 0);
    CHECK(g->n_node == 3);
    if (g->n_node == 3) {
        CHECK(strcmp(g->node[0]->op_type, "Cast") == 0);
        const Onnx__AttributeProto *to = attr(g->node[0], "to");
        CHECK(to && to->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT && to->i == ONNX_FLOAT);
        CHECK(strcmp(g->node[1]->op_type, "MatMul") == 0 && g->node[1]->n_input == 2 &&
              strcmp(g->node[1]->input[0], g->node[0]->output[0]) == 0 &&
              strcmp(g->node[1]->input[1], "weight") == 0);
        CHECK(strcmp(g->node[2]->op_type, "Mul") == 0 && strcmp(g->node[2]->output[0], "out") == 0);
    }
    CHECK(g->n_initializer == 2);
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        CHECK(t->has_data_type && t->data_type == ONNX_FLOAT && t->has_raw_data);
        if (strcmp(t->name, "weight") == 0) {
            CHECK(t->n_dims == 2 && t->dims[0] == 2 && t->dims[1] == 3);
            CHECK(t->raw_data.len == sizeof w && memcmp(t->raw_data.data, w, sizeof w) == 0);
        } else {
            float v = 0;
            CHECK(strcmp(t->name, "half") == 0 && t->n_dims == 0 && t->raw_data.len == 4);
            memcpy(&v, t->raw_data.data, 4);
            CHECK(v == 0.5f);
        }
    }
    CHECK(g->n_input == 1 && g->n_output == 1);
    if (g->n_input == 1) {
        const Onnx__TypeProto__Tensor *tt = g->input[0]->type->tensor_type;
        CHECK(tt->elem_type == ONNX_UINT8 && tt->shape->n_dim == 2);
        CHECK(tt->shape->dim[0]->value_case ==
                  ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
              strcmp(tt->shape->dim[0]->dim_param, "N") == 0);
        CHECK(tt->shape->dim[1]->value_case ==
                  ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
              tt->shape->dim[1]->dim_value == 2);
    }
    onnx__model_proto__free_unpacked(m, NULL);
    free(buf);
    return check_report("test_onnx_write");
}
