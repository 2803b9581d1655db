/* cls_int.h: private pieces of the classification recipe shared between
 * classify.c (search, model, I/O) and cls_solver.c (the numerical heads).
 *
 * The heads work on a "reduced design" Z (n x r, row-major doubles): either the
 * features themselves (primal) or, when there are fewer training rows than
 * feature dimensions, the Cholesky factor of their Gram matrix (Z Z^T = X X^T),
 * which gives exactly the same logistic-regression solution in far fewer
 * dimensions. All routines are sequential and deterministic; the caller
 * parallelises over independent fits.
 */
#ifndef VFS_ENGINE_CLS_INT_H
#define VFS_ENGINE_CLS_INT_H

#include "classify.h"

#include <cjson/cJSON.h>

/* G (n x n, row-major, full) = X X^T for X n x d (row stride ldx floats),
 * accumulated in double. Parallel over rows with `threads` OpenMP threads;
 * the result does not depend on the thread count. */
void cls_gram(const float *x, int n, int d, int ldx, double *g, int threads);

/* In-place lower Cholesky factor of the n x n SPD matrix a (row-major; the
 * upper triangle is zeroed). A diagonal that is not positive gets `jitter`
 * added (small ridge for rank-deficient Gram matrices). Returns 0 on success. */
int cls_cholesky(double *a, int n, double jitter);

/* Solves X L^T = B for X (m x n) given lower-triangular L (n x n); B is
 * m x n row-major, overwritten by X. */
void cls_solve_lt_right(const double *l, int n, double *b, int m);

/* Solves L^T X = B for X (n x k) in place (B n x k row-major). */
void cls_solve_lt(const double *l, int n, double *b, int k);

/* Multinomial logistic regression with L2 penalty lambda/2 ||W||^2 (bias
 * not penalised), mean cross-entropy over the n rows of z (n x r), labels
 * y[i] in 0..k-1. wb holds W (r x k row-major) then b (k): input is the
 * starting point (zeros or a warm start), output the solution. L-BFGS with
 * backtracking; stops when the largest gradient entry is below tol or after
 * max_iter iterations. Returns the number of iterations, or -1 when out of
 * memory or the objective stopped being finite. abort (may be NULL) is
 * polled every 16 iterations: returns -2 when it asks to stop. */
int cls_logreg_fit(const double *z, int n, int r, const int *y, int k, double lambda, double *wb,
                   int max_iter, double tol, eng_abort_fn abort, void *abort_ctx);

/* Scores rows of z (m x r) with W,b: out (m x k) = softmax(z W + b). */
void cls_logreg_predict(const double *z, int m, int r, const double *wb, int k, double *out);

/* Row-wise softmax in place (m x k). */
void cls_softmax_rows(double *s, int m, int k);

/* Nearest class mean on z: wb (r x k then k) gets W = 2 tau mu_c, b_c = -tau
 * ||mu_c||^2 so softmax(z W + b) = softmax(-tau ||z - mu_c||^2). Classes
 * without rows get a very low bias. */
void cls_ncm_fit(const double *z, int n, int r, const int *y, int k, double tau, double *wb);

/* Mean cross-entropy of probabilities p (m x k) for labels y. */
double cls_log_loss(const double *p, const int *y, int m, int k);

/* ---- fine-tuning the top of a backbone (cls_finetune.c) ----
 * The backbone is cut at a tap: the part below runs in the runtime (its map
 * is cached per image and augmented copy), the tail above it (convolutions,
 * depthwise convolutions and residual adds up to the embedding node, rebuilt
 * from the graph) trains on the tape, followed by global average pooling and
 * a dense layer to ncat. */
#define CLS_FT_MAX_NODES 96
#define CLS_FT_MAX_TAPS 8

typedef struct cls_ft_node {
    char name[96];   /* the graph node it came from */
    char wname[128]; /* model-file tensor names (finetune.NAME.weights, .bias) */
    char bname[128];
    eng_node_kind kind; /* ENG_NODE_CONV, _DEPTHWISE or _ADD */
    int in[2];          /* -1: the tap's map; else an earlier node */
    int stride;
    eng_act act;
    int64_t wdim[4]; /* conv [KH,KW,Cin,Cout]; depthwise [KH,KW,C,1] */
    float *w, *b;    /* NULL for an add */
} cls_ft_node;

typedef struct cls_ft {
    char tap[96]; /* the tail's input node */
    int nnodes;
    cls_ft_node *node; /* topological order; the last is the embedding */
    int cin, cout, ncat;
    float *hw, *hb; /* dense: cout x ncat, ncat */
} cls_ft;

typedef struct cls_ft_opts {
    int epochs, batch;       /* passes over the rows; batch <= 0: 16 */
    float lr_stage, lr_head; /* AdamW, warm-up then cosine to 5% */
    float weight_decay;
    float lp_lambda; /* > 0: the dense layer starts from a logistic regression
                        on the pretrained tail's pooled features (L2 lambda) */
    uint64_t seed;
    int threads;
    eng_abort_fn abort; /* may be NULL */
    void *abort_ctx;
} cls_ft_opts;

/* Taps the tail may start from, shallowest first (the input of the
 * embedding convolution, then each block boundary down to the stride-16
 * tap, then the network's input after its normalisation when the tape can
 * record everything above it: the whole network); names borrowed from bb.
 * Returns how many (0: bb cannot be
 * fine-tuned). tail_gflop[i] (may be NULL) gets the tail's forward GFLOP
 * per image at size. */
int cls_ft_taps(const eng_backbone *bb, int size, const char **taps, double *tail_gflop, int max);
/* Shape of the map at tap for input size x size. */
eng_status cls_ft_map_shape(const eng_backbone *bb, const char *tap, int size, int *h, int *w,
                            int *cin, eng_diag *d);
/* New tail from tap with the pretrained weights, dense layer zero. Free
 * with cls_ft_free. */
eng_status cls_ft_init(cls_ft *s, const eng_backbone *bb, const char *tap, int ncat, eng_diag *d);
void cls_ft_free(cls_ft *s);
/* Maps at tap (n x h*w*cin) of image files squash-resized to size, as copy
 * `copy`: 0 the image, 1 its mirror, >= 2 a random resized crop (seeded by
 * seed and the file's content) with colour jitter. Cached in cache_dir (may
 * be NULL). */
eng_status cls_ft_maps(const eng_backbone *bb, const char *tap, const char *const *paths, int n,
                       int copy, uint64_t seed, int size, const char *cache_dir, int threads,
                       float *out, eng_diag *d);
/* Trains s in place on maps (n x h*w*cin) with labels y; epoch_loss (may be
 * NULL, o->epochs floats) gets each epoch's mean training loss.
 * Deterministic for o->seed whatever o->threads. */
eng_status cls_ft_train(cls_ft *s, const float *maps, int n, int h, int w, const int *y,
                        const cls_ft_opts *o, float *epoch_loss, eng_diag *d);
/* Probabilities (n x ncat) of maps: the same forward pass as training. */
eng_status cls_ft_probs(const cls_ft *s, const float *maps, int n, int h, int w, int threads,
                        float *probs, eng_diag *d);
/* The tail as model-file tensors borrowing s; names and t need room for
 * 2 * nnodes + 2. Returns how many. */
int cls_ft_tensors(const cls_ft *s, const char **names, eng_tensor *t);
/* The tail's structure for the model file's "finetune" metadata (adds
 * "tap" and "nodes" to o). 0 on success. */
int cls_ft_describe(const cls_ft *s, cJSON *o);
/* Reads the tail from a model file given its "finetune" metadata (meta may
 * be NULL); *present = 0 (s empty, ENG_OK) when the file has none. Files
 * from before tails hold one 1x1 stage ("finetune.stage.*") fed by the
 * stride-32 tap: they load as a one-node tail with tap "" (the caller
 * substitutes the backbone's stride-32 tap). ENG_EFORMAT when malformed. */
eng_status cls_ft_from_file(const eng_modelfile *f, const cJSON *meta, int ncat, cls_ft *s,
                            int *present, eng_diag *d);
/* Cross-validated probabilities of a fine-tuned tail: maps holds ncopies x n
 * rows (copy-major: row c * n + i); fold[i] < 0 means always trained on;
 * folds are grouped into at most CLS_FT_MAX_GROUPS groups (fold % groups),
 * each group validated (copy 0) by a tail trained on every copy of the
 * other images. oof (n x ncat) is written for the rows with fold >= 0. */
#define CLS_FT_MAX_GROUPS 4
/* ---- a fine-tuning candidate run elsewhere (cls_ftjob.c) ----
 * The job (JSON text, malloc'd; NULL when out of memory) that
 * eng_cls_finetune_run runs: the candidate cls_ft_cv would cross-validate
 * here (bb's tail from tap at size, ncopies copies of n images, labels y,
 * the first repeat's folds) and the final fit with the same options. */
char *cls_ftjob_spec(const eng_backbone *bb, const char *tap, int size, int ncopies, int ncat,
                     const int *y, const int *fold, int n, int nfolds, const cls_ft_opts *o);
/* Reads a job's result: oof (n x ncat) gets the held-out probabilities of
 * the rows with fold[i] >= 0 (others untouched, as cls_ft_cv leaves them),
 * tail the tail trained on every image (free with cls_ft_free).
 * ENG_EFORMAT when res does not fit the candidate. */
eng_status cls_ftjob_result(const void *res, size_t len, const eng_backbone *bb, const char *tap,
                            int n, int ncat, const int *fold, double *oof, cls_ft *tail,
                            eng_diag *d);
eng_status cls_ft_cv(const eng_backbone *bb, const char *tap, int ncat, const float *maps, int n,
                     int ncopies, int h, int w, const int *y, const int *fold, int nfolds,
                     const cls_ft_opts *o, double *oof, eng_diag *d);

#endif
