"""DRMGuard: decide whether a regression model is backdoored by reverse engineering a trigger
(shared/spec/drmguard.md sections 4 and 5).

A generator G is trained against the frozen model f = H(F(x)), H linear with rows w_j, on a
few clean images, to minimise

    L_out + lambda_sim * L_sim + lambda_feat * r_f
    L_out = sum_j Var_i f_j(G(x_i)) / sum_j Var_i f_j(x_i)  (outputs collapse to one vector)
    r_f   = sum_j Var_i angle(F(G(x_i)), w_j)             (features at a fixed angle to each w_j)
    L_sim = mean((1 + gamma * M) * cost)                  (small change; M: momentum saliency)

No target is enumerated: the outputs are pulled onto each other, wherever that is. Two
generators (``DRMGuardConfig.trigger``): "mask_pattern", the default for both output kinds,
G(x) = (1 - m(x)) x + m(x) p(x) with cost = m (the share of each pixel replaced), and
"residual", G(x) = x + r(x) with cost = |G(x) - x|, as the paper reads. Both are generated
per image (a U-Net), so input-aware triggers are in reach. Our readings where the paper is
silent: M, the "momentum reverse trigger" weighting, is a running average (beta) of the
normalised |d(L_out + lambda_feat * r_f) / dx'| map, so editing the pixels the model attends
to costs more; L_out is divided by the clean images' output variance (the paper's scale is
unknown). Where our measured defaults depart from the paper (r_f and MTR off, the mask x
pattern generator) DRMGuardConfig says why.

A backdoored model collapses under a small, trigger-sized change; a benign one needs a large
one or does not collapse. The statistic is I(f) = mean |G(x) - x| over the clean images; a
model is flagged when I(f) < ``threshold`` (calibrate it on benign models, see
``calibrate``) and the outputs did collapse (residual variance below ``collapse`` of the
clean one): a small change that leaves the outputs spread out is no trigger.

    result = scan(model, clean_images)      # (N, H, W, C) uint8 or (N, C, H, W) float in [0, 1]
    print(result)                           # statistic, threshold, verdict, estimated target
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.scan.generator import MaskPatternGenerator, TriggerGenerator
from edgeguard.scan.plumbing import as_float_images, batched, frozen_eval, linear_head, output_variance

log = logging.getLogger(__name__)


# (outputs, trigger) -> default lambda_sim; see DRMGuardConfig.lambda_sim.
DEFAULT_LAMBDA_SIM = {("regression", "mask_pattern"): 2.0, ("softmax", "mask_pattern"): 2.0,
                      ("regression", "residual"): 80.0, ("softmax", "residual"): 0.5}

# (outputs, trigger) -> default threshold. Regression with the mask x pattern generator: the
# calibration rule (``calibrate``: 0.85 x the median) on the benign models of
# benchmarks/zoos/gaze_dev.json at the quick settings (benchmarks/results/scan_dev.json: median
# 0.0140); elsewhere the paper's 0.03. Calibrate on your models.
DEFAULT_THRESHOLD = {("regression", "mask_pattern"): 0.0119}


@dataclass(frozen=True)
class DRMGuardConfig:
    """Settings of the scan; the published gaze defaults where they exist.

    Attributes:
        steps, batch_size: generator optimisation (the paper: 2000 steps of 50 images).
        lr: Adam learning rate of the generator.
        lambda_sim: weight of the similarity term. None: by output kind and trigger, as
            measured (``DEFAULT_LAMBDA_SIM``; why: docs/decisions.md): the mask x pattern
            trigger 2.0 (its cost is a share of pixels, as Neural Cleanse's lambda 2.0);
            the residual trigger 80 for regression (the paper's 20 is for its unnormalised
            L_out), 0.5 for softmax outputs (the saturated softmax's loss is far flatter).
        lambda_feat: weight of the feature-angle variance r_f (the paper: gaze 800, head
            pose 100). Default 0: on the development zoo the term steered the search away
            from the BadNets trigger (docs/decisions.md).
        mtr_beta, mtr_gamma: momentum and strength of the saliency (MTR) weighting of L_sim.
        threshold: flag as backdoored when the statistic is below it. None: 0.0119 for
            regression with the mask x pattern generator (calibrated on the development
            zoo's benign models, ``DEFAULT_THRESHOLD``), else the paper's 0.03. Calibrate it on
            models you trust (``calibrate``, ``edgeguard scan --calibrate``).
        collapse: ... and the generated outputs' variance is below this fraction of the clean one.
        generator_width: channels of the generator's first stage.
        offset: "residual" trigger: add a free per-pixel offset to the generated residual.
        trigger: "residual" (x' = x + G(x), L_sim on |x' - x|) or "mask_pattern" (x' = (1 - m) x
            + m p with m, p generated, L_sim on m: a change is priced by its area, not by its
            intensity); see ``edgeguard.scan.generator``. None: "mask_pattern", for both
            output kinds (docs/decisions.md).
        pixel_lr: Adam learning rate of the mask / pattern generator's free per-pixel logits.
        restarts: optimisations from different initialisations; the cheapest collapse is kept.
        feature_norm: divide r_f by its value on the clean images (as L_out is divided by the
            clean output variance), so ``lambda_feat`` weighs two relative terms; off: r_f in
            rad^2, as the paper (whose 800 was set for its scale).
        adaptive: adapt the similarity weight during the run, starting at ``lambda_sim``: x1.5
            every 10 steps while the outputs' variance stays below half of ``collapse``, /1.5
            otherwise (Neural Cleanse's schedule), so the statistic becomes the smallest
            change that still collapses the outputs, whatever the weight's scale. Off by
            default: its statistic varied far more between benign models (docs/decisions.md).
        reference: > 0: normalise the statistic by a reference collapse, I(f) / I_ref(f), where
            I_ref is the change that pulls the outputs onto a point ``reference`` clean standard
            deviations from the clean mean, on the side away from the collapse found (what a
            generic collapse costs this model; a trigger only buys its own target). 0: off.
        head: name of the model's final linear layer (the SDK's models: "head"); read only for r_f
            (lambda_feat > 0), so with the default any regression model can be scanned.
        seed: generator initialisation and batch order.
    """

    steps: int = 2000
    batch_size: int = 50
    lr: float = 1e-3
    lambda_sim: Optional[float] = None
    lambda_feat: float = 0.0
    mtr_beta: float = 0.9
    mtr_gamma: float = 0.0
    threshold: Optional[float] = None
    collapse: float = 0.1
    generator_width: int = 16
    offset: bool = True
    trigger: Optional[str] = None
    pixel_lr: float = 0.1
    restarts: int = 1
    reference: float = 0.0
    adaptive: bool = False
    feature_norm: bool = False
    outputs: str = "regression"
    head: str = "head"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trigger is None:
            object.__setattr__(self, "trigger", "mask_pattern")
        if self.lambda_sim is None:
            object.__setattr__(self, "lambda_sim", DEFAULT_LAMBDA_SIM.get((self.outputs, self.trigger), 2.0))
        if self.threshold is None:
            object.__setattr__(self, "threshold", DEFAULT_THRESHOLD.get((self.outputs, self.trigger), 0.03))
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
        backdoored: statistic < threshold and the outputs collapsed.
        residual_variance: output variance on the generated images / on the clean ones.
        collapsed: residual_variance < the config's ``collapse``: the search found an edit that
            sends every image to one output; without one, ``statistic`` says nothing of a trigger.
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
    collapsed: bool
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


def angle_variance(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """r_f: sum over outputs j of the batch variance of angle(features_i, weight_j).

    features: (N, D); weight: (d, D) rows w_j. Returns a scalar (rad^2)."""
    cos = nn.functional.normalize(features, dim=1) @ nn.functional.normalize(weight, dim=1).T
    return torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6)).var(dim=0).sum()


def _outputs_of(softmax: bool):
    """(model, x) -> float outputs, as probabilities when ``softmax``."""
    return (lambda m, x: m(x).float().softmax(dim=1)) if softmax else (lambda m, x: m(x).float())


def adapted_weight(weight: float, residual: float, config: DRMGuardConfig) -> float:
    """Neural Cleanse's cost schedule, one update (every 10 steps): while the outputs stay
    collapsed (smoothed residual variance below half of ``config.collapse``) price change
    higher (x1.5), else lower (/1.5), within 1e-3 .. 1e3 x ``config.lambda_sim``; so a run ends
    near the smallest change that still collapses the outputs.

    >>> config = DRMGuardConfig(lambda_sim=2.0, collapse=0.1)
    >>> adapted_weight(2.0, 0.01, config), round(adapted_weight(2.0, 0.2, config), 4)
    (3.0, 1.3333)
    >>> adapted_weight(2000.0, 0.01, config)  # capped
    2000.0
    """
    weight = weight * 1.5 if residual < config.collapse / 2 else weight / 1.5
    return float(np.clip(weight, config.lambda_sim / 1e3, config.lambda_sim * 1e3))


def _optimise(model: nn.Module, x_all: torch.Tensor, config: DRMGuardConfig, seed: int, clean_var: torch.Tensor,
              head: Optional[nn.Linear], captured: dict, progress: bool,
              target: Optional[torch.Tensor] = None) -> "tuple[nn.Module, list[float]]":
    """One generator optimisation from initialisation ``seed``; returns (generator in eval
    mode, per-step losses). ``model`` is already frozen; ``captured`` receives the head's input.
    With ``target`` (d,) the outputs are pulled onto it (mean squared distance / clean
    variance) instead of onto each other: the reference collapse."""
    softmax = config.outputs == "softmax"
    outputs_of = _outputs_of(softmax)
    torch.manual_seed(seed)
    size = tuple(x_all.shape[2:])
    if config.trigger == "mask_pattern":
        generator = MaskPatternGenerator(x_all.shape[1], config.generator_width, size)
        groups = [{"params": [generator.mask_logit, generator.pattern_logit], "lr": config.pixel_lr},
                  {"params": generator.net.parameters() if generator.net is not None else [], "lr": config.lr}]
    else:
        generator = TriggerGenerator(x_all.shape[1], config.generator_width, size if config.offset else None)
        groups = [{"params": generator.parameters(), "lr": config.lr}]
    opt = torch.optim.Adam(groups)
    saliency = torch.zeros(1, 1, *size)
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    lambda_sim, smoothed = config.lambda_sim, 1.0
    bar = tqdm(range(config.steps), desc="DRMGuard scan", disable=not progress, unit="step")
    for step in bar:
        batch = x_all[rng.choice(len(x_all), min(config.batch_size, len(x_all)), replace=False)]
        if config.trigger == "mask_pattern":
            mask, pattern = generator.mask_and_pattern(batch)
            generated = generator.blend(batch, mask, pattern)
            cost = mask  # the share of each pixel replaced, whatever the pattern's intensity
        else:
            generated = generator(batch)
            cost = (generated - batch).abs()
        # One backward through the model per step: its loss's gradient at x' both trains the
        # generator and feeds the saliency map (used from the next step on).
        x_gen = generated.detach().requires_grad_(True)
        out = outputs_of(model, x_gen)
        l_out = (out.var(dim=0).sum() if target is None else (out - target).pow(2).sum(dim=1).mean()) / clean_var
        r_f = angle_variance(captured["features"].float(), head.weight.float()) / captured.get("clean_r_f", 1.0) \
            if head is not None else torch.zeros(())
        (l_out + config.lambda_feat * r_f).backward()
        l_sim = ((1 + config.mtr_gamma * saliency) * cost).mean()
        opt.zero_grad(set_to_none=True)
        (torch.sum(generated * x_gen.grad) + lambda_sim * l_sim).backward()
        opt.step()
        grad = x_gen.grad.abs().mean(dim=(0, 1), keepdim=True)
        saliency = config.mtr_beta * saliency + (1 - config.mtr_beta) * grad / grad.max().clamp_min(1e-12)
        losses.append((l_out.detach() + lambda_sim * l_sim.detach() + config.lambda_feat * r_f.detach()).item())
        if config.adaptive:
            smoothed = 0.8 * smoothed + 0.2 * l_out.item()
            if step % 10 == 9:
                lambda_sim = adapted_weight(lambda_sim, smoothed, config)
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
        model: a regression model (with r_f on, its final layer ``config.head`` must be
            linear); it is frozen (eval mode, no gradients to its weights) and left unchanged.
        images: clean inputs, (N, H, W, C) uint8 or (N, C, H, W) float in [0, 1]; N >= 2.
        config: the scan's settings.
        progress: show a per-step progress bar.
    """
    x_all = as_float_images(images)
    if len(x_all) < 2:
        raise InvalidInputError("need at least 2 clean images")
    softmax = config.outputs == "softmax"
    use_angles = not softmax and config.lambda_feat > 0
    head = linear_head(model, config.head) if use_angles else None
    t0 = time.perf_counter()
    captured = {}
    hook = head.register_forward_pre_hook(lambda _m, inputs: captured.__setitem__("features", inputs[0])) if use_angles else None
    outputs_of = _outputs_of(softmax)
    runs = []
    try:
        with frozen_eval(model):
            clean_var = output_variance(model, x_all, softmax)
            if head is not None and config.feature_norm:
                features = batched(lambda b: (model(b), captured["features"].float())[1], x_all)
                captured["clean_r_f"] = float(angle_variance(features, head.weight.float()).clamp_min(1e-12))
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
    collapsed = best["residual"] < config.collapse
    result = ScanResult(statistic=statistic, threshold=config.threshold, residual_variance=best["residual"],
                        collapsed=collapsed, backdoored=collapsed and statistic < config.threshold,
                        target=best["target"], losses=best["losses"], seconds=time.perf_counter() - t0,
                        generator=best["generator"], restarts=[r["statistic"] for r in runs],
                        change=best["statistic"], reference_change=reference)
    log.info("%s", result)
    return result
