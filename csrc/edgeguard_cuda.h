/*
 * CUDA kernels of edgeguard, built into libedgeguard_cuda by CMakeLists.txt.
 *
 * Host launchers take device pointers and a stream, enqueue asynchronously (no
 * synchronisation, no allocation) and return a cudaError_t: cudaErrorInvalidValue for bad
 * arguments (nothing is enqueued), otherwise the launch status from cudaGetLastError().
 * Kernel execution errors surface at the caller's next synchronisation.
 */
#ifndef EDGEGUARD_CUDA_H
#define EDGEGUARD_CUDA_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "ssim.h" /* EG_BORDER_*, EG_TOKENS_* and the SSIM definition */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Per-token SSIM on the GPU: same definition, border policies and token modes as
 * eg_ssim_tokens (ssim.h), in fp32 arithmetic. Moments are taken of values shifted by a
 * per-tile reference pixel, which keeps E[x^2] - E[x]^2 from cancelling in fp32 (expected
 * deviation from the double-precision CPU result: about 1e-5 or less on [0, 1] images).
 *
 * a, b: device (n, c, h, w) float32; out_tokens: device (n, grid_h, grid_w) float32.
 * EG_TOKENS_MEAN: fused kernel, one 16x16-thread block per group of whole tokens, tiles
 *   loaded into shared memory with a 5-px halo, five moments per pass, deterministic
 *   in-block reduction (no atomics). Needs h % grid_h == 0 and w % grid_w == 0.
 * EG_TOKENS_POINT: only grid_h * grid_w map pixels are needed, so one thread per token
 *   evaluates its 11x11 window directly. Needs grid_h <= h and grid_w <= w.
 */
cudaError_t eg_cuda_ssim_tokens(const float* a, const float* b, int n, int c, int h, int w,
                                int border, int grid_h, int grid_w, int mode, float* out_tokens,
                                cudaStream_t stream);

/*
 * Topology-aware region growing on the GPU: same definition, random numbers and results
 * as eg_grow_regions (masks.h), bit for bit. One block per image; every step draws the
 * uniforms of its candidate tokens in parallel and picks the winner with a deterministic
 * block reduction (lowest class, largest value, lowest index).
 *
 * scores: device (n, grid_h * grid_w) float32; top: device (n, L) uint8 (0/1); sizes: device
 * (n,) int32; streams: device (n,) uint64 or NULL (all 0); out: device (n, L) uint8 (0/1).
 * Device data cannot be checked from the host: sizes are clamped to [0, L] (the CPU
 * version rejects them instead) and scores must be finite.
 */
cudaError_t eg_cuda_grow_regions(const float* scores, const uint8_t* top, const int32_t* sizes,
                                 int n, int grid_h, int grid_w, float bonus, uint64_t seed,
                                 const uint64_t* streams, uint8_t* out, cudaStream_t stream);

/* Number of usable CUDA devices; 0 without a device or driver (the error is cleared). */
int eg_cuda_device_count(void);

/* cudaGetErrorString, for callers that do not link the CUDA runtime themselves. */
const char* eg_cuda_error_string(cudaError_t status);

#ifdef __cplusplus
}
#endif

#endif /* EDGEGUARD_CUDA_H */
