"""Engine building and loading: ONNX Runtime builds (fp32, int8), the metadata sidecar and its
checks, the TensorRT path where tensorrt is installed, the build_engine.py CLI."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeguard.deploy import BuildConfig, build_engine, export_onnx, export_restorer  # noqa: E402
from edgeguard.errors import InvalidArgumentError, MissingDependencyError, ModelFormatError  # noqa: E402
from edgeguard.runtime import EngineSidecar, TensorRTEngine, load_engine, sidecar_path  # noqa: E402

from conftest import toy_classification  # noqa: E402

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
REPO = Path(__file__).resolve().parents[1]


class TinyNet(torch.nn.Module):
    def __init__(self, classes=8):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("deploy") / "tiny.onnx"
    return export_onnx(TinyNet(), path, (3, 32, 32), metadata={"task": "classification"})


def test_onnxruntime_build_writes_a_checked_sidecar(onnx_model, tmp_path):
    out = tmp_path / "tiny.ort.onnx"
    report = build_engine(onnx_model, out, BuildConfig(backend="onnxruntime"))
    assert report.max_abs_diff < 1e-5 and report.sidecar == sidecar_path(out)
    sidecar = json.loads(report.sidecar.read_text())
    assert sidecar["inputs"] == {"image": [3, 32, 32]} and sidecar["model"]["task"] == "classification"
    engine = load_engine(out, input_shape=(3, 32, 32))
    x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(engine(x), load_engine(onnx_model)(x), atol=1e-5)
    assert engine.metadata["task"] == "classification"


def test_options_of_another_backend_are_refused_by_name(onnx_model):
    with pytest.raises(InvalidArgumentError, match=r"onnxruntime backend takes no option\(s\) \['cuda_graph'\]"):
        load_engine(onnx_model, cuda_graph=True)  # a TensorRT option
    with pytest.raises(InvalidArgumentError, match="providers"):  # the message lists what it takes
        load_engine(onnx_model, thread=2)
    with pytest.raises(InvalidArgumentError, match=r"torch backend takes no option\(s\) \['threads'\]"):
        load_engine(TinyNet(), threads=2)
    assert load_engine(onnx_model, threads=1)(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 8)


def test_a_mismatched_engine_is_refused(onnx_model, tmp_path):
    out = tmp_path / "tiny.ort.onnx"
    build_engine(onnx_model, out, BuildConfig(backend="onnxruntime"))
    with pytest.raises(ModelFormatError, match=r"\(3, 32, 32\).*feeds \(3, 64, 64\)"):
        load_engine(out, input_shape=(3, 64, 64))
    # A sidecar that belongs to another file (the engine was replaced) is refused.
    out.write_bytes(Path(onnx_model).read_bytes())
    with pytest.raises(ModelFormatError, match="checksum"):
        load_engine(out)


def test_a_built_engine_without_its_sidecar_is_reported_unverified(onnx_model, tmp_path):
    out = tmp_path / "tiny.ort.onnx"
    build_engine(onnx_model, out, BuildConfig(backend="onnxruntime"))
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert load_engine(out).verified and not load_engine(onnx_model).verified  # a plain export needs no sidecar
    sidecar_path(out).unlink()
    with pytest.raises(ModelFormatError, match="sidecar tiny.ort.onnx.json is missing"):
        load_engine(out)(x)
    unchecked = load_engine(out, allow_unverified=True)
    assert not unchecked.verified
    np.testing.assert_allclose(unchecked(x), load_engine(onnx_model)(x), atol=1e-5)


def test_tensorrt_engines_need_their_sidecar_and_its_versions(tmp_path):
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"not really a plan")
    with pytest.raises(ModelFormatError, match="sidecar"):
        load_engine(plan)
    EngineSidecar(backend="tensorrt", engine_sha256="0" * 64, inputs={"image": [3, 32, 32]},
                  outputs=["output"]).write(plan)
    with pytest.raises(ModelFormatError, match="checksum"):
        load_engine(plan)
    from edgeguard.runtime.sidecar import file_sha256

    sidecar = EngineSidecar(backend="tensorrt", engine_sha256=file_sha256(plan), inputs={"image": [3, 32, 32]},
                            outputs=["output"], model={"task": "classification"}, tensorrt_version="10.3.0",
                            gpu="Orin")
    sidecar.write(plan)
    engine = load_engine(plan, input_shape=(3, 32, 32))  # checked from the sidecar, nothing loaded yet
    assert isinstance(engine, TensorRTEngine) and engine.metadata == {"task": "classification"}
    with pytest.raises(ModelFormatError, match="feeds"):
        load_engine(plan, input_shape=(1, 36, 60))
    with pytest.raises(ModelFormatError, match="TensorRT 10.3.0, this machine has 10.16"):
        sidecar.check_runtime("10.16.0", "Orin")
    with pytest.raises(ModelFormatError, match="built on Orin"):
        sidecar.check_runtime("10.3.0", "NVIDIA H100")
    if not HAS_TENSORRT:
        with pytest.raises(MissingDependencyError, match="tensorrt"):
            engine(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InvalidArgumentError, match="file of the tensorrt backend; the onnxruntime backend cannot"):
        load_engine(plan, backend="onnxruntime")


def test_int8_build_is_calibrated_on_frames_and_keeps_the_answers(tmp_path):
    from edgeguard.train import TrainConfig, fit

    model = TinyNet()
    fit(model, toy_classification(400, seed=3), TrainConfig(epochs=3, batch_size=64, lr=0.05), progress=False)
    path = export_onnx(model.eval(), tmp_path / "toy.onnx", (3, 32, 32), metadata={"task": "classification"})
    report = build_engine(path, tmp_path / "toy_int8.ort.onnx", BuildConfig(backend="onnxruntime", precision="int8"),
                          images=toy_classification(300, seed=4).images)
    assert report.top1_agreement >= 0.95 and report.frames == 100
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "toy_int8.ort.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops or "QLinearConv" in ops
    with pytest.raises(InvalidArgumentError, match="calibration"):
        build_engine(path, tmp_path / "x.onnx", BuildConfig(backend="onnxruntime", precision="int8"))
    # A build that fails the accuracy gate is refused and leaves nothing behind.
    strict = BuildConfig(backend="onnxruntime", precision="int8", max_abs_diff=1e-9)
    with pytest.raises(ModelFormatError, match="against the fp32 ONNX: output .* differs by"):
        build_engine(path, tmp_path / "strict.onnx", strict, images=toy_classification(50, seed=5).images)
    assert not (tmp_path / "strict.onnx").exists() and not (tmp_path / "strict.onnx.json").exists()
    # ... and an engine already at that path (from a good build) survives a refused rebuild.
    good = build_engine(path, tmp_path / "kept.ort.onnx", BuildConfig(backend="onnxruntime"))
    before = (good.engine.read_bytes(), good.sidecar.read_bytes())
    with pytest.raises(ModelFormatError):
        build_engine(path, good.engine, strict, images=toy_classification(50, seed=5).images)
    assert (good.engine.read_bytes(), good.sidecar.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.ort.onnx", "kept.ort.onnx.json", "toy.onnx",
                                                          "toy_int8.ort.onnx", "toy_int8.ort.onnx.json"]


def test_a_build_never_replaces_its_source(onnx_model, tmp_path):
    source = tmp_path / "m.onnx"
    source.write_bytes(onnx_model.read_bytes())
    # the source itself, by another spelling, or as the sidecar of the engine
    for out in (source, tmp_path / "sub" / ".." / "m.onnx", tmp_path / "m"):
        with pytest.raises(InvalidArgumentError, match="would replace its source"):
            build_engine(source if out.name != "m" else tmp_path / "m.json", out, BuildConfig(backend="onnxruntime"))
    assert source.read_bytes() == onnx_model.read_bytes() and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_restorer_builds_keep_the_token_grid(tmp_path):
    from edgeguard.models import create_model

    mae = create_model("mae_tiny_patch4")
    path = export_restorer(mae, tmp_path / "mae.onnx", (3, 32, 32))
    build_engine(path, tmp_path / "mae.ort.onnx", BuildConfig(backend="onnxruntime"))
    from edgeguard.purify.frames import token_grid_of

    assert token_grid_of(load_engine(tmp_path / "mae.ort.onnx")) == (8, 32, 4)


@pytest.mark.parametrize("role", ["model", "restorer"])
def test_every_kind_of_file_reads_back_the_spec_it_was_exported_with(tmp_path, role):
    """export_model / export_restorer write a ModelSpec; the ONNX file, its ONNX Runtime build
    (through the sidecar) and the torch module all report the same one."""
    from edgeguard.deploy import export_model
    from edgeguard.models import create_model
    from edgeguard.runtime import ModelSpec

    if role == "model":
        module = TinyNet(classes=5)
        spec = ModelSpec(role="model", input_shape=(3, 32, 32), output="regression", outputs=5)
        module.spec = spec  # as edgeguard's victims carry theirs
        path = export_model(module, tmp_path / "m.onnx", metadata={"labels": "a,b,c,d,e"})
        assert load_engine(path).metadata["labels"] == "a,b,c,d,e"  # kept beside the spec
    else:
        module = create_model("mae_tiny_patch4")
        spec = ModelSpec(role="restorer", input_shape=(3, 32, 32), token_grid=8, patch_size=4)
        path = export_restorer(module, tmp_path / "m.onnx", (3, 32, 32))
    build_engine(path, tmp_path / "m.ort.onnx", BuildConfig(backend="onnxruntime"))
    specs = [load_engine(path).spec, load_engine(tmp_path / "m.ort.onnx").spec, load_engine(module).spec]
    assert specs == [spec, spec, spec]


def test_model_specs_validate_and_a_bad_one_names_the_fix(tmp_path):
    from edgeguard.deploy import export_model
    from edgeguard.runtime import ModelSpec
    from edgeguard.runtime.spec import METADATA_KEY

    with pytest.raises(InvalidArgumentError, match="output"):
        ModelSpec(role="model", input_shape=(3, 32, 32))
    with pytest.raises(InvalidArgumentError, match="token_grid"):
        ModelSpec(role="restorer", input_shape=(3, 32, 32), patch_size=4)
    with pytest.raises(InvalidArgumentError, match="input_shape"):
        ModelSpec(role="model", input_shape=(32, 32), output="regression")
    with pytest.raises(InvalidArgumentError, match="ModelSpec with role 'model'"):
        export_model(TinyNet(), tmp_path / "x.onnx")  # a bare module says nothing about itself
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ModelFormatError, match="re-export"):
        ModelSpec.from_metadata({METADATA_KEY: '{"role": "model", "input_shape": [3, 32, 32], "output": "pose"}'})
    # Files exported before the spec keep working where the single keys suffice.
    assert load_engine(TinyNet()).spec is None


def test_build_config_checks():
    with pytest.raises(InvalidArgumentError):
        BuildConfig(backend="onnxruntime", precision="fp16")
    with pytest.raises(InvalidArgumentError):
        BuildConfig(profiles=((4, 2, 8),))
    with pytest.raises(InvalidArgumentError):
        BuildConfig(precision="int4")


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "export" / "build_engine.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(HAS_TENSORRT, reason="checks the message given where tensorrt is missing")
def test_cli_without_tensorrt_names_the_package_and_onnxruntime_works(onnx_model, tmp_path):
    res = _cli(onnx_model, "-o", tmp_path / "tiny.engine")
    assert res.returncode == 2 and "'tensorrt' package" in res.stderr and "--backend onnxruntime" in res.stderr
    res = _cli(onnx_model, "--backend", "onnxruntime", "-o", tmp_path / "tiny.ort.onnx")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "tiny.ort.onnx.json").is_file() and "max |engine - onnx fp32|" in res.stdout
    res = _cli(tmp_path / "missing.onnx", "--backend", "onnxruntime")
    assert res.returncode == 2 and "does not exist" in res.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="needs tensorrt (and a GPU)")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_matches_onnxruntime(onnx_model, tmp_path, precision):
    out = tmp_path / f"tiny_{precision}.engine"
    report = build_engine(onnx_model, out, BuildConfig(precision=precision, timing_cache=str(tmp_path / "cache")))
    assert (tmp_path / "cache").is_file()
    engine = load_engine(out, input_shape=(3, 32, 32))
    x = np.random.default_rng(1).random((30, 3, 32, 32), dtype=np.float32)  # > max profile batch 25
    np.testing.assert_allclose(engine(x), load_engine(onnx_model)(x), atol=1e-3 if precision == "fp32" else 5e-2)
    graphed = load_engine(out, cuda_graph=True)
    np.testing.assert_allclose(graphed(x[:1]), engine(x[:1]), atol=1e-5)
    assert report.max_abs_diff < 5e-2


def test_onnxruntime_blames_the_inputs_only_when_they_are_at_fault(onnx_model):
    from edgeguard.errors import EngineRuntimeError, InvalidInputError

    engine = load_engine(onnx_model)
    with pytest.raises(InvalidInputError, match=r"rejected inputs \['float32\[1, 3, 16\]'\]"):
        engine._run([np.zeros((1, 3, 16), np.float32)])  # onnxruntime's InvalidArgument: a wrong rank

    class Fail(Exception):  # named as onnxruntime's own failure type (a provider or device fault)
        pass

    class BrokenSession:
        def run(self, outputs, feeds):
            raise Fail("CUDA failure 2: out of memory")

    engine._session = BrokenSession()
    with pytest.raises(EngineRuntimeError, match="failed running .*out of memory"):
        engine._run([np.zeros((1, 3, 32, 32), np.float32)])


def test_engines_name_their_outputs_and_free_what_they_hold(onnx_model, tmp_path):
    from onnx import TensorProto, helper, save

    from edgeguard.errors import InvalidInputError

    x = np.random.default_rng(2).random((3, 3, 32, 32), dtype=np.float32)
    with load_engine(onnx_model) as engine:
        out = engine.infer({"image": x})
        assert tuple(out) == engine.output_names and len(out) == 1
        np.testing.assert_array_equal(out[engine.output_names[0]], engine(x))
        for feeds, wrong in (({}, r"missing \['image'\]"), ({"image": x, "mask": x}, r"unknown \['mask'\]")):
            with pytest.raises(InvalidInputError, match=wrong):
                engine.infer(feeds)
    assert engine._session is None  # left the block: the session is freed ...
    np.testing.assert_array_equal(engine(x), out[engine.output_names[0]])  # ... and made again on use

    torch_engine = load_engine(TinyNet())
    assert torch_engine.output_names == ("output",)
    np.testing.assert_allclose(torch_engine.infer({"image": x})["output"], engine(x), atol=1e-5)

    # Two outputs, named in the graph's order, not in alphabetical or any other order.
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in ("x", "zeta", "alpha")]
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["zeta"]), helper.make_node("Abs", ["x"], ["alpha"])],
                              "two", [io[0]], io[1:])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "two.onnx")
    two = load_engine(tmp_path / "two.onnx")
    v = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    got = two.infer({"x": v})
    assert two.output_names == ("zeta", "alpha") and list(got) == ["zeta", "alpha"]
    np.testing.assert_array_equal(got["zeta"], -v)
    np.testing.assert_array_equal(got["alpha"], np.abs(v))
    np.testing.assert_array_equal(two(v), -v)  # engine(x): the first output


def test_the_backend_registry_routes_files_by_suffix_and_refuses_the_rest(onnx_model, tmp_path):
    from edgeguard.runtime import BACKENDS, REGISTRY, OnnxRuntimeEngine

    assert BACKENDS == ("auto", *REGISTRY) and REGISTRY["tensorrt"][1] == (".engine", ".plan", ".trt")
    assert isinstance(load_engine(str(onnx_model), backend="onnxruntime"), OnnxRuntimeEngine)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match=r"not a model file of any backend .*'onnxruntime': \['.onnx'\]"):
        load_engine(weights)
    with pytest.raises(InvalidArgumentError, match="torch backend takes an nn.Module, not a file"):
        load_engine(onnx_model, backend="torch")
    with pytest.raises(InvalidArgumentError, match="is a file of the onnxruntime backend; the tensorrt backend cannot run it"):
        load_engine(onnx_model, backend="tensorrt")
    with pytest.raises(InvalidArgumentError, match="unknown backend 'openvino'"):
        load_engine(onnx_model, backend="openvino")


def test_compare_matches_outputs_by_name_or_position_and_names_what_fails():
    from edgeguard.runtime import Engine
    from edgeguard.runtime.compare import Tolerances, compare

    class Fixed(Engine):
        """Outputs given arrays row for row, under given names."""
        input_names = ("x",)

        def __init__(self, names, *outputs):
            super().__init__()
            self.names, self.outputs = tuple(names), outputs

        @property
        def output_names(self):
            return self.names

        def _run(self, arrays):
            return [o[: len(arrays[0])] for o in self.outputs]

    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]], np.float32)
    swapped = logits[:, ::-1].copy()  # every top-1 answer flips
    feeds = [{"x": np.zeros((2, 1), np.float32)}, {"x": np.zeros((4, 1), np.float32)}]
    # Same names in another order: matched by name, not position.
    same = compare(Fixed(["a", "b"], logits, swapped), Fixed(["b", "a"], swapped, logits), feeds,
                   Tolerances(max_abs_diff=0.0, min_top1_agreement=1.0))
    assert same.failures == [] and same.rows == 6 and same.max_abs_diff == {"a": 0.0, "b": 0.0}
    # Other names (a torch module's "output" vs an ONNX file's "logits"): matched by position.
    flipped = compare(Fixed(["output"], logits), Fixed(["logits"], swapped), feeds,
                      Tolerances(max_abs_diff=5.0, min_top1_agreement=0.5))
    assert flipped.top1_agreement == {"output": 0.0} and flipped.max_abs_diff["output"] == pytest.approx(3.0)
    assert flipped.failures == ["output 'output' agrees on only 0.0% of top-1 answers (< 50% required)"]
    with pytest.raises(ModelFormatError, match="m.onnx: output 'output' agrees on only 0.0%.* on 6 inputs; rebuild"):
        flipped.raise_for("m.onnx", "rebuild")
    with pytest.raises(ModelFormatError, match="shape"):
        compare(Fixed(["y"], logits), Fixed(["y"], logits[:, :1]), feeds)
    with pytest.raises(InvalidArgumentError, match="nothing to compare"):
        compare(Fixed(["y"], logits), Fixed(["y", "z"], logits, logits), feeds)
    with pytest.raises(InvalidArgumentError, match="no feeds"):
        compare(Fixed(["y"], logits), Fixed(["y"], logits), [])
    with pytest.raises(InvalidArgumentError, match="min_top1_agreement"):
        Tolerances(min_top1_agreement=1.5)


def test_a_failed_export_leaves_the_model_already_there(onnx_model, tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot trace")

    target = tmp_path / "m.onnx"
    target.write_bytes(onnx_model.read_bytes())
    with pytest.raises(RuntimeError, match="cannot trace"):
        export_onnx(Broken(), target, (3, 32, 32))
    assert target.read_bytes() == onnx_model.read_bytes() and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize("text", ["[]", "null", '{"format": "edgeguard-engine-sidecar", "inputs": null}', "{",
                                  "FIELDS"])
def test_a_malformed_sidecar_is_a_typed_error_naming_it(tmp_path, text):
    from edgeguard.runtime.sidecar import FORMAT, file_sha256

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    if text == "FIELDS":  # right format and checksum, a shape that is not one
        text = json.dumps({"format": FORMAT, "backend": "tensorrt", "engine_sha256": file_sha256(engine),
                           "inputs": {"image": [3, 0, 32]}, "outputs": ["output"]})
    sidecar_path(engine).write_text(text.replace("edgeguard-engine-sidecar", FORMAT))
    with pytest.raises(ModelFormatError, match="m.engine.json is not an edgeguard engine sidecar"):
        EngineSidecar.read(engine)
