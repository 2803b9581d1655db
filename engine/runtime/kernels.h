/* kernels.h: the compute kernels behind the runtime's ops, exported so that
 * training code can run the same forward passes on its own buffers.
 *
 * All tensors are dense row-major float32, images NHWC. Kernels never
 * allocate on the hot path except where noted, never fail on valid
 * geometry, and split their work over at most `threads` threads of the
 * runtime's pool (pool.h; <= 0 means 1). Each output element is computed by
 * exactly one thread in a fixed order, so results do not depend on the
 * thread count. BLAS, where used, runs single-threaded inside our threads.
 * Included by runtime.h.
 */
#ifndef VFS_ENGINE_RUNTIME_KERNELS_H
#define VFS_ENGINE_RUNTIME_KERNELS_H

/* Activation applied in a kernel's epilogue, after the bias. */
typedef enum eng_act {
    ENG_ACT_NONE = 0,
    ENG_ACT_RELU,       /* max(x, 0) */
    ENG_ACT_RELU6,      /* min(max(x, 0), 6) */
    ENG_ACT_SIGMOID,    /* 1 / (1 + exp(-x)) */
    ENG_ACT_HSWISH,     /* (x * (1/6)) * relu6(x + 3), products in that order */
    ENG_ACT_HSWISH_F16, /* same with 0.1666259765625, the float16-rounded 1/6 of
                         * converted TF graphs (CenterNet), bit-exact with the graph */
} eng_act;

/* TensorFlow padding modes. SAME pads so that out = ceil(in / stride), the
 * odd extra row/column going to the bottom/right; VALID pads nothing;
 * EXPLICIT takes the four sizes given. */
typedef enum eng_padding { ENG_PAD_SAME = 0, ENG_PAD_VALID, ENG_PAD_EXPLICIT } eng_padding;

/* Geometry of a 2-D convolution or pooling window over NHWC tensors. */
typedef struct eng_conv_geom {
    int n, ih, iw, cin; /* input [n, ih, iw, cin] */
    int oh, ow, cout;   /* output [n, oh, ow, cout] */
    int kh, kw;         /* window */
    int sh, sw;         /* strides */
    int dh, dw;         /* dilations */
    int pad_top, pad_left, pad_bottom, pad_right;
} eng_conv_geom;

/* Fills g from the input shape, window, strides, dilations and padding
 * (pads[4] = top, bottom, left, right, read only for ENG_PAD_EXPLICIT; may
 * be NULL otherwise). cout is stored as given. Returns ENG_EINVAL (message in
 * d) when a size is not positive or the window does not fit the input. */
eng_status eng_conv_geom_init(eng_conv_geom *g, int n, int ih, int iw, int cin, int cout, int kh,
                              int kw, int sh, int sw, int dh, int dw, eng_padding padding,
                              const int *pads, eng_diag *d);

/* Convolution weights repacked for the GEMM kernel: the filter HWIO
 * [kh,kw,cin,cout] is stored as column panels of 16 output channels, zero
 * padded, with the bias alongside. Immutable once made: share freely. */
typedef struct eng_conv_packed eng_conv_packed;

/* Returns new packed weights (free with eng_conv_packed_free) or NULL when
 * out of memory. bias [cout] may be NULL (zeros). */
eng_conv_packed *eng_conv_pack(const float *filter, const float *bias, int kh, int kw, int cin,
                               int cout);
void eng_conv_packed_free(eng_conv_packed *p);

/* out[n,oh,ow,cout] = act(conv(in, filter) + bias) with the packed weights
 * (whose kh, kw, cin, cout must match g). 1x1 stride-1 convolutions run as a
 * plain GEMM over the pixels; others gather patches (im2col) block by block
 * into a per-thread scratch buffer, which is this kernel's only allocation
 * (returns ENG_ENOMEM if it fails, else ENG_OK). */
eng_status eng_conv2d_packed(const eng_conv_geom *g, const float *in, const eng_conv_packed *w,
                             eng_act act, float *out, int threads);

/* Convenience for weights that change (training): packs, runs, frees. */
eng_status eng_conv2d(const eng_conv_geom *g, const float *in, const float *filter,
                      const float *bias, eng_act act, float *out, int threads);

/* Depthwise convolution: filter [kh,kw,cin,mult], bias [cin*mult] (may be
 * NULL), g->cout must be cin*mult; output channel c*mult+q reads input
 * channel c. AVX-512 or AVX2/FMA (chosen at run time) for mult == 1 and
 * dilation 1. */
void eng_dwconv2d(const eng_conv_geom *g, const float *in, const float *filter, const float *bias,
                  eng_act act, float *out, int threads);

/* C[m,n] = act(A[m,k] B[k,n] + bias[n]) with optional transposes (A stored
 * [k,m] when ta, B stored [n,k] when tb); bias may be NULL. */
eng_status eng_matmul(int m, int n, int k, const float *a, int ta, const float *b, int tb,
                      const float *bias, eng_act act, float *c, int threads);

/* Max pooling (g->cout == g->cin); padded cells never win. */
void eng_maxpool2d(const eng_conv_geom *g, const float *in, float *out, int threads);

/* Bilinear resize of [n,ih,iw,c] to [n,oh,ow,c] with TensorFlow's
 * coordinate rules (align_corners, half_pixel_centers as in ResizeBilinear). */
void eng_resize_bilinear(const float *in, int n, int ih, int iw, int c, float *out, int oh, int ow,
                         int align_corners, int half_pixel_centers, int threads);

/* Mean over H and W: [n,h,w,c] -> [n,c]. */
void eng_mean_hw(const float *in, int n, int h, int w, int c, float *out, int threads);

/* In-place activation over len floats. */
void eng_act_apply(float *x, int64_t len, eng_act act, int threads);

/* Softmax over the last axis of [rows, cols], in place. */
void eng_softmax_rows(float *x, int64_t rows, int64_t cols, int threads);

#endif
