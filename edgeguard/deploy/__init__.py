"""Export trained models for deployment (ONNX now; TensorRT engines build on it)."""
from edgeguard.deploy.onnx_export import export_onnx, export_restorer

__all__ = ["export_onnx", "export_restorer"]
