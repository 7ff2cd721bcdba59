// Per-token SSIM on the GPU; see edgeguard_cuda.h for the contract and ssim.h for the
// definition (Gaussian 11x11, sigma 1.5, C1 = 1e-4, C2 = 9e-4, channel-averaged).
#include "edgeguard_cuda.h"

#include <climits>

namespace {

constexpr int R = EG_SSIM_RADIUS;
constexpr int TAPS = 2 * R + 1;
constexpr int TILE = 16;            // output pixels per sub-tile side; block = TILE x TILE threads
constexpr int SPAN = TILE + 2 * R;  // sub-tile plus halo
constexpr int POINT_THREADS = 128;
constexpr float C1 = 0.01f * 0.01f;
constexpr float C2 = 0.03f * 0.03f;

// scipy.ndimage._gaussian_kernel1d(1.5, 0, 5), rounded to float32.
__constant__ float kW[TAPS] = {
    1.028380124e-03f, 7.598758209e-03f, 3.600077331e-02f, 1.093606874e-01f,
    2.130055428e-01f, 2.660117149e-01f, 2.130055428e-01f, 1.093606874e-01f,
    3.600077331e-02f, 7.598758209e-03f, 1.028380124e-03f,
};

__device__ __forceinline__ int border_index(int i, int n, int border)
{
    if (border == EG_BORDER_REPLICATE) return min(max(i, 0), n - 1);
    const int period = 2 * n;  // reflect: d c b a | a b c d | d c b a
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

// Moments of (a - ka, b - kb) over the window -> SSIM. Variance and covariance do not
// change under the shift; the means get ka, kb back.
__device__ __forceinline__ float ssim_from_moments(float ma, float mb, float maa, float mbb,
                                                   float mab, float ka, float kb)
{
    const float va = maa - ma * ma, vb = mbb - mb * mb, vab = mab - ma * mb;
    const float ua = ma + ka, ub = mb + kb;
    return ((2.0f * ua * ub + C1) * (2.0f * vab + C2)) / ((ua * ua + ub * ub + C1) * (va + vb + C2));
}

// One block covers ty_n x tx_n whole tokens (a group of tokens no taller or wider than TILE
// pixels, or a single larger token), walking its pixels in TILE x TILE sub-tiles. Each
// thread always lands in the same token, so token sums need no atomics.
__global__ void __launch_bounds__(TILE * TILE)
ssim_tokens_mean_kernel(const float* __restrict__ a, const float* __restrict__ b, int c, int h,
                        int w, int border, int gh, int gw, int th, int tw, int ky, int kx,
                        int blocks_y, int blocks_x, float* __restrict__ out)
{
    __shared__ float tile_a[SPAN][SPAN];
    __shared__ float tile_b[SPAN][SPAN];
    __shared__ float hmom[5][SPAN][TILE];  // horizontal pass: a, b, a^2, b^2, ab
    __shared__ float red[TILE][TILE];

    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * TILE + tx;
    const int bx = blockIdx.x % blocks_x;
    const int by = (blockIdx.x / blocks_x) % blocks_y;
    const int img = blockIdx.x / (blocks_x * blocks_y);

    const int tok_y0 = by * ky, tok_x0 = bx * kx;
    const int ty_n = min(ky, gh - tok_y0), tx_n = min(kx, gw - tok_x0);
    const int rh = ty_n * th, rw = tx_n * tw;  // pixel extent of this block's tokens
    const size_t plane = static_cast<size_t>(h) * w;
    const float* a_img = a + static_cast<size_t>(img) * c * plane;
    const float* b_img = b + static_cast<size_t>(img) * c * plane;

    float sum = 0.0f;
    for (int sy = 0; sy < rh; sy += TILE) {
        for (int sx = 0; sx < rw; sx += TILE) {
            const int oy = tok_y0 * th + sy, ox = tok_x0 * tw + sx;  // sub-tile origin
            const bool active = sy + ty < rh && sx + tx < rw;
            for (int ch = 0; ch < c; ++ch) {
                const float* pa = a_img + ch * plane;
                const float* pb = b_img + ch * plane;
                for (int i = tid; i < SPAN * SPAN; i += TILE * TILE) {
                    const int ly = i / SPAN, lx = i % SPAN;
                    const size_t g = static_cast<size_t>(border_index(oy - R + ly, h, border)) * w +
                                     border_index(ox - R + lx, w, border);
                    tile_a[ly][lx] = __ldg(pa + g);
                    tile_b[ly][lx] = __ldg(pb + g);
                }
                __syncthreads();
                const float ka = tile_a[R + TILE / 2][R + TILE / 2];
                const float kb = tile_b[R + TILE / 2][R + TILE / 2];
                for (int i = tid; i < SPAN * TILE; i += TILE * TILE) {
                    const int ly = i / TILE, lx = i % TILE;
                    float m0 = 0.0f, m1 = 0.0f, m2 = 0.0f, m3 = 0.0f, m4 = 0.0f;
#pragma unroll
                    for (int k = 0; k < TAPS; ++k) {
                        const float va = tile_a[ly][lx + k] - ka, vb = tile_b[ly][lx + k] - kb;
                        const float wk = kW[k];
                        m0 += wk * va;
                        m1 += wk * vb;
                        m2 += wk * va * va;
                        m3 += wk * vb * vb;
                        m4 += wk * va * vb;
                    }
                    hmom[0][ly][lx] = m0;
                    hmom[1][ly][lx] = m1;
                    hmom[2][ly][lx] = m2;
                    hmom[3][ly][lx] = m3;
                    hmom[4][ly][lx] = m4;
                }
                __syncthreads();
                if (active) {
                    float m0 = 0.0f, m1 = 0.0f, m2 = 0.0f, m3 = 0.0f, m4 = 0.0f;
#pragma unroll
                    for (int k = 0; k < TAPS; ++k) {
                        const float wk = kW[k];
                        m0 += wk * hmom[0][ty + k][tx];
                        m1 += wk * hmom[1][ty + k][tx];
                        m2 += wk * hmom[2][ty + k][tx];
                        m3 += wk * hmom[3][ty + k][tx];
                        m4 += wk * hmom[4][ty + k][tx];
                    }
                    sum += ssim_from_moments(m0, m1, m2, m3, m4, ka, kb);
                }
                __syncthreads();  // the next channel overwrites the tiles
            }
        }
    }

    // Thread (ty, tx) belongs to local token (ty / tth, tx / ttw). Sum each token's
    // threads along x, then along y, in a fixed order.
    const int tth = min(th, TILE), ttw = min(tw, TILE);
    const int lty = ty / tth, ltx = tx / ttw;
    const bool row_head = tx % ttw == 0 && ltx < tx_n;
    red[ty][tx] = sum;
    __syncthreads();
    float row_sum = 0.0f;
    if (row_head)
        for (int u = 0; u < ttw; ++u) row_sum += red[ty][tx + u];
    __syncthreads();
    if (row_head) red[ty][tx] = row_sum;
    __syncthreads();
    if (row_head && ty % tth == 0 && lty < ty_n) {
        float total = 0.0f;
        for (int v = 0; v < tth; ++v) total += red[ty + v][tx];
        const size_t t = (static_cast<size_t>(img) * gh + tok_y0 + lty) * gw + tok_x0 + ltx;
        out[t] = total / (static_cast<float>(c) * th * tw);
    }
}

// One thread per token: the map pixel the token samples, from its 11x11 window.
__global__ void __launch_bounds__(POINT_THREADS)
ssim_tokens_point_kernel(const float* __restrict__ a, const float* __restrict__ b, long long total,
                         int c, int h, int w, int border, int gh, int gw, float scale_h,
                         float scale_w, float* __restrict__ out)
{
    const long long t = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= total) return;
    const int j = static_cast<int>(t % gw);
    const int i = static_cast<int>((t / gw) % gh);
    const long long img = t / (static_cast<long long>(gh) * gw);
    // torch nearest: floor(i * scale) in float32, clamped (see ssim.h)
    const int py = min(static_cast<int>(floorf(__fmul_rn(static_cast<float>(i), scale_h))), h - 1);
    const int px = min(static_cast<int>(floorf(__fmul_rn(static_cast<float>(j), scale_w))), w - 1);

    int rows[TAPS], cols[TAPS];
#pragma unroll
    for (int k = 0; k < TAPS; ++k) {
        rows[k] = border_index(py - R + k, h, border);
        cols[k] = border_index(px - R + k, w, border);
    }
    const size_t plane = static_cast<size_t>(h) * w;
    float s = 0.0f;
    for (int ch = 0; ch < c; ++ch) {
        const float* pa = a + (static_cast<size_t>(img) * c + ch) * plane;
        const float* pb = b + (static_cast<size_t>(img) * c + ch) * plane;
        const float ka = __ldg(pa + static_cast<size_t>(py) * w + px);
        const float kb = __ldg(pb + static_cast<size_t>(py) * w + px);
        float m0 = 0.0f, m1 = 0.0f, m2 = 0.0f, m3 = 0.0f, m4 = 0.0f;
#pragma unroll
        for (int ky = 0; ky < TAPS; ++ky) {
            const float* ra = pa + static_cast<size_t>(rows[ky]) * w;
            const float* rb = pb + static_cast<size_t>(rows[ky]) * w;
            float h0 = 0.0f, h1 = 0.0f, h2 = 0.0f, h3 = 0.0f, h4 = 0.0f;
#pragma unroll
            for (int kx = 0; kx < TAPS; ++kx) {
                const float va = __ldg(ra + cols[kx]) - ka, vb = __ldg(rb + cols[kx]) - kb;
                const float wk = kW[kx];
                h0 += wk * va;
                h1 += wk * vb;
                h2 += wk * va * va;
                h3 += wk * vb * vb;
                h4 += wk * va * vb;
            }
            const float wk = kW[ky];
            m0 += wk * h0;
            m1 += wk * h1;
            m2 += wk * h2;
            m3 += wk * h3;
            m4 += wk * h4;
        }
        s += ssim_from_moments(m0, m1, m2, m3, m4, ka, kb);
    }
    out[t] = s / static_cast<float>(c);
}

}  // namespace

extern "C" cudaError_t eg_cuda_ssim_tokens(const float* a, const float* b, int n, int c, int h,
                                           int w, int border, int grid_h, int grid_w, int mode,
                                           float* out_tokens, cudaStream_t stream)
{
    if (n < 0 || c < 1 || h < 1 || w < 1 || grid_h < 1 || grid_w < 1) return cudaErrorInvalidValue;
    if (h > INT_MAX / 4 || w > INT_MAX / 4) return cudaErrorInvalidValue;
    if (border != EG_BORDER_REFLECT && border != EG_BORDER_REPLICATE) return cudaErrorInvalidValue;
    if (mode == EG_TOKENS_MEAN) {
        if (h % grid_h != 0 || w % grid_w != 0) return cudaErrorInvalidValue;
    } else if (mode == EG_TOKENS_POINT) {
        if (grid_h > h || grid_w > w) return cudaErrorInvalidValue;
    } else {
        return cudaErrorInvalidValue;
    }
    if (n == 0) return cudaSuccess;
    if (a == nullptr || b == nullptr || out_tokens == nullptr) return cudaErrorInvalidValue;

    if (mode == EG_TOKENS_MEAN) {
        const int th = h / grid_h, tw = w / grid_w;
        const int ky = th < TILE ? TILE / th : 1, kx = tw < TILE ? TILE / tw : 1;
        const int blocks_y = (grid_h + ky - 1) / ky, blocks_x = (grid_w + kx - 1) / kx;
        const long long blocks = static_cast<long long>(n) * blocks_y * blocks_x;
        if (blocks > INT_MAX) return cudaErrorInvalidValue;
        ssim_tokens_mean_kernel<<<static_cast<unsigned>(blocks), dim3(TILE, TILE), 0, stream>>>(
            a, b, c, h, w, border, grid_h, grid_w, th, tw, ky, kx, blocks_y, blocks_x, out_tokens);
    } else {
        const float scale_h = static_cast<float>(h) / static_cast<float>(grid_h);
        const float scale_w = static_cast<float>(w) / static_cast<float>(grid_w);
        const long long total = static_cast<long long>(n) * grid_h * grid_w;
        const long long blocks = (total + POINT_THREADS - 1) / POINT_THREADS;
        if (blocks > INT_MAX) return cudaErrorInvalidValue;
        ssim_tokens_point_kernel<<<static_cast<unsigned>(blocks), POINT_THREADS, 0, stream>>>(
            a, b, total, c, h, w, border, grid_h, grid_w, scale_h, scale_w, out_tokens);
    }
    return cudaGetLastError();
}
