/* train.h: reverse-mode autograd over float32 NHWC tensors, losses and
 * optimizers, for training heads and top blocks on backbone features.
 *
 * Design: a tape (eng_tape) records every op as it runs forward; each op
 * computes its value at once and keeps what its backward needs in the
 * tape's arena. eng_tape_backward walks the tape in reverse and accumulates
 * gradients; parameter gradients land in eng_param.grad, which optimizers
 * read and clear. eng_tape_reset forgets the nodes but keeps the memory, so
 * a training step allocates nothing once warm.
 *
 * Op functions return the new node (eng_var, owned by the tape, valid until
 * eng_tape_reset/free) or NULL. Errors are sticky, as in a builder: the
 * first failing op records a status and message in the tape, later ops
 * given a NULL input return NULL quietly, and eng_tape_status /
 * eng_tape_backward report the first error. So a forward pass is written
 * as plain expressions and checked once.
 *
 * Determinism: every kernel splits its work into fixed-size blocks whose
 * boundaries do not depend on the thread count; a block is computed by one
 * thread in a fixed order, and partial sums of blocks are combined in block
 * order (BLAS runs single-threaded inside our threads). Results are
 * therefore bitwise identical for a given seed whatever the thread count.
 *
 * Shapes: images are NHWC [N,H,W,C]; convolution filters are TensorFlow's
 * HWIO [KH,KW,Cin,Cout], depthwise filters [KH,KW,C,1], dense weights
 * [K,M] applied to the last axis. Padding is TensorFlow SAME (the extra
 * row/column at stride 2 goes bottom/right). See docs/training.md.
 */
#ifndef VFS_ENGINE_TRAIN_H
#define VFS_ENGINE_TRAIN_H

#include "runtime.h"

/* ---- random numbers (splitmix64 seeding a xoshiro256**) ---- */

/* Small value type: copy it to fork a stream. */
typedef struct eng_rng {
    uint64_t s[4];
} eng_rng;

void eng_rng_seed(eng_rng *r, uint64_t seed);
uint64_t eng_rng_u64(eng_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float eng_rng_uniform(eng_rng *r);
/* Standard normal (Box-Muller, no cached second value). */
float eng_rng_normal(eng_rng *r);

/* ---- parameters ---- */

/* A trainable tensor with its gradient and optimizer state. Fields are
 * public; value and grad are owned by the param (same shape), m and v are
 * owned optimizer state allocated by the first optimizer step. */
typedef struct eng_param {
    char name[64];
    eng_tensor *value;
    eng_tensor *grad; /* accumulated by eng_tape_backward, zeroed by steps */
    float *m, *v;     /* momentum / Adam moments, NULL until used */
    int no_decay;     /* 1: no weight decay (biases, scales) */
    int frozen;       /* 1: used as a constant, gets no gradient */
} eng_param;

/* Returns in *out a new zeroed parameter (free with eng_param_free). */
eng_status eng_param_new(const char *name, int ndim, const int64_t *dim, eng_param **out,
                         eng_diag *d);
void eng_param_free(eng_param *p);
/* Fills with N(0, std^2) from the given rng. */
void eng_param_init_normal(eng_param *p, float std, eng_rng *rng);
/* He (Kaiming) normal initialisation for ReLU layers: std = sqrt(2 / fan_in). */
void eng_param_init_he(eng_param *p, int fan_in, eng_rng *rng);
/* Fills every element with v (e.g. a focal-loss prior bias). */
void eng_param_fill(eng_param *p, float v);
/* Copies n floats (must equal the element count) from src. */
eng_status eng_param_set(eng_param *p, const float *src, int64_t n, eng_diag *d);
void eng_param_zero_grad(eng_param *p);

/* ---- tape ---- */

typedef struct eng_tape eng_tape;
typedef struct eng_var eng_var;

/* Returns in *out a new tape whose kernels use at most `threads` OpenMP
 * threads (<= 0 means 1). Sets OpenBLAS to one thread (BLAS is called
 * inside our parallel regions). Free with eng_tape_free. */
eng_status eng_tape_new(int threads, eng_tape **out, eng_diag *d);
void eng_tape_free(eng_tape *t);
/* Forgets every node (their pointers become invalid), clears the error,
 * keeps the memory for the next step. */
void eng_tape_reset(eng_tape *t);
/* ENG_OK, or the first error an op recorded (message copied to d). */
eng_status eng_tape_status(const eng_tape *t, eng_diag *d);
/* Bytes of arena memory the tape holds. */
size_t eng_tape_bytes(const eng_tape *t);

/* Value of a node: borrowed until reset. */
const eng_tensor *eng_var_value(const eng_var *v);
/* Gradient of a node (same element count as its value) after backward, or
 * NULL if no gradient reached it. Borrowed until reset. */
const float *eng_var_grad(const eng_var *v);
/* The single value of a one-element node (a loss), NaN if v is NULL. */
float eng_var_scalar(const eng_var *v);

/* Leaves. An input is a constant; its data is borrowed (not copied) and
 * must stay unchanged until the tape is reset. A param leaf reads
 * p->value and accumulates into p->grad (unless p->frozen). */
eng_var *eng_tape_input(eng_tape *t, const eng_tensor *x);
eng_var *eng_tape_param(eng_tape *t, eng_param *p);

/* Backpropagates from out. seed (numel floats) is d(objective)/d(out); NULL
 * means 1 and then out must have one element. Gradients accumulate into
 * params' grad. Call once per recorded graph. */
eng_status eng_tape_backward(eng_tape *t, eng_var *out, const float *seed, eng_diag *d);

/* ---- ops (forward + backward) ---- */

/* x [N,H,W,Ci] * w [KH,KW,Ci,Co], stride 1 or 2, SAME -> [N,ceil(H/s),ceil(W/s),Co]. */
eng_var *eng_op_conv2d(eng_tape *t, eng_var *x, eng_var *w, int stride);
/* Depthwise: x [N,H,W,C] * w [KH,KW,C,1], SAME. */
eng_var *eng_op_depthwise(eng_tape *t, eng_var *x, eng_var *w, int stride);
/* x [..., K] * w [K, M] -> [..., M] (a linear layer over the last axis). */
eng_var *eng_op_dense(eng_tape *t, eng_var *x, eng_var *w);
/* x + b with b [C] over the last axis of x. */
eng_var *eng_op_bias(eng_tape *t, eng_var *x, eng_var *b);
eng_var *eng_op_relu(eng_tape *t, eng_var *x);
eng_var *eng_op_relu6(eng_tape *t, eng_var *x);
/* x * relu6(x + 3) / 6. */
eng_var *eng_op_hard_swish(eng_tape *t, eng_var *x);
/* x * k * relu6(x + 3): the tfjs CenterNet graph uses k = 0.1666259765625. */
eng_var *eng_op_hard_swish_k(eng_tape *t, eng_var *x, float k);
eng_var *eng_op_sigmoid(eng_tape *t, eng_var *x);
/* Mean over H and W, keeping dims: [N,H,W,C] -> [N,1,1,C]. */
eng_var *eng_op_mean_hw(eng_tape *t, eng_var *x);
/* Elementwise with broadcasting: a and b have the same rank and each axis
 * of either is equal to the other's or 1 (e.g. [N,H,W,C] * [N,1,1,C]). */
eng_var *eng_op_add(eng_tape *t, eng_var *a, eng_var *b);
eng_var *eng_op_mul(eng_tape *t, eng_var *a, eng_var *b);
/* x * s for a constant s. */
eng_var *eng_op_scale(eng_tape *t, eng_var *x, float s);
/* Concatenation along the last axis; all other axes equal. n >= 1. */
eng_var *eng_op_concat(eng_tape *t, eng_var *const *xs, int n);
/* Bilinear resize of [N,H,W,C] to [N,oh,ow,C], TensorFlow ResizeBilinear
 * with align_corners=false, half_pixel_centers=false. */
eng_var *eng_op_resize_bilinear(eng_tape *t, eng_var *x, int oh, int ow);
/* eng_op_resize_bilinear to twice the size. */
eng_var *eng_op_upsample2x(eng_tape *t, eng_var *x);
/* Max pooling with a k x k window, stride s, SAME (padding never wins);
 * on ties the first maximum in row-major window order gets the gradient. */
eng_var *eng_op_maxpool(eng_tape *t, eng_var *x, int k, int stride);
/* Same data, new shape of the same element count. */
eng_var *eng_op_reshape(eng_tape *t, eng_var *x, int ndim, const int64_t *dim);
/* Sum of all elements -> [1] (accumulated in double). */
eng_var *eng_op_sum(eng_tape *t, eng_var *x);

/* ---- losses (each returns a one-element node) ---- */

/* Softmax cross-entropy, mean over rows. logits [..., K]; labels holds one
 * class in 0..K-1 per row (copied). smoothing in [0, 1): the target is
 * (1 - smoothing) one-hot + smoothing / K. */
eng_var *eng_loss_softmax_xent(eng_tape *t, eng_var *logits, const int *labels, float smoothing);

/* CenterNet's penalty-reduced sigmoid focal loss on logits (the sigmoid is
 * applied inside, stably). target has the logits' shape, values in [0, 1],
 * 1 exactly at object centres (Gaussian peaks). With p = sigmoid(logit):
 *   target == 1:  -(1 - p)^alpha log p
 *   otherwise:    -(1 - target)^beta p^alpha log(1 - p)
 * summed and divided by the number of cells with target 1 (at least 1).
 * CenterNet uses alpha 2, beta 4. target is copied. */
eng_var *eng_loss_focal(eng_tape *t, eng_var *logits, const float *target, float alpha, float beta);

/* sum_r weight[r] * sum_j |pred[r,j] - target[r,j]| / norm, rows r over all
 * but the last axis. weight may be NULL (all 1); norm > 0. Copied. */
eng_var *eng_loss_l1(eng_tape *t, eng_var *pred, const float *target, const float *weight,
                     float norm);

/* Box layouts for GIoU. */
typedef enum eng_box_format {
    ENG_BOX_XYXY = 0, /* x1, y1, x2, y2 */
    ENG_BOX_LTRB = 1, /* distances left, top, right, bottom from one point:
                       * the box (-l, -t, r, b); target uses the same point */
} eng_box_format;

/* sum_r weight[r] * (1 - GIoU(pred[r], target[r])) / norm over rows of
 * pred [..., 4]. weight may be NULL; norm > 0. Copied. */
eng_var *eng_loss_giou(eng_tape *t, eng_var *pred, const float *target, const float *weight,
                       eng_box_format fmt, float norm);

/* ---- optimizers ---- */

typedef enum eng_opt_kind { ENG_OPT_SGD = 0, ENG_OPT_ADAMW = 1 } eng_opt_kind;

/* Learning rate at step s (0-based): linear warm-up from 0 to lr over
 * warmup_steps, then cosine from lr down to lr * min_lr_ratio at
 * total_steps (constant lr when total_steps <= 0). */
typedef struct eng_opt_config {
    eng_opt_kind kind;
    float lr;
    float weight_decay;      /* SGD: added to the gradient (L2); AdamW: decoupled,
                              * w -= lr * weight_decay * w */
    float momentum;          /* SGD (0 = plain) */
    int nesterov;            /* SGD */
    float beta1, beta2, eps; /* AdamW; 0 selects 0.9, 0.999, 1e-8 */
    int warmup_steps;
    int total_steps;
    float min_lr_ratio;
    float grad_clip; /* clip the global gradient norm to this; 0 = off */
} eng_opt_config;

typedef struct eng_optimizer eng_optimizer;

/* Returns in *out a new optimizer over params (the array is copied, the
 * params are borrowed and must outlive it). Free with eng_optimizer_free. */
eng_status eng_optimizer_new(const eng_opt_config *cfg, eng_param *const *params, int nparams,
                             eng_optimizer **out, eng_diag *d);
void eng_optimizer_free(eng_optimizer *o);
/* Learning rate of the given step under cfg's schedule. */
float eng_lr_at(const eng_opt_config *cfg, int step);
/* Applies one update from the params' gradients and zeroes them. Returns
 * ENG_EDIVERGED ("diverged: ...") without touching the weights when a
 * gradient is not finite. */
eng_status eng_optimizer_step(eng_optimizer *o, eng_diag *d);
/* Steps taken so far. */
int eng_optimizer_steps(const eng_optimizer *o);

/* ---- training loop ---- */

/* Builds one step's forward pass on a freshly reset tape and returns the
 * loss node in *loss (any error: return it, message in d). */
typedef eng_status (*eng_train_step_fn)(void *ctx, eng_tape *t, int step, eng_var **loss,
                                        eng_diag *d);
/* Called after each step with its loss and learning rate (may be NULL). */
typedef void (*eng_train_log_fn)(void *ctx, int step, float loss, float lr);

typedef struct eng_train_result {
    int steps_done;
    float last_loss;
    int diverged; /* 1: a loss or gradient was not finite; stopped */
} eng_train_result;

/* Runs `steps` steps: poll abort (ENG_EABORTED), reset the tape, build
 * (fn), backward, optimizer step. A non-finite loss or gradient stops with
 * ENG_EDIVERGED, res->diverged = 1 and a "diverged: ..." message. res may be
 * NULL. */
eng_status eng_train_run(eng_tape *t, eng_optimizer *o, int steps, eng_train_step_fn fn, void *ctx,
                         eng_train_log_fn log, void *log_ctx, eng_abort_fn abort_fn,
                         void *abort_ctx, eng_train_result *res, eng_diag *d);

#endif
