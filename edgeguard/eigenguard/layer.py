"""EigenGuard: a spectral filter on a layer's features, so training on poisoned data does
not plant the trigger (shared/spec/eigenguard.md section 4).

During training each batch's features Z are decomposed (SVD through the Gram matrix, in
float64); the top-k singular values are brought to one common value and the rest scaled
by ``scale`` (0.001), so no single trigger-aligned direction can dominate while gradients
still reach every direction. With ``layout="sample"`` (the default) Z is (N, C*H*W), the
paper's matrix A: the next layers see each batch through its top-k directions only, and a
trigger carried by a few poisoned samples falls in the damped tail. Running statistics
(the top eigenpairs of the running covariance) make that a fixed low-rank map for
inference, so batch size 1 works and export writes it as constants. ``layout="channel"``
filters every pixel's channel vector instead (a C x C map, a 1x1 convolution at export).

Defaults (the sample layout, k=32, after layer1 or layer2) and the probe figures behind
them: docs/decisions.md.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from edgeguard.errors import InvalidArgumentError

log = logging.getLogger(__name__)

COMMON = ("sigma_k", "sigma_1", "mean")
TAILS = ("scale", "keep", "scale_sigma_k")
LAYOUTS = ("channel", "sample")
EVAL_MODES = ("running", "batch", "identity")
GRADIENTS = ("detached", "full")


@dataclass(frozen=True)
class EigenGuardConfig:
    """Settings of the spectral filter.

    Attributes:
        k: how many top singular values share one common value.
        scale: factor on the tail (singular values k+1...); 0.001 in the paper.
        common: the common value of the top k: "sigma_k" (damps the top values), "sigma_1",
            or "mean" (of sigma_1..sigma_k).
        tail: "scale" (sigma_i * scale), "keep" (untouched) or "scale_sigma_k" (all set to
            scale * sigma_k).
        center: subtract the batch mean before the decomposition and add it back after.
        layout: "sample": Z is (N, C*H*W) as the paper's matrix A; "channel": Z is
            (N*H*W, C), a per-pixel channel map.
        eval_mode: at inference, "running" (the fixed map from running statistics),
            "batch" (filter each test batch; results depend on the batch) or "identity".
        gradient: "detached" (gradients flow through the map with the basis held constant)
            or "full" (through the float64 eigendecomposition too).
        momentum: weight of each batch in the running statistics (BatchNorm-style).
    """

    k: int = 32
    scale: float = 0.001
    common: str = "sigma_k"
    tail: str = "scale"
    center: bool = True
    layout: str = "sample"
    eval_mode: str = "running"
    gradient: str = "detached"
    momentum: float = 0.1

    def __post_init__(self) -> None:
        for name, allowed in (("common", COMMON), ("tail", TAILS), ("layout", LAYOUTS),
                              ("eval_mode", EVAL_MODES), ("gradient", GRADIENTS)):
            if getattr(self, name) not in allowed:
                raise InvalidArgumentError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.k, int) or self.k < 1:
            raise InvalidArgumentError(f"k must be a positive integer, got {self.k!r}")
        if not 0.0 <= self.scale <= 1.0:
            raise InvalidArgumentError(f"scale must be in [0, 1], got {self.scale}")
        if not 0.0 < self.momentum <= 1.0:
            raise InvalidArgumentError(f"momentum must be in (0, 1], got {self.momentum}")
        if self.layout == "sample" and self.eval_mode == "running" and self.tail == "scale_sigma_k":
            raise InvalidArgumentError('tail "scale_sigma_k" needs the whole spectrum, which the running statistics '
                                       'of layout "sample" do not keep: use tail "scale" or "keep", or eval_mode "batch"')


def spectral_gains(sigma: torch.Tensor, config: EigenGuardConfig) -> torch.Tensor:
    """Per-direction gains sigma'/sigma for singular values sigma (descending, (r,))."""
    k = min(config.k, len(sigma))
    top = sigma[:k]
    common = {"sigma_k": top[-1], "sigma_1": top[0], "mean": top.mean()}[config.common]
    tiny = torch.finfo(sigma.dtype).tiny
    gains = torch.empty_like(sigma)
    gains[:k] = common / top.clamp_min(tiny)
    tail = sigma[k:]
    if config.tail == "scale":
        gains[k:] = config.scale
    elif config.tail == "keep":
        gains[k:] = 1.0
    else:
        gains[k:] = config.scale * top[-1] / tail.clamp_min(tiny)
    return gains


def _spectrum(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric Gram or covariance matrix -> (singular values descending, their vectors), float64."""
    eigenvalues, vectors = torch.linalg.eigh(gram.double())
    return eigenvalues.flip(0).clamp_min(0).sqrt(), vectors.flip(1)


def _filter_map(gram: torch.Tensor, config: EigenGuardConfig) -> torch.Tensor:
    """(D, D) symmetric Gram or covariance matrix -> the (D, D) map V diag(gains) V^T."""
    sigma, vectors = _spectrum(gram)
    return (vectors * spectral_gains(sigma, config)) @ vectors.T


class EigenGuard(nn.Module):
    """The spectral filter as a layer: (N, C, H, W) or (N, C) features in, same shape out.

    Running statistics (updated in training, BatchNorm-style) give the fixed inference map:
    channel layout, a (C, C) covariance; sample layout, the top eigenpairs of the running
    (D, D) covariance, D = C*H*W, kept as a (D, k + OVERSAMPLE) basis (the full matrix would
    not fit) and updated exactly from the batch Gram matrix at every step.

    Args:
        shape: the features of one sample, (C, H, W) or (C,); an int means (C,).
        config: the filter's settings.
    """

    OVERSAMPLE = 8  # extra running directions, so the top k are tracked through reorderings

    def __init__(self, shape: Union[int, Sequence[int]], config: EigenGuardConfig = EigenGuardConfig()):
        super().__init__()
        self.shape = (int(shape),) if isinstance(shape, int) else tuple(int(d) for d in shape)
        self.channels = self.shape[0]
        self.config = config
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        if config.layout == "channel":
            c = self.channels
            self.register_buffer("running_mean", torch.zeros(c))
            self.register_buffer("running_cov", torch.eye(c))
            self.register_buffer("eval_map", torch.eye(c))  # (C, C), applied as x @ eval_map
            self.register_buffer("eval_shift", torch.zeros(c))
        else:
            dim = math.prod(self.shape)
            rank = min(dim, config.k + self.OVERSAMPLE)
            self.register_buffer("running_mean", torch.zeros(dim))
            self.register_buffer("running_basis", torch.zeros(dim, rank))  # orthonormal columns
            self.register_buffer("running_eigvals", torch.zeros(rank))  # descending
            # out = tail * z + ((z @ eval_basis) * eval_gains) @ eval_basis.T + eval_shift
            self.register_buffer("eval_basis", torch.zeros(dim, min(dim, config.k)))
            self.register_buffer("eval_gains", torch.zeros(min(dim, config.k)))
            self.register_buffer("eval_shift", torch.zeros(dim))

    def extra_repr(self) -> str:
        c = self.config
        return f"{self.shape}, k={c.k}, scale={c.scale}, layout={c.layout}, eval_mode={c.eval_mode}"

    # -- the map ---------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape and not (self.config.layout == "channel" and x.dim() in (2, 4)
                                                    and x.shape[1] == self.channels):
            raise InvalidArgumentError(f"EigenGuard{self.shape} got features of shape {tuple(x.shape)}")

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        if self.config.layout == "sample":
            return x.flatten(1)
        return x.movedim(1, -1).reshape(-1, self.channels)

    def _from_rows(self, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.config.layout == "sample":
            return rows.reshape_as(like)
        shape = (like.shape[0], *like.shape[2:], self.channels)
        return rows.reshape(shape).movedim(-1, 1)

    @torch.autocast("cpu", enabled=False)  # bf16 rounding of the top part would swamp the 0.001 tail
    @torch.autocast("cuda", enabled=False)
    def _batch_filter(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        work = torch.float64 if x.dtype == torch.float64 else torch.float32  # bf16 under autocast: float32
        z = self._rows(x).to(work)
        mean = z.mean(dim=0) if cfg.center else torch.zeros_like(z[0])
        zc = z - mean
        sample = cfg.layout == "sample"
        # Channel layout: the D x D Gram of the columns. Sample layout: the N x N Gram of the
        # rows, whose eigenvectors U give Z' = U diag(gains) U^T Z (the same filter). The
        # products run in float32 (or the input's float64), the small eigendecomposition in float64.
        gram = (zc @ zc.T if sample else zc.T @ zc).double()
        if cfg.gradient == "detached":
            gram = gram.detach()
        sigma, vectors = _spectrum(gram)
        gains = spectral_gains(sigma, cfg)
        if cfg.tail == "scale_sigma_k":  # a gain per direction: the whole map
            mapping = ((vectors * gains) @ vectors.T).to(work)
            out = mapping @ zc if sample else zc @ mapping
        else:
            # Z' = t Z + (top-k part) (gains - t): only the top directions are needed.
            keep = self.running_eigvals.numel() if sample and self.training else min(cfg.k, len(sigma))
            top = vectors[:, :keep].to(work)
            proj = top.T @ zc if sample else zc @ top  # (keep, D) or (rows, keep)
            k = min(cfg.k, len(sigma))
            extra = (gains[:k] - self._tail_gain()).to(work)
            out = self._tail_gain() * zc + (top[:, :k] @ (extra[:, None] * proj[:k]) if sample
                                            else (proj[:, :k] * extra) @ top[:, :k].T)
        if self.training:
            with torch.no_grad():
                if sample:
                    if cfg.tail == "scale_sigma_k":  # the whole-map branch made no projections
                        proj = vectors[:, :self.running_eigvals.numel()].to(work).T @ zc
                    self._update_running_basis(mean.detach(), proj.detach(), sigma.detach(), len(z))
                else:
                    self._update_running_cov(mean.detach(), gram.detach() / max(len(z) - 1, 1))
        return self._from_rows((out + mean).to(x.dtype), x)

    def _momentum(self) -> float:
        return self.config.momentum if self.batches_seen > 0 else 1.0

    def _update_running_cov(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        m = self._momentum()
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
        self.running_cov.lerp_(cov.to(self.running_cov.dtype), m)
        self.batches_seen += 1

    def _update_running_basis(self, mean: torch.Tensor, proj: torch.Tensor, sigma: torch.Tensor, n: int) -> None:
        """Top eigenpairs of C' = (1 - m) C + m S, C = Q diag(lam) Q^T the running covariance
        and S = P^T P / (n - 1) the batch's, from its top-r projections P = U_r^T Zc (r, D).

        C' = A A^T for A = [Q sqrt((1-m) lam), sqrt(m / (n-1)) P^T]; Q and the rows of P are
        orthogonal, so A^T A is a small 2r square matrix whose eigenvectors W give C''s
        eigenvectors as A W / sqrt(eig).
        """
        m = self._momentum()
        rank = self.running_eigvals.numel()
        # The tall (D, r) products run in the basis' dtype; the small matrix in float64.
        q = self.running_basis
        proj = proj.to(q.dtype)
        a = ((1 - m) * self.running_eigvals.double().clamp_min(0)).sqrt()
        c = math.sqrt(m / max(n - 1, 1))
        cross = (a[:, None] * c) * (q.T @ proj.T).double()  # (r, r_batch)
        batch_var = (c * sigma[:len(proj)].double()) ** 2
        small = torch.cat([torch.cat([torch.diag(a * a), cross], 1),
                           torch.cat([cross.T, torch.diag(batch_var)], 1)], 0)
        eigvals, w = torch.linalg.eigh(small)
        eigvals, w = eigvals.flip(0)[:rank].clamp_min(0), w.flip(1)[:, :rank]
        # Directions without variance (rank-deficient batches) get a zero column, not noise / 0.
        live = eigvals > 1e-9 * eigvals.max().clamp_min(torch.finfo(torch.float64).tiny)
        eigvals = torch.where(live, eigvals, torch.zeros_like(eigvals))
        scale = torch.where(live, eigvals.rsqrt(), 0.0)
        basis = q @ (a[:, None] * w[:rank] * scale).to(q.dtype) + proj.T @ (c * w[rank:] * scale).to(q.dtype)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
        self.running_basis.copy_(basis.to(self.running_basis.dtype))
        self.running_eigvals.copy_(eigvals.to(self.running_eigvals.dtype))
        self.batches_seen += 1

    def _tail_gain(self) -> float:
        return 1.0 if self.config.tail == "keep" else self.config.scale

    @torch.no_grad()
    def freeze(self) -> None:
        """Recompute the fixed inference map from the running statistics."""
        cfg = self.config
        mean = self.running_mean.double() if cfg.center else torch.zeros_like(self.running_mean, dtype=torch.float64)
        if cfg.layout == "channel":
            mapping = _filter_map(self.running_cov, cfg)
            self.eval_map.copy_(mapping.to(self.eval_map.dtype))
            self.eval_shift.copy_((mean - mean @ mapping).to(self.eval_shift.dtype))
            return
        k = self.eval_gains.numel()
        basis = self.running_basis.double()[:, :k]
        gains = spectral_gains(self.running_eigvals.double().clamp_min(0).sqrt(), cfg)[:k] - self._tail_gain()
        self.eval_basis.copy_(basis.to(self.eval_basis.dtype))
        self.eval_gains.copy_(gains.to(self.eval_gains.dtype))
        # Centring: the map acts on z - mean and the mean is added back.
        shift = (1 - self._tail_gain()) * mean - ((mean @ basis) * gains) @ basis.T
        self.eval_shift.copy_(shift.to(self.eval_shift.dtype))

    def train(self, mode: bool = True) -> "EigenGuard":
        super().train(mode)
        if not mode and self.config.eval_mode == "running" and self.batches_seen > 0:
            self.freeze()
        return self

    # -- forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "batch" if self.training else self.config.eval_mode
        if mode == "identity":
            return x
        if mode == "batch":
            return self._batch_filter(x)
        self._check(x)
        if self.config.layout == "sample":
            # A low-rank constant branch plus the scaled input: exports as constants.
            rows = x.flatten(1)  # (not len(x): the batch axis stays symbolic in the export)
            basis = self.eval_basis.to(x.dtype)
            out = self._tail_gain() * rows + ((rows @ basis) * self.eval_gains.to(x.dtype)) @ basis.T
            return (out + self.eval_shift.to(x.dtype)).reshape_as(x)
        # x @ eval_map + shift per pixel, as a 1x1 convolution: exports as constants.
        weight = self.eval_map.T.to(x.dtype)
        if x.dim() == 2:
            return F.linear(x, weight, self.eval_shift.to(x.dtype))
        return F.conv2d(x, weight[:, :, None, None], self.eval_shift.to(x.dtype))


def _feature_shape(block: nn.Module, model: nn.Module, sample_shape) -> tuple[int, ...]:
    """The shape of one sample's features at the output of ``block``: from a probe pass."""
    seen = {}

    def record(_module, _inputs, out) -> None:  # returning None keeps the output
        seen["shape"] = out.shape

    hook = block.register_forward_hook(record)
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *sample_shape))
        model.train(was_training)
    finally:
        hook.remove()
    return tuple(int(d) for d in seen["shape"][1:])


DEFAULT_AT = "layer2"


def protect(model: nn.Module, at: str = DEFAULT_AT, config: EigenGuardConfig = EigenGuardConfig(),
            input_shape: tuple[int, int, int] = (3, 32, 32)) -> nn.Module:
    """Insert EigenGuard after the named block of ``model`` (in place; returns the model).

    Args:
        model: any torch module, e.g. the SDK's PreAct-ResNet classifiers and gaze regressor.
        at: dotted name of the block whose output is filtered ("layer1" .. "layer4"); the
            default, layer2, stops a patch trigger (so does layer1, at twice the cost; layer3
            does not).
        config: the filter's settings.
        input_shape: (C, H, W) of one input, for the probe pass that sizes the layer.
    """
    try:
        block = model.get_submodule(at)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise InvalidArgumentError(f"model has no block {at!r}; top-level blocks: {names}") from None
    if isinstance(block, nn.Sequential) and any(isinstance(m, EigenGuard) for m in block):
        raise InvalidArgumentError(f"block {at!r} is already protected")
    guard = EigenGuard(_feature_shape(block, model, input_shape), config)
    if isinstance(block, nn.Sequential):
        block.append(guard)  # the block's own parameter names stay as they were
    else:
        parent_name, _, child = at.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Sequential(block, guard))
    log.info("EigenGuard inserted after %s: %r", at, guard)
    return model


def guards(model: nn.Module) -> list[EigenGuard]:
    """The EigenGuard layers of a model, in module order."""
    return [m for m in model.modules() if isinstance(m, EigenGuard)]
