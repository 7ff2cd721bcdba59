"""SynthGaze: MPIIGaze-like eye patches with (pitch, yaw) gaze labels in radians.

Every sample is rendered analytically on a pixel grid, vectorised over the samples: skin
with tone and gradient illumination, an almond eye opening between two eyelid curves, a
shaded sclera, and an iris/pupil disc on a sphere of radius R that faces the gaze direction
g = (cos p sin y, sin p, cos p cos y) (x right, y up, z towards the camera). The iris
centre projects to ``(R cos p sin y, -R sin p)`` pixels from the eyeball centre (image y
points down) and the iris appears as an ellipse foreshortened by ``cos p cos y``. The upper
lid follows the pitch, as real lids do. Nuisances: head jitter (eye position, in-plane roll),
eye size and openness, skin/iris/sclera colours, corneal glint, illumination, blur, noise.
"""
from __future__ import annotations

import numpy as np

from edgeguard.data.dataset import ImageDataset
from edgeguard.data.filters import blur3
from edgeguard.errors import InvalidArgumentError

GAZE_NAMES = ("pitch", "yaw")

# RGB iris colours: brown, dark brown, hazel, green, blue, grey.
_IRIS_RGB = np.array(
    [(0.36, 0.22, 0.12), (0.16, 0.10, 0.06), (0.42, 0.32, 0.16), (0.26, 0.34, 0.22),
     (0.28, 0.40, 0.55), (0.38, 0.40, 0.42)],
    dtype=np.float32,
)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _soft(sd: np.ndarray) -> np.ndarray:
    """Coverage of a pixel by a shape from its signed distance in pixels (< 0 inside)."""
    return np.minimum(np.maximum(0.5 - sd, 0.0), 1.0)


def make_gaze(
    n: int,
    seed: int = 0,
    height: int = 36,
    width: int = 60,
    channels: int = 1,
    *,
    pitch_range: tuple[float, float] = (-0.5, 0.3),
    yaw_range: tuple[float, float] = (-0.6, 0.6),
    jitter: float = 2.0,
    roll: float = 6.0,
    blur: float = 0.3,
    noise: float = 0.04,
) -> ImageDataset:
    """SynthGaze: ``n`` eye patches with gaze labels, deterministic by seed.

    Args:
        n: number of samples.
        seed: random seed.
        height, width: patch size in pixels (MPIIGaze: 36 x 60); the eye scales with it.
        channels: 1 (grey) or 3 (RGB: skin and iris colours vary).
        pitch_range, yaw_range: uniform label ranges in radians (pitch > 0 looks up,
            yaw > 0 looks towards image right).
        jitter: largest offset of the eye from the patch centre, in pixels at 36 x 60.
        roll: largest in-plane head rotation, degrees.
        blur: probability that a sample is blurred.
        noise: largest std of the additive Gaussian noise, in [0, 1] intensity units.

    Returns:
        ImageDataset with images (n, height, width, channels) uint8, labels (n, 2) float32
        (pitch, yaw) radians, output "regression", class_names ("pitch", "yaw"), name "synthgaze".
    """
    if channels not in (1, 3):
        raise InvalidArgumentError(f"channels must be 1 or 3, got {channels}")
    if n < 0 or height < 12 or width < 20:
        raise InvalidArgumentError(f"need n >= 0, height >= 12, width >= 20; got {n}, {height}, {width}")
    for label, (lo, hi) in (("pitch_range", pitch_range), ("yaw_range", yaw_range)):
        if not -1.2 <= lo <= hi <= 1.2:
            raise InvalidArgumentError(f"{label} must satisfy -1.2 <= low <= high <= 1.2 radians, got {(lo, hi)}")
    if not 0.0 <= blur <= 1.0 or noise < 0 or jitter < 0 or roll < 0:
        raise InvalidArgumentError("blur must be in [0, 1]; noise, jitter and roll must be >= 0")

    rng = np.random.default_rng(seed)
    f32 = np.float32
    pitch = rng.uniform(*pitch_range, n)
    yaw = rng.uniform(*yaw_range, n)
    s = min(height / 36.0, width / 60.0)  # pixels per "MPIIGaze pixel"

    # Geometry, in pixels, in the eye frame (origin at the eyeball centre, x right, y down).
    radius = rng.uniform(12.5, 15.0, n) * s
    cx = width / 2 + rng.uniform(-jitter, jitter, n) * s
    cy = height / 2 + 1.5 * s + rng.uniform(-jitter, jitter, n) * s
    angle = np.radians(rng.uniform(-roll, roll, n))
    half_width = radius * rng.uniform(1.25, 1.4, n)
    corner_y = radius * rng.uniform(0.05, 0.2, n)
    lid_up = radius * np.maximum(rng.uniform(0.5, 0.8, n) + 0.6 * np.sin(pitch), 0.1)
    lid_low = radius * (rng.uniform(0.35, 0.5, n) - 0.25 * np.sin(pitch))
    lid_skew = rng.uniform(-0.2, 0.2, n)
    iris_x = radius * np.cos(pitch) * np.sin(yaw)
    iris_y = -radius * np.sin(pitch)
    foreshortening = np.cos(pitch) * np.cos(yaw)
    offset = np.hypot(iris_x, iris_y)
    dir_x = np.where(offset > 1e-6, iris_x / np.maximum(offset, 1e-6), 1.0)
    dir_y = np.where(offset > 1e-6, iris_y / np.maximum(offset, 1e-6), 0.0)
    iris_r = radius * rng.uniform(0.45, 0.52, n)
    pupil_r = iris_r * rng.uniform(0.35, 0.55, n)
    # The cornea's centre of curvature sits ~0.45 R in front of the eyeball centre, so the
    # glint moves about half as far as the pupil; its offset depends on the light position.
    glint_x = 0.45 * iris_x + radius * rng.uniform(-0.25, 0.25, n)
    glint_y = 0.45 * iris_y + radius * rng.uniform(-0.3, 0.1, n)
    glint_on = (rng.random(n) < 0.8).astype(f32)

    # Appearance.
    skin_tone = rng.uniform(0.3, 0.85, n)
    illum = rng.uniform(-0.5, 0.5, (n, 2))
    sclera_v = rng.uniform(0.7, 0.95, n)
    brow = (rng.random(n) < 0.6) * rng.uniform(0.3, 0.7, n)
    if channels == 3:
        skin_rgb = np.stack([np.ones(n), rng.uniform(0.68, 0.85, n), rng.uniform(0.5, 0.72, n)], 1)
        iris_rgb = _IRIS_RGB[rng.integers(0, len(_IRIS_RGB), n)] * rng.uniform(0.7, 1.3, (n, 1))
        sclera_rgb = np.stack([np.ones(n), rng.uniform(0.92, 1.0, n), rng.uniform(0.85, 0.97, n)], 1)
    else:
        skin_rgb = np.ones((n, 1))
        iris_rgb = rng.uniform(0.1, 0.45, (n, 1))
        sclera_rgb = np.ones((n, 1))
    skin_col = (skin_tone[:, None] * skin_rgb).astype(f32)
    sclera_col = (sclera_v[:, None] * sclera_rgb).astype(f32)
    iris_col = iris_rgb.astype(f32)
    pupil_col = np.full((n, channels), 0.04, f32)
    gain = rng.uniform(0.6, 1.25, n).astype(f32)
    blur_amount = np.where(rng.random(n) < blur, rng.uniform(0.3, 1.0, n), 0.0).astype(f32)
    sigma = rng.uniform(0.005, max(noise, 0.005), n).astype(f32) if noise > 0 else np.zeros(n, f32)

    per_sample = {
        name: np.asarray(v, dtype=f32)[:, None, None]
        for name, v in dict(
            radius=radius, cx=cx, cy=cy, cos=np.cos(angle), sin=np.sin(angle), hw=half_width,
            corner_y=corner_y, lid_up=lid_up, lid_low=lid_low, lid_skew=lid_skew, iris_x=iris_x,
            iris_y=iris_y, fs=foreshortening, dir_x=dir_x, dir_y=dir_y, iris_r=iris_r, pupil_r=pupil_r,
            glint_x=glint_x, glint_y=glint_y, glint_on=glint_on, illum_x=illum[:, 0], illum_y=illum[:, 1],
            brow=brow,
        ).items()
    }
    images = np.empty((n, height, width, channels), dtype=np.uint8)
    gy, gx = np.meshgrid(np.arange(height, dtype=f32) + 0.5, np.arange(width, dtype=f32) + 0.5, indexing="ij")
    chunk = max(1, 131072 // (height * width))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        p = {name: v[sl] for name, v in per_sample.items()}
        img = _render(p, gx, gy, height, width, skin_col[sl], sclera_col[sl], iris_col[sl], pupil_col[sl])
        img *= gain[sl, None, None, None]
        b = blur_amount[sl, None, None, None]
        img += (blur3(img) - img) * b
        img += rng.standard_normal(img.shape, dtype=f32) * sigma[sl, None, None, None]
        images[sl] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    labels = np.stack([pitch, yaw], axis=1).astype(f32)
    return ImageDataset(images, labels, "regression", GAZE_NAMES, "synthgaze")


def _bump(z: np.ndarray) -> np.ndarray:
    """Smooth compact bump (1 - z^2)^2 for |z| < 1, else 0; a cheap stand-in for exp(-z^2)."""
    q = np.maximum(1.0 - z * z, 0.0)
    return q * q


def _render(p, gx, gy, height, width, skin_col, sclera_col, iris_col, pupil_col) -> np.ndarray:
    """(k, H, W, C) float32 intensities in about [0, 1] for one chunk of samples."""
    dx, dy = gx - p["cx"], gy - p["cy"]
    x = p["cos"] * dx + p["sin"] * dy  # eye frame: rotate the grid by the head roll
    y = p["cos"] * dy - p["sin"] * dx
    r = p["radius"]

    # Eyelids: y_up(t) / y_low(t) above / below the corner line, t in [-1, 1] across the eye.
    t = x / p["hw"]
    bulge = np.sqrt(np.maximum(1.0 - t * t, 0.0))
    y_up = p["corner_y"] - p["lid_up"] * bulge * (1.0 + p["lid_skew"] * t)
    y_low = p["corner_y"] + p["lid_low"] * bulge
    # Scaling by the gap (capped at 1 px) closes the opening beyond the corners.
    opening = _soft(np.maximum(y_up - y, y - y_low)) * np.minimum(y_low - y_up, 1.0)

    # Skin: gradient illumination, a darker socket, lash line, crease and (maybe) a brow.
    illum = 1.0 + p["illum_x"] * (gx / width - 0.5) + p["illum_y"] * (gy / height - 0.5)
    socket = 0.75 + 0.25 * (1.0 - _bump(x / (1.6 * p["hw"])) * _bump((y + 0.2 * r) / (1.5 * r)))
    lash = 1.0 - 0.75 * _bump((y_up - y) / (0.14 * r)) * np.minimum(3.0 * bulge, 1.0)
    crease = 1.0 - 0.2 * _bump((y - y_up + 0.35 * r * bulge + 0.12 * r) / (0.12 * r)) * bulge
    brow = 1.0 - p["brow"] * _bump((y + 1.75 * r - 0.25 * r * t * t) / (0.35 * r)) * _bump(t / 1.7)
    skin_shade = illum * socket * lash * crease * brow

    # Eyeball: sclera shaded as a sphere and by the upper lid's shadow.
    rho2 = (x * x + y * y) / (r * r)
    lid_shadow = 1.0 - 0.35 * _bump((y - y_up) / (0.35 * r))
    sclera_shade = np.maximum(1.0 - 0.35 * rho2, 0.3) * lid_shadow * illum

    # Iris and pupil: ellipses foreshortened along the direction of the iris offset.
    ix, iy = x - p["iris_x"], y - p["iris_y"]
    along = (ix * p["dir_x"] + iy * p["dir_y"]) / p["fs"]
    across = iy * p["dir_x"] - ix * p["dir_y"]
    dist = np.sqrt(along * along + across * across)  # in iris-plane pixels
    iris = _soft(dist - p["iris_r"])
    pupil = _soft(dist - p["pupil_r"])
    iris_shade = (1.1 - 0.5 * (dist / p["iris_r"]) ** 2) * illum  # darker towards the limbus

    glint_d = np.sqrt((x - p["glint_x"]) ** 2 + (y - p["glint_y"]) ** 2)
    glint = p["glint_on"] * _bump(glint_d / (0.13 * r)) * opening

    # Composite back to front; maps are (k, H, W), colours (k, C).
    eye = sclera_col[:, None, None] * sclera_shade[..., None]
    eye += (iris_col[:, None, None] * iris_shade[..., None] - eye) * iris[..., None]
    eye += (pupil_col[:, None, None] - eye) * pupil[..., None]
    img = skin_col[:, None, None] * skin_shade[..., None]
    img += (eye - img) * opening[..., None]
    img += 0.9 * glint[..., None]
    return img
