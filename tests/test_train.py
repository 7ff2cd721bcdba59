import pytest

torch = pytest.importorskip("torch")

from conftest import toy_regression
from edgeguard.errors import InvalidArgumentError
from edgeguard.metrics import clean_accuracy, mean_angular_error
from edgeguard.models import create_model
from edgeguard.train import TrainConfig, fit, predict, random_crop


def test_random_crop_shifts_content():
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 3, 3] = 1
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.all(out.sum(dim=(1, 2, 3)) == 1)  # a shift of at most 2 keeps the pixel inside
    assert torch.equal(random_crop(x, 0, torch.Generator()), x)


def test_classifier_learns_toy_task(toy_train, toy_test):
    # Width 0.25 (the victims' default): the 8-channel stem of width 0.125 sometimes merged
    # two colours within this budget (0.89 accuracy seen).
    model = create_model("preact_resnet18", num_outputs=8, width=0.25)
    history = fit(model, toy_train, TrainConfig(epochs=8, batch_size=32, lr=0.05), progress=False)
    assert history.loss[-1] < history.loss[0]
    assert clean_accuracy(predict(model, toy_test.images), toy_test.labels) > 0.9


def test_regressor_learns_toy_gaze():
    train, test = toy_regression(512, 0), toy_regression(128, 1)
    model = create_model("gaze_resnet18", width=0.125)
    before = mean_angular_error(predict(model, test.images), test.labels)
    fit(model, train, TrainConfig(epochs=3, batch_size=32, lr=0.05), progress=False)
    after = mean_angular_error(predict(model, test.images), test.labels)
    assert after < 0.5 * before and after < 10


class _StopAfter:
    """A batch hook that leaves batches alone and interrupts training after n steps."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, x, y):
        if self.n == 0:
            raise KeyboardInterrupt
        self.n -= 1
        return x, y, None

    def step(self):
        pass


def test_resume_matches_uninterrupted_run(tmp_path, toy_train):
    data = toy_train.subset(slice(0, 128))  # 4 steps per epoch at batch 32
    cfg = TrainConfig(epochs=3, batch_size=32)

    def new_model():
        torch.manual_seed(0)
        return create_model("preact_resnet18", num_outputs=8, width=0.125)

    straight = new_model()
    fit(straight, data, cfg, progress=False)

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(new_model(), data, cfg, hook=_StopAfter(2 * 4 + 1), checkpoint=ckpt, progress=False)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 2 and saved["seconds"] > 0
    resumed = new_model()
    history = fit(resumed, data, cfg, checkpoint=ckpt, progress=False)
    assert len(history.loss) == 3 and history.seconds > saved["seconds"]  # the interrupted epochs count
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


class _Interrupted:
    """An attack's batch hook, interrupted after n steps; its state travels with checkpoints."""

    def __init__(self, hook, n: int):
        self.hook, self.n = hook, n
        self.state_dict, self.load_state_dict = hook.state_dict, hook.load_state_dict

    def __call__(self, x, y):
        if self.n == 0:
            raise KeyboardInterrupt
        self.n -= 1
        return self.hook(x, y)

    def step(self):
        self.hook.step()


@pytest.mark.parametrize("name,options", [("wanet", {}), ("iab", {"mask_epochs": 1, "width": 4})])
def test_resume_with_an_attack_hook_matches_uninterrupted_run(tmp_path, toy_train, name, options):
    """WaNet's and IAB's hooks draw per batch (and IAB trains its generator): a resumed run
    must restore that state too, or the model and the trigger differ from a straight run."""
    from edgeguard.attacks import get_attack

    data = toy_train.subset(slice(0, 128))  # 4 steps per epoch at batch 32
    cfg = TrainConfig(epochs=3, batch_size=32)

    def run(stop=None, checkpoint=None):
        torch.manual_seed(0)
        model = create_model("preact_resnet18", num_outputs=8, width=0.125)
        attack = get_attack(name, seed=1, **options)
        attack.fit(data)
        hook = attack.training_hook(data, progress=False)
        fit(model, data, cfg, hook=hook if stop is None else _Interrupted(hook, stop), checkpoint=checkpoint,
            progress=False)
        return model, attack

    straight, straight_attack = run()
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        run(stop=2 * 4 + 1, checkpoint=ckpt)
    assert "hook" in torch.load(ckpt, weights_only=True)
    resumed, resumed_attack = run(checkpoint=ckpt)
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=key)
    for key, a in straight_attack.state_dict().items():  # IAB's trained generator too
        torch.testing.assert_close(torch.from_numpy(a), torch.from_numpy(resumed_attack.state_dict()[key]), msg=key)


def test_fit_rejects_tiny_dataset(toy_train):
    with pytest.raises(InvalidArgumentError):
        fit(create_model("preact_resnet18", num_outputs=8, width=0.125), toy_train.subset(slice(0, 10)), TrainConfig())


def test_bf16_autocast_trains_and_leaves_fp32_contiguous_weights(toy_train):
    model = create_model("preact_resnet18", num_outputs=8, width=0.125)
    history = fit(model, toy_train.subset(slice(0, 256)), TrainConfig(epochs=3, batch_size=32, lr=0.05, precision="bf16"),
                  progress=False)
    assert history.loss[-1] < history.loss[0]
    weight = model.conv1.weight
    assert weight.dtype == torch.float32 and weight.is_contiguous()  # safetensors-ready
    with pytest.raises(InvalidArgumentError, match="precision"):
        TrainConfig(precision="fp8")


def test_freeze_norm_keeps_batch_norm_statistics_and_still_trains(toy_train):
    data = toy_train.subset(slice(0, 64))

    def run(freeze):
        torch.manual_seed(0)
        model = create_model("preact_resnet18", num_outputs=8, width=0.125)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        fit(model, data, TrainConfig(epochs=1, batch_size=32), progress=False, freeze_norm=freeze)
        moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
        return {k for k in moved if "running_" in k}, {k for k in moved if k.endswith("conv1.weight")}

    stats, convs = run(freeze=True)
    assert not stats and convs  # weights learn, statistics stay
    stats, _ = run(freeze=False)
    assert stats


@pytest.mark.parametrize("field, value, words", [
    ("epochs", 0, "epochs"), ("batch_size", -1, "batch_size"), ("optimizer", "lbfgs", "optimizer"),
    ("lr", 0.0, "lr > 0"), ("momentum", 1.0, "momentum"), ("loss", "huber", "unknown loss"),
])
def test_a_bad_training_setting_is_refused_when_the_config_is_made(field, value, words):
    with pytest.raises(InvalidArgumentError, match=words):
        TrainConfig(**{field: value})
