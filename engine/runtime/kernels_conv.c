/* kernels_conv.c: dense convolution kernels: a packed GEMM for 1x1 convolutions
 * (directly on NHWC rows) and KxK ones (patches read in place or through
 * block-wise im2col), and the matrix product built on the same GEMM
 * (depthwise: kernels_dw.c; the fused pairs: kernels_fused.c).
 *
 * Design: output channels are packed once into 16-wide panels
 * ([K][16] each), so a 6x16 AVX2/FMA micro-kernel keeps 12 accumulators in
 * registers and reads each panel from L1 for a whole block of rows (1-5 row
 * instances for the rows left over, and a panel of <= 8 channels in half the
 * accumulators); bias and
 * activation are applied in the micro-kernel's epilogue before the single
 * store. Row blocks are the unit of parallel work (claimed one by one from
 * the pool's counter, so a thread that the OS preempts on a busy machine
 * does not hold the others up); each output element is computed by one thread in a fixed order, so
 * results do not depend on the thread count. On CPUs with AVX-512 (chosen at run time;
 * VFS_NO_AVX512=1 forces AVX2) 12x32 kernels take two panels per broadcast of A (24 zmm
 * accumulators), with 13-row ones when one row would be left (a 7x7 map's 49 rows) and 4-row
 * ones for other rows left over (196 rows: 16 x 12 + 4) and 256-bit
 * accumulators for a last panel of <= 8 channels (24, 40 outputs). With either, when all of B
 * fits in L2 the loop runs over row groups outside the panels, so each output row is written
 * whole, and KxK convolutions read their patches in place (kh segments per pixel) instead of
 * im2col. The AVX-512 path's first row group of a thread's first block prefetches the next
 * panel pair into L2 as it goes, one line per k step (a kernel instance of its own):
 * in a network's run the weights come from memory (a 7x7 map's 192->1152 1x1 took 0.31 ms with
 * its weights out of cache and 0.22 ms with them in L2; 0.27 ms so). Every
 * kernel sums the same products in the same order (k ascending from zero, then the bias), so
 * all give bit-identical results.
 */
#include "pool.h"
#include "runtime_int.h"
#include "simd_int.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16

eng_status eng_conv_geom_init(eng_conv_geom *g, int n, int ih, int iw, int cin, int cout, int kh,
                              int kw, int sh, int sw, int dh, int dw, eng_padding padding,
                              const int *pads, eng_diag *d)
{
    memset(g, 0, sizeof *g);
    if (n < 1 || ih < 1 || iw < 1 || cin < 1 || cout < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 ||
        dh < 1 || dw < 1)
        return eng_fail(d, ENG_EINVAL, "convolution: sizes must be positive");
    g->n = n, g->ih = ih, g->iw = iw, g->cin = cin, g->cout = cout;
    g->kh = kh, g->kw = kw, g->sh = sh, g->sw = sw, g->dh = dh, g->dw = dw;
    int64_t ekh = (int64_t)(kh - 1) * dh + 1, ekw = (int64_t)(kw - 1) * dw + 1;
    int64_t oh, ow;
    if (padding == ENG_PAD_SAME) {
        oh = (ih + sh - 1) / sh;
        ow = (iw + sw - 1) / sw;
        int64_t ph = (oh - 1) * sh + ekh - ih, pw = (ow - 1) * sw + ekw - iw;
        if (ph < 0)
            ph = 0;
        if (pw < 0)
            pw = 0;
        g->pad_top = (int)(ph / 2), g->pad_bottom = (int)(ph - ph / 2);
        g->pad_left = (int)(pw / 2), g->pad_right = (int)(pw - pw / 2);
    } else {
        if (padding == ENG_PAD_EXPLICIT) {
            if (!pads || pads[0] < 0 || pads[1] < 0 || pads[2] < 0 || pads[3] < 0)
                return eng_fail(d, ENG_EINVAL, "convolution: bad explicit padding");
            g->pad_top = pads[0], g->pad_bottom = pads[1];
            g->pad_left = pads[2], g->pad_right = pads[3];
        }
        int64_t h = (int64_t)ih + g->pad_top + g->pad_bottom - ekh;
        int64_t w = (int64_t)iw + g->pad_left + g->pad_right - ekw;
        if (h < 0 || w < 0)
            return eng_fail(d, ENG_EINVAL,
                            "convolution: %lldx%lld window larger than the "
                            "%dx%d padded input",
                            (long long)ekh, (long long)ekw, ih, iw);
        oh = h / sh + 1;
        ow = w / sw + 1;
    }
    if (oh > INT32_MAX || ow > INT32_MAX)
        return eng_fail(d, ENG_EINVAL, "convolution: output too large");
    g->oh = (int)oh, g->ow = (int)ow;
    return ENG_OK;
}

eng_conv_packed *eng_conv_pack(const float *filter, const float *bias, int kh, int kw, int cin,
                               int cout)
{
    eng_conv_packed *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->kh = kh, p->kw = kw, p->cin = cin, p->cout = cout;
    p->K = kh * kw * cin;
    p->npanel = (cout + NR - 1) / NR;
    p->w = eng_alloc((size_t)p->npanel * p->K * NR * sizeof(float));
    p->bias = eng_alloc((size_t)p->npanel * NR * sizeof(float));
    if (!p->w || !p->bias) {
        eng_conv_packed_free(p);
        return NULL;
    }
    memset(p->bias, 0, (size_t)p->npanel * NR * sizeof(float));
    if (bias)
        memcpy(p->bias, bias, (size_t)cout * sizeof(float));
    for (int j = 0; j < p->npanel; j++) {
        float *dst = p->w + (size_t)j * p->K * NR;
        for (int k = 0; k < p->K; k++)
            for (int c = 0; c < NR; c++) {
                int oc = j * NR + c;
                dst[(size_t)k * NR + c] = oc < cout ? filter[(size_t)k * cout + oc] : 0.0f;
            }
    }
    return p;
}

void eng_conv_packed_free(eng_conv_packed *p)
{
    if (!p)
        return;
    eng_free(p->w);
    eng_free(p->bias);
    free(p);
}

#define MR512 12
/* a block's last group is 13 rows rather than 12 and a 4-row group for one row (a 7x7 map's 49
 * rows: 3 x 12 + 13) */
#define R13 13
/* rows of the single-panel kernel: with one panel of output channels (16 or fewer, as a stem's
 * or a 16 -> 16 projection's) a 24-row group has as many accumulators as a 12-row pair */
#define R24 24
#define RMAX R24
#define T512 RT_T512

/* ---- AVX2 kernels ---- */

/* the AVX2 kernels' stores: row r's accumulators p[r] (and q[r] unless H) plus the bias, plus the
 * residual when res, through act, to c[r] + off; a panel of fewer than 16 (H: 8) channels stores
 * its last 8 lanes masked to its nr channels (masked stores are slow on some CPUs, so only
 * there); rows with c[r] NULL are skipped */
static inline ENG_NO_ASAN __attribute__((always_inline)) void
uk256_store(const int R, const int H, const eng_act act, const __m256 *p, const __m256 *q,
            const float *bias, int nr, const float *const *res, float *const *c, int off)
{
    const __m256 bu = _mm256_load_ps(bias), bv = _mm256_load_ps(bias + 8);
    const int full = nr == (H ? 8 : NR);
    const __m256i mt = rt_lane_mask(H ? nr : nr - 8); /* the last 8 lanes' mask */
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        if (!c[r])
            continue;
        __m256 s = _mm256_add_ps(p[r], bu), t = H ? s : _mm256_add_ps(q[r], bv);
        float *o = c[r] + off;
        if (res) { /* residual added after the bias, as the graph's Add does */
            const float *e = res[r] + off;
            if (!H)
                s = _mm256_add_ps(s, _mm256_loadu_ps(e));
            t = _mm256_add_ps(t, full ? _mm256_loadu_ps(e + 8 * !H)
                                      : _mm256_maskload_ps(e + 8 * !H, mt));
        }
        if (!H)
            _mm256_storeu_ps(o, rt_act8(s, act));
        if (full)
            _mm256_storeu_ps(o + 8 * !H, rt_act8(t, act));
        else
            _mm256_maskstore_ps(o + 8 * !H, mt, rt_act8(t, act));
    }
}

/* The AVX2 micro-kernels: R rows (R <= 6) x np panels of 16 output channels one after the
 * other (b, bias and off move one panel each time), 2R accumulators in registers (R when H: one
 * panel of <= 8 channels, one 256-bit accumulator per row). Row r of A is nseg segments of L
 * floats, segment s at a[s * RMAX + r] (a KxK convolution's window rows read in place; nseg 1
 * otherwise). Rows c[r][off..off+nr) = act(sum_k a[r][k] * b[k] + bias (+ res[r][off..])), summed
 * in k order from zero and then the bias, as the AVX-512 kernels do (bit-identical). Rows with c[r]
 * == NULL are computed but not stored. R and H are compile-time constants in each instance below,
 * so the arrays are registers. */
static inline ENG_NO_ASAN __attribute__((always_inline)) void
uk256(const int R, const int H, int np, int nseg, int L, const float *const *a, const float *b,
      const float *bias, const float *const *res, float *const *c, int off, int nr, eng_act act)
{
    for (; np > 0; np--, b += (size_t)nseg * L * NR, bias += NR, off += NR) {
        __m256 p[MR], q[MR];
        const float *ar[MR];
#pragma GCC unroll 6
        for (int r = 0; r < R; r++)
            p[r] = q[r] = _mm256_setzero_ps();
        for (int sg = 0; sg < nseg; sg++) {
#pragma GCC unroll 6
            for (int r = 0; r < R; r++)
                ar[r] = a[sg * RMAX + r];
            const float *bk = b + (size_t)sg * L * NR;
            for (int k = 0; k < L; k++, bk += NR) {
                const __m256 u = _mm256_load_ps(bk), v = H ? u : _mm256_load_ps(bk + 8);
#pragma GCC unroll 6
                for (int r = 0; r < R; r++) {
                    const __m256 x = _mm256_broadcast_ss(ar[r] + k);
                    p[r] = _mm256_fmadd_ps(x, u, p[r]);
                    if (!H)
                        q[r] = _mm256_fmadd_ps(x, v, q[r]);
                }
            }
        }
        switch (act) { /* the common activations as constants: straight-line stores */
        case ENG_ACT_NONE: uk256_store(R, H, ENG_ACT_NONE, p, q, bias, nr, res, c, off); break;
        case ENG_ACT_RELU: uk256_store(R, H, ENG_ACT_RELU, p, q, bias, nr, res, c, off); break;
        case ENG_ACT_RELU6: uk256_store(R, H, ENG_ACT_RELU6, p, q, bias, nr, res, c, off); break;
        case ENG_ACT_HSWISH: uk256_store(R, H, ENG_ACT_HSWISH, p, q, bias, nr, res, c, off); break;
        default: uk256_store(R, H, act, p, q, bias, nr, res, c, off); break;
        }
    }
}

#define UK256(R, H)                                                                                \
    static ENG_NO_ASAN void uk256_##R##x##H(                                                       \
        int np, int nseg, int L, const float *const *a, const float *b, const float *bias,         \
        const float *const *res, float *const *c, int off, int nr, eng_act act)                    \
    {                                                                                              \
        uk256(R, H, np, nseg, L, a, b, bias, res, c, off, nr, act);                                \
    }
/* the two panel forms of an R-row kernel: 9-16 channels, <= 8 */
#define UK256_FORMS(R) UK256(R, 0) UK256(R, 1)
UK256_FORMS(1)
UK256_FORMS(2)
UK256_FORMS(3)
UK256_FORMS(4)
UK256_FORMS(5)
UK256_FORMS(6)
#undef UK256_FORMS
#undef UK256

typedef void (*uk256_fn)(int, int, int, const float *const *, const float *, const float *,
                         const float *const *, float *const *, int, int, eng_act);
/* [R - 1][H] */
static const uk256_fn UK256_FN[MR][2] = {
    {uk256_1x0, uk256_1x1}, {uk256_2x0, uk256_2x1}, {uk256_3x0, uk256_3x1},
    {uk256_4x0, uk256_4x1}, {uk256_5x0, uk256_5x1}, {uk256_6x0, uk256_6x1},
};

/* ---- AVX-512 kernels, chosen at run time on CPUs that have them ---- */

/* the AVX-512 kernels' stores: row r's accumulators p[r] (and q[r], or h[r] when H) plus the
 * bias (bu, bv), plus the residual when res, through act, to c[r] + off; rows with c[r] NULL
 * are skipped */
static T512 inline ENG_NO_ASAN __attribute__((always_inline)) void
uk512_store(const int R, const int P, const int H, const eng_act act, const __m512 *p,
            const __m512 *q, const __m256 *h, __m512 bu, __m512 bv, __mmask16 last,
            const float *const *res, float *const *c, int off)
{
#pragma GCC unroll 24
    for (int r = 0; r < R; r++) {
        if (!c[r])
            continue;
        if (P == 2 || !H) { /* first panel, full unless it is the only one */
            const __mmask16 m = P == 2 ? 0xffff : last;
            __m512 s = _mm512_add_ps(p[r], bu);
            if (res) /* residual added after the bias, as the graph's Add does */
                s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, res[r] + off));
            _mm512_mask_storeu_ps(c[r] + off, m, rt_act16(s, act));
        }
        if (P == 2 || H) { /* last panel (or the only one, in 256 bits) */
            const int o = off + (P == 2 ? NR : 0);
            __m512 t = _mm512_add_ps(H ? _mm512_castps256_ps512(h[r]) : q[r], bv);
            if (res)
                t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(last, res[r] + o));
            _mm512_mask_storeu_ps(c[r] + o, last, rt_act16(t, act));
        }
    }
}

/* The AVX-512 micro-kernels: R rows (R <= 13, or 24 with P = 1) x P panels of 16 output
 * channels (P = 1 or 2), R*P accumulators in registers; with P = 2 each broadcast of a[r][k]
 * feeds two FMAs, so a k step is R broadcasts and 2 loads for 2R FMAs. Rows c[r][off..off+16P) =
 * act(sum_k a[r][k] * b_p[k] + bias (+ res[r][off..])), the last panel's stores and residual loads
 * masked to its nr channels (tails such as 24, 40, 72, 120 need no copy); when H, that panel has nr
 * <= 8 and its accumulators are 256-bit (half the FMA work on CPUs that split 512-bit FMAs in two,
 * as AMD Zen 4 does). Rows with c[r] == NULL are computed but not stored. Every output sums its
 * products in k order from zero and then adds the bias, as the AVX2 kernels do, so all kernels give
 * bit-identical results. R, P and H are compile-time constants in each instance below, so the
 * arrays are registers. */
static T512 inline ENG_NO_ASAN __attribute__((always_inline)) void
uk512(const int R, const int P, const int H, const int PF, int nseg, int L, const float *const *a,
      const float *b0, const float *b1, const float *bias, const float *const *res, float *const *c,
      int off, int nr, eng_act act, int pfn)
{
    /* PF: prefetch the next pair's panels (pfn >= 1 of them), one panel stride (b1 - b0) apart
     * after b1; a compile-time choice, as the checks cost every other call 3-4 % (CenterNet) */
    const float *pf0 = PF ? b1 + (b1 - b0) : b0, *pf1 = PF && pfn > 1 ? pf0 + (b1 - b0) : b0;
    __m512 p[RMAX], q[RMAX];
    __m256 h[RMAX];
    const float *ar[RMAX];
    const float *bl = P == 2 ? b1 : b0; /* the last panel */
#pragma GCC unroll 24
    for (int r = 0; r < R; r++) {
        p[r] = q[r] = _mm512_setzero_ps();
        h[r] = _mm256_setzero_ps();
    }
    for (int sg = 0; sg < nseg; sg++) {
#pragma GCC unroll 24
        for (int r = 0; r < R; r++)
            ar[r] = a[sg * RMAX + r];
        const size_t kb = (size_t)sg * L * NR;
        for (int k = 0; k < L; k++) {
            const size_t o = kb + (size_t)k * NR;
            const __m512 u = _mm512_load_ps(b0 + o);
            const __m512 v = P == 2 && !H ? _mm512_load_ps(b1 + o) : u;
            const __m256 v8 = H ? _mm256_load_ps(bl + o) : _mm512_castps512_ps256(u);
            if (PF)
                _mm_prefetch((const char *)(pf0 + o), _MM_HINT_T1);
            if (PF && pfn > 1)
                _mm_prefetch((const char *)(pf1 + o), _MM_HINT_T1);
#pragma GCC unroll 24
            for (int r = 0; r < R; r++) {
                /* broadcasts of the width each FMA takes, which it can read from memory */
                if (P == 2 || !H) {
                    const __m512 x = _mm512_set1_ps(ar[r][k]);
                    p[r] = _mm512_fmadd_ps(x, u, p[r]);
                    if (!H)
                        q[r] = _mm512_fmadd_ps(x, v, q[r]);
                }
                if (H)
                    h[r] = _mm256_fmadd_ps(_mm256_set1_ps(ar[r][k]), v8, h[r]);
            }
        }
    }
    const __mmask16 last = (__mmask16)((1u << nr) - 1);
    const __m512 bu = _mm512_load_ps(bias), bv = _mm512_load_ps(bl == b0 ? bias : bias + NR);
    /* the common activations as constants, so that each row's stores are straight-line code
     * (with act read per row, a 1x1 16 -> 64 with hard-swish ran at 70.7 GFLOP/s, now 78.5) */
#define UK512_STORE(A) uk512_store(R, P, H, A, p, q, h, bu, bv, last, res, c, off)
    switch (act) {
    case ENG_ACT_NONE: UK512_STORE(ENG_ACT_NONE); break;
    case ENG_ACT_RELU: UK512_STORE(ENG_ACT_RELU); break;
    case ENG_ACT_RELU6: UK512_STORE(ENG_ACT_RELU6); break;
    case ENG_ACT_HSWISH: UK512_STORE(ENG_ACT_HSWISH); break;
    default: UK512_STORE(act); break;
    }
#undef UK512_STORE
}

#define UK512(R, P, H, PF)                                                                         \
    static T512 ENG_NO_ASAN void uk512_##R##x##P##H##PF(                                           \
        int nseg, int L, const float *const *a, const float *b0, const float *b1,                  \
        const float *bias, const float *const *res, float *const *c, int off, int nr, eng_act act, \
        int pfn)                                                                                   \
    {                                                                                              \
        uk512(R, P, H, PF, nseg, L, a, b0, b1, bias, res, c, off, nr, act, pfn);                   \
    }
/* the four panel forms of an R-row kernel: a pair, a pair ending in <= 8 channels, one panel,
 * one panel of <= 8 */
#define UK512_FORMS(R)                                                                             \
    UK512(R, 2, 0, 0)                                                                              \
    UK512(R, 2, 1, 0)                                                                              \
    UK512(R, 1, 0, 0)                                                                              \
    UK512(R, 1, 1, 0)
UK512_FORMS(13)
UK512_FORMS(12)
UK512_FORMS(4)
UK512(12, 2, 0, 1) /* a block's first row group, prefetching the next pair */
UK512(24, 1, 0, 0) /* the single-panel kernel */
#undef UK512_FORMS
#undef UK512

typedef void (*uk512_fn)(int, int, const float *const *, const float *, const float *,
                         const float *, const float *const *, float *const *, int, int, eng_act,
                         int);
/* [R: 4, 12, 13][P - 1][H] */
static const uk512_fn UK512_FN[3][2][2] = {
    {{uk512_4x100, uk512_4x110}, {uk512_4x200, uk512_4x210}},
    {{uk512_12x100, uk512_12x110}, {uk512_12x200, uk512_12x210}},
    {{uk512_13x100, uk512_13x110}, {uk512_13x200, uk512_13x210}},
};

/* 1 when the AVX-512 kernels may run (VFS_NO_AVX512 set in the environment turns them off) */
int rt_use_avx512(void)
{
    static int state = -1;
    int s;
#pragma omp atomic read
    s = state;
    if (s < 0) {
        __builtin_cpu_init();
        s = __builtin_cpu_supports("avx512f") && !getenv("VFS_NO_AVX512");
#pragma omp atomic write
        state = s;
    }
    return s;
}

/* gathers the patches of output pixels [m0, m0+rows) into buf [rows][K];
 * a window row whose kw pixels are all inside is one contiguous copy */
static void im2col_block(const eng_conv_geom *g, const float *in, int64_t m0, int rows, float *buf)
{
    const int K = g->kh * g->kw * g->cin, C = g->cin;
    const size_t run = (size_t)g->kw * C;
    for (int r = 0; r < rows; r++) {
        int64_t m = m0 + r;
        int ox = (int)(m % g->ow);
        int64_t t = m / g->ow;
        int oy = (int)(t % g->oh);
        int n = (int)(t / g->oh);
        float *dst = buf + (size_t)r * K;
        const int ix0 = ox * g->sw - g->pad_left;
        const int inside_x = ix0 >= 0 && ix0 + (g->kw - 1) * g->dw < g->iw;
        for (int ky = 0; ky < g->kh; ky++) {
            int iy = oy * g->sh - g->pad_top + ky * g->dh;
            if (iy < 0 || iy >= g->ih) {
                for (size_t i = 0; i < run; i++)
                    dst[i] = 0.0f;
                dst += run;
                continue;
            }
            const float *row = in + ((int64_t)n * g->ih + iy) * g->iw * C;
            if (inside_x && g->dw == 1) {
                const float *src = row + (int64_t)ix0 * C;
                for (size_t i = 0; i < run; i++)
                    dst[i] = src[i];
            } else {
                for (int kx = 0; kx < g->kw; kx++) {
                    int ix = ix0 + kx * g->dw;
                    if (ix < 0 || ix >= g->iw) {
                        for (int c = 0; c < C; c++)
                            dst[kx * C + c] = 0.0f;
                    } else {
                        const float *src = row + (int64_t)ix * C;
                        for (int c = 0; c < C; c++)
                            dst[kx * C + c] = src[c];
                    }
                }
            }
            dst += run;
        }
    }
}

/* packed B up to this size is kept whole in L2 (rows-outer loop order) */
#define B_L2 (256 * 1024)

/* most window rows a convolution may have for the kernels to read its patches in place */
#define MAXSEG 7

/* runs the micro-kernel for `rows` rows of A and output channels [j*16, j*16+16) (AVX2: 1-6 rows)
 * or [j*16, j*16+32) (AVX-512: 12, 13 or 4 rows, panels j and j+1 or a last odd panel alone;
 * 24 rows when panel j is the only one).
 * Row r of A is nseg segments of L floats, segment s at ap[s * RMAX + r];
 * rp[] are the residual rows (rp NULL: none), cp[] the output rows (NULL: not stored), all
 * pointing at channel 0 (the kernels add the panel's offset); pf: prefetch the next pair's
 * panels (AVX-512). */
/* Under ASan: every range one micro-kernel call of P panels and `width` output channels reads
 * (its panels, bias, A rows, residual rows) and writes (its output rows), as the kernels run
 * without per-access checks (ENG_NO_ASAN) */
static void panel_asan(const float *bp, const float *bias, int P, int width, int rows, int nseg,
                       int L, const float *const *ap, const float *const *rp, float *const *cp,
                       int off)
{
    const size_t f = sizeof(float);
    eng_asan_range(bp, (size_t)P * nseg * L * NR * f, 0);
    eng_asan_range(bias, (size_t)P * NR * f, 0);
    for (int r = 0; r < rows; r++) {
        for (int s = 0; s < nseg; s++)
            eng_asan_range(ap[s * RMAX + r], (size_t)L * f, 0);
        if (!cp[r]) /* computed, not stored: its residual is not read either */
            continue;
        if (rp)
            eng_asan_range(rp[r] + off, (size_t)width * f, 0);
        eng_asan_range(cp[r] + off, (size_t)width * f, 1);
    }
}

static void panel_step(const eng_conv_packed *w, int cout, int j, int j1, int wide, int rows,
                       int nseg, int L, const float *const *ap, const float *const *rp,
                       float *const *cp, eng_act act, int pf)
{
    const float *bp = w->w + (size_t)j * w->K * NR, *bias = w->bias + j * NR;
    if (!wide) {
        /* AVX2: panels [j, j1), the full ones in one call (a call per panel made a short K's
         * GEMM 1.08-1.2x slower), then a part-filled last one */
        const int jf = j1 * NR > cout ? j1 - 1 : j1;
        if (jf > j) {
            if (ENG_ASAN)
                panel_asan(bp, bias, jf - j, (jf - j) * NR, rows, nseg, L, ap, rp, cp, j * NR);
            UK256_FN[rows - 1][0](jf - j, nseg, L, ap, bp, bias, rp, cp, j * NR, NR, act);
        }
        if (jf < j1) {
            const float *bt = w->w + (size_t)jf * w->K * NR, *biast = w->bias + jf * NR;
            const int nr = cout - jf * NR;
            if (ENG_ASAN)
                panel_asan(bt, biast, 1, nr, rows, nseg, L, ap, rp, cp, jf * NR);
            UK256_FN[rows - 1][nr <= 8](1, nseg, L, ap, bt, biast, rp, cp, jf * NR, nr, act);
        }
    } else {
        const int P = j + 1 < w->npanel ? 2 : 1;
        const int nr = cout - (j + P - 1) * NR < NR ? cout - (j + P - 1) * NR : NR;
        int pfn = pf ? w->npanel - (j + 2) : 0; /* the next pair's panels (AVX-512 pairs) */
        pfn = pfn < 0 ? 0 : pfn > 2 ? 2 : pfn;
        if (ENG_ASAN)
            panel_asan(bp, bias, P, (P - 1) * NR + nr, rows, nseg, L, ap, rp, cp, j * NR);
        /* a block's first 12-row group prefetching the next pair (which there is, so this pair
         * is two full panels) */
        const uk512_fn fn = rows == R24 ? uk512_24x100
                            : pfn > 0 && rows == MR512
                                ? uk512_12x201
                                : UK512_FN[rows == R13 ? 2 : rows == MR512][P - 1][nr <= 8];
        fn(nseg, L, ap, bp, bp + (size_t)w->K * NR, bias, rp, cp, j * NR, nr, act, pfn);
    }
}

/* For the kernels reading KxK patches in place: points ap[s * RMAX + r] at window row s
 * of output pixel m0 + r (r < R; rows past `left` repeat pixel m0) and returns 1, or returns 0
 * when a window of these pixels reaches into the padding. */
static int patch_rows(const eng_conv_geom *g, const float *in, int64_t m0, int R, int left,
                      const float **ap)
{
    int ox = (int)(m0 % g->ow);
    int64_t t = m0 / g->ow;
    int oy = (int)(t % g->oh), n = (int)(t / g->oh);
    const int64_t rowstep = (int64_t)g->iw * g->cin;
    const int x0 = ox * g->sw - g->pad_left, y0 = oy * g->sh - g->pad_top;
    if (left >= R && ox + R <= g->ow && x0 >= 0 &&
        (ox + R - 1) * g->sw - g->pad_left + g->kw <= g->iw && y0 >= 0 && y0 + g->kh <= g->ih) {
        /* the common case: R pixels of one output row, every window inside: one step apart */
        const float *p0 = in + (((int64_t)n * g->ih + y0) * g->iw + x0) * g->cin;
        const int64_t step = (int64_t)g->sw * g->cin;
        for (int sg = 0; sg < g->kh; sg++)
            for (int r = 0; r < R; r++)
                ap[sg * RMAX + r] = p0 + sg * rowstep + r * step;
        return 1;
    }
    for (int r = 0; r < R; r++) {
        if (r > 0 && r < left && ++ox == g->ow) { /* the next pixel (no division per row) */
            ox = 0;
            if (++oy == g->oh)
                oy = 0, n++;
        }
        if (r >= left) { /* past the rows: repeat the first pixel */
            for (int sg = 0; sg < g->kh; sg++)
                ap[sg * RMAX + r] = ap[sg * RMAX];
            continue;
        }
        int ix0 = ox * g->sw - g->pad_left, iy0 = oy * g->sh - g->pad_top;
        if (ix0 < 0 || ix0 + g->kw > g->iw || iy0 < 0 || iy0 + g->kh > g->ih)
            return 0;
        const float *p0 = in + (((int64_t)n * g->ih + iy0) * g->iw + ix0) * g->cin;
        for (int sg = 0; sg < g->kh; sg++)
            ap[sg * RMAX + r] = p0 + sg * rowstep;
    }
    return 1;
}

eng_status eng_conv2d_packed(const eng_conv_geom *g, const float *in, const eng_conv_packed *w,
                             eng_act act, float *out, int threads)
{
    return rt_conv2d_packed_res(g, in, w, act, NULL, out, threads);
}

/* one convolution split into blocks of output rows (rt_parallel_for items) */
typedef struct conv_job {
    const eng_conv_geom *g;
    const float *in, *res;
    const eng_conv_packed *w;
    eng_act act;
    float *out;
    int64_t M;
    int mb, K, direct, wide, rows_outer, step, inplace;
    int pgroups, pper; /* each block's panels in pgroups groups of pper (a multiple of step) */
    rt_scratch *rows;  /* per tid: the block's im2col rows (not needed when direct) */
} conv_job;

/* rows of the AVX2 kernel for a row group with `left` rows to go: 6, or all when fewer, but
 * ending in groups of 4 or 5 rather than in one of 1-3 where it can (8 and 9 accumulators keep
 * both FMA units busy, 6 do not): 7 as 4 + 3, 8 as 4 + 4, 9 as 5 + 4, 13 as 5 + 4 + 4 (a 7x7
 * map's 49 rows: 6 x 6 + 5 + 4 + 4; 9x9: 12 x 6 + 5 + 4) */
static inline int avx2_rows(int left)
{
    return left == 7 || left == 8 ? 4 : left == 9 || left == 13 ? 5 : left < MR ? left : MR;
}

/* items: (row block, panel group) pairs, item = block * pgroups + group */
static void conv_blocks(void *ctx, int tid, int64_t ilo, int64_t ihi)
{
    conv_job *j = ctx;
    const eng_conv_geom *g = j->g;
    const eng_conv_packed *w = j->w;
    const float *in = j->in, *res = j->res;
    const int K = j->K, mb = j->mb, wide = j->wide, step = j->step, cout = g->cout;
    /* one panel of 9-16 channels: the 24-row kernel (with <= 8, in 256 bits, 24 rows measured
     * slower than 12) */
    const int single = w->npanel == 1 && cout > 8;
    float *const out = j->out; /* locals: the row pointers' stores cannot alias them */
    float *buf = NULL;
    if (!j->direct && !(buf = rt_scratch_get(j->rows, tid)))
        return;
    for (int64_t item = ilo; item < ihi; item++) {
        const int64_t blk = item / j->pgroups;
        const int p0 = (int)(item % j->pgroups) * j->pper;
        const int p1 = p0 + j->pper < w->npanel ? p0 + j->pper : w->npanel;
        int64_t m0 = blk * mb;
        int rows = (int)(j->M - m0 < mb ? j->M - m0 : mb);
        /* prefetch the weights on the first row group of the thread's first block: after it
         * they are in L2 (later blocks prefetching too cost CenterNet's backbone 2 %) */
        const int pf_block = item == ilo;
        const float *abase;
        size_t lda = (size_t)K;
        if (j->direct) {
            abase = in + m0 * K;
        } else if (!j->inplace) {
            im2col_block(g, in, m0, rows, buf);
            abase = buf;
        } else {
            abase = NULL; /* patches read in place, or gathered per row group */
        }
        for (int jp = p0; jp < (j->rows_outer ? p0 + 1 : p1); jp += step) {
            for (int r0 = 0; r0 < rows;) {
                /* AVX2: avx2_rows; AVX-512: 24-row groups when there is one panel; 12-row
                 * groups, 13 when one row would be left, the tail in 4-row groups (196 rows:
                 * 16 x 12 + 4) */
                const int R = !wide                        ? avx2_rows(rows - r0)
                              : single && rows - r0 >= R24 ? R24
                              : rows - r0 == R13           ? R13
                              : rows - r0 >= MR512         ? MR512
                                                           : 4;
                const float *ap[RMAX * MAXSEG], *rp[RMAX];
                float *cp[RMAX];
                int nseg = 1, L = K;
                if (j->inplace && patch_rows(g, in, m0 + r0, R, rows - r0, ap)) {
                    nseg = g->kh, L = g->kw * g->cin;
                } else if (j->inplace) { /* a pixel on the padding: gather just this group */
                    int n = rows - r0 < R ? rows - r0 : R;
                    im2col_block(g, in, m0 + r0, n, buf);
                    for (int r = 0; r < R; r++)
                        ap[r] = buf + (size_t)(r < n ? r : 0) * lda;
                } else {
                    for (int r = 0; r < R; r++)
                        ap[r] = abase + (size_t)(r0 + r < rows ? r0 + r : r0) * lda;
                }
                /* output and residual rows; past the block's rows: not stored, residual row
                 * r0 (readable) */
                float *const c0 = out + (m0 + r0) * cout;
                const float *const q0 = res ? res + (m0 + r0) * cout : NULL;
                const int live = rows - r0 < R ? rows - r0 : R;
                for (int r = 0; r < live; r++) {
                    cp[r] = c0 + (size_t)r * cout;
                    rp[r] = res ? q0 + (size_t)r * cout : NULL;
                }
                for (int r = live; r < R; r++)
                    cp[r] = NULL, rp[r] = q0;
                const int pf = pf_block && r0 == 0;
                const int pend = j->rows_outer ? p1 : jp + step;
                if (!wide) /* AVX2: the panels in one call */
                    panel_step(w, cout, jp, pend, 0, R, nseg, L, ap, res ? rp : NULL, cp, j->act,
                               pf);
                for (int jj = jp; wide && jj < pend; jj += step)
                    panel_step(w, cout, jj, jj + step, 1, R, nseg, L, ap, res ? rp : NULL, cp,
                               j->act, pf);
                r0 += R;
            }
        }
    }
}

eng_status rt_conv2d_packed_res(const eng_conv_geom *g, const float *in, const eng_conv_packed *w,
                                eng_act act, const float *res, float *out, int threads)
{
    const int K = w->K;
    const int64_t M = (int64_t)g->n * g->oh * g->ow;
    const int direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_top == 0 &&
                       g->pad_left == 0 && g->oh == g->ih && g->ow == g->iw;
    const int wide = rt_use_avx512();
    const int mr = wide ? MR512 : MR;
    /* rows per block: the block's A rows (K floats each) stay in L2 */
    int mb = 24576 / (K > 0 ? K : 1);
    mb = mb < mr ? mr : mb > 240 ? 240 : mb;
    mb -= mb % mr;
    int nt = threads < 1 ? 1 : threads;
    if (nt > 1) { /* at least 4 blocks per thread, so that threads finish together */
        int64_t fair = (M + 4 * nt - 1) / (4 * nt);
        fair = (fair + mr - 1) / mr * mr;
        if (fair < mb)
            mb = (int)fair;
    }
    /* panels outer (one panel or pair of B hot in L1, the block's A rows re-read from L2 for
     * each) when B is large; rows outer (a row group's A rows hot in L1, each output row written
     * whole at once) when all of B fits in L2 (AVX2 too: Lite0's 1x1s 83.7 -> 87.9 GFLOP/s,
     * bench_conv) */
    const int rows_outer = (size_t)K * w->npanel * NR * sizeof(float) <= B_L2;
    /* rows outer, dilation 1: KxK patches read in place from the input (window row by window
     * row), no im2col copy except for row groups with a pixel on the padding (AVX2: CenterNet's
     * 512 stem 2.09 -> 1.08 ms) */
    const int inplace = !direct && rows_outer && g->dh == 1 && g->dw == 1 && g->kh <= MAXSEG;
    /* there, a block is one output row: its row groups then never straddle two rows (which
     * takes the per-pixel path) and only the last one can reach the right padding */
    if (inplace && g->ow >= 2 * MR512 && g->ow <= 512)
        mb = g->ow;
    const int64_t nblocks = (M + mb - 1) / mb;
    /* too few blocks to keep the threads busy (a 7x7 map's 49 rows make 5): split each block's
     * panels too, so every thread gets about 4 items */
    const int step = wide ? 2 : 1;
    int pgroups = 1;
    if (nt > 1 && nblocks < 4 * nt) {
        int64_t want = (4 * nt + nblocks - 1) / nblocks, most = (w->npanel + step - 1) / step;
        pgroups = (int)(want < most ? want : most);
    }
    int pper = (w->npanel + pgroups - 1) / pgroups;
    pper = (pper + step - 1) / step * step;
    pgroups = (w->npanel + pper - 1) / pper;
    /* per thread: a block's im2col rows, or when patches are read in place one row group's */
    rt_scratch rows = {.bytes = (size_t)(inplace ? RMAX : mb) * K * sizeof(float)};
    conv_job j = {.g = g,
                  .in = in,
                  .res = res,
                  .w = w,
                  .act = act,
                  .out = out,
                  .M = M,
                  .mb = mb,
                  .K = K,
                  .direct = direct,
                  .wide = wide,
                  .rows_outer = rows_outer,
                  .step = step,
                  .pgroups = pgroups,
                  .pper = pper,
                  .inplace = inplace,
                  .rows = &rows};
    rt_parallel_for(nt, nblocks * pgroups, 1, conv_blocks, &j);
    return rt_scratch_free(&rows) ? ENG_ENOMEM : ENG_OK;
}

eng_status eng_conv2d(const eng_conv_geom *g, const float *in, const float *filter,
                      const float *bias, eng_act act, float *out, int threads)
{
    eng_conv_packed *p = eng_conv_pack(filter, bias, g->kh, g->kw, g->cin, g->cout);
    if (!p)
        return ENG_ENOMEM;
    eng_status st = eng_conv2d_packed(g, in, p, act, out, threads);
    eng_conv_packed_free(p);
    return st;
}

/* ---- matrix product ---- */

eng_status eng_matmul(int m, int n, int k, const float *a, int ta, const float *b, int tb,
                      const float *bias, eng_act act, float *c, int threads)
{
    if (m < 1 || n < 1 || k < 1)
        return ENG_EINVAL;
    const float *bb = b;
    float *bt = NULL, *at = NULL;
    if (tb) { /* B stored [n][k]: make it [k][n] for packing */
        bt = eng_alloc((size_t)k * n * sizeof(float));
        if (!bt)
            return ENG_ENOMEM;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++)
                bt[(size_t)j * n + i] = b[(size_t)i * k + j];
        bb = bt;
    }
    const float *aa = a;
    if (ta) {
        at = eng_alloc((size_t)m * k * sizeof(float));
        if (!at) {
            eng_free(bt);
            return ENG_ENOMEM;
        }
        for (int i = 0; i < k; i++)
            for (int j = 0; j < m; j++)
                at[(size_t)j * k + i] = a[(size_t)i * m + j];
        aa = at;
    }
    eng_conv_geom g;
    eng_status st =
        eng_conv_geom_init(&g, 1, 1, m, k, n, 1, 1, 1, 1, 1, 1, ENG_PAD_VALID, NULL, NULL);
    if (!st)
        st = eng_conv2d(&g, aa, bb, bias, act, c, threads);
    eng_free(bt);
    eng_free(at);
    return st;
}
