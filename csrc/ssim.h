/*
 * Per-pixel and per-token SSIM (Wang et al. 2004) for batches of float32 images.
 *
 * Definition (matches skimage.metrics.structural_similarity with gaussian_weights=True,
 * sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True):
 *   - 11-tap Gaussian window, sigma 1.5, truncated at radius 5 and normalised to sum 1,
 *     applied separably (horizontal pass, then vertical pass);
 *   - C1 = (0.01 * 1.0)^2, C2 = (0.03 * 1.0)^2: inputs are expected on the [0, 1] scale
 *     (values slightly outside are allowed; the constants assume a data range of 1);
 *   - population moments: var = E[x^2] - E[x]^2, cov = E[xy] - E[x]E[y];
 *   - colour: the per-channel SSIM maps are averaged over channels into one (H, W) map.
 *
 * Border policy (the window reads outside the image near the edges):
 *   EG_BORDER_REFLECT    half-sample symmetric, "d c b a | a b c d | d c b a". This is
 *                        scipy.ndimage mode 'reflect', which skimage uses, so the full map
 *                        matches skimage everywhere, borders included. It is periodic with
 *                        period 2*size, so images smaller than the window are fine too.
 *   EG_BORDER_REPLICATE  edge pixels repeated, "a a a a | a b c d | d d d d" (scipy mode
 *                        'nearest', torch F.pad mode 'replicate'). This is what the official
 *                        BDMAE code (defense/pytorch_ssim.py) uses.
 *
 * Token reduction of the (H, W) map to a (grid_h, grid_w) grid:
 *   EG_TOKENS_MEAN   mean of the map over each token's pixels. H and W must be divisible by
 *                    the grid: token (i, j) covers rows i*H/gh .. (i+1)*H/gh - 1 and the
 *                    same for columns.
 *   EG_TOKENS_POINT  one pixel per token, exactly as the official BDMAE code samples it with
 *                    torch.nn.functional.interpolate(mode='nearest'): token row i reads map row
 *                    min(floorf(i * s), H - 1) with s = (float)H / (float)gh computed and
 *                    multiplied in float32 (columns alike). For 32 -> 14 this gives rows
 *                    0, 2, 4, 6, 9, 11, 13, 16, 18, 20, 22, 25, 27, 29; for 224 -> 14 the
 *                    top-left pixel of each 16x16 patch. Requires grid <= image size.
 *                    The float32 product matters: the exact floor(i*H/gh) differs for
 *                    some sizes (e.g. H = 26, gh = 22).
 *
 * Arrays are C-contiguous: a, b (N, C, H, W); maps (N, H, W); tokens (N, grid_h, grid_w).
 * Moments and the SSIM formula are computed in double, so results equal skimage's float64
 * computation up to the final float32 rounding. When compiled with OpenMP the batch is split
 * across threads (one image per iteration); the functions are re-entrant.
 */
#ifndef EDGEGUARD_SSIM_H
#define EDGEGUARD_SSIM_H

/* GCC on x86-64 Linux: hot loops are also built for AVX-512 (x86-64-v4) and AVX2 + FMA
   (haswell) CPUs, one copy each, picked when the library loads; the default target has
   only SSE2. Internal to the C sources. */
/* Calls with less work than this run on one thread: starting a parallel region costs more,
   and in the purifier the second core is often still held by the inference engine's
   thread pool. Work is counted in rough units of a token draw (~2 ns); an SSIM
   pixel-channel counts 8. Internal. */
#define EG_PARALLEL_MIN_WORK (1LL << 18)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EG_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=haswell", "default")))
#else
#define EG_CPU_CLONES
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
enum { EG_OK = 0, EG_ERR_ARG = 1, EG_ERR_NOMEM = 2 };

/* Border policies. */
enum { EG_BORDER_REFLECT = 0, EG_BORDER_REPLICATE = 1 };

/* Token reduction modes. */
enum { EG_TOKENS_MEAN = 0, EG_TOKENS_POINT = 1 };

/* Window radius: 11 taps, sigma 1.5 (skimage: truncate 3.5 -> int(3.5 * 1.5 + 0.5) = 5). */
#define EG_SSIM_RADIUS 5
#define EG_SSIM_SIGMA 1.5

/*
 * Channel-averaged SSIM map. a, b: (n, c, h, w); out_map: (n, h, w).
 * Returns EG_OK, EG_ERR_ARG (null pointer with n > 0, n < 0, c/h/w < 1, unknown border)
 * or EG_ERR_NOMEM.
 */
int eg_ssim_map(const float* a, const float* b, int n, int c, int h, int w, int border,
                float* out_map);

/*
 * Per-token SSIM. a, b: (n, c, h, w); out_tokens: (n, grid_h, grid_w).
 * Returns EG_OK, EG_ERR_ARG (as eg_ssim_map, plus grid < 1, an unknown mode, a grid that
 * does not divide (h, w) in mean mode, or a grid larger than (h, w) in point mode) or
 * EG_ERR_NOMEM.
 */
int eg_ssim_tokens(const float* a, const float* b, int n, int c, int h, int w, int border,
                   int grid_h, int grid_w, int mode, float* out_tokens);

#ifdef __cplusplus
}
#endif

#endif /* EDGEGUARD_SSIM_H */
