/* cls_solver.c: the numerical heads of the classification recipe: Gram
 * matrix, Cholesky reduction, multinomial logistic regression by L-BFGS and
 * nearest class mean (see cls_int.h).
 *
 * Design: small dense problems in double precision with a fixed order of
 * operations, so a fit gives bit-identical results on every run and for any
 * thread count (only cls_gram is threaded, one output row per task).
 */
#include "cls_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cls_gram(const float *x, int n, int d, int ldx, double *g, int threads)
{
    if (threads < 1)
        threads = 1;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (int i = 0; i < n; i++) {
        const float *a = x + (size_t)i * ldx;
        for (int j = 0; j <= i; j++) {
            const float *b = x + (size_t)j * ldx;
            /* 8 float lanes summed in double: vectorises, stays accurate for
             * the unit-norm rows used here */
            float acc[8] = {0};
            int t = 0;
            for (; t + 8 <= d; t += 8)
                for (int l = 0; l < 8; l++)
                    acc[l] += a[t + l] * b[t + l];
            double s = 0;
            for (int l = 0; l < 8; l++)
                s += acc[l];
            for (; t < d; t++)
                s += (double)a[t] * b[t];
            g[(size_t)i * n + j] = s;
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            g[(size_t)i * n + j] = g[(size_t)j * n + i];
}

int cls_cholesky(double *a, int n, double jitter)
{
    for (int j = 0; j < n; j++) {
        double *rj = a + (size_t)j * n;
        double s = rj[j];
        for (int k = 0; k < j; k++)
            s -= rj[k] * rj[k];
        if (!(s > jitter))
            s += jitter;
        if (!(s > 0))
            return -1;
        double ljj = sqrt(s);
        rj[j] = ljj;
        for (int i = j + 1; i < n; i++) {
            double *ri = a + (size_t)i * n;
            double t = ri[j];
            for (int k = 0; k < j; k++)
                t -= ri[k] * rj[k];
            ri[j] = t / ljj;
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            a[(size_t)i * n + j] = 0;
    return 0;
}

void cls_solve_lt_right(const double *l, int n, double *b, int m)
{
    /* row x of X satisfies x L^T = b, i.e. L x^T = b^T: forward substitution */
    for (int r = 0; r < m; r++) {
        double *x = b + (size_t)r * n;
        for (int i = 0; i < n; i++) {
            const double *li = l + (size_t)i * n;
            double s = x[i];
            for (int k = 0; k < i; k++)
                s -= li[k] * x[k];
            x[i] = s / li[i];
        }
    }
}

void cls_solve_lt(const double *l, int n, double *b, int k)
{
    /* back substitution on L^T (upper triangular): row i of L^T is column i of L */
    for (int i = n - 1; i >= 0; i--) {
        double *bi = b + (size_t)i * k;
        for (int j = i + 1; j < n; j++) {
            double lji = l[(size_t)j * n + i];
            const double *bj = b + (size_t)j * k;
            for (int c = 0; c < k; c++)
                bi[c] -= lji * bj[c];
        }
        double lii = l[(size_t)i * n + i];
        for (int c = 0; c < k; c++)
            bi[c] /= lii;
    }
}

void cls_softmax_rows(double *s, int m, int k)
{
    for (int i = 0; i < m; i++) {
        double *r = s + (size_t)i * k;
        double mx = r[0];
        for (int c = 1; c < k; c++)
            if (r[c] > mx)
                mx = r[c];
        double sum = 0;
        for (int c = 0; c < k; c++) {
            r[c] = exp(r[c] - mx);
            sum += r[c];
        }
        for (int c = 0; c < k; c++)
            r[c] /= sum;
    }
}

static void logits(const double *z, int m, int r, const double *wb, int k, double *out)
{
    const double *b = wb + (size_t)r * k;
    for (int i = 0; i < m; i++) {
        double *o = out + (size_t)i * k;
        const double *zi = z + (size_t)i * r;
        for (int c = 0; c < k; c++)
            o[c] = b[c];
        for (int j = 0; j < r; j++) {
            double v = zi[j];
            const double *wj = wb + (size_t)j * k;
            for (int c = 0; c < k; c++)
                o[c] += v * wj[c];
        }
    }
}

void cls_logreg_predict(const double *z, int m, int r, const double *wb, int k, double *out)
{
    logits(z, m, r, wb, k, out);
    cls_softmax_rows(out, m, k);
}

double cls_log_loss(const double *p, const int *y, int m, int k)
{
    double s = 0;
    for (int i = 0; i < m; i++)
        s -= log(fmax(p[(size_t)i * k + y[i]], 1e-15));
    return m ? s / m : 0;
}

/* Objective and gradient at wb; work holds n x k doubles. */
static double objective(const double *z, int n, int r, const int *y, int k, double lambda,
                        const double *wb, double *grad, double *work)
{
    logits(z, n, r, wb, k, work);
    double f = 0;
    for (int i = 0; i < n; i++) {
        double *o = work + (size_t)i * k;
        double mx = o[0];
        for (int c = 1; c < k; c++)
            if (o[c] > mx)
                mx = o[c];
        double sum = 0;
        for (int c = 0; c < k; c++)
            sum += exp(o[c] - mx);
        double lse = mx + log(sum);
        f += lse - o[y[i]];
        for (int c = 0; c < k; c++)
            o[c] = exp(o[c] - lse) / n; /* (P - Y) / n */
        o[y[i]] -= 1.0 / n;
    }
    f /= n;
    size_t nw = (size_t)r * k;
    double reg = 0;
    for (size_t t = 0; t < nw; t++) {
        reg += wb[t] * wb[t];
        grad[t] = lambda * wb[t];
    }
    f += 0.5 * lambda * reg;
    double *gb = grad + nw;
    for (int c = 0; c < k; c++)
        gb[c] = 0;
    for (int i = 0; i < n; i++) {
        const double *zi = z + (size_t)i * r;
        const double *o = work + (size_t)i * k;
        for (int j = 0; j < r; j++) {
            double v = zi[j];
            double *gj = grad + (size_t)j * k;
            for (int c = 0; c < k; c++)
                gj[c] += v * o[c];
        }
        for (int c = 0; c < k; c++)
            gb[c] += o[c];
    }
    return f;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m)
            m = fabs(a[i]);
    return m;
}

#define LBFGS_M 8

int cls_logreg_fit(const double *z, int n, int r, const int *y, int k, double lambda, double *wb,
                   int max_iter, double tol, eng_abort_fn abort, void *abort_ctx)
{
    size_t np = (size_t)(r + 1) * k;
    double *mem = malloc(sizeof(double) * (np * (5 + 2 * LBFGS_M) + (size_t)n * k));
    if (!mem)
        return -1;
    double *g = mem, *d = g + np, *wn = d + np, *gn = wn + np, *q = gn + np;
    double *s = q + np, *yv = s + np * LBFGS_M, *work = yv + np * LBFGS_M;
    double rho[LBFGS_M], alpha[LBFGS_M];
    int head = 0, have = 0, it = 0, result = 0;
    double f = objective(z, n, r, y, k, lambda, wb, g, work);
    if (!isfinite(f)) {
        free(mem);
        return -1;
    }
    int small_steps = 0;
    for (it = 0; it < max_iter; it++) {
        if (max_abs(g, np) < tol)
            break;
        if (abort && (it & 15) == 15 && abort(abort_ctx)) {
            result = -2;
            break;
        }
        /* two-loop recursion: d = -H g */
        memcpy(q, g, np * sizeof *q);
        for (int t = 0; t < have; t++) {
            int idx = (head - 1 - t + LBFGS_M) % LBFGS_M;
            alpha[idx] = rho[idx] * dot(s + idx * np, q, np);
            for (size_t u = 0; u < np; u++)
                q[u] -= alpha[idx] * yv[idx * np + u];
        }
        double gamma;
        if (have) {
            int last = (head - 1 + LBFGS_M) % LBFGS_M;
            gamma =
                dot(s + last * np, yv + last * np, np) / dot(yv + last * np, yv + last * np, np);
        } else {
            gamma = 1.0 / fmax(1.0, sqrt(dot(g, g, np)));
        }
        for (size_t u = 0; u < np; u++)
            q[u] *= gamma;
        for (int t = have - 1; t >= 0; t--) {
            int idx = (head - 1 - t + LBFGS_M) % LBFGS_M;
            double beta = rho[idx] * dot(yv + idx * np, q, np);
            for (size_t u = 0; u < np; u++)
                q[u] += (alpha[idx] - beta) * s[idx * np + u];
        }
        for (size_t u = 0; u < np; u++)
            d[u] = -q[u];
        double dg = dot(d, g, np);
        if (!(dg < 0)) {
            /* not a descent direction: restart from steepest descent */
            have = 0;
            double gn2 = sqrt(dot(g, g, np));
            for (size_t u = 0; u < np; u++)
                d[u] = -g[u] / fmax(1.0, gn2);
            dg = dot(d, g, np);
        }
        double step = 1.0, fn = 0;
        int ok = 0;
        for (int ls = 0; ls < 40; ls++) {
            for (size_t u = 0; u < np; u++)
                wn[u] = wb[u] + step * d[u];
            fn = objective(z, n, r, y, k, lambda, wn, gn, work);
            if (isfinite(fn) && fn <= f + 1e-4 * step * dg) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok)
            break; /* no decrease possible at this precision: converged */
        /* curvature pair */
        double *sn = s + head * np, *yn = yv + head * np;
        for (size_t u = 0; u < np; u++) {
            sn[u] = wn[u] - wb[u];
            yn[u] = gn[u] - g[u];
        }
        double sy = dot(sn, yn, np);
        if (sy > 1e-16) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % LBFGS_M;
            if (have < LBFGS_M)
                have++;
        }
        double df = f - fn;
        memcpy(wb, wn, np * sizeof *wb);
        memcpy(g, gn, np * sizeof *g);
        f = fn;
        small_steps = df < 1e-12 * fmax(1.0, fabs(f)) ? small_steps + 1 : 0;
        if (small_steps >= 3)
            break;
    }
    free(mem);
    return result ? result : it;
}

void cls_ncm_fit(const double *z, int n, int r, const int *y, int k, double tau, double *wb)
{
    size_t nw = (size_t)r * k;
    memset(wb, 0, (nw + k) * sizeof *wb);
    int *cnt = calloc((size_t)k, sizeof *cnt);
    if (!cnt)
        return;
    for (int i = 0; i < n; i++) {
        cnt[y[i]]++;
        const double *zi = z + (size_t)i * r;
        for (int j = 0; j < r; j++)
            wb[(size_t)j * k + y[i]] += zi[j];
    }
    for (int c = 0; c < k; c++) {
        if (!cnt[c]) {
            wb[nw + c] = -1e4;
            continue;
        }
        double nrm = 0;
        for (int j = 0; j < r; j++) {
            double mu = wb[(size_t)j * k + c] / cnt[c];
            nrm += mu * mu;
            wb[(size_t)j * k + c] = 2 * tau * mu;
        }
        wb[nw + c] = -tau * nrm;
    }
    free(cnt);
}
