"""Pre-deployment scanning of regression models for backdoors (DRMGuard).

    from edgeguard.scan import DRMGuardConfig, scan
    result = scan(model, clean_images, DRMGuardConfig(steps=500))
"""
from edgeguard.scan.drmguard import DRMGuardConfig, ScanResult, angle_variance, calibrate, scan

__all__ = ["DRMGuardConfig", "ScanResult", "angle_variance", "calibrate", "scan"]
