/* test_backbone_imagenet.c: the installed backbones through our own engine.
 * EfficientNet-Lite0 (converted by tools/convert_efficientnet.py) must put the
 * known ImageNet class in its top 5 for the real photos of Debian's darknet
 * package, its embedding must be the feature its classifier reads, and
 * CenterNet must open with the documented taps. Skips (77) when the photos
 * (apt-get install darknet) or both backbones (scripts/fetch-backbones.sh)
 * are absent; an installed backbone that does not open fails.
 *
 * Images used: dog.jpg (a dog: any of the 118 ImageNet dog classes),
 * eagle.jpg (bald eagle, kite or vulture), giraffe.jpg (ImageNet-1k has no
 * giraffe; the photo's zebra is the class), person.jpg (no person class; the
 * photo's dog). Not asserted, only printed: horses.jpg (white and grey
 * horses; the only horse class, sorrel, is a chestnut) and kite.jpg (a toy
 * kite; ImageNet's kite is the bird). */
#include "check.h"
#include "engine.h"
#include "test_backbone_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DARKNET "/usr/share/darknet/data"
#define NCLASS 1000

static char wnid[NCLASS][16];
static char label[NCLASS][64];

static int wnid_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* ImageNet-1k in the models' order: the first 1000 synsets of darknet's
 * imagenet.labels.list (the ILSVRC-2012 ids), sorted by WordNet id. */
static int load_labels(void)
{
    FILE *fw = fopen(DARKNET "/imagenet.labels.list", "r");
    FILE *fn = fopen(DARKNET "/imagenet.shortnames.list", "r");
    if (!fw || !fn) {
        if (fw)
            fclose(fw);
        if (fn)
            fclose(fn);
        return -1;
    }
    static char rows[NCLASS][96];
    int n = 0;
    char a[64], b[128];
    while (n < NCLASS && fgets(a, sizeof a, fw) && fgets(b, sizeof b, fn)) {
        a[strcspn(a, "\r\n")] = '\0';
        b[strcspn(b, "\r\n")] = '\0';
        snprintf(rows[n], sizeof rows[n], "%.15s\t%.63s", a, b);
        n++;
    }
    fclose(fw);
    fclose(fn);
    if (n != NCLASS)
        return -1;
    qsort(rows, NCLASS, sizeof rows[0], wnid_cmp);
    for (int i = 0; i < NCLASS; i++) {
        char *tab = strchr(rows[i], '\t');
        *tab = '\0';
        snprintf(wnid[i], sizeof wnid[i], "%.15s", rows[i]);
        snprintf(label[i], sizeof label[i], "%.63s", tab + 1);
    }
    return 0;
}

typedef struct photo {
    const char *file;
    const char *expect; /* comma-separated wnids, "dog" = the dog range, NULL = print only */
} photo;

static int expected(const char *expect, int cls)
{
    if (!strcmp(expect, "dog")) /* Chihuahua .. Mexican hairless */
        return strcmp(wnid[cls], "n02085620") >= 0 && strcmp(wnid[cls], "n02113978") <= 0;
    return strstr(expect, wnid[cls]) != NULL;
}

static void top5(const float *logits, int *idx)
{
    for (int k = 0; k < 5; k++) {
        int best = -1;
        for (int c = 0; c < NCLASS; c++) {
            int taken = 0;
            for (int j = 0; j < k; j++)
                taken |= idx[j] == c;
            if (!taken && (best < 0 || logits[c] > logits[best]))
                best = c;
        }
        idx[k] = best;
    }
}

static void test_efficientnet(const char *dir)
{
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    eng_status st = eng_backbone_open(dir, &bb, &d);
    CHECK_MSG(st == ENG_OK, "installed backbone %s does not open: %s", dir, d.msg);
    if (st)
        return;
    const eng_backbone_info *in = eng_backbone_get_info(bb);
    CHECK(in->input_w == 224 && in->input_h == 224);
    CHECK(in->pixels == ENG_PIX_0_255);
    CHECK(in->embedding_dim == 1280);
    CHECK(strlen(in->checksum) == 64);
    const char *logits_node = eng_backbone_field(bb, "outputs.logits");
    CHECK(logits_node != NULL);
    if (!logits_node) {
        eng_backbone_free(bb);
        return;
    }
    CHECK(!strcmp(wnid[22], "n01614925") && !strcmp(wnid[340], "n02391049"));

    static const photo photos[] = {
        {"dog.jpg", "dog"},           {"eagle.jpg", "n01614925,n01608432,n01616318"},
        {"giraffe.jpg", "n02391049"}, {"person.jpg", "dog"},
        {"horses.jpg", NULL},         {"kite.jpg", NULL},
    };
    enum { NP = sizeof photos / sizeof photos[0] };
    char paths[NP][256];
    const char *pp[NP];
    for (int i = 0; i < NP; i++) {
        snprintf(paths[i], sizeof paths[i], DARKNET "/%s", photos[i].file);
        pp[i] = paths[i];
    }
    /* taps: logits and the embedding, in one run */
    const char *taps[2] = {logits_node, in->embedding};
    int dim = 0;
    float *out = calloc((size_t)NP * (NCLASS + 1280), sizeof(float));
    eng_run_opts o = {.threads = 2};
    st = eng_backbone_embed_files(bb, pp, NP, 0, taps, 2, out, &dim, &o, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    CHECK(dim == NCLASS + 1280);
    for (int i = 0; i < NP && st == ENG_OK; i++) {
        const float *l = out + (size_t)i * dim;
        int idx[5];
        top5(l, idx);
        int hit = 0;
        printf("%-12s", photos[i].file);
        for (int k = 0; k < 5; k++) {
            int ok = photos[i].expect && expected(photos[i].expect, idx[k]);
            hit |= ok;
            printf(" %s%s (%.2f)%s", ok ? "*" : "", label[idx[k]], l[idx[k]], k < 4 ? "," : "");
        }
        printf("\n");
        if (photos[i].expect)
            CHECK_MSG(hit, "%s: the known class is not in the top 5", photos[i].file);
    }

    /* the embedding is what the classifier reads: logits = W^T mean(embedding) + b */
    const eng_tensor *w = NULL, *b = NULL;
    CHECK(eng_model_const(eng_backbone_model(bb), "classifier/weights", &w, &d) == ENG_OK);
    CHECK(eng_model_const(eng_backbone_model(bb), "classifier/bias", &b, &d) == ENG_OK);
    if (w && b && st == ENG_OK && eng_tensor_numel(w) == 1280 * NCLASS) {
        double worst = 0;
        for (int i = 0; i < NP; i++) {
            const float *l = out + (size_t)i * dim, *e = l + NCLASS;
            for (int c = 0; c < NCLASS; c++) {
                double v = eng_f32(b)[c];
                for (int k = 0; k < 1280; k++)
                    v += (double)eng_f32(w)[(size_t)k * NCLASS + c] * e[k];
                worst = fmax(worst, fabs(v - l[c]));
            }
        }
        CHECK_MSG(worst < 1e-3, "logits differ from the classifier on the embedding by %g", worst);
    }

    /* one image alone gives the same numbers as inside a batch */
    float single[NCLASS + 1280];
    CHECK(eng_backbone_embed_files(bb, pp + 2, 1, 0, taps, 2, single, &dim, NULL, &d) == ENG_OK);
    double diff = 0;
    for (int k = 0; k < dim; k++)
        diff = fmax(diff, fabs(single[k] - out[(size_t)2 * dim + k]));
    CHECK_MSG(diff < 1e-4, "batch of 1 vs batch of %d differ by %g", NP, diff);
    free(out);
    eng_backbone_free(bb);
}

static void test_centernet(const char *dir)
{
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    eng_status st = eng_backbone_open(dir, &bb, &d);
    CHECK_MSG(st == ENG_OK, "installed backbone %s does not open: %s", dir, d.msg);
    if (st)
        return;
    const eng_backbone_info *in = eng_backbone_get_info(bb);
    CHECK(
        !strcmp(in->checksum, "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef"));
    CHECK(in->input_w == 320 && in->pixels == ENG_PIX_0_255);
    CHECK(in->embedding_dim == 480);
    CHECK(in->detection_features_dim == 128);
    int dim = 0;
    const char *taps[2] = {in->embedding, eng_backbone_field(bb, "taps.stride8")};
    CHECK(taps[1] != NULL);
    if (taps[1]) {
        CHECK(eng_backbone_embed_dim(bb, 0, taps, 2, &dim, &d) == ENG_OK);
        CHECK(dim == 480 + 32);
    }
    float emb[480];
    const char *p = DARKNET "/dog.jpg";
    st = eng_backbone_embed_files(bb, &p, 1, 0, NULL, 0, emb, &dim, NULL, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    if (!st) {
        /* hard-swish output: >= -0.375, and a real photo lights up many channels */
        int nonzero = 0, sane = 1;
        for (int k = 0; k < 480; k++) {
            nonzero += fabsf(emb[k]) > 1e-3f;
            sane &= emb[k] >= -0.38f && emb[k] < 1e4f;
        }
        CHECK(sane);
        CHECK(nonzero > 100);
    }
    eng_backbone_free(bb);
}

int main(void)
{
    char eff[4096], cn[4096];
    int have_eff = test_backbone_path("efficientnet-lite0", NULL, eff, sizeof eff) == 1;
    int have_cn = test_backbone_path("centernet", NULL, cn, sizeof cn) == 1;
    if (access(DARKNET "/dog.jpg", R_OK) != 0 || load_labels() != 0)
        CHECK_SKIP("darknet photos absent (apt-get install -y darknet)");
    if (!have_eff && !have_cn)
        CHECK_SKIP("no backbones installed (run scripts/fetch-backbones.sh)");
    /* an installed backbone is tested even when it looks unreadable, so that
     * a broken install fails instead of passing as "not installed" */
    if (have_eff)
        test_efficientnet(eff);
    else
        printf("efficientnet-lite0 not installed: skipped that part\n");
    if (have_cn)
        test_centernet(cn);
    else
        printf("centernet not installed: skipped that part\n");
    return check_report("test_backbone_imagenet");
}
