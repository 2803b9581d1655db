/* optim.c: SGD with momentum, AdamW, the warm-up + cosine learning-rate
 * schedule, and the training loop with its abort and divergence checks.
 *
 * Design: updates run serially over parameters in the order given and
 * elements in memory order (head parameters are small), and the gradient
 * norm for clipping is summed in double in that order, so a step is
 * deterministic. A non-finite gradient leaves the weights untouched and
 * reports "diverged".
 */
#include "train_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct eng_optimizer {
    eng_opt_config cfg;
    eng_param **params;
    int nparams;
    int step;
};

eng_status eng_optimizer_new(const eng_opt_config *cfg, eng_param *const *params, int nparams,
                             eng_optimizer **out, eng_diag *d)
{
    *out = NULL;
    if (!cfg || nparams < 0 || (nparams > 0 && !params))
        return eng_fail(d, ENG_EINVAL, "optimizer: missing config or params");
    if (cfg->kind != ENG_OPT_SGD && cfg->kind != ENG_OPT_ADAMW)
        return eng_fail(d, ENG_EINVAL, "optimizer: unknown kind %d", (int)cfg->kind);
    if (!(cfg->lr >= 0) || !(cfg->weight_decay >= 0) || !(cfg->momentum >= 0) ||
        cfg->momentum >= 1 || !(cfg->grad_clip >= 0) || !(cfg->min_lr_ratio >= 0))
        return eng_fail(d, ENG_EINVAL,
                        "optimizer: lr, weight decay, momentum, clip or min lr "
                        "ratio out of range");
    for (int i = 0; i < nparams; i++)
        if (!params[i])
            return eng_fail(d, ENG_EINVAL, "optimizer: params[%d] is NULL", i);
    eng_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return eng_fail(d, ENG_ENOMEM, "optimizer: out of memory");
    o->cfg = *cfg;
    if (o->cfg.beta1 == 0)
        o->cfg.beta1 = 0.9f;
    if (o->cfg.beta2 == 0)
        o->cfg.beta2 = 0.999f;
    if (o->cfg.eps == 0)
        o->cfg.eps = 1e-8f;
    o->params = malloc(sizeof *o->params * (size_t)(nparams ? nparams : 1));
    if (!o->params) {
        free(o);
        return eng_fail(d, ENG_ENOMEM, "optimizer: out of memory");
    }
    memcpy(o->params, params, sizeof *o->params * (size_t)nparams);
    o->nparams = nparams;
    *out = o;
    return ENG_OK;
}

void eng_optimizer_free(eng_optimizer *o)
{
    if (!o)
        return;
    free(o->params);
    free(o);
}

int eng_optimizer_steps(const eng_optimizer *o) { return o->step; }

float eng_lr_at(const eng_opt_config *cfg, int step)
{
    double lr = cfg->lr;
    if (cfg->warmup_steps > 0 && step < cfg->warmup_steps)
        return (float)(lr * (double)(step + 1) / (double)cfg->warmup_steps);
    if (cfg->total_steps <= 0)
        return (float)lr;
    int span = cfg->total_steps - cfg->warmup_steps;
    double prog = span > 0 ? (double)(step - cfg->warmup_steps) / (double)span : 1.0;
    if (prog > 1.0)
        prog = 1.0;
    if (prog < 0.0)
        prog = 0.0;
    double lo = lr * cfg->min_lr_ratio;
    return (float)(lo + (lr - lo) * 0.5 * (1.0 + cos(3.141592653589793 * prog)));
}

static void zero_all(eng_optimizer *o)
{
    for (int i = 0; i < o->nparams; i++)
        eng_param_zero_grad(o->params[i]);
}

eng_status eng_optimizer_step(eng_optimizer *o, eng_diag *d)
{
    const eng_opt_config *c = &o->cfg;
    double sq = 0;
    for (int i = 0; i < o->nparams; i++) {
        eng_param *p = o->params[i];
        if (p->frozen)
            continue;
        const float *g = eng_f32(p->grad);
        int64_t n = eng_tensor_numel(p->grad);
        for (int64_t k = 0; k < n; k++)
            sq += (double)g[k] * g[k];
    }
    if (!isfinite(sq)) {
        zero_all(o);
        return eng_fail(d, ENG_EDIVERGED, "diverged: gradient is not finite at step %d", o->step);
    }
    double scale = 1.0, norm = sqrt(sq);
    if (c->grad_clip > 0 && norm > c->grad_clip)
        scale = c->grad_clip / norm;
    float lr = eng_lr_at(c, o->step);
    o->step++;
    double bc1 = 1.0 - pow(c->beta1, o->step), bc2 = 1.0 - pow(c->beta2, o->step);
    for (int i = 0; i < o->nparams; i++) {
        eng_param *p = o->params[i];
        if (p->frozen)
            continue;
        int64_t n = eng_tensor_numel(p->value);
        float *w = eng_f32(p->value), *g = eng_f32(p->grad);
        float wd = p->no_decay ? 0.0f : c->weight_decay;
        int need_m = c->kind == ENG_OPT_ADAMW || c->momentum > 0, need_v = c->kind == ENG_OPT_ADAMW;
        if ((need_m && !p->m) || (need_v && !p->v)) {
            if (need_m && !p->m && (p->m = eng_alloc((size_t)n * sizeof(float))))
                memset(p->m, 0, (size_t)n * sizeof(float));
            if (need_v && !p->v && (p->v = eng_alloc((size_t)n * sizeof(float))))
                memset(p->v, 0, (size_t)n * sizeof(float));
            if ((need_m && !p->m) || (need_v && !p->v))
                return eng_fail(d, ENG_ENOMEM, "optimizer: out of memory for '%s'", p->name);
        }
        if (c->kind == ENG_OPT_SGD) {
            for (int64_t k = 0; k < n; k++) {
                float gk = (float)(g[k] * scale) + wd * w[k];
                if (c->momentum > 0) {
                    p->m[k] = c->momentum * p->m[k] + gk;
                    gk = c->nesterov ? gk + c->momentum * p->m[k] : p->m[k];
                }
                w[k] -= lr * gk;
            }
        } else {
            float b1 = c->beta1, b2 = c->beta2;
            for (int64_t k = 0; k < n; k++) {
                float gk = (float)(g[k] * scale);
                p->m[k] = b1 * p->m[k] + (1.0f - b1) * gk;
                p->v[k] = b2 * p->v[k] + (1.0f - b2) * gk * gk;
                double mh = p->m[k] / bc1, vh = p->v[k] / bc2;
                w[k] -= lr * wd * w[k];
                w[k] -= (float)(lr * mh / (sqrt(vh) + c->eps));
            }
        }
        memset(g, 0, (size_t)n * sizeof(float));
    }
    return ENG_OK;
}

eng_status eng_train_run(eng_tape *t, eng_optimizer *o, int steps, eng_train_step_fn fn, void *ctx,
                         eng_train_log_fn log, void *log_ctx, eng_abort_fn abort_fn,
                         void *abort_ctx, eng_train_result *res, eng_diag *d)
{
    eng_train_result r = {0, NAN, 0};
    eng_status st = ENG_OK;
    if (!t || !o || !fn || steps < 0) {
        st = eng_fail(d, ENG_EINVAL, "train: missing tape, optimizer or step function");
        goto out;
    }
    for (int s = 0; s < steps; s++) {
        if (abort_fn && abort_fn(abort_ctx)) {
            st = eng_fail(d, ENG_EABORTED, "train: aborted at step %d", s);
            goto out;
        }
        eng_tape_reset(t);
        eng_var *loss = NULL;
        st = fn(ctx, t, s, &loss, d);
        if (st != ENG_OK)
            goto out;
        st = eng_tape_status(t, d);
        if (st != ENG_OK)
            goto out;
        float lv = eng_var_scalar(loss);
        if (!isfinite(lv)) {
            r.diverged = 1;
            st = eng_fail(d, ENG_EDIVERGED, "diverged: loss is %g at step %d", (double)lv, s);
            goto out;
        }
        st = eng_tape_backward(t, loss, NULL, d);
        if (st != ENG_OK)
            goto out;
        float lr = eng_lr_at(&o->cfg, o->step);
        st = eng_optimizer_step(o, d);
        if (st != ENG_OK) {
            r.diverged = st == ENG_EINVAL; /* the only EINVAL of a step */
            goto out;
        }
        r.steps_done = s + 1;
        r.last_loss = lv;
        if (log)
            log(log_ctx, s, lv, lr);
    }
out:
    if (res)
        *res = r;
    return st;
}
