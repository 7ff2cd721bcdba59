"""edgeguard.kernels mask sampling and token reductions against pure-numpy oracles.

The oracles below re-derive every definition of csrc/masks.h in numpy: the counter-based
SplitMix64 numbers, stage-1 permutation masks, region growing (both as masks.h states it
and as the official BDMAE formula), nested top-k and per-token means.
"""
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard import kernels
from edgeguard.errors import InvalidArgumentError, InvalidInputError

GAMMA = np.uint64(0x9E3779B97F4A7C15)


# -- numpy oracles ----------------------------------------------------------------------------
def mix64(z):
    z = np.asarray(z, np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def key(seed, stream=0):
    return mix64(mix64(np.uint64(seed)) ^ np.uint64(stream))


def draw(k, counters):
    with np.errstate(over="ignore"):
        return mix64(k + (np.asarray(counters, np.uint64) + np.uint64(1)) * GAMMA)


def uniform(k, counters):
    return (draw(k, counters) >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


def stage1_oracle(length, rounds, per_round, ratio, seed):
    k, count = key(seed, 0), int(length * ratio)
    out = np.zeros((rounds * per_round, length), np.float32)
    for r in range(rounds):
        perms = []
        for p in range(per_round):
            g = r * per_round + p
            perms.append(np.argsort(draw(k, g * length + np.arange(length)), kind="stable"))
        order = np.concatenate(perms) if perms else np.zeros(0, int)
        for i in range(per_round):
            out[r * per_round + i, order[count * i:count * (i + 1)]] = 1
    return out


def neighbours(sel, gh, gw):
    g = sel.reshape(gh, gw)
    near = np.zeros_like(g)
    near[1:] |= g[:-1]
    near[:-1] |= g[1:]
    near[:, 1:] |= g[:, :-1]
    near[:, :-1] |= g[:, 1:]
    return near.reshape(-1)


def grow_oracle(scores, top, sizes, grid, bonus, seed, streams=None):
    """masks.h's definition: lowest class, then largest float32 value, then lowest index."""
    gh, gw = grid
    n, length = scores.shape
    out = np.zeros((n, length), bool)
    for b in range(n):
        k = key(seed, 0 if streams is None else streams[b])
        s = scores[b].astype(np.float32)
        for step in range(sizes[b]):
            u = uniform(k, step * length + np.arange(length))
            if step == 0:
                cls, value = np.zeros(length, int), u * s
            else:
                adj = neighbours(out[b], gh, gw)
                cls = (~top[b]).astype(int) + out[b]
                value = u * np.where(adj, s + np.float32(bonus), s)
            out[b, np.lexsort((np.arange(length), -value, cls))[0]] = True
    return out


def grow_official(scores, top, sizes, grid, bonus, seed):
    """The official gen_local_sample formula in float64 with our random numbers."""
    gh, gw = grid
    n, length = scores.shape
    out = np.zeros((n, length), bool)
    for b in range(n):
        k = key(seed, 0)
        for step in range(sizes[b]):
            u = uniform(k, step * length + np.arange(length)).astype(np.float64)
            if step == 0:
                value = u * scores[b]
            else:
                adj = neighbours(out[b], gh, gw)
                value = u * (scores[b] + bonus * adj) - 100.0 * ~top[b] - 100.0 * out[b]
            out[b, np.argmax(value)] = True
    return out


def top_sets(scores, k):
    rank = np.argsort(-scores, axis=1, kind="stable")
    top = np.zeros(scores.shape, bool)
    np.put_along_axis(top, rank[:, :k], True, axis=1)
    return top


def connected(region, gh, gw):
    cells = set(np.flatnonzero(region).tolist())
    if not cells:
        return True
    start = next(iter(cells))
    seen, todo = {start}, deque([start])
    while todo:
        t = todo.popleft()
        r, c = divmod(t, gw)
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            u = rr * gw + cc
            if 0 <= rr < gh and 0 <= cc < gw and u in cells and u not in seen:
                seen.add(u)
                todo.append(u)
    return seen == cells


# -- random numbers ---------------------------------------------------------------------------
def test_splitmix64_known_answer():
    # SplitMix64 from state 0: 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f.
    from edgeguard import _kernels

    draws, uniforms = _kernels.rng_draws(0, 0, np.arange(3, dtype=np.uint64))
    assert [int(d) for d in draws] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    np.testing.assert_array_equal(uniforms, uniform(key(0), np.arange(3)))


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**40))
@settings(max_examples=50, deadline=None)
def test_rng_matches_numpy_oracle(seed, stream, start):
    from edgeguard import _kernels

    counters = np.arange(start, start + 17, dtype=np.uint64)
    draws, uniforms = _kernels.rng_draws(seed, stream, counters)
    k = key(seed, stream)
    np.testing.assert_array_equal(draws, draw(k, counters))
    np.testing.assert_array_equal(uniforms, uniform(k, counters))
    assert uniforms.dtype == np.float32 and (uniforms >= 0).all() and (uniforms < 1).all()


# -- stage 1 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("length,rounds,per_round,ratio", [(64, 5, 5, 0.75), (196, 5, 5, 0.75), (10, 2, 3, 0.5),
                                                           (7, 1, 4, 1.0), (9, 3, 2, 0.0)])
def test_stage1_matches_oracle(length, rounds, per_round, ratio):
    masks = kernels.stage1_masks(length, rounds, per_round, ratio, seed=11)
    np.testing.assert_array_equal(masks, stage1_oracle(length, rounds, per_round, ratio, 11))
    assert masks.shape == (rounds * per_round, length) and masks.dtype == np.float32


def test_stage1_invariants():
    length, count = 64, 48
    masks = kernels.stage1_masks(length, 5, 5, 0.75, seed=3).reshape(5, 5, length)
    assert (masks.sum(axis=2) <= count).all()
    # The 5 masks of a round cut 3.75 permutations: every token is masked at least once
    # and at most 4 times per round (a mask straddling two permutations may hold a token
    # twice, so it has fewer distinct tokens); the first mask of a round is a full count.
    per_token = masks.sum(axis=1)
    assert per_token.min() >= 1 and per_token.max() <= 4
    assert (masks[:, 0].sum(axis=1) == count).all()
    assert not np.array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks.reshape(25, -1), kernels.stage1_masks(length, 5, 5, 0.75, seed=3))
    assert not np.array_equal(masks.reshape(25, -1), kernels.stage1_masks(length, 5, 5, 0.75, seed=4))


# -- region growing ---------------------------------------------------------------------------
def _problem(n=6, grid=(8, 8), k=24, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.random((n, grid[0] * grid[1])).astype(np.float32)
    return scores, top_sets(scores, k), rng.integers(1, max(k // 2, 1) + 1, n).astype(np.int32)


@pytest.mark.parametrize("grid,k", [((8, 8), 24), ((14, 14), 60), ((3, 5), 6), ((1, 9), 4)])
def test_grow_regions_matches_both_oracles(grid, k):
    scores, top, sizes = _problem(grid=grid, k=k, seed=k)
    regions = kernels.grow_regions(scores, top, sizes, grid, bonus=0.5, seed=5)
    np.testing.assert_array_equal(regions, grow_oracle(scores, top, sizes, grid, 0.5, 5))
    np.testing.assert_array_equal(regions, grow_official(scores.astype(np.float64), top, sizes, grid, 0.5, 5))


def test_grow_regions_streams_match_oracle():
    scores, top, sizes = _problem()
    streams = np.arange(6, dtype=np.uint64) * 977
    regions = kernels.grow_regions(scores, top, sizes, (8, 8), bonus=0.5, seed=2, streams=streams)
    np.testing.assert_array_equal(regions, grow_oracle(scores, top, sizes, (8, 8), 0.5, 2, streams))


@given(st.integers(0, 2**32), st.integers(1, 30), st.sampled_from([(8, 8), (6, 10), (14, 14)]))
@settings(max_examples=30, deadline=None)
def test_grow_regions_invariants(seed, k, grid):
    scores, top, sizes = _problem(n=4, grid=grid, k=k, seed=seed)
    regions = kernels.grow_regions(scores, top, sizes, grid, bonus=0.5, seed=seed)
    # Sizes: exact while the top set has tokens left (k - 1 >= size - 1 here).
    np.testing.assert_array_equal(regions.sum(axis=1), sizes)
    # Inside the top-K set, apart from the seed token (drawn over all tokens).
    assert (regions & ~top).sum(axis=1).max() <= 1
    # Deterministic, and per image: the batch does not matter.
    np.testing.assert_array_equal(regions, kernels.grow_regions(scores, top, sizes, grid, bonus=0.5, seed=seed))
    alone = kernels.grow_regions(scores[2:3], top[2:3], sizes[2:3], grid, bonus=0.5, seed=seed)
    np.testing.assert_array_equal(alone[0], regions[2])


def test_neighbour_bonus_makes_regions_connected():
    # A bonus above every score makes each step take a neighbour while one is in the top set.
    rng = np.random.default_rng(0)
    scores = rng.random((40, 64)).astype(np.float32)
    top, sizes = np.ones_like(scores, bool), np.full(40, 12, np.int32)
    strong = kernels.grow_regions(scores, top, sizes, (8, 8), bonus=50.0, seed=1)
    assert all(connected(r, 8, 8) for r in strong)
    # The published bonus (0.5) connects more regions than no bonus at all.
    def share(bonus):
        regions = kernels.grow_regions(scores, top, sizes, (8, 8), bonus=bonus, seed=1)
        return np.mean([connected(r, 8, 8) for r in regions])
    assert share(0.5) > share(0.0)


def test_grow_regions_edge_cases():
    scores, top, _ = _problem(n=2)
    empty = kernels.grow_regions(scores, top, np.zeros(2, np.int32), (8, 8), seed=0)
    assert not empty.any()
    full = kernels.grow_regions(scores, np.ones_like(top), 64, (8, 8), seed=0)
    assert full.all()
    # A top set smaller than the size: once it is used up, selected top tokens and tokens
    # outside it tie on class, so the region may repeat a token (official behaviour).
    small_top = top_sets(scores, 3)
    small = kernels.grow_regions(scores, small_top, 10, (8, 8), seed=0)
    assert ((small & small_top).sum(axis=1) == 3).all() and (small.sum(axis=1) <= 10).all()
    np.testing.assert_array_equal(small, grow_oracle(scores, small_top, [10, 10], (8, 8), 0.5, 0))
    assert kernels.grow_regions(scores[:0], top[:0], np.zeros(0, np.int32), (8, 8), seed=0).shape == (0, 64)


def test_different_seeds_and_streams_differ():
    scores, top, sizes = _problem(n=1, k=40)
    sizes[:] = 15
    a = kernels.grow_regions(scores, top, sizes, (8, 8), seed=1)
    b = kernels.grow_regions(scores, top, sizes, (8, 8), seed=2)
    c = kernels.grow_regions(scores, top, sizes, (8, 8), seed=1, streams=np.array([7], np.uint64))
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


# -- nested top-k and token means ---------------------------------------------------------------
def test_nested_topk_matches_oracle_and_nests():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, (7, 64)).astype(np.float32)  # many ties: stable order matters
    counts = np.sort(rng.integers(0, 65, (7, 5)), axis=1)
    masks = kernels.nested_topk(scores, counts)
    rank = np.argsort(-scores, axis=1, kind="stable")
    for b in range(7):
        for t in range(5):
            expected = np.zeros(64, np.float32)
            expected[rank[b, :counts[b, t]]] = 1
            np.testing.assert_array_equal(masks[b, t], expected)
    np.testing.assert_array_equal(masks.sum(axis=2), counts)
    assert (np.diff(masks, axis=1) >= 0).all()  # growing counts give nested masks


def test_tokens_from_map_matches_bincount():
    rng = np.random.default_rng(2)
    maps = rng.random((3, 32, 32)).astype(np.float32)
    pixel_token = rng.integers(0, 20, (32, 32))
    pixel_token[pixel_token == 7] = 8  # token 7 owns no pixel
    out = kernels.tokens_from_map(maps, pixel_token, 20, empty=-1.0)
    flat = pixel_token.reshape(-1)
    counts = np.bincount(flat, minlength=20)
    for b in range(3):
        sums = np.bincount(flat, weights=maps[b].reshape(-1).astype(np.float64), minlength=20)
        expected = np.where(counts > 0, sums / np.maximum(counts, 1), -1.0)
        np.testing.assert_allclose(out[b], expected, rtol=1e-6)
    assert out[0, 7] == -1.0


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda s, t: kernels.grow_regions(s, t, 65, (8, 8), seed=0),
    lambda s, t: kernels.grow_regions(s, t, 3, (8, 9), seed=0),
    lambda s, t: kernels.grow_regions(s, t.astype(np.uint8), 3, (8, 8), seed=0),
    lambda s, t: kernels.grow_regions(np.where(t, np.nan, s), t, 3, (8, 8), seed=0),
    lambda s, t: kernels.grow_regions(s.astype(np.int64), t, 3, (8, 8), seed=0),
    lambda s, t: kernels.grow_regions(s, t, 3, (8, 8), seed=0, streams=np.array([-1, 0])),
    lambda s, t: kernels.nested_topk(s, np.array([[65], [1]])),
    lambda s, t: kernels.tokens_from_map(s.reshape(2, 8, 8), np.full((8, 8), 64), 64),
])
def test_bad_inputs_raise_invalid_input(call):
    scores, top, _ = _problem(n=2)
    with pytest.raises(InvalidInputError):
        call(scores, top)


@pytest.mark.parametrize("call", [
    lambda: kernels.stage1_masks(64, 5, 5, 1.5, seed=0),
    lambda: kernels.stage1_masks(0, 5, 5, 0.5, seed=0),
    lambda: kernels.stage1_masks(64, 5, 5, 0.5, seed=-1),
    lambda: kernels.grow_regions(np.zeros((1, 4), np.float32), np.ones((1, 4), bool), 1, (2, 2), seed=2**64),
    lambda: kernels.grow_regions(np.zeros((1, 4), np.float32), np.ones((1, 4), bool), 1, (2, 2), seed=0,
                                 bonus=float("inf")),
])
def test_bad_arguments_raise_invalid_argument(call):
    with pytest.raises(InvalidArgumentError):
        call()


# -- CUDA ---------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_regions_equal_cpu():
    torch = pytest.importorskip("torch")
    if not kernels.cuda_available():  # the device itself: conftest's gpu marker
        pytest.skip("needs edgeguard._cuda (built where nvcc is found at install)")
    for grid, k in (((8, 8), 24), ((14, 14), 80), ((3, 5), 6)):
        scores, top, sizes = _problem(n=33, grid=grid, k=k, seed=k)
        streams = np.arange(33, dtype=np.uint64)
        expected = kernels.grow_regions(scores, top, sizes, grid, bonus=0.5, seed=9, streams=streams)
        out = torch.zeros(scores.shape, dtype=torch.bool, device="cuda")
        kernels.grow_regions_device(torch.from_numpy(scores).cuda(), torch.from_numpy(top).cuda(),
                                    torch.from_numpy(sizes).cuda(), out, grid, bonus=0.5, seed=9,
                                    streams=torch.from_numpy(streams.astype(np.int64)).cuda().view(torch.uint64),
                                    stream=torch.cuda.current_stream().cuda_stream)
        torch.cuda.synchronize()
        np.testing.assert_array_equal(out.cpu().numpy(), expected)
