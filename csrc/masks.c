/*
 * Token-mask sampling and token reductions on the CPU; see masks.h for the definitions.
 *
 * Every function validates its whole input before writing, then works image by image
 * (OpenMP across images when compiled with it), each thread with its own workspace.
 */
#include "masks.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key;
    int token;
} keyed_t;

typedef struct {
    float score;
    int token;
} scored_t;

static int ascending_key(const void* x, const void* y)
{
    const keyed_t* a = x;
    const keyed_t* b = y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->token > b->token) - (a->token < b->token);
}

static int descending_score(const void* x, const void* y)
{
    const scored_t* a = x;
    const scored_t* b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->token > b->token) - (a->token < b->token);
}

int eg_stage1_masks(int num_tokens, int rounds, int per_round, double ratio, uint64_t seed,
                    float* out)
{
    if (num_tokens < 1 || rounds < 0 || per_round < 0) return EG_ERR_ARG;
    if (!(ratio >= 0.0 && ratio <= 1.0)) return EG_ERR_ARG; /* NaN fails too */
    const size_t length = (size_t)num_tokens;
    const size_t masks = (size_t)rounds * (size_t)per_round;
    if (masks == 0) return EG_OK;
    if (out == NULL) return EG_ERR_ARG;

    const size_t count = (size_t)(num_tokens * ratio);
    const uint64_t key = eg_rng_key(seed, 0);
    keyed_t* order = malloc(sizeof(keyed_t) * length * (size_t)per_round);
    if (order == NULL) return EG_ERR_NOMEM;
    memset(out, 0, sizeof(float) * masks * length);
    for (int r = 0; r < rounds; ++r) {
        for (int p = 0; p < per_round; ++p) {
            const uint64_t first = ((uint64_t)r * (uint64_t)per_round + (uint64_t)p) * length;
            keyed_t* perm = order + (size_t)p * length;
            for (int t = 0; t < num_tokens; ++t) {
                perm[t].key = eg_rng_draw(key, first + (uint64_t)t);
                perm[t].token = t;
            }
            qsort(perm, length, sizeof(keyed_t), ascending_key);
        }
        for (int i = 0; i < per_round; ++i) {
            float* mask = out + ((size_t)r * per_round + i) * length;
            for (size_t q = count * i; q < count * (i + 1); ++q) mask[order[q].token] = 1.0f;
        }
    }
    free(order);
    return EG_OK;
}

/* The step's winner among tokens that all have class 0 (list[0 .. count), all tokens when
   list is NULL): the largest value, ties to the lowest index (lists are ascending). Values
   are computed in a separate loop, which the compiler vectorises. */
EG_CPU_CLONES
static int best_open(const float* score, const uint8_t* adj, const int* list, int count,
                     int step, float bonus, uint64_t key, uint64_t first, float* values)
{
    for (int q = 0; q < count; ++q) {
        const int t = list == NULL ? q : list[q];
        const float u = eg_rng_uniform(key, first + (uint64_t)t);
        values[q] = step == 0 ? u * score[t] : eg_grow_value(u, score[t], adj[t], bonus);
    }
    int best = 0;
    for (int q = 1; q < count; ++q)
        if (values[q] > values[best]) best = q;
    return list == NULL ? best : list[best];
}

/* The step's winner over all tokens with their classes (once the top set is used up). */
static int best_any(const float* score, const uint8_t* top, const uint8_t* sel,
                    const uint8_t* adj, int length, float bonus, uint64_t key, uint64_t first)
{
    int best = -1, best_class = 0;
    float best_value = 0.0f;
    for (int t = 0; t < length; ++t) {
        const int cls = (top[t] == 0) + sel[t];
        if (best >= 0 && cls > best_class) continue; /* cannot win: skip its draw */
        const float value = eg_grow_value(eg_rng_uniform(key, first + (uint64_t)t), score[t], adj[t], bonus);
        if (best < 0 || eg_better(cls, value, t, best_class, best_value, best)) {
            best = t;
            best_class = cls;
            best_value = value;
        }
    }
    return best;
}

/* One image's region; sel (the output row) and adj hold L bytes, open and values L ints
   and floats. While top tokens remain unselected (class 0), only they can win, so steps
   scan just that list (kept in ascending token order, so ties still go to the lower index). */
static void grow_region(const float* score, const uint8_t* top, int size, int gh, int gw,
                        float bonus, uint64_t key, uint8_t* sel, uint8_t* adj, int* open,
                        float* values)
{
    const int length = gh * gw;
    int open_count = 0;
    memset(sel, 0, (size_t)length);
    memset(adj, 0, (size_t)length);
    for (int t = 0; t < length; ++t)
        if (top[t]) open[open_count++] = t;
    for (int step = 0; step < size; ++step) {
        const uint64_t first = (uint64_t)step * (uint64_t)length;
        int best;
        if (step == 0)
            best = best_open(score, adj, NULL, length, 0, bonus, key, first, values);
        else if (open_count > 0)
            best = best_open(score, adj, open, open_count, step, bonus, key, first, values);
        else
            best = best_any(score, top, sel, adj, length, bonus, key, first);
        if (top[best] && !sel[best]) {
            int q = 0;
            while (open[q] != best) ++q;
            memmove(open + q, open + q + 1, sizeof(int) * (size_t)(open_count - q - 1));
            --open_count;
        }
        sel[best] = 1;
        const int row = best / gw, col = best % gw;
        if (row > 0) adj[best - gw] = 1;
        if (row < gh - 1) adj[best + gw] = 1;
        if (col > 0) adj[best - 1] = 1;
        if (col < gw - 1) adj[best + 1] = 1;
    }
}

int eg_grow_regions(const float* scores, const uint8_t* top, const int32_t* sizes, int n,
                    int grid_h, int grid_w, float bonus, uint64_t seed, const uint64_t* streams,
                    uint8_t* out)
{
    if (n < 0 || grid_h < 1 || grid_w < 1 || grid_h > INT_MAX / grid_w) return EG_ERR_ARG;
    if (n == 0) return EG_OK;
    if (scores == NULL || top == NULL || sizes == NULL || out == NULL) return EG_ERR_ARG;
    const int length = grid_h * grid_w;
    for (int i = 0; i < n; ++i)
        if (sizes[i] < 0 || sizes[i] > length) return EG_ERR_ARG;

    const size_t stride = (size_t)length;
    long long work = 0;
    for (int i = 0; i < n; ++i) work += (long long)sizes[i] * length;
    int status = EG_OK;
#pragma omp parallel if (n > 1 && work >= EG_PARALLEL_MIN_WORK)
    {
        uint8_t* adj = malloc(stride);
        int* open = malloc(sizeof(int) * stride);
        float* values = malloc(sizeof(float) * stride);
        if (adj == NULL || open == NULL || values == NULL) {
#pragma omp atomic write
            status = EG_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic)
        for (int i = 0; i < n; ++i)
            if (adj != NULL && open != NULL && values != NULL)
                grow_region(scores + i * stride, top + i * stride, sizes[i], grid_h, grid_w, bonus,
                            eg_rng_key(seed, streams == NULL ? 0 : streams[i]), out + i * stride,
                            adj, open, values);
        free(adj);
        free(open);
        free(values);
    }
    return status;
}

int eg_nested_topk(const float* scores, const int32_t* counts, int n, int num_tokens, int levels,
                   float* out)
{
    if (n < 0 || num_tokens < 1 || levels < 0) return EG_ERR_ARG;
    if (n == 0 || levels == 0) return EG_OK;
    if (scores == NULL || counts == NULL || out == NULL) return EG_ERR_ARG;
    const size_t length = (size_t)num_tokens;
    for (size_t k = 0; k < (size_t)n * levels; ++k)
        if (counts[k] < 0 || counts[k] > num_tokens) return EG_ERR_ARG;

    int status = EG_OK;
#pragma omp parallel if (n > 1 && (long long)n * num_tokens * (levels + 8) >= EG_PARALLEL_MIN_WORK)
    {
        scored_t* rank = malloc(sizeof(scored_t) * length);
        if (rank == NULL) {
#pragma omp atomic write
            status = EG_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (int i = 0; i < n; ++i) {
            if (rank == NULL) continue;
            const float* s = scores + i * length;
            for (int t = 0; t < num_tokens; ++t) {
                rank[t].score = s[t];
                rank[t].token = t;
            }
            qsort(rank, length, sizeof(scored_t), descending_score);
            for (int k = 0; k < levels; ++k) {
                float* mask = out + ((size_t)i * levels + k) * length;
                memset(mask, 0, sizeof(float) * length);
                for (int q = 0; q < counts[(size_t)i * levels + k]; ++q) mask[rank[q].token] = 1.0f;
            }
        }
        free(rank);
    }
    return status;
}

int eg_tokens_from_map(const float* maps, const int32_t* pixel_token, int n, int h, int w,
                       int num_tokens, float empty, float* out)
{
    if (n < 0 || h < 1 || w < 1 || num_tokens < 1) return EG_ERR_ARG;
    if (n == 0) return EG_OK;
    if (maps == NULL || pixel_token == NULL || out == NULL) return EG_ERR_ARG;
    const size_t plane = (size_t)h * w, length = (size_t)num_tokens;
    for (size_t p = 0; p < plane; ++p)
        if (pixel_token[p] < 0 || pixel_token[p] >= num_tokens) return EG_ERR_ARG;

    size_t* pixels = calloc(length, sizeof(size_t));
    if (pixels == NULL) return EG_ERR_NOMEM;
    for (size_t p = 0; p < plane; ++p) ++pixels[pixel_token[p]];

    int status = EG_OK;
#pragma omp parallel if (n > 1 && (long long)n * plane >= EG_PARALLEL_MIN_WORK)
    {
        double* sums = malloc(sizeof(double) * length);
        if (sums == NULL) {
#pragma omp atomic write
            status = EG_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (int i = 0; i < n; ++i) {
            if (sums == NULL) continue;
            const float* map = maps + i * plane;
            for (size_t t = 0; t < length; ++t) sums[t] = 0.0;
            for (size_t p = 0; p < plane; ++p) sums[pixel_token[p]] += map[p];
            float* tok = out + i * length;
            for (size_t t = 0; t < length; ++t)
                tok[t] = pixels[t] ? (float)(sums[t] / (double)pixels[t]) : empty;
        }
        free(sums);
    }
    free(pixels);
    return status;
}
