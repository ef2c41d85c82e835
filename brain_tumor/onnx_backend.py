"""Prediction through onnxruntime: the same model exported to ONNX, for CPUs where it runs faster.

Explanations stay in PyTorch: they need the network's stages and gradients.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from brain_tumor.config import ModelConfig
from brain_tumor.errors import UsageError

ONNX_NAME = "model.onnx"


def onnx_bytes(model: torch.nn.Module, config: ModelConfig) -> bytes:
    """The model as ONNX (float32, dynamic batch): input `pixels` N×3×S×S normalised, output `logits` N×classes."""
    example = torch.zeros(2, 3, config.image_size, config.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ONNX_NAME
        torch.onnx.export(model.eval(), (example,), str(path), input_names=["pixels"], output_names=["logits"],
                          dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
        return path.read_bytes()


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of the weights (onnxruntime.quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target


class OnnxLogits:
    """Logits of normalised N×3×S×S batches from an onnxruntime session (thread-safe, like the session)."""

    def __init__(self, model_bytes: bytes, threads: int = 0):
        try:
            import onnxruntime
        except ImportError:
            raise UsageError("backend='onnx' needs onnxruntime; install it with 'pip install onnxruntime'.") from None
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        pixels = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["logits"], {"pixels": pixels})[0])
