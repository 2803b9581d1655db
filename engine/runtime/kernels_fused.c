/* kernels_fused.c: two convolutions run together in row bands that stay in L2, so the tensor
 * between them is never stored whole: expand 1x1 + depthwise (the expanded rows made by the GEMM
 * band by band and consumed by the depthwise row kernel) and depthwise + 1x1 (the depthwise rows
 * of a band fed to the GEMM). Chunks of output rows are the unit of parallel work; each kernel
 * call is the one the unfused op would make on those rows, so results are bit-identical to the
 * two kernels run one after the other.
 */
#include "pool.h"
#include "runtime_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- expand 1x1 + depthwise ---- */

/* Expanded rows a band may hold: the band is written by the 1x1 GEMM and read back by the
 * depthwise kernel while it is still in L2 (1 MB per core here; the band shares it with the
 * GEMM's input rows and the depthwise output). VFS_FUSE_BAND_KB overrides (benchmarks). */
static size_t band_bytes(void)
{
    static size_t v;
    size_t b;
#pragma omp atomic read
    b = v;
    if (!b) {
        const char *e = getenv("VFS_FUSE_BAND_KB");
        long kb = e ? strtol(e, NULL, 10) : 0;
        b = kb > 0 && kb < (1L << 20) ? (size_t)kb * 1024 : 384 * 1024;
#pragma omp atomic write
        v = b;
    }
    return b;
}

/* Chunks of output rows per image for nt threads, the fused kernels' unit of parallel work:
 * one with one thread, two per thread otherwise (a chunk's rows then balance), at most oh. */
static int row_chunks(int nt, int oh)
{
    int nc = nt > 1 ? 2 * nt : 1;
    return nc > oh ? oh : nc;
}

/* one fused expand + depthwise split into chunks of output rows (rt_parallel_for items) */
typedef struct xdw_job {
    const eng_conv_geom *g;
    const float *x, *filter, *bias;
    const eng_conv_packed *we;
    eng_act eact, act;
    float *out;
    int64_t B;
    int nc;
    rt_dw_row_fn row; /* the depthwise row kernel for this CPU */
    rt_scratch *band; /* per tid: the band of expanded rows */
} xdw_job;

static void xdw_chunks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    xdw_job *j = ctx;
    const eng_conv_geom *g = j->g;
    const int C = g->cin, H = g->ih, W = g->iw, cx = j->we->cin, nc = j->nc, B = (int)j->B;
    const size_t rowf = (size_t)W * C;
    float *buf = rt_scratch_get(j->band, tid);
    if (!buf)
        return;
    for (int64_t it = lo; it < hi; it++) {
        const int n = (int)(it / nc), c = (int)(it % nc);
        const int oy_end = (int)((int64_t)g->oh * (c + 1) / nc);
        const float *xn = j->x + (int64_t)n * H * W * cx;
        int blo = 0, bhi = 0; /* expanded rows [blo, bhi) of image n are in buf */
        for (int oy0 = (int)((int64_t)g->oh * c / nc); oy0 < oy_end; oy0 += B) {
            int oy1 = oy0 + B < oy_end ? oy0 + B : oy_end;
            int need_lo = oy0 * g->sh - g->pad_top,
                need_hi = (oy1 - 1) * g->sh - g->pad_top + g->kh;
            need_lo = need_lo < 0 ? 0 : need_lo > H ? H : need_lo;
            need_hi = need_hi > H ? H : need_hi < need_lo ? need_lo : need_hi;
            int keep = bhi > need_lo && blo <= need_lo ? bhi - need_lo : 0;
            if (keep && need_lo > blo)
                memmove(buf, buf + (size_t)(need_lo - blo) * rowf,
                        (size_t)keep * rowf * sizeof(float));
            if (need_hi > need_lo + keep) { /* the 1x1 over the rows not yet expanded */
                const int r0 = need_lo + keep;
                eng_conv_geom e = rt_geom_1x1(1, need_hi - r0, W, cx, C);
                rt_conv2d_packed_res(&e, xn + (size_t)r0 * W * cx, j->we, j->eact, NULL,
                                     buf + (size_t)keep * rowf, 1);
            }
            blo = need_lo;
            bhi = need_hi;
            for (int oy = oy0; oy < oy1; oy++)
                j->row(g, buf, blo, j->filter, j->bias, j->act, oy,
                       j->out + ((int64_t)n * g->oh + oy) * g->ow * C, 0);
        }
    }
}

eng_status rt_expand_dwconv2d(const eng_conv_geom *g, const float *x, const eng_conv_packed *we,
                              eng_act eact, const float *filter, const float *bias, eng_act act,
                              float *out, int threads)
{
    const size_t rowf = (size_t)g->iw * g->cin;
    /* output rows per band: its (B - 1) * sh + kh expanded rows fit the band size */
    int64_t cap = (int64_t)(band_bytes() / (rowf * sizeof(float)));
    int64_t B = cap < g->kh ? 1 : (cap - g->kh) / g->sh + 1;
    if (B > g->oh)
        B = g->oh;
    /* each image's output rows in nc chunks (a chunk recomputes the kh - sh rows it shares with
     * the one before); chunks are the unit of parallel work */
    int nt = threads < 1 ? 1 : threads;
    int nc = row_chunks(nt, g->oh);
    const int64_t brows = (B - 1) * g->sh + g->kh; /* the expanded rows a band needs */
    rt_scratch band = {.bytes = (size_t)brows * rowf * sizeof(float)};
    xdw_job j = {.g = g,
                 .x = x,
                 .filter = filter,
                 .bias = bias,
                 .we = we,
                 .eact = eact,
                 .act = act,
                 .out = out,
                 .B = B,
                 .nc = nc,
                 .row = rt_dw_row_kernel(),
                 .band = &band};
    rt_parallel_for(nt, (int64_t)g->n * nc, 1, xdw_chunks, &j);
    return rt_scratch_free(&band) ? ENG_ENOMEM : ENG_OK;
}

/* ---- depthwise + 1x1 ---- */

/* one fused depthwise + 1x1 split into chunks of output rows (rt_parallel_for items) */
typedef struct dwp_job {
    const eng_conv_geom *g;
    const float *x, *filter, *bias, *res;
    const eng_conv_packed *wp;
    eng_act act, pact;
    float *out;
    int64_t B;
    int nc, pf;
    rt_dw_row_fn row; /* the depthwise row kernel for this CPU */
    rt_scratch *band; /* per tid: the band of depthwise output rows */
} dwp_job;

static void dwp_chunks(void *ctx, int tid, int64_t lo, int64_t hi)
{
    dwp_job *j = ctx;
    const eng_conv_geom *g = j->g;
    const int C = g->cin, co = j->wp->cout, nc = j->nc;
    float *buf = rt_scratch_get(j->band, tid);
    if (!buf)
        return;
    for (int64_t it = lo; it < hi; it++) {
        const int n = (int)(it / nc), c = (int)(it % nc);
        const int oy_end = (int)((int64_t)g->oh * (c + 1) / nc);
        const float *xn = j->x + (int64_t)n * g->ih * g->iw * C;
        for (int oy0 = (int)((int64_t)g->oh * c / nc); oy0 < oy_end; oy0 += (int)j->B) {
            int oy1 = oy0 + (int)j->B < oy_end ? oy0 + (int)j->B : oy_end;
            for (int oy = oy0; oy < oy1; oy++)
                j->row(g, xn, 0, j->filter, j->bias, j->act, oy,
                       buf + (size_t)(oy - oy0) * g->ow * C, j->pf);
            eng_conv_geom e = rt_geom_1x1(1, oy1 - oy0, g->ow, C, co);
            size_t at = ((size_t)n * g->oh + oy0) * g->ow * co;
            rt_conv2d_packed_res(&e, buf, j->wp, j->pact, j->res ? j->res + at : NULL, j->out + at,
                                 1);
        }
    }
}

eng_status rt_dw_conv1x1(const eng_conv_geom *g, const float *x, const float *filter,
                         const float *bias, eng_act act, const eng_conv_packed *wp, eng_act pact,
                         const float *res, float *out, int threads)
{
    const size_t rowf = (size_t)g->ow * g->cin;
    /* depthwise output rows per band: they fit the band size */
    int64_t B = (int64_t)(band_bytes() / (rowf * sizeof(float)));
    B = B < 1 ? 1 : B > g->oh ? g->oh : B;
    /* each image's output rows in nc chunks, the unit of parallel work (no overlap to
     * recompute: the depthwise reads its input whole) */
    int nt = threads < 1 ? 1 : threads;
    int nc = row_chunks(nt, g->oh);
    rt_scratch band = {.bytes = (size_t)B * rowf * sizeof(float)};
    dwp_job j = {.g = g,
                 .x = x,
                 .filter = filter,
                 .bias = bias,
                 .res = res,
                 .wp = wp,
                 .act = act,
                 .pact = pact,
                 .out = out,
                 .B = B,
                 .nc = nc,
                 .row = rt_dw_row_kernel(),
                 .pf = (int64_t)g->ih * g->iw * g->cin * (int64_t)sizeof(float) > 1024 * 1024,
                 .band = &band};
    rt_parallel_for(nt, (int64_t)g->n * nc, 1, dwp_chunks, &j);
    return rt_scratch_free(&band) ? ENG_ENOMEM : ENG_OK;
}
