"""The runtime side never imports torch (DESIGN principle 1)."""
import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _NoTorch())
    """
)


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_import_edgeguard_and_numpy_side_without_torch():
    res = run_without_torch(
        """
        import numpy as np
        import edgeguard, edgeguard.data, edgeguard.metrics, edgeguard.attacks, edgeguard.kernels
        import edgeguard.purify, edgeguard.runtime
        from edgeguard.data import make_signs
        data = make_signs(64, seed=0)
        a = edgeguard.attacks.get_attack("badnets").fit(data)
        out = a.apply(data.images[:2])
        assert out.shape == (2, 32, 32, 3)
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")


def test_torch_side_fails_clearly_without_torch():
    res = run_without_torch(
        """
        from edgeguard.deploy import export_onnx
        try:
            export_onnx(None, "x.onnx", (3, 32, 32))
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    assert "MissingDependencyError" in res.stdout and "pip install" in res.stdout, res.stdout + res.stderr


def test_purify_with_onnx_engines_without_torch(tmp_path):
    """Export a small classifier and MAE here, then purify in a process that cannot import torch."""
    import pytest

    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edgeguard.deploy import export_onnx, export_restorer
    from edgeguard.models import create_model

    torch.manual_seed(0)
    export_onnx(create_model("preact_resnet18", num_outputs=5, width=0.125), tmp_path / "model.onnx", (3, 32, 32))
    export_restorer(create_model("mae_tiny_patch4"), tmp_path / "mae.onnx", (3, 32, 32))
    res = run_without_torch(
        f"""
        import numpy as np
        from edgeguard.data import make_signs
        from edgeguard.purify import Purifier
        from edgeguard.runtime import load_engine
        frames = make_signs(3, seed=0).images
        result = Purifier(load_engine({str(tmp_path / "model.onnx")!r}), load_engine({str(tmp_path / "mae.onnx")!r}))(frames)
        assert result.purified.shape == frames.shape and result.prediction.shape == (3,)
        assert result.restorer_calls == 50
        assert "torch" not in sys.modules
        print("ok", result)
        """
    )
    assert res.returncode == 0, res.stderr
    assert "ok PurifyResult(3 frames" in res.stdout
