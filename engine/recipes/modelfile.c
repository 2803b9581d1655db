/* modelfile.c: safetensors writer and checked reader (see modelfile.h).
 *
 * Design: the reader loads the whole file (model heads are small), parses the
 * header with cJSON's length-bounded parser, validates every entry before
 * allocating its tensor, and then checks that the data offsets tile the
 * buffer exactly. The writer builds the header with cJSON, pads it with
 * spaces to a multiple of 8 so the data starts aligned, and writes through a
 * temporary file that is fsync'ed and renamed into place.
 */
#include "modelfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct eng_modelfile {
    int nt;
    char **names;
    eng_tensor **tensors;
    int nmeta;
    char **keys;
    char **values;
};

void eng_modelfile_free(eng_modelfile *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nt; i++) {
        free(m->names[i]);
        eng_tensor_free(m->tensors[i]);
    }
    for (int i = 0; i < m->nmeta; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->names);
    free(m->tensors);
    free(m->keys);
    free(m->values);
    free(m);
}

const char *eng_modelfile_meta(const eng_modelfile *m, const char *key)
{
    for (int i = 0; i < m->nmeta; i++)
        if (strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return NULL;
}

const eng_tensor *eng_modelfile_tensor(const eng_modelfile *m, const char *name)
{
    for (int i = 0; i < m->nt; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->tensors[i];
    return NULL;
}

int eng_modelfile_ntensors(const eng_modelfile *m) { return m->nt; }

const char *eng_modelfile_tensor_name(const eng_modelfile *m, int i)
{
    return i >= 0 && i < m->nt ? m->names[i] : NULL;
}

eng_status eng_modelfile_expect(const eng_modelfile *m, const char *name, int ndim,
                                const int64_t *dim, const eng_tensor **out, eng_diag *d)
{
    const eng_tensor *t = eng_modelfile_tensor(m, name);
    *out = NULL;
    if (!t)
        return eng_fail(d, ENG_EFORMAT, "tensor \"%s\" missing", name);
    if (t->dtype != ENG_F32)
        return eng_fail(d, ENG_EFORMAT, "tensor \"%s\": dtype must be F32", name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->dim[i] == dim[i];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)dim[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->dim[i]);
        return eng_fail(d, ENG_EFORMAT, "tensor \"%s\": shape [%s], expected [%s]", name, got,
                        want);
    }
    *out = t;
    return ENG_OK;
}

/* ---- reading ---- */

typedef struct span {
    uint64_t begin, end;
    int index;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Reads a JSON number that must be a non-negative integer <= max. */
static int json_uint(const cJSON *v, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double x = v->valuedouble;
    if (!(x >= 0) || x > max || x != (double)(uint64_t)x)
        return 0;
    *out = (uint64_t)x;
    return 1;
}

static eng_status parse_meta(eng_modelfile *m, const cJSON *meta, eng_diag *d)
{
    if (!cJSON_IsObject(meta))
        return eng_fail(d, ENG_EFORMAT, "\"__metadata__\": must be an object of strings");
    int n = cJSON_GetArraySize(meta);
    m->keys = calloc((size_t)n + 1, sizeof *m->keys);
    m->values = calloc((size_t)n + 1, sizeof *m->values);
    if (!m->keys || !m->values)
        return eng_fail(d, ENG_ENOMEM, "model file metadata: out of memory");
    for (const cJSON *it = meta->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->string)
            return eng_fail(d, ENG_EFORMAT, "\"__metadata__\".\"%.64s\": must be a string",
                            it->string ? it->string : "?");
        for (int i = 0; i < m->nmeta; i++)
            if (strcmp(m->keys[i], it->string) == 0)
                return eng_fail(d, ENG_EFORMAT, "\"__metadata__\": key \"%.64s\" repeated",
                                it->string);
        m->keys[m->nmeta] = strdup(it->string);
        m->values[m->nmeta] = strdup(it->valuestring);
        m->nmeta++;
        if (!m->keys[m->nmeta - 1] || !m->values[m->nmeta - 1])
            return eng_fail(d, ENG_ENOMEM, "model file metadata: out of memory");
    }
    return ENG_OK;
}

static eng_status parse_entry(eng_modelfile *m, const cJSON *e, uint64_t data_len, span *sp,
                              eng_diag *d)
{
    const char *name = e->string;
    if (!name || !*name)
        return eng_fail(d, ENG_EFORMAT, "tensor with an empty name");
    if (!cJSON_IsObject(e))
        return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": must be an object", name);
    for (int i = 0; i < m->nt; i++)
        if (strcmp(m->names[i], name) == 0)
            return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\" appears twice", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": \"dtype\" missing", name);
    eng_dtype dtype;
    if (strcmp(dt->valuestring, "F32") == 0)
        dtype = ENG_F32;
    else if (strcmp(dt->valuestring, "I32") == 0)
        dtype = ENG_I32;
    else
        return eng_fail(d, ENG_EUNSUPPORTED,
                        "tensor \"%.64s\": dtype \"%.16s\" not supported "
                        "(F32 or I32)",
                        name, dt->valuestring);
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > ENG_MAX_DIMS)
        return eng_fail(d, ENG_EFORMAT,
                        "tensor \"%.64s\": \"shape\" must be an array of at "
                        "most %d sizes",
                        name, ENG_MAX_DIMS);
    int64_t dim[ENG_MAX_DIMS];
    int ndim = 0;
    uint64_t numel = 1;
    for (const cJSON *v = sh->child; v; v = v->next) {
        uint64_t x;
        if (!json_uint(v, 4294967296.0, &x))
            return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": shape[%d] is not a size", name,
                            ndim);
        dim[ndim++] = (int64_t)x;
        if (x && numel > (ENG_MODELFILE_MAX_BYTES / 4) / x)
            return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": shape too large", name);
        numel *= x;
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": \"data_offsets\" must be [begin, end]",
                        name);
    uint64_t b, en;
    if (!json_uint(off->child, 1e18, &b) || !json_uint(off->child->next, 1e18, &en) || b > en)
        return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": bad \"data_offsets\"", name);
    if (en > data_len)
        return eng_fail(d, ENG_EFORMAT,
                        "tensor \"%.64s\": data ends at byte %llu but the file "
                        "has %llu data bytes (truncated?)",
                        name, (unsigned long long)en, (unsigned long long)data_len);
    if (en - b != numel * 4)
        return eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": %llu data bytes for %llu elements", name,
                        (unsigned long long)(en - b), (unsigned long long)numel);
    sp->begin = b;
    sp->end = en;
    sp->index = m->nt;
    m->names[m->nt] = strdup(name);
    if (!m->names[m->nt])
        return eng_fail(d, ENG_ENOMEM, "model file: out of memory");
    m->tensors[m->nt] = eng_tensor_new(dtype, ndim, dim);
    m->nt++;
    if (!m->tensors[m->nt - 1])
        return eng_fail(d, ENG_ENOMEM, "tensor \"%.64s\": out of memory", name);
    return ENG_OK;
}

eng_status eng_modelfile_parse(const void *buf, size_t len, eng_modelfile **out, eng_diag *d)
{
    *out = NULL;
    const unsigned char *p = buf;
    if (len < 8)
        return eng_fail(d, ENG_EFORMAT, "model file truncated: %zu bytes, no header length", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen < 2 || hlen > ENG_MODELFILE_MAX_HEADER)
        return eng_fail(d, ENG_EFORMAT,
                        "model file: header length %llu is not plausible "
                        "(not a safetensors file?)",
                        (unsigned long long)hlen);
    if (hlen > len - 8)
        return eng_fail(d, ENG_EFORMAT,
                        "model file truncated: header needs %llu bytes, file has "
                        "%zu",
                        (unsigned long long)hlen, len - 8);
    const char *hdr = (const char *)p + 8;
    if (hdr[0] != '{')
        return eng_fail(d, ENG_EFORMAT,
                        "model file: header does not start with '{' "
                        "(not a safetensors file?)");
    cJSON *root = NULL;
    size_t used = 0;
    eng_status jst = eng_json_parse_prefix(hdr, (size_t)hlen, "model file header", &root, &used, d);
    if (jst != ENG_OK)
        return jst;
    for (const char *q = hdr + used; q < hdr + hlen; q++)
        if (*q != ' ' && *q != '\0') {
            cJSON_Delete(root);
            return eng_fail(d, ENG_EFORMAT, "model file: junk after the JSON header at byte %ld",
                            (long)(q - hdr));
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return eng_fail(d, ENG_EFORMAT, "model file: header is not a JSON object");
    }
    uint64_t data_len = (uint64_t)(len - 8) - hlen;
    const unsigned char *data = p + 8 + hlen;
    int n = cJSON_GetArraySize(root);
    eng_modelfile *m = calloc(1, sizeof *m);
    span *sp = calloc((size_t)n + 1, sizeof *sp);
    eng_status st = ENG_OK;
    if (!m || !sp) {
        st = eng_fail(d, ENG_ENOMEM, "model file: out of memory");
        goto done;
    }
    m->names = calloc((size_t)n + 1, sizeof *m->names);
    m->tensors = calloc((size_t)n + 1, sizeof *m->tensors);
    if (!m->names || !m->tensors) {
        st = eng_fail(d, ENG_ENOMEM, "model file: out of memory");
        goto done;
    }
    int have_meta = 0;
    for (const cJSON *e = root->child; e && st == ENG_OK; e = e->next) {
        if (e->string && strcmp(e->string, "__metadata__") == 0) {
            if (have_meta++)
                st = eng_fail(d, ENG_EFORMAT, "model file: \"__metadata__\" appears twice");
            else
                st = parse_meta(m, e, d);
        } else {
            st = parse_entry(m, e, data_len, &sp[m->nt], d);
        }
    }
    if (st != ENG_OK)
        goto done;
    /* tensors must tile the data exactly: sorted spans touch end to begin */
    qsort(sp, (size_t)m->nt, sizeof *sp, span_cmp);
    uint64_t at = 0;
    for (int i = 0; i < m->nt; i++) {
        if (sp[i].begin != at) {
            st = eng_fail(d, ENG_EFORMAT,
                          "tensor \"%.64s\": data at byte %llu, expected %llu "
                          "(overlap or hole)",
                          m->names[sp[i].index], (unsigned long long)sp[i].begin,
                          (unsigned long long)at);
            goto done;
        }
        at = sp[i].end;
        eng_tensor *t = m->tensors[sp[i].index];
        /* little-endian host assumed (x86-64, the engine's target) */
        memcpy(t->data, data + sp[i].begin, (size_t)(sp[i].end - sp[i].begin));
        if (t->dtype == ENG_F32) {
            const float *f = t->data;
            int64_t k = eng_tensor_numel(t);
            for (int64_t j = 0; j < k; j++)
                if (f[j] != f[j] || f[j] - f[j] != 0) {
                    st = eng_fail(d, ENG_EFORMAT, "tensor \"%.64s\": element %lld is not finite",
                                  m->names[sp[i].index], (long long)j);
                    goto done;
                }
        }
    }
    if (at != data_len)
        st = eng_fail(d, ENG_EFORMAT, "model file: %llu data bytes after the last tensor",
                      (unsigned long long)(data_len - at));
done:
    cJSON_Delete(root);
    free(sp);
    if (st != ENG_OK) {
        eng_modelfile_free(m);
        return st;
    }
    *out = m;
    return ENG_OK;
}

eng_status eng_modelfile_read(const char *path, eng_modelfile **out, eng_diag *d)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_fail(d, ENG_EIO, "\"%s\": %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return eng_fail(d, ENG_EIO, "\"%s\": not a regular file", path);
    }
    if ((uint64_t)sb.st_size > ENG_MODELFILE_MAX_BYTES) {
        fclose(f);
        return eng_fail(d, ENG_EFORMAT, "\"%s\": %lld bytes is too large for a model file", path,
                        (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return eng_fail(d, ENG_ENOMEM, "\"%s\": out of memory", path);
    }
    size_t got = fread(buf, 1, len, f);
    fclose(f);
    if (got != len) {
        free(buf);
        return eng_fail(d, ENG_EIO, "\"%s\": short read", path);
    }
    eng_status st = eng_modelfile_parse(buf, len, out, d);
    free(buf);
    return st;
}

/* ---- writing ---- */

/* ENG_ENOSPC for a full disk or quota (the caller can make room and retry),
 * else ENG_EIO. */
static eng_status io_status(int e) { return e == ENOSPC || e == EDQUOT ? ENG_ENOSPC : ENG_EIO; }

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

eng_status eng_modelfile_write(const char *path, const char *const *names,
                               const eng_tensor *const *tensors, int ntensors,
                               const char *const *keys, const char *const *values, int nmeta,
                               eng_diag *d)
{
    for (int i = 0; i < ntensors; i++) {
        if (!names[i] || !*names[i] || strcmp(names[i], "__metadata__") == 0)
            return eng_fail(d, ENG_EINVAL, "model file: tensor %d has a bad name", i);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return eng_fail(d, ENG_EINVAL, "model file: tensor \"%s\" given twice", names[i]);
    }
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && nmeta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        ok = meta != NULL;
        for (int i = 0; ok && i < nmeta; i++)
            ok = cJSON_AddStringToObject(meta, keys[i], values[i]) != NULL;
    }
    uint64_t at = 0;
    for (int i = 0; ok && i < ntensors; i++) {
        const eng_tensor *t = tensors[i];
        cJSON *e = cJSON_AddObjectToObject(root, names[i]);
        ok = e && cJSON_AddStringToObject(e, "dtype", t->dtype == ENG_I32 ? "I32" : "F32");
        cJSON *sh = ok ? cJSON_AddArrayToObject(e, "shape") : NULL;
        ok = ok && sh;
        for (int k = 0; ok && k < t->ndim; k++)
            ok = cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->dim[k]));
        uint64_t bytes = (uint64_t)eng_tensor_numel(t) * 4;
        cJSON *off = ok ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = ok && off && cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at)) &&
             cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(at + bytes)));
        at += bytes;
    }
    char *hdr = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!hdr)
        return eng_fail(d, ENG_ENOMEM, "model file: out of memory");
    size_t hl = strlen(hdr);
    size_t padded = (8 + hl + 7) / 8 * 8 - 8;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 48);
    if (!tmp) {
        free(hdr);
        return eng_fail(d, ENG_ENOMEM, "model file: out of memory");
    }
    static unsigned counter;
    snprintf(tmp, plen + 48, "%s.tmp.%ld.%u", path, (long)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        eng_status st = eng_fail(d, io_status(errno), "\"%s\": %s", tmp, strerror(errno));
        free(hdr);
        free(tmp);
        return st;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int bad = write_all(fd, lenb, 8) || write_all(fd, hdr, hl);
    for (size_t i = hl; !bad && i < padded; i++)
        bad = write_all(fd, " ", 1);
    for (int i = 0; !bad && i < ntensors; i++)
        bad = write_all(fd, tensors[i]->data, (size_t)eng_tensor_numel(tensors[i]) * 4);
    free(hdr);
    int e = bad ? errno : 0; /* the first failure's reason */
    if (!bad && fsync(fd) != 0)
        bad = 1, e = errno;
    if (close(fd) != 0 && !bad)
        bad = 1, e = errno;
    if (!bad && rename(tmp, path) != 0)
        bad = 1, e = errno;
    if (bad) {
        eng_status st = eng_fail(d, io_status(e), "\"%s\": cannot write: %s", path, strerror(e));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return ENG_OK;
}
