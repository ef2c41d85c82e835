"""The network below the explained layer through onnxruntime: faster on CPUs than PyTorch.

The exported graph gives two outputs: the logits, and the activations of the stage an explanation
starts its backward pass from (brain_tumor.explain). Prediction needs only the first; an explanation
takes the second and runs the few stages above it in PyTorch, with gradients.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brain_tumor.config import CACHE_ROOT, ModelConfig
from brain_tumor.errors import UsageError
from brain_tumor.models import get_architecture

# Exported models are kept here, by weights version and cut stage, so only the first load pays for the export.
ONNX_CACHE = CACHE_ROOT / "onnx"


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


class _WithActivations(nn.Module):
    """model(x) as its stages, returning (logits, output of stage `cut`)."""

    def __init__(self, model: nn.Module, architecture: str, cut: str):
        super().__init__()
        stages = get_architecture(architecture).stages(model)
        self.names = [name for name, _ in stages]
        self.stages = nn.ModuleList(module for _, module in stages)
        self.cut = cut

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = x
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            if name == self.cut:
                kept = x
        return x, kept


def onnx_bytes(model: nn.Module, config: ModelConfig, cut: str) -> bytes:
    """The model as ONNX (float32, dynamic batch): input `pixels` N×3×S×S normalised; outputs `logits` and
    `activations` (the output of stage `cut`)."""
    example = torch.zeros(2, 3, config.image_size, config.image_size)
    program = torch.onnx.export(_WithActivations(model, config.architecture, cut).eval(), (example,), input_names=["pixels"],
                                output_names=["logits", "activations"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                dynamo=True, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        program.save(str(path))
        return path.read_bytes()


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of the weights (onnxruntime.quantization), after its recommended pre-processing."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
    return target


def cached_onnx(model: nn.Module, config: ModelConfig, version: str, cut: str, int8: bool = False) -> bytes:
    """The ONNX bytes (int8-quantised if asked), exported once per weights version and cut, cached on disk."""
    plain = ONNX_CACHE / f"{version}-{cut}.onnx"
    path = plain.with_suffix(".int8.onnx") if int8 else plain
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not plain.is_file():
        partial = plain.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(onnx_bytes(model, config, cut))
        partial.replace(plain)  # atomic: a concurrent reader never sees half a file
    if int8:
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        quantize_int8(plain, partial)
        partial.replace(path)
    return path.read_bytes()


class OnnxRunner:
    """Runs the exported graph (thread-safe, like the onnxruntime session)."""

    def __init__(self, model_bytes: bytes, cut: str, threads: int = 0):
        try:
            import onnxruntime
        except ImportError:
            raise UsageError("The onnx backend needs onnxruntime; install it with 'pip install onnxruntime'.") from None
        options = onnxruntime.SessionOptions()
        # No busy-waiting between runs: PyTorch may need the same cores right after (explanations).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.cut = cut

    def _run(self, batch: torch.Tensor, names: list[str]) -> list[np.ndarray]:
        pixels = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return self.session.run(names, {"pixels": pixels})

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(batch, ["logits"])[0])

    def activations(self, batch: torch.Tensor) -> torch.Tensor:
        """The output of stage `cut` for normalised N×3×S×S inputs."""
        return torch.from_numpy(self._run(batch, ["activations"])[0])
