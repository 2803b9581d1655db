/* model.c: loads a tfjs graph model (model.json + weight shards) into an
 * immutable graph: nodes with parsed attributes, constants widened to
 * float32/int32, inputs resolved to node indices, a topological order.
 *
 * Design: everything untrusted is checked here once, so the executor can
 * trust the graph: sizes are bounded before any allocation, shards must hold
 * exactly the bytes the manifest declares, unknown ops are listed by name,
 * cycles are found by Kahn's algorithm, and when the Placeholder declares a
 * full shape the graph's shapes are checked end to end (infer only, no
 * compute) so filters that do not fit their inputs fail at load.
 */
#include "runtime_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <immintrin.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_JSON_BYTES ((size_t)256 << 20)
#define MAX_WEIGHT_BYTES ((uint64_t)4 << 30)
#define MAX_NODES 1000000
#define MAX_ATTR_INT (1 << 20)

/* ---- small json helpers ---- */

/* integer from a json number or a decimal string (tfjs writes int64 as strings) */
static int json_int(const cJSON *v, int64_t *out)
{
    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (!(x >= -9.0e15 && x <= 9.0e15) || x != (double)(int64_t)x)
            return -1;
        *out = (int64_t)x;
        return 0;
    }
    if (cJSON_IsString(v) && v->valuestring) {
        const char *s = v->valuestring;
        char *end = NULL;
        if (!*s)
            return -1;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || *end)
            return -1;
        *out = x;
        return 0;
    }
    return -1;
}

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* decodes base64 text into out (NUL terminated); -1 on bad input or overflow */
static int b64_decode(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        int v = b64_val((unsigned char)*s);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = 0;
    return 0;
}

static const cJSON *attr_get(const cJSON *attrs, const char *key)
{
    return attrs ? cJSON_GetObjectItemCaseSensitive(attrs, key) : NULL;
}

/* string attribute {"s": base64}; returns 1 found, 0 absent, -1 malformed */
static int attr_str(const cJSON *attrs, const char *key, char *out, size_t cap)
{
    const cJSON *a = attr_get(attrs, key);
    if (!a)
        return 0;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(a, "s");
    if (!cJSON_IsString(s) || !s->valuestring)
        return -1;
    return b64_decode(s->valuestring, out, cap) ? -1 : 1;
}

static int attr_bool(const cJSON *attrs, const char *key, int *out)
{
    const cJSON *a = attr_get(attrs, key);
    if (!a)
        return 0;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(a, "b");
    if (!b)
        return 1; /* proto3 default: false omitted */
    if (!cJSON_IsBool(b))
        return -1;
    *out = cJSON_IsTrue(b) ? 1 : 0;
    return 1;
}

static int attr_int(const cJSON *attrs, const char *key, int64_t *out)
{
    const cJSON *a = attr_get(attrs, key);
    if (!a)
        return 0;
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(a, "i");
    if (!i) {
        *out = 0;
        return 1;
    }
    return json_int(i, out) ? -1 : 1;
}

/* list of ints {"list": {"i": [...]}}: returns count (0 when absent or empty), -1 malformed */
static int attr_ints(const cJSON *attrs, const char *key, int64_t *out, int cap)
{
    const cJSON *a = attr_get(attrs, key);
    if (!a)
        return 0;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(a, "list");
    if (!l)
        return 0;
    if (!cJSON_IsObject(l))
        return -1;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(l, "i");
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return -1;
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (n >= cap || json_int(v, &out[n]))
            return -1;
        n++;
    }
    return n;
}

static int dtype_code(const char *s)
{
    if (!strcmp(s, "DT_FLOAT"))
        return RT_DT_FLOAT;
    if (!strcmp(s, "DT_INT32"))
        return RT_DT_INT32;
    if (!strcmp(s, "DT_BOOL"))
        return RT_DT_BOOL;
    return 0;
}

/* type attribute {"type": "DT_FLOAT"}: 1 found (code in out, 0 if not ours), 0 absent, -1 bad */
static int attr_type(const cJSON *attrs, const char *key, int *out)
{
    const cJSON *a = attr_get(attrs, key);
    if (!a)
        return 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "type");
    if (!cJSON_IsString(t) || !t->valuestring)
        return -1;
    *out = dtype_code(t->valuestring);
    return 1;
}

/* tensorShape {"dim": [{"size": "3"}, ...]} or {"unknownRank": true};
 * returns rank, -1 unknown rank, -2 malformed */
static int parse_shape(const cJSON *shape, int64_t *dim)
{
    if (!cJSON_IsObject(shape))
        return -2;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(shape, "unknownRank")))
        return -1;
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(shape, "dim");
    if (!dims)
        return 0;
    if (!cJSON_IsArray(dims))
        return -2;
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, dims)
    {
        if (n >= ENG_MAX_DIMS || !cJSON_IsObject(v))
            return -2;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(v, "size");
        int64_t x = 0;
        if (s && json_int(s, &x))
            return -2;
        if (x < -1 || x > RT_MAX_ELEMS)
            return -2;
        dim[n++] = x;
    }
    return n;
}

/* ---- name hash ---- */

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

int rt_find_node(const eng_model *m, const char *name, size_t len)
{
    if (!m->hash)
        return -1;
    size_t mask = (size_t)m->hash_cap - 1;
    for (size_t i = name_hash(name, len) & mask;; i = (i + 1) & mask) {
        int k = m->hash[i];
        if (k < 0)
            return -1;
        const char *nm = m->nodes[k].name;
        if (strlen(nm) == len && !memcmp(nm, name, len))
            return k;
    }
}

static int hash_insert(eng_model *m, int k)
{
    const char *nm = m->nodes[k].name;
    size_t len = strlen(nm);
    if (rt_find_node(m, nm, len) >= 0)
        return -1;
    size_t mask = (size_t)m->hash_cap - 1;
    size_t i = name_hash(nm, len) & mask;
    while (m->hash[i] >= 0)
        i = (i + 1) & mask;
    m->hash[i] = k;
    return 0;
}

const rt_node *rt_input_node(const eng_model *m, const rt_node *n, int i)
{
    return &m->nodes[n->in[i].node];
}

/* ---- weights ---- */

typedef struct weight_spec {
    const char *name; /* borrowed from the json tree */
    int dtype;        /* RT_DT_* */
    int quant;        /* 0 none, 1 float16, 2 uint8, 3 uint16 */
    double qmin, qscale;
    int ndim;
    int64_t dim[ENG_MAX_DIMS];
    int64_t numel;
    uint64_t offset, bytes; /* in the concatenated shard data */
    eng_tensor *t;          /* decoded (owned until moved to a Const node) */
} weight_spec;

typedef struct load_ctx {
    cJSON *root;
    const char *dir;      /* folder of model.json, NULL for load_mem */
    const uint8_t *wdata; /* concatenated shards */
    uint64_t wlen;
    uint8_t *wbuf; /* owned copy when read from files */
    int n_weights;
    weight_spec *weights;
    int n_groups;
    uint64_t *group_bytes; /* bytes each group's weights need */
    int *node_weight;      /* node index -> weight index or -1 */
} load_ctx;

static eng_status parse_weight(const cJSON *w, weight_spec *s, eng_diag *d, int gi, int wi)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(w, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(w, "shape");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(w, "dtype");
    if (!cJSON_IsObject(w) || !cJSON_IsString(name) || !name->valuestring)
        return eng_fail(d, ENG_EFORMAT, "weightsManifest[%d].weights[%d]: 'name' missing", gi, wi);
    s->name = name->valuestring;
    if (!cJSON_IsArray(shape))
        return eng_fail(d, ENG_EFORMAT, "weight '%s': 'shape' missing or not an array", s->name);
    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return eng_fail(d, ENG_EFORMAT, "weight '%s': 'dtype' missing", s->name);
    const char *dt = dtype->valuestring;
    if (!strcmp(dt, "float32"))
        s->dtype = RT_DT_FLOAT;
    else if (!strcmp(dt, "int32"))
        s->dtype = RT_DT_INT32;
    else if (!strcmp(dt, "bool"))
        s->dtype = RT_DT_BOOL;
    else
        return eng_fail(d, ENG_EUNSUPPORTED, "weight '%s': dtype '%.32s' not supported", s->name,
                        dt);
    s->ndim = 0;
    s->numel = 1;
    const cJSON *v;
    cJSON_ArrayForEach(v, shape)
    {
        int64_t x;
        if (s->ndim >= ENG_MAX_DIMS)
            return eng_fail(d, ENG_EUNSUPPORTED, "weight '%s': more than %d dimensions", s->name,
                            ENG_MAX_DIMS);
        if (json_int(v, &x) || x < 0)
            return eng_fail(d, ENG_EFORMAT, "weight '%s': bad shape entry", s->name);
        if (x > 0 && s->numel > RT_MAX_ELEMS / x)
            return eng_fail(d, ENG_ENOMEM, "weight '%s': declared shape too large", s->name);
        s->dim[s->ndim++] = x;
        s->numel *= x;
    }
    int elem = s->dtype == RT_DT_BOOL ? 1 : 4;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(w, "quantization");
    if (q) {
        const cJSON *qd = cJSON_GetObjectItemCaseSensitive(q, "dtype");
        if (!cJSON_IsObject(q) || !cJSON_IsString(qd) || !qd->valuestring)
            return eng_fail(d, ENG_EFORMAT, "weight '%s': bad 'quantization'", s->name);
        if (s->dtype == RT_DT_BOOL)
            return eng_fail(d, ENG_EUNSUPPORTED, "weight '%s': quantized bool", s->name);
        if (!strcmp(qd->valuestring, "float16")) {
            if (s->dtype != RT_DT_FLOAT)
                return eng_fail(d, ENG_EUNSUPPORTED, "weight '%s': float16 storage of int32",
                                s->name);
            s->quant = 1;
            elem = 2;
        } else if (!strcmp(qd->valuestring, "uint8") || !strcmp(qd->valuestring, "uint16")) {
            const cJSON *mn = cJSON_GetObjectItemCaseSensitive(q, "min");
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(q, "scale");
            if (!cJSON_IsNumber(mn) || !cJSON_IsNumber(sc))
                return eng_fail(d, ENG_EFORMAT, "weight '%s': quantization needs min and scale",
                                s->name);
            s->qmin = mn->valuedouble;
            s->qscale = sc->valuedouble;
            s->quant = qd->valuestring[4] == '8' ? 2 : 3;
            elem = s->quant == 2 ? 1 : 2;
        } else {
            return eng_fail(d, ENG_EUNSUPPORTED,
                            "weight '%s': quantization dtype '%.32s' not "
                            "supported",
                            s->name, qd->valuestring);
        }
    }
    s->bytes = (uint64_t)s->numel * (uint64_t)elem;
    return ENG_OK;
}

static eng_status parse_manifest(load_ctx *L, eng_diag *d)
{
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(L->root, "weightsManifest");
    if (!man)
        return ENG_OK; /* a graph without weights is legal */
    if (!cJSON_IsArray(man))
        return eng_fail(d, ENG_EFORMAT, "'weightsManifest' is not an array");
    int total = 0;
    L->n_groups = cJSON_GetArraySize(man);
    const cJSON *g;
    cJSON_ArrayForEach(g, man)
    {
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(g, "weights");
        if (!cJSON_IsObject(g) || !cJSON_IsArray(ws))
            return eng_fail(d, ENG_EFORMAT, "weightsManifest group without a 'weights' array");
        total += cJSON_GetArraySize(ws);
        if (total > MAX_NODES)
            return eng_fail(d, ENG_ENOMEM, "weightsManifest: too many weights");
    }
    L->weights = calloc((size_t)total + 1, sizeof *L->weights);
    L->group_bytes = calloc((size_t)L->n_groups + 1, sizeof *L->group_bytes);
    if (!L->weights || !L->group_bytes)
        return eng_fail(d, ENG_ENOMEM, "weightsManifest: out of memory");
    uint64_t off = 0;
    int gi = 0;
    cJSON_ArrayForEach(g, man)
    {
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(g, "weights");
        const cJSON *w;
        int wi = 0;
        cJSON_ArrayForEach(w, ws)
        {
            weight_spec *s = &L->weights[L->n_weights];
            eng_status st = parse_weight(w, s, d, gi, wi);
            if (st)
                return st;
            s->offset = off;
            off += s->bytes;
            L->group_bytes[gi] += s->bytes;
            if (off > MAX_WEIGHT_BYTES)
                return eng_fail(d, ENG_ENOMEM,
                                "weightsManifest: declared weights exceed %llu bytes",
                                (unsigned long long)MAX_WEIGHT_BYTES);
            L->n_weights++;
            wi++;
        }
        gi++;
    }
    return ENG_OK;
}

static eng_status read_file(const char *path, uint64_t max, uint8_t **buf, uint64_t *len,
                            eng_diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_fail(d, ENG_EIO, "'%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return eng_fail(d, ENG_EIO, "'%s': not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return eng_fail(d, ENG_EFORMAT, "'%s': %lld bytes, more than the %llu expected", path,
                        (long long)st.st_size, (unsigned long long)max);
    }
    uint8_t *b = malloc((size_t)st.st_size + 1);
    if (!b) {
        fclose(f);
        return eng_fail(d, ENG_ENOMEM, "'%s': out of memory", path);
    }
    size_t got = fread(b, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(b);
        return eng_fail(d, ENG_EIO, "'%s': short read", path);
    }
    b[got] = 0;
    *buf = b;
    *len = got;
    return ENG_OK;
}

/* reads every group's shards into one buffer; each group must hold exactly
 * the bytes its weights declare */
static eng_status read_shards(load_ctx *L, eng_diag *d)
{
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(L->root, "weightsManifest");
    uint64_t total = 0;
    for (int i = 0; i < L->n_groups; i++)
        total += L->group_bytes[i];
    L->wbuf = malloc(total ? total : 1);
    if (!L->wbuf)
        return eng_fail(d, ENG_ENOMEM, "weights: out of memory for %llu bytes",
                        (unsigned long long)total);
    uint64_t off = 0;
    int gi = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, man)
    {
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(g, "paths");
        if (!cJSON_IsArray(paths))
            return eng_fail(d, ENG_EFORMAT, "weightsManifest[%d]: 'paths' missing", gi);
        uint64_t have = 0, need = L->group_bytes[gi];
        const cJSON *p;
        cJSON_ArrayForEach(p, paths)
        {
            if (!cJSON_IsString(p) || !p->valuestring || !p->valuestring[0])
                return eng_fail(d, ENG_EFORMAT, "weightsManifest[%d]: bad path", gi);
            const char *rel = p->valuestring;
            if (rel[0] == '/' || strstr(rel, "..") || strlen(rel) > 1024)
                return eng_fail(d, ENG_EFORMAT,
                                "shard '%.100s': path must stay in the model folder", rel);
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", L->dir, rel);
            uint8_t *buf = NULL;
            uint64_t len = 0;
            eng_status st = read_file(path, need - have, &buf, &len, d);
            if (st == ENG_EFORMAT)
                return eng_fail(d, ENG_EFORMAT,
                                "shard '%s': longer than the %llu bytes the "
                                "manifest declares for its group",
                                rel, (unsigned long long)need);
            if (st)
                return st;
            memcpy(L->wbuf + off + have, buf, len);
            have += len;
            free(buf);
        }
        if (have != need)
            return eng_fail(d, ENG_EFORMAT,
                            "weights group %d truncated: shards hold %llu bytes, "
                            "the manifest declares %llu",
                            gi, (unsigned long long)have, (unsigned long long)need);
        off += have;
        gi++;
    }
    L->wdata = L->wbuf;
    L->wlen = off;
    return ENG_OK;
}

static void f16_to_f32(const uint8_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = _cvtsh_ss(h);
    }
}

static eng_status decode_weights(load_ctx *L, eng_diag *d)
{
    for (int i = 0; i < L->n_weights; i++) {
        weight_spec *s = &L->weights[i];
        if (s->offset + s->bytes > L->wlen)
            return eng_fail(d, ENG_EFORMAT,
                            "weight '%s' truncated: needs bytes %llu..%llu, "
                            "shards hold %llu",
                            s->name, (unsigned long long)s->offset,
                            (unsigned long long)(s->offset + s->bytes),
                            (unsigned long long)L->wlen);
        eng_dtype dt = s->dtype == RT_DT_FLOAT ? ENG_F32 : ENG_I32;
        s->t = eng_tensor_new(dt, s->ndim, s->dim);
        if (!s->t)
            return eng_fail(d, ENG_ENOMEM, "weight '%s': out of memory", s->name);
        const uint8_t *src = L->wdata + s->offset;
        int64_t n = s->numel;
        float *f = (float *)s->t->data;
        int32_t *k = (int32_t *)s->t->data;
        if (s->quant == 1) {
            f16_to_f32(src, f, n);
        } else if (s->quant == 2 || s->quant == 3) {
            for (int64_t j = 0; j < n; j++) {
                unsigned q;
                if (s->quant == 2) {
                    q = src[j];
                } else {
                    uint16_t h;
                    memcpy(&h, src + 2 * j, 2);
                    q = h;
                }
                double v = (double)q * s->qscale + s->qmin;
                if (dt == ENG_F32) {
                    f[j] = (float)v;
                } else {
                    double r = v < 0 ? -__builtin_floor(-v + 0.5) : __builtin_floor(v + 0.5);
                    k[j] = (r > INT_MAX || r < INT_MIN) ? 0 : (int32_t)r;
                }
            }
        } else if (s->dtype == RT_DT_BOOL) {
            for (int64_t j = 0; j < n; j++)
                k[j] = src[j] != 0;
        } else {
            memcpy(s->t->data, src, (size_t)n * 4);
        }
    }
    if (L->dir == NULL) {
        uint64_t need =
            L->n_weights ? L->weights[L->n_weights - 1].offset + L->weights[L->n_weights - 1].bytes
                         : 0;
        if (L->wlen != need)
            return eng_fail(d, ENG_EFORMAT, "weights hold %llu bytes, the manifest declares %llu",
                            (unsigned long long)L->wlen, (unsigned long long)need);
    }
    return ENG_OK;
}

/* ---- nodes ---- */

static eng_status bad_attr(const rt_node *n, const char *what, eng_diag *d)
{
    return eng_fail(d, ENG_EFORMAT, "node '%s': bad attribute '%s'", n->name, what);
}

/* strides, dilations, ksize: 4 values, 1 over batch and channels */
static eng_status attrs_window(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    rt_attr *a = &n->a;
    int64_t v[8];
    static const char *const hw_lists[3] = {"strides", "dilations", "ksize"};
    int *hw_dst[3] = {a->stride, a->dilation, a->ksize};
    for (int i = 0; i < 3; i++) {
        int k = attr_ints(attrs, hw_lists[i], v, 8);
        if (k < 0 || (k != 0 && k != 4))
            return bad_attr(n, hw_lists[i], d);
        if (k == 4) {
            for (int j = 0; j < 4; j++)
                if (v[j] < 1 || v[j] > MAX_ATTR_INT)
                    return bad_attr(n, hw_lists[i], d);
            if (v[0] != 1 || v[3] != 1)
                return eng_fail(d, ENG_EUNSUPPORTED,
                                "node '%s': '%s' over batch or channels not "
                                "supported",
                                n->name, hw_lists[i]);
            hw_dst[i][0] = (int)v[1];
            hw_dst[i][1] = (int)v[2];
        }
    }
    return ENG_OK;
}

/* padding (SAME, VALID, EXPLICIT with explicit_paddings) and data_format (NHWC) */
static eng_status attrs_padding(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    rt_attr *a = &n->a;
    int64_t v[8];
    char s[64];
    int k = attr_str(attrs, "padding", s, sizeof s);
    if (k < 0)
        return bad_attr(n, "padding", d);
    if (k == 1) {
        if (!strcmp(s, "SAME"))
            a->padding = ENG_PAD_SAME;
        else if (!strcmp(s, "VALID"))
            a->padding = ENG_PAD_VALID;
        else if (!strcmp(s, "EXPLICIT"))
            a->padding = ENG_PAD_EXPLICIT;
        else
            return eng_fail(d, ENG_EUNSUPPORTED, "node '%s': padding '%s' not supported", n->name,
                            s);
    }
    k = attr_ints(attrs, "explicit_paddings", v, 8);
    if (k < 0 || (k != 0 && k != 8))
        return bad_attr(n, "explicit_paddings", d);
    if (a->padding == ENG_PAD_EXPLICIT) {
        if (k != 8)
            return eng_fail(d, ENG_EFORMAT,
                            "node '%s': EXPLICIT padding without 8 "
                            "'explicit_paddings'",
                            n->name);
        for (int j = 0; j < 8; j++)
            if (v[j] < 0 || v[j] > MAX_ATTR_INT)
                return bad_attr(n, "explicit_paddings", d);
        if (v[0] || v[1] || v[6] || v[7])
            return eng_fail(d, ENG_EUNSUPPORTED,
                            "node '%s': padding of batch or channels not "
                            "supported",
                            n->name);
        for (int j = 0; j < 4; j++)
            a->pads[j] = (int)v[2 + j];
    }
    k = attr_str(attrs, "data_format", s, sizeof s);
    if (k < 0)
        return bad_attr(n, "data_format", d);
    if (k == 1 && strcmp(s, "NHWC"))
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "node '%s': data_format '%s' not supported (NHWC "
                        "only)",
                        n->name, s);
    return ENG_OK;
}

/* fused ops: BiasAdd then at most one activation, num_args to match */
static eng_status attrs_fused(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    rt_attr *a = &n->a;
    char s[64];
    const cJSON *fo = attr_get(attrs, "fused_ops");
    if (!fo)
        return ENG_OK;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(fo, "list");
    const cJSON *arr = l ? cJSON_GetObjectItemCaseSensitive(l, "s") : NULL;
    if (arr && !cJSON_IsArray(arr))
        return bad_attr(n, "fused_ops", d);
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsString(e) || !e->valuestring || b64_decode(e->valuestring, s, sizeof s))
            return bad_attr(n, "fused_ops", d);
        if (i == 0 && !strcmp(s, "BiasAdd"))
            a->has_bias = 1;
        else if (a->act == ENG_ACT_NONE && !strcmp(s, "Relu"))
            a->act = ENG_ACT_RELU;
        else if (a->act == ENG_ACT_NONE && !strcmp(s, "Relu6"))
            a->act = ENG_ACT_RELU6;
        else if (a->act == ENG_ACT_NONE && !strcmp(s, "Sigmoid"))
            a->act = ENG_ACT_SIGMOID;
        else
            return eng_fail(d, ENG_EUNSUPPORTED, "node '%s': fused op '%s' not supported", n->name,
                            s);
        i++;
    }
    int64_t na = 0;
    if (attr_int(attrs, "num_args", &na) < 0)
        return bad_attr(n, "num_args", d);
    if (na != a->has_bias)
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "node '%s': num_args %lld with fused_ops "
                        "%s BiasAdd not supported",
                        n->name, (long long)na, a->has_bias ? "with" : "without");
    return ENG_OK;
}

/* boolean flags, false when absent */
static eng_status attrs_flags(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    rt_attr *a = &n->a;
    static const char *const flags[5] = {"keep_dims", "align_corners", "half_pixel_centers",
                                         "transpose_a", "transpose_b"};
    int *dst[5] = {&a->keep_dims, &a->align_corners, &a->half_pixel, &a->transpose_a,
                   &a->transpose_b};
    for (int i = 0; i < 5; i++) {
        int b = 0;
        if (attr_bool(attrs, flags[i], &b) < 0)
            return bad_attr(n, flags[i], d);
        *dst[i] = b;
    }
    return ENG_OK;
}

/* StridedSlice masks, batch_dims (0 only), squeeze_dims */
static eng_status attrs_slicing(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    rt_attr *a = &n->a;
    static const char *const masks[5] = {"begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                         "shrink_axis_mask"};
    int *mdst[5] = {&a->begin_mask, &a->end_mask, &a->ellipsis_mask, &a->new_axis_mask,
                    &a->shrink_mask};
    for (int i = 0; i < 5; i++) {
        int64_t x = 0;
        if (attr_int(attrs, masks[i], &x) < 0 || x < 0 || x > 0xffff)
            return bad_attr(n, masks[i], d);
        *mdst[i] = (int)x;
    }
    int64_t bd = 0;
    if (attr_int(attrs, "batch_dims", &bd) < 0)
        return bad_attr(n, "batch_dims", d);
    if (bd != 0)
        return eng_fail(d, ENG_EUNSUPPORTED, "node '%s': batch_dims %lld not supported", n->name,
                        (long long)bd);
    int64_t v[ENG_MAX_DIMS];
    int k = attr_ints(attrs, "squeeze_dims", v, ENG_MAX_DIMS);
    if (k < 0)
        return bad_attr(n, "squeeze_dims", d);
    a->n_squeeze = k;
    for (int i = 0; i < k; i++) {
        if (v[i] < -ENG_MAX_DIMS || v[i] >= ENG_MAX_DIMS)
            return bad_attr(n, "squeeze_dims", d);
        a->squeeze[i] = (int)v[i];
    }
    return ENG_OK;
}

/* DstT and SrcT (Cast, Const); a Cast to a type we do not hold fails */
static eng_status attrs_types(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    rt_attr *a = &n->a;
    int t = 0;
    if (attr_type(attrs, "DstT", &t) < 0)
        return bad_attr(n, "DstT", d);
    a->dst_type = t;
    t = 0;
    if (attr_type(attrs, "SrcT", &t) < 0)
        return bad_attr(n, "SrcT", d);
    a->src_type = t;
    if (!strcmp(n->op->name, "Cast") && (!a->dst_type))
        return eng_fail(d, ENG_EUNSUPPORTED, "node '%s': Cast to this type not supported", n->name);
    return ENG_OK;
}

/* Every attribute the ops read, parsed the same for every node (absent ones
 * keep their defaults); checked in this order, so the first bad one is named. */
static eng_status parse_attrs(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    rt_attr *a = &n->a;
    a->stride[0] = a->stride[1] = 1;
    a->dilation[0] = a->dilation[1] = 1;
    a->ksize[0] = a->ksize[1] = 1;
    a->padding = ENG_PAD_VALID;
    eng_status st;
    if ((st = attrs_window(n, attrs, d)) || (st = attrs_padding(n, attrs, d)) ||
        (st = attrs_fused(n, attrs, d)) || (st = attrs_flags(n, attrs, d)) ||
        (st = attrs_slicing(n, attrs, d)) || (st = attrs_types(n, attrs, d)))
        return st;
    return ENG_OK;
}

static eng_status parse_placeholder(rt_node *n, const cJSON *attrs, eng_diag *d)
{
    const cJSON *sh = attr_get(attrs, "shape");
    n->decl_ndim = 0;
    if (!sh)
        return ENG_OK;
    int r = parse_shape(cJSON_GetObjectItemCaseSensitive(sh, "shape"), n->decl_dim);
    if (r == -2)
        return eng_fail(d, ENG_EFORMAT, "placeholder '%s': bad 'shape'", n->name);
    n->decl_ndim = r < 0 ? 0 : r;
    int t = RT_DT_FLOAT;
    if (attr_type(attrs, "dtype", &t) < 0 || t != RT_DT_FLOAT)
        return eng_fail(d, ENG_EUNSUPPORTED, "placeholder '%s': only float32 input supported",
                        n->name);
    return ENG_OK;
}

/* attaches the manifest weight of the same name, checking the declared dtype and shape */
static eng_status bind_const(load_ctx *L, eng_model *m, rt_node *n, const cJSON *attrs, eng_diag *d)
{
    int wi = L->node_weight[n - m->nodes];
    if (wi < 0)
        return eng_fail(d, ENG_EFORMAT, "const '%s': no entry in weightsManifest", n->name);
    weight_spec *s = &L->weights[wi];
    const cJSON *val = attr_get(attrs, "value");
    const cJSON *ten = val ? cJSON_GetObjectItemCaseSensitive(val, "tensor") : NULL;
    if (ten) {
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ten, "dtype");
        if (cJSON_IsString(dt) && dt->valuestring && dtype_code(dt->valuestring) != s->dtype)
            return eng_fail(d, ENG_EFORMAT, "const '%s': dtype %s does not match its weights",
                            n->name, dt->valuestring);
        const cJSON *shp = cJSON_GetObjectItemCaseSensitive(ten, "tensorShape");
        if (shp) {
            int64_t dim[ENG_MAX_DIMS];
            int r = parse_shape(shp, dim);
            if (r == -2)
                return eng_fail(d, ENG_EFORMAT, "const '%s': bad tensorShape", n->name);
            int ok = r == s->ndim;
            for (int i = 0; ok && i < r; i++)
                ok = dim[i] == s->dim[i];
            if (r >= 0 && !ok)
                return eng_fail(d, ENG_EFORMAT,
                                "const '%s': declared shape has %d dims, its "
                                "weights %d (or sizes differ)",
                                n->name, r, s->ndim);
        }
    }
    n->value = s->t;
    s->t = NULL;
    return ENG_OK;
}

/* parses "name", "name:1", "^name" (control input: *ctl = 1) */
static int split_input(const char *s, size_t *len, int *port, int *ctl)
{
    *ctl = s[0] == '^';
    if (*ctl)
        s++;
    size_t n = strlen(s);
    *port = 0;
    const char *c = strrchr(s, ':');
    if (c && c[1]) {
        char *end;
        long p = strtol(c + 1, &end, 10);
        if (!*end && p >= 0 && p < 1000) {
            *port = (int)p;
            n = (size_t)(c - s);
        }
    }
    *len = n;
    return *ctl;
}

static eng_status build_nodes(load_ctx *L, eng_model *m, eng_diag *d)
{
    const cJSON *topo = cJSON_GetObjectItemCaseSensitive(L->root, "modelTopology");
    const cJSON *nodes = topo ? cJSON_GetObjectItemCaseSensitive(topo, "node") : NULL;
    if (!cJSON_IsObject(topo) || !cJSON_IsArray(nodes))
        return eng_fail(d, ENG_EFORMAT, "'modelTopology.node' missing: not a tfjs graph model");
    int n = cJSON_GetArraySize(nodes);
    if (n <= 0)
        return eng_fail(d, ENG_EFORMAT, "'modelTopology.node' is empty");
    if (n > MAX_NODES)
        return eng_fail(d, ENG_ENOMEM, "'modelTopology.node': %d nodes, more than %d", n,
                        MAX_NODES);
    m->nodes = calloc((size_t)n, sizeof *m->nodes);
    m->hash_cap = 16;
    while (m->hash_cap < 2 * n)
        m->hash_cap *= 2;
    m->hash = malloc((size_t)m->hash_cap * sizeof *m->hash);
    if (!m->nodes || !m->hash)
        return eng_fail(d, ENG_ENOMEM, "graph: out of memory");
    memset(m->hash, 0xff, (size_t)m->hash_cap * sizeof *m->hash);

    /* pass 1: names and ops; collect every unknown op for one message */
    char unknown[400] = "";
    int n_unknown = 0;
    const cJSON *js;
    int i = 0;
    cJSON_ArrayForEach(js, nodes)
    {
        rt_node *nd = &m->nodes[i];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(js, "op");
        if (!cJSON_IsObject(js) || !cJSON_IsString(name) || !name->valuestring ||
            !name->valuestring[0])
            return eng_fail(d, ENG_EFORMAT, "modelTopology.node[%d]: 'name' missing", i);
        nd->absorbed_by = -1;
        nd->name = strdup(name->valuestring);
        if (!nd->name)
            return eng_fail(d, ENG_ENOMEM, "graph: out of memory");
        m->n_nodes = i + 1;
        if (!cJSON_IsString(op) || !op->valuestring)
            return eng_fail(d, ENG_EFORMAT, "node '%s': 'op' missing", nd->name);
        if (hash_insert(m, i))
            return eng_fail(d, ENG_EFORMAT, "node '%s': name used twice", nd->name);
        nd->op = rt_op_find(op->valuestring);
        if (!nd->op) {
            char quoted[72];
            snprintf(quoted, sizeof quoted, "'%.60s'", op->valuestring);
            if (!strstr(unknown, quoted)) {
                size_t u = strlen(unknown);
                if (u < 300)
                    snprintf(unknown + u, sizeof unknown - u, "%s%s", n_unknown ? ", " : "",
                             quoted);
                n_unknown++;
            }
        }
        i++;
    }
    if (n_unknown)
        return eng_fail(d, ENG_EUNSUPPORTED, "unknown op%s %s: not supported by this engine",
                        n_unknown > 1 ? "s" : "", unknown);
    L->node_weight = malloc((size_t)n * sizeof *L->node_weight);
    if (!L->node_weight)
        return eng_fail(d, ENG_ENOMEM, "graph: out of memory");
    memset(L->node_weight, 0xff, (size_t)n * sizeof *L->node_weight);
    for (int w = 0; w < L->n_weights; w++) {
        int k = rt_find_node(m, L->weights[w].name, strlen(L->weights[w].name));
        if (k < 0)
            continue; /* unused weights are allowed, as in tfjs */
        if (L->node_weight[k] >= 0)
            return eng_fail(d, ENG_EFORMAT, "weight '%s' listed twice in weightsManifest",
                            L->weights[w].name);
        L->node_weight[k] = w;
    }

    /* pass 2: inputs, attributes, constants */
    int n_placeholders = 0;
    i = 0;
    cJSON_ArrayForEach(js, nodes)
    {
        rt_node *nd = &m->nodes[i];
        const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(js, "input");
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(js, "attr");
        if (attrs && !cJSON_IsObject(attrs))
            return eng_fail(d, ENG_EFORMAT, "node '%s': 'attr' is not an object", nd->name);
        if (inputs && !cJSON_IsArray(inputs))
            return eng_fail(d, ENG_EFORMAT, "node '%s': 'input' is not an array", nd->name);
        int cap = inputs ? cJSON_GetArraySize(inputs) : 0;
        nd->in = calloc((size_t)cap + 1, sizeof *nd->in);
        if (!nd->in)
            return eng_fail(d, ENG_ENOMEM, "graph: out of memory");
        const cJSON *in;
        cJSON_ArrayForEach(in, inputs)
        {
            if (!cJSON_IsString(in) || !in->valuestring)
                return eng_fail(d, ENG_EFORMAT, "node '%s': input is not a string", nd->name);
            size_t len;
            int port, ctl;
            if (split_input(in->valuestring, &len, &port, &ctl))
                continue; /* control dependencies carry no data; order comes from data edges */
            const char *nm = in->valuestring;
            int src = rt_find_node(m, nm, len);
            if (src < 0)
                return eng_fail(d, ENG_EFORMAT, "node '%s': input '%.200s' not found", nd->name,
                                nm);
            if (port >= m->nodes[src].op->n_out)
                return eng_fail(d, ENG_EFORMAT,
                                "node '%s': input '%.200s': '%s' has %d "
                                "output%s",
                                nd->name, nm, m->nodes[src].op->name, m->nodes[src].op->n_out,
                                m->nodes[src].op->n_out > 1 ? "s" : "");
            nd->in[nd->n_in].node = src;
            nd->in[nd->n_in].port = port;
            nd->n_in++;
        }
        if (nd->n_in < nd->op->min_in || nd->n_in > nd->op->max_in)
            return eng_fail(d, ENG_EFORMAT, "node '%s': %s takes %d..%d inputs, has %d", nd->name,
                            nd->op->name, nd->op->min_in, nd->op->max_in, nd->n_in);
        eng_status st = parse_attrs(nd, attrs, d);
        if (st)
            return st;
        if (!strcmp(nd->op->name, "Const")) {
            st = bind_const(L, m, nd, attrs, d);
        } else if (!strcmp(nd->op->name, "Placeholder")) {
            st = parse_placeholder(nd, attrs, d);
            m->input_node = i;
            n_placeholders++;
        }
        if (st)
            return st;
        i++;
    }
    if (n_placeholders != 1)
        return eng_fail(d, n_placeholders ? ENG_EUNSUPPORTED : ENG_EFORMAT,
                        "graph has %d Placeholder inputs, exactly 1 is supported", n_placeholders);
    return ENG_OK;
}

/* Kahn's algorithm; on a cycle names a node on it */
static eng_status topo_sort(eng_model *m, eng_diag *d)
{
    int n = m->n_nodes;
    int *indeg = calloc((size_t)n, sizeof *indeg);
    int *start = calloc((size_t)n + 1, sizeof *start);
    int *adj = NULL;
    int *queue = malloc((size_t)n * sizeof *queue);
    m->order = malloc((size_t)n * sizeof *m->order);
    int64_t edges = 0;
    for (int i = 0; i < n; i++)
        edges += m->nodes[i].n_in;
    adj = malloc((size_t)(edges + 1) * sizeof *adj);
    eng_status st = ENG_OK;
    if (!indeg || !start || !queue || !m->order || !adj) {
        st = eng_fail(d, ENG_ENOMEM, "graph: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            start[m->nodes[i].in[j].node + 1]++;
            indeg[i]++;
        }
    for (int i = 0; i < n; i++)
        start[i + 1] += start[i];
    int *fill = calloc((size_t)n, sizeof *fill);
    if (!fill) {
        st = eng_fail(d, ENG_ENOMEM, "graph: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            int s = m->nodes[i].in[j].node;
            adj[start[s] + fill[s]++] = i;
        }
    free(fill);
    int qh = 0, qt = 0;
    for (int i = 0; i < n; i++)
        if (!indeg[i])
            queue[qt++] = i;
    while (qh < qt) {
        int u = queue[qh++];
        m->order[qh - 1] = u;
        for (int e = start[u]; e < start[u + 1]; e++)
            if (--indeg[adj[e]] == 0)
                queue[qt++] = adj[e];
    }
    if (qt < n) {
        /* walk back along unsorted inputs until a node repeats: it is on a cycle */
        int u = 0;
        while (!indeg[u])
            u++;
        for (int steps = 0; steps < n; steps++) {
            rt_node *nd = &m->nodes[u];
            for (int j = 0; j < nd->n_in; j++)
                if (indeg[nd->in[j].node]) {
                    u = nd->in[j].node;
                    break;
                }
        }
        st = eng_fail(d, ENG_EFORMAT, "graph has a cycle through node '%s'", m->nodes[u].name);
    }
out:
    free(indeg);
    free(start);
    free(adj);
    free(queue);
    return st;
}

/* infers every node's shapes from the declared input shape (batch 1 where
 * unknown); skipped when height, width or channels are not declared */
static eng_status check_shapes(eng_model *m, eng_diag *d)
{
    const rt_node *ph = &m->nodes[m->input_node];
    if (ph->decl_ndim < 1)
        return ENG_OK;
    int64_t dim[ENG_MAX_DIMS];
    for (int i = 0; i < ph->decl_ndim; i++) {
        dim[i] = ph->decl_dim[i];
        if (dim[i] < 0 && i == 0)
            dim[i] = 1;
        if (dim[i] <= 0)
            return ENG_OK;
    }
    /* every node's shape at the declared input; residual fusion checks them */
    eng_tensor *shapes = NULL;
    eng_status st = rt_infer_all(m, ph->decl_ndim, dim, &shapes, d);
    if (!st)
        st = rt_fuse_residual(m, shapes, d);
    free(shapes);
    return st;
}

static eng_status load(load_ctx *L, const char *json, size_t len, eng_model **out, eng_diag *d)
{
    eng_model *m = calloc(1, sizeof *m);
    eng_status st = ENG_OK;
    if (!m)
        return eng_fail(d, ENG_ENOMEM, "model: out of memory");
    if ((st = eng_json_parse(json, len, "model.json", &L->root, d)))
        goto fail;
    if (!cJSON_IsObject(L->root)) {
        st = eng_fail(d, ENG_EFORMAT, "model.json: not a json object");
        goto fail;
    }
    if ((st = parse_manifest(L, d)))
        goto fail;
    if (L->dir && (st = read_shards(L, d)))
        goto fail;
    if ((st = decode_weights(L, d)))
        goto fail;
    if ((st = build_nodes(L, m, d)))
        goto fail;
    if ((st = topo_sort(m, d)))
        goto fail;
    for (int i = 0; i < m->n_nodes; i++) {
        rt_node *nd = &m->nodes[m->order[i]];
        if (nd->op->prepare && (st = nd->op->prepare(m, nd, d)))
            goto fail;
    }
    if ((st = rt_fuse(m, d)))
        goto fail;
    if ((st = check_shapes(m, d)) || (st = rt_fuse_dw_conv1x1(m, d)))
        goto fail;
    *out = m;
    return ENG_OK;
fail:
    eng_model_free(m);
    return st;
}

static void load_ctx_release(load_ctx *L)
{
    for (int i = 0; i < L->n_weights; i++)
        eng_tensor_free(L->weights[i].t);
    free(L->weights);
    free(L->group_bytes);
    free(L->node_weight);
    free(L->wbuf);
    cJSON_Delete(L->root);
}

eng_status eng_model_load_mem(const char *json, size_t json_len, const void *weights,
                              size_t weights_len, eng_model **out, eng_diag *d)
{
    if (!out)
        return eng_fail(d, ENG_EINVAL, "eng_model_load_mem: out is NULL");
    *out = NULL;
    if (!json)
        return eng_fail(d, ENG_EINVAL, "eng_model_load_mem: json is NULL");
    if (json_len > MAX_JSON_BYTES)
        return eng_fail(d, ENG_EFORMAT, "model.json: larger than %zu bytes", MAX_JSON_BYTES);
    /* a NUL-terminated copy: the parser never reads past the caller's bytes */
    char *copy = malloc(json_len + 1);
    if (!copy)
        return eng_fail(d, ENG_ENOMEM, "model.json: out of memory");
    memcpy(copy, json, json_len);
    copy[json_len] = 0;
    static const uint8_t no_weights[1];
    load_ctx L = {0};
    L.wdata = weights ? weights : no_weights;
    L.wlen = weights ? weights_len : 0;
    eng_status st = load(&L, copy, json_len, out, d);
    load_ctx_release(&L);
    free(copy);
    return st;
}

eng_status eng_model_load(const char *model_json_path, eng_model **out, eng_diag *d)
{
    if (!out)
        return eng_fail(d, ENG_EINVAL, "eng_model_load: out is NULL");
    *out = NULL;
    if (!model_json_path)
        return eng_fail(d, ENG_EINVAL, "eng_model_load: path is NULL");
    uint8_t *json = NULL;
    uint64_t len = 0;
    eng_status st = read_file(model_json_path, MAX_JSON_BYTES, &json, &len, d);
    if (st)
        return st;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_json_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    if (dir[0] == 0)
        snprintf(dir, sizeof dir, "/");
    load_ctx L = {0};
    L.dir = dir;
    st = load(&L, (const char *)json, (size_t)len, out, d);
    load_ctx_release(&L);
    free(json);
    return st;
}

void eng_model_free(eng_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].name);
        free(m->nodes[i].in);
        eng_tensor_free(m->nodes[i].value);
        if (!m->nodes[i].packed_borrowed)
            eng_conv_packed_free(m->nodes[i].packed);
        if (m->nodes[i].fused) {
            free(m->nodes[i].fused->name);
            free(m->nodes[i].fused->in);
            free(m->nodes[i].fused);
        }
    }
    free(m->nodes);
    free(m->order);
    free(m->hash);
    free(m);
}

const char *eng_model_input_name(const eng_model *m) { return m->nodes[m->input_node].name; }

int eng_model_input_shape(const eng_model *m, int64_t dim[ENG_MAX_DIMS])
{
    const rt_node *ph = &m->nodes[m->input_node];
    for (int i = 0; i < ph->decl_ndim; i++)
        dim[i] = ph->decl_dim[i];
    return ph->decl_ndim;
}

int eng_model_has_node(const eng_model *m, const char *name)
{
    size_t len;
    int port, ctl;
    if (!name || split_input(name, &len, &port, &ctl))
        return 0;
    int k = rt_find_node(m, name, len);
    return k >= 0 && port < m->nodes[k].op->n_out;
}

eng_status eng_model_const(const eng_model *m, const char *name, const eng_tensor **out,
                           eng_diag *d)
{
    int k = name ? rt_find_node(m, name, strlen(name)) : -1;
    if (k < 0 || !m->nodes[k].value)
        return eng_fail(d, ENG_ENOTFOUND, "const '%s' not found", name ? name : "(null)");
    *out = m->nodes[k].value;
    return ENG_OK;
}

eng_status eng_model_node(const eng_model *m, const char *name, eng_node_desc *out, eng_diag *d)
{
    int k = name ? rt_find_node(m, name, strlen(name)) : -1;
    if (k < 0)
        return eng_fail(d, ENG_ENOTFOUND, "node '%s' not found", name ? name : "(null)");
    const rt_node *n = &m->nodes[k];
    memset(out, 0, sizeof *out);
    int conv = rt_is_op(n, "Conv2D") || rt_is_op(n, "_FusedConv2D");
    int dw = rt_is_op(n, "DepthwiseConv2dNative") || rt_is_op(n, "FusedDepthwiseConv2dNative");
    if ((rt_is_op(n, "Add") || rt_is_op(n, "AddV2")) && n->n_in == 2) {
        out->kind = ENG_NODE_ADD;
        out->n_in = 2;
        out->in[0] = m->nodes[n->in[0].node].name;
        out->in[1] = m->nodes[n->in[1].node].name;
        return ENG_OK;
    }
    if (!conv && !dw)
        return ENG_OK;
    const rt_node *f = rt_input_node(m, n, 1);
    const rt_node *b = n->a.has_bias && n->n_in > 2 ? rt_input_node(m, n, 2) : NULL;
    int plain = f && f->value && (!n->a.has_bias || (b && b->value)) &&
                n->a.padding == ENG_PAD_SAME && n->a.stride[0] == n->a.stride[1] &&
                n->a.dilation[0] == 1 && n->a.dilation[1] == 1 && !n->a.residual &&
                f->value->ndim == 4 && (!dw || f->value->dim[3] == 1);
    if (!plain)
        return ENG_OK;
    out->kind = conv ? ENG_NODE_CONV : ENG_NODE_DEPTHWISE;
    out->n_in = 1;
    out->in[0] = m->nodes[n->in[0].node].name;
    out->weights = f->value;
    out->bias = b ? b->value : NULL;
    out->stride = n->a.stride[0];
    out->act = n->a.act;
    return ENG_OK;
}
