import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeguard.deploy.weights import load_official_mae
from edgeguard.errors import ModelFormatError
from edgeguard.models import create_model
from edgeguard.purify.frames import pixel_token_map


def _tiny(**kw):
    torch.manual_seed(0)
    return create_model("mae_tiny_patch4", **kw).eval()


def _small_224():
    """The official 224/16 token layout with a small width, for the resize path."""
    torch.manual_seed(0)
    return create_model("mae_vit_base_patch16", embed_dim=32, depth=1, num_heads=4,
                        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4).eval()


def _random_mask(n, length, ratio, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, length, generator=g) < ratio).float()


def test_unmasked_pixels_are_untouched_and_masked_ones_restored():
    mae = _tiny()
    x = torch.rand(3, 3, 32, 32)
    mask = _random_mask(3, 64, 0.5)
    with torch.no_grad():
        out = mae(x, mask)
        assert torch.equal(mae(x, torch.zeros(3, 64)), x)
    pixel = mask.reshape(3, 1, 8, 8).repeat_interleave(4, 2).repeat_interleave(4, 3).expand_as(x).bool()
    assert torch.equal(out[~pixel], x[~pixel])
    assert (out[pixel] - x[pixel]).abs().mean() > 1e-3


def test_attention_masking_equals_dropping_the_masked_tokens():
    mae = _tiny()
    x = torch.rand(1, 3, 32, 32)
    mask = _random_mask(1, 64, 0.75, seed=3)
    normed = (x - mae.pixel_mean) / mae.pixel_std
    with torch.no_grad():
        got = mae.predict(normed, mask)
        tokens = mae.embed(normed)
        keep = torch.cat([torch.tensor([0]), torch.nonzero(mask[0] == 0).flatten() + 1])
        latent_visible = mae.encode(tokens[:, keep])  # the official path: masked tokens removed
        latent = torch.zeros_like(tokens)
        latent[:, keep] = latent_visible
        want = mae.decode(latent, mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [_tiny, _small_224])
def test_the_encoder_on_visible_tokens_only_restores_what_the_full_encoder_does(make):
    from torch.utils.flop_counter import FlopCounterMode

    from edgeguard.models.mae import restorer_flops

    mae = make()
    c, length = mae.config, mae.config.num_tokens
    normed = (torch.rand(6, 3, c.img_size, c.img_size) - mae.pixel_mean) / mae.pixel_std
    # Rows with different visible counts, none visible and all visible among them.
    mask = torch.stack([_random_mask(1, length, r, seed=i)[0] for i, r in enumerate((0.75, 0.75, 0.5, 0.9))]
                       + [torch.ones(length), torch.zeros(length)])
    out = {}
    for drop in (False, True):
        mae.drop_masked = drop
        with torch.no_grad():
            out[drop] = mae.predict(normed, mask)
    torch.testing.assert_close(out[True], out[False], atol=1e-5, rtol=1e-5)
    # Stage-1 masks leave a quarter of the tokens visible, and the encoder sees only them:
    # the count the speed benchmarks report, against torch's own.
    stage1 = torch.ones(2, length)
    stage1[:, :length // 4] = 0
    for drop in (False, True):
        mae.drop_masked = drop
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            mae.predict(normed[:2], stage1)
        assert counter.get_total_flops() == 2 * restorer_flops(c, length // 4, drop_masked=drop)
    assert restorer_flops(c, length // 4) < restorer_flops(c, length // 4, drop_masked=False)


def test_images_in_a_batch_do_not_interact():
    mae = _tiny()
    x = torch.rand(4, 3, 32, 32)
    mask = torch.stack([_random_mask(1, 64, r, seed=i)[0] for i, r in enumerate((0.1, 0.5, 0.75, 0.9))])
    with torch.no_grad():
        batch = mae(x, mask)
        alone = torch.cat([mae(x[i:i + 1], mask[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)


def test_small_frames_follow_the_official_resize_path():
    mae = _small_224()
    x = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 196)
    mask[:, 3 * 14 + 5] = 1  # token row 3, column 5
    with torch.no_grad():
        out = mae(x, mask)
    changed = (out != x).any(dim=1)[0].numpy()
    assert np.array_equal(changed, pixel_token_map(32, 32, 224, 16) == 3 * 14 + 5)
    # BDMAE's mapping for 32 px: tokens 0, 3, 7 and 10 cover 3 pixels, the others 2.
    counts = np.bincount(pixel_token_map(32, 32, 224, 16)[0], minlength=14)
    assert counts.tolist() == [3, 2, 2, 3, 2, 2, 2, 3, 2, 2, 3, 2, 2, 2]


@pytest.mark.parametrize("h, w", [(32, 32), (20, 45), (64, 48), (7, 33)])
def test_the_mae_composites_the_pixels_the_purifier_maps(h, w):
    # The restorer's composite (torch, nearest resize) and the purifier's numpy map must
    # agree pixel for pixel, or a token mask would mean different pixels on the two sides.
    mae = _tiny()
    mask = _random_mask(3, mae.config.num_tokens, 0.5, seed=h * w)
    pixels = mae.pixel_mask(mask, (h, w))[:, 0].numpy() > 0
    expected = mask.numpy()[:, pixel_token_map(h, w, mae.config.img_size, mae.config.patch_size)] > 0
    assert np.array_equal(pixels, expected)


def test_training_loss_falls():
    mae = _tiny()
    mae.train()
    x = torch.rand(16, 1, 1, 1).expand(16, 3, 32, 32).contiguous()  # flat colours: easy to restore
    opt = torch.optim.Adam(mae.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = mae.loss(x, 0.75, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def _official_vit_mae_state(embed=768, depth=12, dec=512, dec_depth=8, patch=16, chans=3, tokens=196):
    """Random tensors under the official facebookresearch/mae key names and shapes."""
    g = torch.Generator().manual_seed(0)
    shapes = {"cls_token": (1, 1, embed), "pos_embed": (1, tokens + 1, embed),
              "patch_embed.proj.weight": (embed, chans, patch, patch), "patch_embed.proj.bias": (embed,),
              "norm.weight": (embed,), "norm.bias": (embed,), "mask_token": (1, 1, dec),
              "decoder_pos_embed": (1, tokens + 1, dec), "decoder_embed.weight": (dec, embed),
              "decoder_embed.bias": (dec,), "decoder_norm.weight": (dec,), "decoder_norm.bias": (dec,),
              "decoder_pred.weight": (patch * patch * chans, dec), "decoder_pred.bias": (patch * patch * chans,)}
    for prefix, d, n in (("blocks", embed, depth), ("decoder_blocks", dec, dec_depth)):
        for i in range(n):
            b = f"{prefix}.{i}."
            shapes.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "norm2.weight": (d,),
                           b + "norm2.bias": (d,), b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                           b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                           b + "mlp.fc1.weight": (4 * d, d), b + "mlp.fc1.bias": (4 * d,),
                           b + "mlp.fc2.weight": (d, 4 * d), b + "mlp.fc2.bias": (d,)})
    return {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}


def test_official_checkpoint_layout_loads(tmp_path):
    state = _official_vit_mae_state()
    path = tmp_path / "mae_visualize_vit_base.pth"
    torch.save({"model": state}, path)
    mae = load_official_mae(path, "mae_vit_base_patch16")
    loaded = mae.state_dict()
    assert set(loaded) == set(state)
    for key in ("blocks.11.attn.qkv.weight", "decoder_pred.bias", "mask_token", "patch_embed.proj.weight"):
        assert torch.equal(loaded[key], state[key])


def test_official_checkpoint_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFormatError, match="readable"):
        load_official_mae(bad)
    partial = tmp_path / "partial.pth"
    state = _official_vit_mae_state()
    del state["decoder_pred.weight"]
    torch.save({"model": state}, partial)
    with pytest.raises(ModelFormatError, match="missing"):
        load_official_mae(partial)


def test_restorer_onnx_matches_torch_with_mixed_masks(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgeguard.deploy import export_restorer
    from edgeguard.runtime import ModelSpec, load_engine

    mae = _tiny()
    path = export_restorer(mae, tmp_path / "mae.onnx", (3, 32, 32))
    engine = load_engine(path)
    assert engine.spec == ModelSpec(role="restorer", input_shape=(3, 32, 32), token_grid=8, patch_size=4)
    # ... and the single keys files exported before the spec carried, for older readers.
    assert {"role": "restorer", "mae_img_size": "32", "mae_patch_size": "4"}.items() <= engine.metadata.items()
    x = torch.rand(5, 3, 32, 32)
    mask = torch.stack([_random_mask(1, 64, r, seed=i)[0] for i, r in enumerate((0.0, 0.05, 0.3, 0.75, 1.0))])
    with torch.no_grad():
        want = mae(x, mask).numpy()
    np.testing.assert_allclose(engine(x.numpy(), mask.numpy()), want, atol=1e-4)
    np.testing.assert_allclose(load_engine(mae)(x.numpy(), mask.numpy()), want, atol=1e-6)
    # A batch of stage-1 masks (16 of 64 visible): the graph gathers as many tokens as the
    # batch's most visible row has, a count that is not the one it was traced with.
    from edgeguard import kernels

    stage1 = kernels.stage1_masks(64, 5, 5, 0.75, 1).reshape(25, 64)[:5]
    full = load_engine(export_restorer(mae, tmp_path / "full.onnx", (3, 32, 32), drop_masked=False))
    assert mae.drop_masked  # the module is left as it was
    with torch.no_grad():
        want = mae(x, torch.from_numpy(stage1)).numpy()
    for restorer in (engine, full):
        np.testing.assert_allclose(restorer(x.numpy(), stage1), want, atol=1e-4)


def test_restorer_training_caches_and_fine_tunes():
    from edgeguard.errors import InvalidInputError
    from edgeguard.bench.restorer import RestorerConfig, get_restorer, restoration_psnr, train_mae

    config = RestorerConfig(steps=3, batch_size=8, warmup_steps=1)
    first = get_restorer(config, progress=False)
    again = get_restorer(config, progress=False)  # from the cache
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    images = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    before = {k: v.clone() for k, v in again.state_dict().items()}
    tuned = train_mae(config, images=images, init=again, progress=False)
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    assert 0 < restoration_psnr(tuned, images) < 60
    for bad in (images.astype(np.float32), images[..., :2], images[0]):
        with pytest.raises(InvalidInputError):
            train_mae(config, images=bad, progress=False)


def test_grey_frames_of_any_size_go_through_a_colour_mae(tmp_path):
    """A grey frame is the colour frame with R = G = B: its restoration is their mean; the
    MAE fine-tunes on grey 36x60 frames (resized and repeated as it restores them); the
    grey export runs in ONNX Runtime as in torch."""
    pytest.importorskip("onnxruntime")
    from edgeguard.bench.restorer import RestorerConfig, mae_frames, train_mae
    from edgeguard.deploy import export_restorer
    from edgeguard.runtime import load_engine

    mae = _tiny()
    grey = torch.rand(3, 1, 36, 60)
    mask = _random_mask(3, 64, 0.5)
    with torch.no_grad():
        got = mae(grey, mask)
        want = mae(grey.expand(-1, 3, -1, -1), mask).mean(dim=1, keepdim=True)
    assert got.shape == (3, 1, 36, 60)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    frames = np.random.default_rng(0).integers(0, 255, (10, 36, 60, 1), dtype=np.uint8)
    shaped = mae_frames(frames, 32, 3)
    assert shaped.shape == (10, 32, 32, 3) and (shaped[..., 0] == shaped[..., 2]).all()
    config = RestorerConfig(steps=2, batch_size=4, warmup_steps=1)
    tuned = train_mae(config, images=frames, init=_tiny(), progress=False)
    engine = load_engine(export_restorer(tuned, tmp_path / "grey.onnx", (1, 36, 60)))
    assert engine.spec.input_shape == (1, 36, 60) and engine.spec.token_grid == 8
    with torch.no_grad():
        np.testing.assert_allclose(engine(grey.numpy(), mask.numpy()), tuned(grey, mask).numpy(), atol=1e-4)


def test_fine_tuned_restorer_is_cached_per_image_set():
    from edgeguard.errors import InvalidArgumentError
    from edgeguard.bench.restorer import RestorerConfig, get_restorer

    config = RestorerConfig(steps=2, batch_size=8, warmup_steps=1)
    tune = RestorerConfig(steps=2, batch_size=8, warmup_steps=1, lr=5e-4)
    images = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    base = get_restorer(config, progress=False)
    tuned = get_restorer(config, tune, images, progress=False)
    again = get_restorer(config, tune, images, progress=False)
    other = get_restorer(config, tune, images[::-1].copy(), progress=False)
    state = tuned.state_dict()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in state.items())
    assert any(not torch.equal(v, base.state_dict()[k]) for k, v in state.items())
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in state.items())
    with pytest.raises(InvalidArgumentError):
        get_restorer(config, tune, None, progress=False)


def test_interrupted_restorer_training_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    from edgeguard.bench.restorer import RestorerConfig, train_mae
    from edgeguard.models.mae import MaskedAutoencoder

    config = RestorerConfig(steps=6, batch_size=4, warmup_steps=1, seed=5)
    images = np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)
    whole = train_mae(config, images=images, progress=False)

    checkpoint, calls = tmp_path / "checkpoint.pt", []
    real_loss = MaskedAutoencoder.loss

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 5:  # during step 5: the checkpoint of step 4 is on disk
            raise KeyboardInterrupt
        return real_loss(self, *args)

    monkeypatch.setattr(MaskedAutoencoder, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_mae(config, images=images, progress=False, checkpoint=checkpoint, checkpoint_every=2)
    monkeypatch.setattr(MaskedAutoencoder, "loss", real_loss)
    assert torch.load(checkpoint, weights_only=True)["step"] == 4
    resumed = train_mae(config, images=images, progress=False, checkpoint=checkpoint, checkpoint_every=2)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
