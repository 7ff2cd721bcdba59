"""Test-time purification: BDMAE and the baselines it is compared with (torch-free)."""
from edgeguard.purify.baselines import Blur, NoDefense, ShrinkPad, get_defense
from edgeguard.purify.bdmae import FrameStream, Purifier, PurifierConfig, PurifyResult, StreamConfig
from edgeguard.purify.patchcleanser import PatchCleanser

__all__ = ["Blur", "FrameStream", "NoDefense", "PatchCleanser", "Purifier", "PurifierConfig", "PurifyResult", "ShrinkPad", "StreamConfig",
           "get_defense"]
