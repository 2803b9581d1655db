/* test_modelfile.c: safetensors writer/reader round trip, and a table of
 * broken files that must each fail with the expected status and message. */
#include "check.h"
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* Builds a file from a header string and n data bytes. */
static unsigned char *make(const char *hdr, size_t ndata, size_t *len)
{
    size_t hl = strlen(hdr);
    *len = 8 + hl + ndata;
    unsigned char *b = calloc(1, *len);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    return b;
}

static void test_round_trip(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    int64_t d1[2] = {3, 2}, d2[1] = {4};
    eng_tensor *a = eng_tensor_new(ENG_F32, 2, d1);
    eng_tensor *b = eng_tensor_new(ENG_I32, 1, d2);
    for (int i = 0; i < 6; i++)
        eng_f32(a)[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 4; i++)
        ((int32_t *)b->data)[i] = 100 + i;
    const char *names[] = {"head.weight", "ids"};
    const eng_tensor *ts[] = {a, b};
    const char *keys[] = {"kind", "categories"};
    const char *vals[] = {"classifier", "[\"a\",\"b\"]"};
    eng_diag d = {0};
    CHECK(eng_modelfile_write(path, names, ts, 2, keys, vals, 2, &d) == ENG_OK);
    eng_modelfile *m = NULL;
    CHECK_MSG(eng_modelfile_read(path, &m, &d) == ENG_OK, "%s", d.msg);
    if (m) {
        CHECK(strcmp(eng_modelfile_meta(m, "kind"), "classifier") == 0);
        CHECK(strcmp(eng_modelfile_meta(m, "categories"), "[\"a\",\"b\"]") == 0);
        CHECK(eng_modelfile_meta(m, "nope") == NULL);
        CHECK(eng_modelfile_ntensors(m) == 2);
        const eng_tensor *t = NULL;
        CHECK(eng_modelfile_expect(m, "head.weight", 2, d1, &t, &d) == ENG_OK);
        CHECK(t && memcmp(t->data, a->data, 24) == 0);
        const eng_tensor *u = eng_modelfile_tensor(m, "ids");
        CHECK(u && u->dtype == ENG_I32 && ((int32_t *)u->data)[3] == 103);
        int64_t wrong[2] = {2, 3};
        CHECK(eng_modelfile_expect(m, "head.weight", 2, wrong, &t, &d) == ENG_EFORMAT);
        CHECK(strstr(d.msg, "shape [3,2], expected [2,3]") != NULL);
        CHECK(eng_modelfile_expect(m, "missing", 1, d2, &t, &d) == ENG_EFORMAT);
        CHECK(strstr(d.msg, "\"missing\" missing") != NULL);
        eng_modelfile_free(m);
    }
    /* header is padded to 8 bytes and starts with '{' */
    size_t len = 0;
    unsigned char *buf = slurp(path, &len);
    CHECK(buf && len > 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | buf[i];
    CHECK(hl % 8 == 0 && buf[8] == '{');
    CHECK(len == 8 + hl + 24 + 16);
    /* every truncation fails cleanly */
    int all_fail = 1;
    for (size_t cut = 0; cut < len; cut++) {
        eng_modelfile *t = NULL;
        if (eng_modelfile_parse(buf, cut, &t, &d) == ENG_OK) {
            all_fail = 0;
            eng_modelfile_free(t);
        }
    }
    CHECK(all_fail);
    CHECK(eng_modelfile_parse(buf, 30, &m, &d) == ENG_EFORMAT);
    CHECK(strstr(d.msg, "truncated") != NULL);
    free(buf);
    /* no temp file left behind */
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld.1", path, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0);
    unlink(path);
    eng_tensor_free(a);
    eng_tensor_free(b);
    /* unwritable target */
    CHECK(eng_modelfile_write("/nonexistent-dir/x.safetensors", names, ts, 0, NULL, NULL, 0, &d) ==
          ENG_EIO);
    const char *dup[] = {"x", "x"};
    CHECK(eng_modelfile_write(path, dup, ts, 2, NULL, NULL, 0, &d) == ENG_EINVAL);
}

typedef struct bad_case {
    const char *hdr;
    size_t ndata;
    eng_status st;
    const char *msg;
} bad_case;

static void test_bad_files(void)
{
    static const bad_case cases[] = {
        {"[1,2]", 0, ENG_EFORMAT, "does not start with '{'"},
        {"{\"a\": ", 0, ENG_EFORMAT, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, ENG_EUNSUPPORTED,
         "dtype \"F16\" not supported"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ENG_EFORMAT, "\"dtype\" missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, ENG_EFORMAT,
         "shape[0] is not a size"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, ENG_EFORMAT,
         "shape[0] is not a size"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, ENG_EFORMAT,
         "4 data bytes for 2 elements"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, ENG_EFORMAT,
         "truncated"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, ENG_EFORMAT,
         "bad \"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         4, ENG_EFORMAT, "overlap or hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, ENG_EFORMAT,
         "4 data bytes after the last tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, ENG_EFORMAT, "appears twice"},
        {"{\"__metadata__\":{\"k\":1}}", 0, ENG_EFORMAT, "must be a string"},
        {"{\"__metadata__\":[]}", 0, ENG_EFORMAT, "must be an object of strings"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[65536,65536,65536],\"data_offsets\":[0,4]}}", 4,
         ENG_EFORMAT, "shape too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         ENG_EFORMAT, "at most 6 sizes"},
        {"{} x", 0, ENG_EFORMAT, "junk after the JSON header"},
        {"{\"a\":3}", 0, ENG_EFORMAT, "must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        unsigned char *b = make(cases[i].hdr, cases[i].ndata, &len);
        eng_modelfile *m = NULL;
        eng_diag d = {0};
        eng_status st = eng_modelfile_parse(b, len, &m, &d);
        CHECK_MSG(st == cases[i].st, "case %zu: status %s (%s)", i, eng_status_name(st), d.msg);
        CHECK_MSG(strstr(d.msg, cases[i].msg) != NULL, "case %zu: message \"%s\"", i, d.msg);
        CHECK(m == NULL);
        eng_modelfile_free(m);
        free(b);
    }
    /* a NaN in the data is refused */
    size_t len;
    unsigned char *b =
        make("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &len);
    float nan = NAN;
    memcpy(b + len - 4, &nan, 4);
    eng_modelfile *m = NULL;
    eng_diag d = {0};
    CHECK(eng_modelfile_parse(b, len, &m, &d) == ENG_EFORMAT);
    CHECK(strstr(d.msg, "not finite") != NULL);
    free(b);
    /* huge header length */
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    CHECK(eng_modelfile_parse(big, sizeof big, &m, &d) == ENG_EFORMAT);
    CHECK(strstr(d.msg, "not plausible") != NULL);
    CHECK(eng_modelfile_read("/nonexistent/file", &m, &d) == ENG_EIO);
}

int main(void)
{
    char dir[] = "/tmp/test_modelfile.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    test_round_trip(dir);
    test_bad_files();
    rmdir(dir);
    return check_report("test_modelfile");
}
