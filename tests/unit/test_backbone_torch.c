/* test_backbone_torch.c: EfficientNet-Lite0 as converted by
 * tools/convert_efficientnet.py and run by our engine, against PyTorch
 * running the original checkpoint (bench/efficientnet_vs_torch.py) on the
 * very same input tensor: logits and the pooled 1280-d embedding must agree
 * within float tolerance and the top-1 class must match.
 *
 * Skips (77) when the backbone is not installed (an installed one that does
 * not open fails) or no Python with torch and efficientnet-lite-pytorch is
 * found: $VFS_TORCH_PYTHON (e.g. a venv's bin/python), else python3.
 * Inputs: the darknet photos when present plus images the test makes (a
 * pattern and uniform noise). */
#include "check.h"
#include "engine.h"
#include "test_backbone_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE 224
#define NCLASS 1000
#define DIM 1280
#define MAXN 8

static int write_f32(const char *path, const float *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, sizeof(float), n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int read_f32(const char *path, float *p, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t r = fread(p, sizeof(float), n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    return r == n && !extra ? 0 : -1;
}

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

int main(void)
{
    char dir[1024];
    if (test_backbone_path("efficientnet-lite0", NULL, dir, sizeof dir) != 1)
        CHECK_SKIP("efficientnet-lite0 not installed (run scripts/fetch-backbones.sh)");
    /* opened before looking for torch: a broken install must fail even on a
     * machine that would skip the comparison */
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    if (eng_backbone_open(dir, &bb, &d) != ENG_OK)
        return test_backbone_broken(dir, d.msg);
    const char *py = getenv("VFS_TORCH_PYTHON");
    if (!py || !*py)
        py = "python3";
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' -c 'import torch, numpy, efficientnet_lite_pytorch' "
             ">/dev/null 2>&1",
             py);
    if (system(cmd) != 0) {
        eng_backbone_free(bb);
        CHECK_SKIP("no python with torch and efficientnet-lite-pytorch (set VFS_TORCH_PYTHON)");
    }

    const char *logits_node = eng_backbone_field(bb, "outputs.logits");
    const char *emb_node = eng_backbone_get_info(bb)->embedding;
    CHECK(logits_node != NULL);

    /* inputs: darknet photos, a pattern and noise, all 0..255 NHWC */
    static const char *photos[] = {"dog.jpg",    "eagle.jpg",  "giraffe.jpg",
                                   "person.jpg", "horses.jpg", "kite.jpg"};
    int64_t idim[4] = {MAXN, SIZE, SIZE, 3};
    eng_tensor *in = eng_tensor_new(ENG_F32, 4, idim);
    size_t per = (size_t)SIZE * SIZE * 3;
    int n = 0;
    for (size_t i = 0; i < sizeof photos / sizeof photos[0] && n < MAXN - 2; i++) {
        char p[256];
        snprintf(p, sizeof p, "/usr/share/darknet/data/%s", photos[i]);
        eng_image *im = NULL;
        if (access(p, R_OK) != 0 || eng_image_decode_file(p, 0, &im, &d) != ENG_OK)
            continue;
        if (eng_image_to_tensor(im, NULL, 0, SIZE, SIZE, ENG_PIX_0_255, eng_f32(in) + n * per,
                                &d) == ENG_OK)
            n++;
        eng_image_free(im);
    }
    float *x = eng_f32(in) + n * per;
    for (int y = 0; y < SIZE; y++)
        for (int xx = 0; xx < SIZE; xx++) {
            float *p = x + ((size_t)y * SIZE + xx) * 3;
            p[0] = (float)((xx * 255) / (SIZE - 1));
            p[1] = (float)((y * 255) / (SIZE - 1));
            p[2] = (float)(((xx / 28 + y / 28) % 2) * 255);
        }
    n++;
    uint32_t s = 7;
    x = eng_f32(in) + n * per;
    for (size_t k = 0; k < per; k++) {
        s = s * 1664525u + 1013904223u;
        x[k] = (float)(s >> 24);
    }
    n++;
    in->dim[0] = n;

    /* ours: one run to both nodes, then the average pool of the features */
    const char *outs[2] = {logits_node, emb_node};
    eng_tensor *res[2] = {NULL, NULL};
    eng_run_opts o = {.threads = 2};
    eng_status st = eng_model_run(eng_backbone_model(bb), in, outs, 2, res, &o, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    float *ours_l = calloc((size_t)n * NCLASS, sizeof(float));
    float *ours_e = calloc((size_t)n * DIM, sizeof(float));
    if (!st) {
        CHECK(res[0]->ndim == 2 && res[0]->dim[1] == NCLASS);
        CHECK(res[1]->ndim == 4 && res[1]->dim[3] == DIM);
        memcpy(ours_l, eng_f32(res[0]), sizeof(float) * n * NCLASS);
        int64_t cells = res[1]->dim[1] * res[1]->dim[2];
        for (int i = 0; i < n; i++)
            for (int64_t c = 0; c < cells; c++)
                for (int k = 0; k < DIM; k++)
                    ours_e[i * DIM + k] +=
                        eng_f32(res[1])[((size_t)i * cells + c) * DIM + k] / (float)cells;
    }

    char tmp[] = "/tmp/vfs-test-torch-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char pin[512], pl[512], pe[512], ol[512], oe[512];
    snprintf(pin, sizeof pin, "%s/input.f32", tmp);
    snprintf(ol, sizeof ol, "%s/logits.f32", tmp);
    snprintf(oe, sizeof oe, "%s/embedding.f32", tmp);
    snprintf(pl, sizeof pl, "%s/torch/logits.f32", tmp);
    snprintf(pe, sizeof pe, "%s/torch/embedding.f32", tmp);
    CHECK(write_f32(pin, eng_f32(in), (size_t)n * per) == 0);
    CHECK(write_f32(ol, ours_l, (size_t)n * NCLASS) == 0);
    CHECK(write_f32(oe, ours_e, (size_t)n * DIM) == 0);
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/bench/efficientnet_vs_torch.py' --input '%s' --batch %d "
             "--size %d --out '%s/torch' --backbone '%s' --ours '%s'",
             py, VFS_SOURCE_DIR, pin, n, SIZE, tmp, dir, tmp);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "efficientnet_vs_torch.py failed (%d)", rc);

    float *ref_l = calloc((size_t)n * NCLASS, sizeof(float));
    float *ref_e = calloc((size_t)n * DIM, sizeof(float));
    if (rc == 0 && read_f32(pl, ref_l, (size_t)n * NCLASS) == 0 &&
        read_f32(pe, ref_e, (size_t)n * DIM) == 0) {
        double dl = 0, de = 0, scale = 0;
        int agree = 0;
        for (size_t k = 0; k < (size_t)n * NCLASS; k++) {
            dl = fmax(dl, fabs(ours_l[k] - ref_l[k]));
            scale = fmax(scale, fabs(ref_l[k]));
        }
        for (size_t k = 0; k < (size_t)n * DIM; k++)
            de = fmax(de, fabs(ours_e[k] - ref_e[k]));
        for (int i = 0; i < n; i++)
            agree += argmax(ours_l + i * NCLASS, NCLASS) == argmax(ref_l + i * NCLASS, NCLASS);
        printf("%d inputs: logits max abs diff %.3g (max |logit| %.3g), embedding max abs diff "
               "%.3g, top-1 agreement %d/%d\n",
               n, dl, scale, de, agree, n);
        CHECK_MSG(dl < 2e-3, "logits differ by %g", dl);
        CHECK_MSG(de < 2e-3, "embeddings differ by %g", de);
        CHECK(agree == n);
    } else {
        CHECK_MSG(0, "no torch outputs in %s/torch", tmp);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    free(ref_l);
    free(ref_e);
    free(ours_l);
    free(ours_e);
    eng_tensor_free(res[0]);
    eng_tensor_free(res[1]);
    eng_tensor_free(in);
    eng_backbone_free(bb);
    return check_report("test_backbone_torch");
}
