/* test_runtime_errors.c: a table of broken model files, each asserting the
 * status and a piece of the message (subject named). In-memory cases go
 * through eng_model_load_mem; file cases (missing, truncated, oversized and
 * escaping shards) write a temporary model folder. Also run-time errors:
 * inputs that do not fit the graph. */
#include "test_runtime_util.h"

#include <sys/stat.h>

#define CONV_ATTRS                                                                                 \
    "\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}},\"padding\":{\"s\":\"U0FNRQ==\"}"

typedef struct bad_case {
    const char *what;
    const char *json;
    int wbytes; /* weight bytes to pass (-1: all 36 of the default blob) */
    eng_status want;
    const char *msg; /* must occur in the diagnostic */
} bad_case;

/* a valid base: x [1,2,2,1] -> conv with w [1,1,1,1] */
#define NODES_OK                                                                                   \
    "{\"name\":\"x\",\"op\":\"Placeholder\",\"attr\":{\"shape\":{\"shape\":{\"dim\":["             \
    "{\"size\":\"1\"},{\"size\":\"2\"},{\"size\":\"2\"},{\"size\":\"1\"}]}}}},"                    \
    "{\"name\":\"w\",\"op\":\"Const\"},"
#define MAN(w) ",\"weightsManifest\":[{\"paths\":[\"w.bin\"],\"weights\":[" w "]}]}"
#define W1 "{\"name\":\"w\",\"shape\":[1,1,1,1],\"dtype\":\"float32\"}"

static const bad_case cases[] = {
    {"not json", "{\"modelTopology\": {", 0, ENG_EFORMAT, "model.json: not valid JSON at byte "},
    {"json array", "[1,2]", 0, ENG_EFORMAT, "not a json object"},
    {"empty input", "", 0, ENG_EFORMAT, "model.json: not valid JSON at byte 0 (line 1)"},
    {"no topology", "{\"format\":\"graph-model\"}", 0, ENG_EFORMAT, "'modelTopology.node' missing"},
    {"layers model", "{\"modelTopology\":{\"model_config\":{}}}", 0, ENG_EFORMAT,
     "not a tfjs graph model"},
    {"empty graph", "{\"modelTopology\":{\"node\":[]}}", 0, ENG_EFORMAT, "empty"},
    {"node without name", "{\"modelTopology\":{\"node\":[{\"op\":\"Relu\"}]}}", 0, ENG_EFORMAT,
     "node[0]: 'name' missing"},
    {"node without op", "{\"modelTopology\":{\"node\":[{\"name\":\"a\"}]}}", 0, ENG_EFORMAT,
     "'a': 'op' missing"},
    {"unknown ops named",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"y\",\"op\":\"FancyOp\",\"input\":[\"x\"]},"
     "{\"name\":\"z\",\"op\":\"Erf\",\"input\":[\"y\"]},"
     "{\"name\":\"z2\",\"op\":\"Erf\",\"input\":[\"y\"]}]}" MAN(W1),
     -1, ENG_EUNSUPPORTED, "unknown ops 'FancyOp', 'Erf'"},
    {"missing input",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"y\",\"op\":\"Relu\",\"input\":[\"nope\"]}]}" MAN(W1),
     -1, ENG_EFORMAT, "node 'y': input 'nope' not found"},
    {"input port out of range",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"y\",\"op\":\"Relu\",\"input\":[\"x:3\"]}]}" MAN(W1),
     -1, ENG_EFORMAT, "has 1 output"},
    {"cycle",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"a\",\"op\":\"Add\",\"input\":[\"x\",\"b\"]},"
     "{\"name\":\"b\",\"op\":\"Relu\",\"input\":[\"a\"]},"
     "{\"name\":\"c\",\"op\":\"Relu\",\"input\":[\"b\"]}]}" MAN(W1),
     -1, ENG_EFORMAT, "cycle through node"},
    {"self loop",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"a\",\"op\":\"Relu\",\"input\":[\"a\"]}]}" MAN(W1),
     -1, ENG_EFORMAT, "cycle through node 'a'"},
    {"duplicate name",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"w\",\"op\":\"Relu\",\"input\":[\"x\"]}]}" MAN(W1),
     -1, ENG_EFORMAT, "'w': name used twice"},
    {"wrong input count",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"y\",\"op\":\"Relu\",\"input\":[\"x\",\"w\"]}]}" MAN(W1),
     -1, ENG_EFORMAT, "Relu takes 1..1 inputs, has 2"},
    {"const without weights",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"v\",\"op\":\"Const\"}]}" MAN(W1), -1,
     ENG_EFORMAT, "const 'v': no entry in weightsManifest"},
    {"weights truncated",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN("{\"name\":\"w\",\"shape\":[3,3],\"dtype\":\"float32\"}"),
     20, ENG_EFORMAT, "weight 'w' truncated"},
    {"weights too long",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN(W1),
     36, ENG_EFORMAT, "weights hold 36 bytes"},
    {"huge declared shape",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN(
         "{\"name\":\"w\",\"shape\":[100000,100000,100000],\"dtype\":\"float32\"}"),
     -1, ENG_ENOMEM, "weight 'w': declared shape too large"},
    {"huge total weights",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN(
         "{\"name\":\"w\",\"shape\":[1000000000],\"dtype\":\"float32\"},"
         "{\"name\":\"v\",\"shape\":[1000000000],\"dtype\":\"float32\"}"),
     -1, ENG_ENOMEM, "declared weights exceed"},
    {"huge placeholder",
     "{\"modelTopology\":{\"node\":[{\"name\":\"x\",\"op\":\"Placeholder\","
     "\"attr\":{\"shape\":{\"shape\":{\"dim\":[{\"size\":\"1\"},{\"size\":\"100000\"},"
     "{\"size\":\"100000\"},{\"size\":\"3\"}]}}}},{\"name\":\"y\",\"op\":\"Relu\",\"input\":"
     "[\"x\"]}]}}",
     0, ENG_ENOMEM, "output shape too large"},
    {"negative shape",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN("{\"name\":\"w\",\"shape\":[-1],\"dtype\":\"float32\"}"),
     -1, ENG_EFORMAT, "weight 'w': bad shape entry"},
    {"string dtype",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN("{\"name\":\"w\",\"shape\":[1],\"dtype\":\"string\"}"),
     -1, ENG_EUNSUPPORTED, "dtype 'string' not supported"},
    {"unknown quantization",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN("{\"name\":\"w\",\"shape\":[1],\"dtype\":\"float32\","
                                         "\"quantization\":{\"dtype\":\"int4\"}}"),
     -1, ENG_EUNSUPPORTED, "quantization dtype 'int4' not supported"},
    {"uint8 without scale",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":"
     "\"Relu\",\"input\":[\"x\"]}]}" MAN("{\"name\":\"w\",\"shape\":[1],\"dtype\":\"float32\","
                                         "\"quantization\":{\"dtype\":\"uint8\",\"min\":0}}"),
     -1, ENG_EFORMAT, "min and scale"},
    {"const shape differs",
     "{\"modelTopology\":{\"node\":[{\"name\":\"x\",\"op\":\"Placeholder\"},"
     "{\"name\":\"w\",\"op\":\"Const\",\"attr\":{\"value\":{\"tensor\":{\"dtype\":\"DT_FLOAT\","
     "\"tensorShape\":{\"dim\":[{\"size\":\"2\"}]}}}}}]}" MAN(W1),
     -1, ENG_EFORMAT, "const 'w': declared shape"},
    {"const dtype differs",
     "{\"modelTopology\":{\"node\":[{\"name\":\"x\",\"op\":\"Placeholder\"},"
     "{\"name\":\"w\",\"op\":\"Const\",\"attr\":{\"value\":{\"tensor\":{\"dtype\":\"DT_INT32\""
     "}}}}]}" MAN(W1),
     -1, ENG_EFORMAT, "const 'w': dtype DT_INT32 does not match"},
    {"no placeholder", "{\"modelTopology\":{\"node\":[{\"name\":\"w\",\"op\":\"Const\"}]}" MAN(W1),
     -1, ENG_EFORMAT, "0 Placeholder inputs"},
    {"two placeholders",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"x2\",\"op\":\"Placeholder\"}]}" MAN(W1),
     -1, ENG_EUNSUPPORTED, "2 Placeholder inputs"},
    {"filter does not fit input",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{" CONV_ATTRS
     "}}]}" MAN("{\"name\":\"w\",\"shape\":[3,3,4,8],\"dtype\":\"float32\"}"),
     1152, ENG_EINVAL, "node 'c' (Conv2D): filter [3,3,4,8] expects 4 input channels"},
    {"filter not 4-d",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{" CONV_ATTRS
     "}}]}" MAN("{\"name\":\"w\",\"shape\":[9],\"dtype\":\"float32\"}"),
     36, ENG_EFORMAT, "filter must be float32"},
    {"bias does not fit",
     "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"b\",\"op\":\"Const\"},"
     "{\"name\":\"c\",\"op\":\"_FusedConv2D\",\"input\":[\"x\",\"w\",\"b\"],\"attr\":{" CONV_ATTRS
     ",\"fused_ops\":{\"list\":{\"s\":[\"Qmlhc0FkZA==\"]}},\"num_args\":{\"i\":\"1\"}}}]}" MAN(
         W1 ",{\"name\":\"b\",\"shape\":[2],\"dtype\":\"float32\"}"),
     12, ENG_EFORMAT, "bias [2] does not match"},
    {"window larger than input",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{"
     "\"padding\":{\"s\":\"VkFMSUQ=\"}}}]}" MAN(
         "{\"name\":\"w\",\"shape\":[3,3,1,1],\"dtype\":\"float32\"}"),
     36, ENG_EINVAL, "window larger than"},
    {"NCHW",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{" CONV_ATTRS
     ",\"data_format\":{\"s\":\"TkNIVw==\"}}}]}" MAN(W1),
     -1, ENG_EUNSUPPORTED, "data_format 'NCHW' not supported"},
    {"unknown padding",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{"
     "\"padding\":{\"s\":\"Rk9P\"}}}]}" MAN(W1),
     -1, ENG_EUNSUPPORTED, "padding 'FOO'"},
    {"explicit padding without sizes",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{"
     "\"padding\":{\"s\":\"RVhQTElDSVQ=\"}}}]}" MAN(W1),
     -1, ENG_EFORMAT, "EXPLICIT padding without 8"},
    {"unsupported fused op",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"_FusedConv2D\",\"input\":[\"x\",\"w\"],\"attr\":{" CONV_ATTRS
     ",\"fused_ops\":{\"list\":{\"s\":[\"RWx1\"]}}}}]}" MAN(W1),
     -1, ENG_EUNSUPPORTED, "fused op 'Elu' not supported"},
    {"strides of 3 entries",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{"
     "\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\"]}}}}]}" MAN(W1),
     -1, ENG_EFORMAT, "bad attribute 'strides'"},
    {"stride zero",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{"
     "\"strides\":{\"list\":{\"i\":[\"1\",\"0\",\"1\",\"1\"]}}}}]}" MAN(W1),
     -1, ENG_EFORMAT, "bad attribute 'strides'"},
    {"strides not numbers",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{"
     "\"strides\":{\"list\":{\"i\":[\"a\",\"b\",\"c\",\"d\"]}}}}]}" MAN(W1),
     -1, ENG_EFORMAT, "bad attribute 'strides'"},
    {"bad base64",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"w\"],\"attr\":{"
     "\"padding\":{\"s\":\"!!\"}}}]}" MAN(W1),
     -1, ENG_EFORMAT, "bad attribute 'padding'"},
    {"reshape does not fit",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"r\",\"op\":\"Reshape\",\"input\":[\"x\",\"s\"]},{\"name\":\"s\",\"op\":\"Const\"}"
     "]}" MAN(W1 ",{\"name\":\"s\",\"shape\":[2],\"dtype\":\"int32\"}"),
     12, ENG_EINVAL, "cannot reshape [1,2,2,1]"},
    {"gather batch_dims",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"g\",\"op\":\"GatherV2\",\"input\":[\"x\",\"w\",\"w\"],\"attr\":{"
     "\"batch_dims\":{\"i\":\"1\"}}}]}" MAN(W1),
     -1, ENG_EUNSUPPORTED, "batch_dims 1"},
    {"bool placeholder",
     "{\"modelTopology\":{\"node\":[{\"name\":\"x\",\"op\":\"Placeholder\","
     "\"attr\":{\"dtype\":{\"type\":\"DT_BOOL\"},\"shape\":{\"shape\":{\"dim\":[{\"size\":\"1\"}]}}"
     "}}"
     "]}}",
     0, ENG_EUNSUPPORTED, "only float32 input"},
    {"attr not an object",
     "{\"modelTopology\":{\"node\":[{\"name\":\"x\",\"op\":\"Placeholder\","
     "\"attr\":7}]}}",
     0, ENG_EFORMAT, "'attr' is not an object"},
    {"weights manifest not array",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"y\",\"op\":\"Relu\",\"input\":[\"x\"]}]},\"weightsManifest\":{}}",
     0, ENG_EFORMAT, "'weightsManifest' is not an array"},
    {"duplicate weight",
     "{\"modelTopology\":{\"node\":[" NODES_OK
     "{\"name\":\"y\",\"op\":\"Relu\",\"input\":[\"x\"]}]}" MAN(W1 "," W1),
     8, ENG_EFORMAT, "listed twice"},
};

static void test_table(void)
{
    static unsigned char blob[2048];
    for (int i = 0; i < 2048; i++)
        blob[i] = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        eng_model *m = (eng_model *)&blob; /* must be reset to NULL on failure */
        eng_diag d = {{0}};
        size_t wl = c->wbytes < 0 ? 4 : (size_t)c->wbytes; /* -1: the 4 bytes of W1 */
        eng_status st = eng_model_load_mem(c->json, strlen(c->json), blob, wl, &m, &d);
        CHECK_MSG(st == c->want, "%s: status %s, want %s (%s)", c->what, eng_status_name(st),
                  eng_status_name(c->want), d.msg);
        if (c->msg)
            CHECK_MSG(strstr(d.msg, c->msg) != NULL, "%s: message '%s' lacks '%s'", c->what, d.msg,
                      c->msg);
        if (st)
            CHECK_MSG(m == NULL, "%s: model not NULL on failure", c->what);
        eng_model_free(st ? NULL : m);
    }
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void test_files(void)
{
    char dir[] = "/tmp/vfs_rt_errXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char jp[256], bp[256], b2[256];
    snprintf(jp, sizeof jp, "%s/model.json", dir);
    snprintf(bp, sizeof bp, "%s/a.bin", dir);
    snprintf(b2, sizeof b2, "%s/b.bin", dir);
    const char *json =
        "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"v\",\"op\":\"Const\"},{\"name\":"
        "\"y\",\"op\":\"Add\",\"input\":[\"x\",\"v\"]}]},"
        "\"weightsManifest\":[{\"paths\":[\"a.bin\",\"b.bin\"],\"weights\":["
        "{\"name\":\"w\",\"shape\":[1,1,1,1],\"dtype\":\"float32\"},"
        "{\"name\":\"v\",\"shape\":[3],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"uint8\","
        "\"min\":-1,\"scale\":0.5}}]}]}";
    write_file(jp, json, strlen(json));
    const float w = 2;
    unsigned char bytes[7];
    memcpy(bytes, &w, 4);
    bytes[4] = 0, bytes[5] = 2, bytes[6] = 5;
    eng_model *m = NULL;
    eng_diag d = {{0}};

    /* missing model.json, then missing shard */
    char none[300];
    snprintf(none, sizeof none, "%s/none.json", dir);
    CHECK(eng_model_load(none, &m, &d) == ENG_EIO);
    CHECK_MSG(strstr(d.msg, "none.json") != NULL, "%s", d.msg);
    CHECK(eng_model_load(jp, &m, &d) == ENG_EIO);
    CHECK_MSG(strstr(d.msg, "a.bin") != NULL, "%s", d.msg);

    /* split across two shards: valid; quantized uint8 widened as q * scale + min */
    write_file(bp, bytes, 5);
    write_file(b2, bytes + 5, 2);
    CHECK_MSG(eng_model_load(jp, &m, &d) == ENG_OK, "%s", d.msg);
    if (m) {
        const eng_tensor *v = NULL;
        CHECK(eng_model_const(m, "v", &v, &d) == ENG_OK);
        CHECK(eng_f32(v)[0] == -1.0f && eng_f32(v)[1] == 0.0f && eng_f32(v)[2] == 1.5f);
        eng_model_free(m);
        m = NULL;
    }
    /* truncated second shard */
    write_file(b2, bytes + 5, 1);
    CHECK(eng_model_load(jp, &m, &d) == ENG_EFORMAT);
    CHECK_MSG(strstr(d.msg, "truncated") != NULL, "%s", d.msg);
    /* one byte longer than declared (must not be copied past the buffer) */
    unsigned char three[3] = {2, 5, 9};
    write_file(b2, three, 3);
    CHECK(eng_model_load(jp, &m, &d) == ENG_EFORMAT);
    CHECK_MSG(strstr(d.msg, "b.bin") && strstr(d.msg, "longer"), "%s", d.msg);
    /* a shard longer than declared */
    unsigned char more[9] = {0};
    write_file(b2, more, 9);
    CHECK(eng_model_load(jp, &m, &d) == ENG_EFORMAT);
    CHECK_MSG(strstr(d.msg, "b.bin") && strstr(d.msg, "longer"), "%s", d.msg);
    /* a path escaping the folder */
    const char *esc = "{\"modelTopology\":{\"node\":[" NODES_OK "{\"name\":\"y\",\"op\":\"Relu\","
                      "\"input\":[\"x\"]}]},\"weightsManifest\":[{\"paths\":[\"../a.bin\"],"
                      "\"weights\":[" W1 "]}]}";
    write_file(jp, esc, strlen(esc));
    CHECK(eng_model_load(jp, &m, &d) == ENG_EFORMAT);
    CHECK_MSG(strstr(d.msg, "must stay in the model folder") != NULL, "%s", d.msg);
    CHECK(m == NULL);
    remove(jp);
    remove(bp);
    remove(b2);
    rmdir(dir);
}

/* float16 storage widened exactly, including subnormals and infinities */
static void test_float16(void)
{
    const char *json = "{\"modelTopology\":{\"node\":[" NODES_OK
                       "{\"name\":\"y\",\"op\":\"Relu\",\"input\":[\"x\"]}]}" MAN(
                           "{\"name\":\"w\",\"shape\":[9],\"dtype\":\"float32\","
                           "\"quantization\":{\"dtype\":\"float16\"}}");
    const uint16_t h[9] = {0x3c00, 0xc000, 0x3555, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0x8000, 0x2e66};
    const float want[9] = {
        1.0f,     -2.0f,    0.333251953125f, 5.9604644775390625e-08f, 6.0975551605224609e-05f,
        65504.0f, INFINITY, -0.0f,           0.0999755859375f};
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(eng_model_load_mem(json, strlen(json), h, sizeof h, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m)
        return;
    const eng_tensor *w = NULL;
    CHECK(eng_model_const(m, "w", &w, &d) == ENG_OK);
    for (int i = 0; i < 9; i++)
        CHECK_MSG(memcmp(&eng_f32(w)[i], &want[i], 4) == 0, "half %04x -> %g, want %g", h[i],
                  eng_f32(w)[i], want[i]);
    eng_model_free(m);
}

/* errors found only at run time: a graph that fixes its sizes */
static void test_run_errors(void)
{
    const char *json =
        "{\"modelTopology\":{\"node\":[" NODES_OK
        "{\"name\":\"y\",\"op\":\"Add\",\"input\":[\"x\",\"v\"]},{\"name\":\"v\",\"op\":\"Const\"}]"
        "}" MAN(W1 ",{\"name\":\"v\",\"shape\":[1,2,2,1],\"dtype\":\"float32\"}");
    float wb[5] = {1, 1, 2, 3, 4};
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(eng_model_load_mem(json, strlen(json), wb, sizeof wb, &m, &d) == ENG_OK, "%s", d.msg);
    if (!m)
        return;
    eng_tensor *x = tr_tensor(4, 1, 4, 4, 1);
    eng_tensor *o = NULL;
    const char *y = "y";
    CHECK(eng_model_run(m, x, &y, 1, &o, NULL, &d) == ENG_EINVAL);
    CHECK_MSG(strstr(d.msg, "node 'y' (Add): shapes [1,4,4,1] and [1,2,2,1] do not broadcast"),
              "%s", d.msg);
    CHECK(o == NULL);
    eng_tensor *x3 = tr_tensor(3, 1, 2, 2, 0);
    CHECK(eng_model_run(m, x3, &y, 1, &o, NULL, &d) == ENG_EINVAL);
    CHECK_MSG(strstr(d.msg, "rank 3") != NULL, "%s", d.msg);
    CHECK(eng_model_run(m, x, NULL, 1, &o, NULL, &d) == ENG_EINVAL);
    eng_tensor_free(x);
    eng_tensor_free(x3);
    eng_model_free(m);
}

int main(void)
{
    test_table();
    test_files();
    test_float16();
    test_run_errors();
    return check_report("test_runtime_errors");
}
