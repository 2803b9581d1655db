/* test_runtime_tfjs.c: our runtime on the installed CenterNet against the
 * committed reference tests/data/runtime/centernet_tfjs_ref.json, which
 * tools/tfjs_ref/make_refs.js wrote with tfjs 4.22 (cpu backend) on
 * synthetic images that this test rebuilds exactly (same integer formula).
 * Checks GAPs of the taps, crops of feature maps and heads, and detections
 * with the golden tolerance. Skips (77) when the weights are not installed
 * or their checksum (backbone.json) is not the one the reference used;
 * installed weights that do not load fail. */
#include "test_runtime_util.h"

#include <cjson/cJSON.h>
#include <pthread.h>

#define REF VFS_SOURCE_DIR "/tests/data/runtime/centernet_tfjs_ref.json"

/* the image of tools/tfjs_ref/common.js synthImage, bit for bit */
static eng_tensor *synth_image(int s)
{
    eng_tensor *t = tr_tensor(4, 1, s, s, 3);
    float *o = eng_f32(t);
    int cx = s * 5 / 8, cy = s * 3 / 8, r = s / 6;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            int R = x * 255 / (s - 1), G = y * 255 / (s - 1), B = ((x + y) * 127 / (s - 1)) % 256;
            int dx = x - cx, dy = y - cy;
            if (dx * dx + dy * dy <= r * r)
                R = 240, G = 200, B = 40;
            if (x >= s / 8 && x < s / 3 && y >= s / 2 && y < s * 7 / 8)
                R = 30, G = 40, B = 90;
            if (x >= s * 3 / 5 && y >= s * 3 / 5 && y < s * 9 / 10 && x < s * 9 / 10) {
                int c = (((x >> 3) + (y >> 3)) & 1) ? 250 : 5;
                R = G = B = c;
            }
            float *p = o + ((int64_t)y * s + x) * 3;
            p[0] = (float)R, p[1] = (float)G, p[2] = (float)B;
        }
    return t;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        b[n] = 0;
    *len = (size_t)n;
    return b;
}

static float *json_floats(const cJSON *arr, int *n)
{
    *n = cJSON_GetArraySize(arr);
    float *v = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *v);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) v[i++] = (float)e->valuedouble;
    return v;
}

/* ours: the reference's reduction of tensor t */
static float *reduce(const eng_tensor *t, const char *kind, const cJSON *crop, int *n)
{
    int64_t H = t->dim[1], W = t->dim[2], C = t->ndim == 4 ? t->dim[3] : 0;
    if (!strcmp(kind, "gap")) {
        float *v = malloc((size_t)C * sizeof *v);
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t i = 0; i < H * W; i++)
                s += eng_f32(t)[i * C + c];
            v[c] = (float)(s / (double)(H * W));
        }
        *n = (int)C;
        return v;
    }
    if (!strcmp(kind, "crop")) {
        int y0 = cJSON_GetArrayItem(crop, 0)->valueint, y1 = cJSON_GetArrayItem(crop, 1)->valueint;
        int x0 = cJSON_GetArrayItem(crop, 2)->valueint, x1 = cJSON_GetArrayItem(crop, 3)->valueint;
        float *v = malloc((size_t)(y1 - y0) * (x1 - x0) * C * sizeof *v);
        int k = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                for (int64_t c = 0; c < C; c++)
                    v[k++] = eng_f32(t)[((int64_t)y * W + x) * C + c];
        *n = k;
        return v;
    }
    *n = (int)eng_tensor_numel(t);
    float *v = malloc((size_t)*n * sizeof *v);
    memcpy(v, t->data, (size_t)*n * sizeof *v);
    return v;
}

/* each reference row must match ours at its index or, if its score ties, nearby */
static void check_detections(const float *c, const float *ref)
{
    int bad = 0;
    for (int i = 0; i < 100; i++) {
        int found = 0;
        for (int j = 0; j < 100 && !found; j++) {
            const float *a = c + j * 6, *r = ref + i * 6;
            if (j != i && fabsf(r[4] - ref[j * 6 + 4]) > 1e-4f)
                continue;
            int ok = fabsf(a[4] - r[4]) <= 1e-3f && a[5] == r[5];
            for (int k = 0; k < 4; k++)
                ok &= fabsf(a[k] - r[k]) <= 0.05f;
            found = ok;
        }
        if (!found && ++bad <= 3)
            fprintf(stderr, "detection %d [%g %g %g %g %g %g] not found\n", i, ref[i * 6],
                    ref[i * 6 + 1], ref[i * 6 + 2], ref[i * 6 + 3], ref[i * 6 + 4], ref[i * 6 + 5]);
    }
    printf("  detections: %d of 100 reference rows unmatched (top: score %.4f class %g)\n", bad,
           ref[4], ref[5]);
    CHECK_MSG(bad == 0, "%d detections differ", bad);
}

/* several threads running one model at once get the serial bits */
typedef struct conc_job {
    const eng_model *m;
    const eng_tensor *x;
    eng_tensor *out;
    eng_status st;
} conc_job;

static void *conc_run(void *arg)
{
    conc_job *j = arg;
    const char *name = "tower_0/extern1/hard_swish/mul_1";
    eng_run_opts opts = {.threads = 1};
    eng_diag d;
    j->st = eng_model_run(j->m, j->x, &name, 1, &j->out, &opts, &d);
    return NULL;
}

static void check_concurrent(const eng_model *m)
{
    eng_tensor *x = synth_image(320);
    conc_job serial = {m, x, NULL, ENG_OK};
    conc_run(&serial);
    CHECK(serial.st == ENG_OK);
    conc_job jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (conc_job){m, x, NULL, ENG_OK};
        CHECK(pthread_create(&th[i], NULL, conc_run, &jobs[i]) == 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].st == ENG_OK);
        if (jobs[i].out && serial.out)
            CHECK(memcmp(jobs[i].out->data, serial.out->data, 10 * 10 * 480 * 4) == 0);
        eng_tensor_free(jobs[i].out);
    }
    printf("3 concurrent runs on one model: identical to the serial run\n");
    eng_tensor_free(serial.out);
    eng_tensor_free(x);
}

int main(void)
{
    const char *json = tr_centernet_path();
    if (!json)
        CHECK_SKIP("CenterNet weights not installed (run the set-up command)");
    size_t len;
    char *text = read_text(REF, &len);
    CHECK_MSG(text != NULL, "cannot read %s", REF);
    if (!text)
        return check_report("test_runtime_tfjs");
    cJSON *ref = cJSON_ParseWithLengthOpts(text, len, NULL, 0);
    CHECK(ref != NULL);
    /* the installed weights must be the reference's */
    char bj[4200];
    snprintf(bj, sizeof bj, "%s", json);
    char *slash = strrchr(bj, '/');
    if (ref && slash) {
        snprintf(slash, sizeof bj - (size_t)(slash - bj), "/backbone.json");
        size_t blen;
        char *btext = read_text(bj, &blen);
        cJSON *b = btext ? cJSON_ParseWithLengthOpts(btext, blen, NULL, 0) : NULL;
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(b, "checksum");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(ref, "weights_sha256");
        int differs = cJSON_IsString(sum) && cJSON_IsString(want) &&
                      strcmp(sum->valuestring, want->valuestring) != 0;
        cJSON_Delete(b);
        free(btext);
        if (differs) {
            cJSON_Delete(ref);
            free(text);
            CHECK_SKIP("installed CenterNet weights are not the ones of the reference");
        }
    }
    eng_model *m = NULL;
    eng_diag d = {{0}};
    CHECK_MSG(eng_model_load(json, &m, &d) == ENG_OK, "load %s: %s", json, d.msg);
    if (!ref || !m)
        return check_report("test_runtime_tfjs");

    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(ref, "cases");
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases)
    {
        int size = cJSON_GetObjectItemCaseSensitive(cs, "size")->valueint;
        eng_tensor *x = synth_image(size);
        double sum = 0;
        for (int64_t i = 0; i < eng_tensor_numel(x); i++)
            sum += eng_f32(x)[i];
        CHECK_MSG(sum == cJSON_GetObjectItemCaseSensitive(cs, "input_sum")->valuedouble,
                  "synthetic image %d differs from the script's", size);
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(cs, "tensors");
        int nt = cJSON_GetArraySize(ts);
        const char **names = calloc((size_t)nt, sizeof *names);
        eng_tensor **outs = calloc((size_t)nt, sizeof *outs);
        for (int i = 0; i < nt; i++)
            names[i] =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ts, i), "node")->valuestring;
        eng_run_opts opts = {.threads = 2};
        eng_status st = eng_model_run(m, x, names, nt, outs, &opts, &d);
        CHECK_MSG(st == ENG_OK, "run at %d: %s", size, d.msg);
        printf("synthetic image %dx%d:\n", size, size);
        for (int i = 0; !st && i < nt; i++) {
            const cJSON *e = cJSON_GetArrayItem(ts, i);
            const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;
            const char *kind = cJSON_GetObjectItemCaseSensitive(e, "kind")->valuestring;
            int nr, nc;
            float *rv = json_floats(cJSON_GetObjectItemCaseSensitive(e, "values"), &nr);
            float *cv = reduce(outs[i], kind, cJSON_GetObjectItemCaseSensitive(e, "crop"), &nc);
            CHECK_MSG(nr == nc, "%s: %d values, reference %d", name, nc, nr);
            if (nr == nc && !strcmp(kind, "detections"))
                check_detections(cv, rv);
            else if (nr == nc)
                CHECK_MSG(tr_compare(name, cv, rv, nr, 1e-3, 1e-4) <= 1.0, "%s out of tolerance",
                          name);
            free(rv);
            free(cv);
        }
        for (int i = 0; i < nt; i++)
            eng_tensor_free(outs[i]);
        free(outs);
        free(names);
        eng_tensor_free(x);
    }
    check_concurrent(m);

    /* backbone taps at any size, not only squares (the neck needs 512: error, not crash) */
    int64_t rect[4] = {2, 256, 384, 3};
    eng_tensor *xr = eng_tensor_new(ENG_F32, 4, rect);
    for (int64_t i = 0; i < eng_tensor_numel(xr); i++)
        eng_f32(xr)[i] = (float)(i % 251);
    const char *emb = "tower_0/extern1/hard_swish/mul_1";
    eng_tensor *er = NULL;
    eng_status rst = eng_model_run(m, xr, &emb, 1, &er, NULL, &d);
    CHECK_MSG(rst == ENG_OK, "%s", d.msg);
    if (er) {
        CHECK(er->dim[0] == 2 && er->dim[1] == 8 && er->dim[2] == 12 && er->dim[3] == 480);
        int finite = 1;
        for (int64_t i = 0; i < eng_tensor_numel(er); i++)
            finite &= isfinite(eng_f32(er)[i]) != 0;
        CHECK(finite);
    }
    eng_tensor_free(er);
    eng_tensor_free(xr);
    int64_t odd[4] = {1, 300, 300, 3}; /* SAME padding rounds up: 150, 75, 38, 19, 10 */
    eng_tensor *xo = eng_tensor_new(ENG_F32, 4, odd);
    rst = eng_model_run(m, xo, &emb, 1, &er, NULL, &d);
    CHECK_MSG(rst == ENG_OK, "300x300: %s", d.msg);
    if (er)
        CHECK(er->dim[1] == 10 && er->dim[2] == 10);
    eng_tensor_free(er);
    eng_tensor_free(xo);
    /* the detector's decoder is written for 512 and batch 1 */
    int64_t small[4] = {1, 320, 320, 3};
    eng_tensor *xs = eng_tensor_new(ENG_F32, 4, small);
    const char *det = "tower_0/detections";
    rst = eng_model_run(m, xs, &det, 1, &er, NULL, &d);
    CHECK_MSG(rst == ENG_EINVAL, "detections at 320: %s", d.msg);
    printf("detections at 320: %s\n", d.msg);
    eng_tensor_free(xs);
    eng_model_free(m);
    cJSON_Delete(ref);
    free(text);
    return check_report("test_runtime_tfjs");
}
