/* kernels_dw.c: depthwise convolution (mult 1, dilation 1: AVX2 and AVX-512 kernels chosen at
 * run time; any other: a scalar loop), and its row kernel for the fused forms (kernels_fused.c).
 *
 * Design: depthwise convolution is memory-bound, so both paths run blocks of output pixels of
 * one row x all channels (AVX-512 16 at a time, AVX2 8 at a time, masked tails): each block
 * reads its input window once and in order. For the backbones' window shapes (3x3 and 5x5,
 * stride 1 and 2, constants in the code) a block holds a window row's inputs or weights in
 * registers, so each input pixel is loaded once per window row instead of once per tap. AVX2,
 * channels a multiple of 8: rows in even blocks of 4-9 pixels (dw256_row_wide), each block a
 * function of its own that may reach into the padding, skipping the taps there per input pixel;
 * other channel counts: blocks of 8 (7 on a 7-wide row) and a ladder of smaller ones. Rows of
 * maps larger than L2 prefetch the input rows the next output row needs. Each output sums the
 * bias, then the taps in (ky, kx) order skipping those outside the input, in every kernel:
 * results are bit-identical across paths, block forms and thread counts (rows are the unit of
 * parallel work).
 */
#include "pool.h"
#include "runtime_int.h"
#include "simd_int.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define T512 RT_T512

static float act1(float v, eng_act act)
{
    switch (act) {
    case ENG_ACT_RELU: return v > 0 ? v : 0;
    case ENG_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case ENG_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case ENG_ACT_HSWISH:
    case ENG_ACT_HSWISH_F16: {
        float c = act == ENG_ACT_HSWISH ? 1.0f / 6.0f : 0.1666259765625f;
        float r = v + 3.0f;
        r = r < 0 ? 0 : r > 6 ? 6 : r;
        return (v * c) * r;
    }
    default: return v;
    }
}

/* one output row oy of a depthwise convolution: the window rows inside the input [ky0, ky1),
 * the first input row iy0, and the interior pixels [ox_lo, ox_hi] whose kw taps are all inside
 * the input row */
typedef struct dw_span {
    int ky0, ky1, iy0, ox_lo, ox_hi;
} dw_span;

static inline dw_span dw_row_span(const eng_conv_geom *g, int oy)
{
    dw_span r;
    r.ky0 = g->pad_top - oy * g->sh, r.ky1 = g->ih + g->pad_top - oy * g->sh;
    r.ky0 = r.ky0 < 0 ? 0 : r.ky0;
    r.ky1 = r.ky1 > g->kh ? g->kh : r.ky1;
    r.iy0 = oy * g->sh - g->pad_top;
    r.ox_lo = (g->pad_left + g->sw - 1) / g->sw;
    r.ox_hi = g->iw + g->pad_left - g->kw;
    r.ox_hi = r.ox_hi < 0 ? -1 : r.ox_hi / g->sw;
    if (r.ox_hi >= g->ow)
        r.ox_hi = g->ow - 1;
    return r;
}

/* the input rows the next output row adds (sh of them), over the span a block of px pixels at
 * ox reads, into L2: maps larger than L2 (a 256x256x64 stride-2 convolution 1.6x faster) */
static inline void dw_prefetch_next(const eng_conv_geom *g, const float *in_n, int row0, int iy0,
                                    int ox, int px)
{
    const int C = g->cin, ix0 = ox * g->sw - g->pad_left;
    const int64_t span = (int64_t)((px - 1) * g->sw + g->kw) * C;
    for (int ky = g->kh; ky < g->kh + g->sh; ky++) {
        if (iy0 + ky >= g->ih)
            break;
        const char *pr = (const char *)(in_n + ((int64_t)(iy0 + ky - row0) * g->iw + ix0) * C);
        for (int64_t o = 0; o < span * (int64_t)sizeof(float); o += 64)
            _mm_prefetch(pr + o, _MM_HINT_T1);
    }
}

/* calls ROW_T(KS, SS, ...) with the backbones' window shapes as constants (3x3 and 5x5, stride 1
 * and 2; KS 0: any other, read from g), inside a row function of dw_row's parameters */
#define DW_ROW_BY_SHAPE(ROW_T)                                                                     \
    do {                                                                                           \
        const int k_ = g->kw, s_ = g->sw;                                                          \
        if (k_ == 3 && s_ == 1)                                                                    \
            ROW_T(3, 1, g, in_n, row0, filter, bias, act, oy, orow, pf);                           \
        else if (k_ == 5 && s_ == 1)                                                               \
            ROW_T(5, 1, g, in_n, row0, filter, bias, act, oy, orow, pf);                           \
        else if (k_ == 3 && s_ == 2)                                                               \
            ROW_T(3, 2, g, in_n, row0, filter, bias, act, oy, orow, pf);                           \
        else if (k_ == 5 && s_ == 2)                                                               \
            ROW_T(5, 2, g, in_n, row0, filter, bias, act, oy, orow, pf);                           \
        else                                                                                       \
            ROW_T(0, 1, g, in_n, row0, filter, bias, act, oy, orow, pf);                           \
    } while (0)

/* one step along an output row of pixels [0, ow): a border pixel alone with its taps checked,
 * else a block of 8, 4, 2 or 1 interior pixels; advances ox. BLOCK is a path's block function,
 * called with the row's locals (KS, SS, ky0, ky1, iy0, ox_lo, ox_hi, ...) in scope. */
#define DW_LADDER_STEP(BLOCK)                                                                      \
    do {                                                                                           \
        const int ck_ = ox < ox_lo || ox > ox_hi;                                                  \
        const int px_ = ck_               ? 1                                                      \
                        : ox + 7 <= ox_hi ? 8                                                      \
                        : ox + 3 <= ox_hi ? 4                                                      \
                        : ox + 1 <= ox_hi ? 2                                                      \
                                          : 1;                                                     \
        if (px_ == 8)                                                                              \
            BLOCK(8, 0, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox, orow, pf);    \
        else if (px_ == 4)                                                                         \
            BLOCK(4, 0, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox, orow, pf);    \
        else if (px_ == 2)                                                                         \
            BLOCK(2, 0, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox, orow, pf);    \
        else if (ck_)                                                                              \
            BLOCK(1, 1, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox, orow, pf);    \
        else                                                                                       \
            BLOCK(1, 0, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox, orow, pf);    \
        ox += px_;                                                                                 \
    } while (0)

/* AVX2 depthwise (mult 1, dilation 1), channels [c0, c0 + 8 NS) of a block of PX output pixels of
 * one row, PX x NS accumulators: each output sums the bias, then the taps in (ky, kx) order
 * skipping those outside the input (the order of dw512_block and dw_generic: bit-identical).
 * When `checked`, taps on the padding are skipped: per input pixel in the in-register form (a
 * block of 7-8 reaching into the padding), per tap otherwise (a border pixel, PX 1); otherwise
 * every tap of the block is inside the input row. KS and SS, when KS > 0 and NS == 1, are the
 * window's width and stride as constants: the block then holds a window row's weights in registers
 * and loads each input pixel once, feeding the outputs whose taps read it. `masked` (NS 1): the
 * channel tail, lanes m. Blocks of fewer pixels take more channels (NS), so there are always 4-8
 * independent FMA chains (one chain of 25 FMAs per output ran at a quarter of the FMA rate). */
static inline ENG_NO_ASAN __attribute__((always_inline)) void
dw256_slice(const int PX, const int NS, const int checked, const int KS, const int SS,
            const int masked, const eng_conv_geom *g, const float *in_n, int row0,
            const float *filter, const float *bias, eng_act act, int ky0, int ky1, int iy0, int ox,
            float *orow, int c0, __m256i m)
{
    const int C = g->cin, KW = g->kw, sw = g->sw;
    const int ix0 = ox * sw - g->pad_left;
    const int in_regs = KS && NS == 1;
    const int kxa = checked && ix0 < 0 ? -ix0 : 0;
    const int kxb = checked && ix0 + KW > g->iw ? g->iw - ix0 : KW;
#define DW256_LD(p) (masked ? _mm256_maskload_ps((p), m) : _mm256_loadu_ps(p))
    __m256 acc[8][4];
#pragma GCC unroll 4
    for (int v = 0; v < NS; v++) {
        const __m256 b = bias ? DW256_LD(bias + c0 + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int p = 0; p < PX; p++)
            acc[p][v] = b;
    }
    for (int ky = ky0; ky < ky1; ky++) {
        const float *ir = in_n + ((int64_t)(iy0 + ky - row0) * g->iw + ix0) * C + c0;
        const float *fr = filter + (size_t)ky * KW * C + c0;
        if (in_regs) {
            /* the window row's weights in registers, each input pixel loaded once and fed to
             * the outputs whose taps read it (in ascending kx for each output) */
            __m256 w[5];
#pragma GCC unroll 5
            for (int kx = 0; kx < KS; kx++)
                w[kx] = DW256_LD(fr + (size_t)kx * C);
#pragma GCC unroll 19
            for (int i = 0; i < (PX - 1) * SS + KS; i++) {
                if (checked && (ix0 + i < 0 || ix0 + i >= g->iw))
                    continue; /* on the padding: the taps that read it are skipped */
                const __m256 x = DW256_LD(ir + (int64_t)i * C);
#pragma GCC unroll 8
                for (int p = 0; p < PX; p++)
                    if (i - p * SS >= 0 && i - p * SS < KS)
                        acc[p][0] = _mm256_fmadd_ps(x, w[i - p * SS], acc[p][0]);
            }
            continue;
        }
        for (int kx = kxa; kx < kxb; kx++) {
#pragma GCC unroll 4
            for (int v = 0; v < NS; v++) {
                const __m256 w = DW256_LD(fr + (size_t)kx * C + 8 * v);
#pragma GCC unroll 8
                for (int p = 0; p < PX; p++)
                    acc[p][v] = _mm256_fmadd_ps(DW256_LD(ir + ((int64_t)p * sw + kx) * C + 8 * v),
                                                w, acc[p][v]);
            }
        }
    }
    float *op = orow + (int64_t)ox * C + c0;
#pragma GCC unroll 8
    for (int p = 0; p < PX; p++)
#pragma GCC unroll 4
        for (int v = 0; v < NS; v++) {
            if (masked)
                _mm256_maskstore_ps(op + (int64_t)p * C, m, rt_act8(acc[p][v], act));
            else
                _mm256_storeu_ps(op + (int64_t)p * C + 8 * v, rt_act8(acc[p][v], act));
        }
#undef DW256_LD
}

/* every loop of a block fully unrolled, its trip count a constant: gcc's pragma, and clang's (which
 * unrolled `#pragma GCC unroll` loops only partly, with run-time remainders, leaving the
 * accumulators in memory) */
#ifdef __clang__
#define DW_UNROLL_FULL _Pragma("clang loop unroll(full)")
#else
#define DW_UNROLL_FULL _Pragma("GCC unroll 21")
#endif

/* A block of PX pixels (4-9) for the backbones' window shapes (KS x KS, stride SS), channels
 * [0, c8) 8 at a time, in a function of its own: inlined into the row function, gcc ran out of
 * registers there, spilled inputs and rotated the accumulators through moves (a 56x56x144 3x3
 * map took 0.21 ms, a stand-alone function like this one 0.14). The window rows
 * [ky0, ky1) are inside the input; `checked`: input pixels outside [ilo, ihi) of the block's
 * (PX - 1) * SS + KS are on the padding and their taps skipped (else all are inside). ir:
 * input pixel ilo of window row ky0; rstep: floats between input rows. Per window row the
 * weights are held in registers and each input pixel is loaded once and fed to the outputs whose
 * taps read it, in ascending kx for each output: the sums of dw256_slice, bit-identical. */
static inline ENG_NO_ASAN __attribute__((always_inline)) void
dw256_wide_t(const int PX, const int KS, const int SS, const int checked, const float *ir,
             int64_t rstep, int C, int ky0, int ky1, int ilo, int ihi, const float *filter,
             const float *bias, eng_act act, float *op, int c8)
{
    for (int c0 = 0; c0 < c8; c0 += 8) {
        __m256 acc[9];
        const __m256 b = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();
        DW_UNROLL_FULL
        for (int p = 0; p < PX; p++)
            acc[p] = b;
        DW_UNROLL_FULL
        for (int ky = 0; ky < KS; ky++) {
            if (ky < ky0 || ky >= ky1)
                continue; /* a window row above or below the input */
            const float *r = ir + (ky - ky0) * rstep + c0;
            const float *f = filter + (size_t)ky * KS * C + c0;
            __m256 w[5];
            DW_UNROLL_FULL
            for (int kx = 0; kx < KS; kx++) {
                w[kx] = _mm256_loadu_ps(f);
                f += C;
                __asm__("" : "+r"(f));
            }
            DW_UNROLL_FULL
            for (int i = 0; i < (PX - 1) * SS + KS; i++) {
                if (checked && (i < ilo || i >= ihi))
                    continue;
                const __m256 x = _mm256_loadu_ps(r);
                r += C;
                /* r opaque: else gcc keeps a pointer per input pixel, spilled (no registers) */
                __asm__("" : "+r"(r));
                DW_UNROLL_FULL
                for (int p = 0; p < PX; p++)
                    if (i - p * SS >= 0 && i - p * SS < KS)
                        acc[p] = _mm256_fmadd_ps(x, w[i - p * SS], acc[p]);
            }
        }
        float *o = op + c0;
        DW_UNROLL_FULL
        for (int p = 0; p < PX; p++) {
            _mm256_storeu_ps(o, rt_act8(acc[p], act));
            o += C;
            __asm__("" : "+r"(o));
        }
    }
}

#define DW256_WIDE(PX, KS, SS, CK)                                                                 \
    static ENG_NO_ASAN __attribute__((noinline)) void dw256_wide_##PX##_##KS##_##SS##_##CK(        \
        const float *ir, int64_t rstep, int C, int ky0, int ky1, int ilo, int ihi,                 \
        const float *filter, const float *bias, eng_act act, float *op, int c8)                    \
    {                                                                                              \
        dw256_wide_t(PX, KS, SS, CK, ir, rstep, C, ky0, ky1, ilo, ihi, filter, bias, act, op, c8); \
    }
/* each block size for the four window shapes, inside (0) and reaching into the padding (1) */
#define DW256_WIDE_PX(PX)                                                                          \
    DW256_WIDE(PX, 3, 1, 0)                                                                        \
    DW256_WIDE(PX, 3, 1, 1)                                                                        \
    DW256_WIDE(PX, 5, 1, 0)                                                                        \
    DW256_WIDE(PX, 5, 1, 1)                                                                        \
    DW256_WIDE(PX, 3, 2, 0)                                                                        \
    DW256_WIDE(PX, 3, 2, 1)                                                                        \
    DW256_WIDE(PX, 5, 2, 0)                                                                        \
    DW256_WIDE(PX, 5, 2, 1)
DW256_WIDE_PX(4)
DW256_WIDE_PX(5)
DW256_WIDE_PX(6)
DW256_WIDE_PX(7)
DW256_WIDE_PX(8)
DW256_WIDE_PX(9)
#undef DW256_WIDE_PX
#undef DW256_WIDE

typedef void (*dw256_wide_fn)(const float *, int64_t, int, int, int, int, int, const float *,
                              const float *, eng_act, float *, int);

#define DW256_ROW(PX)                                                                              \
    {                                                                                              \
        dw256_wide_##PX##_3_1_0, dw256_wide_##PX##_3_1_1, dw256_wide_##PX##_5_1_0,                 \
            dw256_wide_##PX##_5_1_1, dw256_wide_##PX##_3_2_0, dw256_wide_##PX##_3_2_1,             \
            dw256_wide_##PX##_5_2_0, dw256_wide_##PX##_5_2_1                                       \
    }
/* [PX - 4][(KS == 5) * 2 + (SS == 2) * 4 + checked] */
static const dw256_wide_fn DW256_WIDE_FN[6][8] = {DW256_ROW(4), DW256_ROW(5), DW256_ROW(6),
                                                  DW256_ROW(7), DW256_ROW(8), DW256_ROW(9)};
#undef DW256_ROW

/* one output row in blocks of 4-9 pixels as even as they come (a 9-wide row as 9, 14 as 7 + 7,
 * 17 as 9 + 8, 33 as 9 + 3 x 8), each block one call of its dw256_wide_* instance
 * (DW256_WIDE_FN): for the backbones' window shapes (KS x KS, stride SS) when the channels are a
 * multiple of 8 and the row at least 4 pixels wide. Rows of 8s and a remainder of 1 (a 9x9 map:
 * 8 + 1) ran the lone pixel with a tap-checked loop at a quarter of the speed; 9 accumulators, a
 * 5x5 window row's weights and the input are 15 of the 16 registers (9x9x1248 5x5: 5 + 4 took
 * 1.2x the time of 9). */
static inline ENG_NO_ASAN __attribute__((always_inline)) void
dw256_row_wide(const int KS, const int SS, const eng_conv_geom *g, const float *in_n, int row0,
               const float *filter, const float *bias, eng_act act, int oy, float *orow, int pf)
{
    const dw_span sp = dw_row_span(g, oy);
    const int C = g->cin, nb = (g->ow + 8) / 9, base = g->ow / nb, big = g->ow % nb;
    const int64_t rstep = (int64_t)g->iw * C;
    const int ky0 = sp.ky0, ky1 = sp.ky1 > sp.ky0 ? sp.ky1 : sp.ky0;
    const float *rows = ky1 > ky0 ? in_n + (int64_t)(sp.iy0 + ky0 - row0) * rstep : in_n;
    const dw256_wide_fn *fns = DW256_WIDE_FN[0] + (KS == 5) * 2 + (SS == 2) * 4;
    int ox = 0;
    for (int b = 0; b < nb; b++) {
        const int px = base + (b < big), ix0 = ox * SS - g->pad_left, n = (px - 1) * SS + KS;
        const int ilo = ix0 < 0 ? -ix0 : 0, ihi = ix0 + n > g->iw ? g->iw - ix0 : n;
        const int checked = ilo > 0 || ihi < n;
        if (!checked && pf)
            dw_prefetch_next(g, in_n, row0, sp.iy0, ox, px);
        const float *ir = ilo < ihi ? rows + (int64_t)(ix0 + ilo) * C : rows;
        fns[(px - 4) * 8 + checked](ir, rstep, C, ky0, ky1, ilo, ihi, filter, bias, act,
                                    orow + (int64_t)ox * C, C);
        ox += px;
    }
}

/* a block of PX output pixels, all channels (8 NS at a time, then 8 at a time, the tail masked),
 * so the block reads its input window once and in order; pf: prefetch the input rows the next
 * output row adds */
static inline ENG_NO_ASAN __attribute__((always_inline)) void
dw256_block(const int PX, const int checked, const int KS, const int SS, const eng_conv_geom *g,
            const float *in_n, int row0, const float *filter, const float *bias, eng_act act,
            int ky0, int ky1, int iy0, int ox, float *orow, int pf)
{
    const int NS = PX >= 7 ? 1 : PX >= 4 ? 2 : 4;
    const int C = g->cin, c8 = C & ~7;
    if (!checked && pf)
        dw_prefetch_next(g, in_n, row0, iy0, ox, PX);
    const __m256i all = _mm256_set1_epi32(-1);
    int c0 = 0;
    for (; c0 + 8 * NS <= c8; c0 += 8 * NS)
        dw256_slice(PX, NS, checked, KS, SS, 0, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox,
                    orow, c0, all);
    for (; NS > 1 && c0 < c8; c0 += 8)
        dw256_slice(PX, 1, checked, KS, SS, 0, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox,
                    orow, c0, all);
    if (c8 < C)
        dw256_slice(PX, 1, checked, KS, SS, 1, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox,
                    orow, c8, rt_lane_mask(C - c8));
}

/* one output row of a mult-1, dilation-1 depthwise convolution, AVX2, in blocks of pixels (below);
 * in_n holds the input rows from row0 on (0: the whole image) */
static inline ENG_NO_ASAN __attribute__((always_inline)) void
dw256_row_t(const int KS, const int SS, const eng_conv_geom *g, const float *in_n, int row0,
            const float *filter, const float *bias, eng_act act, int oy, float *orow, int pf)
{
    if (KS && g->kh == KS && g->cin % 8 == 0 && g->ow >= 4) {
        dw256_row_wide(KS, SS, g, in_n, row0, filter, bias, act, oy, orow, pf);
        return;
    }
    const dw_span sp = dw_row_span(g, oy);
    const int ky0 = sp.ky0, ky1 = sp.ky1, iy0 = sp.iy0, ox_lo = sp.ox_lo, ox_hi = sp.ox_hi;
    /* blocks of 8 pixels (7 for a 7-wide row), reaching into the padding or not when the
     * window's shape is a constant (taps on the padding skipped per input pixel); the rest in
     * blocks of 4, 2 and 1 inside, 1 with checked taps on the borders */
    int ox = 0;
    while (ox < g->ow) {
        const int left = g->ow - ox;
        const int px = KS && left >= 8 ? 8 : KS && left == 7 ? 7 : 0;
        if (px) {
            if (ox >= ox_lo && ox + px - 1 <= ox_hi) {
                if (px == 8)
                    dw256_block(8, 0, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox,
                                orow, pf);
                else
                    dw256_block(7, 0, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox,
                                orow, pf);
            } else if (px == 8) {
                dw256_block(8, 1, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox, orow,
                            pf);
            } else {
                dw256_block(7, 1, KS, SS, g, in_n, row0, filter, bias, act, ky0, ky1, iy0, ox, orow,
                            pf);
            }
            ox += px;
        } else {
            DW_LADDER_STEP(dw256_block);
        }
    }
}

/* Under ASan: the ranges one row call reads (its window's input rows, whole; the filter and the
 * bias) and writes (the output row), as the row kernels run without per-access checks
 * (ENG_NO_ASAN) */
static void dw_row_asan(const eng_conv_geom *g, const float *in_n, int row0, const float *filter,
                        const float *bias, int oy, const float *orow)
{
    const dw_span sp = dw_row_span(g, oy);
    const size_t f = sizeof(float), rowf = (size_t)g->iw * g->cin;
    if (sp.ky1 > sp.ky0)
        eng_asan_range(in_n + (int64_t)(sp.iy0 + sp.ky0 - row0) * (int64_t)rowf,
                       (size_t)(sp.ky1 - sp.ky0) * rowf * f, 0);
    eng_asan_range(filter, (size_t)g->kh * g->kw * g->cin * f, 0);
    if (bias)
        eng_asan_range(bias, (size_t)g->cin * f, 0);
    eng_asan_range(orow, (size_t)g->ow * g->cout * f, 1);
}

/* one output row of a mult-1, dilation-1 depthwise convolution, AVX2; in_n holds the input
 * rows from row0 on; pf: prefetch the rows the next output row adds */
static ENG_NO_ASAN void dw_row(const eng_conv_geom *g, const float *in_n, int row0,
                               const float *filter, const float *bias, eng_act act, int oy,
                               float *orow, int pf)
{
    if (ENG_ASAN)
        dw_row_asan(g, in_n, row0, filter, bias, oy, orow);
    DW_ROW_BY_SHAPE(dw256_row_t);
}

/* AVX-512 depthwise (mult 1, dilation 1): for each block of PX output pixels of a row, all
 * channels 16 at a time (masked on the tail), so a block reads its input window once, in
 * order, instead of once per 16-channel slice (an older kernel's order, which strode through
 * a 64-channel stride-2 map a cache line per pixel). Each output sums bias, then the taps
 * in (ky, kx) order skipping those outside the input: the same order as dw256_slice and dw_generic,
 * so results are bit-identical to them. When `checked`, taps are bounds-checked per pixel
 * (border pixels); otherwise every tap of the block is inside the input row. KS and SS, when
 * KS > 0, are the window's width and stride as constants (the block then keeps its inputs in
 * registers); KS 0 reads them from g. */
static T512 inline ENG_NO_ASAN __attribute__((always_inline)) void
dw512_block(const int PX, const int checked, const int KS, const int SS, const eng_conv_geom *g,
            const float *in_n, int row0, const float *filter, const float *bias, eng_act act,
            int ky0, int ky1, int iy0, int ox, float *orow, int pf)
{
    const int C = g->cin, KW = g->kw, sw = g->sw;
    const int ix0 = ox * sw - g->pad_left;
    const int in_regs = KS && !checked; /* inputs held in registers (below) */
    /* the taps inside the input row (all of them unless checked) */
    const int kxa = checked && ix0 < 0 ? -ix0 : 0;
    const int kxb = checked && ix0 + KW > g->iw ? g->iw - ix0 : KW;
    if (!checked && pf)
        dw_prefetch_next(g, in_n, row0, iy0, ox, PX);
    for (int c0 = 0; c0 < C; c0 += 16) {
        const __mmask16 m = C - c0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - c0)) - 1);
        const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + c0) : _mm512_setzero_ps();
        __m512 acc[8];
#pragma GCC unroll 8
        for (int p = 0; p < PX; p++)
            acc[p] = b;
        for (int ky = ky0; ky < ky1 && in_regs; ky++) {
            /* the block's input pixels of this row loaded once and shared by the taps that read
             * them (a stride-1 3x3 block of 8 loads 10 inputs, not 24): the kernel is bound by
             * loads, not FMAs, on CPUs that load one 512-bit vector per cycle (AMD Zen 4) */
            const float *ip = in_n + ((int64_t)(iy0 + ky - row0) * g->iw + ix0) * C + c0;
            const float *fr = filter + (size_t)ky * KW * C + c0;
            __m512 x[(8 - 1) * 2 + 5];
#pragma GCC unroll 19
            for (int i = 0; i < (PX - 1) * SS + KS; i++)
                x[i] = _mm512_maskz_loadu_ps(m, ip + (int64_t)i * C);
#pragma GCC unroll 5
            for (int kx = 0; kx < KS; kx++) {
                const __m512 w = _mm512_maskz_loadu_ps(m, fr + (size_t)kx * C);
#pragma GCC unroll 8
                for (int p = 0; p < PX; p++)
                    acc[p] = _mm512_fmadd_ps(x[p * SS + kx], w, acc[p]);
            }
        }
        for (int ky = ky0; ky < ky1 && !in_regs; ky++) {
            const float *ir = in_n + (int64_t)(iy0 + ky - row0) * g->iw * C + c0;
            const float *fr = filter + (size_t)ky * KW * C + c0;
            for (int kx = kxa; kx < kxb; kx++) {
                const __m512 w = _mm512_maskz_loadu_ps(m, fr + (size_t)kx * C);
                if (checked) {
                    acc[0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, ir + (int64_t)(ix0 + kx) * C),
                                             w, acc[0]);
                    continue;
                }
                const float *ip = ir + (int64_t)(ix0 + kx) * C;
#pragma GCC unroll 8
                for (int p = 0; p < PX; p++)
                    acc[p] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, ip + (int64_t)p * sw * C), w,
                                             acc[p]);
            }
        }
        float *op = orow + (int64_t)ox * C + c0;
#pragma GCC unroll 8
        for (int p = 0; p < PX; p++)
            _mm512_mask_storeu_ps(op + (int64_t)p * C, m, rt_act16(acc[p], act));
    }
}

/* one output row of a mult-1, dilation-1 depthwise convolution, AVX-512; in_n holds the input
 * rows from row0 on; pf: prefetch the rows the next output row adds */
static T512 inline ENG_NO_ASAN __attribute__((always_inline)) void
dw512_row_t(const int KS, const int SS, const eng_conv_geom *g, const float *in_n, int row0,
            const float *filter, const float *bias, eng_act act, int oy, float *orow, int pf)
{
    const dw_span sp = dw_row_span(g, oy);
    const int ky0 = sp.ky0, ky1 = sp.ky1, iy0 = sp.iy0, ox_lo = sp.ox_lo, ox_hi = sp.ox_hi;
    int ox = 0;
    while (ox < g->ow) {
        DW_LADDER_STEP(dw512_block);
    }
}

/* dw512_row_t with the window's shape as a constant for the backbones' shapes, so a block keeps
 * its input pixels in registers; other shapes read each tap's input from memory */
static T512 ENG_NO_ASAN void dw512_row(const eng_conv_geom *g, const float *in_n, int row0,
                                       const float *filter, const float *bias, eng_act act, int oy,
                                       float *orow, int pf)
{
    if (ENG_ASAN)
        dw_row_asan(g, in_n, row0, filter, bias, oy, orow);
    DW_ROW_BY_SHAPE(dw512_row_t);
}

static void dw_generic(const eng_conv_geom *g, const float *in, const float *filter,
                       const float *bias, eng_act act, float *out, int64_t row)
{
    const int mult = g->cout / g->cin;
    int n = (int)(row / g->oh), oy = (int)(row % g->oh);
    for (int ox = 0; ox < g->ow; ox++) {
        float *o = out + ((int64_t)row * g->ow + ox) * g->cout;
        for (int c = 0; c < g->cin; c++)
            for (int q = 0; q < mult; q++) {
                float acc = bias ? bias[c * mult + q] : 0.0f;
                for (int ky = 0; ky < g->kh; ky++) {
                    int iy = oy * g->sh - g->pad_top + ky * g->dh;
                    if (iy < 0 || iy >= g->ih)
                        continue;
                    for (int kx = 0; kx < g->kw; kx++) {
                        int ix = ox * g->sw - g->pad_left + kx * g->dw;
                        if (ix < 0 || ix >= g->iw)
                            continue;
                        acc += in[(((int64_t)n * g->ih + iy) * g->iw + ix) * g->cin + c] *
                               filter[((size_t)(ky * g->kw + kx) * g->cin + c) * mult + q];
                    }
                }
                o[c * mult + q] = act1(acc, act);
            }
    }
}

typedef struct dw_job {
    const eng_conv_geom *g;
    const float *in, *filter, *bias;
    eng_act act;
    float *out;
    int fast, wide, pf;
} dw_job;

static void dw_rows(void *ctx, int tid, int64_t lo, int64_t hi)
{
    (void)tid;
    const dw_job *j = ctx;
    const eng_conv_geom *g = j->g;
    for (int64_t row = lo; row < hi; row++) {
        if (j->fast) {
            int n = (int)(row / g->oh), oy = (int)(row % g->oh);
            (j->wide ? dw512_row : dw_row)(g, j->in + (int64_t)n * g->ih * g->iw * g->cin, 0,
                                           j->filter, j->bias, j->act, oy,
                                           j->out + row * g->ow * g->cout, j->pf);
        } else {
            dw_generic(g, j->in, j->filter, j->bias, j->act, j->out, row);
        }
    }
}

void eng_dwconv2d(const eng_conv_geom *g, const float *in, const float *filter, const float *bias,
                  eng_act act, float *out, int threads)
{
    dw_job j = {.g = g,
                .in = in,
                .filter = filter,
                .bias = bias,
                .act = act,
                .out = out,
                .fast = g->cout == g->cin && g->dh == 1 && g->dw == 1,
                .wide = rt_use_avx512(),
                /* prefetch when the input map is larger than L2 (there it made the 256x256x64
                 * stride-2 convolution of CenterNet@512 1.6x faster; on maps in L2 it only
                 * costs) */
                .pf = (int64_t)g->ih * g->iw * g->cin * (int64_t)sizeof(float) > 1024 * 1024};
    rt_parallel_for(threads, (int64_t)g->n * g->oh, 2, dw_rows, &j);
}

rt_dw_row_fn rt_dw_row_kernel(void) { return rt_use_avx512() ? dw512_row : dw_row; }
