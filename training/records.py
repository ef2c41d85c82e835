"""Writing measured figures into a weights folder's config.json and model card, so the weights
report what a command measured, not what someone typed."""
from __future__ import annotations

from pathlib import Path

from brain_tumor.card import count_of, model_card
from brain_tumor.config import ModelConfig
from brain_tumor.errors import UsageError
from brain_tumor.weights import CARD_NAME, CONFIG_NAME

CLASSIFICATION_KEYS = ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_auc", "ece")
LOCALISATION_KEYS = ("method", "layer", "n", "part", "boxes", "pointing_game", "pointing_game_ci95", "energy_ratio",
                     "energy_ratio_ci95", "per_class", "accuracy")


def weights_folder(path: Path) -> Path:
    """A training run folder's weights/, or a weights folder itself."""
    for folder in (path / "weights", path):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise UsageError(f"{path} is neither a weights folder nor a run folder with weights/{CONFIG_NAME}.")


def _update(folder: Path, change) -> None:
    config = ModelConfig.load(folder / CONFIG_NAME)
    change(config)
    config.save(folder / CONFIG_NAME)
    (folder / CARD_NAME).write_text(model_card(config))


def record_test_metrics(folder: Path, metrics: dict, device: str) -> None:
    """Make these Testing figures (all, and clean when measured) the ones the weights folder reports."""
    source = f"training.evaluate, float32 on {device}"

    def change(config: ModelConfig) -> None:
        config.metrics["test"] = {**{k: metrics[k] for k in CLASSIFICATION_KEYS}, "measured_by": source}
        if "clean" in metrics:
            config.metrics["test_clean"] = {**{k: metrics["clean"][k] for k in CLASSIFICATION_KEYS}, "measured_by": source}
            config.metrics["leaked"] = metrics["leaked"]

    _update(folder, change)


def record_localisation(folder: Path, metrics: dict, default: dict | None = None) -> None:
    """Store the heatmap figures of training.evaluate_cam (and, when given, the default method and layer)."""

    def change(config: ModelConfig) -> None:
        entry = {k: metrics[k] for k in LOCALISATION_KEYS if k in metrics}
        entry["prior"] = {k: metrics["prior"][k] for k in ("pointing_game", "energy_ratio")}
        if "faithfulness" in metrics:
            entry["faithfulness_gap"] = metrics["faithfulness"]["gap"]
        entry["measured_by"] = "training.evaluate_cam"
        config.metrics[f"localisation_{metrics['part']}"] = entry
        if default:
            config.explanation = {**default, "chosen_by": f"training.evaluate_cam --compare on the {metrics['part']} part of "
                                                          f"the boxed slices (n={metrics['n']}): the cheapest to explain within the "
                                                          "best pointing game's 95% interval"}

    _update(folder, change)


def record_outside_metrics(folder: Path, metrics: dict) -> None:
    """Store the outside benchmark's figures (training.evaluate_outside) under metrics["outside"]."""

    def change(config: ModelConfig) -> None:
        config.metrics["outside"] = {"part": metrics["part"], "split": metrics["split"], "slices": metrics["slices"],
                                     "scans": metrics["scans"], "pointing_game": metrics["pointing_game"],
                                     "scan_rule": metrics["scan_rule"], "measured_by": "training.evaluate_outside"}
        if config.scan_rule and metrics["part"] == "eval":  # a chosen rule now says what it scored on held-out volumes
            healthy, stacks = metrics["scans"]["nichart/all"]["no_tumour_summary"], metrics["scans"]["tcga-lgg/all"]["tumour_summary"]
            config.scan_rule["checked"] = (
                f"Checked on held-out scans from other collections: {count_of(healthy)} healthy volumes (NiChart) were called "
                f"healthy and a tumour was found in {count_of(stacks)} glioma stacks (TCGA-LGG); other scanners and tumour types "
                "may differ.")

    _update(folder, change)


def record_scan_rule(folder: Path, entry: dict) -> None:
    """Make `entry` (training.choose_scan_rule's choice) the weights' whole-scan rule."""
    _update(folder, lambda config: setattr(config, "scan_rule", entry))


def record_mirror(folder: Path, on: bool, temperature: float, validation: dict, ood: dict, compared: dict) -> None:
    """Store training.choose_mirror's choice: mirror_average, with the temperature, validation figures and
    out-of-distribution bounds fitted on validation for it; `compared`: the validation figures of both ways."""

    def change(config: ModelConfig) -> None:
        config.mirror_average, config.temperature = on, temperature
        config.metrics["validation"], config.metrics["mirror_average"] = validation, compared
        if ood:
            config.ood = ood

    _update(folder, change)
