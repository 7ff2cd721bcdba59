"""EigenGuard: train on untrusted data without learning the trigger (shared/spec/eigenguard.md).

    from edgeguard.eigenguard import EigenGuardConfig, protect
    model = protect(model, at="layer1", config=EigenGuardConfig(k=4))

``layer`` holds the spectral filter and its insertion; ``baselines`` the training-time
defenses it is compared with (fine-tuning, Spectral Signatures).
"""
from edgeguard.eigenguard.layer import DEFAULT_AT, EigenGuard, EigenGuardConfig, guards, protect, spectral_gains

__all__ = ["DEFAULT_AT", "EigenGuard", "EigenGuardConfig", "guards", "protect", "spectral_gains"]
