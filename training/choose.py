"""Choose among box-supervised runs by the declared rule, on validation only:
`python -m training.choose RUN_DIR... [--metric pointing_new] [--reference-accuracy 0.9877] [--slack 0.005]`.

Each run folder is one `training.fit --boxes` run (seeds, learning rates, attempts) or a `training.soup` of such
runs. A run's kept epoch's validation accuracy (metrics.csv) and box-validation pointing game (weights/config.json),
or a soup's own, are read back; the runs whose
validation accuracy is within --slack of the reference are eligible, and the one with the best --metric is chosen
(ties: the higher validation accuracy). Prints a table, and the chosen run folder last, alone on its line.
Nothing here looks at the evaluation part of the boxes or at Testing.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
from pathlib import Path

from brain_tumor.errors import UsageError, exit_status
from brain_tumor.weights import CONFIG_NAME
from training.attention import POINTING
from training.records import weights_folder

@dataclasses.dataclass
class RunFigures:
    run: Path
    epoch: int | None  # None: a soup (training.soup), judged once
    val_acc: float
    pointing: float
    pointing_new: float | None

    def value(self, metric: str) -> float:
        figure = getattr(self, metric)  # the fields are named as training.attention.POINTING's choices
        return -math.inf if figure is None or math.isnan(figure) else figure


def read_run(run: Path) -> RunFigures:
    """The kept epoch's validation accuracy and box-validation figures of one training.fit run folder, or a soup's
    own (a training.soup folder, or a weights folder made by it, such as the shipped weights/resnet50_gated)."""
    try:
        folder = weights_folder(run)
    except UsageError:
        raise UsageError(f"{run} is not a finished training.fit or training.soup run (it needs weights/{CONFIG_NAME}).") from None
    config, history = json.loads((folder / CONFIG_NAME).read_text()), folder.parent / "metrics.csv"
    metrics = config["metrics"]
    boxes, epoch = metrics.get("localisation_validation"), metrics.get("best_epoch")
    if config.get("provenance", {}).get("boxes", {}).get("refit"):
        raise UsageError(f"{run} learnt the box validation (--box-refit), so it cannot be chosen by it.")
    if not boxes:
        raise UsageError(f"{run} was not trained with --boxes, so it has no box-validation figures to choose by.")
    new = boxes.get("val_pointing_new")
    new = None if new is None else float(new)
    if "soup" in config.get("provenance", {}):  # training.soup: one set of weights, judged once
        return RunFigures(run, None, float(metrics["validation"]["accuracy"]), float(boxes["val_pointing"]), new)
    if not history.is_file():
        raise UsageError(f"{run} is not a finished training.fit run (it needs metrics.csv beside weights/).")
    rows = {int(row["epoch"]): row for row in csv.DictReader(history.open())}
    if epoch is None or epoch not in rows:
        raise UsageError(f"{run} kept no epoch within its own accuracy rule; it cannot be chosen.")
    return RunFigures(run, epoch, float(rows[epoch]["val_acc"]), float(boxes["val_pointing"]), new)


def choose(runs: list[RunFigures], metric: str, reference_accuracy: float, slack: float) -> RunFigures | None:
    eligible = [r for r in runs if r.val_acc >= reference_accuracy - slack and r.value(metric) > -math.inf]
    return max(eligible, key=lambda r: (r.value(metric), r.val_acc), default=None)


def table(runs: list[RunFigures], chosen: RunFigures | None, reference_accuracy: float, slack: float) -> str:
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    lines = ["| run | kept epoch | validation acc. | box-validation pointing | without a Training twin | |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        verdict = "chosen" if r is chosen else ("" if r.val_acc >= reference_accuracy - slack else "below the accuracy rule")
        lines.append(f"| {r.run} | {'soup' if r.epoch is None else r.epoch} | {100 * r.val_acc:.2f}% | {cell(r.pointing)} | {cell(r.pointing_new)} | {verdict} |")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="training.fit --boxes run folders, training.soup folders, or weights folders a soup made")
    p.add_argument("--metric", choices=sorted(POINTING), default="pointing_new",
                   help="pointing: the whole box validation; pointing_new: its slices with no twin among the Training images")
    p.add_argument("--reference-accuracy", type=float, default=0.9877,
                   help="the validation accuracy a run is held to (the shipped ResNet-50's: 0.9877)")
    p.add_argument("--slack", type=float, default=0.005, help="validation accuracy a run may lose against the reference")
    return p


def main(args: argparse.Namespace) -> int:
    runs = [read_run(run) for run in args.runs]
    chosen = choose(runs, args.metric, args.reference_accuracy, args.slack)
    print(table(runs, chosen, args.reference_accuracy, args.slack))
    if chosen is None:
        raise UsageError(f"No run kept an epoch within {100 * args.slack:.1f} points of {100 * args.reference_accuracy:.2f}% "
                         f"validation accuracy with a {args.metric} figure; none is chosen.")
    print(chosen.run)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(lambda: main(get_args_parser().parse_args())))
