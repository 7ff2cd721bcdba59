"""EigenGuard layer: the spectrum it leaves, running statistics, gradients, insertion, export."""
import numpy as np
import pytest
import torch

from edgeguard.eigenguard import EigenGuard, EigenGuardConfig, guards, protect, spectral_gains
from edgeguard.errors import InvalidArgumentError
from edgeguard.models.preact_resnet import PreActResNet, ResNetConfig


def features(n=16, c=8, h=4, w=4, seed=0, rank=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    # Unequal channel scales, so the spectrum has a clear order.
    x = x * torch.linspace(3.0, 0.5, c, dtype=torch.float64)[None, :, None, None]
    if rank is not None:  # repeated columns: equal (zero) singular values
        x[:, rank:] = x[:, :1]
    return x


def singular_values(rows: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(rows - rows.mean(dim=0))


def channel_rows(x):
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def test_config_rejects_unknown_options():
    for bad in ({"k": 0}, {"scale": 2.0}, {"common": "median"}, {"tail": "drop"}, {"layout": "rows"},
                {"eval_mode": "auto"}, {"gradient": "none"}, {"momentum": 0.0},
                {"layout": "sample", "tail": "scale_sigma_k"}):
        with pytest.raises(InvalidArgumentError):
            EigenGuardConfig(**bad)


def test_gains_follow_each_reading():
    sigma = torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=torch.float64)
    gains = lambda **kw: spectral_gains(sigma, EigenGuardConfig(k=2, eval_mode="batch", **kw)) * sigma
    torch.testing.assert_close(gains(), torch.tensor([4.0, 4.0, 0.002, 0.001], dtype=torch.float64))
    torch.testing.assert_close(gains(common="sigma_1", tail="keep"), torch.tensor([8.0, 8.0, 2.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(gains(common="mean", tail="scale_sigma_k"),
                               torch.tensor([6.0, 6.0, 0.004, 0.004], dtype=torch.float64))


@pytest.mark.parametrize("layout", ["channel", "sample"])
def test_batch_filter_equalises_top_k_and_damps_tail(layout):
    k = 3
    x = features()
    guard = EigenGuard(x.shape[1:], EigenGuardConfig(k=k, layout=layout, eval_mode="batch")).double()
    out = guard(x)
    assert out.shape == x.shape
    rows = (lambda t: t.reshape(len(t), -1)) if layout == "sample" else channel_rows
    before, after = singular_values(rows(x)), singular_values(rows(out))
    torch.testing.assert_close(after[:k], before[k - 1].expand(k), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(after[k:], 0.001 * before[k:], rtol=1e-5, atol=1e-9)
    guard.train()  # training updates the running statistics on every reading of the tail
    for tail in ("scale", "keep", "scale_sigma_k"):
        guard.config = EigenGuardConfig(k=k, layout=layout, eval_mode="batch", tail=tail)
        assert torch.isfinite(guard(x)).all()
    # The batch mean is kept (centring).
    torch.testing.assert_close(rows(out).mean(dim=0), rows(x).mean(dim=0))


def test_sample_layout_running_basis_tracks_the_exact_running_covariance():
    momentum, k = 0.3, 3
    guard = EigenGuard((2, 3, 3), EigenGuardConfig(k=k, layout="sample", momentum=momentum)).double().train()
    cov = None
    for seed in range(12):
        x = features(n=10, c=2, h=3, w=3, seed=seed)
        guard(x)
        rows = x.reshape(10, -1)
        batch_cov = torch.cov(rows.T)
        cov = batch_cov if cov is None else (1 - momentum) * cov + momentum * batch_cov
    eigvals, vectors = torch.linalg.eigh(cov)
    top = guard.running_eigvals.numel()
    # Exact for directions the rank-(k + 8) summary keeps; the 18-dim space keeps 11.
    torch.testing.assert_close(guard.running_eigvals[:k], eigvals.flip(0)[:k], rtol=1e-2, atol=1e-6)
    overlap = (guard.running_basis[:, :k].T @ vectors.flip(1)[:, :k]).abs()
    torch.testing.assert_close(overlap.diagonal(), torch.ones(k, dtype=torch.float64), rtol=0, atol=2e-2)
    assert top == k + EigenGuard.OVERSAMPLE


@pytest.mark.parametrize("layout", ["channel", "sample"])
def test_running_map_converges_to_the_population_filter(layout):
    # Independent dimensions with geometric scales along the layout's rows: the population
    # filter is diagonal, with gains sigma_k / sigma_i on the top k and 0.001 on the rest.
    dims = 8 if layout == "channel" else 128
    scales = 3.0 * 0.8 ** torch.arange(dims, dtype=torch.float64)

    def draw(n, seed):
        g = torch.Generator().manual_seed(seed)
        if layout == "channel":
            return torch.randn(n, 4, 4, 8, generator=g, dtype=torch.float64).mul(scales).movedim(-1, 1)
        return (torch.randn(n, 128, generator=g, dtype=torch.float64) * scales).reshape(n, 8, 4, 4)

    guard = EigenGuard((8, 4, 4), EigenGuardConfig(k=2, layout=layout, momentum=0.05)).double().train()
    for seed in range(80):
        guard(draw(64, seed))
    guard.eval()
    x = draw(50, seed=999)
    gains = torch.full((dims,), 0.001, dtype=torch.float64)
    gains[:2] = scales[1] / scales[:2]
    rows = (lambda t: t.reshape(len(t), -1)) if layout == "sample" else channel_rows
    expected = rows(x) * gains  # the population mean is zero
    err = (rows(guard(x)) - expected).norm() / expected.norm()
    assert err < 0.1  # estimation noise of ~20 batches of 64; a wrong basis gives ~1
    alone = torch.cat([guard(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(alone, guard(x[:3]))  # batch size 1: no batch coupling
    identity = EigenGuard((8, 4, 4), EigenGuardConfig(k=2, layout=layout, eval_mode="identity")).eval()
    assert torch.equal(identity(x.float()), x.float())


@pytest.mark.parametrize("layout", ["channel", "sample"])
@pytest.mark.parametrize("gradient", ["detached", "full"])
def test_gradients_are_finite_with_repeated_singular_values(gradient, layout):
    x = features(rank=3).requires_grad_(True)
    guard = EigenGuard(x.shape[1:], EigenGuardConfig(k=3, gradient=gradient, layout=layout)).double().train()
    (guard(x) ** 2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def _small_model(num_outputs=5):
    return PreActResNet(ResNetConfig(width=0.125, num_outputs=num_outputs, blocks=(1, 1, 1, 1)))


def test_protect_inserts_after_the_named_block_and_trains():
    model = protect(_small_model(), at="layer1", config=EigenGuardConfig(k=2))
    (guard,) = guards(model)
    assert guard is model.layer1[-1] and guard.channels == model.layer1[0].conv2.out_channels
    assert "layer1.0.conv1.weight" in model.state_dict()  # the block's own names are kept
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 5, (8,))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert guard.batches_seen == 3
    model.eval()
    assert model(x[:1]).shape == (1, 5)
    with pytest.raises(InvalidArgumentError, match="already protected"):
        protect(model, at="layer1")
    with pytest.raises(InvalidArgumentError, match="no block"):
        protect(_small_model(), at="layer9")


def test_protected_gaze_regressor_and_state_dict_round_trip():
    model = protect(_small_model(num_outputs=2), at="layer2", config=EigenGuardConfig(k=2))
    model.train()
    model(torch.rand(6, 3, 32, 32))
    model.eval()
    copy = protect(_small_model(num_outputs=2), at="layer2", config=EigenGuardConfig(k=2))
    copy.load_state_dict(model.state_dict())
    copy.eval()
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(copy(x), model(x))


@pytest.mark.parametrize("layout", ["channel", "sample"])
def test_exported_protected_model_matches_torch_and_adds_only_constant_ops(tmp_path, layout):
    pytest.importorskip("onnxruntime")
    import copy
    import dataclasses

    import onnx

    from edgeguard.deploy import export_onnx
    from edgeguard.runtime import load_engine

    model = protect(_small_model(), at="layer2", config=EigenGuardConfig(k=2, layout=layout))
    model.train()
    for _ in range(3):
        model(torch.rand(8, 3, 32, 32))
    model.eval()
    (guard,) = guards(model)
    path = export_onnx(model, tmp_path / "protected.onnx", (3, 32, 32))  # checks parity to 1e-4
    x = np.random.default_rng(0).random((5, 3, 32, 32), dtype=np.float32)  # a batch size the export never saw
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(load_engine(path)(x), expected, atol=1e-4)
    np.testing.assert_allclose(load_engine(path)(x[:1]), expected[:1], atol=1e-4)  # batch 1

    # The fold: standard operators only, a few more than the same model without the layer,
    # and constants the size of the map: C x C plus a shift, or the D x k basis (and its
    # transpose, as the exporter stores it) plus k gains and a D shift.
    plain = copy.deepcopy(model)
    guards(plain)[0].config = dataclasses.replace(guard.config, eval_mode="identity")
    base = onnx.load(export_onnx(plain, tmp_path / "plain.onnx", (3, 32, 32)))
    graph = onnx.load(path)
    assert {n.domain for n in graph.graph.node} <= {"", "ai.onnx"}
    ops = lambda g: [n.op_type for n in g.graph.node if n.op_type != "Identity"]
    extra = len(ops(graph)) - len(ops(base))
    assert 0 < extra <= (1 if layout == "channel" else 12), ops(graph)
    size = lambda g: sum(int(np.prod(t.dims)) for t in g.graph.initializer)
    dim = int(np.prod(guard.shape))
    expected = guard.channels ** 2 + guard.channels if layout == "channel" else 2 * dim * 2 + 2 + dim
    assert size(graph) - size(base) <= expected


@pytest.mark.slow  # wall clock: a busy machine fails it (#16 item 7); the figure is the benchmark's
def test_folded_model_latency_stays_close_to_the_unprotected_one(tmp_path):
    # A sanity bound only (the 5% figure is measured by benchmarks/eigenguard.py).
    ort = pytest.importorskip("onnxruntime")
    import time

    from edgeguard.deploy import export_onnx
    from edgeguard.models import create_model

    torch.manual_seed(0)
    plain = create_model("preact_resnet18", num_outputs=43, width=0.25).eval()
    model = protect(create_model("preact_resnet18", num_outputs=43, width=0.25), config=EigenGuardConfig())
    model.train()
    model(torch.rand(64, 3, 32, 32))
    model.eval()
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)

    def best_ms(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(export_onnx(*path)), options, providers=["CPUExecutionProvider"])
        for _ in range(10):
            session.run(None, {"image": x})
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            session.run(None, {"image": x})
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3

    plain_ms = best_ms((plain, tmp_path / "plain.onnx", (3, 32, 32)))
    protected_ms = best_ms((model, tmp_path / "protected.onnx", (3, 32, 32)))
    assert protected_ms < 1.5 * plain_ms + 0.1, (protected_ms, plain_ms)


def test_training_sample_runs_end_to_end(tmp_path):
    pytest.importorskip("onnxruntime")
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "samples" / "eigenguard_training.py"
    out = tmp_path / "protected.onnx"
    done = subprocess.run([sys.executable, str(script), "--n-train", "256", "--epochs", "1", "--k", "8",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if "CA " in line]
    assert len(lines) == 2 and "EigenGuard" in lines[1]
    assert out.exists() and (tmp_path / "protected_unprotected.onnx").exists()
