"""Model architectures behind a name -> builder registry."""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from brain_tumor.config import HALF_RANGE_MEAN, HALF_RANGE_STD, IMAGENET_MEAN, IMAGENET_STD


class PretrainedWeightsError(RuntimeError):
    """ImageNet weights could not be fetched; the message is one sentence for the user."""


def _mlp_head(in_features: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(0.3),
        nn.Linear(512, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Dropout(0.3),
        nn.Linear(128, num_classes),
    )


def _head(kind: str, in_features: int, num_classes: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    if kind == "mlp":
        return _mlp_head(in_features, num_classes)
    raise ValueError(f"Unknown head {kind!r}; choose 'linear' or 'mlp'.")


def build_resnet50(num_classes: int, init: str = "scratch", head: str = "linear") -> nn.Module:
    from torchvision.models import ResNet50_Weights, resnet50

    if init not in ("imagenet", "scratch"):
        raise ValueError(f"Unknown init {init!r} for resnet50; choose 'imagenet' or 'scratch'.")
    if init == "imagenet":
        try:
            model = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2)
        except Exception as error:  # URLError, HTTPError, socket errors, proxies...
            raise PretrainedWeightsError(
                f"Could not download torchvision's ImageNet ResNet-50 weights ({type(error).__name__}); "
                "connect to the internet or train with --init scratch."
            ) from error
    else:
        # Zero-initialised last BN in each residual block: each block starts as identity (Goyal et al., 2017).
        model = resnet50(weights=None, zero_init_residual=True)
    model.fc = _head(head, model.fc.in_features, num_classes)
    return model


class BaselineCNN(nn.Module):
    """Three blocks of (3×3 conv, BN, ReLU)×2 at 16/32/64 channels, each then 2×2 max-pool;
    flatten, dropout 0.2, one linear layer."""

    def __init__(self, num_classes: int, image_size: int = 224, head: str = "linear"):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in (16, 32, 64):
            for _ in range(2):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = image_size // 8
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), _head(head, channels * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_baseline(num_classes: int, init: str = "scratch", head: str = "linear", image_size: int = 224) -> nn.Module:
    if init != "scratch":
        raise ValueError("The baseline CNN has no pretrained weights; use --init scratch or a weights folder.")
    return BaselineCNN(num_classes, image_size=image_size, head=head)


@dataclasses.dataclass(frozen=True)
class Architecture:
    build: Callable[..., nn.Module]
    # The layer Grad-CAM reads: the last convolutional block.
    cam_layer: Callable[[nn.Module], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int = 224
    sized_by_input: bool = False  # whether the builder needs image_size (a flatten layer)


ARCHITECTURES: dict[str, Architecture] = {
    "resnet50": Architecture(build_resnet50, lambda m: m.layer4[-1], IMAGENET_MEAN, IMAGENET_STD),
    "baseline": Architecture(build_baseline, lambda m: m.features[-2], HALF_RANGE_MEAN, HALF_RANGE_STD, sized_by_input=True),
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}.") from None


def create_model(name: str, num_classes: int = 4, init: str = "scratch", head: str = "linear", image_size: int = 224) -> nn.Module:
    """Build a model by registry name. init: 'imagenet' or 'scratch' (weights folders load via Classifier)."""
    arch = get_architecture(name)
    extra = {"image_size": image_size} if arch.sized_by_input else {}
    return arch.build(num_classes, init=init, head=head, **extra)
