"""SynthSigns: GTSRB-like traffic-sign classification rendered from vector templates.

Each class is a sign shape, a colour scheme and a pictogram (digits, arrows, figures...).
The canonical sign of every class is rendered once as an anti-aliased RGBA template; a
dataset is then made by warping the templates with a per-sample homography (scale,
rotation, shear, perspective), compositing them onto real-photo crops and applying lighting,
blur and noise, all vectorised over the samples.

Coordinates: a template spans [-1, 1] x [-1, 1] (x right, y down); a pictogram is drawn in
its own [-1, 1] box that each shape places inside its face.
"""
from __future__ import annotations

import functools

import numpy as np

from edgeguard.data.dataset import ImageDataset
from edgeguard.data.filters import blur3
from edgeguard.data.photos import random_crops
from edgeguard.errors import InvalidArgumentError

COLOURS = {
    "red": (0.80, 0.07, 0.09),
    "white": (0.96, 0.96, 0.94),
    "blue": (0.06, 0.28, 0.70),
    "yellow": (0.99, 0.78, 0.05),
    "black": (0.06, 0.06, 0.06),
    "grey": (0.50, 0.50, 0.50),
    "green": (0.05, 0.62, 0.25),
}

# Colour schemes: fill, border colour, border width (template units), pictogram colour.
_SCHEMES = {
    "red-ring": ("white", "red", 0.17, "black"),
    "red-border": ("white", "red", 0.12, "black"),
    "yellow-red-border": ("yellow", "red", 0.12, "black"),
    "blue-disc": ("blue", "white", 0.05, "white"),
    "red-disc": ("red", "white", 0.05, "white"),
    "white-end": ("white", "grey", 0.04, "black"),
    "red": ("red", "white", 0.1, "white"),
    "priority": ("white", "black", 0.03, "yellow"),
    "yellow-black": ("yellow", "black", 0.06, "black"),
    "blue": ("blue", "white", 0.05, "white"),
    "green": ("green", "white", 0.05, "white"),
}

_TRIANGLE = ((0.0, -0.92), (1.0, 0.82), (-1.0, 0.82))
_OCTAGON = tuple(
    (0.96 * np.cos(np.pi / 8 + k * np.pi / 4), 0.96 * np.sin(np.pi / 8 + k * np.pi / 4)) for k in range(8)
)
# Shape outline (None: circle of radius 0.95) and where the pictogram box goes: (cx, cy, half-size).
_SHAPES = {
    "circle": (None, (0.0, 0.0, 0.62)),
    "triangle": (_TRIANGLE, (0.0, 0.25, 0.55)),
    "inverted-triangle": (tuple((x, -y) for x, y in _TRIANGLE), (0.0, -0.25, 0.55)),
    "octagon": (_OCTAGON, (0.0, 0.0, 0.72)),
    "diamond": (((0.0, -0.97), (0.97, 0.0), (0.0, 0.97), (-0.97, 0.0)), (0.0, 0.0, 0.62)),
    "square": (((-0.86, -0.86), (0.86, -0.86), (0.86, 0.86), (-0.86, 0.86)), (0.0, 0.0, 0.68)),
}

# (shape, scheme, pictogram). Within a shape and scheme the pictograms differ in coarse
# structure (stroke orientation, position, colour), so that a small CNN separates all 43
# classes at 32 x 32 after a few epochs. The first 16 cover every shape and scheme.
_CLASSES = (
    ("circle", "red-ring", "speed-30"),
    ("circle", "blue-disc", "arrow-up"),
    ("triangle", "red-border", "exclamation"),
    ("octagon", "red", "stop"),
    ("inverted-triangle", "red-border", "plain"),
    ("diamond", "priority", "priority"),
    ("circle", "red-disc", "bar"),
    ("square", "blue", "parking"),
    ("circle", "white-end", "stripes"),
    ("diamond", "yellow-black", "arrow-right"),
    ("square", "green", "arrow-right"),
    ("triangle", "yellow-red-border", "animal"),
    ("circle", "red-ring", "plain"),
    ("circle", "blue-disc", "turn-right"),
    ("triangle", "red-border", "signals"),
    ("circle", "white-end", "end-no-passing"),
    ("circle", "red-ring", "speed-60"),
    ("circle", "red-ring", "speed-70"),
    ("circle", "red-ring", "speed-100"),
    ("circle", "red-ring", "no-passing"),
    ("circle", "red-ring", "truck"),
    ("circle", "blue-disc", "turn-left"),
    ("circle", "blue-disc", "straight-or-right"),
    ("circle", "blue-disc", "straight-or-left"),
    ("circle", "blue-disc", "keep-right"),
    ("circle", "blue-disc", "keep-left"),
    ("circle", "blue-disc", "roundabout"),
    ("triangle", "red-border", "curve-left"),
    ("triangle", "red-border", "curve-right"),
    ("triangle", "red-border", "crossroads"),
    ("triangle", "red-border", "hill"),
    ("triangle", "red-border", "bumps"),
    ("triangle", "red-border", "narrows"),
    ("triangle", "yellow-red-border", "hill"),
    ("triangle", "yellow-red-border", "exclamation"),
    ("diamond", "yellow-black", "keep-right"),
    ("diamond", "yellow-black", "crossroads"),
    ("diamond", "yellow-black", "exclamation"),
    ("square", "blue", "crossing"),
    ("square", "blue", "hospital"),
    ("square", "blue", "arrow-up"),
    ("square", "green", "arrow-up-right"),
    ("square", "green", "arrow-up"),
)
CLASS_NAMES = tuple(f"{shape}-{scheme}/{glyph}" for shape, scheme, glyph in _CLASSES)
MAX_CLASSES = len(_CLASSES)
MIN_CLASSES = 16


# --- pictograms: lists of (primitive, colour or None for the scheme's pictogram colour) ---
# Primitives: ("seg", x0, y0, x1, y1, width), ("poly", ((x, y), ...)) convex,
# ("disc", cx, cy, r), ("arc", cx, cy, r, start_deg, end_deg, width).


def _seg(x0, y0, x1, y1, w=0.24, colour=None):
    return (("seg", x0, y0, x1, y1, w), colour)


def _arrow(x0, y0, x1, y1, w=0.26, head=0.55, colour=None):
    """Shaft from (x0, y0) to a triangular head whose tip is (x1, y1)."""
    d = np.array([x1 - x0, y1 - y0], dtype=float)
    d /= np.linalg.norm(d)
    n = np.array([-d[1], d[0]])
    tip = np.array([x1, y1])
    base = tip - d * head * 0.9
    head_poly = (tuple(tip), tuple(base + n * head / 2), tuple(base - n * head / 2))
    return [_seg(x0, y0, *(base + d * 0.05), w, colour), (("poly", head_poly), colour)]


def _curved_arrow_head(cx, cy, r, deg, clockwise, size=0.32, colour=None):
    a = np.radians(deg)
    p = np.array([cx + r * np.cos(a), cy + r * np.sin(a)])
    t = np.array([-np.sin(a), np.cos(a)]) * (1 if clockwise else -1)
    radial = np.array([np.cos(a), np.sin(a)])
    poly = (tuple(p + t * size), tuple(p + radial * size * 0.7), tuple(p - radial * size * 0.7))
    return (("poly", poly), colour)


_SEVEN_SEGMENTS = {
    "0": "abcdef", "1": "bc", "3": "abgcd", "6": "afgedc", "7": "abc",
    "S": "afgcd", "T": "a", "O": "abcdef", "P": "abfge",
}


def _text(chars: str, height=1.25, width=None, stroke=0.22, gap=0.3, colour=None):
    """Characters drawn as seven-segment strokes, centred on the origin."""
    w = width if width is not None else (2.0 - gap * (len(chars) - 1)) / len(chars) * 0.8
    h2, w2 = height / 2, w / 2
    ends = {
        "a": (-w2, -h2, w2, -h2), "b": (w2, -h2, w2, 0), "c": (w2, 0, w2, h2), "d": (-w2, h2, w2, h2),
        "e": (-w2, 0, -w2, h2), "f": (-w2, -h2, -w2, 0), "g": (-w2, 0, w2, 0),
    }
    pitch = w + gap
    prims = []
    for i, ch in enumerate(chars):
        dx = (i - (len(chars) - 1) / 2) * pitch
        for s in _SEVEN_SEGMENTS[ch]:
            x0, y0, x1, y1 = ends[s]
            prims.append(_seg(x0 + dx, y0, x1 + dx, y1, stroke, colour))
        if ch == "T":
            prims.append(_seg(dx, -h2, dx, h2, stroke, colour))
    return prims


def _figure(x, y, s, colour=None):
    """A walking stick figure standing at (x, y) (feet), height about 1.7 * s."""
    hip, neck = (x, y - 0.75 * s), (x, y - 1.35 * s)
    w = 0.26 * s
    return [
        (("disc", x, y - 1.62 * s, 0.2 * s), colour),
        _seg(*neck, *hip, w, colour),
        _seg(*hip, x - 0.4 * s, y, w, colour),
        _seg(*hip, x + 0.35 * s, y, w, colour),
        _seg(*neck, x - 0.4 * s, y - 0.85 * s, w * 0.8, colour),
        _seg(*neck, x + 0.4 * s, y - 0.9 * s, w * 0.8, colour),
    ]


def _car(x, colour=None):
    return [_seg(x, -0.25, x, 0.2, 0.5, colour), _seg(x - 0.2, 0.35, x + 0.2, 0.35, 0.16, colour)]


def _stripes(n=5, w=0.06, colour=None):
    prims = []
    for k in np.linspace(-0.25, 0.25, n):
        ox, oy = k / np.sqrt(2), k / np.sqrt(2)
        prims.append(_seg(-1.1 + ox, 1.1 + oy, 1.1 + ox, -1.1 + oy, w, colour))
    return prims


def _mirror(prims):
    out = []
    for (kind, *p), colour in prims:
        if kind == "seg":
            x0, y0, x1, y1, w = p
            out.append((("seg", -x0, y0, -x1, y1, w), colour))
        elif kind == "poly":
            out.append((("poly", tuple((-x, y) for x, y in p[0])), colour))
        elif kind == "disc":
            out.append((("disc", -p[0], p[1], p[2]), colour))
        else:
            cx, cy, r, a0, a1, w = p
            out.append((("arc", -cx, cy, r, 180 - a1, 180 - a0, w), colour))
    return out


def _pictogram(name: str) -> list:
    if name.startswith("speed-"):
        digits = name[6:]
        if len(digits) == 3:
            return _text(digits, height=1.2, width=0.42, stroke=0.24, gap=0.24)
        return _text(digits, height=1.35, width=0.62, stroke=0.28, gap=0.3)
    if name == "plain":
        return []
    if name == "stop":
        return _text("STOP", height=0.66, width=0.34, stroke=0.16, gap=0.14)
    if name == "priority":
        return [(("poly", ((0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0))), None)]
    if name == "bar":
        return [(("poly", ((-1.05, -0.28), (1.05, -0.28), (1.05, 0.28), (-1.05, 0.28))), None)]
    if name == "parking":
        return [_seg(-0.4, -0.85, -0.4, 0.85, 0.34), _seg(-0.4, -0.7, 0.2, -0.7, 0.3),
                (("arc", 0.2, -0.3, 0.4, -90, 90, 0.3), None), _seg(-0.4, 0.1, 0.2, 0.1, 0.3)]
    if name == "crossing":
        tri = (("poly", ((0.0, -0.95), (0.95, 0.8), (-0.95, 0.8))), None)
        return [tri, *_figure(0.0, 0.62, 0.55, colour="black")]
    if name == "hospital":
        square = (("poly", ((-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8))), None)
        return [square, _seg(-0.55, 0.0, 0.55, 0.0, 0.36, "red"), _seg(0.0, -0.55, 0.0, 0.55, 0.36, "red")]
    if name == "stripes":
        return _stripes()
    if name == "arrow-up":
        return _arrow(0.0, 0.9, 0.0, -0.9)
    if name == "arrow-right":
        return _arrow(-0.9, 0.0, 0.9, 0.0)
    if name == "arrow-up-right":
        return _arrow(-0.6, 0.6, 0.65, -0.65, head=0.6)
    if name == "turn-right":
        return [_seg(-0.35, 0.9, -0.35, -0.2, 0.26), *_arrow(-0.35, -0.2, 0.85, -0.2)]
    if name == "turn-left":
        return _mirror(_pictogram("turn-right"))
    if name == "straight-or-right":
        return [*_arrow(-0.3, 0.9, -0.3, -0.9), *_arrow(-0.3, 0.35, 0.85, 0.35, head=0.5)]
    if name == "straight-or-left":
        return _mirror(_pictogram("straight-or-right"))
    if name == "keep-right":
        return _arrow(-0.55, -0.55, 0.6, 0.6, head=0.6)
    if name == "keep-left":
        return _mirror(_pictogram("keep-right"))
    if name == "roundabout":
        prims = []
        for start in (0, 120, 240):
            prims.append((("arc", 0.0, 0.0, 0.62, start + 15, start + 95, 0.22), None))
            prims.append(_curved_arrow_head(0.0, 0.0, 0.62, start + 15, clockwise=False))
        return prims
    if name == "signals":
        return [_seg(0.0, -0.62, 0.0, 0.62, 0.75, "black"),
                (("disc", 0.0, -0.62, 0.26), "red"), (("disc", 0.0, 0.0, 0.26), "yellow"),
                (("disc", 0.0, 0.62, 0.26), "green")]
    if name == "exclamation":
        return [_seg(0.0, -0.95, 0.0, 0.15, 0.34), (("disc", 0.0, 0.58, 0.2), None)]
    if name == "curve-left":
        return [_seg(0.25, 0.95, 0.25, 0.1, 0.34), *_arrow(0.25, 0.1, -0.55, -0.75, 0.34, 0.6)]
    if name == "curve-right":
        return _mirror(_pictogram("curve-left"))
    if name == "bumps":
        return [(("arc", -0.45, 0.55, 0.45, 180, 360, 0.3), None),
                (("arc", 0.45, 0.55, 0.45, 180, 360, 0.3), None)]
    if name == "hill":
        return [(("poly", ((-0.9, 0.85), (0.9, 0.85), (0.9, -0.3))), None)]
    if name == "narrows":
        return [_seg(-0.2, -0.95, -0.55, 0.95, 0.3), _seg(0.2, -0.95, 0.55, 0.95, 0.3)]
    if name == "animal":
        return [_seg(-0.5, 0.05, 0.3, -0.1, 0.38), _seg(-0.45, 0.1, -0.75, 0.85, 0.16),
                _seg(-0.35, 0.1, -0.2, 0.85, 0.16), _seg(0.25, -0.05, 0.55, 0.75, 0.16),
                _seg(0.3, -0.15, 0.55, -0.6, 0.2), (("disc", 0.62, -0.62, 0.17), None),
                _seg(0.55, -0.75, 0.35, -1.0, 0.1), _seg(0.7, -0.75, 0.85, -1.0, 0.1)]
    if name == "crossroads":
        return [_seg(0.0, -0.95, 0.0, 0.95, 0.36), _seg(-0.75, -0.15, 0.75, -0.15, 0.26)]
    if name == "no-passing":
        return [*_car(-0.38, "red"), *_car(0.38, "black")]
    if name == "truck":
        return [(("poly", ((-0.85, -0.45), (0.25, -0.45), (0.25, 0.3), (-0.85, 0.3))), None),
                (("poly", ((0.32, -0.2), (0.7, -0.2), (0.85, 0.05), (0.85, 0.3), (0.32, 0.3))), None),
                (("disc", -0.55, 0.42, 0.17), None), (("disc", 0.55, 0.42, 0.17), None)]
    if name == "end-no-passing":
        return [*_car(-0.38, "grey"), *_car(0.38, "grey"), *_stripes(4)]
    raise KeyError(name)


# --- rasterising templates ---


def _convex_sdf(poly, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance to a convex polygon, exact inside (< 0) and a lower bound outside."""
    pts = np.asarray(poly, dtype=np.float64)
    area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    d = np.full(x.shape, -np.inf)
    for a, b in zip(pts, np.roll(pts, -1, axis=0)):
        e = b - a
        n = np.array([e[1], -e[0]]) * np.sign(area)
        n /= np.linalg.norm(n)
        d = np.maximum(d, (x - a[0]) * n[0] + (y - a[1]) * n[1])
    return d


def _primitive_mask(prim, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    kind, *p = prim
    if kind == "seg":
        x0, y0, x1, y1, w = p
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        return np.hypot(x - x0 - t * dx, y - y0 - t * dy) <= w / 2
    if kind == "poly":
        return _convex_sdf(p[0], x, y) <= 0
    if kind == "disc":
        cx, cy, r = p
        return np.hypot(x - cx, y - cy) <= r
    cx, cy, r, a0, a1, w = p
    ring = np.abs(np.hypot(x - cx, y - cy) - r) <= w / 2
    angle = (np.degrees(np.arctan2(y - cy, x - cx)) - a0) % 360.0
    return ring & (angle <= (a1 - a0) if a1 - a0 < 360 else True)


def _render_class(index: int, res: int, supersample: int = 4) -> np.ndarray:
    """(res, res, 4) float32 premultiplied RGBA of one class's canonical sign."""
    shape, scheme, glyph = _CLASSES[index]
    outline, (gx, gy, gs) = _SHAPES[shape]
    fill, border, border_width, ink = _SCHEMES[scheme]
    hi = res * supersample
    coords = (np.arange(hi) + 0.5) / hi * 2.0 - 1.0
    y, x = np.meshgrid(coords, coords, indexing="ij")
    sdf = np.hypot(x, y) - 0.95 if outline is None else _convex_sdf(outline, x, y)
    inside = sdf <= 0
    rgb = np.empty((hi, hi, 3))
    rgb[:] = COLOURS[fill]
    rgb[sdf > -border_width] = COLOURS[border]
    # The pictogram is clipped to the face inside the border.
    face = sdf <= -border_width
    px, py = (x - gx) / gs, (y - gy) / gs
    for prim, colour in _pictogram(glyph):
        rgb[_primitive_mask(prim, px, py) & face] = COLOURS[colour or ink]
    rgba = np.concatenate([rgb * inside[..., None], inside[..., None]], axis=-1)
    return rgba.reshape(res, supersample, res, supersample, 4).mean(axis=(1, 3)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _template_buffer(res: int) -> np.ndarray:
    """All class templates with a 1-pixel transparent border, as packed RGBA uint32.

    Shape (MAX_CLASSES * (res + 2) ** 2,); reading outside a template hits the border (alpha 0).
    """
    padded = np.zeros((MAX_CLASSES, res + 2, res + 2, 4), dtype=np.uint8)
    for k in range(MAX_CLASSES):
        padded[k, 1:-1, 1:-1] = np.rint(_render_class(k, res) * 255.0)
    return padded.view(np.uint32).reshape(-1)


def sign_templates(size: int = 64) -> np.ndarray:
    """Canonical signs of all classes, (MAX_CLASSES, size, size, 4) uint8 RGBA (not premultiplied)."""
    rgba = np.stack([_render_class(k, size) for k in range(MAX_CLASSES)])
    alpha = rgba[..., 3:]
    rgb = np.where(alpha > 0, rgba[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    return np.rint(np.concatenate([rgb, alpha], axis=-1) * 255.0).astype(np.uint8)


# --- sampling ---


def _homographies(rng: np.random.Generator, n: int, size: int, scale, shift, rotation, perspective):
    """(n, 3, 3) maps from output pixel coordinates to template coordinates in [-1, 1]."""
    half = rng.uniform(scale[0], scale[1], n) * size / 2  # pixels per template unit
    centre = size / 2 + rng.uniform(-1.0, 1.0, (n, 2)) * shift * size
    theta = np.radians(rng.uniform(-rotation, rotation, n))
    squash = rng.uniform(1.0 - 2 * perspective, 1.0, n)  # horizontal foreshortening of a sign seen at an angle
    shear = rng.uniform(-perspective, perspective, n)
    tilt = rng.uniform(-perspective, perspective, (n, 2))
    c, s = np.cos(theta), np.sin(theta)
    fwd = np.zeros((n, 3, 3))
    # Linear part: rotation @ shear @ diag(squash, 1), times the pixel scale.
    fwd[:, 0, 0] = half * c * squash
    fwd[:, 0, 1] = half * (c * shear - s)
    fwd[:, 1, 0] = half * s * squash
    fwd[:, 1, 1] = half * (s * shear + c)
    fwd[:, :2, 2] = centre
    fwd[:, 2, :2] = tilt
    fwd[:, 2, 2] = 1.0
    return np.linalg.inv(fwd)


def make_signs(
    n: int,
    seed: int = 0,
    size: int = 32,
    num_classes: int = MAX_CLASSES,
    *,
    scale: tuple[float, float] = (0.75, 0.95),
    shift: float = 0.05,
    rotation: float = 8.0,
    perspective: float = 0.05,
    background_contrast: tuple[float, float] = (0.3, 1.0),
    sign_gain: tuple[float, float] = (0.7, 1.1),
    contrast: tuple[float, float] = (0.75, 1.1),
    blur: float = 0.25,
    noise: float = 0.03,
) -> ImageDataset:
    """SynthSigns: ``n`` RGB traffic-sign crops with class labels, deterministic by seed.

    Args:
        n: number of samples; labels are balanced (each class ``n // num_classes`` or one more).
        seed: random seed.
        size: image side in pixels.
        num_classes: 16..43; the first ``num_classes`` of ``CLASS_NAMES`` are used.
        scale: (low, high) sign width as a fraction of the image side.
        shift: largest offset of the sign centre from the image centre, fraction of the side.
        rotation: largest in-plane rotation, degrees.
        perspective: strength of shear, horizontal foreshortening and perspective tilt.
        background_contrast: (low, high) factor on the background's deviation from its mean
            (signs are in focus, backgrounds are often hazy or defocused).
        sign_gain: (low, high) brightness factor of the sign against its background.
        contrast: (low, high) global contrast factor (low values give dim, washed-out frames).
        blur: probability that a sample is blurred (by a random amount up to a 3x3 binomial).
        noise: largest std of the additive Gaussian noise, in [0, 1] intensity units.

    Returns:
        ImageDataset with images (n, size, size, 3) uint8, labels (n,) int64,
        output "classification", name "synthsigns".
    """
    if not MIN_CLASSES <= num_classes <= MAX_CLASSES:
        raise InvalidArgumentError(f"num_classes must be in [{MIN_CLASSES}, {MAX_CLASSES}], got {num_classes}")
    if n < 0 or size < 8:
        raise InvalidArgumentError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    if not 0.0 < scale[0] <= scale[1] <= 1.5:
        raise InvalidArgumentError(f"scale must satisfy 0 < low <= high <= 1.5, got {scale}")
    for label, value in (("blur", blur), ("perspective", perspective), ("shift", shift)):
        if not 0.0 <= value <= 1.0:
            raise InvalidArgumentError(f"{label} must be in [0, 1], got {value}")
    if noise < 0 or rotation < 0:
        raise InvalidArgumentError(f"noise and rotation must be >= 0, got {noise}, {rotation}")

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_classes)
    images = random_crops(n, size, seed=rng)
    bg_contrast = rng.uniform(*background_contrast, n).astype(np.float32)
    inv = _homographies(rng, n, size, scale, shift, rotation, perspective).astype(np.float32)
    gain = (rng.uniform(*sign_gain, n)[:, None] * rng.uniform(0.88, 1.12, (n, 3))).astype(np.float32)
    cont = rng.uniform(*contrast, n).astype(np.float32)
    bright = rng.uniform(-0.06, 0.06, n).astype(np.float32)
    blur_amount = np.where(rng.random(n) < blur, rng.uniform(0.3, 1.0, n), 0.0).astype(np.float32)
    sigma = rng.uniform(0.0, noise, n).astype(np.float32)

    # Templates at the power-of-two resolution closest above the largest sign, so bilinear
    # sampling never minifies by much more than 2x.
    res = int(np.clip(2 ** np.ceil(np.log2(size * scale[1])), 16, 128))
    buffer = _template_buffer(res)
    stride = res + 2
    grid = np.arange(size, dtype=np.float32) + 0.5
    chunk = max(1, 131072 // (size * size))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        k = sl.stop - sl.start
        h = inv[sl, :, :, None, None]
        gx, gy = grid[None, None, :], grid[None, :, None]
        q = [h[:, r, 0] * gx + h[:, r, 1] * gy + h[:, r, 2] for r in range(3)]
        # Template coordinates -> padded template pixel coordinates.
        u = np.clip((q[0] / q[2] + 1.0) * (res / 2) + 0.5, 0.0, res + 1.0)
        v = np.clip((q[1] / q[2] + 1.0) * (res / 2) + 0.5, 0.0, res + 1.0)
        u0 = np.minimum(u.astype(np.int32), res)
        v0 = np.minimum(v.astype(np.int32), res)
        wu, wv = (u - u0)[..., None], (v - v0)[..., None]
        base = labels[sl, None, None].astype(np.int32) * stride * stride + v0 * stride + u0
        t00, t01, t10, t11 = (
            np.take(buffer, base + d).view(np.uint8).reshape(k, size, size, 4).astype(np.float32)
            for d in (0, 1, stride, stride + 1)
        )
        top = t00 + (t01 - t00) * wu
        sign = (top + (t10 + (t11 - t10) * wu - top) * wv) * np.float32(1 / 255)
        alpha = sign[..., 3:]
        bg = images[sl].astype(np.float32) * np.float32(1 / 255)
        bg_mean = bg.mean(axis=(1, 2, 3), keepdims=True)
        img = (bg_mean + (bg - bg_mean) * bg_contrast[sl, None, None, None]) * (1 - alpha)
        img += sign[..., :3] * gain[sl, None, None, :]
        img = (img - 0.5) * cont[sl, None, None, None] + 0.5 + bright[sl, None, None, None]
        b = blur_amount[sl, None, None, None]
        img = img + (blur3(img) - img) * b
        img += rng.standard_normal(img.shape, dtype=np.float32) * sigma[sl, None, None, None]
        images[sl] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return ImageDataset(images, labels, "classification", CLASS_NAMES[:num_classes], "synthsigns")
