/* test_classify_solver.c: the classification heads on plain arrays: L-BFGS
 * logistic regression reaches a stationary point, the Cholesky-reduced
 * (kernel) fit predicts exactly like the primal fit, nearest class mean
 * equals its distance form, and the Cholesky helpers solve what they say. */
#include "check.h"
#include "cls_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double urand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 65536.0;
}

/* n points in d dims, k classes, class means apart; rows L2-normalised. */
static void make_data(int n, int d, int k, unsigned seed, float *x, int *y)
{
    unsigned s = seed;
    for (int i = 0; i < n; i++) {
        y[i] = i % k;
        double nrm = 0;
        for (int j = 0; j < d; j++) {
            double v = urand(&s) - 0.5 + (j % k == y[i] ? 0.6 : 0.0);
            x[i * d + j] = (float)v;
            nrm += v * v;
        }
        for (int j = 0; j < d; j++)
            x[i * d + j] = (float)(x[i * d + j] / sqrt(nrm));
    }
}

static void test_logreg_kernel_equals_primal(void)
{
    enum { N = 30, D = 50, K = 3, M = 7 };
    float x[N * D], xt[M * D];
    int y[N], yt[M];
    make_data(N, D, K, 1, x, y);
    make_data(M, D, K, 99, xt, yt);
    double lambda = 1.0 / (8.0 * N);
    /* primal */
    double *z = malloc(sizeof(double) * N * D), *zt = malloc(sizeof(double) * M * D);
    for (int i = 0; i < N * D; i++)
        z[i] = x[i];
    for (int i = 0; i < M * D; i++)
        zt[i] = xt[i];
    double *wb = calloc((D + 1) * K, sizeof *wb);
    int it = cls_logreg_fit(z, N, D, y, K, lambda, wb, 2000, 1e-9, NULL, NULL);
    CHECK(it > 0);
    double pp[M * K];
    cls_logreg_predict(zt, M, D, wb, K, pp);
    /* kernel: G = X X^T, L = chol(G), Z = L, Zt = Gt L^-T */
    double *g = malloc(sizeof(double) * N * N), *gt = malloc(sizeof(double) * M * N);
    cls_gram(x, N, D, D, g, 2);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int t = 0; t < D; t++)
                s += (double)xt[i * D + t] * x[j * D + t];
            gt[i * N + j] = s;
        }
    CHECK(cls_cholesky(g, N, 1e-12) == 0);
    double *zk = malloc(sizeof(double) * N * N);
    memcpy(zk, g, sizeof(double) * N * N);
    cls_solve_lt_right(g, N, gt, M);
    double *wk = calloc((N + 1) * K, sizeof *wk);
    CHECK(cls_logreg_fit(zk, N, N, y, K, lambda, wk, 2000, 1e-9, NULL, NULL) > 0);
    double pk[M * K];
    cls_logreg_predict(gt, M, N, wk, K, pk);
    double maxd = 0;
    for (int i = 0; i < M * K; i++)
        maxd = fmax(maxd, fabs(pp[i] - pk[i]));
    CHECK_MSG(maxd < 1e-5, "kernel vs primal max diff %g", maxd);
    /* map back: W_x = X^T L^-T W_z gives the same scores on raw features */
    cls_solve_lt(g, N, wk, K);
    double maxw = 0;
    for (int j = 0; j < D; j++)
        for (int c = 0; c < K; c++) {
            double s = 0;
            for (int i = 0; i < N; i++)
                s += x[i * D + j] * wk[i * K + c];
            maxw = fmax(maxw, fabs(s - wb[j * K + c]));
        }
    CHECK_MSG(maxw < 1e-3, "mapped weights differ by %g", maxw);
    /* stationarity of the primal solution: numerical gradient ~ 0 */
    double f0 = 0;
    {
        double p[N * K];
        cls_logreg_predict(z, N, D, wb, K, p);
        f0 = cls_log_loss(p, y, N, K);
        double reg = 0;
        for (int i = 0; i < D * K; i++)
            reg += wb[i] * wb[i];
        f0 += 0.5 * lambda * reg;
        /* perturb one weight both ways: objective must not drop */
        for (int q = 0; q < 5; q++) {
            int idx = q * 17 % (D * K);
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double keep = wb[idx];
                wb[idx] += sgn * 1e-3;
                cls_logreg_predict(z, N, D, wb, K, p);
                double f = cls_log_loss(p, y, N, K);
                double r2 = 0;
                for (int i = 0; i < D * K; i++)
                    r2 += wb[i] * wb[i];
                f += 0.5 * lambda * r2;
                CHECK(f >= f0 - 1e-9);
                wb[idx] = keep;
            }
        }
    }
    /* well separated training data is fit */
    double ptr[N * K];
    cls_logreg_predict(z, N, D, wb, K, ptr);
    int right = 0;
    for (int i = 0; i < N; i++) {
        int a = 0;
        for (int c = 1; c < K; c++)
            if (ptr[i * K + c] > ptr[i * K + a])
                a = c;
        right += a == y[i];
    }
    CHECK(right >= N - 1);
    /* deterministic: refit from zero gives identical bits */
    double *wb2 = calloc((D + 1) * K, sizeof *wb2);
    cls_logreg_fit(z, N, D, y, K, lambda, wb2, 2000, 1e-9, NULL, NULL);
    CHECK(memcmp(wb, wb2, sizeof(double) * (D + 1) * K) == 0);
    free(z);
    free(zt);
    free(wb);
    free(wb2);
    free(g);
    free(gt);
    free(zk);
    free(wk);
}

static void test_ncm(void)
{
    enum { N = 12, D = 4, K = 3 };
    double z[N * D];
    int y[N];
    unsigned s = 5;
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        for (int j = 0; j < D; j++)
            z[i * D + j] = urand(&s) + (j == y[i]);
    }
    double wb[(D + 1) * K], p[K], q[K];
    double tau = 3;
    cls_ncm_fit(z, N, D, y, K, tau, wb);
    double x[D] = {0.2, 1.1, 0.3, 0.4};
    cls_logreg_predict(x, 1, D, wb, K, p);
    for (int c = 0; c < K; c++) {
        double mu[D] = {0}, cnt = 0, d2 = 0;
        for (int i = 0; i < N; i++)
            if (y[i] == c) {
                cnt++;
                for (int j = 0; j < D; j++)
                    mu[j] += z[i * D + j];
            }
        for (int j = 0; j < D; j++)
            d2 += (x[j] - mu[j] / cnt) * (x[j] - mu[j] / cnt);
        q[c] = -tau * d2;
    }
    cls_softmax_rows(q, 1, K);
    for (int c = 0; c < K; c++)
        CHECK_NEAR(p[c], q[c], 1e-12);
    CHECK(p[1] > p[0] && p[1] > p[2]);
}

static void test_cholesky(void)
{
    /* A = [[4,2],[2,3]] -> L = [[2,0],[1,sqrt 2]] */
    double a[4] = {4, 2, 2, 3};
    CHECK(cls_cholesky(a, 2, 0) == 0);
    CHECK_NEAR(a[0], 2, 1e-15);
    CHECK_NEAR(a[2], 1, 1e-15);
    CHECK_NEAR(a[3], sqrt(2), 1e-15);
    CHECK(a[1] == 0);
    /* x L^T = b with b = [2, 1+sqrt2] -> x = [1, 1] */
    double b[2] = {2, 1 + sqrt(2)};
    cls_solve_lt_right(a, 2, b, 1);
    CHECK_NEAR(b[0], 1, 1e-12);
    CHECK_NEAR(b[1], 1, 1e-12);
    /* L^T x = c with c = [3, sqrt2] -> x = [1, 1] */
    double c[2] = {3, sqrt(2)};
    cls_solve_lt(a, 2, c, 1);
    CHECK_NEAR(c[0], 1, 1e-12);
    CHECK_NEAR(c[1], 1, 1e-12);
    /* singular matrix: jitter makes it factor */
    double s[4] = {1, 1, 1, 1};
    CHECK(cls_cholesky(s, 2, 1e-9) == 0);
    double zero[4] = {0, 0, 0, 0};
    CHECK(cls_cholesky(zero, 2, 0) != 0);
}

int main(void)
{
    test_cholesky();
    test_logreg_kernel_equals_primal();
    test_ncm();
    return check_report("test_classify_solver");
}
