/*
 * The random numbers and the token selection rule of the mask samplers (defined in
 * masks.h), as inline functions compiled both by the C compiler and by nvcc, so the CPU
 * and GPU samplers share one definition.
 */
#ifndef EDGEGUARD_SAMPLING_H
#define EDGEGUARD_SAMPLING_H

#include <stdint.h>

#ifdef __CUDACC__
#define EG_INLINE static __host__ __device__ __forceinline__
#else
#define EG_INLINE static inline
#endif

#define EG_RNG_GAMMA 0x9e3779b97f4a7c15ULL

/* The SplitMix64 output function. */
EG_INLINE uint64_t eg_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

EG_INLINE uint64_t eg_rng_key(uint64_t seed, uint64_t stream)
{
    return eg_mix64(eg_mix64(seed) ^ stream);
}

EG_INLINE uint64_t eg_rng_draw(uint64_t key, uint64_t counter)
{
    return eg_mix64(key + (counter + 1) * EG_RNG_GAMMA);
}

/* The top 24 bits as a float32 on [0, 1): exactly representable. */
EG_INLINE float eg_rng_uniform(uint64_t key, uint64_t counter)
{
    return (float)(eg_rng_draw(key, counter) >> 40) * (1.0f / 16777216.0f);
}

/* A token's value in a growth step; two separately rounded float32 operations. */
EG_INLINE float eg_grow_value(float u, float score, int adjacent, float bonus)
{
    const float base = adjacent ? score + bonus : score;
    return u * base;
}

/* Whether candidate (class_a, value_a, index_a) beats (class_b, value_b, index_b). */
EG_INLINE int eg_better(int class_a, float value_a, int index_a, int class_b, float value_b,
                        int index_b)
{
    if (class_a != class_b) return class_a < class_b;
    if (value_a != value_b) return value_a > value_b;
    return index_a < index_b;
}

#endif /* EDGEGUARD_SAMPLING_H */
