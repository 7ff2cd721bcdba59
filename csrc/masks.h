/*
 * Token-mask sampling for the BDMAE purifier (shared/spec/bdmae.md sections 2-3), seeded,
 * deterministic and per image, on the CPU. csrc/edgeguard_cuda.h has the same region
 * growing on the GPU, with the same random numbers, bit for bit.
 *
 * Random numbers (counter based; a numpy reference reproduces them exactly):
 *   mix64(z)            the SplitMix64 output function: z ^= z >> 30; z *= 0xbf58476d1ce4e5b9;
 *                       z ^= z >> 27; z *= 0x94d049bb133111eb; z ^= z >> 31 (uint64, wrapping).
 *   key(seed, stream)   mix64(mix64(seed) ^ stream): one independent stream per (seed, stream).
 *   draw(key, i)        mix64(key + (i + 1) * 0x9e3779b97f4a7c15), i = 0, 1, ...: the i-th output
 *                       of a SplitMix64 generator whose state starts at key. Random access, so
 *                       every token of every step can draw its number in any order or thread.
 *   uniform(key, i)     (float)(draw(key, i) >> 40) * 2^-24: a float32 on [0, 1), exact.
 *
 * Stage-1 masks (eg_stage1_masks), key = key(seed, 0):
 *   count = (int)(L * ratio) (double arithmetic, truncation, as Python's int(L * ratio)).
 *   Permutation g (0 <= g < rounds * per_round) lists the tokens in ascending order of
 *   draw(key, g * L + t), ties by token index. Round r concatenates permutations
 *   r * per_round .. r * per_round + per_round - 1; its mask i (output row r * per_round + i)
 *   holds the tokens at positions [count * i, count * (i + 1)) of that list.
 *
 * Region growing (eg_grow_regions), image b, key = key(seed, streams[b]) (stream 0 without
 * streams), n = sizes[b] steps. Step j (0 <= j < n) gives every token t a class and a value:
 *   u = uniform(key, j * L + t);
 *   j == 0 (seed):  class 0, value = u * s[t];
 *   j >= 1 (grow):  class = [t not in top] + [t selected], value = u * (adj ? s[t] + bonus : s[t]),
 *                   adj = [a 4-neighbour of t on the grid_h x grid_w grid is selected];
 * and selects the token of the lowest class, then the largest value, then the lowest index.
 * Values are float32: s + bonus, then u * that, each rounded once (no fused multiply-add).
 * This is argmax(u * (S + bonus * adj) - 100 * [not in top] - 100 * [selected]) of the
 * official code wherever |S| + |bonus| < 50, so that the classes cannot overlap. The region
 * has exactly n tokens when at least n - 1 tokens of the top set differ from the seed; past
 * that a step may pick a selected token again (as the official formula does) and the region
 * stays smaller. n = 0 gives an empty region. An image's region depends only on its own
 * inputs, seed and stream, never on the rest of the batch.
 *
 * Nested top-k (eg_nested_topk): tokens ranked by descending score, ties by lower index
 * (a stable sort); mask level k holds the first counts[k] tokens of that ranking.
 *
 * Token reduction (eg_tokens_from_map): the mean of a map over each token's pixels, given
 * any pixel -> token index map; tokens without pixels get a fill value.
 *
 * Scores must be finite, with s + bonus finite in float32; the functions do not check the
 * values. Arrays are C-contiguous; booleans are one byte, 0 or 1. The functions are
 * re-entrant; when built with OpenMP the batch is split across threads.
 * Status codes are those of ssim.h.
 */
#ifndef EDGEGUARD_MASKS_H
#define EDGEGUARD_MASKS_H

#include <stdint.h>

#include "sampling.h" /* the random numbers and the selection rule, shared with CUDA */
#include "ssim.h"     /* EG_OK, EG_ERR_ARG, EG_ERR_NOMEM */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Stage-1 masks: out (rounds * per_round, num_tokens) float32, 0 or 1.
 * EG_ERR_ARG: num_tokens < 1, rounds < 0, per_round < 0, ratio outside [0, 1] (or NaN),
 * a null out with output to write. EG_ERR_NOMEM when the workspace cannot be allocated.
 */
int eg_stage1_masks(int num_tokens, int rounds, int per_round, double ratio, uint64_t seed,
                    float* out);

/*
 * Region growing: scores (n, grid_h * grid_w) float32, top (n, L) uint8 (the top-K set),
 * sizes (n,) int32 in [0, L], streams (n,) uint64 or NULL (all 0); out (n, L) uint8.
 * EG_ERR_ARG: n < 0, grid < 1, L overflowing int, a size outside [0, L], null arrays.
 */
int eg_grow_regions(const float* scores, const uint8_t* top, const int32_t* sizes, int n,
                    int grid_h, int grid_w, float bonus, uint64_t seed, const uint64_t* streams,
                    uint8_t* out);

/*
 * Nested top-k masks: scores (n, num_tokens) float32, counts (n, levels) int32 in
 * [0, num_tokens]; out (n, levels, num_tokens) float32, 0 or 1.
 * EG_ERR_ARG: n < 0, num_tokens < 1, levels < 0, a count out of range, null arrays.
 */
int eg_nested_topk(const float* scores, const int32_t* counts, int n, int num_tokens, int levels,
                   float* out);

/*
 * Per-token mean of maps: maps (n, h, w) float32, pixel_token (h, w) int32 in
 * [0, num_tokens); out (n, num_tokens) float32, `empty` where a token has no pixel.
 * Sums are taken in double. EG_ERR_ARG: n < 0, h, w or num_tokens < 1, an index out of
 * range, null arrays.
 */
int eg_tokens_from_map(const float* maps, const int32_t* pixel_token, int n, int h, int w,
                       int num_tokens, float empty, float* out);

#ifdef __cplusplus
}
#endif

#endif /* EDGEGUARD_MASKS_H */
