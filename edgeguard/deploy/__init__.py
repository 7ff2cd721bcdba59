"""Export trained models for deployment: ONNX export, then engines (TensorRT or ONNX Runtime)."""
from edgeguard.deploy.build import BuildConfig, BuildReport, build_engine
from edgeguard.deploy.onnx_export import export_model, export_onnx, export_restorer

__all__ = ["BuildConfig", "BuildReport", "build_engine", "export_model", "export_onnx", "export_restorer"]
