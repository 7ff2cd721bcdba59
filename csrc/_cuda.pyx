# cython: language_level=3
"""CUDA launchers (module ``edgeguard._cuda``, optional): wrapper over libedgeguard_cuda.

Takes raw device pointers and a stream handle as integers and enqueues asynchronously;
csrc/edgeguard_cuda.h has the contracts. Arguments the launcher rejects raise
``ValueError``, other CUDA errors ``RuntimeError``. ``edgeguard.kernels`` is the documented
API (device arrays through ``__cuda_array_interface__``).
"""
from libc.stdint cimport int32_t, uint8_t, uint64_t, uintptr_t

cdef extern from "edgeguard_cuda.h" nogil:
    ctypedef enum cudaError_t:
        cudaSuccess
        cudaErrorInvalidValue
    ctypedef void* cudaStream_t
    cudaError_t eg_cuda_ssim_tokens(const float* a, const float* b, int n, int c, int h, int w,
                                    int border, int grid_h, int grid_w, int mode,
                                    float* out_tokens, cudaStream_t stream)
    cudaError_t eg_cuda_grow_regions(const float* scores, const uint8_t* top,
                                     const int32_t* sizes, int n, int grid_h, int grid_w,
                                     float bonus, uint64_t seed, const uint64_t* streams,
                                     uint8_t* out, cudaStream_t stream)
    int eg_cuda_device_count()
    const char* eg_cuda_error_string(cudaError_t status)


cdef _check(cudaError_t status, str kernel):
    if status == cudaErrorInvalidValue:
        raise ValueError(f"CUDA {kernel} launcher rejected its arguments")
    if status != cudaSuccess:
        message = eg_cuda_error_string(status).decode("utf-8", "replace")
        raise RuntimeError(f"CUDA {kernel} launch failed: {message} (cudaError {<int>status})")


def device_count():
    """Number of usable CUDA devices (0 without a device or driver)."""
    return eg_cuda_device_count()


def ssim_tokens(uintptr_t a, uintptr_t b, int n, int c, int h, int w, int border, int grid_h,
                int grid_w, int mode, uintptr_t out, uintptr_t stream):
    """Enqueues eg_cuda_ssim_tokens on device pointers; border and mode are the ssim.h codes."""
    cdef cudaError_t status
    with nogil:
        status = eg_cuda_ssim_tokens(<const float*>a, <const float*>b, n, c, h, w, border,
                                     grid_h, grid_w, mode, <float*>out, <cudaStream_t>stream)
    _check(status, "SSIM")


def grow_regions(uintptr_t scores, uintptr_t top, uintptr_t sizes, int n, int grid_h,
                 int grid_w, float bonus, uint64_t seed, uintptr_t streams, uintptr_t out,
                 uintptr_t stream):
    """Enqueues eg_cuda_grow_regions on device pointers; streams 0 means no stream ids."""
    cdef cudaError_t status
    with nogil:
        status = eg_cuda_grow_regions(<const float*>scores, <const uint8_t*>top,
                                      <const int32_t*>sizes, n, grid_h, grid_w, bonus, seed,
                                      <const uint64_t*>streams, <uint8_t*>out,
                                      <cudaStream_t>stream)
    _check(status, "region growing")
