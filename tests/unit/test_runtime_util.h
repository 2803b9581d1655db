/* test_runtime_util.h: helpers shared by the runtime tests: finding the
 * installed CenterNet (by test_backbone_dir.h's rule), reading raw float32
 * files, comparing tensors with the golden tolerance |c - ref| <= rel * max|ref| + abs. */
#ifndef VFS_TEST_RUNTIME_UTIL_H
#define VFS_TEST_RUNTIME_UTIL_H
#include "check.h"
#include "engine.h"
#include "test_backbone_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the CenterNet model.json to test: $VFS_CENTERNET_JSON when set, else the
 * installed backbone's. NULL only when CenterNet is not installed: a
 * model.json that is missing or unreadable in an installed folder is still
 * returned, so that the test's load fails instead of skipping. */
static inline const char *tr_centernet_path(void)
{
    static char path[4096];
    const char *env = getenv("VFS_CENTERNET_JSON");
    if (env && *env)
        return env;
    return test_backbone_path("centernet", "model.json", path, sizeof path) == 1 ? path : NULL;
}

/* reads a raw little-endian float32 file of exactly n floats; NULL if absent/short */
static inline float *tr_read_f32(const char *path, int64_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *p = malloc((size_t)n * sizeof *p);
    size_t got = p ? fread(p, sizeof *p, (size_t)n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != (size_t)n || extra) {
        free(p);
        return NULL;
    }
    return p;
}

/* compares n floats; returns the worst error / allowed ratio (<= 1 passes) */
static inline double tr_compare(const char *what, const float *c, const float *ref, int64_t n,
                                double rel, double abs_tol)
{
    double mx = 0, worst = 0, worst_diff = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
    double tol = rel * mx + abs_tol;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)c[i] - ref[i]);
        if (!(e <= worst_diff)) {
            worst_diff = e;
            at = i;
        }
    }
    worst = worst_diff / tol;
    printf("  %-28s n=%-8lld max|ref|=%-9.4g max|diff|=%-9.3g (%.3g of tolerance) at %lld\n", what,
           (long long)n, mx, worst_diff, worst, (long long)at);
    return worst;
}

static inline eng_tensor *tr_tensor(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t dim[4] = {d0, d1, d2, d3};
    return eng_tensor_new(ENG_F32, ndim, dim);
}

/* ---- an in-memory graph builder for small test models ---- */

typedef struct tr_graph {
    char nodes[1 << 16];
    char weights[1 << 14];
    size_t nlen, wjlen;
    unsigned char *wdata;
    size_t wlen;
} tr_graph;

static inline void tr_b64(const char *s, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), k = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        out[k++] = tab[(v >> 18) & 63];
        out[k++] = tab[(v >> 12) & 63];
        out[k++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[k] = 0;
}

static inline void tr_graph_init(tr_graph *g) { memset(g, 0, sizeof *g); }

static inline void tr_graph_free(tr_graph *g)
{
    free(g->wdata);
    g->wdata = NULL;
}

/* a node: inputs comma separated ("" for none), attrs a json object body ("" for none) */
static inline void tr_node(tr_graph *g, const char *name, const char *op, const char *inputs,
                           const char *attrs)
{
    char in[1024] = "";
    size_t k = 0;
    const char *p = inputs;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        k += (size_t)snprintf(in + k, sizeof in - k, "%s\"%.*s\"", k ? "," : "", (int)len, p);
        p = e ? e + 1 : NULL;
    }
    g->nlen += (size_t)snprintf(g->nodes + g->nlen, sizeof g->nodes - g->nlen,
                                "%s{\"name\":\"%s\",\"op\":\"%s\",\"input\":[%s],\"attr\":{%s}}",
                                g->nlen ? "," : "", name, op, in, attrs);
}

static inline void tr_placeholder(tr_graph *g, const char *name, int ndim, const int64_t *dim)
{
    char attrs[512];
    size_t k = (size_t)snprintf(
        attrs, sizeof attrs, "\"dtype\":{\"type\":\"DT_FLOAT\"},\"shape\":{\"shape\":{\"dim\":[");
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(attrs + k, sizeof attrs - k, "%s{\"size\":\"%lld\"}", i ? "," : "",
                              (long long)dim[i]);
    snprintf(attrs + k, sizeof attrs - k, "]}}");
    tr_node(g, name, "Placeholder", "", attrs);
}

/* a constant node plus its manifest entry and float32 or int32 data */
static inline void tr_const(tr_graph *g, const char *name, int is_int, int ndim, const int64_t *dim,
                            const void *values)
{
    char shape[256] = "";
    size_t k = 0;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", i ? "," : "",
                              (long long)dim[i]);
        n *= dim[i];
    }
    char attrs[256];
    snprintf(attrs, sizeof attrs, "\"dtype\":{\"type\":\"%s\"}", is_int ? "DT_INT32" : "DT_FLOAT");
    tr_node(g, name, "Const", "", attrs);
    g->wjlen += (size_t)snprintf(g->weights + g->wjlen, sizeof g->weights - g->wjlen,
                                 "%s{\"name\":\"%s\",\"shape\":[%s],\"dtype\":\"%s\"}",
                                 g->wjlen ? "," : "", name, shape, is_int ? "int32" : "float32");
    g->wdata = realloc(g->wdata, g->wlen + (size_t)n * 4 + 1);
    memcpy(g->wdata + g->wlen, values, (size_t)n * 4);
    g->wlen += (size_t)n * 4;
}

static inline void tr_const_f(tr_graph *g, const char *name, int ndim, const int64_t *dim,
                              const float *v)
{
    tr_const(g, name, 0, ndim, dim, v);
}

static inline void tr_const_i(tr_graph *g, const char *name, int ndim, const int64_t *dim,
                              const int32_t *v)
{
    tr_const(g, name, 1, ndim, dim, v);
}

/* the model.json text (static buffer) */
static inline const char *tr_json(const tr_graph *g)
{
    static char json[1 << 17];
    snprintf(json, sizeof json,
             "{\"format\":\"graph-model\",\"modelTopology\":{\"node\":[%s]},"
             "\"weightsManifest\":[{\"paths\":[\"w.bin\"],\"weights\":[%s]}]}",
             g->nodes, g->weights);
    return json;
}

static inline eng_status tr_load(const tr_graph *g, eng_model **m, eng_diag *d)
{
    const char *j = tr_json(g);
    return eng_model_load_mem(j, strlen(j), g->wdata, g->wlen, m, d);
}

/* common attribute snippets */
static inline const char *tr_attr_conv(char *buf, size_t cap, int stride, const char *padding,
                                       const char *fused)
{
    char pad[32], f1[32], f2[32];
    tr_b64(padding, pad);
    size_t k = (size_t)snprintf(buf, cap,
                                "\"strides\":{\"list\":{\"i\":[\"1\",\"%d\",\"%d\",\"1\"]}},"
                                "\"padding\":{\"s\":\"%s\"},"
                                "\"dilations\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}},"
                                "\"data_format\":{\"s\":\"TkhXQw==\"}",
                                stride, stride, pad);
    if (fused && *fused) {
        const char *comma = strchr(fused, ',');
        char a[32];
        snprintf(a, sizeof a, "%.*s", comma ? (int)(comma - fused) : (int)strlen(fused), fused);
        tr_b64(a, f1);
        if (comma) {
            tr_b64(comma + 1, f2);
            snprintf(buf + k, cap - k,
                     ",\"fused_ops\":{\"list\":{\"s\":[\"%s\",\"%s\"]}},\"num_args\":{\"i\":\"1\"}",
                     f1, f2);
        } else {
            snprintf(buf + k, cap - k,
                     ",\"fused_ops\":{\"list\":{\"s\":[\"%s\"]}},\"num_args\":{\"i\":\"%d\"}", f1,
                     strcmp(a, "BiasAdd") == 0);
        }
    }
    return buf;
}
#endif
