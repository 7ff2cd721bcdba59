"""edgeguard.data: generators, photo pool and loaders (numpy only, no torch)."""
from __future__ import annotations

import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from edgeguard.data import (
    ImageDataset,
    load_cifar10,
    load_dataset,
    load_image_folder,
    load_npz,
    make_gaze,
    make_signs,
    photo_pool,
    random_crops,
    save_npz,
)
from edgeguard.data.signs import CLASS_NAMES, MAX_CLASSES
from edgeguard.errors import DataFormatError, InvalidArgumentError, InvalidInputError


# --- photos ---


def test_photo_pool_is_rgb():
    photos = photo_pool()
    assert len(photos) >= 15
    for photo in photos:
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
        assert min(photo.shape[:2]) >= 150


def test_photo_pool_reads_only_files_inside_the_packages():
    from edgeguard.data import photos

    roots = [photos._package_dir(name) for name in ("skimage", "sklearn")]
    files = photos._photo_files()
    assert len(files) == len(photo_pool())
    assert all(any(root is not None and root in f.parents for root in roots) for f in files)


def test_random_crops_shapes_determinism_and_splits():
    a = random_crops(64, 24, seed=3)
    assert a.shape == (64, 24, 24, 3) and a.dtype == np.uint8
    assert np.array_equal(a, random_crops(64, 24, seed=3))
    assert not np.array_equal(a, random_crops(64, 24, seed=4))
    assert a.std() > 10  # real image content, not a constant
    train, test = random_crops(32, 16, seed=0, split="train"), random_crops(32, 16, seed=0, split="test")
    assert not np.array_equal(train, test)
    with pytest.raises(InvalidArgumentError):
        random_crops(4, 16, split="val")
    with pytest.raises(InvalidArgumentError):
        random_crops(4, 16, scale=(0.0, 1.0))


# --- SynthSigns ---


def test_signs_shapes_labels_and_determinism():
    ds = make_signs(500, seed=0)
    assert isinstance(ds, ImageDataset) and ds.output == "classification"
    assert ds.images.shape == (500, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and ds.labels.min() == 0 and ds.labels.max() == MAX_CLASSES - 1
    assert len(set(ds.labels.tolist())) == MAX_CLASSES == 43
    assert ds.class_names == CLASS_NAMES and len(set(CLASS_NAMES)) == 43
    assert np.bincount(ds.labels).max() - np.bincount(ds.labels).min() <= 1  # balanced
    again = make_signs(500, seed=0)
    assert np.array_equal(ds.images, again.images) and np.array_equal(ds.labels, again.labels)
    other = make_signs(500, seed=1)
    assert not np.array_equal(ds.images, other.images)


def test_signs_options():
    ds = make_signs(64, seed=0, size=48, num_classes=16)
    assert ds.images.shape == (64, 48, 48, 3)
    assert set(ds.labels.tolist()) == set(range(16)) and len(ds.class_names) == 16
    for bad in (dict(num_classes=10), dict(num_classes=44), dict(blur=2.0), dict(scale=(0.9, 0.5))):
        with pytest.raises(InvalidArgumentError):
            make_signs(8, **bad)


def test_signs_are_learnable_by_a_linear_model():
    from sklearn.linear_model import RidgeClassifier

    def features(images):
        return images.reshape(len(images), 8, 4, 8, 4, 3).mean(axis=(2, 4)).reshape(len(images), -1) / 255.0

    kw = dict(num_classes=16)
    train, test = make_signs(3000, seed=0, **kw), make_signs(600, seed=1, **kw)
    clf = RidgeClassifier(alpha=1.0).fit(features(train.images), train.labels)
    assert clf.score(features(test.images), test.labels) > 3 / 16  # chance is 1/16


# --- SynthGaze ---


@pytest.mark.parametrize("channels", [1, 3])
def test_gaze_shapes_labels_and_determinism(channels):
    ds = make_gaze(300, seed=0, channels=channels)
    assert ds.output == "regression" and ds.class_names == ("pitch", "yaw")
    assert ds.images.shape == (300, 36, 60, channels) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (300, 2) and ds.labels.dtype == np.float32
    pitch, yaw = ds.labels.T
    assert -0.5 <= pitch.min() and pitch.max() <= 0.3 and -0.6 <= yaw.min() and yaw.max() <= 0.6
    assert pitch.std() > 0.15 and yaw.std() > 0.2
    assert np.array_equal(ds.images, make_gaze(300, seed=0, channels=channels).images)
    assert not np.array_equal(ds.images, make_gaze(300, seed=1, channels=channels).images)


def test_gaze_options():
    assert make_gaze(4, height=72, width=120).images.shape == (4, 72, 120, 1)
    for bad in (dict(channels=2), dict(pitch_range=(0.5, -0.5)), dict(blur=-1)):
        with pytest.raises(InvalidArgumentError):
            make_gaze(4, **bad)


def test_gaze_is_learnable_by_ridge_regression():
    from sklearn.linear_model import Ridge

    train, test = make_gaze(3000, seed=0), make_gaze(500, seed=1)

    def features(images):
        return images.reshape(len(images), 18, 2, 30, 2).mean(axis=(2, 4)).reshape(len(images), -1) / 255.0

    pred = Ridge(alpha=10.0).fit(features(train.images), train.labels).predict(features(test.images))
    for j in range(2):
        assert np.corrcoef(pred[:, j], test.labels[:, j])[0, 1] > 0.5


# --- speed ---


@pytest.mark.slow  # wall clock: a busy machine fails it (#16 item 7)
@pytest.mark.parametrize("make", [make_signs, make_gaze], ids=["signs", "gaze"])
def test_generation_speed_2k(make):
    make(16)  # warm caches (photos, templates)
    start = time.perf_counter()
    make(2000, seed=5)
    assert time.perf_counter() - start < 5.0


@pytest.mark.slow
@pytest.mark.parametrize("make", [make_signs, make_gaze], ids=["signs", "gaze"])
def test_generation_speed_20k(make):
    make(16)
    start = time.perf_counter()
    make(20000, seed=5)
    assert time.perf_counter() - start < 10.0


def test_import_is_torch_free():
    code = "import sys, edgeguard.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- loaders ---


def _write_cifar(root, n_train=(4, 3, 2, 2, 3), n_test=5):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    expected = {}
    for name, n in zip(names, list(n_train) + [n_test]):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f)
        expected[name] = (data, labels)
    label_names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": label_names, b"num_vis": 3072}, f)
    return folder, expected


def test_load_cifar10(tmp_path):
    folder, expected = _write_cifar(tmp_path)
    for root in (tmp_path, folder):
        train = load_cifar10(root, "train")
        assert train.images.shape == (14, 32, 32, 3) and train.class_names[0] == "airplane"
    data, labels = expected["test_batch"]
    test = load_cifar10(folder, "test")
    assert np.array_equal(test.labels, labels)
    # Row-major planes: the first 1024 values are the red channel.
    assert np.array_equal(test.images[0, :, :, 0].ravel(), data[0, :1024])
    assert np.array_equal(test.images[0, :, :, 2].ravel(), data[0, 2048:])
    assert load_dataset(tmp_path, split="test").name == "cifar10-test"


def test_load_cifar10_errors(tmp_path):
    folder, _ = _write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataFormatError, match="data_batch_3"):
        load_cifar10(folder)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match="test_batch"):
        load_cifar10(folder, "test")
    with open(folder / "test_batch", "wb") as f:  # a pickle that would run code when loaded
        pickle.dump(subprocess.Popen, f)
    with pytest.raises(DataFormatError, match="test_batch"):
        load_cifar10(folder, "test")
    with pytest.raises(DataFormatError, match="CIFAR-10"):
        load_cifar10(tmp_path / "nowhere")


def test_load_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls, n in (("cat", 3), ("dog", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(tmp_path / "dog" / "grey.jpg")
    ds = load_image_folder(tmp_path, size=16)
    assert ds.images.shape == (6, 16, 16, 3) and ds.class_names == ("cat", "dog")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert load_dataset(tmp_path, size=16).images.shape == (6, 16, 16, 3)
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataFormatError, match="broken.png"):
        load_image_folder(tmp_path)


def test_load_gtsrb_layout(tmp_path):
    images_dir = tmp_path / "GTSRB" / "Final_Training" / "Images"
    rng = np.random.default_rng(0)
    for class_id in (0, 2):
        folder = images_dir / f"{class_id:05d}"
        folder.mkdir(parents=True)
        rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
        for i in range(2):
            img = np.zeros((40, 50, 3), np.uint8)
            img[5:35, 10:40] = (255, 0, 0) if class_id == 0 else (0, 0, 255)  # the sign inside the ROI
            Image.fromarray(img).save(folder / f"{i:05d}_00000.ppm")
            rows.append(f"{i:05d}_00000.ppm;50;40;10;5;39;34;{class_id}")
        (folder / f"GT-{class_id:05d}.csv").write_text("\n".join(rows) + "\n")
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "unlisted.ppm")
    ds = load_dataset(tmp_path / "GTSRB", size=8)
    assert ds.labels.tolist() == [0, 0, 2, 2]
    assert len(ds.class_names) == 3 and ds.class_names[2] == "00002"
    # Cropped to the ROI: the whole 8x8 image is the sign colour.
    assert ds.images[0, :, :, 0].min() > 200 and ds.images[3, :, :, 2].min() > 200
    (images_dir / "00002" / "GT-00002.csv").write_text("Filename,ClassId\nx.ppm,2\n")
    with pytest.raises(DataFormatError, match="GT-00002.csv"):
        load_image_folder(images_dir)
    # An annotation may not pull files from outside its class folder: '..', absolute, or a link out.
    secret = tmp_path / "secret.ppm"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(secret)
    (images_dir / "00002" / "link.ppm").symlink_to(secret)
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
    for name in ("../../../../secret.ppm", str(secret), "link.ppm"):
        (images_dir / "00002" / "GT-00002.csv").write_text(f"{header}{name};50;40;10;5;39;34;2\n")
        with pytest.raises(DataFormatError, match="points outside"):
            load_image_folder(images_dir)


def test_npz_round_trip(tmp_path):
    signs = make_signs(20, seed=0, num_classes=16)
    gaze = make_gaze(10, seed=0)
    for ds in (signs, gaze):
        path = save_npz(ds, tmp_path / f"{ds.name}.npz")
        back = load_npz(path)
        assert np.array_equal(back.images, ds.images) and np.array_equal(back.labels, ds.labels)
        assert (back.output, back.class_names, back.name) == (ds.output, ds.class_names, ds.name)
        assert load_dataset(path).output is ds.output


def test_npz_errors(tmp_path):
    with pytest.raises(DataFormatError, match="missing.npz"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match="corrupt.npz"):
        load_npz(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataFormatError, match="labels"):
        load_npz(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4, 3)), labels=np.zeros(2, np.int64),
             task=np.array("classification"))
    with pytest.raises(DataFormatError, match="uint8"):
        load_npz(tmp_path / "float.npz")
    with pytest.raises(DataFormatError):
        load_dataset(tmp_path / "nothing-here")


def test_trigger_video_pastes_a_drifting_sticker_in_some_shots():
    from edgeguard.data import make_trigger_video

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 200, (5, 32, 32, 3), dtype=np.uint8)
    triggered = clean.copy()
    triggered[:, 26:29, 26:29] = 255  # a 3x3 sticker near the corner
    video = make_trigger_video(clean, triggered, np.arange(5), shots=6, frames_per_shot=10, max_drift=2,
                               drift_prob=1.0, noise=0.0, flicker=0.0, seed=1)
    assert video.frames.shape == (60, 32, 32, 3) and len(video) == 60
    per_shot = video.triggered.reshape(6, 10)
    assert per_shot.any(axis=1).sum() == 3  # half the shots
    assert not per_shot[:, 0].any()  # the sticker appears part-way
    assert np.abs(video.offset).max() == 2 and (np.abs(video.offset) <= 2).all()
    for t in np.flatnonzero(video.triggered):
        dy, dx = video.offset[t]
        np.testing.assert_array_equal(video.frames[t, 26 + dy:29 + dy, 26 + dx:29 + dx], 255)
    for t in np.flatnonzero(~video.triggered):
        assert any(np.array_equal(video.frames[t], c) for c in clean)
    # Frames of a shot show one scene (one label).
    assert (video.labels.reshape(6, 10) == video.labels.reshape(6, 10)[:, :1]).all()


def test_npz_files_of_0_1_with_a_task_key_still_load(tmp_path):
    np.savez(tmp_path / "old.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros((2, 2), np.float32),
             task=np.array("regression"))
    assert load_npz(tmp_path / "old.npz").output == "regression"


def test_images_alone_load_from_an_npz_without_labels(tmp_path):
    from edgeguard.data import load_images

    frames = np.random.default_rng(0).integers(0, 255, (5, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "frames.npz", images=frames)
    assert np.array_equal(load_images(tmp_path / "frames.npz"), frames)
    save_npz(make_gaze(4, seed=0), tmp_path / "gaze.npz")  # a labelled dataset's images too
    assert load_images(tmp_path / "gaze.npz").shape == (4, 36, 60, 1)
    np.savez(tmp_path / "nothing.npz", pictures=frames)
    with pytest.raises(DataFormatError, match="no 'images'"):
        load_images(tmp_path / "nothing.npz")
    np.savez(tmp_path / "floats.npz", images=frames.astype(np.float32))
    with pytest.raises(DataFormatError, match="uint8"):
        load_images(tmp_path / "floats.npz")


def test_resize_frames_keeps_flat_colours_and_averages_blocks():
    from edgeguard.data import resize_frames

    flat = np.full((2, 40, 60, 3), (10, 120, 250), np.uint8)
    assert (resize_frames(flat, (32, 48)) == (10, 120, 250)).all()  # any resampling keeps a flat colour
    checker = np.kron(np.indices((4, 4)).sum(0) % 2, np.ones((8, 8))).astype(np.uint8)[None, :, :, None] * 200
    small = resize_frames(checker, 4)  # 8x8 blocks down to one pixel each: the block's own value
    assert np.array_equal(small[0, :, :, 0], (np.indices((4, 4)).sum(0) % 2) * 200)
    with pytest.raises(InvalidInputError):
        resize_frames(np.zeros((2, 8, 8, 3), np.float32), 4)


def test_image_decoding_scales_16_bit_and_refuses_what_it_cannot_read_faithfully(tmp_path, monkeypatch):
    from edgeguard.data.images import read_image

    grey = (np.arange(16 * 16).reshape(16, 16) * 257).astype(np.uint16)  # 0..65535 in steps of 257
    Image.fromarray(grey).save(tmp_path / "deep.png")
    pixels = read_image(tmp_path / "deep.png", channels=1)[..., 0]
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, np.arange(256).reshape(16, 16))  # not saturated
    assert np.array_equal(read_image(tmp_path / "deep.png")[..., 1], pixels)
    Image.fromarray(grey.astype(np.int32) // 257).save(tmp_path / "int32.tif")  # mode I holding 8-bit values
    assert np.array_equal(read_image(tmp_path / "int32.tif", channels=1)[..., 0], pixels)
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(DataFormatError, match="float.tif: floating-point"):
        read_image(tmp_path / "float.tif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 16 x 16 = 256 pixels is now a bomb
    with pytest.raises(DataFormatError, match="deep.png: refused as a possible decompression bomb"):
        read_image(tmp_path / "deep.png")
