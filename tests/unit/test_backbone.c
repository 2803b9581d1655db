/* test_backbone.c: the backbone layer on a tiny tfjs graph model the test
 * writes itself: backbone.json parsing, the file checks (missing, truncated,
 * altered weights, each with the repair command in the message), a table of
 * broken backbone.json files, embeddings (pooled taps, batches, crops and
 * flips, files vs decoded images, abort) against values worked out here, the
 * folder scan, and SHA-256 against the FIPS 180-4 example digests. */
#include "check.h"
#include "engine.h"
#include "backbone_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

/* Tiny model: images -> pw (1x1 conv 3->4, bias) and s2 (3x3 stride-2 SAME
 * conv 4->2, bias, relu) on pw. */
#define PW_W 12
#define PW_B 4
#define S2_W 72
#define S2_B 2
#define NWEIGHTS (PW_W + PW_B + S2_W + S2_B)
#define SHARD1_BYTES 200
static float weights[NWEIGHTS];

static const char *model_json_fmt =
    "{\"format\":\"graph-model\",\"modelTopology\":{\"node\":["
    "{\"name\":\"pw/weights\",\"op\":\"Const\",\"attr\":{\"dtype\":{\"type\":\"DT_FLOAT\"}}},"
    "{\"name\":\"pw/bias\",\"op\":\"Const\",\"attr\":{\"dtype\":{\"type\":\"DT_FLOAT\"}}},"
    "{\"name\":\"s2/weights\",\"op\":\"Const\",\"attr\":{\"dtype\":{\"type\":\"DT_FLOAT\"}}},"
    "{\"name\":\"s2/bias\",\"op\":\"Const\",\"attr\":{\"dtype\":{\"type\":\"DT_FLOAT\"}}},"
    "{\"name\":\"images\",\"op\":\"Placeholder\",\"attr\":{\"dtype\":{\"type\":\"DT_FLOAT\"},"
    "\"shape\":{\"shape\":{\"dim\":[{\"size\":\"-1\"},{\"size\":\"-1\"},{\"size\":\"-1\"},"
    "{\"size\":\"3\"}]}}}},"
    "{\"name\":\"pw\",\"op\":\"_FusedConv2D\",\"input\":[\"images\",\"pw/weights\",\"pw/bias\"],"
    "\"attr\":{\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}},\"padding\":{\"s\":"
    "\"U0FNRQ==\"},\"data_format\":{\"s\":\"TkhXQw==\"},\"num_args\":{\"i\":\"1\"},"
    "\"dilations\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}},"
    "\"fused_ops\":{\"list\":{\"s\":[\"Qmlhc0FkZA==\"]}},\"T\":{\"type\":\"DT_FLOAT\"}}},"
    "{\"name\":\"s2\",\"op\":\"_FusedConv2D\",\"input\":[\"pw\",\"s2/weights\",\"s2/bias\"],"
    "\"attr\":{\"strides\":{\"list\":{\"i\":[\"1\",\"2\",\"2\",\"1\"]}},\"padding\":{\"s\":"
    "\"U0FNRQ==\"},\"data_format\":{\"s\":\"TkhXQw==\"},\"num_args\":{\"i\":\"1\"},"
    "\"dilations\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}},"
    "\"fused_ops\":{\"list\":{\"s\":[\"Qmlhc0FkZA==\",\"UmVsdQ==\"]}},"
    "\"T\":{\"type\":\"DT_FLOAT\"}}}"
    "]},\"weightsManifest\":[{\"paths\":[\"%s\",\"shard2.bin\"],\"weights\":["
    "{\"name\":\"pw/weights\",\"shape\":[1,1,3,4],\"dtype\":\"float32\"},"
    "{\"name\":\"pw/bias\",\"shape\":[4],\"dtype\":\"float32\"},"
    "{\"name\":\"s2/weights\",\"shape\":[3,3,4,2],\"dtype\":\"float32\"},"
    "{\"name\":\"s2/bias\",\"shape\":[2],\"dtype\":\"float32\"}]}]}";

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

static void file_sha(const char *path, char hex[65], int64_t *size)
{
    bb_sha256 s;
    bb_sha256_init(&s);
    eng_diag d;
    CHECK(bb_sha256_file(&s, path, size, &d) == ENG_OK);
    bb_sha256_final_hex(&s, hex);
}

static void pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* Options for the backbone.json written next to the tiny model. */
typedef struct tiny_opts {
    const char *name_field;  /* "name" value (NULL: "tiny") */
    const char *input;       /* json for "input" (NULL: [64, 64]) */
    const char *pixels;      /* (NULL: "0..1") */
    const char *embedding;   /* (NULL: "pw"); "-" omits it */
    int no_source;           /* omit "source" */
    int no_files;            /* omit "files" and "checksum" */
    const char *checksum;    /* override */
    const char *extra_file;  /* add a files entry with this path (size 1, bogus sum) */
    const char *shard1_name; /* (NULL: "shard1.bin") */
    const char *raw;         /* write this as backbone.json instead */
} tiny_opts;

static char tiny_checksum[65];

static void make_tiny(const char *dir, const tiny_opts *o)
{
    mkdir(dir, 0755);
    char p[512], q[512];
    const char *s1 = o && o->shard1_name ? o->shard1_name : "shard1.bin";
    char *mj = malloc(8192);
    snprintf(mj, 8192, model_json_fmt, s1);
    pathf(p, sizeof p, "%s/model.json", dir);
    write_bytes(p, mj, strlen(mj));
    free(mj);
    if (!strchr(s1, '/')) {
        pathf(p, sizeof p, "%s/%s", dir, s1);
        write_bytes(p, weights, SHARD1_BYTES);
    }
    pathf(p, sizeof p, "%s/shard2.bin", dir);
    write_bytes(p, (const char *)weights + SHARD1_BYTES, sizeof weights - SHARD1_BYTES);

    bb_sha256 whole;
    bb_sha256_init(&whole);
    bb_sha256_update(&whole, weights, sizeof weights);
    bb_sha256_final_hex(&whole, tiny_checksum);

    char files[2048] = "";
    if (!(o && o->no_files)) {
        const char *names[3] = {"model.json", s1, "shard2.bin"};
        size_t len = 0;
        len += (size_t)snprintf(files + len, sizeof files - len,
                                ", \"checksum\": \"%s\", "
                                "\"files\": [",
                                o && o->checksum ? o->checksum : tiny_checksum);
        for (int i = 0; i < 3; i++) {
            char hex[65] = "";
            int64_t size = 0;
            pathf(q, sizeof q, "%s/%s", dir, names[i]);
            if (!strchr(names[i], '/'))
                file_sha(q, hex, &size);
            len += (size_t)snprintf(files + len, sizeof files - len,
                                    "%s{\"path\": \"%s\", \"size\": %lld, \"sha256\": \"%s\"}",
                                    i ? ", " : "", names[i], (long long)size, hex);
        }
        if (o && o->extra_file)
            len += (size_t)snprintf(files + len, sizeof files - len,
                                    ", {\"path\": \"%s\", \"size\": 1, \"sha256\": \"00\"}",
                                    o->extra_file);
        snprintf(files + len, sizeof files - len, "]");
    }
    char bj[4096];
    char emb[128] = "";
    const char *e = o && o->embedding ? o->embedding : "pw";
    if (strcmp(e, "-") != 0)
        snprintf(emb, sizeof emb, "\"embedding\": \"%s\", ", e);
    snprintf(bj, sizeof bj,
             "{\"name\": \"%s\", \"input\": %s, \"pixels\": \"%s\", %s"
             "\"detection_features\": \"s2\", \"outputs\": {\"fine\": \"pw\"}%s%s}\n",
             o && o->name_field ? o->name_field : "tiny", o && o->input ? o->input : "[64, 64]",
             o && o->pixels ? o->pixels : "0..1", emb,
             o && o->no_source ? "" : ", \"source\": {\"package\": \"test\"}", files);
    pathf(p, sizeof p, "%s/backbone.json", dir);
    if (o && o->raw)
        write_bytes(p, o->raw, strlen(o->raw));
    else
        write_bytes(p, bj, strlen(bj));
}

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void test_sha256(void)
{
    const struct {
        const char *in;
        const char *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        bb_sha256 s;
        char hex[65];
        bb_sha256_init(&s);
        bb_sha256_update(&s, v[i].in, strlen(v[i].in));
        bb_sha256_final_hex(&s, hex);
        CHECK_MSG(!strcmp(hex, v[i].hex), "sha256('%s') = %s", v[i].in, hex);
    }
    /* one million 'a' in uneven pieces exercises the buffering */
    bb_sha256 s;
    char hex[65], chunk[997];
    memset(chunk, 'a', sizeof chunk);
    bb_sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : (left % 7) + 1 + (left % 990);
        if (n > sizeof chunk)
            n = sizeof chunk;
        bb_sha256_update(&s, chunk, n);
        left -= n;
    }
    bb_sha256_final_hex(&s, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

static eng_image *pattern_image(int w, int h, int seed)
{
    eng_image *im = eng_image_new(w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)((x * 7 + seed * 31) & 255);
            p[1] = (uint8_t)((y * 5 + x * (seed + 1)) & 255);
            p[2] = (uint8_t)(((x ^ y) * 3 + seed) & 255);
        }
    return im;
}

/* Expected "pw" embedding: the 1x1 conv is linear, so its average is the conv
 * of the average pixel. */
static void expected_pw(const eng_image *im, const eng_crop *crop, int flip, float out[4])
{
    float *t = malloc(sizeof(float) * 64 * 64 * 3);
    eng_diag d;
    CHECK(eng_image_to_tensor(im, crop, flip, 64, 64, ENG_PIX_0_1, t, &d) == ENG_OK);
    double mean[3] = {0, 0, 0};
    for (int i = 0; i < 64 * 64; i++)
        for (int k = 0; k < 3; k++)
            mean[k] += t[i * 3 + k];
    for (int c = 0; c < 4; c++) {
        double v = weights[PW_W + c];
        for (int k = 0; k < 3; k++)
            v += weights[k * 4 + c] * mean[k] / (64 * 64);
        out[c] = (float)v;
    }
    free(t);
}

/* Expected "s2" embedding by running the model on one image and pooling. */
static void expected_s2(const eng_backbone *bb, const eng_image *im, const eng_crop *crop, int flip,
                        float out[2])
{
    int64_t dim[4] = {1, 64, 64, 3};
    eng_tensor *in = eng_tensor_new(ENG_F32, 4, dim);
    eng_diag d;
    CHECK(eng_image_to_tensor(im, crop, flip, 64, 64, ENG_PIX_0_1, eng_f32(in), &d) == ENG_OK);
    const char *outs[1] = {"s2"};
    eng_tensor *res[1] = {NULL};
    CHECK(eng_model_run(eng_backbone_model(bb), in, outs, 1, res, NULL, &d) == ENG_OK);
    out[0] = out[1] = 0;
    if (res[0]) {
        CHECK(res[0]->dim[1] == 32 && res[0]->dim[2] == 32 && res[0]->dim[3] == 2);
        for (int i = 0; i < 32 * 32; i++)
            for (int c = 0; c < 2; c++)
                out[c] += eng_f32(res[0])[i * 2 + c] / (32 * 32);
    }
    eng_tensor_free(res[0]);
    eng_tensor_free(in);
}

static int abort_always(void *ctx)
{
    (void)ctx;
    return 1;
}

static void test_open_and_embed(void)
{
    char dir[512];
    pathf(dir, sizeof dir, "%s/tiny", root);
    make_tiny(dir, NULL);
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    eng_status st = eng_backbone_open(dir, &bb, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    if (st)
        return;
    const eng_backbone_info *in = eng_backbone_get_info(bb);
    CHECK(!strcmp(in->name, "tiny"));
    CHECK(!strcmp(in->checksum, tiny_checksum));
    CHECK(in->input_w == 64 && in->input_h == 64);
    CHECK(in->pixels == ENG_PIX_0_1);
    CHECK(!strcmp(in->embedding, "pw") && in->embedding_dim == 4);
    CHECK(in->detection_features && !strcmp(in->detection_features, "s2"));
    CHECK(in->detection_features_dim == 2);
    const char *fine = eng_backbone_field(bb, "outputs.fine");
    CHECK(fine && !strcmp(fine, "pw"));
    CHECK(eng_backbone_field(bb, "outputs.none") == NULL);
    CHECK(eng_backbone_field(bb, "input") == NULL);

    const char *taps[2] = {"pw", "s2"};
    int dim = 0;
    CHECK(eng_backbone_embed_dim(bb, 0, NULL, 0, &dim, &d) == ENG_OK && dim == 4);
    CHECK(eng_backbone_embed_dim(bb, 128, taps, 2, &dim, &d) == ENG_OK && dim == 6);
    CHECK(eng_backbone_embed_dim(bb, 100, taps, 2, &dim, &d) == ENG_EINVAL);
    const char *bad[1] = {"nope"};
    CHECK(eng_backbone_embed_dim(bb, 0, bad, 1, &dim, &d) == ENG_ENOTFOUND);
    CHECK_MSG(strstr(d.msg, "'nope'") != NULL, "%s", d.msg);

    /* 19 images: three batches (8, 8, 3) through the producer thread */
    enum { N = 19 };
    eng_image *ims[N];
    eng_crop crops[N];
    int flips[N];
    for (int i = 0; i < N; i++) {
        ims[i] = pattern_image(40 + i * 3, 30 + i * 5, i);
        crops[i] = (eng_crop){(float)(i % 5), (float)(i % 3), (float)(ims[i]->w - 6),
                              (float)(ims[i]->h - 4)};
        flips[i] = i % 2;
    }
    float *out = calloc(N * 6, sizeof(float));
    eng_run_opts o = {.threads = 2};
    st = eng_backbone_embed_images(bb, (const eng_image *const *)ims, crops, flips, N, 0, taps, 2,
                                   out, &dim, &o, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    CHECK(dim == 6);
    double worst = 0;
    for (int i = 0; i < N && st == ENG_OK; i++) {
        float pw[4], s2[2];
        expected_pw(ims[i], &crops[i], flips[i], pw);
        expected_s2(bb, ims[i], &crops[i], flips[i], s2);
        for (int c = 0; c < 4; c++)
            worst = fmax(worst, fabs(out[i * 6 + c] - pw[c]));
        for (int c = 0; c < 2; c++)
            worst = fmax(worst, fabs(out[i * 6 + 4 + c] - s2[c]));
    }
    CHECK_MSG(worst < 1e-5, "embedding differs from the worked-out value by %g", worst);
    /* the flip matters for s2 but not for the pooled 1x1 conv: check a flip changes s2 */
    float a[2], b[2];
    expected_s2(bb, ims[3], NULL, 0, a);
    expected_s2(bb, ims[3], NULL, 1, b);
    CHECK(fabs(a[0] - b[0]) + fabs(a[1] - b[1]) > 1e-6);

    /* default taps: the embedding only, 4 values per image */
    float one[4];
    CHECK(eng_backbone_embed_images(bb, (const eng_image *const *)ims, crops, flips, 1, 0, NULL, 0,
                                    one, &dim, NULL, &d) == ENG_OK);
    CHECK(dim == 4);
    CHECK_NEAR(one[2], out[2], 1e-6);
    /* out NULL: dimension query */
    dim = 0;
    CHECK(eng_backbone_embed_images(bb, (const eng_image *const *)ims, NULL, NULL, N, 128, taps, 2,
                                    NULL, &dim, NULL, &d) == ENG_OK &&
          dim == 6);
    /* abort: stops with ENG_EABORTED */
    eng_run_opts ab = {.threads = 1, .abort = abort_always};
    CHECK(eng_backbone_embed_images(bb, (const eng_image *const *)ims, NULL, NULL, N, 0, taps, 2,
                                    out, &dim, &ab, &d) == ENG_EABORTED);
    /* a size that is not a multiple of 32 */
    CHECK(eng_backbone_embed_images(bb, (const eng_image *const *)ims, NULL, NULL, N, 65, taps, 2,
                                    out, &dim, NULL, &d) == ENG_EINVAL);

    /* files: JPEGs written here; the same as decoding them and embedding images */
    enum { NF = 10 };
    char paths[NF + 1][600];
    const char *pp[NF + 1];
    eng_image *dec[NF];
    for (int i = 0; i < NF; i++) {
        uint8_t *jpg = NULL;
        size_t len = 0;
        CHECK(eng_image_encode_jpeg(ims[i], 90, &jpg, &len, &d) == ENG_OK);
        pathf(paths[i], sizeof paths[i], "%s/img%d.jpg", root, i);
        write_bytes(paths[i], jpg, len);
        free(jpg);
        pp[i] = paths[i];
        dec[i] = NULL;
        CHECK(eng_image_decode_file(paths[i], 64, &dec[i], &d) == ENG_OK);
    }
    float *fo = calloc(NF * 6, sizeof(float)), *io = calloc(NF * 6, sizeof(float));
    st = eng_backbone_embed_files(bb, pp, NF, 0, taps, 2, fo, &dim, &o, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    CHECK(eng_backbone_embed_images(bb, (const eng_image *const *)dec, NULL, NULL, NF, 0, taps, 2,
                                    io, &dim, &o, &d) == ENG_OK);
    CHECK(memcmp(fo, io, NF * 6 * sizeof(float)) == 0);
    /* files with fractional crops and flips == decoded images with pixel crops */
    eng_crop rel[NF], pix[NF];
    int fl[NF];
    for (int i = 0; i < NF; i++) {
        rel[i] = (eng_crop){0.05f * (float)(i % 4), 0.1f, 0.7f, 0.9f - 0.02f * (float)i};
        pix[i] = (eng_crop){rel[i].x * (float)dec[i]->w, rel[i].y * (float)dec[i]->h,
                            rel[i].w * (float)dec[i]->w, rel[i].h * (float)dec[i]->h};
        fl[i] = i % 3 == 0;
    }
    st = eng_backbone_embed_files_aug(bb, pp, rel, fl, NF, 0, taps, 2, fo, &dim, &o, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    CHECK(eng_backbone_embed_images(bb, (const eng_image *const *)dec, pix, fl, NF, 0, taps, 2, io,
                                    &dim, &o, &d) == ENG_OK);
    CHECK(memcmp(fo, io, NF * 6 * sizeof(float)) == 0);
    float plain[6];
    CHECK(eng_backbone_embed_files(bb, pp, 1, 0, taps, 2, plain, &dim, NULL, &d) == ENG_OK);
    CHECK(fabs(plain[4] - fo[4]) + fabs(plain[5] - fo[5]) > 1e-6); /* the crop mattered */
    rel[3].w = 1.5f;
    CHECK(eng_backbone_embed_files_aug(bb, pp, rel, fl, NF, 0, taps, 2, fo, &dim, &o, &d) ==
          ENG_EINVAL);
    CHECK_MSG(strstr(d.msg, "crop 3") != NULL, "%s", d.msg);
    rel[3].w = 1.0f - rel[3].x + 1e-5f; /* rounding overshoot is tolerated */
    CHECK(eng_backbone_embed_files_aug(bb, pp, rel, fl, NF, 0, taps, 2, fo, &dim, &o, &d) ==
          ENG_OK);

    /* a corrupt file in the second batch: the call fails and names it */
    pathf(paths[NF], sizeof paths[NF], "%s/broken.jpg", root);
    write_bytes(paths[NF], "\xff\xd8\xff\xe0garbage", 11);
    const char *mixed[NF + 1];
    for (int i = 0; i < NF; i++)
        mixed[i] = pp[i];
    mixed[9] = paths[NF];
    mixed[NF] = pp[0];
    float *mo = calloc((NF + 1) * 6, sizeof(float));
    st = eng_backbone_embed_files(bb, mixed, NF + 1, 0, taps, 2, mo, &dim, &o, &d);
    CHECK(st != ENG_OK);
    CHECK_MSG(strstr(d.msg, "broken.jpg") && strstr(d.msg, "image 9"), "%s", d.msg);
    free(mo);
    free(fo);
    free(io);
    for (int i = 0; i < NF; i++)
        eng_image_free(dec[i]);
    for (int i = 0; i < N; i++)
        eng_image_free(ims[i]);
    free(out);
    eng_backbone_free(bb);
    eng_backbone_free(NULL);
}

typedef enum { DMG_NONE, DMG_TRUNCATE, DMG_FLIP_BYTE, DMG_REMOVE_SHARD, DMG_REMOVE_JSON } damage;

typedef struct bad_case {
    const char *what;
    tiny_opts opts;
    damage dmg;
    eng_status want;
    const char *msg1, *msg2; /* fragments the message must contain */
} bad_case;

static void apply_damage(const char *dir, damage dmg)
{
    char p[600];
    switch (dmg) {
    case DMG_NONE: break;
    case DMG_TRUNCATE:
        pathf(p, sizeof p, "%s/shard2.bin", dir);
        CHECK(truncate(p, 100) == 0);
        break;
    case DMG_FLIP_BYTE: {
        pathf(p, sizeof p, "%s/shard1.bin", dir);
        FILE *f = fopen(p, "r+b");
        fseek(f, 17, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 17, SEEK_SET);
        fputc(c ^ 0x40, f);
        fclose(f);
        break;
    }
    case DMG_REMOVE_SHARD:
        pathf(p, sizeof p, "%s/shard2.bin", dir);
        unlink(p);
        break;
    case DMG_REMOVE_JSON:
        pathf(p, sizeof p, "%s/backbone.json", dir);
        unlink(p);
        break;
    }
}

static void test_broken(void)
{
    static const bad_case cases[] = {
        {"truncated shard",
         {0},
         DMG_TRUNCATE,
         ENG_EFORMAT,
         "truncated",
         "run scripts/fetch-backbones.sh"},
        {"altered shard",
         {0},
         DMG_FLIP_BYTE,
         ENG_EFORMAT,
         "'shard1.bin' does not match its sha256",
         "scripts/fetch-backbones.sh"},
        {"missing shard",
         {0},
         DMG_REMOVE_SHARD,
         ENG_ENOTFOUND,
         "'shard2.bin' is missing",
         "scripts/fetch-backbones.sh"},
        {"user copy, truncated",
         {.no_source = 1},
         DMG_TRUNCATE,
         ENG_EFORMAT,
         "truncated",
         "copy the backbone folder in again"},
        {"no files list, missing shard",
         {.no_files = 1},
         DMG_REMOVE_SHARD,
         ENG_ENOTFOUND,
         "'shard2.bin' is missing",
         NULL},
        {"no backbone.json", {0}, DMG_REMOVE_JSON, ENG_ENOTFOUND, "no backbone.json", "embedding"},
        {"malformed json",
         {.raw = "{\"input\": [64, 64"},
         DMG_NONE,
         ENG_EFORMAT,
         "': not valid JSON at byte ",
         NULL},
        {"not an object", {.raw = "[1, 2]"}, DMG_NONE, ENG_EFORMAT, "not an object", NULL},
        {"bad pixels", {.pixels = "0..2"}, DMG_NONE, ENG_EFORMAT, "\"pixels\"", NULL},
        {"no embedding", {.embedding = "-"}, DMG_NONE, ENG_EFORMAT, "\"embedding\"", NULL},
        {"unknown embedding node",
         {.embedding = "nope"},
         DMG_NONE,
         ENG_ENOTFOUND,
         "embedding node 'nope'",
         NULL},
        {"input not a list", {.input = "\"big\""}, DMG_NONE, ENG_EFORMAT, "\"input\"", NULL},
        {"input too small", {.input = "[8, 8]"}, DMG_NONE, ENG_EFORMAT, "\"input\"", NULL},
        {"input fractional", {.input = "[64.5, 64]"}, DMG_NONE, ENG_EFORMAT, "\"input\"", NULL},
        {"unsafe files path",
         {.extra_file = "../../etc/passwd"},
         DMG_NONE,
         ENG_EFORMAT,
         "unsafe",
         NULL},
        {"extra recorded file missing",
         {.extra_file = "labels.txt"},
         DMG_NONE,
         ENG_ENOTFOUND,
         "'labels.txt' is missing",
         NULL},
        {"wrong checksum",
         {.checksum = "0000"},
         DMG_NONE,
         ENG_EFORMAT,
         "checksum",
         "scripts/fetch-backbones.sh"},
        {"weight path outside",
         {.shard1_name = "../evil.bin", .no_files = 1},
         DMG_NONE,
         ENG_EFORMAT,
         "outside its folder",
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        char dir[512];
        pathf(dir, sizeof dir, "%s/bad%zu", root, i);
        make_tiny(dir, &c->opts);
        apply_damage(dir, c->dmg);
        eng_backbone *bb = (eng_backbone *)1;
        eng_diag d = {{0}};
        eng_status st = eng_backbone_open(dir, &bb, &d);
        CHECK_MSG(st == c->want, "%s: status %s, message: %s", c->what, eng_status_name(st), d.msg);
        CHECK_MSG(bb == NULL, "%s: out not cleared", c->what);
        CHECK_MSG(strstr(d.msg, c->msg1) != NULL, "%s: message lacks '%s': %s", c->what, c->msg1,
                  d.msg);
        if (c->msg2)
            CHECK_MSG(strstr(d.msg, c->msg2) != NULL, "%s: message lacks '%s': %s", c->what,
                      c->msg2, d.msg);
        /* verify agrees with open on everything that is about files */
        eng_diag vd = {{0}};
        eng_status vs = eng_backbone_verify(dir, &vd);
        if (strstr(c->what, "node") == NULL)
            CHECK_MSG(vs == c->want, "%s: verify gave %s: %s", c->what, eng_status_name(vs),
                      vd.msg);
        else
            CHECK(vs == ENG_OK);
        rm_tree(dir);
    }
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    char dir[512];
    pathf(dir, sizeof dir, "%s/absent", root);
    CHECK(eng_backbone_open(dir, &bb, &d) == ENG_ENOTFOUND);
    CHECK_MSG(strstr(d.msg, "scripts/fetch-backbones.sh") != NULL, "%s", d.msg);
    CHECK(eng_backbone_open(NULL, &bb, &d) == ENG_EINVAL);
}

static void test_scan(void)
{
    char sroot[512], p[600];
    pathf(sroot, sizeof sroot, "%s/scan", root);
    mkdir(sroot, 0755);
    pathf(p, sizeof p, "%s/zeta", sroot);
    make_tiny(p, NULL);
    pathf(p, sizeof p, "%s/alpha", sroot);
    make_tiny(p, &(tiny_opts){.name_field = "alpha-model"});
    apply_damage(p, DMG_TRUNCATE);
    pathf(p, sizeof p, "%s/.staging", sroot);
    make_tiny(p, NULL);
    pathf(p, sizeof p, "%s/README", sroot);
    write_bytes(p, "x", 1);
    for (int load = 0; load <= 1; load++) {
        eng_backbone_entry *e = NULL;
        int n = -1;
        eng_diag d = {{0}};
        CHECK(eng_backbones_scan(sroot, load, &e, &n, &d) == ENG_OK);
        CHECK(n == 2);
        if (n == 2) {
            CHECK(!strcmp(e[0].name, "alpha") && e[0].status == ENG_EFORMAT);
            CHECK_MSG(strstr(e[0].message, "truncated") != NULL, "%s", e[0].message);
            CHECK(!strcmp(e[1].name, "zeta") && e[1].status == ENG_OK);
            CHECK(!strcmp(e[1].message, "ok"));
        }
        free(e);
    }
    eng_backbone_entry *e = NULL;
    int n = -1;
    eng_diag d;
    pathf(p, sizeof p, "%s/nothing-here", root);
    CHECK(eng_backbones_scan(p, 0, &e, &n, &d) == ENG_OK && n == 0 && e == NULL);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/vfs-test-backbone-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    /* deterministic weights with both signs */
    uint32_t s = 12345;
    for (int i = 0; i < NWEIGHTS; i++) {
        s = s * 1664525u + 1013904223u;
        weights[i] = ((float)(s >> 8) / (float)(1 << 24) - 0.5f) * 2.0f;
    }
    test_sha256();
    test_open_and_embed();
    test_broken();
    test_scan();
    rm_tree(root);
    return check_report("test_backbone");
}
