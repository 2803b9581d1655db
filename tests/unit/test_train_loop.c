/* test_train_loop.c: optimizers, the learning-rate schedule and the
 * training loop of engine/train: single steps checked against values
 * worked by hand, a tiny conv net trained on synthetic images to near-zero
 * loss twice (bitwise identical) and with 1 and 2 threads (identical too),
 * a small heatmap + box head trained with focal and GIoU losses, abort and
 * divergence. */
#include "check.h"
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static eng_param *param1(const char *name, int n, const float *v)
{
    int64_t dim[1] = {n};
    eng_param *p = NULL;
    eng_diag d;
    CHECK(eng_param_new(name, 1, dim, &p, &d) == ENG_OK);
    CHECK(eng_param_set(p, v, n, &d) == ENG_OK);
    return p;
}

static void test_schedule(void)
{
    eng_opt_config c = {.kind = ENG_OPT_SGD, .lr = 1.0f, .warmup_steps = 10, .total_steps = 110};
    CHECK_NEAR(eng_lr_at(&c, 0), 0.1, 1e-7);
    CHECK_NEAR(eng_lr_at(&c, 9), 1.0, 1e-7);
    CHECK_NEAR(eng_lr_at(&c, 10), 1.0, 1e-7);
    CHECK_NEAR(eng_lr_at(&c, 60), 0.5, 1e-6);
    CHECK_NEAR(eng_lr_at(&c, 110), 0.0, 1e-7);
    CHECK_NEAR(eng_lr_at(&c, 500), 0.0, 1e-7);
    c.min_lr_ratio = 0.1f;
    CHECK_NEAR(eng_lr_at(&c, 60), 0.55, 1e-6);
    CHECK_NEAR(eng_lr_at(&c, 110), 0.1, 1e-6);
    c.total_steps = 0;
    CHECK_NEAR(eng_lr_at(&c, 1000), 1.0, 1e-7);
}

static void test_sgd(void)
{
    float one = 1.0f;
    eng_param *p = param1("w", 1, &one);
    eng_opt_config c = {.kind = ENG_OPT_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f};
    eng_optimizer *o = NULL;
    eng_diag d;
    CHECK(eng_optimizer_new(&c, &p, 1, &o, &d) == ENG_OK);
    eng_f32(p->grad)[0] = 0.5f;
    CHECK(eng_optimizer_step(o, &d) == ENG_OK);
    /* buf = 0.5 + 0.01 * 1 = 0.51; w = 1 - 0.1 * 0.51 */
    CHECK_NEAR(eng_f32(p->value)[0], 0.949, 1e-6);
    CHECK(eng_f32(p->grad)[0] == 0.0f); /* step clears the gradient */
    eng_f32(p->grad)[0] = 0.5f;
    CHECK(eng_optimizer_step(o, &d) == ENG_OK);
    /* g = 0.5 + 0.01 * 0.949; buf = 0.9 * 0.51 + g; w -= 0.1 * buf */
    CHECK_NEAR(eng_f32(p->value)[0], 0.949 - 0.1 * (0.9 * 0.51 + 0.5 + 0.00949), 1e-6);
    CHECK(eng_optimizer_steps(o) == 2);
    eng_optimizer_free(o);

    /* global-norm clipping: gradient (3, 4) clipped to norm 1 */
    float z[2] = {0, 0};
    eng_param *q = param1("q", 2, z);
    eng_opt_config c2 = {.kind = ENG_OPT_SGD, .lr = 1.0f, .grad_clip = 1.0f};
    CHECK(eng_optimizer_new(&c2, &q, 1, &o, &d) == ENG_OK);
    eng_f32(q->grad)[0] = 3;
    eng_f32(q->grad)[1] = 4;
    CHECK(eng_optimizer_step(o, &d) == ENG_OK);
    CHECK_NEAR(eng_f32(q->value)[0], -0.6, 1e-6);
    CHECK_NEAR(eng_f32(q->value)[1], -0.8, 1e-6);
    /* a non-finite gradient: refused, weights untouched */
    eng_f32(q->grad)[0] = NAN;
    CHECK(eng_optimizer_step(o, &d) == ENG_EDIVERGED);
    CHECK_MSG(strcmp(d.msg, "diverged: gradient is not finite at step 1") == 0, "%s", d.msg);
    CHECK_NEAR(eng_f32(q->value)[0], -0.6, 1e-6);
    eng_optimizer_free(o);
    eng_param_free(p);
    eng_param_free(q);
}

static void test_adamw(void)
{
    float one = 1.0f;
    eng_param *p[2] = {param1("w", 1, &one), param1("b", 1, &one)};
    p[1]->no_decay = 1;
    eng_opt_config c = {.kind = ENG_OPT_ADAMW, .lr = 0.1f, .weight_decay = 0.1f};
    eng_optimizer *o = NULL;
    eng_diag d;
    CHECK(eng_optimizer_new(&c, p, 2, &o, &d) == ENG_OK);
    eng_f32(p[0]->grad)[0] = 0.5f;
    eng_f32(p[1]->grad)[0] = -2.0f;
    CHECK(eng_optimizer_step(o, &d) == ENG_OK);
    /* first Adam step moves by lr * sign(g); decoupled decay lr * wd * w */
    CHECK_NEAR(eng_f32(p[0]->value)[0], 1.0 - 0.01 - 0.1, 1e-6);
    CHECK_NEAR(eng_f32(p[1]->value)[0], 1.0 + 0.1, 1e-6);
    /* second step, same gradient: m/sqrt(v) stays sign(g) after correction */
    eng_f32(p[0]->grad)[0] = 0.5f;
    CHECK(eng_optimizer_step(o, &d) == ENG_OK);
    CHECK_NEAR(eng_f32(p[0]->value)[0], 0.89 - 0.1 * 0.1 * 0.89 - 0.1, 1e-6);
    eng_optimizer_free(o);
    eng_param_free(p[0]);
    eng_param_free(p[1]);
    eng_opt_config bad = {.kind = ENG_OPT_SGD, .lr = 0.1f, .momentum = 1.5f};
    CHECK(eng_optimizer_new(&bad, NULL, 0, &o, &d) == ENG_EINVAL && o == NULL);
}

/* ---- a tiny conv net on synthetic images ---- */

enum { NIMG = 16, SZ = 8, NCLS = 4 };

typedef struct net {
    eng_param *c1, *b1, *dw, *c2, *b2;
    eng_tensor *images;
    int labels[NIMG];
} net;

/* Images with a bright 3x3 blob in the quadrant named by the label, on
 * noise; the blob position inside the quadrant varies. */
static void make_data(net *n, uint64_t seed)
{
    int64_t dim[4] = {NIMG, SZ, SZ, 1};
    n->images = eng_tensor_new(ENG_F32, 4, dim);
    eng_rng r;
    eng_rng_seed(&r, seed);
    float *x = eng_f32(n->images);
    for (int i = 0; i < NIMG; i++) {
        int k = i % NCLS;
        n->labels[i] = k;
        for (int p = 0; p < SZ * SZ; p++)
            x[i * SZ * SZ + p] = 0.3f * eng_rng_uniform(&r);
        int oy = (k / 2) * 4 + (int)(eng_rng_u64(&r) % 2),
            ox = (k % 2) * 4 + (int)(eng_rng_u64(&r) % 2);
        for (int y = 0; y < 3; y++)
            for (int xx = 0; xx < 3; xx++)
                x[i * SZ * SZ + (oy + y) * SZ + ox + xx] = 1.0f;
    }
}

static eng_param *mk(const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t dd)
{
    int64_t dim[4] = {a, b, c, dd};
    eng_param *p = NULL;
    eng_diag d;
    CHECK(eng_param_new(name, ndim, dim, &p, &d) == ENG_OK);
    return p;
}

static void net_init(net *n, uint64_t seed)
{
    eng_rng r;
    eng_rng_seed(&r, seed);
    n->c1 = mk("c1", 4, 3, 3, 1, 8);
    n->b1 = mk("b1", 1, 8, 0, 0, 0);
    n->dw = mk("dw", 4, 3, 3, 8, 1);
    n->c2 = mk("c2", 4, 1, 1, 8, NCLS);
    n->b2 = mk("b2", 1, NCLS, 0, 0, 0);
    n->b1->no_decay = n->b2->no_decay = 1;
    eng_param_init_he(n->c1, 9, &r);
    eng_param_init_he(n->dw, 9, &r);
    eng_param_init_he(n->c2, 8, &r);
    make_data(n, seed + 1);
}

static void net_free(net *n)
{
    eng_param_free(n->c1);
    eng_param_free(n->b1);
    eng_param_free(n->dw);
    eng_param_free(n->c2);
    eng_param_free(n->b2);
    eng_tensor_free(n->images);
}

static eng_status net_step(void *ctx, eng_tape *t, int step, eng_var **loss, eng_diag *d)
{
    (void)step;
    (void)d;
    net *n = ctx;
    eng_var *x = eng_tape_input(t, n->images);
    x = eng_op_relu(t, eng_op_bias(t, eng_op_conv2d(t, x, eng_tape_param(t, n->c1), 1),
                                   eng_tape_param(t, n->b1)));
    x = eng_op_hard_swish(t, eng_op_depthwise(t, x, eng_tape_param(t, n->dw), 2));
    x = eng_op_bias(t, eng_op_conv2d(t, x, eng_tape_param(t, n->c2), 1), eng_tape_param(t, n->b2));
    x = eng_op_mean_hw(t, x);
    *loss = eng_loss_softmax_xent(t, x, n->labels, 0.0f);
    return ENG_OK;
}

typedef struct trace {
    float loss[400];
    int n;
} trace;

static void log_loss(void *ctx, int step, float loss, float lr)
{
    (void)lr;
    trace *tr = ctx;
    if (step < 400)
        tr->loss[step] = loss;
    tr->n = step + 1;
}

/* Trains from seed; returns the final loss, fills the trace and a copy of
 * all weights. */
static float train_once(eng_opt_kind kind, int threads, uint64_t seed, int steps, trace *tr,
                        float *weights)
{
    net n;
    net_init(&n, seed);
    eng_param *ps[5] = {n.c1, n.b1, n.dw, n.c2, n.b2};
    eng_opt_config c = {.kind = kind,
                        .lr = kind == ENG_OPT_ADAMW ? 0.03f : 0.1f,
                        .momentum = 0.9f,
                        .weight_decay = 1e-4f,
                        .warmup_steps = 10,
                        .total_steps = steps};
    eng_optimizer *o = NULL;
    eng_tape *t = NULL;
    eng_diag d = {{0}};
    CHECK(eng_optimizer_new(&c, ps, 5, &o, &d) == ENG_OK);
    CHECK(eng_tape_new(threads, &t, &d) == ENG_OK);
    eng_train_result res;
    memset(tr, 0, sizeof *tr);
    eng_status st = eng_train_run(t, o, steps, net_step, &n, log_loss, tr, NULL, NULL, &res, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    CHECK(res.steps_done == steps && !res.diverged);
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        size_t cnt = (size_t)eng_tensor_numel(ps[i]->value);
        memcpy(weights + off, ps[i]->value->data, cnt * sizeof(float));
        off += cnt;
    }
    eng_tape_free(t);
    eng_optimizer_free(o);
    net_free(&n);
    return res.last_loss;
}

#define NW (72 + 8 + 72 + 32 + 4)

static void test_tiny_net(void)
{
    static trace a, b, c;
    float wa[NW], wb[NW], wc[NW];
    float la = train_once(ENG_OPT_ADAMW, 2, 7, 300, &a, wa);
    printf("adamw: loss %.4f at step 0, %.6f at step 300\n", a.loss[0], la);
    CHECK(a.loss[0] > 1.0f);
    CHECK_MSG(la < 0.01f, "adamw final loss %g", la);
    float lb = train_once(ENG_OPT_ADAMW, 2, 7, 300, &b, wb);
    CHECK(la == lb);
    CHECK(memcmp(a.loss, b.loss, sizeof a.loss) == 0);
    CHECK(memcmp(wa, wb, sizeof wa) == 0);
    /* the same with one thread: blocks do not depend on the thread count */
    float lc = train_once(ENG_OPT_ADAMW, 1, 7, 300, &c, wc);
    CHECK(lc == la);
    CHECK(memcmp(wa, wc, sizeof wa) == 0);
    /* another seed gives other weights */
    train_once(ENG_OPT_ADAMW, 2, 8, 50, &c, wc);
    CHECK(memcmp(wa, wc, sizeof wa) != 0);
    float ls = train_once(ENG_OPT_SGD, 2, 7, 300, &a, wa);
    printf("sgd momentum: loss %.4f at step 0, %.6f at step 300\n", a.loss[0], ls);
    CHECK_MSG(ls < 0.01f, "sgd final loss %g", ls);
}

/* ---- a CenterNet-style head: heatmap (focal) and boxes (GIoU, L1) ---- */

enum { HN = 4, HS = 16, HC = 8 };

typedef struct head {
    eng_tensor *feat;
    float heat[HN * HS * HS * 2], box[HN * HS * HS * 4], wt[HN * HS * HS];
    eng_param *dw, *pw, *pb, *bw, *bb;
} head;

static eng_status head_step(void *ctx, eng_tape *t, int step, eng_var **loss, eng_diag *d)
{
    (void)step;
    (void)d;
    head *h = ctx;
    eng_var *f = eng_tape_input(t, h->feat);
    eng_var *y = eng_op_relu6(t, eng_op_depthwise(t, f, eng_tape_param(t, h->dw), 1));
    eng_var *logit =
        eng_op_bias(t, eng_op_conv2d(t, y, eng_tape_param(t, h->pw), 1), eng_tape_param(t, h->pb));
    eng_var *ltrb =
        eng_op_scale(t,
                     eng_op_relu(t, eng_op_bias(t, eng_op_conv2d(t, y, eng_tape_param(t, h->bw), 1),
                                                eng_tape_param(t, h->bb))),
                     4.0f);
    eng_var *lf = eng_loss_focal(t, logit, h->heat, 2, 4);
    eng_var *lg = eng_loss_giou(t, ltrb, h->box, h->wt, ENG_BOX_LTRB, HN * 2.0f);
    *loss = eng_op_add(t, lf, lg);
    return ENG_OK;
}

static void test_head(void)
{
    head *h = calloc(1, sizeof *h);
    eng_rng r;
    eng_rng_seed(&r, 3);
    int64_t fd[4] = {HN, HS, HS, HC};
    h->feat = eng_tensor_new(ENG_F32, 4, fd);
    float *f = eng_f32(h->feat);
    for (int64_t i = 0; i < eng_tensor_numel(h->feat); i++)
        f[i] = 0.2f * eng_rng_uniform(&r);
    /* two objects per image, class 0 or 1: a feature signature at the
     * centre saying class and size; Gaussian heatmap; LTRB targets at the
     * centre only */
    for (int i = 0; i < HN; i++)
        for (int o = 0; o < 2; o++) {
            int cx = 3 + (int)(eng_rng_u64(&r) % 10), cy = o * 8 + 2 + (int)(eng_rng_u64(&r) % 4);
            int cls = (i + o) % 2;
            float size = 1.0f + 3.0f * eng_rng_uniform(&r);
            float *fc = f + ((i * HS + cy) * HS + cx) * HC;
            fc[cls] = 1.0f;
            fc[2] = size / 4;
            fc[3] = 1.0f;
            for (int y = 0; y < HS; y++)
                for (int x = 0; x < HS; x++) {
                    float g = expf(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 2.0f);
                    float *hp = h->heat + ((i * HS + y) * HS + x) * 2 + cls;
                    *hp = fmaxf(*hp, g);
                }
            int cell = (i * HS + cy) * HS + cx;
            for (int j = 0; j < 4; j++)
                h->box[cell * 4 + j] = size;
            h->wt[cell] = 1.0f;
        }
    int64_t dwd[4] = {3, 3, HC, 1}, pwd[4] = {1, 1, HC, 2}, bwd[4] = {1, 1, HC, 4};
    int64_t pbd[1] = {2}, bbd[1] = {4};
    eng_diag d;
    eng_param_new("dw", 4, dwd, &h->dw, &d);
    eng_param_new("pw", 4, pwd, &h->pw, &d);
    eng_param_new("pb", 1, pbd, &h->pb, &d);
    eng_param_new("bw", 4, bwd, &h->bw, &d);
    eng_param_new("bb", 1, bbd, &h->bb, &d);
    eng_param_init_he(h->dw, 9, &r);
    eng_param_init_he(h->pw, HC, &r);
    eng_param_init_he(h->bw, HC, &r);
    eng_param_fill(h->pb, -2.19f); /* CenterNet's prior: sigmoid = 0.1 */
    eng_param_fill(h->bb, 0.5f);
    eng_param *ps[5] = {h->dw, h->pw, h->pb, h->bw, h->bb};
    eng_opt_config c = {.kind = ENG_OPT_ADAMW,
                        .lr = 0.05f,
                        .warmup_steps = 5,
                        .total_steps = 200,
                        .weight_decay = 1e-4f,
                        .grad_clip = 10.0f};
    eng_optimizer *o = NULL;
    eng_tape *t = NULL;
    eng_optimizer_new(&c, ps, 5, &o, &d);
    eng_tape_new(2, &t, &d);
    static trace tr;
    eng_train_result res;
    eng_status st = eng_train_run(t, o, 200, head_step, h, log_loss, &tr, NULL, NULL, &res, &d);
    CHECK_MSG(st == ENG_OK, "%s", d.msg);
    printf("heatmap + box head: loss %.4f at step 0, %.4f at step 200\n", tr.loss[0],
           res.last_loss);
    CHECK_MSG(res.last_loss < tr.loss[0] / 5, "head loss %g -> %g", tr.loss[0], res.last_loss);
    eng_tape_free(t);
    eng_optimizer_free(o);
    for (int i = 0; i < 5; i++)
        eng_param_free(ps[i]);
    eng_tensor_free(h->feat);
    free(h);
}

/* ---- abort and divergence ---- */

static int abort_after(void *ctx)
{
    int *calls = ctx;
    return ++*calls > 3;
}

static eng_status null_param_step(void *ctx, eng_tape *t, int step, eng_var **loss, eng_diag *d)
{
    (void)step;
    (void)d;
    eng_var *x = eng_tape_input(t, ctx);
    *loss = eng_op_sum(t, eng_op_mul(t, x, eng_tape_param(t, NULL)));
    return ENG_OK;
}

static void test_abort_diverge(void)
{
    net n;
    net_init(&n, 1);
    eng_param *ps[5] = {n.c1, n.b1, n.dw, n.c2, n.b2};
    eng_opt_config c = {.kind = ENG_OPT_SGD, .lr = 0.1f};
    eng_optimizer *o = NULL;
    eng_tape *t = NULL;
    eng_diag d = {{0}};
    eng_optimizer_new(&c, ps, 5, &o, &d);
    eng_tape_new(1, &t, &d);
    int calls = 0;
    eng_train_result res;
    CHECK(eng_train_run(t, o, 100, net_step, &n, NULL, NULL, abort_after, &calls, &res, &d) ==
          ENG_EABORTED);
    CHECK(res.steps_done == 3);
    CHECK_MSG(strcmp(d.msg, "train: aborted at step 3") == 0, "%s", d.msg);
    /* an op error inside the step function comes back as the tape's error */
    int64_t one[1] = {1};
    eng_tensor *x = eng_tensor_new(ENG_F32, 1, one);
    CHECK(eng_train_run(t, o, 5, null_param_step, x, NULL, NULL, NULL, NULL, &res, &d) ==
          ENG_EINVAL);
    CHECK_MSG(strcmp(d.msg, "param: NULL") == 0, "%s", d.msg);
    CHECK(!res.diverged && res.steps_done == 0);
    eng_tensor_free(x);
    eng_tape_free(t);
    eng_optimizer_free(o);
    net_free(&n);
}

static eng_status nan_loss_step(void *ctx, eng_tape *t, int step, eng_var **loss, eng_diag *d)
{
    (void)step;
    (void)d;
    eng_var *w = eng_tape_param(t, ctx);
    *loss = eng_op_sum(t, eng_op_scale(t, w, step >= 2 ? NAN : 1.0f));
    return ENG_OK;
}

static void test_diverged(void)
{
    float one = 1.0f;
    eng_param *p = param1("w", 1, &one);
    eng_opt_config c = {.kind = ENG_OPT_SGD, .lr = 0.1f};
    eng_optimizer *o = NULL;
    eng_tape *t = NULL;
    eng_diag d;
    eng_optimizer_new(&c, &p, 1, &o, &d);
    eng_tape_new(1, &t, &d);
    eng_train_result res;
    CHECK(eng_train_run(t, o, 10, nan_loss_step, p, NULL, NULL, NULL, NULL, &res, &d) ==
          ENG_EDIVERGED);
    CHECK(res.diverged == 1 && res.steps_done == 2);
    CHECK_MSG(strcmp(d.msg, "diverged: loss is nan at step 2") == 0, "%s", d.msg);
    CHECK_NEAR(eng_f32(p->value)[0], 0.8, 1e-6); /* two good steps of -0.1 */
    eng_tape_free(t);
    eng_optimizer_free(o);
    eng_param_free(p);
}

int main(void)
{
    test_schedule();
    test_sgd();
    test_adamw();
    test_tiny_net();
    test_head();
    test_abort_diverge();
    test_diverged();
    return check_report("test_train_loop");
}
