"""DRMGuard: decide whether a regression model is backdoored by reverse engineering a trigger
(shared/spec/drmguard.md sections 4 and 5).

A generator G is trained against the frozen model f = H(F(x)), H linear with rows w_j, on a
few clean images, to minimise

    L_out + lambda_sim * L_sim + lambda_feat * r_f
    L_out = sum_j Var_i f_j(G(x_i)) / sum_j Var_i f_j(x_i)  (outputs collapse to one vector)
    r_f   = sum_j Var_i angle(F(G(x_i)), w_j)             (features at a fixed angle to each w_j)
    L_sim = mean((1 + gamma * M) * |G(x) - x|)            (small change; M: momentum saliency)

Two readings are ours where the paper is silent. M, the "momentum reverse trigger" weighting:
a running average (beta) of the normalised |d(L_out + lambda_feat * r_f) / dx'| map (the
model-side loss, whose gradient the step computes anyway), so editing the pixels the model
attends to costs more. L_out is divided by the clean images' output variance (the
paper's scale is unknown), so the trade-off against L_sim does not depend on output units.
A backdoored model collapses under a small, trigger-sized change; a benign one needs a large
one or does not collapse. The statistic is I(f) = mean |G(x) - x| over the clean images; a
model is flagged when I(f) < ``threshold`` (the paper's 0.03; calibrate on benign models,
see ``calibrate``) and the outputs did collapse (residual variance below ``collapse`` of the
clean one): a small change that leaves the outputs spread out is no trigger.

    result = scan(model, clean_images)      # (N, H, W, C) uint8 or (N, C, H, W) float in [0, 1]
    print(result)                           # statistic, threshold, verdict, estimated target
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeguard.data.dataset import to_float_nchw
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.scan.generator import MaskPatternGenerator, TriggerGenerator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DRMGuardConfig:
    """Settings of the scan; the published gaze defaults where they exist.

    Attributes:
        steps, batch_size: generator optimisation (the paper: 2000 steps of 50 images).
        lr: Adam learning rate of the generator.
        lambda_sim: weight of the similarity term. The paper's gaze value is 20 (head pose
            10) for its unnormalised L_out; with L_out normalised by the clean variance, 20
            let the generator redraw the pupil of a backdoored SynthGaze model (a collapse
            that any gaze model allows) instead of finding its trigger; 80 found the trigger
            (probe on zoo models: BadNets statistic 0.0044 vs a benign model's 0.0115).
            None: 80 for regression, 0.5 for softmax outputs, whose variance loss is far
            flatter (confident classifiers saturate the softmax): at 5 or 80 the generator of
            a SynthSigns classifier never left the identity, at 0.5 a BadNets model collapsed
            at a third of a benign model's change (probe on two zoo models).
        lambda_feat: weight of the feature-angle variance (gaze 800; head pose 100).
        mtr_beta, mtr_gamma: momentum and strength of the saliency weighting of L_sim.
        threshold: flag as backdoored when the statistic is below it (the paper's 0.03).
        collapse: ... and the generated outputs' variance is below this fraction of the clean one.
        generator_width: channels of the generator's first stage.
        offset: "residual" trigger: add a free per-pixel offset to the generated residual.
        trigger: "residual" (x' = x + G(x), L_sim on |x' - x|) or "mask_pattern" (x' = (1 - m) x
            + m p with m, p generated, L_sim on m: a change is priced by its area, not by its
            intensity); see ``edgeguard.scan.generator``.
        pixel_lr: Adam learning rate of the mask / pattern generator's free per-pixel logits.
        restarts: optimisations from different initialisations; the cheapest collapse is kept.
        reference: > 0: normalise the statistic by a reference collapse, I(f) / I_ref(f), where
            I_ref is the change that pulls the outputs onto a point ``reference`` clean standard
            deviations from the clean mean, on the side away from the collapse found (what a
            generic collapse costs this model; a trigger only buys its own target). 0: off.
        head: name of the model's final linear layer (the SDK's models: "head").
        seed: generator initialisation and batch order.
    """

    steps: int = 2000
    batch_size: int = 50
    lr: float = 1e-3
    lambda_sim: Optional[float] = None
    lambda_feat: float = 800.0
    mtr_beta: float = 0.9
    mtr_gamma: float = 5.0
    threshold: float = 0.03
    collapse: float = 0.1
    generator_width: int = 16
    offset: bool = True
    trigger: str = "residual"
    pixel_lr: float = 0.1
    restarts: int = 1
    reference: float = 0.0
    outputs: str = "regression"
    head: str = "head"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lambda_sim is None:
            object.__setattr__(self, "lambda_sim", 80.0 if self.outputs == "regression" else 0.5)
        if self.steps < 1 or self.batch_size < 2:
            raise InvalidArgumentError("steps must be >= 1 and batch_size >= 2 (variances need two samples)")
        if min(self.lr, self.threshold) <= 0 or min(self.lambda_sim, self.lambda_feat, self.mtr_gamma) < 0:
            raise InvalidArgumentError("lr and threshold must be positive, the weights non-negative")
        if not 0.0 < self.collapse <= 1.0:
            raise InvalidArgumentError(f"collapse must be in (0, 1], got {self.collapse}")
        if self.outputs not in ("regression", "softmax"):
            raise InvalidArgumentError(f"outputs must be 'regression' or 'softmax', got {self.outputs!r}")
        if self.trigger not in ("residual", "mask_pattern"):
            raise InvalidArgumentError(f"trigger must be 'residual' or 'mask_pattern', got {self.trigger!r}")
        if self.restarts < 1 or self.pixel_lr <= 0:
            raise InvalidArgumentError("restarts must be >= 1 and pixel_lr positive")
        if not 0.0 <= self.mtr_beta < 1.0:
            raise InvalidArgumentError(f"mtr_beta must be in [0, 1), got {self.mtr_beta}")


@dataclass
class ScanResult:
    """What a scan found.

    Attributes:
        statistic: I(f), the mean absolute change G(x) - x per pixel on the clean images.
        threshold: the decision threshold used.
        backdoored: statistic < threshold and residual_variance < the config's collapse.
        residual_variance: output variance on the generated images / on the clean ones.
        target: (d,) mean model output on the generated images: the estimated attack target.
        losses: per-step total loss.
        seconds: wall time of the scan.
        generator: the trained generator (eval mode), for the report and for repair.
        restarts: the change (I(f)) of every restart; the kept one is ``change``.
        change: I(f) of the kept run; ``statistic`` unless the config normalises it.
        reference_change: I(f) of the reference collapse (config ``reference``), else None.
    """

    statistic: float
    threshold: float
    backdoored: bool
    residual_variance: float
    target: np.ndarray
    losses: list[float] = field(repr=False)
    seconds: float
    generator: nn.Module = field(repr=False)
    restarts: list[float] = field(default_factory=list)
    change: Optional[float] = None
    reference_change: Optional[float] = None

    def __str__(self) -> str:
        verdict = "BACKDOORED" if self.backdoored else "clean"
        return (f"{verdict}: statistic {self.statistic:.4f} (threshold {self.threshold:.4f}), residual output "
                f"variance {self.residual_variance:.3f}; estimated target {np.round(self.target, 4).tolist()}; "
                f"{self.seconds:.0f} s")


def as_float_images(images) -> torch.Tensor:
    """(N, H, W, C) uint8 or (N, C, H, W) float in [0, 1] -> float32 (N, C, H, W) tensor."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim != 4:
        raise InvalidInputError(f"images must be a batch (N, H, W, C) uint8 or (N, C, H, W) float, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        arr = to_float_nchw(arr)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise InvalidInputError("float images must be finite and in [0, 1]")
        arr = arr.astype(np.float32)
    else:
        raise InvalidInputError(f"images must be uint8 or float, got {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _head(model: nn.Module, name: str) -> nn.Linear:
    try:
        head = model.get_submodule(name)
    except AttributeError:
        raise InvalidArgumentError(f"model has no module {name!r}; pass the name of its final linear layer") from None
    if not isinstance(head, nn.Linear):
        raise InvalidArgumentError(f"{name!r} is a {type(head).__name__}; DRMGuard needs a linear head (f = W^T F(x) + b)")
    return head


@contextmanager
def frozen_eval(model: nn.Module):
    """Within the block ``model`` is in eval mode with no gradients to its parameters;
    both are restored after."""
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``fn`` applied to ``x`` in chunks of ``batch_size`` rows, concatenated, without gradients."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def output_variance(model: nn.Module, x: torch.Tensor, softmax: bool = False) -> torch.Tensor:
    """sum_j Var_i f_j(x_i) over the clean images x (N, C, H, W) (of the softmax of f when
    ``softmax``); raises when it is zero."""
    out = batched(lambda b: model(b).float(), x)
    variance = (out.softmax(dim=1) if softmax else out).var(dim=0).sum()
    if not torch.isfinite(variance) or variance <= 0:
        raise InvalidInputError("the model's outputs do not vary over the clean images; give it more varied ones")
    return variance


def angle_variance(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """r_f: sum over outputs j of the batch variance of angle(features_i, weight_j).

    features: (N, D); weight: (d, D) rows w_j. Returns a scalar (rad^2)."""
    cos = nn.functional.normalize(features, dim=1) @ nn.functional.normalize(weight, dim=1).T
    return torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6)).var(dim=0).sum()


def _optimise(model: nn.Module, x_all: torch.Tensor, config: DRMGuardConfig, seed: int, clean_var: torch.Tensor,
              head: Optional[nn.Linear], captured: dict, progress: bool,
              target: Optional[torch.Tensor] = None) -> "tuple[nn.Module, list[float]]":
    """One generator optimisation from initialisation ``seed``; returns (generator in eval
    mode, per-step losses). ``model`` is already frozen; ``captured`` receives the head's input.
    With ``target`` (d,) the outputs are pulled onto it (mean squared distance / clean
    variance) instead of onto each other: the reference collapse."""
    softmax = config.outputs == "softmax"
    outputs_of = (lambda m, x: m(x).float().softmax(dim=1)) if softmax else (lambda m, x: m(x).float())
    torch.manual_seed(seed)
    size = tuple(x_all.shape[2:])
    if config.trigger == "mask_pattern":
        generator = MaskPatternGenerator(x_all.shape[1], config.generator_width, size)
        groups = [{"params": [generator.mask_logit, generator.pattern_logit], "lr": config.pixel_lr},
                  {"params": generator.net.parameters(), "lr": config.lr}]
    else:
        generator = TriggerGenerator(x_all.shape[1], config.generator_width, size if config.offset else None)
        groups = [{"params": generator.parameters(), "lr": config.lr}]
    opt = torch.optim.Adam(groups)
    saliency = torch.zeros(1, 1, *size)
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    bar = tqdm(range(config.steps), desc="DRMGuard scan", disable=not progress, unit="step")
    for _ in bar:
        batch = x_all[rng.choice(len(x_all), min(config.batch_size, len(x_all)), replace=False)]
        if config.trigger == "mask_pattern":
            mask, pattern = generator.mask_and_pattern(batch)
            generated = (1 - mask) * batch + mask * pattern
            cost = mask  # the share of each pixel replaced, whatever the pattern's intensity
        else:
            generated = generator(batch)
            cost = (generated - batch).abs()
        # One backward through the model per step: its loss's gradient at x' both trains the
        # generator and feeds the saliency map (used from the next step on).
        x_gen = generated.detach().requires_grad_(True)
        out = outputs_of(model, x_gen)
        l_out = (out.var(dim=0).sum() if target is None else (out - target).pow(2).sum(dim=1).mean()) / clean_var
        r_f = angle_variance(captured["features"].float(), head.weight.float()) if head is not None else torch.zeros(())
        (l_out + config.lambda_feat * r_f).backward()
        l_sim = ((1 + config.mtr_gamma * saliency) * cost).mean()
        opt.zero_grad(set_to_none=True)
        (torch.sum(generated * x_gen.grad) + config.lambda_sim * l_sim).backward()
        opt.step()
        grad = x_gen.grad.abs().mean(dim=(0, 1), keepdim=True)
        saliency = config.mtr_beta * saliency + (1 - config.mtr_beta) * grad / grad.max().clamp_min(1e-12)
        losses.append((l_out.detach() + config.lambda_sim * l_sim.detach() + config.lambda_feat * r_f.detach()).item())
        bar.set_postfix(out=f"{l_out.item():.2e}", sim=f"{l_sim.item():.4f}", angle=f"{r_f.item():.2e}")
    return generator.eval(), losses


def cheapest_collapse(runs: "list[tuple[float, float]]", collapse: float) -> int:
    """Index of the run to keep among (statistic, residual variance) pairs: the smallest
    statistic among runs whose residual is below ``collapse``; if none collapsed, the run
    with the smallest residual (the nearest to a collapse)."""
    collapsed = [i for i, (_, residual) in enumerate(runs) if residual < collapse]
    if collapsed:
        return min(collapsed, key=lambda i: runs[i][0])
    return min(range(len(runs)), key=lambda i: runs[i][1])


def scan(model: nn.Module, images, config: DRMGuardConfig = DRMGuardConfig(), progress: bool = True) -> ScanResult:
    """Reverse engineer a trigger for ``model`` from clean ``images`` and decide.

    With ``config.restarts`` > 1 the generator is optimised from that many initialisations
    and the cheapest collapse is kept: the smallest statistic among the runs whose outputs
    collapsed (none collapsed: the run with the smallest residual variance).

    Args:
        model: a regression model whose final layer ``config.head`` is linear; it is frozen
            (eval mode, no gradients to its weights) and left unchanged.
        images: clean inputs, (N, H, W, C) uint8 or (N, C, H, W) float in [0, 1]; N >= 2.
        config: the scan's settings.
        progress: show a per-step progress bar.
    """
    x_all = as_float_images(images)
    if len(x_all) < 2:
        raise InvalidInputError("need at least 2 clean images")
    softmax = config.outputs == "softmax"
    use_angles = not softmax and config.lambda_feat > 0
    head = _head(model, config.head) if use_angles else None
    t0 = time.perf_counter()
    captured = {}
    hook = head.register_forward_pre_hook(lambda _m, inputs: captured.__setitem__("features", inputs[0])) if use_angles else None
    outputs_of = (lambda m, x: m(x).float().softmax(dim=1)) if softmax else (lambda m, x: m(x).float())
    runs = []
    try:
        with frozen_eval(model):
            clean_var = output_variance(model, x_all, softmax)
            for restart in range(config.restarts):
                generator, losses = _optimise(model, x_all, config, config.seed + restart, clean_var, head, captured,
                                              progress)
                generated = batched(generator, x_all)
                outputs = batched(lambda b: outputs_of(model, b), generated)
                runs.append({"statistic": float((generated - x_all).abs().mean()),
                             "residual": float(outputs.var(dim=0).sum() / clean_var),
                             "target": outputs.mean(dim=0).numpy(), "losses": losses, "generator": generator})
            best = runs[cheapest_collapse([(r["statistic"], r["residual"]) for r in runs], config.collapse)]
            statistic, reference = best["statistic"], None
            if config.reference > 0:
                clean_out = batched(lambda b: outputs_of(model, b), x_all)
                mean, spread = clean_out.mean(dim=0), clean_out.std(dim=0).clamp_min(1e-6)
                found = (torch.from_numpy(best["target"]) - mean) / spread  # in clean standard deviations
                if found.norm() < 1e-3:
                    found = torch.ones_like(found)
                ref_target = mean - config.reference * spread * found / found.norm()
                generator, _ = _optimise(model, x_all, config, config.seed + 1000, clean_var, head, captured,
                                         progress, target=ref_target)
                reference = float((batched(generator, x_all) - x_all).abs().mean())
                statistic = best["statistic"] / max(reference, 1e-12)
    finally:
        if hook is not None:
            hook.remove()
    result = ScanResult(statistic=statistic, threshold=config.threshold, residual_variance=best["residual"],
                        backdoored=statistic < config.threshold and best["residual"] < config.collapse,
                        target=best["target"], losses=best["losses"], seconds=time.perf_counter() - t0,
                        generator=best["generator"], restarts=[r["statistic"] for r in runs],
                        change=best["statistic"], reference_change=reference)
    log.info("%s", result)
    return result


def calibrate(statistics: "list[float] | np.ndarray", quantile: float = 0.0, margin: float = 0.8) -> float:
    """A threshold from benign models' statistics only (a user has no backdoored models):
    ``margin`` times their ``quantile`` (default: the smallest benign statistic), so every
    calibration model would pass as clean with a 20% margin."""
    values = np.asarray(statistics, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise InvalidArgumentError("need finite statistics of at least one benign model")
    return float(margin * np.quantile(values, quantile))
