"""Test-time purification: BDMAE and the baselines it is compared with (torch-free)."""
from edgeguard.purify.baselines import Blur, NoDefense, ShrinkPad, get_defense
from edgeguard.purify.bdmae import Purifier
from edgeguard.purify.config import PurifierConfig, StreamConfig
from edgeguard.purify.patchcleanser import PatchCleanser
from edgeguard.purify.result import PurifyResult
from edgeguard.purify.stream import FrameStream

__all__ = ["Blur", "FrameStream", "NoDefense", "PatchCleanser", "Purifier", "PurifierConfig", "PurifyResult", "ShrinkPad", "StreamConfig",
           "get_defense"]
