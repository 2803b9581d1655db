/* simd_int.h: AVX2 helpers shared by the kernel files (compiled with -mavx2
 * -mfma); kept out of runtime_int.h so that files built without AVX (tests,
 * fuzz targets) can include that one. */
#ifndef VFS_ENGINE_RUNTIME_SIMD_INT_H
#define VFS_ENGINE_RUNTIME_SIMD_INT_H

#include "kernels.h" /* eng_act */

#include <immintrin.h>
#include <stdint.h>

/* e^x for 8 floats: Cephes-style range reduction (x = n ln2 + r, ln2 split in
 * two parts) and a degree-6 polynomial for e^r; about 1 ulp, inputs clamped
 * to [-87.3, 88.3]. */
static inline __m256 rt_exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* 1 / (1 + e^-x) for 8 floats */
static inline __m256 rt_sigmoid8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, rt_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* rt_exp8 and rt_sigmoid8 on 16 floats (AVX-512F, for the kernels' run-time AVX-512 path): the
 * same operations in the same order lane by lane, so each lane's result is bit-identical to
 * theirs, in half the instructions */
#define RT_T512 __attribute__((target("avx512f")))
static inline RT_T512 __m512 rt_exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 n = _mm512_roundscale_ps(
        _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

static inline RT_T512 __m512 rt_sigmoid16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, rt_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* a kernel's activation on 8 floats (the epilogue of eng_act) */
static inline __m256 rt_act8(__m256 v, eng_act act)
{
    switch (act) {
    case ENG_ACT_RELU: return _mm256_max_ps(v, _mm256_setzero_ps());
    case ENG_ACT_RELU6:
        return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(6.0f));
    case ENG_ACT_HSWISH:
    case ENG_ACT_HSWISH_F16: {
        __m256 c = _mm256_set1_ps(act == ENG_ACT_HSWISH ? 1.0f / 6.0f : 0.1666259765625f);
        __m256 r = _mm256_min_ps(
            _mm256_max_ps(_mm256_add_ps(v, _mm256_set1_ps(3.0f)), _mm256_setzero_ps()),
            _mm256_set1_ps(6.0f));
        return _mm256_mul_ps(_mm256_mul_ps(v, c), r);
    }
    case ENG_ACT_SIGMOID: return rt_sigmoid8(v);
    default: return v;
    }
}

/* the same on 16 floats, AVX-512F; lane by lane bit-identical to rt_act8 */
static inline RT_T512 __m512 rt_act16(__m512 v, eng_act act)
{
    switch (act) {
    case ENG_ACT_RELU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case ENG_ACT_RELU6:
        return _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
    case ENG_ACT_HSWISH:
    case ENG_ACT_HSWISH_F16: {
        __m512 c = _mm512_set1_ps(act == ENG_ACT_HSWISH ? 1.0f / 6.0f : 0.1666259765625f);
        __m512 r = _mm512_min_ps(
            _mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(3.0f)), _mm512_setzero_ps()),
            _mm512_set1_ps(6.0f));
        return _mm512_mul_ps(_mm512_mul_ps(v, c), r);
    }
    case ENG_ACT_SIGMOID: return rt_sigmoid16(v); /* the AVX2 kernel's results, to the bit */
    default: return v;
    }
}

/* lanes [0, n) of 8 set (n clamped to 0..8): the masks of a channel tail */
static inline __m256i rt_lane_mask(int n)
{
    static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1};
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - n));
}

#endif
