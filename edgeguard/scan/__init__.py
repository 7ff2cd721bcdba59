"""Pre-deployment scanning of models for backdoors: DRMGuard (regression, and classifiers
through the softmax extension), the adapted Neural Cleanse baseline, repair and reports.

    from edgeguard.scan import DRMGuardConfig, scan
    result = scan(model, clean_images, DRMGuardConfig(steps=500))
"""
from edgeguard.scan.calibration import ANY_COLLAPSE, CALIBRATION_MARGIN, calibrate, threshold_from_trusted
from edgeguard.scan.drmguard import DRMGuardConfig, ScanResult, angle_variance, scan
from edgeguard.scan.neural_cleanse import NeuralCleanseConfig, neural_cleanse
from edgeguard.scan.repair import RepairConfig, RepairResult, repair
from edgeguard.scan.workflow import scan_model

__all__ = ["ANY_COLLAPSE", "CALIBRATION_MARGIN", "DRMGuardConfig", "NeuralCleanseConfig", "RepairConfig", "RepairResult", "ScanResult",
           "angle_variance", "calibrate", "neural_cleanse", "repair", "scan", "scan_model", "threshold_from_trusted"]
