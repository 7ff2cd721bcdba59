// Topology-aware region growing on the GPU; see edgeguard_cuda.h for the contract and
// masks.h for the definition, which csrc/masks.c implements on the CPU with the same
// random numbers and selection rule (sampling.h), so both give the same regions.
#include "edgeguard_cuda.h"

#include <climits>

#include "sampling.h"

namespace {

constexpr int MAX_THREADS = 256;
constexpr int WARP = 32;
constexpr unsigned FULL_MASK = 0xffffffffu;

struct Candidate {
    int cls;
    float value;
    int index;
};

// Loses to every real candidate.
__device__ __forceinline__ Candidate nobody() { return {INT_MAX, 0.0f, INT_MAX}; }

__device__ __forceinline__ Candidate better_of(const Candidate& a, const Candidate& b)
{
    return eg_better(a.cls, a.value, a.index, b.cls, b.value, b.index) ? a : b;
}

__device__ __forceinline__ Candidate warp_best(Candidate c)
{
    for (int offset = WARP / 2; offset > 0; offset /= 2) {
        const Candidate other = {__shfl_down_sync(FULL_MASK, c.cls, offset),
                                 __shfl_down_sync(FULL_MASK, c.value, offset),
                                 __shfl_down_sync(FULL_MASK, c.index, offset)};
        c = better_of(c, other);
    }
    return c;
}

// One block per image. The region lives in the image's output row, which is also the
// "selected" set every step reads; each step ends with one thread adding the winner.
__global__ void __launch_bounds__(MAX_THREADS)
grow_regions_kernel(const float* __restrict__ scores, const uint8_t* __restrict__ top,
                    const int32_t* __restrict__ sizes, int gh, int gw, float bonus, uint64_t seed,
                    const uint64_t* __restrict__ streams, uint8_t* out)
{
    __shared__ Candidate per_warp[MAX_THREADS / WARP];
    const int length = gh * gw;
    const int img = blockIdx.x, tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const size_t row = static_cast<size_t>(img) * length;
    const float* score = scores + row;
    const uint8_t* in_top = top + row;
    uint8_t* sel = out + row;
    const uint64_t key = eg_rng_key(seed, streams == nullptr ? 0 : streams[img]);
    const int size = min(max(sizes[img], 0), length);

    for (int t = tid; t < length; t += blockDim.x) sel[t] = 0;
    __syncthreads();
    for (int step = 0; step < size; ++step) {
        const uint64_t first = static_cast<uint64_t>(step) * static_cast<uint64_t>(length);
        Candidate best = nobody();
        for (int t = tid; t < length; t += blockDim.x) {
            const int cls = step == 0 ? 0 : (in_top[t] == 0) + sel[t];
            if (cls > best.cls) continue;  // cannot win: skip its draw
            int adjacent = 0;
            if (step > 0) {
                const int r = t / gw, c = t % gw;
                adjacent = (r > 0 && sel[t - gw]) || (r < gh - 1 && sel[t + gw]) ||
                           (c > 0 && sel[t - 1]) || (c < gw - 1 && sel[t + 1]);
            }
            const float u = eg_rng_uniform(key, first + static_cast<uint64_t>(t));
            best = better_of({cls, eg_grow_value(u, score[t], adjacent, bonus), t}, best);
        }
        best = warp_best(best);
        if (lane == 0) per_warp[warp] = best;
        __syncthreads();
        if (warp == 0) {
            best = lane < static_cast<int>(blockDim.x / WARP) ? per_warp[lane] : nobody();
            best = warp_best(best);
            if (lane == 0) sel[best.index] = 1;
        }
        __syncthreads();
    }
}

}  // namespace

extern "C" cudaError_t eg_cuda_grow_regions(const float* scores, const uint8_t* top,
                                            const int32_t* sizes, int n, int grid_h, int grid_w,
                                            float bonus, uint64_t seed, const uint64_t* streams,
                                            uint8_t* out, cudaStream_t stream)
{
    if (n < 0 || grid_h < 1 || grid_w < 1 || grid_h > INT_MAX / grid_w) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    if (scores == nullptr || top == nullptr || sizes == nullptr || out == nullptr)
        return cudaErrorInvalidValue;
    const int length = grid_h * grid_w;
    const int threads = min(MAX_THREADS, (length + WARP - 1) / WARP * WARP);
    grow_regions_kernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(
        scores, top, sizes, grid_h, grid_w, bonus, seed, streams, out);
    return cudaGetLastError();
}
