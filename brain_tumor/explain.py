"""Class activation maps with pytorch-grad-cam, the backward pass cut short at the explained layer.

Grad-CAM and its relatives need the activations of one layer and the gradient of a class score
with respect to them, nothing below that layer. So the network runs without autograd up to the
earliest explained stage, and pytorch-grad-cam is handed only the rest of it (for the last block
of a ResNet: the pooling and the linear head). The maps are the library's own, computed the same
way, at a fraction of the cost of a backward pass through the whole network.
"""
from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np
import torch
from torch import nn

from brain_tumor.errors import UsageError
from brain_tumor.models import get_architecture

# Name offered to users -> pytorch-grad-cam class. Methods that need the input image itself
# (ScoreCAM, AblationCAM, FullGrad) are left out: they cost a forward pass per channel or need
# the gradient at the input.
METHODS = {
    "gradcam": "GradCAM",
    "hirescam": "HiResCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
}
DEFAULT_METHOD = "gradcam"
# The methods offered to people (the page, the CLI): training.evaluate_cam --compare measured all of
# METHODS on the shipped models; EigenCAM, which explains no particular class, pointed worst and is
# kept for comparisons only.
OFFERED = ("gradcam", "hirescam", "gradcam++", "xgradcam", "layercam")


class _Tail(nn.Module):
    """The stages after the cut, with a fresh Identity after each explained stage for the hooks.

    The hooks live on these Identity modules, never on the shared model, and the stages run with
    detached copies of their parameters: the backward pass computes gradients for the activations
    only, writes nothing into the shared model, and a prediction in another thread is untouched.
    """

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], explained: Sequence[str]):
        super().__init__()
        self.names = [name for name, _ in stages]
        self.stages = nn.ModuleList(module for _, module in stages)
        self.frozen = [{key: p.detach() for key, p in module.named_parameters()} for _, module in stages]
        self.marks = nn.ModuleDict({name: nn.Identity() for name in explained})
        self.entry = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(x)
        for name, stage, parameters in zip(self.names, self.stages, self.frozen):
            x = torch.func.functional_call(stage, parameters, (x,))
            if name in self.marks:
                x = self.marks[name](x)
        return x


def parse_layers(layer: str | None, architecture: str) -> tuple[str, ...]:
    """'layer4', 'layer3+layer4' or None (the registry's default) -> stage names, checked."""
    arch = get_architecture(architecture)
    names = tuple(part.strip() for part in (layer or arch.cam_layer).split("+"))
    for name in names:
        if name not in arch.cam_layers:
            raise UsageError(f"{name!r} is not a layer of {architecture} that can be explained; choose "
                             f"{', '.join(arch.cam_layers)}, or several joined by '+'.")
    return names


def method_class(method: str):
    try:
        name = METHODS[method]
    except KeyError:
        raise UsageError(f"Unknown explanation method {method!r}; choose one of {', '.join(METHODS)}.") from None
    return getattr(importlib.import_module("pytorch_grad_cam"), name)


def run_stages(model: nn.Module, architecture: str, x: torch.Tensor, start: str | None, stop: str) -> torch.Tensor:
    """Without autograd, the output of stage `stop`, from `x`: the model input (start None) or the output of stage `start`."""
    stages = get_architecture(architecture).stages(model)
    names = [name for name, _ in stages]
    first = 0 if start is None else names.index(start) + 1
    with torch.no_grad():
        for _, stage in stages[first:names.index(stop) + 1]:
            x = stage(x)
    return x


def class_activation_maps(model: nn.Module, architecture: str, batch: torch.Tensor, targets: Sequence[int] | None = None,
                          method: str = DEFAULT_METHOD, layers: Sequence[str] | None = None, start: str | None = None,
                          size: tuple[int, int] | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Maps (N×H×W float32 in [0, 1], at the model input's size) for one class per image, and the logits.

    targets: a class index per image (None: each image's highest-scoring class). batch: model inputs,
    or (start) the output of an earlier stage, with `size` the input's (height, width); evaluations
    of many methods compute that once. The maps equal pytorch-grad-cam's run on the whole model with
    the same target layers.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layers = tuple(layers) if layers else parse_layers(None, architecture)
    stages = get_architecture(architecture).stages(model)
    names = [name for name, _ in stages]
    cut = names[min(names.index(name) for name in layers)]
    height, width = size or batch.shape[-2:]
    x = run_stages(model, architecture, batch, start, cut) if cut != start else batch
    x = x.detach().requires_grad_(True)  # the explained layer's output: the leaf the gradients stop at
    tail = _Tail(stages[names.index(cut) + 1:], [name for name in layers if name != cut])
    target_layers = [tail.entry if name == cut else tail.marks[name] for name in layers]
    with torch.enable_grad(), method_class(method)(model=tail, target_layers=target_layers) as cam:
        # Scale each layer's map to the model input, exactly as the library does with the whole model.
        cam.get_target_width_height = lambda _: (width, height)
        maps = cam(input_tensor=x, targets=None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets])
        logits = cam.outputs.detach()
    return np.asarray(maps, dtype=np.float32), logits
