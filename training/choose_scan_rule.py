"""Choose a model's whole-scan rule on the train part of the outside collections:
`python -m training.choose_scan_rule --scores DIR --weights W [--write]`.

DIR is what `python -m training.evaluate_outside --part train --scans-only` wrote for the same weights: every slice's
probabilities in the healthy volumes (NiChart train subjects) and the tumour stacks (TCGA-LGG train patients). Each rule
of the grid (tumour-probability level, run length, edge share: brain_tumor.scan.ScanRule) is applied to them; the one
chosen calls every healthy volume healthy (or as many as any rule does) and, among those, finds the most tumour stacks,
ties going to the longer run, then the higher level, then the larger edge share (the more cautious rule). --write
stores it in the weights' config.json (scan_rule); training.evaluate_outside --part eval --write-config then records
what it scored on held-out volumes.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

from brain_tumor.classes import CLASSES
from brain_tumor.classifier import Prediction
from brain_tumor.config import ModelConfig
from brain_tumor.errors import UsageError, exit_status
from brain_tumor.scan import ScanRule
from brain_tumor.weights import CONFIG_NAME
from training.records import record_scan_rule, weights_folder

LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
RUNS = (2, 3, 4, 5, 6, 8)
EDGE_SHARES = (0.0, 0.3, 0.4, 0.5, 0.6)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", required=True, help="the --out folder of training.evaluate_outside --part train")
    p.add_argument("--weights", required=True, help="the weights folder those scores came from (its config.json gets the rule)")
    p.add_argument("--write", action="store_true", help="store the chosen rule in the weights folder's config.json")
    return p


def read_scans(folder: Path) -> list[dict]:
    """Each scan of the scores as {"collection", "truth", "predictions", "head_area", "repeats"} in slice order (a gap:
    not scored)."""
    path = folder / "slices.csv"
    if not path.is_file():
        raise UsageError(f"{folder} has no slices.csv; run python -m training.evaluate_outside --part train --out {folder} first.")
    grouped: dict[tuple, list[dict]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if "repeat" not in (reader.fieldnames or []):
            raise UsageError(f"{path} has no repeat column (an older training.evaluate_outside wrote it); score the train part again.")
        for row in reader:
            if row["collection"] in ("tcga-lgg", "nichart"):
                grouped.setdefault((row["collection"], row["subject"], row["sequence"]), []).append(row)
    scans = []
    for (collection, _, _), rows in sorted(grouped.items()):
        by_index = {int(r["index"]): r for r in rows}
        span = range(min(by_index), max(by_index) + 1)
        predictions = [None if i not in by_index else
                       Prediction(by_index[i]["predicted"], {c: float(by_index[i][f"p_{c}"]) for c in CLASSES},
                                  ("recorded",) if by_index[i]["ood"] == "1" else ()) for i in span]
        area = [float(by_index[i]["head_share"]) if i in by_index else 0.0 for i in span]
        repeats = [i in by_index and by_index[i]["repeat"] == "1" for i in span]
        truth = "glioma" if any(r["label"] == "glioma" for r in rows) else "notumor"
        scans.append({"collection": collection, "truth": truth, "predictions": predictions, "head_area": area,
                      "repeats": repeats})
    return scans


def score(rule: ScanRule, scans: list[dict]) -> tuple[int, int, int, int]:
    """(healthy volumes called healthy, healthy volumes, tumour stacks found, tumour stacks)."""
    healthy = [s for s in scans if s["truth"] == "notumor" and s["collection"] == "nichart"]
    tumour = [s for s in scans if s["truth"] == "glioma"]
    passed = sum(rule.summarise(s["predictions"], s["head_area"], s["repeats"])[0] == "notumor" for s in healthy)
    found = sum(rule.summarise(s["predictions"], s["head_area"], s["repeats"])[0] != "notumor" for s in tumour)
    return passed, len(healthy), found, len(tumour)


def choose(scans: list[dict]) -> tuple[ScanRule, list[tuple[ScanRule, tuple[int, int, int, int]]]]:
    table = [(rule, score(rule, scans)) for rule in
             (ScanRule(level, run, edge) for level, run, edge in itertools.product(LEVELS, RUNS, EDGE_SHARES))]
    best = max(table, key=lambda entry: (entry[1][0], entry[1][2], entry[0].min_run, entry[0].level, entry[0].edge_share))
    return best[0], table


def main(args: argparse.Namespace) -> int:
    scans = read_scans(Path(args.scores))
    rule, table = choose(scans)
    passed, healthy, found, tumour = score(rule, scans)
    default = score(ScanRule(), scans)
    print(f"{len(table)} rules on {healthy} healthy volumes and {tumour} tumour stacks (train part)")
    print(f"default rule {ScanRule()}: healthy {default[0]}/{default[1]}, tumour stacks found {default[2]}/{default[3]}")
    for candidate, figures in sorted(table, key=lambda e: (-e[1][0], -e[1][2]))[:8]:
        print(f"  level {candidate.level:.2f} run {candidate.min_run} edge {candidate.edge_share:.1f}: healthy {figures[0]}/{figures[1]}, "
              f"tumour stacks {figures[2]}/{figures[3]}")
    print(f"chosen: level {rule.level} run {rule.min_run} edge {rule.edge_share}: healthy {passed}/{healthy}, tumour stacks {found}/{tumour}")
    if args.write:
        folder = weights_folder(Path(args.weights))
        entry = {"level": rule.level, "min_run": rule.min_run, "edge_share": rule.edge_share, "checked": "",
                 "chosen_by": f"training.choose_scan_rule on the outside train part: {passed} of {healthy} healthy volumes "
                              f"(NiChart) called healthy, {found} of {tumour} tumour stacks (TCGA-LGG) found"}
        record_scan_rule(folder, entry)
        print(f"wrote the rule to {folder / CONFIG_NAME}; measure it on held-out volumes with training.evaluate_outside "
              "--part eval --write-config")
        print(json.dumps(ModelConfig.load(folder / CONFIG_NAME).scan_rule))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(lambda: main(get_args_parser().parse_args())))
