"""Datasets: SynthSigns and SynthGaze generators, the real-photo pool, and loaders.

numpy only (no torch): every generator and loader returns an ``ImageDataset`` of uint8 images.
"""
from __future__ import annotations

from edgeguard.data.dataset import ImageDataset, resize_frames, to_float_nchw, to_uint8_nhwc
from edgeguard.data.gaze import make_gaze
from edgeguard.data.loaders import load_cifar10, load_dataset, load_image_folder, load_images, load_npz, save_npz
from edgeguard.data.photos import photo_pool, random_crops
from edgeguard.data.signs import make_signs
from edgeguard.data.video import TriggerVideo, make_trigger_video

__all__ = [
    "ImageDataset",
    "to_float_nchw",
    "to_uint8_nhwc",
    "resize_frames",
    "make_signs",
    "make_gaze",
    "make_trigger_video",
    "TriggerVideo",
    "photo_pool",
    "random_crops",
    "load_cifar10",
    "load_image_folder",
    "load_images",
    "load_npz",
    "save_npz",
    "load_dataset",
]
