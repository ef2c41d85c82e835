"""Model architectures behind a name -> builder registry."""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import torch
from torch import nn

from brain_tumor.config import HALF_RANGE_MEAN, HALF_RANGE_STD, IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from brain_tumor.errors import PretrainedWeightsError, UsageError


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
    raise UsageError(f"Unknown head {kind!r}; choose 'linear' or 'mlp'.")


def build_resnet50(num_classes: int, init: str = "scratch", head: str = "linear", dilate_layer4: bool = False) -> nn.Module:
    """torchvision's ResNet-50; with dilate_layer4 its last stage keeps a 14×14 map (at 224 px) instead
    of 7×7, for finer heatmaps, with the same weights (Yu & Koltun's dilated convolutions)."""
    from torchvision.models import ResNet50_Weights, resnet50

    if init not in ("imagenet", "scratch"):
        raise UsageError(f"Unknown init {init!r} for resnet50; choose 'imagenet' or 'scratch'.")
    dilation = [False, False, dilate_layer4]
    if init == "imagenet":
        try:
            model = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2, replace_stride_with_dilation=dilation)
        except Exception as error:  # URLError, HTTPError, socket errors, proxies...
            raise PretrainedWeightsError(
                f"Could not download torchvision's ImageNet ResNet-50 weights ({type(error).__name__}); "
                "connect to the internet or train with --init scratch."
            ) from error
    else:
        # Zero-initialised last BN in each residual block: each block starts as identity (Goyal et al., 2017).
        model = resnet50(weights=None, zero_init_residual=True, replace_stride_with_dilation=dilation)
    model.fc = _head(head, model.fc.in_features, num_classes)
    return model


class BaselineCNN(nn.Module):
    """Three blocks of (3×3 conv, BN, ReLU)×2 at 16/32/64 channels, each then 2×2 max-pool;
    flatten, dropout 0.2, one linear layer."""

    def __init__(self, num_classes: int, image_size: int, head: str = "linear"):
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


def build_baseline(num_classes: int, image_size: int, init: str = "scratch", head: str = "linear") -> nn.Module:
    if init != "scratch":
        raise UsageError("The baseline CNN has no pretrained weights; use --init scratch or a weights folder.")
    return BaselineCNN(num_classes, image_size=image_size, head=head)


def resnet_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """torchvision's ResNet forward as named stages; composed in order they give model(x)."""
    return [
        ("stem", nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)),
        ("layer1", model.layer1), ("layer2", model.layer2), ("layer3", model.layer3), ("layer4", model.layer4),
        ("head", nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)),
    ]


def baseline_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The baseline's blocks, each ending at its last ReLU (before the max-pool), then the head."""
    f = model.features
    return [
        ("block1", f[0:6]), ("pool1", f[6]), ("block2", f[7:13]), ("pool2", f[13]), ("block3", f[14:20]),
        ("head", nn.Sequential(f[20], model.classifier)),
    ]


@dataclasses.dataclass(frozen=True)
class Architecture:
    build: Callable[..., nn.Module]
    # The forward pass as named stages, so explanations can start the backward pass at any stage.
    stages: Callable[[nn.Module], list[tuple[str, nn.Module]]]
    # The stage Grad-CAM reads by default (the last convolutional block), and the ones it may read.
    cam_layer: str
    cam_layers: tuple[str, ...]
    # The classifier head: what --finetune head trains.
    head: Callable[[nn.Module], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int = 224  # the input side the architecture is trained at
    sized_by_input: bool = False  # whether the builder needs image_size (a flatten layer)


ARCHITECTURES: dict[str, Architecture] = {
    "resnet50": Architecture(build_resnet50, resnet_stages, "layer4", ("layer3", "layer4"), lambda m: m.fc,
                             IMAGENET_MEAN, IMAGENET_STD),
    "resnet50_dilated": Architecture(functools.partial(build_resnet50, dilate_layer4=True), resnet_stages, "layer4",
                                     ("layer3", "layer4"), lambda m: m.fc, IMAGENET_MEAN, IMAGENET_STD),
    "baseline": Architecture(build_baseline, baseline_stages, "block3", ("block2", "block3"), lambda m: m.classifier,
                             HALF_RANGE_MEAN, HALF_RANGE_STD, sized_by_input=True),
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UsageError(f"Unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}.") from None


def model_config(name: str, **overrides) -> ModelConfig:
    """A ModelConfig for an architecture: input size and normalisation from its registry entry, unless overridden."""
    arch = get_architecture(name)
    return ModelConfig(**{"architecture": name, "image_size": arch.image_size, "mean": arch.mean, "std": arch.std, **overrides})


def create_model(name: str, num_classes: int = 4, init: str = "scratch", head: str = "linear", image_size: int | None = None) -> nn.Module:
    """Build a model by registry name. init: 'imagenet' or 'scratch' (weights folders load via Classifier)."""
    arch = get_architecture(name)
    extra = {"image_size": image_size or arch.image_size} if arch.sized_by_input else {}
    return arch.build(num_classes, init=init, head=head, **extra)
