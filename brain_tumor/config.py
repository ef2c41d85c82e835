"""What a trained model is: architecture, classes, input spec, provenance and measured metrics.

The config travels with the weights (config.json) so that training, evaluation and the app
can never disagree about preprocessing.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from brain_tumor.classes import CLASSES

FORMAT_VERSION = 1
# Where brain_tumor and training keep what they derive and can rebuild (exported ONNX models, decoded images).
CACHE_ROOT = Path(os.environ.get("BRAIN_TUMOR_CACHE", Path.home() / ".cache" / "brain_tumor"))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_RANGE_MEAN = (0.5, 0.5, 0.5)  # with HALF_RANGE_STD: inputs in [-1, 1]
HALF_RANGE_STD = (0.5, 0.5, 0.5)


@dataclasses.dataclass
class ModelConfig:
    """Build one for an architecture with brain_tumor.models.model_config, which fills the input size and
    normalisation from the registry; they have no defaults here, so no model silently gets another's."""
    architecture: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...] = CLASSES
    head: str = "linear"
    # Contrast-limited adaptive histogram equalisation before resizing (training --clahe).
    clahe: bool = False
    # Logits are divided by this before the softmax (temperature scaling, fit on validation).
    temperature: float = 1.0
    # Each image's logits averaged with its left-right mirror image's (test-time augmentation: two forward passes),
    # chosen on validation by training.choose_mirror; the temperature and out-of-distribution bounds are fitted that way.
    mirror_average: bool = False
    # The default explanation, chosen by training.evaluate_cam --compare: {"method": ..., "layer": ..., "chosen_by": ...}.
    explanation: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Out-of-distribution bounds fitted on validation: {"bounds": {feature: [low, high]}, ...}.
    ood: dict[str, Any] = dataclasses.field(default_factory=dict)
    # How a whole scan is summarised (brain_tumor.scan.ScanRule), chosen by training.choose_scan_rule: {"level", "min_run",
    # "edge_share", "checked", "chosen_by"}; empty: the default rule, unchecked.
    scan_rule: dict[str, Any] = dataclasses.field(default_factory=dict)
    # How it was made: data, recipe, init, library versions, hardware, date.
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Measured results, e.g. {"test": {...}, "test_clean": {...}, "validation": {...}}.
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    # sha256 of every weights file, checked on load.
    weights_sha256: dict[str, str] = dataclasses.field(default_factory=dict)
    weights_dtype: str = "float32"
    format_version: int = FORMAT_VERSION

    @property
    def outside_collections(self) -> str | None:
        """The outside collections' folder whose train part the weights learnt from (training.fit --outside), if any."""
        return (self.provenance.get("recipe") or {}).get("outside")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("classes", "mean", "std"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("classes", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
