import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeguard.errors import InvalidArgumentError
from edgeguard.models import create_model, list_models


def test_variants_and_shapes():
    assert {"preact_resnet18", "gaze_resnet18"} <= set(list_models())
    clf = create_model("preact_resnet18", num_outputs=43, width=0.125).eval()
    assert clf(torch.rand(2, 3, 32, 32)).shape == (2, 43)
    assert clf.forward_features(torch.rand(2, 3, 32, 32)).shape == (2, clf.feature_dim) == (2, 64)
    gaze = create_model("gaze_resnet18", width=0.125).eval()
    assert gaze(torch.rand(2, 1, 36, 60)).shape == (2, 2)
    assert isinstance(gaze.head, torch.nn.Linear)


def test_width_multiplier_scales_parameters():
    def count(w):
        return sum(p.numel() for p in create_model("preact_resnet18", width=w).parameters())

    full, small = count(1.0), count(0.25)
    assert 10e6 < full < 12e6  # ResNet-18 size
    assert 10 < full / small < 20  # ~ width^2


def test_bad_options():
    with pytest.raises(InvalidArgumentError):
        create_model("resnet9000")
    with pytest.raises(InvalidArgumentError):
        create_model("preact_resnet18", depth=3)


@pytest.mark.parametrize("name,shape", [("preact_resnet18", (3, 32, 32)), ("gaze_resnet18", (1, 36, 60))])
def test_onnx_export_matches_torch(tmp_path, name, shape):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from edgeguard.deploy import export_onnx

    model = create_model(name, width=0.125)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    path = export_onnx(model, tmp_path / "m.onnx", shape)
    assert onnx.load(str(path)).opset_import[0].version >= 17
    x = np.random.default_rng(0).random((5, *shape), dtype=np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), atol=1e-4)
    with pytest.raises(InvalidArgumentError):
        export_onnx(model, tmp_path / "bad.onnx", shape, opset=13)


def test_weights_loader_is_safe_and_checks_shapes(tmp_path):
    from safetensors.torch import save_file

    from edgeguard.deploy.weights import load_model_weights
    from edgeguard.errors import DataFormatError, ModelFormatError

    model = create_model("preact_resnet18", num_outputs=16, width=0.125)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    loaded = load_model_weights("preact_resnet18", tmp_path / "w.safetensors", width=0.125)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    with pytest.raises(ModelFormatError):
        load_model_weights("preact_resnet18", tmp_path / "w.safetensors", width=0.25)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFormatError):
        load_model_weights("preact_resnet18", tmp_path / "junk.safetensors")
    with pytest.raises(DataFormatError):
        load_model_weights("preact_resnet18", tmp_path / "missing.safetensors")
