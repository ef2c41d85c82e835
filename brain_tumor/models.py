"""Model architectures behind a name -> builder registry."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import torch
import torch.nn.functional as F
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


def logits_of(forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, mirror_average: bool) -> torch.Tensor:
    """`forward`'s logits for a normalised N×3×S×S batch; with mirror_average (ModelConfig.mirror_average), the mean of
    each image's and its left-right mirror image's, in one pass over both."""
    if not mirror_average:
        return forward(batch)
    both = forward(torch.cat([batch, batch.flip(-1)]))
    return (both[:len(batch)] + both[len(batch):]) / 2


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsampling of x to like's height and width (an integer factor): each cell repeated."""
    n, c, h, w = x.shape
    fy, fx = like.shape[-2] // h, like.shape[-1] // w
    return x[:, :, :, None, :, None].expand(n, c, h, fy, w, fx).reshape(n, c, h * fy, w * fx)


class AttentionGate(nn.Module):
    """Where a tumour is, from layer3's 14×14 map and layer4's beside it: a small conv net ending in one logit per cell.

    Its first layer is a 1×1 convolution of both maps (layer4's upsampled), computed as one on each map and
    summed, so layer4's 2,048 channels are mixed at 7×7. The last convolution starts at zero, so a new gate is
    uniform (every cell 0.5) and the gated model starts as exactly the ResNet-50 it was built from (a uniform
    weighted mean is the average pool).

    With `mirror`, each cell also sees how its mixed features differ from those of the cell mirrored across the
    slice's vertical midline (a tumour usually lies on one side of a head), through a 1×1 convolution that starts at
    zero, so such a gate starts as the gate without it.
    """

    def __init__(self, low_channels: int = 1024, high_channels: int = 2048, hidden: int = 64, scale: int = 1,
                 mirror: bool = False):
        super().__init__()
        self.scale = scale  # the gate's cells per layer3 cell along each side (2: a 28×28 gate at 224 px)
        self.low = nn.Conv2d(low_channels, hidden, 1)
        self.high = nn.Conv2d(high_channels, hidden, 1, bias=False)
        self.mirror = nn.Conv2d(hidden, hidden, 1) if mirror else None
        if self.mirror is not None:
            nn.init.zeros_(self.mirror.weight)
            nn.init.zeros_(self.mirror.bias)
        self.body = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2), nn.ReLU(inplace=True),  # more of the head in view
            nn.Conv2d(hidden, 1, 1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        mixed = self.low(low) + _upsample(self.high(high), low)
        if self.mirror is not None:
            mixed = mixed + self.mirror(mixed - mixed.flip(-1))
        if self.scale > 1:  # the convolutions after the mixing place the tumour between layer3's cells
            mixed = F.interpolate(mixed, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.body(mixed)


class _WithInput(nn.Module):
    """A stage that passes its input on beside its output: x -> (x, stage(x))."""

    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, self.stage(x)


class GatedPool(nn.Module):
    """(layer3, layer4) -> a·F / Σa: layer4's features F (upsampled to the gate's 14×14 cells) weighted by the
    gate a = sigmoid(gate(layer3, layer4)), each image's weights summing to one. Summed over the cells and passed
    to the linear head, it is a weighted average pool; Grad-CAM read here is a · relu(w_c·F) / Σa exactly,
    each cell's share of the class score."""

    def __init__(self, gate: nn.Module):
        super().__init__()
        self.gate = gate

    def logits(self, x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The gate's N×1×14×14 logits."""
        return self.gate(*x)

    def pool(self, x: tuple[torch.Tensor, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(logits)
        return _upsample(x[1], logits) * (weights / weights.sum((2, 3), keepdim=True).clamp_min(1e-6))

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.pool(x, self.logits(x))


class GatedResNet50(nn.Module):
    """torchvision's ResNet-50 with its average pool replaced by a box-supervised attention pool (GatedPool).

    The parameters keep torchvision's names (conv1, layer1..layer4, fc) beside `attention`, so a plain ResNet-50
    weights folder initialises everything but the gate. `attention` is the module Grad-CAM's hooks read."""

    def __init__(self, trunk: nn.Module, gate: nn.Module):
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"):
            setattr(self, name, getattr(trunk, name))
        self.attention = GatedPool(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, stage in gated_resnet_stages(self):
            x = stage(x)
        return x

    def logits_and_gate(self, layer4_output: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """From the layer4 stage's output: the class logits, and the gate's N×1×14×14 logits (what a box loss trains)."""
        gate = self.attention.logits(layer4_output)
        stages = dict(gated_resnet_stages(self))
        return stages["head"](self.attention.pool(layer4_output, gate)), gate


def build_resnet50_gated(num_classes: int, init: str = "scratch", head: str = "linear", scale: int = 1,
                         mirror: bool = False) -> nn.Module:
    if head != "linear":
        raise UsageError("The gated ResNet-50 has a linear head (its Grad-CAM is each cell's share of the score); use --head linear.")
    return GatedResNet50(build_resnet50(num_classes, init=init, head=head), AttentionGate(scale=scale, mirror=mirror))


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


def gated_resnet_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """ResNet-50 with the attention pool: layer4 passes layer3's map on to the gate; 'gated' is where Grad-CAM reads."""
    return [
        ("stem", nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)),
        ("layer1", model.layer1), ("layer2", model.layer2), ("layer3", model.layer3), ("layer4", _WithInput(model.layer4)),
        ("gated", model.attention), ("head", nn.Sequential(nn.Flatten(2), _SumCells(), model.fc)),
    ]


class _SumCells(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(-1)


def baseline_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The baseline's blocks, each ending at its last ReLU (before the max-pool), then the head."""
    f = model.features
    return [
        ("block1", f[0:6]), ("pool1", f[6]), ("block2", f[7:13]), ("pool2", f[13]), ("block3", f[14:20]),
        ("head", nn.Sequential(f[20], model.classifier)),
    ]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Every fact about an architecture: a new one is one entry in ARCHITECTURES."""
    build: Callable[..., nn.Module]
    # The forward pass as named stages, so explanations can start the backward pass at any stage and
    # training can freeze (and cache) the stages up to one of `freezable`.
    stages: Callable[[nn.Module], list[tuple[str, nn.Module]]]
    # The stage Grad-CAM reads by default (the last convolutional block), and the ones it may read.
    cam_layer: str
    cam_layers: tuple[str, ...]
    # The classifier head: what --finetune head trains.
    head: Callable[[nn.Module], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    display_name: str
    # training.fit's reference recipe; any flag given on the command line overrides it.
    recipe: dict[str, Any]
    image_size: int = 224  # the input side the architecture is trained at
    sized_by_input: bool = False  # whether the builder needs image_size (a flatten layer)
    # timm's name and model arguments for the same network (brain_tumor.export), or why timm cannot hold it.
    timm: tuple[str, dict[str, Any]] | str | None = None
    # Stages training may freeze through (training.fit --freeze-through): their output is computed once and cached.
    freezable: tuple[str, ...] = ()
    # The stage whose output an attention gate reads (None: no gate); model.logits_and_gate(that output) gives the
    # class logits and the gate's, which a box loss trains.
    gate_input: str | None = None
    # Other architectures whose weights folders initialise this one (all but the parts they lack).
    starts_from: tuple[str, ...] = ()
    # How people should read a map at one of cam_layers when its stage name says little: {stage: (where, what red
    # means)}; other stages read as (their name, "the regions that most raised this class's score").
    cam_readings: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    # What the default map shows when it explains "No tumour": it marks no lesion, and people must not read one into it.
    no_tumour_reading: str = ("Explaining \"No tumour\", red marks the tissue that most raised the no-tumour score: "
                              "what looked healthy, not a lesion.")

    def cam_reading(self, layer: str) -> tuple[str, str]:
        return self.cam_readings.get(layer, (layer, "the regions that most raised this class's score"))


RESNET_RECIPE = dict(init="imagenet", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=32, epochs=10)


def _gated_resnet50(scale: int, mirror: bool = False) -> Architecture:
    """The attention-pooled ResNet-50 with a gate of 14·scale cells a side at 224 px; with `mirror`, the gate also
    compares each cell with its mirror image across the midline (and starts from a gated ResNet-50 without it)."""
    side = 14 * scale
    return Architecture(
        functools.partial(build_resnet50_gated, scale=scale, mirror=mirror), gated_resnet_stages, "gated", ("gated",),
        lambda m: nn.ModuleList([m.attention, m.fc]), IMAGENET_MEAN, IMAGENET_STD,
        display_name=f"ResNet-50 (torchvision) with a box-supervised attention pool (a {side}×{side} gate on layer3 and layer4"
                     + (", comparing each side of the midline)" if mirror else ")"),
        recipe=RESNET_RECIPE, timm="timm has no ResNet-50 with an attention pool",
        freezable=("layer3", "layer4"), gate_input="layer4", starts_from=("resnet50",) + (("resnet50_gated",) if mirror else ()),
        cam_readings={"gated": ("the attention pool", "where this class's score was gathered (the model's gate, trained on tumour "
                                                      "boxes, times the class evidence)")},
        no_tumour_reading=("Explaining \"No tumour\", the gate still marks the spot it would search first for a tumour, so a "
                           "red spot there is where the model looked and found none, not a lesion."))


ARCHITECTURES: dict[str, Architecture] = {
    "resnet50": Architecture(
        build_resnet50, resnet_stages, "layer4", ("layer3", "layer4"), lambda m: m.fc, IMAGENET_MEAN, IMAGENET_STD,
        display_name="ResNet-50 (torchvision)", recipe=RESNET_RECIPE, timm=("resnet50", {}), freezable=("layer2", "layer3", "layer4")),
    "resnet50_dilated": Architecture(
        functools.partial(build_resnet50, dilate_layer4=True), resnet_stages, "layer4", ("layer3", "layer4"), lambda m: m.fc,
        IMAGENET_MEAN, IMAGENET_STD, display_name="ResNet-50 (torchvision) with a dilated last stage (14×14 map)",
        recipe=RESNET_RECIPE, timm=("resnet50", {"output_stride": 16}), freezable=("layer2", "layer3"), starts_from=("resnet50",)),
    "resnet50_gated": _gated_resnet50(scale=1),
    "resnet50_gated_fine": _gated_resnet50(scale=2),
    "resnet50_gated_mirror": _gated_resnet50(scale=1, mirror=True),
    "baseline": Architecture(
        build_baseline, baseline_stages, "block3", ("block2", "block3"), lambda m: m.classifier, HALF_RANGE_MEAN, HALF_RANGE_STD,
        display_name="Baseline CNN (3 conv blocks, 16/32/64)", sized_by_input=True, freezable=("block2", "block3"),
        recipe=dict(init="scratch", optimizer="adamw", lr=1e-4, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=10)),
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
