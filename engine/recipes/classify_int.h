/* classify_int.h: the classifier's private representation and the feature
 * path shared by classify.c (model, predict, evaluate, file) and
 * cls_train.c (recipe search). */
#ifndef VFS_ENGINE_CLASSIFY_INT_H
#define VFS_ENGINE_CLASSIFY_INT_H

#include "cls_int.h"
#include "classify.h"

#define CLS_MAX_VIEWS 16

/* One view of a trained model: backbone index, input size, tap node. */
typedef struct cls_view {
    int bb;
    int size;
    char *tap;
    int dim, offset; /* length and position in the concatenated vector */
    float *mean;     /* dim: training mean */
    float power;     /* signed power applied to raw values first (1 = none) */
} cls_view;

struct eng_classifier {
    int ncat;
    char **cats;
    int nbb;
    char **bb_name, **bb_checksum;
    int nviews;
    cls_view *views;
    float view_weight; /* 1/sqrt(nviews) */
    int dim;           /* sum of view dims */
    float *w;          /* dim x ncat */
    float *b;          /* ncat */
    char *recipe;      /* JSON */
    cls_ft *ft;        /* fine-tuned top of a backbone (cls_finetune.c); NULL: none.
                        * It scores backbone ft_bb at ft_size to the tail's tap,
                        * then the tail: alone (ft_mix 0; w, b and views are then
                        * kept for the file layout and the backbone list) or
                        * averaged with the linear head's probabilities (1). */
    int ft_bb, ft_size, ft_mix;
};

typedef void (*cls_chunk_fn)(void *ctx, int done, int total);

/* One feature extraction: n images through bb at size to the taps (dims
 * summing to dim), with augmentation aug (0 none, 1 flip, 2.. seeded
 * crop + maybe flip, by image index index_base + i). With cache_dir and a
 * content hash per image, hits are read from and misses written to the cache. */
typedef struct cls_extract_req {
    const eng_backbone *bb;
    int size;
    const char *const *taps;
    int ntaps, dim, aug;
    uint64_t seed;
    int index_base;
    const char *const *paths;
    char *const *hashes; /* may be NULL */
    int n;
    const char *cache_dir;
    const eng_run_opts *opts;
    int *nmiss; /* OUT, may be NULL: images not found in the cache */
    cls_chunk_fn on_chunk;
    void *chunk_ctx;
} cls_extract_req;

eng_status cls_extract(const cls_extract_req *r, float *out, eng_diag *d);

/* The taps of a backbone's feature pass: its embedding, then the extra taps
 * it has (stride-32 block, stride 16); keys gets their short names. Returns
 * how many (at most CLS_MAX_TAPS). Training and eng_cls_cache_features
 * share it, so both write the same cache files. */
#define CLS_MAX_TAPS 3
int cls_pass_taps(const eng_backbone *b, const char **taps, const char **keys);

/* Finds the model's backbones (by name and checksum) among bbs: out[i] is
 * m's backbone i; ENG_ENOTFOUND naming the one missing. */
eng_status cls_resolve_backbones(const eng_classifier *m, eng_backbone *const *bbs, int nbb,
                                 const eng_backbone **out, eng_diag *d);

/* The classifier's model file with metadata "kind" = kind and nx more
 * tensors (names, tensors borrowed): how a kind built on the classifier's
 * views and head (multilabel.c) writes its file. */
/* eng_classifier_export_onnx, or with thresholds (ncat) a multilabel
 * model's: output `scores`, a sigmoid per tag, the thresholds in metadata. */
eng_status cls_export_onnx(const eng_classifier *m, const float *thresholds,
                           eng_backbone *const *bbs, int nbb, const char *producer_version,
                           uint8_t **out, size_t *len, eng_diag *d);
eng_status cls_save_as(const eng_classifier *m, const char *kind, const char *const *xnames,
                       const eng_tensor *xt, int nx, const char *path, eng_diag *d);
/* Reads a file written by cls_save_as(kind) (its extra tensors are the
 * caller's to read). */
eng_status cls_from_file_as(const eng_modelfile *f, const char *kind, eng_classifier **out,
                            eng_diag *d);

/* Centres v with mean, L2-normalises it and scales it by weight, in place. */
/* v[j] -> sign(v[j]) |v[j]|^e: flattens the long tail of pooled ReLU
 * features, which few-shot heads fit better (e = 1 leaves v alone). */
void cls_power(float *v, int dim, float e);
void cls_normalise(float *v, int dim, const float *mean, float weight);

/* The model's feature vectors (n x m->dim, normalised) of image files;
 * rb[i] is the model's backbone i. */
eng_status cls_features(const eng_classifier *m, const eng_backbone *const *rb,
                        const char *const *paths, char *const *hashes, int n, const char *cache_dir,
                        const eng_run_opts *o, float *feat, cls_chunk_fn on_chunk, void *chunk_ctx,
                        eng_diag *d);
/* The tap m->ft starts from in bb (files from before tails: the stride-32
 * tap); NULL when bb has none. */
const char *cls_model_ft_tap(const eng_classifier *m, const eng_backbone *bb);
/* Probabilities (n x ncat) of image files: the only path predict, evaluate
 * and training's test pass take. feat is scratch of n x m->dim floats. */
eng_status cls_model_probs(const eng_classifier *m, const eng_backbone *const *rb,
                           const char *const *paths, char *const *hashes, int n,
                           const char *cache_dir, const eng_run_opts *o, float *feat, float *probs,
                           cls_chunk_fn on_chunk, void *chunk_ctx, eng_diag *d);
/* Probabilities (n x ncat) from feature vectors. */
void cls_scores(const eng_classifier *m, const float *feat, int n, float *probs);

/* Hands fn the per-image detail of an evaluation (detail.h): image k is
 * s[idx ? idx[k] : k] with probabilities probs[k] and label labels[k]. Does
 * nothing when fn is NULL or memory is short (the detail is optional). */
void cls_emit_detail(eng_eval_detail_fn fn, void *ctx, const char *const *cats, int ncat,
                     const eng_sample *s, const int *idx, int n, const float *probs,
                     const int *labels);

eng_status cls_predictions_json(const eng_classifier *m, const float *probs, const long long *ids,
                                int n, const long long *cat_ids, char **out, eng_diag *d);

/* Crop (relative x, y, w, h) and flip of augmentation aug for image index. */
void cls_aug_crop(uint64_t seed, uint64_t index, int aug, float *rx, float *ry, float *rw,
                  float *rh, int *flip);
uint64_t cls_mix(uint64_t h);

#endif
