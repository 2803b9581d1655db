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

/* ---- fine-tuning the last backbone stage (cls_finetune.c) ----
 * The stage is the backbone's final 1x1 convolution (its embedding node:
 * weights "<node>/weights" HWIO [1,1,cin,cout] and "<node>/bias") fed by the
 * stride-32 tap, then ReLU6, mean over H and W and a dense layer to ncat. */
typedef struct cls_ft {
    int cin, cout, ncat;
    float *w, *b;   /* stage: cin x cout, cout */
    float *hw, *hb; /* dense: cout x ncat, ncat */
} cls_ft;

typedef struct cls_ft_opts {
    int epochs, batch;       /* batch <= 0: 16 */
    float lr_stage, lr_head; /* AdamW, cosine to 5% */
    float weight_decay;
    uint64_t seed;
    int threads;
    eng_abort_fn abort; /* may be NULL */
    void *abort_ctx;
} cls_ft_opts;

/* The tap feeding the stage and the stage's conv node (borrowed from bb). */
eng_status cls_ft_nodes(const eng_backbone *bb, const char **tap, const char **conv, eng_diag *d);
/* Shape of the stage input map at input size x size. */
eng_status cls_ft_map_shape(const eng_backbone *bb, int size, int *h, int *w, int *cin,
                            eng_diag *d);
/* New stage from the pretrained weights, dense layer zero. Free with cls_ft_free. */
eng_status cls_ft_init(cls_ft *s, const eng_backbone *bb, int ncat, eng_diag *d);
void cls_ft_free(cls_ft *s);
/* Stage input maps (n x h*w*cin) of image files, squash-resized to size,
 * mirrored when flip; cached in cache_dir (may be NULL). */
eng_status cls_ft_maps(const eng_backbone *bb, const char *const *paths, int n, int flip, int size,
                       const char *cache_dir, int threads, float *out, eng_diag *d);
/* Trains s in place on maps (n x h*w*cin) with labels y; epoch_loss (may be
 * NULL, o->epochs floats) gets each epoch's mean training loss.
 * Deterministic for o->seed whatever o->threads. */
eng_status cls_ft_train(cls_ft *s, const float *maps, int n, int h, int w, const int *y,
                        const cls_ft_opts *o, float *epoch_loss, eng_diag *d);
/* Probabilities (n x ncat) of maps: the same forward pass as training. */
eng_status cls_ft_probs(const cls_ft *s, const float *maps, int n, int h, int w, int threads,
                        float *probs, eng_diag *d);
/* The stage as 4 model-file tensors borrowing s (names static); returns 4. */
int cls_ft_tensors(const cls_ft *s, const char **names, eng_tensor *t);
/* Reads the stage from a model file; *present = 0 (s empty, ENG_OK) when
 * the file has none (older files). ENG_EFORMAT when its tensors are malformed. */
eng_status cls_ft_from_file(const eng_modelfile *f, int ncat, cls_ft *s, int *present, eng_diag *d);
/* Cross-validated probabilities of a fine-tuned stage: maps holds 2n rows,
 * the n images then their mirrored copies; fold[i] < 0 means always trained
 * on; folds are grouped into at most CLS_FT_MAX_GROUPS groups (fold %
 * groups), each group validated by a stage trained on the other images and
 * their mirrors. oof (n x ncat) is written for the rows with fold >= 0. */
#define CLS_FT_MAX_GROUPS 4
eng_status cls_ft_cv(const eng_backbone *bb, int ncat, const float *maps, int n, int h, int w,
                     const int *y, const int *fold, int nfolds, const cls_ft_opts *o, double *oof,
                     eng_diag *d);

#endif
